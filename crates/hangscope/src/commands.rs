//! One function per command-line command: open the dump and its kernel
//! ([`crate::session`]), run the command ([`crate::execute`]), and write the
//! typed report it returns in the format asked for ([`crate::render`]).

use crate::cli::{Cli, Command, ThreadRef};
use crate::dumpinfo::DumpSummary;
use crate::execute::execute;
use crate::output::emit;
use crate::render::{write_html, Format, KernelSummary, Report};
use crate::session::{open_dump, open_guest, warn_dump_notes, Guest};
use crate::shell::ShellCommand;
use anyhow::Result;
use std::path::Path;

/// Run the command; returns the exit code.
pub fn run(cli: &Cli) -> Result<u8> {
    let g = &cli.global;
    let format = Format::from_json_flag(g.json);
    match &cli.command {
        Command::Demo(a) => crate::demo::run(g, a),
        Command::Capture(a) => {
            let manifest = hangscope_capture::cli::run(a)?;
            let report = Report::Capture {
                manifest,
                path: a.out.join(hangscope_capture::MANIFEST_FILE),
            };
            emit(&report.render(format)?, format)?;
            Ok(0)
        }
        Command::Info(a) => {
            let dump = open_dump(&a.dump)?;
            let guest = open_guest(g, &a.dump, &dump);
            let summary = DumpSummary::new(&a.dump, &dump);
            // The dump itself was readable: show it, then the error.
            let (kernel, error) = match guest {
                Ok(Guest::Windows(k)) => (Ok(KernelSummary::Windows(k.info())), None),
                Ok(Guest::Linux(k)) => (Ok(KernelSummary::Linux(k.info())), None),
                Err(e) => (Err(format!("{e:#}")), Some(e)),
            };
            let report = Report::Info {
                dump: summary,
                kernel,
            };
            emit(&report.render(format)?, format)?;
            match error {
                Some(e) => Err(e),
                None => Ok(0),
            }
        }
        Command::Shell(a) => crate::shellrun::run(g, &a.dump),
        Command::Live(a) => crate::live::run(g, a),
        Command::Watch(a) => crate::live::watch(g, a),
        Command::Analyze(a) if crate::series::is_series(a) => crate::series::run(g, a, format),
        other => {
            let (path, sc) = to_shell_command(other);
            let dump = open_dump(path)?;
            let kernel = open_guest(g, path, &dump)?;
            // analyze carries them among its warnings; the listings say
            // them once on stderr, so that no reader of stdout is misled.
            if !matches!(sc, ShellCommand::Analyze) {
                warn_dump_notes(&dump);
            }
            let html = match other {
                Command::Analyze(a) => a.html.as_deref(),
                _ => None,
            };
            let report = execute(&kernel, &sc)?;
            write_html(&report, html)?;
            emit(&report.render(format)?, format)?;
            Ok(report.exit_code())
        }
    }
}

/// The one-shot commands are the shell's commands over one dump.
pub(crate) fn to_shell_command(c: &Command) -> (&Path, ShellCommand) {
    match c {
        Command::Ps(a) => (&a.dump, ShellCommand::Processes),
        Command::Threads(a) => (&a.dump.dump, ShellCommand::Threads(a.pid)),
        Command::Lm(a) => (&a.dump, ShellCommand::Modules),
        Command::Dmesg(a) => (&a.dump.dump, ShellCommand::Dmesg(a.tail)),
        Command::Dt(a) => (&a.dump.dump, ShellCommand::Dt(a.type_name.clone(), a.addr)),
        Command::Db(a) => (&a.dump.dump, ShellCommand::Db(a.addr, a.length)),
        Command::Dq(a) => (&a.dump.dump, ShellCommand::Dq(a.addr, a.length.div_ceil(8))),
        Command::Locks(a) => (
            &a.dump.dump,
            ShellCommand::Locks {
                addr: a.addr,
                all: a.all,
            },
        ),
        Command::Thread(a) => (
            &a.dump.dump,
            match a.thread {
                ThreadRef::Id(id) => ShellCommand::ThreadId(id),
                ThreadRef::Address(addr) => ShellCommand::Thread(addr),
            },
        ),
        Command::Irp(a) => (&a.dump.dump, ShellCommand::Irp(a.addr)),
        Command::Fileobj(a) => (&a.dump.dump, ShellCommand::Fileobj(a.addr)),
        Command::Alpc(a) => (&a.dump.dump, ShellCommand::Alpc(a.addr)),
        Command::Handles(a) | Command::Files(a) => {
            (&a.dump.dump, ShellCommand::Handles(a.pid, a.path.clone()))
        }
        Command::Stacks(a) => (&a.dump.dump, ShellCommand::Stacks(a.filter.clone())),
        Command::Running(a) => (&a.dump, ShellCommand::Running),
        Command::Analyze(a) => (&a.dump.dump, ShellCommand::Analyze),
        Command::Info(a) | Command::Shell(a) => (&a.dump, ShellCommand::Info),
        Command::Demo(_) | Command::Capture(_) | Command::Live(_) | Command::Watch(_) => {
            unreachable!("handled before")
        }
    }
}
