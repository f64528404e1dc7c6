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

mod alpc;
mod drivers;
mod eresource;
mod fields;
mod handles;
mod io;
mod kernel;
mod memory;
mod object;
mod process;
mod pushlock;
mod queue;
mod sched;
mod stacks;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::builds::{self, AddressStyle, SelfRefStyle, WindowsBuild};
use crate::error::Error;
use crate::image::{LabImage, LabKernelFacts, PAGE_SIZE};
use crate::layout::{Isf, Layout};
use crate::oracle::{self, Placement};
use crate::scenario::{Index, Scenario};
use crate::space::Space;
use crate::truth::{GroundTruth, KernelTruth, ModulePdbTruth, ModuleTruth};

pub(crate) use alpc::{AlpcMessageRec, AlpcPortRec};
pub(crate) use eresource::LockRec;
pub use io::{parent_dir, set_member_name};
pub use kernel::kdbg;
pub(crate) use sched::DpcRec;

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

/// An executive object the builder allocated, with the handles to it.
#[derive(Debug, Clone)]
struct ObjRec {
    header: u64,
    handles: u32,
}

/// Where a scenario process went.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcRec {
    /// EPROCESS.
    pub(crate) eprocess: u64,
    /// Page frame of its PML4.
    pub(crate) dtb_pfn: u64,
    pub(crate) handle_table: u64,
    /// Its threads' scenario indexes.
    pub(crate) threads: Vec<usize>,
    pub(crate) create_time: u64,
    /// (object body, handle value, granted access), in table order.
    pub(crate) handles: Vec<(u64, u64, u32)>,
}

/// Where a scenario thread went and what it was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadRec {
    /// ETHREAD.
    pub(crate) ethread: u64,
    pub(crate) tid: u64,
    pub(crate) stack_base: u64,
    pub(crate) kernel_stack: u64,
    pub(crate) start: u64,
    /// `KTHREAD.WaitTime` as written (the low 32 bits of a tick count).
    pub(crate) wait_time: u64,
    /// The dispatcher objects its wait blocks point at.
    pub(crate) waits_on: Vec<u64>,
    pub(crate) irps: Vec<u64>,
    /// Its frames as a debugger names them, top first.
    pub(crate) stack: Vec<String>,
    pub(crate) cpu: Option<u32>,
    /// RIP, RSP and RBP inside the top frame when running (0: not laid out).
    pub(crate) start_rip: u64,
    pub(crate) start_rsp: u64,
    pub(crate) start_rbp: u64,
    /// `KTHREAD.Priority` as written.
    pub(crate) priority: u8,
    /// The CPU whose ready queue holds it, when ready.
    pub(crate) ready_on: Option<u32>,
    /// Whether that queue is the shared ready queue (`ready_on` then
    /// names the CPU the scenario gave, one of those sharing it).
    pub(crate) on_shared_queue: bool,
    /// The CPUs it may run on, a group-0 mask.
    pub(crate) affinity: u64,
    /// Each laid-out frame's body RSP, top first (empty: none laid out).
    pub(crate) frame_rsps: Vec<u64>,
}

/// The builder's state: the scenario, the symbol table, the address
/// space being filled and where each scenario object went. Its methods
/// live in one file per kernel subsystem (this module's children).
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
    /// Every ALPC port, in creation order.
    alpc_ports: Vec<AlpcPortRec>,
    /// Each scenario ALPC message.
    alpc_messages: Vec<AlpcMessageRec>,
    /// (process index, port) for each handle to an ALPC port.
    alpc_handles: Vec<(usize, u64)>,
    modules: Vec<ModuleTruth>,
    /// Real driver images by module index (scenario drivers with `image`).
    real_modules: HashMap<usize, crate::driver::PeDriver>,
    module_pdbs: Vec<ModulePdbTruth>,
    idle_process: u64,
    idle_threads: Vec<u64>,
    kpcrs: Vec<(u64, u64)>,
    /// Every queued DPC, in scenario order.
    dpcs: Vec<DpcRec>,
    system_time: u64,
    boot_time: u64,
    truth: GroundTruth,
}

fn missing(what: impl Into<String>) -> Error {
    Error::MissingSymbol { what: what.into() }
}

fn round_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect()
}

/// The known build a table belongs to (by its PDB GUID and age), or for
/// an unknown table what its shape says: 10 if it has `ObHeaderCookie`,
/// else 7.
fn windows_build(l: &dyn Layout) -> Result<WindowsBuild, Error> {
    let (guid, age) = l
        .pdb_identity()
        .ok_or_else(|| missing("metadata.windows.pdb (GUID and age)"))?;
    Ok(match builds::build_by_identity(&guid, age) {
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
    })
}

/// QEMU-style RAM layout: the legacy hole at 640K..1M and, above 3 GiB,
/// the PCI hole with the rest of RAM moved above 4 GiB.
fn ram_ranges(ram_size: u64) -> Vec<(u64, u64)> {
    let mut ram = vec![(0, 0xA0000)];
    let low_end = ram_size.min(0xC000_0000);
    ram.push((0x10_0000, low_end - 0x10_0000));
    if ram_size > 0xC000_0000 {
        ram.push((0x1_0000_0000, ram_size - 0xC000_0000));
    }
    ram
}

impl<'a> Builder<'a> {
    fn new(
        sc: &'a Scenario,
        ix: Index,
        l: &'a dyn Layout,
        opts: &BuildOptions,
    ) -> Result<Self, Error> {
        let win = windows_build(l)?;
        let ram_size = opts.ram_size.unwrap_or(sc.machine.ram.0);
        if !((64 << 20)..=(16u64 << 30)).contains(&ram_size) || ram_size % PAGE_SIZE != 0 {
            return Err(Error::ScenarioField {
                field: "machine.ram".into(),
                problem: format!("{ram_size} is not a page multiple in 64MiB..16GiB"),
            });
        }
        let ram = ram_ranges(ram_size);
        let low_end = ram_size.min(0xC000_0000);
        let seed = opts.seed;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c61_625f_696d_6721);
        let pml4_phys = match win.addresses {
            AddressStyle::Win10 => 0x1AA000,
            _ => 0x187000,
        };
        let sp = Space::new(ram, pml4_phys)?;
        let self_ref = memory::self_ref_index(&win, &mut rng);
        let max_rva = l.max_symbol_rva(0x400_0000).unwrap_or(0);
        let image_size = round_up(max_rva + 0x1000, 0x1000);
        let (kernel_base, kernel_phys_fixed, pool_base, stack_base) =
            memory::region_bases(&win, &mut rng);
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
            alpc_ports: Vec::new(),
            alpc_messages: Vec::new(),
            alpc_handles: Vec::new(),
            modules: Vec::new(),
            module_pdbs: Vec::new(),
            idle_process: 0,
            idle_threads: Vec::new(),
            kpcrs: Vec::new(),
            dpcs: Vec::new(),
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
        self.alpc()?;
        self.waits()?;
        self.queue_threads()?;
        self.handles()?;
        self.cid_table()?;
        self.globals()?;
        self.object_counts()?;
        self.ready_queues()?;
        self.dpc_queues()?;
        self.write_lists()?;
        self.process_address_spaces()?;
        self.memory_counters()?;
        self.kernel_resident()?;
        self.truth = oracle::ground_truth(&self.placement());
        Ok(())
    }

    /// Where everything went, for the oracle.
    fn placement(&self) -> Placement<'_> {
        let identity = self.l.pdb_identity();
        Placement {
            sc: self.sc,
            ix: &self.ix,
            kernel: KernelTruth {
                kernel_base: self.kernel_base,
                dtb: self.sp.pml4 * PAGE_SIZE,
                build_number: self.win.build,
                version: (self.win.major, self.win.minor),
                pdb_guid: identity.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
                pdb_age: identity.map(|p| p.1).unwrap_or_default(),
                number_processors: self.sc.cpus.len() as u32,
                tick_count: self.sc.machine.tick_count,
                max_increment: self.sc.machine.max_increment,
                cpus: Vec::new(),
            },
            kpcrs: &self.kpcrs,
            idle_threads: &self.idle_threads,
            procs: &self.procs,
            threads: &self.threads,
            locks: &self.locks,
            modules: &self.modules,
            module_pdbs: &self.module_pdbs,
            devices: &self.devices,
            files: &self.files,
            set_files: &self.set_files,
            irps: &self.irps,
            alpc_ports: &self.alpc_ports,
            alpc_messages: &self.alpc_messages,
            dpcs: &self.dpcs,
            ram_size: self.ram_size,
            guarded_mutex_type: self.l.type_size("_KGUARDED_MUTEX").is_some(),
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
