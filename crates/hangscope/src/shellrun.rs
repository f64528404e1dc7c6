//! The interactive loop of `hangscope shell`.

use crate::cli::GlobalArgs;
use crate::execute::execute;
use crate::output::{emit, say};
use crate::render::Format;
use crate::session::{open_dump, open_guest, warn_dump_notes, Guest};
use crate::shell::{parse, ShellCommand, HELP};
use anyhow::Result;
use std::io::IsTerminal;
use std::path::Path;

/// Open the dump once, then read commands until `q` or end of input.
/// With a terminal it is a line editor with history; without one (a pipe,
/// a script) it reads lines from stdin, so sessions can be scripted.
pub fn run(g: &GlobalArgs, path: &Path) -> Result<u8> {
    let dump = open_dump(path)?;
    let kernel = open_guest(g, path, &dump)?;
    warn_dump_notes(&dump);
    let prompt = "kd> ";
    let format = Format::from_json_flag(g.json);
    let handle = |line: &str| -> bool {
        match parse(line) {
            Ok(ShellCommand::Quit) => return false,
            Ok(ShellCommand::Nothing) => {}
            Ok(c) => match execute(&kernel, &c).and_then(|r| r.render(format)) {
                Ok(text) => {
                    if let Err(e) = emit(text.trim_end(), format) {
                        say(format_args!("hangscope: {e:#}"));
                    }
                }
                Err(e) => say(format_args!("hangscope: {e:#}")),
            },
            Err(e) => say(format_args!("hangscope: {e}")),
        }
        true
    };
    if std::io::stdin().is_terminal() {
        match &kernel {
            Guest::Windows(k) => {
                let info = k.info();
                eprintln!(
                    "hangscope shell: Windows build {}, kernel at {:#x}. Type `help`.",
                    info.build
                        .map(|b| b.to_string())
                        .unwrap_or_else(|| "?".into()),
                    info.kernel_base
                );
            }
            Guest::Linux(k) => eprintln!(
                "hangscope shell: Linux {}. Type `help`.",
                k.release().unwrap_or_else(|| "(release unknown)".into())
            ),
        }
        let mut rl = rustyline::DefaultEditor::new()?;
        loop {
            match rl.readline(prompt) {
                Ok(line) => {
                    let _ = rl.add_history_entry(line.as_str());
                    if !handle(&line) {
                        break;
                    }
                }
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(_) => break,
            }
        }
    } else {
        let _ = HELP;
        for line in std::io::stdin().lines() {
            let line = line?;
            if !handle(&line) {
                break;
            }
        }
    }
    Ok(0)
}
