//! The interactive shell: WinDbg command syntax over one opened dump.
//!
//! The dump and its kernel are loaded once; each line is parsed into a
//! [`ShellCommand`] and run through the same functions as the one-shot
//! commands, so the shell and the CLI cannot disagree.

use crate::cli::parse_addr;

/// A parsed shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellCommand {
    /// `!locks [-v] [ADDR]`
    Locks {
        /// One lock (ERESOURCE, push lock, fast/guarded mutex).
        addr: Option<u64>,
        /// Every resource.
        all: bool,
    },
    /// `!thread ADDR`
    Thread(u64),
    /// `!thread ID`: a thread (task) by its decimal id.
    ThreadId(u64),
    /// `!irp ADDR`
    Irp(u64),
    /// `!fileobj ADDR`
    Fileobj(u64),
    /// `!alpc [ADDR]`
    Alpc(Option<u64>),
    /// `!process 0 0`, `ps`
    Processes,
    /// `threads [PID]`
    Threads(Option<u64>),
    /// `lm`
    Modules,
    /// `dt [nt!]TYPE ADDR`
    Dt(String, u64),
    /// `db ADDR [L len]`
    Db(u64, u64),
    /// `dq ADDR [L count]`
    Dq(u64, u64),
    /// `!handle [PID]`, `handles [PID] [PATH]`
    Handles(Option<u64>, Option<String>),
    /// `!stacks [filter]`
    Stacks(Option<String>),
    /// `!running`
    Running,
    /// `!analyze`
    Analyze,
    /// `vertarget`, `info`
    Info,
    /// `dmesg [N]`: the printk buffer (Linux), the last N records.
    Dmesg(Option<usize>),
    /// `?`, `help`
    Help,
    /// `q`, `quit`, `exit`
    Quit,
    /// An empty line.
    Nothing,
}

impl ShellCommand {
    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ShellCommand::Locks { .. } => "locks",
            ShellCommand::Thread(_) | ShellCommand::ThreadId(_) => "thread",
            ShellCommand::Irp(_) => "irp",
            ShellCommand::Fileobj(_) => "fileobj",
            ShellCommand::Alpc(_) => "alpc",
            ShellCommand::Processes => "ps",
            ShellCommand::Threads(_) => "threads",
            ShellCommand::Modules => "lm",
            ShellCommand::Dt(..) => "dt",
            ShellCommand::Db(..) => "db",
            ShellCommand::Dq(..) => "dq",
            ShellCommand::Handles(..) => "handles",
            ShellCommand::Stacks(_) => "stacks",
            ShellCommand::Running => "running",
            ShellCommand::Analyze => "analyze",
            ShellCommand::Info => "info",
            ShellCommand::Dmesg(_) => "dmesg",
            ShellCommand::Help => "help",
            ShellCommand::Quit => "quit",
            ShellCommand::Nothing => "",
        }
    }
}

/// What the shell understands, for `help`.
pub const HELP: &str = "\
commands (WinDbg syntax; addresses in hex, backticks allowed):
  !locks [-v] [ADDR]      executive resources (contended; -v all), then push locks
                          (owners inferred from stacks) and fast/guarded mutexes
                          with waiters; or one lock of any of these kinds
  !thread ADDR|ID         one thread: state, waits, owners, the push lock or mutex
                          it waits on or holds, IRPs, stack
  !irp ADDR               one IRP: stack locations, drivers, files
  !fileobj ADDR           one file object: path, device, holders
  !alpc [ADDR]            ALPC: waiting clients, ports; or one thread/port/message
  !process 0 0 | ps       processes
  threads [PID]           threads with wait reason and seconds waited
  !handle [PID] [PATH]    handles (PATH: only files under it)
  files [PID] [PATH]      open files (Linux file tables; Windows handles)
  !stacks [TEXT]          stacks grouped, filtered by TEXT
  !running                each CPU's current thread
  !analyze                the hang walk and verdict
  lm                      loaded modules
  dt [nt!]TYPE ADDR       a structure by its symbols
  db ADDR [L n]  dq ADDR [L n]
  dmesg [N]               the kernel log (Linux guests), the last N records
  vertarget | info        the dump and the kernel
  q                       quit";

/// Parse one line; the error says what was wrong.
pub fn parse(line: &str) -> Result<ShellCommand, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&head, rest)) = words.split_first() else {
        return Ok(ShellCommand::Nothing);
    };
    let addr = |i: usize, what: &str| -> Result<u64, String> {
        rest.get(i)
            .ok_or_else(|| format!("{head} needs {what}"))
            .and_then(|s| parse_addr(s))
    };
    let len = |i: usize, default: u64| -> Result<u64, String> {
        match (rest.get(i), rest.get(i + 1)) {
            (Some(l), Some(n)) if l.eq_ignore_ascii_case("l") => {
                parse_count(n).map_err(|e| format!("{head}: {e}"))
            }
            (Some(l), None) if l.len() > 1 && (l.starts_with('L') || l.starts_with('l')) => {
                parse_count(&l[1..]).map_err(|e| format!("{head}: {e}"))
            }
            (None, _) => Ok(default),
            (Some(other), _) => Err(format!("{head}: unexpected `{other}` (length is `L n`)")),
        }
    };
    let pid = |i: usize| -> Result<Option<u64>, String> {
        rest.get(i)
            .map(|s| parse_pid(s).map_err(|e| format!("{head}: {e}")))
            .transpose()
    };
    match head.to_ascii_lowercase().as_str() {
        "!locks" => {
            let all = rest.iter().any(|w| *w == "-v" || *w == "-V");
            let addrs: Vec<&&str> = rest.iter().filter(|w| !w.starts_with('-')).collect();
            let addr = match addrs.first() {
                Some(a) => Some(parse_addr(a)?),
                None => None,
            };
            Ok(ShellCommand::Locks { addr, all })
        }
        "!thread" | "thread" => {
            let t = rest
                .first()
                .ok_or_else(|| format!("{head} needs a thread address"))?;
            match crate::cli::parse_thread(t)? {
                crate::cli::ThreadRef::Id(id) => Ok(ShellCommand::ThreadId(id)),
                crate::cli::ThreadRef::Address(a) => Ok(ShellCommand::Thread(a)),
            }
        }
        "!irp" => Ok(ShellCommand::Irp(addr(0, "an IRP address")?)),
        "!alpc" | "alpc" => Ok(ShellCommand::Alpc(match rest.first() {
            Some(a) => Some(parse_addr(a)?),
            None => None,
        })),
        "!fileobj" => Ok(ShellCommand::Fileobj(addr(0, "a file object address")?)),
        "!process" | "ps" => Ok(ShellCommand::Processes),
        "threads" => Ok(ShellCommand::Threads(pid(0)?)),
        "lm" | "lsmod" | "mod" => Ok(ShellCommand::Modules),
        "dmesg" | "log" => match rest.first() {
            Some(n) => n
                .parse::<usize>()
                .map(|n| ShellCommand::Dmesg(Some(n)))
                .map_err(|_| format!("{head}: `{n}` is not a number of records")),
            None => Ok(ShellCommand::Dmesg(None)),
        },
        "dt" => {
            let ty = rest.first().ok_or("dt needs a type name")?;
            let ty = ty.strip_prefix("nt!").unwrap_or(ty).to_string();
            Ok(ShellCommand::Dt(ty, addr(1, "an address")?))
        }
        "db" => Ok(ShellCommand::Db(addr(0, "an address")?, len(1, 128)?)),
        "dq" => Ok(ShellCommand::Dq(addr(0, "an address")?, len(1, 16)?)),
        "!handle" | "handles" => {
            let p = pid(0)?;
            let path = rest.get(1).map(|s| s.to_string());
            Ok(ShellCommand::Handles(p, path))
        }
        "files" => {
            // `files`, `files PID`, `files PATH`, `files PID PATH`.
            let (p, path) = match rest.first() {
                Some(w) if w.starts_with('/') || w.starts_with('\\') => (None, Some(w)),
                Some(_) => (pid(0)?, rest.get(1)),
                None => (None, None),
            };
            Ok(ShellCommand::Handles(p, path.map(|s| s.to_string())))
        }
        "!stacks" | "stacks" => Ok(ShellCommand::Stacks(rest.first().map(|s| s.to_string()))),
        "!running" | "running" => Ok(ShellCommand::Running),
        "!analyze" | "analyze" => Ok(ShellCommand::Analyze),
        "vertarget" | "info" => Ok(ShellCommand::Info),
        "?" | "help" | ".help" => Ok(ShellCommand::Help),
        "q" | "quit" | "exit" | "qq" => Ok(ShellCommand::Quit),
        other => Err(format!("unknown command `{other}`; type `help`")),
    }
}

/// WinDbg lengths are hex unless prefixed `0n`.
fn parse_count(s: &str) -> Result<u64, String> {
    let v = if let Some(dec) = s.strip_prefix("0n") {
        dec.parse::<u64>()
            .map_err(|_| format!("`{s}` is not a number"))?
    } else {
        u64::from_str_radix(s.trim_start_matches("0x"), 16)
            .map_err(|_| format!("`{s}` is not a hex number"))?
    };
    if v == 0 || v > 0x10_0000 {
        return Err(format!("length {v:#x} is out of range (1 to 0x100000)"));
    }
    Ok(v)
}

/// PIDs are shown in decimal by hangscope; `0x` selects hex.
fn parse_pid(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).map_err(|_| format!("`{s}` is not a PID")),
        None => s.parse().map_err(|_| format!("`{s}` is not a PID")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windbg_lines_parse() {
        assert_eq!(
            parse("!locks"),
            Ok(ShellCommand::Locks {
                addr: None,
                all: false
            })
        );
        assert_eq!(
            parse("!locks -v fffffa80`0b61bb50"),
            Ok(ShellCommand::Locks {
                addr: Some(0xfffffa800b61bb50),
                all: true
            })
        );
        assert_eq!(
            parse("!thread fffffa800b61bb50"),
            Ok(ShellCommand::Thread(0xfffffa800b61bb50))
        );
        assert_eq!(
            parse("dt nt!_KTHREAD fffffa80`0b61bb50"),
            Ok(ShellCommand::Dt("_KTHREAD".into(), 0xfffffa800b61bb50))
        );
        assert_eq!(parse("db 1000 L20"), Ok(ShellCommand::Db(0x1000, 0x20)));
        assert_eq!(parse("dq 1000 l 0n16"), Ok(ShellCommand::Dq(0x1000, 16)));
        assert_eq!(parse("!process 0 0"), Ok(ShellCommand::Processes));
        assert_eq!(parse("threads 1234"), Ok(ShellCommand::Threads(Some(1234))));
        assert_eq!(
            parse("!handle 0x10 \\Windows\\Temp"),
            Ok(ShellCommand::Handles(
                Some(16),
                Some("\\Windows\\Temp".into())
            ))
        );
        assert_eq!(parse("!thread 96"), Ok(ShellCommand::ThreadId(96)));
        assert_eq!(
            parse("files /run/hang"),
            Ok(ShellCommand::Handles(None, Some("/run/hang".into())))
        );
        assert_eq!(parse("files 94"), Ok(ShellCommand::Handles(Some(94), None)));
        assert_eq!(parse("   "), Ok(ShellCommand::Nothing));
        assert_eq!(parse("q"), Ok(ShellCommand::Quit));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(
            parse("!thread"),
            Err("!thread needs a thread address".into())
        );
        assert!(parse("!irp zz").unwrap_err().contains("not a hex address"));
        assert!(parse("db 1000 L0").unwrap_err().contains("out of range"));
        assert!(parse("!frobnicate")
            .unwrap_err()
            .contains("unknown command"));
    }
}
