//! Kernel queues (`_KQUEUE`, the body of an `IoCompletion` object) and the
//! threads associated with them. An LRPC server's ALPC connection port
//! names one in `_ALPC_PORT.CompletionPort`; its workers wait `WrQueue` on
//! it for requests.
//!
//! What the layout follows: `KeRemoveQueueEx` leaves a thread associated
//! with the queue it removes from, `KTHREAD.Queue` pointing at it and the
//! thread linked into `_KQUEUE.ThreadListHead` through
//! `KTHREAD.QueueListEntry`, while it waits there and while it works on the
//! packet it took; `_KQUEUE.CurrentCount` counts the associated threads
//! that are not blocked (the kernel lowers it when one blocks elsewhere).
//! That a worker stays associated while blocked elsewhere, and the
//! `CurrentCount` rule, are inferred from how the kernel uses the fields
//! (`../shared/docs/windows-alpc.md` section 4), not verified. Every field
//! by name from the symbol table.

use super::*;
use crate::scenario::{LockKind, ThreadState};

impl Builder<'_> {
    /// A queue with no entries and no threads: an `IoCompletion` object
    /// whose body is a `_KQUEUE` of the build's `QueueObject` type, at most
    /// one running thread per CPU. Returns the `_KQUEUE`.
    pub(super) fn kernel_queue(&mut self) -> Result<u64, Error> {
        let kq = "_KQUEUE";
        let q = self.alloc_object("IoCompletion", self.size(kq)?, None)?;
        self.dispatcher_header(q, "QueueObject", 0, kq)?;
        for head in ["EntryListHead", "ThreadListHead"] {
            let at = q + self.off(kq, head)?;
            self.list_init(at);
        }
        let cpus = self.sc.cpus.len().max(1) as u64;
        self.put(q, kq, "MaximumCount", cpus)?;
        Ok(q)
    }

    /// Associate each thread with its queue: the one it waits on, else its
    /// `queue`. Runs after [`Builder::waits`] and [`Builder::locks`].
    pub(super) fn queue_threads(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let kq = "_KQUEUE";
        let et = "_ETHREAD";
        let mut current: BTreeMap<u64, u64> = BTreeMap::new();
        for (ti, t) in sc.threads.iter().enumerate() {
            let waited = t
                .wait
                .as_ref()
                .and_then(|w| w.on.first())
                .filter(|o| sc.locks[self.ix.locks[*o]].kind == LockKind::Queue);
            let Some(id) = waited.or(t.queue.as_ref()) else {
                continue;
            };
            let q = self.locks[self.ix.locks[id]].address;
            let e = self.threads[ti].ethread;
            self.put(e, et, "Tcb.Queue", q)?;
            let head = q + self.off(kq, "ThreadListHead")?;
            self.list_add(head, e + self.off(et, "Tcb.QueueListEntry")?);
            let n = current.entry(q).or_default();
            if t.state != ThreadState::Waiting {
                *n += 1;
            }
        }
        for (q, n) in current {
            self.put(q, kq, "CurrentCount", n)?;
        }
        Ok(())
    }
}
