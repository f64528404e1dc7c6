//! The OS-neutral wait-for graph and the hang verdict.
//!
//! A kernel model (Windows today, Linux later) fills a [`WaitGraphInput`]:
//! threads, the resources they own and wait on, their pending I/O, the
//! files in memory and who holds them. [`analyze`] turns it into a
//! [`Verdict`]: deadlocks (cycles), busy owners (young waiters, running
//! owner), stuck chains (long waits without a cycle), ranked by how many
//! threads each blocks and for how long, plus hot directories.
//!
//! CONTRACT (skeleton): the input types are the interface the kernel model
//! fills; additive changes only.
//!
//! ```
//! use hangscope_waitgraph::*;
//!
//! let thread = |key, state, secs| Thread {
//!     key, tid: key, pid: 8, state, wait_reason: None,
//!     waited_seconds: secs, waited_ticks: None, stack: vec![], io: vec![],
//!     user_mode_wait: false,
//!     warnings: vec![],
//! };
//! let input = WaitGraphInput {
//!     processes: vec![Process { pid: 8, name: "php-cgi.exe".into(), ..Process::default() }],
//!     threads: vec![
//!         thread(1, ThreadState::Running { cpu: 0 }, None),
//!         thread(2, ThreadState::Waiting, Some(1.0)),
//!     ],
//!     resources: vec![Resource {
//!         key: 0xfffffa80_0c1f2e40,
//!         kind: ResourceKind::Eresource,
//!         name: None,
//!         owners: vec![Claim { thread: 1, mode: Mode::Exclusive }],
//!         waiters: vec![Claim { thread: 2, mode: Mode::Exclusive }],
//!         contention_count: None,
//!         warnings: vec![],
//!     }],
//!     ..WaitGraphInput::default()
//! };
//! let verdict = analyze(&input, &AnalyzeOptions::default());
//! assert_eq!(verdict.overall, Overall::BusyOwner);
//! assert_eq!(verdict.overall.exit_code(), 1);
//! assert_eq!(verdict.findings[0].blocked_threads, 1);
//! println!("{}", verdict.findings[0].summary);
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

use serde::{Deserialize, Serialize};

mod alpc;
mod analyze;
mod files;
mod frame;
mod graph;
mod io_stall;
pub mod progress;
mod starvation;
pub mod verdict;

pub use analyze::{analyze, kind_name, kind_title, owners_inferred, secs_text, state_name};
pub use files::{directory_of, pattern_of, PathStyle};
pub use frame::{Frame, FrameParseError};
pub use progress::{
    compare, BootIdentity, Clock, FindingProgress, IrpPosition, Moment, Motion, NotOneBoot,
    ProgressInput, ProgressSource, Proof, Series, ThreadCounters,
};
pub use verdict::{
    Addr, AlpcUnanswered, AnalyzeOptions, BlockedProcess, CpuStarvation, EvidenceStep, Finding,
    FindingKind, GraphEdge, GraphNode, GraphView, HotDirectory, IoSummary, LowMemory, NamePattern,
    NodeKind, Overall, ProcessFiles, StarvedCpu, Stats, ThreadSummary, Verdict, WaitEdge,
};

/// Identifies a thread: the address of its kernel object.
pub type ThreadKey = u64;
/// Identifies a resource: the address of the lock or dispatcher object.
pub type ResourceKey = u64;

/// A process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Kernel object address.
    pub address: Addr,
    /// PID.
    pub pid: u64,
    /// Parent PID.
    pub ppid: u64,
    /// Image name.
    pub name: String,
    /// Session id.
    pub session: Option<u32>,
}

/// What a thread is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ThreadState {
    /// On a CPU.
    Running {
        /// CPU number.
        cpu: u32,
    },
    /// Ready to run (or standby).
    Ready,
    /// Waiting.
    Waiting,
    /// Anything else (terminated, initialized, transition, unknown raw).
    Other {
        /// The state's name.
        name: String,
    },
}

/// Pending I/O a thread issued.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Io {
    /// IRP address.
    pub irp: Addr,
    /// Major function at the current stack location (`IRP_MJ_CREATE`).
    pub major: Option<String>,
    /// Driver at the current stack location (`\FileSystem\Ntfs`).
    pub driver: Option<String>,
    /// Device at the current stack location (`\Device\HarddiskVolume2`).
    pub device: Option<String>,
    /// File object address.
    pub file_object: Option<Addr>,
    /// Full file path (`\Windows\Temp\sess_1`), without the device.
    pub file: Option<String>,
    /// Address of the device at the current stack location: IRPs pending
    /// at one device are counted by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_address: Option<Addr>,
    /// The drivers the request passed through, from the top of its stack
    /// (the file system) down to the current location (`\FileSystem\Ntfs`,
    /// `\Driver\volmgr`, `\Driver\disk`, `\Driver\viostor`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_stack: Vec<String>,
    /// Whether the current location is the last of the request's stack:
    /// the request reached the bottom driver (a storage or network
    /// miniport) and waits for the hardware, real or virtual.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_bottom: bool,
    /// The event the issuer waits on for completion (`_IRP.UserEvent` on
    /// Windows), when the request names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Addr>,
}

/// A thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// Kernel object address.
    pub key: ThreadKey,
    /// TID.
    pub tid: u64,
    /// Owning PID.
    pub pid: u64,
    /// State.
    pub state: ThreadState,
    /// Wait reason name when waiting.
    pub wait_reason: Option<String>,
    /// Seconds since it last ran (waiting or ready), when known.
    pub waited_seconds: Option<f64>,
    /// Ticks since it last ran, when known.
    pub waited_ticks: Option<u64>,
    /// Its stack, top first, each frame named as far as the kernel model
    /// could (`nt!KiSwapContext+0x7a`); empty when unknown.
    pub stack: Vec<Frame>,
    /// Pending I/O.
    pub io: Vec<Io>,
    /// Whether the wait was made for user mode (`KTHREAD.WaitMode` on
    /// Windows): a user-mode wait, however long, is a thread idle by its
    /// own choice, never an unexplained kernel wait.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_mode_wait: bool,
    /// What was wrong with this thread's record in the dump (an unknown
    /// state, an unreadable or self-pointing wait block, ...). A finding
    /// whose evidence includes the thread repeats them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// How a resource is held or wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Shared (reader).
    Shared,
    /// Exclusive (writer, mutant owner).
    Exclusive,
}

/// A kind of resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// Executive resource (reader/writer lock).
    Eresource,
    /// Kernel mutant (mutex) with an owner thread.
    Mutant,
    /// Event.
    Event,
    /// Semaphore.
    Semaphore,
    /// Anything else (raw type name).
    Other(String),
    /// An ALPC request (Windows `_KALPC_MESSAGE`): its waiter is the
    /// client blocked for the reply, its owner the server thread that took
    /// it, in another process; none while it sits on the port's queue.
    /// [`WaitGraphInput::alpc`] says which port and server.
    AlpcMessage,
}

/// One thread's claim on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The thread.
    pub thread: ThreadKey,
    /// Shared or exclusive.
    pub mode: Mode,
}

/// A lock or dispatcher object with its owners and waiters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Address.
    pub key: ResourceKey,
    /// Kind.
    pub kind: ResourceKind,
    /// A name when one is known (symbol, object name).
    pub name: Option<String>,
    /// Owners, when the kind has owners.
    pub owners: Vec<Claim>,
    /// Waiters.
    pub waiters: Vec<Claim>,
    /// Contention count, when the kind keeps one.
    pub contention_count: Option<u64>,
    /// What was wrong with this resource in the dump (not on the kernel's
    /// list, owner counts that disagree, ...). A finding whose evidence
    /// includes the resource repeats them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A file object in memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// File object address.
    pub address: Addr,
    /// Full path without the device.
    pub path: String,
    /// Device name.
    pub device: Option<String>,
    /// PIDs holding a handle to it.
    pub holders: Vec<u64>,
}

/// Everything the analysis needs, from any kernel model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitGraphInput {
    /// Processes.
    pub processes: Vec<Process>,
    /// Threads.
    pub threads: Vec<Thread>,
    /// Resources.
    pub resources: Vec<Resource>,
    /// File objects.
    pub files: Vec<File>,
    /// Warnings from reading the model (corrupt lists, unreadable objects).
    pub warnings: Vec<String>,
    /// Parts of the model known to be incomplete. A verdict that would be
    /// "healthy" over an incomplete model is "inconclusive" instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
    /// The ALPC requests behind the [`ResourceKind::AlpcMessage`]
    /// resources: where each was sent and whether a server thread took it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpc: Vec<AlpcMessage>,
    /// The ALPC connection ports whose own worker threads are known (an
    /// LRPC server's port with its I/O completion queue), for the ports
    /// the `alpc` requests were sent to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpc_ports: Vec<AlpcPort>,
    /// The CPUs' ready queues, current threads and DPC queues, when the
    /// kernel model read them: what CPU starvation is judged on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<Scheduler>,
    /// Free physical memory and commit against its limit, when read: what
    /// memory exhaustion is judged on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryState>,
}

/// Who runs and who waits to run, per CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scheduler {
    /// Every CPU read.
    pub cpus: Vec<CpuQueue>,
    /// Threads on ready queues several CPUs share (Windows' shared ready
    /// queue), each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_ready: Vec<ReadyThread>,
}

/// One CPU: what it runs, the threads ready on its own queue, its DPCs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuQueue {
    /// CPU number.
    pub cpu: u32,
    /// The thread it runs, when known.
    pub current: Option<ThreadKey>,
    /// That thread's priority, when known.
    pub current_priority: Option<i32>,
    /// Whether it runs its idle thread.
    pub idle: bool,
    /// Threads ready on its own queue, in queue order (highest priority
    /// first).
    pub ready: Vec<ReadyThread>,
    /// DPCs queued on it, as the kernel counts them.
    pub dpc_queue_depth: Option<u64>,
    /// The DPCs on its queue (bounded), in queue order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpcs: Vec<QueuedDpc>,
    /// Whether it was running a DPC routine when dumped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpc_active: bool,
}

/// A thread on a ready queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyThread {
    /// The thread.
    pub thread: ThreadKey,
    /// Its priority (the queue it is on).
    pub priority: i32,
    /// The CPUs ([`CpuQueue::cpu`]) it may run on (its affinity, and for a
    /// shared queue the CPUs sharing it), when known; `None`: any CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Vec<u32>>,
}

/// A queued DPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedDpc {
    /// The DPC object.
    pub address: Addr,
    /// Its routine's address.
    pub routine: Addr,
    /// Its routine named from the module's symbols (`viostor!VirtIoDpc`),
    /// else `module+0xoffset`.
    pub routine_name: Option<String>,
}

/// Physical memory and commit, in pages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryState {
    /// Bytes per page.
    pub page_size: u64,
    /// Pages of physical memory.
    pub physical_pages: Option<u64>,
    /// Pages available (free, zeroed and standby).
    pub available_pages: Option<u64>,
    /// Pages committed.
    pub committed_pages: Option<u64>,
    /// The commit limit, pages.
    pub commit_limit_pages: Option<u64>,
    /// Where the numbers came from (`MiSystemPartition.Vp`, globals).
    pub source: String,
}

/// An ALPC request a client thread waits on for its reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlpcMessage {
    /// The message: the key of its [`ResourceKind::AlpcMessage`] resource.
    pub message: Addr,
    /// The client thread waiting for the reply.
    pub client: ThreadKey,
    /// The connection port it was sent to.
    pub port: Option<Addr>,
    /// The connection port's name (`\LsaAuthenticationPort`).
    pub port_name: Option<String>,
    /// The server process (the port's owner).
    pub server_pid: Option<u64>,
    /// The server thread that took the message, if one did.
    pub server_thread: Option<ThreadKey>,
}

/// A server's connection port with the worker threads that serve it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlpcPort {
    /// The port ([`AlpcMessage::port`]).
    pub port: Addr,
    /// Its name.
    pub name: Option<String>,
    /// The server process.
    pub server_pid: Option<u64>,
    /// Its workers: on Windows the threads associated with the port's I/O
    /// completion queue, those waiting on its own queue for a request, and
    /// the server threads that took its messages.
    pub workers: Vec<PortWorker>,
}

/// One worker thread of an ALPC port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortWorker {
    /// The thread.
    pub thread: ThreadKey,
    /// It waits for a request on the port's own queues (idle), rather than
    /// working on one it took.
    pub idle: bool,
}

/// A part of the kernel model that the verdict rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelPart {
    /// The list of processes.
    Processes,
    /// The threads of the listed processes.
    Threads,
    /// The kernel's list of locks (ERESOURCEs on Windows).
    Locks,
    /// What each waiting thread waits on (wait blocks on Windows).
    Waits,
}

impl ModelPart {
    /// Plain words for reports: `process list`.
    pub fn describe(self) -> &'static str {
        match self {
            ModelPart::Processes => "process list",
            ModelPart::Threads => "thread lists",
            ModelPart::Locks => "lock list",
            ModelPart::Waits => "wait records",
        }
    }
}

/// A part of the model that could not be read whole, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Which part.
    pub part: ModelPart,
    /// Why, with the address where reading stopped when there is one.
    pub reason: String,
}

/// The README's example, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// A kernel model that can describe who waits on what.
pub trait WaitSource {
    /// Build the analysis input.
    fn wait_graph_input(&self) -> WaitGraphInput;
}
