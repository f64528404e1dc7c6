//! The kernel's virtual address space: which page tables, how many levels,
//! where KASLR put the kernel image, and what Linux means by a
//! non-present page-table entry.

use crate::error::{Error, Result};
use crate::vmcoreinfo::VmcoreInfo;
use hangscope_dump::{CpuState, PhysAddr, PhysicalMemory};
use hangscope_x64::{AddressSpace, Dtb, FaultKind, NotPresent, PagingMode, PteRules, VirtAddr};

/// `__START_KERNEL_map`: where x86-64 Linux maps its image, an
/// architectural constant of the port (arch/x86/include/asm/page_64_types.h):
/// image virtual address = physical address + this - `phys_base`.
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// End of the kernel image region (`__START_KERNEL_map` + the largest
/// `KERNEL_IMAGE_SIZE`, 1 GiB); modules follow it.
pub const KERNEL_IMAGE_END: u64 = 0xffff_ffff_c000_0000;

/// `_PAGE_PROTNONE`: in a non-present entry, the bit that marks a page
/// kept in RAM but made inaccessible (PROT_NONE, NUMA hinting); it is the
/// global bit's position.
const PAGE_PROTNONE: u64 = 1 << 8;

/// Bit 12 of CR3 under page-table isolation: the user half of the pair
/// of page-table roots (`PTI_USER_PGTABLE_BIT`); the kernel's root is the
/// page before.
const PTI_USER_PGTABLE_BIT: u64 = 1 << 12;

/// What x86-64 Linux keeps in non-present entries: swap entries (type and
/// offset, in a PTE whose other bits are non-zero) and PROT_NONE pages.
/// Kernel memory of a hung guest is hardly ever swapped; this gives reads
/// of user pages a clear reason instead of a bare "not present".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinuxPte;

/// The rules every Linux address space uses.
pub static LINUX_PTE: LinuxPte = LinuxPte;

impl PteRules for LinuxPte {
    fn not_present(&self, entry: u64, level: u8) -> NotPresent {
        if level != 1 || entry == 0 {
            return NotPresent::Fault(FaultKind::NotPresent { level, entry });
        }
        if entry & PAGE_PROTNONE != 0 {
            // In RAM but inaccessible; Linux inverts the frame bits of such
            // entries (L1TF), so the page is not read through.
            NotPresent::Fault(FaultKind::Transition { pte: entry })
        } else {
            NotPresent::Fault(FaultKind::PagedOut { pte: entry })
        }
    }
}

/// How the kernel's page tables were chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceChoice {
    /// The page-table root.
    pub dtb: Dtb,
    /// Four or five levels.
    pub paging: PagingMode,
    /// Where the root came from, for `info`.
    pub source: String,
}

/// Physical address of a kernel-image virtual address, given `phys_base`.
pub fn image_phys(va: u64, phys_base: i64) -> Option<u64> {
    let off = va.checked_sub(START_KERNEL_MAP)?;
    off.checked_add_signed(phys_base)
}

/// Whether `space` maps `va` to `pa`.
pub fn maps_to(space: &AddressSpace<'_>, va: u64, pa: u64) -> bool {
    space
        .translate(VirtAddr(va))
        .is_ok_and(|t| t.paddr == PhysAddr(pa))
}

/// Candidate page-table roots from the vCPUs' CR3 (each, and its kernel
/// half under page-table isolation), with the paging mode each CPU's CR4
/// selects, `fallback` when a CPU has no CR4.
pub fn cr3_candidates(cpus: &[CpuState], fallback: PagingMode) -> Vec<(Dtb, PagingMode, String)> {
    let mut out: Vec<(Dtb, PagingMode, String)> = Vec::new();
    for c in cpus {
        let Some(cr3) = c.cr3 else { continue };
        let mode = c.cr4.map_or(fallback, PagingMode::from_cr4);
        for (v, what) in [
            (cr3, ""),
            (cr3 & !PTI_USER_PGTABLE_BIT, " (kernel half under PTI)"),
        ] {
            let dtb = Dtb::from_cr3(v);
            if dtb.0 .0 != 0 && !out.iter().any(|(d, m, _)| *d == dtb && *m == mode) {
                out.push((dtb, mode, format!("CR3 of CPU {}{what}", c.index)));
            }
        }
    }
    out
}

/// Choose the kernel's page tables with VMCOREINFO's help: a vCPU's CR3
/// when it maps the kernel image where `phys_base` says, else
/// `swapper_pg_dir` converted to physical.
pub fn choose_with_vmcoreinfo(
    memory: &dyn PhysicalMemory,
    cpus: &[CpuState],
    vi: &VmcoreInfo,
) -> Result<SpaceChoice> {
    let phys_base = vi
        .phys_base()
        .ok_or_else(|| Error::not_found("VMCOREINFO has no NUMBER(phys_base)"))?;
    let fallback = match vi.pgtable_l5_enabled() {
        Some(true) => PagingMode::FiveLevel,
        _ => PagingMode::FourLevel,
    };
    // A symbol in the image whose physical address follows from phys_base.
    let probe = ["swapper_pg_dir", "init_top_pgt", "_stext"]
        .iter()
        .find_map(|s| vi.symbol(s))
        .ok_or_else(|| Error::not_found("VMCOREINFO names no kernel-image symbol"))?;
    let probe_pa = image_phys(probe, phys_base).ok_or_else(|| {
        Error::not_found(format!(
            "symbol {probe:#x} is not in the kernel image region (phys_base {phys_base})"
        ))
    })?;
    for (dtb, mode, source) in cr3_candidates(cpus, fallback) {
        let space = AddressSpace::new(memory, dtb).with_paging(mode);
        if maps_to(&space, probe, probe_pa) {
            return Ok(SpaceChoice {
                dtb,
                paging: mode,
                source,
            });
        }
    }
    let pgd = vi
        .symbol("swapper_pg_dir")
        .or_else(|| vi.symbol("init_top_pgt"))
        .ok_or_else(|| Error::not_found("VMCOREINFO has no SYMBOL(swapper_pg_dir)"))?;
    let pgd_pa = image_phys(pgd, phys_base)
        .ok_or_else(|| Error::not_found(format!("swapper_pg_dir {pgd:#x} is outside the image")))?;
    let dtb = Dtb(PhysAddr(pgd_pa));
    let space = AddressSpace::new(memory, dtb).with_paging(fallback);
    if !maps_to(&space, probe, probe_pa) {
        return Err(Error::not_found(format!(
            "neither a vCPU's CR3 nor swapper_pg_dir (physical {pgd_pa:#x}) maps the kernel \
             image where VMCOREINFO's phys_base ({phys_base}) puts it"
        )));
    }
    Ok(SpaceChoice {
        dtb,
        paging: fallback,
        source: "swapper_pg_dir (VMCOREINFO)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_pte_rules_name_swap_and_protnone() {
        let r = LinuxPte;
        assert_eq!(
            r.not_present(0, 1),
            NotPresent::Fault(FaultKind::NotPresent { level: 1, entry: 0 })
        );
        assert_eq!(
            r.not_present(0x1234_5600, 1),
            NotPresent::Fault(FaultKind::PagedOut { pte: 0x1234_5600 })
        );
        assert_eq!(
            r.not_present(0x8000_0000_4000_0100, 1),
            NotPresent::Fault(FaultKind::Transition {
                pte: 0x8000_0000_4000_0100
            })
        );
        assert_eq!(
            r.not_present(0x1234_5600, 2),
            NotPresent::Fault(FaultKind::NotPresent {
                level: 2,
                entry: 0x1234_5600
            })
        );
    }

    #[test]
    fn image_addresses_follow_phys_base() {
        assert_eq!(
            image_phys(0xffff_ffff_b461_0000, -700_448_768),
            Some(0x0aa1_0000)
        );
        assert_eq!(image_phys(0xffff_8880_0000_0000, 0), None);
        assert_eq!(image_phys(START_KERNEL_MAP, -1), None);
    }

    #[test]
    fn cr3_candidates_add_the_pti_kernel_root_once() {
        let cpus = vec![
            CpuState {
                index: 0,
                cr3: Some(0x0aa1_1000 | 0x5),
                cr4: Some(0x1000),
                ..Default::default()
            },
            CpuState {
                index: 1,
                cr3: Some(0x0aa1_0000),
                ..Default::default()
            },
        ];
        let c = cr3_candidates(&cpus, PagingMode::FourLevel);
        let got: Vec<_> = c.iter().map(|(d, m, _)| (d.0 .0, *m)).collect();
        assert_eq!(
            got,
            vec![
                (0x0aa1_1000, PagingMode::FiveLevel),
                (0x0aa1_0000, PagingMode::FiveLevel),
                (0x0aa1_0000, PagingMode::FourLevel),
            ]
        );
    }
}
