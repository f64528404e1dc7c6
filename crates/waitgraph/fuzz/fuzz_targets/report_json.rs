//! Any bytes -> input -> verdict -> text, JSON and HTML; the JSON must
//! parse and name its schema version. Run: `cargo fuzz run report_json`.
#![no_main]

use hangscope_waitgraph::{analyze, AnalyzeOptions};
use libfuzzer_sys::fuzz_target;

#[path = "decode.rs"]
mod decode;

fuzz_target!(|data: &[u8]| {
    let v = analyze(&decode::decode(data), &AnalyzeOptions::default());
    let _ = hangscope_report::render_text(&v);
    let json = hangscope_report::render_json(&v);
    let doc: serde_json::Value = serde_json::from_str(&json).expect("render_json wrote bad JSON");
    assert_eq!(doc["schema_version"], hangscope_report::SCHEMA_VERSION);
    let html = hangscope_report::render_html(&v);
    assert!(html.ends_with("</html>\n"));
});
