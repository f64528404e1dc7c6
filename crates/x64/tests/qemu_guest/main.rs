//! End to end on a real QEMU guest: a tiny multiboot kernel (boot.S) enters
//! long mode with known page tables; QEMU dumps it as ELF and as flattened
//! kdump-zlib; both must give the same CPU state, the same DTB and the same
//! translations and faults.
//!
//! Needs clang, ld.lld and qemu-system-x86_64 (installed by
//! scripts/setup.sh); without them the test says so on stderr and passes.

use hangscope_dump::{Dump, DumpFormat, PhysAddr};
use hangscope_x64::{
    find_dtb_candidates, validate_dtb, AddressSpace, Dtb, FaultKind, NotPresent, PteRules,
    VirtAddr, VirtualMemory,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const K: u64 = 0xFFFF_F800_0000_0000;

/// boot.S writes its non-present PTEs the way Windows does (transition:
/// bit 11; a page-file offset in bits 63..32). The real rules live in
/// hangscope-nt, which this crate cannot depend on; these few lines give
/// the page walk the same answers so the hook is tested on real QEMU
/// dumps.
#[derive(Debug)]
struct GuestRules {
    read_transition: bool,
}

impl PteRules for GuestRules {
    fn not_present(&self, entry: u64, level: u8) -> NotPresent {
        if entry & 0x800 != 0 && entry & 0x400 == 0 {
            if self.read_transition {
                return NotPresent::InRam(PhysAddr(entry & 0x000F_FFFF_FFFF_F000));
            }
            return NotPresent::Fault(FaultKind::Transition { pte: entry });
        }
        if entry >> 32 != 0 {
            return NotPresent::Fault(FaultKind::PagedOut { pte: entry });
        }
        NotPresent::Fault(FaultKind::NotPresent { level, entry })
    }
}

static GUEST: GuestRules = GuestRules {
    read_transition: false,
};
static GUEST_TRANSITION: GuestRules = GuestRules {
    read_transition: true,
};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills QEMU if the test fails half way.
struct Guest(Child);
impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Qmp {
    out: UnixStream,
    lines: BufReader<UnixStream>,
}

impl Qmp {
    fn connect(path: &Path) -> Qmp {
        let start = Instant::now();
        let s = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("QMP socket: {e}"),
            }
        };
        let mut q = Qmp {
            out: s.try_clone().unwrap(),
            lines: BufReader::new(s),
        };
        q.reply(); // greeting
        q.cmd(r#"{"execute":"qmp_capabilities"}"#);
        q
    }

    fn reply(&mut self) -> String {
        loop {
            let mut l = String::new();
            assert!(self.lines.read_line(&mut l).unwrap() > 0, "QMP closed");
            if !l.contains("\"event\"") {
                return l;
            }
        }
    }

    fn cmd(&mut self, json: &str) {
        writeln!(self.out, "{json}").unwrap();
        let r = self.reply();
        assert!(!r.contains("\"error\""), "{json}: {r}");
    }
}

/// Build the guest, run it until it reports long mode, dump it twice.
fn dumps(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    for tool in ["clang", "ld.lld", "qemu-system-x86_64"] {
        if !have(tool) {
            eprintln!("qemu_guest: {tool} not installed, test skipped");
            return None;
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qemu_guest");
    let obj = dir.join("boot.o");
    let kernel = dir.join("kernel.elf");
    run(Command::new("clang")
        .args(["--target=i386-unknown-none", "-c"])
        .arg(src.join("boot.S"))
        .arg("-o")
        .arg(&obj));
    run(Command::new("ld.lld")
        .args(["-m", "elf_i386", "-T"])
        .arg(src.join("link.ld"))
        .arg(&obj)
        .arg("-o")
        .arg(&kernel));
    let serial = dir.join("serial.txt");
    let sock = dir.join("qmp.sock");
    let _guest = Guest(
        Command::new("qemu-system-x86_64")
            .args([
                "-M", "pc", "-m", "32", "-smp", "2", "-display", "none", "-monitor", "none",
            ])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", sock.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu"),
    );
    let mut qmp = Qmp::connect(&sock);
    let start = Instant::now();
    while !std::fs::read(&serial).unwrap_or_default().contains(&b'R') {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "guest never reached long mode"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    qmp.cmd(r#"{"execute":"stop"}"#);
    let elf = dir.join("guest.elf");
    let kdump = dir.join("guest.kdump");
    qmp.cmd(&format!(
        r#"{{"execute":"dump-guest-memory","arguments":{{"paging":false,"protocol":"file:{}"}}}}"#,
        elf.display()
    ));
    qmp.cmd(&format!(
        r#"{{"execute":"dump-guest-memory","arguments":{{"paging":false,"protocol":"file:{}","format":"kdump-zlib"}}}}"#,
        kdump.display()
    ));
    Some((elf, kdump))
}

fn check(dump: &Dump) {
    assert!(
        dump.memory.notes().is_empty(),
        "{:?}: {:?}",
        dump.format,
        dump.memory.notes()
    );
    // vCPU 1 is parked by the firmware (SeaBIOS's SMP setup), paging off.
    // Its notes must still pair with vCPU 1 (notes() is empty above, so the
    // NT_PRSTATUS and QEMU notes of each vCPU agreed).
    assert_eq!(dump.cpus.len(), 2);
    assert_eq!(dump.cpus[1].index, 1);
    assert_eq!(dump.cpus[1].cr0.map(|c| c & 0x8000_0000), Some(0));
    assert_eq!(dump.cpus[1].gs_base, Some(0));
    let cpu = &dump.cpus[0];
    // The registers boot.S loads.
    assert_eq!(cpu.gpr[1], 0x1111_2222_3333_4444, "rbx");
    assert_eq!(cpu.gpr[15], 0x5555_6666_7777_8888, "r15");
    assert_eq!(cpu.gs_base, Some(K));
    assert_eq!(cpu.kernel_gs_base, Some(0x1234_5000));
    assert_eq!(cpu.kernel_gs(), Some(K));
    assert_eq!(cpu.selectors[0], 0x08);
    let cr0 = cpu.cr0.unwrap();
    assert_eq!(cr0 & 0x8000_0001, 0x8000_0001, "paging and protection on");
    let cr3 = cpu.cr3.unwrap();
    let dtb = Dtb::from_cr3(cr3);
    let mem = dump.memory.as_ref();
    assert_eq!(validate_dtb(mem, dtb), Some(0x1ED));
    assert_eq!(find_dtb_candidates(mem), vec![dtb]);

    let space = AddressSpace::new(mem, dtb).with_rules(&GUEST);
    let mut mark = [0u8; 14];
    space.read(VirtAddr(K), &mut mark).unwrap();
    assert_eq!(&mark, b"HANGSCOPE-MARK");
    assert_eq!(space.read_cstr(VirtAddr(K), 64).unwrap(), b"HANGSCOPE-MARK");
    assert_eq!(
        space.read_u32(VirtAddr(K + 0x20_0000)).unwrap(),
        u32::from_le_bytes(*b"BIG!")
    );
    assert_eq!(
        space.translate(VirtAddr(K + 0x20_0000)).unwrap().page_size,
        0x20_0000
    );
    // The code is identity mapped through 2 MiB pages: rip reads the hlt
    // loop's bytes (hlt = f4, jmp short back = eb fd).
    let code = space.read_vec(VirtAddr(cpu.rip - 1), 3, 16).unwrap();
    assert_eq!(code, [0xF4, 0xEB, 0xFD]);
    let pte = match space.read_u8(VirtAddr(K + 0x1000)).unwrap_err().kind {
        FaultKind::Transition { pte } => pte,
        other => panic!("{other:?}"),
    };
    let text = space
        .with_rules(&GUEST_TRANSITION)
        .read_cstr(VirtAddr(K + 0x1000), 64)
        .unwrap();
    assert_eq!(text, b"TRANSITION-PAGE");
    let mut phys = [0u8; 15];
    mem.read(PhysAddr(pte & 0x000F_FFFF_FFFF_F000), &mut phys)
        .unwrap();
    assert_eq!(&phys, b"TRANSITION-PAGE");
    assert_eq!(
        space.read_u8(VirtAddr(K + 0x2000)).unwrap_err().kind,
        FaultKind::PagedOut {
            pte: 0x1234_0000_0080
        }
    );
    // The kernel half holds exactly the two mapped pages boot.S made
    // (the self-map's view of the tables lies below fffff800`00000000).
    let mapped: Vec<_> = space
        .iter_mapped(VirtAddr(K), VirtAddr(u64::MAX))
        .map(|(va, t)| (va.0, t.page_size))
        .collect();
    assert_eq!(mapped, vec![(K, 0x1000), (K + 0x20_0000, 0x20_0000)]);
}

#[test]
fn qemu_elf_and_kdump_of_a_long_mode_guest() {
    let dir = tempfile::tempdir().unwrap();
    let Some((elf, kdump)) = dumps(dir.path()) else {
        return;
    };
    let elf = Dump::open(&elf).unwrap();
    assert_eq!(elf.format, DumpFormat::ElfCore);
    check(&elf);
    let kdump = Dump::open(&kdump).unwrap();
    assert_eq!(kdump.format, DumpFormat::Kdump);
    check(&kdump);
    assert_eq!(elf.cpus, kdump.cpus);
    assert_eq!(elf.memory.ranges(), kdump.memory.ranges());
    // Every page, byte for byte: the kdump's zlib pages decode to the ELF's.
    let (mut a, mut b) = (vec![0u8; 4096], vec![0u8; 4096]);
    let mut pages = 0;
    for r in elf.memory.ranges() {
        for pa in (r.start.0..r.start.0 + r.len).step_by(4096) {
            elf.memory.read(PhysAddr(pa), &mut a).unwrap();
            kdump.memory.read(PhysAddr(pa), &mut b).unwrap();
            assert!(a == b, "page {pa:#x} differs");
            pages += 1;
        }
    }
    assert!(pages > 8000, "{pages}");
}
