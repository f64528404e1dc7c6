//! The model against real dumps of a hung Debian guest, made by the recipe
//! in `shared/tools/linux-guest` (`make-hang-dumps.sh`), and drgn's ground
//! truth recorded there. `HANGSCOPE_LINUX_GUESTS` lists the recipe's work
//! directories (with `dumps/` and `peers/`, colon-separated; what
//! `scripts/linux-guest.sh` makes and `scripts/test.sh` sets); without it
//! these tests skip with a message, except in CI (`CI=true`), where they
//! fail.

use hangscope_dump::Dump;
use hangscope_linux::LinuxKernel;
use std::path::{Path, PathBuf};

fn guest_dirs() -> Vec<PathBuf> {
    let list = std::env::var("HANGSCOPE_LINUX_GUESTS").unwrap_or_default();
    let dirs: Vec<PathBuf> = list
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    if dirs.is_empty() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must test the real Linux guests: set HANGSCOPE_LINUX_GUESTS (scripts/test.sh does)"
        );
        eprintln!("skipped: HANGSCOPE_LINUX_GUESTS is not set (run scripts/linux-guest.sh)");
    }
    dirs
}

fn dumps(dir: &std::path::Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("elf", dir.join("dumps/hangguest.elf")),
        ("kdump", dir.join("dumps/hangguest.kdump-zlib")),
    ]
}

#[test]
fn kallsyms_agree_with_vmcoreinfo() {
    for dir in guest_dirs() {
        kallsyms_agree_with_vmcoreinfo_on(&dir);
    }
}

fn kallsyms_agree_with_vmcoreinfo_on(dir: &Path) {
    for (name, path) in dumps(dir) {
        let dump = Dump::open(&path).unwrap();
        let k = LinuxKernel::open(&dump, None).unwrap_or_else(|e| panic!("[{name}] {e}"));
        let vi = k.vmcoreinfo().expect("VMCOREINFO");
        assert!(
            k.kallsyms().len() > 50_000,
            "[{name}] {}",
            k.kallsyms().len()
        );
        let mut checked = 0;
        for (sym, &addr) in &vi.symbols {
            // Symbols in the image (not the direct map's mem_section).
            if addr < hangscope_linux::START_KERNEL_MAP {
                continue;
            }
            if let Some(got) = k.kallsyms().get(sym) {
                assert_eq!(got, addr, "[{name}] {sym}");
                checked += 1;
            }
        }
        assert!(checked >= 6, "[{name}] only {checked} symbols compared");
        let info = k.info();
        eprintln!("[{name}] {info:#?}");
        let release = vi.osrelease.clone().expect("OSRELEASE");
        assert_eq!(info.release.as_deref(), Some(release.as_str()));
        assert!(info
            .banner
            .as_deref()
            .unwrap_or("")
            .starts_with(&format!("Linux version {release}")));
        // Link-time addresses `nm` gives in this build's debug vmlinux.
        if vi.build_id.as_deref() == Some(BUILD_6_1_0_56) {
            for (sym, link) in LINK_6_1_0_56 {
                assert_eq!(
                    k.kallsyms().get(sym),
                    Some(link.wrapping_add(k.kernel_offset())),
                    "[{name}] {sym}"
                );
            }
        }
        let truth = drgn_truth(dir, name);
        assert_eq!(info.jiffies, truth["jiffies"].as_u64(), "[{name}] jiffies");
        assert_eq!(info.hz, truth["HZ"].as_u64(), "[{name}] HZ");
        let up = truth["jiffies_uptime_s"].as_f64().unwrap();
        assert!(
            (info.uptime_s.unwrap() - up).abs() < 1e-6,
            "[{name}] uptime"
        );
    }
}

/// The GNU build id of Debian's 6.1.0-56-amd64 (6.1.192-2).
const BUILD_6_1_0_56: &str = "eb4fbcd037e7253717950bf2b93bd5566f47c56f";
/// `nm vmlinux-6.1.0-56-amd64` for a few symbols.
const LINK_6_1_0_56: [(&str, u64); 5] = [
    ("init_task", 0xffffffff82a1aa40),
    ("jiffies_64", 0xffffffff82a079c0),
    ("linux_banner", 0xffffffff82161900),
    ("__start_BTF", 0xffffffff824c1b88),
    ("_text", 0xffffffff81000000),
];

/// drgn's ground truth for one dump (`peers/drgn-elf.json`, ...).
fn drgn_truth(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let p = dir.join(format!("peers/drgn-{name}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// Physical memory of an ELF core as a raw image: each PT_LOAD at its
/// physical address in a sparse file.
fn raw_image_of(elf: &std::path::Path, out: &std::path::Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::File::open(elf).unwrap();
    let mut h = [0u8; 64];
    f.read_exact(&mut h).unwrap();
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let phoff = u64_at(&h, 0x20);
    let (phentsize, phnum) = (u16_at(&h, 0x36) as u64, u16_at(&h, 0x38) as u64);
    let mut o = std::fs::File::create(out).unwrap();
    let mut end = 0u64;
    for i in 0..phnum {
        let mut ph = vec![0u8; phentsize as usize];
        f.seek(SeekFrom::Start(phoff + i * phentsize)).unwrap();
        f.read_exact(&mut ph).unwrap();
        if u32::from_le_bytes(ph[0..4].try_into().unwrap()) != 1 {
            continue;
        }
        let (off, paddr, filesz) = (u64_at(&ph, 8), u64_at(&ph, 24), u64_at(&ph, 32));
        let mut data = vec![0u8; filesz as usize];
        f.seek(SeekFrom::Start(off)).unwrap();
        f.read_exact(&mut data).unwrap();
        o.seek(SeekFrom::Start(paddr)).unwrap();
        o.write_all(&data).unwrap();
        end = end.max(paddr + filesz);
    }
    o.set_len(end.div_ceil(4096) * 4096).unwrap();
}

/// Without VMCOREINFO (ignored, or a raw image without registers) the
/// kernel is found by scanning, with the same kallsyms answer.
#[test]
fn kernel_found_without_vmcoreinfo() {
    for dir in guest_dirs() {
        kernel_found_without_vmcoreinfo_on(&dir);
    }
}

fn kernel_found_without_vmcoreinfo_on(dir: &Path) {
    let elf = dir.join("dumps/hangguest.elf");
    let dump = Dump::open(&elf).unwrap();
    let with = LinuxKernel::open(&dump, None).unwrap();
    let names = [
        "init_task",
        "jiffies_64",
        "linux_banner",
        "_stext",
        "runqueues",
    ];
    let expect: Vec<_> = names.iter().map(|n| with.kallsyms().get(n)).collect();
    let opts = hangscope_linux::OpenOptions {
        ignore_vmcoreinfo: true,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let without = LinuxKernel::open_with(&dump, None, &opts).unwrap();
    eprintln!(
        "ELF without VMCOREINFO: {:?}\n{:#?}",
        t.elapsed(),
        without.info().discovery
    );
    let got: Vec<_> = names.iter().map(|n| without.kallsyms().get(n)).collect();
    assert_eq!(got, expect);
    assert_eq!(without.kernel_offset(), with.kernel_offset());
    assert_eq!(without.release(), with.release());
    // The kdump-zlib dump too (every page it reads is decompressed).
    let kd = Dump::open(&dir.join("dumps/hangguest.kdump-zlib")).unwrap();
    let t = std::time::Instant::now();
    let k = LinuxKernel::open_with(&kd, None, &opts).unwrap();
    eprintln!("kdump without VMCOREINFO: {:?}", t.elapsed());
    let got: Vec<_> = names.iter().map(|n| k.kallsyms().get(n)).collect();
    assert_eq!(got, expect);
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("guest.raw");
    raw_image_of(&elf, &raw);
    let rawdump = Dump::open(&raw).unwrap();
    assert_eq!(rawdump.format, hangscope_dump::DumpFormat::Raw);
    assert!(rawdump.cpus.is_empty() && rawdump.hints.vmcoreinfo.is_none());
    let t = std::time::Instant::now();
    let k = LinuxKernel::open(&rawdump, None).unwrap_or_else(|e| panic!("raw: {e}"));
    eprintln!("raw: {:?}\n{:#?}", t.elapsed(), k.info().discovery);
    let got: Vec<_> = names.iter().map(|n| k.kallsyms().get(n)).collect();
    assert_eq!(got, expect);
    assert_eq!(k.kernel_offset(), with.kernel_offset());
}

/// Every task's pid, tgid, comm, state letter and CPU, the last dmesg
/// lines and the modules equal drgn's (with Debian's debug vmlinux), from
/// the kernel's own BTF in the dump.
#[test]
fn tasks_dmesg_and_modules_agree_with_drgn() {
    for dir in guest_dirs() {
        tasks_dmesg_and_modules_agree_with_drgn_on(&dir);
    }
}

fn tasks_dmesg_and_modules_agree_with_drgn_on(dir: &Path) {
    for (name, path) in dumps(dir) {
        let dump = Dump::open(&path).unwrap();
        let t0 = std::time::Instant::now();
        let k = LinuxKernel::open(&dump, None).unwrap();
        let opened = t0.elapsed();
        let tasks = k.tasks().unwrap_or_else(|e| panic!("[{name}] {e}"));
        eprintln!(
            "[{name}] open {opened:?}, tasks {:?}, types {:?}",
            t0.elapsed() - opened,
            k.info().types_source
        );
        assert!(tasks.warnings.is_empty(), "[{name}] {:?}", tasks.warnings);
        let truth = drgn_truth(dir, name);
        let want: std::collections::BTreeMap<i64, (i64, String, String, i64)> = truth["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["pid"].as_i64().unwrap(),
                    (
                        t["tgid"].as_i64().unwrap(),
                        t["comm"].as_str().unwrap().to_string(),
                        t["state"].as_str().unwrap().to_string(),
                        t["cpu"].as_i64().unwrap(),
                    ),
                )
            })
            .collect();
        let got: std::collections::BTreeMap<i64, (i64, String, String, i64)> = tasks
            .items
            .iter()
            .filter(|t| t.pid > 0)
            .map(|t| {
                (
                    i64::from(t.pid),
                    (
                        i64::from(t.tgid),
                        t.comm.clone(),
                        t.state.letter().to_string(),
                        i64::from(t.cpu.unwrap_or(u32::MAX)),
                    ),
                )
            })
            .collect();
        assert_eq!(got, want, "[{name}] tasks");
        // Both CPUs idle at the time of the dump: rq.curr is each one's
        // idle task, running on it; rq.clock is what since-last-arrival
        // was measured against.
        let cpus = k.cpus().unwrap();
        assert_eq!(cpus.items.len(), 2, "[{name}] {cpus:?}");
        for c in &cpus.items {
            assert_eq!(c.current_pid, Some(0), "[{name}] {c:?}");
            let idle = tasks
                .items
                .iter()
                .find(|t| Some(t.task) == c.current)
                .unwrap();
            assert_eq!(
                (idle.cpu, idle.on_cpu),
                (Some(c.cpu), Some(true)),
                "[{name}] {c:?}"
            );
        }
        // The other fields drgn recorded, task by task.
        let by_pid: std::collections::HashMap<i32, &hangscope_linux::TaskInfo> = tasks
            .items
            .iter()
            .filter(|t| t.pid > 0)
            .map(|t| (t.pid, t))
            .collect();
        for w in truth["tasks"].as_array().unwrap() {
            let t = by_pid[&(w["pid"].as_i64().unwrap() as i32)];
            let ctx = format!("[{name}] pid {}", t.pid);
            let hex = |v: &serde_json::Value| {
                u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
            };
            assert_eq!(t.task.0, hex(&w["task"]), "{ctx} task");
            assert_eq!(t.raw_state, hex(&w["__state"]), "{ctx} __state");
            assert_eq!(
                t.kernel_thread,
                w["kthread"].as_bool().unwrap(),
                "{ctx} kthread"
            );
            assert_eq!(
                t.on_cpu,
                Some(w["on_cpu"].as_i64().unwrap() != 0),
                "{ctx} on_cpu"
            );
            assert_eq!(t.nvcsw, w["nvcsw"].as_u64(), "{ctx} nvcsw");
            assert_eq!(t.nivcsw, w["nivcsw"].as_u64(), "{ctx} nivcsw");
            assert_eq!(
                t.last_arrival_ns,
                w["sched_info.last_arrival_ns"].as_u64(),
                "{ctx} last_arrival"
            );
            assert_eq!(
                t.since_last_arrival_ns,
                w["since_last_arrival_ns"].as_u64(),
                "{ctx} since_last_arrival"
            );
            assert_eq!(
                t.last_switch_time,
                w["last_switch_time_jiffies"].as_u64(),
                "{ctx} last_switch_time"
            );
            assert_eq!(
                t.last_switch_count,
                w["last_switch_count"].as_u64(),
                "{ctx} last_switch_count"
            );
        }
        let log = k.dmesg().unwrap_or_else(|e| panic!("[{name}] {e}"));
        assert!(log.warnings.is_empty(), "[{name}] {:?}", log.warnings);
        let lines: Vec<String> = log.items.iter().flat_map(|r| r.lines()).collect();
        let tail: Vec<String> = truth["dmesg_tail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        assert!(lines.len() >= tail.len(), "[{name}] {} lines", lines.len());
        assert_eq!(
            lines[lines.len() - tail.len()..],
            tail[..],
            "[{name}] dmesg"
        );
        let mods = k.modules().unwrap_or_else(|e| panic!("[{name}] {e}"));
        assert!(mods.warnings.is_empty(), "[{name}] {:?}", mods.warnings);
        let names: Vec<&str> = mods.items.iter().map(|m| m.name.as_str()).collect();
        eprintln!("[{name}] modules {:?}", mods.items);
        assert_eq!(names, ["hangdemo", "qemu_fw_cfg"], "[{name}] modules");
        // Module symbols from struct module's kallsyms, inside the module.
        let hd = &mods.items[0];
        let syms = k.module_symbols(hd.module).unwrap();
        let ab = syms
            .iter()
            .find(|s| s.name == "hangdemo_ab")
            .expect("hangdemo_ab");
        let base = hd.base.unwrap().0;
        assert!(
            ab.addr >= base && ab.addr < base + hd.size.unwrap(),
            "[{name}] {ab:?}"
        );
        assert_eq!(ab.kind, 't', "[{name}] {ab:?}");
        // Debian's qemu_fw_cfg carries split BTF on top of the kernel's
        // (kept in btf_modules once the module is initialised).
        let env = k.env().unwrap();
        let btf = hangscope_linux::modules::module_btf(&env, mods.items[1].module)
            .unwrap_or_else(|e| panic!("[{name}] {e}"));
        assert_eq!(&btf[..2], &[0x9f, 0xeb], "[{name}] qemu_fw_cfg BTF magic");
        // Its types, when the split-BTF reader accepts a string section
        // that does not start with the empty string (legal in split BTF).
        match k.module_types(mods.items[1].module) {
            Ok(fw) => assert!(
                fw.has_type("fw_cfg_sysfs_entry"),
                "[{name}] qemu_fw_cfg types"
            ),
            Err(e) => eprintln!("[{name}] qemu_fw_cfg types: {e}"),
        }
    }
}

/// The same kernel opened with a table the caller gives (as `-y` will)
/// answers as with the BTF read from the dump, and the KASLR offset comes
/// from that table's link-time symbols when VMCOREINFO is not used.
#[test]
fn a_given_table_answers_as_the_dumps_btf() {
    for dir in guest_dirs() {
        a_given_table_answers_as_the_dumps_btf_on(&dir);
    }
}

fn a_given_table_answers_as_the_dumps_btf_on(dir: &Path) {
    let dump = Dump::open(&dir.join("dumps/hangguest.elf")).unwrap();
    let own = LinuxKernel::open(&dump, None).unwrap();
    let table = own.symbols().expect("BTF in the dump").clone();
    let opts = hangscope_linux::OpenOptions {
        ignore_vmcoreinfo: true,
        ..Default::default()
    };
    let given = LinuxKernel::open_with(&dump, Some(table), &opts).unwrap();
    assert!(given.info().kernel_offset_known);
    assert_eq!(given.kernel_offset(), own.kernel_offset());
    assert_eq!(given.tasks().unwrap(), own.tasks().unwrap());
    assert_eq!(given.modules().unwrap(), own.modules().unwrap());
    assert_eq!(given.dmesg().unwrap(), own.dmesg().unwrap());
}

/// Without types (BTF reading turned off), dmesg still comes from the
/// printk layout VMCOREINFO publishes, with the same records; the typed
/// listings fail naming the debug package that would help.
#[test]
fn dmesg_without_types_from_vmcoreinfo() {
    for dir in guest_dirs() {
        dmesg_without_types_from_vmcoreinfo_on(&dir);
    }
}

fn dmesg_without_types_from_vmcoreinfo_on(dir: &Path) {
    let dump = Dump::open(&dir.join("dumps/hangguest.kdump-zlib")).unwrap();
    let typed = LinuxKernel::open(&dump, None).unwrap();
    let opts = hangscope_linux::OpenOptions {
        skip_btf: true,
        ..Default::default()
    };
    let bare = LinuxKernel::open_with(&dump, None, &opts).unwrap();
    let e = bare.tasks().unwrap_err();
    let release = typed.release().expect("release");
    assert!(
        e.to_string()
            .contains(&format!("linux-image-{release}-dbg")),
        "{e}"
    );
    let strip =
        |p: hangscope_linux::Partial<hangscope_linux::DmesgRecord>| -> Vec<(u64, u64, String)> {
            assert!(p.warnings.is_empty(), "{:?}", p.warnings);
            p.items
                .into_iter()
                .map(|r| (r.seq, r.ts_ns, r.text))
                .collect()
        };
    let with = strip(typed.dmesg().unwrap());
    assert!(with.len() > 100);
    assert_eq!(strip(bare.dmesg().unwrap()), with);
}

/// drgn's module list, when `HANGSCOPE_DRGN` names a drgn binary and the
/// recipe's debug vmlinux is there: names, bases and sizes equal ours.
#[test]
fn modules_agree_with_drgn_when_it_is_at_hand() {
    for dir in guest_dirs() {
        modules_agree_with_drgn_when_it_is_at_hand_on(&dir);
    }
}

fn modules_agree_with_drgn_when_it_is_at_hand_on(dir: &Path) {
    let Some(drgn) = std::env::var_os("HANGSCOPE_DRGN") else {
        eprintln!("skipped: HANGSCOPE_DRGN is not set (the recipe's venv/bin/drgn)");
        return;
    };
    let Some(vmlinux) = std::fs::read_dir(dir.join("kernel/usr/lib/debug/boot"))
        .ok()
        .and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().contains("vmlinux-"))
        })
    else {
        eprintln!("skipped: no debug vmlinux under kernel/usr/lib/debug/boot");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("modules.py");
    std::fs::write(
        &script,
        "from drgn.helpers.linux.list import list_for_each_entry\n\
         m = prog['modules']\n\
         for mod in list_for_each_entry('struct module', m.address_of_(), 'list'):\n\
         \x20   try:\n\
         \x20       base, size = mod.mem[0].base.value_(), None\n\
         \x20   except AttributeError:\n\
         \x20       base, size = mod.core_layout.base.value_(), mod.core_layout.size.value_()\n\
         \x20   print(mod.name.string_().decode(), hex(base), size)\n",
    )
    .unwrap();
    for (name, path) in dumps(dir) {
        let out = std::process::Command::new(&drgn)
            .args(["-q", "--architecture", "x86_64", "-c"])
            .arg(&path)
            .arg("-s")
            .arg(&vmlinux)
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "[{name}] drgn: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dump = Dump::open(&path).unwrap();
        let k = LinuxKernel::open(&dump, None).unwrap();
        // drgn's script gives no size on 6.4+ (mem[] regions): then only
        // names and bases are compared.
        let drgn_sizes = !String::from_utf8_lossy(&out.stdout).contains(" None");
        let ours: Vec<String> = k
            .modules()
            .unwrap()
            .items
            .iter()
            .map(|m| {
                let size = match (drgn_sizes, m.size) {
                    (true, Some(s)) => s.to_string(),
                    _ => "None".to_string(),
                };
                format!("{} {:#x} {size}", m.name, m.base.map_or(0, |b| b.0))
            })
            .collect();
        let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(ours, theirs, "[{name}] modules");
    }
}

#[path = "real_guest/stacks.rs"]
mod stacks;

#[path = "real_guest/waits.rs"]
mod waits;

#[path = "real_guest/flood.rs"]
mod flood;
