//! Dumping through libvirt by driving `virsh` (no libvirt bindings needed).
//!
//! `virsh dump DOMAIN FILE --memory-only --format F --verbose` has libvirtd
//! open FILE and hand it to QEMU's `dump-guest-memory`; `--verbose` prints
//! `Dump: [ NN %]` progress on stderr. virsh runs in its own process group
//! so a Ctrl-C reaches only us; we then abort libvirt's job
//! (`virsh domjobabort`), wait for virsh, and remove the partial file.

use crate::{Backend, DumpFormat, Error, ErrorKind, Location, VmInfo};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// virsh's stderr is kept up to this many bytes for error messages.
const MAX_STDERR: usize = 64 << 10;

#[derive(Debug)]
pub(crate) struct Virsh {
    domain: String,
    uri: Option<String>,
    /// Guest RAM, to turn virsh's percentages into bytes.
    memory_bytes: Option<u64>,
}

impl Virsh {
    pub(crate) fn new(domain: &str, uri: Option<&str>) -> Virsh {
        Virsh {
            domain: domain.to_string(),
            uri: uri.map(String::from),
            memory_bytes: None,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("virsh");
        // English messages: we classify errors by their text.
        c.env("LC_ALL", "C").env("LANG", "C");
        if let Some(u) = &self.uri {
            c.arg("-c").arg(u);
        }
        c.arg("-q").args(args);
        c
    }

    /// Run a short virsh subcommand and return its stdout.
    fn run(&self, args: &[&str]) -> Result<String, Error> {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(&e))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        Err(self.classify(args[0], out.status.code(), &stderr))
    }

    fn spawn_error(&self, e: &std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(ErrorKind::ToolMissing("virsh".into()))
        } else {
            Error::io("run virsh", "virsh", e)
        }
    }

    /// Turn virsh's error text into the error kind an engineer acts on.
    fn classify(&self, command: &str, status: Option<i32>, stderr: &str) -> Error {
        let text = stderr.trim().to_string();
        let lower = text.to_ascii_lowercase();
        let at = Location::Domain(self.domain.clone());
        let kind = if lower.contains("domain not found") || lower.contains("failed to get domain") {
            ErrorKind::DomainNotFound(text)
        } else if lower.contains("domain is not running") {
            ErrorKind::DomainNotRunning(text)
        } else if lower.contains("no space left") {
            ErrorKind::NoSpace {
                needed: 0,
                available: 0,
                detail: text,
            }
        } else if lower.contains("permission denied")
            || lower.contains("authentication failed")
            || lower.contains("read-only file system")
        {
            ErrorKind::Permission(text)
        } else {
            let mut stderr = text;
            if lower.contains("failed to connect to the hypervisor") {
                stderr.push_str(
                    " (is libvirtd running? without systemd: `virtlogd -d; libvirtd -d`)",
                );
            }
            ErrorKind::Virsh {
                command: command.to_string(),
                status,
                stderr,
            }
        };
        Error::new(kind).at(at)
    }
}

/// Whether a libvirt URI names another host (`qemu+ssh://host/system`,
/// `qemu://host/system`): libvirtd there would write the dump on *its*
/// file system, out of reach of the rename and the hash done here.
pub(crate) fn is_remote_uri(uri: &str) -> bool {
    let Some((_, rest)) = uri.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = host.split(':').next().unwrap_or(host);
    !(host.is_empty() || host == "localhost" || host == "127.0.0.1" || host == "[::1]")
}

/// The value after `key:` on the line of `text` that starts with `key`.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|rest| rest.trim_start().strip_prefix(':'))
        .map(str::trim)
}

/// The last `NN %` progress figure in a chunk of `virsh --verbose` output.
fn parse_percent(chunk: &str) -> Option<u64> {
    let end = chunk.rfind('%')?;
    let head = chunk[..end].trim_end();
    let start = head
        .rfind(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or(0, |i| i + 1);
    let num = &head[start..];
    let whole = num.split('.').next()?;
    whole.parse::<u64>().ok().filter(|p| *p <= 100)
}

impl Backend for Virsh {
    fn method(&self) -> &'static str {
        "libvirt"
    }

    fn target(&self) -> String {
        self.uri.clone().unwrap_or_else(|| "(virsh default)".into())
    }

    fn info(&mut self) -> Result<VmInfo, Error> {
        if self.uri.is_none() {
            // Where virsh's default (LIBVIRT_DEFAULT_URI, ...) points: for
            // the manifest, and to catch a remote default.
            self.uri = self
                .run(&["uri"])
                .ok()
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty());
        }
        if let Some(uri) = self.uri.as_deref().filter(|u| is_remote_uri(u)) {
            return Err(Error::new(ErrorKind::BadOptions(format!(
                "{uri} is a remote libvirt: its libvirtd would write the dump on that \
                 host; run the capture there"
            ))));
        }
        let dominfo = self.run(&["dominfo", &self.domain])?;
        let version = self.run(&["version"]).unwrap_or_default();
        let kib = |k: &str| {
            field(&dominfo, k)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .and_then(|n| n.checked_mul(1024))
        };
        self.memory_bytes = kib("Max memory");
        Ok(VmInfo {
            domain: field(&dominfo, "Name").unwrap_or(&self.domain).to_string(),
            uuid: field(&dominfo, "UUID").map(String::from),
            qemu_version: field(&version, "Running hypervisor")
                .map(|v| v.trim_start_matches("QEMU").trim().to_string()),
            libvirt_version: field(&version, "Using library")
                .map(|v| v.trim_start_matches("libvirt").trim().to_string()),
            memory_bytes: kib("Max memory"),
            vcpus: field(&dominfo, "CPU(s)").and_then(|v| v.parse().ok()),
        })
    }

    fn state(&mut self) -> Result<String, Error> {
        let state = self.run(&["domstate", &self.domain])?.trim().to_string();
        match state.as_str() {
            "running" | "paused" | "pmsuspended" | "in shutdown" | "crashed" => Ok(state),
            _ => Err(Error::new(ErrorKind::DomainNotRunning(state))
                .at(Location::Domain(self.domain.clone()))),
        }
    }

    fn suspend(&mut self) -> Result<(), Error> {
        self.run(&["suspend", &self.domain]).map(drop)
    }

    fn resume(&mut self) -> Result<(), Error> {
        self.run(&["resume", &self.domain]).map(drop)
    }

    fn dump(
        &mut self,
        partial: &Path,
        format: DumpFormat,
        progress: &mut dyn FnMut(u64, u64),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(), Error> {
        let path = partial.to_string_lossy().into_owned();
        let mut child = self
            .command(&[
                "dump",
                &self.domain,
                &path,
                "--memory-only",
                "--format",
                format.qemu_name(),
                "--verbose",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| self.spawn_error(&e))?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let mut stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Some(s) = stderr.as_mut() {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut text: Vec<u8> = Vec::new();
        let mut aborted = false;
        let status = loop {
            if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
                if let Some(p) = parse_percent(&String::from_utf8_lossy(&chunk)) {
                    match self.memory_bytes {
                        Some(m) => progress(m / 100 * p, m),
                        None => progress(p, 100),
                    }
                }
                if text.len() < MAX_STDERR {
                    text.extend_from_slice(&chunk);
                }
            }
            if cancelled() && !aborted {
                aborted = true;
                let _ = self.run(&["domjobabort", &self.domain]);
            }
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) => {}
                Err(e) => return Err(Error::io("wait for virsh", "virsh", &e)),
            }
        };
        let _ = reader.join();
        while let Ok(chunk) = rx.try_recv() {
            if text.len() < MAX_STDERR {
                text.extend_from_slice(&chunk);
            }
        }
        if aborted || cancelled() {
            let _ = std::fs::remove_file(partial);
            return Err(Error::new(ErrorKind::Interrupted(
                "libvirt's dump job was aborted and the partial file removed".into(),
            ))
            .at(Location::Domain(self.domain.clone())));
        }
        if !status.success() {
            let text = String::from_utf8_lossy(&text);
            // Keep only virsh's `error:` lines, not the progress noise.
            let errors: Vec<&str> = text
                .split(['\r', '\n'])
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("Dump:"))
                .collect();
            return Err(self.classify("dump", status.code(), &errors.join("\n")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_from_verbose_output() {
        assert_eq!(parse_percent("\rDump: [ 42 %]"), Some(42));
        assert_eq!(parse_percent("\rDump: [  3 %]\rDump: [100 %]\n"), Some(100));
        assert_eq!(parse_percent("\rDump: [12.50 %]"), Some(12));
        assert_eq!(parse_percent("error: no"), None);
        assert_eq!(parse_percent("[999 %]"), None);
    }

    #[test]
    fn fields_from_dominfo_and_version() {
        let dominfo = "Id:             1\nName:           hs\nCPU(s):         2\n\
                       Max memory:     65536 KiB\nUUID:           2a1d\n";
        assert_eq!(field(dominfo, "Name"), Some("hs"));
        assert_eq!(field(dominfo, "Max memory"), Some("65536 KiB"));
        assert_eq!(field(dominfo, "CPU(s)"), Some("2"));
        let version = "Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\n\
                       Running hypervisor: QEMU 7.2.22\n";
        assert_eq!(field(version, "Using library"), Some("libvirt 9.0.0"));
        assert_eq!(field(version, "Running hypervisor"), Some("QEMU 7.2.22"));
    }

    #[test]
    fn remote_uris_are_recognised() {
        assert!(!is_remote_uri("qemu:///system"));
        assert!(!is_remote_uri("qemu:///session"));
        assert!(!is_remote_uri("qemu+unix:///system?socket=/run/x"));
        assert!(!is_remote_uri("qemu://localhost/system"));
        assert!(is_remote_uri("qemu+ssh://root@hv12/system"));
        assert!(is_remote_uri("qemu+tcp://hv12:16509/system"));
        assert!(!is_remote_uri("test:///default"));
    }

    #[test]
    fn errors_are_classified_by_virsh_text() {
        let v = Virsh::new("d", None);
        let e = v.classify(
            "dump",
            Some(1),
            "error: failed to get domain 'd'\nerror: Domain not found",
        );
        assert_eq!(e.name(), "DomainNotFound");
        let e = v.classify(
            "dump",
            Some(1),
            "error: Requested operation is not valid: domain is not running",
        );
        assert_eq!(e.name(), "DomainNotRunning");
        let e = v.classify("dump", Some(1), "error: Permission denied");
        assert_eq!(e.name(), "Permission");
        let e = v.classify("dump", Some(1), "error: unsupported configuration: x");
        assert!(
            e.to_string().contains("unsupported configuration: x"),
            "{e}"
        );
    }
}
