//! One task in depth (`thread PID|ADDR`): its state, the lock it waits on
//! with how long, the owners of that lock and what each is doing (running
//! on a CPU, or waiting on a lock of its own: a cycle when that lock is
//! the asked task's), the contended locks it holds, and its stack. And
//! the open files (`files`), through [`crate::files`].

use crate::error::{Error, Result};
use crate::files::FilesQuery;
use crate::model::{FilesReport, LockInfo, OwnerActivity, TaskDetail, TaskInfo};
use crate::LinuxKernel;
use hangscope_x64::VirtAddr;

/// Innermost frames shown for a lock's owner.
pub const OWNER_FRAMES: usize = 8;

/// Which task: by pid or by `struct task_struct` address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskTarget {
    /// The task with this pid (for pid 0, CPU 0's idle task).
    Pid(i64),
    /// The task at this address.
    Address(VirtAddr),
}

impl LinuxKernel<'_> {
    /// One task in depth; an error when no listed task matches.
    pub fn task_detail(&self, target: TaskTarget) -> Result<TaskDetail> {
        let tasks = self.tasks()?;
        let found = tasks.items.iter().find(|t| match target {
            TaskTarget::Pid(p) => i64::from(t.pid) == p,
            TaskTarget::Address(a) => t.task == a,
        });
        let Some(task) = found.cloned() else {
            return Err(match target {
                TaskTarget::Pid(p) => Error::not_found(format!(
                    "no task with pid {p} among the {} tasks listed",
                    tasks.items.len()
                )),
                TaskTarget::Address(a) => Error::not_found(format!(
                    "no task at {a} among the {} tasks listed (give a task_struct address or a pid)",
                    tasks.items.len()
                )),
            });
        };
        let mut out = TaskDetail {
            task,
            hung_task_seen_s: None,
            waits_on: None,
            owners: Vec::new(),
            holds: Vec::new(),
            notes: Vec::new(),
            stack: None,
            warnings: tasks.warnings.clone(),
        };
        let clock = self.info();
        out.hung_task_seen_s = match (out.task.last_switch_time, clock.jiffies, clock.hz) {
            (Some(l), Some(j), Some(hz)) if l != 0 && hz != 0 => {
                j.checked_sub(l).map(|d| d as f64 / hz as f64)
            }
            _ => None,
        };
        let stacks = match self.stacks() {
            Ok(s) => s.items,
            Err(e) => {
                out.warnings.push(crate::warning(&e));
                Vec::new()
            }
        };
        let me = out.task.task;
        out.stack = stacks.iter().find(|s| s.task == me).cloned();
        let waits = match self.waits() {
            Ok(w) => w,
            Err(e) => {
                out.warnings.push(crate::warning(&e));
                return Ok(out);
            }
        };
        let lock_of = |t: VirtAddr| -> Option<&LockInfo> {
            let a = waits.waiting_on.get(&t.0)?;
            waits.locks.items.iter().find(|l| l.address.0 == *a)
        };
        out.waits_on = lock_of(me).cloned();
        out.holds = waits
            .locks
            .items
            .iter()
            .filter(|l| l.owners.iter().any(|o| o.task == me))
            .cloned()
            .collect();
        let pid_tag = format!("pid {} (", out.task.pid);
        out.notes = waits
            .notes
            .iter()
            .filter(|n| n.starts_with(&pid_tag))
            .cloned()
            .collect();
        let running = self.running().map(|r| r.items).unwrap_or_default();
        if let Some(lock) = &out.waits_on {
            for o in &lock.owners {
                let info: Option<&TaskInfo> = tasks.items.iter().find(|t| t.task == o.task);
                let theirs = lock_of(o.task);
                out.owners.push(OwnerActivity {
                    task: o.task,
                    pid: o.pid,
                    comm: o.comm.clone(),
                    mode: o.mode.clone(),
                    state: info.map(|t| t.state),
                    running_on: running
                        .iter()
                        .find(|c| c.task == Some(o.task))
                        .map(|c| c.cpu),
                    since_last_arrival_ns: info.and_then(|t| t.since_last_arrival_ns),
                    waits_on: theirs.map(|l| l.address),
                    waits_on_label: theirs.map(label),
                    waits_on_asked_task: theirs
                        .is_some_and(|l| l.owners.iter().any(|x| x.task == me)),
                    frames: stacks
                        .iter()
                        .find(|s| s.task == o.task)
                        .map(|s| s.frames.iter().take(OWNER_FRAMES).cloned().collect())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// Open files: every file table, one task's (`query.pid`), or only
    /// files under `query.path` with who holds them.
    pub fn files(&self, query: &FilesQuery) -> Result<FilesReport> {
        let tasks = self.tasks()?;
        let mut out = crate::files::files(&self.reader()?, &tasks.items, query);
        if let Some(pid) = query.pid {
            if out.tables.is_empty() && out.warnings.is_empty() {
                let exists = tasks
                    .items
                    .iter()
                    .any(|t| i64::from(t.pid) == pid || i64::from(t.tgid) == pid);
                if !exists {
                    return Err(Error::not_found(format!(
                        "no task with pid {pid} among the {} tasks listed",
                        tasks.items.len()
                    )));
                }
            }
        }
        out.warnings.splice(0..0, tasks.warnings);
        Ok(out)
    }
}

/// `mutex hangdemo_lock_a`, `rw_semaphore (inode.i_rwsem ... of PATH)`.
pub fn label(l: &LockInfo) -> String {
    match (&l.symbol, &l.protects) {
        (Some(s), _) => format!("{} {s}", l.kind),
        (None, Some(p)) => format!("{} ({p})", l.kind),
        _ => format!("{} {}", l.kind, l.address),
    }
}
