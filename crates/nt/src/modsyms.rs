//! Driver modules' own symbol tables: a module's PDB identity from the
//! CodeView (RSDS) record of its PE header in memory, looked up on the
//! symbol path the kernel was opened with (ISF `<pdb>/<GUID>-<AGE>.json[.xz]`,
//! PDB `<pdb>/<GUID><AGE>/<pdb>`), cached per module base.
//!
//! When there is no table, [`MissingSymbols`] says which module, which PDB
//! (name, GUID, age) and the exact relative paths to put the file at, so a
//! user can fetch it once and rerun.

use crate::discover::{self, SymbolSource};
use crate::kernel::Kernel;
pub use crate::model::MissingSymbols;
use crate::model::{ModuleInfo, PdbInfo};
use hangscope_symbols::SymbolTable;
use hangscope_x64::VirtAddr;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Most modules whose lookups are cached per kernel (a module list is
/// bounded too; past this, lookups are repeated instead of remembered).
pub const MAX_CACHED_MODULES: usize = 4096;

/// Module base -> its own symbol table or why there is none, at most
/// [`MAX_CACHED_MODULES`] entries.
#[derive(Debug, Default)]
struct Cache {
    tables: Mutex<HashMap<u64, Result<SymbolTable, Box<MissingSymbols>>>>,
}

/// The PDB file name alone (RSDS records often hold the build machine's
/// full path).
fn pdb_file(name: &str) -> &str {
    name.rsplit(['\\', '/']).next().unwrap_or(name)
}

/// Where a table for `pdb` goes, relative to a symbol directory: the
/// symbol-server PDB path (`Ntfs.pdb/<GUID><AGE hex>/Ntfs.pdb`) and the
/// Volatility ISF path (`Ntfs.pdb/<GUID>-<AGE>.json.xz`).
pub fn fetch_paths(pdb: &PdbInfo) -> Vec<String> {
    let id = pdb.identity();
    vec![id.server_path(), id.isf_path()]
}

impl SymbolSource {
    /// The table for a driver's PDB, checked against its identity, or every
    /// place searched. A table given as is (`from_table`) is the kernel's
    /// and is never used for a driver.
    ///
    /// The identity comes from a dump: only its file name is used, and a
    /// name or GUID no file could have is refused before any path is built.
    pub fn find_module(&self, id: &PdbInfo) -> Result<(SymbolTable, String), Vec<String>> {
        let mut searched = Vec::new();
        let file = pdb_file(&id.name);
        if file.is_empty()
            || file == "."
            || file == ".."
            || file.len() > 255
            || file
                .chars()
                .any(|c| c.is_control() || matches!(c, ':' | '*' | '?'))
        {
            return Err(vec![format!(
                "the RSDS PDB name {:?} is not a file name: not looked up",
                id.name
            )]);
        }
        if id.guid.len() != 32 || !id.guid.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(vec![format!(
                "the RSDS GUID {:?} is not 32 hex digits: not looked up",
                id.guid
            )]);
        }
        let id = &PdbInfo {
            name: file.to_string(),
            guid: id.guid.to_ascii_uppercase(),
            age: id.age,
        };
        let pid = id.identity();
        if let Some(store) = &self.store {
            match store.find(&pid) {
                Ok(t) => {
                    let origin = crate::discover::table_origin(&t);
                    return Ok((t, origin));
                }
                Err(e) => match e.kind {
                    hangscope_symbols::ErrorKind::NotFound { searched: s, .. } => {
                        searched.extend(s)
                    }
                    _ => searched.push(format!("symbol path: {e}")),
                },
            }
        }
        for d in &self.dirs {
            for p in Self::candidates(d, id) {
                if !p.is_file() {
                    continue;
                }
                match SymbolTable::load(&p) {
                    Ok(t) if t.identity().is_some_and(|i| i.matches(&pid)) => {
                        return Ok((t, p.display().to_string()))
                    }
                    Ok(_) => searched.push(format!("{}: describes another PDB", p.display())),
                    Err(e) => searched.push(format!("{}: unusable: {e}", p.display())),
                }
            }
            searched.push(d.display().to_string());
        }
        if self.store.is_none() && self.dirs.is_empty() {
            searched.push("no symbol path".into());
        }
        Err(searched)
    }

    /// The same places, without a table given as is (a kernel keeps this
    /// to look up its drivers' tables).
    pub(crate) fn for_modules(&self) -> SymbolSource {
        SymbolSource {
            table: None,
            store: self.store.clone(),
            dirs: self.dirs.clone(),
        }
    }
}

impl<'d> Kernel<'d> {
    /// Where drivers' own symbol tables are looked for (for `from_parts`
    /// kernels; `open` keeps the source it was given).
    pub fn set_module_symbol_source(&mut self, src: &SymbolSource) {
        self.replace_module_source(src.for_modules());
        self.module_tables().clear();
    }

    /// The module table cache, whatever a panicking holder left in it.
    fn module_tables(
        &self,
    ) -> MutexGuard<'_, HashMap<u64, Result<SymbolTable, Box<MissingSymbols>>>> {
        match self.caches.get::<Cache>().tables.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The PDB identity in the RSDS record of the PE image at `base`
    /// (read from memory, bounded to the header page and the record).
    pub fn module_pdb(&self, base: VirtAddr) -> Option<PdbInfo> {
        discover::parse_pe(self.memory(), base).map(|i| i.pdb)
    }

    /// A loaded module's own symbol table (PDB publics and procedures, or
    /// an ISF's symbols), found on the symbol path the kernel was opened
    /// with by the PDB name, GUID and age of the module's RSDS record; the
    /// kernel image gets the kernel's table. Cached per module base.
    ///
    /// Reliability: as good as the module's header page (paged-out headers
    /// give `pdb: None`); a table is used only when its identity matches.
    pub fn module_symbols(&self, module: &ModuleInfo) -> Result<SymbolTable, Box<MissingSymbols>> {
        self.module_symbols_at(module.base, &module.name)
    }

    /// [`Kernel::module_symbols`] by base and name.
    pub fn module_symbols_at(
        &self,
        base: VirtAddr,
        name: &str,
    ) -> Result<SymbolTable, Box<MissingSymbols>> {
        let base = base.0;
        if base == self.base().0 {
            return Ok(self.symbols().clone());
        }
        let mut cache = self.module_tables();
        if let Some(r) = cache.get(&base) {
            return r.clone();
        }
        let r = self.find_module_symbols(base, name);
        if cache.len() < MAX_CACHED_MODULES {
            cache.insert(base, r.clone());
        }
        r
    }

    /// Every module lookup that failed so far, by base address.
    pub fn missing_module_symbols(&self) -> Vec<MissingSymbols> {
        let cache = self.module_tables();
        let mut v: Vec<MissingSymbols> = cache
            .values()
            .filter_map(|r| r.as_ref().err().map(|m| (**m).clone()))
            .collect();
        v.sort_by_key(|m| m.base);
        v
    }

    fn find_module_symbols(
        &self,
        base: u64,
        name: &str,
    ) -> Result<SymbolTable, Box<MissingSymbols>> {
        let Some(pdb) = self.module_pdb(VirtAddr(base)) else {
            return Err(Box::new(MissingSymbols {
                module: name.to_string(),
                base: VirtAddr(base),
                pdb: None,
                reason: format!(
                    "no readable CodeView (RSDS) record in the PE header at {base:#x}: \
                     the PDB it needs is unknown"
                ),
                fetch: Vec::new(),
                searched: Vec::new(),
            }));
        };
        let miss = |reason: String, searched: Vec<String>| {
            Box::new(MissingSymbols {
                module: name.to_string(),
                base: VirtAddr(base),
                fetch: fetch_paths(&pdb),
                pdb: Some(pdb.clone()),
                reason,
                searched,
            })
        };
        let Some(src) = self.module_source() else {
            return Err(miss("no symbol path to search".into(), Vec::new()));
        };
        match src.find_module(&pdb) {
            Ok((t, origin)) => {
                log::info!("symbols for {name}: {origin}");
                Ok(t)
            }
            Err(searched) => Err(miss("no symbol table on the symbol path".into(), searched)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(name: &str, guid: &str) -> PdbInfo {
        PdbInfo {
            name: name.into(),
            guid: guid.into(),
            age: 0x1a,
        }
    }

    #[test]
    fn fetch_paths_use_the_file_name_and_both_age_forms() {
        let p = pdb(r"d:\build\obj\ntfs.pdb", "0123456789abcdef0123456789ABCDEF");
        assert_eq!(
            fetch_paths(&p),
            vec![
                "ntfs.pdb/0123456789ABCDEF0123456789ABCDEF1A/ntfs.pdb".to_string(),
                "ntfs.pdb/0123456789ABCDEF0123456789ABCDEF-26.json.xz".to_string(),
            ]
        );
    }

    #[test]
    fn hostile_identities_build_no_path() {
        let dir = std::env::temp_dir();
        let mut src = SymbolSource::default();
        src.add_dir(&dir);
        let good = "0123456789ABCDEF0123456789ABCDEF";
        for (name, guid) in [
            ("..", good),
            ("a/..", good),
            ("c:evil.pdb", good),
            ("x\u{1}.pdb", good),
            ("Ntfs.pdb", "../../../../etc/passwd0000000000"),
            ("Ntfs.pdb", "0123"),
        ] {
            let e = src.find_module(&pdb(name, guid)).expect_err("refused");
            assert_eq!(e.len(), 1, "{name} {guid}: {e:?}");
            assert!(e[0].contains("not looked up"), "{e:?}");
        }
        // A plain name is looked up (and not found) in the directory.
        let e = src.find_module(&pdb("Ntfs.pdb", good)).expect_err("absent");
        assert!(
            e.iter().any(|s| s.contains(&*dir.display().to_string())),
            "{e:?}"
        );
    }
}
