//! ISF JSON of any shape: load, then exercise every lookup on what loaded.
#![no_main]

use hangscope_symbols::SymbolTable;
use libfuzzer_sys::fuzz_target;

#[path = "lookups.rs"]
mod lookups;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = SymbolTable::from_isf_bytes(data, std::path::Path::new("fuzz.json")) {
        lookups::exercise(&t);
    }
});
