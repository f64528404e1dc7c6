//! x86-64 paging constants, and the hook through which an operating
//! system says what its non-present entries mean.
//!
//! The processor ignores every bit of an entry whose present bit is clear;
//! operating systems keep their own state there (Windows: transition and
//! prototype PTEs, page-file offsets; Linux: swap entries). This crate
//! knows only the architecture: the page walk hands each non-present entry
//! to a [`PteRules`] implementation, which the kernel model supplies
//! (`hangscope-nt` has Windows' rules). Without one ([`ArchRules`]) every
//! non-present entry is [`FaultKind::NotPresent`].

use crate::FaultKind;
use hangscope_dump::PhysAddr;

/// Present.
pub const PRESENT: u64 = 1 << 0;
/// Writable.
pub const WRITABLE: u64 = 1 << 1;
/// User-accessible.
pub const USER: u64 = 1 << 2;
/// Page size: a 1 GiB (PDPTE) or 2 MiB (PDE) page; PAT in a PTE.
pub const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Physical frame bits of an entry (52-bit physical addresses).
pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Bytes one entry maps at `level` (1 = PTE: 4 KiB ... 4 = PML4E: 512 GiB,
/// 5 = PML5E: 256 TiB; levels outside 1..=5 are clamped).
pub fn level_span(level: u8) -> u64 {
    1u64 << level_shift(level)
}

/// Index into the table of `level` for virtual address `va`.
pub fn table_index(va: u64, level: u8) -> u64 {
    (va >> level_shift(level)) & 0x1FF
}

fn level_shift(level: u8) -> u32 {
    12 + 9 * (u32::from(level.clamp(1, 5)) - 1)
}

/// Bit 12 of CR4: 57-bit linear addresses, five paging levels.
pub const CR4_LA57: u64 = 1 << 12;

/// How many levels of tables the processor walks. Four is the default
/// (and the only mode Windows uses); five (`CR4.LA57`) widens linear
/// addresses to 57 bits with a PML5 table above the PML4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PagingMode {
    /// PML4 -> PDPT -> PD -> PT: 48-bit linear addresses.
    #[default]
    FourLevel,
    /// PML5 -> PML4 -> PDPT -> PD -> PT: 57-bit linear addresses.
    FiveLevel,
}

impl PagingMode {
    /// The mode a CR4 value selects (`CR4.LA57`).
    pub fn from_cr4(cr4: u64) -> PagingMode {
        if cr4 & CR4_LA57 != 0 {
            PagingMode::FiveLevel
        } else {
            PagingMode::FourLevel
        }
    }

    /// The level of the top table (4 = PML4, 5 = PML5).
    pub fn top_level(self) -> u8 {
        match self {
            PagingMode::FourLevel => 4,
            PagingMode::FiveLevel => 5,
        }
    }

    /// Width of a linear address in bits (48 or 57).
    pub fn linear_bits(self) -> u32 {
        match self {
            PagingMode::FourLevel => 48,
            PagingMode::FiveLevel => 57,
        }
    }

    /// Whether `va` is canonical in this mode: every bit above the
    /// linear width equals the top bit of the linear address.
    pub fn is_canonical(self, va: u64) -> bool {
        let top = va >> (self.linear_bits() - 1);
        top == 0 || top == (u64::MAX >> (self.linear_bits() - 1))
    }

    /// Sign-extend a linear address of this mode's width.
    pub fn canonical(self, linear: u64) -> u64 {
        let bits = self.linear_bits();
        let mask = (1u64 << bits) - 1;
        if linear & (1 << (bits - 1)) != 0 {
            linear | !mask
        } else {
            linear & mask
        }
    }
}

/// What an operating system's memory manager means by a non-present
/// paging entry. The walker calls it for every entry whose present bit is
/// clear, at every level; implementations must not panic on any entry.
pub trait PteRules: Send + Sync + std::fmt::Debug {
    /// The meaning of the non-present `entry` found at `level` (4 = PML4E
    /// ... 1 = PTE).
    fn not_present(&self, entry: u64, level: u8) -> NotPresent;
}

/// What a non-present entry means, as [`PteRules`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotPresent {
    /// The access faults, for this reason.
    Fault(FaultKind),
    /// The operating system still keeps the next table (or, at level 1,
    /// the page) in RAM at this frame, although the entry is not valid: the
    /// walk goes on through it (Windows: a transition PTE, when asked to).
    InRam(PhysAddr),
}

/// The architecture alone: every non-present entry is
/// [`FaultKind::NotPresent`] with the raw entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchRules;

/// The rules an [`crate::AddressSpace`] starts with.
pub static ARCH_RULES: ArchRules = ArchRules;

impl PteRules for ArchRules {
    fn not_present(&self, entry: u64, level: u8) -> NotPresent {
        NotPresent::Fault(FaultKind::NotPresent { level, entry })
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
