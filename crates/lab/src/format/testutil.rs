//! Test-only: a tiny hand-made image and a minimal reader for every
//! format. The reader is written from the format descriptions, not from
//! the writers, and deliberately shares nothing with `hangscope-dump`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::Format;
use crate::image::{LabCpu, LabImage, LabKernelFacts, PAGE_SIZE};

pub(crate) fn le16(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([d[o], d[o + 1]])
}

pub(crate) fn le32(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().unwrap())
}

pub(crate) fn le64(d: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(d[o..o + 8].try_into().unwrap())
}

/// PFNs the kernel half of [`tiny_image`]'s page tables reaches
/// (directly or through the self-map at PML4 entry 0x1ED).
pub(crate) const KERNEL_PFNS: [u64; 9] = [0x1, 0x2, 0x3, 0x4, 0x5, 0x11, 0x12, 0x30, 0x31];

/// Two RAM ranges with a hole, four-level page tables with a user and a
/// kernel half, two CPUs.
pub(crate) fn tiny_image() -> LabImage {
    let mut image = LabImage {
        ram: vec![(0, 0x20000), (0x30000, 0x10000)],
        filler_seed: 0x1234_5678,
        ..LabImage::default()
    };
    let mut put = |pfn: u64, entries: &[(usize, u64)]| {
        let mut p = Box::new([0u8; PAGE_SIZE as usize]);
        for &(i, e) in entries {
            p[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
        }
        image.pages.insert(pfn, p);
    };
    let t = |pfn: u64| pfn << 12 | 0x63; // present, writable, accessed, dirty
    put(0x1, &[(0, t(0x2) | 4), (0x1ED, t(0x1)), (0x1F0, t(0x3))]);
    put(0x2, &[(0, t(0x11) | 4)]);
    put(0x11, &[(0, t(0x12) | 4)]);
    put(0x12, &[(0, t(0x13) | 4)]);
    put(0x13, &[(0, 0x5553_4552_5041_4745)]);
    put(0x3, &[(0, t(0x4))]);
    // Entry 1: a 2 MiB page beyond RAM (clipped away).
    put(0x4, &[(0, t(0x5)), (1, 0x20_0000 | 0xE3)]);
    // Entry 2: not present, must not count.
    put(0x5, &[(0, t(0x30)), (1, t(0x31)), (2, 0x32 << 12)]);
    put(0x30, &[(0, 0x4B45_524E_454C_3030)]);
    put(0x31, &[(7, 0x4B45_524E_454C_3331)]);
    image.facts = LabKernelFacts {
        dtb: 0x1000,
        kernel_base: 0xFFFF_F800_0260_0000,
        kd_debugger_data_block: 0xFFFF_F800_027E_20F0,
        ps_active_process_head: 0xFFFF_F800_0281_B940,
        ps_loaded_module_list: 0xFFFF_F800_0283_9E90,
        pfn_database: 0xFFFF_FA80_0000_0000,
        major_version: 6,
        minor_version: 1,
        build_number: 7601,
        number_processors: 2,
        system_time: 0x01DB_0000_1234_5678,
        pdb_guid: "339E74133576439CBCDF7E0229DA3773".into(),
        pdb_age: 1,
    };
    for i in 0..2u64 {
        let mut gpr = [0u64; 16];
        for (k, g) in gpr.iter_mut().enumerate() {
            *g = 0x1000 * (i + 1) + k as u64;
        }
        image.cpus.push(LabCpu {
            gpr,
            rip: 0xFFFF_F800_0268_0000 + i,
            rflags: 0x246,
            selectors: [0x10, 0x2B, 0x2B, 0x53, 0x2B, 0x18],
            fs_base: 0x7EF_0000 + i,
            gs_base: 0xFFFF_F800_027F_4D00 + i * 0x1000,
            kernel_gs_base: 0x7FF_FFFD_E000 + i,
            cr0: 0x8005_0033,
            cr2: 0,
            cr3: 0x1000,
            cr4: 0x6F8,
            efer: 0xD01,
        });
    }
    image
}

/// Pages each format must store for `image`.
pub(crate) fn expected_pages(image: &LabImage, format: Format) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut page = [0u8; PAGE_SIZE as usize];
    let in_ram = |pfn: u64| {
        image
            .ram
            .iter()
            .any(|&(s, l)| pfn >= s / PAGE_SIZE && pfn < (s + l) / PAGE_SIZE)
    };
    let (s, l) = *image.ram.last().unwrap();
    for pfn in 0..(s + l) / PAGE_SIZE {
        let keep = match format {
            Format::Raw => true,
            Format::CrashKernelBitmap => KERNEL_PFNS.contains(&pfn),
            _ => in_ram(pfn),
        };
        if !keep {
            continue;
        }
        if in_ram(pfn) {
            image.page_into(pfn, &mut page);
        } else {
            page.fill(0);
        }
        out.insert(pfn, page.to_vec());
    }
    out
}

/// Reads every stored page of a dump file, by PFN.
pub(crate) fn read_back(path: &Path) -> Result<HashMap<u64, Vec<u8>>, String> {
    let d = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut pages = HashMap::new();
    let page_at = |off: usize| -> Result<Vec<u8>, String> {
        d.get(off..off + 0x1000)
            .map(|p| p.to_vec())
            .ok_or_else(|| format!("page at file offset {off:#x} past EOF"))
    };
    if d.starts_with(b"\x7fELF") {
        let phoff = le64(&d, 32) as usize;
        let phentsize = le16(&d, 54) as usize;
        for i in 0..le16(&d, 56) as usize {
            let ph = phoff + i * phentsize;
            if le32(&d, ph) != 1 {
                continue;
            }
            let (off, paddr, filesz, memsz) = (
                le64(&d, ph + 8) as usize,
                le64(&d, ph + 24),
                le64(&d, ph + 32),
                le64(&d, ph + 40),
            );
            if filesz != memsz {
                return Err("PT_LOAD filesz != memsz".into());
            }
            for k in 0..filesz / 0x1000 {
                pages.insert(paddr / 0x1000 + k, page_at(off + k as usize * 0x1000)?);
            }
        }
    } else if d.starts_with(b"PAGEDU64") {
        match le32(&d, 0xF98) {
            1 => {
                let mut off = 0x2000;
                for r in 0..le32(&d, 0x88) as usize {
                    let base = le64(&d, 0x98 + r * 16);
                    for k in 0..le64(&d, 0xA0 + r * 16) {
                        pages.insert(base + k, page_at(off)?);
                        off += 0x1000;
                    }
                }
            }
            5 | 6 => {
                let s = 0x2000;
                let mut off = le64(&d, s + 0x20) as usize;
                let bits = le64(&d, s + 0x30);
                for pfn in 0..bits {
                    let w = le32(&d, s + 0x38 + (pfn / 32) as usize * 4);
                    if w & (1 << (pfn % 32)) != 0 {
                        pages.insert(pfn, page_at(off)?);
                        off += 0x1000;
                    }
                }
                if off != d.len() {
                    return Err(format!(
                        "bitmap dump: {} bytes after the last page",
                        d.len() - off
                    ));
                }
            }
            t => return Err(format!("dump type {t}")),
        }
    } else {
        if d.len() % 0x1000 != 0 {
            return Err("raw image is not whole pages".into());
        }
        for (pfn, p) in d.chunks_exact(0x1000).enumerate() {
            pages.insert(pfn as u64, p.to_vec());
        }
    }
    Ok(pages)
}
