//! An independent reader of lab images for the lab's own tests: it parses
//! the ISF as untyped JSON (not through the lab's layout module) and walks
//! the x64 page tables stored in the image.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use hangscope_lab::builds;
use hangscope_lab::image::{LabImage, PAGE_SIZE};
use hangscope_lab::scenario::Scenario;
use hangscope_lab::truth::GroundTruth;
use serde_json::Value;

pub struct Reader<'a> {
    img: &'a LabImage,
    isf: Value,
    dtb: u64,
    base: u64,
}

impl<'a> Reader<'a> {
    pub fn new(img: &'a LabImage, build_alias: &str) -> Self {
        let b = builds::find_build(build_alias).expect("known build");
        let path = builds::isf_path(&builds::symbols_dir(), b);
        let mut text = String::new();
        xz2::read::XzDecoder::new(std::fs::File::open(&path).expect("isf"))
            .read_to_string(&mut text)
            .expect("xz");
        let isf: Value = serde_json::from_str(&text).expect("json");
        Reader {
            img,
            isf,
            dtb: img.facts.dtb,
            base: img.facts.kernel_base,
        }
    }

    /// Offset of `a.b.c` in `ty`.
    pub fn off(&self, ty: &str, path: &str) -> u64 {
        let mut t = ty.to_string();
        let mut o = 0;
        for part in path.split('.') {
            let f = &self.isf["user_types"][&t]["fields"][part];
            assert!(!f.is_null(), "{ty}.{path}: no {part} in {t}");
            o += f["offset"].as_u64().unwrap();
            if let Some(n) = f["type"]["name"].as_str() {
                t = n.to_string();
            }
        }
        o
    }

    pub fn size(&self, ty: &str) -> u64 {
        self.isf["user_types"][ty]["size"].as_u64().expect(ty)
    }

    pub fn sym(&self, name: &str) -> u64 {
        self.base + self.isf["symbols"][name]["address"].as_u64().expect(name)
    }

    fn phys_u64(&self, pa: u64) -> u64 {
        let mut page = [0u8; PAGE_SIZE as usize];
        self.img.page_into(pa / PAGE_SIZE, &mut page);
        let o = (pa % PAGE_SIZE) as usize;
        u64::from_le_bytes(page[o..o + 8].try_into().unwrap())
    }

    /// Walk the 4-level tables from `dtb`.
    pub fn translate(&self, dtb: u64, va: u64) -> Option<u64> {
        let mut table = dtb & 0x000F_FFFF_FFFF_F000;
        for (level, shift) in [(4, 39u32), (3, 30), (2, 21), (1, 12)] {
            let e = self.phys_u64(table + ((va >> shift) & 0x1FF) * 8);
            if e & 1 == 0 {
                return None;
            }
            let addr = e & 0x000F_FFFF_FFFF_F000;
            if level > 1 && e & 0x80 != 0 {
                let mask = (1u64 << shift) - 1;
                return Some((addr & !mask) | (va & mask));
            }
            if level == 1 {
                return Some(addr | (va & 0xFFF));
            }
            table = addr;
        }
        None
    }

    pub fn read(&self, va: u64, len: usize) -> Vec<u8> {
        self.read_in(self.dtb, va, len)
    }

    pub fn read_in(&self, dtb: u64, va: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut page = [0u8; PAGE_SIZE as usize];
        while out.len() < len {
            let a = va + out.len() as u64;
            let pa = self
                .translate(dtb, a)
                .unwrap_or_else(|| panic!("unmapped {a:#x}"));
            self.img.page_into(pa / PAGE_SIZE, &mut page);
            let o = (pa % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - o).min(len - out.len());
            out.extend_from_slice(&page[o..o + n]);
        }
        out
    }

    pub fn u64(&self, va: u64) -> u64 {
        u64::from_le_bytes(self.read(va, 8).try_into().unwrap())
    }
    pub fn u32(&self, va: u64) -> u32 {
        u32::from_le_bytes(self.read(va, 4).try_into().unwrap())
    }
    pub fn u16(&self, va: u64) -> u16 {
        u16::from_le_bytes(self.read(va, 2).try_into().unwrap())
    }
    pub fn u8(&self, va: u64) -> u8 {
        self.read(va, 1)[0]
    }

    pub fn ustr(&self, at: u64) -> String {
        let len = self.u16(at) as usize;
        let buf = self.u64(at + self.off("_UNICODE_STRING", "Buffer"));
        if len == 0 {
            return String::new();
        }
        let b = self.read(buf, len);
        let w: Vec<u16> = b
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&w)
    }

    /// Entries of a LIST_ENTRY list (Flink walk, checking Blinks).
    pub fn list(&self, head: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut prev = head;
        let mut cur = self.u64(head);
        while cur != head {
            assert!(seen.insert(cur), "list at {head:#x} loops at {cur:#x}");
            assert_eq!(self.u64(cur + 8), prev, "Blink of {cur:#x}");
            out.push(cur);
            prev = cur;
            cur = self.u64(cur);
            assert!(out.len() < 100_000);
        }
        assert_eq!(self.u64(head + 8), prev, "Blink of the head {head:#x}");
        out
    }

    fn check_dtb(&self) {
        // Exactly one self-reference, in the allowed range, no PS bits.
        let mut selfs = Vec::new();
        for i in 0..512 {
            let e = self.phys_u64(self.dtb + i * 8);
            if e & 1 == 1 {
                assert_eq!(e & 0x80, 0, "PS bit in PML4 entry {i:#x}");
                if e & 0x000F_FFFF_FFFF_F000 == self.dtb {
                    selfs.push(i);
                }
                assert!(e & 0x000F_FFFF_FFFF_F000 < self.img.ram_size() + 0x4000_0000);
            }
        }
        assert_eq!(selfs.len(), 1, "self references {selfs:?}");
        assert!((0x100..0x1FF).contains(&selfs[0]));
        if self.img.facts.major_version == 6 {
            assert_eq!(selfs[0], 0x1ED);
        }
        assert!(self.dtb == 0x187000 || self.dtb == 0x1AA000);
    }

    fn check_kernel_pe(&self, truth: &GroundTruth) {
        let b = self.base;
        assert_eq!(&self.read(b, 2), b"MZ");
        let lfanew = self.u32(b + 0x3C) as u64;
        assert_eq!(self.u32(b + lfanew), 0x4550);
        assert_eq!(self.u16(b + lfanew + 4), 0x8664);
        // The RSDS record somewhere in the first page.
        let page = self.read(b, 0x1000);
        let pos = page.windows(4).position(|w| w == b"RSDS").expect("RSDS");
        let rec = &page[pos..pos + 0x18 + 13];
        assert_eq!(&rec[0x18..], b"ntkrnlmp.pdb\0");
        let g = &rec[4..20];
        let guid = format!(
            "{:08X}{:04X}{:04X}{}",
            u32::from_le_bytes(g[0..4].try_into().unwrap()),
            u16::from_le_bytes(g[4..6].try_into().unwrap()),
            u16::from_le_bytes(g[6..8].try_into().unwrap()),
            g[8..]
                .iter()
                .map(|x| format!("{x:02X}"))
                .collect::<String>()
        );
        assert_eq!(guid, truth.kernel.pdb_guid);
        let age = u32::from_le_bytes(rec[20..24].try_into().unwrap());
        assert_eq!(age, truth.kernel.pdb_age);
    }

    fn check_kuser(&self, sc: &Scenario, any_process_dtb: u64) {
        let k = 0xFFFF_F780_0000_0000;
        let major = self.u32(k + self.off("_KUSER_SHARED_DATA", "NtMajorVersion"));
        assert_eq!(major, self.img.facts.major_version);
        let pt = self.u32(k + self.off("_KUSER_SHARED_DATA", "NtProductType"));
        assert!((1..=3).contains(&pt));
        let tq = self.u64(k + self.off("_KUSER_SHARED_DATA", "TickCount"));
        assert_eq!(tq, sc.machine.tick_count);
        let root = self.read(k + self.off("_KUSER_SHARED_DATA", "NtSystemRoot"), 20);
        assert_eq!(
            root,
            "C:\\Windows"
                .encode_utf16()
                .flat_map(|c| c.to_le_bytes())
                .collect::<Vec<_>>()
        );
        // Same page at 0x7FFE0000 in a process address space.
        let a = self
            .translate(any_process_dtb, 0x7FFE_0000)
            .expect("user KUSER");
        let b = self.translate(any_process_dtb, k).expect("kernel KUSER");
        assert_eq!(a, b);
    }

    pub fn check_against(&self, sc: &Scenario, truth: &GroundTruth) {
        self.check_dtb();
        self.check_kernel_pe(truth);
        let ep = "_EPROCESS";
        let et = "_ETHREAD";
        // Processes.
        let links = self.off(ep, "ActiveProcessLinks");
        let procs: Vec<u64> = self
            .list(self.sym("PsActiveProcessHead"))
            .into_iter()
            .map(|l| l - links)
            .collect();
        assert_eq!(procs.len(), sc.processes.len());
        let mut tid_of: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut user_dtb = 0;
        for (i, &e) in procs.iter().enumerate() {
            let p = &sc.processes[i];
            assert_eq!(e, truth.processes[i].address);
            assert_eq!(self.u64(e + self.off(ep, "UniqueProcessId")), p.pid);
            assert_eq!(
                self.u64(e + self.off(ep, "InheritedFromUniqueProcessId")),
                p.parent
            );
            let name = self.read(e + self.off(ep, "ImageFileName"), 15);
            let name: Vec<u8> = name.into_iter().take_while(|&c| c != 0).collect();
            assert_eq!(
                String::from_utf8(name).unwrap(),
                p.name.chars().take(15).collect::<String>()
            );
            let dtb = self.u64(e + self.off(ep, "Pcb.DirectoryTableBase"));
            assert_eq!(dtb, truth.processes[i].dtb);
            if p.pid != 4 {
                user_dtb = dtb;
                // The kernel half is shared.
                assert_eq!(
                    self.translate(dtb, self.base),
                    self.translate(self.dtb, self.base)
                );
            }
            // Threads on both lists.
            let tl = self.off(et, "ThreadListEntry");
            let ths = self.list(e + self.off(ep, "ThreadListHead"));
            let ktl = self.off(et, "Tcb.ThreadListEntry");
            let kths = self.list(e + self.off(ep, "Pcb.ThreadListHead"));
            assert_eq!(ths.len(), kths.len());
            let want = sc.threads.iter().filter(|t| t.pid == p.pid).count();
            assert_eq!(ths.len(), want, "threads of {}", p.name);
            for (t, kt) in ths.iter().zip(kths.iter()) {
                let t = t - tl;
                assert_eq!(t, kt - ktl);
                let pid = self.u64(t + self.off(et, "Cid.UniqueProcess"));
                let tid = self.u64(t + self.off(et, "Cid.UniqueThread"));
                assert_eq!(pid, p.pid);
                assert_eq!(self.u64(t + self.off(et, "Tcb.Process")), e);
                assert!(tid_of.insert(t, (pid, tid)).is_none());
            }
            // Session id.
            if let Some(s) = p.session {
                let sess = self.u64(e + self.off(ep, "Session"));
                assert_eq!(
                    self.u32(sess + self.off("_MM_SESSION_SPACE", "SessionId")),
                    s
                );
            }
        }
        self.check_kuser(sc, user_dtb);
        // Every truth thread was found with its TID.
        for t in &truth.threads {
            assert_eq!(tid_of.get(&t.address), Some(&(t.pid, t.tid)));
            let state = self.u8(t.address + self.off(et, "Tcb.State"));
            let want = match t.state.as_str() {
                "Running" => 2,
                "Ready" => 1,
                _ => 5,
            };
            assert_eq!(state, want);
            // Wait blocks point at the waited objects.
            if !t.waits_on.is_empty() {
                let mut wb = self.u64(t.address + self.off(et, "Tcb.WaitBlockList"));
                for (k, obj) in t.waits_on.iter().enumerate() {
                    assert_eq!(self.u64(wb + self.off("_KWAIT_BLOCK", "Object")), *obj);
                    assert_eq!(self.u64(wb + self.off("_KWAIT_BLOCK", "Thread")), t.address);
                    if k + 1 < t.waits_on.len() {
                        wb += self.size("_KWAIT_BLOCK");
                    }
                }
                let wt = self.u32(t.address + self.off(et, "Tcb.WaitTime")) as u64;
                assert_eq!(wt, t.wait_time);
            }
            // IRPs on the IrpList.
            let irps: Vec<u64> = self
                .list(t.address + self.off(et, "IrpList"))
                .into_iter()
                .map(|l| l - self.off("_IRP", "ThreadListEntry"))
                .collect();
            assert_eq!(irps, t.irps);
        }
        // CPUs via KiProcessorBlock.
        let kpb = self.sym("KiProcessorBlock");
        for c in &truth.kernel.cpus {
            let prcb = self.u64(kpb + c.index as u64 * 8);
            assert_eq!(prcb, c.kprcb);
            assert_eq!(
                self.u64(prcb + self.off("_KPRCB", "CurrentThread")),
                c.current_thread
            );
            assert_eq!(self.u64(c.kpcr + self.off("_KPCR", "Self")), c.kpcr);
            assert_eq!(self.img.cpus[c.index as usize].gs_base, c.kpcr);
        }
        // ERESOURCEs on ExpSystemResourcesList.
        let srl = self.off("_ERESOURCE", "SystemResourcesList");
        let res: HashSet<u64> = self
            .list(self.sym("ExpSystemResourcesList"))
            .into_iter()
            .map(|l| l - srl)
            .collect();
        for r in &truth.eresources {
            assert!(res.contains(&r.address), "ERESOURCE {} not listed", r.name);
            let ac = self.u16(r.address + self.off("_ERESOURCE", "ActiveCount"));
            assert_eq!(ac as u32, r.active_count);
            if let Some(o) = r.owners.first() {
                let ot = self.u64(r.address + self.off("_ERESOURCE", "OwnerEntry.OwnerThread"));
                assert_eq!(ot, o.thread);
            }
            let flag = self.u16(r.address + self.off("_ERESOURCE", "Flag"));
            assert_eq!(flag & 0x80 != 0, r.exclusive);
        }
        // Files: name and device name through NAME_INFO.
        let oh_body = self.off("_OBJECT_HEADER", "Body");
        let mask_tab = self.sym("ObpInfoMaskToOffset");
        for f in truth.files.iter().step_by(97) {
            let name = self.ustr(f.address + self.off("_FILE_OBJECT", "FileName"));
            assert_eq!(name, f.name);
            let dev = self.u64(f.address + self.off("_FILE_OBJECT", "DeviceObject"));
            let hdr = dev - oh_body;
            let mask = self.u8(hdr + self.off("_OBJECT_HEADER", "InfoMask"));
            if mask & 2 != 0 {
                let ni = hdr - self.u8(mask_tab + (mask & 3) as u64) as u64;
                let n = self.ustr(ni + self.off("_OBJECT_HEADER_NAME_INFO", "Name"));
                assert_eq!(format!("\\Device\\{n}"), f.device);
            }
        }
        // Handles: decode each process's table and compare.
        let cookie = self.isf["symbols"]["ObHeaderCookie"]
            .as_object()
            .map(|_| self.u8(self.sym("ObHeaderCookie")));
        let oti = self.sym("ObTypeIndexTable");
        for (i, &e) in procs.iter().enumerate() {
            let pid = sc.processes[i].pid;
            let want: Vec<_> = truth.handles.iter().filter(|h| h.pid == pid).collect();
            let table = self.u64(e + self.off(ep, "ObjectTable"));
            let code = self.u64(table + self.off("_HANDLE_TABLE", "TableCode"));
            let es = self.size("_HANDLE_TABLE_ENTRY");
            let lows: Vec<u64> = match code & 7 {
                0 => vec![code],
                1 => (0..512)
                    .map(|k| self.u64((code & !7) + k * 8))
                    .take_while(|&p| p != 0)
                    .collect(),
                l => panic!("level {l}"),
            };
            let mut got = Vec::new();
            for (d, low) in lows.iter().enumerate() {
                for k in 0..PAGE_SIZE / es {
                    let raw = self.u64(low + k * es);
                    let hdr = if self.isf["user_types"]["_HANDLE_TABLE_ENTRY"]["fields"]["Object"]
                        .is_null()
                    {
                        let bits = (raw >> 20) & ((1 << 44) - 1);
                        if bits == 0 {
                            continue;
                        }
                        (bits << 4) | 0xFFFF_0000_0000_0000
                    } else {
                        if raw == 0 {
                            continue;
                        }
                        raw & !0xF
                    };
                    let ti = self.u8(hdr + self.off("_OBJECT_HEADER", "TypeIndex"));
                    let idx = match cookie {
                        Some(c) => ti ^ c ^ ((hdr >> 8) & 0xFF) as u8,
                        None => ti,
                    };
                    let ty = self.u64(oti + idx as u64 * 8);
                    let tname = self.ustr(ty + self.off("_OBJECT_TYPE", "Name"));
                    got.push((d as u64 * 1024 + k * 4, hdr + oh_body, tname));
                }
            }
            assert_eq!(got.len(), want.len(), "handles of pid {pid}");
            for (g, w) in got.iter().zip(want.iter()) {
                assert_eq!(g.0, w.handle);
                assert_eq!(g.1, w.object);
                assert_eq!(g.2, w.type_name);
            }
        }
        // Modules.
        let lt = if self.isf["user_types"]["_KLDR_DATA_TABLE_ENTRY"].is_null() {
            "_LDR_DATA_TABLE_ENTRY"
        } else {
            "_KLDR_DATA_TABLE_ENTRY"
        };
        let mods = self.list(self.sym("PsLoadedModuleList"));
        assert_eq!(mods.len(), truth.modules.len());
        for (m, t) in mods.iter().zip(truth.modules.iter()) {
            assert_eq!(self.u64(m + self.off(lt, "DllBase")), t.base);
            assert_eq!(self.ustr(m + self.off(lt, "BaseDllName")), t.name);
        }
        // The low stub Volatility tries first for the kernel base.
        let sig = self.phys_u64(0x1000);
        assert_eq!(sig & 0xFFFF_FFFF_FFFF_00FF, 0x0000_0001_0006_00E9);
        assert_eq!(self.phys_u64(0x1000 + 0xA0) + 1, self.dtb | 1);
        let lm = self.phys_u64(0x1000 + 0x70) & 0xFFFF_FFFF_FFFF;
        assert_eq!(lm & 3, 0);
        let top = lm & !0x1F_FFFF;
        let kb = self.base & 0xFFFF_FFFF_FFFF;
        assert!(
            kb <= top && top - kb < 32 << 20,
            "LmTarget {lm:#x} vs base {kb:#x}"
        );
        // PspCidTable: PID/TID -> body.
        let cid = self.u64(self.sym("PspCidTable"));
        let code = self.u64(cid + self.off("_HANDLE_TABLE", "TableCode"));
        let es = self.size("_HANDLE_TABLE_ENTRY");
        let per = PAGE_SIZE / es;
        let lookup = |id: u64| -> u64 {
            let i = id / 4;
            let low = if code & 7 == 0 {
                assert!(i < per);
                code
            } else {
                self.u64((code & !7) + (i / per) * 8)
            };
            let raw = self.u64(low + (i % per) * es);
            if self.isf["user_types"]["_HANDLE_TABLE_ENTRY"]["fields"]["Object"].is_null() {
                (((raw >> 20) & ((1 << 44) - 1)) << 4) | 0xFFFF_0000_0000_0000
            } else {
                raw & !0xF
            }
        };
        for p in &truth.processes {
            assert_eq!(lookup(p.pid), p.address, "PspCidTable pid {}", p.pid);
        }
        for t in &truth.threads {
            assert_eq!(lookup(t.tid), t.address, "PspCidTable tid {}", t.tid);
        }
        // KDBG header.
        let kd = self.sym("KdDebuggerDataBlock");
        assert_eq!(&self.read(kd + 0x10, 4), b"KDBG");
        assert_eq!(self.u64(kd + 0x18), self.base);
        assert_eq!(self.u64(kd + 0x50), self.sym("PsActiveProcessHead"));
        // Verdict.
        if let Some(e) = &sc.expect {
            assert_eq!(truth.verdict.overall, e.verdict);
        }
    }
}
