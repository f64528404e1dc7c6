//! Fast and guarded mutexes with waiters, which `!locks` never shows: the
//! mutex, the owner it records and the threads behind it.
//!
//! Fields read: `_KTHREAD.WaitBlockList`, `_KWAIT_BLOCK.{Object, Thread}`,
//! `_FAST_MUTEX.{Event, Owner}` (every build), `_KGUARDED_MUTEX.{Gate,
//! Owner}` (7 SP1), through [`Kernel::waited_object`].
//!
//! A mutex is not on any list: it is found from its waiters, the threads
//! in `WrFastMutex` or `WrGuardedMutex`, by the dispatcher object each
//! waits on (a `_FAST_MUTEX`'s `Event`, a `_KGUARDED_MUTEX`'s `Gate`) and
//! the mutex around it whose `Owner` is a listed thread. So a mutex nobody
//! waits for is not seen.

use crate::error::Warning;
use crate::kernel::Kernel;
use crate::model::{HeldLock, LockWaiter, MutexInfo, Partial, ThreadState, WaitReason};
use hangscope_x64::VirtAddr;
use std::collections::BTreeMap;

impl<'d> Kernel<'d> {
    /// Fast and guarded mutexes that threads wait on, by address, each
    /// with its recorded owner and its waiters (oldest first). A thread
    /// waiting `WrFastMutex`/`WrGuardedMutex` on an object no mutex with a
    /// listed owner surrounds is a warning, not a mutex.
    pub fn mutexes(&self) -> Partial<MutexInfo> {
        let mut out = Partial::default();
        let mut found: BTreeMap<u64, MutexInfo> = BTreeMap::new();
        let waiting = self.threads().items.iter().filter(|t| {
            t.state == ThreadState::Waiting
                && matches!(
                    t.wait_reason,
                    Some(WaitReason::WrFastMutex | WaitReason::WrGuardedMutex)
                )
        });
        for t in waiting {
            let blocks = self
                .object("_ETHREAD", t.address)
                .and_then(|e| e.field("Tcb"))
                .and_then(|tcb| self.wait_blocks(&tcb));
            let blocks = match blocks {
                Ok(b) => b,
                Err(e) => {
                    out.warnings.push(Warning::from_error(
                        format!("wait blocks of thread {}", t.address),
                        &e,
                    ));
                    continue;
                }
            };
            let mut tied = false;
            for (wb, obj) in blocks {
                let w = self.waited_object(VirtAddr(wb), VirtAddr(obj));
                if !matches!(w.kind.as_str(), "FastMutex" | "GuardedMutex") {
                    continue;
                }
                let Some(&owner) = w.owners.first() else {
                    continue;
                };
                let m = found.entry(w.address.0).or_insert_with(|| MutexInfo {
                    address: w.address,
                    kind: w.kind.clone(),
                    wait_object: VirtAddr(obj),
                    owner,
                    container: None,
                    waiters: Vec::new(),
                });
                if !m.waiters.iter().any(|x| x.thread == t.address) {
                    m.waiters.push(LockWaiter {
                        thread: t.address,
                        exclusive: true,
                        wait_ticks: t.wait_ticks,
                        wait_seconds: t.wait_seconds,
                    });
                }
                tied = true;
            }
            if !tied {
                out.warnings.push(Warning::implausible(
                    format!("thread {}", t.address),
                    t.waits_on.first().copied(),
                    format!(
                        "waits {} but no _FAST_MUTEX or _KGUARDED_MUTEX whose Owner is a listed thread surrounds what it waits on",
                        t.wait_reason.map(|r| r.to_string()).unwrap_or_default()
                    ),
                ));
            }
        }
        for m in found.values_mut() {
            m.waiters
                .sort_by_key(|w| std::cmp::Reverse(w.wait_ticks.unwrap_or(0)));
            m.container = self.container_of(m.address);
        }
        out.items = found.into_values().collect();
        out
    }

    /// What a thread holds, as far as the dump tells: push locks whose
    /// owner candidates include it (inferred from its stack; only walked
    /// when some thread waits `WrPushLock`) and mutexes whose `Owner` it is.
    pub fn locks_held_by(&self, thread: VirtAddr, mutexes: &[MutexInfo]) -> Vec<HeldLock> {
        let pushed = self
            .push_locks()
            .items
            .iter()
            .filter(|l| l.candidate_owners.contains(&thread))
            .map(|l| HeldLock {
                address: l.address,
                kind: "PushLock".into(),
                inferred: true,
                container: l.container.clone(),
                waiters: l.waiters.len(),
            });
        let owned = mutexes
            .iter()
            .filter(|m| m.owner == thread)
            .map(|m| HeldLock {
                address: m.address,
                kind: m.kind.clone(),
                inferred: false,
                container: m.container.clone(),
                waiters: m.waiters.len(),
            });
        pushed.chain(owned).collect()
    }
}
