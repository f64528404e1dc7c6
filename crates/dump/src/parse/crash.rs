//! 64-bit Windows crash dumps (`PAGEDU64`).
//!
//! Written here rather than with the `kdmp-parser` crate: that crate builds
//! a per-page hash map of the whole dump at open time (memory and time
//! proportional to the dump), reads through a `RefCell` (not `Sync`), and
//! covers none of the other formats; hangscope needs an O(runs) index over
//! a shared mapping and one error type for every format.

use super::{bad, err_at, slice_at, u16_at, u32_at, u64_at};
use crate::model::{Bitmap, Segment};
use crate::raw::context_amd64 as ctx;
use crate::raw::dump_header64 as h;
use crate::raw::summary_dump as sd;
use crate::raw::PAGE_SIZE;
use crate::{CpuState, Error, ErrorKind, KernelHints};

/// More bits than any x86-64 machine has pages (52-bit physical addresses).
const MAX_BITMAP_BITS: u64 = 1 << 40;

/// How the pages are laid out.
#[derive(Debug)]
pub(crate) enum Layout {
    /// DumpType 1: runs stored back to back from 0x2000.
    Runs(Vec<Segment>),
    /// DumpType 5/6: a bitmap, pages from `first_page`.
    Bitmap { bitmap: Bitmap, first_page: u64 },
}

/// A parsed crash dump header.
#[derive(Debug)]
pub(crate) struct CrashDump {
    pub layout: Layout,
    pub cpus: Vec<CpuState>,
    pub hints: KernelHints,
    pub notes: Vec<String>,
}

/// Whether the file starts with "PAGE".
pub(crate) fn is_crash_dump(data: &[u8]) -> bool {
    data.starts_with(b"PAGE")
}

/// A header field, `None` when it still holds the "PAGE" fill pattern.
fn opt64(data: &[u8], off: u64) -> Result<Option<u64>, Error> {
    let v = u64_at(data, off)?;
    Ok((v != h::FILL64).then_some(v))
}

fn opt32(data: &[u8], off: u64) -> Result<Option<u32>, Error> {
    let v = u32_at(data, off)?;
    Ok((v != h::FILL32).then_some(v))
}

/// Parse a `PAGEDU64` header and its page layout.
pub(crate) fn parse(data: &[u8]) -> Result<CrashDump, Error> {
    let valid = u32_at(data, 4)?;
    if valid == h::VALID_DUMP32 {
        return Err(err_at(
            ErrorKind::Unsupported("32-bit Windows crash dump (PAGEDUMP)".into()),
            4,
        ));
    }
    if valid != h::VALID_DUMP64 {
        return Err(bad("ValidDump", u64::from(valid), 4));
    }
    slice_at(data, 0, h::SIZE)?;
    let machine = u32_at(data, h::MACHINE_IMAGE_TYPE)?;
    if machine != h::IMAGE_FILE_MACHINE_AMD64 {
        return Err(err_at(
            ErrorKind::Unsupported(format!("crash dump for machine {machine:#x} (only x64)")),
            h::MACHINE_IMAGE_TYPE,
        ));
    }
    let hints = header_hints(data, true)?;
    let cpus = vec![context_regs(data, h::CONTEXT_RECORD)?];
    let dump_type = u32_at(data, h::DUMP_TYPE)?;
    let layout = match dump_type {
        h::DUMP_TYPE_FULL => Layout::Runs(runs(data)?),
        h::DUMP_TYPE_BITMAP_FULL | h::DUMP_TYPE_BITMAP_KERNEL => bitmap(data)?,
        h::DUMP_TYPE_KERNEL => {
            return Err(err_at(
                ErrorKind::Unsupported(
                    "crash dump DumpType 2 (old kernel summary dump); take a complete \
                     memory dump or an ELF core (virsh dump --memory-only) instead"
                        .into(),
                ),
                h::DUMP_TYPE,
            ))
        }
        other => {
            return Err(err_at(
                ErrorKind::Unsupported(format!(
                    "crash dump DumpType {other} (supported: 1 full, 5/6 bitmap)"
                )),
                h::DUMP_TYPE,
            ))
        }
    };
    Ok(CrashDump {
        layout,
        cpus,
        hints,
        notes: Vec::new(),
    })
}

/// The kernel hints in a `DUMP_HEADER64` (at least 0x88 bytes). Without
/// `with_bugcheck` the bug check fields are ignored: a header that Windows
/// prepared in advance (the one its fwcfg driver hands QEMU as VMCOREINFO)
/// holds no bug check yet.
pub(crate) fn header_hints(data: &[u8], with_bugcheck: bool) -> Result<KernelHints, Error> {
    Ok(KernelHints {
        dtb: opt64(data, h::DIRECTORY_TABLE_BASE)?,
        kd_debugger_data_block: opt64(data, h::KD_DEBUGGER_DATA_BLOCK)?,
        ps_active_process_head: opt64(data, h::PS_ACTIVE_PROCESS_HEAD)?,
        ps_loaded_module_list: opt64(data, h::PS_LOADED_MODULE_LIST)?,
        pfn_database: opt64(data, h::PFN_DATA_BASE)?,
        number_processors: opt32(data, h::NUMBER_PROCESSORS)?,
        bugcheck: match opt32(data, h::BUGCHECK_CODE)?.filter(|_| with_bugcheck) {
            Some(code) => {
                let mut p = [0u64; 4];
                for (i, v) in p.iter_mut().enumerate() {
                    *v = u64_at(data, h::BUGCHECK_PARAMETERS + 8 * i as u64)?;
                }
                Some((code, p))
            }
            None => None,
        },
        version: Some((
            u32_at(data, h::MAJOR_VERSION)?,
            u32_at(data, h::MINOR_VERSION)?,
        )),
        vmcoreinfo: None,
    })
}

/// DumpType 1: the `_PHYSICAL_MEMORY_DESCRIPTOR64` run list.
fn runs(data: &[u8]) -> Result<Vec<Segment>, Error> {
    let n = u64::from(u32_at(data, h::NUMBER_OF_RUNS)?);
    if n > h::MAX_RUNS {
        return Err(bad("NumberOfRuns", n, h::NUMBER_OF_RUNS));
    }
    let mut segs = Vec::with_capacity(n as usize);
    let mut file = h::SIZE;
    for i in 0..n {
        let at = h::RUNS + i * h::RUN_SIZE;
        let base = u64_at(data, at)?;
        let count = u64_at(data, at + 8)?;
        let phys = base
            .checked_mul(PAGE_SIZE)
            .ok_or_else(|| bad("Run.BasePage", base, at))?;
        let len = count
            .checked_mul(PAGE_SIZE)
            .ok_or_else(|| bad("Run.PageCount", count, at + 8))?;
        segs.push(Segment { phys, file, len });
        file = file
            .checked_add(len)
            .ok_or_else(|| bad("Run.PageCount", count, at + 8))?;
    }
    Ok(segs)
}

/// DumpType 5/6: `_SUMMARY_DUMP` and its bitmap.
fn bitmap(data: &[u8]) -> Result<Layout, Error> {
    let base = sd::FILE_OFFSET;
    let sig = u32_at(data, base + sd::SIGNATURE)?;
    if sig != sd::SIG_SDMP && sig != sd::SIG_FDMP {
        return Err(bad("_SUMMARY_DUMP.Signature", u64::from(sig), base));
    }
    let first_page = u64_at(data, base + sd::HEADER_SIZE)?;
    let bits = u64_at(data, base + sd::BITMAP_SIZE)?;
    if bits > MAX_BITMAP_BITS {
        return Err(bad(
            "_SUMMARY_DUMP.BitmapSize",
            bits,
            base + sd::BITMAP_SIZE,
        ));
    }
    let bitmap_off = base + sd::BITMAP;
    // The bitmap must be whole; the page data may be cut short (a dump
    // written to a full disk still has its first pages).
    slice_at(data, bitmap_off, bits.div_ceil(8))?;
    let bitmap_end = bitmap_off + bits.div_ceil(8);
    if first_page < bitmap_end {
        return Err(bad(
            "_SUMMARY_DUMP.HeaderSize",
            first_page,
            base + sd::HEADER_SIZE,
        ));
    }
    if first_page > data.len() as u64 {
        return Err(err_at(
            ErrorKind::Truncated {
                needed: first_page,
                have: data.len() as u64,
            },
            base + sd::HEADER_SIZE,
        ));
    }
    let bitmap = Bitmap::new(data, bitmap_off as usize, bits);
    Ok(Layout::Bitmap { bitmap, first_page })
}

/// The x64 `CONTEXT` at `off`.
fn context_regs(data: &[u8], off: u64) -> Result<CpuState, Error> {
    slice_at(data, off, ctx::SIZE)?;
    let g = |i: u64| u64_at(data, off + ctx::RAX + 8 * i);
    // CONTEXT order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15.
    let gpr = [
        g(0)?,
        g(3)?,
        g(1)?,
        g(2)?,
        g(6)?,
        g(7)?,
        g(5)?,
        g(4)?,
        g(8)?,
        g(9)?,
        g(10)?,
        g(11)?,
        g(12)?,
        g(13)?,
        g(14)?,
        g(15)?,
    ];
    let s = |f: u64| u16_at(data, off + f);
    Ok(CpuState {
        index: 0,
        gpr,
        rip: u64_at(data, off + ctx::RIP)?,
        rflags: u64::from(u32_at(data, off + ctx::EFLAGS)?),
        selectors: [
            s(ctx::SEG_CS)?,
            s(ctx::SEG_DS)?,
            s(ctx::SEG_ES)?,
            s(ctx::SEG_FS)?,
            s(ctx::SEG_GS)?,
            s(ctx::SEG_SS)?,
        ],
        ..CpuState::default()
    })
}
