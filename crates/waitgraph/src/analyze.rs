//! From the wait-for graph to ranked findings.
//!
//! 1. Strongly connected components (iterative Tarjan). A component with
//!    more than one node is a cycle of waits: a deadlock.
//! 2. Every node gets its *dominant outcome*: where following owners ends
//!    (a cycle, an owner that waits on nothing owned, an owner that runs),
//!    choosing at each shared resource the worst branch (cycle, then a
//!    waiting or vanished owner, then a running one; then the longest
//!    chain). One pass over the condensation in reverse topological order.
//! 3. Threads that wait on an owned resource are grouped by their dominant
//!    outcome; each group becomes a finding. The findings' blocked counts
//!    are then made exact by one reverse search each (bounded by
//!    `max_findings`), so the work is O(max_findings x (V + E)).
//! 4. Each finding is classified with the waiters' ages, the way the seed
//!    case's engineer read `Ticks`: young waiters and a running owner make
//!    a busy owner, long waits without a cycle make stuck.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::files::{directory_of, DirIndex};
use crate::graph::{tarjan, Graph, Node};
use crate::verdict::*;
use crate::{Mode, ResourceKind, ThreadState, WaitGraphInput};

/// Rank of outcomes: higher is worse.
const RANK_CYCLE: u8 = 3;
const RANK_WAITING_OWNER: u8 = 2;
const RANK_RUNNING_OWNER: u8 = 1;

/// Process names named in a summary sentence.
const SUMMARY_NAMES: usize = 8;

/// Frames kept for threads in the middle of a chain or a cycle.
const MIDDLE_FRAMES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Term {
    /// A final owner thread node.
    Thread(Node),
    /// A cyclic component id.
    Cycle(usize),
}

#[derive(Debug, Clone, Copy)]
struct Outcome {
    rank: u8,
    depth: usize,
    term: Term,
}

fn term_order(t: Term) -> (u8, usize) {
    match t {
        Term::Cycle(c) => (0, c),
        Term::Thread(v) => (1, v),
    }
}

/// Whether `a` is a better (worse for the system) outcome than `b`.
fn beats(a: &Outcome, b: &Outcome) -> bool {
    (a.rank, a.depth, std::cmp::Reverse(term_order(a.term)))
        > (b.rank, b.depth, std::cmp::Reverse(term_order(b.term)))
}

/// Build the verdict. Never panics; the work is bounded by
/// `opts.max_findings` passes over the graph.
pub fn analyze(input: &WaitGraphInput, opts: &AnalyzeOptions) -> Verdict {
    let mut warnings = input.warnings.clone();
    let opts = sanitize(opts, &mut warnings);
    let g = Graph::build(input, &mut warnings);
    let n = g.len();
    let (comp, comps) = tarjan(&g);
    let cyclic: Vec<bool> = comps.iter().map(|c| c.len() > 1).collect();

    let outcome = dominant_outcomes(&g, &comps, &cyclic);
    let upstream = upstream_paths(&g, &comp, &comps);
    // Blocked threads: waiting on a resource someone owns.
    let owned = |r: Node| !g.succ(r).is_empty();
    let mut groups: HashMap<Term, usize> = HashMap::new();
    let mut blocked_total = 0usize;
    for (v, out) in outcome.iter().enumerate().take(g.n_threads) {
        if g.succ(v).iter().any(|&r| owned(r)) {
            blocked_total += 1;
            if let Some(o) = out {
                *groups.entry(o.term).or_default() += 1;
            }
        }
    }
    let mut candidates: Vec<(Term, usize)> = groups.into_iter().collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(term_order(a.0).cmp(&term_order(b.0))));
    if candidates.len() > opts.max_findings {
        warnings.push(format!(
            "{} chains found; only the {} that block the most threads are reported (raise max_findings for more)",
            candidates.len(),
            opts.max_findings
        ));
        candidates.truncate(opts.max_findings);
    }

    // Directories, with the final owners' I/O marked.
    let mut dirs = DirIndex::build(input);
    for &(term, _) in &candidates {
        if let Term::Thread(t) = term {
            for io in g.thread(t).map(|t| t.io.as_slice()).unwrap_or_default() {
                if let Some(f) = &io.file {
                    dirs.mark_blocking(f);
                }
            }
        }
    }

    let suspects = Suspects::build(&g);
    let ctx = Ctx {
        g: &g,
        opts: &opts,
        comp: &comp,
        comps: &comps,
        upstream: &upstream,
        dirs: &dirs,
        suspects: &suspects,
    };
    let mut stamp = vec![0u32; n];
    let mut findings: Vec<Finding> = candidates
        .iter()
        .enumerate()
        .map(|(i, &(term, _))| ctx.finding(term, &mut stamp, (i + 1) as u32))
        .collect();
    // Threads a lock chain or a cycle explains, and the owners they end in.
    let mut explained: HashSet<u64> = (0..g.n_threads)
        .filter(|&v| g.succ(v).iter().any(|&r| owned(r)))
        .map(|v| g.thread_key[v])
        .collect();
    explained.extend(findings.iter().filter_map(|f| f.final_owner.map(|a| a.0)));
    let mut more = crate::alpc::unanswered_findings(input, &opts, &mut explained);
    more.extend(crate::starvation::cpu_starvation_finding(
        input,
        &opts,
        &mut explained,
    ));
    more.extend(crate::io_stall::stuck_io_findings(
        input,
        &opts,
        &mut explained,
    ));
    more.extend(crate::starvation::low_memory_finding(
        input,
        &opts,
        &mut explained,
    ));
    more.extend(crate::io_stall::unexplained_finding(
        input, &opts, &explained,
    ));
    let room = opts.max_findings.saturating_sub(findings.len());
    if more.len() > room {
        warnings.push(format!(
            "{} stuck-I/O or unexplained findings left out at max_findings {}",
            more.len() - room,
            opts.max_findings
        ));
        more.truncate(room);
    }
    findings.extend(more);
    findings.sort_by(|a, b| {
        b.blocked_threads
            .cmp(&a.blocked_threads)
            .then(b.total_wait_seconds.total_cmp(&a.total_wait_seconds))
            .then(b.kind.cmp(&a.kind))
            .then(a.final_owner.cmp(&b.final_owner))
    });
    for (i, f) in findings.iter_mut().enumerate() {
        f.rank = i + 1;
    }
    let incomplete = incompleteness(input);
    let overall =
        findings
            .iter()
            .map(|f| f.kind.overall())
            .max()
            .unwrap_or(if incomplete.is_empty() {
                Overall::Healthy
            } else {
                Overall::Inconclusive
            });
    if dirs.unnamed > 0 {
        warnings.push(format!(
            "{} file objects have a path without a directory; left out of hot directories",
            dirs.unnamed
        ));
    }
    let hot_directories = dirs.hot(opts.hot_dir_min_files, opts.hot_dir_top, &g.proc_name);
    let graph = graph_view(&findings, opts.max_graph_nodes);

    let stats = stats_of(input, &g, blocked_total, &cyclic);
    Verdict {
        overall,
        findings,
        hot_directories,
        graph,
        warnings,
        incomplete,
        stats,
    }
}

/// Each node's dominant outcome: where following owners from it ends (a
/// cycle, a waiting owner, a running owner), the worst branch winning at
/// each shared resource; one pass over the condensation, sinks first.
fn dominant_outcomes(g: &Graph<'_>, comps: &[Vec<Node>], cyclic: &[bool]) -> Vec<Option<Outcome>> {
    let n = g.len();
    let mut outcome: Vec<Option<Outcome>> = vec![None; n];
    for (cid, members) in comps.iter().enumerate() {
        if cyclic[cid] {
            for &v in members {
                outcome[v] = Some(Outcome {
                    rank: RANK_CYCLE,
                    depth: 0,
                    term: Term::Cycle(cid),
                });
            }
            continue;
        }
        let v = members[0];
        let mut best: Option<Outcome> = None;
        for &w in g.succ(v) {
            if let Some(o) = outcome[w] {
                let cand = Outcome {
                    depth: o.depth.saturating_add(1),
                    ..o
                };
                let better = match &best {
                    None => true,
                    Some(b) => beats(&cand, b),
                };
                if better {
                    best = Some(cand);
                }
            }
        }
        if g.is_thread(v) && best.is_none() {
            best = Some(Outcome {
                rank: if g.runs(v) {
                    RANK_RUNNING_OWNER
                } else {
                    RANK_WAITING_OWNER
                },
                depth: 0,
                term: Term::Thread(v),
            });
        }
        outcome[v] = best;
    }

    outcome
}

/// Paths into each node (saturating), for picking the chain to show.
fn upstream_paths(g: &Graph<'_>, comp: &[usize], comps: &[Vec<Node>]) -> Vec<u64> {
    let n = g.len();
    let mut upstream = vec![0u64; n];
    for members in comps.iter().rev() {
        for &v in members {
            let mut s = 0u64;
            for &p in g.pred(v) {
                if comp[p] == comp[v] {
                    continue;
                }
                s = s
                    .saturating_add(upstream[p])
                    .saturating_add(u64::from(g.is_thread(p)));
            }
            upstream[v] = s;
        }
    }

    upstream
}

/// The verdict's counters.
fn stats_of(input: &WaitGraphInput, g: &Graph<'_>, blocked_total: usize, cyclic: &[bool]) -> Stats {
    let n = g.len();
    let owned = |r: Node| !g.succ(r).is_empty();
    Stats {
        processes: input.processes.len(),
        threads: input.threads.len(),
        waiting_threads: input
            .threads
            .iter()
            .filter(|t| t.state == ThreadState::Waiting)
            .count(),
        running_threads: input
            .threads
            .iter()
            .filter(|t| matches!(t.state, ThreadState::Running { .. } | ThreadState::Ready))
            .count(),
        resources: input.resources.len(),
        contended_resources: (g.n_threads..n)
            .filter(|&r| owned(r) && !g.pred(r).is_empty())
            .count(),
        files: input.files.len(),
        blocked_threads: blocked_total,
        graph_nodes: n,
        graph_edges: g.out.len(),
        cycles: cyclic.iter().filter(|&&c| c).count(),
    }
}

/// Why the model cannot support "healthy": it is empty, or the kernel
/// model said which part it could not read whole.
fn incompleteness(input: &WaitGraphInput) -> Vec<String> {
    let mut why = Vec::new();
    if input.processes.is_empty() {
        why.push("no process could be read".to_string());
    }
    if input.threads.is_empty() {
        why.push("no thread could be read".to_string());
    }
    let mut gaps: Vec<&crate::Gap> = input.gaps.iter().collect();
    gaps.sort_by_key(|g| g.part);
    for gap in gaps {
        // The reason names what was being read (`process list: ...`).
        why.push(gap.reason.clone());
    }
    why
}

/// Replace thresholds that are not usable numbers by the defaults.
fn sanitize(opts: &AnalyzeOptions, warnings: &mut Vec<String>) -> AnalyzeOptions {
    let d = AnalyzeOptions::default();
    let mut o = opts.clone();
    if !(o.young_wait_seconds.is_finite() && o.young_wait_seconds >= 0.0) {
        warnings.push(
            "young_wait_seconds is not a finite non-negative number; using the default".into(),
        );
        o.young_wait_seconds = d.young_wait_seconds;
    }
    if !(o.stuck_wait_seconds.is_finite() && o.stuck_wait_seconds >= 0.0) {
        warnings.push(
            "stuck_wait_seconds is not a finite non-negative number; using the default".into(),
        );
        o.stuck_wait_seconds = d.stuck_wait_seconds;
    }
    if !(o.stuck_io_seconds.is_finite() && o.stuck_io_seconds >= 0.0) {
        warnings
            .push("stuck_io_seconds is not a finite non-negative number; using the default".into());
        o.stuck_io_seconds = d.stuck_io_seconds;
    }
    if !(o.unexplained_wait_seconds.is_finite() && o.unexplained_wait_seconds >= 0.0) {
        warnings.push(
            "unexplained_wait_seconds is not a finite non-negative number; using the default"
                .into(),
        );
        o.unexplained_wait_seconds = d.unexplained_wait_seconds;
    }
    for (name, v, default) in [
        (
            "starved_ready_seconds",
            &mut o.starved_ready_seconds,
            d.starved_ready_seconds,
        ),
        (
            "low_memory_percent",
            &mut o.low_memory_percent,
            d.low_memory_percent,
        ),
        (
            "commit_full_percent",
            &mut o.commit_full_percent,
            d.commit_full_percent,
        ),
    ] {
        if !(v.is_finite() && *v >= 0.0) {
            warnings.push(format!(
                "{name} is not a finite non-negative number; using the default"
            ));
            *v = default;
        }
    }
    o
}

struct Ctx<'a, 'g> {
    g: &'a Graph<'g>,
    opts: &'a AnalyzeOptions,
    comp: &'a [usize],
    comps: &'a [Vec<Node>],
    upstream: &'a [u64],
    dirs: &'a DirIndex,
    suspects: &'a Suspects,
}

/// What the model said was wrong with each thread and resource, by key,
/// and the threads named by a claim but missing from the thread list.
/// Only objects with something to say are kept: on a healthy dump it is
/// empty.
#[derive(Debug, Default)]
struct Suspects {
    by_key: HashMap<u64, Vec<String>>,
}

impl Suspects {
    fn build(g: &Graph<'_>) -> Suspects {
        let mut by_key: HashMap<u64, Vec<String>> = HashMap::new();
        for v in 0..g.len() {
            let key = g.key(v);
            let said: Vec<String> = if g.is_thread(v) {
                match g.thread(v) {
                    Some(t) => t.warnings.clone(),
                    None => vec![format!(
                        "thread {key:#x} is named as an owner or waiter but is not in the thread list"
                    )],
                }
            } else {
                g.resource(v).warnings.clone()
            };
            if !said.is_empty() {
                by_key.entry(key).or_default().extend(said);
            }
        }
        Suspects { by_key }
    }

    /// The warnings about the threads and resources of a chain, each once,
    /// in chain order.
    fn of_chain(&self, chain: &[EvidenceStep]) -> Vec<String> {
        if self.by_key.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for step in chain {
            let (what, key) = match step {
                EvidenceStep::Thread { address, .. } => ("THREAD".to_string(), address.0),
                EvidenceStep::Resource { address, kind, .. } => (kind_title(kind), address.0),
                _ => continue,
            };
            for w in self.by_key.get(&key).into_iter().flatten() {
                let line = format!("{what} {}: {w}", Addr(key).windbg());
                if !out.contains(&line) {
                    out.push(line);
                }
            }
        }
        out
    }
}

impl Ctx<'_, '_> {
    fn finding(&self, term: Term, stamp: &mut [u32], id: u32) -> Finding {
        let g = self.g;
        let seeds: Vec<Node> = match term {
            Term::Thread(t) => vec![t],
            Term::Cycle(c) => self.comps[c].clone(),
        };
        // Reverse search: every thread with a path of waits to the seeds.
        let mut queue: VecDeque<Node> = VecDeque::new();
        for &s in &seeds {
            stamp[s] = id;
            queue.push_back(s);
        }
        let mut blocked: Vec<Node> = Vec::new();
        while let Some(v) = queue.pop_front() {
            if g.is_thread(v) && term != Term::Thread(v) {
                blocked.push(v);
            }
            for &p in g.pred(v) {
                if stamp[p] != id {
                    stamp[p] = id;
                    queue.push_back(p);
                }
            }
        }
        let secs = |v: Node| g.seconds[v];
        let max_wait = blocked
            .iter()
            .filter_map(|&v| secs(v))
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
        let total_wait: f64 = blocked.iter().filter_map(|&v| secs(v)).sum();

        let mut per_pid: HashMap<u64, usize> = HashMap::new();
        for &v in &blocked {
            if let Some(t) = g.thread(v) {
                *per_pid.entry(t.pid).or_default() += 1;
            }
        }
        let mut blocked_processes: Vec<BlockedProcess> = per_pid
            .into_iter()
            .map(|(pid, threads)| BlockedProcess {
                name: g.process_name(pid).unwrap_or("?").to_string(),
                pid,
                threads,
            })
            .collect();
        blocked_processes.sort_by(|a, b| b.threads.cmp(&a.threads).then(a.pid.cmp(&b.pid)));

        let mut table = blocked.clone();
        table.sort_by(|&a, &b| {
            let ka = secs(a).unwrap_or(-1.0);
            let kb = secs(b).unwrap_or(-1.0);
            kb.total_cmp(&ka)
                .then(g.thread_key[a].cmp(&g.thread_key[b]))
        });
        let threads_truncated = table.len() > self.opts.max_threads_per_finding;
        table.truncate(self.opts.max_threads_per_finding);
        let threads = table.iter().map(|&v| self.summary_of(v)).collect();

        let mut f = Finding {
            blocked_threads: blocked.len(),
            blocked_processes,
            max_wait_seconds: max_wait,
            total_wait_seconds: total_wait,
            threads,
            threads_truncated,
            ..Finding::empty(FindingKind::Contention)
        };
        match term {
            Term::Cycle(c) => self.fill_cycle(&mut f, c),
            Term::Thread(t) => self.fill_chain(&mut f, t),
        }
        f.evidence_warnings = self.suspects.of_chain(&f.chain);
        f
    }

    fn fill_cycle(&self, f: &mut Finding, c: usize) {
        let g = self.g;
        let members = &self.comps[c];
        let in_comp = |v: Node| self.comp[v] == c;
        // Start at the resource with the lowest address, for stable output.
        let start = members
            .iter()
            .copied()
            .filter(|&v| !g.is_thread(v))
            .min_by_key(|&v| g.key(v))
            .unwrap_or(members[0]);
        // Shortest way around the cycle back to the start.
        let mut parent: HashMap<Node, Node> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        let mut seen: HashSet<Node> = HashSet::from([start]);
        'bfs: while let Some(v) = queue.pop_front() {
            for &w in g.succ(v) {
                if w == start {
                    last = Some(v);
                    break 'bfs;
                }
                if in_comp(w) && seen.insert(w) {
                    parent.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        let mut path = Vec::new();
        let mut cur = last;
        while let Some(v) = cur {
            path.push(v);
            if v == start || path.len() > members.len() {
                break;
            }
            cur = parent.get(&v).copied();
        }
        path.reverse();
        f.chain = self.steps_for_path(&path, MIDDLE_FRAMES);
        f.chain.push(EvidenceStep::CycleBack {
            address: Addr(g.key(start)),
        });

        // Every edge inside the cycle.
        let mut edges = Vec::new();
        'edges: for &w in members.iter().filter(|&&v| g.is_thread(v)) {
            for &r in g.succ(w).iter().filter(|&&r| in_comp(r)) {
                for (&o, &m) in g.succ(r).iter().zip(g.succ_modes(r)) {
                    if !in_comp(o) {
                        continue;
                    }
                    if edges.len() >= self.opts.max_edges_per_finding {
                        f.edges_truncated = true;
                        break 'edges;
                    }
                    edges.push(self.edge(w, r, o, m));
                }
            }
        }
        edges.sort_by_key(|e| (e.resource, e.waiter, e.owner));
        f.edges = edges;

        let threads: Vec<Node> = members
            .iter()
            .copied()
            .filter(|&v| g.is_thread(v))
            .collect();
        let resources: Vec<Node> = members
            .iter()
            .copied()
            .filter(|&v| !g.is_thread(v))
            .collect();
        let mut names: Vec<String> = resources
            .iter()
            .take(3)
            .map(|&r| self.resource_label(r))
            .collect();
        if resources.len() > 3 {
            names.push(format!("{} more", resources.len() - 3));
        }
        let cycle_wait = threads
            .iter()
            .filter_map(|&v| g.seconds[v])
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.min(s))));
        f.kind = FindingKind::Deadlock;
        f.why = format!(
            "a cycle of {} threads and {} resources: each waits on a resource held by the next, so none can proceed{}",
            threads.len(),
            resources.len(),
            cycle_wait.map_or(String::new(), |s| format!(
                "; every thread in the cycle has waited at least {}",
                secs_text(s)
            ))
        );
        f.summary = format!(
            "Deadlock: {} threads wait on each other in a cycle over {} ({}), blocking {} threads{} for up to {}.",
            threads.len(),
            plural(resources.len(), "resource"),
            names.join(", "),
            f.blocked_threads,
            procs_text(&f.blocked_processes),
            f.max_wait_seconds.map_or("an unknown time".to_string(), secs_text),
        );
    }

    fn fill_chain(&self, f: &mut Finding, t: Node) {
        let g = self.g;
        // Walk back from the final owner along the branch with the most
        // waiters behind it, until the waiters have nobody behind them.
        let mut path = vec![t];
        let mut on_path: HashSet<Node> = HashSet::from([t]);
        let mut cur = t;
        for _ in 0..g.len() {
            let pick = g
                .pred(cur)
                .iter()
                .copied()
                .filter(|p| !on_path.contains(p))
                .max_by_key(|&p| {
                    (
                        self.upstream[p] + u64::from(g.is_thread(p)),
                        std::cmp::Reverse(p),
                    )
                });
            let Some(p) = pick else { break };
            let weight = self.upstream[p];
            if g.is_thread(cur) && weight == 0 {
                // The owner's resources have no waiters.
                break;
            }
            if !g.is_thread(cur) && weight == 0 {
                // cur is a resource whose waiters are leaves: the head.
                break;
            }
            path.push(p);
            on_path.insert(p);
            cur = p;
        }
        path.reverse();
        let mut chain = self.steps_for_path(&path, MIDDLE_FRAMES);
        // The final owner keeps more frames.
        if let Some(EvidenceStep::Thread { stack, .. }) = chain.last_mut() {
            if let Some(th) = g.thread(t) {
                *stack = th
                    .stack
                    .iter()
                    .take(self.opts.stack_frames)
                    .cloned()
                    .collect();
            }
        }

        // Chain edges: the waiters of each resource on the path.
        let mut edges = Vec::new();
        'edges: for pair in path.windows(2) {
            let (r, o) = (pair[0], pair[1]);
            if g.is_thread(r) {
                continue;
            }
            let mode = mode_of(g, r, o);
            for &w in g.pred(r) {
                if edges.len() >= self.opts.max_edges_per_finding {
                    f.edges_truncated = true;
                    break 'edges;
                }
                edges.push(self.edge(w, r, o, mode));
            }
        }
        f.edges = edges;

        // What the final owner is doing: unowned waits, then its I/O.
        let unowned: Vec<Node> = g
            .succ(t)
            .iter()
            .copied()
            .filter(|&r| g.succ(r).is_empty())
            .collect();
        for &r in unowned.iter().take(3) {
            chain.push(self.resource_step(r, None));
        }
        let ios = g.thread(t).map(|t| t.io.as_slice()).unwrap_or_default();
        f.owner_io = ios.iter().map(IoSummary::from).collect();
        let primary = ios
            .iter()
            .find(|io| io.file.as_deref().is_some_and(|p| !p.is_empty()))
            .or(ios.first());
        if let Some(io) = primary {
            chain.push(EvidenceStep::Irp {
                address: io.irp,
                major: io.major.clone(),
                device: io.device.clone(),
            });
            if let Some(d) = &io.driver {
                chain.push(EvidenceStep::Driver { name: d.clone() });
            }
            if io.file.is_some() || io.file_object.is_some() {
                chain.push(EvidenceStep::File {
                    address: io.file_object,
                    path: io.file.clone().unwrap_or_default(),
                });
            }
            if let Some(path) = io.file.as_deref() {
                if let Some(dir) = directory_of(path) {
                    let files = self.dirs.files_in_dir_of(path);
                    chain.push(EvidenceStep::Directory {
                        path: dir.to_string(),
                        files,
                        hot: files >= self.opts.hot_dir_min_files,
                    });
                    for h in self
                        .dirs
                        .holders_of_dir_of(path, &g.proc_name)
                        .into_iter()
                        .take(3)
                    {
                        chain.push(EvidenceStep::Process {
                            name: h.name,
                            pid: h.pid,
                            files: h.files,
                        });
                    }
                }
            }
        }
        f.chain = chain;
        f.final_owner = Some(Addr(g.thread_key[t]));
        self.classify(f, t, &path, &unowned, primary);
    }

    fn classify(
        &self,
        f: &mut Finding,
        t: Node,
        path: &[Node],
        unowned: &[Node],
        io: Option<&crate::Io>,
    ) {
        let g = self.g;
        let o = self.opts;
        let w = f.max_wait_seconds;
        let own = g.seconds[t];
        let th = g.thread(t);
        let owner = self.thread_label(t);
        let head = path
            .iter()
            .find(|&&v| !g.is_thread(v))
            .map_or_else(|| "its resources".to_string(), |&r| self.resource_label(r));
        let waited = w.map_or("an unknown time".to_string(), secs_text);
        let procs = procs_text(&f.blocked_processes);
        let io_text = io.map_or(String::new(), |io| {
            let mut s = format!(
                "; its pending I/O is {}",
                io.major.as_deref().unwrap_or("an IRP")
            );
            if let Some(p) = &io.file {
                s += &format!(" on {p}");
            }
            if let Some(d) = &io.driver {
                s += &format!(" in {d}");
            }
            s
        });
        let n = f.blocked_threads;
        let runs = g.runs(t);
        let state_text = match th.map(|t| &t.state) {
            Some(ThreadState::Running { cpu }) => format!("is running on CPU {cpu}"),
            Some(ThreadState::Ready) => "is ready to run".to_string(),
            Some(ThreadState::Waiting) => match (unowned.first(), own) {
                (Some(&r), Some(s)) => format!(
                    "has itself waited {} on {} that no thread owns",
                    secs_text(s),
                    self.resource_label(r)
                ),
                (Some(&r), None) => {
                    format!("waits on {} that no thread owns", self.resource_label(r))
                }
                (None, Some(s)) => format!(
                    "has itself waited {}{}",
                    secs_text(s),
                    th.and_then(|t| t.wait_reason.as_deref())
                        .map_or(String::new(), |r| format!(" ({r})"))
                ),
                (None, None) => "is waiting".to_string(),
            },
            Some(ThreadState::Other { name }) => format!("is in state {name}"),
            None => "is missing from the thread list".to_string(),
        };
        let young = o.young_wait_seconds;
        let stuck = o.stuck_wait_seconds;
        if runs {
            match w {
                Some(x) if x < young => {
                    f.kind = FindingKind::BusyOwner;
                    f.why = format!(
                        "the waiters have waited at most {} (< {} s) and the final owner {}: it releases the lock now and then; the system is slow, not frozen",
                        secs_text(x),
                        young,
                        state_text
                    );
                    f.summary = format!(
                        "{} on {head} for at most {waited} behind {owner}, which {state_text}: a busy owner, not a deadlock{io_text}.",
                        threads_text(n, &procs)
                    );
                    return;
                }
                Some(x) if x >= stuck => {
                    f.kind = FindingKind::Stuck;
                    f.why = format!(
                        "the final owner {state_text} but the waiters have waited up to {} (>= {} s): it holds the lock without releasing it (a loop or livelock)",
                        secs_text(x),
                        stuck
                    );
                    f.summary = format!(
                        "{} on {head} for up to {waited} behind {owner}, which {state_text} without releasing it: stuck{io_text}.",
                        threads_text(n, &procs)
                    );
                    return;
                }
                Some(x) => {
                    f.why = format!(
                        "the final owner {state_text}; the waiters' longest wait {} is between the young ({} s) and stuck ({} s) thresholds",
                        secs_text(x),
                        young,
                        stuck
                    );
                }
                None => {
                    f.why = format!(
                        "the final owner {state_text} but the waiters' wait times are unknown, so busy and stuck cannot be told apart"
                    );
                }
            }
        } else {
            let worst = match (w, own) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(x) = worst.filter(|&x| x >= stuck) {
                f.kind = FindingKind::Stuck;
                f.why = format!(
                    "no cycle, but waits of up to {} (>= {} s) behind a final owner that {state_text}",
                    secs_text(x),
                    stuck
                );
                f.summary = format!(
                    "{} on {head} for up to {waited} behind {owner}, which {state_text}: stuck, not a deadlock{io_text}.",
                    threads_text(n, &procs)
                );
                return;
            }
            f.why =
                format!(
                "the final owner {state_text}; no wait reaches the stuck threshold ({stuck} s){}",
                if worst.is_none() { " (wait times unknown)" } else { "" }
            );
        }
        f.kind = FindingKind::Contention;
        f.summary = format!(
            "{} on {head} for up to {waited} held by {owner}, which {state_text}: contention{io_text}.",
            threads_text(n, &procs)
        );
    }

    /// Evidence steps for a path alternating resources and threads.
    fn steps_for_path(&self, path: &[Node], frames: usize) -> Vec<EvidenceStep> {
        let g = self.g;
        path.iter()
            .enumerate()
            .map(|(i, &v)| {
                if g.is_thread(v) {
                    self.thread_step(v, frames)
                } else {
                    let next = path.get(i + 1).copied().or_else(|| {
                        // The cycle closes: the next owner is the first thread.
                        path.iter().copied().find(|&x| g.is_thread(x))
                    });
                    self.resource_step(v, next.map(|o| mode_of(g, v, o)))
                }
            })
            .collect()
    }

    fn resource_step(&self, r: Node, held_as: Option<Mode>) -> EvidenceStep {
        let g = self.g;
        let res = g.resource(r);
        EvidenceStep::Resource {
            address: Addr(res.key),
            kind: kind_name(&res.kind),
            name: res.name.clone(),
            owners: g.succ(r).len(),
            waiters: g.pred(r).len(),
            held_as,
            contention_count: res.contention_count,
            max_wait_seconds: g
                .pred(r)
                .iter()
                .filter_map(|&w| g.seconds[w])
                .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s)))),
        }
    }

    fn thread_step(&self, v: Node, frames: usize) -> EvidenceStep {
        let g = self.g;
        let th = g.thread(v);
        EvidenceStep::Thread {
            address: Addr(g.thread_key[v]),
            tid: th.map(|t| t.tid),
            pid: th.map(|t| t.pid),
            process: th.and_then(|t| g.process_name(t.pid)).map(str::to_string),
            state: state_name(th.map(|t| &t.state)),
            cpu: match th.map(|t| &t.state) {
                Some(ThreadState::Running { cpu }) => Some(*cpu),
                _ => None,
            },
            wait_reason: th.and_then(|t| t.wait_reason.clone()),
            waited_seconds: g.seconds[v],
            stack: th
                .map(|t| t.stack.iter().take(frames).cloned().collect())
                .unwrap_or_default(),
        }
    }

    fn summary_of(&self, v: Node) -> ThreadSummary {
        let g = self.g;
        let th = g.thread(v);
        ThreadSummary {
            address: Addr(g.thread_key[v]),
            tid: th.map(|t| t.tid),
            pid: th.map(|t| t.pid),
            process: th.and_then(|t| g.process_name(t.pid)).map(str::to_string),
            state: state_name(th.map(|t| &t.state)),
            wait_reason: th.and_then(|t| t.wait_reason.clone()),
            waited_seconds: g.seconds[v],
            waits_on: g
                .succ(v)
                .iter()
                .filter(|&&r| !g.succ(r).is_empty())
                .map(|&r| Addr(g.key(r)))
                .collect(),
        }
    }

    fn edge(&self, w: Node, r: Node, o: Node, m: Mode) -> WaitEdge {
        let g = self.g;
        WaitEdge {
            waiter: Addr(g.thread_key[w]),
            waiter_tid: g.thread(w).map(|t| t.tid),
            resource: Addr(g.key(r)),
            owner: Addr(g.thread_key[o]),
            owner_tid: g.thread(o).map(|t| t.tid),
            held_as: m,
            waited_seconds: g.seconds[w],
        }
    }

    fn thread_label(&self, v: Node) -> String {
        let g = self.g;
        match g.thread(v) {
            Some(t) => format!(
                "thread {} (tid {}) of {} (pid {})",
                Addr(t.key).windbg(),
                t.tid,
                g.process_name(t.pid).unwrap_or("?"),
                t.pid
            ),
            None => format!("thread {}", Addr(g.thread_key[v]).windbg()),
        }
    }

    fn resource_label(&self, r: Node) -> String {
        let res = self.g.resource(r);
        let kind = match &res.kind {
            ResourceKind::Eresource => "ERESOURCE".to_string(),
            ResourceKind::Mutant => "Mutant".to_string(),
            ResourceKind::Event => "Event".to_string(),
            ResourceKind::Semaphore => "Semaphore".to_string(),
            ResourceKind::Other(s) => kind_title(s),
            ResourceKind::AlpcMessage => "ALPC message".to_string(),
        };
        match &res.name {
            Some(n) if !n.is_empty() => format!("{kind} {} ({n})", Addr(res.key).windbg()),
            _ => format!("{kind} {}", Addr(res.key).windbg()),
        }
    }
}

fn mode_of(g: &Graph<'_>, r: Node, o: Node) -> Mode {
    g.succ(r)
        .iter()
        .zip(g.succ_modes(r))
        .find(|(&x, _)| x == o)
        .map_or(Mode::Exclusive, |(_, &m)| m)
}

/// The name of a resource kind as it appears in JSON (`eresource`).
pub fn kind_name(k: &ResourceKind) -> String {
    match k {
        ResourceKind::Eresource => "eresource".into(),
        ResourceKind::Mutant => "mutant".into(),
        ResourceKind::Event => "event".into(),
        ResourceKind::Semaphore => "semaphore".into(),
        ResourceKind::Other(s) => s.clone(),
        ResourceKind::AlpcMessage => "alpc_message".into(),
    }
}

/// Whether a resource kind's owners are an inference rather than the
/// lock's own record: a push lock records no owner, so the kernel model
/// names candidates (threads whose stacks keep its address).
pub fn owners_inferred(kind: &str) -> bool {
    kind == "push_lock"
}

/// A resource kind as WinDbg users write it (`ERESOURCE`, `Mutant`).
pub fn kind_title(kind: &str) -> String {
    match kind {
        "eresource" => "ERESOURCE".into(),
        "mutant" => "Mutant".into(),
        "event" => "Event".into(),
        "semaphore" => "Semaphore".into(),
        "alpc_message" => "ALPC message".into(),
        "fast_mutex" => "FAST_MUTEX".into(),
        "push_lock" => "EX_PUSH_LOCK".into(),
        "guarded_mutex" => "KGUARDED_MUTEX".into(),
        other => other.to_string(),
    }
}

/// The name of a thread state (`running`), `unknown` for a missing thread.
pub fn state_name(s: Option<&ThreadState>) -> String {
    match s {
        Some(ThreadState::Running { .. }) => "running".into(),
        Some(ThreadState::Ready) => "ready".into(),
        Some(ThreadState::Waiting) => "waiting".into(),
        Some(ThreadState::Other { name }) => name.clone(),
        None => "unknown".into(),
    }
}

/// Seconds for a sentence: `1.2 s`, `600 s`.
pub fn secs_text(s: f64) -> String {
    if s < 100.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The subject of a summary with its verb: `1 thread (a.exe) waits`,
/// `9 threads (a.exe, b.exe) wait`.
fn threads_text(n: usize, procs: &str) -> String {
    if n == 1 {
        format!("1 thread{procs} waits")
    } else {
        format!("{n} threads{procs} wait")
    }
}

/// Image names for a summary, most blocked threads first, at most
/// [`SUMMARY_NAMES`]: ` (php-cgi.exe, w3wp.exe and 2 more)`.
fn procs_text(p: &[BlockedProcess]) -> String {
    let mut by_name: Vec<(&str, usize)> = Vec::new();
    for bp in p {
        match by_name.iter_mut().find(|(n, _)| *n == bp.name) {
            Some((_, c)) => *c += bp.threads,
            None => by_name.push((&bp.name, bp.threads)),
        }
    }
    if by_name.is_empty() {
        return String::new();
    }
    // Stable: equal counts keep the PID order of `p`.
    by_name.sort_by_key(|&(_, c)| std::cmp::Reverse(c));
    let shown: Vec<&str> = by_name
        .iter()
        .take(SUMMARY_NAMES)
        .map(|(n, _)| *n)
        .collect();
    let rest = by_name.len() - shown.len();
    if rest > 0 {
        format!(" ({} and {rest} more)", shown.join(", "))
    } else {
        format!(" ({})", shown.join(", "))
    }
}

/// The drawable subgraph: each finding's chain and edges; leaf waiters of a
/// resource are drawn as one node.
fn graph_view(findings: &[Finding], max_nodes: usize) -> GraphView {
    let mut view = GraphView::default();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut edge_ids: HashSet<(String, String)> = HashSet::new();
    let mut add_node = |view: &mut GraphView, node: GraphNode| -> bool {
        if ids.contains_key(&node.id) {
            return true;
        }
        if view.nodes.len() >= max_nodes {
            view.truncated = true;
            return false;
        }
        ids.insert(node.id.clone(), view.nodes.len());
        view.nodes.push(node);
        true
    };
    let mut add_edge =
        |view: &mut GraphView, from: &str, to: &str, kind: &str, label: Option<String>| {
            if edge_ids.insert((from.to_string(), to.to_string())) {
                view.edges.push(GraphEdge {
                    from: from.to_string(),
                    to: to.to_string(),
                    kind: kind.to_string(),
                    label,
                });
            }
        };
    for f in findings {
        let mut on_chain: HashSet<Addr> = HashSet::new();
        let mut prev: Option<String> = None;
        let mut last_thread: Option<String> = None;
        let mut prev_inferred = false;
        for step in &f.chain {
            if let EvidenceStep::CycleBack { address } = step {
                if let Some(p) = &prev {
                    add_edge(&mut view, p, &format!("r:{address}"), "waits_on", None);
                }
                continue;
            }
            let Some((id, node)) = chain_node(f, step, &mut on_chain) else {
                continue;
            };
            if !add_node(&mut view, node) {
                break;
            }
            // Drawn in the direction of blocking: resource -> owner, thread
            // -> resource it waits on, final owner -> file of its I/O.
            if id.starts_with("f:") {
                if let Some(t) = &last_thread {
                    add_edge(&mut view, t, &id, "io", None);
                }
            } else if let Some(p) = &prev {
                let kind = if p.starts_with("r:") {
                    "owned_by"
                } else {
                    "waits_on"
                };
                // An owner the lock does not record is drawn as a guess.
                let label = (kind == "owned_by" && prev_inferred).then(|| "inferred".to_string());
                add_edge(&mut view, p, &id, kind, label);
            }
            prev_inferred =
                matches!(step, EvidenceStep::Resource { kind, .. } if owners_inferred(kind));
            if id.starts_with("t:") {
                last_thread = Some(id.clone());
            }
            prev = Some(id);
        }
        for (res, (count, max)) in leaf_waiters(f, &on_chain) {
            let id = format!("w:{res}");
            let node = GraphNode {
                id: id.clone(),
                kind: NodeKind::Waiters,
                label: plural(count, "waiter"),
                detail: max.map_or("wait unknown".to_string(), |s| {
                    format!("up to {}", secs_text(s))
                }),
                finding: Some(f.rank),
                culprit: false,
            };
            if add_node(&mut view, node) {
                add_edge(&mut view, &id, &format!("r:{res}"), "waits_on", None);
            }
        }
    }
    view
}

/// The graph node for one step of a finding's chain (threads, resources
/// and files are drawn; the rest is text), with its id; marks threads and
/// resources as on the chain.
fn chain_node(
    f: &Finding,
    step: &EvidenceStep,
    on_chain: &mut HashSet<Addr>,
) -> Option<(String, GraphNode)> {
    let culprit_cycle = f.kind == FindingKind::Deadlock;
    Some(match step {
        EvidenceStep::Resource {
            address,
            kind,
            owners,
            waiters,
            ..
        } => {
            on_chain.insert(*address);
            (
                format!("r:{address}"),
                GraphNode {
                    id: format!("r:{address}"),
                    kind: NodeKind::Resource,
                    label: format!("{} {}", kind_title(kind), address.windbg()),
                    detail: format!("{owners} owner(s), {waiters} waiter(s)"),
                    finding: Some(f.rank),
                    culprit: culprit_cycle,
                },
            )
        }
        EvidenceStep::Thread {
            address,
            tid,
            process,
            state,
            waited_seconds,
            ..
        } => {
            on_chain.insert(*address);
            let culprit = culprit_cycle || f.final_owner == Some(*address);
            (
                format!("t:{address}"),
                GraphNode {
                    id: format!("t:{address}"),
                    kind: NodeKind::Thread,
                    label: format!(
                        "{} tid {}",
                        process.as_deref().unwrap_or("?"),
                        tid.map_or("?".to_string(), |t| t.to_string())
                    ),
                    detail: match waited_seconds {
                        Some(s) => format!("{state}, {}", secs_text(*s)),
                        None => state.clone(),
                    },
                    finding: Some(f.rank),
                    culprit,
                },
            )
        }
        EvidenceStep::File { path, .. } => (
            format!("f:{}", path.to_lowercase()),
            GraphNode {
                id: format!("f:{}", path.to_lowercase()),
                kind: NodeKind::File,
                label: path.rsplit('\\').next().unwrap_or(path).to_string(),
                detail: path.clone(),
                finding: Some(f.rank),
                culprit: false,
            },
        ),
        _ => return None,
    })
}

/// Leaf waiters, one node per resource: the resource's waiters that
/// are not on the chain (the thread before it on the chain waits on
/// it, and so does the last thread of a cycle on the first), with their
/// count and longest wait, resources in address order.
fn leaf_waiters(f: &Finding, on_chain: &HashSet<Addr>) -> Vec<(Addr, (usize, Option<f64>))> {
    let mut edge_max: HashMap<Addr, f64> = HashMap::new();
    for e in &f.edges {
        if on_chain.contains(&e.waiter) {
            continue;
        }
        if let Some(s) = e.waited_seconds {
            let m = edge_max.entry(e.resource).or_insert(s);
            *m = m.max(s);
        }
    }
    let closes = matches!(f.chain.last(), Some(EvidenceStep::CycleBack { .. }));
    let mut leaf: HashMap<Addr, (usize, Option<f64>)> = HashMap::new();
    for (i, step) in f.chain.iter().enumerate() {
        let EvidenceStep::Resource {
            address,
            waiters,
            max_wait_seconds,
            ..
        } = step
        else {
            continue;
        };
        let before = i > 0 && matches!(f.chain[i - 1], EvidenceStep::Thread { .. });
        let on = usize::from(before) + usize::from(closes && i == 0);
        let count = waiters.saturating_sub(on);
        if count > 0 {
            let max = edge_max.get(address).copied().or(*max_wait_seconds);
            leaf.insert(*address, (count, max));
        }
    }
    let mut leaf: Vec<_> = leaf.into_iter().collect();
    leaf.sort_by_key(|(a, _)| *a);
    leaf
}
