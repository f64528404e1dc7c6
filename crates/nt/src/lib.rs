//! The Windows x64 kernel model: processes, threads, locks, IRPs, files and
//! handles, read from a dump through the kernel's own symbol table.
//!
//! [`Kernel::open`] finds everything from the dump alone: the page-table
//! base (a vCPU's CR3, the header's, or a scan), the kernel image (a PE
//! whose RSDS record names the NT kernel PDB) and its symbol table by GUID
//! and age. Every structure field is then read by name through
//! [`view::Object`]; no offset lives in code, and each build's variants are
//! probed by field name.
//!
//! Reads on a broken machine fail: every listing returns what it could read
//! plus [`Warning`]s with addresses ([`model::Partial`]); every list walk is
//! bounded and cycle-checked.
//!
//! The model types in [`model`] are serde-serialisable: they are the JSON
//! output, and `hangscope-report` renders them as WinDbg-shaped text.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod discover;
pub mod eresource;
pub mod error;
pub mod handles;
pub mod io;
pub mod kernel;
pub mod mem;
pub mod misc;
pub mod model;
pub mod object;
pub mod process;
pub mod stacks;
pub mod view;
pub mod waitsource;

pub use discover::SymbolSource;
pub use error::{Error, ErrorKind, Warning};
pub use kernel::Kernel;
pub use mem::{SparseMemory, VirtualMemory};
