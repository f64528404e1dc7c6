//! Test support: temporary directories, the boot stub, QEMU and libvirt
//! guests that clean up after themselves, and QEMU's `info registers`.

use hangscope_capture::qmp::Qmp;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What the boot stub (tests/guest/stub.S) leaves in the registers and RAM.
pub mod expect {
    pub const KBASE: u64 = 0xFFFF_F800_0000_0000;
    pub const CR3: u64 = 0x30_0000;
    pub const EFER: u64 = 0xD00;
    pub const CR0_PG_PE: u64 = 0x8000_0001;
    pub const CS: u16 = 0x10;
    pub const DS: u16 = 0x18;
    pub const MARKER_LOW_AT: u64 = 0x50_0000;
    pub const MARKER_LOW: &[u8] = b"HANGSCOPE-CAPTURE-MARKER-LOW:0x00500000";
    pub const MARKER_HIGH_AT: u64 = 0x3F0_0000;
    pub const MARKER_HIGH: &[u8] = b"HANGSCOPE-CAPTURE-MARKER-HIGH:0x03f00000";
    pub const RAM: u64 = 64 << 20;
    pub const VCPUS: usize = 2;

    /// CPU `n`'s stack pointer.
    pub fn rsp(n: u64) -> u64 {
        KBASE + 0x8_FF00 - 0x1_0000 * n
    }
    /// CPU `n`'s "KPCR": its GS base, whose first quadword is its own address.
    pub fn gs_base(n: u64) -> u64 {
        KBASE + 0x40_0000 + 0x1000 * n
    }
    pub fn fs_base(n: u64) -> u64 {
        0x7FFD_E000 - 0x1_0000 * n
    }
    pub fn kernel_gs_base(n: u64) -> u64 {
        0x7FF_7FFD_F000 - 0x1_0000 * n
    }
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15 of CPU `n`.
    pub fn gpr(n: u64) -> [u64; 16] {
        let v = |low: u64| 0x4841_0000_0000_0000 + (n << 32) + low;
        [
            v(0x00),
            v(0x11),
            v(0x22),
            v(0x33),
            v(0x44),
            v(0x55),
            rsp(n) + 0xF0,
            rsp(n),
            v(0x88),
            v(0x99),
            v(0xAA),
            v(0xBB),
            v(0xCC),
            v(0xDD),
            v(0xEE),
            v(0xFF),
        ]
    }
}

/// A directory removed on drop; world-traversable so libvirt's QEMU
/// (user libvirt-qemu) can read the stub from it.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "hangscope-capture-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The assembled boot stub and the RIP where each vCPU halts.
#[derive(Debug)]
pub struct Stub {
    pub elf: PathBuf,
    pub rips: [u64; expect::VCPUS],
}

/// Assemble and link tests/guest/stub.S (once per test run). It goes to one
/// fixed world-readable directory under /tmp, reused by every run (statics
/// are never dropped, so a per-run directory would be left behind), and is
/// renamed into place so concurrent runs never see half a file.
pub fn stub() -> &'static Stub {
    static STUB: OnceLock<Stub> = OnceLock::new();
    STUB.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest");
        let dir = std::env::temp_dir().join("hangscope-capture-stub");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let tmp = dir.join(format!("stub-{}.elf", std::process::id()));
        let out = Command::new("clang")
            .args([
                "--target=i386-unknown-none-elf",
                "-nostdlib",
                "-static",
                "-fuse-ld=lld",
            ])
            .arg(format!("-Wl,-T,{}", src.join("stub.ld").display()))
            .arg("-Wl,--build-id=none")
            .arg("-o")
            .arg(&tmp)
            .arg(src.join("stub.S"))
            .output()
            .expect("run clang (apt-get install clang lld)");
        assert!(
            out.status.success(),
            "assembling the boot stub failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        let elf = dir.join("stub.elf");
        fs::rename(&tmp, &elf).unwrap();
        let rips = ["after_hlt", "ap_after_hlt"].map(|s| symbol(&elf, s) + expect::KBASE);
        Stub { elf, rips }
    })
}

/// A symbol's value from an ELF32's symbol table (tiny reader: the stub only).
fn symbol(elf: &Path, name: &str) -> u64 {
    let d = fs::read(elf).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes([d[o], d[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum) = (u32_at(32), u16_at(46), u16_at(48));
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        if u32_at(sh + 4) != 2 {
            continue; // SHT_SYMTAB
        }
        let strtab = shoff + u32_at(sh + 24) * shentsize;
        let str_off = u32_at(strtab + 16);
        let (off, size) = (u32_at(sh + 16), u32_at(sh + 20));
        for s in (off..off + size).step_by(16) {
            let n = str_off + u32_at(s);
            let end = d[n..].iter().position(|&b| b == 0).unwrap() + n;
            if &d[n..end] == name.as_bytes() {
                return u32_at(s + 4) as u64;
            }
        }
    }
    panic!("symbol {name} not in the stub");
}

/// A QEMU process killed on drop.
#[derive(Debug)]
pub struct QemuGuest {
    pub child: Child,
    pub qmp: PathBuf,
    pub _dir: TempDir,
}

impl QemuGuest {
    /// Start the stub under TCG with a QMP socket, and wait for it to halt.
    pub fn start(name: &str) -> QemuGuest {
        let dir = TempDir::new(name);
        let qmp = dir.path().join("qmp.sock");
        let mut cmd = Command::new("qemu-system-x86_64");
        // SAFETY: prctl(2) is async-signal-safe; it only asks the kernel to
        // kill QEMU when the test thread that started it goes away, so a
        // test killed mid-way leaves no QEMU behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .args(["-accel", "tcg", "-machine", "pc", "-m", "64", "-smp", "2"])
            .args(["-display", "none", "-nodefaults", "-no-user-config"])
            .args(["-name", name, "-kernel"])
            .arg(&stub().elf)
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qemu-system-x86_64 (apt-get install qemu-system-x86)");
        let g = QemuGuest {
            child,
            qmp,
            _dir: dir,
        };
        wait_until("both vCPUs of the stub halt at their known RIPs", || {
            g.hmp_registers().is_ok_and(|c| halted(&c))
        });
        g
    }

    /// `info registers -a` through QMP `human-monitor-command`.
    pub fn hmp_registers(&self) -> Result<Vec<HmpCpu>, String> {
        let text = self.hmp("info registers -a")?;
        Ok(parse_info_registers(&text))
    }

    pub fn hmp(&self, cmd: &str) -> Result<String, String> {
        let mut q = Qmp::connect(&self.qmp).map_err(|e| e.to_string())?;
        q.execute(
            "human-monitor-command",
            Some(serde_json::json!({"command-line": cmd})),
        )
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .map_err(|e| e.to_string())
    }

    pub fn qmp_execute(&self, cmd: &str) -> serde_json::Value {
        let mut q = Qmp::connect(&self.qmp).unwrap();
        q.execute(cmd, None).unwrap()
    }
}

impl Drop for QemuGuest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every vCPU sits at the RIP after its `hlt`.
fn halted(cpus: &[HmpCpu]) -> bool {
    cpus.len() == expect::VCPUS
        && cpus
            .iter()
            .zip(stub().rips)
            .all(|(c, rip)| c.get("RIP") == Some(rip))
}

/// Poll `ok` every 50 ms for up to 30 s (the guest is tiny; this bounds a
/// broken run).
pub fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    poll_until(what, Duration::from_millis(50), ok)
}

/// Poll `ok` every `every` for up to 30 s.
pub fn poll_until(what: &str, every: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out waiting: {what}"
        );
        std::thread::sleep(every);
    }
}

/// One CPU of `info registers`: `RAX`, `RIP`, `RFL`, `CR3`, `EFER`, ... and
/// segment lines (`FS`: selector, base). 32-bit CPUs' `EAX`.. are stored as
/// `RAX`.. so both read the same way.
#[derive(Debug, Default, Clone)]
pub struct HmpCpu {
    pub regs: HashMap<String, u64>,
    pub segs: HashMap<String, (u16, u64)>,
}

impl HmpCpu {
    pub fn get(&self, r: &str) -> Option<u64> {
        self.regs.get(r).copied()
    }
    pub fn reg(&self, r: &str) -> u64 {
        self.get(r)
            .unwrap_or_else(|| panic!("`info registers` has no {r}: {self:?}"))
    }
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15 (r8.. are 0 on a 32-bit CPU).
    pub fn gpr(&self) -> [u64; 16] {
        let names = [
            "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8", "R9", "R10", "R11",
            "R12", "R13", "R14", "R15",
        ];
        names.map(|n| self.get(n).unwrap_or(0))
    }
    pub fn seg(&self, s: &str) -> (u16, u64) {
        self.segs[s]
    }
}

pub fn parse_info_registers(text: &str) -> Vec<HmpCpu> {
    let mut cpus: Vec<HmpCpu> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("CPU#") {
            cpus.push(HmpCpu::default());
            continue;
        }
        if cpus.is_empty() {
            cpus.push(HmpCpu::default()); // `info registers` without -a
        }
        let cpu = cpus.last_mut().unwrap();
        let seg = ["ES", "CS", "SS", "DS", "FS", "GS"]
            .into_iter()
            .find(|s| line.starts_with(&format!("{s} =")));
        if let Some(s) = seg {
            let mut it = line[4..].split_whitespace();
            let sel = u16::from_str_radix(it.next().unwrap(), 16).unwrap();
            let base = u64::from_str_radix(it.next().unwrap(), 16).unwrap();
            cpu.segs.insert(s.to_string(), (sel, base));
            continue;
        }
        let line = line.replace(" =", "=");
        for tok in line.split_whitespace() {
            let Some((k, v)) = tok.split_once('=') else {
                continue;
            };
            let Ok(v) = u64::from_str_radix(v, 16) else {
                continue;
            };
            let k = match k {
                "EAX" | "EBX" | "ECX" | "EDX" | "ESI" | "EDI" | "EBP" | "ESP" | "EIP" => {
                    format!("R{}", &k[1..])
                }
                "EFL" => "RFL".to_string(),
                _ => k.to_string(),
            };
            cpu.regs.insert(k, v);
        }
    }
    cpus
}

/// Start virtlogd and libvirtd when not running (scripts/capture/start-libvirt.sh).
pub fn ensure_libvirt() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/capture/start-libvirt.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .expect("run start-libvirt.sh");
        assert!(
            out.status.success(),
            "libvirt could not be started:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Domains of earlier test runs that were killed before their
        // guards ran: destroy those whose test process is gone.
        for name in virsh(&["list", "--all", "--name"])
            .unwrap_or_default()
            .lines()
        {
            let pid = name
                .strip_prefix("hscapture-test-")
                .and_then(|rest| rest.rsplit('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = virsh(&["destroy", name]);
                    let _ = virsh(&["undefine", name]);
                }
            }
        }
    });
}

pub fn virsh(args: &[&str]) -> Result<String, String> {
    let out = Command::new("virsh")
        .env("LC_ALL", "C")
        .args(["-c", "qemu:///system", "-q"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A transient libvirt domain running the stub, destroyed on drop.
#[derive(Debug)]
pub struct LibvirtGuest {
    pub name: String,
    pub _dir: TempDir,
}

impl LibvirtGuest {
    pub fn start(tag: &str) -> LibvirtGuest {
        ensure_libvirt();
        let name = format!("hscapture-test-{tag}-{}", std::process::id());
        let dir = TempDir::new(tag);
        let _ = virsh(&["destroy", &name]);
        let xml = format!(
            "<domain type='qemu'>\n  <name>{name}</name>\n  <memory unit='MiB'>64</memory>\n  \
             <vcpu>{}</vcpu>\n  <os><type arch='x86_64' machine='pc'>hvm</type>\
             <kernel>{}</kernel></os>\n  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
             </devices>\n</domain>\n",
            expect::VCPUS,
            stub().elf.display()
        );
        let xml_path = dir.path().join("domain.xml");
        fs::write(&xml_path, xml).unwrap();
        virsh(&["create", xml_path.to_str().unwrap()]).expect("virsh create");
        let g = LibvirtGuest { name, _dir: dir };
        wait_until("both vCPUs of the libvirt stub guest halt", || {
            halted(&g.hmp_registers())
        });
        g
    }

    pub fn hmp_registers(&self) -> Vec<HmpCpu> {
        virsh(&[
            "qemu-monitor-command",
            "--hmp",
            &self.name,
            "info registers -a",
        ])
        .map(|t| parse_info_registers(&t))
        .unwrap_or_default()
    }

    pub fn state(&self) -> String {
        virsh(&["domstate", &self.name])
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

impl Drop for LibvirtGuest {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.name]);
    }
}

/// A small tmpfs mounted for a test, unmounted on drop: a real "disk full".
#[derive(Debug)]
pub struct Tmpfs {
    pub dir: TempDir,
}

impl Tmpfs {
    /// `None` when not root (mounting needs it); the caller then skips.
    pub fn mount(tag: &str, size_mib: u32) -> Option<Tmpfs> {
        Tmpfs::mount_with(tag, &format!("size={size_mib}m,mode=0755"))
    }

    /// A tmpfs with these mount options (e.g. `ro`).
    pub fn mount_with(tag: &str, options: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let dir = TempDir::new(tag);
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(options)
            .arg("tmpfs")
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(st.success(), "mount -t tmpfs failed as root");
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
