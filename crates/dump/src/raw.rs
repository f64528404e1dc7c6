//! On-disk layouts, as offsets into the structures that the dump formats
//! define. The names follow the writers' own (Microsoft's `DUMP_HEADER64`,
//! the ELF spec, makedumpfile's `disk_dump_header`, QEMU's `QEMUCPUState`).
//!
//! Layouts are offset constants rather than `#[repr(C, packed)]` structs: the
//! input is untrusted and unaligned, so every field is read through a
//! bounds-checked accessor (see `parse`) and a truncated file becomes an
//! error, never undefined behaviour.

/// Size of a guest page.
pub const PAGE_SIZE: u64 = 0x1000;

/// `DUMP_HEADER64`: the first 0x2000 bytes of a 64-bit Windows crash dump.
pub mod dump_header64 {
    /// "PAGE" at offset 0.
    pub const SIGNATURE: u32 = 0x4547_4150;
    /// "DU64" at offset 4 (a 32-bit dump has "DUMP").
    pub const VALID_DUMP64: u32 = 0x3436_5544;
    /// "DUMP" at offset 4: a 32-bit crash dump.
    pub const VALID_DUMP32: u32 = 0x504D_5544;
    /// Unset header fields keep the "PAGE" fill pattern.
    pub const FILL32: u32 = 0x4547_4150;
    /// Unset 64-bit header fields.
    pub const FILL64: u64 = 0x4547_4150_4547_4150;
    /// Size of the header; DumpType 1 page data starts here.
    pub const SIZE: u64 = 0x2000;

    /// `MajorVersion` u32 (0xF free build, 0xC checked build).
    pub const MAJOR_VERSION: u64 = 0x08;
    /// `MinorVersion` u32 (the build number, e.g. 7601).
    pub const MINOR_VERSION: u64 = 0x0C;
    /// `DirectoryTableBase` u64.
    pub const DIRECTORY_TABLE_BASE: u64 = 0x10;
    /// `PfnDataBase` u64.
    pub const PFN_DATA_BASE: u64 = 0x18;
    /// `PsLoadedModuleList` u64.
    pub const PS_LOADED_MODULE_LIST: u64 = 0x20;
    /// `PsActiveProcessHead` u64.
    pub const PS_ACTIVE_PROCESS_HEAD: u64 = 0x28;
    /// `MachineImageType` u32 (0x8664 for x64).
    pub const MACHINE_IMAGE_TYPE: u64 = 0x30;
    /// `NumberProcessors` u32.
    pub const NUMBER_PROCESSORS: u64 = 0x34;
    /// `BugCheckCode` u32.
    pub const BUGCHECK_CODE: u64 = 0x38;
    /// `BugCheckParameter1..4` u64 each.
    pub const BUGCHECK_PARAMETERS: u64 = 0x40;
    /// `KdDebuggerDataBlock` u64.
    pub const KD_DEBUGGER_DATA_BLOCK: u64 = 0x80;
    /// `PhysicalMemoryBlock` (`_PHYSICAL_MEMORY_DESCRIPTOR64`):
    /// `NumberOfRuns` u32.
    pub const NUMBER_OF_RUNS: u64 = 0x88;
    /// `NumberOfPages` u64.
    pub const NUMBER_OF_PAGES: u64 = 0x90;
    /// `Run[]`, each `{BasePage u64, PageCount u64}`.
    pub const RUNS: u64 = 0x98;
    /// Size of one run.
    pub const RUN_SIZE: u64 = 16;
    /// `ContextRecord`: an x64 `CONTEXT`.
    pub const CONTEXT_RECORD: u64 = 0x348;
    /// The run array ends where the context record begins.
    pub const MAX_RUNS: u64 = (CONTEXT_RECORD - RUNS) / RUN_SIZE;
    /// `DumpType` u32.
    pub const DUMP_TYPE: u64 = 0xF98;

    /// DumpType: complete memory dump, run list.
    pub const DUMP_TYPE_FULL: u32 = 1;
    /// DumpType: old-style kernel (summary) dump.
    pub const DUMP_TYPE_KERNEL: u32 = 2;
    /// DumpType: bitmap dump (`FDMP` full or `SDMP` kernel).
    pub const DUMP_TYPE_BITMAP_FULL: u32 = 5;
    /// DumpType: kernel bitmap dump.
    pub const DUMP_TYPE_BITMAP_KERNEL: u32 = 6;
    /// x64 `MachineImageType`.
    pub const IMAGE_FILE_MACHINE_AMD64: u32 = 0x8664;
}

/// `_SUMMARY_DUMP`, at file offset 0x2000 of a bitmap crash dump.
pub mod summary_dump {
    /// Where the structure sits in the file.
    pub const FILE_OFFSET: u64 = 0x2000;
    /// `Signature` u32: "SDMP" or "FDMP".
    pub const SIGNATURE: u64 = 0x00;
    /// "SDMP".
    pub const SIG_SDMP: u32 = 0x504D_4453;
    /// "FDMP".
    pub const SIG_FDMP: u32 = 0x504D_4446;
    /// `HeaderSize` u64: file offset of the first page.
    pub const HEADER_SIZE: u64 = 0x20;
    /// `Pages` u64: number of pages stored.
    pub const PAGES: u64 = 0x28;
    /// `BitmapSize` u64: number of bits (pages) in the bitmap.
    pub const BITMAP_SIZE: u64 = 0x30;
    /// The bitmap itself.
    pub const BITMAP: u64 = 0x38;
}

/// x64 `CONTEXT` (0x4D0 bytes); offsets of the fields hangscope reads.
pub mod context_amd64 {
    /// `SegCs` u16, then `SegDs`, `SegEs`, `SegFs`, `SegGs`, `SegSs`.
    pub const SEG_CS: u64 = 0x38;
    /// `SegDs`.
    pub const SEG_DS: u64 = 0x3A;
    /// `SegEs`.
    pub const SEG_ES: u64 = 0x3C;
    /// `SegFs`.
    pub const SEG_FS: u64 = 0x3E;
    /// `SegGs`.
    pub const SEG_GS: u64 = 0x40;
    /// `SegSs`.
    pub const SEG_SS: u64 = 0x42;
    /// `EFlags` u32.
    pub const EFLAGS: u64 = 0x44;
    /// `Rax` u64, then Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8..R15, Rip.
    pub const RAX: u64 = 0x78;
    /// `Rip` u64.
    pub const RIP: u64 = 0xF8;
    /// Size of the structure.
    pub const SIZE: u64 = 0x4D0;
}

/// ELF64 (little-endian) offsets.
pub mod elf {
    /// `EI_CLASS` value for 64-bit.
    pub const ELFCLASS64: u8 = 2;
    /// `EI_DATA` value for little-endian.
    pub const ELFDATA2LSB: u8 = 1;
    /// `e_machine` for x86-64.
    pub const EM_X86_64: u16 = 62;
    /// `e_machine` for i386 (QEMU, when vCPU 0 is not in long mode).
    pub const EM_386: u16 = 3;
    /// `e_type` u16.
    pub const E_TYPE: u64 = 0x10;
    /// `e_type` of a core file.
    pub const ET_CORE: u16 = 4;
    /// `e_machine` u16.
    pub const E_MACHINE: u64 = 0x12;
    /// `e_phoff` u64.
    pub const E_PHOFF: u64 = 0x20;
    /// `e_shoff` u64.
    pub const E_SHOFF: u64 = 0x28;
    /// `e_phentsize` u16.
    pub const E_PHENTSIZE: u64 = 0x36;
    /// `e_phnum` u16.
    pub const E_PHNUM: u64 = 0x38;
    /// `e_phnum` escape: the real count is in section header 0's `sh_info`.
    pub const PN_XNUM: u16 = 0xFFFF;
    /// `sh_info` u32 in a section header.
    pub const SH_INFO: u64 = 0x2C;
    /// Size of the ELF header.
    pub const EHDR_SIZE: u64 = 0x40;
    /// Size of a program header.
    pub const PHDR_SIZE: u64 = 0x38;
    /// `p_type` u32.
    pub const P_TYPE: u64 = 0x00;
    /// `p_offset` u64.
    pub const P_OFFSET: u64 = 0x08;
    /// `p_paddr` u64.
    pub const P_PADDR: u64 = 0x18;
    /// `p_filesz` u64.
    pub const P_FILESZ: u64 = 0x20;
    /// `p_memsz` u64.
    pub const P_MEMSZ: u64 = 0x28;
    /// Loadable segment.
    pub const PT_LOAD: u32 = 1;
    /// Note segment.
    pub const PT_NOTE: u32 = 4;
    /// Note type of `elf_prstatus`.
    pub const NT_PRSTATUS: u32 = 1;
    /// Note type of `elf_prpsinfo`: only process cores carry it.
    pub const NT_PRPSINFO: u32 = 3;
    /// Note type of the auxiliary vector: only process cores carry it.
    pub const NT_AUXV: u32 = 6;
    /// Note type of the mapped-files table (`"FILE"`): only process cores.
    pub const NT_FILE: u32 = 0x4649_4c45;
    /// `pr_reg` inside x86-64 `elf_prstatus`.
    pub const PRSTATUS_PR_REG: u64 = 112;
    /// Number of u64 in x86-64 `user_regs_struct`.
    pub const PR_REG_COUNT: u64 = 27;
}

/// QEMU's `QEMUCPUState` (x86-64 `QEMU` note), version 1.
pub mod qemu_cpu_state {
    /// `version` u32.
    pub const VERSION: u64 = 0;
    /// `size` u32.
    pub const SIZE_FIELD: u64 = 4;
    /// `rax` u64, then rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8..r15.
    pub const RAX: u64 = 8;
    /// `rip` u64.
    pub const RIP: u64 = 136;
    /// `rflags` u64.
    pub const RFLAGS: u64 = 144;
    /// Segment descriptors cs, ds, es, fs, gs, ss (then ldt, tr, gdt, idt),
    /// each `{selector u32, limit u32, flags u32, pad u32, base u64}`.
    pub const SEGMENTS: u64 = 152;
    /// Size of one segment descriptor.
    pub const SEGMENT_SIZE: u64 = 24;
    /// Offset of `base` inside a segment descriptor.
    pub const SEGMENT_BASE: u64 = 16;
    /// `cr[5]` u64.
    pub const CR: u64 = 392;
    /// `kernel_gs_base` u64.
    pub const KERNEL_GS_BASE: u64 = 432;
    /// Size of the version 1 structure.
    pub const SIZE: u64 = 440;
}

/// makedumpfile's flattened format: a 4 KiB header then
/// `{offset i64 BE, size i64 BE, data[size]}` records.
pub mod flat {
    /// "makedumpfile" padded with NULs to 16 bytes.
    pub const SIGNATURE: &[u8; 12] = b"makedumpfile";
    /// Size of the flat header.
    pub const HEADER_SIZE: u64 = 4096;
    /// Size of one record header.
    pub const RECORD_HEADER: u64 = 16;
}

/// makedumpfile's `disk_dump_header` and `kdump_sub_header` (x86-64).
pub mod kdump {
    /// "KDUMP   ".
    pub const SIGNATURE: &[u8; 8] = b"KDUMP   ";
    /// `header_version` u32.
    pub const HEADER_VERSION: u64 = 8;
    /// `block_size` u32.
    pub const BLOCK_SIZE: u64 = 428;
    /// `sub_hdr_size` u32 (in blocks).
    pub const SUB_HDR_SIZE: u64 = 432;
    /// `bitmap_blocks` u32.
    pub const BITMAP_BLOCKS: u64 = 436;
    /// `max_mapnr` u32.
    pub const MAX_MAPNR: u64 = 440;
    /// `nr_cpus` u32.
    pub const NR_CPUS: u64 = 460;
    /// Bytes of the header hangscope reads.
    pub const HEADER_MIN: u64 = 464;

    /// Sub header: `offset_vmcoreinfo` u64.
    pub const SUB_OFFSET_VMCOREINFO: u64 = 32;
    /// Sub header: `size_vmcoreinfo` u64.
    pub const SUB_SIZE_VMCOREINFO: u64 = 40;
    /// Sub header: `offset_note` u64.
    pub const SUB_OFFSET_NOTE: u64 = 48;
    /// Sub header: `size_note` u64.
    pub const SUB_SIZE_NOTE: u64 = 56;
    /// Sub header: `max_mapnr_64` u64 (header_version >= 6).
    pub const SUB_MAX_MAPNR_64: u64 = 96;
    /// Sub header bytes hangscope reads.
    pub const SUB_MIN: u64 = 104;

    /// `page_desc`: `{offset u64, size u32, flags u32, page_flags u64}`.
    pub const PAGE_DESC_SIZE: u64 = 24;
    /// Page compressed with zlib.
    pub const DUMP_DH_COMPRESSED_ZLIB: u32 = 0x1;
    /// Page compressed with LZO.
    pub const DUMP_DH_COMPRESSED_LZO: u32 = 0x2;
    /// Page compressed with snappy.
    pub const DUMP_DH_COMPRESSED_SNAPPY: u32 = 0x4;
    /// Page compressed with zstd.
    pub const DUMP_DH_COMPRESSED_ZSTD: u32 = 0x20;
}
