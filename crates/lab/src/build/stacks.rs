//! Unwindable stacks: unwind data for every function the scenario's stacks
//! name, frames laid out from it (see `crate::stacks`), switch frames and
//! the registers of running threads.

use super::*;
use crate::space;
use crate::stacks::{self as st, FrameShape, ModuleTables, PlacedFunction};

/// Functions the HAL exports on the builds whose kernel lacks them: a
/// stack naming `nt!KeQueryPerformanceCounter` shows `hal!` there, as
/// WinDbg would.
pub(super) const HAL_FUNCTIONS: &[&str] = &[
    "KeQueryPerformanceCounter",
    "KeStallExecutionProcessor",
    "KfRaiseIrql",
    "KfLowerIrql",
    "HalRequestSoftwareInterrupt",
];

/// A frame the scenario names: the module's index, the module as a
/// debugger shows it, the function placed with a provisional call site.
type Resolved = (usize, String, PlacedFunction);

/// `Ntfs.sys` -> `Ntfs`.
fn stem(n: &str) -> String {
    n.rsplit_once('.').map(|x| x.0).unwrap_or(n).to_string()
}

impl Builder<'_> {
    /// Unwindable stacks (see `crate::stacks`): unwind data for every
    /// function the scenario's stacks name, frames laid out from it, the
    /// switch frame at KernelStack, running threads' RSP/RBP for the vCPU.
    pub(super) fn stacks(&mut self) -> Result<(), Error> {
        let mut tables: Vec<ModuleTables> = self
            .modules
            .iter()
            .enumerate()
            .map(|(i, m)| ModuleTables {
                base: m.base,
                size: m.size,
                name: m.name.clone(),
                lfanew: if i == 0 { 0x108 } else { 0xE8 },
                exports: i > 0,
                functions: Vec::new(),
            })
            .collect();
        let sc = self.sc;
        let chains = sc
            .threads
            .iter()
            .map(|t| self.frame_chain(t))
            .collect::<Result<Vec<_>, Error>>()?;
        let idle = self
            .resolve_frame("nt!KiIdleLoop")?
            .ok_or_else(|| missing("nt!KiIdleLoop"))?;
        for (mi, _, f) in chains.iter().flatten().chain(std::iter::once(&idle)) {
            if self.real_modules.contains_key(mi) {
                continue;
            }
            if !tables[*mi].functions.iter().any(|g| g.begin == f.begin) {
                tables[*mi].functions.push(f.clone());
            }
        }
        for t in tables.iter().filter(|t| !t.functions.is_empty()) {
            st::write_module(self, t)?;
        }
        self.code_sections(&tables[0].functions)?;
        for (ti, chain) in chains.iter().enumerate() {
            self.lay_out_stack(ti, chain)?;
        }
        self.context_frames()?;
        self.idle_loops(&idle)
    }

    /// The module a frame's `module` part names (`nt` is the kernel).
    fn frame_module(&self, m: &str) -> Option<usize> {
        if m.eq_ignore_ascii_case("nt") {
            return Some(0);
        }
        self.modules.iter().position(|md| {
            stem(&md.name).eq_ignore_ascii_case(m) || md.name.eq_ignore_ascii_case(m)
        })
    }

    /// Place the function a frame names (`module!function[+0xoffset]`);
    /// `None` for a module the machine does not load.
    fn resolve_frame(&self, full: &str) -> Result<Option<Resolved>, Error> {
        let (name, explicit) = match full.rsplit_once('+') {
            Some((n, o)) => (n, u64::from_str_radix(o.trim_start_matches("0x"), 16).ok()),
            None => (full, None),
        };
        let (mut m, s) = name.split_once('!').unwrap_or(("nt", name));
        let mut mi = match self.frame_module(m) {
            Some(i) => i,
            None => return Ok(None),
        };
        if mi == 0 && self.l.symbol(s).is_none() && HAL_FUNCTIONS.contains(&s) {
            // Not the kernel's on this build (KeQueryPerformanceCounter
            // is the HAL's on Windows 7): the HAL exports it.
            match self.frame_module("hal") {
                Some(h) => {
                    mi = h;
                    m = "hal";
                }
                None => return Ok(None),
            }
        }
        let module = if mi == 0 {
            "nt".to_string()
        } else {
            stem(&self.modules[mi].name)
        };
        let shape = FrameShape::for_function(&format!("{m}!{s}"));
        if let Some(pe) = self.real_modules.get(&mi) {
            let rva = *pe.functions.get(s).ok_or_else(|| Error::ScenarioField {
                field: "threads.stack".into(),
                problem: format!(
                    "{full}: {} has no function {s} (its map names {})",
                    self.modules[mi].name,
                    pe.functions.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })?;
            let begin = self.modules[mi].base + rva as u64;
            let site = begin + explicit.unwrap_or(pe.prolog_size(rva) as u64);
            let real = Some(pe.recipe(rva)?);
            let f = PlacedFunction {
                symbol: s.into(),
                begin,
                site,
                shape,
                real,
            };
            return Ok(Some((mi, module, f)));
        }
        let mut site = self.code_address(&format!("{m}!{s}"));
        let begin = match (mi, self.l.symbol(s)) {
            (0, Some(r)) => self.kernel_base + r,
            _ => (site - 0x20) & !0xF,
        };
        if mi == 0 && s != "KiIdleLoop" {
            // Return addresses sit a realistic way into the function,
            // but the lab's code for it must end before the next
            // kernel symbol (the idle loop keeps the address
            // `cpu_state` gives the idle vCPUs).
            let min = shape.prolog_bytes().len() as u64 + 5;
            let rva = begin - self.kernel_base;
            let room = self
                .l
                .next_symbol_rva(rva)
                .map(|n| n - rva)
                .unwrap_or(0x100);
            let deep = (site - begin).min(room.saturating_sub(0x28));
            site = begin + deep.max(min + (site - begin) % 4);
        }
        let f = PlacedFunction {
            symbol: s.into(),
            begin,
            site,
            shape,
            real: None,
        };
        Ok(Some((mi, module, f)))
    }

    /// The frames of thread `t`'s expected stack, up to the first that
    /// cannot be placed; in real code each returns right after its call
    /// to the next frame in.
    fn frame_chain(&self, t: &crate::scenario::Thread) -> Result<Vec<Resolved>, Error> {
        let mut chain: Vec<Resolved> = Vec::new();
        for f in &t.stack {
            match self.resolve_frame(f)? {
                Some(x) => chain.push(x),
                None => break,
            }
        }
        // Real code returns right after its call to the next frame in.
        for j in 0..chain.len() {
            let mi = chain[j].0;
            let Some(pe) = self.real_modules.get(&mi) else {
                continue;
            };
            if j == 0 {
                continue;
            }
            let base = self.modules[mi].base;
            let rva = (chain[j].2.begin - base) as u32;
            let callee = &chain[j - 1];
            if callee.2.shape.machine_frame.is_some() {
                // Interrupted, not calling: it resumes where it was.
                continue;
            }
            let target = (callee.0 == mi).then(|| (callee.2.begin - base) as u32);
            let site = pe.call_site(rva, &callee.2.symbol, target).ok_or_else(|| {
                Error::ScenarioField {
                    field: format!("threads[{}].stack", t.id),
                    problem: format!(
                        "{}!{} never calls {}!{}",
                        chain[j].1, chain[j].2.symbol, callee.1, callee.2.symbol
                    ),
                }
            })?;
            chain[j].2.site = base + site as u64;
        }
        Ok(chain)
    }

    /// Lay thread `ti`'s chain out below its InitialStack: the frames, then
    /// the switch frame (waiting) or the registers for its vCPU (running).
    fn lay_out_stack(&mut self, ti: usize, chain: &[Resolved]) -> Result<(), Error> {
        if chain.is_empty() {
            self.threads[ti].stack.clear();
            return Ok(());
        }
        let fs: Vec<&PlacedFunction> = chain.iter().map(|c| &c.2).collect();
        // A dry run sizes the chain; then it goes below InitialStack
        // (room for the trap frame), the outermost entry 8 mod 16.
        let probe = 0x1_0000_0008;
        let size = probe + 8 - st::lay_out(&fs, probe, ti as u64)?.low;
        let base = self.threads[ti].stack_base;
        let initial = base - 0x1D0;
        let running = self.threads[ti].cpu.is_some();
        let low = if running {
            (initial - size - 0x28) & !0xF
        } else {
            ((initial - size - 0x60) & !0xF) + 0x40
        };
        let entry = ((low + size - 8) & !0xF) + 8;
        let layout = st::lay_out(&fs, entry, ti as u64)?;
        let rsp = layout.low;
        self.map_kernel_range(rsp - 0x40, base - (rsp - 0x40), space::PTE_KERNEL_DATA)?;
        let bytes: Vec<u8> = layout.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.sp.write(rsp, &bytes)?;
        let rbp = layout.registers[5];
        if running {
            self.threads[ti].start_rip = fs[0].site;
            self.threads[ti].start_rsp = rsp;
            self.threads[ti].start_rbp = rbp;
        } else {
            // KSWITCH_FRAME: ..., Rbp at +0x30, Return at +0x38.
            let ks = rsp - 0x40;
            self.sp.write(ks + 0x30, &rbp.to_le_bytes())?;
            self.sp.write(ks + 0x38, &fs[0].site.to_le_bytes())?;
            let e = self.threads[ti].ethread;
            self.put(e, "_ETHREAD", "Tcb.KernelStack", ks)?;
            self.threads[ti].kernel_stack = ks;
        }
        self.threads[ti].stack = chain.iter().map(|(_, m, f)| st::frame_text(m, f)).collect();
        self.threads[ti].frame_rsps = layout.rsps.clone();
        Ok(())
    }

    /// Each processor's registers in KPRCB.ProcessorState.ContextFrame,
    /// as KeBugCheck saves them (a crash dump's header holds only one
    /// CONTEXT).
    fn context_frames(&mut self) -> Result<(), Error> {
        for i in 0..self.sc.cpus.len() {
            let c = self.cpu_state(i);
            let prcb = self.kpcrs[i].1;
            let cf = "ProcessorState.ContextFrame.";
            if !self.has("_KPRCB", &format!("{cf}Rip")) {
                break;
            }
            for (f, v) in [
                ("Rip", c.rip),
                ("Rsp", c.gpr[7]),
                ("Rbp", c.gpr[6]),
                ("Rbx", c.gpr[1]),
                ("Rsi", c.gpr[4]),
                ("Rdi", c.gpr[5]),
                ("EFlags", c.rflags),
                ("SegCs", c.selectors[0] as u64),
                ("SegSs", c.selectors[5] as u64),
            ] {
                self.put(prcb, "_KPRCB", &format!("{cf}{f}"), v)?;
            }
        }
        Ok(())
    }

    /// Idle loops: one KiIdleLoop frame at InitialStack - 0x58 (where
    /// `cpu_state` points RSP), returning to 0.
    fn idle_loops(&mut self, idle: &Resolved) -> Result<(), Error> {
        let is = self.off("_ETHREAD", "Tcb.InitialStack")?;
        for i in 0..self.sc.cpus.len() {
            let b = self.sp.read(self.idle_threads[i] + is, 8);
            let initial = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
            let entry = initial - 0x58 + idle.2.shape.frame_size() - 8;
            let layout = st::lay_out(&[&idle.2], entry, 0)?;
            let bytes: Vec<u8> = layout.words.iter().flat_map(|w| w.to_le_bytes()).collect();
            self.sp.write(layout.low, &bytes)?;
        }
        Ok(())
    }

    /// The kernel's functions above `.data` (PAGE code in real kernels)
    /// need an executable section: split the image into `.text`, `.data`
    /// and `PAGE` at the first page of such a function.
    pub(super) fn code_sections(
        &mut self,
        funcs: &[crate::stacks::PlacedFunction],
    ) -> Result<(), Error> {
        let kb = self.kernel_base;
        let size = self.image_size;
        let half = round_up(size / 2, 0x1000);
        let Some(page) = funcs
            .iter()
            .map(|f| (f.begin - kb) & !0xFFF)
            .filter(|&r| r >= half)
            .min()
        else {
            return Ok(());
        };
        let nt = "_IMAGE_NT_HEADERS64";
        let sht = "_IMAGE_SECTION_HEADER";
        let h = kb + 0x108;
        let sh = h + self.size(nt)?;
        let shs = self.size(sht)?;
        self.put(h, nt, "FileHeader.NumberOfSections", 3)?;
        let data = sh + shs;
        for f in ["Misc.VirtualSize", "SizeOfRawData"] {
            self.put(data, sht, f, page - half)?;
        }
        let s = sh + 2 * shs;
        self.sp.write(s, b"PAGE\0\0\0\0")?;
        for (f, v) in [
            ("Misc.VirtualSize", size - page),
            ("VirtualAddress", page),
            ("SizeOfRawData", size - page),
            ("PointerToRawData", page),
            ("Characteristics", 0x6000_0020),
        ] {
            self.put(s, sht, f, v)?;
        }
        Ok(())
    }
}
