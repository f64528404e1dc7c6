//! One error type for the crate: what went wrong, and where.

use std::fmt;
use std::path::PathBuf;

/// Where an error happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file or socket on the host.
    Path(PathBuf),
    /// A libvirt domain (name or UUID).
    Domain(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Domain(d) => write!(f, "domain {d}"),
        }
    }
}

/// What went wrong while capturing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A host file operation failed (`op` says which; the io error's text).
    Io {
        /// What we were doing ("create", "rename", ...).
        op: &'static str,
        /// The io error's text.
        message: String,
    },
    /// Not enough free space for the dump where it is written.
    NoSpace {
        /// Bytes the dump is expected to need (the guest's RAM size); 0
        /// when the write itself failed.
        needed: u64,
        /// Bytes free in the target file system (0 when unknown).
        available: u64,
        /// The failing party's own words (QEMU, virsh or the OS), if any.
        detail: String,
    },
    /// The host refused access (file, socket or libvirt connection).
    Permission(String),
    /// libvirt has no domain by that name.
    DomainNotFound(String),
    /// The domain exists but is not running (its state as libvirt says it).
    DomainNotRunning(String),
    /// QEMU refused or failed the command; `class` and `desc` are QEMU's.
    Qemu {
        /// The QMP command.
        command: String,
        /// QEMU's error class (`GenericError`, ...).
        class: String,
        /// QEMU's error text, verbatim.
        desc: String,
    },
    /// `virsh` failed; `stderr` is its message, verbatim.
    Virsh {
        /// The virsh subcommand.
        command: String,
        /// Its exit status.
        status: Option<i32>,
        /// What virsh printed on stderr.
        stderr: String,
    },
    /// A program we need is not installed (or not on `PATH`).
    ToolMissing(String),
    /// The QMP peer said something this client cannot make sense of.
    Protocol(String),
    /// No answer in time.
    Timeout(String),
    /// The user interrupted the capture (Ctrl-C); what was cleaned up.
    Interrupted(String),
    /// The options make no sense together.
    BadOptions(String),
    /// The guest was suspended for the dump (`--pause`) and could not be
    /// resumed: it is still paused. The text is the resume command's error.
    ResumeFailed(String),
    /// The output directory already holds a series with dumps (its
    /// manifest would be overwritten); one directory holds one series.
    DirectoryInUse {
        /// How many dumps the existing manifest lists.
        dumps: usize,
    },
}

/// A capture error: what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where, when known.
    pub at: Option<Location>,
}

impl Error {
    /// An error without a location.
    pub fn new(kind: ErrorKind) -> Error {
        Error { kind, at: None }
    }

    /// The same error at `at`.
    pub fn at(mut self, at: Location) -> Error {
        self.at = Some(at);
        self
    }

    /// A host io error, classified: "no space" and "permission" get their
    /// own kinds because the on-call engineer acts differently on them.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, e: &std::io::Error) -> Error {
        let kind = match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorKind::NoSpace {
                needed: 0,
                available: 0,
                detail: format!("{op}: {e}"),
            },
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
                ErrorKind::Permission(format!("{op}: {e}"))
            }
            _ => ErrorKind::Io {
                op,
                message: e.to_string(),
            },
        };
        Error::new(kind).at(Location::Path(path.into()))
    }

    /// A short stable name for logs and tests.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ErrorKind::Io { .. } => "Io",
            ErrorKind::NoSpace { .. } => "NoSpace",
            ErrorKind::Permission(_) => "Permission",
            ErrorKind::DomainNotFound(_) => "DomainNotFound",
            ErrorKind::DomainNotRunning(_) => "DomainNotRunning",
            ErrorKind::Qemu { .. } => "Qemu",
            ErrorKind::Virsh { .. } => "Virsh",
            ErrorKind::ToolMissing(_) => "ToolMissing",
            ErrorKind::Protocol(_) => "Protocol",
            ErrorKind::Timeout(_) => "Timeout",
            ErrorKind::Interrupted(_) => "Interrupted",
            ErrorKind::BadOptions(_) => "BadOptions",
            ErrorKind::DirectoryInUse { .. } => "DirectoryInUse",
            ErrorKind::ResumeFailed(_) => "ResumeFailed",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Io { op, message } => write!(f, "{op} failed: {message}")?,
            ErrorKind::NoSpace {
                needed, available, ..
            } if *needed > 0 => write!(
                f,
                "not enough free space: the dump needs about {} MiB, {} MiB are free \
                 (choose another -o directory, or a kdump-zlib dump which is compressed)",
                needed >> 20,
                available >> 20
            )?,
            ErrorKind::NoSpace { detail, .. } => write!(
                f,
                "no space left on the device ({detail}); choose another -o directory, \
                 or a kdump-zlib dump which is compressed"
            )?,
            ErrorKind::Permission(what) => write!(
                f,
                "access refused ({what}); check that the output directory is on a \
                 writable file system and writable by you (and by libvirtd), and that you \
                 may use libvirt or the QMP socket (root, or the libvirt group)"
            )?,
            ErrorKind::DomainNotFound(msg) => write!(
                f,
                "no such domain ({msg}); `virsh list --all` shows the names"
            )?,
            ErrorKind::DomainNotRunning(state) => write!(
                f,
                "the domain is not running (state: {state}); only a running or paused \
                 guest has memory to dump"
            )?,
            ErrorKind::Qemu {
                command,
                class,
                desc,
            } => write!(f, "QEMU refused `{command}`: {desc} ({class})")?,
            ErrorKind::Virsh {
                command,
                status,
                stderr,
            } => {
                write!(f, "`virsh {command}` failed")?;
                if let Some(s) = status {
                    write!(f, " (exit status {s})")?;
                }
                write!(f, ": {}", stderr.trim())?
            }
            ErrorKind::ToolMissing(tool) => write!(
                f,
                "`{tool}` is not installed or not on PATH (Debian: apt-get install libvirt-clients)"
            )?,
            ErrorKind::Protocol(msg) => write!(f, "QMP protocol error: {msg}")?,
            ErrorKind::Timeout(what) => write!(f, "timed out: {what}")?,
            ErrorKind::Interrupted(what) => write!(f, "interrupted: {what}")?,
            ErrorKind::BadOptions(msg) => write!(f, "bad options: {msg}")?,
            ErrorKind::ResumeFailed(why) => write!(
                f,
                "THE GUEST IS STILL PAUSED: it was suspended for the dump and could not be \
                 resumed ({why}); resume it by hand (`virsh resume DOMAIN`, or QMP `cont`)"
            )?,
            ErrorKind::DirectoryInUse { dumps } => write!(
                f,
                "the output directory already holds a capture series ({dumps} dump(s) in its \
                 manifest.json); give each series its own -o directory"
            )?,
        }
        if let Some(at) = &self.at {
            write!(f, " [{at}]")?;
        }
        Ok(())
    }
}
