//! Writing unwindable code and stacks, for the lab and for tests: UNWIND_INFO
//! and `.pdata` for functions placed at chosen RVAs, the prolog instructions
//! that match them, and stack frames laid out as those prologs would have.
//!
//! The lab places a synthetic kernel's functions at the RVAs of the real
//! symbols, so that frames symbolise to real names; with
//! [`UnwindTableBuilder`] it can give them `.pdata`, and with
//! [`StackLayout`] write thread stacks that this crate unwinds back exactly.

use crate::raw::*;
use crate::unwind::{Context, Reg};
use std::fmt;

/// The frame a function's prolog builds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameSpec {
    /// Machine frame pushed by the CPU before the first instruction (an
    /// interrupt or trap handler): `Some(error_code)`.
    pub machine_frame: Option<bool>,
    /// Nonvolatile registers pushed, in prolog order.
    pub pushes: Vec<Reg>,
    /// Fixed allocation after the pushes (a multiple of 8).
    pub alloc: u32,
    /// Frame register RBP set to RSP + `16 * n` after the allocation
    /// (`n` <= 15); RBP must be among `pushes`.
    pub frame_pointer: Option<u8>,
}

impl FrameSpec {
    /// A frame that only allocates `alloc` bytes (`sub rsp, alloc`).
    pub fn alloc(alloc: u32) -> Self {
        FrameSpec {
            alloc,
            ..FrameSpec::default()
        }
    }

    /// Bytes between the frame's RSP (after its prolog) and its return
    /// address (or, for a machine frame, the hardware frame).
    pub fn body_size(&self) -> u64 {
        u64::from(self.alloc) + 8 * self.pushes.len() as u64
    }

    /// The prolog instructions (x86-64 machine code) and, for each, the
    /// offset of its end: what the unwind codes describe.
    pub fn prolog(&self) -> Vec<(Vec<u8>, UnwindOpSpec)> {
        let mut v = Vec::new();
        for &r in &self.pushes {
            let n = r as u8;
            let code = if n >= 8 {
                vec![0x41, 0x50 + (n - 8)]
            } else {
                vec![0x50 + n]
            };
            v.push((code, UnwindOpSpec::Push(r)));
        }
        if self.alloc > 0 {
            let mut code = vec![0x48, 0x81, 0xec];
            code.extend_from_slice(&self.alloc.to_le_bytes());
            v.push((code, UnwindOpSpec::Alloc(self.alloc)));
        }
        if let Some(n) = self.frame_pointer {
            // lea rbp, [rsp + disp32]
            let mut code = vec![0x48, 0x8d, 0xac, 0x24];
            code.extend_from_slice(&(u32::from(n) * 16).to_le_bytes());
            v.push((code, UnwindOpSpec::SetFpreg));
        }
        v
    }

    /// The epilog instructions: deallocation, pops, `ret` (`iretq` for a
    /// machine frame, after dropping the error code).
    pub fn epilog(&self) -> Vec<u8> {
        let mut code = Vec::new();
        if self.alloc > 0 {
            code.extend_from_slice(&[0x48, 0x81, 0xc4]);
            code.extend_from_slice(&self.alloc.to_le_bytes());
        }
        for &r in self.pushes.iter().rev() {
            let n = r as u8;
            if n >= 8 {
                code.extend_from_slice(&[0x41, 0x58 + (n - 8)]);
            } else {
                code.push(0x58 + n);
            }
        }
        match self.machine_frame {
            Some(true) => code.extend_from_slice(&[0x48, 0x83, 0xc4, 0x08, 0x48, 0xcf]),
            Some(false) => code.extend_from_slice(&[0x48, 0xcf]),
            None => code.push(0xc3),
        }
        code
    }

    /// The UNWIND_INFO (version 1) describing [`FrameSpec::prolog`].
    pub fn unwind_info(&self) -> Result<Vec<u8>, SynthError> {
        self.check()?;
        let mut codes: Vec<u16> = Vec::new();
        let mut offset: u32 = 0;
        let mut ops = Vec::new();
        for (code, op) in self.prolog() {
            offset += code.len() as u32;
            ops.push((offset as u8, op));
        }
        let prolog_size = offset as u8;
        let c = |off: u8, op: u8, info: u8| {
            u16::from(off) | (u16::from(op) << 8) | (u16::from(info) << 12)
        };
        for &(off, op) in ops.iter().rev() {
            match op {
                UnwindOpSpec::Push(r) => codes.push(c(off, UWOP_PUSH_NONVOL, r as u8)),
                UnwindOpSpec::SetFpreg => codes.push(c(off, UWOP_SET_FPREG, 0)),
                UnwindOpSpec::Alloc(n) if n <= 128 => {
                    codes.push(c(off, UWOP_ALLOC_SMALL, (n / 8 - 1) as u8))
                }
                UnwindOpSpec::Alloc(n) if n / 8 <= 0xffff => {
                    codes.push(c(off, UWOP_ALLOC_LARGE, 0));
                    codes.push((n / 8) as u16);
                }
                UnwindOpSpec::Alloc(n) => {
                    codes.push(c(off, UWOP_ALLOC_LARGE, 1));
                    codes.push(n as u16);
                    codes.push((n >> 16) as u16);
                }
            }
        }
        if let Some(ec) = self.machine_frame {
            codes.push(c(0, UWOP_PUSH_MACHFRAME, u8::from(ec)));
        }
        let (freg, foff) = match self.frame_pointer {
            Some(n) => (Reg::Rbp as u8, n),
            None => (0, 0),
        };
        let mut v = vec![1, prolog_size, codes.len() as u8, freg | (foff << 4)];
        for code in &codes {
            v.extend_from_slice(&code.to_le_bytes());
        }
        if codes.len() % 2 == 1 {
            v.extend_from_slice(&[0, 0]);
        }
        Ok(v)
    }

    fn check(&self) -> Result<(), SynthError> {
        let bad = |why: &'static str| Err(SynthError(why));
        if self.alloc % 8 != 0 {
            return bad("alloc must be a multiple of 8");
        }
        if self.pushes.contains(&Reg::Rsp) {
            return bad("RSP cannot be pushed as a nonvolatile register");
        }
        if self.pushes.len() > 15 {
            return bad("too many pushes");
        }
        if let Some(n) = self.frame_pointer {
            if n > 15 || !self.pushes.contains(&Reg::Rbp) || u32::from(n) * 16 > self.alloc {
                return bad("frame pointer: offset <= 15, within the allocation, RBP pushed");
            }
        }
        let prolog: usize = self.prolog().iter().map(|(c, _)| c.len()).sum();
        if prolog > 255 {
            return bad("prolog longer than 255 bytes");
        }
        Ok(())
    }
}

/// One prolog step (for [`FrameSpec::prolog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwindOpSpec {
    /// `push reg`.
    Push(Reg),
    /// `sub rsp, n`.
    Alloc(u32),
    /// `lea rbp, [rsp + 16 * offset]`.
    SetFpreg,
}

/// A spec or layout that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthError(pub &'static str);

impl fmt::Display for SynthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for SynthError {}

/// `.pdata` and UNWIND_INFO bytes for a set of functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwindTable {
    /// RUNTIME_FUNCTION array, sorted: place at the exception directory's
    /// RVA and set its size to `pdata.len()`.
    pub pdata: Vec<u8>,
    /// UNWIND_INFOs: place at the `xdata_rva` given to the builder.
    pub xdata: Vec<u8>,
}

/// Builds an [`UnwindTable`].
#[derive(Debug, Clone)]
pub struct UnwindTableBuilder {
    xdata_rva: u32,
    functions: Vec<(u32, u32, FrameSpec)>,
}

impl UnwindTableBuilder {
    /// A table whose UNWIND_INFOs will live at `xdata_rva`.
    pub fn new(xdata_rva: u32) -> Self {
        UnwindTableBuilder {
            xdata_rva,
            functions: Vec::new(),
        }
    }

    /// A function covering `[begin, end)` (RVAs) with this frame.
    pub fn function(&mut self, begin: u32, end: u32, spec: FrameSpec) -> &mut Self {
        self.functions.push((begin, end, spec));
        self
    }

    /// Encode. Functions are sorted; empty or overlapping ranges are errors.
    pub fn build(&self) -> Result<UnwindTable, SynthError> {
        let mut f = self.functions.clone();
        f.sort_by_key(|x| x.0);
        let mut pdata = Vec::new();
        let mut xdata: Vec<u8> = Vec::new();
        let mut prev_end = 0;
        for (begin, end, spec) in &f {
            if begin >= end {
                return Err(SynthError("empty function range"));
            }
            if *begin < prev_end {
                return Err(SynthError("overlapping function ranges"));
            }
            prev_end = *end;
            let rva = self
                .xdata_rva
                .checked_add(xdata.len() as u32)
                .ok_or(SynthError("xdata RVA overflows"))?;
            xdata.extend(spec.unwind_info()?);
            for x in [*begin, *end, rva] {
                pdata.extend_from_slice(&x.to_le_bytes());
            }
        }
        Ok(UnwindTable { pdata, xdata })
    }
}

/// One frame of a stack to write: where its function is executing and the
/// frame its prolog built (the prolog has completed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameAt {
    /// RIP in this frame (for all but the innermost: the return address
    /// into it, i.e. just after a call).
    pub rip: u64,
    /// Its prolog's frame.
    pub spec: FrameSpec,
}

/// A written stack: the words to store and how to start unwinding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackLayout {
    /// (address, value) pairs to write, 8 bytes each.
    pub words: Vec<(u64, u64)>,
    /// The innermost frame's context (RIP, RSP, nonvolatile registers).
    pub start: Context,
    /// Each frame's (RIP, RSP), innermost first, as the unwinder must find
    /// them.
    pub frames: Vec<(u64, u64)>,
}

impl StackLayout {
    /// Lay out `frames` (innermost first) below `top`: the outermost frame's
    /// return address is 0 at `top - 8`. A frame with a machine frame is an
    /// interrupt handler: the frame after it in the list is the interrupted
    /// one (its RIP is the interrupted instruction). Nonvolatile register
    /// values are made up per frame, so that a wrong restore shows.
    pub fn build(frames: &[FrameAt], top: u64) -> Result<StackLayout, SynthError> {
        let mut words = Vec::new();
        let mut regs = [0u64; 16];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = 0x6e00_0000_0000_0000 | ((i as u64) << 40);
        }
        let mut rsp = top & !0xf;
        let mut expected = Vec::new();
        // Return address (or, below a machine frame, nothing) of the
        // outermost frame.
        let mut pending_return: Option<u64> = Some(0);
        for (k, f) in frames.iter().enumerate().rev() {
            f.spec.check()?;
            let sub = |a: u64, b: u64| a.checked_sub(b).ok_or(SynthError("stack below 0"));
            if let Some(ra) = pending_return.take() {
                rsp = sub(rsp, 8)?;
                words.push((rsp, ra));
            }
            if let Some(ec) = f.spec.machine_frame {
                // The interrupted frame is the one already laid out above
                // (index k + 1, no return address pushed for it): its RIP
                // and RSP go into the machine frame, which the CPU pushes
                // on a 16-byte aligned RSP.
                let (irip, irsp) = *expected.last().ok_or(SynthError(
                    "a machine frame needs an interrupted frame after it",
                ))?;
                rsp = sub(rsp, 16)? & !0xf;
                for v in [0x18u64, irsp, 0x246, 0x10, irip].iter() {
                    rsp = sub(rsp, 8)?;
                    words.push((rsp, *v));
                }
                if ec {
                    rsp = sub(rsp, 8)?;
                    words.push((rsp, 0));
                }
            }
            for &r in &f.spec.pushes {
                rsp = sub(rsp, 8)?;
                words.push((rsp, regs[r as usize]));
                // The function then uses the register for itself.
                regs[r as usize] = regs[r as usize].wrapping_add(0x1_0000 + k as u64);
            }
            rsp = sub(rsp, u64::from(f.spec.alloc))?;
            if f.spec.frame_pointer.is_some() {
                // RBP = RSP + 16n; RBP was pushed, so its old value is saved.
                let n = u64::from(f.spec.frame_pointer.unwrap_or(0));
                regs[Reg::Rbp as usize] = rsp + 16 * n;
            }
            expected.push((f.rip, rsp));
            // The caller of the next (inner) frame is this one.
            pending_return = Some(f.rip);
            if k > 0 && frames[k - 1].spec.machine_frame.is_some() {
                pending_return = None;
            }
        }
        let Some(&(rip, rsp)) = expected.last() else {
            return Err(SynthError("no frames"));
        };
        let mut start = Context::new(rip, rsp);
        for r in Reg::NONVOLATILE {
            start.set(r, regs[r as usize]);
        }
        expected.reverse();
        Ok(StackLayout {
            words,
            start,
            frames: expected,
        })
    }
}
