//! The harness: run the built `hangscope`, build lab images into a
//! temporary directory, read addresses out of JSON, and print readable
//! diffs.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hangscope_lab::format::{self, Format};
use hangscope_lab::image::LabImage;
use hangscope_lab::truth::GroundTruth;
use hangscope_lab::{BuildOptions, Scenario, Symbols};
use serde_json::Value;

/// The `hangscope` executable cargo built for this test binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hangscope"))
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared symbol tables (`<dir>/windows/ntkrnlmp.pdb/GUID-AGE.json.xz`):
/// `$HANGSCOPE_SYMBOLS`, else `../shared/symbols` beside the workspace.
pub fn symbols_dir() -> PathBuf {
    let d = std::env::var_os("HANGSCOPE_SYMBOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/symbols"));
    assert!(
        d.join("windows/ntkrnlmp.pdb").is_dir(),
        "symbol tables not found under {} (set HANGSCOPE_SYMBOLS)",
        d.display()
    );
    d
}

/// What one run printed and returned.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Parse stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.cmdline,
                head(&self.stdout, 40),
                self.stderr
            )
        })
    }

    /// Assert the exit code and an empty stderr.
    pub fn expect(&self, code: i32) -> &Self {
        assert!(
            self.code == Some(code) && self.stderr.is_empty(),
            "{}: expected exit code {code} and an empty stderr, got {:?}\nstderr:\n{}\nstdout:\n{}",
            self.cmdline,
            self.code,
            self.stderr,
            head(&self.stdout, 40)
        );
        self
    }

    /// Assert the run did not crash: it exited normally (no signal), with
    /// a code hangscope documents, and stderr holds no panic.
    pub fn expect_no_crash(&self) -> &Self {
        let code = self.code.unwrap_or(-1);
        assert!(
            [0, 1, 2, 3, 4, 5].contains(&code)
                && !self.stderr.contains("internal error")
                && !self.stderr.contains("panicked"),
            "{}: crashed (exit code {:?}):\nstderr:\n{}",
            self.cmdline,
            self.code,
            self.stderr
        );
        self
    }
}

/// The first `n` lines of `s`.
pub fn head(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("\n")
}

/// A `hangscope` command with an environment that cannot leak into the
/// test: no `_NT_SYMBOL_PATH`, no user symbol cache, no log filter, and
/// the working directory inside the crate (so `../shared/symbols` relative
/// to it does not exist).
pub fn hangscope() -> Command {
    let mut c = Command::new(bin());
    c.env_remove("_NT_SYMBOL_PATH")
        .env_remove("HANGSCOPE_SYMBOLS")
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    c
}

/// Run `hangscope ARGS...` with [`hangscope`]'s environment.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = hangscope();
    c.args(args);
    run_cmd(c)
}

/// Run a prepared command.
pub fn run_cmd(mut c: Command) -> Run {
    let cmdline = format!(
        "hangscope {}",
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin().display()));
    Run {
        cmdline,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `hangscope --json CMD [EXTRA...] DUMP`, then the document.
pub fn json_cmd(cmd: &str, extra: &[&str], dump: &Path) -> (Run, Value) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("--json"), OsStr::new(cmd)];
    args.extend(extra.iter().map(OsStr::new));
    args.push(dump.as_os_str());
    let r = run(args);
    let v = r.json();
    (r, v)
}

/// Build a scenario on a build with fixed RAM and seed.
pub fn build(sc: &Scenario, build: &str, seed: u64, ram: u64) -> (LabImage, GroundTruth) {
    let opts = BuildOptions {
        ram_size: Some(ram),
        seed,
        build: Some(build.to_string()),
    };
    hangscope_lab::build(sc, Symbols::Dir(&symbols_dir()), &opts)
        .unwrap_or_else(|e| panic!("lab build of {} on {build}: {e}", sc.name))
}

/// Write `image` as `dir/NAME.FORMAT`.
pub fn write(image: &LabImage, f: Format, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.{}", f.name()));
    format::write(image, f, &path, false)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// A built-in scenario.
pub fn scenario(name: &str) -> Scenario {
    Scenario::builtin(name).unwrap_or_else(|e| panic!("built-in scenario {name}: {e}"))
}

/// A `0x...` hex string (or a JSON integer) as u64; `None` for null or
/// anything else.
pub fn addr(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// `v[key]` as an address; `0` when absent (shown in diffs).
pub fn a(v: &Value, key: &str) -> u64 {
    addr(&v[key]).unwrap_or(0)
}

/// `v[key]` as a string; `""` when absent.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// `v[key]` as an array (empty when absent).
pub fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Compare two values; on difference push a message.
pub fn eq<T: PartialEq + std::fmt::Debug>(problems: &mut Vec<String>, what: &str, want: T, got: T) {
    if want != got {
        problems.push(format!("{what}: expected {want:?}, hangscope says {got:?}"));
    }
}

/// A readable diff of two sorted collections.
pub fn set_diff<T: Ord + std::fmt::Debug + Clone>(
    problems: &mut Vec<String>,
    what: &str,
    want: impl IntoIterator<Item = T>,
    got: impl IntoIterator<Item = T>,
) {
    let want: std::collections::BTreeSet<T> = want.into_iter().collect();
    let got: std::collections::BTreeSet<T> = got.into_iter().collect();
    if want == got {
        return;
    }
    let mut m = format!(
        "{what}: expected {} entries, hangscope shows {}",
        want.len(),
        got.len()
    );
    for x in want.difference(&got).take(15) {
        m.push_str(&format!("\n    - missing    {x:?}"));
    }
    for x in got.difference(&want).take(15) {
        m.push_str(&format!("\n    + unexpected {x:?}"));
    }
    problems.push(m);
}

/// Fail with every problem, prefixed by where it was seen.
pub fn report(label: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{label}: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}
