//! vCPU registers from QEMU's `info registers -a`.
//!
//! QMP has no command for the full CPU state; the human monitor's
//! `info registers -a` prints every vCPU's general, segment and control
//! registers and EFER. It does not print the swapped-out kernel GS base
//! (an ELF core's QEMU note has it), so that stays `None`: nothing is
//! invented.

use hangscope_dump::CpuState;
use std::collections::HashMap;

/// Registers by the names QEMU prints (`RAX`, `CR3`, ...).
type Registers = HashMap<String, u64>;
/// Segment registers by name: selector and base.
type Segments = HashMap<String, (u16, u64)>;

/// Every vCPU in `info registers -a` output, in the order QEMU prints
/// them (CPU#0 first). A 32-bit or real-mode CPU's `EAX`.. fill the low
/// halves.
pub fn parse_info_registers(text: &str) -> Vec<CpuState> {
    let mut blocks: Vec<(Registers, Segments)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("CPU#") {
            blocks.push(Default::default());
            continue;
        }
        if blocks.is_empty() {
            // `info registers` without -a: one CPU, no header.
            blocks.push(Default::default());
        }
        let Some((regs, segs)) = blocks.last_mut() else {
            continue;
        };
        let seg = ["ES", "CS", "SS", "DS", "FS", "GS"]
            .into_iter()
            .find(|s| line.starts_with(&format!("{s} =")));
        if let Some(s) = seg {
            let mut it = line[4..].split_whitespace();
            let sel = it.next().and_then(|v| u16::from_str_radix(v, 16).ok());
            let base = it.next().and_then(|v| u64::from_str_radix(v, 16).ok());
            if let (Some(sel), Some(base)) = (sel, base) {
                segs.insert(s.to_string(), (sel, base));
            }
            continue;
        }
        if line.starts_with("LDT=")
            || line.starts_with("TR =")
            || line.starts_with("GDT=")
            || line.starts_with("IDT=")
        {
            continue;
        }
        let line = line.replace(" =", "=");
        for tok in line.split_whitespace() {
            let Some((k, v)) = tok.split_once('=') else {
                continue;
            };
            let Ok(v) = u64::from_str_radix(v, 16) else {
                continue;
            };
            let k = match k {
                "EAX" | "EBX" | "ECX" | "EDX" | "ESI" | "EDI" | "EBP" | "ESP" | "EIP" => {
                    format!("R{}", &k[1..])
                }
                "EFL" => "RFL".to_string(),
                _ => k.to_string(),
            };
            regs.insert(k, v);
        }
    }
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, (regs, segs))| {
            let r = |n: &str| regs.get(n).copied();
            let gpr = [
                "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8", "R9", "R10", "R11",
                "R12", "R13", "R14", "R15",
            ]
            .map(|n| r(n).unwrap_or(0));
            let sel = |s: &str| segs.get(s).map_or(0, |v| v.0);
            CpuState {
                index: i as u32,
                gpr,
                rip: r("RIP").unwrap_or(0),
                rflags: r("RFL").unwrap_or(0),
                selectors: ["CS", "DS", "ES", "FS", "GS", "SS"].map(sel),
                fs_base: segs.get("FS").map(|v| v.1),
                gs_base: segs.get("GS").map(|v| v.1),
                kernel_gs_base: None,
                cr0: r("CR0"),
                cr2: r("CR2"),
                cr3: r("CR3"),
                cr4: r("CR4"),
                efer: r("EFER"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_and_reset_cpus_parse() {
        let text = "CPU#0\nRAX=0000000000000001 RBX=0000000000000002 RCX=0000000000000003 RDX=0000000000000004\n\
RSI=0000000000000005 RDI=0000000000000006 RBP=0000000000000007 RSP=fffff80000080000\n\
R8 =0000000000000008 R9 =0000000000000009 R10=000000000000000a R11=000000000000000b\n\
R12=000000000000000c R13=000000000000000d R14=000000000000000e R15=000000000000000f\n\
RIP=fffff80000001234 RFL=00000046 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\n\
ES =0018 0000000000000000 ffffffff 00c09300 DPL=0 DS   [-WA]\n\
CS =0010 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]\n\
SS =0018 0000000000000000 ffffffff 00c09300 DPL=0 DS   [-WA]\n\
DS =0018 0000000000000000 ffffffff 00c09300 DPL=0 DS   [-WA]\n\
FS =0000 000000007ffde000 ffffffff 00c00000\n\
GS =0000 fffff80000400000 ffffffff 00c00000\n\
LDT=0000 0000000000000000 0000ffff 00008200 DPL=0 LDT\n\
TR =0000 0000000000000000 0000ffff 00008b00 DPL=0 TSS64-busy\n\
GDT=     0000000000001000 0000001f\n\
IDT=     0000000000000000 0000ffff\n\
CR0=80000011 CR2=0000000000000000 CR3=0000000000300000 CR4=00000020\n\
EFER=0000000000000d00\n\
CPU#1\nEAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1\n\
EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\n\
CS =f000 ffff0000 0000ffff 00009b00\nCR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000\n";
        let cpus = parse_info_registers(text);
        assert_eq!(cpus.len(), 2);
        let c = &cpus[0];
        assert_eq!(c.gpr[0], 1);
        assert_eq!(c.gpr[7], 0xfffff80000080000);
        assert_eq!(c.gpr[8], 8);
        assert_eq!(c.gpr[15], 0xf);
        assert_eq!(c.rip, 0xfffff80000001234);
        assert_eq!(c.rflags, 0x46);
        assert_eq!(c.selectors, [0x10, 0x18, 0x18, 0, 0, 0x18]);
        assert_eq!(c.gs_base, Some(0xfffff80000400000));
        assert_eq!(c.fs_base, Some(0x7ffde000));
        assert_eq!(c.cr3, Some(0x300000));
        assert_eq!(c.efer, Some(0xd00));
        assert_eq!(c.kernel_gs_base, None);
        let r = &cpus[1];
        assert_eq!(r.index, 1);
        assert_eq!(r.rip, 0xfff0);
        assert_eq!(r.gpr[3], 0x60fb1);
        assert_eq!(r.selectors[0], 0xf000);
        assert_eq!(r.cr0, Some(0x60000010));
    }
}
