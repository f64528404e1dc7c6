//! Rough speed figures: loading a large `.pdata` and walking stacks.
//! `cargo run -p hangscope-unwind --example measure`
use hangscope_unwind::synth::{FrameAt, FrameSpec, StackLayout, UnwindTableBuilder};
use hangscope_unwind::{Module, ModuleList, Reg, UnwindOptions, Unwinder};
use hangscope_x64::SparseMemory;
use std::time::Instant;

const BASE: u64 = 0xffff_f800_3000_0000;

fn main() {
    // An ntoskrnl-sized table: 50 000 functions of 0x40 bytes.
    let n: u32 = 50_000;
    let text = 0x1000u32;
    let xdata = text + n * 0x40;
    let mut b = UnwindTableBuilder::new(xdata);
    let spec = |i: u32| FrameSpec {
        pushes: vec![Reg::Rbx, Reg::Rsi][..(i % 3).min(2) as usize].to_vec(),
        alloc: 0x28 + 0x10 * (i % 5),
        ..FrameSpec::default()
    };
    for i in 0..n {
        b.function(text + i * 0x40, text + i * 0x40 + 0x40, spec(i));
    }
    let t = b.build().unwrap();
    let pdata = (xdata + t.xdata.len() as u32 + 0xfff) & !0xfff;
    let size = pdata + t.pdata.len() as u32 + 0x1000;
    let mut mem = SparseMemory::new();
    mem.write(BASE, &[0; 0x1000]);
    mem.write(BASE, b"MZ");
    mem.write_u32(BASE + 0x3c, 0x80);
    mem.write(BASE + 0x80, b"PE\0\0");
    mem.write(BASE + 0x84, &0x8664u16.to_le_bytes());
    mem.write(BASE + 0x94, &0xf0u16.to_le_bytes());
    mem.write(BASE + 0x98, &0x20bu16.to_le_bytes());
    mem.write_u32(BASE + 0x98 + 56, size);
    mem.write_u32(BASE + 0x98 + 108, 16);
    mem.write_u32(BASE + 0x98 + 112 + 24, pdata);
    mem.write_u32(BASE + 0x98 + 112 + 28, t.pdata.len() as u32);
    mem.write(BASE + u64::from(text), &vec![0xcc; (n * 0x40) as usize]);
    mem.write(BASE + u64::from(xdata), &t.xdata);
    mem.write(BASE + u64::from(pdata), &t.pdata);
    let modules = ModuleList::new(vec![Module::new(BASE, u64::from(size), "big.sys")]);

    let t0 = Instant::now();
    let mut u = Unwinder::new();
    let image = u.image(&mem, &modules.modules()[0]).unwrap();
    println!(
        "load .pdata: {} entries in {:?}",
        image.pdata.kept,
        t0.elapsed()
    );

    // A 24-frame stack through random functions.
    let frames: Vec<FrameAt> = (0..24u32)
        .map(|k| {
            let i = (k * 7919) % n;
            FrameAt {
                rip: BASE + u64::from(text + i * 0x40 + 0x20),
                spec: spec(i),
            }
        })
        .collect();
    let layout = StackLayout::build(&frames, 0xffff_d000_4000_6000).unwrap();
    for &(a, v) in &layout.words {
        mem.write_u64(a, v);
    }
    let opts = UnwindOptions::default();
    let s = u.unwind(&mem, &modules, layout.start, &opts);
    assert_eq!(s.frames.len(), 24, "{:?}", s.stop);
    let runs = 20_000;
    let t0 = Instant::now();
    for _ in 0..runs {
        let s = u.unwind(&mem, &modules, layout.start, &opts);
        assert_eq!(s.frames.len(), 24);
    }
    let per = t0.elapsed() / runs;
    println!("walk 24 frames (caches warm): {per:?} per stack");
}
