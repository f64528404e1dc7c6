//! Finding the kernel in a dump with no header: the page-table base, the
//! kernel image (by its PE debug record), and its symbol table.

use crate::error::{Error, ErrorKind, Result};
use crate::model::PdbInfo;
use hangscope_dump::{Dump, PhysAddr, PhysicalMemory};
use hangscope_pe::PeHeaders;
use hangscope_symbols::{PdbIdentity, SymbolStore, SymbolTable};
use hangscope_x64::{AddressSpace, Dtb, FaultKind, VirtAddr, VirtualMemory};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `KUSER_SHARED_DATA`'s fixed kernel address on x64 (every build).
pub const KUSER_SHARED_DATA: u64 = 0xFFFF_F780_0000_0000;

/// PDB names the NT kernel has shipped under.
pub const KERNEL_PDB_NAMES: &[&str] = &[
    "ntkrnlmp.pdb",
    "ntoskrnl.pdb",
    "ntkrnlpa.pdb",
    "ntkrpamp.pdb",
];

/// Kernel-space windows scanned for the kernel image: Win7's fixed system
/// region and the Win10 KASLR region both sit in PML4 slot 0x1F0.
const KERNEL_SCAN_RANGES: &[(u64, u64)] = &[(0xFFFF_F800_0000_0000, 0xFFFF_F880_0000_0000)];

/// How far back from a CPU's instruction pointer to look for the image start.
const RIP_SCAN_BACK: u64 = 32 << 20;

/// Most mapped pages the full kernel-space scan inspects.
const MAX_SCAN_PAGES: u64 = 1 << 22;

/// A kernel image found in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    /// Image base.
    pub base: VirtAddr,
    /// PE SizeOfImage.
    pub size: u64,
    /// RSDS identity.
    pub pdb: PdbInfo,
}

/// Format a GUID from its 16 RSDS bytes in symbol-server order.
pub use hangscope_pe::guid_string;

/// Parse the PE image at `base` (through `hangscope-pe`): SizeOfImage and
/// its CodeView RSDS record. `None` when it is no PE32+ image with a
/// readable RSDS record.
pub fn parse_pe(mem: &dyn VirtualMemory, base: VirtAddr) -> Option<KernelImage> {
    let pe = PeHeaders::read(mem, base, u64::MAX).ok()?;
    let cv = pe.codeview(mem)?;
    Some(KernelImage {
        base,
        size: pe.size,
        pdb: PdbInfo {
            guid: cv.guid_string(),
            name: cv.pdb_name,
            age: cv.age,
        },
    })
}

/// True when a PDB name (possibly a path) is one of the NT kernel's.
pub fn is_kernel_pdb(name: &str) -> bool {
    let file = name.rsplit(['\\', '/']).next().unwrap_or(name);
    KERNEL_PDB_NAMES
        .iter()
        .any(|k| k.eq_ignore_ascii_case(file))
}

fn kernel_at(mem: &dyn VirtualMemory, va: VirtAddr) -> Option<KernelImage> {
    let mut mz = [0u8; 2];
    mem.read(va, &mut mz).ok()?;
    if &mz != b"MZ" {
        return None;
    }
    parse_pe(mem, va).filter(|k| is_kernel_pdb(&k.pdb.name))
}

/// Look back from `va` (e.g. a CPU's RIP in the kernel) page by page for
/// the kernel image's start.
pub fn kernel_before(mem: &dyn VirtualMemory, va: VirtAddr) -> Option<KernelImage> {
    let start = va.0 & !0xfff;
    let mut p = start;
    while start - p <= RIP_SCAN_BACK {
        if let Some(k) = kernel_at(mem, VirtAddr(p)) {
            if va.0 < p.saturating_add(k.size) {
                return Some(k);
            }
        }
        p = p.checked_sub(0x1000)?;
    }
    None
}

/// Scan kernel space for the kernel image, skipping unmapped space a whole
/// paging level at a time.
pub fn scan_kernel(space: &AddressSpace<'_>) -> Option<KernelImage> {
    let mut inspected = 0u64;
    for &(lo, hi) in KERNEL_SCAN_RANGES {
        let mut va = lo;
        while va < hi && inspected < MAX_SCAN_PAGES {
            match space.translate(VirtAddr(va)) {
                Ok(t) => {
                    // Every 4 KiB page of the mapping may start an image.
                    let end = (va | (t.page_size - 1)).saturating_add(1).min(hi);
                    while va < end {
                        inspected += 1;
                        if let Some(k) = kernel_at(space, VirtAddr(va)) {
                            return Some(k);
                        }
                        va += 0x1000;
                    }
                }
                Err(f) => {
                    let span: u64 = match f.kind {
                        FaultKind::NotPresent { level: 4, .. } => 1 << 39,
                        FaultKind::NotPresent { level: 3, .. } => 1 << 30,
                        FaultKind::NotPresent { level: 2, .. } => 1 << 21,
                        FaultKind::NotInDump { level: 3, .. } => 1 << 39,
                        FaultKind::NotInDump { level: 2, .. } => 1 << 30,
                        FaultKind::NotInDump { level: 1, .. } => 1 << 21,
                        _ => 1 << 12,
                    };
                    va = (va & !(span - 1)).saturating_add(span);
                }
            }
        }
    }
    None
}

/// True when `dtb` maps kernel space: KUSER_SHARED_DATA, at the same
/// address in every x64 build, translates to a page in the dump.
pub fn validate_dtb(mem: &dyn PhysicalMemory, dtb: u64) -> bool {
    let space = AddressSpace::new(mem, Dtb(PhysAddr(dtb & 0x000F_FFFF_FFFF_F000)))
        .with_rules(&crate::pte::WINDOWS_PTE);
    let mut v = [0u8; 8];
    space.read(VirtAddr(KUSER_SHARED_DATA), &mut v).is_ok()
}

/// Where the kernel's DTB came from, for `info`.
pub fn find_dtb(dump: &Dump, notes: &mut Vec<String>) -> Result<u64> {
    for c in &dump.cpus {
        if let Some(cr3) = c.cr3 {
            let d = cr3 & 0x000F_FFFF_FFFF_F000;
            if validate_dtb(dump.memory.as_ref(), d) {
                notes.push(format!("DTB {d:#x} from CPU {}'s CR3", c.index));
                return Ok(d);
            }
            notes.push(format!(
                "CPU {}'s CR3 {cr3:#x} does not map kernel space",
                c.index
            ));
        }
    }
    if let Some(d) = dump.hints.dtb {
        let d = d & 0x000F_FFFF_FFFF_F000;
        if validate_dtb(dump.memory.as_ref(), d) {
            notes.push(format!("DTB {d:#x} from the dump header"));
            return Ok(d);
        }
        notes.push(format!("the header's DTB {d:#x} does not map kernel space"));
    }
    // Windows puts the System process's PML4 in low memory: look there
    // first, then everywhere.
    let mem = dump.memory.as_ref();
    let mut cands: Vec<u64> =
        hangscope_x64::find_dtb_candidates_in(mem, PhysAddr(0), PhysAddr(64 << 20))
            .into_iter()
            .map(|d| d.0 .0)
            .filter(|&d| validate_dtb(mem, d))
            .collect();
    if cands.is_empty() {
        cands = hangscope_x64::find_dtb_candidates(mem)
            .into_iter()
            .map(|d| d.0 .0)
            .filter(|&d| validate_dtb(mem, d))
            .collect();
    }
    if let Some(&d) = cands.first() {
        notes.push(format!(
            "DTB {d:#x} from a scan for self-referencing page tables ({} candidates)",
            cands.len()
        ));
        return Ok(d);
    }
    Err(Error {
        kind: ErrorKind::KernelNotFound(
            "no page-table base maps kernel space (no usable CR3, header DTB or \
             self-referencing PML4 in the dump)"
                .into(),
        ),
        at: None,
        via: None,
    })
}

/// Find the kernel image: CPU instruction pointers, the KDBG header hint,
/// then a scan of kernel space.
pub fn find_kernel(
    dump: &Dump,
    space: &AddressSpace<'_>,
    notes: &mut Vec<String>,
) -> Result<KernelImage> {
    for c in &dump.cpus {
        if c.rip >= crate::kernel::KERNEL_SPACE_START {
            if let Some(k) = kernel_before(space, VirtAddr(c.rip)) {
                notes.push(format!(
                    "kernel base {} found back from CPU {}'s RIP",
                    k.base, c.index
                ));
                return Ok(k);
            }
        }
    }
    if let Some(kdbg) = dump.hints.kd_debugger_data_block {
        // _KDDEBUGGER_DATA64 is a fixed public format (wdbgexts.h): the
        // OwnerTag 'KDBG' at +0x10 and KernBase at +0x18.
        let mut b = [0u8; 0x20];
        if space.read(VirtAddr(kdbg), &mut b).is_ok() && &b[0x10..0x14] == b"KDBG" {
            let base = u64::from_le_bytes(b[0x18..0x20].try_into().unwrap_or([0; 8]));
            if let Some(k) = kernel_at(space, VirtAddr(base)) {
                notes.push(format!("kernel base {} from the header's KDBG", k.base));
                return Ok(k);
            }
        }
    }
    if let Some(k) = scan_kernel(space) {
        notes.push(format!(
            "kernel base {} from a scan of kernel space",
            k.base
        ));
        return Ok(k);
    }
    Err(Error {
        kind: ErrorKind::KernelNotFound(
            "no PE image with an NT kernel RSDS record (ntkrnlmp.pdb, ntoskrnl.pdb, ...) \
             in kernel space fffff800`00000000-fffff880`00000000"
                .into(),
        ),
        at: None,
        via: None,
    })
}

/// Where to find the kernel's symbol table (and its drivers': see
/// [`SymbolSource::find_module`]). Cheap to clone: the store is shared.
#[derive(Debug, Default, Clone)]
pub struct SymbolSource {
    /// A table to use as is (its identity is not checked against the dump).
    pub table: Option<SymbolTable>,
    /// A symbol store (`_NT_SYMBOL_PATH` syntax: ISF and PDB files by
    /// GUID and age), shared with the kernel opened from it.
    pub store: Option<Arc<SymbolStore>>,
    /// Extra directories searched for `<pdb>/<GUID>-<AGE>.json[.xz]`
    /// ISF files (also under `windows/`).
    pub dirs: Vec<PathBuf>,
}

impl SymbolSource {
    /// Use this table.
    pub fn from_table(t: SymbolTable) -> SymbolSource {
        SymbolSource {
            table: Some(t),
            ..Default::default()
        }
    }

    /// Use this store.
    pub fn from_store(s: SymbolStore) -> SymbolSource {
        SymbolSource {
            store: Some(Arc::new(s)),
            ..Default::default()
        }
    }

    /// From a `_NT_SYMBOL_PATH`-style spec, through `SymbolStore`.
    pub fn from_path_spec(spec: &str) -> Result<SymbolSource> {
        let store = SymbolStore::from_path_spec(spec).map_err(|e| Error {
            kind: ErrorKind::Dump(format!("symbol path `{spec}`: {e}")),
            at: None,
            via: None,
        })?;
        Ok(SymbolSource::from_store(store))
    }

    /// Add a directory to search.
    pub fn add_dir(&mut self, d: impl Into<PathBuf>) {
        self.dirs.push(d.into());
    }

    /// The Volatility-layout ISF files for `id` under `dir` (the layout
    /// is hangscope-symbols' to know).
    pub(crate) fn candidates(dir: &Path, id: &PdbInfo) -> Vec<PathBuf> {
        id.identity().isf_candidates(dir, true)
    }

    /// Load the table for this kernel, or say exactly what to fetch.
    pub fn find(&self, id: &PdbInfo) -> Result<(SymbolTable, String)> {
        if let Some(t) = &self.table {
            return Ok((t.clone(), "table given by the caller".into()));
        }
        let mut searched = Vec::new();
        if let Some(store) = &self.store {
            match store.find(&id.identity()) {
                Ok(t) => {
                    let origin = table_origin(&t);
                    return Ok((t, origin));
                }
                Err(e) => searched.push(format!("symbol path ({e})")),
            }
        }
        for d in &self.dirs {
            for p in Self::candidates(d, id) {
                if p.is_file() {
                    match SymbolTable::load_isf(&p) {
                        Ok(t) => return Ok((t, p.display().to_string())),
                        Err(e) => searched.push(format!("{} ({e})", p.display())),
                    }
                }
            }
            searched.push(d.display().to_string());
        }
        Err(Error {
            kind: ErrorKind::SymbolsNotFound {
                pdb: id.name.clone(),
                guid: id.guid.clone(),
                age: id.age,
                searched,
            },
            at: None,
            via: None,
        })
    }
}

/// The identity a symbol table must have for this kernel.
pub fn identity_of(k: &KernelImage) -> PdbIdentity {
    k.pdb.identity()
}

/// Where a table loaded from a store came from, for `info` and notes.
pub(crate) fn table_origin(t: &SymbolTable) -> String {
    t.source()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "symbol store".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_x64::SparseMemory;

    fn pe(mem: &mut SparseMemory, base: u64, pdb: &str) {
        let mut h = vec![0u8; 0x1000];
        h[..2].copy_from_slice(b"MZ");
        h[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        h[0x80..0x84].copy_from_slice(b"PE\0\0");
        h[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        h[0x94..0x96].copy_from_slice(&0xf0u16.to_le_bytes());
        let opt = 0x80 + 24;
        h[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        h[opt + 56..opt + 60].copy_from_slice(&0x80_0000u32.to_le_bytes());
        h[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        h[opt + 160..opt + 164].copy_from_slice(&0x2000u32.to_le_bytes());
        h[opt + 164..opt + 168].copy_from_slice(&28u32.to_le_bytes());
        mem.write(base, &h);
        let mut d = vec![0u8; 28];
        d[12..16].copy_from_slice(&2u32.to_le_bytes());
        d[16..20].copy_from_slice(&(24 + pdb.len() as u32 + 1).to_le_bytes());
        d[20..24].copy_from_slice(&0x3000u32.to_le_bytes());
        mem.write(base + 0x2000, &d);
        let mut cv = b"RSDS".to_vec();
        cv.extend_from_slice(&[
            0x13, 0x74, 0x9e, 0x33, 0x76, 0x35, 0x9c, 0x43, 0xbc, 0xdf, 0x7e, 0x02, 0x29, 0xda,
            0x37, 0x73,
        ]);
        cv.extend_from_slice(&1u32.to_le_bytes());
        cv.extend_from_slice(pdb.as_bytes());
        cv.push(0);
        mem.write(base + 0x3000, &cv);
    }

    #[test]
    fn rsds_identity_reads_in_symbol_server_order() {
        let mut m = SparseMemory::new();
        pe(&mut m, 0xfffff800_02800000, "ntkrnlmp.pdb");
        let k = parse_pe(&m, VirtAddr(0xfffff800_02800000)).expect("pe");
        assert_eq!(k.pdb.guid, "339E74133576439CBCDF7E0229DA3773");
        assert_eq!(k.pdb.age, 1);
        assert_eq!(k.pdb.name, "ntkrnlmp.pdb");
        assert_eq!(k.size, 0x80_0000);
    }

    #[test]
    fn kernel_found_back_from_rip_but_not_a_driver() {
        let mut m = SparseMemory::new();
        pe(&mut m, 0xfffff800_02800000, "ntkrnlmp.pdb");
        pe(&mut m, 0xfffff800_02000000, "hal.pdb");
        for p in (0x4000..0x40_0000u64).step_by(0x1000) {
            m.write(0xfffff800_02800000 + p, &[0x90]);
        }
        let k = kernel_before(&m, VirtAddr(0xfffff800_02b12345)).expect("kernel");
        assert_eq!(k.base, VirtAddr(0xfffff800_02800000));
        assert!(kernel_before(&m, VirtAddr(0xfffff800_02012345)).is_none());
    }
}
