//! Page walks over arbitrary memory: the input is the tuple (virtual
//! address: 8 bytes, DTB page number: 2 bytes, physical memory: the rest,
//! loaded at physical address 0).
#![no_main]

use hangscope_dump::{PhysAddr, VecMemory, PAGE_SIZE};
use hangscope_x64::{
    find_dtb_candidates, AddressSpace, Dtb, FaultKind, NotPresent, PteRules, VirtAddr,
    VirtualMemory,
};
use libfuzzer_sys::fuzz_target;

/// Rules that read every non-present entry with bit 11 through its frame,
/// so the walk's "still in RAM" path is fuzzed too.
#[derive(Debug)]
struct InRam;

impl PteRules for InRam {
    fn not_present(&self, entry: u64, level: u8) -> NotPresent {
        if entry & 0x800 != 0 {
            NotPresent::InRam(PhysAddr(entry))
        } else {
            NotPresent::Fault(FaultKind::NotPresent { level, entry })
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let va = u64::from_le_bytes(data[..8].try_into().unwrap());
    let dtb_page = u64::from(u16::from_le_bytes([data[8], data[9]]));
    let mut memory = VecMemory::new();
    memory.write(PhysAddr(0), &data[10..]);
    let space = AddressSpace::new(&memory, Dtb(PhysAddr(dtb_page * PAGE_SIZE)));
    for s in [space, space.with_rules(&InRam)] {
        let _ = s.translate(VirtAddr(va));
        let mut buf = [0u8; 0x1010];
        let _ = s.read(VirtAddr(va), &mut buf);
        let _ = s.read_cstr(VirtAddr(va), 300);
        let _ = s.read_utf16(VirtAddr(va), u64::from(data[0]) * 2);
        let pages = s
            .iter_mapped(VirtAddr(va), VirtAddr(u64::MAX))
            .with_table_budget(64)
            .take(4096)
            .count();
        let _ = pages;
    }
    let _ = find_dtb_candidates(&memory);
});
