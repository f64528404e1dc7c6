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
//!
//! ```
//! use hangscope_lab::format::{self, Format};
//! use hangscope_lab::{build, builds, BuildOptions, Scenario, Symbols};
//! use hangscope_nt::{Kernel, SymbolSource, VirtAddr};
//!
//! // A lab image of a two-thread deadlock on Windows 7 SP1, as a raw dump.
//! let sc = Scenario::builtin("deadlock")?;
//! let opts = BuildOptions { ram_size: Some(64 << 20), seed: 1, build: Some("win7sp1".into()) };
//! let (img, truth) = build(&sc, Symbols::Default, &opts)?;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("deadlock.raw");
//! format::write(&img, Format::Raw, &path, false)?;
//!
//! // No header, no registers: the kernel is found by scanning.
//! let dump = hangscope_dump::Dump::open(&path)?;
//! let symbols = SymbolSource::from_path_spec(&builds::symbols_dir().display().to_string())?;
//! let kernel = Kernel::open(&dump, &symbols)?;
//! assert_eq!(kernel.base().0, truth.kernel.kernel_base);
//!
//! // Every contended lock, its owners and its waiters.
//! for r in kernel.eresources().items.iter().filter(|r| r.is_contended()) {
//!     let owners: Vec<VirtAddr> = r.owners.iter().map(|o| o.thread).collect();
//!     let waiters: Vec<VirtAddr> = r.waiters.iter().map(|w| w.thread).collect();
//!     println!("{:#x}: owners {owners:x?} waiters {waiters:x?}", r.address);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod alpc;
mod cache;
pub mod discover;
pub mod eresource;
pub mod error;
pub mod handles;
pub mod io;
pub mod kernel;
pub mod misc;
pub mod model;
pub mod modsyms;
pub mod mutex;
pub mod object;
pub mod pool;
pub mod process;
pub mod pte;
pub mod pushlock;
pub mod sched;
pub mod stacks;
pub mod view;
pub mod waitsource;

pub use discover::SymbolSource;
pub use error::{Error, ErrorKind};
/// Kernel virtual addresses, as every accessor takes them.
pub use hangscope_x64::VirtAddr;
pub use hangscope_x64::{SparseMemory, VirtualMemory};
pub use kernel::Kernel;
pub use model::{MissingSymbols, ThreadState, WaitReason, Warning, WarningKind};
pub use pte::{WindowsPte, WINDOWS_PTE};
