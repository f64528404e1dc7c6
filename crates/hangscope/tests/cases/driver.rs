//! A real driver on the stacks: the av-filter image holds `hsflt.sys`,
//! compiled at test time with clang and lld-link (`hangscope-lab driver`),
//! with threads blocked and running inside it. `hangscope` must unwind
//! through its real unwind data and name its frames from its PDB found in
//! a symbol store on `-y`; without the PDB it shows module offsets and says
//! what to fetch.

use std::path::PathBuf;

use hangscope_lab::format::Format;
use hangscope_lab::truth::GroundTruth;
use hangscope_lab::Scenario;

use crate::util;

struct Lab {
    _dir: tempfile::TempDir,
    dump: PathBuf,
    store: PathBuf,
    truth: GroundTruth,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, store) = hangscope_lab::driver::build_lab_driver(dir.path())
        .unwrap_or_else(|e| panic!("building hsflt.sys: {e}"));
    let sc = Scenario::load(&dir.path().join("av-filter.toml")).unwrap_or_else(|e| panic!("{e}"));
    let (img, truth) = util::build(&sc, "win10-19041", 5, 64 << 20);
    let dump = util::write(&img, Format::Elf, dir.path(), "av");
    Lab {
        _dir: dir,
        dump,
        store,
        truth,
    }
}

fn with_pdb(l: &Lab) -> String {
    format!("{};{}", util::symbols_dir().display(), l.store.display())
}

#[test]
fn driver_frames_are_named_from_its_pdb() {
    let l = lab();
    let y = with_pdb(&l);
    let dump = l.dump.to_str().expect("path");
    let in_driver: Vec<_> = l
        .truth
        .threads
        .iter()
        .filter(|t| t.stack.iter().any(|f| f.starts_with("hsflt!")))
        .collect();
    assert_eq!(in_driver.len(), 4, "av-filter has four threads in hsflt");

    // !stacks: every expected frame, in order, under its thread.
    let r = util::run(["-y", &y, "stacks", dump]);
    r.expect_no_crash();
    for t in &in_driver {
        let joined = t.stack.join("\n      ");
        assert!(
            r.stdout.contains(&joined),
            "stacks lacks\n{joined}\n---\n{}",
            r.stdout
        );
    }

    // !thread of the thread in the RBP-framed HsFltQueryPolicy: the frame
    // table with Child-SP and return addresses, driver frames named.
    let waiter = in_driver
        .iter()
        .find(|t| {
            t.stack
                .iter()
                .any(|f| f.starts_with("hsflt!HsFltQueryPolicy+"))
        })
        .expect("policy waiter");
    let r = util::run(["-y", &y, "thread", dump, &format!("{:#x}", waiter.address)]);
    r.expect_no_crash();
    assert!(
        r.stdout.contains("Child-SP          RetAddr"),
        "{}",
        r.stdout
    );
    for f in &waiter.stack {
        assert!(
            r.stdout.contains(f.as_str()),
            "thread lacks {f}:\n{}",
            r.stdout
        );
    }

    // !running: CPU 1 spins in the driver's leaf.
    let r = util::run(["-y", &y, "running", dump]);
    r.expect_no_crash();
    assert!(r.stdout.contains("hsflt!HsFltSpin"), "{}", r.stdout);

    // analyze: a busy owner, and the evidence says where the owner is.
    let r = util::run(["-y", &y, "analyze", dump]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("BUSY OWNER"), "{}", r.stdout);
    assert!(r.stdout.contains("hsflt!HsFltSpin"), "{}", r.stdout);
}

#[test]
fn without_the_pdb_driver_frames_are_module_offsets_and_the_pdb_is_named() {
    let l = lab();
    let dump = l.dump.to_str().expect("path");
    let y = util::symbols_dir().display().to_string();
    let r = util::run(["-y", &y, "stacks", dump]);
    r.expect_no_crash();
    assert!(!r.stdout.contains("hsflt!"), "{}", r.stdout);
    assert!(r.stdout.contains("hsflt+0x"), "{}", r.stdout);
    // What to fetch: the PDB's name (GUID and age are in the same note).
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("hsflt.pdb"), "no word of hsflt.pdb:\n{all}");
}
