//! What the nt fuzz targets share: one lab image built once, the pages worth
//! damaging, and a kernel over that image with an input's patches laid on
//! top. Each target then runs one family of walks, so that a cheap walk is
//! not slowed down by the expensive ones (the stack unwinder costs ten times
//! a process listing) and reaches many more executions per second.
//!
//! Input: a list of patches, each (page index: 2 bytes, offset in the page:
//! 2 bytes, length: 1 byte, then that many bytes). Page indexes pick among
//! the interesting pages, modulo their count.

use hangscope_dump::Dump;
use hangscope_lab::format::{self, Format};
use hangscope_lab::{build, BuildOptions, Scenario, Symbols};
use hangscope_nt::{Kernel, SymbolSource};
use hangscope_x64::{Fault, FaultKind, VirtAddr, VirtualMemory};
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// What every input shares: the dump, its kernel, and the pages worth
/// damaging.
pub struct Lab {
    kernel: Kernel<'static>,
    pages: Vec<u64>,
}

/// The undamaged image's pages, as the kernel reads them, kept once read.
/// The base never changes, so this is only a faster road to the same
/// bytes: a page-table walk per read was most of an execution's time.
/// Only pages that read are kept (at most the image's, 16,384 for 64 MiB):
/// damaged pointers reach endless distinct unreadable addresses, and
/// keeping those failures grew the map by megabytes an hour.
#[derive(Debug, Default)]
struct BaseCache {
    pages: RefCell<FxHashMap<u64, Box<[u8; 4096]>>>,
}

impl BaseCache {
    fn with_page<R>(
        &self,
        base: &dyn VirtualMemory,
        page: u64,
        f: impl FnOnce(&[u8; 4096]) -> R,
    ) -> Result<R, FaultKind> {
        let mut pages = self.pages.borrow_mut();
        if let Some(p) = pages.get(&page) {
            return Ok(f(p));
        }
        let mut p = Box::new([0u8; 4096]);
        base.read(VirtAddr(page), &mut p[..]).map_err(|e| e.kind)?;
        Ok(f(pages.entry(page).or_insert(p)))
    }
}

thread_local! {
    // Targets run one input at a time on one thread.
    static BASE: BaseCache = BaseCache::default();
}

/// The kernel's memory with some pages replaced.
#[derive(Debug)]
struct Overlay {
    base: &'static dyn VirtualMemory,
    pages: BTreeMap<u64, Box<[u8; 4096]>>,
}

impl VirtualMemory for Overlay {
    fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = va.0.wrapping_add(done as u64);
            let page = a & !0xfff;
            let off = (a & 0xfff) as usize;
            let n = (4096 - off).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match self.pages.get(&page) {
                Some(p) => out.copy_from_slice(&p[off..off + n]),
                None => BASE
                    .with(|c| {
                        c.with_page(self.base, page, |p| out.copy_from_slice(&p[off..off + n]))
                    })
                    .map_err(|kind| Fault {
                        kind,
                        addr: VirtAddr(a),
                    })?,
            }
            done += n;
        }
        Ok(())
    }
}

/// The lab image every input damages: the deadlock scenario on Windows 10
/// 2004, 64 MiB, built on the first call.
pub fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| {
        let sc = Scenario::builtin("deadlock").expect("scenario");
        let opts = BuildOptions {
            ram_size: Some(64 << 20),
            seed: 1,
            build: Some("win10-19041".into()),
        };
        let (img, truth) = build(&sc, Symbols::Default, &opts).expect("lab image");
        // Statics, not leaks: LeakSanitizer would report a leaked box.
        static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
        static DUMP: OnceLock<Dump> = OnceLock::new();
        let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
        let path = dir.path().join("nt_walk.elf");
        format::write(&img, Format::Elf, &path, false).expect("write");
        let dump: &'static Dump = DUMP.get_or_init(|| Dump::open(&path).expect("dump"));
        let symbols = SymbolSource::from_path_spec(
            &hangscope_lab::builds::symbols_dir().display().to_string(),
        )
        .expect("symbols");
        let kernel = Kernel::open(dump, &symbols).expect("kernel");
        let mut pages: Vec<u64> = truth
            .processes
            .iter()
            .map(|p| p.address)
            .chain(truth.threads.iter().map(|t| t.address))
            .chain(truth.eresources.iter().map(|r| r.address))
            .chain(truth.irps.iter().map(|i| i.address))
            .chain(truth.files.iter().map(|f| f.address))
            .chain([
                img.facts.ps_active_process_head,
                img.facts.ps_loaded_module_list,
                img.facts.kd_debugger_data_block,
            ])
            .collect();
        for name in [
            "ExpSystemResourcesList",
            "KiProcessorBlock",
            "KeNumberProcessors",
            "ObTypeIndexTable",
            "ObHeaderCookie",
        ] {
            if let Some(rva) = kernel.symbols().symbol(name) {
                pages.push(kernel.base().0.wrapping_add(rva));
            }
        }
        // The pages after each object too: objects and their bodies cross
        // page boundaries, and handle tables and stacks sit nearby.
        let more: Vec<u64> = pages.iter().map(|p| p.wrapping_add(0x1000)).collect();
        pages.extend(more);
        for p in &mut pages {
            *p &= !0xfff;
        }
        pages.sort_unstable();
        pages.dedup();
        Lab { kernel, pages }
    })
}

/// A fresh kernel (no caches) over the lab image with `data`'s patches.
pub fn damaged_kernel(data: &[u8]) -> Kernel<'static> {
    let lab = lab();
    let base: &'static dyn VirtualMemory = lab.kernel.memory();
    let mut overlay = Overlay {
        base,
        pages: BTreeMap::new(),
    };
    let mut rest = data;
    while rest.len() >= 5 {
        let idx = u16::from_le_bytes([rest[0], rest[1]]) as usize % lab.pages.len();
        let off = (u16::from_le_bytes([rest[2], rest[3]]) & 0xfff) as usize;
        let len = (rest[4] as usize).min(rest.len() - 5).min(4096 - off);
        let page = lab.pages[idx];
        let bytes = overlay.pages.entry(page).or_insert_with(|| {
            let mut p = Box::new([0u8; 4096]);
            let _ = base.read(VirtAddr(page), &mut p[..]);
            p
        });
        bytes[off..off + len].copy_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    let mut k = Kernel::from_parts(
        Box::new(overlay),
        lab.kernel.symbols().clone(),
        lab.kernel.base(),
    );
    k.set_cpu_registers(lab.kernel.cpu_registers().to_vec());
    k
}
