//! x64 stack unwinding for Windows kernel stacks, from the PE images
//! (`.pdata` RUNTIME_FUNCTIONs and UNWIND_INFO) read out of a dump's virtual
//! memory.
//!
//! # Why not `framehop`
//! `framehop` 0.16 (with `pe-unwind-info` 0.6.1, read 2026-11) was evaluated
//! first. It unwinds x64 PE code well for its purpose (a user-mode sampling
//! profiler) but does not fit a dump of a broken kernel:
//! - **Memory model**: a module hands over whole sections by name as
//!   contiguous byte slices (`ModuleSectionInfo::section_data(b".pdata")`,
//!   `.rdata`/`.xdata` for unwind info, `.text` for code). A kernel image in a
//!   dump has holes (paged-out `PAGE*` sections, discarded `INIT`), so a
//!   whole section must be copied up front and one missing page loses it.
//!   hangscope reads lazily and reports *which* address was unreadable.
//! - **Section names**: instruction bytes for epilog detection come only
//!   from `.text` and unwind info only from `.rdata`/`.xdata`; ntoskrnl runs
//!   code from `PAGE`, `PAGELK`, `INIT`, `KVASCODE`, ... so epilogs there
//!   would not be recognised.
//! - **Untrusted input**: the chained-unwind walk is unbounded
//!   (`core::iter::successors(..).collect()` in framehop's `x86_64/pe.rs`, a
//!   `loop` in `pe-unwind-info`'s `unwind_frame`), so a self-referencing
//!   CHAININFO never ends; arithmetic is unchecked (`rsp + offset`,
//!   `end_address - address`, `[..bytes]` slicing, an
//!   `.expect("invalid fp register offset")`), which panics in debug builds
//!   or yields garbage on corrupt data.
//! - **Version 2 epilog codes**: `pe-unwind-info` 0.6.1 builds the
//!   UWOP_EPILOG "single epilog" flag and offset high bits from the opcode
//!   nibble instead of OpInfo, so the v2 epilog check looks wrong.
//! - **Output**: only return addresses. No per-frame RSP or registers, no
//!   frame kind (a machine frame's RIP is the *interrupted* instruction, not
//!   a return address: symbolising `rip - 1` there is wrong), no stop reason,
//!   no stack limits.
//!
//! What it does support (and this crate does too): `.pdata` binary search,
//! all v1 unwind codes incl. UWOP_PUSH_MACHFRAME, chained info, frame
//! registers, epilog emulation by instruction decoding.
//!
//! # Using it
//! ```
//! use hangscope_unwind::{Context, ModuleList, Module, Unwinder, UnwindOptions, StopReason};
//! use hangscope_x64::SparseMemory;
//! let mem = SparseMemory::new();               // or a hangscope_x64::AddressSpace
//! let modules = ModuleList::new(vec![Module::new(0xfffff800_12340000, 0x10000, "x.sys")]);
//! let mut unwinder = Unwinder::new();           // keep one per dump: it caches images
//! let stack = unwinder.unwind(&mem, &modules, Context::new(0x1234, 0xffff_d000_0000_1000),
//!                             &UnwindOptions::default());
//! assert_eq!(stack.stop, StopReason::OutsideModules { rip: hangscope_x64::VirtAddr(0x1234) });
//! ```
//!
//! # What the kernel model must pass
//! The unwinder knows no Windows structure. `nt` supplies:
//! - **Modules**: `PsLoadedModuleList` entries (`DllBase`, `SizeOfImage`,
//!   `BaseDllName`) as a [`ModuleList`] (or its own [`ModuleSet`]).
//! - **A start [`Context`]**:
//!   - *running thread*: the vCPU registers, [`Context::from_cpu_state`];
//!   - *waiting thread*: from `KTHREAD.KernelStack`, which points at the
//!     switch frame `SwapContext` saved (`KSWITCH_FRAME`: P1Home..P5Home,
//!     ApcBypass/MxCsr, `Rbp` at +0x30, `Return` at +0x38, 0x40 bytes, in
//!     the public headers for Vista and later; older x64 kernels used a
//!     0x20-byte frame with `Return` at +0x18; not yet checked here against
//!     a real dump). RIP = `Return` (a return address into
//!     `KiSwapContext`), RSP = `KernelStack + 0x40`, RBP = `Rbp`. Starting
//!     inside `KiSwapContext` is deliberate: its own unwind codes then
//!     restore every nonvolatile register from its `KEXCEPTION_FRAME`, so
//!     frame-pointer functions further up unwind too. The shipped ISF
//!     tables hold `_KEXCEPTION_FRAME` but no `_KSWITCH_FRAME` type, so when
//!     nt cannot take the layout from the symbols it can call
//!     [`Unwinder::probe_start`] on `KernelStack`, which tries each slot as
//!     the return address and keeps the first that unwinds to a complete
//!     stack (a stale return address in a home slot could also unwind
//!     completely: prefer the known offset, use the probe as the fallback
//!     and say so in the report).
//! - **[`UnwindOptions`]**: `stack_limits` = `KTHREAD.StackLimit` ..
//!   `KTHREAD.StackBase` (or `InitialStack` + a margin); for running threads
//!   also the CPU's `KPRCB.DpcStack` and ISR stack in `other_stacks`.
//!
//! Each [`Frame`] carries module index and RVA for symbolisation: symbolise
//! [`Frame::lookup_rva`] (RVA - 1 for return addresses).
//!
//! # Writing unwindable stacks
//! [`synth`] produces UNWIND_INFO, `.pdata`, prolog/epilog code and stack
//! frames that this crate unwinds back exactly: for the lab's dumps and for
//! tests.
//!
//! # Known limits
//! - XMM registers are not tracked (their save slots are parsed, skipped).
//! - Exception/termination handlers are not run (a dump is not unwound for
//!   an exception; only the frames matter).
//! - Epilogs are recognised by decoding the instructions at RIP, as Windows
//!   does for version 1 unwind info; version 2 UWOP_EPILOG descriptors are
//!   parsed but not needed for that. An unreadable code page means "not in
//!   an epilog", which is wrong only if RIP really was in one.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod error;
pub mod image;
pub mod raw;
pub mod synth;
mod unwind;

pub use error::{Error, ErrorKind, Location};
/// The PE header error kinds that [`ErrorKind::Image`] wraps.
pub use hangscope_pe::ErrorKind as PeErrorKind;

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use image::{
    Image, Lookup, Module, ModuleList, ModuleSet, PdataReport, RuntimeFunction, UnwindCode,
    UnwindInfo, UnwindOp,
};
pub use unwind::{
    unwind, Context, Frame, FrameKind, Reg, RipOrigin, Stack, StackRange, StopReason,
    UnwindOptions, Unwinder, MAX_CHAIN_DEPTH,
};
