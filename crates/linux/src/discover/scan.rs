//! Finding the kernel without VMCOREINFO (a guest without fw_cfg, a raw
//! image): the `Linux version` banner in physical memory, page tables that
//! map the kernel image onto the banner's page (a vCPU's CR3 when the dump
//! has registers, else pages shaped like a top-level table), then the
//! kallsyms tables inside the image by their shape. The result is checked
//! end to end: kallsyms' `linux_banner` must be the banner found.

use crate::discover::Found;
use crate::error::{Error, Result};
use crate::kallsyms::{decode_names, DecodedNames, KallsymsTables, MAX_SYMS};
use crate::space::{cr3_candidates, SpaceChoice, KERNEL_IMAGE_END, START_KERNEL_MAP};
use hangscope_dump::{Dump, PhysAddr, PhysicalMemory, PAGE_SIZE};
use hangscope_x64::paging::{table_index, ADDR_MASK, PAGE_SIZE_BIT, PRESENT};
use hangscope_x64::{AddressSpace, Dtb, PagingMode, VirtAddr, VirtualMemory};

/// The banner's fixed start (`linux_banner` in init/version.c).
const BANNER: &[u8] = b"Linux version ";
/// Most banner copies considered (the log and page cache hold copies too).
const MAX_BANNERS: usize = 64;
/// Most top-level table candidates tried without registers.
const MAX_TABLE_CANDIDATES: usize = 4096;
/// Physical memory searched for banners before the page tables are tried.
const BANNER_WINDOW: u64 = 256 << 20;
/// Physical memory read per step of the banner scan.
const CHUNK: u64 = 1 << 20;
/// How far before the token table the name table is looked for.
const NAMES_WINDOW: u64 = 48 << 20;

/// A banner copy in physical memory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Banner {
    pa: u64,
    text: Vec<u8>,
}

/// Find the kernel by scanning. Physical memory is searched for banners a
/// window at a time, and the page tables are tried as soon as a window
/// gives new banners, so a kernel low in memory is found without reading
/// the rest of a large (or sparse raw) dump.
pub fn find(dump: &Dump) -> Result<Found> {
    let mem = dump.memory.as_ref();
    let top = mem
        .ranges()
        .last()
        .map_or(0, |r| r.start.0.saturating_add(r.len));
    let mut banners: Vec<Banner> = Vec::new();
    let mut steps =
        vec!["no VMCOREINFO: scanning physical memory for the `Linux version` banner".to_string()];
    let mut window = 0u64;
    while window < top {
        let hi = window.saturating_add(BANNER_WINDOW).min(top);
        let before = banners.len();
        find_banners(mem, window, hi, &mut banners);
        window = hi;
        if banners.len() == before {
            continue;
        }
        steps.push(format!(
            "{} banner(s) below physical {hi:#x}",
            banners.len()
        ));
        if let Some(found) = try_page_tables(dump, &banners, &mut steps) {
            return Ok(found);
        }
    }
    if banners.is_empty() {
        return Err(Error::not_found(
            "no VMCOREINFO, and no `Linux version` banner in physical memory",
        ));
    }
    Err(Error::not_found(format!(
        "no VMCOREINFO; {} banner(s) found, but no page tables map the kernel image onto one \
         with readable kallsyms ({})",
        banners.len(),
        steps.join("; ")
    )))
}

/// Try the vCPUs' CR3, or without registers every page shaped like a
/// top-level table, against the banners found so far.
fn try_page_tables(dump: &Dump, banners: &[Banner], steps: &mut Vec<String>) -> Option<Found> {
    let mem = dump.memory.as_ref();
    let attempt = |dtb: Dtb, mode: PagingMode, source: String, steps: &mut Vec<String>| {
        let space = AddressSpace::new(mem, dtb).with_paging(mode);
        let mapped = banner_mappings(&space, banners);
        if mapped.is_empty() {
            return None;
        }
        steps.push(format!(
            "page tables: {source}, maps {} banner(s) in the kernel image",
            mapped.len()
        ));
        let tables = match find_kallsyms(&space) {
            Ok(t) => t,
            Err(e) => {
                steps.push(format!("{source}: {e}"));
                return None;
            }
        };
        steps.push(format!(
            "kallsyms tables by shape: token index at {}, names at {}",
            tables.token_index, tables.names
        ));
        Some(Found {
            space: SpaceChoice {
                dtb,
                paging: mode,
                source,
            },
            tables,
            steps: std::mem::take(steps),
            banners: mapped,
        })
    };
    let cr3 = cr3_candidates(&dump.cpus, PagingMode::FourLevel);
    if !cr3.is_empty() {
        return cr3
            .into_iter()
            .find_map(|(dtb, mode, source)| attempt(dtb, mode, source, steps));
    }
    let mut tried = 0usize;
    let mut found = None;
    for_each_top_table(mem, |dtb| {
        tried += 1;
        found = attempt(
            dtb,
            PagingMode::FourLevel,
            format!(
                "top-level table at physical {:#x} (found by scanning; no registers)",
                dtb.0 .0
            ),
            steps,
        );
        found.is_none() && tried < MAX_TABLE_CANDIDATES
    });
    if found.is_none() {
        steps.push(format!(
            "no registers: {tried} page(s) shaped like a top-level table tried"
        ));
    }
    found
}

/// Every `Linux version ...` line in physical memory `[lo, hi)` that
/// looks like the kernel's banner (printable, ends in a newline), added to
/// `out`.
fn find_banners(mem: &dyn PhysicalMemory, lo: u64, hi: u64, out: &mut Vec<Banner>) {
    let finder = memchr::memmem::Finder::new(BANNER);
    let mut buf = vec![0u8; CHUNK as usize + 512];
    for r in mem.ranges() {
        let end = r.start.0.saturating_add(r.len).min(hi);
        let mut at = r.start.0.max(lo);
        while at < end && out.len() < MAX_BANNERS {
            let n = (end - at).min(CHUNK + 512) as usize;
            if mem.read(PhysAddr(at), &mut buf[..n]).is_ok() {
                let hay = &buf[..n];
                for hit in finder.find_iter(hay) {
                    // Hits in the overlap are found again by the next chunk.
                    if hit as u64 >= CHUNK && at + CHUNK < end {
                        break;
                    }
                    let line = &hay[hit..(hit + 512).min(n)];
                    if let Some(nl) = line.iter().position(|&b| b == b'\n') {
                        let text = &line[..nl];
                        if text.len() > BANNER.len() + 8
                            && text.iter().all(|&b| (0x20..0x7f).contains(&b))
                            && text.windows(2).any(|w| w == b" #")
                        {
                            out.push(Banner {
                                pa: at + hit as u64,
                                text: text.to_vec(),
                            });
                        }
                    }
                    if out.len() >= MAX_BANNERS {
                        break;
                    }
                }
            }
            at = at.saturating_add(CHUNK);
        }
    }
}

/// Call `f` on each page shaped like a 4-level top table of a Linux
/// kernel (entry 511, the top 512 GiB, present and pointing at a table
/// whose entry 510, the kernel image's 1 GiB at `__START_KERNEL_map`, is
/// present), in physical order, while it returns true.
fn for_each_top_table(mem: &dyn PhysicalMemory, mut f: impl FnMut(Dtb) -> bool) {
    let top = table_index(START_KERNEL_MAP, 4);
    let pud = table_index(START_KERNEL_MAP, 3);
    let entry = |pa: u64| {
        let mut b = [0u8; 8];
        mem.read(PhysAddr(pa), &mut b)
            .ok()
            .map(|_| u64::from_le_bytes(b))
    };
    for r in mem.ranges() {
        let first = r.start.0.div_ceil(PAGE_SIZE);
        let last = r.start.0.saturating_add(r.len) / PAGE_SIZE;
        for pfn in first..last {
            let e = match mem.page(pfn) {
                Some(p) => {
                    let o = (top * 8) as usize;
                    u64::from_le_bytes(p[o..o + 8].try_into().unwrap_or([0; 8]))
                }
                None => match entry(pfn * PAGE_SIZE + top * 8) {
                    Some(e) => e,
                    None => continue,
                },
            };
            if e & PRESENT == 0 || e & PAGE_SIZE_BIT != 0 {
                continue;
            }
            let Some(e3) = entry((e & ADDR_MASK) + pud * 8) else {
                continue;
            };
            if e3 & PRESENT != 0 && !f(Dtb(PhysAddr(pfn * PAGE_SIZE))) {
                return;
            }
        }
    }
}

/// The banner copies that `space` maps inside the kernel image region
/// (the image holds more than one), with their virtual addresses.
fn banner_mappings(space: &AddressSpace<'_>, banners: &[Banner]) -> Vec<VirtAddr> {
    let pages = space
        .iter_mapped(VirtAddr(START_KERNEL_MAP), VirtAddr(KERNEL_IMAGE_END))
        .with_table_budget(4096);
    let mut out = Vec::new();
    for (va, t) in pages {
        for b in banners {
            if b.pa >= t.paddr.0 && b.pa - t.paddr.0 < t.page_size {
                out.push(VirtAddr(va.0 + (b.pa - t.paddr.0)));
            }
        }
    }
    out
}

/// Find the kallsyms tables in the kernel image mapped by `space`, by
/// their shape: `kallsyms_token_index` is 256 ascending u16 offsets that
/// start at 0, into `kallsyms_token_table` just before it; the name table
/// is a `kallsyms_num_syms` count followed by that many names that decode
/// with those tokens; the offsets and their base sit before the count (up
/// to 6.1) or after the token index (later kernels).
pub fn find_kallsyms(space: &AddressSpace<'_>) -> Result<KallsymsTables> {
    let mem: &dyn VirtualMemory = space;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (va, t) in space
        .iter_mapped(VirtAddr(START_KERNEL_MAP), VirtAddr(KERNEL_IMAGE_END))
        .with_table_budget(4096)
    {
        match runs.last_mut() {
            Some((s, l)) if *s + *l == va.0 => *l += t.page_size,
            _ => runs.push((va.0, t.page_size)),
        }
    }
    for (start, len) in runs {
        let mut at = start;
        let end = start + len;
        while at < end {
            let n = (end - at).min(CHUNK + 1024);
            let buf = mem.read_prefix(VirtAddr(at), n as usize);
            let mut i = 0usize;
            while i + 512 <= buf.len() && (i as u64) < CHUNK {
                if let Some(idx) = token_index_at(&buf[i..i + 512]) {
                    let index_va = at + i as u64;
                    if let Ok(t) = tables_from_index(mem, start, index_va, &idx) {
                        return Ok(t);
                    }
                }
                i += 8;
            }
            if buf.len() < n as usize && buf.len() < CHUNK as usize {
                // The rest of the chunk is unreadable; skip a page.
                at += (buf.len() as u64 / PAGE_SIZE + 1) * PAGE_SIZE;
            } else {
                at += CHUNK;
            }
        }
    }
    Err(Error::not_found(
        "no kallsyms token index in the kernel image",
    ))
}

/// 512 bytes shaped like `kallsyms_token_index`.
fn token_index_at(b: &[u8]) -> Option<[u16; 256]> {
    let u = |i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    if u(0) != 0 || !(2..=256).contains(&u(1)) {
        return None;
    }
    let mut idx = [0u16; 256];
    for i in 1..256 {
        let v = u(i);
        let prev = idx[i - 1];
        if v <= prev || v - prev < 2 || v - prev > 256 {
            return None;
        }
        idx[i] = v;
    }
    Some(idx)
}

/// The other tables, given a token index at `index_va`.
fn tables_from_index(
    mem: &dyn VirtualMemory,
    run_start: u64,
    index_va: u64,
    idx: &[u16; 256],
) -> Result<KallsymsTables> {
    let bad = |w: &str| Error::bad_data(VirtAddr(index_va), w.to_string());
    // The token table ends just before the index (plus alignment zeros):
    // its last token ends at the last non-zero byte.
    let last = u64::from(idx[255]);
    let window = last + 256 + 16;
    let before = mem.read_vec(VirtAddr(index_va - window), window, window)?;
    let q = before
        .iter()
        .rposition(|&b| b != 0)
        .ok_or_else(|| bad("no token table"))?;
    let start_last = before[..q]
        .iter()
        .rposition(|&b| b == 0)
        .map_or(0, |p| p + 1);
    let table_off = (start_last as u64)
        .checked_sub(last)
        .ok_or_else(|| bad("token table too short"))?;
    let table = &before[table_off as usize..];
    let mut tokens = Vec::with_capacity(256);
    for i in 0..256 {
        let o = idx[i] as usize;
        let end = if i < 255 {
            idx[i + 1] as usize - 1
        } else {
            q - table_off as usize + 1
        };
        let tok = table.get(o..end).ok_or_else(|| bad("token out of range"))?;
        if tok.is_empty() || tok.contains(&0) || table.get(end) != Some(&0) {
            return Err(bad("not a token table"));
        }
        tokens.push(tok.to_vec());
    }
    let token_table = index_va - window + table_off;
    // The name table and its count, searched backwards from the tokens.
    let lo = token_table.saturating_sub(NAMES_WINDOW).max(run_start);
    let region = mem.read_prefix(VirtAddr(lo), (token_table - lo) as usize);
    // read_prefix stops at the first hole; search only what was read.
    let mut p = region.len().saturating_sub(16) & !7;
    while p >= 8 {
        let n = u32::from_le_bytes(region[p..p + 4].try_into().unwrap_or([0; 4]));
        if (1000..=MAX_SYMS).contains(&n)
            && region[p + 4..p + 8] == [0, 0, 0, 0]
            && plausible_start(&region[p + 8..], &tokens)
        {
            if let Ok(names) = decode_names(&region[p + 8..], n, &tokens) {
                let num_syms = lo + p as u64;
                if let Some(t) = offsets_for(mem, num_syms, n, index_va, token_table, &names) {
                    return Ok(t);
                }
            }
        }
        p -= 8;
    }
    Err(bad("no kallsyms name table before the token table"))
}

/// Whether the first names at `b` decode to `<type letter><identifier>`.
fn plausible_start(b: &[u8], tokens: &[Vec<u8>]) -> bool {
    let Ok(names) = decode_names(b, 4.min(b.len() as u32), tokens) else {
        return false;
    };
    names.len() == 4
        && names.iter().all(|(n, kind)| {
            kind.is_ascii_alphabetic() && !n.is_empty() && n.bytes().all(|c| c.is_ascii_graphic())
        })
}

/// Where the offsets and their base are, trying both layouts, checked by
/// the address the kallsyms of `_text`/`_stext` give.
fn offsets_for(
    mem: &dyn VirtualMemory,
    num_syms: u64,
    n: u32,
    token_index: u64,
    token_table: u64,
    names: &DecodedNames,
) -> Option<KallsymsTables> {
    let off_len = (u64::from(n) * 4 + 7) & !7;
    let layouts = [
        // Up to 6.1: offsets, relative_base, num_syms, names.
        (num_syms.checked_sub(8 + off_len)?, num_syms - 8),
        // Later: ... token_table, token_index, offsets, relative_base.
        (token_index + 512, token_index + 512 + off_len),
    ];
    let text_i = names
        .iter()
        .position(|(s, _)| s == "_text" || s == "_stext")?;
    for (offsets, base) in layouts {
        let t = KallsymsTables {
            num_syms: VirtAddr(num_syms),
            names: VirtAddr(num_syms + 8),
            token_table: VirtAddr(token_table),
            token_index: VirtAddr(token_index),
            offsets: VirtAddr(offsets),
            relative_base: VirtAddr(base),
        };
        let Ok(b) = mem.read_u64(VirtAddr(base)) else {
            continue;
        };
        if !(START_KERNEL_MAP..KERNEL_IMAGE_END).contains(&b) {
            continue;
        }
        let Ok(o) = mem.read_u32(VirtAddr(offsets + text_i as u64 * 4)) else {
            continue;
        };
        let o = o as i32;
        let text = if o < 0 {
            b.wrapping_sub(1).wrapping_sub(i64::from(o) as u64)
        } else {
            b.wrapping_add(o as u64)
        };
        if (START_KERNEL_MAP..KERNEL_IMAGE_END).contains(&text)
            && mem.read_u8(VirtAddr(text)).is_ok()
        {
            return Some(t);
        }
    }
    None
}
