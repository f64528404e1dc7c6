//! Ground truth matrix: the three built-in scenarios on four Windows
//! builds, each written as raw, crash-full, crash-bitmap and ELF; on every
//! image `hangscope --json` info, ps, threads, lm, locks and analyze must
//! say exactly what the lab's ground truth says.
//!
//! One test per (scenario, build): it builds the image once and writes
//! the four formats into its own temporary directory, so libtest runs the
//! twelve in parallel.

use std::collections::BTreeMap;
use std::path::Path;

use hangscope_lab::format::Format;
use hangscope_lab::truth::{FindingTruth, GroundTruth};
use serde_json::Value;

use crate::util::{self, a, arr, eq, report, s, set_diff};

/// RAM of every matrix image: small, the scenarios fit.
pub const RAM: u64 = 64 << 20;

/// The formats of the matrix.
pub const FORMATS: [Format; 4] = [
    Format::Raw,
    Format::CrashFull,
    Format::CrashBitmap,
    Format::Elf,
];

/// The exit code `analyze` must return for a verdict.
pub fn exit_code(overall: &str) -> i32 {
    match overall {
        "healthy" => 0,
        "contention" | "busy_owner" => 1,
        "stuck" => 3,
        "deadlock" => 4,
        other => panic!("ground truth has an unknown verdict {other:?}"),
    }
}

fn check_scenario(scenario: &str, build: &str, seed: u64) {
    let sc = util::scenario(scenario);
    let (image, truth) = util::build(&sc, build, seed, RAM);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut problems = Vec::new();
    for f in FORMATS {
        let path = util::write(&image, f, dir.path(), scenario);
        let label = format!("[{scenario} {build} {f}]");
        for p in check_image(&path, &truth) {
            problems.push(format!("{label} {p}"));
        }
        // Each format's file goes once checked: four 64 MiB files at a time
        // per test is enough.
        let _ = std::fs::remove_file(&path);
    }
    report(&format!("{scenario} on {build}"), problems);
}

/// Run every listing command on one image; the problems found.
pub fn check_image(path: &Path, t: &GroundTruth) -> Vec<String> {
    let mut p = Vec::new();
    let (r, info) = util::json_cmd("info", &[], path);
    r.expect(0);
    check_info(&mut p, t, &info["data"]["kernel"]);
    let (r, ps) = util::json_cmd("ps", &[], path);
    r.expect(0);
    check_processes(&mut p, t, &ps["data"]);
    let (r, th) = util::json_cmd("threads", &[], path);
    r.expect(0);
    check_threads(&mut p, t, &th["data"]["items"]);
    let (r, lm) = util::json_cmd("lm", &[], path);
    r.expect(0);
    check_modules(&mut p, t, &lm["data"]);
    let (r, locks) = util::json_cmd("locks", &["-V"], path);
    r.expect(0);
    check_locks(&mut p, t, &locks["data"]);
    let (r, v) = util::json_cmd("analyze", &[], path);
    r.expect_no_crash();
    if r.code != Some(exit_code(&t.verdict.overall)) || !r.stderr.is_empty() {
        p.push(format!(
            "analyze: exit code {:?} (expected {}), stderr {:?}",
            r.code,
            exit_code(&t.verdict.overall),
            r.stderr
        ));
    }
    check_verdict(&mut p, t, &v);
    for doc in [&info, &ps, &th, &lm, &locks, &v] {
        if doc["schema_version"] != 1 {
            p.push(format!(
                "a document has schema_version {}",
                doc["schema_version"]
            ));
        }
    }
    p
}

fn warnings_empty(p: &mut Vec<String>, what: &str, v: &Value) {
    let w = arr(v, "warnings");
    if !w.is_empty() {
        p.push(format!(
            "{what}: unexpected warnings on a clean image: {w:?}"
        ));
    }
}

/// `info`: the kernel.
pub fn check_info(p: &mut Vec<String>, t: &GroundTruth, k: &Value) {
    let kt = &t.kernel;
    eq(p, "info kernel_base", kt.kernel_base, a(k, "kernel_base"));
    eq(p, "info dtb", kt.dtb, a(k, "dtb"));
    eq(
        p,
        "info build",
        Some(u64::from(kt.build_number)),
        k["build"].as_u64(),
    );
    eq(
        p,
        "info version",
        (Some(u64::from(kt.version.0)), Some(u64::from(kt.version.1))),
        (k["major_version"].as_u64(), k["minor_version"].as_u64()),
    );
    eq(
        p,
        "info pdb",
        (kt.pdb_guid.to_ascii_uppercase(), u64::from(kt.pdb_age)),
        (
            s(&k["pdb"], "guid").to_ascii_uppercase(),
            k["pdb"]["age"].as_u64().unwrap_or(0),
        ),
    );
    eq(
        p,
        "info processor_count",
        Some(u64::from(kt.number_processors)),
        k["processor_count"].as_u64(),
    );
    eq(
        p,
        "info tick_count",
        Some(kt.tick_count),
        k["tick_count"].as_u64(),
    );
    eq(
        p,
        "info max_increment",
        Some(u64::from(kt.max_increment)),
        k["max_increment"].as_u64(),
    );
    let want: Vec<_> = kt
        .cpus
        .iter()
        .map(|c| (u64::from(c.index), c.kpcr, c.kprcb, c.current_thread))
        .collect();
    let got: Vec<_> = arr(k, "cpus")
        .iter()
        .map(|c| {
            (
                c["index"].as_u64().unwrap_or(u64::MAX),
                a(c, "kpcr"),
                a(c, "kprcb"),
                a(c, "current_thread"),
            )
        })
        .collect();
    eq(
        p,
        "info cpus (index, kpcr, kprcb, current thread)",
        want,
        got,
    );
    warnings_empty(p, "info", k);
}

/// `ps`: every process, in list order.
pub fn check_processes(p: &mut Vec<String>, t: &GroundTruth, d: &Value) {
    let want: Vec<_> = t
        .processes
        .iter()
        .map(|x| {
            (
                x.address,
                x.pid,
                x.ppid,
                x.name.clone(),
                u64::from(x.thread_count),
                x.session.map(u64::from),
                x.create_time,
                x.dtb,
            )
        })
        .collect();
    let got: Vec<_> = arr(d, "items")
        .iter()
        .map(|x| {
            (
                a(x, "address"),
                x["pid"].as_u64().unwrap_or(u64::MAX),
                x["ppid"].as_u64().unwrap_or(u64::MAX),
                s(x, "name").to_string(),
                x["thread_count"].as_u64().unwrap_or(u64::MAX),
                x["session"].as_u64(),
                x["create_time"].as_u64().unwrap_or(0),
                a(x, "dtb"),
            )
        })
        .collect();
    if want != got {
        let mut m = String::from(
            "ps (EPROCESS, pid, ppid, name, threads, session, create time, dtb) differs, in list order:",
        );
        for i in 0..want.len().max(got.len()) {
            match (want.get(i), got.get(i)) {
                (Some(w), Some(g)) if w == g => {}
                (w, g) => m.push_str(&format!(
                    "\n    #{i} expected {w:?}\n    #{i} got      {g:?}"
                )),
            }
        }
        p.push(m);
    }
    warnings_empty(p, "ps", d);
}

fn seconds_eq(want: Option<f64>, got: Option<f64>) -> bool {
    match (want, got) {
        (None, None) => true,
        // The JSON schema rounds seconds to 6 decimals.
        (Some(w), Some(g)) => (w - g).abs() <= 1e-6,
        _ => false,
    }
}

/// `threads`: every thread, by ETHREAD.
pub fn check_threads(p: &mut Vec<String>, t: &GroundTruth, d: &Value) {
    let items = d.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let got: BTreeMap<u64, &Value> = items.iter().map(|x| (a(x, "address"), x)).collect();
    set_diff(
        p,
        "threads (ETHREAD)",
        t.threads.iter().map(|x| x.address),
        got.keys().copied(),
    );
    if items.len() != got.len() {
        p.push(format!(
            "threads: {} rows for {} distinct ETHREADs",
            items.len(),
            got.len()
        ));
    }
    for w in &t.threads {
        let Some(g) = got.get(&w.address) else {
            continue;
        };
        let mut waits: Vec<u64> = arr(g, "waits_on").iter().filter_map(util::addr).collect();
        waits.sort();
        let mut want_waits = w.waits_on.clone();
        want_waits.sort();
        let want = (
            w.tid,
            w.pid,
            w.state.clone(),
            w.wait_reason.clone(),
            w.wait_ticks,
            w.cpu.map(u64::from),
            want_waits,
            w.irps.clone(),
            w.start_address,
        );
        let gotv = (
            g["tid"].as_u64().unwrap_or(u64::MAX),
            g["pid"].as_u64().unwrap_or(u64::MAX),
            s(g, "state").to_string(),
            g["wait_reason"].as_str().map(String::from),
            // The truth gives ticks only for waiting threads; hangscope also
            // gives a ready thread's ticks since it last ran (as WinDbg's
            // `!thread` does). Compare where the truth has a value.
            g["wait_ticks"].as_u64().filter(|_| w.wait_ticks.is_some()),
            g["cpu"].as_u64(),
            waits,
            arr(g, "irps")
                .iter()
                .filter_map(util::addr)
                .collect::<Vec<_>>(),
            a(g, "start_address"),
        );
        if want != gotv {
            p.push(format!(
                "thread {:#x} (tid, pid, state, wait reason, wait ticks, cpu, waits on, IRPs, start):\n    expected {want:x?}\n    got      {gotv:x?}",
                w.address
            ));
        }
        let got_seconds = g["wait_seconds"]
            .as_f64()
            .filter(|_| w.wait_seconds.is_some());
        if !seconds_eq(w.wait_seconds, got_seconds) {
            p.push(format!(
                "thread {:#x} wait_seconds: expected {:?}, hangscope says {:?}",
                w.address, w.wait_seconds, g["wait_seconds"]
            ));
        }
    }
}

/// `lm`: every module, in list order.
pub fn check_modules(p: &mut Vec<String>, t: &GroundTruth, d: &Value) {
    let want: Vec<_> = t
        .modules
        .iter()
        .map(|m| (m.base, m.size, m.name.clone(), m.path.clone()))
        .collect();
    let got: Vec<_> = arr(d, "items")
        .iter()
        .map(|m| {
            (
                a(m, "base"),
                m["size"].as_u64().unwrap_or(0),
                s(m, "name").to_string(),
                s(m, "path").to_string(),
            )
        })
        .collect();
    if want != got {
        p.push(format!(
            "lm (base, size, name, path):\n    expected {want:x?}\n    got      {got:x?}"
        ));
    }
    warnings_empty(p, "lm", d);
}

/// `locks -V`: every ERESOURCE of the truth with its owners and waiters;
/// anything else on the list must be an idle resource.
pub fn check_locks(p: &mut Vec<String>, t: &GroundTruth, d: &Value) {
    let got: BTreeMap<u64, &Value> = arr(d, "items")
        .iter()
        .map(|x| (a(x, "address"), x))
        .collect();
    for e in &t.eresources {
        let Some(g) = got.get(&e.address) else {
            p.push(format!(
                "locks: ERESOURCE {:#x} ({}) missing",
                e.address, e.name
            ));
            continue;
        };
        let what = format!("locks {:#x} ({})", e.address, e.name);
        eq(
            p,
            &format!("{what} (active count, exclusive, contention count)"),
            (
                u64::from(e.active_count),
                e.exclusive,
                u64::from(e.contention_count),
            ),
            (
                g["active_count"].as_u64().unwrap_or(u64::MAX),
                g["exclusive"].as_bool().unwrap_or(false),
                g["contention_count"].as_u64().unwrap_or(u64::MAX),
            ),
        );
        let party = |v: &Value| (a(v, "thread"), v["exclusive"].as_bool().unwrap_or(false));
        set_diff(
            p,
            &format!("{what} owners (thread, exclusive)"),
            e.owners.iter().map(|o| (o.thread, o.exclusive)),
            arr(g, "owners").iter().map(party),
        );
        set_diff(
            p,
            &format!("{what} waiters (thread, exclusive)"),
            e.waiters.iter().map(|o| (o.thread, o.exclusive)),
            arr(g, "waiters").iter().map(party),
        );
        // Where the waiters block, found from the resource: the shared
        // semaphore, or on 1607 each _KWAIT_CHAIN entry's event in chain
        // order; the exclusive waiters' event.
        eq(
            p,
            &format!("{what} (shared_waiters, shared_wait_events, exclusive_waiters)"),
            (
                e.shared_waiters,
                e.shared_wait_events.clone(),
                e.exclusive_waiters,
            ),
            (
                a(g, "shared_waiters"),
                arr(g, "shared_wait_events")
                    .iter()
                    .map(|v| util::addr(v).unwrap_or(0))
                    .collect::<Vec<_>>(),
                a(g, "exclusive_waiters"),
            ),
        );
    }
    // The lab puts a few anonymous resources on the list that the truth
    // does not record: they must be idle.
    for (addr, g) in &got {
        if t.eresources.iter().any(|e| e.address == *addr) {
            continue;
        }
        if g["active_count"].as_u64() != Some(0)
            || !arr(g, "owners").is_empty()
            || !arr(g, "waiters").is_empty()
        {
            p.push(format!(
                "locks: resource {addr:#x} is not in the truth and not idle: {g}"
            ));
        }
    }
    warnings_empty(p, "locks", d);
}

/// The thread and resource addresses of a finding's chain.
fn chain_of(f: &Value) -> (Vec<u64>, Vec<u64>) {
    let mut threads = Vec::new();
    let mut locks = Vec::new();
    for step in arr(f, "chain") {
        match s(step, "step") {
            "thread" => threads.push(a(step, "address")),
            "resource" => locks.push(a(step, "address")),
            _ => {}
        }
    }
    (threads, locks)
}

fn step<'a>(f: &'a Value, kind: &str) -> Option<&'a Value> {
    arr(f, "chain").iter().find(|x| s(x, "step") == kind)
}

/// Compare one expected finding with hangscope's finding of the same
/// kind and final resources.
fn check_finding(p: &mut Vec<String>, w: &FindingTruth, g: &Value) {
    let what = format!("finding {}", w.kind);
    let (threads, locks) = chain_of(g);
    if w.kind == "deadlock" {
        // A cycle has no first member: compare as sets.
        set_diff(
            p,
            &format!("{what} cycle threads"),
            w.chain_threads.iter().copied(),
            threads,
        );
        set_diff(
            p,
            &format!("{what} cycle locks"),
            w.chain_locks.iter().copied(),
            locks,
        );
        if step(g, "cycle_back").is_none() {
            p.push(format!("{what}: the chain does not end in cycle_back"));
        }
    } else {
        // The truth's chain starts at the first waiter; hangscope's chain
        // starts at the first lock, whose waiters are in `edges`.
        let first_waiter = w.chain_threads.first().copied();
        eq(
            p,
            &format!("{what} chain owners"),
            w.chain_threads.get(1..).unwrap_or(&[]).to_vec(),
            threads,
        );
        eq(
            p,
            &format!("{what} chain locks"),
            w.chain_locks.clone(),
            locks.clone(),
        );
        if let (Some(fw), Some(l0)) = (first_waiter, locks.first()) {
            let waits = arr(g, "edges")
                .iter()
                .any(|e| a(e, "waiter") == fw && a(e, "resource") == *l0);
            if !waits {
                p.push(format!(
                    "{what}: no edge from the first waiter {fw:#x} to lock {l0:#x}"
                ));
            }
        }
        eq(
            p,
            &format!("{what} final_owner"),
            w.chain_threads.last().copied(),
            util::addr(&g["final_owner"]),
        );
    }
    // hangscope counts a cycle's members among the blocked threads
    // (docs/json-schema.md); the truth lists them apart, in chain_threads.
    let mut blocked: std::collections::BTreeSet<u64> = w.blocked_threads.iter().copied().collect();
    if w.kind == "deadlock" {
        blocked.extend(w.chain_threads.iter().copied());
    }
    eq(
        p,
        &format!("{what} blocked_threads"),
        Some(blocked.len() as u64),
        g["blocked_threads"].as_u64(),
    );
    if g["threads_truncated"] != true {
        set_diff(
            p,
            &format!("{what} blocked threads"),
            blocked.iter().copied(),
            arr(g, "threads").iter().map(|x| a(x, "address")),
        );
    }
    set_diff(
        p,
        &format!("{what} blocked processes"),
        w.blocked_processes.iter().cloned(),
        arr(g, "blocked_processes")
            .iter()
            .map(|x| s(x, "name").to_string()),
    );
    eq(
        p,
        &format!("{what} driver"),
        w.driver.clone(),
        step(g, "driver").map(|x| s(x, "name").to_string()),
    );
    eq(
        p,
        &format!("{what} directory"),
        w.directory.clone(),
        step(g, "directory").map(|x| s(x, "path").to_string()),
    );
}

/// `analyze --json`: verdict, findings, hot directories.
pub fn check_verdict(p: &mut Vec<String>, t: &GroundTruth, v: &Value) {
    let vt = &t.verdict;
    eq(p, "analyze overall", vt.overall.as_str(), s(v, "overall"));
    eq(
        p,
        "analyze exit_code",
        Some(exit_code(&vt.overall) as u64),
        v["exit_code"].as_u64(),
    );
    let findings = arr(v, "findings");
    let mut kinds_want: Vec<&str> = vt.findings.iter().map(|f| f.kind.as_str()).collect();
    let mut kinds_got: Vec<&str> = findings.iter().map(|f| s(f, "kind")).collect();
    kinds_want.sort();
    kinds_got.sort();
    eq(p, "analyze finding kinds", kinds_want, kinds_got);
    for w in &vt.findings {
        // The finding whose chain locks overlap the expected ones most.
        let best = findings
            .iter()
            .filter(|f| s(f, "kind") == w.kind)
            .max_by_key(|f| {
                let (_, locks) = chain_of(f);
                locks.iter().filter(|l| w.chain_locks.contains(l)).count()
            });
        match best {
            Some(g) => check_finding(p, w, g),
            None => p.push(format!("analyze: no {} finding", w.kind)),
        }
    }
    check_hot_dirs(p, t, v);
    warnings_empty(p, "analyze", v);
}

/// Hot directories: path, file count, holder processes by name, exactly
/// as the truth says.
pub fn check_hot_dirs(p: &mut Vec<String>, t: &GroundTruth, v: &Value) {
    let want: Vec<_> = t
        .verdict
        .hot_directories
        .iter()
        .map(|h| {
            let mut procs = h.processes.clone();
            procs.sort();
            (h.path.clone(), h.file_count, procs)
        })
        .collect();
    let got: Vec<_> = arr(v, "hot_directories")
        .iter()
        .map(|h| {
            let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
            for x in arr(h, "holders") {
                *by_name.entry(s(x, "name").to_string()).or_default() +=
                    x["files"].as_u64().unwrap_or(0);
            }
            (
                s(h, "path").to_string(),
                h["files"].as_u64().unwrap_or(0),
                by_name.into_iter().collect::<Vec<_>>(),
            )
        })
        .collect();
    eq(
        p,
        "analyze hot directories (path, files, holders by name)",
        want,
        got,
    );
}

macro_rules! matrix {
    ($($name:ident: $scenario:expr, $build:expr, $seed:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check_scenario($scenario, $build, $seed);
            }
        )*
    };
}

matrix! {
    temp_flood_win7sp1: "temp-flood", "win7sp1", 11;
    temp_flood_win2016: "temp-flood", "win2016", 12;
    temp_flood_win10_19041: "temp-flood", "win10-19041", 13;
    temp_flood_win11: "temp-flood", "win11", 14;
    deadlock_win7sp1: "deadlock", "win7sp1", 21;
    deadlock_win2016: "deadlock", "win2016", 22;
    deadlock_win10_19041: "deadlock", "win10-19041", 23;
    deadlock_win11: "deadlock", "win11", 24;
    idle_win7sp1: "idle", "win7sp1", 31;
    idle_win2016: "idle", "win2016", 32;
    idle_win10_19041: "idle", "win10-19041", 33;
    idle_win11: "idle", "win11", 34;
}
