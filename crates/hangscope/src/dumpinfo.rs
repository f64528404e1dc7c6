//! What `info` shows about the dump file itself: format, size, memory
//! map, the vCPUs' registers and what the reader noted.

use hangscope_dump::Dump;
use serde::Serialize;
use std::path::Path;

/// What `info` shows about the dump file itself.
#[derive(Debug, Serialize)]
pub struct DumpSummary {
    /// The vCPU states themselves, for the text.
    #[serde(skip)]
    cpu_states: Vec<hangscope_dump::CpuState>,
    path: String,
    format: String,
    file_size: u64,
    ranges: Vec<(String, String)>,
    /// Registers as hex strings (JSON numbers lose precision above 2^53).
    cpus: Vec<serde_json::Value>,
    hints: hangscope_dump::KernelHints,
    /// What the reader noted while opening the file, truncation first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// A vCPU's registers for JSON: every value a `0x` hex string.
fn cpu_json(c: &hangscope_dump::CpuState) -> serde_json::Value {
    const GPR: [&str; 16] = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    let hex = |v: u64| serde_json::Value::String(format!("{v:#018x}"));
    let opt = |v: Option<u64>| v.map(hex).unwrap_or(serde_json::Value::Null);
    let mut m = serde_json::Map::new();
    m.insert("index".into(), c.index.into());
    for (name, v) in GPR.iter().zip(c.gpr.iter()) {
        m.insert((*name).into(), hex(*v));
    }
    m.insert("rip".into(), hex(c.rip));
    m.insert("rflags".into(), hex(c.rflags));
    const SEL: [&str; 6] = ["cs", "ds", "es", "fs", "gs", "ss"];
    for (name, v) in SEL.iter().zip(c.selectors.iter()) {
        m.insert((*name).into(), format!("{v:#06x}").into());
    }
    for (name, v) in [
        ("fs_base", c.fs_base),
        ("gs_base", c.gs_base),
        ("kernel_gs_base", c.kernel_gs_base),
        ("cr0", c.cr0),
        ("cr2", c.cr2),
        ("cr3", c.cr3),
        ("cr4", c.cr4),
        ("efer", c.efer),
    ] {
        m.insert(name.into(), opt(v));
    }
    serde_json::Value::Object(m)
}

impl DumpSummary {
    /// The summary of an opened dump.
    pub fn new(path: &Path, d: &Dump) -> DumpSummary {
        dump_summary(path, d)
    }

    /// `info`'s text about the dump: file, notes, memory map, registers.
    pub fn text(&self) -> String {
        dump_text(self, &self.cpu_states)
    }
}

fn dump_summary(path: &Path, d: &Dump) -> DumpSummary {
    DumpSummary {
        cpu_states: d.cpus.clone(),
        path: path.display().to_string(),
        format: format!("{:?}", d.format),
        file_size: d.file_size,
        ranges: d
            .memory
            .ranges()
            .iter()
            .map(|r| {
                (
                    format!("{:#x}", r.start.0),
                    format!("{:#x}", r.start.0.saturating_add(r.len)),
                )
            })
            .collect(),
        cpus: d.cpus.iter().map(cpu_json).collect(),
        hints: d.hints.clone(),
        notes: d.notes_truncation_first(),
    }
}

fn dump_text(s: &DumpSummary, cpus: &[hangscope_dump::CpuState]) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Dump:     {} ({}, {} bytes)",
        s.path, s.format, s.file_size
    );
    for n in &s.notes {
        let _ = writeln!(t, "Warning:  {n}");
    }
    let _ = writeln!(t, "Memory:   {} range(s)", s.ranges.len());
    for (a, b) in &s.ranges {
        let _ = writeln!(t, "          {a:>18} - {b}");
    }
    for c in cpus {
        let g = &c.gpr;
        let _ = writeln!(t, "CPU {}:", c.index);
        let _ = writeln!(
            t,
            "  rax={:016x} rbx={:016x} rcx={:016x} rdx={:016x}",
            g[0], g[1], g[2], g[3]
        );
        let _ = writeln!(
            t,
            "  rsi={:016x} rdi={:016x} rbp={:016x} rsp={:016x}",
            g[4], g[5], g[6], g[7]
        );
        let _ = writeln!(
            t,
            "  r8 ={:016x} r9 ={:016x} r10={:016x} r11={:016x}",
            g[8], g[9], g[10], g[11]
        );
        let _ = writeln!(
            t,
            "  r12={:016x} r13={:016x} r14={:016x} r15={:016x}",
            g[12], g[13], g[14], g[15]
        );
        let opt = |v: Option<u64>| {
            v.map(|v| format!("{v:016x}"))
                .unwrap_or_else(|| "?".repeat(16))
        };
        let _ = writeln!(t, "  rip={:016x} rflags={:08x}", c.rip, c.rflags);
        let _ = writeln!(
            t,
            "  cr0={} cr3={} cr4={}",
            opt(c.cr0),
            opt(c.cr3),
            opt(c.cr4)
        );
        let _ = writeln!(
            t,
            "  gs_base={} kernel_gs_base={} fs_base={}",
            opt(c.gs_base),
            opt(c.kernel_gs_base),
            opt(c.fs_base)
        );
    }
    t
}
