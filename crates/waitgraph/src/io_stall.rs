//! Waits that no lock explains: I/O stuck at the bottom of a device stack,
//! and long kernel waits on objects nobody owns.
//!
//! Both read the input directly, after the lock analysis: a thread already
//! explained by a lock chain or a cycle is left to that finding.
//!
//! - **Stuck I/O.** A waiting thread whose request (one it issued, or one
//!   whose completion event it waits on) reached the last location of its
//!   stack, the port or miniport driver, and has waited at least
//!   `stuck_io_seconds`. One finding per device, counting every request
//!   pending there. In a VM the bottom driver talks to the host.
//! - **Unexplained.** A thread waiting in kernel mode for longer than
//!   `unexplained_wait_seconds`, for a reason that marks a kernel-internal
//!   wait (executive, paging, pool), on objects none of which has an
//!   owner. Waits for user mode, on queues, for requests or LPC messages
//!   are how idle threads wait and are never counted.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::analyze::{plural, secs_text, state_name};
use crate::verdict::*;
use crate::{Thread, ThreadKey, ThreadState, WaitGraphInput};

/// Requests listed per stuck-I/O finding.
const MAX_IRPS_LISTED: usize = 64;

/// Objects listed in the unexplained finding.
const MAX_OBJECTS_LISTED: usize = 32;

/// Wait reasons of a thread blocked inside the kernel on its own account
/// (executive waits, paging, pool): the reasons an idle thread never waits
/// with. Windows' `KWAIT_REASON` names; another kernel model maps its
/// states onto them.
const KERNEL_WAIT_REASONS: &[&str] = &[
    // Linux's plain uninterruptible sleep (D): the hung-task detector's
    // own criterion; idle kernel threads sleep interruptibly or in
    // TASK_IDLE, and killable sleeps are reported apart.
    "TASK_UNINTERRUPTIBLE",
    "Executive",
    "WrExecutive",
    "FreePage",
    "WrFreePage",
    "PageIn",
    "WrPageIn",
    "PoolAllocation",
    "WrPoolAllocation",
    "VirtualMemory",
    "WrVirtualMemory",
    "PageOut",
    "WrPageOut",
    "WrRundown",
];

/// Whether `reason` marks a kernel-internal wait. Lock-acquire reasons
/// (`WrResource`, `WrMutex`, ...) are left to the lock analysis, which
/// reads a lock nobody holds as no contention.
fn kernel_wait(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| KERNEL_WAIT_REASONS.contains(&r))
}

/// Bottom drivers of paravirtual or emulated storage: the host completes
/// their requests.
const VIRTUAL_DISK_DRIVERS: &[&str] = &["viostor", "vioscsi", "storvsc", "pvscsi", "xenvbd"];
/// The same for network adapters.
const VIRTUAL_NET_DRIVERS: &[&str] = &["netkvm", "netvsc", "vmxnet3", "xennet"];

fn short_driver(name: &str) -> String {
    name.rsplit('\\')
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// Where a request sits: its device when known, else its driver's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Place {
    Device(u64),
    Driver(String),
}

fn place_of(io: &crate::Io) -> Option<Place> {
    match (io.device_address, &io.driver) {
        (Some(a), _) => Some(Place::Device(a.0)),
        (None, Some(d)) => Some(Place::Driver(d.clone())),
        (None, None) => None,
    }
}

/// What the wait-class findings (stuck I/O, unexplained, unanswered ALPC)
/// share: the thresholds and process names.
pub(crate) struct Ctx<'a> {
    opts: &'a AnalyzeOptions,
    proc_name: HashMap<u64, &'a str>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(input: &'a WaitGraphInput, opts: &'a AnalyzeOptions) -> Ctx<'a> {
        let mut proc_name = HashMap::new();
        for p in &input.processes {
            proc_name.entry(p.pid).or_insert(p.name.as_str());
        }
        Ctx { opts, proc_name }
    }

    /// A process's image name, `?` when the PID is not listed.
    pub(crate) fn process_name(&self, pid: u64) -> &str {
        self.proc_name.get(&pid).copied().unwrap_or("?")
    }

    /// The young-wait threshold, seconds.
    pub(crate) fn young_wait_seconds(&self) -> f64 {
        self.opts.young_wait_seconds
    }

    pub(crate) fn summary(&self, t: &Thread) -> ThreadSummary {
        ThreadSummary {
            address: Addr(t.key),
            tid: Some(t.tid),
            pid: Some(t.pid),
            process: self.proc_name.get(&t.pid).map(|s| s.to_string()),
            state: state_name(Some(&t.state)),
            wait_reason: t.wait_reason.clone(),
            waited_seconds: waited(t),
            waits_on: Vec::new(),
        }
    }

    pub(crate) fn thread_step(&self, t: &Thread) -> EvidenceStep {
        EvidenceStep::Thread {
            address: Addr(t.key),
            tid: Some(t.tid),
            pid: Some(t.pid),
            process: self.proc_name.get(&t.pid).map(|s| s.to_string()),
            state: state_name(Some(&t.state)),
            cpu: None,
            wait_reason: t.wait_reason.clone(),
            waited_seconds: waited(t),
            stack: t
                .stack
                .iter()
                .take(self.opts.stack_frames)
                .cloned()
                .collect(),
        }
    }

    /// Processes of `threads`, most threads first, then by PID.
    pub(crate) fn processes(&self, threads: &[&Thread]) -> Vec<BlockedProcess> {
        let mut by_pid: BTreeMap<u64, usize> = BTreeMap::new();
        for t in threads {
            *by_pid.entry(t.pid).or_default() += 1;
        }
        let mut v: Vec<BlockedProcess> = by_pid
            .into_iter()
            .map(|(pid, n)| BlockedProcess {
                name: self.proc_name.get(&pid).unwrap_or(&"?").to_string(),
                pid,
                threads: n,
            })
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.threads));
        v
    }

    pub(crate) fn threads_listed(&self, threads: &[&Thread]) -> (Vec<ThreadSummary>, bool) {
        let max = self.opts.max_threads_per_finding;
        (
            threads.iter().take(max).map(|t| self.summary(t)).collect(),
            threads.len() > max,
        )
    }
}

/// The thread's wait, if plausible (the graph warned about the others).
pub(crate) fn waited(t: &Thread) -> Option<f64> {
    crate::graph::plausible_seconds(t.waited_seconds)
}

pub(crate) fn secs(t: &Thread) -> f64 {
    waited(t).unwrap_or(0.0)
}

/// Longest wait first, then by thread address: a stable order.
pub(crate) fn by_wait(a: &&Thread, b: &&Thread) -> std::cmp::Ordering {
    secs(b).total_cmp(&secs(a)).then(a.key.cmp(&b.key))
}

/// One finding per device at which waited-on requests have sat for at
/// least `stuck_io_seconds`; the threads in them are added to `explained`.
pub(crate) fn stuck_io_findings(
    input: &WaitGraphInput,
    opts: &AnalyzeOptions,
    explained: &mut HashSet<ThreadKey>,
) -> Vec<Finding> {
    let ctx = Ctx::new(input, opts);
    // Every pending request by place, once each.
    let mut pending: BTreeMap<Place, HashSet<u64>> = BTreeMap::new();
    // Completion event -> the requests that signal it.
    let mut by_event: HashMap<u64, Vec<&crate::Io>> = HashMap::new();
    for t in &input.threads {
        for io in &t.io {
            if let Some(p) = place_of(io) {
                pending.entry(p).or_default().insert(io.irp.0);
            }
            if let Some(e) = io.event {
                by_event.entry(e.0).or_default().push(io);
            }
        }
    }
    let mut waits_on: HashMap<ThreadKey, Vec<u64>> = HashMap::new();
    for r in &input.resources {
        for w in &r.waiters {
            waits_on.entry(w.thread).or_default().push(r.key);
        }
    }
    // Place -> (threads, requests) waited on there.
    let mut stuck: BTreeMap<Place, (Vec<&Thread>, Vec<&crate::Io>)> = BTreeMap::new();
    for t in &input.threads {
        if t.state != ThreadState::Waiting
            || explained.contains(&t.key)
            || secs(t) < opts.stuck_io_seconds
        {
            continue;
        }
        let mut mine: Vec<&crate::Io> = t.io.iter().collect();
        for obj in waits_on.get(&t.key).map(Vec::as_slice).unwrap_or_default() {
            mine.extend(by_event.get(obj).map(Vec::as_slice).unwrap_or_default());
        }
        let mut places_seen = HashSet::new();
        for io in mine.into_iter().filter(|io| io.at_bottom) {
            let Some(p) = place_of(io) else { continue };
            let entry = stuck.entry(p.clone()).or_default();
            if places_seen.insert(p) {
                entry.0.push(t);
            }
            if !entry.1.iter().any(|x| x.irp == io.irp) {
                entry.1.push(io);
            }
        }
    }
    let mut out = Vec::new();
    for (place, (mut threads, ios)) in stuck {
        threads.sort_by(by_wait);
        let Some(first) = threads.first() else {
            continue;
        };
        let io = ios[0];
        let driver = io
            .driver
            .clone()
            .unwrap_or_else(|| "an unnamed driver".into());
        let count = pending.get(&place).map_or(ios.len(), HashSet::len);
        let max = secs(first);
        let short = short_driver(&driver);
        let virtual_disk = VIRTUAL_DISK_DRIVERS.contains(&short.as_str());
        let virtual_net = VIRTUAL_NET_DRIVERS.contains(&short.as_str());
        // Another kernel's I/O waits (Linux's io_schedule on a page or a
        // buffer) name their wait, not an IRP major function.
        let not_irps = ios.iter().all(|io| {
            io.major
                .as_deref()
                .is_some_and(|m| !m.starts_with("IRP_MJ"))
        });
        let noun = if not_irps { "I/O wait" } else { "IRP" };
        let tail = if virtual_disk {
            "; the guest waits on its virtual disk"
        } else if virtual_net {
            "; the guest waits on its virtual network adapter"
        } else if not_irps {
            "; nothing records who is to release them"
        } else {
            "; the driver has not completed them"
        };
        let stack = if io.device_stack.is_empty() {
            vec![driver.clone()]
        } else {
            io.device_stack.clone()
        };
        let mut f = Finding::empty(FindingKind::StuckIo);
        f.summary = format!(
            "{count} {noun}{} pending at {driver} for up to {max:.0} s{tail}",
            if count == 1 { "" } else { "s" }
        );
        f.why = if not_irps {
            format!(
                "{} waited at least {} (threshold {}) in io_schedule on {} ({}): an I/O wait, no lock with an owner is involved; the kernel does not record who holds the page or buffer, so look at who should finish or release it",
                plural(threads.len(), "thread"),
                secs_text(threads.iter().map(|t| secs(t)).fold(f64::MAX, f64::min)),
                secs_text(opts.stuck_io_seconds),
                io.major.as_deref().unwrap_or("a page or buffer"),
                stack.join(" -> "),
            )
        } else {
            format!(
            "{} waited at least {} (threshold {}) on requests that reached the bottom of their device stack ({}){}; no lock is involved: the driver, {}, has not completed them",
            plural(threads.len(), "thread"),
            secs_text(threads.iter().map(|t| secs(t)).fold(f64::MAX, f64::min)),
            secs_text(opts.stuck_io_seconds),
            stack.join(" -> "),
            io.device
                .as_deref()
                .map(|d| format!(" at device {d}"))
                .unwrap_or_default(),
            if virtual_disk || virtual_net {
                "a paravirtual driver whose requests the host completes"
            } else {
                "the bottom of the stack"
            }
        )
        };
        f.chain.push(ctx.thread_step(first));
        f.chain.push(EvidenceStep::Irp {
            address: io.irp,
            major: io.major.clone(),
            device: io.device.clone(),
        });
        for d in &stack {
            f.chain.push(EvidenceStep::Driver { name: d.clone() });
        }
        f.owner_io = ios
            .iter()
            .take(MAX_IRPS_LISTED)
            .map(|&io| IoSummary::from(io))
            .collect();
        f.blocked_threads = threads.len();
        f.blocked_processes = ctx.processes(&threads);
        f.max_wait_seconds = waited(first);
        f.total_wait_seconds = threads.iter().map(|t| secs(t)).sum();
        (f.threads, f.threads_truncated) = ctx.threads_listed(&threads);
        for t in &threads {
            f.evidence_warnings.extend(t.warnings.iter().cloned());
            explained.insert(t.key);
        }
        f.stuck_io = Some(StuckIo {
            driver,
            device: io.device.clone(),
            device_address: io.device_address,
            pending_irps: count,
            max_wait_seconds: waited(first),
            device_stack: stack,
            virtual_device: virtual_disk || virtual_net,
            irps: ios.iter().take(MAX_IRPS_LISTED).map(|io| io.irp).collect(),
        });
        out.push(f);
    }
    out
}

/// The unexplained long kernel waits, as one finding, or none.
pub(crate) fn unexplained_finding(
    input: &WaitGraphInput,
    opts: &AnalyzeOptions,
    explained: &HashSet<ThreadKey>,
) -> Option<Finding> {
    let ctx = Ctx::new(input, opts);
    let mut waits_on: HashMap<ThreadKey, Vec<&crate::Resource>> = HashMap::new();
    for r in &input.resources {
        for w in &r.waiters {
            waits_on.entry(w.thread).or_default().push(r);
        }
    }
    let mut threads: Vec<&Thread> = Vec::new();
    let mut objects: BTreeMap<u64, (&crate::Resource, usize, f64)> = BTreeMap::new();
    for t in &input.threads {
        let Some(objs) = waits_on.get(&t.key) else {
            continue;
        };
        let kernel_reason = kernel_wait(t.wait_reason.as_deref());
        if t.state != ThreadState::Waiting
            || t.user_mode_wait
            || !kernel_reason
            || explained.contains(&t.key)
            || secs(t) <= opts.unexplained_wait_seconds
            || objs.iter().any(|r| !r.owners.is_empty())
        {
            continue;
        }
        threads.push(t);
        for r in objs {
            let e = objects.entry(r.key).or_insert((r, 0, 0.0));
            e.1 += 1;
            e.2 = e.2.max(secs(t));
        }
    }
    if threads.is_empty() {
        return None;
    }
    threads.sort_by(by_wait);
    let procs = ctx.processes(&threads);
    let mut f = Finding::empty(FindingKind::Unexplained);
    f.summary = format!(
        "{} in {} {} waited more than {:.0} s on objects with no known owner",
        plural(threads.len(), "thread"),
        if procs.len() == 1 {
            "1 process".to_string()
        } else {
            format!("{} processes", procs.len())
        },
        if threads.len() == 1 { "has" } else { "have" },
        opts.unexplained_wait_seconds
    );
    f.why = format!(
        "they wait in kernel mode for a kernel-internal reason ({}) on {} that no thread owns, no I/O and no lock chain explains the wait, and idle threads do not wait that way: look at what should signal the objects",
        {
            let mut r: Vec<&str> = threads
                .iter()
                .filter_map(|t| t.wait_reason.as_deref())
                .collect();
            r.sort_unstable();
            r.dedup();
            r.join(", ")
        },
        plural(objects.len(), "object")
    );
    let mut objs: Vec<(&crate::Resource, usize, f64)> = objects.into_values().collect();
    objs.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.key.cmp(&b.0.key)));
    f.unexplained_objects = objs
        .iter()
        .take(MAX_OBJECTS_LISTED)
        .map(|(r, n, s)| UnexplainedObject {
            address: Addr(r.key),
            kind: crate::analyze::kind_name(&r.kind),
            name: r.name.clone(),
            threads: *n,
            max_wait_seconds: Some(*s),
        })
        .collect();
    f.blocked_threads = threads.len();
    f.blocked_processes = procs;
    f.max_wait_seconds = waited(threads[0]);
    f.total_wait_seconds = threads.iter().map(|t| secs(t)).sum();
    (f.threads, f.threads_truncated) = ctx.threads_listed(&threads);
    for t in &threads {
        f.evidence_warnings.extend(t.warnings.iter().cloned());
    }
    Some(f)
}
