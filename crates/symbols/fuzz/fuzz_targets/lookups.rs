//! What the loader targets do with a table that loaded: every kind of
//! lookup the walks make, bounded, then the compact image back in.

use hangscope_symbols::SymbolTable;

/// Look up the first types' fields (size, indexed path, scalar shape),
/// the first symbols by name and near their address, then reload the
/// table's compact image.
pub fn exercise(t: &SymbolTable) {
    let names: Vec<String> = t.user_type_names().map(str::to_string).collect();
    for n in names.iter().take(64) {
        if let Some(u) = t.user_type(n) {
            for f in u.fields.iter().take(16) {
                let _ = t.type_size(&f.ty);
                let _ = t.field_path(n, &format!("{}[1]", f.name));
                let _ = t.field_scalar(n, &f.name);
            }
        }
    }
    for (name, rva) in t.symbols().take(64) {
        let _ = (t.symbol(name), t.symbol_at(rva.wrapping_add(3)));
    }
    let bytes = t.compact_bytes().to_vec();
    let _ = SymbolTable::from_compact_bytes(bytes);
}
