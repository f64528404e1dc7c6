//! Open any bytes as a dump, then read around every range it claims.
//! Run: `cargo fuzz run dump_open` (seed corpus: the dumps the lab builds).
#![no_main]

use hangscope_dump::{Dump, PhysAddr, PAGE_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dump) = Dump::from_bytes(data.to_vec()) else {
        return;
    };
    let mut buf = vec![0u8; 2 * PAGE_SIZE as usize + 16];
    for r in dump.memory.ranges().iter().take(64) {
        let _ = dump.memory.read(r.start, &mut buf);
        let last = r.start.0.saturating_add(r.len).saturating_sub(8);
        let _ = dump.memory.read(PhysAddr(last), &mut buf);
        let _ = dump.memory.page(r.start.0 / PAGE_SIZE);
        let _ = dump.memory.has_page(last / PAGE_SIZE);
    }
    let _ = dump.memory.read(PhysAddr(u64::MAX - 4), &mut buf[..8]);
});
