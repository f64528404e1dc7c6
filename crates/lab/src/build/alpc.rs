//! ALPC: connection ports on `AlpcpPortList`, one connection (client and
//! server communication ports, a shared `_ALPC_COMMUNICATION_INFO`) per
//! message, and the `_KALPC_MESSAGE` a client waits on, queued on the
//! connection port's main queue or, once a server thread took it, on its
//! pending queue. The layout follows `../shared/docs/windows-alpc.md`
//! (its "Recipe"); every field by name from the symbol table. A port of an
//! LRPC server names its I/O completion queue in `CompletionPort`
//! (`queue.rs` builds the queue and associates the workers).

use super::*;

/// `_ALPC_PORT.u1.s1.Type` values (windows-alpc.md section 3).
const PORT_CONNECTION: u64 = 1;
const PORT_CLIENT: u64 = 2;
const PORT_SERVER: u64 = 3;
/// `_KALPC_MESSAGE.u1.s1.QueueType`: the main and pending queues.
const QUEUE_MAIN: u64 = 1;
const QUEUE_PENDING: u64 = 3;
/// `_BLOB.ResourceId` of a communication info and of a message.
const BLOB_CI: u64 = 1;
const BLOB_MESSAGE: u64 = 2;
/// `PORT_MESSAGE.u2.s2.Type` of a request awaiting its reply
/// (LPC_REQUEST | LPC_CONTINUATION_REQUIRED).
const LPC_REQUEST_CONTINUATION: u64 = 0x2001;
/// Bytes of message data after the `PORT_MESSAGE`.
const DATA_LENGTH: u64 = 0x20;
/// `ALPC_PORT_ATTRIBUTES.Flags` bit Windows 10's dispatch requires for
/// synchronous requests.
const ALLOW_SYNC_REQUESTS: u64 = 0x2_0000;

/// Where one ALPC port went.
#[derive(Debug, Clone, Default)]
pub(crate) struct AlpcPortRec {
    /// The `_ALPC_PORT` (object body).
    pub(crate) address: u64,
    /// 1 connection, 2 client communication, 3 server communication.
    pub(crate) kind: u64,
    /// The owner process's PID.
    pub(crate) pid: u64,
    /// Object name (connection ports only).
    pub(crate) name: Option<String>,
    /// The `_KQUEUE` its `CompletionPort` names (connection ports of an
    /// LRPC server only).
    pub(crate) completion_port: Option<u64>,
}

/// Where one ALPC message and its connection went.
#[derive(Debug, Clone, Default)]
pub(crate) struct AlpcMessageRec {
    /// The `_KALPC_MESSAGE`.
    pub(crate) address: u64,
    /// The connection port it was sent to (and is queued on).
    pub(crate) connection_port: u64,
    /// The client communication port (its `OwnerPort`).
    pub(crate) client_port: u64,
    /// The server communication port of the connection.
    pub(crate) server_port: u64,
    /// The connection's `_ALPC_COMMUNICATION_INFO`.
    pub(crate) communication_info: u64,
}

impl Builder<'_> {
    /// Every scenario ALPC port and message. Images without ALPC ports are
    /// left as they were (no list head is written).
    pub(super) fn alpc(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        if sc.alpc_ports.is_empty() {
            return Ok(());
        }
        let head = self.sym("AlpcpPortList")?;
        self.map_image(head, 16)?;
        self.list_init(head);
        let mut conn = Vec::with_capacity(sc.alpc_ports.len());
        for p in &sc.alpc_ports {
            let x = self.alpc_port(head, p.pid, PORT_CONNECTION, Some(&p.name))?;
            let ci = self.alpc_blob("_ALPC_COMMUNICATION_INFO", BLOB_CI, *b"AlCi")?;
            let aci = "_ALPC_COMMUNICATION_INFO";
            self.put(ci, aci, "ConnectionPort", x)?;
            let cl = ci + self.off(aci, "CommunicationList")?;
            self.list_init(cl);
            self.put(x, "_ALPC_PORT", "CommunicationInfo", ci)?;
            if let Some(q) = &p.completion_port {
                // The I/O completion object's body, a KQUEUE (the
                // `IoCompletion` object `locks` made).
                let kq = self.locks[self.ix.locks[q]].address;
                self.put(x, "_ALPC_PORT", "CompletionPort", kq)?;
                if let Some(r) = self.alpc_ports.iter_mut().find(|r| r.address == x) {
                    r.completion_port = Some(kq);
                }
            }
            conn.push((x, ci));
        }
        let mut main_len = vec![0u64; conn.len()];
        let mut pending_len = vec![0u64; conn.len()];
        let mut recs = Vec::with_capacity(sc.alpc_messages.len());
        for (mi, m) in sc.alpc_messages.iter().enumerate() {
            let pi = self.ix.alpc_ports[&m.port];
            let (x, ci_x) = conn[pi];
            let ti = self.ix.alpc_clients[&mi];
            let client_pid = sc.threads[ti].pid;
            let server_pid = sc.alpc_ports[pi].pid;
            let rec = self.alpc_connection(head, x, ci_x, client_pid, server_pid)?;
            let taken = m
                .server_thread
                .as_ref()
                .map(|s| self.threads[self.ix.threads[s]].ethread);
            let msg = self.alpc_message(&rec, ti, taken, mi as u64 + 1)?;
            let ap = "_ALPC_PORT";
            let queue = if taken.is_some() {
                pending_len[pi] += 1;
                "PendingQueue"
            } else {
                main_len[pi] += 1;
                "MainQueue"
            };
            let q = x + self.off(ap, queue)?;
            self.list_add(q, msg + self.off("_KALPC_MESSAGE", "Entry")?);
            recs.push(AlpcMessageRec {
                address: msg,
                ..rec
            });
        }
        for (pi, &(x, _)) in conn.iter().enumerate() {
            let ap = "_ALPC_PORT";
            self.put(x, ap, "MainQueueLength", main_len[pi])?;
            self.put(x, ap, "PendingQueueLength", pending_len[pi])?;
            self.put(x, ap, "SequenceNo", main_len[pi] + pending_len[pi])?;
        }
        self.alpc_messages = recs;
        Ok(())
    }

    /// An `ALPC Port` object owned by process `pid`, its queues empty, on
    /// `AlpcpPortList`; the server's and client's handles to it recorded.
    fn alpc_port(
        &mut self,
        head: u64,
        pid: u64,
        kind: u64,
        name: Option<&str>,
    ) -> Result<u64, Error> {
        let ap = "_ALPC_PORT";
        let x = self.alloc_object("ALPC Port", self.size(ap)?, name)?;
        self.list_add(head, x + self.off(ap, "PortListEntry")?);
        let pi = self.ix.pids[&pid];
        let owner = self.procs[pi].eprocess;
        self.put(x, ap, "OwnerProcess", owner)?;
        // 8.1 and 7 have no direct queue; the other queues exist on every
        // build.
        for q in [
            "MainQueue",
            "PendingQueue",
            "LargeMessageQueue",
            "WaitQueue",
            "DirectQueue",
            "CanceledQueue",
            "ResourceListHead",
        ] {
            if self.has(ap, q) {
                let at = x + self.off(ap, q)?;
                self.list_init(at);
            }
        }
        self.put(x, ap, "u1.s1.Initialized", 1)?;
        self.put(x, ap, "u1.s1.Type", kind)?;
        self.put(x, ap, "PortAttributes.Flags", ALLOW_SYNC_REQUESTS)?;
        self.alpc_ports.push(AlpcPortRec {
            address: x,
            kind,
            pid,
            name: name.map(str::to_string),
            completion_port: None,
        });
        self.alpc_handles.push((pi, x));
        Ok(x)
    }

    /// A structure of type `ty` preceded by its `_BLOB` header (ALPC
    /// allocates messages and communication infos so); returns the
    /// structure's address.
    fn alpc_blob(&mut self, ty: &str, resource_id: u64, tag: [u8; 4]) -> Result<u64, Error> {
        let blob = self.size("_BLOB")?;
        let (_, b) = self.pool_alloc(blob + self.size(ty)? + DATA_LENGTH, tag)?;
        self.put(b, "_BLOB", "ResourceId", resource_id)?;
        self.put(b, "_BLOB", "ReferenceCount", 1)?;
        Ok(b + blob)
    }

    /// One connection to connection port `x`: the client's communication
    /// port (in `client_pid`), the server's (in `server_pid`) and the
    /// communication info both share, linked into `x`'s.
    fn alpc_connection(
        &mut self,
        head: u64,
        x: u64,
        ci_x: u64,
        client_pid: u64,
        server_pid: u64,
    ) -> Result<AlpcMessageRec, Error> {
        let ap = "_ALPC_PORT";
        let aci = "_ALPC_COMMUNICATION_INFO";
        let cp = self.alpc_port(head, client_pid, PORT_CLIENT, None)?;
        let sp = self.alpc_port(head, server_pid, PORT_SERVER, None)?;
        let ci = self.alpc_blob(aci, BLOB_CI, *b"AlCi")?;
        self.put(ci, aci, "ConnectionPort", x)?;
        self.put(ci, aci, "ServerCommunicationPort", sp)?;
        self.put(ci, aci, "ClientCommunicationPort", cp)?;
        let list = ci_x + self.off(aci, "CommunicationList")?;
        self.list_add(list, ci + self.off(aci, "CommunicationList")?);
        for port in [cp, sp] {
            self.put(port, ap, "CommunicationInfo", ci)?;
        }
        self.put(cp, ap, "TargetQueuePort", x)?;
        self.put(cp, ap, "TargetSequencePort", sp)?;
        self.put(sp, ap, "TargetQueuePort", cp)?;
        self.put(sp, ap, "TargetSequencePort", cp)?;
        Ok(AlpcMessageRec {
            address: 0,
            connection_port: x,
            client_port: cp,
            server_port: sp,
            communication_info: ci,
        })
    }

    /// The request scenario thread `ti` sent through `rec` and waits on:
    /// the message (taken by `server` when given), the thread's
    /// `AlpcMessage` and its `AlpcWaitSemaphore` (what its wait block
    /// points at, set by [`Builder::waits`]).
    fn alpc_message(
        &mut self,
        rec: &AlpcMessageRec,
        ti: usize,
        server: Option<u64>,
        sequence: u64,
    ) -> Result<u64, Error> {
        let km = "_KALPC_MESSAGE";
        let pm = "_PORT_MESSAGE";
        let client = self.threads[ti].ethread;
        let m = self.alpc_blob(km, BLOB_MESSAGE, *b"AlMs")?;
        self.put(m, km, "WaitingThread", client)?;
        self.put(m, km, "OwnerPort", rec.client_port)?;
        self.put(m, km, "PortQueue", rec.connection_port)?;
        self.put(m, km, "ConnectionPort", rec.connection_port)?;
        self.put(m, km, "CommunicationInfo", rec.communication_info)?;
        self.put(m, km, "SequenceNo", sequence)?;
        self.put(
            m,
            km,
            "u1.s1.QueueType",
            if server.is_some() {
                QUEUE_PENDING
            } else {
                QUEUE_MAIN
            },
        )?;
        self.put(m, km, "u1.s1.QueuePortType", PORT_CONNECTION)?;
        if let Some(s) = server {
            self.put(m, km, "ServerThread", s)?;
        }
        let at = m + self.off(km, "PortMessage")?;
        let header = self.size(pm)?;
        self.put(at, pm, "u1.s1.DataLength", DATA_LENGTH)?;
        self.put(at, pm, "u1.s1.TotalLength", DATA_LENGTH + header)?;
        self.put(at, pm, "u2.s2.Type", LPC_REQUEST_CONTINUATION)?;
        self.put(at, pm, "ClientId.UniqueProcess", self.sc.threads[ti].pid)?;
        self.put(at, pm, "ClientId.UniqueThread", self.threads[ti].tid)?;
        self.put(at, pm, "MessageId", 0x1000 + sequence * 4)?;
        let et = "_ETHREAD";
        self.put(client, et, "AlpcMessage", m)?;
        let sem = client + self.off(et, "AlpcWaitSemaphore")?;
        self.dispatcher_header(sem, "SemaphoreObject", 0, "_KSEMAPHORE")?;
        self.put(sem, "_KSEMAPHORE", "Limit", 1)?;
        Ok(m)
    }
}
