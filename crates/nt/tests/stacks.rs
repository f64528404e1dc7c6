//! Kernel stacks read back from lab images: every thread of every scenario
//! unwinds to the frames the lab laid out (ground truth), waiting threads
//! from their switch frame and running threads from the vCPU registers, on
//! several builds and dump formats.

use hangscope_dump::Dump;
use hangscope_lab::format::{self, Format};
use hangscope_lab::truth::GroundTruth;
use hangscope_lab::{build, builds, BuildOptions, Scenario, Symbols};
use hangscope_nt::stacks::StackFilter;
use hangscope_nt::{Kernel, SymbolSource};
use hangscope_symbols::SymbolStore;

fn symbols() -> SymbolSource {
    let spec = builds::symbols_dir().display().to_string();
    SymbolSource::from_store(SymbolStore::from_path_spec(&spec).expect("symbol path"))
}

/// Build, write and read back; returns the mismatches.
fn check(scenario: &str, build_alias: &str, fmt: Format, seed: u64) -> Vec<String> {
    let sc = Scenario::builtin(scenario).unwrap_or_else(|e| panic!("{e}"));
    check_scenario(&sc, build_alias, fmt, seed, &symbols())
}

/// [`check`] for any scenario, read with `symbols`.
fn check_scenario(
    sc: &Scenario,
    build_alias: &str,
    fmt: Format,
    seed: u64,
    symbols: &SymbolSource,
) -> Vec<String> {
    let scenario = sc.name.as_str();
    let opts = BuildOptions {
        ram_size: Some(64 << 20),
        seed,
        build: Some(build_alias.into()),
    };
    let (img, truth): (_, GroundTruth) = build(sc, Symbols::Default, &opts)
        .unwrap_or_else(|e| panic!("{scenario} on {build_alias}: {e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("image.{}", fmt.extension()));
    format::write(&img, fmt, &path, false).unwrap_or_else(|e| panic!("write: {e}"));
    let dump = Dump::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
    let k = Kernel::open(&dump, symbols).unwrap_or_else(|e| panic!("kernel: {e}"));
    let tag = format!("{scenario}/{build_alias}/{}", fmt.name());
    let mut bad = Vec::new();
    let mut walker = k.stack_walker();
    let mut with_stack = 0;
    for t in &truth.threads {
        if t.stack.is_empty() {
            continue;
        }
        with_stack += 1;
        let s = walker.thread_stack(t.address);
        if s.symbols() != t.stack || !s.complete {
            bad.push(format!(
                "{tag}: thread {:#x} ({}): start {}, stop {} ({})\n  got  {:?}\n  want {:?}",
                t.address,
                t.state,
                s.start,
                s.stop,
                s.stop_detail,
                s.symbols(),
                t.stack
            ));
        }
        let running = t.cpu.is_some();
        if running != walked_from_cpu(&s.start) {
            bad.push(format!(
                "{tag}: thread {:#x} running={running} but start {}",
                t.address, s.start
            ));
        }
        if !running && !s.start.starts_with("switch frame") {
            bad.push(format!(
                "{tag}: thread {:#x} not started from its switch frame: {}",
                t.address, s.start
            ));
        }
    }
    if with_stack == 0 {
        bad.push(format!("{tag}: no thread has an expected stack"));
    }
    // Every CPU: the running thread's stack, or the idle loop.
    let running = k.running();
    if running.len() != truth.kernel.cpus.len() {
        bad.push(format!(
            "{tag}: {} CPUs, truth {}",
            running.len(),
            truth.kernel.cpus.len()
        ));
    }
    for (r, c) in running.iter().zip(&truth.kernel.cpus) {
        if r.thread != Some(c.current_thread) {
            bad.push(format!(
                "{tag}: CPU {} thread {:?} != {:#x}",
                r.cpu, r.thread, c.current_thread
            ));
        }
        let expect: Vec<String> = match truth.threads.iter().find(|t| t.address == c.current_thread)
        {
            // A thread whose frames no symbol names (not laid out).
            Some(t) if t.stack.is_empty() => continue,
            Some(t) => t.stack.clone(),
            // The idle loop: checked below by name.
            None => r.stack.symbols().into_iter().take(1).collect(),
        };
        if r.stack.symbols() != expect || !r.stack.complete || !walked_from_cpu(&r.stack.start) {
            bad.push(format!(
                "{tag}: CPU {}: start {}, stop {}\n  got  {:?}\n  want {:?}",
                r.cpu,
                r.stack.start,
                r.stack.stop,
                r.stack.symbols(),
                expect
            ));
        }
        if r.idle
            && !r
                .stack
                .symbols()
                .first()
                .is_some_and(|f| f.starts_with("nt!KiIdleLoop+"))
        {
            bad.push(format!(
                "{tag}: idle CPU {} stack {:?}",
                r.cpu,
                r.stack.symbols()
            ));
        }
    }
    // !stacks: groups cover every thread once; identical truths grouped.
    let report = k.stacks(&StackFilter::default());
    let total: usize = report.groups.iter().map(|g| g.count).sum();
    if total != report.threads || total != k.threads().items.len() {
        bad.push(format!(
            "{tag}: stacks groups {total} threads, walked {}, listed {}",
            report.threads,
            k.threads().items.len()
        ));
    }
    for t in truth.threads.iter().filter(|t| !t.stack.is_empty()) {
        let g = report
            .groups
            .iter()
            .find(|g| g.threads.iter().any(|x| x.address == t.address));
        if g.map(|g| &g.frames) != Some(&t.stack) {
            bad.push(format!(
                "{tag}: thread {:#x} not grouped under its stack",
                t.address
            ));
        }
    }
    bad
}

fn walked_from_cpu(start: &str) -> bool {
    start.starts_with("vCPU") || start.contains("ProcessorState.ContextFrame")
}

fn run_all(cases: &[(&str, &str, Format, u64)]) {
    let mut bad = Vec::new();
    for &(sc, b, f, seed) in cases {
        bad.extend(check(sc, b, f, seed));
    }
    assert_none(bad);
}

/// Fail listing every mismatch.
fn assert_none(bad: Vec<String>) {
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_scenario_on_win7_and_win10_raw() {
    let mut cases = Vec::new();
    for (i, b) in ["win7sp1", "win10-19041", "win11"].iter().enumerate() {
        for sc in ["temp-flood", "deadlock", "idle"] {
            cases.push((sc, *b, Format::Raw, 31 + i as u64));
        }
    }
    run_all(&cases);
}

#[test]
fn temp_flood_on_every_build() {
    let cases: Vec<_> = ["win2012r2", "win2016", "win2019b", "win2022"]
        .iter()
        .enumerate()
        .map(|(i, b)| ("temp-flood", *b, Format::Raw, 71 + i as u64))
        .collect();
    run_all(&cases);
}

#[test]
fn every_dump_format() {
    let mut cases = Vec::new();
    for f in Format::ALL {
        cases.push(("temp-flood", "win7sp1", f, 5));
        cases.push(("deadlock", "win10-19041", f, 6));
    }
    run_all(&cases);
}

#[test]
fn the_owner_is_in_ntfs() {
    // The seed case: the thread the waiters wait on runs in Ntfs.
    let sc = Scenario::builtin("temp-flood").expect("scenario");
    let opts = BuildOptions {
        ram_size: Some(64 << 20),
        seed: 9,
        build: Some("win7sp1".into()),
    };
    let (img, truth) = build(&sc, Symbols::Default, &opts).expect("build");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image.elf");
    format::write(&img, Format::Elf, &path, false).expect("write");
    let dump = Dump::open(&path).expect("open");
    let k = Kernel::open(&dump, &symbols()).expect("kernel");
    let ntfs = k.stacks(&StackFilter {
        pid: None,
        contains: Some("ntfs!NtfsCommonCreate".into()),
    });
    assert!(ntfs.threads > 0, "no thread in NtfsCommonCreate");
    for g in &ntfs.groups {
        assert!(
            g.frames
                .iter()
                .any(|f| f.starts_with("Ntfs!NtfsCommonCreate+")),
            "{:?}",
            g.frames
        );
    }
    let running: Vec<_> = truth
        .threads
        .iter()
        .filter(|t| t.cpu.is_some() && !t.stack.is_empty())
        .collect();
    assert!(!running.is_empty());
    for t in running {
        let d = k.thread_detail(t.address).expect("detail");
        assert_eq!(d.stack, t.stack);
    }
}

/// The lab's real driver (hsflt.sys, compiled with clang and lld-link),
/// its scenario and a symbol store holding its PDB; built once.
fn real_driver() -> &'static (tempfile::TempDir, Scenario, std::path::PathBuf) {
    static D: std::sync::OnceLock<(tempfile::TempDir, Scenario, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    D.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, store) = hangscope_lab::driver::build_lab_driver(dir.path())
            .unwrap_or_else(|e| panic!("building hsflt.sys: {e}"));
        let sc =
            Scenario::load(&dir.path().join("av-filter.toml")).unwrap_or_else(|e| panic!("{e}"));
        (dir, sc, store)
    })
}

/// Kernel tables and the driver's PDB, as `-y "kernel;driver"` gives them.
fn symbols_with_driver() -> SymbolSource {
    let spec = format!(
        "{};{}",
        builds::symbols_dir().display(),
        real_driver().2.display()
    );
    SymbolSource::from_store(SymbolStore::from_path_spec(&spec).expect("symbol path"))
}

#[test]
fn real_driver_frames_unwind_and_are_named_from_its_pdb() {
    // Threads blocked and running inside real clang-built code: frames from
    // its own .pdata/.xdata (pushes, a 1 KiB frame, an RBP frame with
    // alloca, a leaf), crossing into the kernel through its IAT and back,
    // named from its PDB. Several builds, every format.
    let (_, sc, _) = real_driver();
    let syms = symbols_with_driver();
    let mut bad = Vec::new();
    for (i, b) in ["win7sp1", "win2016", "win10-19041", "win2022", "win11"]
        .iter()
        .enumerate()
    {
        bad.extend(check_scenario(sc, b, Format::Raw, 90 + i as u64, &syms));
    }
    for f in Format::ALL {
        bad.extend(check_scenario(sc, "win2019a", f, 97, &syms));
    }
    assert_none(bad);
}

#[test]
fn real_driver_without_its_pdb_shows_module_offsets() {
    let (_, sc, _) = real_driver();
    let opts = BuildOptions {
        ram_size: Some(64 << 20),
        seed: 3,
        build: Some("win10-19041".into()),
    };
    let (img, truth) = build(sc, Symbols::Default, &opts).expect("build");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image.elf");
    format::write(&img, Format::Elf, &path, false).expect("write");
    let dump = Dump::open(&path).expect("open");
    let k = Kernel::open(&dump, &symbols()).expect("kernel");
    let m = k
        .modules()
        .items
        .into_iter()
        .find(|m| m.name.eq_ignore_ascii_case("hsflt.sys"))
        .expect("hsflt.sys in the module list");
    let mut walker = k.stack_walker();
    let mut seen = 0;
    for t in truth
        .threads
        .iter()
        .filter(|t| t.stack.iter().any(|f| f.starts_with("hsflt!")))
    {
        let s = walker.thread_stack(t.address);
        assert!(s.complete, "{:?} {}", s.symbols(), s.stop_detail);
        assert_eq!(s.frames.len(), t.stack.len(), "{:?}", s.symbols());
        for (f, want) in s.frames.iter().zip(&t.stack) {
            if want.starts_with("hsflt!") {
                // No exports, no PDB: `hsflt+0xRVA` of the return address.
                assert_eq!(f.symbol, format!("hsflt+{:#x}", f.rip - m.base), "{want}");
                seen += 1;
            } else {
                assert_eq!(&f.symbol, want);
            }
        }
    }
    assert!(seen >= 10, "only {seen} driver frames");
}
