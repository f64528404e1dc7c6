//! `--help-markdown`: the README's manual, generated from the clap
//! definitions so that it cannot drift from the real options.

use clap::CommandFactory;
use std::fmt::Write;

/// The whole manual as Markdown.
pub fn help_markdown() -> String {
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    let mut out = String::new();
    write_command(&mut out, &cmd, "hangscope", 2);
    out
}

fn write_command(out: &mut String, cmd: &clap::Command, path: &str, depth: usize) {
    let _ = writeln!(out, "{} `{}`\n", "#".repeat(depth), path);
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        let _ = writeln!(out, "{about}\n");
    }
    let args: Vec<_> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version")
        .collect();
    if !args.is_empty() {
        let _ = writeln!(out, "| argument | meaning |\n|---|---|");
        for a in args {
            let name = match (a.get_long(), a.get_short()) {
                (Some(l), Some(s)) => format!("`-{s}`, `--{l}`"),
                (Some(l), None) => format!("`--{l}`"),
                (None, Some(s)) => format!("`-{s}`"),
                (None, None) => format!("`{}`", a.get_id().as_str().to_uppercase()),
            };
            let help = a
                .get_help()
                .map(|h| h.to_string().replace('\n', " "))
                .unwrap_or_default();
            let _ = writeln!(out, "| {name} | {help} |");
        }
        out.push('\n');
    }
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_command(out, sub, &format!("{path} {}", sub.get_name()), depth + 1);
    }
}
