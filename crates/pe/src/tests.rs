//! Images built by hand in a [`SparseMemory`], sound and damaged.

use super::*;
use hangscope_x64::SparseMemory;

const BASE: u64 = 0xffff_f800_0280_0000;
const OPT: u64 = BASE + 0x80 + 24;

/// Headers with 16 data directories and one code section.
fn image(mem: &mut SparseMemory) {
    mem.write(BASE, &[0u8; 0x1000]);
    mem.write(BASE, b"MZ");
    mem.write_u32(BASE + 0x3c, 0x80);
    mem.write(BASE + 0x80, b"PE\0\0");
    mem.write(BASE + 0x84, &0x8664u16.to_le_bytes());
    mem.write(BASE + 0x86, &1u16.to_le_bytes());
    mem.write(BASE + 0x94, &0xf0u16.to_le_bytes());
    mem.write(OPT, &0x20bu16.to_le_bytes());
    mem.write_u32(OPT + 56, 0x80_0000);
    mem.write_u32(OPT + 108, 16);
    let sec = OPT + 0xf0;
    mem.write(sec, b".text\0\0\0");
    mem.write_u32(sec + 8, 0x1000);
    mem.write_u32(sec + 12, 0x1000);
    mem.write_u32(sec + 36, IMAGE_SCN_CNT_CODE);
}

fn dir(mem: &mut SparseMemory, index: u64, rva: u32, size: u32) {
    mem.write_u32(OPT + 112 + 8 * index, rva);
    mem.write_u32(OPT + 116 + 8 * index, size);
}

fn codeview(mem: &mut SparseMemory, pdb: &str) {
    dir(mem, 6, 0x2000, 28);
    let mut d = vec![0u8; 28];
    d[12..16].copy_from_slice(&2u32.to_le_bytes());
    d[16..20].copy_from_slice(&(24 + pdb.len() as u32 + 1).to_le_bytes());
    d[20..24].copy_from_slice(&0x3000u32.to_le_bytes());
    mem.write(BASE + 0x2000, &d);
    let mut cv = b"RSDS".to_vec();
    cv.extend_from_slice(&[
        0x13, 0x74, 0x9e, 0x33, 0x76, 0x35, 0x9c, 0x43, 0xbc, 0xdf, 0x7e, 0x02, 0x29, 0xda, 0x37,
        0x73,
    ]);
    cv.extend_from_slice(&1u32.to_le_bytes());
    cv.extend_from_slice(pdb.as_bytes());
    cv.push(0);
    mem.write(BASE + 0x3000, &cv);
}

#[test]
fn headers_sections_and_the_rsds_identity_in_symbol_server_order() {
    let mut m = SparseMemory::new();
    image(&mut m);
    codeview(&mut m, "ntkrnlmp.pdb");
    let pe = PeHeaders::read(&m, VirtAddr(BASE), u64::MAX).unwrap();
    assert_eq!(pe.size, 0x80_0000);
    assert_eq!(pe.machine, IMAGE_FILE_MACHINE_AMD64);
    assert_eq!(pe.directories.len(), 16);
    assert_eq!(pe.code_ranges(), vec![(0x1000, 0x2000)]);
    assert_eq!(pe.sections[0].name, ".text");
    let cv = pe.codeview(&m).expect("rsds");
    assert_eq!(cv.guid_string(), "339E74133576439CBCDF7E0229DA3773");
    assert_eq!(cv.age, 1);
    assert_eq!(cv.pdb_name, "ntkrnlmp.pdb");
    // The loader's size caps the header's.
    let pe = PeHeaders::read(&m, VirtAddr(BASE), 0x4000).unwrap();
    assert_eq!(pe.size, 0x4000);
}

#[test]
fn damaged_headers_are_errors_with_their_address() {
    let mut m = SparseMemory::new();
    image(&mut m);
    let e = PeHeaders::read(&m, VirtAddr(BASE + 0x10_0000), u64::MAX).unwrap_err();
    assert_eq!(e.name(), "Unreadable");
    for (at, bytes, name) in [
        (BASE, &b"ZM"[..], "BadDosSignature"),
        (
            BASE + 0x3c,
            &0xffff_fff0u32.to_le_bytes()[..],
            "BadNtHeaderOffset",
        ),
        (BASE + 0x3c, &0x10u32.to_le_bytes()[..], "BadNtHeaderOffset"),
        (BASE + 0x80, &b"NE\0\0"[..], "BadNtSignature"),
        (BASE + 0x94, &0x10u16.to_le_bytes()[..], "BadOptionalHeader"),
        (OPT, &0x10bu16.to_le_bytes()[..], "BadOptionalHeader"),
    ] {
        let mut d = m.clone();
        d.write(at, bytes);
        let e = PeHeaders::read(&d, VirtAddr(BASE), u64::MAX).unwrap_err();
        assert_eq!(e.name(), name, "{e}");
    }
    // e_lfanew past the loader's size.
    assert_eq!(
        PeHeaders::read(&m, VirtAddr(BASE), 0x40)
            .unwrap_err()
            .name(),
        "BadNtHeaderOffset"
    );
    // Garbage directory counts and sizes stay bounded.
    let mut d = m.clone();
    d.write_u32(OPT + 108, u32::MAX);
    dir(&mut d, 6, 0x2000, u32::MAX);
    let pe = PeHeaders::read(&d, VirtAddr(BASE), u64::MAX).unwrap();
    assert_eq!(pe.directories.len(), 16);
    assert!(pe.codeview(&d).is_none());
}

#[test]
fn exports_by_rva_bounded_and_checked() {
    let mut m = SparseMemory::new();
    image(&mut m);
    dir(&mut m, 0, 0x4000, 0x100);
    let e = BASE + 0x4000;
    m.write_u32(e + 20, 3); // NumberOfFunctions
    m.write_u32(e + 24, 4); // NumberOfNames
    m.write_u32(e + 28, 0x4100);
    m.write_u32(e + 32, 0x4200);
    m.write_u32(e + 36, 0x4300);
    for (i, (f, name, ord)) in [
        (0x1010u32, "HsFltSpin\0", 0u16),
        (0x1020, "HsFltWait\0", 1),
        (0x9000_0000, "OutOfImage\0", 2),
        (0, "BadOrdinal\0", 7),
    ]
    .iter()
    .enumerate()
    {
        let i = i as u64;
        if *ord < 3 {
            m.write_u32(BASE + 0x4100 + 4 * u64::from(*ord), *f);
        }
        m.write_u32(BASE + 0x4200 + 4 * i, 0x5000 + 0x20 * i as u32);
        m.write(BASE + 0x4300 + 2 * i, &ord.to_le_bytes());
        m.write(BASE + 0x5000 + 0x20 * i, name.as_bytes());
    }
    let pe = PeHeaders::read(&m, VirtAddr(BASE), u64::MAX).unwrap();
    let x = pe.exports(&m, ExportLimits::default());
    assert_eq!(
        x.into_iter().collect::<Vec<_>>(),
        vec![(0x1010, "HsFltSpin".into()), (0x1020, "HsFltWait".into())]
    );
    let x = pe.exports(
        &m,
        ExportLimits {
            max_names: 1,
            max_name_len: 256,
        },
    );
    assert_eq!(x.len(), 1);
}

#[test]
fn pdata_keeps_the_readable_pages_and_refuses_an_outside_directory() {
    let mut m = SparseMemory::new();
    image(&mut m);
    // 0x200 entries from 0x6f00: the second page (0x7000..0x8000) missing.
    dir(&mut m, 3, 0x6f00, 0x200 * 12);
    for i in 0..0x200u64 {
        let a = BASE + 0x6f00 + 12 * i;
        m.write_u32(a, 0x1000 + i as u32);
        m.write_u32(a + 4, 0x1001 + i as u32);
        m.write_u32(a + 8, 0x2000);
    }
    m.unmap_page(BASE + 0x7000);
    let pe = PeHeaders::read(&m, VirtAddr(BASE), u64::MAX).unwrap();
    let t = pe.pdata(&m, 1 << 20).unwrap().unwrap();
    assert_eq!(t.entries.len(), 0x200);
    assert_eq!(t.entries[0], Some([0x1000, 0x1001, 0x2000]));
    assert!(t.entries[0x20].is_none());
    assert!(t.entries[0x1ff].is_some());
    assert_eq!(pe.pdata(&m, 4).unwrap().unwrap().entries.len(), 4);
    dir(&mut m, 3, 0x7f_ff00, 0x200);
    let pe = PeHeaders::read(&m, VirtAddr(BASE), u64::MAX).unwrap();
    assert_eq!(
        pe.pdata(&m, 1 << 20).unwrap_err(),
        DataDirectory {
            rva: 0x7f_ff00,
            size: 0x200
        }
    );
}
