//! Waits that no object explains because the machine itself is out of a
//! resource: CPU time (threads ready for long while every CPU runs other
//! threads or DPCs) and memory (threads waiting for free pages or
//! page-ins while available memory is low or commit is at its limit).
//!
//! Each finding is made only when it explains threads that wait: a busy
//! machine whose ready threads run within a few seconds, or low memory
//! nobody waits on, stays out of the report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::analyze::{plural, secs_text};
use crate::io_stall::{by_wait, secs, waited, Ctx};
use crate::verdict::*;
use crate::{Thread, ThreadKey, ThreadState, WaitGraphInput};

/// A CPU with at least this many DPCs queued is draining a backlog.
const DPC_BACKLOG: u64 = 16;

/// DPC routines named per CPU in the finding.
const MAX_DPC_ROUTINES: usize = 4;

/// Wait reasons of a thread that needs a free physical page.
const FREE_PAGE_REASONS: &[&str] = &["WrFreePage", "FreePage"];
/// Wait reasons of a thread waiting for a page to be read in.
const PAGE_IN_REASONS: &[&str] = &["WrPageIn", "PageIn"];

/// `1204` -> `1,204`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as MiB or GiB, one decimal unless whole.
fn bytes_text(b: u64) -> String {
    let (v, unit) = if b >= 1 << 30 {
        (b as f64 / (1u64 << 30) as f64, "GiB")
    } else {
        (b as f64 / (1u64 << 20) as f64, "MiB")
    };
    if (v - v.round()).abs() < 0.05 {
        format!("{:.0} {unit}", v.round())
    } else {
        format!("{v:.1} {unit}")
    }
}

/// `[1]` -> `CPU 1`, `[0, 2, 3]` -> `CPUs 0, 2 and 3`.
fn cpu_list(cpus: &[u32]) -> String {
    match cpus {
        [] => "no CPU".to_string(),
        [c] => format!("CPU {c}"),
        [init @ .., last] => format!(
            "CPUs {} and {last}",
            init.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// One finding when threads have been ready at least
/// `starved_ready_seconds` and no CPU they may run on is idle: either no
/// CPU at all is idle, or their affinity (or shared queue) keeps them off
/// the idle ones. A thread that could run on an idle CPU is not starved
/// (it is about to run). The starved threads are added to `explained`.
pub(crate) fn cpu_starvation_finding(
    input: &WaitGraphInput,
    opts: &AnalyzeOptions,
    explained: &mut HashSet<ThreadKey>,
) -> Option<Finding> {
    let sched = input.scheduler.as_ref()?;
    if sched.cpus.is_empty() {
        return None;
    }
    let all: BTreeSet<u32> = sched.cpus.iter().map(|c| c.cpu).collect();
    // A CPU inside a DPC is taken even while its idle thread is current.
    let idle: BTreeSet<u32> = sched
        .cpus
        .iter()
        .filter(|c| c.idle && !c.dpc_active)
        .map(|c| c.cpu)
        .collect();
    let ctx = Ctx::new(input, opts);
    let by_key: HashMap<ThreadKey, &Thread> = input.threads.iter().map(|t| (t.key, t)).collect();
    let mut seen = HashSet::new();
    let mut starved: Vec<&Thread> = Vec::new();
    // The CPUs the starved threads may run on, together.
    let mut allowed: BTreeSet<u32> = BTreeSet::new();
    // Ready threads per CPU queue (the shared queue counted apart).
    let mut per_cpu: BTreeMap<u32, usize> = BTreeMap::new();
    let mut shared_starved = 0usize;
    let queues = sched
        .cpus
        .iter()
        .map(|c| (Some(c.cpu), &c.ready))
        .chain(std::iter::once((None, &sched.shared_ready)));
    for (cpu, ready) in queues {
        for r in ready {
            let Some(t) = by_key.get(&r.thread) else {
                continue;
            };
            if t.state != ThreadState::Ready
                || explained.contains(&t.key)
                || secs(t) < opts.starved_ready_seconds
                || seen.contains(&t.key)
            {
                continue;
            }
            // Unknown affinity: any CPU. CPUs nobody read are ignored; a
            // thread left with none is damage, not starvation.
            let may_run: BTreeSet<u32> = match &r.cpus {
                Some(v) => v.iter().copied().filter(|c| all.contains(c)).collect(),
                None => all.clone(),
            };
            if may_run.is_empty() || !may_run.is_disjoint(&idle) {
                continue;
            }
            seen.insert(t.key);
            starved.push(t);
            allowed.extend(may_run);
            match cpu {
                Some(c) => *per_cpu.entry(c).or_default() += 1,
                None => shared_starved += 1,
            }
        }
    }
    if starved.is_empty() {
        return None;
    }
    starved.sort_by(by_wait);
    let ncpu = sched.cpus.len();
    let pinned = !idle.is_empty();
    // The CPUs the starved threads wait for, and what they run instead.
    let busy: Vec<&crate::CpuQueue> = sched
        .cpus
        .iter()
        .filter(|c| allowed.contains(&c.cpu))
        .collect();
    let nbusy = busy.len();
    let mut runners: BTreeMap<u64, usize> = BTreeMap::new();
    let mut prios: Vec<i32> = Vec::new();
    for c in &busy {
        if let Some(t) = c.current.and_then(|k| by_key.get(&k)) {
            *runners.entry(t.pid).or_default() += 1;
        }
        prios.extend(c.current_priority);
    }
    prios.sort_unstable();
    prios.dedup();
    let busy_pid = runners
        .iter()
        .max_by_key(|(pid, n)| (**n, std::cmp::Reverse(**pid)))
        .filter(|(_, n)| **n * 2 > nbusy)
        .map(|(pid, _)| *pid);
    let busy_process = busy_pid.map(|p| ctx.process_name(p).to_string());
    let prio_text = match prios.as_slice() {
        [] => String::new(),
        [p] => format!(" at priority {p}"),
        [lo, .., hi] => format!(" at priorities {lo} to {hi}"),
    };
    let busy_ids: Vec<u32> = busy.iter().map(|c| c.cpu).collect();
    // Who runs on the CPUs the starved threads may use: the CPUs by number
    // when some are idle or out of reach, else all of them in words.
    let list = cpu_list(&busy_ids);
    let cpus_text = match nbusy {
        _ if pinned || nbusy < ncpu => list.clone(),
        1 => "the CPU".to_string(),
        2 => "both CPUs".to_string(),
        n => format!("all {n} CPUs"),
    };
    let verb = if nbusy == 1 { "runs" } else { "run" };
    let run_text = match (&busy_process, runners.get(&busy_pid.unwrap_or(u64::MAX))) {
        (Some(name), Some(&1)) if nbusy == 1 => {
            format!("{cpus_text} runs a {name} thread{prio_text}")
        }
        (Some(name), Some(&n)) if n == nbusy => {
            format!("{cpus_text} run {name} threads{prio_text}")
        }
        // Some of the CPUs: by number when pinned, else by count.
        (Some(name), Some(&n)) if pinned => format!("{n} of {list} run {name} threads{prio_text}"),
        (Some(name), Some(&n)) => format!("{n} of {nbusy} CPUs run {name} threads{prio_text}"),
        _ => format!("{cpus_text} {verb} other threads{prio_text}"),
    };
    // DPC backlogs on the CPUs they wait for.
    let mut cpus_out = Vec::new();
    let mut dpc_text = Vec::new();
    for c in &sched.cpus {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &c.dpcs {
            let n = d.routine_name.as_deref().unwrap_or("an unnamed routine");
            *counts.entry(n).or_default() += 1;
        }
        let mut routines: Vec<(&str, usize)> = counts.into_iter().collect();
        routines.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let routines: Vec<String> = routines
            .into_iter()
            .take(MAX_DPC_ROUTINES)
            .map(|(n, _)| n.to_string())
            .collect();
        let depth = c
            .dpc_queue_depth
            .or(Some(c.dpcs.len() as u64).filter(|&n| n > 0));
        if allowed.contains(&c.cpu)
            && (depth.unwrap_or(0) >= DPC_BACKLOG || (c.dpc_active && depth.unwrap_or(0) > 0))
        {
            dpc_text.push(format!(
                "CPU {} has {} DPCs queued{}{}",
                c.cpu,
                depth.unwrap_or(0),
                if routines.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", routines.join(", "))
                },
                if c.dpc_active { " and is in a DPC" } else { "" }
            ));
        }
        let cur = c.current.and_then(|k| by_key.get(&k));
        cpus_out.push(StarvedCpu {
            cpu: c.cpu,
            current: c.current.map(Addr),
            process: cur.map(|t| ctx.process_name(t.pid).to_string()),
            priority: c.current_priority,
            ready_threads: per_cpu.get(&c.cpu).copied().unwrap_or(0),
            dpc_queue_depth: depth,
            dpc_active: c.dpc_active,
            dpc_routines: routines,
        });
    }
    let dpc_suffix = if dpc_text.is_empty() {
        String::new()
    } else {
        format!("; {}", dpc_text.join("; "))
    };
    let idle_ids: Vec<u32> = idle.iter().copied().collect();
    let idle_text = format!(
        "{} {}",
        cpu_list(&idle_ids),
        if idle_ids.len() == 1 {
            "is idle"
        } else {
            "are idle"
        }
    );
    let max = waited(starved[0]);
    let mut f = Finding::empty(FindingKind::CpuStarvation);
    f.summary = if pinned {
        format!(
            "{} pinned to {} ready for up to {:.0} s while {idle_text}; {run_text}{dpc_suffix}",
            plural(starved.len(), "thread"),
            cpu_list(&busy_ids),
            secs(starved[0]),
        )
    } else {
        format!(
            "{} ready for up to {:.0} s on {}; {run_text}{dpc_suffix}",
            plural(starved.len(), "thread"),
            secs(starved[0]),
            plural(ncpu, "CPU"),
        )
    };
    let taken_by = match (&busy_process, dpc_text.is_empty()) {
        (Some(p), true) => format!("{p}'s threads"),
        (Some(p), false) => format!("{p}'s threads and DPCs"),
        (None, true) => "other threads".to_string(),
        (None, false) => "other threads and DPCs".to_string(),
    };
    let least = secs_text(starved.iter().map(|t| secs(t)).fold(f64::MAX, f64::min));
    f.why = if pinned {
        format!(
            "{} waited at least {least} (threshold {}) on the ready queues to run while {idle_text}: their affinity allows only {}, which {} taken by {taken_by}; the threads wait for CPU time on the CPUs they may use, not for an object",
            plural(starved.len(), "thread"),
            secs_text(opts.starved_ready_seconds),
            cpu_list(&busy_ids),
            if nbusy == 1 { "is" } else { "are" },
        )
    } else {
        format!(
            "{} waited at least {least} (threshold {}) on the ready queues to run, with no CPU idle: the threads wait for CPU time, not for an object, and the CPUs are taken by {taken_by}",
            plural(starved.len(), "thread"),
            secs_text(opts.starved_ready_seconds),
        )
    };
    f.chain.push(ctx.thread_step(starved[0]));
    for c in &busy {
        if let Some(t) = c.current.and_then(|k| by_key.get(&k)) {
            let mut step = ctx.thread_step(t);
            if let EvidenceStep::Thread { cpu, .. } = &mut step {
                *cpu = Some(c.cpu);
            }
            f.chain.push(step);
        }
    }
    f.blocked_threads = starved.len();
    f.blocked_processes = ctx.processes(&starved);
    f.max_wait_seconds = max;
    f.total_wait_seconds = starved.iter().map(|t| secs(t)).sum();
    (f.threads, f.threads_truncated) = ctx.threads_listed(&starved);
    for t in &starved {
        f.evidence_warnings.extend(t.warnings.iter().cloned());
        explained.insert(t.key);
    }
    f.starvation = Some(CpuStarvation {
        starved_threads: starved.len(),
        max_ready_seconds: max,
        cpus: cpus_out,
        busy_process,
        shared_ready_threads: shared_starved,
        idle_cpus: idle_ids,
        allowed_cpus: if nbusy < ncpu { busy_ids } else { Vec::new() },
    });
    Some(f)
}

/// One finding when available memory is low or commit is at its limit and
/// threads wait for free pages or page-ins that no other finding explains;
/// those threads are added to `explained`.
pub(crate) fn low_memory_finding(
    input: &WaitGraphInput,
    opts: &AnalyzeOptions,
    explained: &mut HashSet<ThreadKey>,
) -> Option<Finding> {
    let m = input.memory.as_ref()?;
    let available_low = match (m.available_pages, m.physical_pages) {
        (Some(a), Some(p)) if p > 0 => (a as f64) * 100.0 < (p as f64) * opts.low_memory_percent,
        _ => false,
    };
    let commit_pct = match (m.committed_pages, m.commit_limit_pages) {
        (Some(c), Some(l)) if l > 0 => Some(c as f64 * 100.0 / l as f64),
        _ => None,
    };
    let commit_full = commit_pct.is_some_and(|p| p >= opts.commit_full_percent);
    if !available_low && !commit_full {
        return None;
    }
    let ctx = Ctx::new(input, opts);
    let has = |t: &Thread, set: &[&str]| t.wait_reason.as_deref().is_some_and(|r| set.contains(&r));
    let mut waiters: Vec<&Thread> = input
        .threads
        .iter()
        .filter(|t| {
            t.state == ThreadState::Waiting
                && !explained.contains(&t.key)
                && (has(t, FREE_PAGE_REASONS) || has(t, PAGE_IN_REASONS))
        })
        .collect();
    if waiters.is_empty() {
        return None;
    }
    waiters.sort_by(by_wait);
    let free = waiters.iter().filter(|t| has(t, FREE_PAGE_REASONS)).count();
    let page_in = waiters.len() - free;
    let page = m.page_size.max(1);
    let mut parts = Vec::new();
    if let Some(a) = m.available_pages {
        parts.push(format!(
            "{} pages available ({}){}",
            thousands(a),
            bytes_text(a.saturating_mul(page)),
            m.physical_pages
                .map(|p| format!(" of {}", bytes_text(p.saturating_mul(page))))
                .unwrap_or_default()
        ));
    }
    if let Some(p) = commit_pct {
        parts.push(format!("commit {:.0}% of limit", p.floor()));
    }
    let mut waits = Vec::new();
    if free > 0 {
        waits.push(format!(
            "{} for free pages",
            if free == 1 {
                "1 thread waits".to_string()
            } else {
                format!("{free} threads wait")
            }
        ));
    }
    if page_in > 0 {
        let who = if page_in == 1 {
            "1 thread waits".to_string()
        } else {
            format!("{page_in} threads wait")
        };
        waits.push(if free > 0 {
            format!("{page_in} for page-ins")
        } else {
            format!("{who} for page-ins")
        });
    }
    parts.push(waits.join(" and "));
    let mut f = Finding::empty(FindingKind::LowMemory);
    f.summary = parts.join("; ");
    f.why = format!(
        "{}{}{}; {} in the kernel for memory, which only freed or paged-out memory ends",
        if available_low {
            format!(
                "available memory is below {}% of physical memory",
                opts.low_memory_percent
            )
        } else {
            String::new()
        },
        if available_low && commit_full {
            " and "
        } else {
            ""
        },
        if commit_full {
            format!(
                "commit is at {}% or more of its limit",
                opts.commit_full_percent
            )
        } else {
            String::new()
        },
        if waiters.len() == 1 {
            "1 thread waits".to_string()
        } else {
            format!("{} threads wait", waiters.len())
        }
    );
    f.chain.push(ctx.thread_step(waiters[0]));
    f.blocked_threads = waiters.len();
    f.blocked_processes = ctx.processes(&waiters);
    f.max_wait_seconds = waited(waiters[0]);
    f.total_wait_seconds = waiters.iter().map(|t| secs(t)).sum();
    (f.threads, f.threads_truncated) = ctx.threads_listed(&waiters);
    for t in &waiters {
        f.evidence_warnings.extend(t.warnings.iter().cloned());
        explained.insert(t.key);
    }
    f.low_memory = Some(LowMemory {
        page_size: page,
        physical_pages: m.physical_pages,
        available_pages: m.available_pages,
        committed_pages: m.committed_pages,
        commit_limit_pages: m.commit_limit_pages,
        available_low,
        commit_full,
        free_page_waiters: free,
        page_in_waiters: page_in,
        source: m.source.clone(),
    });
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    fn thread(key: u64, pid: u64, state: ThreadState, secs: f64, reason: Option<&str>) -> Thread {
        Thread {
            key,
            tid: key,
            pid,
            state,
            wait_reason: reason.map(str::to_string),
            waited_seconds: Some(secs),
            waited_ticks: None,
            stack: vec![],
            io: vec![],
            user_mode_wait: false,
            warnings: vec![],
        }
    }

    /// Two CPUs running pid 8's threads at priority 15, three ready
    /// threads (40 s, 12 s, 0.1 s) on CPU 0's queue.
    fn starved(idle_cpu1: bool) -> WaitGraphInput {
        let mut input = WaitGraphInput {
            processes: vec![
                Process {
                    pid: 8,
                    name: "hog.exe".into(),
                    ..Process::default()
                },
                Process {
                    pid: 12,
                    name: "app.exe".into(),
                    ..Process::default()
                },
            ],
            ..WaitGraphInput::default()
        };
        input.threads = vec![
            thread(1, 8, ThreadState::Running { cpu: 0 }, 0.0, None),
            thread(2, 8, ThreadState::Running { cpu: 1 }, 0.0, None),
            thread(3, 12, ThreadState::Ready, 40.0, None),
            thread(4, 12, ThreadState::Ready, 12.0, None),
            thread(5, 12, ThreadState::Ready, 0.1, None),
        ];
        let ready = |t, priority| ReadyThread {
            thread: t,
            priority,
            cpus: None,
        };
        input.scheduler = Some(Scheduler {
            cpus: vec![
                CpuQueue {
                    cpu: 0,
                    current: Some(1),
                    current_priority: Some(15),
                    ready: vec![ready(3, 9), ready(4, 8), ready(5, 8)],
                    ..CpuQueue::default()
                },
                CpuQueue {
                    cpu: 1,
                    current: Some(2),
                    current_priority: Some(15),
                    idle: idle_cpu1,
                    ..CpuQueue::default()
                },
            ],
            shared_ready: vec![],
        });
        input
    }

    #[test]
    fn ready_threads_behind_busy_cpus_are_starved() {
        let v = analyze(&starved(false), &AnalyzeOptions::default());
        assert_eq!(v.overall, Overall::Stuck);
        assert_eq!(v.findings.len(), 1);
        let f = &v.findings[0];
        assert_eq!(f.kind, FindingKind::CpuStarvation);
        assert_eq!(
            f.summary,
            "2 threads ready for up to 40 s on 2 CPUs; both CPUs run hog.exe threads at priority 15"
        );
        assert_eq!(f.blocked_threads, 2);
    }

    #[test]
    fn a_one_cpu_machine_runs_one_thread() {
        let mut input = starved(false);
        input.threads.remove(1);
        input.scheduler.as_mut().unwrap().cpus.truncate(1);
        let v = analyze(&input, &AnalyzeOptions::default());
        assert_eq!(v.findings.len(), 1, "{:#?}", v.findings);
        assert_eq!(
            v.findings[0].summary,
            "2 threads ready for up to 40 s on 1 CPU; the CPU runs a hog.exe thread at priority 15"
        );
    }

    /// CPU 0 idle, CPU 1 running a pid 8 thread at priority 15; three
    /// threads ready (40 s, 12 s, 6 s) whose CPUs are `cpus`, one on
    /// CPU 1's queue, two on the shared queue.
    fn pinned(cpus: Option<Vec<u32>>) -> WaitGraphInput {
        let mut input = starved(false);
        input.threads[0].state = ThreadState::Waiting;
        input.threads[4].waited_seconds = Some(6.0);
        let ready = |t, priority| ReadyThread {
            thread: t,
            priority,
            cpus: cpus.clone(),
        };
        let s = input.scheduler.as_mut().unwrap();
        s.cpus[0] = CpuQueue {
            cpu: 0,
            current: Some(100),
            idle: true,
            ..CpuQueue::default()
        };
        s.cpus[1].ready = vec![ready(3, 9)];
        s.shared_ready = vec![ready(4, 8), ready(5, 8)];
        input
    }

    #[test]
    fn ready_threads_pinned_to_busy_cpus_are_starved_beside_an_idle_one() {
        let v = analyze(&pinned(Some(vec![1])), &AnalyzeOptions::default());
        assert_eq!(v.overall, Overall::Stuck, "{:#?}", v.findings);
        assert_eq!(v.findings.len(), 1);
        let f = &v.findings[0];
        assert_eq!(f.kind, FindingKind::CpuStarvation);
        assert_eq!(
            f.summary,
            "3 threads pinned to CPU 1 ready for up to 40 s while CPU 0 is idle; CPU 1 runs a hog.exe thread at priority 15"
        );
        assert!(
            f.why.contains("their affinity allows only CPU 1"),
            "{}",
            f.why
        );
        assert_eq!(f.blocked_threads, 3);
        let s = f.starvation.as_ref().unwrap();
        assert_eq!(
            (s.idle_cpus.as_slice(), s.allowed_cpus.as_slice()),
            (&[0][..], &[1][..])
        );
        // The chain: the oldest starved thread, then CPU 1's, not the idle CPU.
        assert_eq!(f.chain.len(), 2);
        // A thread pinned to a CPU nobody read is damage, not starvation.
        let v = analyze(&pinned(Some(vec![7])), &AnalyzeOptions::default());
        assert_eq!(v.overall, Overall::Healthy, "{:#?}", v.findings);
    }

    #[test]
    fn an_idle_cpu_or_short_ready_times_are_not_starvation() {
        let v = analyze(&starved(true), &AnalyzeOptions::default());
        assert_eq!(v.overall, Overall::Healthy, "{:#?}", v.findings);
        let opts = AnalyzeOptions {
            starved_ready_seconds: 60.0,
            ..AnalyzeOptions::default()
        };
        let v = analyze(&starved(false), &opts);
        assert_eq!(v.overall, Overall::Healthy, "{:#?}", v.findings);
        // Threads that may run on the idle CPU, or whose affinity is
        // unknown, are about to run.
        for cpus in [None, Some(vec![0, 1]), Some(vec![0])] {
            let v = analyze(&pinned(cpus.clone()), &AnalyzeOptions::default());
            assert_eq!(v.overall, Overall::Healthy, "{cpus:?}: {:#?}", v.findings);
        }
        // Pinned to the busy CPU, but not ready long.
        let v = analyze(&pinned(Some(vec![1])), &opts);
        assert_eq!(v.overall, Overall::Healthy, "{:#?}", v.findings);
    }

    #[test]
    fn cpus_are_listed_as_people_write_them() {
        assert_eq!(cpu_list(&[1]), "CPU 1");
        assert_eq!(cpu_list(&[0, 2]), "CPUs 0 and 2");
        assert_eq!(cpu_list(&[0, 2, 3]), "CPUs 0, 2 and 3");
    }

    fn memory(available: u64, committed: u64, waiter: bool) -> WaitGraphInput {
        let mut input = WaitGraphInput {
            processes: vec![Process {
                pid: 8,
                name: "app.exe".into(),
                ..Process::default()
            }],
            ..WaitGraphInput::default()
        };
        if waiter {
            input
                .threads
                .push(thread(1, 8, ThreadState::Waiting, 3.0, Some("WrFreePage")));
        }
        input
            .threads
            .push(thread(2, 8, ThreadState::Waiting, 9000.0, Some("WrQueue")));
        input.memory = Some(MemoryState {
            page_size: 4096,
            physical_pages: Some(262_144),
            available_pages: Some(available),
            committed_pages: Some(committed),
            commit_limit_pages: Some(1_000_000),
            source: "test".into(),
        });
        input
    }

    #[test]
    fn low_memory_is_a_finding_only_when_threads_wait_for_memory() {
        let v = analyze(&memory(1204, 990_000, true), &AnalyzeOptions::default());
        assert_eq!(v.overall, Overall::Stuck);
        assert_eq!(
            v.findings[0].summary,
            "1,204 pages available (4.7 MiB) of 1 GiB; commit 99% of limit; 1 thread waits for free pages"
        );
        let v = analyze(&memory(1204, 990_000, false), &AnalyzeOptions::default());
        assert_eq!(v.overall, Overall::Healthy);
        let v = analyze(&memory(100_000, 300_000, true), &AnalyzeOptions::default());
        assert_eq!(v.overall, Overall::Healthy);
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(bytes_text(1204 * 4096), "4.7 MiB");
        assert_eq!(bytes_text(1 << 30), "1 GiB");
        assert_eq!(bytes_text(64 << 20), "64 MiB");
    }
}
