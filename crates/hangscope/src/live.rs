//! `hangscope live TARGET COMMAND [ARGS]` and `hangscope watch TARGET`:
//! the dump commands on a running VM, read from its QEMU process
//! (`hangscope-live`) through the same session code as a dump file.

use crate::cli::{Cli, Command, GlobalArgs, LiveArgs, LiveTargetArgs, Until, WatchArgs};
use crate::commands::to_shell_command;
use crate::dumpinfo::DumpSummary;
use crate::execute::execute;
use crate::output::{emit, inert_text, say};
use crate::render::{write_html, Format, KernelSummary, Report};
use crate::session::{open_guest, Guest};
use anyhow::{bail, Context, Result};
use clap::Parser;
use hangscope_dump::{Dump, KernelHints};
use hangscope_live::{read_consistently, LiveVm, Mode, Stats, Target};
use hangscope_waitgraph::{
    compare, AnalyzeOptions, Moment, ProgressSource, Proof, Series, WaitSource,
};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One command's answer: the rendered report and the exit code.
struct Answer {
    text: String,
    code: u8,
}

impl LiveTargetArgs {
    fn mode(&self) -> Mode {
        if self.no_pause {
            Mode::NoPause
        } else if self.hold {
            Mode::Hold
        } else {
            Mode::Cut
        }
    }

    fn target(&self) -> Target {
        Target::parse(&self.target, self.connect.as_deref())
    }

    /// The name a report gives the "dump" it read.
    fn label(&self) -> PathBuf {
        PathBuf::from(format!("live:{}", self.target))
    }
}

/// Open the VM and arm the watchdog unless nothing will be paused.
fn open_vm(t: &LiveTargetArgs) -> Result<LiveVm> {
    let target = t.target();
    let mut vm = LiveVm::open(&target)
        .with_context(|| format!("cannot read the running VM {}", t.target))?;
    if t.mode() != Mode::NoPause {
        let exe = std::env::current_exe().context("cannot find hangscope's own executable")?;
        vm.arm_watchdog(&exe)?;
    }
    Ok(vm)
}

/// `hangscope live`.
pub fn run(outer: &GlobalArgs, args: &LiveArgs) -> Result<u8> {
    let label = args.target.label();
    let Some((name, rest)) = args.command.split_first() else {
        bail!("name a command to run on the live VM (e.g. `analyze`)");
    };
    let mut argv: Vec<String> = vec!["hangscope".into(), name.clone()];
    argv.push(label.display().to_string());
    argv.extend(rest.iter().cloned());
    let inner = Cli::try_parse_from(&argv).map_err(|e| {
        anyhow::anyhow!(
            "`hangscope live TARGET {}`: {}",
            args.command.join(" "),
            e.to_string().trim_start_matches("error: ").trim()
        )
    })?;
    match &inner.command {
        Command::Demo(_) | Command::Capture(_) | Command::Shell(_) => bail!(
            "`{name}` does not read a dump; `hangscope live` runs info, ps, threads, lm, dmesg, \
             dt, db, dq, locks, thread, irp, fileobj, handles, stacks, running and analyze"
        ),
        _ => {}
    }
    let g = merge_globals(outer, &inner.global);
    let mut vm = open_vm(&args.target)?;
    let t0 = Instant::now();
    let html = match &inner.command {
        Command::Analyze(a) => a.html.clone(),
        _ => None,
    };
    let (answer, stats) = read_consistently(&mut vm, args.target.mode(), |dump| {
        answer(&g, &inner.command, &label, dump, html.as_deref())
    })?;
    let wall = t0.elapsed();
    drop(vm);
    let answer = answer?;
    emit(&answer.text, Format::from_json_flag(g.json))?;
    say(format_args!("hangscope: {}", cost_line(&stats, wall)));
    Ok(answer.code)
}

/// The live command's globals: those given after the command win, flags
/// given anywhere count.
fn merge_globals(outer: &GlobalArgs, inner: &GlobalArgs) -> GlobalArgs {
    GlobalArgs {
        json: outer.json || inner.json,
        symbols: inner.symbols.clone().or_else(|| outer.symbols.clone()),
        no_progress: outer.no_progress || inner.no_progress,
        verbose: outer.verbose.max(inner.verbose),
        log_file: outer.log_file.clone(),
    }
}

/// What the read cost the guest, in one line for stderr.
fn cost_line(s: &Stats, wall: Duration) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let how = if s.best_effort {
        "not paused (--no-pause: a best-effort read of a moving guest)".to_string()
    } else if s.pauses == 0 {
        format!("the guest was {} already and was left so", s.initial_state)
    } else {
        format!(
            "guest paused {:.1} ms in {} pause(s) (longest {:.1} ms)",
            ms(s.paused),
            s.pauses,
            ms(s.longest_pause)
        )
    };
    format!(
        "live: {how}; {} page(s) read; {:.0} ms in all",
        s.pages_read,
        ms(wall)
    )
}

/// Run one dump command on `dump` and render it; also what the run
/// learned about where the kernel is (the Windows kernel's page-table
/// base), which later copies take as a hint and verify again.
fn answer(
    g: &GlobalArgs,
    command: &Command,
    label: &Path,
    dump: &Dump,
    html: Option<&Path>,
) -> (Result<Answer>, KernelHints) {
    let mut hints = KernelHints::default();
    let format = Format::from_json_flag(g.json);
    let guest = open_guest(g, label, dump);
    match &guest {
        Ok(Guest::Windows(k)) => hints.dtb = k.info().dtb,
        Ok(Guest::Linux(k)) if k.vmcoreinfo().is_none() => hints.vmcoreinfo = vmcoreinfo_of(k),
        _ => {}
    }
    let result = (|| {
        if let Command::Info(_) = command {
            let summary = DumpSummary::new(label, dump);
            let kernel = match guest {
                Ok(Guest::Windows(k)) => Ok(KernelSummary::Windows(k.info())),
                Ok(Guest::Linux(k)) => Ok(KernelSummary::Linux(k.info())),
                Err(e) => Err(format!("{e:#}")),
            };
            let failed = kernel.is_err();
            let report = Report::Info {
                dump: summary,
                kernel,
            };
            return Ok(Answer {
                text: report.render(format)?,
                code: if failed { crate::EXIT_ERROR } else { 0 },
            });
        }
        let (_, sc) = to_shell_command(command);
        let kernel = guest?;
        let report = execute(&kernel, &sc)?;
        write_html(&report, html)?;
        Ok(Answer {
            text: report.render(format)?,
            code: report.exit_code(),
        })
    })();
    (result, hints)
}

/// A Linux kernel's VMCOREINFO text, read where the kernel keeps it
/// (`vmcoreinfo_data`, `vmcoreinfo_size`): what QEMU puts in a dump's
/// VMCOREINFO note, so that later runs start from it as a capture's would.
fn vmcoreinfo_of(k: &hangscope_linux::LinuxKernel<'_>) -> Option<String> {
    /// The kernel allocates one page for it (`VMCOREINFO_BYTES`).
    const MAX: u64 = 4096;
    let mem = k.memory();
    let data = mem.read_u64(k.symbol("vmcoreinfo_data").ok()?).ok()?;
    let size = mem.read_u64(k.symbol("vmcoreinfo_size").ok()?).ok()?;
    if size == 0 || size > MAX {
        return None;
    }
    let mut buf = vec![0u8; size as usize];
    mem.read(hangscope_x64::VirtAddr(data), &mut buf).ok()?;
    let text = String::from_utf8(buf).ok()?;
    text.lines()
        .any(|l| l.starts_with("OSRELEASE="))
        .then_some(text)
}

/// Whether a verdict's exit code meets `--until`.
fn condition_holds(until: Until, code: u8) -> bool {
    match until {
        Until::Deadlock => code == 4,
        Until::Stuck => matches!(code, 3 | 4 | 6),
        Until::Any => matches!(code, 1 | 3 | 4 | 6),
    }
}

/// Rounds of the progress comparison a watch keeps: this round and the
/// two before it. Each round's graph input and counters are kept whole,
/// so the window bounds what a long watch holds.
const WATCH_WINDOW: usize = 3;

/// One watch round's analysis: `analyze`'s answer, and the moment (graph
/// input and progress counters) it read, for the comparison with the
/// rounds before. Both come from the same copy of the guest.
fn watch_answer(
    g: &GlobalArgs,
    command: &Command,
    label: &Path,
    dump: &Dump,
    round: u32,
) -> ((Result<Answer>, Option<Moment>), KernelHints) {
    let (answer, hints) = answer(g, command, label, dump, None);
    let moment = match open_guest(g, label, dump) {
        Ok(Guest::Windows(k)) => Some((k.wait_graph_input(), k.progress_input())),
        Ok(Guest::Linux(k)) => Some((k.wait_graph_input(), k.progress_input())),
        Err(_) => None,
    }
    .map(|(input, progress)| Moment {
        label: format!("round {round}"),
        input,
        progress,
    });
    ((answer, moment), hints)
}

/// `hangscope watch`.
pub fn watch(g: &GlobalArgs, args: &WatchArgs) -> Result<u8> {
    let label = args.target.label();
    let mut vm = open_vm(&args.target)?;
    let mut json_g = g.clone();
    json_g.json = true;
    let analyze = Cli::try_parse_from(["hangscope", "analyze", &label.display().to_string()])
        .context("internal: the analyze command line")?
        .command;
    let mut window: VecDeque<Moment> = VecDeque::with_capacity(WATCH_WINDOW);
    let mut round = 0u32;
    loop {
        round += 1;
        let t0 = Instant::now();
        let ((answer, moment), stats) = read_consistently(&mut vm, args.target.mode(), |dump| {
            watch_answer(&json_g, &analyze, &label, dump, round)
        })?;
        let mut line = match &answer {
            Ok(a) => status_line(&a.text),
            Err(e) => format!("error: {e:#}"),
        };
        let mut code = answer.as_ref().map_or(crate::EXIT_ERROR, |a| a.code);
        if let (Ok(_), Some(m)) = (&answer, moment) {
            if window.len() == WATCH_WINDOW {
                window.pop_front();
            }
            window.push_back(m);
            if let Some(progress) = compare_rounds(&mut window) {
                line.push_str("; ");
                line.push_str(&progress.text);
                if let Some(c) = progress.code {
                    code = c;
                }
            }
        }
        let line = inert_text(&line);
        println!(
            "{} round {round}: {line}; paused {:.1} ms, {} page(s) read, {:.0} ms",
            hangscope_capture::now_rfc3339(),
            stats.paused.as_secs_f64() * 1e3,
            stats.pages_read,
            t0.elapsed().as_secs_f64() * 1e3
        );
        if condition_holds(args.until, code) {
            drop(vm);
            if let Some(dir) = &args.capture {
                return capture_evidence(&args.target, dir).map(|_| code);
            }
            return Ok(code);
        }
        if args.rounds.is_some_and(|n| round >= n) {
            return Ok(code);
        }
        std::thread::sleep(args.every.saturating_sub(t0.elapsed()));
    }
}

/// What the comparison of the kept rounds says, for the status line.
struct RoundsProgress {
    /// `progress over 10.0 s (rounds 1-3): #1 stuck (proven)`, or why
    /// the rounds could not be compared.
    text: String,
    /// The series verdict's exit code, when the rounds were compared.
    code: Option<u8>,
}

/// Compare the rounds in `window` (oldest first) as a series of dumps of
/// one boot; `None` with fewer than two. Rounds the last one cannot be
/// compared with (another boot, a clock that did not advance) are
/// dropped, so that the next rounds compare with this one.
fn compare_rounds(window: &mut VecDeque<Moment>) -> Option<RoundsProgress> {
    if window.len() < 2 {
        return None;
    }
    let moments: Vec<Moment> = window.iter().cloned().collect();
    match compare(&moments, &AnalyzeOptions::default()) {
        Ok(series) => Some(RoundsProgress {
            text: progress_text(&series, &moments),
            code: Some(series.overall.exit_code()),
        }),
        Err(e) => {
            while window.len() > 1 {
                window.pop_front();
            }
            Some(RoundsProgress {
                text: format!("not compared with the rounds before: {e}"),
                code: None,
            })
        }
    }
}

/// The series' proof of each finding in a few words.
fn progress_text(series: &Series, moments: &[Moment]) -> String {
    let span = match (moments.first(), moments.last()) {
        (Some(a), Some(b)) => format!(
            "{}-{}",
            a.label.trim_start_matches("round "),
            b.label.trim_start_matches("round ")
        ),
        _ => String::new(),
    };
    let head = format!(
        "progress over {:.1} s (rounds {span})",
        series.interval_seconds
    );
    if series.findings.is_empty() {
        return format!("{head}: {} thread(s) moved", series.threads_moved);
    }
    let proofs: Vec<String> = series
        .findings
        .iter()
        .map(|f| {
            let proven = if f.proof == Proof::Unproven {
                "unproven".to_string()
            } else {
                format!("{} (proven)", f.proof.name())
            };
            format!("#{} {proven}", f.rank)
        })
        .collect();
    format!(
        "{head}: {}; {}",
        series.overall.name().to_ascii_uppercase(),
        proofs.join(", ")
    )
}

/// The verdict, the findings and the longest wait from analyze's JSON.
fn status_line(json: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return "unreadable verdict".into();
    };
    let overall = v["overall"].as_str().unwrap_or("?").to_ascii_uppercase();
    let findings = v["findings"].as_array();
    let longest = findings
        .into_iter()
        .flatten()
        .filter_map(|f| f["max_wait_seconds"].as_f64())
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let n = findings.map_or(0, Vec::len);
    match longest {
        Some(s) => format!("{overall}, {n} finding(s), longest wait {s:.1} s"),
        None => format!("{overall}, {n} finding(s)"),
    }
}

/// The full capture, with its manifest, once the condition holds.
fn capture_evidence(t: &LiveTargetArgs, dir: &Path) -> Result<()> {
    let target = match t.target() {
        Target::Qmp(socket) => hangscope_capture::Target::Qmp { socket },
        Target::Libvirt { domain, uri } => hangscope_capture::Target::Libvirt { domain, uri },
        Target::Pid(pid) => bail!(
            "--capture needs the VM's QMP socket or libvirt domain, not pid {pid}, to take a dump"
        ),
    };
    let mut opts = hangscope_capture::CaptureOptions::new(target, dir.to_path_buf());
    opts.progress = false;
    let m = hangscope_capture::capture(&opts, &mut |d| {
        eprintln!("hangscope: captured {}", dir.join(&d.file).display())
    })?;
    eprintln!(
        "hangscope: {} dump(s) and {}",
        m.dumps.len(),
        dir.join(hangscope_capture::MANIFEST_FILE).display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_duration;

    #[test]
    fn until_conditions_follow_analyzes_exit_codes() {
        assert!(condition_holds(Until::Deadlock, 4));
        assert!(!condition_holds(Until::Deadlock, 3));
        assert!(condition_holds(Until::Stuck, 6));
        assert!(!condition_holds(Until::Stuck, 1));
        assert!(condition_holds(Until::Any, 1));
        for until in [Until::Deadlock, Until::Stuck, Until::Any] {
            for code in [0, 2, 5] {
                assert!(!condition_holds(until, code), "{until:?} {code}");
            }
        }
    }

    #[test]
    fn durations_and_status_lines() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        let json = r#"{"overall":"deadlock","findings":[{"max_wait_seconds":12.5},{"max_wait_seconds":300.0}]}"#;
        assert_eq!(
            status_line(json),
            "DEADLOCK, 2 finding(s), longest wait 300.0 s"
        );
        assert_eq!(
            status_line(r#"{"overall":"healthy","findings":[]}"#),
            "HEALTHY, 0 finding(s)"
        );
        assert_eq!(status_line("not json"), "unreadable verdict");
    }

    #[test]
    fn live_takes_the_dump_commands_arguments() {
        let cli = Cli::try_parse_from([
            "hangscope",
            "live",
            "/run/q.sock",
            "--hold",
            "locks",
            "-V",
            "--json",
        ])
        .unwrap();
        let Command::Live(a) = cli.command else {
            panic!("not live: {cli:?}")
        };
        assert!(a.target.hold && !a.target.no_pause);
        assert_eq!(a.command, ["locks", "-V", "--json"]);
        assert!(
            Cli::try_parse_from(["hangscope", "live", "vm"]).is_err(),
            "no command"
        );
        assert!(
            Cli::try_parse_from(["hangscope", "live", "vm", "--hold", "--no-pause", "ps"]).is_err()
        );
    }
}
