//! ELF64 cores as QEMU `dump-guest-memory` and `virsh dump --memory-only`
//! write them: `PT_LOAD` segments at guest-physical `p_paddr`, and a
//! `PT_NOTE` with per vCPU an `NT_PRSTATUS` note and a `QEMU` note.

use super::{bad, crash, err_at, slice_at, u16_at, u32_at, u64_at};
use crate::model::Segment;
use crate::raw::elf::*;
use crate::raw::qemu_cpu_state as qcs;
use crate::{CpuState, Error, ErrorKind, KernelHints};

/// Program headers hangscope accepts: QEMU writes one per RAM block, so a
/// few hundred at most; the bound keeps a garbage count from looping long.
const MAX_PHDRS: u64 = 1 << 20;
/// Notes per note segment (one pair per vCPU, plus VMCOREINFO).
const MAX_NOTES: usize = 1 << 16;

/// What an ELF core holds.
#[derive(Debug, Default)]
pub(crate) struct ElfCore {
    pub segments: Vec<Segment>,
    pub cpus: Vec<CpuState>,
    pub vmcoreinfo: Option<String>,
    pub windows: Option<KernelHints>,
    pub notes: Vec<String>,
    /// File offset of a note only a process core has (a user-space core
    /// dumped by the kernel or gdb, not a machine).
    pub process_note: Option<u64>,
}

/// Whether the file starts like an ELF file.
pub(crate) fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

/// Parse an ELF core's headers.
pub(crate) fn parse(data: &[u8]) -> Result<ElfCore, Error> {
    let ident = slice_at(data, 0, EHDR_SIZE)?;
    if ident[4] != ELFCLASS64 {
        return Err(err_at(
            ErrorKind::Unsupported(format!("ELF class {} (only 64-bit cores)", ident[4])),
            4,
        ));
    }
    if ident[5] != ELFDATA2LSB {
        return Err(err_at(
            ErrorKind::Unsupported(format!(
                "ELF data encoding {} (only little-endian)",
                ident[5]
            )),
            5,
        ));
    }
    let e_type = u16_at(data, E_TYPE)?;
    if e_type != ET_CORE {
        let what = match e_type {
            1 => "a relocatable object",
            2 => "an executable",
            3 => "a shared object or position-independent executable",
            _ => "an ELF file of unknown type",
        };
        return Err(err_at(
            ErrorKind::Unsupported(format!(
                "this is {what} (ELF e_type {e_type}), not a memory dump: hangscope reads the ELF \
                 cores of virtual machines that `virsh dump` or QEMU's dump-guest-memory write"
            )),
            E_TYPE,
        ));
    }
    let machine = u16_at(data, E_MACHINE)?;
    let mut early_notes = Vec::new();
    match machine {
        EM_X86_64 => {}
        // QEMU labels the core EM_386 when vCPU 0 is not in long mode
        // (firmware, boot); memory is the same, CPUs come from QEMU notes.
        EM_386 => early_notes
            .push("ELF machine is i386 (vCPU 0 was not in long mode when dumped)".to_string()),
        _ => {
            return Err(err_at(
                ErrorKind::Unsupported(format!("ELF machine {machine} (only x86-64, 62)")),
                E_MACHINE,
            ))
        }
    }
    let phoff = u64_at(data, E_PHOFF)?;
    let phentsize = u64::from(u16_at(data, E_PHENTSIZE)?);
    let mut phnum = u64::from(u16_at(data, E_PHNUM)?);
    if phnum == u64::from(PN_XNUM) {
        // Too many segments for e_phnum: the count is in section 0's sh_info.
        let shoff = u64_at(data, E_SHOFF)?;
        if shoff == 0 {
            return Err(bad("e_shoff (needed for e_phnum = PN_XNUM)", 0, E_SHOFF));
        }
        phnum = u64::from(u32_at(data, shoff.saturating_add(SH_INFO))?);
    }
    if phentsize < PHDR_SIZE {
        return Err(bad("e_phentsize", phentsize, E_PHENTSIZE));
    }
    if phnum > MAX_PHDRS {
        return Err(bad("e_phnum", phnum, E_PHNUM));
    }
    // The whole table must be in the file before anything is allocated.
    let table_len = phnum
        .checked_mul(phentsize)
        .ok_or_else(|| bad("e_phnum", phnum, E_PHNUM))?;
    slice_at(data, phoff, table_len)?;

    let mut core = ElfCore {
        notes: early_notes,
        ..ElfCore::default()
    };
    let mut short = 0u64;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32_at(data, ph + P_TYPE)?;
        let p_offset = u64_at(data, ph + P_OFFSET)?;
        let p_filesz = u64_at(data, ph + P_FILESZ)?;
        match p_type {
            PT_LOAD => {
                let p_paddr = u64_at(data, ph + P_PADDR)?;
                let p_memsz = u64_at(data, ph + P_MEMSZ)?;
                // Only the bytes in the file are present: p_memsz beyond
                // p_filesz was not dumped and is never zero-filled.
                if p_filesz < p_memsz {
                    short += 1;
                }
                core.segments.push(Segment {
                    phys: p_paddr,
                    file: p_offset,
                    len: p_filesz.min(p_memsz),
                });
            }
            PT_NOTE => match slice_at(data, p_offset, p_filesz) {
                Ok(notes) => {
                    let parsed = parse_notes(notes, p_offset);
                    core.cpus.extend(parsed.cpus);
                    if core.vmcoreinfo.is_none() {
                        core.vmcoreinfo = parsed.vmcoreinfo;
                    }
                    if core.windows.is_none() {
                        core.windows = parsed.windows;
                    }
                    core.process_note = core.process_note.or(parsed.process_note);
                    core.notes.extend(parsed.problems);
                }
                Err(e) => core.notes.push(format!("note segment unreadable: {e}")),
            },
            _ => {}
        }
    }
    if let Some(off) = core.process_note {
        return Err(err_at(
            ErrorKind::Unsupported(format!(
                "this is the core of a process (its note at file offset {off:#x} is one only \
                 process cores carry: NT_PRPSINFO, NT_AUXV or NT_FILE), not of a virtual \
                 machine: hangscope reads the ELF cores that `virsh dump` or QEMU's \
                 dump-guest-memory write"
            )),
            off,
        ));
    }
    if short > 0 {
        core.notes.push(format!(
            "{short} PT_LOAD segment(s) have p_filesz < p_memsz; the bytes not in the \
             file read as not in the dump"
        ));
    }
    for (i, c) in core.cpus.iter_mut().enumerate() {
        c.index = i as u32;
    }
    Ok(core)
}

/// The CPUs and VMCOREINFO in a buffer of ELF notes.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub cpus: Vec<CpuState>,
    pub vmcoreinfo: Option<String>,
    /// Hints from a Windows guest's VMCOREINFO, which is a `DUMP_HEADER64`.
    pub windows: Option<KernelHints>,
    pub problems: Vec<String>,
    /// File offset of the first note that only process cores carry.
    pub process_note: Option<u64>,
}

/// Walk ELF notes (`namesz`, `descsz`, `type`, name and desc padded to 4).
/// `base` is the notes' file offset, for messages. The k-th `NT_PRSTATUS`
/// and the k-th `QEMU` note describe the same vCPU (QEMU writes them in CPU
/// order); the QEMU note wins where both carry a register.
pub(crate) fn parse_notes(notes: &[u8], base: u64) -> Notes {
    let mut out = Notes::default();
    let mut prstatus: Vec<CpuState> = Vec::new();
    let mut qemu: Vec<CpuState> = Vec::new();
    let mut pos = 0u64;
    let len = notes.len() as u64;
    let mut count = 0usize;
    while pos + 12 <= len && count < MAX_NOTES {
        count += 1;
        let namesz = u64::from(u32_at(notes, pos).unwrap_or(0));
        let descsz = u64::from(u32_at(notes, pos + 4).unwrap_or(0));
        let n_type = u32_at(notes, pos + 8).unwrap_or(0);
        let name_off = pos + 12;
        let desc_off = name_off + namesz.div_ceil(4) * 4;
        let next = desc_off + descsz.div_ceil(4) * 4;
        if desc_off.saturating_add(descsz) > len {
            out.problems.push(format!(
                "ELF note at file offset {:#x} runs past its segment",
                base + pos
            ));
            break;
        }
        let name = &notes[name_off as usize..(name_off + namesz) as usize];
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        let desc = &notes[desc_off as usize..(desc_off + descsz) as usize];
        match (name, n_type) {
            (b"CORE", NT_PRSTATUS) => match prstatus_regs(desc) {
                Some(c) => prstatus.push(c),
                None => out.problems.push(format!(
                    "NT_PRSTATUS note at file offset {:#x} is not x86-64 ({descsz:#x} bytes; \
                     32-bit vCPU?): registers come from the QEMU note only",
                    base + pos
                )),
            },
            (b"QEMU", _) => match qemu_regs(desc) {
                Some(c) => qemu.push(c),
                None => out.problems.push(format!(
                    "QEMU note at file offset {:#x} is not a version 1 QEMUCPUState",
                    base + pos
                )),
            },
            // A Windows guest with QEMU's vmcoreinfo device and the virtio
            // fwcfg driver publishes a prepared crash dump header instead of
            // Linux's text: its DirectoryTableBase, KdDebuggerDataBlock and
            // list heads are the hints a crash dump would give.
            (b"VMCOREINFO", _) if desc.starts_with(b"PAGEDU64") => {
                match crash::header_hints(desc, false) {
                    Ok(h) => out.windows = Some(h),
                    Err(e) => out.problems.push(format!(
                        "Windows VMCOREINFO note at file offset {:#x} is unreadable: {e}",
                        base + pos
                    )),
                }
            }
            (b"VMCOREINFO", _) => {
                let text = desc.strip_suffix(b"\0").unwrap_or(desc);
                out.vmcoreinfo = Some(String::from_utf8_lossy(text).into_owned());
            }
            (b"CORE", NT_PRPSINFO | NT_AUXV | NT_FILE) => {
                out.process_note = out.process_note.or(Some(base + pos));
            }
            _ => {}
        }
        pos = next;
    }
    let n = prstatus.len().max(qemu.len());
    for i in 0..n {
        let mut c = match (prstatus.get(i), qemu.get(i)) {
            (Some(p), Some(q)) => {
                // Both notes come from the same register file; a mismatch
                // means the notes were paired wrongly or one is damaged.
                if p.gpr != q.gpr || p.rip != q.rip {
                    out.problems.push(format!(
                        "vCPU {i}: NT_PRSTATUS and QEMU notes disagree (rip {:#x} vs {:#x}); \
                         using the QEMU note",
                        p.rip, q.rip
                    ));
                }
                CpuState {
                    fs_base: q.fs_base.or(p.fs_base),
                    gs_base: q.gs_base.or(p.gs_base),
                    ..q.clone()
                }
            }
            (Some(p), None) => p.clone(),
            (None, Some(q)) => q.clone(),
            (None, None) => continue,
        };
        c.index = i as u32;
        out.cpus.push(c);
    }
    out
}

/// Registers from an x86-64 `elf_prstatus` (`pr_reg` is a
/// `user_regs_struct`: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi
/// rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs).
fn prstatus_regs(desc: &[u8]) -> Option<CpuState> {
    let r = |i: u64| u64_at(desc, PRSTATUS_PR_REG + i * 8).ok();
    r(PR_REG_COUNT - 1)?;
    let g = |i: u64| r(i).unwrap_or(0);
    let sel = |i: u64| g(i) as u16;
    Some(CpuState {
        // rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15
        gpr: [
            g(10),
            g(5),
            g(11),
            g(12),
            g(13),
            g(14),
            g(4),
            g(19),
            g(9),
            g(8),
            g(7),
            g(6),
            g(3),
            g(2),
            g(1),
            g(0),
        ],
        rip: g(16),
        rflags: g(18),
        // cs, ds, es, fs, gs, ss
        selectors: [sel(17), sel(23), sel(24), sel(25), sel(26), sel(20)],
        fs_base: Some(g(21)),
        gs_base: Some(g(22)),
        ..CpuState::default()
    })
}

/// Registers from QEMU's `QEMUCPUState` version 1.
fn qemu_regs(desc: &[u8]) -> Option<CpuState> {
    let version = u32_at(desc, qcs::VERSION).ok()?;
    let size = u64::from(u32_at(desc, qcs::SIZE_FIELD).ok()?);
    if version != 1 || size < qcs::SIZE || (desc.len() as u64) < qcs::SIZE {
        return None;
    }
    let g = |off: u64| u64_at(desc, off).unwrap_or(0);
    // QEMU order: rax rbx rcx rdx rsi rdi rsp rbp r8..r15.
    let q = |i: u64| g(qcs::RAX + i * 8);
    let seg = |i: u64| qcs::SEGMENTS + i * qcs::SEGMENT_SIZE;
    let sel = |i: u64| u32_at(desc, seg(i)).unwrap_or(0) as u16;
    let base = |i: u64| g(seg(i) + qcs::SEGMENT_BASE);
    let cr = |i: u64| Some(g(qcs::CR + i * 8));
    Some(CpuState {
        index: 0,
        gpr: [
            q(0),
            q(1),
            q(2),
            q(3),
            q(4),
            q(5),
            q(7),
            q(6),
            q(8),
            q(9),
            q(10),
            q(11),
            q(12),
            q(13),
            q(14),
            q(15),
        ],
        rip: g(qcs::RIP),
        rflags: g(qcs::RFLAGS),
        // QEMU order cs ds es fs gs ss is ours too.
        selectors: [sel(0), sel(1), sel(2), sel(3), sel(4), sel(5)],
        fs_base: Some(base(3)),
        gs_base: Some(base(4)),
        kernel_gs_base: Some(g(qcs::KERNEL_GS_BASE)),
        cr0: cr(0),
        cr2: cr(2),
        cr3: cr(3),
        cr4: cr(4),
        efer: None,
    })
}
