//! The Linux kernel model: a guest's kernel read from its memory dump, with
//! its symbols (kallsyms) and types (BTF) taken from the dump itself.
//!
//! [`LinuxKernel::open`] finds the kernel: with VMCOREINFO (QEMU's ELF
//! note or the kdump header) it takes KASLR's offset, `phys_base` and the
//! kallsyms tables from there; without it, it scans memory for the
//! `Linux version` banner, the page tables that map the kernel image and
//! the kallsyms tables by their shape. Then it reads the kernel's BTF from
//! memory, unless the caller gives a [`SymbolTable`] (a vmlinux with debug
//! info). Listings ([`LinuxKernel::tasks`], [`LinuxKernel::modules`],
//! [`LinuxKernel::dmesg`]) return what they could read with warnings for
//! the rest; every list walk is bounded, cycle-checked and
//! back-link-checked.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod detail;
pub mod dirs;
pub mod discover;
pub mod dmesg;
pub mod dt;
pub mod error;
pub mod files;
pub mod kallsyms;
pub mod model;
pub mod modules;
pub mod orc;
pub mod sleeps;
pub mod space;
pub mod stacks;
pub mod synth;
pub mod synth_orc;
pub mod tasks;
pub mod time;
pub mod types;
pub mod view;
pub mod vmcoreinfo;
pub mod waits;
pub mod waitsource;

pub use detail::TaskTarget;
pub use error::{Error, ErrorKind, Result};
pub use files::FilesQuery;
pub use kallsyms::{Kallsyms, KallsymsTables, KernelSymbol, SymbolRef};
pub use model::{
    CpuInfo, CpuMode, DmesgRecord, FileTable, FilesReport, FrameSource, KernelInfo, LockInfo,
    LockIo, LockTask, ModuleInfo, OpenFd, OwnerActivity, Partial, PathHolder, RunningCpu, StackEnd,
    StackFrame, TaskDetail, TaskInfo, TaskStack, TaskState, Warning, WarningKind,
};
pub use space::{LinuxPte, LINUX_PTE, START_KERNEL_MAP};
pub use vmcoreinfo::VmcoreInfo;

use hangscope_dump::Dump;
use hangscope_symbols::SymbolTable;
use hangscope_x64::{AddressSpace, VirtAddr, VirtualMemory};

/// Link-time address of `_text` on x86-64 with the default
/// `CONFIG_PHYSICAL_START` (16 MiB): `__START_KERNEL`. Used for KASLR's
/// offset only when neither VMCOREINFO nor a symbol table says it.
pub const DEFAULT_START_KERNEL: u64 = START_KERNEL_MAP + 0x100_0000;

/// How to open a kernel.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Do not use the dump's VMCOREINFO: find the kernel by scanning, as
    /// for a dump without it (tests, or a VMCOREINFO that lies).
    pub ignore_vmcoreinfo: bool,
    /// Where the table built from the dump's BTF is kept for next time
    /// (keyed by the BTF's content); none: parse it every time.
    pub cache: Option<hangscope_symbols::SymbolCache>,
    /// Do not read the dump's BTF (tests; a user who wants no types).
    pub skip_btf: bool,
}

/// A Linux kernel in a dump.
#[derive(Debug)]
pub struct LinuxKernel<'d> {
    space: AddressSpace<'d>,
    vmcoreinfo: Option<VmcoreInfo>,
    kallsyms: Kallsyms,
    types: Option<SymbolTable>,
    types_source: Option<String>,
    types_error: Option<Error>,
    kernel_offset: u64,
    kernel_offset_known: bool,
    space_source: String,
    banner: Option<String>,
    discovery: Vec<String>,
    /// Boxed: the listings it keeps would make every kernel value large.
    cache: Box<tasks::Cache>,
    vcpus: &'d [hangscope_dump::CpuState],
}

/// Whether the dump's VMCOREINFO is a Linux kernel's (it names an
/// `OSRELEASE`): a cheap test before choosing a kernel model. A dump
/// without VMCOREINFO may still hold Linux; [`LinuxKernel::open`] then
/// scans for it.
pub fn has_linux_vmcoreinfo(dump: &Dump) -> bool {
    dump.hints
        .vmcoreinfo
        .as_deref()
        .is_some_and(|t| VmcoreInfo::parse(t).osrelease.is_some())
}

impl<'d> LinuxKernel<'d> {
    /// Find the kernel in `dump`. `types` is a table the user gave (a
    /// vmlinux with DWARF or BTF); without it the kernel's own BTF is read
    /// from memory. A kernel without types still opens (symbols,
    /// `info`, memory); the typed listings then fail naming what would
    /// help.
    pub fn open(dump: &'d Dump, types: Option<SymbolTable>) -> Result<LinuxKernel<'d>> {
        Self::open_with(dump, types, &OpenOptions::default())
    }

    /// [`LinuxKernel::open`] with options.
    pub fn open_with(
        dump: &'d Dump,
        types: Option<SymbolTable>,
        opts: &OpenOptions,
    ) -> Result<LinuxKernel<'d>> {
        let vmcoreinfo = if opts.ignore_vmcoreinfo {
            None
        } else {
            dump.hints.vmcoreinfo.as_deref().map(VmcoreInfo::parse)
        };
        let found = discover::find(dump, vmcoreinfo.as_ref())?;
        let mut space = AddressSpace::new(dump.memory.as_ref(), found.space.dtb)
            .with_paging(found.space.paging)
            .with_rules(&LINUX_PTE);
        let mut discovery = found.steps;
        let kallsyms = Kallsyms::read(&space, &found.tables)?;
        if let Some(step) = confirm_paging(&mut space, &kallsyms, !found.banners.is_empty()) {
            discovery.push(step);
        }
        if !found.banners.is_empty() {
            let named = kallsyms.get("linux_banner").map(VirtAddr);
            match named {
                Some(b) if found.banners.contains(&b) => {
                    discovery.push(format!("kallsyms' linux_banner is the banner found at {b}"))
                }
                _ => {
                    return Err(Error::not_found(format!(
                        "the kallsyms found by scanning put linux_banner at {}, at none of the \
                         banners found",
                        named.map_or("nowhere".into(), |a| a.to_string())
                    )))
                }
            }
        }
        discovery.push(format!(
            "kallsyms: {} symbols ({:?} offsets)",
            kallsyms.len(),
            kallsyms.form()
        ));
        let mut k = LinuxKernel {
            space,
            vmcoreinfo,
            kallsyms,
            types: None,
            types_source: None,
            types_error: None,
            kernel_offset: 0,
            kernel_offset_known: false,
            space_source: found.space.source,
            banner: None,
            discovery,
            cache: Box::default(),
            vcpus: &dump.cpus,
        };
        k.settle_kernel_offset(types.as_ref());
        k.banner = k
            .kallsyms
            .get("linux_banner")
            .and_then(|a| k.space.read_cstr(VirtAddr(a), 512).ok())
            .map(|b| String::from_utf8_lossy(&b).trim_end().to_string());
        match types {
            Some(t) => {
                k.types_source = Some(t.source().map_or_else(
                    || "user-given table".to_string(),
                    |p| p.display().to_string(),
                ));
                k.types = Some(t);
            }
            None if opts.skip_btf => {
                k.types_error = Some(Error {
                    kind: ErrorKind::TypesNotFound {
                        release: k.release(),
                        reason: "reading the dump's BTF was turned off".into(),
                    },
                    at: None,
                });
            }
            None => match types::btf_from_memory(&k, opts.cache.as_ref()) {
                Ok((t, src)) => {
                    k.types_source = Some(src);
                    k.types = Some(t);
                }
                Err(e) => {
                    k.discovery.push(format!("no types: {e}"));
                    k.types_error = Some(e);
                }
            },
        }
        Ok(k)
    }

    /// KASLR's offset: VMCOREINFO's, else the user's table against
    /// kallsyms, else kallsyms' `_text` against the usual link address.
    fn settle_kernel_offset(&mut self, types: Option<&SymbolTable>) {
        if let Some(o) = self.vmcoreinfo.as_ref().and_then(|v| v.kernel_offset) {
            self.kernel_offset = o;
            self.kernel_offset_known = true;
            return;
        }
        for name in ["_stext", "_text", "init_task"] {
            if let (Some(run), Some(link)) =
                (self.kallsyms.get(name), types.and_then(|t| t.symbol(name)))
            {
                self.kernel_offset = run.wrapping_sub(link);
                self.kernel_offset_known = true;
                self.discovery.push(format!(
                    "KASLR offset {:#x} from {name} in the symbol table",
                    self.kernel_offset
                ));
                return;
            }
        }
        if let Some(text) = self.kallsyms.get("_text") {
            self.kernel_offset = text.wrapping_sub(DEFAULT_START_KERNEL);
            self.discovery.push(format!(
                "KASLR offset {:#x} assumed from _text and the default link address",
                self.kernel_offset
            ));
        }
    }

    /// Kernel virtual memory (through the kernel's page tables, with
    /// Linux's rules for non-present entries).
    pub fn memory(&self) -> &dyn VirtualMemory {
        &self.space
    }

    /// The address space itself (page-table root, paging mode).
    pub fn address_space(&self) -> &AddressSpace<'d> {
        &self.space
    }

    /// The kernel's symbols, from kallsyms (run-time addresses).
    pub fn kallsyms(&self) -> &Kallsyms {
        &self.kallsyms
    }

    /// The types, when there are any.
    pub fn symbols(&self) -> Option<&SymbolTable> {
        self.types.as_ref()
    }

    /// The parsed VMCOREINFO, when the dump had one and it was used.
    pub fn vmcoreinfo(&self) -> Option<&VmcoreInfo> {
        self.vmcoreinfo.as_ref()
    }

    /// KASLR's shift of the kernel image: run-time minus link-time
    /// addresses.
    pub fn kernel_offset(&self) -> u64 {
        self.kernel_offset
    }

    /// The kernel release: VMCOREINFO's, else from the banner.
    pub fn release(&self) -> Option<String> {
        if let Some(r) = self.vmcoreinfo.as_ref().and_then(|v| v.osrelease.clone()) {
            return Some(r);
        }
        let b = self.banner.as_deref()?;
        let rest = b.strip_prefix("Linux version ")?;
        Some(rest.split_whitespace().next()?.to_string())
    }

    /// A global's run-time address: kallsyms first, else the type
    /// source's symbol moved by KASLR.
    pub fn symbol(&self, name: &str) -> Result<VirtAddr> {
        view::symbol(
            &self.kallsyms,
            self.types.as_ref(),
            self.kernel_offset,
            name,
        )
    }

    /// Memory, types and symbols for a typed walk, or why there are no
    /// types.
    pub fn env(&self) -> Result<view::Env<'_>> {
        Ok(view::Env {
            r: self.reader()?,
            kallsyms: &self.kallsyms,
            kernel_offset: self.kernel_offset,
        })
    }

    /// A typed reader, or why there is none.
    pub fn reader(&self) -> Result<view::Reader<'_>> {
        match &self.types {
            Some(t) => Ok(view::Reader {
                mem: &self.space,
                types: t,
            }),
            None => Err(self.types_error.clone().unwrap_or_else(|| Error {
                kind: ErrorKind::TypesNotFound {
                    release: self.release(),
                    reason: "no type source".into(),
                },
                at: None,
            })),
        }
    }

    /// What `info` shows.
    pub fn info(&self) -> KernelInfo {
        let read_var = |name: &str| {
            self.kallsyms
                .get(name)
                .and_then(|a| self.space.read_u64(VirtAddr(a)).ok())
                .map(VirtAddr)
        };
        let t = time::clock(&self.space, &self.kallsyms);
        KernelInfo {
            release: self.release(),
            banner: self.banner.clone(),
            build_id: self.vmcoreinfo.as_ref().and_then(|v| v.build_id.clone()),
            kernel_offset: Some(self.kernel_offset),
            kernel_offset_known: self.kernel_offset_known,
            page_table_root: self.space.dtb.0 .0,
            page_table_source: self.space_source.clone(),
            paging_levels: self.space.paging.top_level(),
            direct_map_base: read_var("page_offset_base"),
            vmemmap_base: read_var("vmemmap_base"),
            vmcoreinfo: self.vmcoreinfo.is_some(),
            kallsyms_count: self.kallsyms.len(),
            types_source: self.types_source.clone(),
            types_error: self.types_error.as_ref().map(|e| e.to_string()),
            jiffies: t.jiffies,
            hz: t.hz,
            uptime_s: t.uptime_s,
            cpu_count: self.cpu_count(),
            discovery: self.discovery.clone(),
        }
    }

    /// `nr_cpu_ids`, capped.
    pub fn cpu_count(&self) -> Option<u32> {
        time::cpu_count(&self.space, &self.kallsyms)
    }

    /// Every task (thread), in `init_task.tasks` order, each process's
    /// threads after its leader; the idle task of CPU 0 (pid 0) first.
    pub fn tasks(&self) -> Result<Partial<TaskInfo>> {
        self.cache
            .listing
            .get_or_init(|| tasks::tasks(&self.env()?, &self.cache))
            .clone()
    }

    /// Each CPU's runqueue: the task it runs, its clock, its queue.
    pub fn cpus(&self) -> Result<Partial<model::CpuInfo>> {
        tasks::cpus(&self.env()?)
    }

    /// Loaded modules, in the `modules` list's order.
    pub fn modules(&self) -> Result<Partial<ModuleInfo>> {
        self.cache
            .modules
            .get_or_init(|| modules::modules(&self.env()?))
            .clone()
    }

    /// A module's symbols (from `module.kallsyms`), by the `struct
    /// module` address [`ModuleInfo::module`] gives.
    pub fn module_symbols(&self, module: VirtAddr) -> Result<Vec<KernelSymbol>> {
        modules::module_symbols(&self.env()?, module)
    }

    /// A module's types: its split BTF (`module.btf_data`) on top of the
    /// kernel's, with its symbols. Needs the kernel's own BTF in the dump
    /// (a module's BTF refers to it by type id).
    pub fn module_types(&self, module: VirtAddr) -> Result<SymbolTable> {
        let env = self.env()?;
        let base = types::read_btf(self)?;
        let btf = modules::module_btf(&env, module)?;
        let name = env.r.object("module", module).char_array("name")?;
        let syms = modules::module_symbols(&env, module)
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.name, s.addr))
            .collect();
        SymbolTable::from_split_btf(
            &base,
            &btf,
            syms,
            &format!("BTF of module {name} in the dump"),
        )
        .map_err(|e| Error::bad_data(module, format!("module {name}'s BTF: {e}")))
    }

    /// An unwinder over this kernel's and its modules' ORC tables.
    pub fn unwinder(&self) -> Result<stacks::Unwinder<'_>> {
        let env = self.env()?;
        let modules = self.modules().map(|m| m.items).unwrap_or_default();
        Ok(stacks::Unwinder::new(env, &modules))
    }

    /// Each CPU's current task and its kernel stack, from the vCPU
    /// registers in the dump; a CPU in user mode or idle says so.
    pub fn running(&self) -> Result<Partial<RunningCpu>> {
        let u = self.unwinder()?;
        let mut r = stacks::running(&self.env()?, &u, self.vcpus)?;
        r.warnings.extend(u.warnings.iter().cloned());
        Ok(r)
    }

    /// Every task's kernel stack, unwound with the kernel's ORC tables:
    /// a sleeping task from its saved switch frame, a CPU's current task
    /// from the vCPU's registers.
    pub fn stacks(&self) -> Result<Partial<TaskStack>> {
        self.cache
            .stacks
            .get_or_init(|| {
                let env = self.env()?;
                let u = self.unwinder()?;
                let running = stacks::running(&env, &u, self.vcpus)
                    .map(|r| r.items)
                    .unwrap_or_default();
                Ok(stacks::stacks(&env, &u, self.tasks()?, &running))
            })
            .clone()
    }

    /// Every lock a sleeping task waits on, found from the waiter records
    /// on the tasks' stacks, with owners, waiters and what it protects;
    /// and the D tasks that wait on no lock, with why that is or is not a
    /// hang. See [`waits`].
    pub fn waits(&self) -> Result<waits::Waits> {
        let env = self.env()?;
        let tasks = self.tasks()?;
        let clock = time::clock(&self.space, &self.kallsyms);
        let modules = self.modules().map(|m| m.items).unwrap_or_default();
        let module_syms: Vec<KernelSymbol> = modules
            .iter()
            .flat_map(|m| self.module_symbols(m.module).unwrap_or_default())
            .collect();
        let name = |a: u64| -> Option<String> {
            if let Some(s) = module_syms.iter().find(|s| s.addr == a) {
                return Some(s.name.clone());
            }
            match self.kallsyms.symbol_at(a) {
                Some((s, 0)) => Some(s.name.to_string()),
                _ => None,
            }
        };
        let mut w = waits::find_waits(&env, &tasks.items, clock.jiffies, clock.hz, &name);
        if w.locks.items.iter().any(|l| l.kind == "rw_semaphore") {
            let u = stacks::Unwinder::new(env, &modules);
            let running = stacks::running(&env, &u, self.vcpus)
                .map(|r| r.items)
                .unwrap_or_default();
            let files = waits::open_files(&env.r, &tasks.items, &mut Vec::new());
            w.dirs =
                dirs::contended_dirs(&env, &mut w.locks.items, &tasks.items, &running, &files, &u);
        }
        self.explain_unexplained(&mut w);
        w.locks.warnings.splice(0..0, tasks.warnings);
        Ok(w)
    }

    /// A task in D whose unwound stack is in a lock's slow path, or whose
    /// stack cannot be walked, but whose wait was not found, hides a lock:
    /// damage to the lock, its wait list or the task's waiter record. Each
    /// is a warning, and the waits are incomplete, so that a cycle through
    /// it is not silently lost.
    fn explain_unexplained(&self, w: &mut waits::Waits) {
        if w.unexplained.is_empty() {
            return;
        }
        let stacks = self.stacks().map(|s| s.items).unwrap_or_default();
        let by_task: std::collections::HashMap<VirtAddr, &TaskStack> =
            stacks.iter().map(|s| (s.task, s)).collect();
        for u in std::mem::take(&mut w.unexplained) {
            let Some(s) = by_task.get(&u.task) else {
                continue;
            };
            let who = format!("pid {} ({}), task {}", s.pid, s.comm, s.task);
            let stack = format!(" at {}", u.stack);
            let slowpath = s.frames.iter().find_map(|f| {
                let func = f.function.as_deref()?;
                waits::lock_slowpath(func).map(|kind| (func, kind))
            });
            let why = if let Some((func, kind)) = slowpath {
                format!(
                    "{who} sleeps in {func} for a {kind}, but no waiter record on its stack{stack} \
                     leads to a {kind} with waiters{}: the lock and its owner are unknown, so a \
                     deadlock through it cannot be seen",
                    u.refusal.as_ref().map_or(String::new(), |r| format!(" ({r})"))
                )
            } else if s.end == model::StackEnd::Error || s.frames.is_empty() {
                format!(
                    "{who} is in D but its stack{stack} cannot be walked{}: what it waits on is \
                     unknown",
                    s.warnings
                        .first()
                        .map_or(String::new(), |x| format!(" ({})", x.message))
                )
            } else {
                continue;
            };
            w.incomplete.get_or_insert_with(|| why.clone());
            w.locks
                .warnings
                .push(warning(&Error::bad_data(u.task, why)));
        }
    }

    /// The printk ring buffer, oldest record first.
    ///
    /// Without types, the layout VMCOREINFO publishes for the log is used
    /// when the dump has it (records then carry no level or facility).
    pub fn dmesg(&self) -> Result<Partial<DmesgRecord>> {
        match self.env() {
            Ok(env) => dmesg::dmesg(&env),
            Err(e) => {
                let Some(t) = self.vmcoreinfo.as_ref().and_then(dmesg::vmcoreinfo_types) else {
                    return Err(e);
                };
                dmesg::dmesg(&view::Env {
                    r: view::Reader {
                        mem: &self.space,
                        types: &t,
                    },
                    kallsyms: &self.kallsyms,
                    kernel_offset: 0,
                })
            }
        }
    }
}

/// A scan without registers cannot see CR4.LA57. Under 5-level paging
/// the scan finds the kernel through the PML4 that the top-level PML5's
/// last entry points at (that PML4 maps the kernel image like a 4-level
/// root), so the image, kallsyms and the banner read fine while the
/// direct map (0xff11...) does not. The kernel records the mode in
/// `__pgtable_l5_enabled`; its own top-level table is `init_top_pgt`
/// (`swapper_pg_dir`), whose physical address the image mapping gives.
fn confirm_paging(
    space: &mut AddressSpace<'_>,
    kallsyms: &Kallsyms,
    guessed: bool,
) -> Option<String> {
    use hangscope_x64::{Dtb, PagingMode};
    if !guessed || space.paging != PagingMode::FourLevel {
        return None;
    }
    let on = space
        .read_u32(VirtAddr(kallsyms.get("__pgtable_l5_enabled")?))
        .ok()?;
    if on == 0 {
        return None;
    }
    let top = kallsyms
        .get("init_top_pgt")
        .or_else(|| kallsyms.get("swapper_pg_dir"))?;
    let root = space.translate(VirtAddr(top)).ok()?.paddr;
    let five = AddressSpace::new(space.memory, Dtb(root))
        .with_paging(PagingMode::FiveLevel)
        .with_rules(&LINUX_PTE);
    // The image must read the same through the five levels.
    let banner = VirtAddr(kallsyms.get("linux_banner")?);
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    space.read(banner, &mut a).ok()?;
    five.read(banner, &mut b).ok()?;
    if a != b {
        return None;
    }
    *space = five;
    Some(format!(
        "the kernel's __pgtable_l5_enabled says 5-level paging: walking from init_top_pgt at physical {root}"
    ))
}

/// A warning from an error.
pub(crate) fn warning(e: &Error) -> Warning {
    let kind = match e.kind {
        ErrorKind::Fault(_) => WarningKind::Fault,
        ErrorKind::BadData(_) => WarningKind::BadData,
        ErrorKind::MissingSymbol { .. } | ErrorKind::TypesNotFound { .. } => {
            WarningKind::MissingSymbol
        }
        _ => WarningKind::Unsupported,
    };
    Warning {
        kind,
        address: e.at,
        message: e.to_string(),
    }
}

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_kernel_in_memory_is_a_plain_error() {
        // A raw image of zeros, and one with a banner but nothing else.
        let dump = Dump::from_bytes(vec![0u8; 1 << 20]).unwrap();
        let e = LinuxKernel::open(&dump, None).unwrap_err();
        assert_eq!(e.name(), "KernelNotFound");
        assert!(e.to_string().contains("no `Linux version` banner"), "{e}");
        let mut bytes = vec![0u8; 1 << 20];
        let banner = b"Linux version 6.1.0-56-amd64 (x@y) (gcc) #1 SMP PREEMPT_DYNAMIC\n";
        bytes[0x5000..0x5000 + banner.len()].copy_from_slice(banner);
        // A page shaped like a top-level table whose kernel entries point
        // at itself: tried, and refused.
        bytes[0x8ff8..0x9000].copy_from_slice(&(0x8000u64 | 3).to_le_bytes());
        bytes[0x8ff0..0x8ff8].copy_from_slice(&(0x8000u64 | 3).to_le_bytes());
        let dump = Dump::from_bytes(bytes).unwrap();
        let e = LinuxKernel::open(&dump, None).unwrap_err();
        assert_eq!(e.name(), "KernelNotFound", "{e}");
    }

    #[test]
    fn the_model_serialises_addresses_as_hex() {
        let t = TaskInfo {
            task: VirtAddr(0xffff_8dbe_4121_48c0),
            pid: 1,
            tgid: 1,
            ppid: Some(0),
            comm: "init".into(),
            state: TaskState::Sleeping,
            raw_state: 0x2001,
            exit_state: 0,
            kernel_thread: false,
            cpu: Some(1),
            on_cpu: Some(false),
            last_arrival_ns: Some(6_715_387_926),
            since_last_arrival_ns: None,
            nvcsw: Some(310),
            nivcsw: Some(184),
            last_switch_time: Some(0),
            last_switch_count: Some(0),
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["task"], "0xffff8dbe412148c0");
        assert_eq!(v["state"], "sleeping");
        let back: TaskInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
        let unknown = serde_json::to_value(TaskState::Unknown(12)).unwrap();
        assert_eq!(unknown, serde_json::json!({"unknown": 12}));
        let w: Warning = serde_json::from_value(serde_json::json!(
            {"kind": "from_the_future", "address": null, "message": "m"}
        ))
        .unwrap();
        assert_eq!(w.kind, WarningKind::Unknown("from_the_future".into()));
        let mut dump = Dump::from_bytes(vec![0u8; 4096]).unwrap();
        assert!(!has_linux_vmcoreinfo(&dump));
        dump.hints.vmcoreinfo = Some("OSRELEASE=6.1.0-56-amd64\n".into());
        assert!(has_linux_vmcoreinfo(&dump));
    }

    #[test]
    fn a_missing_type_source_names_the_release_and_package() {
        let e = Error {
            kind: ErrorKind::TypesNotFound {
                release: Some("6.1.0-56-amd64".into()),
                reason: "the kernel has no __start_BTF/__stop_BTF symbols".into(),
            },
            at: None,
        };
        let text = e.to_string();
        assert!(text.contains("linux-image-6.1.0-56-amd64-dbg"), "{text}");
        assert!(text.contains("__start_BTF"), "{text}");
    }

    #[test]
    fn a_vmcoreinfo_that_lies_is_refused() {
        let mut dump = Dump::from_bytes(vec![0u8; 1 << 20]).unwrap();
        dump.hints.vmcoreinfo = Some(
            "OSRELEASE=6.1.0\nSYMBOL(swapper_pg_dir)=ffffffff82a10000\nNUMBER(phys_base)=0\n"
                .into(),
        );
        let e = LinuxKernel::open(&dump, None).unwrap_err();
        assert_eq!(e.name(), "KernelNotFound", "{e}");
        assert!(e.to_string().contains("phys_base"), "{e}");
    }
}
