//! BTF bytes, whole or split in two (a kernel's base and a module's split
//! BTF): load, then look every type up.
#![no_main]

use hangscope_symbols::SymbolTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte odd: the next two bytes say where the base ends and the
    // module begins.
    let loaded = match data {
        [flag, hi, lo, rest @ ..] if flag & 1 == 1 => {
            let cut = (usize::from(*hi) << 8 | usize::from(*lo)).min(rest.len());
            let (base, module) = rest.split_at(cut);
            SymbolTable::from_split_btf(base, module, vec![("s".into(), 1)], "fuzz")
        }
        [_, rest @ ..] => SymbolTable::from_btf(rest, vec![("s".into(), 1)], "fuzz"),
        [] => return,
    };
    if let Ok(t) = loaded {
        let names: Vec<String> = t.user_type_names().map(str::to_string).collect();
        for n in names.iter().take(256) {
            if let Some(u) = t.user_type(n) {
                for f in u.fields.iter().take(64) {
                    let _ = t.type_size(&f.ty);
                    let _ = t.field_path(n, &format!("{}.next", f.name));
                }
            }
        }
        let enums: Vec<String> = t.enumeration_names().map(str::to_string).collect();
        for e in enums.iter().take(64) {
            let _ = t.enum_name(e, 0);
        }
        let _ = SymbolTable::from_compact_bytes(t.compact_bytes().to_vec());
    }
});
