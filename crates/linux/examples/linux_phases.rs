//! Where the time of a Linux `analyze` goes, phase by phase:
//! `cargo run --release -p hangscope-linux --example linux_phases -- DUMP`
//! (`LINUX_PS_CACHE=DIR` caches the table built from the dump's BTF, as
//! the CLI does).

use hangscope_dump::Dump;
use hangscope_linux::LinuxKernel;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: linux_phases DUMP")?;
    let opts = hangscope_linux::OpenOptions {
        cache: std::env::var_os("LINUX_PS_CACHE").map(hangscope_symbols::SymbolCache::new),
        ..Default::default()
    };
    let mut last = Instant::now();
    let mut lap = |what: &str| {
        let now = Instant::now();
        eprintln!("{what:<14} {:>8.2} ms", (now - last).as_secs_f64() * 1e3);
        last = now;
    };
    let dump = Dump::open(std::path::Path::new(&path))?;
    lap("dump open");
    let k = LinuxKernel::open_with(&dump, None, &opts)?;
    lap("kernel open");
    let tasks = k.tasks()?;
    lap("tasks");
    let mods = k.modules()?;
    lap("modules");
    let unwinder = k.unwinder()?;
    lap("unwinder");
    drop(unwinder);
    let stacks = k.stacks()?;
    lap("stacks");
    let waits = k.waits();
    lap("waits");
    let input = k.wait_graph_with(&waits);
    lap("wait graph");
    let verdict = hangscope_waitgraph::analyze(&input, &Default::default());
    lap("verdict");
    let log = k.dmesg()?;
    lap("dmesg");
    drop(k);
    lap("drop");
    eprintln!(
        "{} tasks, {} modules, {} stacks, {} records, {} findings",
        tasks.items.len(),
        mods.items.len(),
        stacks.items.len(),
        log.items.len(),
        verdict.findings.len()
    );
    Ok(())
}
