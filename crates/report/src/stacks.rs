//! WinDbg-shaped text for kernel stacks: the frame table of `!thread` and
//! `k` (`# Child-SP RetAddr Call Site`), `!stacks` groups and
//! `!running -t`.

use hangscope_nt::model::HexValue;
use hangscope_nt::stacks::{RunningCpu, StackInfo, StacksReport};
use hangscope_nt::{MissingSymbols, ThreadState};
use std::fmt::Write as _;

/// `fffff800`02a5c6c0`: WinDbg's 64-bit address form.
fn tick(a: impl HexValue) -> String {
    let a = a.to_raw();
    format!("{:08x}`{:08x}", a >> 32, a & 0xFFFF_FFFF)
}

/// The frame table: `# Child-SP RetAddr Call Site`, then how the walk
/// started and ended when it did not end normally.
pub fn frame_table(s: &StackInfo) -> String {
    let mut out = String::new();
    if s.frames.is_empty() {
        let _ = writeln!(out, "(no kernel frames: {})", s.start);
        if !s.stop_detail.is_empty() {
            let _ = writeln!(out, "({})", s.stop_detail);
        }
        return out;
    }
    out.push_str(&frame_rows(s, true, ""));
    for w in &s.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The `Child-SP RetAddr Call Site` header and rows, each line after
/// `indent`, with frame numbers (`k`) or without (`!thread`), then why the
/// walk ended when it was cut.
pub fn frame_rows(s: &StackInfo, numbered: bool, indent: &str) -> String {
    let mut out = String::new();
    let num = |i: usize| {
        if numbered {
            format!("{i:02x} ")
        } else {
            String::new()
        }
    };
    let head = if numbered { " # " } else { "" };
    let _ = writeln!(
        out,
        "{indent}{head}Child-SP          RetAddr               Call Site"
    );
    for (i, f) in s.frames.iter().enumerate() {
        let _ = writeln!(
            out,
            "{indent}{}{} {}     {}",
            num(i),
            tick(f.rsp),
            tick(f.return_address),
            f.symbol
        );
    }
    if !s.complete {
        let _ = writeln!(
            out,
            "{indent}(stack incomplete: {}; started from {})",
            s.stop_detail, s.start
        );
    }
    out
}

/// `!thread`'s stack part with a header naming the start.
pub fn thread_stack(s: &StackInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Stack of thread {} (from {})", tick(s.thread), s.start);
    out.push_str(&frame_table(s));
    out
}

/// `!stacks`: identical stacks grouped, largest group first; each group
/// lists its threads (`pid.tid ETHREAD image state`) then its frames.
pub fn stacks(r: &StacksReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} threads, {} distinct stacks, {} incomplete",
        r.threads,
        r.groups.len(),
        r.incomplete
    );
    for (i, g) in r.groups.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n[{}] {} thread{}:",
            i + 1,
            g.count,
            if g.count == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            out,
            "   Proc.Thread    .Thread           Image            State"
        );
        for t in &g.threads {
            let state = match &t.wait_reason {
                Some(w) if t.state == ThreadState::Waiting => format!("Blocked ({w})"),
                _ => t.state.to_string(),
            };
            let _ = writeln!(
                out,
                "   {:>4x}.{:<6x}  {}  {:<16} {}{}",
                t.pid,
                t.tid,
                tick(t.address),
                t.process_name,
                state,
                if t.complete {
                    ""
                } else {
                    "  (stack incomplete)"
                }
            );
        }
        if g.frames.is_empty() {
            let _ = writeln!(out, "      (no frames)");
        }
        for f in &g.frames {
            let _ = writeln!(out, "      {f}");
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in &r.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

/// The footnote after stacks whose driver frames were named without the
/// driver's own symbols: each module once, with its PDB and where to put
/// the table (the symbol-server PDB path, or the ISF path); empty when
/// every module had its table.
pub fn missing_symbols_note(missing: &[MissingSymbols]) -> String {
    let mut out = String::new();
    if missing.is_empty() {
        return out;
    }
    let n = missing.len();
    let _ = writeln!(
        out,
        "\nSymbols: {n} module{} on these stacks had no symbol table (frames named from \
         exports or as module+offset):",
        if n == 1 { "" } else { "s" }
    );
    for m in missing {
        match (&m.pdb, m.fetch.split_first()) {
            (Some(p), Some((pdb_path, rest))) => {
                let _ = write!(
                    out,
                    "  {}: {} {}-{}, fetch {pdb_path}",
                    m.module, p.name, p.guid, p.age
                );
                if let Some(isf) = rest.first() {
                    let _ = write!(out, " (or the ISF {isf})");
                }
                let _ = writeln!(out);
            }
            _ => {
                let _ = writeln!(out, "  {}: {}", m.module, m.reason);
            }
        }
    }
    let _ = writeln!(
        out,
        "  Put them under a directory on the symbol path (--symbols DIR, _NT_SYMBOL_PATH)."
    );
    out
}

/// `!running -t`: each processor's KPRCB and current thread, then its
/// frame table.
pub fn running(cpus: &[RunningCpu]) -> String {
    let mut out = String::new();
    let mask: u64 = cpus
        .iter()
        .filter(|c| c.cpu < 64)
        .fold(0, |m, c| m | 1 << c.cpu);
    let idle: u64 = cpus
        .iter()
        .filter(|c| c.cpu < 64 && c.idle)
        .fold(0, |m, c| m | 1 << c.cpu);
    let _ = writeln!(out, "System Processors:  ({mask:016x})");
    let _ = writeln!(out, "  Idle Processors:  ({idle:016x})");
    for c in cpus {
        let who = match (c.idle, c.pid, c.tid) {
            (true, _, _) => "Idle".to_string(),
            (_, Some(p), Some(t)) => format!(
                "Cid {p:04x}.{t:04x} {}",
                c.process_name.as_deref().unwrap_or("")
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "\n{:>3}    Prcb {}  Current {}  {}",
            c.cpu,
            tick(c.kprcb),
            c.thread.map(tick).unwrap_or_else(|| "-".into()),
            who
        );
        let _ = writeln!(out, "       (from {})", c.stack.start);
        out.push_str(&frame_table(&c.stack));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_nt::stacks::{FrameInfo, StackGroup, StackThread};
    use hangscope_nt::VirtAddr;

    fn stack() -> StackInfo {
        StackInfo {
            thread: VirtAddr(0xfffffa80_04622530),
            frames: vec![
                FrameInfo {
                    rip: VirtAddr(0xfffff880_0160e563),
                    rsp: VirtAddr(0xfffff880_04d58990),
                    return_address: VirtAddr(0xfffff880_0160f021),
                    symbol: "Ntfs!NtfsFindPrefixHashEntry+0x23".into(),
                    kind: "normal".into(),
                },
                FrameInfo {
                    rip: VirtAddr(0xfffff880_0160f021),
                    rsp: VirtAddr(0xfffff880_04d589f0),
                    return_address: VirtAddr(0),
                    symbol: "Ntfs!NtfsCommonCreate+0x21".into(),
                    kind: "normal".into(),
                },
            ],
            start: "vCPU 1 registers".into(),
            stop: "zero_return_address".into(),
            stop_detail: "end of stack (return address 0)".into(),
            complete: true,
            warnings: vec![],
            missing_symbols: vec![],
        }
    }

    #[test]
    fn frame_table_has_windbg_columns() {
        let t = frame_table(&stack());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            " # Child-SP          RetAddr               Call Site"
        );
        assert_eq!(
            lines[1],
            "00 fffff880`04d58990 fffff880`0160f021     Ntfs!NtfsFindPrefixHashEntry+0x23"
        );
        assert_eq!(
            lines[2],
            "01 fffff880`04d589f0 00000000`00000000     Ntfs!NtfsCommonCreate+0x21"
        );
        assert_eq!(lines.len(), 3);
        let mut cut = stack();
        cut.complete = false;
        cut.stop_detail = "rip 0 is in no loaded module".into();
        assert!(frame_table(&cut).contains("(stack incomplete: rip 0 is in no loaded module"));
    }

    #[test]
    fn groups_list_threads_then_frames() {
        let r = StacksReport {
            groups: vec![StackGroup {
                frames: vec![
                    "nt!KiSwapContext+0x12".into(),
                    "nt!KiCommitThreadWait+0x1c".into(),
                ],
                count: 2,
                threads: vec![
                    StackThread {
                        address: VirtAddr(0xf_ffff_a801),
                        pid: 4,
                        tid: 8,
                        process_name: "System".into(),
                        state: "Waiting".into(),
                        wait_reason: Some("WrQueue".into()),
                        complete: true,
                    };
                    2
                ],
            }],
            threads: 2,
            incomplete: 0,
            warnings: vec![],
            missing_symbols: vec![],
        };
        let t = stacks(&r);
        assert!(t.starts_with("2 threads, 1 distinct stacks, 0 incomplete"));
        assert!(t.contains("[1] 2 threads:"));
        assert!(
            t.contains("      4.8       0000000f`ffffa801  System"),
            "{t}"
        );
        assert!(t.contains("Blocked (WrQueue)"));
        let k = t.find("nt!KiSwapContext+0x12").expect("frame");
        let c = t.find("nt!KiCommitThreadWait+0x1c").expect("frame");
        assert!(k < c, "top frame first");
    }

    #[test]
    fn missing_symbols_note_names_pdb_and_paths() {
        assert_eq!(missing_symbols_note(&[]), "");
        let pdb = hangscope_nt::model::PdbInfo {
            name: "Ntfs.pdb".into(),
            guid: "0123456789ABCDEF0123456789ABCDEF".into(),
            age: 1,
        };
        let m = vec![
            MissingSymbols {
                module: "Ntfs.sys".into(),
                base: VirtAddr(0xfffff880_01600000),
                fetch: hangscope_nt::modsyms::fetch_paths(&pdb),
                pdb: Some(pdb),
                reason: "no symbol table on the symbol path".into(),
                searched: vec!["/somewhere".into()],
            },
            MissingSymbols {
                module: "odd.sys".into(),
                base: VirtAddr(0xfffff880_02000000),
                pdb: None,
                fetch: vec![],
                reason: "no readable CodeView (RSDS) record".into(),
                searched: vec![],
            },
        ];
        let t = missing_symbols_note(&m);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "");
        assert!(
            lines[1].starts_with("Symbols: 2 modules on these stacks"),
            "{t}"
        );
        assert_eq!(
            lines[2],
            "  Ntfs.sys: Ntfs.pdb 0123456789ABCDEF0123456789ABCDEF-1, fetch \
             Ntfs.pdb/0123456789ABCDEF0123456789ABCDEF1/Ntfs.pdb (or the ISF \
             Ntfs.pdb/0123456789ABCDEF0123456789ABCDEF-1.json.xz)"
        );
        assert_eq!(lines[3], "  odd.sys: no readable CodeView (RSDS) record");
        assert!(
            !t.contains("/somewhere"),
            "searched paths stay out of the text"
        );
    }

    #[test]
    fn running_shows_masks_and_each_cpu() {
        let cpus = vec![
            RunningCpu {
                cpu: 0,
                kprcb: VirtAddr(0xfffff800_02bf8e80),
                thread: Some(VirtAddr(0xfffff800_02c06cc0)),
                idle: true,
                pid: None,
                tid: None,
                process_name: Some("Idle".into()),
                stack: stack(),
            },
            RunningCpu {
                cpu: 1,
                kprcb: VirtAddr(0xfffff880_009e8180),
                thread: Some(VirtAddr(0xfffffa80_04622530)),
                idle: false,
                pid: Some(0x8c0),
                tid: Some(0x8c4),
                process_name: Some("php-cgi.exe".into()),
                stack: stack(),
            },
        ];
        let t = running(&cpus);
        assert!(t.contains("System Processors:  (0000000000000003)"));
        assert!(t.contains("  Idle Processors:  (0000000000000001)"));
        assert!(t.contains("Cid 08c0.08c4 php-cgi.exe"));
        assert_eq!(t.matches(" # Child-SP").count(), 2);
    }
}
