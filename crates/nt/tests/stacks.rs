//! Kernel stacks read back from lab images: every thread of every scenario
//! unwinds to the frames the lab laid out (ground truth), waiting threads
//! from their switch frame and running threads from the vCPU registers, on
//! several builds and dump formats.

use hangscope_dump::Dump;
use hangscope_lab::format::{self, Format};
use hangscope_lab::truth::GroundTruth;
use hangscope_lab::{build, builds, BuildOptions, Scenario, Symbols};
use hangscope_nt::stacks::StackFilter;
use hangscope_nt::{Kernel, SymbolSource, VirtAddr};
use hangscope_symbols::SymbolStore;

fn symbols() -> SymbolSource {
    let spec = builds::symbols_dir().display().to_string();
    SymbolSource::from_store(SymbolStore::from_path_spec(&spec).expect("symbol path"))
}

/// Build `sc` on a build, write it as `fmt` in `dir` and open it.
fn lab_dump(
    sc: &Scenario,
    build_alias: &str,
    fmt: Format,
    seed: u64,
    dir: &std::path::Path,
) -> (Dump, GroundTruth) {
    let opts = BuildOptions {
        ram_size: Some(64 << 20),
        seed,
        build: Some(build_alias.into()),
    };
    let (img, truth) = build(sc, Symbols::Default, &opts)
        .unwrap_or_else(|e| panic!("{} on {build_alias}: {e}", sc.name));
    let path = dir.join(format!("{build_alias}.{}", fmt.extension()));
    format::write(&img, fmt, &path, false).unwrap_or_else(|e| panic!("write: {e}"));
    (
        Dump::open(&path).unwrap_or_else(|e| panic!("open: {e}")),
        truth,
    )
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
    let dir = tempfile::tempdir().expect("tempdir");
    let (dump, truth) = lab_dump(sc, build_alias, fmt, seed, dir.path());
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
        let s = walker.thread_stack(VirtAddr(t.address));
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
        if r.thread != Some(VirtAddr(c.current_thread)) {
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
            None => r
                .stack
                .symbols()
                .into_iter()
                .take(1)
                .map(|f| f.to_string())
                .collect(),
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
                .is_some_and(|f| f.to_string().starts_with("nt!KiIdleLoop+"))
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
            .find(|g| g.threads.iter().any(|x| x.address.0 == t.address));
        if !g.is_some_and(|g| g.frames == t.stack) {
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
    let dir = tempfile::tempdir().expect("tempdir");
    let (dump, truth) = lab_dump(&sc, "win7sp1", Format::Elf, 9, dir.path());
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
                .any(|f| f.to_string().starts_with("Ntfs!NtfsCommonCreate+")),
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
        let d = k.thread_detail(VirtAddr(t.address)).expect("detail");
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
    let dir = tempfile::tempdir().expect("tempdir");
    let (dump, truth) = lab_dump(sc, "win10-19041", Format::Elf, 3, dir.path());
    let k = Kernel::open(&dump, &symbols()).expect("kernel");
    let m = k
        .modules()
        .items
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case("hsflt.sys"))
        .expect("hsflt.sys in the module list");
    let mut walker = k.stack_walker();
    let mut seen = 0;
    for t in truth
        .threads
        .iter()
        .filter(|t| t.stack.iter().any(|f| f.starts_with("hsflt!")))
    {
        let s = walker.thread_stack(VirtAddr(t.address));
        assert!(s.complete, "{:?} {}", s.symbols(), s.stop_detail);
        assert_eq!(s.frames.len(), t.stack.len(), "{:?}", s.symbols());
        for (f, want) in s.frames.iter().zip(&t.stack) {
            if want.starts_with("hsflt!") {
                // No exports, no PDB: `hsflt+0xRVA` of the return address.
                assert_eq!(
                    f.symbol,
                    format!("hsflt+{:#x}", f.rip.0 - m.base.0),
                    "{want}"
                );
                seen += 1;
            } else {
                assert_eq!(&f.symbol, want);
            }
        }
    }
    assert!(seen >= 10, "only {seen} driver frames");
}

// ----- drivers' own symbol tables ------------------------------------------

/// Where the walker's Ntfs frames name functions: `(name, RVA of its
/// start)`, computed from frames named `Ntfs!Name+0xoff` (the export names
/// the lab writes).
fn ntfs_functions(k: &Kernel<'_>, base: u64) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut w = k.stack_walker();
    for t in &k.threads().items {
        for f in w.thread_stack(t.address).frames {
            let symbol = f.symbol.to_string();
            let Some(rest) = symbol.strip_prefix("Ntfs!") else {
                continue;
            };
            let (name, off) = match rest.split_once("+0x") {
                Some((n, o)) => (n, u64::from_str_radix(o, 16).expect("offset")),
                None => (rest, 0),
            };
            let begin = f.rip.0 - base - off;
            if !out.iter().any(|(n, _)| n == name) {
                out.push((name.to_string(), begin));
            }
        }
    }
    out
}

/// A minimal ISF for `Ntfs.pdb` with the identity the truth gives and one
/// symbol per function, named `PdbOnly_<export name>` (names no export
/// directory has).
fn ntfs_isf(pdb: &hangscope_lab::truth::ModulePdbTruth, funcs: &[(String, u64)]) -> String {
    let symbols: serde_json::Map<String, serde_json::Value> = funcs
        .iter()
        .map(|(n, rva)| {
            (
                format!("PdbOnly_{n}"),
                serde_json::json!({ "address": rva }),
            )
        })
        .collect();
    serde_json::json!({
        "metadata": {
            "format": "6.2.0",
            "producer": { "name": "hangscope-tests", "version": "0" },
            "windows": { "pdb": {
                "GUID": pdb.guid, "age": pdb.age, "database": pdb.pdb, "machine_type": 34404
            } }
        },
        "base_types": {
            "pointer": { "endian": "little", "kind": "int", "signed": false, "size": 8 }
        },
        "user_types": {},
        "enums": {},
        "symbols": symbols
    })
    .to_string()
}

/// Each thread's expected stack with the Ntfs frames renamed as the table
/// names them.
fn renamed(stack: &[String]) -> Vec<String> {
    stack
        .iter()
        .map(|f| match f.strip_prefix("Ntfs!") {
            Some(rest) => format!("Ntfs!PdbOnly_{rest}"),
            None => f.clone(),
        })
        .collect()
}

/// With `store` first on the symbol path, every stack the truth lays out
/// reads back with the table's Ntfs names, and Ntfs is not missing.
fn check_table_wins(
    tag: &str,
    dump: &Dump,
    truth: &GroundTruth,
    store: &std::path::Path,
) -> Vec<String> {
    let spec = format!("{};{}", store.display(), builds::symbols_dir().display());
    let src = SymbolSource::from_store(SymbolStore::from_path_spec(&spec).expect("symbol path"));
    let k = Kernel::open(dump, &src).expect("kernel");
    let mut bad = Vec::new();
    let ntfs = k
        .modules()
        .items
        .iter()
        .find(|m| m.name == "Ntfs.sys")
        .expect("Ntfs.sys loaded");
    match k.module_symbols(ntfs) {
        Ok(t) => {
            let src = t
                .source()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if !src.starts_with(&store.display().to_string()) {
                bad.push(format!(
                    "{tag}: Ntfs's table came from {src}, not {}",
                    store.display()
                ));
            }
        }
        Err(m) => bad.push(format!("{tag}: Ntfs has no table: {m}")),
    }
    let mut walker = k.stack_walker();
    let mut ntfs_frames = 0;
    for t in truth.threads.iter().filter(|t| !t.stack.is_empty()) {
        let s = walker.thread_stack(VirtAddr(t.address));
        let want = renamed(&t.stack);
        ntfs_frames += want.iter().filter(|f| f.starts_with("Ntfs!")).count();
        if s.symbols() != want {
            bad.push(format!(
                "{tag}: thread {:#x}\n  got  {:?}\n  want {:?}",
                t.address,
                s.symbols(),
                want
            ));
        }
        if s.missing_symbols.iter().any(|m| m.module == "Ntfs.sys") {
            bad.push(format!(
                "{tag}: thread {:#x}: Ntfs listed as missing",
                t.address
            ));
        }
    }
    if ntfs_frames == 0 {
        bad.push(format!("{tag}: no Ntfs frame on any expected stack"));
    }
    if walker
        .missing_symbols()
        .iter()
        .any(|m| m.module == "Ntfs.sys")
    {
        bad.push(format!("{tag}: the walker lists Ntfs as missing"));
    }
    bad
}

/// Convert the ISF at `isf` into `store/Ntfs.pdb/<GUID><AGE>/Ntfs.pdb`.
fn make_pdb(
    isf: &std::path::Path,
    pdb: &hangscope_lab::truth::ModulePdbTruth,
    store: &std::path::Path,
) {
    builds::isf_to_pdb(isf, &store.join(pdb.server_path())).unwrap_or_else(|e| panic!("{e}"));
}

/// Issue 4 (symbolisation): a driver's own table, found on the symbol path
/// by the GUID and age of its RSDS record, names its frames before its
/// exports do, as an ISF and as a real PDB; without it, the walker says
/// exactly which PDB to fetch and where to put it.
#[test]
fn driver_symbols_from_the_store_win_over_exports() {
    let temp_flood = Scenario::builtin("temp-flood").expect("scenario");
    let mut bad = Vec::new();
    for (i, b) in ["win7sp1", "win10-19041", "win2022"].iter().enumerate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dump, truth) = lab_dump(&temp_flood, b, Format::Raw, 41 + i as u64, tmp.path());
        let pdb = truth
            .module_pdb("Ntfs.sys")
            .expect("Ntfs PDB in the truth")
            .clone();
        assert_eq!(pdb.pdb, "Ntfs.pdb");
        assert_eq!(pdb.guid.len(), 32);

        // (c) No table: named from exports, and the precise message.
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let report = k.stacks(&StackFilter::default());
        let miss = report
            .missing_symbols
            .iter()
            .find(|m| m.module == "Ntfs.sys");
        match miss {
            None => bad.push(format!(
                "{b}: Ntfs not listed as missing: {:?}",
                report.missing_symbols
            )),
            Some(m) => {
                let id = m.pdb.as_ref().expect("RSDS read");
                if (id.name.as_str(), id.guid.as_str(), id.age) != (&*pdb.pdb, &*pdb.guid, pdb.age)
                {
                    bad.push(format!("{b}: Ntfs PDB {id:?}, truth {pdb:?}"));
                }
                let want = vec![
                    pdb.server_path(),
                    format!("Ntfs.pdb/{}-{}.json.xz", pdb.guid, pdb.age),
                ];
                if m.fetch != want || m.base.0 != pdb.base {
                    bad.push(format!(
                        "{b}: fetch {:?} base {:#x}, want {want:?} {:#x}",
                        m.fetch, m.base, pdb.base
                    ));
                }
                let text = m.to_string();
                for part in ["Ntfs.sys", "Ntfs.pdb", &pdb.guid, &want[0], &want[1]] {
                    if !text.contains(part) {
                        bad.push(format!("{b}: message {text:?} lacks {part:?}"));
                    }
                }
                if m.searched.is_empty() {
                    bad.push(format!("{b}: no searched places in {m:?}"));
                }
            }
        }
        // Every module with a frame on some stack and no table is listed once.
        let mut bases: Vec<u64> = report.missing_symbols.iter().map(|m| m.base.0).collect();
        bases.dedup();
        if bases.len() != report.missing_symbols.len() {
            bad.push(format!("{b}: duplicates in {:?}", report.missing_symbols));
        }
        let ntfs_mod = k
            .modules()
            .items
            .iter()
            .find(|m| m.name == "Ntfs.sys")
            .expect("Ntfs");
        if let Ok(t) = k.module_symbols(ntfs_mod) {
            bad.push(format!(
                "{b}: a table for Ntfs without one in the store: {t:?}"
            ));
        }
        let funcs = ntfs_functions(&k, pdb.base);
        assert!(!funcs.is_empty(), "{b}: no Ntfs function on any stack");
        drop(k);

        // (a) The table as an ISF in Volatility's layout.
        let store = tmp.path().join("isf-store");
        let isf = store.join(pdb.isf_path());
        std::fs::create_dir_all(isf.parent().expect("dir")).expect("mkdir");
        std::fs::write(&isf, ntfs_isf(&pdb, &funcs)).expect("write ISF");
        bad.extend(check_table_wins(&format!("{b} ISF"), &dump, &truth, &store));

        // (b) The same table as a real PDB in the symbol-server layout.
        let pstore = tmp.path().join("pdb-store");
        make_pdb(&isf, &pdb, &pstore);
        bad.extend(check_table_wins(
            &format!("{b} PDB"),
            &dump,
            &truth,
            &pstore,
        ));
    }
    assert!(
        bad.is_empty(),
        "{} problems:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
