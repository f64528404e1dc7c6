//! The one JSON envelope of every `--json` document, and its one schema
//! version (docs/json-schema.md).
//!
//! Two shapes share it, both starting from [`SCHEMA_VERSION`]: a listing
//! (`ps`, `locks`, `thread`, ...) is `{"schema_version", "type", "data"}`,
//! and the verdict puts its generator, exit code and fields at top level
//! beside `schema_version`, as the schema documents them.

use hangscope_waitgraph::Verdict;
use serde::Serialize;

/// Version of the JSON documents; bumped on incompatible changes (see
/// `docs/json-schema.md`).
pub const SCHEMA_VERSION: u32 = 1;

/// A listing's document: the model's value under `data`, its name under
/// `type`.
pub fn listing_document(kind: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "type": kind,
        "data": data,
    })
}

/// The JSON document: `schema_version`, generator and exit code, then the
/// verdict's fields at top level.
#[derive(Debug, Serialize)]
pub struct JsonDocument<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `hangscope-report <version>`.
    pub generator: String,
    /// The exit code the CLI returns for this verdict.
    pub exit_code: u8,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: &'a Verdict,
}

impl<'a> JsonDocument<'a> {
    /// Wrap a verdict.
    pub fn new(verdict: &'a Verdict) -> Self {
        JsonDocument {
            schema_version: SCHEMA_VERSION,
            generator: format!("hangscope-report {}", env!("CARGO_PKG_VERSION")),
            exit_code: verdict.overall.exit_code(),
            verdict,
        }
    }
}

/// The JSON document as a value, for callers that add their own top-level
/// keys (the CLI adds the kernel model under `model`).
pub fn json_document(v: &Verdict) -> serde_json::Value {
    // A Verdict holds only strings, integers, finite floats and hex-string
    // addresses, so serialisation cannot fail; keep a fallback anyway.
    serde_json::to_value(JsonDocument::new(v)).unwrap_or_else(|e| {
        serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "error": format!("cannot serialise the verdict: {e}"),
        })
    })
}

/// One pretty-printed JSON document, newline-terminated, fields in the
/// order of the schema.
pub fn render_json(v: &Verdict) -> String {
    let mut s = serde_json::to_string_pretty(&JsonDocument::new(v)).unwrap_or_else(|e| {
        serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "error": format!("cannot serialise the verdict: {e}"),
        })
        .to_string()
    });
    s.push('\n');
    s
}
