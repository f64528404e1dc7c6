//! Text and JSON for the verdict.
//!
//! Both read only the serialisable [`Verdict`], never the kernel model, so
//! that what a human reads and what a machine reads cannot disagree.

use std::fmt::Write as _;

pub use crate::json::{json_document, render_json, JsonDocument, SCHEMA_VERSION};
use hangscope_waitgraph::{
    kind_title, secs_text, Addr, EvidenceStep, Finding, HotDirectory, Mode as HoldMode, Overall,
    PathStyle, Verdict,
};

/// Blocked threads listed per finding in the text report.
const TEXT_THREADS: usize = 5;

/// The name of the overall verdict for headlines: `BUSY OWNER`.
pub fn headline(o: Overall) -> &'static str {
    match o {
        Overall::Healthy => "HEALTHY",
        Overall::Inconclusive => "INCONCLUSIVE",
        Overall::Contention => "CONTENTION",
        Overall::BusyOwner => "BUSY OWNER",
        Overall::Stuck => "STUCK",
        Overall::StuckIo => "STUCK I/O",
        Overall::Unexplained => "UNEXPLAINED",
        Overall::Deadlock => "DEADLOCK",
    }
}

/// The headline after `hangscope verdict: `: the verdict, how many
/// warnings its evidence carries, and the exit code
/// (`DEADLOCK (2 warnings in the evidence; exit code 4)`).
pub fn verdict_line(v: &Verdict) -> String {
    match v.evidence_warning_count() {
        0 => format!(
            "{} (exit code {})",
            headline(v.overall),
            v.overall.exit_code()
        ),
        n => format!(
            "{} ({n} warning{} in the evidence; exit code {})",
            headline(v.overall),
            if n == 1 { "" } else { "s" },
            v.overall.exit_code()
        ),
    }
}

/// WinDbg's client id: `Cid 07d0.09a8`.
pub fn cid(pid: Option<u64>, tid: Option<u64>) -> String {
    let part = |x: Option<u64>| x.map_or("????".to_string(), |x| format!("{x:04x}"));
    format!("Cid {}.{}", part(pid), part(tid))
}

fn opt_secs(s: Option<f64>) -> String {
    s.map_or("?".to_string(), secs_text)
}

fn held(m: Option<HoldMode>) -> &'static str {
    match m {
        Some(HoldMode::Shared) => "held shared",
        Some(HoldMode::Exclusive) => "held exclusively",
        None => "not held",
    }
}

/// One line for a chain step.
pub fn step_line(s: &EvidenceStep) -> String {
    match s {
        EvidenceStep::Resource {
            address,
            kind,
            name,
            owners,
            waiters,
            held_as,
            contention_count,
            max_wait_seconds,
        } => {
            let mut l = format!("{} {}", kind_title(kind), address.windbg());
            if let Some(n) = name {
                let _ = write!(l, " ({n})");
            }
            if kind == "alpc_message" {
                // A message's owner is the server thread that took it.
                l += if *owners == 0 {
                    ": not taken by any server thread"
                } else {
                    ": taken by the server thread"
                };
            } else if *owners == 0 {
                l += ": no owner";
            } else if hangscope_waitgraph::owners_inferred(kind) {
                // A push lock records no owner: say the owner is a guess.
                let _ = write!(l, ": {owners} owner(s) inferred from stacks");
            } else {
                let _ = write!(l, ": {}, {owners} owner(s)", held(*held_as));
            }
            let _ = write!(l, ", {waiters} waiter(s)");
            if let Some(m) = max_wait_seconds {
                let _ = write!(l, " (longest {})", secs_text(*m));
            }
            if let Some(c) = contention_count {
                let _ = write!(l, ", contention count {c}");
            }
            l
        }
        EvidenceStep::Thread {
            address,
            tid,
            pid,
            process,
            state,
            cpu,
            wait_reason,
            waited_seconds,
            ..
        } => {
            let mut l = format!(
                "THREAD {} {} {}: {state}",
                address.windbg(),
                cid(*pid, *tid),
                process.as_deref().unwrap_or("?")
            );
            if let Some(c) = cpu {
                let _ = write!(l, " on CPU {c}");
            }
            if let Some(r) = wait_reason {
                let _ = write!(l, " ({r})");
            }
            if let Some(s) = waited_seconds {
                let _ = write!(l, ", waited {}", secs_text(*s));
            }
            l
        }
        EvidenceStep::Irp {
            address,
            major,
            device,
        } => {
            // A Linux kernel model names the operation itself
            // (`getdents64 (iterate_dir > dcache_readdir)`) on a `struct file`.
            let mut l = match major {
                // Its page and buffer waits (io_schedule) on the page or
                // buffer_head itself.
                Some(m) if m.starts_with("page ") => {
                    format!("{m} on struct page {}", address.windbg())
                }
                Some(m) if m.starts_with("buffer ") => {
                    format!("{m} on struct buffer_head {}", address.windbg())
                }
                Some(m) if !m.starts_with("IRP_") => {
                    format!("{m} on struct file {}", address.windbg())
                }
                Some(m) => format!("IRP {} {m}", address.windbg()),
                None => format!("IRP {}", address.windbg()),
            };
            if let Some(d) = device {
                let _ = write!(l, " on {d}");
            }
            l
        }
        EvidenceStep::Driver { name } => format!("driver {name}"),
        EvidenceStep::File { address, path } => match address {
            Some(a) => format!("FILE_OBJECT {} {path}", a.windbg()),
            None => format!("file {path}"),
        },
        EvidenceStep::Directory { path, files, hot } => format!(
            "directory {path}: {files} {}{}",
            PathStyle::of(path).counted_objects(),
            if *hot { " (hot)" } else { "" }
        ),
        EvidenceStep::Process { name, pid, files } => {
            format!("process {name} (pid {pid}) holds {files} of them")
        }
        EvidenceStep::CycleBack { address } => {
            format!("back to {} (the cycle closes)", address.windbg())
        }
    }
}

/// A finding's title: its verdict's headline, except an unanswered-ALPC
/// finding, which names its own class (it shares STUCK's verdict).
pub fn finding_title(f: &Finding) -> &'static str {
    match f.kind {
        hangscope_waitgraph::FindingKind::AlpcUnanswered => "UNANSWERED ALPC",
        hangscope_waitgraph::FindingKind::CpuStarvation => "CPU STARVATION",
        hangscope_waitgraph::FindingKind::LowMemory => "LOW MEMORY",
        k => headline(k.overall()),
    }
}

/// The head of a stuck-I/O or unexplained finding: its sentence is the
/// headline, then where the requests sit or what the threads wait on.
fn wait_class_text(out: &mut String, f: &Finding) {
    let title = finding_title(f);
    let _ = writeln!(out, "#{} {title}: {}", f.rank, f.summary);
    let _ = writeln!(
        out,
        "  {} thread(s) blocked, longest wait {}",
        f.blocked_threads,
        opt_secs(f.max_wait_seconds)
    );
    let _ = writeln!(out, "  why: {}", f.why);
    if let Some(s) = &f.stuck_io {
        let _ = writeln!(
            out,
            "  device stack: {} ({} pending at {}{})",
            s.device_stack.join(" -> "),
            s.pending_irps,
            s.driver,
            s.device
                .as_deref()
                .map(|d| format!(" {d}"))
                .unwrap_or_default()
        );
    }
    if let Some(s) = &f.starvation {
        let _ = writeln!(out, "  CPUs:");
        for c in &s.cpus {
            let _ = writeln!(
                out,
                "    CPU {}: runs {}{}{}; {} ready; DPC queue {}{}{}",
                c.cpu,
                c.current.map_or("?".to_string(), |a| a.windbg()),
                c.process
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default(),
                c.priority
                    .map(|p| format!(" at priority {p}"))
                    .unwrap_or_default(),
                c.ready_threads,
                c.dpc_queue_depth.map_or("?".to_string(), |d| d.to_string()),
                if c.dpc_active { ", in a DPC" } else { "" },
                if c.dpc_routines.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.dpc_routines.join(", "))
                }
            );
        }
        if s.shared_ready_threads > 0 {
            let _ = writeln!(
                out,
                "    shared ready queue: {} ready",
                s.shared_ready_threads
            );
        }
    }
    if let Some(m) = &f.low_memory {
        let pages = |p: Option<u64>| p.map_or("?".to_string(), |p| p.to_string());
        let _ = writeln!(
            out,
            "  memory: {} of {} pages available, {} of {} pages committed ({}); {} waiting for free pages, {} for page-ins",
            pages(m.available_pages),
            pages(m.physical_pages),
            pages(m.committed_pages),
            pages(m.commit_limit_pages),
            m.source,
            m.free_page_waiters,
            m.page_in_waiters
        );
    }
    if !f.unexplained_objects.is_empty() {
        let _ = writeln!(out, "  objects:");
        for o in &f.unexplained_objects {
            let _ = writeln!(
                out,
                "    {} {}{}: {} thread(s), longest {}",
                kind_title(&o.kind),
                o.address.windbg(),
                o.name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                o.threads,
                opt_secs(o.max_wait_seconds)
            );
        }
    }
}

fn finding_text(out: &mut String, f: &Finding) {
    let wait_class = matches!(
        f.kind,
        hangscope_waitgraph::FindingKind::StuckIo
            | hangscope_waitgraph::FindingKind::Unexplained
            | hangscope_waitgraph::FindingKind::AlpcUnanswered
            | hangscope_waitgraph::FindingKind::CpuStarvation
            | hangscope_waitgraph::FindingKind::LowMemory
    );
    if wait_class {
        wait_class_text(out, f);
    } else {
        let _ = writeln!(
            out,
            "#{} {}: blocks {} thread(s), longest wait {}",
            f.rank,
            headline(f.kind.overall()),
            f.blocked_threads,
            opt_secs(f.max_wait_seconds)
        );
        let _ = writeln!(out, "  {}", f.summary);
        let _ = writeln!(out, "  why: {}", f.why);
    }
    if !wait_class || !f.chain.is_empty() {
        let _ = writeln!(out, "  chain:");
    }
    for (i, s) in f.chain.iter().enumerate() {
        let arrow = if i == 0 { "   " } else { "-> " };
        let _ = writeln!(out, "    {arrow}{}", step_line(s));
        if let EvidenceStep::Thread { stack, .. } = s {
            for frame in stack {
                let _ = writeln!(out, "          {frame}");
            }
        }
    }
    if f.kind == hangscope_waitgraph::FindingKind::Deadlock && !f.edges.is_empty() {
        let _ = writeln!(out, "  edges:");
        for e in &f.edges {
            let _ = writeln!(
                out,
                "    {} waits {} on {}, {} by {}",
                thread_ref(e.waiter, e.waiter_tid),
                opt_secs(e.waited_seconds),
                e.resource.windbg(),
                match e.held_as {
                    HoldMode::Shared => "held shared",
                    HoldMode::Exclusive => "held exclusively",
                },
                thread_ref(e.owner, e.owner_tid)
            );
        }
        if f.edges_truncated {
            let _ = writeln!(out, "    ... (more edges left out)");
        }
    }
    if f.owner_io.len() > 1 {
        let _ = writeln!(
            out,
            "  {}:",
            if wait_class {
                "pending I/O"
            } else {
                "final owner's pending I/O"
            }
        );
        for io in &f.owner_io {
            let _ = writeln!(
                out,
                "    IRP {} {} {} {}",
                io.irp.windbg(),
                io.major.as_deref().unwrap_or("?"),
                io.driver.as_deref().unwrap_or("?"),
                io.file.as_deref().unwrap_or("")
            );
        }
    }
    for w in &f.evidence_warnings {
        let _ = writeln!(out, "  damaged evidence: {w}");
    }
    if !f.blocked_processes.is_empty() {
        let list: Vec<String> = f
            .blocked_processes
            .iter()
            .map(|p| format!("{} ({}) {}", p.name, p.pid, p.threads))
            .collect();
        let _ = writeln!(out, "  blocked processes: {}", list.join(", "));
    }
    if !f.threads.is_empty() {
        let _ = writeln!(out, "  longest waiters:");
        for t in f.threads.iter().take(TEXT_THREADS) {
            let _ = writeln!(
                out,
                "    THREAD {} {} {:<16} {:<8} {:>8}  {}",
                t.address.windbg(),
                cid(t.pid, t.tid),
                t.process.as_deref().unwrap_or("?"),
                t.state,
                opt_secs(t.waited_seconds),
                t.wait_reason.as_deref().unwrap_or("")
            );
        }
        let more = f
            .blocked_threads
            .saturating_sub(TEXT_THREADS.min(f.threads.len()));
        if more > 0 {
            let _ = writeln!(out, "    ... and {more} more");
        }
    }
}

fn thread_ref(a: Addr, tid: Option<u64>) -> String {
    match tid {
        Some(t) => format!("{} (tid {t})", a.windbg()),
        None => a.windbg(),
    }
}

fn hot_dir_text(out: &mut String, d: &HotDirectory) {
    let _ = writeln!(
        out,
        "  {}: {} {}{}",
        d.path,
        d.files,
        match PathStyle::of(&d.path) {
            PathStyle::Windows => "file objects",
            PathStyle::Posix => "files in the dcache",
        },
        if d.blocking_io {
            "  <- touched by the blocking I/O"
        } else {
            ""
        }
    );
    if !d.holders.is_empty() {
        let list: Vec<String> = d
            .holders
            .iter()
            .take(5)
            .map(|p| format!("{} ({}) {}", p.name, p.pid, p.files))
            .collect();
        let held = match PathStyle::of(&d.path) {
            PathStyle::Windows => "handles held by",
            PathStyle::Posix => "files held open by",
        };
        let _ = writeln!(out, "    {held}: {}", list.join(", "));
    }
    if !d.io_processes.is_empty() {
        let list: Vec<String> = d
            .io_processes
            .iter()
            .take(5)
            .map(|p| format!("{} ({}) {}", p.name, p.pid, p.files))
            .collect();
        let pending = match PathStyle::of(&d.path) {
            PathStyle::Windows => "pending I/O from",
            PathStyle::Posix => "being listed by",
        };
        let _ = writeln!(out, "    {pending}: {}", list.join(", "));
    }
    if !d.patterns.is_empty() {
        let list: Vec<String> = d
            .patterns
            .iter()
            .map(|p| format!("{} {}", p.pattern, p.count))
            .collect();
        let _ = writeln!(out, "    names: {}", list.join(", "));
    }
}

/// The human-readable report: headline, one block per finding (sentence,
/// then the chain as indented steps), hot directories, warnings.
pub fn render_text(v: &Verdict) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "hangscope verdict: {}", verdict_line(v));
    let s = &v.stats;
    let _ = writeln!(
        out,
        "{} thread(s) in {} process(es); {} blocked on {} contended resource(s); {} cycle(s); {} finding(s)",
        s.threads,
        s.processes,
        s.blocked_threads,
        s.contended_resources,
        s.cycles,
        v.findings.len()
    );
    if !v.incomplete.is_empty() {
        let _ = writeln!(
            out,
            "\nThe model is incomplete, so the dump cannot show that the rest is healthy:"
        );
        for why in &v.incomplete {
            let _ = writeln!(out, "  {why}");
        }
    }
    if v.findings.is_empty() && v.overall == Overall::Healthy {
        let _ = writeln!(
            out,
            "\nNo thread waits on a resource that another thread owns."
        );
    }
    for f in &v.findings {
        out.push('\n');
        finding_text(&mut out, f);
    }
    if !v.hot_directories.is_empty() {
        let _ = writeln!(out, "\nHot directories:");
        for d in &v.hot_directories {
            hot_dir_text(&mut out, d);
        }
    }
    if !v.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in &v.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}
