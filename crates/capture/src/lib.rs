//! Take memory dumps of running (or hung) VMs, through libvirt or QEMU QMP.
//!
//! A capture asks the hypervisor for a *memory-only* dump
//! (`virsh dump --memory-only`, or QMP `dump-guest-memory` with
//! `paging: false`): guest physical memory plus every vCPU's registers, in
//! an ELF core by default. The file is written as `NAME.partial` and renamed
//! only once complete and hashed, so a final name always means a whole dump.
//! A series (`count` > 1) takes one dump every `interval`; a
//! [`Manifest`] (`manifest.json`) beside the dumps records the domain, host,
//! versions, times, sizes and SHA-256 sums, and is rewritten after every dump.
//!
//! QEMU stops the guest's vCPUs while it writes a memory-only dump and
//! resumes them afterwards, so each dump is one consistent moment whatever
//! the options; [`CaptureOptions::pause`] additionally keeps the guest
//! suspended from before the dump until after it (so nothing runs between
//! the state query and the dump).
//!
//! ```no_run
//! use hangscope_capture::{capture, CaptureOptions, DumpFormat, Target};
//! use std::time::Duration;
//!
//! let mut opts = CaptureOptions::new(
//!     Target::Libvirt { domain: "win7-hung".into(), uri: None },
//!     "/var/tmp/hung".into(),
//! );
//! opts.format = DumpFormat::Elf;
//! opts.count = 3;
//! opts.interval = Duration::from_secs(10);
//! let manifest = capture(&opts, &mut |d| eprintln!("wrote {}", d.file))?;
//! println!("{} dumps", manifest.dumps.len());
//! # Ok::<(), hangscope_capture::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod cli;
mod error;
mod manifest;
pub mod qmp;
mod qmp_backend;
mod virsh;

pub use error::{Error, ErrorKind, Location};
pub use manifest::{
    file_stamp, now_rfc3339, rfc3339, DumpRecord, Manifest, MANIFEST_FILE, MANIFEST_SCHEMA_VERSION,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The dump formats QEMU's `dump-guest-memory` knows.
///
/// Debian 12's QEMU 7.2 writes `elf` and `kdump-zlib` (in the makedumpfile
/// *flattened* layout); it is built without lzo and snappy, and `win-dmp`
/// needs a Windows guest with the vmcoreinfo device. QEMU decides: this tool
/// passes the format on and reports QEMU's own error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DumpFormat {
    /// ELF core: `PT_LOAD` per RAM block, `NT_PRSTATUS` + `QEMU` notes per vCPU.
    #[default]
    Elf,
    /// kdump-compressed, zlib (makedumpfile flattened format).
    KdumpZlib,
    /// kdump-compressed, lzo.
    KdumpLzo,
    /// kdump-compressed, snappy.
    KdumpSnappy,
    /// A Windows crash dump (`PAGEDU64`), built by QEMU from the guest's
    /// vmcoreinfo; Windows guests with the vmcoreinfo device only.
    WinDmp,
}

impl DumpFormat {
    /// The name QEMU and virsh use.
    pub fn qemu_name(self) -> &'static str {
        match self {
            DumpFormat::Elf => "elf",
            DumpFormat::KdumpZlib => "kdump-zlib",
            DumpFormat::KdumpLzo => "kdump-lzo",
            DumpFormat::KdumpSnappy => "kdump-snappy",
            DumpFormat::WinDmp => "win-dmp",
        }
    }

    /// The file extension for this format.
    pub fn extension(self) -> &'static str {
        match self {
            DumpFormat::Elf => "elf",
            DumpFormat::KdumpZlib | DumpFormat::KdumpLzo | DumpFormat::KdumpSnappy => "kdump",
            DumpFormat::WinDmp => "dmp",
        }
    }

    /// Whether the file is about as large as guest RAM (uncompressed).
    pub fn is_uncompressed(self) -> bool {
        matches!(self, DumpFormat::Elf | DumpFormat::WinDmp)
    }
}

/// Which VM to dump, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A libvirt domain, through `virsh`.
    Libvirt {
        /// Domain name, id or UUID.
        domain: String,
        /// libvirt URI (`virsh -c`); `None` means virsh's default.
        uri: Option<String>,
    },
    /// A QEMU process's QMP Unix socket (`-qmp unix:PATH,server=on,wait=off`).
    Qmp {
        /// The socket.
        socket: PathBuf,
    },
}

/// Everything a capture needs.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// The VM.
    pub target: Target,
    /// Directory for the dumps and the manifest (created if missing).
    pub out_dir: PathBuf,
    /// Dump format.
    pub format: DumpFormat,
    /// Number of dumps (at least 1).
    pub count: u32,
    /// Time between the starts of two dumps of a series.
    pub interval: Duration,
    /// Suspend the guest before each dump and restore its run state after.
    pub pause: bool,
    /// Show a progress bar on stderr (hidden anyway when stderr is no TTY).
    pub progress: bool,
    /// Refuse an uncompressed dump that would not fit in the free space.
    pub check_space: bool,
    /// File name prefix; defaults to the domain name.
    pub prefix: Option<String>,
    /// Set to true to stop the capture (cleanly, removing partial files).
    /// [`install_sigint_handler`] makes Ctrl-C set [`sigint_flag`] instead;
    /// both are honoured.
    pub cancel: Arc<AtomicBool>,
}

impl CaptureOptions {
    /// Defaults: one ELF dump, no pause, progress bar, space check.
    pub fn new(target: Target, out_dir: PathBuf) -> CaptureOptions {
        CaptureOptions {
            target,
            out_dir,
            format: DumpFormat::Elf,
            count: 1,
            interval: Duration::from_secs(10),
            pause: false,
            progress: true,
            check_space: true,
            prefix: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst) || SIGINT.load(Ordering::SeqCst)
    }
}

static SIGINT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    SIGINT.store(true, Ordering::SeqCst);
}

/// Make SIGINT and SIGTERM set [`sigint_flag`] instead of killing the process, so a
/// capture can abort the hypervisor's job and remove its partial file.
pub fn install_sigint_handler() {
    let handler = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The flag Ctrl-C sets once [`install_sigint_handler`] ran.
pub fn sigint_flag() -> &'static AtomicBool {
    &SIGINT
}

/// What a backend tells about the VM before dumping.
#[derive(Debug, Clone, Default)]
pub(crate) struct VmInfo {
    pub domain: String,
    pub uuid: Option<String>,
    pub qemu_version: Option<String>,
    pub libvirt_version: Option<String>,
    pub memory_bytes: Option<u64>,
    pub vcpus: Option<u32>,
}

/// The two ways to reach QEMU.
pub(crate) trait Backend {
    fn method(&self) -> &'static str;
    fn target(&self) -> String;
    fn info(&mut self) -> Result<VmInfo, Error>;
    /// The run state: `running`, `paused`, `shut off`, ...; errors with
    /// [`ErrorKind::DomainNotRunning`] when there is no memory to dump.
    fn state(&mut self) -> Result<String, Error>;
    fn suspend(&mut self) -> Result<(), Error>;
    fn resume(&mut self) -> Result<(), Error>;
    /// Write the dump to `partial`; call `progress(done, total)` as it goes;
    /// stop and clean up when `cancelled()` turns true.
    fn dump(
        &mut self,
        partial: &Path,
        format: DumpFormat,
        progress: &mut dyn FnMut(u64, u64),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(), Error>;
}

/// Take the dump or series `opts` describes. `on_dump` is called after each
/// finished dump. The manifest is also written to `out_dir/manifest.json`,
/// including the error when the series stops early.
pub fn capture(
    opts: &CaptureOptions,
    on_dump: &mut dyn FnMut(&DumpRecord),
) -> Result<Manifest, Error> {
    if opts.count == 0 {
        return Err(Error::new(ErrorKind::BadOptions(
            "--count must be at least 1".into(),
        )));
    }
    let mut backend: Box<dyn Backend> = match &opts.target {
        Target::Libvirt { domain, uri } => Box::new(virsh::Virsh::new(domain, uri.as_deref())),
        Target::Qmp { socket } => Box::new(qmp_backend::QmpBackend::connect(socket)?),
    };
    let info = backend.info()?;
    fs::create_dir_all(&opts.out_dir)
        .map_err(|e| Error::io("create the output directory", &opts.out_dir, &e))?;
    check_directory_free(&opts.out_dir)?;
    let mut manifest = Manifest {
        schema_version: MANIFEST_SCHEMA_VERSION,
        tool: format!("hangscope-capture {}", env!("CARGO_PKG_VERSION")),
        method: backend.method().into(),
        target: backend.target(),
        domain: info.domain.clone(),
        uuid: info.uuid.clone(),
        host: hostname(),
        qemu_version: info.qemu_version.clone(),
        libvirt_version: info.libvirt_version.clone(),
        format: opts.format.qemu_name().into(),
        guest_memory_bytes: info.memory_bytes,
        vcpus: info.vcpus,
        pause: opts.pause,
        count: opts.count,
        interval_secs: opts.interval.as_secs_f64(),
        started: now_rfc3339(),
        ended: None,
        dumps: Vec::new(),
        error: None,
    };
    // Written first: proves the directory is writable before the guest is
    // touched, and records the attempt even if this process dies.
    write_manifest(&opts.out_dir, &manifest)?;
    let prefix = sanitize(opts.prefix.as_deref().unwrap_or(&info.domain));
    let result = run_series(
        opts,
        backend.as_mut(),
        &info,
        &prefix,
        &mut manifest,
        on_dump,
    );
    manifest.ended = Some(now_rfc3339());
    if let Err(e) = &result {
        manifest.error = Some(e.to_string());
    }
    let written = write_manifest(&opts.out_dir, &manifest);
    result?;
    written?;
    Ok(manifest)
}

fn run_series(
    opts: &CaptureOptions,
    backend: &mut dyn Backend,
    info: &VmInfo,
    prefix: &str,
    manifest: &mut Manifest,
    on_dump: &mut dyn FnMut(&DumpRecord),
) -> Result<(), Error> {
    let series_start = Instant::now();
    for seq in 0..opts.count {
        if seq > 0 {
            // Start-to-start spacing; a dump slower than the interval is
            // followed at once by the next.
            let due = series_start + opts.interval * seq;
            while Instant::now() < due {
                if opts.cancelled() {
                    return Err(interrupted("between dumps; the finished dumps are kept"));
                }
                std::thread::sleep((due - Instant::now()).min(Duration::from_millis(100)));
            }
        }
        if opts.cancelled() {
            return Err(interrupted("before the dump started; nothing was written"));
        }
        let (record, after) = dump_once(opts, backend, info, prefix, seq)?;
        on_dump(&record);
        manifest.dumps.push(record);
        write_manifest(&opts.out_dir, manifest)?;
        if let Some(e) = after {
            return Err(e);
        }
    }
    Ok(())
}

fn interrupted(what: &str) -> Error {
    Error::new(ErrorKind::Interrupted(what.into()))
}

fn dump_once(
    opts: &CaptureOptions,
    backend: &mut dyn Backend,
    info: &VmInfo,
    prefix: &str,
    seq: u32,
) -> Result<(DumpRecord, Option<Error>), Error> {
    let state = backend.state()?;
    if opts.check_space && opts.format.is_uncompressed() {
        if let Some(needed) = info.memory_bytes {
            if let Some(available) = free_space(&opts.out_dir) {
                // Headers and notes add a little; 1 MiB covers them.
                if available < needed.saturating_add(1 << 20) {
                    return Err(Error::new(ErrorKind::NoSpace {
                        needed,
                        available,
                        detail: String::new(),
                    })
                    .at(Location::Path(opts.out_dir.clone())));
                }
            }
        }
    }
    let started_at = SystemTime::now();
    let name = format!(
        "{prefix}-{}-{seq:03}.{}",
        file_stamp(started_at),
        opts.format.extension()
    );
    let final_path = opts.out_dir.join(&name);
    let partial = opts.out_dir.join(format!("{name}.partial"));
    if final_path.exists() {
        return Err(Error::new(ErrorKind::Io {
            op: "create the dump",
            message: "a file of that name exists already; not overwriting it".into(),
        })
        .at(Location::Path(final_path)));
    }
    let _ = fs::remove_file(&partial);

    let suspended = opts.pause && state == "running";
    if suspended {
        backend.suspend()?;
    }
    let bar = progress_bar(opts.progress, &name);
    // Until QEMU reports its total, the guest's RAM is the best guess.
    if let Some(m) = info.memory_bytes {
        bar.set_length(m);
    }
    let t0 = Instant::now();
    let mut on_progress = |done: u64, total: u64| {
        if total > 0 {
            bar.set_length(total);
        }
        bar.set_position(done);
    };
    let cancelled = || opts.cancelled();
    let dumped = backend.dump(&partial, opts.format, &mut on_progress, &cancelled);
    let duration = t0.elapsed();
    bar.finish_and_clear();
    // Resume before anything else can fail: a guest left suspended by a
    // monitoring tool would be a worse outage than a missing dump.
    let resume_failed = match suspended {
        true => backend.resume().err().map(|e| {
            Error::new(ErrorKind::ResumeFailed(e.to_string()))
                .at(Location::Domain(info.domain.clone()))
        }),
        false => None,
    };
    if let Err(e) = dumped {
        let _ = fs::remove_file(&partial);
        return Err(resume_failed.unwrap_or(e));
    }
    let finish = (|| {
        if opts.cancelled() {
            return Err(interrupted("the dump finished but was discarded"));
        }
        let bar = progress_bar(opts.progress, &format!("sha256 {name}"));
        let hashed = hash_file_with(&partial, &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
            // Hashing a large dump takes minutes: Ctrl-C must not wait for it.
            !opts.cancelled()
        });
        bar.finish_and_clear();
        let (size, sha256) = hashed?;
        if size == 0 {
            return Err(Error::new(ErrorKind::Io {
                op: "write the dump",
                message: "the hypervisor reported success but the file is empty".into(),
            })
            .at(Location::Path(partial.clone())));
        }
        fs::rename(&partial, &final_path)
            .map_err(|e| Error::io("rename the finished dump", &final_path, &e))?;
        Ok((size, sha256))
    })();
    let (size, sha256) = match finish {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    let record = DumpRecord {
        file: name,
        sequence: seq,
        format: opts.format.qemu_name().into(),
        started: rfc3339(started_at),
        ended: now_rfc3339(),
        duration_ms: duration.as_millis() as u64,
        size,
        sha256,
        guest_state: state,
    };
    // A good dump is kept and recorded even when the guest would not
    // resume; the series stops there and says so.
    Ok((record, resume_failed))
}

fn progress_bar(enabled: bool, name: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(name.to_string());
    bar
}

/// Size and SHA-256 (lowercase hex) of the file at `path`.
pub fn hash_file(path: &Path) -> Result<(u64, String), Error> {
    hash_file_with(path, &|_, _| true)
}

/// [`hash_file`], calling `progress(done, total)` every 64 MiB; it returns
/// false to stop (then the result is [`ErrorKind::Interrupted`]).
fn hash_file_with(
    path: &Path,
    progress: &dyn Fn(u64, u64) -> bool,
) -> Result<(u64, String), Error> {
    let mut f = fs::File::open(path).map_err(|e| Error::io("read the dump", path, &e))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read the dump", path, &e)),
        };
        h.update(&buf[..n]);
        size += n as u64;
        if size % (64 << 20) < n as u64 && !progress(size, total.max(size)) {
            return Err(interrupted(
                "while hashing the finished dump; the dump was discarded",
            ));
        }
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((size, hex))
}

/// Refuse a directory whose manifest lists dumps: its series would lose its
/// record. A manifest without dumps (a failed attempt) may be replaced.
fn check_directory_free(dir: &Path) -> Result<(), Error> {
    let path = dir.join(MANIFEST_FILE);
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    let dumps = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("dumps").and_then(|d| d.as_array()).map(Vec::len))
        // Not our manifest, or unreadable: do not overwrite it either.
        .unwrap_or(usize::MAX);
    if dumps == 0 {
        return Ok(());
    }
    Err(Error::new(ErrorKind::DirectoryInUse {
        dumps: if dumps == usize::MAX { 0 } else { dumps },
    })
    .at(Location::Path(path)))
}

/// Write `manifest.json` atomically (temporary file, then rename).
fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), Error> {
    let path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!("{MANIFEST_FILE}.partial"));
    let mut text = serde_json::to_string_pretty(manifest).map_err(|e| {
        Error::new(ErrorKind::Io {
            op: "serialise the manifest",
            message: e.to_string(),
        })
    })?;
    text.push('\n');
    fs::write(&tmp, text).map_err(|e| Error::io("write the manifest", &tmp, &e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("write the manifest", &path, &e))
}

/// Bytes available to this user in the file system holding `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs(3) fills the zeroed struct we own; `c` is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    (st.f_bavail as u64).checked_mul(st.f_frsize as u64)
}

/// This host's name.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A domain name made safe for a file name: path separators and oddities become `_`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "vm".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_names_usable() {
        assert_eq!(sanitize("win7-hung"), "win7-hung");
        assert_eq!(sanitize("/run/qemu/vm.sock"), "_run_qemu_vm.sock");
        assert_eq!(sanitize("../.."), "_..");
        assert_eq!(sanitize(""), "vm");
    }

    #[test]
    fn count_zero_is_refused() {
        let mut o = CaptureOptions::new(
            Target::Qmp {
                socket: "/nonexistent".into(),
            },
            "/tmp".into(),
        );
        o.count = 0;
        assert_eq!(capture(&o, &mut |_| {}).unwrap_err().name(), "BadOptions");
    }

    /// A hypervisor stand-in: writes a small file as the "dump"; its
    /// resume can be made to fail.
    struct Fake {
        state: String,
        fail_resume: bool,
        calls: Vec<&'static str>,
    }

    impl Backend for Fake {
        fn method(&self) -> &'static str {
            "fake"
        }
        fn target(&self) -> String {
            "fake".into()
        }
        fn info(&mut self) -> Result<VmInfo, Error> {
            Ok(VmInfo::default())
        }
        fn state(&mut self) -> Result<String, Error> {
            Ok(self.state.clone())
        }
        fn suspend(&mut self) -> Result<(), Error> {
            self.calls.push("suspend");
            Ok(())
        }
        fn resume(&mut self) -> Result<(), Error> {
            self.calls.push("resume");
            match self.fail_resume {
                true => Err(Error::new(ErrorKind::Protocol("cont refused".into()))),
                false => Ok(()),
            }
        }
        fn dump(
            &mut self,
            partial: &Path,
            _: DumpFormat,
            _: &mut dyn FnMut(u64, u64),
            _: &dyn Fn() -> bool,
        ) -> Result<(), Error> {
            self.calls.push("dump");
            fs::write(partial, b"\x7fELF fake dump").map_err(|e| Error::io("w", partial, &e))
        }
    }

    fn series(fake: &mut Fake, count: u32) -> (Result<(), Error>, Manifest, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "hangscope-capture-unit-{}-{count}-{}",
            std::process::id(),
            fake.fail_resume
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut o = CaptureOptions::new(Target::Qmp { socket: "x".into() }, dir.clone());
        o.pause = true;
        o.count = count;
        o.interval = Duration::ZERO;
        o.progress = false;
        let info = VmInfo {
            domain: "vm".into(),
            ..VmInfo::default()
        };
        let mut m = Manifest {
            schema_version: MANIFEST_SCHEMA_VERSION,
            tool: String::new(),
            method: String::new(),
            target: String::new(),
            domain: "vm".into(),
            uuid: None,
            host: String::new(),
            qemu_version: None,
            libvirt_version: None,
            format: "elf".into(),
            guest_memory_bytes: None,
            vcpus: None,
            pause: true,
            count,
            interval_secs: 0.0,
            started: String::new(),
            ended: None,
            dumps: Vec::new(),
            error: None,
        };
        let r = run_series(&o, fake, &info, "vm", &mut m, &mut |_| {});
        (r, m, dir)
    }

    #[test]
    fn pause_suspends_and_resumes_around_each_dump() {
        let mut fake = Fake {
            state: "running".into(),
            fail_resume: false,
            calls: Vec::new(),
        };
        let (r, m, dir) = series(&mut fake, 2);
        r.unwrap();
        assert_eq!(
            fake.calls,
            ["suspend", "dump", "resume", "suspend", "dump", "resume"]
        );
        assert_eq!(m.dumps.len(), 2);
        assert_eq!(m.dumps[0].size, 14);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_guest_that_will_not_resume_keeps_the_dump_and_stops_the_series() {
        let mut fake = Fake {
            state: "running".into(),
            fail_resume: true,
            calls: Vec::new(),
        };
        let (r, m, dir) = series(&mut fake, 3);
        let e = r.unwrap_err();
        assert_eq!(e.name(), "ResumeFailed");
        assert!(e.to_string().contains("STILL PAUSED"), "{e}");
        assert!(e.to_string().contains("cont refused"), "{e}");
        assert_eq!(fake.calls, ["suspend", "dump", "resume"]);
        assert_eq!(m.dumps.len(), 1, "the good dump is kept and recorded");
        assert!(dir.join(&m.dumps[0].file).exists());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_paused_guest_is_left_alone() {
        let mut fake = Fake {
            state: "paused".into(),
            fail_resume: true,
            calls: Vec::new(),
        };
        let (r, _, dir) = series(&mut fake, 1);
        r.unwrap();
        assert_eq!(fake.calls, ["dump"]);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_qmp_socket_says_how_to_start_qemu() {
        let o = CaptureOptions::new(
            Target::Qmp {
                socket: "/nonexistent/qmp.sock".into(),
            },
            "/tmp".into(),
        );
        let e = capture(&o, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("-qmp unix:"), "{e}");
    }
}
