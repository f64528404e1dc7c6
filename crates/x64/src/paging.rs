//! x86-64 paging constants and the Windows encoding of non-present entries.
//!
//! A non-present entry is classified like the Windows memory manager
//! writes it (`_MMPTE_SOFTWARE`, `_MMPTE_TRANSITION`, `_MMPTE_PROTOTYPE`):
//! bit 10 = prototype, bit 11 (without bit 10) = transition, a page-file
//! offset in bits 63..32 = paged out, anything else (zero, or a
//! demand-zero / no-access software PTE) = not present, with the raw entry
//! kept so the caller can look closer.
//!
//! Caveat: Windows 10 1809+ with the L1TF mitigation XORs software PTEs
//! with `MiInvalidPteMask` (the "swizzle"), so a swizzled demand-zero PTE
//! has bits in 63..32 and reads as [`FaultKind::PagedOut`]. The raw entry is
//! in the fault; the kernel model, which knows the mask, can re-decode it.

use crate::FaultKind;

/// Present.
pub const PRESENT: u64 = 1 << 0;
/// Writable.
pub const WRITABLE: u64 = 1 << 1;
/// User-accessible.
pub const USER: u64 = 1 << 2;
/// Page size: a 1 GiB (PDPTE) or 2 MiB (PDE) page; PAT in a PTE.
pub const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Windows, non-present: prototype PTE.
pub const PROTOTYPE: u64 = 1 << 10;
/// Windows, non-present: transition PTE.
pub const TRANSITION: u64 = 1 << 11;
/// Physical frame bits of an entry (52-bit physical addresses).
pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Bytes one entry maps at `level` (1 = PTE: 4 KiB ... 4 = PML4E: 512 GiB;
/// levels outside 1..=4 are clamped).
pub fn level_span(level: u8) -> u64 {
    1u64 << level_shift(level)
}

/// Index into the table of `level` for virtual address `va`.
pub fn table_index(va: u64, level: u8) -> u64 {
    (va >> level_shift(level)) & 0x1FF
}

fn level_shift(level: u8) -> u32 {
    12 + 9 * (u32::from(level.clamp(1, 4)) - 1)
}

/// A Windows transition entry: not present, transition set, prototype clear.
pub fn is_transition(entry: u64) -> bool {
    entry & PRESENT == 0 && entry & TRANSITION != 0 && entry & PROTOTYPE == 0
}

/// Why a non-present entry at `level` does not map.
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

/// Sign-extend a 48-bit linear address to canonical form.
pub fn canonical(linear: u64) -> u64 {
    if linear & (1 << 47) != 0 {
        linear | 0xFFFF_0000_0000_0000
    } else {
        linear & 0x0000_FFFF_FFFF_FFFF
    }
}
