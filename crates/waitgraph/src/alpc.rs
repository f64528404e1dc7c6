//! ALPC requests nobody has taken.
//!
//! A request a server thread took is an ordinary edge of the wait-for
//! graph (client -> message -> server thread), so the lock analysis
//! follows it across processes. A request still on its port's queue has no
//! owner, and the lock analysis cannot see why its client waits: no thread
//! of the server was free to take it. When the client has waited at least
//! `young_wait_seconds`, that is this module's finding, one per server
//! process, with what the server's workers wait on.
//!
//! The workers are the ports' own when the input names them
//! ([`crate::AlpcPort`]: on Windows an LRPC server's threads associated
//! with the port's I/O completion queue). Then a worker idle on the queue
//! while requests stay queued is told apart: the requests were not
//! delivered to the workers, a different problem from workers all busy.
//! Without them every waiting thread of the server process is counted,
//! and the finding says so.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::analyze::{plural, secs_text};
use crate::io_stall::{by_wait, waited, Ctx};
use crate::verdict::*;
use crate::{
    PortWorker, ResourceKey, ResourceKind, Thread, ThreadKey, ThreadState, WaitGraphInput,
};

/// Messages and ports named per finding.
const MAX_LISTED: usize = 64;

/// What one server process has waiting on its queues.
#[derive(Default)]
struct Server<'a> {
    clients: Vec<&'a Thread>,
    messages: Vec<(Addr, f64)>,
    ports: Vec<String>,
    /// The ports the messages were sent to, by address.
    port_keys: Vec<Addr>,
}

/// One finding per server process whose requests sit on a queue, taken by
/// no thread, while their clients have waited at least
/// `young_wait_seconds`; the clients are added to `explained`.
pub(crate) fn unanswered_findings(
    input: &WaitGraphInput,
    opts: &AnalyzeOptions,
    explained: &mut HashSet<ThreadKey>,
) -> Vec<Finding> {
    if input.alpc.is_empty() {
        return Vec::new();
    }
    let ctx = Ctx::new(input, opts);
    let threads: HashMap<ThreadKey, &Thread> = input.threads.iter().map(|t| (t.key, t)).collect();
    // Resources that are messages with a waiter, by key.
    let messages: HashSet<ResourceKey> = input
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::AlpcMessage)
        .map(|r| r.key)
        .collect();
    let mut servers: BTreeMap<Option<u64>, Server<'_>> = BTreeMap::new();
    for m in &input.alpc {
        if m.server_thread.is_some() || !messages.contains(&m.message.0) {
            continue;
        }
        let Some(client) = threads.get(&m.client).copied() else {
            continue;
        };
        let Some(w) = waited(client).filter(|&w| w >= opts.young_wait_seconds) else {
            continue;
        };
        if client.state != ThreadState::Waiting || explained.contains(&client.key) {
            continue;
        }
        let s = servers.entry(m.server_pid).or_default();
        if !s.clients.iter().any(|c| c.key == client.key) {
            s.clients.push(client);
        }
        s.messages.push((m.message, w));
        let port = m
            .port_name
            .clone()
            .or_else(|| m.port.map(|p| p.windbg()))
            .unwrap_or_else(|| "an unknown port".into());
        if !s.ports.contains(&port) {
            s.ports.push(port);
        }
        if let Some(p) = m.port {
            if !s.port_keys.contains(&p) {
                s.port_keys.push(p);
            }
        }
    }
    servers
        .into_iter()
        .map(|(pid, s)| finding(input, &ctx, pid, s, explained))
        .collect()
}

/// The resources each thread waits on that someone owns, and their owners.
fn owned_waits(input: &WaitGraphInput) -> HashMap<ThreadKey, Vec<(ResourceKey, ThreadKey)>> {
    let mut m: HashMap<ThreadKey, Vec<(ResourceKey, ThreadKey)>> = HashMap::new();
    for r in &input.resources {
        let Some(owner) = r.owners.first() else {
            continue;
        };
        for w in &r.waiters {
            m.entry(w.thread).or_default().push((r.key, owner.thread));
        }
    }
    m
}

fn finding(
    input: &WaitGraphInput,
    ctx: &Ctx<'_>,
    pid: Option<u64>,
    mut s: Server<'_>,
    explained: &mut HashSet<ThreadKey>,
) -> Finding {
    s.clients.sort_by(by_wait);
    s.messages
        .sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    s.messages.truncate(MAX_LISTED);
    s.ports.truncate(MAX_LISTED);
    explained.extend(s.clients.iter().map(|t| t.key));
    let server_name = pid.and_then(|p| {
        input
            .processes
            .iter()
            .find(|x| x.pid == p)
            .map(|x| x.name.clone())
    });
    // What the server's workers wait on: were they free, they would have
    // taken the requests. The ports' own workers when the input names
    // them, else every waiting thread of the server.
    let owned = owned_waits(input);
    let mut port_workers: Vec<PortWorker> = Vec::new();
    let mut seen: HashSet<ThreadKey> = HashSet::new();
    let mut from_ports = false;
    let port_keys: HashSet<Addr> = s.port_keys.iter().copied().collect();
    for p in input
        .alpc_ports
        .iter()
        .filter(|p| port_keys.contains(&p.port))
    {
        from_ports = true;
        port_workers.extend(p.workers.iter().filter(|w| seen.insert(w.thread)));
    }
    let by_key: HashMap<ThreadKey, &Thread> = input.threads.iter().map(|t| (t.key, t)).collect();
    let (workers, idle): (Vec<&Thread>, Vec<&Thread>) = if from_ports {
        let all: Vec<(&Thread, bool)> = port_workers
            .iter()
            .filter_map(|w| by_key.get(&w.thread).map(|&t| (t, w.idle)))
            .collect();
        let idle = all
            .iter()
            .filter(|(t, i)| *i && t.state == ThreadState::Waiting)
            .map(|(t, _)| *t)
            .collect();
        (all.into_iter().map(|(t, _)| t).collect(), idle)
    } else {
        let all = input
            .threads
            .iter()
            .filter(|t| Some(t.pid) == pid && t.state == ThreadState::Waiting)
            .collect();
        (all, Vec::new())
    };
    let idle_now: HashSet<ThreadKey> = idle.iter().map(|t| t.key).collect();
    let mut on: BTreeMap<ResourceKey, (usize, ThreadKey)> = BTreeMap::new();
    let mut blocked = 0usize;
    for t in workers.iter().filter(|t| !idle_now.contains(&t.key)) {
        if let Some(v) = owned.get(&t.key) {
            blocked += 1;
            for &(r, o) in v {
                on.entry(r).or_insert((0, o)).0 += 1;
            }
        }
    }
    let top = on
        .iter()
        .max_by_key(|(&r, &(n, _))| (n, std::cmp::Reverse(r)))
        .map(|(&r, &(n, o))| (r, n, o));
    let resource = |key: ResourceKey| input.resources.iter().find(|r| r.key == key);

    let mut f = Finding::empty(FindingKind::AlpcUnanswered);
    f.blocked_threads = s.clients.len();
    f.blocked_processes = ctx.processes(&s.clients);
    f.max_wait_seconds = s.clients.first().and_then(|t| waited(t));
    f.total_wait_seconds = s.clients.iter().filter_map(|t| waited(t)).sum();
    let (listed, cut) = ctx.threads_listed(&s.clients);
    f.threads = listed;
    f.threads_truncated = cut;
    for t in s.clients.iter().take(3) {
        f.chain.push(ctx.thread_step(t));
    }
    for &(m, w) in s.messages.iter().take(3) {
        f.chain.push(EvidenceStep::Resource {
            address: m,
            kind: "alpc_message".into(),
            name: resource(m.0).and_then(|r| r.name.clone()),
            owners: 0,
            waiters: 1,
            held_as: None,
            contention_count: None,
            max_wait_seconds: Some(w),
        });
    }
    let who = match (&server_name, pid) {
        (Some(n), Some(p)) => format!("{n} (pid {p})"),
        (None, Some(p)) => format!("process {p}"),
        _ => "the server".to_string(),
    };
    let queue_where = if s.port_keys.len() > 1 {
        "the ports' completion queues"
    } else {
        "the port's completion queue"
    };
    // "worker threads on the port's completion queue", or the process's
    // waiting threads.
    let workers_text = |n: usize| {
        if from_ports {
            format!("{} on {queue_where}", plural(n, "worker thread"))
        } else {
            plural(n, "waiting thread")
        }
    };
    let mut blocked_text = if from_ports && workers.is_empty() {
        format!("it has no worker thread on {queue_where}")
    } else {
        format!("none of its {} took them", workers_text(workers.len()))
    };
    let mut top_text = None;
    if let Some((r, n, o)) = top {
        let res = resource(r);
        let label = match res {
            Some(x) => format!(
                "{} {}{}",
                crate::analyze::kind_title(&crate::analyze::kind_name(&x.kind)),
                Addr(r).windbg(),
                x.name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
            None => Addr(r).windbg(),
        };
        let owner = input.threads.iter().find(|t| t.key == o);
        let owner_text = match owner {
            Some(t) => format!(
                " held by thread {} (tid {}) of {}",
                Addr(o).windbg(),
                t.tid,
                ctx.process_name(t.pid)
            ),
            None => format!(" held by thread {}", Addr(o).windbg()),
        };
        // The owner of the lock its workers wait on is no free worker
        // either: it is where they are stuck.
        let owners_here = workers
            .iter()
            .filter(|t| res.is_some_and(|x| x.owners.iter().any(|c| c.thread == t.key)))
            .count();
        top_text = Some(format!("{n} on {label}{owner_text}"));
        blocked_text = if idle.is_empty() && n == blocked && blocked + owners_here == workers.len()
        {
            if from_ports {
                format!(
                    "its {} {} blocked on {label}{owner_text}",
                    workers_text(blocked),
                    if blocked == 1 { "is" } else { "are all" }
                )
            } else {
                format!(
                    "its {} worker thread(s) are all blocked on {label}{owner_text}",
                    blocked
                )
            }
        } else {
            format!(
                "{blocked} of its {} are blocked, {n} on {label}{owner_text}",
                workers_text(workers.len())
            )
        };
        if let Some(x) = res {
            f.chain.push(EvidenceStep::Resource {
                address: Addr(r),
                kind: crate::analyze::kind_name(&x.kind),
                name: x.name.clone(),
                owners: x.owners.len(),
                waiters: x.waiters.len(),
                held_as: x.owners.first().map(|c| c.mode),
                contention_count: x.contention_count,
                max_wait_seconds: None,
            });
        }
        if let Some(t) = owner {
            f.chain.push(ctx.thread_step(t));
        }
    }
    if !idle.is_empty() {
        // Requests queued while a worker waits for one: they did not reach
        // the workers (not delivered to the completion queue).
        blocked_text = format!(
            "{} of its {} sit idle waiting for a request while the requests stay queued: the requests were not delivered to the workers, a different problem from a server whose workers are all busy{}",
            idle.len(),
            workers_text(workers.len()),
            top_text
                .map(|t| format!(" ({blocked} blocked, {t})"))
                .unwrap_or_default()
        );
    } else if !from_ports {
        blocked_text += " (the ports' own workers are not known: every waiting thread of the server is counted)";
    }
    f.alpc = Some(AlpcUnanswered {
        server_pid: pid,
        server_process: server_name,
        ports: s.ports.clone(),
        messages: s.messages.iter().map(|m| m.0).collect(),
        server_waiting_threads: workers.len(),
        server_blocked_threads: blocked,
        server_idle_workers: idle.len(),
        workers_from_ports: from_ports,
        blocked_on: top.map(|t| Addr(t.0)),
        blocked_on_owner: top.map(|t| Addr(t.2)),
    });
    let n = s.messages.len();
    f.summary = format!(
        "{who} has {} on {} that no server thread has taken, the oldest waited for {}; {blocked_text}.",
        plural(n, "unanswered ALPC message"),
        s.ports.join(", "),
        f.max_wait_seconds.map_or("an unknown time".into(), secs_text),
    );
    f.why = format!(
        "{} (WrLpcReply) for replies to requests still on the port's queue after at least {} s: {}",
        match s.clients.len() {
            1 => "1 client thread waits".to_string(),
            n => format!("{n} client threads wait"),
        },
        ctx.young_wait_seconds(),
        if idle.is_empty() {
            "no server thread was free to take them".to_string()
        } else {
            format!(
                "{} sat idle on the port's own queue all the same, so the requests never reached them",
                plural(idle.len(), "worker thread")
            )
        }
    );
    f
}

#[cfg(test)]
mod tests {
    use crate::*;

    const PORT: u64 = 0xffff_8000_0000_5000;
    const MESSAGE: u64 = 0xffff_8000_0000_6000;
    const LOCK: u64 = 0xffff_8000_0000_7000;
    const QUEUE: u64 = 0xffff_8000_0000_8000;
    const EVENT: u64 = 0xffff_8000_0000_9000;
    const CLIENT: u64 = 0x10;
    const BUSY: [u64; 2] = [0x20, 0x24];
    const OWNER: u64 = 0x28;
    const IDLE: u64 = 0x2c;
    const OTHER: u64 = 0x30;

    fn thread(key: u64, pid: u64, secs: f64, reason: &str) -> Thread {
        Thread {
            key,
            tid: key,
            pid,
            state: ThreadState::Waiting,
            wait_reason: Some(reason.into()),
            waited_seconds: Some(secs),
            waited_ticks: None,
            stack: vec![],
            io: vec![],
            user_mode_wait: false,
            warnings: vec![],
        }
    }

    fn resource(key: u64, kind: ResourceKind, owner: Option<u64>, waiters: &[u64]) -> Resource {
        let claim = |thread| Claim {
            thread,
            mode: Mode::Exclusive,
        };
        Resource {
            key,
            kind,
            name: None,
            owners: owner.into_iter().map(claim).collect(),
            waiters: waiters.iter().copied().map(claim).collect(),
            contention_count: None,
            warnings: vec![],
        }
    }

    /// lsass (532) with two workers blocked on an ERESOURCE whose owner
    /// waits on an event, a thread idle for 900 s on a completion queue
    /// (`WrQueue`), another waiting on an event of its own; a client of
    /// pid 820 whose request sits on the port's queue for 250 s.
    /// `workers`: the port's workers the input names (none: unknown).
    fn server(workers: Option<&[(u64, bool)]>) -> WaitGraphInput {
        let process = |pid, name: &str| Process {
            pid,
            name: name.into(),
            ..Process::default()
        };
        WaitGraphInput {
            processes: vec![process(532, "lsass.exe"), process(820, "svchost.exe")],
            threads: vec![
                thread(CLIENT, 820, 250.0, "WrLpcReply"),
                thread(BUSY[0], 532, 297.0, "WrResource"),
                thread(BUSY[1], 532, 281.0, "WrResource"),
                thread(OWNER, 532, 305.0, "Executive"),
                thread(IDLE, 532, 900.0, "WrQueue"),
                thread(OTHER, 532, 330.0, "UserRequest"),
            ],
            resources: vec![
                resource(MESSAGE, ResourceKind::AlpcMessage, None, &[CLIENT]),
                resource(LOCK, ResourceKind::Eresource, Some(OWNER), &BUSY),
                resource(EVENT, ResourceKind::Event, None, &[OWNER, OTHER]),
                resource(QUEUE, ResourceKind::Other("Queue".into()), None, &[IDLE]),
            ],
            alpc: vec![AlpcMessage {
                message: Addr(MESSAGE),
                client: CLIENT,
                port: Some(Addr(PORT)),
                port_name: Some("LsaAuthenticationPort".into()),
                server_pid: Some(532),
                server_thread: None,
            }],
            alpc_ports: workers
                .map(|w| AlpcPort {
                    port: Addr(PORT),
                    name: Some("LsaAuthenticationPort".into()),
                    server_pid: Some(532),
                    workers: w
                        .iter()
                        .map(|&(thread, idle)| PortWorker { thread, idle })
                        .collect(),
                })
                .into_iter()
                .collect(),
            ..WaitGraphInput::default()
        }
    }

    fn unanswered(v: &Verdict) -> &Finding {
        v.findings
            .iter()
            .find(|f| f.kind == FindingKind::AlpcUnanswered)
            .expect("an alpc_unanswered finding")
    }

    /// No finding names the idle worker, and none is unexplained.
    fn idle_worker_is_no_finding(v: &Verdict) {
        for f in &v.findings {
            assert!(
                !f.threads.iter().any(|t| t.address.0 == IDLE),
                "{:?} names the idle worker: {}",
                f.kind,
                f.summary
            );
            assert_ne!(f.kind, FindingKind::Unexplained, "{}", f.summary);
        }
    }

    #[test]
    fn counts_the_ports_own_workers() {
        let v = analyze(
            &server(Some(&[(BUSY[0], false), (BUSY[1], false)])),
            &AnalyzeOptions::default(),
        );
        let f = unanswered(&v);
        assert!(
            f.summary.contains(
                "its 2 worker threads on the port's completion queue are all blocked on ERESOURCE"
            ),
            "{}",
            f.summary
        );
        let a = f.alpc.as_ref().expect("alpc");
        assert!(a.workers_from_ports);
        assert_eq!(
            (
                a.server_waiting_threads,
                a.server_blocked_threads,
                a.server_idle_workers
            ),
            (2, 2, 0)
        );
        assert_eq!(a.blocked_on, Some(Addr(LOCK)));
        assert_eq!(a.blocked_on_owner, Some(Addr(OWNER)));
        idle_worker_is_no_finding(&v);
    }

    #[test]
    fn an_idle_worker_means_the_requests_were_not_delivered() {
        let v = analyze(
            &server(Some(&[(BUSY[0], false), (BUSY[1], false), (IDLE, true)])),
            &AnalyzeOptions::default(),
        );
        let f = unanswered(&v);
        assert!(
            f.summary.contains(
                "1 of its 3 worker threads on the port's completion queue sit idle waiting for a request"
            ) && f.summary.contains("were not delivered"),
            "{}",
            f.summary
        );
        assert!(f.why.contains("never reached them"), "{}", f.why);
        let a = f.alpc.as_ref().expect("alpc");
        assert_eq!((a.server_idle_workers, a.server_blocked_threads), (1, 2));
        idle_worker_is_no_finding(&v);
    }

    #[test]
    fn without_the_ports_workers_every_waiting_thread_counts() {
        let v = analyze(&server(None), &AnalyzeOptions::default());
        let f = unanswered(&v);
        let a = f.alpc.as_ref().expect("alpc");
        assert!(!a.workers_from_ports);
        assert_eq!((a.server_waiting_threads, a.server_blocked_threads), (5, 2));
        assert!(
            f.summary
                .contains("2 of its 5 waiting threads are blocked, 2 on ERESOURCE")
                && f.summary
                    .contains("every waiting thread of the server is counted"),
            "{}",
            f.summary
        );
        idle_worker_is_no_finding(&v);
    }
}
