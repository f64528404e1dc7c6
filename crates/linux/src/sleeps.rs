//! Waits with no mutex-style waiter record, found from the data alone:
//!
//! - **rt_mutex**: the task's `pi_blocked_on` names its `struct
//!   rt_mutex_waiter` (on its stack), whose `task` must point back and
//!   whose tree node must climb (parent pointers, bounded) to the root of
//!   its `lock`'s `waiters` rbtree; every waiter is then read from that
//!   tree, each checked the same way. The owner is `owner` without
//!   `RT_MUTEX_HAS_WAITERS`.
//! - **completion** and simple wait queues: a `struct swait_queue` on the
//!   stack (`task` = the task) linked into a ring whose one node that is no
//!   waiter record on a task's stack is the `swait_queue_head`; inside a
//!   `struct completion` when the completion wait is on the stack.
//! - **wait queues**: a `struct wait_queue_entry` on the stack (`private` =
//!   the task) linked into a ring whose one node with no wake function is
//!   the `wait_queue_head`. Its `func` says what the entry is: a page
//!   waiter (`wake_page_function`: the `struct wait_page_queue` around it
//!   names the folio and the bit, PG_locked or PG_writeback), a bit waiter
//!   (`wake_bit_function`: `struct wait_bit_queue_entry` names the word; a
//!   buffer_head's `b_state` under `__lock_buffer`), or a plain entry.
//!
//! None of these records an owner. A page or buffer wait is I/O
//! (`io_schedule`): [`LockIo`] says on what device and file.

use crate::model::{LockInfo, LockIo};
use crate::view::{Env, Reader};
use crate::waits::{linked_both_ways, ring, task_ref, TaskRef};
use hangscope_x64::VirtAddr;
use std::collections::{HashMap, HashSet};

/// `RT_MUTEX_HAS_WAITERS`: bit 0 of `rt_mutex_base.owner`.
pub const RT_MUTEX_HAS_WAITERS: u64 = 0x1;
/// Deepest rbtree climbed or walked (a red-black tree of 2^64 nodes is
/// at most 128 deep).
const MAX_RB_DEPTH: usize = 128;
/// Most waiters read from one rt_mutex's tree.
const MAX_RT_WAITERS: usize = 1 << 12;

/// What a sleep scan needs about the other tasks.
pub(crate) struct Scan<'a, 't> {
    pub env: &'a Env<'a>,
    pub tasks: &'a HashMap<u64, &'t TaskRef<'t>>,
    pub thread_size: u64,
}

impl Scan<'_, '_> {
    fn r(&self) -> Reader<'_> {
        self.env.r
    }

    /// The task whose stack holds `addr`, if any.
    fn stack_owner(&self, task: u64, addr: u64) -> bool {
        self.tasks.get(&task).is_some_and(|t| {
            t.stack
                .is_some_and(|s| addr >= s.0 && addr < s.0.wrapping_add(self.thread_size))
        })
    }

    fn is_code(&self, w: u64) -> bool {
        w >> 47 == 0x1_ffff && self.env.kallsyms.symbol_at(w).is_some()
    }

    fn function_name(&self, w: u64) -> Option<&str> {
        self.env
            .kallsyms
            .symbol_at(w)
            .filter(|(_, off)| *off == 0)
            .map(|(s, _)| s.name)
    }

    /// Whether `addr` lies inside the kernel object named `sym` (up to
    /// the next symbol); `None` when kallsyms does not have it.
    fn inside(&self, sym: &str, addr: u64) -> Option<bool> {
        let start = self.env.kallsyms.get(sym)?;
        let end = self.env.kallsyms.next_after(start)?.addr;
        Some(addr >= start && addr < end)
    }
}

fn bad(at: VirtAddr, message: String) -> crate::model::Warning {
    crate::model::Warning {
        kind: crate::model::WarningKind::BadData,
        address: Some(at),
        message,
    }
}

fn hinted(hints: &[&str], prefixes: &[&str]) -> bool {
    hints
        .iter()
        .any(|h| prefixes.iter().any(|p| h.starts_with(p)))
}

/// The rt_mutex the task waits on, through `task.pi_blocked_on`.
pub(crate) fn rt_mutex_wait(s: &Scan<'_, '_>, task: VirtAddr) -> Option<LockInfo> {
    let r = s.r();
    let waiter = r.object("task_struct", task).ptr("pi_blocked_on").ok()?;
    if waiter.0 == 0 {
        return None;
    }
    let node_path = ["tree.entry", "tree_entry"]
        .into_iter()
        .find(|p| r.has_field("rt_mutex_waiter", p))?;
    let node_off = r.offset("rt_mutex_waiter", node_path).ok()?;
    let w = r.object("rt_mutex_waiter", waiter);
    if w.ptr("task").ok()? != task || !s.stack_owner(task.0, waiter.0) {
        return None;
    }
    let lock = w.ptr("lock").ok()?;
    let base = r.object("rt_mutex_base", lock);
    let root = base.ptr("waiters.rb_root.rb_node").ok()?;
    // The waiter's node climbs to the lock's root.
    let mut cur = VirtAddr(waiter.0.wrapping_add(node_off));
    let mut depth = 0;
    loop {
        let parent = r.object("rb_node", cur).uint("__rb_parent_color").ok()? & !3;
        if parent == 0 {
            break;
        }
        depth += 1;
        if depth > MAX_RB_DEPTH {
            return None;
        }
        cur = VirtAddr(parent);
    }
    if cur != root {
        return None;
    }
    let raw = base.uint("owner").ok()?;
    let mut info = LockInfo::new(lock, "rt_mutex");
    info.owner_raw = Some(raw);
    let owner = raw & !3;
    if s.tasks.contains_key(&owner) {
        info.owners.push(task_ref(VirtAddr(owner), "exclusive"));
    } else if owner == 0 {
        info.owner_note = Some("no owner in the owner word".into());
    } else {
        info.warnings.push(bad(
            lock,
            format!("rt_mutex {:#x}: owner word {raw:#x} is not a task", lock.0),
        ));
    }
    // Every waiter, in tree order (by priority), each pointing back.
    for n in rb_inorder(&r, root, MAX_RT_WAITERS) {
        let wrec = VirtAddr(n.0.wrapping_sub(node_off));
        let Ok(t) = r.object("rt_mutex_waiter", wrec).ptr("task") else {
            continue;
        };
        let back = r.object("task_struct", t).ptr("pi_blocked_on").ok();
        if back == Some(wrec) && s.tasks.contains_key(&t.0) {
            info.waiters.push(task_ref(t, "exclusive"));
        } else {
            info.warnings.push(bad(
                wrec,
                format!(
                    "rt_mutex {:#x}: waiter record {:#x} does not point back from its task",
                    lock.0, wrec.0
                ),
            ));
        }
    }
    if !info.waiters.iter().any(|w| w.task == task) {
        return None;
    }
    Some(info)
}

/// The nodes of the rbtree under `root`, in order, at most `max`, cycles
/// and depth bounded.
fn rb_inorder(r: &Reader<'_>, root: VirtAddr, max: usize) -> Vec<VirtAddr> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<VirtAddr> = Vec::new();
    let mut cur = root;
    loop {
        while cur.0 != 0 {
            if !seen.insert(cur.0) || stack.len() > MAX_RB_DEPTH {
                return out;
            }
            stack.push(cur);
            cur = match r.object("rb_node", cur).ptr("rb_left") {
                Ok(l) => l,
                Err(_) => return out,
            };
        }
        let Some(n) = stack.pop() else {
            return out;
        };
        out.push(n);
        if out.len() >= max {
            return out;
        }
        cur = match r.object("rb_node", n).ptr("rb_right") {
            Ok(rt) => rt,
            Err(_) => return out,
        };
    }
}

/// A ring's nodes split into waiter records (on their task's stack) and
/// the one other node, its head.
fn split_ring(
    s: &Scan<'_, '_>,
    nodes: &[VirtAddr],
    task_at: impl Fn(VirtAddr) -> Option<u64>,
    is_head: impl Fn(VirtAddr) -> bool,
) -> Option<(VirtAddr, Vec<(VirtAddr, VirtAddr)>)> {
    let mut head = None;
    let mut waiters: HashMap<u64, VirtAddr> = HashMap::new();
    for &n in nodes {
        if is_head(n) {
            if head.replace(n).is_some() {
                return None;
            }
            continue;
        }
        if let Some(t) = task_at(n).filter(|&t| s.tasks.contains_key(&t)) {
            waiters.insert(n.0, VirtAddr(t));
        }
    }
    let head = head?;
    // In list order from the head on.
    let pos = nodes.iter().position(|&n| n == head)?;
    let ordered = nodes[pos + 1..]
        .iter()
        .chain(&nodes[..pos])
        .filter_map(|n| waiters.get(&n.0).map(|&t| (t, *n)))
        .collect();
    Some((head, ordered))
}

/// The completion or simple wait queue whose `struct swait_queue` has its
/// `task` field at `at`.
pub(crate) fn swait_at(
    s: &Scan<'_, '_>,
    at: VirtAddr,
    task: VirtAddr,
    hints: &[&str],
) -> Option<LockInfo> {
    let r = s.r();
    let task_off = r.offset("swait_queue", "task").ok()?;
    let list_off = r.offset("swait_queue", "task_list").ok()?;
    let rec = VirtAddr(at.0.wrapping_sub(task_off));
    let node = VirtAddr(rec.0.wrapping_add(list_off));
    linked_both_ways(&r, node)?;
    let nodes = ring(&r, node)?;
    let task_at = |n: VirtAddr| {
        r.read_ptr(VirtAddr(n.0.wrapping_sub(list_off).wrapping_add(task_off)))
            .ok()
            .map(|v| v.0)
    };
    let (head, waiters) = split_ring(s, &nodes, task_at, |n| {
        !task_at(n).is_some_and(|t| s.stack_owner(t, n.0))
    })?;
    if !waiters.iter().any(|w| w.0 == task) {
        return None;
    }
    let queue = VirtAddr(
        head.0
            .wrapping_sub(r.offset("swait_queue_head", "task_list").ok()?),
    );
    let completion = hinted(
        hints,
        &[
            "wait_for_completion",
            "__wait_for_common",
            "wait_for_common",
        ],
    );
    let mut info = if completion {
        let comp = VirtAddr(queue.0.wrapping_sub(r.offset("completion", "wait").ok()?));
        let mut i = LockInfo::new(comp, "completion");
        i.count_raw = r.object("completion", comp).uint("done").ok();
        i.owner_note = Some(
            "no owner recorded: a completion records only its waiters, not who is to \
             complete it"
                .into(),
        );
        i
    } else {
        let mut i = LockInfo::new(queue, "swait_queue");
        i.owner_note = Some(
            "no owner recorded: a simple wait queue records only its waiters, not who \
             wakes it"
                .into(),
        );
        i
    };
    info.waiters = waiters
        .iter()
        .map(|&(t, _)| task_ref(t, "exclusive"))
        .collect();
    Some(info)
}

/// The wait queue, page or bit the task waits on through the `struct
/// wait_queue_entry` whose `private` field is at `at`.
pub(crate) fn wait_entry_at(
    s: &Scan<'_, '_>,
    at: VirtAddr,
    task: VirtAddr,
    hints: &[&str],
) -> Option<LockInfo> {
    let r = s.r();
    let priv_off = r.offset("wait_queue_entry", "private").ok()?;
    let entry_off = r.offset("wait_queue_entry", "entry").ok()?;
    let func_off = r.offset("wait_queue_entry", "func").ok()?;
    let rec = VirtAddr(at.0.wrapping_sub(priv_off));
    let node = VirtAddr(rec.0.wrapping_add(entry_off));
    let func = r.read_ptr(VirtAddr(rec.0.wrapping_add(func_off))).ok()?;
    if !s.is_code(func.0) {
        return None;
    }
    linked_both_ways(&r, node)?;
    let nodes = ring(&r, node)?;
    let field = |n: VirtAddr, off: u64| {
        r.read_ptr(VirtAddr(n.0.wrapping_sub(entry_off).wrapping_add(off)))
            .ok()
            .map(|v| v.0)
    };
    // The head's "func" is its spinlock word, never code.
    let (head, waiters) = split_ring(
        s,
        &nodes,
        |n| field(n, priv_off),
        |n| !field(n, func_off).is_some_and(|f| s.is_code(f)),
    )?;
    if !waiters.iter().any(|w| w.0 == task) {
        return None;
    }
    let fname = s.function_name(func.0).unwrap_or("");
    let queue = VirtAddr(
        head.0
            .wrapping_sub(r.offset("wait_queue_head", "head").ok()?),
    );
    if fname == "wake_page_function" {
        return page_wait(s, rec, queue, func, &waiters, &field, entry_off);
    }
    if fname == "wake_bit_function" {
        return bit_wait(s, rec, queue, func, &waiters, &field, entry_off, hints);
    }
    let mut info = LockInfo::new(queue, "wait_queue");
    info.owner_note = Some(
        "no owner recorded: a wait queue records only its waiters, not who is to wake it".into(),
    );
    info.waiters = waiters
        .iter()
        .map(|&(t, _)| task_ref(t, "exclusive"))
        .collect();
    Some(info)
}

type Field<'f> = dyn Fn(VirtAddr, u64) -> Option<u64> + 'f;

/// A `struct wait_page_queue`'s folio and bit, for the waiters of the
/// same folio only (the hashed queue is shared).
fn page_wait(
    s: &Scan<'_, '_>,
    rec: VirtAddr,
    queue: VirtAddr,
    func: VirtAddr,
    waiters: &[(VirtAddr, VirtAddr)],
    field: &Field<'_>,
    entry_off: u64,
) -> Option<LockInfo> {
    let r = s.r();
    let wait_off = r.offset("wait_page_queue", "wait").ok()?;
    let folio_field = ["folio", "page"]
        .into_iter()
        .find(|f| r.has_field("wait_page_queue", f))?;
    let folio_off = r.offset("wait_page_queue", folio_field).ok()?;
    let bit_off = r.offset("wait_page_queue", "bit_nr").ok()?;
    let wpq = VirtAddr(rec.0.wrapping_sub(wait_off));
    let folio = r.read_ptr(VirtAddr(wpq.0.wrapping_add(folio_off))).ok()?;
    let bit = r.read_uint(VirtAddr(wpq.0.wrapping_add(bit_off)), 4).ok()?;
    let mut info = LockInfo::new(folio, "page");
    if s.inside("folio_wait_table", queue.0) == Some(false)
        && s.inside("page_wait_table", queue.0) != Some(true)
    {
        return None;
    }
    // Only the waiters on this folio and bit (one bucket serves many).
    let func_off = r.offset("wait_queue_entry", "func").ok()?;
    for &(t, n) in waiters {
        let other = VirtAddr(n.0.wrapping_sub(entry_off).wrapping_sub(wait_off));
        let same = field(n, func_off) == Some(func.0)
            && r.read_ptr(VirtAddr(other.0.wrapping_add(folio_off))).ok() == Some(folio)
            && r.read_uint(VirtAddr(other.0.wrapping_add(bit_off)), 4).ok() == Some(bit);
        if same {
            info.waiters.push(task_ref(t, "exclusive"));
        }
    }
    let is_bit = |c: &str| r.types.enum_value("pageflags", c) == Some(bit as i64);
    let what = if is_bit("PG_locked") {
        "page lock (PG_locked)"
    } else if is_bit("PG_writeback") {
        "page writeback (PG_writeback)"
    } else {
        "page bit"
    };
    let flags = r.object("page", folio).uint("flags").ok();
    info.count_raw = flags;
    if let Some(f) = flags {
        if bit < 64 && f & (1 << bit) == 0 {
            info.warnings.push(bad(
                folio,
                format!(
                    "page {:#x}: bit {bit} is clear in flags {f:#x}; the waiter is being woken",
                    folio.0
                ),
            ));
        }
    }
    let (file, device, index) = page_file(&r, folio);
    info.protects = Some(format!(
        "{what} of {}{}",
        file.as_deref().unwrap_or("an anonymous or unnamed page"),
        index.map(|i| format!(", index {i}")).unwrap_or_default()
    ));
    info.owner_note = Some(format!(
        "no owner recorded: the kernel does not record who holds a page's {}; an I/O wait \
         (io_schedule in folio_wait_bit_common)",
        if what.contains("writeback") {
            "writeback"
        } else {
            "lock"
        }
    ));
    info.io = Some(LockIo {
        wait: format!("{what} in folio_wait_bit_common"),
        device,
        file,
    });
    Some(info)
}

/// The file, file system and index of a page cache page
/// (`page.mapping->host`), when it has one.
fn page_file(r: &Reader<'_>, page: VirtAddr) -> (Option<String>, Option<String>, Option<u64>) {
    let p = r.object("page", page);
    let index = p.uint("index").ok();
    let Ok(mapping) = p.ptr("mapping") else {
        return (None, None, index);
    };
    // PAGE_MAPPING_ANON and PAGE_MAPPING_MOVABLE are the low bits.
    if mapping.0 == 0 || mapping.0 & 3 != 0 {
        return (None, None, None);
    }
    let Ok(inode) = r.object("address_space", mapping).ptr("host") else {
        return (None, None, index);
    };
    let fs = crate::waits::fs_name(r, inode);
    let path = inode_path(r, inode).or_else(|| {
        let ino = r.object("inode", inode).uint("i_ino").ok()?;
        Some(format!("inode {ino}"))
    });
    (path, fs, index)
}

/// An inode's path through one of its super block's mounts
/// (`s_mounts`), from its first dentry alias.
pub(crate) fn inode_path(r: &Reader<'_>, inode: VirtAddr) -> Option<String> {
    let dentry = crate::dirs::alias_of(r, inode)?;
    let sb = r.object("inode", inode).ptr("i_sb").ok()?;
    let head = r.object("super_block", sb).field_addr("s_mounts").ok()?;
    let inst_off = r.offset("mount", "mnt_instance").ok()?;
    let mnt_off = r.offset("mount", "mnt").ok()?;
    let nodes = ring(r, head)?;
    let first = nodes.get(1)?;
    let mount = VirtAddr(first.0.wrapping_sub(inst_off));
    crate::waits::path_of(r, dentry, VirtAddr(mount.0.wrapping_add(mnt_off)))
}

/// A `struct wait_bit_queue_entry`'s word and bit: a buffer_head's lock
/// when `__lock_buffer` is on the stack.
#[allow(clippy::too_many_arguments)]
fn bit_wait(
    s: &Scan<'_, '_>,
    rec: VirtAddr,
    queue: VirtAddr,
    func: VirtAddr,
    waiters: &[(VirtAddr, VirtAddr)],
    field: &Field<'_>,
    entry_off: u64,
    hints: &[&str],
) -> Option<LockInfo> {
    let r = s.r();
    let wq_off = r.offset("wait_bit_queue_entry", "wq_entry").ok()?;
    let word_off = r.offset("wait_bit_queue_entry", "key.flags").ok()?;
    let bit_off = r.offset("wait_bit_queue_entry", "key.bit_nr").ok()?;
    let wbq = VirtAddr(rec.0.wrapping_sub(wq_off));
    let word = r.read_ptr(VirtAddr(wbq.0.wrapping_add(word_off))).ok()?;
    let bit = r.read_uint(VirtAddr(wbq.0.wrapping_add(bit_off)), 4).ok()?;
    if s.inside("bit_wait_table", queue.0) == Some(false) {
        return None;
    }
    let func_off = r.offset("wait_queue_entry", "func").ok()?;
    let same_bit = |n: VirtAddr| {
        let other = VirtAddr(n.0.wrapping_sub(entry_off).wrapping_sub(wq_off));
        field(n, func_off) == Some(func.0)
            && r.read_ptr(VirtAddr(other.0.wrapping_add(word_off))).ok() == Some(word)
            && r.read_uint(VirtAddr(other.0.wrapping_add(bit_off)), 4).ok() == Some(bit)
    };
    let list: Vec<_> = waiters
        .iter()
        .filter(|w| same_bit(w.1))
        .map(|&(t, _)| task_ref(t, "exclusive"))
        .collect();
    // `__lock_buffer` tail-calls the out-of-line bit lock, so its own
    // frame is often gone: the bit (BH_Lock) and the bit-lock wait name it.
    let buffer = hinted(
        hints,
        &[
            "__lock_buffer",
            "__wait_on_buffer",
            "out_of_line_wait_on_bit_lock",
            "out_of_line_wait_on_bit",
        ],
    ) && r.types.enum_value("bh_state_bits", "BH_Lock") == Some(bit as i64)
        && r.read_uint(word, 8)
            .is_ok_and(|w| bit < 64 && w & (1 << bit) != 0);
    let state_off = r.offset("buffer_head", "b_state").ok();
    let mut info = match (buffer, state_off) {
        (true, Some(off)) => {
            let bh = VirtAddr(word.0.wrapping_sub(off));
            let mut i = LockInfo::new(bh, "buffer");
            let b = r.object("buffer_head", bh);
            i.count_raw = b.uint("b_state").ok();
            let block = b.uint("b_blocknr").ok();
            let dev =
                b.ptr("b_bdev").ok().filter(|d| d.0 != 0).map(|d| {
                    bdev_name(&r, d).unwrap_or_else(|| format!("block_device {:#x}", d.0))
                });
            i.protects = Some(format!(
                "buffer_head lock (BH_Lock){}",
                match (&dev, block) {
                    (Some(d), Some(b)) => format!(" of block {b} on {d}"),
                    _ => ", no block device".into(),
                }
            ));
            i.owner_note = Some(
                "no owner recorded: the kernel does not record who holds a buffer's lock; an \
                 I/O wait (io_schedule in __wait_on_bit_lock)"
                    .into(),
            );
            i.io = Some(LockIo {
                wait: "buffer lock (BH_Lock) in __wait_on_bit_lock".into(),
                device: Some(dev.unwrap_or_else(|| "no block device".into())),
                file: None,
            });
            i
        }
        _ => {
            let mut i = LockInfo::new(word, "bit_wait");
            i.protects = Some(format!("bit {bit} of the word at {:#x}", word.0));
            i.owner_note = Some(
                "no owner recorded: a bit wait records only the word and bit waited on".into(),
            );
            i
        }
    };
    info.waiters = list;
    Some(info)
}

/// `block_device.bd_disk->disk_name` with the partition number.
fn bdev_name(r: &Reader<'_>, bdev: VirtAddr) -> Option<String> {
    let b = r.object("block_device", bdev);
    let disk = b.deref("bd_disk", "gendisk").ok()?;
    let name = disk.char_array("disk_name").ok()?;
    let part = b.uint("bd_partno").unwrap_or(0);
    Some(if part == 0 {
        name
    } else {
        format!("{name}{part}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_symbols::SymbolTable;
    use hangscope_x64::SparseMemory;

    /// `struct rb_node` in a layout of its own (not the kernel's).
    fn types() -> SymbolTable {
        let isf = r#"{"metadata":{"format":"6.2.0"},
"base_types":{"pointer":{"size":8,"signed":false,"kind":"int","endian":"little"},
 "unsigned long":{"size":8,"signed":false,"kind":"int","endian":"little"}},
"user_types":{
 "rb_node":{"kind":"struct","size":24,"fields":{
  "rb_left":{"offset":0,"type":{"kind":"pointer","subtype":{"kind":"struct","name":"rb_node"}}},
  "__rb_parent_color":{"offset":8,"type":{"kind":"base","name":"unsigned long"}},
  "rb_right":{"offset":16,"type":{"kind":"pointer","subtype":{"kind":"struct","name":"rb_node"}}}}}},
"enums":{},"symbols":{}}"#;
        SymbolTable::from_isf_bytes(isf.as_bytes(), std::path::Path::new("rb.json")).unwrap()
    }

    const N: u64 = 0xffff_8880_0100_0000;

    fn node(m: &mut SparseMemory, at: u64, left: u64, right: u64) {
        m.write_u64(at, left);
        m.write_u64(at + 16, right);
    }

    #[test]
    fn an_rbtree_is_read_in_order_and_a_looping_one_stays_bounded() {
        let t = types();
        let (a, b, c) = (N, N + 0x100, N + 0x200);
        let mut m = SparseMemory::new();
        node(&mut m, b, a, c);
        node(&mut m, a, 0, 0);
        node(&mut m, c, 0, 0);
        let r = Reader { mem: &m, types: &t };
        assert_eq!(
            rb_inorder(&r, VirtAddr(b), 16),
            vec![VirtAddr(a), VirtAddr(b), VirtAddr(c)]
        );
        assert_eq!(rb_inorder(&r, VirtAddr(b), 2).len(), 2);
        // A child pointing back at the root, and a node its own child.
        let mut m = SparseMemory::new();
        node(&mut m, b, a, c);
        node(&mut m, a, b, 0);
        node(&mut m, c, c, c);
        let r = Reader { mem: &m, types: &t };
        assert!(rb_inorder(&r, VirtAddr(b), MAX_RT_WAITERS).len() <= 3);
        // Unmapped children end the walk without a panic.
        let mut m = SparseMemory::new();
        node(&mut m, b, 0xffff_8880_7000_0000, 0);
        let r = Reader { mem: &m, types: &t };
        assert!(rb_inorder(&r, VirtAddr(b), 16).is_empty());
    }
}
