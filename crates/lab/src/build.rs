//! The image builder: scenario -> kernel objects -> virtual memory ->
//! physical memory, plus the ground truth.
//!
//! Every structure offset and size comes from the symbol table through
//! [`Layout`]; the only fixed layouts are documented formats that no kernel
//! PDB describes (`KDDEBUGGER_DATA64` from `wdbgexts.h`, the PE/COFF
//! CodeView record), see [`kdbg`].
//!
//! ```
//! use hangscope_lab::{build, BuildOptions, Scenario, Symbols};
//! let sc = Scenario::builtin("idle")?;
//! let opts = BuildOptions { seed: 1, build: Some("win7sp1".into()), ..Default::default() };
//! let (image, truth) = build(&sc, Symbols::Default, &opts)?;
//! assert_eq!(image.facts.build_number, 7601);
//! assert_eq!(truth.processes[0].name, "System");
//! assert_eq!(truth.verdict.overall, "healthy");
//! # Ok::<(), hangscope_lab::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::builds::{self, AddressStyle, SelfRefStyle, WindowsBuild};
use crate::error::Error;
use crate::image::{LabCpu, LabImage, LabKernelFacts, PAGE_SIZE};
use crate::layout::{Isf, Layout, Shape};
use crate::scenario::{FileRef, Index, LockKind, Scenario, ThreadState, IRP_MAJORS};
use crate::space::{self, Space};
use crate::truth::*;

/// Options that do not belong to the scenario.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Override `machine.ram`.
    pub ram_size: Option<u64>,
    /// Seed for every random choice (addresses, physical pages, filler).
    pub seed: u64,
    /// Override `machine.build` (alias, `GUID-AGE` or ISF path).
    pub build: Option<String>,
}

/// Where the symbol table comes from.
#[derive(Debug, Clone, Copy)]
pub enum Symbols<'a> {
    /// Resolve `machine.build` under [`builds::symbols_dir`].
    Default,
    /// Resolve `machine.build` under this symbols directory (the one
    /// holding `windows/ntkrnlmp.pdb/`).
    Dir(&'a Path),
    /// This ISF file, whatever `machine.build` says.
    File(&'a Path),
    /// A table loaded by `hangscope-symbols`, whatever `machine.build`
    /// says. (The other variants read the ISF with the lab's own reader,
    /// independent of the product's loader.)
    Table(&'a hangscope_symbols::SymbolTable),
}

/// Resolve a build name (alias, `GUID-AGE`, or path) to an ISF path.
pub fn resolve_isf(name: &str, dir: &Path) -> Result<PathBuf, Error> {
    if let Some(b) = builds::find_build(name) {
        return Ok(builds::isf_path(dir, b));
    }
    let p = PathBuf::from(name);
    if p.exists() {
        return Ok(p);
    }
    let direct = dir
        .join("windows")
        .join("ntkrnlmp.pdb")
        .join(format!("{}.json.xz", name.to_ascii_uppercase()));
    if direct.exists() {
        return Ok(direct);
    }
    Err(Error::ScenarioField {
        field: "machine.build".to_string(),
        problem: format!(
            "`{name}` is neither a known alias ({}), a GUID-AGE under {}, nor an ISF file",
            builds::BUILDS
                .iter()
                .map(|b| b.aliases[0])
                .collect::<Vec<_>>()
                .join(", "),
            dir.display()
        ),
    })
}

/// Build an image and its ground truth.
pub fn build(
    scenario: &Scenario,
    symbols: Symbols<'_>,
    opts: &BuildOptions,
) -> Result<(LabImage, GroundTruth), Error> {
    let name = opts.build.as_deref().unwrap_or(&scenario.machine.build);
    let path = match symbols {
        Symbols::Default => resolve_isf(name, &builds::symbols_dir())?,
        Symbols::Dir(d) => resolve_isf(name, d)?,
        Symbols::File(f) => f.to_path_buf(),
        Symbols::Table(t) => return build_with_layout(scenario, t, opts),
    };
    let isf = Isf::load(&path)?;
    build_with_layout(scenario, &isf, opts)
}

/// Build with an already loaded table.
pub fn build_with_layout(
    scenario: &Scenario,
    isf: &dyn Layout,
    opts: &BuildOptions,
) -> Result<(LabImage, GroundTruth), Error> {
    let index = scenario.validate()?;
    let mut b = Builder::new(scenario, index, isf, opts)?;
    b.run()?;
    Ok(b.finish())
}

/// `KDDEBUGGER_DATA64` field offsets: the layout is the public
/// `wdbgexts.h` ABI, identical on every x64 build, and no kernel PDB
/// describes it (Volatility ships the same layout as its own `kdbg.json`).
pub mod kdbg {
    /// `Header.List` (LIST_ENTRY64).
    pub const LIST: u64 = 0x00;
    /// `Header.OwnerTag` ('KDBG').
    pub const OWNER_TAG: u64 = 0x10;
    /// `Header.Size`.
    pub const SIZE: u64 = 0x14;
    /// `KernBase`.
    pub const KERN_BASE: u64 = 0x18;
    /// `PsLoadedModuleList`.
    pub const PS_LOADED_MODULE_LIST: u64 = 0x48;
    /// `PsActiveProcessHead`.
    pub const PS_ACTIVE_PROCESS_HEAD: u64 = 0x50;
    /// `PspCidTable`.
    pub const PSP_CID_TABLE: u64 = 0x58;
    /// `ExpSystemResourcesList`.
    pub const EXP_SYSTEM_RESOURCES_LIST: u64 = 0x60;
    /// `KeTimeIncrement`.
    pub const KE_TIME_INCREMENT: u64 = 0x78;
    /// `ObpTypeObjectType`.
    pub const OBP_TYPE_OBJECT_TYPE: u64 = 0xA0;
    /// `MmPfnDatabase`.
    pub const MM_PFN_DATABASE: u64 = 0xC0;
    /// `MmNumberOfPhysicalPages`.
    pub const MM_NUMBER_OF_PHYSICAL_PAGES: u64 = 0xF8;
    /// `MmNonPagedPoolStart`.
    pub const MM_NON_PAGED_POOL_START: u64 = 0x110;
    /// `MmPageSize`.
    pub const MM_PAGE_SIZE: u64 = 0x138;
    /// `MmHighestUserAddress`.
    pub const MM_HIGHEST_USER_ADDRESS: u64 = 0x1C8;
    /// `MmSystemRangeStart`.
    pub const MM_SYSTEM_RANGE_START: u64 = 0x1D0;
    /// `MmUserProbeAddress`.
    pub const MM_USER_PROBE_ADDRESS: u64 = 0x1D8;
    /// `NtBuildLab` (pointer to the string).
    pub const NT_BUILD_LAB: u64 = 0x208;
    /// `KiProcessorBlock`.
    pub const KI_PROCESSOR_BLOCK: u64 = 0x218;
    /// `CmNtCSDVersion` (pointer to the u32).
    pub const CM_NT_CSD_VERSION: u64 = 0x268;
    /// First of the u16 `Offset*`/`Size*` fields (`OffsetKThreadNextProcessor`).
    pub const OFFSETS: u64 = 0x298;
    /// Size written in the header.
    pub const STRUCT_SIZE: u32 = 0x340;
}

/// Pool tag of an object type, with the pre-Windows 8 "protected" high
/// bit on the last byte where the build used it.
fn object_tag(type_name: &str, protected: bool) -> [u8; 4] {
    let base: &[u8; 4] = match type_name {
        "Process" => b"Proc",
        "Thread" => b"Thre",
        "File" => b"File",
        "Driver" => b"Driv",
        "Device" => b"Devi",
        "Mutant" => b"Muta",
        "Event" => b"Even",
        "Semaphore" => b"Sema",
        "Type" => b"ObjT",
        "Directory" => b"Dire",
        "SymbolicLink" => b"Symb",
        "Key" => b"Key ",
        "Section" => b"Sect",
        "Token" => b"Toke",
        _ => b"Obj ",
    };
    let mut t = *base;
    if protected {
        t[3] |= 0x80;
    }
    t
}

/// Object type names by index, as Windows 7 numbers them.
const TYPES_WIN7: &[&str] = &[
    "Type",
    "Directory",
    "SymbolicLink",
    "Token",
    "Job",
    "Process",
    "Thread",
    "UserApcReserve",
    "IoCompletionReserve",
    "DebugObject",
    "Event",
    "EventPair",
    "Mutant",
    "Callback",
    "Semaphore",
    "Timer",
    "Profile",
    "KeyedEvent",
    "WindowStation",
    "Desktop",
    "TpWorkerFactory",
    "Adapter",
    "Controller",
    "Device",
    "Driver",
    "IoCompletion",
    "File",
    "TmTm",
    "TmTx",
    "TmRm",
    "TmEn",
    "Section",
    "Session",
    "Key",
    "ALPC Port",
    "PowerRequest",
    "WmiGuid",
    "EtwRegistration",
    "EtwConsumer",
    "FilterConnectionPort",
    "FilterCommunicationPort",
    "PcwObject",
];

/// Object type names by index, as Windows 10 numbers them.
const TYPES_WIN10: &[&str] = &[
    "Type",
    "Directory",
    "SymbolicLink",
    "Token",
    "Job",
    "Process",
    "Thread",
    "Partition",
    "UserApcReserve",
    "IoCompletionReserve",
    "ActivityReference",
    "PsSiloContextPaged",
    "PsSiloContextNonPaged",
    "DebugObject",
    "Event",
    "Mutant",
    "Callback",
    "Semaphore",
    "Timer",
    "IRTimer",
    "Profile",
    "KeyedEvent",
    "WindowStation",
    "Desktop",
    "Composition",
    "RawInputManager",
    "CoreMessaging",
    "TpWorkerFactory",
    "Adapter",
    "Controller",
    "Device",
    "Driver",
    "IoCompletion",
    "WaitCompletionPacket",
    "File",
    "TmTm",
    "TmTx",
    "TmRm",
    "TmEn",
    "Section",
    "Session",
    "Key",
    "RegistryTransaction",
    "ALPC Port",
    "EnergyTracker",
    "PowerRequest",
    "WmiGuid",
    "EtwRegistration",
    "EtwSessionDemuxEntry",
    "EtwConsumer",
    "DmaAdapter",
    "PcwObject",
    "FilterConnectionPort",
    "FilterCommunicationPort",
];

/// Thread states (KTHREAD_STATE); Windows 7's PDB lacks the enum, the
/// values are the documented ones.
fn thread_state_value(l: &dyn Layout, name: &str) -> u64 {
    if let Some(v) = l.enum_value("_KTHREAD_STATE", name) {
        return v as u64;
    }
    match name {
        "Initialized" => 0,
        "Ready" => 1,
        "Running" => 2,
        "Standby" => 3,
        "Terminated" => 4,
        "Waiting" => 5,
        "Transition" => 6,
        _ => 7,
    }
}

/// Functions the HAL exports on the builds whose kernel lacks them: a
/// stack naming `nt!KeQueryPerformanceCounter` shows `hal!` there, as
/// WinDbg would.
const HAL_FUNCTIONS: &[&str] = &[
    "KeQueryPerformanceCounter",
    "KeStallExecutionProcessor",
    "KfRaiseIrql",
    "KfLowerIrql",
    "HalRequestSoftwareInterrupt",
];

/// Modules every machine loads, before the scenario's drivers.
const BASE_MODULES: &[(&str, u64)] = &[
    ("hal.dll", 0x6_9000),
    ("kdcom.dll", 0xb000),
    ("mcupdate_GenuineIntel.dll", 0x4_7000),
    ("CLFS.SYS", 0x5_e000),
    ("CI.dll", 0xc_0000),
    ("Wdf01000.sys", 0xa_4000),
    ("ACPI.sys", 0x5_7000),
    ("volmgr.sys", 0x1_5000),
    ("disk.sys", 0x1_6000),
    ("CLASSPNP.SYS", 0x3_0000),
    ("fltmgr.sys", 0x4_c000),
    ("Ntfs.sys", 0x1_a3000),
    ("tcpip.sys", 0x2_00000),
    ("win32k.sys", 0x3_10000),
];

#[derive(Debug, Clone)]
struct ObjRec {
    header: u64,
    handles: u32,
}

#[derive(Debug, Clone, Default)]
struct ProcRec {
    eprocess: u64,
    dtb_pfn: u64,
    handle_table: u64,
    threads: Vec<usize>,
    create_time: u64,
    handles: Vec<(u64, u64, u32)>, // (object body, object header, access)
}

#[derive(Debug, Clone, Default)]
struct ThreadRec {
    ethread: u64,
    tid: u64,
    stack_base: u64,
    kernel_stack: u64,
    start: u64,
    waits_on: Vec<u64>,
    irps: Vec<u64>,
    stack: Vec<String>,
    cpu: Option<u32>,
    /// RIP, RSP and RBP inside the top frame when running (0: not laid out).
    start_rip: u64,
    start_rsp: u64,
    start_rbp: u64,
}

#[derive(Debug, Clone, Default)]
struct LockRec {
    address: u64,
    /// What `SharedWaiters` holds: the KSEMAPHORE's address, or on 1607
    /// the address of the `_KWAIT_CHAIN` inside the ERESOURCE.
    shared_waiters_obj: u64,
    /// On 1607: (scenario thread index, KEVENT address) of each shared
    /// waiter's `_KWAIT_CHAIN_ENTRY`, in chain order (empty without shared
    /// waiters). `None` on builds where `SharedWaiters` is a pointer.
    shared_chain: Option<Vec<(usize, u64)>>,
    exclusive_waiters_obj: u64,
}

impl LockRec {
    /// The dispatcher object scenario thread `ti` blocks on when it waits
    /// for this ERESOURCE shared: its own chain entry's event on 1607, the
    /// one shared semaphore elsewhere.
    fn shared_wait_object(&self, ti: usize) -> u64 {
        self.shared_chain
            .iter()
            .flatten()
            .find(|(t, _)| *t == ti)
            .map_or(self.shared_waiters_obj, |&(_, e)| e)
    }

    /// The objects shared waiters block on, as a reader finds them from
    /// the ERESOURCE: the semaphore, or each chain entry's event.
    fn shared_wait_events(&self) -> Vec<u64> {
        match &self.shared_chain {
            Some(chain) => chain.iter().map(|&(_, e)| e).collect(),
            None => Some(self.shared_waiters_obj)
                .filter(|&s| s != 0)
                .into_iter()
                .collect(),
        }
    }
}

struct Builder<'a> {
    sc: &'a Scenario,
    ix: Index,
    l: &'a dyn Layout,
    win: WindowsBuild,
    rng: ChaCha8Rng,
    sp: Space,
    seed: u64,
    ram_size: u64,
    kernel_base: u64,
    image_size: u64,
    kernel_phys_fixed: bool,
    pool_next: u64,
    pool_prev_size: u64,
    pages_next: u64,
    stack_next: u64,
    self_ref: u64,
    cookie: u8,
    type_index: HashMap<&'static str, u8>,
    type_objects: Vec<u64>,
    objects: Vec<ObjRec>,
    lists: BTreeMap<u64, Vec<u64>>,
    procs: Vec<ProcRec>,
    threads: Vec<ThreadRec>,
    locks: Vec<LockRec>,
    drivers: Vec<u64>,
    devices: Vec<u64>,
    files: Vec<u64>,
    set_files: Vec<Vec<u64>>,
    irps: Vec<u64>,
    modules: Vec<ModuleTruth>,
    /// Real driver images by module index (scenario drivers with `image`).
    real_modules: HashMap<usize, crate::driver::PeDriver>,
    module_pdbs: Vec<ModulePdbTruth>,
    idle_process: u64,
    idle_threads: Vec<u64>,
    kpcrs: Vec<(u64, u64)>,
    system_time: u64,
    boot_time: u64,
    truth: GroundTruth,
}

fn missing(what: impl Into<String>) -> Error {
    Error::MissingSymbol { what: what.into() }
}

/// A CodeView RSDS record: the signature, the GUID (given as 32 hex digits
/// in symbol-server order; stored as Data1 u32, Data2 u16, Data3 u16
/// little-endian, then the Data4 bytes), the age and the NUL-terminated PDB
/// name.
fn rsds_record(guid: &str, age: u32, pdb: &str) -> Vec<u8> {
    let g: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(guid.get(i * 2..i * 2 + 2).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    let mut rec = b"RSDS".to_vec();
    rec.extend([g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6]]);
    rec.extend(&g[8..16]);
    rec.extend(age.to_le_bytes());
    rec.extend(pdb.as_bytes());
    rec.push(0);
    rec
}

/// FNV-1a over `bytes` with a salt: a stable 64-bit value (synthetic GUIDs).
fn fnv64(bytes: &[u8], salt: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in std::iter::once(&salt).chain(bytes) {
        h = (h ^ c as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn round_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect()
}

impl<'a> Builder<'a> {
    fn new(
        sc: &'a Scenario,
        ix: Index,
        l: &'a dyn Layout,
        opts: &BuildOptions,
    ) -> Result<Self, Error> {
        let (guid, age) = l
            .pdb_identity()
            .ok_or_else(|| missing("metadata.windows.pdb (GUID and age)"))?;
        let win = match builds::build_by_identity(&guid, age) {
            Some(b) => b.clone(),
            None => {
                // An unknown table: derive what we can from its shape.
                let win10 = l.symbol("ObHeaderCookie").is_some();
                WindowsBuild {
                    aliases: &[],
                    guid: "",
                    age,
                    product: "Windows (unknown build)",
                    major: if win10 { 10 } else { 6 },
                    minor: if win10 { 0 } else { 1 },
                    build: if win10 { 19041 } else { 7601 },
                    service_pack: 0,
                    build_lab: "0.0.amd64fre.unknown.000000-0000",
                    timestamp: 0x5000_0000,
                    server: true,
                    self_ref: if win10 {
                        SelfRefStyle::Randomized
                    } else {
                        SelfRefStyle::Fixed0x1ed
                    },
                    addresses: if win10 {
                        AddressStyle::Win10
                    } else {
                        AddressStyle::Win7
                    },
                }
            }
        };
        let ram_size = opts.ram_size.unwrap_or(sc.machine.ram.0);
        if !((64 << 20)..=(16u64 << 30)).contains(&ram_size) || ram_size % PAGE_SIZE != 0 {
            return Err(Error::ScenarioField {
                field: "machine.ram".into(),
                problem: format!("{ram_size} is not a page multiple in 64MiB..16GiB"),
            });
        }
        // QEMU-style RAM layout: the legacy hole at 640K..1M and, above
        // 3 GiB, the PCI hole with the rest of RAM moved above 4 GiB.
        let mut ram = vec![(0, 0xA0000)];
        let low_end = ram_size.min(0xC000_0000);
        ram.push((0x10_0000, low_end - 0x10_0000));
        if ram_size > 0xC000_0000 {
            ram.push((0x1_0000_0000, ram_size - 0xC000_0000));
        }
        let seed = opts.seed;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c61_625f_696d_6721);
        let pml4_phys = match win.addresses {
            AddressStyle::Win10 => 0x1AA000,
            _ => 0x187000,
        };
        let sp = Space::new(ram, pml4_phys)?;
        let self_ref = match win.self_ref {
            SelfRefStyle::Fixed0x1ed => 0x1ED,
            // 0x1EF is KUSER_SHARED_DATA's PML4 slot and 0x1F0.. the
            // kernel image's: keep the self-reference clear of both.
            SelfRefStyle::Randomized => loop {
                let i = rng.gen_range(0x100..0x1EF);
                if i != 0x100 {
                    break i;
                }
            },
        };
        let max_rva = l.max_symbol_rva(0x400_0000).unwrap_or(0);
        let image_size = round_up(max_rva + 0x1000, 0x1000);
        let (kernel_base, kernel_phys_fixed, pool_base, stack_base) = match win.addresses {
            AddressStyle::Win7 => (
                0xFFFF_F800_0260_0000 + rng.gen_range(0..0x100u64) * 0x1000,
                true,
                0xFFFF_FA80_0000_0000 + rng.gen_range(0x40..0x80u64) * 0x10_0000,
                0xFFFF_F880_0400_0000 + rng.gen_range(0..0x100u64) * 0x1_0000,
            ),
            AddressStyle::Win81 => (
                0xFFFF_F800_0000_0000
                    + rng.gen_range(1..8u64) * 0x1_0000_0000
                    + rng.gen_range(0..0x8000u64) * 0x1_0000,
                false,
                0xFFFF_E000_0000_0000 + rng.gen_range(0x10..0x100u64) * 0x100_0000,
                0xFFFF_D000_0000_0000 + rng.gen_range(0x10..0x100u64) * 0x100_0000,
            ),
            AddressStyle::Win10 => (
                0xFFFF_F800_0000_0000
                    + rng.gen_range(1..8u64) * 0x1_0000_0000
                    + rng.gen_range(0..0x8000u64) * 0x1_0000,
                false,
                0xFFFF_8000_0000_0000 + rng.gen_range(0x100..0x7000u64) * 0x1_0000_0000,
                0xFFFF_F000_0000_0000 - rng.gen_range(0x1000..0x2000u64) * 0x1_0000_0000,
            ),
        };
        let unix = sc.machine.unix_time;
        let system_time = (unix + 11_644_473_600) * 10_000_000;
        let uptime_100ns =
            (sc.machine.tick_count as u128 * sc.machine.max_increment as u128) as u64;
        let boot_time = system_time.saturating_sub(uptime_100ns);
        let mut b = Builder {
            sc,
            ix,
            l,
            win,
            rng,
            sp,
            seed,
            ram_size,
            kernel_base,
            image_size,
            kernel_phys_fixed,
            pool_next: pool_base,
            pool_prev_size: 0,
            pages_next: pool_base + 0x4000_0000,
            stack_next: stack_base,
            self_ref,
            cookie: 0,
            type_index: HashMap::new(),
            type_objects: Vec::new(),
            objects: Vec::new(),
            lists: BTreeMap::new(),
            procs: Vec::new(),
            threads: Vec::new(),
            locks: Vec::new(),
            drivers: Vec::new(),
            devices: Vec::new(),
            files: Vec::new(),
            real_modules: HashMap::new(),
            set_files: Vec::new(),
            irps: Vec::new(),
            modules: Vec::new(),
            module_pdbs: Vec::new(),
            idle_process: 0,
            idle_threads: Vec::new(),
            kpcrs: Vec::new(),
            system_time,
            boot_time,
            truth: GroundTruth::default(),
        };
        if b.l.symbol("ObHeaderCookie").is_some() {
            b.cookie = b.rng.gen_range(1..=255u8);
        }
        if kernel_phys_fixed {
            let kphys = kernel_base - 0xFFFF_F800_0000_0000;
            b.sp.forbid(kphys / PAGE_SIZE, (kphys + image_size) / PAGE_SIZE);
            if kphys + image_size > low_end {
                return Err(Error::Capacity {
                    problem: "RAM too small for the kernel image".into(),
                });
            }
        }
        Ok(b)
    }

    // ----- layout helpers -------------------------------------------------

    fn size(&self, ty: &str) -> Result<u64, Error> {
        self.l.type_size(ty).ok_or_else(|| missing(ty))
    }

    fn off(&self, ty: &str, path: &str) -> Result<u64, Error> {
        self.l
            .field(ty, path)
            .map(|f| f.offset)
            .ok_or_else(|| missing(format!("{ty}.{path}")))
    }

    fn has(&self, ty: &str, path: &str) -> bool {
        self.l.field(ty, path).is_some()
    }

    fn sym(&self, name: &str) -> Result<u64, Error> {
        self.l
            .symbol(name)
            .map(|r| self.kernel_base + r)
            .ok_or_else(|| missing(name))
    }

    /// Write `value` into field `path` of the `ty` at `base`.
    fn put(&mut self, base: u64, ty: &str, path: &str, value: u64) -> Result<(), Error> {
        let f = self
            .l
            .field(ty, path)
            .ok_or_else(|| missing(format!("{ty}.{path}")))?;
        let at = base + f.offset;
        match f.shape {
            Shape::Base(n) | Shape::Enum(n) if (1..=8).contains(&n) => {
                self.sp.write(at, &value.to_le_bytes()[..n as usize])
            }
            Shape::Pointer => self.sp.write(at, &value.to_le_bytes()),
            // An array of integers: the value goes in element 0.
            Shape::Array { ref element, .. } if matches!(**element, Shape::Base(n) if (1..=8).contains(&n)) =>
            {
                let n = self.l.shape_size(element).unwrap_or(8) as usize;
                self.sp.write(at, &value.to_le_bytes()[..n])
            }
            // Small unions and structs (_LARGE_INTEGER, _EX_FAST_REF, ...)
            // are written as one integer.
            Shape::Struct(ref name) if matches!(self.l.type_size(name), Some(n) if (1..=8).contains(&n)) =>
            {
                let n = self.l.type_size(name).unwrap_or(8) as usize;
                self.sp.write(at, &value.to_le_bytes()[..n])
            }
            Shape::Bitfield {
                position,
                length,
                storage,
            } if (1..=8).contains(&storage) => {
                let n = storage as usize;
                let mut cur = [0u8; 8];
                cur[..n].copy_from_slice(&self.sp.read(at, n));
                let old = u64::from_le_bytes(cur);
                let mask = if length >= 64 {
                    u64::MAX
                } else {
                    ((1u64 << length) - 1) << position
                };
                let new = (old & !mask) | ((value << position) & mask);
                self.sp.write(at, &new.to_le_bytes()[..n])
            }
            other => Err(missing(format!(
                "{ty}.{path} as a scalar (it is {other:?})"
            ))),
        }
    }

    /// Like [`Builder::put`] for fields some builds lack.
    fn put_opt(&mut self, base: u64, ty: &str, path: &str, value: u64) -> Result<(), Error> {
        if self.has(ty, path) {
            self.put(base, ty, path, value)?;
        }
        Ok(())
    }

    /// Offset of element `i` of array field `path`.
    fn elem(&self, ty: &str, path: &str, i: u64) -> Result<u64, Error> {
        let f = self
            .l
            .field(ty, path)
            .ok_or_else(|| missing(format!("{ty}.{path}")))?;
        match &f.shape {
            Shape::Array { count, element } if i < *count => {
                let es = self
                    .l
                    .shape_size(element)
                    .ok_or_else(|| missing(format!("{ty}.{path} element size")))?;
                Ok(f.offset + i * es)
            }
            _ => Err(missing(format!("{ty}.{path}[{i}]"))),
        }
    }

    fn list_add(&mut self, head: u64, entry: u64) {
        self.lists.entry(head).or_default().push(entry);
    }

    fn list_init(&mut self, head: u64) {
        self.lists.entry(head).or_default();
    }

    fn write_lists(&mut self) -> Result<(), Error> {
        let flink = self.off("_LIST_ENTRY", "Flink")?;
        let blink = self.off("_LIST_ENTRY", "Blink")?;
        let lists = std::mem::take(&mut self.lists);
        for (head, entries) in &lists {
            let mut ring = vec![*head];
            ring.extend(entries.iter().copied());
            let n = ring.len();
            for i in 0..n {
                let next = ring[(i + 1) % n];
                let prev = ring[(i + n - 1) % n];
                self.sp.write(ring[i] + flink, &next.to_le_bytes())?;
                self.sp.write(ring[i] + blink, &prev.to_le_bytes())?;
            }
        }
        self.lists = lists;
        Ok(())
    }

    // ----- memory helpers ---------------------------------------------------

    fn map_kernel_range(&mut self, va: u64, len: u64, flags: u64) -> Result<(), Error> {
        let mut p = va & !0xFFF;
        while p < va + len {
            let fixed = if self.kernel_phys_fixed
                && p >= self.kernel_base
                && p < self.kernel_base + self.image_size
            {
                Some((p - 0xFFFF_F800_0000_0000) / PAGE_SIZE)
            } else {
                None
            };
            self.sp.map_kernel(&mut self.rng, p, fixed, flags)?;
            p += PAGE_SIZE;
        }
        Ok(())
    }

    /// Make the kernel-image bytes `[va, va+len)` writable memory.
    fn map_image(&mut self, va: u64, len: u64) -> Result<(), Error> {
        self.map_kernel_range(va, len.max(1), space::PTE_KERNEL_DATA)
    }

    /// Whole pages (large pool / system PTE allocations, no pool header).
    fn alloc_pages(&mut self, len: u64) -> Result<u64, Error> {
        let va = self.pages_next;
        let len = round_up(len.max(1), PAGE_SIZE);
        self.pages_next += len + PAGE_SIZE;
        self.map_kernel_range(va, len, space::PTE_KERNEL_DATA)?;
        Ok(va)
    }

    /// A small pool block with a POOL_HEADER; returns (header VA, data VA).
    fn pool_alloc(&mut self, data_len: u64, tag: [u8; 4]) -> Result<(u64, u64), Error> {
        let hdr = self.size("_POOL_HEADER")?;
        let total = round_up(hdr + data_len, 16);
        if total > 0xFF0 {
            return Err(Error::Capacity {
                problem: format!("pool block of {total:#x} bytes does not fit in a page"),
            });
        }
        let room = PAGE_SIZE - (self.pool_next & 0xFFF);
        if room < total || self.pool_next & 0xFFF == 0 {
            if self.pool_next & 0xFFF != 0 {
                self.pool_next = round_up(self.pool_next, PAGE_SIZE);
            }
            self.pool_prev_size = 0;
            // Leave a random gap of pages, as a busy pool would.
            if self.rng.gen_range(0..4) == 0 {
                self.pool_next += PAGE_SIZE;
            }
        }
        let at = self.pool_next;
        self.map_kernel_range(at, total, space::PTE_KERNEL_DATA)?;
        self.put(at, "_POOL_HEADER", "PreviousSize", self.pool_prev_size / 16)?;
        self.put(at, "_POOL_HEADER", "BlockSize", total / 16)?;
        // Volatility's Vista+ rule: even and non-zero = non-paged.
        self.put(at, "_POOL_HEADER", "PoolType", 2)?;
        self.put(
            at,
            "_POOL_HEADER",
            "PoolTag",
            u32::from_le_bytes(tag) as u64,
        )?;
        self.pool_prev_size = total;
        self.pool_next = at + total;
        Ok((at, at + hdr))
    }

    /// A UNICODE_STRING at `at` whose buffer is a new pool block.
    fn unicode_string(&mut self, at: u64, s: &str, tag: [u8; 4]) -> Result<(), Error> {
        let bytes = utf16(s);
        let len = bytes.len() as u64;
        let buf = if len == 0 {
            0
        } else {
            let (_, data) = self.pool_alloc(len + 2, tag)?;
            self.sp.write(data, &bytes)?;
            data
        };
        self.put(at, "_UNICODE_STRING", "Length", len)?;
        self.put(
            at,
            "_UNICODE_STRING",
            "MaximumLength",
            if len == 0 { 0 } else { len + 2 },
        )?;
        self.put(at, "_UNICODE_STRING", "Buffer", buf)
    }

    fn optional_headers(&self) -> Vec<(&'static str, u64)> {
        // In InfoMask bit order; each sits below the previous one.
        [
            "_OBJECT_HEADER_CREATOR_INFO",
            "_OBJECT_HEADER_NAME_INFO",
            "_OBJECT_HEADER_HANDLE_INFO",
            "_OBJECT_HEADER_QUOTA_INFO",
            "_OBJECT_HEADER_PROCESS_INFO",
            "_OBJECT_HEADER_AUDIT_INFO",
            "_OBJECT_HEADER_EXTENDED_INFO",
            "_OBJECT_HEADER_PADDING_INFO",
        ]
        .iter()
        .filter_map(|t| self.l.type_size(t).map(|s| (*t, s)))
        .collect()
    }

    /// An executive object of type `type_name` with a body of `body_len`
    /// bytes; returns the body address. `name` adds OBJECT_HEADER_NAME_INFO.
    fn alloc_object(
        &mut self,
        type_name: &'static str,
        body_len: u64,
        name: Option<&str>,
    ) -> Result<u64, Error> {
        let body_off = self.off("_OBJECT_HEADER", "Body")?;
        let name_size = self.size("_OBJECT_HEADER_NAME_INFO")?;
        let creator_size = self.size("_OBJECT_HEADER_CREATOR_INFO")?;
        // Named objects also carry CREATOR_INFO, as most real ones do.
        let (mask, opt) = if name.is_some() {
            (0x3u64, name_size + creator_size)
        } else {
            (0, 0)
        };
        let protected = self.win.major == 6 && self.win.minor <= 1;
        let tag = object_tag(type_name, protected);
        // The body ends exactly at the end of the block, so Windows 7's
        // bottom-up carving finds it.
        let (_, data) = self.pool_alloc(opt + body_off + round_up(body_len, 16), tag)?;
        let header = data + opt;
        let body = header + body_off;
        let idx = *self
            .type_index
            .get(type_name)
            .ok_or_else(|| missing(format!("object type {type_name}")))?;
        let stored = if self.cookie != 0 {
            idx ^ self.cookie ^ ((header >> 8) & 0xFF) as u8
        } else {
            idx
        };
        self.put(header, "_OBJECT_HEADER", "PointerCount", 1)?;
        self.put(header, "_OBJECT_HEADER", "TypeIndex", stored as u64)?;
        self.put(header, "_OBJECT_HEADER", "InfoMask", mask)?;
        if let Some(n) = name {
            let ni = header - creator_size - name_size;
            self.unicode_string(
                ni + self.off("_OBJECT_HEADER_NAME_INFO", "Name")?,
                n,
                *b"ObNm",
            )?;
            self.put_opt(ni, "_OBJECT_HEADER_NAME_INFO", "ReferenceCount", 1)?;
            let ci = header - creator_size;
            let tl = ci + self.off("_OBJECT_HEADER_CREATOR_INFO", "TypeList")?;
            // Self-linked: not on a type list.
            self.list_init(tl);
        }
        self.objects.push(ObjRec { header, handles: 0 });
        Ok(body)
    }

    fn object_header(&self, body: u64) -> Result<u64, Error> {
        Ok(body - self.off("_OBJECT_HEADER", "Body")?)
    }

    fn add_handle_ref(&mut self, header: u64) {
        if let Some(o) = self.objects.iter_mut().find(|o| o.header == header) {
            o.handles += 1;
        }
    }

    fn kobj(&self, name: &str) -> Result<u64, Error> {
        self.l
            .enum_value("_KOBJECTS", name)
            .map(|v| v as u64)
            .ok_or_else(|| missing(format!("_KOBJECTS.{name}")))
    }

    fn dispatcher_header(
        &mut self,
        at: u64,
        kind: &str,
        signal: u64,
        size_ty: &str,
    ) -> Result<(), Error> {
        let t = self.kobj(kind)?;
        self.put(at, "_DISPATCHER_HEADER", "Type", t)?;
        let sz = self.size(size_ty)? / 4;
        self.put_opt(at, "_DISPATCHER_HEADER", "Size", sz)?;
        self.put(at, "_DISPATCHER_HEADER", "SignalState", signal)?;
        let wl = at + self.off("_DISPATCHER_HEADER", "WaitListHead")?;
        self.list_init(wl);
        Ok(())
    }

    /// Address of `module!symbol` (nt symbols from the table; other
    /// modules get a stable made-up offset inside the module).
    fn code_address(&self, name: &str) -> u64 {
        let (m, s) = name.split_once('!').unwrap_or(("nt", name));
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for c in name.bytes() {
            h = (h ^ c as u64).wrapping_mul(0x100_0000_01b3);
        }
        let ret = 0x20 + (h % 0x180);
        if m.eq_ignore_ascii_case("nt") {
            if let Some(r) = self.l.symbol(s) {
                return self.kernel_base + r + ret;
            }
            return self.kernel_base + 0x1000 + (h % (self.image_size / 2));
        }
        let module = self.modules.iter().find(|md| {
            let stem = md.name.rsplit_once('.').map(|x| x.0).unwrap_or(&md.name);
            stem.eq_ignore_ascii_case(m) || md.name.eq_ignore_ascii_case(m)
        });
        match module {
            Some(md) => md.base + 0x1000 + (h % (md.size - 0x1000).max(0x100)),
            None => self.kernel_base + 0x1000 + (h % (self.image_size / 2)),
        }
    }

    fn frame_name(&self, name: &str) -> String {
        let addr = self.code_address(name);
        let (m, s) = name.split_once('!').unwrap_or(("nt", name));
        if m.eq_ignore_ascii_case("nt") {
            if let Some(r) = self.l.symbol(s) {
                return format!("nt!{s}+{:#x}", addr - self.kernel_base - r);
            }
        }
        name.to_string()
    }

    // ----- the build --------------------------------------------------------

    fn run(&mut self) -> Result<(), Error> {
        self.kernel_image()?;
        self.kuser()?;
        self.low_stub()?;
        self.object_types()?;
        self.modules()?;
        self.processes()?;
        self.threads()?;
        self.cpus()?;
        self.stacks()?;
        self.locks()?;
        self.io_objects()?;
        self.waits()?;
        self.handles()?;
        self.cid_table()?;
        self.globals()?;
        self.object_counts()?;
        self.write_lists()?;
        self.process_address_spaces()?;
        self.compute_truth()?;
        Ok(())
    }

    fn kernel_image(&mut self) -> Result<(), Error> {
        let kb = self.kernel_base;
        self.map_kernel_range(kb, PAGE_SIZE, space::PTE_KERNEL_CODE)?;
        let dos = "_IMAGE_DOS_HEADER";
        let nt = "_IMAGE_NT_HEADERS64";
        let lfanew = 0x108u64;
        self.put(kb, dos, "e_magic", 0x5A4D)?;
        self.put(kb, dos, "e_cblp", 0x90)?;
        self.put(kb, dos, "e_cp", 3)?;
        self.put(kb, dos, "e_cparhdr", 4)?;
        self.put(kb, dos, "e_maxalloc", 0xFFFF)?;
        self.put(kb, dos, "e_sp", 0xB8)?;
        self.put(kb, dos, "e_lfarlc", 0x40)?;
        self.put(kb, dos, "e_lfanew", lfanew)?;
        self.sp
            .write(kb + 0x4E, b"This program cannot be run in DOS mode.\r\r\n$")?;
        let h = kb + lfanew;
        self.put(h, nt, "Signature", 0x4550)?;
        self.put(h, nt, "FileHeader.Machine", 0x8664)?;
        self.put(h, nt, "FileHeader.NumberOfSections", 2)?;
        self.put(h, nt, "FileHeader.TimeDateStamp", self.win.timestamp as u64)?;
        let opt_size = self.size("_IMAGE_OPTIONAL_HEADER64")?;
        self.put(h, nt, "FileHeader.SizeOfOptionalHeader", opt_size)?;
        self.put(h, nt, "FileHeader.Characteristics", 0x22)?;
        let o = "OptionalHeader.";
        let size = self.image_size;
        for (f, v) in [
            ("Magic", 0x20B),
            ("MajorLinkerVersion", 9),
            ("SizeOfCode", size / 2),
            ("SizeOfInitializedData", size / 2),
            ("AddressOfEntryPoint", 0x1000 + ((size / 4) & !0xF)),
            ("BaseOfCode", 0x1000),
            ("ImageBase", kb),
            ("SectionAlignment", 0x1000),
            ("FileAlignment", 0x200),
            ("MajorOperatingSystemVersion", self.win.major as u64),
            ("MinorOperatingSystemVersion", self.win.minor as u64),
            ("MajorImageVersion", self.win.major as u64),
            ("MinorImageVersion", self.win.minor as u64),
            ("MajorSubsystemVersion", self.win.major as u64),
            ("MinorSubsystemVersion", self.win.minor as u64),
            ("SizeOfImage", size),
            ("SizeOfHeaders", 0x600),
            ("CheckSum", 0x55_0000 ^ (self.seed & 0xFFFF)),
            ("Subsystem", 1),
            ("DllCharacteristics", 0x160),
            ("SizeOfStackReserve", 0x40000),
            ("SizeOfStackCommit", 0x1000),
            ("SizeOfHeapReserve", 0x100000),
            ("SizeOfHeapCommit", 0x1000),
            ("NumberOfRvaAndSizes", 16),
        ] {
            self.put(h, nt, &format!("{o}{f}"), v)?;
        }
        // Debug directory and the RSDS CodeView record naming ntkrnlmp.pdb.
        let dd = h + self.elem(nt, "OptionalHeader.DataDirectory", 6)?;
        let dbg_rva = 0x300u64;
        let dbg_size = self.size("_IMAGE_DEBUG_DIRECTORY")?;
        self.put(dd, "_IMAGE_DATA_DIRECTORY", "VirtualAddress", dbg_rva)?;
        self.put(dd, "_IMAGE_DATA_DIRECTORY", "Size", dbg_size)?;
        let rsds_rva = round_up(dbg_rva + dbg_size, 0x10);
        let (guid, age) = self.l.pdb_identity().ok_or_else(|| missing("PDB GUID"))?;
        let rec = rsds_record(&guid, age, "ntkrnlmp.pdb");
        let d = kb + dbg_rva;
        let ddt = "_IMAGE_DEBUG_DIRECTORY";
        self.put(d, ddt, "TimeDateStamp", self.win.timestamp as u64)?;
        self.put(d, ddt, "Type", 2)?; // IMAGE_DEBUG_TYPE_CODEVIEW
        self.put(d, ddt, "SizeOfData", rec.len() as u64)?;
        self.put(d, ddt, "AddressOfRawData", rsds_rva)?;
        self.put(d, ddt, "PointerToRawData", rsds_rva)?;
        self.sp.write(kb + rsds_rva, &rec)?;
        // Two sections covering the image.
        let sh = h + self.size(nt)?;
        let shs = self.size("_IMAGE_SECTION_HEADER")?;
        let half = round_up(size / 2, 0x1000);
        for (i, (n, va, vs, ch)) in [
            (b".text\0\0\0", 0x1000u64, half - 0x1000, 0x6800_0020u64),
            (b".data\0\0\0", half, size - half, 0xC800_0040),
        ]
        .iter()
        .enumerate()
        {
            let s = sh + i as u64 * shs;
            self.sp.write(s, &n[..])?;
            self.put(s, "_IMAGE_SECTION_HEADER", "Misc.VirtualSize", *vs)?;
            self.put(s, "_IMAGE_SECTION_HEADER", "VirtualAddress", *va)?;
            self.put(s, "_IMAGE_SECTION_HEADER", "SizeOfRawData", *vs)?;
            self.put(s, "_IMAGE_SECTION_HEADER", "PointerToRawData", *va)?;
            self.put(s, "_IMAGE_SECTION_HEADER", "Characteristics", *ch)?;
        }
        // The PML4 self-reference.
        let pml4 = self.sp.pml4;
        self.sp.set_pml4_entry(
            pml4,
            self.self_ref,
            (pml4 * PAGE_SIZE) | space::PTE_KERNEL_TABLE,
        );
        Ok(())
    }

    /// The x64 low stub (`_PROCESSOR_START_BLOCK`) at physical 0x1000,
    /// which boot processors start from. No kernel PDB describes it; the
    /// offsets are those Volatility's `method_low_stub_offset` reads.
    fn low_stub(&mut self) -> Result<(), Error> {
        const JMP_AND_COMPLETION: u64 = 0x0000_0001_0006_00E9;
        const LM_TARGET: usize = 0x70;
        const CR3: usize = 0xA0;
        let pfn = 1;
        self.sp.reserve(pfn)?;
        // LmTarget lies at least 2 MiB into the kernel image, so that
        // rounding it down to 2 MiB stays inside the image.
        let lm = self.kernel_base + 0x20_0000.min(self.image_size / 2) + 0x1A40;
        let dtb = self.sp.pml4 * PAGE_SIZE;
        let page = self.sp.page_mut(pfn);
        // A short jump (rel8 0x4E) over the block's data.
        page[..8].copy_from_slice(&(JMP_AND_COMPLETION | 0x4E00).to_le_bytes());
        page[LM_TARGET..LM_TARGET + 8].copy_from_slice(&lm.to_le_bytes());
        page[CR3..CR3 + 8].copy_from_slice(&dtb.to_le_bytes());
        Ok(())
    }

    fn kuser(&mut self) -> Result<(), Error> {
        let k = 0xFFFF_F780_0000_0000u64;
        self.map_kernel_range(k, PAGE_SIZE, space::PTE_KERNEL_DATA)?;
        let t = "_KUSER_SHARED_DATA";
        let m = &self.sc.machine;
        let ticks = m.tick_count;
        let inc = m.max_increment as u64;
        let mult = (inc << 24) / 10_000;
        self.put(k, t, "TickCountMultiplier", mult)?;
        if self.has(t, "TickCountQuad") {
            self.put(k, t, "TickCountQuad", ticks)?;
        }
        if self.has(t, "TickCount.High2Time") {
            self.put(k, t, "TickCount.LowPart", ticks & 0xFFFF_FFFF)?;
            self.put(k, t, "TickCount.High1Time", ticks >> 32)?;
            self.put(k, t, "TickCount.High2Time", ticks >> 32)?;
        }
        let it = ticks * inc;
        self.put(k, t, "InterruptTime.LowPart", it & 0xFFFF_FFFF)?;
        self.put(k, t, "InterruptTime.High1Time", it >> 32)?;
        self.put(k, t, "InterruptTime.High2Time", it >> 32)?;
        let st = self.system_time;
        self.put(k, t, "SystemTime.LowPart", st & 0xFFFF_FFFF)?;
        self.put(k, t, "SystemTime.High1Time", st >> 32)?;
        self.put(k, t, "SystemTime.High2Time", st >> 32)?;
        let root = utf16("C:\\Windows");
        let nsr = self.off(t, "NtSystemRoot")?;
        self.sp.write(k + nsr, &root)?;
        let server = match m.product.as_deref() {
            Some("server") => true,
            Some(_) => false,
            None => self.win.server,
        };
        self.put(k, t, "NtProductType", if server { 3 } else { 1 })?;
        self.put(k, t, "ProductTypeIsValid", 1)?;
        self.put(k, t, "NtMajorVersion", self.win.major as u64)?;
        self.put(k, t, "NtMinorVersion", self.win.minor as u64)?;
        self.put_opt(k, t, "NtBuildNumber", self.win.build as u64)?;
        self.put(k, t, "ImageNumberLow", 0x8664)?;
        self.put(k, t, "ImageNumberHigh", 0x8664)?;
        self.put_opt(k, t, "NumberOfPhysicalPages", self.ram_size / PAGE_SIZE)?;
        self.put_opt(k, t, "ActiveProcessorCount", self.sc.cpus.len() as u64)?;
        self.put_opt(k, t, "ActiveGroupCount", 1)?;
        self.put_opt(k, t, "KdDebuggerEnabled", 0)?;
        self.put_opt(k, t, "TimeZoneId", 0)?;
        Ok(())
    }

    fn object_types(&mut self) -> Result<(), Error> {
        let names: &[&'static str] = if self.win.major >= 10 {
            TYPES_WIN10
        } else {
            TYPES_WIN7
        };
        for (i, n) in names.iter().enumerate() {
            self.type_index.insert(n, (i + 2) as u8);
        }
        let ot = "_OBJECT_TYPE";
        let size = self.size(ot)?;
        let protected = self.win.major == 6 && self.win.minor <= 1;
        for (i, n) in names.iter().enumerate() {
            let body = self.alloc_object("Type", size, Some(n))?;
            self.unicode_string(body + self.off(ot, "Name")?, n, *b"ObNm")?;
            self.put(body, ot, "Index", (i + 2) as u64)?;
            let key = u32::from_le_bytes(object_tag(n, false)) as u64;
            self.put_opt(body, ot, "Key", key)?;
            let tl = body + self.off(ot, "TypeList")?;
            self.list_init(tl);
            let _ = protected;
            self.type_objects.push(body);
        }
        Ok(())
    }

    fn module_base(&mut self, size: u64) -> u64 {
        // Drivers load in their own region below/after the kernel.
        let base = match self.win.addresses {
            AddressStyle::Win7 => 0xFFFF_F880_0100_0000,
            _ => self.kernel_base + 0x1_0000_0000 - 0x4000_0000,
        };
        let used: u64 = self
            .modules
            .iter()
            .skip(1)
            .map(|m| round_up(m.size, 0x1_0000) + 0x1_0000)
            .sum();
        let _ = size;
        base + used
    }

    fn modules(&mut self) -> Result<(), Error> {
        let mut list: Vec<(String, u64)> = BASE_MODULES
            .iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect();
        let mut real = Vec::new();
        for d in &self.sc.drivers {
            if let Some(path) = &d.image {
                let pe = crate::driver::PeDriver::load(path)?;
                list.retain(|(n, _)| !n.eq_ignore_ascii_case(&d.module));
                list.push((d.module.clone(), round_up(pe.size_of_image, 0x1000)));
                real.push((d.module.clone(), pe));
            } else if !list.iter().any(|(n, _)| n.eq_ignore_ascii_case(&d.module)) {
                list.push((d.module.clone(), 0x2_0000));
            }
        }
        self.modules.push(ModuleTruth {
            base: self.kernel_base,
            size: self.image_size,
            name: "ntoskrnl.exe".into(),
            path: "\\SystemRoot\\system32\\ntoskrnl.exe".into(),
        });
        for (n, s) in list {
            let base = if n == "hal.dll" && self.win.addresses == AddressStyle::Win7 {
                // Windows 7 loads the HAL right after the kernel.
                self.kernel_base + round_up(self.image_size, 0x1_0000) + 0x1_0000
            } else {
                self.module_base(s)
            };
            let path = if n.ends_with(".sys") || n.ends_with(".SYS") {
                format!("\\SystemRoot\\system32\\DRIVERS\\{n}")
            } else {
                format!("\\SystemRoot\\system32\\{n}")
            };
            if let Some(k) = real.iter().position(|(r, _)| r.eq_ignore_ascii_case(&n)) {
                let (_, pe) = real.swap_remove(k);
                self.real_modules.insert(self.modules.len(), pe);
            }
            self.modules.push(ModuleTruth {
                base,
                size: s,
                name: n,
                path,
            });
        }
        let head = self.sym("PsLoadedModuleList")?;
        self.map_image(head, 16)?;
        self.list_init(head);
        let lt = if self.l.has_type("_KLDR_DATA_TABLE_ENTRY") {
            "_KLDR_DATA_TABLE_ENTRY"
        } else {
            "_LDR_DATA_TABLE_ENTRY"
        };
        let size = self.size(lt)?;
        for i in 0..self.modules.len() {
            let m = self.modules[i].clone();
            if self.real_modules.contains_key(&i) {
                self.load_real_module(i)?;
            } else if i > 0 {
                self.module_header(&m)?;
            }
            let (_, e) = self.pool_alloc(size, *b"MmLd")?;
            self.list_add(head, e + self.off(lt, "InLoadOrderLinks")?);
            self.put(e, lt, "DllBase", m.base)?;
            self.put(e, lt, "SizeOfImage", m.size)?;
            self.put_opt(e, lt, "EntryPoint", m.base + 0x1000 + ((m.size / 3) & !0xF))?;
            self.unicode_string(e + self.off(lt, "FullDllName")?, &m.path, *b"MmLd")?;
            self.unicode_string(e + self.off(lt, "BaseDllName")?, &m.name, *b"MmLd")?;
            self.put_opt(e, lt, "LoadCount", 1)?;
            self.put_opt(e, lt, "Flags", 0x0900_4000)?;
            // The other module lists are not kept: self-linked.
            for f in ["InMemoryOrderLinks", "InInitializationOrderLinks"] {
                if self.has(lt, f) {
                    let o = e + self.off(lt, f)?;
                    self.list_init(o);
                }
            }
        }
        Ok(())
    }

    /// Load a real driver image as the Windows loader does: headers and
    /// sections in place (code pages executable), base relocations applied,
    /// its imports bound to the kernel's functions by name.
    fn load_real_module(&mut self, i: usize) -> Result<(), Error> {
        let base = self.modules[i].base;
        let kb = self.kernel_base;
        let pe = &self.real_modules[&i];
        let l = self.l;
        let resolve = |dll: &str, name: &str| -> Option<u64> {
            let dll = dll.to_ascii_lowercase();
            if dll == "ntoskrnl.exe" || dll == "ntkrnlmp.exe" || dll == "hal.dll" {
                l.symbol(name).map(|r| kb + r)
            } else {
                None
            }
        };
        let image = pe.loaded(base, &resolve)?;
        if let Some((pdb, guid, age)) = pe.codeview() {
            self.module_pdbs.push(ModulePdbTruth {
                base,
                module: self.modules[i].name.clone(),
                pdb,
                guid,
                age,
            });
        }
        let pages: Vec<(u64, bool)> = (0..image.len() as u64)
            .step_by(PAGE_SIZE as usize)
            .map(|r| (r, pe.executable_page(r as u32)))
            .collect();
        for (r, code) in pages {
            let flags = if code {
                space::PTE_KERNEL_CODE
            } else {
                space::PTE_KERNEL_DATA
            };
            self.map_kernel_range(base + r, PAGE_SIZE, flags)?;
        }
        self.sp.write(base, &image)?;
        Ok(())
    }

    /// A minimal PE header page for a driver module.
    fn module_header(&mut self, m: &ModuleTruth) -> Result<(), Error> {
        self.map_kernel_range(m.base, PAGE_SIZE, space::PTE_KERNEL_CODE)?;
        let dos = "_IMAGE_DOS_HEADER";
        let nt = "_IMAGE_NT_HEADERS64";
        self.put(m.base, dos, "e_magic", 0x5A4D)?;
        self.put(m.base, dos, "e_lfanew", 0xE8)?;
        let h = m.base + 0xE8;
        self.put(h, nt, "Signature", 0x4550)?;
        self.put(h, nt, "FileHeader.Machine", 0x8664)?;
        self.put(
            h,
            nt,
            "FileHeader.TimeDateStamp",
            self.win.timestamp as u64 - 0x1000,
        )?;
        self.put(
            h,
            nt,
            "FileHeader.SizeOfOptionalHeader",
            self.size("_IMAGE_OPTIONAL_HEADER64")?,
        )?;
        self.put(h, nt, "FileHeader.Characteristics", 0x22)?;
        self.put(h, nt, "OptionalHeader.Magic", 0x20B)?;
        self.put(h, nt, "OptionalHeader.ImageBase", m.base)?;
        self.put(h, nt, "OptionalHeader.SizeOfImage", m.size)?;
        self.put(h, nt, "OptionalHeader.SectionAlignment", 0x1000)?;
        self.put(h, nt, "OptionalHeader.FileAlignment", 0x200)?;
        self.put(h, nt, "OptionalHeader.Subsystem", 1)?;
        self.put(
            h,
            nt,
            "OptionalHeader.MajorOperatingSystemVersion",
            self.win.major as u64,
        )?;
        self.put(
            h,
            nt,
            "OptionalHeader.MinorOperatingSystemVersion",
            self.win.minor as u64,
        )?;
        self.module_debug_record(m)
    }

    /// The debug directory (data directory 6) and the CodeView RSDS record
    /// of a driver module's header page, as a linker writes them: PDB
    /// `<file stem>.pdb`, a GUID derived from the module name and the
    /// kernel's own GUID (stable across seeds, different per build), age 1.
    /// Laid out between the headers and the unwind tables
    /// (`stacks::TABLES_RVA`); recorded in the truth's `module_pdbs`.
    fn module_debug_record(&mut self, m: &ModuleTruth) -> Result<(), Error> {
        let stem = m.name.rsplit_once('.').map(|x| x.0).unwrap_or(&m.name);
        let pdb = format!("{stem}.pdb");
        let (kguid, _) = self.l.pdb_identity().ok_or_else(|| missing("PDB GUID"))?;
        let key = format!("{}|{kguid}", m.name.to_ascii_lowercase());
        let guid = format!(
            "{:016X}{:016X}",
            fnv64(key.as_bytes(), 0),
            fnv64(key.as_bytes(), 1)
        );
        let age = 1u32;
        let rec = rsds_record(&guid, age, &pdb);
        let ddt = "_IMAGE_DEBUG_DIRECTORY";
        let dbg_rva = 0x300u64;
        let dbg_size = self.size(ddt)?;
        let rsds_rva = round_up(dbg_rva + dbg_size, 0x10);
        if rsds_rva + rec.len() as u64 > crate::stacks::TABLES_RVA {
            return Err(Error::Capacity {
                problem: format!(
                    "{}: the CodeView record naming {pdb} needs {:#x} bytes, the header has {:#x} before the unwind tables",
                    m.name,
                    rec.len(),
                    crate::stacks::TABLES_RVA - rsds_rva
                ),
            });
        }
        let nt = "_IMAGE_NT_HEADERS64";
        let h = m.base + 0xE8;
        self.put(h, nt, "OptionalHeader.NumberOfRvaAndSizes", 16)?;
        let dd = h + self.elem(nt, "OptionalHeader.DataDirectory", 6)?;
        self.put(dd, "_IMAGE_DATA_DIRECTORY", "VirtualAddress", dbg_rva)?;
        self.put(dd, "_IMAGE_DATA_DIRECTORY", "Size", dbg_size)?;
        let d = m.base + dbg_rva;
        self.put(d, ddt, "TimeDateStamp", self.win.timestamp as u64 - 0x1000)?;
        self.put(d, ddt, "Type", 2)?; // IMAGE_DEBUG_TYPE_CODEVIEW
        self.put(d, ddt, "SizeOfData", rec.len() as u64)?;
        self.put(d, ddt, "AddressOfRawData", rsds_rva)?;
        self.put(d, ddt, "PointerToRawData", rsds_rva)?;
        self.sp.write(m.base + rsds_rva, &rec)?;
        self.module_pdbs.push(ModulePdbTruth {
            base: m.base,
            module: m.name.clone(),
            pdb,
            guid,
            age,
        });
        Ok(())
    }

    fn filetime_after_boot(&mut self, secs: Option<u64>, default_max: u64) -> u64 {
        let s = match secs {
            Some(s) => s,
            None => self.rng.gen_range(1..default_max.max(2)),
        };
        let uptime = self.system_time - self.boot_time;
        self.boot_time + (s * 10_000_000).min(uptime.saturating_sub(10_000_000))
    }

    fn processes(&mut self) -> Result<(), Error> {
        let ep = "_EPROCESS";
        let esize = self.size(ep)?;
        let head = self.sym("PsActiveProcessHead")?;
        self.map_image(head, 16)?;
        self.list_init(head);
        let htl = self.sym("HandleTableListHead")?;
        self.map_image(htl, 16)?;
        self.list_init(htl);
        let mut sessions: HashMap<u32, u64> = HashMap::new();
        let sc = self.sc;
        for (pi, p) in sc.processes.iter().enumerate() {
            let e = self.alloc_object("Process", esize, None)?;
            let dtb = if p.pid == 4 {
                self.sp.pml4
            } else {
                self.sp.alloc(&mut self.rng)?
            };
            self.dispatcher_header(e, "ProcessObject", 0, "_KPROCESS")?;
            self.put(e, ep, "Pcb.DirectoryTableBase", dtb * PAGE_SIZE)?;
            let ktl = e + self.off(ep, "Pcb.ThreadListHead")?;
            self.list_init(ktl);
            let tl = e + self.off(ep, "ThreadListHead")?;
            self.list_init(tl);
            self.put(e, ep, "UniqueProcessId", p.pid)?;
            self.put(e, ep, "InheritedFromUniqueProcessId", p.parent)?;
            self.list_add(head, e + self.off(ep, "ActiveProcessLinks")?);
            let ct = if p.pid == 4 {
                self.boot_time
            } else {
                let default = if p.pid < 1000 { 60 } else { 3600 };
                self.filetime_after_boot(p.created_after_boot, default)
            };
            self.put(e, ep, "CreateTime", ct)?;
            let mut name = p.name.as_bytes().to_vec();
            name.truncate(15);
            name.resize(15, 0);
            let nm = self.off(ep, "ImageFileName")?;
            self.sp.write(e + nm, &name)?;
            let nthreads = sc.threads.iter().filter(|t| t.pid == p.pid).count() as u64;
            self.put(e, ep, "ActiveThreads", nthreads)?;
            self.put_opt(e, ep, "Pcb.BasePriority", 8)?;
            self.put_opt(e, ep, "Pcb.Affinity.Bitmap", affinity_mask(sc.cpus.len()))?;
            self.put_opt(e, ep, "Pcb.Affinity.Count", 1)?;
            self.put_opt(e, ep, "Pcb.ActiveProcessors.Bitmap", 0)?;
            if self.has(ep, "Pcb.ProcessListEntry") {
                let o = e + self.off(ep, "Pcb.ProcessListEntry")?;
                self.list_init(o);
            }
            // Handle table.
            let ht = "_HANDLE_TABLE";
            let (_, h) = self.pool_alloc(self.size(ht)?, *b"Obtb")?;
            self.put(e, ep, "ObjectTable", h)?;
            self.put(h, ht, "QuotaProcess", if p.pid == 4 { 0 } else { e })?;
            self.put(h, ht, "UniqueProcessId", p.pid)?;
            self.list_add(htl, h + self.off(ht, "HandleTableList")?);
            // Session.
            if let Some(s) = p.session {
                let sv = match sessions.get(&s) {
                    Some(v) => *v,
                    None => {
                        let ss = self.size("_MM_SESSION_SPACE")?;
                        let v = self.alloc_pages(ss)?;
                        self.put(v, "_MM_SESSION_SPACE", "SessionId", s as u64)?;
                        self.put_opt(v, "_MM_SESSION_SPACE", "ReferenceCount", 1)?;
                        if self.has("_MM_SESSION_SPACE", "ProcessList") {
                            let o = v + self.off("_MM_SESSION_SPACE", "ProcessList")?;
                            self.list_init(o);
                        }
                        sessions.insert(s, v);
                        v
                    }
                };
                self.put(e, ep, "Session", sv)?;
                if self.has(ep, "SessionProcessLinks")
                    && self.has("_MM_SESSION_SPACE", "ProcessList")
                {
                    let o = sv + self.off("_MM_SESSION_SPACE", "ProcessList")?;
                    let l = e + self.off(ep, "SessionProcessLinks")?;
                    self.list_add(o, l);
                }
            }
            if p.pid != 4 {
                // PEB address (not mapped: user memory is not modelled).
                let peb = 0x7FF_FFFD_0000 + (self.rng.gen_range(0..0x20u64) << 12);
                self.put(e, ep, "Peb", peb)?;
            }
            let _ = pi;
            self.procs.push(ProcRec {
                eprocess: e,
                dtb_pfn: dtb,
                handle_table: h,
                create_time: ct,
                ..Default::default()
            });
        }
        // The idle process: not on the active list, PID 0, System's DTB.
        let idle = match self.l.symbol("KiInitialProcess") {
            Some(r) => {
                let va = self.kernel_base + r;
                self.map_image(va, esize)?;
                va
            }
            None => self.alloc_object("Process", esize, None)?,
        };
        self.dispatcher_header(idle, "ProcessObject", 0, "_KPROCESS")?;
        self.put(idle, ep, "Pcb.DirectoryTableBase", self.sp.pml4 * PAGE_SIZE)?;
        let nm = self.off(ep, "ImageFileName")?;
        let mut name = b"Idle".to_vec();
        name.resize(15, 0);
        self.sp.write(idle + nm, &name)?;
        for f in ["Pcb.ThreadListHead", "ThreadListHead", "ActiveProcessLinks"] {
            let o = idle + self.off(ep, f)?;
            self.list_init(o);
        }
        self.idle_process = idle;
        Ok(())
    }

    fn new_stack(&mut self) -> Result<(u64, u64), Error> {
        // 24 KiB kernel stack plus a guard page; only the top two pages
        // (where the frames are) are resident.
        let size = 0x6000u64;
        let limit = self.stack_next + PAGE_SIZE;
        let base = limit + size;
        self.stack_next = base;
        self.map_kernel_range(base - 0x2000, 0x2000, space::PTE_KERNEL_DATA)?;
        Ok((base, limit))
    }

    // The arguments are the thread's identity fields; a struct for them
    // would only be built to be taken apart here.
    #[allow(clippy::too_many_arguments)]
    fn init_thread(
        &mut self,
        t: u64,
        process: u64,
        state: &str,
        tid: u64,
        pid: u64,
        create: u64,
        start: u64,
    ) -> Result<(u64, u64), Error> {
        let et = "_ETHREAD";
        self.dispatcher_header(t, "ThreadObject", 0, "_KTHREAD")?;
        let sv = thread_state_value(self.l, state);
        self.put(t, et, "Tcb.State", sv)?;
        self.put(t, et, "Tcb.Process", process)?;
        self.put(t, et, "Tcb.ApcState.Process", process)?;
        let aplh = t + self.off(et, "Tcb.ApcState.ApcListHead")?;
        let le = self.size("_LIST_ENTRY")?;
        self.list_init(aplh);
        self.list_init(aplh + le);
        let (base, limit) = self.new_stack()?;
        let initial = base - 0x1D0;
        let ks = initial - 0x3A0;
        self.put(t, et, "Tcb.StackBase", base)?;
        self.put(t, et, "Tcb.StackLimit", limit)?;
        self.put(t, et, "Tcb.InitialStack", initial)?;
        self.put(t, et, "Tcb.KernelStack", ks)?;
        self.put_opt(t, et, "Tcb.KernelStackResident", 1)?;
        self.put_opt(t, et, "Tcb.Priority", 9)?;
        self.put_opt(t, et, "Tcb.BasePriority", 8)?;
        self.put_opt(
            t,
            et,
            "Tcb.Affinity.Bitmap",
            affinity_mask(self.sc.cpus.len()),
        )?;
        self.put_opt(t, et, "Tcb.Affinity.Count", 1)?;
        let mlh = t + self.off(et, "Tcb.MutantListHead")?;
        self.list_init(mlh);
        self.put(t, et, "Cid.UniqueProcess", pid)?;
        self.put(t, et, "Cid.UniqueThread", tid)?;
        self.put(t, et, "CreateTime", create)?;
        self.put(t, et, "StartAddress", start)?;
        self.put_opt(t, et, "Win32StartAddress", start)?;
        let irpl = t + self.off(et, "IrpList")?;
        self.list_init(irpl);
        Ok((base, ks))
    }

    fn threads(&mut self) -> Result<(), Error> {
        let et = "_ETHREAD";
        let esize = self.size(et)?;
        let sc = self.sc;
        let mut used: HashSet<u64> = sc.processes.iter().map(|p| p.pid).collect();
        used.extend(sc.threads.iter().filter_map(|t| t.tid));
        let mut next_tid = 8u64;
        for (ti, t) in sc.threads.iter().enumerate() {
            let pi = self.ix.pids[&t.pid];
            let tid = match t.tid {
                Some(x) => x,
                None => {
                    while used.contains(&next_tid) {
                        next_tid += 4;
                    }
                    used.insert(next_tid);
                    next_tid
                }
            };
            let e = self.alloc_object("Thread", esize, None)?;
            let process = self.procs[pi].eprocess;
            let start_name = t.start.clone().unwrap_or_else(|| {
                if t.pid == 4 {
                    "nt!PspSystemThreadStartup".into()
                } else {
                    "ntdll!RtlUserThreadStart".into()
                }
            });
            let start = if start_name.starts_with("ntdll!") {
                // User-mode start in ntdll's usual place.
                0x7FF_FFF0_0000 + (self.code_address(&start_name) & 0xF_FFF0)
            } else {
                self.code_address(&start_name)
            };
            let pct = self.procs[pi].create_time;
            let create = pct + self.rng.gen_range(0..50_000_000u64);
            let state = match t.state {
                ThreadState::Running => "Running",
                ThreadState::Ready => "Ready",
                ThreadState::Waiting => "Waiting",
            };
            let (base, ks) = self.init_thread(e, process, state, tid, t.pid, create, start)?;
            if t.pid != 4 {
                let teb = 0x7FF_FFFD_E000 - (ti as u64 % 0x40) * 0x2000;
                self.put(e, et, "Tcb.Teb", teb)?;
            }
            let ktl = self.procs[pi].eprocess + self.off("_EPROCESS", "Pcb.ThreadListHead")?;
            self.list_add(ktl, e + self.off(et, "Tcb.ThreadListEntry")?);
            let tl = self.procs[pi].eprocess + self.off("_EPROCESS", "ThreadListHead")?;
            self.list_add(tl, e + self.off(et, "ThreadListEntry")?);
            self.procs[pi].threads.push(ti);
            // The expected stack, as return addresses above the saved
            // switch frame (there is no unwind data to make them walkable).
            let mut frames = Vec::new();
            for (k, f) in t.stack.iter().enumerate() {
                let a = self.code_address(f);
                let at = ks + 0x38 + k as u64 * 0x40;
                if at + 8 <= base {
                    self.sp.write(at, &a.to_le_bytes())?;
                }
                frames.push(self.frame_name(f));
            }
            self.threads.push(ThreadRec {
                ethread: e,
                tid,
                stack_base: base,
                kernel_stack: ks,
                start,
                stack: frames,
                ..Default::default()
            });
        }
        Ok(())
    }

    fn cpus(&mut self) -> Result<(), Error> {
        let kpcr_t = "_KPCR";
        let span = round_up(self.size(kpcr_t)?, PAGE_SIZE);
        let region = self.kernel_base + round_up(self.image_size, 0x10_0000) + 0x40_0000;
        let n = self.sc.cpus.len();
        let prcb_off = self.off(kpcr_t, "Prcb")?;
        let et = "_ETHREAD";
        let esize = self.size(et)?;
        for i in 0..n {
            let kpcr = region + i as u64 * (span + PAGE_SIZE);
            self.map_kernel_range(kpcr, span, space::PTE_KERNEL_DATA)?;
            let prcb = kpcr + prcb_off;
            self.put(kpcr, kpcr_t, "Self", kpcr)?;
            self.put(kpcr, kpcr_t, "CurrentPrcb", prcb)?;
            self.put_opt(kpcr, kpcr_t, "NtTib.Self", kpcr)?;
            self.put(kpcr, kpcr_t, "Prcb.Number", i as u64)?;
            self.put_opt(kpcr, kpcr_t, "Prcb.SetMember", 1u64 << i)?;
            self.put_opt(kpcr, kpcr_t, "Prcb.MHz", 2600)?;
            self.put_opt(kpcr, kpcr_t, "Prcb.CpuType", 6)?;
            if self.has(kpcr_t, "Prcb.VendorString") {
                let o = self.off(kpcr_t, "Prcb.VendorString")?;
                self.sp.write(kpcr + o, b"GenuineIntel")?;
            }
            // The idle thread (CPU 0's is KiInitialThread in the image).
            let idle = match (i, self.l.symbol("KiInitialThread")) {
                (0, Some(r)) => {
                    let va = self.kernel_base + r;
                    self.map_image(va, esize)?;
                    va
                }
                _ => self.alloc_object("Thread", esize, None)?,
            };
            let running_idle = self.sc.cpus[i].runs == "idle";
            let state = if running_idle { "Running" } else { "Ready" };
            let start = self.code_address("nt!KiIdleLoop");
            let ip = self.idle_process;
            let bt = self.boot_time;
            self.init_thread(idle, ip, state, 0, 0, bt, start)?;
            self.put_opt(idle, et, "Tcb.NextProcessor", i as u64)?;
            self.put(kpcr, kpcr_t, "Prcb.IdleThread", idle)?;
            let current = if running_idle {
                idle
            } else {
                let ti = self.ix.threads[&self.sc.cpus[i].runs];
                self.threads[ti].cpu = Some(i as u32);
                self.threads[ti].ethread
            };
            self.put(kpcr, kpcr_t, "Prcb.CurrentThread", current)?;
            if current != idle {
                self.put_opt(current, et, "Tcb.NextProcessor", i as u64)?;
                self.put_opt(current, et, "Tcb.Running", 1)?;
            }
            self.idle_threads.push(idle);
            self.kpcrs.push((kpcr, prcb));
        }
        Ok(())
    }

    /// Unwindable stacks (see `crate::stacks`): unwind data for every
    /// function the scenario's stacks name, frames laid out from it, the
    /// switch frame at KernelStack, running threads' RSP/RBP for the vCPU.
    fn stacks(&mut self) -> Result<(), Error> {
        use crate::stacks::{self as st, FrameShape, ModuleTables, PlacedFunction};
        let mut tables: Vec<ModuleTables> = self
            .modules
            .iter()
            .enumerate()
            .map(|(i, m)| ModuleTables {
                base: m.base,
                size: m.size,
                name: m.name.clone(),
                lfanew: if i == 0 { 0x108 } else { 0xE8 },
                exports: i > 0,
                functions: Vec::new(),
            })
            .collect();
        let stem = |n: &str| n.rsplit_once('.').map(|x| x.0).unwrap_or(n).to_string();
        let module_index = |b: &Self, m: &str| -> Option<usize> {
            if m.eq_ignore_ascii_case("nt") {
                return Some(0);
            }
            b.modules.iter().position(|md| {
                stem(&md.name).eq_ignore_ascii_case(m) || md.name.eq_ignore_ascii_case(m)
            })
        };
        // A frame name: module index, module as shown, the function placed
        // with a provisional call site.
        type Resolved = (usize, String, PlacedFunction);
        let resolve = |b: &Self, full: &str| -> Result<Option<Resolved>, Error> {
            let (name, explicit) = match full.rsplit_once('+') {
                Some((n, o)) => (n, u64::from_str_radix(o.trim_start_matches("0x"), 16).ok()),
                None => (full, None),
            };
            let (mut m, s) = name.split_once('!').unwrap_or(("nt", name));
            let mut mi = match module_index(b, m) {
                Some(i) => i,
                None => return Ok(None),
            };
            if mi == 0 && b.l.symbol(s).is_none() && HAL_FUNCTIONS.contains(&s) {
                // Not the kernel's on this build (KeQueryPerformanceCounter
                // is the HAL's on Windows 7): the HAL exports it.
                match module_index(b, "hal") {
                    Some(h) => {
                        mi = h;
                        m = "hal";
                    }
                    None => return Ok(None),
                }
            }
            let module = if mi == 0 {
                "nt".to_string()
            } else {
                stem(&b.modules[mi].name)
            };
            let shape = FrameShape::for_function(&format!("{m}!{s}"));
            if let Some(pe) = b.real_modules.get(&mi) {
                let rva = *pe.functions.get(s).ok_or_else(|| Error::ScenarioField {
                    field: "threads.stack".into(),
                    problem: format!(
                        "{full}: {} has no function {s} (its map names {})",
                        b.modules[mi].name,
                        pe.functions.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                })?;
                let begin = b.modules[mi].base + rva as u64;
                let site = begin + explicit.unwrap_or(pe.prolog_size(rva) as u64);
                let real = Some(pe.recipe(rva)?);
                let f = PlacedFunction {
                    symbol: s.into(),
                    begin,
                    site,
                    shape,
                    real,
                };
                return Ok(Some((mi, module, f)));
            }
            let mut site = b.code_address(&format!("{m}!{s}"));
            let begin = match (mi, b.l.symbol(s)) {
                (0, Some(r)) => b.kernel_base + r,
                _ => (site - 0x20) & !0xF,
            };
            if mi == 0 && s != "KiIdleLoop" {
                // Return addresses sit a realistic way into the function,
                // but the lab's code for it must end before the next
                // kernel symbol (the idle loop keeps the address
                // `cpu_state` gives the idle vCPUs).
                let min = shape.prolog_bytes().len() as u64 + 5;
                let rva = begin - b.kernel_base;
                let room = b.l.next_symbol_rva(rva).map(|n| n - rva).unwrap_or(0x100);
                let deep = (site - begin).min(room.saturating_sub(0x28));
                site = begin + deep.max(min + (site - begin) % 4);
            }
            let f = PlacedFunction {
                symbol: s.into(),
                begin,
                site,
                shape,
                real: None,
            };
            Ok(Some((mi, module, f)))
        };
        let mut chains: Vec<Vec<Resolved>> = Vec::new();
        for t in &self.sc.threads {
            let mut chain: Vec<Resolved> = Vec::new();
            for f in &t.stack {
                match resolve(self, f)? {
                    Some(x) => chain.push(x),
                    None => break,
                }
            }
            // Real code returns right after its call to the next frame in.
            for j in 0..chain.len() {
                let mi = chain[j].0;
                let Some(pe) = self.real_modules.get(&mi) else {
                    continue;
                };
                if j == 0 {
                    continue;
                }
                let base = self.modules[mi].base;
                let rva = (chain[j].2.begin - base) as u32;
                let callee = &chain[j - 1];
                if callee.2.shape.machine_frame.is_some() {
                    // Interrupted, not calling: it resumes where it was.
                    continue;
                }
                let target = (callee.0 == mi).then(|| (callee.2.begin - base) as u32);
                let site = pe.call_site(rva, &callee.2.symbol, target).ok_or_else(|| {
                    Error::ScenarioField {
                        field: format!("threads[{}].stack", t.id),
                        problem: format!(
                            "{}!{} never calls {}!{}",
                            chain[j].1, chain[j].2.symbol, callee.1, callee.2.symbol
                        ),
                    }
                })?;
                chain[j].2.site = base + site as u64;
            }
            chains.push(chain);
        }
        let idle = resolve(self, "nt!KiIdleLoop")?.ok_or_else(|| missing("nt!KiIdleLoop"))?;
        for (mi, _, f) in chains.iter().flatten().chain(std::iter::once(&idle)) {
            if self.real_modules.contains_key(mi) {
                continue;
            }
            if !tables[*mi].functions.iter().any(|g| g.begin == f.begin) {
                tables[*mi].functions.push(f.clone());
            }
        }
        for t in tables.iter().filter(|t| !t.functions.is_empty()) {
            st::write_module(self, t)?;
        }
        self.code_sections(&tables[0].functions)?;
        for (ti, chain) in chains.iter().enumerate() {
            if chain.is_empty() {
                self.threads[ti].stack.clear();
                continue;
            }
            let fs: Vec<&PlacedFunction> = chain.iter().map(|c| &c.2).collect();
            // A dry run sizes the chain; then it goes below InitialStack
            // (room for the trap frame), the outermost entry 8 mod 16.
            let probe = 0x1_0000_0008;
            let size = probe + 8 - st::lay_out(&fs, probe, ti as u64)?.low;
            let base = self.threads[ti].stack_base;
            let initial = base - 0x1D0;
            let running = self.threads[ti].cpu.is_some();
            let low = if running {
                (initial - size - 0x28) & !0xF
            } else {
                ((initial - size - 0x60) & !0xF) + 0x40
            };
            let entry = ((low + size - 8) & !0xF) + 8;
            let layout = st::lay_out(&fs, entry, ti as u64)?;
            let rsp = layout.low;
            self.map_kernel_range(rsp - 0x40, base - (rsp - 0x40), space::PTE_KERNEL_DATA)?;
            let bytes: Vec<u8> = layout.words.iter().flat_map(|w| w.to_le_bytes()).collect();
            self.sp.write(rsp, &bytes)?;
            let rbp = layout.registers[5];
            if running {
                self.threads[ti].start_rip = fs[0].site;
                self.threads[ti].start_rsp = rsp;
                self.threads[ti].start_rbp = rbp;
            } else {
                // KSWITCH_FRAME: ..., Rbp at +0x30, Return at +0x38.
                let ks = rsp - 0x40;
                self.sp.write(ks + 0x30, &rbp.to_le_bytes())?;
                self.sp.write(ks + 0x38, &fs[0].site.to_le_bytes())?;
                let e = self.threads[ti].ethread;
                self.put(e, "_ETHREAD", "Tcb.KernelStack", ks)?;
                self.threads[ti].kernel_stack = ks;
            }
            self.threads[ti].stack = chain.iter().map(|(_, m, f)| st::frame_text(m, f)).collect();
        }
        // Each processor's registers in KPRCB.ProcessorState.ContextFrame,
        // as KeBugCheck saves them (a crash dump's header holds only one
        // CONTEXT).
        for i in 0..self.sc.cpus.len() {
            let c = self.cpu_state(i);
            let prcb = self.kpcrs[i].1;
            let cf = "ProcessorState.ContextFrame.";
            if !self.has("_KPRCB", &format!("{cf}Rip")) {
                break;
            }
            for (f, v) in [
                ("Rip", c.rip),
                ("Rsp", c.gpr[7]),
                ("Rbp", c.gpr[6]),
                ("Rbx", c.gpr[1]),
                ("Rsi", c.gpr[4]),
                ("Rdi", c.gpr[5]),
                ("EFlags", c.rflags),
                ("SegCs", c.selectors[0] as u64),
                ("SegSs", c.selectors[5] as u64),
            ] {
                self.put(prcb, "_KPRCB", &format!("{cf}{f}"), v)?;
            }
        }
        // Idle loops: one KiIdleLoop frame at InitialStack - 0x58 (where
        // `cpu_state` points RSP), returning to 0.
        let is = self.off("_ETHREAD", "Tcb.InitialStack")?;
        for i in 0..self.sc.cpus.len() {
            let b = self.sp.read(self.idle_threads[i] + is, 8);
            let initial = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
            let entry = initial - 0x58 + idle.2.shape.frame_size() - 8;
            let layout = st::lay_out(&[&idle.2], entry, 0)?;
            let bytes: Vec<u8> = layout.words.iter().flat_map(|w| w.to_le_bytes()).collect();
            self.sp.write(layout.low, &bytes)?;
        }
        Ok(())
    }

    /// The kernel's functions above `.data` (PAGE code in real kernels)
    /// need an executable section: split the image into `.text`, `.data`
    /// and `PAGE` at the first page of such a function.
    fn code_sections(&mut self, funcs: &[crate::stacks::PlacedFunction]) -> Result<(), Error> {
        let kb = self.kernel_base;
        let size = self.image_size;
        let half = round_up(size / 2, 0x1000);
        let Some(page) = funcs
            .iter()
            .map(|f| (f.begin - kb) & !0xFFF)
            .filter(|&r| r >= half)
            .min()
        else {
            return Ok(());
        };
        let nt = "_IMAGE_NT_HEADERS64";
        let sht = "_IMAGE_SECTION_HEADER";
        let h = kb + 0x108;
        let sh = h + self.size(nt)?;
        let shs = self.size(sht)?;
        self.put(h, nt, "FileHeader.NumberOfSections", 3)?;
        let data = sh + shs;
        for f in ["Misc.VirtualSize", "SizeOfRawData"] {
            self.put(data, sht, f, page - half)?;
        }
        let s = sh + 2 * shs;
        self.sp.write(s, b"PAGE\0\0\0\0")?;
        for (f, v) in [
            ("Misc.VirtualSize", size - page),
            ("VirtualAddress", page),
            ("SizeOfRawData", size - page),
            ("PointerToRawData", page),
            ("Characteristics", 0x6000_0020),
        ] {
            self.put(s, sht, f, v)?;
        }
        Ok(())
    }

    fn locks(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let head = self.sym("ExpSystemResourcesList")?;
        self.map_image(head, 16)?;
        self.list_init(head);
        let er = "_ERESOURCE";
        // A few resources every system has, so the list is never short.
        let mut all: Vec<Option<usize>> = vec![None, None, None];
        all.extend((0..sc.locks.len()).map(Some));
        let mut recs = vec![LockRec::default(); sc.locks.len()];
        for li in all {
            match li.map(|i| (i, &sc.locks[i])) {
                None => {
                    let (_, r) = self.pool_alloc(self.size(er)?, *b"Reso")?;
                    self.list_add(head, r + self.off(er, "SystemResourcesList")?);
                }
                Some((i, l)) => {
                    let addr = match l.kind {
                        LockKind::Eresource => self.eresource(i, head)?,
                        LockKind::Mutant => {
                            let m = self.alloc_object("Mutant", self.size("_KMUTANT")?, None)?;
                            let owned = l.owner.is_some();
                            self.dispatcher_header(
                                m,
                                "MutantObject",
                                if owned { 0 } else { 1 },
                                "_KMUTANT",
                            )?;
                            if let Some(o) = &l.owner {
                                let t = self.threads[self.ix.threads[o]].ethread;
                                self.put(m, "_KMUTANT", "OwnerThread", t)?;
                                let mlh = t + self.off("_ETHREAD", "Tcb.MutantListHead")?;
                                let le = m + self.off("_KMUTANT", "MutantListEntry")?;
                                self.list_add(mlh, le);
                            } else {
                                let le = m + self.off("_KMUTANT", "MutantListEntry")?;
                                self.list_init(le);
                            }
                            m
                        }
                        LockKind::Event => {
                            let e = self.alloc_object("Event", self.size("_KEVENT")?, None)?;
                            self.dispatcher_header(
                                e,
                                "EventNotificationObject",
                                l.signaled as u64,
                                "_KEVENT",
                            )?;
                            e
                        }
                        LockKind::Semaphore => {
                            let s =
                                self.alloc_object("Semaphore", self.size("_KSEMAPHORE")?, None)?;
                            self.dispatcher_header(
                                s,
                                "SemaphoreObject",
                                l.signaled as u64,
                                "_KSEMAPHORE",
                            )?;
                            self.put(s, "_KSEMAPHORE", "Limit", 0x7FFF_FFFF)?;
                            s
                        }
                    };
                    recs[i].address = addr;
                }
            }
        }
        // Dispatcher objects the ERESOURCE waiters block on.
        for (i, l) in sc.locks.iter().enumerate() {
            if l.kind != LockKind::Eresource {
                continue;
            }
            let r = recs[i].address;
            let (sh, ex) = self.resource_waiters(i);
            let shape = self.l.field(er, "SharedWaiters").map(|f| f.shape);
            let chain = matches!(&shape, Some(Shape::Struct(n)) if n == "_KWAIT_CHAIN");
            if chain {
                // Embedded: there is a chain (maybe empty) on every resource.
                recs[i].shared_waiters_obj = r + self.off(er, "SharedWaiters")?;
                recs[i].shared_chain = Some(Vec::new());
            }
            if !sh.is_empty() {
                match shape {
                    Some(Shape::Pointer) => {
                        let (_, s) = self.pool_alloc(self.size("_KSEMAPHORE")?, *b"Reso")?;
                        self.dispatcher_header(s, "SemaphoreObject", 0, "_KSEMAPHORE")?;
                        self.put(s, "_KSEMAPHORE", "Limit", 0x7FFF_FFFF)?;
                        self.put(r, er, "SharedWaiters", s)?;
                        recs[i].shared_waiters_obj = s;
                    }
                    _ if chain => recs[i].shared_chain = Some(self.shared_wait_chain(r, &sh)?),
                    other => {
                        return Err(missing(format!(
                            "{er}.SharedWaiters as a KSEMAPHORE pointer or a \
                             _KWAIT_CHAIN (it is {other:?})"
                        )))
                    }
                }
            }
            if !ex.is_empty() {
                let (_, e) = self.pool_alloc(self.size("_KEVENT")?, *b"Reso")?;
                self.dispatcher_header(e, "EventSynchronizationObject", 0, "_KEVENT")?;
                self.put(r, er, "ExclusiveWaiters", e)?;
                recs[i].exclusive_waiters_obj = e;
            }
            self.put(r, er, "NumberOfSharedWaiters", sh.len() as u64)?;
            self.put(r, er, "NumberOfExclusiveWaiters", ex.len() as u64)?;
            let cc = l.contention.unwrap_or((sh.len() + ex.len()) as u32 * 3);
            self.put(r, er, "ContentionCount", cc as u64)?;
        }
        self.locks = recs;
        Ok(())
    }

    /// Windows 10 1607 / Server 2016: `SharedWaiters` is a `_KWAIT_CHAIN`,
    /// a singly linked list of `_KWAIT_CHAIN_ENTRY`s, each holding the
    /// KEVENT one shared waiter blocks on. One entry per waiter in `sh`
    /// (scenario thread indexes), linked from `Head.Next` through
    /// `ListEntry.Next` in scenario order, the last one ending the list.
    /// Returns (thread index, event address) in chain order.
    fn shared_wait_chain(&mut self, r: u64, sh: &[usize]) -> Result<Vec<(usize, u64)>, Error> {
        let ce = "_KWAIT_CHAIN_ENTRY";
        let link = self.off(ce, "ListEntry")?;
        let event = self.off(ce, "Event")?;
        let mut out = Vec::with_capacity(sh.len());
        let mut links = Vec::with_capacity(sh.len());
        for &ti in sh {
            let (_, entry) = self.pool_alloc(self.size(ce)?, *b"Reso")?;
            let ev = entry + event;
            self.dispatcher_header(ev, "EventSynchronizationObject", 0, "_KEVENT")?;
            links.push(entry + link);
            out.push((ti, ev));
        }
        // Head.Next -> first entry's link -> ... -> 0.
        let mut prev = r + self.off("_ERESOURCE", "SharedWaiters.Head")?;
        for &l in &links {
            self.put(prev, "_SINGLE_LIST_ENTRY", "Next", l)?;
            prev = l;
        }
        self.put(prev, "_SINGLE_LIST_ENTRY", "Next", 0)?;
        Ok(out)
    }

    /// Threads waiting for ERESOURCE `i`: (shared, exclusive) thread indexes.
    fn resource_waiters(&self, i: usize) -> (Vec<usize>, Vec<usize>) {
        let id = &self.sc.locks[i].id;
        let mut sh = Vec::new();
        let mut ex = Vec::new();
        for (ti, t) in self.sc.threads.iter().enumerate() {
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

    fn eresource(&mut self, i: usize, head: u64) -> Result<u64, Error> {
        let l = &self.sc.locks[i];
        let er = "_ERESOURCE";
        let oe = "_OWNER_ENTRY";
        let (_, r) = self.pool_alloc(self.size(er)?, *b"NtFs")?;
        self.list_add(head, r + self.off(er, "SystemResourcesList")?);
        let owners: Vec<u64> = l
            .owner
            .iter()
            .chain(l.shared_owners.iter())
            .map(|o| self.threads[self.ix.threads[o]].ethread)
            .collect();
        let exclusive = l.owner.is_some();
        if let Some(&first) = owners.first() {
            let at = r + self.off(er, "OwnerEntry")?;
            self.put(at, oe, "OwnerThread", first)?;
            self.put(at, oe, "OwnerCount", 1)?;
        }
        if owners.len() > 1 {
            // OwnerTable: entry 0 holds the table size, owners follow.
            let es = self.size(oe)?;
            let n = owners.len() as u64;
            let (_, t) = self.pool_alloc(es * n, *b"ReTa")?;
            self.put(t, oe, "TableSize", n)?;
            for (k, o) in owners.iter().enumerate().skip(1) {
                let at = t + k as u64 * es;
                self.put(at, oe, "OwnerThread", *o)?;
                self.put(at, oe, "OwnerCount", 1)?;
            }
            self.put(r, er, "OwnerTable", t)?;
        }
        self.put(r, er, "ActiveCount", owners.len() as u64)?;
        self.put_opt(r, er, "ActiveEntries", owners.len() as u64)?;
        // ResourceOwnedExclusive.
        self.put(r, er, "Flag", if exclusive { 0x80 } else { 0 })?;
        Ok(r)
    }

    fn io_objects(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let dro = "_DRIVER_OBJECT";
        let dvo = "_DEVICE_OBJECT";
        let fo = "_FILE_OBJECT";
        let drv_size = self.size(dro)?;
        let ext_size = self.size("_DRIVER_EXTENSION")?;
        for d in &sc.drivers {
            let short = d.name.rsplit('\\').next().unwrap_or(&d.name).to_string();
            // DRIVER_EXTENSION follows the driver object in one allocation.
            let body = self.alloc_object("Driver", drv_size + ext_size, Some(&short))?;
            let module = self
                .modules
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(&d.module))
                .cloned()
                .unwrap_or_default();
            self.put(body, dro, "Type", 4)?;
            self.put(body, dro, "Size", drv_size)?;
            self.put(body, dro, "DriverStart", module.base)?;
            self.put(body, dro, "DriverSize", module.size)?;
            let ext = body + drv_size;
            self.put(body, dro, "DriverExtension", ext)?;
            self.put(ext, "_DRIVER_EXTENSION", "DriverObject", body)?;
            self.unicode_string(body + self.off(dro, "DriverName")?, &d.name, *b"ObNm")?;
            let init = self.code_address(&format!("{}!DriverEntry", short));
            self.put(body, dro, "DriverInit", init)?;
            for k in 0..IRP_MAJORS.len() as u64 {
                let o = self.elem(dro, "MajorFunction", k)?;
                let a = self.code_address(&format!("{}!Dispatch{}", short, IRP_MAJORS[k as usize]));
                self.sp.write(body + o, &a.to_le_bytes())?;
            }
            self.drivers.push(body);
        }
        let dev_size = self.size(dvo)?;
        let mut last_dev: HashMap<usize, u64> = HashMap::new();
        for d in &sc.devices {
            let di = self.ix.drivers[&d.driver];
            let body = self.alloc_object("Device", dev_size + 0x40, d.name.as_deref())?;
            self.put(body, dvo, "Type", 3)?;
            self.put(body, dvo, "Size", dev_size)?;
            self.put(body, dvo, "ReferenceCount", 1)?;
            self.put(body, dvo, "DriverObject", self.drivers[di])?;
            self.put(body, dvo, "DeviceExtension", body + dev_size)?;
            let fs = d.driver.starts_with("\\FileSystem\\");
            // FILE_DEVICE_DISK_FILE_SYSTEM or FILE_DEVICE_DISK.
            self.put(body, dvo, "DeviceType", if fs { 8 } else { 7 })?;
            self.put(body, dvo, "StackSize", 4)?;
            self.put(body, dvo, "AlignmentRequirement", 1)?;
            // Link into the driver's device list (newest first).
            match last_dev.get(&di) {
                Some(prev) => self.put(body, dvo, "NextDevice", *prev)?,
                None => self.put(body, dvo, "NextDevice", 0)?,
            }
            last_dev.insert(di, body);
            self.put(self.drivers[di], dro, "DeviceObject", body)?;
            self.devices.push(body);
        }
        let fsize = self.size(fo)?;
        let file_obj = |b: &mut Builder<'_>, dev: u64, name: &str| -> Result<u64, Error> {
            let f = b.alloc_object("File", fsize, None)?;
            b.put(f, fo, "Type", 5)?;
            b.put(f, fo, "Size", fsize)?;
            b.put(f, fo, "DeviceObject", dev)?;
            // FO_SYNCHRONOUS_IO | FO_CACHE_SUPPORTED | FO_HANDLE_CREATED.
            b.put(f, fo, "Flags", 0x4_0042)?;
            b.put_opt(f, fo, "ReadAccess", 1)?;
            b.put_opt(f, fo, "SharedRead", 1)?;
            b.unicode_string(f + b.off(fo, "FileName")?, name, *b"IoNm")?;
            let wl = f + b.off(fo, "IrpList")?;
            b.list_init(wl);
            let ev = f + b.off(fo, "Event")?;
            b.dispatcher_header(ev, "EventNotificationObject", 0, "_KEVENT")?;
            let lk = f + b.off(fo, "Lock")?;
            b.dispatcher_header(lk, "EventSynchronizationObject", 1, "_KEVENT")?;
            Ok(f)
        };
        for f in &sc.files {
            let dev = self.devices[self.ix.devices[&f.device]];
            let a = file_obj(self, dev, &f.name)?;
            self.files.push(a);
        }
        for (i, f) in sc.files.iter().enumerate() {
            if let Some(r) = &f.related {
                let ra = self.files[self.ix.files[r]];
                self.put(self.files[i], fo, "RelatedFileObject", ra)?;
            }
        }
        for s in &sc.file_sets {
            let dev = self.devices[self.ix.devices[&s.device]];
            let mut v = Vec::with_capacity(s.count as usize);
            for n in 0..s.count {
                let name = set_member_name(&s.pattern, s.id.as_str(), n);
                v.push(file_obj(self, dev, &name)?);
            }
            self.set_files.push(v);
        }
        // IRPs.
        let irp_t = "_IRP";
        let isl = "_IO_STACK_LOCATION";
        let irp_size = self.size(irp_t)?;
        let isl_size = self.size(isl)?;
        for irp in &sc.irps {
            let n = irp.stack.len() as u64;
            let total = irp_size + n * isl_size;
            let (_, a) = self.pool_alloc(total, *b"Irp ")?;
            self.put(a, irp_t, "Type", 6)?;
            self.put(a, irp_t, "Size", total)?;
            self.put(a, irp_t, "StackCount", n)?;
            // Location k (1-based) is used by the driver k-th from the
            // bottom: the scenario's stack[0] (top) is location n.
            let cur = n - irp.current as u64;
            self.put(a, irp_t, "CurrentLocation", cur)?;
            self.put(
                a,
                irp_t,
                "Tail.Overlay.CurrentStackLocation",
                a + irp_size + (cur - 1) * isl_size,
            )?;
            let ti = self.ix.threads[&irp.thread];
            let t = self.threads[ti].ethread;
            self.put(a, irp_t, "Tail.Overlay.Thread", t)?;
            self.put(a, irp_t, "Flags", 0x60884)?;
            self.put(a, irp_t, "RequestorMode", 1)?;
            let irpl = t + self.off("_ETHREAD", "IrpList")?;
            self.list_add(irpl, a + self.off(irp_t, "ThreadListEntry")?);
            let mut top_file = 0;
            for (k, s) in irp.stack.iter().enumerate() {
                let loc = n - k as u64;
                let at = a + irp_size + (loc - 1) * isl_size;
                let major = IRP_MAJORS.iter().position(|m| *m == s.major).unwrap_or(0) as u64;
                self.put(at, isl, "MajorFunction", major)?;
                self.put(at, isl, "MinorFunction", s.minor as u64)?;
                let dev = self.devices[self.ix.devices[&s.device]];
                self.put(at, isl, "DeviceObject", dev)?;
                if let Some(fid) = &s.file {
                    let fa = self.file_address(fid)?;
                    self.put(at, isl, "FileObject", fa)?;
                    if top_file == 0 {
                        top_file = fa;
                    }
                }
                if k > 0 {
                    // The upper driver set a completion routine.
                    let upper = &sc.devices[self.ix.devices[&irp.stack[k - 1].device]].driver;
                    let short = upper.rsplit('\\').next().unwrap_or(upper);
                    let cr = self.code_address(&format!("{short}!CompletionRoutine"));
                    self.put(at, isl, "CompletionRoutine", cr)?;
                    self.put(at, isl, "Control", 0xE0)?;
                }
            }
            self.put_opt(a, irp_t, "Tail.Overlay.OriginalFileObject", top_file)?;
            self.threads[ti].irps.push(a);
            self.irps.push(a);
        }
        Ok(())
    }

    fn file_address(&self, id: &str) -> Result<u64, Error> {
        match self.ix.file(self.sc, id) {
            Some(FileRef::Single(i)) => Ok(self.files[i]),
            Some(FileRef::Member(s, n)) => Ok(self.set_files[s][n as usize]),
            None => Err(Error::ScenarioField {
                field: "files".into(),
                problem: format!("no file `{id}`"),
            }),
        }
    }

    fn waits(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let et = "_ETHREAD";
        let wb = "_KWAIT_BLOCK";
        let wb_size = self.size(wb)?;
        let now = sc.machine.tick_count;
        for (ti, t) in sc.threads.iter().enumerate() {
            let e = self.threads[ti].ethread;
            let Some(w) = &t.wait else {
                // Ready and running threads last ran (or were readied) a
                // few ticks ago.
                let since = now - self.rng.gen_range(0..8u64).min(now);
                self.put(e, et, "Tcb.WaitTime", since & 0xFFFF_FFFF)?;
                continue;
            };
            let since = match (w.since, w.ticks_ago) {
                (Some(s), _) => s,
                (_, Some(a)) => now - a,
                _ => now,
            };
            self.put(e, et, "Tcb.WaitTime", since & 0xFFFF_FFFF)?;
            let mut objs = Vec::new();
            let mut first_kind = LockKind::Event;
            for (k, o) in w.on.iter().enumerate() {
                let li = self.ix.locks[o];
                let l = &sc.locks[li];
                if k == 0 {
                    first_kind = l.kind;
                }
                let obj = match l.kind {
                    LockKind::Eresource if w.exclusive => self.locks[li].exclusive_waiters_obj,
                    LockKind::Eresource => self.locks[li].shared_wait_object(ti),
                    _ => self.locks[li].address,
                };
                objs.push(obj);
            }
            let reason = w.reason.clone().unwrap_or_else(|| {
                match first_kind {
                    LockKind::Eresource => "WrResource",
                    LockKind::Mutant => "UserRequest",
                    _ => "Executive",
                }
                .to_string()
            });
            let rv = self.l.enum_value("_KWAIT_REASON", &reason).ok_or_else(|| {
                Error::ScenarioField {
                    field: format!("threads[{ti}].wait.reason"),
                    problem: format!("`{reason}` does not exist in this build"),
                }
            })?;
            self.put(e, et, "Tcb.WaitReason", rv as u64)?;
            self.put_opt(e, et, "Tcb.WaitMode", 0)?;
            self.put_opt(e, et, "Tcb.WaitIrql", 0)?;
            self.put_opt(e, et, "Tcb.WaitBlockCount", objs.len() as u64)?;
            let active = self
                .l
                .enum_value("_KWAIT_BLOCK_STATE", "WaitBlockActive")
                .unwrap_or(2);
            let n = objs.len() as u64;
            let mut blocks = Vec::new();
            for (k, obj) in objs.iter().enumerate() {
                let off =
                    self.elem(et, "Tcb.WaitBlock", k as u64)
                        .map_err(|_| Error::ScenarioField {
                            field: format!("threads[{ti}].wait.on"),
                            problem: "more objects than this build has wait blocks".into(),
                        })?;
                let b = e + off;
                self.put(b, wb, "Thread", e)?;
                self.put(b, wb, "Object", *obj)?;
                self.put(b, wb, "WaitKey", k as u64)?;
                // WaitAny = 1.
                self.put(b, wb, "WaitType", 1)?;
                self.put_opt(b, wb, "BlockState", active as u64)?;
                let wl = obj + self.off("_DISPATCHER_HEADER", "WaitListHead")?;
                self.list_add(wl, b + self.off(wb, "WaitListEntry")?);
                blocks.push(b);
            }
            let _ = wb_size;
            if self.has(wb, "NextWaitBlock") {
                for k in 0..blocks.len() {
                    let next = blocks[(k + 1) % blocks.len()];
                    self.put(blocks[k], wb, "NextWaitBlock", next)?;
                }
            }
            let _ = n;
            self.put(e, et, "Tcb.WaitBlockList", blocks[0])?;
            self.threads[ti].waits_on = objs;
        }
        Ok(())
    }

    /// The entry pages of a `_HANDLE_TABLE` at `table`: `low_tables` pages
    /// of entries, behind one page of pointers when there is more than one
    /// (TableCode level 1), and the header fields that describe them. Shared
    /// by PspCidTable and every process's handle table.
    fn handle_table_pages(
        &mut self,
        table: u64,
        low_tables: u64,
        per_page: u64,
        handle_count: u64,
    ) -> Result<Vec<u64>, Error> {
        let ht = "_HANDLE_TABLE";
        let mut pages = Vec::new();
        for _ in 0..low_tables {
            pages.push(self.alloc_pages(PAGE_SIZE)?);
        }
        let code = if low_tables == 1 {
            pages[0]
        } else {
            let mid = self.alloc_pages(PAGE_SIZE)?;
            for (k, p) in pages.iter().enumerate() {
                self.sp.write(mid + k as u64 * 8, &p.to_le_bytes())?;
            }
            mid | 1
        };
        self.put(table, ht, "TableCode", code)?;
        self.put(
            table,
            ht,
            "NextHandleNeedingPool",
            low_tables * per_page * 4,
        )?;
        self.put_opt(table, ht, "HandleCount", handle_count)?;
        Ok(pages)
    }

    /// PspCidTable: a handle table indexed by PID/TID whose entries point
    /// at the process and thread bodies (not their headers).
    fn cid_table(&mut self) -> Result<(), Error> {
        let Some(r) = self.l.symbol("PspCidTable") else {
            return Ok(());
        };
        let ht = "_HANDLE_TABLE";
        let hte = "_HANDLE_TABLE_ENTRY";
        let es = self.size(hte)?;
        let per_page = PAGE_SIZE / es;
        let mut ids: Vec<(u64, u64)> = Vec::new();
        for (i, p) in self.sc.processes.iter().enumerate() {
            ids.push((p.pid, self.procs[i].eprocess));
        }
        for t in &self.threads {
            ids.push((t.tid, t.ethread));
        }
        let max_index = ids.iter().map(|x| x.0 / 4).max().unwrap_or(0);
        let low_tables = (max_index + 1).div_ceil(per_page);
        if low_tables > 512 {
            return Err(Error::Capacity {
                problem: format!("PID/TID {:#x} too large for PspCidTable", max_index * 4),
            });
        }
        let (_, table) = self.pool_alloc(self.size(ht)?, *b"PsCi")?;
        let var = self.kernel_base + r;
        self.map_image(var, 8)?;
        self.sp.write(var, &table.to_le_bytes())?;
        let pages = self.handle_table_pages(table, low_tables, per_page, ids.len() as u64)?;
        self.list_init(table + self.off(ht, "HandleTableList")?);
        let win7 = self.has(hte, "Object");
        for (id, body) in ids {
            let index = id / 4;
            let at = pages[(index / per_page) as usize] + (index % per_page) * es;
            if win7 {
                self.put(at, hte, "Object", body | 1)?;
            } else {
                self.put(at, hte, "ObjectPointerBits", (body >> 4) & ((1 << 44) - 1))?;
                self.put_opt(at, hte, "Unlocked", 1)?;
            }
        }
        Ok(())
    }

    fn handles(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let mut per_proc: Vec<Vec<(u64, u32)>> = vec![Vec::new(); sc.processes.len()];
        for h in &sc.handles {
            let pi = self.ix.pids[&h.pid];
            for f in &h.files {
                per_proc[pi].push((self.file_address(f)?, 0x12_019F));
            }
            if let Some(s) = &h.file_set {
                let si = self.ix.file_sets[s];
                let [a, b] = h.range.unwrap_or([0, sc.file_sets[si].count]);
                for n in a..b {
                    per_proc[pi].push((self.set_files[si][n as usize], 0x12_019F));
                }
            }
            for p in &h.processes {
                per_proc[pi].push((self.procs[self.ix.pids[p]].eprocess, 0x1F_0FFF));
            }
            for t in &h.threads {
                per_proc[pi].push((self.threads[self.ix.threads[t]].ethread, 0x1F_03FF));
            }
            for l in &h.locks {
                per_proc[pi].push((self.locks[self.ix.locks[l]].address, 0x1F_0003));
            }
        }
        let hte = "_HANDLE_TABLE_ENTRY";
        let es = self.size(hte)?;
        let per_page = PAGE_SIZE / es;
        let win7 = self.has(hte, "Object");
        for (pi, list) in per_proc.into_iter().enumerate() {
            let table = self.procs[pi].handle_table;
            // Slot 0 of each low-level table is never a handle.
            let mut slots = Vec::with_capacity(list.len());
            let mut next = 1u64;
            for _ in 0..list.len() {
                if next % per_page == 0 {
                    next += 1;
                }
                slots.push(next);
                next += 1;
            }
            let low_tables = next.div_ceil(per_page).max(1);
            if low_tables > 512 {
                return Err(Error::Capacity {
                    problem: format!(
                        "process {} holds {} handles; at most {} fit a 2-level table",
                        sc.processes[pi].pid,
                        list.len(),
                        512 * (per_page - 1)
                    ),
                });
            }
            let pages = self.handle_table_pages(table, low_tables, per_page, list.len() as u64)?;
            let mut recs = Vec::new();
            for (k, (body, access)) in list.into_iter().enumerate() {
                let slot = slots[k];
                let page = pages[(slot / per_page) as usize];
                let at = page + (slot % per_page) * es;
                let header = self.object_header(body)?;
                if win7 {
                    // Object points at the OBJECT_HEADER; bit 0 = unlocked.
                    self.put(at, hte, "Object", header | 1)?;
                    self.put(at, hte, "GrantedAccess", access as u64)?;
                } else {
                    self.put(
                        at,
                        hte,
                        "ObjectPointerBits",
                        (header >> 4) & ((1 << 44) - 1),
                    )?;
                    self.put_opt(at, hte, "Unlocked", 1)?;
                    self.put_opt(at, hte, "RefCnt", 0x7FFF)?;
                    self.put(at, hte, "GrantedAccessBits", access as u64)?;
                }
                self.add_handle_ref(header);
                let handle = (slot / per_page) * per_page * 4 + (slot % per_page) * 4;
                recs.push((body, handle, access));
            }
            self.procs[pi].handles = recs;
        }
        Ok(())
    }

    fn object_counts(&mut self) -> Result<(), Error> {
        let oh = "_OBJECT_HEADER";
        for o in self.objects.clone() {
            self.put(o.header, oh, "HandleCount", o.handles as u64)?;
            self.put(o.header, oh, "PointerCount", 1 + o.handles as u64 * 2)?;
        }
        Ok(())
    }

    fn globals(&mut self) -> Result<(), Error> {
        let n = self.sc.cpus.len() as u64;
        let sys = self.procs[self.ix.pids[&4]].eprocess;
        let u32_globals = [
            ("KeNumberProcessors", n),
            ("KeMaximumIncrement", self.sc.machine.max_increment as u64),
            ("KeMinimumIncrement", 10_000),
            ("NtBuildNumber", self.win.build as u64 | 0xF000_0000),
            ("CmNtCSDVersion", (self.win.service_pack as u64) << 8),
            ("NtMajorVersion", self.win.major as u64),
            ("NtMinorVersion", self.win.minor as u64),
        ];
        for (s, v) in u32_globals {
            if let Some(r) = self.l.symbol(s) {
                let va = self.kernel_base + r;
                self.map_image(va, 4)?;
                self.sp.write(va, &(v as u32).to_le_bytes())?;
            }
        }
        let pfn_db = match self.win.addresses {
            AddressStyle::Win7 => 0xFFFF_FA80_0000_0000,
            AddressStyle::Win81 => 0xFFFF_E000_0000_0000 - 0x10_0000_0000,
            AddressStyle::Win10 => {
                0xFFFF_A000_0000_0000 + self.rng.gen_range(0..0x1000u64) * 0x80_0000_0000 / 0x100
            }
        } & !0xFFF;
        let u64_globals = [
            ("MmPfnDatabase", pfn_db),
            ("PsInitialSystemProcess", sys),
            ("PsIdleProcess", self.idle_process),
            ("MmNumberOfPhysicalPages", self.ram_size / PAGE_SIZE),
            ("MmHighestUserAddress", 0x7FF_FFFE_FFFF),
            (
                "MmSystemRangeStart",
                0xFFFF_0800_0000_0000 | 0xFFFF_8000_0000_0000,
            ),
            ("MmUserProbeAddress", 0x7FF_FFFF_0000),
        ];
        for (s, v) in u64_globals {
            if let Some(r) = self.l.symbol(s) {
                let va = self.kernel_base + r;
                self.map_image(va, 8)?;
                self.sp.write(va, &v.to_le_bytes())?;
            }
        }
        // KiProcessorBlock: KPRCB pointers.
        let kpb = self.sym("KiProcessorBlock")?;
        self.map_image(kpb, 8 * n)?;
        for (i, (_, prcb)) in self.kpcrs.clone().iter().enumerate() {
            self.sp.write(kpb + i as u64 * 8, &prcb.to_le_bytes())?;
        }
        // NtBuildLab string.
        let lab = self.sym("NtBuildLab")?;
        let mut s = self.win.build_lab.as_bytes().to_vec();
        s.push(0);
        self.map_image(lab, s.len() as u64)?;
        self.sp.write(lab, &s)?;
        // ObTypeIndexTable.
        let oti = self.sym("ObTypeIndexTable")?;
        let count = self.type_objects.len() as u64 + 2;
        self.map_image(oti, count * 8 + 8)?;
        self.sp.write(oti + 8, &0xBAD0_B0B0u64.to_le_bytes())?;
        for (i, t) in self.type_objects.clone().iter().enumerate() {
            self.sp.write(oti + (i as u64 + 2) * 8, &t.to_le_bytes())?;
        }
        if let Some(r) = self.l.symbol("ObTypeObjectType") {
            let va = self.kernel_base + r;
            self.map_image(va, 8)?;
            let t0 = self.type_objects[0];
            self.sp.write(va, &t0.to_le_bytes())?;
        }
        if self.cookie != 0 {
            let c = self.sym("ObHeaderCookie")?;
            self.map_image(c, 4)?;
            self.sp.write(c, &[self.cookie])?;
        }
        // ObpInfoMaskToOffset[mask] = bytes of the optional headers whose
        // bits are set in mask.
        let om = self.sym("ObpInfoMaskToOffset")?;
        self.map_image(om, 256)?;
        let hdrs = self.optional_headers();
        let mut tab = [0u8; 256];
        for (mask, slot) in tab.iter_mut().enumerate() {
            let s: u64 = hdrs
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, h)| h.1)
                .sum();
            *slot = s as u8;
        }
        self.sp.write(om, &tab)?;
        // KdVersionBlock.
        let kv = self.sym("KdVersionBlock")?;
        let gv = "_DBGKD_GET_VERSION64";
        self.map_image(kv, self.size(gv)?)?;
        self.put(kv, gv, "MajorVersion", 0xF)?;
        self.put(kv, gv, "MinorVersion", self.win.build as u64)?;
        self.put(kv, gv, "ProtocolVersion", 6)?;
        self.put_opt(kv, gv, "KdSecondaryVersion", 2)?;
        self.put(kv, gv, "Flags", 0x47)?;
        self.put(kv, gv, "MachineType", 0x8664)?;
        self.put(kv, gv, "MaxPacketType", 0xC)?;
        self.put(kv, gv, "MaxStateChange", 3)?;
        self.put(kv, gv, "MaxManipulate", 0x33)?;
        self.put(kv, gv, "KernBase", self.kernel_base)?;
        let pslm = self.sym("PsLoadedModuleList")?;
        self.put(kv, gv, "PsLoadedModuleList", pslm)?;
        // KdDebuggerDataBlock (not encoded: as with a debugger enabled).
        let kd = self.sym("KdDebuggerDataBlock")?;
        self.map_image(kd, kdbg::STRUCT_SIZE as u64)?;
        if let Some(r) = self.l.symbol("KdpDebuggerDataListHead") {
            let h = self.kernel_base + r;
            self.map_image(h, 16)?;
            self.put(kv, gv, "DebuggerDataList", h)?;
            self.sp.write(h, &kd.to_le_bytes())?;
            self.sp.write(h + 8, &kd.to_le_bytes())?;
            self.sp.write(kd + kdbg::LIST, &h.to_le_bytes())?;
            self.sp.write(kd + kdbg::LIST + 8, &h.to_le_bytes())?;
        }
        self.sp.write(kd + kdbg::OWNER_TAG, b"KDBG")?;
        self.sp
            .write(kd + kdbg::SIZE, &kdbg::STRUCT_SIZE.to_le_bytes())?;
        let mut q = vec![
            (kdbg::KERN_BASE, self.kernel_base),
            (kdbg::PS_LOADED_MODULE_LIST, pslm),
            (
                kdbg::PS_ACTIVE_PROCESS_HEAD,
                self.sym("PsActiveProcessHead")?,
            ),
            (
                kdbg::EXP_SYSTEM_RESOURCES_LIST,
                self.sym("ExpSystemResourcesList")?,
            ),
            (kdbg::MM_PFN_DATABASE, self.sym("MmPfnDatabase")?),
            (kdbg::NT_BUILD_LAB, lab),
            (kdbg::KI_PROCESSOR_BLOCK, kpb),
            (kdbg::CM_NT_CSD_VERSION, self.sym("CmNtCSDVersion")?),
            (kdbg::MM_PAGE_SIZE, PAGE_SIZE),
            (
                kdbg::MM_HIGHEST_USER_ADDRESS,
                self.sym("MmHighestUserAddress").unwrap_or(0),
            ),
            (
                kdbg::MM_SYSTEM_RANGE_START,
                self.sym("MmSystemRangeStart").unwrap_or(0),
            ),
            (
                kdbg::MM_USER_PROBE_ADDRESS,
                self.sym("MmUserProbeAddress").unwrap_or(0),
            ),
            (
                kdbg::MM_NUMBER_OF_PHYSICAL_PAGES,
                self.sym("MmNumberOfPhysicalPages").unwrap_or(0),
            ),
            (
                kdbg::KE_TIME_INCREMENT,
                self.sym("KeMaximumIncrement").unwrap_or(0),
            ),
            (
                kdbg::OBP_TYPE_OBJECT_TYPE,
                self.sym("ObTypeObjectType").unwrap_or(0),
            ),
        ];
        if let Ok(c) = self.sym("PspCidTable") {
            q.push((kdbg::PSP_CID_TABLE, c));
        }
        for (o, v) in q {
            self.sp.write(kd + o, &v.to_le_bytes())?;
        }
        // The u16 Offset*/Size* fields debuggers use without symbols.
        let et = "_ETHREAD";
        let offs: Vec<u64> = vec![
            self.off(et, "Tcb.NextProcessor").unwrap_or(0),
            self.off(et, "Tcb.Teb")?,
            self.off(et, "Tcb.KernelStack")?,
            self.off(et, "Tcb.InitialStack")?,
            self.off(et, "Tcb.ApcState.Process")?,
            self.off(et, "Tcb.State")?,
            0,
            0,
            self.size("_EPROCESS")?,
            self.off("_EPROCESS", "Peb")?,
            self.off("_EPROCESS", "InheritedFromUniqueProcessId")?,
            self.off("_EPROCESS", "Pcb.DirectoryTableBase")?,
            self.size("_KPRCB")?,
            self.off("_KPRCB", "DpcRoutineActive").unwrap_or(0),
            self.off("_KPRCB", "CurrentThread")?,
            self.off("_KPRCB", "MHz").unwrap_or(0),
            self.off("_KPRCB", "CpuType").unwrap_or(0),
            self.off("_KPRCB", "VendorString").unwrap_or(0),
            self.off("_KPRCB", "ProcessorState").unwrap_or(0),
            self.off("_KPRCB", "Number")?,
            self.size(et)?,
        ];
        for (i, v) in offs.iter().enumerate() {
            self.sp.write(
                kd + kdbg::OFFSETS + i as u64 * 2,
                &(*v as u16).to_le_bytes(),
            )?;
        }
        Ok(())
    }

    fn process_address_spaces(&mut self) -> Result<(), Error> {
        let kuser_pfn = self
            .sp
            .kernel_phys(0xFFFF_F780_0000_0000)
            .ok_or_else(|| missing("KUSER_SHARED_DATA mapping"))?
            / PAGE_SIZE;
        let sys = self.sp.pml4;
        let kernel_half: Vec<u64> = (256..512).map(|i| self.sp.pml4_entry(sys, i)).collect();
        for p in self.procs.clone() {
            if p.dtb_pfn == sys {
                continue;
            }
            for (k, e) in kernel_half.iter().enumerate() {
                self.sp.set_pml4_entry(p.dtb_pfn, 256 + k as u64, *e);
            }
            self.sp.set_pml4_entry(
                p.dtb_pfn,
                self.self_ref,
                (p.dtb_pfn * PAGE_SIZE) | space::PTE_KERNEL_TABLE,
            );
            self.sp.map(
                &mut self.rng,
                p.dtb_pfn,
                0x7FFE_0000,
                kuser_pfn,
                space::PTE_USER_RO,
                space::PTE_USER_TABLE,
            )?;
        }
        Ok(())
    }

    // ----- ground truth -----------------------------------------------------

    fn compute_truth(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let m = &sc.machine;
        let mut t = GroundTruth {
            scenario: sc.name.clone(),
            ..Default::default()
        };
        t.kernel = KernelTruth {
            kernel_base: self.kernel_base,
            dtb: self.sp.pml4 * PAGE_SIZE,
            build_number: self.win.build,
            version: (self.win.major, self.win.minor),
            pdb_guid: self.l.pdb_identity().map(|p| p.0).unwrap_or_default(),
            pdb_age: self.l.pdb_identity().map(|p| p.1).unwrap_or_default(),
            number_processors: sc.cpus.len() as u32,
            tick_count: m.tick_count,
            max_increment: m.max_increment,
            cpus: self
                .kpcrs
                .iter()
                .enumerate()
                .map(|(i, (kpcr, prcb))| CpuTruth {
                    index: i as u32,
                    kpcr: *kpcr,
                    kprcb: *prcb,
                    current_thread: if sc.cpus[i].runs == "idle" {
                        self.idle_threads[i]
                    } else {
                        self.threads[self.ix.threads[&sc.cpus[i].runs]].ethread
                    },
                })
                .collect(),
        };
        for (pi, p) in sc.processes.iter().enumerate() {
            let r = &self.procs[pi];
            t.processes.push(ProcessTruth {
                address: r.eprocess,
                pid: p.pid,
                ppid: p.parent,
                name: p.name.chars().take(15).collect(),
                session: p.session,
                create_time: r.create_time,
                thread_count: r.threads.len() as u32,
                dtb: r.dtb_pfn * PAGE_SIZE,
            });
        }
        let secs_per_tick = m.max_increment as f64 / 1e7;
        for (ti, th) in sc.threads.iter().enumerate() {
            let r = &self.threads[ti];
            let wait_time = self
                .sp
                .read(r.ethread + self.off("_ETHREAD", "Tcb.WaitTime")?, 4);
            let wt = u32::from_le_bytes(wait_time.try_into().unwrap_or([0; 4])) as u64;
            let waiting = th.state == ThreadState::Waiting;
            let ticks = m.tick_count.saturating_sub(wt);
            t.threads.push(ThreadTruth {
                address: r.ethread,
                tid: r.tid,
                pid: th.pid,
                state: match th.state {
                    ThreadState::Running => "Running",
                    ThreadState::Ready => "Ready",
                    ThreadState::Waiting => "Waiting",
                }
                .into(),
                wait_reason: th.wait.as_ref().map(|w| {
                    w.reason.clone().unwrap_or_else(|| {
                        match sc.locks[self.ix.locks[&w.on[0]]].kind {
                            LockKind::Eresource => "WrResource",
                            LockKind::Mutant => "UserRequest",
                            _ => "Executive",
                        }
                        .into()
                    })
                }),
                wait_time: wt,
                wait_ticks: waiting.then_some(ticks),
                wait_seconds: waiting.then_some(ticks as f64 * secs_per_tick),
                cpu: r.cpu,
                waits_on: r.waits_on.clone(),
                irps: r.irps.clone(),
                start_address: r.start,
                stack: r.stack.clone(),
            });
            let _ = (r.stack_base, r.kernel_stack);
        }
        t.modules = self.modules.clone();
        t.module_pdbs = self.module_pdbs.clone();
        for (i, l) in sc.locks.iter().enumerate() {
            let addr = self.locks[i].address;
            let waiters: Vec<LockParty> = sc
                .threads
                .iter()
                .enumerate()
                .filter(|(_, th)| th.wait.as_ref().is_some_and(|w| w.on.contains(&l.id)))
                .map(|(ti, th)| LockParty {
                    thread: self.threads[ti].ethread,
                    exclusive: th.wait.as_ref().is_some_and(|w| w.exclusive)
                        || l.kind != LockKind::Eresource,
                })
                .collect();
            let owner_addr = |o: &String| self.threads[self.ix.threads[o]].ethread;
            match l.kind {
                LockKind::Eresource => {
                    let mut owners: Vec<LockParty> = l
                        .owner
                        .iter()
                        .map(|o| LockParty {
                            thread: owner_addr(o),
                            exclusive: true,
                        })
                        .collect();
                    owners.extend(l.shared_owners.iter().map(|o| LockParty {
                        thread: owner_addr(o),
                        exclusive: false,
                    }));
                    let (sh, ex) = self.resource_waiters(i);
                    t.eresources.push(EresourceTruth {
                        address: addr,
                        name: l.id.clone(),
                        active_count: owners.len() as u32,
                        exclusive: l.owner.is_some(),
                        contention_count: l.contention.unwrap_or((sh.len() + ex.len()) as u32 * 3),
                        owners,
                        waiters,
                        shared_waiters: self.locks[i].shared_waiters_obj,
                        shared_wait_events: self.locks[i].shared_wait_events(),
                        exclusive_waiters: self.locks[i].exclusive_waiters_obj,
                    });
                }
                kind => t.dispatcher_objects.push(DispatcherTruth {
                    address: addr,
                    name: l.id.clone(),
                    kind: match kind {
                        LockKind::Mutant => "Mutant",
                        LockKind::Event => "Event",
                        _ => "Semaphore",
                    }
                    .into(),
                    owner: l.owner.as_ref().map(owner_addr),
                    waiters: waiters.iter().map(|w| w.thread).collect(),
                }),
            }
        }
        // Files.
        let dev_name = |b: &Builder<'_>, dev_id: &str| -> String {
            let d = &sc.devices[b.ix.devices[dev_id]];
            d.name
                .as_ref()
                .map(|n| format!("\\Device\\{n}"))
                .unwrap_or_default()
        };
        let mut file_truth: HashMap<u64, FileTruth> = HashMap::new();
        for (i, f) in sc.files.iter().enumerate() {
            let mut path = f.name.clone();
            let mut cur = f.related.clone();
            let mut guard = 0;
            while let (Some(r), true) = (cur.clone(), guard < 32) {
                let rf = &sc.files[self.ix.files[&r]];
                if !path.starts_with('\\') {
                    path = format!("{}\\{}", rf.name.trim_end_matches('\\'), path);
                }
                cur = rf.related.clone();
                guard += 1;
            }
            let ft = FileTruth {
                address: self.files[i],
                name: f.name.clone(),
                path,
                device: dev_name(self, &f.device),
            };
            file_truth.insert(ft.address, ft.clone());
            t.files.push(ft);
        }
        for (si, s) in sc.file_sets.iter().enumerate() {
            for n in 0..s.count {
                let name = set_member_name(&s.pattern, &s.id, n);
                let ft = FileTruth {
                    address: self.set_files[si][n as usize],
                    name: name.clone(),
                    path: name,
                    device: dev_name(self, &s.device),
                };
                file_truth.insert(ft.address, ft.clone());
                t.files.push(ft);
            }
        }
        // IRPs.
        for (i, irp) in sc.irps.iter().enumerate() {
            let n = irp.stack.len() as u32;
            let stack = irp
                .stack
                .iter()
                .map(|s| {
                    let d = &sc.devices[self.ix.devices[&s.device]];
                    IrpStackTruth {
                        major: format!("IRP_MJ_{}", s.major),
                        minor: s.minor,
                        device: self.devices[self.ix.devices[&s.device]],
                        driver: d.driver.clone(),
                        file_object: s
                            .file
                            .as_ref()
                            .and_then(|f| self.file_address(f).ok())
                            .unwrap_or(0),
                    }
                })
                .collect();
            t.irps.push(IrpTruth {
                address: self.irps[i],
                thread: self.threads[self.ix.threads[&irp.thread]].ethread,
                stack_count: n,
                current_location: n - irp.current as u32,
                stack,
            });
        }
        // Handles.
        let type_of = |b: &Builder<'_>, body: u64| -> (&'static str, String) {
            if let Some(f) = file_truth.get(&body) {
                return ("File", format!("{}{}", f.device, f.name));
            }
            if let Some(pi) = b.procs.iter().position(|p| p.eprocess == body) {
                let p = &sc.processes[pi];
                let name: String = p.name.chars().take(14).collect();
                return ("Process", format!("{} Pid {}", name, p.pid));
            }
            if let Some(ti) = b.threads.iter().position(|x| x.ethread == body) {
                return (
                    "Thread",
                    format!("Tid {} Pid {}", b.threads[ti].tid, sc.threads[ti].pid),
                );
            }
            if let Some(li) = b.locks.iter().position(|x| x.address == body) {
                let k = match sc.locks[li].kind {
                    LockKind::Mutant => "Mutant",
                    LockKind::Event => "Event",
                    _ => "Semaphore",
                };
                return (k, String::new());
            }
            ("Unknown", String::new())
        };
        for (pi, p) in sc.processes.iter().enumerate() {
            for (body, handle, access) in self.procs[pi].handles.clone() {
                let (ty, name) = type_of(self, body);
                t.handles.push(HandleTruth {
                    pid: p.pid,
                    handle,
                    object: body,
                    type_name: ty.into(),
                    access,
                    name,
                });
            }
        }
        t.verdict = self.verdict(&t, &file_truth);
        self.truth = t;
        Ok(())
    }

    /// The verdict a correct analyzer reaches, from the scenario's wait
    /// graph: thread -> lock -> owners.
    // Indexes run over parallel arrays (edges, colors, scenario threads).
    #[allow(clippy::needless_range_loop)]
    fn verdict(&self, t: &GroundTruth, files: &HashMap<u64, FileTruth>) -> VerdictTruth {
        let sc = self.sc;
        let n = sc.threads.len();
        let owners_of = |lock: &str| -> Vec<usize> {
            let l = &sc.locks[self.ix.locks[lock]];
            l.owner
                .iter()
                .chain(l.shared_owners.iter())
                .map(|o| self.ix.threads[o])
                .collect()
        };
        // edges[t] = (lock id, owner) for each owned lock it waits on.
        let edges: Vec<Vec<(String, usize)>> = (0..n)
            .map(|ti| {
                sc.threads[ti]
                    .wait
                    .iter()
                    .flat_map(|w| w.on.iter())
                    .flat_map(|lk| owners_of(lk).into_iter().map(move |o| (lk.clone(), o)))
                    .filter(|(_, o)| *o != ti)
                    .collect()
            })
            .collect();
        let secs = |ti: usize| t.threads[ti].wait_seconds.unwrap_or(0.0);
        let lock_addr = |id: &str| self.locks[self.ix.locks[id]].address;
        let mut findings = Vec::new();
        // Cycles (deadlocks): DFS with colors.
        let mut in_cycle = vec![false; n];
        let mut color = vec![0u8; n];
        let mut stack: Vec<(usize, String)> = Vec::new();
        fn dfs(
            u: usize,
            edges: &[Vec<(String, usize)>],
            color: &mut [u8],
            stack: &mut Vec<(usize, String)>,
            cycles: &mut Vec<Vec<(usize, String)>>,
        ) {
            color[u] = 1;
            for (lk, v) in &edges[u] {
                stack.push((u, lk.clone()));
                if color[*v] == 1 {
                    if let Some(pos) = stack.iter().position(|(x, _)| x == v) {
                        cycles.push(stack[pos..].to_vec());
                    }
                } else if color[*v] == 0 {
                    dfs(*v, edges, color, stack, cycles);
                }
                stack.pop();
            }
            color[u] = 2;
        }
        let mut cycles = Vec::new();
        for u in 0..n {
            if color[u] == 0 {
                dfs(u, &edges, &mut color, &mut stack, &mut cycles);
            }
        }
        // Who is blocked (transitively) behind a set of threads.
        let blocked_behind = |targets: &HashSet<usize>| -> Vec<usize> {
            let mut out: HashSet<usize> = HashSet::new();
            let mut changed = true;
            while changed {
                changed = false;
                for u in 0..n {
                    if targets.contains(&u) || out.contains(&u) {
                        continue;
                    }
                    if edges[u]
                        .iter()
                        .any(|(_, v)| targets.contains(v) || out.contains(v))
                    {
                        out.insert(u);
                        changed = true;
                    }
                }
            }
            let mut v: Vec<usize> = out.into_iter().collect();
            v.sort();
            v
        };
        let proc_names = |ths: &[usize]| -> Vec<String> {
            let mut v: Vec<String> = ths
                .iter()
                .map(|&x| sc.processes[self.ix.pids[&sc.threads[x].pid]].name.clone())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let mut seen_cycles: HashSet<Vec<usize>> = HashSet::new();
        for c in &cycles {
            let mut key: Vec<usize> = c.iter().map(|x| x.0).collect();
            key.sort();
            if !seen_cycles.insert(key) {
                continue;
            }
            for (u, _) in c {
                in_cycle[*u] = true;
            }
            let set: HashSet<usize> = c.iter().map(|x| x.0).collect();
            let blocked = blocked_behind(&set);
            findings.push(FindingTruth {
                kind: "deadlock".into(),
                chain_threads: c.iter().map(|x| self.threads[x.0].ethread).collect(),
                chain_locks: c.iter().map(|x| lock_addr(&x.1)).collect(),
                blocked_threads: blocked.iter().map(|&x| self.threads[x].ethread).collect(),
                blocked_processes: proc_names(&blocked),
                driver: None,
                directory: None,
            });
        }
        // Chains ending at a thread that waits on no owned lock.
        let roots: Vec<usize> = (0..n)
            .filter(|&u| !in_cycle[u] && edges[u].is_empty())
            .filter(|&u| (0..n).any(|w| edges[w].iter().any(|(_, v)| *v == u)))
            .collect();
        let mut worst_stuck = false;
        let mut any_busy = false;
        for r in roots {
            let set: HashSet<usize> = [r].into_iter().collect();
            let blocked = blocked_behind(&set);
            if blocked.iter().all(|&b| in_cycle[b]) {
                continue;
            }
            // Longest chain from a blocked thread to r.
            let mut best: Vec<(usize, String)> = Vec::new();
            for &b in &blocked {
                let mut path = Vec::new();
                let mut cur = b;
                let mut guard = 0;
                while cur != r && guard < n {
                    let Some((lk, v)) = edges[cur]
                        .iter()
                        .find(|(_, v)| *v == r || blocked.contains(v))
                        .cloned()
                    else {
                        break;
                    };
                    path.push((cur, lk));
                    cur = v;
                    guard += 1;
                }
                if cur == r && path.len() > best.len() {
                    best = path;
                }
            }
            let mut chain_threads: Vec<u64> =
                best.iter().map(|x| self.threads[x.0].ethread).collect();
            chain_threads.push(self.threads[r].ethread);
            let chain_locks = best.iter().map(|x| lock_addr(&x.1)).collect();
            let root = &sc.threads[r];
            let oldest = blocked.iter().map(|&b| secs(b)).fold(0.0, f64::max);
            let running = root.state == ThreadState::Running;
            let kind = if running && oldest < 60.0 {
                any_busy = true;
                "busy_owner"
            } else if oldest >= 60.0 {
                worst_stuck = true;
                "stuck"
            } else {
                "contention"
            };
            let (mut driver, mut directory) = (None, None);
            if let Some(irp) = self.threads[r].irps.first() {
                if let Some(it) = t.irps.iter().find(|x| x.address == *irp) {
                    let idx = (it.stack_count - it.current_location) as usize;
                    if let Some(s) = it.stack.get(idx) {
                        driver = Some(s.driver.clone());
                        if let Some(f) = files.get(&s.file_object) {
                            directory = Some(parent_dir(&f.path));
                        }
                    }
                }
            }
            findings.push(FindingTruth {
                kind: kind.into(),
                chain_threads,
                chain_locks,
                blocked_threads: blocked.iter().map(|&x| self.threads[x].ethread).collect(),
                blocked_processes: proc_names(&blocked),
                driver,
                directory,
            });
        }
        let overall = if let Some(e) = &sc.expect {
            e.verdict.clone()
        } else if findings.iter().any(|f| f.kind == "deadlock") {
            "deadlock".into()
        } else if worst_stuck {
            "stuck".into()
        } else if any_busy {
            "busy_owner".into()
        } else if !findings.is_empty() {
            "contention".into()
        } else {
            "healthy".into()
        };
        // Hot directories: directories with at least 100 file objects.
        let mut dirs: BTreeMap<String, u64> = BTreeMap::new();
        for f in &t.files {
            *dirs.entry(parent_dir(&f.path)).or_default() += 1;
        }
        let mut hot: Vec<HotDirTruth> = dirs
            .into_iter()
            .filter(|(_, c)| *c >= 100)
            .map(|(path, file_count)| {
                let mut by_proc: BTreeMap<String, u64> = BTreeMap::new();
                for h in &t.handles {
                    if let Some(f) = files.get(&h.object) {
                        if parent_dir(&f.path) == path {
                            let pn = &sc.processes[self.ix.pids[&h.pid]].name;
                            *by_proc.entry(pn.clone()).or_default() += 1;
                        }
                    }
                }
                HotDirTruth {
                    path,
                    file_count,
                    processes: by_proc.into_iter().collect(),
                }
            })
            .collect();
        hot.sort_by_key(|h| std::cmp::Reverse(h.file_count));
        VerdictTruth {
            overall,
            findings,
            hot_directories: hot,
        }
    }

    // ----- output -------------------------------------------------------------

    fn cpu_state(&self, i: usize) -> LabCpu {
        let sc = self.sc;
        let (kpcr, _) = self.kpcrs[i];
        let (thread_rec, dtb, rip) = if sc.cpus[i].runs == "idle" {
            (
                None,
                self.sp.pml4 * PAGE_SIZE,
                self.code_address("nt!KiIdleLoop"),
            )
        } else {
            let ti = self.ix.threads[&sc.cpus[i].runs];
            let pi = self.ix.pids[&sc.threads[ti].pid];
            let rip = match sc.threads[ti].stack.first() {
                _ if self.threads[ti].start_rip != 0 => self.threads[ti].start_rip,
                Some(f) => self.code_address(f),
                None => self.code_address("nt!KeQueryPerformanceCounter"),
            };
            (Some(ti), self.procs[pi].dtb_pfn * PAGE_SIZE, rip)
        };
        let rsp = match thread_rec {
            Some(ti) if self.threads[ti].start_rsp != 0 => self.threads[ti].start_rsp,
            Some(ti) => self.threads[ti].kernel_stack - 0x48,
            None => {
                let b = self.sp.read(
                    self.idle_threads[i] + self.off("_ETHREAD", "Tcb.InitialStack").unwrap_or(0),
                    8,
                );
                u64::from_le_bytes(b.try_into().unwrap_or([0; 8])).saturating_sub(0x58)
            }
        };
        let mut gpr = [0u64; 16];
        gpr[4] = 0; // rsi
        gpr[6] = match thread_rec {
            Some(ti) if self.threads[ti].start_rbp != 0 => self.threads[ti].start_rbp,
            _ => rsp + 0x30,
        }; // rbp
        gpr[7] = rsp;
        gpr[1] = kpcr; // rbx: KiIdleLoop keeps the PRCB/PCR at hand
        LabCpu {
            gpr,
            rip,
            rflags: 0x246,
            // cs, ds, es, fs, gs, ss
            selectors: [0x10, 0x2B, 0x2B, 0x53, 0x2B, 0x18],
            fs_base: 0,
            gs_base: kpcr,
            kernel_gs_base: 0x7FF_FFFD_E000,
            cr0: 0x8005_0033,
            cr2: 0,
            cr3: dtb,
            cr4: if self.win.major >= 10 {
                0x3506F8
            } else {
                0x6F8
            },
            efer: 0xD01,
        }
    }

    fn finish(self) -> (LabImage, GroundTruth) {
        let cpus = (0..self.sc.cpus.len()).map(|i| self.cpu_state(i)).collect();
        let sym = |n: &str| self.l.symbol(n).map(|r| self.kernel_base + r).unwrap_or(0);
        let pfn_db = sym("MmPfnDatabase");
        let pfn_value = if pfn_db != 0 {
            let b = self.sp.read(pfn_db, 8);
            u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
        } else {
            0
        };
        let facts = LabKernelFacts {
            dtb: self.sp.pml4 * PAGE_SIZE,
            kernel_base: self.kernel_base,
            kd_debugger_data_block: sym("KdDebuggerDataBlock"),
            ps_active_process_head: sym("PsActiveProcessHead"),
            ps_loaded_module_list: sym("PsLoadedModuleList"),
            pfn_database: pfn_value,
            major_version: self.win.major,
            minor_version: self.win.minor,
            build_number: self.win.build,
            number_processors: self.sc.cpus.len() as u32,
            system_time: self.system_time,
            pdb_guid: self.truth.kernel.pdb_guid.clone(),
            pdb_age: self.truth.kernel.pdb_age,
        };
        let img = LabImage {
            ram: self.sp.ram.clone(),
            pages: self.sp.pages,
            filler_seed: self.seed ^ 0x5eed_f111,
            cpus,
            facts,
        };
        (img, self.truth)
    }
}

/// The FileName of member `n` of a file set.
pub fn set_member_name(pattern: &str, id: &str, n: u32) -> String {
    // A stable pseudo-random number per member, like PHP's session ids;
    // multiplying by an odd constant is a bijection, so names are unique.
    let mut h: u32 = 0x811C_9DC5;
    for c in id.bytes() {
        h = (h ^ c as u32).wrapping_mul(0x0100_0193);
    }
    let v = n.wrapping_mul(0x9E37_79B1) ^ h;
    if pattern.contains("{:08x}") {
        pattern.replacen("{:08x}", &format!("{v:08x}"), 1)
    } else if pattern.contains("{}") {
        pattern.replacen("{}", &n.to_string(), 1)
    } else {
        format!("{pattern}{n}")
    }
}

/// Affinity of all `n` CPUs (n <= 64).
fn affinity_mask(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// `\Windows\Temp\sess_1` -> `\Windows\Temp`.
pub fn parent_dir(path: &str) -> String {
    match path.rsplit_once('\\') {
        Some((d, _)) if !d.is_empty() => d.to_string(),
        _ => "\\".to_string(),
    }
}

impl crate::stacks::StackMemory for Builder<'_> {
    fn map(&mut self, va: u64, len: u64, code: bool) -> Result<(), Error> {
        let flags = if code {
            space::PTE_KERNEL_CODE
        } else {
            space::PTE_KERNEL_DATA
        };
        self.map_kernel_range(va, len, flags)
    }

    fn write(&mut self, va: u64, bytes: &[u8]) -> Result<(), Error> {
        self.sp.write(va, bytes)
    }
}
