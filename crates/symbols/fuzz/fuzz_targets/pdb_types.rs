//! PDB bytes: load types and symbols, then look every type up.
#![no_main]

use hangscope_symbols::SymbolTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = SymbolTable::from_pdb_bytes(data.to_vec(), "fuzz.pdb") {
        let names: Vec<String> = t.user_type_names().map(str::to_string).collect();
        for n in names.iter().take(256) {
            if let Some(u) = t.user_type(n) {
                for f in &u.fields {
                    let _ = t.type_size(&f.ty);
                }
            }
        }
        let enums: Vec<String> = t.enumeration_names().map(str::to_string).collect();
        for e in enums.iter().take(64) {
            let _ = t.enum_name(e, 0);
        }
        let _ = t.symbol_at(0x1000);
    }
});
