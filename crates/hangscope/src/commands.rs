//! One function per command.

use crate::cli::{Cli, Command};
use anyhow::{bail, Result};

/// Run the command; returns the exit code.
pub fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        _ => bail!("this command is not wired yet"),
    }
}
