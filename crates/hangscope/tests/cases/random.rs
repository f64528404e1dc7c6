//! Randomized: `random_scenario` lock graphs with and without cycles, on
//! two builds; `analyze`'s verdict, exit code and deadlock cycles must
//! match the ground truth. `HANGSCOPE_RANDOM_SEEDS=N` runs N seeds per
//! build instead of 20.

use std::collections::BTreeSet;

use hangscope_lab::format::Format;
use hangscope_lab::{random_scenario, RandomOptions};
use serde_json::Value;

use crate::matrix::exit_code;
use crate::util::{self, a, arr, eq, report, s};

fn seeds() -> u64 {
    std::env::var("HANGSCOPE_RANDOM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// (threads, locks) of every deadlock finding, as sets.
fn cycles(v: &Value) -> BTreeSet<(Vec<u64>, Vec<u64>)> {
    arr(v, "findings")
        .iter()
        .filter(|f| s(f, "kind") == "deadlock")
        .map(|f| {
            let mut th = BTreeSet::new();
            let mut lk = BTreeSet::new();
            for st in arr(f, "chain") {
                match s(st, "step") {
                    "thread" => {
                        th.insert(a(st, "address"));
                    }
                    "resource" => {
                        lk.insert(a(st, "address"));
                    }
                    _ => {}
                }
            }
            (th.into_iter().collect(), lk.into_iter().collect())
        })
        .collect()
}

fn check_build(build: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut problems = Vec::new();
    let mut with_cycle = 0;
    for seed in 0..seeds() {
        // Even seeds must have a cycle, odd seeds must not.
        let opts = RandomOptions {
            build: build.to_string(),
            cycle: Some(seed % 2 == 0),
            ..RandomOptions::default()
        };
        let sc = random_scenario(seed, &opts);
        let (image, truth) = util::build(&sc, build, seed, 64 << 20);
        let path = util::write(&image, Format::Elf, dir.path(), &format!("random-{seed}"));
        let (r, v) = util::json_cmd("analyze", &[], &path);
        r.expect_no_crash();
        let mut p = Vec::new();
        let vt = &truth.verdict;
        eq(&mut p, "overall", vt.overall.as_str(), s(&v, "overall"));
        eq(&mut p, "exit code", Some(exit_code(&vt.overall)), r.code);
        let want: BTreeSet<(Vec<u64>, Vec<u64>)> = vt
            .findings
            .iter()
            .filter(|f| f.kind == "deadlock")
            .map(|f| {
                let th: BTreeSet<u64> = f.chain_threads.iter().copied().collect();
                let lk: BTreeSet<u64> = f.chain_locks.iter().copied().collect();
                (th.into_iter().collect(), lk.into_iter().collect())
            })
            .collect();
        if !want.is_empty() {
            with_cycle += 1;
        }
        eq(&mut p, "deadlock cycles (threads, locks)", want, cycles(&v));
        if !r.stderr.is_empty() {
            p.push(format!("stderr not empty: {}", r.stderr));
        }
        problems.extend(
            p.into_iter()
                .map(|m| format!("[random seed {seed} cycle={:?} {build}] {m}", opts.cycle)),
        );
        let _ = std::fs::remove_file(&path);
    }
    // The generator must really have produced cycles, or this test checks
    // nothing about them.
    if seeds() >= 2 && with_cycle == 0 {
        problems.push(format!("{build}: no seed produced a deadlock in the truth"));
    }
    report(&format!("random scenarios on {build}"), problems);
}

#[test]
fn random_win7sp1() {
    check_build("win7sp1");
}

#[test]
fn random_win10_19041() {
    check_build("win10-19041");
}
