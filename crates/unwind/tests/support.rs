//! Test support: build the C driver, load it into a synthetic address space,
//! and lay out stack frames by emulating the real instructions (from
//! `llvm-objdump`), independently of the unwinder's own parsing.

use hangscope_unwind::{Context, Module, ModuleList, Reg};
use hangscope_x64::{SparseMemory, VirtAddr, VirtualMemory};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Where the driver is linked (no relocation needed when loaded here).
pub const DRIVER_BASE: u64 = 0xffff_f800_1234_0000;
/// The synthetic thread stack.
pub const STACK_LOW: u64 = 0xffff_d000_1000_0000;
/// One past its top.
pub const STACK_HIGH: u64 = STACK_LOW + 0x20_0000;

/// One disassembled instruction.
#[derive(Debug, Clone)]
pub struct Insn {
    pub addr: u64,
    pub next: u64,
    pub mnemonic: String,
    pub operands: Vec<String>,
}

/// The built driver: image bytes, symbols and instructions.
#[derive(Debug)]
pub struct Driver {
    /// Where the image is loaded (its preferred base: no relocation).
    pub base: u64,
    pub image: Vec<u8>,
    pub size_of_image: u64,
    pub symbols: HashMap<String, u64>,
    pub insns: Vec<Insn>,
    _dir: Option<tempfile::TempDir>,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (clang, lld-link and llvm-objdump are needed)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool(names: &[&str]) -> String {
    for n in names {
        if Command::new(n).arg("--version").output().is_ok() {
            return n.to_string();
        }
    }
    panic!("none of {names:?} is installed");
}

/// Build (once per test run) and parse the driver.
pub fn driver() -> &'static Driver {
    static D: OnceLock<Driver> = OnceLock::new();
    D.get_or_init(build_driver)
}

fn build_driver() -> Driver {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/driver/hsdrv.c");
    let source = std::fs::read_to_string(&src).expect("read hsdrv.c");
    let files = hangscope_lab::driver::compile_driver(
        dir.path(),
        &hangscope_lab::driver::DriverSource {
            name: "hsdrv",
            source: &source,
            imports: &[],
            base: Some(DRIVER_BASE),
        },
    )
    .unwrap_or_else(|e| panic!("building hsdrv.sys: {e}"));
    let (sys, map) = (files.sys, files.map);
    let disasm = run(Command::new(tool(&["llvm-objdump", "llvm-objdump-14"]))
        .args(["-d", "--no-show-raw-insn"])
        .arg(&sys));
    let image = std::fs::read(&sys).expect("read .sys");
    let symbols = parse_map(&std::fs::read_to_string(&map).expect("read map"));
    let insns = parse_disasm(&disasm);
    let size_of_image = pe_u32(&image, pe_opt(&image) + 56) as u64;
    Driver {
        base: DRIVER_BASE,
        image,
        size_of_image,
        symbols,
        insns,
        _dir: Some(dir),
    }
}

impl Driver {
    /// Any x64 PE file, loaded at its preferred image base, with its
    /// disassembly (no symbols).
    pub fn from_pe(path: &Path) -> Driver {
        let image = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let disasm = run(Command::new(tool(&["llvm-objdump", "llvm-objdump-14"]))
            .args(["-d", "--no-show-raw-insn"])
            .arg(path));
        let opt = pe_opt(&image);
        let base = u64::from_le_bytes(image[opt + 24..opt + 32].try_into().unwrap());
        Driver {
            base,
            size_of_image: pe_u32(&image, opt + 56) as u64,
            image,
            symbols: HashMap::new(),
            insns: parse_disasm(&disasm),
            _dir: None,
        }
    }
}

fn parse_map(map: &str) -> HashMap<String, u64> {
    let mut syms = HashMap::new();
    for line in map.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 3 && f[0].contains(':') && f[0].len() == 13 {
            if let Ok(addr) = u64::from_str_radix(f[2], 16) {
                syms.insert(f[1].to_string(), addr);
            }
        }
    }
    syms
}

fn parse_disasm(text: &str) -> Vec<Insn> {
    let mut v: Vec<Insn> = Vec::new();
    for line in text.lines() {
        let Some((addr, rest)) = line.split_once(':') else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr.trim(), 16) else {
            continue;
        };
        let rest = rest.split('#').next().unwrap_or("").trim();
        if rest.is_empty() || rest.starts_with('<') {
            continue;
        }
        let (mnemonic, ops) = rest.split_once('\t').unwrap_or((rest, ""));
        let operands = split_operands(ops.trim());
        if let Some(prev) = v.last_mut() {
            prev.next = addr;
        }
        v.push(Insn {
            addr,
            next: 0,
            mnemonic: mnemonic.trim().to_string(),
            operands,
        });
    }
    v
}

/// Split AT&T operands on commas outside parentheses.
fn split_operands(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn pe_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn pe_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn pe_opt(b: &[u8]) -> usize {
    pe_u32(b, 0x3c) as usize + 24
}

impl Driver {
    /// Map the image as the Windows loader would (headers, then each
    /// section at its RVA).
    pub fn load(&self, mem: &mut SparseMemory) {
        let b = &self.image;
        let nt = pe_u32(b, 0x3c) as usize;
        let nsec = pe_u16(b, nt + 6) as usize;
        let opt_size = pe_u16(b, nt + 20) as usize;
        let size_of_headers = pe_u32(b, pe_opt(b) + 60) as usize;
        mem.write(self.base, &b[..size_of_headers]);
        for i in 0..nsec {
            let s = nt + 24 + opt_size + i * 40;
            let vsize = pe_u32(b, s + 8) as usize;
            let va = pe_u32(b, s + 12) as u64;
            let raw_size = pe_u32(b, s + 16) as usize;
            let raw = pe_u32(b, s + 20) as usize;
            let mut data = vec![0u8; vsize.max(raw_size)];
            let n = raw_size.min(b.len().saturating_sub(raw));
            data[..n].copy_from_slice(&b[raw..raw + n]);
            mem.write(self.base + va, &data);
        }
    }

    pub fn module(&self) -> Module {
        Module::new(self.base, self.size_of_image, "hsdrv.sys")
    }

    pub fn modules(&self) -> ModuleList {
        ModuleList::new(vec![self.module()])
    }

    pub fn sym(&self, name: &str) -> u64 {
        *self
            .symbols
            .get(name)
            .unwrap_or_else(|| panic!("no symbol {name} in the map"))
    }

    pub fn index_of(&self, addr: u64) -> usize {
        self.insns
            .iter()
            .position(|i| i.addr == addr)
            .unwrap_or_else(|| panic!("no instruction at {addr:#x}"))
    }

    /// Instructions of the function starting at `start`, up to its first
    /// `ret` included.
    pub fn function(&self, start: u64) -> Vec<Insn> {
        let i = self.index_of(start);
        let mut v = Vec::new();
        for insn in &self.insns[i..] {
            v.push(insn.clone());
            if insn.mnemonic == "retq" {
                break;
            }
        }
        v
    }

    /// Address of the first call in `from` to `to`.
    pub fn call_site(&self, from: &str, to: &str) -> u64 {
        let target = self.sym(to);
        self.function(self.sym(from))
            .iter()
            .find(|i| i.mnemonic == "callq" && parse_target(&i.operands[0]) == Some(target))
            .unwrap_or_else(|| panic!("no call from {from} to {to}"))
            .addr
    }
}

fn parse_target(op: &str) -> Option<u64> {
    let hex = op.trim().strip_prefix("0x")?;
    let hex = hex.split_whitespace().next()?;
    u64::from_str_radix(hex, 16).ok()
}

/// 64-bit register for an AT&T register operand (any width).
fn reg64(op: &str) -> Option<Reg> {
    let r = op.strip_prefix('%')?;
    let base = match r {
        "rax" | "eax" | "ax" | "al" => Reg::Rax,
        "rbx" | "ebx" | "bx" | "bl" => Reg::Rbx,
        "rcx" | "ecx" | "cx" | "cl" => Reg::Rcx,
        "rdx" | "edx" | "dx" | "dl" => Reg::Rdx,
        "rsi" | "esi" | "si" | "sil" => Reg::Rsi,
        "rdi" | "edi" | "di" | "dil" => Reg::Rdi,
        "rbp" | "ebp" | "bp" | "bpl" => Reg::Rbp,
        "rsp" | "esp" | "sp" | "spl" => Reg::Rsp,
        _ => {
            let n: u8 = r
                .strip_prefix('r')?
                .trim_end_matches(['d', 'w', 'b'])
                .parse()
                .ok()?;
            Reg::from_number(n)?
        }
    };
    Some(base)
}

fn imm(op: &str) -> Option<i64> {
    let s = op.strip_prefix('$')?;
    if let Some(h) = s.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(h) = s.strip_prefix("-0x") {
        i64::from_str_radix(h, 16).ok().map(|v| -v)
    } else {
        s.parse().ok()
    }
}

/// `disp(%reg)` with no index.
fn mem_operand(op: &str) -> Option<(i64, Reg)> {
    let (disp, rest) = op.split_once('(')?;
    let inner = rest.strip_suffix(')')?;
    if inner.contains(',') {
        return None;
    }
    let disp = if disp.is_empty() {
        0
    } else if let Some(h) = disp.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else {
        disp.parse().ok()?
    };
    Some((disp, reg64(inner)?))
}

/// What the test expects for one frame.
#[derive(Debug, Clone)]
pub struct ExpectedFrame {
    pub function: String,
    pub rip: u64,
    pub rsp: u64,
    pub nonvolatile: Vec<(Reg, u64)>,
}

/// A machine that runs the driver's code just enough to build its stack:
/// pushes, pops, stack allocations, frame pointer set-up, register saves,
/// and the calls along a chosen path. Every other instruction that writes a
/// register gives it a fresh value; one that writes RSP in a way the
/// emulator does not know fails the test.
pub struct FrameBuilder<'d> {
    pub driver: &'d Driver,
    pub mem: SparseMemory,
    regs: [u64; 16],
    rax_known: bool,
    fresh: u64,
    /// Frames of the callers so far, outermost first.
    callers: Vec<ExpectedFrame>,
    /// Size a dynamic `sub rsp, rax` (alloca) allocates.
    pub alloca_size: u64,
    /// Calls not on the path preserve every register (true inside
    /// prologs, where the only call is the stack probe).
    pub calls_preserve: bool,
}

impl<'d> FrameBuilder<'d> {
    pub fn new(driver: &'d Driver) -> Self {
        let mut mem = SparseMemory::new();
        driver.load(&mut mem);
        let mut regs = [0u64; 16];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = 0x5e00_0000_0000_0000 | ((i as u64) << 32) | 0x1000_0001;
        }
        // DriverEntry's caller: return address 0 (the outermost frame).
        let rsp = STACK_HIGH - 0x100;
        mem.write_u64(rsp, 0);
        regs[Reg::Rsp as usize] = rsp;
        FrameBuilder {
            driver,
            mem,
            regs,
            rax_known: false,
            fresh: 0x7700_0000_0000_0000,
            callers: Vec::new(),
            alloca_size: 0x50,
            calls_preserve: false,
        }
    }

    /// Execute the instructions at addresses `[from, to)` in order.
    pub fn exec_range(&mut self, from: u64, to: u64) {
        let start = self.driver.index_of(from);
        let insns: Vec<Insn> = self.driver.insns[start..]
            .iter()
            .take_while(|i| i.addr < to)
            .cloned()
            .collect();
        for insn in &insns {
            self.exec(insn);
        }
    }

    /// The current register file.
    pub fn regs(&self) -> [u64; 16] {
        self.regs
    }

    pub fn rsp(&self) -> u64 {
        self.regs[Reg::Rsp as usize]
    }
    fn set_rsp(&mut self, v: u64) {
        self.regs[Reg::Rsp as usize] = v;
    }
    fn clobber(&mut self, r: Reg) {
        assert_ne!(r, Reg::Rsp, "unexpected write to rsp");
        self.fresh += 1;
        self.regs[r as usize] = self.fresh;
        if r == Reg::Rax {
            self.rax_known = false;
        }
    }

    fn nonvolatile(&self) -> Vec<(Reg, u64)> {
        Reg::NONVOLATILE
            .iter()
            .map(|&r| (r, self.regs[r as usize]))
            .collect()
    }

    /// Run `path[0]` from its entry, taking the call to `path[1]`, and so
    /// on; in the last function stop at `stop` (before executing it).
    pub fn run(&mut self, path: &[&str], stop: u64) {
        for (k, name) in path.iter().enumerate() {
            let start = self.driver.sym(name);
            let insns = self.driver.function(start);
            let is_last = k + 1 == path.len();
            let call_target = path.get(k + 1).map(|n| self.driver.sym(n));
            let mut called = false;
            for insn in &insns {
                if is_last && insn.addr == stop {
                    called = true;
                    break;
                }
                if insn.mnemonic == "callq"
                    && !is_last
                    && parse_target(&insn.operands[0]) == call_target
                {
                    // Enter the callee: push the return address.
                    self.callers.push(ExpectedFrame {
                        function: name.to_string(),
                        rip: insn.next,
                        rsp: self.rsp(),
                        nonvolatile: self.nonvolatile(),
                    });
                    let rsp = self.rsp() - 8;
                    self.mem.write_u64(rsp, insn.next);
                    self.set_rsp(rsp);
                    called = true;
                    break;
                }
                assert!(
                    insn.mnemonic != "retq",
                    "{name}: reached ret before {stop:#x}"
                );
                self.exec(insn);
            }
            assert!(called, "{name}: stop/call not found");
        }
    }

    fn exec(&mut self, insn: &Insn) {
        let ops: Vec<&str> = insn.operands.iter().map(|s| s.as_str()).collect();
        let m = insn.mnemonic.as_str();
        match (m, ops.as_slice()) {
            ("pushq", [r]) => {
                let v = self.regs[reg64(r).expect("push reg") as usize];
                let rsp = self.rsp() - 8;
                self.mem.write_u64(rsp, v);
                self.set_rsp(rsp);
            }
            ("popq", [r]) => {
                let rsp = self.rsp();
                let v = self.mem.read_u64(VirtAddr(rsp)).expect("pop");
                let r = reg64(r).expect("pop reg");
                self.regs[r as usize] = v;
                self.set_rsp(rsp + 8);
            }
            ("subq", [i, "%rsp"]) if imm(i).is_some() => {
                let v = imm(i).unwrap() as u64;
                self.set_rsp(self.rsp() - v);
            }
            ("addq", [i, "%rsp"]) if imm(i).is_some() => {
                let v = imm(i).unwrap() as u64;
                self.set_rsp(self.rsp() + v);
            }
            ("subq", ["%rax", "%rsp"]) => {
                let v = if self.rax_known {
                    self.regs[Reg::Rax as usize]
                } else {
                    self.alloca_size
                };
                self.set_rsp(self.rsp() - v);
            }
            ("andq", [i, "%rsp"]) => {
                let v = imm(i).expect("and imm") as u64;
                self.set_rsp(self.rsp() & v);
            }
            ("movl", [i, "%eax"]) if imm(i).is_some() => {
                self.regs[Reg::Rax as usize] = imm(i).unwrap() as u32 as u64;
                self.rax_known = true;
            }
            ("movq", ["%rsp", d]) => {
                let d = reg64(d).expect("mov rsp, reg");
                self.regs[d as usize] = self.rsp();
            }
            ("movq", [s, "%rsp"]) => {
                let s = reg64(s).expect("mov reg, rsp");
                self.set_rsp(self.regs[s as usize]);
            }
            ("leaq", [src, d])
                if mem_operand(src).is_some_and(|(_, b)| b == Reg::Rsp || *d == "%rsp") =>
            {
                let (disp, base) = mem_operand(src).unwrap();
                let v = self.regs[base as usize].wrapping_add(disp as u64);
                let d = reg64(d).expect("lea dest");
                self.regs[d as usize] = v;
            }
            ("movq", [s, dst]) if reg64(s).is_some() && mem_operand(dst).is_some() => {
                let (disp, base) = mem_operand(dst).unwrap();
                let v = self.regs[reg64(s).unwrap() as usize];
                let at = self.regs[base as usize].wrapping_add(disp as u64);
                self.mem.write_u64(at, v);
            }
            ("movq", [src, d])
                if reg64(d).is_some_and(|r| r != Reg::Rsp) && mem_operand(src).is_some() =>
            {
                let (disp, base) = mem_operand(src).unwrap();
                let at = self.regs[base as usize].wrapping_add(disp as u64);
                let d = reg64(d).unwrap();
                match self.mem.read_u64(VirtAddr(at)) {
                    Ok(v) => {
                        self.regs[d as usize] = v;
                        if d == Reg::Rax {
                            self.rax_known = false;
                        }
                    }
                    Err(_) => self.clobber(d),
                }
            }
            ("movaps", [s, dst]) if s.starts_with("%xmm") && mem_operand(dst).is_some() => {
                let (disp, base) = mem_operand(dst).unwrap();
                let at = self.regs[base as usize].wrapping_add(disp as u64);
                self.mem.write(at, &[0xee; 16]);
            }
            ("callq", [t])
                if parse_target(t).is_some()
                    && parse_target(t) == self.driver.symbols.get("__chkstk").copied() =>
            {
                // The stack probe preserves every register (RAX holds the
                // size for the `sub rsp, rax` that follows).
            }
            ("callq", _) if self.calls_preserve => {}
            ("callq", _) => {
                // A call not on the path: it returns with the volatile
                // registers clobbered and the stack balanced.
                for r in [
                    Reg::Rax,
                    Reg::Rcx,
                    Reg::Rdx,
                    Reg::R8,
                    Reg::R9,
                    Reg::R10,
                    Reg::R11,
                ] {
                    self.clobber(r);
                }
            }
            _ => {
                // Anything else: the destination (last operand) gets a value
                // the test does not model.
                if let Some(d) = ops.last().and_then(|d| reg64(d)) {
                    self.clobber(d);
                }
            }
        }
    }

    /// The context at the stop point.
    pub fn context(&self, rip: u64) -> Context {
        let mut c = Context::new(rip, self.rsp());
        for r in Reg::ALL {
            c.set(r, self.regs[r as usize]);
        }
        c
    }

    /// Expected frames innermost first: the stop point, then the callers.
    pub fn expected(&self, innermost: &str, rip: u64) -> Vec<ExpectedFrame> {
        let mut v = vec![ExpectedFrame {
            function: innermost.to_string(),
            rip,
            rsp: self.rsp(),
            nonvolatile: self.nonvolatile(),
        }];
        v.extend(self.callers.iter().rev().cloned());
        v
    }
}
