//! Text for `alpc`: the threads waiting for an ALPC reply, the way
//! WinDbg's `!thread` words it ("Waiting for reply to ALPC Message ... :
//! queued at port ... : owned by process ..."), then the ports with their
//! queues (`!alpc /p`) and, for an LRPC server's port, its I/O completion
//! queue and the worker threads associated with it, or one thread, port or
//! message.

use crate::windbg::{addr, warnings};
use hangscope_nt::alpc::{AlpcListing, AlpcMessageInfo, AlpcObject, AlpcPortInfo, AlpcWait};
use hangscope_waitgraph::secs_text;
use std::fmt::Write as _;

fn opt_addr(a: Option<hangscope_nt::VirtAddr>) -> String {
    a.map_or("?".into(), addr)
}

fn process(name: &Option<String>, pid: Option<u64>) -> String {
    match (name, pid) {
        (Some(n), Some(p)) => format!("{n} (pid {p})"),
        (None, Some(p)) => format!("pid {p}"),
        (Some(n), None) => n.clone(),
        (None, None) => "?".into(),
    }
}

/// Where a message sits and who took it, two lines.
fn message_lines(out: &mut String, m: &AlpcMessageInfo, indent: &str) {
    let _ = writeln!(
        out,
        "{indent}queued at port {}{} : owned by process {} {}",
        opt_addr(m.queue_port),
        m.port_name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        opt_addr(m.server_process),
        process(&m.server_name, m.server_pid)
    );
    match m.server_thread {
        Some(t) => {
            let _ = writeln!(
                out,
                "{indent}taken by server thread {}{} ({} queue)",
                addr(t),
                m.server_tid
                    .map(|t| format!(" (tid {t})"))
                    .unwrap_or_default(),
                m.queue
            );
        }
        None => {
            let _ = writeln!(
                out,
                "{indent}not taken by any server thread ({} queue)",
                m.queue
            );
        }
    }
}

fn wait_text(out: &mut String, w: &AlpcWait) {
    let _ = writeln!(
        out,
        "THREAD {} Cid {:04x}.{:04x} {}: waited {} for reply to ALPC Message {}",
        addr(w.thread),
        w.pid,
        w.tid,
        w.process_name,
        w.wait_seconds.map_or("?".into(), secs_text),
        addr(w.message.address)
    );
    message_lines(out, &w.message, "    ");
    if !w.blocked {
        let _ = writeln!(
            out,
            "    (the message's WaitingThread is {}, not this thread)",
            opt_addr(w.message.waiting_thread)
        );
    }
}

fn port_line(out: &mut String, p: &AlpcPortInfo) {
    let _ = writeln!(
        out,
        "{} {:<10} {:<28} {:<24} main {:>3}  pending {:>3}  large {:>2}  direct {:>2}  waiting threads {:>2}",
        addr(p.address),
        p.kind,
        p.name.as_deref().unwrap_or("-"),
        process(&p.owner_name, p.owner_pid),
        p.main_queue.len(),
        p.pending_queue.len(),
        p.large_queue.len(),
        p.direct_queue.len(),
        p.waiting_threads.len()
    );
}

/// The completion queue line of a port that has one: its workers, idle
/// (waiting on the queue) and busy (working on a request they took).
fn completion_line(out: &mut String, p: &AlpcPortInfo, indent: &str) {
    let Some(q) = p.completion_port else {
        return;
    };
    match &p.queue_workers {
        Some(w) => {
            let idle = w.iter().filter(|x| x.idle).count();
            let _ = writeln!(
                out,
                "{indent}completion queue {}: {} worker thread(s) associated, {idle} idle, {} busy",
                addr(q),
                w.len(),
                w.len() - idle
            );
        }
        None => {
            let _ = writeln!(
                out,
                "{indent}completion port {} (not read as a queue; see the warnings)",
                addr(q)
            );
        }
    }
}

/// `alpc DUMP`: waiting clients, then connection ports, then a count of
/// the communication ports.
pub fn listing(l: &AlpcListing) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} thread(s) waiting for an ALPC reply", l.waits.len());
    for w in &l.waits {
        wait_text(&mut s, w);
    }
    let conn: Vec<&AlpcPortInfo> = l.ports.iter().filter(|p| p.kind == "connection").collect();
    let _ = writeln!(s, "\n{} connection port(s)", conn.len());
    for p in &conn {
        port_line(&mut s, p);
        completion_line(&mut s, p, "    ");
    }
    let others = l.ports.len() - conn.len();
    let _ = writeln!(
        s,
        "\n{} port(s) on AlpcpPortList ({} connection, {others} communication)",
        l.ports.len(),
        conn.len()
    );
    warnings(&mut s, &l.warnings);
    s
}

/// `alpc DUMP ADDR`: one thread, port or message.
pub fn object(o: &AlpcObject) -> String {
    let mut s = String::new();
    match o {
        AlpcObject::Wait(w) => wait_text(&mut s, w),
        AlpcObject::Port { port, warnings: w } => {
            port_line(&mut s, port);
            let _ = writeln!(
                s,
                "  owner process {}, connection port {}, state {:#x}",
                opt_addr(port.owner_process),
                opt_addr(port.connection_port),
                port.state
            );
            for (name, q) in [
                ("main queue", &port.main_queue),
                ("pending queue", &port.pending_queue),
                ("large message queue", &port.large_queue),
                ("direct queue", &port.direct_queue),
            ] {
                for m in q {
                    let _ = writeln!(s, "  {name}: message {}", addr(*m));
                }
            }
            for t in &port.waiting_threads {
                let _ = writeln!(s, "  waiting for a request: thread {}", addr(*t));
            }
            completion_line(&mut s, port, "  ");
            for w in port.queue_workers.iter().flatten() {
                let _ = writeln!(
                    s,
                    "  registered with the completion queue: thread {}{} {}",
                    addr(w.thread),
                    w.tid.map(|t| format!(" (tid {t})")).unwrap_or_default(),
                    if w.idle {
                        "idle, waiting on the queue (WrQueue)"
                    } else {
                        "busy with a request it took"
                    }
                );
            }
            warnings(&mut s, w);
        }
        AlpcObject::Message(m) => {
            let _ = writeln!(
                s,
                "ALPC Message {}: sequence {}, type {}, from Cid {}.{} (thread {})",
                addr(m.address),
                m.sequence_no,
                m.message_type.map_or("?".into(), |t| format!("{t:#x}")),
                m.client_pid.map_or("?".into(), |p| format!("{p:04x}")),
                m.client_tid.map_or("?".into(), |t| format!("{t:04x}")),
                opt_addr(m.waiting_thread)
            );
            let _ = writeln!(s, "  sent from port {}", opt_addr(m.owner_port));
            message_lines(&mut s, m, "  ");
        }
    }
    s
}
