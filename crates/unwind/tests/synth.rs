//! `hangscope_unwind::synth`: what it writes, the unwinder reads back.

use hangscope_unwind::synth::{FrameAt, FrameSpec, StackLayout, UnwindTableBuilder};
use hangscope_unwind::{
    Context, FrameKind, Module, ModuleList, Reg, RipOrigin, StackRange, StopReason, UnwindOptions,
    Unwinder,
};
use hangscope_x64::SparseMemory;

const BASE: u64 = 0xffff_f800_3000_0000;
const SIZE: u32 = 0x8000;
const XDATA: u32 = 0x5000;
const PDATA: u32 = 0x6000;
const TOP: u64 = 0xffff_d000_4000_6000;
const LIMIT: u64 = TOP - 0x2_0000;

/// A minimal image: headers with the exception directory, code filled with
/// int3 except each function's real prolog and epilog, and the table.
fn image(functions: &[(u32, u32, FrameSpec)]) -> SparseMemory {
    let mut mem = SparseMemory::new();
    mem.write(BASE, &[0; 0x1000]);
    mem.write(BASE, b"MZ");
    mem.write_u32(BASE + 0x3c, 0x80);
    mem.write(BASE + 0x80, b"PE\0\0");
    mem.write(BASE + 0x84, &0x8664u16.to_le_bytes());
    mem.write(BASE + 0x94, &0xf0u16.to_le_bytes());
    mem.write(BASE + 0x98, &0x20bu16.to_le_bytes());
    mem.write_u32(BASE + 0x98 + 56, SIZE);
    mem.write_u32(BASE + 0x98 + 108, 16);
    mem.write(BASE + 0x1000, &[0xcc; 0x4000]);
    let mut b = UnwindTableBuilder::new(XDATA);
    for (begin, end, spec) in functions {
        b.function(*begin, *end, spec.clone());
        let prolog: Vec<u8> = spec.prolog().into_iter().flat_map(|(c, _)| c).collect();
        mem.write(BASE + u64::from(*begin), &prolog);
        let epilog = spec.epilog();
        mem.write(BASE + u64::from(*end) - epilog.len() as u64, &epilog);
    }
    let t = b.build().expect("table");
    mem.write(BASE + u64::from(XDATA), &t.xdata);
    mem.write(BASE + u64::from(PDATA), &t.pdata);
    mem.write_u32(BASE + 0x98 + 112 + 24, PDATA);
    mem.write_u32(BASE + 0x98 + 112 + 28, t.pdata.len() as u32);
    mem
}

fn run(
    functions: &[(u32, u32, FrameSpec)],
    frames: &[FrameAt],
) -> (StackLayout, hangscope_unwind::Stack) {
    let mut mem = image(functions);
    let layout = StackLayout::build(frames, TOP).expect("layout");
    for &(a, v) in &layout.words {
        mem.write_u64(a, v);
    }
    let modules = ModuleList::new(vec![Module::new(BASE, u64::from(SIZE), "synth.sys")]);
    let opts = UnwindOptions {
        stack_limits: Some(StackRange::new(LIMIT, TOP)),
        ..UnwindOptions::default()
    };
    let stack = Unwinder::new().unwind(&mem, &modules, layout.start, &opts);
    (layout, stack)
}

fn spec(pushes: &[Reg], alloc: u32, fp: Option<u8>) -> FrameSpec {
    FrameSpec {
        pushes: pushes.to_vec(),
        alloc,
        frame_pointer: fp,
        machine_frame: None,
    }
}

#[test]
fn written_stacks_unwind_back_exactly() {
    let f = [
        (0x1000, 0x1100, spec(&[Reg::Rbx, Reg::Rsi], 0x28, None)),
        (
            0x1100,
            0x1200,
            spec(&[Reg::Rbp, Reg::R12, Reg::R15], 0x150, Some(2)),
        ),
        (0x1200, 0x1300, FrameSpec::alloc(0x1_2340)),
        (0x1300, 0x1400, spec(&[Reg::Rdi], 0, None)),
    ];
    let frames = [
        FrameAt {
            rip: BASE + 0x1340,
            spec: f[3].2.clone(),
        },
        FrameAt {
            rip: BASE + 0x1280,
            spec: f[2].2.clone(),
        },
        FrameAt {
            rip: BASE + 0x1180,
            spec: f[1].2.clone(),
        },
        FrameAt {
            rip: BASE + 0x1080,
            spec: f[0].2.clone(),
        },
    ];
    let (layout, stack) = run(&f, &frames);
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    let got: Vec<(u64, u64)> = stack.frames.iter().map(|f| (f.rip.0, f.rsp.0)).collect();
    assert_eq!(got, layout.frames);
    assert!(stack.frames.iter().all(|f| f.kind == FrameKind::Normal));
}

#[test]
fn a_written_interrupt_handler_unwinds_into_the_interrupted_frame() {
    let handler = FrameSpec {
        machine_frame: Some(true),
        pushes: vec![Reg::Rbp, Reg::Rbx],
        alloc: 0x40,
        frame_pointer: None,
    };
    let f = [
        (0x1000, 0x1100, spec(&[Reg::Rbx], 0x20, None)),
        (0x2000, 0x2100, handler.clone()),
    ];
    let frames = [
        FrameAt {
            rip: BASE + 0x2050,
            spec: handler,
        },
        // Interrupted in its body.
        FrameAt {
            rip: BASE + 0x1033,
            spec: f[0].2.clone(),
        },
    ];
    let (layout, stack) = run(&f, &frames);
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    let got: Vec<(u64, u64)> = stack.frames.iter().map(|f| (f.rip.0, f.rsp.0)).collect();
    assert_eq!(got, layout.frames);
    assert_eq!(
        stack.frames[0].kind,
        FrameKind::MachineFrame { error_code: true }
    );
    assert_eq!(stack.frames[1].origin, RipOrigin::Interrupted);
}

#[test]
fn a_written_epilog_is_recognised() {
    let s = spec(&[Reg::Rbx, Reg::R13], 0x38, None);
    let f = [(0x1000, 0x1100, s.clone())];
    let epilog_at = BASE + 0x1100 - s.epilog().len() as u64;
    let (layout, stack) = run(
        &f,
        &[FrameAt {
            rip: epilog_at,
            spec: s,
        }],
    );
    assert_eq!(stack.frames[0].kind, FrameKind::Epilog);
    assert_eq!(stack.frames.len(), layout.frames.len());
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
}

#[test]
fn a_switch_frame_start_point_is_found_by_probing() {
    // As the lab would: KiSwapContext-like innermost frame, its return slot
    // at KernelStack + 0x38, junk below.
    let f = [
        (0x1000, 0x1100, spec(&[Reg::Rbx], 0x28, None)),
        (0x1100, 0x1200, FrameSpec::alloc(0x38)),
    ];
    let frames = [
        FrameAt {
            rip: BASE + 0x1150,
            spec: f[1].2.clone(),
        },
        FrameAt {
            rip: BASE + 0x1080,
            spec: f[0].2.clone(),
        },
    ];
    let mut mem = image(&f);
    let layout = StackLayout::build(&frames, TOP).unwrap();
    for &(a, v) in &layout.words {
        mem.write_u64(a, v);
    }
    let kernel_stack = layout.start.rsp() - 0x40;
    mem.write_u64(kernel_stack + 0x38, layout.start.rip);
    for i in 0..7 {
        mem.write_u64(kernel_stack + i * 8, 0x1234 + i);
    }
    let modules = ModuleList::new(vec![Module::new(BASE, u64::from(SIZE), "synth.sys")]);
    let (ctx, stack) = Unwinder::new()
        .probe_start(
            &mem,
            &modules,
            Context::new(0, 0),
            kernel_stack,
            0x80,
            &UnwindOptions::default(),
        )
        .expect("found");
    assert_eq!(ctx.rip, layout.start.rip);
    assert_eq!(ctx.rsp(), kernel_stack + 0x40);
    let got: Vec<(u64, u64)> = stack.frames.iter().map(|f| (f.rip.0, f.rsp.0)).collect();
    assert_eq!(got, layout.frames);
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
}

#[test]
fn bad_specs_are_refused() {
    assert!(FrameSpec::alloc(12).unwind_info().is_err());
    assert!(
        spec(&[Reg::Rbx], 0x20, Some(1)).unwind_info().is_err(),
        "RBP not pushed"
    );
    assert!(spec(&[Reg::Rsp], 0, None).unwind_info().is_err());
    let mut b = UnwindTableBuilder::new(XDATA);
    b.function(0x1000, 0x1100, FrameSpec::alloc(8));
    b.function(0x10f0, 0x1200, FrameSpec::alloc(8));
    assert!(b.build().is_err());
}

/// The lab's current thread stacks (return addresses at
/// `KernelStack + 0x38 + k * 0x40`) become walkable once every function on
/// them has a 0x38-byte frame in `.pdata`: no change to the stack layout.
#[test]
fn the_labs_stack_layout_walks_with_uniform_0x38_frames() {
    let funcs: Vec<(u32, u32, FrameSpec)> = (0..5u32)
        .map(|i| {
            (
                0x1000 + i * 0x200,
                0x1200 + i * 0x200,
                FrameSpec::alloc(0x38),
            )
        })
        .collect();
    let mut mem = image(&funcs);
    let ks = TOP - 0x1000;
    let rets: Vec<u64> = (0..5u64)
        .map(|i| BASE + 0x1000 + i * 0x200 + 0x40 + i)
        .collect();
    for (k, &ra) in rets.iter().enumerate() {
        mem.write_u64(ks + 0x38 + k as u64 * 0x40, ra);
    }
    mem.write_u64(ks + 0x38 + 5 * 0x40, 0);
    let modules = ModuleList::new(vec![Module::new(BASE, u64::from(SIZE), "synth.sys")]);
    let start = Context::new(rets[0], ks + 0x40);
    let stack = Unwinder::new().unwind(&mem, &modules, start, &UnwindOptions::default());
    assert_eq!(stack.stop, StopReason::ZeroReturnAddress);
    let got: Vec<u64> = stack.frames.iter().map(|f| f.rip.0).collect();
    assert_eq!(got, rets);
}
