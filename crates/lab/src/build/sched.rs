//! The scheduler's queues and the memory manager's counters: each CPU's
//! `DispatcherReadyListHead[32]` with `ReadySummary`, from 8.1 on the
//! shared `_KSHARED_READY_QUEUE` when a thread sits on it, its DPC queue, and
//! available pages and commit (`MiSystemPartition.Vp` from 1607 on, the
//! `Mm*` globals before).

use super::*;
use crate::scenario::ThreadState;

/// Where the builder put a queued DPC, for the oracle.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DpcRec {
    /// The CPU.
    pub(crate) cpu: u32,
    /// `_KDPC` address.
    pub(crate) address: u64,
    /// `DeferredRoutine`.
    pub(crate) routine: u64,
}

impl Builder<'_> {
    /// Empty ready lists and DPC queues on every CPU (a kernel initialises
    /// them at boot), then each ready thread on its CPU's list of its
    /// priority, linked through `KTHREAD.WaitListEntry`.
    pub(super) fn ready_queues(&mut self) -> Result<(), Error> {
        let pr = "_KPRCB";
        let le = self.size("_LIST_ENTRY")?;
        let heads = self.off(pr, "DispatcherReadyListHead")?;
        let kpcrs = self.kpcrs.clone();
        for &(_, prcb) in &kpcrs {
            for p in 0..32 {
                self.list_init(prcb + heads + p * le);
            }
            if self.has("_KDPC_DATA", "DpcListHead") {
                let d = self.off(pr, "DpcData")?;
                let ds = self.size("_KDPC_DATA")?;
                let h = self.off("_KDPC_DATA", "DpcListHead")?;
                for i in 0..2 {
                    self.list_init(prcb + d + i * ds + h);
                }
            }
        }
        let sc = self.sc;
        let link = self.off("_ETHREAD", "Tcb.WaitListEntry")?;
        let shared = self.shared_ready_queue()?;
        let mut summary = vec![0u32; kpcrs.len()];
        let mut shared_summary = 0u32;
        let mut shared_count = 0u64;
        for (ti, t) in sc.threads.iter().enumerate() {
            if t.state != ThreadState::Ready {
                continue;
            }
            let cpu = t.ready_on.unwrap_or(0) as usize;
            let prio = self.threads[ti].priority;
            let Some(&(_, prcb)) = kpcrs.get(cpu) else {
                continue;
            };
            let e = self.threads[ti].ethread;
            match shared {
                Some((_, q_heads)) if t.shared_queue => {
                    self.list_add(q_heads + u64::from(prio) * le, e + link);
                    shared_summary |= 1 << prio;
                    shared_count += 1;
                    self.threads[ti].on_shared_queue = true;
                }
                _ => {
                    self.list_add(prcb + heads + u64::from(prio) * le, e + link);
                    summary[cpu] |= 1 << prio;
                }
            }
            self.threads[ti].ready_on = Some(cpu as u32);
        }
        for (i, &(_, prcb)) in kpcrs.iter().enumerate() {
            self.put(prcb, pr, "ReadySummary", u64::from(summary[i]))?;
        }
        if let Some((q, _)) = shared {
            let t = "_KSHARED_READY_QUEUE";
            self.put(q, t, "ReadySummary", u64::from(shared_summary))?;
            self.put_opt(q, t, "ReadyThreadCount", shared_count)?;
        }
        Ok(())
    }

    /// On builds with `_KPRCB.SharedReadyQueue` (8.1 on), when a scenario
    /// thread asks for it: one `_KSHARED_READY_QUEUE` in pool that every
    /// CPU shares (`Affinity`, `ProcCount`, `LowProcIndex`, each
    /// `_KPRCB.SharedReadyQueue` and `SharedReadyQueueMask`), its 32 lists
    /// empty. Returns the queue and its `ReadyListHead` array.
    fn shared_ready_queue(&mut self) -> Result<Option<(u64, u64)>, Error> {
        let sc = self.sc;
        if !self.has("_KPRCB", "SharedReadyQueue")
            || !sc
                .threads
                .iter()
                .any(|t| t.shared_queue && t.state == ThreadState::Ready)
        {
            return Ok(None);
        }
        let t = "_KSHARED_READY_QUEUE";
        let (_, q) = self.pool_alloc(self.size(t)?, *b"Srq ")?;
        let heads = q + self.off(t, "ReadyListHead")?;
        let le = self.size("_LIST_ENTRY")?;
        for p in 0..32 {
            self.list_init(heads + p * le);
        }
        let n = self.kpcrs.len();
        let mask = super::process::affinity_mask(n);
        self.put(q, t, "Affinity", mask)?;
        self.put(q, t, "ProcCount", n as u64)?;
        self.put(q, t, "LowProcIndex", 0)?;
        self.put_opt(q, t, "Span", n as u64)?;
        let kpcrs = self.kpcrs.clone();
        for &(_, prcb) in &kpcrs {
            self.put(prcb, "_KPRCB", "SharedReadyQueue", q)?;
            self.put_opt(prcb, "_KPRCB", "SharedReadyQueueMask", mask)?;
        }
        Ok(Some((q, heads)))
    }

    /// The scenario's DPCs, each a `_KDPC` in pool on its CPU's normal
    /// queue (`DpcData[0]`): a `_LIST_ENTRY` list on 7 SP1, a singly
    /// linked `_KDPC_LIST` from 8.1 on; `DpcQueueDepth` and
    /// `DpcRoutineActive` as the scenario says.
    pub(super) fn dpc_queues(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        if sc.dpcs.is_empty() {
            return Ok(());
        }
        let pr = "_KPRCB";
        let kd = "_KDPC";
        let ksize = self.size(kd)?;
        let d0 = self.off(pr, "DpcData")?;
        let doubly = self.has("_KDPC_DATA", "DpcListHead");
        let link = self.off(kd, "DpcListEntry")?;
        let dpc_type = self.l.enum_value("_KOBJECTS", "DpcObject").unwrap_or(19) as u64;
        let mut per_cpu: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for d in &sc.dpcs {
            let (m, s) = d.routine.split_once('!').unwrap_or(("nt", &d.routine));
            // An nt routine at its own address, as a DPC names it.
            let routine = match (m.eq_ignore_ascii_case("nt"), self.l.symbol(s)) {
                (true, Some(r)) => self.kernel_base + r,
                _ => self.code_address(&d.routine),
            };
            let (_, prcb) = self.kpcrs[d.cpu as usize];
            for _ in 0..d.count {
                let (_, a) = self.pool_alloc(ksize, *b"Dpc ")?;
                self.put(a, kd, "Type", dpc_type)?;
                self.put(a, kd, "Importance", 1)?;
                self.put(a, kd, "DeferredRoutine", routine)?;
                self.put(a, kd, "DpcData", prcb + d0)?;
                per_cpu.entry(d.cpu).or_default().push(a);
                self.dpcs.push(DpcRec {
                    cpu: d.cpu,
                    address: a,
                    routine,
                });
            }
            if d.active {
                self.put(prcb, pr, "DpcRoutineActive", 1)?;
            }
        }
        for (cpu, dpcs) in per_cpu {
            let (_, prcb) = self.kpcrs[cpu as usize];
            let data = prcb + d0;
            self.put(data, "_KDPC_DATA", "DpcQueueDepth", dpcs.len() as u64)?;
            self.put(data, "_KDPC_DATA", "DpcCount", dpcs.len() as u64 * 7)?;
            if doubly {
                let h = data + self.off("_KDPC_DATA", "DpcListHead")?;
                for a in &dpcs {
                    self.list_add(h, a + link);
                }
            } else {
                let head = data + self.off("_KDPC_DATA", "DpcList.ListHead")?;
                let mut prev = head;
                for a in &dpcs {
                    self.sp.write(prev, &(a + link).to_le_bytes())?;
                    prev = a + link;
                }
                self.sp.write(prev, &0u64.to_le_bytes())?;
                self.put(data, "_KDPC_DATA", "DpcList.LastEntry", prev)?;
            }
        }
        Ok(())
    }

    /// Available pages, commit and physical pages where the build keeps
    /// them: `MiSystemPartition.Vp` (1607 on) or the `Mm*` globals. The
    /// pages are mapped in every image (a kernel's data is resident);
    /// without `machine.memory` they stay zero. Runs last, so that the
    /// pages it maps move no other structure.
    pub(super) fn memory_counters(&mut self) -> Result<(), Error> {
        let memory = self.sc.machine.memory;
        let physical = self.ram_size / PAGE_SIZE;
        if let Some(r) = self.l.symbol("MiSystemPartition") {
            let p = self.kernel_base + r;
            let t = "_MI_PARTITION";
            let vp = self.off(t, "Vp")?;
            let end = vp + self.size("_MI_VISIBLE_PARTITION")?;
            self.map_image(p, end)?;
            let Some(m) = memory else {
                return Ok(());
            };
            self.put(p, t, "Vp.AvailablePages", m.available_pages)?;
            self.put(p, t, "Vp.TotalCommittedPages", m.committed_pages)?;
            self.put(p, t, "Vp.TotalCommitLimit", m.commit_limit_pages)?;
            self.put(p, t, "Vp.NumberOfPhysicalPages", physical)?;
            return Ok(());
        }
        for (s, v) in [
            ("MmAvailablePages", memory.map(|m| m.available_pages)),
            ("MmTotalCommittedPages", memory.map(|m| m.committed_pages)),
            ("MmTotalCommitLimit", memory.map(|m| m.commit_limit_pages)),
        ] {
            let va = self.sym(s)?;
            self.map_image(va, 8)?;
            if let Some(v) = v {
                self.sp.write(va, &v.to_le_bytes())?;
            }
        }
        Ok(())
    }
}
