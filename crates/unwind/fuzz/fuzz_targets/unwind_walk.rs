//! Unwinding over arbitrary unwind data, code and stack: the input is the
//! tuple (start RIP offset: 2 bytes, frame register value offset: 2 bytes,
//! `.pdata` entry count: 1 byte, then `.pdata` (12 bytes per entry), 512
//! bytes of UNWIND_INFO area, 512 bytes of code, the rest is the stack).
//! The image headers are fixed and valid, so the fuzzer spends its time in
//! the unwind data.
#![no_main]

use hangscope_unwind::{Context, Module, ModuleList, Reg, StackRange, UnwindOptions, Unwinder};
use hangscope_x64::SparseMemory;
use libfuzzer_sys::fuzz_target;

const BASE: u64 = 0xffff_f800_4000_0000;
const SIZE: u32 = 0x4000;
const STACK: u64 = 0xffff_d000_5000_0000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let rip_off = u64::from(u16::from_le_bytes([data[0], data[1]])) % 0x1000;
    let fp_off = u64::from(u16::from_le_bytes([data[2], data[3]]));
    let n = usize::from(data[4]);
    let mut rest = &data[5..];
    let take = |rest: &mut &[u8], k: usize| {
        let k = k.min(rest.len());
        let (a, b) = rest.split_at(k);
        *rest = b;
        a.to_vec()
    };
    let pdata = take(&mut rest, n * 12);
    let xdata = take(&mut rest, 512);
    let code = take(&mut rest, 512);
    let stack = rest.to_vec();

    let mut mem = SparseMemory::new();
    mem.write(BASE, &[0; 0x1000]);
    mem.write(BASE, b"MZ");
    mem.write_u32(BASE + 0x3c, 0x80);
    mem.write(BASE + 0x80, b"PE\0\0");
    mem.write(BASE + 0x84, &0x8664u16.to_le_bytes());
    mem.write(BASE + 0x94, &0xf0u16.to_le_bytes());
    mem.write(BASE + 0x98, &0x20bu16.to_le_bytes());
    mem.write_u32(BASE + 0x98 + 56, SIZE);
    mem.write_u32(BASE + 0x98 + 108, 16);
    mem.write_u32(BASE + 0x98 + 112 + 24, 0x3000);
    mem.write_u32(BASE + 0x98 + 112 + 28, pdata.len() as u32);
    mem.write(BASE + 0x1000, &[0xcc; 0x1000]);
    mem.write(BASE + 0x1000, &code);
    mem.write(BASE + 0x2000, &xdata);
    mem.write(BASE + 0x3000, &pdata);
    mem.write(STACK, &stack);

    let modules = ModuleList::new(vec![Module::new(BASE, u64::from(SIZE), "fuzz.sys")]);
    let ctx = Context::new(BASE + 0x1000 + rip_off, STACK).with(Reg::Rbp, STACK + fp_off);
    let opts = UnwindOptions {
        max_frames: 64,
        stack_limits: Some(StackRange::new(STACK, STACK + 0x10_0000)),
        ..UnwindOptions::default()
    };
    let mut u = Unwinder::new();
    let s = u.unwind(&mem, &modules, ctx, &opts);
    assert!(s.frames.len() <= 64);
    let _ = u.probe_start(&mem, &modules, ctx, STACK, 0x80, &opts);
});
