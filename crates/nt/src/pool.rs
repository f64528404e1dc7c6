//! Pool scanning: file objects no handle or IRP leads to (closed files the
//! cache still holds), found by their pool tag in every mapped kernel page.
//!
//! Fields read: `_POOL_HEADER.{PoolTag, BlockSize}`, `_OBJECT_HEADER.Body`,
//! `_FILE_OBJECT.{Type, Size}`. A hit counts only when an object header
//! inside the block decodes to the `File` type (where the type table is
//! readable) and its body has `Type == IO_TYPE_FILE` and
//! `Size == sizeof(_FILE_OBJECT)`.

use crate::error::Warning;
use crate::kernel::{Kernel, KERNEL_SPACE_START};
use crate::model::Partial;
use hangscope_dump::PhysAddr;
use hangscope_x64::{AddressSpace, VirtAddr};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Pool tags of file objects: `Fil\xe5` (protected tag, Win7) and `File`.
const FILE_TAGS: [[u8; 4]; 2] = [*b"Fil\xe5", *b"File"];
/// `FILE_OBJECT.Type` value (IO_TYPE_FILE, wdm.h).
const IO_TYPE_FILE: u64 = 5;
/// Pages scanned per parallel batch: enough to keep every core busy, few
/// enough that a batch's pages stay in memory together.
const BATCH: usize = 1 << 14;
/// Most pages a scan reads in all (64 GiB).
const MAX_PAGES: u64 = 1 << 24;
/// Farthest an object header sits from its pool header.
const MAX_HEADER_DISTANCE: u64 = 0x200;

/// The scan's hits, found once per kernel.
#[derive(Debug, Default)]
struct Cache {
    scan: OnceLock<KernelScan>,
    files: OnceLock<Partial<u64>>,
}

/// What the one pass over kernel pages found.
#[derive(Debug, Default)]
pub(crate) struct KernelScan {
    /// Pool headers tagged as file objects (the block's address).
    file_tags: Vec<u64>,
    /// Words that are push-lock words of the `WrPushLock` waiters
    /// ([`crate::pushlock::LockWordTargets::wanted`]), (address, value),
    /// ascending.
    pub(crate) lock_words: Vec<(u64, u64)>,
    /// Why the pool-tag part could not run.
    tag_warnings: Vec<Warning>,
}

/// One hit of the pass.
enum Hit {
    FileTag(u64),
    LockWord(u64, u64),
}

impl<'d> Kernel<'d> {
    /// File objects found by a pool-tag scan of kernel space (cached).
    pub fn pool_file_objects(&self) -> &Partial<u64> {
        self.caches
            .get::<Cache>()
            .files
            .get_or_init(|| self.scan_file_objects())
    }

    /// The one pass over every mapped kernel page (cached): pool headers
    /// tagged as file objects and, when threads wait `WrPushLock`, their
    /// lock words. Both read the same pages, so they share the read: the
    /// pass costs one read of resident kernel memory, not two.
    pub(crate) fn kernel_scan(&self) -> &KernelScan {
        self.caches
            .get::<Cache>()
            .scan
            .get_or_init(|| self.scan_kernel())
    }

    fn scan_kernel(&self) -> KernelScan {
        let mut out = KernelScan::default();
        let Some(space) = self.address_space().copied() else {
            return out;
        };
        let r = self.reader();
        let tags = match r.offset_of("_POOL_HEADER", "PoolTag") {
            Ok(off) => Some((
                off,
                r.ty("_POOL_HEADER").map(|t| t.size).unwrap_or(16).max(1),
            )),
            Err(e) => {
                out.tag_warnings.push(Warning::from_error("pool scan", &e));
                None
            }
        };
        let locks = self.lock_word_targets();
        let locks = locks.any().then_some(locks);
        let hits = scan_kernel_pages(&space, |va, page| {
            let mut found = Vec::new();
            if let Some((tag_off, pool_hdr)) = tags {
                let mut o = tag_off as usize;
                // Tags compared as integers: this loop runs for every 16
                // bytes of resident kernel memory.
                let wanted = FILE_TAGS.map(u32::from_le_bytes);
                while let Some(t) = page.get(o..o + 4) {
                    let t = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
                    if wanted.contains(&t) {
                        found.push(Hit::FileTag(va + o as u64 - tag_off));
                    }
                    o += pool_hdr as usize;
                }
            }
            if let Some(l) = locks {
                for (k, c) in page.chunks_exact(8).enumerate() {
                    let v = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
                    if l.wanted(v) {
                        found.push(Hit::LockWord(va + 8 * k as u64, v));
                    }
                }
            }
            found
        });
        for h in hits {
            match h {
                Hit::FileTag(a) => out.file_tags.push(a),
                Hit::LockWord(a, v) => out.lock_words.push((a, v)),
            }
        }
        out.lock_words.sort_unstable();
        out
    }

    fn scan_file_objects(&self) -> Partial<u64> {
        let mut out = Partial::default();
        if self.address_space().is_none() {
            return out;
        }
        let r = self.reader();
        let (body_off, fo_size) = match (
            r.offset_of("_OBJECT_HEADER", "Body"),
            r.ty("_FILE_OBJECT").map(|t| t.size),
        ) {
            (Ok(b), Ok(c)) => (b, c),
            (Err(e), _) | (_, Err(e)) => {
                out.warnings.push(Warning::from_error("pool scan", &e));
                return out;
            }
        };
        let pool_hdr = r.ty("_POOL_HEADER").map(|t| t.size).unwrap_or(16).max(1);
        let scan = self.kernel_scan();
        out.warnings.extend(scan.tag_warnings.iter().cloned());
        let hits = scan.file_tags.iter().copied();
        let file_type = self
            .object_type_names()
            .iter()
            .find(|(_, n)| n.as_str() == "File")
            .map(|(i, _)| *i);
        for h in hits {
            let block = r
                .object("_POOL_HEADER", VirtAddr(h))
                .and_then(|p| p.u64("BlockSize"))
                .map(|b| b * 16)
                .unwrap_or(MAX_HEADER_DISTANCE);
            let mut o = pool_hdr;
            while o < block.min(MAX_HEADER_DISTANCE) {
                let header = h + o;
                let body = header + body_off;
                let is_file = r.object("_FILE_OBJECT", VirtAddr(body)).is_ok_and(|f| {
                    f.u64("Type").ok() == Some(IO_TYPE_FILE) && f.u64("Size").ok() == Some(fo_size)
                });
                let type_ok = match file_type {
                    Some(ft) => self.type_index(VirtAddr(header)).ok() == Some(ft),
                    None => true,
                };
                if is_file && type_ok {
                    out.items.push(body);
                    break;
                }
                o += 16;
            }
        }
        out.items.sort_unstable();
        out.items.dedup();
        out
    }
}

/// What `per_page` finds in every mapped kernel-space page, read in
/// parallel batches, at most [`MAX_PAGES`] pages: the one bounded scan of
/// kernel memory (file objects by pool tag, push-lock words by value) when
/// no list leads to what is sought. Pages that cannot be read are skipped.
pub(crate) fn scan_kernel_pages<T: Send>(
    space: &AddressSpace<'_>,
    per_page: impl Fn(u64, &[u8]) -> Vec<T> + Sync,
) -> Vec<T> {
    // (virtual, physical) of each 4 KiB page: the mapping walk already
    // translated it, so the page is read from physical memory, borrowed
    // from the dump's mapping when it is stored plain, and not walked
    // through the page tables again.
    let scan = |batch: &[(u64, u64)]| -> Vec<T> {
        batch
            .par_iter()
            .map_init(
                || vec![0u8; 0x1000],
                |buf, &(va, pa)| {
                    if let Some(page) = space.memory.page(pa / 0x1000) {
                        return per_page(va, page);
                    }
                    match space.memory.read(PhysAddr(pa), buf) {
                        Ok(()) => per_page(va, buf),
                        Err(_) => Vec::new(),
                    }
                },
            )
            .flatten_iter()
            .collect()
    };
    let mut hits = Vec::new();
    let mut pages = Vec::with_capacity(BATCH);
    let mut seen = 0u64;
    'mapped: for (va, t) in space.iter_mapped(VirtAddr(KERNEL_SPACE_START), VirtAddr(u64::MAX)) {
        for i in 0..(t.page_size / 0x1000).max(1) {
            if seen >= MAX_PAGES {
                break 'mapped;
            }
            seen += 1;
            let step = i * 0x1000;
            pages.push((va.0.wrapping_add(step), t.paddr.0.wrapping_add(step)));
            if pages.len() >= BATCH {
                hits.extend(scan(&pages));
                pages.clear();
            }
        }
    }
    hits.extend(scan(&pages));
    hits
}
