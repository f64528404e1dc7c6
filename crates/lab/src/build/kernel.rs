//! The kernel image and its globals: PE headers with the CodeView record,
//! the low stub, `KUSER_SHARED_DATA`, the variables debuggers read
//! (`KdVersionBlock`, `KdDebuggerDataBlock`, `ObTypeIndexTable`, ...).

use super::*;
use crate::space;

use super::drivers::rsds_record;

/// `KDDEBUGGER_DATA64` field offsets: the layout is the public
/// `wdbgexts.h` ABI, identical on every x64 build, and no kernel PDB
/// describes it (Volatility ships the same layout as its own `kdbg.json`).
pub mod kdbg {
    /// `Header.List` (LIST_ENTRY64).
    pub const LIST: u64 = 0x00;
    /// `Header.OwnerTag` ('KDBG').
    pub const OWNER_TAG: u64 = 0x10;
    /// `Header.Size`.
    pub const SIZE: u64 = 0x14;
    /// `KernBase`.
    pub const KERN_BASE: u64 = 0x18;
    /// `PsLoadedModuleList`.
    pub const PS_LOADED_MODULE_LIST: u64 = 0x48;
    /// `PsActiveProcessHead`.
    pub const PS_ACTIVE_PROCESS_HEAD: u64 = 0x50;
    /// `PspCidTable`.
    pub const PSP_CID_TABLE: u64 = 0x58;
    /// `ExpSystemResourcesList`.
    pub const EXP_SYSTEM_RESOURCES_LIST: u64 = 0x60;
    /// `KeTimeIncrement`.
    pub const KE_TIME_INCREMENT: u64 = 0x78;
    /// `ObpTypeObjectType`.
    pub const OBP_TYPE_OBJECT_TYPE: u64 = 0xA0;
    /// `MmPfnDatabase`.
    pub const MM_PFN_DATABASE: u64 = 0xC0;
    /// `MmNumberOfPhysicalPages`.
    pub const MM_NUMBER_OF_PHYSICAL_PAGES: u64 = 0xF8;
    /// `MmNonPagedPoolStart`.
    pub const MM_NON_PAGED_POOL_START: u64 = 0x110;
    /// `MmPageSize`.
    pub const MM_PAGE_SIZE: u64 = 0x138;
    /// `MmHighestUserAddress`.
    pub const MM_HIGHEST_USER_ADDRESS: u64 = 0x1C8;
    /// `MmSystemRangeStart`.
    pub const MM_SYSTEM_RANGE_START: u64 = 0x1D0;
    /// `MmUserProbeAddress`.
    pub const MM_USER_PROBE_ADDRESS: u64 = 0x1D8;
    /// `NtBuildLab` (pointer to the string).
    pub const NT_BUILD_LAB: u64 = 0x208;
    /// `KiProcessorBlock`.
    pub const KI_PROCESSOR_BLOCK: u64 = 0x218;
    /// `CmNtCSDVersion` (pointer to the u32).
    pub const CM_NT_CSD_VERSION: u64 = 0x268;
    /// First of the u16 `Offset*`/`Size*` fields (`OffsetKThreadNextProcessor`).
    pub const OFFSETS: u64 = 0x298;
    /// Size written in the header.
    pub const STRUCT_SIZE: u32 = 0x340;
}

impl Builder<'_> {
    pub(super) fn kernel_image(&mut self) -> Result<(), Error> {
        let kb = self.kernel_base;
        self.map_kernel_range(kb, PAGE_SIZE, space::PTE_KERNEL_CODE)?;
        let dos = "_IMAGE_DOS_HEADER";
        let nt = "_IMAGE_NT_HEADERS64";
        let lfanew = 0x108u64;
        self.put(kb, dos, "e_magic", 0x5A4D)?;
        self.put(kb, dos, "e_cblp", 0x90)?;
        self.put(kb, dos, "e_cp", 3)?;
        self.put(kb, dos, "e_cparhdr", 4)?;
        self.put(kb, dos, "e_maxalloc", 0xFFFF)?;
        self.put(kb, dos, "e_sp", 0xB8)?;
        self.put(kb, dos, "e_lfarlc", 0x40)?;
        self.put(kb, dos, "e_lfanew", lfanew)?;
        self.sp
            .write(kb + 0x4E, b"This program cannot be run in DOS mode.\r\r\n$")?;
        let h = kb + lfanew;
        self.put(h, nt, "Signature", 0x4550)?;
        self.put(h, nt, "FileHeader.Machine", 0x8664)?;
        self.put(h, nt, "FileHeader.NumberOfSections", 2)?;
        self.put(h, nt, "FileHeader.TimeDateStamp", self.win.timestamp as u64)?;
        let opt_size = self.size("_IMAGE_OPTIONAL_HEADER64")?;
        self.put(h, nt, "FileHeader.SizeOfOptionalHeader", opt_size)?;
        self.put(h, nt, "FileHeader.Characteristics", 0x22)?;
        let o = "OptionalHeader.";
        let size = self.image_size;
        for (f, v) in [
            ("Magic", 0x20B),
            ("MajorLinkerVersion", 9),
            ("SizeOfCode", size / 2),
            ("SizeOfInitializedData", size / 2),
            ("AddressOfEntryPoint", 0x1000 + ((size / 4) & !0xF)),
            ("BaseOfCode", 0x1000),
            ("ImageBase", kb),
            ("SectionAlignment", 0x1000),
            ("FileAlignment", 0x200),
            ("MajorOperatingSystemVersion", self.win.major as u64),
            ("MinorOperatingSystemVersion", self.win.minor as u64),
            ("MajorImageVersion", self.win.major as u64),
            ("MinorImageVersion", self.win.minor as u64),
            ("MajorSubsystemVersion", self.win.major as u64),
            ("MinorSubsystemVersion", self.win.minor as u64),
            ("SizeOfImage", size),
            ("SizeOfHeaders", 0x600),
            ("CheckSum", 0x55_0000 ^ (self.seed & 0xFFFF)),
            ("Subsystem", 1),
            ("DllCharacteristics", 0x160),
            ("SizeOfStackReserve", 0x40000),
            ("SizeOfStackCommit", 0x1000),
            ("SizeOfHeapReserve", 0x100000),
            ("SizeOfHeapCommit", 0x1000),
            ("NumberOfRvaAndSizes", 16),
        ] {
            self.put(h, nt, &format!("{o}{f}"), v)?;
        }
        // Debug directory and the RSDS CodeView record naming ntkrnlmp.pdb.
        let dd = h + self.elem(nt, "OptionalHeader.DataDirectory", 6)?;
        let dbg_rva = 0x300u64;
        let dbg_size = self.size("_IMAGE_DEBUG_DIRECTORY")?;
        self.put(dd, "_IMAGE_DATA_DIRECTORY", "VirtualAddress", dbg_rva)?;
        self.put(dd, "_IMAGE_DATA_DIRECTORY", "Size", dbg_size)?;
        let rsds_rva = round_up(dbg_rva + dbg_size, 0x10);
        let (guid, age) = self.l.pdb_identity().ok_or_else(|| missing("PDB GUID"))?;
        let rec = rsds_record(&guid, age, "ntkrnlmp.pdb");
        let d = kb + dbg_rva;
        let ddt = "_IMAGE_DEBUG_DIRECTORY";
        self.put(d, ddt, "TimeDateStamp", self.win.timestamp as u64)?;
        self.put(d, ddt, "Type", 2)?; // IMAGE_DEBUG_TYPE_CODEVIEW
        self.put(d, ddt, "SizeOfData", rec.len() as u64)?;
        self.put(d, ddt, "AddressOfRawData", rsds_rva)?;
        self.put(d, ddt, "PointerToRawData", rsds_rva)?;
        self.sp.write(kb + rsds_rva, &rec)?;
        // Two sections covering the image.
        let sh = h + self.size(nt)?;
        let shs = self.size("_IMAGE_SECTION_HEADER")?;
        let half = round_up(size / 2, 0x1000);
        for (i, (n, va, vs, ch)) in [
            (b".text\0\0\0", 0x1000u64, half - 0x1000, 0x6800_0020u64),
            (b".data\0\0\0", half, size - half, 0xC800_0040),
        ]
        .iter()
        .enumerate()
        {
            let s = sh + i as u64 * shs;
            self.sp.write(s, &n[..])?;
            self.put(s, "_IMAGE_SECTION_HEADER", "Misc.VirtualSize", *vs)?;
            self.put(s, "_IMAGE_SECTION_HEADER", "VirtualAddress", *va)?;
            self.put(s, "_IMAGE_SECTION_HEADER", "SizeOfRawData", *vs)?;
            self.put(s, "_IMAGE_SECTION_HEADER", "PointerToRawData", *va)?;
            self.put(s, "_IMAGE_SECTION_HEADER", "Characteristics", *ch)?;
        }
        // The PML4 self-reference.
        let pml4 = self.sp.pml4;
        self.sp.set_pml4_entry(
            pml4,
            self.self_ref,
            (pml4 * PAGE_SIZE) | space::PTE_KERNEL_TABLE,
        );
        Ok(())
    }

    /// The x64 low stub (`_PROCESSOR_START_BLOCK`) at physical 0x1000,
    /// which boot processors start from. No kernel PDB describes it; the
    /// offsets are those Volatility's `method_low_stub_offset` reads.
    pub(super) fn low_stub(&mut self) -> Result<(), Error> {
        const JMP_AND_COMPLETION: u64 = 0x0000_0001_0006_00E9;
        const LM_TARGET: usize = 0x70;
        const CR3: usize = 0xA0;
        let pfn = 1;
        self.sp.reserve(pfn)?;
        // LmTarget lies at least 2 MiB into the kernel image, so that
        // rounding it down to 2 MiB stays inside the image.
        let lm = self.kernel_base + 0x20_0000.min(self.image_size / 2) + 0x1A40;
        let dtb = self.sp.pml4 * PAGE_SIZE;
        let page = self.sp.page_mut(pfn);
        // A short jump (rel8 0x4E) over the block's data.
        page[..8].copy_from_slice(&(JMP_AND_COMPLETION | 0x4E00).to_le_bytes());
        page[LM_TARGET..LM_TARGET + 8].copy_from_slice(&lm.to_le_bytes());
        page[CR3..CR3 + 8].copy_from_slice(&dtb.to_le_bytes());
        Ok(())
    }

    pub(super) fn kuser(&mut self) -> Result<(), Error> {
        let k = 0xFFFF_F780_0000_0000u64;
        self.map_kernel_range(k, PAGE_SIZE, space::PTE_KERNEL_DATA)?;
        let t = "_KUSER_SHARED_DATA";
        let m = &self.sc.machine;
        let ticks = m.tick_count;
        let inc = m.max_increment as u64;
        let mult = (inc << 24) / 10_000;
        self.put(k, t, "TickCountMultiplier", mult)?;
        if self.has(t, "TickCountQuad") {
            self.put(k, t, "TickCountQuad", ticks)?;
        }
        if self.has(t, "TickCount.High2Time") {
            self.put(k, t, "TickCount.LowPart", ticks & 0xFFFF_FFFF)?;
            self.put(k, t, "TickCount.High1Time", ticks >> 32)?;
            self.put(k, t, "TickCount.High2Time", ticks >> 32)?;
        }
        let it = ticks * inc;
        self.put(k, t, "InterruptTime.LowPart", it & 0xFFFF_FFFF)?;
        self.put(k, t, "InterruptTime.High1Time", it >> 32)?;
        self.put(k, t, "InterruptTime.High2Time", it >> 32)?;
        let st = self.system_time;
        self.put(k, t, "SystemTime.LowPart", st & 0xFFFF_FFFF)?;
        self.put(k, t, "SystemTime.High1Time", st >> 32)?;
        self.put(k, t, "SystemTime.High2Time", st >> 32)?;
        let root = utf16("C:\\Windows");
        let nsr = self.off(t, "NtSystemRoot")?;
        self.sp.write(k + nsr, &root)?;
        let server = match m.product.as_deref() {
            Some("server") => true,
            Some(_) => false,
            None => self.win.server,
        };
        self.put(k, t, "NtProductType", if server { 3 } else { 1 })?;
        self.put(k, t, "ProductTypeIsValid", 1)?;
        self.put(k, t, "NtMajorVersion", self.win.major as u64)?;
        self.put(k, t, "NtMinorVersion", self.win.minor as u64)?;
        self.put_opt(k, t, "NtBuildNumber", self.win.build as u64)?;
        self.put(k, t, "ImageNumberLow", 0x8664)?;
        self.put(k, t, "ImageNumberHigh", 0x8664)?;
        self.put_opt(k, t, "NumberOfPhysicalPages", self.ram_size / PAGE_SIZE)?;
        self.put_opt(k, t, "ActiveProcessorCount", self.sc.cpus.len() as u64)?;
        self.put_opt(k, t, "ActiveGroupCount", 1)?;
        self.put_opt(k, t, "KdDebuggerEnabled", 0)?;
        self.put_opt(k, t, "TimeZoneId", 0)?;
        Ok(())
    }

    /// The kernel variables debuggers and readers start from.
    pub(super) fn globals(&mut self) -> Result<(), Error> {
        self.scalar_globals()?;
        let kpb = self.processor_block()?;
        let lab = self.build_lab_string()?;
        self.object_globals()?;
        let kv = self.kd_version_block()?;
        self.kd_debugger_data(kv, kpb, lab)
    }

    /// Numbers and pointers the kernel keeps in plain variables.
    fn scalar_globals(&mut self) -> Result<(), Error> {
        let n = self.sc.cpus.len() as u64;
        let sys = self.procs[self.ix.pids[&4]].eprocess;
        let u32_globals = [
            ("KeNumberProcessors", n),
            ("KeMaximumIncrement", self.sc.machine.max_increment as u64),
            ("KeMinimumIncrement", 10_000),
            ("NtBuildNumber", self.win.build as u64 | 0xF000_0000),
            ("CmNtCSDVersion", (self.win.service_pack as u64) << 8),
            ("NtMajorVersion", self.win.major as u64),
            ("NtMinorVersion", self.win.minor as u64),
        ];
        for (s, v) in u32_globals {
            if let Some(r) = self.l.symbol(s) {
                let va = self.kernel_base + r;
                self.map_image(va, 4)?;
                self.sp.write(va, &(v as u32).to_le_bytes())?;
            }
        }
        let pfn_db = match self.win.addresses {
            AddressStyle::Win7 => 0xFFFF_FA80_0000_0000,
            AddressStyle::Win81 => 0xFFFF_E000_0000_0000 - 0x10_0000_0000,
            AddressStyle::Win10 => {
                0xFFFF_A000_0000_0000 + self.rng.gen_range(0..0x1000u64) * 0x80_0000_0000 / 0x100
            }
        } & !0xFFF;
        let u64_globals = [
            ("MmPfnDatabase", pfn_db),
            ("PsInitialSystemProcess", sys),
            ("PsIdleProcess", self.idle_process),
            ("MmNumberOfPhysicalPages", self.ram_size / PAGE_SIZE),
            ("MmHighestUserAddress", 0x7FF_FFFE_FFFF),
            (
                "MmSystemRangeStart",
                0xFFFF_0800_0000_0000 | 0xFFFF_8000_0000_0000,
            ),
            ("MmUserProbeAddress", 0x7FF_FFFF_0000),
        ];
        for (s, v) in u64_globals {
            if let Some(r) = self.l.symbol(s) {
                let va = self.kernel_base + r;
                self.map_image(va, 8)?;
                self.sp.write(va, &v.to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// `KiProcessorBlock`: the KPRCB pointers; returns its address.
    fn processor_block(&mut self) -> Result<u64, Error> {
        let n = self.sc.cpus.len() as u64;
        let kpb = self.sym("KiProcessorBlock")?;
        self.map_image(kpb, 8 * n)?;
        for (i, (_, prcb)) in self.kpcrs.clone().iter().enumerate() {
            self.sp.write(kpb + i as u64 * 8, &prcb.to_le_bytes())?;
        }
        Ok(kpb)
    }

    /// The `NtBuildLab` string; returns its address.
    fn build_lab_string(&mut self) -> Result<u64, Error> {
        let lab = self.sym("NtBuildLab")?;
        let mut s = self.win.build_lab.as_bytes().to_vec();
        s.push(0);
        self.map_image(lab, s.len() as u64)?;
        self.sp.write(lab, &s)?;
        Ok(lab)
    }

    /// `ObTypeIndexTable`, `ObTypeObjectType`, `ObHeaderCookie` and
    /// `ObpInfoMaskToOffset`: what decoding an OBJECT_HEADER needs.
    fn object_globals(&mut self) -> Result<(), Error> {
        let oti = self.sym("ObTypeIndexTable")?;
        let count = self.type_objects.len() as u64 + 2;
        self.map_image(oti, count * 8 + 8)?;
        self.sp.write(oti + 8, &0xBAD0_B0B0u64.to_le_bytes())?;
        for (i, t) in self.type_objects.clone().iter().enumerate() {
            self.sp.write(oti + (i as u64 + 2) * 8, &t.to_le_bytes())?;
        }
        if let Some(r) = self.l.symbol("ObTypeObjectType") {
            let va = self.kernel_base + r;
            self.map_image(va, 8)?;
            let t0 = self.type_objects[0];
            self.sp.write(va, &t0.to_le_bytes())?;
        }
        if self.cookie != 0 {
            let c = self.sym("ObHeaderCookie")?;
            self.map_image(c, 4)?;
            self.sp.write(c, &[self.cookie])?;
        }
        // ObpInfoMaskToOffset[mask] = bytes of the optional headers whose
        // bits are set in mask.
        let om = self.sym("ObpInfoMaskToOffset")?;
        self.map_image(om, 256)?;
        let hdrs = self.optional_headers();
        let mut tab = [0u8; 256];
        for (mask, slot) in tab.iter_mut().enumerate() {
            let s: u64 = hdrs
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, h)| h.1)
                .sum();
            *slot = s as u8;
        }
        self.sp.write(om, &tab)?;
        Ok(())
    }

    /// `KdVersionBlock` (`_DBGKD_GET_VERSION64`); returns its address.
    fn kd_version_block(&mut self) -> Result<u64, Error> {
        let kv = self.sym("KdVersionBlock")?;
        let gv = "_DBGKD_GET_VERSION64";
        self.map_image(kv, self.size(gv)?)?;
        self.put(kv, gv, "MajorVersion", 0xF)?;
        self.put(kv, gv, "MinorVersion", self.win.build as u64)?;
        self.put(kv, gv, "ProtocolVersion", 6)?;
        self.put_opt(kv, gv, "KdSecondaryVersion", 2)?;
        self.put(kv, gv, "Flags", 0x47)?;
        self.put(kv, gv, "MachineType", 0x8664)?;
        self.put(kv, gv, "MaxPacketType", 0xC)?;
        self.put(kv, gv, "MaxStateChange", 3)?;
        self.put(kv, gv, "MaxManipulate", 0x33)?;
        self.put(kv, gv, "KernBase", self.kernel_base)?;
        let pslm = self.sym("PsLoadedModuleList")?;
        self.put(kv, gv, "PsLoadedModuleList", pslm)?;
        Ok(kv)
    }

    /// `KdDebuggerDataBlock` (`KDDEBUGGER_DATA64`, not encoded: as with a
    /// debugger enabled), linked from `KdpDebuggerDataListHead` and the
    /// version block at `kv`.
    fn kd_debugger_data(&mut self, kv: u64, kpb: u64, lab: u64) -> Result<(), Error> {
        let gv = "_DBGKD_GET_VERSION64";
        let pslm = self.sym("PsLoadedModuleList")?;
        let kd = self.sym("KdDebuggerDataBlock")?;
        self.map_image(kd, kdbg::STRUCT_SIZE as u64)?;
        if let Some(r) = self.l.symbol("KdpDebuggerDataListHead") {
            let h = self.kernel_base + r;
            self.map_image(h, 16)?;
            self.put(kv, gv, "DebuggerDataList", h)?;
            self.sp.write(h, &kd.to_le_bytes())?;
            self.sp.write(h + 8, &kd.to_le_bytes())?;
            self.sp.write(kd + kdbg::LIST, &h.to_le_bytes())?;
            self.sp.write(kd + kdbg::LIST + 8, &h.to_le_bytes())?;
        }
        self.sp.write(kd + kdbg::OWNER_TAG, b"KDBG")?;
        self.sp
            .write(kd + kdbg::SIZE, &kdbg::STRUCT_SIZE.to_le_bytes())?;
        let mut q = vec![
            (kdbg::KERN_BASE, self.kernel_base),
            (kdbg::PS_LOADED_MODULE_LIST, pslm),
            (
                kdbg::PS_ACTIVE_PROCESS_HEAD,
                self.sym("PsActiveProcessHead")?,
            ),
            (
                kdbg::EXP_SYSTEM_RESOURCES_LIST,
                self.sym("ExpSystemResourcesList")?,
            ),
            (kdbg::MM_PFN_DATABASE, self.sym("MmPfnDatabase")?),
            (kdbg::NT_BUILD_LAB, lab),
            (kdbg::KI_PROCESSOR_BLOCK, kpb),
            (kdbg::CM_NT_CSD_VERSION, self.sym("CmNtCSDVersion")?),
            (kdbg::MM_PAGE_SIZE, PAGE_SIZE),
            (
                kdbg::MM_HIGHEST_USER_ADDRESS,
                self.sym("MmHighestUserAddress").unwrap_or(0),
            ),
            (
                kdbg::MM_SYSTEM_RANGE_START,
                self.sym("MmSystemRangeStart").unwrap_or(0),
            ),
            (
                kdbg::MM_USER_PROBE_ADDRESS,
                self.sym("MmUserProbeAddress").unwrap_or(0),
            ),
            (
                kdbg::MM_NUMBER_OF_PHYSICAL_PAGES,
                self.sym("MmNumberOfPhysicalPages").unwrap_or(0),
            ),
            (
                kdbg::KE_TIME_INCREMENT,
                self.sym("KeMaximumIncrement").unwrap_or(0),
            ),
            (
                kdbg::OBP_TYPE_OBJECT_TYPE,
                self.sym("ObTypeObjectType").unwrap_or(0),
            ),
        ];
        if let Ok(c) = self.sym("PspCidTable") {
            q.push((kdbg::PSP_CID_TABLE, c));
        }
        for (o, v) in q {
            self.sp.write(kd + o, &v.to_le_bytes())?;
        }
        // The u16 Offset*/Size* fields debuggers use without symbols.
        let et = "_ETHREAD";
        let offs: Vec<u64> = vec![
            self.off(et, "Tcb.NextProcessor").unwrap_or(0),
            self.off(et, "Tcb.Teb")?,
            self.off(et, "Tcb.KernelStack")?,
            self.off(et, "Tcb.InitialStack")?,
            self.off(et, "Tcb.ApcState.Process")?,
            self.off(et, "Tcb.State")?,
            0,
            0,
            self.size("_EPROCESS")?,
            self.off("_EPROCESS", "Peb")?,
            self.off("_EPROCESS", "InheritedFromUniqueProcessId")?,
            self.off("_EPROCESS", "Pcb.DirectoryTableBase")?,
            self.size("_KPRCB")?,
            self.off("_KPRCB", "DpcRoutineActive").unwrap_or(0),
            self.off("_KPRCB", "CurrentThread")?,
            self.off("_KPRCB", "MHz").unwrap_or(0),
            self.off("_KPRCB", "CpuType").unwrap_or(0),
            self.off("_KPRCB", "VendorString").unwrap_or(0),
            self.off("_KPRCB", "ProcessorState").unwrap_or(0),
            self.off("_KPRCB", "Number")?,
            self.size(et)?,
        ];
        for (i, v) in offs.iter().enumerate() {
            self.sp.write(
                kd + kdbg::OFFSETS + i as u64 * 2,
                &(*v as u16).to_le_bytes(),
            )?;
        }
        Ok(())
    }
}
