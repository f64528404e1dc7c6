//! Builds every scenario on several Windows builds and reads the images
//! back with an independent reader (its own ISF parsing and page walk).

mod reader;

use hangscope_lab::{build, BuildOptions, Scenario, Symbols};
use reader::Reader;

const BUILDS: &[&str] = &[
    "win7sp1",
    "win2012r2",
    "win2016",
    "win10-19041",
    "win2022",
    "win11",
];

fn check(scenario: &str, build_alias: &str, seed: u64) {
    let sc = Scenario::builtin(scenario).unwrap_or_else(|e| panic!("{e}"));
    let opts = BuildOptions {
        ram_size: Some(64 << 20),
        seed,
        build: Some(build_alias.into()),
    };
    let (img, truth) = build(&sc, Symbols::Default, &opts)
        .unwrap_or_else(|e| panic!("{scenario} on {build_alias}: {e}"));
    let r = Reader::new(&img, build_alias);
    r.check_against(&sc, &truth);
}

#[test]
fn temp_flood_on_every_build() {
    for (i, b) in BUILDS.iter().enumerate() {
        check("temp-flood", b, 11 + i as u64);
    }
}

#[test]
fn deadlock_on_every_build() {
    for (i, b) in BUILDS.iter().enumerate() {
        check("deadlock", b, 101 + i as u64);
    }
}

#[test]
fn idle_on_every_build() {
    for (i, b) in BUILDS.iter().enumerate() {
        check("idle", b, 1001 + i as u64);
    }
}
