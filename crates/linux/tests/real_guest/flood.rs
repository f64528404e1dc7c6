//! Issue 12, must-show 4: the Linux form of the seed case. On every guest
//! in `HANGSCOPE_LINUX_GUESTS` that has the flood dumps
//! (`dumps/flood.{elf,kdump-zlib}`, made by `scripts/linux-guest.sh` on
//! the 6.1 and 6.12 lines), the contended directory hangscope finds
//! without debug info must agree with drgn's view with the debug vmlinux
//! (`peers/flood-*.json`, `scripts/linux-guest/flood_truth.py`): the lock,
//! its owner and count words, its waiters in order with their modes and
//! how long each has been off the CPU, the
//! readers on the CPUs inside the walk, the files in the dcache, who holds
//! them open, and what each waiting writer does. With `CI=true` a run that
//! finds no flood guest fails.

use super::waits::guests;
use hangscope_dump::Dump;
use hangscope_linux::LinuxKernel;
use serde_json::Value;
use std::collections::BTreeMap;

fn hex(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or("");
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(u64::MAX)
}

/// What drgn's stack says a waiting writer does.
fn drgn_action(stack: &[Value]) -> &'static str {
    for f in stack.iter().filter_map(Value::as_str) {
        if ["open_last_lookups", "lookup_open", "path_openat"].contains(&f) {
            return "creating";
        }
        if ["do_unlinkat", "do_rmdir"].contains(&f) {
            return "removing";
        }
    }
    "changing"
}

#[test]
fn issue_12_flood_directory_agrees_with_drgn() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for dir in guests() {
        for (fmt, file) in [("elf", "flood.elf"), ("kdump", "flood.kdump-zlib")] {
            let path = dir.join("dumps").join(file);
            if !path.is_file() {
                continue;
            }
            let at = format!("[{} {fmt}]", dir.display());
            let truth: Value = serde_json::from_slice(
                &std::fs::read(dir.join(format!("peers/flood-{fmt}.json"))).unwrap(),
            )
            .unwrap();
            let dump = Dump::open(&path).unwrap();
            let k = LinuxKernel::open(&dump, None).unwrap();
            let w = k.waits().unwrap();
            let tl = &truth["lock"];
            let Some(d) = w.dirs.iter().find(|d| d.lock.0 == hex(&tl["address"])) else {
                problems.push(format!("{at} no contended directory at {}", tl["address"]));
                continue;
            };
            checked.push(at.clone());
            let lock = w.locks.items.iter().find(|l| l.address == d.lock).unwrap();
            // The directory and its files in the dcache.
            if d.path != truth["dir"].as_str().unwrap() {
                problems.push(format!("{at} path {}", d.path));
            }
            if d.inode.0 != hex(&truth["inode"])
                || d.dentry.map(|x| x.0) != Some(hex(&truth["dentry"]))
            {
                problems.push(format!(
                    "{at} inode {:#x} dentry {:x?}",
                    d.inode.0, d.dentry
                ));
            }
            if d.children.layout != truth["children_layout"].as_str().unwrap() {
                problems.push(format!("{at} layout {}", d.children.layout));
            }
            if d.children.total as u64 != truth["children"].as_u64().unwrap()
                || d.children.files.len() as u64 != truth["positive_children"].as_u64().unwrap()
                || d.children.incomplete
            {
                problems.push(format!(
                    "{at} children {} files {} incomplete {} vs drgn {} / {}",
                    d.children.total,
                    d.children.files.len(),
                    d.children.incomplete,
                    truth["children"],
                    truth["positive_children"]
                ));
            }
            if d.children.files.len() < 30_000 {
                problems.push(format!("{at} only {} files", d.children.files.len()));
            }
            let holders: BTreeMap<String, u64> = d
                .holders
                .iter()
                .map(|(t, n)| (t.to_string(), *n as u64))
                .collect();
            let want: BTreeMap<String, u64> = truth["file_holders"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(t, h)| (t.clone(), h["files"].as_u64().unwrap()))
                .collect();
            if holders != want {
                problems.push(format!("{at} holders {holders:?} vs drgn {want:?}"));
            }
            // The lock's words and its waiters, in wait_list order.
            if lock.owner_raw != Some(hex(&tl["owner_raw"]))
                || lock.count_raw != Some(hex(&tl["count_raw"]))
                || lock.readers != tl["readers"].as_u64()
            {
                problems.push(format!(
                    "{at} owner {:x?} count {:x?} readers {:?}",
                    lock.owner_raw, lock.count_raw, lock.readers
                ));
            }
            let ours: Vec<(u64, String)> = lock
                .waiters
                .iter()
                .map(|x| (x.task.0, x.mode.clone()))
                .collect();
            let theirs: Vec<(u64, String)> = tl["waiters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| (hex(&x["task"]), x["type"].as_str().unwrap().to_string()))
                .collect();
            if ours != theirs {
                problems.push(format!("{at} waiters {ours:x?} vs drgn {theirs:x?}"));
            }
            // How long each has been off the CPU: the same dump, the same
            // runqueue clock, so exactly drgn's.
            let ours: Vec<Option<u64>> = lock
                .waiters
                .iter()
                .map(|x| x.since_last_arrival_ns)
                .collect();
            let theirs: Vec<Option<u64>> = tl["waiters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["since_last_arrival_ns"].as_u64())
                .collect();
            if ours != theirs {
                problems.push(format!("{at} waited {ours:?} vs drgn {theirs:?}"));
            }
            // What each writer does, from its own stack.
            for x in tl["waiters"].as_array().unwrap() {
                if x["type"] != "write" {
                    continue;
                }
                let want = drgn_action(x["stack"].as_array().unwrap());
                let got = d.writers.iter().find(|(t, _)| t.0 == hex(&x["task"]));
                if got.map(|g| g.1) != Some(want) {
                    problems.push(format!("{at} writer {}: {got:?} vs drgn {want}", x["pid"]));
                }
            }
            // The readers on the CPUs: drgn's on-CPU tasks inside the walk
            // with the directory open, and the lock's owners.
            let mut walkers: Vec<i64> = d
                .walkers
                .iter()
                .map(|x| {
                    lock.owners
                        .iter()
                        .find(|o| o.task == x.task)
                        .and_then(|o| o.pid)
                        .map_or(-1, i64::from)
                })
                .collect();
            walkers.sort_unstable();
            let mut want: Vec<i64> = truth["holders_on_cpu"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_i64)
                .collect();
            want.sort_unstable();
            if walkers != want || walkers.is_empty() {
                problems.push(format!("{at} readers on CPUs {walkers:?} vs drgn {want:?}"));
            }
            let waiting: Vec<u64> = lock.waiters.iter().map(|x| x.task.0).collect();
            if lock
                .owners
                .iter()
                .any(|o| waiting.contains(&o.task.0) || o.mode != "read")
            {
                problems.push(format!("{at} owners {:?}", lock.owners));
            }
            if !lock
                .owner_note
                .as_deref()
                .is_some_and(|n| n.contains("inferred"))
            {
                problems.push(format!(
                    "{at} the attribution is not marked inferred: {:?}",
                    lock.owner_note
                ));
            }
        }
    }
    if checked.is_empty() {
        assert!(
            !ci,
            "CI=true but no guest in HANGSCOPE_LINUX_GUESTS has the flood dumps \
             (scripts/linux-guest.sh makes them on the 6.1 and 6.12 lines)"
        );
        eprintln!("skipped: no flood guest (dumps/flood.elf) in HANGSCOPE_LINUX_GUESTS");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("flood checked on {}", checked.join(", "));
}
