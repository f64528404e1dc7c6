//! Where output goes: the report to stdout, everything else to stderr.

use crate::cli::GlobalArgs;
use std::io::{IsTerminal, Write};

/// Set up the logger: `-v` levels to stderr, or to `--log-file`.
pub fn init_logging(g: &GlobalArgs) {
    let level = match g.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    b.format(|buf, rec| writeln!(buf, "hangscope: {}: {}", rec.level(), rec.args()));
    if let Some(path) = &g.log_file {
        match std::fs::File::create(path) {
            Ok(f) => {
                b.target(env_logger::Target::Pipe(Box::new(f)));
            }
            Err(e) => eprintln!("hangscope: cannot write the log to {}: {e}", path.display()),
        }
    }
    let _ = b.try_init();
}

/// Whether progress bars should be drawn.
pub fn progress_enabled(g: &GlobalArgs) -> bool {
    !g.no_progress && !g.json && std::io::stderr().is_terminal()
}

/// Write the report to stdout in one go.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(text.as_bytes())?;
    if !text.ends_with('\n') && !text.is_empty() {
        lock.write_all(b"\n")?;
    }
    lock.flush()?;
    Ok(())
}

/// A write to a closed pipe (`hangscope ps x | head`) is not an error.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
