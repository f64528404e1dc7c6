//! Unwindable kernel stacks: x64 unwind data (UNWIND_INFO, the `.pdata`
//! RUNTIME_FUNCTION table) for every function a scenario's stacks name,
//! export directories naming the driver functions, and stack frames laid out
//! from that same unwind data.
//!
//! The encoder is written here from the PE/COFF format (not shared with the
//! reader crate `hangscope-unwind`) so that a misreading on either side shows
//! up as a test failure instead of cancelling out.
//!
//! Each function gets a prolog of pushed nonvolatile registers followed by a
//! `sub rsp, N` (`UWOP_PUSH_NONVOL`, `UWOP_ALLOC_SMALL`, `UWOP_ALLOC_LARGE`
//! with both operand forms), chosen deterministically from its name, and the
//! real prolog and epilog instruction bytes. A frame of function `F` at
//! `RSP` holds `N` bytes of locals, the pushed registers (last pushed
//! lowest), then the return address into `F`'s caller.

use crate::error::Error;

/// x64 register numbers as UNWIND_CODE encodes them.
const RBX: u8 = 3;
const RBP: u8 = 5;
const RSI: u8 = 6;
const RDI: u8 = 7;
const R12: u8 = 12;
const R13: u8 = 13;
const R14: u8 = 14;
const R15: u8 = 15;

const UWOP_PUSH_NONVOL: u8 = 0;
const UWOP_ALLOC_LARGE: u8 = 1;
const UWOP_ALLOC_SMALL: u8 = 2;
const UWOP_PUSH_MACHFRAME: u8 = 10;

/// Where the unwind tables go inside each module's header page: after the
/// headers, the debug directory and the CodeView record.
pub const TABLES_RVA: u64 = 0x400;
/// End of the room for the tables (the header page).
pub const TABLES_END: u64 = 0x1000;

/// One UNWIND_CODE: operation, operation info, extra slots.
type UnwindCode = (u8, u8, Vec<u16>);

/// How one function's prolog is shaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameShape {
    /// Nonvolatile registers pushed, in prolog order.
    pub pushes: Vec<u8>,
    /// Bytes of `sub rsp, N` after the pushes (a multiple of 8).
    pub alloc: u32,
    /// Encode a large allocation with the 32-bit operand form
    /// (`UWOP_ALLOC_LARGE`, OpInfo 1) even when it would fit the 16-bit one.
    pub large_u32: bool,
    /// An interrupt or exception handler: the CPU pushed a machine frame
    /// (with an error code when `Some(true)`) before the first instruction
    /// (`UWOP_PUSH_MACHFRAME`).
    pub machine_frame: Option<bool>,
}

/// One prolog instruction as its unwind code describes it, in execution
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrologOp {
    /// `push reg` (UWOP_PUSH_NONVOL).
    Push(u8),
    /// `sub rsp, n` (UWOP_ALLOC_SMALL / UWOP_ALLOC_LARGE).
    Alloc(u32),
    /// The frame register is set to RSP + the header's frame offset
    /// (UWOP_SET_FPREG).
    SetFrame,
    /// `mov [frame + off], reg` (UWOP_SAVE_NONVOL[_FAR]): register, offset
    /// from the establisher frame.
    Save(u8, u32),
    /// `movaps [frame + off], xmm` (UWOP_SAVE_XMM128[_FAR]).
    SaveXmm(u8, u32),
    /// The CPU's interrupt frame (SS, RSP, RFLAGS, CS, RIP, and an error
    /// code when true) (UWOP_PUSH_MACHFRAME): the caller is the interrupted
    /// code, resumed at its RIP, not returned to.
    MachineFrame(bool),
}

/// A function's prolog for laying out its frames: the same for the lab's
/// synthetic functions (from [`FrameShape`]) and real code (decoded from its
/// UNWIND_INFO in [`crate::driver`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameRecipe {
    /// Prolog operations in execution order; empty for a leaf.
    pub ops: Vec<PrologOp>,
    /// Frame register and its offset in bytes (scaled FrameOffset).
    pub frame_register: Option<(u8, u32)>,
}

fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in s.bytes() {
        h = (h ^ c as u64).wrapping_mul(0x100_0000_01b3);
    }
    h ^ (h >> 29)
}

/// Whether `name` (`nt!ExfAcquirePushLockExclusive`) is a push-lock acquire:
/// its frame holds the waiter's wait block and the lock's address.
pub fn is_push_lock_acquire(name: &str) -> bool {
    let s = name.rsplit('!').next().unwrap_or(name);
    s.contains("Acquire") && s.contains("PushLock")
}

/// From a push-lock acquire frame's body RSP: where the lab keeps the
/// lock's address (as the real function keeps its argument while it waits).
pub const PUSH_LOCK_ADDRESS_SLOT: u64 = 0x20;
/// From a push-lock acquire frame's body RSP: its wait block (16-aligned,
/// 0x40 bytes, 7 SP1's `_EX_PUSH_LOCK_WAIT_BLOCK` size).
pub const PUSH_LOCK_WAIT_BLOCK: u64 = 0x30;

impl FrameShape {
    /// The shape given to function `name` (`module!symbol`): stable across
    /// builds so a scenario's stacks look the same on every build.
    pub fn for_function(name: &str) -> FrameShape {
        let interrupt = [
            "nt!KiDpcInterrupt",
            "nt!KiInterruptDispatch",
            "nt!KiInterruptDispatchNoLockNoEtw",
        ];
        if interrupt.iter().any(|n| n.eq_ignore_ascii_case(name))
            || name.eq_ignore_ascii_case("nt!KiPageFault")
        {
            // Entered with RSP 16-aligned minus the machine frame: push rbp
            // and room for a KTRAP_FRAME keep the body 16-aligned.
            let error_code = name.eq_ignore_ascii_case("nt!KiPageFault");
            return FrameShape {
                pushes: vec![RBP],
                alloc: if error_code { 0x158 } else { 0x150 },
                large_u32: false,
                machine_frame: Some(error_code),
            };
        }
        if name.eq_ignore_ascii_case("nt!KiIdleLoop") {
            // The idle loop's frame must fit the 0x58 bytes the lab leaves
            // below the idle thread's InitialStack.
            return FrameShape {
                pushes: Vec::new(),
                alloc: 0x38,
                large_u32: false,
                machine_frame: None,
            };
        }
        if is_push_lock_acquire(name) {
            // Room for the lock's address and a wait block above the
            // callee's home space; RBX and RDI keep the lock and the block.
            return FrameShape {
                pushes: vec![RBX, RDI],
                alloc: 0x78,
                large_u32: false,
                machine_frame: None,
            };
        }
        let h = hash(name);
        const REGS: [u8; 8] = [RBX, RBP, RSI, RDI, R12, R13, R14, R15];
        let n = (h % 4) as usize;
        let first = ((h >> 8) % 8) as usize;
        let pushes: Vec<u8> = (0..n).map(|i| REGS[(first + i * 3) % 8]).collect();
        // 8 (return address) + pushes + alloc is a multiple of 16, as the
        // x64 calling convention keeps RSP aligned in a function body.
        let sizes = [0x20u32, 0x30, 0x40, 0x50, 0x70, 0x90, 0xA0];
        let mut alloc = sizes[((h >> 16) % sizes.len() as u64) as usize];
        if (8 + 8 * n as u32 + alloc) % 16 != 0 {
            alloc += 8;
        }
        FrameShape {
            pushes,
            alloc,
            large_u32: alloc > 0x80 && (h >> 24) % 2 == 0,
            machine_frame: None,
        }
    }

    /// Bytes this frame takes on the stack, return address included.
    pub fn frame_size(&self) -> u64 {
        let entry = match self.machine_frame {
            None => 8,
            Some(false) => 0x28,
            Some(true) => 0x30,
        };
        self.alloc as u64 + 8 * self.pushes.len() as u64 + entry
    }

    /// The prolog instructions, each with its bytes.
    fn prolog(&self) -> Vec<(Vec<u8>, UnwindCode)> {
        let mut out = Vec::new();
        if let Some(ec) = self.machine_frame {
            // Pushed by the CPU: no instruction bytes, offset 0.
            out.push((Vec::new(), (UWOP_PUSH_MACHFRAME, ec as u8, Vec::new())));
        }
        for &r in &self.pushes {
            let bytes = if r >= 8 {
                vec![0x41, 0x50 + (r - 8)]
            } else {
                vec![0x50 + r]
            };
            out.push((bytes, (UWOP_PUSH_NONVOL, r, Vec::new())));
        }
        let a = self.alloc;
        if a == 0 {
            return out;
        }
        let bytes = if a <= 0x7F {
            vec![0x48, 0x83, 0xEC, a as u8]
        } else {
            let mut b = vec![0x48, 0x81, 0xEC];
            b.extend(a.to_le_bytes());
            b
        };
        let code = if a <= 0x80 {
            (UWOP_ALLOC_SMALL, ((a - 8) / 8) as u8, Vec::new())
        } else if !self.large_u32 && a / 8 <= 0xFFFF {
            (UWOP_ALLOC_LARGE, 0, vec![(a / 8) as u16])
        } else {
            (UWOP_ALLOC_LARGE, 1, vec![a as u16, (a >> 16) as u16])
        };
        out.push((bytes, code));
        out
    }

    /// The prolog as a [`FrameRecipe`].
    pub fn recipe(&self) -> FrameRecipe {
        let mut ops: Vec<PrologOp> = self
            .machine_frame
            .map(PrologOp::MachineFrame)
            .into_iter()
            .collect();
        ops.extend(self.pushes.iter().map(|&r| PrologOp::Push(r)));
        if self.alloc > 0 {
            ops.push(PrologOp::Alloc(self.alloc));
        }
        FrameRecipe {
            ops,
            frame_register: None,
        }
    }

    /// The prolog's bytes.
    pub fn prolog_bytes(&self) -> Vec<u8> {
        self.prolog().into_iter().flat_map(|(b, _)| b).collect()
    }

    /// The epilog's bytes: `add rsp, N`, the pops in reverse order, `ret`.
    pub fn epilog_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        let a = self.alloc;
        if a > 0 && a <= 0x7F {
            b.extend([0x48, 0x83, 0xC4, a as u8]);
        } else if a > 0 {
            b.extend([0x48, 0x81, 0xC4]);
            b.extend(a.to_le_bytes());
        }
        for &r in self.pushes.iter().rev() {
            if r >= 8 {
                b.extend([0x41, 0x58 + (r - 8)]);
            } else {
                b.push(0x58 + r);
            }
        }
        if self.machine_frame.is_some() {
            // iretq (an error code would be popped first: add rsp, 8).
            if self.machine_frame == Some(true) {
                b.extend([0x48, 0x83, 0xC4, 0x08]);
            }
            b.extend([0x48, 0xCF]);
        } else {
            b.push(0xC3);
        }
        b
    }

    /// UNWIND_INFO version 1, no handler, no frame register: the header and
    /// the unwind codes (last prolog instruction first), padded to an even
    /// slot count as the format requires.
    pub fn unwind_info(&self) -> Vec<u8> {
        let prolog = self.prolog();
        let mut codes: Vec<u16> = Vec::new();
        let mut offset = 0u32;
        let mut ends = Vec::new();
        for (bytes, code) in &prolog {
            offset += bytes.len() as u32;
            ends.push((offset, code.clone()));
        }
        for (end, (op, info, extra)) in ends.iter().rev() {
            codes.push(u16::from_le_bytes([*end as u8, op | (info << 4)]));
            codes.extend(extra);
        }
        let count = codes.len();
        if codes.len() % 2 == 1 {
            codes.push(0);
        }
        let mut out = vec![1u8, offset as u8, count as u8, 0];
        for c in codes {
            out.extend(c.to_le_bytes());
        }
        out
    }
}

/// One function placed in a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedFunction {
    /// The symbol's name without the module (`NtfsCommonCreate`).
    pub symbol: String,
    /// Entry point.
    pub begin: u64,
    /// The call site's return address inside it (also the running RIP).
    pub site: u64,
    /// Its prolog, for synthetic code.
    pub shape: FrameShape,
    /// Real code's prolog (from its own unwind data); the module's tables
    /// are the image's own, not written by the lab.
    pub real: Option<FrameRecipe>,
}

impl PlacedFunction {
    /// The prolog frames are laid out from.
    pub fn recipe(&self) -> FrameRecipe {
        match &self.real {
            Some(r) => r.clone(),
            None => self.shape.recipe(),
        }
    }
}

/// A module that gets unwind tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleTables {
    /// Image base.
    pub base: u64,
    /// SizeOfImage.
    pub size: u64,
    /// File name (`Ntfs.sys`).
    pub name: String,
    /// `e_lfanew`.
    pub lfanew: u64,
    /// Also write an export directory naming the functions (drivers; the
    /// kernel's names come from its symbol table).
    pub exports: bool,
    /// The functions, any order, no duplicates.
    pub functions: Vec<PlacedFunction>,
}

/// Writes the tables and frames into the image (implemented by the
/// builder: mapping and writing through its page tables).
pub trait StackMemory {
    /// Make `[va, va+len)` present (code pages when `code`).
    fn map(&mut self, va: u64, len: u64, code: bool) -> Result<(), Error>;
    /// Write bytes at a mapped `va`.
    fn write(&mut self, va: u64, bytes: &[u8]) -> Result<(), Error>;
}

fn put_u32(v: &mut Vec<u8>, at: usize, x: u32) {
    if v.len() < at + 4 {
        v.resize(at + 4, 0);
    }
    v[at..at + 4].copy_from_slice(&x.to_le_bytes());
}

/// Write a module's code (prologs, call sites, epilogs), its `.pdata`
/// table and UNWIND_INFOs, its exception directory (data directory 3) and,
/// for drivers, its export directory (data directory 0).
pub fn write_module(mem: &mut dyn StackMemory, m: &ModuleTables) -> Result<(), Error> {
    let mut funcs = m.functions.clone();
    funcs.sort_by_key(|f| f.begin);
    funcs.dedup_by_key(|f| f.begin);
    // Function extents: to 0x20 past the call site, never into the next.
    let mut ranges = Vec::new();
    for (i, f) in funcs.iter().enumerate() {
        let mut end = f.site + 0x20;
        if let Some(n) = funcs.get(i + 1) {
            end = end.min(n.begin);
        }
        end = end.min(m.base + m.size);
        if end <= f.site || f.begin < m.base + 0x1000 {
            return Err(Error::Capacity { problem: format!(
                "stacks: function {}!{} at {:#x} (site {:#x}) overlaps the next function or the headers",
                m.name, f.symbol, f.begin, f.site
            )});
        }
        ranges.push((f.begin - m.base, end - m.base));
    }
    // Code.
    for (f, &(b, e)) in funcs.iter().zip(&ranges) {
        let len = e - b;
        mem.map(m.base + b, len, true)?;
        let mut code = vec![0x90u8; len as usize];
        let p = f.shape.prolog_bytes();
        code[..p.len()].copy_from_slice(&p);
        let s = (f.site - f.begin) as usize;
        if s >= p.len() + 5 {
            code[s - 5] = 0xE8; // call rel32 (target not modelled)
        }
        let ep = f.shape.epilog_bytes();
        if len as usize > s + ep.len() {
            let at = len as usize - ep.len();
            code[at..].copy_from_slice(&ep);
        }
        mem.write(m.base + b, &code)?;
    }
    // Tables in the header page: .pdata, then the UNWIND_INFOs, then the
    // export directory.
    let mut blob: Vec<u8> = Vec::new();
    let pdata_len = 12 * funcs.len();
    blob.resize(pdata_len, 0);
    for (i, (f, &(b, e))) in funcs.iter().zip(&ranges).enumerate() {
        while blob.len() % 4 != 0 {
            blob.push(0);
        }
        let info_rva = TABLES_RVA as u32 + blob.len() as u32;
        blob.extend(f.shape.unwind_info());
        put_u32(&mut blob, i * 12, b as u32);
        put_u32(&mut blob, i * 12 + 4, e as u32);
        put_u32(&mut blob, i * 12 + 8, info_rva);
    }
    let mut export = None;
    if m.exports {
        while blob.len() % 4 != 0 {
            blob.push(0);
        }
        let dir = blob.len();
        let n = funcs.len();
        // Names sorted (the loader binary-searches them).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| funcs[a].symbol.cmp(&funcs[b].symbol));
        let at = |o: usize| TABLES_RVA as u32 + o as u32;
        let funcs_o = dir + 40;
        let names_o = funcs_o + 4 * n;
        let ords_o = names_o + 4 * n;
        let mut strings = ords_o + 2 * n;
        blob.resize(strings, 0);
        let mut push_str = |blob: &mut Vec<u8>, s: &str| -> usize {
            let o = strings;
            blob.extend(s.as_bytes());
            blob.push(0);
            strings = blob.len();
            o
        };
        let dll = push_str(&mut blob, &m.name);
        put_u32(&mut blob, dir + 12, at(dll)); // Name
        put_u32(&mut blob, dir + 16, 1); // Base (ordinal base)
        put_u32(&mut blob, dir + 20, n as u32); // NumberOfFunctions
        put_u32(&mut blob, dir + 24, n as u32); // NumberOfNames
        put_u32(&mut blob, dir + 28, at(funcs_o));
        put_u32(&mut blob, dir + 32, at(names_o));
        put_u32(&mut blob, dir + 36, at(ords_o));
        for (i, f) in funcs.iter().enumerate() {
            put_u32(&mut blob, funcs_o + 4 * i, (f.begin - m.base) as u32);
        }
        for (k, &i) in order.iter().enumerate() {
            let s = push_str(&mut blob, &funcs[i].symbol);
            put_u32(&mut blob, names_o + 4 * k, at(s));
            blob[ords_o + 2 * k..ords_o + 2 * k + 2].copy_from_slice(&(i as u16).to_le_bytes());
        }
        export = Some((at(dir), (blob.len() - dir) as u32));
    }
    if TABLES_RVA + blob.len() as u64 > TABLES_END {
        return Err(Error::Capacity {
            problem: format!(
            "stacks: {} unwind tables for {} functions need {:#x} bytes, the header page has {:#x}",
            m.name,
            funcs.len(),
            blob.len(),
            TABLES_END - TABLES_RVA
        ),
        });
    }
    mem.write(m.base + TABLES_RVA, &blob)?;
    // Data directories: the optional header starts 24 bytes into the NT
    // headers; NumberOfRvaAndSizes at +108, the directories at +112.
    let opt = m.base + m.lfanew + 24;
    mem.write(opt + 108, &16u32.to_le_bytes())?;
    let mut dir3 = Vec::new();
    dir3.extend((TABLES_RVA as u32).to_le_bytes());
    dir3.extend((pdata_len as u32).to_le_bytes());
    mem.write(opt + 112 + 3 * 8, &dir3)?;
    if let Some((rva, size)) = export {
        let mut d = rva.to_le_bytes().to_vec();
        d.extend(size.to_le_bytes());
        mem.write(opt + 112, &d)?;
    }
    Ok(())
}

/// Below a frame-register function's establisher frame, the room its body
/// takes (`alloca` and outgoing arguments) when it calls: the unwinder must
/// find the frame through the frame register, not RSP.
pub const FRAME_POINTER_BODY: u64 = 0x40;

/// A call chain laid out on a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLayout {
    /// Lowest address written: the innermost frame's RSP.
    pub low: u64,
    /// The words from `low` up to and including the outermost return
    /// address (0).
    pub words: Vec<u64>,
    /// The RSP each frame runs at (its Child-SP), innermost first.
    pub rsps: Vec<u64>,
    /// The nonvolatile registers in the innermost frame (index = x64
    /// register number): what its context must hold.
    pub registers: [u64; 16],
}

/// Lay out a call chain (innermost first) whose outermost function was
/// entered with RSP = `entry` (its return address, 0, stored there), by
/// running each prolog forward as the CPU would: pushes and saves store the
/// caller's register values, a frame register gets its value, the body
/// then owns fresh values in the registers it saved. The innermost frame's
/// context registers come out in [`ChainLayout::registers`].
pub fn lay_out(chain: &[&PlacedFunction], entry: u64, seed: u64) -> Result<ChainLayout, Error> {
    let mut writes: Vec<(u64, u64)> = Vec::new();
    let mut regs = [0u64; 16];
    for (r, v) in regs.iter_mut().enumerate() {
        *v = 0xFFFF_B000_0000_0000 | (seed << 20) | 0xF_F000 | r as u64;
    }
    let mut rsps = vec![0u64; chain.len()];
    // The frame entered last: its body RSP and where it continues.
    let mut outer: Option<(u64, u64)> = None;
    for (k, f) in chain.iter().enumerate().rev() {
        let recipe = f.recipe();
        let e = match (outer, recipe.ops.first()) {
            (None, _) => {
                writes.push((entry, 0));
                entry
            }
            (Some((body, site)), Some(&PrologOp::MachineFrame(ec))) => {
                // The CPU aligns RSP to 16, then pushes SS, RSP, RFLAGS,
                // CS, RIP (and an error code): the interrupted frame goes on
                // at `site` with its own RSP.
                let top = body & !0xF;
                let at = top - 0x28 - if ec { 8 } else { 0 };
                let words = [site, 0x10, 0x246, body, 0x18];
                let first = if ec { at + 8 } else { at };
                if ec {
                    writes.push((at, 0));
                }
                for (i, w) in words.iter().enumerate() {
                    writes.push((first + 8 * i as u64, *w));
                }
                at
            }
            (Some((body, site)), _) => {
                // The call into this frame pushed the caller's site.
                writes.push((body - 8, site));
                body - 8
            }
        };
        let mut rsp = e;
        let mut saved = Vec::new();
        let mut at_set_frame = None;
        let mut deferred = Vec::new();
        for op in &recipe.ops {
            match *op {
                PrologOp::Push(r) => {
                    rsp -= 8;
                    writes.push((rsp, regs[r as usize & 15]));
                    saved.push(r);
                }
                PrologOp::Alloc(n) => rsp -= n as u64,
                PrologOp::SetFrame => at_set_frame = Some(rsp),
                PrologOp::Save(r, off) => {
                    deferred.push((r, off, false));
                    saved.push(r);
                }
                PrologOp::SaveXmm(r, off) => deferred.push((r, off, true)),
                // Already laid out on entry.
                PrologOp::MachineFrame(_) => {}
            }
        }
        let (establisher, body) = match (recipe.frame_register, at_set_frame) {
            (Some(_), Some(at)) => (at, rsp - FRAME_POINTER_BODY),
            (Some(_), None) => {
                return Err(Error::Capacity {
                    problem: format!(
                        "stacks: {} has a frame register but no UWOP_SET_FPREG",
                        f.symbol
                    ),
                })
            }
            _ => (rsp, rsp),
        };
        for (r, off, xmm) in deferred {
            let a = establisher + off as u64;
            if xmm {
                writes.push((a, 0x3FF8_0000_0000_0000 | r as u64));
                writes.push((a + 8, 0));
            } else {
                writes.push((a, regs[r as usize & 15]));
            }
        }
        // The body's own values in the registers it saved.
        for r in saved {
            regs[r as usize & 15] =
                0xFFFF_A000_0000_0000 | (seed << 20) | ((k as u64) << 8) | (r as u64 & 15);
        }
        if let (Some((fr, off)), Some(at)) = (recipe.frame_register, at_set_frame) {
            regs[fr as usize & 15] = at + off as u64;
        }
        rsps[k] = body;
        outer = Some((body, f.site));
    }
    let low = rsps.first().copied().unwrap_or(entry);
    let n = ((entry - low) / 8 + 1) as usize;
    // Locals: mostly zero, some stale pointers into the same stack, as real
    // frames hold.
    let mut words: Vec<u64> = (0..n)
        .map(|j| {
            if j % 3 == 1 {
                low.wrapping_add(8 * j as u64 + 0x40)
            } else {
                0
            }
        })
        .collect();
    for (a, v) in writes {
        if a >= low && a <= entry {
            words[((a - low) / 8) as usize] = v;
        }
    }
    Ok(ChainLayout {
        low,
        words,
        rsps,
        registers: regs,
    })
}

/// Stack bytes a chain of synthetic frames takes (return addresses
/// included).
pub fn chain_size(chain: &[&PlacedFunction]) -> u64 {
    chain.iter().map(|f| f.shape.frame_size()).sum()
}

/// The expected frame text for a function (`nt!KiSwapContext+0x7a`):
/// symbolised at the call site, shown with the offset of the site itself,
/// as WinDbg prints return addresses.
pub fn frame_text(module: &str, f: &PlacedFunction) -> String {
    match f.site - f.begin {
        0 => format!("{module}!{}", f.symbol),
        off => format!("{module}!{}+{off:#x}", f.symbol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwind_info_encodes_pushes_then_alloc() {
        let s = FrameShape {
            pushes: vec![RBX, R12],
            alloc: 0x28,
            large_u32: false,
            machine_frame: None,
        };
        // push rbx (1) ; push r12 (2) ; sub rsp,0x28 (4)
        assert_eq!(
            s.prolog_bytes(),
            vec![0x53, 0x41, 0x54, 0x48, 0x83, 0xEC, 0x28]
        );
        let u = s.unwind_info();
        assert_eq!(&u[..4], &[1, 7, 3, 0]);
        // codes: (7, ALLOC_SMALL info 4), (3, PUSH r12), (1, PUSH rbx), pad
        assert_eq!(&u[4..], &[7, 0x42, 3, 0xC0, 1, 0x30, 0, 0]);
    }

    #[test]
    fn large_allocations_use_both_operand_forms() {
        let mut s = FrameShape {
            pushes: vec![],
            alloc: 0x98,
            large_u32: false,
            machine_frame: None,
        };
        assert_eq!(s.unwind_info(), vec![1, 7, 2, 0, 7, 0x01, 0x13, 0]);
        s.large_u32 = true;
        assert_eq!(
            s.unwind_info(),
            vec![1, 7, 3, 0, 7, 0x11, 0x98, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn frames_end_with_zero_return() {
        let f = |site| PlacedFunction {
            symbol: "f".into(),
            begin: site - 0x20,
            site,
            shape: FrameShape::for_function("nt!KiIdleLoop"),
            real: None,
        };
        let a = f(0x1020);
        let b = f(0x2020);
        // Entered at 0x8078: b's body at 0x8040, a's at 0x8000.
        let l = lay_out(&[&a, &b], 0x8078, 1).expect("layout");
        assert_eq!(l.rsps, vec![0x8000, 0x8040]);
        assert_eq!(l.low, 0x8000);
        assert_eq!(l.words[7], 0x2020);
        assert_eq!(l.words[15], 0);
        assert_eq!(l.words.len(), 16);
        assert_eq!(chain_size(&[&a, &b]), 0x80);
    }

    #[test]
    fn an_interrupt_resumes_the_interrupted_frame_at_its_rip() {
        let isr = PlacedFunction {
            symbol: "KiDpcInterrupt".into(),
            begin: 0x5000,
            site: 0x5040,
            shape: FrameShape::for_function("nt!KiDpcInterrupt"),
            real: None,
        };
        // A leaf interrupted 0x10 into it, called from `outer`.
        let leaf = PlacedFunction {
            symbol: "spin".into(),
            begin: 0x2000,
            site: 0x2010,
            shape: FrameShape::for_function("x"),
            real: Some(FrameRecipe::default()),
        };
        let outer = PlacedFunction {
            symbol: "outer".into(),
            begin: 0x1000,
            site: 0x1040,
            shape: FrameShape::for_function("y"),
            real: None,
        };
        let entry = 0x9008;
        let l = lay_out(&[&isr, &leaf, &outer], entry, 1).expect("layout");
        let word = |a: u64| l.words[((a - l.low) / 8) as usize];
        let leaf_rsp = l.rsps[1];
        // The leaf's return address at its RSP; the machine frame below
        // the 16-aligned RSP: RIP, CS, RFLAGS, RSP, SS.
        assert_eq!(word(leaf_rsp), 0x1040);
        let mf = (leaf_rsp & !0xF) - 0x28;
        assert_eq!(
            [
                word(mf),
                word(mf + 8),
                word(mf + 16),
                word(mf + 24),
                word(mf + 32)
            ],
            [0x2010, 0x10, 0x246, leaf_rsp, 0x18]
        );
        // push rbp; sub rsp, 0x150 below it.
        assert_eq!(l.rsps[0], mf - 8 - 0x150);
        let u = isr.shape.unwind_info();
        // Codes: alloc (at 8), push rbp (at 1), machine frame (at 0).
        assert_eq!(
            u[4..].chunks(2).last().map(|c| c[1] & 0xF),
            Some(UWOP_PUSH_MACHFRAME)
        );
    }

    #[test]
    fn frame_register_functions_keep_their_frame_in_rbp() {
        // push rbp; push rbx; sub rsp, 0x28; lea rbp, [rsp+0x10];
        // mov [rsp+0x10], rsi
        let fp = FrameRecipe {
            ops: vec![
                PrologOp::Push(RBP),
                PrologOp::Push(RBX),
                PrologOp::Alloc(0x28),
                PrologOp::SetFrame,
                PrologOp::Save(RSI, 0x10),
            ],
            frame_register: Some((RBP, 0x10)),
        };
        let outer = PlacedFunction {
            symbol: "outer".into(),
            begin: 0x1000,
            site: 0x1040,
            shape: FrameShape::for_function("x"),
            real: Some(fp),
        };
        let leaf = PlacedFunction {
            symbol: "leaf".into(),
            begin: 0x2000,
            site: 0x2004,
            shape: FrameShape::for_function("y"),
            real: Some(FrameRecipe::default()),
        };
        let l = lay_out(&[&leaf, &outer], 0x9008, 7).expect("layout");
        // Establisher 0x8fd0 (after two pushes and the allocation), RBP
        // 0x10 above it, the body FRAME_POINTER_BODY below it.
        let est = 0x9008 - 16 - 0x28;
        assert_eq!(l.registers[RBP as usize], est + 0x10);
        let body = est - FRAME_POINTER_BODY;
        assert_eq!(l.rsps, vec![body - 8, body]);
        // The leaf's return address at its RSP; RSI saved at establisher+0x10.
        assert_eq!(l.words[0], 0x1040);
        assert_eq!(
            l.words[((est + 0x10 - l.low) / 8) as usize] & 0xF,
            RSI as u64
        );
        assert_eq!(*l.words.last().expect("words"), 0);
    }
}
