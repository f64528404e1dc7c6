//! Push locks and fast/guarded mutexes with waiters, in text: what
//! WinDbg's `!locks` never shows. `locks` lists them after the ERESOURCE
//! table, `locks ADDR` shows one, and `thread` names the one a thread
//! waits on or holds. What is inferred (a push lock's owner, a waiter
//! tied by its stack) says so on the line it is on.

use crate::windbg::{flat, ticks_text, warnings};
use hangscope_nt::model::*;
use std::fmt::Write as _;

/// The mark on everything that comes from stacks rather than the lock.
pub const INFERRED: &str = "inferred from stacks";

/// One push lock: word, container, waiters (oldest first) and the owner
/// candidates, marked inferred.
pub fn push_lock(l: &PushLockInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "PushLock @ {:#x}    {}  Value {:#x}",
        l.address,
        if l.locked { "Locked" } else { "Not locked" },
        l.value
    );
    let _ = writeln!(
        s,
        "    In {}",
        l.container.as_deref().unwrap_or("an unknown container")
    );
    let how = if l.wait_blocks_by_name {
        "linked by the lock's wait blocks"
    } else {
        "the newest linked from the lock word"
    };
    let _ = writeln!(
        s,
        "    {} waiter(s), oldest first ({how}):",
        l.waiters.len()
    );
    for w in &l.waiters {
        let mode = match w.exclusive {
            Some(true) => "exclusive",
            Some(false) => "shared",
            None => "mode unknown",
        };
        let how = if w.inferred {
            format!("  (tied by its stack: {INFERRED})")
        } else {
            String::new()
        };
        let _ = writeln!(s, "              {}  {mode}{how}", flat(w.thread));
    }
    if l.candidate_owners.is_empty() {
        let _ = writeln!(
            s,
            "    Owner: none found (a push lock records no owner, and no other thread's stack keeps its address)"
        );
    } else {
        let o: Vec<String> = l.candidate_owners.iter().map(|&t| flat(t)).collect();
        let _ = writeln!(
            s,
            "    Owner candidate(s), {INFERRED} (a push lock records no owner): {}",
            o.join(" ")
        );
    }
    s
}

/// One fast or guarded mutex: its recorded owner and its waiters.
pub fn mutex(m: &MutexInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} @ {:#x}    Owner {} (recorded in Owner)",
        m.kind,
        m.address,
        flat(m.owner)
    );
    if let Some(c) = &m.container {
        let _ = writeln!(s, "    In {c}");
    }
    let what = if m.kind == "GuardedMutex" {
        "Gate"
    } else {
        "Event"
    };
    let _ = writeln!(
        s,
        "    {} waiter(s) on its {what} {}, oldest first:",
        m.waiters.len(),
        flat(m.wait_object)
    );
    for w in &m.waiters {
        let _ = writeln!(
            s,
            "              {}  waiting {}",
            flat(w.thread),
            ticks_text(w.wait_ticks, w.wait_seconds)
        );
    }
    s
}

/// The sections `locks` adds after the ERESOURCE table: push locks, then
/// fast and guarded mutexes, each only when it has something to show (a
/// lock or a warning). Both are found from their waiters, so `--all`
/// adds nothing here: an idle push lock or mutex is on no list.
pub fn sections(push_locks: &Partial<PushLockInfo>, mutexes: &Partial<MutexInfo>) -> String {
    let mut s = String::new();
    section(
        &mut s,
        push_locks,
        "PUSH LOCKS WITH WAITERS (not in !locks)",
        push_lock,
        &format!(
            "{} push lock(s) with waiters; owners {INFERRED}",
            push_locks.items.len()
        ),
    );
    section(
        &mut s,
        mutexes,
        "FAST AND GUARDED MUTEXES WITH WAITERS (not in !locks)",
        mutex,
        &format!(
            "{} fast/guarded mutex(es) with waiters",
            mutexes.items.len()
        ),
    );
    s
}

/// One titled section of locks and its warnings, left out when it has
/// neither.
fn section<T>(
    s: &mut String,
    locks: &Partial<T>,
    title: &str,
    render: impl Fn(&T) -> String,
    footer: &str,
) {
    if locks.items.is_empty() && locks.warnings.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n**** {title} ****");
    for l in &locks.items {
        let _ = write!(s, "\n{}", render(l));
    }
    let _ = writeln!(s, "\n{footer}");
    warnings(s, &locks.warnings);
}

/// `thread`'s line for the push lock a thread waits on.
pub fn waited_push_lock(l: &PushLockInfo) -> String {
    let owners = if l.candidate_owners.is_empty() {
        "no owner candidate in any stack (a push lock records no owner)".to_string()
    } else {
        let o: Vec<String> = l.candidate_owners.iter().map(|&t| flat(t)).collect();
        format!("owner candidate(s) {INFERRED}: {}", o.join(" "))
    };
    format!(
        "    waits for PushLock {} ({}), {} waiter(s); {owners}\n",
        flat(l.address),
        l.container.as_deref().unwrap_or("container unknown"),
        l.waiters.len()
    )
}

/// `thread`'s lines for the locks a thread holds.
pub fn held(h: &[HeldLock]) -> String {
    let mut s = String::new();
    for x in h {
        let (verb, how) = if x.inferred {
            ("Holds", INFERRED)
        } else {
            ("Owns", "recorded in Owner")
        };
        let _ = writeln!(
            s,
            "{verb} {} {} ({}) with {} waiter(s) ({how})",
            x.kind,
            flat(x.address),
            x.container.as_deref().unwrap_or("container unknown"),
            x.waiters
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_nt::VirtAddr;

    fn pushlock() -> PushLockInfo {
        PushLockInfo {
            address: VirtAddr(0xffff8000_00003000),
            value: 0xffff8000_00104f53,
            locked: true,
            container: Some("_EPROCESS.AddressCreationLock of explorer.exe (pid 1800)".into()),
            waiters: vec![
                PushLockWaiter {
                    thread: VirtAddr(0xffff8000_00010000),
                    exclusive: Some(true),
                    inferred: true,
                    ..Default::default()
                },
                PushLockWaiter {
                    thread: VirtAddr(0xffff8000_00020000),
                    exclusive: Some(false),
                    ..Default::default()
                },
            ],
            candidate_owners: vec![VirtAddr(0xffff8000_00030000)],
            wait_blocks_by_name: false,
        }
    }

    #[test]
    fn push_lock_marks_what_is_inferred() {
        let t = push_lock(&pushlock());
        for want in [
            "PushLock @ 0xffff800000003000    Locked",
            "In _EPROCESS.AddressCreationLock of explorer.exe (pid 1800)",
            "2 waiter(s), oldest first (the newest linked from the lock word)",
            "ffff800000010000  exclusive  (tied by its stack: inferred from stacks)",
            "ffff800000020000  shared\n",
            "Owner candidate(s), inferred from stacks (a push lock records no owner): ffff800000030000",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }

    #[test]
    fn sections_only_when_something_is_found() {
        assert_eq!(sections(&Partial::default(), &Partial::default()), "");
        let m = MutexInfo {
            address: VirtAddr(0xffff8000_00005000),
            kind: "FastMutex".into(),
            owner: VirtAddr(0xffff8000_00030000),
            waiters: vec![LockWaiter {
                thread: VirtAddr(0xffff8000_00040000),
                exclusive: true,
                wait_ticks: Some(64),
                wait_seconds: Some(1.0),
            }],
            ..Default::default()
        };
        let t = sections(
            &Partial {
                items: vec![pushlock()],
                warnings: vec![],
            },
            &Partial {
                items: vec![m],
                warnings: vec![],
            },
        );
        for want in [
            "**** PUSH LOCKS WITH WAITERS (not in !locks) ****",
            "1 push lock(s) with waiters; owners inferred from stacks",
            "FastMutex @ 0xffff800000005000    Owner ffff800000030000 (recorded in Owner)",
            "ffff800000040000  waiting 64 (0:00:00:01.000)",
            "1 fast/guarded mutex(es) with waiters",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }

    #[test]
    fn held_says_how_it_is_known() {
        let t = held(&[
            HeldLock {
                address: VirtAddr(0xffff8000_00003000),
                kind: "PushLock".into(),
                inferred: true,
                container: Some("pool block tagged Pshl at fffff800`00000000".into()),
                waiters: 3,
            },
            HeldLock {
                address: VirtAddr(0xffff8000_00005000),
                kind: "FastMutex".into(),
                inferred: false,
                container: None,
                waiters: 1,
            },
        ]);
        assert!(t.contains("Holds PushLock ffff800000003000 (pool block tagged Pshl at fffff800`00000000) with 3 waiter(s) (inferred from stacks)"), "{t}");
        assert!(t.contains("Owns FastMutex ffff800000005000 (container unknown) with 1 waiter(s) (recorded in Owner)"), "{t}");
    }
}
