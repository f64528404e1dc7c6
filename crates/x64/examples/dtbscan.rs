//! Find page-table bases in a dump and look for PE images in kernel space:
//! `cargo run -p hangscope-x64 --example dtbscan -- FILE`.
use hangscope_dump::Dump;
use hangscope_x64::{
    find_dtb_candidates, validate_dtb, AddressSpace, Dtb, VirtAddr, VirtualMemory,
};
use std::path::Path;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args().nth(1) else {
        return Err("usage: dtbscan FILE".into());
    };
    let t = Instant::now();
    let dump = Dump::open(Path::new(&path))?;
    println!("opened {:?} in {:?}", dump.format, t.elapsed());
    for c in &dump.cpus {
        if let Some(cr3) = c.cr3 {
            let dtb = Dtb::from_cr3(cr3);
            println!(
                "cpu {} cr3 {cr3:#x}: self-reference {:?}",
                c.index,
                validate_dtb(dump.memory.as_ref(), dtb)
            );
        }
    }
    let t = Instant::now();
    let found = find_dtb_candidates(dump.memory.as_ref());
    println!("{} DTB candidate(s) in {:?}", found.len(), t.elapsed());
    let t = Instant::now();
    let again = find_dtb_candidates(dump.memory.as_ref());
    println!("again (pages cached): {} in {:?}", again.len(), t.elapsed());
    let Some(&dtb) = found.first() else {
        return Ok(());
    };
    println!("first: {}", dtb.0);
    let space = AddressSpace::new(dump.memory.as_ref(), dtb);
    let t = Instant::now();
    let (mut pages, mut images) = (0u64, Vec::new());
    let mut it = space.iter_mapped(VirtAddr(0xFFFF_F800_0000_0000), VirtAddr(u64::MAX));
    for (va, tr) in it.by_ref() {
        pages += 1;
        // Every 4 KiB step of large pages too: images are 4 KiB aligned.
        let mut off = 0;
        while off < tr.page_size && images.len() < 10 {
            let at = VirtAddr(va.0 + off);
            if space.read_u16(at).ok() == Some(0x5A4D) {
                images.push(at);
            }
            off += 0x1000;
        }
    }
    println!(
        "{pages} mapped pages above fffff800`00000000 in {:?} ({} tables missing)",
        t.elapsed(),
        it.missing_tables()
    );
    for va in images {
        println!("  MZ at {va}");
    }
    Ok(())
}
