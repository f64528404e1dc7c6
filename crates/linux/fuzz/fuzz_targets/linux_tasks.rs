//! The task walk and the printk reader over damaged memory: the synthetic
//! kernel (`hangscope_linux::synth`: init_task, processes with threads, two
//! CPUs' runqueues, a printk ring buffer) with the input's patches laid
//! over its pages (and a mutex with a waiter record on a task's stack,
//! for the waiter discovery); the walks must end with results and warnings: no
//! panic, no hang.
//!
//! Input: a list of patches, each (page index: 1 byte, offset in the
//! page: 2 bytes, length: 1 byte, then that many bytes). Page indexes pick
//! among the kernel's pages, modulo their count.
#![no_main]

use hangscope_linux::dmesg::{dmesg, vmcoreinfo_types};
use hangscope_linux::kallsyms::Kallsyms;
use hangscope_linux::synth::{self, Process, SynthKernel};
use hangscope_linux::tasks::{tasks, Cache};
use hangscope_linux::view::{Env, Reader};
use hangscope_linux::waits::find_waits;
use hangscope_linux::VmcoreInfo;
use hangscope_symbols::SymbolTable;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The undamaged kernel, its printk layout and the pages worth damaging,
/// built once: parsing the synthetic ISF for every input was most of an
/// execution's time.
struct Base {
    k: SynthKernel,
    printk_types: SymbolTable,
    printk_syms: Kallsyms,
    pages: Vec<u64>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let procs = vec![
            Process {
                threads: vec![(1, "init", 0x1, 1)],
                kthread: false,
            },
            Process {
                threads: vec![
                    (94, "writer", 0x1, 1),
                    (96, "handler", 0x2, 0),
                    (97, "x", 0x402, 1),
                ],
                kthread: false,
            },
        ];
        let mut k = synth::build(&procs);
        let (vi, prb) =
            synth::write_printk(&mut k.mem, &["boot", "hung task", "a longer line of text"]);
        // The handler waits on a mutex the writer owns, its waiter record on
        // its stack (issue 12's waiter discovery runs over the damage too).
        let (writer, handler) = (k.tasks[2], k.tasks[3]);
        synth::set_stack(&mut k.mem, writer, 0);
        let stack = synth::set_stack(&mut k.mem, handler, 1);
        let rec = stack + 0x3e00;
        let mutex = 0xffff_ffff_c052_1000u64;
        k.mem.write_u64(rec + synth::MUTEX_WAITER_TASK, handler);
        k.mem.write_u64(mutex, writer | 1);
        synth::ring(
            &mut k.mem,
            mutex + synth::MUTEX_WAIT_LIST,
            &[rec + synth::MUTEX_WAITER_LIST],
        );
        let printk_types = vmcoreinfo_types(&VmcoreInfo::parse(&vi)).expect("printk layout");
        let printk_syms = Kallsyms::from_symbols(vec![prb], None);
        let pages: Vec<u64> = k.mem.pages().map(|(va, _)| va).collect();
        Base {
            k,
            printk_types,
            printk_syms,
            pages,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let k = &base.k;
    let mut mem = k.mem.clone();
    hangscope_linux::synth::apply_patches(&mut mem, &base.pages, data);
    let env = Env {
        r: Reader {
            mem: &mem,
            types: &k.types,
        },
        kallsyms: &k.kallsyms,
        kernel_offset: 0,
    };
    if let Ok(listing) = tasks(&env, &Cache::default()) {
        let _ = find_waits(&env, &listing.items, Some(1000), Some(250), &|_| None);
    }
    let env = Env {
        r: Reader {
            mem: &mem,
            types: &base.printk_types,
        },
        kallsyms: &base.printk_syms,
        kernel_offset: 0,
    };
    let _ = dmesg(&env);
});
