//! Compare two symbol files (e.g. an ISF and the PDB made from it) and
//! print every difference.
//!
//! `cargo run --example compare -- A B`

use std::path::PathBuf;

use hangscope_symbols::SymbolTable;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (x, y) = (SymbolTable::load(&a[0])?, SymbolTable::load(&a[1])?);
    let mut n = 0;
    let mut report = |m: String| {
        n += 1;
        if n <= 40 {
            println!("{m}");
        }
    };
    if x.identity() != y.identity() {
        report(format!("identity {:?} vs {:?}", x.identity(), y.identity()));
    }
    for name in x.user_type_names() {
        match (x.user_type(name), y.user_type(name)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => report(format!("type {name}: {a:?}\n   vs {b:?}")),
        }
    }
    let extra: Vec<_> = y.user_type_names().filter(|n| !x.has_type(n)).collect();
    if !extra.is_empty() {
        report(format!("types only in second: {extra:?}"));
    }
    for name in x.enumeration_names() {
        if x.enumeration(name) != y.enumeration(name) {
            report(format!(
                "enum {name}: {:?} vs {:?}",
                x.enumeration(name),
                y.enumeration(name)
            ));
        }
    }
    for name in x.base_type_names() {
        if x.base_size(name) != y.base_size(name) {
            report(format!(
                "base {name}: {:?} vs {:?}",
                x.base_size(name),
                y.base_size(name)
            ));
        }
    }
    for (name, rva) in x.symbols() {
        if y.symbol(name) != Some(rva) {
            report(format!("symbol {name}: {rva:#x} vs {:x?}", y.symbol(name)));
        }
    }
    println!("{n} differences");
    Ok(())
}
