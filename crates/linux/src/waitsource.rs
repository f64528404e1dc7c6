//! The Linux kernel as a source for the OS-neutral wait-for graph: tasks
//! as threads with their kernel stacks, the locks [`crate::waits`] found as resources (mutexes,
//! rw_semaphores, semaphores and userfaultfd waits as
//! `ResourceKind::Other`, since the schema's kinds are Windows's), their
//! owners and waiters as claims, and gaps where the task list could not be
//! read whole.

use crate::model::{LockInfo, TaskInfo, TaskState};
use crate::LinuxKernel;
use hangscope_waitgraph as wg;

fn state_of(t: &TaskInfo) -> wg::ThreadState {
    match (t.on_cpu, t.cpu, t.state) {
        (Some(true), Some(cpu), _) => wg::ThreadState::Running { cpu },
        (_, _, TaskState::Running) => wg::ThreadState::Ready,
        (_, _, TaskState::Dead | TaskState::Zombie | TaskState::Unknown(_)) => {
            wg::ThreadState::Other {
                name: format!("{:?}", t.state).to_lowercase(),
            }
        }
        _ => wg::ThreadState::Waiting,
    }
}

fn wait_reason(t: &TaskInfo) -> Option<String> {
    match t.state {
        TaskState::DiskSleep => Some("TASK_UNINTERRUPTIBLE".into()),
        TaskState::Sleeping => Some("TASK_INTERRUPTIBLE".into()),
        TaskState::Idle => Some("TASK_IDLE".into()),
        TaskState::Stopped | TaskState::TracingStop => Some("stopped".into()),
        _ => None,
    }
}

fn mode(m: &str) -> wg::Mode {
    if m == "read" {
        wg::Mode::Shared
    } else {
        wg::Mode::Exclusive
    }
}

fn resource(l: &LockInfo) -> wg::Resource {
    let mut name = match (&l.symbol, &l.protects) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(p)) => Some(p.clone()),
        _ => None,
    };
    // Readers found on the CPUs (crate::dirs) are an inference, not the
    // lock's record: the evidence says so wherever it names the lock.
    if l.kind == "rw_semaphore"
        && l.owner_note
            .as_deref()
            .is_some_and(|n| n.contains("inferred:"))
    {
        name = Some(match name {
            Some(n) => format!("{n}; readers inferred from the CPUs' stacks"),
            None => "readers inferred from the CPUs' stacks".into(),
        });
    }
    wg::Resource {
        key: l.address.0,
        kind: wg::ResourceKind::Other(l.kind.clone()),
        name,
        owners: l
            .owners
            .iter()
            .map(|o| wg::Claim {
                thread: o.task.0,
                mode: mode(&o.mode),
            })
            .collect(),
        waiters: l
            .waiters
            .iter()
            .map(|o| wg::Claim {
                thread: o.task.0,
                mode: mode(&o.mode),
            })
            .collect(),
        contention_count: None,
        warnings: l.warnings.iter().map(|w| w.message.clone()).collect(),
    }
}

impl LinuxKernel<'_> {
    /// Build the wait-for graph input: tasks, the locks sleeping tasks
    /// wait on, and the warnings met.
    pub fn wait_graph(&self) -> wg::WaitGraphInput {
        self.wait_graph_with(&self.waits())
    }

    /// [`LinuxKernel::wait_graph`] with the waits already found (so that
    /// a caller who also shows them reads them once).
    pub fn wait_graph_with(
        &self,
        waits: &crate::Result<crate::waits::Waits>,
    ) -> wg::WaitGraphInput {
        let mut inp = wg::WaitGraphInput::default();
        let tasks = match self.tasks() {
            Ok(t) => t,
            Err(e) => {
                inp.gaps.push(wg::Gap {
                    part: wg::ModelPart::Processes,
                    reason: e.to_string(),
                });
                return inp;
            }
        };
        if let Some(w) = tasks.warnings.first() {
            inp.gaps.push(wg::Gap {
                part: wg::ModelPart::Threads,
                reason: w.message.clone(),
            });
        }
        inp.warnings
            .extend(tasks.warnings.iter().map(|w| w.message.clone()));
        // Each task's kernel stack, for the evidence's frames. A walk that
        // fails leaves that task's stack empty; its warnings are the
        // `stacks` command's business, not the verdict's.
        let mut frames: std::collections::HashMap<u64, Vec<wg::Frame>> = self
            .stacks()
            .map(|s| {
                s.items
                    .into_iter()
                    .map(|t| (t.task.0, t.frames.iter().map(wg::Frame::from).collect()))
                    .collect()
            })
            .unwrap_or_default();
        for t in &tasks.items {
            if t.pid == t.tgid {
                inp.processes.push(wg::Process {
                    address: wg::Addr(t.task.0),
                    pid: t.tgid.max(0) as u64,
                    ppid: t.ppid.unwrap_or(0).max(0) as u64,
                    name: t.comm.clone(),
                    session: None,
                });
            }
            inp.threads.push(wg::Thread {
                key: t.task.0,
                tid: t.pid.max(0) as u64,
                pid: t.tgid.max(0) as u64,
                state: state_of(t),
                wait_reason: wait_reason(t),
                waited_seconds: t
                    .since_last_arrival_ns
                    .filter(|_| t.on_cpu != Some(true))
                    .map(|ns| ns as f64 / 1e9),
                waited_ticks: None,
                stack: frames.remove(&t.task.0).unwrap_or_default(),
                io: Vec::new(),
                warnings: Vec::new(),
                // Windows' wait mode; the Linux classes do not use it.
                user_mode_wait: false,
            });
        }
        match waits {
            Ok(w) => {
                if let Some(why) = &w.incomplete {
                    inp.gaps.push(wg::Gap {
                        part: wg::ModelPart::Waits,
                        reason: why.clone(),
                    });
                }
                // `waits` repeats the task list's warnings, met above.
                let met: std::collections::HashSet<String> = inp.warnings.iter().cloned().collect();
                for m in w.locks.warnings.iter().map(|w| &w.message) {
                    if !met.contains(m) {
                        inp.warnings.push(m.clone());
                    }
                }
                inp.resources = w.locks.items.iter().map(resource).collect();
                for l in &w.locks.items {
                    add_io_wait(&mut inp, l);
                }
                for d in &w.dirs {
                    add_dir(&mut inp, d);
                }
            }
            Err(e) => inp.gaps.push(wg::Gap {
                part: wg::ModelPart::Waits,
                reason: e.to_string(),
            }),
        }
        // A warning at a task's own address is about that task: a finding
        // whose evidence passes through it repeats it.
        let named = tasks
            .warnings
            .iter()
            .chain(waits.as_ref().map_or(&[][..], |w| &w.locks.warnings[..]));
        let index: std::collections::HashMap<u64, usize> = inp
            .threads
            .iter()
            .enumerate()
            .map(|(i, t)| (t.key, i))
            .collect();
        for w in named {
            let Some(&i) = w.address.and_then(|at| index.get(&at.0)) else {
                continue;
            };
            let t = &mut inp.threads[i];
            if !t.warnings.contains(&w.message) {
                t.warnings.push(w.message.clone());
            }
        }
        inp
    }
}

/// A page or buffer wait (`io_schedule`) as I/O its waiters wait on, at
/// the bottom of its stack: the page's file system or the buffer's block
/// device, as a Windows request pending at its bottom driver.
fn add_io_wait(inp: &mut wg::WaitGraphInput, l: &LockInfo) {
    let Some(io) = &l.io else { return };
    let device = io
        .device
        .clone()
        .unwrap_or_else(|| "an unknown device".into());
    for w in &l.waiters {
        let Some(t) = inp.threads.iter_mut().find(|t| t.key == w.task.0) else {
            continue;
        };
        t.io.push(wg::Io {
            irp: wg::Addr(l.address.0),
            major: Some(io.wait.clone()),
            driver: Some(device.clone()),
            file: io.file.clone(),
            device_stack: vec![device.clone()],
            at_bottom: true,
            ..wg::Io::default()
        });
    }
}

/// A contended directory in the graph: each file in its dcache as a file
/// with the processes holding it open, and each reader on a CPU inside its
/// walk doing that walk (a listing of `DIR/.`, the directory itself), with
/// its stack, so that the verdict reaches the directory from the lock's
/// owner as it reaches `\Windows\Temp` through an IRP on Windows.
fn add_dir(inp: &mut wg::WaitGraphInput, d: &crate::dirs::ContendedDir) {
    let base = d.path.trim_end_matches('/');
    for c in &d.children.files {
        let mut holders: Vec<u64> = d
            .child_holders
            .get(&c.dentry.0)
            .map(|h| h.iter().map(|&t| t.max(0) as u64).collect())
            .unwrap_or_default();
        holders.sort_unstable();
        inp.files.push(wg::File {
            address: wg::Addr(c.dentry.0),
            path: format!("{base}/{}", c.name),
            device: d.fs.clone(),
            holders,
        });
    }
    if d.children.incomplete {
        inp.warnings.push(format!(
            "directory {}: its dcache list was read only in part ({} files): {}",
            d.path,
            d.children.files.len(),
            d.children
                .warnings
                .first()
                .map_or("", |w| w.message.as_str())
        ));
    }
    for w in &d.walkers {
        let Some(t) = inp.threads.iter_mut().find(|t| t.key == w.task.0) else {
            continue;
        };
        t.stack = w.stack.iter().map(wg::Frame::from).collect();
        t.io.push(wg::Io {
            irp: wg::Addr(w.file.0),
            major: Some(format!("getdents64 ({})", w.frames.join(" > "))),
            driver: d.fs.clone(),
            file: Some(format!("{base}/.")),
            ..wg::Io::default()
        });
    }
}

impl wg::WaitSource for LinuxKernel<'_> {
    fn wait_graph_input(&self) -> wg::WaitGraphInput {
        self.wait_graph()
    }
}

impl LinuxKernel<'_> {
    /// The counters a series of dumps is compared with: the boot (banner,
    /// KASLR offset, boot time as the timekeeper's `offs_real - offs_boot`
    /// in `shadow_timekeeper`), the clock (jiffies and uptime), and each
    /// task's `nvcsw + nivcsw`, `utime` and `stime` (ns), `start_time` and
    /// `sched_info.last_arrival`. Fields are read by name; a field the
    /// kernel does not have is left unknown.
    pub fn progress(&self) -> wg::ProgressInput {
        let mut out = wg::ProgressInput::default();
        let info = self.info();
        out.clock = wg::Clock {
            ticks: info.jiffies,
            uptime_seconds: info.uptime_s.filter(|s| s.is_finite()),
        };
        let reader = self.reader();
        let boot_time = reader.as_ref().ok().and_then(|r| {
            let tk = r.object("timekeeper", self.symbol("shadow_timekeeper").ok()?);
            let real = tk.int("offs_real").ok()?;
            let boot = tk.int("offs_boot").ok()?;
            let ns = real.checked_sub(boot)?;
            (ns > 0).then(|| ns as f64 / 1e9)
        });
        out.boot = wg::BootIdentity {
            os: "linux".into(),
            kernel: info.banner.clone().or(info.release.clone()),
            kernel_base: info
                .kernel_offset
                .filter(|_| info.kernel_offset_known)
                .map(wg::Addr),
            boot_time_unix_seconds: boot_time,
        };
        let tasks = match self.tasks() {
            Ok(t) => t,
            Err(e) => {
                out.warnings.push(format!("tasks: {e}"));
                return out;
            }
        };
        let r = match reader {
            Ok(r) => r,
            Err(e) => {
                out.warnings.push(format!("task times: {e}"));
                return out;
            }
        };
        let ns = |v: Option<u64>| v.map(|x| x as f64 / 1e9);
        for t in &tasks.items {
            let task = r.object("task_struct", t.task);
            out.threads.push(wg::ThreadCounters {
                key: t.task.0,
                tid: t.pid.max(0) as u64,
                create_time: task.uint("start_time").ok(),
                context_switches: match (t.nvcsw, t.nivcsw) {
                    (Some(v), Some(i)) => v.checked_add(i),
                    _ => None,
                },
                kernel_seconds: ns(task.uint("stime").ok()),
                user_seconds: ns(task.uint("utime").ok()),
                wait_start: t.last_arrival_ns,
            });
        }
        out
    }
}

impl wg::ProgressSource for LinuxKernel<'_> {
    fn progress_input(&self) -> wg::ProgressInput {
        self.progress()
    }
}
