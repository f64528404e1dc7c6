//! Contended directories: the Linux form of the seed case (issue 12).
//!
//! Processes flood one directory with files while others list it or
//! create in it, all on the directory inode's `i_rwsem`. Listing takes it
//! shared (`iterate_dir`), creating and removing take it exclusively. Two
//! things are not in the lock itself and are found here:
//!
//! - **Who reads.** A reader-owned `rw_semaphore` does not record its
//!   readers: `owner` names only the last reader to take it
//!   (`RWSEM_READER_OWNED`), which may long since have let go and may even
//!   be queued again as a waiter. The readers that are on a CPU are found
//!   from the running CPUs' stacks: a task inside the directory walk
//!   (`iterate_dir` and the file system's walk under it) that has this
//!   directory open holds the lock shared. That attribution is inferred,
//!   and the lock's `owner_note` says so.
//! - **How big the directory is.** The directory's children in the dcache:
//!   `dentry.d_subdirs` linked through `d_child` before 6.8, the
//!   `d_children` hlist linked through `d_sib` since. Which one is probed
//!   by the fields the types have; the walk is bounded, cycle-checked and
//!   back-link-checked. Positive dentries (with an inode) are the files;
//!   negative ones and `dcache_readdir`'s cursors are not.
//!
//! The tasks waiting to take the lock for write are the ones changing the
//! directory; a return address into the create path on a waiter's stack
//! says it is creating.

use crate::error::{Error, Result};
use crate::model::{LockInfo, LockTask, Partial, RunningCpu, StackFrame, TaskInfo, Warning};
use crate::stacks::Unwinder;
use crate::view::{Env, Reader};
use crate::waits::{file_path, OpenFile};
use crate::warning;
use hangscope_x64::VirtAddr;
use std::collections::{BTreeMap, HashSet};

/// Most children read from one directory's dcache list.
pub const MAX_DIR_CHILDREN: usize = 1 << 20;
/// Longest name read for a child (`NAME_MAX`).
const MAX_NAME: usize = 255;
/// `S_IFMT` and `S_IFDIR` in `inode.i_mode`.
const S_IFMT: u64 = 0o170000;
const S_IFDIR: u64 = 0o040000;

/// Functions of a directory walk that holds `i_rwsem` shared:
/// `iterate_dir` takes it, then the file system walks (`dcache_readdir`
/// and `scan_positives` for the dcache-backed ones like tmpfs before 6.6,
/// `offset_readdir` for tmpfs since) and fills the user's buffer
/// (`filldir64`).
pub const WALK_FUNCTIONS: [&str; 6] = [
    "iterate_dir",
    "dcache_readdir",
    "scan_positives",
    "offset_readdir",
    "offset_iterate_dir",
    "filldir64",
];

/// Taking or releasing an rw_semaphore: a task inside one of these is not
/// (or no longer) holding the lock in the walk.
const LOCK_FUNCTIONS: [&str; 7] = [
    "up_read",
    "rwsem_wake",
    "down_read",
    "down_read_killable",
    "__down_read_common",
    "rwsem_down_read_slowpath",
    "rwsem_optimistic_spin",
];

/// Functions of the create path: a writer waiting on a directory's
/// `i_rwsem` from the open path is creating (only `O_CREAT` takes the
/// parent exclusively there); `open_last_lookups` is often inlined into
/// `path_openat`.
const CREATE_FUNCTIONS: [&str; 8] = [
    "open_last_lookups",
    "lookup_open",
    "path_openat",
    "do_filp_open",
    "filename_create",
    "do_mknodat",
    "do_mkdirat",
    "do_symlinkat",
];
/// The same for removing one.
const REMOVE_FUNCTIONS: [&str; 2] = ["do_unlinkat", "do_rmdir"];

/// One child of a directory in the dcache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirChild {
    /// Its `struct dentry`.
    pub dentry: VirtAddr,
    /// `d_name`.
    pub name: String,
}

/// A directory's children in the dcache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirChildren {
    /// Which list the kernel keeps them on: `d_subdirs/d_child` or
    /// `d_children/d_sib`.
    pub layout: &'static str,
    /// Every child dentry met, cursors and negative ones included.
    pub total: usize,
    /// The positive children (with an inode): the directory's files.
    pub files: Vec<DirChild>,
    /// The walk stopped early (at the bound or at damage); `files` is then
    /// a lower bound.
    pub incomplete: bool,
    /// What stopped it.
    pub warnings: Vec<Warning>,
}

/// A task inferred to hold a directory's `i_rwsem` shared: on a CPU
/// inside the file system's walk under `iterate_dir` (not taking or
/// releasing the lock), with the directory open; made an owner only while
/// the lock's count has readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walker {
    /// The task.
    pub task: VirtAddr,
    /// Its CPU.
    pub cpu: u32,
    /// The `struct file` of the directory it holds open.
    pub file: VirtAddr,
    /// The walk's functions on its stack, outermost first
    /// (`iterate_dir > dcache_readdir > scan_positives`).
    pub frames: Vec<String>,
    /// Its whole stack, innermost frame first.
    pub stack: Vec<StackFrame>,
}

/// Whether kallsyms' `name` is `function` or a compiler's clone of it
/// (`function.constprop.0`, `function.isra.0`).
fn is_function(name: &str, function: &str) -> bool {
    name.strip_prefix(function)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// A directory whose `i_rwsem` tasks wait on.
#[derive(Debug, Clone, PartialEq)]
pub struct ContendedDir {
    /// The lock (`inode.i_rwsem`).
    pub lock: VirtAddr,
    /// The directory's inode.
    pub inode: VirtAddr,
    /// Its dentry (`i_dentry`'s first alias).
    pub dentry: Option<VirtAddr>,
    /// Its path, from an open file of it or from its dentry.
    pub path: String,
    /// The file system's type name (`tmpfs`).
    pub fs: Option<String>,
    /// Its children in the dcache.
    pub children: DirChildren,
    /// Readers found on the CPUs (see the module docs).
    pub walkers: Vec<Walker>,
    /// Thread-group ids holding files in it open, with how many.
    pub holders: BTreeMap<i32, usize>,
    /// Each positive child's holders (tgids), by dentry.
    pub child_holders: BTreeMap<u64, Vec<i32>>,
    /// Writers waiting on the lock: (task, what its stack says it does:
    /// `creating`, `removing`, `renaming` or `changing`).
    pub writers: Vec<(VirtAddr, &'static str)>,
    /// What went wrong reading it.
    pub warnings: Vec<Warning>,
}

/// A directory's children in the dcache, at most `max`, bounded,
/// cycle-checked and back-link-checked.
pub fn dir_children(r: &Reader<'_>, dentry: VirtAddr, max: usize) -> DirChildren {
    let mut out = DirChildren::default();
    let mut children: Vec<VirtAddr> = Vec::new();
    let walked = if r.has_field("dentry", "d_subdirs") {
        out.layout = "d_subdirs/d_child";
        (|| -> Result<()> {
            let head = r.object("dentry", dentry).field_addr("d_subdirs")?;
            for c in r.iter_list(head, "dentry", "d_child", max)? {
                children.push(c?);
            }
            Ok(())
        })()
    } else {
        out.layout = "d_children/d_sib";
        hlist_children(r, dentry, max, &mut children)
    };
    if let Err(e) = walked {
        out.incomplete = true;
        out.warnings.push(warning(&e));
    }
    out.total = children.len();
    for c in children {
        let d = r.object("dentry", c);
        match d.ptr("d_inode") {
            Ok(i) if i.0 == 0 => continue,
            Ok(_) => {}
            Err(e) => {
                out.warnings.push(warning(&e));
                continue;
            }
        }
        let name = d
            .ptr("d_name.name")
            .and_then(|p| Ok(r.mem.read_cstr(p, MAX_NAME)?))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|_| format!("(dentry {:#x})", c.0));
        out.files.push(DirChild { dentry: c, name });
    }
    out
}

/// The `d_children` hlist (6.8+): each node's `pprev` must point at the
/// link that led to it.
fn hlist_children(
    r: &Reader<'_>,
    dentry: VirtAddr,
    max: usize,
    out: &mut Vec<VirtAddr>,
) -> Result<()> {
    let sib = r.offset("dentry", "d_sib")?;
    let next_off = r.offset("hlist_node", "next")?;
    let pprev_off = r.offset("hlist_node", "pprev")?;
    let mut link = r.object("dentry", dentry).field_addr("d_children.first")?;
    let mut seen = HashSet::new();
    loop {
        let node = r.read_ptr(link)?;
        if node.0 == 0 {
            return Ok(());
        }
        if node.0 >> 56 != 0xff {
            return Err(Error::bad_data(
                link,
                format!("d_children link {:#x} is not a kernel address", node.0),
            ));
        }
        if !seen.insert(node.0) {
            return Err(Error::bad_data(
                node,
                "d_children loops without ending".to_string(),
            ));
        }
        if out.len() >= max {
            return Err(Error::bad_data(
                dentry,
                format!("d_children longer than {max} entries"),
            ));
        }
        let pprev = r.read_ptr(VirtAddr(node.0.wrapping_add(pprev_off)))?;
        if pprev != link {
            return Err(Error::bad_data(
                node,
                format!(
                    "d_sib.pprev is {:#x}, not the link before it {:#x}",
                    pprev.0, link.0
                ),
            ));
        }
        out.push(VirtAddr(node.0.wrapping_sub(sib)));
        link = VirtAddr(node.0.wrapping_add(next_off));
    }
}

/// The directory inode whose `i_rwsem` is `lock`, when it reads as one.
fn dir_inode(r: &Reader<'_>, lock: VirtAddr) -> Option<VirtAddr> {
    let inode = VirtAddr(lock.0.wrapping_sub(r.offset("inode", "i_rwsem").ok()?));
    let mode = r.object("inode", inode).uint("i_mode").ok()?;
    (mode & S_IFMT == S_IFDIR).then_some(inode)
}

/// Every contended directory among `locks`: their children, who holds
/// files in them, the writers waiting and, for a reader-owned lock, the
/// readers on the CPUs, which become its owners (replacing the owner
/// word's last reader when that task is itself waiting on the lock).
pub fn contended_dirs(
    env: &Env<'_>,
    locks: &mut [LockInfo],
    tasks: &[TaskInfo],
    running: &[RunningCpu],
    files: &BTreeMap<u64, OpenFile>,
    u: &Unwinder<'_>,
) -> Vec<ContendedDir> {
    let r = env.r;
    let mut out = Vec::new();
    for lock in locks.iter_mut().filter(|l| l.kind == "rw_semaphore") {
        let Some(inode) = dir_inode(&r, lock.address) else {
            continue;
        };
        let mut dir = ContendedDir {
            lock: lock.address,
            inode,
            dentry: None,
            path: String::new(),
            fs: None,
            children: DirChildren::default(),
            walkers: Vec::new(),
            holders: BTreeMap::new(),
            child_holders: BTreeMap::new(),
            writers: Vec::new(),
            warnings: Vec::new(),
        };
        // The directory's own open files (the listers'), and its dentry.
        let mut opened: Vec<(u64, &OpenFile)> = Vec::new();
        for (&f, of) in files {
            let fo = r.object("file", VirtAddr(f));
            if fo.ptr("f_inode").ok() == Some(inode) {
                opened.push((f, of));
                if dir.dentry.is_none() {
                    dir.dentry = fo.ptr("f_path.dentry").ok();
                    dir.path = file_path(&r, VirtAddr(f)).unwrap_or_default();
                }
            }
        }
        if dir.dentry.is_none() {
            dir.dentry = alias_of(&r, inode);
        }
        dir.fs = fs_type(&r, inode);
        if dir.path.is_empty() {
            dir.path = format!(
                "(directory inode {:#x}, ino {})",
                inode.0,
                r.object("inode", inode).uint("i_ino").unwrap_or(0)
            );
        }
        if let Some(d) = dir.dentry {
            dir.children = dir_children(&r, d, MAX_DIR_CHILDREN);
            let positive: HashSet<u64> = dir.children.files.iter().map(|c| c.dentry.0).collect();
            for (&f, of) in files {
                let Ok(fd) = r.object("file", VirtAddr(f)).ptr("f_path.dentry") else {
                    continue;
                };
                if positive.contains(&fd.0) {
                    let e = dir.child_holders.entry(fd.0).or_default();
                    for &tgid in &of.tgids {
                        *dir.holders.entry(tgid).or_default() += 1;
                        if !e.contains(&tgid) {
                            e.push(tgid);
                        }
                    }
                }
            }
        }
        // Readers on the CPUs.
        for cpu in running {
            let Some(task) = cpu.task else { continue };
            let walk: Vec<String> = cpu
                .frames
                .iter()
                .rev()
                .filter_map(|f| f.function.clone())
                .filter(|f| WALK_FUNCTIONS.iter().any(|w| is_function(f, w)))
                .collect();
            // Inside the file system's walk, not only in iterate_dir: at
            // its end iterate_dir releases the lock (up_read, rwsem_wake
            // waking the waiters), at its start it may still wait for it.
            let in_fs_walk = walk.iter().any(|f| !is_function(f, "iterate_dir"));
            let at_the_lock = cpu
                .frames
                .iter()
                .filter_map(|f| f.function.as_deref())
                .any(|f| LOCK_FUNCTIONS.iter().any(|l| is_function(f, l)));
            if !in_fs_walk || at_the_lock {
                continue;
            }
            if let Some(&(file, _)) = opened.iter().find(|(_, of)| of.tasks.contains(&task)) {
                dir.walkers.push(Walker {
                    task,
                    cpu: cpu.cpu,
                    file: VirtAddr(file),
                    frames: walk,
                    stack: cpu.frames.clone(),
                });
            }
        }
        for w in &lock.waiters {
            if w.mode != "write" {
                continue;
            }
            let doing = writer_action(env, u, w.task, tasks);
            dir.writers.push((w.task, doing));
        }
        attribute_readers(lock, &dir.walkers, tasks);
        dir.warnings.extend(dir.children.warnings.iter().cloned());
        out.push(dir);
    }
    out
}

/// Make the readers on the CPUs the owners of a reader-owned lock.
fn attribute_readers(lock: &mut LockInfo, walkers: &[Walker], tasks: &[TaskInfo]) {
    // Only while the count says readers hold it: with no reader bias the
    // lock is between owners, whatever the CPUs run.
    if lock.readers.is_none_or(|n| n == 0) || walkers.is_empty() {
        return;
    }
    let waiting: HashSet<u64> = lock.waiters.iter().map(|w| w.task.0).collect();
    // The owner word's last reader cannot hold the lock while it waits
    // for it again.
    lock.owners.retain(|o| !waiting.contains(&o.task.0));
    for w in walkers {
        if !lock.owners.iter().any(|o| o.task == w.task) {
            let t = tasks.iter().find(|t| t.task == w.task);
            lock.owners.push(LockTask {
                task: w.task,
                pid: t.map(|t| t.pid),
                tgid: t.map(|t| t.tgid),
                comm: t.map(|t| t.comm.clone()),
                mode: "read".into(),
                since_last_arrival_ns: None,
                hung_task_seen_s: None,
            });
        }
    }
    let who: Vec<String> = walkers
        .iter()
        .map(|w| {
            format!(
                "{:#x} on CPU {} in {}",
                w.task.0,
                w.cpu,
                w.frames.join(" > ")
            )
        })
        .collect();
    let note = format!(
        "inferred: {} reader(s) found on the CPUs inside the directory walk with the \
         directory open ({})",
        walkers.len(),
        who.join(", ")
    );
    lock.owner_note = Some(match lock.owner_note.take() {
        Some(n) => format!("{n}; {note}"),
        None => note,
    });
}

/// What a writer waiting on a directory's lock is doing, from its
/// unwound stack (innermost match first).
fn writer_action(
    env: &Env<'_>,
    u: &Unwinder<'_>,
    task: VirtAddr,
    tasks: &[TaskInfo],
) -> &'static str {
    let Some(t) = tasks.iter().find(|t| t.task == task) else {
        return "changing";
    };
    let one = Partial {
        items: vec![t.clone()],
        warnings: Vec::new(),
    };
    let stacks = crate::stacks::stacks(env, u, one, &[]);
    for f in stacks.items.iter().flat_map(|s| &s.frames) {
        let Some(name) = f.function.as_deref() else {
            continue;
        };
        if CREATE_FUNCTIONS.iter().any(|c| is_function(name, c)) {
            return "creating";
        }
        if REMOVE_FUNCTIONS.iter().any(|c| is_function(name, c)) {
            return "removing";
        }
        if is_function(name, "do_renameat2") {
            return "renaming";
        }
    }
    "changing"
}

/// The inode's first dentry alias (`i_dentry`, linked through
/// `d_u.d_alias`).
pub(crate) fn alias_of(r: &Reader<'_>, inode: VirtAddr) -> Option<VirtAddr> {
    let first = r.object("inode", inode).ptr("i_dentry.first").ok()?;
    if first.0 == 0 || first.0 >> 56 != 0xff {
        return None;
    }
    Some(VirtAddr(
        first
            .0
            .wrapping_sub(r.offset("dentry", "d_u.d_alias").ok()?),
    ))
}

/// `inode.i_sb->s_type->name`.
fn fs_type(r: &Reader<'_>, inode: VirtAddr) -> Option<String> {
    let sb = r.object("inode", inode).deref("i_sb", "super_block").ok()?;
    let ty = sb.deref("s_type", "file_system_type").ok()?;
    let name = r.mem.read_cstr(ty.ptr("name").ok()?, 64).ok()?;
    (!name.is_empty() && name.iter().all(|c| c.is_ascii_graphic()))
        .then(|| String::from_utf8_lossy(&name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_symbols::SymbolTable;
    use hangscope_x64::SparseMemory;

    /// `struct dentry` in a layout of its own (not the kernel's), in the
    /// 6.8+ form (`d_children`/`d_sib`) or the older one
    /// (`d_subdirs`/`d_child`).
    fn types(hlist: bool) -> SymbolTable {
        let ptr = |to: &str| {
            format!(r#"{{"kind":"pointer","subtype":{{"kind":"struct","name":"{to}"}}}}"#)
        };
        let st = |n: &str| format!(r#"{{"kind":"struct","name":"{n}"}}"#);
        let f = |n: &str, off: u64, ty: String| format!(r#""{n}":{{"offset":{off},"type":{ty}}}"#);
        let links = if hlist {
            [
                f("d_sib", 0x30, st("hlist_node")),
                f("d_children", 0x50, st("hlist_head")),
            ]
        } else {
            [
                f("d_child", 0x30, st("list_head")),
                f("d_subdirs", 0x50, st("list_head")),
            ]
        };
        let isf = format!(
            r#"{{"metadata":{{"format":"6.2.0"}},
"base_types":{{"pointer":{{"size":8,"signed":false,"kind":"int","endian":"little"}},
 "char":{{"size":1,"signed":true,"kind":"char","endian":"little"}}}},
"user_types":{{
 "list_head":{{"kind":"struct","size":16,"fields":{{{},{}}}}},
 "hlist_node":{{"kind":"struct","size":16,"fields":{{{},{}}}}},
 "hlist_head":{{"kind":"struct","size":8,"fields":{{{}}}}},
 "qstr":{{"kind":"struct","size":16,"fields":{{{}}}}},
 "dentry":{{"kind":"struct","size":128,"fields":{{{},{},{},{}}}}}}},
"enums":{{}},"symbols":{{}}}}"#,
            f("next", 0, ptr("list_head")),
            f("prev", 8, ptr("list_head")),
            f("next", 8, ptr("hlist_node")),
            f("pprev", 0, ptr("hlist_node")),
            f("first", 0, ptr("hlist_node")),
            f("name", 8, ptr("char")),
            f("d_inode", 0x10, ptr("inode")),
            f("d_name", 0x18, st("qstr")),
            links[0],
            links[1],
        );
        SymbolTable::from_isf_bytes(isf.as_bytes(), std::path::Path::new("dirs.json")).unwrap()
    }

    const DIR: u64 = 0xffff_8880_0100_0000;
    const CHILD: u64 = 0xffff_8880_0200_0000;

    /// A directory with `n` children (every third negative), linked in
    /// the layout `types(hlist)` describes.
    fn directory(hlist: bool, n: u64) -> SparseMemory {
        let mut m = SparseMemory::new();
        let child = |i: u64| CHILD + i * 0x100;
        for i in 0..n {
            let c = child(i);
            m.write_u64(c + 0x10, if i % 3 == 2 { 0 } else { 0xffff_8880_0900_0000 });
            m.write_u64(c + 0x18 + 8, c + 0x80);
            m.write_u64(c + 0x80, u64::from_le_bytes(*b"sess_000") + (i << 56));
        }
        if hlist {
            // d_children.first -> child0.d_sib; each node's pprev points
            // at the link that led to it.
            let mut link = DIR + 0x50;
            for i in 0..n {
                let node = child(i) + 0x30;
                m.write_u64(link, node);
                m.write_u64(node, link);
                link = node + 8;
            }
            m.write_u64(link, 0);
        } else {
            let head = DIR + 0x50;
            let nodes: Vec<u64> = (0..n).map(|i| child(i) + 0x30).collect();
            let ring: Vec<u64> = std::iter::once(head).chain(nodes).collect();
            for (i, &a) in ring.iter().enumerate() {
                m.write_u64(a, ring[(i + 1) % ring.len()]);
                m.write_u64(a + 8, ring[(i + ring.len() - 1) % ring.len()]);
            }
        }
        m
    }

    fn read(hlist: bool, m: &SparseMemory, max: usize) -> DirChildren {
        let t = types(hlist);
        let r = Reader { mem: m, types: &t };
        dir_children(&r, VirtAddr(DIR), max)
    }

    #[test]
    fn children_are_read_from_either_list_by_the_fields_the_types_have() {
        for hlist in [false, true] {
            let d = read(hlist, &directory(hlist, 9), MAX_DIR_CHILDREN);
            assert_eq!(
                d.layout,
                if hlist {
                    "d_children/d_sib"
                } else {
                    "d_subdirs/d_child"
                }
            );
            assert_eq!(
                (d.total, d.files.len(), d.incomplete),
                (9, 6, false),
                "{d:?}"
            );
            assert!(d.files[0].name.starts_with("sess_00"), "{:?}", d.files[0]);
        }
    }

    #[test]
    fn damaged_child_lists_stop_with_a_warning() {
        for hlist in [false, true] {
            // Bounded: more children than the walk may read.
            let d = read(hlist, &directory(hlist, 9), 4);
            assert!(d.incomplete && d.total <= 4, "{d:?}");
            assert!(!d.warnings.is_empty());
            // A cycle: the last child links back to the second.
            let mut m = directory(hlist, 9);
            let (last, second) = (CHILD + 8 * 0x100 + 0x30, CHILD + 0x100 + 0x30);
            m.write_u64(if hlist { last + 8 } else { last }, second);
            let d = read(hlist, &m, MAX_DIR_CHILDREN);
            assert!(d.incomplete && d.total <= 9, "{d:?}");
            // A broken back link on the fifth child.
            let mut m = directory(hlist, 9);
            m.write_u64(
                CHILD + 4 * 0x100 + 0x30 + if hlist { 0 } else { 8 },
                0xffff_8880_dead_0000,
            );
            let d = read(hlist, &m, MAX_DIR_CHILDREN);
            assert!(d.incomplete && d.total == 4, "{d:?}");
            assert!(
                d.warnings[0].message.contains("prev") || d.warnings[0].message.contains("pprev"),
                "{:?}",
                d.warnings
            );
        }
    }
}
