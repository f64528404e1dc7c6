//! Command-line definitions. The README's manual is generated from these
//! doc comments (`hangscope --help-markdown`).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// From the memory dump of a hung virtual machine to a verdict and its
/// evidence.
///
/// Reads QEMU/libvirt ELF cores, Windows crash dumps (PAGEDU64 full and
/// bitmap), kdump files and raw images as they are written, recognises a
/// Windows or a Linux guest from the memory itself, finds the kernel
/// without any header, and walks locks, threads, I/O and files like an
/// expert with WinDbg would. On Linux guests the types come from the
/// kernel's own BTF in the dump (or `-y vmlinux`).
///
/// Exit codes: 0 healthy (or a command that ran), 2 error; `analyze` also
/// returns 1 for contention or a busy owner, 3 for stuck waits (stuck I/O
/// included), 4 for a deadlock, 5 when the dump cannot decide, 6 for long
/// kernel waits nothing explains.
#[derive(Debug, Parser)]
#[command(name = "hangscope", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Print one JSON document (with `schema_version`) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Symbol path, `_NT_SYMBOL_PATH` syntax: directories (ISF JSON/.xz or
    /// PDB stores) and `srv*CACHE*URL`. Added before `_NT_SYMBOL_PATH` and
    /// the built-in locations (../shared/symbols, the user cache). For a
    /// Linux guest, a vmlinux with DWARF or BTF (e.g. Debian's
    /// /usr/lib/debug/boot/vmlinux-RELEASE) instead of the BTF in the dump.
    #[arg(long, short = 'y', global = true, value_name = "PATH")]
    pub symbols: Option<String>,
    /// Hide progress bars (they are also hidden when stderr is not a TTY).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Log what hangscope does to stderr (repeat for more).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Write the log to this file instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// A dump file argument.
#[derive(Debug, Args, Clone)]
pub struct DumpArg {
    /// The dump: ELF core, PAGEDU64 crash dump, kdump or raw image.
    pub dump: PathBuf,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the lab's temp-flood scenario (the seed case) and analyse it:
    /// no dump needed.
    Demo(DemoArgs),
    /// The dump's format, memory map, vCPU registers and the kernel found.
    Info(DumpArg),
    /// Processes (like `!process 0 0`).
    Ps(DumpArg),
    /// Threads with state, wait reason and how long each has waited.
    Threads(ThreadsArgs),
    /// Loaded kernel modules (like `lm`, or `lsmod` on Linux).
    Lm(DumpArg),
    /// The kernel log of a Linux guest (the printk ring buffer, like
    /// `dmesg`), with timestamps.
    Dmesg(DmesgArgs),
    /// A structure by its symbols (like `dt nt!_KTHREAD ADDR`).
    Dt(DtArgs),
    /// Bytes at a kernel virtual address (like `db`).
    Db(MemArgs),
    /// Quadwords at a kernel virtual address (like `dq`).
    Dq(MemArgs),
    /// Executive resources (like `!locks`): contended ones, all with -v,
    /// or one by address; then what `!locks` never shows: push locks
    /// (owners inferred from stacks) and fast/guarded mutexes with waiters.
    /// ADDR may also be a push lock or a fast/guarded mutex.
    Locks(LocksArgs),
    /// One thread (like `!thread`): state, waits and what is behind them
    /// (the push lock or fast/guarded mutex and its owner), locks it holds,
    /// IRPs, stack. On a Linux guest, a task by pid or `task_struct`
    /// address: the lock it waits on, its owners and what they do.
    Thread(ThreadArgs),
    /// One I/O request packet (like `!irp`).
    Irp(AddrArgs),
    /// One file object (like `!fileobj`) and the processes holding it.
    Fileobj(AddrArgs),
    /// ALPC (like `!alpc`): threads waiting for a reply, the message, the
    /// port and the server thread that took it; every port's queues; or
    /// one thread, port or message by address.
    Alpc(OptAddrArgs),
    /// Open handles per process; with --path, who holds handles under a
    /// directory.
    Handles(HandlesArgs),
    /// Open files per process (a Linux guest's file tables: descriptor,
    /// path, file system, inode, position); with --path, who holds files
    /// under a directory. On Windows, the file handles (as `handles`).
    Files(HandlesArgs),
    /// Every thread's kernel stack, grouped by identical stacks (like
    /// `!stacks`).
    Stacks(StacksArgs),
    /// Each CPU's current thread and its stack (like `!running -t`).
    Running(DumpArg),
    /// The hang walk with no entry point: wait-for graph, findings, hot
    /// directories, verdict.
    Analyze(AnalyzeArgs),
    /// An interactive shell with WinDbg command syntax.
    Shell(DumpArg),
    /// Take memory dumps of a running VM through libvirt or QEMU QMP.
    Capture(hangscope_capture::cli::CaptureArgs),
    /// Run a command (analyze, locks, thread, stacks, ps, ...) on a running
    /// VM, read from its QEMU process: no dump file. The guest is paused
    /// only while the pages the command reads are copied, and always
    /// resumed.
    Live(LiveArgs),
    /// Analyse a running VM every few seconds, one status line per round;
    /// when the condition holds, take a full capture as evidence and stop.
    Watch(WatchArgs),
}

/// The running VM of `live` and `watch`, and how it may be paused.
#[derive(Debug, Args, Clone)]
pub struct LiveTargetArgs {
    /// The running VM: a libvirt domain, a QEMU QMP socket
    /// (`-qmp unix:PATH,server=on,wait=off`) or a QEMU pid.
    pub target: String,
    /// libvirt URI for a domain, as `virsh -c`.
    #[arg(short = 'c', long = "connect", value_name = "URI")]
    pub connect: Option<String>,
    /// Never pause the guest: a best-effort read of a guest that moves
    /// meanwhile (lists may be cut or mixed).
    #[arg(long, conflicts_with = "hold")]
    pub no_pause: bool,
    /// Keep the guest paused for the whole command, instead of only while
    /// the pages it reads are copied.
    #[arg(long)]
    pub hold: bool,
}

/// `live` options.
#[derive(Debug, Args, Clone)]
pub struct LiveArgs {
    #[command(flatten)]
    pub target: LiveTargetArgs,
    /// The command and its arguments, as for a dump without the dump
    /// (`analyze --json`, `locks -V`, `thread ADDR`, `stacks --filter T`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// What `watch --until` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Until {
    /// A deadlock (analyze's exit code 4).
    Deadlock,
    /// Stuck waits, stuck I/O, a deadlock or unexplained long waits (3, 4, 6).
    Stuck,
    /// Any finding: contention or a busy owner too (1, 3, 4, 6).
    Any,
}

/// `watch` options.
#[derive(Debug, Args, Clone)]
pub struct WatchArgs {
    #[command(flatten)]
    pub target: LiveTargetArgs,
    /// Time between the starts of two rounds (`5s`, `500ms`, `1m`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub every: std::time::Duration,
    /// Stop when the verdict shows this.
    #[arg(long, value_enum, default_value_t = Until::Any)]
    pub until: Until,
    /// When the condition holds, take a full capture (dump and
    /// manifest.json) into this directory before stopping.
    #[arg(long, value_name = "DIR")]
    pub capture: Option<PathBuf>,
    /// Stop after this many rounds even if the condition never holds.
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
}

/// A duration: a number with `ms`, `s` (default), `m` or `h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is no duration (e.g. 5s, 500ms, 1m)"))?;
    let secs = v * scale;
    if !(secs.is_finite() && (0.0..1e9).contains(&secs)) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// `demo` options.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Scenario to build (see `hangscope-lab scenarios`).
    #[arg(long, default_value = "temp-flood")]
    pub scenario: String,
    /// Windows build (alias or GUID-AGE of a shared symbol table).
    #[arg(long, default_value = "win10-19041")]
    pub build: String,
    /// Keep the generated dump in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Write an HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// `threads` options.
#[derive(Debug, Args, Clone)]
pub struct ThreadsArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// Only this process.
    #[arg(long)]
    pub pid: Option<u64>,
}

/// `dmesg` options.
#[derive(Debug, Args, Clone)]
pub struct DmesgArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// Only the last N records.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// `dt` options.
#[derive(Debug, Args, Clone)]
pub struct DtArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// Type name, with or without `nt!` (e.g. `_KTHREAD`).
    pub type_name: String,
    /// Virtual address (hex, WinDbg backticks allowed).
    #[arg(value_parser = parse_addr)]
    pub addr: u64,
}

/// `db`/`dq` options.
#[derive(Debug, Args, Clone)]
pub struct MemArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// Virtual address (hex, WinDbg backticks allowed).
    #[arg(value_parser = parse_addr)]
    pub addr: u64,
    /// Bytes to show.
    #[arg(long, short = 'l', default_value_t = 128)]
    pub length: u64,
}

/// `locks` options.
#[derive(Debug, Args, Clone)]
pub struct LocksArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// One lock by address: an ERESOURCE, a push lock or a fast/guarded
    /// mutex with waiters.
    #[arg(value_parser = parse_addr)]
    pub addr: Option<u64>,
    /// Every resource, contended or not (push locks and mutexes are found
    /// from their waiters: only those with waiters are listed either way).
    #[arg(short = 'V', long = "all")]
    pub all: bool,
}

/// Options for commands on one object.
#[derive(Debug, Args, Clone)]
pub struct AddrArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// Virtual address of the object (hex, WinDbg backticks allowed).
    #[arg(value_parser = parse_addr)]
    pub addr: u64,
}

/// Options for commands on every object or one.
#[derive(Debug, Args, Clone)]
pub struct OptAddrArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// Virtual address of one object (hex, WinDbg backticks allowed).
    #[arg(value_parser = parse_addr)]
    pub addr: Option<u64>,
}

/// `thread` options.
#[derive(Debug, Args, Clone)]
pub struct ThreadArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// The thread: its kernel object address (hex, WinDbg backticks
    /// allowed), or a decimal pid/tid (up to 4194304, Linux's
    /// PID_MAX_LIMIT).
    #[arg(value_parser = parse_thread)]
    pub thread: ThreadRef,
}

/// A thread named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadRef {
    /// By thread (task) id.
    Id(u64),
    /// By kernel object address.
    Address(u64),
}

/// Linux's `PID_MAX_LIMIT`: no pid or tid is larger, and no kernel
/// address is this small.
pub const PID_MAX_LIMIT: u64 = 4 * 1024 * 1024;

/// A thread as the user writes it: decimal digits up to
/// [`PID_MAX_LIMIT`] are an id, anything else a hex address.
pub fn parse_thread(s: &str) -> Result<ThreadRef, String> {
    let t = s.trim();
    if !t.is_empty() && t.len() <= 7 && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(id) = t.parse::<u64>() {
            if id <= PID_MAX_LIMIT {
                return Ok(ThreadRef::Id(id));
            }
        }
    }
    parse_addr(s).map(ThreadRef::Address)
}

/// `handles` options.
#[derive(Debug, Args, Clone)]
pub struct HandlesArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// Only this process.
    #[arg(long)]
    pub pid: Option<u64>,
    /// Only handles to files under this path (e.g. `\Windows\Temp`), and a
    /// summary of which processes hold them.
    #[arg(long)]
    pub path: Option<String>,
}

/// `stacks` options.
#[derive(Debug, Args, Clone)]
pub struct StacksArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// Only stacks with a frame containing this text (e.g. `Ntfs`).
    #[arg(long)]
    pub filter: Option<String>,
}

/// `analyze` options.
#[derive(Debug, Args, Clone)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub dump: DumpArg,
    /// More dumps of the same boot, in the order they were taken: the
    /// series is compared and each finding proven stuck, busy or slow.
    /// DUMP may also be a capture directory or its manifest.json.
    #[arg(value_name = "MORE")]
    pub more: Vec<PathBuf>,
    /// Also write a self-contained HTML report with the wait-for graph.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// Parse a hex address as WinDbg writes them: `fffffa80'0b61bb50`,
/// `fffffa80`0b61bb50`, `0xfffffa800b61bb50`.
pub fn parse_addr(s: &str) -> Result<u64, String> {
    let t: String = s
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .chars()
        .filter(|c| *c != '`' && *c != '\'')
        .collect();
    if t.is_empty() || t.len() > 16 {
        return Err(format!("`{s}` is not a 64-bit hex address"));
    }
    u64::from_str_radix(&t, 16).map_err(|_| format!("`{s}` is not a hex address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windbg_addresses_parse() {
        assert_eq!(parse_addr("fffffa80`0b61bb50"), Ok(0xfffffa800b61bb50));
        assert_eq!(parse_addr("fffffa80'0b61bb50"), Ok(0xfffffa800b61bb50));
        assert_eq!(parse_addr("0xFFFFF780"), Ok(0xfffff780));
        assert!(parse_addr("").is_err());
        assert!(parse_addr("1fffffa800b61bb500").is_err());
        assert!(parse_addr("xyz").is_err());
    }

    #[test]
    fn a_thread_is_a_decimal_id_or_a_hex_address() {
        assert_eq!(parse_thread("96"), Ok(ThreadRef::Id(96)));
        assert_eq!(parse_thread("4194304"), Ok(ThreadRef::Id(4194304)));
        assert_eq!(parse_thread("4194305"), Ok(ThreadRef::Address(0x4194305)));
        assert_eq!(
            parse_thread("ffff8dbe42968000"),
            Ok(ThreadRef::Address(0xffff8dbe42968000))
        );
        assert_eq!(
            parse_thread("ffff8dbe`42968000"),
            Ok(ThreadRef::Address(0xffff8dbe42968000))
        );
        assert_eq!(parse_thread("0x60"), Ok(ThreadRef::Address(0x60)));
        assert!(parse_thread("pid").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
