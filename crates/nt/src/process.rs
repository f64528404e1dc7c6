//! Processes (`_EPROCESS` on `PsActiveProcessHead`) and their threads
//! (`_ETHREAD` on `ThreadListHead`).
//!
//! Fields read: `_EPROCESS.{ActiveProcessLinks, UniqueProcessId,
//! InheritedFromUniqueProcessId, ImageFileName, ActiveThreads, CreateTime,
//! Session (or SessionId), ObjectTable, ThreadListHead,
//! Pcb.DirectoryTableBase}`; `_ETHREAD.{ThreadListEntry, Cid, StartAddress,
//! Win32StartAddress, IrpList, Tcb.*}`. Supports every x64 build from Win7
//! SP1 on whose ISF names these fields.

use crate::error::{Result, Warning};
use crate::kernel::{Kernel, KERNEL_SPACE_START};
use crate::model::*;
use crate::view::Object;
use hangscope_waitgraph::ModelPart;
use hangscope_x64::VirtAddr;
use std::sync::OnceLock;

/// Most processes walked.
pub const MAX_PROCESSES: usize = 1 << 16;
/// Most threads walked per process.
pub const MAX_THREADS_PER_PROCESS: usize = 1 << 16;
/// Most IRPs walked per thread.
pub const MAX_IRPS_PER_THREAD: usize = 4096;
/// Most wait blocks followed per thread.
pub const MAX_WAIT_BLOCKS: usize = 64;

/// The process and thread listings, each built once per kernel.
#[derive(Debug, Default)]
struct Cache {
    processes: OnceLock<Partial<ProcessInfo>>,
    threads: OnceLock<Partial<ThreadInfo>>,
}

/// Windows PIDs are handle values: multiples of 4 below 2^32. Anything
/// else is a damaged `UniqueProcessId`, printed as read and flagged.
fn implausible_pid(p: &ProcessInfo) -> Option<Warning> {
    (p.pid > u64::from(u32::MAX) || p.pid % 4 != 0).then(|| {
        Warning::implausible(
            format!("process {:#x}", p.address),
            Some(p.address),
            format!(
                "UniqueProcessId {:#x} is not a process id (a multiple of 4 below 2^32)",
                p.pid
            ),
        )
    })
}

/// Name of an enum value, `None` when the enum or the value is unknown.
pub(crate) fn enum_name(k: &Kernel<'_>, en: &str, v: u64) -> Option<String> {
    let e = k.symbols().enumeration(en)?;
    e.constants
        .iter()
        .find(|(_, c)| *c as u64 == v || (*c as u64 & 0xff) == v && e.size == 1)
        .map(|(n, _)| n.clone())
}

/// `KTHREAD.State` value as the build's `_KTHREAD_STATE` names it (by
/// number where the symbols lack the enum).
pub fn thread_state(k: &Kernel<'_>, v: u64) -> ThreadState {
    match enum_name(k, "_KTHREAD_STATE", v) {
        Some(name) => ThreadState::from_name(&name, v),
        None => ThreadState::from_raw(v),
    }
}

/// `KTHREAD.WaitReason` value as the build's `_KWAIT_REASON` names it.
pub fn wait_reason(k: &Kernel<'_>, v: u64) -> WaitReason {
    match enum_name(k, "_KWAIT_REASON", v) {
        Some(name) => WaitReason::from_name(&name, v),
        None => WaitReason::Unknown(v),
    }
}

impl<'d> Kernel<'d> {
    /// Every process on `PsActiveProcessHead`, in list order.
    pub fn processes(&self) -> &Partial<ProcessInfo> {
        self.caches
            .get::<Cache>()
            .processes
            .get_or_init(|| self.read_processes())
    }

    fn read_processes(&self) -> Partial<ProcessInfo> {
        let mut out = Partial::default();
        let head = match self.symbol("PsActiveProcessHead") {
            Ok(h) => h,
            Err(e) => {
                out.warnings
                    .push(Warning::from_error("process list", &e).incomplete(ModelPart::Processes));
                return out;
            }
        };
        let it =
            match self
                .reader()
                .iter_list(head, "_EPROCESS", "ActiveProcessLinks", MAX_PROCESSES)
            {
                Ok(it) => it,
                Err(e) => {
                    out.warnings.push(
                        Warning::from_error("process list", &e).incomplete(ModelPart::Processes),
                    );
                    return out;
                }
            };
        for p in it {
            match p {
                Ok(a) => match self.process_at(a) {
                    Ok(p) => {
                        if let Some(w) = implausible_pid(&p) {
                            out.warnings.push(w);
                        }
                        out.items.push(p)
                    }
                    Err(e) => out.warnings.push(
                        Warning::from_error(format!("process {a}"), &e)
                            .incomplete(ModelPart::Processes),
                    ),
                },
                Err(e) => out
                    .warnings
                    .push(Warning::from_error("process list", &e).incomplete(ModelPart::Processes)),
            }
        }
        out
    }

    /// Read one `_EPROCESS`.
    pub fn process_at(&self, addr: VirtAddr) -> Result<ProcessInfo> {
        let ep = self.object("_EPROCESS", addr)?;
        let session = if ep.has("SessionId") {
            Some(ep.u32("SessionId")?)
        } else {
            let s = ep.ptr("Session")?;
            if s.0 == 0 {
                None
            } else {
                self.object("_MM_SESSION_SPACE", s)?.u32("SessionId").ok()
            }
        };
        let handle_table = ep.ptr("ObjectTable").ok().filter(|p| p.0 != 0);
        Ok(ProcessInfo {
            address: addr,
            pid: ep.u64("UniqueProcessId")?,
            ppid: ep.u64("InheritedFromUniqueProcessId").unwrap_or(0),
            name: ep.ascii("ImageFileName")?,
            thread_count: ep.u32("ActiveThreads").ok(),
            create_time: ep.quad("CreateTime").ok(),
            session,
            dtb: ep.u64("Pcb.DirectoryTableBase")?,
            handle_table,
        })
    }

    /// For a listing built on the process list (threads, handles): a
    /// warning when that list could not be read whole or holds no process,
    /// since whatever belongs to the missing processes is missing too.
    pub(crate) fn process_list_caveat(&self, what: &str, part: ModelPart) -> Option<Warning> {
        let procs = self.processes();
        let broken = procs
            .warnings
            .iter()
            .find(|w| w.leaves_incomplete == Some(ModelPart::Processes));
        let reason = match broken {
            Some(w) => w.to_string(),
            None if procs.items.is_empty() => "it holds no process".to_string(),
            None => return None,
        };
        let head = self.symbol("PsActiveProcessHead").ok();
        Some(
            Warning::implausible(
                "process list",
                head,
                format!("the process list is incomplete ({reason}): {what} of the processes it lost are missing"),
            )
            .incomplete(part),
        )
    }

    /// The process with this PID, if listed.
    pub fn process_by_pid(&self, pid: u64) -> Option<&ProcessInfo> {
        self.processes().items.iter().find(|p| p.pid == pid)
    }

    /// Every thread of every listed process.
    pub fn threads(&self) -> &Partial<ThreadInfo> {
        self.caches
            .get::<Cache>()
            .threads
            .get_or_init(|| self.read_threads())
    }

    /// Threads of one process (by PID), or all.
    pub fn threads_of(&self, pid: Option<u64>) -> Vec<&ThreadInfo> {
        self.threads()
            .items
            .iter()
            .filter(|t| match pid {
                None => true,
                Some(p) => t.pid == p,
            })
            .collect()
    }

    fn read_threads(&self) -> Partial<ThreadInfo> {
        let mut out = Partial::default();
        if let Ok(0) = self.tick_count() {
            out.warnings.push(Warning::implausible(
                "tick count",
                None,
                "KUSER_SHARED_DATA's tick count is 0: how long threads have waited is unknown",
            ));
        }
        out.warnings
            .extend(self.process_list_caveat("threads", ModelPart::Threads));
        let procs = self.processes();
        for p in &procs.items {
            let addrs = self.thread_addresses(p, &mut out.warnings);
            for a in addrs {
                match self.thread_at(a, Some(p)) {
                    Ok(t) => {
                        out.warnings.extend(t.warnings.iter().cloned());
                        out.items.push(t)
                    }
                    Err(e) => out.warnings.push(
                        Warning::from_error(format!("thread {a}"), &e)
                            .incomplete(ModelPart::Threads),
                    ),
                }
            }
        }
        out
    }

    /// Thread addresses of a process: `_EPROCESS.ThreadListHead` through
    /// `_ETHREAD.ThreadListEntry`, else the KPROCESS list through
    /// `_KTHREAD.ThreadListEntry` when the first yields nothing.
    fn thread_addresses(&self, p: &ProcessInfo, warnings: &mut Vec<Warning>) -> Vec<VirtAddr> {
        let r = self.reader();
        let ctx = format!("threads of {} ({})", p.name, p.pid);
        let mut walk = |head_path: &str, ty: &str| -> Vec<VirtAddr> {
            let mut v = Vec::new();
            let head = match r.offset_of("_EPROCESS", head_path) {
                Ok(o) => VirtAddr(p.address.0.wrapping_add(o)),
                Err(e) => {
                    warnings
                        .push(Warning::from_error(ctx.clone(), &e).incomplete(ModelPart::Threads));
                    return v;
                }
            };
            let adjust = if ty == "_KTHREAD" {
                r.offset_of("_ETHREAD", "Tcb").unwrap_or(0)
            } else {
                0
            };
            match r.iter_list(head, ty, "ThreadListEntry", MAX_THREADS_PER_PROCESS) {
                Ok(it) => {
                    for t in it {
                        match t {
                            Ok(a) => v.push(VirtAddr(a.0.wrapping_sub(adjust))),
                            Err(e) => warnings.push(
                                Warning::from_error(ctx.clone(), &e).incomplete(ModelPart::Threads),
                            ),
                        }
                    }
                }
                Err(e) => warnings
                    .push(Warning::from_error(ctx.clone(), &e).incomplete(ModelPart::Threads)),
            }
            v
        };
        let v = walk("ThreadListHead", "_ETHREAD");
        if !v.is_empty() {
            return v;
        }
        walk("Pcb.ThreadListHead", "_KTHREAD")
    }

    /// Read one `_ETHREAD`; `process` names its owner when known.
    pub fn thread_at(&self, addr: VirtAddr, process: Option<&ProcessInfo>) -> Result<ThreadInfo> {
        let et = self.object("_ETHREAD", addr)?;
        let tcb = et.field("Tcb")?;
        let ctx = format!("thread {addr}");
        let mut warnings = Vec::new();
        let state_raw = tcb.u64("State")?;
        let state = thread_state(self, state_raw);
        if let ThreadState::Unknown(_) = state {
            warnings.push(Warning::implausible(
                &ctx,
                Some(addr),
                format!("KTHREAD.State {state_raw} is not a thread state"),
            ));
        }
        let waiting = state == ThreadState::Waiting;
        let wait_reason = if waiting {
            let w = tcb.u64("WaitReason")?;
            let reason = wait_reason(self, w);
            if let WaitReason::Unknown(_) = reason {
                warnings.push(Warning::implausible(
                    &ctx,
                    Some(addr),
                    format!("KTHREAD.WaitReason {w} is not a wait reason"),
                ));
            }
            Some(reason)
        } else {
            None
        };
        let wait_time = tcb.u64("WaitTime").unwrap_or(0);
        let wait_ticks = if state.is_timed() {
            self.plausible_ticks_since(wait_time, &ctx, addr, &mut warnings)
        } else {
            None
        };
        let wait_seconds = wait_ticks.and_then(|t| self.ticks_to_seconds(t));
        let proc_addr = tcb.ptr("Process").unwrap_or_default();
        let owner = match process {
            Some(p) => Some(p.clone()),
            None => self
                .processes()
                .items
                .iter()
                .find(|p| p.address == proc_addr)
                .cloned(),
        };
        let cpu = self
            .cpus()
            .items
            .iter()
            .find(|c| c.current_thread == Some(addr))
            .map(|c| c.index);
        // A thread whose state cannot be read as a state may well be
        // waiting: its wait blocks are read, so that a cycle through it is
        // still seen (with the state's warning as part of the evidence).
        let waits_on = if waiting || matches!(state, ThreadState::Unknown(_)) {
            self.checked_waits(addr, &tcb, &ctx, &mut warnings)
        } else {
            Vec::new()
        };
        let irps = self.irp_list(&et).unwrap_or_default();
        Ok(ThreadInfo {
            address: addr,
            tid: et.u64("Cid.UniqueThread")?,
            pid: et.u64("Cid.UniqueProcess")?,
            process: owner.as_ref().map(|p| p.address).unwrap_or(proc_addr),
            process_name: owner.map(|p| p.name).unwrap_or_default(),
            state,
            wait_reason,
            wait_time,
            wait_ticks,
            wait_seconds,
            cpu,
            start_address: et.ptr("StartAddress").unwrap_or_default(),
            win32_start_address: et.ptr("Win32StartAddress").ok(),
            kernel_stack: tcb.ptr("KernelStack").ok(),
            waits_on,
            irps,
            warnings,
        })
    }

    /// Ticks since `wait_time`, or `None` with a warning when the clock
    /// makes that impossible: a zero tick count, or a wait that starts
    /// after the current tick (only knowable before the 32-bit `WaitTime`
    /// can have wrapped, in the first 2^32 ticks of uptime).
    fn plausible_ticks_since(
        &self,
        wait_time: u64,
        ctx: &str,
        addr: VirtAddr,
        warnings: &mut Vec<Warning>,
    ) -> Option<u64> {
        let now = self.tick_count().ok()?;
        if now == 0 {
            return None;
        }
        if now <= u64::from(u32::MAX) && wait_time > now {
            warnings.push(Warning::implausible(
                ctx,
                Some(addr),
                format!(
                    "KTHREAD.WaitTime {wait_time} is after the current tick {now}: how long it waited is unknown"
                ),
            ));
            return None;
        }
        self.ticks_since(wait_time)
    }

    /// The objects a waiting thread waits on, from its wait blocks, less
    /// the ones that cannot be: a wait block that cannot be read leaves the
    /// thread's wait unknown (the model is incomplete there); one that
    /// points at the thread itself or outside kernel space is dropped with
    /// a warning, so that it makes no cycle or owner of its own.
    fn checked_waits(
        &self,
        addr: VirtAddr,
        tcb: &Object<'_>,
        ctx: &str,
        warnings: &mut Vec<Warning>,
    ) -> Vec<VirtAddr> {
        let blocks = match self.wait_blocks(tcb) {
            Ok(b) => b,
            Err(e) => {
                warnings.push(
                    Warning::from_error(format!("wait blocks of {ctx}"), &e)
                        .incomplete(ModelPart::Waits),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(blocks.len());
        for (wb, obj) in blocks {
            let problem = if obj == addr.0 || obj == tcb.addr.0 {
                Some(format!(
                    "wait block {wb:#x} points at its own thread {obj:#x}"
                ))
            } else if obj < KERNEL_SPACE_START {
                Some(format!(
                    "wait block {wb:#x} points at {obj:#x}, which is not a kernel address"
                ))
            } else {
                None
            };
            match problem {
                Some(message) => warnings.push(
                    Warning::implausible(ctx, Some(VirtAddr(wb)), message)
                        .incomplete(ModelPart::Waits),
                ),
                None => out.push(VirtAddr(obj)),
            }
        }
        out
    }

    /// (wait block, object) pairs of a waiting thread: the circular
    /// `NextWaitBlock` chain from `WaitBlockList` (Win7), or
    /// `WaitBlockCount` consecutive blocks at `WaitBlockList` (Win8+).
    pub(crate) fn wait_blocks(&self, tcb: &Object<'_>) -> Result<Vec<(u64, u64)>> {
        let r = self.reader();
        let first = tcb.ptr("WaitBlockList")?;
        if first.0 == 0 {
            return Ok(Vec::new());
        }
        let wbt = r.ty("_KWAIT_BLOCK")?;
        let mut out = Vec::new();
        if r.resolve(wbt, "NextWaitBlock").is_ok() {
            let mut cur = first;
            let mut seen = std::collections::HashSet::new();
            while seen.insert(cur.0) && out.len() < MAX_WAIT_BLOCKS {
                let wb = r.object("_KWAIT_BLOCK", cur)?;
                let obj = wb.ptr("Object")?;
                if obj.0 != 0 {
                    out.push((cur.0, obj.0));
                }
                let next = wb.ptr("NextWaitBlock")?;
                if next.0 == 0 || next == first {
                    break;
                }
                cur = next;
            }
        } else {
            let count = if tcb.has("WaitBlockCount") {
                tcb.u64("WaitBlockCount")?.clamp(1, MAX_WAIT_BLOCKS as u64)
            } else {
                1
            };
            for i in 0..count {
                let a = VirtAddr(first.0.wrapping_add(i * wbt.size));
                let obj = r.object("_KWAIT_BLOCK", a)?.ptr("Object")?;
                if obj.0 != 0 {
                    out.push((a.0, obj.0));
                }
            }
        }
        Ok(out)
    }

    /// IRPs on `_ETHREAD.IrpList` (linked through `_IRP.ThreadListEntry`).
    pub(crate) fn irp_list(&self, et: &Object<'_>) -> Result<Vec<VirtAddr>> {
        let head = et.addr_of("IrpList")?;
        let mut v = Vec::new();
        for i in self
            .reader()
            .iter_list(head, "_IRP", "ThreadListEntry", MAX_IRPS_PER_THREAD)?
        {
            match i {
                Ok(a) => v.push(a),
                Err(e) if v.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(v)
    }

    /// The thread record for an ETHREAD address: from the listing when
    /// listed, else read directly.
    pub fn thread_info(&self, addr: VirtAddr) -> Result<ThreadInfo> {
        if let Some(t) = self.threads().items.iter().find(|t| t.address == addr) {
            return Ok(t.clone());
        }
        self.thread_at(addr, None)
    }
}
