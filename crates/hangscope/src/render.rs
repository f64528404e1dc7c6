//! The one rendering seam: every command returns a typed [`Report`], and
//! [`Report::render`] alone picks the renderer (WinDbg-shaped text, one
//! JSON document, or the HTML page), the way ripgrep's printers sit behind
//! its `Sink`. Commands never ask which format was wanted.

use crate::dumpinfo::DumpSummary;
use anyhow::{bail, Context, Result};
use hangscope_linux as linux;
use hangscope_nt::model::*;
use hangscope_report::{stacks, windbg};
use hangscope_waitgraph::Verdict;
use serde::Serialize;
use std::path::Path;

/// The kernel `info` found, for either operating system.
#[derive(Debug)]
pub enum KernelSummary {
    /// A Windows kernel.
    Windows(KernelInfo),
    /// A Linux kernel.
    Linux(linux::KernelInfo),
}

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text (WinDbg's shapes).
    Text,
    /// One JSON document with `schema_version` (docs/json-schema.md).
    Json,
    /// A standalone HTML page (only the verdict has one).
    Html,
}

impl Format {
    /// `--json` or text.
    pub fn from_json_flag(json: bool) -> Format {
        if json {
            Format::Json
        } else {
            Format::Text
        }
    }
}

/// What a command found, before it is written in any format. The model's
/// listings are borrowed from the kernel, which caches them.
#[derive(Debug)]
pub enum Report<'k> {
    /// `ps`.
    Processes(&'k Partial<ProcessInfo>),
    /// `threads [--pid]`: the threads asked for and the listing's warnings.
    Threads {
        /// The threads.
        threads: Vec<&'k ThreadInfo>,
        /// Problems met listing every thread.
        warnings: &'k [Warning],
    },
    /// `lm`.
    Modules(Partial<ModuleInfo>),
    /// `dt`.
    Dt(DtOutput),
    /// `db`.
    Bytes(MemoryDump),
    /// `dq`.
    Quads(MemoryDump),
    /// `locks ADDR`.
    Eresource(EresourceInfo),
    /// `locks ADDR` when ADDR is a push lock with waiters.
    PushLock(PushLockInfo),
    /// `locks ADDR` when ADDR is a fast or guarded mutex with waiters (or
    /// the Event or Gate its waiters block on).
    Mutex(MutexInfo),
    /// `locks [-V]`: the ERESOURCE table, then push locks and fast/guarded
    /// mutexes with waiters.
    Eresources {
        /// Every resource.
        list: &'k Partial<EresourceInfo>,
        /// Show idle resources too (push locks and mutexes are found from
        /// their waiters, so there are no idle ones to add).
        all: bool,
        /// Push locks with waiters.
        push_locks: &'k Partial<PushLockInfo>,
        /// Fast and guarded mutexes with waiters.
        mutexes: Partial<MutexInfo>,
    },
    /// `thread`.
    Thread(ThreadDetail),
    /// `irp`.
    Irp(IrpInfo),
    /// `fileobj`.
    FileObject(FileObjectInfo),
    /// `alpc`.
    Alpc(hangscope_nt::alpc::AlpcListing),
    /// `alpc ADDR`.
    AlpcObject(hangscope_nt::alpc::AlpcObject),
    /// `handles`.
    Handles(HandleReport),
    /// `stacks`.
    Stacks(StacksReport),
    /// `running`.
    Running(Vec<RunningCpu>),
    /// `analyze`: the verdict, and the drivers without symbols whose
    /// frames its evidence shows.
    Verdict {
        /// The verdict.
        verdict: Verdict,
        /// What to fetch, in the order the evidence shows the modules.
        missing_symbols: Vec<MissingSymbols>,
    },
    /// The shell's `info`: the kernel alone.
    Kernel(KernelInfo),
    /// `info`: the dump file, and the kernel or why there is none.
    Info {
        /// The dump file.
        dump: DumpSummary,
        /// The kernel found, or the error that stopped the search.
        kernel: std::result::Result<KernelSummary, String>,
    },
    /// `ps` on a Linux guest: every task, shown by thread group.
    LinuxProcesses(linux::Partial<linux::TaskInfo>),
    /// `threads [--pid]` on a Linux guest.
    LinuxThreads {
        /// The tasks asked for, and the listing's warnings.
        tasks: linux::Partial<linux::TaskInfo>,
        /// `jiffies_64`, for how long ago the hung-task detector looked.
        jiffies: Option<u64>,
        /// The tick rate.
        hz: Option<u64>,
    },
    /// `dt` on a Linux guest (C's names for types).
    LinuxDt(DtOutput),
    /// `lm` on a Linux guest.
    LinuxModules(linux::Partial<linux::ModuleInfo>),
    /// `dmesg`: the printk records, the last `tail` of them when asked.
    Dmesg {
        /// Every record read.
        records: linux::Partial<linux::DmesgRecord>,
        /// Show only the last this many.
        tail: Option<usize>,
    },
    /// The shell's `info` on a Linux guest.
    LinuxKernel(linux::KernelInfo),
    /// `stacks [FILTER]` on a Linux guest: every task's kernel stack.
    LinuxStacks(linux::Partial<linux::TaskStack>),
    /// `running` on a Linux guest: each CPU and what it runs.
    LinuxRunning(linux::Partial<linux::RunningCpu>),
    /// `locks` on a Linux guest.
    LinuxLocks(linux::Partial<linux::LockInfo>),
    /// `thread PID|ADDR` on a Linux guest: one task in depth.
    LinuxThread(linux::TaskDetail),
    /// `files` (or `handles`) on a Linux guest: open files per file table,
    /// or who holds files under a path.
    LinuxFiles(linux::FilesReport),
    /// `analyze` on a Linux guest: the verdict, and what the kernel
    /// itself says (hung-task reports, D tasks that are no hang).
    LinuxVerdict {
        /// The verdict.
        verdict: Verdict,
        /// Notes, in plain sentences.
        notes: Vec<String>,
    },
    /// `capture`: the manifest and where it was written.
    Capture {
        /// The manifest.
        manifest: hangscope_capture::Manifest,
        /// Its path.
        path: std::path::PathBuf,
    },
    /// Fixed text (the shell's help); the same in every format.
    Note(&'static str),
}

impl Report<'_> {
    /// The exit code this report asks for (a verdict's; 0 otherwise).
    pub fn exit_code(&self) -> u8 {
        match self {
            Report::Verdict { verdict, .. } | Report::LinuxVerdict { verdict, .. } => {
                verdict.overall.exit_code()
            }
            _ => 0,
        }
    }

    /// The report in `format`: the only place that chooses a renderer.
    pub fn render(&self, format: Format) -> Result<String> {
        match format {
            Format::Text => Ok(self.text()),
            Format::Json => self.json(),
            Format::Html => match self {
                Report::Verdict { verdict, .. } | Report::LinuxVerdict { verdict, .. } => {
                    Ok(hangscope_report::render_html(verdict))
                }
                _ => bail!("only `analyze` has an HTML report"),
            },
        }
    }

    /// WinDbg-shaped text.
    fn text(&self) -> String {
        match self {
            Report::Processes(p) => windbg::ps_table(p),
            Report::Threads { threads, warnings } => windbg::threads_table(threads, warnings),
            Report::Modules(m) => windbg::module_list(m),
            Report::Dt(d) => windbg::dt(d),
            Report::Bytes(m) => windbg::db(m),
            Report::Quads(m) => windbg::dq(m),
            Report::Eresource(r) => windbg::lock(r),
            Report::PushLock(l) => hangscope_report::pushlock_mutex::push_lock(l),
            Report::Mutex(m) => hangscope_report::pushlock_mutex::mutex(m),
            Report::Eresources {
                list,
                all,
                push_locks,
                mutexes,
            } => format!(
                "{}{}",
                windbg::locks(list, *all),
                hangscope_report::pushlock_mutex::sections(push_locks, mutexes)
            ),
            Report::Thread(d) => with_symbols_note(windbg::thread(d), &d.missing_symbols),
            Report::Irp(i) => windbg::irp(i),
            Report::FileObject(f) => windbg::fileobj(f),
            Report::Alpc(l) => hangscope_report::alpc::listing(l),
            Report::AlpcObject(o) => hangscope_report::alpc::object(o),
            Report::Handles(h) => windbg::handles(h),
            Report::Stacks(r) => with_symbols_note(stacks::stacks(r), &r.missing_symbols),
            Report::Running(cpus) => {
                let mut missing: Vec<MissingSymbols> = Vec::new();
                for m in cpus.iter().flat_map(|c| &c.stack.missing_symbols) {
                    if !missing.iter().any(|x| x.base == m.base) {
                        missing.push(m.clone());
                    }
                }
                with_symbols_note(stacks::running(cpus), &missing)
            }
            Report::Verdict {
                verdict,
                missing_symbols,
            } => with_symbols_note(hangscope_report::render_text(verdict), missing_symbols),
            Report::Kernel(i) => windbg::kernel_info(i),
            Report::Info { dump, kernel } => match kernel {
                Ok(KernelSummary::Windows(k)) => {
                    format!("{}\n{}", dump.text(), windbg::kernel_info(k))
                }
                Ok(KernelSummary::Linux(k)) => {
                    format!(
                        "{}\n{}",
                        dump.text(),
                        hangscope_report::linux::kernel_info(k)
                    )
                }
                Err(_) => dump.text(),
            },
            Report::LinuxProcesses(p) => hangscope_report::linux::ps_table(p),
            Report::LinuxThreads { tasks, jiffies, hz } => {
                let list: Vec<&linux::TaskInfo> = tasks.items.iter().collect();
                hangscope_report::linux::threads_table(&list, &tasks.warnings, *jiffies, *hz)
            }
            Report::LinuxModules(m) => hangscope_report::linux::module_list(m),
            Report::LinuxDt(d) => hangscope_report::linux::dt(d),
            Report::Dmesg { records, tail } => hangscope_report::linux::dmesg(records, *tail),
            Report::LinuxKernel(i) => hangscope_report::linux::kernel_info(i),
            Report::LinuxStacks(s) => hangscope_report::linux::stacks(s),
            Report::LinuxRunning(r) => hangscope_report::linux::running(r),
            Report::LinuxLocks(l) => hangscope_report::linux::locks(l),
            Report::LinuxThread(d) => hangscope_report::linux::thread(d),
            Report::LinuxFiles(f) => hangscope_report::linux::files(f),
            Report::LinuxVerdict { verdict, notes } => format!(
                "{}{}",
                hangscope_report::render_text(verdict),
                hangscope_report::linux::verdict_notes(notes)
            ),
            Report::Capture { manifest, path } => format!(
                "wrote {} dump(s) and {}",
                manifest.dumps.len(),
                path.display()
            ),
            Report::Note(text) => text.to_string(),
        }
    }

    /// One JSON document.
    fn json(&self) -> Result<String> {
        match self {
            Report::Processes(p) => listing("processes", p),
            Report::Threads { threads, warnings } => listing(
                "threads",
                &serde_json::json!({"items": threads, "warnings": warnings}),
            ),
            Report::Modules(m) => listing("modules", m),
            Report::Dt(d) => listing("dt", d),
            Report::Bytes(m) | Report::Quads(m) => listing("memory", m),
            Report::Eresource(r) => listing("eresource", r),
            Report::PushLock(l) => listing("push_lock", l),
            Report::Mutex(m) => listing("mutex", m),
            // The ERESOURCE listing's keys as before; the other locks
            // beside them, each absent when it has nothing to show (so a
            // dump without them gives the same document as before).
            Report::Eresources {
                list,
                push_locks,
                mutexes,
                ..
            } => {
                let mut data = serde_json::json!({
                    "items": list.items,
                    "warnings": list.warnings,
                });
                if !push_locks.items.is_empty() || !push_locks.warnings.is_empty() {
                    data["push_locks"] = serde_json::to_value(push_locks)?;
                }
                if !mutexes.items.is_empty() || !mutexes.warnings.is_empty() {
                    data["mutexes"] = serde_json::to_value(mutexes)?;
                }
                listing("eresources", &data)
            }
            Report::Thread(d) => listing("thread", d),
            Report::Irp(i) => listing("irp", i),
            Report::FileObject(f) => listing("file_object", f),
            Report::Alpc(l) => listing("alpc", l),
            Report::AlpcObject(o) => listing("alpc_object", o),
            Report::Handles(h) => listing("handles", h),
            Report::Stacks(r) => listing("stacks", r),
            Report::Running(cpus) => listing("running", cpus),
            Report::Verdict { verdict, .. } => Ok(hangscope_report::render_json(verdict)),
            Report::Kernel(i) => listing("kernel", i),
            Report::Info { dump, kernel } => match kernel {
                Ok(KernelSummary::Windows(k)) => {
                    listing("info", &serde_json::json!({"dump": dump, "kernel": k}))
                }
                Ok(KernelSummary::Linux(k)) => listing(
                    "info",
                    &serde_json::json!({"dump": dump, "os": "linux", "kernel": k}),
                ),
                Err(e) => listing(
                    "info",
                    &serde_json::json!({"dump": dump, "kernel": null, "error": e}),
                ),
            },
            Report::Capture { manifest, .. } => listing("capture", manifest),
            Report::Note(text) => Ok(text.to_string()),
            Report::LinuxProcesses(p) => listing(
                "linux_processes",
                &linux::Partial {
                    items: p
                        .items
                        .iter()
                        .filter(|t| t.pid == t.tgid)
                        .cloned()
                        .collect(),
                    warnings: p.warnings.clone(),
                },
            ),
            Report::LinuxThreads { tasks, .. } => listing("linux_tasks", tasks),
            Report::LinuxModules(m) => listing("linux_modules", m),
            Report::LinuxDt(d) => listing("dt", d),
            Report::Dmesg { records, tail } => {
                let skip = tail.map_or(0, |n| records.items.len().saturating_sub(n));
                listing(
                    "dmesg",
                    &serde_json::json!({
                        "items": &records.items[skip..],
                        "warnings": records.warnings,
                    }),
                )
            }
            Report::LinuxKernel(i) => listing("linux_kernel", i),
            Report::LinuxStacks(s) => listing("linux_stacks", s),
            Report::LinuxRunning(r) => listing("linux_running", r),
            Report::LinuxLocks(l) => listing("linux_locks", l),
            Report::LinuxThread(d) => listing("linux_thread", d),
            Report::LinuxFiles(f) => listing("linux_files", f),
            Report::LinuxVerdict { verdict, notes } => {
                let mut doc: serde_json::Value =
                    serde_json::from_str(&hangscope_report::render_json(verdict))?;
                if let Some(o) = doc.as_object_mut() {
                    o.insert("linux_notes".into(), serde_json::to_value(notes)?);
                }
                Ok(serde_json::to_string_pretty(&doc)?)
            }
        }
    }
}

/// With `--html FILE`, the report's HTML page (before anything is printed,
/// so that a file that cannot be written stops the run).
pub fn write_html(report: &Report<'_>, path: Option<&Path>) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    std::fs::write(path, report.render(Format::Html)?)
        .with_context(|| format!("cannot write the HTML report to {}", path.display()))
}

/// A listing's JSON document (the envelope is the report crate's).
fn listing<T: Serialize + ?Sized>(kind: &str, v: &T) -> Result<String> {
    let doc = hangscope_report::json::listing_document(kind, serde_json::to_value(v)?);
    Ok(serde_json::to_string_pretty(&doc)?)
}

/// A stack listing followed, once, by the modules on its stacks that had no
/// symbol table and what to fetch (nothing when every module had one).
fn with_symbols_note(mut text: String, missing: &[MissingSymbols]) -> String {
    for m in missing {
        log::info!("{m}");
        for s in &m.searched {
            log::debug!("  searched {s}");
        }
    }
    text.push_str(&stacks::missing_symbols_note(missing));
    text
}
