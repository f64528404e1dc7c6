//! Push locks (`EX_PUSH_LOCK`), which `!locks` never shows: who waits on
//! one, where the lock lives, and who probably holds it.
//!
//! Fields read: `_EX_PUSH_LOCK.{Value, Locked, Waiting, Waking,
//! MultipleShared}` (every build); `_EX_PUSH_LOCK_WAIT_BLOCK.{WakeEvent,
//! Next, Flags}` (7 SP1 only: the later tables lack the type);
//! `_KTHREAD.{KernelStack, StackLimit, InitialStack}`; `_POOL_HEADER.
//! {BlockSize, PoolTag}`; the `_EPROCESS`/`_ETHREAD` field list.
//!
//! A waiter waits `WrPushLock` on the `WakeEvent` of a wait block on its
//! own kernel stack; the lock word holds the newest wait block's address
//! with `Waiting` set, and each block's `Next` leads to the older ones.
//! The walk starts from the waiters: where the table has the wait-block
//! type, each waiter's block is its event's `WakeEvent` offset back, the
//! chains are followed by `Next`, and the lock is the word that points at
//! a chain's newest block (a scan of kernel memory). Without the type
//! (Windows 8 and later) only the newest waiter is linked from the word
//! (the word points into its stack, at or below its event); the other
//! waiters are those in `WrPushLock` whose kernel stacks hold the lock's
//! address (the argument their acquire keeps): an inference, marked.
//! A push lock records no owner: the candidates are the other threads
//! whose kernel stacks hold the lock's address (code that holds a push
//! lock keeps its address to release it); always an inference.

use crate::error::Warning;
use crate::kernel::Kernel;
use crate::model::{Partial, ThreadState, WaitReason};
pub use crate::model::{PushLockInfo, PushLockWaiter};
use hangscope_symbols::TypeRef;
use hangscope_x64::VirtAddr;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

/// `EX_PUSH_LOCK_FLAGS_EXCLUSIVE` in a 7 SP1 wait block's `Flags`.
const FLAGS_EXCLUSIVE: u64 = 1;
/// Most wait blocks followed on one chain.
const MAX_CHAIN: usize = 4096;
/// Most bytes of one kernel stack searched for a lock's address.
const MAX_STACK: u64 = 0x2_0000;
/// Most pool headers walked in a page.
const MAX_POOL_BLOCKS: usize = 256;

/// The push-lock walk, once per kernel.
#[derive(Debug, Default)]
struct Cache {
    targets: OnceLock<LockWordTargets>,
    locks: OnceLock<Partial<PushLockInfo>>,
}

/// What the lock-word scan looks for, read from the waiters.
#[derive(Debug, Default)]
pub(crate) struct LockWordTargets {
    /// The `WrPushLock` waiters.
    pending: Vec<Pending>,
    /// The lock word's flag bits, `Waiting` and `Locked`
    /// ([`Kernel::push_lock_bits`]).
    bits: Option<(u64, u64, u64)>,
    /// `_EX_PUSH_LOCK_WAIT_BLOCK.WakeEvent`'s offset, where the table has
    /// the type (7 SP1).
    by_name: Option<u64>,
    /// Each chain's newest block and its waiters (index, block), newest
    /// first (by name only).
    chains: Vec<(u64, Vec<(usize, VirtAddr)>)>,
    /// The chains' newest blocks.
    heads: HashSet<u64>,
    /// What could not be read while following the chains.
    warnings: Vec<Warning>,
}

impl LockWordTargets {
    /// Whether the scan has anything to look for.
    pub(crate) fn any(&self) -> bool {
        self.bits.is_some() && !self.pending.is_empty()
    }

    /// Whether `v` is a lock word for these waiters: `Waiting` set, a
    /// kernel pointer whose address part is a chain's newest block (by
    /// name) or lies in a waiter's stack at or below its event.
    // Inlined into the scan, which asks once per 8 bytes of resident
    // kernel memory and nearly always stops at the first test.
    #[inline]
    pub(crate) fn wanted(&self, v: u64) -> bool {
        let Some((mask, waiting, _)) = self.bits else {
            return false;
        };
        if v & waiting == 0 || v >> 48 != 0xFFFF {
            return false;
        }
        let p = v & !mask;
        if self.by_name.is_some() {
            self.heads.contains(&p)
        } else {
            self.pending
                .iter()
                .any(|w| w.stack.0 <= p && p <= w.event.0)
        }
    }
}

/// A `WrPushLock` waiter before it is tied to a lock.
#[derive(Debug, Clone)]
struct Pending {
    thread: VirtAddr,
    event: VirtAddr,
    /// `[KernelStack, InitialStack)`: where its frames are.
    stack: (u64, u64),
}

impl<'d> Kernel<'d> {
    /// Push locks that threads wait on (cached): each with its waiters,
    /// container and candidate owners. Empty, without a scan, when no
    /// thread waits `WrPushLock`.
    pub fn push_locks(&self) -> &Partial<PushLockInfo> {
        self.caches
            .get::<Cache>()
            .locks
            .get_or_init(|| self.walk_push_locks())
    }

    /// The push lock a thread waits on, when the walk tied it to one.
    pub fn push_lock_of(&self, thread: VirtAddr) -> Option<&PushLockInfo> {
        self.push_locks()
            .items
            .iter()
            .find(|l| l.waiters.iter().any(|w| w.thread == thread))
    }

    /// `[from, to)` of a thread's kernel stack: from `KernelStack` (a
    /// waiting thread's saved frames; `StackLimit` for one on a CPU) to
    /// `InitialStack`, at most [`MAX_STACK`] bytes.
    fn kernel_stack_range(&self, thread: VirtAddr, running: bool) -> Option<(u64, u64)> {
        let e = self.object("_ETHREAD", thread).ok()?;
        let top = e.u64("Tcb.InitialStack").ok()?;
        let low = if running {
            e.u64("Tcb.StackLimit").ok()?
        } else {
            e.u64("Tcb.KernelStack").ok()?
        };
        (low < top).then(|| (low.max(top.saturating_sub(MAX_STACK)), top))
    }

    /// Whether `[from, to)` of kernel memory holds the qword `value`.
    fn stack_holds(&self, range: (u64, u64), value: u64) -> bool {
        let len = (range.1 - range.0) as usize;
        let mut buf = vec![0u8; len];
        // A stack page that cannot be read is searched no further: the
        // candidates are an inference either way.
        let mut at = 0usize;
        while at < len {
            let page_end = ((range.0 + at as u64) | 0xFFF) + 1;
            let n = ((page_end - range.0) as usize).min(len) - at;
            if self
                .reader()
                .read(VirtAddr(range.0 + at as u64), &mut buf[at..at + n])
                .is_err()
            {
                buf[at..at + n].fill(0);
            }
            at += n;
        }
        buf.chunks_exact(8)
            .any(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) == value)
    }

    /// The flag bits of a lock word (`Locked`, `Waiting`, `Waking`,
    /// `MultipleShared`) and the `Waiting` bit, from the bitfields.
    fn push_lock_bits(&self) -> Option<(u64, u64, u64)> {
        let r = self.reader();
        let t = r.ty("_EX_PUSH_LOCK").ok()?;
        let bit = |name: &str| -> Option<u64> {
            match r.resolve(t, name).ok()?.1 {
                TypeRef::Bitfield {
                    position, length, ..
                } if length >= 1 && position + length <= 64 => {
                    Some((((1u128 << length) - 1) << position) as u64)
                }
                _ => None,
            }
        };
        let locked = bit("Locked")?;
        let waiting = bit("Waiting")?;
        let mask =
            locked | waiting | bit("Waking").unwrap_or(0) | bit("MultipleShared").unwrap_or(0);
        Some((mask, waiting, locked))
    }

    /// What the lock-word scan looks for (cached): the `WrPushLock`
    /// waiters, the lock word's flag bits and, where the table names the
    /// wait-block type, the chains from each newest block. Known before
    /// any scan, so that the one kernel-page scan (`pool.rs`) looks for
    /// lock words and pool tags in the same pass.
    pub(crate) fn lock_word_targets(&self) -> &LockWordTargets {
        self.caches
            .get::<Cache>()
            .targets
            .get_or_init(|| self.find_lock_word_targets())
    }

    fn find_lock_word_targets(&self) -> LockWordTargets {
        let mut out = LockWordTargets::default();
        let threads = &self.threads().items;
        let pending: Vec<Pending> = threads
            .iter()
            .filter(|t| {
                t.state == ThreadState::Waiting && t.wait_reason == Some(WaitReason::WrPushLock)
            })
            .filter_map(|t| {
                Some(Pending {
                    thread: t.address,
                    event: *t.waits_on.first()?,
                    stack: self.kernel_stack_range(t.address, false)?,
                })
            })
            .collect();
        if pending.is_empty() {
            return out;
        }
        out.bits = self.push_lock_bits();
        if out.bits.is_none() {
            out.pending = pending;
            return out;
        }
        let r = self.reader();
        let wbt = "_EX_PUSH_LOCK_WAIT_BLOCK";
        let by_name = r
            .offset_of(wbt, "WakeEvent")
            .ok()
            .filter(|_| r.has_field(wbt, "Next"));
        // Each chain's newest block (what a lock word points at) and its
        // waiters, newest first.
        let mut chains: Vec<(u64, Vec<(usize, VirtAddr)>)> = Vec::new();
        if let Some(off) = by_name {
            let blocks: HashMap<u64, usize> = pending
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((p.event.0.checked_sub(off)?, i)))
                .collect();
            let mut next: HashMap<u64, u64> = HashMap::new();
            for &b in blocks.keys() {
                match r.object(wbt, VirtAddr(b)).and_then(|o| o.u64("Next")) {
                    Ok(n) => {
                        next.insert(b, n);
                    }
                    Err(e) => out.warnings.push(Warning::from_error(
                        format!("push-lock wait block {}", VirtAddr(b)),
                        &e,
                    )),
                }
            }
            let pointed: HashSet<u64> = next.values().copied().collect();
            let mut heads: Vec<u64> = blocks
                .keys()
                .copied()
                .filter(|b| !pointed.contains(b))
                .collect();
            heads.sort_unstable();
            for h in heads {
                let mut seen = HashSet::new();
                let mut chain = Vec::new();
                let mut b = h;
                let mut failed = false;
                while b != 0 && chain.len() < MAX_CHAIN && seen.insert(b) {
                    match blocks.get(&b) {
                        Some(&i) => chain.push((i, VirtAddr(b))),
                        None => {
                            // A block of a thread not waiting WrPushLock (or
                            // not listed): the chain goes on past it.
                            out.warnings.push(Warning::implausible(
                                "push-lock wait blocks",
                                Some(VirtAddr(b)),
                                "a wait block on the chain belongs to no WrPushLock waiter",
                            ));
                        }
                    }
                    b = match r.object(wbt, VirtAddr(b)).and_then(|o| o.u64("Next")) {
                        Ok(n) => n,
                        Err(e) => {
                            out.warnings.push(Warning::from_error(
                                format!("push-lock wait block {}", VirtAddr(b)),
                                &e,
                            ));
                            failed = true;
                            break;
                        }
                    };
                }
                if b != 0 && !failed {
                    out.warnings.push(Warning::implausible(
                        "push-lock wait blocks",
                        Some(VirtAddr(b)),
                        "the Next chain loops or is too long; cut there",
                    ));
                }
                chains.push((h, chain));
            }
        }
        out.heads = chains.iter().map(|c| c.0).collect();
        out.by_name = by_name;
        out.chains = chains;
        out.pending = pending;
        out
    }

    fn walk_push_locks(&self) -> Partial<PushLockInfo> {
        let mut out = Partial::default();
        let threads = &self.threads().items;
        let targets = self.lock_word_targets();
        out.warnings.extend(targets.warnings.iter().cloned());
        let pending = &targets.pending;
        if pending.is_empty() {
            return out;
        }
        let Some((mask, _, locked_bit)) = targets.bits else {
            out.warnings.push(Warning::implausible(
                "push locks",
                None,
                "_EX_PUSH_LOCK has no Locked/Waiting bitfields: push-lock waiters not tied to locks",
            ));
            return out;
        };
        let r = self.reader();
        let wbt = "_EX_PUSH_LOCK_WAIT_BLOCK";
        let by_name = targets.by_name;
        let chains = &targets.chains;
        // The lock words: from the one scan of kernel memory, words with
        // `Waiting` set whose pointer is a chain's newest block (by name)
        // or lies in a waiter's stack at or below its event (no type);
        // none inside a waiter's own stack.
        let stacks: Vec<(u64, u64)> = pending.iter().map(|p| p.stack).collect();
        let hits: Vec<(u64, u64)> = self
            .kernel_scan()
            .lock_words
            .iter()
            .copied()
            .filter(|(at, _)| !stacks.iter().any(|s| s.0 <= *at && *at < s.1))
            .collect();
        let mut locks: BTreeMap<u64, PushLockInfo> = BTreeMap::new();
        let mut taken: HashSet<usize> = HashSet::new();
        for (at, value) in hits {
            let p = value & !mask;
            let linked: Vec<(usize, Option<VirtAddr>)> = if by_name.is_some() {
                let Some(c) = chains.iter().find(|c| c.0 == p) else {
                    continue;
                };
                c.1.iter().map(|&(i, b)| (i, Some(b))).collect()
            } else {
                let Some(i) = pending
                    .iter()
                    .position(|w| w.stack.0 <= p && p <= w.event.0)
                else {
                    continue;
                };
                vec![(i, None)]
            };
            if linked.iter().any(|(i, _)| taken.contains(i)) {
                out.warnings.push(Warning::implausible(
                    "push locks",
                    Some(VirtAddr(at)),
                    format!(
                        "a second lock word points at the same waiters' wait block {}; kept the first",
                        VirtAddr(p)
                    ),
                ));
                continue;
            }
            taken.extend(linked.iter().map(|(i, _)| *i));
            let mut waiters: Vec<PushLockWaiter> = linked
                .iter()
                .map(|&(i, b)| PushLockWaiter {
                    thread: pending[i].thread,
                    wake_event: pending[i].event,
                    wait_block: b,
                    exclusive: b
                        .and_then(|b| r.object(wbt, b).and_then(|o| o.u64("Flags")).ok())
                        .map(|f| f & FLAGS_EXCLUSIVE != 0),
                    inferred: false,
                })
                .collect();
            waiters.reverse();
            locks.insert(
                at,
                PushLockInfo {
                    address: VirtAddr(at),
                    value,
                    locked: value & locked_bit != 0,
                    container: None,
                    waiters,
                    candidate_owners: Vec::new(),
                    wait_blocks_by_name: by_name.is_some(),
                },
            );
        }
        // Without the type, the other waiters of each lock: WrPushLock
        // threads whose stacks hold its address.
        if by_name.is_none() {
            for (i, w) in pending.iter().enumerate() {
                if taken.contains(&i) {
                    continue;
                }
                let mut found = locks
                    .values_mut()
                    .filter(|l| self.stack_holds(w.stack, l.address.0));
                if let Some(l) = found.next() {
                    l.waiters.insert(
                        0,
                        PushLockWaiter {
                            thread: w.thread,
                            wake_event: w.event,
                            wait_block: None,
                            exclusive: None,
                            inferred: true,
                        },
                    );
                    taken.insert(i);
                }
            }
        }
        for (i, w) in pending.iter().enumerate() {
            if !taken.contains(&i) {
                out.warnings.push(Warning::implausible(
                    format!("thread {}", w.thread),
                    Some(w.event),
                    "waits WrPushLock but no lock word points at its wait block and its stack names no found lock",
                ));
            }
        }
        let mut walker = self.stack_walker();
        for l in locks.values_mut() {
            // The waiters' order: oldest first by wait start.
            l.waiters.sort_by_key(|w| {
                threads
                    .iter()
                    .find(|t| t.address == w.thread)
                    .map(|t| std::cmp::Reverse(t.wait_ticks.unwrap_or(0)))
            });
            for w in &mut l.waiters {
                if w.exclusive.is_none() {
                    let frames = walker.thread_stack(w.thread).symbols();
                    w.exclusive = frames.iter().find_map(|f| {
                        let s = f.to_string();
                        (s.contains("PushLock") && s.contains("Acquire"))
                            .then(|| !s.contains("Shared"))
                    });
                }
            }
            let waiting: HashSet<VirtAddr> = l.waiters.iter().map(|w| w.thread).collect();
            l.candidate_owners = threads
                .iter()
                .filter(|t| !waiting.contains(&t.address))
                .filter(|t| {
                    self.kernel_stack_range(t.address, t.state == ThreadState::Running)
                        .is_some_and(|s| self.stack_holds(s, l.address.0))
                })
                .map(|t| t.address)
                .collect();
            l.container = self.container_of(l.address);
        }
        out.items = locks.into_values().collect();
        out
    }

    /// What contains a lock at `addr`: a field of a listed process or
    /// thread (named by the field whose offset it is), else the pool block
    /// around it, found by walking the page's pool headers from its start.
    pub fn container_of(&self, addr: VirtAddr) -> Option<String> {
        let r = self.reader();
        let field_at = |ty: &str, base: VirtAddr| -> Option<String> {
            let t = r.ty(ty).ok()?;
            let off = addr.0.checked_sub(base.0).filter(|&o| o < t.size)?;
            let f = t.fields.iter().find(|f| f.offset == off)?;
            Some(format!("{ty}.{}", f.name))
        };
        for p in &self.processes().items {
            if let Some(f) = field_at("_EPROCESS", p.address) {
                return Some(format!("{f} of {} (pid {})", p.name, p.pid));
            }
        }
        for t in &self.threads().items {
            if let Some(f) = field_at("_ETHREAD", t.address) {
                return Some(format!("{f} of thread {} ({})", t.address, t.process_name));
            }
        }
        let hdr = r.ty("_POOL_HEADER").ok()?.size;
        let mut h = addr.0 & !0xFFF;
        for _ in 0..MAX_POOL_BLOCKS {
            let o = r.object("_POOL_HEADER", VirtAddr(h)).ok()?;
            let size = o.u64("BlockSize").ok()? * 16;
            if size == 0 {
                return None;
            }
            if h + hdr <= addr.0 && addr.0 < h + size {
                let tag = (o.u64("PoolTag").ok()? as u32).to_le_bytes();
                // The high bit of the last byte marks a protected tag.
                let tag = [tag[0], tag[1], tag[2], tag[3] & 0x7F];
                if !tag.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                    return None;
                }
                return Some(format!(
                    "pool block tagged {} at {}",
                    String::from_utf8_lossy(&tag),
                    VirtAddr(h)
                ));
            }
            h += size;
            if h > addr.0 {
                return None;
            }
        }
        None
    }
}
