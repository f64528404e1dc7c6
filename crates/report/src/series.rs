//! Renderers for a series of dumps ([`hangscope_waitgraph::Series`]): the
//! last dump's verdict as text, JSON and HTML, each finding with the line
//! that proves or disproves it over the series.

use std::collections::HashSet;
use std::fmt::Write as _;

use hangscope_waitgraph::{Motion, Series};

use crate::html::{escape, render_html_marked};
use crate::json::SCHEMA_VERSION;
use crate::verdict::headline;

/// The headline: `STUCK (proven over 3 dumps in 8.1 s; exit code 3)`.
pub fn series_line(s: &Series) -> String {
    format!(
        "{} (proven over {} dumps in {:.1} s; exit code {})",
        headline(s.overall),
        s.dumps.len(),
        s.interval_seconds,
        s.overall.exit_code()
    )
}

/// The verdict with the series' proof: headline, the dumps and their
/// clocks, then the last dump's report with a `progress:` line after
/// each finding's sentence.
pub fn render_series_text(s: &Series) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "hangscope series verdict: {}", series_line(s));
    let _ = writeln!(out, "{}", s.summary);
    for d in &s.dumps {
        let _ = writeln!(
            out,
            "  {} at +{:.1} s (uptime {}, ticks {}): alone {}",
            d.label,
            d.offset_seconds,
            d.clock
                .uptime_seconds
                .map_or("?".into(), |u| format!("{u:.1} s")),
            d.clock.ticks.map_or("?".into(), |t| t.to_string()),
            headline(d.overall)
        );
    }
    let _ = writeln!(out, "\nThe last dump:");
    let single = crate::render_text(&s.verdict);
    for line in single.lines() {
        let _ = writeln!(out, "{line}");
        // A finding's block starts `#N KIND: ...`; its proof follows.
        if let Some(rest) = line.strip_prefix('#') {
            if let Some(n) = rest
                .split_once(' ')
                .and_then(|(n, _)| n.parse::<usize>().ok())
            {
                if let Some(p) = s.findings.iter().find(|f| f.rank == n) {
                    let _ = writeln!(out, "  progress: {}", p.line);
                }
            }
        }
    }
    let moved_locks: Vec<_> = s
        .locks
        .iter()
        .filter(|l| l.motion == Motion::Moved)
        .collect();
    if !moved_locks.is_empty() {
        let _ = writeln!(out, "\nLocks that moved:");
        for l in moved_locks.iter().take(20) {
            let _ = writeln!(
                out,
                "  {} {}: owner changed {} time(s), contention +{}, {} waiter(s) got through, {} new",
                l.kind,
                l.address.windbg(),
                l.owner_changes,
                l.contention_growth
                    .map_or("?".into(), |g| g.to_string()),
                l.waiters_left.len(),
                l.waiters_new.len()
            );
        }
    }
    if !s.warnings.is_empty() {
        let _ = writeln!(out, "\nSeries warnings:");
        for w in &s.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

/// The JSON document: `schema_version`, `type: "series"`, generator, exit
/// code, then the series' fields (docs/json-schema.md).
pub fn render_series_json(s: &Series) -> String {
    let mut doc = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "type": "series",
        "generator": format!("hangscope-report {}", env!("CARGO_PKG_VERSION")),
        "exit_code": s.overall.exit_code(),
    });
    if let (Some(o), Ok(serde_json::Value::Object(fields))) =
        (doc.as_object_mut(), serde_json::to_value(s))
    {
        o.extend(fields);
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The HTML page: the last dump's report, the series' proof before the
/// graph, and the nodes and edges that did not move drawn grey and dashed.
pub fn render_series_html(s: &Series) -> String {
    let still: HashSet<&str> = s.still_nodes.iter().map(String::as_str).collect();
    let mut p = String::new();
    p.push_str("<style>svg.waitgraph .still rect{stroke:#616161;stroke-dasharray:4 2;fill:#eeeeee}svg.waitgraph path.edge.still{stroke:#9e9e9e;stroke-dasharray:4 2}</style>");
    let _ = write!(
        p,
        "<section><h2>Series: {}</h2><p>{}</p><ul>",
        escape(&series_line(s)),
        escape(&s.summary)
    );
    for f in &s.findings {
        let _ = write!(
            p,
            "<li><b>#{} {}</b>: {}</li>",
            f.rank,
            escape(f.kind.name()),
            escape(&f.line)
        );
    }
    p.push_str("</ul><p class=\"why\">Grey, dashed nodes and edges did not move between the first and the last dump.</p></section>");
    render_html_marked(&s.verdict, &|id| still.contains(id), &p)
}
