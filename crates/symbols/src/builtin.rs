//! Symbol tables compiled into the crate: the Windows 10 19041 kernel's
//! ISF, so that `hangscope demo` and a fresh clone work offline with no
//! shared symbol directory. A symbol path reaches them through its
//! `builtin*` element ([`crate::SymbolStore::from_path_spec`]); the
//! `hangscope` command line puts that element last on its default path.
//!
//! The tables come from JPCERT/CC's Windows-Symbol-Tables (3-clause BSD,
//! [`LICENSE`]); `builtin/README.md` in the crate says which files.

use std::io::Read;
use std::path::Path;

use crate::error::Error;
use crate::{isf, PdbIdentity, SymbolTable};

/// The license of the built-in tables, which travels with every binary
/// that contains them.
pub const LICENSE: &str = include_str!("../builtin/LICENSE-Windows-Symbol-Tables.txt");

/// One compiled-in ISF table (xz-compressed, as published).
#[derive(Debug, Clone, Copy)]
pub struct BuiltinTable {
    /// PDB file name, e.g. `ntkrnlmp.pdb`.
    pub pdb: &'static str,
    /// GUID as 32 upper-case hex digits.
    pub guid: &'static str,
    /// Age.
    pub age: u32,
    /// The table's path in the ISF layout, shown as where it came from.
    pub origin: &'static str,
    isf_xz: &'static [u8],
}

/// Every built-in table.
pub const BUILTIN_TABLES: &[BuiltinTable] = &[BuiltinTable {
    pdb: "ntkrnlmp.pdb",
    guid: "606FF669409B00F7FC8C61A9C1670129",
    age: 1,
    origin: "builtin:windows/ntkrnlmp.pdb/606FF669409B00F7FC8C61A9C1670129-1.json.xz",
    isf_xz: include_bytes!(
        "../builtin/windows/ntkrnlmp.pdb/606FF669409B00F7FC8C61A9C1670129-1.json.xz"
    ),
}];

impl BuiltinTable {
    /// The identity this table describes.
    pub fn identity(&self) -> PdbIdentity {
        PdbIdentity {
            name: self.pdb.to_string(),
            guid: self.guid.to_string(),
            age: self.age,
        }
    }

    /// Decompress and load the table.
    pub fn load(&self) -> Result<SymbolTable, Error> {
        let origin = Path::new(self.origin);
        let mut json = Vec::new();
        xz2::read::XzDecoder::new(self.isf_xz)
            .take(isf::MAX_ISF_BYTES)
            .read_to_end(&mut json)
            .map_err(|e| Error::io("decompress", origin, &e))?;
        SymbolTable::from_isf_bytes(&json, origin)
    }
}

/// The built-in table for this PDB, if there is one.
pub fn find(id: &PdbIdentity) -> Option<&'static BuiltinTable> {
    BUILTIN_TABLES.iter().find(|t| t.identity().matches(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_table_loads_and_describes_its_identity() {
        for t in BUILTIN_TABLES {
            let table = t.load().unwrap_or_else(|e| panic!("{}: {e}", t.origin));
            let id = table.identity().expect("identity in the ISF metadata");
            assert!(id.matches(&t.identity()), "{}: describes {id}", t.origin);
            assert_eq!(find(&t.identity()).map(|b| b.origin), Some(t.origin));
        }
    }
}
