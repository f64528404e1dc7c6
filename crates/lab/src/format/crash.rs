//! Windows x64 crash dumps (`PAGEDU64`), as the kernel's crash dump
//! writer lays them out.
//!
//! The file starts with a 0x2000-byte `_DUMP_HEADER64`. Windows first
//! fills the whole header with the ASCII pattern `PAGE` and then writes
//! the fields it knows, so every field left unset reads `PAGE`; we do the
//! same. Field offsets (`_DUMP_HEADER64`, x64 `CONTEXT`,
//! `EXCEPTION_RECORD64`, `_SUMMARY_DUMP`) are those of the Windows
//! headers, as Volatility's `crash64.json`/`crash_common.json`, rekall and
//! kdmp-parser describe them.
//!
//! - DumpType 1 (full): the `_PHYSICAL_MEMORY_DESCRIPTOR64` runs, stored
//!   back to back from file offset 0x2000.
//! - DumpType 5 (full bitmap) and 6 (kernel bitmap): a `_SUMMARY_DUMP` at
//!   0x2000 whose bitmap has bit N set when PFN N is stored; the stored
//!   pages follow at `HeaderSize`, in PFN order.

use std::collections::HashSet;

use super::{ErrorKind, PageSink, PutLe};
use crate::image::{LabCpu, LabImage, PAGE_SIZE};

/// Size of `_DUMP_HEADER64`.
pub const HEADER_SIZE: usize = 0x2000;
/// `Signature`: "PAGE".
pub const SIGNATURE: &[u8; 4] = b"PAGE";
/// `ValidDump` of a 64-bit dump: "DU64".
pub const VALID_DUMP64: &[u8; 4] = b"DU64";
/// `MajorVersion` of a free (retail) build.
pub const MAJOR_VERSION_FREE: u32 = 0xF;
/// `MachineImageType` for x64.
pub const IMAGE_FILE_MACHINE_AMD64: u32 = 0x8664;
/// Bug check `MANUALLY_INITIATED_CRASH`: the keyboard or NMI-triggered
/// crash an operator uses on a hung machine.
pub const MANUALLY_INITIATED_CRASH: u32 = 0xE2;

/// Offsets in `_DUMP_HEADER64`.
pub mod off {
    /// `MajorVersion` u32.
    pub const MAJOR_VERSION: usize = 0x8;
    /// `MinorVersion` u32: the build number.
    pub const MINOR_VERSION: usize = 0xC;
    /// `DirectoryTableBase` u64.
    pub const DIRECTORY_TABLE_BASE: usize = 0x10;
    /// `PfnDataBase` u64.
    pub const PFN_DATA_BASE: usize = 0x18;
    /// `PsLoadedModuleList` u64.
    pub const PS_LOADED_MODULE_LIST: usize = 0x20;
    /// `PsActiveProcessHead` u64.
    pub const PS_ACTIVE_PROCESS_HEAD: usize = 0x28;
    /// `MachineImageType` u32.
    pub const MACHINE_IMAGE_TYPE: usize = 0x30;
    /// `NumberProcessors` u32.
    pub const NUMBER_PROCESSORS: usize = 0x34;
    /// `BugCheckCode` u32.
    pub const BUG_CHECK_CODE: usize = 0x38;
    /// `BugCheckParameter1..4`, u64 each.
    pub const BUG_CHECK_PARAMETERS: usize = 0x40;
    /// `KdDebuggerDataBlock` u64.
    pub const KD_DEBUGGER_DATA_BLOCK: usize = 0x80;
    /// `PhysicalMemoryBlock.NumberOfRuns` u32.
    pub const NUMBER_OF_RUNS: usize = 0x88;
    /// `PhysicalMemoryBlock.NumberOfPages` u64.
    pub const NUMBER_OF_PAGES: usize = 0x90;
    /// `PhysicalMemoryBlock.Run[]`: {BasePage u64, PageCount u64}.
    pub const RUNS: usize = 0x98;
    /// `ContextRecord` (3000 bytes; an x64 `CONTEXT` is 0x4D0).
    pub const CONTEXT_RECORD: usize = 0x348;
    /// `Exception` (`EXCEPTION_RECORD64`, 0x98 bytes).
    pub const EXCEPTION: usize = 0xF00;
    /// `DumpType` u32.
    pub const DUMP_TYPE: usize = 0xF98;
    /// `RequiredDumpSpace` u64: the file size.
    pub const REQUIRED_DUMP_SPACE: usize = 0xFA0;
    /// `SystemTime` u64 (FILETIME).
    pub const SYSTEM_TIME: usize = 0xFA8;
    /// `Comment[128]`.
    pub const COMMENT: usize = 0xFB0;
    /// `SystemUpTime` u64 (100 ns units).
    pub const SYSTEM_UP_TIME: usize = 0x1030;
    /// `MiniDumpFields` u32.
    pub const MINI_DUMP_FIELDS: usize = 0x1038;
    /// `SecondaryDataState` u32.
    pub const SECONDARY_DATA_STATE: usize = 0x103C;
    /// `ProductType` u32.
    pub const PRODUCT_TYPE: usize = 0x1040;
    /// `SuiteMask` u32.
    pub const SUITE_MASK: usize = 0x1044;
    /// `WriterStatus` u32.
    pub const WRITER_STATUS: usize = 0x1048;
}

/// Runs that fit `PhysicalMemoryBlockBuffer` (0x88..0x348).
pub const MAX_RUNS: usize = (off::CONTEXT_RECORD - off::RUNS) / 16;

/// Offsets in the x64 `CONTEXT` record.
pub mod ctx {
    /// `ContextFlags` u32.
    pub const CONTEXT_FLAGS: usize = 0x30;
    /// `MxCsr` u32.
    pub const MX_CSR: usize = 0x34;
    /// `SegCs` u16; `SegDs`, `SegEs`, `SegFs`, `SegGs`, `SegSs` follow.
    pub const SEG_CS: usize = 0x38;
    /// `EFlags` u32.
    pub const EFLAGS: usize = 0x44;
    /// `Rax` u64; `Rcx`, `Rdx`, `Rbx`, `Rsp`, `Rbp`, `Rsi`, `Rdi`,
    /// `R8`..`R15` follow.
    pub const RAX: usize = 0x78;
    /// `Rip` u64.
    pub const RIP: usize = 0xF8;
    /// `FltSave` (`XMM_SAVE_AREA32`): ControlWord u16 at +0, MxCsr at +0x18.
    pub const FLT_SAVE: usize = 0x100;
    /// Size of the record.
    pub const SIZE: usize = 0x4D0;
}

/// `CONTEXT_AMD64 | CONTROL | INTEGER | SEGMENTS | FLOATING_POINT |
/// DEBUG_REGISTERS` (`CONTEXT_ALL`).
pub const CONTEXT_ALL: u32 = 0x0010_001F;
/// `EXCEPTION_RECORD64.ExceptionCode` of a bug check dump.
pub const STATUS_BREAKPOINT: u32 = 0x8000_0003;
/// `EXCEPTION_NONCONTINUABLE`.
pub const EXCEPTION_NONCONTINUABLE: u32 = 1;

/// `_SUMMARY_DUMP` offsets, relative to its start at file offset 0x2000.
pub mod summary {
    /// Signature: "FDMP" (full bitmap) or "SDMP" (kernel bitmap).
    pub const SIGNATURE: usize = 0x0;
    /// ValidDump: "DUMP".
    pub const VALID_DUMP: usize = 0x4;
    /// `HeaderSize` u64: file offset of the first stored page.
    pub const HEADER_SIZE: usize = 0x20;
    /// `Pages` u64: number of pages stored (bits set).
    pub const PAGES: usize = 0x28;
    /// `BitmapSize` u64: number of bits (PFNs) the bitmap covers.
    pub const BITMAP_SIZE: usize = 0x30;
    /// The bitmap, u32 words, bit N = PFN N.
    pub const BITMAP: usize = 0x38;
}

/// Which pages a bitmap dump stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitmapKind {
    /// Every RAM page (DumpType 5).
    Full,
    /// The pages the kernel half of the address space maps (DumpType 6).
    Kernel,
}

impl BitmapKind {
    fn dump_type(self) -> u32 {
        match self {
            BitmapKind::Full => 5,
            BitmapKind::Kernel => 6,
        }
    }

    fn signature(self) -> &'static [u8; 4] {
        match self {
            BitmapKind::Full => b"FDMP",
            BitmapKind::Kernel => b"SDMP",
        }
    }
}

/// Writes a DumpType 1 (full, run-based) crash dump.
pub(crate) fn write_full(image: &LabImage, sink: &mut PageSink) -> Result<u64, ErrorKind> {
    let pages = image.ram_size() / PAGE_SIZE;
    let file_size = HEADER_SIZE as u64 + pages * PAGE_SIZE;
    let header = dump_header(image, 1, file_size)?;
    sink.set_total(image.ram_size());
    sink.write_bytes(&header)?;
    let mut written = 0;
    for &(start, len) in &image.ram {
        written += sink.write_range(image, start, len)?;
    }
    Ok(written)
}

/// Writes a DumpType 5 or 6 (bitmap) crash dump.
pub(crate) fn write_bitmap(
    image: &LabImage,
    sink: &mut PageSink,
    kind: BitmapKind,
) -> Result<u64, ErrorKind> {
    let end_pfn = image
        .ram
        .last()
        .map(|&(s, l)| (s + l) / PAGE_SIZE)
        .ok_or(ErrorKind::NoRam)?;
    let mut bitmap = PfnBitmap::new(end_pfn);
    for &(start, len) in &image.ram {
        for pfn in start / PAGE_SIZE..(start + len) / PAGE_SIZE {
            bitmap.set(pfn);
        }
    }
    if kind == BitmapKind::Kernel {
        let kernel = kernel_pfns(image, end_pfn);
        bitmap.retain(&kernel);
    }
    let stored = bitmap.count();
    let bitmap_bytes = bitmap.words.len() * 4;
    let first_page = (HEADER_SIZE + summary::BITMAP + bitmap_bytes).div_ceil(PAGE_SIZE as usize)
        * PAGE_SIZE as usize;
    let file_size = first_page as u64 + stored * PAGE_SIZE;
    let header = dump_header(image, kind.dump_type(), file_size)?;
    let mut summary_buf = vec![0u8; first_page - HEADER_SIZE];
    summary_buf.put_bytes(summary::SIGNATURE, kind.signature());
    summary_buf.put_bytes(summary::VALID_DUMP, b"DUMP");
    summary_buf.put_u64(summary::HEADER_SIZE, first_page as u64);
    summary_buf.put_u64(summary::PAGES, stored);
    summary_buf.put_u64(summary::BITMAP_SIZE, end_pfn);
    for (i, w) in bitmap.words.iter().enumerate() {
        summary_buf.put_u32(summary::BITMAP + i * 4, *w);
    }
    sink.set_total(stored * PAGE_SIZE);
    sink.write_bytes(&header)?;
    sink.write_bytes(&summary_buf)?;
    let mut page = [0u8; PAGE_SIZE as usize];
    let mut written = 0;
    for &(start, len) in &image.ram {
        for pfn in start / PAGE_SIZE..(start + len) / PAGE_SIZE {
            if bitmap.get(pfn) {
                image.page_into(pfn, &mut page);
                sink.write_page(&page)?;
                written += 1;
            }
        }
    }
    Ok(written)
}

/// The `_DUMP_HEADER64` for `image`.
fn dump_header(image: &LabImage, dump_type: u32, file_size: u64) -> Result<Vec<u8>, ErrorKind> {
    let cpu0 = image.cpus.first().ok_or(ErrorKind::NoCpu)?;
    if image.ram.len() > MAX_RUNS {
        return Err(ErrorKind::TooManyRuns {
            runs: image.ram.len(),
            max: MAX_RUNS,
        });
    }
    let facts = &image.facts;
    let mut h: Vec<u8> = SIGNATURE
        .iter()
        .copied()
        .cycle()
        .take(HEADER_SIZE)
        .collect();
    h.put_bytes(0, SIGNATURE);
    h.put_bytes(4, VALID_DUMP64);
    h.put_u32(off::MAJOR_VERSION, MAJOR_VERSION_FREE);
    h.put_u32(off::MINOR_VERSION, facts.build_number);
    h.put_u64(off::DIRECTORY_TABLE_BASE, facts.dtb);
    h.put_u64(off::PFN_DATA_BASE, facts.pfn_database);
    h.put_u64(off::PS_LOADED_MODULE_LIST, facts.ps_loaded_module_list);
    h.put_u64(off::PS_ACTIVE_PROCESS_HEAD, facts.ps_active_process_head);
    h.put_u32(off::MACHINE_IMAGE_TYPE, IMAGE_FILE_MACHINE_AMD64);
    let nproc = if facts.number_processors != 0 {
        facts.number_processors
    } else {
        image.cpus.len() as u32
    };
    h.put_u32(off::NUMBER_PROCESSORS, nproc);
    h.put_u32(off::BUG_CHECK_CODE, MANUALLY_INITIATED_CRASH);
    for i in 0..4 {
        h.put_u64(off::BUG_CHECK_PARAMETERS + i * 8, 0);
    }
    h.put_u64(off::KD_DEBUGGER_DATA_BLOCK, facts.kd_debugger_data_block);
    h.put_u32(off::NUMBER_OF_RUNS, image.ram.len() as u32);
    h.put_u32(off::NUMBER_OF_RUNS + 4, 0);
    h.put_u64(off::NUMBER_OF_PAGES, image.ram_size() / PAGE_SIZE);
    for (i, &(start, len)) in image.ram.iter().enumerate() {
        h.put_u64(off::RUNS + i * 16, start / PAGE_SIZE);
        h.put_u64(off::RUNS + i * 16 + 8, len / PAGE_SIZE);
    }
    h.put_bytes(off::CONTEXT_RECORD, &context_record(cpu0));
    h.put_bytes(off::EXCEPTION, &exception_record(cpu0));
    h.put_u32(off::DUMP_TYPE, dump_type);
    h.put_u32(off::DUMP_TYPE + 4, 0);
    h.put_u64(off::REQUIRED_DUMP_SPACE, file_size);
    h.put_u64(off::SYSTEM_TIME, facts.system_time);
    // LabKernelFacts has no boot time; 0 says "unknown" rather than
    // inventing an uptime a reader could trust.
    h.put_u64(off::SYSTEM_UP_TIME, 0);
    h.put_u32(off::MINI_DUMP_FIELDS, 0);
    h.put_u32(off::SECONDARY_DATA_STATE, 0);
    h.put_u32(off::PRODUCT_TYPE, 1); // NtProductWinNt
    h.put_u32(off::SUITE_MASK, 0x110); // SingleUserTS | TerminalServer
    h.put_u32(off::WRITER_STATUS, 0);
    Ok(h)
}

/// An x64 `CONTEXT` with `cpu`'s registers.
pub(crate) fn context_record(cpu: &LabCpu) -> [u8; ctx::SIZE] {
    let mut c = [0u8; ctx::SIZE];
    c.put_u32(ctx::CONTEXT_FLAGS, CONTEXT_ALL);
    c.put_u32(ctx::MX_CSR, 0x1F80);
    // LabCpu order: cs, ds, es, fs, gs, ss, as in CONTEXT.
    for (i, sel) in cpu.selectors.iter().enumerate() {
        c.put_u16(ctx::SEG_CS + i * 2, *sel);
    }
    c.put_u32(ctx::EFLAGS, cpu.rflags as u32);
    // LabCpu order: rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15.
    // CONTEXT order: Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8..R15.
    const LAB_INDEX: [usize; 16] = [0, 2, 3, 1, 7, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15];
    for (i, lab) in LAB_INDEX.iter().enumerate() {
        c.put_u64(ctx::RAX + i * 8, cpu.gpr[*lab]);
    }
    c.put_u64(ctx::RIP, cpu.rip);
    c.put_u16(ctx::FLT_SAVE, 0x27F);
    c.put_u32(ctx::FLT_SAVE + 0x18, 0x1F80);
    c.put_u32(ctx::FLT_SAVE + 0x1C, 0xFFFF);
    c
}

/// The `EXCEPTION_RECORD64` a bug check dump carries: a non-continuable
/// breakpoint at CPU 0's instruction pointer.
fn exception_record(cpu: &LabCpu) -> [u8; 0x98] {
    let mut e = [0u8; 0x98];
    e.put_u32(0, STATUS_BREAKPOINT);
    e.put_u32(4, EXCEPTION_NONCONTINUABLE);
    e.put_u64(8, 0);
    e.put_u64(0x10, cpu.rip);
    e.put_u32(0x18, 0);
    e
}

/// A bit per PFN below `end_pfn`, as u32 words (the on-disk layout).
#[derive(Debug, Clone)]
pub(crate) struct PfnBitmap {
    words: Vec<u32>,
}

impl PfnBitmap {
    pub(crate) fn new(end_pfn: u64) -> PfnBitmap {
        PfnBitmap {
            words: vec![0; end_pfn.div_ceil(32) as usize],
        }
    }

    pub(crate) fn set(&mut self, pfn: u64) {
        if let Some(w) = self.words.get_mut((pfn / 32) as usize) {
            *w |= 1 << (pfn % 32);
        }
    }

    pub(crate) fn get(&self, pfn: u64) -> bool {
        self.words
            .get((pfn / 32) as usize)
            .is_some_and(|w| w & (1 << (pfn % 32)) != 0)
    }

    fn retain(&mut self, other: &PfnBitmap) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= *b;
        }
    }

    /// One past the highest PFN the bitmap can hold.
    fn end(&self) -> u64 {
        self.words.len() as u64 * 32
    }

    fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// Present, page-size (large page) and frame bits of a page-table entry.
const PTE_P: u64 = 1;
const PTE_PS: u64 = 1 << 7;
const PTE_FRAME: u64 = 0x000F_FFFF_FFFF_F000;

/// Pages a kernel memory dump keeps: the kernel DTB's PML4, and every
/// page-table page and data page reachable from its kernel half (PML4
/// entries 256..511), including large pages.
///
/// Only page-table pages the builder wrote are walked: a filler page is
/// noise, never a table. The walk is bounded (four levels, each table
/// visited once).
pub(crate) fn kernel_pfns(image: &LabImage, end_pfn: u64) -> PfnBitmap {
    let mut map = PfnBitmap::new(end_pfn);
    let mut seen_tables = HashSet::new();
    let root = image.facts.dtb / PAGE_SIZE;
    map.set(root);
    walk_table(image, root, 4, 256..512, &mut map, &mut seen_tables);
    map
}

fn walk_table(
    image: &LabImage,
    table_pfn: u64,
    level: u32,
    entries: std::ops::Range<usize>,
    map: &mut PfnBitmap,
    seen: &mut HashSet<(u64, u32)>,
) {
    if !seen.insert((table_pfn, level)) {
        return;
    }
    let Some(page) = image.pages.get(&table_pfn) else {
        return;
    };
    for i in entries {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&page[i * 8..i * 8 + 8]);
        let e = u64::from_le_bytes(raw);
        if e & PTE_P == 0 {
            continue;
        }
        let pfn = (e & PTE_FRAME) / PAGE_SIZE;
        let large = (2..=3).contains(&level) && e & PTE_PS != 0;
        if level == 1 || large {
            // Frames covered by this entry: 1 (4 KiB), 512 (2 MiB) or
            // 512*512 (1 GiB); clipped to the bitmap.
            let frames: u64 = match level {
                1 => 1,
                2 => 512,
                _ => 512 * 512,
            };
            let last = pfn.saturating_add(frames).min(map.end());
            for f in pfn..last {
                map.set(f);
            }
        } else {
            map.set(pfn);
            walk_table(image, pfn, level - 1, 0..512, map, seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{le32, le64, tiny_image};
    use super::super::{write, Format};
    use super::*;

    #[test]
    fn full_dump_header_fields_at_their_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.dmp");
        let image = tiny_image();
        let stats = write(&image, Format::CrashFull, &path, false).unwrap();
        let d = std::fs::read(&path).unwrap();
        assert_eq!(&d[0..8], b"PAGEDU64");
        assert_eq!(le32(&d, 0x8), 0xF);
        assert_eq!(le32(&d, 0xC), image.facts.build_number);
        assert_eq!(le64(&d, 0x10), image.facts.dtb);
        assert_eq!(le64(&d, 0x18), image.facts.pfn_database);
        assert_eq!(le64(&d, 0x20), image.facts.ps_loaded_module_list);
        assert_eq!(le64(&d, 0x28), image.facts.ps_active_process_head);
        assert_eq!(le32(&d, 0x30), 0x8664);
        assert_eq!(le32(&d, 0x34), 2);
        assert_eq!(le32(&d, 0x38), 0xE2);
        assert_eq!(le64(&d, 0x80), image.facts.kd_debugger_data_block);
        assert_eq!(le32(&d, 0x88), image.ram.len() as u32);
        assert_eq!(le64(&d, 0x90), image.ram_size() / 0x1000);
        for (i, &(s, l)) in image.ram.iter().enumerate() {
            assert_eq!(le64(&d, 0x98 + i * 16), s / 0x1000);
            assert_eq!(le64(&d, 0xA0 + i * 16), l / 0x1000);
        }
        // The rest of the run buffer keeps Windows' fill pattern.
        assert_eq!(&d[0x340..0x348], b"PAGEPAGE");
        assert_eq!(le32(&d, 0xF98), 1);
        assert_eq!(le64(&d, 0xFA0), stats.file_size);
        assert_eq!(le64(&d, 0xFA8), image.facts.system_time);
        assert_eq!(&d[off::COMMENT..off::COMMENT + 4], b"PAGE");
        assert_eq!(stats.file_size, 0x2000 + image.ram_size());
        // CPU 0's CONTEXT.
        let c = 0x348;
        let cpu = &image.cpus[0];
        assert_eq!(le32(&d, c + 0x30), CONTEXT_ALL);
        assert_eq!(
            u16::from_le_bytes([d[c + 0x38], d[c + 0x39]]),
            cpu.selectors[0]
        );
        assert_eq!(
            u16::from_le_bytes([d[c + 0x42], d[c + 0x43]]),
            cpu.selectors[5]
        );
        assert_eq!(le64(&d, c + 0x78), cpu.gpr[0]); // rax
        assert_eq!(le64(&d, c + 0x80), cpu.gpr[2]); // rcx
        assert_eq!(le64(&d, c + 0x90), cpu.gpr[1]); // rbx
        assert_eq!(le64(&d, c + 0x98), cpu.gpr[7]); // rsp
        assert_eq!(le64(&d, c + 0xA0), cpu.gpr[6]); // rbp
        assert_eq!(le64(&d, c + 0xF0), cpu.gpr[15]); // r15
        assert_eq!(le64(&d, c + 0xF8), cpu.rip);
        // Exception record.
        assert_eq!(le32(&d, 0xF00), STATUS_BREAKPOINT);
        assert_eq!(le64(&d, 0xF10), cpu.rip);
    }

    #[test]
    fn bitmap_math() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.dmp");
        let image = tiny_image();
        let stats = write(&image, Format::CrashBitmap, &path, false).unwrap();
        let d = std::fs::read(&path).unwrap();
        assert_eq!(le32(&d, 0xF98), 5);
        let s = 0x2000;
        assert_eq!(&d[s..s + 8], b"FDMPDUMP");
        let end_pfn = {
            let (a, l) = *image.ram.last().unwrap();
            (a + l) / 0x1000
        };
        assert_eq!(le64(&d, s + 0x30), end_pfn);
        let pages = image.ram_size() / 0x1000;
        assert_eq!(le64(&d, s + 0x28), pages);
        let words = end_pfn.div_ceil(32) as usize;
        let first = le64(&d, s + 0x20);
        assert_eq!(
            first,
            ((0x2000 + 0x38 + words * 4) as u64).div_ceil(0x1000) * 0x1000
        );
        assert_eq!(stats.file_size, first + pages * 0x1000);
        assert_eq!(le64(&d, 0xFA0), stats.file_size);
        // Bits are set exactly for RAM pages.
        for pfn in 0..words as u64 * 32 {
            let w = le32(&d, s + 0x38 + (pfn / 32) as usize * 4);
            let bit = w & (1 << (pfn % 32)) != 0;
            let ram = image
                .ram
                .iter()
                .any(|&(a, l)| pfn >= a / 0x1000 && pfn < (a + l) / 0x1000);
            assert_eq!(bit, ram, "pfn {pfn:#x}");
        }
    }

    #[test]
    fn kernel_bitmap_keeps_only_kernel_mapped_pages() {
        let image = tiny_image();
        let end = 0x40;
        let map = kernel_pfns(&image, end);
        let kept: Vec<u64> = (0..end).filter(|p| map.get(*p)).collect();
        // PML4, PDPT, PD, PT and the two kernel data pages; not the
        // user page that PML4 entry 0 maps.
        assert_eq!(kept, testutil_kernel_pfns());
    }

    fn testutil_kernel_pfns() -> Vec<u64> {
        super::super::testutil::KERNEL_PFNS.to_vec()
    }

    #[test]
    fn too_many_runs_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = tiny_image();
        image.ram = (0..50).map(|i| (i * 0x2000, 0x1000)).collect();
        let e = write(&image, Format::CrashFull, &dir.path().join("x"), false).unwrap_err();
        assert_eq!(e.name(), "too_many_runs");
    }
}
