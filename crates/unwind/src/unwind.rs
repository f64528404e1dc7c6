//! The x64 unwinder: one frame at a time, as Windows' `RtlVirtualUnwind`
//! does, and the bounded walk over a whole stack.

use crate::error::{Error, ErrorKind};
use crate::image::{Image, Lookup, Module, ModuleSet, RuntimeFunction, UnwindInfo, UnwindOp};
use crate::raw::RUNTIME_FUNCTION_INDIRECT;
use hangscope_dump::CpuState;
use hangscope_x64::{Fault, VirtAddr, VirtualMemory};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A general-purpose register, numbered as unwind codes number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Reg {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

impl Reg {
    /// All registers in unwind numbering order.
    pub const ALL: [Reg; 16] = [
        Reg::Rax,
        Reg::Rcx,
        Reg::Rdx,
        Reg::Rbx,
        Reg::Rsp,
        Reg::Rbp,
        Reg::Rsi,
        Reg::Rdi,
        Reg::R8,
        Reg::R9,
        Reg::R10,
        Reg::R11,
        Reg::R12,
        Reg::R13,
        Reg::R14,
        Reg::R15,
    ];
    /// The registers the Microsoft x64 ABI preserves across calls (besides RSP).
    pub const NONVOLATILE: [Reg; 8] = [
        Reg::Rbx,
        Reg::Rbp,
        Reg::Rsi,
        Reg::Rdi,
        Reg::R12,
        Reg::R13,
        Reg::R14,
        Reg::R15,
    ];

    /// The register with unwind number `n` (0..=15).
    pub fn from_number(n: u8) -> Option<Reg> {
        Reg::ALL.get(usize::from(n)).copied()
    }

    /// Whether the ABI preserves it across calls.
    pub fn is_nonvolatile(self) -> bool {
        Reg::NONVOLATILE.contains(&self) || self == Reg::Rsp
    }
}

/// Register state of one frame. Registers are `None` when unknown: a
/// volatile register after a call, or one the caller did not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Instruction pointer.
    pub rip: u64,
    regs: [Option<u64>; 16],
}

impl Context {
    /// A context with only RIP and RSP known.
    pub fn new(rip: u64, rsp: u64) -> Self {
        let mut regs = [None; 16];
        regs[Reg::Rsp as usize] = Some(rsp);
        Context { rip, regs }
    }

    /// Set a register (builder style).
    pub fn with(mut self, reg: Reg, value: u64) -> Self {
        self.set(reg, value);
        self
    }

    /// Set a register.
    pub fn set(&mut self, reg: Reg, value: u64) {
        self.regs[reg as usize] = Some(value);
    }

    /// Forget a register.
    pub fn clear(&mut self, reg: Reg) {
        if reg != Reg::Rsp {
            self.regs[reg as usize] = None;
        }
    }

    /// A register's value, when known.
    pub fn get(&self, reg: Reg) -> Option<u64> {
        self.regs[reg as usize]
    }

    /// The stack pointer.
    pub fn rsp(&self) -> u64 {
        self.regs[Reg::Rsp as usize].unwrap_or(0)
    }

    /// The context of a vCPU as the dump recorded it (for threads that were
    /// running). All 16 GPRs become known.
    pub fn from_cpu_state(cpu: &CpuState) -> Self {
        // CpuState::gpr order: rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15.
        const MAP: [Reg; 8] = [
            Reg::Rax,
            Reg::Rbx,
            Reg::Rcx,
            Reg::Rdx,
            Reg::Rsi,
            Reg::Rdi,
            Reg::Rbp,
            Reg::Rsp,
        ];
        let mut c = Context::new(cpu.rip, cpu.gpr[CpuState::RSP]);
        for (i, &v) in cpu.gpr.iter().enumerate() {
            let reg = if i < 8 {
                MAP[i]
            } else {
                Reg::from_number(i as u8).unwrap_or(Reg::Rax)
            };
            c.set(reg, v);
        }
        c
    }

    fn reg_or_err(&self, n: u8) -> Result<u64, StepError> {
        Reg::from_number(n)
            .and_then(|r| self.get(r))
            .ok_or(StepError::Bad(Error::new(ErrorKind::UnknownRegister {
                register: n,
            })))
    }

    fn set_num(&mut self, n: u8, v: u64) {
        if let Some(r) = Reg::from_number(n) {
            self.set(r, v);
        }
    }

    fn set_rsp(&mut self, v: u64) {
        self.set(Reg::Rsp, v);
    }

    /// Keep only what survives a call: RSP and the nonvolatile registers.
    fn forget_volatile(&mut self) {
        for r in Reg::ALL {
            if !r.is_nonvolatile() {
                self.regs[r as usize] = None;
            }
        }
    }
}

/// How a frame was unwound to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameKind {
    /// With the function's unwind codes (and chained ones).
    Normal,
    /// RIP was inside an epilog: the rest of the epilog was emulated.
    Epilog,
    /// The unwind codes held UWOP_PUSH_MACHFRAME: the function is an
    /// interrupt or trap handler, and the caller frame is the interrupted
    /// context (its RIP is the interrupted instruction, not a return address).
    MachineFrame {
        /// Whether the CPU pushed an error code too.
        error_code: bool,
    },
    /// No `.pdata` entry: a leaf function, return address at `[rsp]`.
    LeafNoUnwindInfo,
    /// The walk stopped at this frame (see [`Stack::stop`]).
    NotUnwound,
}

/// Where a frame's RIP came from, which decides how to symbolise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RipOrigin {
    /// The start context (switch frame or vCPU registers).
    Context,
    /// A return address pushed by `call`: the call is the instruction before
    /// it, so symbolise `rip - 1`.
    ReturnAddress,
    /// A machine frame: the interrupted instruction itself.
    Interrupted,
}

/// One frame of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Instruction pointer of the frame.
    pub rip: VirtAddr,
    /// Stack pointer of the frame.
    pub rsp: VirtAddr,
    /// Index of the module (in the caller's [`ModuleSet`]) holding `rip`.
    pub module: Option<usize>,
    /// Name of that module.
    pub module_name: Option<String>,
    /// `rip` relative to the module base.
    pub rva: Option<u32>,
    /// How this frame was unwound to the next one.
    pub kind: FrameKind,
    /// Where `rip` came from.
    pub origin: RipOrigin,
    /// The registers known in this frame.
    pub context: Context,
}

impl Frame {
    /// The address to symbolise: inside the call instruction for return
    /// addresses (a call at the very end of a function would otherwise be
    /// attributed to the next function), `rip` otherwise.
    pub fn lookup_address(&self) -> VirtAddr {
        match self.origin {
            RipOrigin::ReturnAddress => VirtAddr(self.rip.0.wrapping_sub(1)),
            _ => self.rip,
        }
    }

    /// `lookup_address` relative to the module base.
    pub fn lookup_rva(&self) -> Option<u32> {
        let rva = self.rva?;
        Some(match self.origin {
            RipOrigin::ReturnAddress => rva.saturating_sub(1),
            _ => rva,
        })
    }
}

/// Why the walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The return address is 0: the thread's outermost frame (normal end).
    ZeroReturnAddress,
    /// A machine frame returned to user mode: the kernel stack ends here
    /// (normal end for threads that entered the kernel by a system call or
    /// an interrupt from user mode).
    ReachedUserMode {
        /// The user-mode RIP.
        rip: VirtAddr,
        /// The user-mode RSP.
        rsp: VirtAddr,
    },
    /// [`UnwindOptions::max_frames`] frames were produced.
    MaxFrames,
    /// RIP is in no module: unknown code, or a corrupt return address.
    OutsideModules {
        /// The RIP.
        rip: VirtAddr,
    },
    /// RIP is inside a module but not in an executable section.
    NotCode {
        /// The RIP.
        rip: VirtAddr,
    },
    /// RSP left every allowed stack range.
    LeftStack {
        /// The RSP.
        rsp: VirtAddr,
    },
    /// The caller's RSP is not above the callee's (only machine frames may
    /// move RSP elsewhere): corrupt stack or unwind data.
    RspNotIncreasing {
        /// The callee's RSP.
        previous: VirtAddr,
        /// The caller's RSP.
        rsp: VirtAddr,
    },
    /// The same (RIP, RSP) came back: a cycle through machine frames.
    Cycle {
        /// The RIP.
        rip: VirtAddr,
        /// The RSP.
        rsp: VirtAddr,
    },
    /// Stack memory could not be read.
    StackUnreadable(Fault),
    /// The module's image or unwind data is unreadable or corrupt.
    UnwindData(Error),
}

impl StopReason {
    /// A short stable name for logs and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            StopReason::ZeroReturnAddress => "zero_return_address",
            StopReason::ReachedUserMode { .. } => "reached_user_mode",
            StopReason::MaxFrames => "max_frames",
            StopReason::OutsideModules { .. } => "outside_modules",
            StopReason::NotCode { .. } => "not_code",
            StopReason::LeftStack { .. } => "left_stack",
            StopReason::RspNotIncreasing { .. } => "rsp_not_increasing",
            StopReason::Cycle { .. } => "cycle",
            StopReason::StackUnreadable(_) => "stack_unreadable",
            StopReason::UnwindData(_) => "unwind_data",
        }
    }

    /// Whether the stack ended normally (not truncated).
    pub fn is_complete(&self) -> bool {
        matches!(
            self,
            StopReason::ZeroReturnAddress | StopReason::ReachedUserMode { .. }
        )
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::ZeroReturnAddress => write!(f, "end of stack (return address 0)"),
            StopReason::ReachedUserMode { rip, rsp } => {
                write!(f, "entered from user mode at rip {rip}, rsp {rsp}")
            }
            StopReason::MaxFrames => write!(f, "frame limit reached"),
            StopReason::OutsideModules { rip } => {
                write!(
                    f,
                    "rip {rip} is in no loaded module (corrupt return address or unknown code)"
                )
            }
            StopReason::NotCode { rip } => write!(f, "rip {rip} is not in an executable section"),
            StopReason::LeftStack { rsp } => write!(f, "rsp {rsp} left the thread's stack"),
            StopReason::RspNotIncreasing { previous, rsp } => {
                write!(
                    f,
                    "rsp went from {previous} to {rsp}, not up: corrupt stack"
                )
            }
            StopReason::Cycle { rip, rsp } => write!(f, "frame (rip {rip}, rsp {rsp}) repeats"),
            StopReason::StackUnreadable(e) => write!(f, "stack unreadable: {e}"),
            StopReason::UnwindData(e) => write!(f, "unwind data: {e}"),
        }
    }
}

/// An address range a thread's stack may use: `[low, high)`. For a Windows
/// thread: `KTHREAD.StackLimit` .. `KTHREAD.StackBase`; add the processor's
/// DPC and ISR stacks for running threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackRange {
    /// Lowest address.
    pub low: u64,
    /// One past the highest address.
    pub high: u64,
}

impl StackRange {
    /// `[low, high)`.
    pub fn new(low: u64, high: u64) -> Self {
        StackRange { low, high }
    }
    fn contains(&self, va: u64) -> bool {
        va >= self.low && va < self.high
    }
}

/// Limits for a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwindOptions {
    /// Stop after this many frames.
    pub max_frames: usize,
    /// The thread's stack; `None` = no check.
    pub stack_limits: Option<StackRange>,
    /// Other stacks the walk may move between (a processor's DPC or
    /// interrupt stack): through a machine frame or a frame-register switch.
    /// On any one stack RSP must grow from frame to frame.
    pub other_stacks: Vec<StackRange>,
    /// Stop with [`StopReason::ReachedUserMode`] when a machine frame leads
    /// to a user-mode RIP (canonical lower half).
    pub stop_at_user_mode: bool,
}

impl Default for UnwindOptions {
    fn default() -> Self {
        UnwindOptions {
            max_frames: 256,
            stack_limits: None,
            other_stacks: Vec::new(),
            stop_at_user_mode: true,
        }
    }
}

/// A walked stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// Frames, innermost first.
    pub frames: Vec<Frame>,
    /// Why the walk ended.
    pub stop: StopReason,
}

/// Bound on chained unwind info and indirect RUNTIME_FUNCTION links.
pub const MAX_CHAIN_DEPTH: u32 = 32;
/// Bound on pops emulated in an epilog (there are 8 nonvolatile GPRs).
const MAX_EPILOG_POPS: usize = 16;
/// Bytes of code read to recognise an epilog.
const EPILOG_WINDOW: usize = 64;
/// Bound on cached UNWIND_INFOs before the cache is dropped.
const MAX_CACHED_INFOS: usize = 1 << 16;

#[derive(Debug)]
enum StepError {
    Stack(Fault),
    Bad(Error),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Bad(e)
    }
}

struct Step {
    caller: Context,
    kind: FrameKind,
    origin: RipOrigin,
}

/// An unwinder with its caches: parsed images (headers and `.pdata`, read
/// once per module) and decoded UNWIND_INFOs, keyed by module base and size.
/// Keep one for a whole dump's kernel modules (they are mapped the same in
/// every address space); user-mode modules differ per process: use one
/// unwinder per process for those, or [`Unwinder::clear`] between them.
#[derive(Debug, Default)]
pub struct Unwinder {
    images: HashMap<(u64, u64), Result<Arc<Image>, Error>>,
    infos: HashMap<(u64, u32), Arc<UnwindInfo>>,
}

/// Unwind one stack with a fresh [`Unwinder`] (no cache kept).
pub fn unwind(
    mem: &dyn VirtualMemory,
    modules: &dyn ModuleSet,
    start: Context,
    opts: &UnwindOptions,
) -> Stack {
    Unwinder::new().unwind(mem, modules, start, opts)
}

impl Unwinder {
    /// An unwinder with empty caches.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget every cached image and UNWIND_INFO.
    pub fn clear(&mut self) {
        self.images.clear();
        self.infos.clear();
    }

    /// The parsed image of `module` (loaded on first use, errors cached too).
    pub fn image(&mut self, mem: &dyn VirtualMemory, module: &Module) -> Result<Arc<Image>, Error> {
        self.images
            .entry((module.base.0, module.size))
            .or_insert_with(|| Image::load(mem, module).map(Arc::new))
            .clone()
    }

    fn info(
        &mut self,
        mem: &dyn VirtualMemory,
        image: &Image,
        rva: u32,
    ) -> Result<Arc<UnwindInfo>, Error> {
        if let Some(i) = self.infos.get(&(image.base, rva)) {
            return Ok(i.clone());
        }
        let info = Arc::new(UnwindInfo::read(mem, image, rva)?);
        if self.infos.len() >= MAX_CACHED_INFOS {
            self.infos.clear();
        }
        self.infos.insert((image.base, rva), info.clone());
        Ok(info)
    }

    /// Walk a stack from `start`, innermost frame first.
    ///
    /// `start` is the thread's context: for a running thread the vCPU's
    /// registers ([`Context::from_cpu_state`]); for a waiting thread the
    /// state its context switch saved (see the crate docs).
    pub fn unwind(
        &mut self,
        mem: &dyn VirtualMemory,
        modules: &dyn ModuleSet,
        start: Context,
        opts: &UnwindOptions,
    ) -> Stack {
        let mut frames: Vec<Frame> = Vec::new();
        let mut ctx = start;
        let mut origin = RipOrigin::Context;
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        let mut current_range = opts
            .stack_limits
            .filter(|r| r.contains(ctx.rsp()))
            .or_else(|| {
                opts.other_stacks
                    .iter()
                    .copied()
                    .find(|r| r.contains(ctx.rsp()))
            });
        let stop = loop {
            let rip = ctx.rip;
            let rsp = ctx.rsp();
            if frames.len() >= opts.max_frames {
                break StopReason::MaxFrames;
            }
            if rip == 0 && !frames.is_empty() {
                break StopReason::ZeroReturnAddress;
            }
            if opts.stop_at_user_mode
                && origin == RipOrigin::Interrupted
                && rip < 0x0000_8000_0000_0000
            {
                break StopReason::ReachedUserMode {
                    rip: VirtAddr(rip),
                    rsp: VirtAddr(rsp),
                };
            }
            let limited = opts.stack_limits.is_some() || !opts.other_stacks.is_empty();
            if limited && current_range.is_none_or_outside(rsp) {
                break StopReason::LeftStack { rsp: VirtAddr(rsp) };
            }
            if !seen.insert((rip, rsp)) {
                break StopReason::Cycle {
                    rip: VirtAddr(rip),
                    rsp: VirtAddr(rsp),
                };
            }
            let mut frame = Frame {
                rip: VirtAddr(rip),
                rsp: VirtAddr(rsp),
                module: None,
                module_name: None,
                rva: None,
                kind: FrameKind::NotUnwound,
                origin,
                context: ctx,
            };
            let Some(index) = modules.find(rip) else {
                frames.push(frame);
                break StopReason::OutsideModules { rip: VirtAddr(rip) };
            };
            let Some(module) = modules.module(index) else {
                frames.push(frame);
                break StopReason::OutsideModules { rip: VirtAddr(rip) };
            };
            frame.module = Some(index);
            frame.module_name = Some(module.name.clone());
            frame.rva = u32::try_from(rip - module.base.0).ok();
            let image = match self.image(mem, module) {
                Ok(i) => i,
                Err(e) => {
                    frames.push(frame);
                    break StopReason::UnwindData(e);
                }
            };
            let Some(rva) = frame.rva.filter(|&r| u64::from(r) < image.size) else {
                frames.push(frame);
                break StopReason::OutsideModules { rip: VirtAddr(rip) };
            };
            if !image.is_code(rva) {
                frames.push(frame);
                break StopReason::NotCode { rip: VirtAddr(rip) };
            }
            let step = match self.step(mem, &image, &ctx, rva) {
                Ok(s) => s,
                Err(StepError::Stack(e)) => {
                    frames.push(frame);
                    break StopReason::StackUnreadable(e);
                }
                Err(StepError::Bad(mut e)) => {
                    if e.at.is_none() {
                        e = Error::at(e.kind, &image.name, rip);
                    }
                    frames.push(frame);
                    break StopReason::UnwindData(e);
                }
            };
            frame.kind = step.kind;
            frames.push(frame);
            let new_rsp = step.caller.rsp();
            let limited = opts.stack_limits.is_some() || !opts.other_stacks.is_empty();
            let same_stack = current_range.is_some_and(|r| r.contains(new_rsp));
            if step.origin == RipOrigin::Interrupted || (limited && !same_stack) {
                // Stacks switch at machine frames (interrupt stack -> thread
                // stack) and at functions that move RSP to another stack and
                // back through a frame register (DPC stack callouts): re-pick
                // the range; none means the walk left every allowed stack.
                current_range = opts
                    .stack_limits
                    .filter(|r| r.contains(new_rsp))
                    .or_else(|| {
                        opts.other_stacks
                            .iter()
                            .copied()
                            .find(|r| r.contains(new_rsp))
                    });
            } else if new_rsp <= rsp {
                // On one stack, RSP only grows towards the caller.
                break StopReason::RspNotIncreasing {
                    previous: VirtAddr(rsp),
                    rsp: VirtAddr(new_rsp),
                };
            }
            ctx = step.caller;
            origin = step.origin;
        };
        Stack { frames, stop }
    }

    /// Find a waiting thread's start point without knowing its switch-frame
    /// layout: try each 8-byte slot in `[rsp, rsp + window)` as the return
    /// address of the context switch (RIP = the slot's value, RSP = the
    /// slot's address plus 8, other registers from `base`) and return the
    /// first whose walk is
    /// complete ([`StopReason::is_complete`]) with at least two frames.
    ///
    /// Windows x64 `KTHREAD.KernelStack` points at a switch frame whose
    /// return address is a few slots up (reportedly at +0x38); the
    /// public symbol tables do not all describe that frame, and this probe
    /// validates the choice with the unwind data instead of trusting an
    /// offset. Bounded: `window` is capped at 512 bytes.
    pub fn probe_start(
        &mut self,
        mem: &dyn VirtualMemory,
        modules: &dyn ModuleSet,
        base: Context,
        rsp: u64,
        window: u64,
        opts: &UnwindOptions,
    ) -> Option<(Context, Stack)> {
        let window = window.min(512);
        let mut off = 0;
        while off < window {
            let slot = rsp.checked_add(off)?;
            off += 8;
            let Ok(rip) = mem.read_u64(VirtAddr(slot)) else {
                continue;
            };
            if modules.find(rip).is_none() {
                continue;
            }
            let mut ctx = base;
            ctx.rip = rip;
            ctx.set_rsp(slot.checked_add(8)?);
            let stack = self.unwind(mem, modules, ctx, opts);
            if stack.stop.is_complete() && stack.frames.len() >= 2 {
                return Some((ctx, stack));
            }
        }
        None
    }

    /// Unwind one frame: the function at `rva` of `image`.
    fn step(
        &mut self,
        mem: &dyn VirtualMemory,
        image: &Image,
        ctx: &Context,
        rva: u32,
    ) -> Result<Step, StepError> {
        let mut f = match image.lookup(rva)? {
            Lookup::Leaf => {
                let mut caller = *ctx;
                pop_return(mem, &mut caller)?;
                return Ok(Step {
                    caller,
                    kind: FrameKind::LeafNoUnwindInfo,
                    origin: RipOrigin::ReturnAddress,
                });
            }
            Lookup::Found(f) => f,
        };
        // An indirect entry names the RUNTIME_FUNCTION to use instead.
        let mut depth = 0;
        while f.unwind_data & RUNTIME_FUNCTION_INDIRECT != 0 {
            depth += 1;
            if depth > MAX_CHAIN_DEPTH {
                return Err(Error::new(ErrorKind::ChainTooDeep {
                    limit: MAX_CHAIN_DEPTH,
                })
                .into());
            }
            f = image.read_runtime_function(mem, f.unwind_data & !RUNTIME_FUNCTION_INDIRECT)?;
        }
        let info = self.info(mem, image, f.unwind_data)?;
        // Offset of RIP in the function; an indirect entry may not contain
        // RIP, then RIP counts as past the prolog.
        let offset = rva.checked_sub(f.begin).unwrap_or(u32::MAX);
        let in_prolog = offset < u32::from(info.prolog_size);

        if !in_prolog {
            if let Some(caller) = emulate_epilog(mem, image, &f, &info, ctx)? {
                return Ok(Step {
                    caller,
                    kind: FrameKind::Epilog,
                    origin: RipOrigin::ReturnAddress,
                });
            }
        }

        let mut caller = *ctx;
        let mut machine = None;
        // The primary info: in the prolog, undo only what already ran.
        apply_codes(mem, &info, &mut caller, Some(offset), &mut machine)?;
        // Chained infos (the parent function's prolog): undo everything.
        let mut next = info.chained;
        let mut depth = 0;
        while let (Some(mut parent), None) = (next, machine) {
            depth += 1;
            if depth > MAX_CHAIN_DEPTH {
                return Err(Error::new(ErrorKind::ChainTooDeep {
                    limit: MAX_CHAIN_DEPTH,
                })
                .into());
            }
            if parent.unwind_data & RUNTIME_FUNCTION_INDIRECT != 0 {
                parent = image
                    .read_runtime_function(mem, parent.unwind_data & !RUNTIME_FUNCTION_INDIRECT)?;
                if parent.unwind_data & RUNTIME_FUNCTION_INDIRECT != 0 {
                    return Err(Error::new(ErrorKind::BadRuntimeFunction {
                        rva: parent.unwind_data,
                    })
                    .into());
                }
            }
            let pinfo = self.info(mem, image, parent.unwind_data)?;
            apply_codes(mem, &pinfo, &mut caller, None, &mut machine)?;
            next = pinfo.chained;
        }
        let (kind, origin) = match machine {
            Some(error_code) => (
                FrameKind::MachineFrame { error_code },
                RipOrigin::Interrupted,
            ),
            None => {
                pop_return(mem, &mut caller)?;
                (FrameKind::Normal, RipOrigin::ReturnAddress)
            }
        };
        caller.forget_volatile();
        Ok(Step {
            caller,
            kind,
            origin,
        })
    }
}

trait RangeExt {
    fn is_none_or_outside(&self, va: u64) -> bool;
}
impl RangeExt for Option<StackRange> {
    fn is_none_or_outside(&self, va: u64) -> bool {
        !matches!(self, Some(r) if r.contains(va))
    }
}

fn read_u64(mem: &dyn VirtualMemory, va: u64) -> Result<u64, StepError> {
    mem.read_u64(VirtAddr(va)).map_err(StepError::Stack)
}

fn add(a: u64, b: u64) -> Result<u64, StepError> {
    a.checked_add(b)
        .ok_or(StepError::Bad(Error::new(ErrorKind::AddressOverflow)))
}

/// `ret`: RIP = [RSP], RSP += 8.
fn pop_return(mem: &dyn VirtualMemory, ctx: &mut Context) -> Result<(), StepError> {
    let rsp = ctx.rsp();
    ctx.rip = read_u64(mem, rsp)?;
    ctx.set_rsp(add(rsp, 8)?);
    ctx.forget_volatile();
    Ok(())
}

/// Undo the unwind codes of one UNWIND_INFO. `prolog_offset` is RIP's offset
/// in the function for the primary info (codes for instructions that have
/// not run yet are skipped), `None` for chained infos.
fn apply_codes(
    mem: &dyn VirtualMemory,
    info: &UnwindInfo,
    ctx: &mut Context,
    prolog_offset: Option<u32>,
    machine: &mut Option<bool>,
) -> Result<(), StepError> {
    let in_prolog = prolog_offset.is_some_and(|o| o < u32::from(info.prolog_size));
    let runs = |code_offset: u8| match prolog_offset {
        Some(o) if in_prolog => u32::from(code_offset) <= o,
        _ => true,
    };
    // Frame base for SAVE_* codes: the frame register minus its offset once
    // the prolog has set it, else RSP at entry to this step (which is the
    // frame base when no frame register is used). As in Windows, the frame
    // register counts as set after the prolog, in a chained fragment (its
    // parent's prolog ran first) and in the parents themselves.
    let fp_established = info.frame_register != 0
        && (!in_prolog
            || info.chained.is_some()
            || info
                .codes
                .iter()
                .any(|c| matches!(c.op, UnwindOp::SetFpreg) && runs(c.code_offset)));
    let frame_base = if fp_established {
        ctx.reg_or_err(info.frame_register)?
            .checked_sub(u64::from(info.frame_offset))
            .ok_or(StepError::Bad(Error::new(ErrorKind::AddressOverflow)))?
    } else if in_prolog {
        // SAVE_* offsets are relative to RSP after the whole fixed
        // allocation. Part-way through the prolog (MSVC saves into the home
        // area before pushing and allocating) that is RSP minus what the
        // prolog has still to push and allocate.
        let pending: u64 = info
            .codes
            .iter()
            .filter(|c| !runs(c.code_offset))
            .map(|c| match c.op {
                UnwindOp::PushNonvol { .. } => 8,
                UnwindOp::Alloc { size } => u64::from(size),
                _ => 0,
            })
            .sum();
        ctx.rsp()
            .checked_sub(pending)
            .ok_or(StepError::Bad(Error::new(ErrorKind::AddressOverflow)))?
    } else {
        ctx.rsp()
    };
    for code in &info.codes {
        if !runs(code.code_offset) {
            continue;
        }
        match code.op {
            UnwindOp::PushNonvol { reg } => {
                let rsp = ctx.rsp();
                let v = read_u64(mem, rsp)?;
                ctx.set_num(reg, v);
                ctx.set_rsp(add(rsp, 8)?);
            }
            UnwindOp::Alloc { size } => {
                let rsp = add(ctx.rsp(), u64::from(size))?;
                ctx.set_rsp(rsp);
            }
            UnwindOp::SetFpreg => {
                let fp = ctx.reg_or_err(info.frame_register)?;
                let rsp = fp
                    .checked_sub(u64::from(info.frame_offset))
                    .ok_or(StepError::Bad(Error::new(ErrorKind::AddressOverflow)))?;
                ctx.set_rsp(rsp);
            }
            UnwindOp::SaveNonvol { reg, offset } => {
                let v = read_u64(mem, add(frame_base, u64::from(offset))?)?;
                ctx.set_num(reg, v);
            }
            UnwindOp::SaveXmm128 { .. } | UnwindOp::Epilog { .. } => {}
            UnwindOp::PushMachframe { error_code } => {
                let at = add(ctx.rsp(), if error_code { 8 } else { 0 })?;
                // RIP, CS, RFLAGS, RSP, SS from low to high addresses.
                let rip = read_u64(mem, at)?;
                let rsp = read_u64(mem, add(at, 24)?)?;
                ctx.rip = rip;
                ctx.set_rsp(rsp);
                *machine = Some(error_code);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One instruction of an epilog, as the unwinder emulates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EpilogStep {
    AddRsp(u32),
    LeaRsp(i32),
    Pop(u8),
}

/// If the code at RIP is the rest of an epilog (`add rsp, n` or
/// `lea rsp, [fp + d]`, then `pop`s, then `ret` or a tail `jmp`), emulate it
/// and return the caller's context. This is the check Windows makes for
/// version 1 unwind info; it is exact for version 2 too, whose UWOP_EPILOG
/// descriptors only spare the instruction decoding.
fn emulate_epilog(
    mem: &dyn VirtualMemory,
    image: &Image,
    f: &RuntimeFunction,
    info: &UnwindInfo,
    ctx: &Context,
) -> Result<Option<Context>, StepError> {
    let code = mem.read_prefix(VirtAddr(ctx.rip), EPILOG_WINDOW);
    let Some(steps) = decode_epilog(&code, ctx.rip, image, f, info.frame_register) else {
        return Ok(None);
    };
    let mut caller = *ctx;
    for s in steps {
        match s {
            EpilogStep::AddRsp(n) => caller.set_rsp(add(caller.rsp(), u64::from(n))?),
            EpilogStep::LeaRsp(d) => {
                let fp = caller.reg_or_err(info.frame_register)?;
                caller.set_rsp(
                    fp.checked_add_signed(i64::from(d))
                        .ok_or(StepError::Bad(Error::new(ErrorKind::AddressOverflow)))?,
                );
            }
            EpilogStep::Pop(reg) => {
                let rsp = caller.rsp();
                let v = read_u64(mem, rsp)?;
                caller.set_num(reg, v);
                caller.set_rsp(add(rsp, 8)?);
            }
        }
    }
    pop_return(mem, &mut caller)?;
    Ok(Some(caller))
}

fn decode_epilog(
    code: &[u8],
    rip: u64,
    image: &Image,
    f: &RuntimeFunction,
    frame_register: u8,
) -> Option<Vec<EpilogStep>> {
    let at = |i: usize| code.get(i).copied();
    let mut steps = Vec::new();
    let mut i = 0usize;
    // 1. Optional stack deallocation.
    let b0 = at(0)?;
    if b0 == 0x48 && at(1) == Some(0x83) && at(2) == Some(0xc4) {
        let imm = at(3)? as i8;
        if imm < 0 {
            return None;
        }
        steps.push(EpilogStep::AddRsp(imm as u32));
        i = 4;
    } else if b0 == 0x48 && at(1) == Some(0x81) && at(2) == Some(0xc4) {
        let imm = i32::from_le_bytes([at(3)?, at(4)?, at(5)?, at(6)?]);
        if imm < 0 {
            return None;
        }
        steps.push(EpilogStep::AddRsp(imm as u32));
        i = 7;
    } else if frame_register != 0
        && (b0 & 0xfe) == 0x48
        && (b0 & 1) == frame_register >> 3
        && at(1) == Some(0x8d)
    {
        let modrm = at(2)?;
        let md = modrm >> 6;
        let reg = (modrm >> 3) & 7;
        let rm = modrm & 7;
        if reg != 4 || rm != (frame_register & 7) || rm == 4 {
            return None;
        }
        match md {
            1 => {
                steps.push(EpilogStep::LeaRsp(i32::from(at(3)? as i8)));
                i = 4;
            }
            2 => {
                let d = i32::from_le_bytes([at(3)?, at(4)?, at(5)?, at(6)?]);
                steps.push(EpilogStep::LeaRsp(d));
                i = 7;
            }
            _ => return None,
        }
    }
    // 2. Pops of nonvolatile registers.
    for _ in 0..MAX_EPILOG_POPS {
        let b = at(i)?;
        // `pop rsp` (0x5c) never ends a function: not an epilog pop.
        if (0x58..=0x5f).contains(&b) && b != 0x5c {
            steps.push(EpilogStep::Pop(b - 0x58));
            i += 1;
        } else if b == 0x41 && at(i + 1).is_some_and(|n| (0x58..=0x5f).contains(&n)) {
            steps.push(EpilogStep::Pop(at(i + 1)? - 0x58 + 8));
            i += 2;
        } else {
            break;
        }
    }
    // 3. The terminator.
    let b = at(i)?;
    let inside = |target: u64| {
        target
            .checked_sub(image.base)
            .and_then(|r| u32::try_from(r).ok())
            .is_some_and(|r| r >= f.begin && r < f.end)
    };
    let next_ip = |len: usize| rip.wrapping_add((i + len) as u64);
    let ok = match b {
        0xc3 => true,
        0xf3 => at(i + 1) == Some(0xc3),
        // jmp rel8 / rel32: a tail call only if it leaves the function.
        0xeb => {
            let d = at(i + 1)? as i8;
            !inside(next_ip(2).wrapping_add_signed(i64::from(d)))
        }
        0xe9 => {
            let d = i32::from_le_bytes([at(i + 1)?, at(i + 2)?, at(i + 3)?, at(i + 4)?]);
            !inside(next_ip(5).wrapping_add_signed(i64::from(d)))
        }
        // jmp qword ptr [...] (FF /4, mod 00), optionally with REX.W.
        0xff => at(i + 1).is_some_and(|m| m >> 6 == 0 && (m >> 3) & 7 == 4),
        0x48 => {
            at(i + 1) == Some(0xff) && at(i + 2).is_some_and(|m| m >> 6 == 0 && (m >> 3) & 7 == 4)
        }
        _ => false,
    };
    ok.then_some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(code: &[u8], frame_register: u8) -> Option<Vec<EpilogStep>> {
        let image = Image::empty(0x1000_0000, 0x1_0000);
        let f = RuntimeFunction {
            begin: 0x1000,
            end: 0x1100,
            unwind_data: 0x2000,
        };
        decode_epilog(code, 0x1000_1080, &image, &f, frame_register)
    }

    #[test]
    fn epilog_shapes() {
        use EpilogStep::*;
        assert_eq!(
            decode(&[0x48, 0x83, 0xc4, 0x28, 0x41, 0x5e, 0x5b, 0xc3], 0),
            Some(vec![AddRsp(0x28), Pop(14), Pop(3)])
        );
        assert_eq!(
            decode(&[0x48, 0x81, 0xc4, 0x00, 0x01, 0x00, 0x00, 0xf3, 0xc3], 0),
            Some(vec![AddRsp(0x100)])
        );
        // lea rsp, [rbp + 8] only with RBP as frame register.
        assert_eq!(
            decode(&[0x48, 0x8d, 0x65, 0x08, 0x5d, 0xc3], 5),
            Some(vec![LeaRsp(8), Pop(5)])
        );
        assert_eq!(decode(&[0x48, 0x8d, 0x65, 0x08, 0x5d, 0xc3], 0), None);
        // lea rsp, [r13 - 0x10] with R13.
        assert_eq!(
            decode(&[0x49, 0x8d, 0x65, 0xf0, 0xc3], 13),
            Some(vec![LeaRsp(-0x10)])
        );
        // jmp [rip + x] tail call; pop rsp is never an epilog pop.
        assert_eq!(
            decode(&[0x5b, 0xff, 0x25, 0, 0, 0, 0], 0),
            Some(vec![Pop(3)])
        );
        assert_eq!(decode(&[0x5c, 0xc3], 0), None);
        // Negative add, truncated bytes, ordinary code.
        assert_eq!(decode(&[0x48, 0x83, 0xc4, 0xf0, 0xc3], 0), None);
        assert_eq!(decode(&[0x48, 0x81, 0xc4, 0x00], 0), None);
        assert_eq!(decode(&[0x89, 0xc8, 0xc3], 0), None);
        assert_eq!(decode(&[], 0), None);
    }

    #[test]
    fn cpu_state_registers_map_to_unwind_numbering() {
        let mut cpu = CpuState {
            rip: 0x1234,
            ..CpuState::default()
        };
        for (i, r) in cpu.gpr.iter_mut().enumerate() {
            *r = 0x100 + i as u64;
        }
        let c = Context::from_cpu_state(&cpu);
        assert_eq!(c.rip, 0x1234);
        assert_eq!(c.get(Reg::Rax), Some(0x100));
        assert_eq!(c.get(Reg::Rbx), Some(0x101));
        assert_eq!(c.get(Reg::Rcx), Some(0x102));
        assert_eq!(c.get(Reg::Rdx), Some(0x103));
        assert_eq!(c.get(Reg::Rsi), Some(0x104));
        assert_eq!(c.get(Reg::Rdi), Some(0x105));
        assert_eq!(c.get(Reg::Rbp), Some(0x106));
        assert_eq!(c.rsp(), 0x107);
        assert_eq!(c.get(Reg::R8), Some(0x108));
        assert_eq!(c.get(Reg::R15), Some(0x10f));
    }
}
