//! Loaded modules (`PsLoadedModuleList`): the base modules every machine
//! has, the scenario's drivers (real PE images loaded as the Windows loader
//! would), their header pages and CodeView records, and code addresses
//! inside them.

use super::*;
use crate::space;

/// Modules every machine loads, before the scenario's drivers.
pub(super) const BASE_MODULES: &[(&str, u64)] = &[
    ("hal.dll", 0x6_9000),
    ("kdcom.dll", 0xb000),
    ("mcupdate_GenuineIntel.dll", 0x4_7000),
    ("CLFS.SYS", 0x5_e000),
    ("CI.dll", 0xc_0000),
    ("Wdf01000.sys", 0xa_4000),
    ("ACPI.sys", 0x5_7000),
    ("volmgr.sys", 0x1_5000),
    ("disk.sys", 0x1_6000),
    ("CLASSPNP.SYS", 0x3_0000),
    ("fltmgr.sys", 0x4_c000),
    ("Ntfs.sys", 0x1_a3000),
    ("tcpip.sys", 0x2_00000),
    ("win32k.sys", 0x3_10000),
];

/// A CodeView RSDS record: the signature, the GUID (given as 32 hex digits
/// in symbol-server order; stored as Data1 u32, Data2 u16, Data3 u16
/// little-endian, then the Data4 bytes), the age and the NUL-terminated PDB
/// name.
pub(super) fn rsds_record(guid: &str, age: u32, pdb: &str) -> Vec<u8> {
    let g: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(guid.get(i * 2..i * 2 + 2).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    let mut rec = b"RSDS".to_vec();
    rec.extend([g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6]]);
    rec.extend(&g[8..16]);
    rec.extend(age.to_le_bytes());
    rec.extend(pdb.as_bytes());
    rec.push(0);
    rec
}

/// FNV-1a over `bytes` with a salt: a stable 64-bit value (synthetic GUIDs).
pub(super) fn fnv64(bytes: &[u8], salt: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in std::iter::once(&salt).chain(bytes) {
        h = (h ^ c as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Builder<'_> {
    pub(super) fn module_base(&mut self, size: u64) -> u64 {
        // Drivers load in their own region below/after the kernel.
        let base = match self.win.addresses {
            AddressStyle::Win7 => 0xFFFF_F880_0100_0000,
            _ => self.kernel_base + 0x1_0000_0000 - 0x4000_0000,
        };
        let used: u64 = self
            .modules
            .iter()
            .skip(1)
            .map(|m| round_up(m.size, 0x1_0000) + 0x1_0000)
            .sum();
        let _ = size;
        base + used
    }

    pub(super) fn modules(&mut self) -> Result<(), Error> {
        let mut list: Vec<(String, u64)> = BASE_MODULES
            .iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect();
        let mut real = Vec::new();
        for d in &self.sc.drivers {
            if let Some(path) = &d.image {
                let pe = crate::driver::PeDriver::load(path)?;
                list.retain(|(n, _)| !n.eq_ignore_ascii_case(&d.module));
                list.push((d.module.clone(), round_up(pe.size_of_image, 0x1000)));
                real.push((d.module.clone(), pe));
            } else if !list.iter().any(|(n, _)| n.eq_ignore_ascii_case(&d.module)) {
                list.push((d.module.clone(), 0x2_0000));
            }
        }
        self.modules.push(ModuleTruth {
            base: self.kernel_base,
            size: self.image_size,
            name: "ntoskrnl.exe".into(),
            path: "\\SystemRoot\\system32\\ntoskrnl.exe".into(),
        });
        for (n, s) in list {
            let base = if n == "hal.dll" && self.win.addresses == AddressStyle::Win7 {
                // Windows 7 loads the HAL right after the kernel.
                self.kernel_base + round_up(self.image_size, 0x1_0000) + 0x1_0000
            } else {
                self.module_base(s)
            };
            let path = if n.ends_with(".sys") || n.ends_with(".SYS") {
                format!("\\SystemRoot\\system32\\DRIVERS\\{n}")
            } else {
                format!("\\SystemRoot\\system32\\{n}")
            };
            if let Some(k) = real.iter().position(|(r, _)| r.eq_ignore_ascii_case(&n)) {
                let (_, pe) = real.swap_remove(k);
                self.real_modules.insert(self.modules.len(), pe);
            }
            self.modules.push(ModuleTruth {
                base,
                size: s,
                name: n,
                path,
            });
        }
        let head = self.sym("PsLoadedModuleList")?;
        self.map_image(head, 16)?;
        self.list_init(head);
        let lt = if self.l.has_type("_KLDR_DATA_TABLE_ENTRY") {
            "_KLDR_DATA_TABLE_ENTRY"
        } else {
            "_LDR_DATA_TABLE_ENTRY"
        };
        let size = self.size(lt)?;
        for i in 0..self.modules.len() {
            let m = self.modules[i].clone();
            if self.real_modules.contains_key(&i) {
                self.load_real_module(i)?;
            } else if i > 0 {
                self.module_header(&m)?;
            }
            let (_, e) = self.pool_alloc(size, *b"MmLd")?;
            self.list_add(head, e + self.off(lt, "InLoadOrderLinks")?);
            self.put(e, lt, "DllBase", m.base)?;
            self.put(e, lt, "SizeOfImage", m.size)?;
            self.put_opt(e, lt, "EntryPoint", m.base + 0x1000 + ((m.size / 3) & !0xF))?;
            self.unicode_string(e + self.off(lt, "FullDllName")?, &m.path, *b"MmLd")?;
            self.unicode_string(e + self.off(lt, "BaseDllName")?, &m.name, *b"MmLd")?;
            self.put_opt(e, lt, "LoadCount", 1)?;
            self.put_opt(e, lt, "Flags", 0x0900_4000)?;
            // The other module lists are not kept: self-linked.
            for f in ["InMemoryOrderLinks", "InInitializationOrderLinks"] {
                if self.has(lt, f) {
                    let o = e + self.off(lt, f)?;
                    self.list_init(o);
                }
            }
        }
        Ok(())
    }

    /// Load a real driver image as the Windows loader does: headers and
    /// sections in place (code pages executable), base relocations applied,
    /// its imports bound to the kernel's functions by name.
    pub(super) fn load_real_module(&mut self, i: usize) -> Result<(), Error> {
        let base = self.modules[i].base;
        let kb = self.kernel_base;
        let pe = &self.real_modules[&i];
        let l = self.l;
        let resolve = |dll: &str, name: &str| -> Option<u64> {
            let dll = dll.to_ascii_lowercase();
            if dll == "ntoskrnl.exe" || dll == "ntkrnlmp.exe" || dll == "hal.dll" {
                l.symbol(name).map(|r| kb + r)
            } else {
                None
            }
        };
        let image = pe.loaded(base, &resolve)?;
        if let Some((pdb, guid, age)) = pe.codeview() {
            self.module_pdbs.push(ModulePdbTruth {
                base,
                module: self.modules[i].name.clone(),
                pdb,
                guid,
                age,
            });
        }
        let pages: Vec<(u64, bool)> = (0..image.len() as u64)
            .step_by(PAGE_SIZE as usize)
            .map(|r| (r, pe.executable_page(r as u32)))
            .collect();
        for (r, code) in pages {
            let flags = if code {
                space::PTE_KERNEL_CODE
            } else {
                space::PTE_KERNEL_DATA
            };
            self.map_kernel_range(base + r, PAGE_SIZE, flags)?;
        }
        self.sp.write(base, &image)?;
        Ok(())
    }

    /// A minimal PE header page for a driver module.
    pub(super) fn module_header(&mut self, m: &ModuleTruth) -> Result<(), Error> {
        self.map_kernel_range(m.base, PAGE_SIZE, space::PTE_KERNEL_CODE)?;
        let dos = "_IMAGE_DOS_HEADER";
        let nt = "_IMAGE_NT_HEADERS64";
        self.put(m.base, dos, "e_magic", 0x5A4D)?;
        self.put(m.base, dos, "e_lfanew", 0xE8)?;
        let h = m.base + 0xE8;
        self.put(h, nt, "Signature", 0x4550)?;
        self.put(h, nt, "FileHeader.Machine", 0x8664)?;
        self.put(
            h,
            nt,
            "FileHeader.TimeDateStamp",
            self.win.timestamp as u64 - 0x1000,
        )?;
        self.put(
            h,
            nt,
            "FileHeader.SizeOfOptionalHeader",
            self.size("_IMAGE_OPTIONAL_HEADER64")?,
        )?;
        self.put(h, nt, "FileHeader.Characteristics", 0x22)?;
        self.put(h, nt, "OptionalHeader.Magic", 0x20B)?;
        self.put(h, nt, "OptionalHeader.ImageBase", m.base)?;
        self.put(h, nt, "OptionalHeader.SizeOfImage", m.size)?;
        self.put(h, nt, "OptionalHeader.SectionAlignment", 0x1000)?;
        self.put(h, nt, "OptionalHeader.FileAlignment", 0x200)?;
        self.put(h, nt, "OptionalHeader.Subsystem", 1)?;
        self.put(
            h,
            nt,
            "OptionalHeader.MajorOperatingSystemVersion",
            self.win.major as u64,
        )?;
        self.put(
            h,
            nt,
            "OptionalHeader.MinorOperatingSystemVersion",
            self.win.minor as u64,
        )?;
        self.module_debug_record(m)
    }

    /// The debug directory (data directory 6) and the CodeView RSDS record
    /// of a driver module's header page, as a linker writes them: PDB
    /// `<file stem>.pdb`, a GUID derived from the module name and the
    /// kernel's own GUID (stable across seeds, different per build), age 1.
    /// Laid out between the headers and the unwind tables
    /// (`stacks::TABLES_RVA`); recorded in the truth's `module_pdbs`.
    pub(super) fn module_debug_record(&mut self, m: &ModuleTruth) -> Result<(), Error> {
        let stem = m.name.rsplit_once('.').map(|x| x.0).unwrap_or(&m.name);
        let pdb = format!("{stem}.pdb");
        let (kguid, _) = self.l.pdb_identity().ok_or_else(|| missing("PDB GUID"))?;
        let key = format!("{}|{kguid}", m.name.to_ascii_lowercase());
        let guid = format!(
            "{:016X}{:016X}",
            fnv64(key.as_bytes(), 0),
            fnv64(key.as_bytes(), 1)
        );
        let age = 1u32;
        let rec = rsds_record(&guid, age, &pdb);
        let ddt = "_IMAGE_DEBUG_DIRECTORY";
        let dbg_rva = 0x300u64;
        let dbg_size = self.size(ddt)?;
        let rsds_rva = round_up(dbg_rva + dbg_size, 0x10);
        if rsds_rva + rec.len() as u64 > crate::stacks::TABLES_RVA {
            return Err(Error::Capacity {
                problem: format!(
                    "{}: the CodeView record naming {pdb} needs {:#x} bytes, the header has {:#x} before the unwind tables",
                    m.name,
                    rec.len(),
                    crate::stacks::TABLES_RVA - rsds_rva
                ),
            });
        }
        let nt = "_IMAGE_NT_HEADERS64";
        let h = m.base + 0xE8;
        self.put(h, nt, "OptionalHeader.NumberOfRvaAndSizes", 16)?;
        let dd = h + self.elem(nt, "OptionalHeader.DataDirectory", 6)?;
        self.put(dd, "_IMAGE_DATA_DIRECTORY", "VirtualAddress", dbg_rva)?;
        self.put(dd, "_IMAGE_DATA_DIRECTORY", "Size", dbg_size)?;
        let d = m.base + dbg_rva;
        self.put(d, ddt, "TimeDateStamp", self.win.timestamp as u64 - 0x1000)?;
        self.put(d, ddt, "Type", 2)?; // IMAGE_DEBUG_TYPE_CODEVIEW
        self.put(d, ddt, "SizeOfData", rec.len() as u64)?;
        self.put(d, ddt, "AddressOfRawData", rsds_rva)?;
        self.put(d, ddt, "PointerToRawData", rsds_rva)?;
        self.sp.write(m.base + rsds_rva, &rec)?;
        self.module_pdbs.push(ModulePdbTruth {
            base: m.base,
            module: m.name.clone(),
            pdb,
            guid,
            age,
        });
        Ok(())
    }

    /// Address of `module!symbol` (nt symbols from the table; other
    /// modules get a stable made-up offset inside the module).
    pub(super) fn code_address(&self, name: &str) -> u64 {
        let (m, s) = name.split_once('!').unwrap_or(("nt", name));
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for c in name.bytes() {
            h = (h ^ c as u64).wrapping_mul(0x100_0000_01b3);
        }
        let ret = 0x20 + (h % 0x180);
        if m.eq_ignore_ascii_case("nt") {
            if let Some(r) = self.l.symbol(s) {
                return self.kernel_base + r + ret;
            }
            return self.kernel_base + 0x1000 + (h % (self.image_size / 2));
        }
        let module = self.modules.iter().find(|md| {
            let stem = md.name.rsplit_once('.').map(|x| x.0).unwrap_or(&md.name);
            stem.eq_ignore_ascii_case(m) || md.name.eq_ignore_ascii_case(m)
        });
        match module {
            Some(md) => md.base + 0x1000 + (h % (md.size - 0x1000).max(0x100)),
            None => self.kernel_base + 0x1000 + (h % (self.image_size / 2)),
        }
    }

    pub(super) fn frame_name(&self, name: &str) -> String {
        let addr = self.code_address(name);
        let (m, s) = name.split_once('!').unwrap_or(("nt", name));
        if m.eq_ignore_ascii_case("nt") {
            if let Some(r) = self.l.symbol(s) {
                return format!("nt!{s}+{:#x}", addr - self.kernel_base - r);
            }
        }
        name.to_string()
    }
}
