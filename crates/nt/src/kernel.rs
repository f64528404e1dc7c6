//! The kernel found in a dump: memory, symbols, base, and the facts every
//! listing needs (build, CPUs, tick count).

use crate::cache::Caches;
use crate::discover::{self, SymbolSource, KUSER_SHARED_DATA};
use crate::error::{Error, ErrorKind, Result, Warning};
use crate::model::*;
use crate::view::{Object, Reader};
use hangscope_dump::{CpuState, Dump, PhysAddr};
use hangscope_symbols::SymbolTable;
use hangscope_x64::{AddressSpace, Dtb, VirtAddr, VirtualMemory};
use std::sync::OnceLock;

/// Most processors read from `KiProcessorBlock`.
const MAX_CPUS: u32 = 1024;

/// Lowest address of the x64 kernel half (the canonical upper half):
/// kernel objects, stacks and code live at or above it.
pub(crate) const KERNEL_SPACE_START: u64 = 0xffff_8000_0000_0000;

/// The facts every listing needs, each read once per kernel. The other
/// subsystems keep their caches beside their own code ([`Caches`]).
#[derive(Debug, Default)]
struct Facts {
    cpus: OnceLock<Partial<CpuInfo>>,
    build: OnceLock<Option<u32>>,
    tick: OnceLock<Result<u64>>,
    max_increment: OnceLock<Result<u32>>,
}

/// A Windows x64 kernel in a dump, read through its symbols.
#[derive(Debug)]
pub struct Kernel<'d> {
    mem: Box<dyn VirtualMemory + 'd>,
    /// The page walk itself, when the kernel came from a dump (scans).
    space: Option<AddressSpace<'d>>,
    symbols: SymbolTable,
    symbol_origin: String,
    /// Where drivers' tables are looked for (the source the kernel was
    /// opened with, without a caller-given kernel table).
    module_source: Option<SymbolSource>,
    base: VirtAddr,
    size: Option<u64>,
    pdb: PdbInfo,
    dtb: Option<u64>,
    cpu_regs: Vec<CpuState>,
    discovery: Vec<String>,
    /// What the dump reader noted while opening the file (truncation,
    /// overlapping runs, ...), truncation first.
    dump_notes: Vec<String>,
    facts: Facts,
    /// Each subsystem's own cache.
    pub(crate) caches: Caches,
}

/// The dump reader's notes with the ones about truncation first (the dump
/// crate's ordering, which every kernel model shares).
pub use hangscope_dump::truncation_first as ordered_dump_notes;

impl<'d> Kernel<'d> {
    /// Find the kernel in a dump: the DTB (a vCPU's CR3, else the header's,
    /// else a scan), the kernel image (back from a CPU's RIP, the header's
    /// KDBG, or a scan of kernel space for a PE whose RSDS record names the
    /// NT kernel PDB), then its symbol table by GUID and age.
    pub fn open(dump: &'d Dump, symbols: &SymbolSource) -> Result<Kernel<'d>> {
        let mut notes = Vec::new();
        let dtb = discover::find_dtb(dump, &mut notes)?;
        let space = AddressSpace::new(dump.memory.as_ref(), Dtb(PhysAddr(dtb)))
            .with_rules(&crate::pte::WINDOWS_PTE);
        let image = discover::find_kernel(dump, &space, &mut notes)?;
        let (table, origin) = symbols.find(&image.pdb)?;
        if let Some(id) = table.identity() {
            if !id.guid.eq_ignore_ascii_case(&image.pdb.guid) || id.age != image.pdb.age {
                notes.push(format!(
                    "warning: the symbol table is for {} {}-{}, the kernel is {} {}-{}",
                    id.name, id.guid, id.age, image.pdb.name, image.pdb.guid, image.pdb.age
                ));
            }
        }
        let mut k = Kernel {
            mem: Box::new(space),
            space: Some(space),
            symbols: table,
            symbol_origin: origin,
            module_source: Some(symbols.for_modules()),
            base: image.base,
            size: Some(image.size),
            pdb: image.pdb,
            dtb: Some(dtb),
            cpu_regs: dump.cpus.clone(),
            discovery: notes,
            dump_notes: ordered_dump_notes(dump.notes()),
            facts: Facts::default(),
            caches: Caches::default(),
        };
        // Prefer the System process's own page tables (the kernel DTB) when
        // the first one was a user process's CR3.
        if let Ok(sys) = k.initial_system_dtb() {
            if sys != dtb && discover::validate_dtb(dump.memory.as_ref(), sys) {
                k.discovery
                    .push(format!("kernel DTB {sys:#x} from the System process"));
                let s = AddressSpace::new(dump.memory.as_ref(), Dtb(PhysAddr(sys)))
                    .with_rules(&crate::pte::WINDOWS_PTE);
                k.mem = Box::new(s);
                k.space = Some(s);
                k.dtb = Some(sys);
            }
        }
        Ok(k)
    }

    /// A kernel over any virtual memory, with its symbol table and image
    /// base already known (tests, replays).
    pub fn from_parts(
        mem: Box<dyn VirtualMemory + 'd>,
        symbols: SymbolTable,
        base: VirtAddr,
    ) -> Kernel<'d> {
        let pdb = symbols
            .identity()
            .map(|i| PdbInfo {
                name: i.name.clone(),
                guid: i.guid.clone(),
                age: i.age,
            })
            .unwrap_or_default();
        Kernel {
            mem,
            space: None,
            symbols,
            symbol_origin: "table given by the caller".into(),
            module_source: None,
            base,
            size: None,
            pdb,
            dtb: None,
            cpu_regs: Vec::new(),
            discovery: Vec::new(),
            dump_notes: Vec::new(),
            facts: Facts::default(),
            caches: Caches::default(),
        }
    }

    /// What the dump reader noted while opening the file, truncation first;
    /// empty for a healthy dump.
    pub fn dump_notes(&self) -> &[String] {
        &self.dump_notes
    }

    /// Replace the symbol path drivers' tables are looked up on (see
    /// `Kernel::set_module_symbol_source`).
    pub(crate) fn replace_module_source(&mut self, src: SymbolSource) {
        self.module_source = Some(src);
    }

    /// The symbol path drivers' tables are looked up on.
    pub(crate) fn module_source(&self) -> Option<&SymbolSource> {
        self.module_source.as_ref()
    }

    /// Attach the dump's vCPU registers (for `from_parts` kernels).
    pub fn set_cpu_registers(&mut self, regs: Vec<CpuState>) {
        self.cpu_regs = regs;
    }

    /// The typed reader (memory + symbols).
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            mem: self.mem.as_ref(),
            symbols: &self.symbols,
            build: self.build(),
        }
    }

    /// The raw reader, without the build (used while finding the build).
    fn reader_nobuild(&self) -> Reader<'_> {
        Reader {
            mem: self.mem.as_ref(),
            symbols: &self.symbols,
            build: None,
        }
    }

    /// The symbol table.
    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// Kernel image base.
    pub fn base(&self) -> VirtAddr {
        self.base
    }

    /// Kernel virtual memory.
    pub fn memory(&self) -> &dyn VirtualMemory {
        self.mem.as_ref()
    }

    /// The x86-64 address space, when the kernel was opened from a dump.
    pub fn address_space(&self) -> Option<&AddressSpace<'d>> {
        self.space.as_ref()
    }

    /// The vCPU registers from the dump.
    pub fn cpu_registers(&self) -> &[CpuState] {
        &self.cpu_regs
    }

    /// A view of `ty` at `addr`.
    pub fn object(&self, ty: &str, addr: VirtAddr) -> Result<Object<'_>> {
        self.reader().object(ty, addr)
    }

    /// Address of a kernel global (`nt!PsActiveProcessHead`).
    pub fn symbol(&self, name: &str) -> Result<VirtAddr> {
        self.symbols
            .symbol(name)
            .map(|rva| VirtAddr(self.base.0.wrapping_add(rva)))
            .ok_or_else(|| Error {
                kind: ErrorKind::MissingSymbol {
                    ty: "symbol".into(),
                    field: Some(name.into()),
                    build: None,
                },
                at: None,
                via: None,
            })
    }

    /// A kernel global read as an unsigned value of `size` bytes.
    pub fn global(&self, name: &str, size: u64) -> Result<u64> {
        let a = self.symbol(name)?;
        self.reader_nobuild().read_uint(a, size)
    }

    /// The nearest kernel symbol at or below `va` inside the kernel image
    /// (`nt!ExpSystemResourcesList`, `nt!KiSwapContext+0x7a`); `None`
    /// outside the image or more than 1 MiB past the nearest symbol.
    pub fn symbolize(&self, va: VirtAddr) -> Option<String> {
        let va = va.0;
        let rva = va.checked_sub(self.base.0)?;
        if rva >= self.size.unwrap_or(0x0100_0000) {
            return None;
        }
        let (name, off) = self.symbols.symbol_at(rva)?;
        if off > 0x10_0000 {
            return None;
        }
        Some(if off == 0 {
            format!("nt!{name}")
        } else {
            format!("nt!{name}+{off:#x}")
        })
    }

    fn initial_system_dtb(&self) -> Result<u64> {
        let p = self
            .reader_nobuild()
            .read_ptr(self.symbol("PsInitialSystemProcess")?)?;
        let ep = self.reader_nobuild().object("_EPROCESS", p)?;
        Ok(ep.u64("Pcb.DirectoryTableBase")? & 0x000F_FFFF_FFFF_F000)
    }

    /// Build number (`NtBuildNumber & 0xFFFF`).
    pub fn build(&self) -> Option<u32> {
        *self.facts.build.get_or_init(|| {
            self.global("NtBuildNumber", 4)
                .ok()
                .map(|v| (v & 0xFFFF) as u32)
        })
    }

    fn kuser(&self) -> Result<Object<'_>> {
        self.object("_KUSER_SHARED_DATA", VirtAddr(KUSER_SHARED_DATA))
    }

    /// Tick count now: `KUSER_SHARED_DATA.TickCountQuad`, or
    /// `TickCount.LowPart | High1Time << 32` on builds without it.
    pub fn tick_count(&self) -> Result<u64> {
        self.facts
            .tick
            .get_or_init(|| self.read_tick_count())
            .clone()
    }

    fn read_tick_count(&self) -> Result<u64> {
        let k = self.kuser()?;
        if k.has("TickCountQuad") {
            return k.u64("TickCountQuad");
        }
        let lo = k.u64("TickCount.LowPart")?;
        let hi = k.u64("TickCount.High1Time")?;
        Ok(lo | (hi & 0xffff_ffff) << 32)
    }

    /// `KeMaximumIncrement`: 100 ns units per clock tick.
    pub fn max_increment(&self) -> Result<u32> {
        self.facts
            .max_increment
            .get_or_init(|| Ok(self.global("KeMaximumIncrement", 4)? as u32))
            .clone()
    }

    /// Seconds for a number of ticks.
    pub fn ticks_to_seconds(&self, ticks: u64) -> Option<f64> {
        let inc = self.max_increment().ok()?;
        Some(ticks as f64 * inc as f64 / 1e7)
    }

    /// Ticks since `wait_time` (a 32-bit `KTHREAD.WaitTime`).
    pub fn ticks_since(&self, wait_time: u64) -> Option<u64> {
        let now = self.tick_count().ok()?;
        Some((now.wrapping_sub(wait_time)) & 0xffff_ffff)
    }

    /// Every CPU: `KeNumberProcessors`, `KiProcessorBlock[i]` (the KPRCB),
    /// its KPCR, and `CurrentThread`.
    pub fn cpus(&self) -> &Partial<CpuInfo> {
        self.facts.cpus.get_or_init(|| self.read_cpus())
    }

    fn read_cpus(&self) -> Partial<CpuInfo> {
        let mut out = Partial::default();
        let r = self.reader();
        let count = match self.global("KeNumberProcessors", 4) {
            Ok(v) if v as u32 <= MAX_CPUS && v > 0 => v as u32,
            Ok(v) if (v & 0xff) > 0 => (v & 0xff) as u32,
            Ok(v) => {
                out.warnings.push(Warning {
                    context: "KeNumberProcessors".into(),
                    kind: WarningKind::BadData,
                    message: format!("impossible processor count {v:#x}"),
                    address: self.symbol("KeNumberProcessors").ok(),
                    leaves_incomplete: None,
                });
                self.cpu_regs.len().max(1) as u32
            }
            Err(e) => {
                out.warnings
                    .push(Warning::from_error("KeNumberProcessors", &e));
                self.cpu_regs.len().max(1) as u32
            }
        };
        let block = match self.symbol("KiProcessorBlock") {
            Ok(b) => b,
            Err(e) => {
                out.warnings
                    .push(Warning::from_error("KiProcessorBlock", &e));
                return out;
            }
        };
        let prcb_off = r.offset_of("_KPCR", "Prcb").ok();
        for i in 0..count {
            let ctx = format!("CPU {i}");
            let prcb = match r.read_ptr(VirtAddr(block.0.wrapping_add(8 * i as u64))) {
                Ok(p) if p.0 != 0 => p,
                Ok(_) => {
                    out.warnings.push(Warning {
                        context: ctx,
                        kind: WarningKind::BadData,
                        message: "KiProcessorBlock entry is NULL".into(),
                        address: Some(VirtAddr(block.0 + 8 * i as u64)),
                        leaves_incomplete: None,
                    });
                    continue;
                }
                Err(e) => {
                    out.warnings.push(Warning::from_error(ctx, &e));
                    continue;
                }
            };
            let kpcr = prcb_off.map(|o| prcb.0.wrapping_sub(o)).unwrap_or(0);
            let current = match r
                .object("_KPRCB", prcb)
                .and_then(|o| o.ptr("CurrentThread"))
            {
                Ok(t) => Some(t),
                Err(e) => {
                    out.warnings
                        .push(Warning::from_error(format!("CPU {i} KPRCB"), &e));
                    None
                }
            };
            let rip = self
                .cpu_regs
                .iter()
                .find(|c| c.gs_base == Some(kpcr) || c.kernel_gs_base == Some(kpcr))
                .or_else(|| self.cpu_regs.get(i as usize))
                .map(|c| VirtAddr(c.rip));
            out.items.push(CpuInfo {
                index: i,
                kpcr: VirtAddr(kpcr),
                kprcb: prcb,
                current_thread: current,
                rip,
            });
        }
        out
    }

    /// `info`: what was found and how.
    pub fn info(&self) -> KernelInfo {
        let mut warnings = Vec::new();
        let k = self.kuser();
        let (major, minor, system_time, mult) = match &k {
            Ok(k) => (
                k.u32("NtMajorVersion").ok(),
                k.u32("NtMinorVersion").ok(),
                k.u64("SystemTime.LowPart")
                    .and_then(|lo| Ok(lo | (k.u64("SystemTime.High1Time")? & 0xffff_ffff) << 32))
                    .ok(),
                k.u32("TickCountMultiplier").ok(),
            ),
            Err(e) => {
                warnings.push(Warning::from_error("KUSER_SHARED_DATA", e));
                (None, None, None, None)
            }
        };
        let tick = self.tick_count();
        if let Err(e) = &tick {
            warnings.push(Warning::from_error("tick count", e));
        }
        let cpus = self.cpus();
        warnings.extend(cpus.warnings.iter().cloned());
        KernelInfo {
            build: self.build(),
            major_version: major,
            minor_version: minor,
            kernel_base: self.base,
            kernel_size: self.size,
            dtb: self.dtb,
            pdb: self.pdb.clone(),
            symbol_source: self.symbol_origin.clone(),
            processor_count: self.global("KeNumberProcessors", 4).ok().map(|v| v as u32),
            cpus: cpus.items.clone(),
            system_time,
            tick_count: tick.ok(),
            max_increment: self.max_increment().ok(),
            tick_count_multiplier: mult,
            discovery: self.discovery.clone(),
            warnings,
        }
    }

    /// `db`/`dq`: `len` bytes at `va` (at most 1 MiB), unreadable bytes as
    /// `None` page by page.
    pub fn read_memory(&self, va: VirtAddr, len: u64) -> MemoryDump {
        hangscope_x64::view::read_memory(self.mem.as_ref(), va, len)
    }
}
