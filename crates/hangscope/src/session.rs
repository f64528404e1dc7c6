//! Opening a dump and its kernel, with the symbol path every command
//! shares. The commands, the shell and the demo all open through here.

use crate::cli::GlobalArgs;
use anyhow::{Context, Result};
use hangscope_dump::Dump;
use hangscope_nt::{Kernel, SymbolSource};
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
