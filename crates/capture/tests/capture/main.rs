//! End-to-end capture tests: a tiny long-mode guest of our own (tests/guest/
//! stub.S) runs under QEMU TCG, directly (QMP) and under libvirt (virsh);
//! we dump it and check that the dump's memory map, markers and every
//! vCPU's registers match what the stub set and what QEMU's monitor says.

mod elfcore;
mod support;

use elfcore::ElfCore;
use hangscope_capture::{capture, CaptureOptions, DumpFormat, Manifest, Target, MANIFEST_FILE};
use hangscope_dump::{CpuState, Dump, PhysAddr};
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{expect, stub, HmpCpu, LibvirtGuest, QemuGuest, TempDir};

fn qmp_options(g: &QemuGuest, out: &Path) -> CaptureOptions {
    let mut o = CaptureOptions::new(
        Target::Qmp {
            socket: g.qmp.clone(),
        },
        out.to_path_buf(),
    );
    o.progress = false;
    o
}

fn libvirt_options(g: &LibvirtGuest, out: &Path) -> CaptureOptions {
    let mut o = CaptureOptions::new(
        Target::Libvirt {
            domain: g.name.clone(),
            uri: Some("qemu:///system".into()),
        },
        out.to_path_buf(),
    );
    o.progress = false;
    o
}

/// The files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The manifest on disk equals the one returned, and every dump's size and
/// SHA-256 are right; no `.partial` file is left.
fn check_manifest(dir: &Path, m: &Manifest) {
    let on_disk: Manifest =
        serde_json::from_str(&fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(&on_disk, m);
    assert_eq!(m.schema_version, 1);
    assert!(!m.host.is_empty());
    assert!(m.ended.is_some());
    assert_eq!(m.error, None);
    assert_eq!(m.guest_memory_bytes, Some(expect::RAM));
    assert_eq!(m.vcpus, Some(expect::VCPUS as u32));
    assert!(
        m.qemu_version
            .as_deref()
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()) && v.contains('.')),
        "{:?}",
        m.qemu_version
    );
    for d in &m.dumps {
        let (size, sha) = hangscope_capture::hash_file(&dir.join(&d.file)).unwrap();
        assert_eq!(
            (size, sha.as_str()),
            (d.size, d.sha256.as_str()),
            "{}",
            d.file
        );
        assert!(d.started <= d.ended);
    }
    let names = files(dir);
    assert!(
        !names.iter().any(|n| n.ends_with(".partial")),
        "partial files left: {names:?}"
    );
    assert_eq!(names.len(), m.dumps.len() + 1, "{names:?}");
}

/// Every vCPU in `cpus` (from hangscope-dump) matches QEMU's monitor.
fn check_cpus_against_monitor(cpus: &[CpuState], hmp: &[HmpCpu]) {
    assert_eq!(
        cpus.len(),
        hmp.len(),
        "vCPU count: dump vs `info registers -a`"
    );
    for (c, h) in cpus.iter().zip(hmp) {
        let i = c.index;
        assert_eq!(c.gpr, h.gpr(), "cpu {i} general registers");
        assert_eq!(c.rip, h.reg("RIP"), "cpu {i} RIP");
        assert_eq!(c.rflags, h.reg("RFL"), "cpu {i} RFLAGS");
        assert_eq!(c.cr3, Some(h.reg("CR3")), "cpu {i} CR3");
        assert_eq!(c.gs_base, Some(h.seg("GS").1), "cpu {i} GS base");
        assert_eq!(c.fs_base, Some(h.seg("FS").1), "cpu {i} FS base");
        let sels = ["CS", "DS", "ES", "FS", "GS", "SS"].map(|s| h.seg(s).0);
        assert_eq!(c.selectors, sels, "cpu {i} selectors");
        if let Some(cr0) = c.cr0 {
            assert_eq!(cr0, h.reg("CR0"), "cpu {i} CR0");
        }
        if let Some(cr4) = c.cr4 {
            assert_eq!(cr4, h.reg("CR4"), "cpu {i} CR4");
        }
        if let Some(efer) = c.efer {
            assert_eq!(efer, h.reg("EFER"), "cpu {i} EFER");
        }
    }
}

/// Every vCPU holds exactly what the stub put there.
fn check_stub_cpus(cpus: &[CpuState]) {
    assert_eq!(cpus.len(), expect::VCPUS);
    for (n, c) in cpus.iter().enumerate() {
        let n64 = n as u64;
        assert_eq!(c.index as usize, n);
        assert_eq!(c.gpr, expect::gpr(n64), "cpu {n}: stub general registers");
        assert_eq!(c.rip, stub().rips[n], "cpu {n}: stub RIP (after its hlt)");
        assert_eq!(c.gpr[CpuState::RSP], expect::rsp(n64));
        assert_eq!(c.rflags, 0x2, "cpu {n}: RFLAGS");
        assert_eq!(c.cr3, Some(expect::CR3));
        assert_eq!(c.gs_base, Some(expect::gs_base(n64)), "cpu {n}: GS base");
        assert_eq!(c.fs_base, Some(expect::fs_base(n64)), "cpu {n}: FS base");
        if let Some(k) = c.kernel_gs_base {
            assert_eq!(k, expect::kernel_gs_base(n64), "cpu {n}: KernelGSBase");
        }
        if let Some(efer) = c.efer {
            assert_eq!(efer, expect::EFER, "cpu {n}: EFER");
        }
        assert_eq!(c.selectors[0], expect::CS);
        assert_eq!(c.selectors[5], expect::DS);
    }
}

/// The monitor agrees with the stub too (so the comparison above is not
/// two wrong readings agreeing).
fn check_monitor(hmp: &[HmpCpu]) {
    assert_eq!(hmp.len(), expect::VCPUS);
    for (n, h) in hmp.iter().enumerate() {
        let n64 = n as u64;
        assert_eq!(h.gpr(), expect::gpr(n64), "monitor cpu {n}");
        assert_eq!(h.reg("RIP"), stub().rips[n]);
        assert_eq!(h.reg("CR3"), expect::CR3);
        assert_eq!(h.reg("EFER"), expect::EFER);
        assert_eq!(h.reg("CR0") & expect::CR0_PG_PE, expect::CR0_PG_PE);
        assert_eq!(h.seg("GS").1, expect::gs_base(n64));
    }
}

fn check_markers(mem: &dyn hangscope_dump::PhysicalMemory) {
    for (at, text) in [
        (expect::MARKER_LOW_AT, expect::MARKER_LOW),
        (expect::MARKER_HIGH_AT, expect::MARKER_HIGH),
    ] {
        let mut buf = vec![0u8; text.len()];
        mem.read(PhysAddr(at), &mut buf)
            .unwrap_or_else(|e| panic!("marker at {at:#x}: {e}"));
        assert_eq!(buf, text, "marker at {at:#x}");
    }
    // Each KPCR-like page starts with its own (virtual) address.
    for n in 0..expect::VCPUS as u64 {
        let mut self_ptr = [0u8; 8];
        mem.read(PhysAddr(expect::gs_base(n) - expect::KBASE), &mut self_ptr)
            .unwrap();
        assert_eq!(u64::from_le_bytes(self_ptr), expect::gs_base(n));
    }
    // Guest RAM is all there: the run starting at 0 covers the 64 MiB.
    let ranges = mem.ranges();
    let ram: u64 = ranges
        .iter()
        .filter(|r| r.start.0 < 4 << 30)
        .filter(|r| r.start.0 < expect::RAM)
        .map(|r| r.len)
        .sum();
    assert_eq!(ram, expect::RAM, "RAM below 4 GiB in the dump: {ranges:?}");
    let mut past = [0u8; 1];
    assert!(
        mem.read(PhysAddr(expect::RAM), &mut past).is_err(),
        "no RAM past 64 MiB"
    );
}

/// Check an ELF dump: with our own note parser, then with hangscope-dump.
fn check_elf_dump(path: &Path, hmp: &[HmpCpu]) {
    let core = ElfCore::parse(fs::read(path).unwrap());
    let ram = core
        .loads
        .iter()
        .find(|l| l.paddr == 0)
        .expect("a PT_LOAD at physical 0");
    assert_eq!(
        ram.filesz,
        expect::RAM,
        "the RAM segment is the guest's RAM size"
    );
    assert_eq!(
        core.read_phys(expect::MARKER_LOW_AT, expect::MARKER_LOW.len()),
        Some(expect::MARKER_LOW)
    );
    assert_eq!(
        core.read_phys(expect::MARKER_HIGH_AT, expect::MARKER_HIGH.len()),
        Some(expect::MARKER_HIGH)
    );
    assert_eq!(core.cpus.len(), hmp.len());
    for (i, (c, h)) in core.cpus.iter().zip(hmp).enumerate() {
        assert_eq!(c.gpr, h.gpr(), "ELF note cpu {i} registers");
        assert_eq!(c.rip, h.reg("RIP"), "ELF note cpu {i} RIP");
        assert_eq!(c.cr[3], h.reg("CR3"), "ELF note cpu {i} CR3");
        assert_eq!(c.rflags, h.reg("RFL"), "ELF note cpu {i} RFLAGS");
        assert_eq!(c.seg_base[4], h.seg("GS").1, "ELF note cpu {i} GS base");
        assert_eq!(
            c.prstatus_fs_base,
            h.seg("FS").1,
            "NT_PRSTATUS cpu {i} FS base"
        );
        let sels = ["CS", "DS", "ES", "FS", "GS", "SS"].map(|s| u32::from(h.seg(s).0));
        assert_eq!(c.seg_selector, sels, "ELF note cpu {i} selectors");
    }
    for (n, c) in core.cpus.iter().enumerate() {
        let n64 = n as u64;
        assert_eq!(c.gpr, expect::gpr(n64), "ELF note cpu {n}");
        assert_eq!(c.rip, stub().rips[n]);
        assert_eq!(c.cr[3], expect::CR3);
        assert_eq!(c.seg_base[4], expect::gs_base(n64));
        assert_eq!(c.prstatus_gs_base, expect::gs_base(n64));
        assert_eq!(c.kernel_gs_base, Some(expect::kernel_gs_base(n64)));
    }

    let dump = Dump::open(path).unwrap_or_else(|e| panic!("Dump::open({}): {e}", path.display()));
    assert_eq!(dump.format, hangscope_dump::DumpFormat::ElfCore);
    check_dump_contents(&dump, hmp);
}

fn check_dump_contents(dump: &Dump, hmp: &[HmpCpu]) {
    check_markers(dump.memory.as_ref());
    check_cpus_against_monitor(&dump.cpus, hmp);
    check_stub_cpus(&dump.cpus);
}

/// A kdump-zlib capture (makedumpfile flattened) reads back the same.
fn check_kdump(path: &Path, hmp: &[HmpCpu]) {
    let head = fs::read(path).unwrap();
    assert!(
        head.starts_with(b"makedumpfile"),
        "flattened kdump signature"
    );
    match Dump::open(path) {
        Ok(dump) => {
            assert_eq!(dump.format, hangscope_dump::DumpFormat::Kdump);
            check_markers(dump.memory.as_ref());
            eprintln!(
                "kdump {}: {} vCPU register sets, {} ranges",
                path.display(),
                dump.cpus.len(),
                dump.memory.ranges().len()
            );
            if !dump.cpus.is_empty() {
                check_cpus_against_monitor(&dump.cpus, hmp);
                check_stub_cpus(&dump.cpus);
            }
        }
        Err(e) => {
            assert_eq!(e.name(), "Unsupported", "{e}");
            assert!(e.to_string().contains("not supported"), "{e}");
        }
    }
}

#[test]
fn qmp_elf_series_matches_the_monitor() {
    let g = QemuGuest::start("qmp-elf");
    // Freeze one moment: the monitor's view and the dumps are of it.
    g.qmp_execute("stop");
    let hmp = g.hmp_registers().unwrap();
    assert_eq!(hmp.len(), expect::VCPUS);
    check_monitor(&hmp);
    let out = TempDir::new("qmp-elf-out");
    let mut o = qmp_options(&g, out.path());
    o.count = 2;
    o.interval = Duration::from_millis(300);
    let mut seen = 0;
    let m = capture(&o, &mut |_| seen += 1).unwrap();
    assert_eq!(seen, 2);
    assert_eq!(m.method, "qmp");
    assert_eq!(m.domain, "qmp-elf");
    assert_eq!(m.format, "elf");
    assert_eq!(m.libvirt_version, None);
    assert_eq!(m.dumps.len(), 2);
    assert!(m.dumps.iter().all(|d| d.guest_state == "paused"));
    assert_ne!(m.dumps[0].file, m.dumps[1].file);
    // Same frozen moment, same bytes.
    assert_eq!(m.dumps[0].sha256, m.dumps[1].sha256);
    check_manifest(out.path(), &m);
    // query-cpus-fast lists the same vCPUs, by index, as the dump.
    let fast = g.qmp_execute("query-cpus-fast");
    let indexes: Vec<u64> = fast
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cpu-index"].as_u64().unwrap())
        .collect();
    for d in &m.dumps {
        let path = out.path().join(&d.file);
        check_elf_dump(&path, &hmp);
        let dump = Dump::open(&path).unwrap();
        let dumped: Vec<u64> = dump.cpus.iter().map(|c| u64::from(c.index)).collect();
        assert_eq!(dumped, indexes, "vCPU indexes: dump vs query-cpus-fast");
    }
    // A guest we found paused stays paused.
    assert_eq!(g.qmp_execute("query-status")["status"], "paused");

    // --pause on a running guest: suspended for the dump, running after.
    g.qmp_execute("cont");
    let out2 = TempDir::new("qmp-elf-pause");
    let mut o = qmp_options(&g, out2.path());
    o.pause = true;
    let m = capture(&o, &mut |_| {}).unwrap();
    assert_eq!(m.dumps[0].guest_state, "running");
    assert_eq!(g.qmp_execute("query-status")["status"], "running");
    check_manifest(out2.path(), &m);
    // The guest halts with interrupts off: its registers cannot change.
    let hmp = g.hmp_registers().unwrap();
    check_elf_dump(&out2.path().join(&m.dumps[0].file), &hmp);
}

#[test]
fn qmp_kdump_zlib_reads_back() {
    let g = QemuGuest::start("qmp-kdump");
    let hmp = g.hmp_registers().unwrap();
    let out = TempDir::new("qmp-kdump-out");
    let mut o = qmp_options(&g, out.path());
    o.format = DumpFormat::KdumpZlib;
    let m = capture(&o, &mut |_| {}).unwrap();
    assert_eq!(m.format, "kdump-zlib");
    assert!(m.dumps[0].file.ends_with(".kdump"));
    // Compressed: much smaller than the 64 MiB of RAM.
    assert!(m.dumps[0].size < expect::RAM / 4, "{}", m.dumps[0].size);
    check_manifest(out.path(), &m);
    check_kdump(&out.path().join(&m.dumps[0].file), &hmp);
    // One directory holds one series: a second one is refused, the first
    // one's manifest kept.
    let before = fs::read(out.path().join(MANIFEST_FILE)).unwrap();
    let e = capture(&o, &mut |_| {}).unwrap_err();
    assert_eq!(e.name(), "DirectoryInUse", "{e}");
    assert_eq!(fs::read(out.path().join(MANIFEST_FILE)).unwrap(), before);
    assert_eq!(files(out.path()).len(), 2);
}

#[test]
fn qmp_refused_formats_report_qemu_text_and_leave_nothing() {
    let g = QemuGuest::start("qmp-refused");
    for format in [
        DumpFormat::KdumpLzo,
        DumpFormat::KdumpSnappy,
        DumpFormat::WinDmp,
    ] {
        let out = TempDir::new("qmp-refused-out");
        let mut o = qmp_options(&g, out.path());
        o.format = format;
        let e = capture(&o, &mut |_| {}).unwrap_err();
        let msg = e.to_string();
        eprintln!("{}: {msg}", format.qemu_name());
        assert_eq!(e.name(), "Qemu", "{msg}");
        let hangscope_capture::ErrorKind::Qemu { desc, .. } = &e.kind else {
            unreachable!()
        };
        assert!(!desc.is_empty());
        assert!(msg.contains(desc.as_str()));
        if format != DumpFormat::WinDmp {
            assert!(msg.contains("offers only: elf, kdump-zlib"), "{msg}");
        }
        // Only the manifest, recording the failure.
        assert_eq!(files(out.path()), vec![MANIFEST_FILE.to_string()]);
        let m: Manifest =
            serde_json::from_str(&fs::read_to_string(out.path().join(MANIFEST_FILE)).unwrap())
                .unwrap();
        assert!(m.dumps.is_empty());
        assert_eq!(m.error.as_deref(), Some(msg.as_str()));
    }
    // The guest is still alive and running after the refusals.
    assert_eq!(g.qmp_execute("query-status")["status"], "running");
}

/// Cancel as soon as a partial file appears (Ctrl-C does the same through
/// the SIGINT flag): whichever way the race goes, the capture reports an
/// interruption and leaves no dump, partial or final.
fn cancel_when_partial_appears(o: &CaptureOptions) -> std::thread::JoinHandle<()> {
    let dir = o.out_dir.clone();
    let flag = o.cancel.clone();
    std::thread::spawn(move || {
        for _ in 0..30_000 {
            if fs::read_dir(&dir)
                .map(|r| {
                    r.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                })
                .unwrap_or(false)
            {
                flag.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

fn check_interrupted(dir: &Path, e: hangscope_capture::Error) {
    assert_eq!(e.name(), "Interrupted", "{e}");
    let names = files(dir);
    assert_eq!(names, vec![MANIFEST_FILE.to_string()], "{names:?}");
}

#[test]
fn qmp_cancel_removes_the_partial_dump() {
    let g = QemuGuest::start("qmp-cancel");
    let out = TempDir::new("qmp-cancel-out");
    let o = qmp_options(&g, out.path());
    let watcher = cancel_when_partial_appears(&o);
    let e = capture(&o, &mut |_| {}).unwrap_err();
    watcher.join().unwrap();
    check_interrupted(out.path(), e);
    // A series cancelled between dumps keeps the finished ones.
    let out = TempDir::new("qmp-cancel-series");
    let mut o = qmp_options(&g, out.path());
    o.count = 3;
    o.interval = Duration::from_secs(60);
    let flag = o.cancel.clone();
    let e = capture(&o, &mut |_| flag.store(true, Ordering::SeqCst)).unwrap_err();
    assert_eq!(e.name(), "Interrupted", "{e}");
    let m: Manifest =
        serde_json::from_str(&fs::read_to_string(out.path().join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(m.dumps.len(), 1);
    assert!(m.error.unwrap().contains("between dumps"));
    assert_eq!(files(out.path()).len(), 2);
}

#[test]
fn libvirt_capture_matches_the_monitor() {
    let g = LibvirtGuest::start("capture");
    assert_eq!(g.state(), "running");
    let out = TempDir::new("libvirt-out");
    let mut o = libvirt_options(&g, out.path());
    o.pause = true;
    let m = capture(&o, &mut |_| {}).unwrap();
    assert_eq!(g.state(), "running", "--pause resumes the guest");
    assert_eq!(m.method, "libvirt");
    assert_eq!(m.domain, g.name);
    assert!(m.uuid.is_some());
    assert!(m
        .libvirt_version
        .as_deref()
        .is_some_and(|v| v.starts_with(char::is_numeric)));
    assert!(m
        .qemu_version
        .as_deref()
        .is_some_and(|v| v.starts_with(char::is_numeric)));
    assert_eq!(m.dumps[0].guest_state, "running");
    check_manifest(out.path(), &m);
    let hmp = g.hmp_registers();
    check_monitor(&hmp);
    check_elf_dump(&out.path().join(&m.dumps[0].file), &hmp);

    // kdump-zlib through virsh.
    let out = TempDir::new("libvirt-kdump");
    let mut o = libvirt_options(&g, out.path());
    o.format = DumpFormat::KdumpZlib;
    let m = capture(&o, &mut |_| {}).unwrap();
    check_manifest(out.path(), &m);
    check_kdump(&out.path().join(&m.dumps[0].file), &hmp);

    // A format this QEMU lacks: libvirt's/QEMU's text comes through.
    let out = TempDir::new("libvirt-lzo");
    let mut o = libvirt_options(&g, out.path());
    o.format = DumpFormat::KdumpLzo;
    let e = capture(&o, &mut |_| {}).unwrap_err();
    eprintln!("virsh kdump-lzo: {e}");
    assert_eq!(e.name(), "Virsh", "{e}");
    assert!(e.to_string().contains("error:"), "{e}");
    assert_eq!(files(out.path()), vec![MANIFEST_FILE.to_string()]);

    // Ctrl-C during a dump.
    let out = TempDir::new("libvirt-cancel");
    let o = libvirt_options(&g, out.path());
    let watcher = cancel_when_partial_appears(&o);
    let e = capture(&o, &mut |_| {}).unwrap_err();
    watcher.join().unwrap();
    check_interrupted(out.path(), e);
    assert_eq!(g.state(), "running");

    // A full disk under libvirt: libvirt's text comes through, nothing is left.
    if let Some(fs16) = support::Tmpfs::mount("libvirt-full", 16) {
        let mut o = libvirt_options(&g, fs16.dir.path());
        o.check_space = false;
        let e = capture(&o, &mut |_| {}).unwrap_err();
        eprintln!("virsh full disk: {e}");
        assert_eq!(e.name(), "NoSpace", "{e}");
        assert!(e.to_string().contains("No space left on device"), "{e}");
        assert_eq!(files(fs16.dir.path()), vec![MANIFEST_FILE.to_string()]);
        assert_eq!(g.state(), "running");
    }
}

#[test]
fn libvirt_missing_domain_is_named() {
    support::ensure_libvirt();
    let out = TempDir::new("libvirt-missing");
    let mut o = CaptureOptions::new(
        Target::Libvirt {
            domain: "hangscope-no-such-domain".into(),
            uri: Some("qemu:///system".into()),
        },
        out.path().to_path_buf(),
    );
    o.progress = false;
    let e = capture(&o, &mut |_| {}).unwrap_err();
    assert_eq!(e.name(), "DomainNotFound", "{e}");
    assert!(e.to_string().contains("hangscope-no-such-domain"), "{e}");
}

#[test]
fn libvirt_shut_off_domain_is_not_running() {
    support::ensure_libvirt();
    let name = format!("hscapture-test-shutoff-{}", std::process::id());
    let dir = TempDir::new("libvirt-shutoff");
    let xml = dir.path().join("d.xml");
    fs::write(
        &xml,
        format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>16</memory>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
        ),
    )
    .unwrap();
    support::virsh(&["define", xml.to_str().unwrap()]).unwrap();
    struct Undefine(String);
    impl Drop for Undefine {
        fn drop(&mut self) {
            let _ = support::virsh(&["undefine", &self.0]);
        }
    }
    let _undefine = Undefine(name.clone());
    let mut o = CaptureOptions::new(
        Target::Libvirt {
            domain: name.clone(),
            uri: Some("qemu:///system".into()),
        },
        dir.path().join("out"),
    );
    o.progress = false;
    let e = capture(&o, &mut |_| {}).unwrap_err();
    assert_eq!(e.name(), "DomainNotRunning", "{e}");
    assert!(e.to_string().contains("shut off"), "{e}");
}

#[test]
fn qmp_full_disk_is_reported_and_cleaned_up() {
    let Some(fs16) = support::Tmpfs::mount("full", 16) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let g = QemuGuest::start("qmp-full");
    // The free-space check refuses before QEMU writes anything.
    let out = fs16.dir.path().join("a");
    let o = qmp_options(&g, &out);
    let e = capture(&o, &mut |_| {}).unwrap_err();
    assert_eq!(e.name(), "NoSpace", "{e}");
    assert!(e.to_string().contains("64 MiB"), "{e}");
    assert_eq!(files(&out), vec![MANIFEST_FILE.to_string()]);
    // Without the check QEMU runs out of space itself: its text comes
    // through and the partial file goes.
    let out = fs16.dir.path().join("b");
    let mut o = qmp_options(&g, &out);
    o.check_space = false;
    let e = capture(&o, &mut |_| {}).unwrap_err();
    eprintln!("full disk: {e}");
    assert_eq!(e.name(), "NoSpace", "{e}");
    assert!(e.to_string().contains("No space left on device"), "{e}");
    assert_eq!(files(&out), vec![MANIFEST_FILE.to_string()]);
    assert_eq!(g.qmp_execute("query-status")["status"], "running");

    // A read-only file system: a permission problem, said as such.
    let ro = support::Tmpfs::mount_with("ro", "size=1m,mode=0755,ro").unwrap();
    let o = qmp_options(&g, ro.dir.path());
    let e = capture(&o, &mut |_| {}).unwrap_err();
    eprintln!("read-only: {e}");
    assert_eq!(e.name(), "Permission", "{e}");
    assert!(e.to_string().contains("Read-only file system"), "{e}");
}

#[test]
fn qmp_second_client_is_explained() {
    let g = QemuGuest::start("qmp-busy");
    // Hold the socket the way libvirt or an open monitor session would.
    let _holder = hangscope_capture::qmp::Qmp::connect(&g.qmp).unwrap();
    let out = TempDir::new("qmp-busy-out");
    let e = capture(&qmp_options(&g, out.path()), &mut |_| {}).unwrap_err();
    assert_eq!(e.name(), "Timeout", "{e}");
    assert!(e.to_string().contains("another client"), "{e}");
}

/// The child half of `ctrl_c_interrupts_the_cli`: runs `hangscope capture`'s
/// `cli::run` in a process of its own, so a real SIGINT can be sent to it.
/// Does nothing unless the parent set the environment.
#[test]
fn ctrl_c_child() {
    let (Ok(socket), Ok(out)) = (
        std::env::var("HSCAPTURE_CHILD_QMP"),
        std::env::var("HSCAPTURE_CHILD_OUT"),
    ) else {
        return;
    };
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: hangscope_capture::cli::CaptureArgs,
    }
    let cli = Cli::parse_from(["capture", "--qmp", &socket, "-o", &out, "--no-progress"]);
    let e = hangscope_capture::cli::run(&cli.args).unwrap_err();
    assert_eq!(e.name(), "Interrupted", "{e}");
    println!("CHILD-INTERRUPTED: {e}");
}

#[test]
fn ctrl_c_interrupts_the_cli() {
    let g = QemuGuest::start("qmp-sigint");
    let out = TempDir::new("qmp-sigint-out");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ctrl_c_child", "--nocapture", "--test-threads=1"])
        .env("HSCAPTURE_CHILD_QMP", &g.qmp)
        .env("HSCAPTURE_CHILD_OUT", out.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // The partial file lives while QEMU writes and the child hashes
    // (hundreds of ms for 64 MiB): poll fast enough not to miss it.
    support::poll_until(
        "the child starts writing a .partial dump",
        Duration::from_millis(1),
        || files(out.path()).iter().any(|n| n.ends_with(".partial")),
    );
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let res = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success() && stdout.contains("CHILD-INTERRUPTED"),
        "child: {:?}\n{stdout}\n{}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(files(out.path()), vec![MANIFEST_FILE.to_string()]);
}
