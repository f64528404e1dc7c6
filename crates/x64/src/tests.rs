//! Hand-built page tables in a [`VecMemory`].

use crate::paging::*;
use crate::*;
use hangscope_dump::VecMemory;

const DTB: u64 = 0x10_0000;
const K: u64 = 0xFFFF_F800_0000_0000;

/// A tiny page-table builder: tables are allocated from `next`.
struct Tables {
    mem: VecMemory,
    next: u64,
}

impl Tables {
    fn new() -> Self {
        let mut mem = VecMemory::new();
        mem.add_page(DTB / PAGE_SIZE);
        Tables {
            mem,
            next: DTB + PAGE_SIZE,
        }
    }

    fn alloc(&mut self) -> u64 {
        let p = self.next;
        self.next += PAGE_SIZE;
        self.mem.add_page(p / PAGE_SIZE);
        p
    }

    /// The table at `level` for `va`, created as needed; returns its address.
    fn table(&mut self, va: u64, level: u8) -> u64 {
        let mut table = DTB;
        for l in ((level + 1)..=4).rev() {
            let at = table + table_index(va, l) * 8;
            let mut b = [0u8; 8];
            self.mem.read(PhysAddr(at), &mut b).unwrap();
            let e = u64::from_le_bytes(b);
            table = if e & PRESENT != 0 {
                e & ADDR_MASK
            } else {
                let t = self.alloc();
                self.mem.write_u64(PhysAddr(at), t | 0x3);
                t
            };
        }
        table
    }

    /// Set the raw entry at `level` for `va`.
    fn set(&mut self, va: u64, level: u8, entry: u64) {
        let t = self.table(va, level);
        self.mem
            .write_u64(PhysAddr(t + table_index(va, level) * 8), entry);
    }

    fn map4k(&mut self, va: u64, pa: u64) {
        self.set(va, 1, pa | 0x3);
    }

    fn space(&self) -> AddressSpace<'_> {
        AddressSpace::new(&self.mem, Dtb(PhysAddr(DTB)))
    }
}

fn kind(r: Result<Translation, Fault>) -> FaultKind {
    r.unwrap_err().kind
}

#[test]
fn translates_every_page_size() {
    let mut t = Tables::new();
    t.map4k(K + 0x5000, 0x4_2000);
    t.set(K + 0x4000_0000, 2, 0x60_0000 | 0x83); // 2 MiB
    t.set(K + 0x80_0000_0000, 3, 0x4000_0000 | 0x83 | (1 << 12)); // 1 GiB, PAT bit
    let s = t.space();
    assert_eq!(
        s.translate(VirtAddr(K + 0x5123)).unwrap(),
        Translation {
            paddr: PhysAddr(0x4_2123),
            page_size: 0x1000
        }
    );
    assert_eq!(
        s.translate(VirtAddr(K + 0x4001_2345)).unwrap(),
        Translation {
            paddr: PhysAddr(0x61_2345),
            page_size: 0x20_0000
        }
    );
    assert_eq!(
        s.translate(VirtAddr(K + 0x80_1234_5678)).unwrap(),
        Translation {
            paddr: PhysAddr(0x5234_5678),
            page_size: 0x4000_0000
        }
    );
    // The 4 KiB page's data, through read_u64.
    t.mem.write_u64(PhysAddr(0x4_2010), 0xdead_beef);
    assert_eq!(
        t.space().read_u64(VirtAddr(K + 0x5010)).unwrap(),
        0xdead_beef
    );
    // PCID bits in CR3 are ignored.
    assert_eq!(Dtb::from_cr3(DTB | 0x5), Dtb(PhysAddr(DTB)));
}

#[test]
fn every_fault_kind() {
    let mut t = Tables::new();
    let pte = |t: &mut Tables, off: u64, e: u64| t.set(K + off, 1, e);
    pte(&mut t, 0x1000, 0x3_0000 | 0x800 | 0x80); // transition
    pte(&mut t, 0x2000, 0xFFFF_A800_0000_0400); // prototype
    pte(&mut t, 0x3000, 0x0000_1234_0000_0080); // page file offset
    pte(&mut t, 0x4000, 0x80); // demand zero: no page file offset
    pte(&mut t, 0x6000, 0x7_7000 | 0x3); // data page absent from memory
    t.set(K + 0x4000_0000, 2, 0x900_0000 | 0x3); // page table absent
    t.mem.write_u64(PhysAddr(DTB + 0x10 * 8), 0x20_0000 | 0x83); // PS in a PML4E
    let s = t.space();
    let at = |off: u64| s.translate(VirtAddr(K + off));
    // The architecture alone says nothing about a non-present entry's
    // other bits (Windows' meaning of them is tested in hangscope-nt).
    for (off, entry) in [
        (0x1000, 0x3_0000 | 0x880),
        (0x2000, 0xFFFF_A800_0000_0400),
        (0x3000, 0x0000_1234_0000_0080),
    ] {
        assert_eq!(kind(at(off)), FaultKind::NotPresent { level: 1, entry });
    }
    assert_eq!(
        kind(at(0x4000)),
        FaultKind::NotPresent {
            level: 1,
            entry: 0x80
        }
    );
    assert_eq!(
        kind(at(0x5000)),
        FaultKind::NotPresent { level: 1, entry: 0 }
    );
    assert_eq!(
        kind(s.translate(VirtAddr(0x1000))),
        FaultKind::NotPresent { level: 4, entry: 0 }
    );
    assert_eq!(
        kind(s.translate(VirtAddr(0x0000_8000_0000_0000))),
        FaultKind::NonCanonical
    );
    assert_eq!(
        kind(at(0x4000_0000)),
        FaultKind::NotInDump {
            paddr: PhysAddr(0x900_0000),
            level: 1
        }
    );
    assert_eq!(
        kind(s.translate(VirtAddr(0x10 << 39))),
        FaultKind::Reserved {
            level: 4,
            entry: 0x20_0000 | 0x83
        }
    );
    // The data page: translation works, the read names the missing byte.
    assert!(at(0x6000).is_ok());
    let e = s.read_u64(VirtAddr(K + 0x6008)).unwrap_err();
    assert_eq!(e.addr, VirtAddr(K + 0x6008));
    assert_eq!(
        e.kind,
        FaultKind::NotInDump {
            paddr: PhysAddr(0x7_7008),
            level: 0
        }
    );
    assert!(e.to_string().contains("not in the dump"), "{e}");
}

#[test]
fn a_large_page_partly_in_the_dump_names_the_missing_byte() {
    let mut t = Tables::new();
    t.set(K, 2, 0x60_0000 | 0x83); // 2 MiB page, only its first 4 KiB present
    t.mem.add_page(0x600);
    let s = t.space();
    let e = s.read_vec(VirtAddr(K + 0xFF0), 0x20, 0x100).unwrap_err();
    assert_eq!(e.addr, VirtAddr(K + 0x1000));
    assert_eq!(
        e.kind,
        FaultKind::NotInDump {
            paddr: PhysAddr(0x60_1000),
            level: 0
        }
    );
}

/// Test rules: bit 11 of a non-present entry means "still in RAM", bit 10
/// a prototype; like an operating system's, but only for the walk's sake.
#[derive(Debug)]
struct InRamRules;

impl PteRules for InRamRules {
    fn not_present(&self, entry: u64, level: u8) -> NotPresent {
        if entry & 0x400 != 0 {
            NotPresent::Fault(FaultKind::Prototype { pte: entry })
        } else if entry & 0x800 != 0 {
            NotPresent::InRam(PhysAddr(entry & ADDR_MASK))
        } else {
            NotPresent::Fault(FaultKind::NotPresent { level, entry })
        }
    }
}

static IN_RAM: InRamRules = InRamRules;

#[test]
fn the_os_rules_decide_what_non_present_entries_mean() {
    let mut t = Tables::new();
    t.set(K, 1, 0x3_0000 | 0x800);
    t.mem.write_u64(PhysAddr(0x3_0040), 42);
    let s = t.space();
    assert_eq!(
        s.read_u64(VirtAddr(K + 0x40)).unwrap_err().kind,
        FaultKind::NotPresent {
            level: 1,
            entry: 0x3_0800
        }
    );
    let s = s.with_rules(&IN_RAM);
    assert_eq!(s.read_u64(VirtAddr(K + 0x40)).unwrap(), 42);
    // A table in RAM behind a non-present PDE is walked through too.
    let pt = t.table(K + 0x20_0000, 1);
    t.set(K + 0x20_0000, 2, pt | 0x800);
    t.mem.write_u64(PhysAddr(pt), 0x3_0000 | 0x3);
    let s = t.space().with_rules(&IN_RAM);
    assert_eq!(s.read_u64(VirtAddr(K + 0x20_0040)).unwrap(), 42);
    t.set(K + 0x1000, 1, 0x3_0000 | 0xC00);
    let s = t.space().with_rules(&IN_RAM);
    assert_eq!(
        s.read_u64(VirtAddr(K + 0x1000)).unwrap_err().name(),
        "Prototype"
    );
}

#[test]
fn reads_cross_pages_and_stop_at_the_first_fault() {
    let mut t = Tables::new();
    // Two adjacent virtual pages on non-adjacent physical pages.
    t.map4k(K, 0x8_0000);
    t.map4k(K + 0x1000, 0x5_0000);
    t.mem.write(PhysAddr(0x8_0FFC), &[1, 2, 3, 4]);
    t.mem.write(PhysAddr(0x5_0000), &[5, 6, 7, 8]);
    let s = t.space();
    let mut b = [0u8; 8];
    s.read(VirtAddr(K + 0xFFC), &mut b).unwrap();
    assert_eq!(b, [1, 2, 3, 4, 5, 6, 7, 8]);
    let e = s.read_vec(VirtAddr(K + 0x1FFC), 8, 16).unwrap_err();
    assert_eq!(e.addr, VirtAddr(K + 0x2000));
    assert_eq!(e.kind, FaultKind::NotPresent { level: 1, entry: 0 });
    // Caps are checked before allocating.
    assert_eq!(
        s.read_vec(VirtAddr(K), u64::MAX, 1 << 20).unwrap_err().kind,
        FaultKind::TooLarge {
            len: u64::MAX,
            cap: 1 << 20
        }
    );
    // Strings: a C string ending at the last byte before an unmapped page.
    t.mem.write(PhysAddr(0x5_0FFD), b"hi\0");
    let s = t.space();
    assert_eq!(s.read_cstr(VirtAddr(K + 0x1FFD), 64).unwrap(), b"hi");
    assert_eq!(s.read_cstr(VirtAddr(K + 0xFFC), 3).unwrap(), [1, 2, 3]);
    let utf16: Vec<u8> = "Ab\u{e9}"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    // Written through the mapping: 2 bytes on one page, 4 on the next.
    t.mem.write(PhysAddr(0x8_0FFE), &utf16[..2]);
    t.mem.write(PhysAddr(0x5_0000), &utf16[2..]);
    let s = t.space();
    assert_eq!(s.read_utf16(VirtAddr(K + 0xFFE), 6).unwrap(), "Ab\u{e9}");
    assert_eq!(s.read_u16(VirtAddr(K + 0xFFE)).unwrap(), u16::from(b'A'));
    assert_eq!(s.read_u8(VirtAddr(K + 0xFFC)).unwrap(), 1);
    assert_eq!(s.read_u32(VirtAddr(K + 0xFFC)).unwrap(), 0x0041_0201);
}

#[test]
fn self_reference_maps_the_tables_and_never_loops() {
    let mut t = Tables::new();
    // Windows 7's self-map: PML4[0x1ED] points at the PML4.
    t.mem.write_u64(PhysAddr(DTB + 0x1ED * 8), DTB | 0x63);
    t.map4k(K, 0x9_0000);
    let s = t.space();
    // PML4 seen through the self-map four times = the PML4 page itself.
    let pxe_base = 0xFFFF_F6FB_7DBE_D000u64;
    assert_eq!(
        s.translate(VirtAddr(pxe_base)).unwrap().paddr,
        PhysAddr(DTB)
    );
    assert_eq!(
        s.read_u64(VirtAddr(pxe_base + 0x1ED * 8)).unwrap(),
        DTB | 0x63
    );
    // Walking the kernel half terminates and yields the page plus the
    // self-map's view of the tables.
    let pages: Vec<_> = s
        .iter_mapped(VirtAddr(0xFFFF_8000_0000_0000), VirtAddr(u64::MAX))
        .collect();
    assert!(pages.contains(&(
        VirtAddr(K),
        Translation {
            paddr: PhysAddr(0x9_0000),
            page_size: 0x1000
        }
    )));
    assert!(pages.iter().any(|(va, _)| *va == VirtAddr(pxe_base)));
    assert!(pages.len() < 64, "{}", pages.len());
}

#[test]
fn a_table_of_self_references_is_bounded_by_the_budget() {
    let mut mem = VecMemory::new();
    for i in 0..512u64 {
        mem.write_u64(PhysAddr(DTB + i * 8), DTB | 0x3);
    }
    let s = AddressSpace::new(&mem, Dtb(PhysAddr(DTB)));
    let mut it = s
        .iter_mapped(VirtAddr(0), VirtAddr(u64::MAX))
        .with_table_budget(100);
    // Every entry is present at every level: 2^36 pages. The budget of
    // 100 tables ends the walk after at most 100 leaf tables' worth.
    let n = it.by_ref().count();
    assert!(it.exhausted());
    assert!(n > 0 && n <= 100 * 512, "{n}");
    // Tables full of tables but no pages: the budget ends a walk that
    // yields nothing.
    let mut mem2 = VecMemory::new();
    for i in 0..512u64 {
        mem2.write_u64(PhysAddr(DTB + i * 8), 0x20_0000 | 0x3);
        mem2.write_u64(PhysAddr(0x20_0000 + i * 8), 0x30_0000 | 0x3);
    }
    mem2.add_page(0x300);
    let s = AddressSpace::new(&mem2, Dtb(PhysAddr(DTB)));
    let mut it = s
        .iter_mapped(VirtAddr(0), VirtAddr(u64::MAX))
        .with_table_budget(1000);
    assert_eq!(it.by_ref().count(), 0);
    assert!(it.exhausted());
}

#[test]
fn iter_mapped_lists_exactly_the_mapped_pages_in_order() {
    let mut t = Tables::new();
    t.map4k(K + 0x2000, 0x4_1000);
    t.map4k(K + 0x1000, 0x4_0000);
    t.set(K + 0x4000_0000, 2, 0x60_0000 | 0x83);
    t.set(K + 0x80_0000_0000, 3, 0x4000_0000 | 0x83);
    t.map4k(0x7FF_0000, 0x4_2000); // user half
    t.set(K + 0x6000, 1, 0x3_0000 | 0x800); // transition: not listed by default
                                            // A page table absent from the dump is skipped and counted.
    t.set(K + 0x100_0000_0000, 2, 0x900_0000 | 0x3);
    let s = t.space();
    let mut it = s.iter_mapped(VirtAddr(0xFFFF_8000_0000_0000), VirtAddr(u64::MAX));
    let got: Vec<_> = it
        .by_ref()
        .map(|(va, tr)| (va.0, tr.paddr.0, tr.page_size))
        .collect();
    assert_eq!(
        got,
        vec![
            (K + 0x1000, 0x4_0000, 0x1000),
            (K + 0x2000, 0x4_1000, 0x1000),
            (K + 0x4000_0000, 0x60_0000, 0x20_0000),
            (K + 0x80_0000_0000, 0x4000_0000, 0x4000_0000),
        ]
    );
    assert_eq!(it.missing_tables(), 1);
    // A sub-range starting mid-page lists the overlapping page.
    let sub: Vec<_> = s
        .iter_mapped(VirtAddr(K + 0x1800), VirtAddr(K + 0x2001))
        .map(|(va, _)| va.0)
        .collect();
    assert_eq!(sub, vec![K + 0x1000, K + 0x2000]);
    // The user half, and transition pages when asked.
    let user: Vec<_> = s
        .iter_mapped(VirtAddr(0), VirtAddr(0x0000_7FFF_FFFF_FFFF))
        .map(|(va, _)| va.0)
        .collect();
    assert_eq!(user, vec![0x7FF_0000]);
    let with_t = s
        .with_rules(&IN_RAM)
        .iter_mapped(VirtAddr(K), VirtAddr(K + 0x10000))
        .count();
    assert_eq!(with_t, 3);
}

/// A plausible PML4 at `pa` with its self-reference at `idx`.
fn pml4(mem: &mut VecMemory, pa: u64, idx: u64) {
    mem.add_page(pa / PAGE_SIZE);
    mem.write_u64(PhysAddr(pa + idx * 8), pa | 0x63);
    mem.write_u64(PhysAddr(pa + 0x1F0 * 8), 0x20_0000 | 0x63);
    mem.write_u64(PhysAddr(pa + 0x10 * 8), 0x21_0000 | 0x67);
}

#[test]
fn dtb_scan_finds_self_references_and_rejects_decoys() {
    let mut mem = VecMemory::new();
    mem.add_page(0x3FF); // top of memory at 4 MiB
    pml4(&mut mem, 0x18_7000, 0x1ED); // Windows 7
    pml4(&mut mem, 0x1A_A000, 0x12C); // Windows 10, randomised index
                                      // Decoy: two self-references.
    pml4(&mut mem, 0x5_0000, 0x1ED);
    mem.write_u64(PhysAddr(0x5_0000 + 0x1EE * 8), 0x5_0000 | 0x63);
    // Decoy: self-reference in the user half.
    pml4(&mut mem, 0x6_0000, 0x20);
    // Decoy: a large page (PS) present.
    pml4(&mut mem, 0x7_0000, 0x1ED);
    mem.write_u64(PhysAddr(0x7_0000 + 0x1F1 * 8), 0x80_0000 | 0xE3);
    // Decoy: self-reference but nothing else in the kernel half.
    mem.add_page(0x80);
    mem.write_u64(PhysAddr(0x8_0000 + 0x1ED * 8), 0x8_0000 | 0x63);
    // Decoy: an entry beyond the top of memory.
    pml4(&mut mem, 0x9_0000, 0x1ED);
    mem.write_u64(PhysAddr(0x9_0000 + 0x1F2 * 8), 0x1_0000_0000 | 0x63);
    // Decoy: user-accessible self-reference.
    pml4(&mut mem, 0xA_0000, 0x1ED);
    mem.write_u64(PhysAddr(0xA_0000 + 0x1ED * 8), 0xA_0000 | 0x67);
    let found = find_dtb_candidates(&mem);
    assert_eq!(
        found,
        vec![Dtb(PhysAddr(0x18_7000)), Dtb(PhysAddr(0x1A_A000))]
    );
    assert_eq!(validate_dtb(&mem, Dtb(PhysAddr(0x1A_A000))), Some(0x12C));
    assert_eq!(
        find_dtb_candidates_in(&mem, PhysAddr(0x18_8000), PhysAddr(0x40_0000)),
        vec![Dtb(PhysAddr(0x1A_A000))]
    );
    assert_eq!(
        find_dtb_candidates_in(&mem, PhysAddr(0), PhysAddr(0x1A_A000)),
        vec![Dtb(PhysAddr(0x18_7000))]
    );
    assert_eq!(validate_dtb(&mem, Dtb(PhysAddr(0x5_0000))), None);
    assert_eq!(validate_dtb(&mem, Dtb(PhysAddr(0xDEAD_0000))), None);
    assert!(find_dtb_candidates(&VecMemory::new()).is_empty());
}

#[test]
fn random_tables_never_panic_or_hang() {
    // Pages of random entries, many of them present and pointing back into
    // the same few pages: cycles everywhere.
    let mut x = 0xDEAD_BEEF_CAFE_F00Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20 {
        let mut mem = VecMemory::new();
        for i in 0..(8 * 512) {
            let r = next();
            // Frames 0..8 (and some absent ones), random low flag bits.
            let e = (r % 12) << 12 | (r >> 52) & 0xFFF | (r & (1 << 63));
            mem.write_u64(PhysAddr(i * 8), e);
        }
        for d in 0..8u64 {
            let s = AddressSpace::new(&mem, Dtb(PhysAddr(d * PAGE_SIZE)));
            for _ in 0..50 {
                let va = VirtAddr(canonical(next() & 0xFFFF_FFFF_FFFF));
                let _ = s.translate(va);
                let mut b = [0u8; 0x1800];
                let _ = s.read(va, &mut b);
                let _ = s.read_cstr(va, 100);
            }
            let n = s
                .iter_mapped(VirtAddr(0), VirtAddr(u64::MAX))
                .with_table_budget(200)
                .take(100_000)
                .count();
            assert!(n <= 100_000);
        }
        let _ = find_dtb_candidates(&mem);
    }
}

/// Counts every page-table or data access, to check how much a walk reads.
#[derive(Debug)]
struct Counting {
    inner: VecMemory,
    reads: std::sync::atomic::AtomicU64,
}

impl PhysicalMemory for Counting {
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), hangscope_dump::Error> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read(addr, buf)
    }
    fn page(&self, pfn: u64) -> Option<&[u8]> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.page(pfn)
    }
    fn ranges(&self) -> &[hangscope_dump::PhysRange] {
        self.inner.ranges()
    }
}

#[test]
fn walking_the_whole_address_space_reads_only_present_subtrees() {
    let mut t = Tables::new();
    t.map4k(K, 0x4_0000);
    t.map4k(0x1000, 0x4_1000);
    t.set(0xFFFF_8000_0000_0000, 2, 0x20_0000 | 0x83);
    let mem = Counting {
        inner: t.mem,
        reads: Default::default(),
    };
    let s = AddressSpace::new(&mem, Dtb(PhysAddr(DTB)));
    let n = s.iter_mapped(VirtAddr(0), VirtAddr(u64::MAX)).count();
    assert_eq!(n, 3);
    // 512 PML4 entries, then 512 entries of each table under the three
    // present PML4 entries' paths: about 512 * 10 reads, not 2^36.
    let reads = mem.reads.load(std::sync::atomic::Ordering::Relaxed);
    assert!(reads <= 512 * 10, "{reads}");
}

#[test]
fn sparse_memory_reports_the_failing_address() {
    let mut m = SparseMemory::new();
    m.write(0x1ff8, &[1; 8]);
    let mut buf = [0u8; 16];
    let e = m.read(VirtAddr(0x1ff8), &mut buf).unwrap_err();
    assert_eq!(e.addr, VirtAddr(0x2000));
    assert_eq!(e.kind, FaultKind::NotPresent { level: 1, entry: 0 });
    assert!(m.read(VirtAddr(u64::MAX - 3), &mut buf).is_err());
    // Typed reads and prefixes through the one trait.
    assert_eq!(m.read_u64(VirtAddr(0x1ff8)).unwrap(), 0x0101_0101_0101_0101);
    assert_eq!(m.read_prefix(VirtAddr(0x1ffc), 16), vec![1; 4]);
    assert_eq!(m.read_prefix(VirtAddr(0x3000), 16), Vec::<u8>::new());
    m.unmap_page(0x1ff8);
    assert!(m.read_u8(VirtAddr(0x1ff8)).is_err());
}
