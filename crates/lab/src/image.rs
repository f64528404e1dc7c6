//! The built image, before it is written in a dump format.
//!
//! CONTRACT between the image builder and the format writers: additive
//! changes only.

use std::collections::HashMap;

/// Page size of every stored page.
pub const PAGE_SIZE: u64 = 0x1000;

/// One vCPU's registers, as the writers put them in ELF notes and crash
/// dump contexts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabCpu {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15.
    pub gpr: [u64; 16],
    /// Instruction pointer.
    pub rip: u64,
    /// Flags.
    pub rflags: u64,
    /// cs, ds, es, fs, gs, ss selectors.
    pub selectors: [u16; 6],
    /// FS base.
    pub fs_base: u64,
    /// GS base: the CPU's KPCR in kernel mode.
    pub gs_base: u64,
    /// Kernel GS base (the user-mode GS while in kernel mode).
    pub kernel_gs_base: u64,
    /// CR0.
    pub cr0: u64,
    /// CR2.
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
}

/// Facts about the image that dump headers carry (crash dump header,
/// KDBG, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabKernelFacts {
    /// Kernel page-table base (physical).
    pub dtb: u64,
    /// Kernel image base (virtual).
    pub kernel_base: u64,
    /// `KdDebuggerDataBlock` (virtual).
    pub kd_debugger_data_block: u64,
    /// `PsActiveProcessHead` (virtual).
    pub ps_active_process_head: u64,
    /// `PsLoadedModuleList` (virtual).
    pub ps_loaded_module_list: u64,
    /// `MmPfnDatabase` value (virtual).
    pub pfn_database: u64,
    /// Windows major version (6 or 10).
    pub major_version: u32,
    /// Windows minor version.
    pub minor_version: u32,
    /// Build number.
    pub build_number: u32,
    /// Number of processors.
    pub number_processors: u32,
    /// System time as a FILETIME (100 ns since 1601).
    pub system_time: u64,
    /// PDB GUID of the kernel (32 hex digits) and age.
    pub pdb_guid: String,
    /// PDB age.
    pub pdb_age: u32,
}

/// A synthetic machine's physical memory: RAM ranges, the pages the
/// builder wrote, and deterministic filler for the rest.
#[derive(Debug, Clone, Default)]
pub struct LabImage {
    /// RAM ranges (start, length) in bytes, ascending, page aligned: what
    /// a dump of this machine contains (e.g. QEMU's 0..0xA0000 hole).
    pub ram: Vec<(u64, u64)>,
    /// Pages the builder wrote, by page frame number.
    pub pages: HashMap<u64, Box<[u8; PAGE_SIZE as usize]>>,
    /// Seed for filler pages (pages of RAM the builder did not write).
    pub filler_seed: u64,
    /// Every vCPU.
    pub cpus: Vec<LabCpu>,
    /// Header facts.
    pub facts: LabKernelFacts,
}

impl LabImage {
    /// Total RAM bytes.
    pub fn ram_size(&self) -> u64 {
        self.ram.iter().map(|r| r.1).sum()
    }

    /// The content of page `pfn` into `out`: a written page, or filler.
    /// Filler is cheap deterministic noise (so memory is not all zeros),
    /// except that a fraction of pages are zero, as in real machines.
    pub fn page_into(&self, pfn: u64, out: &mut [u8; PAGE_SIZE as usize]) {
        if let Some(p) = self.pages.get(&pfn) {
            out.copy_from_slice(&p[..]);
            return;
        }
        let mut x = self.filler_seed ^ pfn.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if x % 4 == 0 {
            out.fill(0);
            return;
        }
        for chunk in out.chunks_exact_mut(8) {
            // xorshift64*: fast enough to write gigabytes per second.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            chunk.copy_from_slice(&v.to_le_bytes());
        }
    }
}
