//! The Linux kernel model as serde data: what the JSON output carries and
//! what the text renderers read. The leaf of the crate: it imports nothing
//! from the readers. Addresses are `0x` hex strings; every `Option` may be
//! null when the dump did not let us read it.

use hangscope_x64::VirtAddr;
use serde::{Deserialize, Serialize};
use std::fmt;

// The one serialisation of addresses both kernels' documents share.
pub use hangscope_x64::view::{hex, hex_opt};

/// A listing and the problems met while building it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial<T> {
    /// What could be read.
    pub items: Vec<T>,
    /// What could not, with addresses.
    pub warnings: Vec<Warning>,
}

impl<T> Default for Partial<T> {
    fn default() -> Self {
        Partial {
            items: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// What kind of problem a warning reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// Memory could not be read.
    Fault,
    /// Memory holds an impossible value (a broken or looping list).
    BadData,
    /// The type information lacks something this reader needs.
    MissingSymbol,
    /// The kernel uses a layout this model does not read.
    Unsupported,
    /// A kind this version does not know (from a newer document).
    #[serde(untagged)]
    Unknown(String),
}

/// A problem met while reading, with the address involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// What kind of problem.
    pub kind: WarningKind,
    /// The address involved, when there is one.
    #[serde(with = "hex_opt")]
    pub address: Option<VirtAddr>,
    /// One sentence.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A task's state as `ps` shows it: the kernel's `task_state_array`
/// entry chosen by `task_state_index()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// `R`: running or runnable.
    Running,
    /// `S`: interruptible sleep.
    Sleeping,
    /// `D`: uninterruptible sleep.
    DiskSleep,
    /// `T`: stopped.
    Stopped,
    /// `t`: stopped by a tracer.
    TracingStop,
    /// `X`: dead.
    Dead,
    /// `Z`: zombie.
    Zombie,
    /// `P`: parked kthread.
    Parked,
    /// `I`: idle kthread (`TASK_IDLE`: uninterruptible without load).
    Idle,
    /// A letter or index this model does not know (the raw index).
    Unknown(u32),
}

impl TaskState {
    /// The `ps` letter (`?` when unknown).
    pub fn letter(self) -> char {
        match self {
            TaskState::Running => 'R',
            TaskState::Sleeping => 'S',
            TaskState::DiskSleep => 'D',
            TaskState::Stopped => 'T',
            TaskState::TracingStop => 't',
            TaskState::Dead => 'X',
            TaskState::Zombie => 'Z',
            TaskState::Parked => 'P',
            TaskState::Idle => 'I',
            TaskState::Unknown(_) => '?',
        }
    }

    /// The state a `ps` letter names.
    pub fn from_letter(c: char, index: u32) -> TaskState {
        match c {
            'R' => TaskState::Running,
            'S' => TaskState::Sleeping,
            'D' => TaskState::DiskSleep,
            'T' => TaskState::Stopped,
            't' => TaskState::TracingStop,
            'X' => TaskState::Dead,
            'Z' => TaskState::Zombie,
            'P' => TaskState::Parked,
            'I' => TaskState::Idle,
            _ => TaskState::Unknown(index),
        }
    }
}

/// One task (thread), as `ps -eL` and the hung-task detector see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The `struct task_struct`.
    #[serde(with = "hex")]
    pub task: VirtAddr,
    /// `pid` (the thread id).
    pub pid: i32,
    /// `tgid` (the process id).
    pub tgid: i32,
    /// `real_parent->tgid`.
    pub ppid: Option<i32>,
    /// `comm`.
    pub comm: String,
    /// The state as `ps` shows it.
    pub state: TaskState,
    /// `__state` (or `state` before 5.14), raw.
    pub raw_state: u64,
    /// `exit_state`, raw.
    pub exit_state: u64,
    /// A kernel thread (`PF_KTHREAD`).
    pub kernel_thread: bool,
    /// The CPU it last ran on (`thread_info.cpu`, or `cpu`).
    pub cpu: Option<u32>,
    /// Running on that CPU now (`on_cpu`).
    pub on_cpu: Option<bool>,
    /// `sched_info.last_arrival`: when it last got a CPU (rq clock, ns).
    pub last_arrival_ns: Option<u64>,
    /// Its CPU's runqueue clock minus `last_arrival`: how long ago it last
    /// started running.
    pub since_last_arrival_ns: Option<u64>,
    /// Voluntary context switches.
    pub nvcsw: Option<u64>,
    /// Involuntary context switches.
    pub nivcsw: Option<u64>,
    /// `last_switch_time`: jiffies when the hung-task detector last saw it
    /// switch (0 = never checked).
    pub last_switch_time: Option<u64>,
    /// `last_switch_count`, as the hung-task detector recorded it.
    pub last_switch_count: Option<u64>,
}

/// One CPU's runqueue: what it runs now and its clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// CPU number.
    pub cpu: u32,
    /// Its `struct rq` (`runqueues` on this CPU).
    #[serde(with = "hex")]
    pub runqueue: VirtAddr,
    /// `rq.curr`: the task running on it.
    #[serde(with = "hex_opt")]
    pub current: Option<VirtAddr>,
    /// That task's pid.
    pub current_pid: Option<i32>,
    /// That task's comm.
    pub current_comm: Option<String>,
    /// `rq.clock`, ns.
    pub clock_ns: Option<u64>,
    /// `rq.nr_running`: runnable tasks queued.
    pub nr_running: Option<u64>,
}

/// A loaded module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// The `struct module`.
    #[serde(with = "hex")]
    pub module: VirtAddr,
    /// `name`.
    pub name: String,
    /// Start of its core text (`mem[MOD_TEXT].base`, or `core_layout.base`).
    #[serde(with = "hex_opt")]
    pub base: Option<VirtAddr>,
    /// Size of its core (text through data), bytes.
    pub size: Option<u64>,
    /// How many symbols its `kallsyms` holds.
    pub symbol_count: Option<u64>,
}

/// One printk record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmesgRecord {
    /// Sequence number.
    pub seq: u64,
    /// Timestamp, ns since boot (local clock).
    pub ts_ns: u64,
    /// Log level (0 emergency ... 7 debug), when the layout says where.
    pub level: Option<u8>,
    /// Facility, when the layout says where.
    pub facility: Option<u8>,
    /// The text (may hold several lines).
    pub text: String,
}

impl DmesgRecord {
    /// The record as `dmesg` prints it: `[    1.234567] text`, one line
    /// per line of text.
    pub fn lines(&self) -> Vec<String> {
        let sec = self.ts_ns / 1_000_000_000;
        let usec = (self.ts_ns % 1_000_000_000) / 1000;
        self.text
            .split('\n')
            .map(|l| format!("[{sec:5}.{usec:06}] {l}"))
            .collect()
    }
}

/// What `info` shows about the kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// The release (`uname -r`).
    pub release: Option<String>,
    /// The banner (`/proc/version`).
    pub banner: Option<String>,
    /// The GNU build id, hex (VMCOREINFO).
    pub build_id: Option<String>,
    /// KASLR's shift of the kernel image.
    pub kernel_offset: Option<u64>,
    /// Whether `kernel_offset` came from the kernel (VMCOREINFO or a
    /// symbol table) rather than the usual link address.
    pub kernel_offset_known: bool,
    /// Physical address of the page-table root used.
    pub page_table_root: u64,
    /// Where that root came from.
    pub page_table_source: String,
    /// 4 or 5.
    pub paging_levels: u8,
    /// `page_offset_base`: the direct map of physical memory.
    #[serde(with = "hex_opt")]
    pub direct_map_base: Option<VirtAddr>,
    /// `vmemmap_base`: the `struct page` array.
    #[serde(with = "hex_opt")]
    pub vmemmap_base: Option<VirtAddr>,
    /// Whether the dump carried VMCOREINFO (and it was used).
    pub vmcoreinfo: bool,
    /// Symbols read from kallsyms.
    pub kallsyms_count: usize,
    /// Where the types came from (`btf:...`, a vmlinux path), or null.
    pub types_source: Option<String>,
    /// Why there are no types, when there are none.
    pub types_error: Option<String>,
    /// `jiffies_64`.
    pub jiffies: Option<u64>,
    /// The tick rate, derived from `tick_nsec`.
    pub hz: Option<u64>,
    /// Seconds since boot, from jiffies.
    pub uptime_s: Option<f64>,
    /// `nr_cpu_ids`.
    pub cpu_count: Option<u32>,
    /// How the kernel was found, step by step.
    pub discovery: Vec<String>,
}

/// How a frame's caller was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameSource {
    /// The walk's start: a saved switch frame or a CPU's registers.
    Start,
    /// The ORC entry of the frame below.
    Orc,
    /// A `struct pt_regs` the frame below points at (an interrupt,
    /// exception or system call).
    Regs,
    /// Frame pointers, where there was no ORC entry.
    FramePointer,
}

/// One frame of a kernel stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFrame {
    /// The instruction address (a return address below the first frame).
    #[serde(with = "hex")]
    pub pc: VirtAddr,
    /// The stack pointer in this frame.
    #[serde(with = "hex")]
    pub sp: VirtAddr,
    /// The function, from kallsyms (the module's own for a module).
    pub function: Option<String>,
    /// Bytes past the function's start.
    pub offset: Option<u64>,
    /// The module the pc is in; none for the kernel image.
    pub module: Option<String>,
    /// How this frame was reached.
    pub source: FrameSource,
}

impl fmt::Display for StackFrame {
    /// `function+0xoff [module]`, or the bare address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.function, self.offset) {
            (Some(func), Some(off)) => write!(f, "{func}+{off:#x}")?,
            (Some(func), None) => write!(f, "{func}")?,
            _ => write!(f, "{:#x}", self.pc.0)?,
        }
        if let Some(m) = &self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

/// Why a stack walk stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackEnd {
    /// The kernel's tables mark the end of the stack (a kernel thread's
    /// first frame, or an entry from user space).
    EndOfStack,
    /// The next frame is in user mode: the kernel stack ends at a system
    /// call or an interrupt from user space.
    UserMode,
    /// The walk could not go on; the warning says why.
    Error,
    /// The depth limit was reached.
    DepthLimit,
    /// Not walked (the task runs on a CPU and has no saved frame).
    NotWalked,
}

/// One task's kernel stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStack {
    /// The `task_struct`.
    #[serde(with = "hex")]
    pub task: VirtAddr,
    /// Its pid.
    pub pid: i32,
    /// Its comm.
    pub comm: String,
    /// Its state.
    pub state: TaskState,
    /// Innermost frame first.
    pub frames: Vec<StackFrame>,
    /// Why the walk stopped.
    pub end: StackEnd,
    /// What went wrong in this walk.
    pub warnings: Vec<Warning>,
}

/// What a CPU was doing when the dump was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuMode {
    /// In the kernel, running a task.
    Kernel,
    /// In the kernel's idle loop (its current task is the idle task).
    Idle,
    /// In user mode: there is no kernel stack to show.
    User,
    /// The dump has no registers for it.
    NoRegisters,
}

/// A CPU, its current task and that task's kernel stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningCpu {
    /// CPU number.
    pub cpu: u32,
    /// Its current task (`rq.curr`).
    #[serde(with = "hex_opt")]
    pub task: Option<VirtAddr>,
    /// That task's pid.
    pub pid: Option<i32>,
    /// That task's comm.
    pub comm: Option<String>,
    /// What the CPU was doing.
    pub mode: CpuMode,
    /// Its instruction pointer, from the dump's registers.
    #[serde(with = "hex_opt")]
    pub rip: Option<VirtAddr>,
    /// Its stack pointer.
    #[serde(with = "hex_opt")]
    pub rsp: Option<VirtAddr>,
    /// Innermost frame first (empty in user mode).
    pub frames: Vec<StackFrame>,
    /// Why the walk stopped.
    pub end: StackEnd,
    /// What went wrong in this walk.
    pub warnings: Vec<Warning>,
}

/// A task that holds or waits on a lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockTask {
    /// The `struct task_struct`.
    #[serde(with = "hex")]
    pub task: VirtAddr,
    /// `pid`, when the task was read.
    pub pid: Option<i32>,
    /// `tgid`.
    pub tgid: Option<i32>,
    /// `comm`.
    pub comm: Option<String>,
    /// How it holds or wants the lock: `exclusive`, `write`, `read`.
    pub mode: String,
    /// Its CPU's runqueue clock minus `sched_info.last_arrival`: how long
    /// it has been off the CPU.
    pub since_last_arrival_ns: Option<u64>,
    /// Seconds since the hung-task detector saw it switch
    /// (`jiffies - last_switch_time`), when the detector looked at it.
    pub hung_task_seen_s: Option<f64>,
}

/// A sleeping lock (or a wait with a known owner) found from its waiters'
/// records on their stacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The lock (`struct mutex`, `struct rw_semaphore`, `struct semaphore`,
    /// `struct rt_mutex_base`), the waited object (`struct completion`,
    /// `struct wait_queue_head`, `struct swait_queue_head`, the `struct
    /// page` of a page wait, the `struct buffer_head` of a buffer wait, the
    /// word of another bit wait), or for `userfaultfd` the `struct
    /// userfaultfd_ctx`.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `mutex`, `rw_semaphore`, `semaphore`, `rt_mutex`, `completion`,
    /// `wait_queue`, `swait_queue`, `page`, `buffer`, `bit_wait` or
    /// `userfaultfd`.
    pub kind: String,
    /// The kernel or module symbol it is (`hangdemo_lock_a`), when static.
    pub symbol: Option<String>,
    /// What it protects (`inode.i_rwsem (ino 3) of /run/hang/journal.log`).
    pub protects: Option<String>,
    /// The raw owner word (`mutex.owner`, `rw_semaphore.owner`).
    pub owner_raw: Option<u64>,
    /// The raw `rw_semaphore.count` or `semaphore.count`.
    pub count_raw: Option<u64>,
    /// Owned by readers (`RWSEM_READER_OWNED`), with this many readers.
    pub readers: Option<u64>,
    /// Its owners, when the kind has them.
    pub owners: Vec<LockTask>,
    /// Why there is no owner, or how it was inferred.
    pub owner_note: Option<String>,
    /// Its waiters, in `wait_list` order.
    pub waiters: Vec<LockTask>,
    /// Processes holding the file open (for `file.f_pos_lock`, the uffd).
    pub holders: Vec<i32>,
    /// What could not be read or checked.
    pub warnings: Vec<Warning>,
    /// For a page or buffer wait: the I/O it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io: Option<LockIo>,
}

impl LockInfo {
    /// A lock or waited object of this kind at `address`, nothing read yet.
    pub fn new(address: VirtAddr, kind: &str) -> LockInfo {
        LockInfo {
            address,
            kind: kind.into(),
            symbol: None,
            protects: None,
            owner_raw: None,
            count_raw: None,
            readers: None,
            owners: Vec::new(),
            owner_note: None,
            waiters: Vec::new(),
            holders: Vec::new(),
            warnings: Vec::new(),
            io: None,
        }
    }
}

/// A wait for I/O on a page or buffer (`io_schedule`): what is waited
/// for, on which device and file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockIo {
    /// The wait (`page lock (PG_locked), folio_wait_bit_common`).
    pub wait: String,
    /// The file system or block device (`tmpfs`, `vda1`).
    pub device: Option<String>,
    /// The page's file, when it has one.
    pub file: Option<String>,
}

/// One open file descriptor in a file table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenFd {
    /// The descriptor number (its index in `fdtable.fd`).
    pub fd: u32,
    /// The `struct file`.
    #[serde(with = "hex")]
    pub file: VirtAddr,
    /// Its path through the mounts (`/run/hang/journal.log`), or for a
    /// pipe, socket or anonymous inode the name `/proc/PID/fd` shows
    /// (`pipe:[1234]`, `anon_inode:[userfaultfd]`).
    pub path: Option<String>,
    /// The file system type (`tmpfs`, `ext4`, `pipefs`).
    pub fs_type: Option<String>,
    /// The inode number.
    pub ino: Option<u64>,
    /// `file.f_pos`.
    pub pos: Option<u64>,
    /// `file.f_flags` (`O_*`, octal in the text).
    pub flags: Option<u64>,
}

/// A file table (`struct files_struct`) and the tasks that share it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileTable {
    /// The `struct files_struct`.
    #[serde(with = "hex")]
    pub files_struct: VirtAddr,
    /// The thread group of the first task using it.
    pub tgid: i32,
    /// That task's comm.
    pub comm: String,
    /// Every task using the table.
    pub pids: Vec<i32>,
    /// `fdtable.max_fds`.
    pub max_fds: Option<u64>,
    /// The open descriptors, by number (with `--path`, only those under
    /// it).
    pub fds: Vec<OpenFd>,
    /// More descriptors than hangscope reads (`MAX_FDS` per table).
    pub truncated: bool,
    /// What could not be read.
    pub warnings: Vec<Warning>,
}

/// A process holding files under a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathHolder {
    /// Its thread group id.
    pub tgid: i32,
    /// Its comm.
    pub comm: String,
    /// Distinct open files under the path.
    pub files: u64,
    /// Descriptors to them.
    pub fds: u64,
}

/// `files`: open files per file table, or who holds files under a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilesReport {
    /// Only the table of this task (pid or tgid), when asked.
    pub pid: Option<i64>,
    /// Only files under this path, when asked.
    pub path: Option<String>,
    /// The file tables, in task-list order.
    pub tables: Vec<FileTable>,
    /// With a path: the processes holding files under it, most files
    /// first.
    pub holders: Vec<PathHolder>,
    /// Distinct open files listed.
    pub distinct_files: u64,
    /// What could not be read.
    pub warnings: Vec<Warning>,
}

/// What the owner of a lock a task waits on is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerActivity {
    /// The owner's `struct task_struct`.
    #[serde(with = "hex")]
    pub task: VirtAddr,
    /// Its pid.
    pub pid: Option<i32>,
    /// Its comm.
    pub comm: Option<String>,
    /// How it holds the lock (`exclusive`, `write`, `read`).
    pub mode: String,
    /// Its state.
    pub state: Option<TaskState>,
    /// The CPU it is current on, when it is.
    pub running_on: Option<u32>,
    /// How long it has been off the CPU.
    pub since_last_arrival_ns: Option<u64>,
    /// The lock it waits on itself, when it does.
    #[serde(with = "hex_opt")]
    pub waits_on: Option<VirtAddr>,
    /// That lock's kind and name (`mutex hangdemo_lock_a`).
    pub waits_on_label: Option<String>,
    /// Whether that lock is held by the task asked about: the two wait
    /// on each other.
    pub waits_on_asked_task: bool,
    /// Its innermost kernel frames.
    pub frames: Vec<StackFrame>,
}

/// `thread PID|ADDR` on Linux: one task, what it waits on, who owns that
/// and what the owner does, and its stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDetail {
    /// The task.
    pub task: TaskInfo,
    /// Seconds since the hung-task detector saw it switch, when it looks
    /// at it.
    pub hung_task_seen_s: Option<f64>,
    /// The lock (or wait with an owner) it waits on, with every owner and
    /// waiter.
    pub waits_on: Option<LockInfo>,
    /// What each owner of that lock does.
    pub owners: Vec<OwnerActivity>,
    /// Contended locks it holds (others wait on them).
    pub holds: Vec<LockInfo>,
    /// What the wait walk says about it when it waits on no lock (a vfork
    /// parent, a killable sleep, a wait with no owner).
    pub notes: Vec<String>,
    /// Its kernel stack.
    pub stack: Option<TaskStack>,
    /// What could not be read.
    pub warnings: Vec<Warning>,
}
