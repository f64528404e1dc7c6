//! A self-contained HTML report: inline CSS and JS, no network, the
//! wait-for graph drawn as inline SVG with a layered layout computed here.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use hangscope_waitgraph::{secs_text, GraphView, NodeKind, Verdict};

use crate::verdict::{cid, finding_title, headline, step_line, verdict_line};

/// Column and row pitch of the drawn graph, in SVG units.
const COL: f64 = 280.0;
const ROW: f64 = 64.0;
const NODE_W: f64 = 224.0;
const NODE_H: f64 = 46.0;
const MARGIN: f64 = 30.0;
/// Characters kept of a node label.
const LABEL_CHARS: usize = 30;

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('\u{2026}');
        t
    }
}

/// Positions of the graph's nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Top-left corner of each node, in `GraphView::nodes` order.
    pub pos: Vec<(f64, f64)>,
    /// Layer (column) of each node.
    pub layer: Vec<usize>,
    /// Edges (indices into `GraphView::edges`) that go backwards, closing
    /// a cycle; drawn as arcs.
    pub back_edges: Vec<usize>,
    /// Drawing width.
    pub width: f64,
    /// Drawing height.
    pub height: f64,
}

/// Layered layout: cycles broken at DFS back edges, layers by longest path
/// from the sources, order within a layer by two barycenter sweeps.
/// O(V + E) per sweep; edges naming unknown nodes are ignored.
pub fn layout(g: &GraphView) -> Layout {
    let n = g.nodes.len();
    let ix: HashMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, nd)| (nd.id.as_str(), i))
        .collect();
    let edges: Vec<(usize, usize, usize)> = g
        .edges
        .iter()
        .enumerate()
        .filter_map(|(k, e)| Some((k, *ix.get(e.from.as_str())?, *ix.get(e.to.as_str())?)))
        .collect();
    let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for &(k, a, b) in &edges {
        adj[a].push((k, b));
    }
    let back = back_edges(&adj, g.edges.len());
    let layer = layers(&adj, &edges, &back);
    let layers = layer.iter().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for v in 0..n {
        rows[layer[v]].push(v);
    }
    order_rows(&mut rows, &edges, &back, n);

    let mut pos = vec![(0.0, 0.0); n];
    let mut max_rows = 0usize;
    for (l, r) in rows.iter().enumerate() {
        max_rows = max_rows.max(r.len());
        for (i, &v) in r.iter().enumerate() {
            pos[v] = (MARGIN + l as f64 * COL, MARGIN + i as f64 * ROW);
        }
    }
    let back_edges: Vec<usize> = (0..g.edges.len()).filter(|&k| back[k]).collect();
    Layout {
        pos,
        layer,
        width: 2.0 * MARGIN + layers.max(1) as f64 * COL,
        height: 2.0 * MARGIN
            + max_rows.max(1) as f64 * ROW
            + if back_edges.is_empty() { 0.0 } else { ROW },
        back_edges,
    }
}

/// Which edges close a cycle, by an iterative depth-first search (0 new,
/// 1 on the stack, 2 done): `adj[v]` holds (edge index, target) pairs.
fn back_edges(adj: &[Vec<(usize, usize)>], edge_count: usize) -> Vec<bool> {
    let n = adj.len();
    let mut color = vec![0u8; n];
    let mut back = vec![false; edge_count];
    for root in 0..n {
        if color[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        color[root] = 1;
        while let Some(&mut (v, ref mut i)) = stack.last_mut() {
            if let Some(&(k, w)) = adj[v].get(*i) {
                *i += 1;
                match color[w] {
                    0 => {
                        color[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => back[k] = true,
                    _ => {}
                }
            } else {
                color[v] = 2;
                stack.pop();
            }
        }
    }
    back
}

/// Each node's column: longest-path layers over the forward edges (Kahn's
/// order), with sources pulled right next to what they point at, so that
/// a resource's leaf waiters sit just before it, not in the first column.
fn layers(
    adj: &[Vec<(usize, usize)>],
    edges: &[(usize, usize, usize)],
    back: &[bool],
) -> Vec<usize> {
    let n = adj.len();
    let mut indeg = vec![0usize; n];
    for &(k, _, b) in edges {
        if !back[k] {
            indeg[b] += 1;
        }
    }
    let is_source: Vec<bool> = indeg.iter().map(|&d| d == 0).collect();
    let mut layer = vec![0usize; n];
    let mut queue: VecDeque<usize> = (0..n).filter(|&v| indeg[v] == 0).collect();
    while let Some(v) = queue.pop_front() {
        for &(k, w) in &adj[v] {
            if back[k] {
                continue;
            }
            layer[w] = layer[w].max(layer[v] + 1);
            indeg[w] -= 1;
            if indeg[w] == 0 {
                queue.push_back(w);
            }
        }
    }
    for v in 0..n {
        if is_source[v] {
            if let Some(m) = adj[v]
                .iter()
                .filter(|&&(k, _)| !back[k])
                .map(|&(_, w)| layer[w])
                .min()
            {
                layer[v] = m.saturating_sub(1);
            }
        }
    }
    layer
}

/// Barycenter sweeps: order each layer by the mean row of its neighbours
/// in the previous layer, then in the next.
fn order_rows(rows: &mut [Vec<usize>], edges: &[(usize, usize, usize)], back: &[bool], n: usize) {
    let layers = rows.len();
    let mut row_of = vec![0f64; n];
    for r in rows.iter() {
        for (i, &v) in r.iter().enumerate() {
            row_of[v] = i as f64;
        }
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(k, a, b) in edges {
        if !back[k] {
            preds[b].push(a);
            succs[a].push(b);
        }
    }
    for sweep in 0..4 {
        let down = sweep % 2 == 0;
        let order: Vec<usize> = if down {
            (1..layers).collect()
        } else {
            (0..layers.saturating_sub(1)).rev().collect()
        };
        for l in order {
            let mut keyed: Vec<(f64, usize)> = rows[l]
                .iter()
                .map(|&v| {
                    let nb = if down { &preds[v] } else { &succs[v] };
                    let key = if nb.is_empty() {
                        row_of[v]
                    } else {
                        nb.iter().map(|&u| row_of[u]).sum::<f64>() / nb.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            rows[l] = keyed.into_iter().map(|(_, v)| v).collect();
            for (i, &v) in rows[l].iter().enumerate() {
                row_of[v] = i as f64;
            }
        }
    }
}

/// The wait-for graph as an inline SVG element.
pub fn render_svg(g: &GraphView) -> String {
    render_svg_marked(g, &|_| false)
}

/// [`render_svg`] with the nodes `still` names (by node id) marked as
/// having made no progress over a series of dumps, and the edges between
/// two such nodes drawn dashed.
pub fn render_svg_marked(g: &GraphView, still: &dyn Fn(&str) -> bool) -> String {
    let lay = layout(g);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="waitgraph" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="wait-for graph">"#,
        w = lay.width,
        h = lay.height
    );
    s.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>"##,
    );
    let _ = write!(s, "<style>{SVG_CSS}</style>");
    let mut is_back = vec![false; g.edges.len()];
    for &k in &lay.back_edges {
        is_back[k] = true;
    }
    let ix: HashMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, nd)| (nd.id.as_str(), i))
        .collect();
    for (k, e) in g.edges.iter().enumerate() {
        let (Some(&a), Some(&b)) = (ix.get(e.from.as_str()), ix.get(e.to.as_str())) else {
            continue;
        };
        let (ax, ay) = lay.pos[a];
        let (bx, by) = lay.pos[b];
        let d = if is_back[k] {
            // Arc under the drawing, from the bottom of one to the other.
            let bottom = lay.height - MARGIN / 2.0;
            format!(
                "M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
                ax + NODE_W / 2.0,
                ay + NODE_H,
                ax + NODE_W / 2.0,
                bottom,
                bx + NODE_W / 2.0,
                bottom,
                bx + NODE_W / 2.0,
                by + NODE_H
            )
        } else {
            let (x1, y1) = (ax + NODE_W, ay + NODE_H / 2.0);
            let (x2, y2) = (bx, by + NODE_H / 2.0);
            let mid = (x1 + x2) / 2.0;
            format!("M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}")
        };
        let _ = write!(
            s,
            r#"<path class="edge {kind}{back}{stuck}{inferred}" d="{d}" marker-end="url(#arrow)"><title>{title}</title></path>"#,
            kind = escape(&e.kind),
            inferred = if e.label.as_deref() == Some("inferred") {
                " inferred"
            } else {
                ""
            },
            back = if is_back[k] { " back" } else { "" },
            stuck = if still(&e.from) && still(&e.to) {
                " still"
            } else {
                ""
            },
            title = escape(&format!(
                "{} {} {}{}",
                e.from,
                e.kind,
                e.to,
                e.label
                    .as_deref()
                    .map_or(String::new(), |l| format!(" ({l})"))
            )),
        );
    }
    for (i, nd) in g.nodes.iter().enumerate() {
        let (x, y) = lay.pos[i];
        let kind = match nd.kind {
            NodeKind::Thread => "thread",
            NodeKind::Resource => "resource",
            NodeKind::Waiters => "waiters",
            NodeKind::File => "file",
        };
        let _ = write!(
            s,
            r#"<g class="node {kind}{culprit}{stuck}" data-finding="{f}"><title>{title}</title><rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" rx="6"/><text x="{tx:.1}" y="{ty1:.1}">{label}</text><text class="detail" x="{tx:.1}" y="{ty2:.1}">{detail}</text></g>"#,
            culprit = if nd.culprit { " culprit" } else { "" },
            stuck = if still(&nd.id) { " still" } else { "" },
            f = nd.finding.map_or(String::new(), |f| f.to_string()),
            title = escape(&format!("{}\n{}\n{}", nd.id, nd.label, nd.detail)),
            tx = x + 8.0,
            ty1 = y + 19.0,
            ty2 = y + 37.0,
            label = escape(&clip(&nd.label, LABEL_CHARS)),
            detail = escape(&clip(&nd.detail, LABEL_CHARS + 4)),
        );
    }
    s.push_str("</svg>");
    s
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{padding:18px 28px;color:#fff}
header.healthy{background:#2e7d32}header.contention,header.busy_owner{background:#b26a00}
header.stuck{background:#c62828}header.inconclusive{background:#546e7a}header.deadlock{background:#6a1b9a}
header h1{margin:0 0 4px;font-size:22px}
main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px 18px;margin:16px 0}
.finding h2{font-size:17px;margin:4px 0 8px;cursor:pointer}
.kind{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;vertical-align:middle}
.kind.busy_owner,.kind.contention{background:#b26a00}.kind.stuck{background:#c62828}.kind.deadlock{background:#6a1b9a}
.why{color:#555}
ol.chain{font-family:ui-monospace,Consolas,monospace;font-size:13px}
ol.chain li{margin:2px 0}
pre.stack{margin:2px 0 4px 18px;color:#555}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #eee;padding:3px 10px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.mono{font-family:ui-monospace,Consolas,monospace}
.graph{overflow:auto;max-height:80vh}
.hot{background:#fff3e0}
.warn li{color:#8a4b00}
"#;

/// Styles inside the SVG itself, so that the drawing stays readable when
/// it is saved on its own.
const SVG_CSS: &str = r#"
svg.waitgraph text{font:12px ui-monospace,Consolas,monospace;fill:#1d1d1f}
svg.waitgraph text.detail{fill:#666;font-size:11px}
svg.waitgraph rect{stroke:#777;stroke-width:1.2}
svg.waitgraph .thread rect{fill:#e3f2fd}svg.waitgraph .resource rect{fill:#fff8e1}
svg.waitgraph .waiters rect{fill:#f3e5f5}svg.waitgraph .file rect{fill:#e8f5e9}
svg.waitgraph .culprit rect{stroke:#c62828;stroke-width:2.5}
svg.waitgraph path.edge{fill:none;stroke:#555;stroke-width:1.3}
svg.waitgraph path.edge.back{stroke:#c62828;stroke-dasharray:5 3}
svg.waitgraph path.edge.io{stroke-dasharray:2 3}
svg.waitgraph path.edge.inferred{stroke-dasharray:6 2 1 2}
svg.waitgraph .dim{opacity:.18}
"#;

const JS: &str = r#"
document.querySelectorAll('.finding h2').forEach(function(h){
  h.addEventListener('click',function(){
    var f=h.parentElement.getAttribute('data-finding');
    var on=h.parentElement.classList.toggle('selected');
    document.querySelectorAll('.finding').forEach(function(o){if(o!==h.parentElement)o.classList.remove('selected');});
    document.querySelectorAll('svg.waitgraph g.node').forEach(function(n){
      n.classList.toggle('dim',on&&n.getAttribute('data-finding')!==f);
    });
  });
});
"#;

fn opt(s: &Option<String>) -> String {
    escape(s.as_deref().unwrap_or(""))
}

/// One finding's section: title, sentence, chain with stacks, damaged
/// evidence, blocked processes, edges and threads.
fn finding_html(h: &mut String, f: &hangscope_waitgraph::Finding) {
    let kind = f.kind.name();
    let _ = write!(
        h,
        "<section class=\"finding\" id=\"finding-{r}\" data-finding=\"{r}\"><h2>#{r} <span class=\"kind {kind}\">{title}</span> blocks {b} threads, longest wait {w}</h2><p>{sum}</p><p class=\"why\">Why: {why}</p><ol class=\"chain\">",
        r = f.rank,
        title = finding_title(f),
        b = f.blocked_threads,
        w = f.max_wait_seconds.map_or("?".to_string(), secs_text),
        sum = escape(&f.summary),
        why = escape(&f.why),
    );
    for step in &f.chain {
        let _ = write!(h, "<li>{}", escape(&step_line(step)));
        if let hangscope_waitgraph::EvidenceStep::Thread { stack, .. } = step {
            if !stack.is_empty() {
                let _ = write!(
                    h,
                    "<pre class=\"stack\">{}</pre>",
                    escape(
                        &stack
                            .iter()
                            .map(|f| f.to_string())
                            .collect::<Vec<_>>()
                            .join("\n")
                    )
                );
            }
        }
        h.push_str("</li>");
    }
    h.push_str("</ol>");
    if let Some(s) = &f.stuck_io {
        let _ = write!(
            h,
            "<p class=\"stuck-io\">Device stack: {} &mdash; {} IRPs pending at {}{}</p>",
            escape(&s.device_stack.join(" -> ")),
            s.pending_irps,
            escape(&s.driver),
            s.device
                .as_deref()
                .map(|d| format!(" {}", escape(d)))
                .unwrap_or_default()
        );
    }
    if let Some(s) = &f.starvation {
        h.push_str("<table class=\"cpus\"><tr><th>CPU</th><th>runs</th><th>process</th><th>priority</th><th>ready</th><th>DPCs queued</th><th>DPC routines</th></tr>");
        for c in &s.cpus {
            let _ = write!(
                h,
                "<tr><td class=\"num\">{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}{}</td><td>{}</td></tr>",
                c.cpu,
                c.current.map_or("?".to_string(), |a| a.windbg()),
                escape(c.process.as_deref().unwrap_or("")),
                c.priority.map_or(String::new(), |p| p.to_string()),
                c.ready_threads,
                c.dpc_queue_depth.map_or("?".to_string(), |d| d.to_string()),
                if c.dpc_active { " (in a DPC)" } else { "" },
                escape(&c.dpc_routines.join(", "))
            );
        }
        h.push_str("</table>");
    }
    if let Some(m) = &f.low_memory {
        let pages = |p: Option<u64>| p.map_or("?".to_string(), |p| p.to_string());
        let _ = write!(
            h,
            "<p class=\"low-memory\">Memory: {} of {} pages available, {} of {} pages committed ({}); {} threads waiting for free pages, {} for page-ins</p>",
            pages(m.available_pages),
            pages(m.physical_pages),
            pages(m.committed_pages),
            pages(m.commit_limit_pages),
            escape(&m.source),
            m.free_page_waiters,
            m.page_in_waiters
        );
    }
    if !f.unexplained_objects.is_empty() {
        h.push_str("<table><tr><th>object</th><th>kind</th><th>name</th><th>threads</th><th>longest wait</th></tr>");
        for o in &f.unexplained_objects {
            let _ = write!(
                h,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                o.address.windbg(),
                escape(&o.kind),
                escape(o.name.as_deref().unwrap_or("")),
                o.threads,
                o.max_wait_seconds.map_or("?".to_string(), secs_text)
            );
        }
        h.push_str("</table>");
    }
    if !f.evidence_warnings.is_empty() {
        h.push_str("<ul class=\"warn\">");
        for w in &f.evidence_warnings {
            let _ = write!(h, "<li>damaged evidence: {}</li>", escape(w));
        }
        h.push_str("</ul>");
    }
    if !f.blocked_processes.is_empty() {
        h.push_str("<table><tr><th>blocked process</th><th>pid</th><th>threads</th></tr>");
        for p in &f.blocked_processes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&p.name),
                p.pid,
                p.threads
            );
        }
        h.push_str("</table>");
    }
    if !f.edges.is_empty() {
        let _ = write!(
            h,
            "<details{}><summary>{} wait edges{}</summary><table><tr><th>waiter</th><th>waited</th><th>resource</th><th>held</th><th>owner</th></tr>",
            if f.kind == hangscope_waitgraph::FindingKind::Deadlock { " open" } else { "" },
            f.edges.len(),
            if f.edges_truncated { " (cut at the bound)" } else { "" }
        );
        for e in &f.edges {
            let _ = write!(
                h,
                "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                e.waiter.windbg(),
                e.waited_seconds.map_or("?".to_string(), secs_text),
                e.resource.windbg(),
                match e.held_as {
                    hangscope_waitgraph::Mode::Shared => "shared",
                    hangscope_waitgraph::Mode::Exclusive => "exclusive",
                },
                e.owner.windbg()
            );
        }
        h.push_str("</table></details>");
    }
    if !f.threads.is_empty() {
        let _ = write!(
            h,
            "<details><summary>{} blocked threads{}</summary><table><tr><th>thread</th><th>client id</th><th>process</th><th>state</th><th>reason</th><th>waited</th><th>waits on</th></tr>",
            f.threads.len(),
            if f.threads_truncated { " (cut at the bound)" } else { "" }
        );
        for t in &f.threads {
            let on: Vec<String> = t.waits_on.iter().map(|a| a.windbg()).collect();
            let _ = write!(
                h,
                "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"mono\">{}</td></tr>",
                t.address.windbg(),
                cid(t.pid, t.tid),
                opt(&t.process),
                escape(&t.state),
                opt(&t.wait_reason),
                t.waited_seconds.map_or("?".to_string(), secs_text),
                on.join(" ")
            );
        }
        h.push_str("</table></details>");
    }
    h.push_str("</section>");
}

/// The whole report as one HTML document (no external resources).
pub fn render_html(v: &Verdict) -> String {
    render_html_marked(v, &|_| false, "")
}

/// [`render_html`] for a series of dumps: the graph marks what did not
/// move ([`render_svg_marked`]), and `preface` (HTML, the series'
/// proof) comes before the graph.
pub fn render_html_marked(v: &Verdict, still: &dyn Fn(&str) -> bool, preface: &str) -> String {
    let mut h = String::new();
    let overall = v.overall.name();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>hangscope: {}</title><style>{CSS}</style></head><body>",
        headline(v.overall)
    );
    let s = &v.stats;
    let _ = write!(
        h,
        "<header class=\"{overall}\"><h1>hangscope verdict: {}</h1><div>{} threads in {} processes; {} blocked on {} contended resources; {} cycles; {} findings</div></header><main>",
        escape(&verdict_line(v)),
        s.threads,
        s.processes,
        s.blocked_threads,
        s.contended_resources,
        s.cycles,
        v.findings.len()
    );

    if !v.incomplete.is_empty() {
        h.push_str("<section class=\"warn\"><h2>Incomplete model</h2><p>The dump cannot show that the rest is healthy:</p><ul>");
        for why in &v.incomplete {
            let _ = write!(h, "<li>{}</li>", escape(why));
        }
        h.push_str("</ul></section>");
    }
    h.push_str(preface);
    if v.findings.is_empty() {
        if v.overall == hangscope_waitgraph::Overall::Healthy {
            h.push_str(
                "<section><p>No thread waits on a resource that another thread owns.</p></section>",
            );
        }
    } else {
        h.push_str("<section><h2>Wait-for graph</h2><p class=\"why\">Waiters point to the resource they wait on, resources to their owners, final owners to the file of their I/O; red borders mark final owners and cycles. Click a finding's title to highlight it.</p><div class=\"graph\">");
        h.push_str(&render_svg_marked(&v.graph, still));
        if v.graph.truncated {
            h.push_str("<p class=\"why\">The graph was cut at its node bound.</p>");
        }
        h.push_str("</div></section>");
    }

    for f in &v.findings {
        finding_html(&mut h, f);
    }

    if !v.hot_directories.is_empty() {
        h.push_str("<section><h2>Hot directories</h2><table><tr><th>directory</th><th>file objects</th><th>handles held by</th><th>pending I/O from</th><th>names</th></tr>");
        for d in &v.hot_directories {
            let procs = |l: &[hangscope_waitgraph::ProcessFiles]| {
                l.iter()
                    .take(5)
                    .map(|p| format!("{} ({}) {}", escape(&p.name), p.pid, p.files))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let pats: Vec<String> = d
                .patterns
                .iter()
                .map(|p| format!("{} {}", escape(&p.pattern), p.count))
                .collect();
            let _ = write!(
                h,
                "<tr{}><td class=\"mono\">{}{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                if d.blocking_io { " class=\"hot\"" } else { "" },
                escape(&d.path),
                if d.blocking_io { " <b>(blocking I/O)</b>" } else { "" },
                d.files,
                procs(&d.holders),
                procs(&d.io_processes),
                pats.join("<br>")
            );
        }
        h.push_str("</table></section>");
    }

    if !v.warnings.is_empty() {
        h.push_str("<section class=\"warn\"><h2>Warnings</h2><ul>");
        for w in &v.warnings {
            let _ = write!(h, "<li>{}</li>", escape(w));
        }
        h.push_str("</ul></section>");
    }
    let _ = writeln!(h, "</main><script>{JS}</script></body></html>");
    h
}
