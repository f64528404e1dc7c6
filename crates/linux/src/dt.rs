//! `dt TYPE ADDR` and `db`/`dq` on a Linux kernel: a structure's fields
//! by the kernel's own types (the BTF in the dump, or a vmlinux's DWARF),
//! named as C names them, in the shape both kernels share
//! ([`hangscope_x64::view`]).

use crate::error::{Error, Result};
use crate::LinuxKernel;
use hangscope_symbols::TypeRef;
use hangscope_x64::view::{self, DtField, DtOutput, MemoryDump};
use hangscope_x64::VirtAddr;

/// How C (and crash's `struct` command) writes a field's type:
/// `long unsigned int`, `struct list_head *`, `char[16]`, `unsigned int : 3`.
pub fn c_type_name(t: &TypeRef) -> String {
    match t {
        TypeRef::Base(n) => n.clone(),
        TypeRef::Pointer(inner) => format!("{} *", c_type_name(inner)),
        TypeRef::Array { count, element } => format!("{}[{count}]", c_type_name(element)),
        TypeRef::Struct(n) => format!("struct {n}"),
        TypeRef::Enum(n) => format!("enum {n}"),
        TypeRef::Bitfield { length, base, .. } => format!("{} : {length}", c_type_name(base)),
        TypeRef::Function => "function".into(),
        _ => "?".into(),
    }
}

/// The longest `char` array shown as text.
const MAX_TEXT: u64 = 256;

impl LinuxKernel<'_> {
    /// `dt TYPE ADDR`: every field of `TYPE` (`task_struct`, or `struct
    /// task_struct`) at `addr`, with the value of each scalar, pointer,
    /// enum and bitfield, `char` arrays as text and a `list_head`'s links.
    /// A field that cannot be read says why; the others still show.
    pub fn dt(&self, type_name: &str, addr: VirtAddr) -> Result<DtOutput> {
        let r = self.reader()?;
        let name = type_name.trim();
        let name = name
            .strip_prefix("struct ")
            .or_else(|| name.strip_prefix("union "))
            .unwrap_or(name)
            .trim();
        let ty = r
            .types
            .user_type(name)
            .ok_or_else(|| Error::missing(name, None))?;
        let mut fields = Vec::with_capacity(ty.fields.len());
        for f in &ty.fields {
            let at = VirtAddr(addr.0.wrapping_add(f.offset));
            let mut d = DtField {
                offset: f.offset,
                name: f.name.clone(),
                type_name: c_type_name(&f.ty),
                ..Default::default()
            };
            if let TypeRef::Bitfield {
                position, length, ..
            } = &f.ty
            {
                d.bits = Some((*position, *length));
            }
            let read = |len: u64| -> std::result::Result<u64, String> {
                let mut b = [0u8; 8];
                let n = len.min(8) as usize;
                r.mem
                    .read(at, &mut b[..n])
                    .map_err(|e| e.to_string())
                    .map(|_| u64::from_le_bytes(b))
            };
            let outcome = match &f.ty {
                TypeRef::Pointer(_) => read(8).map(|v| d.value = Some(v)),
                TypeRef::Base(_) | TypeRef::Enum(_) => match r.types.type_size(&f.ty) {
                    Some(n @ 1..=8) => read(n).map(|v| d.value = Some(v)),
                    _ => Ok(()),
                },
                TypeRef::Bitfield {
                    position,
                    length,
                    base,
                } if hangscope_symbols::bitfield_fits(*position, *length) => {
                    let size = r.types.type_size(base).unwrap_or(8).clamp(1, 8);
                    read(size).map(|v| {
                        let mask = if *length == 64 {
                            u64::MAX
                        } else {
                            (1u64 << length) - 1
                        };
                        d.value = Some((v >> position) & mask)
                    })
                }
                TypeRef::Array { count, element } if matches!(element.as_ref(), TypeRef::Base(b) if b == "char") =>
                {
                    let n = (*count).min(MAX_TEXT);
                    r.mem
                        .read_vec(at, n, MAX_TEXT)
                        .map_err(|e| e.to_string())
                        .map(|b| {
                            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                            d.text = Some(format!("\"{}\"", String::from_utf8_lossy(&b[..end])));
                        })
                }
                // atomic_t, atomic64_t, refcount_t...: a wrapped scalar
                // reads as its value.
                TypeRef::Struct(n)
                    if r.types.user_type(n).is_some_and(|u| {
                        u.fields.len() == 1
                            && (1..=8).contains(&u.size)
                            && matches!(u.fields[0].ty, TypeRef::Base(_) | TypeRef::Pointer(_))
                    }) =>
                {
                    let size = r.types.user_type(n).map_or(8, |u| u.size);
                    read(size).map(|v| d.value = Some(v))
                }
                TypeRef::Struct(n) if n == "list_head" || n == "hlist_node" => {
                    match (
                        r.mem.read_u64(at),
                        r.mem.read_u64(VirtAddr(at.0.wrapping_add(8))),
                    ) {
                        (Ok(a), Ok(b)) => {
                            d.text = Some(format!("[ {a:#x} - {b:#x} ]"));
                            Ok(())
                        }
                        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                    }
                }
                _ => Ok(()),
            };
            if let Err(e) = outcome {
                d.error = Some(e);
            }
            fields.push(d);
        }
        Ok(DtOutput {
            type_name: format!("struct {}", ty.name),
            address: addr,
            size: ty.size,
            fields,
        })
    }

    /// `db`/`dq`: `len` bytes at `addr` (at most 1 MiB), unreadable bytes
    /// as holes page by page.
    pub fn read_memory(&self, addr: VirtAddr, len: u64) -> MemoryDump {
        view::read_memory(self.memory(), addr, len)
    }
}
