//! Five-level paging (CR4.LA57) on hand-built tables in a [`VecMemory`].

use crate::paging::*;
use crate::*;
use hangscope_dump::VecMemory;

const PML5: u64 = 0x20_0000;

/// Tables for `levels` levels, allocated upwards from the top table.
struct Tables {
    mem: VecMemory,
    next: u64,
    levels: u8,
}

impl Tables {
    fn new(levels: u8) -> Self {
        let mut mem = VecMemory::new();
        mem.add_page(PML5 / PAGE_SIZE);
        Tables {
            mem,
            next: PML5 + PAGE_SIZE,
            levels,
        }
    }

    fn set(&mut self, va: u64, level: u8, entry: u64) {
        let mut table = PML5;
        for l in ((level + 1)..=self.levels).rev() {
            let at = table + table_index(va, l) * 8;
            let mut b = [0u8; 8];
            self.mem.read(PhysAddr(at), &mut b).unwrap();
            let e = u64::from_le_bytes(b);
            table = if e & PRESENT != 0 {
                e & ADDR_MASK
            } else {
                let t = self.next;
                self.next += PAGE_SIZE;
                self.mem.add_page(t / PAGE_SIZE);
                self.mem.write_u64(PhysAddr(at), t | 0x3);
                t
            };
        }
        self.mem
            .write_u64(PhysAddr(table + table_index(va, level) * 8), entry);
    }

    fn space(&self) -> AddressSpace<'_> {
        AddressSpace::new(&self.mem, Dtb(PhysAddr(PML5))).with_paging(PagingMode::FiveLevel)
    }
}

/// Linux's direct map base under 5-level paging (`__PAGE_OFFSET_BASE_L5`),
/// far outside the 48-bit canonical range.
const DIRECT_L5: u64 = 0xff11_0000_0000_0000;

#[test]
fn five_levels_translate_4k_2m_and_1g_pages() {
    let mut t = Tables::new(5);
    t.set(DIRECT_L5 + 0x5000, 1, 0x4_2000 | 0x3);
    t.set(DIRECT_L5 + 0x4000_0000, 2, 0x60_0000 | 0x83);
    t.set(DIRECT_L5 + 0x80_0000_0000, 3, 0x4000_0000 | 0x83);
    // The kernel image stays at the top of the space in both modes.
    t.set(0xffff_ffff_8100_0000, 2, 0x100_0000 | 0x83);
    let s = t.space();
    let tr = |va: u64| s.translate(VirtAddr(va)).unwrap();
    assert_eq!(
        (
            tr(DIRECT_L5 + 0x5123).paddr,
            tr(DIRECT_L5 + 0x5123).page_size
        ),
        (PhysAddr(0x4_2123), 0x1000)
    );
    assert_eq!(
        tr(DIRECT_L5 + 0x4001_2345),
        Translation {
            paddr: PhysAddr(0x61_2345),
            page_size: 0x20_0000
        }
    );
    assert_eq!(
        tr(DIRECT_L5 + 0x80_1234_5678),
        Translation {
            paddr: PhysAddr(0x5234_5678),
            page_size: 0x4000_0000
        }
    );
    assert_eq!(tr(0xffff_ffff_8100_0010).paddr, PhysAddr(0x100_0010));
    // The same tables read as four levels see the PML5 as a PML4, and the
    // 57-bit address is not canonical there.
    let four = AddressSpace::new(&t.mem, Dtb(PhysAddr(PML5)));
    assert_eq!(
        four.translate(VirtAddr(DIRECT_L5)).unwrap_err().kind,
        FaultKind::NonCanonical
    );
    // Listing the mapped pages walks five levels too.
    let pages: Vec<_> = s
        .iter_mapped(VirtAddr(DIRECT_L5), VirtAddr(DIRECT_L5 + (1 << 40)))
        .map(|(va, t)| (va.0, t.page_size))
        .collect();
    assert_eq!(
        pages,
        vec![
            (DIRECT_L5 + 0x5000, 0x1000),
            (DIRECT_L5 + 0x4000_0000, 0x20_0000),
            (DIRECT_L5 + 0x80_0000_0000, 0x4000_0000)
        ]
    );
}

#[test]
fn five_level_faults_name_the_pml5_entry() {
    let mut t = Tables::new(5);
    t.set(DIRECT_L5, 1, 0x4_2000 | 0x3);
    let s = t.space();
    // An address under an empty PML5 slot.
    let va = 0xff20_0000_0000_0000;
    let f = s.translate(VirtAddr(va)).unwrap_err();
    assert_eq!(f.kind, FaultKind::NotPresent { level: 5, entry: 0 });
    assert!(f.to_string().contains("PML5E not present"), "{f}");
    // 58 significant bits are not canonical even with five levels.
    assert_eq!(
        s.translate(VirtAddr(0x0100_0000_0000_0000))
            .unwrap_err()
            .kind,
        FaultKind::NonCanonical
    );
    // PS in a PML5 entry is reserved.
    t.set(0xff30_0000_0000_0000, 5, 0x83);
    assert!(matches!(
        t.space()
            .translate(VirtAddr(0xff30_0000_0000_0000))
            .unwrap_err()
            .kind,
        FaultKind::Reserved { level: 5, .. }
    ));
}

#[test]
fn paging_mode_from_cr4_and_canonical_forms() {
    assert_eq!(PagingMode::from_cr4(0x3006f0), PagingMode::FourLevel);
    assert_eq!(PagingMode::from_cr4(0x3016f0), PagingMode::FiveLevel);
    assert_eq!(PagingMode::default(), PagingMode::FourLevel);
    let five = PagingMode::FiveLevel;
    assert!(five.is_canonical(DIRECT_L5));
    assert!(!PagingMode::FourLevel.is_canonical(DIRECT_L5));
    assert_eq!(five.canonical(DIRECT_L5 & ((1 << 57) - 1)), DIRECT_L5);
    assert!(PagingMode::FourLevel.is_canonical(0xffff_8000_0000_0000));
}
