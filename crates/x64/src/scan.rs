//! Finding page-table bases in physical memory by the PML4 self-reference
//! that every x64 Windows kernel installs (fixed at index 0x1ED before
//! Windows 10 1607, randomised in 0x100..0x1FF since).

use crate::paging::*;
use crate::Dtb;
use hangscope_dump::{PhysAddr, PhysicalMemory, PAGE_SIZE};
use rayon::prelude::*;

/// Pages checked per parallel task.
const CHUNK_PAGES: u64 = 4096;

/// Check whether the page at `dtb` looks like a Windows x64 PML4, and
/// return the index of its self-reference.
///
/// The rules: the page is present; no present entry sets PS (illegal in a
/// PML4); exactly one present entry points at the page itself, and it sits
/// in the kernel half (0x100..=0x1FF), is writable and supervisor-only; at
/// least one other kernel-half entry is present; every present entry points
/// below the top of the dump's physical memory.
pub fn validate_dtb(memory: &dyn PhysicalMemory, dtb: Dtb) -> Option<u16> {
    let pa = dtb.0 .0;
    if pa % PAGE_SIZE != 0 {
        return None;
    }
    let top = memory
        .ranges()
        .last()
        .map(|r| r.start.0.saturating_add(r.len))?;
    let mut buf;
    let page: &[u8] = match memory.page(pa / PAGE_SIZE) {
        Some(p) => p,
        None => {
            buf = vec![0u8; PAGE_SIZE as usize];
            memory.read(PhysAddr(pa), &mut buf).ok()?;
            &buf
        }
    };
    check_page(page, pa, top)
}

/// The self-reference rules on one page's bytes.
fn check_page(page: &[u8], pa: u64, top: u64) -> Option<u16> {
    let entry = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&page[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    // Fast reject: most pages have no self-reference in the kernel half.
    let want = pa | PRESENT;
    let self_idx = 0x100
        + page[0x800..0x1000].chunks_exact(8).position(|c| {
            let e = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            e & (ADDR_MASK | PRESENT) == want
        })?;
    let mut selfs = 0;
    let mut kernel_present = 0;
    for i in 0..512 {
        let e = entry(i);
        if e & PRESENT == 0 {
            continue;
        }
        if e & PAGE_SIZE_BIT != 0 || e & ADDR_MASK >= top {
            return None;
        }
        if e & ADDR_MASK == pa {
            selfs += 1;
        } else if i >= 0x100 {
            kernel_present += 1;
        }
    }
    let s = entry(self_idx);
    (selfs == 1 && kernel_present > 0 && s & WRITABLE != 0 && s & USER == 0)
        .then_some(self_idx as u16)
}

/// Every page of the dump that passes [`validate_dtb`], ascending. Scans all
/// present memory in parallel; pages are read zero-copy when the format
/// allows. On a large dump, try [`find_dtb_candidates_in`] on low memory
/// first: Windows puts the System process's PML4 in the first 16 MiB.
pub fn find_dtb_candidates(memory: &dyn PhysicalMemory) -> Vec<Dtb> {
    find_dtb_candidates_in(memory, PhysAddr(0), PhysAddr(u64::MAX))
}

/// [`find_dtb_candidates`] limited to pages in `[start, end)`.
pub fn find_dtb_candidates_in(
    memory: &dyn PhysicalMemory,
    start: PhysAddr,
    end: PhysAddr,
) -> Vec<Dtb> {
    let Some(top) = memory
        .ranges()
        .last()
        .map(|r| r.start.0.saturating_add(r.len))
    else {
        return Vec::new();
    };
    // Page-aligned chunks of every range.
    let mut chunks = Vec::new();
    for r in memory.ranges() {
        let first = r.start.0.max(start.0).div_ceil(PAGE_SIZE);
        let end = r.start.0.saturating_add(r.len).min(end.0) / PAGE_SIZE;
        let mut p = first;
        while p < end {
            let n = (end - p).min(CHUNK_PAGES);
            chunks.push((p, p + n));
            p += n;
        }
    }
    let mut found: Vec<Dtb> = chunks
        .par_iter()
        .flat_map_iter(|&(from, to)| {
            let mut buf = vec![0u8; PAGE_SIZE as usize];
            let mut out = Vec::new();
            for pfn in from..to {
                let pa = pfn * PAGE_SIZE;
                let page: &[u8] = match memory.page(pfn) {
                    Some(p) => p,
                    None => {
                        if memory.read(PhysAddr(pa), &mut buf).is_err() {
                            continue;
                        }
                        &buf
                    }
                };
                if check_page(page, pa, top).is_some() {
                    out.push(Dtb(PhysAddr(pa)));
                }
            }
            out
        })
        .collect();
    found.sort_by_key(|d| d.0);
    found
}
