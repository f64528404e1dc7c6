//! Issue 10's corruption corpus: every built-in scenario on Windows 7 SP1
//! and Windows 10 19041, damaged by the lab (which knows where every
//! object is) in every dump format, then analysed. No image is committed;
//! each is written to a temporary directory.
//!
//! Damage: truncation points; header fields made huge, zero or garbage;
//! broken lists (self-linked heads, cycles, NULL and non-canonical links);
//! garbage in wait blocks and thread states; zeroed object pages; zeroed
//! and garbage page-table entries. Each case must end one of three ways:
//! the verdict unchanged, a warning naming the damaged address (for damage
//! inside the file's memory) or any warning (for damage to the file's
//! structure), or a clear error (exit 2, naming the file) or INCONCLUSIVE.
//! HEALTHY on a damaged hang scenario always fails, and so does a crash.

use std::path::Path;

use hangscope_dump::raw::{dump_header64 as dh, elf};
use hangscope_lab::format::Format;
use hangscope_lab::image::PAGE_SIZE;
use serde_json::Value;

use crate::corrupt::{lab_of, warns_about, Lab};
use crate::util::{self, report};

const BUILDS: [&str; 2] = ["win7sp1", "win10-19041"];

/// What one analysed case must show.
pub(crate) struct Expect<'a> {
    pub(crate) scenario: &'a str,
    /// The undamaged verdict.
    pub(crate) clean: &'a str,
    /// The damaged virtual address, when the damage is inside memory.
    pub(crate) addr: Option<u64>,
    /// The damaged object's extent, when a warning naming any address in
    /// it names the damage (a stack whose one page or mapping is broken).
    pub(crate) span: Option<(u64, u64)>,
}

/// Analyse `path` and judge it; problems go to `p`. Returns the verdict,
/// and the document when `analyze` printed one.
pub(crate) fn judge(
    p: &mut Vec<String>,
    label: &str,
    path: &Path,
    e: &Expect<'_>,
) -> (String, Option<Value>) {
    let r = util::run(["--json".as_ref(), "analyze".as_ref(), path.as_os_str()]);
    let crashed = r.stderr.contains("panicked") || r.stderr.contains("internal error");
    match r.code {
        Some(2) if !crashed => {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !r.stderr.contains(&name) {
                p.push(format!(
                    "{label}: exit 2 without naming the file: {}",
                    r.stderr
                ));
            }
            return ("error".into(), None);
        }
        Some(0 | 1 | 3 | 4 | 5) if !crashed => {}
        _ => {
            p.push(format!(
                "{label}: crashed (exit {:?}): {}",
                r.code, r.stderr
            ));
            return ("crash".into(), None);
        }
    }
    let v: Value = match serde_json::from_str(&r.stdout) {
        Ok(v) => v,
        Err(err) => {
            p.push(format!("{label}: stdout is not JSON ({err})"));
            return ("garbage".into(), None);
        }
    };
    let got = v["overall"].as_str().unwrap_or("?").to_string();
    if got == "healthy" && e.scenario != "idle" {
        p.push(format!("{label}: HEALTHY on a damaged {} dump", e.scenario));
    } else if got != e.clean && got != "inconclusive" {
        let warned = match e.addr {
            Some(a) => warns_about(&v, a) || names_page_of(&v, a) || names_in(&v, e.span),
            None => v["warnings"].as_array().is_some_and(|w| !w.is_empty()),
        };
        if !warned {
            p.push(format!(
                "{label}: {} became {got} with no warning{}",
                e.clean,
                e.addr.map_or(String::new(), |a| format!(" naming {a:#x}"))
            ));
        }
    }
    (got, Some(v))
}

/// How a case ended, for the tally a run prints (`--nocapture`).
pub(crate) fn outcome(got: &str, clean: &str) -> &'static str {
    match got {
        "error" => "clear error",
        "inconclusive" => "inconclusive",
        g if g == clean => "verdict unchanged",
        "crash" | "garbage" => "FAILED",
        _ => "changed, with a warning",
    }
}

/// Whether the warnings, a finding's `evidence_warnings` or `incomplete`
/// name an address in the damaged address's page (a damaged link is
/// reported at its entry, a zeroed page at any object in it).
pub(crate) fn names_page_of(v: &Value, addr: u64) -> bool {
    named(v).any(|x| x & !0xfff == addr & !0xfff)
}

/// Whether they name an address in `span` (start, end).
pub(crate) fn names_in(v: &Value, span: Option<(u64, u64)>) -> bool {
    span.is_some_and(|(start, end)| named(v).any(|x| (start..end).contains(&x)))
}

/// The hexadecimal numbers in the warnings, evidence warnings and
/// `incomplete` of an `analyze` document.
fn named(v: &Value) -> impl Iterator<Item = u64> {
    let mut text = v["warnings"].to_string();
    text.push_str(&v["incomplete"].to_string());
    for f in v["findings"].as_array().into_iter().flatten() {
        text.push_str(&f["evidence_warnings"].to_string());
    }
    let text = text.to_ascii_lowercase().replace('`', "");
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok())
        .collect::<Vec<_>>()
        .into_iter()
}

/// A damage to the memory of a lab image: its name, and the virtual address
/// it damages, or `None` when it does not apply to this scenario.
type Damage = (&'static str, fn(&mut Lab) -> Option<u64>);

fn self_link(lab: &mut Lab, symbol: &str) -> Option<u64> {
    let head = lab.symbol(symbol);
    lab.write_virt(head, head);
    lab.write_virt(head + 8, head);
    Some(head)
}

fn process_link(lab: &mut Lab, k: usize, to: Option<u64>) -> Option<u64> {
    let apl = lab.off("_EPROCESS", "ActiveProcessLinks");
    let at = lab.truth.processes.get(k)?.address + apl;
    let first = lab.truth.processes[0].address + apl;
    lab.write_virt(at, to.unwrap_or(first));
    Some(at)
}

/// The first thread that waits on something, and its first wait block.
fn waiting_thread(lab: &Lab) -> Option<(u64, u64)> {
    let t = lab
        .truth
        .threads
        .iter()
        .find(|t| t.state == "Waiting" && !t.waits_on.is_empty())?;
    let list = t.address + lab.off("_ETHREAD", "Tcb") + lab.off("_KTHREAD", "WaitBlockList");
    Some((t.address, lab.read_virt(list)))
}

fn zero_page_of(lab: &mut Lab, va: u64) -> Option<u64> {
    let (pa, _) = lab.translate(va);
    lab.image
        .pages
        .insert(pa / PAGE_SIZE, Box::new([0u8; PAGE_SIZE as usize]));
    Some(va)
}

fn middle_process(lab: &Lab) -> u64 {
    lab.truth.processes[lab.truth.processes.len() / 2].address
}

const DAMAGES: &[Damage] = &[
    ("process list head self-linked", |l| {
        self_link(l, "PsActiveProcessHead")
    }),
    ("process list cycle", |l| {
        let k = l.truth.processes.len() / 2;
        process_link(l, k, None)
    }),
    ("process link NULL", |l| process_link(l, 1, Some(0))),
    ("process link non-canonical", |l| {
        process_link(l, 1, Some(0x1234_5678_9abc_def0))
    }),
    ("thread list self-linked", |l| {
        let t = l.truth.threads.first()?.address;
        let tle = l.off("_ETHREAD", "ThreadListEntry");
        l.write_virt(t + tle, t + tle);
        Some(t + tle)
    }),
    ("resource list self-linked", |l| {
        if l.truth.eresources.is_empty() {
            return None;
        }
        self_link(l, "ExpSystemResourcesList")
    }),
    ("resource list cycle", |l| {
        let sl = l.off("_ERESOURCE", "SystemResourcesList");
        let (a, b) = (l.truth.eresources.first()?, l.truth.eresources.get(1)?);
        let (a, b) = (a.address, b.address);
        l.write_virt(b + sl, a + sl);
        Some(b + sl)
    }),
    ("wait block points at its thread", |l| {
        let (t, wb) = waiting_thread(l)?;
        let o = l.off("_KWAIT_BLOCK", "Object");
        l.write_virt(wb + o, t);
        Some(wb)
    }),
    ("wait block points at garbage", |l| {
        let (_, wb) = waiting_thread(l)?;
        let o = l.off("_KWAIT_BLOCK", "Object");
        l.write_virt(wb + o, 0x4141_4141_4141_4141);
        Some(wb)
    }),
    ("thread state 0xff", |l| {
        let (t, _) = waiting_thread(l)?;
        let s = t + l.off("_ETHREAD", "Tcb") + l.off("_KTHREAD", "State");
        let old = l.read_virt(s);
        l.write_virt(s, (old & !0xff) | 0xff);
        Some(t)
    }),
    ("waiting thread's KernelStack at the top of memory", |l| {
        let (t, _) = waiting_thread(l)?;
        let ks = t + l.off("_ETHREAD", "Tcb") + l.off("_KTHREAD", "KernelStack");
        l.write_virt(ks, 0xffff_ffff_ffff_fff8);
        Some(t)
    }),
    ("waiting thread's KernelStack in user space", |l| {
        let (t, _) = waiting_thread(l)?;
        let ks = t + l.off("_ETHREAD", "Tcb") + l.off("_KTHREAD", "KernelStack");
        l.write_virt(ks, 0x0000_7fff_0000_0000);
        Some(t)
    }),
    ("EPROCESS page zeroed", |l| {
        let p = middle_process(l);
        zero_page_of(l, p)
    }),
    ("waiting ETHREAD page zeroed", |l| {
        let (t, _) = waiting_thread(l)?;
        zero_page_of(l, t)
    }),
    ("page-table page zeroed", |l| {
        let p = middle_process(l);
        let (_, table) = l.translate(p);
        l.image
            .pages
            .insert(table / PAGE_SIZE, Box::new([0u8; PAGE_SIZE as usize]));
        Some(p)
    }),
    ("PTE points past RAM", |l| {
        let p = middle_process(l);
        let (_, table) = l.translate(p);
        let idx = (p >> 12) & 0x1ff;
        l.write_phys(table + idx * 8, 0x000f_ffff_ffff_f000 | 0x63);
        Some(p)
    }),
];

/// Every memory damage, every format: the scenario's whole object corpus.
fn object_corpus(scenario: &str) {
    let mut p = Vec::new();
    let mut runs = 0;
    let mut tally = std::collections::BTreeMap::new();
    for build in BUILDS {
        let clean = lab_of(scenario, build).truth.verdict.overall.clone();
        for (what, damage) in DAMAGES {
            let mut lab = lab_of(scenario, build);
            let Some(addr) = damage(&mut lab) else {
                continue;
            };
            let dir = tempfile::tempdir().unwrap();
            for f in Format::ALL {
                let path = util::write(&lab.image, f, dir.path(), "damaged");
                let label = format!("[{scenario} {build} {}] {what}", f.name());
                let e = Expect {
                    scenario,
                    clean: &clean,
                    addr: Some(addr),
                    span: None,
                };
                let (got, _) = judge(&mut p, &label, &path, &e);
                *tally.entry(outcome(&got, &clean)).or_insert(0) += 1;
                runs += 1;
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    assert!(runs >= 40, "{scenario}: only {runs} cases ran");
    eprintln!("{scenario}: object damage corpus: {runs} cases: {tally:?}");
    report(
        &format!("{scenario}: object damage corpus ({runs} cases)"),
        p,
    );
}

/// Header fields worth breaking, per format: (name, file offset, value).
fn header_damages(f: Format, bytes: &[u8]) -> Vec<(String, u64, u64)> {
    let u64_at = |o: u64| u64::from_le_bytes(bytes[o as usize..o as usize + 8].try_into().unwrap());
    let mut v = Vec::new();
    match f {
        Format::Elf => {
            let phoff = u64_at(elf::E_PHOFF);
            for (name, off) in [
                ("e_phoff", elf::E_PHOFF),
                ("e_phnum", elf::E_PHNUM),
                ("first p_offset", phoff + elf::P_OFFSET),
                ("first p_filesz", phoff + elf::P_FILESZ),
                ("second p_paddr", phoff + elf::PHDR_SIZE + elf::P_PADDR),
                ("second p_offset", phoff + elf::PHDR_SIZE + elf::P_OFFSET),
            ] {
                v.push((format!("{name} huge"), off, u64::MAX));
                v.push((format!("{name} zero"), off, 0));
            }
        }
        Format::Raw => {}
        _ => {
            for (name, off) in [
                ("DirectoryTableBase", dh::DIRECTORY_TABLE_BASE),
                ("PsActiveProcessHead", dh::PS_ACTIVE_PROCESS_HEAD),
                ("KdDebuggerDataBlock", dh::KD_DEBUGGER_DATA_BLOCK),
                ("NumberOfRuns", dh::NUMBER_OF_RUNS),
                ("NumberOfPages", dh::NUMBER_OF_PAGES),
                ("first run's PageCount", dh::RUNS + 8),
            ] {
                v.push((format!("{name} huge"), off, u64::MAX));
                v.push((format!("{name} garbage"), off, 0x4141_4141_4141_4141));
                v.push((format!("{name} zero"), off, 0));
            }
        }
    }
    v
}

/// Where a file of `len` bytes is cut: inside the first header, at page
/// boundaries, past the first run of headers, through the body, and one
/// page and one byte short.
pub(crate) fn cut_points(len: u64) -> [u64; 10] {
    [
        0,
        1,
        64,
        4096,
        0x2000 + 8,
        len / 8,
        len / 2,
        len * 7 / 8,
        len.saturating_sub(4096),
        len.saturating_sub(1),
    ]
}

/// Truncation points and header fields, every format.
fn file_corpus(scenario: &str) {
    let mut p = Vec::new();
    let mut runs = 0;
    let mut tally = std::collections::BTreeMap::new();
    for build in BUILDS {
        let lab = lab_of(scenario, build);
        let clean = lab.truth.verdict.overall.clone();
        let dir = tempfile::tempdir().unwrap();
        for f in Format::ALL {
            let path = util::write(&lab.image, f, dir.path(), "clean");
            let bytes = std::fs::read(&path).unwrap();
            let len = bytes.len() as u64;
            let e = Expect {
                scenario,
                clean: &clean,
                addr: None,
                span: None,
            };
            let cut = dir.path().join(format!("cut.{}", f.name()));
            for at in cut_points(len) {
                std::fs::write(&cut, &bytes[..at.min(len) as usize]).unwrap();
                let label = format!(
                    "[{scenario} {build} {}] cut at {at:#x} of {len:#x}",
                    f.name()
                );
                let (got, _) = judge(&mut p, &label, &cut, &e);
                *tally.entry(outcome(&got, &clean)).or_insert(0) += 1;
                runs += 1;
            }
            let hdr = dir.path().join(format!("hdr.{}", f.name()));
            for (what, off, value) in header_damages(f, &bytes) {
                let mut b = bytes.clone();
                let o = off as usize;
                let width = if what.starts_with("e_phnum") { 2 } else { 8 };
                b[o..o + width].copy_from_slice(&value.to_le_bytes()[..width]);
                std::fs::write(&hdr, &b).unwrap();
                let label = format!("[{scenario} {build} {}] {what}", f.name());
                let (got, _) = judge(&mut p, &label, &hdr, &e);
                *tally.entry(outcome(&got, &clean)).or_insert(0) += 1;
                runs += 1;
            }
        }
    }
    eprintln!("{scenario}: file damage corpus: {runs} cases: {tally:?}");
    report(&format!("{scenario}: file damage corpus ({runs} cases)"), p);
}

#[test]
fn temp_flood_objects() {
    object_corpus("temp-flood");
}

#[test]
fn deadlock_objects() {
    object_corpus("deadlock");
}

#[test]
fn idle_objects() {
    object_corpus("idle");
}

#[test]
fn temp_flood_files() {
    file_corpus("temp-flood");
}

#[test]
fn deadlock_files() {
    file_corpus("deadlock");
}

#[test]
fn idle_files() {
    file_corpus("idle");
}
