//! WinDbg-shaped text for the kernel model: `!locks`, `!thread`, `!irp`,
//! `!fileobj`, `!process 0 0`, thread and handle tables, `lm`, `dt`,
//! `db`/`dq`. Pure functions from `hangscope_nt::model` values to text, so
//! an engineer who knows WinDbg reads them at a glance.

use hangscope_nt::model::*;
use hangscope_nt::Warning;
use std::fmt::Write as _;

/// An address as WinDbg prints it: `fffffa80`0b61bb50`.
pub fn addr(a: impl HexValue) -> String {
    let a = a.to_raw();
    format!("{:08x}`{:08x}", a >> 32, a & 0xffff_ffff)
}

/// A 64-bit address without the backtick, as `!locks` lists threads.
pub(crate) fn flat(a: impl HexValue) -> String {
    let a = a.to_raw();
    format!("{a:016x}")
}

/// Ticks and their duration like `!thread`: `64 (0:00:00:01.000)`.
pub fn ticks_text(ticks: Option<u64>, seconds: Option<f64>) -> String {
    match (ticks, seconds) {
        (Some(t), Some(s)) => {
            let ms_total = (s * 1000.0).round().max(0.0) as u64;
            let ms = ms_total % 1000;
            let secs = ms_total / 1000;
            format!(
                "{t} ({}:{:02}:{:02}:{:02}.{:03})",
                secs / 86400,
                secs / 3600 % 24,
                secs / 60 % 60,
                secs % 60,
                ms
            )
        }
        (Some(t), None) => t.to_string(),
        _ => "-".into(),
    }
}

pub(crate) fn warnings(out: &mut String, w: &[Warning]) {
    if w.is_empty() {
        return;
    }
    let _ = writeln!(out);
    for x in w {
        let _ = writeln!(out, "WARNING: {x}");
    }
}

/// `info`: the kernel found.
pub fn kernel_info(i: &KernelInfo) -> String {
    let mut s = String::new();
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    let _ = writeln!(
        s,
        "Windows {}.{} Kernel Version {} MP ({} procs) x64",
        opt(i.major_version),
        opt(i.minor_version),
        opt(i.build),
        opt(i.processor_count)
    );
    let _ = writeln!(
        s,
        "Kernel base = {}   PDB {} {}{:X}",
        addr(i.kernel_base),
        i.pdb.name,
        i.pdb.guid,
        i.pdb.age
    );
    if let Some(d) = i.dtb {
        let _ = writeln!(s, "DirectoryTableBase = {d:#x}");
    }
    let _ = writeln!(s, "Symbols: {}", i.symbol_source);
    if let Some(t) = i.tick_count {
        let _ = writeln!(
            s,
            "TickCount: {t}   KeMaximumIncrement: {}",
            i.max_increment.map(|v| v.to_string()).unwrap_or("?".into())
        );
    }
    if let Some(t) = i.system_time {
        let _ = writeln!(s, "SystemTime (FILETIME): {t:#x}");
    }
    for c in &i.cpus {
        let _ = writeln!(
            s,
            "CPU {}: KPCR {}  KPRCB {}  CurrentThread {}{}",
            c.index,
            addr(c.kpcr),
            addr(c.kprcb),
            c.current_thread.map(addr).unwrap_or("?".into()),
            c.rip
                .map(|r| format!("  RIP {}", addr(r)))
                .unwrap_or_default()
        );
    }
    for d in &i.discovery {
        let _ = writeln!(s, "  found: {d}");
    }
    warnings(&mut s, &i.warnings);
    s
}

/// `!process 0 0`.
pub fn process_list(p: &Partial<ProcessInfo>) -> String {
    let mut s = String::from("**** NT ACTIVE PROCESS DUMP ****\n");
    for x in &p.items {
        let _ = writeln!(s, "PROCESS {}", flat(x.address));
        let _ = writeln!(
            s,
            "    SessionId: {}  Cid: {:04x}    ParentCid: {:04x}",
            x.session.map(|v| v.to_string()).unwrap_or("none".into()),
            x.pid,
            x.ppid
        );
        let _ = writeln!(
            s,
            "    DirBase: {:08x}  ObjectTable: {}  Threads: {}.",
            x.dtb,
            x.handle_table.map(flat).unwrap_or("00000000".into()),
            x.thread_count.map(|v| v.to_string()).unwrap_or("?".into())
        );
        let _ = writeln!(s, "    Image: {}\n", x.name);
    }
    warnings(&mut s, &p.warnings);
    s
}

/// `ps`: one line per process.
pub fn ps_table(p: &Partial<ProcessInfo>) -> String {
    let mut s = format!(
        "{:<18} {:>6} {:>6} {:<15} {:>7} {:>7} {:>10}\n",
        "EPROCESS", "PID", "PPID", "Name", "Threads", "Session", "DirBase"
    );
    for x in &p.items {
        let _ = writeln!(
            s,
            "{:<18} {:>6} {:>6} {:<15} {:>7} {:>7} {:>10x}",
            addr(x.address),
            x.pid,
            x.ppid,
            x.name,
            x.thread_count.map(|v| v.to_string()).unwrap_or("?".into()),
            x.session.map(|v| v.to_string()).unwrap_or("-".into()),
            x.dtb
        );
    }
    warnings(&mut s, &p.warnings);
    s
}

/// `threads`: one line per thread, with how long each has waited.
pub fn threads_table(t: &[&ThreadInfo], w: &[Warning]) -> String {
    let mut s = format!(
        "{:<18} {:>6} {:>6} {:<15} {:<12} {:<18} {:>8} {:>9} {:>3}  {}\n",
        "ETHREAD",
        "PID",
        "TID",
        "Process",
        "State",
        "WaitReason",
        "Ticks",
        "Seconds",
        "CPU",
        "Start"
    );
    for x in t {
        let _ = writeln!(
            s,
            "{:<18} {:>6} {:>6} {:<15} {:<12} {:<18} {:>8} {:>9} {:>3}  {}",
            addr(x.address),
            x.pid,
            x.tid,
            x.process_name,
            x.state,
            x.wait_reason
                .map(|w| w.to_string())
                .unwrap_or_else(|| "-".into()),
            x.wait_ticks.map(|v| v.to_string()).unwrap_or("-".into()),
            x.wait_seconds
                .map(|v| format!("{v:.3}"))
                .unwrap_or("-".into()),
            x.cpu.map(|v| v.to_string()).unwrap_or("-".into()),
            addr(x.start_address)
        );
    }
    warnings(&mut s, w);
    s
}

/// `lm`.
pub fn module_list(m: &Partial<ModuleInfo>) -> String {
    let mut s = String::from("start             end                 module name\n");
    for x in &m.items {
        let _ = writeln!(
            s,
            "{} {}   {:<12} {}",
            addr(x.base),
            addr(x.base.0.wrapping_add(x.size)),
            x.name
                .trim_end_matches(".sys")
                .trim_end_matches(".exe")
                .trim_end_matches(".dll"),
            x.path
        );
    }
    warnings(&mut s, &m.warnings);
    s
}

/// One resource in `!locks` shape.
pub fn lock(r: &EresourceInfo) -> String {
    let mut s = String::new();
    let name = match &r.symbol {
        Some(n) => format!("{n} ({:#x})", r.address),
        None => format!("{:#x}", r.address),
    };
    let held = if r.exclusive {
        "Exclusively owned".to_string()
    } else if r.active_count > 0 {
        format!("Shared {} owning threads", r.owners.len().max(1))
    } else {
        "Not owned".to_string()
    };
    let _ = writeln!(s, "Resource @ {name}    {held}");
    if r.contention_count > 0 {
        let _ = writeln!(s, "    Contention Count = {}", r.contention_count);
    }
    if r.shared_waiters_count > 0 {
        let _ = writeln!(s, "    NumberOfSharedWaiters = {}", r.shared_waiters_count);
    }
    if r.exclusive_waiters_count > 0 {
        let _ = writeln!(
            s,
            "    NumberOfExclusiveWaiters = {}",
            r.exclusive_waiters_count
        );
    }
    if !r.owners.is_empty() {
        let owners: Vec<String> = r
            .owners
            .iter()
            .map(|o| format!("{}-{:02x}<*>", flat(o.thread), o.count))
            .collect();
        let _ = writeln!(s, "     Threads: {}", owners.join(" "));
    }
    for (title, excl) in [("Exclusive", true), ("Shared", false)] {
        let w: Vec<&LockWaiter> = r.waiters.iter().filter(|w| w.exclusive == excl).collect();
        if w.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n     Threads Waiting On {title} Access:");
        for chunk in w.chunks(4) {
            let line: Vec<String> = chunk
                .iter()
                .map(|x| format!("{:<22}", flat(x.thread)))
                .collect();
            let _ = writeln!(s, "              {}", line.join(" ").trim_end());
        }
    }
    s
}

/// `!locks`: the contended resources, or all with `all`.
pub fn locks(r: &Partial<EresourceInfo>, all: bool) -> String {
    let mut s =
        String::from("**** DUMP OF ALL RESOURCE OBJECTS ****\nKD: Scanning for held locks..\n");
    let mut held = 0;
    for x in &r.items {
        if all || x.is_contended() {
            let _ = writeln!(s, "\n{}", lock(x));
        }
        if x.active_count > 0 {
            held += 1;
        }
    }
    let _ = writeln!(
        s,
        "{} total locks, {} locks currently held",
        r.items.len(),
        held
    );
    warnings(&mut s, &r.warnings);
    s
}

/// `!thread`.
pub fn thread(d: &ThreadDetail) -> String {
    let t = &d.thread;
    let mut s = String::new();
    let state = match (t.state, t.cpu) {
        (ThreadState::Running, Some(c)) => format!("RUNNING on processor {c}"),
        (ThreadState::Waiting, _) => format!(
            "WAIT: ({}) ",
            t.wait_reason
                .map(|w| w.to_string())
                .unwrap_or_else(|| "Unknown".into())
        ),
        (other, _) => other.to_string().to_uppercase(),
    };
    let _ = writeln!(
        s,
        "THREAD {}  Cid {:04x}.{:04x}  {}",
        flat(t.address),
        t.pid,
        t.tid,
        state
    );
    for w in &d.waits {
        let type_name = w.type_name.as_deref().unwrap_or(&w.kind);
        let mutex = matches!(w.kind.as_str(), "FastMutex" | "GuardedMutex");
        let mut line = if mutex {
            // The address is the mutex's; the object is its Event or Gate.
            format!("    {}  {} (on its {type_name})", flat(w.address), w.kind)
        } else {
            format!("    {}  {type_name}", flat(w.address))
        };
        if let Some(er) = w.eresource {
            let _ = write!(
                line,
                "  (waiters' {} of ERESOURCE {}",
                match (w.eresource_exclusive, w.kind.as_str()) {
                    (Some(true), _) => "event, exclusive",
                    (_, "Semaphore") => "semaphore, shared",
                    // 1607: each shared waiter's own _KWAIT_CHAIN_ENTRY event.
                    _ => "wait-chain event, shared",
                },
                flat(er)
            );
            line.push(')');
        }
        if !w.owners.is_empty() {
            let o: Vec<String> = w.owners.iter().map(|&x| flat(x)).collect();
            let _ = write!(line, "  owner {}", o.join(" "));
            if mutex {
                line.push_str(" (recorded in Owner)");
            }
        }
        let _ = writeln!(s, "{line}");
    }
    if let Some(l) = &d.push_lock {
        s.push_str(&crate::pushlock_mutex::waited_push_lock(l));
    }
    s.push_str(&crate::pushlock_mutex::held(&d.holds));
    if !d.irps.is_empty() {
        let _ = writeln!(s, "IRP List:");
        for i in &d.irps {
            let cur = i.current();
            let _ = writeln!(
                s,
                "    {}: ({:04x},{:04x}) {} {}{}",
                flat(i.address),
                i.type_raw,
                i.stack_count,
                cur.map(|c| c.major_name.as_str()).unwrap_or("-"),
                cur.and_then(|c| c.driver_name.as_deref()).unwrap_or(""),
                i.file_path
                    .as_deref()
                    .map(|p| format!("  {p}"))
                    .unwrap_or_default()
            );
        }
    } else {
        let _ = writeln!(s, "Not impersonating");
    }
    let _ = writeln!(
        s,
        "Owning Process            {}       Image:         {}",
        flat(t.process),
        t.process_name
    );
    let _ = writeln!(
        s,
        "Wait Start TickCount      {:<14} Ticks: {}",
        t.wait_time,
        ticks_text(t.wait_ticks, t.wait_seconds)
    );
    let _ = writeln!(s, "Start Address {}", addr(t.start_address));
    if let Some(ks) = t.kernel_stack {
        let _ = writeln!(s, "Kernel stack pointer {}", addr(ks));
    }
    let walk = &d.stack_walk;
    if !walk.frames.is_empty() {
        // `!thread`'s own layout: no frame numbers, indented.
        s.push('\n');
        s.push_str(&crate::stacks::frame_rows(walk, false, "        "));
    } else if d.stack.is_empty() {
        let why = if walk.start.is_empty() {
            String::new()
        } else {
            format!(": {}", walk.start)
        };
        let _ = writeln!(s, "\n(no stack{why})");
    } else {
        // A detail built without the walk (older JSON): names only.
        let _ = writeln!(s, "\nCall Site");
        for f in &d.stack {
            let _ = writeln!(s, "{f}");
        }
    }
    warnings(&mut s, &d.warnings);
    s
}

/// `!irp`.
pub fn irp(i: &IrpInfo) -> String {
    let mut s = String::new();
    let cur = i
        .current_stack_location
        .map(|c| format!(" (= {c:#x})"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "Irp is active with {} stacks {} is current{}",
        i.stack_count, i.current_location, cur
    );
    let _ = writeln!(
        s,
        " Thread {}:  Irp stack trace.",
        i.thread.map(flat).unwrap_or("?".into())
    );
    let _ = writeln!(s, "     cmd  flg cl Device   File     Completion-Context");
    for l in &i.stack {
        let _ = writeln!(
            s,
            "{}[{:>3},{:>2}]  {} {} {}-{}",
            if l.current { ">" } else { " " },
            l.major,
            l.minor,
            flat(l.device),
            flat(l.file_object),
            flat(l.completion_routine),
            flat(l.context)
        );
        let _ = writeln!(
            s,
            "\t       {}\t{}{}",
            l.driver_name.as_deref().unwrap_or(""),
            l.major_name,
            l.device_name
                .as_deref()
                .map(|d| format!("  {d}"))
                .unwrap_or_default()
        );
    }
    if let Some(p) = &i.file_path {
        let _ = writeln!(s, "\nFile: {p}");
    }
    warnings(&mut s, &i.warnings);
    s
}

/// `FILE_OBJECT.Flags` bit names (wdm.h).
const FO_FLAGS: &[(u32, &str)] = &[
    (0x1, "FO_FILE_OPEN"),
    (0x2, "FO_SYNCHRONOUS_IO"),
    (0x4, "FO_ALERTABLE_IO"),
    (0x8, "FO_NO_INTERMEDIATE_BUFFERING"),
    (0x10, "FO_WRITE_THROUGH"),
    (0x20, "FO_SEQUENTIAL_ONLY"),
    (0x40, "FO_CACHE_SUPPORTED"),
    (0x80, "FO_NAMED_PIPE"),
    (0x100, "FO_STREAM_FILE"),
    (0x200, "FO_MAILSLOT"),
    (0x800, "FO_DIRECT_DEVICE_OPEN"),
    (0x1000, "FO_FILE_MODIFIED"),
    (0x2000, "FO_FILE_SIZE_CHANGED"),
    (0x4000, "FO_CLEANUP_COMPLETE"),
    (0x8000, "FO_TEMPORARY_FILE"),
    (0x10000, "FO_DELETE_ON_CLOSE"),
    (0x20000, "FO_OPENED_CASE_SENSITIVE"),
    (0x40000, "FO_HANDLE_CREATED"),
    (0x80000, "FO_FILE_FAST_IO_READ"),
    (0x100000, "FO_RANDOM_ACCESS"),
    (0x200000, "FO_FILE_OPEN_CANCELLED"),
    (0x400000, "FO_VOLUME_OPEN"),
];

/// `!fileobj`.
pub fn fileobj(f: &FileObjectInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n{}\n", f.path);
    let _ = writeln!(
        s,
        "Device Object: {:#x}   {}",
        f.device,
        f.device_name.as_deref().unwrap_or("")
    );
    if f.related.0 != 0 {
        let _ = writeln!(s, "RelatedFileObject: {:#x}", f.related);
    }
    let _ = writeln!(s, "Flags:  {:#x}", f.flags);
    for (bit, name) in FO_FLAGS {
        if f.flags & bit != 0 {
            let _ = writeln!(s, "\t{name}");
        }
    }
    let _ = writeln!(s, "FileName: {}", f.name);
    if f.holders.is_empty() {
        let _ = writeln!(s, "No process holds a handle to it.");
    } else {
        let _ = writeln!(s, "Handles held by:");
        for h in &f.holders {
            let hs: Vec<String> = h.handles.iter().map(|x| format!("{x:#x}")).collect();
            let _ = writeln!(
                s,
                "    {:<15} {:>6}  {}",
                h.process_name,
                h.pid,
                hs.join(" ")
            );
        }
    }
    warnings(&mut s, &f.warnings);
    s
}

/// `handles`: the table, and with a path prefix, who holds how many.
pub fn handles(r: &HandleReport) -> String {
    let mut s = format!(
        "{:>6} {:<15} {:>8} {:<18} {:<12} {:>10}  {}\n",
        "PID", "Process", "Handle", "Object", "Type", "Access", "Name"
    );
    for h in &r.handles {
        let _ = writeln!(
            s,
            "{:>6} {:<15} {:>8x} {:<18} {:<12} {:>#10x}  {}",
            h.pid,
            h.process_name,
            h.handle,
            addr(h.object),
            h.type_name,
            h.access,
            h.name
        );
    }
    if let Some(p) = &r.path_prefix {
        let _ = writeln!(s, "\nProcesses holding handles under {p}:");
        for c in &r.holders {
            let _ = writeln!(
                s,
                "    {:<15} {:>6}  {} handles",
                c.process_name, c.pid, c.count
            );
        }
    }
    warnings(&mut s, &r.warnings);
    s
}

/// `dt TYPE ADDR`.
pub fn dt(d: &DtOutput) -> String {
    let mut s = format!("nt!{} @ {}\n", d.type_name, addr(d.address));
    let width = d
        .fields
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0)
        .max(16);
    for f in &d.fields {
        let value = if let Some(e) = &f.error {
            format!("?? ({e})")
        } else if let Some(t) = &f.text {
            if f.type_name.starts_with('_') {
                format!("{} {t}", f.type_name)
            } else {
                t.clone()
            }
        } else if let Some(v) = f.value {
            if let Some((_, len)) = f.bits {
                format!("0y{v:0width$b}", width = len as usize)
            } else if f.type_name.starts_with("Ptr64") {
                format!("0x{}", addr(v))
            } else {
                format!("{v:#x}")
            }
        } else {
            f.type_name.clone()
        };
        let _ = writeln!(s, "   +{:#05x} {:<width$} : {value}", f.offset, f.name);
    }
    s
}

/// `db`.
pub fn db(m: &MemoryDump) -> String {
    let mut s = String::new();
    for (i, row) in m.bytes.chunks(16).enumerate() {
        let a = m.address.0.wrapping_add(i as u64 * 16);
        let mut hex = String::new();
        let mut asc = String::new();
        for (j, b) in row.iter().enumerate() {
            let sep = if j == 8 { '-' } else { ' ' };
            match b {
                Some(b) => {
                    let _ = write!(hex, "{}{b:02x}", if j == 0 { ' ' } else { sep });
                    asc.push(if b.is_ascii_graphic() || *b == b' ' {
                        *b as char
                    } else {
                        '.'
                    });
                }
                None => {
                    let _ = write!(hex, "{}??", if j == 0 { ' ' } else { sep });
                    asc.push('?');
                }
            }
        }
        let _ = writeln!(s, "{} {hex}  {asc}", addr(a));
    }
    s
}

/// `dq`.
pub fn dq(m: &MemoryDump) -> String {
    let mut s = String::new();
    for (i, row) in m.bytes.chunks(16).enumerate() {
        let a = m.address.0.wrapping_add(i as u64 * 16);
        let mut line = addr(a);
        for q in row.chunks(8) {
            if q.len() == 8 && q.iter().all(Option::is_some) {
                let mut b = [0u8; 8];
                for (k, x) in q.iter().enumerate() {
                    b[k] = x.unwrap_or(0);
                }
                let _ = write!(line, "  {}", addr(u64::from_le_bytes(b)));
            } else {
                line.push_str("  ????????`????????");
            }
        }
        let _ = writeln!(s, "{line}");
    }
    s
}

/// Files in memory with their holders.
pub fn files(f: &Partial<FileObjectInfo>) -> String {
    let mut s = format!(
        "{:<18} {:<40} {}\n",
        "FILE_OBJECT", "Device", "Path / holders"
    );
    for x in &f.items {
        let holders: Vec<String> = x
            .holders
            .iter()
            .map(|h| format!("{}({})", h.process_name, h.pid))
            .collect();
        let _ = writeln!(
            s,
            "{:<18} {:<40} {}{}",
            addr(x.address),
            x.device_name.as_deref().unwrap_or("-"),
            x.path,
            if holders.is_empty() {
                String::new()
            } else {
                format!("  [{}]", holders.join(", "))
            }
        );
    }
    warnings(&mut s, &f.warnings);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_nt::VirtAddr;

    #[test]
    fn ticks_read_like_windbg() {
        assert_eq!(ticks_text(Some(64), Some(1.0)), "64 (0:00:00:01.000)");
        assert_eq!(
            ticks_text(Some(19200), Some(300.0)),
            "19200 (0:00:05:00.000)"
        );
        assert_eq!(ticks_text(None, None), "-");
    }

    #[test]
    fn locks_show_owner_and_waiters() {
        let r = EresourceInfo {
            address: VirtAddr(0xfffffa80_01d5a9a0),
            active_count: 1,
            contention_count: 35,
            exclusive_waiters_count: 2,
            owners: vec![LockOwner {
                thread: VirtAddr(0xfffffa80_0b61bb50),
                count: 1,
                exclusive: false,
            }],
            waiters: vec![
                LockWaiter {
                    thread: VirtAddr(0xfffffa80_01b79b50),
                    exclusive: true,
                    ..Default::default()
                },
                LockWaiter {
                    thread: VirtAddr(0xfffffa80_02190b50),
                    exclusive: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let t = lock(&r);
        assert!(
            t.starts_with("Resource @ 0xfffffa8001d5a9a0    Shared 1 owning threads\n"),
            "{t}"
        );
        assert!(t.contains("Contention Count = 35"));
        assert!(t.contains("Threads: fffffa800b61bb50-01<*>"));
        assert!(t.contains("Threads Waiting On Exclusive Access:\n              fffffa8001b79b50"));
        let all = locks(
            &Partial {
                items: vec![r, EresourceInfo::default()],
                warnings: vec![],
            },
            false,
        );
        assert!(all.contains("2 total locks, 1 locks currently held"));
        assert_eq!(all.matches("Resource @").count(), 1);
    }

    #[test]
    fn thread_names_what_an_eresource_waiter_blocks_on() {
        let waited = |kind: &str, exclusive: bool| WaitedObject {
            address: VirtAddr(0xffff8000_00001000),
            kind: kind.into(),
            eresource: Some(VirtAddr(0xffff8000_00002000)),
            eresource_exclusive: Some(exclusive),
            ..Default::default()
        };
        let d = ThreadDetail {
            thread: ThreadInfo {
                state: "Waiting".into(),
                ..Default::default()
            },
            waits: vec![
                waited("Semaphore", false),
                // Windows 10 1607: a shared waiter's _KWAIT_CHAIN_ENTRY event.
                waited("Event", false),
                waited("Event", true),
            ],
            ..Default::default()
        };
        let t = thread(&d);
        for want in [
            "Semaphore  (waiters' semaphore, shared of ERESOURCE ffff800000002000)",
            "Event  (waiters' wait-chain event, shared of ERESOURCE ffff800000002000)",
            "Event  (waiters' event, exclusive of ERESOURCE ffff800000002000)",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }

    #[test]
    fn db_marks_unreadable_bytes() {
        let m = MemoryDump {
            address: VirtAddr(0xfffff800_02a1a000),
            bytes: vec![Some(b'M'), Some(b'Z'), None, Some(0)],
        };
        assert_eq!(db(&m), "fffff800`02a1a000  4d 5a ?? 00  MZ?.\n");
    }
}
