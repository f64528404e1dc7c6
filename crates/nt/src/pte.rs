//! Windows' meaning of non-present paging entries: the rules the x86-64
//! page walk asks for ([`hangscope_x64::PteRules`]), as the memory manager
//! writes them (`_MMPTE_SOFTWARE`, `_MMPTE_TRANSITION`, `_MMPTE_PROTOTYPE`):
//! bit 10 = prototype, bit 11 (without bit 10) = transition, a page-file
//! offset in bits 63..32 = paged out, anything else (zero, or a demand-zero
//! / no-access software PTE) = not present, with the raw entry kept so the
//! caller can look closer.
//!
//! The bit positions are the hardware-defined software-available bits the
//! memory manager has used on every x64 build (they are also
//! `_MMPTE_TRANSITION.Transition` and `_MMPTE_PROTOTYPE.Prototype` in the
//! symbols); the page walk runs before any symbol table is known, so they
//! are constants here.
//!
//! Caveat: Windows 10 1809+ with the L1TF mitigation XORs software PTEs
//! with `MiInvalidPteMask` (the "swizzle"), so a swizzled demand-zero PTE
//! has bits in 63..32 and reads as [`FaultKind::PagedOut`]. The raw entry is
//! in the fault.

use hangscope_dump::PhysAddr;
use hangscope_x64::paging::{ADDR_MASK, PRESENT};
use hangscope_x64::{FaultKind, NotPresent, PteRules};

/// Non-present: prototype PTE (`_MMPTE_PROTOTYPE.Prototype`).
pub const PROTOTYPE: u64 = 1 << 10;
/// Non-present: transition PTE (`_MMPTE_TRANSITION.Transition`).
pub const TRANSITION: u64 = 1 << 11;

/// Windows' rules for non-present entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowsPte {
    /// Whether transition pages (still in RAM, on a standby or modified
    /// list) are read as if valid. Off in [`WINDOWS_PTE`]: the page's
    /// content is usually right but no longer guaranteed to belong to this
    /// address.
    pub read_transition: bool,
}

/// Windows' rules; transition pages fault with [`FaultKind::Transition`].
pub static WINDOWS_PTE: WindowsPte = WindowsPte {
    read_transition: false,
};

/// Windows' rules, reading transition pages through their frame.
pub static WINDOWS_PTE_READ_TRANSITION: WindowsPte = WindowsPte {
    read_transition: true,
};

/// A Windows transition entry: not present, transition set, prototype clear.
pub fn is_transition(entry: u64) -> bool {
    entry & PRESENT == 0 && entry & TRANSITION != 0 && entry & PROTOTYPE == 0
}

/// Why a non-present entry at `level` does not map, in Windows' terms.
pub fn classify_not_present(entry: u64, level: u8) -> FaultKind {
    if entry == 0 {
        FaultKind::NotPresent { level, entry }
    } else if entry & PROTOTYPE != 0 {
        FaultKind::Prototype { pte: entry }
    } else if entry & TRANSITION != 0 {
        FaultKind::Transition { pte: entry }
    } else if entry >> 32 != 0 {
        FaultKind::PagedOut { pte: entry }
    } else {
        FaultKind::NotPresent { level, entry }
    }
}

impl PteRules for WindowsPte {
    fn not_present(&self, entry: u64, level: u8) -> NotPresent {
        if self.read_transition && is_transition(entry) {
            return NotPresent::InRam(PhysAddr(entry & ADDR_MASK));
        }
        NotPresent::Fault(classify_not_present(entry, level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_dump::VecMemory;
    use hangscope_x64::{AddressSpace, Dtb, VirtAddr, VirtualMemory};

    const K: u64 = 0xFFFF_F800_0000_0000;

    /// Page tables for `K` (PML4 at 0x1000 .. PT at 0x4000) with the PTEs
    /// of pages 0.. set to `ptes`.
    fn tables(ptes: &[u64]) -> VecMemory {
        let mut m = VecMemory::new();
        m.write_u64(PhysAddr(0x1000 + 0x1F0 * 8), 0x2000 | 0x3);
        m.write_u64(PhysAddr(0x2000), 0x3000 | 0x3);
        m.write_u64(PhysAddr(0x3000), 0x4000 | 0x3);
        for (i, e) in ptes.iter().enumerate() {
            m.write_u64(PhysAddr(0x4000 + 8 * i as u64), *e);
        }
        m
    }

    #[test]
    fn every_windows_fault_kind() {
        let m = tables(&[
            0,
            0x3_0000 | 0x800 | 0x80,
            0xFFFF_A800_0000_0400,
            0x0000_1234_0000_0080,
            0x80,
        ]);
        let s = AddressSpace::new(&m, Dtb(PhysAddr(0x1000))).with_rules(&WINDOWS_PTE);
        let kind = |i: u64| s.read_u8(VirtAddr(K + i * 0x1000)).unwrap_err().kind;
        assert_eq!(kind(0), FaultKind::NotPresent { level: 1, entry: 0 });
        assert_eq!(
            kind(1),
            FaultKind::Transition {
                pte: 0x3_0000 | 0x880
            }
        );
        assert_eq!(
            kind(2),
            FaultKind::Prototype {
                pte: 0xFFFF_A800_0000_0400
            }
        );
        assert_eq!(
            kind(3),
            FaultKind::PagedOut {
                pte: 0x0000_1234_0000_0080
            }
        );
        assert_eq!(
            kind(4),
            FaultKind::NotPresent {
                level: 1,
                entry: 0x80
            }
        );
    }

    #[test]
    fn transition_pages_are_opt_in() {
        let mut m = tables(&[0x3_0000 | 0x800, 0x3_0000 | 0xC00]);
        m.write_u64(PhysAddr(0x3_0040), 42);
        let s = AddressSpace::new(&m, Dtb(PhysAddr(0x1000))).with_rules(&WINDOWS_PTE);
        assert_eq!(
            s.read_u64(VirtAddr(K + 0x40)).unwrap_err().name(),
            "Transition"
        );
        let s = s.with_rules(&WINDOWS_PTE_READ_TRANSITION);
        assert_eq!(s.read_u64(VirtAddr(K + 0x40)).unwrap(), 42);
        assert_eq!(s.iter_mapped(VirtAddr(K), VirtAddr(K + 0x10000)).count(), 1);
        // Prototype PTEs stay faults even then.
        assert_eq!(
            s.read_u64(VirtAddr(K + 0x1000)).unwrap_err().name(),
            "Prototype"
        );
    }
}
