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
//! The types are laid out here, differently from any real kernel (the
//! `orc_entry` bitfields first, `pt_regs` shuffled), so that a reader that
//! hard-coded an offset would fail.
#![no_main]

use hangscope_linux::kallsyms::{Kallsyms, KernelSymbol};
use hangscope_linux::model::{FrameSource, ModuleInfo, StackEnd};
use hangscope_linux::stacks::{Registers, StackRange, StartState, Unwinder};
use hangscope_linux::view::{Env, Reader};
use hangscope_symbols::SymbolTable;
use hangscope_x64::{SparseMemory, VirtAddr};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Core kernel text (no bytes: the unwinder reads none).
const TEXT: u64 = 0xffff_ffff_8100_0000;
const LEAF: u64 = TEXT + 0x100;
const CALL_ON_IRQ: u64 = TEXT + 0x200;
const IRQ_ENTRY: u64 = TEXT + 0x300;
const F_DI: u64 = TEXT + 0x400;
const F_BP: u64 = TEXT + 0x500;
const F_PARTIAL: u64 = TEXT + 0x600;
const F_UNDEF: u64 = TEXT + 0x700;
const RET_FROM_FORK: u64 = TEXT + 0x780;
/// The table's last entry (UNDEFINED, as the kernel's sentinel).
const TABLE_END: u64 = TEXT + 0x800;
/// Past the table: walked by frame pointers.
const F_FP: u64 = TEXT + 0x900;
const ETEXT: u64 = TEXT + 0x1000;
/// The core table: `s32` ips, then the entries, a page each.
const ORC_IP: u64 = 0xffff_ffff_8260_0000;
const ORC_ENTRIES: u64 = 0xffff_ffff_8260_1000;
/// A module's text and, on one page, its `struct module`, ORC table and
/// symbols.
const MOD_TEXT: u64 = 0xffff_ffff_c000_0000;
const M_FUNC: u64 = MOD_TEXT + 0x10;
const MODULE: u64 = 0xffff_ffff_c000_8000;
/// Stacks: the IRQ stack one page, the task's two.
const IRQ_STACK: u64 = 0xffff_c900_0010_0000;
const TASK_STACK: u64 = 0xffff_c900_0020_0000;
const TASK_TOP: u64 = TASK_STACK + 0x2000;
const IRQ_TOP: u64 = IRQ_STACK + 0x1000;

// The synthetic `struct pt_regs` (not Linux's order).
const P_BP: u64 = 0x00;
const P_R13: u64 = 0x18;
const P_R10: u64 = 0x20;
const P_DX: u64 = 0x38;
const P_DI: u64 = 0x50;
const P_IP: u64 = 0x80;
const P_CS: u64 = 0x88;
const P_SP: u64 = 0x98;
// The synthetic `struct module` and what hangs off it.
const MOD_KALLSYMS: u64 = 0x10;
const MOD_ARCH: u64 = 0x40;
const ARCH_ORC: u64 = 0x00;
const ARCH_ORC_IP: u64 = 0x08;
const ARCH_NUM: u64 = 0x10;

/// `ORC_REG_*`.
const UNDEF: u8 = 0;
const PREV_SP: u8 = 1;
const DI: u8 = 3;
const BP: u8 = 4;
const SP: u8 = 5;
const SP_INDIRECT: u8 = 9;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Undefined,
    End,
    Call,
    Regs,
    RegsPartial,
}

/// The synthetic `struct orc_entry`: a 16-bit word of bitfields (sp_reg:4
/// bp_reg:4, then type:2 end:1 before 6.3, type:3 signal:1 after), then
/// sp_offset, then bp_offset.
fn isf(old: bool) -> String {
    let bits = |name: &str, pos: u32, len: u32| {
        format!(
            r#""{name}":{{"offset":0,"type":{{"kind":"bitfield","bit_position":{pos},"bit_length":{len},"type":{{"kind":"base","name":"unsigned short"}}}}}}"#
        )
    };
    let orc = if old {
        [bits("type", 8, 2), bits("end", 10, 1)].join(",")
    } else {
        [bits("type", 8, 3), bits("signal", 11, 1)].join(",")
    };
    let field = |name: &str, off: u64, ty: &str| {
        format!(r#""{name}":{{"offset":{off},"type":{{"kind":"base","name":"{ty}"}}}}"#)
    };
    let ptr = |name: &str, off: u64, to: &str| {
        format!(
            r#""{name}":{{"offset":{off},"type":{{"kind":"pointer","subtype":{{"kind":"struct","name":"{to}"}}}}}}"#
        )
    };
    let st = |name: &str, size: u64, fields: Vec<String>| {
        format!(
            r#""{name}":{{"kind":"struct","size":{size},"fields":{{{}}}}}"#,
            fields.join(",")
        )
    };
    let ul = "unsigned long";
    let regs = [
        ("bp", P_BP),
        ("r13", P_R13),
        ("r10", P_R10),
        ("dx", P_DX),
        ("di", P_DI),
        ("ip", P_IP),
        ("cs", P_CS),
        ("flags", 0x90),
        ("sp", P_SP),
        ("ss", 0xa0),
    ]
    .iter()
    .map(|(n, o)| field(n, *o, ul))
    .collect();
    let types = [
        st(
            "orc_entry",
            6,
            vec![
                bits("sp_reg", 0, 4),
                bits("bp_reg", 4, 4),
                orc,
                field("sp_offset", 2, "short"),
                field("bp_offset", 4, "short"),
            ],
        ),
        st("pt_regs", 0xa8, regs),
        st(
            "module",
            0x200,
            vec![
                ptr("kallsyms", MOD_KALLSYMS, "mod_kallsyms"),
                format!(
                    r#""arch":{{"offset":{MOD_ARCH},"type":{{"kind":"struct","name":"mod_arch_specific"}}}}"#
                ),
            ],
        ),
        st(
            "mod_arch_specific",
            0x18,
            vec![
                ptr("orc_unwind", ARCH_ORC, "orc_entry"),
                ptr("orc_unwind_ip", ARCH_ORC_IP, "orc_entry"),
                field("num_orcs", ARCH_NUM, "unsigned int"),
            ],
        ),
        st(
            "mod_kallsyms",
            0x28,
            vec![
                field("num_symtab", 0, ul),
                ptr("symtab", 0x10, "elf64_sym"),
                ptr("typetab", 0x18, "elf64_sym"),
                ptr("strtab", 0x20, "elf64_sym"),
            ],
        ),
        st(
            "elf64_sym",
            24,
            vec![field("st_name", 0, "unsigned int"), field("st_value", 8, ul)],
        ),
    ]
    .join(",");
    format!(
        r#"{{"metadata":{{"format":"6.2.0"}},
"base_types":{{
 "short":{{"size":2,"signed":true,"kind":"int","endian":"little"}},
 "unsigned short":{{"size":2,"signed":false,"kind":"int","endian":"little"}},
 "unsigned int":{{"size":4,"signed":false,"kind":"int","endian":"little"}},
 "unsigned long":{{"size":8,"signed":false,"kind":"int","endian":"little"}},
 "pointer":{{"size":8,"signed":false,"kind":"int","endian":"little"}}}},
"user_types":{{{types}}},
"enums":{{}},
"symbols":{{}}}}"#
    )
}

/// One entry's bytes in the synthetic layout.
fn entry(old: bool, kind: Kind, sp_reg: u8, sp_off: i16, bp_reg: u8, bp_off: i16) -> [u8; 6] {
    let (sp_reg, ty, flag) = match (old, kind) {
        (true, Kind::Undefined) => (UNDEF, 0, 0),
        (true, Kind::End) => (UNDEF, 0, 1),
        (true, Kind::Call) => (sp_reg, 0, 0),
        (true, Kind::Regs) => (sp_reg, 1, 0),
        (true, Kind::RegsPartial) => (sp_reg, 2, 0),
        (false, k) => (
            sp_reg,
            match k {
                Kind::Undefined => 0,
                Kind::End => 1,
                Kind::Call => 2,
                Kind::Regs => 3,
                Kind::RegsPartial => 4,
            },
            0,
        ),
    };
    let word: u16 =
        u16::from(sp_reg) | u16::from(bp_reg) << 4 | ty << 8 | flag << if old { 10 } else { 11 };
    let mut e = [0u8; 6];
    e[0..2].copy_from_slice(&word.to_le_bytes());
    e[2..4].copy_from_slice(&sp_off.to_le_bytes());
    e[4..6].copy_from_slice(&bp_off.to_le_bytes());
    e
}

/// An ORC table at `ips` (`s32`s relative to themselves) and `entries`.
fn write_table(m: &mut SparseMemory, ips: u64, entries: u64, table: &[(u64, [u8; 6])]) {
    for (i, (ip, e)) in table.iter().enumerate() {
        let at = ips + i as u64 * 4;
        m.write(at, &(ip.wrapping_sub(at) as i32).to_le_bytes());
        m.write(entries + i as u64 * 6, e);
    }
}

/// The frames of the undamaged chain, innermost first: (ip, sp, bp).
struct Chain {
    frames: [(u64, u64, u64); 9],
    /// rdi where frame 3 (whose CFA is rdi + 8) was interrupted.
    di3: u64,
}

impl Chain {
    /// Start variant `v` (0..8) undamaged: the start state, and how many
    /// frames and which end its walk has.
    fn start(&self, v: u8) -> (StartState, usize, StackEnd) {
        let f = &self.frames;
        let (i, signal, depth, end) = match v & 7 {
            0 => (0, true, 9, StackEnd::EndOfStack),
            1 => (2, false, 7, StackEnd::EndOfStack),
            2 => (3, true, 6, StackEnd::EndOfStack),
            3 => (4, false, 5, StackEnd::EndOfStack),
            4 => (5, false, 4, StackEnd::EndOfStack),
            5 => (6, false, 3, StackEnd::EndOfStack),
            // In a function without unwind information.
            6 => (4, true, 1, StackEnd::Error),
            // A task that never ran: at ret_from_fork_asm.
            _ => (8, true, 1, StackEnd::EndOfStack),
        };
        let (ip, sp, bp) = f[i];
        let ip = if v & 7 == 6 { F_UNDEF + 4 } else { ip };
        let regs = Registers {
            dx: 0x1111,
            di: self.di3,
            r10: 0x2222,
            r13: 0x3333,
            bp,
        };
        let start = StartState {
            ip,
            sp,
            bp,
            signal,
            regs: Some(regs),
        };
        (start, depth, end)
    }
}

/// One layout's kernel, undamaged.
struct Kernel {
    mem: SparseMemory,
    types: SymbolTable,
    pages: Vec<u64>,
}

struct Base {
    kernels: [Kernel; 2],
    /// By `kallsyms`' variant.
    kallsyms: [Kallsyms; 4],
    chain: Chain,
}

fn build(old: bool) -> (Kernel, Chain) {
    let mut m = SparseMemory::new();
    let e = |k, sr, so, br, bo| entry(old, k, sr, so, br, bo);
    let table = [
        // The leaf before and after `push %rbp`.
        (LEAF, e(Kind::Call, SP, 8, UNDEF, 0)),
        (LEAF + 4, e(Kind::Call, SP, 16, PREV_SP, -16)),
        // call_on_irqstack: the task's stack pointer on the IRQ stack's top.
        (CALL_ON_IRQ, e(Kind::Call, SP, 8, UNDEF, 0)),
        (CALL_ON_IRQ + 0x10, e(Kind::Call, SP_INDIRECT, 8, UNDEF, 0)),
        (IRQ_ENTRY, e(Kind::Regs, SP, 0, UNDEF, 0)),
        (F_DI, e(Kind::Call, DI, 8, BP, 0)),
        (F_BP, e(Kind::Call, BP, 16, PREV_SP, -16)),
        (F_PARTIAL, e(Kind::RegsPartial, SP, 0x10, UNDEF, 0)),
        (F_UNDEF, e(Kind::Undefined, UNDEF, 0, UNDEF, 0)),
        (RET_FROM_FORK, e(Kind::End, UNDEF, 0, UNDEF, 0)),
        (TABLE_END, e(Kind::Undefined, UNDEF, 0, UNDEF, 0)),
    ];
    write_table(&mut m, ORC_IP, ORC_ENTRIES, &table);
    // The module: its table, its symbols (`m_func`, kind 't').
    let (mod_ip, mod_orc) = (MODULE + 0x400, MODULE + 0x500);
    write_table(
        &mut m,
        mod_ip,
        mod_orc,
        &[
            (MOD_TEXT, e(Kind::Call, SP, 8, UNDEF, 0)),
            (MOD_TEXT + 0x100, e(Kind::Undefined, UNDEF, 0, UNDEF, 0)),
        ],
    );
    m.write_u64(MODULE + MOD_ARCH + ARCH_ORC, mod_orc);
    m.write_u64(MODULE + MOD_ARCH + ARCH_ORC_IP, mod_ip);
    m.write_u32(MODULE + MOD_ARCH + ARCH_NUM, 2);
    let (ks, symtab, strtab, typetab) = (
        MODULE + 0x600,
        MODULE + 0x700,
        MODULE + 0x800,
        MODULE + 0x900,
    );
    m.write_u64(MODULE + MOD_KALLSYMS, ks);
    m.write_u64(ks, 2);
    m.write_u64(ks + 0x10, symtab);
    m.write_u64(ks + 0x18, typetab);
    m.write_u64(ks + 0x20, strtab);
    m.write(strtab, b"\0m_func\0");
    m.write_u32(symtab + 24, 1);
    m.write_u64(symtab + 24 + 8, M_FUNC);
    m.write(typetab, b"tt");

    // The chain, outermost first (stacks grow down).
    let sp8 = TASK_TOP - 0x10;
    let ip8 = RET_FROM_FORK + 0x10;
    // F7: a partial pt_regs (the iret frame) at CFA = sp + 0x10.
    let cfa7 = TASK_TOP - 0x40;
    let iret = cfa7 - P_IP;
    m.write_u64(iret + P_IP, ip8);
    m.write_u64(iret + P_CS, 0x10);
    m.write_u64(iret + P_SP, sp8);
    let sp7 = cfa7 - 0x10;
    let ip7 = F_PARTIAL + 0x1b;
    // F6: the module's function, CALL at SP + 8.
    let sp6 = sp7 - 8;
    m.write_u64(sp6, ip7);
    let ip6 = M_FUNC + 0x0d;
    // F5: no ORC entry, frame pointers: CFA = bp + 16.
    let bp5 = sp6 - 16;
    m.write_u64(bp5, TASK_TOP - 0x8);
    m.write_u64(bp5 + 8, ip6);
    let sp5 = bp5 - 0x20;
    let ip5 = F_FP + 0x33;
    // F4: an ORC entry by BP.
    let bp4 = sp5 - 16;
    m.write_u64(bp4, bp5);
    m.write_u64(bp4 + 8, ip5);
    let sp4 = bp4 - 0x18;
    let ip4 = F_BP + 0x27;
    // F3: interrupted, CFA = di + 8, rbp saved at [bp].
    let di = sp4 - 8;
    m.write_u64(di, ip4);
    let bp3 = sp4 - 0x10;
    m.write_u64(bp3, bp4);
    let sp3 = sp4 - 0x20;
    let ip3 = F_DI + 0x12;
    // F2: the IRQ entry, a full pt_regs at its stack pointer.
    let sp2 = sp3 - 0x100;
    for (off, v) in [
        (P_IP, ip3),
        (P_SP, sp3),
        (P_CS, 0x10),
        (P_BP, bp3),
        (P_DI, di),
        (P_DX, 0x1111),
        (P_R10, 0x2222),
        (P_R13, 0x3333),
    ] {
        m.write_u64(sp2 + off, v);
    }
    let ip2 = IRQ_ENTRY + 0x25;
    m.write_u64(sp2 - 8, ip2);
    // F1: on the IRQ stack, whose top word is the task's stack pointer.
    let sp1 = IRQ_TOP - 8;
    m.write_u64(sp1, sp2 - 8);
    let ip1 = CALL_ON_IRQ + 0x1c;
    // F0: the leaf, rbp pushed.
    let sp0 = sp1 - 16;
    m.write_u64(sp0, TASK_TOP - 0x300);
    m.write_u64(sp0 + 8, ip1);
    let ip0 = LEAF + 9;
    // The rest of the stacks' pages are there, zero.
    for page in [IRQ_STACK, TASK_STACK, TASK_STACK + 0x1000] {
        m.write(page, &[0]);
    }
    let types = SymbolTable::from_isf_bytes(isf(old).as_bytes(), std::path::Path::new("orc.json"))
        .expect("the synthetic ISF parses");
    let pages = m.pages().map(|(va, _)| va).collect();
    let chain = Chain {
        frames: [
            (ip0, sp0, IRQ_TOP - 0x40),
            (ip1, sp1, TASK_TOP - 0x300),
            (ip2, sp2, TASK_TOP - 0x300),
            (ip3, sp3, bp3),
            (ip4, sp4, bp4),
            (ip5, sp5, bp5),
            (ip6, sp6, TASK_TOP - 0x8),
            (ip7, sp7, TASK_TOP - 0x8),
            (ip8, sp8, TASK_TOP - 0x8),
        ],
        di3: di,
    };
    (
        Kernel {
            mem: m,
            types,
            pages,
        },
        chain,
    )
}

fn kallsyms(variant: u8) -> Kallsyms {
    let (stop, entries) = match variant {
        0 => (ORC_IP + 11 * 4, ORC_ENTRIES),
        1 => (ORC_IP - 4, ORC_ENTRIES),
        2 => (ORC_IP + (1 << 20) * 4, ORC_ENTRIES),
        _ => (ORC_IP + 11 * 4, ORC_IP),
    };
    let sym = |name: &str, addr: u64, kind: char| KernelSymbol {
        name: name.into(),
        addr,
        kind,
    };
    Kallsyms::from_symbols(
        vec![
            sym("_stext", TEXT, 'T'),
            sym("leaf", LEAF, 't'),
            sym("call_on_irqstack", CALL_ON_IRQ, 't'),
            sym("asm_common_interrupt", IRQ_ENTRY, 'T'),
            sym("by_di", F_DI, 't'),
            sym("by_bp", F_BP, 't'),
            sym("asm_exc_page_fault", F_PARTIAL, 'T'),
            sym("no_unwind_info", F_UNDEF, 't'),
            sym("ret_from_fork_asm", RET_FROM_FORK, 'T'),
            sym("no_orc", F_FP, 't'),
            sym("_etext", ETEXT, 'T'),
            sym("__start_orc_unwind_ip", ORC_IP, 'D'),
            sym("__stop_orc_unwind_ip", stop, 'D'),
            sym("__start_orc_unwind", entries, 'D'),
            sym("__start_init_task", 0xffff_ffff_8280_0000, 'D'),
            sym("__end_init_task", 0xffff_ffff_8280_2000, 'D'),
        ],
        None,
    )
}

fn module(huge: bool) -> ModuleInfo {
    ModuleInfo {
        module: VirtAddr(MODULE),
        name: "hangdemo".into(),
        base: Some(VirtAddr(MOD_TEXT)),
        size: Some(if huge { u64::MAX } else { 0x1000 }),
        symbol_count: Some(2),
    }
}

/// The stacks a walk may read, from bits of the input's first byte (all
/// clear: the task's, then the IRQ stack).
fn stacks(flags: u8) -> Vec<StackRange> {
    let (order_swapped, task_only) = (flags & 8 != 0, flags & 4 != 0);
    let mut task = StackRange {
        start: TASK_STACK,
        end: TASK_TOP,
    };
    let mut irq = StackRange {
        start: IRQ_STACK,
        end: IRQ_TOP,
    };
    match (flags >> 5) & 3 {
        0 => {}
        1 => irq = task,
        2 => {
            irq.end = TASK_TOP;
        }
        _ => {
            task = StackRange {
                start: u64::MAX - 0xfff,
                end: u64::MAX,
            }
        }
    }
    match (task_only, order_swapped) {
        (true, _) => vec![task],
        (false, false) => vec![task, irq],
        (false, true) => vec![irq, task],
    }
}

fn env<'a>(k: &'a Kernel, mem: &'a SparseMemory, ks: &'a Kallsyms) -> Env<'a> {
    Env {
        r: Reader {
            mem,
            types: &k.types,
        },
        kallsyms: ks,
        kernel_offset: 0,
    }
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let (new, chain) = build(false);
        let (old, _) = build(true);
        let base = Base {
            kernels: [new, old],
            kallsyms: [kallsyms(0), kallsyms(1), kallsyms(2), kallsyms(3)],
            chain,
        };
        // The undamaged walk goes through every kind of frame to the end
        // of the stack, in both layouts: a harness whose walk stopped at
        // frame 0 would fuzz nothing.
        for k in &base.kernels {
            let u = Unwinder::new(env(k, &k.mem, &base.kallsyms[0]), &[module(false)]);
            assert!(u.warnings.is_empty(), "{:?}", u.warnings);
            let (start, _, _) = base.chain.start(0);
            let (frames, end, w) = u.walk(start, &stacks(0));
            assert_eq!(end, StackEnd::EndOfStack, "{frames:?} {w:?}");
            assert!(w.is_empty(), "{w:?}");
            let got: Vec<(u64, u64)> = frames.iter().map(|f| (f.pc.0, f.sp.0)).collect();
            let want: Vec<(u64, u64)> = base.chain.frames.iter().map(|f| (f.0, f.1)).collect();
            assert_eq!(got, want);
            for s in [
                FrameSource::Orc,
                FrameSource::Regs,
                FrameSource::FramePointer,
            ] {
                assert!(frames.iter().any(|f| f.source == s), "no {s:?} frame");
            }
            assert_eq!(frames[6].function.as_deref(), Some("m_func"));
            assert_eq!(frames[6].module.as_deref(), Some("hangdemo"));
            // And every other start goes as deep as it should.
            for v in 1..8 {
                let (start, depth, want) = base.chain.start(v);
                let (frames, end, w) = u.walk(start, &stacks(0));
                assert_eq!((frames.len(), &end), (depth, &want), "start {v}: {w:?}");
            }
        }
        base
    })
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let Some((head, mut d)) = data.split_first_chunk::<4>() else {
        return;
    };
    let k = &base.kernels[usize::from(head[0] & 1)];
    let mut mem = k.mem.clone();
    let pages = &k.pages;
    while d.len() >= 4 {
        let page = pages[d[0] as usize % pages.len()];
        let off = u16::from_le_bytes([d[1], d[2]]) as u64 % 4096;
        let len = (d[3] as usize).min(d.len() - 4);
        mem.write(page + off, &d[4..4 + len]);
        d = &d[4 + len..];
    }
    let modules = if head[0] & 2 == 0 {
        vec![module(head[0] & 0x80 != 0)]
    } else {
        Vec::new()
    };
    let ks = &base.kallsyms[usize::from(head[1] >> 6)];
    let u = Unwinder::new(env(k, &mem, ks), &modules);

    // The start: a frame of the chain, or an ip with no unwind
    // information, or the end of the stack; perhaps moved.
    let (mut start, _, _) = base.chain.start(head[1]);
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
    let (frames, _end, _warnings) = u.walk(start, &stacks(head[0]));
    assert!(frames.len() <= hangscope_linux::stacks::MAX_DEPTH);

    // The other readers of the tables.
    for pc in [
        ip,
        LEAF + 2,
        F_BP + 1,
        F_FP,
        M_FUNC,
        MOD_TEXT + 0x100,
        ETEXT,
    ] {
        let _ = u.find(pc);
        let _ = u.is_text(pc);
        let _ = u.frame(pc, sp, FrameSource::Start);
    }
    let _ = u.thread_size();
});
