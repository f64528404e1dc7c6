//! The kernel as a source for the OS-neutral wait-for graph.

use crate::kernel::Kernel;
use crate::model::*;
use hangscope_waitgraph as wg;
use hangscope_x64::VirtAddr;

/// The drivers an IRP passed through, from the top of its stack (the
/// highest location, the file system) down to its current location.
fn device_stack(irp: &IrpInfo) -> Vec<String> {
    let mut v: Vec<&IrpStackLocation> = irp
        .stack
        .iter()
        .filter(|s| s.index >= irp.current_location && s.device.0 != 0)
        .collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.index));
    let mut out: Vec<String> = Vec::new();
    for s in v {
        let name = s
            .driver_name
            .clone()
            .unwrap_or_else(|| format!("driver of device {}", s.device));
        if out.last() != Some(&name) {
            out.push(name);
        }
    }
    out
}

fn state_of(t: &ThreadInfo) -> wg::ThreadState {
    match t.state {
        ThreadState::Running => match t.cpu {
            Some(cpu) => wg::ThreadState::Running { cpu },
            None => wg::ThreadState::Other {
                name: t.state.to_string(),
            },
        },
        s if s.is_ready() => wg::ThreadState::Ready,
        ThreadState::Waiting => wg::ThreadState::Waiting,
        other => wg::ThreadState::Other {
            name: other.to_string(),
        },
    }
}

fn resource_kind(kind: &str) -> wg::ResourceKind {
    match kind {
        "Mutant" => wg::ResourceKind::Mutant,
        "Event" => wg::ResourceKind::Event,
        "Semaphore" => wg::ResourceKind::Semaphore,
        "FastMutex" => wg::ResourceKind::Other("fast_mutex".into()),
        "GuardedMutex" => wg::ResourceKind::Other("guarded_mutex".into()),
        other => wg::ResourceKind::Other(other.into()),
    }
}

/// The parts of the model that warnings say could not be read whole: one
/// gap per part, with the first reason and how many more there were.
fn gaps<'a>(warnings: impl Iterator<Item = &'a crate::error::Warning>) -> Vec<wg::Gap> {
    let mut out: Vec<(wg::Gap, usize)> = Vec::new();
    for w in warnings {
        let Some(part) = w.leaves_incomplete else {
            continue;
        };
        match out.iter_mut().find(|(g, _)| g.part == part) {
            Some((_, more)) => *more += 1,
            None => out.push((
                wg::Gap {
                    part,
                    reason: w.to_string(),
                },
                0,
            )),
        }
    }
    out.into_iter()
        .map(|(mut g, more)| {
            if more > 0 {
                g.reason = format!("{} (and {more} more)", g.reason);
            }
            g
        })
        .collect()
}

impl<'d> Kernel<'d> {
    /// Build the wait-for graph input: processes, threads (state, seconds,
    /// pending I/O), ERESOURCEs with owners and waiters, other dispatcher
    /// objects threads wait on, files with the PIDs holding them, and every
    /// warning met.
    pub fn wait_graph(&self) -> wg::WaitGraphInput {
        let mut inp = wg::WaitGraphInput::default();
        inp.warnings
            .extend(self.dump_notes().iter().map(|n| format!("dump file: {n}")));
        // One walker for every thread: it caches the unwind tables.
        let mut walker = self.stack_walker();
        let procs = self.processes();
        inp.warnings
            .extend(procs.warnings.iter().map(|w| w.to_string()));
        inp.processes = procs
            .items
            .iter()
            .map(|p| wg::Process {
                address: wg::Addr(p.address.0),
                pid: p.pid,
                ppid: p.ppid,
                name: p.name.clone(),
                session: p.session,
            })
            .collect();
        let threads = self.threads();
        inp.warnings
            .extend(threads.warnings.iter().map(|w| w.to_string()));
        let res = self.eresources();
        let unlisted = self.unlisted_resource_waits(&res.items);
        for t in &threads.items {
            let mut io = Vec::new();
            for &i in &t.irps {
                match self.irp(i) {
                    Ok(irp) => {
                        let cur = irp.current();
                        io.push(wg::Io {
                            irp: wg::Addr(i.0),
                            major: cur.map(|c| c.major_name.clone()),
                            driver: cur.and_then(|c| c.driver_name.clone()),
                            device: cur.and_then(|c| c.device_name.clone()),
                            file_object: cur
                                .map(|c| wg::Addr(c.file_object.0))
                                .filter(|f| f.0 != 0),
                            file: irp.file_path.clone(),
                            device_address: cur.map(|c| wg::Addr(c.device.0)).filter(|d| d.0 != 0),
                            device_stack: device_stack(&irp),
                            at_bottom: irp.current_location == 1 && cur.is_some(),
                            event: irp.user_event.map(|e| wg::Addr(e.0)),
                        });
                        inp.warnings
                            .extend(irp.warnings.iter().map(|w| w.to_string()));
                    }
                    Err(e) => inp.warnings.push(format!("IRP {i:#x}: {e}")),
                }
            }
            inp.threads.push(wg::Thread {
                key: t.address.0,
                tid: t.tid,
                pid: t.pid,
                state: state_of(t),
                wait_reason: t.wait_reason.map(|w| w.to_string()),
                waited_seconds: t.wait_seconds,
                waited_ticks: t.wait_ticks,
                stack: walker.thread_stack(t.address).symbols(),
                io,
                // KPROCESSOR_MODE: 1 is UserMode.
                user_mode_wait: t.state == ThreadState::Waiting
                    && self
                        .object("_ETHREAD", t.address)
                        .and_then(|e| e.u64("Tcb.WaitMode"))
                        .is_ok_and(|m| m == 1),
                warnings: t
                    .warnings
                    .iter()
                    .chain(unlisted.iter().filter(|u| u.0 == t.address).map(|u| &u.1))
                    .map(|w| w.message.clone())
                    .collect(),
            });
        }
        inp.warnings
            .extend(res.warnings.iter().map(|w| w.to_string()));
        for r in &res.items {
            let mode = |x: bool| {
                if x {
                    wg::Mode::Exclusive
                } else {
                    wg::Mode::Shared
                }
            };
            inp.resources.push(wg::Resource {
                key: r.address.0,
                kind: wg::ResourceKind::Eresource,
                name: r.symbol.clone(),
                owners: r
                    .owners
                    .iter()
                    .map(|o| wg::Claim {
                        thread: o.thread.0,
                        mode: mode(o.exclusive),
                    })
                    .collect(),
                waiters: r
                    .waiters
                    .iter()
                    .map(|w| wg::Claim {
                        thread: w.thread.0,
                        mode: mode(w.exclusive),
                    })
                    .collect(),
                contention_count: Some(r.contention_count as u64),
                warnings: r.warnings.iter().map(|w| w.message.clone()).collect(),
            });
        }
        // A client waiting for an ALPC reply waits on its own semaphore;
        // the wait is on the message, whose owner is the server thread that
        // took it (windows-alpc.md): the edge crosses processes.
        let alpc = self.alpc_wait_index();
        inp.warnings
            .extend(self.alpc_waits().warnings.iter().map(|w| w.to_string()));
        let mut alpc_waits: Vec<_> = alpc.values().copied().collect();
        alpc_waits.sort_by_key(|w| w.thread);
        for w in alpc_waits {
            let m = &w.message;
            inp.resources.push(wg::Resource {
                key: m.address.0,
                kind: wg::ResourceKind::AlpcMessage,
                name: m.port_name.clone(),
                owners: m
                    .server_thread
                    .iter()
                    .map(|t| wg::Claim {
                        thread: t.0,
                        mode: wg::Mode::Exclusive,
                    })
                    .collect(),
                waiters: vec![wg::Claim {
                    thread: w.thread.0,
                    mode: wg::Mode::Exclusive,
                }],
                contention_count: None,
                warnings: Vec::new(),
            });
            inp.alpc.push(wg::AlpcMessage {
                message: wg::Addr(m.address.0),
                client: w.thread.0,
                port: m.connection_port.or(m.queue_port).map(|p| wg::Addr(p.0)),
                port_name: m.port_name.clone(),
                server_pid: m.server_pid,
                server_thread: m.server_thread.map(|t| t.0),
            });
        }
        // The ports those requests were sent to, with their own workers
        // when they are an LRPC server's (a completion queue): the
        // unanswered-request finding counts those, not every thread of the
        // server. Read only when a client waits.
        if !inp.alpc.is_empty() {
            let ports = self.alpc_ports();
            inp.warnings
                .extend(ports.warnings.iter().map(|w| w.to_string()));
            for p in &ports.items {
                let key = wg::Addr(p.address.0);
                if !inp.alpc.iter().any(|m| m.port == Some(key)) {
                    continue;
                }
                let Some(workers) = p.workers() else {
                    continue;
                };
                inp.alpc_ports.push(wg::AlpcPort {
                    port: key,
                    name: p.name.clone(),
                    server_pid: p.owner_pid,
                    workers: workers
                        .into_iter()
                        .map(|(t, idle)| wg::PortWorker { thread: t.0, idle })
                        .collect(),
                });
            }
        }
        // A push-lock waiter waits on the WakeEvent on its own stack; the
        // wait is on the lock, whose owners are inferred (pushlock.rs).
        let push_locks = self.push_locks();
        inp.warnings
            .extend(push_locks.warnings.iter().map(|w| w.to_string()));
        let wake_events: std::collections::HashSet<(VirtAddr, VirtAddr)> = push_locks
            .items
            .iter()
            .flat_map(|l| l.waiters.iter().map(|w| (w.thread, w.wake_event)))
            .collect();
        for l in &push_locks.items {
            let owners = if l.candidate_owners.is_empty() {
                "no owner found in any stack".to_string()
            } else {
                "owner inferred from stacks".to_string()
            };
            let mut how = vec![owners];
            if l.waiters.iter().any(|w| w.inferred) {
                how.push("waiters partly inferred from stacks".into());
            }
            inp.resources.push(wg::Resource {
                key: l.address.0,
                kind: wg::ResourceKind::Other("push_lock".into()),
                name: Some(match &l.container {
                    Some(c) => format!("{c}; {}", how.join("; ")),
                    None => how.join("; "),
                }),
                owners: l
                    .candidate_owners
                    .iter()
                    .map(|t| wg::Claim {
                        thread: t.0,
                        mode: wg::Mode::Exclusive,
                    })
                    .collect(),
                waiters: l
                    .waiters
                    .iter()
                    .map(|w| wg::Claim {
                        thread: w.thread.0,
                        mode: if w.exclusive == Some(false) {
                            wg::Mode::Shared
                        } else {
                            wg::Mode::Exclusive
                        },
                    })
                    .collect(),
                contention_count: None,
                warnings: Vec::new(),
            });
        }
        for (obj, waiters) in self.dispatcher_objects() {
            // The semaphore of a blocked ALPC client is its message's.
            let waiters: Vec<VirtAddr> = waiters
                .into_iter()
                .filter(|t| alpc.get(t).is_none_or(|w| w.semaphore != obj.address))
                .filter(|t| !wake_events.contains(&(*t, obj.address)))
                .collect();
            if waiters.is_empty() {
                continue;
            }
            inp.resources.push(wg::Resource {
                key: obj.address.0,
                kind: resource_kind(&obj.kind),
                name: self.object_name(obj.address).ok().flatten(),
                owners: obj
                    .owners
                    .iter()
                    .map(|&t| wg::Claim {
                        thread: t.0,
                        mode: wg::Mode::Exclusive,
                    })
                    .collect(),
                waiters: waiters
                    .iter()
                    .map(|&t| wg::Claim {
                        thread: t.0,
                        mode: wg::Mode::Exclusive,
                    })
                    .collect(),
                contention_count: None,
                warnings: Vec::new(),
            });
        }
        let files = self.files();
        inp.warnings
            .extend(files.warnings.iter().map(|w| w.to_string()));
        inp.warnings
            .extend(self.handles().warnings.iter().map(|w| w.to_string()));
        for f in files.items {
            inp.files.push(wg::File {
                address: wg::Addr(f.address.0),
                path: f.path.clone(),
                device: f.device_name.clone(),
                holders: f.holders.iter().map(|h| h.pid).collect(),
            });
        }
        let sched = self.scheduler();
        inp.warnings
            .extend(sched.warnings.iter().map(|w| w.to_string()));
        let ready = |v: &[crate::sched::ReadyEntry]| -> Vec<wg::ReadyThread> {
            v.iter()
                .map(|r| wg::ReadyThread {
                    thread: r.thread.0,
                    priority: r.priority as i32,
                    cpus: r.cpus.clone(),
                })
                .collect()
        };
        if !sched.cpus.is_empty() {
            inp.scheduler = Some(wg::Scheduler {
                cpus: sched
                    .cpus
                    .iter()
                    .map(|c| wg::CpuQueue {
                        cpu: c.index,
                        current: c.current_thread.map(|t| t.0).filter(|&t| t != 0),
                        current_priority: c.current_priority,
                        idle: c.current_thread.is_some() && c.current_thread == c.idle_thread,
                        ready: ready(&c.ready),
                        dpc_queue_depth: c.dpc_queue_depth,
                        dpcs: c
                            .dpcs
                            .iter()
                            .map(|d| wg::QueuedDpc {
                                address: wg::Addr(d.address.0),
                                routine: wg::Addr(d.routine.0),
                                routine_name: d.routine_name.clone(),
                            })
                            .collect(),
                        dpc_active: c.dpc_active,
                    })
                    .collect(),
                shared_ready: ready(&sched.shared_ready),
            });
        }
        let mem = self.memory_state();
        inp.warnings
            .extend(mem.warnings.iter().map(|w| w.to_string()));
        if mem.is_known() {
            inp.memory = Some(wg::MemoryState {
                page_size: self.page_size(),
                physical_pages: mem.physical_pages,
                available_pages: mem.available_pages,
                committed_pages: mem.committed_pages,
                commit_limit_pages: mem.commit_limit_pages,
                source: mem.source.clone(),
            });
        }
        inp.gaps = gaps(
            procs
                .warnings
                .iter()
                .chain(&threads.warnings)
                .chain(&res.warnings),
        );
        inp
    }
}

impl wg::WaitSource for Kernel<'_> {
    fn wait_graph_input(&self) -> wg::WaitGraphInput {
        self.wait_graph()
    }
}

/// 100 ns intervals between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

impl Kernel<'_> {
    /// The counters a series of dumps is compared with: the boot (build,
    /// PDB identity, kernel base, boot time from `KUSER_SHARED_DATA`'s
    /// `SystemTime` less the uptime), the clock (tick count), each thread's
    /// `Tcb.ContextSwitches`, `Tcb.KernelTime` and `Tcb.UserTime` (ticks),
    /// `Tcb.WaitTime` and `CreateTime`, and each pending IRP's
    /// `CurrentLocation`. Every field is read by name; a field a build does
    /// not have is left unknown, and a thread that cannot be read is named
    /// in a warning.
    pub fn progress(&self) -> wg::ProgressInput {
        let mut out = wg::ProgressInput::default();
        let info = self.info();
        let uptime = info
            .tick_count
            .and_then(|t| self.ticks_to_seconds(t))
            .filter(|s| s.is_finite());
        out.clock = wg::Clock {
            ticks: info.tick_count,
            uptime_seconds: uptime,
        };
        out.boot = wg::BootIdentity {
            os: "windows".into(),
            kernel: Some(format!(
                "Windows build {} ({} {}{:X})",
                info.build.map_or("?".into(), |b| b.to_string()),
                info.pdb.name,
                info.pdb.guid,
                info.pdb.age
            )),
            kernel_base: Some(wg::Addr(info.kernel_base.0)),
            boot_time_unix_seconds: match (info.system_time, uptime) {
                (Some(st), Some(up)) if st > FILETIME_UNIX_EPOCH => {
                    Some((st - FILETIME_UNIX_EPOCH) as f64 / 1e7 - up)
                }
                _ => None,
            },
        };
        let secs = |ticks: Option<u64>| ticks.and_then(|t| self.ticks_to_seconds(t));
        let threads = self.threads();
        for t in &threads.items {
            let e = match self.object("_ETHREAD", t.address) {
                Ok(e) => e,
                Err(err) => {
                    out.warnings
                        .push(format!("thread {:#x}: {err}", t.address.0));
                    continue;
                }
            };
            out.threads.push(wg::ThreadCounters {
                key: t.address.0,
                tid: t.tid,
                create_time: e.quad("CreateTime").ok(),
                context_switches: e.u64("Tcb.ContextSwitches").ok(),
                kernel_seconds: secs(e.u64("Tcb.KernelTime").ok()),
                user_seconds: secs(e.u64("Tcb.UserTime").ok()),
                wait_start: Some(t.wait_time),
            });
            for &i in &t.irps {
                match self.irp(i) {
                    Ok(irp) => out.irps.push(wg::IrpPosition {
                        irp: wg::Addr(i.0),
                        thread: t.address.0,
                        current_location: Some(u64::from(irp.current_location)),
                    }),
                    Err(err) => out.warnings.push(format!("IRP {:#x}: {err}", i.0)),
                }
            }
        }
        out
    }
}

impl wg::ProgressSource for Kernel<'_> {
    fn progress_input(&self) -> wg::ProgressInput {
        self.progress()
    }
}
