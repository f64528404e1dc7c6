//! Unwinding real clang/lld-link code (tests/driver/hsdrv.c): stacks laid out
//! by emulating the driver's instructions, compared frame by frame.

use crate::support::{driver, ExpectedFrame, FrameBuilder, DRIVER_BASE, STACK_HIGH, STACK_LOW};
use hangscope_unwind::{
    ErrorKind, FrameKind, Reg, RipOrigin, Stack, StackRange, StopReason, UnwindOptions, Unwinder,
};

/// The call chain, outermost first. Each callee is called once by its caller.
const CHAIN: [&str; 7] = [
    "DriverEntry",
    "many_saves",
    "xmm_saves",
    "fp_frame",
    "huge_frame",
    "big_frame",
    "leaf",
];

fn opts() -> UnwindOptions {
    UnwindOptions {
        stack_limits: Some(StackRange::new(STACK_LOW, STACK_HIGH)),
        ..UnwindOptions::default()
    }
}

fn unwind_at(path: &[&str], stop: u64) -> (Stack, Vec<ExpectedFrame>) {
    let d = driver();
    let mut b = FrameBuilder::new(d);
    b.run(path, stop);
    let ctx = b.context(stop);
    let expected = b.expected(path[path.len() - 1], stop);
    let stack = Unwinder::new().unwind(&b.mem, &d.modules(), ctx, &opts());
    (stack, expected)
}

/// Compare every frame: RIP, RSP, origin, module/RVA and all nonvolatile
/// registers the caller had at the call.
fn assert_frames(stack: &Stack, expected: &[ExpectedFrame], what: &str) {
    let got: Vec<(u64, u64)> = stack.frames.iter().map(|f| (f.rip.0, f.rsp.0)).collect();
    let want: Vec<(u64, u64)> = expected.iter().map(|f| (f.rip, f.rsp)).collect();
    assert_eq!(
        got,
        want,
        "{what}: frames (rip, rsp) differ; stop = {:?}; expected functions {:?}",
        stack.stop,
        expected.iter().map(|e| &e.function).collect::<Vec<_>>()
    );
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress, "{what}");
    assert!(stack.stop.is_complete());
    for (i, (f, e)) in stack.frames.iter().zip(expected).enumerate() {
        assert_eq!(f.module, Some(0), "{what}: frame {i} module");
        assert_eq!(f.module_name.as_deref(), Some("hsdrv.sys"));
        assert_eq!(
            f.rva,
            Some((e.rip - DRIVER_BASE) as u32),
            "{what}: frame {i} rva"
        );
        let origin = if i == 0 {
            RipOrigin::Context
        } else {
            RipOrigin::ReturnAddress
        };
        assert_eq!(f.origin, origin, "{what}: frame {i} origin");
        for &(reg, v) in &e.nonvolatile {
            assert_eq!(
                f.context.get(reg),
                Some(v),
                "{what}: frame {i} ({}) register {reg:?}",
                e.function
            );
        }
        // Volatile registers are unknown after a call.
        if i > 0 {
            assert_eq!(f.context.get(Reg::Rax), None);
            assert_eq!(f.context.get(Reg::R11), None);
        }
    }
}

#[test]
fn full_chain_from_a_leaf_without_unwind_info() {
    let d = driver();
    let (stack, expected) = unwind_at(&CHAIN, d.sym("leaf"));
    assert_frames(&stack, &expected, "leaf");
    let kinds: Vec<FrameKind> = stack.frames.iter().map(|f| f.kind).collect();
    let mut want = vec![FrameKind::LeafNoUnwindInfo];
    want.extend([FrameKind::Normal; 6]);
    assert_eq!(kinds, want);
    // Symbolisation points inside the call instruction.
    let caller = &stack.frames[1];
    assert_eq!(
        caller.lookup_address().0,
        d.call_site("big_frame", "leaf") + 4
    );
}

#[test]
fn chkstk_called_from_inside_huge_frames_prolog() {
    // huge_frame: mov eax, 600040; call __chkstk; sub rsp, rax. The return
    // address is inside the prolog, before the allocation: the 32-bit
    // UWOP_ALLOC_LARGE must not be undone.
    let d = driver();
    let path = [
        "DriverEntry",
        "many_saves",
        "xmm_saves",
        "fp_frame",
        "huge_frame",
        "__chkstk",
    ];
    let (stack, expected) = unwind_at(&path, d.sym("__chkstk"));
    assert_frames(&stack, &expected, "__chkstk");
    assert_eq!(stack.frames[0].kind, FrameKind::LeafNoUnwindInfo);
}

#[test]
fn chkstk_called_from_fp_frames_body() {
    // fp_frame's alloca probe: RBP is the frame register by then.
    let d = driver();
    let path = [
        "DriverEntry",
        "many_saves",
        "xmm_saves",
        "fp_frame",
        "__chkstk",
    ];
    let (stack, expected) = unwind_at(&path, d.sym("__chkstk"));
    assert_frames(&stack, &expected, "__chkstk from fp_frame");
}

/// Every instruction of every function on the chain as the innermost
/// frame: prolog (partially run), body, epilog (partially run), ret.
#[test]
fn every_instruction_of_every_function() {
    let d = driver();
    let mut checked = 0;
    let mut epilogs = 0;
    for k in 0..CHAIN.len() {
        let path = &CHAIN[..=k];
        let name = CHAIN[k];
        let insns = d.function(d.sym(name));
        // The epilog: the ret, the pops before it, and one stack
        // deallocation (add/lea rsp) before those.
        let mut epilog_start = insns.len() - 1;
        while epilog_start > 0 && insns[epilog_start - 1].mnemonic == "popq" {
            epilog_start -= 1;
        }
        if epilog_start > 0 {
            let p = &insns[epilog_start - 1];
            if matches!(p.mnemonic.as_str(), "addq" | "leaq")
                && p.operands.last().map(String::as_str) == Some("%rsp")
            {
                epilog_start -= 1;
            }
        }
        for (n, insn) in insns.iter().enumerate() {
            let (stack, expected) = unwind_at(path, insn.addr);
            let what = format!(
                "{name}+{:#x}: {} {:?}",
                insn.addr - d.sym(name),
                insn.mnemonic,
                insn.operands
            );
            assert_frames(&stack, &expected, &what);
            let kind = stack.frames[0].kind;
            if name == "leaf" {
                assert_eq!(kind, FrameKind::LeafNoUnwindInfo, "{what}");
            } else if n >= epilog_start {
                assert_eq!(kind, FrameKind::Epilog, "{what}");
                epilogs += 1;
            } else {
                assert_eq!(kind, FrameKind::Normal, "{what}");
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} positions");
    assert!(epilogs >= 15, "only {epilogs} epilog positions");
}

#[test]
fn the_driver_uses_the_unwind_codes_the_tests_claim() {
    use hangscope_unwind::{Lookup, UnwindInfo, UnwindOp};
    let d = driver();
    let mut b = FrameBuilder::new(d);
    b.run(&["DriverEntry"], d.sym("DriverEntry"));
    let mut u = Unwinder::new();
    let image = u.image(&b.mem, &d.module()).expect("image");
    let info = |name: &str| {
        let rva = (d.sym(name) - DRIVER_BASE) as u32;
        let Lookup::Found(f) = image.lookup(rva).expect("lookup") else {
            panic!("{name} has no .pdata entry");
        };
        UnwindInfo::read(&b.mem, &image, f.unwind_data).expect("unwind info")
    };
    assert!(matches!(
        image.lookup((d.sym("leaf") - DRIVER_BASE) as u32),
        Ok(Lookup::Leaf)
    ));
    assert!(matches!(
        image.lookup((d.sym("__chkstk") - DRIVER_BASE) as u32),
        Ok(Lookup::Leaf)
    ));
    assert!(info("big_frame")
        .codes
        .iter()
        .any(|c| c.op == UnwindOp::Alloc { size: 2040 }));
    assert!(info("huge_frame")
        .codes
        .iter()
        .any(|c| c.op == UnwindOp::Alloc { size: 600040 }));
    let fp = info("fp_frame");
    assert_eq!(fp.frame_register, Reg::Rbp as u8);
    assert!(fp.codes.iter().any(|c| c.op == UnwindOp::SetFpreg));
    assert!(info("xmm_saves")
        .codes
        .iter()
        .any(|c| matches!(c.op, UnwindOp::SaveXmm128 { reg: 6, .. })));
    let pushes = info("many_saves")
        .codes
        .iter()
        .filter(|c| matches!(c.op, UnwindOp::PushNonvol { .. }))
        .count();
    assert_eq!(pushes, 8);
    assert!(!image.pdata.unsorted);
    assert_eq!(image.pdata.invalid, 0);
}

#[test]
fn stack_limits_stop_the_walk() {
    let d = driver();
    let mut b = FrameBuilder::new(d);
    b.run(&CHAIN, d.sym("leaf"));
    let expected = b.expected("leaf", d.sym("leaf"));
    // A limit just above fp_frame's frame: the frame of xmm_saves is outside.
    let high = expected[3].rsp + 8;
    let o = UnwindOptions {
        stack_limits: Some(StackRange::new(STACK_LOW, high)),
        ..UnwindOptions::default()
    };
    let stack = Unwinder::new().unwind(&b.mem, &d.modules(), b.context(d.sym("leaf")), &o);
    assert_eq!(stack.frames.len(), 4);
    assert_eq!(
        stack.stop,
        StopReason::LeftStack {
            rsp: hangscope_x64::VirtAddr(expected[4].rsp)
        }
    );
}

#[test]
fn max_frames_bounds_the_walk() {
    let d = driver();
    let mut b = FrameBuilder::new(d);
    b.run(&CHAIN, d.sym("leaf"));
    let o = UnwindOptions {
        max_frames: 3,
        ..opts()
    };
    let stack = Unwinder::new().unwind(&b.mem, &d.modules(), b.context(d.sym("leaf")), &o);
    assert_eq!(stack.frames.len(), 3);
    assert_eq!(stack.stop, StopReason::MaxFrames);
}

#[test]
fn an_unreadable_stack_page_stops_with_its_address() {
    let d = driver();
    let mut b = FrameBuilder::new(d);
    b.run(&CHAIN, d.sym("leaf"));
    let expected = b.expected("leaf", d.sym("leaf"));
    // huge_frame's return address lives 600 KB above big_frame's frame,
    // just below fp_frame's RSP at the call.
    let ra_slot = expected[3].rsp - 8;
    b.mem.unmap_page(ra_slot);
    let stack = Unwinder::new().unwind(&b.mem, &d.modules(), b.context(d.sym("leaf")), &opts());
    assert_eq!(stack.stop.name(), "stack_unreadable");
    assert!(
        stack.stop.to_string().contains("stack unreadable"),
        "{}",
        stack.stop
    );
    match &stack.stop {
        StopReason::StackUnreadable(e) => {
            assert_eq!(e.addr.0 & !0xfff, ra_slot & !0xfff);
        }
        other => panic!("unexpected stop {other:?}"),
    }
    assert_eq!(stack.frames.last().map(|f| f.rip.0), Some(expected[2].rip));
    assert_eq!(
        stack.frames.last().map(|f| f.kind),
        Some(FrameKind::NotUnwound)
    );
}

#[test]
fn a_missing_pdata_page_is_reported_not_taken_for_a_leaf() {
    let d = driver();
    let mut b = FrameBuilder::new(d);
    b.run(&CHAIN, d.sym("leaf"));
    let mut u = Unwinder::new();
    let image = u.image(&b.mem, &d.module()).expect("image");
    assert!(!image.functions().is_empty());
    // Find the .pdata page from the headers: the exception directory.
    let mut hdr = vec![0u8; 0x400];
    hangscope_x64::VirtualMemory::read(&b.mem, hangscope_x64::VirtAddr(DRIVER_BASE), &mut hdr)
        .unwrap();
    let nt = u32::from_le_bytes(hdr[0x3c..0x40].try_into().unwrap()) as usize;
    let dir = nt + 24 + 112 + 3 * 8;
    let rva = u32::from_le_bytes(hdr[dir..dir + 4].try_into().unwrap());
    b.mem.unmap_page(DRIVER_BASE + u64::from(rva));
    let stack = Unwinder::new().unwind(
        &b.mem,
        &d.modules(),
        b.context(d.sym("big_frame") + 7),
        &opts(),
    );
    match &stack.stop {
        StopReason::UnwindData(e) => {
            assert!(matches!(e.kind, ErrorKind::PdataIncomplete { .. }), "{e}")
        }
        other => panic!("unexpected stop {other:?}"),
    }
}

#[test]
fn the_image_cache_gives_the_same_stack_twice() {
    let d = driver();
    let mut b = FrameBuilder::new(d);
    b.run(&CHAIN, d.sym("leaf"));
    let mut u = Unwinder::new();
    let a = u.unwind(&b.mem, &d.modules(), b.context(d.sym("leaf")), &opts());
    let c = u.unwind(&b.mem, &d.modules(), b.context(d.sym("leaf")), &opts());
    assert_eq!(a, c);
    assert_eq!(a.frames.len(), 7);
}

#[test]
fn probing_a_saved_stack_pointer_finds_the_return_address() {
    // As for a waiting thread: a "switch frame" of 7 junk slots below the
    // return address into big_frame, the stack pointer at its bottom.
    let d = driver();
    let mut b = FrameBuilder::new(d);
    b.run(&CHAIN, d.sym("leaf"));
    let expected = b.expected("leaf", d.sym("leaf"));
    let ret_slot = expected[1].rsp - 8;
    let switch_frame = ret_slot - 0x38;
    for i in 0..7 {
        b.mem
            .write_u64(switch_frame + i * 8, 0x4141_4141_0000_0000 + i);
    }
    // Only RBP is known besides RIP/RSP (fp_frame's frame register).
    let start = b.context(d.sym("leaf"));
    let base = hangscope_unwind::Context::new(0, 0).with(Reg::Rbp, start.get(Reg::Rbp).unwrap());
    let (ctx, stack) = Unwinder::new()
        .probe_start(&b.mem, &d.modules(), base, switch_frame, 0x80, &opts())
        .expect("a start point");
    assert_eq!(ctx.rip, expected[1].rip);
    assert_eq!(ctx.rsp(), expected[1].rsp);
    assert_eq!(stack.frames.len(), 6);
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    // Nothing to find in junk.
    let none = Unwinder::new().probe_start(&b.mem, &d.modules(), base, switch_frame, 0x30, &opts());
    assert!(none.is_none());
}
