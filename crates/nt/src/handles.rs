//! Handle tables (`_EPROCESS.ObjectTable` -> `_HANDLE_TABLE.TableCode`):
//! one to three levels of pages of `_HANDLE_TABLE_ENTRY`.
//!
//! Entry encodings, chosen by which fields the symbols have:
//! - Win7: `Object` is the `_OBJECT_HEADER` address with attribute bits in
//!   the low 3 bits; `GrantedAccess`.
//! - Win8+: `ObjectPointerBits` (a bitfield) is the header address shifted
//!   right by 4, high bits sign-extended; `GrantedAccessBits`.

use crate::error::{Error, Result, Warning};
use crate::kernel::{Kernel, KERNEL_SPACE_START};
use crate::model::*;
use hangscope_symbols::TypeRef;
use hangscope_x64::VirtAddr;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Low bits of a Win7 handle entry's `Object` that are attributes.
const OBJ_HANDLE_ATTRIBUTES: u64 = 0x7;
/// Low bits of `TableCode` that give the number of levels.
const TABLE_LEVEL_MASK: u64 = 0x3;
/// Page size of handle table pages.
const PAGE: u64 = 0x1000;
/// Most handles read per process.
const MAX_HANDLES_PER_PROCESS: usize = 1 << 20;

/// The handle listing and its index, built once per kernel.
#[derive(Debug, Default)]
struct Cache {
    handles: OnceLock<HandleReport>,
    /// Object body -> indexes into `handles.handles`, so asking who holds
    /// one object does not scan every handle (thousands of files x
    /// thousands of handles on a flooded machine).
    by_object: OnceLock<HashMap<VirtAddr, Vec<usize>>>,
}

/// How this build encodes a handle table entry.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// Win7: header pointer at `offset`, attribute bits masked.
    Pointer { offset: u64 },
    /// Win8+: a bitfield in the u64 at `offset`.
    Bits {
        offset: u64,
        position: u32,
        length: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct EntryLayout {
    size: u64,
    object: Encoding,
    access_offset: u64,
    access_bits: Option<(u32, u32)>,
}

fn bits_of(t: &TypeRef) -> Option<(u32, u32)> {
    match t {
        TypeRef::Bitfield {
            position, length, ..
        } => Some((*position, *length)),
        _ => None,
    }
}

impl EntryLayout {
    fn header(&self, e: &[u8]) -> Option<u64> {
        let rd = |o: u64| -> Option<u64> {
            let o = usize::try_from(o).ok()?;
            Some(u64::from_le_bytes(
                e.get(o..o.checked_add(8)?)?.try_into().ok()?,
            ))
        };
        let h = match self.object {
            Encoding::Pointer { offset } => rd(offset)? & !OBJ_HANDLE_ATTRIBUTES,
            Encoding::Bits {
                offset,
                position,
                length,
            } => {
                let raw = rd(offset)?;
                // validate_layout keeps position + length within 64 bits;
                // checked shifts keep a bad layout from panicking anyway.
                let shifted = raw.checked_shr(position).unwrap_or(0);
                let bits = if length >= 64 {
                    shifted
                } else {
                    shifted & ((1u64 << length) - 1)
                };
                let shift = if length <= 48 {
                    48 - length
                } else {
                    64u32.saturating_sub(length)
                };
                let v = bits.checked_shl(shift).unwrap_or(0);
                if v < 1 << 48 && v & (1 << 47) != 0 {
                    v | 0xFFFF_0000_0000_0000
                } else {
                    v
                }
            }
        };
        (h >= KERNEL_SPACE_START).then_some(h)
    }

    fn access(&self, e: &[u8]) -> u32 {
        let o = usize::try_from(self.access_offset).unwrap_or(usize::MAX);
        let raw = o
            .checked_add(4)
            .and_then(|end| e.get(o..end))
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0);
        match self.access_bits {
            Some((p, l)) if l < 32 => raw.checked_shr(p).unwrap_or(0) & ((1u32 << l) - 1),
            _ => raw,
        }
    }
}

/// Check every size, offset and bit position the symbol table gives a
/// handle table entry before any shift or slice uses it: an entry fits in
/// a handle table page and holds its fields, and the bitfields lie inside
/// their words. The error names what is wrong.
fn validate_layout(l: &EntryLayout) -> std::result::Result<(), String> {
    if !(8..=PAGE).contains(&l.size) {
        return Err(format!("size {}", l.size));
    }
    let (offset, bits) = match l.object {
        Encoding::Pointer { offset } => (offset, None),
        Encoding::Bits {
            offset,
            position,
            length,
        } => (offset, Some((position, length))),
    };
    if offset.checked_add(8).is_none_or(|end| end > l.size) {
        return Err(format!("object at {offset:#x}"));
    }
    if let Some((position, length)) = bits {
        if length == 0 || position.checked_add(length).is_none_or(|end| end > 64) {
            return Err(format!(
                "ObjectPointerBits at bit {position}, {length} bits"
            ));
        }
    }
    if l.access_offset
        .checked_add(4)
        .is_none_or(|end| end > l.size)
    {
        return Err(format!("access at {:#x}", l.access_offset));
    }
    if let Some((position, length)) = l.access_bits {
        if position.checked_add(length).is_none_or(|end| end > 32) {
            return Err(format!(
                "GrantedAccessBits at bit {position}, {length} bits"
            ));
        }
    }
    Ok(())
}

impl<'d> Kernel<'d> {
    fn entry_layout(&self) -> Result<EntryLayout> {
        let r = self.reader();
        let t = r.ty("_HANDLE_TABLE_ENTRY")?;
        let object = if let Ok((offset, _)) = r.resolve(t, "Object") {
            Encoding::Pointer { offset }
        } else {
            let (offset, ty) = r.resolve(t, "ObjectPointerBits")?;
            let (position, length) = bits_of(&ty).ok_or_else(|| {
                Error::missing(
                    "_HANDLE_TABLE_ENTRY",
                    Some("ObjectPointerBits (bitfield)"),
                    self.build(),
                )
            })?;
            Encoding::Bits {
                offset,
                position,
                length,
            }
        };
        let (access_offset, access_bits) = match r.resolve(t, "GrantedAccess") {
            Ok((o, _)) => (o, None),
            Err(_) => {
                let (o, ty) = r.resolve(t, "GrantedAccessBits")?;
                (o, bits_of(&ty))
            }
        };
        let layout = EntryLayout {
            size: t.size,
            object,
            access_offset,
            access_bits,
        };
        validate_layout(&layout).map_err(|what| {
            Error::missing(
                "_HANDLE_TABLE_ENTRY",
                Some(&format!("{what} (the symbol table's layout is impossible)")),
                self.build(),
            )
        })?;
        Ok(layout)
    }

    /// Every handle of every listed process (cached).
    pub fn handles(&self) -> &HandleReport {
        self.caches.get::<Cache>().handles.get_or_init(|| {
            let mut rep = HandleReport::default();
            rep.warnings.extend(
                self.process_list_caveat("handles", hangscope_waitgraph::ModelPart::Processes),
            );
            let layout = match self.entry_layout() {
                Ok(l) => l,
                Err(e) => {
                    rep.warnings.push(Warning::from_error("handle tables", &e));
                    return rep;
                }
            };
            for p in &self.processes().items {
                let Some(ht) = p.handle_table else { continue };
                if let Err(e) = self.process_handles(p, ht.0, &layout, &mut rep) {
                    rep.warnings.push(Warning::from_error(
                        format!("handle table of {} ({})", p.name, p.pid),
                        &e,
                    ));
                }
            }
            rep
        })
    }

    /// The listed handles to one object body, in listing order.
    pub fn handles_to(&self, object: VirtAddr) -> Vec<&HandleInfo> {
        let all = &self.handles().handles;
        let index = self.caches.get::<Cache>().by_object.get_or_init(|| {
            let mut m: HashMap<VirtAddr, Vec<usize>> = HashMap::new();
            for (i, h) in all.iter().enumerate() {
                m.entry(h.object).or_default().push(i);
            }
            m
        });
        let mine = index.get(&object).map(Vec::as_slice).unwrap_or(&[]);
        mine.iter().filter_map(|&i| all.get(i)).collect()
    }

    /// Handles of one process and/or to files under a path prefix (case
    /// insensitive, without the device: `\Windows\Temp`), with per-process
    /// counts.
    pub fn handles_filtered(&self, pid: Option<u64>, path_prefix: Option<&str>) -> HandleReport {
        let all = self.handles();
        let prefix = path_prefix.map(|p| p.trim_end_matches('\\').to_ascii_lowercase());
        let handles: Vec<HandleInfo> = all
            .handles
            .iter()
            .filter(|h| match pid {
                None => true,
                Some(p) => h.pid == p,
            })
            .filter(|h| match &prefix {
                None => true,
                Some(pre) => {
                    h.type_name == "File" && {
                        let path = self
                            .file_path(h.object)
                            .unwrap_or_default()
                            .to_ascii_lowercase();
                        let full = h.name.to_ascii_lowercase();
                        under(&path, pre) || under(&full, pre)
                    }
                }
            })
            .cloned()
            .collect();
        let mut holders: Vec<HolderCount> = Vec::new();
        for h in &handles {
            match holders.iter_mut().find(|x| x.pid == h.pid) {
                Some(x) => x.count += 1,
                None => holders.push(HolderCount {
                    pid: h.pid,
                    process_name: h.process_name.clone(),
                    count: 1,
                }),
            }
        }
        holders.sort_by(|a, b| b.count.cmp(&a.count).then(a.pid.cmp(&b.pid)));
        HandleReport {
            handles,
            path_prefix: path_prefix.map(str::to_string),
            holders,
            warnings: all.warnings.clone(),
        }
    }

    fn process_handles(
        &self,
        p: &ProcessInfo,
        table: u64,
        layout: &EntryLayout,
        rep: &mut HandleReport,
    ) -> Result<()> {
        let r = self.reader();
        let code = r
            .object("_HANDLE_TABLE", VirtAddr(table))?
            .u64("TableCode")?;
        let levels = code & TABLE_LEVEL_MASK;
        let base = code & !(TABLE_LEVEL_MASK | 0x4);
        let per_leaf = PAGE / layout.size;
        let mut leaves: Vec<(u64, u64)> = Vec::new(); // (page address, first handle index)
        let read_ptrs = |page: u64| -> Result<Vec<u64>> {
            let mut b = vec![0u8; PAGE as usize];
            r.read(VirtAddr(page), &mut b)?;
            Ok(b.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect())
        };
        match levels {
            0 => leaves.push((base, 0)),
            1 => {
                for (j, &leaf) in read_ptrs(base)?.iter().enumerate() {
                    if leaf == 0 {
                        break;
                    }
                    leaves.push((leaf, j as u64 * per_leaf));
                }
            }
            2 => {
                for (k, &mid) in read_ptrs(base)?.iter().enumerate() {
                    if mid == 0 {
                        break;
                    }
                    let ptrs = match read_ptrs(mid) {
                        Ok(v) => v,
                        Err(e) => {
                            rep.warnings.push(Warning::from_error(
                                format!("handle table of {} ({})", p.name, p.pid),
                                &e,
                            ));
                            continue;
                        }
                    };
                    for (j, &leaf) in ptrs.iter().enumerate() {
                        if leaf == 0 {
                            break;
                        }
                        leaves.push((leaf, (k as u64 * (PAGE / 8) + j as u64) * per_leaf));
                    }
                }
            }
            _ => {
                return Err(Error::bad_data(
                    VirtAddr(table),
                    format!("TableCode {code:#x} has {levels} levels"),
                ))
            }
        }
        let mut count = 0usize;
        for (leaf, first) in leaves {
            let mut b = vec![0u8; PAGE as usize];
            if let Err(e) = r.read(VirtAddr(leaf), &mut b) {
                rep.warnings.push(Warning::from_error(
                    format!("handle table page of {} ({})", p.name, p.pid),
                    &e,
                ));
                continue;
            }
            for (i, e) in b.chunks_exact(layout.size as usize).enumerate() {
                let Some(header) = layout.header(e) else {
                    continue;
                };
                count += 1;
                if count > MAX_HANDLES_PER_PROCESS {
                    return Err(Error::bad_data(
                        VirtAddr(table),
                        format!("more than {MAX_HANDLES_PER_PROCESS} handles"),
                    ));
                }
                let handle = (first + i as u64) * 4;
                match self.handle_info(p, handle, header, layout.access(e)) {
                    Ok(h) => rep.handles.push(h),
                    Err(err) => rep.warnings.push(Warning::from_error(
                        format!("handle {handle:#x} of {} ({})", p.name, p.pid),
                        &err,
                    )),
                }
            }
        }
        Ok(())
    }

    fn handle_info(
        &self,
        p: &ProcessInfo,
        handle: u64,
        header: u64,
        access: u32,
    ) -> Result<HandleInfo> {
        let body = header.wrapping_add(self.reader().offset_of("_OBJECT_HEADER", "Body")?);
        let idx = self.type_index(VirtAddr(header))?;
        let type_name = self
            .object_type_names()
            .get(&idx)
            .cloned()
            .unwrap_or_else(|| format!("Unknown({idx})"));
        let name = match type_name.as_str() {
            "File" => {
                let path = self.file_path(VirtAddr(body)).unwrap_or_default();
                let dev = self
                    .object("_FILE_OBJECT", VirtAddr(body))
                    .and_then(|f| f.ptr("DeviceObject"))
                    .ok()
                    .filter(|d| d.0 != 0)
                    .and_then(|d| self.device_name(d).ok().flatten());
                format!("{}{}", dev.unwrap_or_default(), path)
            }
            "Process" => {
                let ep = self.object("_EPROCESS", VirtAddr(body))?;
                format!(
                    "{} Pid {}",
                    ep.ascii("ImageFileName")?,
                    ep.u64("UniqueProcessId")?
                )
            }
            "Thread" => {
                let et = self.object("_ETHREAD", VirtAddr(body))?;
                format!(
                    "Tid {} Pid {}",
                    et.u64("Cid.UniqueThread")?,
                    et.u64("Cid.UniqueProcess")?
                )
            }
            _ => self
                .object_path(VirtAddr(body))
                .ok()
                .flatten()
                .unwrap_or_default(),
        };
        Ok(HandleInfo {
            pid: p.pid,
            process_name: p.name.clone(),
            handle,
            object: VirtAddr(body),
            type_name,
            access,
            name,
        })
    }
}

/// True when `path` is `prefix` or below it (both lower case).
fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'\\'))
        || path.contains(&format!("{prefix}\\"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win8_entries_sign_extend_the_header_pointer() {
        let l = EntryLayout {
            size: 16,
            object: Encoding::Bits {
                offset: 0,
                position: 20,
                length: 44,
            },
            access_offset: 8,
            access_bits: Some((0, 25)),
        };
        let header: u64 = 0xffff_e001_2345_6780;
        let bits = (header & 0x0000_ffff_ffff_ffff) >> 4;
        let mut e = [0u8; 16];
        e[..8].copy_from_slice(&((bits << 20) | 1).to_le_bytes());
        e[8..12].copy_from_slice(&0xfe12_0196u32.to_le_bytes());
        assert_eq!(l.header(&e), Some(header));
        assert_eq!(l.access(&e), 0x0012_0196);
        assert_eq!(l.header(&[0u8; 16]), None);
    }

    #[test]
    fn impossible_bit_positions_from_the_symbols_are_refused() {
        let good = EntryLayout {
            size: 16,
            object: Encoding::Bits {
                offset: 0,
                position: 20,
                length: 44,
            },
            access_offset: 8,
            access_bits: Some((0, 25)),
        };
        assert_eq!(validate_layout(&good), Ok(()));
        let bits = |position, length| EntryLayout {
            object: Encoding::Bits {
                offset: 0,
                position,
                length,
            },
            ..good
        };
        for bad in [
            bits(60, 44),
            bits(20, 0),
            bits(64, 1),
            bits(u32::MAX, 2),
            bits(0, 65),
            EntryLayout {
                access_bits: Some((30, 25)),
                ..good
            },
            EntryLayout { size: 4, ..good },
            EntryLayout {
                size: 0x2000,
                ..good
            },
            EntryLayout {
                access_offset: 14,
                ..good
            },
            EntryLayout {
                object: Encoding::Pointer { offset: u64::MAX },
                ..good
            },
        ] {
            assert!(validate_layout(&bad).is_err(), "{bad:?}");
            // Even unchecked, reading an entry with it cannot panic.
            let e = [0xffu8; 16];
            let _ = (bad.header(&e), bad.access(&e));
        }
    }

    #[test]
    fn win7_entries_mask_attribute_bits() {
        let l = EntryLayout {
            size: 16,
            object: Encoding::Pointer { offset: 0 },
            access_offset: 8,
            access_bits: None,
        };
        let mut e = [0u8; 16];
        e[..8].copy_from_slice(&0xfffffa80_0b61bb21u64.to_le_bytes());
        assert_eq!(l.header(&e), Some(0xfffffa80_0b61bb20));
    }

    #[test]
    fn path_prefix_matches_whole_components() {
        assert!(under("\\windows\\temp\\sess_1", "\\windows\\temp"));
        assert!(under(
            "\\device\\harddiskvolume2\\windows\\temp\\x",
            "\\windows\\temp"
        ));
        assert!(!under("\\windows\\temporary\\x", "\\windows\\temp"));
    }
}
