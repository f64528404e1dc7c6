//! The on-disk cache of compact symbol tables.
//!
//! One file per source file, named after the source's name and a hash of
//! its full path; the header records the source's size and mtime, so an
//! edited or replaced source is rebuilt. A cache file that fails any check
//! (magic, version, bounds, checksum, source key) is ignored and rewritten.

use std::path::{Path, PathBuf};

use crate::compact::SourceKey;
use crate::error::Error;
use crate::{source_key, source_kind, SymbolTable};

/// The source key a keyed entry carries: kind 3, and two independent
/// hashes of the key where a file's size and mtime would be.
fn keyed_source(key: &str) -> SourceKey {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(key.as_bytes());
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&d[i..i + 8]);
        u64::from_le_bytes(w)
    };
    SourceKey {
        size: word(0),
        mtime_ns: word(8),
        kind: crate::compact::KIND_KEYED,
    }
}

/// Where compact symbol tables are kept between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolCache {
    dir: PathBuf,
}

/// FNV-1a, enough to give distinct sources distinct cache file names.
fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl SymbolCache {
    /// A cache in this directory (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> SymbolCache {
        SymbolCache { dir: dir.into() }
    }

    /// The default directory: `$HANGSCOPE_SYMBOL_CACHE`, else
    /// `$XDG_CACHE_HOME/hangscope/symbols`, else `~/.cache/hangscope/symbols`.
    pub fn default_dir() -> Option<PathBuf> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(d) = env("HANGSCOPE_SYMBOL_CACHE") {
            return Some(d);
        }
        if let Some(d) = env("XDG_CACHE_HOME") {
            return Some(d.join("hangscope").join("symbols"));
        }
        env("HOME").map(|h| h.join(".cache").join("hangscope").join("symbols"))
    }

    /// A cache in [`SymbolCache::default_dir`], if one can be named.
    pub fn from_env() -> Option<SymbolCache> {
        Self::default_dir().map(SymbolCache::new)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache file used for a source file.
    pub fn cache_path(&self, source: &Path) -> PathBuf {
        let full = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
        let stem: String = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        let h = fnv64(full.to_string_lossy().as_bytes());
        self.dir.join(format!("{stem}-{h:016x}.hsym"))
    }

    /// The cached table for `source` if the cache holds a valid, current
    /// one; `None` otherwise (missing, stale or damaged).
    pub fn load_cached(&self, source: &Path) -> Option<SymbolTable> {
        let key = source_key(source, source_kind(source)).ok()?;
        self.open(source, key).ok()
    }

    fn open(&self, source: &Path, key: SourceKey) -> Result<SymbolTable, Error> {
        SymbolTable::open_compact(&self.cache_path(source), Some(key), Some(source))
    }

    /// Load `source` (ISF, PDB or vmlinux) through the cache: map the cached image
    /// when it is current, else parse the source and write the image for
    /// next time. Failing to write the cache is not an error (the table is
    /// still returned); a damaged cache file is replaced.
    pub fn load(&self, source: &Path) -> Result<SymbolTable, Error> {
        if let Some(t) = self.load_cached(source) {
            return Ok(t);
        }
        let table = SymbolTable::load(source)?;
        // Best effort: a read-only cache directory only costs speed.
        let _ = self.store(source, &table);
        Ok(table)
    }

    /// A cache key for a BTF blob (or any bytes a table is built from):
    /// `btf-sha256-<hex>` of its content. Hashing the kernel's 5 MB of BTF
    /// takes about 15 ms, far less than converting it.
    pub fn content_key(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(bytes);
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push_str(&format!("{b:02x}"));
        }
        format!("btf-sha256-{hex}")
    }

    /// The cache file for a keyed entry (see [`SymbolCache::load_or_build`]).
    pub fn keyed_path(&self, key: &str) -> PathBuf {
        let stem: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        self.dir
            .join(format!("key-{stem}-{:016x}.hsym", fnv64(key.as_bytes())))
    }

    /// A table that has no source file (BTF read from a dump), cached by
    /// `key`: [`SymbolCache::content_key`] of the blob, or a key the caller
    /// trusts to name one kernel build (its OSRELEASE and build id). The
    /// cached image is memory-mapped when present and valid; otherwise
    /// `build` runs and its table is written for next time (failing to
    /// write costs only speed). The key is recorded in the image, so a
    /// file-name collision is a rebuild, never a wrong table.
    pub fn load_or_build(
        &self,
        key: &str,
        build: impl FnOnce() -> Result<SymbolTable, Error>,
    ) -> Result<SymbolTable, Error> {
        let path = self.keyed_path(key);
        let expected = keyed_source(key);
        if let Ok(t) = SymbolTable::open_compact(&path, Some(expected), None) {
            return Ok(t);
        }
        let table = build()?;
        let _ = self.write_keyed(&path, expected, &table);
        Ok(table)
    }

    /// Write `table` as the keyed entry, with the key's stamp in place of
    /// the source key the table was built with.
    fn write_keyed(&self, path: &Path, key: SourceKey, table: &SymbolTable) -> Result<(), Error> {
        let bytes = crate::compact::restamp(table.compact_bytes(), key)
            .map_err(|m| Error::new(crate::ErrorKind::Cache { message: m }))?;
        self.write_atomically(path, &bytes)
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("create directory", &self.dir, &e))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, &e))?;
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("rename", path, &e));
        }
        Ok(())
    }

    /// Write a table's compact image as the cache entry for `source`,
    /// atomically (temporary file, then rename).
    pub fn store(&self, source: &Path, table: &SymbolTable) -> Result<PathBuf, Error> {
        let path = self.cache_path(source);
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("create directory", &self.dir, &e))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, table.compact_bytes()).map_err(|e| Error::io("write", &tmp, &e))?;
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("rename", &path, &e));
        }
        Ok(path)
    }
}
