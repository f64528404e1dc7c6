//! Renderers for hangscope's model: WinDbg-shaped text, JSON and HTML.
//!
//! The verdict renderers read only the serialisable
//! [`hangscope_waitgraph::Verdict`]:
//!
//! ```
//! use hangscope_waitgraph::{analyze, AnalyzeOptions, WaitGraphInput};
//! use hangscope_report::{render_html, render_json, render_text};
//!
//! // An empty model proves nothing: the verdict is inconclusive, never healthy.
//! let verdict = analyze(&WaitGraphInput::default(), &AnalyzeOptions::default());
//! assert!(render_text(&verdict).starts_with("hangscope verdict: INCONCLUSIVE (exit code 5)"));
//! let json: serde_json::Value = serde_json::from_str(&render_json(&verdict)).unwrap();
//! assert_eq!(json["schema_version"], 1);
//! assert_eq!(json["overall"], "inconclusive");
//! assert!(render_html(&verdict).starts_with("<!DOCTYPE html>"));
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod alpc;
pub mod html;
pub mod json;
pub mod linux;
pub mod pushlock_mutex;
pub mod series;
pub mod stacks;
pub mod verdict;
pub mod windbg;

pub use html::render_html;
pub use series::{render_series_html, render_series_json, render_series_text};

/// The README's example, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
pub use json::{json_document, render_json, JsonDocument, SCHEMA_VERSION};
pub use verdict::render_text;
