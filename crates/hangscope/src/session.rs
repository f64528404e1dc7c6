//! Opening a dump and its kernel, with the symbol path every command
//! shares. The commands, the shell and the demo all open through here.

use crate::cli::GlobalArgs;
use anyhow::{Context, Result};
use hangscope_dump::{Dump, DumpFormat};
use hangscope_linux::{LinuxKernel, OpenOptions};
use hangscope_nt::{Kernel, SymbolSource};
use hangscope_symbols::{SymbolCache, SymbolTable};
use std::path::{Path, PathBuf};

/// Open a dump, saying which file failed.
pub fn open_dump(path: &Path) -> Result<Dump> {
    Dump::open(path).with_context(|| format!("cannot open the dump {}", path.display()))
}

/// Where symbols are looked for, in order: `--symbols`, `_NT_SYMBOL_PATH`,
/// `$HANGSCOPE_SYMBOLS`, `../shared/symbols` beside the working directory
/// and beside the source tree, the user cache, and last the tables built
/// into hangscope (`builtin*`: the Windows 10 19041 kernel).
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
    if default_symbols_wanted() {
        parts.push("builtin*".into());
    }
    parts.join(";")
}

/// False with `HANGSCOPE_NO_DEFAULT_SYMBOLS=1`: only what the user named.
pub fn default_symbols_wanted() -> bool {
    std::env::var_os("HANGSCOPE_NO_DEFAULT_SYMBOLS").is_none_or(|v| v != "1")
}

/// Directories of symbol tables that exist on this machine.
///
/// `HANGSCOPE_NO_DEFAULT_SYMBOLS=1` drops the built-in locations and
/// tables, so that only `--symbols` and `_NT_SYMBOL_PATH` are searched
/// (tests of one symbol source, or a machine where the shared tables must
/// not be used). `HANGSCOPE_NO_SHARED_SYMBOLS=1` drops only the two
/// `../shared/symbols` directories (a test of what a fresh clone finds).
pub fn default_symbol_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if !default_symbols_wanted() {
        return dirs;
    }
    if let Ok(d) = std::env::var("HANGSCOPE_SYMBOLS") {
        dirs.push(PathBuf::from(d));
    }
    if std::env::var_os("HANGSCOPE_NO_SHARED_SYMBOLS").is_none_or(|v| v != "1") {
        dirs.push(PathBuf::from("../shared/symbols"));
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/symbols"));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// The symbol source for the global options.
pub fn symbol_source(g: &GlobalArgs) -> Result<SymbolSource> {
    let spec = symbol_spec(g);
    log::info!("symbol path: {spec}");
    SymbolSource::from_path_spec(&spec).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The guest's kernel, recognised from the dump's content.
#[derive(Debug)]
pub enum Guest<'d> {
    /// A Windows kernel (`hangscope-nt`).
    Windows(Kernel<'d>),
    /// A Linux kernel (`hangscope-linux`).
    Linux(LinuxKernel<'d>),
}

/// Find the guest's kernel, Windows or Linux, by what the dump holds: a
/// Linux VMCOREINFO note names a Linux kernel at once; otherwise the
/// Windows search runs first (its crash dumps and its self-mapping page
/// tables are unmistakable), and only when it finds no Windows kernel at
/// all is the dump searched for a Linux one (a guest without VMCOREINFO,
/// a raw image). The error names the file and says what each search met.
pub fn open_guest<'d>(g: &GlobalArgs, path: &Path, dump: &'d Dump) -> Result<Guest<'d>> {
    let linux_note = dump
        .hints
        .vmcoreinfo
        .as_deref()
        .is_some_and(|v| v.lines().any(|l| l.starts_with("OSRELEASE=")));
    if linux_note {
        return open_linux(g, path, dump).map(Guest::Linux);
    }
    let src = symbol_source(g)?;
    match Kernel::open(dump, &src) {
        Ok(k) => Ok(Guest::Windows(k)),
        Err(e) => {
            let windows = windows_error(path, dump, &e);
            let not_windows = matches!(
                e.kind,
                hangscope_nt::ErrorKind::KernelNotFound(_) | hangscope_nt::ErrorKind::Dump(_)
            );
            let windows_only = matches!(
                dump.format,
                DumpFormat::CrashDumpFull | DumpFormat::CrashDumpBitmap
            );
            if !not_windows || windows_only {
                return Err(windows);
            }
            match open_linux(g, path, dump) {
                Ok(k) => Ok(Guest::Linux(k)),
                Err(linux) => Err(anyhow::anyhow!(
                    "{windows:#}; nor a Linux kernel: {}",
                    format!("{linux:#}").trim_start_matches(&format!(
                        "no usable Linux kernel in {}: ",
                        path.display()
                    ))
                )),
            }
        }
    }
}

/// The Windows search's error, naming the file and, when the dump was cut
/// short, that too (it explains a kernel that cannot be found).
fn windows_error(path: &Path, dump: &Dump, e: &hangscope_nt::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "no usable Windows kernel in {}: {e}{}",
        path.display(),
        noted(dump)
    )
}

/// What the dump reader noted, truncation first, as the end of an error
/// that a damaged file may explain; empty for a healthy file.
fn noted(dump: &Dump) -> String {
    let notes = dump.notes_truncation_first();
    if notes.is_empty() {
        String::new()
    } else {
        format!("; the dump reader noted: {}", notes.join("; "))
    }
}

/// Find a Windows kernel in an opened dump; the error names the file.
pub fn open_kernel<'d>(g: &GlobalArgs, path: &Path, dump: &'d Dump) -> Result<Kernel<'d>> {
    let src = symbol_source(g)?;
    Kernel::open(dump, &src).map_err(|e| windows_error(path, dump, &e))
}

/// A Linux kernel's types from the user: the first file named on
/// `--symbols` (a vmlinux with DWARF or BTF, or any table
/// `SymbolTable::load` reads). Without one, the kernel's own BTF is read
/// from the dump.
fn linux_types(g: &GlobalArgs) -> Result<Option<SymbolTable>> {
    let Some(spec) = &g.symbols else {
        return Ok(None);
    };
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let p = Path::new(part);
        if p.is_file() {
            // Through the user's symbol cache when there is one: parsing a
            // debug vmlinux's DWARF takes seconds, its compact table a
            // memory map.
            let table = match SymbolCache::from_env() {
                Some(cache) => cache.load(p),
                None => SymbolTable::load(p),
            }
            .with_context(|| format!("cannot read the symbol file {}", p.display()))?;
            return Ok(Some(table));
        }
    }
    Ok(None)
}

/// Find a Linux kernel in an opened dump; the error names the file.
pub fn open_linux<'d>(g: &GlobalArgs, path: &Path, dump: &'d Dump) -> Result<LinuxKernel<'d>> {
    let types = linux_types(g)?;
    let options = OpenOptions {
        cache: SymbolCache::from_env(),
        ..OpenOptions::default()
    };
    LinuxKernel::open_with(dump, types, &options).map_err(|e| {
        anyhow::anyhow!(
            "no usable Linux kernel in {}: {e}{}",
            path.display(),
            noted(dump)
        )
    })
}

/// The dump reader's notes (truncation first), once on stderr.
pub fn warn_dump_notes(dump: &Dump) {
    for n in dump.notes_truncation_first() {
        crate::output::say(format_args!("hangscope: warning: dump file: {n}"));
    }
}
