//! Drivers without a symbol table, and what to fetch for them (the
//! lookup itself is in `modsyms.rs`).

use super::{hex, PdbInfo};
use hangscope_x64::VirtAddr;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A module with no symbol table, and what to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingSymbols {
    /// The module's `BaseDllName` (`Ntfs.sys`).
    pub module: String,
    /// Its image base.
    #[serde(with = "hex")]
    pub base: VirtAddr,
    /// The PDB its RSDS record names; `None` when the record is
    /// unreadable (the header page is paged out or damaged).
    pub pdb: Option<PdbInfo>,
    /// Why there is no table, in words.
    pub reason: String,
    /// Paths relative to a symbol directory where the table would be
    /// found: the symbol-server PDB layout first, then the ISF one.
    pub fetch: Vec<String>,
    /// Every place searched (from the symbol path), for `--verbose` and
    /// JSON readers.
    pub searched: Vec<String>,
}

impl MissingSymbols {
    /// `<module> (<pdb> <GUID>-<age>)`, or the module alone when its PDB is
    /// unknown.
    pub fn what(&self) -> String {
        match &self.pdb {
            Some(p) => format!("{} ({} {}-{})", self.module, p.name, p.guid, p.age),
            None => self.module.clone(),
        }
    }

    /// The module's name as stack frames show it (`Ntfs` for `Ntfs.sys`).
    pub fn frame_module(&self) -> &str {
        self.module
            .rsplit_once('.')
            .map(|x| x.0)
            .unwrap_or(&self.module)
    }
}

impl fmt::Display for MissingSymbols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what(), self.reason)?;
        if !self.fetch.is_empty() {
            write!(
                f,
                "; put {} in a symbol directory on the symbol path",
                self.fetch.join(" or ")
            )?;
        }
        Ok(())
    }
}
