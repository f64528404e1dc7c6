//! Every task's kernel stack, unwound with the dump's own ORC tables and
//! no debug info, against drgn's (`peers/drgn-{elf,kdump}.json`, drgn with
//! Debian's debug vmlinux) on the recipe's real dumps.
//!
//! Part of the `real_guest` test binary: the guests are its
//! `HANGSCOPE_LINUX_GUESTS`.
//!
//! How the two are compared, and where they differ on purpose:
//! - drgn adds a frame per inlined function, sharing its caller's pc; the
//!   kernel's tables know nothing of inlining, so those are dropped.
//! - drgn goes on past the kernel stack into user space (its last frames,
//!   above `entry_SYSCALL_64`, are read from the user registers in the
//!   syscall's `pt_regs` and then from garbage). The kernel's own unwinder
//!   stops at a `pt_regs` from user mode and so do we, with
//!   [`StackEnd::UserMode`]: only drgn's frames in the kernel's text are
//!   compared.
//! - drgn names a pc by the ELF symbol that contains it; kallsyms knows
//!   inner labels too (`entry_SYSCALL_64_after_hwframe` inside
//!   `entry_SYSCALL_64`). Both name the same pc; a frame whose names differ
//!   must have the same pc, and our symbol must lie inside drgn's (its
//!   start plus our offset is the pc, at or after drgn's symbol start).

use hangscope_dump::Dump;
use hangscope_linux::{LinuxKernel, StackEnd};
use serde_json::Value;

use super::guest_dirs as guests;

fn hex(v: &Value) -> Option<u64> {
    let s = v.as_str()?;
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

#[test]
fn every_stack_equals_drgns() {
    for dir in guests() {
        for (form, file) in [("elf", "hangguest.elf"), ("kdump", "hangguest.kdump-zlib")] {
            let label = format!("{} {form}", dir.display());
            let dump = Dump::open(&dir.join("dumps").join(file)).unwrap();
            let k = LinuxKernel::open(&dump, None).unwrap_or_else(|e| panic!("[{label}] {e}"));
            let started = std::time::Instant::now();
            let stacks = k.stacks().unwrap_or_else(|e| panic!("[{label}] {e}"));
            eprintln!(
                "[{label}] {} stacks in {:?}",
                stacks.items.len(),
                started.elapsed()
            );
            let text =
                std::fs::read_to_string(dir.join(format!("peers/drgn-{form}.json"))).unwrap();
            let truth: Value = serde_json::from_str(&text).unwrap();
            let tasks = truth["tasks"].as_array().unwrap();
            let (mut compared, mut frames) = (0, 0);
            for t in tasks {
                let addr = hex(&t["task"]).unwrap();
                let ours = stacks
                    .items
                    .iter()
                    .find(|s| s.task.0 == addr)
                    .unwrap_or_else(|| panic!("[{label}] task {addr:#x} not listed"));
                let want: Vec<&Value> = t["stack"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["inline"] != Value::Bool(true))
                    .collect();
                // drgn's frames up to the last one in kernel text.
                let kernel = want
                    .iter()
                    .rposition(|f| hex(&f["pc"]).is_some_and(|pc| pc >> 47 == 0x1_ffff))
                    .map_or(0, |i| i + 1);
                let want = &want[..kernel];
                let who = format!("[{label}] pid {} {}", t["pid"], t["comm"]);
                let show: Vec<String> = ours.frames.iter().map(|f| f.to_string()).collect();
                assert_eq!(
                    ours.frames.len(),
                    want.len(),
                    "{who}: ours {show:#?} ({:?}, {:?}), drgn {want:#?}",
                    ours.end,
                    ours.warnings
                );
                for (f, w) in ours.frames.iter().zip(want) {
                    let pc = hex(&w["pc"]).unwrap();
                    assert_eq!(f.pc.0, pc, "{who}: {show:#?}");
                    let name = w["symbol"].as_str().unwrap_or_default();
                    let off = hex(&w["offset"]).unwrap_or(0);
                    if f.function.as_deref() != Some(name) {
                        // An inner label of drgn's symbol.
                        let ours_off = f.offset.unwrap_or(u64::MAX);
                        assert!(ours_off <= off, "{who}: {f} vs {name}+{off:#x}");
                    } else {
                        assert_eq!(f.offset, Some(off), "{who}: {f} vs {name}+{off:#x}");
                    }
                    frames += 1;
                }
                assert!(
                    matches!(ours.end, StackEnd::EndOfStack | StackEnd::UserMode),
                    "{who}: ended {:?} {:?}",
                    ours.end,
                    ours.warnings
                );
                compared += 1;
            }
            eprintln!("[{label}] {compared} tasks, {frames} frames equal drgn's");
            assert!(compared >= 40, "[{label}] only {compared} tasks");
            let running = k.running().unwrap();
            for c in &running.items {
                eprintln!(
                    "[{label}] cpu {} {:?} {:?} {:?}: {}",
                    c.cpu,
                    c.mode,
                    c.comm,
                    c.end,
                    c.frames
                        .iter()
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join(" < ")
                );
            }
            assert!(!running.items.is_empty());
        }
    }
}
