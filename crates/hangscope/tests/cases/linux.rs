//! Real hung Linux guests (issue 11): the dumps `scripts/linux-guest.sh`
//! makes with the shared recipe (a Debian kernel wedged four ways under
//! libvirt/TCG, dumped by `virsh dump` as ELF and kdump-zlib), read by the
//! CLI and compared with drgn's view of the same dump
//! (`peers/truth-*.json`, drgn with Debian's debug vmlinux).
//!
//! `HANGSCOPE_LINUX_GUESTS` lists the recipe directories (colon-separated;
//! `scripts/test.sh` sets it). Without it the tests say so and pass, except
//! in CI (`CI=true`), where a suite that silently skipped the real guests
//! would prove nothing.

use crate::util::{run, Run};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One recipe directory: a kernel line's dumps, truth and debug vmlinux.
pub(crate) struct Guest {
    pub(crate) dir: PathBuf,
}

impl Guest {
    pub(crate) fn dump(&self, form: &str) -> PathBuf {
        self.dir.join("dumps").join(match form {
            "elf" => "hangguest.elf",
            _ => "hangguest.kdump-zlib",
        })
    }

    fn truth(&self, form: &str) -> Value {
        let p = self.dir.join("peers").join(format!("truth-{form}.json"));
        let text = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("drgn's truth {}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Debian's debug vmlinux the recipe extracted.
    fn vmlinux(&self) -> Option<PathBuf> {
        let d = self.dir.join("kernel/usr/lib/debug/boot");
        std::fs::read_dir(&d)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vmlinux-"))
            })
    }

    pub(crate) fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The guests to test, or `None` (with a message) when there are none
/// outside CI.
pub(crate) fn guests() -> Option<Vec<Guest>> {
    let list = std::env::var("HANGSCOPE_LINUX_GUESTS").unwrap_or_default();
    let dirs: Vec<Guest> = list
        .split(':')
        .filter(|s| !s.is_empty())
        .map(|s| Guest {
            dir: PathBuf::from(s),
        })
        .collect();
    if dirs.is_empty() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must test the real Linux guests: run scripts/linux-guest.sh and set \
             HANGSCOPE_LINUX_GUESTS (scripts/test.sh does both)"
        );
        eprintln!(
            "linux: skipped (no HANGSCOPE_LINUX_GUESTS; run `scripts/linux-guest.sh` to make the \
             guests, or scripts/test.sh)"
        );
        return None;
    }
    for g in &dirs {
        for form in ["elf", "kdump"] {
            assert!(
                g.dump(form).is_file(),
                "{} has no {form} dump",
                g.dir.display()
            );
        }
    }
    Some(dirs)
}

/// `hangscope ARGS --json DUMP` (with `-y` when given), exit 0, empty stderr.
fn json(cmd: &[&str], dump: &Path, vmlinux: Option<&Path>) -> Value {
    let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    args.push("--json".into());
    if let Some(v) = vmlinux {
        args.push("-y".into());
        args.push(v.display().to_string());
    }
    args.push(dump.display().to_string());
    let r: Run = run(&args);
    r.expect(0);
    r.json()
}

/// drgn's `task_state_to_char` letter for hangscope's state name.
fn letter(state: &Value) -> String {
    match state.as_str().unwrap_or("?") {
        "running" => "R",
        "sleeping" => "S",
        "disk_sleep" => "D",
        "stopped" => "T",
        "tracing_stop" => "t",
        "dead" => "X",
        "zombie" => "Z",
        "parked" => "P",
        "idle" => "I",
        _ => "?",
    }
    .into()
}

/// (pid, tgid, comm, state letter, cpu) of every task but the idle tasks
/// (drgn's `for_each_task` does not list pid 0).
fn task_rows(items: &[Value], ours: bool) -> Vec<(i64, i64, String, String, i64)> {
    let mut rows: Vec<_> = items
        .iter()
        .filter(|t| t["pid"].as_i64() != Some(0))
        .map(|t| {
            (
                t["pid"].as_i64().unwrap_or(-1),
                t["tgid"].as_i64().unwrap_or(-1),
                t["comm"].as_str().unwrap_or("").to_string(),
                if ours {
                    letter(&t["state"])
                } else {
                    t["state"].as_str().unwrap_or("").to_string()
                },
                t["cpu"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Every difference between two sorted row lists, for one message.
fn diff<T: std::fmt::Debug + PartialEq + Ord>(what: &str, ours: &[T], drgn: &[T]) -> Vec<String> {
    let mut out = Vec::new();
    for r in ours.iter().filter(|r| !drgn.contains(r)) {
        out.push(format!("{what}: hangscope has {r:?}, drgn does not"));
    }
    for r in drgn.iter().filter(|r| !ours.contains(r)) {
        out.push(format!("{what}: drgn has {r:?}, hangscope does not"));
    }
    out
}

/// Everything issue 11 asks hangscope to agree on with drgn, on one dump
/// with one type source; returns the problems.
fn agree(g: &Guest, form: &str, vmlinux: Option<&Path>) -> Vec<String> {
    let dump = g.dump(form);
    let truth = g.truth(form);
    let source = if vmlinux.is_some() { "vmlinux" } else { "BTF" };
    let at = format!("[{} {form} {source}]", g.name());
    let mut problems = Vec::new();

    let info = json(&["info"], &dump, vmlinux);
    let k = &info["data"]["kernel"];
    if info["data"]["os"] != "linux" {
        problems.push(format!(
            "{at} info: os is {}, not linux",
            info["data"]["os"]
        ));
    }
    if k["release"] != truth["uts_release"] {
        problems.push(format!(
            "{at} info: release {} vs drgn {}",
            k["release"], truth["uts_release"]
        ));
    }
    if k["jiffies"] != truth["jiffies_64"] {
        problems.push(format!(
            "{at} info: jiffies {} vs drgn {}",
            k["jiffies"], truth["jiffies_64"]
        ));
    }
    if k["types_source"].is_null() {
        problems.push(format!("{at} info: no type source: {}", k["types_error"]));
    }

    let threads = json(&["threads"], &dump, vmlinux);
    let ours = task_rows(threads["data"]["items"].as_array().unwrap_or(&vec![]), true);
    let drgn = task_rows(truth["tasks"].as_array().unwrap_or(&vec![]), false);
    for p in diff("task (pid, tgid, comm, state, cpu)", &ours, &drgn) {
        problems.push(format!("{at} {p}"));
    }
    if let Some(w) = threads["data"]["warnings"]
        .as_array()
        .filter(|w| !w.is_empty())
    {
        problems.push(format!("{at} threads: warnings on a clean dump: {w:?}"));
    }

    let ps = json(&["ps"], &dump, vmlinux);
    let mut leaders: Vec<i64> = ps["data"]["items"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .filter_map(|t| t["pid"].as_i64())
        .filter(|p| *p != 0)
        .collect();
    leaders.sort();
    let mut drgn_leaders: Vec<i64> = truth["tasks"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .filter(|t| t["pid"] == t["tgid"])
        .filter_map(|t| t["pid"].as_i64())
        .collect();
    drgn_leaders.sort();
    if leaders != drgn_leaders {
        problems.push(format!(
            "{at} ps: processes {leaders:?} vs drgn {drgn_leaders:?}"
        ));
    }

    let lm = json(&["lm"], &dump, vmlinux);
    let mut ours: Vec<(String, String)> = lm["data"]["items"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["base"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    ours.sort();
    let mut drgn: Vec<(String, String)> = truth["modules"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["regions"][0][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    drgn.sort();
    for p in diff("module (name, base)", &ours, &drgn) {
        problems.push(format!("{at} {p}"));
    }

    let tail = 60usize;
    let dmesg = json(&["dmesg", "--tail", &tail.to_string()], &dump, vmlinux);
    let ours: Vec<(u64, u64, String)> = dmesg["data"]["items"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|r| {
            (
                r["seq"].as_u64().unwrap_or(u64::MAX),
                r["ts_ns"].as_u64().unwrap_or(u64::MAX),
                r["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let all = truth["dmesg"].as_array().cloned().unwrap_or_default();
    let drgn: Vec<(u64, u64, String)> = all[all.len().saturating_sub(tail)..]
        .iter()
        .map(|r| {
            (
                r["seq"].as_u64().unwrap_or(u64::MAX),
                r["timestamp_ns"].as_u64().unwrap_or(u64::MAX),
                r["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    if ours != drgn {
        let first = ours.iter().zip(&drgn).position(|(a, b)| a != b);
        problems.push(format!(
            "{at} dmesg: the last {tail} records differ from drgn's ({} vs {} records; first \
             difference at {first:?}: {:?} vs {:?})",
            ours.len(),
            drgn.len(),
            first.and_then(|i| ours.get(i)),
            first.and_then(|i| drgn.get(i)),
        ));
    }
    problems
}

#[test]
fn tasks_modules_and_dmesg_agree_with_drgn_from_btf_in_the_dump() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    for g in &guests {
        for form in ["elf", "kdump"] {
            problems.extend(agree(g, form, None));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn tasks_modules_and_dmesg_agree_with_drgn_from_the_debug_vmlinux() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    for g in &guests {
        let Some(v) = g.vmlinux() else {
            problems.push(format!("{}: no debug vmlinux extracted", g.dir.display()));
            continue;
        };
        for form in ["elf", "kdump"] {
            problems.extend(agree(g, form, Some(&v)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The same answers from either type source: every listing's JSON is
/// identical (info names its source, and is left out).
#[test]
fn btf_in_the_dump_and_the_debug_vmlinux_give_identical_answers() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    for g in &guests {
        let Some(v) = g.vmlinux() else { continue };
        let dump = g.dump("elf");
        for cmd in [&["ps"][..], &["threads"], &["lm"], &["dmesg"]] {
            let btf = json(cmd, &dump, None);
            let dwarf = json(cmd, &dump, Some(&v));
            if btf != dwarf {
                problems.push(format!(
                    "[{}] {}: BTF and vmlinux answers differ",
                    g.name(),
                    cmd.join(" ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A flattened kdump file (what `virsh dump --format kdump-zlib` writes:
/// a `makedumpfile` header, then big-endian `(offset, size)` records) made
/// plain, as `makedumpfile -R` would: each record's bytes at its offset.
pub(crate) fn unflatten(flat: &Path, out: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let d = std::fs::read(flat).unwrap();
    assert!(
        d.starts_with(b"makedumpfile"),
        "{} is not flattened",
        flat.display()
    );
    let mut f = std::fs::File::create(out).unwrap();
    let mut at = 4096usize; // the header block
    while at + 16 <= d.len() {
        let offset = i64::from_be_bytes(d[at..at + 8].try_into().unwrap());
        let size = i64::from_be_bytes(d[at + 8..at + 16].try_into().unwrap());
        at += 16;
        if offset < 0 || size <= 0 {
            break; // the end marker
        }
        let end = at + size as usize;
        assert!(end <= d.len(), "record past the end of {}", flat.display());
        f.seek(SeekFrom::Start(offset as u64)).unwrap();
        f.write_all(&d[at..end]).unwrap();
        at = end;
    }
}

/// The same kernel, tasks and log from a plain kdump file as from the
/// flattened one virsh wrote.
#[test]
fn plain_and_flattened_kdump_read_alike() {
    let Some(guests) = guests() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for g in &guests {
        let flat = g.dump("kdump");
        let plain = tmp.path().join(format!("{}.kdump", g.name()));
        unflatten(&flat, &plain);
        for cmd in [&["threads"][..], &["lm"], &["dmesg", "--tail", "20"]] {
            let a = json(cmd, &flat, None);
            let b = json(cmd, &plain, None);
            assert_eq!(
                a,
                b,
                "[{}] {}: plain and flattened differ",
                g.name(),
                cmd.join(" ")
            );
        }
        let info = json(&["info"], &plain, None);
        assert_eq!(info["data"]["os"], "linux", "[{}] plain kdump", g.name());
    }
}

/// A raw image of the guest's physical memory (no notes, no registers, no
/// VMCOREINFO): hangscope must still find a Linux kernel, from the memory
/// alone, and list the same tasks as from the ELF core.
#[test]
fn a_raw_image_without_vmcoreinfo_is_recognised_as_linux() {
    use std::io::{Seek, SeekFrom, Write};
    let Some(guests) = guests() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for g in &guests {
        let elf = hangscope_dump::Dump::open(&g.dump("elf")).unwrap();
        let raw = tmp.path().join(format!("{}.raw", g.name()));
        let mut f = std::fs::File::create(&raw).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        for r in elf.memory.ranges() {
            let mut done = 0u64;
            while done < r.len {
                let n = (r.len - done).min(buf.len() as u64) as usize;
                let at = hangscope_dump::PhysAddr(r.start.0 + done);
                elf.memory.read(at, &mut buf[..n]).unwrap();
                f.seek(SeekFrom::Start(at.0)).unwrap();
                f.write_all(&buf[..n]).unwrap();
                done += n as u64;
            }
        }
        drop(f);
        let info = json(&["info"], &raw, None);
        assert_eq!(info["data"]["os"], "linux", "[{}] raw", g.name());
        assert_eq!(
            info["data"]["kernel"]["vmcoreinfo"],
            false,
            "[{}] raw",
            g.name()
        );
        let from_raw = json(&["threads"], &raw, None);
        let from_elf = json(&["threads"], &g.dump("elf"), None);
        let rows = |v: &Value| task_rows(v["data"]["items"].as_array().unwrap_or(&vec![]), true);
        assert_eq!(
            rows(&from_raw),
            rows(&from_elf),
            "[{}] raw vs ELF tasks",
            g.name()
        );
        let _ = std::fs::remove_file(&raw);
    }
}

/// `dt task_struct ADDR` names each field with its C type and reads pid,
/// comm and state as drgn does; `dq` and `db` read the same bytes.
#[test]
fn dt_and_dq_read_a_task_as_drgn_does() {
    let Some(guests) = guests() else { return };
    for g in &guests {
        let dump = g.dump("elf");
        let truth = g.truth("elf");
        let t = truth["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["comm"] == "hang_ab")
            .expect("hang_ab in drgn's truth");
        let addr = t["address"].as_str().unwrap();
        let d = dump.display().to_string();
        let ok_json = |args: &[&str]| -> Value {
            let r = run(args);
            r.expect(0);
            r.json()
        };
        let dt = ok_json(&["--json", "dt", &d, "task_struct", addr]);
        let field = |name: &str| {
            dt["data"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("[{}] no field {name} in dt", g.name()))
        };
        assert_eq!(field("pid")["value"], t["pid"], "[{}] dt pid", g.name());
        assert_eq!(field("pid")["type_name"], "int", "[{}]", g.name());
        assert_eq!(
            field("comm")["text"],
            "\"hang_ab\"",
            "[{}] dt comm",
            g.name()
        );
        assert_eq!(
            field("tasks")["type_name"],
            "struct list_head",
            "[{}]",
            g.name()
        );
        let text = run(["dt", &d, "struct task_struct", addr]);
        text.expect(0);
        assert!(
            text.stdout.starts_with("struct task_struct @ "),
            "{}",
            text.stdout
        );
        let dq = ok_json(&["--json", "dq", &d, addr, "-l", "16"]);
        let db = ok_json(&["--json", "db", &d, addr, "-l", "16"]);
        assert_eq!(dq["data"]["bytes"], db["data"]["bytes"], "[{}]", g.name());
        assert!(
            dq["data"]["bytes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b.is_u64()),
            "[{}] a task's first bytes are readable",
            g.name()
        );
    }
}

/// `stacks` and `running` on Linux: the ABBA kthreads' stacks name the
/// module's function with its module, every CPU is listed with what it
/// does, and the text groups identical stacks. Each stack's frames are
/// compared with drgn's in crates/linux/tests/real_guest/stacks.rs.
#[test]
fn stacks_and_running_on_the_real_guests() {
    let Some(guests) = guests() else { return };
    for g in &guests {
        for form in ["elf", "kdump"] {
            let dump = g.dump(form);
            let v = json(&["stacks", "--filter", "hang_ab"], &dump, None);
            assert_eq!(v["type"], "linux_stacks", "{v}");
            let items = v["data"]["items"].as_array().unwrap();
            assert_eq!(items.len(), 1, "{v}");
            let frames = items[0]["frames"].as_array().unwrap();
            assert!(
                frames
                    .iter()
                    .any(|f| f["function"] == "hangdemo_ab" && f["module"] == "hangdemo"),
                "{v}"
            );
            assert_eq!(items[0]["end"], "end_of_stack", "{v}");
            let v = json(&["running"], &dump, None);
            assert_eq!(v["type"], "linux_running", "{v}");
            let cpus = v["data"]["items"].as_array().unwrap();
            assert!(!cpus.is_empty(), "{v}");
            for c in cpus {
                assert!(c["mode"].is_string(), "{c}");
                if c["mode"] != "user" {
                    assert!(!c["frames"].as_array().unwrap().is_empty(), "{c}");
                }
            }
            let r = run([
                "stacks".to_string(),
                "--filter".into(),
                "hangdemo".into(),
                dump.display().to_string(),
            ]);
            r.expect(0);
            assert!(r.stdout.contains("hangdemo_ab+0x"), "{}", r.stdout);
            assert!(r.stdout.contains(" [hangdemo]"), "{}", r.stdout);
        }
    }
}

/// Issue 12 on the command line: `analyze` says DEADLOCK (exit 4) with
/// two cycles and cites the hung-task reports; `locks --json` lists every
/// lock drgn found, with its owner.
#[test]
fn issue_12_analyze_is_deadlock_and_locks_match_drgn() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    for g in &guests {
        for form in ["elf", "kdump"] {
            let at = format!("[{} {form}]", g.name());
            let dump = g.dump(form);
            let r: Run = run(&[
                "analyze".into(),
                "--json".into(),
                dump.display().to_string(),
            ]);
            r.expect(4);
            let v = r.json();
            if v["stats"]["cycles"] != 2 {
                problems.push(format!("{at} cycles {}", v["stats"]["cycles"]));
            }
            let notes = v["linux_notes"].to_string();
            if !notes.contains("blocked for more than") || !notes.contains("vfork child") {
                problems.push(format!("{at} notes {notes}"));
            }
            let locks = json(&["locks"], &dump, None);
            let items = locks["data"]["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            // drgn's own document (the truth file has no locks).
            let p = g.dir.join("peers").join(format!("drgn-{form}.json"));
            let truth: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            for (addr, l) in truth["locks"].as_object().into_iter().flatten() {
                let ours = items.iter().find(|x| x["address"] == *addr);
                let owner = ours.map(|x| x["owners"][0]["task"].clone());
                if owner.as_ref() != Some(&l["owner"]["task"]) {
                    problems.push(format!("{at} lock {addr}: owner {owner:?}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The chain steps of one kind.
fn steps<'a>(chain: &'a [Value], kind: &str) -> Vec<&'a Value> {
    chain.iter().filter(|s| s["step"] == kind).collect()
}

/// Issue 12, must-show 4 on the command line: on every guest with the
/// flood dumps (`scripts/linux-guest.sh` makes them on 6.1 and 6.12),
/// `analyze` says BUSY OWNER (exit 1) with the reader drgn finds on a CPU
/// inside the directory walk as the final owner, the hot directory and its
/// file count from the dcache equal to drgn's, and the processes holding
/// its files (the creators) with drgn's counts; `locks --json` has drgn's
/// waiters. With `CI=true` no flood guest at all fails.
#[test]
fn issue_12_flood_is_busy_owner_on_the_hot_directory() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    let mut checked = 0;
    for g in &guests {
        for (form, file) in [("elf", "flood.elf"), ("kdump", "flood.kdump-zlib")] {
            let dump = g.dir.join("dumps").join(file);
            if !dump.is_file() {
                continue;
            }
            checked += 1;
            let at = format!("[{} flood {form}]", g.name());
            let p = g.dir.join("peers").join(format!("flood-{form}.json"));
            let truth: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let dir = truth["dir"].as_str().unwrap();
            let files = truth["positive_children"].as_u64().unwrap();
            let on_cpu: Vec<String> = truth["cpus"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| {
                    truth["holders_on_cpu"]
                        .as_array()
                        .unwrap()
                        .contains(&c["pid"])
                })
                .map(|c| c["task"].as_str().unwrap().to_string())
                .collect();
            let r: Run = run(&[
                "analyze".into(),
                "--json".into(),
                dump.display().to_string(),
            ]);
            r.expect(1);
            let v = r.json();
            if v["overall"] != "busy_owner" {
                problems.push(format!("{at} overall {}", v["overall"]));
            }
            let f = &v["findings"][0];
            if f["kind"] != "busy_owner" {
                problems.push(format!("{at} first finding {}", f["kind"]));
            }
            let owner = f["final_owner"].as_str().unwrap_or("").to_string();
            if !on_cpu.contains(&owner) {
                problems.push(format!(
                    "{at} final owner {owner}, drgn's readers on a CPU {on_cpu:?}"
                ));
            }
            let chain = f["chain"].as_array().cloned().unwrap_or_default();
            match steps(&chain, "directory").first() {
                Some(d) if d["path"] == dir && d["files"] == files && d["hot"] == true => {}
                other => {
                    problems.push(format!("{at} directory step {other:?}, drgn {dir} {files}"))
                }
            }
            let want = &truth["file_holders"];
            let procs = steps(&chain, "process");
            if procs.is_empty() {
                problems.push(format!("{at} no process step"));
            }
            for s in procs {
                let pid = s["pid"].as_u64().unwrap_or(0).to_string();
                if s["name"] != "php-cgi" || s["files"] != want[&pid]["files"] {
                    problems.push(format!("{at} process step {s} vs drgn {}", want[&pid]));
                }
            }
            let hot = &v["hot_directories"][0];
            if hot["path"] != dir || hot["files"] != files {
                problems.push(format!(
                    "{at} hot directory {} {}",
                    hot["path"], hot["files"]
                ));
            }
            let holders: Vec<(String, u64)> = hot["holders"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| (h["pid"].to_string(), h["files"].as_u64().unwrap_or(0)))
                .collect();
            let mut drgn_holders: Vec<(String, u64)> = want
                .as_object()
                .unwrap()
                .iter()
                .map(|(p, h)| (p.clone(), h["files"].as_u64().unwrap()))
                .collect();
            drgn_holders.sort();
            let mut sorted = holders.clone();
            sorted.sort();
            if sorted != drgn_holders {
                problems.push(format!("{at} holders {holders:?} vs drgn {drgn_holders:?}"));
            }
            let notes = v["linux_notes"].to_string();
            for needle in ["inferred from the CPUs' stacks", "files in the dcache"] {
                if !notes.contains(needle) {
                    problems.push(format!("{at} notes lack `{needle}`: {notes}"));
                }
            }
            let creating = truth["lock"]["waiters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| {
                    w["stack"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f == "path_openat")
                });
            if creating && !notes.contains("creating files: php-cgi") {
                problems.push(format!("{at} the creators are not named: {notes}"));
            }
            let locks = json(&["locks"], &dump, None);
            let lock = locks["data"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["address"] == truth["lock"]["address"]);
            let ours: Vec<Value> = lock
                .map(|l| {
                    l["waiters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|w| w["pid"].clone())
                        .collect()
                })
                .unwrap_or_default();
            let theirs: Vec<Value> = truth["lock"]["waiters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["pid"].clone())
                .collect();
            if ours != theirs {
                problems.push(format!("{at} waiters {ours:?} vs drgn {theirs:?}"));
            }
            let text = run(&["analyze".into(), dump.display().to_string()]);
            text.expect(1);
            for needle in [
                "BUSY OWNER",
                "files in the dcache (hot)",
                "getdents64 (iterate_dir",
                "readers inferred from the CPUs' stacks): held shared",
            ] {
                if !text.stdout.contains(needle) {
                    problems.push(format!("{at} analyze text lacks `{needle}`"));
                }
            }
        }
    }
    if checked == 0 {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must test the flood guests: scripts/linux-guest.sh makes dumps/flood.* on 6.1 and 6.12"
        );
        eprintln!("linux flood: skipped (no guest in HANGSCOPE_LINUX_GUESTS has dumps/flood.elf)");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Issue 12, must-show 2: the waits with no mutex-style waiter record, on
/// every guest with the waits dumps (`scripts/linux-guest.sh` makes them on
/// 6.1 and 6.12 from waitdemo.c), ELF and kdump-zlib, against drgn's
/// walk of the same objects from waitdemo's symbols
/// (`peers/waits-{elf,kdump}.json`, `scripts/linux-guest/waits_truth.py`):
/// `locks --json` finds the rt_mutex (owner word, owner, waiters from its
/// rbtree), the completion (`done`, waiter), the wait queue, the locked
/// page (folio, flags, its file, waiter in the hashed `folio_wait_table`)
/// and the locked buffer_head (state, waiter in `bit_wait_table`), each
/// named by waitdemo's symbol where static, each waiter's time off the CPU
/// exactly drgn's; `analyze` is STUCK I/O (exit 3) with the page and the
/// buffer as I/O waits, the wait queue as an unexplained long wait, the
/// rt_mutex chain ending on the completion nobody owns, and no deadlock;
/// `thread` says there is no owner to follow. With `CI=true` no waits
/// guest at all fails.
#[test]
fn issue_12_waits_without_owner_records_agree_with_drgn() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    let mut checked = 0;
    for g in &guests {
        for (form, file) in [("elf", "waits.elf"), ("kdump", "waits.kdump-zlib")] {
            let dump = g.dir.join("dumps").join(file);
            if !dump.is_file() {
                continue;
            }
            checked += 1;
            let at = format!("[{} waits {form}]", g.name());
            let p = g.dir.join("peers").join(format!("waits-{form}.json"));
            let truth: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let locks = json(&["locks"], &dump, None);
            let items = locks["data"]["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let find = |kind: &str| items.iter().find(|x| x["kind"] == kind).cloned();
            let hex = |v: &Value| {
                v.as_str()
                    .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            };
            let pids = |l: &Value| -> Vec<i64> {
                l["waiters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|w| w["pid"].as_i64())
                    .collect()
            };
            let truth_pids = |v: &Value| -> Vec<i64> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|w| w.as_i64().or_else(|| w["pid"].as_i64()))
                    .collect()
            };
            // (kind, truth key, address field in the truth, symbol)
            for (kind, key, addr_key, symbol) in [
                ("rt_mutex", "rt_mutex", "address", Some("waitdemo_rt")),
                ("completion", "completion", "address", Some("waitdemo_done")),
                ("wait_queue", "wait_queue", "address", Some("waitdemo_wq")),
                ("page", "page", "folio", None),
                ("buffer", "buffer", "address", None),
            ] {
                let t = &truth[key];
                let Some(ours) = find(kind) else {
                    problems.push(format!("{at} locks has no {kind}"));
                    continue;
                };
                if ours["address"] != t[addr_key] {
                    problems.push(format!(
                        "{at} {kind}: address {} (drgn {})",
                        ours["address"], t[addr_key]
                    ));
                }
                if let Some(sym) = symbol {
                    if ours["symbol"] != sym {
                        problems.push(format!("{at} {kind}: symbol {}", ours["symbol"]));
                    }
                }
                let want = truth_pids(&t["waiters"]);
                if pids(&ours) != want || want.is_empty() {
                    problems.push(format!(
                        "{at} {kind}: waiters {:?} (drgn {want:?})",
                        pids(&ours)
                    ));
                }
                if kind != "rt_mutex"
                    && (!ours["owners"].as_array().is_some_and(|o| o.is_empty())
                        || !ours["owner_note"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("no owner recorded")))
                {
                    problems.push(format!("{at} {kind}: owners {}", ours["owners"]));
                }
                // Each waiter's time off the CPU: drgn's runqueue clock
                // minus its last arrival, in the same dump.
                for w in ours["waiters"].as_array().into_iter().flatten() {
                    let comm = w["comm"].as_str().unwrap_or("");
                    let tt = &truth["tasks"][comm];
                    let want = tt["rq_clock_ns"]
                        .as_u64()
                        .zip(tt["last_arrival_ns"].as_u64())
                        .map(|(c, a)| c.saturating_sub(a));
                    if w["since_last_arrival_ns"].as_u64() != want || want.is_none() {
                        problems.push(format!(
                            "{at} {kind} waiter {comm}: off CPU {} ns (drgn {want:?})",
                            w["since_last_arrival_ns"]
                        ));
                    }
                    if w["task"] != tt["address"] {
                        problems.push(format!("{at} {kind} waiter {comm}: task {}", w["task"]));
                    }
                }
            }
            if let Some(rt) = find("rt_mutex") {
                let t = &truth["rt_mutex"];
                if rt["owner_raw"].as_u64() != hex(&t["owner_word"])
                    || rt["owners"][0]["pid"].as_i64() != t["owner_pid"].as_i64()
                {
                    problems.push(format!(
                        "{at} rt_mutex: owner {} word {} (drgn {} {})",
                        rt["owners"][0]["pid"], rt["owner_raw"], t["owner_pid"], t["owner_word"]
                    ));
                }
            }
            if let Some(c) = find("completion") {
                if c["count_raw"] != truth["completion"]["done"] {
                    problems.push(format!("{at} completion: done {}", c["count_raw"]));
                }
            }
            if let Some(pg) = find("page") {
                let t = &truth["page"];
                let protects = pg["protects"].as_str().unwrap_or("");
                let path = t["path"].as_str().unwrap_or("?");
                if pg["count_raw"].as_u64() != hex(&t["flags"])
                    || !protects.contains("PG_locked")
                    || !protects.contains(&format!("/{}", path.trim_start_matches('/')))
                    || !protects.contains(&format!("index {}", t["index"]))
                    || pg["io"]["device"] != "tmpfs"
                {
                    problems.push(format!(
                        "{at} page: {} flags {} io {} (drgn {path} index {} flags {})",
                        protects, pg["count_raw"], pg["io"], t["index"], t["flags"]
                    ));
                }
            }
            if let Some(bh) = find("buffer") {
                let t = &truth["buffer"];
                let protects = bh["protects"].as_str().unwrap_or("");
                if bh["count_raw"].as_u64() != hex(&t["state"]) || !protects.contains("BH_Lock") {
                    problems.push(format!(
                        "{at} buffer: {protects} state {} (drgn {})",
                        bh["count_raw"], t["state"]
                    ));
                }
            }
            // The verdict.
            let r: Run = run(&[
                "analyze".into(),
                "--json".into(),
                dump.display().to_string(),
            ]);
            r.expect(3);
            let v = r.json();
            let findings = v["findings"].as_array().cloned().unwrap_or_default();
            let kinds: Vec<&str> = findings.iter().filter_map(|f| f["kind"].as_str()).collect();
            if v["stats"]["cycles"] != 0 || kinds.contains(&"deadlock") {
                problems.push(format!("{at} a deadlock among no-owner waits: {kinds:?}"));
            }
            let stuck: Vec<Value> = findings
                .iter()
                .filter(|f| f["kind"] == "stuck_io")
                .map(|f| f["stuck_io"]["irps"][0].clone())
                .collect();
            for (key, addr_key) in [("page", "folio"), ("buffer", "address")] {
                if !stuck.contains(&truth[key][addr_key]) {
                    problems.push(format!("{at} no stuck I/O on the {key}: {stuck:?}"));
                }
            }
            let unexplained: Vec<Value> = findings
                .iter()
                .filter(|f| f["kind"] == "unexplained")
                .flat_map(|f| {
                    f["unexplained_objects"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .map(|o| o["address"].clone())
                .collect();
            if !unexplained.contains(&truth["wait_queue"]["address"]) {
                problems.push(format!(
                    "{at} the wait queue is not unexplained: {unexplained:?}"
                ));
            }
            let rt_chain = findings.iter().find(|f| {
                f["chain"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|s| s["address"] == truth["rt_mutex"]["address"])
                })
            });
            let ends_on_completion = rt_chain.is_some_and(|f| {
                f["chain"]
                    .as_array()
                    .and_then(|c| c.last())
                    .is_some_and(|s| s["address"] == truth["completion"]["address"])
            });
            if !ends_on_completion {
                problems.push(format!(
                    "{at} the rt_mutex chain does not end on the completion: {:?}",
                    rt_chain.map(|f| f["chain"].to_string())
                ));
            }
            // `thread` on the page waiter: no owner to follow.
            let pid = truth["tasks"]["wd_pg_waiter"]["pid"].to_string();
            let text = run(&["thread".into(), dump.display().to_string(), pid]);
            text.expect(0);
            for needle in [
                "waits on page",
                "PG_locked",
                "no owner recorded",
                "no owner to follow",
            ] {
                if !text.stdout.contains(needle) {
                    problems.push(format!("{at} thread wd_pg_waiter lacks `{needle}`"));
                }
            }
            let pid = truth["tasks"]["wd_rt_waiter"]["pid"].to_string();
            let text = run(&["thread".into(), dump.display().to_string(), pid]);
            text.expect(0);
            for needle in [
                "waits on rt_mutex",
                "waitdemo_rt",
                "owner: pid",
                "(wd_rt_holder)",
            ] {
                if !text.stdout.contains(needle) {
                    problems.push(format!("{at} thread wd_rt_waiter lacks `{needle}`"));
                }
            }
        }
    }
    if checked == 0 {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must test the waits guests: scripts/linux-guest.sh makes dumps/waits.* on 6.1 and 6.12"
        );
        eprintln!("linux waits: skipped (no guest in HANGSCOPE_LINUX_GUESTS has dumps/waits.elf)");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The verdict's evidence on Linux carries each task's kernel frames (from
/// the ORC unwinder), in the JSON chain and in the text, as on Windows:
/// every thread in a deadlock chain shows where it sleeps.
#[test]
fn linux_analyze_evidence_shows_each_tasks_frames() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    for g in &guests {
        for form in ["elf", "kdump"] {
            let at = format!("[{} {form}]", g.name());
            let dump = g.dump(form);
            let r: Run = run(&[
                "analyze".into(),
                "--json".into(),
                dump.display().to_string(),
            ]);
            r.expect(4);
            let v = r.json();
            for f in v["findings"].as_array().into_iter().flatten() {
                for step in f["chain"].as_array().into_iter().flatten() {
                    if step["step"] != "thread" {
                        continue;
                    }
                    let frames: Vec<&str> = step["stack"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str())
                        .collect();
                    // A sleeping task's walk starts in the scheduler.
                    if !frames.first().is_some_and(|x| x.contains("__schedule+0x")) {
                        problems.push(format!("{at} thread {}: frames {frames:?}", step["tid"]));
                    }
                }
            }
            let text = run(["analyze".to_string(), dump.display().to_string()]);
            text.expect(4);
            for want in ["!__mutex_lock", "!handle_userfault+0x"] {
                if !text.stdout.contains(want) {
                    problems.push(format!("{at} the text has no frame {want}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// drgn's view of every task's open files, run on the dump now: one line
/// `PID FD PATH` per descriptor (`for_each_file`, `d_path`).
fn drgn_files(g: &Guest, form: &str) -> Option<Vec<(i64, i64, String)>> {
    let drgn = g.dir.join("venv/bin/drgn");
    let vmlinux = g.vmlinux()?;
    if !drgn.is_file() {
        return None;
    }
    let script = tempfile::Builder::new().suffix(".py").tempfile().ok()?;
    std::fs::write(
        script.path(),
        "from drgn.helpers.linux.pid import for_each_task\n\
         from drgn.helpers.linux.fs import for_each_file, d_path\n\
         for t in for_each_task(prog):\n\
         \x20   try:\n\
         \x20       files = list(for_each_file(t))\n\
         \x20   except Exception:\n\
         \x20       continue\n\
         \x20   for fd, f in files:\n\
         \x20       try:\n\
         \x20           p = d_path(f.f_path).decode()\n\
         \x20       except Exception:\n\
         \x20           p = '?'\n\
         \x20       print(int(t.pid), fd, p)\n",
    )
    .ok()?;
    let mut cmd = std::process::Command::new(drgn);
    cmd.arg("-q").arg("-c").arg(g.dump(form));
    if form == "kdump" {
        cmd.args(["--architecture", "x86_64"]);
    }
    let out = cmd
        .arg("-s")
        .arg(vmlinux)
        .arg(script.path())
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "drgn: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut w = l.splitn(3, ' ');
                Some((
                    w.next()?.parse().ok()?,
                    w.next()?.parse().ok()?,
                    w.next()?.to_string(),
                ))
            })
            .collect(),
    )
}

/// `files` on the real guests: every task's descriptors and their paths
/// equal drgn's (`for_each_file`, `d_path`) where drgn names a path; with
/// `--path /run/hang` the journal's holders are uffd-writer and the six
/// tees, the processes drgn finds holding it; `--pid` narrows to one
/// table.
#[test]
fn linux_files_agree_with_drgn() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    for g in &guests {
        for form in ["elf", "kdump"] {
            let at = format!("[{} {form}]", g.name());
            let dump = g.dump(form);
            let v = json(&["files"], &dump, None);
            assert_eq!(v["type"], "linux_files", "{v}");
            let mut ours: Vec<(i64, i64, String)> = Vec::new();
            for t in v["data"]["tables"].as_array().into_iter().flatten() {
                for pid in t["pids"].as_array().into_iter().flatten() {
                    for fd in t["fds"].as_array().into_iter().flatten() {
                        ours.push((
                            pid.as_i64().unwrap(),
                            fd["fd"].as_i64().unwrap(),
                            fd["path"].as_str().unwrap_or("?").to_string(),
                        ));
                    }
                }
            }
            // Pid 0 is every CPU's idle task: drgn lists one, we list all.
            ours.retain(|x| x.0 != 0);
            ours.sort();
            let Some(mut drgn) = drgn_files(g, form) else {
                eprintln!("{at}: no drgn or vmlinux, files not compared");
                continue;
            };
            drgn.retain(|x| x.0 != 0);
            drgn.sort();
            let key = |v: &[(i64, i64, String)]| -> Vec<(i64, i64)> {
                v.iter().map(|x| (x.0, x.1)).collect()
            };
            problems.extend(diff(&format!("{at} descriptors"), &key(&ours), &key(&drgn)));
            // Paths where drgn's d_path gives one (pipes and anonymous
            // inodes are named by their file system's d_dname, which
            // drgn's helper does not run).
            for (pid, fd, path) in drgn.iter().filter(|x| x.2.starts_with('/')) {
                let mine = ours.iter().find(|x| x.0 == *pid && x.1 == *fd);
                if mine.map(|x| &x.2) != Some(path) {
                    problems.push(format!("{at} pid {pid} fd {fd}: {mine:?}, drgn {path}"));
                }
            }
            let journal: Vec<i64> = drgn
                .iter()
                .filter(|x| x.2 == "/run/hang/journal.log")
                .map(|x| x.0)
                .collect();
            let v = json(&["files", "--path", "/run/hang"], &dump, None);
            let holders: Vec<(String, i64)> = v["data"]["holders"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    (
                        h["comm"].as_str().unwrap().to_string(),
                        h["tgid"].as_i64().unwrap(),
                    )
                })
                .collect();
            let comms: Vec<&str> = holders.iter().map(|h| h.0.as_str()).collect();
            if comms.iter().filter(|c| **c == "tee").count() != 6
                || !comms.contains(&"uffd-writer")
                || holders.iter().any(|h| !journal.contains(&h.1))
            {
                problems.push(format!(
                    "{at} journal holders {holders:?}, drgn {journal:?}"
                ));
            }
            let writer = holders.iter().find(|h| h.0 == "uffd-writer").map(|h| h.1);
            if let Some(w) = writer {
                let v = json(&["files", "--pid", &w.to_string()], &dump, None);
                let tables = v["data"]["tables"].as_array().cloned().unwrap_or_default();
                let paths = v["data"]["tables"][0]["fds"].to_string();
                if tables.len() != 1 || !paths.contains("anon_inode:[userfaultfd]") {
                    problems.push(format!("{at} files --pid {w}: {v}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `hangscope thread --json DUMP WHICH`, exit 0.
fn thread_json(dump: &Path, which: &str) -> Value {
    let r: Run = run([
        "thread".to_string(),
        "--json".into(),
        dump.display().to_string(),
        which.to_string(),
    ]);
    r.expect(0);
    r.json()
}

/// `thread PID` on the real guests: for every task drgn finds blocked on
/// a lock (from its frames' variables), the lock we name is drgn's, its
/// owner is drgn's owner, the hung-task detector's time agrees, and the
/// owners' activity is given; `thread ADDR` is the same task; the vfork
/// parent carries its note.
#[test]
fn linux_thread_agrees_with_drgn() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    for g in &guests {
        for form in ["elf", "kdump"] {
            let at = format!("[{} {form}]", g.name());
            let dump = g.dump(form);
            let p = g.dir.join("peers").join(format!("drgn-{form}.json"));
            let truth: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            for t in truth["D_tasks"].as_array().into_iter().flatten() {
                let Some(lock) = t["blocked_on"]["address"].as_str() else {
                    continue;
                };
                let pid = t["pid"].as_i64().unwrap().to_string();
                let v = thread_json(&dump, &pid);
                assert_eq!(v["type"], "linux_thread", "{v}");
                let d = &v["data"];
                if d["waits_on"]["address"] != lock {
                    problems.push(format!(
                        "{at} pid {pid}: waits on {}, drgn {lock}",
                        d["waits_on"]["address"]
                    ));
                }
                let owner = &truth["locks"][lock]["owner"]["task"];
                if owner.is_string() && d["owners"][0]["task"] != *owner {
                    problems.push(format!(
                        "{at} pid {pid}: owner {}, drgn {owner}",
                        d["owners"][0]["task"]
                    ));
                }
                let (ours, theirs) = (
                    d["hung_task_seen_s"].as_f64(),
                    t["hung_task_seen_s"].as_f64(),
                );
                if let (Some(a), Some(b)) = (ours, theirs) {
                    if (a - b).abs() > 0.01 {
                        problems.push(format!("{at} pid {pid}: hung-task {a}, drgn {b}"));
                    }
                }
                if d["stack"]["frames"].as_array().is_none_or(|f| f.is_empty()) {
                    problems.push(format!("{at} pid {pid}: no stack"));
                }
                let addr = d["task"]["task"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("0x")
                    .to_string();
                let by_addr = thread_json(&dump, &addr);
                if by_addr["data"]["task"]["pid"].as_i64() != t["pid"].as_i64() {
                    problems.push(format!(
                        "{at} thread {addr}: {}",
                        by_addr["data"]["task"]["pid"]
                    ));
                }
            }
            // The two cycles show from either side.
            let tasks = truth["tasks"].as_array().cloned().unwrap_or_default();
            for comm in ["hang_ab", "uffd-handler"] {
                let Some(t) = tasks.iter().find(|t| t["comm"] == comm) else {
                    problems.push(format!("{at} drgn has no {comm}"));
                    continue;
                };
                let r = run([
                    "thread".to_string(),
                    dump.display().to_string(),
                    t["pid"].to_string(),
                ]);
                r.expect(0);
                if !r.stdout.contains("the two wait on each other") {
                    problems.push(format!("{at} thread {comm}:\n{}", r.stdout));
                }
            }
            let parent = tasks
                .iter()
                .find(|t| t["comm"] == "hangtool" && t["state"] == "D")
                .map(|t| t["pid"].to_string());
            match parent {
                Some(p) => {
                    let v = thread_json(&dump, &p);
                    if !v["data"]["notes"].to_string().contains("vfork child") {
                        problems.push(format!("{at} vfork parent {p}: {}", v["data"]["notes"]));
                    }
                }
                None => problems.push(format!("{at} drgn has no hangtool in D")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A Linux thread is named by its own comm in the verdict's evidence, not
/// by its process's: the uffd-writer process's handler thread reads
/// `uffd-handler` in the chain and among the longest waiters, as the
/// kernel's hung-task report names it.
#[test]
fn linux_evidence_names_a_thread_by_its_own_comm() {
    let Some(guests) = guests() else { return };
    let mut problems = Vec::new();
    for g in &guests {
        for form in ["elf", "kdump"] {
            let at = format!("[{} {form}]", g.name());
            let dump = g.dump(form);
            let handler = g.truth(form)["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["comm"] == "uffd-handler")
                .and_then(|t| t["pid"].as_i64());
            let Some(handler) = handler else {
                problems.push(format!("{at}: drgn has no uffd-handler"));
                continue;
            };
            let r: Run = run(&[
                "analyze".into(),
                "--json".into(),
                dump.display().to_string(),
            ]);
            r.expect(4);
            let v = r.json();
            let mut named = Vec::new();
            for f in v["findings"].as_array().into_iter().flatten() {
                let steps = f["chain"].as_array().into_iter().flatten();
                let threads = f["threads"].as_array().into_iter().flatten();
                for s in steps.chain(threads) {
                    if s["tid"].as_i64() == Some(handler) {
                        named.push(s["process"].as_str().unwrap_or("?").to_string());
                    }
                }
            }
            if named.is_empty() || named.iter().any(|n| n != "uffd-handler") {
                problems.push(format!("{at}: tid {handler} named {named:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
