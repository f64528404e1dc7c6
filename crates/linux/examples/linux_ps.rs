//! Open a Linux guest's dump and print what the model reads, with timings:
//! `cargo run --release -p hangscope-linux --example linux_ps -- DUMP [SYMBOL-TABLE]`
//! (`LINUX_PS_CACHE=DIR` caches the table built from the dump's BTF).

use hangscope_dump::Dump;
use hangscope_linux::LinuxKernel;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: linux_ps DUMP [SYMBOL-TABLE]")?;
    let types = match args.next() {
        Some(t) => Some(hangscope_symbols::SymbolTable::load(std::path::Path::new(
            &t,
        ))?),
        None => None,
    };
    let t0 = Instant::now();
    let dump = Dump::open(std::path::Path::new(&path))?;
    let t_dump = t0.elapsed();
    // LINUX_PS_CACHE=DIR keeps the table built from the dump's BTF there.
    let opts = hangscope_linux::OpenOptions {
        cache: std::env::var_os("LINUX_PS_CACHE").map(hangscope_symbols::SymbolCache::new),
        ..Default::default()
    };
    let k = LinuxKernel::open_with(&dump, types, &opts)?;
    let t_open = t0.elapsed();
    let tasks = k.tasks()?;
    let t_tasks = t0.elapsed();
    let info = k.info();
    println!(
        "{} | KASLR {:#x} | {} CPUs | HZ {:?} | uptime {:.3} s | types: {}",
        info.release.as_deref().unwrap_or("?"),
        info.kernel_offset.unwrap_or(0),
        info.cpu_count.unwrap_or(0),
        info.hz,
        info.uptime_s.unwrap_or(0.0),
        info.types_source.as_deref().unwrap_or("none")
    );
    println!(
        "{:>6} {:>6} {:>6} S CPU {:<16} SINCE-RUN",
        "PID", "TGID", "PPID", "COMM"
    );
    for t in &tasks.items {
        println!(
            "{:>6} {:>6} {:>6} {} {:>3} {:<16} {}",
            t.pid,
            t.tgid,
            t.ppid.map_or("-".into(), |p| p.to_string()),
            t.state.letter(),
            t.cpu.map_or("-".into(), |c| c.to_string()),
            if t.kernel_thread {
                format!("[{}]", t.comm)
            } else {
                t.comm.clone()
            },
            t.since_last_arrival_ns
                .map_or("-".into(), |n| format!("{:.3} s", n as f64 / 1e9))
        );
    }
    for w in &tasks.warnings {
        eprintln!("warning: {w}");
    }
    for m in k.modules()?.items {
        println!("module {} at {:?} size {:?}", m.name, m.base, m.size);
    }
    let log = k.dmesg()?;
    for r in log.items.iter().rev().take(3).rev() {
        for l in r.lines() {
            println!("{l}");
        }
    }
    eprintln!(
        "dump open {:?}, kernel open {:?}, tasks {:?} ({} tasks)",
        t_dump,
        t_open - t_dump,
        t_tasks - t_open,
        tasks.items.len()
    );
    Ok(())
}
