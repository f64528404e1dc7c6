//! Every format through `Dump::from_bytes` / `Dump::open`.

use super::build::*;
use crate::*;

fn open(bytes: Vec<u8>) -> Dump {
    Dump::from_bytes(bytes).unwrap()
}

fn err(bytes: Vec<u8>) -> Error {
    Dump::from_bytes(bytes).unwrap_err()
}

/// Read page `pfn` through `read` and through `page` (when borrowed).
fn check_page(d: &Dump, pfn: u64) {
    let mut b = vec![0u8; 4096];
    d.memory.read(PhysAddr(pfn * 4096), &mut b).unwrap();
    assert_eq!(b, page_of(pfn), "pfn {pfn:#x}");
    if let Some(p) = d.memory.page(pfn) {
        assert_eq!(p, &page_of(pfn)[..]);
    }
    assert!(d.memory.has_page(pfn));
}

fn missing_at(d: &Dump, addr: u64, len: usize) -> PhysAddr {
    let mut b = vec![0u8; len];
    let e = d.memory.read(PhysAddr(addr), &mut b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotInDump);
    match e.at {
        Some(Location::Phys(p)) => p,
        other => panic!("{other:?}"),
    }
}

fn range(start: u64, len: u64) -> PhysRange {
    PhysRange {
        start: PhysAddr(start),
        len,
    }
}

#[test]
fn raw_image_is_identity_and_opens_through_mmap() {
    let mut f: Vec<u8> = Vec::new();
    for pfn in 0..4 {
        f.extend_from_slice(&page_of(pfn));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guest.raw");
    std::fs::write(&path, &f).unwrap();
    let d = Dump::open(&path).unwrap();
    assert_eq!(d.format, DumpFormat::Raw);
    assert_eq!(d.file_size, 0x4000);
    assert_eq!(d.memory.ranges(), &[range(0, 0x4000)]);
    (0..4).for_each(|p| check_page(&d, p));
    assert!(d.memory.page(3).is_some());
    // A read spanning the end names the first missing byte.
    assert_eq!(missing_at(&d, 0x3FF0, 0x20), PhysAddr(0x4000));
    assert!(d.cpus.is_empty());
    // Not a page multiple: garbage, not a tiny guest.
    assert_eq!(err(vec![1, 2, 3]).kind, ErrorKind::UnknownFormat);
    // Open errors carry the path.
    let e = Dump::open(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io(ref m) if m.contains("nope")));
    std::fs::write(dir.path().join("empty"), b"").unwrap();
    assert_eq!(
        Dump::open(&dir.path().join("empty")).unwrap_err().name(),
        "Truncated"
    );
}

#[test]
fn elf_core_maps_paddr_and_reads_qemu_cpu_notes() {
    let mut notes = Vec::new();
    // vCPU 0's notes agree; vCPU 1's PRSTATUS is from another register file.
    notes.extend(note("CORE", 1, &prstatus_matching(0xA000)));
    notes.extend(note("CORE", 1, &prstatus(0x2000)));
    notes.extend(note("QEMU", 0, &qemu_state(0xA000)));
    notes.extend(note("QEMU", 0, &qemu_state(0xB000)));
    notes.extend(note("VMCOREINFO", 0, b"OSRELEASE=hangscope\n\0"));
    let mut low = Vec::new();
    for pfn in 0..2 {
        low.extend(page_of(pfn));
    }
    let high: Vec<u8> = (0x100..0x102).flat_map(page_of).collect();
    // Unsorted loads, the second one shorter in the file than in memory.
    let loads = [
        Load {
            paddr: 0x10_0000,
            data: high,
            memsz: 0x3000,
        },
        Load {
            paddr: 0,
            data: low,
            memsz: 0x2000,
        },
    ];
    let d = open(elf(&loads, &notes));
    assert_eq!(d.format, DumpFormat::ElfCore);
    assert_eq!(
        d.memory.ranges(),
        &[range(0, 0x2000), range(0x10_0000, 0x2000)]
    );
    for p in [0, 1, 0x100, 0x101] {
        check_page(&d, p);
    }
    // p_memsz beyond p_filesz is not in the dump (never zero-filled).
    assert_eq!(missing_at(&d, 0x10_1FF8, 16), PhysAddr(0x10_2000));
    assert!(d.memory.notes().iter().any(|n| n.contains("p_filesz")));
    let disagree: Vec<_> = d
        .memory
        .notes()
        .iter()
        .filter(|n| n.contains("disagree"))
        .collect();
    assert_eq!(disagree.len(), 1, "{disagree:?}");
    assert!(disagree[0].starts_with("vCPU 1:"));
    assert_eq!(d.cpus.len(), 2);
    assert_eq!(d.cpus[0].gpr[CpuState::RSP], 0xA006);
    let c = &d.cpus[1];
    assert_eq!(c.index, 1);
    // The QEMU note's registers (rax..r15 = base + i in QEMU order, where
    // rsp is 6 and rbp 7).
    assert_eq!(c.gpr[0], 0xB000);
    assert_eq!(c.gpr[CpuState::RSP], 0xB006);
    assert_eq!(c.gpr[CpuState::RBP], 0xB007);
    assert_eq!(c.gpr[15], 0xB00F);
    assert_eq!(c.rip, 0xB100);
    assert_eq!(c.gs_base, Some(0xB000 + 0x5000));
    assert_eq!(c.fs_base, Some(0xB000 + 0x4000));
    assert_eq!(c.kernel_gs_base, Some(0xB300));
    assert_eq!(
        (c.cr0, c.cr2, c.cr3, c.cr4),
        (Some(0xB200), Some(0xB202), Some(0xB203), Some(0xB204))
    );
    assert_eq!(c.selectors, [0x10, 0x18, 0x20, 0x28, 0x30, 0x38]);
    assert_eq!(d.hints.vmcoreinfo.as_deref(), Some("OSRELEASE=hangscope\n"));
}

#[test]
fn kernel_gs_picks_the_kernel_half_value() {
    let kpcr = 0xFFFF_F800_0284_5000;
    let in_kernel = CpuState {
        gs_base: Some(kpcr),
        kernel_gs_base: Some(0x7FF_FFFD_E000),
        ..CpuState::default()
    };
    let in_user = CpuState {
        gs_base: Some(0x7FF_FFFD_E000),
        kernel_gs_base: Some(kpcr),
        ..CpuState::default()
    };
    assert_eq!(in_kernel.kernel_gs(), Some(kpcr));
    assert_eq!(in_user.kernel_gs(), Some(kpcr));
    assert_eq!(CpuState::default().kernel_gs(), None);
}

#[test]
fn elf_prstatus_alone_gives_user_regs_order() {
    let notes = note("CORE", 1, &prstatus(0x1000));
    let d = open(elf(&[], &notes));
    let c = &d.cpus[0];
    // pr_reg: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi
    // orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs.
    assert_eq!(c.gpr[0], 0x1000 + 10); // rax
    assert_eq!(c.gpr[1], 0x1000 + 5); // rbx
    assert_eq!(c.gpr[CpuState::RBP], 0x1000 + 4);
    assert_eq!(c.gpr[CpuState::RSP], 0x1000 + 19);
    assert_eq!(c.gpr[15], 0x1000); // r15
    assert_eq!(c.rip, 0x1000 + 16);
    assert_eq!(c.gs_base, Some(0x1000 + 22));
    assert_eq!(c.cr3, None);
    assert!(d.memory.ranges().is_empty());
}

#[test]
fn elf_overlapping_truncated_and_absurd_headers() {
    let a: Vec<u8> = (0..4).flat_map(page_of).collect();
    let b: Vec<u8> = vec![0xEE; 0x4000];
    // b overlaps a from 0x2000: a (listed first, starts first) keeps them.
    let loads = [
        Load {
            paddr: 0,
            data: a,
            memsz: 0x4000,
        },
        Load {
            paddr: 0x2000,
            data: b,
            memsz: 0x4000,
        },
    ];
    let f = elf(&loads, &[]);
    let d = open(f.clone());
    assert_eq!(d.memory.ranges(), &[range(0, 0x6000)]);
    check_page(&d, 3);
    let mut x = [0u8; 1];
    d.memory.read(PhysAddr(0x5000), &mut x).unwrap();
    assert_eq!(x[0], 0xEE);
    assert!(d.memory.notes().iter().any(|n| n.contains("overlap")));
    // Truncated: the last 0x1800 bytes are gone.
    let cut = open(f[..f.len() - 0x1800].to_vec());
    assert_eq!(cut.memory.ranges(), &[range(0, 0x4800)]);
    assert!(cut.memory.page(4).is_none());
    assert_eq!(missing_at(&cut, 0x4000, 0x1000), PhysAddr(0x4800));
    assert!(cut.memory.notes().iter().any(|n| n.contains("truncated")));
    // Headers that lie.
    let mut g = f.clone();
    g[0x38..0x3A].copy_from_slice(&0xFFFEu16.to_le_bytes());
    assert_eq!(err(g).name(), "Truncated");
    let mut g = f.clone();
    g[0x38..0x3A].copy_from_slice(&0xFFFFu16.to_le_bytes()); // PN_XNUM, no sections
    assert!(Dump::from_bytes(g).is_err());
    let mut g = f.clone();
    g[0x36..0x38].copy_from_slice(&8u16.to_le_bytes());
    assert_eq!(
        err(g).kind,
        ErrorKind::BadHeader {
            field: "e_phentsize",
            value: 8
        }
    );
    let mut g = f.clone();
    g[4] = 1;
    assert_eq!(err(g).name(), "Unsupported");
    let mut g = f.clone();
    g[0x12] = 40; // ARM
    assert_eq!(err(g).name(), "Unsupported");
    assert_eq!(err(f[..20].to_vec()).name(), "Truncated");
    // A note whose size runs past its segment is reported, not fatal.
    let mut bad_note = note("CORE", 1, &prstatus(0));
    bad_note[4..8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let d = open(elf(&[], &bad_note));
    assert!(d.cpus.is_empty());
    assert!(d.memory.notes().iter().any(|n| n.contains("past")));
}

#[test]
fn crash_dump_full_runs_and_header_hints() {
    // Runs listed out of address order.
    let d = open(crash_full(&[(0x100, 2), (0, 3), (0x10, 1)]));
    assert_eq!(d.format, DumpFormat::CrashDumpFull);
    assert_eq!(
        d.memory.ranges(),
        &[
            range(0, 0x3000),
            range(0x1_0000, 0x1000),
            range(0x10_0000, 0x2000)
        ]
    );
    for p in [0, 1, 2, 0x10, 0x100, 0x101] {
        check_page(&d, p);
    }
    assert_eq!(missing_at(&d, 0x2FFF, 2), PhysAddr(0x3000));
    let h = &d.hints;
    assert_eq!(h.dtb, Some(0x18_7000));
    assert_eq!(h.pfn_database, Some(0xFFFF_FA80_0000_0000));
    assert_eq!(h.ps_loaded_module_list, Some(0xFFFF_F800_0284_6E90));
    assert_eq!(h.ps_active_process_head, Some(0xFFFF_F800_0282_8B90));
    assert_eq!(h.kd_debugger_data_block, None); // "PAGE" fill = unset
    assert_eq!(h.number_processors, Some(2));
    assert_eq!(h.bugcheck, Some((0xE2, [0x100, 0x101, 0x102, 0x103])));
    assert_eq!(h.version, Some((0xF, 7601)));
    let c = &d.cpus[0];
    // CONTEXT order rax rcx rdx rbx rsp rbp rsi rdi r8..r15 = 0xC0 + i.
    assert_eq!(c.gpr[0], 0xC0);
    assert_eq!(c.gpr[1], 0xC3); // rbx
    assert_eq!(c.gpr[2], 0xC1); // rcx
    assert_eq!(c.gpr[CpuState::RSP], 0xC4);
    assert_eq!(c.gpr[CpuState::RBP], 0xC5);
    assert_eq!(c.gpr[4], 0xC6); // rsi
    assert_eq!(c.gpr[15], 0xCF);
    assert_eq!(c.rip, 0xFFFF_F800_0270_0000);
    assert_eq!(c.rflags, 0x282);
    assert_eq!((c.selectors[0], c.selectors[5]), (0x10, 0x18));
}

#[test]
fn crash_dump_bad_headers() {
    let f = crash_full(&[(0, 2)]);
    let mut g = f.clone();
    g[0x88..0x8C].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    assert_eq!(
        err(g).kind,
        ErrorKind::BadHeader {
            field: "NumberOfRuns",
            value: 0xFFFF_FFFF
        }
    );
    // Page counts that overflow.
    let mut g = f.clone();
    g[0xA0..0xA8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(err(g).name(), "BadHeader");
    // Truncated page data: what is there reads, the rest is missing.
    let cut = open(f[..0x2000 + 0x1800].to_vec());
    check_page(&cut, 0);
    assert_eq!(missing_at(&cut, 0x1000, 0x1000), PhysAddr(0x1800));
    // A truncated header.
    assert_eq!(err(f[..0x100].to_vec()).name(), "Truncated");
    let mut g = f.clone();
    g[4..8].copy_from_slice(b"DUMP");
    assert_eq!(err(g).name(), "Unsupported");
    let mut g = f.clone();
    g[0xF98..0xF9C].copy_from_slice(&2u32.to_le_bytes());
    let e = err(g);
    assert_eq!(e.name(), "Unsupported");
    assert_eq!(e.at, Some(Location::File(FileOffset(0xF98))));
    assert!(e.to_string().contains("DumpType 2"), "{e}");
    let mut g = f.clone();
    g[0x30..0x34].copy_from_slice(&0x14Cu32.to_le_bytes());
    assert_eq!(err(g).name(), "Unsupported");
}

#[test]
fn crash_dump_bitmap_pages_at_block_boundaries() {
    let pfns = [0, 1, 63, 64, 511, 512, 513, 1023, 1024, 1500, 2047];
    let d = open(crash_bitmap(2048, &pfns));
    assert_eq!(d.format, DumpFormat::CrashDumpBitmap);
    for &p in &pfns {
        check_page(&d, p);
    }
    for p in [2, 62, 65, 510, 514, 1022, 1025, 2046, 2048, 1 << 30] {
        assert!(d.memory.page(p).is_none(), "{p}");
        assert!(!d.memory.has_page(p));
    }
    assert_eq!(
        d.memory.ranges(),
        &[
            range(0, 0x2000),
            range(63 * 4096, 0x2000),
            range(511 * 4096, 0x3000),
            range(1023 * 4096, 0x2000),
            range(1500 * 4096, 0x1000),
            range(2047 * 4096, 0x1000),
        ]
    );
    // A read across two present pages and into a missing one.
    let mut b = vec![0u8; 0x3000];
    let e = d.memory.read(PhysAddr(511 * 4096), &mut b);
    assert!(e.is_ok());
    assert_eq!(missing_at(&d, 512 * 4096, 0x3000), PhysAddr(514 * 4096));
}

#[test]
fn crash_dump_bitmap_truncated_and_absurd() {
    let pfns: Vec<u64> = (0..10).map(|i| i * 3).collect();
    let f = crash_bitmap(40, &pfns);
    // Cut in the middle of the 8th stored page: 7 pages remain.
    let cut = open(f[..f.len() - 2 * 4096 - 100].to_vec());
    for &p in &pfns[..7] {
        check_page(&cut, p);
    }
    for &p in &pfns[7..] {
        assert!(!cut.memory.has_page(p));
    }
    assert_eq!(cut.memory.ranges().len(), 7);
    assert!(cut.memory.notes().iter().any(|n| n.contains("truncated")));
    // BitmapSize far beyond the file: an error, no allocation.
    let mut g = f.clone();
    g[0x2030..0x2038].copy_from_slice(&(1u64 << 39).to_le_bytes());
    assert_eq!(err(g).name(), "Truncated");
    let mut g = f.clone();
    g[0x2030..0x2038].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(err(g).name(), "BadHeader");
    // First page inside the bitmap.
    let mut g = f.clone();
    g[0x2020..0x2028].copy_from_slice(&0x2010u64.to_le_bytes());
    assert_eq!(err(g).name(), "BadHeader");
    // First page beyond the file.
    let mut g = f.clone();
    g[0x2020..0x2028].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(err(g).name(), "Truncated");
    let mut g = f.clone();
    g[0x2000..0x2004].copy_from_slice(b"XXXX");
    assert_eq!(err(g).name(), "BadHeader");
    // DumpType 6 uses the same layout.
    let mut g = f;
    g[0xF98..0xF9C].copy_from_slice(&6u32.to_le_bytes());
    check_page(&open(g), 27);
}

fn kdump_pages() -> Vec<(u64, Store)> {
    vec![
        (0, Store::Zlib),
        (1, Store::Plain),
        (2, Store::Zlib),
        (700, Store::Zlib),
        (701, Store::Plain),
    ]
}

fn check_kdump(d: &Dump, borrowed: bool) {
    assert_eq!(d.format, DumpFormat::Kdump);
    for (p, _) in kdump_pages() {
        check_page(d, p);
        // Twice: the second read of a zlib page comes from the cache.
        check_page(d, p);
    }
    assert_eq!(
        d.memory.ranges(),
        &[range(0, 0x3000), range(700 * 4096, 0x2000)]
    );
    // Plain pages are borrowed when one record holds them whole.
    assert_eq!(d.memory.page(1).is_some(), borrowed);
    assert!(d.memory.page(0).is_none(), "zlib pages are decoded");
    assert_eq!(missing_at(d, 0x2800, 0x1000), PhysAddr(0x3000));
    assert_eq!(d.cpus.len(), 1);
    assert_eq!(d.cpus[0].cr3, Some(0xA203));
    assert!(!d.memory.notes().iter().any(|n| n.contains("disagree")));
    assert_eq!(d.hints.vmcoreinfo.as_deref(), Some("X=1"));
}

fn kdump_notes() -> Vec<u8> {
    let mut n = note("CORE", 1, &prstatus_matching(0xA000));
    n.extend(note("QEMU", 0, &qemu_state(0xA000)));
    n.extend(note("VMCOREINFO", 0, b"X=1"));
    n
}

#[test]
fn kdump_plain_and_flattened() {
    let plain = kdump_plain(1000, &kdump_pages(), &kdump_notes());
    check_kdump(&open(plain.clone()), true);
    // Flattened in order, in small chunks that split the bitmap and the
    // compressed pages across records.
    let chunks = plain.len().div_ceil(1000);
    let order: Vec<usize> = (0..chunks).collect();
    check_kdump(&open(flatten(&plain, 1000, &order)), false);
    // Flattened out of order (QEMU writes the header last, for example).
    let n4k = plain.len().div_ceil(4096);
    let rev4k: Vec<usize> = (0..n4k).rev().collect();
    check_kdump(&open(flatten(&plain, 4096, &rev4k)), false);
    // An overlapping later write wins.
    let mut f = flatten(
        &plain,
        4096,
        &(0..plain.len().div_ceil(4096)).collect::<Vec<_>>(),
    );
    let end = f.len() - 16;
    f.truncate(end);
    // Re-write the plain page 701 (the last data in the file) with 0x5A.
    let last_page_data_off = plain.len() - 4096;
    f.extend_from_slice(&(last_page_data_off as i64).to_be_bytes());
    f.extend_from_slice(&4096i64.to_be_bytes());
    f.extend_from_slice(&[0x5A; 4096]);
    f.extend_from_slice(&(-1i64).to_be_bytes());
    f.extend_from_slice(&(-1i64).to_be_bytes());
    let d = open(f);
    assert_eq!(d.memory.page(701).unwrap(), &[0x5A; 4096][..]);
    assert!(d.memory.notes().iter().any(|n| n.contains("overlap")));
}

#[test]
fn kdump_bad_pages_are_typed_errors() {
    let pages = [(0, Store::Lzo), (1, Store::BadZlib), (2, Store::Plain)];
    let d = open(kdump_plain(64, &pages, &[]));
    let mut b = [0u8; 8];
    let e = d.memory.read(PhysAddr(0), &mut b).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Unsupported(ref m) if m.contains("lzo")),
        "{e}"
    );
    let e = d.memory.read(PhysAddr(0x1000), &mut b).unwrap_err();
    assert_eq!(e.name(), "BadData");
    assert_eq!(e.at, Some(Location::Phys(PhysAddr(0x1000))));
    check_page(&d, 2);
    assert!(d.cpus.is_empty());
}

#[test]
fn kdump_absurd_and_truncated_headers() {
    let plain = kdump_plain(64, &[(0, Store::Plain)], &[]);
    // max_mapnr_64 larger than the bitmap.
    let mut g = plain.clone();
    g[4096 + 96..4096 + 104].copy_from_slice(&(1u64 << 38).to_le_bytes());
    assert_eq!(err(g).name(), "BadHeader");
    let mut g = plain.clone();
    g[4096 + 96..4096 + 104].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(err(g).name(), "BadHeader");
    let mut g = plain.clone();
    g[428..432].copy_from_slice(&0x10000u32.to_le_bytes());
    assert_eq!(err(g).name(), "Unsupported");
    let mut g = plain.clone();
    g[436..440].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Dump::from_bytes(g).is_err());
    assert_eq!(err(plain[..300].to_vec()).name(), "Truncated");
    // Flattened, cut inside a record and without the end marker.
    let order: Vec<usize> = (0..plain.len().div_ceil(4096)).collect();
    let f = flatten(&plain, 4096, &order);
    let d = open(f[..f.len() - 100].to_vec());
    assert!(d.memory.notes().iter().any(|n| n.contains("truncated")));
    assert!(d.memory.read(PhysAddr(0), &mut [0u8; 8]).is_err());
    // A negative record size.
    let mut g = f.clone();
    g[4096 + 8..4096 + 16].copy_from_slice(&(-5i64).to_be_bytes());
    assert_eq!(err(g).name(), "BadHeader");
    // A flat header with no records at all.
    assert!(Dump::from_bytes(f[..4096].to_vec()).is_err());
}

#[test]
fn garbage_never_panics() {
    // A small deterministic generator (no rand dependency in the crate).
    let mut x = 0x1234_5678_9ABC_DEF0u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds: Vec<Vec<u8>> = vec![
        crash_full(&[(0, 2)]),
        crash_bitmap(64, &[1, 5]),
        elf(
            &[Load {
                paddr: 0,
                data: page_of(0),
                memsz: 4096,
            }],
            &kdump_notes(),
        ),
        kdump_plain(64, &[(0, Store::Zlib), (3, Store::Plain)], &kdump_notes()),
    ];
    for seed in &seeds {
        for _ in 0..300 {
            let mut f = seed.clone();
            for _ in 0..(next() % 8 + 1) {
                let i = (next() as usize) % f.len();
                f[i] = next() as u8;
            }
            if next() % 4 == 0 {
                let n = (next() as usize) % f.len();
                f.truncate(n);
            }
            if let Ok(d) = Dump::from_bytes(f) {
                let mut b = vec![0u8; 0x2100];
                for r in d.memory.ranges().iter().take(4) {
                    let _ = d.memory.read(r.start, &mut b);
                    let _ = d.memory.page(r.start.0 / 4096);
                }
            }
        }
    }
}

#[test]
fn kdump_pages_sharing_one_copy_decode_the_same() {
    // QEMU points every zero page's descriptor at one shared copy.
    let pages = [(0, Store::Zlib), (1, Store::Zlib), (2, Store::Zlib)];
    let mut f = kdump_plain(64, &pages, &[]);
    // Descriptors follow the header block, sub header and 2 bitmap blocks.
    let desc = 4 * 4096;
    let first: Vec<u8> = f[desc..desc + 24].to_vec();
    f[desc + 48..desc + 72].copy_from_slice(&first);
    let d = open(f);
    let mut b = vec![0u8; 4096];
    for pfn in [2, 0, 2, 1, 0] {
        d.memory.read(PhysAddr(pfn * 4096), &mut b).unwrap();
        let want = if pfn == 1 { 1 } else { 0 };
        assert_eq!(b, page_of(want), "pfn {pfn}");
    }
}

#[test]
fn windows_vmcoreinfo_header_fills_the_hints() {
    // What the virtio fwcfg driver hands QEMU: a prepared DUMP_HEADER64.
    let mut header = crash_header(1);
    put_u64(&mut header, 0x80, 0xFFFF_F800_0280_00A0); // KdDebuggerDataBlock
    let mut notes = note("CORE", 1, &prstatus_matching(0xA000));
    notes.extend(note("QEMU", 0, &qemu_state(0xA000)));
    notes.extend(note("VMCOREINFO", 0, &header));
    let want = |h: &KernelHints| {
        assert_eq!(h.dtb, Some(0x18_7000));
        assert_eq!(h.kd_debugger_data_block, Some(0xFFFF_F800_0280_00A0));
        assert_eq!(h.ps_active_process_head, Some(0xFFFF_F800_0282_8B90));
        assert_eq!(h.number_processors, Some(2));
        assert_eq!(h.version, Some((0xF, 7601)));
        // No crash happened: the prepared header's bug check means nothing.
        assert_eq!(h.bugcheck, None);
        assert_eq!(h.vmcoreinfo, None);
    };
    let d = open(elf(&[], &notes));
    want(&d.hints);
    assert!(d.notes().is_empty(), "{:?}", d.notes());
    let d = open(kdump_plain(64, &[(0, Store::Plain)], &notes));
    want(&d.hints);
    // A damaged header is reported, not fatal.
    let notes = note("VMCOREINFO", 0, b"PAGEDU64short");
    let d = open(elf(&[], &notes));
    assert_eq!(d.hints, KernelHints::default());
    assert!(d.notes().iter().any(|n| n.contains("VMCOREINFO")));
}
