//! Physical memory from the memory dump of a virtual machine.
//!
//! A dump is opened once, memory-mapped read-only, and recognised by its
//! content (never by its file name): a QEMU/libvirt ELF core, a Windows crash
//! dump (`PAGEDU64`: full run list or bitmap), or a raw image. Every format
//! answers through [`PhysicalMemory`], so the stages above never know which
//! one they read.
//!
//! CONTRACT (skeleton): the types and signatures below are the interface the
//! other crates build on. Implementations may add items but must not change
//! these signatures without updating every user.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

mod model;
mod parse;
pub mod raw;
mod vec_memory;

pub use raw::PAGE_SIZE;
pub use vec_memory::VecMemory;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A guest physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct PhysAddr(pub u64);

/// An offset into the dump file.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct FileOffset(pub u64);

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}
impl fmt::Display for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}
impl fmt::Debug for FileOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileOffset({:#x})", self.0)
    }
}
impl fmt::Display for FileOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A run of guest physical memory present in the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysRange {
    /// First byte of the run.
    pub start: PhysAddr,
    /// Length in bytes.
    pub len: u64,
}

/// The dump formats hangscope reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DumpFormat {
    /// A raw physical memory image (file offset == physical address).
    Raw,
    /// A QEMU/libvirt ELF core (`dump-guest-memory`, `virsh dump --memory-only`).
    ElfCore,
    /// A Windows crash dump, `PAGEDU64` DumpType 1: physical memory runs.
    CrashDumpFull,
    /// A Windows crash dump, `PAGEDU64` DumpType 5/6 (`SDMP`/`FDMP` bitmap).
    CrashDumpBitmap,
    /// makedumpfile/kdump compressed (`KDUMP   `), possibly flattened.
    Kdump,
    /// No file: the memory of a running VM, read from its QEMU process
    /// (`hangscope-live`).
    Live,
}

/// One vCPU's registers at the time of the dump, as the dump recorded them.
///
/// Fields the format does not carry are `None`; nothing is invented.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuState {
    /// CPU index in the dump (0-based).
    pub index: u32,
    /// General purpose registers in the order rax, rbx, rcx, rdx, rsi, rdi,
    /// rbp, rsp, r8..r15.
    pub gpr: [u64; 16],
    /// Instruction pointer.
    pub rip: u64,
    /// Flags.
    pub rflags: u64,
    /// Segment selectors cs, ds, es, fs, gs, ss.
    pub selectors: [u16; 6],
    /// FS base, when known.
    pub fs_base: Option<u64>,
    /// GS base, when known (in kernel mode on Windows x64: the KPCR).
    pub gs_base: Option<u64>,
    /// Kernel GS base (the swapped-out GS base), when known.
    pub kernel_gs_base: Option<u64>,
    /// CR0, when known.
    pub cr0: Option<u64>,
    /// CR2, when known.
    pub cr2: Option<u64>,
    /// CR3 (the page-table base), when known.
    pub cr3: Option<u64>,
    /// CR4, when known.
    pub cr4: Option<u64>,
    /// EFER, when known.
    pub efer: Option<u64>,
}

impl CpuState {
    /// Index of RSP in [`CpuState::gpr`].
    pub const RSP: usize = 7;
    /// Index of RBP in [`CpuState::gpr`].
    pub const RBP: usize = 6;

    /// The kernel's GS base (on Windows x64: this CPU's KPCR). A CPU
    /// interrupted in user mode has the TEB in GS base and the kernel's
    /// value in the kernel GS base (`swapgs` swaps them), so take whichever
    /// is a kernel-half address; `None` if neither is.
    pub fn kernel_gs(&self) -> Option<u64> {
        let kernel = |v: &Option<u64>| v.filter(|v| v >> 47 == 0x1_FFFF);
        kernel(&self.gs_base).or_else(|| kernel(&self.kernel_gs_base))
    }
}

/// Hints a dump header gives about the kernel. Never trusted blindly: the
/// kernel model verifies each one before using it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelHints {
    /// Page-table base from the header.
    pub dtb: Option<u64>,
    /// `KdDebuggerDataBlock` virtual address.
    pub kd_debugger_data_block: Option<u64>,
    /// `PsActiveProcessHead` virtual address.
    pub ps_active_process_head: Option<u64>,
    /// `PsLoadedModuleList` virtual address.
    pub ps_loaded_module_list: Option<u64>,
    /// `MmPfnDatabase` virtual address.
    pub pfn_database: Option<u64>,
    /// Number of processors.
    pub number_processors: Option<u32>,
    /// Bug check code and parameters.
    pub bugcheck: Option<(u32, [u64; 4])>,
    /// Windows major/minor version from the header.
    pub version: Option<(u32, u32)>,
    /// The VMCOREINFO note's text (ELF cores, kdump), when present. A
    /// Windows guest's VMCOREINFO is a binary crash dump header instead: its
    /// fields fill the other hints and this stays `None`.
    pub vmcoreinfo: Option<String>,
}

/// Where an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In the dump file.
    File(FileOffset),
    /// At a guest physical address.
    Phys(PhysAddr),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(o) => write!(f, "file offset {o}"),
            Location::Phys(p) => write!(f, "physical address {p}"),
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be opened or mapped (the io error's text).
    Io(String),
    /// The file is no dump format hangscope knows.
    UnknownFormat,
    /// A header field has an impossible value.
    BadHeader {
        /// Which field.
        field: &'static str,
        /// Its raw value.
        value: u64,
    },
    /// The file ends before the data a header promises.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes the file has.
        have: u64,
    },
    /// This physical page is not in the dump.
    NotInDump,
    /// The format is recognised but this variant is not supported yet.
    Unsupported(String),
    /// Data inside the dump (not its header) is inconsistent, e.g. a
    /// compressed page that does not decompress.
    BadData {
        /// What is wrong.
        what: &'static str,
        /// The raw value involved.
        value: u64,
    },
}

/// A dump error: what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where, when known.
    pub at: Option<Location>,
}

impl Error {
    /// A short stable name for logs and tests.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ErrorKind::Io(_) => "Io",
            ErrorKind::UnknownFormat => "UnknownFormat",
            ErrorKind::BadHeader { .. } => "BadHeader",
            ErrorKind::Truncated { .. } => "Truncated",
            ErrorKind::NotInDump => "NotInDump",
            ErrorKind::Unsupported(_) => "Unsupported",
            ErrorKind::BadData { .. } => "BadData",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "cannot read the dump: {e}")?,
            ErrorKind::UnknownFormat => write!(
                f,
                "not a dump hangscope knows (ELF core, PAGEDU64 crash dump, kdump or raw)"
            )?,
            ErrorKind::BadHeader { field, value } => {
                write!(f, "bad header field {field} = {value:#x}")?
            }
            ErrorKind::Truncated { needed, have } => write!(
                f,
                "the dump is truncated: {needed:#x} bytes needed, the file has {have:#x}"
            )?,
            ErrorKind::NotInDump => write!(f, "page not in the dump")?,
            ErrorKind::Unsupported(what) => write!(f, "not supported yet: {what}")?,
            ErrorKind::BadData { what, value } => write!(f, "bad data: {what} ({value:#x})")?,
        }
        if let Some(at) = self.at {
            write!(f, " at {at}")?;
        }
        Ok(())
    }
}

/// Guest physical memory, whatever the dump format.
pub trait PhysicalMemory: Send + Sync + fmt::Debug {
    /// Fill `buf` from `addr`; fails with [`ErrorKind::NotInDump`] (and the
    /// first missing address) if any byte is absent. Never zero-fills.
    fn read(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<(), Error>;

    /// The 4 KiB page at page frame number `pfn`, borrowed from the mapping
    /// when the format stores it uncompressed; `None` when it is absent or
    /// must be decoded (then use [`PhysicalMemory::read`]).
    fn page(&self, pfn: u64) -> Option<&[u8]> {
        let _ = pfn;
        None
    }

    /// The physical ranges present, ascending and non-overlapping.
    fn ranges(&self) -> &[PhysRange];

    /// Problems found and worked around while opening (a truncated file,
    /// overlapping runs, ...), one sentence each, for the report. Empty for
    /// a healthy dump.
    fn notes(&self) -> &[String] {
        &[]
    }

    /// Whether the whole page `pfn` is present.
    fn has_page(&self, pfn: u64) -> bool {
        if self.page(pfn).is_some() {
            return true;
        }
        let Some(start) = pfn.checked_mul(PAGE_SIZE) else {
            return false;
        };
        let r = self.ranges();
        let i = r.partition_point(|x| x.start.0 <= start);
        match i.checked_sub(1).and_then(|i| r.get(i)) {
            Some(x) => (start - x.start.0)
                .checked_add(PAGE_SIZE)
                .is_some_and(|end| end <= x.len),
            None => false,
        }
    }
}

/// Notes with the ones about truncation first (see
/// [`Dump::notes_truncation_first`]).
pub fn truncation_first(notes: &[String]) -> Vec<String> {
    let mut v = notes.to_vec();
    v.sort_by_key(|n| !n.contains("truncated"));
    v
}

/// An opened dump: its physical memory, its CPUs and its header's hints.
#[derive(Debug)]
pub struct Dump {
    /// The format recognised.
    pub format: DumpFormat,
    /// Physical memory.
    pub memory: Box<dyn PhysicalMemory>,
    /// Every vCPU's registers the dump carries (empty for raw images).
    pub cpus: Vec<CpuState>,
    /// Header hints about the kernel.
    pub hints: KernelHints,
    /// Size of the file in bytes.
    pub file_size: u64,
}

impl DumpFormat {
    /// A short stable name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            DumpFormat::Raw => "raw",
            DumpFormat::ElfCore => "elf-core",
            DumpFormat::CrashDumpFull => "crashdump-full",
            DumpFormat::CrashDumpBitmap => "crashdump-bitmap",
            DumpFormat::Kdump => "kdump",
            DumpFormat::Live => "live",
        }
    }
}

/// What a dump path names, as far as opening it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Regular,
    BlockDevice,
    Directory,
    Fifo,
    Socket,
    CharDevice,
}

impl FileKind {
    /// Why hangscope will not open it, for the kinds that are no dump.
    fn refusal(self) -> Option<&'static str> {
        match self {
            FileKind::Regular | FileKind::BlockDevice => None,
            FileKind::Directory => Some("a directory"),
            FileKind::Fifo => Some("a FIFO (named pipe), which cannot be read at random"),
            FileKind::Socket => Some("a socket"),
            FileKind::CharDevice => Some("a character device"),
        }
    }
}

fn file_kind(meta: &std::fs::Metadata) -> FileKind {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        FileKind::Directory
    } else if t.is_fifo() {
        FileKind::Fifo
    } else if t.is_socket() {
        FileKind::Socket
    } else if t.is_char_device() {
        FileKind::CharDevice
    } else if t.is_block_device() {
        FileKind::BlockDevice
    } else {
        FileKind::Regular
    }
}

/// A file length as a mapping length; fails on 32-bit hosts past 4 GiB.
fn len_usize(len: u64) -> Result<usize, Error> {
    usize::try_from(len).map_err(|_| Error {
        kind: ErrorKind::Unsupported(format!("a {len}-byte dump on this 32-bit host")),
        at: None,
    })
}

impl Dump {
    /// Problems found and worked around while opening (see
    /// [`PhysicalMemory::notes`]); empty for a healthy dump.
    pub fn notes(&self) -> &[String] {
        self.memory.notes()
    }

    /// [`Dump::notes`] with the ones about truncation first: a file cut
    /// short explains most of what fails after it, whichever kernel reads it.
    pub fn notes_truncation_first(&self) -> Vec<String> {
        truncation_first(self.notes())
    }

    /// Open and recognise a dump file (read-only, memory-mapped).
    ///
    /// Costs a header parse and a compact index (per run, or one u64 per
    /// 512 pages of bitmap), never a pass over the pages.
    ///
    /// The file must not shrink while the dump is open: reading a mapped
    /// page that no longer exists kills the process (SIGBUS). Capture
    /// writes dumps under a temporary name and renames them when complete,
    /// so analysing a finished dump is safe.
    pub fn open(path: &Path) -> Result<Dump, Error> {
        let io = |e: std::io::Error| Error {
            kind: ErrorKind::Io(format!("{}: {e}", path.display())),
            at: None,
        };
        // What the path is, before open(): opening a FIFO blocks until a
        // writer comes, and a directory or a character device is no dump.
        let meta = std::fs::metadata(path).map_err(io)?;
        let kind = file_kind(&meta);
        if let Some(what) = kind.refusal() {
            return Err(Error {
                kind: ErrorKind::Io(format!(
                    "{} is {what}, not a dump file: give the path of a regular file or block device",
                    path.display()
                )),
                at: None,
            });
        }
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = match kind {
            // A block device's metadata has no length; its end does.
            FileKind::BlockDevice => {
                use std::io::Seek;
                file.seek(std::io::SeekFrom::End(0)).map_err(io)?
            }
            _ => meta.len(),
        };
        if len == 0 {
            return Err(Error {
                kind: ErrorKind::Truncated { needed: 1, have: 0 },
                at: Some(Location::File(FileOffset(0))),
            });
        }
        // SAFETY: the mapping is read-only and private to this process;
        // hangscope reads dump files that nothing else is writing. A file
        // truncated underneath us would raise SIGBUS, as documented above.
        let map =
            unsafe { memmap2::MmapOptions::new().len(len_usize(len)?).map(&file) }.map_err(io)?;
        Dump::parse(parse::Bytes::Map(map))
    }

    /// Recognise a dump held in memory (tests, fuzzing, small images).
    pub fn from_bytes(data: Vec<u8>) -> Result<Dump, Error> {
        Dump::parse(parse::Bytes::Owned(data))
    }

    fn parse(data: parse::Bytes) -> Result<Dump, Error> {
        let file_size = data.len() as u64;
        if parse::elf::is_elf(&data) {
            let core = parse::elf::parse(&data)?;
            let hints = KernelHints {
                vmcoreinfo: core.vmcoreinfo,
                ..core.windows.unwrap_or_default()
            };
            let memory = model::SegmentMemory::new(data, core.segments, core.notes);
            return Ok(Dump {
                format: DumpFormat::ElfCore,
                memory: Box::new(memory),
                cpus: core.cpus,
                hints,
                file_size,
            });
        }
        if parse::crash::is_crash_dump(&data) {
            let dump = parse::crash::parse(&data)?;
            let (format, memory): (DumpFormat, Box<dyn PhysicalMemory>) = match dump.layout {
                parse::crash::Layout::Runs(segs) => (
                    DumpFormat::CrashDumpFull,
                    Box::new(model::SegmentMemory::new(data, segs, dump.notes)),
                ),
                parse::crash::Layout::Bitmap { bitmap, first_page } => (
                    DumpFormat::CrashDumpBitmap,
                    Box::new(model::BitmapMemory::new(
                        data, bitmap, first_page, dump.notes,
                    )),
                ),
            };
            return Ok(Dump {
                format,
                memory,
                cpus: dump.cpus,
                hints: dump.hints,
                file_size,
            });
        }
        if parse::kdump::is_kdump(&data) {
            let k = parse::kdump::parse(data)?;
            return Ok(Dump {
                format: DumpFormat::Kdump,
                memory: Box::new(k.memory),
                cpus: k.cpus,
                hints: KernelHints {
                    vmcoreinfo: k.vmcoreinfo,
                    ..k.windows.unwrap_or_default()
                },
                file_size,
            });
        }
        // A raw image is whole pages of memory; anything else is garbage
        // (a text file, a partial download) rather than a tiny guest.
        if file_size % PAGE_SIZE != 0 {
            return Err(Error {
                kind: ErrorKind::UnknownFormat,
                at: Some(Location::File(FileOffset(0))),
            });
        }
        let seg = model::Segment {
            phys: 0,
            file: 0,
            len: file_size,
        };
        let memory = model::SegmentMemory::new(data, vec![seg], Vec::new());
        Ok(Dump {
            format: DumpFormat::Raw,
            memory: Box::new(memory),
            cpus: Vec::new(),
            hints: KernelHints::default(),
            file_size,
        })
    }
}

#[cfg(test)]
mod tests;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
