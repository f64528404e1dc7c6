//! `hangscope live` on real QEMU guests whose RAM is a lab image, given to
//! QEMU as its memory backend file (`memory-backend-file`, `share=off`):
//! the live answers must equal those of a `capture` of the same moment,
//! and every test checks that the guest is left in the run state it had
//! (never paused behind our back) before it kills its QEMU.

use crate::util::{self, hangscope, run, run_cmd};
use hangscope_capture::qmp::Qmp;
use hangscope_lab::format::Format;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("hangscope-live-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A QEMU whose RAM is a lab image; killed on drop.
struct Guest {
    child: Child,
    qmp: PathBuf,
    dir: TempDir,
}

/// How the guest starts.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// `-S`: stopped before the first instruction (`prelaunch`), the
    /// vCPUs in their reset state.
    Stopped,
    /// Running a firmware of ours that only halts, so the RAM (the lab
    /// image) never changes while the guest runs.
    Halting,
}

impl Guest {
    fn start(tag: &str, scenario: &str, build: &str, start: Start) -> Guest {
        let dir = TempDir::new(tag);
        let (image, _) = util::build(&util::scenario(scenario), build, 1, 64 << 20);
        let ram = util::write(&image, Format::Raw, &dir.0, "ram");
        Guest::start_with(dir, &ram, 64, start)
    }

    /// QEMU with `ram` (a raw image of `mib` MiB in `dir`) as its RAM.
    fn start_with(dir: TempDir, ram: &Path, mib: u64, start: Start) -> Guest {
        Guest::start_backed(dir, ram, mib, start, false)
    }

    /// The same; with `share`, QEMU maps the file shared (`share=on`), so
    /// that what the test writes to it is the guest's memory at once.
    fn start_backed(dir: TempDir, ram: &Path, mib: u64, start: Start, share: bool) -> Guest {
        let qmp = dir.0.join("qmp.sock");
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-accel", "tcg", "-machine", "pc", "-smp", "2"])
            .arg("-m")
            .arg(mib.to_string())
            .args(["-display", "none", "-nodefaults", "-no-user-config"])
            .arg("-object")
            .arg(format!(
                "memory-backend-file,id=ram0,size={mib}M,mem-path={},share={}",
                ram.display(),
                if share { "on" } else { "off" }
            ))
            .args(["-machine", "memory-backend=ram0"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()));
        match start {
            Start::Stopped => {
                c.arg("-S");
            }
            Start::Halting => {
                c.arg("-bios").arg(halting_bios(&dir.0));
            }
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qemu-system-x86_64 (apt-get install qemu-system-x86)");
        let g = Guest { child, qmp, dir };
        let want = match start {
            Start::Stopped => "prelaunch",
            Start::Halting => "running",
        };
        let t = Instant::now();
        while g.try_status().as_deref() != Some(want) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "QEMU did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        g
    }

    fn try_status(&self) -> Option<String> {
        let mut q = Qmp::connect(&self.qmp).ok()?;
        let v = q.execute("query-status", None).ok()?;
        v["status"].as_str().map(String::from)
    }

    /// QEMU's run state; waits for the socket to be free.
    fn status(&self) -> String {
        let t = Instant::now();
        loop {
            if let Some(s) = self.try_status() {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "QMP unreachable");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn socket(&self) -> &str {
        self.qmp.to_str().unwrap()
    }

    /// `hangscope capture` of this moment, then the ELF's path.
    fn capture(&self) -> PathBuf {
        let out = self.dir.0.join("capture");
        let _ = std::fs::remove_dir_all(&out);
        let r = run([
            "capture",
            "--qmp",
            self.socket(),
            "-o",
            out.to_str().unwrap(),
            "--no-progress",
        ]);
        assert_eq!(r.code, Some(0), "{}: {}", r.cmdline, r.stderr);
        let elf = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "elf"))
            .expect("the capture's ELF");
        elf
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 64 KiB firmware whose reset vector is `cli; hlt; jmp hlt`.
fn halting_bios(dir: &Path) -> PathBuf {
    let mut b = vec![0xF4u8; 65536];
    b[0xFFF0..0xFFF4].copy_from_slice(&[0xFA, 0xF4, 0xEB, 0xFD]);
    let p = dir.join("halt.bios");
    std::fs::write(&p, b).unwrap();
    p
}

/// The document without the notes the ELF reader makes about the capture
/// file itself (`dump file: ...`: its i386 ELF class for vCPUs in real
/// mode), which a live read, having no file, cannot have.
fn without_file_notes(mut v: Value) -> Value {
    if let Some(w) = v.get_mut("warnings").and_then(Value::as_array_mut) {
        w.retain(|n| !n.as_str().is_some_and(|s| s.starts_with("dump file:")));
    }
    v
}

/// `hangscope live SOCKET [FLAGS] CMD --json ARGS`.
fn live(g: &Guest, flags: &[&str], cmd: &[&str]) -> util::Run {
    let mut c = hangscope();
    c.arg("live")
        .arg(g.socket())
        .args(flags)
        .args(cmd)
        .arg("--json");
    run_cmd(c)
}

/// The commands compared, each with its expected exit code.
const COMMANDS: &[(&[&str], i32)] = &[
    (&["analyze"], 4),
    (&["locks", "-V"], 0),
    (&["ps"], 0),
    (&["threads"], 0),
    (&["stacks"], 0),
    (&["lm"], 0),
];

/// Every command's live answer equals the capture's, field for field.
fn compare_with_capture(g: &Guest, flags: &[&str], problems: &mut Vec<String>) {
    let elf = g.capture();
    for (cmd, code) in COMMANDS {
        let l = live(g, flags, cmd);
        let mut args: Vec<&str> = vec!["--json"];
        args.extend(cmd.iter());
        args.push(elf.to_str().unwrap());
        let d = run(&args);
        if l.code != Some(*code) || d.code != Some(*code) {
            problems.push(format!(
                "{}: exit {:?} (dump {:?}), want {code}\n{}",
                l.cmdline, l.code, d.code, l.stderr
            ));
            continue;
        }
        if !l.stderr.contains("hangscope: live:") {
            problems.push(format!(
                "{}: no cost line on stderr: {}",
                l.cmdline, l.stderr
            ));
        }
        let (lv, dv) = (without_file_notes(l.json()), without_file_notes(d.json()));
        if lv != dv {
            problems.push(format!(
                "{}: differs from the capture's\nlive:    {}\ncapture: {}",
                l.cmdline,
                util::head(&serde_json::to_string_pretty(&lv).unwrap(), 30),
                util::head(&serde_json::to_string_pretty(&dv).unwrap(), 30)
            ));
        }
    }
}

#[test]
fn live_equals_a_capture_of_a_guest_stopped_at_start() {
    let mut problems = Vec::new();
    for build in ["win10-19041", "win7sp1"] {
        let g = Guest::start(
            &format!("stopped-{build}"),
            "deadlock",
            build,
            Start::Stopped,
        );
        compare_with_capture(&g, &[], &mut problems);
        // Not resumed: a guest stopped at start stays so (a `cont` would
        // boot it), and nothing is left paused by hangscope either.
        util::eq(
            &mut problems,
            "status after",
            "prelaunch".to_string(),
            g.status(),
        );
    }
    util::report("live, stopped at start", problems);
}

#[test]
fn live_pauses_a_running_guest_briefly_and_resumes_it() {
    let g = Guest::start("running", "deadlock", "win10-19041", Start::Halting);
    let mut problems = Vec::new();
    for flags in [&[][..], &["--hold"][..], &["--no-pause"][..]] {
        compare_with_capture(&g, flags, &mut problems);
        util::eq(
            &mut problems,
            &format!("status after live {flags:?}"),
            "running".to_string(),
            g.status(),
        );
    }
    let l = live(&g, &[], &["analyze"]);
    if !l.stderr.contains("guest paused") {
        problems.push(format!("no pause time on stderr: {}", l.stderr));
    }
    // The same guest named by QEMU's pid: its QMP socket is found on its
    // command line.
    let by_socket = live(&g, &[], &["ps"]);
    let mut c = hangscope();
    c.args(["live", &g.child.id().to_string(), "ps", "--json"]);
    let by_pid = run_cmd(c);
    if by_pid.code != Some(0) || by_pid.stdout != by_socket.stdout {
        problems.push(format!(
            "{}: {:?} {}\nnot the same as by socket:\n{}",
            by_pid.cmdline,
            by_pid.code,
            by_pid.stderr,
            util::head(&by_socket.stdout, 5)
        ));
    }
    let l = live(&g, &["--no-pause"], &["analyze"]);
    if !l.stderr.contains("not paused") {
        problems.push(format!("--no-pause says it paused: {}", l.stderr));
    }
    util::eq(
        &mut problems,
        "status at the end",
        "running".to_string(),
        g.status(),
    );
    util::report("live, running guest", problems);
}

#[test]
fn the_guest_is_resumed_whatever_happens_to_hangscope() {
    let g = Guest::start("faults", "deadlock", "win10-19041", Start::Halting);
    let mut problems = Vec::new();
    // Killed by abort() (no destructor runs): the watchdog resumes it.
    // A panic unwinds through the VM's guard.
    for fault in ["paused:abort", "paused:panic"] {
        let mut c = hangscope();
        c.env("HANGSCOPE_LIVE_FAULT", fault)
            .args(["live", g.socket(), "--hold", "analyze"]);
        let r = run_cmd(c);
        if r.code == Some(0) || r.code == Some(4) {
            problems.push(format!("{fault}: the fault did not fire: {r:?}"));
        }
        let t = Instant::now();
        while g.status() != "running" && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        util::eq(
            &mut problems,
            &format!("status after {fault}"),
            "running".to_string(),
            g.status(),
        );
    }
    // Ctrl-C while paused.
    let mut c = hangscope();
    c.env("HANGSCOPE_LIVE_FAULT", "paused:sleep")
        .args(["live", g.socket(), "--hold", "analyze"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let t = Instant::now();
    while g.status() != "running" && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    util::eq(
        &mut problems,
        "status after Ctrl-C",
        "running".to_string(),
        g.status(),
    );
    util::report("live, faults", problems);
}

#[test]
fn another_users_qemu_gives_an_error_saying_what_to_change() {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    {
        eprintln!("skipped: needs root to run hangscope as another user");
        return;
    }
    let g = Guest::start("perm", "deadlock", "win10-19041", Start::Stopped);
    // Let `nobody` reach the socket, not the process's memory.
    let _ = Command::new("chmod").arg("0755").arg(&g.dir.0).status();
    let _ = Command::new("chmod").arg("0777").arg(&g.qmp).status();
    let r = run_cmd({
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(util::bin())
            .args(["live", g.socket(), "ps"])
            .current_dir("/")
            .stdin(Stdio::null());
        c
    });
    let mut problems = Vec::new();
    if r.code != Some(2)
        || !r.stderr.contains("/mem")
        || !r.stderr.contains("uid 0")
        || !r.stderr.contains("root")
    {
        problems.push(format!(
            "{}: want exit 2 naming /proc/PID/mem, QEMU's uid and what to do; got {:?}: {}",
            r.cmdline, r.code, r.stderr
        ));
    }
    util::eq(
        &mut problems,
        "status after",
        "prelaunch".to_string(),
        g.status(),
    );
    util::report("live, permissions", problems);
}

#[test]
fn watch_reports_each_round_and_captures_when_the_condition_holds() {
    let mut problems = Vec::new();
    // A healthy guest: one status line per round, until --rounds.
    let g = Guest::start("watch-idle", "idle", "win10-19041", Start::Halting);
    let r = run(["watch", g.socket(), "--every", "200ms", "--rounds", "3"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    if r.code != Some(0)
        || lines.len() != 3
        || !lines
            .iter()
            .all(|l| l.contains("HEALTHY") && l.contains("paused") && l.contains("page(s) read"))
    {
        problems.push(format!(
            "{}: {:?}\n{}\n{}",
            r.cmdline, r.code, r.stdout, r.stderr
        ));
    }
    util::eq(
        &mut problems,
        "status after watch",
        "running".to_string(),
        g.status(),
    );
    drop(g);
    // A deadlock: the first round meets --until, a capture is taken.
    let g = Guest::start("watch-deadlock", "deadlock", "win10-19041", Start::Halting);
    let cap = g.dir.0.join("evidence");
    let r = run([
        "watch",
        g.socket(),
        "--every",
        "200ms",
        "--until",
        "deadlock",
        "--capture",
        cap.to_str().unwrap(),
    ]);
    if r.code != Some(4) || r.stdout.lines().count() != 1 || !r.stdout.contains("DEADLOCK") {
        problems.push(format!(
            "{}: {:?}\n{}\n{}",
            r.cmdline, r.code, r.stdout, r.stderr
        ));
    }
    let manifest: Value = std::fs::read_to_string(cap.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    match manifest["dumps"][0]["file"].as_str() {
        Some(f) => {
            let d = run(["analyze", cap.join(f).to_str().unwrap()]);
            util::eq(&mut problems, "the evidence's verdict", Some(4), d.code);
        }
        None => problems.push(format!("no dump in the evidence manifest: {manifest}")),
    }
    util::eq(
        &mut problems,
        "status after watch",
        "running".to_string(),
        g.status(),
    );
    util::report("watch", problems);
}

/// Write `image` over the guest's RAM file in place, page by page where it
/// differs (never truncating it: QEMU maps the file).
fn overwrite_ram(ram: &Path, image: &Path) {
    use std::os::unix::fs::FileExt;
    let new = std::fs::read(image).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ram)
        .unwrap();
    let mut old = vec![0u8; 4096];
    for (i, page) in new.chunks(4096).enumerate() {
        let at = (i * 4096) as u64;
        f.read_exact_at(&mut old[..page.len()], at).unwrap();
        if old[..page.len()] != *page {
            f.write_all_at(page, at).unwrap();
        }
    }
}

/// `hangscope watch` over a lab series played on a running guest: its RAM
/// file (shared with QEMU) holds the series' first moment in round 1 and
/// is overwritten with the next moment after round 1's line. Round 2
/// compares the two rounds as a series of dumps: the seed case with
/// nothing moved in 10 s is proven stuck (BUSY OWNER in one dump, STUCK
/// over the rounds), which `--until stuck` stops on; the lab's busy series
/// (the lock changed hands) is proven busy, and the watch goes on.
#[test]
fn watch_compares_each_round_with_the_rounds_before() {
    use hangscope_lab::scenario::Moment;
    use hangscope_lab::series::{build_series, builtin_series};
    use hangscope_lab::{BuildOptions, Symbols};
    use std::io::BufRead;
    let mut problems = Vec::new();
    let mut still = util::scenario("temp-flood");
    still.moments = vec![Moment {
        after_seconds: 10,
        ..Moment::default()
    }];
    let cases = [
        ("still", still, 3, "stuck (proven)", "STUCK"),
        (
            "busy",
            builtin_series("busy").unwrap(),
            1,
            "busy (proven)",
            "BUSY_OWNER",
        ),
    ];
    for (tag, sc, want_code, proof, overall) in cases {
        let dir = TempDir::new(&format!("watch-series-{tag}"));
        let opts = BuildOptions {
            ram_size: Some(64 << 20),
            seed: 7,
            build: Some("win10-19041".into()),
        };
        let (images, _) = build_series(&sc, Symbols::Dir(&util::symbols_dir()), &opts)
            .unwrap_or_else(|e| panic!("series {tag}: {e}"));
        let moments: Vec<PathBuf> = images
            .iter()
            .enumerate()
            .map(|(i, (img, _))| util::write(img, Format::Raw, &dir.0, &format!("moment{i}")))
            .collect();
        let ram = dir.0.join("ram.raw");
        std::fs::copy(&moments[0], &ram).unwrap();
        let g = Guest::start_backed(dir, &ram, 64, Start::Halting, true);
        let mut c = hangscope();
        c.args([
            "watch",
            g.socket(),
            "--every",
            "3s",
            "--until",
            "stuck",
            "--rounds",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            if lines.is_empty() {
                overwrite_ram(&ram, &moments[1]);
            }
            lines.push(std::mem::take(&mut line));
        }
        let status = child.wait().unwrap();
        eprintln!("watch {tag}:\n{}", lines.concat());
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        let ok = status.code() == Some(want_code)
            && lines.len() == 2
            && lines[0].contains("round 1: BUSY_OWNER")
            && !lines[0].contains("progress over")
            && lines[1].contains("round 2:")
            && lines[1].contains("progress over 10.0 s (rounds 1-2)")
            && lines[1].contains(&format!("{overall}; #1 {proof}"))
            && lines
                .iter()
                .all(|l| l.contains("paused") && l.contains("page(s) read"));
        if !ok {
            problems.push(format!(
                "watch {tag}: exit {:?}, want {want_code}; lines:\n{}{err}",
                status.code(),
                lines.concat()
            ));
        }
        util::eq(
            &mut problems,
            &format!("status after watch {tag}"),
            "running".to_string(),
            g.status(),
        );
    }
    util::report("watch, progress between rounds", problems);
}

/// The real hung Linux guests' ELF dumps (`HANGSCOPE_LINUX_GUESTS`), each
/// turned back into RAM: a raw image given to a QEMU stopped at start. Its
/// registers are reset values, so the kernel is found by its banner and
/// page tables, and its VMCOREINFO read from the kernel's own copy; the
/// answers must equal those of the dump itself. (`stacks` and `running`
/// are left out: they start from the vCPUs' registers, which the dump has
/// and a guest stopped at reset has not.)
#[test]
fn live_reads_a_linux_guest_as_its_dump() {
    let Some(dirs) = std::env::var_os("HANGSCOPE_LINUX_GUESTS") else {
        eprintln!("skipped: HANGSCOPE_LINUX_GUESTS names no real Linux guest");
        return;
    };
    let mut problems = Vec::new();
    for dir in std::env::split_paths(&dirs) {
        let elf = dir.join("dumps/hangguest.elf");
        if !elf.is_file() {
            continue;
        }
        let tag = format!("linux-{}", dir.file_name().unwrap().to_string_lossy());
        let tmp = TempDir::new(&tag);
        let raw = tmp.0.join("ram.raw");
        let Some(mib) = ram_of(&elf, &raw) else {
            eprintln!("skipped {}: RAM above 3 GiB", elf.display());
            continue;
        };
        let g = Guest::start_with(tmp, &raw, mib, Start::Stopped);
        for (cmd, code) in [
            (&["analyze"][..], 4),
            (&["ps"][..], 0),
            (&["lm"][..], 0),
            (&["threads"][..], 0),
            (&["locks"][..], 0),
            (&["dmesg", "--tail", "40"][..], 0),
        ] {
            let l = live(&g, &[], cmd);
            let mut args: Vec<&str> = vec!["--json"];
            args.extend(cmd.iter());
            args.push(elf.to_str().unwrap());
            let d = run(&args);
            if l.code != Some(code) || d.code != Some(code) {
                problems.push(format!(
                    "{}: exit {:?} (dump {:?}), want {code}\n{}",
                    l.cmdline, l.code, d.code, l.stderr
                ));
                continue;
            }
            if without_file_notes(l.json()) != without_file_notes(d.json()) {
                problems.push(format!(
                    "{} on {}: differs from the dump's",
                    l.cmdline,
                    elf.display()
                ));
            }
        }
        util::eq(
            &mut problems,
            "status after",
            "prelaunch".to_string(),
            g.status(),
        );
    }
    util::report("live, Linux guests", problems);
}

/// Write the guest RAM of an ELF core below 3 GiB as a raw image at `raw`
/// and return its size in MiB; `None` when RAM reaches past 3 GiB (QEMU
/// would place it above 4 GiB, not where the dump has it).
fn ram_of(elf: &Path, raw: &Path) -> Option<u64> {
    use std::io::{Seek, SeekFrom, Write};
    let dump = hangscope_dump::Dump::open(elf).unwrap();
    // The firmware's ROM at the top of 4 GiB is QEMU's own, not RAM.
    let ram: Vec<_> = dump
        .memory
        .ranges()
        .iter()
        .filter(|r| r.start.0 < 0xC000_0000)
        .copied()
        .collect();
    let end = ram.iter().map(|r| r.start.0 + r.len).max()?;
    if end > 0xC000_0000 {
        return None;
    }
    let mib = end.div_ceil(1 << 20);
    let mut out = std::fs::File::create(raw).unwrap();
    out.set_len(mib << 20).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for r in ram {
        let mut at = r.start.0;
        while at < r.start.0 + r.len {
            let n = (r.start.0 + r.len - at).min(buf.len() as u64) as usize;
            dump.memory
                .read(hangscope_dump::PhysAddr(at), &mut buf[..n])
                .unwrap();
            out.seek(SeekFrom::Start(at)).unwrap();
            out.write_all(&buf[..n]).unwrap();
            at += n as u64;
        }
    }
    Some(mib)
}

/// Run `virsh -c qemu:///system -q ARGS`; its stdout, or its stderr as
/// the error.
fn virsh(args: &[&str]) -> Result<String, String> {
    let out = Command::new("virsh")
        .env("LC_ALL", "C")
        .args(["-c", "qemu:///system", "-q"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The running libvirt daemons' pids.
fn libvirt_daemons() -> Vec<u32> {
    ["libvirtd", "virtlogd"]
        .iter()
        .filter_map(|d| Command::new("pgrep").args(["-x", d]).output().ok())
        .flat_map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// A libvirt domain of the test's own (`hangscope-live-test-PID`), defined
/// and started from a real Linux guest's recipe XML with a copy of its
/// kernel and initramfs. On drop it is destroyed and undefined, the libvirt
/// daemons this test started are stopped (by pid, as
/// scripts/linux-guest.sh does), and the machine's guest lock is released.
struct LibvirtGuest {
    name: String,
    dir: TempDir,
    started: Vec<u32>,
    /// Held for the guest's life: one guest at a time on a machine.
    _lock: Option<GuestLock>,
}

/// The machine's guest lock, held by a `flock` process (`-o`: not by what
/// it runs) until dropped, as the scripts hold it.
struct GuestLock(Child);

impl GuestLock {
    fn take(path: &Path) -> GuestLock {
        use std::io::BufRead;
        let mut c = Command::new("flock")
            .arg("-o")
            .arg(path)
            .args(["sh", "-c", "echo locked; exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("flock {}: {e}", path.display()));
        let mut line = String::new();
        let _ = std::io::BufReader::new(c.stdout.take().unwrap()).read_line(&mut line);
        assert_eq!(line.trim(), "locked", "flock {}", path.display());
        GuestLock(c)
    }
}

impl Drop for GuestLock {
    fn drop(&mut self) {
        // `cat` ends when its input closes; flock then lets go.
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

impl LibvirtGuest {
    /// `None` (after saying why) when libvirt is not usable here.
    fn start(guest: &Path) -> Option<LibvirtGuest> {
        let xml = [
            guest.join("recipe/hangguest.xml"),
            guest.join("hangguest.xml"),
        ]
        .into_iter()
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("@WORK@")))?;
        let boot = guest.join("boot");
        if !boot.join("vmlinuz").is_file() || !boot.join("initrd.cpio.gz").is_file() {
            return None;
        }
        if Command::new("virsh").arg("--version").output().is_err() {
            eprintln!(
                "skipped: no virsh here (apt-get install libvirt-clients libvirt-daemon-system)"
            );
            return None;
        }
        // The lock linux-guest-series.sh takes: `HANGSCOPE_LIBVIRT_LOCK`,
        // by default /work/libvirt.lock where /work exists; empty for none
        // (when the caller already holds it).
        let lock_path = std::env::var_os("HANGSCOPE_LIBVIRT_LOCK")
            .map(PathBuf::from)
            .or_else(|| {
                Path::new("/work")
                    .is_dir()
                    .then(|| "/work/libvirt.lock".into())
            })
            .filter(|p| !p.as_os_str().is_empty());
        let lock = lock_path.map(|p| GuestLock::take(&p));
        let before = libvirt_daemons();
        let script = util::workspace().join("scripts/capture/start-libvirt.sh");
        let up = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output();
        let started: Vec<u32> = libvirt_daemons()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        let name = format!("hangscope-live-test-{}", std::process::id());
        let dir = TempDir::new("libvirt");
        let g = LibvirtGuest {
            name,
            dir,
            started,
            _lock: lock,
        };
        if !up.as_ref().is_ok_and(|o| o.status.success()) || virsh(&["uri"]).is_err() {
            eprintln!(
                "skipped: libvirt is not usable here: {}",
                up.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_else(|e| e.to_string())
            );
            return None;
        }
        // Domains of earlier runs killed before their guard ran.
        for d in virsh(&["list", "--all", "--name"])
            .unwrap_or_default()
            .lines()
        {
            let gone = d
                .strip_prefix("hangscope-live-test-")
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
            if gone {
                let _ = virsh(&["destroy", d]);
                let _ = virsh(&["undefine", d]);
            }
        }
        // libvirt may relabel (chown) the kernel and initramfs it boots:
        // boot copies, never the guest directory's own files.
        let work = &g.dir.0;
        std::fs::create_dir_all(work.join("boot")).unwrap();
        for f in ["vmlinuz", "initrd.cpio.gz"] {
            std::fs::copy(boot.join(f), work.join("boot").join(f)).unwrap();
        }
        std::fs::create_dir_all(work.join("run")).unwrap();
        let _ = Command::new("chmod").arg("0755").arg(work).status();
        let _ = Command::new("chmod")
            .arg("0777")
            .arg(work.join("run"))
            .status();
        let text = std::fs::read_to_string(&xml).unwrap();
        let start = text.find("<name>").unwrap();
        let end = text[start..].find("</name>").unwrap() + start + "</name>".len();
        let text = format!("{}<name>{}</name>{}", &text[..start], g.name, &text[end..])
            .replace("@WORK@", work.to_str().unwrap());
        let dom = work.join("domain.xml");
        std::fs::write(&dom, text).unwrap();
        virsh(&["define", dom.to_str().unwrap()]).expect("virsh define");
        virsh(&["start", &g.name]).expect("virsh start");
        let console = work.join("run/console.log");
        let t = Instant::now();
        while !std::fs::read_to_string(&console).is_ok_and(|c| c.contains("HANG-ESTABLISHED")) {
            assert!(
                t.elapsed() < Duration::from_secs(400),
                "the guest did not wedge in 400 s; console:\n{}",
                std::fs::read_to_string(&console).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        Some(g)
    }

    fn state(&self) -> String {
        virsh(&["domstate", &self.name])
            .unwrap_or_else(|e| e)
            .trim()
            .to_string()
    }
}

impl Drop for LibvirtGuest {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.name]);
        let _ = virsh(&["undefine", &self.name]);
        for p in &self.started {
            let _ = Command::new("kill").arg(p.to_string()).status();
        }
    }
}

/// Issue 13 on a real libvirt domain: the real hung Linux guest
/// (`HANGSCOPE_LINUX_GUESTS`, the first with its boot files) booted under a
/// domain of the test's own. `hangscope live DOMAIN` on the running guest
/// pauses it to copy and resumes it; on the guest paused by `virsh
/// suspend`, every command's JSON equals that of a `capture` of the same
/// paused moment, and the guest stays paused; an unknown domain and a user
/// without access to libvirt get errors that say what to change.
#[test]
fn live_reads_a_libvirt_domain_as_its_capture() {
    let Some(dirs) = std::env::var_os("HANGSCOPE_LINUX_GUESTS") else {
        eprintln!("skipped: HANGSCOPE_LINUX_GUESTS names no real Linux guest");
        return;
    };
    let Some(g) = std::env::split_paths(&dirs).find_map(|d| LibvirtGuest::start(&d)) else {
        eprintln!("skipped: no Linux guest with boot files and recipe XML, or no libvirt");
        return;
    };
    let mut problems = Vec::new();
    let live_cmd = |flags: &[&str], cmd: &[&str]| {
        let mut c = hangscope();
        c.args(["live", &g.name])
            .args(flags)
            .args(cmd)
            .arg("--json");
        run_cmd(c)
    };
    // Running: paused only to copy, and running again after.
    util::eq(&mut problems, "state at start", "running".into(), g.state());
    let l = live_cmd(&[], &["analyze"]);
    eprintln!("{}: {}", l.cmdline, l.stderr.trim());
    if l.code != Some(4) || !l.stderr.contains("guest paused") {
        problems.push(format!(
            "{} on the running guest: exit {:?}, want 4 with the pause time\n{}",
            l.cmdline, l.code, l.stderr
        ));
    }
    util::eq(
        &mut problems,
        "state after live (running)",
        "running".into(),
        g.state(),
    );

    // Paused by its owner: read in place, left paused, equal to a capture.
    virsh(&["suspend", &g.name]).expect("virsh suspend");
    let cap = g.dir.0.join("capture");
    let r = run([
        "capture",
        &g.name,
        "-c",
        "qemu:///system",
        "-o",
        cap.to_str().unwrap(),
        "--no-progress",
    ]);
    util::eq(&mut problems, "capture's exit", Some(0), r.code);
    let elf = std::fs::read_dir(&cap)
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "elf"));
    match elf {
        None => problems.push(format!("{}: no ELF: {}", r.cmdline, r.stderr)),
        Some(elf) => {
            for (cmd, code) in [
                (&["analyze"][..], 4),
                (&["ps"][..], 0),
                (&["threads"][..], 0),
                (&["lm"][..], 0),
                (&["locks"][..], 0),
                (&["stacks"][..], 0),
                (&["running"][..], 0),
            ] {
                let l = live_cmd(&[], cmd);
                let mut args: Vec<&str> = vec!["--json"];
                args.extend(cmd.iter());
                args.push(elf.to_str().unwrap());
                let d = run(&args);
                if l.code != Some(code) || d.code != Some(code) {
                    problems.push(format!(
                        "{}: exit {:?} (capture {:?}), want {code}\n{}",
                        l.cmdline, l.code, d.code, l.stderr
                    ));
                    continue;
                }
                if !l.stderr.contains("was paused already and was left so") {
                    problems.push(format!("{}: cost line {}", l.cmdline, l.stderr));
                }
                let (lv, dv) = (without_file_notes(l.json()), without_file_notes(d.json()));
                if lv != dv {
                    problems.push(format!(
                        "{}: differs from the capture's\nlive:    {}\ncapture: {}",
                        l.cmdline,
                        util::head(&serde_json::to_string_pretty(&lv).unwrap(), 40),
                        util::head(&serde_json::to_string_pretty(&dv).unwrap(), 40)
                    ));
                }
            }
        }
    }
    util::eq(
        &mut problems,
        "state after live (paused)",
        "paused".into(),
        g.state(),
    );
    virsh(&["resume", &g.name]).expect("virsh resume");

    // Errors: a domain that does not exist, a user libvirt refuses.
    let missing = format!("{}-missing", g.name);
    let r = run(["live", &missing, "ps"]);
    if r.code != Some(2) || !r.stderr.contains(&missing) || !r.stderr.contains("virsh") {
        problems.push(format!(
            "{}: want exit 2 naming the domain and virsh's words; got {:?}: {}",
            r.cmdline, r.code, r.stderr
        ));
    }
    let r = run_cmd({
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(util::bin())
            .args(["live", "-c", "qemu:///system", &g.name, "ps"])
            .env("HOME", "/tmp")
            .current_dir("/")
            .stdin(Stdio::null());
        c
    });
    if r.code != Some(2) || !r.stderr.contains("libvirt group") {
        problems.push(format!(
            "{}: want exit 2 saying to run as root or in the libvirt group; got {:?}: {}",
            r.cmdline, r.code, r.stderr
        ));
    }
    util::eq(
        &mut problems,
        "state at the end",
        "running".into(),
        g.state(),
    );
    drop(g);
    util::report("live, libvirt domain", problems);
}
