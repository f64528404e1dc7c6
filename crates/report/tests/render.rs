//! The one integration test binary of hangscope-report: snapshots of the
//! text and JSON renderers, and an HTML smoke test, over synthetic
//! verdicts (the seed case, a deadlock, a stuck owner, an idle system).

use hangscope_report::{render_html, render_json, render_text, SCHEMA_VERSION};
use hangscope_waitgraph::*;

fn thread(key: u64, tid: u64, pid: u64, state: ThreadState, secs: Option<f64>) -> Thread {
    Thread {
        key,
        tid,
        pid,
        wait_reason: (state == ThreadState::Waiting).then(|| "WrResource".to_string()),
        state,
        waited_seconds: secs,
        waited_ticks: None,
        stack: Vec::new(),
        io: Vec::new(),
        user_mode_wait: false,
        warnings: Vec::new(),
    }
}

fn resource(key: u64, kind: ResourceKind, owners: &[(u64, Mode)], waiters: &[u64]) -> Resource {
    Resource {
        key,
        kind,
        name: None,
        owners: owners
            .iter()
            .map(|&(thread, mode)| Claim { thread, mode })
            .collect(),
        waiters: waiters
            .iter()
            .map(|&thread| Claim {
                thread,
                mode: Mode::Exclusive,
            })
            .collect(),
        contention_count: None,
        warnings: Vec::new(),
    }
}

fn process(pid: u64, name: &str) -> Process {
    Process {
        address: Addr(0xfffffa80_0a000000 + pid * 0x100),
        pid,
        ppid: 4,
        name: name.into(),
        session: Some(1),
    }
}

/// The seed case, small: 8 waiters of about 1 s on R1 held shared by T1,
/// T1 waiting on R2 held exclusively by running T2 with an Ntfs IRP on
/// \Windows\Temp\sess_x; 300 sess_* files held by php-cgi.exe.
fn seed_case() -> WaitGraphInput {
    let (r1, r2, t1, t2) = (
        0xfffff800_02a4c3a0u64,
        0xfffffa80_0c1f2e40u64,
        0xfffffa80_0b7d2060u64,
        0xfffffa80_0b61bb50u64,
    );
    let mut input = WaitGraphInput {
        processes: vec![
            process(500, "winlogon.exe"),
            process(612, "LogonUI.exe"),
            process(820, "svchost.exe"),
            process(2000, "php-cgi.exe"),
        ],
        ..WaitGraphInput::default()
    };
    let mut waiters = Vec::new();
    for i in 0..8u64 {
        let key = 0xfffffa80_0b800000 + i * 0x400;
        input.threads.push(thread(
            key,
            0x100 + i * 4,
            [500, 612, 820, 820][i as usize % 4],
            ThreadState::Waiting,
            Some(0.9 + i as f64 * 0.02),
        ));
        waiters.push(key);
    }
    let mut th1 = thread(t1, 0x3c4, 820, ThreadState::Waiting, Some(1.1));
    th1.stack = vec![
        "nt!KiSwapContext+0x7a".into(),
        "nt!KiCommitThreadWait+0x1d2".into(),
        "nt!ExpWaitForResource+0xae".into(),
    ];
    input.threads.push(th1);
    let mut th2 = thread(t2, 0x9a8, 2000, ThreadState::Running { cpu: 1 }, None);
    th2.io.push(Io {
        irp: Addr(0xfffffa80_0d3e4c10),
        major: Some("IRP_MJ_CREATE".into()),
        driver: Some(r"\FileSystem\Ntfs".into()),
        device: Some(r"\Device\HarddiskVolume2".into()),
        file_object: Some(Addr(0xfffffa80_0e000010)),
        file: Some(r"\Windows\Temp\sess_x".into()),
        ..Io::default()
    });
    input.threads.push(th2);
    let mut res1 = resource(r1, ResourceKind::Eresource, &[(t1, Mode::Shared)], &waiters);
    res1.contention_count = Some(123456);
    input.resources.push(res1);
    input.resources.push(resource(
        r2,
        ResourceKind::Eresource,
        &[(t2, Mode::Exclusive)],
        &[t1],
    ));
    for i in 0..300u64 {
        input.files.push(File {
            address: Addr(0xfffffa80_10000000 + i * 0x100),
            path: format!(r"\Windows\Temp\sess_{i:08x}"),
            device: Some(r"\Device\HarddiskVolume2".into()),
            holders: vec![2000],
        });
    }
    input
}

fn deadlock() -> WaitGraphInput {
    let (ta, tb, tc) = (
        0xfffffa80_01000000u64,
        0xfffffa80_02000000u64,
        0xfffffa80_03000000u64,
    );
    let (ra, rb, mc) = (
        0xfffffa80_0a000000u64,
        0xfffffa80_0b000000u64,
        0xfffffa80_0c000000u64,
    );
    WaitGraphInput {
        processes: vec![process(700, "sqlservr.exe"), process(500, "winlogon.exe")],
        threads: vec![
            thread(ta, 1, 700, ThreadState::Waiting, Some(240.0)),
            thread(tb, 2, 700, ThreadState::Waiting, Some(300.0)),
            thread(tc, 3, 700, ThreadState::Waiting, Some(180.0)),
            thread(
                0xfffffa80_04000000,
                4,
                500,
                ThreadState::Waiting,
                Some(200.0),
            ),
        ],
        resources: vec![
            resource(
                ra,
                ResourceKind::Eresource,
                &[(ta, Mode::Exclusive)],
                &[tc, 0xfffffa80_04000000],
            ),
            resource(rb, ResourceKind::Eresource, &[(tb, Mode::Shared)], &[ta]),
            resource(mc, ResourceKind::Mutant, &[(tc, Mode::Exclusive)], &[tb]),
        ],
        files: Vec::new(),
        warnings: vec![
            "ExpSystemResourcesList: walk stopped after a loop at fffffa80`0a000000".into(),
        ],
        gaps: Vec::new(),
        alpc: Vec::new(),
        alpc_ports: Vec::new(),
        scheduler: None,
        memory: None,
    }
}

fn stuck() -> WaitGraphInput {
    WaitGraphInput {
        processes: vec![process(900, "svchost.exe")],
        threads: vec![
            thread(0x1000, 1, 900, ThreadState::Waiting, Some(600.0)),
            thread(0x2000, 2, 900, ThreadState::Waiting, Some(5.0)),
        ],
        resources: vec![
            resource(
                0xa000,
                ResourceKind::Eresource,
                &[(0x1000, Mode::Exclusive)],
                &[0x2000],
            ),
            resource(0xe000, ResourceKind::Event, &[], &[0x1000]),
        ],
        ..WaitGraphInput::default()
    }
}

fn verdict(input: &WaitGraphInput) -> Verdict {
    analyze(input, &AnalyzeOptions::default())
}

#[test]
fn text_seed_case() {
    insta::assert_snapshot!(render_text(&verdict(&seed_case())));
}

#[test]
fn text_deadlock() {
    insta::assert_snapshot!(render_text(&verdict(&deadlock())));
}

#[test]
fn text_stuck_and_healthy() {
    insta::assert_snapshot!("text_stuck", render_text(&verdict(&stuck())));
    insta::assert_snapshot!("text_healthy", render_text(&verdict(&idle())));
}

/// An idle machine read whole: threads that wait on objects nobody owns.
fn idle() -> WaitGraphInput {
    WaitGraphInput {
        processes: vec![process(4, "System")],
        threads: vec![thread(0x1000, 8, 4, ThreadState::Waiting, Some(3600.0))],
        resources: vec![resource(0xe000, ResourceKind::Event, &[], &[0x1000])],
        ..WaitGraphInput::default()
    }
}

#[test]
fn text_inconclusive_when_the_model_is_empty_or_incomplete() {
    insta::assert_snapshot!(
        "text_inconclusive_empty",
        render_text(&verdict(&WaitGraphInput::default()))
    );
    let mut broken = idle();
    broken.gaps.push(Gap {
        part: ModelPart::Processes,
        reason: "process list: bad data: list loops back at fffffa80`0a000000".into(),
    });
    let v = verdict(&broken);
    assert_eq!(v.overall, Overall::Inconclusive);
    assert_eq!(v.overall.exit_code(), 5);
    insta::assert_snapshot!("text_inconclusive_gap", render_text(&v));
    let json: serde_json::Value = serde_json::from_str(&render_json(&v)).unwrap();
    assert_eq!(json["overall"], "inconclusive");
    assert_eq!(json["exit_code"], 5);
    assert!(json["incomplete"][0]
        .as_str()
        .unwrap()
        .starts_with("process list: "));
    assert!(render_html(&v).contains("INCONCLUSIVE"));
}

#[test]
fn a_finding_on_warned_objects_says_so_and_counts_them() {
    let mut input = deadlock();
    input.threads[0]
        .warnings
        .push("KTHREAD.State 255 is not a thread state".into());
    input.resources[2]
        .warnings
        .push("held exclusively but lists 2 owners".into());
    let v = verdict(&input);
    assert_eq!(v.overall, Overall::Deadlock);
    let text = render_text(&v);
    assert!(
        text.starts_with("hangscope verdict: DEADLOCK (2 warnings in the evidence; exit code 4)"),
        "{text}"
    );
    assert!(
        text.contains("damaged evidence: THREAD fffffa80`01000000: KTHREAD.State 255"),
        "{text}"
    );
    assert!(
        text.contains("damaged evidence: Mutant fffffa80`0c000000: held exclusively"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&render_json(&v)).unwrap();
    assert_eq!(
        json["findings"][0]["evidence_warnings"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(render_html(&v).contains("2 warnings in the evidence"));
    // Without warnings the field is absent, as before.
    let clean = render_json(&verdict(&deadlock()));
    assert!(!clean.contains("evidence_warnings") && !clean.contains("incomplete"));
}

#[test]
fn json_seed_case() {
    insta::assert_snapshot!(render_json(&verdict(&seed_case())));
}

#[test]
fn json_deadlock() {
    insta::assert_snapshot!(render_json(&verdict(&deadlock())));
}

#[test]
fn json_is_one_document_with_hex_addresses_and_round_trips() {
    let v = verdict(&seed_case());
    let text = render_json(&v);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["schema_version"], SCHEMA_VERSION);
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["overall"], "busy_owner");
    assert_eq!(doc["findings"][0]["final_owner"], "0xfffffa800b61bb50");
    assert_eq!(doc["findings"][0]["chain"][0]["step"], "resource");
    assert_eq!(
        doc["findings"][0]["chain"][0]["address"],
        "0xfffff80002a4c3a0"
    );
    // Every address field is a string.
    fn walk(v: &serde_json::Value, key: &str) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    walk(x, k);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, key)),
            x => {
                if matches!(
                    key,
                    "address"
                        | "irp"
                        | "file_object"
                        | "waiter"
                        | "owner"
                        | "resource"
                        | "final_owner"
                ) {
                    assert!(x.is_string() || x.is_null(), "{key}: {x}");
                }
            }
        }
    }
    walk(&doc, "");
    // The verdict part reads back into the same verdict (floats compared
    // through the text renderer: JSON number parsing may move the last bit).
    let back: Verdict = serde_json::from_value(doc).unwrap();
    assert_eq!(render_text(&back), render_text(&v));
    assert_eq!(back.findings[0].chain.len(), v.findings[0].chain.len());
    assert_eq!(back.graph, v.graph);
}

/// Tags must balance; void and self-closed elements excepted; the raw text
/// of style and script is skipped.
fn assert_well_formed(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>').expect("unterminated tag");
        let tag = &after[..close];
        rest = &after[close + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let top = stack.pop().unwrap_or_else(|| panic!("stray </{name}>"));
            assert_eq!(top, name.trim(), "mismatched close tag");
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(!name.is_empty(), "bad tag <{tag}>");
        if tag.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        if name == "style" || name == "script" {
            let end = format!("</{name}>");
            let at = rest.find(&end).expect("unterminated raw text");
            assert!(!rest[..at].contains('<'), "'<' inside <{name}>");
            rest = &rest[at + end.len()..];
            continue;
        }
        stack.push(name);
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn html_is_self_contained_well_formed_and_shows_every_finding() {
    for input in [seed_case(), deadlock(), stuck(), WaitGraphInput::default()] {
        let v = verdict(&input);
        let html = render_html(&v);
        assert_well_formed(&html);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            !html.contains("http://")
                || html.matches("http://").count()
                    == html.matches("http://www.w3.org/2000/svg").count()
        );
        assert!(!html.contains("https://"));
        assert!(!html.contains(" src="));
        for f in &v.findings {
            assert!(html.contains(&format!("id=\"finding-{}\"", f.rank)));
            let summary = hangscope_report::html::escape(&f.summary);
            assert!(html.contains(&summary), "summary of #{} missing", f.rank);
        }
        if v.findings.is_empty() {
            assert!(!html.contains("<svg"));
        } else {
            assert!(html.contains("<svg"));
            for n in &v.graph.nodes {
                assert!(html.contains(&hangscope_report::html::escape(&format!("{}\n", n.id))));
            }
        }
    }
    let html = render_html(&verdict(&seed_case()));
    assert!(html.contains(r"\Windows\Temp"));
    assert!(html.contains("php-cgi.exe"));
    assert!(html.contains("fffffa80`0b61bb50"));
}

#[test]
fn html_escapes_hostile_names() {
    let mut input = stuck();
    input.processes[0].name = "<script>alert(1)</script>&\"'.exe".into();
    let html = render_html(&verdict(&input));
    assert_well_formed(&html);
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;.exe"));
}

#[test]
fn layout_puts_blockers_left_of_owners_and_breaks_cycles() {
    let v = verdict(&seed_case());
    let lay = hangscope_report::html::layout(&v.graph);
    let ix = |id: &str| v.graph.nodes.iter().position(|n| n.id == id).unwrap();
    let col = |id: &str| lay.layer[ix(id)];
    let r1 = format!("r:{}", Addr(0xfffff800_02a4c3a0));
    let t1 = format!("t:{}", Addr(0xfffffa80_0b7d2060));
    let t2 = format!("t:{}", Addr(0xfffffa80_0b61bb50));
    assert!(col(&format!("w:{}", Addr(0xfffff800_02a4c3a0))) < col(&r1));
    assert!(col(&r1) < col(&t1) && col(&t1) < col(&t2));
    assert!(lay.back_edges.is_empty());
    // No two nodes overlap.
    for (i, a) in lay.pos.iter().enumerate() {
        for b in &lay.pos[i + 1..] {
            assert!(a != b);
        }
    }
    let d = verdict(&deadlock());
    let lay = hangscope_report::html::layout(&d.graph);
    assert_eq!(lay.back_edges.len(), 1, "{:#?}", d.graph.edges);
}
