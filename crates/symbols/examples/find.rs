//! The README example: find the Windows 7 kernel symbols through the store.

use hangscope_symbols::{PdbIdentity, SymbolStore};

fn main() -> Result<(), hangscope_symbols::Error> {
    // _NT_SYMBOL_PATH (if set), then the project's shared ISFs.
    let store = SymbolStore::from_env(&["../shared/symbols".into()])?;
    let nt = store.find(&PdbIdentity {
        name: "ntkrnlmp.pdb".into(),
        guid: "339E74133576439CBCDF7E0229DA3773".into(),
        age: 1,
    })?;
    let (off, ty) = nt.field_path("_KTHREAD", "WaitBlock[1].Object").unwrap();
    println!("KTHREAD.WaitBlock[1].Object at {off:#x}: {ty:?}");
    let rva = nt.symbol("KiSwapContext").unwrap() + 0x7a;
    println!("{:?}", nt.symbol_at(rva)); // nearest symbol at or below, and the offset
    Ok(())
}
