//! Issue 14: the house stands anywhere. `hangscope demo` on a machine with
//! no shared symbol directory (a fresh clone, an installed binary): the
//! Windows 10 19041 table built into hangscope (`builtin*`, last on the
//! default symbol path) is enough to build the seed case and analyse it.

use std::ffi::OsStr;

use crate::util::{self, s};

/// The built executable run from an empty temporary directory, with the
/// `../shared/symbols` lookups off (`HANGSCOPE_NO_SHARED_SYMBOLS=1`, which
/// also hides the one beside the source tree), no `HANGSCOPE_SYMBOLS` or
/// `_NT_SYMBOL_PATH` and an empty user cache.
fn hangscope_without_shared(
    cwd: &std::path::Path,
    cache: &std::path::Path,
) -> std::process::Command {
    let mut c = util::hangscope();
    c.current_dir(cwd)
        .env("HANGSCOPE_NO_SHARED_SYMBOLS", "1")
        .env_remove("HANGSCOPE_NO_DEFAULT_SYMBOLS")
        .env("XDG_CACHE_HOME", cache);
    c
}

#[test]
fn demo_runs_with_no_shared_symbols() {
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let keep = cwd.path().join("kept");
    let mut c = hangscope_without_shared(cwd.path(), cache.path());
    c.args([OsStr::new("demo"), OsStr::new("--keep"), keep.as_os_str()]);
    let r = util::run_cmd(c);
    r.expect_no_crash();
    assert_eq!(
        r.code,
        Some(1),
        "{}: exit code; stdout {:?} stderr {:?}",
        r.cmdline,
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout
            .contains("hangscope verdict: BUSY OWNER (exit code 1)"),
        "{}: no BUSY OWNER verdict: {:?}",
        r.cmdline,
        r.stdout
    );
    // The analysis read the built-in table, not a shared one.
    let dump = keep.join("temp-flood.elf");
    let mut c = hangscope_without_shared(cwd.path(), cache.path());
    c.args([OsStr::new("--json"), OsStr::new("info"), dump.as_os_str()]);
    let r = util::run_cmd(c);
    let info = r.json();
    let source = s(&info["data"]["kernel"], "symbol_source");
    assert!(
        source.starts_with("builtin:"),
        "{}: symbols read from {source:?}, not the built-in table",
        r.cmdline
    );
}

/// `HANGSCOPE_NO_DEFAULT_SYMBOLS=1` still means only what the user named:
/// no built-in table either, and the demo says what it needs.
#[test]
fn demo_without_default_symbols_says_what_it_needs() {
    let cwd = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut c = hangscope_without_shared(cwd.path(), cache.path());
    c.env("HANGSCOPE_NO_DEFAULT_SYMBOLS", "1").arg("demo");
    let r = util::run_cmd(c);
    r.expect_no_crash();
    assert_eq!(
        r.code,
        Some(2),
        "{}: exit code; stderr {:?}",
        r.cmdline,
        r.stderr
    );
    assert!(
        r.stderr.contains("HANGSCOPE_SYMBOLS"),
        "{}: stderr does not say where to put the table: {:?}",
        r.cmdline,
        r.stderr
    );
}
