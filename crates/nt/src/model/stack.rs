//! Kernel stacks as data: what `!thread`, `!stacks` and `!running -t`
//! show, built by the stack walker (`stacks.rs`).

use super::{hex, hex_opt, MissingSymbols, ThreadState, WaitReason, Warning};
use hangscope_waitgraph::Frame;
use hangscope_x64::VirtAddr;
use serde::{Deserialize, Serialize};

/// One frame of a kernel stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameInfo {
    /// Instruction pointer (a return address except for the top frame).
    #[serde(with = "hex")]
    pub rip: VirtAddr,
    /// Stack pointer in this frame (WinDbg's Child-SP).
    #[serde(with = "hex")]
    pub rsp: VirtAddr,
    /// The return address this frame goes back to (0 for the last frame).
    #[serde(with = "hex")]
    pub return_address: VirtAddr,
    /// What names it: module, function and offset (text
    /// `module!symbol+0xoff`, `module+0xoff`, or the bare address).
    pub symbol: Frame,
    /// How it was unwound: `normal`, `epilog`, `machine_frame`, `leaf`,
    /// `not_unwound`.
    pub kind: String,
}

/// A thread's kernel stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackInfo {
    /// The thread (`_ETHREAD`).
    #[serde(with = "hex")]
    pub thread: VirtAddr,
    /// Frames, top first.
    pub frames: Vec<FrameInfo>,
    /// How the start was found: `switch frame at KernelStack ...`,
    /// `probe ...`, `vCPU n`, or why there is none.
    pub start: String,
    /// Why the walk ended (`zero_return_address`, ...).
    pub stop: String,
    /// The stop reason in words.
    pub stop_detail: String,
    /// The walk reached the end of the stack (not cut).
    pub complete: bool,
    /// Problems met.
    pub warnings: Vec<Warning>,
    /// Modules with frames on this stack that have no symbol table (their
    /// frames are named from exports or as `module+0xoff`), with what to
    /// fetch.
    pub missing_symbols: Vec<MissingSymbols>,
}

impl StackInfo {
    /// The frames' names, top first.
    pub fn symbols(&self) -> Vec<Frame> {
        self.frames.iter().map(|f| f.symbol.clone()).collect()
    }
}

/// A thread in a stack group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackThread {
    /// `_ETHREAD`.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// PID.
    pub pid: u64,
    /// TID.
    pub tid: u64,
    /// Image name.
    pub process_name: String,
    /// Scheduler state.
    pub state: ThreadState,
    /// Wait reason.
    pub wait_reason: Option<WaitReason>,
    /// Whether the walk was complete.
    pub complete: bool,
}

/// Threads with identical stacks (same frame names, top first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackGroup {
    /// The shared frames.
    pub frames: Vec<Frame>,
    /// How many threads.
    pub count: usize,
    /// The threads.
    pub threads: Vec<StackThread>,
}

/// `!stacks`: every matching thread's stack, identical ones grouped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StacksReport {
    /// Groups, largest first.
    pub groups: Vec<StackGroup>,
    /// Threads walked.
    pub threads: usize,
    /// Walks that were cut short.
    pub incomplete: usize,
    /// Problems met (per thread, with the thread address).
    pub warnings: Vec<Warning>,
    /// Modules with frames on the listed stacks that have no symbol table,
    /// with what to fetch (each once).
    pub missing_symbols: Vec<MissingSymbols>,
}

/// `!running -t`: one processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningCpu {
    /// Processor number.
    pub cpu: u32,
    /// `_KPRCB`.
    #[serde(with = "hex")]
    pub kprcb: VirtAddr,
    /// `CurrentThread`.
    #[serde(with = "hex_opt")]
    pub thread: Option<VirtAddr>,
    /// Whether it is the processor's idle thread.
    pub idle: bool,
    /// Its owner's PID and image name when known.
    pub pid: Option<u64>,
    /// TID.
    pub tid: Option<u64>,
    /// Image name.
    pub process_name: Option<String>,
    /// The stack from the vCPU registers.
    pub stack: StackInfo,
}
