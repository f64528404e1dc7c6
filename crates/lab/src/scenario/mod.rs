//! Scenario files: the machine state a lab image reproduces.
//!
//! The format is TOML, documented in `crates/lab/README.md`. Loading checks
//! every cross reference and reports the first problem with the path of
//! the field (`threads[3].wait.on`).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;

mod validate;

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Scenario name (`temp-flood`).
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// The machine.
    pub machine: Machine,
    /// What each CPU runs, by CPU number.
    #[serde(default)]
    pub cpus: Vec<Cpu>,
    /// Processes.
    #[serde(default)]
    pub processes: Vec<Process>,
    /// Threads.
    #[serde(default)]
    pub threads: Vec<Thread>,
    /// Kernel locks and dispatcher objects.
    #[serde(default)]
    pub locks: Vec<Lock>,
    /// Drivers.
    #[serde(default)]
    pub drivers: Vec<Driver>,
    /// Devices.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Individual file objects.
    #[serde(default)]
    pub files: Vec<File>,
    /// File objects generated in bulk.
    #[serde(default)]
    pub file_sets: Vec<FileSet>,
    /// IRPs.
    #[serde(default)]
    pub irps: Vec<Irp>,
    /// Handles processes hold.
    #[serde(default)]
    pub handles: Vec<Handles>,
    /// ALPC connection ports servers listen on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpc_ports: Vec<AlpcPort>,
    /// ALPC requests client threads wait on for a reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpc_messages: Vec<AlpcMessage>,
    /// DPCs queued on the CPUs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpcs: Vec<Dpc>,
    /// The expected verdict, when the scenario states it.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Later moments of the same boot, for a series of dumps (issue 16):
    /// each says what changed since the moment before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moments: Vec<Moment>,
}

/// Counters that advance only when a thread runs: `KTHREAD.ContextSwitches`,
/// `KernelTime` and `UserTime` (clock ticks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    /// Context switches.
    #[serde(default)]
    pub context_switches: u32,
    /// Ticks spent in kernel mode.
    #[serde(default)]
    pub kernel_ticks: u32,
    /// Ticks spent in user mode.
    #[serde(default)]
    pub user_ticks: u32,
}

/// A later moment of the scenario's machine: what changed since the
/// moment before it. Objects keep their addresses (the builder lays the
/// same objects out in the same order from the same seed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moment {
    /// Seconds after the scenario's first moment.
    pub after_seconds: u64,
    /// Threads whose state, wait or counters changed.
    #[serde(default)]
    pub threads: Vec<ThreadChange>,
    /// Locks whose owners or contention count changed.
    #[serde(default)]
    pub locks: Vec<LockChange>,
    /// What each CPU runs now, when that changed.
    #[serde(default)]
    pub cpus: Option<Vec<Cpu>>,
    /// The proof a comparison up to this moment must give for the
    /// scenario's hang: `stuck`, `busy` or `slow`.
    #[serde(default)]
    pub expect_proof: Option<String>,
}

/// A thread's change at a later moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadChange {
    /// The thread's id.
    pub id: String,
    /// Its new state.
    #[serde(default)]
    pub state: Option<ThreadState>,
    /// Its new wait (`since` is a tick; `ticks_ago` counts from the new
    /// moment's tick count).
    #[serde(default)]
    pub wait: Option<Wait>,
    /// Its counters now.
    #[serde(default)]
    pub counters: Option<Counters>,
}

/// A lock's change at a later moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockChange {
    /// The lock's id.
    pub id: String,
    /// Its new exclusive owner (`""` for none).
    #[serde(default)]
    pub owner: Option<String>,
    /// Its new shared owners.
    #[serde(default)]
    pub shared_owners: Option<Vec<String>>,
    /// Its contention count now.
    #[serde(default)]
    pub contention: Option<u32>,
}

/// The machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Windows build: an alias (`win7sp1`), `GUID-AGE`, or an ISF path.
    pub build: String,
    /// RAM size: bytes, or a string like `"64MiB"`, `"4GiB"`.
    #[serde(default = "default_ram")]
    pub ram: Size,
    /// `server` (NtProductType 3) or `workstation` (1); default per build.
    #[serde(default)]
    pub product: Option<String>,
    /// KUSER_SHARED_DATA tick count now.
    pub tick_count: u64,
    /// KeMaximumIncrement in 100 ns units (156250 = 15.625 ms).
    #[serde(default = "default_increment")]
    pub max_increment: u32,
    /// Wall-clock time of the dump, seconds since 1970 (UTC).
    #[serde(default = "default_unix_time")]
    pub unix_time: u64,
    /// The memory manager's counters; without them the image leaves them
    /// zero (an image with no memory manager state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Kernel-space memory beyond the scenario's objects, mapped in 4 KiB
    /// pages over filler: the resident pool, cache and PFN database of a
    /// real machine, which scans of kernel space read (benchmarks). At
    /// most half of `ram`; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_resident: Option<Size>,
}

/// Available pages and commit, in pages (physical pages follow `ram`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Pages available (`MmAvailablePages`, `Vp.AvailablePages`).
    pub available_pages: u64,
    /// Pages committed.
    pub committed_pages: u64,
    /// The commit limit, pages.
    pub commit_limit_pages: u64,
}

/// DPCs queued on one CPU (`_KPRCB.DpcData[0]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dpc {
    /// The CPU.
    pub cpu: u32,
    /// The deferred routine, `module!symbol` (an `nt` symbol is placed at
    /// its own address).
    pub routine: String,
    /// How many DPCs of that routine are queued.
    pub count: u32,
    /// Whether the CPU is inside a DPC routine (`DpcRoutineActive`).
    #[serde(default)]
    pub active: bool,
}

fn default_ram() -> Size {
    Size(64 << 20)
}
fn default_increment() -> u32 {
    156_250
}
fn default_unix_time() -> u64 {
    1_764_000_000
}

/// A byte size written as a number or `"64MiB"` / `"2GiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SizeRepr", into = "u64")]
pub struct Size(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Num(u64),
    Text(String),
}

impl TryFrom<SizeRepr> for Size {
    type Error = String;
    fn try_from(r: SizeRepr) -> Result<Size, String> {
        match r {
            SizeRepr::Num(n) => Ok(Size(n)),
            SizeRepr::Text(t) => parse_size(&t).map(Size),
        }
    }
}

impl From<Size> for u64 {
    fn from(s: Size) -> u64 {
        s.0
    }
}

/// Parse `"64MiB"`, `"16GiB"`, `"4096"`.
pub fn parse_size(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let (num, mul) = if let Some(n) = t.strip_suffix("GiB") {
        (n, 1u64 << 30)
    } else if let Some(n) = t.strip_suffix("MiB") {
        (n, 1 << 20)
    } else if let Some(n) = t.strip_suffix("KiB") {
        (n, 1 << 10)
    } else {
        (t, 1)
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("`{t}` is not a size (write e.g. 67108864, \"64MiB\" or \"4GiB\")"))
}

/// What a CPU runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    /// A thread id (state `running`), or `idle`.
    pub runs: String,
}

/// A process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Image name (`php-cgi.exe`).
    pub name: String,
    /// PID, a non-zero multiple of 4.
    pub pid: u64,
    /// Parent PID (0 for none).
    #[serde(default)]
    pub parent: u64,
    /// Session id; none for System and smss.
    #[serde(default)]
    pub session: Option<u32>,
    /// Seconds after boot the process was created.
    #[serde(default)]
    pub created_after_boot: Option<u64>,
}

/// Thread state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadState {
    /// Running on a CPU (listed in `cpus`).
    Running,
    /// Ready to run.
    Ready,
    /// Waiting (needs `wait`).
    Waiting,
}

/// A thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thread {
    /// Scenario id, unique.
    pub id: String,
    /// Owning PID.
    pub pid: u64,
    /// TID (a multiple of 4); generated when absent.
    #[serde(default)]
    pub tid: Option<u64>,
    /// State.
    pub state: ThreadState,
    /// What it waits for (state `waiting`).
    #[serde(default)]
    pub wait: Option<Wait>,
    /// Start routine as `module!symbol` (default `nt!PspSystemThreadStartup`
    /// for System threads, else `ntdll!RtlUserThreadStart`).
    #[serde(default)]
    pub start: Option<String>,
    /// Expected stack, top first, as `module!symbol`.
    #[serde(default)]
    pub stack: Vec<String>,
    /// Its run-time counters (zero when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
    /// For a ready or running thread: about when it last ran or was
    /// readied (a tick; `KTHREAD.WaitTime` is a few ticks before it).
    /// Default: the dump's tick count. A series pins it, so that a thread
    /// that stays ready keeps its `WaitTime` as the clock moves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<u64>,
    /// `KTHREAD.Priority` (default 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// A lock id of kind `queue` the thread is associated with while it
    /// works on a packet it removed from it (`KTHREAD.Queue` points at the
    /// queue, the thread is on its `ThreadListHead`), as an LRPC worker
    /// that took a request is. A thread waiting on a queue is associated
    /// with it without this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// For a ready thread: the CPU whose ready queue holds it (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_on: Option<u32>,
    /// For a ready thread: on builds with a shared ready queue (8.1 on,
    /// `_KPRCB.SharedReadyQueue`), the queue every CPU shares holds it
    /// instead of `ready_on`'s own list; on 7 SP1 `ready_on`'s list does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_queue: bool,
    /// The CPUs it may run on (`KTHREAD.Affinity`); default every CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Vec<u32>>,
}

/// A wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// KWAIT_REASON name (`WrResource`, `Executive`, `UserRequest`, ...);
    /// default from the first object waited on.
    #[serde(default)]
    pub reason: Option<String>,
    /// Lock ids waited on (1 to 4 objects).
    #[serde(default)]
    pub on: Vec<String>,
    /// For ERESOURCEs: wait for exclusive access (default shared).
    #[serde(default)]
    pub exclusive: bool,
    /// Tick at which it started waiting (KTHREAD.WaitTime).
    #[serde(default)]
    pub since: Option<u64>,
    /// Or: how many ticks ago it started waiting.
    #[serde(default)]
    pub ticks_ago: Option<u64>,
    /// An ALPC message id: the thread sent that request and waits for its
    /// reply (`WrLpcReply` on its own `AlpcWaitSemaphore`), instead of
    /// waiting on `on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpc: Option<String>,
    /// A wait made for user mode (`KTHREAD.WaitMode` 1), as a worker
    /// waiting on its own event or queue does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_mode: bool,
}

/// An ALPC connection port (`\LsaAuthenticationPort`) a server process
/// owns and listens on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlpcPort {
    /// Scenario id, unique.
    pub id: String,
    /// Object name (`LsaAuthenticationPort`), under the root directory.
    pub name: String,
    /// The server process (owner of the port, holds its handle).
    pub pid: u64,
    /// A lock id of kind `queue`: the I/O completion object the port is
    /// associated with (`_ALPC_PORT.CompletionPort`), on which an LRPC
    /// server's workers wait (`WrQueue`) for requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_port: Option<String>,
}

/// A request sent through an ALPC connection to a connection port; the
/// thread whose `wait.alpc` names it waits for the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlpcMessage {
    /// Scenario id, unique.
    pub id: String,
    /// The connection port id.
    pub port: String,
    /// The server thread that took the message off the queue (it sits on
    /// the port's pending queue); none: still on the main queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_thread: Option<String>,
}

/// Kind of lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// Executive resource.
    Eresource,
    /// Mutant (KMUTANT).
    Mutant,
    /// Event (KEVENT).
    Event,
    /// Semaphore (KSEMAPHORE).
    Semaphore,
    /// Fast mutex (`_FAST_MUTEX`, also what a guarded mutex is from
    /// Windows 8 on): `owner` is recorded in `Owner`; waiters block on its
    /// embedded `Event` (default reason `WrFastMutex`).
    Fastmutex,
    /// Push lock (`EX_PUSH_LOCK`): its waiters' wait blocks sit on their
    /// kernel stacks inside their push-lock acquire frame (each waiter's
    /// stack must name one, `nt!ExfAcquirePushLockExclusive` or
    /// `...Shared`), the lock word points at the newest; `owner` keeps the
    /// lock's address in its outermost frame (a push lock records no
    /// owner). Default reason `WrPushLock`.
    Pushlock,
    /// Guarded mutex: on 7 SP1 a `_KGUARDED_MUTEX` whose waiters block on
    /// its `Gate` (a KGATE); on later builds, whose tables have no such
    /// type, a `_FAST_MUTEX` as [`LockKind::Fastmutex`]. `owner` is
    /// recorded in `Owner`. Default reason `WrGuardedMutex`.
    Guardedmutex,
    /// Kernel queue (`_KQUEUE`, the body of an `IoCompletion` object).
    /// A thread waiting on it (alone; default reason `WrQueue`) is an
    /// idle worker: associated with it as `KeRemoveQueueEx` leaves it
    /// (`KTHREAD.Queue`, on its `ThreadListHead`). A thread's `queue`
    /// associates a busy worker; an ALPC port's `completion_port` names
    /// one. No owner.
    Queue,
}

/// A lock or dispatcher object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Scenario id, unique.
    pub id: String,
    /// Kind.
    pub kind: LockKind,
    /// Exclusive owner thread id (ERESOURCE, or mutant owner).
    #[serde(default)]
    pub owner: Option<String>,
    /// Shared owner thread ids (ERESOURCE).
    #[serde(default)]
    pub shared_owners: Vec<String>,
    /// Signaled (events and semaphores).
    #[serde(default)]
    pub signaled: bool,
    /// Contention count (ERESOURCE); default the number of waiters.
    #[serde(default)]
    pub contention: Option<u32>,
    /// Push locks: where the lock word lives. `pool:TAG` puts it at the
    /// start of a pool block with that four-character tag (the default,
    /// `pool:Pshl`); `process:PID:FIELD` is that `_EPROCESS` field
    /// (`process:1800:AddressCreationLock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
}

/// A driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Driver {
    /// Driver object name (`\FileSystem\Ntfs`, `\Driver\disk`).
    pub name: String,
    /// Module file (`Ntfs.sys`); loaded in PsLoadedModuleList.
    pub module: String,
    /// A real PE image to load as this module (its linker `.map` beside
    /// it names the functions), e.g. the `hsflt.sys` that
    /// [`crate::driver::build_hsflt`] compiles; relative to the scenario
    /// file. Without it the lab writes a synthetic module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<std::path::PathBuf>,
}

/// A device object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Scenario id, unique.
    pub id: String,
    /// Driver name.
    pub driver: String,
    /// Object name under `\Device` (`HarddiskVolume2`); none for unnamed
    /// devices (file system volume devices are unnamed).
    #[serde(default)]
    pub name: Option<String>,
}

/// A file object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Scenario id, unique.
    pub id: String,
    /// Device id (the volume).
    pub device: String,
    /// FileName as stored (`\Windows\Temp\sess_1`, or relative).
    pub name: String,
    /// RelatedFileObject id.
    #[serde(default)]
    pub related: Option<String>,
}

/// File objects generated in bulk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSet {
    /// Scenario id, unique; members are `<id>[<n>]`.
    pub id: String,
    /// How many.
    pub count: u32,
    /// Name pattern; `{:08x}` (or `{}`) is replaced with a per-file number.
    pub pattern: String,
    /// Device id.
    pub device: String,
}

/// An IRP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Irp {
    /// Scenario id, unique.
    pub id: String,
    /// Issuing thread id (the IRP is on its IrpList).
    pub thread: String,
    /// Stack locations, top (highest driver) first.
    pub stack: Vec<IrpStack>,
    /// Index into `stack` of the current location (0 = top).
    #[serde(default)]
    pub current: usize,
    /// An event lock id set as the IRP's `UserEvent`: what the issuer
    /// waits on until the request completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// An IRP stack location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrpStack {
    /// Device id.
    pub device: String,
    /// IRP_MJ_ name without the prefix (`CREATE`, `READ`, `DIRECTORY_CONTROL`).
    pub major: String,
    /// Minor function.
    #[serde(default)]
    pub minor: u8,
    /// File object id (a file, or `<set>[<n>]`).
    #[serde(default)]
    pub file: Option<String>,
}

/// Handles one process holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handles {
    /// Holding PID.
    pub pid: u64,
    /// File ids (a file or `<set>[<n>]`).
    #[serde(default)]
    pub files: Vec<String>,
    /// A file set id whose members `range` it holds.
    #[serde(default)]
    pub file_set: Option<String>,
    /// `[first, end)` of the file set members; default all.
    #[serde(default)]
    pub range: Option<[u32; 2]>,
    /// Process handles, by PID.
    #[serde(default)]
    pub processes: Vec<u64>,
    /// Thread handles, by thread id.
    #[serde(default)]
    pub threads: Vec<String>,
    /// Lock handles (mutants, events, semaphores), by lock id.
    #[serde(default)]
    pub locks: Vec<String>,
}

/// The expected verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// healthy, contention, busy_owner, stuck, stuck_io, unexplained,
    /// deadlock.
    pub verdict: String,
}

/// Thread id -> index, PID -> index, and so on, for a validated scenario.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// PID -> process index.
    pub pids: HashMap<u64, usize>,
    /// Thread id -> index.
    pub threads: HashMap<String, usize>,
    /// Lock id -> index.
    pub locks: HashMap<String, usize>,
    /// Driver name -> index.
    pub drivers: HashMap<String, usize>,
    /// Device id -> index.
    pub devices: HashMap<String, usize>,
    /// File id -> index.
    pub files: HashMap<String, usize>,
    /// File set id -> index.
    pub file_sets: HashMap<String, usize>,
    /// IRP id -> index.
    pub irps: HashMap<String, usize>,
    /// ALPC port id -> index.
    pub alpc_ports: HashMap<String, usize>,
    /// ALPC message id -> index.
    pub alpc_messages: HashMap<String, usize>,
    /// ALPC message index -> the thread index waiting for its reply.
    pub alpc_clients: HashMap<usize, usize>,
}

/// A reference to a file: an individual file or a file-set member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileRef {
    /// `files[i]`.
    Single(usize),
    /// `file_sets[set]` member `n`.
    Member(usize, u32),
}

impl Index {
    /// Resolve a file id (`name` or `set[n]`).
    pub fn file(&self, sc: &Scenario, id: &str) -> Option<FileRef> {
        if let Some(i) = self.files.get(id) {
            return Some(FileRef::Single(*i));
        }
        let (set, rest) = id.split_once('[')?;
        let n: u32 = rest.strip_suffix(']')?.trim().parse().ok()?;
        let s = *self.file_sets.get(set)?;
        (n < sc.file_sets[s].count).then_some(FileRef::Member(s, n))
    }
}

fn field_err(field: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::ScenarioField {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Known KWAIT_REASON names (checked against the symbol table at build time).
pub const WAIT_REASONS: &[&str] = &[
    "Executive",
    "FreePage",
    "PageIn",
    "PoolAllocation",
    "DelayExecution",
    "Suspended",
    "UserRequest",
    "WrExecutive",
    "WrFreePage",
    "WrPageIn",
    "WrPoolAllocation",
    "WrDelayExecution",
    "WrSuspended",
    "WrUserRequest",
    "WrEventPair",
    "WrQueue",
    "WrLpcReceive",
    "WrLpcReply",
    "WrVirtualMemory",
    "WrPageOut",
    "WrRendezvous",
    "WrKeyedEvent",
    "WrTerminated",
    "WrProcessInSwap",
    "WrCpuRateControl",
    "WrCalloutStack",
    "WrKernel",
    "WrResource",
    "WrPushLock",
    "WrMutex",
    "WrQuantumEnd",
    "WrDispatchInt",
    "WrPreempted",
    "WrYieldExecution",
    "WrFastMutex",
    "WrGuardedMutex",
    "WrRundown",
];

/// IRP major function names, in IRP_MJ_ order (index = code).
pub const IRP_MAJORS: &[&str] = &[
    "CREATE",
    "CREATE_NAMED_PIPE",
    "CLOSE",
    "READ",
    "WRITE",
    "QUERY_INFORMATION",
    "SET_INFORMATION",
    "QUERY_EA",
    "SET_EA",
    "FLUSH_BUFFERS",
    "QUERY_VOLUME_INFORMATION",
    "SET_VOLUME_INFORMATION",
    "DIRECTORY_CONTROL",
    "FILE_SYSTEM_CONTROL",
    "DEVICE_CONTROL",
    "INTERNAL_DEVICE_CONTROL",
    "SHUTDOWN",
    "LOCK_CONTROL",
    "CLEANUP",
    "CREATE_MAILSLOT",
    "QUERY_SECURITY",
    "SET_SECURITY",
    "POWER",
    "SYSTEM_CONTROL",
    "DEVICE_CHANGE",
    "QUERY_QUOTA",
    "SET_QUOTA",
    "PNP",
];

impl Scenario {
    /// Parse and validate a scenario from TOML text. `source_name` names it
    /// in error messages.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Scenario, Error> {
        let sc: Scenario = toml::from_str(text).map_err(|e| Error::ScenarioSyntax {
            source_name: source_name.to_string(),
            problem: e.to_string().trim_end().to_string(),
        })?;
        sc.validate()?;
        Ok(sc)
    }

    /// Load and validate a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        let mut sc = Scenario::from_toml(&text, &path.display().to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for d in &mut sc.drivers {
            if let Some(img) = &mut d.image {
                if img.is_relative() {
                    *img = dir.join(&*img);
                }
            }
        }
        Ok(sc)
    }

    /// A built-in scenario by name (`temp-flood`, `deadlock`, `idle`).
    pub fn builtin(name: &str) -> Result<Scenario, Error> {
        let text = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| Error::ScenarioField {
                field: "name".into(),
                problem: format!(
                    "no built-in scenario `{name}` (have {})",
                    Scenario::builtin_names().join(", ")
                ),
            })?
            .1;
        Scenario::from_toml(text, name)
    }

    /// The scenario at moment `i` of its series (0: as written; `i`:
    /// after the first `i` of [`Scenario::moments`]), without moments.
    /// Waits given as `ticks_ago` are pinned to their tick first, so that a
    /// wait nobody changes keeps its start as the clock moves on.
    pub fn at_moment(&self, i: usize) -> Result<Scenario, Error> {
        let bad = |field: String, problem: String| Error::ScenarioField { field, problem };
        if i > self.moments.len() {
            return Err(bad(
                "moments".into(),
                format!(
                    "moment {i} asked of a scenario with {} later moment(s)",
                    self.moments.len()
                ),
            ));
        }
        let mut sc = self.clone();
        sc.moments.clear();
        let pin = |w: &mut Wait, now: u64| {
            if let (None, Some(ago)) = (w.since, w.ticks_ago.take()) {
                w.since = Some(now.saturating_sub(ago));
            }
        };
        let now0 = sc.machine.tick_count;
        for t in &mut sc.threads {
            if let Some(w) = &mut t.wait {
                pin(w, now0);
            }
            if t.wait.is_none() && t.ready_since.is_none() {
                t.ready_since = Some(now0);
            }
        }
        for (k, m) in self.moments.iter().take(i).enumerate() {
            let ticks = (m.after_seconds as u128 * 10_000_000
                / u128::from(self.machine.max_increment.max(1))) as u64;
            sc.machine.tick_count = now0 + ticks;
            sc.machine.unix_time = self.machine.unix_time + m.after_seconds;
            let now = sc.machine.tick_count;
            for c in &m.threads {
                let t = sc
                    .threads
                    .iter_mut()
                    .find(|t| t.id == c.id)
                    .ok_or_else(|| {
                        bad(
                            format!("moments[{k}].threads"),
                            format!("no thread `{}`", c.id),
                        )
                    })?;
                if let Some(s) = c.state {
                    t.state = s;
                    if s != ThreadState::Waiting {
                        t.wait = None;
                        t.ready_since = Some(now);
                    }
                }
                if let Some(w) = &c.wait {
                    let mut w = w.clone();
                    pin(&mut w, now);
                    t.wait = Some(w);
                }
                if let Some(n) = c.counters {
                    t.counters = Some(n);
                }
            }
            for c in &m.locks {
                let l = sc.locks.iter_mut().find(|l| l.id == c.id).ok_or_else(|| {
                    bad(format!("moments[{k}].locks"), format!("no lock `{}`", c.id))
                })?;
                if let Some(o) = &c.owner {
                    l.owner = (!o.is_empty()).then(|| o.clone());
                }
                if let Some(s) = &c.shared_owners {
                    l.shared_owners = s.clone();
                }
                if let Some(n) = c.contention {
                    l.contention = Some(n);
                }
            }
            if let Some(cpus) = &m.cpus {
                sc.cpus = cpus.clone();
            }
        }
        Ok(sc)
    }

    /// Names of the built-in scenarios.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(n, _)| *n).collect()
    }

    /// The number of file objects (single and bulk).
    pub fn file_count(&self) -> u64 {
        self.files.len() as u64 + self.file_sets.iter().map(|s| s.count as u64).sum::<u64>()
    }

    /// Threads waiting for lock `i` (an ERESOURCE): (shared, exclusive)
    /// thread indexes, in scenario order.
    pub fn resource_waiters(&self, i: usize) -> (Vec<usize>, Vec<usize>) {
        let id = &self.locks[i].id;
        let mut sh = Vec::new();
        let mut ex = Vec::new();
        for (ti, t) in self.threads.iter().enumerate() {
            if let Some(w) = &t.wait {
                if w.on.iter().any(|o| o == id) {
                    if w.exclusive {
                        ex.push(ti);
                    } else {
                        sh.push(ti);
                    }
                }
            }
        }
        (sh, ex)
    }
}

/// The built-in scenario files.
const BUILTIN: &[(&str, &str)] = &[
    (
        "temp-flood",
        include_str!("../../scenarios/temp-flood.toml"),
    ),
    ("deadlock", include_str!("../../scenarios/deadlock.toml")),
    ("idle", include_str!("../../scenarios/idle.toml")),
    (
        "stuck-disk",
        include_str!("../../scenarios/stuck-disk.toml"),
    ),
    ("rdp-logon", include_str!("../../scenarios/rdp-logon.toml")),
    (
        "cpu-starvation",
        include_str!("../../scenarios/cpu-starvation.toml"),
    ),
    (
        "cpu-starvation-shared",
        include_str!("../../scenarios/cpu-starvation-shared.toml"),
    ),
    (
        "cpu-affinity",
        include_str!("../../scenarios/cpu-affinity.toml"),
    ),
    (
        "low-memory",
        include_str!("../../scenarios/low-memory.toml"),
    ),
    (
        "busy-server",
        include_str!("../../scenarios/busy-server.toml"),
    ),
    (
        "fast-mutex",
        include_str!("../../scenarios/fast-mutex.toml"),
    ),
    ("push-lock", include_str!("../../scenarios/push-lock.toml")),
    (
        "guarded-mutex",
        include_str!("../../scenarios/guarded-mutex.toml"),
    ),
];
