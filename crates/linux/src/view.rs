//! Typed views: a kernel object is (address, type name) and every field is
//! read by name through the type information. No structure offset lives
//! in code; the kernel version is probed by which fields exist.

use crate::error::{Error, Result};
use crate::kallsyms::Kallsyms;
use hangscope_symbols::{SymbolTable, TypeRef};
use hangscope_x64::{CircularList, ListBreak, ListLinks, VirtAddr, VirtualMemory};

/// Types and memory together: what every typed read needs.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    /// Kernel virtual memory.
    pub mem: &'a dyn VirtualMemory,
    /// The kernel's types.
    pub types: &'a SymbolTable,
}

impl<'a> Reader<'a> {
    /// Offset and type of a dotted field path (`thread_info.cpu`,
    /// `sched_info.last_arrival`).
    pub fn field(&self, ty: &str, path: &str) -> Result<(u64, TypeRef)> {
        if !self.types.has_type(ty) {
            return Err(Error::missing(ty, None));
        }
        self.types
            .field_path(ty, path)
            .ok_or_else(|| Error::missing(ty, Some(path)))
    }

    /// Offset of a field path.
    pub fn offset(&self, ty: &str, path: &str) -> Result<u64> {
        Ok(self.field(ty, path)?.0)
    }

    /// Whether `ty` has the field path `path` (a version probe).
    pub fn has_field(&self, ty: &str, path: &str) -> bool {
        self.types.field_path(ty, path).is_some()
    }

    /// Size of a struct by name.
    pub fn size_of_struct(&self, ty: &str) -> Result<u64> {
        self.types
            .user_type(ty)
            .map(|u| u.size)
            .ok_or_else(|| Error::missing(ty, None))
    }

    /// Size in bytes of a type reference.
    pub fn size_of(&self, t: &TypeRef) -> Option<u64> {
        self.types.type_size(t)
    }

    /// Read a little-endian unsigned value of 1, 2, 4 or 8 bytes.
    pub fn read_uint(&self, va: VirtAddr, size: u64) -> Result<u64> {
        let n = match size {
            1 | 2 | 4 | 8 => size as usize,
            _ => return Err(Error::bad_data(va, format!("no {size}-byte integer"))),
        };
        let mut b = [0u8; 8];
        self.mem.read(va, &mut b[..n])?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read a pointer.
    pub fn read_ptr(&self, va: VirtAddr) -> Result<VirtAddr> {
        Ok(VirtAddr(self.read_uint(va, 8)?))
    }

    /// Read a scalar of type `t` (integer, enum, pointer, bitfield, or a
    /// struct of one integer such as `atomic_t`) at `va`, zero-extended,
    /// and its size in bytes.
    pub fn read_scalar(&self, va: VirtAddr, t: &TypeRef) -> Result<(u64, u64)> {
        match t {
            TypeRef::Bitfield {
                position,
                length,
                base,
            } => {
                let size = self.size_of(base).unwrap_or(8);
                let raw = self.read_uint(va, size)?;
                let shifted = raw.checked_shr(*position).unwrap_or(0);
                let v = if *length >= 64 {
                    shifted
                } else {
                    shifted & ((1u64 << length) - 1)
                };
                Ok((v, u64::from(*length).div_ceil(8)))
            }
            TypeRef::Pointer(_) => Ok((self.read_uint(va, 8)?, 8)),
            TypeRef::Base(_) | TypeRef::Enum(_) => {
                let size = self
                    .size_of(t)
                    .ok_or_else(|| Error::bad_data(va, format!("unknown size of {t:?}")))?;
                Ok((self.read_uint(va, size)?, size))
            }
            TypeRef::Struct(n) => match self.types.user_type(n) {
                Some(u) if matches!(u.size, 1 | 2 | 4 | 8) => {
                    Ok((self.read_uint(va, u.size)?, u.size))
                }
                _ => Err(Error::bad_data(va, format!("{n} is not a scalar"))),
            },
            other => Err(Error::bad_data(va, format!("{other:?} is not a scalar"))),
        }
    }

    /// A view of the object of type `ty` at `addr`.
    pub fn object(&self, ty: &'a str, addr: VirtAddr) -> Object<'a> {
        Object { r: *self, addr, ty }
    }

    /// A walker over a `list_head` list headed at `head`, yielding the
    /// address of each containing `ty` linked through `link` (a field
    /// path of `ty`). See [`ListIter`].
    pub fn iter_list(
        &self,
        head: VirtAddr,
        ty: &str,
        link: &str,
        max: usize,
    ) -> Result<ListIter<'a>> {
        let link_offset = self.offset(ty, link)?;
        let links = ListLinks {
            next: self.offset("list_head", "next")?,
            prev: self.offset("list_head", "prev")?,
        };
        Ok(ListIter {
            walk: CircularList::new(self.mem, head, link_offset, links, max)
                .kernel_addresses_only(),
        })
    }
}

/// A typed object in memory.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    r: Reader<'a>,
    /// Its address.
    pub addr: VirtAddr,
    /// Its type name.
    pub ty: &'a str,
}

impl<'a> Object<'a> {
    /// Address of a field.
    pub fn field_addr(&self, path: &str) -> Result<VirtAddr> {
        let off = self.r.offset(self.ty, path)?;
        self.addr
            .checked_add(off)
            .ok_or_else(|| Error::bad_data(self.addr, format!("{}.{path} wraps", self.ty)))
    }

    /// An unsigned scalar field.
    pub fn uint(&self, path: &str) -> Result<u64> {
        let (off, t) = self.r.field(self.ty, path)?;
        let va = VirtAddr(self.addr.0.wrapping_add(off));
        Ok(self.r.read_scalar(va, &t)?.0)
    }

    /// A signed scalar field (sign-extended from its size).
    pub fn int(&self, path: &str) -> Result<i64> {
        let (off, t) = self.r.field(self.ty, path)?;
        let va = VirtAddr(self.addr.0.wrapping_add(off));
        let (v, size) = self.r.read_scalar(va, &t)?;
        let bits = (size * 8).clamp(8, 64) as u32;
        Ok(((v << (64 - bits)) as i64) >> (64 - bits))
    }

    /// A pointer field.
    pub fn ptr(&self, path: &str) -> Result<VirtAddr> {
        Ok(VirtAddr(self.uint(path)?))
    }

    /// A `char[N]` field as text up to its NUL (lossy UTF-8).
    pub fn char_array(&self, path: &str) -> Result<String> {
        let (off, t) = self.r.field(self.ty, path)?;
        let len = match &t {
            TypeRef::Array { count, .. } => (*count).min(4096),
            _ => {
                return Err(Error::bad_data(
                    self.addr,
                    format!("{}.{path} is no array", self.ty),
                ))
            }
        };
        let va = VirtAddr(self.addr.0.wrapping_add(off));
        let bytes = self.r.mem.read_vec(va, len, 4096)?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// The object of type `ty` this pointer field points at.
    pub fn deref(&self, path: &str, ty: &'a str) -> Result<Object<'a>> {
        let p = self.ptr(path)?;
        if p.0 == 0 {
            return Err(Error::bad_data(
                self.addr,
                format!("{}.{path} is NULL", self.ty),
            ));
        }
        Ok(self.r.object(ty, p))
    }
}

/// Walks a circular `list_head` list. Bounded by `max` entries,
/// cycle-checked (a node met twice ends the walk), and back-link-checked:
/// each node's `prev` must point at the node before it, and the walk must
/// come back to the head. Where a check fails the walk yields one error
/// naming the node, after every entry read before it, and then stops. The
/// walk is [`hangscope_x64::CircularList`]; this says its breaks in Linux's
/// terms.
#[derive(Debug)]
pub struct ListIter<'a> {
    walk: CircularList<'a>,
}

impl Iterator for ListIter<'_> {
    type Item = Result<VirtAddr>;

    fn next(&mut self) -> Option<Self::Item> {
        let head = self.walk.head();
        Some(self.walk.next()?.map_err(|b| match b {
            ListBreak::Fault { fault, .. } => Error::from(fault),
            ListBreak::NullLink { from } => {
                Error::bad_data(from, "list link next = 0x0 is not a kernel address")
            }
            ListBreak::NotKernel { from, value } => Error::bad_data(
                from,
                format!("list link next = {:#x} is not a kernel address", value.0),
            ),
            // Named at the link that was damaged, not the entry it leads
            // back to (which is sound).
            ListBreak::Loop { at, from } => Error::bad_data(
                from,
                format!(
                    "list link next = {:#x} leads back to an entry met before, without \
                     reaching its head",
                    at.0
                ),
            ),
            ListBreak::TooLong { max } => {
                Error::bad_data(head, format!("list longer than {max} entries"))
            }
            ListBreak::BackLink {
                entry,
                found,
                expected,
            } if entry == head => Error::bad_data(
                head,
                format!(
                    "list head's prev is {:#x}, not the last entry {:#x}",
                    found.0, expected.0
                ),
            ),
            ListBreak::BackLink {
                entry,
                found,
                expected,
            } => Error::bad_data(
                entry,
                format!(
                    "list entry's prev is {:#x}, not the entry before it {:#x}",
                    found.0, expected.0
                ),
            ),
        }))
    }
}

/// Everything a typed walk needs: memory and types ([`Reader`]) and the
/// kernel's symbols. [`crate::LinuxKernel::env`] makes one; tests and fuzz
/// targets build one over synthetic memory.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// Memory and types.
    pub r: Reader<'a>,
    /// The kernel's symbols (run-time addresses).
    pub kallsyms: &'a Kallsyms,
    /// KASLR's offset, to move the type source's link-time symbols.
    pub kernel_offset: u64,
}

impl Env<'_> {
    /// A global's run-time address: kallsyms first, else the type
    /// source's symbol moved by KASLR.
    pub fn symbol(&self, name: &str) -> Result<VirtAddr> {
        symbol(self.kallsyms, Some(self.r.types), self.kernel_offset, name)
    }
}

/// A global's run-time address: kallsyms first, else `types`' link-time
/// symbol moved by KASLR's `offset`.
pub fn symbol(
    kallsyms: &Kallsyms,
    types: Option<&SymbolTable>,
    offset: u64,
    name: &str,
) -> Result<VirtAddr> {
    if let Some(a) = kallsyms.get(name) {
        return Ok(VirtAddr(a));
    }
    types
        .and_then(|t| t.symbol(name))
        .map(|a| VirtAddr(a.wrapping_add(offset)))
        .ok_or_else(|| Error::missing_symbol(name))
}
