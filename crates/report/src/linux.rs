//! Text for the Linux kernel model's listings, shaped as the tools a Linux
//! on-call engineer already reads: `ps` (and crash's `ps`), `lsmod`,
//! `dmesg`. The verdict renderers serve both kernels; this module is the
//! Linux counterpart of [`crate::windbg`].

use hangscope_linux::{
    CpuMode, DmesgRecord, FilesReport, KernelInfo, LockInfo, LockTask, ModuleInfo, Partial,
    RunningCpu, StackEnd, TaskDetail, TaskInfo, TaskStack, Warning,
};
use hangscope_x64::view::DtOutput;
use std::fmt::Write;

/// An address as crash prints it: 16 hex digits.
fn addr(a: u64) -> String {
    format!("{a:016x}")
}

fn warnings(out: &mut String, w: &[Warning]) {
    if w.is_empty() {
        return;
    }
    let _ = writeln!(out);
    for x in w {
        let _ = writeln!(out, "WARNING: {x}");
    }
}

/// A task's command as `ps` shows it: kernel threads in brackets.
fn command(t: &TaskInfo) -> String {
    if t.kernel_thread {
        format!("[{}]", t.comm)
    } else {
        t.comm.clone()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

/// Seconds with one decimal, from nanoseconds.
fn seconds_ns(ns: Option<u64>) -> String {
    ns.map(|n| format!("{:.1}", n as f64 / 1e9))
        .unwrap_or_else(|| "?".into())
}

/// How long ago the hung-task detector last saw the task switch, from its
/// `last_switch_time` (jiffies); `-` when it never looked (0), as for
/// tasks it does not watch.
fn hung_task_seen(t: &TaskInfo, jiffies: Option<u64>, hz: Option<u64>) -> String {
    match (t.last_switch_time, jiffies, hz) {
        (Some(0), ..) => "-".into(),
        (Some(at), Some(now), Some(hz)) if hz > 0 && now >= at => {
            format!("{:.1}", (now - at) as f64 / hz as f64)
        }
        (None, ..) => "?".into(),
        _ => "?".into(),
    }
}

/// `info`: the Linux kernel found.
pub fn kernel_info(i: &KernelInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Linux {} x86_64 ({} CPUs)",
        i.release.as_deref().unwrap_or("(release unknown)"),
        opt(i.cpu_count)
    );
    if let Some(b) = &i.banner {
        let _ = writeln!(s, "{b}");
    }
    if let Some(id) = &i.build_id {
        let _ = writeln!(s, "Build ID: {id}");
    }
    match i.kernel_offset {
        Some(o) => {
            let how = if i.kernel_offset_known {
                ""
            } else {
                " (assumed: the default link address)"
            };
            let _ = writeln!(s, "KASLR offset: {o:#x}{how}");
        }
        None => {
            let _ = writeln!(s, "KASLR offset: unknown");
        }
    }
    let _ = writeln!(
        s,
        "Page tables: {:#x} ({}), {}-level paging",
        i.page_table_root, i.page_table_source, i.paging_levels
    );
    if let Some(d) = i.direct_map_base {
        let _ = writeln!(s, "Direct map: {}", addr(d.0));
    }
    if let Some(v) = i.vmemmap_base {
        let _ = writeln!(s, "vmemmap: {}", addr(v.0));
    }
    let _ = writeln!(
        s,
        "VMCOREINFO: {}   kallsyms: {} symbols",
        if i.vmcoreinfo { "used" } else { "none" },
        i.kallsyms_count
    );
    match (&i.types_source, &i.types_error) {
        (Some(src), _) => {
            let _ = writeln!(s, "Types: {src}");
        }
        (None, Some(e)) => {
            let _ = writeln!(s, "Types: none: {e}");
        }
        (None, None) => {
            let _ = writeln!(s, "Types: none");
        }
    }
    let _ = writeln!(
        s,
        "jiffies: {}   HZ: {}   uptime: {}",
        opt(i.jiffies),
        opt(i.hz),
        i.uptime_s
            .map(|u| format!("{u:.1} s"))
            .unwrap_or_else(|| "?".into())
    );
    for d in &i.discovery {
        let _ = writeln!(s, "  found: {d}");
    }
    s
}

/// `ps`: one line per process (thread-group leader), as crash's `ps`
/// shows them, with the number of threads.
pub fn ps_table(p: &Partial<TaskInfo>) -> String {
    let mut s = format!(
        "{:>7} {:>7} {:>4} {:<16} {:>2} {:>7}  {}\n",
        "PID", "PPID", "CPU", "TASK", "ST", "THREADS", "COMM"
    );
    for t in p.items.iter().filter(|t| t.pid == t.tgid) {
        let threads = p.items.iter().filter(|x| x.tgid == t.tgid).count();
        let _ = writeln!(
            s,
            "{:>7} {:>7} {:>4} {:<16} {:>2} {:>7}  {}",
            t.pid,
            opt(t.ppid),
            opt(t.cpu),
            addr(t.task.0),
            t.state.letter(),
            threads,
            command(t)
        );
    }
    warnings(&mut s, &p.warnings);
    s
}

/// `threads`: one line per task with the scheduler's and the hung-task
/// detector's view: on a CPU now, how long since it last got one, context
/// switches, and how long since the detector last saw it switch.
pub fn threads_table(
    tasks: &[&TaskInfo],
    w: &[Warning],
    jiffies: Option<u64>,
    hz: Option<u64>,
) -> String {
    let mut s = format!(
        "{:<16} {:>7} {:>7} {:>7} {:>2} {:>4} {:>3} {:>9} {:>8} {:>8} {:>9}  {}\n",
        "TASK",
        "PID",
        "TGID",
        "PPID",
        "ST",
        "CPU",
        "RUN",
        "LAST-RUN",
        "NVCSW",
        "NIVCSW",
        "HUNG-SEEN",
        "COMM"
    );
    for t in tasks {
        let _ = writeln!(
            s,
            "{:<16} {:>7} {:>7} {:>7} {:>2} {:>4} {:>3} {:>9} {:>8} {:>8} {:>9}  {}",
            addr(t.task.0),
            t.pid,
            t.tgid,
            opt(t.ppid),
            t.state.letter(),
            opt(t.cpu),
            match t.on_cpu {
                Some(true) => "yes",
                Some(false) => "",
                None => "?",
            },
            seconds_ns(t.since_last_arrival_ns),
            opt(t.nvcsw),
            opt(t.nivcsw),
            hung_task_seen(t, jiffies, hz),
            command(t)
        );
    }
    s.push_str("\nLAST-RUN: seconds since the task last got a CPU (its runqueue's clock); HUNG-SEEN: seconds since\nthe hung-task detector last saw it switch (- : not watched).\n");
    warnings(&mut s, w);
    s
}

/// `lm`: loaded modules, as `lsmod` with their addresses.
pub fn module_list(m: &Partial<ModuleInfo>) -> String {
    let mut s = format!(
        "{:<16} {:<16} {:>9} {:>8}  {}\n",
        "MODULE", "BASE", "SIZE", "SYMBOLS", "NAME"
    );
    for x in &m.items {
        let _ = writeln!(
            s,
            "{:<16} {:<16} {:>9} {:>8}  {}",
            addr(x.module.0),
            x.base.map(|b| addr(b.0)).unwrap_or_else(|| "?".into()),
            opt(x.size),
            opt(x.symbol_count),
            x.name
        );
    }
    warnings(&mut s, &m.warnings);
    s
}

/// `dt`: a structure as crash's `struct` command shows it, each field at
/// its offset with its C type and value.
pub fn dt(d: &DtOutput) -> String {
    let mut s = format!(
        "{} @ {} (size {:#x})\n",
        d.type_name,
        addr(d.address.0),
        d.size
    );
    let width = d
        .fields
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0)
        .max(12);
    for f in &d.fields {
        let value = if let Some(e) = &f.error {
            format!("?? ({e})")
        } else if let Some(t) = &f.text {
            t.clone()
        } else if let Some(v) = f.value {
            match f.bits {
                Some((_, len)) => format!("{v} (0y{v:0width$b})", width = len as usize),
                None if f.type_name.ends_with('*') => format!("0x{}", addr(v)),
                None => format!("{v:#x} ({v})"),
            }
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  [{:#06x}] {:<width$}  {:<28} {value}",
            f.offset, f.name, f.type_name
        );
    }
    s
}

/// `dmesg`: the printk records as `dmesg` prints them, the last `tail`
/// records when asked.
pub fn dmesg(d: &Partial<DmesgRecord>, tail: Option<usize>) -> String {
    let skip = tail.map_or(0, |n| d.items.len().saturating_sub(n));
    let mut s = String::new();
    for r in d.items.iter().skip(skip) {
        for l in r.lines() {
            let _ = writeln!(s, "{l}");
        }
    }
    warnings(&mut s, &d.warnings);
    s
}

/// Why a walk stopped, when it is worth a line.
fn stack_end(end: &StackEnd) -> Option<&'static str> {
    match end {
        StackEnd::EndOfStack => None,
        StackEnd::UserMode => Some("(user mode above: the kernel stack ends here)"),
        StackEnd::Error => Some("(stack incomplete)"),
        StackEnd::DepthLimit => Some("(stopped at the depth limit)"),
        StackEnd::NotWalked => Some("(not walked)"),
    }
}

/// `stacks` on Linux: identical kernel stacks grouped, largest group
/// first; each group lists its tasks (`pid task comm state`) then its
/// frames (`function+0xoff [module]`), innermost first.
pub fn stacks(s: &Partial<TaskStack>) -> String {
    let mut groups: Vec<(Vec<String>, Vec<&TaskStack>)> = Vec::new();
    for t in &s.items {
        let frames: Vec<String> = t.frames.iter().map(|f| f.to_string()).collect();
        match groups.iter_mut().find(|(f, _)| *f == frames) {
            Some((_, ts)) => ts.push(t),
            None => groups.push((frames, vec![t])),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    let incomplete = s
        .items
        .iter()
        .filter(|t| matches!(t.end, StackEnd::Error | StackEnd::DepthLimit))
        .count();
    let mut out = format!(
        "{} tasks, {} distinct stacks, {} incomplete\n",
        s.items.len(),
        groups.len(),
        incomplete
    );
    for (i, (frames, tasks)) in groups.iter().enumerate() {
        let n = tasks.len();
        let _ = writeln!(
            out,
            "\n[{}] {n} task{}:",
            i + 1,
            if n == 1 { "" } else { "s" }
        );
        let _ = writeln!(out, "   {:>7}  {:<16}  {:<16} ST", "PID", "TASK", "COMM");
        for t in tasks {
            let _ = writeln!(
                out,
                "   {:>7}  {}  {:<16} {}{}",
                t.pid,
                addr(t.task.0),
                t.comm,
                t.state.letter(),
                stack_end(&t.end)
                    .filter(|_| !matches!(t.end, StackEnd::UserMode))
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default()
            );
        }
        if frames.is_empty() {
            let _ = writeln!(out, "      (no frames)");
        }
        for f in frames {
            let _ = writeln!(out, "      {f}");
        }
        if let Some(e) = tasks.first().and_then(|t| stack_end(&t.end)) {
            if matches!(tasks[0].end, StackEnd::UserMode) {
                let _ = writeln!(out, "      {e}");
            }
        }
    }
    for t in &s.items {
        for w in &t.warnings {
            let _ = writeln!(out, "\nWARNING: pid {} ({}): {w}", t.pid, t.comm);
        }
    }
    warnings(&mut out, &s.warnings);
    out
}

/// `running` on Linux: each CPU, its current task and that task's kernel
/// stack from the vCPU's registers.
pub fn running(r: &Partial<RunningCpu>) -> String {
    let mut out = String::new();
    for c in &r.items {
        let what = match c.mode {
            CpuMode::Kernel => "in the kernel",
            CpuMode::Idle => "idle",
            CpuMode::User => "in user mode (no kernel stack to show)",
            CpuMode::NoRegisters => "no registers in the dump",
        };
        let _ = writeln!(
            out,
            "CPU {}: {what}, current {} pid {} {}",
            c.cpu,
            c.task.map(|t| addr(t.0)).unwrap_or_else(|| "?".into()),
            opt(c.pid),
            c.comm.as_deref().unwrap_or("?"),
        );
        if let (Some(ip), Some(sp)) = (c.rip, c.rsp) {
            let _ = writeln!(out, "   rip {}  rsp {}", addr(ip.0), addr(sp.0));
        }
        for f in &c.frames {
            let _ = writeln!(out, "      {f}");
        }
        if let Some(e) = stack_end(&c.end).filter(|_| c.mode != CpuMode::User) {
            let _ = writeln!(out, "      {e}");
        }
        for w in &c.warnings {
            let _ = writeln!(out, "   WARNING: {w}");
        }
        let _ = writeln!(out);
    }
    warnings(&mut out, &r.warnings);
    out
}

fn lock_task(t: &LockTask) -> String {
    let who = match (t.pid, &t.comm) {
        (Some(p), Some(c)) => format!("pid {p} ({c})"),
        _ => "task ?".into(),
    };
    let mut s = format!("{who} task {} {}", addr(t.task.0), t.mode);
    if let Some(ns) = t.since_last_arrival_ns {
        let _ = write!(s, ", off CPU {} s", seconds_ns(Some(ns)));
    }
    if let Some(h) = t.hung_task_seen_s {
        let _ = write!(s, ", hung-task detector saw it {h:.1} s ago");
    }
    s
}

/// `locks` on a Linux guest: every lock a sleeping task waits on, with
/// its owner(s), waiters in `wait_list` order and what it protects.
pub fn locks(l: &Partial<LockInfo>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} contended lock(s)", l.items.len());
    for x in &l.items {
        let _ = writeln!(out);
        let _ = write!(out, "{} {}", x.kind, addr(x.address.0));
        if let Some(s) = &x.symbol {
            let _ = write!(out, " {s}");
        }
        if let Some(p) = &x.protects {
            let _ = write!(out, " ({p})");
        }
        let _ = writeln!(out);
        if let Some(raw) = x.owner_raw {
            let _ = write!(out, "    owner word {raw:#x}");
            if let Some(c) = x.count_raw {
                let _ = write!(out, ", count {c:#x}");
            }
            let _ = writeln!(out);
        }
        for o in &x.owners {
            let _ = writeln!(out, "    owner:  {}", lock_task(o));
        }
        if let Some(n) = &x.owner_note {
            let _ = writeln!(out, "    ({n})");
        }
        for w in &x.waiters {
            let _ = writeln!(out, "    waiter: {}", lock_task(w));
        }
        if !x.holders.is_empty() {
            let pids: Vec<String> = x.holders.iter().map(|p| p.to_string()).collect();
            let _ = writeln!(out, "    held open by pid {}", pids.join(", "));
        }
        for w in &x.warnings {
            let _ = writeln!(out, "    WARNING: {w}");
        }
    }
    warnings(&mut out, &l.warnings);
    out
}

/// A lock's one-line name: `mutex ffff.. hangdemo_lock_a` or with what
/// it protects.
fn lock_line(x: &LockInfo) -> String {
    let mut s = format!("{} {}", x.kind, addr(x.address.0));
    if let Some(n) = &x.symbol {
        let _ = write!(s, " {n}");
    }
    if let Some(p) = &x.protects {
        let _ = write!(s, " ({p})");
    }
    s
}

/// The kernel's name of a task's sleep, from its raw state bits.
fn sleep_kind(raw: u64) -> Option<&'static str> {
    const UNINTERRUPTIBLE: u64 = 0x2;
    const INTERRUPTIBLE: u64 = 0x1;
    const WAKEKILL: u64 = 0x100;
    const NOLOAD: u64 = 0x400;
    if raw & (UNINTERRUPTIBLE | NOLOAD) == UNINTERRUPTIBLE | NOLOAD {
        Some("TASK_IDLE")
    } else if raw & (UNINTERRUPTIBLE | WAKEKILL) == UNINTERRUPTIBLE | WAKEKILL {
        Some("TASK_KILLABLE")
    } else if raw & UNINTERRUPTIBLE != 0 {
        Some("TASK_UNINTERRUPTIBLE")
    } else if raw & INTERRUPTIBLE != 0 {
        Some("TASK_INTERRUPTIBLE")
    } else {
        None
    }
}

/// `thread PID|ADDR` on a Linux guest: the task, the lock it waits on and
/// for how long, each owner of that lock and what it does, the locks it
/// holds, and its stack.
pub fn thread(d: &TaskDetail) -> String {
    let t = &d.task;
    let mut out = format!(
        "TASK {}  pid {}  tgid {}  {}  {}",
        addr(t.task.0),
        t.pid,
        t.tgid,
        command(t),
        t.state.letter()
    );
    match sleep_kind(t.raw_state) {
        Some(k) => {
            let _ = writeln!(out, " ({k}, state {:#x})", t.raw_state);
        }
        None => {
            let _ = writeln!(out, " (state {:#x})", t.raw_state);
        }
    }
    let mut facts = Vec::new();
    if let Some(c) = t.cpu {
        facts.push(if t.on_cpu == Some(true) {
            format!("running on CPU {c}")
        } else {
            format!("last on CPU {c}")
        });
    }
    if t.on_cpu != Some(true) {
        if let Some(ns) = t.since_last_arrival_ns {
            facts.push(format!("off CPU {} s", seconds_ns(Some(ns))));
        }
    }
    if let Some(h) = d.hung_task_seen_s {
        facts.push(format!("hung-task detector saw it {h:.1} s ago"));
    }
    if let (Some(v), Some(i)) = (t.nvcsw, t.nivcsw) {
        facts.push(format!("{v} voluntary / {i} involuntary switches"));
    }
    if let Some(p) = t.ppid {
        facts.push(format!("parent pid {p}"));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "  {}", facts.join(", "));
    }
    match &d.waits_on {
        Some(l) => {
            let _ = write!(out, "\n  waits on {}", lock_line(l));
            match t.since_last_arrival_ns {
                Some(ns) => {
                    let _ = writeln!(out, ", for {} s", seconds_ns(Some(ns)));
                }
                None => {
                    let _ = writeln!(out);
                }
            }
            if let Some(raw) = l.owner_raw {
                let _ = write!(out, "    owner word {raw:#x}");
                if let Some(c) = l.count_raw {
                    let _ = write!(out, ", count {c:#x}");
                }
                let _ = writeln!(out);
            }
            if let Some(n) = &l.owner_note {
                let _ = writeln!(out, "    ({n})");
            }
            if l.owners.is_empty() {
                let _ = writeln!(out, "    no owner to follow");
            }
            for o in &d.owners {
                let who = match (o.pid, &o.comm) {
                    (Some(p), Some(c)) => format!("pid {p} ({c})"),
                    _ => "task ?".into(),
                };
                let mut doing = match (o.running_on, o.state) {
                    (Some(cpu), _) => format!("running on CPU {cpu}"),
                    (None, Some(st)) => format!(
                        "{} ({}), off CPU {} s",
                        match st.letter() {
                            'D' => "in uninterruptible sleep",
                            'S' => "sleeping",
                            'R' => "runnable",
                            _ => "in state",
                        },
                        st.letter(),
                        seconds_ns(o.since_last_arrival_ns)
                    ),
                    (None, None) => "state unknown".into(),
                };
                if let (Some(a), Some(label)) = (o.waits_on, &o.waits_on_label) {
                    let _ = write!(doing, "; it waits on {label} at {}", addr(a.0));
                    if o.waits_on_asked_task {
                        let _ =
                            write!(doing, ", which this task holds: the two wait on each other");
                    }
                }
                let _ = writeln!(
                    out,
                    "    owner: {who} task {} {}: {doing}",
                    addr(o.task.0),
                    o.mode
                );
                for f in &o.frames {
                    let _ = writeln!(out, "          {f}");
                }
            }
            let others: Vec<String> = l
                .waiters
                .iter()
                .filter(|w| w.task != t.task)
                .map(|w| match (w.pid, &w.comm) {
                    (Some(p), Some(c)) => format!("{p} ({c})"),
                    _ => addr(w.task.0),
                })
                .collect();
            if !others.is_empty() {
                let _ = writeln!(
                    out,
                    "    {} other waiter(s): {}",
                    others.len(),
                    others.join(", ")
                );
            }
        }
        None if matches!(t.state.letter(), 'D' | 'S') => {
            let _ = writeln!(out, "\n  waits on no lock found from its stack");
        }
        None => {}
    }
    for l in &d.holds {
        let _ = writeln!(
            out,
            "  holds {} with {} waiter(s)",
            lock_line(l),
            l.waiters.len()
        );
    }
    for n in &d.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    let _ = writeln!(out);
    match &d.stack {
        Some(s) => {
            let _ = writeln!(out, "  stack:");
            if s.frames.is_empty() {
                let _ = writeln!(out, "      (no frames)");
            }
            for f in &s.frames {
                let _ = writeln!(out, "      {f}");
            }
            if let Some(e) = stack_end(&s.end) {
                let _ = writeln!(out, "      {e}");
            }
            for w in &s.warnings {
                let _ = writeln!(out, "  WARNING: {w}");
            }
        }
        None => {
            let _ = writeln!(out, "  stack: not walked");
        }
    }
    warnings(&mut out, &d.warnings);
    out
}

/// `files` on a Linux guest: each file table with its descriptors, or
/// with a path the files under it and who holds them.
pub fn files(f: &FilesReport) -> String {
    let mut out = String::new();
    let fds: usize = f.tables.iter().map(|t| t.fds.len()).sum();
    match &f.path {
        Some(p) => {
            let _ = writeln!(
                out,
                "{} open file(s) under {p} ({fds} descriptor(s)) in {} file table(s)",
                f.distinct_files,
                f.tables.len()
            );
            for h in &f.holders {
                let _ = writeln!(
                    out,
                    "  process {} (pid {}) holds {} of them ({} descriptor(s))",
                    h.comm, h.tgid, h.files, h.fds
                );
            }
        }
        None => {
            let _ = writeln!(
                out,
                "{} file table(s), {fds} descriptor(s), {} distinct open file(s)",
                f.tables.len(),
                f.distinct_files
            );
        }
    }
    for t in &f.tables {
        let pids: Vec<String> = t.pids.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            out,
            "\nFILES {}  tgid {}  {}  used by pid {}  max_fds {}{}",
            addr(t.files_struct.0),
            t.tgid,
            t.comm,
            pids.join(", "),
            opt(t.max_fds),
            if t.truncated {
                "  (more descriptors than are read)"
            } else {
                ""
            }
        );
        if t.fds.is_empty() && f.path.is_none() {
            let _ = writeln!(out, "   (no open descriptors)");
        }
        if !t.fds.is_empty() {
            let _ = writeln!(
                out,
                "   {:>4}  {:<16}  {:<10} {:>8} {:>10} {:>8}  PATH",
                "FD", "FILE", "FS", "INODE", "POS", "FLAGS"
            );
        }
        for d in &t.fds {
            let _ = writeln!(
                out,
                "   {:>4}  {}  {:<10} {:>8} {:>10} {:>8}  {}",
                d.fd,
                addr(d.file.0),
                d.fs_type.as_deref().unwrap_or("?"),
                opt(d.ino),
                opt(d.pos),
                d.flags.map_or("?".into(), |x| format!("{x:o}")),
                d.path.as_deref().unwrap_or("?")
            );
        }
        for w in &t.warnings {
            let _ = writeln!(out, "   WARNING: {w}");
        }
    }
    warnings(&mut out, &f.warnings);
    out
}

/// What the verdict's text adds on Linux: the D tasks that wait on no
/// lock and why, and the kernel's own hung-task reports.
pub fn verdict_notes(notes: &[String]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nLinux notes:\n");
    for n in notes {
        let _ = writeln!(out, "  - {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_linux::TaskState;
    use hangscope_x64::VirtAddr;

    fn task(pid: i32, tgid: i32, comm: &str, kthread: bool) -> TaskInfo {
        TaskInfo {
            task: VirtAddr(0xffff_8880_0100_0000 + pid as u64 * 0x1000),
            pid,
            tgid,
            ppid: Some(1),
            comm: comm.into(),
            state: TaskState::DiskSleep,
            raw_state: 2,
            exit_state: 0,
            kernel_thread: kthread,
            cpu: Some(1),
            on_cpu: Some(false),
            last_arrival_ns: Some(1_000),
            since_last_arrival_ns: Some(42_500_000_000),
            nvcsw: Some(3),
            nivcsw: Some(0),
            last_switch_time: Some(4_294_900_000),
            last_switch_count: Some(3),
        }
    }

    #[test]
    fn ps_lists_leaders_with_their_thread_count_and_brackets_kthreads() {
        let p = Partial {
            items: vec![
                task(94, 94, "hangtool", false),
                task(96, 94, "uffd-handler", false),
                task(112, 112, "hang_ab", true),
            ],
            warnings: vec![],
        };
        let s = ps_table(&p);
        assert!(s.contains("      2  hangtool"), "{s}");
        assert!(s.contains("[hang_ab]"), "{s}");
        assert!(!s.contains("uffd-handler"), "{s}");
    }

    #[test]
    fn threads_show_seconds_since_last_run_and_hung_task_view() {
        let t = task(112, 112, "hang_ab", true);
        let s = threads_table(&[&t], &[], Some(4_294_900_000 + 250 * 24), Some(250));
        assert!(s.contains("42.5"), "{s}");
        assert!(s.contains("24.0"), "{s}");
    }

    #[test]
    fn dmesg_tail_keeps_the_last_records() {
        let r = |seq: u64, text: &str| DmesgRecord {
            seq,
            ts_ns: 41_908_897_000,
            level: Some(3),
            facility: Some(0),
            text: text.into(),
        };
        let d = Partial {
            items: vec![r(0, "first"), r(1, "INFO: task hang_ab:112 blocked")],
            warnings: vec![],
        };
        assert_eq!(
            dmesg(&d, Some(1)),
            "[   41.908897] INFO: task hang_ab:112 blocked\n"
        );
    }
}
