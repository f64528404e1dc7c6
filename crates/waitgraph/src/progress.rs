//! Progress across a series of dumps of one running machine: busy or
//! stuck, proven.
//!
//! One dump shows who waits on whom and for how long; whether the owner
//! at the end of a chain is making progress is an inference from a
//! threshold. Two dumps of the same boot, some seconds apart, settle it:
//! a thread whose context-switch count, CPU time, wait start and stack did
//! not change in that interval made no progress; a lock that changed hands
//! or whose waiters came and went did. The kernel's own hung-task detector
//! proves "stuck" the same way (a D task whose switch count did not move).
//!
//! A kernel model fills a [`ProgressInput`] beside its [`crate::WaitGraphInput`]
//! for each dump ([`ProgressSource`]); [`compare`] checks that the dumps are
//! of one boot, matches threads by address, client id and create time (so
//! that a recycled address is not taken for the same thread), measures each
//! thread, lock, IRP and CPU, and proves or disproves each finding of the
//! last dump's verdict.
//!
//! ```
//! use hangscope_waitgraph::*;
//!
//! let thread = |key, state| Thread {
//!     key, tid: key, pid: 8, state, wait_reason: None,
//!     waited_seconds: Some(40.0), waited_ticks: None, stack: vec![], io: vec![],
//!     user_mode_wait: false, warnings: vec![],
//! };
//! let input = WaitGraphInput {
//!     threads: vec![thread(1, ThreadState::Waiting), thread(2, ThreadState::Waiting)],
//!     resources: vec![Resource {
//!         key: 0x1000, kind: ResourceKind::Mutant, name: None,
//!         owners: vec![Claim { thread: 1, mode: Mode::Exclusive }],
//!         waiters: vec![Claim { thread: 2, mode: Mode::Exclusive }],
//!         contention_count: None, warnings: vec![],
//!     }],
//!     ..WaitGraphInput::default()
//! };
//! let moment = |uptime: f64| Moment {
//!     label: format!("t={uptime}"),
//!     input: input.clone(),
//!     progress: ProgressInput {
//!         boot: BootIdentity { os: "windows".into(), ..BootIdentity::default() },
//!         clock: Clock { uptime_seconds: Some(uptime), ticks: None },
//!         threads: (1..=2)
//!             .map(|k| ThreadCounters { key: k, tid: k, context_switches: Some(7), ..ThreadCounters::default() })
//!             .collect(),
//!         ..ProgressInput::default()
//!     },
//! };
//! let series = compare(&[moment(100.0), moment(130.0)], &AnalyzeOptions::default()).unwrap();
//! assert_eq!(series.findings[0].proof, Proof::Stuck);
//! assert!(series.findings[0].line.starts_with("stuck (proven)"));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::verdict::{Addr, AnalyzeOptions, EvidenceStep, FindingKind, Overall, Verdict};
use crate::{ThreadKey, ThreadState, WaitGraphInput};

/// At most this many threads, locks and IRPs are compared (the rest are
/// counted, not listed): bounds the work on damaged dumps.
pub const MAX_TRACKED: usize = 65_536;

/// Two boot times further apart than this (seconds) are two boots. A
/// Windows boot time is derived from the wall clock and the tick count,
/// each read at its own resolution.
pub const BOOT_TIME_TOLERANCE_SECONDS: f64 = 2.0;

/// What identifies one boot of one machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BootIdentity {
    /// `windows` or `linux`.
    pub os: String,
    /// The kernel: Windows build and PDB identity, or the Linux banner.
    pub kernel: Option<String>,
    /// Where the kernel image was loaded (KASLR base).
    pub kernel_base: Option<Addr>,
    /// When the machine booted, seconds since 1970 (UTC).
    pub boot_time_unix_seconds: Option<f64>,
}

/// A dump's own clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// The kernel's tick counter (Windows tick count, Linux jiffies).
    pub ticks: Option<u64>,
    /// Seconds since boot.
    pub uptime_seconds: Option<f64>,
}

/// Per-thread counters that only move when a thread makes progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadCounters {
    /// The thread's kernel object address (its [`crate::Thread::key`]).
    pub key: ThreadKey,
    /// TID.
    pub tid: u64,
    /// Create time in the kernel's own unit (`ETHREAD.CreateTime`,
    /// `task_struct.start_time`): with the address and TID, it tells a
    /// recycled thread object from the same thread.
    pub create_time: Option<u64>,
    /// Context switches (`KTHREAD.ContextSwitches`; `nvcsw + nivcsw`).
    pub context_switches: Option<u64>,
    /// CPU time in kernel mode, seconds.
    pub kernel_seconds: Option<f64>,
    /// CPU time in user mode, seconds.
    pub user_seconds: Option<f64>,
    /// When the thread last changed wait state, in the kernel's own unit
    /// (`KTHREAD.WaitTime` in ticks; `sched_info.last_arrival` in ns).
    pub wait_start: Option<u64>,
}

/// Where a pending I/O request is in its stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IrpPosition {
    /// The request.
    pub irp: Addr,
    /// The thread that issued it.
    pub thread: ThreadKey,
    /// Its current stack location (`IRP.CurrentLocation`).
    pub current_location: Option<u64>,
}

/// What a kernel model adds to its wait-for graph input so that dumps can
/// be compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressInput {
    /// Which boot the dump is of.
    pub boot: BootIdentity,
    /// The dump's clock.
    pub clock: Clock,
    /// Per-thread counters.
    pub threads: Vec<ThreadCounters>,
    /// Pending I/O and where each request is.
    pub irps: Vec<IrpPosition>,
    /// What could not be read.
    pub warnings: Vec<String>,
}

/// A kernel model that can give the counters progress is measured with.
pub trait ProgressSource {
    /// Build the progress input of this dump.
    fn progress_input(&self) -> ProgressInput;
}

/// One dump of a series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Moment {
    /// How reports name it (its file name).
    pub label: String,
    /// The wait-for graph input.
    pub input: WaitGraphInput,
    /// The counters.
    pub progress: ProgressInput,
}

/// Why the dumps of a series cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOneBoot {
    /// The reason, naming the dumps.
    pub reason: String,
}

impl std::fmt::Display for NotOneBoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for NotOneBoot {}

/// Whether something moved between the first and last dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Motion {
    /// It made progress.
    Moved,
    /// Its counters are known and did not change.
    Still,
    /// The dumps do not say (counters unreadable, not in every dump).
    Unknown,
}

/// A finding's verdict over the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// Nothing of the hang moved.
    Stuck,
    /// The lock changed hands, or its waiters came and went.
    Busy,
    /// The same owner keeps the lock, but it runs (uses CPU, switches).
    Slow,
    /// The series does not decide (counters missing).
    Unproven,
}

impl Proof {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Proof::Stuck => "stuck",
            Proof::Busy => "busy",
            Proof::Slow => "slow",
            Proof::Unproven => "unproven",
        }
    }
}

/// One dump of the series as the comparison read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesDump {
    /// Its label (file name).
    pub label: String,
    /// Its clock.
    pub clock: Clock,
    /// Which boot it is of (what the dumps were checked to share).
    pub boot: BootIdentity,
    /// Seconds after the first dump, by the dumps' own clocks.
    pub offset_seconds: f64,
    /// The single-dump verdict's overall kind.
    pub overall: Overall,
}

/// One thread across the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadProgress {
    /// Its kernel object.
    pub address: Addr,
    /// TID.
    pub tid: u64,
    /// PID.
    pub pid: u64,
    /// Its state in each dump (`waiting (WrResource)`, `running on CPU 1`).
    pub states: Vec<String>,
    /// Context switches from the first to the last dump.
    pub context_switches: Option<u64>,
    /// CPU seconds used (kernel and user) from the first to the last dump.
    pub cpu_seconds: Option<f64>,
    /// Whether its wait started anew.
    pub wait_restarted: Option<bool>,
    /// Whether its stack changed (`None` when a dump has no stack for it).
    pub stack_changed: Option<bool>,
    /// What that adds up to.
    pub motion: Motion,
}

/// One lock across the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockProgress {
    /// The lock.
    pub address: Addr,
    /// Its kind.
    pub kind: String,
    /// Its owners in each dump.
    pub owners: Vec<Vec<Addr>>,
    /// How many times the owner set changed between consecutive dumps.
    pub owner_changes: usize,
    /// Growth of the contention count, when the kind keeps one.
    pub contention_growth: Option<u64>,
    /// Waiters in the first dump.
    pub waiters_first: usize,
    /// Waiters in the last dump.
    pub waiters_last: usize,
    /// Waiters of the first dump that no longer wait on it (got through).
    pub waiters_left: Vec<Addr>,
    /// Waiters of the last dump that did not wait in the first.
    pub waiters_new: Vec<Addr>,
    /// What that adds up to.
    pub motion: Motion,
}

/// One pending I/O request across the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IrpProgress {
    /// The request.
    pub irp: Addr,
    /// Its issuer.
    pub thread: Addr,
    /// Its current stack location in each dump (`None`: not pending there).
    pub locations: Vec<Option<u64>>,
    /// Whether it completed (pending in the first dump, gone in the last).
    pub completed: bool,
    /// What that adds up to.
    pub motion: Motion,
}

/// One CPU across the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuProgress {
    /// CPU number.
    pub cpu: u32,
    /// The thread running on it in each dump.
    pub running: Vec<Option<Addr>>,
}

/// A finding of the last dump, proven or disproven by the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingProgress {
    /// The finding's rank in the last dump's verdict.
    pub rank: usize,
    /// Its kind in the last dump alone.
    pub single_dump_kind: FindingKind,
    /// Its kind over the series.
    pub kind: FindingKind,
    /// The proof's class.
    pub proof: Proof,
    /// The proof in words (`stuck (proven): the owner made no progress in
    /// 30.2 s: 0 context switches, same stack; 31 waiters unchanged`).
    pub line: String,
    /// Threads of the finding that made no progress.
    pub still_threads: Vec<Addr>,
    /// Threads of the finding that moved (never called stuck).
    pub moved_threads: Vec<Addr>,
    /// Threads of the finding the series cannot judge.
    pub unknown_threads: Vec<Addr>,
}

/// The comparison of a series of dumps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The dumps, in order.
    pub dumps: Vec<SeriesDump>,
    /// Seconds from the first to the last dump, by their own clocks.
    pub interval_seconds: f64,
    /// The overall verdict over the series (its exit code is the CLI's).
    pub overall: Overall,
    /// One sentence for the whole series.
    pub summary: String,
    /// The last dump's verdict: findings, chains, graph.
    pub verdict: Verdict,
    /// Each finding of `verdict`, proven or not, in its order.
    pub findings: Vec<FindingProgress>,
    /// Threads in every dump (the ones in a finding, then the ones that
    /// moved, bounded).
    pub threads: Vec<ThreadProgress>,
    /// Threads in the first dump that are gone, or replaced by another
    /// thread at the same address, in the last.
    pub threads_gone: usize,
    /// Threads new in the last dump.
    pub threads_new: usize,
    /// Threads that moved, among those in every dump.
    pub threads_moved: usize,
    /// Locks with waiters in some dump.
    pub locks: Vec<LockProgress>,
    /// Pending I/O of the first or last dump.
    pub irps: Vec<IrpProgress>,
    /// Each CPU's running thread.
    pub cpus: Vec<CpuProgress>,
    /// Graph nodes (ids of [`crate::GraphNode`]) that did not move.
    pub still_nodes: Vec<String>,
    /// Warnings met reading the counters, by dump.
    pub warnings: Vec<String>,
}

/// A thread's identity across dumps: address, TID and create time.
fn same_thread(a: &ThreadCounters, b: &ThreadCounters) -> bool {
    a.key == b.key
        && a.tid == b.tid
        && match (a.create_time, b.create_time) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

/// Check that the dumps are of one boot, in time order; their offsets in
/// seconds from the first.
pub fn check_one_boot(moments: &[Moment]) -> Result<Vec<f64>, NotOneBoot> {
    let refuse = |reason: String| Err(NotOneBoot { reason });
    if moments.len() < 2 {
        return refuse("a series needs at least two dumps".into());
    }
    let first = &moments[0];
    let b0 = &first.progress.boot;
    let mut offsets = Vec::with_capacity(moments.len());
    let mut last_uptime: Option<f64> = None;
    for m in moments {
        let b = &m.progress.boot;
        if b.os != b0.os {
            return refuse(format!(
                "{} holds a {} kernel and {} a {} kernel: not the same machine",
                first.label, b0.os, m.label, b.os
            ));
        }
        if let (Some(x), Some(y)) = (&b0.kernel, &b.kernel) {
            if x != y {
                return refuse(format!(
                    "{} and {} hold different kernels ({x} / {y}): not the same boot",
                    first.label, m.label
                ));
            }
        }
        if let (Some(x), Some(y)) = (b0.kernel_base, b.kernel_base) {
            if x != y {
                return refuse(format!(
                    "{} and {} load the kernel at different bases ({x} / {y}): not the same boot",
                    first.label, m.label
                ));
            }
        }
        if let (Some(x), Some(y)) = (b0.boot_time_unix_seconds, b.boot_time_unix_seconds) {
            if (x - y).abs() > BOOT_TIME_TOLERANCE_SECONDS {
                return refuse(format!(
                    "{} and {} booted {:.1} s apart: not the same boot",
                    first.label,
                    m.label,
                    (x - y).abs()
                ));
            }
        }
        let Some(uptime) = m.progress.clock.uptime_seconds.filter(|u| u.is_finite()) else {
            return refuse(format!(
                "{} has no readable clock (tick count or jiffies): its place in the series is unknown",
                m.label
            ));
        };
        if let Some(prev) = last_uptime {
            if uptime <= prev {
                return refuse(format!(
                    "{}'s clock ({uptime:.3} s since boot) is not after the dump before it ({prev:.3} s): \
                     give the dumps in the order they were taken, each of the same boot",
                    m.label
                ));
            }
        }
        if let (Some(t0), Some(t)) = (
            moments[offsets.len().saturating_sub(1)]
                .progress
                .clock
                .ticks,
            m.progress.clock.ticks,
        ) {
            if !offsets.is_empty() && t <= t0 {
                return refuse(format!(
                    "{}'s tick count ({t}) does not increase over the dump before it ({t0})",
                    m.label
                ));
            }
        }
        last_uptime = Some(uptime);
        offsets.push(uptime - first.progress.clock.uptime_seconds.unwrap_or(uptime));
    }
    Ok(offsets)
}

fn state_text(t: &crate::Thread) -> String {
    match &t.state {
        ThreadState::Running { cpu } => format!("running on CPU {cpu}"),
        ThreadState::Ready => "ready".into(),
        ThreadState::Waiting => match &t.wait_reason {
            Some(r) => format!("waiting ({r})"),
            None => "waiting".into(),
        },
        ThreadState::Other { name } => name.clone(),
    }
}

fn stack_text(t: &crate::Thread) -> Vec<String> {
    t.stack.iter().map(|f| f.to_string()).collect()
}

/// Compare a series of dumps of one boot, in time order: each thread,
/// lock, IRP and CPU, and each finding of the last dump's verdict proven
/// stuck, busy or slow where the counters allow.
pub fn compare(moments: &[Moment], opts: &AnalyzeOptions) -> Result<Series, NotOneBoot> {
    let offsets = check_one_boot(moments)?;
    let n = moments.len();
    let interval = offsets.last().copied().unwrap_or(0.0);
    let verdicts: Vec<Verdict> = moments
        .iter()
        .map(|m| crate::analyze(&m.input, opts))
        .collect();
    let mut warnings: Vec<String> = Vec::new();
    for m in moments {
        warnings.extend(
            m.progress
                .warnings
                .iter()
                .map(|w| format!("{}: {w}", m.label)),
        );
    }

    // Threads present in every dump, by identity.
    let counters: Vec<HashMap<ThreadKey, &ThreadCounters>> = moments
        .iter()
        .map(|m| {
            m.progress
                .threads
                .iter()
                .take(MAX_TRACKED)
                .map(|c| (c.key, c))
                .collect()
        })
        .collect();
    let threads_of: Vec<HashMap<ThreadKey, &crate::Thread>> = moments
        .iter()
        .map(|m| {
            m.input
                .threads
                .iter()
                .take(MAX_TRACKED)
                .map(|t| (t.key, t))
                .collect()
        })
        .collect();
    let same_everywhere = |key: ThreadKey| -> bool {
        let Some(c0) = counters[0].get(&key) else {
            // No counters: match on address and TID in the graph input.
            let Some(t0) = threads_of[0].get(&key) else {
                return false;
            };
            return threads_of
                .iter()
                .all(|m| m.get(&key).is_some_and(|t| t.tid == t0.tid));
        };
        counters
            .iter()
            .zip(&threads_of)
            .all(|(c, t)| c.get(&key).is_some_and(|x| same_thread(c0, x)) && t.contains_key(&key))
    };
    let mut tracked: BTreeMap<ThreadKey, ThreadProgress> = BTreeMap::new();
    let mut threads_gone = 0usize;
    for t in moments[0].input.threads.iter().take(MAX_TRACKED) {
        if !same_everywhere(t.key) {
            threads_gone += 1;
            continue;
        }
        tracked.insert(t.key, thread_progress(t.key, &threads_of, &counters));
    }
    let threads_new = moments[n - 1]
        .input
        .threads
        .iter()
        .take(MAX_TRACKED)
        .filter(|t| !tracked.contains_key(&t.key))
        .count();
    let motion_of = |key: ThreadKey| tracked.get(&key).map_or(Motion::Unknown, |p| p.motion);

    // Locks with waiters in some dump.
    let mut lock_keys: BTreeSet<u64> = BTreeSet::new();
    for m in moments {
        for r in m.input.resources.iter().take(MAX_TRACKED) {
            if !r.waiters.is_empty() {
                lock_keys.insert(r.key);
            }
        }
    }
    let resources: Vec<HashMap<u64, &crate::Resource>> = moments
        .iter()
        .map(|m| {
            m.input
                .resources
                .iter()
                .take(MAX_TRACKED)
                .map(|r| (r.key, r))
                .collect()
        })
        .collect();
    let locks: Vec<LockProgress> = lock_keys
        .iter()
        .take(MAX_TRACKED)
        .map(|&k| lock_progress(k, &resources))
        .collect();
    let lock_of = |k: u64| locks.iter().find(|l| l.address.0 == k);

    // Pending I/O of the first or last dump.
    let positions: Vec<HashMap<u64, &IrpPosition>> = moments
        .iter()
        .map(|m| {
            m.progress
                .irps
                .iter()
                .take(MAX_TRACKED)
                .map(|p| (p.irp.0, p))
                .collect()
        })
        .collect();
    let mut irp_keys: BTreeSet<u64> = positions[0].keys().copied().collect();
    irp_keys.extend(positions[n - 1].keys().copied());
    let irps: Vec<IrpProgress> = irp_keys
        .iter()
        .map(|&k| {
            let locations: Vec<Option<u64>> = positions
                .iter()
                .map(|p| p.get(&k).and_then(|x| x.current_location))
                .collect();
            let pending: Vec<bool> = positions.iter().map(|p| p.contains_key(&k)).collect();
            let thread = positions
                .iter()
                .find_map(|p| p.get(&k).map(|x| x.thread))
                .unwrap_or(0);
            let completed = pending[0] && !pending[n - 1];
            let motion = if completed
                || (pending.iter().all(|p| *p) && locations.windows(2).any(|w| w[0] != w[1]))
            {
                Motion::Moved
            } else if pending.iter().all(|p| *p) && locations.iter().all(|l| l.is_some()) {
                Motion::Still
            } else {
                Motion::Unknown
            };
            IrpProgress {
                irp: Addr(k),
                thread: Addr(thread),
                locations,
                completed,
                motion,
            }
        })
        .collect();

    // Each CPU's running thread.
    let mut cpu_map: BTreeMap<u32, Vec<Option<Addr>>> = BTreeMap::new();
    for (i, m) in moments.iter().enumerate() {
        for t in m.input.threads.iter().take(MAX_TRACKED) {
            if let ThreadState::Running { cpu } = t.state {
                if cpu_map.len() < 4096 || cpu_map.contains_key(&cpu) {
                    cpu_map.entry(cpu).or_insert_with(|| vec![None; n])[i] = Some(Addr(t.key));
                }
            }
        }
    }
    let cpus = cpu_map
        .into_iter()
        .map(|(cpu, running)| CpuProgress { cpu, running })
        .collect();

    // The last dump's findings, proven or not.
    let verdict = verdicts[n - 1].clone();
    let mut findings = Vec::new();
    for f in &verdict.findings {
        findings.push(prove(f, interval, &motion_of, &tracked, &locks, &irps));
    }
    let mut overall = verdict.overall;
    if !findings.is_empty() {
        overall = findings
            .iter()
            .map(|p| p.kind.overall())
            .max()
            .unwrap_or(overall);
    }
    let threads_moved = tracked
        .values()
        .filter(|p| p.motion == Motion::Moved)
        .count();
    let summary = series_summary(&findings, n, interval, threads_moved, tracked.len());

    // What did not move, for the drawn graph.
    let mut still_nodes = Vec::new();
    for node in &verdict.graph.nodes {
        let Some((kind, addr)) = node.id.split_once(":0x") else {
            continue;
        };
        let Ok(a) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        let still = match kind {
            "t" => motion_of(a) == Motion::Still,
            "r" => lock_of(a).is_some_and(|l| l.motion == Motion::Still),
            "w" => {
                lock_of(a).is_some_and(|l| l.waiters_left.is_empty() && l.waiters_new.is_empty())
            }
            _ => false,
        };
        if still {
            still_nodes.push(node.id.clone());
        }
    }

    // Threads listed: those in a finding first, then those that moved.
    let in_findings: BTreeSet<u64> = findings
        .iter()
        .flat_map(|f| {
            f.still_threads
                .iter()
                .chain(&f.moved_threads)
                .chain(&f.unknown_threads)
        })
        .map(|a| a.0)
        .collect();
    let mut threads: Vec<ThreadProgress> = Vec::new();
    for k in &in_findings {
        if let Some(p) = tracked.get(k) {
            threads.push(p.clone());
        }
    }
    for (k, p) in &tracked {
        if threads.len() >= 4096 {
            break;
        }
        if !in_findings.contains(k) && p.motion == Motion::Moved {
            threads.push(p.clone());
        }
    }

    Ok(Series {
        dumps: moments
            .iter()
            .zip(&offsets)
            .zip(&verdicts)
            .map(|((m, &o), v)| SeriesDump {
                label: m.label.clone(),
                clock: m.progress.clock.clone(),
                boot: m.progress.boot.clone(),
                offset_seconds: o,
                overall: v.overall,
            })
            .collect(),
        interval_seconds: interval,
        overall,
        summary,
        verdict,
        findings,
        threads,
        threads_gone,
        threads_new,
        threads_moved,
        locks,
        irps,
        cpus,
        still_nodes,
        warnings,
    })
}

fn thread_progress(
    key: ThreadKey,
    threads_of: &[HashMap<ThreadKey, &crate::Thread>],
    counters: &[HashMap<ThreadKey, &ThreadCounters>],
) -> ThreadProgress {
    let n = threads_of.len();
    let t0 = threads_of[0][&key];
    let states: Vec<String> = threads_of.iter().map(|m| state_text(m[&key])).collect();
    let all = |f: &dyn Fn(&ThreadCounters) -> Option<u64>| -> Option<Vec<u64>> {
        counters
            .iter()
            .map(|c| c.get(&key).and_then(|x| f(x)))
            .collect()
    };
    let switches = all(&|c| c.context_switches);
    let context_switches = switches.as_ref().map(|v| {
        v[n - 1]
            .saturating_sub(v[0])
            .max(v.windows(2).any(|w| w[1] != w[0]) as u64)
    });
    let cpu: Option<Vec<f64>> = counters
        .iter()
        .map(|c| {
            c.get(&key)
                .and_then(|x| match (x.kernel_seconds, x.user_seconds) {
                    (None, None) => None,
                    (k, u) => Some(k.unwrap_or(0.0) + u.unwrap_or(0.0)),
                })
        })
        .collect();
    let cpu_seconds = cpu.as_ref().map(|v| (v[n - 1] - v[0]).max(0.0));
    let wait_restarted = all(&|c| c.wait_start).map(|v| v.windows(2).any(|w| w[0] != w[1]));
    let stacks: Vec<Vec<String>> = threads_of.iter().map(|m| stack_text(m[&key])).collect();
    let stack_changed = if stacks.iter().any(|s| s.is_empty()) {
        None
    } else {
        Some(stacks.windows(2).any(|w| w[0] != w[1]))
    };
    let state_changed = states.windows(2).any(|w| w[0] != w[1]);
    let cpu_moved = cpu
        .as_ref()
        .is_some_and(|v| v.windows(2).any(|w| w[1] > w[0]));
    let motion = if context_switches.is_some_and(|c| c > 0)
        || cpu_moved
        || state_changed
        || wait_restarted == Some(true)
        || stack_changed == Some(true)
    {
        Motion::Moved
    } else if context_switches.is_some() {
        Motion::Still
    } else {
        Motion::Unknown
    };
    ThreadProgress {
        address: Addr(key),
        tid: t0.tid,
        pid: t0.pid,
        states,
        context_switches,
        cpu_seconds,
        wait_restarted,
        stack_changed,
        motion,
    }
}

fn lock_progress(key: u64, resources: &[HashMap<u64, &crate::Resource>]) -> LockProgress {
    let n = resources.len();
    let set = |r: Option<&&crate::Resource>, owners: bool| -> BTreeSet<u64> {
        r.map(|r| {
            let v = if owners { &r.owners } else { &r.waiters };
            v.iter().take(MAX_TRACKED).map(|c| c.thread).collect()
        })
        .unwrap_or_default()
    };
    let owners: Vec<BTreeSet<u64>> = resources.iter().map(|m| set(m.get(&key), true)).collect();
    let waiters: Vec<BTreeSet<u64>> = resources.iter().map(|m| set(m.get(&key), false)).collect();
    let owner_changes = owners.windows(2).filter(|w| w[0] != w[1]).count();
    let counts: Option<Vec<u64>> = resources
        .iter()
        .map(|m| m.get(&key).and_then(|r| r.contention_count))
        .collect();
    let contention_growth = counts.map(|v| v[n - 1].saturating_sub(v[0]));
    let mut waiters_left: BTreeSet<u64> = BTreeSet::new();
    for w in waiters.windows(2) {
        waiters_left.extend(w[0].difference(&w[1]));
    }
    let waiters_new: Vec<Addr> = waiters[n - 1]
        .difference(&waiters[0])
        .map(|&a| Addr(a))
        .collect();
    let present = resources.iter().all(|m| m.contains_key(&key));
    let motion = if owner_changes > 0
        || contention_growth.is_some_and(|g| g > 0)
        || !waiters_left.is_empty()
    {
        Motion::Moved
    } else if present {
        Motion::Still
    } else {
        Motion::Unknown
    };
    let kind = resources
        .iter()
        .find_map(|m| m.get(&key))
        .map(|r| crate::analyze::kind_name(&r.kind))
        .unwrap_or_else(|| "unknown".into());
    LockProgress {
        address: Addr(key),
        kind,
        owners: owners
            .iter()
            .map(|s| s.iter().map(|&a| Addr(a)).collect())
            .collect(),
        owner_changes,
        contention_growth,
        waiters_first: waiters[0].len(),
        waiters_last: waiters[n - 1].len(),
        waiters_left: waiters_left.into_iter().map(Addr).collect(),
        waiters_new,
        motion,
    }
}

fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Prove one finding of the last dump over the series.
fn prove(
    f: &crate::Finding,
    interval: f64,
    motion_of: &dyn Fn(ThreadKey) -> Motion,
    tracked: &BTreeMap<ThreadKey, ThreadProgress>,
    all_locks: &[LockProgress],
    irps: &[IrpProgress],
) -> FindingProgress {
    // The chain's owners (cycle members), its locks, its waiters, its I/O.
    let mut owners: Vec<u64> = Vec::new();
    let mut lock_keys: Vec<u64> = Vec::new();
    let mut irp_keys: Vec<u64> = Vec::new();
    for s in &f.chain {
        match s {
            EvidenceStep::Thread { address, .. } if !owners.contains(&address.0) => {
                owners.push(address.0)
            }
            EvidenceStep::Resource { address, .. } if !lock_keys.contains(&address.0) => {
                lock_keys.push(address.0)
            }
            EvidenceStep::Irp { address, .. } => irp_keys.push(address.0),
            _ => {}
        }
    }
    if let Some(o) = f.final_owner {
        if !owners.contains(&o.0) {
            owners.push(o.0);
        }
    }
    irp_keys.extend(f.owner_io.iter().map(|i| i.irp.0));
    if let Some(s) = &f.stuck_io {
        irp_keys.extend(s.irps.iter().map(|a| a.0));
    }
    irp_keys.sort_unstable();
    irp_keys.dedup();
    let mut waiters: Vec<u64> = f
        .threads
        .iter()
        .map(|t| t.address.0)
        .chain(f.edges.iter().map(|e| e.waiter.0))
        .filter(|a| !owners.contains(a))
        .collect();
    waiters.sort_unstable();
    waiters.dedup();

    let mut still = Vec::new();
    let mut moved = Vec::new();
    let mut unknown = Vec::new();
    for &t in owners.iter().chain(&waiters) {
        match motion_of(t) {
            Motion::Still => still.push(Addr(t)),
            Motion::Moved => moved.push(Addr(t)),
            Motion::Unknown => unknown.push(Addr(t)),
        }
    }
    let locks: Vec<&LockProgress> = all_locks
        .iter()
        .filter(|l| lock_keys.contains(&l.address.0))
        .collect();
    let chain_irps: Vec<&IrpProgress> = irps
        .iter()
        .filter(|i| irp_keys.contains(&i.irp.0))
        .collect();
    let handoffs: usize = locks.iter().map(|l| l.owner_changes).sum();
    let contention: u64 = locks.iter().filter_map(|l| l.contention_growth).sum();
    let left: usize = locks.iter().map(|l| l.waiters_left.len()).sum();
    let new: usize = locks.iter().map(|l| l.waiters_new.len()).sum();
    let irps_moved = chain_irps
        .iter()
        .filter(|i| i.motion == Motion::Moved)
        .count();
    let owner_motion: Vec<Motion> = owners.iter().map(|&o| motion_of(o)).collect();
    let owner_cpu: f64 = owners
        .iter()
        .filter_map(|o| tracked.get(o).and_then(|p| p.cpu_seconds))
        .sum();
    let owner_switches: u64 = owners
        .iter()
        .filter_map(|o| tracked.get(o).and_then(|p| p.context_switches))
        .sum();
    let waiters_moved = waiters
        .iter()
        .filter(|&&w| motion_of(w) == Motion::Moved)
        .count();
    let waiters_still = waiters
        .iter()
        .filter(|&&w| motion_of(w) == Motion::Still)
        .count();
    let secs = format!("{interval:.1} s");

    let lock_moved = handoffs > 0 || left > 0 || contention > 0;
    let (proof, line) = if lock_moved || irps_moved > 0 {
        let mut parts = Vec::new();
        if handoffs > 0 {
            parts.push(format!(
                "the lock changed hands {} in {secs}",
                plural(handoffs as u64, "time", "times")
            ));
        }
        if contention > 0 {
            parts.push(format!("its contention count grew by {contention}"));
        }
        if owner_cpu > 0.0 {
            parts.push(format!("the owner used {owner_cpu:.1} s of CPU"));
        }
        if left > 0 || new > 0 {
            parts.push(format!(
                "waiters come and go ({left} got through, {new} new)"
            ));
        }
        if irps_moved > 0 {
            parts.push(format!(
                "{} of its I/O moved or completed",
                plural(irps_moved as u64, "request", "requests")
            ));
        }
        (Proof::Busy, format!("busy (proven): {}", parts.join("; ")))
    } else if !owners.is_empty() && owner_motion.contains(&Motion::Moved) {
        let mut parts = vec![format!(
            "the same owner kept the lock for {secs} but ran: {}",
            plural(owner_switches, "context switch", "context switches")
        )];
        if owner_cpu > 0.0 {
            parts.push(format!("{owner_cpu:.1} s of CPU"));
        }
        parts.push(format!(
            "{} unchanged",
            plural(waiters_still as u64, "waiter", "waiters")
        ));
        (Proof::Slow, format!("slow (proven): {}", parts.join(", ")))
    } else if (!owners.is_empty() && owner_motion.iter().all(|m| *m == Motion::Still))
        || (owners.is_empty() && !waiters.is_empty() && waiters_moved == 0 && waiters_still > 0)
    {
        let who = match owners.len() {
            0 => "the waiters".to_string(),
            1 if f.kind != FindingKind::Deadlock => "the owner".to_string(),
            k => format!("the {k} threads of the cycle"),
        };
        let mut parts = vec![format!("{} context switches", owner_switches)];
        let owner_stacks: Vec<Option<bool>> = owners
            .iter()
            .map(|o| tracked.get(o).and_then(|p| p.stack_changed))
            .collect();
        if !owner_stacks.is_empty() && owner_stacks.iter().all(|s| *s == Some(false)) {
            parts.push("same stack".into());
        }
        if owners
            .iter()
            .all(|o| tracked.get(o).and_then(|p| p.wait_restarted) == Some(false))
            && !owners.is_empty()
        {
            parts.push("same wait".into());
        }
        if !chain_irps.is_empty() && chain_irps.iter().all(|i| i.motion == Motion::Still) {
            parts.push("same IRP stack location".into());
        }
        let mut line = format!(
            "stuck (proven): {who} made no progress in {secs}: {}",
            parts.join(", ")
        );
        if !waiters.is_empty() {
            line.push_str(&format!(
                "; {} unchanged",
                plural(waiters_still as u64, "waiter", "waiters")
            ));
        }
        if waiters_moved > 0 {
            line.push_str(&format!(
                "; {} moved and {} not stuck",
                plural(waiters_moved as u64, "waiter", "waiters"),
                if waiters_moved == 1 { "is" } else { "are" }
            ));
        }
        (Proof::Stuck, line)
    } else {
        let why = if owners
            .iter()
            .chain(&waiters)
            .all(|t| !tracked.contains_key(t))
        {
            "its threads are not in every dump".to_string()
        } else {
            "the dumps give no context-switch counts for its threads".to_string()
        };
        (Proof::Unproven, format!("not proven over {secs}: {why}"))
    };
    let kind = match (proof, f.kind) {
        (Proof::Stuck, FindingKind::Contention | FindingKind::BusyOwner) => FindingKind::Stuck,
        (
            Proof::Busy | Proof::Slow,
            FindingKind::Stuck | FindingKind::StuckIo | FindingKind::Unexplained,
        ) => FindingKind::BusyOwner,
        (Proof::Busy, FindingKind::Deadlock) => FindingKind::Contention,
        (_, k) => k,
    };
    FindingProgress {
        rank: f.rank,
        single_dump_kind: f.kind,
        kind,
        proof,
        line,
        still_threads: still,
        moved_threads: moved,
        unknown_threads: unknown,
    }
}

fn series_summary(
    findings: &[FindingProgress],
    dumps: usize,
    interval: f64,
    threads_moved: usize,
    tracked: usize,
) -> String {
    let count = |p: Proof| findings.iter().filter(|f| f.proof == p).count();
    let mut parts = Vec::new();
    for p in [Proof::Stuck, Proof::Busy, Proof::Slow, Proof::Unproven] {
        let c = count(p);
        if c > 0 {
            parts.push(format!("{c} {}", p.name()));
        }
    }
    let findings_text = if parts.is_empty() {
        "no finding to prove".to_string()
    } else {
        format!("findings: {}", parts.join(", "))
    };
    format!(
        "{dumps} dumps over {interval:.1} s; {threads_moved} of {tracked} thread(s) moved; {findings_text}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Claim, Mode, Resource, ResourceKind, Thread};

    fn thread(key: u64, state: ThreadState) -> Thread {
        Thread {
            key,
            tid: key,
            pid: 4,
            state,
            wait_reason: None,
            waited_seconds: Some(200.0),
            waited_ticks: None,
            stack: vec![],
            io: vec![],
            user_mode_wait: false,
            warnings: vec![],
        }
    }

    fn moment(uptime: f64, owner: u64, switches: [u64; 3]) -> Moment {
        let input = WaitGraphInput {
            threads: vec![
                thread(1, ThreadState::Waiting),
                thread(2, ThreadState::Waiting),
                thread(3, ThreadState::Waiting),
            ],
            resources: vec![Resource {
                key: 0x100,
                kind: ResourceKind::Eresource,
                name: None,
                owners: vec![Claim {
                    thread: owner,
                    mode: Mode::Exclusive,
                }],
                waiters: vec![Claim {
                    thread: 2,
                    mode: Mode::Exclusive,
                }],
                contention_count: Some(1),
                warnings: vec![],
            }],
            ..WaitGraphInput::default()
        };
        Moment {
            label: format!("dump at {uptime}"),
            input,
            progress: ProgressInput {
                boot: BootIdentity {
                    os: "windows".into(),
                    kernel: Some("7601".into()),
                    kernel_base: Some(Addr(0xfffff800_00000000)),
                    boot_time_unix_seconds: Some(1e9),
                },
                clock: Clock {
                    ticks: Some((uptime * 64.0) as u64),
                    uptime_seconds: Some(uptime),
                },
                threads: (1..=3)
                    .map(|k| ThreadCounters {
                        key: k,
                        tid: k,
                        create_time: Some(k * 10),
                        context_switches: Some(switches[k as usize - 1]),
                        ..ThreadCounters::default()
                    })
                    .collect(),
                ..ProgressInput::default()
            },
        }
    }

    #[test]
    fn a_chain_nothing_of_which_moves_is_proven_stuck() {
        let s = compare(
            &[moment(100.0, 1, [5, 5, 9]), moment(130.2, 1, [5, 5, 40])],
            &AnalyzeOptions::default(),
        )
        .unwrap();
        assert_eq!(s.findings[0].proof, Proof::Stuck, "{:?}", s.findings);
        assert!(
            s.findings[0].line.contains("30.2 s"),
            "{}",
            s.findings[0].line
        );
        assert_eq!(s.threads_moved, 1);
        assert_eq!(s.overall, Overall::Stuck);
        assert!(s.still_nodes.iter().any(|n| n.starts_with("t:")));
    }

    #[test]
    fn a_lock_that_changes_hands_is_busy_and_never_stuck() {
        let s = compare(
            &[moment(100.0, 1, [5, 5, 9]), moment(110.0, 3, [6, 5, 40])],
            &AnalyzeOptions::default(),
        )
        .unwrap();
        assert_eq!(s.findings[0].proof, Proof::Busy, "{:?}", s.findings);
        assert!(s.findings[0]
            .line
            .starts_with("busy (proven): the lock changed hands 1 time"));
        assert_ne!(s.overall, Overall::Stuck);
    }

    #[test]
    fn an_owner_that_runs_but_keeps_the_lock_is_slow() {
        let s = compare(
            &[moment(100.0, 1, [5, 5, 9]), moment(110.0, 1, [50, 5, 9])],
            &AnalyzeOptions::default(),
        )
        .unwrap();
        assert_eq!(s.findings[0].proof, Proof::Slow, "{:?}", s.findings);
        assert_eq!(s.overall, Overall::BusyOwner);
    }

    #[test]
    fn dumps_of_different_boots_or_out_of_order_are_refused() {
        let a = moment(100.0, 1, [5, 5, 9]);
        let mut b = moment(110.0, 1, [5, 5, 9]);
        b.progress.boot.kernel_base = Some(Addr(0xfffff800_10000000));
        let e = compare(&[a.clone(), b], &AnalyzeOptions::default()).unwrap_err();
        assert!(e.reason.contains("different bases"), "{e}");
        let c = moment(90.0, 1, [5, 5, 9]);
        let e = compare(&[a.clone(), c], &AnalyzeOptions::default()).unwrap_err();
        assert!(e.reason.contains("not after"), "{e}");
        let mut d = moment(110.0, 1, [5, 5, 9]);
        d.progress.boot.boot_time_unix_seconds = Some(1e9 + 3600.0);
        let e = compare(&[a.clone(), d], &AnalyzeOptions::default()).unwrap_err();
        assert!(e.reason.contains("booted"), "{e}");
        assert!(compare(&[a], &AnalyzeOptions::default()).is_err());
    }

    #[test]
    fn a_recycled_thread_object_is_not_the_same_thread() {
        let a = moment(100.0, 1, [5, 5, 9]);
        let mut b = moment(130.0, 1, [5, 5, 9]);
        b.progress.threads[0].create_time = Some(999);
        let s = compare(&[a, b], &AnalyzeOptions::default()).unwrap();
        assert_eq!(s.threads_gone, 1);
        assert_ne!(s.findings[0].proof, Proof::Stuck);
    }
}
