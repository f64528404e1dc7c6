//! The one error type of the kernel model: what went wrong and where.

pub use crate::model::{Warning, WarningKind};
use hangscope_x64::{Fault, FaultKind, VirtAddr};
use std::fmt;

/// What went wrong while reading the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A virtual address could not be read (the page walk says why).
    Fault(FaultKind),
    /// Memory was readable but holds an impossible value (a list that
    /// loops, a count out of range, a pointer that is not canonical).
    BadData(String),
    /// The symbol table lacks a type, field or symbol this reader needs.
    MissingSymbol {
        /// The type (or `symbol` for a global).
        ty: String,
        /// The field path or symbol name, when the type itself exists.
        field: Option<String>,
        /// The kernel build the table describes, when known.
        build: Option<u32>,
    },
    /// No symbol table matches the kernel in the dump.
    SymbolsNotFound {
        /// PDB file name from the kernel's RSDS record.
        pdb: String,
        /// GUID, 32 hex digits in symbol-server order.
        guid: String,
        /// Age.
        age: u32,
        /// Every place that was searched.
        searched: Vec<String>,
    },
    /// The kernel could not be located in the dump.
    KernelNotFound(String),
    /// The dump layer failed.
    Dump(String),
}

/// A kernel-model error: what and, when known, at which virtual address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The virtual address involved, when there is one.
    pub at: Option<VirtAddr>,
    /// The link a list walk followed to reach `at`, when the bad value was
    /// found through one: that link is where the damage is.
    pub via: Option<VirtAddr>,
}

impl Error {
    /// A short stable name for logs and tests.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ErrorKind::Fault(_) => "Fault",
            ErrorKind::BadData(_) => "BadData",
            ErrorKind::MissingSymbol { .. } => "MissingSymbol",
            ErrorKind::SymbolsNotFound { .. } => "SymbolsNotFound",
            ErrorKind::KernelNotFound(_) => "KernelNotFound",
            ErrorKind::Dump(_) => "Dump",
        }
    }

    /// The kind a warning made from this error has.
    pub fn warning_kind(&self) -> WarningKind {
        match self.kind {
            ErrorKind::Fault(_) => WarningKind::Fault,
            ErrorKind::BadData(_) => WarningKind::BadData,
            ErrorKind::MissingSymbol { .. } => WarningKind::MissingSymbol,
            ErrorKind::SymbolsNotFound { .. } => WarningKind::SymbolsNotFound,
            ErrorKind::KernelNotFound(_) => WarningKind::KernelNotFound,
            ErrorKind::Dump(_) => WarningKind::Dump,
        }
    }

    /// Bad data at an address.
    pub fn bad_data(at: VirtAddr, what: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::BadData(what.into()),
            at: Some(at),
            via: None,
        }
    }

    /// A missing type or field.
    pub fn missing(ty: &str, field: Option<&str>, build: Option<u32>) -> Error {
        Error {
            kind: ErrorKind::MissingSymbol {
                ty: ty.to_string(),
                field: field.map(str::to_string),
                build,
            },
            at: None,
            via: None,
        }
    }

    /// The same error, found through the link at `via`.
    pub fn via(mut self, via: VirtAddr) -> Error {
        self.via = Some(via);
        self
    }

    /// True when the error is a missing symbol (a build difference, not
    /// corrupt memory).
    pub fn is_missing_symbol(&self) -> bool {
        matches!(self.kind, ErrorKind::MissingSymbol { .. })
    }
}

impl From<Fault> for Error {
    fn from(f: Fault) -> Error {
        Error {
            kind: ErrorKind::Fault(f.kind),
            at: Some(f.addr),
            via: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            // The fault's own text (hangscope-x64 writes it, once).
            ErrorKind::Fault(k) => write!(f, "cannot read memory: {k}")?,
            ErrorKind::BadData(w) => write!(f, "bad data: {w}")?,
            ErrorKind::MissingSymbol { ty, field, build } => {
                write!(f, "the symbol table lacks {ty}")?;
                if let Some(fl) = field {
                    write!(f, ".{fl}")?;
                }
                if let Some(b) = build {
                    write!(f, " (build {b})")?;
                }
                write!(f, "; hangscope does not know this layout yet")?;
            }
            ErrorKind::SymbolsNotFound {
                pdb,
                guid,
                age,
                searched,
            } => {
                let id = hangscope_symbols::PdbIdentity {
                    name: pdb.clone(),
                    guid: guid.clone(),
                    age: *age,
                };
                write!(
                    f,
                    "no symbols for the kernel {pdb} GUID {guid} age {age}: fetch \
                     {} (PDB) or an ISF {} \
                     and pass its directory with --symbols; searched: {}",
                    id.server_path(),
                    id.isf_path(),
                    if searched.is_empty() {
                        "nothing (no symbol path)".to_string()
                    } else {
                        searched.join(", ")
                    }
                )?;
            }
            ErrorKind::KernelNotFound(w) => write!(f, "kernel not found: {w}")?,
            ErrorKind::Dump(w) => write!(f, "dump: {w}")?,
        }
        if let Some(at) = self.at {
            write!(f, " at {at}")?;
        }
        if let Some(via) = self.via {
            write!(f, " (reached through the link at {via})")?;
        }
        Ok(())
    }
}

impl Warning {
    /// A warning from an error met while reading `context`.
    pub fn from_error(context: impl Into<String>, e: &Error) -> Warning {
        Warning {
            context: context.into(),
            kind: e.warning_kind(),
            message: e.to_string(),
            address: e.at,
            leaves_incomplete: None,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
