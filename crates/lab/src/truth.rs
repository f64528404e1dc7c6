//! Ground truth: what a correct analyzer must find in an image.
//!
//! CONTRACT between the image builder, the format writers' Volatility
//! checks and hangscope's own tests: additive changes only. Written as JSON
//! beside each image. Addresses are canonical virtual addresses as u64.

use serde::{Deserialize, Serialize};

/// Everything a correct reader must find.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Scenario name.
    pub scenario: String,
    /// Kernel facts.
    pub kernel: KernelTruth,
    /// Every process on PsActiveProcessHead, in list order.
    pub processes: Vec<ProcessTruth>,
    /// Every thread.
    pub threads: Vec<ThreadTruth>,
    /// Loaded modules in PsLoadedModuleList order.
    pub modules: Vec<ModuleTruth>,
    /// The PDB each driver module's RSDS record names (the kernel's is in
    /// `kernel`), in module order; no symbol table exists for them until a
    /// test writes one.
    #[serde(default)]
    pub module_pdbs: Vec<ModulePdbTruth>,
    /// Every ERESOURCE on ExpSystemResourcesList.
    pub eresources: Vec<EresourceTruth>,
    /// Other dispatcher objects threads wait on (mutants, events, semaphores).
    pub dispatcher_objects: Vec<DispatcherTruth>,
    /// Push locks with waiters (a push lock records no owner: `owner` is
    /// the scenario's, the thread that keeps the lock's address).
    #[serde(default)]
    pub push_locks: Vec<PushLockTruth>,
    /// IRPs.
    pub irps: Vec<IrpTruth>,
    /// File objects.
    pub files: Vec<FileTruth>,
    /// Handles.
    pub handles: Vec<HandleTruth>,
    /// ALPC ports on `AlpcpPortList`, in list order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpc_ports: Vec<AlpcPortTruth>,
    /// ALPC messages clients wait on, in scenario order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpc_messages: Vec<AlpcMessageTruth>,
    /// Each CPU's ready queue, current thread and DPC queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler: Vec<CpuSchedulerTruth>,
    /// Threads on the shared ready queue (`_KSHARED_READY_QUEUE`, 8.1 on),
    /// highest priority first, in list order within a priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_ready: Vec<ReadyTruth>,
    /// The CPUs that share that queue (empty without one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_ready_cpus: Vec<u32>,
    /// The memory manager's counters, when the scenario sets them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryTruth>,
    /// The expected verdict.
    pub verdict: VerdictTruth,
}

/// One CPU's scheduler state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSchedulerTruth {
    /// CPU number.
    pub index: u32,
    /// `CurrentThread`.
    pub current_thread: u64,
    /// Whether that is its idle thread.
    pub idle: bool,
    /// The current thread's priority.
    pub current_priority: u8,
    /// Threads on `DispatcherReadyListHead`, highest priority first, in
    /// list order within a priority.
    pub ready: Vec<ReadyTruth>,
    /// `DpcData[0].DpcQueueDepth`.
    pub dpc_queue_depth: u64,
    /// The DPCs on the queue, in order.
    pub dpcs: Vec<DpcTruth>,
    /// `DpcRoutineActive`.
    pub dpc_active: bool,
}

/// A thread on a ready queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadyTruth {
    /// ETHREAD.
    pub thread: u64,
    /// Its priority (the list it is on).
    pub priority: u8,
    /// Seconds since it was readied.
    pub ready_seconds: f64,
    /// The CPUs it may run on (`KTHREAD.Affinity`), bit n for CPU n.
    #[serde(default)]
    pub affinity: u64,
}

/// A queued DPC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpcTruth {
    /// `_KDPC`.
    pub address: u64,
    /// `DeferredRoutine`.
    pub routine: u64,
}

/// Available pages and commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryTruth {
    /// Pages of RAM.
    pub physical_pages: u64,
    /// Available pages.
    pub available_pages: u64,
    /// Committed pages.
    pub committed_pages: u64,
    /// The commit limit.
    pub commit_limit_pages: u64,
}

/// Kernel facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelTruth {
    /// Kernel image base.
    pub kernel_base: u64,
    /// Kernel DTB (physical).
    pub dtb: u64,
    /// Build number.
    pub build_number: u32,
    /// Major/minor version.
    pub version: (u32, u32),
    /// PDB GUID (32 hex) and age.
    pub pdb_guid: String,
    /// PDB age.
    pub pdb_age: u32,
    /// Number of processors.
    pub number_processors: u32,
    /// Tick count now (KUSER_SHARED_DATA).
    pub tick_count: u64,
    /// KeMaximumIncrement (100 ns units per tick).
    pub max_increment: u32,
    /// Per CPU: KPCR address and current thread address.
    pub cpus: Vec<CpuTruth>,
}

/// One CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTruth {
    /// CPU number.
    pub index: u32,
    /// KPCR address.
    pub kpcr: u64,
    /// KPRCB address.
    pub kprcb: u64,
    /// Current thread (ETHREAD address).
    pub current_thread: u64,
}

/// A process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessTruth {
    /// EPROCESS address.
    pub address: u64,
    /// PID.
    pub pid: u64,
    /// Parent PID.
    pub ppid: u64,
    /// Image name (ImageFileName, at most 15 bytes).
    pub name: String,
    /// Session id, if any.
    pub session: Option<u32>,
    /// CreateTime FILETIME.
    pub create_time: u64,
    /// Number of threads.
    pub thread_count: u32,
    /// Process DTB (physical).
    pub dtb: u64,
}

/// A thread.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadTruth {
    /// ETHREAD address.
    pub address: u64,
    /// TID.
    pub tid: u64,
    /// Owning PID.
    pub pid: u64,
    /// KTHREAD_STATE name: Running, Ready, Waiting, ...
    pub state: String,
    /// KWAIT_REASON name when waiting.
    pub wait_reason: Option<String>,
    /// KTHREAD.WaitTime tick.
    pub wait_time: u64,
    /// Ticks since it last ran (tick_count - wait_time) when waiting.
    pub wait_ticks: Option<u64>,
    /// Seconds since it last ran when waiting.
    pub wait_seconds: Option<f64>,
    /// CPU number when running.
    pub cpu: Option<u32>,
    /// Addresses of the objects it waits on.
    pub waits_on: Vec<u64>,
    /// IRPs on its IrpList.
    pub irps: Vec<u64>,
    /// StartAddress.
    pub start_address: u64,
    /// Expected stack frames (`module!symbol+0xoff`), top first, when the
    /// scenario gives them.
    pub stack: Vec<String>,
    /// KTHREAD.ContextSwitches (0 unless the scenario gives counters).
    #[serde(default)]
    pub context_switches: u64,
    /// KTHREAD.KernelTime, clock ticks.
    #[serde(default)]
    pub kernel_ticks: u64,
    /// KTHREAD.UserTime, clock ticks.
    #[serde(default)]
    pub user_ticks: u64,
}

/// A loaded module.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModuleTruth {
    /// Base address.
    pub base: u64,
    /// Size of image.
    pub size: u64,
    /// BaseDllName.
    pub name: String,
    /// FullDllName.
    pub path: String,
}

/// The PDB identity in a driver module's CodeView (RSDS) record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModulePdbTruth {
    /// Module base address.
    pub base: u64,
    /// BaseDllName (`Ntfs.sys`).
    pub module: String,
    /// PDB file name (`Ntfs.pdb`).
    pub pdb: String,
    /// GUID, 32 upper-case hex digits in symbol-server order.
    pub guid: String,
    /// Age.
    pub age: u32,
}

impl ModulePdbTruth {
    /// Where a symbol server keeps this PDB, relative to the store:
    /// `Ntfs.pdb/<GUID><AGE>/Ntfs.pdb` (age in hex).
    pub fn server_path(&self) -> String {
        format!("{0}/{1}{2:X}/{0}", self.pdb, self.guid, self.age)
    }

    /// Where Volatility keeps its ISF, relative to a symbol directory:
    /// `Ntfs.pdb/<GUID>-<AGE>.json` (age in decimal).
    pub fn isf_path(&self) -> String {
        format!("{}/{}-{}.json", self.pdb, self.guid, self.age)
    }
}

impl GroundTruth {
    /// The PDB identity of the module named `name` (`Ntfs.sys`,
    /// case-insensitive).
    pub fn module_pdb(&self, name: &str) -> Option<&ModulePdbTruth> {
        self.module_pdbs
            .iter()
            .find(|p| p.module.eq_ignore_ascii_case(name))
    }
}

/// An owner or waiter of a lock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockParty {
    /// ETHREAD address.
    pub thread: u64,
    /// True for exclusive.
    pub exclusive: bool,
}

/// An ERESOURCE.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EresourceTruth {
    /// Address.
    pub address: u64,
    /// Scenario name of the lock.
    pub name: String,
    /// ActiveCount.
    pub active_count: u32,
    /// Held exclusively.
    pub exclusive: bool,
    /// ContentionCount.
    pub contention_count: u32,
    /// Owners.
    pub owners: Vec<LockParty>,
    /// Waiters.
    pub waiters: Vec<LockParty>,
    /// What `SharedWaiters` holds: the KSEMAPHORE's address (0 without
    /// shared waiters), or on Windows 10 1607 / Server 2016 the address of
    /// the embedded `_KWAIT_CHAIN` field itself.
    #[serde(default)]
    pub shared_waiters: u64,
    /// The objects shared waiters block on, as found from the ERESOURCE:
    /// the `SharedWaiters` semaphore, or on 1607 the KEVENT of each
    /// `_KWAIT_CHAIN_ENTRY` in chain order (`Head.Next` first).
    #[serde(default)]
    pub shared_wait_events: Vec<u64>,
    /// `ExclusiveWaiters` (a KEVENT); 0 without exclusive waiters.
    #[serde(default)]
    pub exclusive_waiters: u64,
}

/// A mutant, event or semaphore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DispatcherTruth {
    /// Address.
    pub address: u64,
    /// Scenario name.
    pub name: String,
    /// Mutant, Event, Semaphore.
    pub kind: String,
    /// Owner thread (mutants).
    pub owner: Option<u64>,
    /// Waiting threads.
    pub waiters: Vec<u64>,
}

/// A push lock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushLockTruth {
    /// The lock word's address.
    pub address: u64,
    /// Scenario id.
    pub name: String,
    /// Where it lives: `pool block tagged Pshl`, `_EPROCESS.AddressCreationLock
    /// of explorer.exe (pid 1800)`.
    pub container: String,
    /// The thread holding it, per the scenario.
    pub owner: Option<u64>,
    /// Waiters, oldest first.
    pub waiters: Vec<PushLockWaiterTruth>,
}

/// One waiter of a push lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushLockWaiterTruth {
    /// Its ETHREAD.
    pub thread: u64,
    /// Acquiring exclusively (its acquire frame is not the shared one).
    pub exclusive: bool,
    /// The `WakeEvent` in its wait block, on its kernel stack.
    pub wake_event: u64,
}

/// An IRP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IrpTruth {
    /// Address.
    pub address: u64,
    /// Issuing thread.
    pub thread: u64,
    /// StackCount.
    pub stack_count: u32,
    /// CurrentLocation (1-based as in the IRP).
    pub current_location: u32,
    /// Per stack location: major function name, driver name, file object.
    pub stack: Vec<IrpStackTruth>,
}

/// An IRP stack location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IrpStackTruth {
    /// IRP_MJ_* name.
    pub major: String,
    /// Minor function.
    pub minor: u8,
    /// Device object address.
    pub device: u64,
    /// Driver name (`\FileSystem\Ntfs`).
    pub driver: String,
    /// File object address (0 if none).
    pub file_object: u64,
}

/// A file object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileTruth {
    /// Address.
    pub address: u64,
    /// FileName as stored.
    pub name: String,
    /// Full path (following RelatedFileObject), without the device.
    pub path: String,
    /// Device name, e.g. `\Device\HarddiskVolume2`.
    pub device: String,
}

/// A handle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandleTruth {
    /// Owning PID.
    pub pid: u64,
    /// Handle value.
    pub handle: u64,
    /// Object body address.
    pub object: u64,
    /// Object type name (File, Process, Thread, ...).
    pub type_name: String,
    /// GrantedAccess.
    pub access: u32,
    /// Name as Volatility's handles plugin prints it.
    pub name: String,
}

/// An ALPC port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlpcPortTruth {
    /// The `_ALPC_PORT`.
    pub address: u64,
    /// `connection`, `client` or `server` (communication port).
    pub kind: String,
    /// PID of `OwnerProcess`.
    pub owner_pid: u64,
    /// Object name (connection ports).
    pub name: Option<String>,
    /// The `_KQUEUE` its `CompletionPort` names (an LRPC server's
    /// connection port), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_port: Option<u64>,
    /// Threads associated with that queue waiting on it (`WrQueue`): idle
    /// workers, in scenario order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idle_workers: Vec<u64>,
    /// Threads associated with that queue doing something else (they took
    /// a packet): busy workers, in scenario order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub busy_workers: Vec<u64>,
}

/// An ALPC request a client thread waits on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlpcMessageTruth {
    /// The `_KALPC_MESSAGE`.
    pub address: u64,
    /// The waiting client thread (`WaitingThread`).
    pub client_thread: u64,
    /// The client communication port (`OwnerPort`).
    pub client_port: u64,
    /// The server communication port of the connection.
    pub server_port: u64,
    /// The connection port it is queued on (`PortQueue`, `ConnectionPort`).
    pub connection_port: u64,
    /// The connection port's name.
    pub port_name: String,
    /// The server process (the connection port's owner).
    pub server_pid: u64,
    /// The server thread that took it (`ServerThread`), if one did.
    pub server_thread: Option<u64>,
    /// `main` (not taken) or `pending` (taken).
    pub queue: String,
}

/// The expected verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerdictTruth {
    /// healthy, unexplained, contention, busy_owner, stuck, stuck_io,
    /// deadlock.
    pub overall: String,
    /// Expected findings.
    pub findings: Vec<FindingTruth>,
    /// Hot directories.
    pub hot_directories: Vec<HotDirTruth>,
}

/// One expected finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingTruth {
    /// deadlock, busy_owner, stuck, stuck_io, unexplained,
    /// alpc_unanswered, cpu_starvation, low_memory.
    pub kind: String,
    /// Threads in the chain or cycle (ETHREAD addresses), from the first
    /// waiter to the final owner.
    pub chain_threads: Vec<u64>,
    /// Locks in the chain.
    pub chain_locks: Vec<u64>,
    /// Threads blocked behind the chain.
    pub blocked_threads: Vec<u64>,
    /// Names of the processes blocked.
    pub blocked_processes: Vec<String>,
    /// For busy owner: the driver at the owner's IRP's current location.
    pub driver: Option<String>,
    /// For busy owner: the file's directory.
    pub directory: Option<String>,
    /// For stuck I/O: the IRPs pending at the bottom device (`driver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_irps: Option<u64>,
    /// For an unanswered ALPC finding whose ports have completion queues:
    /// the server's worker threads it counts (the threads associated with
    /// those queues and the server threads of their messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpc_workers: Vec<u64>,
}

/// A directory with many file objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HotDirTruth {
    /// Directory path (`\Windows\Temp`).
    pub path: String,
    /// File objects under it.
    pub file_count: u64,
    /// Processes holding handles there, by name, with handle counts.
    pub processes: Vec<(String, u64)>,
}
