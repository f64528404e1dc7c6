//! Tasks: every thread of every process, from `init_task.tasks` and each
//! thread group, with the state letter `ps` would show.
//!
//! Version probes (by field name, cached): `task_struct.__state` (5.14+)
//! or `.state`; `thread_info.cpu` (x86 since 5.16) or `task_struct.cpu`;
//! thread groups through `signal->thread_head`/`thread_node` (3.14+; the
//! only way since 6.7) or the older `thread_group` ring.

use crate::error::{Error, Result};
use crate::model::{Partial, TaskInfo, TaskState};
use crate::time::PerCpu;
use crate::view::{Env, Object, Reader};
use crate::warning;
use hangscope_x64::VirtAddr;
use std::sync::OnceLock;

/// Most processes walked, and most tasks listed in all (`PID_MAX_LIMIT`
/// is 4 Mi; a hung guest has far fewer).
pub const MAX_TASKS: usize = 1 << 22;
/// Most threads in one group.
pub const MAX_THREADS: usize = 1 << 20;

/// `PF_KTHREAD` in `task_struct.flags`: the task is a kernel thread
/// (include/linux/sched.h, unchanged since 2.6.27).
pub const PF_KTHREAD: u64 = 0x0020_0000;
/// `TASK_UNINTERRUPTIBLE` (unchanged since the first Linux).
const TASK_UNINTERRUPTIBLE: u64 = 0x2;
/// `TASK_NOLOAD` (4.2+): with TASK_UNINTERRUPTIBLE it makes `TASK_IDLE`.
const TASK_NOLOAD: u64 = 0x400;
/// `TASK_RTLOCK_WAIT` (5.15+): a sleeping spinlock wait on PREEMPT_RT,
/// reported as uninterruptible.
const TASK_RTLOCK_WAIT: u64 = 0x1000;
/// Every state bit any kernel has defined lies below this: 6.1's
/// `TASK_STATE_MAX` is 0x10000 (after `TASK_FROZEN`), older kernels' lower.
const STATE_BITS_END: u64 = 0x1_0000;
/// The letters of the kernel's `task_state_array` (fs/proc/array.c) of
/// 4.14 and later, used when the array itself cannot be read.
const DEFAULT_LETTERS: &str = "RSDTtXZPI";

/// Which fields this kernel has, probed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLayout {
    /// `__state` or `state`.
    pub state_field: &'static str,
    /// `thread_info.cpu`, `cpu`, or none (uniprocessor builds).
    pub cpu_field: Option<&'static str>,
    /// Thread groups through `signal->thread_head` (else `thread_group`).
    pub thread_head: bool,
    /// The letters of `task_state_array`, one per state index.
    pub letters: Vec<char>,
}

/// Per-kernel caches of this module.
#[derive(Debug, Default)]
pub struct Cache {
    layout: OnceLock<std::result::Result<TaskLayout, Error>>,
    /// The task list, read once per kernel: `analyze` asks for it from
    /// the waits, the stacks and the wait graph.
    pub(crate) listing: OnceLock<Result<Partial<TaskInfo>>>,
    /// The module list, read once per kernel.
    pub(crate) modules: OnceLock<Result<Partial<crate::model::ModuleInfo>>>,
    /// Every task's stack, unwound once per kernel (the wait graph's
    /// evidence and `thread` both show them).
    pub(crate) stacks: OnceLock<Result<Partial<crate::model::TaskStack>>>,
}

impl TaskLayout {
    fn probe(env: &Env<'_>) -> Result<TaskLayout> {
        let r = &env.r;
        let state_field = if r.has_field("task_struct", "__state") {
            "__state"
        } else if r.has_field("task_struct", "state") {
            "state"
        } else {
            return Err(Error::missing("task_struct", Some("__state")));
        };
        let cpu_field = if r.has_field("task_struct", "thread_info.cpu") {
            Some("thread_info.cpu")
        } else if r.has_field("task_struct", "cpu") {
            Some("cpu")
        } else {
            None
        };
        let thread_head = r.has_field("signal_struct", "thread_head")
            && r.has_field("task_struct", "thread_node");
        if !thread_head && !r.has_field("task_struct", "thread_group") {
            return Err(Error::missing("task_struct", Some("thread_node")));
        }
        Ok(TaskLayout {
            state_field,
            cpu_field,
            thread_head,
            letters: read_state_letters(env).unwrap_or_else(|| DEFAULT_LETTERS.chars().collect()),
        })
    }

    /// The `ps` state of a task from its raw state and exit state, as the
    /// kernel's `task_state_index()` computes it: the report bits are one
    /// per letter after `R`, `TASK_IDLE` gets the last letter (`I`) when
    /// the array has it, and an RT-lock wait shows as `D`.
    pub fn state(&self, raw: u64, exit_state: u64) -> TaskState {
        let n = self.letters.len();
        let has_idle = self.letters.last() == Some(&'I');
        // Bits with a letter of their own (all but R and, if present, I).
        let report_bits = n.saturating_sub(1 + usize::from(has_idle)).min(32);
        let report = (1u64 << report_bits) - 1;
        let mut s = (raw | exit_state) & report;
        let idle = TASK_UNINTERRUPTIBLE | TASK_NOLOAD;
        if has_idle && raw & idle == idle {
            s = report + 1;
        }
        if raw & TASK_RTLOCK_WAIT != 0 && report_bits > 2 {
            s = TASK_UNINTERRUPTIBLE;
        }
        let index = 64 - s.leading_zeros();
        match self.letters.get(index as usize) {
            Some(&c) => TaskState::from_letter(c, index),
            None => TaskState::Unknown(index),
        }
    }
}

/// The first letters of the kernel's `task_state_array` strings
/// ("R (running)", "S (sleeping)", ...), read until an entry is not such a
/// string; `None` when the array is not in kallsyms or unreadable.
fn read_state_letters(env: &Env<'_>) -> Option<Vec<char>> {
    let base = env.kallsyms.get("task_state_array")?;
    let mem = env.r.mem;
    let mut letters = Vec::new();
    for i in 0..16u64 {
        let Ok(p) = mem.read_u64(VirtAddr(base + i * 8)) else {
            break;
        };
        let Ok(s) = mem.read_cstr(VirtAddr(p), 32) else {
            break;
        };
        // "X (word)".
        if s.len() < 5 || s[1] != b' ' || s[2] != b'(' || s.last() != Some(&b')') {
            break;
        }
        letters.push(s[0] as char);
    }
    (letters.len() >= 7 && letters[0] == 'R').then_some(letters)
}

/// Each CPU's runqueue clock (`runqueues.clock`), ns.
fn rq_clocks(env: &Env<'_>, pc: Option<&PerCpu>) -> Vec<Option<u64>> {
    let r = &env.r;
    let (Some(pc), Some(rq)) = (pc, env.kallsyms.get("runqueues")) else {
        return Vec::new();
    };
    (0..pc.offsets.len() as u32)
        .map(|cpu| {
            let a = pc.addr(rq, cpu)?;
            r.object("rq", a).uint("clock").ok()
        })
        .collect()
}

/// The idle tasks of CPUs other than 0 (`runqueues.idle`), which are on
/// no list.
fn idle_tasks(env: &Env<'_>, pc: Option<&PerCpu>, init: VirtAddr) -> Vec<VirtAddr> {
    let r = &env.r;
    let (Some(pc), Some(rq)) = (pc, env.kallsyms.get("runqueues")) else {
        return Vec::new();
    };
    (0..pc.offsets.len() as u32)
        .filter_map(|cpu| {
            let a = pc.addr(rq, cpu)?;
            let t = r.object("rq", a).ptr("idle").ok()?;
            (t.0 != 0 && t != init).then_some(t)
        })
        .collect()
}

/// Each CPU's runqueue: its current task, clock and queue length.
pub fn cpus(env: &Env<'_>) -> Result<Partial<crate::model::CpuInfo>> {
    let r = env.r;
    let pc = PerCpu::read(r.mem, env.kallsyms)
        .ok_or_else(|| Error::missing_symbol("__per_cpu_offset"))?;
    let rq_sym = env.symbol("runqueues")?.0;
    let mut out = Partial::default();
    for cpu in 0..pc.offsets.len() as u32 {
        let Some(rq_addr) = pc.addr(rq_sym, cpu) else {
            continue;
        };
        let rq = r.object("rq", rq_addr);
        let current = match rq.ptr("curr") {
            Ok(c) => Some(c),
            Err(e) => {
                out.warnings.push(warning(&e));
                None
            }
        };
        let task = current
            .filter(|c| c.0 != 0)
            .map(|c| r.object("task_struct", c));
        out.items.push(crate::model::CpuInfo {
            cpu,
            runqueue: rq_addr,
            current,
            current_pid: task.and_then(|t| t.int("pid").ok()).map(|p| p as i32),
            current_comm: task.and_then(|t| t.char_array("comm").ok()),
            clock_ns: rq.uint("clock").ok(),
            nr_running: rq.uint("nr_running").ok(),
        });
    }
    Ok(out)
}

/// Every task.
pub fn tasks(env: &Env<'_>, cache: &Cache) -> Result<Partial<TaskInfo>> {
    let r = env.r;
    let layout = cache
        .layout
        .get_or_init(|| TaskLayout::probe(env))
        .clone()?;
    let init = env.symbol("init_task")?;
    let pc = PerCpu::read(r.mem, env.kallsyms);
    let clocks = rq_clocks(env, pc.as_ref());
    let mut out = Partial::default();
    let push =
        |addr: VirtAddr, out: &mut Partial<TaskInfo>| match read_task(&r, &layout, addr, &clocks) {
            Ok(t) => {
                check_task(&r, &t, &mut out.warnings);
                out.items.push(t)
            }
            Err(e) => out.warnings.push(warning(&e)),
        };
    push(init, &mut out);
    for idle in idle_tasks(env, pc.as_ref(), init) {
        push(idle, &mut out);
    }
    let head = r.object("task_struct", init).field_addr("tasks")?;
    let listed_before = out.items.len();
    for leader in r.iter_list(head, "task_struct", "tasks", MAX_TASKS)? {
        let leader = match leader {
            Ok(l) => l,
            Err(e) => {
                out.warnings.push(warning(&e));
                break;
            }
        };
        match threads(&r, &layout, leader) {
            Ok(iter) => {
                for t in iter {
                    if out.items.len() >= MAX_TASKS {
                        out.warnings.push(warning(&Error::bad_data(
                            leader,
                            format!("more than {MAX_TASKS} tasks: the rest are not listed"),
                        )));
                        return Ok(out);
                    }
                    match t {
                        Ok(t) => push(t, &mut out),
                        Err(e) => {
                            out.warnings.push(warning(&e));
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                out.warnings.push(warning(&e));
                push(leader, &mut out);
            }
        }
    }
    check_count(env, head, out.items.len() - listed_before, &mut out);
    Ok(out)
}

/// Signs that a task's own record is damaged: state bits no kernel has,
/// or no kernel stack on a task that has not exited (only exit gives a
/// task's stack back).
fn check_task(r: &Reader<'_>, t: &TaskInfo, warnings: &mut Vec<crate::model::Warning>) {
    if t.raw_state >= STATE_BITS_END {
        warnings.push(warning(&Error::bad_data(
            t.task,
            format!(
                "task pid {} ({:?}) has state {:#x}, with bits no kernel state has (all lie \
                 below {STATE_BITS_END:#x}): its task_struct is damaged, and the {} shown is \
                 not to be trusted",
                t.pid,
                t.comm,
                t.raw_state,
                t.state.letter()
            ),
        )));
    }
    let stack = r.object("task_struct", t.task).ptr("stack");
    if stack.is_ok_and(|s| s.0 == 0) && t.exit_state == 0 {
        warnings.push(warning(&Error::bad_data(
            t.task,
            format!(
                "task pid {} ({:?}) has no kernel stack (`stack` is NULL) but has not exited: \
                 its task_struct is damaged, and its state and wait are not to be trusted",
                t.pid, t.comm
            ),
        )));
    }
}

/// The kernel counts its threads in `nr_threads` (every task `fork`
/// made and `exit` has not yet unhashed, under `tasklist_lock` as the
/// lists change): a list that holds another number was cut or fed by
/// damage, which a self-linked `init_task.tasks` or a link into another
/// list would otherwise hide. `listed` counts the tasks found on the lists
/// (neither `init_task` nor the idle tasks, which `nr_threads` leaves out).
fn check_count(env: &Env<'_>, head: VirtAddr, listed: usize, out: &mut Partial<TaskInfo>) {
    let Some(at) = env.kallsyms.get("nr_threads") else {
        return;
    };
    // `int nr_threads` (kernel/fork.c).
    let Ok(counted) = env.r.read_uint(VirtAddr(at), 4) else {
        return;
    };
    if counted as usize != listed {
        out.warnings.push(warning(&Error::bad_data(
            head,
            format!(
                "the task list from init_task.tasks lists {listed} task(s), but the kernel's \
                 nr_threads counts {counted}: the list is cut short or leads elsewhere"
            ),
        )));
    }
}

/// The threads of the group `leader` leads, the leader included.
fn threads<'a>(
    r: &Reader<'a>,
    layout: &TaskLayout,
    leader: VirtAddr,
) -> Result<Box<dyn Iterator<Item = Result<VirtAddr>> + 'a>> {
    let t = r.object("task_struct", leader);
    if layout.thread_head {
        let signal = t.deref("signal", "signal_struct")?;
        let head = signal.field_addr("thread_head")?;
        Ok(Box::new(r.iter_list(
            head,
            "task_struct",
            "thread_node",
            MAX_THREADS,
        )?))
    } else {
        let head = t.field_addr("thread_group")?;
        let rest = r.iter_list(head, "task_struct", "thread_group", MAX_THREADS)?;
        Ok(Box::new(std::iter::once(Ok(leader)).chain(rest)))
    }
}

fn read_task(
    r: &Reader<'_>,
    layout: &TaskLayout,
    addr: VirtAddr,
    clocks: &[Option<u64>],
) -> Result<TaskInfo> {
    let t: Object<'_> = r.object("task_struct", addr);
    let pid = t.int("pid")? as i32;
    let tgid = t.int("tgid")? as i32;
    let comm = t.char_array("comm")?;
    let raw_state = t.uint(layout.state_field)?;
    let exit_state = t.uint("exit_state").unwrap_or(0);
    let flags = t.uint("flags")?;
    let ppid = t
        .deref("real_parent", "task_struct")
        .and_then(|p| p.int("tgid"))
        .ok()
        .map(|v| v as i32);
    let cpu = layout
        .cpu_field
        .and_then(|f| t.uint(f).ok())
        .map(|c| c as u32);
    let last_arrival = t.uint("sched_info.last_arrival").ok();
    let since = match (cpu, last_arrival) {
        (Some(c), Some(la)) => clocks
            .get(c as usize)
            .copied()
            .flatten()
            .and_then(|clock| clock.checked_sub(la)),
        _ => None,
    };
    Ok(TaskInfo {
        task: addr,
        pid,
        tgid,
        ppid,
        comm,
        state: layout.state(raw_state, exit_state),
        raw_state,
        exit_state,
        kernel_thread: flags & PF_KTHREAD != 0,
        cpu,
        on_cpu: t.uint("on_cpu").ok().map(|v| v != 0),
        last_arrival_ns: last_arrival,
        since_last_arrival_ns: since,
        nvcsw: t.uint("nvcsw").ok(),
        nivcsw: t.uint("nivcsw").ok(),
        last_switch_time: t.uint("last_switch_time").ok(),
        last_switch_count: t.uint("last_switch_count").ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> TaskLayout {
        TaskLayout {
            state_field: "__state",
            cpu_field: Some("thread_info.cpu"),
            thread_head: true,
            letters: DEFAULT_LETTERS.chars().collect(),
        }
    }

    #[test]
    fn state_letters_as_ps_shows_them() {
        let l = layout();
        let c = |raw, exit| l.state(raw, exit).letter();
        assert_eq!(c(0x0, 0), 'R');
        assert_eq!(c(0x1, 0), 'S');
        assert_eq!(c(0x2001, 0), 'S'); // freezable sleep
        assert_eq!(c(0x2, 0), 'D');
        assert_eq!(c(0x102, 0), 'D'); // TASK_KILLABLE
        assert_eq!(c(0x2102, 0), 'D'); // killable, freezable (vfork)
        assert_eq!(c(0x402, 0), 'I'); // TASK_IDLE
        assert_eq!(c(0x4, 0), 'T');
        assert_eq!(c(0x8, 0), 't');
        assert_eq!(c(0x80, 0x20), 'Z'); // TASK_DEAD, EXIT_ZOMBIE
        assert_eq!(c(0x80, 0x10), 'X');
        assert_eq!(c(0x40, 0), 'P');
        assert_eq!(c(0x1000, 0), 'D'); // RT lock wait
                                       // An older kernel's array without 'I' (before 4.14).
        let old = TaskLayout {
            letters: "RSDTtXZ".chars().collect(),
            ..layout()
        };
        assert_eq!(old.state(0x402, 0).letter(), 'D');
        assert_eq!(old.state(0x20, 0).letter(), 'Z');
        assert_eq!(old.state(0x40, 0), TaskState::Running);
    }

    use crate::synth::{self, Process};
    use crate::view::{Env, Reader};

    fn procs() -> Vec<Process> {
        vec![
            Process {
                threads: vec![(1, "init", 0x1, 1)],
                kthread: false,
            },
            Process {
                threads: vec![(2, "kthreadd", 0x402, 0)],
                kthread: true,
            },
            Process {
                threads: vec![(94, "uffd-writer", 0x1, 1), (96, "uffd-handler", 0x2, 0)],
                kthread: false,
            },
        ]
    }

    fn walk(k: &synth::SynthKernel) -> Result<Partial<TaskInfo>> {
        let env = Env {
            r: Reader {
                mem: &k.mem,
                types: &k.types,
            },
            kallsyms: &k.kallsyms,
            kernel_offset: 0,
        };
        tasks(&env, &Cache::default())
    }

    #[test]
    fn synthetic_kernel_walks_processes_and_threads() {
        let k = synth::build(&procs());
        let p = walk(&k).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let got: Vec<_> = p
            .items
            .iter()
            .map(|t| {
                (
                    t.pid,
                    t.tgid,
                    t.comm.as_str(),
                    t.state.letter(),
                    t.cpu,
                    t.kernel_thread,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, "swapper/0", 'R', Some(0), true),
                (0, 0, "swapper/1", 'R', Some(1), true),
                (1, 1, "init", 'S', Some(1), false),
                (2, 2, "kthreadd", 'I', Some(0), true),
                (94, 94, "uffd-writer", 'S', Some(1), false),
                (96, 94, "uffd-handler", 'D', Some(0), false),
            ]
        );
        let h = &p.items[5];
        assert_eq!(h.ppid, Some(0));
        assert_eq!(h.since_last_arrival_ns, Some(4_000_000_000));
        assert_eq!((h.nvcsw, h.nivcsw), (Some(7), Some(3)));
    }

    #[test]
    fn a_list_that_looks_whole_but_misses_tasks_is_named() {
        // A self-linked head is a well-formed empty list: only the
        // kernel's count of its threads tells the tasks are missing.
        let mut k = synth::build(&procs());
        let head = synth::tasks_link(synth::INIT_TASK);
        k.mem.write_u64(head, head);
        k.mem.write_u64(head + 8, head);
        let p = walk(&k).unwrap();
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(
            p.warnings[0].message.contains("nr_threads"),
            "{:?}",
            p.warnings
        );
        assert_eq!(p.warnings[0].address, Some(VirtAddr(head)));
        // A live task without a stack, or with state bits no kernel has,
        // is a damaged task_struct.
        let mut k = synth::build(&procs());
        k.mem.write_u64(k.tasks[2] + synth::T_STACK, 0);
        k.mem.write_u32(k.tasks[3] + synth::T_STATE, 0xdead_beef);
        let p = walk(&k).unwrap();
        let named = |t: u64, what: &str| {
            p.warnings
                .iter()
                .any(|w| w.address == Some(VirtAddr(t)) && w.message.contains(what))
        };
        assert!(named(k.tasks[2], "no kernel stack"), "{:?}", p.warnings);
        assert!(named(k.tasks[3], "0xdeadbeef"), "{:?}", p.warnings);
    }

    #[test]
    fn damaged_lists_end_with_a_warning_naming_the_link() {
        // A task list that loops back to its second entry.
        let mut k = synth::build(&procs());
        let second = synth::tasks_link(k.tasks[2]);
        let third = synth::tasks_link(k.tasks[3]);
        use hangscope_x64::SparseMemory;
        let set_next = |m: &mut SparseMemory, node: u64, to: u64| m.write_u64(node + 8, to);
        set_next(&mut k.mem, third, second);
        let p = walk(&k).unwrap();
        // (Every task was met before the loop: the count agrees.)
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        // At the damaged link, not at the sound entry it leads back to.
        assert_eq!(p.warnings[0].address, Some(VirtAddr(third)));
        assert!(p.items.iter().any(|t| t.pid == 2));
        // A broken back link.
        let mut k = synth::build(&procs());
        k.mem
            .write_u64(synth::tasks_link(k.tasks[2]), 0xffff_8880_dead_0000);
        let p = walk(&k).unwrap();
        assert!(
            p.warnings.iter().any(|w| w.message.contains("prev")),
            "{:?}",
            p.warnings
        );
        assert!(p.items.iter().any(|t| t.pid == 1));
        // A link into unmapped memory.
        let mut k = synth::build(&procs());
        set_next(
            &mut k.mem,
            synth::tasks_link(k.tasks[1]),
            0xffff_8880_7000_0000,
        );
        let p = walk(&k).unwrap();
        // The break, then the count the tasks after it are missing from.
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(
            p.warnings[1].message.contains("nr_threads"),
            "{:?}",
            p.warnings
        );
        // The synthetic list_head keeps next at offset 8: the read that
        // faults is the bad entry's own forward link, read first (the
        // walk x64 shares with the Windows model).
        assert_eq!(p.warnings[0].address, Some(VirtAddr(0xffff_8880_7000_0008)));
        assert!(
            p.warnings[0].message.contains("cannot read"),
            "{:?}",
            p.warnings
        );
    }
}
