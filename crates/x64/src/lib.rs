//! x86-64 virtual memory over a dump's physical memory.
//!
//! Translation follows the processor (4-level paging by default, 5-level
//! when asked with [`AddressSpace::with_paging`]; 4 KiB, 2 MiB and 1 GiB
//! pages). What a non-present entry means is the operating system's
//! business: the walk asks a [`PteRules`] hook (the kernel model supplies
//! one; Windows' transition, prototype and page-file rules live in
//! `hangscope-nt`); a page table or data page that the dump does not hold
//! is [`FaultKind::NotInDump`], never zeros.
//!
//! Every later stage reads virtual memory through one trait,
//! [`VirtualMemory`], implemented by [`AddressSpace`] and by the test
//! memory [`SparseMemory`], and every failure is one [`Fault`].
//!
//! ```
//! use hangscope_dump::{PhysAddr, VecMemory};
//! use hangscope_x64::{AddressSpace, Dtb, VirtAddr, VirtualMemory};
//! // A PML4 at 0x1000 mapping 0xffff_8000_0000_0000 with one 1 GiB page at 0.
//! let mut mem = VecMemory::new();
//! mem.write_u64(PhysAddr(0x1000 + 0x100 * 8), 0x2000 | 0x3); // PML4[0x100] -> PDPT
//! mem.write_u64(PhysAddr(0x2000), 0x0 | 0x83);              // PDPT[0]: 1 GiB page at 0
//! let space = AddressSpace::new(&mem, Dtb(PhysAddr(0x1000)));
//! let t = space.translate(VirtAddr(0xffff_8000_0000_2008)).unwrap();
//! assert_eq!((t.paddr, t.page_size), (PhysAddr(0x2008), 1 << 30));
//! assert_eq!(space.read_u64(VirtAddr(0xffff_8000_0000_2000)).unwrap(), 0x83);
//! ```
//!
//! CONTRACT (skeleton): the types and signatures below are the interface the
//! other crates build on.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod iter;
pub mod list;
mod mem;
pub mod paging;
mod scan;
pub mod view;

pub use iter::MappedPages;
pub use list::{CircularList, ListBreak, ListLinks};
pub use mem::{SparseMemory, VirtualMemory};
pub use paging::{ArchRules, NotPresent, PagingMode, PteRules, ARCH_RULES};
pub use scan::{find_dtb_candidates, find_dtb_candidates_in, validate_dtb};

use hangscope_dump::{ErrorKind, PhysAddr, PhysicalMemory, PAGE_SIZE};
use paging::*;
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

/// Formats the raw number, so that `{:#x}` and `{:016x}` print an address
/// exactly as they print a `u64`.
impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl VirtAddr {
    /// Whether bits 63..47 are all equal (a 48-bit canonical address).
    pub fn is_canonical(self) -> bool {
        let top = self.0 >> 47;
        top == 0 || top == 0x1_FFFF
    }

    /// The address `n` bytes further, if it does not wrap.
    pub fn checked_add(self, n: u64) -> Option<VirtAddr> {
        self.0.checked_add(n).map(VirtAddr)
    }
}

/// A page-table base (the physical address of the top table, a PML4 or
/// under 5-level paging a PML5, as in CR3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dtb(pub PhysAddr);

impl Dtb {
    /// The DTB in a CR3 value: drops the PCID / PWT / PCD bits (11..0) and
    /// anything above the 52-bit physical address.
    pub fn from_cr3(cr3: u64) -> Dtb {
        Dtb(PhysAddr(cr3 & ADDR_MASK))
    }
}

/// Why a virtual address cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Not a canonical address (48-bit, or 57-bit under 5-level paging).
    NonCanonical,
    /// A paging entry is not present (level 5 = PML5, 4 = PML4 ... 1 = PTE).
    NotPresent {
        /// Paging level of the entry.
        level: u8,
        /// The raw entry.
        entry: u64,
    },
    /// The operating system keeps the page in RAM but has not mapped it
    /// valid (Windows: a transition PTE). As [`PteRules`] decide.
    Transition {
        /// The raw PTE.
        pte: u64,
    },
    /// The entry points at a shared, operating-system-level descriptor
    /// instead of a frame (Windows: a prototype PTE). As [`PteRules`]
    /// decide.
    Prototype {
        /// The raw PTE.
        pte: u64,
    },
    /// The page is in a page or swap file (Windows: a page-file PTE;
    /// Linux: a swap entry). As [`PteRules`] decide.
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
    /// A present entry sets a bit the processor would fault on (PS in a
    /// PML4 entry): the page tables are corrupt or this is no DTB.
    Reserved {
        /// Paging level of the entry.
        level: u8,
        /// The raw entry.
        entry: u64,
    },
    /// The dump holds the physical page but cannot deliver it (e.g. a
    /// compressed page that does not decompress).
    Unreadable {
        /// The physical address.
        paddr: PhysAddr,
        /// Paging level being read (0 = the data page).
        level: u8,
        /// The physical layer's error.
        reason: String,
    },
    /// A read longer than the caller's cap was refused.
    TooLarge {
        /// Bytes asked for.
        len: u64,
        /// The cap.
        cap: u64,
    },
}

impl FaultKind {
    /// A short stable name for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::NonCanonical => "NonCanonical",
            FaultKind::NotPresent { .. } => "NotPresent",
            FaultKind::Transition { .. } => "Transition",
            FaultKind::Prototype { .. } => "Prototype",
            FaultKind::PagedOut { .. } => "PagedOut",
            FaultKind::NotInDump { .. } => "NotInDump",
            FaultKind::Reserved { .. } => "Reserved",
            FaultKind::Unreadable { .. } => "Unreadable",
            FaultKind::TooLarge { .. } => "TooLarge",
        }
    }
}

/// A failed virtual read: why and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Fault {
    /// Why.
    pub kind: FaultKind,
    /// The virtual address that could not be read.
    pub addr: VirtAddr,
}

impl Fault {
    /// A short stable name for logs and tests (the kind's name).
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read virtual address {}: {}",
            self.addr, self.kind
        )
    }
}

/// The one place fault text is written: why an address cannot be read.
impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::NonCanonical => write!(f, "not a canonical address"),
            FaultKind::NotPresent { level, entry } => {
                write!(f, "{} not present ({entry:#x})", level_name(*level))
            }
            FaultKind::Transition { pte } => {
                write!(
                    f,
                    "page in transition (PTE {pte:#x}; in RAM, not mapped valid)"
                )
            }
            FaultKind::Prototype { pte } => write!(f, "prototype PTE {pte:#x}"),
            FaultKind::PagedOut { pte } => write!(f, "paged out (PTE {pte:#x})"),
            FaultKind::NotInDump { paddr, level } => write!(
                f,
                "{} at physical {paddr} is not in the dump",
                level_name(*level)
            ),
            FaultKind::Reserved { level, entry } => {
                write!(f, "{} {entry:#x} sets a reserved bit", level_name(*level))
            }
            FaultKind::Unreadable {
                paddr,
                level,
                reason,
            } => write!(
                f,
                "{} at physical {paddr} is unreadable: {reason}",
                level_name(*level)
            ),
            FaultKind::TooLarge { len, cap } => {
                write!(f, "read of {len:#x} bytes refused (cap {cap:#x})")
            }
        }
    }
}

/// "PML5E", "PML4E", "PDPTE", "PDE", "PTE" or "data page".
fn level_name(level: u8) -> &'static str {
    match level {
        5 => "PML5E",
        4 => "PML4E",
        3 => "PDPTE",
        2 => "PDE",
        1 => "PTE",
        _ => "data page",
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
    /// What non-present entries mean (the operating system's rules);
    /// [`ARCH_RULES`] unless set with [`AddressSpace::with_rules`].
    pub rules: &'m dyn PteRules,
    /// Four or five levels of tables; [`PagingMode::FourLevel`] unless set
    /// with [`AddressSpace::with_paging`].
    pub paging: PagingMode,
}

impl<'m> AddressSpace<'m> {
    /// An address space over `memory` through `dtb`.
    pub fn new(memory: &'m dyn PhysicalMemory, dtb: Dtb) -> Self {
        AddressSpace {
            memory,
            dtb,
            rules: &ARCH_RULES,
            paging: PagingMode::FourLevel,
        }
    }

    /// The same space, walking `paging`'s number of levels (the guest's
    /// `CR4.LA57`, or what its kernel says it enabled).
    pub fn with_paging(self, paging: PagingMode) -> Self {
        AddressSpace { paging, ..self }
    }

    /// The same space, interpreting non-present entries with `rules`.
    pub fn with_rules(self, rules: &'m dyn PteRules) -> Self {
        AddressSpace { rules, ..self }
    }

    /// Translate one virtual address.
    pub fn translate(&self, va: VirtAddr) -> Result<Translation, Fault> {
        self.walk(va).map_err(|kind| Fault { kind, addr: va })
    }

    /// The page walk; errors without the address.
    fn walk(&self, va: VirtAddr) -> Result<Translation, FaultKind> {
        if !self.paging.is_canonical(va.0) {
            return Err(FaultKind::NonCanonical);
        }
        let mut table = self.dtb.0 .0 & ADDR_MASK;
        let top = self.paging.top_level();
        for level in (1..=top).rev() {
            let entry = read_entry(self.memory, table, table_index(va.0, level), level)?;
            if entry & PRESENT == 0 {
                match self.rules.not_present(entry, level) {
                    NotPresent::InRam(frame) => {
                        // The table or page is in RAM at that frame.
                        let frame = frame.0 & ADDR_MASK;
                        if level == 1 {
                            return Ok(Translation {
                                paddr: PhysAddr(frame | (va.0 & 0xFFF)),
                                page_size: PAGE_SIZE,
                            });
                        }
                        table = frame;
                        continue;
                    }
                    NotPresent::Fault(kind) => return Err(kind),
                }
            }
            if entry & PAGE_SIZE_BIT != 0 {
                match level {
                    4 | 5 => return Err(FaultKind::Reserved { level, entry }),
                    2 | 3 => {
                        let size = level_span(level);
                        let base = entry & ADDR_MASK & !(size - 1);
                        return Ok(Translation {
                            paddr: PhysAddr(base | (va.0 & (size - 1))),
                            page_size: size,
                        });
                    }
                    // In a PTE bit 7 is PAT, not a page size.
                    _ => {}
                }
            }
            if level == 1 {
                return Ok(Translation {
                    paddr: PhysAddr((entry & ADDR_MASK) | (va.0 & 0xFFF)),
                    page_size: PAGE_SIZE,
                });
            }
            table = entry & ADDR_MASK;
        }
        // The loop returns at level 1.
        Err(FaultKind::NonCanonical)
    }

    /// Read `buf.len()` bytes at `va`, crossing pages as needed (the
    /// [`VirtualMemory`] implementation).
    fn read_virtual(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = va.checked_add(done as u64).ok_or(Fault {
                kind: FaultKind::NonCanonical,
                addr: VirtAddr(u64::MAX),
            })?;
            let t = self.translate(a)?;
            let left_in_page = t.page_size - (a.0 & (t.page_size - 1));
            let n = (left_in_page.min((buf.len() - done) as u64)) as usize;
            read_phys(self.memory, t.paddr, &mut buf[done..done + n], 0).map_err(|kind| {
                // Name the first missing byte, not the start of the chunk
                // (a large page may be only partly in the dump).
                let addr = match &kind {
                    FaultKind::NotInDump { paddr, .. } if paddr.0 >= t.paddr.0 => {
                        VirtAddr(a.0 + (paddr.0 - t.paddr.0))
                    }
                    _ => a,
                };
                Fault { kind, addr }
            })?;
            done += n;
        }
        Ok(())
    }

    /// Every mapped page overlapping `[start, end)`, in address order, as
    /// (page start, translation). Non-present subtrees are skipped a whole
    /// table entry at a time, so scanning the kernel half costs the number
    /// of present entries, not 2^36 pages. Page tables absent from the dump
    /// are skipped and counted ([`MappedPages::missing_tables`]); the walk
    /// stops after a budget of tables ([`MappedPages::with_table_budget`])
    /// so corrupt tables cannot make it run for hours.
    pub fn iter_mapped(&self, start: VirtAddr, end: VirtAddr) -> MappedPages<'m> {
        MappedPages::new(*self, start, end)
    }
}

/// Read a page-table entry: table `table`, index `index`, at `level`.
pub(crate) fn read_entry(
    memory: &dyn PhysicalMemory,
    table: u64,
    index: u64,
    level: u8,
) -> Result<u64, FaultKind> {
    let pa = table + index * 8;
    if let Some(page) = memory.page(pa / PAGE_SIZE) {
        let o = (pa % PAGE_SIZE) as usize;
        let mut b = [0u8; 8];
        b.copy_from_slice(&page[o..o + 8]);
        return Ok(u64::from_le_bytes(b));
    }
    let mut b = [0u8; 8];
    read_phys(memory, PhysAddr(pa), &mut b, level)?;
    Ok(u64::from_le_bytes(b))
}

/// Read physical memory, the zero-copy page first, as a fault at `level`.
pub(crate) fn read_phys(
    memory: &dyn PhysicalMemory,
    paddr: PhysAddr,
    buf: &mut [u8],
    level: u8,
) -> Result<(), FaultKind> {
    let within = (paddr.0 % PAGE_SIZE) as usize;
    if within + buf.len() <= PAGE_SIZE as usize {
        if let Some(page) = memory.page(paddr.0 / PAGE_SIZE) {
            buf.copy_from_slice(&page[within..within + buf.len()]);
            return Ok(());
        }
    }
    memory.read(paddr, buf).map_err(|e| match (&e.kind, e.at) {
        (ErrorKind::NotInDump, Some(hangscope_dump::Location::Phys(p))) => {
            FaultKind::NotInDump { paddr: p, level }
        }
        (ErrorKind::NotInDump, _) => FaultKind::NotInDump { paddr, level },
        _ => FaultKind::Unreadable {
            paddr,
            level,
            reason: e.to_string(),
        },
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests5;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
