//! Locks and waits: ERESOURCEs on `ExpSystemResourcesList` (owners, the
//! semaphore/event or 1607 `_KWAIT_CHAIN` their waiters block on), mutants,
//! events, semaphores, and each waiting thread's `KWAIT_BLOCK`s.

use super::*;
use rand::Rng;

use crate::layout::Shape;
use crate::scenario::LockKind;

/// Where a scenario lock went and the objects its waiters block on.
#[derive(Debug, Clone, Default)]
pub(crate) struct LockRec {
    /// The ERESOURCE or dispatcher object.
    pub(crate) address: u64,
    /// What `SharedWaiters` holds: the KSEMAPHORE's address, or on 1607
    /// the address of the `_KWAIT_CHAIN` inside the ERESOURCE.
    pub(crate) shared_waiters_obj: u64,
    /// On 1607: (scenario thread index, KEVENT address) of each shared
    /// waiter's `_KWAIT_CHAIN_ENTRY`, in chain order (empty without shared
    /// waiters). `None` on builds where `SharedWaiters` is a pointer.
    pub(crate) shared_chain: Option<Vec<(usize, u64)>>,
    /// The KEVENT exclusive waiters block on (0: none).
    pub(crate) exclusive_waiters_obj: u64,
    /// Push locks: (scenario thread index, `WakeEvent` address) of each
    /// waiter, oldest first.
    pub(crate) wake_events: Vec<(usize, u64)>,
    /// Push locks: where the lock word lives, as the truth names it.
    pub(crate) container: String,
}

impl LockRec {
    /// The dispatcher object scenario thread `ti` blocks on when it waits
    /// for this ERESOURCE shared: its own chain entry's event on 1607, the
    /// one shared semaphore elsewhere.
    pub(super) fn shared_wait_object(&self, ti: usize) -> u64 {
        self.shared_chain
            .iter()
            .flatten()
            .find(|(t, _)| *t == ti)
            .map_or(self.shared_waiters_obj, |&(_, e)| e)
    }

    /// The objects shared waiters block on, as a reader finds them from
    /// the ERESOURCE: the semaphore, or each chain entry's event.
    pub(crate) fn shared_wait_events(&self) -> Vec<u64> {
        match &self.shared_chain {
            Some(chain) => chain.iter().map(|&(_, e)| e).collect(),
            None => Some(self.shared_waiters_obj)
                .filter(|&s| s != 0)
                .into_iter()
                .collect(),
        }
    }
}

impl Builder<'_> {
    pub(super) fn locks(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let head = self.sym("ExpSystemResourcesList")?;
        self.map_image(head, 16)?;
        self.list_init(head);
        let er = "_ERESOURCE";
        // A few resources every system has, so the list is never short.
        let mut all: Vec<Option<usize>> = vec![None, None, None];
        all.extend((0..sc.locks.len()).map(Some));
        let mut recs = vec![LockRec::default(); sc.locks.len()];
        for li in all {
            match li.map(|i| (i, &sc.locks[i])) {
                None => {
                    let (_, r) = self.pool_alloc(self.size(er)?, *b"Reso")?;
                    self.list_add(head, r + self.off(er, "SystemResourcesList")?);
                }
                Some((i, l)) => {
                    let addr = match l.kind {
                        LockKind::Eresource => self.eresource(i, head)?,
                        LockKind::Mutant => {
                            let m = self.alloc_object("Mutant", self.size("_KMUTANT")?, None)?;
                            let owned = l.owner.is_some();
                            self.dispatcher_header(
                                m,
                                "MutantObject",
                                if owned { 0 } else { 1 },
                                "_KMUTANT",
                            )?;
                            if let Some(o) = &l.owner {
                                let t = self.threads[self.ix.threads[o]].ethread;
                                self.put(m, "_KMUTANT", "OwnerThread", t)?;
                                let mlh = t + self.off("_ETHREAD", "Tcb.MutantListHead")?;
                                let le = m + self.off("_KMUTANT", "MutantListEntry")?;
                                self.list_add(mlh, le);
                            } else {
                                let le = m + self.off("_KMUTANT", "MutantListEntry")?;
                                self.list_init(le);
                            }
                            m
                        }
                        LockKind::Event => {
                            let e = self.alloc_object("Event", self.size("_KEVENT")?, None)?;
                            self.dispatcher_header(
                                e,
                                "EventNotificationObject",
                                l.signaled as u64,
                                "_KEVENT",
                            )?;
                            e
                        }
                        LockKind::Guardedmutex if self.l.type_size("_KGUARDED_MUTEX").is_some() => {
                            let gm = "_KGUARDED_MUTEX";
                            let (_, m) = self.pool_alloc(self.size(gm)?, *b"GMut")?;
                            let gate = m + self.off(gm, "Gate")?;
                            self.dispatcher_header(gate, "GateObject", 0, "_KGATE")?;
                            if let Some(o) = &l.owner {
                                let t = self.threads[self.ix.threads[o]].ethread;
                                self.put(m, gm, "Owner", t)?;
                            } else {
                                self.put(m, gm, "Count", 1)?;
                            }
                            m
                        }
                        LockKind::Fastmutex | LockKind::Guardedmutex => {
                            let fm = "_FAST_MUTEX";
                            let (_, m) = self.pool_alloc(self.size(fm)?, *b"FMut")?;
                            let ev = m + self.off(fm, "Event")?;
                            self.dispatcher_header(ev, "EventSynchronizationObject", 0, "_KEVENT")?;
                            if let Some(o) = &l.owner {
                                let t = self.threads[self.ix.threads[o]].ethread;
                                self.put(m, fm, "Owner", t)?;
                            } else {
                                self.put(m, fm, "Count", 1)?;
                            }
                            m
                        }
                        LockKind::Pushlock => {
                            let (a, c, ev) = self.push_lock(i)?;
                            recs[i].container = c;
                            recs[i].wake_events = ev;
                            a
                        }
                        LockKind::Queue => self.kernel_queue()?,
                        LockKind::Semaphore => {
                            let s =
                                self.alloc_object("Semaphore", self.size("_KSEMAPHORE")?, None)?;
                            self.dispatcher_header(
                                s,
                                "SemaphoreObject",
                                l.signaled as u64,
                                "_KSEMAPHORE",
                            )?;
                            self.put(s, "_KSEMAPHORE", "Limit", 0x7FFF_FFFF)?;
                            s
                        }
                    };
                    recs[i].address = addr;
                }
            }
        }
        // Dispatcher objects the ERESOURCE waiters block on.
        for (i, l) in sc.locks.iter().enumerate() {
            if l.kind != LockKind::Eresource {
                continue;
            }
            let r = recs[i].address;
            let (sh, ex) = self.sc.resource_waiters(i);
            let shape = self.l.field(er, "SharedWaiters").map(|f| f.shape);
            let chain = matches!(&shape, Some(Shape::Struct(n)) if n == "_KWAIT_CHAIN");
            if chain {
                // Embedded: there is a chain (maybe empty) on every resource.
                recs[i].shared_waiters_obj = r + self.off(er, "SharedWaiters")?;
                recs[i].shared_chain = Some(Vec::new());
            }
            if !sh.is_empty() {
                match shape {
                    Some(Shape::Pointer) => {
                        let (_, s) = self.pool_alloc(self.size("_KSEMAPHORE")?, *b"Reso")?;
                        self.dispatcher_header(s, "SemaphoreObject", 0, "_KSEMAPHORE")?;
                        self.put(s, "_KSEMAPHORE", "Limit", 0x7FFF_FFFF)?;
                        self.put(r, er, "SharedWaiters", s)?;
                        recs[i].shared_waiters_obj = s;
                    }
                    _ if chain => recs[i].shared_chain = Some(self.shared_wait_chain(r, &sh)?),
                    other => {
                        return Err(missing(format!(
                            "{er}.SharedWaiters as a KSEMAPHORE pointer or a \
                             _KWAIT_CHAIN (it is {other:?})"
                        )))
                    }
                }
            }
            if !ex.is_empty() {
                let (_, e) = self.pool_alloc(self.size("_KEVENT")?, *b"Reso")?;
                self.dispatcher_header(e, "EventSynchronizationObject", 0, "_KEVENT")?;
                self.put(r, er, "ExclusiveWaiters", e)?;
                recs[i].exclusive_waiters_obj = e;
            }
            self.put(r, er, "NumberOfSharedWaiters", sh.len() as u64)?;
            self.put(r, er, "NumberOfExclusiveWaiters", ex.len() as u64)?;
            let cc = l.contention.unwrap_or((sh.len() + ex.len()) as u32 * 3);
            self.put(r, er, "ContentionCount", cc as u64)?;
        }
        self.locks = recs;
        Ok(())
    }

    /// Windows 10 1607 / Server 2016: `SharedWaiters` is a `_KWAIT_CHAIN`,
    /// a singly linked list of `_KWAIT_CHAIN_ENTRY`s, each holding the
    /// KEVENT one shared waiter blocks on. One entry per waiter in `sh`
    /// (scenario thread indexes), linked from `Head.Next` through
    /// `ListEntry.Next` in scenario order, the last one ending the list.
    /// Returns (thread index, event address) in chain order.
    pub(super) fn shared_wait_chain(
        &mut self,
        r: u64,
        sh: &[usize],
    ) -> Result<Vec<(usize, u64)>, Error> {
        let ce = "_KWAIT_CHAIN_ENTRY";
        let link = self.off(ce, "ListEntry")?;
        let event = self.off(ce, "Event")?;
        let mut out = Vec::with_capacity(sh.len());
        let mut links = Vec::with_capacity(sh.len());
        for &ti in sh {
            let (_, entry) = self.pool_alloc(self.size(ce)?, *b"Reso")?;
            let ev = entry + event;
            self.dispatcher_header(ev, "EventSynchronizationObject", 0, "_KEVENT")?;
            links.push(entry + link);
            out.push((ti, ev));
        }
        // Head.Next -> first entry's link -> ... -> 0.
        let mut prev = r + self.off("_ERESOURCE", "SharedWaiters.Head")?;
        for &l in &links {
            self.put(prev, "_SINGLE_LIST_ENTRY", "Next", l)?;
            prev = l;
        }
        self.put(prev, "_SINGLE_LIST_ENTRY", "Next", 0)?;
        Ok(out)
    }

    pub(super) fn eresource(&mut self, i: usize, head: u64) -> Result<u64, Error> {
        let l = &self.sc.locks[i];
        let er = "_ERESOURCE";
        let oe = "_OWNER_ENTRY";
        let (_, r) = self.pool_alloc(self.size(er)?, *b"NtFs")?;
        self.list_add(head, r + self.off(er, "SystemResourcesList")?);
        let owners: Vec<u64> = l
            .owner
            .iter()
            .chain(l.shared_owners.iter())
            .map(|o| self.threads[self.ix.threads[o]].ethread)
            .collect();
        let exclusive = l.owner.is_some();
        if let Some(&first) = owners.first() {
            let at = r + self.off(er, "OwnerEntry")?;
            self.put(at, oe, "OwnerThread", first)?;
            self.put(at, oe, "OwnerCount", 1)?;
        }
        if owners.len() > 1 {
            // OwnerTable: entry 0 holds the table size, owners follow.
            let es = self.size(oe)?;
            let n = owners.len() as u64;
            let (_, t) = self.pool_alloc(es * n, *b"ReTa")?;
            self.put(t, oe, "TableSize", n)?;
            for (k, o) in owners.iter().enumerate().skip(1) {
                let at = t + k as u64 * es;
                self.put(at, oe, "OwnerThread", *o)?;
                self.put(at, oe, "OwnerCount", 1)?;
            }
            self.put(r, er, "OwnerTable", t)?;
        }
        self.put(r, er, "ActiveCount", owners.len() as u64)?;
        self.put_opt(r, er, "ActiveEntries", owners.len() as u64)?;
        // ResourceOwnedExclusive.
        self.put(r, er, "Flag", if exclusive { 0x80 } else { 0 })?;
        Ok(r)
    }

    pub(super) fn waits(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let et = "_ETHREAD";
        let wb = "_KWAIT_BLOCK";
        let wb_size = self.size(wb)?;
        let now = sc.machine.tick_count;
        for (ti, t) in sc.threads.iter().enumerate() {
            let e = self.threads[ti].ethread;
            let Some(w) = &t.wait else {
                // Ready and running threads last ran (or were readied) a
                // few ticks ago.
                let base = t.ready_since.unwrap_or(now);
                let since = base - self.rng.gen_range(0..8u64).min(base);
                self.put(e, et, "Tcb.WaitTime", since & 0xFFFF_FFFF)?;
                self.threads[ti].wait_time = since & 0xFFFF_FFFF;
                continue;
            };
            let since = match (w.since, w.ticks_ago) {
                (Some(s), _) => s,
                (_, Some(a)) => now - a,
                _ => now,
            };
            self.put(e, et, "Tcb.WaitTime", since & 0xFFFF_FFFF)?;
            self.threads[ti].wait_time = since & 0xFFFF_FFFF;
            let mut objs = Vec::new();
            if w.alpc.is_some() {
                // An ALPC client waits on its own semaphore (windows-alpc.md
                // section 1), which `alpc` initialised.
                objs.push(e + self.off(et, "AlpcWaitSemaphore")?);
            }
            let mut first_kind = LockKind::Event;
            for (k, o) in w.on.iter().enumerate() {
                let li = self.ix.locks[o];
                let l = &sc.locks[li];
                if k == 0 {
                    first_kind = l.kind;
                }
                let obj = match l.kind {
                    LockKind::Eresource if w.exclusive => self.locks[li].exclusive_waiters_obj,
                    LockKind::Eresource => self.locks[li].shared_wait_object(ti),
                    LockKind::Guardedmutex if self.l.type_size("_KGUARDED_MUTEX").is_some() => {
                        self.locks[li].address + self.off("_KGUARDED_MUTEX", "Gate")?
                    }
                    LockKind::Fastmutex | LockKind::Guardedmutex => {
                        self.locks[li].address + self.off("_FAST_MUTEX", "Event")?
                    }
                    LockKind::Pushlock => self.locks[li]
                        .wake_events
                        .iter()
                        .find(|(t, _)| *t == ti)
                        .map_or(self.locks[li].address, |&(_, e)| e),
                    _ => self.locks[li].address,
                };
                objs.push(obj);
            }
            let reason = w.reason.clone().unwrap_or_else(|| {
                match first_kind {
                    _ if w.alpc.is_some() => "WrLpcReply",
                    LockKind::Eresource => "WrResource",
                    LockKind::Mutant => "UserRequest",
                    LockKind::Fastmutex => "WrFastMutex",
                    LockKind::Pushlock => "WrPushLock",
                    LockKind::Guardedmutex => "WrGuardedMutex",
                    LockKind::Queue => "WrQueue",
                    _ => "Executive",
                }
                .to_string()
            });
            let rv = self.l.enum_value("_KWAIT_REASON", &reason).ok_or_else(|| {
                Error::ScenarioField {
                    field: format!("threads[{ti}].wait.reason"),
                    problem: format!("`{reason}` does not exist in this build"),
                }
            })?;
            self.put(e, et, "Tcb.WaitReason", rv as u64)?;
            // An ALPC request is a user-mode wait (UserMode = 1).
            self.put_opt(
                e,
                et,
                "Tcb.WaitMode",
                u64::from(w.alpc.is_some() || w.user_mode),
            )?;
            self.put_opt(e, et, "Tcb.WaitIrql", 0)?;
            self.put_opt(e, et, "Tcb.WaitBlockCount", objs.len() as u64)?;
            let active = self
                .l
                .enum_value("_KWAIT_BLOCK_STATE", "WaitBlockActive")
                .unwrap_or(2);
            let n = objs.len() as u64;
            let mut blocks = Vec::new();
            for (k, obj) in objs.iter().enumerate() {
                let off =
                    self.elem(et, "Tcb.WaitBlock", k as u64)
                        .map_err(|_| Error::ScenarioField {
                            field: format!("threads[{ti}].wait.on"),
                            problem: "more objects than this build has wait blocks".into(),
                        })?;
                let b = e + off;
                self.put(b, wb, "Thread", e)?;
                self.put(b, wb, "Object", *obj)?;
                self.put(b, wb, "WaitKey", k as u64)?;
                // WaitAny = 1.
                self.put(b, wb, "WaitType", 1)?;
                self.put_opt(b, wb, "BlockState", active as u64)?;
                let wl = obj + self.off("_DISPATCHER_HEADER", "WaitListHead")?;
                self.list_add(wl, b + self.off(wb, "WaitListEntry")?);
                blocks.push(b);
            }
            let _ = wb_size;
            if self.has(wb, "NextWaitBlock") {
                for k in 0..blocks.len() {
                    let next = blocks[(k + 1) % blocks.len()];
                    self.put(blocks[k], wb, "NextWaitBlock", next)?;
                }
            }
            let _ = n;
            self.put(e, et, "Tcb.WaitBlockList", blocks[0])?;
            self.threads[ti].waits_on = objs;
        }
        Ok(())
    }
}
