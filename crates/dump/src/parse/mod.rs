//! Format recognition and header parsing. Each submodule turns one format's
//! headers into a memory model (`crate::model`) plus CPU states and hints.

pub(crate) mod crash;
pub(crate) mod elf;
pub(crate) mod kdump;

use crate::{Error, ErrorKind, FileOffset, Location};
use std::ops::Deref;

/// The bytes of a dump: a read-only mapping of the file, or an owned buffer
/// (tests, fuzzing).
pub(crate) enum Bytes {
    /// A read-only memory map.
    Map(memmap2::Mmap),
    /// An owned buffer.
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

impl Bytes {
    /// Drop the pages of a mapping from this process's resident set after
    /// a pass over the whole file (a flattened kdump's record index): they
    /// stay in the page cache and come back on the next touch, but the
    /// process's peak memory no longer grows with the file.
    pub(crate) fn release_resident(&self) {
        #[cfg(unix)]
        if let Bytes::Map(m) = self {
            // SAFETY: the mapping is private, read-only and backed by the
            // file, so a dropped page reads back the same bytes from the
            // file on the next access; no reference sees it change.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bytes::Map(m) => write!(f, "Mmap({:#x} bytes)", m.len()),
            Bytes::Owned(v) => write!(f, "Owned({:#x} bytes)", v.len()),
        }
    }
}

/// An error at a file offset.
pub(crate) fn err_at(kind: ErrorKind, off: u64) -> Error {
    Error {
        kind,
        at: Some(Location::File(FileOffset(off))),
    }
}

/// A bad header field at a file offset.
pub(crate) fn bad(field: &'static str, value: u64, off: u64) -> Error {
    err_at(ErrorKind::BadHeader { field, value }, off)
}

/// `len` bytes at `off`, or `Truncated` naming how much was needed.
pub(crate) fn slice_at(data: &[u8], off: u64, len: u64) -> Result<&[u8], Error> {
    let have = data.len() as u64;
    let end = off
        .checked_add(len)
        .ok_or_else(|| bad("offset", off, off))?;
    if end > have {
        return Err(err_at(ErrorKind::Truncated { needed: end, have }, off));
    }
    Ok(&data[off as usize..end as usize])
}

/// A fixed-size array at `off`.
pub(crate) fn array_at<const N: usize>(data: &[u8], off: u64) -> Result<[u8; N], Error> {
    let s = slice_at(data, off, N as u64)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}

/// Little-endian u16 at `off`.
pub(crate) fn u16_at(data: &[u8], off: u64) -> Result<u16, Error> {
    array_at(data, off).map(u16::from_le_bytes)
}

/// Little-endian u32 at `off`.
pub(crate) fn u32_at(data: &[u8], off: u64) -> Result<u32, Error> {
    array_at(data, off).map(u32::from_le_bytes)
}

/// Little-endian u64 at `off`.
pub(crate) fn u64_at(data: &[u8], off: u64) -> Result<u64, Error> {
    array_at(data, off).map(u64::from_le_bytes)
}

/// Big-endian i64 at `off` (the flattened makedumpfile records).
pub(crate) fn be_i64_at(data: &[u8], off: u64) -> Result<i64, Error> {
    array_at(data, off).map(i64::from_be_bytes)
}
