//! [`VecMemory`]: physical memory held in a map of pages, for tests and
//! for tools that synthesise small guests.

use crate::model::not_in_dump;
use crate::raw::PAGE_SIZE;
use crate::{Error, PhysAddr, PhysRange, PhysicalMemory};
use std::collections::BTreeMap;

/// Sparse in-memory physical memory: only the pages written exist; every
/// other address reads as [`crate::ErrorKind::NotInDump`], exactly like a
/// page missing from a real dump.
///
/// ```
/// use hangscope_dump::{PhysAddr, PhysicalMemory, VecMemory};
/// let mut m = VecMemory::new();
/// m.write(PhysAddr(0x1ff8), &0x1122_3344_5566_7788u64.to_le_bytes());
/// let mut b = [0u8; 8];
/// m.read(PhysAddr(0x1ff8), &mut b).unwrap();
/// assert_eq!(u64::from_le_bytes(b), 0x1122_3344_5566_7788);
/// assert!(m.read(PhysAddr(0x2000), &mut b).is_err()); // page 2 was never written
/// assert_eq!(m.ranges().len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct VecMemory {
    pages: BTreeMap<u64, Box<[u8]>>,
    ranges: Vec<PhysRange>,
}

impl VecMemory {
    /// Empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Write `bytes` at `addr`, creating (zeroed) pages as needed; bytes
    /// that would pass the end of the address space are dropped.
    pub fn write(&mut self, addr: PhysAddr, bytes: &[u8]) {
        let mut done = 0usize;
        let mut created = false;
        while done < bytes.len() {
            let Some(a) = addr.0.checked_add(done as u64) else {
                break;
            };
            let pfn = a / PAGE_SIZE;
            let within = (a % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - within).min(bytes.len() - done);
            let page = self.pages.entry(pfn).or_insert_with(|| {
                created = true;
                vec![0u8; PAGE_SIZE as usize].into_boxed_slice()
            });
            page[within..within + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
        if created {
            self.rebuild_ranges();
        }
    }

    /// Write a little-endian u64 at `addr`.
    pub fn write_u64(&mut self, addr: PhysAddr, value: u64) {
        self.write(addr, &value.to_le_bytes());
    }

    /// Make page `pfn` present (zeroed if new); `pfn` must be below 2^52.
    pub fn add_page(&mut self, pfn: u64) {
        if let std::collections::btree_map::Entry::Vacant(e) = self.pages.entry(pfn) {
            e.insert(vec![0u8; PAGE_SIZE as usize].into_boxed_slice());
            self.rebuild_ranges();
        }
    }

    /// Remove page `pfn`, as if the dump did not hold it.
    pub fn remove_page(&mut self, pfn: u64) {
        if self.pages.remove(&pfn).is_some() {
            self.rebuild_ranges();
        }
    }

    /// Number of pages present.
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    fn rebuild_ranges(&mut self) {
        self.ranges.clear();
        for &pfn in self.pages.keys() {
            let start = pfn * PAGE_SIZE;
            match self.ranges.last_mut() {
                Some(r) if r.start.0 + r.len == start => r.len += PAGE_SIZE,
                _ => self.ranges.push(PhysRange {
                    start: PhysAddr(start),
                    len: PAGE_SIZE,
                }),
            }
        }
    }
}

impl PhysicalMemory for VecMemory {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr
                .0
                .checked_add(done as u64)
                .ok_or_else(|| not_in_dump(u64::MAX))?;
            let page = self.page(a / PAGE_SIZE).ok_or_else(|| not_in_dump(a))?;
            let within = (a % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[within..within + n]);
            done += n;
        }
        Ok(())
    }

    fn page(&self, pfn: u64) -> Option<&[u8]> {
        self.pages.get(&pfn).map(|p| &p[..])
    }

    fn ranges(&self) -> &[PhysRange] {
        &self.ranges
    }
}
