//! Cold ISF load against a warm (memory-mapped cache) open, and lookups.
//!
//! `cargo bench -p hangscope-symbols` (uses the Windows 7 kernel ISF in
//! `../shared/symbols`).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use hangscope_symbols::{SymbolCache, SymbolTable};

fn win7() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/symbols/windows/ntkrnlmp.pdb/339E74133576439CBCDF7E0229DA3773-1.json.xz",
    )
}

fn bench(c: &mut Criterion) {
    let src = win7();
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = SymbolCache::new(dir.path());
    cache.load(&src).expect("first load");

    let mut g = c.benchmark_group("symbols");
    g.sample_size(10);
    g.bench_function("cold_isf_load_win7", |b| {
        b.iter(|| SymbolTable::load_isf(&src).expect("load"))
    });
    g.finish();

    c.bench_function("warm_cache_open_win7", |b| {
        b.iter(|| cache.load_cached(&src).expect("cached"))
    });
    let t = cache.load_cached(&src).expect("cached");
    c.bench_function("lookups_warm", |b| {
        b.iter(|| {
            (
                t.field_path("_IRP", "Tail.Overlay.CurrentStackLocation"),
                t.symbol("PsActiveProcessHead"),
                t.symbol_at(0x96000),
                t.enum_value("_KWAIT_REASON", "WrQueue"),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
