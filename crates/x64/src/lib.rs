//! x86-64 virtual memory over a dump's physical memory.
//!
//! CONTRACT (skeleton): the types and signatures below are the interface the
//! other crates build on.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

use hangscope_dump::{PhysAddr, PhysicalMemory};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A virtual address (canonical, sign-extended form).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct VirtAddr(pub u64);

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}
impl fmt::Display for VirtAddr {
    /// WinDbg style: `fffffa80`0b61bb50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}`{:08x}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// A page-table base (the physical address of a PML4, as in CR3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dtb(pub PhysAddr);

/// Why a virtual address cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Not a canonical 48-bit address.
    NonCanonical,
    /// A paging entry is not present (level 4 = PML4 ... 1 = PTE).
    NotPresent {
        /// Paging level of the entry.
        level: u8,
        /// The raw entry.
        entry: u64,
    },
    /// The PTE is in transition (Windows: bit 11 set, bit 10 clear): the
    /// page is in RAM but not mapped valid.
    Transition {
        /// The raw PTE.
        pte: u64,
    },
    /// The PTE is a prototype PTE (Windows: bit 10 set).
    Prototype {
        /// The raw PTE.
        pte: u64,
    },
    /// The page is in the page file.
    PagedOut {
        /// The raw PTE.
        pte: u64,
    },
    /// The page table or the page itself is missing from the dump.
    NotInDump {
        /// The physical address that is absent.
        paddr: PhysAddr,
        /// Paging level being read (0 = the data page).
        level: u8,
    },
}

/// A failed virtual read: why and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Fault {
    /// Why.
    pub kind: FaultKind,
    /// The virtual address that could not be read.
    pub addr: VirtAddr,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read virtual address {}: {:?}", self.addr, self.kind)
    }
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The physical address.
    pub paddr: PhysAddr,
    /// Size of the page that maps it (4 KiB, 2 MiB or 1 GiB).
    pub page_size: u64,
}

/// An address space: physical memory seen through one DTB.
#[derive(Debug, Clone, Copy)]
pub struct AddressSpace<'m> {
    /// The physical memory.
    pub memory: &'m dyn PhysicalMemory,
    /// The page-table base.
    pub dtb: Dtb,
}

impl<'m> AddressSpace<'m> {
    /// An address space over `memory` through `dtb`.
    pub fn new(memory: &'m dyn PhysicalMemory, dtb: Dtb) -> Self {
        AddressSpace { memory, dtb }
    }

    /// Translate one virtual address.
    pub fn translate(&self, va: VirtAddr) -> Result<Translation, Fault> {
        Err(Fault {
            kind: FaultKind::NonCanonical,
            addr: va,
        })
    }

    /// Read `buf.len()` bytes at `va`, crossing pages as needed.
    pub fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault> {
        let _ = buf;
        self.translate(va).map(|_| ())
    }

    /// Read a little-endian u64.
    pub fn read_u64(&self, va: VirtAddr) -> Result<u64, Fault> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}
