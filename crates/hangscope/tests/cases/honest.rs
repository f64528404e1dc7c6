//! Issue 10: no silent wrong answers, and never touch the dump.
//!
//! Each case damages a lab image where the outside probe found hangscope
//! quiet (a broken process list read as HEALTHY, a deadlock that became
//! STUCK without a word, a dump cut short analysed with no notice) and
//! checks that it now ends one of three ways: the verdict unchanged, a
//! warning that names the damaged address, or a clear error or
//! INCONCLUSIVE (exit 5). Output paths that are the input dump are refused
//! before anything is written, and only files that can be dumps are opened.

use std::path::Path;

use serde_json::Value;

use crate::corrupt::{lab_of, warns_about, Lab};
use crate::util::{self, arr, report};

/// The deadlock scenario on two builds that differ in their wait blocks
/// (Windows 7's circular `NextWaitBlock` chain, Windows 10's array).
const BUILDS: [&str; 2] = ["win7sp1", "win10-19041"];

fn analyze(path: &Path) -> (util::Run, Value) {
    let (r, v) = util::json_cmd("analyze", &[], path);
    r.expect_no_crash();
    (r, v)
}

/// The verdict is never HEALTHY on a damaged hang scenario, and a verdict
/// other than the undamaged one comes with a warning naming `addr` or is
/// INCONCLUSIVE.
fn honest(p: &mut Vec<String>, what: &str, lab: &Lab, v: &Value, addr: u64) {
    let want = lab.truth.verdict.overall.as_str();
    let got = v["overall"].as_str().unwrap_or("?");
    if got == "healthy" {
        p.push(format!("{what}: HEALTHY on a damaged {want} dump"));
    }
    if got != want && got != "inconclusive" && !warns_about(v, addr) {
        p.push(format!(
            "{what}: {want} became {got} with no warning naming {addr:#x}: {}",
            v["warnings"]
        ));
    }
}

#[test]
fn issue_10_self_linked_process_list_is_inconclusive_and_every_listing_warns() {
    let mut p = Vec::new();
    for build in BUILDS {
        let mut lab = lab_of("deadlock", build);
        let head = lab.symbol("PsActiveProcessHead");
        lab.write_virt(head, head);
        lab.write_virt(head + 8, head);
        let dir = tempfile::tempdir().unwrap();
        let path = lab.write_elf(dir.path(), "selfps");
        let (r, v) = analyze(&path);
        if r.code != Some(5) || v["overall"] != "inconclusive" {
            p.push(format!(
                "[{build}] analyze: exit {:?}, overall {}, want 5 inconclusive",
                r.code, v["overall"]
            ));
        }
        let text = util::run(["analyze".as_ref(), path.as_os_str()]);
        if !text
            .stdout
            .starts_with("hangscope verdict: INCONCLUSIVE (exit code 5)")
            || !text.stdout.contains("no process could be read")
        {
            p.push(format!(
                "[{build}] analyze text:\n{}",
                util::head(&text.stdout, 8)
            ));
        }
        for cmd in ["threads", "handles", "stacks"] {
            let (r, v) = util::json_cmd(cmd, &[], &path);
            r.expect_no_crash();
            if !warns_about(&v, head) {
                p.push(format!(
                    "[{build}] {cmd}: no warning names the process list head {head:#x}"
                ));
            }
        }
    }
    report("self-linked PsActiveProcessHead", p);
}

#[test]
fn issue_10_broken_process_link_is_never_healthy() {
    let mut p = Vec::new();
    for build in BUILDS {
        for bad in [0u64, 0x1234_5678_9abc_def0, 0xffff_cafe_0000_1000] {
            let mut lab = lab_of("deadlock", build);
            let apl = lab.off("_EPROCESS", "ActiveProcessLinks");
            let first = lab.truth.processes[0].address;
            lab.write_virt(first + apl, bad);
            let dir = tempfile::tempdir().unwrap();
            let path = lab.write_elf(dir.path(), "badps");
            let (_, v) = analyze(&path);
            honest(&mut p, &format!("[{build}] Flink {bad:#x}"), &lab, &v, bad);
            if v["overall"] == "healthy" || v["incomplete"].as_array().is_none() {
                p.push(format!(
                    "[{build}] Flink {bad:#x}: no incompleteness stated: {}",
                    v["overall"]
                ));
            }
        }
    }
    report("broken ActiveProcessLinks", p);
}

/// The first wait block of a thread in the deadlock's cycle.
fn first_wait_block(lab: &Lab, thread: u64) -> u64 {
    lab.read_virt(thread + lab.off("_ETHREAD", "Tcb") + lab.off("_KTHREAD", "WaitBlockList"))
}

#[test]
fn issue_10_damaged_wait_blocks_and_states_are_named() {
    let mut p = Vec::new();
    for build in BUILDS {
        let base = lab_of("deadlock", build);
        let cycle = base.truth.verdict.findings[0].chain_threads.clone();
        assert!(!cycle.is_empty(), "the deadlock truth names its cycle");
        let victim = cycle[0];
        let wb = first_wait_block(&base, victim);
        let object = lab_of("deadlock", build).off("_KWAIT_BLOCK", "Object");
        let state = base.off("_ETHREAD", "Tcb") + base.off("_KTHREAD", "State");
        type Damage = (&'static str, Box<dyn Fn(&mut Lab)>, u64);
        let cases: Vec<Damage> = vec![
            (
                "wait block points at its own thread",
                Box::new(move |l: &mut Lab| l.write_virt(wb + object, victim)),
                wb,
            ),
            (
                "wait block points at garbage",
                Box::new(move |l: &mut Lab| l.write_virt(wb + object, 0x4141_4141_4141)),
                wb,
            ),
            (
                "KTHREAD.State is 0xff",
                Box::new(move |l: &mut Lab| {
                    let old = l.read_virt(victim + state);
                    l.write_virt(victim + state, (old & !0xff) | 0xff);
                }),
                victim,
            ),
        ];
        for (what, damage, addr) in cases {
            let mut lab = lab_of("deadlock", build);
            damage(&mut lab);
            let dir = tempfile::tempdir().unwrap();
            let path = lab.write_elf(dir.path(), "wb");
            let (_, v) = analyze(&path);
            let label = format!("[{build}] {what}");
            honest(&mut p, &label, &lab, &v, addr);
            if !warns_about(&v, addr) {
                p.push(format!(
                    "{label}: no warning names {addr:#x}: {}",
                    v["warnings"]
                ));
            }
            if v["overall"] == "deadlock" {
                // Still a deadlock: then the finding says it rests on
                // damaged data, and the headline counts it.
                let ev = arr(&v["findings"][0], "evidence_warnings");
                if ev.is_empty() {
                    p.push(format!("{label}: DEADLOCK with no evidence warning"));
                }
                let text = util::run(["analyze".as_ref(), path.as_os_str()]);
                if !text.stdout.contains("in the evidence; exit code 4)") {
                    p.push(format!("{label}: headline {}", util::head(&text.stdout, 1)));
                }
            }
        }
    }
    report("damaged wait blocks and thread states", p);
}

#[test]
fn issue_10_self_linked_resource_list_with_waiters_warns() {
    let mut p = Vec::new();
    for build in BUILDS {
        let mut lab = lab_of("deadlock", build);
        let head = lab.symbol("ExpSystemResourcesList");
        lab.write_virt(head, head);
        lab.write_virt(head + 8, head);
        let dir = tempfile::tempdir().unwrap();
        let path = lab.write_elf(dir.path(), "selfres");
        let (r, v) = util::json_cmd("locks", &[], &path);
        r.expect_no_crash();
        let waits = v["data"]["warnings"].to_string();
        if !waits.contains("belongs to no ERESOURCE on ExpSystemResourcesList") {
            p.push(format!(
                "[{build}] locks: no warning about the unlisted waits: {waits}"
            ));
        }
        let (_, v) = analyze(&path);
        let want = lab.truth.verdict.overall.clone();
        let got = v["overall"].as_str().unwrap_or("?").to_string();
        if got == "healthy" || (got != want && v["incomplete"].as_array().is_none()) {
            p.push(format!(
                "[{build}] analyze: {want} became {got} without saying the lock list is incomplete"
            ));
        }
    }
    report("self-linked ExpSystemResourcesList", p);
}

#[test]
fn issue_10_impossible_clocks_give_no_made_up_waits() {
    let mut p = Vec::new();
    let kuser = 0xffff_f780_0000_0000u64;
    for build in BUILDS {
        let mut lab = lab_of("deadlock", build);
        let tick = lab.off("_KUSER_SHARED_DATA", "TickCount");
        lab.write_virt(kuser + tick, 0);
        lab.write_virt(kuser + tick + 8, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = lab.write_elf(dir.path(), "tick0");
        let (r, v) = util::json_cmd("threads", &[], &path);
        r.expect_no_crash();
        let waited: Vec<f64> = arr(&v["data"], "items")
            .iter()
            .filter_map(|t| t["wait_seconds"].as_f64())
            .collect();
        if !waited.is_empty() {
            p.push(format!(
                "[{build}] tick count 0: wait seconds still given: {waited:?}"
            ));
        }
        if !v["data"]["warnings"]
            .to_string()
            .contains("tick count is 0")
        {
            p.push(format!("[{build}] tick count 0: no warning"));
        }
    }
    report("impossible clocks", p);
}

#[test]
fn issue_10_a_truncated_dump_says_so() {
    let lab = lab_of("deadlock", "win10-19041");
    let dir = tempfile::tempdir().unwrap();
    let path = lab.write_elf(dir.path(), "full");
    let len = std::fs::metadata(&path).unwrap().len();
    let mut p = Vec::new();
    // A shallow cut: the kernel is still found; the notice must come.
    let cut = dir.path().join("cut.elf");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&cut, &bytes[..(len - 4096 * 16) as usize]).unwrap();
    let (r, v) = analyze(&cut);
    if !v["warnings"].to_string().contains("truncated") {
        p.push(format!("analyze: no truncation warning: {}", v["warnings"]));
    }
    let ps = util::run(["ps".as_ref(), cut.as_os_str()]);
    if !ps.stderr.contains("hangscope: warning: dump file:") || !ps.stderr.contains("truncated") {
        p.push(format!("ps: no truncation notice on stderr: {}", ps.stderr));
    }
    let _ = r;
    // A deep cut: no kernel; the error says the dump was cut short.
    let deep = dir.path().join("deep.elf");
    std::fs::write(&deep, &bytes[..(len / 8) as usize]).unwrap();
    let r = util::run(["analyze".as_ref(), deep.as_os_str()]);
    if r.code == Some(2) && !r.stderr.contains("truncated") {
        p.push(format!(
            "deep cut: the error does not say truncated: {}",
            r.stderr
        ));
    }
    report("truncated dump", p);
}

/// Every string in a JSON document, depth first.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(xs) => xs.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Names in a dump are the guest's to choose. Every process is renamed
/// `ESC[2K` (erase the line) then CSI `8m` (hide what follows, as the C1
/// byte 0x9b that `ImageFileName`'s Latin-1 reads as U+009B): the text
/// shows both as escapes, the JSON carries them as `\u` escapes that parse
/// back to the very name, and the verdict is the undamaged one.
#[test]
fn issue_10_names_from_the_dump_cannot_drive_the_terminal() {
    const NAME: [u8; 8] = [0x1b, b'[', b'2', b'K', 0x9b, b'8', b'm', 0];
    let shown = "\\x1b[2K\\x9b8m";
    let parsed = "\u{1b}[2K\u{9b}8m";
    let mut p = Vec::new();
    let mut lab = lab_of("deadlock", "win10-19041");
    let image_name = lab.off("_EPROCESS", "ImageFileName");
    let procs: Vec<u64> = lab.truth.processes.iter().map(|x| x.address).collect();
    for ep in procs {
        lab.write_virt(ep + image_name, u64::from_le_bytes(NAME));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = lab.write_elf(dir.path(), "escnames");
    let active = |s: &str| s.chars().any(|c| c == '\u{1b}' || c == '\u{9b}');
    for cmd in ["analyze", "ps", "threads"] {
        let r = util::run([cmd.as_ref(), path.as_os_str()]);
        r.expect_no_crash();
        if active(&r.stdout) || active(&r.stderr) {
            p.push(format!("{cmd}: a raw ESC or CSI reached the terminal"));
        }
        if !r.stdout.contains(shown) {
            p.push(format!("{cmd}: the name is not shown as {shown}"));
        }
    }
    let (r, v) = analyze(&path);
    if active(&r.stdout) {
        p.push("analyze --json: a raw ESC or CSI in the document".into());
    }
    let mut all = Vec::new();
    strings(&v, &mut all);
    if !all.iter().any(|s| s.contains(parsed)) {
        p.push("analyze --json: no string parses back to the name".into());
    }
    if v["overall"] != lab.truth.verdict.overall.as_str() {
        p.push(format!(
            "the verdict changed with the names: {} (want {})",
            v["overall"],
            lab.truth.verdict.overall.as_str()
        ));
    }
    report("terminal escapes in names", p);
}

#[test]
fn issue_10_outputs_that_are_the_dump_are_refused_and_it_stays_intact() {
    let lab = lab_of("idle", "win10-19041");
    let dir = tempfile::tempdir().unwrap();
    let path = lab.write_elf(dir.path(), "keep");
    let before = std::fs::read(&path).unwrap();
    let hard = dir.path().join("hard.elf");
    std::fs::hard_link(&path, &hard).unwrap();
    let sym = dir.path().join("sym.elf");
    std::os::unix::fs::symlink(&path, &sym).unwrap();
    let mut p = Vec::new();
    for out in [&path, &hard, &sym] {
        for args in [
            vec![
                "analyze".as_ref(),
                path.as_os_str(),
                "--html".as_ref(),
                out.as_os_str(),
            ],
            vec![
                "--log-file".as_ref(),
                out.as_os_str(),
                "ps".as_ref(),
                path.as_os_str(),
            ],
        ] {
            let r = util::run(&args);
            if r.code != Some(2) || !r.stderr.contains("never writes over its input") {
                p.push(format!(
                    "{}: exit {:?}, stderr {}",
                    r.cmdline, r.code, r.stderr
                ));
            }
        }
    }
    if std::fs::read(&path).unwrap() != before {
        p.push("the dump changed".into());
    }
    // A fresh output path is still written.
    let html = dir.path().join("report.html");
    let r = util::run([
        "analyze".as_ref(),
        path.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    r.expect_no_crash();
    if !std::fs::read_to_string(&html)
        .unwrap_or_default()
        .starts_with("<!DOCTYPE html>")
    {
        p.push("--html to a new file wrote no report".into());
    }
    report("outputs over the input", p);
}

#[test]
fn issue_10_only_files_that_can_be_dumps_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Vec::new();
    let fifo = dir.path().join("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo");
    // With no writer, open() of a FIFO would block forever: the run must
    // end by itself (the harness would hang otherwise).
    for (path, want) in [(fifo.as_path(), "FIFO"), (dir.path(), "a directory")] {
        let r = util::run(["ps".as_ref(), path.as_os_str()]);
        if r.code != Some(2) || !r.stderr.contains(want) {
            p.push(format!(
                "{}: exit {:?}, stderr {}",
                r.cmdline, r.code, r.stderr
            ));
        }
    }
    let exe = std::env::current_exe().unwrap();
    let r = util::run(["info".as_ref(), exe.as_os_str()]);
    if r.code != Some(2) || !r.stderr.contains("not a memory dump") {
        p.push(format!(
            "an executable: exit {:?}, stderr {}",
            r.code, r.stderr
        ));
    }
    let core = dir.path().join("process.core");
    std::fs::write(&core, process_core()).unwrap();
    let r = util::run(["info".as_ref(), core.as_os_str()]);
    if r.code != Some(2) || !r.stderr.contains("the core of a process") {
        p.push(format!(
            "a process core: exit {:?}, stderr {}",
            r.code, r.stderr
        ));
    }
    report("files that are no dumps", p);
}

/// The smallest process core: an ELF64 ET_CORE header, one PT_NOTE with a
/// `CORE` NT_PRPSINFO note, as the kernel or gdb write them.
fn process_core() -> Vec<u8> {
    let mut f = vec![0u8; 0x40 + 0x38];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little-endian
    f[6] = 1; // EV_CURRENT
    f[0x10..0x12].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
    f[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes()); // e_phoff
    f[0x34..0x36].copy_from_slice(&0x40u16.to_le_bytes()); // e_ehsize
    f[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes()); // e_phentsize
    f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let mut note = Vec::new();
    note.extend_from_slice(&5u32.to_le_bytes()); // namesz "CORE\0"
    note.extend_from_slice(&8u32.to_le_bytes()); // descsz
    note.extend_from_slice(&3u32.to_le_bytes()); // NT_PRPSINFO
    note.extend_from_slice(b"CORE\0\0\0\0");
    note.extend_from_slice(&[0u8; 8]);
    let off = f.len() as u64;
    let ph = 0x40;
    f[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
    f[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
    f[ph + 0x20..ph + 0x28].copy_from_slice(&(note.len() as u64).to_le_bytes());
    f[ph + 0x28..ph + 0x30].copy_from_slice(&(note.len() as u64).to_le_bytes());
    f.extend_from_slice(&note);
    f
}
