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
    let kinds: Vec<&str> = truth
        .verdict
        .findings
        .iter()
        .map(|f| f.kind.as_str())
        .collect();
    match scenario {
        "temp-flood" => {
            let f = &truth.verdict.findings[0];
            assert_eq!(kinds, ["busy_owner"]);
            assert_eq!(
                f.chain_threads.len(),
                3,
                "waiter -> shared owner -> running owner"
            );
            assert_eq!(f.driver.as_deref(), Some("\\FileSystem\\Ntfs"));
            assert_eq!(f.directory.as_deref(), Some("\\Windows\\Temp"));
            assert!(f.blocked_processes.iter().any(|p| p == "LogonUI.exe"));
            let hot = &truth.verdict.hot_directories[0];
            assert_eq!(hot.path, "\\Windows\\Temp");
            assert!(hot.file_count >= 4000);
            assert_eq!(hot.processes, [("php-cgi.exe".to_string(), 4000)]);
            // Waiters have waited about a second.
            for t in &truth.threads {
                if t.wait_reason.as_deref() == Some("WrResource") {
                    let s = t.wait_seconds.unwrap();
                    assert!((0.5..2.0).contains(&s), "{s}");
                }
            }
        }
        "deadlock" => {
            assert!(kinds.contains(&"deadlock"), "{kinds:?}");
            let f = truth
                .verdict
                .findings
                .iter()
                .find(|f| f.kind == "deadlock")
                .unwrap();
            assert_eq!(f.chain_threads.len(), 3);
            assert_eq!(f.chain_locks.len(), 3);
            assert_eq!(f.blocked_threads.len(), 4);
        }
        _ => assert!(kinds.is_empty(), "{kinds:?}"),
    }
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

fn scenario_error(text: &str) -> String {
    match Scenario::from_toml(text, "test.toml") {
        Ok(_) => panic!("accepted a bad scenario"),
        Err(e) => e.to_string(),
    }
}

const MINIMAL: &str = r#"
name = "t"
[machine]
build = "win7sp1"
tick_count = 1000
[[cpus]]
runs = "idle"
[[processes]]
name = "System"
pid = 4
[[processes]]
name = "a.exe"
pid = 100
[[threads]]
id = "t0"
pid = 100
state = "ready"
[[locks]]
id = "r0"
kind = "eresource"
owner = "t0"
"#;

#[test]
fn minimal_scenario_is_accepted() {
    Scenario::from_toml(MINIMAL, "m").unwrap();
}

#[test]
fn scenario_errors_name_the_field() {
    let waiting = format!(
        "{MINIMAL}[[threads]]\nid = \"t1\"\npid = 100\nstate = \"waiting\"\nwait = {{ on = [\"nope\"], ticks_ago = 5 }}\n"
    );
    let e = scenario_error(&waiting);
    assert!(
        e.contains("threads[1].wait.on[0]") && e.contains("nope"),
        "{e}"
    );

    let e = scenario_error(&MINIMAL.replace("pid = 100\n[[threads]]", "pid = 102\n[[threads]]"));
    assert!(
        e.contains("processes[1].pid") && e.contains("multiple of 4"),
        "{e}"
    );

    let e = scenario_error(&MINIMAL.replace("owner = \"t0\"", "owner = \"ghost\""));
    assert!(e.contains("locks[0].owner") && e.contains("ghost"), "{e}");

    let e = scenario_error(&format!(
        "{MINIMAL}[[threads]]\nid = \"t0\"\npid = 100\nstate = \"ready\"\n"
    ));
    assert!(
        e.contains("threads[1].id") && e.contains("duplicate"),
        "{e}"
    );

    let e = scenario_error(&MINIMAL.replace("runs = \"idle\"", "runs = \"t0\""));
    assert!(
        e.contains("cpus[0].runs") && e.contains("not in state `running`"),
        "{e}"
    );

    let e = scenario_error(&MINIMAL.replace("state = \"ready\"", "state = \"waiting\""));
    assert!(e.contains("threads[0].wait"), "{e}");

    let e = scenario_error(&MINIMAL.replace("tick_count = 1000", "tick_count = 1000\ncolour = 3"));
    assert!(e.contains("colour"), "{e}");

    let e =
        scenario_error(&MINIMAL.replace("tick_count = 1000", "tick_count = 1000\nram = \"12MiB\""));
    assert!(e.contains("machine.ram"), "{e}");

    let e = scenario_error(&format!(
        "{MINIMAL}[[handles]]\npid = 100\nfiles = [\"f9\"]\n"
    ));
    assert!(e.contains("handles[0].files[0]"), "{e}");
}

/// Issue 15: ALPC ports and messages are checked like every other
/// reference, each error naming its field.
#[test]
fn alpc_scenario_errors_name_the_field() {
    let base = format!(
        "{MINIMAL}[[processes]]\nname = \"lsass.exe\"\npid = 532\n\
         [[threads]]\nid = \"srv\"\npid = 532\nstate = \"ready\"\n\
         [[threads]]\nid = \"cli\"\npid = 100\nstate = \"waiting\"\n\
         wait = {{ alpc = \"m0\", ticks_ago = 5 }}\n\
         [[alpc_ports]]\nid = \"p0\"\nname = \"LsaAuthenticationPort\"\npid = 532\n\
         [[alpc_messages]]\nid = \"m0\"\nport = \"p0\"\nserver_thread = \"srv\"\n"
    );
    Scenario::from_toml(&base, "alpc").unwrap();
    let e = scenario_error(&base.replace("port = \"p0\"", "port = \"p9\""));
    assert!(
        e.contains("alpc_messages[0].port") && e.contains("p9"),
        "{e}"
    );
    let e = scenario_error(&base.replace("server_thread = \"srv\"", "server_thread = \"t0\""));
    assert!(
        e.contains("alpc_messages[0].server_thread") && e.contains("port's process"),
        "{e}"
    );
    let e = scenario_error(&base.replace("alpc = \"m0\"", "alpc = \"m1\""));
    assert!(e.contains("wait.alpc") && e.contains("m1"), "{e}");
    let e = scenario_error(&base.replace("alpc = \"m0\",", "alpc = \"m0\", on = [\"r0\"],"));
    assert!(e.contains("wait.on") && e.contains("own semaphore"), "{e}");
    let e = scenario_error(&format!(
        "{base}[[alpc_messages]]\nid = \"m1\"\nport = \"p0\"\n"
    ));
    assert!(
        e.contains("alpc_messages[1]") && e.contains("no thread waits"),
        "{e}"
    );
    let e = scenario_error(&base.replace(
        "pid = 532\n[[alpc_messages]]",
        "pid = 536\n[[alpc_messages]]",
    ));
    assert!(e.contains("alpc_ports[0].pid"), "{e}");
    // LRPC completion queues: a port's and a thread's queue is a queue
    // lock; a thread waiting on a queue waits on it alone, and is not
    // associated with another.
    let queues = base.replace(
        "pid = 532\n[[alpc_messages]]",
        "pid = 532\ncompletion_port = \"q0\"\n[[alpc_messages]]",
    ) + "[[locks]]\nid = \"q0\"\nkind = \"queue\"\n\
         [[locks]]\nid = \"q1\"\nkind = \"queue\"\n\
         [[threads]]\nid = \"idle\"\npid = 532\nstate = \"waiting\"\n\
         wait = { on = [\"q0\"], ticks_ago = 5 }\n";
    Scenario::from_toml(&queues, "alpc").unwrap();
    let e = scenario_error(&queues.replace("completion_port = \"q0\"", "completion_port = \"r0\""));
    assert!(
        e.contains("alpc_ports[0].completion_port") && e.contains("not a queue"),
        "{e}"
    );
    let e = scenario_error(&queues.replace("on = [\"q0\"]", "on = [\"q0\", \"r0\"]"));
    assert!(e.contains("wait.on") && e.contains("alone"), "{e}");
    let e = scenario_error(&queues.replace(
        "id = \"idle\"\npid = 532\n",
        "id = \"idle\"\npid = 532\nqueue = \"q1\"\n",
    ));
    assert!(e.contains(".queue") && e.contains("that queue"), "{e}");
}

#[test]
fn unknown_build_is_reported() {
    let sc = Scenario::from_toml(MINIMAL, "m").unwrap();
    let opts = BuildOptions {
        build: Some("win95".into()),
        ..Default::default()
    };
    let e = build(&sc, Symbols::Default, &opts).unwrap_err().to_string();
    assert!(e.contains("machine.build") && e.contains("win95"), "{e}");
}

#[test]
fn random_scenarios_build_and_read_back() {
    use hangscope_lab::{random_scenario, RandomOptions};
    for seed in 0..6u64 {
        for (b, cycle) in [
            ("win7sp1", Some(true)),
            ("win2019b", Some(false)),
            ("win2012r2", None),
        ] {
            let ro = RandomOptions {
                build: b.into(),
                cycle,
                ..Default::default()
            };
            let sc = random_scenario(seed, &ro);
            sc.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let opts = BuildOptions {
                seed,
                ..Default::default()
            };
            let (img, truth) = build(&sc, Symbols::Default, &opts)
                .unwrap_or_else(|e| panic!("seed {seed} {b}: {e}"));
            Reader::new(&img, b).check_against(&sc, &truth);
            let has_deadlock = truth.verdict.findings.iter().any(|f| f.kind == "deadlock");
            match cycle {
                Some(true) => assert_eq!(truth.verdict.overall, "deadlock", "seed {seed}"),
                Some(false) => assert!(!has_deadlock, "seed {seed}"),
                None => {}
            }
        }
    }
}

#[test]
fn memory_use_does_not_grow_with_ram() {
    let sc = Scenario::builtin("idle").unwrap();
    let pages = |ram: u64| {
        let opts = BuildOptions {
            ram_size: Some(ram),
            seed: 5,
            build: None,
        };
        let (img, truth) = build(&sc, Symbols::Default, &opts).unwrap();
        assert_eq!(img.ram_size(), ram - 0x60000, "RAM minus the legacy hole");
        (img, truth)
    };
    let (small, _) = pages(64 << 20);
    let (big, truth) = pages(16 << 30);
    assert!(
        big.pages.len() < small.pages.len() + 64,
        "{} vs {}",
        big.pages.len(),
        small.pages.len()
    );
    // Above 4 GiB the RAM continues after the PCI hole.
    assert_eq!(big.ram.last().unwrap().0, 0x1_0000_0000);
    Reader::new(&big, "win2019a").check_against(&sc, &truth);
}

#[test]
fn same_seed_same_image() {
    let sc = Scenario::builtin("deadlock").unwrap();
    let opts = BuildOptions {
        seed: 9,
        ..Default::default()
    };
    let (a, ta) = build(&sc, Symbols::Default, &opts).unwrap();
    let (b, tb) = build(&sc, Symbols::Default, &opts).unwrap();
    assert_eq!(ta, tb);
    assert_eq!(a.pages.len(), b.pages.len());
    assert!(a.pages.iter().all(|(k, v)| b.pages.get(k) == Some(v)));
    let (_, tc) = build(
        &sc,
        Symbols::Default,
        &BuildOptions {
            seed: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_ne!(ta.kernel.kernel_base, tc.kernel.kernel_base);
}

/// The lab's private ISF reader and the product's `hangscope-symbols`
/// loader must lay out byte-identical images: each checks the other.
#[test]
fn private_reader_and_hangscope_symbols_agree() {
    use hangscope_lab::builds;
    let sc = Scenario::builtin("temp-flood").unwrap();
    for alias in ["win7sp1", "win2016", "win11"] {
        let b = builds::find_build(alias).unwrap();
        let path = builds::isf_path(&builds::symbols_dir(), b);
        let table = hangscope_symbols::SymbolTable::load_isf(&path).unwrap();
        let opts = BuildOptions {
            seed: 3,
            build: Some(alias.into()),
            ..Default::default()
        };
        let (a, ta) = build(&sc, Symbols::Default, &opts).unwrap();
        let (b, tb) = build(&sc, Symbols::Table(&table), &opts).unwrap();
        assert_eq!(ta, tb, "{alias}");
        assert_eq!(a.pages.len(), b.pages.len(), "{alias}");
        for (pfn, page) in &a.pages {
            assert_eq!(
                Some(page),
                b.pages.get(pfn),
                "{alias}: page {pfn:#x} differs"
            );
        }
    }
}

#[test]
fn type_errors_point_at_the_key() {
    let e = scenario_error(&MINIMAL.replace("pid = 100\n[[threads]]", "pid = \"x\"\n[[threads]]"));
    assert!(e.contains("pid") && e.contains("test.toml"), "{e}");
    let e = scenario_error(&MINIMAL.replace("state = \"ready\"", "state = \"sleeping\""));
    assert!(e.contains("sleeping") && e.contains("state"), "{e}");
}
