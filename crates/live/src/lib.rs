//! Guest physical memory and vCPU registers read from a running QEMU
//! process, for analysis without a dump file.
//!
//! A [`LiveVm`] reaches a VM by libvirt domain, QMP socket or QEMU pid
//! ([`Target`]), finds the host memory behind every guest-physical RAM
//! range from QEMU's own tables (`info mtree -f`, `gpa2hva`,
//! `/proc/PID/maps`), and reads it read-only: `/proc/PID/mem` for private
//! memory, a read-only mapping for a shared memory-backend file. The
//! registers come from `info registers -a`. [`LiveVm::dump`] wraps that in
//! a [`hangscope_dump::Dump`] (format [`hangscope_dump::DumpFormat::Live`]),
//! so every stage above reads a running VM as it reads a dump file.
//!
//! [`read_consistently`] runs an analysis on one consistent moment of a
//! running guest while pausing it only to copy pages: a first run on the
//! moving guest learns which pages the analysis reads, a pause copies
//! those pages (and the registers), and the analysis runs again on the
//! copy; a page it then wants that the copy lacks makes another, larger
//! copy in another pause. The guest is always resumed: on error, on panic
//! (through `Drop`) and, with [`LiveVm::arm_watchdog`], when hangscope
//! itself dies.
//!
//! ```no_run
//! use hangscope_live::{read_consistently, LiveVm, Mode, Target};
//!
//! let mut vm = LiveVm::open(&Target::parse("/run/qemu/qmp.sock", None))?;
//! let (pages, stats) = read_consistently(&mut vm, Mode::Cut, |dump| {
//!     (dump.memory.ranges().len(), Default::default())
//! })?;
//! println!("{pages} ranges; paused {:?} in {} pause(s)", stats.paused, stats.pauses);
//! # Ok::<(), hangscope_live::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod error;
pub mod layout;
mod memory;
pub mod monitor;
pub mod regs;
mod vm;
pub mod watchdog;

pub use error::Error;
pub use memory::{LiveMemory, Snapshot};
pub use monitor::{Monitor, Target};
pub use vm::LiveVm;

use hangscope_dump::{Dump, KernelHints, PhysAddr, PhysRange, PhysicalMemory, PAGE_SIZE};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How a live read treats a running guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pause only to copy the pages the analysis reads (the default).
    Cut,
    /// Keep the guest paused for the whole analysis.
    Hold,
    /// Never pause: a best-effort read of a guest that moves meanwhile.
    NoPause,
}

/// Copy rounds before [`Mode::Cut`] gives up and holds the pause instead.
const CUT_ROUNDS: usize = 3;

/// What a live read cost the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// QEMU's run state when hangscope came.
    pub initial_state: String,
    /// Pauses made (0 for a guest that was not running, or `NoPause`).
    pub pauses: usize,
    /// Total time paused.
    pub paused: Duration,
    /// The longest pause.
    pub longest_pause: Duration,
    /// Guest pages read for the answer (copied or read in place).
    pub pages_read: u64,
    /// Whether the answer comes from a moving guest (`NoPause`).
    pub best_effort: bool,
}

/// Run `analyse` on one consistent moment of the VM (see the crate docs),
/// and return its result with what the read cost the guest. A guest that
/// is not running (paused, or stopped at start) is read in place and not
/// touched.
///
/// `analyse` also returns what it learned about the kernel's place
/// (its page-table base): the copies are made with that as the dump's
/// [`hangscope_dump::KernelHints`], which the kernel models verify before
/// use, so that a scan the first run needed (a guest stopped in real mode
/// has no CR3) is not repeated, and its pages not copied, in a pause.
pub fn read_consistently<R>(
    vm: &mut LiveVm,
    mode: Mode,
    mut analyse: impl FnMut(&Dump) -> (R, KernelHints),
) -> Result<(R, Stats), Error> {
    let initial_state = vm.status()?;
    let mut stats = Stats {
        initial_state: initial_state.clone(),
        ..Stats::default()
    };
    let running = initial_state == "running";
    if !running || mode == Mode::NoPause {
        // Nothing runs (or the user accepts a moving guest): read in place.
        let cpus = vm.registers()?;
        let memory = Arc::new(vm.memory(false));
        let mut dump = vm.dump(Box::new(Shared(memory.clone())), cpus);
        let (mut r, learned) = analyse(&dump);
        // A kernel's own VMCOREINFO (QEMU's dump note) changes where its
        // model starts: run again from it, as from a capture.
        if learned.vmcoreinfo.is_some() {
            dump.hints.vmcoreinfo = learned.vmcoreinfo;
            r = analyse(&dump).0;
        }
        stats.pages_read = memory.bytes_read() / PAGE_SIZE;
        stats.best_effort = running;
        return Ok((r, stats));
    }
    if mode == Mode::Hold {
        let r = held(vm, &mut analyse, &mut stats, &KernelHints::default())?;
        return Ok((r, stats));
    }
    // Learn which pages the analysis reads, on the moving guest.
    let (hints, first) = {
        let cpus = vm.registers()?;
        let memory = Arc::new(vm.memory(true));
        let dump = vm.dump(Box::new(Shared(memory.clone())), cpus);
        (analyse(&dump).1, memory.touched())
    };
    // What the analysis reads once it knows the kernel's place.
    let mut wanted: BTreeSet<u64> = if hints == KernelHints::default() {
        first
    } else {
        let cpus = vm.registers()?;
        let memory = Arc::new(vm.memory(true));
        let mut dump = vm.dump(Box::new(Shared(memory.clone())), cpus);
        dump.hints = hints.clone();
        let _ = analyse(&dump);
        memory.touched()
    };
    for round in 0..CUT_ROUNDS {
        vm.pause()?;
        let copied = (|| {
            let cpus = vm.registers()?;
            let snap = Snapshot::take(&vm.memory(false), &wanted)
                .map_err(|e| Error::Io(format!("copying guest pages: {e}")))?;
            Ok::<_, Error>((cpus, snap))
        })();
        let d = vm.resume()?;
        stats.pauses += 1;
        stats.paused += d;
        stats.longest_pause = stats.longest_pause.max(d);
        let (cpus, snap) = copied?;
        let pages = snap.len() as u64;
        let snap = Arc::new(snap);
        let mut dump = vm.dump(Box::new(Shared(snap.clone())), cpus);
        dump.hints = hints.clone();
        let (r, _) = analyse(&dump);
        drop(dump);
        let misses = snap.misses();
        log::info!(
            "live cut round {}: {pages} pages copied in {:.1} ms, {} missing",
            round + 1,
            d.as_secs_f64() * 1e3,
            misses.len()
        );
        if misses.is_empty() {
            stats.pages_read = pages;
            return Ok((r, stats));
        }
        wanted.extend(misses);
    }
    // The guest changes faster than the copies converge: hold it still,
    // starting from what the runs so far learned (a Linux kernel's
    // VMCOREINFO spares a scan of all of RAM inside the pause).
    let r = held(vm, &mut analyse, &mut stats, &hints)?;
    Ok((r, stats))
}

/// One analysis with the guest paused throughout, the dump given `hints`.
fn held<R>(
    vm: &mut LiveVm,
    analyse: &mut impl FnMut(&Dump) -> (R, KernelHints),
    stats: &mut Stats,
    hints: &KernelHints,
) -> Result<R, Error> {
    vm.pause()?;
    let outcome = (|| {
        let cpus = vm.registers()?;
        let memory = Arc::new(vm.memory(false));
        let mut dump = vm.dump(Box::new(Shared(memory.clone())), cpus);
        dump.hints = hints.clone();
        let (mut r, learned) = analyse(&dump);
        if learned.vmcoreinfo.is_some() {
            dump.hints.vmcoreinfo = learned.vmcoreinfo;
            r = analyse(&dump).0;
        }
        Ok::<_, Error>((r, memory.bytes_read() / PAGE_SIZE))
    })();
    let d = vm.resume()?;
    stats.pauses += 1;
    stats.paused += d;
    stats.longest_pause = stats.longest_pause.max(d);
    let (r, pages) = outcome?;
    stats.pages_read += pages;
    Ok(r)
}

/// A memory shared with the caller, who reads what it recorded (pages
/// touched, pages missing, bytes read) after the analysis is done.
#[derive(Debug)]
struct Shared<M>(Arc<M>);

impl<M: PhysicalMemory> PhysicalMemory for Shared<M> {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), hangscope_dump::Error> {
        self.0.read(addr, buf)
    }
    fn page(&self, pfn: u64) -> Option<&[u8]> {
        self.0.page(pfn)
    }
    fn has_page(&self, pfn: u64) -> bool {
        self.0.has_page(pfn)
    }
    fn ranges(&self) -> &[PhysRange] {
        self.0.ranges()
    }
}

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
