//! Reaching a running QEMU: what the user named (a libvirt domain, a QMP
//! socket or a QEMU pid) and the monitor that answers for it.
//!
//! QEMU serves one QMP client at a time, and libvirt holds the monitor of
//! the guests it runs; so a libvirt guest is driven through `virsh`
//! (`qemu-monitor-command`, `suspend`, `resume`), and a bare QEMU through
//! its own QMP socket.

use crate::Error;
use hangscope_capture::qmp::Qmp;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The VM the user named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A QEMU process by pid; its monitor is found from its command line.
    Pid(u32),
    /// A QEMU QMP Unix socket (`-qmp unix:PATH,server=on,wait=off`).
    Qmp(PathBuf),
    /// A libvirt domain (name, id or UUID), through `virsh`.
    Libvirt {
        /// The domain.
        domain: String,
        /// libvirt URI (`virsh -c`); `None` is virsh's default.
        uri: Option<String>,
    },
}

impl Target {
    /// What `TARGET` on the command line means: digits are a pid, an
    /// existing socket is a QMP socket, anything else a libvirt domain.
    pub fn parse(text: &str, uri: Option<&str>) -> Target {
        use std::os::unix::fs::FileTypeExt;
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(pid) = text.parse() {
                return Target::Pid(pid);
            }
        }
        let p = Path::new(text);
        if std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
            return Target::Qmp(p.to_path_buf());
        }
        Target::Libvirt {
            domain: text.to_string(),
            uri: uri.map(String::from),
        }
    }

    /// The same target as one argument for the watchdog process.
    pub fn to_arg(&self) -> String {
        match self {
            Target::Pid(p) => format!("pid:{p}"),
            Target::Qmp(s) => format!("qmp:{}", s.display()),
            Target::Libvirt { domain, uri } => {
                format!("virsh:{}:{domain}", uri.as_deref().unwrap_or(""))
            }
        }
    }

    /// The inverse of [`Target::to_arg`].
    pub fn from_arg(arg: &str) -> Option<Target> {
        if let Some(p) = arg.strip_prefix("pid:") {
            return p.parse().ok().map(Target::Pid);
        }
        if let Some(s) = arg.strip_prefix("qmp:") {
            return Some(Target::Qmp(PathBuf::from(s)));
        }
        let rest = arg.strip_prefix("virsh:")?;
        // A URI may hold colons; the domain name is after the last one.
        let (uri, domain) = rest.rsplit_once(':')?;
        Some(Target::Libvirt {
            domain: domain.to_string(),
            uri: (!uri.is_empty()).then(|| uri.to_string()),
        })
    }
}

/// A QEMU monitor: QMP directly, or libvirt's through `virsh`.
#[derive(Debug)]
pub enum Monitor {
    /// Our own QMP connection.
    Qmp(Box<Qmp>),
    /// libvirt's monitor through `virsh`: one long-lived `virsh` shell
    /// once the domain is known to exist, else one `virsh` per command.
    Virsh {
        /// The domain.
        domain: String,
        /// `virsh -c` URI.
        uri: Option<String>,
        /// The shell commands go to (`None`: a process per command).
        shell: Option<Box<VirshShell>>,
    },
}

/// One `virsh` process in shell mode, fed a command and an `echo` of a
/// marker at a time: a pause of a libvirt guest (`suspend`, `info
/// registers -a`, `resume`) then costs three round trips to libvirtd
/// instead of three processes starting and connecting, tens of
/// milliseconds each (hundreds on a loaded host). Its stderr is merged
/// into its stdout, so an error comes before the marker that follows it.
#[derive(Debug)]
pub struct VirshShell {
    child: Child,
    input: ChildStdin,
    output: ChildStdout,
    /// Output read past the last command's marker.
    pending: Vec<u8>,
    sequence: u64,
}

/// At most this much output per command (HMP's `info mtree -f` of a big
/// machine is some hundred KiB).
const SHELL_MAX_OUTPUT: usize = 64 << 20;

impl VirshShell {
    /// Start `virsh [-c URI] -q` reading commands from a pipe.
    fn start(uri: Option<&str>) -> Option<VirshShell> {
        let mut script = String::from("exec stdbuf -oL virsh");
        if let Some(u) = uri {
            script.push_str(" -c ");
            script.push_str(&shell_quote(u));
        }
        script.push_str(" -q 2>&1");
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let input = child.stdin.take()?;
        let output = child.stdout.take()?;
        Some(VirshShell {
            child,
            input,
            output,
            pending: Vec::new(),
            sequence: 0,
        })
    }

    /// Run one command; its output, and whether virsh reported an error.
    /// `None` when the shell is gone (the caller falls back to a process).
    ///
    /// virsh built with readline prints its prompt (`virsh # `) and
    /// echoes each command line even from a pipe, and prints the `echo`'s
    /// marker with the next prompt after it and no newline: so the output
    /// is read in chunks up to the marker that is not part of the echoed
    /// `echo MARKER`, and the prompt and echoed lines are taken off.
    fn run(&mut self, args: &[&str]) -> Option<(String, bool)> {
        use std::io::Read;
        self.sequence += 1;
        let marker = format!("@@hangscope-{}-{}@@", std::process::id(), self.sequence);
        let mut line: String = args
            .iter()
            .map(|a| virsh_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        line.push_str(&format!("\necho {marker}\n"));
        self.input.write_all(line.as_bytes()).ok()?;
        self.input.flush().ok()?;
        let echoed = format!("echo {marker}");
        let mut chunk = [0u8; 65536];
        let end = loop {
            let text = String::from_utf8_lossy(&self.pending);
            let mut from = 0;
            let mut found = None;
            while let Some(i) = text[from..].find(&marker) {
                let at = from + i;
                if !text[..at].ends_with("echo ") {
                    found = Some(at);
                    break;
                }
                from = at + marker.len();
            }
            if let Some(at) = found {
                break at;
            }
            if self.pending.len() > SHELL_MAX_OUTPUT {
                return None;
            }
            let n = self.output.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.pending.extend_from_slice(&chunk[..n]);
        };
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        // What follows the marker (the next prompt) belongs to the next command.
        self.pending = text.as_bytes()[end + marker.len()..].to_vec();
        let mut out = &text[..end];
        if let Some(i) = out.rfind(&echoed) {
            out = &out[..out[..i].rfind('\n').map_or(0, |n| n + 1)];
        }
        if let Some(rest) = out.strip_prefix(PROMPT) {
            out = rest.split_once('\n').map_or("", |(_, o)| o);
        }
        let failed = out.lines().any(|l| l.starts_with("error:"));
        Some((out.to_string(), failed))
    }
}

/// virsh's shell prompt (read-write connection).
const PROMPT: &str = "virsh # ";

impl Drop for VirshShell {
    fn drop(&mut self) {
        // virsh ends at the end of its input.
        let _ = self.input.write_all(b"quit\n");
        let _ = self.input.flush();
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(2) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An argument as virsh's shell reads it: in double quotes, backslash
/// escaping `"` and `\\`.
fn virsh_quote(a: &str) -> String {
    let mut q = String::with_capacity(a.len() + 2);
    q.push('"');
    for c in a.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// A word for `sh -c`: in single quotes.
fn shell_quote(a: &str) -> String {
    format!("'{}'", a.replace('\'', "'\\''"))
}

impl Monitor {
    /// Connect to the monitor of `target`. A pid is resolved through its
    /// command line: `-qmp unix:PATH` gives the socket, a libvirt guest
    /// (`-name guest=NAME`) its domain.
    pub fn connect(target: &Target) -> Result<Monitor, Error> {
        match target {
            Target::Qmp(socket) => Ok(Monitor::Qmp(Box::new(Qmp::connect(socket)?))),
            Target::Libvirt { domain, uri } => {
                let mut m = Monitor::Virsh {
                    domain: domain.clone(),
                    uri: uri.clone(),
                    shell: None,
                };
                // Fails early, with virsh's words, for an unknown domain.
                m.virsh(&["domstate", domain])?;
                if let Monitor::Virsh { shell, .. } = &mut m {
                    *shell = VirshShell::start(uri.as_deref()).map(Box::new);
                }
                Ok(m)
            }
            Target::Pid(pid) => {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map_err(|e| Error::Target(format!("no process {pid} to read ({e})")))?;
                let args: Vec<String> = cmdline
                    .split(|&b| b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                match monitor_of_cmdline(&args) {
                    Some(t) => Monitor::connect(&t),
                    None => Err(Error::Target(format!(
                        "process {pid} has no QMP socket on its command line (`-qmp unix:PATH`) \
                         and is no libvirt guest (`-name guest=NAME`); start QEMU with \
                         `-qmp unix:PATH,server=on,wait=off` or name the socket or domain"
                    ))),
                }
            }
        }
    }

    /// Run a QMP command and return its `return` value.
    pub fn qmp(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, Error> {
        match self {
            Monitor::Qmp(q) => Ok(q.execute(command, arguments)?),
            Monitor::Virsh { domain, .. } => {
                let mut msg = json!({ "execute": command });
                if let Some(a) = arguments {
                    msg["arguments"] = a;
                }
                let domain = domain.clone();
                let out = self.virsh(&["qemu-monitor-command", &domain, &msg.to_string()])?;
                let v: Value = serde_json::from_str(out.trim()).map_err(|e| {
                    Error::Monitor(format!(
                        "virsh qemu-monitor-command {command}: {e}: {out:.200}"
                    ))
                })?;
                if let Some(r) = v.get("return") {
                    return Ok(r.clone());
                }
                Err(Error::Monitor(format!("{command}: {}", v["error"])))
            }
        }
    }

    /// Run a human monitor (HMP) command and return its text.
    pub fn hmp(&mut self, command_line: &str) -> Result<String, Error> {
        match self {
            Monitor::Qmp(_) => {
                let v = self.qmp(
                    "human-monitor-command",
                    Some(json!({ "command-line": command_line })),
                )?;
                Ok(v.as_str().unwrap_or_default().to_string())
            }
            Monitor::Virsh { domain, .. } => {
                let domain = domain.clone();
                self.virsh(&["qemu-monitor-command", "--hmp", &domain, command_line])
            }
        }
    }

    /// QEMU's run state: `running`, `paused`, `prelaunch`, ...
    pub fn status(&mut self) -> Result<String, Error> {
        let v = self.qmp("query-status", None)?;
        Ok(v["status"].as_str().unwrap_or("unknown").to_string())
    }

    /// Stop the vCPUs (`virsh suspend` for libvirt, so that libvirt's own
    /// idea of the state stays right).
    pub fn stop(&mut self) -> Result<(), Error> {
        match self {
            Monitor::Qmp(q) => q.execute("stop", None).map(drop).map_err(Error::from),
            Monitor::Virsh { domain, .. } => {
                let domain = domain.clone();
                self.virsh(&["suspend", &domain]).map(drop)
            }
        }
    }

    /// Let the vCPUs run again.
    pub fn cont(&mut self) -> Result<(), Error> {
        match self {
            Monitor::Qmp(q) => q.execute("cont", None).map(drop).map_err(Error::from),
            Monitor::Virsh { domain, .. } => {
                let domain = domain.clone();
                self.virsh(&["resume", &domain]).map(drop)
            }
        }
    }

    /// QEMU's process id: the thread group of its vCPU threads
    /// (`query-cpus-fast`), which is exact whatever the socket or domain.
    pub fn qemu_pid(&mut self) -> Result<u32, Error> {
        let cpus = self.qmp("query-cpus-fast", None)?;
        let tid = cpus
            .as_array()
            .and_then(|a| a.first())
            .and_then(|c| c["thread-id"].as_u64())
            .ok_or_else(|| Error::Monitor(format!("query-cpus-fast gave no thread-id: {cpus}")))?;
        let status = std::fs::read_to_string(format!("/proc/{tid}/status")).map_err(|e| {
            Error::Target(format!(
                "QEMU's vCPU thread {tid} is not visible here ({e}): hangscope must run on the \
                 VM's host, in QEMU's pid namespace"
            ))
        })?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Target(format!("/proc/{tid}/status has no Tgid")))
    }

    /// A description for messages.
    pub fn describe(&self) -> String {
        match self {
            Monitor::Qmp(_) => "QMP".into(),
            Monitor::Virsh { domain, .. } => format!("libvirt domain {domain}"),
        }
    }

    fn virsh(&mut self, args: &[&str]) -> Result<String, Error> {
        let Monitor::Virsh { uri, shell, .. } = self else {
            return Err(Error::Monitor("virsh on a QMP target".into()));
        };
        if let Some(sh) = shell {
            match sh.run(args) {
                Some((out, false)) => return Ok(out),
                Some((out, true)) => return Err(virsh_error(args, out.trim(), uri.as_deref())),
                // The shell died: a process per command from now on.
                None => *shell = None,
            }
        }
        let mut c = Command::new("virsh");
        c.env("LC_ALL", "C").env("LANG", "C");
        if let Some(u) = uri {
            c.arg("-c").arg(u);
        }
        let out = c
            .arg("-q")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Monitor(format!("cannot run virsh: {e}")))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(virsh_error(args, stderr.trim(), uri.as_deref()))
    }
}

/// virsh's failure in words that say what to change: libvirt refusing
/// this user (its socket's permissions, or polkit, which libvirt asks for
/// a user other than root), libvirtd not running, or a domain that is not
/// where virsh looked.
fn virsh_error(args: &[&str], text: &str, uri: Option<&str>) -> Error {
    let sub = args.first().copied().unwrap_or("");
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let connect = text.contains("failed to connect to the hypervisor");
    let refused = text.contains("ermission denied")
        || text.contains("authentication")
        || text.contains("polkit")
        || text.contains("system bus");
    if refused && (connect || text.contains("access denied") || !text.contains("domain")) {
        return Error::Permission(format!(
            "virsh {sub}: {text}\nlibvirt refuses uid {uid}: run hangscope as root, or as a user \
             libvirt lets manage domains (on Debian a member of the libvirt group, with polkit \
             running, or with `unix_sock_group = \"libvirt\"` and `auth_unix_rw = \"none\"` in \
             /etc/libvirt/libvirtd.conf)"
        ));
    }
    if connect && text.contains("No such file or directory") && text.contains("sock") {
        return Error::Target(format!(
            "virsh {sub}: {text}\nlibvirtd is not running on this host (no socket): start it \
             (`systemctl start libvirtd`, or `libvirtd -d`), or name the QEMU's QMP socket or pid"
        ));
    }
    if text.contains("failed to get domain") || text.contains("Domain not found") {
        let hint = if uid != 0 && uri.is_none() {
            format!(
                "; as uid {uid} virsh looks in qemu:///session by default: a system domain \
                 needs `-c qemu:///system`"
            )
        } else {
            String::new()
        };
        return Error::Target(format!(
            "virsh {sub}: {text}\nno such libvirt domain here (`virsh list --all` lists them){hint}"
        ));
    }
    Error::Monitor(format!("virsh {sub}: {text}"))
}

/// The monitor a QEMU command line names: `-qmp unix:PATH[,...]`, a
/// `-chardev socket,...,path=PATH` behind `-mon ...,mode=control` that is
/// not libvirt's, or the libvirt domain of `-name guest=NAME`.
fn monitor_of_cmdline(args: &[String]) -> Option<Target> {
    let value = |flag: &str| -> Vec<&str> {
        args.windows(2)
            .filter(|w| w[0] == flag || w[0] == format!("-{flag}"))
            .map(|w| w[1].as_str())
            .collect()
    };
    for q in value("-qmp") {
        if let Some(path) = q.strip_prefix("unix:") {
            let path = path.split(',').next().unwrap_or("");
            return Some(Target::Qmp(PathBuf::from(path)));
        }
    }
    if let Some(name) = value("-name").first() {
        for part in name.split(',') {
            if let Some(guest) = part.strip_prefix("guest=") {
                return Some(Target::Libvirt {
                    domain: guest.to_string(),
                    uri: None,
                });
            }
        }
    }
    // A monitor chardev in control mode (`-chardev socket,id=m,path=P,server=on
    // -mon chardev=m,mode=control`).
    for mon in value("-mon") {
        let opts: Vec<&str> = mon.split(',').collect();
        if !opts.contains(&"mode=control") {
            continue;
        }
        let Some(id) = opts.iter().find_map(|o| o.strip_prefix("chardev=")) else {
            continue;
        };
        for c in value("-chardev") {
            let copts: Vec<&str> = c.split(',').collect();
            if copts.first() == Some(&"socket") && copts.contains(&format!("id={id}").as_str()) {
                if let Some(p) = copts.iter().find_map(|o| o.strip_prefix("path=")) {
                    return Some(Target::Qmp(PathBuf::from(p)));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn monitors_are_found_on_command_lines() {
        assert_eq!(
            monitor_of_cmdline(&args("qemu -m 64 -qmp unix:/run/q.sock,server=on,wait=off")),
            Some(Target::Qmp("/run/q.sock".into()))
        );
        assert_eq!(
            monitor_of_cmdline(&args(
                "qemu -name guest=win7,debug-threads=on -chardev socket,id=charmonitor,fd=31,server=on,wait=off -mon chardev=charmonitor,id=monitor,mode=control"
            )),
            Some(Target::Libvirt {
                domain: "win7".into(),
                uri: None
            })
        );
        assert_eq!(
            monitor_of_cmdline(&args(
                "qemu -chardev socket,id=m,path=/tmp/m.sock,server=on -mon chardev=m,mode=control"
            )),
            Some(Target::Qmp("/tmp/m.sock".into()))
        );
        assert_eq!(monitor_of_cmdline(&args("qemu -m 64")), None);
    }

    #[test]
    fn virsh_failures_say_what_to_change() {
        // virsh's own words as a user without access gets them (libvirt
        // 9.0 on Debian 12, no D-Bus), a stopped libvirtd, a wrong name.
        let polkit = "error: failed to connect to the hypervisor\nerror: internal error: \
                      Unable to get system bus connection: Could not connect: No such file or directory";
        let e = virsh_error(&["domstate", "vm"], polkit, Some("qemu:///system"));
        assert_eq!(e.name(), "Permission", "{e}");
        assert!(e.to_string().contains("libvirt group"), "{e}");
        let socket =
            "error: failed to connect to the hypervisor\nerror: Failed to connect socket to \
                      '/var/run/libvirt/libvirt-sock': Permission denied";
        assert_eq!(
            virsh_error(&["domstate"], socket, None).name(),
            "Permission"
        );
        let down =
            "error: failed to connect to the hypervisor\nerror: Failed to connect socket to \
                    '/var/run/libvirt/libvirt-sock': No such file or directory";
        let e = virsh_error(&["domstate"], down, None);
        assert!(e.to_string().contains("libvirtd is not running"), "{e}");
        let missing = "error: failed to get domain 'vm'";
        let e = virsh_error(&["domstate", "vm"], missing, None);
        assert_eq!(e.name(), "Target", "{e}");
        assert!(e.to_string().contains("virsh list --all"), "{e}");
        assert_eq!(
            virsh_error(&["suspend"], "error: odd", None).name(),
            "Monitor"
        );
    }

    /// The virsh shell against libvirt's test driver (`test:///default`,
    /// no daemon: its state lives in the virsh process, so a `suspend`
    /// seen by the next `domstate` proves both went through one shell).
    #[test]
    fn the_virsh_shell_runs_commands_and_reports_errors() {
        if Command::new("virsh").arg("--version").output().is_err() {
            eprintln!("skipped: no virsh");
            return;
        }
        let mut m = Monitor::connect(&Target::Libvirt {
            domain: "test".into(),
            uri: Some("test:///default".into()),
        })
        .unwrap();
        assert!(matches!(&m, Monitor::Virsh { shell: Some(_), .. }), "{m:?}");
        assert_eq!(m.virsh(&["domstate", "test"]).unwrap().trim(), "running");
        m.stop().unwrap();
        assert_eq!(m.virsh(&["domstate", "test"]).unwrap().trim(), "paused");
        m.cont().unwrap();
        assert_eq!(m.virsh(&["domstate", "test"]).unwrap().trim(), "running");
        let e = m.virsh(&["domstate", "no \"such\" domain"]).unwrap_err();
        assert!(e.to_string().contains("no \"such\" domain"), "{e}");
        assert_eq!(e.name(), "Target", "{e}");
        // The test driver has no QEMU monitor: virsh's error, then the
        // shell still answers.
        assert!(m.hmp("info registers").is_err());
        let list = m.virsh(&["list", "--name"]).unwrap();
        assert_eq!(list.trim(), "test", "{list:?}");
    }

    #[test]
    fn targets_survive_the_watchdog_argument() {
        for t in [
            Target::Pid(42),
            Target::Qmp("/tmp/a:b.sock".into()),
            Target::Libvirt {
                domain: "d".into(),
                uri: Some("qemu:///system".into()),
            },
            Target::Libvirt {
                domain: "d".into(),
                uri: None,
            },
        ] {
            assert_eq!(Target::from_arg(&t.to_arg()), Some(t));
        }
        assert_eq!(Target::parse("1234", None), Target::Pid(1234));
        assert!(matches!(
            Target::parse("win7", None),
            Target::Libvirt { .. }
        ));
    }
}
