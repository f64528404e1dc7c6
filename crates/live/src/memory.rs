//! Guest physical memory read from the running QEMU process, and a
//! consistent copy of the pages an analysis needs.
//!
//! [`LiveMemory`] answers each read from QEMU's address space: a `pread`
//! on `/proc/PID/mem` (opened read-only, so it can never write guest
//! memory), or a read-only mapping of a shared memory-backend file. It can
//! record which pages it was asked for. [`Snapshot`] holds a copy of such a
//! set of pages taken while the guest was paused, and records every page an
//! analysis wanted that the copy lacks, so the caller can take a larger
//! copy and run again rather than trust a half-consistent answer.

use hangscope_dump::{Error, ErrorKind, Location, PhysAddr, PhysRange, PhysicalMemory, PAGE_SIZE};
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where one guest-physical range's bytes are on the host.
#[derive(Debug, Clone)]
pub(crate) enum Backing {
    /// At this host virtual address in QEMU's process (`/proc/PID/mem`).
    Process {
        /// Host address of the range's first byte.
        hva: u64,
    },
    /// In a shared file QEMU maps, mapped read-only here too.
    File {
        /// Our mapping of the file.
        map: Arc<memmap2::Mmap>,
        /// Offset of the range's first byte in `map`.
        offset: usize,
    },
}

/// One guest-physical range and its backing.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub gpa: u64,
    pub len: u64,
    pub backing: Backing,
}

/// Pages kept by one [`LiveMemory`] (1 GiB at most): page-table walks read
/// the same few pages over and over, a system call each without it.
const CACHE_PAGES: usize = 1 << 18;

/// Guest RAM read straight from the QEMU process.
///
/// Each page read from the process is kept for the life of this value,
/// which is one analysis of one moment (up to [`CACHE_PAGES`]; beyond
/// that, reads go to the process each time).
#[derive(Debug)]
pub struct LiveMemory {
    mem: Arc<File>,
    sources: Vec<Source>,
    ranges: Vec<PhysRange>,
    touched: Option<Mutex<BTreeSet<u64>>>,
    bytes_read: AtomicU64,
    cache: Mutex<HashMap<u64, Box<[u8]>>>,
}

fn io_error(what: String, at: u64) -> Error {
    Error {
        kind: ErrorKind::Io(what),
        at: Some(Location::Phys(PhysAddr(at))),
    }
}

fn not_present(at: u64) -> Error {
    Error {
        kind: ErrorKind::NotInDump,
        at: Some(Location::Phys(PhysAddr(at))),
    }
}

impl LiveMemory {
    /// Memory over `sources` (sorted, non-overlapping); `record` keeps the
    /// set of pages read, for [`LiveMemory::touched`].
    pub(crate) fn new(mem: Arc<File>, sources: Vec<Source>, record: bool) -> LiveMemory {
        let ranges = sources
            .iter()
            .map(|s| PhysRange {
                start: PhysAddr(s.gpa),
                len: s.len,
            })
            .collect();
        LiveMemory {
            mem,
            sources,
            ranges,
            touched: record.then(|| Mutex::new(BTreeSet::new())),
            bytes_read: AtomicU64::new(0),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The page `pfn` from the cache, read from the process first if
    /// needed; `None` when it is not process memory, unreadable, or the
    /// cache is full.
    fn cached_page(&self, pfn: u64) -> Option<&[u8]> {
        let addr = pfn.checked_mul(PAGE_SIZE)?;
        let s = self.source(addr)?;
        let Backing::Process { hva } = &s.backing else {
            return None;
        };
        if addr - s.gpa + PAGE_SIZE > s.len {
            return None;
        }
        let mut cache = self.cache.lock().ok()?;
        if !cache.contains_key(&pfn) {
            if cache.len() >= CACHE_PAGES {
                return None;
            }
            let mut page = vec![0u8; PAGE_SIZE as usize].into_boxed_slice();
            self.mem
                .read_exact_at(&mut page, hva.checked_add(addr - s.gpa)?)
                .ok()?;
            self.bytes_read.fetch_add(PAGE_SIZE, Ordering::Relaxed);
            cache.insert(pfn, page);
        }
        let page: &[u8] = cache.get(&pfn)?;
        // SAFETY: the page's bytes live in their own heap allocation (the
        // Box), which entries never replace or remove, and which the map
        // never moves when it grows (it moves the Box pointer, not the
        // bytes); the cache is dropped only with `self`, so the bytes
        // outlive the `&self` borrow this reference is tied to.
        Some(unsafe { std::slice::from_raw_parts(page.as_ptr(), page.len()) })
    }

    /// Read straight from the process, no cache: one system call for a
    /// run of pages (the copies a pause makes).
    pub(crate) fn read_uncached(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr
                .0
                .checked_add(done as u64)
                .ok_or_else(|| not_present(addr.0))?;
            let s = self.source(at).ok_or_else(|| not_present(at))?;
            let n = ((s.gpa + s.len - at) as usize).min(buf.len() - done);
            self.read_in(s, at, &mut buf[done..done + n])?;
            done += n;
        }
        self.bytes_read
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The pages read so far (empty unless recording).
    pub fn touched(&self) -> BTreeSet<u64> {
        self.touched
            .as_ref()
            .and_then(|t| t.lock().ok().map(|t| t.clone()))
            .unwrap_or_default()
    }

    /// Bytes read from the guest so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    fn source(&self, addr: u64) -> Option<&Source> {
        let i = self.sources.partition_point(|s| s.gpa <= addr);
        let s = self.sources.get(i.checked_sub(1)?)?;
        (addr - s.gpa < s.len).then_some(s)
    }

    /// Read from one source; `buf` lies inside it.
    fn read_in(&self, s: &Source, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        let off = addr - s.gpa;
        match &s.backing {
            Backing::Process { hva } => {
                let host = hva.checked_add(off).ok_or_else(|| not_present(addr))?;
                self.mem.read_exact_at(buf, host).map_err(|e| {
                    io_error(
                        format!("reading QEMU's memory at host address {host:#x}: {e}"),
                        addr,
                    )
                })
            }
            Backing::File { map, offset } => {
                let start = offset
                    .checked_add(off as usize)
                    .ok_or_else(|| not_present(addr))?;
                let src = map
                    .get(start..start + buf.len())
                    .ok_or_else(|| not_present(addr))?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }
}

impl PhysicalMemory for LiveMemory {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr
                .0
                .checked_add(done as u64)
                .ok_or_else(|| not_present(addr.0))?;
            let s = self.source(at).ok_or_else(|| not_present(at))?;
            // A page at a time: each through the page cache when it can.
            let in_page = (PAGE_SIZE - at % PAGE_SIZE) as usize;
            let n = ((s.gpa + s.len - at) as usize)
                .min(buf.len() - done)
                .min(in_page);
            match self.page(at / PAGE_SIZE) {
                Some(p) => {
                    let off = (at % PAGE_SIZE) as usize;
                    buf[done..done + n].copy_from_slice(&p[off..off + n]);
                }
                None => {
                    if let Some(t) = &self.touched {
                        if let Ok(mut t) = t.lock() {
                            t.insert(at / PAGE_SIZE);
                        }
                    }
                    self.read_in(s, at, &mut buf[done..done + n])?;
                    self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            done += n;
        }
        Ok(())
    }

    fn page(&self, pfn: u64) -> Option<&[u8]> {
        let addr = pfn.checked_mul(PAGE_SIZE)?;
        let s = self.source(addr)?;
        if let Some(t) = &self.touched {
            if let Ok(mut t) = t.lock() {
                t.insert(pfn);
            }
        }
        if let Backing::File { map, offset } = &s.backing {
            let start = offset.checked_add((addr - s.gpa) as usize)?;
            return map.get(start..start.checked_add(PAGE_SIZE as usize)?);
        }
        self.cached_page(pfn)
    }

    fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }
}

/// A copy of some guest pages taken in one pause: one consistent moment.
#[derive(Debug)]
pub struct Snapshot {
    ranges: Vec<PhysRange>,
    pages: HashMap<u64, Box<[u8]>>,
    misses: Mutex<BTreeSet<u64>>,
}

impl Snapshot {
    /// Copy `pfns` (those inside guest RAM) from `live`, coalescing runs of
    /// neighbouring pages into one read each.
    pub fn take(live: &LiveMemory, pfns: &BTreeSet<u64>) -> Result<Snapshot, Error> {
        let mut pages = HashMap::with_capacity(pfns.len());
        let mut run: Vec<u64> = Vec::new();
        let mut flush = |run: &mut Vec<u64>| -> Result<(), Error> {
            let Some(&first) = run.first() else {
                return Ok(());
            };
            let mut buf = vec![0u8; run.len() * PAGE_SIZE as usize];
            live.read_uncached(PhysAddr(first * PAGE_SIZE), &mut buf)?;
            for (i, pfn) in run.iter().enumerate() {
                let p = PAGE_SIZE as usize;
                pages.insert(*pfn, buf[i * p..(i + 1) * p].to_vec().into_boxed_slice());
            }
            run.clear();
            Ok(())
        };
        for &pfn in pfns {
            if !live.has_page(pfn) {
                continue;
            }
            let contiguous = run.last().is_some_and(|&l| l + 1 == pfn)
                && live.source(pfn * PAGE_SIZE).map(|s| s.gpa)
                    == run
                        .first()
                        .and_then(|&f| live.source(f * PAGE_SIZE))
                        .map(|s| s.gpa);
            if !contiguous || run.len() >= 256 {
                flush(&mut run)?;
            }
            run.push(pfn);
        }
        flush(&mut run)?;
        Ok(Snapshot {
            ranges: live.ranges.clone(),
            pages,
            misses: Mutex::new(BTreeSet::new()),
        })
    }

    /// Pages copied.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no page was copied.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Pages inside guest RAM that a reader wanted and the copy lacks.
    pub fn misses(&self) -> BTreeSet<u64> {
        self.misses.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn in_ram(&self, addr: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.start.0 <= addr);
        i.checked_sub(1)
            .and_then(|i| self.ranges.get(i))
            .is_some_and(|r| addr - r.start.0 < r.len)
    }
}

impl PhysicalMemory for Snapshot {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr
                .0
                .checked_add(done as u64)
                .ok_or_else(|| not_present(addr.0))?;
            let pfn = at / PAGE_SIZE;
            let off = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            match self.pages.get(&pfn) {
                Some(p) => buf[done..done + n].copy_from_slice(&p[off..off + n]),
                None => {
                    if self.in_ram(at) {
                        if let Ok(mut m) = self.misses.lock() {
                            m.insert(pfn);
                        }
                    }
                    return Err(not_present(at));
                }
            }
            done += n;
        }
        Ok(())
    }

    fn page(&self, pfn: u64) -> Option<&[u8]> {
        let p = self.pages.get(&pfn).map(|p| &p[..]);
        if p.is_none() && pfn.checked_mul(PAGE_SIZE).is_some_and(|a| self.in_ram(a)) {
            // Whoever asks for a page reads it next: count it as wanted.
            if let Ok(mut m) = self.misses.lock() {
                m.insert(pfn);
            }
        }
        p
    }

    fn has_page(&self, pfn: u64) -> bool {
        // What guest RAM holds, as for the live guest: a page the copy
        // lacks is recorded when it is read.
        pfn.checked_mul(PAGE_SIZE).is_some_and(|a| {
            self.in_ram(a) && a.checked_add(PAGE_SIZE - 1).is_some_and(|e| self.in_ram(e))
        })
    }

    fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn live_over(bytes: &[u8], record: bool) -> (LiveMemory, tempfile_path::Tmp) {
        let tmp = tempfile_path::Tmp::new(bytes);
        let f = File::open(&tmp.0).unwrap();
        // SAFETY: a private read-only mapping of a test file nobody changes.
        let map = unsafe { memmap2::Mmap::map(&f).unwrap() };
        let sources = vec![
            Source {
                gpa: 0,
                len: 2 * PAGE_SIZE,
                backing: Backing::File {
                    map: Arc::new(map),
                    offset: 0,
                },
            },
            Source {
                gpa: 0x10000,
                len: 2 * PAGE_SIZE,
                backing: Backing::Process {
                    // Reading "host memory" from the file itself through
                    // pread: offset 2 pages into it.
                    hva: 2 * PAGE_SIZE,
                },
            },
        ];
        (LiveMemory::new(Arc::new(f), sources, record), tmp)
    }

    mod tempfile_path {
        pub struct Tmp(pub std::path::PathBuf);
        impl Tmp {
            pub fn new(bytes: &[u8]) -> Tmp {
                let p = std::env::temp_dir().join(format!(
                    "hangscope-live-unit-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let mut f = std::fs::File::create(&p).unwrap();
                super::Write::write_all(&mut f, bytes).unwrap();
                Tmp(p)
            }
        }
        impl Drop for Tmp {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn reads_cross_sources_and_snapshots_record_misses() {
        let bytes: Vec<u8> = (0..4 * PAGE_SIZE)
            .map(|i| (i / PAGE_SIZE) as u8 + 1)
            .collect();
        let (live, _tmp) = live_over(&bytes, true);
        let mut b = [0u8; 8];
        live.read(PhysAddr(PAGE_SIZE - 4), &mut b).unwrap();
        assert_eq!(b, [1, 1, 1, 1, 2, 2, 2, 2]);
        live.read(PhysAddr(0x10000 + PAGE_SIZE), &mut b).unwrap();
        assert_eq!(b, [4; 8], "pread at hva 2 pages + 1 page");
        let e = live.read(PhysAddr(2 * PAGE_SIZE - 4), &mut b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotInDump);
        assert_eq!(live.touched(), BTreeSet::from([0, 1, 0x11]));

        let snap = Snapshot::take(&live, &BTreeSet::from([0, 0x11, 0x500])).unwrap();
        assert_eq!(snap.len(), 2, "the page outside RAM is skipped");
        snap.read(PhysAddr(0x11000), &mut b).unwrap();
        assert_eq!(b, [4; 8]);
        assert!(snap.read(PhysAddr(0x10000), &mut b).is_err());
        assert!(snap.read(PhysAddr(0x500000), &mut b).is_err());
        assert!(snap.has_page(0x10));
        assert_eq!(snap.misses(), BTreeSet::from([0x10]), "RAM pages only");
    }
}
