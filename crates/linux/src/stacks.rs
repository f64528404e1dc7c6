//! Kernel stacks, unwound with the kernel's own ORC tables ([`crate::orc`])
//! as the kernel's `unwind_next_frame()` does, and with frame pointers
//! where an address has no ORC entry.
//!
//! A sleeping task starts from its saved switch frame (`thread.sp` points
//! at a `struct inactive_task_frame`); a CPU's current task starts from the
//! vCPU's registers. Every read is on a stack the walk knows (the task's
//! own, and for a running task its CPU's IRQ and exception stacks); the
//! walk may leave a stack once and never come back to it, and on one stack
//! the stack pointer only grows, so a corrupt table cannot make it loop.

use crate::error::{Error, Result};
use crate::kallsyms::KernelSymbol;
use crate::model::{
    CpuMode, FrameSource, Partial, RunningCpu, StackEnd, StackFrame, TaskStack, TaskState, Warning,
    WarningKind,
};
use crate::orc::{reg, OrcEntry, OrcLayout, OrcMemTable, OrcTable, OrcType, MAX_ORC_ENTRIES};
use crate::time::PerCpu;
use crate::view::Env;
use crate::warning;
use hangscope_x64::VirtAddr;

/// Most frames in one stack.
pub const MAX_DEPTH: usize = 256;
/// `THREAD_SIZE` when the kernel does not show it (16 KiB: x86-64
/// without KASAN).
const DEFAULT_THREAD_SIZE: u64 = 16 << 10;
/// Largest stack accepted.
const MAX_STACK_SIZE: u64 = 1 << 20;

/// A stack the walk may read: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackRange {
    /// Lowest address.
    pub start: u64,
    /// One past the highest.
    pub end: u64,
}

impl StackRange {
    fn holds(&self, addr: u64, len: u64) -> bool {
        addr >= self.start && addr.checked_add(len).is_some_and(|e| e <= self.end)
    }
}

/// Where a walk begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartState {
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer.
    pub bp: u64,
    /// `ip` is not a return address (an interrupted or a new task's): its
    /// own entry is looked up, not the one before it.
    pub signal: bool,
    /// The other registers, when the start is a CPU's registers.
    pub regs: Option<Registers>,
}

/// Registers an ORC entry may name, from a `pt_regs` or a vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registers {
    /// rdx.
    pub dx: u64,
    /// rdi.
    pub di: u64,
    /// r10.
    pub r10: u64,
    /// r13.
    pub r13: u64,
    /// rbp.
    pub bp: u64,
}

/// Field offsets of `struct pt_regs`, from the types.
#[derive(Debug, Clone, Copy)]
struct PtRegs {
    ip: u64,
    sp: u64,
    cs: u64,
    bp: u64,
    dx: u64,
    di: u64,
    r10: u64,
    r13: u64,
}

/// A module's text, table and symbols.
#[derive(Debug, Clone)]
struct ModuleCode {
    name: String,
    start: u64,
    end: u64,
    table: Option<OrcTable>,
    symbols: Vec<KernelSymbol>,
}

/// Everything a walk needs, read once per kernel.
#[derive(Debug)]
pub struct Unwinder<'a> {
    env: Env<'a>,
    layout: Option<OrcLayout>,
    core: Option<OrcMemTable>,
    core_text: Vec<(u64, u64)>,
    modules: Vec<ModuleCode>,
    pt_regs: Option<PtRegs>,
    fork_returns: Vec<u64>,
    thread_size: u64,
    /// Problems met while reading the tables.
    pub warnings: Vec<Warning>,
}

impl<'a> Unwinder<'a> {
    /// Read the kernel's and the modules' ORC tables. Missing parts become
    /// warnings: a kernel without ORC is walked with frame pointers.
    pub fn new(env: Env<'a>, modules: &[crate::model::ModuleInfo]) -> Unwinder<'a> {
        let r = env.r;
        let ks = env.kallsyms;
        let mut warnings = Vec::new();
        let layout = match OrcLayout::from_types(&r) {
            Ok(l) => Some(l),
            Err(e) => {
                warnings.push(warning(&e));
                None
            }
        };
        let core = layout.as_ref().and_then(|l| {
            let (start, stop, entries) = (
                ks.get("__start_orc_unwind_ip"),
                ks.get("__stop_orc_unwind_ip"),
                ks.get("__start_orc_unwind"),
            );
            let (Some(start), Some(stop), Some(entries)) = (start, stop, entries) else {
                warnings.push(warning(&Error::missing_symbol("__start_orc_unwind_ip")));
                return None;
            };
            let count = stop.checked_sub(start).map(|n| n / 4).unwrap_or(0);
            match OrcMemTable::new(r.mem, l, VirtAddr(start), VirtAddr(entries), count) {
                Ok(t) => Some(t),
                Err(e) => {
                    warnings.push(warning(&e));
                    None
                }
            }
        });
        let mut core_text = Vec::new();
        for (a, b) in [("_stext", "_etext"), ("_sinittext", "_einittext")] {
            if let (Some(a), Some(b)) = (ks.get(a), ks.get(b)) {
                if a < b {
                    core_text.push((a, b));
                }
            }
        }
        let mut mods = Vec::new();
        // The modules' tables are kept whole: all of them together get
        // one table's bound, so a long module list with damaged counts
        // cannot hold gigabytes.
        let mut orc_budget = MAX_ORC_ENTRIES;
        for m in modules {
            let (Some(base), Some(size)) = (m.base, m.size) else {
                continue;
            };
            let table = layout.as_ref().and_then(|l| {
                let o = r.object("module", m.module);
                let mut read = || -> Result<OrcTable> {
                    let n = o.uint("arch.num_orcs")?;
                    let refused = if n > size {
                        // One entry per instruction address at most.
                        Some(format!("arch.num_orcs is {n}, more than its {size} bytes of code"))
                    } else if n > orc_budget {
                        Some(format!("its {n} ORC entries pass the {MAX_ORC_ENTRIES} the modules' tables may hold in all; not read"))
                    } else {
                        None
                    };
                    if let Some(why) = refused {
                        return Err(Error::bad_data(m.module, why));
                    }
                    orc_budget -= n;
                    OrcTable::read(
                        &r,
                        l,
                        o.ptr("arch.orc_unwind_ip")?,
                        o.ptr("arch.orc_unwind")?,
                        n,
                    )
                };
                match read() {
                    Ok(t) => Some(t),
                    Err(mut e) => {
                        // Damaged data is named by its module, whichever
                        // check found it.
                        if let crate::error::ErrorKind::BadData(w) = &mut e.kind {
                            *w = format!("module {}: {w}", m.name);
                        }
                        warnings.push(warning(&e));
                        None
                    }
                }
            });
            let mut symbols: Vec<KernelSymbol> = crate::modules::module_symbols(&env, m.module)
                .unwrap_or_default()
                .into_iter()
                .filter(|s| matches!(s.kind, 't' | 'T' | 'w' | 'W') && s.addr != 0)
                .collect();
            symbols.sort_by_key(|s| s.addr);
            let mut end = base.0.saturating_add(size);
            if let Some((_, hi)) = table.as_ref().and_then(OrcTable::range) {
                end = end.max(hi);
            }
            mods.push(ModuleCode {
                name: m.name.clone(),
                start: base.0,
                end,
                table,
                symbols,
            });
        }
        let pt_regs = (|| {
            let o = |f: &str| r.offset("pt_regs", f);
            Ok::<_, Error>(PtRegs {
                ip: o("ip")?,
                sp: o("sp")?,
                cs: o("cs")?,
                bp: o("bp")?,
                dx: o("dx")?,
                di: o("di")?,
                r10: o("r10")?,
                r13: o("r13")?,
            })
        })();
        let pt_regs = match pt_regs {
            Ok(p) => Some(p),
            Err(e) => {
                warnings.push(warning(&e));
                None
            }
        };
        let fork_returns = ["ret_from_fork", "ret_from_fork_asm"]
            .iter()
            .filter_map(|n| ks.get(n))
            .collect();
        // The init task's stack is THREAD_SIZE long, between these two.
        let thread_size = match (ks.get("__start_init_task"), ks.get("__end_init_task")) {
            (Some(a), Some(b)) if b > a && b - a <= MAX_STACK_SIZE => b - a,
            _ => DEFAULT_THREAD_SIZE,
        };
        Unwinder {
            env,
            layout,
            core,
            core_text,
            modules: mods,
            pt_regs,
            fork_returns,
            thread_size,
            warnings,
        }
    }

    /// `THREAD_SIZE`: the length of a task's kernel stack.
    pub fn thread_size(&self) -> u64 {
        self.thread_size
    }

    fn module_at(&self, pc: u64) -> Option<&ModuleCode> {
        self.modules.iter().find(|m| pc >= m.start && pc < m.end)
    }

    fn in_core_text(&self, pc: u64) -> bool {
        self.core_text.iter().any(|&(a, b)| pc >= a && pc < b)
    }

    /// Whether `pc` is in the kernel's or a module's text.
    pub fn is_text(&self, pc: u64) -> bool {
        self.in_core_text(pc) || self.module_at(pc).is_some()
    }

    /// The ORC entry covering `ip`, if a table has one; an error when the
    /// core table is found out of order on the way.
    pub fn find(&self, ip: u64) -> Result<Option<OrcEntry>> {
        let Some(layout) = self.layout.as_ref() else {
            return Ok(None);
        };
        if self.in_core_text(ip) {
            return match self.core.as_ref() {
                Some(t) => t.find(self.env.r.mem, layout, ip),
                None => Ok(None),
            };
        }
        Ok(self
            .module_at(ip)
            .and_then(|m| m.table.as_ref())
            .and_then(|t| t.find(layout, ip)))
    }

    /// A frame for `pc`, named from kallsyms (a module's own for a module).
    pub fn frame(&self, pc: u64, sp: u64, source: FrameSource) -> StackFrame {
        let (mut function, mut offset, mut module) = (None, None, None);
        if let Some(m) = self.module_at(pc) {
            module = Some(m.name.clone());
            let i = m.symbols.partition_point(|s| s.addr <= pc);
            if let Some(s) = i.checked_sub(1).and_then(|i| m.symbols.get(i)) {
                function = Some(s.name.clone());
                offset = Some(pc - s.addr);
            }
        } else if self.in_core_text(pc) {
            if let Some((s, off)) = self.env.kallsyms.symbol_at(pc) {
                function = Some(s.name.to_string());
                offset = Some(off);
            }
        }
        StackFrame {
            pc: VirtAddr(pc),
            sp: VirtAddr(sp),
            function,
            offset,
            module,
            source,
        }
    }

    /// Walk from `start` over `stacks` (the first holds the start's stack
    /// pointer): the frames, why the walk ended, and what went wrong.
    pub fn walk(
        &self,
        start: StartState,
        stacks: &[StackRange],
    ) -> (Vec<StackFrame>, StackEnd, Vec<Warning>) {
        let mut w = Walk {
            u: self,
            stacks,
            left: Vec::new(),
            frames: Vec::new(),
            warnings: Vec::new(),
        };
        let end = w.run(start);
        (w.frames, end, w.warnings)
    }
}

struct Walk<'u, 'a> {
    u: &'u Unwinder<'a>,
    stacks: &'u [StackRange],
    /// Stacks the walk has left (indexes into `stacks`).
    left: Vec<usize>,
    frames: Vec<StackFrame>,
    warnings: Vec<Warning>,
}

impl Walk<'_, '_> {
    fn stack_of(&self, addr: u64, len: u64) -> Option<usize> {
        self.stacks.iter().position(|s| s.holds(addr, len))
    }

    fn fail(&mut self, at: u64, what: String) -> StackEnd {
        self.warnings.push(Warning {
            kind: WarningKind::BadData,
            address: Some(VirtAddr(at)),
            message: what,
        });
        StackEnd::Error
    }

    /// Read a word on a known stack the walk has not left.
    fn read_stack(&self, addr: u64) -> std::result::Result<u64, String> {
        match self.stack_of(addr, 8) {
            Some(i) if !self.left.contains(&i) => self
                .u
                .env
                .r
                .read_uint(VirtAddr(addr), 8)
                .map_err(|e| e.to_string()),
            _ => Err(format!("{addr:#x} is on no stack of this task")),
        }
    }

    fn read_regs(
        &self,
        p: &PtRegs,
        base: u64,
        full: bool,
    ) -> std::result::Result<(u64, u64, u64, Option<Registers>), String> {
        let at = |off: u64| self.read_stack(base.wrapping_add(off));
        let (ip, sp, cs) = (at(p.ip)?, at(p.sp)?, at(p.cs)?);
        let regs = if full {
            Some(Registers {
                dx: at(p.dx)?,
                di: at(p.di)?,
                r10: at(p.r10)?,
                r13: at(p.r13)?,
                bp: at(p.bp)?,
            })
        } else {
            None
        };
        Ok((ip, sp, cs, regs))
    }

    fn run(&mut self, start: StartState) -> StackEnd {
        let (mut ip, mut sp, mut bp, mut signal) = (start.ip, start.sp, start.bp, start.signal);
        let mut regs = start.regs;
        let mut source = FrameSource::Start;
        let Some(mut stack) = self.stack_of(sp, 8) else {
            self.frames.push(self.u.frame(ip, sp, source));
            return self.fail(
                sp,
                format!("the stack pointer {sp:#x} is on no known stack"),
            );
        };
        for _ in 0..MAX_DEPTH {
            self.frames.push(self.u.frame(ip, sp, source));
            if !self.u.is_text(ip) {
                return self.fail(ip, format!("{ip:#x} is not in kernel text"));
            }
            let lookup = if signal { ip } else { ip.wrapping_sub(1) };
            let entry = match self.u.find(lookup) {
                Ok(Some(e)) => {
                    source = FrameSource::Orc;
                    e
                }
                Ok(None) => {
                    source = FrameSource::FramePointer;
                    OrcEntry::FRAME_POINTER
                }
                Err(e) => return self.fail(ip, e.to_string()),
            };
            match entry.kind {
                OrcType::EndOfStack => return StackEnd::EndOfStack,
                OrcType::Undefined => {
                    return self.fail(ip, format!("no unwind information at {ip:#x}"))
                }
                _ => {}
            }
            let reg_value = |r: Option<Registers>, f: fn(&Registers) -> u64| r.as_ref().map(f);
            let base = match entry.sp_reg {
                reg::SP | reg::SP_INDIRECT => Some(sp),
                reg::BP => Some(bp.wrapping_add(entry.sp_offset as i64 as u64)),
                reg::BP_INDIRECT => Some(bp.wrapping_add(entry.sp_offset as i64 as u64)),
                reg::DX => reg_value(regs, |r| r.dx),
                reg::DI => reg_value(regs, |r| r.di),
                reg::R10 => reg_value(regs, |r| r.r10),
                reg::R13 => reg_value(regs, |r| r.r13),
                _ => None,
            };
            let Some(mut cfa) = base else {
                return self.fail(
                    ip,
                    format!(
                        "the frame at {ip:#x} needs register {} which is not known",
                        entry.sp_reg
                    ),
                );
            };
            match entry.sp_reg {
                reg::SP => cfa = cfa.wrapping_add(entry.sp_offset as i64 as u64),
                reg::SP_INDIRECT | reg::BP_INDIRECT => {
                    cfa = match self.read_stack(cfa) {
                        Ok(v) => v,
                        Err(e) => return self.fail(ip, e),
                    };
                    if entry.sp_reg == reg::SP_INDIRECT {
                        cfa = cfa.wrapping_add(entry.sp_offset as i64 as u64);
                    }
                }
                reg::DX | reg::DI | reg::R10 | reg::R13 => {
                    cfa = cfa.wrapping_add(entry.sp_offset as i64 as u64)
                }
                _ => {}
            }
            let old_bp = bp;
            let (next_ip, next_sp);
            match entry.kind {
                OrcType::Call => {
                    next_ip = match self.read_stack(cfa.wrapping_sub(8)) {
                        Ok(v) => v,
                        Err(e) => return self.fail(ip, e),
                    };
                    next_sp = cfa;
                    regs = None;
                    signal = entry.signal;
                    if source == FrameSource::Orc {
                        source = FrameSource::Orc;
                    }
                }
                OrcType::Regs | OrcType::RegsPartial => {
                    let Some(p) = self.u.pt_regs else {
                        return self.fail(ip, "struct pt_regs is not in the types".into());
                    };
                    let full = entry.kind == OrcType::Regs;
                    let base = if full { cfa } else { cfa.wrapping_sub(p.ip) };
                    let (rip, rsp, cs, r) = match self.read_regs(&p, base, full) {
                        Ok(v) => v,
                        Err(e) => return self.fail(ip, e),
                    };
                    if cs & 3 == 3 {
                        return StackEnd::UserMode;
                    }
                    next_ip = rip;
                    next_sp = rsp;
                    regs = r;
                    signal = true;
                    source = FrameSource::Regs;
                }
                _ => return StackEnd::Error,
            }
            bp = match entry.bp_reg {
                reg::UNDEFINED => regs.map_or(bp, |r| r.bp),
                reg::PREV_SP => {
                    match self.read_stack(cfa.wrapping_add(entry.bp_offset as i64 as u64)) {
                        Ok(v) => v,
                        Err(e) => return self.fail(ip, e),
                    }
                }
                reg::BP => {
                    match self.read_stack(old_bp.wrapping_add(entry.bp_offset as i64 as u64)) {
                        Ok(v) => v,
                        Err(e) => return self.fail(ip, e),
                    }
                }
                other => {
                    return self.fail(ip, format!("unknown frame-pointer base register {other}"))
                }
            };
            // On one stack the stack pointer only grows; a stack left is
            // never come back to.
            match self.stack_of(next_sp, 8) {
                Some(s) if s == stack => {
                    if next_sp <= sp {
                        return self.fail(
                            ip,
                            format!("the caller's stack pointer {next_sp:#x} is not above {sp:#x}"),
                        );
                    }
                }
                Some(s) if !self.left.contains(&s) => {
                    self.left.push(stack);
                    stack = s;
                }
                _ => {
                    // The first walk on a stack may end at its very top
                    // (a kernel thread's last frame has nothing above).
                    return self.fail(
                        ip,
                        format!(
                            "the caller's stack pointer {next_sp:#x} is on no stack of this task"
                        ),
                    );
                }
            }
            ip = next_ip;
            sp = next_sp;
        }
        StackEnd::DepthLimit
    }
}

/// A task's own kernel stack.
fn task_stack(env: &Env<'_>, task: VirtAddr, size: u64) -> Result<StackRange> {
    let base = env.r.object("task_struct", task).ptr("stack")?;
    let end = base
        .0
        .checked_add(size)
        .ok_or_else(|| Error::bad_data(task, "task_struct.stack wraps"))?;
    Ok(StackRange { start: base.0, end })
}

/// A CPU's IRQ and exception stacks.
fn cpu_stacks(env: &Env<'_>, pc: Option<&PerCpu>, cpu: u32, size: u64) -> Vec<StackRange> {
    let r = env.r;
    let ks = env.kallsyms;
    let mut out = Vec::new();
    let Some(pc) = pc else { return out };
    // `hardirq_stack_ptr` (before 6.2) or `pcpu_hot.hardirq_stack_ptr`
    // points at the IRQ stack's top word.
    let top = if let Some(sym) = ks.get("hardirq_stack_ptr") {
        pc.addr(sym, cpu).and_then(|a| r.read_uint(a, 8).ok())
    } else {
        ks.get("pcpu_hot")
            .and_then(|sym| pc.addr(sym, cpu))
            .and_then(|a| r.object("pcpu_hot", a).uint("hardirq_stack_ptr").ok())
    };
    if let Some(top) = top.filter(|&t| t > size) {
        out.push(StackRange {
            start: top + 8 - size,
            end: top + 8,
        });
    }
    if let (Some(sym), Ok(len)) = (
        ks.get("cea_exception_stacks"),
        r.size_of_struct("cea_exception_stacks"),
    ) {
        if let Some(base) = pc.addr(sym, cpu).and_then(|a| r.read_uint(a, 8).ok()) {
            if base != 0 && len <= MAX_STACK_SIZE {
                out.push(StackRange {
                    start: base,
                    end: base.saturating_add(len),
                });
            }
        }
    }
    out
}

/// The saved switch frame of a sleeping task.
fn saved_start(env: &Env<'_>, u: &Unwinder<'_>, task: VirtAddr) -> Result<StartState> {
    let r = env.r;
    let sp = r.object("task_struct", task).uint("thread.sp")?;
    let frame = r.object("inactive_task_frame", VirtAddr(sp));
    let ip = frame.uint("ret_addr")?;
    let bp = frame.uint("bp")?;
    let size = r.size_of_struct("inactive_task_frame")?;
    Ok(StartState {
        ip,
        sp: sp.wrapping_add(size),
        bp,
        // A task that never ran resumes in ret_from_fork, which is not a
        // return address.
        signal: u.fork_returns.contains(&ip),
        regs: None,
    })
}

/// Each CPU, its current task and what it runs (from the vCPU registers).
pub fn running(
    env: &Env<'_>,
    u: &Unwinder<'_>,
    vcpus: &[hangscope_dump::CpuState],
) -> Result<Partial<RunningCpu>> {
    let cpus = crate::tasks::cpus(env)?;
    let pc = PerCpu::read(env.r.mem, env.kallsyms);
    let mut out = Partial {
        items: Vec::new(),
        warnings: cpus.warnings,
    };
    for c in cpus.items {
        let vcpu = vcpus.iter().find(|v| v.index == c.cpu);
        let mut item = RunningCpu {
            cpu: c.cpu,
            task: c.current,
            pid: c.current_pid,
            comm: c.current_comm.clone(),
            mode: CpuMode::NoRegisters,
            rip: None,
            rsp: None,
            frames: Vec::new(),
            end: StackEnd::NotWalked,
            warnings: Vec::new(),
        };
        if let Some(v) = vcpu.filter(|v| v.rip != 0 || v.gpr[7] != 0) {
            let (rsp, rbp) = (v.gpr[7], v.gpr[6]);
            item.rip = Some(VirtAddr(v.rip));
            item.rsp = Some(VirtAddr(rsp));
            item.mode = if v.selectors[0] & 3 == 3 {
                CpuMode::User
            } else if c.current_pid == Some(0) {
                CpuMode::Idle
            } else {
                CpuMode::Kernel
            };
            if item.mode != CpuMode::User {
                let mut stacks = Vec::new();
                if let Some(t) = c.current.filter(|t| t.0 != 0) {
                    match task_stack(env, t, u.thread_size) {
                        Ok(s) => stacks.push(s),
                        Err(e) => item.warnings.push(warning(&e)),
                    }
                }
                stacks.extend(cpu_stacks(env, pc.as_ref(), c.cpu, u.thread_size));
                let start = StartState {
                    ip: v.rip,
                    sp: rsp,
                    bp: rbp,
                    signal: true,
                    regs: Some(Registers {
                        dx: v.gpr[3],
                        di: v.gpr[5],
                        r10: v.gpr[10],
                        r13: v.gpr[13],
                        bp: rbp,
                    }),
                };
                let (frames, end, w) = u.walk(start, &stacks);
                item.frames = frames;
                item.end = end;
                item.warnings.extend(w);
            } else {
                item.end = StackEnd::UserMode;
            }
        }
        out.items.push(item);
    }
    Ok(out)
}

/// Every task's kernel stack: a CPU's current task from the registers
/// (see [`running`]), every other from its saved switch frame.
pub fn stacks(
    env: &Env<'_>,
    u: &Unwinder<'_>,
    tasks: Partial<crate::model::TaskInfo>,
    running: &[RunningCpu],
) -> Partial<TaskStack> {
    let mut out = Partial {
        items: Vec::new(),
        warnings: tasks.warnings,
    };
    out.warnings.extend(u.warnings.iter().cloned());
    for t in tasks.items {
        let mut s = TaskStack {
            task: t.task,
            pid: t.pid,
            comm: t.comm.clone(),
            state: t.state,
            frames: Vec::new(),
            end: StackEnd::NotWalked,
            warnings: Vec::new(),
        };
        if let Some(cpu) = running.iter().find(|c| c.task == Some(t.task)) {
            s.frames = cpu.frames.clone();
            s.end = cpu.end.clone();
            s.warnings = cpu.warnings.clone();
            if cpu.mode == CpuMode::NoRegisters {
                s.warnings.push(Warning {
                    kind: WarningKind::Unsupported,
                    address: Some(t.task),
                    message: format!(
                        "runs on CPU {} whose registers the dump does not have",
                        cpu.cpu
                    ),
                });
            }
            out.items.push(s);
            continue;
        }
        let walked = task_stack(env, t.task, u.thread_size)
            .and_then(|stack| Ok((stack, saved_start(env, u, t.task)?)));
        match walked {
            Ok((stack, start)) => {
                let (frames, end, w) = u.walk(start, &[stack]);
                s.frames = frames;
                s.end = end;
                s.warnings = w;
            }
            Err(e) => {
                s.end = StackEnd::Error;
                s.warnings.push(warning(&e));
            }
        }
        if t.state == TaskState::Dead && s.frames.is_empty() {
            s.end = StackEnd::NotWalked;
        }
        out.items.push(s);
    }
    out
}

/// The core kernel image's name in OS-neutral frames, as crash and drgn
/// call it.
pub const KERNEL_IMAGE: &str = "vmlinux";

impl From<&StackFrame> for hangscope_waitgraph::Frame {
    /// `vmlinux!function+0xoff` for the kernel image, `module!function+0xoff`
    /// for a module, the bare address for an unnamed pc.
    fn from(f: &StackFrame) -> hangscope_waitgraph::Frame {
        let module = f.module.as_deref().unwrap_or(KERNEL_IMAGE);
        match (&f.function, f.offset) {
            (Some(func), Some(off)) => {
                hangscope_waitgraph::Frame::in_function(f.pc.0, module, func.as_str(), off)
            }
            _ => hangscope_waitgraph::Frame::unnamed(f.pc.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_convert_to_the_wait_graphs() {
        let f = StackFrame {
            pc: VirtAddr(0xffff_ffff_c0a0_1027),
            sp: VirtAddr(0xffff_a000_0001_3e80),
            function: Some("hangdemo_ab".into()),
            offset: Some(0x27),
            module: Some("hangdemo".into()),
            source: FrameSource::Orc,
        };
        assert_eq!(f.to_string(), "hangdemo_ab+0x27 [hangdemo]");
        let w = hangscope_waitgraph::Frame::from(&f);
        assert_eq!(w.to_string(), "hangdemo!hangdemo_ab+0x27");
        let core = StackFrame {
            module: None,
            function: Some("schedule".into()),
            offset: Some(0x5a),
            ..f.clone()
        };
        assert_eq!(
            hangscope_waitgraph::Frame::from(&core).to_string(),
            "vmlinux!schedule+0x5a"
        );
        let bare = StackFrame {
            function: None,
            offset: None,
            module: None,
            ..f
        };
        assert_eq!(
            hangscope_waitgraph::Frame::from(&bare).address.0,
            0xffff_ffff_c0a0_1027
        );
    }
}
