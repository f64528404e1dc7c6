//! Hand-built images for what a C compiler does not emit: machine frames,
//! chained and indirect entries, SAVE_NONVOL forms, version 2 epilog codes,
//! and corrupt `.pdata` / UNWIND_INFO / stacks.

use hangscope_unwind::raw::*;
use hangscope_unwind::{
    Context, ErrorKind, FrameKind, Module, ModuleList, PeErrorKind, Reg, RipOrigin, StackRange,
    StopReason, UnwindOptions, Unwinder,
};
use hangscope_x64::{SparseMemory, VirtAddr};

const BASE: u64 = 0xffff_f800_2000_0000;
const SIZE: u64 = 0x5000;
const TEXT: u32 = 0x1000;
const RDATA: u32 = 0x2000;
const PDATA: u32 = 0x3000;
const STACK: u64 = 0xffff_d000_2000_0000;
const STACK_TOP: u64 = STACK + 0x4_0000;

fn code(offset: u8, op: u8, info: u8) -> u16 {
    u16::from(offset) | (u16::from(op) << 8) | (u16::from(info) << 12)
}

/// UNWIND_INFO bytes: header, codes padded to even, trailer.
fn unwind_info(
    version: u8,
    flags: u8,
    prolog: u8,
    frame: (u8, u8),
    codes: &[u16],
    trailer: &[u8],
) -> Vec<u8> {
    let mut v = vec![
        version | (flags << 3),
        prolog,
        codes.len() as u8,
        frame.0 | (frame.1 << 4),
    ];
    for c in codes {
        v.extend_from_slice(&c.to_le_bytes());
    }
    if codes.len() % 2 == 1 {
        v.extend_from_slice(&[0, 0]);
    }
    v.extend_from_slice(trailer);
    v
}

fn rf(begin: u32, end: u32, unwind: u32) -> Vec<u8> {
    [begin, end, unwind]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

/// A minimal PE32+ image in memory, built field by field from the PE spec.
struct Pe {
    mem: SparseMemory,
    xdata_next: u32,
    pdata: Vec<(u32, u32, u32)>,
}

impl Pe {
    fn new() -> Self {
        let mut mem = SparseMemory::new();
        let mut h = vec![0u8; 0x400];
        h[0..2].copy_from_slice(b"MZ");
        h[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        h[0x80..0x84].copy_from_slice(b"PE\0\0");
        h[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        h[0x86..0x88].copy_from_slice(&3u16.to_le_bytes());
        h[0x94..0x96].copy_from_slice(&0xf0u16.to_le_bytes());
        let opt = 0x98;
        h[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        h[opt + 56..opt + 60].copy_from_slice(&(SIZE as u32).to_le_bytes());
        h[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        let sec = opt + 0xf0;
        for (i, (name, va, ch)) in [
            (b".text\0\0\0", TEXT, 0x6000_0020u32),
            (b".rdata\0\0", RDATA, 0x4000_0040),
            (b".pdata\0\0", PDATA, 0x4000_0040),
        ]
        .iter()
        .enumerate()
        {
            let s = sec + i * 40;
            h[s..s + 8].copy_from_slice(*name);
            h[s + 8..s + 12].copy_from_slice(&0x1000u32.to_le_bytes());
            h[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
            h[s + 36..s + 40].copy_from_slice(&ch.to_le_bytes());
        }
        mem.write(BASE, &h);
        // int3 everywhere in .text: no accidental epilog.
        mem.write(BASE + u64::from(TEXT), &[0xcc; 0x1000]);
        mem.write(BASE + u64::from(RDATA), &[0; 0x1000]);
        mem.write(BASE + u64::from(PDATA), &[0; 0x2000]);
        Pe {
            mem,
            xdata_next: RDATA,
            pdata: Vec::new(),
        }
    }

    /// Store bytes in .rdata, return their RVA.
    fn xdata(&mut self, bytes: &[u8]) -> u32 {
        let rva = self.xdata_next;
        self.mem.write(BASE + u64::from(rva), bytes);
        self.xdata_next = (rva + bytes.len() as u32 + 3) & !3;
        rva
    }

    fn function(&mut self, begin: u32, end: u32, info: &[u8]) -> u32 {
        let rva = self.xdata(info);
        self.pdata.push((begin, end, rva));
        rva
    }

    fn code(&mut self, rva: u32, bytes: &[u8]) {
        self.mem.write(BASE + u64::from(rva), bytes);
    }

    /// Write `.pdata` in the given order and the exception directory.
    fn finish(mut self) -> SparseMemory {
        let bytes: Vec<u8> = self
            .pdata
            .iter()
            .flat_map(|&(b, e, u)| rf(b, e, u))
            .collect();
        self.mem.write(BASE + u64::from(PDATA), &bytes);
        let dir = 0x98 + 112 + 3 * 8;
        self.mem.write_u32(BASE + dir, PDATA);
        self.mem.write_u32(BASE + dir + 4, bytes.len() as u32);
        self.mem
    }
}

fn modules() -> ModuleList {
    ModuleList::new(vec![Module::new(BASE, SIZE, "synth.sys")])
}

fn limits() -> UnwindOptions {
    UnwindOptions {
        stack_limits: Some(StackRange::new(STACK, STACK_TOP)),
        ..UnwindOptions::default()
    }
}

fn va(rva: u32) -> u64 {
    BASE + u64::from(rva)
}

/// An interrupt handler (machine frame, push rbp, sub rsp 0x20) that
/// interrupted `victim` (sub rsp 0x28), which was called from nowhere.
fn machine_frame_image(error_code: bool, rip_int: u64, rsp_int: u64) -> (SparseMemory, Context) {
    let mut pe = Pe::new();
    let ec = u8::from(error_code);
    pe.function(
        0x100 + TEXT,
        0x200 + TEXT,
        &unwind_info(
            1,
            0,
            5,
            (0, 0),
            &[
                code(5, UWOP_ALLOC_SMALL, 3),
                code(1, UWOP_PUSH_NONVOL, Reg::Rbp as u8),
                code(0, UWOP_PUSH_MACHFRAME, ec),
            ],
            &[],
        ),
    );
    pe.function(
        0x300 + TEXT,
        0x380 + TEXT,
        &unwind_info(1, 0, 4, (0, 0), &[code(4, UWOP_ALLOC_SMALL, 4)], &[]),
    );
    let mut mem = pe.finish();
    let rsp0 = STACK + 0x1000;
    mem.write_u64(rsp0 + 0x20, 0xaaaa_0000_0000_bbbb); // saved rbp
    let m = rsp0 + 0x28 + if error_code { 8 } else { 0 };
    if error_code {
        mem.write_u64(rsp0 + 0x28, 0xe);
    }
    mem.write_u64(m, rip_int);
    mem.write_u64(m + 8, 0x10);
    mem.write_u64(m + 16, 0x246);
    mem.write_u64(m + 24, rsp_int);
    mem.write_u64(m + 32, 0x18);
    // The victim's frame: 0x28 bytes, then return address 0.
    mem.write_u64(rsp_int + 0x28, 0);
    (mem, Context::new(va(TEXT + 0x180), rsp0))
}

#[test]
fn machine_frames_with_and_without_error_code() {
    for ec in [false, true] {
        let rip_int = va(TEXT + 0x300);
        let rsp_int = STACK + 0x8000;
        let (mem, ctx) = machine_frame_image(ec, rip_int, rsp_int);
        let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
        assert_eq!(stack.stop, StopReason::ZeroReturnAddress, "ec={ec}");
        assert_eq!(stack.frames.len(), 2);
        let isr = &stack.frames[0];
        assert_eq!(isr.kind, FrameKind::MachineFrame { error_code: ec });
        let victim = &stack.frames[1];
        // The victim was interrupted at its first instruction: nothing of
        // its prolog has run, and its RIP is not a return address.
        assert_eq!(victim.rip, VirtAddr(rip_int));
        assert_eq!(victim.rsp, VirtAddr(rsp_int));
        assert_eq!(victim.origin, RipOrigin::Interrupted);
        assert_eq!(victim.lookup_address(), VirtAddr(rip_int));
        assert_eq!(victim.context.get(Reg::Rbp), Some(0xaaaa_0000_0000_bbbb));
    }
}

#[test]
fn interrupted_in_the_body_after_the_prolog() {
    // The victim had run its `sub rsp, 0x28`: its frame is undone too.
    let rip_int = va(TEXT + 0x340);
    let rsp_int = STACK + 0x8000;
    let (mem, ctx) = machine_frame_image(false, rip_int, rsp_int - 0x28);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    assert_eq!(stack.frames[1].kind, FrameKind::Normal);
    assert_eq!(stack.frames[1].rsp, VirtAddr(rsp_int - 0x28));
}

#[test]
fn a_machine_frame_from_user_mode_ends_the_kernel_stack() {
    let (mem, ctx) = machine_frame_image(true, 0x7ff6_1234_5678, 0x0000_00c1_2345_6000);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(
        stack.stop,
        StopReason::ReachedUserMode {
            rip: VirtAddr(0x7ff6_1234_5678),
            rsp: VirtAddr(0x0000_00c1_2345_6000)
        }
    );
    assert!(stack.stop.is_complete());
    assert_eq!(stack.frames.len(), 1);
}

#[test]
fn a_machine_frame_may_switch_from_an_interrupt_stack_to_the_thread_stack() {
    let rip_int = va(TEXT + 0x300);
    let thread_rsp = STACK + 0x8000;
    let (mem, ctx) = machine_frame_image(false, rip_int, thread_rsp);
    // The handler runs on a separate interrupt stack [STACK, STACK + 0x2000).
    let thread = StackRange::new(STACK + 0x4000, STACK_TOP);
    let isr = StackRange::new(STACK, STACK + 0x2000);
    let without = UnwindOptions {
        stack_limits: Some(thread),
        ..UnwindOptions::default()
    };
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &without);
    assert_eq!(
        stack.stop,
        StopReason::LeftStack {
            rsp: VirtAddr(ctx.rsp())
        }
    );
    let with = UnwindOptions {
        stack_limits: Some(thread),
        other_stacks: vec![isr],
        ..UnwindOptions::default()
    };
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &with);
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    assert_eq!(stack.frames.len(), 2);
}

#[test]
fn a_machine_frame_pointing_at_itself_is_a_cycle() {
    // (With an error code, so the victim's return-address slot written by
    // the helper does not overlap the machine frame.)
    let (mem, ctx) = machine_frame_image(true, va(TEXT + 0x180), STACK + 0x1000);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(
        stack.stop,
        StopReason::Cycle {
            rip: VirtAddr(ctx.rip),
            rsp: VirtAddr(ctx.rsp())
        }
    );
}

#[test]
fn chained_unwind_info_undoes_the_parent_prolog() {
    let mut pe = Pe::new();
    // Parent: push rbx; push rsi.
    let parent_info = unwind_info(
        1,
        0,
        2,
        (0, 0),
        &[
            code(2, UWOP_PUSH_NONVOL, Reg::Rsi as u8),
            code(1, UWOP_PUSH_NONVOL, Reg::Rbx as u8),
        ],
        &[],
    );
    let parent_rva = pe.function(TEXT + 0x400, TEXT + 0x440, &parent_info);
    // Fragment: sub rsp, 0x20; chained to the parent.
    pe.function(
        TEXT + 0x440,
        TEXT + 0x480,
        &unwind_info(
            1,
            UNW_FLAG_CHAININFO,
            4,
            (0, 0),
            &[code(4, UWOP_ALLOC_SMALL, 3)],
            &rf(TEXT + 0x400, TEXT + 0x440, parent_rva),
        ),
    );
    let mut mem = pe.finish();
    let rsp0 = STACK + 0x2000;
    mem.write_u64(rsp0 + 0x20, 0x5151); // rsi
    mem.write_u64(rsp0 + 0x28, 0xb0b0); // rbx
    mem.write_u64(rsp0 + 0x30, 0); // return address
    let stack = Unwinder::new().unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0x460), rsp0),
        &limits(),
    );
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    // Frame 0 unwound; the walk stops at the zero return address, so the
    // caller frame is not listed: check through a caller in the module.
    let mut mem2 = mem.clone();
    mem2.write_u64(rsp0 + 0x30, va(TEXT + 0x800)); // a leaf region
    mem2.write_u64(rsp0 + 0x38, 0);
    let stack = Unwinder::new().unwind(
        &mem2,
        &modules(),
        Context::new(va(TEXT + 0x460), rsp0),
        &limits(),
    );
    assert_eq!(stack.frames.len(), 2, "{:?}", stack.stop);
    let caller = &stack.frames[1];
    assert_eq!(caller.rsp, VirtAddr(rsp0 + 0x38));
    assert_eq!(caller.context.get(Reg::Rsi), Some(0x5151));
    assert_eq!(caller.context.get(Reg::Rbx), Some(0xb0b0));
    assert_eq!(stack.frames[0].kind, FrameKind::Normal);
}

#[test]
fn a_cyclic_chain_is_bounded() {
    let mut pe = Pe::new();
    // The info's chained RUNTIME_FUNCTION names the info itself.
    let own_rva = pe.xdata_next;
    let info = unwind_info(
        1,
        UNW_FLAG_CHAININFO,
        0,
        (0, 0),
        &[code(0, UWOP_ALLOC_SMALL, 0)],
        &rf(TEXT + 0x500, TEXT + 0x540, own_rva),
    );
    assert_eq!(pe.function(TEXT + 0x500, TEXT + 0x540, &info), own_rva);
    let mut mem = pe.finish();
    mem.write_u64(STACK + 0x3000, 0);
    let stack = Unwinder::new().unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0x510), STACK + 0x3000),
        &limits(),
    );
    match stack.stop {
        StopReason::UnwindData(e) => {
            assert_eq!(
                e.kind,
                ErrorKind::ChainTooDeep {
                    limit: hangscope_unwind::MAX_CHAIN_DEPTH
                }
            );
            assert_eq!(e.at.map(|l| l.module), Some("synth.sys".to_string()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_indirect_runtime_function_is_followed() {
    let mut pe = Pe::new();
    let info = pe.xdata(&unwind_info(
        1,
        0,
        4,
        (0, 0),
        &[code(4, UWOP_ALLOC_SMALL, 0)],
        &[],
    ));
    let target = pe.xdata(&rf(TEXT + 0x600, TEXT + 0x640, info));
    pe.pdata.push((
        TEXT + 0x600,
        TEXT + 0x640,
        target | RUNTIME_FUNCTION_INDIRECT,
    ));
    let mut mem = pe.finish();
    let rsp0 = STACK + 0x3000;
    mem.write_u64(rsp0 + 8, va(TEXT + 0x800));
    mem.write_u64(rsp0 + 16, 0);
    let stack = Unwinder::new().unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0x620), rsp0),
        &limits(),
    );
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    assert_eq!(stack.frames[1].rsp, VirtAddr(rsp0 + 16));
}

/// push rbp; sub rsp, 0x10008 (32-bit ALLOC_LARGE); sub rsp, 0x100 (16-bit);
/// lea rbp, [rsp + 0x20] (frame register, offset 2); saves relative to the
/// frame base; then a body that moved RSP (alloca).
fn frame_register_image() -> (SparseMemory, u64) {
    let mut pe = Pe::new();
    let codes = [
        code(30, UWOP_SAVE_XMM128_FAR, 7),
        0x40,
        0,
        code(25, UWOP_SAVE_XMM128, 6),
        3,
        code(20, UWOP_SAVE_NONVOL_FAR, Reg::R12 as u8),
        0x18,
        0,
        code(16, UWOP_SAVE_NONVOL, Reg::Rbx as u8),
        2,
        code(12, UWOP_SET_FPREG, 0),
        code(8, UWOP_ALLOC_LARGE, 0),
        0x100 / 8,
        code(5, UWOP_ALLOC_LARGE, 1),
        0x0008,
        0x0001,
        code(1, UWOP_PUSH_NONVOL, Reg::Rbp as u8),
    ];
    pe.function(
        TEXT + 0x700,
        TEXT + 0x780,
        &unwind_info(
            1,
            UNW_FLAG_EHANDLER,
            32,
            (Reg::Rbp as u8, 2),
            &codes,
            &0x1234u32.to_le_bytes(),
        ),
    );
    let mut mem = pe.finish();
    let frame_base = STACK + 0x1_0000;
    mem.write_u64(frame_base + 0x10, 0xb0b0_b0b0);
    mem.write_u64(frame_base + 0x18, 0x1212_1212);
    let saved_rbp = frame_base + 0x100 + 0x10008;
    mem.write_u64(saved_rbp, 0xbbbb_0000);
    mem.write_u64(saved_rbp + 8, va(TEXT + 0x800));
    mem.write_u64(saved_rbp + 16, 0);
    (mem, frame_base)
}

#[test]
fn frame_register_save_nonvol_and_both_alloc_large_forms() {
    let (mem, frame_base) = frame_register_image();
    let ctx = Context::new(va(TEXT + 0x740), frame_base - 0x40)
        .with(Reg::Rbp, frame_base + 0x20)
        .with(Reg::Rbx, 1)
        .with(Reg::R12, 2);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(
        stack.stop,
        StopReason::ZeroReturnAddress,
        "{:?}",
        stack.frames
    );
    let caller = &stack.frames[1];
    let saved_rbp = frame_base + 0x100 + 0x10008;
    assert_eq!(caller.rsp, VirtAddr(saved_rbp + 16));
    assert_eq!(caller.context.get(Reg::Rbp), Some(0xbbbb_0000));
    assert_eq!(caller.context.get(Reg::Rbx), Some(0xb0b0_b0b0));
    assert_eq!(caller.context.get(Reg::R12), Some(0x1212_1212));
}

#[test]
fn inside_the_prolog_only_the_done_codes_are_undone() {
    let (mem, frame_base) = frame_register_image();
    // RIP at prolog offset 8: push rbp and both allocations done, frame
    // register not set yet (RBP still the caller's), no saves yet.
    let ctx = Context::new(va(TEXT + 0x708), frame_base)
        .with(Reg::Rbp, 0xbbbb_0000)
        .with(Reg::Rbx, 1);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    let caller = &stack.frames[1];
    assert_eq!(caller.context.get(Reg::Rbx), Some(1), "save not done yet");
    assert_eq!(caller.context.get(Reg::Rbp), Some(0xbbbb_0000));
    // At offset 6: only the push and the 32-bit allocation are done.
    let ctx = Context::new(va(TEXT + 0x706), frame_base + 0x100).with(Reg::Rbp, 0xbbbb_0000);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    // At offset 0: nothing done, the return address is at [rsp].
    let saved_rbp = frame_base + 0x100 + 0x10008;
    let ctx = Context::new(va(TEXT + 0x700), saved_rbp + 8);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(stack.frames[1].rsp, VirtAddr(saved_rbp + 16));
}

#[test]
fn a_frame_register_missing_from_the_context_is_reported() {
    let (mem, frame_base) = frame_register_image();
    let ctx = Context::new(va(TEXT + 0x740), frame_base - 0x40);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    match stack.stop {
        StopReason::UnwindData(e) => {
            assert_eq!(
                e.kind,
                ErrorKind::UnknownRegister {
                    register: Reg::Rbp as u8
                }
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn version_2_epilog_codes_are_skipped_and_epilogs_emulated() {
    let mut pe = Pe::new();
    // Prolog: push rbx (1); sub rsp, 0x28 (5). Epilog at the end:
    // add rsp, 0x28; pop rbx; ret (6 bytes).
    let codes = [
        code(6, UWOP_EPILOG, 1),
        code(0, UWOP_EPILOG, 0),
        code(5, UWOP_ALLOC_SMALL, 4),
        code(1, UWOP_PUSH_NONVOL, Reg::Rbx as u8),
    ];
    pe.function(
        TEXT + 0x900,
        TEXT + 0x940,
        &unwind_info(2, 0, 5, (0, 0), &codes, &[]),
    );
    pe.code(TEXT + 0x93a, &[0x48, 0x83, 0xc4, 0x28, 0x5b, 0xc3]);
    let mut mem = pe.finish();
    let rsp_body = STACK + 0x5000;
    mem.write_u64(rsp_body + 0x28, 0xb0b0);
    mem.write_u64(rsp_body + 0x30, va(TEXT + 0x800));
    mem.write_u64(rsp_body + 0x38, 0);
    let check = |rip: u32, rsp: u64, kind: FrameKind| {
        let ctx = Context::new(va(rip), rsp).with(Reg::Rbx, 0x77);
        let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
        assert_eq!(stack.stop, StopReason::ZeroReturnAddress, "rip {rip:#x}");
        assert_eq!(stack.frames[0].kind, kind, "rip {rip:#x}");
        assert_eq!(stack.frames[1].rsp, VirtAddr(rsp_body + 0x38));
        stack.frames[1].context.get(Reg::Rbx)
    };
    assert_eq!(
        check(TEXT + 0x920, rsp_body, FrameKind::Normal),
        Some(0xb0b0)
    );
    assert_eq!(
        check(TEXT + 0x93a, rsp_body, FrameKind::Epilog),
        Some(0xb0b0)
    );
    assert_eq!(
        check(TEXT + 0x93e, rsp_body + 0x28, FrameKind::Epilog),
        Some(0xb0b0)
    );
    // After `pop rbx` RBX already holds the caller's value.
    assert_eq!(
        check(TEXT + 0x93f, rsp_body + 0x30, FrameKind::Epilog),
        Some(0x77)
    );
}

#[test]
fn a_jmp_inside_the_function_is_not_an_epilog_but_a_tail_call_is() {
    let mut pe = Pe::new();
    let codes = [code(4, UWOP_ALLOC_SMALL, 4)];
    pe.function(
        TEXT + 0xa00,
        TEXT + 0xa40,
        &unwind_info(1, 0, 4, (0, 0), &codes, &[]),
    );
    // add rsp, 0x28; jmp rel8 back into the function (not an epilog).
    pe.code(TEXT + 0xa20, &[0x48, 0x83, 0xc4, 0x28, 0xeb, 0xe0]);
    // add rsp, 0x28; jmp rel32 to another function (tail call).
    pe.code(
        TEXT + 0xa30,
        &[0x48, 0x83, 0xc4, 0x28, 0xe9, 0x00, 0x01, 0x00, 0x00],
    );
    let mut mem = pe.finish();
    let rsp = STACK + 0x6000;
    mem.write_u64(rsp + 0x28, va(TEXT + 0x800));
    mem.write_u64(rsp + 0x30, 0);
    let kind_at = |rip| {
        let stack = Unwinder::new().unwind(&mem, &modules(), Context::new(va(rip), rsp), &limits());
        assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
        stack.frames[0].kind
    };
    assert_eq!(kind_at(TEXT + 0xa20), FrameKind::Normal);
    assert_eq!(kind_at(TEXT + 0xa30), FrameKind::Epilog);
}

fn alloc8() -> Vec<u8> {
    unwind_info(1, 0, 4, (0, 0), &[code(4, UWOP_ALLOC_SMALL, 0)], &[])
}

#[test]
fn unsorted_pdata_is_sorted_and_reported() {
    let mut pe = Pe::new();
    pe.function(TEXT + 0xc00, TEXT + 0xc40, &alloc8());
    pe.function(TEXT + 0xb00, TEXT + 0xb40, &alloc8());
    let mut mem = pe.finish();
    mem.write_u64(STACK + 0x7008, va(TEXT + 0x800));
    mem.write_u64(STACK + 0x7010, 0);
    let mut u = Unwinder::new();
    let image = u.image(&mem, &modules().modules()[0]).unwrap();
    assert!(image.pdata.unsorted);
    assert_eq!(image.pdata.kept, 2);
    let stack = u.unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0xb10), STACK + 0x7000),
        &limits(),
    );
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    assert_eq!(stack.frames[0].kind, FrameKind::Normal);
}

#[test]
fn overlapping_pdata_entries_are_refused() {
    let mut pe = Pe::new();
    pe.function(TEXT + 0xb00, TEXT + 0xb40, &alloc8());
    pe.function(TEXT + 0xb20, TEXT + 0xb60, &alloc8());
    let mem = pe.finish();
    let stack = Unwinder::new().unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0xb30), STACK + 0x7000),
        &limits(),
    );
    match stack.stop {
        StopReason::UnwindData(e) => {
            assert!(matches!(e.kind, ErrorKind::PdataOverlap { .. }), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn out_of_image_pdata_entries_are_dropped() {
    let mut pe = Pe::new();
    let info = pe.xdata(&alloc8());
    pe.pdata.push((TEXT + 0xb00, 0x9_0000, info)); // end beyond the image
    pe.pdata.push((TEXT + 0xc00, TEXT + 0xc40, 0x7777_0000)); // info beyond
    pe.pdata.push((TEXT + 0xd40, TEXT + 0xd00, info)); // empty
    let mut mem = pe.finish();
    let mut u = Unwinder::new();
    let image = u.image(&mem, &modules().modules()[0]).unwrap();
    assert_eq!(image.pdata.invalid, 3);
    assert_eq!(image.pdata.kept, 0);
    // So the function is taken for a leaf.
    mem.write_u64(STACK + 0x7000, va(TEXT + 0x800));
    mem.write_u64(STACK + 0x7008, 0);
    let stack = u.unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0xb10), STACK + 0x7000),
        &limits(),
    );
    assert_eq!(stack.frames[0].kind, FrameKind::LeafNoUnwindInfo);
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
}

#[test]
fn an_exception_directory_outside_the_image_is_an_error() {
    let pe = Pe::new();
    let mut mem = pe.finish();
    let dir = 0x98 + 112 + 3 * 8;
    mem.write_u32(BASE + dir, 0x4ff0);
    mem.write_u32(BASE + dir + 4, 0x100);
    let stack = Unwinder::new().unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0x10), STACK + 0x7000),
        &limits(),
    );
    match stack.stop {
        StopReason::UnwindData(e) => assert_eq!(
            e.kind,
            ErrorKind::ExceptionDirectoryOutOfImage {
                rva: 0x4ff0,
                size: 0x100
            }
        ),
        other => panic!("{other:?}"),
    }
}

fn stop_for_info(info: Vec<u8>) -> StopReason {
    let mut pe = Pe::new();
    pe.function(TEXT + 0xe00, TEXT + 0xe40, &info);
    let mut mem = pe.finish();
    mem.write_u64(STACK + 0x7000, 0);
    Unwinder::new()
        .unwind(
            &mem,
            &modules(),
            Context::new(va(TEXT + 0xe10), STACK + 0x7000),
            &limits(),
        )
        .stop
}

fn kind_of(stop: StopReason) -> ErrorKind {
    match stop {
        StopReason::UnwindData(e) => e.kind,
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupt_unwind_info_is_reported() {
    assert!(matches!(
        kind_of(stop_for_info(unwind_info(3, 0, 0, (0, 0), &[], &[]))),
        ErrorKind::UnsupportedUnwindVersion { version: 3, .. }
    ));
    // ALLOC_LARGE (32-bit form) needs 3 slots but only 1 is declared.
    assert!(matches!(
        kind_of(stop_for_info(unwind_info(
            1,
            0,
            4,
            (0, 0),
            &[code(4, UWOP_ALLOC_LARGE, 1)],
            &[]
        ))),
        ErrorKind::BadUnwindCode {
            op: UWOP_ALLOC_LARGE,
            ..
        }
    ));
    // Opcode 6 is not defined in version 1.
    assert!(matches!(
        kind_of(stop_for_info(unwind_info(
            1,
            0,
            4,
            (0, 0),
            &[code(4, 6, 0)],
            &[]
        ))),
        ErrorKind::BadUnwindCode { op: 6, .. }
    ));
    // RSP pushed or saved as a nonvolatile register.
    assert!(matches!(
        kind_of(stop_for_info(unwind_info(
            1,
            0,
            4,
            (0, 0),
            &[code(1, UWOP_PUSH_NONVOL, 4)],
            &[]
        ))),
        ErrorKind::BadUnwindCode {
            op: UWOP_PUSH_NONVOL,
            ..
        }
    ));
    assert!(matches!(
        kind_of(stop_for_info(unwind_info(
            1,
            0,
            4,
            (0, 0),
            &[code(1, UWOP_SAVE_NONVOL, 4), 1],
            &[]
        ))),
        ErrorKind::BadUnwindCode {
            op: UWOP_SAVE_NONVOL,
            ..
        }
    ));
    // SET_FPREG with no frame register; RSP as frame register.
    assert!(matches!(
        kind_of(stop_for_info(unwind_info(
            1,
            0,
            4,
            (0, 0),
            &[code(4, UWOP_SET_FPREG, 0)],
            &[]
        ))),
        ErrorKind::BadFrameRegister { register: 0, .. }
    ));
    assert!(matches!(
        kind_of(stop_for_info(unwind_info(1, 0, 4, (4, 0), &[], &[]))),
        ErrorKind::BadFrameRegister { register: 4, .. }
    ));
    // A chained entry outside the image.
    assert!(matches!(
        kind_of(stop_for_info(unwind_info(
            1,
            UNW_FLAG_CHAININFO,
            0,
            (0, 0),
            &[],
            &rf(0x10, 0x9_0000, 0x2000)
        ))),
        ErrorKind::BadRuntimeFunction { .. }
    ));
}

#[test]
fn rsp_that_does_not_increase_stops_the_walk() {
    // A frame-pointer function whose RBP points below RSP.
    let mut pe = Pe::new();
    pe.function(
        TEXT + 0xe00,
        TEXT + 0xe40,
        &unwind_info(
            1,
            0,
            4,
            (Reg::Rbp as u8, 0),
            &[code(4, UWOP_SET_FPREG, 0), code(1, UWOP_PUSH_NONVOL, 5)],
            &[],
        ),
    );
    let mut mem = pe.finish();
    let rsp = STACK + 0x7000;
    mem.write_u64(rsp - 0x100, 0x1);
    mem.write_u64(rsp - 0xf8, va(TEXT + 0x800));
    let ctx = Context::new(va(TEXT + 0xe20), rsp).with(Reg::Rbp, rsp - 0x100);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(
        stack.stop,
        StopReason::RspNotIncreasing {
            previous: VirtAddr(rsp),
            rsp: VirtAddr(rsp - 0xf0)
        }
    );
}

#[test]
fn return_addresses_outside_modules_or_code_stop_the_walk() {
    let mem = {
        let mut m = Pe::new().finish();
        m.write_u64(STACK + 0x7000, 0x4141_4141_4141_4141);
        m.write_u64(STACK + 0x7100, va(PDATA + 0x10));
        m.write_u64(STACK + 0x7108, 0);
        m
    };
    let stack = Unwinder::new().unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0x800), STACK + 0x7000),
        &limits(),
    );
    assert_eq!(
        stack.stop,
        StopReason::OutsideModules {
            rip: VirtAddr(0x4141_4141_4141_4141)
        }
    );
    assert_eq!(stack.frames.len(), 2);
    assert_eq!(stack.frames[1].module, None);
    let stack = Unwinder::new().unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0x800), STACK + 0x7100),
        &limits(),
    );
    assert_eq!(
        stack.stop,
        StopReason::NotCode {
            rip: VirtAddr(va(PDATA + 0x10))
        }
    );
}

#[test]
fn unreadable_or_foreign_headers_are_reported_once() {
    let mut mem = Pe::new().finish();
    mem.write_u64(STACK + 0x7000, 0);
    let mut bad = mem.clone();
    bad.write(BASE, b"ZM");
    let stack = Unwinder::new().unwind(
        &bad,
        &modules(),
        Context::new(va(TEXT + 0x800), STACK + 0x7000),
        &limits(),
    );
    assert!(matches!(
        kind_of(stack.stop),
        ErrorKind::Image(PeErrorKind::BadDosSignature { found: 0x4d5a })
    ));
    let mut gone = mem.clone();
    gone.unmap_page(BASE);
    let mut u = Unwinder::new();
    let stack = u.unwind(
        &gone,
        &modules(),
        Context::new(va(TEXT + 0x800), STACK + 0x7000),
        &limits(),
    );
    let e = match stack.stop {
        StopReason::UnwindData(e) => e,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        e.kind,
        ErrorKind::Image(PeErrorKind::Unreadable(_))
    ));
    assert_eq!(e.name(), "header_unreadable");
    assert!(e.to_string().contains("synth.sys"), "{e}");
    // Cached: the same error even once the page is back.
    let stack = u.unwind(
        &mem,
        &modules(),
        Context::new(va(TEXT + 0x800), STACK + 0x7000),
        &limits(),
    );
    assert!(matches!(
        kind_of(stack.stop),
        ErrorKind::Image(PeErrorKind::Unreadable(_))
    ));
}

/// A small deterministic generator (no dependency needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

#[test]
fn random_unwind_data_and_stacks_never_panic_and_stay_bounded() {
    let mut r = Lcg(0x5eed);
    for round in 0..400 {
        let mut pe = Pe::new();
        let n = 1 + r.next() % 6;
        for _ in 0..n {
            let len = (r.next() % 40) as usize;
            let mut info: Vec<u8> = (0..len).map(|_| r.byte()).collect();
            if !info.is_empty() && r.next() % 2 == 0 {
                info[0] = (info[0] & !7) | (1 + (r.byte() & 1));
            }
            let begin = TEXT + (r.next() % 0x1000) as u32;
            let end = begin + (r.next() % 0x200) as u32;
            let unwind = if r.next() % 4 == 0 {
                (r.next() % 0x6000) as u32
            } else {
                pe.xdata(&info)
            };
            pe.pdata.push((begin, end, unwind));
        }
        let mut mem = pe.finish();
        // Random code bytes in part of .text.
        let code: Vec<u8> = (0..256).map(|_| r.byte()).collect();
        mem.write(va(TEXT + (r.next() % 0xf00) as u32), &code);
        // A stack of random words, half of them pointing into the module.
        let rsp = STACK + 0x8000;
        for i in 0..512u64 {
            let w = match r.next() % 3 {
                0 => va(TEXT + (r.next() % 0x1000) as u32),
                1 => STACK + r.next() % 0x4_0000,
                _ => r.next(),
            };
            mem.write_u64(rsp + i * 8, w);
        }
        let ctx = Context::new(va(TEXT + (r.next() % 0x1000) as u32), rsp)
            .with(Reg::Rbp, STACK + r.next() % 0x4_0000);
        let opts = UnwindOptions {
            max_frames: 64,
            stack_limits: if round % 2 == 0 {
                Some(StackRange::new(STACK, STACK_TOP))
            } else {
                None
            },
            ..UnwindOptions::default()
        };
        let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &opts);
        assert!(stack.frames.len() <= 64);
        assert!(!stack.frames.is_empty());
    }
}

#[test]
fn a_chained_fragment_saves_relative_to_the_parents_frame_register() {
    let mut pe = Pe::new();
    // Parent: push rbp; mov rbp, rsp (SET_FPREG, offset 0).
    let parent = unwind_info(
        1,
        0,
        4,
        (Reg::Rbp as u8, 0),
        &[
            code(4, UWOP_SET_FPREG, 0),
            code(1, UWOP_PUSH_NONVOL, Reg::Rbp as u8),
        ],
        &[],
    );
    let parent_rva = pe.function(TEXT + 0x400, TEXT + 0x440, &parent);
    // Fragment: mov [frame base + 0x10], rbx, after an alloca moved RSP.
    pe.function(
        TEXT + 0x440,
        TEXT + 0x480,
        &unwind_info(
            1,
            UNW_FLAG_CHAININFO,
            5,
            (Reg::Rbp as u8, 0),
            &[code(5, UWOP_SAVE_NONVOL, Reg::Rbx as u8), 2],
            &rf(TEXT + 0x400, TEXT + 0x440, parent_rva),
        ),
    );
    let mut mem = pe.finish();
    let fb = STACK + 0x2000; // RBP = frame base
    mem.write_u64(fb, 0xbbbb); // saved rbp
    mem.write_u64(fb + 8, va(TEXT + 0x800)); // return address
    mem.write_u64(fb + 0x10, 0xb0b0); // saved rbx (in the caller's home area)
    mem.write_u64(fb + 0x18, 0);
    let ctx = Context::new(va(TEXT + 0x460), fb - 0x100).with(Reg::Rbp, fb);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    let caller = &stack.frames[1];
    assert_eq!(caller.rsp, VirtAddr(fb + 0x10));
    assert_eq!(caller.context.get(Reg::Rbx), Some(0xb0b0));
    assert_eq!(caller.context.get(Reg::Rbp), Some(0xbbbb));
}

#[test]
fn msvc_style_saves_into_the_home_area_before_the_allocation() {
    // mov [rsp+8], rbx (ends at 5); push rdi (6); sub rsp, 0x20 (10).
    // The SAVE offset 0x30 is relative to RSP after the allocation.
    let mut pe = Pe::new();
    let codes = [
        code(10, UWOP_ALLOC_SMALL, 3),
        code(6, UWOP_PUSH_NONVOL, Reg::Rdi as u8),
        code(5, UWOP_SAVE_NONVOL, Reg::Rbx as u8),
        0x30 / 8,
    ];
    pe.function(
        TEXT + 0x100,
        TEXT + 0x140,
        &unwind_info(1, 0, 10, (0, 0), &codes, &[]),
    );
    let mut mem = pe.finish();
    let entry = STACK + 0x3000; // RSP at function entry: the return address
    mem.write_u64(entry, va(TEXT + 0x800));
    mem.write_u64(entry + 8, 0xb0b0); // home slot of rbx
    mem.write_u64(entry + 0x10, 0);
    mem.write_u64(entry - 8, 0xd1d1); // pushed rdi
    for (offset, rsp) in [
        (5u32, entry),
        (6, entry - 8),
        (10, entry - 0x28),
        (0x20, entry - 0x28),
    ] {
        let ctx = Context::new(va(TEXT + 0x100 + offset), rsp)
            .with(Reg::Rbx, 0x77)
            .with(Reg::Rdi, 0x88);
        let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
        let caller = &stack.frames[1];
        assert_eq!(caller.rsp, VirtAddr(entry + 8), "offset {offset}");
        assert_eq!(
            caller.context.get(Reg::Rbx),
            Some(0xb0b0),
            "offset {offset}"
        );
        let rdi = if offset >= 6 { 0xd1d1 } else { 0x88 };
        assert_eq!(caller.context.get(Reg::Rdi), Some(rdi), "offset {offset}");
    }
}

/// `_KTRAP_FRAME` field offsets from a real symbol table (Windows 7 SP1
/// x64, under `$HANGSCOPE_SYMBOLS`, else `../shared/symbols` beside the
/// workspace), read with python3 (the ISF is xz-compressed JSON).
fn ktrap_frame_offsets() -> std::collections::HashMap<String, u64> {
    let symbols = std::env::var_os("HANGSCOPE_SYMBOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/symbols")
        });
    let isf = symbols
        .join("windows/ntkrnlmp.pdb/339E74133576439CBCDF7E0229DA3773-1.json.xz")
        .display()
        .to_string();
    let script = format!(
        "import lzma,json\nt=json.load(lzma.open('{isf}'))['user_types']['_KTRAP_FRAME']\n\
         print('size', t['size'])\n\
         [print(k, v['offset']) for k, v in t['fields'].items()]"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A page-fault-like handler: the CPU pushes the machine frame and an error
/// code (the end of a KTRAP_FRAME), the handler pushes RBP into
/// `KTRAP_FRAME.Rbp`, allocates the rest of the trap frame and points RBP
/// at trap frame + 0x80 (frame register, offset 8), as Windows' trap
/// handlers do.
fn trap_handler_image(o: &std::collections::HashMap<String, u64>) -> Pe {
    let mut pe = Pe::new();
    let alloc = o["Rbp"] as u16; // push rbp lands on KTRAP_FRAME.Rbp
    let codes = [
        code(16, UWOP_SET_FPREG, 0),
        code(8, UWOP_ALLOC_LARGE, 0),
        alloc / 8,
        code(1, UWOP_PUSH_NONVOL, Reg::Rbp as u8),
        code(0, UWOP_PUSH_MACHFRAME, 1),
    ];
    pe.function(
        TEXT + 0xf00,
        TEXT + 0xf80,
        &unwind_info(1, 0, 16, (Reg::Rbp as u8, 8), &codes, &[]),
    );
    pe.function(
        TEXT + 0x300,
        TEXT + 0x380,
        &unwind_info(1, 0, 4, (0, 0), &[code(4, UWOP_ALLOC_SMALL, 4)], &[]),
    );
    pe
}

#[test]
fn a_real_ktrap_frame_layout_unwinds_to_the_interrupted_context() {
    let o = ktrap_frame_offsets();
    assert_eq!(
        o["Rsp"],
        o["Rip"] + 24,
        "machine frame order in KTRAP_FRAME"
    );
    let mut mem = trap_handler_image(&o).finish();
    let trap = STACK + 0x4000;
    let interrupted_rsp = STACK + 0x9000;
    mem.write(trap, &vec![0u8; o["size"] as usize]);
    mem.write_u64(trap + o["Rbp"], 0xbbbb_0000_0000_0001);
    mem.write_u64(trap + o["ErrorCode"], 2);
    mem.write_u64(trap + o["Rip"], va(TEXT + 0x340));
    mem.write_u64(trap + o["SegCs"], 0x10);
    mem.write_u64(trap + o["EFlags"], 0x10246);
    mem.write_u64(trap + o["Rsp"], interrupted_rsp);
    mem.write_u64(trap + o["SegSs"], 0x18);
    mem.write_u64(interrupted_rsp + 0x28, 0); // victim's return address
    let ctx = Context::new(va(TEXT + 0xf40), trap).with(Reg::Rbp, trap + 0x80);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    assert_eq!(
        stack.frames[0].kind,
        FrameKind::MachineFrame { error_code: true }
    );
    let victim = &stack.frames[1];
    assert_eq!(victim.rip, VirtAddr(va(TEXT + 0x340)));
    assert_eq!(victim.rsp, VirtAddr(interrupted_rsp));
    assert_eq!(victim.origin, RipOrigin::Interrupted);
    assert_eq!(victim.context.get(Reg::Rbp), Some(0xbbbb_0000_0000_0001));

    // The same trap frame taken from user mode ends the kernel stack.
    mem.write_u64(trap + o["Rip"], 0x7ff7_0000_1234);
    mem.write_u64(trap + o["SegCs"], 0x33);
    mem.write_u64(trap + o["Rsp"], 0x2f_ffff_f000);
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &limits());
    assert_eq!(
        stack.stop,
        StopReason::ReachedUserMode {
            rip: VirtAddr(0x7ff7_0000_1234),
            rsp: VirtAddr(0x2f_ffff_f000)
        }
    );
}

#[test]
fn a_frame_register_may_carry_the_walk_from_a_dpc_stack_to_the_thread_stack() {
    // A callout on the DPC stack: push rbp; mov rbp, rsp (thread stack);
    // mov rsp, dpc_stack; ... Its unwind codes take RSP back through RBP.
    let mut pe = Pe::new();
    pe.function(
        TEXT + 0x200,
        TEXT + 0x240,
        &unwind_info(
            1,
            0,
            4,
            (Reg::Rbp as u8, 0),
            &[
                code(4, UWOP_SET_FPREG, 0),
                code(1, UWOP_PUSH_NONVOL, Reg::Rbp as u8),
            ],
            &[],
        ),
    );
    let mut mem = pe.finish();
    let thread = StackRange::new(STACK + 0x1_0000, STACK_TOP);
    let dpc = StackRange::new(STACK, STACK + 0x8000);
    let t = STACK + 0x2_0000; // RBP: on the thread stack
    mem.write_u64(t, 0xbbbb);
    mem.write_u64(t + 8, 0);
    let rsp = STACK + 0x4000; // on the DPC stack
    mem.write_u64(rsp, 0x1111);
    let ctx = Context::new(va(TEXT + 0x220), rsp).with(Reg::Rbp, t);
    let with = UnwindOptions {
        stack_limits: Some(thread),
        other_stacks: vec![dpc],
        ..UnwindOptions::default()
    };
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &with);
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    // Only the thread stack allowed: the start is already outside it.
    let only_thread = UnwindOptions {
        stack_limits: Some(thread),
        ..UnwindOptions::default()
    };
    let stack = Unwinder::new().unwind(&mem, &modules(), ctx, &only_thread);
    assert_eq!(stack.stop, StopReason::LeftStack { rsp: VirtAddr(rsp) });
    // Within one stack a frame register pointing below RSP is still refused
    // (see rsp_that_does_not_increase_stops_the_walk).
}
