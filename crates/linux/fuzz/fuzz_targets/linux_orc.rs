//! The ORC unwinder (`hangscope_linux::stacks::Unwinder` over
//! `hangscope_linux::orc`) over damaged unwind tables and stacks: a small
//! synthetic kernel with a core ORC table, a module with its own table and
//! symbols, an IRQ stack and a task stack holding a chain of nine frames
//! (CALL frames by SP, SP_INDIRECT, DI and BP, a full `pt_regs`, a
//! frame-pointer fallback, a module frame, a partial `pt_regs`, and the
//! end of the stack), with the input's patches laid over its pages. The
//! walk must end: no panic, no hang, no unbounded allocation.
//!
//! Input: a header of 4 bytes, then patches.
//! - byte 0, bit 0: the `struct orc_entry` layout (0: 6.3+ with `signal`
//!   and a 3-bit `type`; 1: before 6.3, with the `end` bit); bit 1: no
//!   module; bit 2: the task stack only (no IRQ stack); bit 3: the stacks
//!   in the other order; bit 4: no start registers; bits 5-6: the
//!   stacks' ranges (as read: overlapping, or one covering both, or one
//!   at the top of the address space); bit 7: the module's size the whole
//!   address space.
//! - byte 1: the start state, low 3 bits: which frame of the chain (or an
//!   ip with UNDEFINED unwind information, or the end of the stack); bits
//!   3-4: what bytes 2-3 (an `i16`) are added to (none, ip, sp, bp); bit
//!   5: the start's `signal` flipped; bits 6-7: the ORC symbols as
//!   kallsyms has them (as built; `__stop_orc_unwind_ip` below the start;
//!   a table far larger than the memory; the entries on the ip table).
//! - then patches, each (page index: 1 byte, offset in the page: 2 bytes,
//!   length: 1 byte, then that many bytes), page indexes modulo the count
//!   of the kernel's pages (the core ORC ip table and entries, the module
//!   with its table and symbols, the IRQ stack, the task stack's two
//!   pages, which hold the `pt_regs`).
//!
//! The kernel is `hangscope_linux::synth_orc` (its types laid out
//! differently from any real kernel, so that a reader that hard-coded an
//! offset would fail); its unit tests check the undamaged walks.
#![no_main]

use hangscope_linux::model::FrameSource;
use hangscope_linux::stacks::Unwinder;
use hangscope_linux::synth_orc::{
    self, OrcForm, OrcKernel, OrcSymbols, StackRanges, Stacks, MODULE_SIZE, PROBES, START_VARIANTS,
};
use hangscope_linux::Kallsyms;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Base {
    /// By `orc_entry` form: 6.3+, then before.
    kernels: [OrcKernel; 2],
    /// By [`OrcSymbols::ALL`].
    kallsyms: [Kallsyms; 4],
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = Base {
            kernels: [OrcForm::Signal, OrcForm::End].map(OrcKernel::build),
            kallsyms: OrcSymbols::ALL.map(synth_orc::kallsyms),
        };
        // Every start goes as deep as it should undamaged (the unit tests
        // check the frames): a harness whose walk stopped at frame 0
        // would fuzz nothing.
        for k in &base.kernels {
            let u = Unwinder::new(
                k.env(&k.mem, &base.kallsyms[0]),
                &[synth_orc::module(MODULE_SIZE)],
            );
            for v in 0..START_VARIANTS {
                let s = k.chain.start(v);
                let (frames, end, w) = u.walk(s.state, &Stacks::default().ranges());
                assert_eq!((frames.len(), &end), (s.depth, &s.end), "start {v}: {w:?}");
            }
        }
        base
    })
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let Some((head, d)) = data.split_first_chunk::<4>() else {
        return;
    };
    let k = &base.kernels[usize::from(head[0] & 1)];
    let mut mem = k.mem.clone();
    hangscope_linux::synth::apply_patches(&mut mem, &k.pages, d);
    let modules = if head[0] & 2 == 0 {
        let size = if head[0] & 0x80 != 0 {
            u64::MAX
        } else {
            MODULE_SIZE
        };
        vec![synth_orc::module(size)]
    } else {
        Vec::new()
    };
    let ks = &base.kallsyms[usize::from(head[1] >> 6)];
    let u = Unwinder::new(k.env(&mem, ks), &modules);
    let stacks = Stacks {
        task_only: head[0] & 4 != 0,
        irq_first: head[0] & 8 != 0,
        ranges: [
            StackRanges::AsBuilt,
            StackRanges::Same,
            StackRanges::IrqOverBoth,
            StackRanges::TaskAtTop,
        ][usize::from((head[0] >> 5) & 3)],
    };

    // The start: a frame of the chain, or an ip with no unwind
    // information, or the end of the stack; perhaps moved.
    let mut start = k.chain.start(head[1]).state;
    let delta = i16::from_le_bytes([head[2], head[3]]) as i64 as u64;
    match (head[1] >> 3) & 3 {
        1 => start.ip = start.ip.wrapping_add(delta),
        2 => start.sp = start.sp.wrapping_add(delta),
        3 => start.bp = start.bp.wrapping_add(delta),
        _ => {}
    }
    if head[1] & 0x20 != 0 {
        start.signal = !start.signal;
    }
    if head[0] & 0x10 != 0 {
        start.regs = None;
    }
    let (ip, sp) = (start.ip, start.sp);
    let (frames, _end, _warnings) = u.walk(start, &stacks.ranges());
    assert!(frames.len() <= hangscope_linux::stacks::MAX_DEPTH);

    // The other readers of the tables.
    for pc in std::iter::once(ip).chain(PROBES) {
        let _ = u.find(pc);
        let _ = u.is_text(pc);
        let _ = u.frame(pc, sp, FrameSource::Start);
    }
    let _ = u.thread_size();
});
