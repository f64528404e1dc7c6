//! One walk of a kernel's circular doubly linked lists: Windows'
//! `LIST_ENTRY` (`Flink`/`Blink`) and Linux's `list_head` (`next`/`prev`)
//! are the same shape, so both kernel models walk them here and only word
//! the breaks their own way.
//!
//! The walk trusts nothing it reads. It is bounded (`max` entries),
//! cycle-checked (an entry met twice ends it), and back-link-checked: every
//! entry's back link must point at the entry before it, and the head's at
//! the last one, as holds in a sound list. Where a check fails it yields
//! one [`ListBreak`] naming the place, after every entry read before it,
//! and then stops for good.

use crate::{Fault, VirtAddr, VirtualMemory};
use std::collections::HashSet;

/// Where the two links sit inside a link structure (`LIST_ENTRY`,
/// `list_head`): offsets read from the symbols by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLinks {
    /// Offset of the forward link (`Flink`, `next`).
    pub next: u64,
    /// Offset of the back link (`Blink`, `prev`).
    pub prev: u64,
}

/// Why a list walk stopped before returning to its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListBreak {
    /// A link could not be read.
    Fault {
        /// The failed read.
        fault: Fault,
        /// The entry whose forward link led to the unreadable one, when the
        /// fault is in reading an entry's own forward link.
        via: Option<VirtAddr>,
    },
    /// `from`'s forward link is NULL.
    NullLink {
        /// The link structure holding the NULL.
        from: VirtAddr,
    },
    /// `from`'s forward link is not a kernel address (see
    /// [`CircularList::kernel_addresses_only`]).
    NotKernel {
        /// The link structure holding the bad link.
        from: VirtAddr,
        /// What it holds.
        value: VirtAddr,
    },
    /// The walk came back to `at`, an entry already met, not to its head.
    Loop {
        /// The entry met twice.
        at: VirtAddr,
        /// The entry whose forward link led back to it.
        from: VirtAddr,
    },
    /// More than `max` entries.
    TooLong {
        /// The bound.
        max: usize,
    },
    /// `entry`'s back link is `found`, not `expected` (the entry before it).
    /// `entry` is the head when the head's back link misses the last entry.
    BackLink {
        /// The link structure whose back link is wrong.
        entry: VirtAddr,
        /// Its back link.
        found: VirtAddr,
        /// Where it should point.
        expected: VirtAddr,
    },
}

/// Walks a circular list headed at `head`, yielding the address of each
/// containing structure (the link's address less `link_offset`), then at
/// most one [`ListBreak`].
#[derive(Debug)]
pub struct CircularList<'m> {
    mem: &'m dyn VirtualMemory,
    head: VirtAddr,
    link_offset: u64,
    links: ListLinks,
    /// The link structure before `next` (the head at first): where
    /// `next`'s back link must point.
    prev: VirtAddr,
    /// The next link structure to visit; `None` until the head is read.
    next: Option<VirtAddr>,
    seen: HashSet<u64>,
    max: usize,
    kernel_only: bool,
    done: bool,
}

impl<'m> CircularList<'m> {
    /// A walk of the list headed at `head` whose entries are linked
    /// through the field at `link_offset` of their structure, at most
    /// `max` entries. Nothing is read until the first `next()`.
    pub fn new(
        mem: &'m dyn VirtualMemory,
        head: VirtAddr,
        link_offset: u64,
        links: ListLinks,
        max: usize,
    ) -> CircularList<'m> {
        CircularList {
            mem,
            head,
            link_offset,
            links,
            prev: head,
            next: None,
            seen: HashSet::new(),
            max,
            kernel_only: false,
            done: false,
        }
    }

    /// Also stop at a forward link outside the kernel's half of the
    /// address space (top byte not 0xff, which holds under both 4- and
    /// 5-level paging): a Linux list never leaves it, so such a link is
    /// damage, and saying so is clearer than the page fault that follows.
    pub fn kernel_addresses_only(mut self) -> CircularList<'m> {
        self.kernel_only = true;
        self
    }

    /// The list's head.
    pub fn head(&self) -> VirtAddr {
        self.head
    }

    fn read_link(&self, at: VirtAddr, off: u64) -> Result<VirtAddr, Fault> {
        self.mem
            .read_u64(VirtAddr(at.0.wrapping_add(off)))
            .map(VirtAddr)
    }

    fn check_back_link(&self, entry: VirtAddr) -> Result<(), ListBreak> {
        let found = self
            .read_link(entry, self.links.prev)
            .map_err(|fault| ListBreak::Fault { fault, via: None })?;
        if found == self.prev {
            return Ok(());
        }
        Err(ListBreak::BackLink {
            entry,
            found,
            expected: self.prev,
        })
    }

    fn step(&mut self) -> Result<Option<VirtAddr>, ListBreak> {
        let cur = match self.next {
            Some(cur) => cur,
            None => self
                .read_link(self.head, self.links.next)
                .map_err(|fault| ListBreak::Fault { fault, via: None })?,
        };
        let from = self.prev;
        if cur == self.head {
            self.check_back_link(cur)?;
            return Ok(None);
        }
        if cur.0 == 0 {
            return Err(ListBreak::NullLink { from });
        }
        if self.kernel_only && cur.0 >> 56 != 0xff {
            return Err(ListBreak::NotKernel { from, value: cur });
        }
        if !self.seen.insert(cur.0) {
            return Err(ListBreak::Loop { at: cur, from });
        }
        if self.seen.len() > self.max {
            return Err(ListBreak::TooLong { max: self.max });
        }
        // An entry whose own link cannot be read is not an entry: the walk
        // ends with the fault at its address.
        let after = self
            .read_link(cur, self.links.next)
            .map_err(|fault| ListBreak::Fault {
                fault,
                via: Some(from),
            })?;
        self.next = Some(after);
        self.check_back_link(cur)?;
        self.prev = cur;
        Ok(Some(VirtAddr(cur.0.wrapping_sub(self.link_offset))))
    }
}

impl Iterator for CircularList<'_> {
    type Item = Result<VirtAddr, ListBreak>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(v)) => Some(Ok(v)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SparseMemory;

    const LINKS: ListLinks = ListLinks { next: 0, prev: 8 };

    /// Links `entries` after `head`, the last one's next being `tail_next`;
    /// every back link points at the one before (the head's at the last).
    fn link(m: &mut SparseMemory, head: u64, entries: &[u64], tail_next: u64) {
        m.write_u64(head, entries.first().copied().unwrap_or(head));
        m.write_u64(head + 8, entries.last().copied().unwrap_or(head));
        for (i, e) in entries.iter().enumerate() {
            m.write_u64(*e, entries.get(i + 1).copied().unwrap_or(tail_next));
            m.write_u64(*e + 8, if i == 0 { head } else { entries[i - 1] });
        }
    }

    fn walk(m: &SparseMemory, head: u64, max: usize) -> Vec<Result<VirtAddr, ListBreak>> {
        CircularList::new(m, VirtAddr(head), 0x10, LINKS, max)
            .kernel_addresses_only()
            .collect()
    }

    const H: u64 = 0xffff_8000_0000_1000;
    const A: u64 = 0xffff_8000_0000_2010;
    const B: u64 = 0xffff_8000_0000_3010;

    #[test]
    fn a_sound_list_yields_its_containers() {
        let mut m = SparseMemory::new();
        link(&mut m, H, &[A, B], H);
        assert_eq!(
            walk(&m, H, 10),
            [Ok(VirtAddr(A - 0x10)), Ok(VirtAddr(B - 0x10))]
        );
        let mut empty = SparseMemory::new();
        link(&mut empty, H, &[], H);
        assert!(walk(&empty, H, 10).is_empty());
    }

    #[test]
    fn each_break_is_named_once_after_what_was_read() {
        let mut m = SparseMemory::new();
        link(&mut m, H, &[A, B], A);
        let r = walk(&m, H, 10);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(
            r[2],
            Err(ListBreak::Loop {
                at: VirtAddr(A),
                from: VirtAddr(B)
            })
        );

        let mut m = SparseMemory::new();
        link(&mut m, H, &[A, B], 0);
        assert_eq!(
            walk(&m, H, 10)[2],
            Err(ListBreak::NullLink { from: VirtAddr(B) })
        );

        let mut m = SparseMemory::new();
        link(&mut m, H, &[A, B], 0x4141);
        assert_eq!(
            walk(&m, H, 10)[2],
            Err(ListBreak::NotKernel {
                from: VirtAddr(B),
                value: VirtAddr(0x4141)
            })
        );

        let mut m = SparseMemory::new();
        link(&mut m, H, &[A, B], H);
        m.write_u64(B + 8, H);
        assert_eq!(
            walk(&m, H, 10)[1],
            Err(ListBreak::BackLink {
                entry: VirtAddr(B),
                found: VirtAddr(H),
                expected: VirtAddr(A)
            })
        );

        let mut m = SparseMemory::new();
        link(&mut m, H, &[A, B], H);
        m.write_u64(H + 8, A);
        let r = walk(&m, H, 10);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[2],
            Err(ListBreak::BackLink {
                entry: VirtAddr(H),
                found: VirtAddr(A),
                expected: VirtAddr(B)
            })
        );

        let mut m = SparseMemory::new();
        link(&mut m, H, &[A, B], H);
        assert_eq!(walk(&m, H, 1)[1], Err(ListBreak::TooLong { max: 1 }));

        // B's page is absent: the fault names B's link, reached from A.
        let mut m = SparseMemory::new();
        link(&mut m, H, &[A], B);
        let r = walk(&m, H, 10);
        assert!(
            matches!(&r[1], Err(ListBreak::Fault { fault, via: Some(v) })
                if fault.addr == VirtAddr(B) && *v == VirtAddr(A)),
            "{r:?}"
        );
    }
}
