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

/// The kernel's BTF bytes from memory.
pub fn read_btf(k: &LinuxKernel<'_>) -> Result<Vec<u8>> {
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

/// The kernel's types from its BTF in memory, with kallsyms' symbols at
/// their link-time addresses (run-time minus KASLR's offset; per-CPU
/// offsets and absolute symbols as they are); and where they came from.
/// With a cache, a table built before for the same BTF bytes is mapped
/// instead of parsed.
pub fn btf_from_memory(
    k: &LinuxKernel<'_>,
    cache: Option<&SymbolCache>,
) -> Result<(SymbolTable, String)> {
    let bytes = read_btf(k)?;
    let origin = format!(
        "BTF in the dump ({}, {} bytes)",
        k.release().unwrap_or_else(|| "unknown release".into()),
        bytes.len()
    );
    let offset = k.kernel_offset();
    let build = || {
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
                (s.name.clone(), addr)
            })
            .collect();
        SymbolTable::from_btf(&bytes, symbols, &origin)
    };
    let table = match cache {
        Some(c) => c.load_or_build(&SymbolCache::content_key(&bytes), build),
        None => build(),
    };
    let table = table.map_err(|e| Error {
        kind: ErrorKind::TypesNotFound {
            release: k.release(),
            reason: format!("its BTF does not parse: {e}"),
        },
        at: None,
    })?;
    Ok((table, origin))
}
