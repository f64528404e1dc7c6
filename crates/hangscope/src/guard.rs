//! hangscope never writes where it reads: every output path (`--html`,
//! `--log-file`) is checked against the dump it analyses, and against a
//! capture's own output directory, before anything is opened for writing.
//!
//! Paths are compared by what they name, not by how they are spelt: the
//! device and inode of an existing file, so that a hard link, a symbolic
//! link or `./x/../dump.elf` cannot slip through.

use crate::cli::{Cli, Command};
use anyhow::{bail, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The files a command reads as dumps.
fn inputs(cli: &Cli) -> Vec<PathBuf> {
    let path = match &cli.command {
        Command::Info(a) | Command::Shell(a) | Command::Ps(a) | Command::Lm(a) => &a.dump,
        Command::Running(a) => &a.dump,
        Command::Threads(a) => &a.dump.dump,
        Command::Dmesg(a) => &a.dump.dump,
        Command::Dt(a) => &a.dump.dump,
        Command::Db(a) | Command::Dq(a) => &a.dump.dump,
        Command::Locks(a) => &a.dump.dump,
        Command::Alpc(a) => &a.dump.dump,
        Command::Thread(a) => &a.dump.dump,
        Command::Irp(a) | Command::Fileobj(a) => &a.dump.dump,
        Command::Handles(a) | Command::Files(a) => &a.dump.dump,
        Command::Stacks(a) => &a.dump.dump,
        Command::Analyze(a) => &a.dump.dump,
        Command::Demo(_) | Command::Capture(_) | Command::Live(_) | Command::Watch(_) => {
            return Vec::new()
        }
    };
    let mut v = vec![path.clone()];
    if let Command::Analyze(a) = &cli.command {
        // A series: every dump it names, listed or in a capture's manifest.
        v.extend(a.more.iter().cloned());
        v.extend(crate::series::manifest_dumps(&a.dump.dump).unwrap_or_default());
    }
    v
}

/// The files the command will write, each with the option that names it.
fn outputs(cli: &Cli) -> Vec<(&'static str, &Path)> {
    let mut out = Vec::new();
    if let Some(p) = &cli.global.log_file {
        out.push(("--log-file", p.as_path()));
    }
    match &cli.command {
        Command::Analyze(a) => out.extend(a.html.as_deref().map(|p| ("--html", p))),
        Command::Demo(a) => out.extend(a.html.as_deref().map(|p| ("--html", p))),
        _ => {}
    }
    out
}

/// Refuse, before anything is written, an output that is one of the input
/// dumps, or that lies inside the directory a capture is writing.
pub fn check_outputs(cli: &Cli) -> Result<()> {
    let ins = inputs(cli);
    for (option, out) in outputs(cli) {
        for input in &ins {
            if same_file(out, input) {
                bail!(
                    "{option} {} is the dump being read ({}): hangscope never writes over its \
                     input; choose another output path",
                    out.display(),
                    input.display()
                );
            }
        }
        if let Command::Capture(c) = &cli.command {
            if inside(out, &c.out) {
                bail!(
                    "{option} {} is inside the capture's output directory {}, which the \
                     capture is writing; choose a path outside it",
                    out.display(),
                    c.out.display()
                );
            }
        }
    }
    Ok(())
}

/// Whether two paths name the same existing file (device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Whether `path` (which may not exist yet) lies in directory `dir`.
fn inside(path: &Path, dir: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        // Not created yet: compare as written, made absolute.
        return absolute(path).starts_with(absolute(dir));
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::canonicalize(parent) {
        Ok(p) => p.starts_with(&dir),
        Err(_) => absolute(path).starts_with(&dir),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hard_link_and_a_symlink_are_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("guest.elf");
        std::fs::write(&dump, b"x").unwrap();
        let link = dir.path().join("hard.elf");
        std::fs::hard_link(&dump, &link).unwrap();
        let sym = dir.path().join("sym.elf");
        std::os::unix::fs::symlink(&dump, &sym).unwrap();
        let dotted = dir.path().join("sub/../guest.elf");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for p in [&dump, &link, &sym, &dotted] {
            assert!(same_file(p, &dump), "{}", p.display());
        }
        assert!(!same_file(&dir.path().join("new.html"), &dump));
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").unwrap();
        assert!(!same_file(&other, &dump));
    }

    #[test]
    fn a_path_in_the_capture_directory_is_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let cap = dir.path().join("cap");
        assert!(inside(&cap.join("log.txt"), &cap), "before it exists");
        std::fs::create_dir(&cap).unwrap();
        std::fs::create_dir(dir.path().join("x")).unwrap();
        assert!(inside(&cap.join("log.txt"), &cap));
        assert!(inside(&dir.path().join("x/../cap/log.txt"), &cap));
        assert!(!inside(&dir.path().join("log.txt"), &cap));
    }
}
