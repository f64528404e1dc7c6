//! Writing a [`LabImage`] in each dump format a hung VM's memory reaches
//! an analyst in.
//!
//! Every writer streams: it asks [`LabImage::page_into`] for one page at a
//! time and pushes it through a large [`BufWriter`], so a 4 GiB image
//! never sits in memory. The file is written to `<path>.tmp` and renamed
//! over `path` only once it is complete, so a crash or an error never
//! leaves a half-written dump that looks whole.
//!
//! Formats, and whose behaviour each one reproduces:
//! - [`Format::Raw`]: a flat physical image (`dd` of guest RAM); holes
//!   between RAM ranges are sparse.
//! - [`Format::CrashFull`], [`Format::CrashBitmap`],
//!   [`Format::CrashKernelBitmap`]: Windows `PAGEDU64` crash dumps (see
//!   [`crash`]).
//! - [`Format::Elf`]: the ELF core that QEMU 7.2's `dump-guest-memory`
//!   (and `virsh dump --memory-only`) writes, quirks included (see
//!   [`elf`]).

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::image::{LabImage, PAGE_SIZE};

pub mod crash;
pub mod elf;
pub mod raw;
#[cfg(test)]
mod testutil;

/// A dump file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Physical memory as a flat file: byte at offset N is physical
    /// address N.
    Raw,
    /// `PAGEDU64` crash dump, DumpType 1: the physical memory runs stored
    /// back to back after the 0x2000-byte header.
    CrashFull,
    /// `PAGEDU64` crash dump, DumpType 5: a `_SUMMARY_DUMP` bitmap of every
    /// RAM page, then the pages.
    CrashBitmap,
    /// `PAGEDU64` crash dump, DumpType 6: a bitmap of the pages the kernel
    /// half of the kernel page tables maps (plus the tables themselves).
    CrashKernelBitmap,
    /// ELF64 core as QEMU's `dump-guest-memory` writes it.
    Elf,
}

impl Format {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [Format; 5] = [
        Format::Raw,
        Format::CrashFull,
        Format::CrashBitmap,
        Format::CrashKernelBitmap,
        Format::Elf,
    ];

    /// The name the CLI accepts (`raw`, `crash-full`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::CrashFull => "crash-full",
            Format::CrashBitmap => "crash-bitmap",
            Format::CrashKernelBitmap => "crash-kernel-bitmap",
            Format::Elf => "elf",
        }
    }

    /// The usual file extension for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::CrashFull | Format::CrashBitmap | Format::CrashKernelBitmap => "dmp",
            Format::Elf => "elf",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("unknown format {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// What a write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteStats {
    /// Format written.
    pub format: Format,
    /// Final file size in bytes (holes of a sparse raw file included).
    pub file_size: u64,
    /// Pages of memory stored in the file.
    pub pages_written: u64,
    /// Wall time of the write, rename included.
    pub elapsed: Duration,
}

impl WriteStats {
    /// Memory written per second, in MB (10^6 bytes).
    pub fn mb_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        (self.pages_written * PAGE_SIZE) as f64 / 1e6 / secs
    }
}

/// Why a dump could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write {}: {kind}", path.display())]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The dump file being written.
    pub path: PathBuf,
}

impl Error {
    /// Short stable name of the error kind, for logs.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

/// What went wrong while writing a dump.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file operation failed.
    #[error("{op} failed: {message} ({kind:?})")]
    Io {
        /// The operation (create, write, rename, ...).
        op: &'static str,
        /// The I/O error kind.
        kind: std::io::ErrorKind,
        /// The I/O error text.
        message: String,
    },
    /// `LabImage::ram` is not a list of ascending, page-aligned,
    /// non-overlapping, non-empty ranges.
    #[error(
        "RAM range #{index} (start {start:#x}, length {len:#x}) {problem}; \
         the image builder must give ascending page-aligned ranges"
    )]
    BadRamRange {
        /// Index in `LabImage::ram`.
        index: usize,
        /// Range start.
        start: u64,
        /// Range length.
        len: u64,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The image has no RAM at all.
    #[error("the image has no RAM ranges")]
    NoRam,
    /// A crash dump header holds at most this many physical memory runs.
    #[error(
        "{runs} RAM ranges do not fit the crash dump header (at most {max}); \
         merge ranges in the image"
    )]
    TooManyRuns {
        /// Runs needed.
        runs: usize,
        /// Runs that fit.
        max: usize,
    },
    /// The image has no vCPU, so there is no context to put in the header
    /// or notes.
    #[error("the image has no CPU; crash and ELF headers need CPU 0's registers")]
    NoCpu,
}

impl ErrorKind {
    /// Short stable name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::Io { .. } => "io",
            ErrorKind::BadRamRange { .. } => "bad_ram_range",
            ErrorKind::NoRam => "no_ram",
            ErrorKind::TooManyRuns { .. } => "too_many_runs",
            ErrorKind::NoCpu => "no_cpu",
        }
    }

    fn io(op: &'static str, e: &std::io::Error) -> ErrorKind {
        ErrorKind::Io {
            op,
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Writes `image` to `path` in `format`, with a progress bar on stderr
/// when `progress` is true.
///
/// The file appears at `path` only when complete (written to
/// `<path>.tmp`, then renamed); on error the temporary file is removed.
pub fn write(
    image: &LabImage,
    format: Format,
    path: &Path,
    progress: bool,
) -> Result<WriteStats, Error> {
    let started = Instant::now();
    let err = |kind| Error {
        kind,
        path: path.to_path_buf(),
    };
    validate_ram(image).map_err(err)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = write_to(image, format, &tmp, progress);
    let pages_written = match result {
        Ok(n) => n,
        Err(kind) => {
            // Best effort: the error that matters is the one returned.
            let _ = std::fs::remove_file(&tmp);
            return Err(err(kind));
        }
    };
    std::fs::rename(&tmp, path).map_err(|e| err(ErrorKind::io("rename", &e)))?;
    let file_size = std::fs::metadata(path)
        .map_err(|e| err(ErrorKind::io("stat", &e)))?
        .len();
    Ok(WriteStats {
        format,
        file_size,
        pages_written,
        elapsed: started.elapsed(),
    })
}

fn write_to(
    image: &LabImage,
    format: Format,
    tmp: &Path,
    progress: bool,
) -> Result<u64, ErrorKind> {
    let file = File::create(tmp).map_err(|e| ErrorKind::io("create", &e))?;
    let mut sink = PageSink::new(file, progress);
    let pages = match format {
        Format::Raw => raw::write(image, &mut sink)?,
        Format::CrashFull => crash::write_full(image, &mut sink)?,
        Format::CrashBitmap => crash::write_bitmap(image, &mut sink, crash::BitmapKind::Full)?,
        Format::CrashKernelBitmap => {
            crash::write_bitmap(image, &mut sink, crash::BitmapKind::Kernel)?
        }
        Format::Elf => elf::write(image, &mut sink)?,
    };
    sink.finish()?;
    Ok(pages)
}

/// Checks the RAM ranges every writer relies on.
fn validate_ram(image: &LabImage) -> Result<(), ErrorKind> {
    if image.ram.is_empty() {
        return Err(ErrorKind::NoRam);
    }
    let mut prev_end = 0u64;
    for (index, &(start, len)) in image.ram.iter().enumerate() {
        let bad = |problem| ErrorKind::BadRamRange {
            index,
            start,
            len,
            problem,
        };
        if len == 0 {
            return Err(bad("is empty"));
        }
        if start % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 {
            return Err(bad("is not page aligned"));
        }
        let end = start.checked_add(len).ok_or_else(|| bad("overflows"))?;
        // Physical addresses above 52 bits cannot exist on x64.
        if end > 1 << 52 {
            return Err(bad("ends above the 52-bit physical address limit"));
        }
        if index > 0 && start < prev_end {
            return Err(bad("overlaps or precedes the previous range"));
        }
        prev_end = end;
    }
    Ok(())
}

/// Buffered output with a byte-count progress bar: what every format
/// writer writes through.
pub(crate) struct PageSink {
    out: BufWriter<File>,
    bar: ProgressBar,
    /// Bytes of memory pages written since the bar was last advanced.
    pending: u64,
    /// All-zero page bytes not yet written: they become a sparse hole
    /// (skipped with a seek) instead of disk writes.
    hole: u64,
}

impl fmt::Debug for PageSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageSink").finish_non_exhaustive()
    }
}

/// Advance the bar every this many bytes: per page would cost an atomic
/// operation per 4 KiB.
const PROGRESS_STEP: u64 = 4 << 20;

impl PageSink {
    fn new(file: File, progress: bool) -> PageSink {
        let bar = if progress {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            ) {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        PageSink {
            // Large buffer: fewer syscalls, and pages go out in 4 MiB
            // writes.
            out: BufWriter::with_capacity(4 << 20, file),
            bar,
            pending: 0,
            hole: 0,
        }
    }

    /// Sets the number of memory bytes the bar counts up to.
    pub(crate) fn set_total(&mut self, bytes: u64) {
        self.bar.set_length(bytes);
    }

    /// Turns pending zero pages into a hole before real bytes follow.
    fn close_hole(&mut self) -> Result<(), ErrorKind> {
        if self.hole > 0 {
            let hole = i64::try_from(self.hole).map_err(|_| ErrorKind::Io {
                op: "seek",
                kind: std::io::ErrorKind::InvalidInput,
                message: format!("hole of {:#x} bytes", self.hole),
            })?;
            self.out
                .seek(SeekFrom::Current(hole))
                .map_err(|e| ErrorKind::io("seek", &e))?;
            self.hole = 0;
        }
        Ok(())
    }

    /// Writes header bytes (not counted as memory).
    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        self.close_hole()?;
        self.out
            .write_all(bytes)
            .map_err(|e| ErrorKind::io("write", &e))
    }

    /// Writes one page of memory. An all-zero page becomes part of a
    /// sparse hole: it reads back as zeros and costs neither a write nor
    /// disk space (a quarter of filler pages are zero, as in real RAM).
    pub(crate) fn write_page(&mut self, page: &[u8; PAGE_SIZE as usize]) -> Result<(), ErrorKind> {
        if is_zero(page) {
            self.hole += PAGE_SIZE;
        } else {
            self.close_hole()?;
            self.out
                .write_all(page)
                .map_err(|e| ErrorKind::io("write", &e))?;
        }
        self.pending += PAGE_SIZE;
        if self.pending >= PROGRESS_STEP {
            self.bar.inc(self.pending);
            self.pending = 0;
        }
        Ok(())
    }

    /// Writes every page of `[start, start+len)` from the image, in order.
    /// Returns the number of pages written.
    pub(crate) fn write_range(
        &mut self,
        image: &LabImage,
        start: u64,
        len: u64,
    ) -> Result<u64, ErrorKind> {
        let mut page = [0u8; PAGE_SIZE as usize];
        let first = start / PAGE_SIZE;
        let count = len / PAGE_SIZE;
        for pfn in first..first + count {
            image.page_into(pfn, &mut page);
            self.write_page(&page)?;
        }
        Ok(count)
    }

    /// Moves the write position to `offset` (leaving a sparse hole when it
    /// is past the end).
    pub(crate) fn seek_to(&mut self, offset: u64) -> Result<(), ErrorKind> {
        self.hole = 0;
        self.out
            .seek(SeekFrom::Start(offset))
            .map_err(|e| ErrorKind::io("seek", &e))?;
        Ok(())
    }

    /// Makes the file exactly `len` bytes long (extending it with a hole).
    pub(crate) fn set_len(&mut self, len: u64) -> Result<(), ErrorKind> {
        self.hole = 0;
        self.out.flush().map_err(|e| ErrorKind::io("flush", &e))?;
        self.out
            .get_ref()
            .set_len(len)
            .map_err(|e| ErrorKind::io("set_len", &e))
    }

    fn finish(mut self) -> Result<(), ErrorKind> {
        if self.hole > 0 {
            // A trailing hole: extend the file to cover it.
            let end = self
                .out
                .stream_position()
                .map_err(|e| ErrorKind::io("seek", &e))?
                + self.hole;
            self.set_len(end)?;
        }
        self.out.flush().map_err(|e| ErrorKind::io("flush", &e))?;
        self.bar.inc(self.pending);
        self.bar.finish_and_clear();
        Ok(())
    }
}

/// True if every byte of `page` is zero.
fn is_zero(page: &[u8; PAGE_SIZE as usize]) -> bool {
    page.chunks_exact(16)
        .all(|c| u128::from_ne_bytes(c.try_into().unwrap_or([1; 16])) == 0)
}

/// Little-endian field writers for building headers in a byte buffer.
pub(crate) trait PutLe {
    /// Writes `v` at `off`.
    fn put_u16(&mut self, off: usize, v: u16);
    /// Writes `v` at `off`.
    fn put_u32(&mut self, off: usize, v: u32);
    /// Writes `v` at `off`.
    fn put_u64(&mut self, off: usize, v: u64);
    /// Writes `bytes` at `off`.
    fn put_bytes(&mut self, off: usize, bytes: &[u8]);
}

impl PutLe for [u8] {
    fn put_u16(&mut self, off: usize, v: u16) {
        self[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, off: usize, v: u32) {
        self[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        self[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn put_bytes(&mut self, off: usize, bytes: &[u8]) {
        self[off..off + bytes.len()].copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::tiny_image;
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        assert!("crash".parse::<Format>().is_err());
    }

    #[test]
    fn bad_ram_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.raw");
        let mut image = tiny_image();
        image.ram = vec![(0x1000, 0x2000), (0x2000, 0x1000)];
        let e = write(&image, Format::Raw, &path, false).unwrap_err();
        assert_eq!(e.name(), "bad_ram_range");
        image.ram = vec![(0x1000, 0x1800)];
        let e = write(&image, Format::Raw, &path, false).unwrap_err();
        assert_eq!(e.name(), "bad_ram_range");
        image.ram = vec![];
        let e = write(&image, Format::Raw, &path, false).unwrap_err();
        assert_eq!(e.name(), "no_ram");
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn every_format_reads_back_every_page() {
        let dir = tempfile::tempdir().unwrap();
        let image = tiny_image();
        for f in Format::ALL {
            let path = dir.path().join(format!("img.{}", f.name()));
            let stats = write(&image, f, &path, false).unwrap();
            let mem = testutil::read_back(&path).unwrap();
            let expected = testutil::expected_pages(&image, f);
            let stored = match f {
                // Holes read back as zero pages but are not written.
                Format::Raw => image.ram_size() / PAGE_SIZE,
                _ => expected.len() as u64,
            };
            assert_eq!(stats.pages_written, stored, "{f}");
            assert_eq!(mem.len(), expected.len(), "{f}: page count");
            for (pfn, page) in expected {
                assert_eq!(mem.get(&pfn), Some(&page), "{f}: pfn {pfn:#x}");
            }
            // No temporary file stays behind.
            assert!(!dir.path().join(format!("img.{}.tmp", f.name())).exists());
        }
    }
}
