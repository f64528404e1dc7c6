//! Volatility agreement: on lab images of four builds, each written as
//! raw, crash (full) and ELF, `hangscope --json info/ps/threads/lm` must
//! agree with Volatility 3's windows.info (kernel base, build),
//! windows.pslist (pid, ppid, name, threads), windows.threads (tid/pid
//! pairs) and windows.modules (base, size, name) on the same file.
//!
//! Volatility runs offline from the venv (`$HANGSCOPE_VENV`, else
//! `<workspace>/target/venv`), with `-s` the shared symbols and a
//! temporary `XDG_CACHE_HOME`. `HANGSCOPE_SKIP_VOL=1` skips the test;
//! `HANGSCOPE_VOL_BUILDS=a,b` picks builds; `HANGSCOPE_VOL_JOBS=n` runs n
//! Volatility processes at once (default 3). The image is the deadlock
//! scenario: many processes and threads, few files (the plugins compared
//! here do not look at files, and Volatility stays fast).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use hangscope_lab::format::Format;
use serde_json::Value;

use crate::util::{self, a, arr, s};

/// Volatility prints pointers masked to 48 bits.
const MASK48: u64 = 0xFFFF_FFFF_FFFF;
const BUILDS: &[&str] = &["win7sp1", "win2016", "win2019a", "win11"];
const FORMATS: [Format; 3] = [Format::Raw, Format::CrashFull, Format::Elf];

pub(crate) struct Vol {
    exe: PathBuf,
    cache: tempfile::TempDir,
}

pub(crate) fn vol() -> Option<Vol> {
    if std::env::var("HANGSCOPE_SKIP_VOL").is_ok_and(|v| v == "1") {
        eprintln!("HANGSCOPE_SKIP_VOL=1: Volatility agreement skipped");
        return None;
    }
    let venv = std::env::var_os("HANGSCOPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::workspace().join("target/venv"));
    let exe = venv.join("bin/vol");
    assert!(
        exe.exists(),
        "Volatility 3 not found at {} (run scripts/setup.sh, set HANGSCOPE_VENV, or \
         HANGSCOPE_SKIP_VOL=1 to skip)",
        exe.display()
    );
    Some(Vol {
        exe,
        cache: tempfile::tempdir().unwrap(),
    })
}

/// Run one plugin; its rows, children flattened.
fn run_vol(v: &Vol, image: &Path, plugin: &str) -> Result<Vec<Value>, String> {
    let out = Command::new(&v.exe)
        .args(["-q", "-r", "json", "--offline", "-s"])
        .arg(util::symbols_dir())
        .arg("-f")
        .arg(image)
        .arg(plugin)
        .env("XDG_CACHE_HOME", v.cache.path())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", v.exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "vol {plugin} exited with {}:\n{}\n{}",
            out.status,
            util::head(&stdout, 15),
            util::head(&String::from_utf8_lossy(&out.stderr), 15)
        ));
    }
    let start = stdout.find('[').ok_or("no JSON from vol")?;
    let doc: Value =
        serde_json::from_str(&stdout[start..]).map_err(|e| format!("bad JSON from vol: {e}"))?;
    let mut rows = Vec::new();
    flatten(&doc, &mut rows);
    Ok(rows)
}

fn flatten(v: &Value, out: &mut Vec<Value>) {
    for item in v.as_array().into_iter().flatten() {
        out.push(item.clone());
        if let Some(c) = item.get("__children") {
            flatten(c, out);
        }
    }
}

fn u(r: &Value, k: &str) -> u64 {
    r[k].as_u64().unwrap_or(u64::MAX)
}

/// Compare one plugin with the matching hangscope command.
pub(crate) fn compare(v: &Vol, image: &Path, plugin: &str) -> Vec<String> {
    let rows = match run_vol(v, image, plugin) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let mut p = Vec::new();
    match plugin {
        "windows.info" => {
            let (r, doc) = util::json_cmd("info", &[], image);
            r.expect(0);
            let k = &doc["data"]["kernel"];
            let var = |name: &str| {
                rows.iter()
                    .find(|r| s(r, "Variable") == name)
                    .map(|r| s(r, "Value").to_string())
                    .unwrap_or_else(|| "<absent>".into())
            };
            util::eq(
                &mut p,
                "kernel base (Volatility vs hangscope)",
                var("Kernel Base"),
                format!("{:#x}", a(k, "kernel_base") & MASK48),
            );
            util::eq(
                &mut p,
                "build (Volatility's Major/Minor vs hangscope)",
                var("Major/Minor"),
                format!("15.{}", k["build"].as_u64().unwrap_or(0)),
            );
        }
        "windows.pslist" => {
            let (r, doc) = util::json_cmd("ps", &[], image);
            r.expect(0);
            let want: Vec<_> = rows
                .iter()
                .map(|r| {
                    (
                        u(r, "PID"),
                        u(r, "PPID"),
                        s(r, "ImageFileName").to_string(),
                        u(r, "Threads"),
                    )
                })
                .collect();
            let got: Vec<_> = arr(&doc["data"], "items")
                .iter()
                .map(|x| {
                    (
                        u(x, "pid"),
                        u(x, "ppid"),
                        // Volatility prints at most 14 characters.
                        s(x, "name").chars().take(14).collect::<String>(),
                        u(x, "thread_count"),
                    )
                })
                .collect();
            util::eq(
                &mut p,
                "processes (pid, ppid, name, threads): Volatility vs hangscope",
                want,
                got,
            );
        }
        "windows.threads" => {
            let (r, doc) = util::json_cmd("threads", &[], image);
            r.expect(0);
            let want: BTreeSet<(u64, u64)> =
                rows.iter().map(|r| (u(r, "TID"), u(r, "PID"))).collect();
            let got: BTreeSet<(u64, u64)> = doc["data"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| (u(x, "tid"), u(x, "pid")))
                .collect();
            util::set_diff(
                &mut p,
                "threads (tid, pid): Volatility's, then hangscope's",
                want,
                got,
            );
        }
        "windows.modules" => {
            let (r, doc) = util::json_cmd("lm", &[], image);
            r.expect(0);
            let want: Vec<_> = rows
                .iter()
                .map(|r| {
                    (
                        u(r, "Base") & MASK48,
                        u(r, "Size"),
                        s(r, "Name").to_string(),
                    )
                })
                .collect();
            let got: Vec<_> = arr(&doc["data"], "items")
                .iter()
                .map(|m| {
                    (
                        a(m, "base") & MASK48,
                        u(m, "size"),
                        s(m, "name").to_string(),
                    )
                })
                .collect();
            util::eq(
                &mut p,
                "modules (base, size, name): Volatility vs hangscope",
                want,
                got,
            );
        }
        other => unreachable!("{other}"),
    }
    p
}

#[test]
fn hangscope_agrees_with_volatility() {
    let Some(v) = vol() else { return };
    let builds: Vec<String> = std::env::var("HANGSCOPE_VOL_BUILDS")
        .map(|x| {
            x.split(',')
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty())
                .collect()
        })
        .unwrap_or_else(|_| BUILDS.iter().map(|b| b.to_string()).collect());
    let jobs_n: usize = std::env::var("HANGSCOPE_VOL_JOBS")
        .ok()
        .and_then(|x| x.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dir = tempfile::tempdir().unwrap();
    let sc = util::scenario("deadlock");
    let mut jobs = Vec::new();
    for (i, b) in builds.iter().enumerate() {
        let (image, _) = util::build(&sc, b, 40 + i as u64, 64 << 20);
        for f in FORMATS {
            let path = util::write(&image, f, dir.path(), b);
            for plugin in [
                "windows.info",
                "windows.pslist",
                "windows.threads",
                "windows.modules",
            ] {
                jobs.push((b.clone(), f, path.clone(), plugin));
            }
        }
    }
    let queue = Mutex::new(jobs);
    let problems = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..jobs_n {
            sc.spawn(|| loop {
                let Some((b, f, path, plugin)) = queue.lock().unwrap().pop() else {
                    break;
                };
                for m in compare(&v, &path, plugin) {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("[{b} {f} {plugin}] {m}"));
                }
            });
        }
    });
    let mut problems = problems.into_inner().unwrap();
    problems.sort();
    util::report("hangscope vs Volatility 3", problems);
}
