//! Issue 12: what each blocked task waits on, found from the waiter
//! records on the stacks (no debug info), against drgn's ground truth
//! (found with the debug vmlinux) on every guest in
//! `HANGSCOPE_LINUX_GUESTS` (colon-separated recipe work directories).
//! Without it the tests skip; with `CI=true` a missing guest fails.

use hangscope_dump::Dump;
use hangscope_linux::LinuxKernel;
use serde_json::Value;
use std::path::PathBuf;

/// The guests to test, or none (skipped, unless in CI).
pub fn guests() -> Vec<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(list) = std::env::var_os("HANGSCOPE_LINUX_GUESTS") else {
        assert!(!ci, "CI=true but HANGSCOPE_LINUX_GUESTS is not set");
        eprintln!("skipped: HANGSCOPE_LINUX_GUESTS is not set (see shared/tools/linux-guest)");
        return Vec::new();
    };
    let dirs: Vec<PathBuf> = std::env::split_paths(&list).collect();
    for d in &dirs {
        if !d.join("dumps").is_dir() {
            assert!(!ci, "CI=true but guest {} has no dumps/", d.display());
            eprintln!("skipped guest {}: no dumps/", d.display());
        }
    }
    dirs.into_iter()
        .filter(|d| d.join("dumps").is_dir())
        .collect()
}

fn hex(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or("");
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(u64::MAX)
}

#[test]
fn issue_12_locks_owners_waiters_and_times_agree_with_drgn() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for dir in guests() {
        for (fmt, file) in [("elf", "hangguest.elf"), ("kdump", "hangguest.kdump-zlib")] {
            let at = format!("[{} {fmt}]", dir.display());
            let truth: Value = serde_json::from_slice(
                &std::fs::read(dir.join(format!("peers/drgn-{fmt}.json"))).unwrap(),
            )
            .unwrap();
            let dump = Dump::open(&dir.join("dumps").join(file)).unwrap();
            let k = LinuxKernel::open(&dump, None).unwrap();
            let w = k.waits().unwrap();
            let want = truth["locks"].as_object().unwrap();
            for (addr, l) in want {
                let Some(got) = w
                    .locks
                    .items
                    .iter()
                    .find(|g| g.address.0 == hex(&l["address"]))
                else {
                    problems.push(format!("{at} lock {addr} ({}) not found", l["kind"]));
                    continue;
                };
                checked += 1;
                if got.kind != l["kind"].as_str().unwrap_or("") {
                    problems.push(format!("{at} {addr}: kind {} vs {}", got.kind, l["kind"]));
                }
                if got.owner_raw != Some(hex(&l["owner_raw"])) {
                    problems.push(format!("{at} {addr}: owner_raw {:x?}", got.owner_raw));
                }
                if let Some(c) = l.get("count_raw") {
                    if got.count_raw != Some(hex(c)) {
                        problems.push(format!("{at} {addr}: count_raw {:x?}", got.count_raw));
                    }
                }
                let owner = got.owners.first().map(|o| o.task.0);
                if owner != Some(hex(&l["owner"]["task"])) {
                    problems.push(format!("{at} {addr}: owner {owner:x?}"));
                }
                if let Some(s) = l.get("symbol").and_then(Value::as_str) {
                    if got.symbol.as_deref() != Some(s) {
                        problems.push(format!("{at} {addr}: symbol {:?} vs {s}", got.symbol));
                    }
                }
                let want_w: Vec<u64> = l["waiters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| hex(&x["task"]))
                    .collect();
                let got_w: Vec<u64> = got.waiters.iter().map(|x| x.task.0).collect();
                if want_w != got_w {
                    problems.push(format!("{at} {addr}: waiters {got_w:x?} vs {want_w:x?}"));
                }
            }
            let real = w.locks.items.iter().filter(|l| l.kind != "userfaultfd");
            if real.count() != want.len() {
                problems.push(format!(
                    "{at} {} locks found, drgn has {}",
                    w.locks.items.len(),
                    want.len()
                ));
            }
            for d in truth["D_tasks"].as_array().unwrap() {
                let pid = d["pid"].as_i64().unwrap() as i32;
                let entry = w
                    .locks
                    .items
                    .iter()
                    .flat_map(|l| l.waiters.iter().map(move |x| (l, x)))
                    .find(|(_, x)| x.pid == Some(pid));
                match (&d["blocked_on"], entry) {
                    (Value::Null, None) => {}
                    (Value::Null, Some((l, _))) => problems.push(format!(
                        "{at} pid {pid}: drgn has no lock, got {}",
                        l.address
                    )),
                    (b, None) => problems.push(format!("{at} pid {pid}: {b} not found")),
                    (b, Some((l, x))) => {
                        if l.address.0 != hex(&b["address"]) {
                            problems.push(format!("{at} pid {pid}: waits on {}", l.address));
                        }
                        if let Some(p) = b.get("protects").and_then(Value::as_str) {
                            let want = p.trim_start_matches("struct ");
                            if l.protects.as_deref() != Some(want) {
                                problems.push(format!(
                                    "{at} pid {pid}: protects {:?} vs {want}",
                                    l.protects
                                ));
                            }
                        }
                        let s = d["since_last_arrival_s"].as_f64().unwrap();
                        let g = x.since_last_arrival_ns.map(|n| n as f64 / 1e9);
                        if g.is_none_or(|g| (g - s).abs() > 1e-3) {
                            problems
                                .push(format!("{at} pid {pid}: since_last_arrival {g:?} vs {s}"));
                        }
                        let h = d["hung_task_seen_s"].as_f64();
                        if h.is_some() != x.hung_task_seen_s.is_some()
                            || h.zip(x.hung_task_seen_s)
                                .is_some_and(|(a, b)| (a - b).abs() > 1e-3)
                        {
                            problems.push(format!(
                                "{at} pid {pid}: hung_task_seen {:?} vs {h:?}",
                                x.hung_task_seen_s
                            ));
                        }
                    }
                }
            }
            eprintln!("{at} {:#?}", w.locks.items);
            eprintln!("{at} notes {:#?}", w.notes);
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!("{checked} locks checked");
}

#[test]
fn issue_12_verdict_is_two_deadlocks_and_the_vfork_parent_is_no_hang() {
    use hangscope_waitgraph::{analyze, FindingKind, Overall};
    let mut problems = Vec::new();
    for dir in guests() {
        for file in ["hangguest.elf", "hangguest.kdump-zlib"] {
            let at = format!("[{} {file}]", dir.display());
            let dump = Dump::open(&dir.join("dumps").join(file)).unwrap();
            let k = LinuxKernel::open(&dump, None).unwrap();
            let input = k.wait_graph();
            let v = analyze(&input, &Default::default());
            if v.overall != Overall::Deadlock || v.overall.exit_code() != 4 {
                problems.push(format!("{at} overall {:?}", v.overall));
            }
            let comm = |tid: u64| {
                input
                    .threads
                    .iter()
                    .find(|t| t.tid == tid)
                    .and_then(|t| {
                        k.tasks()
                            .ok()?
                            .items
                            .into_iter()
                            .find(|x| x.task.0 == t.key)
                    })
                    .map(|t| t.comm)
                    .unwrap_or_default()
            };
            let mut cycles: Vec<Vec<String>> = v
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::Deadlock)
                .map(|f| {
                    let mut c: Vec<String> = f
                        .edges
                        .iter()
                        .filter_map(|e| e.waiter_tid.map(comm))
                        .collect();
                    c.sort();
                    c
                })
                .collect();
            cycles.sort();
            let want = vec![
                vec!["hang_ab".to_string(), "hang_ba".to_string()],
                vec!["uffd-handler".to_string(), "uffd-writer".to_string()],
            ];
            if cycles != want {
                problems.push(format!("{at} cycles {cycles:?}"));
            }
            for f in &v.findings {
                let names: Vec<String> = f.threads.iter().filter_map(|t| t.tid.map(comm)).collect();
                let tees = names.iter().filter(|n| *n == "tee").count();
                let uffd = f
                    .edges
                    .iter()
                    .any(|e| e.waiter_tid.map(comm).as_deref() == Some("uffd-writer"));
                if uffd && f.blocked_threads < 8 {
                    problems.push(format!(
                        "{at} uffd cycle blocks {} (tee {tees})",
                        f.blocked_threads
                    ));
                }
                if names.iter().any(|n| n == "hangtool") {
                    problems.push(format!("{at} the vfork parent is in a finding"));
                }
                if names.iter().any(|n| n == "hang_victim")
                    && !f
                        .edges
                        .iter()
                        .any(|e| e.waiter_tid.map(comm).as_deref() == Some("hang_ab"))
                {
                    problems.push(format!("{at} hang_victim outside the ABBA finding"));
                }
            }
            let w = k.waits().unwrap();
            if !w
                .notes
                .iter()
                .any(|n| n.contains("vfork child") && n.contains("not a hang"))
            {
                problems.push(format!("{at} no vfork note: {:?}", w.notes));
            }
            let reports = hangscope_linux::waits::hung_task_reports(&k.dmesg().unwrap().items);
            if reports.is_empty() {
                problems.push(format!("{at} no hung-task report in dmesg"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}
