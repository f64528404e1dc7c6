//! One function per command. Every command opens the dump, finds the
//! kernel, asks the model, and hands the answer to a renderer: text by
//! default, one JSON document with `--json`.

use crate::cli::{Cli, Command, GlobalArgs};
use crate::output::{emit, emit_json};
use crate::shell::ShellCommand;
use anyhow::{Context, Result};
use hangscope_dump::Dump;
use hangscope_nt::{Kernel, SymbolSource, VirtAddr};
use hangscope_report::windbg;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Run the command; returns the exit code.
pub fn run(cli: &Cli) -> Result<u8> {
    let g = &cli.global;
    match &cli.command {
        Command::Demo(a) => crate::demo::run(g, a),
        Command::Capture(a) => {
            let manifest = hangscope_capture::cli::run(a)?;
            if g.json {
                emit_json("capture", serde_json::to_value(&manifest)?)?;
            } else {
                emit(&format!(
                    "wrote {} dump(s) and {}",
                    manifest.dumps.len(),
                    a.out.join(hangscope_capture::MANIFEST_FILE).display()
                ))?;
            }
            Ok(0)
        }
        Command::Info(a) => {
            let dump = open_dump(&a.dump)?;
            let kernel = open_kernel(g, &a.dump, &dump);
            let dump_part = dump_summary(&a.dump, &dump);
            match kernel {
                Ok(k) => {
                    let info = k.info();
                    if g.json {
                        emit_json(
                            "info",
                            serde_json::json!({"dump": dump_part, "kernel": info}),
                        )?;
                    } else {
                        emit(&format!(
                            "{}\n{}",
                            dump_text(&dump_part, &dump.cpus),
                            windbg::kernel_info(&info)
                        ))?;
                    }
                    Ok(0)
                }
                Err(e) => {
                    // The dump itself was readable: show it, then the error.
                    if g.json {
                        emit_json(
                            "info",
                            serde_json::json!({"dump": dump_part, "kernel": null, "error": format!("{e:#}")}),
                        )?;
                    } else {
                        emit(&dump_text(&dump_part, &dump.cpus))?;
                    }
                    Err(e)
                }
            }
        }
        Command::Shell(a) => crate::shellrun::run(g, &a.dump),
        other => {
            let (path, sc) = to_shell_command(other);
            let dump = open_dump(path)?;
            let kernel = open_kernel(g, path, &dump)?;
            // analyze carries them among its warnings; the listings say
            // them once on stderr, so that no reader of stdout is misled.
            if !matches!(sc, ShellCommand::Analyze) {
                warn_dump_notes(&kernel);
            }
            let html = match other {
                Command::Analyze(a) => a.html.clone(),
                _ => None,
            };
            let out = execute(&kernel, &sc, g.json, html.as_deref())?;
            emit(&out.text)?;
            Ok(out.code)
        }
    }
}

/// The one-shot commands are the shell's commands over one dump.
fn to_shell_command(c: &Command) -> (&Path, ShellCommand) {
    match c {
        Command::Ps(a) => (&a.dump, ShellCommand::Processes),
        Command::Threads(a) => (&a.dump.dump, ShellCommand::Threads(a.pid)),
        Command::Lm(a) => (&a.dump, ShellCommand::Modules),
        Command::Dt(a) => (&a.dump.dump, ShellCommand::Dt(a.type_name.clone(), a.addr)),
        Command::Db(a) => (&a.dump.dump, ShellCommand::Db(a.addr, a.length)),
        Command::Dq(a) => (&a.dump.dump, ShellCommand::Dq(a.addr, a.length.div_ceil(8))),
        Command::Locks(a) => (
            &a.dump.dump,
            ShellCommand::Locks {
                addr: a.addr,
                all: a.all,
            },
        ),
        Command::Thread(a) => (&a.dump.dump, ShellCommand::Thread(a.addr)),
        Command::Irp(a) => (&a.dump.dump, ShellCommand::Irp(a.addr)),
        Command::Fileobj(a) => (&a.dump.dump, ShellCommand::Fileobj(a.addr)),
        Command::Handles(a) => (&a.dump.dump, ShellCommand::Handles(a.pid, a.path.clone())),
        Command::Stacks(a) => (&a.dump.dump, ShellCommand::Stacks(a.filter.clone())),
        Command::Running(a) => (&a.dump, ShellCommand::Running),
        Command::Analyze(a) => (&a.dump.dump, ShellCommand::Analyze),
        Command::Info(a) | Command::Shell(a) => (&a.dump, ShellCommand::Info),
        Command::Demo(_) | Command::Capture(_) => unreachable!("handled before"),
    }
}

/// A command's output and exit code.
pub struct Output {
    /// Text or JSON for stdout.
    pub text: String,
    /// Exit code (non-zero only for `analyze` verdicts).
    pub code: u8,
}

fn out(text: String) -> Result<Output> {
    Ok(Output { text, code: 0 })
}

fn json<T: Serialize>(kind: &str, v: &T) -> Result<Output> {
    let doc = crate::output::json_document(kind, serde_json::to_value(v)?);
    out(serde_json::to_string_pretty(&doc)?)
}

/// Run one command against an opened kernel.
pub fn execute(
    k: &Kernel<'_>,
    c: &ShellCommand,
    as_json: bool,
    html: Option<&Path>,
) -> Result<Output> {
    match c {
        ShellCommand::Processes => {
            let p = k.processes();
            if as_json {
                json("processes", p)
            } else {
                out(windbg::ps_table(p))
            }
        }
        ShellCommand::Threads(pid) => {
            let t = k.threads_of(*pid);
            if as_json {
                json(
                    "threads",
                    &serde_json::json!({"items": t, "warnings": k.threads().warnings}),
                )
            } else {
                out(windbg::threads_table(&t, &k.threads().warnings))
            }
        }
        ShellCommand::Modules => {
            let m = k.modules();
            if as_json {
                json("modules", &m)
            } else {
                out(windbg::module_list(&m))
            }
        }
        ShellCommand::Dt(ty, addr) => {
            let d = k.dt(ty, VirtAddr(*addr))?;
            if as_json {
                json("dt", &d)
            } else {
                out(windbg::dt(&d))
            }
        }
        ShellCommand::Db(addr, len) => {
            let m = k.read_memory(VirtAddr(*addr), *len);
            if as_json {
                json("memory", &m)
            } else {
                out(windbg::db(&m))
            }
        }
        ShellCommand::Dq(addr, count) => {
            let m = k.read_memory(VirtAddr(*addr), count.saturating_mul(8));
            if as_json {
                json("memory", &m)
            } else {
                out(windbg::dq(&m))
            }
        }
        ShellCommand::Locks { addr: Some(a), .. } => {
            let r = k.eresource(VirtAddr(*a))?;
            if as_json {
                json("eresource", &r)
            } else {
                out(windbg::lock(&r))
            }
        }
        ShellCommand::Locks { addr: None, all } => {
            let r = k.eresources();
            if as_json {
                json("eresources", r)
            } else {
                out(windbg::locks(r, *all))
            }
        }
        ShellCommand::Thread(a) => {
            let d = k.thread_detail(VirtAddr(*a))?;
            if as_json {
                json("thread", &d)
            } else {
                out(with_symbols_note(windbg::thread(&d), &d.missing_symbols))
            }
        }
        ShellCommand::Irp(a) => {
            let i = k.irp(VirtAddr(*a))?;
            if as_json {
                json("irp", &i)
            } else {
                out(windbg::irp(&i))
            }
        }
        ShellCommand::Fileobj(a) => {
            let f = k.file_object(VirtAddr(*a))?;
            if as_json {
                json("file_object", &f)
            } else {
                out(windbg::fileobj(&f))
            }
        }
        ShellCommand::Handles(pid, path) => {
            let r = k.handles_filtered(*pid, path.as_deref());
            if as_json {
                json("handles", &r)
            } else {
                out(windbg::handles(&r))
            }
        }
        ShellCommand::Stacks(filter) => {
            let r = k.stacks(&hangscope_nt::stacks::StackFilter {
                pid: None,
                contains: filter.clone(),
            });
            if as_json {
                json("stacks", &r)
            } else {
                out(with_symbols_note(
                    hangscope_report::stacks::stacks(&r),
                    &r.missing_symbols,
                ))
            }
        }
        ShellCommand::Running => {
            let r = k.running();
            if as_json {
                json("running", &r)
            } else {
                let mut missing: Vec<hangscope_nt::MissingSymbols> = Vec::new();
                for m in r.iter().flat_map(|c| &c.stack.missing_symbols) {
                    if !missing.iter().any(|x| x.base == m.base) {
                        missing.push(m.clone());
                    }
                }
                out(with_symbols_note(
                    hangscope_report::stacks::running(&r),
                    &missing,
                ))
            }
        }
        ShellCommand::Analyze => {
            use hangscope_waitgraph::WaitSource;
            let input = k.wait_graph_input();
            let verdict = hangscope_waitgraph::analyze(&input, &Default::default());
            if let Some(path) = html {
                std::fs::write(path, hangscope_report::html::render_html(&verdict)).with_context(
                    || format!("cannot write the HTML report to {}", path.display()),
                )?;
            }
            let text = if as_json {
                hangscope_report::verdict::render_json(&verdict)
            } else {
                with_symbols_note(
                    hangscope_report::verdict::render_text(&verdict),
                    &evidence_missing_symbols(k, &verdict),
                )
            };
            Ok(Output {
                text,
                code: verdict.overall.exit_code(),
            })
        }
        ShellCommand::Info => {
            let i = k.info();
            if as_json {
                json("kernel", &i)
            } else {
                out(windbg::kernel_info(&i))
            }
        }
        ShellCommand::Help => out(crate::shell::HELP.to_string()),
        ShellCommand::Quit | ShellCommand::Nothing => out(String::new()),
    }
}

/// A stack listing followed, once, by the modules on its stacks that had no
/// symbol table and what to fetch (nothing when every module had one).
fn with_symbols_note(mut text: String, missing: &[hangscope_nt::MissingSymbols]) -> String {
    for m in missing {
        log::info!("{m}");
        for s in &m.searched {
            log::debug!("  searched {s}");
        }
    }
    text.push_str(&hangscope_report::stacks::missing_symbols_note(missing));
    text
}

/// The modules without a symbol table whose frames the verdict's evidence
/// shows (`Ntfs!...` or `Ntfs+0x...`), in the order it shows them.
fn evidence_missing_symbols(
    k: &Kernel<'_>,
    verdict: &hangscope_waitgraph::Verdict,
) -> Vec<hangscope_nt::MissingSymbols> {
    use hangscope_waitgraph::EvidenceStep;
    let frames: Vec<String> = verdict
        .findings
        .iter()
        .flat_map(|f| &f.chain)
        .filter_map(|s| match s {
            EvidenceStep::Thread { stack, .. } => Some(stack),
            _ => None,
        })
        .flatten()
        .map(|f| f.to_ascii_lowercase())
        .collect();
    let mut found: Vec<(usize, hangscope_nt::MissingSymbols)> = k
        .missing_module_symbols()
        .into_iter()
        .filter_map(|m| {
            let name = m.module.to_ascii_lowercase();
            let short = name.rsplit_once('.').map(|x| x.0).unwrap_or(&name);
            let first = frames.iter().position(|f| {
                f.strip_prefix(short)
                    .is_some_and(|r| r.starts_with('!') || r.starts_with('+'))
            })?;
            Some((first, m))
        })
        .collect();
    // In the order the evidence shows them, as the stack listings do.
    found.sort_by_key(|(first, m)| (*first, m.base));
    found.into_iter().map(|(_, m)| m).collect()
}

/// Open a dump, saying which file failed.
pub fn open_dump(path: &Path) -> Result<Dump> {
    Dump::open(path).with_context(|| format!("cannot open the dump {}", path.display()))
}

/// Where symbols are looked for, in order: `--symbols`, `_NT_SYMBOL_PATH`,
/// `$HANGSCOPE_SYMBOLS`, `../shared/symbols` beside the working directory
/// and beside the source tree, and the user cache.
pub fn symbol_spec(g: &GlobalArgs) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(s) = &g.symbols {
        parts.push(s.clone());
    }
    if let Ok(s) = std::env::var("_NT_SYMBOL_PATH") {
        if !s.trim().is_empty() {
            parts.push(s);
        }
    }
    for d in default_symbol_dirs() {
        parts.push(d.display().to_string());
    }
    parts.join(";")
}

/// Directories of symbol tables that exist on this machine.
///
/// `HANGSCOPE_NO_DEFAULT_SYMBOLS=1` drops the built-in locations, so that
/// only `--symbols` and `_NT_SYMBOL_PATH` are searched (tests of one symbol
/// source, or a machine where the shared tables must not be used).
pub fn default_symbol_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if std::env::var_os("HANGSCOPE_NO_DEFAULT_SYMBOLS").is_some_and(|v| v == "1") {
        return dirs;
    }
    if let Ok(d) = std::env::var("HANGSCOPE_SYMBOLS") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("../shared/symbols"));
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/symbols"));
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// The symbol source for the global options.
pub fn symbol_source(g: &GlobalArgs) -> Result<SymbolSource> {
    let spec = symbol_spec(g);
    log::info!("symbol path: {spec}");
    SymbolSource::from_path_spec(&spec).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Find the kernel in an opened dump; the error names the file.
pub fn open_kernel<'d>(g: &GlobalArgs, path: &Path, dump: &'d Dump) -> Result<Kernel<'d>> {
    let src = symbol_source(g)?;
    Kernel::open(dump, &src).map_err(|e| {
        // A dump cut short explains a kernel that cannot be found: say so.
        let notes = hangscope_nt::kernel::ordered_dump_notes(dump.notes());
        let because = if notes.is_empty() {
            String::new()
        } else {
            format!("; the dump reader noted: {}", notes.join("; "))
        };
        anyhow::anyhow!(
            "no usable Windows kernel in {}: {e}{because}",
            path.display()
        )
    })
}

/// The dump reader's notes (truncation first), once on stderr.
pub fn warn_dump_notes(k: &Kernel<'_>) {
    for n in k.dump_notes() {
        eprintln!("hangscope: warning: dump file: {n}");
    }
}

/// What `info` shows about the dump file itself.
#[derive(Debug, Serialize)]
pub struct DumpSummary {
    path: String,
    format: String,
    file_size: u64,
    ranges: Vec<(String, String)>,
    /// Registers as hex strings (JSON numbers lose precision above 2^53).
    cpus: Vec<serde_json::Value>,
    hints: hangscope_dump::KernelHints,
    /// What the reader noted while opening the file, truncation first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// A vCPU's registers for JSON: every value a `0x` hex string.
fn cpu_json(c: &hangscope_dump::CpuState) -> serde_json::Value {
    const GPR: [&str; 16] = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    let hex = |v: u64| serde_json::Value::String(format!("{v:#018x}"));
    let opt = |v: Option<u64>| v.map(hex).unwrap_or(serde_json::Value::Null);
    let mut m = serde_json::Map::new();
    m.insert("index".into(), c.index.into());
    for (name, v) in GPR.iter().zip(c.gpr.iter()) {
        m.insert((*name).into(), hex(*v));
    }
    m.insert("rip".into(), hex(c.rip));
    m.insert("rflags".into(), hex(c.rflags));
    const SEL: [&str; 6] = ["cs", "ds", "es", "fs", "gs", "ss"];
    for (name, v) in SEL.iter().zip(c.selectors.iter()) {
        m.insert((*name).into(), format!("{v:#06x}").into());
    }
    for (name, v) in [
        ("fs_base", c.fs_base),
        ("gs_base", c.gs_base),
        ("kernel_gs_base", c.kernel_gs_base),
        ("cr0", c.cr0),
        ("cr2", c.cr2),
        ("cr3", c.cr3),
        ("cr4", c.cr4),
        ("efer", c.efer),
    ] {
        m.insert(name.into(), opt(v));
    }
    serde_json::Value::Object(m)
}

fn dump_summary(path: &Path, d: &Dump) -> DumpSummary {
    DumpSummary {
        path: path.display().to_string(),
        format: format!("{:?}", d.format),
        file_size: d.file_size,
        ranges: d
            .memory
            .ranges()
            .iter()
            .map(|r| {
                (
                    format!("{:#x}", r.start.0),
                    format!("{:#x}", r.start.0.saturating_add(r.len)),
                )
            })
            .collect(),
        cpus: d.cpus.iter().map(cpu_json).collect(),
        hints: d.hints.clone(),
        notes: hangscope_nt::kernel::ordered_dump_notes(d.notes()),
    }
}

fn dump_text(s: &DumpSummary, cpus: &[hangscope_dump::CpuState]) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Dump:     {} ({}, {} bytes)",
        s.path, s.format, s.file_size
    );
    for n in &s.notes {
        let _ = writeln!(t, "Warning:  {n}");
    }
    let _ = writeln!(t, "Memory:   {} range(s)", s.ranges.len());
    for (a, b) in &s.ranges {
        let _ = writeln!(t, "          {a:>18} - {b}");
    }
    for c in cpus {
        let g = &c.gpr;
        let _ = writeln!(t, "CPU {}:", c.index);
        let _ = writeln!(
            t,
            "  rax={:016x} rbx={:016x} rcx={:016x} rdx={:016x}",
            g[0], g[1], g[2], g[3]
        );
        let _ = writeln!(
            t,
            "  rsi={:016x} rdi={:016x} rbp={:016x} rsp={:016x}",
            g[4], g[5], g[6], g[7]
        );
        let _ = writeln!(
            t,
            "  r8 ={:016x} r9 ={:016x} r10={:016x} r11={:016x}",
            g[8], g[9], g[10], g[11]
        );
        let _ = writeln!(
            t,
            "  r12={:016x} r13={:016x} r14={:016x} r15={:016x}",
            g[12], g[13], g[14], g[15]
        );
        let opt = |v: Option<u64>| {
            v.map(|v| format!("{v:016x}"))
                .unwrap_or_else(|| "?".repeat(16))
        };
        let _ = writeln!(t, "  rip={:016x} rflags={:08x}", c.rip, c.rflags);
        let _ = writeln!(
            t,
            "  cr0={} cr3={} cr4={}",
            opt(c.cr0),
            opt(c.cr3),
            opt(c.cr4)
        );
        let _ = writeln!(
            t,
            "  gs_base={} kernel_gs_base={} fs_base={}",
            opt(c.gs_base),
            opt(c.kernel_gs_base),
            opt(c.fs_base)
        );
    }
    t
}
