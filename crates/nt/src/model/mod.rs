//! The kernel model as serde data: what the JSON output carries and what
//! the text renderers read. Addresses are hex strings (`"0xfffffa800b61bb50"`);
//! every `Option` may be null when the dump did not let us read it.
//!
//! This module is the leaf of the crate: it imports nothing from the files
//! that read the kernel (they import it), so every listing, stack and
//! warning type lives here and the readers depend on it alone.

mod names;
mod stack;
mod symbols;
mod warning;

pub use hangscope_waitgraph::Frame;
pub use names::{ThreadState, UnknownName, WaitReason};
pub use stack::{FrameInfo, RunningCpu, StackGroup, StackInfo, StackThread, StacksReport};
pub use symbols::MissingSymbols;
pub use warning::{Warning, WarningKind};

use hangscope_x64::VirtAddr;
use serde::{Deserialize, Serialize};

/// A value the model serialises as a `0x` hex string: a bare number
/// (handle values, physical addresses) or a virtual address.
pub trait HexValue: Copy {
    /// The raw number.
    fn to_raw(self) -> u64;
    /// From the raw number.
    fn from_raw(raw: u64) -> Self;
}

impl HexValue for u64 {
    fn to_raw(self) -> u64 {
        self
    }
    fn from_raw(raw: u64) -> Self {
        raw
    }
}

impl HexValue for VirtAddr {
    fn to_raw(self) -> u64 {
        self.0
    }
    fn from_raw(raw: u64) -> Self {
        VirtAddr(raw)
    }
}

/// Serialise an address (or any [`HexValue`]) as a `0x` hex string.
pub mod hex {
    use super::HexValue;
    use serde::{de, Deserialize, Deserializer, Serializer};

    /// Serialise.
    pub fn serialize<S: Serializer, T: HexValue>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#x}", v.to_raw()))
    }

    /// Parse `0x...` hex (or a plain number).
    pub fn parse(s: &str) -> Option<u64> {
        let t = s.trim();
        match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => t.parse().ok(),
        }
    }

    /// Deserialise.
    pub fn deserialize<'de, D: Deserializer<'de>, T: HexValue>(d: D) -> Result<T, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s)
            .map(T::from_raw)
            .ok_or_else(|| de::Error::custom(format!("not a hex address: {s}")))
    }
}

/// Serialise an optional address as a hex string or null.
pub mod hex_opt {
    use super::HexValue;
    use serde::{de, Deserialize, Deserializer, Serializer};

    /// Serialise.
    pub fn serialize<S: Serializer, T: HexValue>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&format!("{:#x}", v.to_raw())),
            None => s.serialize_none(),
        }
    }

    /// Deserialise.
    pub fn deserialize<'de, D: Deserializer<'de>, T: HexValue>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => super::hex::parse(&s)
                .map(|raw| Some(T::from_raw(raw)))
                .ok_or_else(|| de::Error::custom(format!("not a hex address: {s}"))),
        }
    }
}

/// Serialise a list of addresses as hex strings.
pub mod hex_vec {
    use super::HexValue;
    use serde::{de, Deserialize, Deserializer, Serializer};

    /// Serialise.
    pub fn serialize<S: Serializer, T: HexValue>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|a| format!("{:#x}", a.to_raw())))
    }

    /// Deserialise.
    pub fn deserialize<'de, D: Deserializer<'de>, T: HexValue>(d: D) -> Result<Vec<T>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| {
                super::hex::parse(s)
                    .map(T::from_raw)
                    .ok_or_else(|| de::Error::custom(format!("not a hex address: {s}")))
            })
            .collect()
    }
}

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

/// The kernel's PDB identity, from its RSDS record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdbInfo {
    /// PDB file name (`ntkrnlmp.pdb`).
    pub name: String,
    /// GUID, 32 upper-case hex digits.
    pub guid: String,
    /// Age.
    pub age: u32,
}

impl PdbInfo {
    /// The same identity as the symbols crate asks for it.
    pub fn identity(&self) -> hangscope_symbols::PdbIdentity {
        hangscope_symbols::PdbIdentity {
            name: self.name.clone(),
            guid: self.guid.clone(),
            age: self.age,
        }
    }
}

/// One CPU as the kernel sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// Processor number.
    pub index: u32,
    /// `_KPCR` address.
    #[serde(with = "hex")]
    pub kpcr: VirtAddr,
    /// `_KPRCB` address (from `KiProcessorBlock`).
    #[serde(with = "hex")]
    pub kprcb: VirtAddr,
    /// `_KPRCB.CurrentThread` (an ETHREAD address), when readable.
    #[serde(with = "hex_opt")]
    pub current_thread: Option<VirtAddr>,
    /// The vCPU's instruction pointer from the dump's registers, if any.
    #[serde(with = "hex_opt")]
    pub rip: Option<VirtAddr>,
}

/// `info`: the kernel found in the dump.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// Build number (`NtBuildNumber & 0xFFFF`).
    pub build: Option<u32>,
    /// Major version (`KUSER_SHARED_DATA.NtMajorVersion`).
    pub major_version: Option<u32>,
    /// Minor version.
    pub minor_version: Option<u32>,
    /// Kernel image base.
    #[serde(with = "hex")]
    pub kernel_base: VirtAddr,
    /// Kernel image size (PE SizeOfImage).
    pub kernel_size: Option<u64>,
    /// Page-table base used for kernel space (physical).
    #[serde(with = "hex_opt")]
    pub dtb: Option<u64>,
    /// Kernel PDB identity.
    pub pdb: PdbInfo,
    /// Where the symbol table came from.
    pub symbol_source: String,
    /// `KeNumberProcessors`.
    pub processor_count: Option<u32>,
    /// Each CPU.
    pub cpus: Vec<CpuInfo>,
    /// `KUSER_SHARED_DATA.SystemTime` (FILETIME, 100 ns since 1601).
    pub system_time: Option<u64>,
    /// Tick count now (`KUSER_SHARED_DATA.TickCountQuad`).
    pub tick_count: Option<u64>,
    /// `KeMaximumIncrement`: 100 ns units per clock tick.
    pub max_increment: Option<u32>,
    /// `KUSER_SHARED_DATA.TickCountMultiplier`.
    pub tick_count_multiplier: Option<u32>,
    /// How each fact was found (DTB from CR3, kernel base from a scan ...).
    pub discovery: Vec<String>,
    /// Problems met.
    pub warnings: Vec<Warning>,
}

/// A process (`_EPROCESS`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// EPROCESS address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `UniqueProcessId`.
    pub pid: u64,
    /// `InheritedFromUniqueProcessId`.
    pub ppid: u64,
    /// `ImageFileName` (at most 15 characters).
    pub name: String,
    /// `ActiveThreads`.
    pub thread_count: Option<u32>,
    /// `CreateTime` (FILETIME).
    pub create_time: Option<u64>,
    /// Session id (`Session->SessionId`), None for no session.
    pub session: Option<u32>,
    /// `Pcb.DirectoryTableBase` (physical).
    #[serde(with = "hex")]
    pub dtb: u64,
    /// `ObjectTable` (the `_HANDLE_TABLE`).
    #[serde(with = "hex_opt")]
    pub handle_table: Option<VirtAddr>,
}

/// A thread (`_ETHREAD`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadInfo {
    /// ETHREAD address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `Cid.UniqueThread`.
    pub tid: u64,
    /// `Cid.UniqueProcess`.
    pub pid: u64,
    /// Owning EPROCESS address.
    #[serde(with = "hex")]
    pub process: VirtAddr,
    /// Owning process name.
    pub process_name: String,
    /// `Tcb.State` (serialised by its KTHREAD_STATE name, `Waiting`, or
    /// `Unknown(n)`).
    pub state: ThreadState,
    /// `Tcb.WaitReason` (by its KWAIT_REASON name), when waiting.
    pub wait_reason: Option<WaitReason>,
    /// `Tcb.WaitTime`: the tick it last changed wait state.
    pub wait_time: u64,
    /// Ticks since then (now - WaitTime), for waiting and ready threads.
    pub wait_ticks: Option<u64>,
    /// Those ticks in seconds (ticks x KeMaximumIncrement / 10^7).
    pub wait_seconds: Option<f64>,
    /// CPU number when it is some KPRCB's CurrentThread.
    pub cpu: Option<u32>,
    /// `StartAddress`.
    #[serde(with = "hex")]
    pub start_address: VirtAddr,
    /// `Win32StartAddress`, when the build has it.
    #[serde(with = "hex_opt")]
    pub win32_start_address: Option<VirtAddr>,
    /// `Tcb.KernelStack` (saved stack pointer of a thread not running).
    #[serde(with = "hex_opt")]
    pub kernel_stack: Option<VirtAddr>,
    /// Dispatcher objects it waits on (from its wait blocks).
    #[serde(with = "hex_vec")]
    pub waits_on: Vec<VirtAddr>,
    /// IRPs on its `IrpList`.
    #[serde(with = "hex_vec")]
    pub irps: Vec<VirtAddr>,
    /// What was wrong with this thread's record (a state out of range, a
    /// wait block that points nowhere, a wait that starts after the
    /// clock); the listing's warnings repeat them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

/// A loaded kernel module (`_LDR_DATA_TABLE_ENTRY`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// `DllBase`.
    #[serde(with = "hex")]
    pub base: VirtAddr,
    /// `SizeOfImage`.
    pub size: u64,
    /// `BaseDllName`.
    pub name: String,
    /// `FullDllName`.
    pub path: String,
}

/// An owner of an ERESOURCE.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockOwner {
    /// Owner thread (ETHREAD) address, tag bits masked.
    #[serde(with = "hex")]
    pub thread: VirtAddr,
    /// Recursion count (`OwnerCount`).
    pub count: u32,
    /// Held exclusively.
    pub exclusive: bool,
}

/// A thread waiting for a lock or object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockWaiter {
    /// Waiting thread (ETHREAD) address.
    #[serde(with = "hex")]
    pub thread: VirtAddr,
    /// Wants it exclusively.
    pub exclusive: bool,
    /// Ticks it has waited.
    pub wait_ticks: Option<u64>,
    /// Seconds it has waited.
    pub wait_seconds: Option<f64>,
}

/// An executive resource (`_ERESOURCE`), as `!locks` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EresourceInfo {
    /// Address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `ActiveCount`.
    pub active_count: u32,
    /// `Flag`.
    pub flag: u32,
    /// Held exclusively (`Flag & ResourceOwnedExclusive`).
    pub exclusive: bool,
    /// `ContentionCount`.
    pub contention_count: u32,
    /// `NumberOfSharedWaiters`.
    pub shared_waiters_count: u32,
    /// `NumberOfExclusiveWaiters`.
    pub exclusive_waiters_count: u32,
    /// `SharedWaiters`: the KSEMAPHORE's address, or on 1607 the address of
    /// the `_KWAIT_CHAIN` field itself.
    #[serde(with = "hex")]
    pub shared_waiters: VirtAddr,
    /// The objects shared waiters block on: the `SharedWaiters` semaphore,
    /// or (Win10 1607) each `_KWAIT_CHAIN` entry's event.
    #[serde(with = "hex_vec", default)]
    pub shared_wait_events: Vec<VirtAddr>,
    /// `ExclusiveWaiters` (a KEVENT) address.
    #[serde(with = "hex")]
    pub exclusive_waiters: VirtAddr,
    /// Owners (OwnerEntry then OwnerTable).
    pub owners: Vec<LockOwner>,
    /// Threads waiting on its semaphore or event.
    pub waiters: Vec<LockWaiter>,
    /// A kernel symbol at the address, if one names it.
    pub symbol: Option<String>,
    /// What does not add up in it (owners that contradict `Flag` or
    /// `ActiveCount`, a lock threads wait in but missing from
    /// `ExpSystemResourcesList`); the listing's warnings repeat them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

impl EresourceInfo {
    /// Contended: someone waits or has waited.
    pub fn is_contended(&self) -> bool {
        !self.waiters.is_empty()
            || self.shared_waiters_count > 0
            || self.exclusive_waiters_count > 0
    }
}

/// One thread waiting on a push lock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushLockWaiter {
    /// The waiting thread (ETHREAD).
    #[serde(with = "hex")]
    pub thread: VirtAddr,
    /// The `WakeEvent` it waits on, in its wait block on its stack.
    #[serde(with = "hex")]
    pub wake_event: VirtAddr,
    /// Its wait block, where the table names the type (7 SP1).
    #[serde(with = "hex_opt")]
    pub wait_block: Option<VirtAddr>,
    /// Wants it exclusively: the wait block's `Flags` (7 SP1), else its
    /// acquire frame (`...Exclusive`/`...Shared`); unknown when neither.
    pub exclusive: Option<bool>,
    /// Tied to the lock by its stack holding the lock's address rather
    /// than by the lock's wait-block links.
    pub inferred: bool,
}

/// A push lock with waiters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushLockInfo {
    /// The lock word's address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// The lock word.
    #[serde(with = "hex")]
    pub value: u64,
    /// `Locked` is set (held exclusively, or shared with waiters queued).
    pub locked: bool,
    /// What contains it: `_EPROCESS.AddressCreationLock of explorer.exe
    /// (pid 1800)`, `pool block tagged Pshl at ...`; none when unknown.
    pub container: Option<String>,
    /// Waiters, oldest first.
    pub waiters: Vec<PushLockWaiter>,
    /// Threads whose kernel stacks hold the lock's address and that do not
    /// wait on it: the probable owners (inferred; a push lock records
    /// none).
    #[serde(with = "hex_vec")]
    pub candidate_owners: Vec<VirtAddr>,
    /// Whether the waiters were read from the wait blocks by name (7 SP1)
    /// rather than found from the lock word and the stacks.
    pub wait_blocks_by_name: bool,
}

/// A fast mutex (`_FAST_MUTEX`, also a guarded mutex from Windows 8 on) or
/// 7 SP1's guarded mutex (`_KGUARDED_MUTEX`) with waiters. Unlike a push
/// lock it records its owner (`Owner`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MutexInfo {
    /// The mutex's address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `FastMutex` or `GuardedMutex` (7 SP1's `_KGUARDED_MUTEX`).
    pub kind: String,
    /// The dispatcher object its waiters block on: the `Event` of a
    /// `_FAST_MUTEX`, the `Gate` of a `_KGUARDED_MUTEX`.
    #[serde(with = "hex")]
    pub wait_object: VirtAddr,
    /// The thread in its `Owner` field (recorded, not inferred).
    #[serde(with = "hex")]
    pub owner: VirtAddr,
    /// What contains it (a process or thread field, a pool block); none
    /// when unknown.
    pub container: Option<String>,
    /// Waiters, oldest first.
    pub waiters: Vec<LockWaiter>,
}

/// A lock a thread holds, as far as the dump tells: a mutex's recorded
/// `Owner`, or a push lock whose address its stack keeps (inferred).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeldLock {
    /// The lock's address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `PushLock`, `FastMutex` or `GuardedMutex`.
    pub kind: String,
    /// Inferred from the thread's stack rather than recorded by the lock.
    pub inferred: bool,
    /// What contains the lock, when known.
    pub container: Option<String>,
    /// How many threads wait for it.
    pub waiters: usize,
}

/// A dispatcher object a thread waits on, and what is behind it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitedObject {
    /// Wait block address.
    #[serde(with = "hex")]
    pub wait_block: VirtAddr,
    /// Object address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `DISPATCHER_HEADER.Type` raw value.
    pub type_raw: Option<u8>,
    /// Its `_KOBJECTS` name (`SemaphoreObject`).
    pub type_name: Option<String>,
    /// Short kind: Event, Semaphore, Mutant, Timer, Thread, Process, ...
    pub kind: String,
    /// `KWAIT_BLOCK.WaitType` (0 WaitAll, 1 WaitAny ...).
    pub wait_type: Option<u8>,
    /// The ERESOURCE whose waiters' semaphore or event this is.
    #[serde(with = "hex_opt")]
    pub eresource: Option<VirtAddr>,
    /// Waiting for the ERESOURCE exclusively (its event) or shared.
    pub eresource_exclusive: Option<bool>,
    /// The owner threads behind it: a mutant's `OwnerThread`, or the
    /// ERESOURCE's owners.
    #[serde(with = "hex_vec")]
    pub owners: Vec<VirtAddr>,
}

/// `!thread`: one thread in detail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadDetail {
    /// The summary row.
    pub thread: ThreadInfo,
    /// What it waits on.
    pub waits: Vec<WaitedObject>,
    /// Its pending IRPs.
    pub irps: Vec<IrpInfo>,
    /// Symbolised kernel stack, top first (`nt!KiSwapContext+0x7a`), from
    /// `Kernel::thread_stack`; empty when it cannot be unwound.
    pub stack: Vec<Frame>,
    /// The same walk with every frame's Child-SP and return address, how
    /// it started and why it ended.
    #[serde(default)]
    pub stack_walk: StackInfo,
    /// Modules on the stack with no symbol table, and what to fetch.
    #[serde(default)]
    pub missing_symbols: Vec<MissingSymbols>,
    /// The push lock it waits on (`WrPushLock`), as the push-lock walk tied
    /// it: address, container, waiters and the owner candidates inferred
    /// from stacks. Absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_lock: Option<PushLockInfo>,
    /// Push locks it probably holds (inferred from its stack) and mutexes
    /// whose `Owner` it is. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HeldLock>,
    /// Problems met.
    pub warnings: Vec<Warning>,
}

/// One IRP stack location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IrpStackLocation {
    /// 1-based index, as `CurrentLocation` counts.
    pub index: u32,
    /// The current location.
    pub current: bool,
    /// Address of the `_IO_STACK_LOCATION`.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `MajorFunction`.
    pub major: u8,
    /// `IRP_MJ_*` name.
    pub major_name: String,
    /// `MinorFunction`.
    pub minor: u8,
    /// `DeviceObject`.
    #[serde(with = "hex")]
    pub device: VirtAddr,
    /// The device's object name (`\Device\HarddiskVolume2`).
    pub device_name: Option<String>,
    /// `DeviceObject->DriverObject`.
    #[serde(with = "hex_opt")]
    pub driver: Option<VirtAddr>,
    /// `DriverObject->DriverName` (`\FileSystem\Ntfs`).
    pub driver_name: Option<String>,
    /// `FileObject`.
    #[serde(with = "hex")]
    pub file_object: VirtAddr,
    /// `CompletionRoutine`.
    #[serde(with = "hex")]
    pub completion_routine: VirtAddr,
    /// `Context`.
    #[serde(with = "hex")]
    pub context: u64,
}

/// `!irp`: an I/O request packet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IrpInfo {
    /// Address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `Type` (6 for an IRP).
    pub type_raw: u16,
    /// `StackCount`.
    pub stack_count: u32,
    /// `CurrentLocation` (1-based).
    pub current_location: u32,
    /// `Tail.Overlay.CurrentStackLocation`.
    #[serde(with = "hex_opt")]
    pub current_stack_location: Option<VirtAddr>,
    /// Issuing thread (`Tail.Overlay.Thread`).
    #[serde(with = "hex_opt")]
    pub thread: Option<VirtAddr>,
    /// `Tail.Overlay.OriginalFileObject`.
    #[serde(with = "hex_opt")]
    pub original_file_object: Option<VirtAddr>,
    /// `UserEvent`: the event the issuer waits on for completion, when
    /// it names one.
    #[serde(with = "hex_opt", default, skip_serializing_if = "Option::is_none")]
    pub user_event: Option<VirtAddr>,
    /// Stack locations, first to last.
    pub stack: Vec<IrpStackLocation>,
    /// The current location's file path, when it has a file object.
    pub file_path: Option<String>,
    /// Problems met.
    pub warnings: Vec<Warning>,
}

impl IrpInfo {
    /// The current stack location, if the IRP has one.
    pub fn current(&self) -> Option<&IrpStackLocation> {
        self.stack.iter().find(|s| s.current)
    }
}

/// A process holding handles to an object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// PID.
    pub pid: u64,
    /// Process name.
    pub process_name: String,
    /// Handle values.
    #[serde(with = "hex_vec")]
    pub handles: Vec<u64>,
}

/// `!fileobj`: a file object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileObjectInfo {
    /// Address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// `FileName` as stored.
    pub name: String,
    /// Full path without the device (following `RelatedFileObject`).
    pub path: String,
    /// `DeviceObject`.
    #[serde(with = "hex")]
    pub device: VirtAddr,
    /// Device object name (`\Device\HarddiskVolume2`).
    pub device_name: Option<String>,
    /// `Flags`.
    pub flags: u32,
    /// `RelatedFileObject`.
    #[serde(with = "hex")]
    pub related: VirtAddr,
    /// Processes holding handles to it.
    pub holders: Vec<Holder>,
    /// Problems met.
    pub warnings: Vec<Warning>,
}

impl FileObjectInfo {
    /// Device name and path joined, as WinDbg and Volatility print it.
    pub fn full_name(&self) -> String {
        match &self.device_name {
            Some(d) => format!("{d}{}", self.path),
            None => self.path.clone(),
        }
    }
}

/// One handle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandleInfo {
    /// Owning PID.
    pub pid: u64,
    /// Owning process name.
    pub process_name: String,
    /// Handle value.
    #[serde(with = "hex")]
    pub handle: u64,
    /// Object body address.
    #[serde(with = "hex")]
    pub object: VirtAddr,
    /// Object type name (`File`, `Process`, ...).
    pub type_name: String,
    /// Granted access mask.
    pub access: u32,
    /// Name as Volatility prints it (file path with device, `Tid n Pid m`).
    pub name: String,
}

/// Handles and, with a path prefix, who holds what under it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandleReport {
    /// The handles listed.
    pub handles: Vec<HandleInfo>,
    /// The path prefix asked for.
    pub path_prefix: Option<String>,
    /// Per process: how many of the listed handles it holds.
    pub holders: Vec<HolderCount>,
    /// Problems met.
    pub warnings: Vec<Warning>,
}

/// A process and how many handles it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HolderCount {
    /// PID.
    pub pid: u64,
    /// Process name.
    pub process_name: String,
    /// Handle count.
    pub count: u64,
}

// What `dt`, `db` and `dq` show is the same for every kernel.
pub use hangscope_x64::view::{DtField, DtOutput, MemoryDump};
