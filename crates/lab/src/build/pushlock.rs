//! Push locks (`EX_PUSH_LOCK`): the lock word, its waiters' wait blocks on
//! their kernel stacks, and the lock's address where its users keep it.
//!
//! A waiter's wait block sits in its push-lock acquire frame
//! ([`crate::stacks::PUSH_LOCK_WAIT_BLOCK`] above the frame's body RSP),
//! the thread waits on the block's `WakeEvent`, and the lock word holds
//! the newest block's address with `Waiting` (and `Locked` when owned)
//! set. Where the table has `_EX_PUSH_LOCK_WAIT_BLOCK` (7 SP1) every field
//! is written by name: `Next` to the older block, `Previous` to the newer,
//! `Last` (in the newest) to the oldest, `Flags` bit 0 for an exclusive
//! waiter. The tables of later builds lack the type, so the lab writes
//! only the event at the block's start and the lock word: what a reader
//! can rely on there without the layout.

use super::*;
use crate::stacks::{is_push_lock_acquire, PUSH_LOCK_ADDRESS_SLOT, PUSH_LOCK_WAIT_BLOCK};

/// `EX_PUSH_LOCK_FLAGS_EXCLUSIVE` in a wait block's `Flags`.
const FLAGS_EXCLUSIVE: u64 = 1;

/// A laid-out push lock: its address, where it lives (as the truth names
/// it) and (scenario thread index, `WakeEvent`) of each waiter, oldest
/// first.
pub(super) type PlacedPushLock = (u64, String, Vec<(usize, u64)>);

impl Builder<'_> {
    /// Lay out push lock `li` (its waiters' stacks must be laid out):
    /// returns the lock's address and a description of where it lives.
    pub(super) fn push_lock(&mut self, li: usize) -> Result<PlacedPushLock, Error> {
        let sc = self.sc;
        let l = &sc.locks[li];
        let field = |p: String| Error::ScenarioField {
            field: format!("locks[{li}].within"),
            problem: p,
        };
        let within = l.within.clone().unwrap_or_else(|| "pool:Pshl".into());
        let parts: Vec<&str> = within.split(':').collect();
        let (addr, container) = match parts[..] {
            ["process", pid, f] => {
                let pid: u64 = pid
                    .parse()
                    .map_err(|_| field(format!("bad pid in `{within}`")))?;
                let pi = *self
                    .ix
                    .pids
                    .get(&pid)
                    .ok_or_else(|| field(format!("no process {pid}")))?;
                let off = self.off("_EPROCESS", f)?;
                (
                    self.procs[pi].eprocess + off,
                    format!("_EPROCESS.{f} of {} (pid {pid})", sc.processes[pi].name),
                )
            }
            [_, tag] => {
                let mut t = [b' '; 4];
                t.copy_from_slice(&tag.as_bytes()[..4]);
                let (_, a) = self.pool_alloc(0x40, t)?;
                (a, format!("pool block tagged {tag}"))
            }
            _ => return Err(field(format!("`{within}`"))),
        };
        // Waiters in arrival order: the scenario's, oldest first.
        let waiters: Vec<usize> = sc
            .threads
            .iter()
            .enumerate()
            .filter(|(_, t)| t.wait.as_ref().is_some_and(|w| w.on.contains(&l.id)))
            .map(|(ti, _)| ti)
            .collect();
        let wbt = "_EX_PUSH_LOCK_WAIT_BLOCK";
        let typed = self.l.type_size(wbt).is_some();
        let mut blocks: Vec<(usize, u64, bool)> = Vec::new();
        for &ti in &waiters {
            let t = &sc.threads[ti];
            let k = t
                .stack
                .iter()
                .position(|f| is_push_lock_acquire(f))
                .filter(|&k| k < self.threads[ti].frame_rsps.len())
                .ok_or_else(|| Error::ScenarioField {
                    field: format!("threads[{ti}].stack"),
                    problem: "a push-lock waiter's stack names its acquire frame \
                              (nt!ExfAcquirePushLockExclusive or ...Shared)"
                        .into(),
                })?;
            let body = self.threads[ti].frame_rsps[k];
            let wb = body + PUSH_LOCK_WAIT_BLOCK;
            self.sp
                .write(body + PUSH_LOCK_ADDRESS_SLOT, &addr.to_le_bytes())?;
            let exclusive = !t.stack[k].contains("Shared");
            let ev = wb
                + if typed {
                    self.off(wbt, "WakeEvent")?
                } else {
                    0
                };
            self.dispatcher_header(ev, "EventSynchronizationObject", 0, "_KEVENT")?;
            blocks.push((ti, wb, exclusive));
        }
        if typed {
            let n = blocks.len();
            for (j, &(_, wb, ex)) in blocks.iter().enumerate() {
                let older = if j > 0 { blocks[j - 1].1 } else { 0 };
                let newer = if j + 1 < n { blocks[j + 1].1 } else { 0 };
                self.put(wb, wbt, "Next", older)?;
                self.put(wb, wbt, "Previous", newer)?;
                if j + 1 == n {
                    self.put(wb, wbt, "Last", blocks[0].1)?;
                }
                self.put(wb, wbt, "Flags", if ex { FLAGS_EXCLUSIVE } else { 0 })?;
                self.put(wb, wbt, "ShareCount", 0)?;
            }
        }
        let pl = "_EX_PUSH_LOCK";
        self.put(addr, pl, "Value", blocks.last().map_or(0, |b| b.1))?;
        if !blocks.is_empty() {
            self.put(addr, pl, "Waiting", 1)?;
        }
        if let Some(o) = &l.owner {
            self.put(addr, pl, "Locked", 1)?;
            let oi = self.ix.threads[o];
            // The owner keeps the lock's address in its outermost frame
            // (to release it), as code holding a push lock does.
            // One slot of its home space per push lock it holds.
            let held_before = sc.locks[..li]
                .iter()
                .filter(|x| x.kind == crate::scenario::LockKind::Pushlock && x.owner == l.owner)
                .count() as u64;
            if let Some(&body) = self.threads[oi].frame_rsps.last() {
                self.sp
                    .write(body + 0x18 - 8 * (held_before % 4), &addr.to_le_bytes())?;
            }
        }
        let events = blocks
            .iter()
            .map(|&(ti, wb, _)| {
                let ev = wb
                    + if typed {
                        self.off(wbt, "WakeEvent").unwrap_or(0)
                    } else {
                        0
                    };
                (ti, ev)
            })
            .collect();
        Ok((addr, container, events))
    }
}
