//! What each sleeping task waits on, found from the data alone (no debug
//! info, so no frame variables): a sleeping lock's waiter record
//! (`struct mutex_waiter`, `struct rwsem_waiter`, `struct
//! semaphore_waiter`) lives on the waiting task's kernel stack, points
//! back at the task (`.task`) and is linked into the lock's `wait_list`.
//!
//! Each D or S task's stack (`task->stack`, THREAD_SIZE bytes) is scanned
//! for a word equal to the task's address; the record around it must have
//! list links consistent both ways, and walking that ring (bounded,
//! back-link-checked) must meet exactly one node that is no waiter record
//! on a task's stack: the lock's `wait_list`, from which container_of
//! gives the lock. All three record types share one shape (`list`,
//! `task`), so which lock it is comes from the lock's own words (an owner
//! that is a task, the waiters flag) and the slow path's return address
//! on the stack. A candidate that fails a check is dropped.
//!
//! A fault in userfaultfd is a wait with a known owner: the faulting task
//! sleeps in `handle_userfault` on the context's `fault_pending_wqh` (a
//! `struct userfaultfd_wait_queue` on its stack) until whoever reads the
//! userfaultfd resolves it: the tasks holding that file open, other than
//! the faulting one.

use crate::error::{Error, Result};
use crate::model::{LockInfo, LockTask, Partial, TaskInfo, TaskState};
use crate::view::{Env, Reader};
use crate::warning;
use hangscope_x64::VirtAddr;
use std::collections::{BTreeMap, HashMap, HashSet};

/// `MUTEX_FLAGS` (kernel/locking/mutex.c, 4.10+): the low 3 bits of
/// `mutex.owner` are WAITERS, HANDOFF and PICKUP, not the owner's address.
pub const MUTEX_FLAGS: u64 = 0x07;
/// `MUTEX_FLAG_WAITERS`: set while `wait_list` is not empty.
pub const MUTEX_FLAG_WAITERS: u64 = 0x01;
/// `RWSEM_READER_OWNED` (kernel/locking/rwsem.c, 5.3+): `owner` names the
/// last reader, and the lock is held by `count >> RWSEM_READER_SHIFT`
/// readers.
pub const RWSEM_READER_OWNED: u64 = 0x1;
/// `RWSEM_OWNER_FLAGS_MASK` (5.3+: READER_OWNED | NONSPINNABLE).
pub const RWSEM_OWNER_FLAGS_MASK: u64 = 0x3;
/// `RWSEM_WRITER_LOCKED` in `rw_semaphore.count` (5.3+).
pub const RWSEM_WRITER_LOCKED: u64 = 0x1;
/// `RWSEM_FLAG_WAITERS` in `rw_semaphore.count` (5.3+).
pub const RWSEM_FLAG_WAITERS: u64 = 0x2;
/// `RWSEM_READER_SHIFT` (5.3+).
pub const RWSEM_READER_SHIFT: u32 = 8;
/// `TASK_WAKEKILL`: a killable sleep (`TASK_KILLABLE` with
/// `TASK_UNINTERRUPTIBLE`), which the hung-task detector does not watch.
pub const TASK_WAKEKILL: u64 = 0x100;

/// Most waiters on one lock's list.
pub const MAX_WAITERS: usize = 1 << 16;
/// Most file descriptors read per file table.
pub const MAX_FDS: u64 = 1 << 16;
/// Most path components.
const MAX_PATH_DEPTH: usize = 256;
/// THREAD_SIZE when the kernel does not say (x86-64 without KASAN).
const DEFAULT_THREAD_SIZE: u64 = 16 << 10;

/// A lock type whose waiters link a record on their stack into
/// `wait_list`.
struct LockKind {
    kind: &'static str,
    lock_ty: &'static str,
    waiter_ty: &'static str,
    /// Return addresses into these functions on a stack say which kind
    /// the task sleeps in.
    slowpaths: &'static [&'static str],
}

const KINDS: [LockKind; 3] = [
    LockKind {
        kind: "mutex",
        lock_ty: "mutex",
        waiter_ty: "mutex_waiter",
        slowpaths: &["__mutex_lock", "mutex_lock"],
    },
    LockKind {
        kind: "rw_semaphore",
        lock_ty: "rw_semaphore",
        waiter_ty: "rwsem_waiter",
        slowpaths: &["rwsem_down_", "__down_read", "__down_write"],
    },
    LockKind {
        kind: "semaphore",
        lock_ty: "semaphore",
        waiter_ty: "semaphore_waiter",
        slowpaths: &["__down", "down"],
    },
];

/// A task as the scan needs it.
pub(crate) struct TaskRef<'t> {
    pub(crate) info: &'t TaskInfo,
    pub(crate) stack: Option<VirtAddr>,
}

/// An open file: who holds it.
#[derive(Debug, Clone, Default)]
pub struct OpenFile {
    /// Thread-group ids holding it.
    pub tgids: Vec<i32>,
    /// The tasks sharing those file tables.
    pub tasks: Vec<VirtAddr>,
}

/// Everything the walk met, for the adapter and the listings.
#[derive(Debug, Clone, Default)]
pub struct Waits {
    /// Locks found, in the order first met.
    pub locks: Partial<LockInfo>,
    /// For each task that waits on a lock: the lock's address.
    pub waiting_on: HashMap<u64, u64>,
    /// Tasks in D with no wait found and why that is no hang, or a
    /// warning that nothing was found.
    pub notes: Vec<String>,
    /// The contended directories among the locks ([`crate::dirs`]).
    pub dirs: Vec<crate::dirs::ContendedDir>,
    /// Tasks in a plain uninterruptible sleep whose wait nothing explains
    /// (no lock, no queue, no vfork): [`crate::LinuxKernel::waits`] turns
    /// those whose stack says they sleep for a lock into warnings.
    pub unexplained: Vec<Unexplained>,
    /// Why the waits are known to be incomplete, when they are: a task
    /// sleeps for a lock that damage hides.
    pub incomplete: Option<String>,
}

/// A task in D whose wait was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexplained {
    /// The `task_struct`.
    pub task: VirtAddr,
    /// Its kernel stack's base.
    pub stack: VirtAddr,
    /// Why the best candidate waiter record on its stack was refused
    /// (naming the record, list or lock), when there was one.
    pub refusal: Option<String>,
}

/// The lock kind whose slow path `function` is, for a frame's function.
pub(crate) fn lock_slowpath(function: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|k| k.slowpaths.iter().any(|p| function.starts_with(p)))
        .map(|k| k.kind)
}

/// THREAD_SIZE: the size of `union thread_union` in the types, else the
/// distance from `init_stack` to the next symbol, else 16 KiB.
pub fn thread_size(env: &Env<'_>) -> u64 {
    let ok = |s: u64| (4096..=(1 << 20)).contains(&s) && s.is_power_of_two();
    if let Ok(s) = env.r.size_of_struct("thread_union") {
        if ok(s) {
            return s;
        }
    }
    if let Some(start) = env.kallsyms.get("init_stack") {
        let next = env.kallsyms.next_after(start).map(|s| s.addr);
        if let Some(n) = next {
            if ok(n - start) {
                return n - start;
            }
        }
    }
    DEFAULT_THREAD_SIZE
}

/// Find every lock the tasks in D or S wait on, with owners, waiters and
/// what each protects. `jiffies` and `hz` give the hung-task detector's
/// times; `static_name` names a static address (kernel or module symbol).
pub fn find_waits(
    env: &Env<'_>,
    tasks: &[TaskInfo],
    jiffies: Option<u64>,
    hz: Option<u64>,
    static_name: &dyn Fn(u64) -> Option<String>,
) -> Waits {
    let r = env.r;
    let mut out = Waits::default();
    let size = thread_size(env);
    let refs: Vec<TaskRef<'_>> = tasks
        .iter()
        .map(|t| TaskRef {
            info: t,
            stack: r
                .object("task_struct", t.task)
                .ptr("stack")
                .ok()
                .filter(|s| s.0 != 0),
        })
        .collect();
    let by_addr: HashMap<u64, &TaskRef<'_>> = refs.iter().map(|t| (t.info.task.0, t)).collect();
    let files = open_files(&r, tasks, &mut out.locks.warnings);
    let text = (
        env.kallsyms.get("_stext").unwrap_or(0),
        env.kallsyms.get("_etext").unwrap_or(u64::MAX),
    );
    let mut heads: HashMap<u64, usize> = HashMap::new();
    for t in &refs {
        if !matches!(t.info.state, TaskState::DiskSleep | TaskState::Sleeping) {
            continue;
        }
        if out.waiting_on.contains_key(&t.info.task.0) {
            continue;
        }
        let Some(stack) = t.stack else { continue };
        let words = match r.mem.read_vec(stack, size, 1 << 20) {
            Ok(b) => b,
            Err(e) => {
                if t.info.state == TaskState::DiskSleep {
                    let w = warning(&Error::from(e));
                    // What a task in D waits on is unknown: a deadlock
                    // through it could not be seen.
                    out.incomplete.get_or_insert_with(|| {
                        format!(
                            "the stack of pid {} ({}), in D, cannot be read: {}",
                            t.info.pid, t.info.comm, w.message
                        )
                    });
                    out.locks.warnings.push(w);
                }
                continue;
            }
        };
        let words: Vec<u64> = words
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        let hints: Vec<&str> = words
            .iter()
            .filter(|&&w| w >= text.0 && w < text.1)
            .filter_map(|&w| env.kallsyms.symbol_at(w).map(|(s, _)| s.name))
            .collect();
        let mut found = false;
        let mut refusal = None;
        for (i, &w) in words.iter().enumerate() {
            if w != t.info.task.0 {
                continue;
            }
            let at = VirtAddr(stack.0 + i as u64 * 8);
            if let Some(lock) = lock_waiter_at(&r, at, &by_addr, size, &hints, &mut refusal) {
                found = true;
                if heads.contains_key(&lock.address.0) {
                    out.waiting_on.insert(t.info.task.0, lock.address.0);
                    break;
                }
                for wt in &lock.waiters {
                    out.waiting_on.insert(wt.task.0, lock.address.0);
                }
                heads.insert(lock.address.0, out.locks.items.len());
                out.locks.items.push(lock);
                break;
            }
            if hints.contains(&"handle_userfault") {
                if let Some(lock) = uffd_wait_at(&r, env, at, t, &files) {
                    found = true;
                    out.waiting_on.insert(t.info.task.0, lock.address.0);
                    match heads.get(&lock.address.0) {
                        Some(&idx) => out.locks.items[idx].waiters.extend(lock.waiters),
                        None => {
                            heads.insert(lock.address.0, out.locks.items.len());
                            out.locks.items.push(lock);
                        }
                    }
                    break;
                }
            }
        }
        // No mutex-style record: an rt_mutex, completion, wait queue,
        // page or buffer, for plain uninterruptible sleeps only (killable
        // ones are the vfork case below; S tasks wait on queues by design).
        if !found && t.info.state == TaskState::DiskSleep && t.info.raw_state & TASK_WAKEKILL == 0 {
            let scan = crate::sleeps::Scan {
                env,
                tasks: &by_addr,
                thread_size: size,
            };
            let sleep = crate::sleeps::rt_mutex_wait(&scan, t.info.task).or_else(|| {
                words.iter().enumerate().find_map(|(i, &w)| {
                    if w != t.info.task.0 {
                        return None;
                    }
                    let at = VirtAddr(stack.0 + i as u64 * 8);
                    crate::sleeps::swait_at(&scan, at, t.info.task, &hints)
                        .or_else(|| crate::sleeps::wait_entry_at(&scan, at, t.info.task, &hints))
                })
            });
            if let Some(lock) = sleep {
                found = true;
                out.waiting_on.insert(t.info.task.0, lock.address.0);
                for w in &lock.waiters {
                    out.waiting_on.insert(w.task.0, lock.address.0);
                }
                match heads.get(&lock.address.0) {
                    Some(&idx) => {
                        let have = &mut out.locks.items[idx].waiters;
                        for w in lock.waiters {
                            if !have.iter().any(|h| h.task == w.task) {
                                have.push(w);
                            }
                        }
                    }
                    None => {
                        heads.insert(lock.address.0, out.locks.items.len());
                        out.locks.items.push(lock);
                    }
                }
            }
        }
        if !found && t.info.state == TaskState::DiskSleep {
            let killable = t.info.raw_state & TASK_WAKEKILL != 0;
            // The child's `vfork_done` points at the completion on the
            // parent's stack (`wait_for_vfork_done` is often inlined, so
            // the stack alone may not name it).
            let vfork_child = refs.iter().find(|c| {
                r.object("task_struct", c.info.task)
                    .ptr("vfork_done")
                    .is_ok_and(|d| d.0 >= stack.0 && d.0 < stack.0.wrapping_add(size))
            });
            let vfork =
                vfork_child.is_some() || hints.iter().any(|h| h.starts_with("wait_for_vfork_done"));
            let who = format!("pid {} ({})", t.info.pid, t.info.comm);
            out.notes.push(if vfork && killable {
                format!(
                    "{who} is in D waiting for its vfork child{} (wait_for_vfork_done, state \
                     {:#x} = TASK_KILLABLE, a completion with no owner): not a hang, the child \
                     runs on the parent's memory until it execs or exits. The kernel's \
                     hung-task detector ignores it too: it watches only plain \
                     TASK_UNINTERRUPTIBLE sleeps, so last_switch_time is {}",
                    vfork_child.map_or(String::new(), |c| format!(
                        " pid {} ({})",
                        c.info.pid, c.info.comm
                    )),
                    t.info.raw_state,
                    t.info.last_switch_time.unwrap_or(0)
                )
            } else if killable {
                format!(
                    "{who} is in a killable D sleep (state {:#x}) on no lock found: not counted \
                     as a hang (the hung-task detector skips killable sleeps)",
                    t.info.raw_state
                )
            } else {
                out.unexplained.push(Unexplained {
                    task: t.info.task,
                    stack,
                    refusal: refusal.take().map(|(_, why)| why),
                });
                format!(
                    "{who} is in D but no waiter record on its stack leads to a lock \
                     (a completion, wait queue or I/O wait has no owner to follow)"
                )
            });
        }
    }
    for lock in &mut out.locks.items {
        for w in lock.waiters.iter_mut().chain(lock.owners.iter_mut()) {
            fill_task(w, &by_addr, jiffies, hz);
        }
        if lock.symbol.is_none() {
            lock.symbol = static_name(lock.address.0);
        }
        if lock.protects.is_none()
            && matches!(lock.kind.as_str(), "mutex" | "rw_semaphore" | "semaphore")
        {
            lock.protects = protects(&r, lock.address, &files, &mut lock.holders);
        }
    }
    out
}

fn fill_task(
    w: &mut LockTask,
    by_addr: &HashMap<u64, &TaskRef<'_>>,
    jiffies: Option<u64>,
    hz: Option<u64>,
) {
    let Some(t) = by_addr.get(&w.task.0) else {
        return;
    };
    w.pid = Some(t.info.pid);
    w.tgid = Some(t.info.tgid);
    w.comm = Some(t.info.comm.clone());
    w.since_last_arrival_ns = t.info.since_last_arrival_ns;
    w.hung_task_seen_s = match (t.info.last_switch_time, jiffies, hz) {
        (Some(l), Some(j), Some(hz)) if l != 0 && hz != 0 => {
            j.checked_sub(l).map(|d| d as f64 / hz as f64)
        }
        _ => None,
    };
}

pub(crate) fn task_ref(task: VirtAddr, mode: &str) -> LockTask {
    LockTask {
        task,
        pid: None,
        tgid: None,
        comm: None,
        mode: mode.into(),
        since_last_arrival_ns: None,
        hung_task_seen_s: None,
    }
}

/// The list node's neighbours, when both point back at it.
pub(crate) fn linked_both_ways(r: &Reader<'_>, node: VirtAddr) -> Option<(VirtAddr, VirtAddr)> {
    let next_off = r.offset("list_head", "next").ok()?;
    let prev_off = r.offset("list_head", "prev").ok()?;
    let next = r.read_ptr(VirtAddr(node.0.wrapping_add(next_off))).ok()?;
    let prev = r.read_ptr(VirtAddr(node.0.wrapping_add(prev_off))).ok()?;
    let back = r.read_ptr(VirtAddr(next.0.wrapping_add(prev_off))).ok()?;
    let fwd = r.read_ptr(VirtAddr(prev.0.wrapping_add(next_off))).ok()?;
    (back == node && fwd == node).then_some((next, prev))
}

/// The ring through `start`, from `start`, each node's back link checked;
/// `None` when it breaks, loops elsewhere or is longer than the bound.
pub(crate) fn ring(r: &Reader<'_>, start: VirtAddr) -> Option<Vec<VirtAddr>> {
    let next_off = r.offset("list_head", "next").ok()?;
    let prev_off = r.offset("list_head", "prev").ok()?;
    let mut nodes = vec![start];
    let mut seen = HashSet::from([start.0]);
    let mut cur = start;
    loop {
        let next = r.read_ptr(VirtAddr(cur.0.wrapping_add(next_off))).ok()?;
        let back = r.read_ptr(VirtAddr(next.0.wrapping_add(prev_off))).ok()?;
        if back != cur {
            return None;
        }
        if next == start {
            return Some(nodes);
        }
        if !seen.insert(next.0) || nodes.len() > MAX_WAITERS {
            return None;
        }
        nodes.push(next);
        cur = next;
    }
}

/// The lock whose waiter record has its `task` field at `at`, when every
/// check holds. When a record of a kind whose slow path is on the stack
/// fails a check, `refusal` says which, naming the address.
fn lock_waiter_at(
    r: &Reader<'_>,
    at: VirtAddr,
    tasks: &HashMap<u64, &TaskRef<'_>>,
    size: u64,
    hints: &[&str],
    refusal: &mut Option<(u8, String)>,
) -> Option<LockInfo> {
    // Kinds whose slow path is on this stack first.
    let mut order: Vec<&LockKind> = KINDS.iter().collect();
    order.sort_by_key(|k| {
        !hints
            .iter()
            .any(|h| k.slowpaths.iter().any(|p| h.starts_with(p)))
    });
    for k in order {
        // A semaphore's words (a spinlock and a zero count) look like
        // many others' (a wait queue head's lock and padding): only where
        // the semaphore slow path is on the stack.
        let on_stack = hints
            .iter()
            .any(|h| k.slowpaths.iter().any(|p| h.starts_with(p)));
        if k.kind == "semaphore" && !on_stack {
            continue;
        }
        let (Ok(task_off), Ok(list_off), Ok(wl_off)) = (
            r.offset(k.waiter_ty, "task"),
            r.offset(k.waiter_ty, "list"),
            r.offset(k.lock_ty, "wait_list"),
        ) else {
            continue;
        };
        let rec = VirtAddr(at.0.wrapping_sub(task_off));
        let node = VirtAddr(rec.0.wrapping_add(list_off));
        // Of the refused candidates, the one that got furthest is the
        // likeliest real record (most words equal to the task on a stack
        // are no record at all); the first of equals is kept.
        // Only a kind whose slow path is on the stack explains a refusal;
        // the text is made only then (most candidates are not records).
        let mut refuse = |progress: u8, why: &dyn Fn() -> String| {
            if on_stack && refusal.as_ref().is_none_or(|(p, _)| progress > *p) {
                *refusal = Some((
                    progress,
                    format!("the {} record at {rec}: {}", k.waiter_ty, why()),
                ));
            }
        };
        if linked_both_ways(r, node).is_none() {
            if !on_stack {
                return None;
            }
            let (Ok(next_off), Ok(prev_off)) =
                (r.offset("list_head", "next"), r.offset("list_head", "prev"))
            else {
                continue;
            };
            let read = |a: VirtAddr, off: u64| r.read_ptr(VirtAddr(a.0.wrapping_add(off))).ok();
            let next = read(node, next_off);
            let prev = read(node, prev_off);
            let back = next.and_then(|n| read(n, prev_off)) == Some(node);
            let fwd = prev.and_then(|p| read(p, next_off)) == Some(node);
            // A neighbour that is the wait list of a lock held with
            // waiters names the lock this record was queued on.
            let lock = [next, prev].into_iter().flatten().find_map(|n| {
                let lock = VirtAddr(n.0.wrapping_sub(wl_off));
                read_lock(r, k, lock, &[], tasks).map(|_| lock)
            });
            let readable = |a: Option<VirtAddr>| a.and_then(|a| read(a, next_off));
            let progress = match (readable(next), readable(prev)) {
                _ if lock.is_some() => 3,
                _ if back || fwd => 2,
                (Some(_), Some(_)) => 1,
                _ => 0,
            };
            let show = |a: Option<VirtAddr>| a.map_or("unreadable".to_string(), |a| a.to_string());
            refuse(progress, &|| {
                format!(
                    "its list node at {node} is not linked both ways (next {}, prev {}): the \
                     wait list{} is broken",
                    show(next),
                    show(prev),
                    lock.map_or(String::new(), |l| format!(" of the {} at {l}", k.lock_ty))
                )
            });
            return None;
        }
        let Some(nodes) = ring(r, node) else {
            refuse(4, &|| {
                format!("the wait list through {node} breaks, loops or passes {MAX_WAITERS} nodes")
            });
            return None;
        };
        // The one node that is no waiter record on its task's stack.
        let mut head = None;
        let mut two_heads = false;
        let mut waiters = Vec::new();
        for n in &nodes {
            let owner = r
                .read_ptr(VirtAddr(n.0.wrapping_sub(list_off).wrapping_add(task_off)))
                .ok();
            let on_stack = owner.and_then(|o| tasks.get(&o.0)).and_then(|w| {
                let s = w.stack?;
                (n.0 >= s.0 && n.0 < s.0.wrapping_add(size)).then_some(w.info.task)
            });
            match on_stack {
                Some(w) => waiters.push((w, VirtAddr(n.0.wrapping_sub(list_off)))),
                None if head.is_none() => head = Some(*n),
                None => {
                    refuse(5, &|| {
                        format!(
                            "the wait list through {node} has two nodes that are no waiter's \
                             record ({} and {n}), so no one lock heads it",
                            head.unwrap_or_default()
                        )
                    });
                    two_heads = true;
                    break;
                }
            }
        }
        if two_heads {
            return None;
        }
        let Some(head) = head else {
            refuse(5, &|| {
                format!(
                    "every node of the wait list through {node} is a waiter's record: no lock \
                     heads it"
                )
            });
            return None;
        };
        let lock = VirtAddr(head.0.wrapping_sub(wl_off));
        // Waiters in wait_list order: from the head on.
        let pos = nodes.iter().position(|&n| n == head)?;
        let mut ordered: Vec<(VirtAddr, VirtAddr)> = Vec::new();
        for n in nodes[pos + 1..].iter().chain(&nodes[..pos]) {
            if let Some(w) = waiters
                .iter()
                .find(|w| w.1 .0.wrapping_add(list_off) == n.0)
            {
                ordered.push(*w);
            }
        }
        if let Some(info) = read_lock(r, k, lock, &ordered, tasks) {
            return Some(info);
        }
        refuse(6, &|| {
            let words = ["owner", "count"]
                .iter()
                .filter_map(|f| {
                    let v = r.object(k.lock_ty, lock).uint(f).ok()?;
                    Some(format!("{f} {v:#x}"))
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "the {} at {lock} heading its wait list does not read as held with waiters \
                 ({words}): its owner is not a task on the task list, or a flag is wrong",
                k.lock_ty
            )
        });
    }
    None
}

/// The lock's owner and state, when its words are those of a `k` with
/// waiters; `None` when they are not.
fn read_lock(
    r: &Reader<'_>,
    k: &LockKind,
    lock: VirtAddr,
    waiters: &[(VirtAddr, VirtAddr)],
    tasks: &HashMap<u64, &TaskRef<'_>>,
) -> Option<LockInfo> {
    let o = r.object(k.lock_ty, lock);
    let mut info = LockInfo::new(lock, k.kind);
    match k.kind {
        "mutex" => {
            let raw = o.uint("owner").ok()?;
            let owner = raw & !MUTEX_FLAGS;
            if raw & MUTEX_FLAG_WAITERS == 0 || !tasks.contains_key(&owner) {
                return None;
            }
            info.owner_raw = Some(raw);
            info.owners.push(task_ref(VirtAddr(owner), "exclusive"));
            for &(w, _) in waiters {
                info.waiters.push(task_ref(w, "exclusive"));
            }
        }
        "rw_semaphore" => {
            let raw = o.uint("owner").ok()?;
            let count = o.uint("count").ok()?;
            if count & RWSEM_FLAG_WAITERS == 0 {
                return None;
            }
            info.owner_raw = Some(raw);
            info.count_raw = Some(count);
            if count & RWSEM_WRITER_LOCKED != 0 {
                let owner = raw & !RWSEM_OWNER_FLAGS_MASK;
                if raw & RWSEM_READER_OWNED != 0 || !tasks.contains_key(&owner) {
                    return None;
                }
                info.owners.push(task_ref(VirtAddr(owner), "write"));
            } else {
                let readers = count >> RWSEM_READER_SHIFT;
                info.readers = Some(readers);
                info.owner_note = Some(format!(
                    "reader-owned ({readers} reader(s)); the kernel does not record readers, \
                     owner word {raw:#x} names the last one to take it"
                ));
                if raw & RWSEM_READER_OWNED != 0 && tasks.contains_key(&(raw & !0xff)) {
                    info.owners.push(task_ref(VirtAddr(raw & !0xff), "read"));
                }
            }
            let type_off = r.offset("rwsem_waiter", "type").ok();
            for &(w, rec) in waiters {
                // enum rwsem_waiter_type: RWSEM_WAITING_FOR_WRITE = 0, _READ = 1.
                let ty = type_off.and_then(|off| r.read_uint(VirtAddr(rec.0 + off), 4).ok());
                info.waiters
                    .push(task_ref(w, if ty == Some(1) { "read" } else { "write" }));
            }
        }
        _ => {
            let count = o.uint("count").ok()?;
            if count != 0 {
                return None;
            }
            info.count_raw = Some(count);
            info.owner_note = Some("a semaphore has no owner".into());
            for &(w, _) in waiters {
                info.waiters.push(task_ref(w, "exclusive"));
            }
        }
    }
    Some(info)
}

/// The userfaultfd context the task at `at` waits on in
/// `handle_userfault`, with the readers of the userfaultfd as owners.
fn uffd_wait_at(
    r: &Reader<'_>,
    env: &Env<'_>,
    at: VirtAddr,
    t: &TaskRef<'_>,
    files: &BTreeMap<u64, OpenFile>,
) -> Option<LockInfo> {
    let priv_off = r.offset("userfaultfd_wait_queue", "wq.private").ok()?;
    let entry_off = r.offset("userfaultfd_wait_queue", "wq.entry").ok()?;
    let uwq = VirtAddr(at.0.wrapping_sub(priv_off));
    let entry = VirtAddr(uwq.0.wrapping_add(entry_off));
    linked_both_ways(r, entry)?;
    let ctx = r.object("userfaultfd_wait_queue", uwq).ptr("ctx").ok()?;
    // Pending until the handler reads the fault message, then on
    // `fault_wqh` until it resolves it (userfaultfd_ctx_read moves it).
    let c = r.object("userfaultfd_ctx", ctx);
    let nodes = ring(r, entry)?;
    let queue = ["fault_pending_wqh", "fault_wqh"].into_iter().find(|q| {
        c.field_addr(&format!("{q}.head"))
            .is_ok_and(|h| nodes.contains(&h))
    })?;
    let fops = env.kallsyms.get("userfaultfd_fops");
    let mut info = LockInfo::new(ctx, "userfaultfd");
    info.protects = Some(if queue == "fault_wqh" {
        "a userfaultfd fault, read by the handler and not yet resolved (fault_wqh)".into()
    } else {
        "a userfaultfd fault not yet read by the handler (fault_pending_wqh)".into()
    });
    info.waiters = vec![task_ref(t.info.task, "exclusive")];
    for (&file, f) in files {
        let fo = r.object("file", VirtAddr(file));
        if fo.ptr("private_data").ok() != Some(ctx) {
            continue;
        }
        if let (Some(want), Ok(op)) = (fops, fo.ptr("f_op")) {
            if op.0 != want {
                continue;
            }
        }
        info.holders.extend(&f.tgids);
        for &holder in &f.tasks {
            if holder != t.info.task && !info.owners.iter().any(|o| o.task == holder) {
                info.owners.push(task_ref(holder, "exclusive"));
            }
        }
    }
    info.owner_note = Some(if info.owners.is_empty() {
        "no task other than the faulting one holds the userfaultfd open: nobody can resolve \
         the fault"
            .into()
    } else {
        "inferred: a fault is resolved by whoever reads the userfaultfd, so the owners are the \
         tasks holding it open other than the faulting one"
            .into()
    });
    Some(info)
}

/// Every open file in every task's file table (`files->fdt->fd[]`,
/// bounded by `max_fds`), with the tasks sharing each table.
pub fn open_files(
    r: &Reader<'_>,
    tasks: &[TaskInfo],
    warnings: &mut Vec<crate::model::Warning>,
) -> BTreeMap<u64, OpenFile> {
    let mut by_table: BTreeMap<u64, Vec<&TaskInfo>> = BTreeMap::new();
    for t in tasks {
        if let Ok(f) = r.object("task_struct", t.task).ptr("files") {
            if f.0 != 0 {
                by_table.entry(f.0).or_default().push(t);
            }
        }
    }
    let mut out: BTreeMap<u64, OpenFile> = BTreeMap::new();
    for (&table, holders) in &by_table {
        let fds = (|| -> Result<Vec<u64>> {
            let fdt = r
                .object("files_struct", VirtAddr(table))
                .deref("fdt", "fdtable")?;
            let max = fdt.uint("max_fds")?.min(MAX_FDS);
            let arr = fdt.ptr("fd")?;
            let bytes = r.mem.read_vec(arr, max * 8, MAX_FDS * 8)?;
            Ok(bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .filter(|&p| p != 0)
                .collect())
        })();
        match fds {
            Ok(files) => {
                for f in files {
                    let e = out.entry(f).or_default();
                    for t in holders {
                        if !e.tgids.contains(&t.tgid) {
                            e.tgids.push(t.tgid);
                        }
                        e.tasks.push(t.task);
                    }
                }
            }
            Err(e) => warnings.push(warning(&e)),
        }
    }
    out
}

/// What the lock at `lock` protects, when it sits inside an inode
/// (`i_rwsem`) or a file (`f_pos_lock`) that checks out.
fn protects(
    r: &Reader<'_>,
    lock: VirtAddr,
    files: &BTreeMap<u64, OpenFile>,
    holders: &mut Vec<i32>,
) -> Option<String> {
    if let Ok(off) = r.offset("file", "f_pos_lock") {
        let file = VirtAddr(lock.0.wrapping_sub(off));
        let fo = r.object("file", file);
        if let Ok(inode) = fo.ptr("f_inode") {
            if fs_name(r, inode).is_some() {
                if let Some(f) = files.get(&file.0) {
                    holders.extend(&f.tgids);
                }
                let path = file_path(r, file).unwrap_or_else(|| "(path unknown)".into());
                return Some(format!("file.f_pos_lock of {path}"));
            }
        }
    }
    if let Ok(off) = r.offset("inode", "i_rwsem") {
        let inode = VirtAddr(lock.0.wrapping_sub(off));
        if let Some(fs) = fs_name(r, inode) {
            let ino = r.object("inode", inode).uint("i_ino").ok()?;
            let path = files
                .keys()
                .find(|&&f| r.object("file", VirtAddr(f)).ptr("f_inode").ok() == Some(inode))
                .and_then(|&f| file_path(r, VirtAddr(f)))
                .unwrap_or_else(|| format!("(a {fs} inode)"));
            return Some(format!("inode.i_rwsem (ino {ino}) of {path}"));
        }
    }
    None
}

/// The file system's name when `inode.i_sb->s_type->name` reads as one.
pub(crate) fn fs_name(r: &Reader<'_>, inode: VirtAddr) -> Option<String> {
    if inode.0 >> 56 != 0xff {
        return None;
    }
    let sb = r.object("inode", inode).deref("i_sb", "super_block").ok()?;
    let ty = sb.deref("s_type", "file_system_type").ok()?;
    let name = r.mem.read_cstr(ty.ptr("name").ok()?, 64).ok()?;
    let plausible = !name.is_empty()
        && name
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    plausible.then(|| String::from_utf8_lossy(&name).into_owned())
}

/// A file's path from its dentry up through its mounts (bounded).
pub fn file_path(r: &Reader<'_>, file: VirtAddr) -> Option<String> {
    let fo = r.object("file", file);
    let dentry = fo.ptr("f_path.dentry").ok()?;
    let vfsmnt = fo.ptr("f_path.mnt").ok()?;
    path_of(r, dentry, vfsmnt)
}

/// The path of `dentry` seen through the mount `vfsmnt`, up through the
/// mounts (bounded).
pub(crate) fn path_of(r: &Reader<'_>, dentry: VirtAddr, vfsmnt: VirtAddr) -> Option<String> {
    let (mut dentry, mut vfsmnt) = (dentry, vfsmnt);
    let mnt_off = r.offset("mount", "mnt").ok()?;
    let mut parts: Vec<String> = Vec::new();
    for _ in 0..MAX_PATH_DEPTH {
        let root = r.object("vfsmount", vfsmnt).ptr("mnt_root").ok()?;
        if dentry == root {
            let mount = r.object("mount", VirtAddr(vfsmnt.0.wrapping_sub(mnt_off)));
            let parent = mount.ptr("mnt_parent").ok()?;
            if parent == mount.addr {
                break;
            }
            dentry = mount.ptr("mnt_mountpoint").ok()?;
            vfsmnt = VirtAddr(parent.0.wrapping_add(mnt_off));
            continue;
        }
        let d = r.object("dentry", dentry);
        let name = r.mem.read_cstr(d.ptr("d_name.name").ok()?, 256).ok()?;
        parts.push(String::from_utf8_lossy(&name).into_owned());
        let up = d.ptr("d_parent").ok()?;
        if up == dentry {
            break;
        }
        dentry = up;
    }
    parts.reverse();
    Some(format!("/{}", parts.join("/")))
}

/// The kernel's own hung-task reports in the log:
/// `INFO: task NAME:PID blocked for more than N seconds.`, as (comm, pid,
/// seconds, line).
pub fn hung_task_reports(records: &[crate::model::DmesgRecord]) -> Vec<(String, i32, u64, String)> {
    let mut out = Vec::new();
    for rec in records {
        for line in rec.text.lines() {
            let Some(rest) = line.trim().strip_prefix("INFO: task ") else {
                continue;
            };
            let Some((who, tail)) = rest.split_once(" blocked for more than ") else {
                continue;
            };
            let Some((comm, pid)) = who.rsplit_once(':') else {
                continue;
            };
            let secs = tail.split_whitespace().next().and_then(|s| s.parse().ok());
            if let (Ok(pid), Some(secs)) = (pid.parse(), secs) {
                out.push((comm.to_string(), pid, secs, line.trim().to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{self, Process, MUTEX_WAITER_LIST, MUTEX_WAITER_TASK, MUTEX_WAIT_LIST};
    use crate::tasks::{tasks, Cache};

    const MUTEX: u64 = 0xffff_ffff_c052_1000;

    /// An owner (S) and two waiters (D) on one mutex, each waiter's record
    /// on its own stack; `damage` changes the memory before reading.
    fn run(damage: impl Fn(&mut hangscope_x64::SparseMemory, &[u64], &[u64])) -> Waits {
        let mut k = synth::build(&[Process {
            threads: vec![
                (10, "owner", 1, 0),
                (11, "waiter_a", 2, 0),
                (12, "waiter_b", 2, 1),
            ],
            kthread: true,
        }]);
        let ts: Vec<u64> = k.tasks[1..4].to_vec();
        let stacks: Vec<u64> = ts
            .iter()
            .enumerate()
            .map(|(i, &t)| synth::set_stack(&mut k.mem, t, i as u64))
            .collect();
        // Records deep in the waiters' stacks, as __mutex_lock's frame.
        let recs = [stacks[1] + 0x3e00, stacks[2] + 0x3d00];
        for (i, &rec) in recs.iter().enumerate() {
            k.mem.write_u64(rec + MUTEX_WAITER_TASK, ts[i + 1]);
        }
        k.mem.write_u64(MUTEX, ts[0] | MUTEX_FLAG_WAITERS);
        synth::ring(
            &mut k.mem,
            MUTEX + MUTEX_WAIT_LIST,
            &[recs[0] + MUTEX_WAITER_LIST, recs[1] + MUTEX_WAITER_LIST],
        );
        damage(&mut k.mem, &ts, &recs);
        let env = Env {
            r: Reader {
                mem: &k.mem,
                types: &k.types,
            },
            kallsyms: &k.kallsyms,
            kernel_offset: 0,
        };
        let listing = tasks(&env, &Cache::default()).unwrap();
        find_waits(&env, &listing.items, None, None, &|a| {
            (a == MUTEX).then(|| "hangdemo_lock_a".to_string())
        })
    }

    #[test]
    fn a_mutex_is_found_from_its_waiters_records() {
        let w = run(|_, _, _| {});
        assert_eq!(w.locks.items.len(), 1, "{:#?}", w.locks);
        let l = &w.locks.items[0];
        assert_eq!((l.kind.as_str(), l.address.0), ("mutex", MUTEX));
        assert_eq!(l.symbol.as_deref(), Some("hangdemo_lock_a"));
        assert_eq!(l.owners[0].pid, Some(10));
        let pids: Vec<_> = l.waiters.iter().map(|x| x.pid).collect();
        assert_eq!(pids, [Some(11), Some(12)]);
        assert!(w.notes.is_empty(), "{:?}", w.notes);
    }

    #[test]
    fn forged_or_broken_links_invent_no_lock() {
        // A broken back link in the second record.
        let w = run(|m, _, recs| m.write_u64(recs[1] + MUTEX_WAITER_LIST, 0xffff_8880_dead_0000));
        assert!(w.locks.items.is_empty(), "{:#?}", w.locks);
        // Every D task without a lock is named.
        assert_eq!(w.notes.len(), 2, "{:?}", w.notes);
        // A record naming the task but linked to nothing (self-linked).
        let w = run(|m, _, recs| {
            let n = recs[0] + MUTEX_WAITER_LIST;
            m.write_u64(n, n);
            m.write_u64(n + 8, n);
        });
        assert!(
            w.locks.items.iter().all(|l| l.waiters.len() <= 1),
            "{:#?}",
            w.locks
        );
        assert!(w.locks.items.iter().all(|l| l.address.0 == MUTEX));
        // The waiter's record names another task: it is not this task's.
        let w = run(|m, ts, recs| {
            m.write_u64(recs[0] + MUTEX_WAITER_TASK, ts[2]);
            m.write_u64(recs[1] + MUTEX_WAITER_TASK, ts[1]);
        });
        assert!(w.locks.items.is_empty(), "{:#?}", w.locks);
        // An owner word that is no task: not a mutex.
        let w = run(|m, _, _| m.write_u64(MUTEX, 0xffff_8880_1234_5001));
        assert!(w.locks.items.is_empty(), "{:#?}", w.locks);
        // A waiter in __mutex_lock whose record's list is broken says
        // which mutex it was queued on: the head self-linked.
        // (waiter_a's stack is the second `run` gives out.)
        let stack_a = VirtAddr(synth::STACKS + 0x4000);
        let w = run(|m, _, _| {
            m.write_u64(stack_a.0 + 0x3f00, synth::MUTEX_LOCK_TEXT + 0x40);
            let head = MUTEX + MUTEX_WAIT_LIST;
            m.write_u64(head, head);
            m.write_u64(head + 8, head);
        });
        let waiter_a = w.unexplained.iter().find(|u| u.stack == stack_a);
        let why = waiter_a.and_then(|u| u.refusal.clone()).unwrap_or_default();
        assert!(
            why.contains(&format!("the mutex at {}", VirtAddr(MUTEX))),
            "{:#?}",
            w.unexplained
        );
        // A ring that loops without coming back: bounded, nothing found.
        let w = run(|m, _, recs| {
            let (a, b) = (recs[0] + MUTEX_WAITER_LIST, recs[1] + MUTEX_WAITER_LIST);
            m.write_u64(b + 8, a);
            m.write_u64(a, b);
        });
        assert!(w.locks.items.is_empty(), "{:#?}", w.locks);
    }
}
