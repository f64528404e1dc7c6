//! The kernel-object walks over damaged memory. A small lab image (the
//! deadlock scenario on Windows 10 2004, 64 MiB) is built once; each input
//! overlays bytes on the pages that hold the kernel's objects (processes,
//! threads, ERESOURCEs, IRPs, file objects, handle tables, the kernel's
//! globals, stacks), then a fresh `Kernel` over that memory runs every
//! listing: processes, threads, CPUs, modules, ERESOURCEs, handles, stacks,
//! running threads and the wait-graph input.
//!
//! Input: a list of patches, each (page index: 2 bytes, offset in the page:
//! 2 bytes, length: 1 byte, then that many bytes). Page indexes pick among
//! the interesting pages, modulo their count.
#![no_main]

use hangscope_dump::Dump;
use hangscope_lab::format::{self, Format};
use hangscope_lab::{build, BuildOptions, Scenario, Symbols};
use hangscope_nt::{Kernel, SymbolSource};
use hangscope_x64::{Fault, VirtAddr, VirtualMemory};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// What every input shares: the dump, its kernel, and the pages worth
/// damaging.
struct Lab {
    kernel: Kernel<'static>,
    pages: Vec<u64>,
}

/// The kernel's memory with some pages replaced.
#[derive(Debug)]
struct Overlay<'a> {
    base: &'a dyn VirtualMemory,
    pages: BTreeMap<u64, [u8; 4096]>,
}

impl VirtualMemory for Overlay<'_> {
    fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), Fault> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = va.0.wrapping_add(done as u64);
            let off = (a & 0xfff) as usize;
            let n = (4096 - off).min(buf.len() - done);
            match self.pages.get(&(a & !0xfff)) {
                Some(p) => buf[done..done + n].copy_from_slice(&p[off..off + n]),
                None => self.base.read(VirtAddr(a), &mut buf[done..done + n])?,
            }
            done += n;
        }
        Ok(())
    }
}

fn lab() -> &'static Lab {
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

fuzz_target!(|data: &[u8]| {
    let lab = lab();
    let mut overlay = Overlay {
        base: lab.kernel.memory(),
        pages: BTreeMap::new(),
    };
    let mut rest = data;
    while rest.len() >= 5 {
        let idx = u16::from_le_bytes([rest[0], rest[1]]) as usize % lab.pages.len();
        let off = (u16::from_le_bytes([rest[2], rest[3]]) & 0xfff) as usize;
        let len = (rest[4] as usize).min(rest.len() - 5).min(4096 - off);
        let page = lab.pages[idx];
        let bytes = overlay.pages.entry(page).or_insert_with(|| {
            let mut p = [0u8; 4096];
            let _ = lab.kernel.memory().read(VirtAddr(page), &mut p);
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
    let _ = k.processes();
    let _ = k.threads();
    let _ = k.cpus();
    let _ = k.modules();
    let _ = k.eresources();
    let _ = k.handles();
    let _ = k.stacks(&Default::default());
    let _ = k.running();
    let _ = k.wait_graph();
});
