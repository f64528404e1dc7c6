//! The ground-truth oracle: what a correct analyzer must find in an image,
//! derived from the scenario and from where the builder put each object
//! ([`Placement`]), never from reading the image back.
//!
//! The verdict comes from the scenario's wait-for graph (thread -> lock ->
//! owners): a cycle is a deadlock; a chain ending at a thread that waits
//! on no owned lock is a busy owner (owner running, every wait < 60 s),
//! stuck (a wait >= 60 s) or contention.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::build::{
    parent_dir, set_member_name, AlpcMessageRec, AlpcPortRec, DpcRec, LockRec, ProcRec, ThreadRec,
};
use crate::image::PAGE_SIZE;
use crate::scenario::{FileRef, Index, LockKind, Scenario, ThreadState};
use crate::truth::*;

/// Where the builder put each scenario object, in scenario order: all
/// the oracle needs besides the scenario.
#[derive(Debug)]
pub(crate) struct Placement<'a> {
    pub(crate) sc: &'a Scenario,
    pub(crate) ix: &'a Index,
    /// Kernel facts (addresses, build, CPUs); `cpus` filled by the oracle.
    pub(crate) kernel: KernelTruth,
    /// `(KPCR, KPRCB)` of each CPU.
    pub(crate) kpcrs: &'a [(u64, u64)],
    /// Each CPU's idle thread.
    pub(crate) idle_threads: &'a [u64],
    pub(crate) procs: &'a [ProcRec],
    pub(crate) threads: &'a [ThreadRec],
    pub(crate) locks: &'a [LockRec],
    pub(crate) modules: &'a [ModuleTruth],
    pub(crate) module_pdbs: &'a [ModulePdbTruth],
    /// DEVICE_OBJECT of each scenario device.
    pub(crate) devices: &'a [u64],
    /// FILE_OBJECT of each scenario file.
    pub(crate) files: &'a [u64],
    /// FILE_OBJECTs of each file set's members.
    pub(crate) set_files: &'a [Vec<u64>],
    /// IRP of each scenario IRP.
    pub(crate) irps: &'a [u64],
    /// Every ALPC port the builder made.
    pub(crate) alpc_ports: &'a [AlpcPortRec],
    /// Each scenario ALPC message.
    pub(crate) alpc_messages: &'a [AlpcMessageRec],
    /// Every queued DPC.
    pub(crate) dpcs: &'a [DpcRec],
    /// RAM, bytes.
    pub(crate) ram_size: u64,
    /// The build's table has `_KGUARDED_MUTEX` (7 SP1).
    pub(crate) guarded_mutex_type: bool,
}

/// The wait-graph key of an ALPC message (lock ids cannot contain `:`
/// usefully, scenario ids are free text, so the prefix marks them).
const ALPC_KEY: &str = "alpc:";

impl Placement<'_> {
    fn ethread(&self, id: &str) -> u64 {
        self.threads[self.ix.threads[id]].ethread
    }

    fn file_address(&self, id: &str) -> Option<u64> {
        match self.ix.file(self.sc, id)? {
            FileRef::Single(i) => Some(self.files[i]),
            FileRef::Member(s, n) => Some(self.set_files[s][n as usize]),
        }
    }

    fn device_name(&self, dev_id: &str) -> String {
        let d = &self.sc.devices[self.ix.devices[dev_id]];
        d.name
            .as_ref()
            .map(|n| format!("\\Device\\{n}"))
            .unwrap_or_default()
    }

    /// The address of a lock, or of an ALPC message keyed [`ALPC_KEY`].
    fn lock_address(&self, id: &str) -> u64 {
        match id.strip_prefix(ALPC_KEY) {
            Some(m) => self.alpc_messages[self.ix.alpc_messages[m]].address,
            None => self.locks[self.ix.locks[id]].address,
        }
    }

    fn process_name(&self, ti: usize) -> &str {
        &self.sc.processes[self.ix.pids[&self.sc.threads[ti].pid]].name
    }
}

/// The ground truth of a built image.
pub(crate) fn ground_truth(p: &Placement<'_>) -> GroundTruth {
    let mut t = GroundTruth {
        scenario: p.sc.name.clone(),
        kernel: kernel_truth(p),
        processes: process_truths(p),
        threads: thread_truths(p),
        modules: p.modules.to_vec(),
        module_pdbs: p.module_pdbs.to_vec(),
        ..Default::default()
    };
    lock_truths(p, &mut t);
    let files = file_truths(p);
    t.files = files.clone();
    t.irps = irp_truths(p);
    let by_address: HashMap<u64, FileTruth> = files.into_iter().map(|f| (f.address, f)).collect();
    t.handles = handle_truths(p, &by_address);
    alpc_truths(p, &mut t);
    t.scheduler = scheduler_truths(p);
    t.shared_ready = sorted_ready(
        p,
        (0..p.sc.threads.len()).filter(|&ti| p.threads[ti].on_shared_queue),
    );
    if !t.shared_ready.is_empty() {
        t.shared_ready_cpus = (0..p.sc.cpus.len() as u32).collect();
    }
    t.memory = p.sc.machine.memory.map(|m| MemoryTruth {
        physical_pages: p.ram_size / PAGE_SIZE,
        available_pages: m.available_pages,
        committed_pages: m.committed_pages,
        commit_limit_pages: m.commit_limit_pages,
    });
    t.verdict = verdict(p, &t, &by_address);
    t
}

fn kernel_truth(p: &Placement<'_>) -> KernelTruth {
    let sc = p.sc;
    KernelTruth {
        cpus: p
            .kpcrs
            .iter()
            .enumerate()
            .map(|(i, (kpcr, prcb))| CpuTruth {
                index: i as u32,
                kpcr: *kpcr,
                kprcb: *prcb,
                current_thread: if sc.cpus[i].runs == "idle" {
                    p.idle_threads[i]
                } else {
                    p.ethread(&sc.cpus[i].runs)
                },
            })
            .collect(),
        ..p.kernel.clone()
    }
}

fn process_truths(p: &Placement<'_>) -> Vec<ProcessTruth> {
    p.sc.processes
        .iter()
        .zip(p.procs)
        .map(|(sp, r)| ProcessTruth {
            address: r.eprocess,
            pid: sp.pid,
            ppid: sp.parent,
            name: sp.name.chars().take(15).collect(),
            session: sp.session,
            create_time: r.create_time,
            thread_count: r.threads.len() as u32,
            dtb: r.dtb_pfn * PAGE_SIZE,
        })
        .collect()
}

/// The wait reason a thread's wait has: the scenario's, else the
/// default for the kind of the first object it waits on.
fn wait_reason(sc: &Scenario, ix: &Index, w: &crate::scenario::Wait) -> String {
    w.reason.clone().unwrap_or_else(|| {
        if w.alpc.is_some() {
            return "WrLpcReply".into();
        }
        match sc.locks[ix.locks[&w.on[0]]].kind {
            LockKind::Eresource => "WrResource",
            LockKind::Mutant => "UserRequest",
            LockKind::Fastmutex => "WrFastMutex",
            LockKind::Pushlock => "WrPushLock",
            LockKind::Guardedmutex => "WrGuardedMutex",
            LockKind::Queue => "WrQueue",
            _ => "Executive",
        }
        .into()
    })
}

fn thread_truths(p: &Placement<'_>) -> Vec<ThreadTruth> {
    let m = &p.sc.machine;
    let secs_per_tick = m.max_increment as f64 / 1e7;
    p.sc.threads
        .iter()
        .zip(p.threads)
        .map(|(th, r)| {
            let waiting = th.state == ThreadState::Waiting;
            let ticks = m.tick_count.saturating_sub(r.wait_time);
            ThreadTruth {
                address: r.ethread,
                tid: r.tid,
                pid: th.pid,
                state: match th.state {
                    ThreadState::Running => "Running",
                    ThreadState::Ready => "Ready",
                    ThreadState::Waiting => "Waiting",
                }
                .into(),
                wait_reason: th.wait.as_ref().map(|w| wait_reason(p.sc, p.ix, w)),
                wait_time: r.wait_time,
                wait_ticks: waiting.then_some(ticks),
                wait_seconds: waiting.then_some(ticks as f64 * secs_per_tick),
                cpu: r.cpu,
                waits_on: r.waits_on.clone(),
                irps: r.irps.clone(),
                start_address: r.start,
                stack: r.stack.clone(),
                context_switches: th.counters.map_or(0, |c| c.context_switches.into()),
                kernel_ticks: th.counters.map_or(0, |c| c.kernel_ticks.into()),
                user_ticks: th.counters.map_or(0, |c| c.user_ticks.into()),
            }
        })
        .collect()
}

/// ERESOURCEs into `t.eresources`, the other scenario locks into
/// `t.dispatcher_objects`, in scenario order.
fn lock_truths(p: &Placement<'_>, t: &mut GroundTruth) {
    let sc = p.sc;
    for (i, l) in sc.locks.iter().enumerate() {
        let addr = p.locks[i].address;
        let waiters: Vec<LockParty> = sc
            .threads
            .iter()
            .enumerate()
            .filter(|(_, th)| th.wait.as_ref().is_some_and(|w| w.on.contains(&l.id)))
            .map(|(ti, th)| LockParty {
                thread: p.threads[ti].ethread,
                exclusive: th.wait.as_ref().is_some_and(|w| w.exclusive)
                    || l.kind != LockKind::Eresource,
            })
            .collect();
        match l.kind {
            LockKind::Eresource => {
                let mut owners: Vec<LockParty> = l
                    .owner
                    .iter()
                    .map(|o| LockParty {
                        thread: p.ethread(o),
                        exclusive: true,
                    })
                    .collect();
                owners.extend(l.shared_owners.iter().map(|o| LockParty {
                    thread: p.ethread(o),
                    exclusive: false,
                }));
                let (sh, ex) = sc.resource_waiters(i);
                t.eresources.push(EresourceTruth {
                    address: addr,
                    name: l.id.clone(),
                    active_count: owners.len() as u32,
                    exclusive: l.owner.is_some(),
                    contention_count: l.contention.unwrap_or((sh.len() + ex.len()) as u32 * 3),
                    owners,
                    waiters,
                    shared_waiters: p.locks[i].shared_waiters_obj,
                    shared_wait_events: p.locks[i].shared_wait_events(),
                    exclusive_waiters: p.locks[i].exclusive_waiters_obj,
                });
            }
            LockKind::Pushlock => t.push_locks.push(PushLockTruth {
                address: addr,
                name: l.id.clone(),
                container: p.locks[i].container.clone(),
                owner: l.owner.as_ref().map(|o| p.ethread(o)),
                waiters: p.locks[i]
                    .wake_events
                    .iter()
                    .map(|&(ti, ev)| PushLockWaiterTruth {
                        thread: p.threads[ti].ethread,
                        exclusive: p.sc.threads[ti]
                            .stack
                            .iter()
                            .find(|f| crate::stacks::is_push_lock_acquire(f))
                            .is_some_and(|f| !f.contains("Shared")),
                        wake_event: ev,
                    })
                    .collect(),
            }),
            kind => t.dispatcher_objects.push(DispatcherTruth {
                address: addr,
                name: l.id.clone(),
                kind: match kind {
                    LockKind::Mutant => "Mutant",
                    LockKind::Event => "Event",
                    LockKind::Fastmutex => "FastMutex",
                    // 7 SP1's KGATE mutex; a _FAST_MUTEX on later builds.
                    LockKind::Guardedmutex if p.guarded_mutex_type => "GuardedMutex",
                    LockKind::Guardedmutex => "FastMutex",
                    LockKind::Queue => "Queue",
                    _ => "Semaphore",
                }
                .into(),
                owner: l.owner.as_ref().map(|o| p.ethread(o)),
                waiters: waiters.iter().map(|w| w.thread).collect(),
            }),
        }
    }
}

/// Scenario files, then file set members, with full paths (a relative
/// name is joined to its related files', at most 32 deep).
fn file_truths(p: &Placement<'_>) -> Vec<FileTruth> {
    let sc = p.sc;
    let mut out = Vec::with_capacity(sc.file_count() as usize);
    for (i, f) in sc.files.iter().enumerate() {
        let mut path = f.name.clone();
        let mut cur = f.related.clone();
        let mut guard = 0;
        while let (Some(r), true) = (cur.clone(), guard < 32) {
            let rf = &sc.files[p.ix.files[&r]];
            if !path.starts_with('\\') {
                path = format!("{}\\{}", rf.name.trim_end_matches('\\'), path);
            }
            cur = rf.related.clone();
            guard += 1;
        }
        out.push(FileTruth {
            address: p.files[i],
            name: f.name.clone(),
            path,
            device: p.device_name(&f.device),
        });
    }
    for (si, s) in sc.file_sets.iter().enumerate() {
        for n in 0..s.count {
            let name = set_member_name(&s.pattern, &s.id, n);
            out.push(FileTruth {
                address: p.set_files[si][n as usize],
                name: name.clone(),
                path: name,
                device: p.device_name(&s.device),
            });
        }
    }
    out
}

fn irp_truths(p: &Placement<'_>) -> Vec<IrpTruth> {
    let sc = p.sc;
    sc.irps
        .iter()
        .enumerate()
        .map(|(i, irp)| {
            let n = irp.stack.len() as u32;
            let stack = irp
                .stack
                .iter()
                .map(|s| {
                    let d = &sc.devices[p.ix.devices[&s.device]];
                    IrpStackTruth {
                        major: format!("IRP_MJ_{}", s.major),
                        minor: s.minor,
                        device: p.devices[p.ix.devices[&s.device]],
                        driver: d.driver.clone(),
                        file_object: s.file.as_ref().and_then(|f| p.file_address(f)).unwrap_or(0),
                    }
                })
                .collect();
            IrpTruth {
                address: p.irps[i],
                thread: p.ethread(&irp.thread),
                stack_count: n,
                current_location: n - irp.current as u32,
                stack,
            }
        })
        .collect()
}

/// Every process's handles, named as Volatility's `handles` prints them.
fn handle_truths(p: &Placement<'_>, files: &HashMap<u64, FileTruth>) -> Vec<HandleTruth> {
    let sc = p.sc;
    let type_of = |body: u64| -> (&'static str, String) {
        if let Some(f) = files.get(&body) {
            return ("File", format!("{}{}", f.device, f.name));
        }
        if let Some(pi) = p.procs.iter().position(|r| r.eprocess == body) {
            let sp = &sc.processes[pi];
            let name: String = sp.name.chars().take(14).collect();
            return ("Process", format!("{} Pid {}", name, sp.pid));
        }
        if let Some(ti) = p.threads.iter().position(|x| x.ethread == body) {
            return (
                "Thread",
                format!("Tid {} Pid {}", p.threads[ti].tid, sc.threads[ti].pid),
            );
        }
        if let Some(port) = p.alpc_ports.iter().find(|x| x.address == body) {
            // By its full object name, a root-directory object, as
            // `!handle` prints it; Volatility's `handles` prints only the
            // last component (`truth.alpc_ports[].name`).
            let name = port.name.as_ref().map(|n| format!("\\{n}"));
            return ("ALPC Port", name.unwrap_or_default());
        }
        if let Some(li) = p.locks.iter().position(|x| x.address == body) {
            let k = match sc.locks[li].kind {
                LockKind::Mutant => "Mutant",
                LockKind::Event => "Event",
                LockKind::Queue => "IoCompletion",
                _ => "Semaphore",
            };
            return (k, String::new());
        }
        ("Unknown", String::new())
    };
    let mut out = Vec::new();
    for (sp, r) in sc.processes.iter().zip(p.procs) {
        for &(body, handle, access) in &r.handles {
            let (ty, name) = type_of(body);
            out.push(HandleTruth {
                pid: sp.pid,
                handle,
                object: body,
                type_name: ty.into(),
                access,
                name,
            });
        }
    }
    out
}

/// The scenario's wait-for graph: `edges[t]` = (lock id, owner thread)
/// for each owned lock thread `t` waits on, self-edges left out.
struct WaitGraph {
    edges: Vec<Vec<(String, usize)>>,
}

impl WaitGraph {
    /// Lock waits, and ALPC waits on a message a server thread took
    /// (keyed [`ALPC_KEY`]), each to the threads that hold it.
    fn new(sc: &Scenario, ix: &Index) -> WaitGraph {
        let alpc_server = |ti: usize| -> Option<(String, usize)> {
            let id = sc.threads[ti].wait.as_ref()?.alpc.as_ref()?;
            let m = &sc.alpc_messages[ix.alpc_messages[id]];
            let s = ix.threads[m.server_thread.as_ref()?];
            Some((format!("{ALPC_KEY}{id}"), s))
        };
        let owners_of = |lock: &str| -> Vec<usize> {
            let l = &sc.locks[ix.locks[lock]];
            l.owner
                .iter()
                .chain(l.shared_owners.iter())
                .map(|o| ix.threads[o])
                .collect()
        };
        let edges = (0..sc.threads.len())
            .map(|ti| {
                sc.threads[ti]
                    .wait
                    .iter()
                    .flat_map(|w| w.on.iter())
                    .flat_map(|lk| owners_of(lk).into_iter().map(move |o| (lk.clone(), o)))
                    .chain(alpc_server(ti))
                    .filter(|(_, o)| *o != ti)
                    .collect()
            })
            .collect();
        WaitGraph { edges }
    }

    fn len(&self) -> usize {
        self.edges.len()
    }

    /// Every cycle a depth-first search closes, as (thread, lock it waits
    /// on) pairs; the same set of threads may appear more than once.
    fn cycles(&self) -> Vec<Vec<(usize, String)>> {
        fn dfs(
            u: usize,
            edges: &[Vec<(String, usize)>],
            color: &mut [u8],
            stack: &mut Vec<(usize, String)>,
            cycles: &mut Vec<Vec<(usize, String)>>,
        ) {
            color[u] = 1;
            for (lk, v) in &edges[u] {
                stack.push((u, lk.clone()));
                if color[*v] == 1 {
                    if let Some(pos) = stack.iter().position(|(x, _)| x == v) {
                        cycles.push(stack[pos..].to_vec());
                    }
                } else if color[*v] == 0 {
                    dfs(*v, edges, color, stack, cycles);
                }
                stack.pop();
            }
            color[u] = 2;
        }
        let mut color = vec![0u8; self.len()];
        let mut stack = Vec::new();
        let mut cycles = Vec::new();
        for u in 0..self.len() {
            if color[u] == 0 {
                dfs(u, &self.edges, &mut color, &mut stack, &mut cycles);
            }
        }
        cycles
    }

    /// Threads blocked (transitively) behind `targets`, sorted.
    fn blocked_behind(&self, targets: &HashSet<usize>) -> Vec<usize> {
        let mut out: HashSet<usize> = HashSet::new();
        let mut changed = true;
        while changed {
            changed = false;
            for (u, edges) in self.edges.iter().enumerate() {
                if targets.contains(&u) || out.contains(&u) {
                    continue;
                }
                if edges
                    .iter()
                    .any(|(_, v)| targets.contains(v) || out.contains(v))
                {
                    out.insert(u);
                    changed = true;
                }
            }
        }
        let mut v: Vec<usize> = out.into_iter().collect();
        v.sort();
        v
    }

    /// The longest path of (thread, lock) steps from a thread in
    /// `blocked` to `root`.
    fn longest_chain(&self, blocked: &[usize], root: usize) -> Vec<(usize, String)> {
        let mut best: Vec<(usize, String)> = Vec::new();
        for &b in blocked {
            let mut path = Vec::new();
            let mut cur = b;
            let mut guard = 0;
            while cur != root && guard < self.len() {
                let Some((lk, v)) = self.edges[cur]
                    .iter()
                    .find(|(_, v)| *v == root || blocked.contains(v))
                    .cloned()
                else {
                    break;
                };
                path.push((cur, lk));
                cur = v;
                guard += 1;
            }
            if cur == root && path.len() > best.len() {
                best = path;
            }
        }
        best
    }
}

/// The verdict a correct analyzer reaches, from the scenario's wait
/// graph: thread -> lock -> owners.
fn verdict(p: &Placement<'_>, t: &GroundTruth, files: &HashMap<u64, FileTruth>) -> VerdictTruth {
    let g = WaitGraph::new(p.sc, p.ix);
    let mut in_cycle = vec![false; g.len()];
    let mut findings = deadlock_findings(p, &g, &mut in_cycle);
    let chains = chain_findings(p, &g, &in_cycle, t, files);
    let worst_stuck = chains.iter().any(|f| f.kind == "stuck");
    let any_busy = chains.iter().any(|f| f.kind == "busy_owner");
    let lock_findings = !findings.is_empty() || !chains.is_empty();
    // Threads a lock explains: blocked on an owned lock, or a chain's
    // final owner.
    let mut explained: HashSet<usize> = (0..g.len()).filter(|&u| !g.edges[u].is_empty()).collect();
    explained.extend(
        (0..g.len()).filter(|&u| (0..g.len()).any(|w| g.edges[w].iter().any(|(_, v)| *v == u))),
    );
    findings.extend(chains);
    let alpc = alpc_unanswered_findings(p, t, &mut explained);
    let any_alpc = !alpc.is_empty();
    findings.extend(alpc);
    let starved = cpu_starvation_finding(p, t, &mut explained);
    let any_starved = starved.is_some();
    findings.extend(starved);
    let stuck_io = stuck_io_findings(p, t, &mut explained);
    let any_stuck_io = !stuck_io.is_empty();
    findings.extend(stuck_io);
    let low_memory = low_memory_finding(p, t, &mut explained);
    let any_low_memory = low_memory.is_some();
    findings.extend(low_memory);
    let unexplained = unexplained_finding(p, t, &explained);
    let any_unexplained = unexplained.is_some();
    findings.extend(unexplained);
    let overall = if let Some(e) = &p.sc.expect {
        e.verdict.clone()
    } else if findings.iter().any(|f| f.kind == "deadlock") {
        "deadlock".into()
    } else if any_stuck_io {
        "stuck_io".into()
    } else if worst_stuck || any_alpc || any_starved || any_low_memory {
        "stuck".into()
    } else if any_busy {
        "busy_owner".into()
    } else if lock_findings {
        "contention".into()
    } else if any_unexplained {
        "unexplained".into()
    } else {
        "healthy".into()
    };
    VerdictTruth {
        overall,
        findings,
        hot_directories: hot_directories(p, t, files),
    }
}

/// Seconds a client waits for an ALPC message no server thread has taken
/// before the message is unanswered (the analyzer's young-wait threshold).
const ALPC_UNANSWERED_SECONDS: f64 = 30.0;

/// One finding per server process with messages still on a connection
/// port's main queue (no server thread took them) whose clients have
/// waited at least [`ALPC_UNANSWERED_SECONDS`]: the clients are blocked,
/// the messages are the chain's objects.
fn alpc_unanswered_findings(
    p: &Placement<'_>,
    t: &GroundTruth,
    explained: &mut HashSet<usize>,
) -> Vec<FindingTruth> {
    let sc = p.sc;
    // Per server PID: the clients, their messages and the port workers.
    type Server = (Vec<usize>, Vec<u64>, BTreeSet<u64>);
    let mut by_server: BTreeMap<u64, Server> = BTreeMap::new();
    for (mi, m) in sc.alpc_messages.iter().enumerate() {
        let ti = p.ix.alpc_clients[&mi];
        if m.server_thread.is_some()
            || t.threads[ti].wait_seconds.unwrap_or(0.0) < ALPC_UNANSWERED_SECONDS
        {
            continue;
        }
        let port = &sc.alpc_ports[p.ix.alpc_ports[&m.port]];
        let e = by_server.entry(port.pid).or_default();
        e.0.push(ti);
        e.1.push(p.alpc_messages[mi].address);
        // The port's workers: the threads associated with its completion
        // queue and the server threads of its messages.
        if let Some(q) = &port.completion_port {
            let kq = p.locks[p.ix.locks[q]].address;
            e.2.extend(queue_workers(p, kq, true));
            e.2.extend(queue_workers(p, kq, false));
            e.2.extend(
                sc.alpc_messages
                    .iter()
                    .filter(|x| x.port == m.port)
                    .filter_map(|x| x.server_thread.as_ref())
                    .map(|s| p.ethread(s)),
            );
        }
    }
    by_server
        .into_values()
        .map(|(clients, messages, workers)| {
            explained.extend(clients.iter().copied());
            FindingTruth {
                kind: "alpc_unanswered".into(),
                chain_threads: Vec::new(),
                chain_locks: messages,
                blocked_threads: clients.iter().map(|&x| p.threads[x].ethread).collect(),
                blocked_processes: process_names(p, &clients),
                driver: None,
                directory: None,
                pending_irps: None,
                alpc_workers: workers.into_iter().collect(),
            }
        })
        .collect()
}

/// The scenario index of the queue lock at `q`, if one is there.
fn queue_at(p: &Placement<'_>, q: u64) -> Option<usize> {
    p.locks
        .iter()
        .position(|l| l.address == q)
        .filter(|&li| p.sc.locks[li].kind == LockKind::Queue)
}

/// Threads associated with the queue at `q` (`KTHREAD.Queue`): waiting on
/// it (`idle`), or busy with a packet they took from it, in scenario
/// order.
fn queue_workers(p: &Placement<'_>, q: u64, idle: bool) -> Vec<u64> {
    let Some(li) = queue_at(p, q) else {
        return Vec::new();
    };
    let id = &p.sc.locks[li].id;
    p.sc.threads
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            let waits = t.wait.as_ref().is_some_and(|w| w.on.first() == Some(id));
            if idle {
                waits
            } else {
                !waits && t.queue.as_ref() == Some(id)
            }
        })
        .map(|(ti, _)| p.threads[ti].ethread)
        .collect()
}

/// Every ALPC port and message, in creation and scenario order.
fn alpc_truths(p: &Placement<'_>, t: &mut GroundTruth) {
    let sc = p.sc;
    t.alpc_ports = p
        .alpc_ports
        .iter()
        .map(|r| AlpcPortTruth {
            address: r.address,
            kind: match r.kind {
                1 => "connection",
                2 => "client",
                _ => "server",
            }
            .into(),
            owner_pid: r.pid,
            name: r.name.clone(),
            completion_port: r.completion_port,
            idle_workers: r
                .completion_port
                .map(|q| queue_workers(p, q, true))
                .unwrap_or_default(),
            busy_workers: r
                .completion_port
                .map(|q| queue_workers(p, q, false))
                .unwrap_or_default(),
        })
        .collect();
    t.alpc_messages = sc
        .alpc_messages
        .iter()
        .zip(p.alpc_messages)
        .enumerate()
        .map(|(mi, (m, r))| {
            let port = &sc.alpc_ports[p.ix.alpc_ports[&m.port]];
            AlpcMessageTruth {
                address: r.address,
                client_thread: p.threads[p.ix.alpc_clients[&mi]].ethread,
                client_port: r.client_port,
                server_port: r.server_port,
                connection_port: r.connection_port,
                port_name: port.name.clone(),
                server_pid: port.pid,
                server_thread: m.server_thread.as_ref().map(|s| p.ethread(s)),
                queue: if m.server_thread.is_some() {
                    "pending"
                } else {
                    "main"
                }
                .into(),
            }
        })
        .collect();
}

/// Seconds a request waited at the bottom of its stack before it is stuck
/// I/O, and a kernel wait on nothing owned before it is unexplained.
const STUCK_IO_SECONDS: f64 = 30.0;
const UNEXPLAINED_SECONDS: f64 = 60.0;

/// Wait reasons (`KWAIT_REASON` names) of a thread blocked inside the
/// kernel on its own account: executive waits, paging, pool. Idle threads
/// wait for requests, on queues or for LPC, never with these. The analyzer
/// keeps its own list (`hangscope-waitgraph`'s `io_stall.rs`); the oracle
/// states the rule again on purpose rather than import it, so that a wrong
/// entry there cannot make the truth agree with it.
const KERNEL_WAIT_REASONS: &[&str] = &[
    "Executive",
    "WrExecutive",
    "FreePage",
    "WrFreePage",
    "PageIn",
    "WrPageIn",
    "PoolAllocation",
    "WrPoolAllocation",
    "VirtualMemory",
    "WrVirtualMemory",
    "PageOut",
    "WrPageOut",
    "WrRundown",
];

/// One stuck-I/O finding per device at which an IRP sits at the last
/// location of its stack while a thread (its issuer, or one waiting on
/// its `UserEvent`) has waited at least [`STUCK_IO_SECONDS`] and no lock
/// explains that thread. Counts every IRP pending at the device.
fn stuck_io_findings(
    p: &Placement<'_>,
    t: &GroundTruth,
    explained: &mut HashSet<usize>,
) -> Vec<FindingTruth> {
    let sc = p.sc;
    let secs = |ti: usize| t.threads[ti].wait_seconds.unwrap_or(0.0);
    let at = |irp: &crate::scenario::Irp| irp.stack[irp.current].device.clone();
    // Device id -> (threads stuck there, in first-seen order).
    let mut stuck: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for irp in &sc.irps {
        if irp.current + 1 != irp.stack.len() {
            continue;
        }
        let mut who = vec![p.ix.threads[&irp.thread]];
        if let Some(e) = &irp.event {
            who.extend((0..sc.threads.len()).filter(|&ti| {
                sc.threads[ti]
                    .wait
                    .as_ref()
                    .is_some_and(|w| w.on.iter().any(|o| o == e))
            }));
        }
        for ti in who {
            if sc.threads[ti].state != ThreadState::Waiting
                || explained.contains(&ti)
                || secs(ti) < STUCK_IO_SECONDS
            {
                continue;
            }
            let v = stuck.entry(at(irp)).or_default();
            if !v.contains(&ti) {
                v.push(ti);
            }
        }
    }
    let mut out = Vec::new();
    for (dev, mut ths) in stuck {
        ths.sort_by(|&a, &b| secs(b).total_cmp(&secs(a)));
        let pending = sc.irps.iter().filter(|i| at(i) == dev).count() as u64;
        explained.extend(ths.iter().copied());
        out.push(FindingTruth {
            kind: "stuck_io".into(),
            chain_threads: vec![p.threads[ths[0]].ethread],
            chain_locks: Vec::new(),
            blocked_threads: ths.iter().map(|&x| p.threads[x].ethread).collect(),
            blocked_processes: process_names(p, &ths),
            driver: Some(sc.devices[p.ix.devices[&dev]].driver.clone()),
            directory: None,
            pending_irps: Some(pending),
            alpc_workers: Vec::new(),
        });
    }
    out
}

/// The threads that have waited longer than [`UNEXPLAINED_SECONDS`], for a
/// kernel-internal reason, only on locks nobody owns, with no other finding
/// explaining them: one finding listing them and the objects.
fn unexplained_finding(
    p: &Placement<'_>,
    t: &GroundTruth,
    explained: &HashSet<usize>,
) -> Option<FindingTruth> {
    let sc = p.sc;
    let unowned = |id: &str| {
        let l = &sc.locks[p.ix.locks[id]];
        l.owner.is_none() && l.shared_owners.is_empty()
    };
    let mut ths = Vec::new();
    let mut objs: Vec<u64> = Vec::new();
    for (ti, th) in sc.threads.iter().enumerate() {
        let Some(w) = &th.wait else { continue };
        if th.state != ThreadState::Waiting
            || w.on.is_empty()
            || explained.contains(&ti)
            || t.threads[ti].wait_seconds.unwrap_or(0.0) <= UNEXPLAINED_SECONDS
            || !t.threads[ti]
                .wait_reason
                .as_deref()
                .is_some_and(|r| KERNEL_WAIT_REASONS.contains(&r))
            || !w.on.iter().all(|o| unowned(o))
        {
            continue;
        }
        ths.push(ti);
        for o in &w.on {
            let a = p.lock_address(o);
            if !objs.contains(&a) {
                objs.push(a);
            }
        }
    }
    (!ths.is_empty()).then(|| FindingTruth {
        kind: "unexplained".into(),
        chain_threads: Vec::new(),
        chain_locks: objs,
        blocked_threads: ths.iter().map(|&x| p.threads[x].ethread).collect(),
        blocked_processes: process_names(p, &ths),
        driver: None,
        directory: None,
        pending_irps: None,
        alpc_workers: Vec::new(),
    })
}

/// Seconds a ready thread waited to run before it is starved, and the
/// memory thresholds: available pages below 5% of RAM, commit at 95% of
/// its limit (the analyzer's defaults, stated again here on purpose).
const STARVED_READY_SECONDS: f64 = 5.0;
const LOW_MEMORY_PERCENT: u64 = 5;
const COMMIT_FULL_PERCENT: u64 = 95;

/// Seconds since thread `ti` last changed state (`WaitTime` as written).
fn seconds_since(p: &Placement<'_>, ti: usize) -> f64 {
    let now = p.sc.machine.tick_count;
    let ticks = now.wrapping_sub(p.threads[ti].wait_time) & 0xFFFF_FFFF;
    ticks as f64 * f64::from(p.sc.machine.max_increment) / 1e7
}

/// The threads `ths` (scenario order) as one ready queue reads them:
/// highest priority first, scenario order within a priority.
fn sorted_ready(p: &Placement<'_>, ths: impl Iterator<Item = usize>) -> Vec<ReadyTruth> {
    let mut ready: Vec<(u8, usize, ReadyTruth)> = ths
        .enumerate()
        .map(|(order, ti)| {
            (
                p.threads[ti].priority,
                order,
                ReadyTruth {
                    thread: p.threads[ti].ethread,
                    priority: p.threads[ti].priority,
                    ready_seconds: seconds_since(p, ti),
                    affinity: p.threads[ti].affinity,
                },
            )
        })
        .collect();
    ready.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ready.into_iter().map(|r| r.2).collect()
}

/// Each CPU: what it runs, its ready list, its DPCs.
fn scheduler_truths(p: &Placement<'_>) -> Vec<CpuSchedulerTruth> {
    let sc = p.sc;
    (0..sc.cpus.len())
        .map(|i| {
            let idle = sc.cpus[i].runs == "idle";
            let (current, prio) = if idle {
                (p.idle_threads[i], 9)
            } else {
                let ti = p.ix.threads[&sc.cpus[i].runs];
                (p.threads[ti].ethread, p.threads[ti].priority)
            };
            let ready = sorted_ready(
                p,
                (0..sc.threads.len()).filter(|&ti| {
                    p.threads[ti].ready_on == Some(i as u32) && !p.threads[ti].on_shared_queue
                }),
            );
            let dpcs: Vec<DpcTruth> = p
                .dpcs
                .iter()
                .filter(|d| d.cpu == i as u32)
                .map(|d| DpcTruth {
                    address: d.address,
                    routine: d.routine,
                })
                .collect();
            CpuSchedulerTruth {
                index: i as u32,
                current_thread: current,
                idle,
                current_priority: prio,
                ready,
                dpc_queue_depth: dpcs.len() as u64,
                dpcs,
                dpc_active: sc.dpcs.iter().any(|d| d.cpu == i as u32 && d.active),
            }
        })
        .collect()
}

/// Ready threads that have waited at least [`STARVED_READY_SECONDS`] to
/// run while no CPU they may run on (their affinity) is idle (or an idle
/// one is inside a DPC): one finding, its chain the threads those CPUs run.
fn cpu_starvation_finding(
    p: &Placement<'_>,
    t: &GroundTruth,
    explained: &mut HashSet<usize>,
) -> Option<FindingTruth> {
    let sc = p.sc;
    let idle = t
        .scheduler
        .iter()
        .filter(|c| c.idle && !c.dpc_active)
        .fold(0u64, |m, c| m | 1 << c.index);
    let all = t.scheduler.iter().fold(0u64, |m, c| m | 1 << c.index);
    let mut ths: Vec<usize> = (0..sc.threads.len())
        .filter(|&ti| {
            sc.threads[ti].state == ThreadState::Ready
                && p.threads[ti].ready_on.is_some()
                && !explained.contains(&ti)
                && seconds_since(p, ti) >= STARVED_READY_SECONDS
                && p.threads[ti].affinity & idle == 0
                && p.threads[ti].affinity & all != 0
        })
        .collect();
    if ths.is_empty() {
        return None;
    }
    ths.sort_by(|&a, &b| seconds_since(p, b).total_cmp(&seconds_since(p, a)));
    explained.extend(ths.iter().copied());
    let allowed = ths.iter().fold(0u64, |m, &ti| m | p.threads[ti].affinity);
    Some(FindingTruth {
        kind: "cpu_starvation".into(),
        chain_threads: t
            .scheduler
            .iter()
            .filter(|c| !c.idle && allowed & 1 << c.index != 0)
            .map(|c| c.current_thread)
            .collect(),
        chain_locks: Vec::new(),
        blocked_threads: ths.iter().map(|&x| p.threads[x].ethread).collect(),
        blocked_processes: process_names(p, &ths),
        driver: None,
        directory: None,
        pending_irps: None,
        alpc_workers: Vec::new(),
    })
}

/// Threads waiting for free pages or page-ins that nothing else explains,
/// while available pages are below [`LOW_MEMORY_PERCENT`] of RAM or commit
/// is at [`COMMIT_FULL_PERCENT`] of its limit: one finding.
fn low_memory_finding(
    p: &Placement<'_>,
    t: &GroundTruth,
    explained: &mut HashSet<usize>,
) -> Option<FindingTruth> {
    let m = t.memory?;
    let low = m.available_pages * 100 < m.physical_pages * LOW_MEMORY_PERCENT;
    let full = m.committed_pages * 100 >= m.commit_limit_pages * COMMIT_FULL_PERCENT;
    if !low && !full {
        return None;
    }
    let memory_wait = |r: Option<&str>| {
        matches!(
            r,
            Some("WrFreePage") | Some("FreePage") | Some("WrPageIn") | Some("PageIn")
        )
    };
    let ths: Vec<usize> = (0..p.sc.threads.len())
        .filter(|&ti| {
            p.sc.threads[ti].state == ThreadState::Waiting
                && !explained.contains(&ti)
                && memory_wait(t.threads[ti].wait_reason.as_deref())
        })
        .collect();
    if ths.is_empty() {
        return None;
    }
    explained.extend(ths.iter().copied());
    Some(FindingTruth {
        kind: "low_memory".into(),
        chain_threads: Vec::new(),
        chain_locks: Vec::new(),
        blocked_threads: ths.iter().map(|&x| p.threads[x].ethread).collect(),
        blocked_processes: process_names(p, &ths),
        driver: None,
        directory: None,
        pending_irps: None,
        alpc_workers: Vec::new(),
    })
}

/// The processes of threads `ths`, sorted and deduplicated.
fn process_names(p: &Placement<'_>, ths: &[usize]) -> Vec<String> {
    let mut v: Vec<String> = ths.iter().map(|&x| p.process_name(x).to_string()).collect();
    v.sort();
    v.dedup();
    v
}

/// One deadlock finding per distinct cycle (by its set of threads);
/// marks the cycles' threads in `in_cycle`.
fn deadlock_findings(p: &Placement<'_>, g: &WaitGraph, in_cycle: &mut [bool]) -> Vec<FindingTruth> {
    let mut findings = Vec::new();
    let mut seen_cycles: HashSet<Vec<usize>> = HashSet::new();
    for c in &g.cycles() {
        let mut key: Vec<usize> = c.iter().map(|x| x.0).collect();
        key.sort();
        if !seen_cycles.insert(key) {
            continue;
        }
        for (u, _) in c {
            in_cycle[*u] = true;
        }
        let set: HashSet<usize> = c.iter().map(|x| x.0).collect();
        let blocked = g.blocked_behind(&set);
        findings.push(FindingTruth {
            kind: "deadlock".into(),
            chain_threads: c.iter().map(|x| p.threads[x.0].ethread).collect(),
            chain_locks: c.iter().map(|x| p.lock_address(&x.1)).collect(),
            blocked_threads: blocked.iter().map(|&x| p.threads[x].ethread).collect(),
            blocked_processes: process_names(p, &blocked),
            driver: None,
            directory: None,
            pending_irps: None,
            alpc_workers: Vec::new(),
        });
    }
    findings
}

/// One finding per chain ending at a thread outside any cycle that waits
/// on no owned lock but has threads blocked behind it.
fn chain_findings(
    p: &Placement<'_>,
    g: &WaitGraph,
    in_cycle: &[bool],
    t: &GroundTruth,
    files: &HashMap<u64, FileTruth>,
) -> Vec<FindingTruth> {
    let n = g.len();
    let secs = |ti: usize| t.threads[ti].wait_seconds.unwrap_or(0.0);
    let roots: Vec<usize> = (0..n)
        .filter(|&u| !in_cycle[u] && g.edges[u].is_empty())
        .filter(|&u| (0..n).any(|w| g.edges[w].iter().any(|(_, v)| *v == u)))
        .collect();
    let mut findings = Vec::new();
    for r in roots {
        let set: HashSet<usize> = [r].into_iter().collect();
        let blocked = g.blocked_behind(&set);
        if blocked.iter().all(|&b| in_cycle[b]) {
            continue;
        }
        let best = g.longest_chain(&blocked, r);
        let mut chain_threads: Vec<u64> = best.iter().map(|x| p.threads[x.0].ethread).collect();
        chain_threads.push(p.threads[r].ethread);
        let chain_locks = best.iter().map(|x| p.lock_address(&x.1)).collect();
        let oldest = blocked.iter().map(|&b| secs(b)).fold(0.0, f64::max);
        let running = p.sc.threads[r].state == ThreadState::Running;
        let kind = if running && oldest < 60.0 {
            "busy_owner"
        } else if oldest >= 60.0 {
            "stuck"
        } else {
            "contention"
        };
        let (driver, directory) = owner_io(p.threads[r].irps.first(), t, files);
        findings.push(FindingTruth {
            kind: kind.into(),
            chain_threads,
            chain_locks,
            blocked_threads: blocked.iter().map(|&x| p.threads[x].ethread).collect(),
            blocked_processes: process_names(p, &blocked),
            driver,
            directory,
            pending_irps: None,
            alpc_workers: Vec::new(),
        });
    }
    findings
}

/// The driver and directory of an owner's first IRP's current stack
/// location.
fn owner_io(
    irp: Option<&u64>,
    t: &GroundTruth,
    files: &HashMap<u64, FileTruth>,
) -> (Option<String>, Option<String>) {
    let Some(it) = irp.and_then(|a| t.irps.iter().find(|x| x.address == *a)) else {
        return (None, None);
    };
    let idx = (it.stack_count - it.current_location) as usize;
    match it.stack.get(idx) {
        Some(s) => (
            Some(s.driver.clone()),
            files.get(&s.file_object).map(|f| parent_dir(&f.path)),
        ),
        None => (None, None),
    }
}

/// Directories with at least 100 file objects, with the processes
/// holding handles there, most files first.
fn hot_directories(
    p: &Placement<'_>,
    t: &GroundTruth,
    files: &HashMap<u64, FileTruth>,
) -> Vec<HotDirTruth> {
    let mut dirs: BTreeMap<String, u64> = BTreeMap::new();
    for f in &t.files {
        *dirs.entry(parent_dir(&f.path)).or_default() += 1;
    }
    let mut hot: Vec<HotDirTruth> = dirs
        .into_iter()
        .filter(|(_, c)| *c >= 100)
        .map(|(path, file_count)| {
            let mut by_proc: BTreeMap<String, u64> = BTreeMap::new();
            for h in &t.handles {
                if let Some(f) = files.get(&h.object) {
                    if parent_dir(&f.path) == path {
                        let pn = &p.sc.processes[p.ix.pids[&h.pid]].name;
                        *by_proc.entry(pn.clone()).or_default() += 1;
                    }
                }
            }
            HotDirTruth {
                path,
                file_count,
                processes: by_proc.into_iter().collect(),
            }
        })
        .collect();
    hot.sort_by_key(|h| std::cmp::Reverse(h.file_count));
    hot
}
