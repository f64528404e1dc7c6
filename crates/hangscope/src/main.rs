//! The `hangscope` command: glue between the stages. Each stage lives in
//! its own crate; this one parses arguments, opens the dump, calls the
//! kernel model and the analysis, and hands the result to a renderer.

mod cli;
mod commands;
mod demo;
mod dumpinfo;
mod execute;
mod guard;
mod live;
mod markdown;
mod output;
mod render;
mod series;
mod session;
mod shell;
mod shellrun;

use clap::Parser;
use std::process::ExitCode;

/// Exit code for an error (as ripgrep).
pub const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    // The watchdog `hangscope live` starts to resume the guest should this
    // process die: a hidden entry, before anything else runs.
    let mut args = std::env::args_os().skip(1);
    if args
        .next()
        .is_some_and(|a| a == hangscope_live::watchdog::WATCHDOG_ARG)
    {
        let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        return ExitCode::from(hangscope_live::watchdog::watchdog_main(&rest) as u8);
    }
    if std::env::args().any(|a| a == "--help-markdown") {
        print!("{}", markdown::help_markdown());
        return ExitCode::SUCCESS;
    }
    let cli = cli::Cli::parse();
    // Before the log file or any report is opened for writing.
    if let Err(e) = guard::check_outputs(&cli) {
        output::say(format_args!("hangscope: {e:#}"));
        return ExitCode::from(EXIT_ERROR);
    }
    output::init_logging(&cli.global);
    std::panic::set_hook(Box::new(|info| {
        // A panic is a bug: say so once, through the logger, in one line.
        log::error!("internal error (please report it with the dump's format and build): {info}");
        output::say(format_args!("hangscope: internal error: {info}"));
    }));
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if output::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            output::say(format_args!("hangscope: {e:#}"));
            ExitCode::from(EXIT_ERROR)
        }
    }
}
