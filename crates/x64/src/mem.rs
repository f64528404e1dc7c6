//! The one seam through which every later stage reads virtual memory: a
//! fallible [`VirtualMemory::read`] with typed helpers on top, implemented
//! by a dump's [`AddressSpace`] and, for tests and synthetic stacks, by
//! [`SparseMemory`]. Every failure is a [`Fault`]; its text is written in
//! one place (`Display` for [`FaultKind`]).

use crate::{AddressSpace, Fault, FaultKind, VirtAddr};
use hangscope_dump::PAGE_SIZE;
use std::collections::BTreeMap;
use std::fmt;

/// Virtual memory as the kernel models and the unwinder read it. Every
/// read is fallible: dumps have holes, and a failed read names the first
/// byte that could not be read (`buf` then holds what was read before it,
/// never zero-filled on purpose).
pub trait VirtualMemory: Send + Sync + fmt::Debug {
    /// Fill `buf` from `va`; fails on the first byte that cannot be read.
    fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault>;

    /// Read a byte.
    fn read_u8(&self, va: VirtAddr) -> Result<u8, Fault> {
        let mut b = [0u8; 1];
        self.read(va, &mut b)?;
        Ok(b[0])
    }

    /// Read a little-endian u16.
    fn read_u16(&self, va: VirtAddr) -> Result<u16, Fault> {
        let mut b = [0u8; 2];
        self.read(va, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Read a little-endian u32.
    fn read_u32(&self, va: VirtAddr) -> Result<u32, Fault> {
        let mut b = [0u8; 4];
        self.read(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Read a little-endian u64.
    fn read_u64(&self, va: VirtAddr) -> Result<u64, Fault> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read `len` bytes into a new vector; `len > cap` is refused with
    /// [`FaultKind::TooLarge`] before anything is allocated (lengths come
    /// from the dump and may be garbage).
    fn read_vec(&self, va: VirtAddr, len: u64, cap: u64) -> Result<Vec<u8>, Fault> {
        if len > cap || usize::try_from(len).is_err() {
            return Err(Fault {
                kind: FaultKind::TooLarge { len, cap },
                addr: va,
            });
        }
        let mut v = vec![0u8; len as usize];
        self.read(va, &mut v)?;
        Ok(v)
    }

    /// As many bytes as can be read from `va`, up to `max`: everything up
    /// to the first unreadable page (instruction bytes, where a short read
    /// is still useful). Empty when `va` itself is unreadable.
    fn read_prefix(&self, va: VirtAddr, max: usize) -> Vec<u8> {
        let mut buf = vec![0u8; max];
        if self.read(va, &mut buf).is_ok() {
            return buf;
        }
        let mut got = 0usize;
        while got < max {
            let Some(a) = va.checked_add(got as u64) else {
                break;
            };
            let n = ((PAGE_SIZE - a.0 % PAGE_SIZE) as usize).min(max - got);
            if self.read(a, &mut buf[got..got + n]).is_err() {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        buf
    }

    /// Read a NUL-terminated byte string of at most `max` bytes (without
    /// the NUL). Pages after the terminator are never touched, so a string
    /// ending just before an unmapped page reads fine. Without a NUL in
    /// `max` bytes, the `max` bytes are returned.
    fn read_cstr(&self, va: VirtAddr, max: usize) -> Result<Vec<u8>, Fault> {
        let mut out = Vec::new();
        let mut a = va;
        while out.len() < max {
            let left_in_page = (PAGE_SIZE - (a.0 & (PAGE_SIZE - 1))) as usize;
            let n = left_in_page.min(max - out.len());
            let mut chunk = vec![0u8; n];
            self.read(a, &mut chunk)?;
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            a = match a.checked_add(n as u64) {
                Some(a) => a,
                None => break,
            };
        }
        Ok(out)
    }

    /// Read `byte_len` bytes of UTF-16LE (a `UNICODE_STRING` buffer) as
    /// code units. `byte_len` is capped at 0xFFFF (the largest
    /// `UNICODE_STRING.Length`); an odd length drops the last byte.
    fn read_utf16_units(&self, va: VirtAddr, byte_len: u64) -> Result<Vec<u16>, Fault> {
        let bytes = self.read_vec(va, byte_len & !1, 0xFFFF)?;
        Ok(bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect())
    }

    /// Read `byte_len` bytes of UTF-16LE as a string; ill-formed UTF-16
    /// (Windows names may be) becomes U+FFFD. Use
    /// [`VirtualMemory::read_utf16_units`] to keep the raw units.
    fn read_utf16(&self, va: VirtAddr, byte_len: u64) -> Result<String, Fault> {
        let units = self.read_utf16_units(va, byte_len)?;
        Ok(String::from_utf16_lossy(&units))
    }
}

impl<T: VirtualMemory + ?Sized> VirtualMemory for &T {
    fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault> {
        (**self).read(va, buf)
    }
}

impl VirtualMemory for AddressSpace<'_> {
    fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault> {
        self.read_virtual(va, buf)
    }
}

/// A sparse virtual memory of 4 KiB pages, for tests, fuzzing and
/// synthetic stacks. Unwritten pages are unmapped and read as a not
/// present PTE ([`FaultKind::NotPresent`] at level 1, entry 0).
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

    /// Write `bytes` at `va`, mapping zero-filled pages as needed; bytes
    /// past the top of the address space are dropped.
    pub fn write(&mut self, va: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let Some(addr) = va.checked_add(done as u64) else {
                return;
            };
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

impl VirtualMemory for SparseMemory {
    fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        while done < buf.len() {
            let Some(a) = va.checked_add(done as u64) else {
                return Err(Fault {
                    kind: FaultKind::NonCanonical,
                    addr: VirtAddr(u64::MAX),
                });
            };
            let page = a.0 & !(PAGE_SIZE - 1);
            let off = (a.0 - page) as usize;
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            match self.pages.get(&page) {
                Some(p) => buf[done..done + n].copy_from_slice(&p[off..off + n]),
                None => {
                    return Err(Fault {
                        kind: FaultKind::NotPresent { level: 1, entry: 0 },
                        addr: a,
                    })
                }
            }
            done += n;
        }
        Ok(())
    }
}
