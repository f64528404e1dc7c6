//! The wait-for graph as a bipartite graph over threads and resources.
//!
//! Edges: thread -> resource it waits on; resource -> thread that owns it.
//! A cycle here is a cycle of the thread-level wait-for graph, but the
//! bipartite form keeps the edge count at the number of claims (a resource
//! with 1000 waiters and 50 shared owners costs 1050 edges, not 50 000).

use std::collections::HashMap;

use crate::{Mode, ThreadState, WaitGraphInput};

/// Longest plausible wait, seconds (about 317 years); more is corrupt.
pub(crate) const MAX_WAIT_SECONDS: f64 = 1e10;

/// A wait time as the input gave it, kept only if plausible: finite, not
/// negative, and at most [`MAX_WAIT_SECONDS`] (above ~300 years a wait is a
/// misread tick count). Microseconds are far below the tick; rounding to
/// them keeps the JSON short.
pub(crate) fn plausible_seconds(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && (0.0..=MAX_WAIT_SECONDS).contains(v))
        .map(|v| (v * 1e6).round() / 1e6)
}

/// Node ids: threads are `0..n_threads`, resources follow.
pub(crate) type Node = usize;

/// The indexed input.
#[derive(Debug)]
pub(crate) struct Graph<'a> {
    pub input: &'a WaitGraphInput,
    /// Number of thread nodes (input threads plus phantoms).
    pub n_threads: usize,
    /// Input index of each thread node; `None` for a phantom (a key named
    /// by a claim but missing from the thread list).
    pub thread_src: Vec<Option<usize>>,
    /// Key of each thread node.
    pub thread_key: Vec<u64>,
    /// Input index of each resource node (node `n_threads + i`).
    pub res_src: Vec<usize>,
    /// Out-edges in CSR form.
    pub out_start: Vec<usize>,
    /// Out-edge targets.
    pub out: Vec<Node>,
    /// For resource -> owner edges, how the owner holds it (parallel to
    /// `out`; meaningless for thread -> resource edges).
    pub out_mode: Vec<Mode>,
    /// In-edges in CSR form.
    pub in_start: Vec<usize>,
    /// In-edge sources.
    pub inn: Vec<Node>,
    /// Sanitised waited seconds per thread node.
    pub seconds: Vec<Option<f64>>,
    /// Process names by PID.
    pub proc_name: HashMap<u64, &'a str>,
}

impl<'a> Graph<'a> {
    /// Index the input; problems go to `warnings`.
    pub fn build(input: &'a WaitGraphInput, warnings: &mut Vec<String>) -> Graph<'a> {
        let mut thread_ix: HashMap<u64, usize> = HashMap::with_capacity(input.threads.len());
        let mut thread_src = Vec::with_capacity(input.threads.len());
        let mut thread_key = Vec::with_capacity(input.threads.len());
        let mut dup_threads = 0usize;
        for (i, t) in input.threads.iter().enumerate() {
            if thread_ix.contains_key(&t.key) {
                dup_threads += 1;
                continue;
            }
            thread_ix.insert(t.key, thread_src.len());
            thread_src.push(Some(i));
            thread_key.push(t.key);
        }
        if dup_threads > 0 {
            warnings.push(format!(
                "{dup_threads} thread entries repeat a thread address already listed; the first entry of each was used"
            ));
        }

        // Resources, deduplicated by key.
        let mut res_seen: HashMap<u64, ()> = HashMap::with_capacity(input.resources.len());
        let mut res_src = Vec::with_capacity(input.resources.len());
        let mut dup_res = 0usize;
        for (i, r) in input.resources.iter().enumerate() {
            if res_seen.insert(r.key, ()).is_some() {
                dup_res += 1;
                continue;
            }
            res_src.push(i);
        }
        if dup_res > 0 {
            warnings.push(format!(
                "{dup_res} resource entries repeat a resource address already listed; the first entry of each was used"
            ));
        }

        // Phantom threads for dangling claims.
        // The first few are named (thread and resource addresses) so that a
        // reader can go and look; the count covers the rest.
        const NAMED_PHANTOMS: usize = 8;
        let mut phantoms = 0usize;
        let mut named: Vec<String> = Vec::new();
        for &ri in &res_src {
            let r = &input.resources[ri];
            for c in r.owners.iter().chain(r.waiters.iter()) {
                if let std::collections::hash_map::Entry::Vacant(e) = thread_ix.entry(c.thread) {
                    e.insert(thread_src.len());
                    thread_src.push(None);
                    thread_key.push(c.thread);
                    phantoms += 1;
                    if named.len() < NAMED_PHANTOMS {
                        named.push(format!("thread {:#x} of resource {:#x}", c.thread, r.key));
                    }
                }
            }
        }
        if phantoms > 0 {
            let more = if phantoms > named.len() {
                format!(" and {} more", phantoms - named.len())
            } else {
                String::new()
            };
            warnings.push(format!(
                "{phantoms} threads are named as owner or waiter of a resource but are missing from the thread list (dangling or unreadable): {}{more}; they are kept with state unknown",
                named.join(", ")
            ));
        }
        let n_threads = thread_src.len();
        let n = n_threads + res_src.len();

        // Edges, deduplicated per resource.
        let mut edges: Vec<(Node, Node, Mode)> = Vec::new();
        let mut self_waits = 0usize;
        for (j, &ri) in res_src.iter().enumerate() {
            let rnode = n_threads + j;
            let r = &input.resources[ri];
            let mut owners: Vec<(Node, Mode)> = r
                .owners
                .iter()
                .map(|c| (thread_ix[&c.thread], c.mode))
                .collect();
            // Exclusive sorts after shared: keep the strongest claim.
            owners.sort_by_key(|&(t, m)| (t, m == Mode::Exclusive));
            owners.reverse();
            owners.dedup_by_key(|&mut (t, _)| t);
            let mut waiters: Vec<Node> = r.waiters.iter().map(|c| thread_ix[&c.thread]).collect();
            waiters.sort_unstable();
            waiters.dedup();
            for &w in &waiters {
                if owners.iter().any(|&(o, _)| o == w) {
                    self_waits += 1;
                }
                edges.push((w, rnode, Mode::Shared));
            }
            for &(o, m) in owners.iter().rev() {
                edges.push((rnode, o, m));
            }
        }
        if self_waits > 0 {
            warnings.push(format!(
                "{self_waits} threads wait on a resource they own themselves: a self-deadlock, or an inconsistent dump"
            ));
        }

        let (out_start, out, out_mode) = csr(n, edges.iter().map(|&(a, b, m)| (a, b, m)));
        let (in_start, inn, _) = csr(n, edges.iter().map(|&(a, b, m)| (b, a, m)));

        let mut bad_seconds = 0usize;
        let seconds = thread_src
            .iter()
            .map(|s| {
                let v = s.and_then(|i| input.threads[i].waited_seconds)?;
                let sane = plausible_seconds(Some(v));
                bad_seconds += usize::from(sane.is_none());
                sane
            })
            .collect();
        if bad_seconds > 0 {
            warnings.push(format!(
                "{bad_seconds} threads have a wait time that is not a number between 0 and 1e10 seconds; treated as unknown"
            ));
        }

        let mut proc_name = HashMap::with_capacity(input.processes.len());
        for p in &input.processes {
            proc_name.entry(p.pid).or_insert(p.name.as_str());
        }

        Graph {
            input,
            n_threads,
            thread_src,
            thread_key,
            res_src,
            out_start,
            out,
            out_mode,
            in_start,
            inn,
            seconds,
            proc_name,
        }
    }

    /// Total node count.
    pub fn len(&self) -> usize {
        self.out_start.len() - 1
    }

    /// Whether `v` is a thread node.
    pub fn is_thread(&self, v: Node) -> bool {
        v < self.n_threads
    }

    /// Out-neighbours of `v`.
    pub fn succ(&self, v: Node) -> &[Node] {
        &self.out[self.out_start[v]..self.out_start[v + 1]]
    }

    /// Modes parallel to [`Graph::succ`].
    pub fn succ_modes(&self, v: Node) -> &[Mode] {
        &self.out_mode[self.out_start[v]..self.out_start[v + 1]]
    }

    /// In-neighbours of `v`.
    pub fn pred(&self, v: Node) -> &[Node] {
        &self.inn[self.in_start[v]..self.in_start[v + 1]]
    }

    /// The input thread behind a thread node, if not a phantom.
    pub fn thread(&self, v: Node) -> Option<&'a crate::Thread> {
        self.thread_src
            .get(v)
            .copied()
            .flatten()
            .map(|i| &self.input.threads[i])
    }

    /// The input resource behind a resource node.
    pub fn resource(&self, v: Node) -> &'a crate::Resource {
        &self.input.resources[self.res_src[v - self.n_threads]]
    }

    /// Key of any node.
    pub fn key(&self, v: Node) -> u64 {
        if self.is_thread(v) {
            self.thread_key[v]
        } else {
            self.resource(v).key
        }
    }

    /// Whether a thread node is running or ready. A model that knows the
    /// state but not the CPU may say `Other { name: "Running" }`; standby
    /// and deferred-ready threads are about to run.
    pub fn runs(&self, v: Node) -> bool {
        match self.thread(v).map(|t| &t.state) {
            Some(ThreadState::Running { .. } | ThreadState::Ready) => true,
            Some(ThreadState::Other { name }) => {
                let n = name.to_ascii_lowercase();
                n == "running" || n == "standby" || n == "deferredready"
            }
            _ => false,
        }
    }

    /// Process name of a PID.
    pub fn process_name(&self, pid: u64) -> Option<&'a str> {
        self.proc_name.get(&pid).copied()
    }
}

/// Compressed sparse rows from an edge list.
fn csr(
    n: usize,
    edges: impl Iterator<Item = (Node, Node, Mode)> + Clone,
) -> (Vec<usize>, Vec<Node>, Vec<Mode>) {
    let mut start = vec![0usize; n + 1];
    for (a, _, _) in edges.clone() {
        start[a + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let m = start[n];
    let mut fill = start.clone();
    let mut out = vec![0; m];
    let mut modes = vec![Mode::Shared; m];
    for (a, b, md) in edges {
        out[fill[a]] = b;
        modes[fill[a]] = md;
        fill[a] += 1;
    }
    (start, out, modes)
}

/// Strongly connected components, iterative Tarjan: O(V + E), no recursion.
///
/// Returns the component of each node and the components in the order
/// Tarjan finishes them, which is a reverse topological order of the
/// condensation (a component comes after every component it reaches).
pub(crate) fn tarjan(g: &Graph<'_>) -> (Vec<usize>, Vec<Vec<Node>>) {
    const UNSEEN: usize = usize::MAX;
    let n = g.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<Node> = Vec::new();
    let mut comp = vec![UNSEEN; n];
    let mut comps: Vec<Vec<Node>> = Vec::new();
    let mut call: Vec<(Node, usize)> = Vec::new();
    let mut next_index = 0usize;

    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        call.push((root, g.out_start[root]));
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if *pos < g.out_start[v + 1] {
                let w = g.out[*pos];
                *pos += 1;
                if index[w] == UNSEEN {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, g.out_start[w]));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let id = comps.len();
                    let mut members = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp[w] = id;
                        members.push(w);
                        if w == v {
                            break;
                        }
                    }
                    comps.push(members);
                }
            }
        }
    }
    (comp, comps)
}
