//! Where the unwinder reads bytes from: a dump's virtual memory or, in tests,
//! a sparse in-memory map.

use hangscope_x64::{AddressSpace, FaultKind, VirtAddr};
use std::collections::BTreeMap;
use std::fmt;

/// Why a virtual read failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadFailure {
    /// The page walk failed (not present, paged out, not in the dump, ...).
    Fault(FaultKind),
    /// The memory source has nothing at this address (in-memory maps).
    Unmapped,
    /// `addr + len` overflows the address space.
    Overflow,
}

/// A failed read of `len` bytes at `addr`: `at` is the first byte that could
/// not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ReadError {
    /// Start of the requested read.
    pub addr: VirtAddr,
    /// Length of the requested read.
    pub len: usize,
    /// First address that failed (may be inside the range).
    pub at: VirtAddr,
    /// Why.
    pub reason: ReadFailure,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read {} bytes at {} (failed at {}: {:?})",
            self.len, self.addr, self.at, self.reason
        )
    }
}

/// A source of virtual memory. Every read is fallible: dumps have holes.
pub trait MemoryReader {
    /// Fill `buf` from `va`, or say which address failed and why.
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), ReadError>;

    /// Read a little-endian u64.
    fn read_u64(&self, va: u64) -> Result<u64, ReadError> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read a little-endian u32.
    fn read_u32(&self, va: u64) -> Result<u32, ReadError> {
        let mut b = [0u8; 4];
        self.read(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

impl<T: MemoryReader + ?Sized> MemoryReader for &T {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        (**self).read(va, buf)
    }
}

impl MemoryReader for AddressSpace<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        AddressSpace::read(self, VirtAddr(va), buf).map_err(|fault| ReadError {
            addr: VirtAddr(va),
            len: buf.len(),
            at: fault.addr,
            reason: ReadFailure::Fault(fault.kind),
        })
    }
}

/// Read as many bytes as possible, up to `max`, starting at `va`: the part up
/// to the first unreadable page. Used for instruction bytes, where a short
/// read is still useful.
pub(crate) fn read_prefix(mem: &dyn MemoryReader, va: u64, max: usize) -> Vec<u8> {
    let mut buf = vec![0u8; max];
    if mem.read(va, &mut buf).is_ok() {
        return buf;
    }
    let to_page_end = (PAGE_SIZE - (va % PAGE_SIZE)) as usize;
    let first = to_page_end.min(max);
    buf.truncate(first);
    if mem.read(va, &mut buf).is_ok() {
        buf
    } else {
        Vec::new()
    }
}

/// Size of a page, the granularity at which dumps have holes.
pub const PAGE_SIZE: u64 = 0x1000;

/// A sparse virtual memory made of 4 KiB pages, for tests and for building
/// synthetic stacks. Unwritten pages are unmapped and fail to read.
#[derive(Clone, Default)]
pub struct SparseMemory {
    pages: BTreeMap<u64, Box<[u8; PAGE_SIZE as usize]>>,
}

impl fmt::Debug for SparseMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseMemory")
            .field("pages", &self.pages.len())
            .finish()
    }
}

impl SparseMemory {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Write `bytes` at `va`, mapping (zero-filled) pages as needed.
    ///
    /// # Panics
    /// If `va + bytes.len()` overflows: this is a test and builder helper,
    /// never fed with dump data.
    pub fn write(&mut self, va: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let addr = va
                .checked_add(done as u64)
                .expect("write wraps the address space");
            let page = addr & !(PAGE_SIZE - 1);
            let off = (addr - page) as usize;
            let n = (PAGE_SIZE as usize - off).min(bytes.len() - done);
            let p = self
                .pages
                .entry(page)
                .or_insert_with(|| Box::new([0u8; PAGE_SIZE as usize]));
            p[off..off + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
    }

    /// Write a little-endian u64.
    pub fn write_u64(&mut self, va: u64, value: u64) {
        self.write(va, &value.to_le_bytes());
    }

    /// Write a little-endian u32.
    pub fn write_u32(&mut self, va: u64, value: u32) {
        self.write(va, &value.to_le_bytes());
    }

    /// The mapped pages, ascending: (page address, bytes). Lets a test or
    /// the lab copy a synthetic address space into physical memory behind
    /// real page tables.
    pub fn pages(&self) -> impl Iterator<Item = (u64, &[u8; PAGE_SIZE as usize])> + '_ {
        self.pages.iter().map(|(&va, p)| (va, &**p))
    }

    /// Unmap the page that holds `va` (to simulate a hole in a dump).
    pub fn unmap_page(&mut self, va: u64) {
        self.pages.remove(&(va & !(PAGE_SIZE - 1)));
    }
}

impl MemoryReader for SparseMemory {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let len = buf.len();
        let err = |at: u64, reason| ReadError {
            addr: VirtAddr(va),
            len,
            at: VirtAddr(at),
            reason,
        };
        if va.checked_add(buf.len() as u64).is_none() {
            return Err(err(va, ReadFailure::Overflow));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let addr = va + done as u64;
            let page = addr & !(PAGE_SIZE - 1);
            let off = (addr - page) as usize;
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            match self.pages.get(&page) {
                Some(p) => buf[done..done + n].copy_from_slice(&p[off..off + n]),
                None => return Err(err(addr, ReadFailure::Unmapped)),
            }
            done += n;
        }
        Ok(())
    }
}
