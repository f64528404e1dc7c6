//! A small synthetic Linux kernel for the ORC unwinder
//! ([`crate::stacks::Unwinder`] over [`crate::orc`]), for the unit tests
//! and the fuzz targets: a core ORC table, a module with its own table and
//! symbols, an IRQ stack and a two-page task stack holding a chain of nine
//! frames (CALL frames by SP, SP_INDIRECT, DI and BP, a full `pt_regs`, a
//! frame-pointer fallback, a module frame, a partial `pt_regs`, and the
//! end of the stack). Not a model of a real kernel: only what the
//! unwinder reads.
//!
//! Its types (Volatility ISF) are laid out here, differently from any
//! real kernel (the `orc_entry` bitfields first, `pt_regs` shuffled), so
//! that a reader that hard-coded an offset would fail; `orc_entry` comes
//! in both forms ([`OrcForm`]).

use crate::kallsyms::{Kallsyms, KernelSymbol};
use crate::model::{FrameSource, ModuleInfo, StackEnd};
use crate::stacks::{Registers, StackRange, StartState};
use crate::view::{Env, Reader};
use hangscope_symbols::SymbolTable;
use hangscope_x64::{SparseMemory, VirtAddr};

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
/// Entries in the core table.
const CORE_ENTRIES: u64 = 11;
/// A module's text and, on one page, its `struct module`, ORC table and
/// symbols.
const MOD_TEXT: u64 = 0xffff_ffff_c000_0000;
const M_FUNC: u64 = MOD_TEXT + 0x10;
const MODULE: u64 = 0xffff_ffff_c000_8000;
const MOD_ORC_IP: u64 = MODULE + 0x400;
const MOD_ORC: u64 = MODULE + 0x500;
/// The module's name in [`module`].
pub const MODULE_NAME: &str = "hangdemo";
/// The module's size in [`module`] as built (its text is one page).
pub const MODULE_SIZE: u64 = 0x1000;
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

/// How many start states [`Chain::start`] has.
pub const START_VARIANTS: u8 = 8;

/// Addresses the table readers other than the walk (`find`, `is_text`,
/// `frame`) are worth trying at: inside a function, at an entry's first
/// byte, past the core table, a module function, the module table's end,
/// the end of the core text.
pub const PROBES: [u64; 6] = [LEAF + 2, F_BP + 1, F_FP, M_FUNC, MOD_TEXT + 0x100, ETEXT];

/// Which `struct orc_entry` the kernel has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrcForm {
    /// 6.3 and later: a 3-bit `type` and a `signal` bit.
    Signal,
    /// Before 6.3: a 2-bit `type` and an `end` bit.
    End,
}

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
fn isf(form: OrcForm) -> String {
    let bits = |name: &str, pos: u32, len: u32| {
        format!(
            r#""{name}":{{"offset":0,"type":{{"kind":"bitfield","bit_position":{pos},"bit_length":{len},"type":{{"kind":"base","name":"unsigned short"}}}}}}"#
        )
    };
    let orc = match form {
        OrcForm::End => [bits("type", 8, 2), bits("end", 10, 1)].join(","),
        OrcForm::Signal => [bits("type", 8, 3), bits("signal", 11, 1)].join(","),
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
fn entry(form: OrcForm, kind: Kind, sp_reg: u8, sp_off: i16, bp_reg: u8, bp_off: i16) -> [u8; 6] {
    let (sp_reg, ty, flag, flag_bit) = match form {
        OrcForm::End => match kind {
            Kind::Undefined => (UNDEF, 0, 0, 10),
            Kind::End => (UNDEF, 0, 1, 10),
            Kind::Call => (sp_reg, 0, 0, 10),
            Kind::Regs => (sp_reg, 1, 0, 10),
            Kind::RegsPartial => (sp_reg, 2, 0, 10),
        },
        OrcForm::Signal => {
            let ty = match kind {
                Kind::Undefined => 0,
                Kind::End => 1,
                Kind::Call => 2,
                Kind::Regs => 3,
                Kind::RegsPartial => 4,
            };
            (sp_reg, ty, 0, 11)
        }
    };
    let word: u16 = u16::from(sp_reg) | u16::from(bp_reg) << 4 | ty << 8 | flag << flag_bit;
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

/// One frame of the undamaged chain, as the walk must give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFrame {
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer in this frame.
    pub bp: u64,
    /// How the walk found it (from the frame below; the innermost is the
    /// start).
    pub source: FrameSource,
    /// `function+0xoff [module]`, as the frame displays.
    pub name: String,
}

/// The undamaged chain, innermost first.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The nine frames.
    pub frames: Vec<ChainFrame>,
    /// rdi where frame 3 (whose CFA is rdi + 8) was interrupted.
    di3: u64,
}

/// A start state and what the undamaged walk from it gives.
#[derive(Debug, Clone)]
pub struct Start {
    /// The registers the walk starts from.
    pub state: StartState,
    /// How many frames the walk gives.
    pub depth: usize,
    /// Why it ends.
    pub end: StackEnd,
}

impl Chain {
    /// Start variant `v` (its low 3 bits; [`START_VARIANTS`]): 0 to 5 a
    /// frame of the chain (0, 2, 3, 4, 5, 6), each as the vCPU registers
    /// there; 6 an ip in a function without unwind information (one
    /// frame, an error); 7 a task that never ran, at `ret_from_fork_asm`
    /// (one frame, the end of the stack).
    pub fn start(&self, v: u8) -> Start {
        let (i, signal, depth, end) = match v & 7 {
            0 => (0, true, 9, StackEnd::EndOfStack),
            1 => (2, false, 7, StackEnd::EndOfStack),
            2 => (3, true, 6, StackEnd::EndOfStack),
            3 => (4, false, 5, StackEnd::EndOfStack),
            4 => (5, false, 4, StackEnd::EndOfStack),
            5 => (6, false, 3, StackEnd::EndOfStack),
            6 => (4, true, 1, StackEnd::Error),
            _ => (8, true, 1, StackEnd::EndOfStack),
        };
        let f = &self.frames[i];
        let ip = if v & 7 == 6 { F_UNDEF + 4 } else { f.ip };
        let state = StartState {
            ip,
            sp: f.sp,
            bp: f.bp,
            signal,
            regs: Some(Registers {
                dx: 0x1111,
                di: self.di3,
                r10: 0x2222,
                r13: 0x3333,
                bp: f.bp,
            }),
        };
        Start { state, depth, end }
    }
}

/// The synthetic kernel of one [`OrcForm`], undamaged.
#[derive(Debug)]
pub struct OrcKernel {
    /// Kernel memory: the tables, the module, the stacks.
    pub mem: SparseMemory,
    /// The type table.
    pub types: SymbolTable,
    /// The pages of `mem`, in address order (for patches).
    pub pages: Vec<u64>,
    /// The chain on the stacks.
    pub chain: Chain,
}

impl OrcKernel {
    /// Build the kernel with `form`'s `orc_entry`.
    pub fn build(form: OrcForm) -> OrcKernel {
        let mut m = SparseMemory::new();
        let e = |k, sr, so, br, bo| entry(form, k, sr, so, br, bo);
        let table = [
            // The leaf before and after `push %rbp`.
            (LEAF, e(Kind::Call, SP, 8, UNDEF, 0)),
            (LEAF + 4, e(Kind::Call, SP, 16, PREV_SP, -16)),
            // call_on_irqstack: the task's stack pointer on the IRQ
            // stack's top.
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
        debug_assert_eq!(table.len() as u64, CORE_ENTRIES);
        write_table(&mut m, ORC_IP, ORC_ENTRIES, &table);
        // The module: its table, its symbols (`m_func`, kind 't').
        write_table(
            &mut m,
            MOD_ORC_IP,
            MOD_ORC,
            &[
                (MOD_TEXT, e(Kind::Call, SP, 8, UNDEF, 0)),
                (MOD_TEXT + 0x100, e(Kind::Undefined, UNDEF, 0, UNDEF, 0)),
            ],
        );
        m.write_u64(MODULE + MOD_ARCH + ARCH_ORC, MOD_ORC);
        m.write_u64(MODULE + MOD_ARCH + ARCH_ORC_IP, MOD_ORC_IP);
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
        let types =
            SymbolTable::from_isf_bytes(isf(form).as_bytes(), std::path::Path::new("orc.json"))
                .expect("the synthetic ISF parses");
        let pages = m.pages().map(|(va, _)| va).collect();
        let frame = |ip: u64, sp, bp, source, name: &str| ChainFrame {
            ip,
            sp,
            bp,
            source,
            name: name.into(),
        };
        use FrameSource::{FramePointer, Orc, Regs};
        let frames = vec![
            frame(ip0, sp0, IRQ_TOP - 0x40, FrameSource::Start, "leaf+0x9"),
            frame(ip1, sp1, TASK_TOP - 0x300, Orc, "call_on_irqstack+0x1c"),
            frame(ip2, sp2, TASK_TOP - 0x300, Orc, "asm_common_interrupt+0x25"),
            frame(ip3, sp3, bp3, Regs, "by_di+0x12"),
            frame(ip4, sp4, bp4, Orc, "by_bp+0x27"),
            frame(ip5, sp5, bp5, Orc, "no_orc+0x33"),
            frame(
                ip6,
                sp6,
                TASK_TOP - 0x8,
                FramePointer,
                "m_func+0xd [hangdemo]",
            ),
            frame(ip7, sp7, TASK_TOP - 0x8, Orc, "asm_exc_page_fault+0x1b"),
            frame(ip8, sp8, TASK_TOP - 0x8, Regs, "ret_from_fork_asm+0x10"),
        ];
        OrcKernel {
            mem: m,
            types,
            pages,
            chain: Chain { frames, di3: di },
        }
    }

    /// The environment an [`crate::stacks::Unwinder`] reads: this kernel's
    /// types over `mem` (its own memory, or a damaged copy) and `kallsyms`.
    pub fn env<'a>(&'a self, mem: &'a SparseMemory, kallsyms: &'a Kallsyms) -> Env<'a> {
        Env {
            r: Reader {
                mem,
                types: &self.types,
            },
            kallsyms,
            kernel_offset: 0,
        }
    }
}

/// Where kallsyms puts the core ORC table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrcSymbols {
    /// Where it is.
    AsBuilt,
    /// `__stop_orc_unwind_ip` below `__start_orc_unwind_ip`.
    StopBelowStart,
    /// A table of 2^20 entries, far larger than the memory holds.
    Huge,
    /// The entries on the ip table.
    EntriesOnIpTable,
}

impl OrcSymbols {
    /// Every variant, by the two bits the fuzz target takes.
    pub const ALL: [OrcSymbols; 4] = [
        OrcSymbols::AsBuilt,
        OrcSymbols::StopBelowStart,
        OrcSymbols::Huge,
        OrcSymbols::EntriesOnIpTable,
    ];
}

/// The kernel's symbols: its functions, the text's bounds, the ORC
/// table's as `orc` says, the init task's stack (`THREAD_SIZE`).
pub fn kallsyms(orc: OrcSymbols) -> Kallsyms {
    let stop_as_built = ORC_IP + CORE_ENTRIES * 4;
    let (stop, entries) = match orc {
        OrcSymbols::AsBuilt => (stop_as_built, ORC_ENTRIES),
        OrcSymbols::StopBelowStart => (ORC_IP - 4, ORC_ENTRIES),
        OrcSymbols::Huge => (ORC_IP + (1 << 20) * 4, ORC_ENTRIES),
        OrcSymbols::EntriesOnIpTable => (stop_as_built, ORC_IP),
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

/// The module as the module list gives it, with `size` bytes of core
/// ([`MODULE_SIZE`] as built).
pub fn module(size: u64) -> ModuleInfo {
    ModuleInfo {
        module: VirtAddr(MODULE),
        name: MODULE_NAME.into(),
        base: Some(VirtAddr(MOD_TEXT)),
        size: Some(size),
        symbol_count: Some(2),
    }
}

/// How the stacks' ranges are given to a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StackRanges {
    /// As they are.
    #[default]
    AsBuilt,
    /// The IRQ stack given as the task's (the same range twice).
    Same,
    /// The IRQ stack's range running up to the task stack's top, over
    /// both.
    IrqOverBoth,
    /// The task stack given at the top of the address space.
    TaskAtTop,
}

/// The stacks a walk may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stacks {
    /// Only the task's stack (no IRQ stack).
    pub task_only: bool,
    /// The IRQ stack first (as built: the task's first).
    pub irq_first: bool,
    /// Their ranges.
    pub ranges: StackRanges,
}

impl Stacks {
    /// The ranges, in the order a walk is given them.
    pub fn ranges(&self) -> Vec<StackRange> {
        let mut task = StackRange {
            start: TASK_STACK,
            end: TASK_TOP,
        };
        let mut irq = StackRange {
            start: IRQ_STACK,
            end: IRQ_TOP,
        };
        match self.ranges {
            StackRanges::AsBuilt => {}
            StackRanges::Same => irq = task,
            StackRanges::IrqOverBoth => irq.end = TASK_TOP,
            StackRanges::TaskAtTop => {
                task = StackRange {
                    start: u64::MAX - 0xfff,
                    end: u64::MAX,
                }
            }
        }
        match (self.task_only, self.irq_first) {
            (true, _) => vec![task],
            (false, false) => vec![task, irq],
            (false, true) => vec![irq, task],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{StackFrame, Warning};
    use crate::orc::MAX_ORC_ENTRIES;
    use crate::stacks::Unwinder;

    const FORMS: [OrcForm; 2] = [OrcForm::Signal, OrcForm::End];

    /// Where the core table keeps its entry number `index`.
    fn core_entry_at(index: u64) -> u64 {
        ORC_ENTRIES + index * 6
    }
    /// Indexes in the core table.
    const IRQ_ENTRY_INDEX: u64 = 4;
    const F_DI_INDEX: u64 = 5;
    const F_BP_INDEX: u64 = 6;

    struct Walked {
        frames: Vec<StackFrame>,
        end: StackEnd,
        warnings: Vec<Warning>,
        /// The unwinder's own, from reading the tables.
        table_warnings: Vec<Warning>,
    }

    /// Walk start variant `v` over `mem` with `modules`, the ORC symbols
    /// as built and the stacks as built.
    fn walk(k: &OrcKernel, mem: &SparseMemory, modules: &[ModuleInfo], v: u8) -> Walked {
        let ks = kallsyms(OrcSymbols::AsBuilt);
        let u = Unwinder::new(k.env(mem, &ks), modules);
        let (frames, end, warnings) = u.walk(k.chain.start(v).state, &Stacks::default().ranges());
        Walked {
            frames,
            end,
            warnings,
            table_warnings: u.warnings,
        }
    }

    /// The walk from the innermost frame stopped at frame `at` (0-based)
    /// with one warning naming that frame's ip.
    fn assert_stopped_at(k: &OrcKernel, w: &Walked, at: usize, says: &str) {
        let ip = k.chain.frames[at].ip;
        assert_eq!(w.end, StackEnd::Error, "{:?}", w.warnings);
        assert_eq!(w.frames.len(), at + 1, "{:?}", w.warnings);
        for (got, want) in w.frames.iter().zip(&k.chain.frames) {
            assert_eq!((got.pc.0, got.sp.0), (want.ip, want.sp));
        }
        assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
        let warning = &w.warnings[0];
        assert_eq!(warning.address, Some(VirtAddr(ip)), "{warning:?}");
        assert!(warning.message.contains(says), "{warning:?}");
    }

    #[test]
    fn the_undamaged_walk_gives_the_chain_in_both_forms() {
        for form in FORMS {
            let k = OrcKernel::build(form);
            let w = walk(&k, &k.mem, &[module(MODULE_SIZE)], 0);
            assert!(w.table_warnings.is_empty(), "{:?}", w.table_warnings);
            assert!(w.warnings.is_empty(), "{form:?}: {:?}", w.warnings);
            assert_eq!(w.end, StackEnd::EndOfStack, "{form:?}");
            let got: Vec<(u64, u64, FrameSource, String)> = w
                .frames
                .iter()
                .map(|f| (f.pc.0, f.sp.0, f.source, f.to_string()))
                .collect();
            let want: Vec<(u64, u64, FrameSource, String)> = k
                .chain
                .frames
                .iter()
                .map(|f| (f.ip, f.sp, f.source, f.name.clone()))
                .collect();
            assert_eq!(got, want, "{form:?}");
            assert_eq!(w.frames[6].function.as_deref(), Some("m_func"));
            assert_eq!(w.frames[6].module.as_deref(), Some(MODULE_NAME));
        }
    }

    #[test]
    fn every_start_walks_as_deep_as_it_should() {
        for form in FORMS {
            let k = OrcKernel::build(form);
            for v in 0..START_VARIANTS {
                let want = k.chain.start(v);
                let w = walk(&k, &k.mem, &[module(MODULE_SIZE)], v);
                assert_eq!(
                    (w.frames.len(), &w.end),
                    (want.depth, &want.end),
                    "{form:?} start {v}: {:?}",
                    w.warnings
                );
                // The walk from a frame of the chain gives the chain from
                // there; the one without unwind information says where.
                let outer = &k.chain.frames[k.chain.frames.len() - want.depth..];
                if want.end == StackEnd::EndOfStack {
                    assert!(
                        w.warnings.is_empty(),
                        "{form:?} start {v}: {:?}",
                        w.warnings
                    );
                    let pcs: Vec<u64> = w.frames.iter().map(|f| f.pc.0).collect();
                    let chain: Vec<u64> = outer.iter().map(|f| f.ip).collect();
                    assert_eq!(pcs, chain, "{form:?} start {v}");
                } else {
                    let ip = want.state.ip;
                    assert_eq!(w.warnings.len(), 1);
                    assert_eq!(w.warnings[0].address, Some(VirtAddr(ip)));
                    assert!(
                        w.warnings[0].message.contains("no unwind information"),
                        "{:?}",
                        w.warnings
                    );
                }
            }
        }
    }

    #[test]
    fn an_unsorted_ip_table_is_refused_naming_it() {
        for form in FORMS {
            let k = OrcKernel::build(form);
            // The first ip past the last: the table is not searched.
            let mut mem = k.mem.clone();
            let rel = (TABLE_END + 0x10).wrapping_sub(ORC_IP) as i32;
            mem.write(ORC_IP, &rel.to_le_bytes());
            let w = walk(&k, &mem, &[module(MODULE_SIZE)], 0);
            assert_eq!(w.table_warnings.len(), 1, "{:?}", w.table_warnings);
            assert_eq!(w.table_warnings[0].address, Some(VirtAddr(ORC_IP)));
            assert!(w.table_warnings[0].message.contains("not sorted"));
            // Frame pointers alone cannot leave the leaf (its rbp is
            // below its stack pointer).
            assert_stopped_at(&k, &w, 0, "is not above");

            // Two ips swapped inside, ends in order: the lookup that reads
            // their page refuses it, naming the later entry, and the walk
            // ends there instead of unwinding with another function's entry.
            let mut mem = k.mem.clone();
            let (a, b) = (ORC_IP + F_DI_INDEX * 4, ORC_IP + F_BP_INDEX * 4);
            mem.write(a, &(F_BP.wrapping_sub(a) as i32).to_le_bytes());
            mem.write(b, &(F_DI.wrapping_sub(b) as i32).to_le_bytes());
            let w = walk(&k, &mem, &[module(MODULE_SIZE)], 0);
            assert!(w.table_warnings.is_empty(), "{:?}", w.table_warnings);
            assert_eq!(w.end, StackEnd::Error, "{form:?}");
            assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
            let m = &w.warnings[0].message;
            assert!(m.contains("not sorted"), "{m}");
            assert!(m.contains(&format!("entry {F_BP_INDEX} ")), "{m}");
            assert!(m.contains(&VirtAddr(b).to_string()), "{m}");
            assert!(w.frames.len() < k.chain.frames.len());
        }
    }

    #[test]
    fn a_module_whose_ip_table_is_unsorted_is_walked_without_its_table() {
        for form in FORMS {
            let k = OrcKernel::build(form);
            let mut mem = k.mem.clone();
            // Its two ips swapped.
            let (a, b) = (MOD_ORC_IP, MOD_ORC_IP + 4);
            mem.write(
                a,
                &((MOD_TEXT + 0x100).wrapping_sub(a) as i32).to_le_bytes(),
            );
            mem.write(b, &(MOD_TEXT.wrapping_sub(b) as i32).to_le_bytes());
            assert_module_table_refused(&k, &mem, b, "not sorted");
        }
    }

    #[test]
    fn a_regs_entry_pointing_off_the_stack_ends_the_walk_there() {
        for form in FORMS {
            let k = OrcKernel::build(form);
            let mut mem = k.mem.clone();
            let e = entry(form, Kind::Regs, SP, 0x4000, UNDEF, 0);
            mem.write(core_entry_at(IRQ_ENTRY_INDEX), &e);
            let w = walk(&k, &mem, &[module(MODULE_SIZE)], 0);
            assert_stopped_at(&k, &w, 2, "is on no stack of this task");
        }
    }

    #[test]
    fn a_caller_whose_stack_pointer_does_not_grow_ends_the_walk_there() {
        for form in FORMS {
            let k = OrcKernel::build(form);
            let mut mem = k.mem.clone();
            // CFA = rdi - 0x18: the frame's own stack pointer, so the
            // caller's is not above it (equal, the closest damage).
            let e = entry(form, Kind::Call, DI, -0x18, BP, 0);
            mem.write(core_entry_at(F_DI_INDEX), &e);
            let w = walk(&k, &mem, &[module(MODULE_SIZE)], 0);
            assert_stopped_at(&k, &w, 3, "is not above");
        }
    }

    #[test]
    fn an_undefined_entry_ends_the_walk_there() {
        for form in FORMS {
            let k = OrcKernel::build(form);
            let mut mem = k.mem.clone();
            let e = entry(form, Kind::Undefined, UNDEF, 0, UNDEF, 0);
            mem.write(core_entry_at(F_BP_INDEX), &e);
            let w = walk(&k, &mem, &[module(MODULE_SIZE)], 0);
            assert_stopped_at(&k, &w, 4, "no unwind information");
        }
    }

    /// The module's table refused: its function is still named, and
    /// without its entry frame pointers cannot leave it (its rbp is the
    /// stack's last word).
    fn assert_module_walked_without_table(k: &OrcKernel, w: &Walked) {
        assert_stopped_at(k, w, 6, "is on no stack of this task");
        assert_eq!(w.frames[6].to_string(), k.chain.frames[6].name);
    }

    /// The module's table refused in `mem`: one table warning at `at`
    /// naming the module and saying `why`, and the walk goes on without it.
    fn assert_module_table_refused(k: &OrcKernel, mem: &SparseMemory, at: u64, why: &str) {
        let w = walk(k, mem, &[module(MODULE_SIZE)], 0);
        assert_eq!(w.table_warnings.len(), 1, "{:?}", w.table_warnings);
        let t = &w.table_warnings[0];
        assert_eq!(t.address, Some(VirtAddr(at)));
        assert!(t.message.contains(why), "{t:?}");
        assert!(t.message.contains(MODULE_NAME), "{t:?}");
        assert_module_walked_without_table(k, &w);
    }

    #[test]
    fn a_module_whose_num_orcs_passes_its_size_is_walked_without_its_table() {
        for form in FORMS {
            let k = OrcKernel::build(form);
            let mut mem = k.mem.clone();
            mem.write_u32(MODULE + MOD_ARCH + ARCH_NUM, MODULE_SIZE as u32 + 1);
            let ks = kallsyms(OrcSymbols::AsBuilt);
            let u = Unwinder::new(k.env(&mem, &ks), &[module(MODULE_SIZE)]);
            assert!(u.find(M_FUNC).unwrap().is_none());
            assert_module_table_refused(&k, &mem, MODULE, "arch.num_orcs");
            // As built, the same module's table is read.
            let u = Unwinder::new(k.env(&k.mem, &ks), &[module(MODULE_SIZE)]);
            assert!(u.find(M_FUNC).unwrap().is_some());
        }
    }

    #[test]
    fn modules_whose_tables_pass_the_bound_in_all_are_not_read() {
        let k = OrcKernel::build(OrcForm::Signal);
        let mut mem = k.mem.clone();
        // Each within its own size, the two together past the bound.
        let n = MAX_ORC_ENTRIES / 2 + 1;
        mem.write_u32(MODULE + MOD_ARCH + ARCH_NUM, n as u32);
        let second = ModuleInfo {
            name: "second".into(),
            ..module(u64::MAX)
        };
        let w = walk(&k, &mem, &[module(u64::MAX), second], 0);
        let in_all: Vec<&Warning> = w
            .table_warnings
            .iter()
            .filter(|t| t.message.contains("in all"))
            .collect();
        assert_eq!(in_all.len(), 1, "{:?}", w.table_warnings);
        assert_eq!(in_all[0].address, Some(VirtAddr(MODULE)));
        assert!(in_all[0].message.contains("second"), "{:?}", in_all[0]);
        // The first module's count was taken (its table is not all
        // there: a read error of its own).
        assert!(!w.table_warnings.is_empty());
        assert!(
            w.table_warnings
                .iter()
                .all(|t| t.message.contains("in all") || !t.message.contains("second")),
            "{:?}",
            w.table_warnings
        );
        assert_module_walked_without_table(&k, &w);
    }
}
