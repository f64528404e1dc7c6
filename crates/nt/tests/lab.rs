//! The kernel model read back from lab images, compared with the lab's
//! ground truth exactly: several builds, every dump format, and images the
//! test corrupts on purpose.

use hangscope_dump::Dump;
use hangscope_lab::format::{self, Format};
use hangscope_lab::image::LabImage;
use hangscope_lab::truth::GroundTruth;
use hangscope_lab::{build, builds, BuildOptions, Scenario, Symbols};
use hangscope_nt::{Kernel, SymbolSource, VirtAddr};
use hangscope_symbols::SymbolStore;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

struct Lab {
    _dir: tempfile::TempDir,
    path: PathBuf,
    truth: GroundTruth,
}

fn lab_image(scenario: &str, build_alias: &str, seed: u64) -> (LabImage, GroundTruth) {
    let sc = Scenario::builtin(scenario).unwrap_or_else(|e| panic!("{e}"));
    let opts = BuildOptions {
        ram_size: Some(64 << 20),
        seed,
        build: Some(build_alias.into()),
    };
    build(&sc, Symbols::Default, &opts)
        .unwrap_or_else(|e| panic!("{scenario} on {build_alias}: {e}"))
}

fn write(img: &LabImage, truth: GroundTruth, fmt: Format) -> Lab {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("image.{}", fmt.extension()));
    format::write(img, fmt, &path, false).unwrap_or_else(|e| panic!("write: {e}"));
    Lab {
        _dir: dir,
        path,
        truth,
    }
}

fn symbols() -> SymbolSource {
    let spec = builds::symbols_dir().display().to_string();
    SymbolSource::from_store(SymbolStore::from_path_spec(&spec).expect("symbol path"))
}

fn hexset<A: std::fmt::LowerHex>(v: &[A]) -> BTreeSet<String> {
    v.iter().map(|a| format!("{a:#x}")).collect()
}

/// Compare everything the model reads with the truth; returns the
/// mismatches so one run shows them all.
fn compare(k: &Kernel<'_>, t: &GroundTruth) -> Vec<String> {
    let mut bad = Vec::new();
    let mut check = |what: String, ok: bool| {
        if !ok {
            bad.push(what);
        }
    };
    // Kernel facts.
    let info = k.info();
    check(
        format!(
            "kernel base {:#x} != {:#x}",
            info.kernel_base, t.kernel.kernel_base
        ),
        info.kernel_base.0 == t.kernel.kernel_base,
    );
    check(
        format!("dtb {:?} != {:#x}", info.dtb, t.kernel.dtb),
        info.dtb == Some(t.kernel.dtb),
    );
    check(
        format!("build {:?} != {}", info.build, t.kernel.build_number),
        info.build == Some(t.kernel.build_number),
    );
    check(
        format!(
            "version {:?}.{:?} != {:?}",
            info.major_version, info.minor_version, t.kernel.version
        ),
        (info.major_version, info.minor_version)
            == (Some(t.kernel.version.0), Some(t.kernel.version.1)),
    );
    check(
        format!("pdb {:?}", info.pdb),
        info.pdb.guid == t.kernel.pdb_guid && info.pdb.age == t.kernel.pdb_age,
    );
    check(
        format!(
            "cpus {:?} != {}",
            info.processor_count, t.kernel.number_processors
        ),
        info.processor_count == Some(t.kernel.number_processors),
    );
    check(
        format!("tick {:?} != {}", info.tick_count, t.kernel.tick_count),
        info.tick_count == Some(t.kernel.tick_count),
    );
    check(
        format!(
            "max increment {:?} != {}",
            info.max_increment, t.kernel.max_increment
        ),
        info.max_increment == Some(t.kernel.max_increment),
    );
    let cpus: Vec<(u32, u64, u64, u64)> = info
        .cpus
        .iter()
        .map(|c| {
            (
                c.index,
                c.kpcr.0,
                c.kprcb.0,
                c.current_thread.map(|t| t.0).unwrap_or(0),
            )
        })
        .collect();
    let tcpus: Vec<(u32, u64, u64, u64)> = t
        .kernel
        .cpus
        .iter()
        .map(|c| (c.index, c.kpcr, c.kprcb, c.current_thread))
        .collect();
    check(format!("cpus {cpus:x?} != {tcpus:x?}"), cpus == tcpus);

    // Processes, in list order.
    let ps = k.processes();
    check(
        format!("process warnings {:?}", ps.warnings),
        ps.warnings.is_empty(),
    );
    check(
        format!("{} processes, truth {}", ps.items.len(), t.processes.len()),
        ps.items.len() == t.processes.len(),
    );
    for (p, tp) in ps.items.iter().zip(&t.processes) {
        let got = (
            p.address.0,
            p.pid,
            p.ppid,
            &p.name,
            p.session,
            p.create_time,
            p.thread_count,
            p.dtb,
        );
        let want = (
            tp.address,
            tp.pid,
            tp.ppid,
            &tp.name,
            tp.session,
            Some(tp.create_time),
            Some(tp.thread_count),
            tp.dtb,
        );
        check(format!("process {got:x?} != {want:x?}"), got == want);
    }

    // Threads.
    let th = k.threads();
    check(
        format!("thread warnings {:?}", th.warnings),
        th.warnings.is_empty(),
    );
    check(
        format!("{} threads, truth {}", th.items.len(), t.threads.len()),
        th.items.len() == t.threads.len(),
    );
    let by_addr: HashMap<u64, &hangscope_nt::model::ThreadInfo> =
        th.items.iter().map(|x| (x.address.0, x)).collect();
    for tt in &t.threads {
        let Some(x) = by_addr.get(&tt.address) else {
            check(format!("thread {:#x} not found", tt.address), false);
            continue;
        };
        let (state, reason) = (x.state.to_string(), x.wait_reason.map(|w| w.to_string()));
        let got = (
            x.tid,
            x.pid,
            state.as_str(),
            reason.as_deref(),
            x.wait_time,
            x.cpu,
            x.start_address.0,
            hexset(&x.waits_on),
            hexset(&x.irps),
        );
        let want = (
            tt.tid,
            tt.pid,
            tt.state.as_str(),
            tt.wait_reason.as_deref(),
            tt.wait_time,
            tt.cpu,
            tt.start_address,
            hexset(&tt.waits_on),
            hexset(&tt.irps),
        );
        check(
            format!("thread {:#x}: {got:x?} != {want:x?}", tt.address),
            got == want,
        );
        if tt.wait_ticks.is_some() {
            check(
                format!(
                    "thread {:#x} ticks {:?} != {:?}",
                    tt.address, x.wait_ticks, tt.wait_ticks
                ),
                x.wait_ticks == tt.wait_ticks,
            );
            let close = match (x.wait_seconds, tt.wait_seconds) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-6,
                _ => false,
            };
            check(
                format!(
                    "thread {:#x} seconds {:?} != {:?}",
                    tt.address, x.wait_seconds, tt.wait_seconds
                ),
                close,
            );
        }
    }

    // Modules.
    let ms = k.modules();
    check(
        format!("module warnings {:?}", ms.warnings),
        ms.warnings.is_empty(),
    );
    let got: Vec<_> = ms
        .items
        .iter()
        .map(|m| (m.base.0, m.size, m.name.clone(), m.path.clone()))
        .collect();
    let want: Vec<_> = t
        .modules
        .iter()
        .map(|m| (m.base, m.size, m.name.clone(), m.path.clone()))
        .collect();
    check(format!("modules {got:x?} != {want:x?}"), got == want);

    // ERESOURCEs.
    let rs = k.eresources();
    check(
        format!("resource warnings {:?}", rs.warnings),
        rs.warnings.is_empty(),
    );
    // The truth lists the scenario's resources; the lab links a few idle
    // ones too: those must be neither owned nor waited on.
    for r in &rs.items {
        if !t.eresources.iter().any(|x| x.address == r.address.0) {
            check(
                format!("resource {:#x} not in the truth but busy: {r:?}", r.address),
                r.owners.is_empty() && r.waiters.is_empty() && r.active_count == 0,
            );
        }
    }
    for tr in &t.eresources {
        let Some(r) = rs.items.iter().find(|r| r.address.0 == tr.address) else {
            check(
                format!("resource {:#x} ({}) not found", tr.address, tr.name),
                false,
            );
            continue;
        };
        let owners: BTreeSet<(u64, bool)> =
            r.owners.iter().map(|o| (o.thread.0, o.exclusive)).collect();
        let towners: BTreeSet<(u64, bool)> =
            tr.owners.iter().map(|o| (o.thread, o.exclusive)).collect();
        let waiters: BTreeSet<(u64, bool)> = r
            .waiters
            .iter()
            .map(|o| (o.thread.0, o.exclusive))
            .collect();
        let twaiters: BTreeSet<(u64, bool)> =
            tr.waiters.iter().map(|o| (o.thread, o.exclusive)).collect();
        // The objects waiters block on, found from the ERESOURCE: on 1607
        // each shared waiter's KEVENT comes from walking the _KWAIT_CHAIN,
        // elsewhere the one SharedWaiters semaphore.
        let got = (
            r.active_count,
            r.exclusive,
            r.contention_count,
            owners,
            waiters,
            (
                r.shared_waiters.0,
                &r.shared_wait_events
                    .iter()
                    .map(|e| e.0)
                    .collect::<Vec<u64>>(),
                r.exclusive_waiters.0,
            ),
        );
        let want = (
            tr.active_count,
            tr.exclusive,
            tr.contention_count,
            towners,
            twaiters,
            (
                tr.shared_waiters,
                &tr.shared_wait_events,
                tr.exclusive_waiters,
            ),
        );
        check(
            format!(
                "resource {} {:#x}: {got:x?} != {want:x?}",
                tr.name, tr.address
            ),
            got == want,
        );
    }

    // Other dispatcher objects.
    let objs = k.dispatcher_objects();
    for d in &t.dispatcher_objects {
        match objs.iter().find(|(o, _)| o.address.0 == d.address) {
            Some((o, w)) => {
                let got = (o.kind.as_str(), o.owners.first().map(|t| t.0), hexset(w));
                let want = (d.kind.as_str(), d.owner, hexset(&d.waiters));
                check(
                    format!("object {} {:#x}: {got:x?} != {want:x?}", d.name, d.address),
                    got == want,
                );
            }
            None if d.waiters.is_empty() => {}
            None => check(
                format!("object {} {:#x} not found", d.name, d.address),
                false,
            ),
        }
    }

    // IRPs.
    for ti in &t.irps {
        match k.irp(VirtAddr(ti.address)) {
            Ok(i) => {
                let got: Vec<_> = i
                    .stack
                    .iter()
                    .map(|s| {
                        (
                            s.major_name.clone(),
                            s.minor,
                            s.device.0,
                            s.driver_name.clone().unwrap_or_default(),
                            s.file_object.0,
                        )
                    })
                    .collect();
                // The truth lists locations top-down (Stack[StackCount] first);
                // the model, like WinDbg, in memory order (location 1 first).
                let want: Vec<_> = ti
                    .stack
                    .iter()
                    .rev()
                    .map(|s| {
                        (
                            s.major.clone(),
                            s.minor,
                            s.device,
                            s.driver.clone(),
                            s.file_object,
                        )
                    })
                    .collect();
                check(
                    format!(
                        "irp {:#x}: {:?} != {:?}",
                        ti.address,
                        (i.thread, i.stack_count, i.current_location, &got),
                        (ti.thread, ti.stack_count, ti.current_location, &want)
                    ),
                    i.thread == Some(VirtAddr(ti.thread))
                        && i.stack_count == ti.stack_count
                        && i.current_location == ti.current_location
                        && got == want
                        && i.warnings.is_empty(),
                );
            }
            Err(e) => check(format!("irp {:#x}: {e}", ti.address), false),
        }
    }

    // File objects.
    for tf in &t.files {
        match k.file_object(VirtAddr(tf.address)) {
            Ok(f) => {
                let got = (&f.name, &f.path, f.device_name.as_deref().unwrap_or(""));
                let want = (&tf.name, &tf.path, tf.device.as_str());
                check(
                    format!("file {:#x}: {got:?} != {want:?}", tf.address),
                    got == want,
                );
            }
            Err(e) => check(format!("file {:#x}: {e}", tf.address), false),
        }
    }

    // Handles.
    let hs = k.handles();
    check(
        format!("handle warnings {:?}", hs.warnings),
        hs.warnings.is_empty(),
    );
    let got: BTreeSet<_> = hs
        .handles
        .iter()
        .map(|h| {
            (
                h.pid,
                h.handle,
                h.object.0,
                h.type_name.clone(),
                h.access,
                h.name.clone(),
            )
        })
        .collect();
    let want: BTreeSet<_> = t
        .handles
        .iter()
        .map(|h| {
            (
                h.pid,
                h.handle,
                h.object,
                h.type_name.clone(),
                h.access,
                h.name.clone(),
            )
        })
        .collect();
    if got != want {
        let missing: Vec<_> = want.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(&want).take(5).collect();
        check(
            format!(
                "handles: {} got, {} want; missing {missing:x?}; extra {extra:x?}",
                got.len(),
                want.len()
            ),
            false,
        );
    }
    bad
}

fn run(scenario: &str, build_alias: &str, fmt: Format, seed: u64) {
    let (img, truth) = lab_image(scenario, build_alias, seed);
    let lab = write(&img, truth, fmt);
    let dump = Dump::open(&lab.path).unwrap_or_else(|e| panic!("open: {e}"));
    let k = Kernel::open(&dump, &symbols()).unwrap_or_else(|e| panic!("kernel: {e}"));
    let bad = compare(&k, &lab.truth);
    assert!(
        bad.is_empty(),
        "{scenario} on {build_alias} ({}): {} mismatches:\n{}",
        fmt.name(),
        bad.len(),
        bad.join("\n")
    );
}

const BUILDS: &[&str] = &[
    "win7sp1",
    "win2012r2",
    "win2016",
    "win2019b",
    "win10-19041",
    "win2022",
    "win11",
];

/// Runs every case and reports all failures at once.
fn run_all(cases: &[(&str, &str, Format, u64)]) {
    let mut failures = Vec::new();
    for &(sc, b, f, seed) in cases {
        if let Err(e) = std::panic::catch_unwind(|| run(sc, b, f, seed)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(msg);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn temp_flood_on_every_build() {
    let cases: Vec<_> = BUILDS
        .iter()
        .enumerate()
        .map(|(i, b)| ("temp-flood", *b, Format::Raw, 11 + i as u64))
        .collect();
    run_all(&cases);
}

#[test]
fn deadlock_and_idle_on_every_build() {
    let mut cases = Vec::new();
    for (i, b) in BUILDS.iter().enumerate() {
        cases.push(("deadlock", *b, Format::Raw, 101 + i as u64));
        cases.push(("idle", *b, Format::Raw, 1001 + i as u64));
    }
    run_all(&cases);
}

#[test]
fn every_dump_format() {
    let mut cases = Vec::new();
    for f in Format::ALL {
        cases.push(("temp-flood", "win7sp1", f, 5));
        cases.push(("deadlock", "win10-19041", f, 6));
    }
    run_all(&cases);
}

#[test]
#[ignore]
fn debug_handles() {
    let (img, truth) = lab_image("temp-flood", "win7sp1", 7);
    let lab = write(&img, truth, Format::Raw);
    let dump = Dump::open(&lab.path).unwrap();
    let k = Kernel::open(&dump, &symbols()).unwrap();
    let hs = k.handles();
    eprintln!("warnings {:?}", hs.warnings);
    for h in hs
        .handles
        .iter()
        .filter(|h| h.pid == 0x898 && h.handle >= 0xbf0 && h.handle < 0xc10)
    {
        eprintln!("{:x} {:x} {}", h.handle, h.object, h.name);
    }
    let p = k.process_by_pid(0x898).unwrap();
    let ht = k.object("_HANDLE_TABLE", p.handle_table.unwrap()).unwrap();
    let code = ht.u64("TableCode").unwrap();
    eprintln!("code {code:x}");
    let m = k.read_memory(VirtAddr(code & !7), 64);
    eprintln!("{:x?}", m.bytes);
    for r in &k.eresources().items {
        eprintln!("res {:x} {:?}", r.address, r.symbol);
    }
    let m = k.read_memory(VirtAddr(0xfffffa804672d000), 48);
    eprintln!(
        "page3 {:x?}",
        m.bytes.iter().map(|b| b.unwrap_or(0)).collect::<Vec<u8>>()
    );
    for h in lab
        .truth
        .handles
        .iter()
        .filter(|h| h.pid == 0x898 && h.handle >= 0xbf0)
    {
        eprintln!("truth {:x} {:x} {}", h.handle, h.object, h.name);
    }
    for r in &lab.truth.eresources {
        eprintln!("truth res {:x} {}", r.address, r.name);
    }
}

/// A raw image on disk that the test patches at virtual addresses.
struct Patchable {
    lab: Lab,
    bytes: Vec<u8>,
}

impl Patchable {
    fn new(scenario: &str, build_alias: &str, seed: u64) -> Patchable {
        let (img, truth) = lab_image(scenario, build_alias, seed);
        let lab = write(&img, truth, Format::Raw);
        let bytes = std::fs::read(&lab.path).expect("read image");
        Patchable { lab, bytes }
    }

    /// Physical address of `va` through the kernel DTB (raw image: file
    /// offset == physical address).
    fn phys(&self, va: u64) -> u64 {
        let dump = Dump::open(&self.lab.path).expect("open");
        let space = hangscope_x64::AddressSpace::new(
            dump.memory.as_ref(),
            hangscope_x64::Dtb(hangscope_dump::PhysAddr(self.lab.truth.kernel.dtb)),
        );
        space
            .translate(hangscope_x64::VirtAddr(va))
            .unwrap_or_else(|e| panic!("{e}"))
            .paddr
            .0
    }

    fn put_u64(&mut self, va: u64, v: u64) {
        let p = self.phys(va) as usize;
        self.bytes[p..p + 8].copy_from_slice(&v.to_le_bytes());
        std::fs::write(&self.lab.path, &self.bytes).expect("write image");
    }

    /// Offset of a field path, through the same symbols the reader uses.
    fn offset(&self, ty: &str, path: &str) -> u64 {
        let dump = Dump::open(&self.lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        k.reader().offset_of(ty, path).expect("offset")
    }
}

/// An address no page maps in the lab's kernel space.
const UNMAPPED: u64 = 0xffff_f6fb_7dbe_d000 + 0x123_4560;

#[test]
fn resource_list_cycle_gives_a_warning_and_the_resources_before_it() {
    for b in ["win7sp1", "win10-19041"] {
        let mut p = Patchable::new("temp-flood", b, 21);
        let link = p.offset("_ERESOURCE", "SystemResourcesList");
        let first = p.lab.truth.eresources[0].address;
        let second = p.lab.truth.eresources[1].address;
        // second.Flink -> first: a loop that never returns to the head.
        p.put_u64(second + link, first + link);
        let dump = Dump::open(&p.lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let rs = k.eresources();
        assert!(
            rs.warnings
                .iter()
                .any(|w| w.kind == "BadData" && w.message.contains("loops")),
            "{b}: {:?}",
            rs.warnings
        );
        let got: Vec<u64> = rs.items.iter().map(|r| r.address.0).collect();
        assert!(
            got.contains(&first) && got.contains(&second),
            "{b}: {got:x?}"
        );
        // The rest of the model still works and the graph input says why
        // it is partial.
        let wg = k.wait_graph();
        assert!(wg.warnings.iter().any(|w| w.contains("loops")), "{b}");
        assert!(!wg.threads.is_empty());
    }
}

#[test]
fn owner_pointer_into_unmapped_memory_is_reported_not_fatal() {
    for b in ["win7sp1", "win2022"] {
        let mut p = Patchable::new("temp-flood", b, 22);
        let owner = p.offset("_ERESOURCE", "OwnerEntry.OwnerThread");
        let r = p.lab.truth.eresources[0].address;
        p.put_u64(r + owner, UNMAPPED);
        let dump = Dump::open(&p.lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let res = k
            .eresource(VirtAddr(r))
            .expect("the resource itself is readable");
        assert_eq!(res.owners[0].thread.0, UNMAPPED & !0xf, "{b}");
        let e = k
            .thread_detail(VirtAddr(UNMAPPED))
            .expect_err("owner is unreadable");
        assert_eq!(e.name(), "Fault", "{b}: {e}");
        assert!(e.to_string().contains("fffff6fb"), "{b}: {e}");
        let wg = k.wait_graph();
        assert!(wg
            .resources
            .iter()
            .any(|x| x.key == r && x.owners.iter().any(|o| o.thread == UNMAPPED & !0xf)));
    }
}

/// A 1607 `_KWAIT_CHAIN` broken after its second entry: the shared
/// waiters before the break are still found, the break is a warning that
/// names the address, and a chain made into a loop stops with one.
#[test]
fn broken_1607_wait_chain_keeps_the_waiters_before_the_break() {
    let tr = |p: &Patchable| {
        p.lab
            .truth
            .eresources
            .iter()
            .find(|r| r.shared_wait_events.len() >= 3)
            .cloned()
            .expect("temp-flood has a resource with three shared waiters")
    };
    let event = {
        let p = Patchable::new("temp-flood", "win2016", 24);
        p.offset("_KWAIT_CHAIN_ENTRY", "Event")
    };
    for (damage, kind) in [(UNMAPPED, "Fault"), (0, "BadData")] {
        let mut p = Patchable::new("temp-flood", "win2016", 24);
        let r = tr(&p);
        let link = p.offset("_KWAIT_CHAIN_ENTRY", "ListEntry");
        let next = p.offset("_SINGLE_LIST_ENTRY", "Next");
        let entry = |e: u64| e - event;
        let second = entry(r.shared_wait_events[1]);
        // Fault: Next into unmapped memory; BadData: Next back to the first
        // entry, a loop.
        let to = if damage == 0 {
            entry(r.shared_wait_events[0]) + link
        } else {
            damage
        };
        p.put_u64(second + link + next, to);
        let dump = Dump::open(&p.lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let rs = k.eresources();
        let got = rs
            .items
            .iter()
            .find(|x| x.address.0 == r.address)
            .expect("the resource is still listed");
        assert_eq!(
            got.shared_wait_events
                .iter()
                .map(|e| e.0)
                .collect::<Vec<u64>>(),
            r.shared_wait_events[..2],
            "{kind}: the events before the break"
        );
        assert!(
            rs.warnings.iter().any(|w| w.kind == kind
                && w.context.contains("SharedWaiters chain")
                && (damage == 0 || w.address.map(|a| a.0 & !0xfff) == Some(UNMAPPED & !0xfff))
                && w.address.is_some()),
            "{kind}: {:?}",
            rs.warnings
        );
        let _ = k.wait_graph();
    }
}

#[test]
fn broken_process_list_keeps_the_processes_before_the_break() {
    let mut p = Patchable::new("temp-flood", "win2012r2", 23);
    let link = p.offset("_EPROCESS", "ActiveProcessLinks");
    let third = p.lab.truth.processes[2].address;
    p.put_u64(third + link, UNMAPPED);
    let dump = Dump::open(&p.lab.path).expect("open");
    let k = Kernel::open(&dump, &symbols()).expect("kernel");
    let ps = k.processes();
    assert_eq!(ps.items.len(), 3);
    assert_eq!(ps.warnings.len(), 1, "{:?}", ps.warnings);
    assert_eq!(ps.warnings[0].kind, "Fault");
    assert_eq!(
        ps.warnings[0].address.map(|a| a.0 & !0xfff),
        Some(UNMAPPED & !0xfff)
    );
    // Threads, locks and the graph input still come out.
    let _ = k.wait_graph();
}

#[test]
fn seed_case_walk_from_lock_to_file() {
    // The engineer's walk: contended lock -> owner -> its lock -> owner
    // running -> IRP -> Ntfs -> file under \Windows\Temp.
    let (img, truth) = lab_image("temp-flood", "win7sp1", 3);
    let lab = write(&img, truth, Format::Elf);
    let dump = Dump::open(&lab.path).expect("open");
    let k = Kernel::open(&dump, &symbols()).expect("kernel");
    let vcb = k
        .eresources()
        .items
        .iter()
        .find(|r| r.is_contended() && !r.exclusive)
        .expect("a shared contended resource")
        .clone();
    let owner = k.thread_detail(vcb.owners[0].thread).expect("owner");
    assert_eq!(owner.thread.state, "Waiting");
    let wait = owner
        .waits
        .iter()
        .find(|w| w.eresource.is_some())
        .expect("the owner waits for another resource");
    let second = k
        .eresource(wait.eresource.unwrap())
        .expect("second resource");
    let busy = k
        .thread_detail(second.owners[0].thread)
        .expect("busy owner");
    assert_eq!(busy.thread.state, "Running");
    assert!(busy.thread.cpu.is_some());
    let irp = &busy.irps[0];
    let cur = irp.current().expect("current location");
    assert_eq!(cur.driver_name.as_deref(), Some("\\FileSystem\\Ntfs"));
    let f = k.file_object(cur.file_object).expect("file");
    assert!(
        f.path.to_ascii_lowercase().starts_with("\\windows\\temp\\"),
        "{}",
        f.path
    );
    // Waiters have waited about a second.
    for w in &vcb.waiters {
        let s = w.wait_seconds.expect("seconds");
        assert!(s > 0.0 && s < 5.0, "{s}");
    }
    // Who holds handles under the hot directory.
    let h = k.handles_filtered(None, Some("\\Windows\\Temp"));
    assert!(h.holders.iter().any(|x| x.process_name == "php-cgi.exe"));
    // JSON round trip of the detail.
    let j = serde_json::to_string(&busy).expect("json");
    let back: hangscope_nt::model::ThreadDetail = serde_json::from_str(&j).expect("parse");
    assert_eq!(back, busy);
}

#[test]
fn windbg_text_for_the_seed_case() {
    use hangscope_report::windbg;
    let (img, truth) = lab_image("temp-flood", "win7sp1", 3);
    let lab = write(&img, truth, Format::CrashFull);
    let dump = Dump::open(&lab.path).expect("open");
    let k = Kernel::open(&dump, &symbols()).expect("kernel");
    let info = windbg::kernel_info(&k.info());
    let locks = windbg::locks(k.eresources(), false);
    let busy = lab.truth.kernel.cpus[1].current_thread;
    let thread = windbg::thread(&k.thread_detail(VirtAddr(busy)).expect("thread"));
    let irp_addr = k.thread_info(VirtAddr(busy)).expect("thread").irps[0];
    let irp = windbg::irp(&k.irp(irp_addr).expect("irp"));
    let fo = k.irp(irp_addr).unwrap().current().unwrap().file_object;
    let fileobj = windbg::fileobj(&k.file_object(fo).expect("file"));
    let ps = windbg::process_list(k.processes());
    let lm = windbg::module_list(k.modules());
    let dt = windbg::dt(
        &k.dt("nt!_ERESOURCE", VirtAddr(lab.truth.eresources[0].address))
            .expect("dt"),
    );
    let threads = windbg::threads_table(&k.threads_of(None), &k.threads().warnings);
    let handles = windbg::handles(&k.handles_filtered(None, Some("\\Windows\\Temp")));
    let dq = windbg::dq(&k.read_memory(VirtAddr(lab.truth.kernel.kernel_base), 32));
    if std::env::var_os("HANGSCOPE_SHOW").is_some() {
        for t in [&info, &locks, &thread, &irp, &fileobj, &dt, &dq] {
            eprintln!("{t}\n-----");
        }
        eprintln!("{}", &ps[..ps.len().min(600)]);
        eprintln!("{}", &lm[..lm.len().min(600)]);
        eprintln!("{}", &threads[..threads.len().min(1200)]);
        eprintln!("{}", &handles[handles.len().saturating_sub(600)..]);
    }
    assert!(info.contains("Kernel Version 7601"), "{info}");
    assert!(locks.contains("Resource @ "), "{locks}");
    assert!(
        locks.contains("Threads Waiting On Exclusive Access:"),
        "{locks}"
    );
    assert!(thread.contains("RUNNING on processor 1"), "{thread}");
    assert!(thread.contains("IRP List:"), "{thread}");
    assert!(irp.contains("\\FileSystem\\Ntfs"), "{irp}");
    assert!(irp.lines().any(|l| l.starts_with('>')), "{irp}");
    assert!(fileobj.contains("\\Windows\\Temp\\"), "{fileobj}");
    assert!(ps.contains("Image: php-cgi.exe"), "{ps}");
    assert!(lm.contains("ntoskrnl") || lm.contains("nt"), "{lm}");
    assert!(dt.contains("+0x000 SystemResourcesList"), "{dt}");
    assert!(
        dq.starts_with(&format!("{:08x}`", lab.truth.kernel.kernel_base >> 32)),
        "{dq}"
    );
    assert!(handles.contains("php-cgi.exe"), "{handles}");
}

/// Timing figures (run with `--ignored --nocapture`): open and full walk
/// on the seed case at its own RAM size.
#[test]
#[ignore]
fn timing() {
    for (b, f) in [("win7sp1", Format::Raw), ("win10-19041", Format::Elf)] {
        let sc = Scenario::builtin("temp-flood").unwrap();
        let opts = BuildOptions {
            ram_size: None,
            seed: 9,
            build: Some(b.into()),
        };
        let (img, truth) = build(&sc, Symbols::Default, &opts).unwrap();
        let lab = write(&img, truth, f);
        let t0 = std::time::Instant::now();
        let dump = Dump::open(&lab.path).unwrap();
        let k = Kernel::open(&dump, &symbols()).unwrap();
        let t1 = t0.elapsed();
        let wg = k.wait_graph();
        let t2 = t0.elapsed();
        eprintln!(
            "{b} {}: {} MiB, open {:?}, wait graph {:?} ({} threads, {} resources, {} files, {} handles)",
            f.name(),
            img.ram_size() >> 20,
            t1,
            t2 - t1,
            wg.threads.len(),
            wg.resources.len(),
            wg.files.len(),
            k.handles().handles.len()
        );
    }
}

/// Scribble over random parts of the pages the lab wrote (structures,
/// lists, page tables) and run every reader: errors and warnings, never a
/// panic or an endless walk.
#[test]
fn scribbled_images_never_panic() {
    let builds = ["win7sp1", "win10-19041", "win2016"];
    let mut warned = 0;
    for seed in 0..6u64 {
        let b = builds[seed as usize % builds.len()];
        let (mut img, truth) = lab_image("temp-flood", b, 300 + seed);
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut pfns: Vec<u64> = img.pages.keys().copied().collect();
        pfns.sort_unstable();
        // Leave the first page-table pages alone in half the runs so the
        // kernel is still found and the walkers meet the damage.
        let skip = if seed % 2 == 0 { 0 } else { 8 };
        for _ in 0..200 {
            let pfn = pfns[skip + (next() as usize) % (pfns.len() - skip)];
            let page = img.pages.get_mut(&pfn).expect("page");
            let off = (next() % 4096) as usize & !7;
            let len = ((next() % 64) as usize).min(4096 - off);
            for b in &mut page[off..off + len] {
                *b = next() as u8;
            }
        }
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let Ok(k) = Kernel::open(&dump, &symbols()) else {
            continue;
        };
        let _ = k.info();
        let _ = k.modules();
        let wg = k.wait_graph();
        for t in wg.threads.iter().take(50) {
            let _ = k.thread_detail(VirtAddr(t.key));
        }
        for f in lab.truth.files.iter().take(20) {
            let _ = k.file_object(VirtAddr(f.address));
        }
        for i in &lab.truth.irps {
            let _ = k.irp(VirtAddr(i.address));
        }
        let _ = k.dt("_KTHREAD", VirtAddr(lab.truth.threads[0].address));
        let _ = serde_json::to_string(&wg).expect("json");
        eprintln!("seed {seed} {b}: {} warnings", wg.warnings.len());
        warned += usize::from(!wg.warnings.is_empty());
    }
    assert!(warned > 0, "the damage never reached a walker");
}

#[test]
fn pool_scan_finds_every_file_object() {
    for (b, seed) in [("win7sp1", 41), ("win10-19041", 42)] {
        let (img, truth) = lab_image("temp-flood", b, seed);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let pool = k.pool_file_objects();
        assert!(pool.warnings.is_empty(), "{:?}", pool.warnings);
        let want: BTreeSet<u64> = lab.truth.files.iter().map(|f| f.address).collect();
        let got: BTreeSet<u64> = pool.items.iter().copied().collect();
        assert_eq!(got, want, "{b}");
    }
}

/// The wait-for graph input this model builds gives the lab's expected
/// verdict (with `hangscope-waitgraph`'s analysis).
#[test]
fn wait_graph_input_gives_the_expected_verdict() {
    let mut bad = Vec::new();
    for (sc, b, seed) in [
        ("temp-flood", "win7sp1", 51),
        ("temp-flood", "win2022", 52),
        ("deadlock", "win7sp1", 53),
        ("deadlock", "win11", 54),
        ("idle", "win10-19041", 55),
        ("temp-flood", "win2016", 56),
        ("deadlock", "win2016", 57),
    ] {
        let (img, truth) = lab_image(sc, b, seed);
        let lab = write(&img, truth, Format::Elf);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let input = k.wait_graph();
        let v = hangscope_waitgraph::analyze(&input, &Default::default());
        let got = serde_json::to_value(v.overall).expect("json");
        if got.as_str() != Some(lab.truth.verdict.overall.as_str()) {
            bad.push(format!(
                "{sc} on {b}: {got} != {}",
                lab.truth.verdict.overall
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Windows 10 1607 / Server 2016 queues shared ERESOURCE waiters on a
/// `_KWAIT_CHAIN`: each waiter blocks on the KEVENT of its own
/// `_KWAIT_CHAIN_ENTRY`, not on a semaphore the resource points to. Every
/// such wait must lead back to its ERESOURCE: in `!thread`, in the
/// resource's waiters, in the wait-for graph, and never as a loose event.
#[test]
fn shared_waiters_on_1607_wait_chain_resolve_to_their_eresource() {
    let mut bad = Vec::new();
    let mut shared_seen = 0;
    for (sc, seed) in [("temp-flood", 61), ("deadlock", 62)] {
        let (img, truth) = lab_image(sc, "win2016", seed);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        assert!(
            k.reader().has_field("_ERESOURCE", "SharedWaiters.Head"),
            "win2016's SharedWaiters is no longer a _KWAIT_CHAIN"
        );
        let input = k.wait_graph();
        let loose: BTreeSet<u64> = k
            .dispatcher_objects()
            .iter()
            .map(|(o, _)| o.address.0)
            .collect();
        for tr in &lab.truth.eresources {
            let Some(r) = k
                .eresources()
                .items
                .iter()
                .find(|r| r.address.0 == tr.address)
            else {
                bad.push(format!("{sc}: resource {} not found", tr.name));
                continue;
            };
            let shared: Vec<u64> = tr
                .waiters
                .iter()
                .filter(|w| !w.exclusive)
                .map(|w| w.thread)
                .collect();
            if r.shared_wait_events.len() != shared.len()
                || r.shared_waiters_count as usize != shared.len()
            {
                bad.push(format!(
                    "{sc} {}: {} chain events, NumberOfSharedWaiters {}, {} shared waiters",
                    tr.name,
                    r.shared_wait_events.len(),
                    r.shared_waiters_count,
                    shared.len()
                ));
            }
            let node = input.resources.iter().find(|x| x.key == tr.address);
            for &t in &shared {
                shared_seen += 1;
                let d = k.thread_detail(VirtAddr(t)).expect("thread detail");
                let via: Vec<_> = d
                    .waits
                    .iter()
                    .filter(|w| w.eresource == Some(VirtAddr(tr.address)))
                    .collect();
                let ok = via.len() == 1
                    && via[0].eresource_exclusive == Some(false)
                    && via[0].kind == "Event"
                    && r.shared_wait_events.contains(&via[0].address)
                    && !loose.contains(&via[0].address.0);
                if !ok {
                    bad.push(format!(
                        "{sc} {}: thread {t:#x} waits {:x?}",
                        tr.name, d.waits
                    ));
                }
                let claimed = node.is_some_and(|n| {
                    n.waiters.contains(&hangscope_waitgraph::Claim {
                        thread: t,
                        mode: hangscope_waitgraph::Mode::Shared,
                    })
                });
                if !claimed {
                    bad.push(format!(
                        "{sc} {}: wait graph lacks shared waiter {t:#x}: {node:x?}",
                        tr.name
                    ));
                }
            }
        }
    }
    assert!(shared_seen >= 5, "scenarios lost their shared waiters");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Issue 15: a guest whose virtual disk stopped answering. IRPs sit at
/// `\Driver\viostor` below Ntfs, volmgr and disk, threads wait on their
/// `UserEvent`s, and no lock is involved: the verdict is STUCK I/O naming
/// the miniport, counting every IRP pending there and listing the threads
/// the truth lists; the two service threads waiting in Executive on an
/// event nobody owns are unexplained, and the idle workers stay out.
#[test]
fn issue_15_stuck_disk_is_stuck_io_at_the_miniport() {
    use hangscope_waitgraph::{FindingKind, Overall};
    let mut bad = Vec::new();
    for (build_alias, seed) in [
        ("win7sp1", 151),
        ("win10-19041", 152),
        ("win2016", 153),
        ("win2012r2", 154),
        ("win11", 155),
    ] {
        let (img, truth) = lab_image("stuck-disk", build_alias, seed);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let t = &lab.truth.verdict;
        let v = hangscope_waitgraph::analyze(&k.wait_graph(), &Default::default());
        let mut check = |what: String, ok: bool| {
            if !ok {
                bad.push(format!("[stuck-disk {build_alias}] {what}"));
            }
        };
        check(
            format!("overall {:?}, truth {}", v.overall, t.overall),
            v.overall == Overall::StuckIo && t.overall == "stuck_io" && v.overall.exit_code() == 3,
        );
        let Some(tf) = t.findings.iter().find(|f| f.kind == "stuck_io") else {
            check("no stuck_io finding in the truth".into(), false);
            continue;
        };
        let Some(f) = v.findings.iter().find(|f| f.kind == FindingKind::StuckIo) else {
            check(format!("no stuck_io finding: {:#?}", v.findings), false);
            continue;
        };
        let s = f.stuck_io.as_ref().expect("stuck_io details");
        check(
            format!("driver {} != {:?}", s.driver, tf.driver),
            Some(&s.driver) == tf.driver.as_ref(),
        );
        check(
            format!("pending {} != {:?}", s.pending_irps, tf.pending_irps),
            Some(s.pending_irps as u64) == tf.pending_irps,
        );
        check(
            format!("device stack {:?}", s.device_stack),
            s.device_stack
                == [
                    "\\FileSystem\\Ntfs",
                    "\\Driver\\volmgr",
                    "\\Driver\\disk",
                    "\\Driver\\viostor",
                ],
        );
        check(
            format!("summary {}", f.summary),
            f.summary.starts_with(&format!(
                "{} IRPs pending at \\Driver\\viostor for up to 95 s; the guest waits on its virtual disk",
                s.pending_irps
            )),
        );
        let got: BTreeSet<u64> = f.threads.iter().map(|x| x.address.0).collect();
        let want: BTreeSet<u64> = tf.blocked_threads.iter().copied().collect();
        check(format!("stuck threads {got:x?} != {want:x?}"), got == want);
        let tu = t.findings.iter().find(|f| f.kind == "unexplained");
        let u = v
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::Unexplained);
        match (tu, u) {
            (Some(tu), Some(u)) => {
                let got: BTreeSet<u64> = u.threads.iter().map(|x| x.address.0).collect();
                let want: BTreeSet<u64> = tu.blocked_threads.iter().copied().collect();
                check(
                    format!("unexplained threads {got:x?} != {want:x?}"),
                    got == want,
                );
                let objs: BTreeSet<u64> =
                    u.unexplained_objects.iter().map(|o| o.address.0).collect();
                let tobjs: BTreeSet<u64> = tu.chain_locks.iter().copied().collect();
                check(
                    format!("unexplained objects {objs:x?} != {tobjs:x?}"),
                    objs == tobjs,
                );
            }
            (tu, u) => check(format!("unexplained: truth {tu:?}, got {u:?}"), false),
        }
        check(
            format!("{} findings", v.findings.len()),
            v.findings.len() == t.findings.len(),
        );
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Issue 15: the idle scenario, whose threads wait for hours in WrQueue,
/// UserRequest and WrLpcReceive, stays healthy with the new classes on
/// every build the lab tests it on.
#[test]
fn issue_15_idle_waits_stay_healthy() {
    for (build_alias, seed) in [("win7sp1", 154), ("win10-19041", 155)] {
        let (img, truth) = lab_image("idle", build_alias, seed);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let v = hangscope_waitgraph::analyze(&k.wait_graph(), &Default::default());
        assert_eq!(
            v.overall,
            hangscope_waitgraph::Overall::Healthy,
            "{build_alias}: {:#?}",
            v.findings
        );
        assert_eq!(lab.truth.verdict.overall, "healthy", "{build_alias}");
    }
}

/// Issue 15, must-show 1: the RDP logon chain through ALPC on five builds
/// (7 SP1, 8.1, whose ALPC ports lack `DirectQueue`, 1607, 19041 and 11).
/// Every waiting client's message, port, server process and server thread
/// equal the truth's; every port on `AlpcpPortList` is listed with its
/// kind, owner and name; the verdict's chain crosses processes through
/// the two taken messages (LogonUI -> winlogon -> lsass -> ERESOURCE ->
/// owner) and the message still on lsass's main queue is an
/// `alpc_unanswered` finding blaming the ERESOURCE its workers wait on.
/// The LRPC ports' completion queues (`CompletionPort`, a `_KQUEUE`) are
/// read with their workers, idle (termsrv's, waiting `WrQueue`) or busy
/// (lsass's three), and the finding counts lsass's port workers, not its
/// SAM thread or the lock's owner; the idle worker is in no finding.
#[test]
fn issue_15_rdp_logon_chain_crosses_processes_through_alpc() {
    use hangscope_waitgraph::{EvidenceStep, FindingKind, Overall};
    let mut bad = Vec::new();
    for (build_alias, seed) in [
        ("win7sp1", 161),
        ("win2012r2", 162),
        ("win2016", 163),
        ("win10-19041", 164),
        ("win11", 165),
    ] {
        let (img, truth) = lab_image("rdp-logon", build_alias, seed);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let t = &lab.truth;
        let mut check = |what: String, ok: bool| {
            if !ok {
                bad.push(format!("[rdp-logon {build_alias}] {what}"));
            }
        };
        for m in compare(&k, t) {
            check(m, false);
        }
        let listing = k.alpc();
        check(
            format!("alpc warnings {:?}", listing.warnings),
            listing.warnings.is_empty(),
        );
        // Waiting clients against the truth's messages.
        check(
            format!(
                "{} waits, truth {}",
                listing.waits.len(),
                t.alpc_messages.len()
            ),
            listing.waits.len() == t.alpc_messages.len(),
        );
        for tm in &t.alpc_messages {
            let Some(w) = listing
                .waits
                .iter()
                .find(|w| w.thread.0 == tm.client_thread)
            else {
                check(
                    format!("no ALPC wait for thread {:#x}", tm.client_thread),
                    false,
                );
                continue;
            };
            let m = &w.message;
            let ctx = format!("message {:#x}", tm.address);
            check(
                format!("{ctx}: address {:#x}", m.address.0),
                m.address.0 == tm.address,
            );
            check(format!("{ctx}: not blocked"), w.blocked);
            check(
                format!("{ctx}: queue port {:?}", m.queue_port),
                m.queue_port.map(|p| p.0) == Some(tm.connection_port),
            );
            check(
                format!("{ctx}: owner port {:?}", m.owner_port),
                m.owner_port.map(|p| p.0) == Some(tm.client_port),
            );
            check(
                format!("{ctx}: port name {:?}", m.port_name),
                m.port_name.as_deref() == Some(tm.port_name.as_str()),
            );
            check(
                format!("{ctx}: server pid {:?}", m.server_pid),
                m.server_pid == Some(tm.server_pid),
            );
            check(
                format!("{ctx}: server thread {:?}", m.server_thread),
                m.server_thread.map(|s| s.0) == tm.server_thread,
            );
            check(format!("{ctx}: queue {}", m.queue), m.queue == tm.queue);
            check(
                format!("{ctx}: type {:?}", m.message_type),
                m.message_type == Some(0x2001),
            );
            check(
                format!("{ctx}: semaphore {:#x} not waited on", w.semaphore.0),
                k.threads()
                    .items
                    .iter()
                    .any(|x| x.address == w.thread && x.waits_on == [w.semaphore]),
            );
        }
        // Every port.
        let got: Vec<(u64, String, Option<u64>, Option<String>)> = listing
            .ports
            .iter()
            .map(|p| (p.address.0, p.kind.clone(), p.owner_pid, p.name.clone()))
            .collect();
        let want: Vec<(u64, String, Option<u64>, Option<String>)> = t
            .alpc_ports
            .iter()
            .map(|p| (p.address, p.kind.clone(), Some(p.owner_pid), p.name.clone()))
            .collect();
        check(format!("ports {got:x?} != {want:x?}"), got == want);
        for p in listing.ports.iter().filter(|p| p.kind == "connection") {
            let queued = |q: &str| -> BTreeSet<u64> {
                t.alpc_messages
                    .iter()
                    .filter(|m| m.connection_port == p.address.0 && m.queue == q)
                    .map(|m| m.address)
                    .collect()
            };
            let main: BTreeSet<u64> = p.main_queue.iter().map(|m| m.0).collect();
            let pending: BTreeSet<u64> = p.pending_queue.iter().map(|m| m.0).collect();
            check(
                format!("port {:#x} main queue {main:x?}", p.address.0),
                main == queued("main"),
            );
            check(
                format!("port {:#x} pending queue {pending:x?}", p.address.0),
                pending == queued("pending"),
            );
            check(
                format!(
                    "port {:#x} main length {:?}",
                    p.address.0, p.main_queue_length
                ),
                p.main_queue_length == Some(main.len() as u64),
            );
            // An LRPC server's port: its completion queue and the workers
            // associated with it, idle on it or busy with a request.
            let Some(tp) = t.alpc_ports.iter().find(|x| x.address == p.address.0) else {
                continue;
            };
            check(
                format!(
                    "port {:#x} completion port {:?}, truth {:?}",
                    p.address.0, p.completion_port, tp.completion_port
                ),
                p.completion_port.map(|q| q.0) == tp.completion_port,
            );
            let workers = |idle: bool| -> Option<BTreeSet<u64>> {
                p.queue_workers.as_ref().map(|w| {
                    w.iter()
                        .filter(|x| x.idle == idle && x.on_thread_list && x.tcb_queue)
                        .map(|x| x.thread.0)
                        .collect()
                })
            };
            let want = |v: &[u64]| Some(v.iter().copied().collect::<BTreeSet<u64>>());
            let (want_idle, want_busy) = match tp.completion_port {
                Some(_) => (want(&tp.idle_workers), want(&tp.busy_workers)),
                None => (None, None),
            };
            check(
                format!("port {:#x} idle workers {:x?}", p.address.0, workers(true)),
                workers(true) == want_idle,
            );
            check(
                format!("port {:#x} busy workers {:x?}", p.address.0, workers(false)),
                workers(false) == want_busy,
            );
            check(
                format!(
                    "port {:#x} {} queue workers, truth {}",
                    p.address.0,
                    p.queue_workers.as_ref().map_or(0, |w| w.len()),
                    tp.idle_workers.len() + tp.busy_workers.len()
                ),
                p.queue_workers.as_ref().map_or(0, |w| w.len())
                    == tp.idle_workers.len() + tp.busy_workers.len(),
            );
        }
        check(
            "no port with an idle completion-queue worker".into(),
            t.alpc_ports.iter().any(|p| !p.idle_workers.is_empty()),
        );
        // The verdict.
        let v = hangscope_waitgraph::analyze(&k.wait_graph(), &Default::default());
        check(
            format!("overall {:?}, truth {}", v.overall, t.verdict.overall),
            v.overall == Overall::Stuck
                && t.verdict.overall == "stuck"
                && v.overall.exit_code() == 3,
        );
        check(
            format!(
                "{} findings, truth {}",
                v.findings.len(),
                t.verdict.findings.len()
            ),
            v.findings.len() == t.verdict.findings.len(),
        );
        if let (Some(tf), Some(f)) = (
            t.verdict.findings.iter().find(|f| f.kind == "stuck"),
            v.findings.iter().find(|f| f.kind == FindingKind::Stuck),
        ) {
            // The truth's chain starts at the first waiter, hangscope's at
            // the first lock with that waiter among its edges.
            let owners: Vec<u64> = f
                .chain
                .iter()
                .filter_map(|s| match s {
                    EvidenceStep::Thread { address, .. } => Some(address.0),
                    _ => None,
                })
                .collect();
            let locks: Vec<u64> = f
                .chain
                .iter()
                .filter_map(|s| match s {
                    EvidenceStep::Resource {
                        address, owners, ..
                    } if *owners > 0 => Some(address.0),
                    _ => None,
                })
                .collect();
            check(
                format!("chain threads {owners:x?} != {:x?}", &tf.chain_threads[1..]),
                owners == tf.chain_threads[1..],
            );
            check(
                format!("chain locks {locks:x?} != {:x?}", tf.chain_locks),
                locks == tf.chain_locks,
            );
            check(
                format!("first waiter not in edges: {:?}", f.edges),
                f.edges.iter().any(|e| e.waiter.0 == tf.chain_threads[0]),
            );
            let got: BTreeSet<u64> = f.threads.iter().map(|x| x.address.0).collect();
            let want: BTreeSet<u64> = tf.blocked_threads.iter().copied().collect();
            check(format!("blocked {got:x?} != {want:x?}"), got == want);
            let procs: BTreeSet<&str> = f
                .blocked_processes
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            let tprocs: BTreeSet<&str> = tf.blocked_processes.iter().map(|s| s.as_str()).collect();
            check(format!("processes {procs:?}"), procs == tprocs);
            check(
                format!("kind of the first lock: {:?}", f.chain.first()),
                matches!(f.chain.first(), Some(EvidenceStep::Resource { kind, .. }) if kind == "alpc_message"),
            );
        } else {
            check(format!("no stuck finding: {:#?}", v.findings), false);
        }
        if let (Some(tf), Some(f)) = (
            t.verdict
                .findings
                .iter()
                .find(|f| f.kind == "alpc_unanswered"),
            v.findings
                .iter()
                .find(|f| f.kind == FindingKind::AlpcUnanswered),
        ) {
            let got: BTreeSet<u64> = f.threads.iter().map(|x| x.address.0).collect();
            let want: BTreeSet<u64> = tf.blocked_threads.iter().copied().collect();
            check(
                format!("unanswered clients {got:x?} != {want:x?}"),
                got == want,
            );
            let a = f.alpc.as_ref().expect("alpc details");
            let msgs: Vec<u64> = a.messages.iter().map(|m| m.0).collect();
            check(
                format!("unanswered messages {msgs:x?}"),
                msgs == tf.chain_locks,
            );
            let lsa_db = t
                .eresources
                .iter()
                .find(|r| r.name == "lsa-db")
                .expect("lsa-db");
            check(
                format!("blocked on {:?}", a.blocked_on),
                a.blocked_on.map(|x| x.0) == Some(lsa_db.address),
            );
            check(
                format!("blocked on owner {:?}", a.blocked_on_owner),
                a.blocked_on_owner.map(|x| x.0) == lsa_db.owners.first().map(|o| o.thread),
            );
            // The port's own workers (on its completion queue), not every
            // waiting thread of lsass (its SAM thread and the lock's
            // owner are none).
            check(
                format!(
                    "workers from ports {}, {} counted, truth {:x?}",
                    a.workers_from_ports, a.server_waiting_threads, tf.alpc_workers
                ),
                a.workers_from_ports
                    && tf.alpc_workers.len() == 3
                    && a.server_waiting_threads == tf.alpc_workers.len()
                    && a.server_blocked_threads == 3
                    && a.server_idle_workers == 0,
            );
            check(
                format!("summary {}", f.summary),
                f.summary.starts_with(
                    "lsass.exe (pid 532) has 1 unanswered ALPC message on LsaAuthenticationPort",
                ) && f.summary.contains(
                    "its 3 worker threads on the port's completion queue are all blocked on ERESOURCE",
                ),
            );
        } else {
            check(
                format!("no alpc_unanswered finding: {:#?}", v.findings),
                false,
            );
        }
        // Idle LRPC workers waiting WrQueue on their port's queue are
        // normal idle servers: in no finding, and nothing is unexplained.
        for idle in t.alpc_ports.iter().flat_map(|p| &p.idle_workers) {
            for f in &v.findings {
                check(
                    format!("idle worker {idle:#x} in {:?}: {}", f.kind, f.summary),
                    !f.threads.iter().any(|x| x.address.0 == *idle)
                        && f.kind != FindingKind::Unexplained,
                );
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Issue 15, must-show 2 (fast and guarded mutexes): threads waiting
/// `WrFastMutex` and `WrGuardedMutex` on a `_FAST_MUTEX`'s embedded event
/// are waiting on the mutex, owned by the thread its `Owner` records, on
/// 7 SP1, 1607, 19041 and 11: the model's waited object is the mutex with
/// that owner, and the verdict's chain runs from the mutex to the owner as
/// the truth's does.
#[test]
fn issue_15_fast_mutex_waiters_are_blocked_by_its_recorded_owner() {
    use hangscope_waitgraph::{EvidenceStep, FindingKind, Overall};
    let mut bad = Vec::new();
    for (build_alias, seed) in [
        ("win7sp1", 171),
        ("win2016", 172),
        ("win10-19041", 173),
        ("win11", 174),
    ] {
        let (img, truth) = lab_image("fast-mutex", build_alias, seed);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let t = &lab.truth;
        let mut check = |what: String, ok: bool| {
            if !ok {
                bad.push(format!("[fast-mutex {build_alias}] {what}"));
            }
        };
        for m in compare(&k, t) {
            check(m, false);
        }
        let d = t
            .dispatcher_objects
            .iter()
            .find(|d| d.kind == "FastMutex")
            .expect("a fast mutex in the truth");
        let v = hangscope_waitgraph::analyze(&k.wait_graph(), &Default::default());
        check(
            format!("overall {:?}, truth {}", v.overall, t.verdict.overall),
            v.overall == Overall::Stuck && t.verdict.overall == "stuck",
        );
        let tf = &t.verdict.findings[0];
        match v.findings.iter().find(|f| f.kind == FindingKind::Stuck) {
            Some(f) => {
                check(
                    format!("final owner {:?} != {:?}", f.final_owner, d.owner),
                    f.final_owner.map(|a| a.0) == d.owner,
                );
                check(
                    format!("first step {:?}", f.chain.first()),
                    matches!(
                        f.chain.first(),
                        Some(EvidenceStep::Resource { address, kind, owners: 1, .. })
                            if address.0 == d.address && kind == "fast_mutex"
                    ),
                );
                let got: BTreeSet<u64> = f.threads.iter().map(|x| x.address.0).collect();
                let want: BTreeSet<u64> = tf.blocked_threads.iter().copied().collect();
                check(format!("blocked {got:x?} != {want:x?}"), got == want);
                check(
                    format!("summary {}", f.summary),
                    f.summary.contains("wait on FAST_MUTEX "),
                );
            }
            None => check(format!("no stuck finding: {:#?}", v.findings), false),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The scheduler and memory state the model reads, against the truth:
/// each CPU's current thread, idle or not, its priority, its ready list
/// (threads and priorities in order), its DPC queue (depth, every DPC and
/// routine, the routine named from its module), `DpcRoutineActive`; the
/// memory counters when the scenario sets them.
fn compare_scheduler(k: &Kernel<'_>, t: &GroundTruth) -> Vec<String> {
    let mut bad = Vec::new();
    let s = k.scheduler();
    if !s.warnings.is_empty() {
        bad.push(format!("scheduler warnings: {:?}", s.warnings));
    }
    if s.cpus.len() != t.scheduler.len() {
        bad.push(format!(
            "{} CPUs, truth {}",
            s.cpus.len(),
            t.scheduler.len()
        ));
    }
    for (c, tc) in s.cpus.iter().zip(&t.scheduler) {
        let at = format!("CPU {}", tc.index);
        if c.current_thread.map(|a| a.0) != Some(tc.current_thread) {
            bad.push(format!("{at}: current {:?}", c.current_thread));
        }
        if (c.current_thread == c.idle_thread) != tc.idle {
            bad.push(format!("{at}: idle {}", !tc.idle));
        }
        if !tc.idle && c.current_priority != Some(i32::from(tc.current_priority)) {
            bad.push(format!(
                "{at}: priority {:?} != {}",
                c.current_priority, tc.current_priority
            ));
        }
        let got: Vec<(u64, u32)> = c.ready.iter().map(|r| (r.thread.0, r.priority)).collect();
        let want: Vec<(u64, u32)> = tc
            .ready
            .iter()
            .map(|r| (r.thread, u32::from(r.priority)))
            .collect();
        if got != want {
            bad.push(format!("{at}: ready {got:x?} != {want:x?}"));
        }
        let summary: u32 = tc.ready.iter().fold(0, |m, r| m | 1 << r.priority);
        if c.ready_summary != Some(summary) {
            bad.push(format!("{at}: ReadySummary {:?}", c.ready_summary));
        }
        if c.dpc_queue_depth != Some(tc.dpc_queue_depth) || c.dpc_active != tc.dpc_active {
            bad.push(format!(
                "{at}: DPC depth {:?} active {}",
                c.dpc_queue_depth, c.dpc_active
            ));
        }
        let got: Vec<(u64, u64)> = c.dpcs.iter().map(|d| (d.address.0, d.routine.0)).collect();
        let want: Vec<(u64, u64)> = tc.dpcs.iter().map(|d| (d.address, d.routine)).collect();
        if got != want {
            bad.push(format!("{at}: DPCs {got:x?} != {want:x?}"));
        }
        for d in &c.dpcs {
            if !d
                .routine_name
                .as_deref()
                .is_some_and(|n| n.starts_with("viostor"))
            {
                bad.push(format!("{at}: DPC routine named {:?}", d.routine_name));
            }
        }
    }
    // Each ready thread's CPUs: the truth's affinity (a thread left
    // unknown must have every CPU, the lab's default it does not write on
    // builds whose Affinity is a pointer); on the shared queue only the
    // CPUs sharing it.
    let ncpu = t.scheduler.len();
    let all: u64 = if ncpu >= 64 {
        u64::MAX
    } else {
        (1 << ncpu) - 1
    };
    let mask_of = |v: &[u32]| v.iter().fold(0u64, |m, c| m | 1 << c);
    let sharers = mask_of(&t.shared_ready_cpus);
    let per_cpu = s.cpus.iter().zip(&t.scheduler).flat_map(|(c, tc)| {
        c.ready
            .iter()
            .zip(&tc.ready)
            .map(move |(r, tr)| (format!("CPU {}", tc.index), r, tr.affinity))
    });
    let shared = s
        .shared_ready
        .iter()
        .zip(&t.shared_ready)
        .map(|(r, tr)| ("shared queue".to_string(), r, tr.affinity & sharers));
    for (at, r, want) in per_cpu.chain(shared) {
        let ok = match &r.cpus {
            Some(v) => mask_of(v) == want,
            None => want == all,
        };
        if !ok {
            bad.push(format!(
                "{at}: thread {:#x} CPUs {:?}, truth {want:#b}",
                r.thread.0, r.cpus
            ));
        }
    }
    let got: Vec<(u64, u32)> = s
        .shared_ready
        .iter()
        .map(|r| (r.thread.0, r.priority))
        .collect();
    let want: Vec<(u64, u32)> = t
        .shared_ready
        .iter()
        .map(|r| (r.thread, u32::from(r.priority)))
        .collect();
    if got != want {
        bad.push(format!("shared ready {got:x?} != {want:x?}"));
    }
    if !t.shared_ready.is_empty() {
        let summary: u32 = t.shared_ready.iter().fold(0, |m, r| m | 1 << r.priority);
        match s.shared_queues.as_slice() {
            [q] if q.cpus == t.shared_ready_cpus && q.ready_summary == Some(summary) => {}
            qs => bad.push(format!(
                "shared queues {qs:x?}, truth CPUs {:?} summary {summary:#x}",
                t.shared_ready_cpus
            )),
        }
    }
    if let Some(tm) = &t.memory {
        let m = k.memory_state();
        let got = (
            m.physical_pages,
            m.available_pages,
            m.committed_pages,
            m.commit_limit_pages,
        );
        let want = (
            Some(tm.physical_pages),
            Some(tm.available_pages),
            Some(tm.committed_pages),
            Some(tm.commit_limit_pages),
        );
        if got != want || !m.warnings.is_empty() {
            bad.push(format!(
                "memory {got:?} != {want:?} ({}; {:?})",
                m.source, m.warnings
            ));
        }
    }
    bad
}

/// Builds issue 15's starvation and memory scenarios are checked on: 7 SP1
/// (no shared ready queue, a doubly linked DPC list, the `Mm*` globals),
/// 8.1 (a shared ready queue, the singly linked `_KDPC_LIST`, the globals),
/// 1607, 19041 and 11 (`MiSystemPartition.Vp`).
const STARVATION_BUILDS: &[&str] = &["win7sp1", "win2012r2", "win2016", "win10-19041", "win11"];

/// Issue 15, must-show 4: CPU starvation. cpuhog.exe's threads run on both
/// CPUs at priority 15 while seven threads have been ready 6 to 42 s and
/// CPU 1 has 24 viostor DPCs queued. The model's ready queues, current
/// threads and DPC queues equal the truth's, and the verdict is one
/// `cpu_starvation` finding (stuck, exit 3) listing the truth's starved
/// threads, naming cpuhog.exe, priority 15 and the DPC backlog, its chain
/// the two running threads.
#[test]
fn issue_15_cpu_starvation_is_ready_threads_behind_busy_cpus() {
    let bad = check_cpu_starvation(
        "cpu-starvation",
        STARVATION_BUILDS,
        171,
        &BOTH_CPUS_BUSY,
        |_, _, _| Vec::new(),
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Issue 15, must-show 4 on the shared ready queue: cpu-starvation with
/// its seven starved threads (and one of cpuhog's) on the
/// `_KSHARED_READY_QUEUE` both CPUs share, on 8.1, 19041 and 11 (and on
/// 7 SP1, which has none, on the CPUs' own lists). The model reads that
/// queue (threads, priorities, `ReadySummary`, the CPUs sharing it, each
/// thread's CPUs) as the truth says, and the finding is the same as with
/// per-CPU lists.
#[test]
fn issue_15_cpu_starvation_on_the_shared_ready_queue() {
    let builds = &["win7sp1", "win2012r2", "win10-19041", "win11"];
    let bad = check_cpu_starvation(
        "cpu-starvation-shared",
        builds,
        211,
        &BOTH_CPUS_BUSY,
        |b, k, t| {
            let s = k.scheduler();
            let on_shared = if b == "win7sp1" { 0 } else { 8 };
            let mut bad = Vec::new();
            if s.shared_ready.len() != on_shared || t.shared_ready.len() != on_shared {
                bad.push(format!(
                    "{} threads on the shared queue, truth {}, want {on_shared}",
                    s.shared_ready.len(),
                    t.shared_ready.len()
                ));
            }
            let own: usize = s.cpus.iter().map(|c| c.ready.len()).sum();
            if own + s.shared_ready.len() != 9 {
                bad.push(format!("{own} threads on the CPUs' own lists"));
            }
            bad
        },
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Runs the cpu-starvation checks on `scenario` (cpu-starvation's threads,
/// wherever they are queued) on `builds`; `extra` adds checks of its own.
/// What a starvation scenario's one `cpu_starvation` finding must say,
/// beyond the truth's starved threads and chain.
struct StarvationWant {
    starved: usize,
    summary: fn(&str) -> bool,
    details: fn(&hangscope_waitgraph::CpuStarvation) -> bool,
}

/// The 2-CPU cpu-starvation scenarios' finding: both CPUs busy with
/// cpuhog.exe, CPU 1 in a DPC with 24 queued.
const BOTH_CPUS_BUSY: StarvationWant = StarvationWant {
    starved: 7,
    summary: |s| {
        s.starts_with(
            "7 threads ready for up to 42 s on 2 CPUs; both CPUs run cpuhog.exe threads at priority 15; CPU 1 has 24 DPCs queued (viostor+0x",
        ) && s.ends_with(") and is in a DPC")
    },
    details: |s| {
        s.busy_process.as_deref() == Some("cpuhog.exe")
            && s.cpus.len() == 2
            && s.cpus[1].dpc_queue_depth == Some(24)
            && s.cpus[1].dpc_active
            && s.idle_cpus.is_empty()
            && s.allowed_cpus.is_empty()
    },
};

fn check_cpu_starvation<E>(
    scenario: &str,
    builds: &[&str],
    seed: u64,
    want_finding: &StarvationWant,
    extra: E,
) -> Vec<String>
where
    E: Fn(&str, &Kernel<'_>, &GroundTruth) -> Vec<String>,
{
    use hangscope_waitgraph::{EvidenceStep, FindingKind, Overall};
    let mut bad = Vec::new();
    for (i, build_alias) in builds.iter().enumerate() {
        let (img, truth) = lab_image(scenario, build_alias, seed + i as u64);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let t = &lab.truth;
        let mut check = |what: String, ok: bool| {
            if !ok {
                bad.push(format!("[{scenario} {build_alias}] {what}"));
            }
        };
        for b in compare_scheduler(&k, t) {
            check(b, false);
        }
        for b in extra(build_alias, &k, t) {
            check(b, false);
        }
        let v = hangscope_waitgraph::analyze(&k.wait_graph(), &Default::default());
        check(
            format!("overall {:?}, truth {}", v.overall, t.verdict.overall),
            v.overall == Overall::Stuck
                && t.verdict.overall == "stuck"
                && v.overall.exit_code() == 3,
        );
        check(
            format!("{} findings: {:#?}", v.findings.len(), v.findings),
            v.findings.len() == t.verdict.findings.len(),
        );
        let (Some(f), Some(tf)) = (
            v.findings
                .iter()
                .find(|f| f.kind == FindingKind::CpuStarvation),
            t.verdict
                .findings
                .iter()
                .find(|f| f.kind == "cpu_starvation"),
        ) else {
            check(
                format!("no cpu_starvation finding: {:#?}", v.findings),
                false,
            );
            continue;
        };
        let got: BTreeSet<u64> = f.threads.iter().map(|x| x.address.0).collect();
        let want: BTreeSet<u64> = tf.blocked_threads.iter().copied().collect();
        check(
            format!("starved {got:x?} != {want:x?}"),
            got == want && got.len() == want_finding.starved,
        );
        check(
            format!("summary {}", f.summary),
            (want_finding.summary)(&f.summary),
        );
        let running: Vec<u64> = f
            .chain
            .iter()
            .filter_map(|s| match s {
                EvidenceStep::Thread {
                    address,
                    cpu: Some(_),
                    ..
                } => Some(address.0),
                _ => None,
            })
            .collect();
        check(
            format!("running {running:x?} != {:x?}", tf.chain_threads),
            running == tf.chain_threads,
        );
        let s = f.starvation.as_ref().expect("starvation details");
        check(format!("details {s:?}"), (want_finding.details)(s));
    }
    bad
}

/// Issue 15, must-show 4, affinity starvation: CPU 0 idles while three
/// encoder.exe threads whose `KTHREAD.Affinity` allows only CPU 1 have
/// been ready 9 to 40 s behind renderer.exe's thread at priority 15. On
/// 7 SP1, 8.1, 19041 (an inline `_GROUP_AFFINITY`) and 11 (a pointer to a
/// `_KAFFINITY_EX`) the model reads each ready thread's CPUs as the truth
/// says, and the verdict is one `cpu_starvation` finding with exactly the
/// three pinned threads (not the svchost thread ready 30 s that may use
/// CPU 0, nor the fresh explorer one), saying CPU 0 is idle, its chain
/// CPU 1's thread.
#[test]
fn issue_15_threads_pinned_to_a_busy_cpu_starve_beside_an_idle_one() {
    let pinned = StarvationWant {
        starved: 3,
        summary: |s| {
            s == "3 threads pinned to CPU 1 ready for up to 40 s while CPU 0 is idle; CPU 1 runs a renderer.exe thread at priority 15"
        },
        details: |s| s.idle_cpus == [0] && s.allowed_cpus == [1],
    };
    let builds = ["win7sp1", "win2012r2", "win10-19041", "win11"];
    let bad = check_cpu_starvation("cpu-affinity", &builds, 221, &pinned, |_, _, t| {
        // One finding and one running thread in its chain, in the truth
        // too: the idle CPU runs nothing worth naming.
        let chain = t.verdict.findings.first().map(|f| f.chain_threads.len());
        match (t.verdict.findings.len(), chain) {
            (1, Some(1)) => Vec::new(),
            (n, c) => vec![format!("truth has {n} finding(s), chain {c:?}")],
        }
    });
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Issue 15, must-show 4: memory exhaustion. 300 of 16,384 pages available
/// and commit at 99% of its limit while six threads wait for free pages
/// and two for page-ins: the model's counters equal the truth's (from
/// `MiSystemPartition.Vp` or the `Mm*` globals, by build), and the verdict
/// is one `low_memory` finding (stuck, exit 3) with exactly the truth's
/// waiting threads, no `unexplained` finding for them.
#[test]
fn issue_15_low_memory_explains_the_free_page_waits() {
    use hangscope_waitgraph::{FindingKind, Overall};
    let mut bad = Vec::new();
    for (i, build_alias) in STARVATION_BUILDS.iter().enumerate() {
        let (img, truth) = lab_image("low-memory", build_alias, 181 + i as u64);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let t = &lab.truth;
        let mut check = |what: String, ok: bool| {
            if !ok {
                bad.push(format!("[low-memory {build_alias}] {what}"));
            }
        };
        for b in compare_scheduler(&k, t) {
            check(b, false);
        }
        check("no memory truth".into(), t.memory.is_some());
        let v = hangscope_waitgraph::analyze(&k.wait_graph(), &Default::default());
        check(
            format!("overall {:?}, truth {}", v.overall, t.verdict.overall),
            v.overall == Overall::Stuck
                && t.verdict.overall == "stuck"
                && v.overall.exit_code() == 3,
        );
        check(
            format!("findings {:#?}", v.findings),
            v.findings.len() == 1 && t.verdict.findings.len() == 1,
        );
        let (Some(f), Some(tf)) = (
            v.findings.iter().find(|f| f.kind == FindingKind::LowMemory),
            t.verdict.findings.iter().find(|f| f.kind == "low_memory"),
        ) else {
            check(format!("no low_memory finding: {:#?}", v.findings), false);
            continue;
        };
        let got: BTreeSet<u64> = f.threads.iter().map(|x| x.address.0).collect();
        let want: BTreeSet<u64> = tf.blocked_threads.iter().copied().collect();
        check(
            format!("waiters {got:x?} != {want:x?}"),
            got == want && got.len() == 8,
        );
        check(
            format!("summary {}", f.summary),
            f.summary
                == "300 pages available (1.2 MiB) of 64 MiB; commit 99% of limit; 6 threads wait for free pages and 2 for page-ins",
        );
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Issue 15, must-show 5: a busy but healthy server (both CPUs busy, ready
/// threads that ran ticks ago, two DPCs queued, plenty of memory, workers
/// waiting in user mode on their own events for hours) and the idle
/// scenario stay HEALTHY on every build above, with the scheduler and
/// memory read as the truth says.
#[test]
fn issue_15_busy_server_and_idle_stay_healthy() {
    let mut bad = Vec::new();
    for (i, build_alias) in STARVATION_BUILDS.iter().enumerate() {
        for (scenario, seed) in [("busy-server", 191 + i as u64), ("idle", 201 + i as u64)] {
            let (img, truth) = lab_image(scenario, build_alias, seed);
            let lab = write(&img, truth, Format::Raw);
            let dump = Dump::open(&lab.path).expect("open");
            let k = Kernel::open(&dump, &symbols()).expect("kernel");
            for b in compare_scheduler(&k, &lab.truth) {
                bad.push(format!("[{scenario} {build_alias}] {b}"));
            }
            let v = hangscope_waitgraph::analyze(&k.wait_graph(), &Default::default());
            if v.overall != hangscope_waitgraph::Overall::Healthy
                || lab.truth.verdict.overall != "healthy"
            {
                bad.push(format!(
                    "[{scenario} {build_alias}] {:?} (truth {}): {:#?}",
                    v.overall, lab.truth.verdict.overall, v.findings
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Issue 15, must-show 2 (push locks): on 7 SP1 (wait blocks read by name)
/// and 8.1, 1607, 19041, 11 (no wait-block type: the newest waiter from the
/// lock word, the rest from their stacks) the model's push locks are the
/// truth's: address, container, waiters in order with their wake events
/// and modes, and the owner as the one candidate (from stacks).
#[test]
fn issue_15_push_lock_waiters_container_and_inferred_owner() {
    let mut bad = Vec::new();
    for (build_alias, seed) in [
        ("win7sp1", 191),
        ("win2012r2", 192),
        ("win2016", 193),
        ("win10-19041", 194),
        ("win11", 195),
    ] {
        let (img, truth) = lab_image("push-lock", build_alias, seed);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let t = &lab.truth;
        let mut check = |what: String, ok: bool| {
            if !ok {
                bad.push(format!("[push-lock {build_alias}] {what}"));
            }
        };
        let got = k.push_locks();
        check(
            format!("warnings {:?}", got.warnings),
            got.warnings.is_empty(),
        );
        check(
            format!("{} locks, truth {}", got.items.len(), t.push_locks.len()),
            got.items.len() == t.push_locks.len(),
        );
        let by_name = build_alias == "win7sp1";
        for tl in &t.push_locks {
            let Some(l) = got.items.iter().find(|l| l.address.0 == tl.address) else {
                check(format!("{} at {:#x} not found", tl.name, tl.address), false);
                continue;
            };
            let container = l.container.clone().unwrap_or_default();
            check(
                format!(
                    "{} container {container:?}, truth {:?}",
                    tl.name, tl.container
                ),
                container.starts_with(&tl.container),
            );
            check(
                format!("{} by name {}", tl.name, l.wait_blocks_by_name),
                l.wait_blocks_by_name == by_name,
            );
            let want: Vec<(u64, u64, bool)> = tl
                .waiters
                .iter()
                .map(|w| (w.thread, w.wake_event, w.exclusive))
                .collect();
            let have: Vec<(u64, u64, bool)> = l
                .waiters
                .iter()
                .map(|w| (w.thread.0, w.wake_event.0, w.exclusive.unwrap_or(true)))
                .collect();
            check(
                format!("{} waiters {have:x?} != {want:x?}", tl.name),
                have == want,
            );
            // Only the newest waiter is linked from the word without the type.
            let inferred = l.waiters.iter().filter(|w| w.inferred).count();
            let want_inferred = if by_name { 0 } else { tl.waiters.len() - 1 };
            check(
                format!(
                    "{} {inferred} inferred waiters, want {want_inferred}",
                    tl.name
                ),
                inferred == want_inferred,
            );
            let owners: Vec<u64> = l.candidate_owners.iter().map(|o| o.0).collect();
            check(
                format!("{} owners {owners:x?}, truth {:x?}", tl.name, tl.owner),
                owners == tl.owner.into_iter().collect::<Vec<_>>(),
            );
            // `thread` on each waiter names this lock; on the owner, the
            // lock it holds (inferred).
            for w in &tl.waiters {
                let at = k
                    .thread_detail(VirtAddr(w.thread))
                    .ok()
                    .and_then(|d| d.push_lock)
                    .map(|l| l.address.0);
                check(
                    format!(
                        "{} waiter {:#x} thread push_lock {at:x?}",
                        tl.name, w.thread
                    ),
                    at == Some(tl.address),
                );
            }
            let holds = tl
                .owner
                .and_then(|o| k.thread_detail(VirtAddr(o)).ok())
                .is_some_and(|d| {
                    d.holds.iter().any(|h| {
                        h.address.0 == tl.address && h.inferred && h.waiters == tl.waiters.len()
                    })
                });
            check(format!("{} owner holds it (inferred)", tl.name), holds);
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Issue 15, must-show 2 (Windows 7's guarded mutex): on 7 SP1 threads
/// waiting `WrGuardedMutex` on a `_KGUARDED_MUTEX`'s `Gate` (a KGATE) are
/// waiting on the mutex, owned by the thread its `Owner` records; on 19041
/// (no `_KGUARDED_MUTEX` in the table) the same scenario is a
/// `_FAST_MUTEX`. The verdict's chain runs from the mutex to that owner.
#[test]
fn issue_15_guarded_mutex_waiters_on_its_gate_are_blocked_by_its_owner() {
    use hangscope_waitgraph::{EvidenceStep, FindingKind, Overall};
    let mut bad = Vec::new();
    for (build_alias, seed, kind, step_kind, title) in [
        (
            "win7sp1",
            201,
            "GuardedMutex",
            "guarded_mutex",
            "KGUARDED_MUTEX",
        ),
        ("win10-19041", 202, "FastMutex", "fast_mutex", "FAST_MUTEX"),
    ] {
        let (img, truth) = lab_image("guarded-mutex", build_alias, seed);
        let lab = write(&img, truth, Format::Raw);
        let dump = Dump::open(&lab.path).expect("open");
        let k = Kernel::open(&dump, &symbols()).expect("kernel");
        let t = &lab.truth;
        let mut check = |what: String, ok: bool| {
            if !ok {
                bad.push(format!("[guarded-mutex {build_alias}] {what}"));
            }
        };
        for m in compare(&k, t) {
            check(m, false);
        }
        let d = t
            .dispatcher_objects
            .iter()
            .find(|d| d.kind == kind)
            .expect("the mutex in the truth");
        // `locks`' listing: the mutex, its recorded owner, its waiters
        // oldest first; `thread` on the owner: the mutex it owns.
        let ms = k.mutexes();
        check(
            format!("mutexes warnings {:?}", ms.warnings),
            ms.warnings.is_empty(),
        );
        let got: Vec<(u64, String, u64, Vec<u64>)> = ms
            .items
            .iter()
            .map(|m| {
                let w = m.waiters.iter().map(|w| w.thread.0).collect();
                (m.address.0, m.kind.clone(), m.owner.0, w)
            })
            .collect();
        let want = vec![(
            d.address,
            kind.to_string(),
            d.owner.unwrap_or(0),
            d.waiters.clone(),
        )];
        check(format!("mutexes {got:x?} != {want:x?}"), got == want);
        let held: Vec<(u64, bool, usize)> = k
            .thread_detail(VirtAddr(d.owner.unwrap_or(0)))
            .map(|t| {
                t.holds
                    .iter()
                    .map(|h| (h.address.0, h.inferred, h.waiters))
                    .collect()
            })
            .unwrap_or_default();
        check(
            format!("owner holds {held:x?}"),
            held == vec![(d.address, false, d.waiters.len())],
        );
        let v = hangscope_waitgraph::analyze(&k.wait_graph(), &Default::default());
        check(
            format!("overall {:?}, truth {}", v.overall, t.verdict.overall),
            v.overall == Overall::Stuck && t.verdict.overall == "stuck",
        );
        let tf = &t.verdict.findings[0];
        match v.findings.iter().find(|f| f.kind == FindingKind::Stuck) {
            Some(f) => {
                check(
                    format!("final owner {:?} != {:?}", f.final_owner, d.owner),
                    f.final_owner.map(|a| a.0) == d.owner,
                );
                check(
                    format!("first step {:?}", f.chain.first()),
                    matches!(
                        f.chain.first(),
                        Some(EvidenceStep::Resource { address, kind, owners: 1, .. })
                            if address.0 == d.address && kind == step_kind
                    ),
                );
                let got: BTreeSet<u64> = f.threads.iter().map(|x| x.address.0).collect();
                let want: BTreeSet<u64> = tf.blocked_threads.iter().copied().collect();
                check(format!("blocked {got:x?} != {want:x?}"), got == want);
                check(
                    format!("summary {}", f.summary),
                    f.summary.contains(&format!("wait on {title} ")),
                );
            }
            None => check(format!("no stuck finding: {:#?}", v.findings), false),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
