//! Renderers for hangscope's model: WinDbg-shaped text, JSON and HTML.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod verdict;
pub mod windbg;
