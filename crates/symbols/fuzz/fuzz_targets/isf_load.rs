//! ISF JSON of any shape: load, then exercise every lookup on what loaded.
#![no_main]

use hangscope_symbols::SymbolTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = SymbolTable::from_isf_bytes(data, std::path::Path::new("fuzz.json")) {
        common(&t);
    }
});

fn common(t: &SymbolTable) {
    let names: Vec<String> = t.user_type_names().map(str::to_string).collect();
    for n in names.iter().take(64) {
        if let Some(u) = t.user_type(n) {
            for f in u.fields.iter().take(16) {
                let _ = t.type_size(&f.ty);
                let _ = t.field_path(n, &format!("{}[1]", f.name));
            }
        }
    }
    for (name, rva) in t.symbols().take(64) {
        let _ = (t.symbol(name), t.symbol_at(rva.wrapping_add(3)));
    }
    let bytes = t.compact_bytes().to_vec();
    let _ = SymbolTable::from_compact_bytes(bytes);
}
