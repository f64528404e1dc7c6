//! The ELF core QEMU writes for `dump-guest-memory` without paging (what
//! `virsh dump --memory-only` produces), byte for byte as Debian's QEMU
//! 7.2 (`1:7.2+dfsg-7+deb12u18`) writes it.
//!
//! Layout, observed on a dump of that QEMU and checked against QEMU's
//! `dump/dump.c` and `target/i386/arch_dump.c`:
//! - ELF64 header, `ET_CORE`, `EM_X86_64` (long-mode guest), `e_ehsize`
//!   **8**: QEMU 7.2 stores the size of a pointer there, not 64.
//! - Two section headers right after the ELF header (at 0x40): the null
//!   section and `.shstrtab`, whose 11 bytes (`\0.shstrtab\0`) are the
//!   last bytes of the file.
//! - Program headers at 0xC0: one `PT_NOTE`, then one `PT_LOAD` per RAM
//!   range in ascending order, with `p_vaddr == p_paddr` (guest physical),
//!   `p_filesz == p_memsz`, `p_flags` 0 and `p_align` 0.
//! - The notes, right after the program headers: one `CORE`/`NT_PRSTATUS`
//!   note per vCPU (`pr_pid` = CPU index + 1), then one `QEMU` note (type
//!   0, `QEMUCPUState` version 1) per vCPU.
//! - Memory right after the notes, each range at its `p_offset`, not
//!   page aligned.
//!
//! `QEMUCPUState` is the 0x1B8-byte version 1 layout that ends with
//! `kernel_gs_base` (QEMU 7.2 has it; older QEMU wrote 0x1B0 bytes).

use super::{ErrorKind, PageSink, PutLe};
use crate::image::{LabCpu, LabImage};

/// Size of the ELF64 header.
pub const EHDR_SIZE: usize = 64;
/// Size of one ELF64 section header.
pub const SHDR_SIZE: usize = 64;
/// Size of one ELF64 program header.
pub const PHDR_SIZE: usize = 56;
/// What QEMU 7.2 stores in `e_ehsize` (`sizeof` of a pointer).
pub const QEMU72_E_EHSIZE: u16 = 8;
/// `.shstrtab` contents.
pub const SHSTRTAB: &[u8; 11] = b"\0.shstrtab\0";
/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
pub const PT_NOTE: u32 = 4;
/// `NT_PRSTATUS`.
pub const NT_PRSTATUS: u32 = 1;
/// Size of x86-64 `elf_prstatus`.
pub const PRSTATUS_SIZE: usize = 0x150;
/// Offset of `pr_pid` in `elf_prstatus`.
pub const PRSTATUS_PID: usize = 0x20;
/// Offset of `pr_reg` (`user_regs_struct`) in `elf_prstatus`.
pub const PRSTATUS_REGS: usize = 0x70;
/// `QEMUCPUState.size`, and the `QEMU` notes' `n_descsz`.
pub const QEMU_CPU_STATE_SIZE: usize = 0x1B8;
/// `QEMUCPUState.version`.
pub const QEMU_CPU_STATE_VERSION: u32 = 1;

/// Offsets in `QEMUCPUState`.
pub mod qemu {
    /// rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8..r15 (u64 each).
    pub const GPRS: usize = 0x08;
    /// rip.
    pub const RIP: usize = 0x88;
    /// rflags.
    pub const RFLAGS: usize = 0x90;
    /// cs, ds, es, fs, gs, ss, ldt, tr, gdt, idt: `QEMUCPUSegment`
    /// {selector u32, limit u32, flags u32, pad u32, base u64}.
    pub const SEGMENTS: usize = 0x98;
    /// cr[0..5].
    pub const CR: usize = 0x188;
    /// kernel_gs_base.
    pub const KERNEL_GS_BASE: usize = 0x1B0;
}

/// Size in the file of one `CORE` note.
const CORE_NOTE_SIZE: usize = 12 + 8 + PRSTATUS_SIZE;
/// Size in the file of one `QEMU` note.
const QEMU_NOTE_SIZE: usize = 12 + 8 + QEMU_CPU_STATE_SIZE;

/// Writes the image as a QEMU ELF core. Returns the pages written.
pub(crate) fn write(image: &LabImage, sink: &mut PageSink) -> Result<u64, ErrorKind> {
    if image.cpus.is_empty() {
        return Err(ErrorKind::NoCpu);
    }
    let notes = notes(&image.cpus);
    let phnum = 1 + image.ram.len();
    let phoff = EHDR_SIZE + 2 * SHDR_SIZE;
    let notes_off = phoff + phnum * PHDR_SIZE;
    let mem_off = (notes_off + notes.len()) as u64;
    let shstrtab_off = mem_off + image.ram_size();

    let mut head = vec![0u8; notes_off];
    // ELF header.
    head.put_bytes(0, b"\x7fELF");
    head[4] = 2; // ELFCLASS64
    head[5] = 1; // ELFDATA2LSB
    head[6] = 1; // EV_CURRENT
    head.put_u16(16, 4); // ET_CORE
    head.put_u16(18, 62); // EM_X86_64
    head.put_u32(20, 1); // e_version
    head.put_u64(24, 0); // e_entry
    head.put_u64(32, phoff as u64);
    head.put_u64(40, EHDR_SIZE as u64); // e_shoff
    head.put_u32(48, 0); // e_flags
    head.put_u16(52, QEMU72_E_EHSIZE);
    head.put_u16(54, PHDR_SIZE as u16);
    // At most 1 + MAX ranges: the builder gives a handful; refuse rather
    // than wrap (QEMU would switch to PN_XNUM, which we do not mimic).
    let phnum16 = u16::try_from(phnum).map_err(|_| ErrorKind::TooManyRuns {
        runs: image.ram.len(),
        max: 0xFFFE,
    })?;
    if phnum16 == 0xFFFF {
        return Err(ErrorKind::TooManyRuns {
            runs: image.ram.len(),
            max: 0xFFFE,
        });
    }
    head.put_u16(56, phnum16);
    head.put_u16(58, SHDR_SIZE as u16);
    head.put_u16(60, 2); // e_shnum
    head.put_u16(62, 1); // e_shstrndx
                         // Section 0 is all zeros; section 1 is .shstrtab.
    let sh1 = EHDR_SIZE + SHDR_SIZE;
    head.put_u32(sh1, 1); // sh_name: ".shstrtab"
    head.put_u32(sh1 + 4, 3); // SHT_STRTAB
    head.put_u64(sh1 + 24, shstrtab_off);
    head.put_u64(sh1 + 32, SHSTRTAB.len() as u64);
    // PT_NOTE.
    head.put_u32(phoff, PT_NOTE);
    head.put_u64(phoff + 8, notes_off as u64);
    head.put_u64(phoff + 32, notes.len() as u64);
    head.put_u64(phoff + 40, notes.len() as u64);
    // PT_LOADs.
    let mut file_off = mem_off;
    for (i, &(start, len)) in image.ram.iter().enumerate() {
        let ph = phoff + (1 + i) * PHDR_SIZE;
        head.put_u32(ph, PT_LOAD);
        head.put_u64(ph + 8, file_off);
        head.put_u64(ph + 16, start); // p_vaddr: QEMU 7.2 repeats paddr
        head.put_u64(ph + 24, start);
        head.put_u64(ph + 32, len);
        head.put_u64(ph + 40, len);
        file_off += len;
    }

    sink.set_total(image.ram_size());
    sink.write_bytes(&head)?;
    sink.write_bytes(&notes)?;
    let mut pages = 0;
    for &(start, len) in &image.ram {
        pages += sink.write_range(image, start, len)?;
    }
    sink.write_bytes(SHSTRTAB)?;
    Ok(pages)
}

/// The note segment: CORE notes for every CPU, then QEMU notes.
fn notes(cpus: &[LabCpu]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cpus.len() * (CORE_NOTE_SIZE + QEMU_NOTE_SIZE));
    for (i, cpu) in cpus.iter().enumerate() {
        let mut n = vec![0u8; CORE_NOTE_SIZE];
        n.put_u32(0, 5);
        n.put_u32(4, PRSTATUS_SIZE as u32);
        n.put_u32(8, NT_PRSTATUS);
        n.put_bytes(12, b"CORE\0");
        let d = 20;
        // QEMU numbers CPUs from 1 in pr_pid.
        n.put_u32(d + PRSTATUS_PID, i as u32 + 1);
        for (k, v) in user_regs(cpu).iter().enumerate() {
            n.put_u64(d + PRSTATUS_REGS + k * 8, *v);
        }
        out.extend_from_slice(&n);
    }
    for cpu in cpus {
        let state = qemu_cpu_state(cpu);
        let mut n = vec![0u8; 20];
        n.put_u32(0, 5);
        n.put_u32(4, QEMU_CPU_STATE_SIZE as u32);
        n.put_u32(8, 0);
        n.put_bytes(12, b"QEMU\0");
        out.extend_from_slice(&n);
        out.extend_from_slice(&state);
    }
    out
}

/// x86-64 `user_regs_struct` in its order: r15, r14, r13, r12, rbp, rbx,
/// r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags,
/// rsp, ss, fs_base, gs_base, ds, es, fs, gs.
fn user_regs(cpu: &LabCpu) -> [u64; 27] {
    let g = &cpu.gpr; // rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15
    let s = |i: usize| u64::from(cpu.selectors[i]); // cs, ds, es, fs, gs, ss
    [
        g[15],
        g[14],
        g[13],
        g[12],
        g[6],
        g[1],
        g[11],
        g[10],
        g[9],
        g[8],
        g[0],
        g[2],
        g[3],
        g[4],
        g[5],
        0, // orig_rax: QEMU writes 0
        cpu.rip,
        s(0),
        cpu.rflags,
        g[7],
        s(5),
        cpu.fs_base,
        cpu.gs_base,
        s(1),
        s(2),
        s(3),
        s(4),
    ]
}

/// The full `QEMUCPUState` (0x1B8 bytes) of `cpu`.
pub(crate) fn qemu_cpu_state(cpu: &LabCpu) -> [u8; QEMU_CPU_STATE_SIZE] {
    let mut s = [0u8; QEMU_CPU_STATE_SIZE];
    s.put_u32(0, QEMU_CPU_STATE_VERSION);
    s.put_u32(4, QEMU_CPU_STATE_SIZE as u32);
    let g = &cpu.gpr;
    // QEMUCPUState order: rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8..r15.
    let order = [
        g[0], g[1], g[2], g[3], g[4], g[5], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13],
        g[14], g[15],
    ];
    for (k, v) in order.iter().enumerate() {
        s.put_u64(qemu::GPRS + k * 8, *v);
    }
    s.put_u64(qemu::RIP, cpu.rip);
    s.put_u64(qemu::RFLAGS, cpu.rflags);
    // cs, ds, es, fs, gs, ss: LabCpu keeps the same order.
    for (k, sel) in cpu.selectors.iter().enumerate() {
        let base = match k {
            3 => cpu.fs_base,
            4 => cpu.gs_base,
            _ => 0,
        };
        let (limit, flags) = segment_cache(*sel, k == 0);
        put_segment(&mut s, k, u32::from(*sel), limit, flags, base);
    }
    // ldt (null), tr (Windows' KGDT64_SYS_TSS, busy 64-bit TSS), gdt,
    // idt: the lab does not model their bases.
    put_segment(&mut s, 6, 0, 0, 0x8200, 0);
    put_segment(&mut s, 7, 0x40, 0x67, 0x8b00, 0);
    put_segment(&mut s, 8, 0, 0x7f, 0, 0);
    put_segment(&mut s, 9, 0, 0xfff, 0, 0);
    let cr = [cpu.cr0, 0, cpu.cr2, cpu.cr3, cpu.cr4];
    for (k, v) in cr.iter().enumerate() {
        s.put_u64(qemu::CR + k * 8, *v);
    }
    s.put_u64(qemu::KERNEL_GS_BASE, cpu.kernel_gs_base);
    s
}

fn put_segment(s: &mut [u8], index: usize, selector: u32, limit: u32, flags: u32, base: u64) {
    let o = qemu::SEGMENTS + index * 24;
    s.put_u32(o, selector);
    s.put_u32(o + 4, limit);
    s.put_u32(o + 8, flags);
    s.put_u32(o + 12, 0);
    s.put_u64(o + 16, base);
}

/// QEMU's `SegmentCache` limit and flags (descriptor bits 8..23 in place)
/// for a flat long-mode segment with `selector`.
fn segment_cache(selector: u16, code: bool) -> (u32, u32) {
    if selector & !3 == 0 {
        return (0, 0);
    }
    const P: u32 = 1 << 15;
    const S: u32 = 1 << 12;
    const L: u32 = 1 << 21;
    const DB: u32 = 1 << 22;
    const G: u32 = 1 << 23;
    let dpl = u32::from(selector & 3) << 13;
    if code {
        // Execute/read, accessed; 64-bit.
        (0xffff_ffff, P | S | dpl | (0xb << 8) | L | G)
    } else {
        // Read/write, accessed; 32-bit default size.
        (0xffff_ffff, P | S | dpl | (0x3 << 8) | DB | G)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{le16, le32, le64, tiny_image};
    use super::super::{write, Format};
    use super::*;

    #[test]
    fn headers_match_qemu_72() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.elf");
        let image = tiny_image();
        let stats = write(&image, Format::Elf, &path, false).unwrap();
        let d = std::fs::read(&path).unwrap();
        assert_eq!(&d[0..8], b"\x7fELF\x02\x01\x01\x00");
        assert_eq!(le16(&d, 16), 4);
        assert_eq!(le16(&d, 18), 62);
        assert_eq!(le64(&d, 32), 0xC0); // e_phoff
        assert_eq!(le64(&d, 40), 0x40); // e_shoff
        assert_eq!(le16(&d, 52), 8); // e_ehsize as QEMU 7.2 writes it
        assert_eq!(le16(&d, 54), 56);
        let phnum = le16(&d, 56) as usize;
        assert_eq!(phnum, 1 + image.ram.len());
        assert_eq!(le16(&d, 60), 2);
        assert_eq!(le16(&d, 62), 1);
        // PT_NOTE first, right after the program headers.
        let notes_off = 0xC0 + phnum * 56;
        assert_eq!(le32(&d, 0xC0), PT_NOTE);
        assert_eq!(le64(&d, 0xC8), notes_off as u64);
        let ncpu = image.cpus.len();
        let notes_len = ncpu * (0x164 + 0x1CC);
        assert_eq!(le64(&d, 0xE0), notes_len as u64);
        // PT_LOADs ascending, paddr == vaddr, filesz == memsz, back to back.
        let mut off = (notes_off + notes_len) as u64;
        for (i, &(start, len)) in image.ram.iter().enumerate() {
            let ph = 0xC0 + (i + 1) * 56;
            assert_eq!(le32(&d, ph), PT_LOAD);
            assert_eq!(le32(&d, ph + 4), 0);
            assert_eq!(le64(&d, ph + 8), off);
            assert_eq!(le64(&d, ph + 16), start);
            assert_eq!(le64(&d, ph + 24), start);
            assert_eq!(le64(&d, ph + 32), len);
            assert_eq!(le64(&d, ph + 40), len);
            assert_eq!(le64(&d, ph + 48), 0);
            off += len;
        }
        // .shstrtab closes the file.
        assert_eq!(le64(&d, 0x80 + 24), off);
        assert_eq!(&d[off as usize..], SHSTRTAB);
        assert_eq!(stats.file_size, off + 11);
        // Notes: CORE per CPU, then QEMU per CPU.
        let mut n = notes_off;
        for (i, cpu) in image.cpus.iter().enumerate() {
            assert_eq!(le32(&d, n), 5);
            assert_eq!(le32(&d, n + 4), 0x150);
            assert_eq!(le32(&d, n + 8), 1);
            assert_eq!(&d[n + 12..n + 17], b"CORE\0");
            assert_eq!(le32(&d, n + 20 + 0x20), i as u32 + 1);
            let regs = n + 20 + 0x70;
            assert_eq!(le64(&d, regs), cpu.gpr[15]); // r15
            assert_eq!(le64(&d, regs + 10 * 8), cpu.gpr[0]); // rax
            assert_eq!(le64(&d, regs + 16 * 8), cpu.rip);
            assert_eq!(le64(&d, regs + 19 * 8), cpu.gpr[7]); // rsp
            assert_eq!(le64(&d, regs + 22 * 8), cpu.gs_base);
            n += 0x164;
        }
        for cpu in &image.cpus {
            assert_eq!(le32(&d, n), 5);
            assert_eq!(le32(&d, n + 4), 0x1B8);
            assert_eq!(le32(&d, n + 8), 0);
            assert_eq!(&d[n + 12..n + 17], b"QEMU\0");
            let s = n + 20;
            assert_eq!(le32(&d, s), 1);
            assert_eq!(le32(&d, s + 4), 0x1B8);
            assert_eq!(le64(&d, s + 8), cpu.gpr[0]);
            assert_eq!(le64(&d, s + 0x38), cpu.gpr[7]); // rsp before rbp
            assert_eq!(le64(&d, s + 0x88), cpu.rip);
            // gs segment: selector, base = KPCR.
            assert_eq!(le32(&d, s + 0x98 + 4 * 24), u32::from(cpu.selectors[4]));
            assert_eq!(le64(&d, s + 0x98 + 4 * 24 + 16), cpu.gs_base);
            assert_eq!(le64(&d, s + 0x188 + 3 * 8), cpu.cr3);
            assert_eq!(le64(&d, s + 0x1B0), cpu.kernel_gs_base);
            n += 0x1CC;
        }
        assert_eq!(n as u64, notes_off as u64 + notes_len as u64);
    }

    #[test]
    fn cpu_state_layout() {
        let image = tiny_image();
        let s = qemu_cpu_state(&image.cpus[0]);
        assert_eq!(le64(&s, qemu::KERNEL_GS_BASE), image.cpus[0].kernel_gs_base);
        // Kernel code segment: 64-bit, present, DPL 0.
        assert_eq!(le32(&s, qemu::SEGMENTS + 8), 0x00a0_9b00);
    }
}
