//! Load symbol files (ISF or PDB) cold and through the cache, and print
//! the timings and a few lookups, one line per file.
//!
//! `cargo run --release --example symload -- FILE...`
//! (cache in `$TMPDIR/hangscope-symload-cache`, emptied first)

use std::path::PathBuf;
use std::time::Instant;

use hangscope_symbols::{SymbolCache, SymbolTable};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// This thread's CPU time in ms (Linux `schedstat`), which unlike wall
/// time does not grow when other processes load the machine.
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        return Err("usage: symload FILE...".into());
    }
    let cache_dir = std::env::temp_dir().join("hangscope-symload-cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    let cache = SymbolCache::new(&cache_dir);
    println!("file | source bytes | cold load ms (cpu) | compact bytes | warm open ms (cpu) | 5 first lookups us | types | symbols");
    for file in files {
        let (t, c) = (Instant::now(), cpu_ms());
        let cold = SymbolTable::load(&file)?;
        let (cold_ms, cold_cpu) = (ms(t), cpu_ms() - c);
        cache.store(&file, &cold)?;
        drop(cold);

        let (t, c) = (Instant::now(), cpu_ms());
        let warm = cache.load_cached(&file).ok_or("cache not usable")?;
        let (open_ms, open_cpu) = (ms(t), cpu_ms() - c);
        let t = Instant::now();
        let probe = (
            warm.user_type("_EPROCESS").map(|u| u.size),
            warm.field_path("_KTHREAD", "WaitBlock[1]"),
            warm.symbol("PsActiveProcessHead"),
            warm.field_path("_IRP", "Tail.Overlay.CurrentStackLocation"),
            warm.symbol_at(warm.symbol("KiSwapContext").unwrap_or(0) + 0x7a),
        );
        let lookup_us = t.elapsed().as_secs_f64() * 1e6;
        std::hint::black_box(&probe);
        println!(
            "{} | {} | {cold_ms:.1} ({cold_cpu:.1}) | {} | {open_ms:.3} ({open_cpu:.3}) | {lookup_us:.0} | {} | {}",
            file.file_name().unwrap_or_default().to_string_lossy(),
            std::fs::metadata(&file)?.len(),
            warm.compact_bytes().len(),
            warm.user_type_names().count(),
            warm.symbols().count()
        );
    }
    Ok(())
}
