//! A minimal reader for QEMU's ELF cores, independent of `hangscope-dump`,
//! so the capture tests check the bytes QEMU wrote with their own eyes:
//! `PT_LOAD` segments (by `p_paddr`), and per vCPU the `CORE`/NT_PRSTATUS
//! and `QEMU` (QEMUCPUState) notes.

use std::convert::TryInto;

/// One `PT_LOAD` segment.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub paddr: u64,
    pub offset: u64,
    pub filesz: u64,
}

/// Registers of one vCPU as the ELF notes give them.
#[derive(Debug, Clone, Default)]
pub struct NoteCpu {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15 (the CpuState order).
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    /// From NT_PRSTATUS.
    pub prstatus_fs_base: u64,
    pub prstatus_gs_base: u64,
    /// From the QEMU note: selector and base of cs, ds, es, fs, gs, ss.
    pub seg_selector: [u32; 6],
    pub seg_base: [u64; 6],
    pub cr: [u64; 5],
    pub kernel_gs_base: Option<u64>,
}

#[derive(Debug)]
pub struct ElfCore {
    pub data: Vec<u8>,
    pub loads: Vec<Load>,
    pub cpus: Vec<NoteCpu>,
}

fn u16_at(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(d[o..o + 2].try_into().unwrap())
}
fn u32_at(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().unwrap())
}
fn u64_at(d: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(d[o..o + 8].try_into().unwrap())
}

impl ElfCore {
    pub fn parse(data: Vec<u8>) -> ElfCore {
        assert_eq!(&data[..4], b"\x7fELF", "not an ELF file");
        assert_eq!(data[4], 2, "not ELF64");
        assert_eq!(u16_at(&data, 16), 4, "not ET_CORE");
        assert_eq!(u16_at(&data, 18), 62, "not EM_X86_64");
        let phoff = u64_at(&data, 32) as usize;
        let phentsize = u16_at(&data, 54) as usize;
        let phnum = u16_at(&data, 56) as usize;
        let mut loads = Vec::new();
        let mut prstatus: Vec<NoteCpu> = Vec::new();
        let mut qemu: Vec<Vec<u8>> = Vec::new();
        for i in 0..phnum {
            let p = phoff + i * phentsize;
            let ty = u32_at(&data, p);
            let offset = u64_at(&data, p + 8);
            let paddr = u64_at(&data, p + 24);
            let filesz = u64_at(&data, p + 32);
            match ty {
                1 => loads.push(Load {
                    paddr,
                    offset,
                    filesz,
                }),
                4 => {
                    let mut o = offset as usize;
                    let end = o + filesz as usize;
                    while o + 12 <= end {
                        let namesz = u32_at(&data, o) as usize;
                        let descsz = u32_at(&data, o + 4) as usize;
                        let nty = u32_at(&data, o + 8);
                        let name = &data[o + 12..o + 12 + namesz];
                        let desc_at = o + 12 + namesz.div_ceil(4) * 4;
                        let desc = &data[desc_at..desc_at + descsz];
                        if name.starts_with(b"CORE") && nty == 1 {
                            prstatus.push(parse_prstatus(desc));
                        } else if name.starts_with(b"QEMU") {
                            qemu.push(desc.to_vec());
                        }
                        o = desc_at + descsz.div_ceil(4) * 4;
                    }
                }
                _ => {}
            }
        }
        assert_eq!(
            prstatus.len(),
            qemu.len(),
            "one NT_PRSTATUS and one QEMU note per vCPU"
        );
        let cpus = prstatus
            .into_iter()
            .zip(qemu)
            .map(|(mut c, q)| {
                add_qemu_state(&mut c, &q);
                c
            })
            .collect();
        ElfCore { data, loads, cpus }
    }

    /// Bytes at physical address `paddr`, if a PT_LOAD holds them all.
    pub fn read_phys(&self, paddr: u64, len: usize) -> Option<&[u8]> {
        let l = self
            .loads
            .iter()
            .find(|l| paddr >= l.paddr && paddr + len as u64 <= l.paddr + l.filesz)?;
        let o = (l.offset + (paddr - l.paddr)) as usize;
        self.data.get(o..o + len)
    }
}

/// `elf_prstatus` on x86-64: 112 bytes of signal/pid/time fields, then
/// `pr_reg` (user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax
/// rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs).
fn parse_prstatus(desc: &[u8]) -> NoteCpu {
    let r = |i: usize| u64_at(desc, 112 + i * 8);
    let gpr = [
        r(10),
        r(5),
        r(11),
        r(12),
        r(13),
        r(14),
        r(4),
        r(19),
        r(9),
        r(8),
        r(7),
        r(6),
        r(3),
        r(2),
        r(1),
        r(0),
    ];
    NoteCpu {
        gpr,
        rip: r(16),
        rflags: r(18),
        prstatus_fs_base: r(21),
        prstatus_gs_base: r(22),
        ..NoteCpu::default()
    }
}

/// QEMUCPUState (target/i386/arch_dump.c, version 1): version, size, rax
/// rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags, then 10 segments of
/// {u32 selector, limit, flags, pad; u64 base} (cs ds es fs gs ss ldt tr
/// gdt idt), cr[5], and kernel_gs_base when `size` reaches it.
fn add_qemu_state(c: &mut NoteCpu, q: &[u8]) {
    assert_eq!(u32_at(q, 0), 1, "QEMUCPUState version");
    let size = u32_at(q, 4) as usize;
    let g = |i: usize| u64_at(q, 8 + i * 8);
    let qemu_gpr = [
        g(0),
        g(1),
        g(2),
        g(3),
        g(4),
        g(5),
        g(7),
        g(6),
        g(8),
        g(9),
        g(10),
        g(11),
        g(12),
        g(13),
        g(14),
        g(15),
    ];
    assert_eq!(qemu_gpr, c.gpr, "QEMU note and NT_PRSTATUS disagree");
    assert_eq!(g(16), c.rip, "QEMU note RIP");
    for s in 0..6 {
        let at = 152 + s * 24;
        c.seg_selector[s] = u32_at(q, at);
        c.seg_base[s] = u64_at(q, at + 16);
    }
    for i in 0..5 {
        c.cr[i] = u64_at(q, 392 + i * 8);
    }
    if size >= 440 {
        c.kernel_gs_base = Some(u64_at(q, 432));
    }
}
