//! Executive resources (`_ERESOURCE` on `ExpSystemResourcesList`), the
//! objects threads wait on, and `!thread`.
//!
//! Fields read: `_ERESOURCE.{SystemResourcesList, ActiveCount, Flag,
//! ContentionCount, NumberOfSharedWaiters, NumberOfExclusiveWaiters,
//! SharedWaiters, ExclusiveWaiters, OwnerEntry, OwnerTable}`,
//! `_OWNER_ENTRY.{OwnerThread, OwnerCount, TableSize}`,
//! `_DISPATCHER_HEADER.Type` (named through `_KOBJECTS`),
//! `_KMUTANT.OwnerThread`, `_KWAIT_BLOCK.{Object, WaitType, Thread}`,
//! `_FAST_MUTEX.{Event, Owner}` (every build), `_KGUARDED_MUTEX.{Gate,
//! Owner}` (7 SP1).

use crate::error::{Result, Warning};
use crate::kernel::Kernel;
use crate::model::*;
use crate::process::enum_name;
use hangscope_symbols::TypeRef;
use hangscope_waitgraph::ModelPart;
use hangscope_x64::VirtAddr;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Most resources walked on `ExpSystemResourcesList`.
pub const MAX_RESOURCES: usize = 1 << 20;
/// Most entries read from one `OwnerTable`.
pub const MAX_OWNER_TABLE: u64 = 1 << 14;
/// Most entries followed on a `_KWAIT_CHAIN`.
pub const MAX_CHAIN: usize = 1 << 16;
/// `ERESOURCE.Flag` bit: held exclusively (`ResourceOwnedExclusive`).
pub const RESOURCE_OWNED_EXCLUSIVE: u64 = 0x80;
/// Low bits of `OWNER_ENTRY.OwnerThread` that tag it rather than address a
/// thread (ETHREADs are 16-byte aligned pool blocks).
pub const OWNER_THREAD_TAG_BITS: u64 = 0xf;

/// The short kind of a `_KOBJECTS` name (`EventSynchronizationObject` ->
/// `Event`).
pub fn object_kind(type_name: &str) -> String {
    for k in [
        "Event",
        "Mutant",
        "Semaphore",
        "Timer",
        "Thread",
        "Process",
        "Queue",
        "Gate",
    ] {
        if type_name.contains(k) {
            return k.to_string();
        }
    }
    type_name.trim_end_matches("Object").to_string()
}

/// The resource listing, built once per kernel.
#[derive(Debug, Default)]
struct Cache {
    eresources: OnceLock<Partial<EresourceInfo>>,
}

/// Owners that contradict the lock's own counters: more than one owner of
/// a lock held exclusively, or an `ActiveCount` with nobody in
/// `OwnerEntry` or `OwnerTable`.
fn owner_problems(
    addr: VirtAddr,
    exclusive: bool,
    active_count: u32,
    owners: &[LockOwner],
) -> Vec<Warning> {
    let mut out = Vec::new();
    let ctx = format!("ERESOURCE {addr}");
    if exclusive && owners.len() > 1 {
        out.push(Warning::implausible(
            &ctx,
            Some(addr),
            format!(
                "held exclusively (Flag {RESOURCE_OWNED_EXCLUSIVE:#x}) but lists {} owners",
                owners.len()
            ),
        ));
    }
    if active_count > 0 && owners.is_empty() {
        out.push(Warning::implausible(
            &ctx,
            Some(addr),
            format!("ActiveCount is {active_count} but OwnerEntry and OwnerTable name no owner"),
        ));
    }
    out
}

impl<'d> Kernel<'d> {
    /// Every ERESOURCE on `ExpSystemResourcesList`, with owners and waiters.
    pub fn eresources(&self) -> &Partial<EresourceInfo> {
        self.caches
            .get::<Cache>()
            .eresources
            .get_or_init(|| self.read_eresources())
    }

    fn read_eresources(&self) -> Partial<EresourceInfo> {
        let mut out = Partial::default();
        let head = match self.symbol("ExpSystemResourcesList") {
            Ok(h) => h,
            Err(e) => {
                out.warnings
                    .push(Warning::from_error("resource list", &e).incomplete(ModelPart::Locks));
                return out;
            }
        };
        let index = self.waiter_index();
        match self
            .reader()
            .iter_list(head, "_ERESOURCE", "SystemResourcesList", MAX_RESOURCES)
        {
            Ok(it) => {
                for a in it {
                    match a {
                        Ok(a) => match self.eresource_with(a, &index) {
                            Ok((r, w)) => {
                                out.items.push(r);
                                out.warnings.extend(w);
                            }
                            Err(e) => out.warnings.push(
                                Warning::from_error(format!("ERESOURCE {a}"), &e)
                                    .incomplete(ModelPart::Locks),
                            ),
                        },
                        Err(e) => out.warnings.push(
                            Warning::from_error("ExpSystemResourcesList", &e)
                                .incomplete(ModelPart::Locks),
                        ),
                    }
                }
            }
            Err(e) => out
                .warnings
                .push(Warning::from_error("resource list", &e).incomplete(ModelPart::Locks)),
        }
        out.warnings.extend(
            self.unlisted_resource_waits(&out.items)
                .into_iter()
                .map(|(_, w)| w),
        );
        out
    }

    /// Threads waiting for an executive resource (`WrResource`) on an
    /// object that belongs to no ERESOURCE on the list: the list is broken
    /// or incomplete there, so the lock, its owners and a cycle through it
    /// cannot be seen. One warning per thread (its ETHREAD address first),
    /// naming the object.
    pub(crate) fn unlisted_resource_waits(
        &self,
        listed: &[EresourceInfo],
    ) -> Vec<(VirtAddr, Warning)> {
        let mut known: std::collections::HashSet<VirtAddr> = std::collections::HashSet::new();
        for r in listed {
            known.insert(r.exclusive_waiters);
            known.insert(r.shared_waiters);
            known.extend(r.shared_wait_events.iter().copied());
        }
        let head = self
            .symbol("ExpSystemResourcesList")
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        self.threads()
            .items
            .iter()
            .filter(|t| t.wait_reason == Some(WaitReason::WrResource))
            .filter_map(|t| {
                let obj = t.waits_on.iter().find(|o| !known.contains(o))?;
                Some((
                    t.address,
                    Warning::implausible(
                        format!("thread {:#x}", t.address),
                        Some(*obj),
                        format!(
                            "waits for an executive resource (WrResource) on {obj:#x}, which belongs to no ERESOURCE on ExpSystemResourcesList{head}: the list is broken or incomplete, so this lock and its owners are not seen"
                        ),
                    )
                    .incomplete(ModelPart::Locks),
                ))
            })
            .collect()
    }

    /// Object address -> the threads whose wait blocks point at it.
    pub fn waiter_index(&self) -> HashMap<VirtAddr, Vec<VirtAddr>> {
        let mut m: HashMap<VirtAddr, Vec<VirtAddr>> = HashMap::new();
        for t in &self.threads().items {
            for &o in &t.waits_on {
                let v = m.entry(o).or_default();
                if !v.contains(&t.address) {
                    v.push(t.address);
                }
            }
        }
        m
    }

    /// One ERESOURCE by address (need not be on the list).
    pub fn eresource(&self, addr: VirtAddr) -> Result<EresourceInfo> {
        if let Some(r) = self.eresources().items.iter().find(|r| r.address == addr) {
            return Ok(r.clone());
        }
        self.eresource_with(addr, &self.waiter_index())
            .map(|(r, _)| r)
    }

    fn eresource_with(
        &self,
        addr: VirtAddr,
        index: &HashMap<VirtAddr, Vec<VirtAddr>>,
    ) -> Result<(EresourceInfo, Vec<Warning>)> {
        let mut warnings = Vec::new();
        let r = self.object("_ERESOURCE", addr)?;
        let flag = r.u64("Flag")?;
        let exclusive = flag & RESOURCE_OWNED_EXCLUSIVE != 0;
        let mut owners = Vec::new();
        let first = r.field("OwnerEntry")?;
        let t0 = VirtAddr(first.u64("OwnerThread")? & !OWNER_THREAD_TAG_BITS);
        if t0.0 != 0 {
            owners.push(LockOwner {
                thread: t0,
                count: first.u32("OwnerCount").unwrap_or(1),
                exclusive,
            });
        }
        let table = r.ptr("OwnerTable")?;
        if table.0 != 0 {
            match self.owner_table(table) {
                Ok(v) => owners.extend(v),
                Err(e) => warnings.push(Warning::from_error(
                    format!("ERESOURCE {addr} OwnerTable"),
                    &e,
                )),
            }
        }
        // SharedWaiters is a KSEMAPHORE pointer on most builds; on 1607 it
        // is a _KWAIT_CHAIN whose entries each hold the KEVENT one shared
        // waiter blocks on.
        let (shared_obj, shared_events) = match r.locate("SharedWaiters")?.1 {
            TypeRef::Struct(_) => {
                let chain = r.addr_of("SharedWaiters")?;
                let (events, err) = self.wait_chain_events(&r.field("SharedWaiters")?);
                if let Some(e) = err {
                    // Keep the waiters found before the break.
                    warnings.push(Warning::from_error(
                        format!("ERESOURCE {addr} SharedWaiters chain"),
                        &e,
                    ));
                }
                (chain, events)
            }
            _ => {
                let p = r.ptr("SharedWaiters")?;
                (p, if p.0 == 0 { Vec::new() } else { vec![p] })
            }
        };
        let excl_obj = r.ptr("ExclusiveWaiters")?;
        let mut waiters = Vec::new();
        let mut objs: Vec<(VirtAddr, bool)> = vec![(excl_obj, true)];
        objs.extend(shared_events.iter().map(|&e| (e, false)));
        for (obj, excl) in objs {
            if obj.0 == 0 {
                continue;
            }
            for &t in index.get(&obj).map(Vec::as_slice).unwrap_or(&[]) {
                let info = self.threads().items.iter().find(|x| x.address == t);
                waiters.push(LockWaiter {
                    thread: t,
                    exclusive: excl,
                    wait_ticks: info.and_then(|i| i.wait_ticks),
                    wait_seconds: info.and_then(|i| i.wait_seconds),
                });
            }
        }
        let active_count = r.u32("ActiveCount")?;
        let own = owner_problems(addr, exclusive, active_count, &owners);
        warnings.extend(own.iter().cloned());
        Ok((
            EresourceInfo {
                address: addr,
                active_count,
                flag: flag as u32,
                exclusive,
                contention_count: r.u32("ContentionCount")?,
                shared_waiters_count: r.u32("NumberOfSharedWaiters")?,
                exclusive_waiters_count: r.u32("NumberOfExclusiveWaiters")?,
                shared_waiters: shared_obj,
                shared_wait_events: shared_events,
                exclusive_waiters: excl_obj,
                owners,
                waiters,
                symbol: self.symbolize(addr).filter(|s| !s.contains('+')),
                warnings: own,
            },
            warnings,
        ))
    }

    /// The KEVENTs on a `_KWAIT_CHAIN` (Windows 10 1607 / Server 2016
    /// `_ERESOURCE.SharedWaiters`): `Head.Next` -> a `_KWAIT_CHAIN_ENTRY`'s
    /// `ListEntry`, whose `Next` leads on, each entry holding the `Event`
    /// one shared waiter blocks on. Offsets come from the symbols (the
    /// entry's layout differs between builds). Bounded by [`MAX_CHAIN`]
    /// and cycle-checked; on a fault or loop, the events found before it
    /// and the error.
    fn wait_chain_events(
        &self,
        chain: &crate::view::Object<'_>,
    ) -> (Vec<VirtAddr>, Option<crate::error::Error>) {
        let mut out = Vec::new();
        let err = self.walk_wait_chain(chain, &mut out).err();
        (out, err)
    }

    fn walk_wait_chain(
        &self,
        chain: &crate::view::Object<'_>,
        out: &mut Vec<VirtAddr>,
    ) -> Result<()> {
        let r = self.reader();
        let link = r.offset_of("_KWAIT_CHAIN_ENTRY", "ListEntry")?;
        let event = r.offset_of("_KWAIT_CHAIN_ENTRY", "Event")?;
        let next = r.offset_of("_SINGLE_LIST_ENTRY", "Next")?;
        let mut cur = chain.ptr("Head.Next")?.0;
        let mut seen = std::collections::HashSet::new();
        while cur != 0 {
            if !seen.insert(cur) || out.len() >= MAX_CHAIN {
                return Err(crate::error::Error::bad_data(
                    VirtAddr(cur),
                    "wait chain loops or is too long",
                ));
            }
            let entry = cur.wrapping_sub(link);
            let after = r.read_ptr(VirtAddr(cur.wrapping_add(next)))?.0;
            out.push(VirtAddr(entry.wrapping_add(event)));
            cur = after;
        }
        Ok(())
    }

    /// Shared owners in an `OwnerTable`: entry 0's `TableSize` counts the
    /// entries (where the build has it); entries 1.. are owners.
    fn owner_table(&self, table: VirtAddr) -> Result<Vec<LockOwner>> {
        let rd = self.reader();
        let oet = rd.ty("_OWNER_ENTRY")?;
        let head = rd.object("_OWNER_ENTRY", table)?;
        let size = if head.has("TableSize") {
            head.u64("TableSize")?
        } else {
            0
        };
        if size > MAX_OWNER_TABLE {
            return Err(crate::error::Error::bad_data(
                table,
                format!("OwnerTable TableSize {size} is impossible"),
            ));
        }
        let mut v = Vec::new();
        for i in 1..size {
            let e = rd.object("_OWNER_ENTRY", VirtAddr(table.0.wrapping_add(i * oet.size)))?;
            let t = VirtAddr(e.u64("OwnerThread")? & !OWNER_THREAD_TAG_BITS);
            if t.0 != 0 {
                v.push(LockOwner {
                    thread: t,
                    count: e.u32("OwnerCount").unwrap_or(1),
                    exclusive: false,
                });
            }
        }
        Ok(v)
    }

    /// What a dispatcher object is and who is behind it.
    pub fn waited_object(&self, wait_block: VirtAddr, obj: VirtAddr) -> WaitedObject {
        let r = self.reader();
        let mut w = WaitedObject {
            wait_block,
            address: obj,
            ..Default::default()
        };
        w.wait_type = r
            .object("_KWAIT_BLOCK", wait_block)
            .and_then(|b| b.u64("WaitType"))
            .ok()
            .map(|v| v as u8);
        let ty = r
            .object("_DISPATCHER_HEADER", obj)
            .and_then(|h| h.u64("Type"))
            .ok()
            .map(|v| v as u8);
        w.type_raw = ty;
        w.type_name = ty.and_then(|t| enum_name(self, "_KOBJECTS", t as u64));
        w.kind = match (&w.type_name, ty) {
            (Some(n), _) => object_kind(n),
            (None, Some(t)) => format!("Unknown({t})"),
            (None, None) => "Unreadable".into(),
        };
        for res in &self.eresources().items {
            if res.shared_waiters == obj
                || res.exclusive_waiters == obj
                || res.shared_wait_events.contains(&obj)
            {
                w.eresource = Some(res.address);
                w.eresource_exclusive = Some(res.exclusive_waiters == obj);
                w.owners = res.owners.iter().map(|o| o.thread).collect();
            }
        }
        if w.kind == "Mutant" {
            if let Ok(o) = r.object("_KMUTANT", obj).and_then(|m| m.ptr("OwnerThread")) {
                if o.0 != 0 {
                    w.owners = vec![o];
                }
            }
        }
        if w.kind == "Event" {
            if let Some((m, owner)) = self.mutex_around(
                wait_block,
                obj,
                "_FAST_MUTEX",
                "Event",
                &[WaitReason::WrFastMutex, WaitReason::WrGuardedMutex],
            ) {
                w.address = m;
                w.kind = "FastMutex".into();
                w.owners = vec![owner];
            }
        }
        if w.kind == "Gate" {
            if let Some((m, owner)) = self.mutex_around(
                wait_block,
                obj,
                "_KGUARDED_MUTEX",
                "Gate",
                &[WaitReason::WrGuardedMutex],
            ) {
                w.address = m;
                w.kind = "GuardedMutex".into();
                w.owners = vec![owner];
            }
        }
        w
    }

    /// The mutex around the dispatcher object a thread waits on, and the
    /// owner it records (`Owner`), or None. Two shapes:
    /// - `_FAST_MUTEX` with its embedded `Event`, for a waiter in
    ///   `WrFastMutex` or `WrGuardedMutex` (a guarded mutex is a
    ///   `_FAST_MUTEX` from Windows 8 on);
    /// - 7 SP1's `_KGUARDED_MUTEX` with its `Gate` (a KGATE), for a waiter
    ///   in `WrGuardedMutex` (later tables have no such type).
    ///
    /// Only when `Owner` is a listed thread, so that an event that merely
    /// sits after some other structure is not taken for a mutex.
    fn mutex_around(
        &self,
        wait_block: VirtAddr,
        waited: VirtAddr,
        mutex: &str,
        field: &str,
        reasons: &[WaitReason],
    ) -> Option<(VirtAddr, VirtAddr)> {
        let r = self.reader();
        let waiter = r
            .object("_KWAIT_BLOCK", wait_block)
            .ok()?
            .ptr("Thread")
            .ok()?;
        let threads = &self.threads().items;
        let reason = threads.iter().find(|t| t.address == waiter)?.wait_reason?;
        if !reasons.contains(&reason) {
            return None;
        }
        let off = r.offset_of(mutex, field).ok()?;
        let m = VirtAddr(waited.0.checked_sub(off)?);
        let owner = r.object(mutex, m).ok()?.ptr("Owner").ok()?;
        threads
            .iter()
            .any(|t| t.address == owner)
            .then_some((m, owner))
    }

    /// `!thread ADDR`: state, waits and what is behind them, IRPs.
    pub fn thread_detail(&self, thread: VirtAddr) -> Result<ThreadDetail> {
        let addr = thread.0;
        let thread = self.thread_info(thread)?;
        let mut warnings = Vec::new();
        let mut waits = Vec::new();
        if thread.state == ThreadState::Waiting {
            let tcb = self.object("_ETHREAD", VirtAddr(addr))?.field("Tcb")?;
            match self.wait_blocks(&tcb) {
                Ok(wbs) => {
                    for (wb, o) in wbs {
                        waits.push(self.waited_object(VirtAddr(wb), VirtAddr(o)));
                    }
                }
                Err(e) => warnings.push(Warning::from_error(
                    format!("wait blocks of thread {}", VirtAddr(addr)),
                    &e,
                )),
            }
        }
        let mut irps = Vec::new();
        for &i in &thread.irps {
            match self.irp(i) {
                Ok(irp) => irps.push(irp),
                Err(e) => warnings.push(Warning::from_error(format!("IRP {i}"), &e)),
            }
        }
        // The push lock it waits on, as the push-lock walk tied it.
        let push_lock = if thread.state == ThreadState::Waiting
            && thread.wait_reason == Some(WaitReason::WrPushLock)
        {
            let l = self.push_lock_of(VirtAddr(addr)).cloned();
            if l.is_none() {
                warnings.push(Warning::implausible(
                    format!("thread {}", VirtAddr(addr)),
                    thread.waits_on.first().copied(),
                    "waits WrPushLock but the push-lock walk tied it to no lock (see `locks`)",
                ));
            }
            l
        } else {
            None
        };
        let holds = self.locks_held_by(VirtAddr(addr), &self.mutexes().items);
        let stack_walk = self.thread_stack(VirtAddr(addr));
        Ok(ThreadDetail {
            thread,
            waits,
            irps,
            stack: stack_walk.symbols(),
            missing_symbols: stack_walk.missing_symbols.clone(),
            stack_walk,
            push_lock,
            holds,
            warnings,
        })
    }

    /// Dispatcher objects (other than ERESOURCE waiters' semaphores and
    /// events) that threads wait on, with owners and waiters.
    pub fn dispatcher_objects(&self) -> Vec<(WaitedObject, Vec<VirtAddr>)> {
        let index = self.waiter_index();
        let mut out = Vec::new();
        let mut keys: Vec<_> = index.keys().copied().collect();
        keys.sort_unstable();
        for obj in keys {
            let wb = self
                .threads()
                .items
                .iter()
                .find(|t| t.waits_on.contains(&obj))
                .and_then(|t| {
                    let tcb = self.object("_ETHREAD", t.address).ok()?.field("Tcb").ok()?;
                    self.wait_blocks(&tcb)
                        .ok()?
                        .into_iter()
                        .find(|(_, o)| *o == obj.0)
                })
                .map(|(wb, _)| wb)
                .unwrap_or(0);
            let w = self.waited_object(VirtAddr(wb), obj);
            if w.eresource.is_some() {
                continue;
            }
            out.push((w, index[&obj].clone()));
        }
        out
    }
}
