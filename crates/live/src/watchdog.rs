//! A small process that resumes the guest if hangscope dies while the
//! guest is paused (a crash, `kill -9`, Ctrl-C, an abort).
//!
//! hangscope starts it as `hangscope __live-watchdog TARGET` in its own
//! process group (so a Ctrl-C in the terminal does not reach it) and
//! tells it, on a pipe, `pausing` before each stop and `resumed` after
//! each cont. When the pipe closes, the watchdog looks at what it last
//! heard: after `pausing`, hangscope died with the guest (possibly)
//! stopped, so it connects to the monitor (QEMU serves the next QMP client
//! once the dead one's socket closes) and resumes a paused guest.

use crate::monitor::{Monitor, Target};
use crate::Error;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand the watchdog process runs under.
pub const WATCHDOG_ARG: &str = "__live-watchdog";

/// The parent's end of a running watchdog.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Start `exe __live-watchdog TARGET`.
    pub fn spawn(exe: &Path, target: &Target) -> Result<Watchdog, Error> {
        let mut child = Command::new(exe)
            .arg(WATCHDOG_ARG)
            .arg(target.to_arg())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Error::Io(format!(
                    "cannot start the watchdog {} that resumes the guest should hangscope die: {e}",
                    exe.display()
                ))
            })?;
        let pipe = child.stdin.take();
        Ok(Watchdog { child, pipe })
    }

    fn say(&mut self, what: &str) -> Result<(), Error> {
        let pipe = self
            .pipe
            .as_mut()
            .ok_or_else(|| Error::Io("the watchdog is gone".into()))?;
        pipe.write_all(format!("{what}\n").as_bytes())
            .and_then(|_| pipe.flush())
            .map_err(|e| {
                Error::Io(format!(
                    "the watchdog does not listen ({e}); not pausing the guest without it"
                ))
            })
    }

    /// Before a stop: from now on a closed pipe means "resume it".
    pub fn pausing(&mut self) -> Result<(), Error> {
        self.say("pausing")
    }

    /// After a cont.
    pub fn resumed(&mut self) -> Result<(), Error> {
        self.say("resumed")
    }

    /// The normal end: tell it all is well and wait for it.
    pub fn finish(mut self) {
        let _ = self.say("done");
        drop(self.pipe.take());
        let _ = self.child.wait();
    }
}

/// The watchdog process's body: `args` are what follows
/// [`WATCHDOG_ARG`]. Returns the exit code.
pub fn watchdog_main(args: &[String]) -> i32 {
    // A Ctrl-C, hang-up or closed terminal must not take it down with its
    // parent: that is exactly when it is needed.
    // SAFETY: setting signal dispositions to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let Some(target) = args.first().and_then(|a| Target::from_arg(a)) else {
        eprintln!("hangscope watchdog: usage: hangscope {WATCHDOG_ARG} TARGET");
        return 2;
    };
    let mut last = String::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        match line {
            Ok(l) => last = l.trim().to_string(),
            Err(_) => break,
        }
    }
    if last != "pausing" {
        return 0;
    }
    // hangscope died between a stop and its cont.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match resume_if_paused(&target) {
            Ok(true) => {
                eprintln!(
                    "hangscope watchdog: hangscope exited while the guest was paused; \
                     the guest is resumed"
                );
                return 0;
            }
            Ok(false) => return 0,
            Err(e) if Instant::now() < deadline => {
                log::debug!("watchdog: {e}; retrying");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                eprintln!(
                    "hangscope watchdog: could not resume the guest, which may be STILL PAUSED: \
                     {e}; resume it by hand (`virsh resume` or QMP `cont`)"
                );
                return 1;
            }
        }
    }
}

/// Resume the guest if it is paused; whether it was.
fn resume_if_paused(target: &Target) -> Result<bool, Error> {
    let mut m = Monitor::connect(target)?;
    if m.status()? != "paused" {
        return Ok(false);
    }
    m.cont()?;
    Ok(true)
}
