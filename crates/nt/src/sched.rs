//! What the CPUs run and who waits to run, and how much memory is left:
//! the state CPU starvation and memory exhaustion are judged on.
//!
//! - Ready queues: `_KPRCB.DispatcherReadyListHead[32]` (one list per
//!   priority, threads linked through `_KTHREAD.WaitListEntry`), on every
//!   build; from 8.1 on also the queue `_KPRCB.SharedReadyQueue` points at
//!   (`_KSHARED_READY_QUEUE.ReadyListHead[32]`), which several CPUs share
//!   and which is read once. `ReadySummary` is not trusted: every list is
//!   walked, bounded, cycle- and back-link-checked.
//! - What runs: `_KPRCB.CurrentThread` against `IdleThread`, the current
//!   thread's `Tcb.Priority`.
//! - Where a ready thread may run: its `Tcb.Affinity`, an inline
//!   `_GROUP_AFFINITY` (`Mask`, `Group`) or, on the newest builds, a
//!   pointer to a `_KAFFINITY_EX` (`Count`, `Size`, `Bitmap[]`), against
//!   each CPU's `_KPRCB.Group` and `GroupSetMember`; on a shared queue only
//!   the CPUs whose `SharedReadyQueue` points at it.
//! - DPCs: `_KPRCB.DpcData[0..2]` (normal and threaded): `DpcQueueDepth`
//!   and the queue, a `_LIST_ENTRY` `DpcListHead` on 7 SP1, a singly linked
//!   `_KDPC_LIST` (`DpcList.ListHead`) from 8.1 on, each `_KDPC`'s
//!   `DeferredRoutine` named from the module's symbols; `DpcRoutineActive`.
//! - Memory: `MiSystemPartition.Vp.{AvailablePages, TotalCommittedPages,
//!   TotalCommitLimit, NumberOfPhysicalPages}` from 1607 on; the globals
//!   `MmAvailablePages`, `MmTotalCommittedPages`, `MmTotalCommitLimit`,
//!   `MmNumberOfPhysicalPages` on 7 SP1 and 8.1. Probed by name, in that
//!   order; `docs/windows-structures.md` lists what each build has.

use std::collections::HashSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::model::*;
use crate::view::Reader;
use hangscope_x64::VirtAddr;

/// Threads read per ready list.
const MAX_READY_PER_LIST: usize = 4096;
/// DPCs read per queue.
const MAX_DPCS: usize = 4096;
/// Priorities, hence ready lists per queue.
const PRIORITIES: u64 = 32;
/// Bytes per page on x64.
const PAGE_SIZE: u64 = 4096;

/// A thread on a ready queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadyEntry {
    /// `_ETHREAD` address.
    #[serde(with = "hex")]
    pub thread: VirtAddr,
    /// The priority of the list it is on.
    pub priority: u32,
    /// The CPUs (indexes into [`SchedulerInfo::cpus`]) it may run on: its
    /// `Tcb.Affinity`, and on a shared queue only the CPUs sharing it.
    /// `None` when neither is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Vec<u32>>,
}

/// A `_KSHARED_READY_QUEUE` (8.1 on) and the CPUs whose
/// `_KPRCB.SharedReadyQueue` point at it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SharedReadyQueue {
    /// Its address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// The CPUs sharing it, ascending.
    pub cpus: Vec<u32>,
    /// Its `ReadySummary`: bit n set when list n is not empty.
    pub ready_summary: Option<u32>,
}

/// A queued DPC (`_KDPC`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DpcInfo {
    /// `_KDPC` address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `DeferredRoutine`.
    #[serde(with = "hex")]
    pub routine: VirtAddr,
    /// The routine named from its module's symbols or exports, else
    /// `module+0xoffset`.
    pub routine_name: Option<String>,
}

/// One CPU's scheduler state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuScheduler {
    /// CPU number.
    pub index: u32,
    /// `KiProcessorBlock[index]`.
    #[serde(with = "hex")]
    pub kprcb: VirtAddr,
    /// `CurrentThread`.
    #[serde(with = "hex_opt")]
    pub current_thread: Option<VirtAddr>,
    /// `IdleThread`.
    #[serde(with = "hex_opt")]
    pub idle_thread: Option<VirtAddr>,
    /// The current thread's `Tcb.Priority`.
    pub current_priority: Option<i32>,
    /// `ReadySummary`: bit n set when list n is not empty.
    pub ready_summary: Option<u32>,
    /// `Group`: the processor group it belongs to.
    pub group: Option<u16>,
    /// `GroupSetMember`: its bit in its group's affinity masks.
    pub group_set_member: Option<u64>,
    /// `SharedReadyQueue` (8.1 on), when set.
    #[serde(with = "hex_opt")]
    pub shared_ready_queue: Option<VirtAddr>,
    /// Threads on `DispatcherReadyListHead`, highest priority first.
    pub ready: Vec<ReadyEntry>,
    /// `DpcData[0].DpcQueueDepth + DpcData[1].DpcQueueDepth`.
    pub dpc_queue_depth: Option<u64>,
    /// The DPCs on both queues, in queue order.
    pub dpcs: Vec<DpcInfo>,
    /// `DpcRoutineActive`.
    pub dpc_active: bool,
}

/// Every CPU's scheduler state and the shared ready queues.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SchedulerInfo {
    /// Per CPU.
    pub cpus: Vec<CpuScheduler>,
    /// Threads on shared ready queues, each queue read once, highest
    /// priority first.
    pub shared_ready: Vec<ReadyEntry>,
    /// The shared ready queues read, in the order first seen.
    pub shared_queues: Vec<SharedReadyQueue>,
    /// What could not be read.
    pub warnings: Vec<Warning>,
}

/// Physical memory and commit, in pages.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryInfo {
    /// Pages of physical memory.
    pub physical_pages: Option<u64>,
    /// Available pages.
    pub available_pages: Option<u64>,
    /// Committed pages.
    pub committed_pages: Option<u64>,
    /// The commit limit, pages.
    pub commit_limit_pages: Option<u64>,
    /// Where they were read (`MiSystemPartition.Vp`, or the globals).
    pub source: String,
    /// What could not be read.
    pub warnings: Vec<Warning>,
}

impl MemoryInfo {
    /// Whether anything was read.
    pub fn is_known(&self) -> bool {
        self.available_pages.is_some() || self.committed_pages.is_some()
    }
}

/// The threads of the 32 lists of an array of `_LIST_ENTRY` heads at
/// `heads`, highest priority first. A head whose `Flink` is NULL was never
/// initialised and counts as empty.
fn ready_lists(r: &Reader<'_>, heads: VirtAddr, out: &mut Vec<ReadyEntry>) -> Result<()> {
    let le = r.ty("_LIST_ENTRY")?.size;
    let mut first_err = None;
    for p in (0..PRIORITIES).rev() {
        let head = VirtAddr(heads.0.wrapping_add(p * le));
        match r.read_ptr(head) {
            Ok(f) if f.0 == 0 || f == head => continue,
            Ok(_) => {}
            Err(e) => {
                first_err.get_or_insert(e);
                continue;
            }
        }
        for t in r.iter_list(head, "_KTHREAD", "WaitListEntry", MAX_READY_PER_LIST)? {
            match t {
                Ok(t) => out.push(ReadyEntry {
                    thread: t,
                    priority: p as u32,
                    cpus: None,
                }),
                Err(e) => {
                    first_err.get_or_insert(e);
                    break;
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Processor groups an affinity is read for (Windows has at most 32).
const MAX_GROUPS: u64 = 32;

/// A thread's `Tcb.Affinity` as (group, mask) pairs: an inline
/// `_GROUP_AFFINITY` (`Mask`, `Group`) on most builds, a pointer to a
/// `_KAFFINITY_EX` (`Count` groups of `Bitmap`, bounded by `Size`) on the
/// newest. `None` for a NULL pointer or a build with neither.
fn thread_affinity(r: &Reader<'_>, thread: VirtAddr) -> Result<Option<Vec<(u16, u64)>>> {
    let e = r.object("_ETHREAD", thread)?;
    if e.has("Tcb.Affinity.Mask") {
        let mask = e.uint("Tcb.Affinity.Mask")?;
        let group = e.uint("Tcb.Affinity.Group")? as u16;
        return Ok(Some(vec![(group, mask)]));
    }
    if !e.has("Tcb.Affinity") {
        return Ok(None);
    }
    let p = e.ptr("Tcb.Affinity")?;
    if p.0 == 0 {
        return Ok(None);
    }
    let a = r.object("_KAFFINITY_EX", p)?;
    let count = a.uint("Count")?;
    let size = a.uint("Size").unwrap_or(MAX_GROUPS);
    if count == 0 || count > size.min(MAX_GROUPS) {
        return Err(Error::bad_data(
            p,
            format!("_KAFFINITY_EX.Count {count} with Size {size}"),
        ));
    }
    let bitmap = a.addr_of("Bitmap")?;
    let mut out = Vec::new();
    for g in 0..count {
        let mask = r.read_uint(VirtAddr(bitmap.0.wrapping_add(g * 8)), 8)?;
        out.push((g as u16, mask));
    }
    Ok(Some(out))
}

impl<'d> Kernel<'d> {
    /// Every CPU's ready queue, current thread and DPC queue, and the
    /// shared ready queues (module docs). Fields a build lacks are left
    /// unknown; what cannot be read is a warning.
    pub fn scheduler(&self) -> SchedulerInfo {
        let mut out = SchedulerInfo::default();
        let r = self.reader();
        let mut walker = self.stack_walker();
        let mut shared_seen: HashSet<u64> = HashSet::new();
        for c in &self.cpus().items {
            let ctx = format!("CPU {} KPRCB", c.index);
            let prcb = match r.object("_KPRCB", c.kprcb) {
                Ok(p) => p,
                Err(e) => {
                    out.warnings.push(Warning::from_error(ctx, &e));
                    continue;
                }
            };
            let mut cpu = CpuScheduler {
                index: c.index,
                kprcb: c.kprcb,
                current_thread: prcb.ptr("CurrentThread").ok(),
                idle_thread: prcb.ptr("IdleThread").ok(),
                ready_summary: prcb.uint("ReadySummary").ok().map(|v| v as u32),
                group: prcb.uint("Group").ok().map(|v| v as u16),
                group_set_member: prcb.uint("GroupSetMember").ok().filter(|&m| m != 0),
                dpc_active: prcb.uint("DpcRoutineActive").is_ok_and(|v| v != 0),
                ..CpuScheduler::default()
            };
            cpu.current_priority = cpu
                .current_thread
                .filter(|t| t.0 != 0)
                .and_then(|t| r.object("_ETHREAD", t).ok())
                .and_then(|e| e.uint("Tcb.Priority").ok())
                .map(|p| p as u8 as i8 as i32);
            match prcb.addr_of("DispatcherReadyListHead") {
                Ok(h) => {
                    if let Err(e) = ready_lists(&r, h, &mut cpu.ready) {
                        out.warnings
                            .push(Warning::from_error(format!("{ctx} ready queue"), &e));
                    }
                }
                Err(e) => out.warnings.push(Warning::from_error(ctx.clone(), &e)),
            }
            // 8.1 and later: a queue shared by a group of CPUs.
            if prcb.has("SharedReadyQueue") {
                match prcb.ptr("SharedReadyQueue") {
                    Ok(q) if q.0 != 0 => {
                        cpu.shared_ready_queue = Some(q);
                        if shared_seen.insert(q.0) {
                            let mut queue = SharedReadyQueue {
                                address: q,
                                ..SharedReadyQueue::default()
                            };
                            let res = r.object("_KSHARED_READY_QUEUE", q).and_then(|o| {
                                queue.ready_summary = o.uint("ReadySummary").ok().map(|v| v as u32);
                                ready_lists(&r, o.addr_of("ReadyListHead")?, &mut out.shared_ready)
                            });
                            if let Err(e) = res {
                                out.warnings.push(Warning::from_error(
                                    format!("{ctx} shared ready queue"),
                                    &e,
                                ));
                            }
                            out.shared_queues.push(queue);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => out.warnings.push(Warning::from_error(ctx.clone(), &e)),
                }
            }
            match self.dpc_queues(&r, &prcb, &mut walker, &mut cpu) {
                Ok(()) => {}
                Err(e) => out
                    .warnings
                    .push(Warning::from_error(format!("{ctx} DPC queue"), &e)),
            }
            out.cpus.push(cpu);
        }
        for q in &mut out.shared_queues {
            q.cpus = out
                .cpus
                .iter()
                .filter(|c| c.shared_ready_queue == Some(q.address))
                .map(|c| c.index)
                .collect();
        }
        self.ready_affinities(&r, &mut out);
        out
    }

    /// Each ready thread's CPUs: its affinity mapped onto the CPUs read
    /// (CPU n is allowed when its `Group`'s mask has its `GroupSetMember`
    /// bit; a CPU whose membership is unknown is allowed), on a shared
    /// queue only the CPUs sharing it. An unreadable affinity is a warning
    /// and leaves the thread's CPUs to its queue.
    fn ready_affinities(&self, r: &Reader<'_>, out: &mut SchedulerInfo) {
        let cpus: Vec<(u32, Option<u16>, Option<u64>)> = out
            .cpus
            .iter()
            .map(|c| (c.index, c.group, c.group_set_member))
            .collect();
        let sharers: Vec<u32> = match out.shared_queues.as_slice() {
            // Which queue a thread came from is not kept when several
            // exist: their CPUs together.
            [] => Vec::new(),
            qs => {
                let mut v: Vec<u32> = qs.iter().flat_map(|q| q.cpus.iter().copied()).collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        let mut warnings = Vec::new();
        let mut allowed = |e: &ReadyEntry| -> Option<Vec<u32>> {
            match thread_affinity(r, e.thread) {
                Ok(Some(groups)) => {
                    let v: Vec<u32> = cpus
                        .iter()
                        .filter(|(_, g, m)| match (g, m) {
                            (Some(g), Some(m)) => {
                                groups.iter().any(|&(gg, mask)| gg == *g && mask & m != 0)
                            }
                            _ => true,
                        })
                        .map(|c| c.0)
                        .collect();
                    if v.is_empty() {
                        warnings.push(Warning::from_error(
                            format!("ready thread {:#x} affinity", e.thread.0),
                            &Error::bad_data(e.thread, "affinity allows no CPU read; ignored"),
                        ));
                        return None;
                    }
                    Some(v)
                }
                Ok(None) => None,
                Err(err) => {
                    warnings.push(Warning::from_error(
                        format!("ready thread {:#x} affinity", e.thread.0),
                        &err,
                    ));
                    None
                }
            }
        };
        for c in &mut out.cpus {
            for e in &mut c.ready {
                e.cpus = allowed(e);
            }
        }
        for e in &mut out.shared_ready {
            e.cpus = match allowed(e) {
                Some(v) if !sharers.is_empty() => {
                    Some(v.into_iter().filter(|c| sharers.contains(c)).collect())
                }
                Some(v) => Some(v),
                None if !sharers.is_empty() => Some(sharers.clone()),
                None => None,
            };
        }
        out.warnings.extend(warnings);
    }

    /// `DpcData[0..2]`: the depth and the DPCs of both queues.
    fn dpc_queues(
        &self,
        r: &Reader<'_>,
        prcb: &crate::view::Object<'_>,
        walker: &mut crate::stacks::StackWalker<'_, 'd>,
        cpu: &mut CpuScheduler,
    ) -> Result<()> {
        let data = prcb.addr_of("DpcData")?;
        let dsize = r.ty("_KDPC_DATA")?.size;
        let link = r.offset_of("_KDPC", "DpcListEntry")?;
        let doubly = r.has_field("_KDPC_DATA", "DpcListHead");
        let mut depth = None;
        for i in 0..2u64 {
            let d = r.object("_KDPC_DATA", VirtAddr(data.0.wrapping_add(i * dsize)))?;
            if let Ok(n) = d.uint("DpcQueueDepth") {
                // A signed LONG: a negative depth is damage, not a count.
                let n = n as u32 as i32;
                if n >= 0 {
                    depth = Some(depth.unwrap_or(0) + n as u64);
                }
            }
            let mut dpcs = Vec::new();
            if doubly {
                let head = d.addr_of("DpcListHead")?;
                if r.read_ptr(head)?.0 != 0 {
                    for x in r.iter_list(head, "_KDPC", "DpcListEntry", MAX_DPCS)? {
                        dpcs.push(x?);
                    }
                }
            } else {
                // A singly linked list: ListHead.Next, each entry's Next,
                // NULL at the end.
                let mut next = r.read_ptr(d.addr_of("DpcList.ListHead")?)?;
                let mut seen = HashSet::new();
                while next.0 != 0 {
                    if !seen.insert(next.0) || seen.len() > MAX_DPCS {
                        return Err(Error::bad_data(
                            next,
                            "DPC list loops or is longer than the bound; stopped",
                        ));
                    }
                    dpcs.push(VirtAddr(next.0.wrapping_sub(link)));
                    next = r.read_ptr(next)?;
                }
            }
            for a in dpcs {
                let routine = r.object("_KDPC", a)?.ptr("DeferredRoutine")?;
                cpu.dpcs.push(DpcInfo {
                    address: a,
                    routine,
                    routine_name: (routine.0 != 0).then(|| walker.name_code_address(routine)),
                });
            }
        }
        cpu.dpc_queue_depth = depth;
        Ok(())
    }

    /// Available pages and commit against the limit (module docs).
    pub fn memory_state(&self) -> MemoryInfo {
        let mut out = MemoryInfo::default();
        let r = self.reader();
        if let Ok(p) = self.symbol("MiSystemPartition") {
            out.source = "MiSystemPartition.Vp".into();
            match r.object("_MI_PARTITION", p) {
                Ok(o) => {
                    let mut get = |f: &str| match o.uint(&format!("Vp.{f}")) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            out.warnings
                                .push(Warning::from_error(format!("MiSystemPartition.Vp.{f}"), &e));
                            None
                        }
                    };
                    out.available_pages = get("AvailablePages");
                    out.committed_pages = get("TotalCommittedPages");
                    out.commit_limit_pages = get("TotalCommitLimit");
                    out.physical_pages = get("NumberOfPhysicalPages");
                }
                Err(e) => out
                    .warnings
                    .push(Warning::from_error("MiSystemPartition", &e)),
            }
        } else {
            out.source = "MmAvailablePages, MmTotalCommittedPages, MmTotalCommitLimit".into();
            let mut get = |s: &str| match self.global(s, 8) {
                Ok(v) => Some(v),
                Err(e) => {
                    out.warnings.push(Warning::from_error(s, &e));
                    None
                }
            };
            out.available_pages = get("MmAvailablePages");
            out.committed_pages = get("MmTotalCommittedPages");
            out.commit_limit_pages = get("MmTotalCommitLimit");
            out.physical_pages = get("MmNumberOfPhysicalPages");
        }
        // Zero physical pages is a value nobody wrote, not a machine.
        out.physical_pages = out.physical_pages.filter(|&p| p != 0);
        if out.physical_pages.is_none() {
            out.physical_pages = self
                .object(
                    "_KUSER_SHARED_DATA",
                    VirtAddr(crate::discover::KUSER_SHARED_DATA),
                )
                .and_then(|k| k.uint("NumberOfPhysicalPages"))
                .ok()
                .filter(|&p| p != 0);
        }
        // A running kernel always has commit charged: zeros are a partition
        // nobody wrote (an image without memory manager state), not a
        // machine out of memory.
        if out.committed_pages.unwrap_or(0) == 0 || out.commit_limit_pages.unwrap_or(0) == 0 {
            out.available_pages = None;
            out.committed_pages = None;
            out.commit_limit_pages = None;
        }
        out
    }

    /// Bytes per page.
    pub fn page_size(&self) -> u64 {
        PAGE_SIZE
    }
}
