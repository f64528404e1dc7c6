//! Scenario files: the machine state a lab image reproduces.
//!
//! The format is TOML, documented in `crates/lab/README.md`. Loading checks
//! every cross reference and reports the first problem with the path of
//! the field (`threads[3].wait.on`).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;

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
    /// The expected verdict, when the scenario states it.
    #[serde(default)]
    pub expect: Option<Expect>,
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
    /// healthy, contention, busy_owner, stuck, deadlock.
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

    /// Check every value and cross reference; build the index.
    pub fn validate(&self) -> Result<Index, Error> {
        let mut ix = Index::default();
        let m = &self.machine;
        if m.ram.0 < (64 << 20) || m.ram.0 > (16u64 << 30) {
            return Err(field_err(
                "machine.ram",
                format!("{} bytes is outside 64MiB..16GiB", m.ram.0),
            ));
        }
        if m.ram.0 % 0x1000 != 0 {
            return Err(field_err("machine.ram", "must be a multiple of 4096"));
        }
        if let Some(p) = &m.product {
            if p != "server" && p != "workstation" {
                return Err(field_err(
                    "machine.product",
                    format!("`{p}`: expected `server` or `workstation`"),
                ));
            }
        }
        if m.max_increment == 0 {
            return Err(field_err("machine.max_increment", "must not be 0"));
        }
        if m.tick_count < 64 {
            return Err(field_err(
                "machine.tick_count",
                "too small: the machine must have run for a while",
            ));
        }
        if self.cpus.is_empty() || self.cpus.len() > 64 {
            return Err(field_err("cpus", "need 1 to 64 CPUs"));
        }
        for (i, p) in self.processes.iter().enumerate() {
            let f = |x: &str| format!("processes[{i}].{x}");
            if p.pid == 0 || p.pid % 4 != 0 || p.pid > 0xFFFF_FFFC {
                return Err(field_err(
                    f("pid"),
                    format!("{} is not a non-zero multiple of 4", p.pid),
                ));
            }
            if ix.pids.insert(p.pid, i).is_some() {
                return Err(field_err(f("pid"), format!("duplicate PID {}", p.pid)));
            }
            if p.name.is_empty() || !p.name.is_ascii() {
                return Err(field_err(f("name"), "must be non-empty ASCII"));
            }
        }
        if !ix.pids.contains_key(&4) {
            return Err(field_err("processes", "needs the System process (pid 4)"));
        }
        // A parent PID may name a process that has exited (csrss.exe's
        // parent smss.exe instance does), so it is not checked.
        let mut tids = HashSet::new();
        for (i, t) in self.threads.iter().enumerate() {
            let f = |x: &str| format!("threads[{i}].{x}");
            if t.id.is_empty() {
                return Err(field_err(f("id"), "must not be empty"));
            }
            if ix.threads.insert(t.id.clone(), i).is_some() {
                return Err(field_err(
                    f("id"),
                    format!("duplicate thread id `{}`", t.id),
                ));
            }
            if !ix.pids.contains_key(&t.pid) {
                return Err(field_err(
                    f("pid"),
                    format!("no process with PID {}", t.pid),
                ));
            }
            if let Some(tid) = t.tid {
                if tid == 0 || tid % 4 != 0 || tid > 0xFFFF_FFFC {
                    return Err(field_err(
                        f("tid"),
                        format!("{tid} is not a non-zero multiple of 4"),
                    ));
                }
                if ix.pids.contains_key(&tid) || !tids.insert(tid) {
                    return Err(field_err(
                        f("tid"),
                        format!("{tid} is already used by a process or thread"),
                    ));
                }
            }
        }
        for (i, l) in self.locks.iter().enumerate() {
            if ix.locks.insert(l.id.clone(), i).is_some() {
                return Err(field_err(
                    format!("locks[{i}].id"),
                    format!("duplicate lock id `{}`", l.id),
                ));
            }
        }
        for (i, t) in self.threads.iter().enumerate() {
            let f = |x: &str| format!("threads[{i}].{x}");
            match (t.state, &t.wait) {
                (ThreadState::Waiting, None) => {
                    return Err(field_err(f("wait"), "a waiting thread needs `wait`"))
                }
                (ThreadState::Waiting, Some(w)) => {
                    if w.on.is_empty() || w.on.len() > 4 {
                        return Err(field_err(f("wait.on"), "wait on 1 to 4 locks"));
                    }
                    for (j, o) in w.on.iter().enumerate() {
                        if !ix.locks.contains_key(o) {
                            return Err(field_err(
                                format!("threads[{i}].wait.on[{j}]"),
                                format!("no lock with id `{o}`"),
                            ));
                        }
                    }
                    if let Some(r) = &w.reason {
                        if !WAIT_REASONS.contains(&r.as_str()) {
                            return Err(field_err(
                                f("wait.reason"),
                                format!("`{r}` is not a KWAIT_REASON name"),
                            ));
                        }
                    }
                    match (w.since, w.ticks_ago) {
                        (Some(s), None) if s > m.tick_count => {
                            return Err(field_err(
                                f("wait.since"),
                                format!("tick {s} is after machine.tick_count {}", m.tick_count),
                            ))
                        }
                        (None, Some(a)) if a > m.tick_count => {
                            return Err(field_err(
                                f("wait.ticks_ago"),
                                "longer ago than the machine has run",
                            ))
                        }
                        (Some(_), Some(_)) | (None, None) => {
                            return Err(field_err(
                                f("wait"),
                                "give exactly one of `since` and `ticks_ago`",
                            ))
                        }
                        _ => {}
                    }
                }
                (_, Some(_)) => {
                    return Err(field_err(f("wait"), "only a waiting thread has `wait`"))
                }
                _ => {}
            }
        }
        let mut running = HashSet::new();
        for (i, c) in self.cpus.iter().enumerate() {
            if c.runs == "idle" {
                continue;
            }
            match ix.threads.get(&c.runs) {
                None => {
                    return Err(field_err(
                        format!("cpus[{i}].runs"),
                        format!("no thread with id `{}`", c.runs),
                    ))
                }
                Some(&t) if self.threads[t].state != ThreadState::Running => {
                    return Err(field_err(
                        format!("cpus[{i}].runs"),
                        format!("thread `{}` is not in state `running`", c.runs),
                    ))
                }
                Some(_) => {
                    if !running.insert(c.runs.clone()) {
                        return Err(field_err(
                            format!("cpus[{i}].runs"),
                            format!("thread `{}` already runs on another CPU", c.runs),
                        ));
                    }
                }
            }
        }
        for (i, t) in self.threads.iter().enumerate() {
            if t.state == ThreadState::Running && !running.contains(&t.id) {
                return Err(field_err(
                    format!("threads[{i}].state"),
                    format!("thread `{}` is running but no CPU runs it", t.id),
                ));
            }
        }
        for (i, l) in self.locks.iter().enumerate() {
            let f = |x: &str| format!("locks[{i}].{x}");
            for (j, o) in l.owner.iter().chain(l.shared_owners.iter()).enumerate() {
                if !ix.threads.contains_key(o) {
                    let name = if l.owner.is_some() && j == 0 {
                        f("owner")
                    } else {
                        let k = j - usize::from(l.owner.is_some());
                        format!("locks[{i}].shared_owners[{k}]")
                    };
                    return Err(field_err(name, format!("no thread with id `{o}`")));
                }
            }
            match l.kind {
                LockKind::Eresource => {
                    if l.owner.is_some() && !l.shared_owners.is_empty() {
                        return Err(field_err(
                            f("shared_owners"),
                            "an ERESOURCE is owned exclusively or shared, not both",
                        ));
                    }
                    if l.shared_owners.len() > 64 {
                        return Err(field_err(f("shared_owners"), "at most 64 owners"));
                    }
                }
                LockKind::Mutant => {
                    if !l.shared_owners.is_empty() {
                        return Err(field_err(f("shared_owners"), "a mutant has one owner"));
                    }
                }
                LockKind::Event | LockKind::Semaphore => {
                    if l.owner.is_some() || !l.shared_owners.is_empty() {
                        return Err(field_err(f("owner"), "events and semaphores have no owner"));
                    }
                }
            }
        }
        for (i, d) in self.drivers.iter().enumerate() {
            if !(d.name.starts_with("\\Driver\\") || d.name.starts_with("\\FileSystem\\")) {
                return Err(field_err(
                    format!("drivers[{i}].name"),
                    format!("`{}` must start with \\Driver\\ or \\FileSystem\\", d.name),
                ));
            }
            if ix.drivers.insert(d.name.clone(), i).is_some() {
                return Err(field_err(
                    format!("drivers[{i}].name"),
                    format!("duplicate driver `{}`", d.name),
                ));
            }
        }
        for (i, d) in self.devices.iter().enumerate() {
            if ix.devices.insert(d.id.clone(), i).is_some() {
                return Err(field_err(
                    format!("devices[{i}].id"),
                    format!("duplicate device id `{}`", d.id),
                ));
            }
            if !ix.drivers.contains_key(&d.driver) {
                return Err(field_err(
                    format!("devices[{i}].driver"),
                    format!("no driver named `{}`", d.driver),
                ));
            }
        }
        for (i, fo) in self.files.iter().enumerate() {
            if ix.files.insert(fo.id.clone(), i).is_some() || fo.id.contains('[') {
                return Err(field_err(
                    format!("files[{i}].id"),
                    format!("duplicate or malformed file id `{}`", fo.id),
                ));
            }
            if !ix.devices.contains_key(&fo.device) {
                return Err(field_err(
                    format!("files[{i}].device"),
                    format!("no device with id `{}`", fo.device),
                ));
            }
            if fo.name.is_empty() || fo.name.len() > 1000 {
                return Err(field_err(
                    format!("files[{i}].name"),
                    "1 to 1000 characters",
                ));
            }
        }
        for (i, fo) in self.files.iter().enumerate() {
            if let Some(r) = &fo.related {
                if !ix.files.contains_key(r) || r == &fo.id {
                    return Err(field_err(
                        format!("files[{i}].related"),
                        format!("no other file with id `{r}`"),
                    ));
                }
            }
        }
        for (i, s) in self.file_sets.iter().enumerate() {
            if ix.file_sets.insert(s.id.clone(), i).is_some() || ix.files.contains_key(&s.id) {
                return Err(field_err(
                    format!("file_sets[{i}].id"),
                    format!("duplicate id `{}`", s.id),
                ));
            }
            if s.count == 0 || s.count > 200_000 {
                return Err(field_err(format!("file_sets[{i}].count"), "1 to 200000"));
            }
            if !ix.devices.contains_key(&s.device) {
                return Err(field_err(
                    format!("file_sets[{i}].device"),
                    format!("no device with id `{}`", s.device),
                ));
            }
        }
        for (i, irp) in self.irps.iter().enumerate() {
            let f = |x: &str| format!("irps[{i}].{x}");
            if ix.irps.insert(irp.id.clone(), i).is_some() {
                return Err(field_err(f("id"), format!("duplicate IRP id `{}`", irp.id)));
            }
            if !ix.threads.contains_key(&irp.thread) {
                return Err(field_err(
                    f("thread"),
                    format!("no thread with id `{}`", irp.thread),
                ));
            }
            if irp.stack.is_empty() || irp.stack.len() > 16 {
                return Err(field_err(f("stack"), "1 to 16 stack locations"));
            }
            if irp.current >= irp.stack.len() {
                return Err(field_err(
                    f("current"),
                    format!(
                        "{} is past the {} stack locations",
                        irp.current,
                        irp.stack.len()
                    ),
                ));
            }
            for (j, s) in irp.stack.iter().enumerate() {
                if !ix.devices.contains_key(&s.device) {
                    return Err(field_err(
                        format!("irps[{i}].stack[{j}].device"),
                        format!("no device with id `{}`", s.device),
                    ));
                }
                if !IRP_MAJORS.contains(&s.major.as_str()) {
                    return Err(field_err(
                        format!("irps[{i}].stack[{j}].major"),
                        format!("`{}` is not an IRP_MJ_ name (e.g. CREATE, READ)", s.major),
                    ));
                }
                if let Some(fid) = &s.file {
                    if ix.file(self, fid).is_none() {
                        return Err(field_err(
                            format!("irps[{i}].stack[{j}].file"),
                            format!("no file with id `{fid}`"),
                        ));
                    }
                }
            }
        }
        for (i, h) in self.handles.iter().enumerate() {
            let f = |x: &str| format!("handles[{i}].{x}");
            if !ix.pids.contains_key(&h.pid) {
                return Err(field_err(
                    f("pid"),
                    format!("no process with PID {}", h.pid),
                ));
            }
            for (j, fid) in h.files.iter().enumerate() {
                if ix.file(self, fid).is_none() {
                    return Err(field_err(
                        format!("handles[{i}].files[{j}]"),
                        format!("no file with id `{fid}`"),
                    ));
                }
            }
            if let Some(s) = &h.file_set {
                let Some(&si) = ix.file_sets.get(s) else {
                    return Err(field_err(
                        f("file_set"),
                        format!("no file set with id `{s}`"),
                    ));
                };
                if let Some([a, b]) = h.range {
                    if a >= b || b > self.file_sets[si].count {
                        return Err(field_err(
                            f("range"),
                            format!("[{a}, {b}) is not inside 0..{}", self.file_sets[si].count),
                        ));
                    }
                }
            } else if h.range.is_some() {
                return Err(field_err(f("range"), "needs `file_set`"));
            }
            for (j, p) in h.processes.iter().enumerate() {
                if !ix.pids.contains_key(p) {
                    return Err(field_err(
                        format!("handles[{i}].processes[{j}]"),
                        format!("no process with PID {p}"),
                    ));
                }
            }
            for (j, t) in h.threads.iter().enumerate() {
                if !ix.threads.contains_key(t) {
                    return Err(field_err(
                        format!("handles[{i}].threads[{j}]"),
                        format!("no thread with id `{t}`"),
                    ));
                }
            }
            for (j, l) in h.locks.iter().enumerate() {
                match ix.locks.get(l) {
                    None => {
                        return Err(field_err(
                            format!("handles[{i}].locks[{j}]"),
                            format!("no lock with id `{l}`"),
                        ))
                    }
                    Some(&k) if self.locks[k].kind == LockKind::Eresource => {
                        return Err(field_err(
                            format!("handles[{i}].locks[{j}]"),
                            "an ERESOURCE is not an object with handles",
                        ))
                    }
                    _ => {}
                }
            }
        }
        if let Some(e) = &self.expect {
            if !["healthy", "contention", "busy_owner", "stuck", "deadlock"]
                .contains(&e.verdict.as_str())
            {
                return Err(field_err(
                    "expect.verdict",
                    "expected healthy, contention, busy_owner, stuck or deadlock",
                ));
            }
        }
        Ok(ix)
    }
}

/// The built-in scenario files.
const BUILTIN: &[(&str, &str)] = &[
    ("temp-flood", include_str!("../scenarios/temp-flood.toml")),
    ("deadlock", include_str!("../scenarios/deadlock.toml")),
    ("idle", include_str!("../scenarios/idle.toml")),
];
