//! PDB symbol source: an image must give the same answers whichever form
//! its symbols come in. The ISF of two builds is turned into a real PDB
//! (`tools/isf2pdb.py` beside the symbols directory, i.e.
//! `../shared/tools/isf2pdb.py`, or `$HANGSCOPE_ISF2PDB`) at test
//! time and put in a symbol-server layout; `hangscope --symbols DIR` must
//! load it (`info` names it as the symbol source) and print the same ps,
//! threads, locks and analyze JSON as with the ISF.
//!
//! Isolation: hangscope always adds `../shared/symbols` beside its source
//! tree to the symbol path (`default_symbol_dirs()`), so an ISF stays
//! reachable; the test therefore checks `symbol_source` to be sure the
//! PDB, not the ISF, was read.

use std::path::{Path, PathBuf};

use hangscope_lab::builds;
use hangscope_lab::format::Format;

use crate::util::{self, s};

/// Convert `build`'s ISF into `store/ntkrnlmp.pdb/<GUID><AGE>/ntkrnlmp.pdb`.
fn make_pdb_store(build: &str, store: &Path) -> PathBuf {
    let b = builds::find_build(build).expect("known build");
    let isf = builds::isf_path(&util::symbols_dir(), b);
    let dir = store
        .join("ntkrnlmp.pdb")
        .join(format!("{}{:X}", b.guid, b.age));
    let pdb = dir.join("ntkrnlmp.pdb");
    builds::isf_to_pdb(&isf, &pdb).unwrap_or_else(|e| panic!("{build}: {e}"));
    pdb
}

fn same_answers(build: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let pdb = make_pdb_store(build, &store);
    let sc = util::scenario("temp-flood");
    let (image, _) = util::build(&sc, build, 5, 64 << 20);
    let dump = util::write(&image, Format::Elf, tmp.path(), "tf");
    let store_arg = store.display().to_string();

    let (r, info) = util::json_cmd("info", &["-y", &store_arg], &dump);
    r.expect(0);
    let source = s(&info["data"]["kernel"], "symbol_source");
    assert!(
        source.contains(&*store_arg) || source.contains(&*pdb.display().to_string()),
        "{build}: with --symbols {store_arg} hangscope read its symbols from {source:?}, \
         not from the PDB {}",
        pdb.display()
    );

    let mut problems = Vec::new();
    for (cmd, extra) in [
        ("ps", &[][..]),
        ("threads", &[][..]),
        ("locks", &["-V"][..]),
        ("analyze", &[][..]),
    ] {
        let (r_isf, isf_doc) = util::json_cmd(cmd, extra, &dump);
        let mut with_pdb: Vec<&str> = vec!["-y", &store_arg];
        with_pdb.extend_from_slice(extra);
        let (r_pdb, pdb_doc) = util::json_cmd(cmd, &with_pdb, &dump);
        r_isf.expect_no_crash();
        r_pdb.expect_no_crash();
        if r_isf.code != r_pdb.code {
            problems.push(format!(
                "{cmd}: exit code {:?} with the ISF, {:?} with the PDB",
                r_isf.code, r_pdb.code
            ));
        }
        if isf_doc != pdb_doc {
            let a = serde_json::to_string_pretty(&isf_doc).unwrap();
            let b = serde_json::to_string_pretty(&pdb_doc).unwrap();
            let diff: Vec<String> = a
                .lines()
                .zip(b.lines())
                .enumerate()
                .filter(|(_, (x, y))| x != y)
                .take(10)
                .map(|(i, (x, y))| {
                    format!("    line {}: ISF {x}\n    line {}: PDB {y}", i + 1, i + 1)
                })
                .collect();
            problems.push(format!(
                "{cmd} --json differs between ISF and PDB:\n{}",
                diff.join("\n")
            ));
        }
    }
    util::report(&format!("PDB vs ISF on {build}"), problems);
}

#[test]
fn pdb_win7sp1() {
    same_answers("win7sp1");
}

#[test]
fn pdb_win10_19041() {
    same_answers("win10-19041");
}
