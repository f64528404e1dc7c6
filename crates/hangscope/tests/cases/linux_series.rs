//! Issue 16 on a real VM: `hangscope capture --interval N --count 3` of the
//! real hung Linux guest (scripts/linux-guest-series.sh), then `analyze`
//! on the capture's manifest. The guest's two deadlocks (the
//! userfaultfd-mediated one and the module's ABBA mutexes) must come out
//! proven stuck, their tasks still in every dump, while other tasks of
//! the guest move.
//!
//! The busy guest is the flood of scripts/linux-guest.sh (php-cgi
//! creators and dirlister readers contending on one directory's i_rwsem),
//! captured every 2 s: its finding must come out busy (proven), with the
//! context switches and the lock's changes the series saw, and no task of
//! it called stuck.
//!
//! The series are found as `series/manifest.json` (the hung guest) and
//! `flood-series/manifest.json` (the busy one) under each directory of
//! `HANGSCOPE_LINUX_GUESTS`, and in `HANGSCOPE_LINUX_SERIES` and
//! `HANGSCOPE_LINUX_FLOOD_SERIES` (colon-separated capture directories).
//! Without any, a test skips with a message, except in CI (`CI=true`),
//! where it fails.

use std::path::PathBuf;

use crate::util::{self, arr, s};

fn series_dirs() -> Vec<PathBuf> {
    captures("HANGSCOPE_LINUX_SERIES", "series")
}

/// The capture directories named by `var`, then `sub/` of each guest
/// directory that holds a manifest.
fn captures(var: &str, sub: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::env::var(var)
        .unwrap_or_default()
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    for g in std::env::var("HANGSCOPE_LINUX_GUESTS")
        .unwrap_or_default()
        .split(':')
        .filter(|s| !s.is_empty())
    {
        let d = PathBuf::from(g).join(sub);
        if d.join("manifest.json").is_file() {
            out.push(d);
        }
    }
    out
}

#[test]
fn real_hung_guest_series_is_proven_stuck() {
    let dirs = series_dirs();
    if dirs.is_empty() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must test a real series: scripts/linux-guest.sh takes one (series/ beside the dumps)"
        );
        eprintln!("linux_series: skipped (no series/manifest.json under HANGSCOPE_LINUX_GUESTS, no HANGSCOPE_LINUX_SERIES)");
        return;
    }
    let mut problems = Vec::new();
    for dir in dirs {
        let label = dir.display().to_string();
        let (r, doc) = util::json_cmd("analyze", &[], &dir.join("manifest.json"));
        if r.code != Some(4) {
            problems.push(format!("{label}: exit {:?}\n{}", r.code, r.stderr));
        }
        util::eq(
            &mut problems,
            &format!("{label} dumps"),
            3,
            arr(&doc, "dumps").len(),
        );
        // One boot: the same banner, KASLR offset and boot time (from the
        // timekeeper) in every dump.
        let boots: Vec<&serde_json::Value> =
            arr(&doc, "dumps").iter().map(|d| &d["boot"]).collect();
        if boots
            .iter()
            .any(|b| !b["boot_time_unix_seconds"].is_f64() || *b != boots[0])
        {
            problems.push(format!(
                "{label}: boot identities differ or lack a boot time: {boots:?}"
            ));
        }
        if doc["interval_seconds"].as_f64().unwrap_or(0.0) <= 0.0 {
            problems.push(format!("{label}: no interval"));
        }
        let findings = arr(&doc, "findings");
        let deadlocks: Vec<_> = findings
            .iter()
            .filter(|f| s(f, "single_dump_kind") == "deadlock")
            .collect();
        util::eq(
            &mut problems,
            &format!("{label} deadlocks"),
            2,
            deadlocks.len(),
        );
        for f in &deadlocks {
            util::eq(
                &mut problems,
                &format!("{label} proof of #{}", f["rank"]),
                "stuck",
                s(f, "proof"),
            );
            if !arr(f, "moved_threads").is_empty() {
                problems.push(format!(
                    "{label} #{}: deadlocked tasks moved: {}",
                    f["rank"], f["moved_threads"]
                ));
            }
        }
        // The cycles' tasks by name: all still.
        let threads = arr(&doc, "threads");
        let comm_of = |a: &serde_json::Value| {
            arr(&doc["verdict"], "findings")
                .iter()
                .flat_map(|f| arr(f, "chain"))
                .find(|st| st["address"] == *a)
                .and_then(|st| st["process"].as_str().map(str::to_string))
        };
        let mut still_names: Vec<String> = threads
            .iter()
            .filter(|t| s(t, "motion") == "still")
            .filter_map(|t| comm_of(&t["address"]))
            .collect();
        still_names.sort();
        still_names.dedup();
        for name in ["hang_ab", "hang_ba", "uffd-writer"] {
            if !still_names.iter().any(|n| n == name) {
                problems.push(format!(
                    "{label}: {name} not proven still (still: {still_names:?})"
                ));
            }
        }
        if doc["threads_moved"].as_u64().unwrap_or(0) == 0 {
            problems.push(format!("{label}: no task of the guest moved in the series"));
        }
    }
    util::report("linux series", problems);
}

#[test]
fn real_busy_guest_series_shows_progress() {
    let dirs = captures("HANGSCOPE_LINUX_FLOOD_SERIES", "flood-series");
    if dirs.is_empty() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must test a real busy series: scripts/linux-guest.sh takes one (flood-series/ beside the dumps)"
        );
        eprintln!("linux_series: busy guest skipped (no flood-series/manifest.json under HANGSCOPE_LINUX_GUESTS, no HANGSCOPE_LINUX_FLOOD_SERIES)");
        return;
    }
    let mut problems = Vec::new();
    for dir in dirs {
        let label = dir.display().to_string();
        let (r, doc) = util::json_cmd("analyze", &[], &dir.join("manifest.json"));
        // Busy, as one dump of the flood says: exit 1, not a hang's 2-4.
        if r.code != Some(1) {
            problems.push(format!("{label}: exit {:?}\n{}", r.code, r.stderr));
        }
        util::eq(
            &mut problems,
            &format!("{label} dumps"),
            3,
            arr(&doc, "dumps").len(),
        );
        let findings = arr(&doc, "findings");
        if findings.is_empty() {
            problems.push(format!("{label}: no finding"));
        }
        for f in findings {
            if s(f, "proof") == "stuck" || !arr(f, "still_threads").is_empty() {
                problems.push(format!(
                    "{label} #{}: called stuck, or threads still, in a busy guest: {f}",
                    f["rank"]
                ));
            }
        }
        let busy: Vec<_> = findings
            .iter()
            .filter(|f| s(f, "single_dump_kind") == "busy_owner")
            .collect();
        util::eq(
            &mut problems,
            &format!("{label} busy-owner findings"),
            1,
            busy.len(),
        );
        for f in &busy {
            util::eq(
                &mut problems,
                &format!("{label} proof of #{}", f["rank"]),
                "busy",
                s(f, "proof"),
            );
            if !s(f, "line").starts_with("busy (proven)") {
                problems.push(format!("{label}: proof line {:?}", s(f, "line")));
            }
            if arr(f, "moved_threads").len() < 2 {
                problems.push(format!(
                    "{label} #{}: fewer than two of its tasks moved: {}",
                    f["rank"], f["moved_threads"]
                ));
            }
        }
        // The progress it saw: the contenders switched, and the directory's
        // lock changed owners or waiters.
        let switches: u64 = arr(&doc, "threads")
            .iter()
            .filter_map(|t| t["context_switches"].as_u64())
            .sum();
        if switches == 0 {
            problems.push(format!("{label}: no context switch seen"));
        }
        let lock_moved = arr(&doc, "locks").iter().any(|l| {
            s(l, "kind") == "rw_semaphore"
                && (l["owner_changes"].as_u64().unwrap_or(0) > 0
                    || !arr(l, "waiters_left").is_empty()
                    || !arr(l, "waiters_new").is_empty())
        });
        if !lock_moved {
            problems.push(format!(
                "{label}: no rw_semaphore changed owners or waiters: {}",
                doc["locks"]
            ));
        }
    }
    util::report("linux busy series", problems);
}
