//! Finding the symbol file for a PDB identity: `_NT_SYMBOL_PATH` syntax,
//! Volatility and symbol-server directory layouts, and symbol-server
//! downloads.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Location};
use crate::{isf, PdbIdentity, SymbolCache, SymbolTable};

/// Largest PDB downloaded (real kernel PDBs are 10 to 40 MB).
const MAX_DOWNLOAD: u64 = 1 << 30;
/// Bounds on the directory walk that indexes ISF files by metadata.
const MAX_INDEX_DEPTH: usize = 4;
const MAX_INDEX_ENTRIES: usize = 20_000;

/// One element of a symbol path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolPathElement {
    /// A plain directory: searched in every layout.
    Dir(PathBuf),
    /// A symbol server: local stores (the first is where downloads go)
    /// and, optionally, a URL.
    Server {
        /// Downstream stores, searched in order.
        stores: Vec<PathBuf>,
        /// `http://` or `https://` URL, if any.
        url: Option<String>,
    },
    /// `cache*DIR`: a directory searched like a store, and where later
    /// servers without their own store download to.
    Cache(PathBuf),
    /// `builtin*`: the tables compiled into this crate
    /// ([`crate::builtin`]).
    Builtin,
}

/// Where to look for symbol files, in order.
#[derive(Debug)]
pub struct SymbolStore {
    elements: Vec<SymbolPathElement>,
    cache: Option<SymbolCache>,
    download: bool,
    timeout: Duration,
    /// ISF files found under a directory, by identity (built once).
    index: Mutex<HashMap<PathBuf, Vec<(PdbIdentity, PathBuf)>>>,
    /// Servers that failed below HTTP (no connection, timeout) in this
    /// run, with the error: not asked again, so a dump with many drivers
    /// costs one timeout offline, not one per driver.
    unreachable: Mutex<HashMap<String, String>>,
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// The downstream store used by `srv*URL` without one.
fn default_downstream() -> Option<PathBuf> {
    SymbolCache::default_dir().map(|d| d.with_file_name("symsrv"))
}

impl SymbolStore {
    /// Parse a symbol path in `_NT_SYMBOL_PATH` syntax: `;`-separated
    /// elements, each `srv*[STORE*...]URL`, `srv*STORE`,
    /// `symsrv*symsrv.dll*...` (read as `srv*...`), `cache*DIR`,
    /// `builtin*` (the tables compiled into this crate) or a directory.
    /// Empty elements are ignored.
    pub fn from_path_spec(spec: &str) -> Result<SymbolStore, Error> {
        let mut elements = Vec::new();
        let mut cache_dir: Option<PathBuf> = None;
        for raw in spec.split(';') {
            let el = raw.trim();
            if el.is_empty() {
                continue;
            }
            let parts: Vec<&str> = el.split('*').collect();
            let head = parts[0].to_ascii_lowercase();
            let bad = |m: &str| {
                Error::new(ErrorKind::PathSpec {
                    element: el.to_string(),
                    message: m.to_string(),
                })
            };
            let rest: &[&str] = match head.as_str() {
                "srv" => &parts[1..],
                "symsrv" => {
                    if parts.len() < 2 {
                        return Err(bad("symsrv needs a DLL name and a store"));
                    }
                    &parts[2..]
                }
                "builtin" if parts[1..].iter().all(|p| p.is_empty()) => {
                    elements.push(SymbolPathElement::Builtin);
                    continue;
                }
                "cache" => {
                    let dir = match parts.get(1).filter(|d| !d.is_empty()) {
                        Some(d) => PathBuf::from(d),
                        None => default_downstream()
                            .ok_or_else(|| bad("no cache directory and no HOME"))?,
                    };
                    cache_dir = Some(dir.clone());
                    elements.push(SymbolPathElement::Cache(dir));
                    continue;
                }
                _ => {
                    if parts.len() > 1 {
                        return Err(bad(
                            "unknown element type (expected srv*, symsrv*, cache* or a directory)",
                        ));
                    }
                    elements.push(SymbolPathElement::Dir(PathBuf::from(el)));
                    continue;
                }
            };
            let rest: Vec<&str> = rest.iter().copied().filter(|p| !p.is_empty()).collect();
            let (url, stores) = match rest.split_last() {
                Some((last, before)) if is_url(last) => (Some(last.to_string()), before.to_vec()),
                Some(_) => (None, rest.clone()),
                None => return Err(bad("srv* needs a store directory or a URL")),
            };
            if stores.iter().any(|s| is_url(s)) {
                return Err(bad("only the last srv* part may be a URL"));
            }
            let mut stores: Vec<PathBuf> = stores.into_iter().map(PathBuf::from).collect();
            if stores.is_empty() {
                let d = cache_dir
                    .clone()
                    .or_else(default_downstream)
                    .ok_or_else(|| {
                        bad("no downstream store given and no HOME for the default one")
                    })?;
                stores.push(d);
            }
            elements.push(SymbolPathElement::Server { stores, url });
        }
        Ok(SymbolStore {
            elements,
            cache: SymbolCache::from_env(),
            download: true,
            timeout: Duration::from_secs(30),
            index: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(HashMap::new()),
        })
    }

    /// `_NT_SYMBOL_PATH` (if set) followed by the given directories, e.g.
    /// the project's `../shared/symbols`.
    pub fn from_env(extra_dirs: &[PathBuf]) -> Result<SymbolStore, Error> {
        let spec = std::env::var("_NT_SYMBOL_PATH").unwrap_or_default();
        let mut s = Self::from_path_spec(&spec)?;
        for d in extra_dirs {
            s.add_dir(d);
        }
        Ok(s)
    }

    /// Search this directory too (after the others).
    pub fn add_dir(&mut self, dir: impl Into<PathBuf>) {
        self.elements.push(SymbolPathElement::Dir(dir.into()));
    }

    /// Use this compact cache (`None`: parse every time).
    pub fn with_cache(mut self, cache: Option<SymbolCache>) -> SymbolStore {
        self.cache = cache;
        self
    }

    /// Allow or forbid symbol-server downloads (allowed by default).
    pub fn with_download(mut self, allow: bool) -> SymbolStore {
        self.download = allow;
        self
    }

    /// Time limit for one download (30 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> SymbolStore {
        self.timeout = timeout;
        self
    }

    /// The parsed symbol path.
    pub fn elements(&self) -> &[SymbolPathElement] {
        &self.elements
    }

    /// The compact cache in use.
    pub fn cache(&self) -> Option<&SymbolCache> {
        self.cache.as_ref()
    }

    /// Load a candidate file through the cache, and check it is the PDB
    /// wanted.
    fn try_load(
        &self,
        path: &Path,
        id: &PdbIdentity,
        searched: &mut Vec<String>,
    ) -> Option<SymbolTable> {
        let res = match &self.cache {
            Some(c) => c.load(path),
            None => SymbolTable::load(path),
        };
        match res {
            Ok(t) => {
                // A PDB's name is its file name: a symbol-server layout
                // file may differ in case only.
                let ok = t.identity().is_some_and(|f| f.matches(id));
                if ok {
                    return Some(t);
                }
                let found = t
                    .identity()
                    .map_or("no identity".to_string(), ToString::to_string);
                searched.push(format!(
                    "{}: describes {found}, not the PDB wanted",
                    path.display()
                ));
                None
            }
            Err(e) => {
                searched.push(format!("{}: unusable: {e}", path.display()));
                None
            }
        }
    }

    /// Candidate files in a directory, in the order tried.
    fn candidates(dir: &Path, id: &PdbIdentity) -> Vec<PathBuf> {
        let mut names = vec![id.name.clone()];
        let lower = id.name.to_ascii_lowercase();
        if lower != id.name {
            names.push(lower);
        }
        let key = id.server_key();
        let mut out = Vec::new();
        for n in &names {
            let named = PdbIdentity {
                name: n.clone(),
                ..id.clone()
            };
            let stem = n.strip_suffix(".pdb").unwrap_or(n);
            // A directory that is itself `windows/<pdb>` only for the name
            // as given.
            out.extend(named.isf_candidates(dir, n == &id.name));
            out.push(dir.join(named.server_path()));
            for ext in ["json.xz", "json"] {
                out.push(dir.join(n).join(&key).join(format!("{stem}.{ext}")));
            }
        }
        out
    }

    /// ISF files under `dir` whose metadata names this PDB.
    fn indexed(&self, dir: &Path, id: &PdbIdentity) -> (usize, Vec<PathBuf>) {
        let mut index = match self.index.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let entries = index
            .entry(dir.to_path_buf())
            .or_insert_with(|| index_dir(dir));
        let hits = entries
            .iter()
            .filter(|(i, _)| i.matches(id))
            .map(|(_, p)| p.clone())
            .collect();
        (entries.len(), hits)
    }

    /// The symbol table for this PDB: the first match along the symbol
    /// path, downloading from a symbol server when one is configured.
    /// The error lists every place searched and how to fix it.
    ///
    /// The identity usually comes from a dump (an RSDS record), so it is
    /// untrusted: the name is reduced to its last path component and must
    /// be a plain file name, and the GUID must be 32 hex digits, before
    /// either is used in a path or a URL.
    pub fn find(&self, id: &PdbIdentity) -> Result<SymbolTable, Error> {
        let id = &sanitize_identity(id)?;
        let mut searched = Vec::new();
        let mut cache_dir: Option<PathBuf> = None;
        for el in &self.elements {
            match el {
                SymbolPathElement::Dir(d) | SymbolPathElement::Cache(d) => {
                    if let Some(t) = self.search_dir(d, id, true, &mut searched) {
                        return Ok(t);
                    }
                    if let SymbolPathElement::Cache(d) = el {
                        cache_dir = Some(d.clone());
                    }
                }
                SymbolPathElement::Builtin => match crate::builtin::find(id) {
                    Some(b) => match b.load() {
                        Ok(t) => return Ok(t),
                        Err(e) => searched.push(format!("{}: unusable: {e}", b.origin)),
                    },
                    None => searched.push(format!(
                        "built-in tables ({}): none for this PDB",
                        crate::builtin::BUILTIN_TABLES
                            .iter()
                            .map(|b| b.identity().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                },
                SymbolPathElement::Server { stores, url } => {
                    for s in stores {
                        if let Some(t) = self.search_dir(s, id, false, &mut searched) {
                            return Ok(t);
                        }
                    }
                    let Some(url) = url else { continue };
                    if !self.download {
                        searched.push(format!("{url}: downloads disabled"));
                        continue;
                    }
                    let Some(dest_root) = stores.first().or(cache_dir.as_ref()) else {
                        continue;
                    };
                    let earlier = self
                        .unreachable
                        .lock()
                        .map(|m| m.get(url.as_str()).cloned())
                        .unwrap_or(None);
                    if let Some(why) = earlier {
                        searched.push(format!(
                            "{url}: not asked, unreachable earlier in this run ({why})"
                        ));
                        continue;
                    }
                    match self.download(url, dest_root, id) {
                        Ok(path) => {
                            if let Some(t) = self.try_load(&path, id, &mut searched) {
                                return Ok(t);
                            }
                        }
                        Err(e) => searched.push(e.to_string()),
                    }
                }
            }
        }
        Err(Error::new(ErrorKind::NotFound {
            pdb: id.name.clone(),
            guid: id.guid.to_ascii_uppercase(),
            age: id.age,
            searched,
        }))
    }

    fn search_dir(
        &self,
        dir: &Path,
        id: &PdbIdentity,
        scan: bool,
        searched: &mut Vec<String>,
    ) -> Option<SymbolTable> {
        if !dir.is_dir() {
            searched.push(format!("{}: no such directory", dir.display()));
            return None;
        }
        let mut tried = Vec::new();
        for c in Self::candidates(dir, id) {
            if c.is_file() {
                if let Some(t) = self.try_load(&c, id, searched) {
                    return Some(t);
                }
            } else {
                tried.push(c);
            }
        }
        if let Some(first) = tried.first() {
            searched.push(format!(
                "{} (and {} other layouts under {}): not present",
                first.display(),
                tried.len() - 1,
                dir.display()
            ));
        }
        if scan {
            let (n, hits) = self.indexed(dir, id);
            for h in hits {
                if let Some(t) = self.try_load(&h, id, searched) {
                    return Some(t);
                }
            }
            searched.push(format!(
                "{}/**/*.json[.xz]: {n} ISF files indexed by metadata, none for this PDB",
                dir.display()
            ));
        }
        None
    }

    /// Fetch `URL/<pdb>/<GUID><AGE>/<pdb>` into the store, atomically.
    fn download(&self, url: &str, root: &Path, id: &PdbIdentity) -> Result<PathBuf, Error> {
        let full = format!("{}/{}", url.trim_end_matches('/'), id.server_path());
        let derr = |m: String| {
            Error::new(ErrorKind::Download {
                url: full.clone(),
                message: m,
            })
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .timeout_connect(Some(self.timeout.min(Duration::from_secs(10))))
            .http_status_as_error(false)
            .user_agent("Microsoft-Symbol-Server/10.0.0.0")
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let resp = agent.get(&full).call().map_err(|e| {
            if let Ok(mut m) = self.unreachable.lock() {
                m.insert(url.to_string(), e.to_string());
            }
            derr(e.to_string())
        })?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(derr(format!("HTTP status {status}")));
        }
        let dir = root.join(&id.name).join(id.server_key());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, &e))?;
        let dest = dir.join(&id.name);
        let tmp = dir.join(format!(".{}.part{}", id.name, std::process::id()));
        let mut body = resp
            .into_body()
            .into_with_config()
            .limit(MAX_DOWNLOAD)
            .reader();
        let mut out = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, &e))?;
        let copied = std::io::copy(&mut (&mut body).take(MAX_DOWNLOAD), &mut out);
        drop(out);
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(derr(e.to_string()));
        }
        std::fs::rename(&tmp, &dest).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::at(
                ErrorKind::Io {
                    op: "rename",
                    message: e.to_string(),
                },
                Location::file(&dest),
            )
        })?;
        Ok(dest)
    }
}

/// The identity with a safe file name, or an error saying what is wrong.
fn sanitize_identity(id: &PdbIdentity) -> Result<PdbIdentity, Error> {
    let bad = |m: String| {
        Error::new(ErrorKind::BadIdentity {
            identity: format!(
                "{} {}-{}",
                id.name.escape_debug(),
                id.guid.escape_debug(),
                id.age
            ),
            message: m,
        })
    };
    // RSDS records often hold the build machine's full path.
    let name = id.name.rsplit(['/', '\\']).next().unwrap_or("");
    if name.is_empty() || name == "." || name == ".." || name.len() > 255 {
        return Err(bad("the PDB name is not a file name".into()));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == ':' || c == '*' || c == '?')
    {
        return Err(bad("the PDB name has characters no file name has".into()));
    }
    if id.guid.len() != 32 || !id.guid.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad("the GUID is not 32 hex digits".into()));
    }
    Ok(PdbIdentity {
        name: name.to_string(),
        guid: id.guid.to_ascii_uppercase(),
        age: id.age,
    })
}

/// Walk a directory (bounded) and read the metadata of every ISF in it.
/// `<name>.pdb/<GUID>-<AGE>.json[.xz]` -> that identity.
fn identity_from_layout(p: &Path) -> Option<PdbIdentity> {
    let file = p.file_name()?.to_str()?;
    let lower = file.to_ascii_lowercase();
    let stem = lower
        .strip_suffix(".json.xz")
        .or_else(|| lower.strip_suffix(".json"))
        .map(|s| &file[..s.len()])?;
    let (guid, age) = stem.rsplit_once('-')?;
    if guid.len() != 32 || !guid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let age: u32 = age.parse().ok()?;
    let name = p.parent()?.file_name()?.to_str()?;
    if !name.to_ascii_lowercase().ends_with(".pdb") {
        return None;
    }
    Some(PdbIdentity {
        name: name.to_string(),
        guid: guid.to_ascii_uppercase(),
        age,
    })
}

fn index_dir(dir: &Path) -> Vec<(PdbIdentity, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            seen += 1;
            if seen > MAX_INDEX_ENTRIES {
                return out;
            }
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if depth < MAX_INDEX_DEPTH {
                    stack.push((p, depth + 1));
                }
                continue;
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if !(name.ends_with(".json") || name.ends_with(".json.xz")) {
                continue;
            }
            // The Volatility layout names a file after its GUID and age
            // under its PDB's directory: take the identity from the path
            // rather than decompressing every table (the kernels' take
            // ~6 ms each). A mislabelled file is still caught: `try_load`
            // checks the loaded table's own identity.
            let id = identity_from_layout(&p)
                .or_else(|| isf::read_metadata(&p).and_then(|m| m.identity()));
            if let Some(id) = id {
                out.push((id, p));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatility_layout_names_give_the_identity() {
        let id = identity_from_layout(Path::new(
            "/s/windows/ntkrnlmp.pdb/339e74133576439cbcdf7e0229da3773-1.json.xz",
        ))
        .expect("identity");
        assert_eq!(id.name, "ntkrnlmp.pdb");
        assert_eq!(id.guid, "339E74133576439CBCDF7E0229DA3773");
        assert_eq!(id.age, 1);
        for p in [
            "/s/windows/ntkrnlmp.pdb/339E74133576439CBCDF7E0229DA3773.json",
            "/s/windows/ntkrnlmp.pdb/339E74133576439CBCDF7E0229DA37-1.json",
            "/s/windows/other/339E74133576439CBCDF7E0229DA3773-1.json",
            "/s/windows/ntkrnlmp.pdb/339E74133576439CBCDF7E0229DA3773-x.json",
        ] {
            assert!(identity_from_layout(Path::new(p)).is_none(), "{p}");
        }
    }
}
