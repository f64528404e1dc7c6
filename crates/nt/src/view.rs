//! Typed views: a kernel object is (address, type) and every field is read
//! by name through the symbol table. No structure offset lives in code.

use crate::error::{Error, Result};
use hangscope_symbols::{SymbolTable, TypeRef, UserType};
use hangscope_x64::{CircularList, ListBreak, ListLinks, VirtAddr, VirtualMemory};

/// Longest UNICODE_STRING read, in bytes (the field is a u16 anyway).
const MAX_UNICODE_BYTES: usize = 0xfffe;

/// Types and memory together: what every typed read needs.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    /// Kernel virtual memory.
    pub mem: &'a dyn VirtualMemory,
    /// The kernel's symbol table.
    pub symbols: &'a SymbolTable,
    /// Build number, for error messages.
    pub build: Option<u32>,
}

impl<'a> Reader<'a> {
    /// A struct or union by name, or a MissingSymbol error naming it.
    pub fn ty(&self, name: &str) -> Result<&'a UserType> {
        self.symbols
            .user_type(name)
            .ok_or_else(|| Error::missing(name, None, self.build))
    }

    /// True when `ty` exists and has the field path `path`.
    pub fn has_field(&self, ty: &str, path: &str) -> bool {
        self.ty(ty).and_then(|t| self.resolve(t, path)).is_ok()
    }

    /// Offset and type of a dotted field path (`Tail.Overlay.Thread`,
    /// `WaitBlock[1].Object`), resolved once per table and path.
    pub fn resolve(&self, ty: &UserType, path: &str) -> Result<(u64, TypeRef)> {
        self.symbols
            .field_path(&ty.name, path)
            .ok_or_else(|| Error::missing(&ty.name, Some(path), self.build))
    }

    /// Offset of a field path in a type named by string.
    pub fn offset_of(&self, ty: &str, path: &str) -> Result<u64> {
        let t = self.ty(ty)?;
        Ok(self.resolve(t, path)?.0)
    }

    /// Size in bytes of a type reference.
    pub fn size_of(&self, t: &TypeRef) -> Option<u64> {
        match t {
            TypeRef::Base(n) => self.symbols.base_size(n).or(match n.as_str() {
                "void" => Some(0),
                _ => None,
            }),
            TypeRef::Pointer(_) => Some(8),
            TypeRef::Array { count, element } => self.size_of(element)?.checked_mul(*count),
            TypeRef::Struct(n) => self.symbols.user_type(n).map(|u| u.size),
            TypeRef::Enum(n) => self.symbols.enumeration(n).map(|e| e.size),
            TypeRef::Bitfield { base, .. } => self.size_of(base),
            TypeRef::Function => Some(0),
            _ => None,
        }
    }

    /// Read bytes.
    pub fn read(&self, va: VirtAddr, buf: &mut [u8]) -> Result<()> {
        self.mem.read(va, buf).map_err(Error::from)
    }

    /// Read a little-endian unsigned value of 1, 2, 4 or 8 bytes.
    pub fn read_uint(&self, va: VirtAddr, size: u64) -> Result<u64> {
        let n = match size {
            1 | 2 | 4 | 8 => size as usize,
            _ => return Err(Error::bad_data(va, format!("no {size}-byte integer"))),
        };
        let mut b = [0u8; 8];
        self.read(va, &mut b[..n])?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read a pointer.
    pub fn read_ptr(&self, va: VirtAddr) -> Result<VirtAddr> {
        Ok(VirtAddr(self.read_uint(va, 8)?))
    }

    /// Read a scalar of type `t` (base, enum, pointer or bitfield) at `va`,
    /// zero-extended.
    pub fn read_scalar(&self, va: VirtAddr, t: &TypeRef) -> Result<u64> {
        match t {
            TypeRef::Bitfield {
                position,
                length,
                base,
            } => {
                let size = self.size_of(base).unwrap_or(8);
                let raw = self.read_uint(va, size)?;
                Ok(bits_of(raw, *position, *length))
            }
            TypeRef::Pointer(_) => self.read_uint(va, 8),
            TypeRef::Base(_) | TypeRef::Enum(_) => {
                let size = self
                    .size_of(t)
                    .ok_or_else(|| Error::bad_data(va, format!("unknown size of {t:?}")))?;
                self.read_uint(va, size)
            }
            // A union of integers (e.g. _LARGE_INTEGER): read its full size
            // when it is a plain 8-byte value.
            TypeRef::Struct(n) => match self.symbols.user_type(n) {
                Some(u) if matches!(u.size, 1 | 2 | 4 | 8) => self.read_uint(va, u.size),
                _ => Err(Error::bad_data(va, format!("{n} is not a scalar"))),
            },
            other => Err(Error::bad_data(va, format!("{other:?} is not a scalar"))),
        }
    }

    /// A view of the object of type `ty` at `addr`.
    pub fn object(&self, ty: &str, addr: VirtAddr) -> Result<Object<'a>> {
        Ok(Object {
            r: *self,
            addr,
            ty: self.ty(ty)?,
        })
    }

    /// Read a `_UNICODE_STRING` at `va`.
    pub fn unicode_string_at(&self, va: VirtAddr) -> Result<String> {
        let us = self.object("_UNICODE_STRING", va)?;
        let len = us.uint("Length")? as usize;
        let buf = us.ptr("Buffer")?;
        if len == 0 {
            return Ok(String::new());
        }
        if len % 2 != 0 || len > MAX_UNICODE_BYTES {
            return Err(Error::bad_data(va, format!("UNICODE_STRING length {len}")));
        }
        let mut bytes = vec![0u8; len];
        self.read(buf, &mut bytes)?;
        Ok(decode_utf16(&bytes))
    }

    /// A walker over a `_LIST_ENTRY` list headed at `head`, yielding the
    /// address of each containing `ty` linked through `link` (a field path
    /// of `ty`). Bounded by `max`, cycle-checked, and back-link-checked:
    /// each entry's `Blink` must point at the entry before it (and the
    /// head's at the last), as `entry.Flink.Blink == entry` holds in a
    /// sound list; where it does not, the walk ends with a `BadData` error
    /// naming the entry, after every entry read before it.
    pub fn iter_list(
        &self,
        head: VirtAddr,
        ty: &str,
        link: &str,
        max: usize,
    ) -> Result<ListIter<'a>> {
        let t = self.ty(ty)?;
        let (link_offset, _) = self.resolve(t, link)?;
        let links = ListLinks {
            next: self.offset_of("_LIST_ENTRY", "Flink")?,
            prev: self.offset_of("_LIST_ENTRY", "Blink")?,
        };
        Ok(ListIter {
            walk: CircularList::new(self.mem, head, link_offset, links, max),
        })
    }
}

/// The `length` bits of `raw` from bit `position`; bits past the 64th
/// read as zero, whatever geometry the table claims.
fn bits_of(raw: u64, position: u32, length: u32) -> u64 {
    let shifted = raw.checked_shr(position).unwrap_or(0);
    if length >= 64 {
        shifted
    } else {
        shifted & ((1u64 << length) - 1)
    }
}

/// Decode UTF-16LE bytes, replacing ill-formed units.
pub fn decode_utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// A typed view of a kernel object: its address and its type, fields read
/// by name.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    r: Reader<'a>,
    /// Address of the object.
    pub addr: VirtAddr,
    /// Its type.
    pub ty: &'a UserType,
}

impl<'a> Object<'a> {
    /// Address and type of a field path.
    pub fn locate(&self, path: &str) -> Result<(VirtAddr, TypeRef)> {
        let (off, t) = self.r.resolve(self.ty, path)?;
        Ok((VirtAddr(self.addr.0.wrapping_add(off)), t))
    }

    /// True when the type has this field path (a probe across builds).
    pub fn has(&self, path: &str) -> bool {
        self.r.resolve(self.ty, path).is_ok()
    }

    /// Address of a field.
    pub fn addr_of(&self, path: &str) -> Result<VirtAddr> {
        Ok(self.locate(path)?.0)
    }

    /// A struct or union field as a view.
    pub fn field(&self, path: &str) -> Result<Object<'a>> {
        let (a, t) = self.locate(path)?;
        match t {
            TypeRef::Struct(n) => self.r.object(&n, a),
            _ => Err(Error::bad_data(
                a,
                format!("{}.{path} is not a struct", self.ty.name),
            )),
        }
    }

    /// The object a pointer field points to, as a view of type `ty`
    /// (`None` for a NULL pointer).
    pub fn deref(&self, path: &str, ty: &str) -> Result<Option<Object<'a>>> {
        let p = self.ptr(path)?;
        if p.0 == 0 {
            return Ok(None);
        }
        self.r.object(ty, p).map(Some)
    }

    /// A scalar field (base, enum, pointer, bitfield), zero-extended.
    pub fn uint(&self, path: &str) -> Result<u64> {
        // The common case reads by the remembered shape; anything else
        // (odd widths, undescribed enums) goes the long way, which also
        // words the error.
        if let Some((off, Some(shape))) = self.r.symbols.field_scalar(&self.ty.name, path) {
            let a = VirtAddr(self.addr.0.wrapping_add(off));
            let raw = self.r.read_uint(a, u64::from(shape.size))?;
            return Ok(match shape.bits {
                Some((position, length)) => bits_of(raw, position, length),
                None => raw,
            });
        }
        let (a, t) = self.locate(path)?;
        self.r.read_scalar(a, &t)
    }

    /// A scalar field that must fit in 32 bits.
    pub fn u32(&self, path: &str) -> Result<u32> {
        let v = self.uint(path)?;
        u32::try_from(v)
            .map_err(|_| Error::bad_data(self.addr, format!("{}.{path} = {v:#x}", self.ty.name)))
    }

    /// A scalar field as u64.
    pub fn u64(&self, path: &str) -> Result<u64> {
        self.uint(path)
    }

    /// Eight bytes at a field, whatever its declared type (unions such as
    /// `_LARGE_INTEGER`).
    pub fn quad(&self, path: &str) -> Result<u64> {
        let a = self.addr_of(path)?;
        self.r.read_uint(a, 8)
    }

    /// A pointer field.
    pub fn ptr(&self, path: &str) -> Result<VirtAddr> {
        if let Some((off, Some(shape))) = self.r.symbols.field_scalar(&self.ty.name, path) {
            if shape.size == 8 && shape.bits.is_none() {
                return self.r.read_ptr(VirtAddr(self.addr.0.wrapping_add(off)));
            }
        }
        let (a, t) = self.locate(path)?;
        match t {
            TypeRef::Pointer(_) => self.r.read_ptr(a),
            // Some pointers are declared as integers (ULONG_PTR).
            _ if self.r.size_of(&t) == Some(8) => self.r.read_ptr(a),
            _ => Err(Error::bad_data(
                a,
                format!("{}.{path} is not a pointer", self.ty.name),
            )),
        }
    }

    /// A `_UNICODE_STRING` field's text.
    pub fn unicode_string(&self, path: &str) -> Result<String> {
        let a = self.addr_of(path)?;
        self.r.unicode_string_at(a)
    }

    /// A fixed `char`/`unsigned char` array field as text, up to the first
    /// NUL (`_EPROCESS.ImageFileName`).
    pub fn ascii(&self, path: &str) -> Result<String> {
        let (a, t) = self.locate(path)?;
        let n = self.r.size_of(&t).unwrap_or(0).min(256) as usize;
        let mut b = vec![0u8; n];
        self.r.read(a, &mut b)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(b[..end].iter().map(|&c| c as char).collect())
    }

    /// The reader this view uses.
    pub fn reader(&self) -> Reader<'a> {
        self.r
    }
}

/// Walks a `_LIST_ENTRY` list; yields container addresses, then at most one
/// error, after which it stops for good. The walk is
/// [`hangscope_x64::CircularList`]; this says its breaks in Windows' terms.
#[derive(Debug)]
pub struct ListIter<'a> {
    walk: CircularList<'a>,
}

impl Iterator for ListIter<'_> {
    type Item = Result<VirtAddr>;

    fn next(&mut self) -> Option<Result<VirtAddr>> {
        let head = self.walk.head();
        Some(self.walk.next()?.map_err(|b| match b {
            ListBreak::Fault { fault, via } => {
                let e = Error::from(fault);
                match via {
                    Some(v) => e.via(v),
                    None => e,
                }
            }
            ListBreak::NullLink { from } => Error::bad_data(
                from,
                format!(
                    "the Flink here is NULL: the list headed at {head} ends before returning to its head"
                ),
            ),
            // Windows lists are walked without the kernel-half check.
            ListBreak::NotKernel { from, value } => Error::bad_data(
                from,
                format!("the Flink here is {value}, outside the kernel"),
            ),
            ListBreak::Loop { at, from } => Error::bad_data(
                at,
                format!(
                    "list headed at {head} loops back to this entry without returning to its head"
                ),
            )
            .via(from),
            ListBreak::TooLong { max } => {
                Error::bad_data(head, format!("list longer than {max} entries; stopped"))
            }
            ListBreak::BackLink {
                entry,
                found,
                expected,
            } => Error::bad_data(
                entry,
                format!(
                    "list headed at {head} is broken here: {expected} links to this entry, whose Blink is {found}"
                ),
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_x64::SparseMemory;

    fn win7() -> SymbolTable {
        let p = hangscope_lab::builds::symbols_dir()
            .join("windows/ntkrnlmp.pdb/339E74133576439CBCDF7E0229DA3773-1.json.xz");
        SymbolTable::load_isf(&p).expect("Win7 ISF")
    }

    /// Links `entries` (addresses of LIST_ENTRYs) after `head` in order,
    /// the last one pointing at `tail_next`; every Blink points back (the
    /// head's at the last entry).
    fn link(m: &mut SparseMemory, head: u64, entries: &[u64], tail_next: u64) {
        m.write_u64(head, entries.first().copied().unwrap_or(head));
        m.write_u64(head + 8, entries.last().copied().unwrap_or(head));
        for (i, e) in entries.iter().enumerate() {
            m.write_u64(*e, entries.get(i + 1).copied().unwrap_or(tail_next));
            let back = if i == 0 { head } else { entries[i - 1] };
            m.write_u64(*e + 8, back);
        }
    }

    #[test]
    fn list_walk_yields_containers_and_stops_at_the_head() {
        let t = win7();
        let mut m = SparseMemory::new();
        let r = Reader {
            mem: &m,
            symbols: &t,
            build: None,
        };
        let real = r.offset_of("_EPROCESS", "ActiveProcessLinks").unwrap();
        let head = 0xfffff800_02a00000;
        let procs = [
            0xfffffa80_01000000u64,
            0xfffffa80_01001000,
            0xfffffa80_01002000,
        ];
        let links: Vec<u64> = procs.iter().map(|p| p + real).collect();
        link(&mut m, head, &links, head);
        let r = Reader {
            mem: &m,
            symbols: &t,
            build: None,
        };
        let got: Vec<_> = r
            .iter_list(VirtAddr(head), "_EPROCESS", "ActiveProcessLinks", 10)
            .unwrap()
            .collect();
        assert_eq!(
            got,
            procs.iter().map(|&p| Ok(VirtAddr(p))).collect::<Vec<_>>()
        );
    }

    #[test]
    fn list_walk_reports_a_cycle_once_and_stops() {
        let t = win7();
        let mut m = SparseMemory::new();
        let head = 0xfffff800_02a00000;
        let e = [0xfffffa80_01000000u64, 0xfffffa80_01001000];
        link(&mut m, head, &e, e[0]);
        let r = Reader {
            mem: &m,
            symbols: &t,
            build: None,
        };
        let mut it = r
            .iter_list(VirtAddr(head), "_LIST_ENTRY", "Flink", 100)
            .unwrap();
        assert_eq!(it.next(), Some(Ok(VirtAddr(e[0]))));
        assert_eq!(it.next(), Some(Ok(VirtAddr(e[1]))));
        let err = it.next().unwrap().unwrap_err();
        assert_eq!(err.name(), "BadData");
        assert_eq!(err.at, Some(VirtAddr(e[0])));
        // The link that loops is named too: the last entry's Flink.
        assert_eq!(err.via, Some(VirtAddr(e[1])));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }

    #[test]
    fn list_walk_is_bounded_and_faults_name_the_address() {
        let t = win7();
        let mut m = SparseMemory::new();
        let head = 0xfffff800_02a00000;
        let e: Vec<u64> = (0..50).map(|i| 0xfffffa80_01000000 + i * 0x100).collect();
        link(&mut m, head, &e, head);
        let r = Reader {
            mem: &m,
            symbols: &t,
            build: None,
        };
        let v: Vec<_> = r
            .iter_list(VirtAddr(head), "_LIST_ENTRY", "Flink", 10)
            .unwrap()
            .collect();
        assert_eq!(v.len(), 11);
        assert!(v[10].is_err());
        // A link into unmapped memory.
        let mut m = SparseMemory::new();
        link(&mut m, head, &[0xfffffa80_01000000], 0xfffffa80_0dead000);
        let r = Reader {
            mem: &m,
            symbols: &t,
            build: None,
        };
        let v: Vec<_> = r
            .iter_list(VirtAddr(head), "_LIST_ENTRY", "Flink", 10)
            .unwrap()
            .collect();
        assert_eq!(v.len(), 2);
        let err = v[1].clone().unwrap_err();
        assert_eq!(err.name(), "Fault");
        assert_eq!(err.at, Some(VirtAddr(0xfffffa80_0dead000)));
        // The entry whose Flink leads there is named too.
        assert_eq!(err.via, Some(VirtAddr(0xfffffa80_01000000)));
        assert!(
            err.to_string().contains("reached through the link at"),
            "{err}"
        );
    }

    fn walk(m: &SparseMemory, t: &SymbolTable, head: u64) -> Vec<Result<VirtAddr>> {
        let r = Reader {
            mem: m,
            symbols: t,
            build: None,
        };
        r.iter_list(VirtAddr(head), "_LIST_ENTRY", "Flink", 100)
            .unwrap()
            .collect()
    }

    #[test]
    fn list_walk_stops_at_a_broken_back_link_and_keeps_what_it_read() {
        let t = win7();
        let mut m = SparseMemory::new();
        let head = 0xfffff800_02a00000;
        let e: Vec<u64> = (0..4).map(|i| 0xfffffa80_01000000 + i * 0x100).collect();
        link(&mut m, head, &e, head);
        assert_eq!(walk(&m, &t, head).len(), 4);
        // e[2]'s Blink no longer points at e[1]: the list breaks there.
        m.write_u64(e[2] + 8, 0xfffffa80_0badb10c);
        let v = walk(&m, &t, head);
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(v[0], Ok(VirtAddr(e[0])));
        assert_eq!(v[1], Ok(VirtAddr(e[1])));
        let err = v[2].clone().unwrap_err();
        assert_eq!(err.name(), "BadData");
        assert_eq!(err.at, Some(VirtAddr(e[2])));
        assert!(err.to_string().contains("Blink"), "{err}");
        // The head's Blink must point at the last entry: every entry is
        // kept, then the break is reported at the head.
        link(&mut m, head, &e, head);
        m.write_u64(head + 8, e[1]);
        let v = walk(&m, &t, head);
        assert_eq!(v.len(), 5, "{v:?}");
        assert!(v[..4].iter().all(|x| x.is_ok()));
        assert_eq!(v[4].clone().unwrap_err().at, Some(VirtAddr(head)));
    }

    #[test]
    fn self_linked_lists() {
        let t = win7();
        let mut m = SparseMemory::new();
        let head = 0xfffff800_02a00000;
        // An empty list: the head links to itself both ways.
        link(&mut m, head, &[], head);
        assert_eq!(walk(&m, &t, head), vec![]);
        // An entry linked to itself (Flink and Blink): one entry, then the
        // walk stops at it instead of yielding it forever.
        let e = 0xfffffa80_01000000u64;
        link(&mut m, head, &[e], e);
        let v = walk(&m, &t, head);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0], Ok(VirtAddr(e)));
        assert_eq!(v[1].clone().unwrap_err().at, Some(VirtAddr(e)));
        m.write_u64(e + 8, e);
        let v = walk(&m, &t, head);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].clone().unwrap_err().at, Some(VirtAddr(e)));
    }

    #[test]
    fn fields_resolve_by_dotted_path_and_bitfields_extract() {
        let t = win7();
        let mut m = SparseMemory::new();
        let r = Reader {
            mem: &m,
            symbols: &t,
            build: Some(7601),
        };
        let irp = r.ty("_IRP").unwrap();
        let (off, _) = r.resolve(irp, "Tail.Overlay.CurrentStackLocation").unwrap();
        assert!(off > r.offset_of("_IRP", "Tail").unwrap());
        let e = r.resolve(irp, "Tail.Nope").unwrap_err();
        assert_eq!(e.name(), "MissingSymbol");
        assert!(e.to_string().contains("_IRP.Tail.Nope"), "{e}");
        // _OWNER_ENTRY.OwnerCount is bits 2..32 of the second dword.
        let base = 0xfffffa80_02000000u64;
        let o = r.offset_of("_OWNER_ENTRY", "OwnerCount").unwrap();
        m.write(base + o, &((5u32 << 2) | 3).to_le_bytes());
        let r = Reader {
            mem: &m,
            symbols: &t,
            build: Some(7601),
        };
        assert_eq!(
            r.object("_OWNER_ENTRY", VirtAddr(base))
                .unwrap()
                .u64("OwnerCount")
                .unwrap(),
            5
        );
    }
}
