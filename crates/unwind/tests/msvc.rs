//! Real MSVC-built code: every prolog boundary and the final epilog of every
//! function of a PE file given in `HANGSCOPE_UNWIND_PE` (no binary is
//! checked in). Run with
//! `HANGSCOPE_UNWIND_PE=/path/to/t64.exe cargo test -p hangscope-unwind -- --ignored`
//! (pip ships MSVC-built x64 launchers: `pip/_vendor/distlib/t64.exe`).
//!
//! Each position is laid out by emulating the function's own instructions
//! (from `llvm-objdump`) from its entry, with a planted return address; one
//! frame is unwound and must give back that return address, the entry RSP + 8
//! and every nonvolatile register's entry value.

use crate::support::{Driver, FrameBuilder, Insn};
use hangscope_unwind::{Lookup, ModuleList, Reg, StopReason, UnwindInfo, UnwindOptions, Unwinder};
use std::path::PathBuf;

#[test]
#[ignore = "needs HANGSCOPE_UNWIND_PE: an MSVC-built x64 PE file"]
fn msvc_prologs_and_final_epilogs() {
    let path =
        PathBuf::from(std::env::var_os("HANGSCOPE_UNWIND_PE").expect("set HANGSCOPE_UNWIND_PE"));
    let pe = Box::leak(Box::new(Driver::from_pe(&path)));
    let modules = ModuleList::new(vec![pe.module()]);
    let probe = FrameBuilder::new(pe);
    let mut u = Unwinder::new();
    let image = u.image(&probe.mem, &pe.module()).expect("image");
    let mut positions = 0;
    let mut functions = 0;
    let mut skipped = 0;
    let mut fragments = 0;
    let mut failures = Vec::new();
    for f in image.functions() {
        let begin = pe.base + u64::from(f.begin);
        let end = pe.base + u64::from(f.end);
        let Ok(Lookup::Found(_)) = image.lookup(f.begin) else {
            continue;
        };
        let info = match UnwindInfo::read(&probe.mem, &image, f.unwind_data) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{begin:#x}: {e}"));
                continue;
            }
        };
        // Fragments (chained info) run after their parent's prolog: lay
        // that out first, then each boundary of the fragment's own prolog.
        // A fragment with no prolog of its own describes saves done on
        // another path (by a sibling fragment): not reproducible by running
        // its parents' prologs.
        if info.chained.is_some() && info.prolog_size == 0 && !info.codes.is_empty() {
            skipped += 1;
            continue;
        }
        if info.chained.is_some() {
            // The prologs of every parent, root first (bounded).
            let mut chain = Vec::new();
            let mut next = info.chained;
            while let Some(parent) = next {
                let Ok(pi) = UnwindInfo::read(&probe.mem, &image, parent.unwind_data) else {
                    break;
                };
                let pb = pe.base + u64::from(parent.begin);
                chain.push((pb, pb + u64::from(pi.prolog_size)));
                next = pi.chained;
                if chain.len() > 8 {
                    break;
                }
            }
            chain.reverse();
            let Some(first) = pe.insns.iter().position(|i| i.addr == begin) else {
                skipped += 1;
                continue;
            };
            let frag_end = begin + u64::from(info.prolog_size);
            fragments += 1;
            for p in pe.insns[first..]
                .iter()
                .map(|i| i.addr)
                .take_while(|&a| a <= frag_end)
            {
                positions += 1;
                let mut ranges = chain.clone();
                ranges.push((begin, p));
                if let Err(e) = check(pe, &modules, &ranges) {
                    failures.push(format!("fragment {begin:#x}+{:#x}: {e}", p - begin));
                }
            }
            continue;
        }
        if f.unwind_data & 1 != 0 {
            skipped += 1;
            continue;
        }
        let Some(first) = pe.insns.iter().position(|i| i.addr == begin) else {
            skipped += 1;
            continue;
        };
        let insns: Vec<&Insn> = pe.insns[first..]
            .iter()
            .take_while(|i| i.addr < end)
            .collect();
        let prolog_end = begin + u64::from(info.prolog_size);
        functions += 1;
        // Every instruction boundary in the prolog, and the first after it.
        let mut points: Vec<u64> = insns
            .iter()
            .map(|i| i.addr)
            .filter(|&a| a <= prolog_end)
            .collect();
        if !points.contains(&prolog_end) {
            points.push(prolog_end);
        }
        for &p in &points {
            positions += 1;
            if let Err(e) = check(pe, &modules, &[(begin, p)]) {
                failures.push(format!("prolog {begin:#x}+{:#x}: {e}", p - begin));
            }
        }
        // The code after the last call: restores, deallocation (add/lea
        // rsp, or MSVC's `lea r11, [rsp+n] ... mov rsp, r11`), pops, ret.
        // Tails that are not straight-line (unreachable after a noreturn
        // call, jumped into, or holding another epilog) are skipped.
        let Some(ret) = insns.iter().rposition(|i| i.mnemonic == "retq") else {
            continue;
        };
        let s = insns[..ret]
            .iter()
            .rposition(|i| i.mnemonic == "callq")
            .map_or(0, |c| c + 1);
        if insns[s].addr < prolog_end
            || insns[s..=ret]
                .iter()
                .any(|i| i.mnemonic == "int3" || i.mnemonic.starts_with('j'))
            || insns[s..ret].iter().any(|i| i.mnemonic == "retq")
        {
            continue;
        }
        for k in s..=ret {
            positions += 1;
            let ranges = [(begin, prolog_end), (insns[s].addr, insns[k].addr)];
            if let Err(e) = check(pe, &modules, &ranges) {
                failures.push(format!(
                    "epilog {begin:#x}+{:#x}: {e}",
                    insns[k].addr - begin
                ));
            }
        }
    }
    eprintln!(
        "{}: {functions} functions, {fragments} chained fragments, {positions} positions, \
         {skipped} skipped, {} failures",
        path.display(),
        failures.len()
    );
    assert!(functions > 10, "too few functions: wrong file?");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Run the instructions of each `[from, to)` range in order, stop at the
/// last `to`, and unwind one frame.
fn check(pe: &'static Driver, modules: &ModuleList, ranges: &[(u64, u64)]) -> Result<(), String> {
    const RETURN: u64 = 0x0000_7ff6_dead_0000;
    let mut b = FrameBuilder::new(pe);
    b.calls_preserve = true;
    let entry = b.rsp();
    b.mem.write_u64(entry, RETURN);
    let entry_regs = b.regs();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for &(from, to) in ranges {
            b.exec_range(from, to);
        }
        b
    }));
    let b = run.map_err(|_| "emulation failed".to_string())?;
    let rip = ranges.last().map_or(0, |r| r.1);
    let ctx = b.context(rip);
    let opts = UnwindOptions {
        max_frames: 2,
        ..UnwindOptions::default()
    };
    let stack = Unwinder::new().unwind(&b.mem, modules, ctx, &opts);
    let Some(caller) = stack.frames.get(1) else {
        return Err(format!("stopped: {:?}", stack.stop));
    };
    let outside = StopReason::OutsideModules { rip: caller.rip };
    if stack.stop != StopReason::MaxFrames && stack.stop != outside {
        return Err(format!("stop {:?}", stack.stop));
    }
    if (caller.rip.0, caller.rsp.0) != (RETURN, entry + 8) {
        return Err(format!(
            "caller ({:#x}, {:#x}) != ({RETURN:#x}, {:#x}), kind {:?}",
            caller.rip.0,
            caller.rsp.0,
            entry + 8,
            stack.frames[0].kind
        ));
    }
    for r in Reg::NONVOLATILE {
        if caller.context.get(r) != Some(entry_regs[r as usize]) {
            return Err(format!(
                "{r:?} = {:x?}, expected {:#x}",
                caller.context.get(r),
                entry_regs[r as usize]
            ));
        }
    }
    Ok(())
}
