//! A test-only builder of small dump files, independent of the parser's
//! layout constants (offsets are written out here on purpose, so a wrong
//! constant in `raw` cannot hide itself).

use flate2::write::ZlibEncoder;
use std::io::Write;

/// Fill page `pfn` with a recognisable pattern.
pub fn page_of(pfn: u64) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    for (i, c) in p.chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&(pfn << 32 | i as u64).to_le_bytes());
    }
    p
}

pub fn put(buf: &mut Vec<u8>, off: usize, bytes: &[u8]) {
    if buf.len() < off + bytes.len() {
        buf.resize(off + bytes.len(), 0);
    }
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

pub fn put_u16(buf: &mut Vec<u8>, off: usize, v: u16) {
    put(buf, off, &v.to_le_bytes());
}
pub fn put_u32(buf: &mut Vec<u8>, off: usize, v: u32) {
    put(buf, off, &v.to_le_bytes());
}
pub fn put_u64(buf: &mut Vec<u8>, off: usize, v: u64) {
    put(buf, off, &v.to_le_bytes());
}

/// One ELF note.
pub fn note(name: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    let name_z = format!("{name}\0");
    n.extend_from_slice(&(name_z.len() as u32).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&n_type.to_le_bytes());
    n.extend_from_slice(name_z.as_bytes());
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n.extend_from_slice(desc);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n
}

/// An x86-64 `elf_prstatus` whose pr_reg[i] = base + i.
pub fn prstatus(base: u64) -> Vec<u8> {
    let mut d = vec![0u8; 336];
    for i in 0..27 {
        put_u64(&mut d, 112 + i * 8, base + i as u64);
    }
    d
}

/// An x86-64 `elf_prstatus` holding the same registers as
/// `qemu_state(base)` (QEMU writes both from one register file).
pub fn prstatus_matching(base: u64) -> Vec<u8> {
    // QEMU order index of each pr_reg slot's register (None: not a gpr).
    let q = |i: u64| base + i;
    let regs = [
        q(15),
        q(14),
        q(13),
        q(12),
        q(7),
        q(1),
        q(11),
        q(10),
        q(9),
        q(8),
        q(0),
        q(2),
        q(3),
        q(4),
        q(5),
        0,
        base + 0x100,
        0x10,
        0x246,
        q(6),
        0x38,
        base + 0x4000,
        base + 0x5000,
        0x18,
        0x20,
        0x28,
        0x30,
    ];
    let mut d = vec![0u8; 336];
    for (i, r) in regs.iter().enumerate() {
        put_u64(&mut d, 112 + i * 8, *r);
    }
    d
}

/// A version 1 `QEMUCPUState`: gprs rax..r15 = base + 0..15, rip = base +
/// 0x100, segments' base = base + 0x1000 * (i + 1), cr[i] = base + 0x200 + i,
/// kernel_gs_base = base + 0x300.
pub fn qemu_state(base: u64) -> Vec<u8> {
    let mut d = vec![0u8; 440];
    put_u32(&mut d, 0, 1);
    put_u32(&mut d, 4, 440);
    for i in 0..16 {
        put_u64(&mut d, 8 + i * 8, base + i as u64);
    }
    put_u64(&mut d, 136, base + 0x100);
    put_u64(&mut d, 144, 0x246);
    for i in 0..10 {
        put_u32(&mut d, 152 + i * 24, 0x10 + i as u32 * 8);
        put_u64(&mut d, 152 + i * 24 + 16, base + 0x1000 * (i as u64 + 1));
    }
    for i in 0..5 {
        put_u64(&mut d, 392 + i * 8, base + 0x200 + i as u64);
    }
    put_u64(&mut d, 432, base + 0x300);
    d
}

/// A PT_LOAD: guest-physical address, bytes in the file, p_memsz.
pub struct Load {
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
}

/// An ELF64 x86-64 core with a PT_NOTE (if `notes` is not empty) and the
/// loads in the given order.
pub fn elf(loads: &[Load], notes: &[u8]) -> Vec<u8> {
    let phnum = loads.len() + usize::from(!notes.is_empty());
    let mut f = vec![0u8; 64];
    put(&mut f, 0, b"\x7fELF\x02\x01\x01");
    put_u16(&mut f, 0x10, 4); // ET_CORE
    put_u16(&mut f, 0x12, 62);
    put_u32(&mut f, 0x14, 1);
    put_u64(&mut f, 0x20, 64);
    put_u16(&mut f, 0x34, 64);
    put_u16(&mut f, 0x36, 56);
    put_u16(&mut f, 0x38, phnum as u16);
    let mut data_off = 64 + 56 * phnum;
    let mut ph = 64;
    if !notes.is_empty() {
        put_u32(&mut f, ph, 4);
        put_u64(&mut f, ph + 8, data_off as u64);
        put_u64(&mut f, ph + 32, notes.len() as u64);
        put_u64(&mut f, ph + 40, notes.len() as u64);
        put(&mut f, data_off, notes);
        data_off += notes.len();
        ph += 56;
    }
    for l in loads {
        put_u32(&mut f, ph, 1);
        put_u64(&mut f, ph + 8, data_off as u64);
        put_u64(&mut f, ph + 16, 0xFFFF_8000_0000_0000 + l.paddr); // ignored
        put_u64(&mut f, ph + 24, l.paddr);
        put_u64(&mut f, ph + 32, l.data.len() as u64);
        put_u64(&mut f, ph + 40, l.memsz);
        put(&mut f, data_off, &l.data);
        data_off += l.data.len();
        ph += 56;
    }
    f
}

/// A `DUMP_HEADER64` filled with "PAGE" and the fields every test sets.
pub fn crash_header(dump_type: u32) -> Vec<u8> {
    let mut h = b"PAGE".repeat(0x2000 / 4);
    put(&mut h, 4, b"DU64");
    put_u32(&mut h, 0x08, 0xF);
    put_u32(&mut h, 0x0C, 7601);
    put_u64(&mut h, 0x10, 0x18_7000);
    put_u64(&mut h, 0x18, 0xFFFF_FA80_0000_0000);
    put_u64(&mut h, 0x20, 0xFFFF_F800_0284_6E90);
    put_u64(&mut h, 0x28, 0xFFFF_F800_0282_8B90);
    put_u32(&mut h, 0x30, 0x8664);
    put_u32(&mut h, 0x34, 2);
    put_u32(&mut h, 0x38, 0xE2);
    for i in 0..4 {
        put_u64(&mut h, 0x40 + i * 8, 0x100 + i as u64);
    }
    // KdDebuggerDataBlock left as "PAGE" fill: unset.
    // CONTEXT at 0x348: rax..r15 = 0xC0 + i in CONTEXT order, rip.
    for i in 0..16 {
        put_u64(&mut h, 0x348 + 0x78 + i * 8, 0xC0 + i as u64);
    }
    put_u64(&mut h, 0x348 + 0xF8, 0xFFFF_F800_0270_0000);
    put_u32(&mut h, 0x348 + 0x44, 0x282);
    put_u16(&mut h, 0x348 + 0x38, 0x10);
    put_u16(&mut h, 0x348 + 0x42, 0x18);
    put_u32(&mut h, 0xF98, dump_type);
    h
}

/// A DumpType 1 crash dump with the runs (base page, pages), in header
/// order; page contents are `page_of(pfn)`.
pub fn crash_full(runs: &[(u64, u64)]) -> Vec<u8> {
    let mut f = crash_header(1);
    put_u32(&mut f, 0x88, runs.len() as u32);
    put_u64(&mut f, 0x90, runs.iter().map(|r| r.1).sum());
    for (i, (base, count)) in runs.iter().enumerate() {
        put_u64(&mut f, 0x98 + i * 16, *base);
        put_u64(&mut f, 0x98 + i * 16 + 8, *count);
    }
    for (base, count) in runs {
        for pfn in *base..base + count {
            f.extend_from_slice(&page_of(pfn));
        }
    }
    f
}

/// A DumpType 5 bitmap crash dump holding `pfns` (ascending) of a bitmap
/// `bits` long; page contents are `page_of(pfn)`.
pub fn crash_bitmap(bits: u64, pfns: &[u64]) -> Vec<u8> {
    let mut f = crash_header(5);
    let bitmap_bytes = bits.div_ceil(8) as usize;
    let first_page = (0x2038 + bitmap_bytes).div_ceil(4096) * 4096;
    put(&mut f, 0x2000, b"FDMP");
    put(&mut f, 0x2004, b"DUMP");
    put_u64(&mut f, 0x2020, first_page as u64);
    put_u64(&mut f, 0x2028, pfns.len() as u64);
    put_u64(&mut f, 0x2030, bits);
    let mut bitmap = vec![0u8; bitmap_bytes];
    for &p in pfns {
        bitmap[(p / 8) as usize] |= 1 << (p % 8);
    }
    put(&mut f, 0x2038, &bitmap);
    f.resize(first_page, 0);
    for &p in pfns {
        f.extend_from_slice(&page_of(p));
    }
    f
}

/// How a kdump page is stored.
#[derive(Clone, Copy, PartialEq)]
pub enum Store {
    Plain,
    Zlib,
    /// Flagged LZO (the bytes are not really LZO).
    Lzo,
    /// Flagged zlib but not a zlib stream.
    BadZlib,
}

/// A plain kdump file holding `pages` (pfn ascending) out of `max_mapnr`,
/// with the given notes in the sub header.
pub fn kdump_plain(max_mapnr: u64, pages: &[(u64, Store)], notes: &[u8]) -> Vec<u8> {
    let bs = 4096usize;
    let mut f = vec![0u8; bs];
    put(&mut f, 0, b"KDUMP   ");
    put_u32(&mut f, 8, 6);
    put_u32(&mut f, 428, bs as u32);
    put_u32(&mut f, 432, 1); // sub_hdr_size
    let half = (max_mapnr.div_ceil(8) as usize).div_ceil(bs).max(1) * bs;
    let bitmap_blocks = 2 * half / bs;
    put_u32(&mut f, 436, bitmap_blocks as u32);
    put_u32(&mut f, 440, max_mapnr.min(u64::from(u32::MAX)) as u32);
    put_u32(&mut f, 460, 1);
    // Sub header at block 1; notes right after its fields.
    let sub = bs;
    put_u64(&mut f, sub + 48, (sub + 104) as u64);
    put_u64(&mut f, sub + 56, notes.len() as u64);
    put_u64(&mut f, sub + 96, max_mapnr);
    put(&mut f, sub + 104, notes);
    f.resize(2 * bs, 0);
    let bitmap_off = 2 * bs;
    let mut bitmap = vec![0u8; 2 * half];
    for &(p, _) in pages {
        bitmap[(p / 8) as usize] |= 1 << (p % 8);
        bitmap[half + (p / 8) as usize] |= 1 << (p % 8);
    }
    put(&mut f, bitmap_off, &bitmap);
    let desc_off = bitmap_off + 2 * half;
    let mut data_off = desc_off + 24 * pages.len();
    for (i, &(p, store)) in pages.iter().enumerate() {
        let raw = page_of(p);
        let (bytes, flags) = match store {
            Store::Plain => (raw, 0u32),
            Store::Zlib => {
                let mut e = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&raw).unwrap();
                (e.finish().unwrap(), 1)
            }
            Store::Lzo => (vec![0x11; 100], 2),
            Store::BadZlib => (vec![0x78, 0x9c, 0xff, 0xff, 0xff], 1),
        };
        let d = desc_off + 24 * i;
        put_u64(&mut f, d, data_off as u64);
        put_u32(&mut f, d + 8, bytes.len() as u32);
        put_u32(&mut f, d + 12, flags);
        put(&mut f, data_off, &bytes);
        data_off += bytes.len();
    }
    f
}

/// The flattened form of `plain`: chunks of `chunk` bytes written in the
/// order `order` gives (indices of chunks), then the end marker.
pub fn flatten(plain: &[u8], chunk: usize, order: &[usize]) -> Vec<u8> {
    let mut f = vec![0u8; 4096];
    put(&mut f, 0, b"makedumpfile");
    f[16..24].copy_from_slice(&1u64.to_be_bytes());
    f[24..32].copy_from_slice(&1u64.to_be_bytes());
    for &c in order {
        let start = c * chunk;
        let end = (start + chunk).min(plain.len());
        f.extend_from_slice(&(start as i64).to_be_bytes());
        f.extend_from_slice(&((end - start) as i64).to_be_bytes());
        f.extend_from_slice(&plain[start..end]);
    }
    f.extend_from_slice(&(-1i64).to_be_bytes());
    f.extend_from_slice(&(-1i64).to_be_bytes());
    f
}
