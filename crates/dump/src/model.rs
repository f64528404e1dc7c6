//! Memory models: how a physical address becomes bytes of the file.
//!
//! Every index here is compact: a sorted segment list (one entry per run,
//! not per page), or a bitmap with a rank index of one u64 per 512 pages.

use crate::parse::Bytes;
use crate::raw::PAGE_SIZE;
use crate::{Error, ErrorKind, Location, PhysAddr, PhysRange, PhysicalMemory};

/// The error for a physical address absent from the dump.
pub(crate) fn not_in_dump(addr: u64) -> Error {
    Error {
        kind: ErrorKind::NotInDump,
        at: Some(Location::Phys(PhysAddr(addr))),
    }
}

/// One stretch of physical memory stored contiguously in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// First physical address.
    pub phys: u64,
    /// File offset of `phys`.
    pub file: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Sorts segments, clips them to the file and removes overlaps (the
/// segment that starts first keeps the bytes). Returns the clean list and
/// one note per repair, so that a damaged header is reported, not hidden.
pub(crate) fn normalise_segments(
    mut segs: Vec<Segment>,
    file_len: u64,
    notes: &mut Vec<String>,
) -> Vec<Segment> {
    let mut clipped = 0u64;
    segs.retain_mut(|s| {
        if s.len == 0 {
            return false;
        }
        // A segment running past the address space is cut at its end.
        let max_len = u64::MAX - s.phys;
        if s.len > max_len {
            s.len = max_len;
        }
        if s.file >= file_len {
            clipped += 1;
            return false;
        }
        if s.file.saturating_add(s.len) > file_len {
            s.len = file_len - s.file;
            clipped += 1;
        }
        s.len > 0
    });
    if clipped > 0 {
        notes.push(format!(
            "{clipped} memory run(s) extend past the end of the file (truncated dump); \
             their missing pages read as not in the dump"
        ));
    }
    segs.sort_by_key(|s| s.phys);
    let mut out: Vec<Segment> = Vec::with_capacity(segs.len());
    let mut overlaps = 0u64;
    for mut s in segs {
        if let Some(prev) = out.last() {
            let prev_end = prev.phys + prev.len;
            if s.phys < prev_end {
                overlaps += 1;
                let cut = prev_end - s.phys;
                if cut >= s.len {
                    continue;
                }
                s.phys += cut;
                s.file += cut;
                s.len -= cut;
            }
        }
        out.push(s);
    }
    if overlaps > 0 {
        notes.push(format!(
            "{overlaps} memory run(s) overlap an earlier run; the earlier run's bytes are used"
        ));
    }
    out
}

/// Physical ranges of sorted, non-overlapping segments, adjacent ones merged.
pub(crate) fn ranges_of(segs: &[Segment]) -> Vec<PhysRange> {
    let mut out: Vec<PhysRange> = Vec::new();
    for s in segs {
        if let Some(last) = out.last_mut() {
            if last.start.0 + last.len == s.phys {
                last.len += s.len;
                continue;
            }
        }
        out.push(PhysRange {
            start: PhysAddr(s.phys),
            len: s.len,
        });
    }
    out
}

/// Memory stored as runs: raw images, ELF cores, full crash dumps.
#[derive(Debug)]
pub(crate) struct SegmentMemory {
    data: Bytes,
    segs: Vec<Segment>,
    ranges: Vec<PhysRange>,
    notes: Vec<String>,
}

impl SegmentMemory {
    /// A model over `data` from raw (unsorted, possibly damaged) segments.
    pub fn new(data: Bytes, segs: Vec<Segment>, mut notes: Vec<String>) -> Self {
        let segs = normalise_segments(segs, data.len() as u64, &mut notes);
        let ranges = ranges_of(&segs);
        SegmentMemory {
            data,
            segs,
            ranges,
            notes,
        }
    }

    /// The segment holding `addr`.
    fn find(&self, addr: u64) -> Option<&Segment> {
        let i = self.segs.partition_point(|s| s.phys <= addr);
        let s = self.segs.get(i.checked_sub(1)?)?;
        (addr - s.phys < s.len).then_some(s)
    }
}

impl PhysicalMemory for SegmentMemory {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr
                .0
                .checked_add(done as u64)
                .ok_or_else(|| not_in_dump(u64::MAX))?;
            let s = self.find(a).ok_or_else(|| not_in_dump(a))?;
            let within = a - s.phys;
            let n = ((s.len - within) as usize).min(buf.len() - done);
            let f = (s.file + within) as usize;
            buf[done..done + n].copy_from_slice(&self.data[f..f + n]);
            done += n;
        }
        Ok(())
    }

    fn page(&self, pfn: u64) -> Option<&[u8]> {
        let a = pfn.checked_mul(PAGE_SIZE)?;
        let s = self.find(a)?;
        let within = a - s.phys;
        if s.len - within < PAGE_SIZE {
            return None;
        }
        let f = (s.file + within) as usize;
        Some(&self.data[f..f + PAGE_SIZE as usize])
    }

    fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// Bits per rank block: one u64 of index per 512 pages (2 MiB of guest
/// memory), so a 64 GiB guest needs a 256 KiB index.
const RANK_BLOCK_BITS: u64 = 512;

/// A little-endian bit array (bit n = byte n/8, bit n%8) in some byte
/// source, with a rank index: `rank(n)` = number of set bits before `n`.
#[derive(Debug, Clone)]
pub(crate) struct Bitmap {
    /// Byte offset of the bitmap in its source.
    start: usize,
    /// Number of valid bits.
    bits: u64,
    /// Set bits before each block of [`RANK_BLOCK_BITS`].
    rank_index: Vec<u64>,
}

impl Bitmap {
    /// Indexes `bits` bits at `start` in `src`; the caller has checked that
    /// `ceil(bits / 8)` bytes are there.
    pub fn new(src: &[u8], start: usize, bits: u64) -> Self {
        let mut b = Bitmap {
            start,
            bits,
            rank_index: Vec::new(),
        };
        let blocks = bits.div_ceil(RANK_BLOCK_BITS);
        b.rank_index.reserve_exact(blocks as usize);
        let mut total = 0u64;
        for blk in 0..blocks {
            b.rank_index.push(total);
            let first = blk * RANK_BLOCK_BITS;
            let last = (first + RANK_BLOCK_BITS).min(bits);
            total += b.count_range(src, first, last);
        }
        b
    }

    /// Number of bits.
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// 64 bits starting at bit `64 * w`, zero past the end.
    fn word(&self, src: &[u8], w: u64) -> u64 {
        let byte = self.start + (w * 8) as usize;
        let mut a = [0u8; 8];
        let avail = src.len().saturating_sub(byte).min(8);
        if avail > 0 {
            a[..avail].copy_from_slice(&src[byte..byte + avail]);
        }
        let mut v = u64::from_le_bytes(a);
        // Bits past `self.bits` are not part of the map.
        let first_bit = w * 64;
        if first_bit + 64 > self.bits {
            let keep = self.bits.saturating_sub(first_bit);
            v &= if keep == 0 {
                0
            } else {
                u64::MAX >> (64 - keep)
            };
        }
        v
    }

    /// Set bits in `[from, to)`.
    fn count_range(&self, src: &[u8], from: u64, to: u64) -> u64 {
        let mut n = 0u64;
        let mut i = from;
        while i < to {
            let w = i / 64;
            let lo = i % 64;
            let hi = (to - w * 64).min(64);
            let mut v = self.word(src, w) >> lo;
            let width = hi - lo;
            if width < 64 {
                v &= (1u64 << width) - 1;
            }
            n += u64::from(v.count_ones());
            i = w * 64 + hi;
        }
        n
    }

    /// Whether bit `i` is set.
    pub fn get(&self, src: &[u8], i: u64) -> bool {
        i < self.bits && (self.word(src, i / 64) >> (i % 64)) & 1 == 1
    }

    /// Set bits before bit `i` (`i` is clamped to `bits`).
    pub fn rank(&self, src: &[u8], i: u64) -> u64 {
        let i = i.min(self.bits);
        let blk = (i / RANK_BLOCK_BITS) as usize;
        match self.rank_index.get(blk) {
            Some(&base) => base + self.count_range(src, blk as u64 * RANK_BLOCK_BITS, i),
            // `i == bits` on a block boundary: the last block counts whole.
            None => match self.rank_index.len().checked_sub(1) {
                Some(last) => {
                    self.rank_index[last] + self.count_range(src, last as u64 * RANK_BLOCK_BITS, i)
                }
                None => 0,
            },
        }
    }

    /// Maximal runs of set bits, as `(first, count)`, limited to bits whose
    /// rank is below `max_rank` (pages whose data the file really holds).
    pub fn runs(&self, src: &[u8], max_rank: u64) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut seen = 0u64;
        let words = self.bits.div_ceil(64);
        let mut w = 0u64;
        while w < words && seen < max_rank {
            let v = self.word(src, w);
            if v == 0 {
                w += 1;
                continue;
            }
            if v == u64::MAX && seen + 64 <= max_rank {
                // A full word: extend or start a run without a bit loop.
                let i = w * 64;
                match out.last_mut() {
                    Some((s, c)) if *s + *c == i => *c += 64,
                    _ => out.push((i, 64)),
                }
                seen += 64;
                w += 1;
                continue;
            }
            for b in 0..64 {
                if (v >> b) & 1 == 1 {
                    if seen >= max_rank {
                        break;
                    }
                    seen += 1;
                    let i = w * 64 + b;
                    match out.last_mut() {
                        Some((s, c)) if *s + *c == i => *c += 1,
                        _ => out.push((i, 1)),
                    }
                }
            }
            w += 1;
        }
        out
    }
}

/// Page-granular lookup shared by the bitmap-based models.
pub(crate) fn read_pages<'a>(
    addr: PhysAddr,
    buf: &mut [u8],
    page: impl Fn(u64) -> Result<Option<std::borrow::Cow<'a, [u8]>>, Error>,
) -> Result<(), Error> {
    let mut done = 0usize;
    while done < buf.len() {
        let a = addr
            .0
            .checked_add(done as u64)
            .ok_or_else(|| not_in_dump(u64::MAX))?;
        let pfn = a / PAGE_SIZE;
        let within = (a % PAGE_SIZE) as usize;
        let p = page(pfn)?.ok_or_else(|| not_in_dump(a))?;
        let n = (PAGE_SIZE as usize - within).min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&p[within..within + n]);
        done += n;
    }
    Ok(())
}

/// A Windows bitmap crash dump: bit n set = PFN n stored, pages stored in
/// PFN order from `first_page`.
#[derive(Debug)]
pub(crate) struct BitmapMemory {
    data: Bytes,
    bitmap: Bitmap,
    first_page: u64,
    /// Pages whose data is inside the file.
    stored_pages: u64,
    ranges: Vec<PhysRange>,
    notes: Vec<String>,
}

impl BitmapMemory {
    /// A model of `data` whose bitmap is `bitmap` and first page at
    /// `first_page` (checked to be inside the file by the caller).
    pub fn new(data: Bytes, bitmap: Bitmap, first_page: u64, mut notes: Vec<String>) -> Self {
        let set = bitmap.rank(&data, bitmap.bits());
        let in_file = (data.len() as u64).saturating_sub(first_page) / PAGE_SIZE;
        if set > in_file {
            notes.push(format!(
                "the bitmap lists {set:#x} pages but the file holds only {in_file:#x} \
                 (truncated dump); the missing pages read as not in the dump"
            ));
        }
        let stored_pages = set.min(in_file);
        let ranges = bitmap
            .runs(&data, stored_pages)
            .into_iter()
            .map(|(first, count)| PhysRange {
                start: PhysAddr(first * PAGE_SIZE),
                len: count * PAGE_SIZE,
            })
            .collect();
        BitmapMemory {
            data,
            bitmap,
            first_page,
            stored_pages,
            ranges,
            notes,
        }
    }

    fn lookup(&self, pfn: u64) -> Option<&[u8]> {
        if !self.bitmap.get(&self.data, pfn) {
            return None;
        }
        let r = self.bitmap.rank(&self.data, pfn);
        if r >= self.stored_pages {
            return None;
        }
        let off = (self.first_page + r * PAGE_SIZE) as usize;
        Some(&self.data[off..off + PAGE_SIZE as usize])
    }
}

impl PhysicalMemory for BitmapMemory {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), Error> {
        read_pages(addr, buf, |pfn| Ok(self.lookup(pfn).map(Into::into)))
    }

    fn page(&self, pfn: u64) -> Option<&[u8]> {
        self.lookup(pfn)
    }

    fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }
}
