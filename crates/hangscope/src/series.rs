//! `analyze A B [C ...]`, or `analyze DIR` / `analyze DIR/manifest.json`
//! of a capture: open each dump of one boot in turn, read its wait-for
//! graph and its progress counters, and prove each finding of the last
//! dump stuck, busy or slow over the series
//! ([`hangscope_waitgraph::compare`]).

use crate::cli::{AnalyzeArgs, GlobalArgs};
use crate::output::emit;
use crate::render::Format;
use crate::session::{open_dump, open_guest, Guest};
use anyhow::{bail, Context, Result};
use hangscope_waitgraph::{compare, AnalyzeOptions, Moment, ProgressSource, WaitSource};
use std::path::{Path, PathBuf};

/// The dumps a capture's manifest lists (a capture directory, or its
/// `manifest.json`), in their sequence; `None` for anything else.
pub fn manifest_dumps(path: &Path) -> Option<Vec<PathBuf>> {
    let manifest = if path.is_dir() {
        path.join(hangscope_capture::MANIFEST_FILE)
    } else if path
        .file_name()
        .is_some_and(|n| n == hangscope_capture::MANIFEST_FILE)
    {
        path.to_path_buf()
    } else {
        return None;
    };
    let text = std::fs::read_to_string(&manifest).ok()?;
    let m: hangscope_capture::Manifest = serde_json::from_str(&text).ok()?;
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let mut dumps = m.dumps;
    dumps.sort_by_key(|d| d.sequence);
    Some(dumps.iter().map(|d| dir.join(&d.file)).collect())
}

/// Whether `analyze` was given a series rather than one dump.
pub fn is_series(a: &AnalyzeArgs) -> bool {
    !a.more.is_empty()
        || a.dump.dump.is_dir()
        || a.dump
            .dump
            .file_name()
            .is_some_and(|n| n == hangscope_capture::MANIFEST_FILE)
}

/// The dumps of the series, in order.
fn series_paths(a: &AnalyzeArgs) -> Result<Vec<PathBuf>> {
    let p = &a.dump.dump;
    if p.is_dir()
        || p.file_name()
            .is_some_and(|n| n == hangscope_capture::MANIFEST_FILE)
    {
        if !a.more.is_empty() {
            bail!(
                "give either a capture's directory or manifest, or the dumps one by one, not both"
            );
        }
        let manifest = if p.is_dir() {
            p.join(hangscope_capture::MANIFEST_FILE)
        } else {
            p.clone()
        };
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read the capture manifest {}", manifest.display()))?;
        serde_json::from_str::<hangscope_capture::Manifest>(&text)
            .with_context(|| format!("{} is not a capture manifest", manifest.display()))?;
        let dumps = manifest_dumps(p).unwrap_or_default();
        if dumps.len() < 2 {
            bail!(
                "{} lists {} dump(s): a series needs at least two",
                manifest.display(),
                dumps.len()
            );
        }
        return Ok(dumps);
    }
    Ok(std::iter::once(p.clone())
        .chain(a.more.iter().cloned())
        .collect())
}

/// One dump of the series: its graph input and its counters.
fn moment(g: &GlobalArgs, path: &Path) -> Result<Moment> {
    let dump = open_dump(path)?;
    let guest = open_guest(g, path, &dump)?;
    let (input, progress) = match &guest {
        Guest::Windows(k) => (k.wait_graph_input(), k.progress_input()),
        Guest::Linux(k) => (k.wait_graph_input(), k.progress_input()),
    };
    Ok(Moment {
        label: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        ),
        input,
        progress,
    })
}

/// Run `analyze` over a series; returns the exit code of its verdict.
pub fn run(g: &GlobalArgs, a: &AnalyzeArgs, format: Format) -> Result<u8> {
    let paths = series_paths(a)?;
    let mut moments = Vec::with_capacity(paths.len());
    for p in &paths {
        moments.push(moment(g, p)?);
    }
    let series = match compare(&moments, &AnalyzeOptions::default()) {
        Ok(s) => s,
        Err(e) => bail!("cannot compare these dumps: {e}"),
    };
    if let Some(html) = &a.html {
        std::fs::write(html, hangscope_report::render_series_html(&series))
            .with_context(|| format!("cannot write the HTML report to {}", html.display()))?;
    }
    let text = match format {
        Format::Json => hangscope_report::render_series_json(&series),
        _ => hangscope_report::render_series_text(&series),
    };
    emit(&text, Format::from_json_flag(format == Format::Json))?;
    Ok(series.overall.exit_code())
}
