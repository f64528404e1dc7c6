//! Issue 10's corruption corpus for Linux guests (must-show 6): the real
//! hung Debian guests of `scripts/linux-guest.sh` (the shared recipe's
//! two deadlocks, a D-state pile-up and a vfork parent), damaged where
//! drgn's ground truth and the dump's own BTF say each object is, then
//! analysed. Nothing is committed: each damaged copy is written to a
//! temporary directory and removed.
//!
//! Memory damage goes into the ELF dump, whose pages lie in the file as
//! they were: the task list (head self-linked, a cycle, NULL and
//! non-canonical links), a thread group self-linked, a blocked task's
//! state, the deadlocked mutex's owner, wait list and waiter record, and
//! zeroed task, stack and page-table pages. The kdump-zlib dump's pages
//! are compressed, so there the damage is to the page descriptor of the
//! blocked task's page. File damage on both formats: truncation points,
//! header fields, and VMCOREINFO values made garbage or subtly wrong.
//!
//! Each case must end as the Windows corpus's do ([`judge`]): the verdict
//! unchanged, a warning naming the damaged page (memory) or any warning
//! (file), INCONCLUSIVE, or a clear error naming the file. A DEADLOCK that
//! keeps its name but loses a cycle must say why just the same.
//!
//! Where the damage goes is found with hangscope-linux on the undamaged
//! dump (field offsets from the dump's BTF, symbols from kallsyms, its
//! page walk); which task and lock with drgn's document of the dump.

use std::collections::BTreeMap;
use std::path::Path;

use hangscope_dump::raw::{elf, flat, kdump as kd};
use hangscope_dump::Dump;
use hangscope_linux::LinuxKernel;
use hangscope_x64::VirtAddr;
use serde_json::Value;

use crate::corpus::{cut_points, judge, names_in, names_page_of, outcome, Expect};
use crate::corrupt::warns_about;
use crate::linux::{guests, unflatten, Guest};
use crate::util::report;

const NON_CANONICAL: u64 = 0x1234_5678_9abc_def0;
const GARBAGE: u64 = 0x4141_4141_4141_4141;
const PAGE: u64 = 0x1000;
/// Bounds the test's own walk of the task list.
const MAX_TASKS: usize = 100_000;

/// The undamaged dump's kernel: where things are, for the damage to aim at.
struct Site<'d> {
    k: LinuxKernel<'d>,
    /// drgn's document of this dump (`peers/drgn-FORM.json`).
    truth: Value,
}

impl Site<'_> {
    fn off(&self, ty: &str, path: &str) -> u64 {
        self.k
            .symbols()
            .and_then(|t| t.field_path(ty, path))
            .map(|(o, _)| o)
            .unwrap_or_else(|| panic!("{ty}.{path} is not in the dump's types"))
    }

    /// THREAD_SIZE, as hangscope-linux finds it (`union thread_union`,
    /// else the extent of `init_stack`).
    fn stack_size(&self) -> u64 {
        hangscope_linux::waits::thread_size(&self.k.env().unwrap())
    }

    fn has(&self, ty: &str, path: &str) -> bool {
        self.k
            .symbols()
            .is_some_and(|t| t.field_path(ty, path).is_some())
    }

    fn symbol(&self, name: &str) -> u64 {
        self.k
            .symbol(name)
            .unwrap_or_else(|e| panic!("symbol {name}: {e}"))
            .0
    }

    fn pa(&self, va: u64) -> u64 {
        self.k
            .address_space()
            .translate(VirtAddr(va))
            .unwrap_or_else(|e| panic!("{va:#x} does not translate: {e}"))
            .paddr
            .0
    }

    fn read(&self, va: u64) -> u64 {
        self.k
            .memory()
            .read_u64(VirtAddr(va))
            .unwrap_or_else(|e| panic!("{va:#x}: {e}"))
    }

    /// The processes on `init_task.tasks`, in list order, `init_task` first.
    fn processes(&self) -> Vec<u64> {
        let tasks = self.off("task_struct", "tasks");
        let head = self.symbol("init_task") + tasks;
        let mut out = vec![head - tasks];
        let mut at = self.read(head);
        while at != head && out.len() < MAX_TASKS {
            out.push(at - tasks);
            at = self.read(at);
        }
        out
    }

    /// The deadlocked module mutex drgn names (`hangdemo_lock_*`, waited on
    /// by `hang_ab` or `hang_ba`): (its address, its first waiter's task).
    fn deadlocked_mutex(&self) -> (u64, u64) {
        let locks = self.truth["locks"].as_object().expect("drgn's locks");
        let (addr, l) = locks
            .iter()
            .find(|(_, l)| {
                l["kind"] == "mutex"
                    && l["symbol"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("hangdemo_lock"))
                    && l["waiters"].as_array().is_some_and(|w| !w.is_empty())
            })
            .expect("drgn names a hangdemo mutex with waiters");
        (hex(addr), hex(l["waiters"][0]["task"].as_str().unwrap()))
    }

    /// A thread that is not its group's leader (`uffd-handler`).
    fn follower_thread(&self) -> Option<u64> {
        self.truth["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["pid"] != t["tgid"])
            .map(|t| hex(t["task"].as_str().unwrap()))
    }

    /// The physical address of the page-table page (level 1) that maps
    /// `va`, walked from `init_top_pgt` (whose kernel half every process
    /// shares); `None` when a large page maps it.
    fn pte_page(&self, elf: &ElfImage, va: u64) -> Option<u64> {
        let mut table = self.pa(self.symbol("init_top_pgt"));
        for level in [4u32, 3, 2] {
            let idx = (va >> (12 + 9 * (level - 1))) & 0x1ff;
            let e = elf.read_phys(table + idx * 8)?;
            if e & 1 == 0 || (level < 4 && e & 0x80 != 0) {
                return None;
            }
            table = e & 0x000f_ffff_ffff_f000;
        }
        Some(table)
    }
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// An ELF core's bytes, with its loads to find a physical address in it.
#[derive(Clone)]
struct ElfImage {
    bytes: Vec<u8>,
    /// (physical address, file offset, size) of each `PT_LOAD`.
    loads: Vec<(u64, u64, u64)>,
}

impl ElfImage {
    fn new(bytes: Vec<u8>) -> ElfImage {
        let u = |o: u64, w: usize| {
            let mut b = [0u8; 8];
            b[..w].copy_from_slice(&bytes[o as usize..o as usize + w]);
            u64::from_le_bytes(b)
        };
        let (phoff, phnum) = (u(elf::E_PHOFF, 8), u(elf::E_PHNUM, 2));
        let loads = (0..phnum)
            .map(|i| phoff + i * elf::PHDR_SIZE)
            .filter(|&h| u(h + elf::P_TYPE, 4) == u64::from(elf::PT_LOAD))
            .map(|h| {
                (
                    u(h + elf::P_PADDR, 8),
                    u(h + elf::P_OFFSET, 8),
                    u(h + elf::P_FILESZ, 8),
                )
            })
            .collect();
        ElfImage { bytes, loads }
    }

    fn offset(&self, pa: u64) -> Option<usize> {
        self.loads
            .iter()
            .find(|(p, _, n)| pa >= *p && pa + 8 <= p + n)
            .map(|(p, o, _)| (o + pa - p) as usize)
    }

    fn read_phys(&self, pa: u64) -> Option<u64> {
        let o = self.offset(pa)?;
        Some(u64::from_le_bytes(self.bytes[o..o + 8].try_into().ok()?))
    }

    fn write_phys(&mut self, pa: u64, v: &[u8]) {
        let o = self
            .offset(pa)
            .unwrap_or_else(|| panic!("{pa:#x} is not in the dump"));
        self.bytes[o..o + v.len()].copy_from_slice(v);
    }
}

/// The memory damage a case makes: writes at virtual addresses, whole
/// physical pages zeroed, and the virtual address the damage is about.
#[derive(Default)]
struct Damage {
    writes: Vec<(u64, Vec<u8>)>,
    zero_pages: Vec<u64>,
    phys_writes: Vec<(u64, u64)>,
    at: u64,
    /// The damaged object, when it is larger than a page (a stack).
    span: Option<(u64, u64)>,
}

impl Damage {
    fn at(at: u64) -> Damage {
        Damage {
            at,
            ..Damage::default()
        }
    }

    fn q(mut self, va: u64, v: u64) -> Damage {
        self.writes.push((va, v.to_le_bytes().to_vec()));
        self
    }

    /// The damage is to the kernel stack of `task`, whose base and size
    /// the dump's types give.
    fn on_stack_of(mut self, s: &Site<'_>, task: u64) -> Damage {
        let base = s.read(task + s.off("task_struct", "stack"));
        self.span = Some((base, base + s.stack_size()));
        self
    }

    fn d(mut self, va: u64, v: u32) -> Damage {
        self.writes.push((va, v.to_le_bytes().to_vec()));
        self
    }
}

type MemoryDamage = (&'static str, fn(&Site<'_>, &ElfImage) -> Option<Damage>);

const MEMORY_DAMAGES: &[MemoryDamage] = &[
    ("task list head self-linked", |s, _| {
        let head = s.symbol("init_task") + s.off("task_struct", "tasks");
        Some(Damage::at(head).q(head, head).q(head + 8, head))
    }),
    ("task list cycle", |s, _| {
        let t = s.off("task_struct", "tasks");
        let ps = s.processes();
        let (a, b) = (ps[1], ps[ps.len() / 2]);
        Some(Damage::at(b + t).q(b + t, a + t))
    }),
    ("task link NULL", |s, _| {
        let t = s.off("task_struct", "tasks");
        let p = s.processes()[1];
        Some(Damage::at(p + t).q(p + t, 0))
    }),
    ("task link non-canonical", |s, _| {
        let t = s.off("task_struct", "tasks");
        let p = s.processes()[1];
        Some(Damage::at(p + t).q(p + t, NON_CANONICAL))
    }),
    ("thread group self-linked", |s, _| {
        let field = if s.has("task_struct", "thread_node") {
            "thread_node"
        } else {
            "thread_group"
        };
        let n = s.follower_thread()? + s.off("task_struct", field);
        Some(Damage::at(n).q(n, n).q(n + 8, n))
    }),
    ("blocked task's state garbage", |s, _| {
        let (_, t) = s.deadlocked_mutex();
        let field = if s.has("task_struct", "__state") {
            "__state"
        } else {
            "state"
        };
        Some(Damage::at(t).d(t + s.off("task_struct", field), 0xdead_beef))
    }),
    ("mutex owner points at the mutex", |s, _| {
        let (m, _) = s.deadlocked_mutex();
        Some(Damage::at(m).q(m + s.off("mutex", "owner"), m))
    }),
    ("mutex owner garbage", |s, _| {
        let (m, _) = s.deadlocked_mutex();
        Some(Damage::at(m).q(m + s.off("mutex", "owner"), GARBAGE & !7))
    }),
    ("mutex wait list self-linked", |s, _| {
        let (m, _) = s.deadlocked_mutex();
        let w = m + s.off("mutex", "wait_list");
        Some(Damage::at(w).q(w, w).q(w + 8, w))
    }),
    ("mutex wait list points at garbage", |s, _| {
        let (m, _) = s.deadlocked_mutex();
        let w = m + s.off("mutex", "wait_list");
        Some(Damage::at(w).q(w, GARBAGE))
    }),
    ("mutex waiter's task garbage", |s, _| {
        if !s.has("mutex_waiter", "task") {
            return None;
        }
        let (m, t) = s.deadlocked_mutex();
        let rec = s.read(m + s.off("mutex", "wait_list")) - s.off("mutex_waiter", "list");
        Some(
            Damage::at(rec)
                .on_stack_of(s, t)
                .q(rec + s.off("mutex_waiter", "task"), GARBAGE),
        )
    }),
    ("blocked task's page zeroed", |s, _| {
        let (_, t) = s.deadlocked_mutex();
        let mut d = Damage::at(t);
        d.zero_pages.push(s.pa(t) & !(PAGE - 1));
        Some(d)
    }),
    ("blocked task's stack page zeroed", |s, _| {
        let (_, t) = s.deadlocked_mutex();
        let sp = s.read(t + s.off("task_struct", "thread.sp"));
        let mut d = Damage::at(sp).on_stack_of(s, t);
        d.zero_pages.push(s.pa(sp) & !(PAGE - 1));
        Some(d)
    }),
    (
        "page-table page of the blocked task's stack zeroed",
        |s, e| {
            let (_, t) = s.deadlocked_mutex();
            let sp = s.read(t + s.off("task_struct", "thread.sp"));
            let mut d = Damage::at(sp).on_stack_of(s, t);
            d.zero_pages.push(s.pte_page(e, sp)?);
            Some(d)
        },
    ),
    ("PTE of the blocked task's stack points past RAM", |s, e| {
        let (_, t) = s.deadlocked_mutex();
        let sp = s.read(t + s.off("task_struct", "thread.sp"));
        let pte = s.pte_page(e, sp)? + ((sp >> 12) & 0x1ff) * 8;
        let mut d = Damage::at(sp).on_stack_of(s, t);
        d.phys_writes.push((pte, 0x000f_ffff_ffff_f000 | 0x63));
        Some(d)
    }),
];

/// Analyse `path` as [`judge`] does, and also require an unchanged cycle
/// count unless a warning names the damage; with `must_warn` (damage to
/// memory the analysis reads), a warning naming it whatever the verdict.
/// Returns how the case ended.
fn judge_linux(
    p: &mut Vec<String>,
    label: &str,
    path: &Path,
    e: &Expect<'_>,
    cycles: &Value,
    must_warn: bool,
) -> String {
    let (got, doc) = judge(p, label, path, e);
    let Some(v) = doc else {
        return outcome(&got, e.clean).into();
    };
    let warned = match e.addr {
        Some(a) => warns_about(&v, a) || names_page_of(&v, a) || names_in(&v, e.span),
        None => v["warnings"].as_array().is_some_and(|w| !w.is_empty()),
    };
    let fewer = got == e.clean && &v["stats"]["cycles"] != cycles;
    if !warned && (fewer || must_warn) {
        p.push(format!(
            "{label}: {got} ({} deadlock cycles, {cycles} undamaged) with no warning naming {}; \
             warnings: {}",
            v["stats"]["cycles"],
            e.addr.map_or("it".into(), |a| format!("{a:#x}")),
            v["warnings"]
                .to_string()
                .chars()
                .take(700)
                .collect::<String>()
        ));
    }
    if fewer {
        return "fewer cycles, with a warning".into();
    }
    outcome(&got, e.clean).into()
}

/// Damage to the deadlocked mutex or its blocked waiter `task`: every
/// finding built on that task (it still owns the other mutex) must say
/// its evidence is damaged, in JSON and in the headline.
fn evidence_says_so(p: &mut Vec<String>, label: &str, path: &Path, task: u64) {
    let text = crate::util::run(["analyze".as_ref(), path.as_os_str()]);
    let json = crate::util::run(["--json".as_ref(), "analyze".as_ref(), path.as_os_str()]);
    let v = serde_json::from_str::<Value>(&json.stdout).unwrap_or_default();
    let task = format!("{task:x}");
    let on_task: Vec<&Value> = v["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f.to_string().replace('`', "").contains(&task))
        .collect();
    let unsaid = on_task.iter().any(|f| {
        f["evidence_warnings"]
            .as_array()
            .is_none_or(|w| w.is_empty())
    });
    let headline = text.stdout.lines().next().unwrap_or_default();
    if unsaid || (!on_task.is_empty() && !headline.contains("in the evidence")) {
        p.push(format!(
            "{label}: a finding built on task {task} does not say its evidence is damaged: \
             {headline}"
        ));
    }
}

/// A listing over a damaged task list warns naming the damage, in its
/// text and in its JSON (issue 10: listings used to print what they could with
/// exit 0 and no word of the damage).
fn listing_warns(p: &mut Vec<String>, label: &str, path: &Path, at: u64) {
    let names = |text: &str| {
        text.to_ascii_lowercase()
            .replace('`', "")
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter_map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok())
            .any(|x| x >> 12 == at >> 12)
    };
    for cmd in ["threads", "ps"] {
        let text = crate::util::run([cmd.as_ref(), path.as_os_str()]);
        let json = crate::util::run(["--json".as_ref(), cmd.as_ref(), path.as_os_str()]);
        let warned = json.code == Some(0) && names(&json.stdout);
        let said = names(&text.stdout) || names(&text.stderr);
        if text.code != Some(0) || !said || !warned {
            p.push(format!(
                "{label}: `{cmd}` exits {:?} and does not warn naming {at:#x}: {}",
                text.code,
                text.stderr.chars().take(400).collect::<String>()
            ));
        }
    }
}

/// The undamaged dump's verdict and cycle count.
fn clean_verdict(path: &Path) -> (String, Value) {
    let r = crate::util::run(["--json".as_ref(), "analyze".as_ref(), path.as_os_str()]);
    let v = r.expect(4).json();
    (
        v["overall"].as_str().unwrap().to_string(),
        v["stats"]["cycles"].clone(),
    )
}

fn memory_corpus(
    g: &Guest,
    plain: &Path,
    p: &mut Vec<String>,
    tally: &mut BTreeMap<String, usize>,
) -> usize {
    let path = g.dump("elf");
    let (clean, cycles) = clean_verdict(&path);
    let dump = Dump::open(&path).unwrap();
    let site = Site {
        k: LinuxKernel::open(&dump, None).unwrap(),
        truth: drgn(g, "elf"),
    };
    let image = ElfImage::new(std::fs::read(&path).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("damaged.elf");
    let mut runs = 0;
    for (what, damage) in MEMORY_DAMAGES {
        let label = format!("[{} elf] {what}", g.name());
        let Some(d) = damage(&site, &image) else {
            eprintln!("{label}: does not apply");
            continue;
        };
        let mut img = image.clone();
        for (va, v) in &d.writes {
            img.write_phys(site.pa(*va), v);
        }
        for &pa in &d.zero_pages {
            img.write_phys(pa, &[0u8; PAGE as usize]);
        }
        for &(pa, v) in &d.phys_writes {
            img.write_phys(pa, &v.to_le_bytes());
        }
        std::fs::write(&out, &img.bytes).unwrap();
        let e = Expect {
            scenario: "deadlock",
            clean: &clean,
            addr: Some(d.at),
            span: d.span,
        };
        *tally
            .entry(judge_linux(p, &label, &out, &e, &cycles, true))
            .or_insert(0) += 1;
        runs += 1;
        if what.starts_with("task l") || what.starts_with("thread group") {
            listing_warns(p, &label, &out, d.at);
        }
        if what.starts_with("mutex") || what.starts_with("blocked task's") {
            evidence_says_so(p, &label, &out, site.deadlocked_mutex().1);
        }
    }
    runs + kdump_page_corpus(g, plain, &site, p, tally)
}

/// The kdump page descriptor of the blocked task's page made to lie, in
/// the plain form of the guest's kdump (`plain`).
fn kdump_page_corpus(
    g: &Guest,
    plain: &Path,
    site: &Site<'_>,
    p: &mut Vec<String>,
    tally: &mut BTreeMap<String, usize>,
) -> usize {
    let (clean, cycles) = clean_verdict(plain);
    let bytes = std::fs::read(plain).unwrap();
    let (_, task) = site.deadlocked_mutex();
    let Some(desc) = page_descriptor(&bytes, site.pa(task) >> 12) else {
        p.push(format!(
            "[{} plain kdump] the blocked task's page is not in the dump",
            g.name()
        ));
        return 0;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("damaged.kdump");
    let mut runs = 0;
    for (what, at, value) in [
        ("offset huge", 0, &u64::MAX.to_le_bytes()[..]),
        ("offset into the header", 0, &0u64.to_le_bytes()[..]),
        ("size zero", 8, &0u32.to_le_bytes()[..]),
        ("size huge", 8, &u32::MAX.to_le_bytes()[..]),
        (
            "flags LZO",
            12,
            &kd::DUMP_DH_COMPRESSED_LZO.to_le_bytes()[..],
        ),
    ] {
        let mut b = bytes.clone();
        let o = desc + at;
        b[o..o + value.len()].copy_from_slice(value);
        std::fs::write(&out, &b).unwrap();
        let label = format!(
            "[{} plain kdump] blocked task's page descriptor: {what}",
            g.name()
        );
        let e = Expect {
            scenario: "deadlock",
            clean: &clean,
            addr: Some(task),
            span: None,
        };
        *tally
            .entry(judge_linux(p, &label, &out, &e, &cycles, true))
            .or_insert(0) += 1;
        runs += 1;
    }
    runs
}

fn u32_at(b: &[u8], o: u64) -> u64 {
    u64::from(u32::from_le_bytes(
        b[o as usize..o as usize + 4].try_into().unwrap(),
    ))
}

/// The file offset of page frame `pfn`'s descriptor in a plain kdump: the
/// descriptors follow the two bitmaps, one per page set in the second.
fn page_descriptor(b: &[u8], pfn: u64) -> Option<usize> {
    let block = u32_at(b, kd::BLOCK_SIZE);
    let sub = u32_at(b, kd::SUB_HDR_SIZE);
    let blocks = u32_at(b, kd::BITMAP_BLOCKS);
    let half = blocks * block / 2;
    let bitmap2 = &b[((1 + sub) * block + half) as usize..((1 + sub) * block + 2 * half) as usize];
    let bit = |n: u64| bitmap2[(n / 8) as usize] >> (n % 8) & 1 == 1;
    if !bit(pfn) {
        return None;
    }
    let before: u64 = bitmap2[..(pfn / 8) as usize]
        .iter()
        .map(|x| u64::from(x.count_ones()))
        .sum::<u64>()
        + (0..pfn % 8).filter(|&i| bit(pfn - pfn % 8 + i)).count() as u64;
    Some(((1 + sub + blocks) * block + before * kd::PAGE_DESC_SIZE) as usize)
}

fn drgn(g: &Guest, form: &str) -> Value {
    let p = g.dir.join("peers").join(format!("drgn-{form}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Header fields worth breaking: (name, file offset, width, value, whether
/// the field is big-endian).
fn header_damages(form: &str, b: &[u8]) -> Vec<(String, u64, usize, u64, bool)> {
    let mut v = Vec::new();
    let mut three = |name: &str, off: u64, width: usize, big_endian: bool| {
        for (how, x) in [("huge", u64::MAX), ("zero", 0), ("garbage", GARBAGE)] {
            v.push((format!("{name} {how}"), off, width, x, big_endian));
        }
    };
    match form {
        "elf" => {
            let phoff = u64::from_le_bytes(b[elf::E_PHOFF as usize..][..8].try_into().unwrap());
            // QEMU writes the note first, then one load per RAM block.
            let load = phoff + elf::PHDR_SIZE;
            three("e_phoff", elf::E_PHOFF, 8, false);
            three("e_phnum", elf::E_PHNUM, 2, false);
            three("note's p_offset", phoff + elf::P_OFFSET, 8, false);
            three("note's p_filesz", phoff + elf::P_FILESZ, 8, false);
            three("first load's p_paddr", load + elf::P_PADDR, 8, false);
            three("first load's p_offset", load + elf::P_OFFSET, 8, false);
            three("first load's p_filesz", load + elf::P_FILESZ, 8, false);
        }
        "flattened kdump" => {
            // Records of big-endian (offset, size) after the header block.
            let first = flat::HEADER_SIZE;
            let second = first + flat::RECORD_HEADER + be_at(b, first + 8);
            three("first record's offset", first, 8, true);
            three("first record's size", first + 8, 8, true);
            three("second record's offset", second, 8, true);
            three("second record's size", second + 8, 8, true);
        }
        _ => {
            // The sub-header is the file's second block.
            let sub = u32_at(b, kd::BLOCK_SIZE);
            three("block_size", kd::BLOCK_SIZE, 4, false);
            three("sub_hdr_size", kd::SUB_HDR_SIZE, 4, false);
            three("bitmap_blocks", kd::BITMAP_BLOCKS, 4, false);
            three("max_mapnr", kd::MAX_MAPNR, 4, false);
            three(
                "offset_vmcoreinfo",
                sub + kd::SUB_OFFSET_VMCOREINFO,
                8,
                false,
            );
            three("size_vmcoreinfo", sub + kd::SUB_SIZE_VMCOREINFO, 8, false);
            three("offset_note", sub + kd::SUB_OFFSET_NOTE, 8, false);
            three("max_mapnr_64", sub + kd::SUB_MAX_MAPNR_64, 8, false);
        }
    }
    v
}

fn be_at(b: &[u8], o: u64) -> u64 {
    u64::from_be_bytes(b[o as usize..o as usize + 8].try_into().unwrap())
}

/// VMCOREINFO values the reader relies on, made garbage or subtly wrong
/// (one hex digit changed, so the text still parses): every copy in the
/// file, as the ELF note and kdump's sub-header both carry one.
fn vmcoreinfo_damages(b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for key in [
        "KERNELOFFSET=",
        "SYMBOL(swapper_pg_dir)=",
        "SYMBOL(init_task)=",
        "NUMBER(phys_base)=",
        "OSRELEASE=",
    ] {
        let spots: Vec<(usize, usize)> = b
            .windows(key.len())
            .enumerate()
            .filter(|(_, w)| *w == key.as_bytes())
            .map(|(i, _)| {
                let s = i + key.len();
                let n = b[s..].iter().take(64).take_while(|&&c| c != b'\n').count();
                (s, n)
            })
            .filter(|&(_, n)| n > 0)
            .collect();
        if spots.is_empty() {
            continue;
        }
        let mut garbage = b.to_vec();
        let mut wrong = b.to_vec();
        for &(s, n) in &spots {
            garbage[s..s + n].fill(b'z');
            // A digit that moves the value by 16 MiB (KASLR's 2 MiB
            // alignment kept), or the release's last character.
            let i = s + n.saturating_sub(7);
            wrong[i] = match wrong[i] {
                b'0'..=b'8' => wrong[i] + 1,
                _ => b'0',
            };
        }
        out.push((format!("VMCOREINFO {key} garbage"), garbage));
        out.push((format!("VMCOREINFO {key} one digit wrong"), wrong));
    }
    out
}

/// The guest's hang dump in each form: the ELF core and the flattened
/// kdump virsh wrote, and that kdump made plain (as `makedumpfile -R`).
fn forms(g: &Guest, dir: &Path) -> [(&'static str, std::path::PathBuf); 3] {
    let plain = dir.join("plain.kdump");
    unflatten(&g.dump("kdump"), &plain);
    [
        ("elf", g.dump("elf")),
        ("flattened kdump", g.dump("kdump")),
        ("plain kdump", plain),
    ]
}

fn file_corpus(
    g: &Guest,
    forms: &[(&str, std::path::PathBuf)],
    p: &mut Vec<String>,
    tally: &mut BTreeMap<String, usize>,
) -> usize {
    let mut runs = 0;
    let dir = tempfile::tempdir().unwrap();
    for (form, path) in forms {
        let (clean, cycles) = clean_verdict(path);
        let bytes = std::fs::read(path).unwrap();
        let len = bytes.len() as u64;
        let e = Expect {
            scenario: "deadlock",
            clean: &clean,
            addr: None,
            span: None,
        };
        let out = dir.path().join("damaged");
        let mut case = |p: &mut Vec<String>, what: String, b: &[u8]| {
            std::fs::write(&out, b).unwrap();
            let label = format!("[{} {form}] {what}", g.name());
            *tally
                .entry(judge_linux(p, &label, &out, &e, &cycles, false))
                .or_insert(0) += 1;
            runs += 1;
        };
        for at in cut_points(len) {
            case(
                p,
                format!("cut at {at:#x} of {len:#x}"),
                &bytes[..at.min(len) as usize],
            );
        }
        for (what, off, width, value, big_endian) in header_damages(form, &bytes) {
            let mut b = bytes.clone();
            let v = if big_endian {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            };
            b[off as usize..off as usize + width].copy_from_slice(&v[..width]);
            case(p, what, &b);
        }
        for (what, b) in vmcoreinfo_damages(&bytes) {
            case(p, what, &b);
        }
    }
    runs
}

/// Every memory and file damage on every guest line's hang dumps.
#[test]
fn linux_guests_damaged() {
    let Some(guests) = guests() else { return };
    let mut p = Vec::new();
    let mut tally = BTreeMap::new();
    let mut runs = 0;
    for g in &guests {
        let dir = tempfile::tempdir().unwrap();
        let forms = forms(g, dir.path());
        runs += memory_corpus(g, &forms[2].1, &mut p, &mut tally);
        runs += file_corpus(g, &forms, &mut p, &mut tally);
    }
    assert!(runs >= 60 * guests.len(), "only {runs} cases ran");
    eprintln!("linux corruption corpus: {runs} cases: {tally:?}");
    report(&format!("linux corruption corpus ({runs} cases)"), p);
}
