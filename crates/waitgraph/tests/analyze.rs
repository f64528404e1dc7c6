//! The one integration test binary of hangscope-waitgraph: scenario tests
//! (seed case, deadlock, stuck, healthy), property tests against a
//! brute-force reference, and corrupt inputs.

mod support;

use std::collections::{BTreeSet, HashMap, HashSet};

use hangscope_waitgraph::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::*;

fn step_kinds(f: &Finding) -> Vec<&'static str> {
    f.chain
        .iter()
        .map(|s| match s {
            EvidenceStep::Resource { .. } => "resource",
            EvidenceStep::Thread { .. } => "thread",
            EvidenceStep::Irp { .. } => "irp",
            EvidenceStep::Driver { .. } => "driver",
            EvidenceStep::File { .. } => "file",
            EvidenceStep::Directory { .. } => "directory",
            EvidenceStep::Process { .. } => "process",
            EvidenceStep::CycleBack { .. } => "cycle_back",
        })
        .collect()
}

fn addr_of(s: &EvidenceStep) -> Option<u64> {
    match s {
        EvidenceStep::Resource { address, .. }
        | EvidenceStep::Thread { address, .. }
        | EvidenceStep::Irp { address, .. }
        | EvidenceStep::CycleBack { address } => Some(address.0),
        EvidenceStep::File { address, .. } => address.map(|a| a.0),
        _ => None,
    }
}

#[test]
fn seed_case_is_a_busy_owner_with_the_engineers_chain() {
    let v = analyze(&seed_case(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::BusyOwner);
    assert_eq!(v.overall.exit_code(), 1);
    assert_eq!(v.findings.len(), 2, "{:#?}", v.findings);
    let f = &v.findings[0];
    assert_eq!(f.rank, 1);
    assert_eq!(f.kind, FindingKind::BusyOwner);
    assert_eq!(f.blocked_threads, 21);
    assert_eq!(f.final_owner, Some(Addr(T2)));
    assert_eq!(
        step_kinds(f),
        [
            "resource",
            "thread",
            "resource",
            "thread",
            "irp",
            "driver",
            "file",
            "directory",
            "process"
        ]
    );
    let addrs: Vec<Option<u64>> = f.chain.iter().map(addr_of).collect();
    assert_eq!(
        &addrs[..7],
        [
            Some(R1),
            Some(T1),
            Some(R2),
            Some(T2),
            Some(IRP),
            None,
            Some(FO)
        ]
    );
    match &f.chain[0] {
        EvidenceStep::Resource {
            held_as, waiters, ..
        } => {
            assert_eq!(*held_as, Some(Mode::Shared));
            assert_eq!(*waiters, 20);
        }
        s => panic!("{s:?}"),
    }
    match &f.chain[2] {
        EvidenceStep::Resource { held_as, .. } => assert_eq!(*held_as, Some(Mode::Exclusive)),
        s => panic!("{s:?}"),
    }
    match &f.chain[3] {
        EvidenceStep::Thread {
            state,
            cpu,
            process,
            ..
        } => {
            assert_eq!(state, "running");
            assert_eq!(*cpu, Some(1));
            assert_eq!(process.as_deref(), Some("php-cgi.exe"));
        }
        s => panic!("{s:?}"),
    }
    assert_eq!(
        f.chain[5],
        EvidenceStep::Driver {
            name: r"\FileSystem\Ntfs".into()
        }
    );
    assert_eq!(
        f.chain[7],
        EvidenceStep::Directory {
            path: r"\Windows\Temp".into(),
            files: 2001,
            hot: true
        }
    );
    assert_eq!(
        f.chain[8],
        EvidenceStep::Process {
            name: "php-cgi.exe".into(),
            pid: 2000,
            files: 2001
        }
    );
    let names: Vec<&str> = f
        .blocked_processes
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    // Ties (5 threads each) go by PID.
    assert_eq!(names, ["svchost.exe", "winlogon.exe", "LogonUI.exe"]);
    assert_eq!(f.blocked_processes[0].threads, 11);
    let max = f.max_wait_seconds.unwrap();
    assert!((1.0..1.2).contains(&max), "{max}");
    assert!(f.summary.contains("busy owner"), "{}", f.summary);
    assert!(f.summary.contains("php-cgi.exe"), "{}", f.summary);
    assert!(f.summary.contains(r"\Windows\Temp\sess_x"), "{}", f.summary);
    assert!(f.summary.contains("fffffa80`0b61bb50"), "{}", f.summary);
    // Edges: 20 waiters to T1 through R1, T1 to T2 through R2.
    assert_eq!(f.edges.len(), 21);
    assert!(f
        .edges
        .iter()
        .any(|e| e.waiter == Addr(T1) && e.resource == Addr(R2) && e.owner == Addr(T2)));

    // The smaller busy owner comes second.
    assert_eq!(v.findings[1].kind, FindingKind::BusyOwner);
    assert_eq!(v.findings[1].blocked_threads, 2);

    // Hot directories: \Windows\Temp first, marked, with php-cgi.exe.
    let hot = &v.hot_directories[0];
    assert_eq!(hot.path, r"\Windows\Temp");
    assert_eq!(hot.files, 2001);
    assert!(hot.blocking_io);
    assert_eq!(hot.holders[0].name, "php-cgi.exe");
    assert_eq!(hot.patterns[0].pattern, "sess_*");
    assert_eq!(hot.patterns[0].count, 2001);
    assert_eq!(hot.io_processes[0].name, "php-cgi.exe");
    // The config directory has 20 files: under the threshold, not blocking.
    assert_eq!(v.hot_directories.len(), 1);

    assert_eq!(v.stats.blocked_threads, 23);
    assert_eq!(v.stats.contended_resources, 3);
    assert_eq!(v.stats.cycles, 0);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);

    // The graph view holds the chain and the waiters' node.
    let ids: HashSet<&str> = v.graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert!(ids.contains(format!("t:{}", Addr(T2)).as_str()));
    assert!(ids.contains(format!("w:{}", Addr(R1)).as_str()));
    for e in &v.graph.edges {
        assert!(
            ids.contains(e.from.as_str()) && ids.contains(e.to.as_str()),
            "{e:?}"
        );
    }
}

#[test]
fn seed_case_with_old_waiters_is_stuck() {
    let mut input = seed_case();
    for t in &mut input.threads {
        if let Some(s) = &mut t.waited_seconds {
            if *s < 10.0 {
                *s += 600.0;
            }
        }
    }
    let v = analyze(&input, &AnalyzeOptions::default());
    assert_eq!(v.findings[0].kind, FindingKind::Stuck);
    assert_eq!(v.overall, Overall::Stuck);
    assert_eq!(v.overall.exit_code(), 3);
}

/// Three threads in a cycle over two ERESOURCEs and a mutant, waits of
/// minutes, plus two outside waiters on the first resource.
fn three_cycle() -> WaitGraphInput {
    let mut b = Builder::new();
    b.process(700, "sqlservr.exe").process(500, "winlogon.exe");
    let (ta, tb, tc) = (
        0xfffffa80_01000000u64,
        0xfffffa80_02000000u64,
        0xfffffa80_03000000u64,
    );
    let (ra, rb, mc) = (
        0xfffffa80_0a000000u64,
        0xfffffa80_0b000000u64,
        0xfffffa80_0c000000u64,
    );
    b.thread(ta, 1, 700, ThreadState::Waiting, Some(240.0));
    b.thread(tb, 2, 700, ThreadState::Waiting, Some(300.0));
    b.thread(tc, 3, 700, ThreadState::Waiting, Some(180.0));
    b.thread(
        0xfffffa80_04000000,
        4,
        500,
        ThreadState::Waiting,
        Some(200.0),
    );
    b.thread(
        0xfffffa80_05000000,
        5,
        500,
        ThreadState::Waiting,
        Some(100.0),
    );
    // ta holds ra, waits rb; tb holds rb, waits mc; tc holds mc, waits ra.
    b.resource(
        ra,
        ResourceKind::Eresource,
        &[(ta, Mode::Exclusive)],
        &[tc, 0xfffffa80_04000000, 0xfffffa80_05000000],
    );
    b.resource(rb, ResourceKind::Eresource, &[(tb, Mode::Exclusive)], &[ta]);
    b.resource(mc, ResourceKind::Mutant, &[(tc, Mode::Exclusive)], &[tb]);
    b.build()
}

#[test]
fn three_cycle_is_a_deadlock_with_every_edge() {
    let v = analyze(&three_cycle(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::Deadlock);
    assert_eq!(v.overall.exit_code(), 4);
    assert_eq!(v.findings.len(), 1);
    let f = &v.findings[0];
    assert_eq!(f.kind, FindingKind::Deadlock);
    assert_eq!(f.blocked_threads, 5);
    assert_eq!(f.max_wait_seconds, Some(300.0));
    assert_eq!(f.final_owner, None);
    // Every edge of the cycle, with the waiter's wait.
    let edges: BTreeSet<(u64, u64, u64)> = f
        .edges
        .iter()
        .map(|e| (e.waiter.0, e.resource.0, e.owner.0))
        .collect();
    assert_eq!(
        edges,
        BTreeSet::from([
            (
                0xfffffa80_01000000,
                0xfffffa80_0b000000,
                0xfffffa80_02000000
            ),
            (
                0xfffffa80_02000000,
                0xfffffa80_0c000000,
                0xfffffa80_03000000
            ),
            (
                0xfffffa80_03000000,
                0xfffffa80_0a000000,
                0xfffffa80_01000000
            ),
        ])
    );
    let waits: HashMap<u64, Option<f64>> = f
        .edges
        .iter()
        .map(|e| (e.waiter.0, e.waited_seconds))
        .collect();
    assert_eq!(waits[&0xfffffa80_01000000], Some(240.0));
    assert_eq!(waits[&0xfffffa80_03000000], Some(180.0));
    // The chain goes around the cycle from the lowest resource and closes.
    assert_eq!(
        step_kinds(f),
        [
            "resource",
            "thread",
            "resource",
            "thread",
            "resource",
            "thread",
            "cycle_back"
        ]
    );
    let addrs: Vec<u64> = f.chain.iter().filter_map(addr_of).collect();
    assert_eq!(
        addrs,
        [
            0xfffffa80_0a000000,
            0xfffffa80_01000000,
            0xfffffa80_0b000000,
            0xfffffa80_02000000,
            0xfffffa80_0c000000,
            0xfffffa80_03000000,
            0xfffffa80_0a000000
        ]
    );
    assert!(
        f.summary.starts_with("Deadlock: 3 threads"),
        "{}",
        f.summary
    );
    assert_eq!(v.stats.cycles, 1);
}

#[test]
fn owner_waiting_on_an_unowned_event_for_ten_minutes_is_stuck() {
    let mut b = Builder::new();
    b.process(900, "svchost.exe");
    let owner = 0xfffffa80_01000000u64;
    let lock = 0xfffffa80_0a000000u64;
    let event = 0xfffffa80_0e000000u64;
    b.thread(owner, 1, 900, ThreadState::Waiting, Some(600.0));
    b.thread(0xfffffa80_02000000, 2, 900, ThreadState::Waiting, Some(5.0));
    b.thread(0xfffffa80_03000000, 3, 900, ThreadState::Waiting, Some(7.0));
    b.resource(
        lock,
        ResourceKind::Eresource,
        &[(owner, Mode::Exclusive)],
        &[0xfffffa80_02000000, 0xfffffa80_03000000],
    );
    b.resource(event, ResourceKind::Event, &[], &[owner]);
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::Stuck);
    let f = &v.findings[0];
    assert_eq!(f.kind, FindingKind::Stuck);
    assert_eq!(f.blocked_threads, 2);
    assert_eq!(step_kinds(f), ["resource", "thread", "resource"]);
    match &f.chain[2] {
        EvidenceStep::Resource {
            address,
            owners,
            kind,
            ..
        } => {
            assert_eq!(*address, Addr(event));
            assert_eq!(*owners, 0);
            assert_eq!(kind, "event");
        }
        s => panic!("{s:?}"),
    }
    assert!(f.summary.contains("600 s"), "{}", f.summary);
    assert!(f.summary.contains("no thread owns"), "{}", f.summary);
}

#[test]
fn young_waits_behind_a_waiting_owner_are_contention() {
    let mut b = Builder::new();
    b.thread(1, 1, 10, ThreadState::Waiting, Some(2.0));
    b.thread(2, 2, 10, ThreadState::Waiting, Some(1.0));
    b.resource(100, ResourceKind::Mutant, &[(1, Mode::Exclusive)], &[2]);
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::Contention);
    assert_eq!(v.findings[0].kind, FindingKind::Contention);
}

#[test]
fn running_without_a_cpu_and_standby_count_as_running() {
    for name in ["Running", "Standby", "DeferredReady"] {
        let mut b = Builder::new();
        b.thread(1, 1, 10, ThreadState::Other { name: name.into() }, None);
        b.thread(2, 2, 10, ThreadState::Waiting, Some(1.0));
        b.resource(100, ResourceKind::Mutant, &[(1, Mode::Exclusive)], &[2]);
        let v = analyze(&b.build(), &AnalyzeOptions::default());
        assert_eq!(v.findings[0].kind, FindingKind::BusyOwner, "{name}");
    }
}

#[test]
fn idle_system_is_healthy() {
    let mut b = Builder::new();
    b.process(4, "System");
    for i in 0..50u64 {
        b.thread(0x1000 + i, i, 4, ThreadState::Waiting, Some(10_000.0));
        b.resource(0x9000 + i, ResourceKind::Event, &[], &[0x1000 + i]);
    }
    b.thread(0x5000, 99, 4, RUNNING(0), None);
    // A lock held without waiters is not contention either.
    b.resource(
        0x7000,
        ResourceKind::Eresource,
        &[(0x5000, Mode::Shared)],
        &[],
    );
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::Healthy);
    assert_eq!(v.overall.exit_code(), 0);
    assert!(v.findings.is_empty());
    assert!(v.graph.nodes.is_empty());
    assert_eq!(v.stats.blocked_threads, 0);
    // Issue 10: an empty model proves nothing about the machine.
    let empty = analyze(&WaitGraphInput::default(), &AnalyzeOptions::default());
    assert_eq!(empty.overall, Overall::Inconclusive);
    assert_eq!(empty.overall.exit_code(), 5);
    assert_eq!(
        empty.incomplete,
        ["no process could be read", "no thread could be read"]
    );
}

/// Issue 10: "healthy" needs a model read whole; a gap in any part the
/// verdict rests on makes nothing-found inconclusive, and a finding over a
/// gap keeps its kind with the gap named.
#[test]
fn issue_10_a_gap_turns_healthy_into_inconclusive_not_a_finding() {
    for part in [
        ModelPart::Processes,
        ModelPart::Threads,
        ModelPart::Locks,
        ModelPart::Waits,
    ] {
        let mut b = Builder::new();
        b.process(4, "System");
        b.thread(0x1000, 8, 4, ThreadState::Waiting, Some(100.0));
        b.resource(0x9000, ResourceKind::Event, &[], &[0x1000]);
        let mut input = b.build();
        input.gaps.push(Gap {
            part,
            reason: format!("{}: cannot read memory at 0xdead", part.describe()),
        });
        let v = analyze(&input, &AnalyzeOptions::default());
        assert_eq!(v.overall, Overall::Inconclusive, "{part:?}");
        assert_eq!(
            v.incomplete,
            [format!("{}: cannot read memory at 0xdead", part.describe())]
        );
    }
    let mut input = three_cycle();
    input.gaps.push(Gap {
        part: ModelPart::Waits,
        reason: "wait blocks of thread 0x10: fault".into(),
    });
    let v = analyze(&input, &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::Deadlock);
    assert_eq!(v.incomplete, ["wait blocks of thread 0x10: fault"]);
}

/// Issue 10: a finding whose chain passes through an object the model
/// flagged, or through an owner missing from the thread list, carries the
/// warnings; a clean chain carries none.
#[test]
fn issue_10_findings_carry_the_warnings_of_their_evidence() {
    let clean = analyze(&three_cycle(), &AnalyzeOptions::default());
    assert!(clean
        .findings
        .iter()
        .all(|f| f.evidence_warnings.is_empty()));
    assert_eq!(clean.evidence_warning_count(), 0);

    let mut input = three_cycle();
    let first = input.threads[0].key;
    input.threads[0]
        .warnings
        .push("KTHREAD.State 255 is not a thread state".into());
    let v = analyze(&input, &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::Deadlock);
    let w = &v.findings[0].evidence_warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains(&Addr(first).windbg()) && w[0].contains("KTHREAD.State 255"),
        "{w:?}"
    );

    // An owner that is not in the thread list (a dangling claim).
    let mut b = Builder::new();
    b.process(4, "System");
    b.thread(0x1000, 8, 4, ThreadState::Waiting, Some(100.0));
    b.resource(
        0x9000,
        ResourceKind::Eresource,
        &[(0x7777, Mode::Exclusive)],
        &[0x1000],
    );
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    let w: Vec<&String> = v
        .findings
        .iter()
        .flat_map(|f| &f.evidence_warnings)
        .collect();
    assert!(
        w.iter()
            .any(|w| w
                .contains("0x7777 is named as an owner or waiter but is not in the thread list")),
        "{w:?}"
    );
}

#[test]
fn shared_branches_report_the_dominant_one() {
    // R held shared by A (running) and B (waiting on E held by C waiting
    // 10 min on an unowned event): the stuck branch dominates.
    let mut b = Builder::new();
    let (a, bb, c, w) = (1u64, 2u64, 3u64, 4u64);
    b.thread(a, 1, 1, RUNNING(0), None);
    b.thread(bb, 2, 1, ThreadState::Waiting, Some(500.0));
    b.thread(c, 3, 1, ThreadState::Waiting, Some(600.0));
    b.thread(w, 4, 1, ThreadState::Waiting, Some(400.0));
    b.resource(
        10,
        ResourceKind::Eresource,
        &[(a, Mode::Shared), (bb, Mode::Shared)],
        &[w],
    );
    b.resource(11, ResourceKind::Eresource, &[(c, Mode::Exclusive)], &[bb]);
    b.resource(12, ResourceKind::Event, &[], &[c]);
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    assert_eq!(v.findings.len(), 1, "{:#?}", v.findings);
    let f = &v.findings[0];
    assert_eq!(f.final_owner, Some(Addr(c)));
    assert_eq!(f.kind, FindingKind::Stuck);
    assert_eq!(f.blocked_threads, 2);
    let addrs: Vec<u64> = f.chain.iter().filter_map(addr_of).collect();
    assert_eq!(addrs, [10, bb, 11, c, 12]);
}

#[test]
fn options_move_the_thresholds() {
    let opts = AnalyzeOptions {
        young_wait_seconds: 0.5,
        stuck_wait_seconds: 1.0,
        ..AnalyzeOptions::default()
    };
    let v = analyze(&seed_case(), &opts);
    assert_eq!(v.findings[0].kind, FindingKind::Stuck);
    let bad = AnalyzeOptions {
        young_wait_seconds: f64::NAN,
        stuck_wait_seconds: -1.0,
        ..AnalyzeOptions::default()
    };
    let v = analyze(&seed_case(), &bad);
    assert_eq!(v.findings[0].kind, FindingKind::BusyOwner);
    assert_eq!(v.warnings.len(), 2, "{:?}", v.warnings);
}

// ---------------------------------------------------------------------
// Corrupt input.

#[test]
fn corrupt_input_gives_warnings_not_panics() {
    let mut b = Builder::new();
    b.process(1, "a.exe").process(1, "dup.exe");
    b.thread(1, 1, 1, ThreadState::Waiting, Some(f64::NAN));
    b.thread(1, 1, 1, ThreadState::Waiting, Some(3.0)); // duplicate key
    b.thread(2, 2, 1, ThreadState::Waiting, Some(f64::INFINITY));
    b.thread(
        3,
        3,
        1,
        ThreadState::Other {
            name: "Terminated".into(),
        },
        Some(-5.0),
    );
    // Self-wait: 3 owns 50 and waits on it.
    b.resource(50, ResourceKind::Mutant, &[(3, Mode::Exclusive)], &[3, 3]);
    // Dangling owner and waiter.
    b.resource(
        51,
        ResourceKind::Eresource,
        &[(0xdead, Mode::Shared)],
        &[1, 0xbeef],
    );
    // Duplicate resource key.
    b.resource(
        51,
        ResourceKind::Other("Weird".into()),
        &[(2, Mode::Exclusive)],
        &[2],
    );
    b.file(1, "", &[1])
        .file(2, "noslash", &[99])
        .file(3, "\\", &[]);
    b.input.threads[0].io.push(Io {
        irp: Addr(7),
        file: Some(String::new()),
        ..Io::default()
    });
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    let w = v.warnings.join("\n");
    assert!(w.contains("repeat a thread address"), "{w}");
    assert!(w.contains("repeat a resource address"), "{w}");
    assert!(w.contains("missing from the thread list"), "{w}");
    assert!(w.contains("own themselves"), "{w}");
    assert!(w.contains("not a number between 0 and 1e10 seconds"), "{w}");
    // The self-wait is a cycle; the dangling owner is a stuck-or-contention chain.
    assert_eq!(v.overall, Overall::Deadlock);
    assert!(v
        .findings
        .iter()
        .any(|f| f.final_owner == Some(Addr(0xdead))));
    // Still serialises (NaN never reaches the output).
    let json = serde_json::to_string(&v).unwrap();
    assert!(!json.contains("NaN"));
    let back: Verdict = serde_json::from_str(&json).unwrap();
    assert_eq!(back, v);
}

#[test]
fn a_long_chain_and_a_huge_cycle_do_not_overflow_the_stack() {
    // 100 000 threads in one chain, then the same closed into a cycle.
    let n = 100_000u64;
    let mut b = Builder::new();
    for i in 0..n {
        b.thread(i, i, 1, ThreadState::Waiting, Some(1.0));
    }
    b.input.threads[(n - 1) as usize].state = ThreadState::Running { cpu: 0 };
    for i in 0..n - 1 {
        b.resource(
            1_000_000 + i,
            ResourceKind::Eresource,
            &[(i + 1, Mode::Exclusive)],
            &[i],
        );
    }
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::BusyOwner);
    assert_eq!(v.findings[0].blocked_threads, (n - 1) as usize);
    assert!(v.findings[0].threads.len() <= AnalyzeOptions::default().max_threads_per_finding);
    assert!(v.graph.nodes.len() <= AnalyzeOptions::default().max_graph_nodes);

    b.input.threads[(n - 1) as usize].state = ThreadState::Waiting;
    b.resource(
        2_000_000,
        ResourceKind::Mutant,
        &[(0, Mode::Exclusive)],
        &[n - 1],
    );
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::Deadlock);
    assert_eq!(v.findings[0].blocked_threads, n as usize);
    assert!(v.findings[0].edges_truncated);
}

#[test]
fn many_chains_are_capped() {
    let mut b = Builder::new();
    for i in 0..500u64 {
        b.thread(i * 2, i * 2, 1, RUNNING(0), None);
        b.thread(i * 2 + 1, i * 2 + 1, 1, ThreadState::Waiting, Some(1.0));
        b.resource(
            10_000 + i,
            ResourceKind::Mutant,
            &[(i * 2, Mode::Exclusive)],
            &[i * 2 + 1],
        );
    }
    let opts = AnalyzeOptions {
        max_findings: 10,
        ..AnalyzeOptions::default()
    };
    let v = analyze(&b.build(), &opts);
    assert_eq!(v.findings.len(), 10);
    assert!(v.warnings.iter().any(|w| w.contains("500 chains")));
}

// ---------------------------------------------------------------------
// Properties against a brute-force reference.

/// Thread-level wait-for edges straight from the input: T -> U when T waits
/// on a resource U owns (first entry of a repeated resource key wins).
fn brute_edges(input: &WaitGraphInput) -> (BTreeSet<u64>, HashMap<u64, BTreeSet<u64>>) {
    let mut nodes: BTreeSet<u64> = input.threads.iter().map(|t| t.key).collect();
    let mut adj: HashMap<u64, BTreeSet<u64>> = HashMap::new();
    let mut seen = HashSet::new();
    for r in &input.resources {
        if !seen.insert(r.key) {
            continue;
        }
        for w in &r.waiters {
            nodes.insert(w.thread);
            for o in &r.owners {
                nodes.insert(o.thread);
                adj.entry(w.thread).or_default().insert(o.thread);
            }
        }
        for o in &r.owners {
            nodes.insert(o.thread);
        }
    }
    (nodes, adj)
}

fn reach(adj: &HashMap<u64, BTreeSet<u64>>, from: u64) -> HashSet<u64> {
    let mut seen = HashSet::new();
    let mut stack: Vec<u64> = adj.get(&from).into_iter().flatten().copied().collect();
    while let Some(v) = stack.pop() {
        if seen.insert(v) {
            stack.extend(adj.get(&v).into_iter().flatten().copied());
        }
    }
    seen
}

fn random_input(rng: &mut ChaCha8Rng) -> WaitGraphInput {
    let nt = rng.gen_range(1..25u64);
    let nr = rng.gen_range(1..15u64);
    let mut b = Builder::new();
    for p in 0..4u64 {
        b.process(p, &format!("p{p}.exe"));
    }
    for t in 0..nt {
        let state = match rng.gen_range(0..4) {
            0 => ThreadState::Running { cpu: 0 },
            1 => ThreadState::Ready,
            2 => ThreadState::Other {
                name: "Terminated".into(),
            },
            _ => ThreadState::Waiting,
        };
        let secs = match rng.gen_range(0..10) {
            0 => None,
            1 => Some(f64::NAN),
            2..=4 => Some(rng.gen_range(200.0..900.0)),
            _ => Some(rng.gen_range(0.0..40.0)),
        };
        b.thread(t, t, rng.gen_range(0..5), state, secs);
    }
    // Keys 1000.. for dangling threads.
    let pick = |rng: &mut ChaCha8Rng| {
        if rng.gen_ratio(1, 20) {
            1000 + rng.gen_range(0..3)
        } else {
            rng.gen_range(0..nt)
        }
    };
    for r in 0..nr {
        let owners: Vec<(u64, Mode)> = (0..rng.gen_range(0..3))
            .map(|_| {
                let m = if rng.gen_bool(0.5) {
                    Mode::Shared
                } else {
                    Mode::Exclusive
                };
                (pick(rng), m)
            })
            .collect();
        let waiters: Vec<u64> = (0..rng.gen_range(0..4)).map(|_| pick(rng)).collect();
        let kind = if rng.gen_bool(0.3) {
            ResourceKind::Event
        } else {
            ResourceKind::Eresource
        };
        b.resource(10_000 + r, kind, &owners, &waiters);
    }
    b.build()
}

#[test]
fn random_graphs_match_the_brute_force_reference() {
    let opts = AnalyzeOptions {
        max_threads_per_finding: usize::MAX,
        max_edges_per_finding: usize::MAX,
        ..AnalyzeOptions::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_ca5e);
    let mut deadlocks = 0;
    let mut stuck = 0;
    let mut busy = 0;
    for case in 0..1500 {
        let input = random_input(&mut rng);
        let v = analyze(&input, &opts);
        assert_eq!(v, analyze(&input, &opts), "case {case}: not deterministic");
        let (nodes, adj) = brute_edges(&input);
        let on_cycle: HashSet<u64> = nodes
            .iter()
            .copied()
            .filter(|&t| reach(&adj, t).contains(&t))
            .collect();

        // Deadlock iff the thread graph has a cycle.
        assert_eq!(
            v.overall == Overall::Deadlock,
            !on_cycle.is_empty(),
            "case {case}: {input:#?}\n{v:#?}"
        );
        match v.overall {
            Overall::Deadlock => deadlocks += 1,
            Overall::Stuck => stuck += 1,
            Overall::BusyOwner => busy += 1,
            _ => {}
        }
        // Every blocked thread is in some finding; findings hold nothing else.
        let blocked: BTreeSet<u64> = adj
            .iter()
            .filter(|(_, o)| !o.is_empty())
            .map(|(&t, _)| t)
            .collect();
        let listed: BTreeSet<u64> = v
            .findings
            .iter()
            .flat_map(|f| f.threads.iter().map(|t| t.address.0))
            .collect();
        assert_eq!(listed, blocked, "case {case}");
        assert_eq!(v.stats.blocked_threads, blocked.len(), "case {case}");

        for f in &v.findings {
            // Exact transitive blocked counts.
            let expect: usize = match f.final_owner {
                Some(o) => nodes
                    .iter()
                    .filter(|&&t| t != o.0 && reach(&adj, t).contains(&o.0))
                    .count(),
                None => {
                    let members: HashSet<u64> = f
                        .edges
                        .iter()
                        .flat_map(|e| [e.waiter.0, e.owner.0])
                        .collect();
                    assert!(members.iter().all(|m| on_cycle.contains(m)), "case {case}");
                    nodes
                        .iter()
                        .filter(|&&t| {
                            members.contains(&t)
                                || reach(&adj, t).iter().any(|x| members.contains(x))
                        })
                        .count()
                }
            };
            assert_eq!(f.blocked_threads, expect, "case {case}: {f:#?}");
            assert_eq!(f.threads.len(), f.blocked_threads, "case {case}");
            assert_eq!(
                f.kind == FindingKind::Deadlock,
                f.final_owner.is_none(),
                "case {case}"
            );
            if let Some(o) = f.final_owner {
                // A final owner waits on nothing anyone owns.
                assert!(
                    adj.get(&o.0).into_iter().all(|s| s.is_empty()),
                    "case {case}"
                );
            }
            check_chain(&input, f, case);
        }
        // Ranked by blocked threads.
        for w in v.findings.windows(2) {
            assert!(w[0].blocked_threads >= w[1].blocked_threads, "case {case}");
        }
        serde_json::to_string(&v).unwrap();
    }
    // The generator exercises every verdict.
    assert!(
        deadlocks > 50 && stuck > 50 && busy > 20,
        "{deadlocks} {stuck} {busy}"
    );
}

/// Each resource step is followed by one of its owners; each thread step
/// by a resource it waits on; a non-deadlock chain ends in its final owner.
fn check_chain(input: &WaitGraphInput, f: &Finding, case: usize) {
    let mut first: HashMap<u64, &Resource> = HashMap::new();
    for r in &input.resources {
        first.entry(r.key).or_insert(r);
    }
    let mut core: Vec<&EvidenceStep> = f
        .chain
        .iter()
        .take_while(|s| {
            matches!(
                s,
                EvidenceStep::Resource { .. } | EvidenceStep::Thread { .. }
            )
        })
        .collect();
    // After the final owner: the unowned resources it waits on.
    while let Some(EvidenceStep::Resource {
        address, owners, ..
    }) = core.last()
    {
        if f.final_owner.is_none() || core.len() < 2 {
            break;
        }
        assert_eq!(*owners, 0, "case {case}");
        let o = f.final_owner.unwrap().0;
        assert!(
            first[&address.0].waiters.iter().any(|c| c.thread == o),
            "case {case}"
        );
        core.pop();
    }
    for pair in core.windows(2) {
        match (pair[0], pair[1]) {
            (
                EvidenceStep::Resource { address: r, .. },
                EvidenceStep::Thread { address: t, .. },
            ) => {
                assert!(
                    first[&r.0].owners.iter().any(|c| c.thread == t.0),
                    "case {case}"
                )
            }
            (
                EvidenceStep::Thread { address: t, .. },
                EvidenceStep::Resource { address: r, .. },
            ) => {
                assert!(
                    first[&r.0].waiters.iter().any(|c| c.thread == t.0),
                    "case {case}"
                )
            }
            _ => panic!("case {case}: chain does not alternate: {:#?}", f.chain),
        }
    }
    if let Some(o) = f.final_owner {
        let last_thread = core.iter().rev().find_map(|s| match s {
            EvidenceStep::Thread { address, .. } => Some(*address),
            _ => None,
        });
        assert_eq!(last_thread, Some(o), "case {case}: {:#?}", f.chain);
    } else {
        assert!(
            matches!(f.chain.last(), Some(EvidenceStep::CycleBack { .. })),
            "case {case}"
        );
    }
}

// ---------------------------------------------------------------------
// The fuzz targets' decoder over random bytes.

#[path = "../fuzz/fuzz_targets/decode.rs"]
mod decode;

#[test]
fn decoded_random_bytes_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xf022);
    let tiny = AnalyzeOptions {
        max_findings: 2,
        max_threads_per_finding: 1,
        max_edges_per_finding: 1,
        max_graph_nodes: 3,
        hot_dir_min_files: 0,
        hot_dir_top: 1,
        stack_frames: 0,
        young_wait_seconds: f64::NAN,
        stuck_wait_seconds: 0.0,
        stuck_io_seconds: 0.0,
        unexplained_wait_seconds: 0.0,
        starved_ready_seconds: f64::NAN,
        low_memory_percent: 100.0,
        commit_full_percent: 0.0,
    };
    let mut verdicts = HashSet::new();
    for _ in 0..3000 {
        let len = rng.gen_range(0..400);
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let input = decode::decode(&bytes);
        for opts in [&AnalyzeOptions::default(), &tiny] {
            let v = analyze(&input, opts);
            assert!(v.findings.len() <= opts.max_findings);
            assert!(v.graph.nodes.len() <= opts.max_graph_nodes);
            assert!(v
                .findings
                .iter()
                .all(|f| f.threads.len() <= opts.max_threads_per_finding));
            verdicts.insert(v.overall);
            let json = serde_json::to_string(&v).unwrap();
            for bad in ["NaN", "inf"] {
                if let Some(i) = json.find(bad) {
                    panic!(
                        "{bad} in JSON: {}",
                        &json[i.saturating_sub(80)..(i + 40).min(json.len())]
                    );
                }
            }
        }
    }
    // Every verdict, inconclusive (issue 10), stuck I/O and unexplained
    // (issue 15) included.
    assert_eq!(verdicts.len(), 8, "{verdicts:?}");
}

// ---------------------------------------------------------------------
// Issue 15: stuck I/O and unexplained long waits.

/// A request at the bottom of a disk stack, at device `dev`.
fn disk_io(irp: u64, dev: u64, event: Option<u64>, at_bottom: bool) -> Io {
    Io {
        irp: Addr(irp),
        major: Some("IRP_MJ_READ".into()),
        driver: Some(r"\Driver\viostor".into()),
        device: Some(r"\Device\RaidPort0".into()),
        device_address: Some(Addr(dev)),
        device_stack: vec![
            r"\FileSystem\Ntfs".into(),
            r"\Driver\disk".into(),
            r"\Driver\viostor".into(),
        ],
        at_bottom,
        event: event.map(Addr),
        ..Io::default()
    }
}

#[test]
fn issue_15_io_stuck_at_the_miniport_is_stuck_io() {
    let mut b = Builder::new();
    b.process(1400, "sqlservr.exe");
    b.process(4, "System");
    // Issuer waits on its own request's event, 95 s.
    b.thread(0x1000, 8, 1400, ThreadState::Waiting, Some(95.0))
        .wait_reason = Some("Executive".into());
    b.input.threads[0]
        .io
        .push(disk_io(0xa000, 0xd000, Some(0x9000), true));
    b.resource(0x9000, ResourceKind::Event, &[], &[0x1000]);
    // A System thread waits on the event of a request another thread
    // issued (a paging read), 40 s.
    b.thread(0x2000, 12, 4, ThreadState::Waiting, Some(40.0))
        .wait_reason = Some("WrPageIn".into());
    b.thread(0x3000, 16, 4, ThreadState::Waiting, Some(5.0));
    b.input.threads[2]
        .io
        .push(disk_io(0xa100, 0xd000, Some(0x9100), true));
    b.resource(0x9100, ResourceKind::Event, &[], &[0x2000]);
    // A young wait: its request counts as pending, its thread is not stuck.
    b.thread(0x4000, 20, 1400, ThreadState::Waiting, Some(3.0));
    b.input.threads[3]
        .io
        .push(disk_io(0xa200, 0xd000, None, true));
    // A request still in the file system (not at the bottom) is no stuck
    // I/O whatever its age.
    b.thread(0x5000, 24, 1400, ThreadState::Waiting, Some(500.0))
        .wait_reason = Some("UserRequest".into());
    b.input.threads[4]
        .io
        .push(disk_io(0xa300, 0xe000, None, false));
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::StuckIo, "{v:#?}");
    assert_eq!(v.overall.exit_code(), 3);
    assert_eq!(v.findings.len(), 1, "{:#?}", v.findings);
    let f = &v.findings[0];
    assert_eq!(f.kind, FindingKind::StuckIo);
    assert_eq!(
        f.summary,
        r"3 IRPs pending at \Driver\viostor for up to 95 s; the guest waits on its virtual disk"
    );
    let s = f.stuck_io.as_ref().expect("stuck_io");
    assert_eq!(s.pending_irps, 3);
    assert!(s.virtual_device);
    assert_eq!(s.device_address, Some(Addr(0xd000)));
    let threads: Vec<u64> = f.threads.iter().map(|t| t.address.0).collect();
    assert_eq!(threads, [0x1000, 0x2000]);
    assert_eq!(f.blocked_threads, 2);
    assert_eq!(f.max_wait_seconds, Some(95.0));
    assert!(matches!(
        f.chain[0],
        EvidenceStep::Thread {
            address: Addr(0x1000),
            ..
        }
    ));
    // JSON: the new fields appear on this finding only.
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["findings"][0]["kind"], "stuck_io");
    assert_eq!(j["findings"][0]["stuck_io"]["pending_irps"], 3);
    assert!(j["findings"][0].get("unexplained_objects").is_none());
}

#[test]
fn issue_15_long_kernel_waits_on_unowned_objects_are_unexplained() {
    let mut b = Builder::new();
    b.process(900, "svchost.exe");
    b.process(1020, "spoolsv.exe");
    b.thread(0x1000, 8, 900, ThreadState::Waiting, Some(120.0))
        .wait_reason = Some("Executive".into());
    b.thread(0x2000, 12, 1020, ThreadState::Waiting, Some(80.0))
        .wait_reason = Some("Executive".into());
    b.resource(0x9000, ResourceKind::Event, &[], &[0x1000, 0x2000]);
    // Not counted: short, user-mode, idle reasons, lock-acquire reasons
    // (the lock analysis reads an unowned lock as no contention).
    b.thread(0x3000, 16, 900, ThreadState::Waiting, Some(59.0))
        .wait_reason = Some("Executive".into());
    let t = b.thread(0x4000, 20, 900, ThreadState::Waiting, Some(10_000.0));
    t.wait_reason = Some("Executive".into());
    t.user_mode_wait = true;
    for (i, r) in ["UserRequest", "WrQueue", "WrLpcReceive", "WrResource"]
        .iter()
        .enumerate()
    {
        b.thread(
            0x5000 + i as u64 * 0x100,
            24 + i as u64,
            1020,
            ThreadState::Waiting,
            Some(10_000.0),
        )
        .wait_reason = Some(r.to_string());
    }
    b.resource(
        0x9100,
        ResourceKind::Event,
        &[],
        &[0x3000, 0x4000, 0x5000, 0x5100, 0x5200, 0x5300],
    );
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::Unexplained, "{v:#?}");
    assert_eq!(v.overall.exit_code(), 6);
    assert_eq!(v.findings.len(), 1);
    let f = &v.findings[0];
    assert_eq!(
        f.summary,
        "2 threads in 2 processes have waited more than 60 s on objects with no known owner"
    );
    let objs: Vec<u64> = f.unexplained_objects.iter().map(|o| o.address.0).collect();
    assert_eq!(objs, [0x9000]);
    assert_eq!(f.unexplained_objects[0].threads, 2);
    let threads: Vec<u64> = f.threads.iter().map(|t| t.address.0).collect();
    assert_eq!(threads, [0x1000, 0x2000]);
}

#[test]
fn issue_15_waits_a_lock_explains_are_not_unexplained() {
    let mut b = Builder::new();
    b.process(4, "System");
    // An owner waits long in Executive on an event nobody owns; its
    // waiter is blocked on the mutant it holds: the chain explains both.
    b.thread(0x1000, 8, 4, ThreadState::Waiting, Some(300.0))
        .wait_reason = Some("Executive".into());
    b.thread(0x2000, 12, 4, ThreadState::Waiting, Some(300.0))
        .wait_reason = Some("Executive".into());
    b.resource(
        0x9000,
        ResourceKind::Mutant,
        &[(0x1000, Mode::Exclusive)],
        &[0x2000],
    );
    b.resource(0x9100, ResourceKind::Event, &[], &[0x1000]);
    let v = analyze(&b.build(), &AnalyzeOptions::default());
    assert_eq!(v.overall, Overall::Stuck, "{v:#?}");
    assert!(v
        .findings
        .iter()
        .all(|f| f.kind != FindingKind::Unexplained));
}

#[test]
fn issue_10_an_implausible_wait_time_never_reaches_a_stuck_io_finding() {
    // Found by the waitgraph_build fuzz target: the stuck-I/O and
    // unexplained findings read wait times raw, so a NaN, negative or
    // infinite wait leaked into `max_wait_seconds` and the JSON.
    for bad in [f64::NAN, -5.0, f64::INFINITY, 1e300] {
        let mut b = Builder::new();
        b.process(1400, "sqlservr.exe");
        b.thread(0x1000, 8, 1400, ThreadState::Waiting, Some(95.0))
            .wait_reason = Some("Executive".into());
        b.input.threads[0]
            .io
            .push(disk_io(0xa000, 0xd000, None, true));
        b.thread(0x2000, 12, 1400, ThreadState::Waiting, Some(bad))
            .wait_reason = Some("Executive".into());
        b.input.threads[1]
            .io
            .push(disk_io(0xa100, 0xd000, None, true));
        let v = analyze(&b.build(), &AnalyzeOptions::default());
        let f = &v.findings[0];
        assert_eq!(f.kind, FindingKind::StuckIo, "{bad}: {v:#?}");
        assert_eq!(f.max_wait_seconds, Some(95.0), "{bad}");
        assert!(f.total_wait_seconds.is_finite(), "{bad}");
        for t in &f.threads {
            assert!(t.waited_seconds.is_none_or(|s| s.is_finite() && s >= 0.0));
        }
        assert!(
            v.warnings.iter().any(|w| w.contains("wait time")),
            "{bad}: {:?}",
            v.warnings
        );
    }
}
