//! Issue 16, busy or stuck proven: the lab's series (a scenario dumped
//! two or three times, `hangscope_lab::series`) on two Windows builds,
//! written as ELF, compared by `hangscope --json analyze A B [C]` and by
//! the capture-directory form (a manifest.json beside the dumps). Each
//! must give the proof the lab expects (stuck, busy, slow) for the hang's
//! finding, never call a thread the lab moved stuck, keep the exit code's
//! mapping, and refuse dumps of another boot. Volatility 3 must still read
//! every image of the series (windows.pslist against `ps`).

use std::path::PathBuf;

use hangscope_lab::format::Format;
use hangscope_lab::series::{build_series, builtin_series};
use hangscope_lab::{BuildOptions, Symbols};
use serde_json::Value;

use crate::util::{self, arr, s};

const BUILDS: &[&str] = &["win7sp1", "win10-19041"];

fn exit_code_of(proof: &str, scenario_overall: &str) -> i32 {
    match (proof, scenario_overall) {
        ("stuck", "deadlock") => 4,
        ("stuck", _) => 3,
        _ => 1,
    }
}

/// Build a series and write each moment as ELF.
fn series_images(
    name: &str,
    build: &str,
    dir: &std::path::Path,
) -> (Vec<PathBuf>, hangscope_lab::series::SeriesTruth, String) {
    let sc = builtin_series(name).unwrap();
    let opts = BuildOptions {
        ram_size: Some(128 << 20),
        seed: 7,
        build: Some(build.into()),
    };
    let (images, truth) = build_series(&sc, Symbols::Dir(&util::symbols_dir()), &opts)
        .unwrap_or_else(|e| panic!("series {name} on {build}: {e}"));
    let overall = images[0].1.verdict.overall.clone();
    let paths = images
        .iter()
        .enumerate()
        .map(|(i, (img, _))| util::write(img, Format::Elf, dir, &format!("{name}-{build}-{i}")))
        .collect();
    (paths, truth, overall)
}

fn addr_set(v: &Value) -> Vec<u64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(util::addr)
        .collect()
}

#[test]
fn lab_series_are_proven_as_the_lab_expects() {
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    let vol = crate::volatility::vol();
    for build in BUILDS {
        for name in ["stuck", "busy", "slow"] {
            let label = format!("[{name} {build} elf]");
            let (paths, truth, overall) = series_images(name, build, dir.path());
            let want = truth.proof.clone().unwrap();
            let mut args: Vec<&std::ffi::OsStr> = vec!["--json".as_ref(), "analyze".as_ref()];
            args.extend(paths.iter().map(|p| p.as_os_str()));
            let r = util::run(args);
            let doc = r.json();
            let code = exit_code_of(&want, &overall);
            if r.code != Some(code) {
                problems.push(format!(
                    "{label} exit code: want {code}, got {:?}\n{}",
                    r.code, r.stderr
                ));
            }
            util::eq(
                &mut problems,
                &format!("{label} type"),
                "series",
                s(&doc, "type"),
            );
            util::eq(
                &mut problems,
                &format!("{label} dumps"),
                paths.len(),
                arr(&doc, "dumps").len(),
            );
            let interval = doc["interval_seconds"].as_f64().unwrap_or(-1.0);
            if (interval - truth.interval_seconds as f64).abs() > 0.1 {
                problems.push(format!(
                    "{label} interval: want {} s, got {interval} s",
                    truth.interval_seconds
                ));
            }
            let findings = arr(&doc, "findings");
            match findings.first() {
                Some(f) => {
                    util::eq(
                        &mut problems,
                        &format!("{label} proof"),
                        want.as_str(),
                        s(f, "proof"),
                    );
                    let line = s(f, "line");
                    if !line.starts_with(&format!("{want} (proven)")) {
                        problems.push(format!("{label} proof line: {line}"));
                    }
                }
                None => problems.push(format!("{label} no finding in the series")),
            }
            // A thread the lab moved is never called stuck.
            for f in findings {
                for a in addr_set(&f["still_threads"]) {
                    if truth.moved_threads.contains(&a) {
                        problems.push(format!("{label} moved thread {a:#x} listed as still"));
                    }
                }
            }
            for t in arr(&doc, "threads") {
                let a = util::addr(&t["address"]).unwrap_or(0);
                let motion = s(t, "motion");
                if truth.moved_threads.contains(&a) && motion != "moved" {
                    problems.push(format!(
                        "{label} thread {a:#x}: the lab moved it, hangscope says {motion}"
                    ));
                }
                if truth.still_threads.contains(&a) && motion != "still" {
                    problems.push(format!(
                        "{label} thread {a:#x}: the lab kept it still, hangscope says {motion}: {t}"
                    ));
                }
            }
            util::eq(
                &mut problems,
                &format!("{label} threads that moved"),
                truth.moved_threads.len() as u64,
                doc["threads_moved"].as_u64().unwrap_or(0),
            );
            for l in &truth.moved_locks {
                let got = arr(&doc, "locks")
                    .iter()
                    .find(|x| util::addr(&x["address"]) == Some(*l))
                    .map(|x| s(x, "motion").to_string());
                util::eq(
                    &mut problems,
                    &format!("{label} lock {l:#x}"),
                    Some("moved".to_string()),
                    got,
                );
            }
            // The text report: each finding keeps its chain and gains a progress line.
            let mut text_args: Vec<&std::ffi::OsStr> = vec!["analyze".as_ref()];
            text_args.extend(paths.iter().map(|p| p.as_os_str()));
            let t = util::run(text_args);
            if !t.stdout.contains(&format!("  progress: {want} (proven)"))
                || !t.stdout.contains("chain:")
            {
                problems.push(format!("{label} text:\n{}", util::head(&t.stdout, 20)));
            }
            if let Some(v) = &vol {
                if *build == "win7sp1" {
                    for p in &paths {
                        problems.extend(
                            crate::volatility::compare(v, p, "windows.pslist")
                                .into_iter()
                                .map(|e| format!("{label} Volatility on {}: {e}", p.display())),
                        );
                    }
                }
            }
        }
    }
    util::report("series", problems);
}

#[test]
fn a_capture_directory_is_a_series_and_other_boots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, _, _) = series_images("stuck", "win10-19041", dir.path());
    // A capture's manifest naming the dumps, as `hangscope capture` writes it.
    let dumps: Vec<Value> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            serde_json::json!({
                "file": p.file_name().unwrap().to_string_lossy(),
                "sequence": i, "format": "elf",
                "started": "2026-12-03T00:00:00.000Z", "ended": "2026-12-03T00:00:01.000Z",
                "duration_ms": 1000, "size": 0, "sha256": "", "guest_state": "running"
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "schema_version": 1, "tool": "test", "method": "libvirt", "target": "qemu:///system",
        "domain": "lab", "uuid": null, "host": "test", "qemu_version": null,
        "libvirt_version": null, "format": "elf", "guest_memory_bytes": null, "vcpus": null,
        "pause": false, "count": dumps.len(), "interval_secs": 30.0,
        "started": "2026-12-03T00:00:00.000Z", "ended": null, "dumps": dumps, "error": null
    });
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let mut problems = Vec::new();
    for arg in [dir.path().to_path_buf(), dir.path().join("manifest.json")] {
        let (r, doc) = util::json_cmd("analyze", &[], &arg);
        if r.code != Some(4) {
            problems.push(format!("{}: exit {:?}\n{}", r.cmdline, r.code, r.stderr));
        }
        util::eq(
            &mut problems,
            "proof",
            "stuck",
            s(&arr(&doc, "findings")[0], "proof"),
        );
    }
    // The HTML marks what did not move.
    let html = dir.path().join("series.html");
    let r = util::run([
        "analyze".as_ref(),
        paths[0].as_os_str(),
        paths[2].as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap_or_default();
    if r.code != Some(4) || !page.contains("node thread culprit still") {
        problems.push(format!(
            "{}: exit {:?}, HTML without still nodes",
            r.cmdline, r.code
        ));
    }
    // Out of order, and another boot (another build, another kernel base).
    let r = util::run([paths[1].as_os_str(), paths[0].as_os_str()].iter().fold(
        vec!["analyze".as_ref()],
        |mut v: Vec<&std::ffi::OsStr>, p| {
            v.push(p);
            v
        },
    ));
    if r.code != Some(2) || !r.stderr.contains("is not after") {
        problems.push(format!("out of order: exit {:?}: {}", r.code, r.stderr));
    }
    let (other, _, _) = series_images("stuck", "win7sp1", dir.path());
    let r = util::run([
        "analyze".as_ref(),
        paths[0].as_os_str(),
        other[1].as_os_str(),
    ]);
    if r.code != Some(2)
        || !r.stderr.contains("cannot compare these dumps")
        || !r.stderr.contains("not the same")
    {
        problems.push(format!("another boot: exit {:?}: {}", r.code, r.stderr));
    }
    util::report("series capture directory", problems);
}
