//! The crate's error: what went wrong with a module's image or unwind data,
//! and where.

use hangscope_pe::ErrorKind as PeErrorKind;
use hangscope_x64::{Fault, VirtAddr};
use std::fmt;

/// Where an error was found: the module (by name) and the virtual address
/// of the structure being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Module name as the caller gave it.
    pub module: String,
    /// Address of the structure (header, RUNTIME_FUNCTION, UNWIND_INFO).
    pub va: VirtAddr,
}

/// What went wrong. Variants carry the raw bad values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The image headers are unreadable or malformed, as `hangscope-pe`
    /// (the one PE reader) found them: the PE crate's own kind, wrapped.
    Image(PeErrorKind),
    /// The image is not x64 (`IMAGE_FILE_HEADER.Machine`).
    NotAmd64 {
        /// The value found.
        machine: u16,
    },
    /// The exception directory lies outside the image.
    ExceptionDirectoryOutOfImage {
        /// Directory RVA.
        rva: u32,
        /// Directory size.
        size: u32,
    },
    /// Part of the `.pdata` table is unreadable and the address may be
    /// described by a missing entry: leaf or not cannot be decided.
    PdataIncomplete {
        /// RVA looked up.
        rva: u32,
    },
    /// The RUNTIME_FUNCTION that covers the address overlaps another one.
    PdataOverlap {
        /// RVA looked up.
        rva: u32,
        /// BeginAddress of the entry found.
        begin: u32,
    },
    /// A RUNTIME_FUNCTION found through an indirect or chained link is
    /// outside the image, empty, or cannot be read.
    BadRuntimeFunction {
        /// RVA of the RUNTIME_FUNCTION.
        rva: u32,
    },
    /// An UNWIND_INFO could not be read.
    UnwindInfoUnreadable {
        /// RVA of the UNWIND_INFO.
        rva: u32,
        /// The failed read.
        read: Fault,
    },
    /// UNWIND_INFO version other than 1 or 2.
    UnsupportedUnwindVersion {
        /// RVA of the UNWIND_INFO.
        rva: u32,
        /// The version found.
        version: u8,
    },
    /// An unwind code is unknown or needs more slots than CountOfCodes.
    BadUnwindCode {
        /// RVA of the UNWIND_INFO.
        rva: u32,
        /// Index of the slot.
        slot: u8,
        /// The raw UnwindOp.
        op: u8,
    },
    /// UNWIND_INFO names a frame register but is used without one, or the
    /// frame register is RSP.
    BadFrameRegister {
        /// RVA of the UNWIND_INFO.
        rva: u32,
        /// The raw FrameRegister field.
        register: u8,
    },
    /// A register value the unwind codes need was not given in the start
    /// context nor restored by an inner frame.
    UnknownRegister {
        /// Register number in unwind-code numbering (0 = RAX ... 15 = R15).
        register: u8,
    },
    /// Chained (or indirect) unwind information nests deeper than allowed:
    /// a corrupt or cyclic chain.
    ChainTooDeep {
        /// The limit that was hit.
        limit: u32,
    },
    /// Address arithmetic wrapped around (corrupt register or offset).
    AddressOverflow,
}

/// An error with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// What.
    pub kind: ErrorKind,
    /// Where, when known.
    pub at: Option<Location>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Error { kind, at: None }
    }

    pub(crate) fn at(kind: ErrorKind, module: &str, va: u64) -> Self {
        Error {
            kind,
            at: Some(Location {
                module: module.to_string(),
                va: VirtAddr(va),
            }),
        }
    }

    /// A short stable name for logs and JSON.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ErrorKind::Image(PeErrorKind::Unreadable(_)) => "header_unreadable",
            ErrorKind::Image(PeErrorKind::BadDosSignature { .. }) => "bad_dos_signature",
            ErrorKind::Image(PeErrorKind::BadNtHeaderOffset { .. }) => "bad_nt_header_offset",
            ErrorKind::Image(PeErrorKind::BadNtSignature { .. }) => "bad_nt_signature",
            // A kind hangscope-pe adds later reads as an unusable header.
            ErrorKind::Image(_) => "bad_optional_header",
            ErrorKind::NotAmd64 { .. } => "not_amd64",
            ErrorKind::ExceptionDirectoryOutOfImage { .. } => "exception_directory_out_of_image",
            ErrorKind::PdataIncomplete { .. } => "pdata_incomplete",
            ErrorKind::PdataOverlap { .. } => "pdata_overlap",
            ErrorKind::BadRuntimeFunction { .. } => "bad_runtime_function",
            ErrorKind::UnwindInfoUnreadable { .. } => "unwind_info_unreadable",
            ErrorKind::UnsupportedUnwindVersion { .. } => "unsupported_unwind_version",
            ErrorKind::BadUnwindCode { .. } => "bad_unwind_code",
            ErrorKind::BadFrameRegister { .. } => "bad_frame_register",
            ErrorKind::UnknownRegister { .. } => "unknown_register",
            ErrorKind::ChainTooDeep { .. } => "chain_too_deep",
            ErrorKind::AddressOverflow => "address_overflow",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match &self.kind {
            // The header-unreadable kind has always printed under this name.
            ErrorKind::Image(PeErrorKind::Unreadable(fault)) => {
                write!(f, "HeaderUnreadable({fault:?})")?
            }
            ErrorKind::Image(kind) => write!(f, "{kind:?}")?,
            kind => write!(f, "{kind:?}")?,
        }
        if let Some(at) = &self.at {
            write!(f, " in module {} at {}", at.module, at.va)?;
        }
        let hint = match self.kind {
            ErrorKind::Image(PeErrorKind::Unreadable(_))
            | ErrorKind::UnwindInfoUnreadable { .. }
            | ErrorKind::PdataIncomplete { .. } => {
                " (the page is missing from the dump: a complete or kernel dump may have it)"
            }
            ErrorKind::UnknownRegister { .. } => {
                " (pass the register in the start context: e.g. from the switch frame)"
            }
            _ => " (corrupt image in memory, or wrong module base/size)",
        };
        f.write_str(hint)
    }
}
