//! An ELF image with DWARF (a vmlinux, or a small shared object standing
//! for one): load its types and symbols, then exercise every lookup.
//! Seeded with `crates/symbols/tests/linux/hard_cases.c` built by gcc
//! (DWARF 2, 4, 5) and clang, linked small (`seeds/dwarf_load/README`).
#![no_main]

use hangscope_symbols::SymbolTable;
use libfuzzer_sys::fuzz_target;

#[path = "lookups.rs"]
mod lookups;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = SymbolTable::from_vmlinux_bytes(data, std::path::Path::new("fuzz-vmlinux")) {
        lookups::exercise(&t);
    }
});
