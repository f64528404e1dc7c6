//! Reading kernel virtual memory: the seam between the kernel model and the
//! paging layer, so tests can hand the model a flat in-memory fixture.

use hangscope_x64::{AddressSpace, Fault, FaultKind, VirtAddr};
use std::collections::BTreeMap;
use std::fmt;

/// Kernel virtual memory as the model reads it.
pub trait VirtualMemory: Send + Sync + fmt::Debug {
    /// Fill `buf` from `va`; fails on the first byte that cannot be read.
    fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault>;
}

impl VirtualMemory for AddressSpace<'_> {
    fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault> {
        AddressSpace::read(self, va, buf)
    }
}

/// A sparse, page-granular virtual memory built in tests (and by tools that
/// want to replay a few pages): unmapped pages fault as not present.
#[derive(Debug, Default, Clone)]
pub struct SparseMemory {
    pages: BTreeMap<u64, Box<[u8; 4096]>>,
}

impl SparseMemory {
    /// An empty memory.
    pub fn new() -> SparseMemory {
        SparseMemory::default()
    }

    /// Write bytes at `va`, mapping zeroed pages as needed.
    pub fn write(&mut self, va: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let a = va.wrapping_add(i as u64);
            let page = self
                .pages
                .entry(a & !0xfff)
                .or_insert_with(|| Box::new([0u8; 4096]));
            page[(a & 0xfff) as usize] = *b;
        }
    }

    /// Write a little-endian u64.
    pub fn write_u64(&mut self, va: u64, v: u64) {
        self.write(va, &v.to_le_bytes());
    }

    /// Remove a page, so reads of it fault.
    pub fn unmap(&mut self, va: u64) {
        self.pages.remove(&(va & !0xfff));
    }
}

impl VirtualMemory for SparseMemory {
    fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = va.0.wrapping_add(done as u64);
            let page = self.pages.get(&(a & !0xfff)).ok_or(Fault {
                kind: FaultKind::NotPresent { level: 1, entry: 0 },
                addr: VirtAddr(a),
            })?;
            let off = (a & 0xfff) as usize;
            let n = (4096 - off).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[off..off + n]);
            done += n;
        }
        Ok(())
    }
}
