//! A running VM opened for reading: its monitor, its QEMU process, where
//! its RAM lives, and the pause it may be under.

use crate::layout::{parse_flat_view, parse_gpa2hva, parse_maps, HostMapping, RamRange};
use crate::memory::{Backing, LiveMemory, Source};
use crate::monitor::{Monitor, Target};
use crate::watchdog::Watchdog;
use crate::Error;
use hangscope_dump::{CpuState, Dump, DumpFormat, KernelHints, PhysicalMemory};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running QEMU guest, ready to be read.
///
/// Dropping it while the guest is paused by it resumes the guest (a panic
/// unwinds through here too); a crash that skips the drop is covered by
/// the [`Watchdog`] when one is armed.
#[derive(Debug)]
pub struct LiveVm {
    target: Target,
    monitor: Monitor,
    pid: u32,
    mem: Arc<File>,
    sources: Vec<Source>,
    layout: Vec<RamRange>,
    paused_since: Option<Instant>,
    pauses: Vec<Duration>,
    watchdog: Option<Watchdog>,
}

impl LiveVm {
    /// Reach the VM, find QEMU's process and every RAM range's host
    /// memory. Nothing is paused.
    pub fn open(target: &Target) -> Result<LiveVm, Error> {
        let mut monitor = Monitor::connect(target)?;
        let pid = monitor.qemu_pid()?;
        if let Target::Pid(p) = target {
            if *p != pid {
                return Err(Error::Target(format!(
                    "process {p}'s monitor belongs to QEMU process {pid}"
                )));
            }
        }
        let mem = open_process_memory(pid)?;
        let mtree = monitor.hmp("info mtree -f")?;
        let flat = parse_flat_view(&mtree)?;
        let maps_text = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .map_err(|e| Error::Io(format!("/proc/{pid}/maps: {e}")))?;
        let maps = parse_maps(&maps_text);
        let mut layout = Vec::new();
        let mut sources = Vec::new();
        for (gpa, len, region, rom) in flat {
            let answer = monitor.hmp(&format!("gpa2hva {gpa:#x}"))?;
            let hva = parse_gpa2hva(&answer).ok_or_else(|| {
                Error::Layout(format!(
                    "QEMU gave no host address for {gpa:#x} ({region}): {}",
                    answer.trim()
                ))
            })?;
            let backing = backing_of(pid, &maps, hva, len, &region)?;
            layout.push(RamRange {
                gpa,
                len,
                region,
                rom,
                hva,
            });
            sources.push(Source { gpa, len, backing });
        }
        if sources.is_empty() {
            return Err(Error::Layout("QEMU's address space has no RAM".into()));
        }
        Ok(LiveVm {
            target: target.clone(),
            monitor,
            pid,
            mem: Arc::new(mem),
            sources,
            layout,
            paused_since: None,
            pauses: Vec::new(),
            watchdog: None,
        })
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The guest-physical ranges and where each lives on the host.
    pub fn layout(&self) -> &[RamRange] {
        &self.layout
    }

    /// Guest RAM size, ROMs excluded.
    pub fn ram_bytes(&self) -> u64 {
        self.layout.iter().filter(|r| !r.rom).map(|r| r.len).sum()
    }

    /// QEMU's run state (`running`, `paused`, `prelaunch`, ...).
    pub fn status(&mut self) -> Result<String, Error> {
        self.monitor.status()
    }

    /// Every vCPU's registers now.
    pub fn registers(&mut self) -> Result<Vec<CpuState>, Error> {
        let text = self.monitor.hmp("info registers -a")?;
        Ok(crate::regs::parse_info_registers(&text))
    }

    /// Guest RAM as it is now; `record` keeps the set of pages read.
    pub fn memory(&self, record: bool) -> LiveMemory {
        LiveMemory::new(self.mem.clone(), self.sources.clone(), record)
    }

    /// Start a watchdog process (`exe __live-watchdog TARGET`) that resumes
    /// the guest should this process die while the guest is paused.
    pub fn arm_watchdog(&mut self, exe: &Path) -> Result<(), Error> {
        self.watchdog = Some(Watchdog::spawn(exe, &self.target)?);
        Ok(())
    }

    /// Stop the guest's vCPUs. Call only on a running guest.
    pub fn pause(&mut self) -> Result<(), Error> {
        if self.paused_since.is_some() {
            return Ok(());
        }
        if let Some(w) = &mut self.watchdog {
            w.pausing()?;
        }
        let t0 = Instant::now();
        self.monitor.stop()?;
        self.paused_since = Some(t0);
        test_hook("paused");
        Ok(())
    }

    /// Let the guest run again; returns how long it was paused (from
    /// before the stop command to after the cont command answered).
    pub fn resume(&mut self) -> Result<Duration, Error> {
        let Some(t0) = self.paused_since else {
            return Ok(Duration::ZERO);
        };
        self.monitor
            .cont()
            .map_err(|e| Error::ResumeFailed(e.to_string()))?;
        let d = t0.elapsed();
        self.paused_since = None;
        self.pauses.push(d);
        if let Some(w) = &mut self.watchdog {
            // The guest runs; a watchdog that cannot hear it only resumes
            // a running guest, which is harmless.
            let _ = w.resumed();
        }
        Ok(d)
    }

    /// Every pause so far, in order.
    pub fn pauses(&self) -> &[Duration] {
        &self.pauses
    }

    /// A [`Dump`] over `memory` with these registers: what the stages
    /// above read, as from a dump file.
    pub fn dump(&self, memory: Box<dyn PhysicalMemory>, cpus: Vec<CpuState>) -> Dump {
        Dump {
            format: DumpFormat::Live,
            memory,
            cpus,
            hints: KernelHints::default(),
            file_size: self.ram_bytes(),
        }
    }
}

impl Drop for LiveVm {
    fn drop(&mut self) {
        if self.paused_since.is_some() {
            match self.resume() {
                Ok(d) => eprintln!(
                    "hangscope: resumed the guest on the way out (paused {:.1} ms)",
                    d.as_secs_f64() * 1e3
                ),
                Err(e) => eprintln!("hangscope: {e}"),
            }
        }
        if let Some(w) = self.watchdog.take() {
            w.finish();
        }
    }
}

/// Test-only fault injection: `HANGSCOPE_LIVE_FAULT=STEP:abort|panic|sleep`
/// crashes (or stalls 30 s) at STEP, so that tests can prove the guest is
/// resumed whatever happens to hangscope.
pub(crate) fn test_hook(step: &str) {
    let Ok(spec) = std::env::var("HANGSCOPE_LIVE_FAULT") else {
        return;
    };
    let Some((at, what)) = spec.split_once(':') else {
        return;
    };
    if at != step {
        return;
    }
    match what {
        "abort" => std::process::abort(),
        "panic" => panic!("HANGSCOPE_LIVE_FAULT at {step}"),
        "sleep" => std::thread::sleep(Duration::from_secs(30)),
        _ => {}
    }
}

/// Open `/proc/PID/mem` read-only, or say what stops us.
fn open_process_memory(pid: u32) -> Result<File, Error> {
    let path = format!("/proc/{pid}/mem");
    File::open(&path).map_err(|e| {
        let denied = matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM));
        if !denied {
            return Error::Io(format!("{path}: {e}"));
        }
        Error::Permission(permission_advice(pid, &path, &e))
    })
}

/// Why `/proc/PID/mem` is closed to us and what to change.
fn permission_advice(pid: u32, path: &str, e: &std::io::Error) -> String {
    let uid_of = |p: &str| -> Option<u32> {
        std::fs::read_to_string(p)
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let qemu_uid = uid_of(&format!("/proc/{pid}/status"));
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let mut why = Vec::new();
    if let Some(u) = qemu_uid.filter(|u| *u != me && me != 0) {
        why.push(format!(
            "QEMU runs as uid {u} and hangscope as uid {me}: run hangscope as root or as uid {u} \
             (e.g. `sudo hangscope live ...`)"
        ));
    }
    match scope {
        Some(3) => why.push(
            "kernel.yama.ptrace_scope is 3 (no process may read another's memory until reboot): \
             set it lower at boot, or use a shared memory backend (`-object \
             memory-backend-file,share=on`) that hangscope maps instead"
                .into(),
        ),
        Some(s @ (1 | 2)) => why.push(format!(
            "kernel.yama.ptrace_scope is {s}: run as root, grant hangscope CAP_SYS_PTRACE \
             (`setcap cap_sys_ptrace+ep $(which hangscope)`), or allow it with \
             `sysctl kernel.yama.ptrace_scope=0`"
        )),
        _ => {}
    }
    if why.is_empty() {
        why.push(
            "reading another process's memory needs ptrace access to it: run hangscope as root \
             or as QEMU's user, or grant it CAP_SYS_PTRACE"
                .into(),
        );
    }
    format!(
        "cannot read QEMU's memory through {path}: {e}. {}",
        why.join("; ")
    )
}

/// How to read one guest range at `hva`: its shared file, mapped
/// read-only, or QEMU's process memory.
fn backing_of(
    pid: u32,
    maps: &[HostMapping],
    hva: u64,
    len: u64,
    region: &str,
) -> Result<Backing, Error> {
    let end = hva
        .checked_add(len)
        .ok_or_else(|| Error::Layout(format!("{region}: host range overflows")))?;
    let m = maps
        .iter()
        .find(|m| m.start <= hva && end <= m.end)
        .ok_or_else(|| {
            Error::Layout(format!(
                "{region} at host {hva:#x}+{len:#x} is not inside one mapping of QEMU process {pid}"
            ))
        })?;
    if !(m.shared && m.inode != 0) {
        return Ok(Backing::Process { hva });
    }
    let offset = m.offset + (hva - m.start);
    match map_shared_file(pid, m, offset, len) {
        Some(map) => Ok(Backing::File {
            map: Arc::new(map),
            offset: 0,
        }),
        None => Ok(Backing::Process { hva }),
    }
}

/// Map `len` bytes at `offset` of the file behind a shared mapping,
/// read-only: first through `/proc/PID/map_files` (works for deleted
/// files and memfds), else by its path when that is the same inode.
fn map_shared_file(pid: u32, m: &HostMapping, offset: u64, len: u64) -> Option<memmap2::Mmap> {
    use std::os::unix::fs::MetadataExt;
    let by_map_files = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    let file = File::open(&by_map_files).ok().or_else(|| {
        let f = File::open(&m.path).ok()?;
        (f.metadata().ok()?.ino() == m.inode).then_some(f)
    })?;
    // SAFETY: a read-only shared mapping; QEMU writes the file as the guest
    // runs, which changes what we read but cannot break the mapping (the
    // file is not truncated while QEMU maps it).
    unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(usize::try_from(len).ok()?)
            .map(&file)
    }
    .ok()
}
