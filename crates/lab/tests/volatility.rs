//! Volatility 3 as the fidelity oracle of the lab: build images of several
//! real Windows builds, write each in every dump format Volatility reads,
//! run its plugins offline and compare their JSON output with the ground
//! truth. Any disagreement fails with a diff naming build, format, plugin
//! and field.
//!
//! Needs the venv from `scripts/setup.sh` (`$HANGSCOPE_VENV`, else
//! `<workspace>/target/venv`). `HANGSCOPE_SKIP_VOL=1` skips the test.
//! Knobs: `HANGSCOPE_VOL_BUILDS` (comma-separated aliases),
//! `HANGSCOPE_VOL_FORMATS` (comma-separated format names),
//! `HANGSCOPE_VOL_JOBS` (parallel vol processes, default 3),
//! `HANGSCOPE_VOL_KEEP=DIR` (write the images there and keep them),
//! `HANGSCOPE_VOL_FULL=1` (every plugin on every image; by default
//! `threads` and `handles`, which only walk virtual memory, run on one
//! format per build, rotating, so each format still gets them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use hangscope_lab::format::{self, Format};
use hangscope_lab::series::SeriesTruth;
use hangscope_lab::truth::GroundTruth;
use hangscope_lab::{BuildOptions, Scenario, Symbols};
use serde_json::Value;

/// Volatility prints pointers masked to 48 bits.
const MASK48: u64 = 0xFFFF_FFFF_FFFF;
/// Where every x64 Windows maps `_KUSER_SHARED_DATA` (labcheck's
/// `--clock` reads its tick count there).
const KUSER_SHARED_DATA: u64 = 0xFFFF_F780_0000_0000;

const DEFAULT_BUILDS: &[&str] = &["win7sp1", "win2016", "win2019a", "win11"];
const FORMATS: &[Format] = &[
    Format::Raw,
    Format::CrashFull,
    Format::CrashBitmap,
    Format::Elf,
    Format::CrashKernelBitmap,
];
/// Volatility refuses DumpType 6, so the kernel bitmap dump is checked
/// relabelled as DumpType 5 (same `_SUMMARY_DUMP` layout): it shows that
/// the pages kept are the ones kernel analysis needs. Only these plugins
/// run on it.
const KERNEL_BITMAP_PLUGINS: &[Plugin] = &[
    Plugin::Info,
    Plugin::PsList,
    Plugin::Threads,
    Plugin::LabCheck,
];
/// temp-flood's file set is divided by this: 40 session files instead of
/// 4000 keep `handles`/`filescan` at seconds per run while every code
/// path (bulk files, handle tables with several levels... ) stays.
const FILE_SET_DIVISOR: u32 = 100;
const RAM: u64 = 128 << 20;
const SEED: u64 = 7;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct VolEnv {
    vol: PathBuf,
    symbols: PathBuf,
    plugins: PathBuf,
    cache: tempfile::TempDir,
}

/// `None` when the test is skipped on purpose.
fn vol_env() -> Option<VolEnv> {
    if std::env::var("HANGSCOPE_SKIP_VOL").is_ok_and(|v| v == "1") {
        eprintln!("HANGSCOPE_SKIP_VOL=1: Volatility checks skipped");
        return None;
    }
    let venv = std::env::var_os("HANGSCOPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/venv"));
    let vol = venv.join("bin/vol");
    assert!(
        vol.exists(),
        "Volatility 3 not found at {}: run scripts/setup.sh (or set HANGSCOPE_VENV, \
         or HANGSCOPE_SKIP_VOL=1 to skip)",
        vol.display()
    );
    let symbols = workspace().join("../shared/symbols");
    assert!(
        symbols.join("windows/ntkrnlmp.pdb").is_dir(),
        "symbol tables not found under {}",
        symbols.display()
    );
    Some(VolEnv {
        vol,
        symbols,
        plugins: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vol"),
        cache: tempfile::tempdir().expect("temp dir"),
    })
}

/// temp-flood with its file set (and what refers to its members) scaled
/// down by [`FILE_SET_DIVISOR`].
fn scenario() -> Scenario {
    let mut sc = Scenario::builtin("temp-flood").expect("built-in temp-flood");
    let sets: Vec<String> = sc.file_sets.iter().map(|s| s.id.clone()).collect();
    for s in &mut sc.file_sets {
        s.count = (s.count / FILE_SET_DIVISOR).max(8);
    }
    for h in &mut sc.handles {
        if let Some([a, b]) = h.range {
            h.range = Some([a / FILE_SET_DIVISOR, b / FILE_SET_DIVISOR]);
        }
    }
    let scale_ref = |r: &mut String| {
        if let Some((id, rest)) = r.split_once('[') {
            if sets.iter().any(|s| s == id) {
                let n: u32 = rest.trim_end_matches(']').parse().expect("member index");
                *r = format!("{id}[{}]", n / FILE_SET_DIVISOR);
            }
        }
    };
    for irp in &mut sc.irps {
        for st in &mut irp.stack {
            if let Some(f) = st.file.as_mut() {
                scale_ref(f);
            }
        }
    }
    for h in &mut sc.handles {
        h.files.iter_mut().for_each(scale_ref);
    }
    sc
}

fn list(var: &str) -> Option<Vec<String>> {
    std::env::var(var).ok().map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

#[derive(Clone, Copy, Debug)]
enum Plugin {
    Info,
    PsList,
    Threads,
    Handles,
    FileScan,
    Modules,
    LabCheck,
    /// Only for crash dumps: the header as Volatility's `crash64.json`
    /// reads it.
    CrashInfo,
}

const PLUGINS: &[Plugin] = &[
    Plugin::Info,
    Plugin::PsList,
    Plugin::Threads,
    Plugin::Handles,
    Plugin::FileScan,
    Plugin::Modules,
    Plugin::LabCheck,
];

impl Plugin {
    fn name(self) -> &'static str {
        match self {
            Plugin::Info => "windows.info",
            Plugin::PsList => "windows.pslist",
            Plugin::Threads => "windows.threads",
            Plugin::Handles => "windows.handles",
            Plugin::FileScan => "windows.filescan",
            Plugin::Modules => "windows.modules",
            Plugin::LabCheck => "labcheck.LabCheck",
            Plugin::CrashInfo => "windows.crashinfo",
        }
    }
}

struct Job<'a> {
    build: &'a str,
    format: Format,
    image: PathBuf,
    truth: &'a GroundTruth,
    plugin: Plugin,
}

#[test]
fn volatility_agrees_with_ground_truth() {
    let Some(env) = vol_env() else { return };
    let builds = list("HANGSCOPE_VOL_BUILDS")
        .unwrap_or_else(|| DEFAULT_BUILDS.iter().map(|s| s.to_string()).collect());
    let formats: Vec<Format> = match list("HANGSCOPE_VOL_FORMATS") {
        Some(names) => names
            .iter()
            .map(|n| n.parse().expect("HANGSCOPE_VOL_FORMATS"))
            .collect(),
        None => FORMATS.to_vec(),
    };
    let jobs_n: usize = std::env::var("HANGSCOPE_VOL_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let out_dir = std::env::var_os("HANGSCOPE_VOL_KEEP")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&out_dir).expect("output dir");

    let sc = scenario();
    let mut truths = Vec::new();
    let mut failures = Vec::new();
    for b in &builds {
        let opts = BuildOptions {
            ram_size: Some(RAM),
            seed: SEED,
            build: Some(b.clone()),
        };
        let (image, truth) = match hangscope_lab::build(&sc, Symbols::Dir(&env.symbols), &opts) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("[{b}] build failed: {e}"));
                continue;
            }
        };
        let mut paths = Vec::new();
        for &f in &formats {
            let path = out_dir.join(format!("{b}.{}", f.name()));
            format::write(&image, f, &path, false).expect("write image");
            if f == Format::CrashKernelBitmap {
                relabel_dump_type(&path, 5);
            }
            paths.push((f, path));
        }
        let json = serde_json::to_vec_pretty(&truth).expect("truth json");
        std::fs::write(out_dir.join(format!("{b}.truth.json")), json).expect("write truth");
        truths.push((b.clone(), truth, paths));
    }

    let full = std::env::var("HANGSCOPE_VOL_FULL").is_ok_and(|v| v == "1");
    let mut jobs = Vec::new();
    for (bi, (b, truth, paths)) in truths.iter().enumerate() {
        for (fi, (f, path)) in paths.iter().enumerate() {
            let walkers_here = full || fi == bi % paths.len();
            let crash = matches!(f, Format::CrashFull | Format::CrashBitmap);
            let extra: &[Plugin] = if crash { &[Plugin::CrashInfo] } else { &[] };
            let plugins = if *f == Format::CrashKernelBitmap {
                KERNEL_BITMAP_PLUGINS
            } else {
                PLUGINS
            };
            for &p in plugins.iter().chain(extra) {
                if matches!(p, Plugin::Threads | Plugin::Handles) && !walkers_here {
                    continue;
                }
                jobs.push(Job {
                    build: b,
                    format: *f,
                    image: path.clone(),
                    truth,
                    plugin: p,
                });
            }
        }
    }
    let queue = Mutex::new(jobs);
    let found = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs_n {
            s.spawn(|| loop {
                let Some(job) = queue.lock().unwrap().pop() else {
                    break;
                };
                let result = run_job(&env, &job);
                if let Err(msg) = result {
                    found.lock().unwrap().push(format!(
                        "[{} {} {}]\n{msg}",
                        job.build,
                        job.format,
                        job.plugin.name()
                    ));
                }
            });
        }
    });
    failures.extend(found.into_inner().unwrap());
    failures.sort();
    assert!(
        failures.is_empty(),
        "Volatility disagrees with the ground truth ({} problems):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The image with a real driver (hsflt.sys, compiled here with clang and
/// lld-link) loaded: Volatility lists it among the modules and reads the
/// processes, threads and locks of the scenario around it.
#[test]
fn volatility_reads_the_real_driver_image() {
    let Some(env) = vol_env() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    hangscope_lab::driver::build_lab_driver(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    let sc = Scenario::load(&tmp.path().join("av-filter.toml")).expect("av-filter.toml");
    let opts = BuildOptions {
        ram_size: Some(64 << 20),
        seed: SEED,
        build: Some("win10-19041".into()),
    };
    let (image, truth) =
        hangscope_lab::build(&sc, Symbols::Dir(&env.symbols), &opts).expect("build");
    assert!(truth.modules.iter().any(|m| m.name == "hsflt.sys"));
    let path = tmp.path().join("av.elf");
    format::write(&image, Format::Elf, &path, false).expect("write image");
    let mut failures = Vec::new();
    for p in [
        Plugin::Modules,
        Plugin::PsList,
        Plugin::Threads,
        Plugin::LabCheck,
    ] {
        let name = p.name();
        let job = Job {
            build: "win10-19041",
            format: Format::Elf,
            image: path.clone(),
            truth: &truth,
            plugin: p,
        };
        if let Err(e) = run_job(&env, &job) {
            failures.push(format!("[{name}] {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Issue 15's stuck-disk scenario: Volatility reads the processes, the
/// threads and, through the lab's plugin, every IRP (stack count, current
/// location, issuing thread, each stack location's device) as the truth
/// has them, on Windows 7 SP1, 8.1, 10 19041 and 11.
#[test]
fn volatility_reads_the_stuck_disk() {
    let Some(env) = vol_env() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let sc = Scenario::builtin("stuck-disk").expect("built-in stuck-disk");
    let mut failures = Vec::new();
    for b in ["win7sp1", "win2012r2", "win10-19041", "win11"] {
        let (path, truth) = raw_image(&env, &sc, b, tmp.path().join(format!("stuck-disk-{b}.raw")));
        for p in [Plugin::PsList, Plugin::Threads, Plugin::LabCheck] {
            let job = Job {
                build: b,
                format: Format::Raw,
                image: path.clone(),
                truth: &truth,
                plugin: p,
            };
            if let Err(e) = run_job(&env, &job) {
                failures.push(format!("[{b} {}] {e}", p.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Issue 15, must-show 2: Volatility 3 reads the push-lock pile-up (7 SP1,
/// 1607, 19041, 11): the processes and every thread (pid, tid, ETHREAD)
/// as the truth has them. The push-lock words and wait blocks are not
/// read through Volatility yet (the lab's `labcheck` plugin does not know
/// them).
#[test]
fn volatility_reads_the_push_lock_pile_up() {
    let Some(env) = vol_env() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let sc = Scenario::builtin("push-lock").expect("built-in push-lock");
    let mut failures = Vec::new();
    for b in ["win7sp1", "win2016", "win10-19041", "win11"] {
        let (path, truth) = raw_image(&env, &sc, b, tmp.path().join(format!("push-lock-{b}.raw")));
        for p in [Plugin::PsList, Plugin::Threads] {
            let job = Job {
                build: b,
                format: Format::Raw,
                image: path.clone(),
                truth: &truth,
                plugin: p,
            };
            if let Err(e) = run_job(&env, &job) {
                failures.push(format!("[{b} {}] {e}", p.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Issue 15, must-show 1: Volatility 3 reads the rdp-logon images (7 SP1,
/// 8.1, 19041, 11): processes and threads as the truth has them; every
/// handle, the ALPC ports included, with its type (`windows.handles` shows
/// each server's connection port by name and each side's communication
/// ports); and each ALPC message's waiting and server thread, queue port,
/// owner port, queue type, request type, the server's PID through the
/// queue port's owner, and the client's `AlpcMessage` pointing back; and
/// each LRPC port's `CompletionPort`, a `QueueObject` whose
/// `ThreadListHead` holds the port's idle and busy workers, each one's
/// `Tcb.Queue` naming it.
#[test]
fn volatility_reads_the_rdp_logon_alpc_chain() {
    let Some(env) = vol_env() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let sc = Scenario::builtin("rdp-logon").expect("built-in rdp-logon");
    let mut failures = Vec::new();
    for b in ["win7sp1", "win2012r2", "win10-19041", "win11"] {
        let (path, truth) = raw_image(&env, &sc, b, tmp.path().join(format!("rdp-logon-{b}.raw")));
        for p in [
            Plugin::PsList,
            Plugin::Threads,
            Plugin::Handles,
            Plugin::LabCheck,
        ] {
            let job = Job {
                build: b,
                format: Format::Raw,
                image: path.clone(),
                truth: &truth,
                plugin: p,
            };
            if let Err(e) = run_job(&env, &job) {
                failures.push(format!("[{b} {}] {e}", p.name()));
            }
        }
        // The ports by name, as windows.handles prints them: the server
        // holds its named connection port.
        match run_vol(&env, &path, Plugin::Handles.name(), &[]) {
            Ok(rows) => {
                let got: BTreeSet<(u64, String)> = rows
                    .iter()
                    .filter(|r| s(r, "Type") == "ALPC Port" && !s(r, "Name").is_empty())
                    .map(|r| (u(r, "PID").unwrap_or(0), s(r, "Name").to_string()))
                    .collect();
                let want: BTreeSet<(u64, String)> = truth
                    .alpc_ports
                    .iter()
                    .filter_map(|p| Some((p.owner_pid, p.name.clone()?)))
                    .collect();
                if let Some(d) = set_diff("named ALPC ports (pid, name)", &want, &got) {
                    failures.push(format!("[{b} windows.handles] {d}"));
                }
            }
            Err(e) => failures.push(format!("[{b} windows.handles] {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The builds the series tests use (hangscope's `series` module):
/// Windows 7 SP1 and Windows 10 19041.
const SERIES_BUILDS: &[&str] = &["win7sp1", "win10-19041"];

/// labcheck's fields of a thread that a series compares: when one of them
/// differs between two moments, the thread moved.
const THREAD_MOTION_FIELDS: &[&str] = &[
    "State",
    "WaitReason",
    "WaitTime",
    "WaitObject",
    "ContextSwitches",
    "KernelTime",
    "UserTime",
];

/// labcheck's fields of an ERESOURCE that change when the lock moves.
const LOCK_MOTION_FIELDS: &[&str] = &[
    "ActiveCount",
    "Flag",
    "ContentionCount",
    "Owners",
    "NumberOfSharedWaiters",
    "NumberOfExclusiveWaiters",
];

/// What labcheck read in one image: (kind, address masked to 48 bits,
/// field) to value.
type LabRows = BTreeMap<(String, u64, String), String>;

/// Issue 16, must-show 3: Volatility 3 still reads every image of a
/// series. Every moment of every built-in series (stuck, busy, slow) on
/// the builds the series tests use, built and written as ELF as those
/// tests do (the same RAM size and seed, so the same images):
/// `windows.pslist` and `windows.threads` list the moment's processes and
/// threads, and labcheck reads each thread's state, wait and counters,
/// each ERESOURCE's owners and contention count, and the tick count, as
/// that moment's truth has them. Across the moments Volatility must see
/// what the series' truth says: the threads it moved change, the still
/// ones (the hang's, in the stuck series) do not, the locks it moved
/// change, and the clock advances by the series' interval.
#[test]
fn volatility_reads_every_moment_of_every_series() {
    use hangscope_lab::series::{build_series, builtin_series, builtin_series_names};
    let Some(env) = vol_env() else { return };
    let started = std::time::Instant::now();
    let builds = list("HANGSCOPE_VOL_BUILDS")
        .unwrap_or_else(|| SERIES_BUILDS.iter().map(|s| s.to_string()).collect());
    let jobs_n: usize = std::env::var("HANGSCOPE_VOL_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    // (build, series, series truth, each moment's image path and truth)
    let mut series = Vec::new();
    for b in &builds {
        for name in builtin_series_names() {
            let sc = builtin_series(name).expect("built-in series");
            let opts = BuildOptions {
                ram_size: Some(RAM),
                seed: SEED,
                build: Some(b.clone()),
            };
            let (images, st) = match build_series(&sc, Symbols::Dir(&env.symbols), &opts) {
                Ok(x) => x,
                Err(e) => {
                    failures.push(format!("[{b} {name}] build failed: {e}"));
                    continue;
                }
            };
            let mut moments = Vec::new();
            for (i, (image, truth)) in images.into_iter().enumerate() {
                let path = tmp.path().join(format!("{name}-{b}-{i}.elf"));
                format::write(&image, Format::Elf, &path, false).expect("write image");
                moments.push((path, truth));
            }
            series.push((b.clone(), name, st, moments));
        }
    }
    let mut jobs = Vec::new();
    for (si, (_, _, _, moments)) in series.iter().enumerate() {
        for mi in 0..moments.len() {
            for p in [Plugin::PsList, Plugin::Threads, Plugin::LabCheck] {
                jobs.push((si, mi, p));
            }
        }
    }
    let images = jobs.len() / 3;
    let queue = Mutex::new(jobs);
    let found = Mutex::new(Vec::new());
    let read: Mutex<BTreeMap<(usize, usize), LabRows>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..jobs_n {
            s.spawn(|| loop {
                let Some((si, mi, plugin)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let (b, name, _, moments) = &series[si];
                let (path, truth) = &moments[mi];
                let result = match plugin {
                    Plugin::LabCheck => run_vol(&env, path, plugin.name(), &labcheck_args(truth))
                        .and_then(|rows| {
                            let checked = check_labcheck(truth, &rows);
                            read.lock().unwrap().insert((si, mi), lab_rows(&rows));
                            checked
                        }),
                    _ => run_job(
                        &env,
                        &Job {
                            build: b,
                            format: Format::Elf,
                            image: path.clone(),
                            truth,
                            plugin,
                        },
                    ),
                };
                if let Err(msg) = result {
                    found
                        .lock()
                        .unwrap()
                        .push(format!("[{b} {name} moment {mi} {}]\n{msg}", plugin.name()));
                }
            });
        }
    });
    failures.extend(found.into_inner().unwrap());
    let read = read.into_inner().unwrap();
    for (si, (b, name, st, moments)) in series.iter().enumerate() {
        let rows: Vec<&LabRows> = (0..moments.len())
            .filter_map(|mi| read.get(&(si, mi)))
            .collect();
        if rows.len() != moments.len() {
            continue; // labcheck failed on a moment: reported above
        }
        let kernel = &moments[0].1.kernel;
        failures.extend(
            series_motion(st, &rows, kernel.max_increment)
                .into_iter()
                .map(|m| format!("[{b} {name} across the moments] {m}")),
        );
    }
    failures.sort();
    eprintln!(
        "volatility_reads_every_moment_of_every_series: {} series, {images} images, {} s",
        series.len(),
        started.elapsed().as_secs()
    );
    assert!(
        failures.is_empty(),
        "Volatility disagrees with the series' truth ({} problems):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// labcheck's rows by (kind, address, field).
fn lab_rows(rows: &[Value]) -> LabRows {
    rows.iter()
        .map(|r| {
            (
                (
                    s(r, "Kind").to_string(),
                    u(r, "Address").unwrap_or(0) & MASK48,
                    s(r, "Field").to_string(),
                ),
                s(r, "Value").to_string(),
            )
        })
        .collect()
}

/// What Volatility read at each moment against the series' truth: moved
/// threads and locks change between two moments, still threads never, and
/// the tick count grows by the interval. `max_increment` is the clock's
/// 100 ns units per tick.
fn series_motion(st: &SeriesTruth, rows: &[&LabRows], max_increment: u32) -> Vec<String> {
    let mut problems = Vec::new();
    let fields = |r: &LabRows, kind: &str, addr: u64, names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|f| {
                r.get(&(kind.to_string(), addr & MASK48, f.to_string()))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    };
    let changes = |kind: &str, addr: u64, names: &[&str]| {
        rows.windows(2)
            .any(|w| fields(w[0], kind, addr, names) != fields(w[1], kind, addr, names))
    };
    for &a in &st.moved_threads {
        if !changes("KTHREAD", a, THREAD_MOTION_FIELDS) {
            problems.push(format!(
                "thread {a:#x} moved in the truth, Volatility reads it unchanged: {:?}",
                fields(rows[0], "KTHREAD", a, THREAD_MOTION_FIELDS)
            ));
        }
    }
    for &a in &st.still_threads {
        if changes("KTHREAD", a, THREAD_MOTION_FIELDS) {
            let seen: Vec<_> = rows
                .iter()
                .map(|r| fields(r, "KTHREAD", a, THREAD_MOTION_FIELDS))
                .collect();
            problems.push(format!(
                "thread {a:#x} still in the truth, Volatility reads it changing: {seen:?}"
            ));
        }
    }
    for &a in &st.moved_locks {
        if !changes("ERESOURCE", a, LOCK_MOTION_FIELDS) {
            problems.push(format!(
                "ERESOURCE {a:#x} moved in the truth, Volatility reads it unchanged"
            ));
        }
    }
    let ticks: Vec<Option<u64>> = rows
        .iter()
        .map(|r| {
            r.get(&(
                "KUSER_SHARED_DATA".to_string(),
                KUSER_SHARED_DATA & MASK48,
                "TickCount".to_string(),
            ))
            .and_then(|v| v.parse().ok())
        })
        .collect();
    let first = ticks.first().copied().flatten();
    let last = ticks.last().copied().flatten();
    let ticks_per_s = 1e7 / f64::from(max_increment.max(1));
    match (first, last) {
        (Some(f), Some(l)) if ticks.windows(2).all(|w| w[0] < w[1]) => {
            let seconds = (l - f) as f64 / ticks_per_s;
            if (seconds - st.interval_seconds as f64).abs() > 0.1 {
                problems.push(format!(
                    "the clock advanced {seconds:.2} s by Volatility's tick counts {ticks:?}, \
                     the series' interval is {} s",
                    st.interval_seconds
                ));
            }
        }
        _ => problems.push(format!(
            "tick counts do not increase from moment to moment: {ticks:?}"
        )),
    }
    problems
}

/// Overwrites `_DUMP_HEADER64.DumpType` (offset 0xF98).
fn relabel_dump_type(path: &Path, dump_type: u32) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open dump");
    f.seek(SeekFrom::Start(0xF98)).expect("seek");
    f.write_all(&dump_type.to_le_bytes())
        .expect("write DumpType");
}

fn run_job(env: &VolEnv, job: &Job<'_>) -> Result<(), String> {
    let args = match job.plugin {
        Plugin::LabCheck => labcheck_args(job.truth),
        _ => Vec::new(),
    };
    let rows = run_vol(env, &job.image, job.plugin.name(), &args)?;
    let t = job.truth;
    match job.plugin {
        Plugin::Info => check_info(t, &rows),
        Plugin::PsList => check_pslist(t, &rows),
        Plugin::Threads => check_threads(t, &rows),
        Plugin::Handles => check_handles(env, job, &rows),
        Plugin::FileScan => check_filescan(t, &rows),
        Plugin::Modules => check_modules(t, &rows),
        Plugin::LabCheck => check_labcheck(t, &rows),
        Plugin::CrashInfo => check_crashinfo(t, job.format, &rows),
    }
}

/// labcheck's arguments: every ERESOURCE, thread, IRP and ALPC message
/// of the truth, and the clock.
fn labcheck_args(t: &GroundTruth) -> Vec<String> {
    let mut args: Vec<String> = vec!["--eresources".into()];
    args.extend(t.eresources.iter().map(|e| e.address.to_string()));
    args.push("--threads".into());
    args.extend(t.threads.iter().map(|x| x.address.to_string()));
    args.push("--irps".into());
    args.extend(t.irps.iter().map(|i| i.address.to_string()));
    if !t.alpc_messages.is_empty() {
        args.push("--alpc-messages".into());
        args.extend(t.alpc_messages.iter().map(|m| m.address.to_string()));
    }
    let lrpc: Vec<String> = t
        .alpc_ports
        .iter()
        .filter(|p| p.completion_port.is_some())
        .map(|p| p.address.to_string())
        .collect();
    if !lrpc.is_empty() {
        args.push("--alpc-ports".into());
        args.extend(lrpc);
    }
    args.push("--clock".into());
    args
}

/// A 64 MiB lab image of `sc` on build `b` (seed `SEED`), written raw to
/// `path`, and its truth.
fn raw_image(env: &VolEnv, sc: &Scenario, b: &str, path: PathBuf) -> (PathBuf, GroundTruth) {
    let opts = BuildOptions {
        ram_size: Some(64 << 20),
        seed: SEED,
        build: Some(b.into()),
    };
    let (image, truth) =
        hangscope_lab::build(sc, Symbols::Dir(&env.symbols), &opts).expect("build");
    format::write(&image, Format::Raw, &path, false).expect("write image");
    (path, truth)
}

/// Runs one plugin, returns its rows (children flattened).
fn run_vol(
    env: &VolEnv,
    image: &Path,
    plugin: &str,
    args: &[String],
) -> Result<Vec<Value>, String> {
    let out = Command::new(&env.vol)
        .arg("-q")
        .args(["-r", "json", "--offline"])
        .arg("-s")
        .arg(&env.symbols)
        .arg("-p")
        .arg(&env.plugins)
        .arg("-f")
        .arg(image)
        .arg(plugin)
        .args(args)
        .env("XDG_CACHE_HOME", env.cache.path())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", env.vol.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail = |s: &str| {
        s.lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    if !out.status.success() {
        return Err(format!(
            "vol exited with {}:\n{}\n{}",
            out.status,
            tail(&stdout),
            tail(&stderr)
        ));
    }
    let start = stdout
        .find('[')
        .ok_or_else(|| format!("no JSON in output:\n{}", tail(&stdout)))?;
    let v: Value =
        serde_json::from_str(&stdout[start..]).map_err(|e| format!("bad JSON from vol: {e}"))?;
    let mut rows = Vec::new();
    flatten(&v, &mut rows);
    Ok(rows)
}

fn flatten(v: &Value, out: &mut Vec<Value>) {
    if let Some(items) = v.as_array() {
        for item in items {
            out.push(item.clone());
            if let Some(children) = item.get("__children") {
                flatten(children, out);
            }
        }
    }
}

fn u(row: &Value, key: &str) -> Option<u64> {
    row.get(key).and_then(Value::as_u64)
}

fn s<'a>(row: &'a Value, key: &str) -> &'a str {
    row.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A readable diff of two sets: what is expected and missing, what is
/// found and unexpected.
fn set_diff<T: Ord + std::fmt::Debug>(
    what: &str,
    expected: &BTreeSet<T>,
    got: &BTreeSet<T>,
) -> Option<String> {
    if expected == got {
        return None;
    }
    let mut msg = format!(
        "{what}: expected {} entries, Volatility shows {}",
        expected.len(),
        got.len()
    );
    for (i, x) in expected.difference(got).enumerate() {
        if i == 20 {
            msg.push_str("\n  - ...");
            break;
        }
        msg.push_str(&format!("\n  - missing    {x:?}"));
    }
    for (i, x) in got.difference(expected).enumerate() {
        if i == 20 {
            msg.push_str("\n  + ...");
            break;
        }
        msg.push_str(&format!("\n  + unexpected {x:?}"));
    }
    Some(msg)
}

fn collect(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn check_info(t: &GroundTruth, rows: &[Value]) -> Result<(), String> {
    let vars: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (s(r, "Variable"), s(r, "Value")))
        .collect();
    let k = &t.kernel;
    let expect = [
        ("Kernel Base", format!("{:#x}", k.kernel_base & MASK48)),
        ("DTB", format!("{:#x}", k.dtb)),
        ("KeNumberProcessors", k.number_processors.to_string()),
        ("Major/Minor", format!("15.{}", k.build_number)),
        ("NtMajorVersion", k.version.0.to_string()),
        ("NtMinorVersion", k.version.1.to_string()),
    ];
    let mut problems = Vec::new();
    for (var, want) in expect {
        let got = vars.get(var).copied().unwrap_or("<absent>");
        if got != want {
            problems.push(format!("{var}: expected {want}, Volatility shows {got}"));
        }
    }
    let id = format!("{}-{}", k.pdb_guid, k.pdb_age);
    let syms = vars.get("Symbols").copied().unwrap_or("");
    if !syms.to_ascii_uppercase().contains(&id.to_ascii_uppercase()) {
        problems.push(format!(
            "Symbols: expected the ISF of {id}, Volatility used {syms:?}"
        ));
    }
    collect(problems)
}

fn check_pslist(t: &GroundTruth, rows: &[Value]) -> Result<(), String> {
    let expected: Vec<(u64, u64, String, u64, u64)> = t
        .processes
        .iter()
        .map(|p| {
            let name: String = p.name.chars().take(14).collect();
            (
                p.pid,
                p.ppid,
                name,
                p.address & MASK48,
                u64::from(p.thread_count),
            )
        })
        .collect();
    let got: Vec<(u64, u64, String, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                u(r, "PID").unwrap_or(u64::MAX),
                u(r, "PPID").unwrap_or(u64::MAX),
                s(r, "ImageFileName").to_string(),
                u(r, "Offset(V)").unwrap_or(0),
                u(r, "Threads").unwrap_or(u64::MAX),
            )
        })
        .collect();
    if expected == got {
        return Ok(());
    }
    let mut msg =
        String::from("process list (pid, ppid, name, EPROCESS, threads) differs, in list order:");
    for i in 0..expected.len().max(got.len()) {
        match (expected.get(i), got.get(i)) {
            (Some(e), Some(g)) if e == g => {}
            (e, g) => msg.push_str(&format!("\n  #{i}: expected {e:?}\n  #{i}: got      {g:?}")),
        }
    }
    Err(msg)
}

fn check_modules(t: &GroundTruth, rows: &[Value]) -> Result<(), String> {
    let expected: BTreeSet<(u64, u64, String, String)> = t
        .modules
        .iter()
        .map(|m| (m.base & MASK48, m.size, m.name.clone(), m.path.clone()))
        .collect();
    let got: BTreeSet<(u64, u64, String, String)> = rows
        .iter()
        .map(|r| {
            (
                u(r, "Base").unwrap_or(0),
                u(r, "Size").unwrap_or(0),
                s(r, "Name").to_string(),
                s(r, "Path").to_string(),
            )
        })
        .collect();
    match set_diff("modules (base, size, name, path)", &expected, &got) {
        None => Ok(()),
        Some(m) => Err(m),
    }
}

fn check_threads(t: &GroundTruth, rows: &[Value]) -> Result<(), String> {
    let expected: BTreeSet<(u64, u64, u64)> = t
        .threads
        .iter()
        .map(|x| (x.pid, x.tid, x.address & MASK48))
        .collect();
    let got: BTreeSet<(u64, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                u(r, "PID").unwrap_or(u64::MAX),
                u(r, "TID").unwrap_or(u64::MAX),
                u(r, "Offset").unwrap_or(0),
            )
        })
        .collect();
    collect(
        set_diff("threads (pid, tid, ETHREAD)", &expected, &got)
            .into_iter()
            .collect(),
    )
}

/// Handles Volatility 3 2.28.2 cannot list: on Windows 10+ it skips a
/// handle whose `_OBJECT_HEADER.TypeIndex` byte *as stored* is 0
/// (`handles.py`: `if item.TypeIndex != 0x0`), but that byte is encoded
/// with the header address and `ObHeaderCookie`, so about one object in
/// 256 legitimately stores 0. Returns the (pid, handle) pairs among
/// `missing` whose stored byte is 0 on a build with a cookie, as read by
/// our plugin; every other missing handle stays an error.
fn vol_typeindex_zero_skips(
    env: &VolEnv,
    job: &Job<'_>,
    missing: &BTreeSet<(u64, u64, String)>,
) -> Result<BTreeSet<(u64, u64)>, String> {
    let objects: BTreeMap<u64, (u64, u64)> = job
        .truth
        .handles
        .iter()
        .filter(|h| missing.contains(&(h.pid, h.handle, h.type_name.clone())))
        .map(|h| (h.object & MASK48, (h.pid, h.handle)))
        .collect();
    if objects.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut args = vec!["--objects".to_string()];
    args.extend(
        job.truth
            .handles
            .iter()
            .filter(|h| objects.contains_key(&(h.object & MASK48)))
            .map(|h| h.object.to_string()),
    );
    let rows = run_vol(env, &job.image, Plugin::LabCheck.name(), &args)?;
    let mut fields: BTreeMap<(u64, String), String> = BTreeMap::new();
    for r in &rows {
        fields.insert(
            (
                u(r, "Address").unwrap_or(0) & MASK48,
                s(r, "Field").to_string(),
            ),
            s(r, "Value").to_string(),
        );
    }
    Ok(objects
        .iter()
        .filter(|(addr, _)| {
            fields
                .get(&(**addr, "TypeIndex".into()))
                .map(String::as_str)
                == Some("0")
                && fields
                    .get(&(**addr, "HasCookie".into()))
                    .map(String::as_str)
                    == Some("True")
        })
        .map(|(_, ph)| *ph)
        .collect())
}

fn check_handles(env: &VolEnv, job: &Job<'_>, rows: &[Value]) -> Result<(), String> {
    let t = job.truth;
    // Every handle: (pid, value, type); File handles also by name and
    // access.
    let mut expected: BTreeSet<(u64, u64, String)> = t
        .handles
        .iter()
        .map(|h| (h.pid, h.handle, h.type_name.clone()))
        .collect();
    let got: BTreeSet<(u64, u64, String)> = rows
        .iter()
        .map(|r| {
            (
                u(r, "PID").unwrap_or(u64::MAX),
                u(r, "HandleValue").unwrap_or(u64::MAX),
                s(r, "Type").to_string(),
            )
        })
        .collect();
    let missing: BTreeSet<_> = expected.difference(&got).cloned().collect();
    let skipped = vol_typeindex_zero_skips(env, job, &missing)?;
    if !skipped.is_empty() {
        eprintln!(
            "note [{} {} windows.handles]: Volatility 3 skips {} handle(s) whose encoded \
             _OBJECT_HEADER.TypeIndex byte is 0 (a Volatility bug, not the lab's): {:?}",
            job.build,
            job.format,
            skipped.len(),
            skipped
        );
    }
    expected.retain(|(pid, h, _)| !skipped.contains(&(*pid, *h)));
    let files_expected: BTreeSet<(u64, u64, String, u64)> = t
        .handles
        .iter()
        .filter(|h| h.type_name == "File" && !skipped.contains(&(h.pid, h.handle)))
        .map(|h| (h.pid, h.handle, h.name.clone(), u64::from(h.access)))
        .collect();
    let files_got: BTreeSet<(u64, u64, String, u64)> = rows
        .iter()
        .filter(|r| s(r, "Type") == "File")
        .map(|r| {
            (
                u(r, "PID").unwrap_or(u64::MAX),
                u(r, "HandleValue").unwrap_or(u64::MAX),
                s(r, "Name").to_string(),
                u(r, "GrantedAccess").unwrap_or(u64::MAX),
            )
        })
        .collect();
    collect(
        [
            set_diff("handles (pid, handle, type)", &expected, &got),
            set_diff(
                "File handles (pid, handle, name, access)",
                &files_expected,
                &files_got,
            ),
        ]
        .into_iter()
        .flatten()
        .collect(),
    )
}

fn check_filescan(t: &GroundTruth, rows: &[Value]) -> Result<(), String> {
    // filescan prints FileName as stored; names repeat, so count them.
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for f in &t.files {
        *expected.entry(f.name.clone()).or_default() += 1;
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows {
        *got.entry(s(r, "Name").to_string()).or_default() += 1;
    }
    let e: BTreeSet<(String, usize)> = expected.into_iter().collect();
    let g: BTreeSet<(String, usize)> = got.into_iter().collect();
    let mut problems: Vec<String> = set_diff("file objects (name, count)", &e, &g)
        .into_iter()
        .collect();
    // Windows 8+ scans the kernel virtual layer: offsets are the objects'
    // addresses. (Windows 7 prints physical offsets.)
    let virt = rows
        .iter()
        .all(|r| u(r, "Offset").unwrap_or(0) > 0xF000_0000_0000);
    if virt && !rows.is_empty() {
        let e: BTreeSet<u64> = t.files.iter().map(|f| f.address & MASK48).collect();
        let g: BTreeSet<u64> = rows.iter().filter_map(|r| u(r, "Offset")).collect();
        problems.extend(set_diff("file object addresses", &e, &g));
    }
    collect(problems)
}

fn check_crashinfo(t: &GroundTruth, format: Format, rows: &[Value]) -> Result<(), String> {
    let Some(r) = rows.first() else {
        return Err("no header row".into());
    };
    let k = &t.kernel;
    let dump_type = match format {
        Format::CrashBitmap => "Bitmap Dump (0x5)",
        _ => "Full Dump (0x1)",
    };
    let expect = [
        ("Signature", "PAGE".to_string()),
        ("DumpType", dump_type.to_string()),
        ("MajorVersion", "15".to_string()),
        ("MinorVersion", k.build_number.to_string()),
        ("DirectoryTableBase", k.dtb.to_string()),
        ("NumberProcessors", k.number_processors.to_string()),
        ("MachineImageType", "34404".to_string()),
    ];
    let mut problems = Vec::new();
    for (field, want) in expect {
        let got = match r.get(field) {
            Some(Value::String(v)) => v.clone(),
            Some(v) => v.to_string(),
            None => "<absent>".into(),
        };
        if got != want {
            problems.push(format!("{field}: expected {want}, Volatility reads {got}"));
        }
    }
    collect(problems)
}

fn check_labcheck(t: &GroundTruth, rows: &[Value]) -> Result<(), String> {
    let mut fields: BTreeMap<(String, u64, String), String> = BTreeMap::new();
    let mut problems = Vec::new();
    for r in rows {
        let key = (
            s(r, "Kind").to_string(),
            u(r, "Address").unwrap_or(0) & MASK48,
            s(r, "Field").to_string(),
        );
        if key.2 == "Error" {
            problems.push(format!(
                "{} {:#x}: read failed: {}",
                key.0,
                key.1,
                s(r, "Value")
            ));
        }
        fields.insert(key, s(r, "Value").to_string());
    }
    macro_rules! check {
        ($kind:expr, $addr:expr, $field:expr, $want:expr $(,)?) => {{
            let (kind, addr, field, want): (&str, u64, &str, String) =
                ($kind, $addr, &$field, $want);
            let got = fields
                .get(&(kind.to_string(), addr & MASK48, field.to_string()))
                .cloned()
                .unwrap_or_else(|| "<absent>".into());
            if got != want {
                problems.push(format!(
                    "{kind} {addr:#x} {field}: expected {want}, Volatility reads {got}"
                ));
            }
        }};
    }
    let hex_list = |v: &mut Vec<u64>| {
        v.sort();
        v.iter()
            .map(|x| format!("{x:#x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for e in &t.eresources {
        check!(
            "ERESOURCE",
            e.address,
            "ActiveCount",
            e.active_count.to_string()
        );
        check!(
            "ERESOURCE",
            e.address,
            "ContentionCount",
            e.contention_count.to_string()
        );
        let flag = fields
            .get(&("ERESOURCE".into(), e.address & MASK48, "Flag".into()))
            .and_then(|v| v.parse::<u64>().ok());
        // ResourceOwnedExclusive.
        if flag.map(|f| f & 0x80 != 0) != Some(e.exclusive) {
            problems.push(format!(
                "ERESOURCE {:#x} exclusive: expected {}, Volatility reads Flag {flag:?}",
                e.address, e.exclusive
            ));
        }
        let mut owners: Vec<u64> = e.owners.iter().map(|o| o.thread).collect();
        check!("ERESOURCE", e.address, "Owners", hex_list(&mut owners));
        let shared = e.waiters.iter().filter(|w| !w.exclusive).count();
        let excl = e.waiters.len() - shared;
        check!(
            "ERESOURCE",
            e.address,
            "NumberOfSharedWaiters",
            shared.to_string()
        );
        check!(
            "ERESOURCE",
            e.address,
            "NumberOfExclusiveWaiters",
            excl.to_string()
        );
        let hex48 = |a: u64| format!("{:#x}", a & MASK48);
        check!(
            "ERESOURCE",
            e.address,
            "SharedWaiters",
            hex48(e.shared_waiters)
        );
        // What shared waiters block on, as Volatility finds it from the
        // resource: the one semaphore SharedWaiters points to, or on 1607
        // (SharedWaiters an embedded _KWAIT_CHAIN, so the events are not
        // SharedWaiters itself) each chain entry's event, in chain order.
        let events: Vec<String> = e.shared_wait_events.iter().map(|&a| hex48(a)).collect();
        check!("ERESOURCE", e.address, "SharedWaitEvents", events.join(" "));
        let kind = if e.shared_wait_events == [e.shared_waiters] {
            "SemaphoreObject"
        } else {
            "EventSynchronizationObject"
        };
        check!(
            "ERESOURCE",
            e.address,
            "SharedWaitEventTypes",
            vec![kind; events.len()].join(" ")
        );
    }
    check!(
        "KUSER_SHARED_DATA",
        KUSER_SHARED_DATA,
        "TickCount",
        t.kernel.tick_count.to_string()
    );
    for x in &t.threads {
        check!("KTHREAD", x.address, "Tid", x.tid.to_string());
        check!(
            "KTHREAD",
            x.address,
            "ContextSwitches",
            x.context_switches.to_string()
        );
        check!(
            "KTHREAD",
            x.address,
            "KernelTime",
            x.kernel_ticks.to_string()
        );
        check!("KTHREAD", x.address, "UserTime", x.user_ticks.to_string());
        check!("KTHREAD", x.address, "State", x.state.clone());
        if let Some(reason) = &x.wait_reason {
            check!("KTHREAD", x.address, "WaitReason", reason.clone());
        }
        check!("KTHREAD", x.address, "WaitTime", x.wait_time.to_string());
        if let (true, Some(&o)) = (x.state == "Waiting", x.waits_on.first()) {
            check!(
                "KTHREAD",
                x.address,
                "WaitObject",
                format!("{:#x}", o & MASK48)
            );
        }
    }
    // ALPC (issue 15): each message's links, as Volatility reads them by
    // the kernel's own symbol table.
    let hex48 = |a: u64| format!("{:#x}", a & MASK48);
    for m in &t.alpc_messages {
        let a = m.address;
        check!("ALPC", a, "WaitingThread", hex48(m.client_thread));
        check!(
            "ALPC",
            a,
            "ServerThread",
            hex48(m.server_thread.unwrap_or(0))
        );
        check!("ALPC", a, "PortQueue", hex48(m.connection_port));
        check!("ALPC", a, "OwnerPort", hex48(m.client_port));
        let queue = if m.queue == "main" { "1" } else { "3" };
        check!("ALPC", a, "QueueType", queue.to_string());
        check!("ALPC", a, "MessageType", "0x2001".to_string());
        check!("ALPC", a, "ServerPid", m.server_pid.to_string());
        check!("ALPC", a, "ClientAlpcMessage", hex48(a));
    }
    // An LRPC port's completion queue: a QueueObject whose ThreadListHead
    // holds its idle and busy workers, each one's Tcb.Queue naming it.
    for p in &t.alpc_ports {
        let Some(q) = p.completion_port else { continue };
        let a = p.address;
        check!("ALPC_PORT", a, "CompletionPort", hex48(q));
        check!("ALPC_PORT", a, "QueueType", "QueueObject".to_string());
        let mut workers: Vec<u64> = p
            .idle_workers
            .iter()
            .chain(&p.busy_workers)
            .map(|w| w & MASK48)
            .collect();
        workers.sort();
        check!(
            "ALPC_PORT",
            a,
            "QueueThreads",
            workers
                .iter()
                .map(|w| format!("{w:#x}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        check!("ALPC_PORT", a, "QueueThreadsPointBack", "True".to_string());
    }
    for irp in &t.irps {
        let a = irp.address;
        check!("IRP", a, "StackCount", irp.stack_count.to_string());
        check!(
            "IRP",
            a,
            "CurrentLocation",
            irp.current_location.to_string()
        );
        check!("IRP", a, "Thread", (irp.thread & MASK48).to_string());
        let expected_cur = fields
            .get(&(
                "IRP".into(),
                a & MASK48,
                "ExpectedCurrentStackLocation".into(),
            ))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| (v & MASK48).to_string())
            .unwrap_or_default();
        check!("IRP", a, "CurrentStackLocation", expected_cur);
        // The truth lists locations top (highest) first.
        let n = irp.stack.len();
        for (k, st) in irp.stack.iter().enumerate() {
            let loc = n - k;
            check!(
                "IRP",
                a,
                &format!("Location{loc}"),
                format!(
                    "{} {} {:#x} {:#x}",
                    st.major,
                    st.minor,
                    st.device & MASK48,
                    st.file_object & MASK48
                ),
            );
        }
    }
    collect(problems)
}

/// The comparisons themselves, without Volatility: a disagreement must
/// fail with a diff that names the field.
#[test]
fn checks_report_disagreements() {
    use hangscope_lab::truth::{FileTruth, ProcessTruth, ThreadTruth};
    let t = GroundTruth {
        processes: vec![ProcessTruth {
            address: 0xFFFF_FA80_0100_0000,
            pid: 4,
            ppid: 0,
            name: "System".into(),
            thread_count: 2,
            ..Default::default()
        }],
        threads: vec![ThreadTruth {
            address: 0xFFFF_FA80_0200_0000,
            tid: 8,
            pid: 4,
            state: "Waiting".into(),
            ..Default::default()
        }],
        files: vec![FileTruth {
            address: 0xFFFF_FA80_0300_0000,
            name: "\\Windows\\Temp".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let ps = serde_json::json!([{"PID": 4, "PPID": 0, "ImageFileName": "System",
        "Offset(V)": 0xFA80_0100_0000u64, "Threads": 2, "__children": []}]);
    let mut rows = Vec::new();
    flatten(&ps, &mut rows);
    assert_eq!(check_pslist(&t, &rows), Ok(()));
    rows[0]["PPID"] = serde_json::json!(8);
    let err = check_pslist(&t, &rows).unwrap_err();
    assert!(
        err.contains("expected Some((4, 0, \"System\"") && err.contains("got      Some((4, 8,"),
        "{err}"
    );

    let th = serde_json::json!([{"PID": 4, "TID": 12, "Offset": 0xFA80_0200_0000u64}]);
    let mut rows = Vec::new();
    flatten(&th, &mut rows);
    let err = check_threads(&t, &rows).unwrap_err();
    assert!(
        err.contains("missing    (4, 8,") && err.contains("unexpected (4, 12,"),
        "{err}"
    );

    let fs = serde_json::json!([{"Name": "\\Windows\\Temp", "Offset": 0x1234},
        {"Name": "\\Windows\\Temp", "Offset": 0x5678}]);
    let mut rows = Vec::new();
    flatten(&fs, &mut rows);
    let err = check_filescan(&t, &rows).unwrap_err();
    assert!(err.contains("(\"\\\\Windows\\\\Temp\", 2)"), "{err}");
}

/// The series comparison without Volatility: a still thread that changes,
/// a moved thread or lock that does not, and a clock that does not advance
/// by the interval must each be reported.
#[test]
fn series_motion_reports_disagreements() {
    let (moved, still, lock) = (
        0xFFFF_FA80_0200_0000u64,
        0xFFFF_FA80_0300_0000u64,
        0x1000u64,
    );
    let st = SeriesTruth {
        proof: Some("stuck".into()),
        interval_seconds: 10,
        moved_threads: vec![moved],
        still_threads: vec![still],
        moved_locks: vec![lock],
    };
    let moment = |switches: &str, still_state: &str, owners: &str, ticks: u64| -> LabRows {
        let k = |kind: &str, a: u64, f: &str| (kind.to_string(), a & MASK48, f.to_string());
        BTreeMap::from([
            (k("KTHREAD", moved, "ContextSwitches"), switches.to_string()),
            (k("KTHREAD", still, "State"), still_state.to_string()),
            (k("ERESOURCE", lock, "Owners"), owners.to_string()),
            (
                k("KUSER_SHARED_DATA", KUSER_SHARED_DATA, "TickCount"),
                ticks.to_string(),
            ),
        ])
    };
    // 156,250 100 ns units per tick: 64 ticks a second.
    let inc = 156_250;
    let a = moment("5", "Waiting", "0x1", 1000);
    let b = moment("9", "Waiting", "0x2", 1640);
    assert_eq!(series_motion(&st, &[&a, &b], inc), Vec::<String>::new());
    let c = moment("5", "Running", "0x1", 1000 + 64);
    let got = series_motion(&st, &[&a, &c], inc).join("\n");
    for want in [
        "moved in the truth, Volatility reads it unchanged",
        "still in the truth, Volatility reads it changing",
        "ERESOURCE 0x1000 moved in the truth",
        "the clock advanced 1.00 s",
    ] {
        assert!(got.contains(want), "{want}: {got}");
    }
    let got = series_motion(&st, &[&b, &a], inc).join("\n");
    assert!(got.contains("do not increase"), "{got}");
}

/// The `hangscope-lab` binary: listings, a build, and a scenario error
/// (exit 2, naming the field).
#[test]
fn cli_builds_lists_and_reports_errors() {
    let exe = env!("CARGO_BIN_EXE_hangscope-lab");
    let run = |args: &[&str]| {
        Command::new(exe)
            .args(args)
            .output()
            .expect("run hangscope-lab")
    };

    let out = run(&["scenarios"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("temp-flood ")), "{text}");
    assert!(out.stderr.is_empty());

    let out = run(&["builds"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("339E74133576439CBCDF7E0229DA3773-1"),
        "{text}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(workspace().join("crates/lab/scenarios/idle.toml"))
        .expect("idle.toml");
    // A build nobody has: the error must name machine.build.
    let text = text.replacen("build = \"", "build = \"no-such-build-", 1);
    std::fs::write(&bad, text).expect("write scenario");
    let out_path = dir.path().join("x.raw");
    let out = run(&[
        "build",
        "--scenario",
        bad.to_str().unwrap(),
        "--format",
        "raw",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("machine.build"), "{err}");
    assert!(!out_path.exists());

    let out = run(&[
        "build",
        "--scenario",
        "idle",
        "--build",
        "win7sp1",
        "--format",
        "elf",
        "--ram",
        "64M",
        "--seed",
        "3",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read(&out_path).expect("image");
    assert_eq!(&head[..4], b"\x7fELF");
    let truth: GroundTruth =
        serde_json::from_slice(&std::fs::read(dir.path().join("x.raw.truth.json")).expect("truth"))
            .expect("truth json");
    assert_eq!(truth.kernel.build_number, 7601);
}

/// Issue 15, must-show 4: Volatility 3 reads the cpu-starvation,
/// low-memory and busy-server images (7 SP1, 8.1, 19041, 11): processes
/// and every thread (PID, TID, ETHREAD) as the truth has them, so the
/// ready threads the lab queued and the memory waiters are threads an
/// independent reader finds. (The ready queues and DPC queues themselves
/// are not read by Volatility here.)
#[test]
fn volatility_reads_the_starvation_and_memory_scenarios() {
    let Some(env) = vol_env() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for name in ["cpu-starvation", "low-memory", "busy-server"] {
        let sc = Scenario::builtin(name).expect("built-in scenario");
        for b in ["win7sp1", "win2012r2", "win10-19041", "win11"] {
            let (path, truth) = raw_image(&env, &sc, b, tmp.path().join(format!("{name}-{b}.raw")));
            for p in [Plugin::PsList, Plugin::Threads] {
                let job = Job {
                    build: b,
                    format: Format::Raw,
                    image: path.clone(),
                    truth: &truth,
                    plugin: p,
                };
                if let Err(e) = run_job(&env, &job) {
                    failures.push(format!("[{name} {b} {}] {e}", p.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Issue 15, must-show 4: Volatility 3 reads the scheduler of the
/// shared-ready-queue and affinity scenarios (7 SP1, 8.1, 19041, 11; the
/// two 2022/11-style `_KAFFINITY_EX` pointers included). labcheck walks
/// `KiProcessorBlock`: each CPU's 32 `DispatcherReadyListHead` lists and,
/// from 8.1 on, the `_KSHARED_READY_QUEUE` the CPUs point at, through
/// `KTHREAD.WaitListEntry`; and each ready thread's `Tcb.Affinity`. Every
/// list's (priority, thread) set, the CPUs sharing the queue and every
/// affinity mask must be the truth's.
#[test]
fn volatility_reads_the_shared_ready_queue_and_affinities() {
    let Some(env) = vol_env() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for name in ["cpu-starvation-shared", "cpu-affinity"] {
        let sc = Scenario::builtin(name).expect("built-in scenario");
        for b in ["win7sp1", "win2012r2", "win10-19041", "win11"] {
            let (path, truth) = raw_image(&env, &sc, b, tmp.path().join(format!("{name}-{b}.raw")));
            let ready = truth
                .scheduler
                .iter()
                .flat_map(|c| &c.ready)
                .chain(&truth.shared_ready);
            let mut args: Vec<String> = vec!["--ready".into(), "--affinities".into()];
            args.extend(ready.clone().map(|r| r.thread.to_string()));
            let rows = match run_vol(&env, &path, Plugin::LabCheck.name(), &args) {
                Ok(rows) => lab_rows(&rows),
                Err(e) => {
                    failures.push(format!("[{name} {b}] labcheck: {e}"));
                    continue;
                }
            };
            let list = |r: &[hangscope_lab::truth::ReadyTruth]| -> String {
                let mut v: Vec<String> = r
                    .iter()
                    .map(|x| format!("{}:{:#x}", x.priority, x.thread & MASK48))
                    .collect();
                v.sort();
                v.join(" ")
            };
            let mut want: LabRows = BTreeMap::new();
            for c in &truth.scheduler {
                want.insert(
                    ("READY".into(), 0, format!("Cpu{}Ready", c.index)),
                    list(&c.ready),
                );
            }
            if !truth.shared_ready_cpus.is_empty() {
                let cpus: Vec<String> = truth
                    .shared_ready_cpus
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
                want.insert(("READY".into(), 0, "SharedCpus".into()), cpus.join(" "));
                want.insert(
                    ("READY".into(), 0, "SharedReady".into()),
                    list(&truth.shared_ready),
                );
            }
            for r in ready {
                want.insert(
                    ("AFFINITY".into(), r.thread & MASK48, "Affinity".into()),
                    format!("{:#x}", r.affinity),
                );
            }
            // A NULL `_KAFFINITY_EX` pointer (2022, 11) is a thread the lab
            // left free to run on every CPU.
            let every_cpu = format!("{:#x}", (1u64 << truth.scheduler.len()) - 1);
            for (k, v) in &want {
                let error = (k.0.clone(), k.1, "Error".to_string());
                let got = rows
                    .get(k)
                    .or_else(|| rows.get(&error))
                    .map(String::as_str)
                    .unwrap_or("(absent)");
                if got != v && !(got == "NULL" && *v == every_cpu) {
                    failures.push(format!(
                        "[{name} {b}] {k:?}: Volatility read {got:?}, truth {v:?}"
                    ));
                }
            }
            if truth.shared_ready.is_empty() && name == "cpu-starvation-shared" && b != "win7sp1" {
                failures.push(format!(
                    "[{name} {b}] the lab put no thread on the shared queue"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
