//! ALPC: ports on `AlpcpPortList`, the messages on their queues, and the
//! threads waiting for a reply (WinDbg's `!alpc /p`, `!alpc /m`, and the
//! `!thread` line "Waiting for reply to ALPC Message ... queued at port
//! ... owned by process ...").
//!
//! The facts this follows are gathered, with how sure each is, in
//! `../shared/docs/windows-alpc.md`:
//!
//! - A client waiting for a reply waits `WrLpcReply` on its own
//!   `_ETHREAD.AlpcWaitSemaphore`; `_ETHREAD.AlpcMessage` is the raw
//!   `_KALPC_MESSAGE*` (no tag bits), and the kernel counts the thread as
//!   blocked by it only while `_KALPC_MESSAGE.WaitingThread` names the
//!   thread back.
//! - The message's `PortQueue` is the port whose queue holds it (the
//!   connection port), its `OwnerProcess` the server;
//!   `ServerThread` is the server thread that took it, 0 before.
//!   `u1.s1.QueueType`: 1 main, 2 large, 3 pending, 4 direct (Windows 7's
//!   numbering is inferred, not verified).
//! - `_ALPC_PORT.u1.s1.Type`: 1 connection, 2 client communication, 3
//!   server communication. `OwnerProcess` with bit 0 set means none.
//! - An LRPC server associates its connection port with an I/O completion
//!   object: `_ALPC_PORT.CompletionPort` is that object's body, a
//!   `_KQUEUE` (Windows 11's table types the field so; the others say
//!   `void*`), whose `Header.Type` is the build's `QueueObject`. Its
//!   workers wait `WrQueue` on it (`!alpc /p`: "registered with port IO
//!   completion object"). A thread that removed a packet from a queue
//!   keeps `_KTHREAD.Queue` pointing at it, and stays linked into
//!   `_KQUEUE.ThreadListHead` through `_KTHREAD.QueueListEntry`, while it
//!   works on the request (the kernel lowers the queue's `CurrentCount`
//!   through that link when the worker blocks): so the port's workers are
//!   the threads associated with its queue, idle or busy. That a busy
//!   worker stays associated while blocked elsewhere is inferred from how
//!   the kernel uses the fields, not verified on a real dump.
//!
//! Fields read: `_ETHREAD.{AlpcMessage, AlpcWaitSemaphore,
//! AlpcWaitListEntry}`, `_KALPC_MESSAGE.{Entry, PortQueue, OwnerPort,
//! WaitingThread, ConnectionPort, ServerThread, SequenceNo,
//! u1.s1.QueueType, PortMessage}`, `_PORT_MESSAGE.{u2.s2.Type, ClientId,
//! MessageId}`, `_ALPC_PORT.{PortListEntry, CommunicationInfo,
//! OwnerProcess, MainQueue, LargeMessageQueue, PendingQueue, DirectQueue,
//! WaitQueue, MainQueueLength, PendingQueueLength, u1.s1.Type,
//! CompletionPort}`, `_ALPC_COMMUNICATION_INFO.ConnectionPort`,
//! `_KQUEUE.{Header.Type, ThreadListHead}`, `_KTHREAD.{Queue,
//! QueueListEntry}`; the symbol `AlpcpPortList`. Windows 7 and 8.1 have no
//! `DirectQueue`: the walk leaves it out there. Every other field exists
//! on all eight shared tables (`docs/windows-structures.md`).

use crate::error::{Result, Warning};
use crate::kernel::Kernel;
use crate::model::*;
use hangscope_x64::VirtAddr;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// Most ports walked on `AlpcpPortList`.
pub const MAX_PORTS: usize = 1 << 18;
/// Most messages walked on one queue.
pub const MAX_QUEUE: usize = 1 << 16;
/// Most threads walked on one `_KQUEUE.ThreadListHead`.
pub const MAX_QUEUE_THREADS: usize = 1 << 14;
/// `_ALPC_PORT.OwnerProcess` bit 0: no owner.
const OWNER_NONE_BIT: u64 = 1;

/// What kind of port `_ALPC_PORT.u1.s1.Type` says it is.
pub fn port_kind_name(t: u64) -> String {
    match t {
        1 => "connection".into(),
        2 => "client".into(),
        3 => "server".into(),
        other => format!("unknown({other})"),
    }
}

/// The queue `_KALPC_MESSAGE.u1.s1.QueueType` names.
pub fn queue_name(q: u64) -> String {
    match q {
        0 => "none".into(),
        1 => "main".into(),
        2 => "large".into(),
        3 => "pending".into(),
        4 => "direct".into(),
        other => format!("unknown({other})"),
    }
}

/// An ALPC message (`_KALPC_MESSAGE`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlpcMessageInfo {
    /// Its address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `WaitingThread`: the client blocked for the reply, if any.
    #[serde(with = "hex_opt")]
    pub waiting_thread: Option<VirtAddr>,
    /// `PortMessage.ClientId`: the sender's PID and TID.
    pub client_pid: Option<u64>,
    /// See `client_pid`.
    pub client_tid: Option<u64>,
    /// `OwnerPort`: the port it was sent from.
    #[serde(with = "hex_opt")]
    pub owner_port: Option<VirtAddr>,
    /// `PortQueue`: the port whose queue holds it.
    #[serde(with = "hex_opt")]
    pub queue_port: Option<VirtAddr>,
    /// `ConnectionPort`.
    #[serde(with = "hex_opt")]
    pub connection_port: Option<VirtAddr>,
    /// The connection port's object name.
    pub port_name: Option<String>,
    /// The queue port's owner (the server process).
    #[serde(with = "hex_opt")]
    pub server_process: Option<VirtAddr>,
    /// Its PID.
    pub server_pid: Option<u64>,
    /// Its image name.
    pub server_name: Option<String>,
    /// `ServerThread`: the server thread that took it, if one did.
    #[serde(with = "hex_opt")]
    pub server_thread: Option<VirtAddr>,
    /// That thread's TID.
    pub server_tid: Option<u64>,
    /// `u1.s1.QueueType` by name (`main`, `pending`, ...).
    pub queue: String,
    /// `SequenceNo`.
    pub sequence_no: u64,
    /// `PortMessage.u2.s2.Type` (0x2001: a request awaiting its reply).
    pub message_type: Option<u64>,
    /// `PortMessage.MessageId`.
    pub message_id: Option<u64>,
}

/// A thread associated with a port's I/O completion queue: one of an LRPC
/// server's workers for that port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueWorker {
    /// The thread.
    #[serde(with = "hex")]
    pub thread: VirtAddr,
    /// Its TID, when it is on the thread lists.
    pub tid: Option<u64>,
    /// Waiting `WrQueue` on the queue itself: an idle worker. Otherwise
    /// busy: it took a request and works on it (or is blocked doing so).
    pub idle: bool,
    /// Found on the queue's `ThreadListHead`.
    pub on_thread_list: bool,
    /// Its `Tcb.Queue` names the queue.
    pub tcb_queue: bool,
}

/// An ALPC port (`_ALPC_PORT`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlpcPortInfo {
    /// Its address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// Object name (connection ports have one).
    pub name: Option<String>,
    /// `u1.s1.Type`: `connection`, `client`, `server`.
    pub kind: String,
    /// `u1.State`.
    pub state: u64,
    /// `OwnerProcess`, when set.
    #[serde(with = "hex_opt")]
    pub owner_process: Option<VirtAddr>,
    /// Its PID.
    pub owner_pid: Option<u64>,
    /// Its image name.
    pub owner_name: Option<String>,
    /// `CommunicationInfo.ConnectionPort`.
    #[serde(with = "hex_opt")]
    pub connection_port: Option<VirtAddr>,
    /// Messages on `MainQueue` (not taken yet).
    #[serde(with = "hex_vec")]
    pub main_queue: Vec<VirtAddr>,
    /// Messages on `LargeMessageQueue`.
    #[serde(with = "hex_vec")]
    pub large_queue: Vec<VirtAddr>,
    /// Messages on `PendingQueue` (taken, reply pending).
    #[serde(with = "hex_vec")]
    pub pending_queue: Vec<VirtAddr>,
    /// Messages on `DirectQueue` (absent on 7 and 8.1).
    #[serde(with = "hex_vec")]
    pub direct_queue: Vec<VirtAddr>,
    /// Threads on `WaitQueue`: server threads waiting for a request.
    #[serde(with = "hex_vec")]
    pub waiting_threads: Vec<VirtAddr>,
    /// `MainQueueLength`.
    pub main_queue_length: Option<u64>,
    /// `PendingQueueLength`.
    pub pending_queue_length: Option<u64>,
    /// `CompletionPort`: the I/O completion queue (`_KQUEUE`) an LRPC
    /// server's workers wait on for this port's requests, when set.
    #[serde(with = "hex_opt")]
    pub completion_port: Option<VirtAddr>,
    /// The threads associated with that queue, idle or busy; `None` when
    /// the port has no completion queue or it is not a queue.
    pub queue_workers: Option<Vec<QueueWorker>>,
    /// `ServerThread` of each message on the port's queues: the server
    /// threads that took them.
    #[serde(with = "hex_vec")]
    pub server_threads: Vec<VirtAddr>,
}

impl AlpcPortInfo {
    /// The port's own worker threads, each with whether it waits idle for
    /// a request: the threads associated with its completion queue, those
    /// on its `WaitQueue` (idle, `WrLpcReceive`) and the server threads of
    /// its messages (busy). `None` unless the port has a completion queue:
    /// without one, a plain ALPC server's busy threads keep no link to the
    /// port, so its workers cannot be told apart from the process's other
    /// threads.
    pub fn workers(&self) -> Option<Vec<(VirtAddr, bool)>> {
        let q = self.queue_workers.as_ref()?;
        let mut seen = HashSet::new();
        let all = q
            .iter()
            .map(|w| (w.thread, w.idle))
            .chain(self.waiting_threads.iter().map(|&t| (t, true)))
            .chain(self.server_threads.iter().map(|&t| (t, false)));
        Some(all.filter(|(t, _)| seen.insert(*t)).collect())
    }
}

/// A thread waiting (`WrLpcReply`) for the reply to an ALPC message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlpcWait {
    /// The client thread.
    #[serde(with = "hex")]
    pub thread: VirtAddr,
    /// Its TID.
    pub tid: u64,
    /// Its PID.
    pub pid: u64,
    /// Its process's image name.
    pub process_name: String,
    /// How long it has waited, seconds.
    pub wait_seconds: Option<f64>,
    /// Its `AlpcWaitSemaphore`: what its wait block points at.
    #[serde(with = "hex")]
    pub semaphore: VirtAddr,
    /// Whether the message's `WaitingThread` names this thread back (the
    /// kernel's own test that the thread is blocked by it).
    pub blocked: bool,
    /// The message (`AlpcMessage`).
    pub message: AlpcMessageInfo,
}

/// The ALPC listing: ports and waiting clients.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlpcListing {
    /// Every port on `AlpcpPortList`, in list order.
    pub ports: Vec<AlpcPortInfo>,
    /// Every thread waiting for an ALPC reply, in thread-list order.
    pub waits: Vec<AlpcWait>,
    /// What could not be read.
    pub warnings: Vec<Warning>,
}

/// What `alpc ADDR` found at an address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum AlpcObject {
    /// A thread waiting for an ALPC reply.
    Wait(AlpcWait),
    /// A port with its queues.
    Port {
        /// The port.
        port: AlpcPortInfo,
        /// What could not be read of its queues.
        warnings: Vec<Warning>,
    },
    /// A message.
    Message(AlpcMessageInfo),
}

#[derive(Debug, Default)]
struct Cache {
    waits: OnceLock<Partial<AlpcWait>>,
    queues: OnceLock<QueueIndex>,
}

/// `Tcb.Queue` of every listed thread, by queue.
#[derive(Debug, Default)]
struct QueueIndex {
    /// Queue -> the threads whose `Tcb.Queue` names it.
    by_queue: HashMap<VirtAddr, Vec<VirtAddr>>,
    /// Thread address -> its index in the thread list, built once for
    /// every port's cross-check rather than once per port.
    position: HashMap<VirtAddr, usize>,
    /// Threads whose `Tcb.Queue` could not be read.
    warnings: Vec<Warning>,
}

/// The pointer, or `None` for NULL.
fn nonzero(a: VirtAddr) -> Option<VirtAddr> {
    (a.0 != 0).then_some(a)
}

impl<'d> Kernel<'d> {
    /// PID and image name of an EPROCESS: from the process list when it
    /// is there, else from the object itself.
    fn process_identity(&self, eprocess: VirtAddr) -> (Option<u64>, Option<String>) {
        if let Some(p) = self
            .processes()
            .items
            .iter()
            .find(|p| p.address == eprocess)
        {
            return (Some(p.pid), Some(p.name.clone()));
        }
        let o = self.object("_EPROCESS", eprocess).ok();
        (
            o.and_then(|o| o.u64("UniqueProcessId").ok()),
            o.and_then(|o| o.ascii("ImageFileName").ok()),
        )
    }

    /// The owner of a port, unless bit 0 says it has none.
    fn port_owner(&self, port: VirtAddr) -> Result<Option<VirtAddr>> {
        let p = self.object("_ALPC_PORT", port)?.ptr("OwnerProcess")?;
        Ok((p.0 & OWNER_NONE_BIT == 0).then_some(p).and_then(nonzero))
    }

    /// One ALPC message by address.
    pub fn alpc_message(&self, addr: VirtAddr) -> Result<AlpcMessageInfo> {
        let m = self.object("_KALPC_MESSAGE", addr)?;
        let pm = m.field("PortMessage")?;
        let queue_port = nonzero(m.ptr("PortQueue")?);
        let connection_port = nonzero(m.ptr("ConnectionPort")?);
        // The server is the queue port's owner; a message no queue holds
        // is still addressed to its connection port's owner.
        let server_process = match queue_port.or(connection_port) {
            Some(p) => self.port_owner(p)?,
            None => None,
        };
        let (server_pid, server_name) = match server_process {
            Some(p) => self.process_identity(p),
            None => (None, None),
        };
        let server_thread = nonzero(m.ptr("ServerThread")?);
        let server_tid = server_thread.and_then(|t| {
            self.threads()
                .items
                .iter()
                .find(|x| x.address == t)
                .map(|x| x.tid)
        });
        let port_name = match connection_port {
            Some(p) => self.object_name(p).ok().flatten(),
            None => None,
        };
        Ok(AlpcMessageInfo {
            address: addr,
            waiting_thread: nonzero(m.ptr("WaitingThread")?),
            client_pid: pm.u64("ClientId.UniqueProcess").ok(),
            client_tid: pm.u64("ClientId.UniqueThread").ok(),
            owner_port: nonzero(m.ptr("OwnerPort")?),
            queue_port,
            connection_port,
            port_name,
            server_process,
            server_pid,
            server_name,
            server_thread,
            server_tid,
            queue: queue_name(m.u64("u1.s1.QueueType")?),
            sequence_no: m.u64("SequenceNo")?,
            message_type: pm.u64("u2.s2.Type").ok(),
            message_id: pm.u64("MessageId").ok(),
        })
    }

    /// The entries of one `_LIST_ENTRY` queue of a port, as addresses of
    /// `ty` linked through `link`; a broken queue ends with a warning.
    fn port_queue(
        &self,
        port: VirtAddr,
        queue: &str,
        ty: &str,
        link: &str,
        warnings: &mut Vec<Warning>,
    ) -> Vec<VirtAddr> {
        let ctx = format!("ALPC port {port:#x} {queue}");
        let head = match self
            .object("_ALPC_PORT", port)
            .and_then(|o| o.addr_of(queue))
        {
            Ok(h) => h,
            Err(e) => {
                warnings.push(Warning::from_error(ctx, &e));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        match self.reader().iter_list(head, ty, link, MAX_QUEUE) {
            Ok(it) => {
                for a in it {
                    match a {
                        Ok(a) => out.push(a),
                        Err(e) => {
                            warnings.push(Warning::from_error(ctx, &e));
                            break;
                        }
                    }
                }
            }
            Err(e) => warnings.push(Warning::from_error(ctx, &e)),
        }
        out
    }

    /// One ALPC port by address, with its queues.
    pub fn alpc_port(&self, addr: VirtAddr) -> Result<(AlpcPortInfo, Vec<Warning>)> {
        let p = self.object("_ALPC_PORT", addr)?;
        let mut w = Vec::new();
        let owner = self.port_owner(addr)?;
        let (owner_pid, owner_name) = match owner {
            Some(o) => self.process_identity(o),
            None => (None, None),
        };
        let connection_port = match p.deref("CommunicationInfo", "_ALPC_COMMUNICATION_INFO") {
            Ok(Some(ci)) => ci.ptr("ConnectionPort").ok().and_then(nonzero),
            Ok(None) => None,
            Err(e) => {
                w.push(Warning::from_error(format!("ALPC port {addr:#x}"), &e));
                None
            }
        };
        let km = "_KALPC_MESSAGE";
        let queue = |name: &str, w: &mut Vec<Warning>| {
            if p.has(name) {
                self.port_queue(addr, name, km, "Entry", w)
            } else {
                Vec::new()
            }
        };
        let main_queue = queue("MainQueue", &mut w);
        let large_queue = queue("LargeMessageQueue", &mut w);
        let pending_queue = queue("PendingQueue", &mut w);
        let direct_queue = queue("DirectQueue", &mut w);
        let waiting_threads =
            self.port_queue(addr, "WaitQueue", "_ETHREAD", "AlpcWaitListEntry", &mut w);
        let mut server_threads = Vec::new();
        let mut seen = HashSet::new();
        for &m in main_queue
            .iter()
            .chain(&large_queue)
            .chain(&pending_queue)
            .chain(&direct_queue)
        {
            match self
                .object("_KALPC_MESSAGE", m)
                .and_then(|o| o.ptr("ServerThread"))
            {
                Ok(t) if t.0 != 0 && seen.insert(t) => server_threads.push(t),
                Ok(_) => {}
                Err(e) => w.push(Warning::from_error(
                    format!("ALPC message {m:#x} of port {addr:#x}"),
                    &e,
                )),
            }
        }
        let completion_port = if p.has("CompletionPort") {
            p.ptr("CompletionPort").ok().and_then(nonzero)
        } else {
            None
        };
        let queue_workers = completion_port.and_then(|q| self.queue_workers(addr, q, &mut w));
        Ok((
            AlpcPortInfo {
                address: addr,
                name: self.object_name(addr).ok().flatten(),
                kind: port_kind_name(p.u64("u1.s1.Type")?),
                state: p.u64("u1.State")?,
                owner_process: owner,
                owner_pid,
                owner_name,
                connection_port,
                main_queue,
                large_queue,
                pending_queue,
                direct_queue,
                waiting_threads,
                main_queue_length: p.u64("MainQueueLength").ok(),
                pending_queue_length: p.u64("PendingQueueLength").ok(),
                completion_port,
                queue_workers,
                server_threads,
            },
            w,
        ))
    }

    /// `Tcb.Queue` of every listed thread that names one, by queue.
    fn queue_index(&self) -> &QueueIndex {
        self.caches.get::<Cache>().queues.get_or_init(|| {
            let mut index: HashMap<VirtAddr, Vec<VirtAddr>> = HashMap::new();
            let mut position = HashMap::new();
            let mut warnings = Vec::new();
            for (i, t) in self.threads().items.iter().enumerate() {
                position.insert(t.address, i);
                match self
                    .object("_ETHREAD", t.address)
                    .and_then(|e| e.ptr("Tcb.Queue"))
                {
                    Ok(q) if q.0 != 0 => index.entry(q).or_default().push(t.address),
                    Ok(_) => {}
                    Err(e) => warnings.push(Warning::from_error(
                        format!("thread {:#x} Tcb.Queue", t.address),
                        &e,
                    )),
                }
            }
            QueueIndex {
                by_queue: index,
                position,
                warnings,
            }
        })
    }

    /// The threads associated with port `port`'s completion queue `q`:
    /// those on the queue's `ThreadListHead` (bounded, back-link checked),
    /// cross-checked with each listed thread's `Tcb.Queue`. A thread one
    /// says is associated and the other not is kept, with a warning.
    /// `None`, with a warning, when `q` is no `QueueObject`.
    fn queue_workers(
        &self,
        port: VirtAddr,
        q: VirtAddr,
        w: &mut Vec<Warning>,
    ) -> Option<Vec<QueueWorker>> {
        let ctx = format!("ALPC port {port:#x} completion queue {q:#x}");
        let kq = match self.object("_KQUEUE", q) {
            Ok(o) => o,
            Err(e) => {
                w.push(Warning::from_error(ctx, &e));
                return None;
            }
        };
        let ty = match kq.u64("Header.Type") {
            Ok(t) => t,
            Err(e) => {
                w.push(Warning::from_error(ctx, &e));
                return None;
            }
        };
        let type_name = crate::process::enum_name(self, "_KOBJECTS", ty);
        if type_name.as_deref() != Some("QueueObject") {
            w.push(Warning::implausible(
                &ctx,
                Some(q),
                format!(
                    "CompletionPort's dispatcher type is {} ({ty}), not QueueObject; its workers are not read",
                    type_name.as_deref().unwrap_or("unknown")
                ),
            ));
            return None;
        }
        // The index's own warnings (threads whose Tcb.Queue could not be
        // read) are reported once per listing, not once per port.
        let index = self.queue_index();
        let by_tcb: &[VirtAddr] = index.by_queue.get(&q).map_or(&[], |v| v.as_slice());
        let mut listed = Vec::new();
        match kq.addr_of("ThreadListHead").and_then(|h| {
            self.reader()
                .iter_list(h, "_ETHREAD", "Tcb.QueueListEntry", MAX_QUEUE_THREADS)
        }) {
            Ok(it) => {
                for t in it {
                    match t {
                        Ok(t) => listed.push(t),
                        Err(e) => {
                            w.push(Warning::from_error(format!("{ctx} ThreadListHead"), &e));
                            break;
                        }
                    }
                }
            }
            Err(e) => w.push(Warning::from_error(format!("{ctx} ThreadListHead"), &e)),
        }
        // Sets and a map keep the cross-check linear in a list the dump
        // may have made long.
        let on_list: HashSet<VirtAddr> = listed.iter().copied().collect();
        let on_tcb: HashSet<VirtAddr> = by_tcb.iter().copied().collect();
        let mut seen: HashSet<VirtAddr> = HashSet::new();
        let mut out: Vec<QueueWorker> = Vec::new();
        for &t in listed.iter().chain(by_tcb) {
            if !seen.insert(t) {
                continue;
            }
            let on_thread_list = on_list.contains(&t);
            let tcb_queue = on_tcb.contains(&t);
            let info = index
                .position
                .get(&t)
                .and_then(|&i| self.threads().items.get(i));
            if on_thread_list && !tcb_queue {
                let what = match info {
                    Some(_) => "whose Tcb.Queue does not name this queue",
                    None => "that is on no thread list",
                };
                w.push(Warning::implausible(
                    &ctx,
                    Some(t),
                    format!("ThreadListHead links thread {t:#x} {what}"),
                ));
            } else if tcb_queue && !on_thread_list {
                w.push(Warning::implausible(
                    &ctx,
                    Some(t),
                    format!("thread {t:#x}'s Tcb.Queue names the queue, but it is not on its ThreadListHead"),
                ));
            }
            let idle = info.is_some_and(|x| {
                x.state == ThreadState::Waiting
                    && x.wait_reason == Some(WaitReason::WrQueue)
                    && x.waits_on.contains(&q)
            });
            out.push(QueueWorker {
                thread: t,
                tid: info.map(|x| x.tid),
                idle,
                on_thread_list,
                tcb_queue,
            });
        }
        Some(out)
    }

    /// Every port on `AlpcpPortList`, in list order.
    pub fn alpc_ports(&self) -> Partial<AlpcPortInfo> {
        let mut out = Partial::default();
        let head = match self.symbol("AlpcpPortList") {
            Ok(h) => h,
            Err(e) => {
                out.warnings.push(Warning::from_error("ALPC port list", &e));
                return out;
            }
        };
        match self
            .reader()
            .iter_list(head, "_ALPC_PORT", "PortListEntry", MAX_PORTS)
        {
            Ok(it) => {
                for a in it {
                    match a.and_then(|a| self.alpc_port(a)) {
                        Ok((p, w)) => {
                            out.items.push(p);
                            out.warnings.extend(w);
                        }
                        Err(e) => {
                            out.warnings.push(Warning::from_error("AlpcpPortList", &e));
                            break;
                        }
                    }
                }
            }
            Err(e) => out.warnings.push(Warning::from_error("ALPC port list", &e)),
        }
        if out.items.iter().any(|p| p.queue_workers.is_some()) {
            out.warnings
                .extend(self.queue_index().warnings.iter().cloned());
        }
        out
    }

    /// Every thread waiting for an ALPC reply (`WrLpcReply` with an
    /// `AlpcMessage`), with the message it sent.
    pub fn alpc_waits(&self) -> &Partial<AlpcWait> {
        self.caches
            .get::<Cache>()
            .waits
            .get_or_init(|| self.read_alpc_waits())
    }

    fn read_alpc_waits(&self) -> Partial<AlpcWait> {
        let mut out = Partial::default();
        for t in &self.threads().items {
            if t.state != ThreadState::Waiting || t.wait_reason != Some(WaitReason::WrLpcReply) {
                continue;
            }
            let ctx = format!("thread {:#x}", t.address);
            let e = match self.object("_ETHREAD", t.address) {
                Ok(e) => e,
                Err(err) => {
                    out.warnings.push(Warning::from_error(ctx, &err));
                    continue;
                }
            };
            // Legacy LPC and an ALPC wait already answered leave no message.
            let msg = match e.ptr("AlpcMessage") {
                Ok(m) if m.0 == 0 => continue,
                Ok(m) => m,
                Err(err) => {
                    out.warnings.push(Warning::from_error(ctx, &err));
                    continue;
                }
            };
            let semaphore = match e.addr_of("AlpcWaitSemaphore") {
                Ok(s) => s,
                Err(err) => {
                    out.warnings.push(Warning::from_error(ctx, &err));
                    continue;
                }
            };
            match self.alpc_message(msg) {
                Ok(m) => {
                    let blocked = m.waiting_thread == Some(t.address);
                    if !blocked {
                        out.warnings.push(Warning::implausible(
                            ctx,
                            Some(msg),
                            format!(
                                "waits for the reply to ALPC message {msg:#x}, whose WaitingThread is {:#x}, not this thread; no wait edge is drawn",
                                m.waiting_thread.map_or(0, |w| w.0)
                            ),
                        ));
                    }
                    out.items.push(AlpcWait {
                        thread: t.address,
                        tid: t.tid,
                        pid: t.pid,
                        process_name: t.process_name.clone(),
                        wait_seconds: t.wait_seconds,
                        semaphore,
                        blocked,
                        message: m,
                    });
                }
                Err(err) => out.warnings.push(Warning::from_error(
                    format!("ALPC message {msg:#x} of {ctx}"),
                    &err,
                )),
            }
        }
        out
    }

    /// The ALPC listing: every port and every waiting client.
    pub fn alpc(&self) -> AlpcListing {
        let ports = self.alpc_ports();
        let waits = self.alpc_waits();
        let mut warnings = ports.warnings;
        warnings.extend(waits.warnings.iter().cloned());
        AlpcListing {
            ports: ports.items,
            waits: waits.items.clone(),
            warnings,
        }
    }

    /// What is at `addr`: a thread waiting for an ALPC reply, an
    /// `ALPC Port` object (by its object type), else a `_KALPC_MESSAGE`.
    pub fn alpc_at(&self, addr: VirtAddr) -> Result<AlpcObject> {
        if let Some(w) = self.alpc_waits().items.iter().find(|w| w.thread == addr) {
            return Ok(AlpcObject::Wait(w.clone()));
        }
        if self.object_type_name(addr).is_ok_and(|t| t == "ALPC Port") {
            let (port, mut warnings) = self.alpc_port(addr)?;
            if port.queue_workers.is_some() {
                warnings.extend(self.queue_index().warnings.iter().cloned());
            }
            return Ok(AlpcObject::Port { port, warnings });
        }
        self.alpc_message(addr).map(AlpcObject::Message)
    }

    /// Thread address -> the ALPC wait it is blocked in (`blocked` only).
    pub fn alpc_wait_index(&self) -> HashMap<VirtAddr, &AlpcWait> {
        self.alpc_waits()
            .items
            .iter()
            .filter(|w| w.blocked)
            .map(|w| (w.thread, w))
            .collect()
    }
}
