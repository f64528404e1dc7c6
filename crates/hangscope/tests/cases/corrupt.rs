//! Corruption: a clean temp-flood image is damaged in memory before it is
//! written (the kind of damage a dump of a broken machine carries), and
//! hangscope must not crash: a documented exit code, no panic on stderr,
//! a warning that names the bad address, and the rest still listed.

use std::path::PathBuf;

use hangscope_lab::builds;
use hangscope_lab::format::Format;
use hangscope_lab::image::{LabImage, PAGE_SIZE};
use hangscope_lab::layout::{Isf, Layout};
use hangscope_lab::truth::GroundTruth;
use serde_json::Value;

use crate::util::{self, a, arr, report};

const BUILD: &str = "win10-19041";
/// Canonical kernel addresses that nothing maps in a lab image.
const UNMAPPED: u64 = 0xffff_cafe_0000_0000;

/// A lab image to damage, with its ground truth and symbol table.
pub(crate) struct Lab {
    pub image: LabImage,
    pub truth: GroundTruth,
    pub isf: Isf,
}

fn lab() -> Lab {
    lab_of("temp-flood", BUILD)
}

/// A scenario on a build (64 MiB, seed 77), ready to damage.
pub(crate) fn lab_of(scenario: &str, build: &str) -> Lab {
    let sc = util::scenario(scenario);
    let (image, truth) = util::build(&sc, build, 77, 64 << 20);
    let b = builds::find_build(build).expect("known build");
    let isf = Isf::load(&builds::isf_path(&util::symbols_dir(), b)).expect("ISF");
    Lab { image, truth, isf }
}

impl Lab {
    /// Offset of a field, from the symbol table.
    pub(crate) fn off(&self, ty: &str, field: &str) -> u64 {
        self.isf
            .field(ty, field)
            .unwrap_or_else(|| panic!("{ty}.{field} not in the ISF"))
            .offset
    }

    /// Virtual address of a kernel symbol.
    pub(crate) fn symbol(&self, name: &str) -> u64 {
        let rva = self
            .isf
            .symbol(name)
            .unwrap_or_else(|| panic!("{name} not in the ISF"));
        self.truth.kernel.kernel_base + rva
    }

    pub(crate) fn read_phys(&self, pa: u64) -> u64 {
        let mut page = [0u8; PAGE_SIZE as usize];
        self.image.page_into(pa / PAGE_SIZE, &mut page);
        let o = (pa % PAGE_SIZE) as usize;
        u64::from_le_bytes(page[o..o + 8].try_into().unwrap())
    }

    pub(crate) fn write_phys(&mut self, pa: u64, v: u64) {
        let pfn = pa / PAGE_SIZE;
        let mut page = [0u8; PAGE_SIZE as usize];
        self.image.page_into(pfn, &mut page);
        let o = (pa % PAGE_SIZE) as usize;
        page[o..o + 8].copy_from_slice(&v.to_le_bytes());
        self.image.pages.insert(pfn, Box::new(page));
    }

    /// Walk the kernel's page tables: the physical address of `va`, and
    /// the physical address of the last-level table page that maps it.
    pub(crate) fn translate(&self, va: u64) -> (u64, u64) {
        let mut table = self.image.facts.dtb & !0xfff;
        for level in (0..4).rev() {
            let idx = (va >> (12 + 9 * level)) & 0x1ff;
            let e = self.read_phys(table + idx * 8);
            assert!(e & 1 != 0, "{va:#x} not mapped at level {level}");
            let next = e & 0x000f_ffff_ffff_f000;
            if level == 0 {
                return (next | (va & 0xfff), table);
            }
            if e & 0x80 != 0 {
                let size = 1u64 << (12 + 9 * level);
                return ((next & !(size - 1)) | (va & (size - 1)), table);
            }
            table = next;
        }
        unreachable!()
    }

    pub(crate) fn write_virt(&mut self, va: u64, v: u64) {
        let (pa, _) = self.translate(va);
        self.write_phys(pa, v);
    }

    pub(crate) fn read_virt(&self, va: u64) -> u64 {
        self.read_phys(self.translate(va).0)
    }

    pub(crate) fn write_elf(&self, dir: &std::path::Path, name: &str) -> PathBuf {
        util::write(&self.image, Format::Elf, dir, name)
    }
}

/// Whether the document's warnings (anywhere in it) name `addr`, in any
/// of the notations hangscope uses.
pub(crate) fn warns_about(doc: &Value, addr: u64) -> bool {
    let mut texts = Vec::new();
    collect_warnings(doc, &mut texts);
    let plain = format!("{addr:x}");
    texts.iter().any(|t| {
        let t = t.to_ascii_lowercase().replace('`', "");
        t.contains(&plain)
    })
}

fn collect_warnings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "warnings" {
                    out.push(x.to_string());
                } else {
                    collect_warnings(x, out);
                }
            }
        }
        Value::Array(xs) => xs.iter().for_each(|x| collect_warnings(x, out)),
        _ => {}
    }
}

#[test]
fn eresource_list_cycle() {
    let mut lab = lab();
    let sl = lab.off("_ERESOURCE", "SystemResourcesList");
    let first = lab.truth.eresources[0].address;
    let second = lab.truth.eresources[1].address;
    // second -> first: the walk comes back to an entry it has seen, never
    // to the list head.
    lab.write_virt(second + sl, first + sl);
    let dir = tempfile::tempdir().unwrap();
    let path = lab.write_elf(dir.path(), "cycle");
    let mut p = Vec::new();
    let (r, v) = util::json_cmd("locks", &["-V"], &path);
    r.expect_no_crash();
    let got: Vec<u64> = arr(&v["data"], "items")
        .iter()
        .map(|x| a(x, "address"))
        .collect();
    for e in [first, second] {
        if !got.contains(&e) {
            p.push(format!("locks: {e:#x} missing after the cycle"));
        }
    }
    if !(warns_about(&v, first + sl)
        || warns_about(&v, second + sl)
        || warns_about(&v, first)
        || warns_about(&v, second))
    {
        p.push(format!(
            "locks: no warning names the cycle ({first:#x} / {second:#x}): {}",
            v["data"]["warnings"]
        ));
    }
    let (r, _) = util::json_cmd("analyze", &[], &path);
    r.expect_no_crash();
    report("ExpSystemResourcesList cycle", p);
}

#[test]
fn eresource_owner_unmapped() {
    let mut lab = lab();
    let owner_entry = lab.off("_ERESOURCE", "OwnerEntry");
    let owner_thread = lab.off("_OWNER_ENTRY", "OwnerThread");
    let e = lab.truth.eresources[1].address;
    lab.write_virt(e + owner_entry + owner_thread, UNMAPPED);
    let dir = tempfile::tempdir().unwrap();
    let path = lab.write_elf(dir.path(), "owner");
    let mut p = Vec::new();
    let (r, v) = util::json_cmd("analyze", &[], &path);
    r.expect_no_crash();
    if !warns_about(&v, UNMAPPED) {
        p.push(format!(
            "analyze: no warning names the owner {UNMAPPED:#x}: {}",
            v["warnings"]
        ));
    }
    if arr(&v, "findings").is_empty() {
        p.push("analyze: no finding left (the first lock's waiters are still there)".into());
    }
    let (r, v) = util::json_cmd("locks", &["-V"], &path);
    r.expect_no_crash();
    let n = arr(&v["data"], "items").len();
    if n < lab.truth.eresources.len() {
        p.push(format!(
            "locks: {n} resources listed, the truth has {}",
            lab.truth.eresources.len()
        ));
    }
    report("ERESOURCE owner in unmapped memory", p);
}

#[test]
fn process_list_broken() {
    let mut lab = lab();
    let apl = lab.off("_EPROCESS", "ActiveProcessLinks");
    let k = lab.truth.processes.len() / 2;
    let broken = lab.truth.processes[k].address;
    lab.write_virt(broken + apl, UNMAPPED + 0x1000);
    let dir = tempfile::tempdir().unwrap();
    let path = lab.write_elf(dir.path(), "ps");
    let mut p = Vec::new();
    let (r, v) = util::json_cmd("ps", &[], &path);
    r.expect_no_crash();
    let got: Vec<u64> = arr(&v["data"], "items")
        .iter()
        .map(|x| a(x, "address"))
        .collect();
    for x in &lab.truth.processes[..=k] {
        if !got.contains(&x.address) {
            p.push(format!(
                "ps: {} ({:#x}) before the break is missing",
                x.name, x.address
            ));
        }
    }
    if !warns_about(&v, UNMAPPED + 0x1000) {
        p.push(format!(
            "ps: no warning names {:#x}: {}",
            UNMAPPED + 0x1000,
            v["data"]["warnings"]
        ));
    }
    for cmd in ["threads", "analyze"] {
        let (r, _) = util::json_cmd(cmd, &[], &path);
        r.expect_no_crash();
    }
    report("broken ActiveProcessLinks", p);
}

#[test]
fn page_table_page_zeroed() {
    let mut lab = lab();
    let victim = lab.truth.processes.last().expect("processes").address;
    let (_, table) = lab.translate(victim);
    lab.image
        .pages
        .insert(table / PAGE_SIZE, Box::new([0u8; PAGE_SIZE as usize]));
    // Everything that table mapped: a 2 MiB region.
    let lo = victim & !0x1f_ffff;
    let hi = lo + 0x20_0000;
    let dir = tempfile::tempdir().unwrap();
    let path = lab.write_elf(dir.path(), "pt");
    let mut p = Vec::new();
    let (r, v) = util::json_cmd("ps", &[], &path);
    r.expect_no_crash();
    let mut texts = Vec::new();
    collect_warnings(&v, &mut texts);
    let warned = texts.join(" ").to_ascii_lowercase().replace('`', "");
    let names_region = warned
        .split(|c: char| !c.is_ascii_hexdigit() && c != 'x')
        .filter_map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok())
        .any(|x| (lo..hi).contains(&x));
    if !names_region {
        p.push(format!(
            "ps: no warning names an address in {lo:#x}..{hi:#x}: {warned}"
        ));
    }
    let got: Vec<u64> = arr(&v["data"], "items")
        .iter()
        .map(|x| a(x, "address"))
        .collect();
    // The walk may stop where the list enters the lost region; every
    // process before that must be listed.
    for x in lab
        .truth
        .processes
        .iter()
        .take_while(|x| !(lo..hi).contains(&x.address))
    {
        if !got.contains(&x.address) {
            p.push(format!(
                "ps: {} ({:#x}), before the lost region, is missing",
                x.name, x.address
            ));
        }
    }
    for cmd in ["info", "threads", "lm", "locks", "analyze"] {
        let (r, _) = util::json_cmd(cmd, &[], &path);
        r.expect_no_crash();
    }
    report("zeroed page-table page", p);
}

/// Issue 15 (LRPC completion queues): lsass's LsaAuthenticationPort names
/// a completion queue that is no queue (its dispatcher type overwritten
/// with an event's), then one whose busy worker's `Tcb.Queue` names no
/// queue. The first: a warning naming the queue, no queue workers, and
/// the unanswered-ALPC finding falls back to lsass's waiting threads,
/// saying so. The second: a warning naming the worker, which is still
/// counted (the queue's ThreadListHead lists it).
#[test]
fn alpc_completion_queue_damaged() {
    let mut p = Vec::new();
    let lsa = |lab: &Lab| {
        lab.truth
            .alpc_ports
            .iter()
            .find(|x| x.name.as_deref() == Some("LsaAuthenticationPort"))
            .cloned()
            .expect("LsaAuthenticationPort")
    };
    let dir = tempfile::tempdir().unwrap();

    let mut lab = lab_of("rdp-logon", BUILD);
    let port = lsa(&lab);
    let q = port.completion_port.expect("a completion queue");
    let ty = q + lab.off("_DISPATCHER_HEADER", "Type");
    let word = lab.read_virt(ty);
    // EventSynchronizationObject (1 on every build): no QueueObject.
    lab.write_virt(ty, (word & !0xff) | 1);
    let path = lab.write_elf(dir.path(), "not-a-queue");
    let (r, v) = util::json_cmd("alpc", &[], &path);
    r.expect(0);
    if !warns_about(&v, q) {
        p.push(format!("alpc: no warning names the queue {q:#x}"));
    }
    let ports = arr(&v["data"], "ports");
    match ports.iter().find(|x| a(x, "address") == port.address) {
        Some(x) if x["queue_workers"].is_null() => {}
        other => p.push(format!(
            "alpc: queue workers read from a non-queue: {other:?}"
        )),
    }
    let (r, v) = util::json_cmd("analyze", &[], &path);
    r.expect(3);
    match arr(&v, "findings")
        .iter()
        .find(|f| f["kind"] == "alpc_unanswered")
    {
        Some(f) => {
            let s = f["summary"].as_str().unwrap_or_default();
            if f["alpc"]["workers_from_ports"] != false
                || !s.contains("every waiting thread of the server is counted")
            {
                p.push(format!("analyze: no fallback to lsass's threads: {s}"));
            }
        }
        None => p.push("analyze: no alpc_unanswered finding".into()),
    }

    let mut lab = lab_of("rdp-logon", BUILD);
    let port = lsa(&lab);
    let worker = port.busy_workers[0];
    lab.write_virt(worker + lab.off("_ETHREAD", "Tcb.Queue"), 0);
    let path = lab.write_elf(dir.path(), "worker-left");
    let (r, v) = util::json_cmd("alpc", &[], &path);
    r.expect(0);
    if !warns_about(&v, worker) {
        p.push(format!("alpc: no warning names the worker {worker:#x}"));
    }
    let ports = arr(&v["data"], "ports");
    let n = ports
        .iter()
        .find(|x| a(x, "address") == port.address)
        .map(|x| arr(x, "queue_workers").len());
    if n != Some(3) {
        p.push(format!("alpc: {n:?} queue workers, want 3"));
    }
    report("LRPC completion queue damaged", p);
}
