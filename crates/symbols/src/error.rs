//! The one error type of this crate: a kind plus where it happened.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where an error happened: a file, and inside it a byte offset or a record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The file read or written.
    pub path: Option<PathBuf>,
    /// Byte offset inside the file (or, for JSON, the 1-based line).
    pub offset: Option<u64>,
    /// What was being read at the time: a record index, a type name, a URL.
    pub record: Option<String>,
}

impl Location {
    /// A location that names only a file.
    pub fn file(path: &Path) -> Location {
        Location {
            path: Some(path.to_path_buf()),
            ..Location::default()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(p) = &self.path {
            write!(f, "{}", p.display())?;
            sep = ", ";
        }
        if let Some(o) = self.offset {
            write!(f, "{sep}offset {o:#x}")?;
            sep = ", ";
        }
        if let Some(r) = &self.record {
            write!(f, "{sep}{r}")?;
        }
        Ok(())
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file could not be opened, read or written.
    Io {
        /// What was attempted (`open`, `read`, `write`, ...).
        op: &'static str,
        /// The operating system's message.
        message: String,
    },
    /// The ISF JSON is not valid JSON or does not have the ISF shape.
    Json {
        /// serde_json's message (with line and column).
        message: String,
    },
    /// The file is well-formed but describes something inconsistent.
    Format {
        /// What is wrong.
        message: String,
    },
    /// The pdb crate refused the file.
    Pdb {
        /// The pdb crate's message.
        message: String,
    },
    /// A BTF blob (Linux) is damaged or not BTF; the location's offset is
    /// the byte in that blob, its record names the blob.
    Btf {
        /// What is wrong.
        message: String,
    },
    /// The compact symbol cache file is unusable (it is then rebuilt).
    Cache {
        /// Why it was rejected.
        message: String,
    },
    /// No symbol file for this identity was found anywhere.
    NotFound {
        /// PDB name.
        pdb: String,
        /// GUID, 32 upper-case hex digits.
        guid: String,
        /// Age.
        age: u32,
        /// Every place looked at, in order, with what was found there.
        searched: Vec<String>,
    },
    /// A file was found but describes another PDB.
    IdentityMismatch {
        /// Wanted `name GUID-age`.
        expected: String,
        /// Found `name GUID-age` (or `none`).
        found: String,
    },
    /// A symbol server download failed.
    Download {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// A PDB identity (usually read from a dump) that cannot name a file.
    BadIdentity {
        /// The identity as given.
        identity: String,
        /// What is wrong with it.
        message: String,
    },
    /// `_NT_SYMBOL_PATH` syntax not understood.
    PathSpec {
        /// The offending element.
        element: String,
        /// Why.
        message: String,
    },
}

/// A symbol error: what went wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where, if known (boxed to keep `Result`s small).
    pub at: Option<Box<Location>>,
}

impl Error {
    /// An error without a location.
    pub fn new(kind: ErrorKind) -> Error {
        Error { kind, at: None }
    }

    /// An error at a location.
    pub fn at(kind: ErrorKind, at: Location) -> Error {
        Error {
            kind,
            at: Some(Box::new(at)),
        }
    }

    /// An I/O error on a file.
    pub fn io(op: &'static str, path: &Path, e: &std::io::Error) -> Error {
        Error::at(
            ErrorKind::Io {
                op,
                message: e.to_string(),
            },
            Location::file(path),
        )
    }

    /// A format error on a file.
    pub fn format(path: &Path, message: impl Into<String>) -> Error {
        Error::at(
            ErrorKind::Format {
                message: message.into(),
            },
            Location::file(path),
        )
    }

    /// A short stable name of the kind, for logs and the CLI.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ErrorKind::Io { .. } => "Io",
            ErrorKind::Json { .. } => "Json",
            ErrorKind::Format { .. } => "Format",
            ErrorKind::Pdb { .. } => "Pdb",
            ErrorKind::Btf { .. } => "Btf",
            ErrorKind::Cache { .. } => "Cache",
            ErrorKind::NotFound { .. } => "SymbolsNotFound",
            ErrorKind::IdentityMismatch { .. } => "IdentityMismatch",
            ErrorKind::Download { .. } => "Download",
            ErrorKind::PathSpec { .. } => "PathSpec",
            ErrorKind::BadIdentity { .. } => "BadIdentity",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut at = self.at.as_deref();
        match &self.kind {
            ErrorKind::Io { op, message } => match at.and_then(|l| l.path.as_ref()) {
                // Say the file in the sentence, not in a trailing "(at ...)".
                Some(p) if at.is_some_and(|l| l.offset.is_none() && l.record.is_none()) => {
                    write!(f, "cannot {op} {}: {message}", p.display())?;
                    at = None;
                }
                _ => write!(f, "cannot {op}: {message}")?,
            },
            ErrorKind::Json { message } => write!(f, "not a valid ISF symbol table: {message}")?,
            ErrorKind::Format { message } => write!(f, "bad symbol file: {message}")?,
            ErrorKind::Pdb { message } => write!(f, "cannot read PDB: {message}")?,
            ErrorKind::Btf { message } => write!(f, "bad BTF: {message}")?,
            ErrorKind::Cache { message } => write!(f, "unusable symbol cache file: {message}")?,
            ErrorKind::NotFound {
                pdb,
                guid,
                age,
                searched,
            } => {
                write!(
                    f,
                    "no symbols for {pdb} GUID {guid} age {age} (symbol-server key {guid}{age:X})"
                )?;
                if searched.is_empty() {
                    write!(f, "; no symbol path was given")?;
                } else {
                    write!(f, "; searched:")?;
                    for s in searched {
                        write!(f, "\n  - {s}")?;
                    }
                }
                write!(
                    f,
                    "\nTo fix: set _NT_SYMBOL_PATH=srv*C:\\symbols*https://msdl.microsoft.com/download/symbols \
                     (or srv*$HOME/.cache/symbols*https://msdl.microsoft.com/download/symbols) on a machine \
                     with network access, or copy {pdb} to <dir>/{pdb}/{guid}{age:X}/{pdb}, or a Volatility \
                     ISF to <dir>/windows/{pdb}/{guid}-{age}.json.xz (e.g. made by volatility3's pdbconv: \
                     `python -m volatility3.framework.symbols.windows.pdbconv -f {pdb} -o {guid}-{age}.json.xz`), \
                     where <dir> is a directory on the symbol path"
                )?;
            }
            ErrorKind::IdentityMismatch { expected, found } => {
                write!(f, "symbol file describes {found}, wanted {expected}")?
            }
            ErrorKind::Download { url, message } => {
                write!(f, "download of {url} failed: {message}")?
            }
            ErrorKind::BadIdentity { identity, message } => write!(
                f,
                "PDB identity `{identity}` cannot be looked up: {message}"
            )?,
            ErrorKind::PathSpec { element, message } => {
                write!(f, "symbol path element `{element}`: {message}")?
            }
        }
        if let Some(at) = at {
            write!(f, " (at {at})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
