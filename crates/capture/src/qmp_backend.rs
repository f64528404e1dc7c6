//! Dumping through QEMU's QMP socket, when there is no libvirt.
//!
//! The dump file is created here (so our permissions and umask apply, and a
//! QEMU in another mount namespace or running as another user can still
//! write it) and handed to QEMU over the socket (`getfd`, SCM_RIGHTS);
//! `dump-guest-memory` then writes to `fd:NAME` in the background
//! (`detach: true`) while `query-dump` reports progress and
//! `DUMP_COMPLETED` the end.
//!
//! QMP has no command to cancel a dump. On Ctrl-C the partial file is
//! unlinked at once: QEMU finishes writing into the deleted file (whose
//! space returns when QEMU closes it) and resumes the guest when done.

use crate::qmp::Qmp;
use crate::{Backend, DumpFormat, Error, ErrorKind, Location, VmInfo};
use serde_json::{json, Value};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The name our dump fd gets inside QEMU.
const FD_NAME: &str = "hangscope-dump";

#[derive(Debug)]
pub(crate) struct QmpBackend {
    qmp: Qmp,
    socket: PathBuf,
}

impl QmpBackend {
    pub(crate) fn connect(socket: &Path) -> Result<QmpBackend, Error> {
        Ok(QmpBackend {
            qmp: Qmp::connect(socket)?,
            socket: socket.to_path_buf(),
        })
    }

    fn optional(&mut self, command: &str) -> Option<Value> {
        self.qmp.execute(command, None).ok()
    }
}

impl Backend for QmpBackend {
    fn method(&self) -> &'static str {
        "qmp"
    }

    fn target(&self) -> String {
        self.socket.display().to_string()
    }

    fn info(&mut self) -> Result<VmInfo, Error> {
        let version = self.qmp.execute("query-version", None)?;
        let q = &version["qemu"];
        let mut qemu_version = format!(
            "{}.{}.{}",
            q["major"].as_u64().unwrap_or(0),
            q["minor"].as_u64().unwrap_or(0),
            q["micro"].as_u64().unwrap_or(0)
        );
        if let Some(p) = version["package"].as_str().filter(|p| !p.trim().is_empty()) {
            qemu_version.push_str(&format!(" ({})", p.trim()));
        }
        let name = self
            .optional("query-name")
            .and_then(|v| v["name"].as_str().map(String::from))
            .unwrap_or_else(|| self.socket.display().to_string());
        let uuid = self
            .optional("query-uuid")
            .and_then(|v| v["UUID"].as_str().map(String::from))
            .filter(|u| u != "00000000-0000-0000-0000-000000000000");
        let memory_bytes = self
            .optional("query-memory-size-summary")
            .and_then(|v| v["base-memory"].as_u64());
        let vcpus = self
            .optional("query-cpus-fast")
            .and_then(|v| v.as_array().map(|a| a.len() as u32));
        Ok(VmInfo {
            domain: name,
            uuid,
            qemu_version: Some(qemu_version),
            libvirt_version: None,
            memory_bytes,
            vcpus,
        })
    }

    fn state(&mut self) -> Result<String, Error> {
        let s = self.qmp.execute("query-status", None)?;
        Ok(s["status"].as_str().unwrap_or("unknown").to_string())
    }

    fn suspend(&mut self) -> Result<(), Error> {
        self.qmp.execute("stop", None).map(drop)
    }

    fn resume(&mut self) -> Result<(), Error> {
        self.qmp.execute("cont", None).map(drop)
    }

    fn dump(
        &mut self,
        partial: &Path,
        format: DumpFormat,
        progress: &mut dyn FnMut(u64, u64),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(), Error> {
        // QEMU runs one dump at a time, and one abandoned by an interrupted
        // run goes on to its end: wait for it rather than fail.
        while self.qmp.execute("query-dump", None)?["status"].as_str() == Some("active") {
            if cancelled() {
                return Err(Error::new(ErrorKind::Interrupted(
                    "while waiting for QEMU to finish an earlier dump".into(),
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(partial)
            .map_err(|e| Error::io("create the dump file", partial, &e))?;
        // Drop any stale completion event from an earlier dump.
        while self.qmp.take_event("DUMP_COMPLETED")?.is_some() {}
        let args = json!({
            "paging": false,
            "protocol": format!("fd:{FD_NAME}"),
            "detach": true,
            "format": format.qemu_name(),
        });
        let mut attempt = 0;
        let started = loop {
            // getfd replaces a stale fd of the same name; QEMU takes the fd
            // out of its table when a dump uses it, even one that fails, so
            // each attempt passes it anew.
            self.qmp.execute_with_fd(
                "getfd",
                Some(json!({"fdname": FD_NAME})),
                Some(file.as_raw_fd()),
            )?;
            let r = self.qmp.execute("dump-guest-memory", Some(args.clone()));
            attempt += 1;
            match &r {
                // QEMU 7.2 reports an earlier dump completed a moment before
                // it lifts that dump's migration blocker; a new dump in that
                // window is refused with "... dump-guest-memory in progress".
                Err(Error {
                    kind: ErrorKind::Qemu { desc, .. },
                    ..
                }) if desc.contains("in progress") && attempt < 50 && !cancelled() => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => break r,
            }
        };
        drop(file);
        if let Err(mut e) = started {
            let _ = self
                .qmp
                .execute("closefd", Some(json!({"fdname": FD_NAME})));
            if let ErrorKind::Qemu { desc, .. } = &mut e.kind {
                if let Ok(caps) = self.qmp.execute("query-dump-guest-memory-capability", None) {
                    let offered: Vec<&str> = caps["formats"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if !offered.contains(&format.qemu_name()) {
                        desc.push_str(&format!("; this QEMU offers only: {}", offered.join(", ")));
                    }
                }
            }
            return Err(e);
        }
        let mut failed_since: Option<Instant> = None;
        loop {
            if cancelled() {
                let _ = std::fs::remove_file(partial);
                let done = self
                    .qmp
                    .execute("query-dump", None)
                    .ok()
                    .map(|d| {
                        let c = d["completed"].as_u64().unwrap_or(0);
                        let t = d["total"].as_u64().unwrap_or(0).max(1);
                        c.saturating_mul(100) / t
                    })
                    .unwrap_or(0);
                return Err(Error::new(ErrorKind::Interrupted(format!(
                    "the partial dump was deleted; QMP cannot cancel a dump, so QEMU \
                     goes on writing into the deleted file ({done}% done) and resumes \
                     the guest when it finishes"
                )))
                .at(Location::Path(partial.to_path_buf())));
            }
            if let Some(ev) = self.qmp.take_event("DUMP_COMPLETED")? {
                let data = &ev["data"];
                if let Some(err) = data["error"].as_str() {
                    return Err(qemu_dump_error(err, partial));
                }
                let r = &data["result"];
                if r["status"].as_str() == Some("failed") {
                    return Err(qemu_dump_error("the dump failed", partial));
                }
                if let (Some(c), Some(t)) = (r["completed"].as_u64(), r["total"].as_u64()) {
                    progress(c, t);
                }
                return Ok(());
            }
            let d = self.qmp.execute("query-dump", None)?;
            let completed = d["completed"].as_u64().unwrap_or(0);
            let total = d["total"].as_u64().unwrap_or(0);
            progress(completed, total);
            match d["status"].as_str() {
                Some("completed") => return Ok(()),
                Some("failed") => {
                    // The event carries QEMU's reason: give it a moment.
                    let since = *failed_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(2) {
                        return Err(qemu_dump_error(
                            "the dump failed (QEMU gave no reason)",
                            partial,
                        ));
                    }
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn qemu_dump_error(desc: &str, partial: &Path) -> Error {
    let lower = desc.to_ascii_lowercase();
    let kind = if lower.contains("no space") {
        ErrorKind::NoSpace {
            needed: 0,
            available: 0,
            detail: format!("QEMU: {desc}"),
        }
    } else {
        ErrorKind::Qemu {
            command: "dump-guest-memory".into(),
            class: "DumpFailed".into(),
            desc: desc.to_string(),
        }
    };
    Error::new(kind).at(Location::Path(partial.to_path_buf()))
}
