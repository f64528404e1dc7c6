//! Any bytes -> a wait-for graph input -> analyze, with tight bounds so
//! that every bound is reached; then the verdict's own invariants.
//! Run: `cargo fuzz run waitgraph_build`.
#![no_main]

use hangscope_waitgraph::{analyze, AnalyzeOptions, FindingKind, Overall};
use libfuzzer_sys::fuzz_target;

#[path = "decode.rs"]
mod decode;

fuzz_target!(|data: &[u8]| {
    let input = decode::decode(data);
    for opts in [
        AnalyzeOptions::default(),
        AnalyzeOptions {
            max_findings: 2,
            max_threads_per_finding: 1,
            max_edges_per_finding: 1,
            max_graph_nodes: 3,
            hot_dir_min_files: 0,
            hot_dir_top: 1,
            stack_frames: 0,
            young_wait_seconds: f64::NAN,
            stuck_wait_seconds: 0.0,
            stuck_io_seconds: 0.0,
            unexplained_wait_seconds: f64::INFINITY,
            starved_ready_seconds: f64::NAN,
            low_memory_percent: 100.0,
            commit_full_percent: 0.0,
        },
    ] {
        let v = analyze(&input, &opts);
        let worst = v.findings.iter().map(|f| f.kind.overall()).max();
        // With no finding: healthy only over a model read whole (issue 10).
        let nothing_found = if v.incomplete.is_empty() {
            Overall::Healthy
        } else {
            Overall::Inconclusive
        };
        assert_eq!(v.overall, worst.unwrap_or(nothing_found));
        assert!(v.findings.len() <= opts.max_findings);
        assert!(v.graph.nodes.len() <= opts.max_graph_nodes);
        for f in &v.findings {
            // Only chains of waits end in an owner thread: a cycle has
            // none, and stuck I/O, an unexplained wait or an ALPC request no
            // server thread took has no thread to blame.
            let ownerless = matches!(
                f.kind,
                FindingKind::Deadlock
                    | FindingKind::StuckIo
                    | FindingKind::Unexplained
                    | FindingKind::AlpcUnanswered
            );
            assert_eq!(ownerless, f.final_owner.is_none());
            assert!(f.max_wait_seconds.is_none_or(|s| s.is_finite() && s >= 0.0));
        }
    }
});
