//! Processes and threads: EPROCESS, ETHREAD, kernel stacks, the idle
//! process and threads, KPCR/KPRCB per CPU and each vCPU's registers.

use super::*;
use std::collections::HashSet;

use crate::image::LabCpu;
use crate::scenario::ThreadState;
use crate::space;

/// Thread states (KTHREAD_STATE); Windows 7's PDB lacks the enum, the
/// values are the documented ones.
pub(super) fn thread_state_value(l: &dyn Layout, name: &str) -> u64 {
    if let Some(v) = l.enum_value("_KTHREAD_STATE", name) {
        return v as u64;
    }
    match name {
        "Initialized" => 0,
        "Ready" => 1,
        "Running" => 2,
        "Standby" => 3,
        "Terminated" => 4,
        "Waiting" => 5,
        "Transition" => 6,
        _ => 7,
    }
}

/// Affinity of all `n` CPUs (n <= 64).
pub(super) fn affinity_mask(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

impl Builder<'_> {
    pub(super) fn filetime_after_boot(&mut self, secs: Option<u64>, default_max: u64) -> u64 {
        let s = match secs {
            Some(s) => s,
            None => self.rng.gen_range(1..default_max.max(2)),
        };
        let uptime = self.system_time - self.boot_time;
        self.boot_time + (s * 10_000_000).min(uptime.saturating_sub(10_000_000))
    }

    pub(super) fn processes(&mut self) -> Result<(), Error> {
        let ep = "_EPROCESS";
        let esize = self.size(ep)?;
        let head = self.sym("PsActiveProcessHead")?;
        self.map_image(head, 16)?;
        self.list_init(head);
        let htl = self.sym("HandleTableListHead")?;
        self.map_image(htl, 16)?;
        self.list_init(htl);
        let mut sessions: HashMap<u32, u64> = HashMap::new();
        let sc = self.sc;
        for (pi, p) in sc.processes.iter().enumerate() {
            let e = self.alloc_object("Process", esize, None)?;
            let dtb = if p.pid == 4 {
                self.sp.pml4
            } else {
                self.sp.alloc(&mut self.rng)?
            };
            self.dispatcher_header(e, "ProcessObject", 0, "_KPROCESS")?;
            self.put(e, ep, "Pcb.DirectoryTableBase", dtb * PAGE_SIZE)?;
            let ktl = e + self.off(ep, "Pcb.ThreadListHead")?;
            self.list_init(ktl);
            let tl = e + self.off(ep, "ThreadListHead")?;
            self.list_init(tl);
            self.put(e, ep, "UniqueProcessId", p.pid)?;
            self.put(e, ep, "InheritedFromUniqueProcessId", p.parent)?;
            self.list_add(head, e + self.off(ep, "ActiveProcessLinks")?);
            let ct = if p.pid == 4 {
                self.boot_time
            } else {
                let default = if p.pid < 1000 { 60 } else { 3600 };
                self.filetime_after_boot(p.created_after_boot, default)
            };
            self.put(e, ep, "CreateTime", ct)?;
            let mut name = p.name.as_bytes().to_vec();
            name.truncate(15);
            name.resize(15, 0);
            let nm = self.off(ep, "ImageFileName")?;
            self.sp.write(e + nm, &name)?;
            let nthreads = sc.threads.iter().filter(|t| t.pid == p.pid).count() as u64;
            self.put(e, ep, "ActiveThreads", nthreads)?;
            self.put_opt(e, ep, "Pcb.BasePriority", 8)?;
            self.put_opt(e, ep, "Pcb.Affinity.Bitmap", affinity_mask(sc.cpus.len()))?;
            self.put_opt(e, ep, "Pcb.Affinity.Count", 1)?;
            self.put_opt(e, ep, "Pcb.ActiveProcessors.Bitmap", 0)?;
            if self.has(ep, "Pcb.ProcessListEntry") {
                let o = e + self.off(ep, "Pcb.ProcessListEntry")?;
                self.list_init(o);
            }
            // Handle table.
            let ht = "_HANDLE_TABLE";
            let (_, h) = self.pool_alloc(self.size(ht)?, *b"Obtb")?;
            self.put(e, ep, "ObjectTable", h)?;
            self.put(h, ht, "QuotaProcess", if p.pid == 4 { 0 } else { e })?;
            self.put(h, ht, "UniqueProcessId", p.pid)?;
            self.list_add(htl, h + self.off(ht, "HandleTableList")?);
            // Session.
            if let Some(s) = p.session {
                let sv = match sessions.get(&s) {
                    Some(v) => *v,
                    None => {
                        let ss = self.size("_MM_SESSION_SPACE")?;
                        let v = self.alloc_pages(ss)?;
                        self.put(v, "_MM_SESSION_SPACE", "SessionId", s as u64)?;
                        self.put_opt(v, "_MM_SESSION_SPACE", "ReferenceCount", 1)?;
                        if self.has("_MM_SESSION_SPACE", "ProcessList") {
                            let o = v + self.off("_MM_SESSION_SPACE", "ProcessList")?;
                            self.list_init(o);
                        }
                        sessions.insert(s, v);
                        v
                    }
                };
                self.put(e, ep, "Session", sv)?;
                if self.has(ep, "SessionProcessLinks")
                    && self.has("_MM_SESSION_SPACE", "ProcessList")
                {
                    let o = sv + self.off("_MM_SESSION_SPACE", "ProcessList")?;
                    let l = e + self.off(ep, "SessionProcessLinks")?;
                    self.list_add(o, l);
                }
            }
            if p.pid != 4 {
                // PEB address (not mapped: user memory is not modelled).
                let peb = 0x7FF_FFFD_0000 + (self.rng.gen_range(0..0x20u64) << 12);
                self.put(e, ep, "Peb", peb)?;
            }
            let _ = pi;
            self.procs.push(ProcRec {
                eprocess: e,
                dtb_pfn: dtb,
                handle_table: h,
                create_time: ct,
                ..Default::default()
            });
        }
        // The idle process: not on the active list, PID 0, System's DTB.
        let idle = match self.l.symbol("KiInitialProcess") {
            Some(r) => {
                let va = self.kernel_base + r;
                self.map_image(va, esize)?;
                va
            }
            None => self.alloc_object("Process", esize, None)?,
        };
        self.dispatcher_header(idle, "ProcessObject", 0, "_KPROCESS")?;
        self.put(idle, ep, "Pcb.DirectoryTableBase", self.sp.pml4 * PAGE_SIZE)?;
        let nm = self.off(ep, "ImageFileName")?;
        let mut name = b"Idle".to_vec();
        name.resize(15, 0);
        self.sp.write(idle + nm, &name)?;
        for f in ["Pcb.ThreadListHead", "ThreadListHead", "ActiveProcessLinks"] {
            let o = idle + self.off(ep, f)?;
            self.list_init(o);
        }
        self.idle_process = idle;
        Ok(())
    }

    pub(super) fn new_stack(&mut self) -> Result<(u64, u64), Error> {
        // 24 KiB kernel stack plus a guard page; only the top two pages
        // (where the frames are) are resident.
        let size = 0x6000u64;
        let limit = self.stack_next + PAGE_SIZE;
        let base = limit + size;
        self.stack_next = base;
        self.map_kernel_range(base - 0x2000, 0x2000, space::PTE_KERNEL_DATA)?;
        Ok((base, limit))
    }

    // The arguments are the thread's identity fields; a struct for them
    // would only be built to be taken apart here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn init_thread(
        &mut self,
        t: u64,
        process: u64,
        state: &str,
        tid: u64,
        pid: u64,
        create: u64,
        start: u64,
    ) -> Result<(u64, u64), Error> {
        let et = "_ETHREAD";
        self.dispatcher_header(t, "ThreadObject", 0, "_KTHREAD")?;
        let sv = thread_state_value(self.l, state);
        self.put(t, et, "Tcb.State", sv)?;
        self.put(t, et, "Tcb.Process", process)?;
        self.put(t, et, "Tcb.ApcState.Process", process)?;
        let aplh = t + self.off(et, "Tcb.ApcState.ApcListHead")?;
        let le = self.size("_LIST_ENTRY")?;
        self.list_init(aplh);
        self.list_init(aplh + le);
        let (base, limit) = self.new_stack()?;
        let initial = base - 0x1D0;
        let ks = initial - 0x3A0;
        self.put(t, et, "Tcb.StackBase", base)?;
        self.put(t, et, "Tcb.StackLimit", limit)?;
        self.put(t, et, "Tcb.InitialStack", initial)?;
        self.put(t, et, "Tcb.KernelStack", ks)?;
        self.put_opt(t, et, "Tcb.KernelStackResident", 1)?;
        self.put_opt(t, et, "Tcb.Priority", 9)?;
        self.put_opt(t, et, "Tcb.BasePriority", 8)?;
        self.thread_affinity(t, affinity_mask(self.sc.cpus.len()), false)?;
        let mlh = t + self.off(et, "Tcb.MutantListHead")?;
        self.list_init(mlh);
        self.put(t, et, "Cid.UniqueProcess", pid)?;
        self.put(t, et, "Cid.UniqueThread", tid)?;
        self.put(t, et, "CreateTime", create)?;
        self.put(t, et, "StartAddress", start)?;
        self.put_opt(t, et, "Win32StartAddress", start)?;
        let irpl = t + self.off(et, "IrpList")?;
        self.list_init(irpl);
        Ok((base, ks))
    }

    /// `KTHREAD.Affinity` and `UserAffinity`: the CPUs (of group 0, the
    /// lab's only one) in `mask`. Inline `_GROUP_AFFINITY` (`Mask`,
    /// `Group`) where the build has it; where they point at a
    /// `_KAFFINITY_EX` (newer builds), one is allocated in pool only when
    /// `pointed` (a scenario's explicit affinity), else they stay NULL:
    /// affinity unknown to a reader.
    fn thread_affinity(&mut self, t: u64, mask: u64, pointed: bool) -> Result<(), Error> {
        let et = "_ETHREAD";
        if self.has(et, "Tcb.Affinity.Mask") {
            for f in ["Tcb.Affinity", "Tcb.UserAffinity"] {
                self.put_opt(t, et, &format!("{f}.Mask"), mask)?;
                self.put_opt(t, et, &format!("{f}.Group"), 0)?;
            }
            return Ok(());
        }
        if !pointed || !self.has("_KAFFINITY_EX", "Bitmap") {
            return Ok(());
        }
        let ka = "_KAFFINITY_EX";
        let (_, a) = self.pool_alloc(self.size(ka)?, *b"Affn")?;
        // Size: how many group masks the bitmap holds (its array's length).
        let bitmap = if self.has(ka, "StaticBitmap") {
            "StaticBitmap"
        } else {
            "Bitmap"
        };
        let words = match self.l.field(ka, bitmap).map(|f| f.shape) {
            Some(crate::layout::Shape::Array { count, .. }) => count.max(1),
            _ => 1,
        };
        self.put(a, ka, "Count", 1)?;
        self.put(a, ka, "Size", words)?;
        self.put(a, ka, "Bitmap", mask)?;
        self.put(t, et, "Tcb.Affinity", a)?;
        self.put_opt(t, et, "Tcb.UserAffinity", a)?;
        Ok(())
    }

    pub(super) fn threads(&mut self) -> Result<(), Error> {
        let et = "_ETHREAD";
        let esize = self.size(et)?;
        let sc = self.sc;
        let mut used: HashSet<u64> = sc.processes.iter().map(|p| p.pid).collect();
        used.extend(sc.threads.iter().filter_map(|t| t.tid));
        let mut next_tid = 8u64;
        for (ti, t) in sc.threads.iter().enumerate() {
            let pi = self.ix.pids[&t.pid];
            let tid = match t.tid {
                Some(x) => x,
                None => {
                    while used.contains(&next_tid) {
                        next_tid += 4;
                    }
                    used.insert(next_tid);
                    next_tid
                }
            };
            let e = self.alloc_object("Thread", esize, None)?;
            let process = self.procs[pi].eprocess;
            let start_name = t.start.clone().unwrap_or_else(|| {
                if t.pid == 4 {
                    "nt!PspSystemThreadStartup".into()
                } else {
                    "ntdll!RtlUserThreadStart".into()
                }
            });
            let start = if start_name.starts_with("ntdll!") {
                // User-mode start in ntdll's usual place.
                0x7FF_FFF0_0000 + (self.code_address(&start_name) & 0xF_FFF0)
            } else {
                self.code_address(&start_name)
            };
            let pct = self.procs[pi].create_time;
            let create = pct + self.rng.gen_range(0..50_000_000u64);
            let state = match t.state {
                ThreadState::Running => "Running",
                ThreadState::Ready => "Ready",
                ThreadState::Waiting => "Waiting",
            };
            let (base, ks) = self.init_thread(e, process, state, tid, t.pid, create, start)?;
            let priority = t.priority.unwrap_or(9);
            self.put_opt(e, et, "Tcb.Priority", u64::from(priority))?;
            let affinity = match &t.affinity {
                Some(cpus) => {
                    let mask = cpus.iter().fold(0u64, |m, &c| m | 1 << c);
                    self.thread_affinity(e, mask, true)?;
                    mask
                }
                None => affinity_mask(sc.cpus.len()),
            };
            if let Some(c) = t.counters {
                self.put_opt(e, et, "Tcb.ContextSwitches", u64::from(c.context_switches))?;
                self.put_opt(e, et, "Tcb.KernelTime", u64::from(c.kernel_ticks))?;
                self.put_opt(e, et, "Tcb.UserTime", u64::from(c.user_ticks))?;
            }
            if t.pid != 4 {
                let teb = 0x7FF_FFFD_E000 - (ti as u64 % 0x40) * 0x2000;
                self.put(e, et, "Tcb.Teb", teb)?;
            }
            let ktl = self.procs[pi].eprocess + self.off("_EPROCESS", "Pcb.ThreadListHead")?;
            self.list_add(ktl, e + self.off(et, "Tcb.ThreadListEntry")?);
            let tl = self.procs[pi].eprocess + self.off("_EPROCESS", "ThreadListHead")?;
            self.list_add(tl, e + self.off(et, "ThreadListEntry")?);
            self.procs[pi].threads.push(ti);
            // The expected stack, as return addresses above the saved
            // switch frame (there is no unwind data to make them walkable).
            let mut frames = Vec::new();
            for (k, f) in t.stack.iter().enumerate() {
                let a = self.code_address(f);
                let at = ks + 0x38 + k as u64 * 0x40;
                if at + 8 <= base {
                    self.sp.write(at, &a.to_le_bytes())?;
                }
                frames.push(self.frame_name(f));
            }
            self.threads.push(ThreadRec {
                ethread: e,
                tid,
                stack_base: base,
                kernel_stack: ks,
                start,
                stack: frames,
                priority,
                affinity,
                ..Default::default()
            });
        }
        Ok(())
    }

    pub(super) fn cpus(&mut self) -> Result<(), Error> {
        let kpcr_t = "_KPCR";
        let span = round_up(self.size(kpcr_t)?, PAGE_SIZE);
        let region = self.kernel_base + round_up(self.image_size, 0x10_0000) + 0x40_0000;
        let n = self.sc.cpus.len();
        let prcb_off = self.off(kpcr_t, "Prcb")?;
        let et = "_ETHREAD";
        let esize = self.size(et)?;
        for i in 0..n {
            let kpcr = region + i as u64 * (span + PAGE_SIZE);
            self.map_kernel_range(kpcr, span, space::PTE_KERNEL_DATA)?;
            let prcb = kpcr + prcb_off;
            self.put(kpcr, kpcr_t, "Self", kpcr)?;
            self.put(kpcr, kpcr_t, "CurrentPrcb", prcb)?;
            self.put_opt(kpcr, kpcr_t, "NtTib.Self", kpcr)?;
            self.put(kpcr, kpcr_t, "Prcb.Number", i as u64)?;
            self.put_opt(kpcr, kpcr_t, "Prcb.SetMember", 1u64 << i)?;
            // One processor group: CPU i is bit i of group 0.
            self.put_opt(kpcr, kpcr_t, "Prcb.GroupSetMember", 1u64 << i)?;
            self.put_opt(kpcr, kpcr_t, "Prcb.Group", 0)?;
            self.put_opt(kpcr, kpcr_t, "Prcb.GroupIndex", i as u64)?;
            self.put_opt(kpcr, kpcr_t, "Prcb.MHz", 2600)?;
            self.put_opt(kpcr, kpcr_t, "Prcb.CpuType", 6)?;
            if self.has(kpcr_t, "Prcb.VendorString") {
                let o = self.off(kpcr_t, "Prcb.VendorString")?;
                self.sp.write(kpcr + o, b"GenuineIntel")?;
            }
            // The idle thread (CPU 0's is KiInitialThread in the image).
            let idle = match (i, self.l.symbol("KiInitialThread")) {
                (0, Some(r)) => {
                    let va = self.kernel_base + r;
                    self.map_image(va, esize)?;
                    va
                }
                _ => self.alloc_object("Thread", esize, None)?,
            };
            let running_idle = self.sc.cpus[i].runs == "idle";
            let state = if running_idle { "Running" } else { "Ready" };
            let start = self.code_address("nt!KiIdleLoop");
            let ip = self.idle_process;
            let bt = self.boot_time;
            self.init_thread(idle, ip, state, 0, 0, bt, start)?;
            self.put_opt(idle, et, "Tcb.NextProcessor", i as u64)?;
            self.put(kpcr, kpcr_t, "Prcb.IdleThread", idle)?;
            let current = if running_idle {
                idle
            } else {
                let ti = self.ix.threads[&self.sc.cpus[i].runs];
                self.threads[ti].cpu = Some(i as u32);
                self.threads[ti].ethread
            };
            self.put(kpcr, kpcr_t, "Prcb.CurrentThread", current)?;
            if current != idle {
                self.put_opt(current, et, "Tcb.NextProcessor", i as u64)?;
                self.put_opt(current, et, "Tcb.Running", 1)?;
            }
            self.idle_threads.push(idle);
            self.kpcrs.push((kpcr, prcb));
        }
        Ok(())
    }

    pub(super) fn cpu_state(&self, i: usize) -> LabCpu {
        let sc = self.sc;
        let (kpcr, _) = self.kpcrs[i];
        let (thread_rec, dtb, rip) = if sc.cpus[i].runs == "idle" {
            (
                None,
                self.sp.pml4 * PAGE_SIZE,
                self.code_address("nt!KiIdleLoop"),
            )
        } else {
            let ti = self.ix.threads[&sc.cpus[i].runs];
            let pi = self.ix.pids[&sc.threads[ti].pid];
            let rip = match sc.threads[ti].stack.first() {
                _ if self.threads[ti].start_rip != 0 => self.threads[ti].start_rip,
                Some(f) => self.code_address(f),
                None => self.code_address("nt!KeQueryPerformanceCounter"),
            };
            (Some(ti), self.procs[pi].dtb_pfn * PAGE_SIZE, rip)
        };
        let rsp = match thread_rec {
            Some(ti) if self.threads[ti].start_rsp != 0 => self.threads[ti].start_rsp,
            Some(ti) => self.threads[ti].kernel_stack - 0x48,
            None => {
                let b = self.sp.read(
                    self.idle_threads[i] + self.off("_ETHREAD", "Tcb.InitialStack").unwrap_or(0),
                    8,
                );
                u64::from_le_bytes(b.try_into().unwrap_or([0; 8])).saturating_sub(0x58)
            }
        };
        let mut gpr = [0u64; 16];
        gpr[4] = 0; // rsi
        gpr[6] = match thread_rec {
            Some(ti) if self.threads[ti].start_rbp != 0 => self.threads[ti].start_rbp,
            _ => rsp + 0x30,
        }; // rbp
        gpr[7] = rsp;
        gpr[1] = kpcr; // rbx: KiIdleLoop keeps the PRCB/PCR at hand
        LabCpu {
            gpr,
            rip,
            rflags: 0x246,
            // cs, ds, es, fs, gs, ss
            selectors: [0x10, 0x2B, 0x2B, 0x53, 0x2B, 0x18],
            fs_base: 0,
            gs_base: kpcr,
            kernel_gs_base: 0x7FF_FFFD_E000,
            cr0: 0x8005_0033,
            cr2: 0,
            cr3: dtb,
            cr4: if self.win.major >= 10 {
                0x3506F8
            } else {
                0x6F8
            },
            efer: 0xD01,
        }
    }
}
