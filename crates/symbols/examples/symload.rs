//! Load a symbol file (ISF or PDB) cold and through the cache, print the
//! timings and a few lookups.
//!
//! `cargo run --release --example symload -- FILE [CACHE_DIR]`

use std::path::PathBuf;
use std::time::Instant;

use hangscope_symbols::{SymbolCache, SymbolTable};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let file = PathBuf::from(args.next().ok_or("usage: symload FILE [CACHE_DIR]")?);
    let cache_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("hangscope-symload-cache"));
    let cache = SymbolCache::new(&cache_dir);

    let t = Instant::now();
    let cold = SymbolTable::load(&file)?;
    let cold_ms = t.elapsed().as_secs_f64() * 1e3;
    cache.store(&file, &cold)?;

    let t = Instant::now();
    let warm = cache.load_cached(&file).ok_or("cache not usable")?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let size = warm.user_type("_EPROCESS").map(|u| u.size);
    let psh = warm.symbol("PsActiveProcessHead");
    let irp = warm.field_path("_IRP", "Tail.Overlay.CurrentStackLocation");
    let lookup_us = t.elapsed().as_secs_f64() * 1e6;

    println!("{}", file.display());
    println!("  identity      {:?}", warm.identity());
    println!("  cold load     {cold_ms:.1} ms");
    println!(
        "  warm open     {open_ms:.3} ms ({} bytes mapped)",
        warm.compact_bytes().len()
    );
    println!("  3 lookups     {lookup_us:.0} us (first use, decodes _EPROCESS and _IRP)");
    println!(
        "  _EPROCESS size {size:?}, PsActiveProcessHead {psh:x?}, IRP CurrentStackLocation {irp:?}"
    );
    Ok(())
}
