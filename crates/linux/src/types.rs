//! Types for the kernel: its own BTF, read from memory between the
//! symbols `__start_BTF` and `__stop_BTF`, or a table the user gave.

use crate::error::{Error, ErrorKind, Result};
use crate::space::START_KERNEL_MAP;
use crate::LinuxKernel;
use hangscope_symbols::{SymbolCache, SymbolTable};
use hangscope_x64::VirtAddr;

/// Largest BTF blob read (a distribution kernel's is 5 to 10 MiB).
pub const MAX_BTF: u64 = 64 << 20;
/// BTF's magic, little-endian.
const BTF_MAGIC: u16 = 0xeb9f;

/// Where the kernel's BTF is: `__start_BTF` and its length.
fn btf_span(k: &LinuxKernel<'_>) -> Result<(VirtAddr, u64)> {
    let types_not_found = |reason: String| Error {
        kind: ErrorKind::TypesNotFound {
            release: k.release(),
            reason,
        },
        at: None,
    };
    let (Some(start), Some(stop)) = (
        k.kallsyms().get("__start_BTF"),
        k.kallsyms().get("__stop_BTF"),
    ) else {
        return Err(types_not_found(
            "the kernel has no __start_BTF/__stop_BTF symbols (built without CONFIG_DEBUG_INFO_BTF)".into(),
        ));
    };
    let len = stop
        .checked_sub(start)
        .filter(|&l| l >= 24)
        .ok_or_else(|| {
            types_not_found(format!(
                "__stop_BTF {stop:#x} is not after __start_BTF {start:#x}"
            ))
        })?;
    Ok((VirtAddr(start), len))
}

/// The kernel's BTF bytes from memory.
pub fn read_btf(k: &LinuxKernel<'_>) -> Result<Vec<u8>> {
    let types_not_found = |reason: String| Error {
        kind: ErrorKind::TypesNotFound {
            release: k.release(),
            reason,
        },
        at: None,
    };
    let (start, len) = btf_span(k)?;
    let start = start.0;
    let bytes = k
        .memory()
        .read_vec(VirtAddr(start), len, MAX_BTF)
        .map_err(|f| types_not_found(format!("its BTF cannot be read: {f}")))?;
    if u16::from_le_bytes([bytes[0], bytes[1]]) != BTF_MAGIC {
        return Err(types_not_found(format!(
            "the data at __start_BTF {start:#x} is not BTF (magic {:#06x})",
            u16::from_le_bytes([bytes[0], bytes[1]])
        )));
    }
    Ok(bytes)
}

/// A cache key that names this kernel's BTF without reading all of it:
/// the build id VMCOREINFO gives (the linker's hash of the vmlinux, whose
/// `.BTF` is linked in), the BTF's length, and a hash of its first and
/// last pages (a VMCOREINFO copied from another build cannot pick that
/// build's table). `None` without a build id: the caller hashes the whole
/// blob.
fn build_key(k: &LinuxKernel<'_>, start: VirtAddr, len: u64) -> Option<String> {
    let id = k.vmcoreinfo()?.build_id.as_deref()?;
    if id.is_empty() || !id.bytes().all(|c| c.is_ascii_hexdigit()) || id.len() > 128 {
        return None;
    }
    let page = len.min(4096);
    let head = k.memory().read_vec(start, page, page).ok()?;
    let tail = k
        .memory()
        .read_vec(VirtAddr(start.0 + len - page), page, page)
        .ok()?;
    if head.len() < 2 || u16::from_le_bytes([head[0], head[1]]) != BTF_MAGIC {
        return None;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in head.iter().chain(&tail) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Some(format!("btf-build-{id}-{len:x}-{h:016x}"))
}

/// The kernel's types from its BTF in memory, with kallsyms' symbols at
/// their link-time addresses (run-time minus KASLR's offset; per-CPU
/// offsets and absolute symbols as they are); and where they came from.
/// With a cache, a table built before for the same BTF bytes is mapped
/// instead of parsed.
pub fn btf_from_memory(
    k: &LinuxKernel<'_>,
    cache: Option<&SymbolCache>,
) -> Result<(SymbolTable, String)> {
    let (start, len) = btf_span(k)?;
    let origin = format!(
        "BTF in the dump ({}, {} bytes)",
        k.release().unwrap_or_else(|| "unknown release".into()),
        len
    );
    let offset = k.kernel_offset();
    let build = |bytes: &[u8]| {
        let symbols: Vec<(String, u64)> = k
            .kallsyms()
            .iter()
            .map(|s| {
                let link = s.addr.wrapping_sub(offset);
                let addr = if s.addr >= START_KERNEL_MAP && link >= START_KERNEL_MAP {
                    link
                } else {
                    s.addr
                };
                (s.name.to_string(), addr)
            })
            .collect();
        SymbolTable::from_btf(bytes, symbols, &origin)
    };
    let parse_error = |e: hangscope_symbols::Error| Error {
        kind: ErrorKind::TypesNotFound {
            release: k.release(),
            reason: format!("its BTF does not parse: {e}"),
        },
        at: None,
    };
    // With a build id the cached table is found without reading the
    // blob (5 to 10 MiB, each page decompressed in a kdump file).
    let table = match (cache, build_key(k, start, len)) {
        (Some(c), Some(key)) => {
            let mut failed = None;
            let t = c.load_or_build(&key, || {
                let bytes = read_btf(k).map_err(|e| {
                    failed = Some(e);
                    hangscope_symbols::Error::new(hangscope_symbols::ErrorKind::Cache {
                        message: "the BTF cannot be read".into(),
                    })
                })?;
                build(&bytes)
            });
            match (t, failed) {
                (_, Some(e)) => return Err(e),
                (t, None) => t.map_err(parse_error)?,
            }
        }
        (Some(c), None) => {
            let bytes = read_btf(k)?;
            c.load_or_build(&SymbolCache::content_key(&bytes), || build(&bytes))
                .map_err(parse_error)?
        }
        (None, _) => build(&read_btf(k)?).map_err(parse_error)?,
    };
    Ok((table, origin))
}
