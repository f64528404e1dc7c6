//! Load Linux kernel types and print timings and a few fields: from a raw
//! BTF blob (`/sys/kernel/btf/vmlinux`) or from a vmlinux's `.BTF`
//! section, cold and through the cache; with `--vmlinux`, instead the
//! whole vmlinux (DWARF and `.symtab`) cold and through the cache; with
//! `--module M.ko`, the module's split BTF on top of FILE's (FIELDs are
//! then looked up in the module's table).
//!
//! `cargo run --release -p hangscope-symbols --example linuxload -- [--vmlinux] [--module M.ko] FILE [FIELD...]`
//! (cache in `$TMPDIR/hangscope-linuxload-cache`, emptied first; FIELD is
//! `type.path`, default a few `task_struct` fields)

use std::path::PathBuf;
use std::time::Instant;

use hangscope_symbols::{SymbolCache, SymbolTable};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The `.BTF` section of an ELF file, or the file itself.
fn btf_of(bytes: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use object::{Object, ObjectSection};
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(bytes.to_vec());
    }
    let file = object::File::parse(bytes)?;
    let s = file.section_by_name(".BTF").ok_or("no .BTF section")?;
    Ok(s.data()?.to_vec())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).peekable();
    let vmlinux = args.next_if(|a| a == "--vmlinux").is_some();
    let module = args
        .next_if(|a| a == "--module")
        .and_then(|_| args.next())
        .map(PathBuf::from);
    let file = PathBuf::from(
        args.next()
            .ok_or("usage: linuxload [--vmlinux] FILE [TYPE.FIELD...]")?,
    );
    let mut fields: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    if fields.is_empty() {
        fields = [
            "task_struct.pid",
            "task_struct.__state",
            "task_struct.comm",
            "task_struct.thread.sp",
            "mutex.owner",
            "list_head.next",
        ]
        .map(String::from)
        .to_vec();
    }
    let cache_dir = std::env::temp_dir().join("hangscope-linuxload-cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    let cache = SymbolCache::new(&cache_dir);

    if vmlinux {
        let t = Instant::now();
        let cold = cache.load(&file)?;
        let cold_ms = ms(t);
        drop(cold);
        let t = Instant::now();
        let warm = cache.load(&file)?;
        println!(
            "{}: vmlinux cold {cold_ms:.0} ms (with writing the cache), warm open {:.2} ms ({}), \
             compact {} bytes, {} struct/union, {} enums, {} symbols",
            file.display(),
            ms(t),
            warm.origin().unwrap_or("?"),
            warm.compact_bytes().len(),
            warm.user_type_names().count(),
            warm.enumeration_names().count(),
            warm.symbols().count(),
        );
        for f in &fields {
            let (ty, path) = f.split_once('.').unwrap_or((f, ""));
            println!("  {ty}.{path}: {:?}", warm.field_path(ty, path));
        }
        return Ok(());
    }
    let t = Instant::now();
    let file_handle = std::fs::File::open(&file)?;
    // SAFETY: read-only map of a file this example does not change.
    let raw = unsafe { memmap2::Mmap::map(&file_handle)? };
    let btf = btf_of(&raw)?;
    let read_ms = ms(t);
    let origin = format!("BTF of {}", file.display());
    if let Some(m) = module {
        let module_btf = btf_of(&std::fs::read(&m)?)?;
        let t = Instant::now();
        let table = SymbolTable::from_split_btf(&btf, &module_btf, Vec::new(), "module")?;
        println!(
            "{}: split BTF {} bytes, {:.1} ms, {} struct/union: {:?}",
            m.display(),
            module_btf.len(),
            ms(t),
            table.user_type_names().count(),
            table.user_type_names().take(8).collect::<Vec<_>>()
        );
        for f in &fields {
            let (ty, path) = f.split_once('.').unwrap_or((f, ""));
            println!("  {ty}.{path}: {:?}", table.field_path(ty, path));
        }
        return Ok(());
    }
    let t = Instant::now();
    let cold = SymbolTable::from_btf(&btf, Vec::new(), &origin)?;
    let cold_ms = ms(t);
    let t = Instant::now();
    let key = SymbolCache::content_key(&btf);
    let hash_ms = ms(t);
    cache.load_or_build(&key, || Ok(cold.clone()))?;
    let t = Instant::now();
    let warm = cache.load_or_build(&key, || {
        Err(hangscope_symbols::Error::new(
            hangscope_symbols::ErrorKind::Cache {
                message: "not cached".into(),
            },
        ))
    })?;
    let warm_ms = ms(t);
    println!(
        "{}: BTF {} bytes (read {read_ms:.1} ms), cold {cold_ms:.1} ms, hash {hash_ms:.1} ms, \
         warm open {warm_ms:.2} ms, compact {} bytes, {} struct/union, {} enums",
        file.display(),
        btf.len(),
        warm.compact_bytes().len(),
        warm.user_type_names().count(),
        warm.enumeration_names().count(),
    );
    for f in &fields {
        let (ty, path) = f.split_once('.').unwrap_or((f, ""));
        println!("  {ty}.{path}: {:?}", warm.field_path(ty, path));
    }
    Ok(())
}
