//! makedumpfile's compressed kdump format (`KDUMP   `), as QEMU's
//! `dump-guest-memory -z` and `virsh dump --format kdump-zlib` write it,
//! plain or *flattened* (a `makedumpfile` header, then `(offset, size)`
//! records that place chunks of the plain file; QEMU writes this form).
//!
//! Plain layout, in blocks of `block_size`: the disk dump header, the sub
//! header (`sub_hdr_size` blocks, with the ELF notes), the bitmaps
//! (`bitmap_blocks`: first half = memory present, second half = pages
//! dumped), then one page descriptor per dumped page, then the page data.

use super::elf::parse_notes;
use super::{bad, be_i64_at, err_at, slice_at, Bytes};
use crate::model::{not_in_dump, Bitmap};
use crate::raw::flat;
use crate::raw::kdump as k;
use crate::raw::PAGE_SIZE;
use crate::{
    CpuState, Error, ErrorKind, KernelHints, Location, PhysAddr, PhysRange, PhysicalMemory,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

/// Decoded pages kept (4 MiB): a Linux `analyze` touches a few thousand
/// pages, several of them more than once (page tables, each task's stack
/// from the unwinder and again from the waiter scan); small next to the
/// mapping.
const CACHE_PAGES: usize = 1024;
/// Flat records indexed at most (each one is at least 16 bytes of file, so
/// this is far above any real file's count but bounds the index).
const MAX_FLAT_RECORDS: usize = 1 << 26;
/// More pages than a 52-bit physical address space has.
const MAX_MAPNR: u64 = 1 << 40;

/// Whether the file starts like a kdump file, plain or flattened.
pub(crate) fn is_kdump(data: &[u8]) -> bool {
    data.starts_with(k::SIGNATURE) || data.starts_with(flat::SIGNATURE)
}

/// One flattened record: `len` bytes of the plain file at `logical` are
/// at `file` in the flattened file.
#[derive(Debug, Clone, Copy)]
struct FlatRecord {
    logical: u64,
    file: u64,
    len: u64,
}

/// How offsets of the plain file map to the file on disk.
#[derive(Debug)]
enum Logical {
    /// The file is the plain format.
    Direct,
    /// Flattened: records sorted by logical offset, non-overlapping.
    Flat(Vec<FlatRecord>),
}

/// Insert a record written later than every record in `recs.0`: it
/// replaces whatever bytes earlier records put in its interval.
fn insert_record(recs: &mut (BTreeMap<u64, (u64, u64)>, u64), start: u64, len: u64, file: u64) {
    let (map, overlaps) = recs;
    let len = len.min(u64::MAX - start);
    let end = start + len;
    if let Some((&ps, &(pl, pf))) = map.range(..start).next_back() {
        let pe = ps + pl;
        if pe > start {
            *overlaps += 1;
            map.insert(ps, (start - ps, pf));
            if pe > end {
                map.insert(end, (pe - end, pf + (end - ps)));
            }
        }
    }
    let inside: Vec<u64> = map.range(start..end).map(|(k, _)| *k).collect();
    for k in inside {
        *overlaps += 1;
        if let Some((l, f)) = map.remove(&k) {
            if k + l > end {
                map.insert(end, (k + l - end, f + (end - k)));
            }
        }
    }
    map.insert(start, (len, file));
}

impl Logical {
    /// Index a flattened file's records once. Later records win over
    /// earlier ones where they overlap (they are later writes).
    fn index_flat(data: &[u8], notes: &mut Vec<String>) -> Result<Logical, Error> {
        slice_at(data, 0, flat::HEADER_SIZE)?;
        // Non-overlapping intervals by logical start -> (len, file), plus
        // the number of overlaps resolved.
        let mut recs: (BTreeMap<u64, (u64, u64)>, u64) = (BTreeMap::new(), 0);
        let mut count = 0usize;
        let mut pos = flat::HEADER_SIZE;
        let len = data.len() as u64;
        let mut ended = false;
        while pos + flat::RECORD_HEADER <= len {
            let off = be_i64_at(data, pos)?;
            let size = be_i64_at(data, pos + 8)?;
            if off == -1 && size == -1 {
                ended = true;
                break;
            }
            if off < 0 || size < 0 {
                return Err(bad("flattened record offset/size", off as u64, pos));
            }
            count += 1;
            if count > MAX_FLAT_RECORDS {
                return Err(bad("flattened record count", count as u64, pos));
            }
            let data_at = pos + flat::RECORD_HEADER;
            let size = size as u64;
            let have = size.min(len - data_at);
            if have > 0 {
                insert_record(&mut recs, off as u64, have, data_at);
            }
            if have < size {
                notes.push(format!(
                    "flattened record at file offset {pos:#x} is cut short (truncated dump)"
                ));
                ended = true;
                break;
            }
            pos = data_at + size;
        }
        if !ended {
            notes.push("flattened kdump has no end marker (truncated dump)".into());
        }
        let overlaps = recs.1;
        if overlaps > 0 {
            notes.push(format!(
                "{overlaps} flattened record(s) overlap earlier ones; the later write is used"
            ));
        }
        Ok(Logical::Flat(
            recs.0
                .into_iter()
                .map(|(logical, (len, file))| FlatRecord { logical, file, len })
                .collect(),
        ))
    }

    /// Read `buf.len()` bytes of the plain file at `off`.
    fn read(&self, data: &[u8], off: u64, buf: &mut [u8]) -> Result<(), Error> {
        match self {
            Logical::Direct => {
                buf.copy_from_slice(slice_at(data, off, buf.len() as u64)?);
                Ok(())
            }
            Logical::Flat(recs) => {
                let mut done = 0usize;
                while done < buf.len() {
                    let a = off + done as u64;
                    let i = recs.partition_point(|r| r.logical <= a);
                    let r = i
                        .checked_sub(1)
                        .map(|i| recs[i])
                        .filter(|r| a - r.logical < r.len)
                        .ok_or_else(|| {
                            err_at(
                                ErrorKind::BadData {
                                    what: "kdump offset not written by any flattened record",
                                    value: a,
                                },
                                a,
                            )
                        })?;
                    let within = a - r.logical;
                    let n = ((r.len - within) as usize).min(buf.len() - done);
                    let f = (r.file + within) as usize;
                    buf[done..done + n].copy_from_slice(&data[f..f + n]);
                    done += n;
                }
                Ok(())
            }
        }
    }

    /// `len` bytes of the plain file at `off`, borrowed when contiguous.
    fn slice<'a>(&self, data: &'a [u8], off: u64, len: u64) -> Option<&'a [u8]> {
        match self {
            Logical::Direct => slice_at(data, off, len).ok(),
            Logical::Flat(recs) => {
                let i = recs.partition_point(|r| r.logical <= off);
                let r = recs.get(i.checked_sub(1)?)?;
                let within = off - r.logical;
                if within.checked_add(len)? > r.len {
                    return None;
                }
                let f = (r.file + within) as usize;
                Some(&data[f..f + len as usize])
            }
        }
    }

    /// Bytes of the plain file at `off`, copied.
    fn vec(&self, data: &[u8], off: u64, len: u64) -> Result<Vec<u8>, Error> {
        // Callers cap `len`; check against the file too, so garbage cannot
        // allocate more than the file is big.
        if len > data.len() as u64 {
            return Err(err_at(
                ErrorKind::Truncated {
                    needed: off.saturating_add(len),
                    have: data.len() as u64,
                },
                off,
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.read(data, off, &mut v)?;
        Ok(v)
    }

    fn u32(&self, data: &[u8], off: u64) -> Result<u32, Error> {
        let mut b = [0u8; 4];
        self.read(data, off, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&self, data: &[u8], off: u64) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        self.read(data, off, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// A parsed kdump file: memory, CPUs and VMCOREINFO.
#[derive(Debug)]
pub(crate) struct Kdump {
    pub memory: KdumpMemory,
    pub cpus: Vec<CpuState>,
    pub vmcoreinfo: Option<String>,
    pub windows: Option<KernelHints>,
}

/// Open a kdump file (plain or flattened).
pub(crate) fn parse(data: Bytes) -> Result<Kdump, Error> {
    let mut notes = Vec::new();
    let logical = if data.starts_with(flat::SIGNATURE) {
        let index = Logical::index_flat(&data, &mut notes)?;
        data.release_resident();
        index
    } else {
        Logical::Direct
    };
    let d: &[u8] = &data;
    let mut sig = [0u8; 8];
    logical.read(d, 0, &mut sig)?;
    if &sig != k::SIGNATURE {
        return Err(bad(
            "disk_dump_header.signature",
            u64::from_le_bytes(sig),
            0,
        ));
    }
    let version = logical.u32(d, k::HEADER_VERSION)?;
    let block_size = u64::from(logical.u32(d, k::BLOCK_SIZE)?);
    if block_size != PAGE_SIZE {
        return Err(err_at(
            ErrorKind::Unsupported(format!("kdump block_size {block_size:#x} (only 4 KiB)")),
            k::BLOCK_SIZE,
        ));
    }
    let sub_hdr_size = u64::from(logical.u32(d, k::SUB_HDR_SIZE)?);
    let bitmap_blocks = u64::from(logical.u32(d, k::BITMAP_BLOCKS)?);
    let mut max_mapnr = u64::from(logical.u32(d, k::MAX_MAPNR)?);
    let sub = block_size;
    if version >= 6 {
        max_mapnr = logical.u64(d, sub + k::SUB_MAX_MAPNR_64)?;
    }
    if max_mapnr > MAX_MAPNR {
        return Err(bad("max_mapnr", max_mapnr, sub + k::SUB_MAX_MAPNR_64));
    }
    let bitmap_len = bitmap_blocks
        .checked_mul(block_size)
        .ok_or_else(|| bad("bitmap_blocks", bitmap_blocks, k::BITMAP_BLOCKS))?;
    // Each half holds max_mapnr bits.
    if max_mapnr.div_ceil(8) > bitmap_len / 2 {
        return Err(bad("bitmap_blocks", bitmap_blocks, k::BITMAP_BLOCKS));
    }
    let bitmap_off = block_size
        .checked_mul(1 + sub_hdr_size)
        .ok_or_else(|| bad("sub_hdr_size", sub_hdr_size, k::SUB_HDR_SIZE))?;
    // The dumped-pages bitmap is copied out: one bit per page, and the
    // flattened form may split it across records.
    let bitmap2 = logical.vec(d, bitmap_off + bitmap_len / 2, max_mapnr.div_ceil(8))?;
    let desc_off = bitmap_off + bitmap_len;
    let bitmap = Bitmap::new(&bitmap2, 0, max_mapnr);
    let dumped = bitmap.rank(&bitmap2, max_mapnr);
    let ranges = bitmap
        .runs(&bitmap2, dumped)
        .into_iter()
        .map(|(first, count)| PhysRange {
            start: PhysAddr(first * PAGE_SIZE),
            len: count * PAGE_SIZE,
        })
        .collect();

    // CPUs and VMCOREINFO from the sub header; trouble here is reported,
    // not fatal, because the memory is still readable.
    let mut cpus = Vec::new();
    let mut vmcoreinfo = None;
    let mut windows = None;
    let small = |off: u64, len: u64| -> Option<Vec<u8>> {
        (off != 0 && len != 0 && len <= 1 << 24)
            .then(|| logical.vec(d, off, len).ok())
            .flatten()
    };
    if let (Ok(off), Ok(len)) = (
        logical.u64(d, sub + k::SUB_OFFSET_NOTE),
        logical.u64(d, sub + k::SUB_SIZE_NOTE),
    ) {
        if let Some(buf) = small(off, len) {
            let parsed = parse_notes(&buf, off);
            cpus = parsed.cpus;
            vmcoreinfo = parsed.vmcoreinfo;
            windows = parsed.windows;
            notes.extend(parsed.problems);
        }
    }
    if vmcoreinfo.is_none() && windows.is_none() {
        if let (Ok(off), Ok(len)) = (
            logical.u64(d, sub + k::SUB_OFFSET_VMCOREINFO),
            logical.u64(d, sub + k::SUB_SIZE_VMCOREINFO),
        ) {
            if let Some(buf) = small(off, len) {
                if buf.starts_with(b"PAGEDU64") {
                    windows = super::crash::header_hints(&buf, false).ok();
                } else {
                    let text = buf.strip_suffix(b"\0").unwrap_or(&buf);
                    vmcoreinfo = Some(String::from_utf8_lossy(text).into_owned());
                }
            }
        }
    }
    Ok(Kdump {
        memory: KdumpMemory {
            data,
            logical,
            bitmap,
            bitmap2,
            desc_off,
            ranges,
            notes,
            cache: Mutex::new(PageCache {
                pages: HashMap::with_capacity(CACHE_PAGES),
                order: VecDeque::with_capacity(CACHE_PAGES),
                inflate: flate2::Decompress::new(true),
            }),
        },
        cpus,
        vmcoreinfo,
        windows,
    })
}

/// Physical memory of a kdump file: pages decoded on demand.
pub(crate) struct KdumpMemory {
    data: Bytes,
    logical: Logical,
    bitmap: Bitmap,
    bitmap2: Vec<u8>,
    desc_off: u64,
    ranges: Vec<PhysRange>,
    notes: Vec<String>,
    /// Decoded pages by the plain-file offset of their compressed data.
    cache: Mutex<PageCache>,
}

/// Decoded pages, evicted oldest first, and the inflater that decodes
/// them.
struct PageCache {
    pages: HashMap<u64, Box<[u8]>>,
    order: VecDeque<u64>,
    inflate: flate2::Decompress,
}

impl std::fmt::Debug for KdumpMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KdumpMemory")
            .field("data", &self.data)
            .field("pages", &self.bitmap.bits())
            .field("ranges", &self.ranges.len())
            .finish_non_exhaustive()
    }
}

/// A page descriptor.
struct PageDesc {
    offset: u64,
    size: u64,
    flags: u32,
}

impl KdumpMemory {
    fn desc(&self, pfn: u64) -> Option<Result<PageDesc, Error>> {
        if !self.bitmap.get(&self.bitmap2, pfn) {
            return None;
        }
        let i = self.bitmap.rank(&self.bitmap2, pfn);
        let at = self.desc_off + i * k::PAGE_DESC_SIZE;
        let mut b = [0u8; 24];
        Some(
            self.logical
                .read(&self.data, at, &mut b)
                .map(|()| PageDesc {
                    offset: u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
                    size: u64::from(u32::from_le_bytes(b[8..12].try_into().unwrap_or_default())),
                    flags: u32::from_le_bytes(b[12..16].try_into().unwrap_or_default()),
                }),
        )
    }

    /// Call `f` with the page `pfn` (`None` when the dump does not hold
    /// it): borrowed if stored plain, else decoded once and cached.
    fn with_page<R>(&self, pfn: u64, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, Error> {
        let Some(desc) = self.desc(pfn) else {
            return Ok(None);
        };
        let desc = desc?;
        let bad_data = |what: &'static str, value: u64| Error {
            kind: ErrorKind::BadData { what, value },
            at: Some(Location::Phys(PhysAddr(pfn * PAGE_SIZE))),
        };
        let compression = desc.flags
            & (k::DUMP_DH_COMPRESSED_ZLIB
                | k::DUMP_DH_COMPRESSED_LZO
                | k::DUMP_DH_COMPRESSED_SNAPPY
                | k::DUMP_DH_COMPRESSED_ZSTD);
        if compression == 0 {
            if desc.size != PAGE_SIZE {
                return Err(bad_data("kdump page_desc.size of a plain page", desc.size));
            }
            if let Some(s) = self.logical.slice(&self.data, desc.offset, PAGE_SIZE) {
                return Ok(Some(f(s)));
            }
            let v = self.logical.vec(&self.data, desc.offset, PAGE_SIZE)?;
            return Ok(Some(f(&v)));
        }
        if compression != k::DUMP_DH_COMPRESSED_ZLIB {
            let name = match compression {
                k::DUMP_DH_COMPRESSED_LZO => "lzo",
                k::DUMP_DH_COMPRESSED_SNAPPY => "snappy",
                k::DUMP_DH_COMPRESSED_ZSTD => "zstd",
                _ => "several compressions at once",
            };
            return Err(Error {
                kind: ErrorKind::Unsupported(format!(
                    "kdump page compressed with {name} (only zlib); re-dump with \
                     --format kdump-zlib or as ELF"
                )),
                at: Some(Location::Phys(PhysAddr(pfn * PAGE_SIZE))),
            });
        }
        if desc.size == 0 || desc.size > 2 * PAGE_SIZE {
            return Err(bad_data("kdump page_desc.size", desc.size));
        }
        let Ok(mut cache) = self.cache.lock() else {
            return Err(bad_data("kdump page cache poisoned", desc.offset));
        };
        // Keyed by where the data is, not by PFN: makedumpfile and QEMU
        // point every zero page at one shared copy, decoded once.
        if let Some(p) = cache.pages.get(&desc.offset) {
            return Ok(Some(f(p)));
        }
        let packed = match self.logical.slice(&self.data, desc.offset, desc.size) {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(self.logical.vec(&self.data, desc.offset, desc.size)?),
        };
        let mut page = vec![0u8; PAGE_SIZE as usize].into_boxed_slice();
        // One inflater for every page: building one costs more than a
        // page's inflation.
        let z = &mut cache.inflate;
        z.reset(true);
        match z.decompress(&packed, &mut page, flate2::FlushDecompress::Finish) {
            Ok(flate2::Status::StreamEnd) if z.total_out() == PAGE_SIZE => {}
            _ => return Err(bad_data("zlib page does not inflate to 4 KiB", desc.offset)),
        }
        let out = f(&page);
        if cache.order.len() >= CACHE_PAGES {
            if let Some(old) = cache.order.pop_front() {
                cache.pages.remove(&old);
            }
        }
        cache.order.push_back(desc.offset);
        cache.pages.insert(desc.offset, page);
        Ok(Some(out))
    }
}

impl PhysicalMemory for KdumpMemory {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr
                .0
                .checked_add(done as u64)
                .ok_or_else(|| not_in_dump(u64::MAX))?;
            let within = (a % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - within).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            self.with_page(a / PAGE_SIZE, |p| {
                dst.copy_from_slice(&p[within..within + n])
            })?
            .ok_or_else(|| not_in_dump(a))?;
            done += n;
        }
        Ok(())
    }

    fn page(&self, pfn: u64) -> Option<&[u8]> {
        let desc = self.desc(pfn)?.ok()?;
        if desc.flags != 0 || desc.size != PAGE_SIZE {
            return None;
        }
        self.logical.slice(&self.data, desc.offset, PAGE_SIZE)
    }

    fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }
}
