//! Kernel stacks: every thread's call chain, unwound with the modules' own
//! x64 unwind data (`hangscope-unwind`) and symbolised as `module!symbol+off`
//! (WinDbg's `!thread`, `!stacks`, `!running -t`).
//!
//! Where a walk starts:
//! - a **running** thread (the `CurrentThread` of a KPRCB): the registers of
//!   the vCPU whose GS base is that processor's KPCR; the CPU's DPC stack is
//!   an allowed second stack. CS&3 == 3 means the CPU was in user mode: no
//!   kernel frames.
//! - any **other** thread: its saved switch frame at `KTHREAD.KernelStack`:
//!   RIP = the frame's return address (into `KiSwapContext`), RSP = just
//!   above the frame, RBP = the saved RBP. The layout comes from the
//!   symbols' `_KSWITCH_FRAME` when they have it, else the public headers'
//!   0x40-byte frame (`Rbp` at +0x30, `Return` at +0x38). When that start
//!   does not unwind to a complete stack, the slots above `KernelStack` are
//!   probed ([`hangscope_unwind::Unwinder::probe_start`]) and the report
//!   says so.
//!
//! Symbols: the kernel's own table for `nt`; for other modules their own
//! table when the symbol path has one for the PDB their RSDS record names
//! ([`Kernel::module_symbols`]), else their PE export names, else
//! `module+0xoff`. An address outside every module is shown as the bare
//! address. Modules on a stack that had no table are listed with what to
//! fetch ([`StackInfo::missing_symbols`], [`StackWalker::missing_symbols`]).

use crate::kernel::{Kernel, KERNEL_SPACE_START};
use crate::model::{Frame as FrameName, MissingSymbols, ThreadInfo, Warning, WarningKind};
pub use crate::model::{FrameInfo, RunningCpu, StackGroup, StackInfo, StackThread, StacksReport};
use hangscope_pe::{ExportLimits, PeHeaders};
use hangscope_symbols::SymbolTable;
use hangscope_unwind::{
    Context, Frame, FrameKind, Module, ModuleList, Reg, RipOrigin, StackRange, StopReason,
    UnwindOptions, Unwinder,
};
use hangscope_x64::{VirtAddr, VirtualMemory};
use std::collections::{BTreeMap, HashMap};

/// Bound on export names read per module.
const MAX_EXPORTS: u32 = 65_536;
/// Bound on one export name's length.
const MAX_NAME: usize = 256;
/// Window probed above `KernelStack` when the switch frame does not unwind.
const PROBE_WINDOW: u64 = 0x100;
/// A DPC stack's size (KERNEL_STACK_SIZE).
const DPC_STACK_SIZE: u64 = 0x6000;

/// Which threads [`Kernel::stacks`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackFilter {
    /// Only this process.
    pub pid: Option<u64>,
    /// Only stacks with a frame whose symbol contains this (case-insensitive,
    /// like `!stacks 2 Ntfs`).
    pub contains: Option<String>,
}

/// A processor's current thread: where its registers are.
#[derive(Debug, Clone, Copy)]
struct Running {
    cpu: u32,
    kprcb: VirtAddr,
    /// Index into the dump's CPU states (matched by GS base = KPCR).
    state: Option<usize>,
    /// The CPU's DPC stack.
    dpc: Option<StackRange>,
}

/// One module's names: the kernel's table, or the module's own table (when
/// the symbol path has it) and its export names.
#[derive(Debug)]
enum Names {
    Kernel,
    Module {
        table: Option<SymbolTable>,
        exports: BTreeMap<u32, String>,
    },
}

/// A stack walker over one kernel: the module list, the unwinder's caches,
/// each module's names and the vCPU of each running thread, built once and
/// reused for every thread.
#[derive(Debug)]
pub struct StackWalker<'k, 'd> {
    k: &'k Kernel<'d>,
    modules: ModuleList,
    unwinder: Unwinder,
    names: HashMap<usize, Names>,
    /// Modules (by index) whose table is missing, in the order met.
    missing: Vec<(usize, MissingSymbols)>,
    /// Running thread -> (CPU number, index into the dump's CPU states,
    /// the CPU's DPC stack range).
    running: HashMap<VirtAddr, Running>,
    warnings: Vec<Warning>,
}

fn kind_name(k: &FrameKind) -> &'static str {
    match k {
        FrameKind::Normal => "normal",
        FrameKind::Epilog => "epilog",
        FrameKind::MachineFrame { .. } => "machine_frame",
        FrameKind::LeafNoUnwindInfo => "leaf",
        FrameKind::NotUnwound => "not_unwound",
        _ => "other",
    }
}

/// A module's short name as WinDbg shows it: `nt` for the kernel, else the
/// file name without its extension.
fn module_display(name: &str, is_kernel: bool) -> String {
    if is_kernel {
        return "nt".into();
    }
    name.rsplit_once('.')
        .map(|x| x.0)
        .unwrap_or(name)
        .to_string()
}

impl<'k, 'd> StackWalker<'k, 'd> {
    /// A walker for `k` (reads the module list and the CPUs once).
    pub fn new(k: &'k Kernel<'d>) -> StackWalker<'k, 'd> {
        let mods = k.modules();
        let warnings = mods.warnings.clone();
        let mut list: Vec<Module> = mods
            .items
            .iter()
            .filter(|m| m.size > 0 && m.size < 0x1_0000_0000)
            .map(|m| Module::new(m.base.0, m.size, m.name.clone()))
            .collect();
        if !list.iter().any(|m| m.base.0 == k.base().0) {
            // The module list was unreadable: the kernel at least.
            list.insert(0, Module::new(k.base().0, 0x100_0000, "ntoskrnl.exe"));
        }
        let r = k.reader();
        let mut running = HashMap::new();
        for c in &k.cpus().items {
            let Some(t) = c.current_thread.filter(|t| t.0 != 0) else {
                continue;
            };
            let state = k
                .cpu_registers()
                .iter()
                .position(|s| s.gs_base == Some(c.kpcr.0) || s.kernel_gs_base == Some(c.kpcr.0))
                .or_else(|| {
                    let i = c.index as usize;
                    (i < k.cpu_registers().len() && k.cpu_registers().len() == k.cpus().items.len())
                        .then_some(i)
                });
            let dpc = r
                .object("_KPRCB", c.kprcb)
                .and_then(|o| o.ptr("DpcStack"))
                .ok()
                .filter(|p| p.0 > DPC_STACK_SIZE)
                .map(|p| StackRange::new(p.0 - DPC_STACK_SIZE, p.0 + 0x100));
            running.insert(
                t,
                Running {
                    cpu: c.index,
                    kprcb: c.kprcb,
                    state,
                    dpc,
                },
            );
        }
        StackWalker {
            k,
            modules: ModuleList::new(list),
            unwinder: Unwinder::new(),
            names: HashMap::new(),
            missing: Vec::new(),
            running,
            warnings,
        }
    }

    /// Problems met while setting up (module list, CPUs).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Modules with frames on the stacks walked so far that have no symbol
    /// table, each once in the order met, with what to fetch.
    pub fn missing_symbols(&self) -> Vec<MissingSymbols> {
        self.missing.iter().map(|(_, m)| m.clone()).collect()
    }

    /// The stack of the thread at `thread` (`_ETHREAD`).
    ///
    /// Long on purpose: one ladder of starts in the order of their
    /// reliability (the vCPU's registers, the KPRCB's saved context, the
    /// switch frame at `KernelStack`, a probe above it), each rung either
    /// returning its walk or saying why it fell through to the next.
    pub fn thread_stack(&mut self, thread: VirtAddr) -> StackInfo {
        let mut out = StackInfo {
            thread,
            ..StackInfo::default()
        };
        let k = self.k;
        let t = match k.object("_ETHREAD", thread) {
            Ok(t) => t,
            Err(e) => {
                out.start = "none: the thread is unreadable".into();
                out.warnings.push(Warning::from_error("thread", &e));
                return out;
            }
        };
        let limit = t.u64("Tcb.StackLimit").unwrap_or(0);
        let base = t.u64("Tcb.StackBase").unwrap_or(0);
        let range = (limit != 0 && base > limit && base - limit <= 0x10_0000)
            .then(|| StackRange::new(limit, base));
        if range.is_none() {
            out.warnings.push(Warning {
                context: "stack limits".into(),
                kind: WarningKind::BadData,
                message: format!(
                    "StackLimit {limit:#x} / StackBase {base:#x} are not a kernel stack: the walk is not bounded by them"
                ),
                address: Some(thread),
                leaves_incomplete: None,
            });
        }
        let mem = k.memory();
        if let Some(&run) = self.running.get(&thread) {
            let regs = match run.state {
                Some(ci) => {
                    let st = &k.cpu_registers()[ci];
                    let from = format!("vCPU {} registers", run.cpu);
                    Some((Context::from_cpu_state(st), st.selectors[0], from))
                }
                None => context_frame(k, run.kprcb).map(|(c, cs)| {
                    let from = format!(
                        "CPU {} KPRCB.ProcessorState.ContextFrame (no vCPU registers in the dump)",
                        run.cpu
                    );
                    (c, cs, from)
                }),
            };
            match regs {
                Some((_, cs, from)) if cs & 3 == 3 => {
                    out.start = format!("{from}: in user mode (CS {cs:#x}), no kernel frames");
                    out.stop = "user_mode".into();
                    out.stop_detail = "the processor was running user-mode code".into();
                    out.complete = true;
                    return out;
                }
                Some((ctx, _, from)) => {
                    let opts = UnwindOptions {
                        stack_limits: range,
                        other_stacks: run.dpc.into_iter().collect(),
                        ..UnwindOptions::default()
                    };
                    out.start = format!("{from} (RIP {:#x}, RSP {:#x})", ctx.rip, ctx.rsp());
                    let stack = self.unwinder.unwind(&mem, &self.modules, ctx, &opts);
                    self.fill(&mut out, &stack.frames, &stack.stop);
                    return out;
                }
                None => out.warnings.push(Warning {
                    context: format!("CPU {}", run.cpu),
                    kind: WarningKind::Missing,
                    message:
                        "running, but the dump has no registers for its processor (no vCPU \
                              state, empty KPRCB.ProcessorState): walked from its stale KernelStack"
                            .into(),
                    address: Some(run.kprcb),
                    leaves_incomplete: None,
                }),
            }
        }
        let ks = match t.u64("Tcb.KernelStack") {
            Ok(0) => {
                out.start = "none: KernelStack is 0".into();
                return out;
            }
            // A stack pointer outside the kernel half is damage: walking
            // from it would read user memory or wrap past the top.
            Ok(v) if v < KERNEL_SPACE_START => {
                out.start = format!("none: KernelStack {v:#x} is not a kernel address");
                out.warnings.push(Warning::implausible(
                    "KernelStack",
                    Some(thread),
                    format!(
                        "Tcb.KernelStack {v:#x} is below the kernel half ({KERNEL_SPACE_START:#x})"
                    ),
                ));
                return out;
            }
            Ok(v) => v,
            Err(e) => {
                out.start = "none: KernelStack is unreadable".into();
                out.warnings.push(Warning::from_error("KernelStack", &e));
                return out;
            }
        };
        if t.u64("Tcb.KernelStackResident")
            .map(|v| v & 1 == 0)
            .unwrap_or(false)
        {
            out.warnings.push(Warning {
                context: "KernelStack".into(),
                kind: WarningKind::NotResident,
                message: "KernelStackResident is clear: the stack may be paged out".into(),
                address: Some(thread),
                leaves_incomplete: None,
            });
        }
        let opts = UnwindOptions {
            stack_limits: range,
            ..UnwindOptions::default()
        };
        let r = k.reader();
        let (rbp_off, ret_off, size, from) = match (
            r.offset_of("_KSWITCH_FRAME", "Rbp"),
            r.offset_of("_KSWITCH_FRAME", "Return"),
        ) {
            (Ok(b), Ok(ret)) => (b, ret, ret + 8, "the symbols' _KSWITCH_FRAME"),
            _ => (
                0x30,
                0x38,
                0x40,
                "the public 0x40-byte KSWITCH_FRAME layout (not in the symbols)",
            ),
        };
        let rip = mem.read_u64(VirtAddr(ks.wrapping_add(ret_off)));
        let rbp = mem.read_u64(VirtAddr(ks.wrapping_add(rbp_off)));
        let mut first = None;
        if rip == Ok(0) {
            // Never switched out through SwapContext (or a zeroed frame):
            // nothing to walk, and probing stale slots would invent frames.
            out.start =
                format!("none: the switch frame at KernelStack {ks:#x} holds no return address");
            out.stop_detail = "no saved context".into();
            return out;
        }
        if let Ok(rip) = rip {
            let mut ctx = Context::new(rip, ks.wrapping_add(size));
            if let Ok(b) = rbp {
                ctx = ctx.with(Reg::Rbp, b);
            }
            let stack = self.unwinder.unwind(&mem, &self.modules, ctx, &opts);
            if stack.stop.is_complete() {
                out.start = format!("switch frame at KernelStack {ks:#x} ({from})");
                self.fill(&mut out, &stack.frames, &stack.stop);
                return out;
            }
            first = Some(stack);
        }
        let base_ctx = Context::new(0, ks);
        if let Some((ctx, stack)) =
            self.unwinder
                .probe_start(&mem, &self.modules, base_ctx, ks, PROBE_WINDOW, &opts)
        {
            out.start = format!(
                "probe: return address found at KernelStack+{:#x} ({from} did not unwind)",
                ctx.rsp().wrapping_sub(ks.wrapping_add(8))
            );
            self.fill(&mut out, &stack.frames, &stack.stop);
            return out;
        }
        match first {
            Some(stack) => {
                out.start = format!(
                    "switch frame at KernelStack {ks:#x} ({from}); incomplete, no probe worked"
                );
                self.fill(&mut out, &stack.frames, &stack.stop);
            }
            None => {
                out.start = format!("none: the switch frame at {ks:#x} is unreadable");
                if let Err(e) = rip {
                    out.stop_detail = e.to_string();
                }
            }
        }
        out
    }

    fn fill(&mut self, out: &mut StackInfo, frames: &[Frame], stop: &StopReason) {
        for (i, f) in frames.iter().enumerate() {
            let symbol = self.symbol_of(f);
            if let Some((_, m)) = self.missing.iter().find(|(mi, _)| Some(*mi) == f.module) {
                if !out.missing_symbols.iter().any(|x| x.base == m.base) {
                    out.missing_symbols.push(m.clone());
                }
            }
            out.frames.push(FrameInfo {
                rip: f.rip,
                rsp: f.rsp,
                return_address: frames.get(i + 1).map(|n| n.rip).unwrap_or_default(),
                symbol,
                kind: kind_name(&f.kind).into(),
            });
        }
        out.stop = stop.name().into();
        out.stop_detail = stop.to_string();
        out.complete = stop.is_complete();
    }

    /// A code address (a DPC or timer routine, a start address) named as a
    /// frame is: `module!function+0xoffset` from the module's symbols or
    /// exports, else `module+0xoffset`, else the bare address.
    pub fn name_code_address(&mut self, va: VirtAddr) -> String {
        use hangscope_unwind::ModuleSet;
        let module = self.modules.find(va.0);
        let base = module.and_then(|i| self.modules.modules().get(i).map(|m| m.base.0));
        let f = Frame {
            rip: va,
            rsp: VirtAddr(0),
            module,
            module_name: None,
            rva: base.and_then(|b| u32::try_from(va.0.wrapping_sub(b)).ok()),
            kind: FrameKind::Normal,
            origin: RipOrigin::Context,
            context: Context::new(va.0, 0),
        };
        self.symbol_of(&f).to_string()
    }

    /// What names a frame: module, function and offset (symbolised inside
    /// the call for return addresses, shown with the return address's own
    /// offset as WinDbg does).
    fn symbol_of(&mut self, f: &Frame) -> FrameName {
        let (Some(mi), Some(rva), Some(lookup)) = (f.module, f.rva, f.lookup_rva()) else {
            return FrameName::unnamed(f.rip.0);
        };
        let Some(m) = self.modules.modules().get(mi).cloned() else {
            return FrameName::unnamed(f.rip.0);
        };
        let is_kernel = m.base.0 == self.k.base().0;
        let short = module_display(&m.name, is_kernel);
        let k = self.k;
        if !self.names.contains_key(&mi) {
            let names = if is_kernel {
                Names::Kernel
            } else {
                let table = match k.module_symbols_at(m.base, &m.name) {
                    Ok(t) => Some(t),
                    Err(miss) => {
                        self.missing.push((mi, *miss));
                        None
                    }
                };
                Names::Module {
                    table,
                    exports: read_exports(k.memory(), &m),
                }
            };
            self.names.insert(mi, names);
        }
        let near = |start: u64| (rva as u64) >= start && rva as u64 - start < 0x10_0000;
        let in_table = |t: &SymbolTable| {
            t.symbol_at(lookup as u64)
                .map(|(n, off)| (n.to_string(), lookup as u64 - off))
                .filter(|&(_, start)| near(start))
        };
        let found = match self.names.get(&mi) {
            Some(Names::Kernel) => in_table(k.symbols()),
            Some(Names::Module { table, exports }) => {
                table.as_ref().and_then(in_table).or_else(|| {
                    exports
                        .range(..=lookup)
                        .next_back()
                        .map(|(&r, n)| (n.clone(), r as u64))
                })
            }
            None => None,
        };
        match found {
            Some((name, start)) if near(start) => {
                FrameName::in_function(f.rip.0, short, name, rva as u64 - start)
            }
            _ => FrameName::in_module(f.rip.0, short, rva as u64),
        }
    }
}

/// The registers `KeBugCheck` saved in `KPRCB.ProcessorState.ContextFrame`
/// (crash dumps keep only one CONTEXT in their header): the context and CS,
/// or `None` when the frame is absent or empty.
fn context_frame(k: &Kernel<'_>, kprcb: VirtAddr) -> Option<(Context, u16)> {
    let p = k.object("_KPRCB", kprcb).ok()?;
    let cf = "ProcessorState.ContextFrame.";
    let g = |f: &str| p.u64(&format!("{cf}{f}")).ok();
    let rip = g("Rip").filter(|&r| r != 0)?;
    let rsp = g("Rsp").filter(|&r| r != 0)?;
    let mut c = Context::new(rip, rsp);
    for (f, r) in [
        ("Rbp", Reg::Rbp),
        ("Rbx", Reg::Rbx),
        ("Rsi", Reg::Rsi),
        ("Rdi", Reg::Rdi),
        ("R12", Reg::R12),
        ("R13", Reg::R13),
        ("R14", Reg::R14),
        ("R15", Reg::R15),
    ] {
        if let Some(v) = g(f) {
            c.set(r, v);
        }
    }
    let cs = g("SegCs").unwrap_or(0x10) as u16;
    Some((c, cs))
}

/// A module's export names by RVA (empty when it has none or they are
/// unreadable); bounded by [`MAX_EXPORTS`] and [`MAX_NAME`].
fn read_exports(mem: &dyn VirtualMemory, m: &Module) -> BTreeMap<u32, String> {
    let limits = ExportLimits {
        max_names: MAX_EXPORTS,
        max_name_len: MAX_NAME,
    };
    PeHeaders::read(mem, m.base, m.size)
        .map(|pe| pe.exports(mem, limits))
        .unwrap_or_default()
}

impl<'d> Kernel<'d> {
    /// A stack walker to reuse for many threads (it caches the modules'
    /// unwind tables and names).
    pub fn stack_walker(&self) -> StackWalker<'_, 'd> {
        StackWalker::new(self)
    }

    /// The kernel stack of one thread (`!thread`'s stack part).
    pub fn thread_stack(&self, thread: VirtAddr) -> StackInfo {
        self.stack_walker().thread_stack(thread)
    }

    /// `!stacks`: every thread's stack, identical stacks grouped (largest
    /// group first), filtered by process or by a frame substring.
    pub fn stacks(&self, filter: &StackFilter) -> StacksReport {
        let mut w = self.stack_walker();
        let mut report = StacksReport {
            warnings: w.warnings().to_vec(),
            ..StacksReport::default()
        };
        report
            .warnings
            .extend(self.threads().warnings.iter().cloned());
        let needle = filter.contains.as_ref().map(|s| s.to_ascii_lowercase());
        let mut groups: Vec<StackGroup> = Vec::new();
        // Grouped and ordered by the frames' text, as `!stacks` shows them.
        let mut index: HashMap<Vec<String>, usize> = HashMap::new();
        let mut keys: Vec<Vec<String>> = Vec::new();
        let threads: Vec<&ThreadInfo> = self
            .threads()
            .items
            .iter()
            .filter(|t| filter.pid.is_none_or(|p| t.pid == p))
            .collect();
        for t in threads {
            let s = w.thread_stack(t.address);
            let frames = s.symbols();
            let key: Vec<String> = frames.iter().map(|f| f.to_string()).collect();
            if let Some(n) = &needle {
                if !key.iter().any(|f| f.to_ascii_lowercase().contains(n)) {
                    continue;
                }
            }
            report.threads += 1;
            if !s.complete {
                report.incomplete += 1;
            }
            for mut wn in s.warnings {
                wn.context = format!("thread {:#x}: {}", t.address, wn.context);
                report.warnings.push(wn);
            }
            for m in s.missing_symbols {
                if !report.missing_symbols.iter().any(|x| x.base == m.base) {
                    report.missing_symbols.push(m);
                }
            }
            let th = StackThread {
                address: t.address,
                pid: t.pid,
                tid: t.tid,
                process_name: t.process_name.clone(),
                state: t.state,
                wait_reason: t.wait_reason,
                complete: s.complete,
            };
            match index.get(&key) {
                Some(&g) => {
                    groups[g].count += 1;
                    groups[g].threads.push(th);
                }
                None => {
                    index.insert(key.clone(), groups.len());
                    keys.push(key);
                    groups.push(StackGroup {
                        frames,
                        count: 1,
                        threads: vec![th],
                    });
                }
            }
        }
        let mut keyed: Vec<(Vec<String>, StackGroup)> = keys.into_iter().zip(groups).collect();
        keyed.sort_by(|(ka, a), (kb, b)| b.count.cmp(&a.count).then(ka.cmp(kb)));
        report.groups = keyed.into_iter().map(|(_, g)| g).collect();
        report
    }

    /// `!running -t`: each processor's current thread and its stack from
    /// the vCPU registers.
    pub fn running(&self) -> Vec<RunningCpu> {
        let mut w = self.stack_walker();
        let r = self.reader();
        let by_addr: HashMap<VirtAddr, &ThreadInfo> = self
            .threads()
            .items
            .iter()
            .map(|t| (t.address, t))
            .collect();
        let mut out = Vec::new();
        for c in &self.cpus().items {
            let thread = c.current_thread.filter(|t| t.0 != 0);
            let idle = match (
                thread,
                r.object("_KPRCB", c.kprcb)
                    .and_then(|o| o.ptr("IdleThread")),
            ) {
                (Some(t), Ok(i)) => i == t,
                _ => false,
            };
            let info = thread.and_then(|t| by_addr.get(&t));
            let stack = match thread {
                Some(t) => w.thread_stack(t),
                None => StackInfo {
                    start: "none: CurrentThread is 0".into(),
                    ..StackInfo::default()
                },
            };
            out.push(RunningCpu {
                cpu: c.index,
                kprcb: c.kprcb,
                thread,
                idle,
                pid: info.map(|t| t.pid),
                tid: info.map(|t| t.tid),
                process_name: info
                    .map(|t| t.process_name.clone())
                    .or(idle.then(|| "Idle".into())),
                stack,
            });
        }
        out
    }
}

/// The origin of a frame's RIP, for renderers that mark the top frame.
pub fn is_return_address(f: &Frame) -> bool {
    f.origin == RipOrigin::ReturnAddress
}
