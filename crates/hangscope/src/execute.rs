//! One shell command against an opened kernel: ask the model, return a
//! typed [`Report`]. What format it is written in is not this file's
//! business ([`crate::render`]).

use crate::render::Report;
use crate::session::Guest;
use crate::shell::{ShellCommand, HELP};
use anyhow::{bail, Result};
use hangscope_linux::{FilesQuery, LinuxKernel, TaskTarget};
use hangscope_nt::stacks::StackFilter;
use hangscope_nt::{Kernel, MissingSymbols, VirtAddr};
use hangscope_waitgraph::{EvidenceStep, Verdict, WaitSource};

/// Run one command against the guest's kernel, whichever it is.
pub fn execute<'k>(guest: &'k Guest<'_>, c: &ShellCommand) -> Result<Report<'k>> {
    match guest {
        Guest::Windows(k) => execute_windows(k, c),
        Guest::Linux(k) => execute_linux(k, c),
    }
}

/// One command on a Linux guest. `irp` and `fileobj` read Windows
/// objects and say so.
fn execute_linux<'k>(k: &'k LinuxKernel<'_>, c: &ShellCommand) -> Result<Report<'k>> {
    Ok(match c {
        ShellCommand::Processes => Report::LinuxProcesses(k.tasks()?),
        ShellCommand::Threads(pid) => {
            let mut tasks = k.tasks()?;
            if let Some(pid) = pid {
                tasks
                    .items
                    .retain(|t| u64::try_from(t.tgid).ok() == Some(*pid));
            }
            let clock = k.info();
            Report::LinuxThreads {
                tasks,
                jiffies: clock.jiffies,
                hz: clock.hz,
            }
        }
        ShellCommand::Modules => Report::LinuxModules(k.modules()?),
        ShellCommand::Dmesg(tail) => Report::Dmesg {
            records: k.dmesg()?,
            tail: *tail,
        },
        ShellCommand::Dt(ty, addr) => Report::LinuxDt(k.dt(ty, VirtAddr(*addr))?),
        ShellCommand::Db(addr, len) => Report::Bytes(k.read_memory(VirtAddr(*addr), *len)),
        ShellCommand::Dq(addr, count) => {
            Report::Quads(k.read_memory(VirtAddr(*addr), count.saturating_mul(8)))
        }
        ShellCommand::Info => Report::LinuxKernel(k.info()),
        ShellCommand::Stacks(filter) => {
            let mut s = k.stacks()?;
            if let Some(f) = filter {
                s.items.retain(|t| linux_stack_matches(t, f));
            }
            Report::LinuxStacks(s)
        }
        ShellCommand::Running => Report::LinuxRunning(k.running()?),
        ShellCommand::Locks { addr, .. } => {
            let mut locks = k.waits()?.locks;
            if let Some(a) = addr {
                locks.items.retain(|l| l.address.0 == *a);
            }
            Report::LinuxLocks(locks)
        }
        ShellCommand::Thread(a) => {
            Report::LinuxThread(k.task_detail(TaskTarget::Address(VirtAddr(*a)))?)
        }
        ShellCommand::ThreadId(pid) => Report::LinuxThread(k.task_detail(TaskTarget::Pid(
            i64::try_from(*pid).unwrap_or(i64::MAX),
        ))?),
        ShellCommand::Handles(pid, path) => Report::LinuxFiles(k.files(&FilesQuery {
            pid: pid.map(|p| i64::try_from(p).unwrap_or(i64::MAX)),
            path: path.clone(),
        })?),
        ShellCommand::Analyze => linux_verdict(k),
        ShellCommand::Help => Report::Note(HELP),
        ShellCommand::Quit | ShellCommand::Nothing => Report::Note(""),
        other => bail!(
            "`{}` reads Windows kernel objects; this dump holds a Linux kernel ({}). \
             On Linux guests hangscope has info, ps, threads, thread, files, lm, dmesg, locks, analyze, stacks, running, dt, db and dq",
            other.name(),
            k.release().unwrap_or_else(|| "release unknown".into())
        ),
    })
}

/// Whether a task's stack is one `stacks FILTER` asks for: its pid, a part
/// of its comm, or a part of a frame's text (`mutex_lock`, `[hangdemo]`).
fn linux_stack_matches(t: &hangscope_linux::TaskStack, filter: &str) -> bool {
    let f = filter.to_ascii_lowercase();
    t.pid.to_string() == f
        || t.comm.to_ascii_lowercase().contains(&f)
        || t.frames
            .iter()
            .any(|x| x.to_string().to_ascii_lowercase().contains(&f))
}

/// `analyze` on a Linux guest: the verdict through the OS-neutral graph,
/// with the D tasks that wait on no lock explained and the kernel's own
/// hung-task reports cited as corroboration.
fn linux_verdict<'k>(k: &'k LinuxKernel<'_>) -> Report<'k> {
    let waits = k.waits();
    let input = k.wait_graph_with(&waits);
    let mut verdict = hangscope_waitgraph::analyze(&input, &Default::default());
    if let Ok(tasks) = k.tasks() {
        name_threads_by_comm(&mut verdict, &tasks.items);
    }
    let mut notes = waits.as_ref().map(|w| w.notes.clone()).unwrap_or_default();
    if let Ok(w) = &waits {
        for l in w.locks.items.iter().filter(|l| l.kind == "userfaultfd") {
            let pids = |v: &[hangscope_linux::LockTask]| {
                v.iter()
                    .map(|t| t.pid.map_or("?".into(), |p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            notes.push(format!(
                "userfaultfd {:#x}: pid {} wait(s) in handle_userfault for pid {}: {}",
                l.address.0,
                pids(&l.waiters),
                pids(&l.owners),
                l.owner_note.as_deref().unwrap_or("")
            ));
        }
    }
    if let Ok(w) = &waits {
        notes.extend(w.dirs.iter().map(|d| contended_dir_note(d, &w.locks.items)));
    }
    let reports = k
        .dmesg()
        .map(|d| hangscope_linux::waits::hung_task_reports(&d.items))
        .unwrap_or_default();
    if !reports.is_empty() {
        let in_findings = |pid: i32| {
            let tid = Some(pid as u64);
            verdict.findings.iter().any(|f| {
                f.threads.iter().any(|t| t.tid == tid)
                    || f.edges.iter().any(|e| e.waiter_tid == tid)
                    || f.chain
                        .iter()
                        .any(|s| matches!(s, EvidenceStep::Thread { tid: t, .. } if *t == tid))
            })
        };
        let named: Vec<String> = reports
            .iter()
            .map(|(comm, pid, secs, _)| {
                let mark = if in_findings(*pid) {
                    ""
                } else {
                    " (in no finding)"
                };
                format!("{comm}:{pid} > {secs} s{mark}")
            })
            .collect();
        notes.push(format!(
            "corroboration: the kernel's hung-task detector reported {} task(s) in dmesg \
             (`INFO: task NAME:PID blocked for more than N seconds`): {}",
            reports.len(),
            named.join(", ")
        ));
    }
    Report::LinuxVerdict { verdict, notes }
}

/// A contended directory in words: its files in the dcache, the readers
/// found on the CPUs (inferred), and the writers waiting by what they do.
fn contended_dir_note(
    d: &hangscope_linux::dirs::ContendedDir,
    locks: &[hangscope_linux::LockInfo],
) -> String {
    let lock = locks.iter().find(|l| l.address == d.lock);
    let name = |t: VirtAddr| -> String {
        lock.and_then(|l| l.waiters.iter().chain(&l.owners).find(|o| o.task == t))
            .map_or(format!("{:#x}", t.0), |o| {
                format!(
                    "{} (pid {})",
                    o.comm.as_deref().unwrap_or("?"),
                    o.pid.map_or("?".into(), |p| p.to_string())
                )
            })
    };
    let mut s = format!(
        "directory {} ({}): {} files in the dcache ({}{}); its i_rwsem {:#x}",
        d.path,
        d.fs.as_deref().unwrap_or("file system unknown"),
        d.children.files.len(),
        d.children.layout,
        if d.children.incomplete {
            ", read only in part"
        } else {
            ""
        },
        d.lock.0
    );
    if let Some(n) = lock.and_then(|l| l.readers) {
        s += &format!(" is held by {n} reader(s)");
    }
    if !d.walkers.is_empty() {
        let who: Vec<String> = d
            .walkers
            .iter()
            .map(|w| {
                format!(
                    "{} on CPU {} in {}",
                    name(w.task),
                    w.cpu,
                    w.frames.join(" > ")
                )
            })
            .collect();
        s += &format!(
            "; inferred from the CPUs' stacks, reading it now: {}",
            who.join(", ")
        );
    }
    for what in ["creating", "removing", "renaming", "changing"] {
        let who: Vec<String> = d
            .writers
            .iter()
            .filter(|(_, w)| *w == what)
            .map(|(t, _)| name(*t))
            .collect();
        if !who.is_empty() {
            s += &format!("; waiting to write, {what} files: {}", who.join(", "));
        }
    }
    s
}

/// Name each thread in the evidence by its own comm: the graph names a
/// thread by its process (Windows's image name), but a Linux thread has a
/// name of its own (the uffd-writer process's handler thread is
/// `uffd-handler`, and the kernel's hung-task reports call it so).
fn name_threads_by_comm(verdict: &mut Verdict, tasks: &[hangscope_linux::TaskInfo]) {
    // Indexed once: a verdict lists up to thousands of thread steps and a
    // guest may have tens of thousands of tasks.
    let by_tid: std::collections::HashMap<i32, &str> =
        tasks.iter().map(|t| (t.pid, t.comm.as_str())).collect();
    let comm = |tid: Option<u64>| {
        let tid = i32::try_from(tid?).ok()?;
        by_tid.get(&tid).map(|c| c.to_string())
    };
    for f in &mut verdict.findings {
        for step in &mut f.chain {
            if let EvidenceStep::Thread { tid, process, .. } = step {
                if let Some(c) = comm(*tid) {
                    *process = Some(c);
                }
            }
        }
        for t in &mut f.threads {
            if let Some(c) = comm(t.tid) {
                t.process = Some(c);
            }
        }
    }
}

/// One command on a Windows guest.
fn execute_windows<'k>(k: &'k Kernel<'_>, c: &ShellCommand) -> Result<Report<'k>> {
    Ok(match c {
        ShellCommand::Processes => Report::Processes(k.processes()),
        ShellCommand::Threads(pid) => Report::Threads {
            threads: k.threads_of(*pid),
            warnings: &k.threads().warnings,
        },
        ShellCommand::Modules => Report::Modules(k.modules().clone()),
        ShellCommand::Dt(ty, addr) => Report::Dt(k.dt(ty, VirtAddr(*addr))?),
        ShellCommand::Db(addr, len) => Report::Bytes(k.read_memory(VirtAddr(*addr), *len)),
        ShellCommand::Dq(addr, count) => {
            Report::Quads(k.read_memory(VirtAddr(*addr), count.saturating_mul(8)))
        }
        ShellCommand::Locks { addr: Some(a), .. } => windows_lock(k, VirtAddr(*a))?,
        ShellCommand::Locks { addr: None, all } => Report::Eresources {
            list: k.eresources(),
            all: *all,
            push_locks: k.push_locks(),
            mutexes: k.mutexes(),
        },
        ShellCommand::Thread(a) => Report::Thread(k.thread_detail(VirtAddr(*a))?),
        ShellCommand::ThreadId(tid) => {
            let Some(t) = k.threads().items.iter().find(|t| t.tid == *tid) else {
                bail!(
                    "no thread with id {tid} ({tid:#x}) among the {} threads listed; \
                     give its ETHREAD address",
                    k.threads().items.len()
                );
            };
            Report::Thread(k.thread_detail(t.address)?)
        }
        ShellCommand::Irp(a) => Report::Irp(k.irp(VirtAddr(*a))?),
        ShellCommand::Fileobj(a) => Report::FileObject(k.file_object(VirtAddr(*a))?),
        ShellCommand::Alpc(None) => Report::Alpc(k.alpc()),
        ShellCommand::Alpc(Some(a)) => Report::AlpcObject(k.alpc_at(VirtAddr(*a))?),
        ShellCommand::Handles(pid, path) => {
            Report::Handles(k.handles_filtered(*pid, path.as_deref()))
        }
        ShellCommand::Stacks(filter) => Report::Stacks(k.stacks(&StackFilter {
            pid: None,
            contains: filter.clone(),
        })),
        ShellCommand::Running => Report::Running(k.running()),
        ShellCommand::Analyze => {
            let input = k.wait_graph_input();
            let verdict = hangscope_waitgraph::analyze(&input, &Default::default());
            let missing_symbols = evidence_missing_symbols(k, &verdict);
            Report::Verdict {
                verdict,
                missing_symbols,
            }
        }
        ShellCommand::Info => Report::Kernel(k.info()),
        ShellCommand::Dmesg(_) => {
            bail!("`dmesg` reads a Linux kernel's printk buffer; this dump holds a Windows kernel")
        }
        ShellCommand::Help => Report::Note(HELP),
        ShellCommand::Quit | ShellCommand::Nothing => Report::Note(""),
    })
}

/// `locks ADDR` on a Windows guest: an ERESOURCE on the list, else a push
/// lock or a fast/guarded mutex the walks found (by its address, or a
/// mutex by the Event or Gate its waiters block on), else the address read
/// as an ERESOURCE, as before. The cheap resource list is asked first; the
/// push-lock walk scans memory only when a thread waits `WrPushLock`.
fn windows_lock<'k>(k: &'k Kernel<'_>, a: VirtAddr) -> Result<Report<'k>> {
    if let Some(r) = k.eresources().items.iter().find(|r| r.address == a) {
        return Ok(Report::Eresource(r.clone()));
    }
    if let Some(l) = k.push_locks().items.iter().find(|l| l.address == a) {
        return Ok(Report::PushLock(l.clone()));
    }
    let mutexes = k.mutexes();
    if let Some(m) = mutexes
        .items
        .into_iter()
        .find(|m| m.address == a || m.wait_object == a)
    {
        return Ok(Report::Mutex(m));
    }
    Ok(Report::Eresource(k.eresource(a)?))
}

/// The modules without a symbol table whose frames the verdict's evidence
/// shows, in the order it shows them (by each frame's module, as the
/// stack walker named it).
fn evidence_missing_symbols(k: &Kernel<'_>, verdict: &Verdict) -> Vec<MissingSymbols> {
    let modules: Vec<&str> = verdict
        .findings
        .iter()
        .flat_map(|f| &f.chain)
        .filter_map(|s| match s {
            EvidenceStep::Thread { stack, .. } => Some(stack),
            _ => None,
        })
        .flatten()
        .filter_map(|f| f.module.as_deref())
        .collect();
    let mut found: Vec<(usize, MissingSymbols)> = k
        .missing_module_symbols()
        .into_iter()
        .filter_map(|m| {
            let first = modules
                .iter()
                .position(|f| f.eq_ignore_ascii_case(m.frame_module()))?;
            Some((first, m))
        })
        .collect();
    // In the order the evidence shows them, as the stack listings do.
    found.sort_by_key(|(first, m)| (*first, m.base));
    found.into_iter().map(|(_, m)| m).collect()
}
