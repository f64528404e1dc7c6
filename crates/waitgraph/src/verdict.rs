//! The output of [`crate::analyze`]: the verdict, its findings and evidence.
//!
//! Everything here is serde-serialisable; the JSON schema is documented in
//! `docs/json-schema.md`. Addresses serialise as zero-padded hex strings
//! (`"0xfffffa800b61bb50"`) through [`Addr`], so that JSON readers in any
//! language keep all 64 bits.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A kernel virtual address in the verdict.
///
/// Serialises as `"0x"` plus 16 lowercase hex digits; deserialises from that
/// form, from a hex string without `0x`, or from a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub u64);

impl Addr {
    /// The address in WinDbg's notation for 64-bit targets:
    /// `fffffa80`0b61bb50`.
    pub fn windbg(self) -> String {
        format!("{:08x}`{:08x}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(Addr(n)),
            Raw::Text(t) => {
                let t = t.trim();
                let hex = t
                    .strip_prefix("0x")
                    .or_else(|| t.strip_prefix("0X"))
                    .unwrap_or(t)
                    .replace('`', "");
                u64::from_str_radix(&hex, 16)
                    .map(Addr)
                    .map_err(|e| serde::de::Error::custom(format!("bad address {t:?}: {e}")))
            }
        }
    }
}

/// Thresholds and bounds of the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalyzeOptions {
    /// Waits shorter than this (seconds) are young: with a running owner the
    /// chain is a busy owner, not a hang. Default 30.
    pub young_wait_seconds: f64,
    /// Waits at least this long (seconds) make a chain without a cycle
    /// stuck. Default 120.
    pub stuck_wait_seconds: f64,
    /// A directory with at least this many file objects is hot. Default 100.
    pub hot_dir_min_files: usize,
    /// At most this many hot directories are reported (plus the ones the
    /// blocking I/O touches). Default 10.
    pub hot_dir_top: usize,
    /// At most this many findings; each costs one pass over the graph.
    /// Default 64.
    pub max_findings: usize,
    /// At most this many blocked threads listed per finding. Default 256.
    pub max_threads_per_finding: usize,
    /// At most this many wait edges listed per finding. Default 1024.
    pub max_edges_per_finding: usize,
    /// Stack frames kept per thread in the evidence. Default 8.
    pub stack_frames: usize,
    /// At most this many nodes in the drawn graph. Default 300.
    pub max_graph_nodes: usize,
    /// I/O that has been pending at the bottom of its stack at least this
    /// long (seconds, by its waiter's wait) is stuck. Default 30.
    pub stuck_io_seconds: f64,
    /// Kernel waits longer than this (seconds) on objects nobody owns, that
    /// no other finding explains, are reported as unexplained. Default 60.
    pub unexplained_wait_seconds: f64,
    /// A thread ready this long (seconds) without running is starved of
    /// CPU; Windows' balance set manager boosts threads ready for 4 s, so a
    /// longer ready time means the boost did not get them a CPU either.
    /// Default 5.
    pub starved_ready_seconds: f64,
    /// Memory is low when the available pages are below this percentage
    /// of physical memory. Default 5.
    pub low_memory_percent: f64,
    /// Commit is exhausted at this percentage of the commit limit.
    /// Default 95.
    pub commit_full_percent: f64,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            young_wait_seconds: 30.0,
            stuck_wait_seconds: 120.0,
            hot_dir_min_files: 100,
            hot_dir_top: 10,
            max_findings: 64,
            max_threads_per_finding: 256,
            max_edges_per_finding: 1024,
            stack_frames: 8,
            max_graph_nodes: 300,
            stuck_io_seconds: 30.0,
            unexplained_wait_seconds: 60.0,
            starved_ready_seconds: 5.0,
            low_memory_percent: 5.0,
            commit_full_percent: 95.0,
        }
    }
}

/// The overall verdict, ordered from harmless to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    /// No thread waits on a resource someone owns, and the model the
    /// verdict rests on was read whole.
    Healthy,
    /// Nothing was found, but the model is empty or known to be incomplete
    /// (a broken process list, unreadable wait blocks, ...): the dump cannot
    /// show that the machine is healthy.
    Inconclusive,
    /// Long kernel waits on objects nobody owns, which no other class
    /// explains: not a proven hang, not healthy either.
    Unexplained,
    /// Threads wait on owned resources, nothing worse.
    Contention,
    /// Young waiters behind an owner that runs: slow, not frozen.
    BusyOwner,
    /// Long waits without a cycle.
    Stuck,
    /// Threads wait on I/O that a storage or network driver at the bottom
    /// of its device stack has not completed for a long time.
    StuckIo,
    /// A cycle of waits.
    Deadlock,
}

impl Overall {
    /// The CLI's exit code: 0 healthy, 1 contention or busy owner, 3 stuck
    /// (stuck I/O too: a long wait without a cycle, whose finding names the
    /// driver), 4 deadlock, 5 inconclusive, 6 unexplained long waits. (2 is
    /// reserved for errors.)
    pub fn exit_code(self) -> u8 {
        match self {
            Overall::Healthy => 0,
            Overall::Inconclusive => 5,
            Overall::Unexplained => 6,
            Overall::Contention | Overall::BusyOwner => 1,
            Overall::Stuck | Overall::StuckIo => 3,
            Overall::Deadlock => 4,
        }
    }

    /// The lowercase name used in text and JSON (`busy_owner`).
    pub fn name(self) -> &'static str {
        match self {
            Overall::Healthy => "healthy",
            Overall::Inconclusive => "inconclusive",
            Overall::Contention => "contention",
            Overall::BusyOwner => "busy_owner",
            Overall::Stuck => "stuck",
            Overall::StuckIo => "stuck_io",
            Overall::Unexplained => "unexplained",
            Overall::Deadlock => "deadlock",
        }
    }
}

/// What one finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Waiters exist; no rule below applies.
    Contention,
    /// Young waiters, final owner running or ready.
    BusyOwner,
    /// Long waits, no cycle.
    Stuck,
    /// I/O pending at the bottom of a device stack for a long time.
    StuckIo,
    /// A cycle of waits.
    Deadlock,
    /// Long kernel waits on objects nobody owns, no other class explaining
    /// them.
    Unexplained,
    /// ALPC requests no server thread has taken, their clients waiting
    /// long: the server's threads are all busy or blocked. Stuck overall.
    AlpcUnanswered,
    /// Threads ready for long without a CPU while every CPU runs other
    /// threads or DPCs. Stuck overall.
    CpuStarvation,
    /// Threads waiting for free pages or page-ins while available memory
    /// is low or commit is at its limit. Stuck overall.
    LowMemory,
}

impl FindingKind {
    /// The overall verdict this finding alone would give.
    pub fn overall(self) -> Overall {
        match self {
            FindingKind::Contention => Overall::Contention,
            FindingKind::BusyOwner => Overall::BusyOwner,
            FindingKind::Stuck => Overall::Stuck,
            FindingKind::StuckIo => Overall::StuckIo,
            FindingKind::Deadlock => Overall::Deadlock,
            FindingKind::Unexplained => Overall::Unexplained,
            FindingKind::AlpcUnanswered | FindingKind::CpuStarvation | FindingKind::LowMemory => {
                Overall::Stuck
            }
        }
    }

    /// The lowercase name (`busy_owner`).
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::AlpcUnanswered => "alpc_unanswered",
            FindingKind::CpuStarvation => "cpu_starvation",
            FindingKind::LowMemory => "low_memory",
            other => other.overall().name(),
        }
    }
}

/// How an owner holds a resource (mirrors [`crate::Mode`]).
pub use crate::Mode as HoldMode;

/// One step of an evidence chain, in the order an engineer follows it:
/// lock -> owner -> lock -> owner -> IRP -> driver -> file -> directory ->
/// processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum EvidenceStep {
    /// A lock or dispatcher object.
    Resource {
        /// Its address.
        address: Addr,
        /// `eresource`, `mutant`, `event`, `semaphore` or a raw type name.
        kind: String,
        /// Symbol or object name when known.
        name: Option<String>,
        /// Number of owners.
        owners: usize,
        /// Number of waiters.
        waiters: usize,
        /// How the next thread in the chain holds it, when it does.
        held_as: Option<HoldMode>,
        /// Contention count when the kind keeps one.
        contention_count: Option<u64>,
        /// The longest wait among its direct waiters, seconds.
        max_wait_seconds: Option<f64>,
    },
    /// A thread: an owner, or a waiter in a cycle.
    Thread {
        /// Its kernel object address.
        address: Addr,
        /// TID (absent for a thread that is named by a lock but missing
        /// from the thread list).
        tid: Option<u64>,
        /// PID.
        pid: Option<u64>,
        /// Image name of its process.
        process: Option<String>,
        /// `running`, `ready`, `waiting`, another state name, or `unknown`.
        state: String,
        /// CPU when running.
        cpu: Option<u32>,
        /// Wait reason when waiting.
        wait_reason: Option<String>,
        /// Seconds since it last ran, when known.
        waited_seconds: Option<f64>,
        /// Top of its stack (top first), when known; each frame serialises
        /// as its text, `module!function+0xoffset`.
        stack: Vec<crate::Frame>,
    },
    /// A pending I/O request.
    Irp {
        /// IRP address.
        address: Addr,
        /// Major function at the current stack location.
        major: Option<String>,
        /// Device at the current stack location.
        device: Option<String>,
    },
    /// The driver at the IRP's current stack location.
    Driver {
        /// `\FileSystem\Ntfs`.
        name: String,
    },
    /// A file object.
    File {
        /// File object address, when known.
        address: Option<Addr>,
        /// Full path without the device.
        path: String,
    },
    /// The directory of the file before it.
    Directory {
        /// Directory path (`\Windows\Temp`).
        path: String,
        /// File objects in memory in this directory.
        files: usize,
        /// Whether it holds at least `hot_dir_min_files` file objects.
        hot: bool,
    },
    /// A process holding handles to files in the directory before it.
    Process {
        /// Image name.
        name: String,
        /// PID.
        pid: u64,
        /// File objects it holds in that directory.
        files: usize,
    },
    /// The cycle closes: back to the resource the chain started with.
    CycleBack {
        /// The resource the cycle started with.
        address: Addr,
    },
}

/// One wait edge: `waiter` waits on `resource`, which `owner` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitEdge {
    /// Waiting thread.
    pub waiter: Addr,
    /// Its TID when known.
    pub waiter_tid: Option<u64>,
    /// The resource.
    pub resource: Addr,
    /// An owner of the resource.
    pub owner: Addr,
    /// The owner's TID when known.
    pub owner_tid: Option<u64>,
    /// How the owner holds it.
    pub held_as: HoldMode,
    /// How long the waiter has waited, seconds.
    pub waited_seconds: Option<f64>,
}

/// A process with blocked threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedProcess {
    /// Image name (`?` when the PID is not in the process list).
    pub name: String,
    /// PID.
    pub pid: u64,
    /// Number of its threads in the finding.
    pub threads: usize,
}

/// A thread listed in a finding's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadSummary {
    /// Kernel object address.
    pub address: Addr,
    /// TID when known.
    pub tid: Option<u64>,
    /// PID when known.
    pub pid: Option<u64>,
    /// Image name of its process.
    pub process: Option<String>,
    /// State name.
    pub state: String,
    /// Wait reason.
    pub wait_reason: Option<String>,
    /// Seconds since it last ran.
    pub waited_seconds: Option<f64>,
    /// Owned resources it waits on.
    pub waits_on: Vec<Addr>,
}

/// Pending I/O of the final owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoSummary {
    /// IRP address.
    pub irp: Addr,
    /// Major function.
    pub major: Option<String>,
    /// Driver at the current stack location.
    pub driver: Option<String>,
    /// Device at the current stack location.
    pub device: Option<String>,
    /// File object.
    pub file_object: Option<Addr>,
    /// File path.
    pub file: Option<String>,
}

impl From<&crate::Io> for IoSummary {
    fn from(io: &crate::Io) -> IoSummary {
        IoSummary {
            irp: io.irp,
            major: io.major.clone(),
            driver: io.driver.clone(),
            device: io.device.clone(),
            file_object: io.file_object,
            file: io.file.clone(),
        }
    }
}

/// One finding: a chain of waits with its cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// 1 for the finding that blocks the most threads.
    pub rank: usize,
    /// What it is.
    pub kind: FindingKind,
    /// One sentence.
    pub summary: String,
    /// Why the kind was chosen (thresholds and states compared).
    pub why: String,
    /// The evidence chain, first step first.
    pub chain: Vec<EvidenceStep>,
    /// Wait edges: every edge of the cycle for a deadlock, the chain's
    /// edges otherwise.
    pub edges: Vec<WaitEdge>,
    /// Whether `edges` was cut at the bound.
    pub edges_truncated: bool,
    /// The final owner (the thread the chain ends in), absent for a
    /// deadlock, stuck I/O and an unexplained wait.
    pub final_owner: Option<Addr>,
    /// Pending I/O of the final owner.
    pub owner_io: Vec<IoSummary>,
    /// Threads blocked, transitively, by this chain's final owner or cycle
    /// (cycle members included, the final owner not).
    pub blocked_threads: usize,
    /// Processes of the blocked threads, most threads first.
    pub blocked_processes: Vec<BlockedProcess>,
    /// Longest wait among the blocked threads, seconds.
    pub max_wait_seconds: Option<f64>,
    /// Sum of the known waits of the blocked threads, seconds.
    pub total_wait_seconds: f64,
    /// Blocked threads, longest wait first (bounded).
    pub threads: Vec<ThreadSummary>,
    /// Whether `threads` was cut at the bound.
    pub threads_truncated: bool,
    /// Warnings about the objects of the chain (a thread with an unknown
    /// state, a wait block that points nowhere, a lock missing from the
    /// kernel's list, an owner missing from the thread list): the finding
    /// rests on data the dump shows damaged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_warnings: Vec<String>,
    /// For stuck I/O: the device the requests sit at and the stack above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_io: Option<StuckIo>,
    /// For unexplained waits: the objects waited on, longest wait first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unexplained_objects: Vec<UnexplainedObject>,
    /// For unanswered ALPC requests: the server, its queued messages and
    /// what its threads wait on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpc: Option<AlpcUnanswered>,
    /// For CPU starvation: each CPU, what it runs and its queues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starvation: Option<CpuStarvation>,
    /// For low memory: the numbers and the threads waiting on memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_memory: Option<LowMemory>,
}

impl Finding {
    /// A finding of `kind` with nothing in it yet.
    pub(crate) fn empty(kind: FindingKind) -> Finding {
        Finding {
            rank: 0,
            kind,
            summary: String::new(),
            why: String::new(),
            chain: Vec::new(),
            edges: Vec::new(),
            edges_truncated: false,
            final_owner: None,
            owner_io: Vec::new(),
            blocked_threads: 0,
            blocked_processes: Vec::new(),
            max_wait_seconds: None,
            total_wait_seconds: 0.0,
            threads: Vec::new(),
            threads_truncated: false,
            evidence_warnings: Vec::new(),
            stuck_io: None,
            unexplained_objects: Vec::new(),
            alpc: None,
            starvation: None,
            low_memory: None,
        }
    }
}

/// Threads starved of CPU: how many, for how long, and what the CPUs do
/// instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuStarvation {
    /// Threads ready at least the threshold without running.
    pub starved_threads: usize,
    /// The longest of their ready times, seconds.
    pub max_ready_seconds: Option<f64>,
    /// Every CPU.
    pub cpus: Vec<StarvedCpu>,
    /// The process whose threads run on most CPUs, when one does.
    pub busy_process: Option<String>,
    /// Starved threads on a ready queue several CPUs share (not counted
    /// in any [`StarvedCpu::ready_threads`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shared_ready_threads: usize,
    /// CPUs idle while the starved threads waited: set when their
    /// affinity keeps them off those CPUs (affinity starvation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idle_cpus: Vec<u32>,
    /// The CPUs the starved threads may run on, when that is fewer than
    /// all (their affinity or their shared queue's CPUs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cpus: Vec<u32>,
}

/// One CPU of a starved machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StarvedCpu {
    /// CPU number.
    pub cpu: u32,
    /// The thread it runs.
    pub current: Option<Addr>,
    /// That thread's process.
    pub process: Option<String>,
    /// That thread's priority.
    pub priority: Option<i32>,
    /// Threads on its ready queue.
    pub ready_threads: usize,
    /// DPCs queued on it.
    pub dpc_queue_depth: Option<u64>,
    /// Whether it was in a DPC routine.
    pub dpc_active: bool,
    /// The routines of its queued DPCs, most frequent first, each once.
    pub dpc_routines: Vec<String>,
}

/// Memory exhausted: available pages, commit, and who waits for memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LowMemory {
    /// Bytes per page.
    pub page_size: u64,
    /// Pages of physical memory.
    pub physical_pages: Option<u64>,
    /// Pages available.
    pub available_pages: Option<u64>,
    /// Pages committed.
    pub committed_pages: Option<u64>,
    /// The commit limit, pages.
    pub commit_limit_pages: Option<u64>,
    /// Whether available memory is below the threshold.
    pub available_low: bool,
    /// Whether commit is at the threshold of its limit.
    pub commit_full: bool,
    /// Threads waiting for free pages (`WrFreePage`, `FreePage`).
    pub free_page_waiters: usize,
    /// Threads waiting for page-ins (`WrPageIn`, `PageIn`).
    pub page_in_waiters: usize,
    /// Where the numbers came from.
    pub source: String,
}

/// Where stuck I/O sits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StuckIo {
    /// The driver at the bottom of the stack (`\Driver\viostor`).
    pub driver: String,
    /// Its device's name, when it has one.
    pub device: Option<String>,
    /// Its device's address, when known.
    pub device_address: Option<Addr>,
    /// Requests pending at that device (all of them, not only the waited
    /// ones).
    pub pending_irps: usize,
    /// The longest wait on one of them, seconds.
    pub max_wait_seconds: Option<f64>,
    /// The drivers from the file system down to `driver`.
    pub device_stack: Vec<String>,
    /// Whether `driver` is a paravirtual or emulated storage or network
    /// driver: the host, not the guest, has to answer.
    pub virtual_device: bool,
    /// The waited-on requests (at most 64), in the order of their waiters
    /// in the input.
    pub irps: Vec<Addr>,
}

/// A server process whose ALPC requests sit on a port's queue, taken by
/// no server thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlpcUnanswered {
    /// The server process's PID, when known.
    pub server_pid: Option<u64>,
    /// Its image name.
    pub server_process: Option<String>,
    /// The connection ports the messages wait on (names, or addresses).
    pub ports: Vec<String>,
    /// The unanswered messages, longest-waiting client first.
    pub messages: Vec<Addr>,
    /// The server threads counted as its workers: the ports' own workers
    /// when the input names them (`workers_from_ports`), else every
    /// waiting thread of the server process.
    pub server_waiting_threads: usize,
    /// Of those, the ones blocked on an owned resource.
    pub server_blocked_threads: usize,
    /// Of those, the ones waiting idle on the ports' own queues for a
    /// request (known only from the ports' workers): requests queued while
    /// a worker sits idle were not delivered to it.
    #[serde(default)]
    pub server_idle_workers: usize,
    /// Whether the workers counted are the ports' own (an LRPC server's
    /// completion-queue workers), not every waiting thread of the server.
    #[serde(default)]
    pub workers_from_ports: bool,
    /// The resource most of the blocked ones wait on.
    pub blocked_on: Option<Addr>,
    /// A thread that owns `blocked_on`.
    pub blocked_on_owner: Option<Addr>,
}

/// An object long-waited threads block on, with no known owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnexplainedObject {
    /// Its address.
    pub address: Addr,
    /// `event`, `semaphore`, ... or a raw type name.
    pub kind: String,
    /// Symbol or object name when known.
    pub name: Option<String>,
    /// Threads waiting on it past the threshold.
    pub threads: usize,
    /// The longest of their waits, seconds.
    pub max_wait_seconds: Option<f64>,
}

/// A file name pattern in a directory (`sess_*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamePattern {
    /// Pattern with `*` for the varying tail.
    pub pattern: String,
    /// File objects matching it.
    pub count: usize,
}

/// A process and a count of file objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFiles {
    /// Image name (`?` when unknown).
    pub name: String,
    /// PID.
    pub pid: u64,
    /// File objects.
    pub files: usize,
}

/// A directory with many file objects in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotDirectory {
    /// Directory path without the device.
    pub path: String,
    /// Distinct file objects in memory in it.
    pub files: usize,
    /// Processes holding handles to files in it, most first.
    pub holders: Vec<ProcessFiles>,
    /// Processes with pending I/O on files in it, most first.
    pub io_processes: Vec<ProcessFiles>,
    /// Whether the I/O of a finding's final owner touches it.
    pub blocking_io: bool,
    /// Most common name patterns, most first.
    pub patterns: Vec<NamePattern>,
    /// A few file names, sorted.
    pub samples: Vec<String>,
}

/// A node kind of the drawn graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A thread.
    Thread,
    /// A resource.
    Resource,
    /// Several leaf waiters of one resource drawn as one node.
    Waiters,
    /// File or directory the final owner's I/O touches.
    File,
}

/// A node of the drawn graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// Stable id (`t:0x...`, `r:0x...`, `w:0x...`, `f:...`).
    pub id: String,
    /// Kind.
    pub kind: NodeKind,
    /// Short label.
    pub label: String,
    /// Second line (state, wait, count).
    pub detail: String,
    /// Rank of the finding it belongs to.
    pub finding: Option<usize>,
    /// Whether it is the final owner or in the cycle.
    pub culprit: bool,
}

/// An edge of the drawn graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// `waits_on`, `owned_by` or `io`.
    pub kind: String,
    /// Label (seconds waited, shared/exclusive).
    pub label: Option<String>,
}

/// The part of the wait-for graph the findings touch, small enough to draw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphView {
    /// Nodes.
    pub nodes: Vec<GraphNode>,
    /// Edges.
    pub edges: Vec<GraphEdge>,
    /// Whether nodes were left out at the bound.
    pub truncated: bool,
}

/// Counters of the input and the graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Processes in the input.
    pub processes: usize,
    /// Threads in the input.
    pub threads: usize,
    /// Threads in the Waiting state.
    pub waiting_threads: usize,
    /// Running or ready threads.
    pub running_threads: usize,
    /// Resources in the input.
    pub resources: usize,
    /// Resources with at least one owner and one waiter.
    pub contended_resources: usize,
    /// File objects in the input.
    pub files: usize,
    /// Threads waiting on a resource someone owns.
    pub blocked_threads: usize,
    /// Nodes of the wait-for graph (threads and resources).
    pub graph_nodes: usize,
    /// Edges of the wait-for graph (wait and owner claims).
    pub graph_edges: usize,
    /// Cycles (strongly connected components with more than one node).
    pub cycles: usize,
}

/// The result of [`crate::analyze`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The worst finding's kind, or healthy.
    pub overall: Overall,
    /// Findings, ranked.
    pub findings: Vec<Finding>,
    /// Hot directories, most files first.
    pub hot_directories: Vec<HotDirectory>,
    /// The graph to draw.
    pub graph: GraphView,
    /// The input's warnings, then the analysis' own.
    pub warnings: Vec<String>,
    /// Why the model is known to be incomplete (`process list: ...`):
    /// the reasons behind an inconclusive verdict, and a caveat on any
    /// other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
    /// Counters.
    pub stats: Stats,
}

impl Verdict {
    /// Warnings about the objects the findings rest on, all findings
    /// together.
    pub fn evidence_warning_count(&self) -> usize {
        self.findings
            .iter()
            .map(|f| f.evidence_warnings.len())
            .sum()
    }
}

/// Serde: leave out a zero count.
fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_round_trips_and_prints_windbg_style() {
        let a = Addr(0xfffffa80_0b61bb50);
        assert_eq!(a.windbg(), "fffffa80`0b61bb50");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"0xfffffa800b61bb50\"");
        let back: Addr = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        let from_windbg: Addr = serde_json::from_str("\"fffffa80`0b61bb50\"").unwrap();
        assert_eq!(from_windbg, a);
        let from_num: Addr = serde_json::from_str("4096").unwrap();
        assert_eq!(from_num, Addr(4096));
        assert!(serde_json::from_str::<Addr>("\"0xzz\"").is_err());
    }

    #[test]
    fn exit_codes_follow_the_cli_contract() {
        assert_eq!(Overall::Healthy.exit_code(), 0);
        assert_eq!(Overall::Contention.exit_code(), 1);
        assert_eq!(Overall::BusyOwner.exit_code(), 1);
        assert_eq!(Overall::Stuck.exit_code(), 3);
        assert_eq!(Overall::Deadlock.exit_code(), 4);
        assert_eq!(Overall::Inconclusive.exit_code(), 5);
        assert!(Overall::Deadlock > Overall::Stuck);
        assert!(Overall::Stuck > Overall::BusyOwner);
    }
}
