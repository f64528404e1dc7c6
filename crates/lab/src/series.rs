//! Series of dumps of one machine (issue 16): a scenario's later
//! [`Moment`](crate::scenario::Moment)s built as one image each, from the
//! same seed so that every object keeps its address, with the proof a
//! comparison of the images must give.
//!
//! ```
//! use hangscope_lab::series::{build_series, builtin_series};
//! use hangscope_lab::{BuildOptions, Symbols};
//! let sc = builtin_series("stuck")?;
//! let opts = BuildOptions { seed: 1, build: Some("win7sp1".into()), ..Default::default() };
//! let (images, truth) = build_series(&sc, Symbols::Default, &opts)?;
//! assert_eq!(images.len(), 3);
//! assert_eq!(truth.proof.as_deref(), Some("stuck"));
//! assert!(!truth.moved_threads.is_empty());
//! # Ok::<(), hangscope_lab::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::build::{build, BuildOptions, Symbols};
use crate::error::Error;
use crate::image::LabImage;
use crate::scenario::{Moment, Scenario};
use crate::truth::GroundTruth;

/// What a comparison of a series must find.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesTruth {
    /// The proof of the hang (`stuck`, `busy`, `slow`) from the last
    /// moment's `expect_proof`.
    pub proof: Option<String>,
    /// Seconds from the first to the last moment.
    pub interval_seconds: u64,
    /// Threads (ETHREAD addresses) whose state, wait or counters change
    /// in the series: they moved and must never be called stuck.
    pub moved_threads: Vec<u64>,
    /// Threads nothing changes in the series.
    pub still_threads: Vec<u64>,
    /// Locks (addresses) whose owners or contention count change.
    pub moved_locks: Vec<u64>,
}

/// A series file: a built-in scenario and its later moments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesFile {
    base: String,
    moments: Vec<Moment>,
}

const BUILTIN_SERIES: &[(&str, &str)] = &[
    ("stuck", include_str!("../scenarios/series/stuck.toml")),
    ("busy", include_str!("../scenarios/series/busy.toml")),
    ("slow", include_str!("../scenarios/series/slow.toml")),
];

/// Names of the built-in series.
pub fn builtin_series_names() -> Vec<&'static str> {
    BUILTIN_SERIES.iter().map(|(n, _)| *n).collect()
}

/// A built-in series: its base scenario with its moments.
pub fn builtin_series(name: &str) -> Result<Scenario, Error> {
    let text = BUILTIN_SERIES
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| Error::ScenarioField {
            field: "series".into(),
            problem: format!(
                "no built-in series `{name}` (have {})",
                builtin_series_names().join(", ")
            ),
        })?
        .1;
    let file: SeriesFile = toml::from_str(text).map_err(|e| Error::ScenarioField {
        field: format!("series {name}"),
        problem: e.to_string(),
    })?;
    let mut sc = Scenario::builtin(&file.base)?;
    sc.name = format!("{}-series-{name}", file.base);
    sc.moments = file.moments;
    Ok(sc)
}

/// The ground-truth threads of scenario thread `i`'s process, matched to
/// the scenario's threads of that process in order.
fn thread_address(sc: &Scenario, truth: &GroundTruth, i: usize) -> Option<u64> {
    let pid = sc.threads[i].pid;
    let nth = sc.threads[..i].iter().filter(|t| t.pid == pid).count();
    truth
        .threads
        .iter()
        .filter(|t| t.pid == pid)
        .nth(nth)
        .map(|t| t.address)
}

/// Build every moment of `sc` (the first as written, then one image per
/// later moment) and the proof a comparison must give. Fails when a
/// moment moves a thread or lock to another address (a change the
/// builder cannot make in place).
pub fn build_series(
    sc: &Scenario,
    symbols: Symbols<'_>,
    opts: &BuildOptions,
) -> Result<(Vec<(LabImage, GroundTruth)>, SeriesTruth), Error> {
    let mut out = Vec::new();
    let mut scenarios = Vec::new();
    for i in 0..=sc.moments.len() {
        let s = sc.at_moment(i)?;
        out.push(build(&s, symbols, opts)?);
        scenarios.push(s);
    }
    let (first_sc, last_sc) = (&scenarios[0], &scenarios[scenarios.len() - 1]);
    let first = &out[0].1;
    for (k, (_, t)) in out.iter().enumerate().skip(1) {
        let same_threads = first
            .threads
            .iter()
            .zip(&t.threads)
            .all(|(a, b)| a.address == b.address && a.tid == b.tid);
        let same_locks = first
            .eresources
            .iter()
            .zip(&t.eresources)
            .all(|(a, b)| a.address == b.address);
        if !same_threads || first.threads.len() != t.threads.len() || !same_locks {
            return Err(Error::ScenarioField {
                field: format!("moments[{}]", k - 1),
                problem: "the moment moves threads or locks to other addresses".into(),
            });
        }
    }
    let mut truth = SeriesTruth {
        proof: sc.moments.last().and_then(|m| m.expect_proof.clone()),
        interval_seconds: sc.moments.last().map_or(0, |m| m.after_seconds),
        ..SeriesTruth::default()
    };
    for (i, t) in first_sc.threads.iter().enumerate() {
        let Some(addr) = thread_address(first_sc, first, i) else {
            continue;
        };
        let moved = scenarios.windows(2).any(|w| {
            let (a, b) = (&w[0].threads[i], &w[1].threads[i]);
            a.state != b.state || a.wait != b.wait || a.counters != b.counters
        }) || last_sc.threads[i] != *t;
        if moved {
            truth.moved_threads.push(addr);
        } else {
            truth.still_threads.push(addr);
        }
    }
    for (i, l) in first_sc.locks.iter().enumerate() {
        let changed = scenarios.iter().any(|s| s.locks[i] != *l);
        if !changed {
            continue;
        }
        if let Some(a) = lock_address(first, &l.id) {
            truth.moved_locks.push(a);
        }
    }
    Ok((out, truth))
}

/// A lock's address in the ground truth, by its scenario id (ERESOURCEs
/// and the dispatcher objects threads wait on).
fn lock_address(truth: &GroundTruth, id: &str) -> Option<u64> {
    truth
        .eresources
        .iter()
        .find(|e| e.name == id)
        .map(|e| e.address)
}
