//! A damaged cache file: must be rejected or read without panicking.
#![no_main]

use hangscope_symbols::SymbolTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = SymbolTable::from_compact_bytes(data.to_vec()) {
        let names: Vec<String> = t.user_type_names().map(str::to_string).collect();
        for n in names.iter().take(64) {
            let _ = t.user_type(n);
        }
        let _ = (t.symbol_at(u64::MAX), t.identity(), t.symbols().count());
    }
});
