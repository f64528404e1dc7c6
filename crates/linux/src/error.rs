//! The one error type of the Linux kernel model: what went wrong and where.

use hangscope_x64::{Fault, FaultKind, VirtAddr};
use std::fmt;

/// What went wrong while reading the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A virtual address could not be read (the page walk says why).
    Fault(FaultKind),
    /// Memory was readable but holds an impossible value.
    BadData(String),
    /// The type source lacks a type, field or symbol this reader needs.
    MissingSymbol {
        /// The type (or `symbol` for a global).
        ty: String,
        /// The field or symbol name, when the type itself exists.
        field: Option<String>,
    },
    /// No type information for this kernel: neither BTF in the dump nor a
    /// table given by the user.
    TypesNotFound {
        /// The kernel release (`uname -r`), when known.
        release: Option<String>,
        /// Why the BTF in the dump could not be used.
        reason: String,
    },
    /// The kernel could not be located in the dump.
    KernelNotFound(String),
    /// The kernel's layout is one this model does not read.
    Unsupported(String),
}

/// A kernel-model error: what and, when known, at which virtual address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The virtual address involved, when there is one.
    pub at: Option<VirtAddr>,
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A short stable name for logs and tests.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ErrorKind::Fault(_) => "Fault",
            ErrorKind::BadData(_) => "BadData",
            ErrorKind::MissingSymbol { .. } => "MissingSymbol",
            ErrorKind::TypesNotFound { .. } => "TypesNotFound",
            ErrorKind::KernelNotFound(_) => "KernelNotFound",
            ErrorKind::Unsupported(_) => "Unsupported",
        }
    }

    /// Bad data at an address.
    pub fn bad_data(at: VirtAddr, what: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::BadData(what.into()),
            at: Some(at),
        }
    }

    /// A missing type, field or symbol.
    pub fn missing(ty: &str, field: Option<&str>) -> Error {
        Error {
            kind: ErrorKind::MissingSymbol {
                ty: ty.to_string(),
                field: field.map(str::to_string),
            },
            at: None,
        }
    }

    /// A missing global symbol.
    pub fn missing_symbol(name: &str) -> Error {
        Error::missing("symbol", Some(name))
    }

    /// The kernel was not found, and why.
    pub fn not_found(why: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::KernelNotFound(why.into()),
            at: None,
        }
    }

    /// True when the error is a missing symbol (a kernel version
    /// difference, not corrupt memory).
    pub fn is_missing_symbol(&self) -> bool {
        matches!(self.kind, ErrorKind::MissingSymbol { .. })
    }
}

impl From<Fault> for Error {
    fn from(f: Fault) -> Error {
        Error {
            kind: ErrorKind::Fault(f.kind),
            at: Some(f.addr),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Fault(k) => write!(f, "cannot read memory: {k}")?,
            ErrorKind::BadData(w) => write!(f, "bad data: {w}")?,
            ErrorKind::MissingSymbol { ty, field } => match (ty.as_str(), field) {
                ("symbol", Some(s)) => write!(f, "the kernel has no symbol {s}")?,
                (t, Some(fl)) => write!(f, "the type information lacks {t}.{fl}")?,
                (t, None) => write!(f, "the type information lacks {t}")?,
            },
            ErrorKind::TypesNotFound { release, reason } => {
                write!(f, "no type information for this Linux kernel: {reason}")?;
                match release {
                    Some(r) => write!(
                        f,
                        "; give its vmlinux with debug info (-y), e.g. from the Debian package \
                         linux-image-{r}-dbg (/usr/lib/debug/boot/vmlinux-{r})"
                    )?,
                    None => write!(f, "; give the kernel's vmlinux with debug info (-y)")?,
                }
            }
            ErrorKind::KernelNotFound(w) => write!(f, "no Linux kernel found: {w}")?,
            ErrorKind::Unsupported(w) => write!(f, "not supported: {w}")?,
        }
        if let Some(at) = self.at {
            write!(f, " at {at}")?;
        }
        Ok(())
    }
}
