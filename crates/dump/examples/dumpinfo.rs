//! Print what a dump holds: `cargo run -p hangscope-dump --example dumpinfo -- FILE [OTHER]`.
//! With a second file, compare every page both hold (e.g. the ELF and the
//! kdump-zlib dump of the same paused guest).
use hangscope_dump::{Dump, PhysAddr, PAGE_SIZE};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        return Err("usage: dumpinfo FILE [OTHER]".into());
    };
    let dump = Dump::open(Path::new(path))?;
    println!("format: {:?}, {} bytes", dump.format, dump.file_size);
    let total: u64 = dump.memory.ranges().iter().map(|r| r.len).sum();
    println!(
        "{} ranges, {:#x} bytes present",
        dump.memory.ranges().len(),
        total
    );
    for r in dump.memory.ranges().iter().take(8) {
        println!("  {:#x}..{:#x}", r.start.0, r.start.0 + r.len);
    }
    for c in &dump.cpus {
        println!(
            "cpu {}: rip={:#x} rsp={:#x} cr3={:?} gs_base={:?} kernel_gs_base={:?}",
            c.index, c.rip, c.gpr[7], c.cr3, c.gs_base, c.kernel_gs_base
        );
    }
    println!("hints: {:?}", dump.hints);
    for n in dump.memory.notes() {
        println!("note: {n}");
    }
    if let Some(other) = args.get(1) {
        let other = Dump::open(Path::new(other))?;
        let (mut same, mut differ, mut missing) = (0u64, 0u64, 0u64);
        let mut a = vec![0u8; PAGE_SIZE as usize];
        let mut b = vec![0u8; PAGE_SIZE as usize];
        for r in dump.memory.ranges() {
            let mut p = r.start.0;
            while p + PAGE_SIZE <= r.start.0 + r.len {
                dump.memory.read(PhysAddr(p), &mut a)?;
                match other.memory.read(PhysAddr(p), &mut b) {
                    Ok(()) if a == b => same += 1,
                    Ok(()) => differ += 1,
                    Err(_) => missing += 1,
                }
                p += PAGE_SIZE;
            }
        }
        println!("compare: {same} pages equal, {differ} differ, {missing} missing in the other");
    }
    Ok(())
}
