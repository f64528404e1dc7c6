//! Structure fields by name from the symbol table, and the doubly linked
//! lists written once every entry is known.

use super::*;
use crate::layout::Shape;

impl Builder<'_> {
    pub(super) fn size(&self, ty: &str) -> Result<u64, Error> {
        self.l.type_size(ty).ok_or_else(|| missing(ty))
    }

    pub(super) fn off(&self, ty: &str, path: &str) -> Result<u64, Error> {
        self.l
            .field(ty, path)
            .map(|f| f.offset)
            .ok_or_else(|| missing(format!("{ty}.{path}")))
    }

    pub(super) fn has(&self, ty: &str, path: &str) -> bool {
        self.l.field(ty, path).is_some()
    }

    pub(super) fn sym(&self, name: &str) -> Result<u64, Error> {
        self.l
            .symbol(name)
            .map(|r| self.kernel_base + r)
            .ok_or_else(|| missing(name))
    }

    /// Write `value` into field `path` of the `ty` at `base`.
    pub(super) fn put(&mut self, base: u64, ty: &str, path: &str, value: u64) -> Result<(), Error> {
        let f = self
            .l
            .field(ty, path)
            .ok_or_else(|| missing(format!("{ty}.{path}")))?;
        let at = base + f.offset;
        match f.shape {
            Shape::Base(n) | Shape::Enum(n) if (1..=8).contains(&n) => {
                self.sp.write(at, &value.to_le_bytes()[..n as usize])
            }
            Shape::Pointer => self.sp.write(at, &value.to_le_bytes()),
            // An array of integers: the value goes in element 0.
            Shape::Array { ref element, .. } if matches!(**element, Shape::Base(n) if (1..=8).contains(&n)) =>
            {
                let n = self.l.shape_size(element).unwrap_or(8) as usize;
                self.sp.write(at, &value.to_le_bytes()[..n])
            }
            // Small unions and structs (_LARGE_INTEGER, _EX_FAST_REF, ...)
            // are written as one integer.
            Shape::Struct(ref name) if matches!(self.l.type_size(name), Some(n) if (1..=8).contains(&n)) =>
            {
                let n = self.l.type_size(name).unwrap_or(8) as usize;
                self.sp.write(at, &value.to_le_bytes()[..n])
            }
            Shape::Bitfield {
                position,
                length,
                storage,
            } if (1..=8).contains(&storage) => {
                let n = storage as usize;
                let mut cur = [0u8; 8];
                cur[..n].copy_from_slice(&self.sp.read(at, n));
                let old = u64::from_le_bytes(cur);
                let mask = if length >= 64 {
                    u64::MAX
                } else {
                    ((1u64 << length) - 1) << position
                };
                let new = (old & !mask) | ((value << position) & mask);
                self.sp.write(at, &new.to_le_bytes()[..n])
            }
            other => Err(missing(format!(
                "{ty}.{path} as a scalar (it is {other:?})"
            ))),
        }
    }

    /// Like [`Builder::put`] for fields some builds lack.
    pub(super) fn put_opt(
        &mut self,
        base: u64,
        ty: &str,
        path: &str,
        value: u64,
    ) -> Result<(), Error> {
        if self.has(ty, path) {
            self.put(base, ty, path, value)?;
        }
        Ok(())
    }

    /// Offset of element `i` of array field `path`.
    pub(super) fn elem(&self, ty: &str, path: &str, i: u64) -> Result<u64, Error> {
        let f = self
            .l
            .field(ty, path)
            .ok_or_else(|| missing(format!("{ty}.{path}")))?;
        match &f.shape {
            Shape::Array { count, element } if i < *count => {
                let es = self
                    .l
                    .shape_size(element)
                    .ok_or_else(|| missing(format!("{ty}.{path} element size")))?;
                Ok(f.offset + i * es)
            }
            _ => Err(missing(format!("{ty}.{path}[{i}]"))),
        }
    }

    pub(super) fn list_add(&mut self, head: u64, entry: u64) {
        self.lists.entry(head).or_default().push(entry);
    }

    pub(super) fn list_init(&mut self, head: u64) {
        self.lists.entry(head).or_default();
    }

    pub(super) fn write_lists(&mut self) -> Result<(), Error> {
        let flink = self.off("_LIST_ENTRY", "Flink")?;
        let blink = self.off("_LIST_ENTRY", "Blink")?;
        let lists = std::mem::take(&mut self.lists);
        for (head, entries) in &lists {
            let mut ring = vec![*head];
            ring.extend(entries.iter().copied());
            let n = ring.len();
            for i in 0..n {
                let next = ring[(i + 1) % n];
                let prev = ring[(i + n - 1) % n];
                self.sp.write(ring[i] + flink, &next.to_le_bytes())?;
                self.sp.write(ring[i] + blink, &prev.to_le_bytes())?;
            }
        }
        self.lists = lists;
        Ok(())
    }
}
