//! CLI behaviour on one fixed image (temp-flood, Windows 10 19041, ELF,
//! seed 2024): text output snapshots (insta, `tests/cases/snapshots/`),
//! exit codes and empty stderr, `schema_version` in every JSON document,
//! errors that name the file or the missing symbols, and a scripted
//! `hangscope shell`.
//!
//! Update snapshots after an intended change of the text output with
//! `INSTA_UPDATE=always cargo test -p hangscope --test tests cli::` (or
//! `cargo insta review`).

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;

use hangscope_lab::format::Format;
use hangscope_lab::image::LabImage;
use hangscope_lab::truth::GroundTruth;

use crate::util::{self, run};

const BUILD: &str = "win10-19041";
const SEED: u64 = 2024;

fn image() -> (LabImage, GroundTruth) {
    util::build(&util::scenario("temp-flood"), BUILD, SEED, 64 << 20)
}

/// The addresses the seed case follows: the final owner, its IRP and the
/// IRP's current file object.
fn seed_case_addresses(t: &GroundTruth) -> (u64, u64, u64) {
    let owner = *t.verdict.findings[0].chain_threads.last().expect("chain");
    let irp = t
        .irps
        .iter()
        .find(|i| i.thread == owner)
        .expect("owner's IRP");
    // The file system's location holds the file object (the volume and
    // disk locations below it have none).
    let cur = irp
        .stack
        .iter()
        .map(|s| s.file_object)
        .find(|f| *f != 0)
        .expect("IRP file object");
    (owner, irp.address, cur)
}

#[test]
fn text_output_snapshots_and_json_documents() {
    let (image, truth) = image();
    let dir = tempfile::tempdir().unwrap();
    let dump = util::write(&image, Format::Elf, dir.path(), "temp-flood");
    let d = dump.to_str().unwrap();
    let (owner, irp, file) = seed_case_addresses(&truth);
    let (owner, irp, file) = (
        format!("{owner:#x}"),
        format!("{irp:#x}"),
        format!("{file:#x}"),
    );
    let cases: Vec<(&str, Vec<&str>, i32)> = vec![
        ("analyze", vec!["analyze", d], 1),
        ("locks", vec!["locks", d], 0),
        ("thread", vec!["thread", d, &owner], 0),
        ("irp", vec!["irp", d, &irp], 0),
        ("fileobj", vec!["fileobj", d, &file], 0),
        (
            "handles_temp",
            vec!["handles", d, "--path", "\\Windows\\Temp"],
            0,
        ),
    ];
    for (name, args, code) in &cases {
        let r = run(args);
        r.expect(*code);
        // The temporary path varies from run to run.
        let text = r.stdout.replace(d, "[DUMP]");
        insta::assert_snapshot!(*name, shorten(&text));
    }
    // Every --json document carries the schema version and its type.
    let mut json_cases = cases.clone();
    json_cases.extend([
        ("info", vec!["info", d], 0),
        ("ps", vec!["ps", d], 0),
        ("threads", vec!["threads", d], 0),
        ("lm", vec!["lm", d], 0),
    ]);
    for (name, args, code) in &json_cases {
        let mut a = vec!["--json"];
        a.extend(args.iter().copied());
        let r = run(&a);
        r.expect(*code);
        let v = r.json();
        assert_eq!(
            v["schema_version"],
            1,
            "{name}: no schema_version 1 in {}",
            util::head(&r.stdout, 5)
        );
        if *name != "analyze" {
            assert!(v["type"].is_string(), "{name}: no document type");
        }
    }
}

/// Keep a long listing's head and its closing summary (after the last
/// blank line) in the snapshot, and the count of the lines in between.
fn shorten(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= 60 {
        return text.to_string();
    }
    let tail_at = lines
        .iter()
        .rposition(|l| l.is_empty())
        .unwrap_or(lines.len());
    let head = 25.min(tail_at);
    let mut out = lines[..head].join("\n");
    out.push_str(&format!("\n[... {} lines ...]\n", tail_at - head));
    out.push_str(&lines[tail_at..].join("\n"));
    out.push('\n');
    out
}

#[test]
fn shell_runs_a_script_from_stdin() {
    let (image, truth) = image();
    let dir = tempfile::tempdir().unwrap();
    let dump = util::write(&image, Format::Elf, dir.path(), "temp-flood");
    let (owner, _, _) = seed_case_addresses(&truth);
    // WinDbg notation with a backtick.
    let windbg = format!("{:08x}`{:08x}", owner >> 32, owner & 0xffff_ffff);
    let mut c = util::hangscope();
    c.arg("shell")
        .arg(&dump)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn shell");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("!locks\n\n!thread {windbg}\nq\n!analyze\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "shell exit code; stderr:\n{stderr}"
    );
    assert!(stderr.is_empty(), "shell stderr:\n{stderr}");
    // The shell and the one-shot commands print the same text; nothing
    // after `q` runs.
    let locks = run([std::ffi::OsStr::new("locks"), dump.as_os_str()]);
    let thread = run([
        std::ffi::OsStr::new("thread"),
        dump.as_os_str(),
        std::ffi::OsStr::new(&format!("{owner:#x}")),
    ]);
    let want = format!(
        "{}\n{}\n",
        locks.stdout.trim_end(),
        thread.stdout.trim_end()
    );
    assert_eq!(
        stdout, want,
        "shell output differs from `locks` then `thread`"
    );
}

#[test]
fn a_missing_dump_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dump.elf");
    for cmd in ["info", "ps", "analyze"] {
        let r = run([std::ffi::OsStr::new(cmd), path.as_os_str()]);
        assert_eq!(r.code, Some(2), "{}: {}", r.cmdline, r.stderr);
        assert!(r.stdout.is_empty(), "{}: stdout {:?}", r.cmdline, r.stdout);
        assert!(
            r.stderr.starts_with("hangscope: ") && r.stderr.contains("no-such-dump.elf"),
            "{}: stderr does not name the file: {:?}",
            r.cmdline,
            r.stderr
        );
    }
}

#[test]
fn a_garbage_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let noise: Vec<u8> = (0..(1 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for (name, bytes) in [
        ("garbage.dmp", noise),
        ("empty.dmp", Vec::new()),
        ("short.dmp", b"PAGEDU64".to_vec()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        for cmd in ["info", "analyze"] {
            let r = run([
                std::ffi::OsStr::new("--json"),
                std::ffi::OsStr::new(cmd),
                path.as_os_str(),
            ]);
            r.expect_no_crash();
            assert_eq!(
                r.code,
                Some(2),
                "{}: exit code; stderr {:?}",
                r.cmdline,
                r.stderr
            );
            assert!(
                r.stderr.contains(name),
                "{}: stderr does not name the file: {:?}",
                r.cmdline,
                r.stderr
            );
        }
    }
}

#[test]
fn missing_symbols_name_the_pdb_and_where_hangscope_looked() {
    let (mut image, truth) = image();
    // Change the kernel's PDB GUID in its CodeView record, so that no
    // symbol table anywhere matches.
    let g = &truth.kernel.pdb_guid;
    let hex = |i: usize, n: usize| u64::from_str_radix(&g[i..i + n], 16).unwrap();
    let mut guid = Vec::new();
    guid.extend_from_slice(&(hex(0, 8) as u32).to_le_bytes());
    guid.extend_from_slice(&(hex(8, 4) as u16).to_le_bytes());
    guid.extend_from_slice(&(hex(12, 4) as u16).to_le_bytes());
    for i in 0..8 {
        guid.push(hex(16 + 2 * i, 2) as u8);
    }
    let mut needle = b"RSDS".to_vec();
    needle.extend_from_slice(&guid);
    let mut patched = 0;
    for page in image.pages.values_mut() {
        if let Some(at) = page.windows(needle.len()).position(|w| w == needle) {
            page[at + 4 + 15] ^= 0xff;
            patched += 1;
        }
    }
    assert!(
        patched > 0,
        "the kernel's RSDS record was not found in the image"
    );
    let mut bad = g.clone();
    let last = u8::from_str_radix(&g[30..32], 16).unwrap() ^ 0xff;
    bad.replace_range(30..32, &format!("{last:02X}"));
    let dir = tempfile::tempdir().unwrap();
    let dump = util::write(&image, Format::Elf, dir.path(), "nosyms");
    let r = run([std::ffi::OsStr::new("ps"), dump.as_os_str()]);
    r.expect_no_crash();
    assert_eq!(
        r.code,
        Some(2),
        "{}: exit code; stderr {:?}",
        r.cmdline,
        r.stderr
    );
    let e = r.stderr.to_ascii_uppercase();
    assert!(
        e.contains(&bad.to_ascii_uppercase())
            && e.contains(&format!("{bad}{}", truth.kernel.pdb_age).to_ascii_uppercase())
            || e.contains(&format!("{bad}-{}", truth.kernel.pdb_age).to_ascii_uppercase()),
        "stderr does not name the PDB identity {bad} age {}: {:?}",
        truth.kernel.pdb_age,
        r.stderr
    );
    assert!(
        r.stderr.contains("shared/symbols"),
        "stderr does not say where hangscope looked: {:?}",
        r.stderr
    );
}

/// Issue 4 (symbolisation): `stacks`, `running`, `thread` and `analyze`
/// end with one note naming each driver on their stacks that has no symbol
/// table, its PDB identity and where to put the file; JSON carries the same
/// as `missing_symbols`; once the table is on the symbol path (`--symbols`)
/// its names replace the export names and the module leaves the note.
#[test]
fn missing_driver_symbols_are_noted_once_with_what_to_fetch() {
    let (image, truth) = image();
    let dir = tempfile::tempdir().unwrap();
    let dump = util::write(&image, Format::Elf, dir.path(), "temp-flood");
    let d = dump.to_str().unwrap();
    let ntfs = truth.module_pdb("Ntfs.sys").expect("Ntfs PDB in the truth");
    let (owner, _, _) = seed_case_addresses(&truth);
    let owner = format!("{owner:#x}");
    let line = format!(
        "  Ntfs.sys: Ntfs.pdb {}-{}, fetch {} (or the ISF Ntfs.pdb/{}-{}.json.xz)",
        ntfs.guid,
        ntfs.age,
        ntfs.server_path(),
        ntfs.guid,
        ntfs.age
    );
    for args in [
        vec!["stacks", d],
        vec!["running", d],
        vec!["thread", d, &owner],
    ] {
        let r = run(&args);
        r.expect(0);
        let notes = r.stdout.matches("\nSymbols: ").count();
        assert_eq!(notes, 1, "{}: {notes} notes:\n{}", r.cmdline, r.stdout);
        let note = &r.stdout[r.stdout.find("\nSymbols: ").unwrap()..];
        assert_eq!(
            note.matches(line.as_str()).count(),
            1,
            "{}: the note does not name Ntfs once as {line:?}:\n{note}",
            r.cmdline
        );
        assert!(r.stdout.contains("Ntfs!NtfsCommonCreate+"), "{}", r.cmdline);
    }
    let r = run(["analyze", d]);
    r.expect(1);
    assert!(
        r.stdout.contains(&line),
        "analyze: no Ntfs note:\n{}",
        r.stdout
    );

    // JSON: the same facts as fields.
    let (r, v) = util::json_cmd("stacks", &[], &dump);
    r.expect(0);
    let m = util::arr(&v["data"], "missing_symbols")
        .iter()
        .find(|m| m["module"] == "Ntfs.sys")
        .expect("Ntfs in data.missing_symbols");
    assert_eq!(m["pdb"]["name"], "Ntfs.pdb");
    assert_eq!(m["pdb"]["guid"], ntfs.guid.as_str());
    assert_eq!(m["pdb"]["age"], ntfs.age);
    assert_eq!(m["fetch"][0], ntfs.server_path().as_str());
    assert_eq!(util::addr(&m["base"]), Some(ntfs.base));
    let r = run(["--json", "thread", d, &owner]);
    r.expect(0);
    let v = r.json();
    assert!(
        util::arr(&v["data"], "missing_symbols")
            .iter()
            .any(|m| m["module"] == "Ntfs.sys"),
        "thread --json: no Ntfs in missing_symbols"
    );

    // With Ntfs's table (an ISF at the path the note gave) on the symbol
    // path: the table's names, and no Ntfs in the note.
    let (r, v) = util::json_cmd("running", &[], &dump);
    r.expect(0);
    let mut symbols = serde_json::Map::new();
    for cpu in v["data"].as_array().expect("CPUs") {
        for f in util::arr(&cpu["stack"], "frames") {
            let sym = util::s(f, "symbol");
            let Some(rest) = sym.strip_prefix("Ntfs!") else {
                continue;
            };
            let (name, off) = rest.split_once("+0x").expect("offset");
            let begin = util::a(f, "rip") - ntfs.base - u64::from_str_radix(off, 16).unwrap();
            symbols.insert(
                format!("PdbOnly_{name}"),
                serde_json::json!({"address": begin}),
            );
        }
    }
    assert!(!symbols.is_empty(), "no Ntfs frame on a running stack");
    let isf = serde_json::json!({
        "metadata": {"format": "6.2.0", "windows": {"pdb": {
            "GUID": ntfs.guid, "age": ntfs.age, "database": "Ntfs.pdb", "machine_type": 34404}}},
        "base_types": {}, "user_types": {}, "enums": {}, "symbols": symbols,
    });
    let store = dir.path().join("store");
    let path = store.join(ntfs.isf_path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, isf.to_string()).unwrap();
    let store = store.display().to_string();
    let r = run(["-y", &store, "running", d]);
    r.expect(0);
    assert!(
        r.stdout.contains("Ntfs!PdbOnly_NtfsCommonCreate+"),
        "{}: the table's names are not used:\n{}",
        r.cmdline,
        r.stdout
    );
    assert!(
        !r.stdout.contains("Ntfs.sys:") && !r.stdout.contains("Ntfs!NtfsCommonCreate"),
        "{}: Ntfs still named from exports or in the note:\n{}",
        r.cmdline,
        r.stdout
    );
    assert!(
        r.stdout.contains("  fltmgr.sys: fltmgr.pdb "),
        "{}: fltmgr (no table) left the note:\n{}",
        r.cmdline,
        r.stdout
    );
}

/// Issue 15: `analyze` on a guest whose virtual disk stopped answering
/// (the lab's stuck-disk scenario, Windows 10 19041, ELF, seed 2024) says
/// STUCK I/O with exit code 3, names `\Driver\viostor`, the device stack
/// and the IRPs pending there, lists the unexplained waits, and the JSON
/// document carries the same (snapshots of both).
#[test]
fn stuck_disk_analyze_text_and_json() {
    let (image, _) = util::build(&util::scenario("stuck-disk"), BUILD, SEED, 64 << 20);
    let dir = tempfile::tempdir().unwrap();
    let dump = util::write(&image, Format::Elf, dir.path(), "stuck-disk");
    let d = dump.to_str().unwrap();
    let r = run(["analyze", d]);
    r.expect(3);
    let text = r.stdout.replace(d, "[DUMP]");
    assert!(
        text.contains(
            "STUCK I/O: 14 IRPs pending at \\Driver\\viostor for up to 95 s; the guest waits on its virtual disk"
        ),
        "{text}"
    );
    insta::assert_snapshot!("analyze_stuck_disk", text);
    let r = run(["--json", "analyze", d]);
    r.expect(3);
    let v = r.json();
    assert_eq!(v["overall"], "stuck_io");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["findings"][0]["stuck_io"]["pending_irps"], 14);
    assert_eq!(v["findings"][1]["kind"], "unexplained");
    let html = dir.path().join("stuck-disk.html");
    run(["analyze", d, "--html", html.to_str().unwrap()]).expect(3);
    let page = std::fs::read_to_string(&html).expect("HTML report");
    for want in [
        "STUCK I/O",
        "14 IRPs pending at \\Driver\\viostor for up to 95 s; the guest waits on its virtual disk",
        "Device stack: \\FileSystem\\Ntfs -&gt; \\Driver\\volmgr -&gt; \\Driver\\disk -&gt; \\Driver\\viostor",
        "UNEXPLAINED",
    ] {
        assert!(page.contains(want), "HTML report lacks {want:?}");
    }
    insta::assert_snapshot!(
        "analyze_stuck_disk_json",
        r.stdout.replace(&d.replace('\\', "\\\\"), "[DUMP]")
    );
}

/// Issue 15, must-show 1: `analyze` on an RDP logon stuck behind ALPC (the
/// lab's rdp-logon scenario, Windows 10 19041, ELF, seed 2024) says STUCK
/// with exit code 3, with a chain that crosses processes through two ALPC
/// messages (LogonUI -> winlogon -> lsass -> ERESOURCE -> owner), and an
/// UNANSWERED ALPC finding for the request still on lsass's queue that
/// counts the three workers on the port's completion queue (not lsass's
/// other threads); `alpc` lists the three waiting clients and the ports
/// with their completion queues and workers (`--json`: each LRPC port's
/// `completion_port` and idle/busy `queue_workers` as the truth has
/// them), `alpc ADDR` one client and one port, and the shell's `!alpc`
/// prints what the one-shot command prints.
#[test]
fn rdp_logon_alpc_text_and_json() {
    let (image, truth) = util::build(&util::scenario("rdp-logon"), BUILD, SEED, 64 << 20);
    let dir = tempfile::tempdir().unwrap();
    let dump = util::write(&image, Format::Elf, dir.path(), "rdp-logon");
    let d = dump.to_str().unwrap();
    let r = run(["analyze", d]);
    r.expect(3);
    let text = r.stdout.replace(d, "[DUMP]");
    for want in [
        "hangscope verdict: STUCK (exit code 3)",
        "ALPC message ",
        "(WinlogonLogonUiPort): taken by the server thread",
        "(LsaAuthenticationPort): taken by the server thread",
        "UNANSWERED ALPC: lsass.exe (pid 532) has 1 unanswered ALPC message on LsaAuthenticationPort",
        "its 3 worker threads on the port's completion queue are all blocked on ERESOURCE",
    ] {
        assert!(text.contains(want), "analyze lacks {want:?}:\n{text}");
    }
    insta::assert_snapshot!("analyze_rdp_logon", text);
    let r = run(["--json", "analyze", d]);
    r.expect(3);
    let v = r.json();
    assert_eq!(v["overall"], "stuck");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["findings"][0]["kind"], "stuck");
    assert_eq!(v["findings"][0]["chain"][0]["kind"], "alpc_message");
    assert_eq!(v["findings"][1]["kind"], "alpc_unanswered");
    assert_eq!(v["findings"][1]["alpc"]["server_pid"], 532);
    assert_eq!(v["findings"][1]["alpc"]["server_blocked_threads"], 3);
    assert_eq!(v["findings"][1]["alpc"]["server_waiting_threads"], 3);
    assert_eq!(v["findings"][1]["alpc"]["server_idle_workers"], 0);
    assert_eq!(v["findings"][1]["alpc"]["workers_from_ports"], true);
    let lsa_db = truth
        .eresources
        .iter()
        .find(|r| r.name == "lsa-db")
        .unwrap();
    assert_eq!(
        v["findings"][1]["alpc"]["blocked_on"],
        format!("{:#x}", lsa_db.address)
    );
    // The HTML report titles the unanswered-ALPC finding as the text does,
    // not with the STUCK verdict it shares.
    let html = dir.path().join("rdp-logon.html");
    run(["analyze", d, "--html", html.to_str().unwrap()]).expect(3);
    let page = std::fs::read_to_string(&html).expect("HTML report");
    assert!(
        page.contains("<span class=\"kind alpc_unanswered\">UNANSWERED ALPC</span>"),
        "HTML report titles the alpc_unanswered finding otherwise"
    );

    let r = run(["alpc", d]);
    r.expect(0);
    assert!(
        r.stdout.contains("3 thread(s) waiting for an ALPC reply"),
        "{}",
        r.stdout
    );
    insta::assert_snapshot!("alpc_rdp_logon", r.stdout);
    let r = run(["--json", "alpc", d]);
    r.expect(0);
    let v = r.json();
    assert_eq!(v["type"], "alpc");
    let waits = v["data"]["waits"].as_array().expect("waits");
    assert_eq!(waits.len(), truth.alpc_messages.len());
    for tm in &truth.alpc_messages {
        let w = waits
            .iter()
            .find(|w| w["thread"] == format!("{:#x}", tm.client_thread))
            .unwrap_or_else(|| panic!("no wait for {:#x}", tm.client_thread));
        assert_eq!(w["message"]["address"], format!("{:#x}", tm.address));
        assert_eq!(w["message"]["server_pid"], tm.server_pid);
        assert_eq!(w["message"]["queue"], tm.queue.as_str());
        assert_eq!(
            w["message"]["server_thread"],
            tm.server_thread
                .map_or(serde_json::Value::Null, |t| format!("{t:#x}").into())
        );
    }
    assert_eq!(
        v["data"]["ports"].as_array().map(Vec::len),
        Some(truth.alpc_ports.len())
    );
    // Each LRPC port's completion queue with its idle and busy workers.
    let ports = v["data"]["ports"].as_array().expect("ports");
    let hex = |a: u64| serde_json::Value::from(format!("{a:#x}"));
    let mut with_queue = 0;
    for tp in &truth.alpc_ports {
        let p = ports
            .iter()
            .find(|p| p["address"] == hex(tp.address))
            .unwrap_or_else(|| panic!("no port {:#x}", tp.address));
        let Some(q) = tp.completion_port else {
            assert_eq!(p["completion_port"], serde_json::Value::Null);
            assert_eq!(p["queue_workers"], serde_json::Value::Null);
            continue;
        };
        with_queue += 1;
        assert_eq!(p["completion_port"], hex(q));
        let workers = p["queue_workers"].as_array().expect("queue_workers");
        let set = |idle: bool| -> BTreeSet<String> {
            workers
                .iter()
                .filter(|w| w["idle"] == idle)
                .map(|w| w["thread"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        let want =
            |v: &[u64]| -> BTreeSet<String> { v.iter().map(|a| format!("{a:#x}")).collect() };
        assert_eq!(
            set(true),
            want(&tp.idle_workers),
            "idle workers of {:#x}",
            tp.address
        );
        assert_eq!(
            set(false),
            want(&tp.busy_workers),
            "busy workers of {:#x}",
            tp.address
        );
    }
    assert_eq!(
        with_queue, 2,
        "LsaAuthenticationPort and TermSrvApiPort have queues"
    );
    // One port: its workers, one line each.
    let lsa = truth
        .alpc_ports
        .iter()
        .find(|p| p.name.as_deref() == Some("LsaAuthenticationPort"))
        .unwrap();
    let r = run(["alpc", d, &format!("{:x}", lsa.address)]);
    r.expect(0);
    assert_eq!(
        r.stdout
            .matches("registered with the completion queue: thread")
            .count(),
        3,
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("3 worker thread(s) associated, 0 idle, 3 busy"),
        "{}",
        r.stdout
    );

    let logonui = truth.alpc_messages[0].client_thread;
    let r = run(["alpc", d, &format!("{logonui:x}")]);
    r.expect(0);
    assert!(
        r.stdout.contains("LogonUI.exe") && r.stdout.contains("WinlogonLogonUiPort"),
        "{}",
        r.stdout
    );
    let one = r.stdout.clone();
    let r = run(["--json", "alpc", d, &format!("{logonui:x}")]);
    r.expect(0);
    assert_eq!(r.json()["data"]["object"], "wait");
    let mut c = util::hangscope();
    c.arg("shell")
        .arg(&dump)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn shell");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("!alpc {logonui:x}\nq\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        one.trim_end(),
        "shell `!alpc` differs from `alpc ADDR`"
    );
}

/// `thread DUMP TID` (a decimal id) on Windows is the thread with that
/// id: the same document as `thread DUMP ETHREAD`; an id no thread has is
/// an error naming it.
#[test]
fn thread_by_decimal_id_is_the_thread_by_address() {
    let (image, truth) = image();
    let dir = tempfile::tempdir().unwrap();
    let dump = util::write(&image, Format::Elf, dir.path(), "temp-flood");
    let d = dump.to_str().unwrap();
    let (owner, _, _) = seed_case_addresses(&truth);
    let tid = truth
        .threads
        .iter()
        .find(|t| t.address == owner)
        .map(|t| t.tid)
        .expect("the owner in the truth");
    let by_addr = run(["--json", "thread", d, &format!("{owner:#x}")]);
    by_addr.expect(0);
    let by_id = run(["--json", "thread", d, &tid.to_string()]);
    by_id.expect(0);
    assert_eq!(by_id.json(), by_addr.json());
    let none = run(["thread", d, "4194303"]);
    assert_eq!(none.code, Some(2), "{}", none.stderr);
    assert!(
        none.stderr.contains("no thread with id 4194303"),
        "{}",
        none.stderr
    );
}

/// Issue 15, must-show 4, the other queues: `analyze` on Windows 10 19041
/// (ELF) of cpu-starvation with its starved threads on the shared ready
/// queue says the same STUCK finding, the shared queue's threads counted
/// in the CPU table; of cpu-affinity (CPU 0 idle, three threads pinned to
/// the busy CPU 1) one CPU STARVATION finding naming the pin and the idle
/// CPU, in text and JSON.
#[test]
fn issue_15_shared_queue_and_affinity_starvation_analyze() {
    let dir = tempfile::tempdir().unwrap();
    for (name, headline, extra, starved) in [
        (
            "cpu-starvation-shared",
            "CPU STARVATION: 7 threads ready for up to 42 s on 2 CPUs; both CPUs run cpuhog.exe threads at priority 15; CPU 1 has 24 DPCs queued (viostor+0x",
            "    shared ready queue: 7 ready",
            7,
        ),
        (
            "cpu-affinity",
            "CPU STARVATION: 3 threads pinned to CPU 1 ready for up to 40 s while CPU 0 is idle; CPU 1 runs a renderer.exe thread at priority 15",
            "their affinity allows only CPU 1",
            3,
        ),
    ] {
        let (image, _) = util::build(&util::scenario(name), BUILD, SEED, 64 << 20);
        let dump = util::write(&image, Format::Elf, dir.path(), name);
        let d = dump.to_str().unwrap();
        let r = run(["analyze", d]);
        r.expect(3);
        assert!(r.stdout.contains("hangscope verdict: STUCK (exit code 3)"), "{}", r.stdout);
        assert!(r.stdout.contains(headline), "{name}: {}", r.stdout);
        assert!(r.stdout.contains(extra), "{name}: {}", r.stdout);
        let r = run(["--json", "analyze", d]);
        r.expect(3);
        let v = r.json();
        assert_eq!(v["findings"].as_array().map(Vec::len), Some(1), "{name}");
        let f = &v["findings"][0];
        assert_eq!(f["kind"], "cpu_starvation", "{name}");
        assert_eq!(f["starvation"]["starved_threads"], starved, "{name}: {f}");
        if name == "cpu-affinity" {
            assert_eq!(f["starvation"]["idle_cpus"], serde_json::json!([0]), "{f}");
            assert_eq!(f["starvation"]["allowed_cpus"], serde_json::json!([1]), "{f}");
        } else {
            assert_eq!(f["starvation"]["shared_ready_threads"], 7, "{f}");
        }
    }
}

/// Issue 15, must-show 4: `analyze` on the cpu-starvation and low-memory
/// scenarios (Windows 10 19041, ELF, seed 2024) says STUCK with exit code 3
/// and one CPU STARVATION or LOW MEMORY finding in text (snapshots), JSON
/// and HTML; the busy-but-healthy server says HEALTHY with exit code 0.
#[test]
fn starvation_and_low_memory_analyze_text_json_html() {
    let dir = tempfile::tempdir().unwrap();
    for (name, headline, kind, detail, html_want) in [
        (
            "cpu-starvation",
            "CPU STARVATION: 7 threads ready for up to 42 s on 2 CPUs; both CPUs run cpuhog.exe threads at priority 15; CPU 1 has 24 DPCs queued (viostor+0x",
            "cpu_starvation",
            "starvation",
            "<th>DPCs queued</th>",
        ),
        (
            "low-memory",
            "LOW MEMORY: 300 pages available (1.2 MiB) of 64 MiB; commit 99% of limit; 6 threads wait for free pages and 2 for page-ins",
            "low_memory",
            "low_memory",
            "Memory: 300 of 16384 pages available, 262000 of 264000 pages committed",
        ),
    ] {
        let (image, _) = util::build(&util::scenario(name), BUILD, SEED, 64 << 20);
        let dump = util::write(&image, Format::Elf, dir.path(), name);
        let d = dump.to_str().unwrap();
        let r = run(["analyze", d]);
        r.expect(3);
        let text = r.stdout.replace(d, "[DUMP]");
        assert!(text.contains("hangscope verdict: STUCK (exit code 3)"), "{text}");
        assert!(text.contains(headline), "{text}");
        insta::assert_snapshot!(format!("analyze_{}", name.replace('-', "_")), text);
        let r = run(["--json", "analyze", d]);
        r.expect(3);
        let v = r.json();
        assert_eq!(v["overall"], "stuck", "{name}");
        assert_eq!(v["exit_code"], 3, "{name}");
        assert_eq!(v["findings"].as_array().map(Vec::len), Some(1), "{name}");
        assert_eq!(v["findings"][0]["kind"], kind, "{name}");
        assert!(v["findings"][0][detail].is_object(), "{name}: {}", v["findings"][0]);
        let html = dir.path().join(format!("{name}.html"));
        run(["analyze", d, "--html", html.to_str().unwrap()]).expect(3);
        let page = std::fs::read_to_string(&html).expect("HTML report");
        assert!(page.contains(html_want), "{name}: HTML report lacks {html_want:?}");
    }
    let (image, _) = util::build(&util::scenario("busy-server"), BUILD, SEED, 64 << 20);
    let dump = util::write(&image, Format::Elf, dir.path(), "busy-server");
    let r = run(["analyze", dump.to_str().unwrap()]);
    r.expect(0);
    assert!(
        r.stdout
            .contains("hangscope verdict: HEALTHY (exit code 0)"),
        "{}",
        r.stdout
    );
}

/// `thread`'s address form of a thread or lock (`!locks`' flat hex).
fn flat(a: u64) -> String {
    format!("{a:016x}")
}

/// What `hangscope shell DUMP` prints for `script` on stdin (exit code 0
/// and an empty stderr asserted).
fn shell(dump: &std::path::Path, script: &str) -> String {
    let mut c = util::hangscope();
    c.arg("shell")
        .arg(dump)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn shell");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(0) && stderr.is_empty(),
        "shell: exit code {:?}, stderr:\n{stderr}",
        out.status.code()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `hangscope --json CMD DUMP ARG`, then the document.
fn json_at(cmd: &str, dump: &str, arg: &str) -> (util::Run, serde_json::Value) {
    let r = run(["--json", cmd, dump, arg]);
    let v = r.json();
    (r, v)
}

/// Issue 15, must-show 2 (push locks outside `analyze`): on the lab's
/// push-lock pile-up on 7 SP1 (wait blocks by name), 1607, 19041 and 11
/// (the newest waiter from the lock word, the others from their stacks),
/// `locks` lists each of the truth's push locks after the ERESOURCE table
/// (container, waiters oldest first, the owner as a candidate marked
/// inferred) in text and under `data.push_locks` in JSON beside the
/// ERESOURCE keys; `locks ADDR` shows one push lock; `thread` on a waiter
/// names the lock and its inferred owner, and on the owner the locks it
/// holds (inferred).
/// A lock `thread OWNER` must list as held.
struct Held<'a> {
    kind: &'a str,
    address: u64,
    waiters: usize,
    /// Inferred from stacks (push locks), else recorded in `Owner`.
    inferred: bool,
}

/// `thread OWNER` says it holds the lock: a text line starting `want` and
/// ending in the waiter count and how the owner is known, and a JSON
/// `holds` entry with the same kind, inference and waiters.
fn check_holds(p: &mut Vec<String>, what: &str, d: &str, owner: u64, want: &str, held: Held<'_>) {
    let how = if held.inferred {
        "inferred from stacks"
    } else {
        "recorded in Owner"
    };
    let t = run(["thread", d, &format!("{owner:#x}")]);
    t.expect(0);
    let tail = format!("with {} waiter(s) ({how})", held.waiters);
    let line = t.stdout.lines().find(|l| l.starts_with(want)).unwrap_or("");
    if !line.ends_with(&tail) {
        p.push(format!(
            "{what}: owner's thread text lacks {want:?} ... {tail:?}:\n{}",
            t.stdout
        ));
    }
    let (r, tj) = json_at("thread", d, &format!("{owner:#x}"));
    r.expect(0);
    let entry = util::arr(&tj["data"], "holds")
        .iter()
        .find(|h| util::a(h, "address") == held.address)
        .cloned()
        .unwrap_or_default();
    util::eq(
        p,
        &format!("{what} owner's holds entry (kind, inferred, waiters)"),
        (held.kind, Some(held.inferred), Some(held.waiters as u64)),
        (
            util::s(&entry, "kind"),
            entry["inferred"].as_bool(),
            entry["waiters"].as_u64(),
        ),
    );
}

#[test]
fn issue_15_push_locks_in_locks_and_thread() {
    let mut problems = Vec::new();
    let p = &mut problems;
    for (build, seed) in [
        ("win7sp1", 191),
        ("win2016", 192),
        ("win10-19041", 193),
        ("win11", 194),
    ] {
        let label = format!("[push-lock {build}]");
        let (image, truth) = util::build(&util::scenario("push-lock"), build, seed, 64 << 20);
        let dir = tempfile::tempdir().unwrap();
        let dump = util::write(&image, Format::Elf, dir.path(), "push-lock");
        let d = dump.to_str().unwrap();
        assert!(
            !truth.push_locks.is_empty(),
            "{label} truth has no push lock"
        );

        let text = run(["locks", d]);
        text.expect(0);
        let text = &text.stdout;
        if !text.contains("**** DUMP OF ALL RESOURCE OBJECTS ****")
            || !text.contains("**** PUSH LOCKS WITH WAITERS (not in !locks) ****")
            || !text.contains(&format!(
                "{} push lock(s) with waiters; owners inferred from stacks",
                truth.push_locks.len()
            ))
        {
            p.push(format!(
                "{label} locks text lacks the push-lock section:\n{text}"
            ));
        }
        let (r, v) = util::json_cmd("locks", &[], &dump);
        r.expect(0);
        let data = &v["data"];
        util::eq(
            p,
            &format!("{label} locks type"),
            "eresources",
            util::s(&v, "type"),
        );
        if !data["items"].is_array() || !data["warnings"].is_array() {
            p.push(format!(
                "{label} locks JSON lost its ERESOURCE keys: {data}"
            ));
        }
        let got = util::arr(&data["push_locks"], "items");
        util::set_diff(
            p,
            &format!("{label} push locks"),
            truth.push_locks.iter().map(|l| l.address),
            got.iter().map(|l| util::a(l, "address")),
        );
        for tl in &truth.push_locks {
            let what = format!("{label} push lock {} ({:#x})", tl.name, tl.address);
            let owner = tl.owner.expect("the scenario names each owner");
            let waiters: Vec<u64> = tl.waiters.iter().map(|w| w.thread).collect();
            // Text: the lock, its container, each waiter, the owner marked.
            let block = text
                .split("\nPushLock @ ")
                .find(|b| b.starts_with(&format!("{:#x} ", tl.address)))
                .unwrap_or("");
            let mut wants = vec![
                format!("In {}", tl.container),
                format!("{} waiter(s), oldest first", waiters.len()),
                format!(
                    "Owner candidate(s), inferred from stacks (a push lock records no owner): {}",
                    flat(owner)
                ),
            ];
            wants.extend(waiters.iter().map(|&w| flat(w)));
            for want in &wants {
                if !block.contains(want.as_str()) {
                    p.push(format!("{what}: locks text lacks {want:?}:\n{block}"));
                }
            }
            // JSON: the same lock by address.
            let Some(g) = got.iter().find(|l| util::a(l, "address") == tl.address) else {
                continue;
            };
            if !util::s(g, "container").starts_with(&tl.container) {
                p.push(format!(
                    "{what}: container {} != {}",
                    g["container"], tl.container
                ));
            }
            util::eq(
                p,
                &format!("{what} waiters, oldest first"),
                waiters.clone(),
                util::arr(g, "waiters")
                    .iter()
                    .map(|w| util::a(w, "thread"))
                    .collect(),
            );
            util::eq(
                p,
                &format!("{what} (wake event, exclusive) per waiter"),
                tl.waiters
                    .iter()
                    .map(|w| (w.wake_event, Some(w.exclusive)))
                    .collect::<Vec<_>>(),
                util::arr(g, "waiters")
                    .iter()
                    .map(|w| (util::a(w, "wake_event"), w["exclusive"].as_bool()))
                    .collect(),
            );
            util::eq(
                p,
                &format!("{what} owner candidates"),
                vec![owner],
                util::arr(g, "candidate_owners")
                    .iter()
                    .filter_map(util::addr)
                    .collect(),
            );

            // `locks ADDR`: this push lock, not an ERESOURCE read there.
            let a = format!("{:#x}", tl.address);
            let one = run(["locks", d, &a]);
            one.expect(0);
            if !one.stdout.starts_with(&format!("PushLock @ {a} "))
                || !one.stdout.contains(&flat(owner))
            {
                p.push(format!("{what}: `locks ADDR` text:\n{}", one.stdout));
            }
            let (r, one) = json_at("locks", d, &a);
            r.expect(0);
            util::eq(
                p,
                &format!("{what} locks ADDR type"),
                "push_lock",
                util::s(&one, "type"),
            );
            util::eq(
                p,
                &format!("{what} locks ADDR address"),
                tl.address,
                util::a(&one["data"], "address"),
            );
            util::eq(
                p,
                &format!("{what} locks ADDR waiters"),
                waiters.clone(),
                util::arr(&one["data"], "waiters")
                    .iter()
                    .map(|w| util::a(w, "thread"))
                    .collect(),
            );

            // `thread WAITER`: the lock it waits on and the inferred owner.
            for &w in &waiters {
                let t = run(["thread", d, &format!("{w:#x}")]);
                t.expect(0);
                let want = format!(
                    "    waits for PushLock {} ({}",
                    flat(tl.address),
                    tl.container
                );
                let owners = format!("owner candidate(s) inferred from stacks: {}", flat(owner));
                if !t.stdout.contains(&want) || !t.stdout.contains(&owners) {
                    p.push(format!(
                        "{what}: thread {w:#x} text lacks {want:?} / {owners:?}:\n{}",
                        t.stdout
                    ));
                }
                let (r, tj) = json_at("thread", d, &format!("{w:#x}"));
                r.expect(0);
                let pl = &tj["data"]["push_lock"];
                util::eq(
                    p,
                    &format!("{what} thread {w:#x} push_lock"),
                    tl.address,
                    util::a(pl, "address"),
                );
                util::eq(
                    p,
                    &format!("{what} thread {w:#x} push_lock owners"),
                    vec![owner],
                    util::arr(pl, "candidate_owners")
                        .iter()
                        .filter_map(util::addr)
                        .collect(),
                );
            }
            // `thread OWNER`: holds it, inferred.
            let want = format!("Holds PushLock {} ({}", flat(tl.address), tl.container);
            let held = Held {
                kind: "PushLock",
                address: tl.address,
                waiters: waiters.len(),
                inferred: true,
            };
            check_holds(p, &what, d, owner, &want, held);
        }
        // The interactive shell runs the same commands.
        let lock = &truth.push_locks[0];
        let owner = lock.owner.unwrap_or(0);
        let script = format!(
            "!locks\n!locks {:08x}`{:08x}\n!thread {owner:x}\nq\n",
            lock.address >> 32,
            lock.address & 0xffff_ffff
        );
        let want: String = [
            run(["locks", d]),
            run(["locks", d, &format!("{:#x}", lock.address)]),
            run(["thread", d, &format!("{owner:#x}")]),
        ]
        .iter()
        .map(|r| format!("{}\n", r.stdout.trim_end()))
        .collect();
        let got = shell(&dump, &script);
        if got != want {
            p.push(format!(
                "{label} shell output differs from the one-shot commands:\n{got}\n---\n{want}"
            ));
        }
    }
    util::report("push locks in locks and thread", problems);
}

/// Issue 15, must-show 2 (fast and guarded mutexes outside `analyze`): the
/// lab's fast-mutex and guarded-mutex scenarios on 7 SP1 (a guarded mutex
/// is a `_KGUARDED_MUTEX` there) and 19041 (a `_FAST_MUTEX`), and the
/// fast mutex on 11. `locks` lists each mutex of the truth with its
/// recorded owner and its waiters (text, and `data.mutexes` in JSON);
/// `locks ADDR` shows it; `thread` on a waiter names the mutex and its
/// owner, and on the owner the mutex it owns.
#[test]
fn issue_15_fast_and_guarded_mutexes_in_locks_and_thread() {
    let mut problems = Vec::new();
    let p = &mut problems;
    for (scenario, build, seed) in [
        ("fast-mutex", "win7sp1", 195),
        ("fast-mutex", "win10-19041", 196),
        ("fast-mutex", "win11", 197),
        ("guarded-mutex", "win7sp1", 198),
        ("guarded-mutex", "win10-19041", 199),
    ] {
        let label = format!("[{scenario} {build}]");
        let (image, truth) = util::build(&util::scenario(scenario), build, seed, 64 << 20);
        let dir = tempfile::tempdir().unwrap();
        let dump = util::write(&image, Format::Elf, dir.path(), scenario);
        let d = dump.to_str().unwrap();
        let tm = truth
            .dispatcher_objects
            .iter()
            .find(|o| o.kind == "FastMutex" || o.kind == "GuardedMutex")
            .unwrap_or_else(|| panic!("{label} no mutex in the truth"));
        let owner = tm.owner.expect("the scenario names the owner");
        let what = format!("{label} {} {:#x}", tm.kind, tm.address);

        let text = run(["locks", d]);
        text.expect(0);
        let text = &text.stdout;
        let head = format!(
            "{} @ {:#x}    Owner {} (recorded in Owner)",
            tm.kind,
            tm.address,
            flat(owner)
        );
        let block = text
            .split('\n')
            .skip_while(|l| *l != head)
            .take_while(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        if !text.contains("**** FAST AND GUARDED MUTEXES WITH WAITERS (not in !locks) ****")
            || block.is_empty()
            || tm.waiters.iter().any(|w| !block.contains(&flat(*w)))
            || !block.contains(&format!("{} waiter(s) on its", tm.waiters.len()))
        {
            p.push(format!(
                "{what}: locks text lacks {head:?} and its waiters:\n{text}"
            ));
        }
        let (r, v) = util::json_cmd("locks", &[], &dump);
        r.expect(0);
        let data = &v["data"];
        if !data["items"].is_array() || !data["warnings"].is_array() {
            p.push(format!(
                "{what}: locks JSON lost its ERESOURCE keys: {data}"
            ));
        }
        let got = util::arr(&data["mutexes"], "items");
        util::eq(
            p,
            &format!("{what} mutexes listed"),
            vec![tm.address],
            got.iter().map(|m| util::a(m, "address")).collect(),
        );
        let g = got.first().cloned().unwrap_or_default();
        util::eq(
            p,
            &format!("{what} (kind, owner)"),
            (tm.kind.as_str(), owner),
            (util::s(&g, "kind"), util::a(&g, "owner")),
        );
        let mut want_waiters = tm.waiters.clone();
        want_waiters.sort_unstable();
        let got_waiters: Vec<u64> = util::arr(&g, "waiters")
            .iter()
            .map(|w| util::a(w, "thread"))
            .collect();
        let mut sorted = got_waiters.clone();
        sorted.sort_unstable();
        util::eq(p, &format!("{what} waiters"), want_waiters, sorted);
        // Oldest first: the truth's threads by how long ago they began.
        let mut oldest_first = got_waiters.clone();
        oldest_first.sort_by(|a, b| {
            let secs = |t: u64| {
                truth
                    .threads
                    .iter()
                    .find(|x| x.address == t)
                    .and_then(|x| x.wait_seconds)
                    .unwrap_or(0.0)
            };
            secs(*b).total_cmp(&secs(*a))
        });
        util::eq(
            p,
            &format!("{what} waiters oldest first"),
            oldest_first,
            got_waiters,
        );

        let a = format!("{:#x}", tm.address);
        let one = run(["locks", d, &a]);
        one.expect(0);
        if !one.stdout.starts_with(&head) {
            p.push(format!("{what}: `locks ADDR` text:\n{}", one.stdout));
        }
        let (r, one) = json_at("locks", d, &a);
        r.expect(0);
        util::eq(
            p,
            &format!("{what} locks ADDR type"),
            "mutex",
            util::s(&one, "type"),
        );
        util::eq(
            p,
            &format!("{what} locks ADDR (address, owner)"),
            (tm.address, owner),
            (
                util::a(&one["data"], "address"),
                util::a(&one["data"], "owner"),
            ),
        );

        for &w in &tm.waiters {
            let t = run(["thread", d, &format!("{w:#x}")]);
            t.expect(0);
            let line = t
                .stdout
                .lines()
                .find(|l| l.starts_with(&format!("    {}  {} (on its ", flat(tm.address), tm.kind)))
                .unwrap_or("");
            if !line.ends_with(&format!("owner {} (recorded in Owner)", flat(owner))) {
                p.push(format!(
                    "{what}: thread {w:#x} text names no mutex and owner:\n{}",
                    t.stdout
                ));
            }
            let (r, tj) = json_at("thread", d, &format!("{w:#x}"));
            r.expect(0);
            let named = util::arr(&tj["data"], "waits").iter().any(|x| {
                util::a(x, "address") == tm.address
                    && util::s(x, "kind") == tm.kind
                    && util::arr(x, "owners")
                        .iter()
                        .filter_map(util::addr)
                        .eq([owner])
            });
            if !named {
                p.push(format!(
                    "{what}: thread {w:#x} JSON waits: {}",
                    tj["data"]["waits"]
                ));
            }
        }
        let want = format!("Owns {} {} (", tm.kind, flat(tm.address));
        let held = Held {
            kind: &tm.kind,
            address: tm.address,
            waiters: tm.waiters.len(),
            inferred: false,
        };
        check_holds(p, &what, d, owner, &want, held);
    }
    util::report("fast and guarded mutexes in locks and thread", problems);
}
