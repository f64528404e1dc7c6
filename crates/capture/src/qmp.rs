//! A small QMP client: JSON lines over a Unix socket.
//!
//! QMP (QEMU Machine Protocol) greets with `{"QMP": {...}}`, wants
//! `qmp_capabilities` before any other command, then answers each command
//! with `{"return": ...}` or `{"error": {"class", "desc"}}` carrying the `id`
//! we sent, and interleaves asynchronous `{"event": ...}` messages, which
//! are queued here for [`Qmp::take_event`].

use crate::error::{Error, ErrorKind, Location};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// No QMP message we use comes near this; a peer sending more is broken.
const MAX_LINE: usize = 16 << 20;
/// Events are kept only up to this many (the oldest are dropped).
const MAX_EVENTS: usize = 1024;

/// A connected QMP session in command mode.
#[derive(Debug)]
pub struct Qmp {
    stream: UnixStream,
    path: PathBuf,
    pending: Vec<u8>,
    events: VecDeque<Value>,
    next_id: u64,
    /// The greeting's `QMP.version` object.
    pub greeting_version: Value,
    /// How long to wait for a command's answer.
    pub timeout: Duration,
}

impl Qmp {
    /// Connect to the QMP socket at `path`, read the greeting and enter
    /// command mode.
    pub fn connect(path: &Path) -> Result<Qmp, Error> {
        let stream = UnixStream::connect(path).map_err(|e| {
            let mut err = Error::io("connect to the QMP socket", path, &e);
            if e.kind() == IoKind::ConnectionRefused || e.kind() == IoKind::NotFound {
                err.kind = ErrorKind::Io {
                    op: "connect to the QMP socket",
                    message: format!(
                        "{e}: is QEMU running with `-qmp unix:{},server=on,wait=off`? \
                         (only one client may be connected at a time)",
                        path.display()
                    ),
                };
            }
            err
        })?;
        let mut qmp = Qmp {
            stream,
            path: path.to_path_buf(),
            pending: Vec::new(),
            events: VecDeque::new(),
            next_id: 1,
            greeting_version: Value::Null,
            timeout: Duration::from_secs(30),
        };
        // QEMU greets at once; silence means another client holds the
        // socket (QEMU serves one at a time and queues the rest).
        let greeting = qmp
            .read_message(Instant::now() + Duration::from_secs(5))
            .map_err(|e| match e.kind {
                ErrorKind::Timeout(_) => Error::new(ErrorKind::Timeout(
                    "no QMP greeting within 5 s: another client (libvirt, a monitor \
                     session) is probably connected to this socket, and QEMU serves \
                     one at a time"
                        .into(),
                ))
                .at(Location::Path(path.to_path_buf())),
                _ => e,
            })?;
        let Some(q) = greeting.get("QMP") else {
            return Err(qmp.protocol(format!("expected the QMP greeting, got {greeting}")));
        };
        qmp.greeting_version = q.get("version").cloned().unwrap_or(Value::Null);
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn protocol(&self, msg: String) -> Error {
        Error::new(ErrorKind::Protocol(msg)).at(Location::Path(self.path.clone()))
    }

    /// Run `command` with `arguments` and return its `return` value, or
    /// QEMU's error as [`ErrorKind::Qemu`].
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, Error> {
        self.execute_with_fd(command, arguments, None)
    }

    /// Like [`Qmp::execute`], passing `fd` along with the command
    /// (SCM_RIGHTS), as `getfd` and `add-fd` want.
    pub fn execute_with_fd(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        fd: Option<RawFd>,
    ) -> Result<Value, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"execute": command, "id": id});
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        match fd {
            Some(fd) => self.send_with_fd(line.as_bytes(), fd)?,
            None => self
                .stream
                .write_all(line.as_bytes())
                .map_err(|e| Error::io("write to the QMP socket", &self.path, &e))?,
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let m = self.read_message(deadline)?;
            if m.get("event").is_some() {
                self.push_event(m);
                continue;
            }
            if m.get("id").and_then(Value::as_u64) != Some(id) {
                // An answer to an earlier, abandoned command: skip it.
                continue;
            }
            if let Some(r) = m.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = m.get("error") {
                let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                return Err(Error::new(ErrorKind::Qemu {
                    command: command.to_string(),
                    class: s("class"),
                    desc: s("desc"),
                })
                .at(Location::Path(self.path.clone())));
            }
            return Err(self.protocol(format!("unexpected answer to {command}: {m}")));
        }
    }

    fn push_event(&mut self, m: Value) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(m);
    }

    /// Remove and return the first queued event named `name`, reading what
    /// QEMU has sent meanwhile (without waiting).
    pub fn take_event(&mut self, name: &str) -> Result<Option<Value>, Error> {
        while let Some(m) = self.try_read_message()? {
            if m.get("event").is_some() {
                self.push_event(m);
            }
        }
        let pos = self
            .events
            .iter()
            .position(|e| e.get("event").and_then(Value::as_str) == Some(name));
        Ok(pos.and_then(|p| self.events.remove(p)))
    }

    fn send_with_fd(&mut self, bytes: &[u8], fd: RawFd) -> Result<(), Error> {
        // SAFETY: a plain sendmsg(2) with one iovec over `bytes` and one
        // SCM_RIGHTS control message sized by CMSG_SPACE for one fd; every
        // pointer refers to a live local buffer of the stated length.
        let sent = unsafe {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            let mut control = vec![0u8; space];
            let mut iov = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            let mut hdr: libc::msghdr = std::mem::zeroed();
            hdr.msg_iov = &mut iov;
            hdr.msg_iovlen = 1;
            hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            hdr.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::copy_nonoverlapping(
                &fd as *const RawFd as *const u8,
                libc::CMSG_DATA(cmsg),
                std::mem::size_of::<RawFd>(),
            );
            libc::sendmsg(self.stream.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL)
        };
        if sent < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::io("pass a file descriptor over QMP", &self.path, &e));
        }
        let sent = sent as usize;
        if sent < bytes.len() {
            self.stream
                .write_all(&bytes[sent..])
                .map_err(|e| Error::io("write to the QMP socket", &self.path, &e))?;
        }
        Ok(())
    }

    /// Take one complete line out of `pending`, if there is one.
    fn pop_line(&mut self) -> Result<Option<Value>, Error> {
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            return serde_json::from_str(text)
                .map(Some)
                .map_err(|e| self.protocol(format!("bad JSON from QEMU ({e}): {text:.200}")));
        }
        if self.pending.len() > MAX_LINE {
            return Err(self.protocol(format!("a QMP message longer than {MAX_LINE} bytes")));
        }
        Ok(None)
    }

    fn fill(&mut self, wait: Option<Duration>) -> Result<bool, Error> {
        let mut buf = [0u8; 65536];
        self.stream
            .set_nonblocking(wait.is_none())
            .and_then(|_| self.stream.set_read_timeout(wait))
            .map_err(|e| Error::io("configure the QMP socket", &self.path, &e))?;
        match self.stream.read(&mut buf) {
            Ok(0) => Err(Error::new(ErrorKind::Io {
                op: "read from the QMP socket",
                message: "QEMU closed the connection (did it exit?)".into(),
            })
            .at(Location::Path(self.path.clone()))),
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => Ok(false),
            Err(e) if e.kind() == IoKind::Interrupted => Ok(false),
            Err(e) => Err(Error::io("read from the QMP socket", &self.path, &e)),
        }
    }

    fn try_read_message(&mut self) -> Result<Option<Value>, Error> {
        if let Some(m) = self.pop_line()? {
            return Ok(Some(m));
        }
        while self.fill(None)? {
            if let Some(m) = self.pop_line()? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    fn read_message(&mut self, deadline: Instant) -> Result<Value, Error> {
        loop {
            if let Some(m) = self.pop_line()? {
                return Ok(m);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::new(ErrorKind::Timeout(format!(
                    "no answer from QEMU within {} s",
                    self.timeout.as_secs()
                )))
                .at(Location::Path(self.path.clone())));
            }
            // Wake at least every 200 ms so a Ctrl-C is seen.
            let wait = (deadline - now).min(Duration::from_millis(200));
            self.fill(Some(wait.max(Duration::from_millis(1))))?;
        }
    }
}
