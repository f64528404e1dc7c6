//! Walking every mapped page of a range, table by table.

use crate::paging::*;
use crate::{read_entry, AddressSpace, Translation, VirtAddr};
use hangscope_dump::PhysAddr;

/// Page tables visited before [`MappedPages`] gives up: 2^20 tables are
/// 4 GiB of page tables, far above any real kernel's.
pub const DEFAULT_TABLE_BUDGET: u64 = 1 << 20;

#[derive(Debug, Clone, Copy)]
struct Frame {
    level: u8,
    table: u64,
    /// Linear address mapped by entry 0 of the table.
    base: u64,
    next: u64,
    last: u64,
}

/// Iterator over mapped pages; see [`AddressSpace::iter_mapped`].
#[derive(Debug)]
pub struct MappedPages<'m> {
    space: AddressSpace<'m>,
    start: u64,
    /// Exclusive linear end.
    end: u64,
    stack: Vec<Frame>,
    budget: u64,
    tables: u64,
    missing: u64,
    exhausted: bool,
}

/// Linear (48- or 57-bit) position of `va`, non-canonical addresses moved
/// to the start of the upper half (for a start) or the end of the lower
/// half.
fn linear(mode: PagingMode, va: u64, is_end: bool) -> u64 {
    let linear_end = 1u64 << mode.linear_bits();
    if mode.is_canonical(va) {
        if va == u64::MAX && is_end {
            return linear_end;
        }
        va & (linear_end - 1)
    } else {
        // In the hole: a start moves up to the upper half, an end down to
        // the end of the lower half; both are linear 2^(bits-1).
        linear_end >> 1
    }
}

impl<'m> MappedPages<'m> {
    pub(crate) fn new(space: AddressSpace<'m>, start: VirtAddr, end: VirtAddr) -> Self {
        let mode = space.paging;
        let start = linear(mode, start.0, false);
        let end = linear(mode, end.0, true);
        let mut it = MappedPages {
            space,
            start,
            end,
            stack: Vec::with_capacity(5),
            budget: DEFAULT_TABLE_BUDGET,
            tables: 1,
            missing: 0,
            exhausted: false,
        };
        if start < end {
            it.push(mode.top_level(), space.dtb.0 .0 & ADDR_MASK, 0);
        }
        it
    }

    /// Stop after visiting `tables` page tables (default
    /// [`DEFAULT_TABLE_BUDGET`]).
    pub fn with_table_budget(mut self, tables: u64) -> Self {
        self.budget = tables;
        self
    }

    /// Page tables the walk needed that the dump does not hold.
    pub fn missing_tables(&self) -> u64 {
        self.missing
    }

    /// Whether the walk stopped early on its table budget.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    /// Push the table at `level` whose entry 0 maps `base`, limited to the
    /// entries overlapping the range.
    fn push(&mut self, level: u8, table: u64, base: u64) {
        let span = level_span(level);
        let table_end = base + 512 * span;
        let lo = self.start.max(base);
        let hi = self.end.min(table_end);
        if lo >= hi {
            return;
        }
        self.stack.push(Frame {
            level,
            table,
            base,
            next: (lo - base) / span,
            last: (hi - 1 - base) / span,
        });
    }
}

impl Iterator for MappedPages<'_> {
    type Item = (VirtAddr, Translation);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let f = self.stack.last_mut()?;
            if f.next > f.last {
                self.stack.pop();
                continue;
            }
            let frame = *f;
            f.next += 1;
            let i = frame.next;
            let level = frame.level;
            let span = level_span(level);
            let va = frame.base + i * span;
            let entry = match read_entry(self.space.memory, frame.table, i, level) {
                Ok(e) => e,
                Err(_) => {
                    self.missing += 1;
                    // The rest of this table is missing too.
                    self.stack.pop();
                    continue;
                }
            };
            let present = entry & PRESENT != 0;
            // A non-present entry maps only when the OS's rules say its
            // table or page is still in RAM.
            let entry = if present {
                entry
            } else {
                match self.space.rules.not_present(entry, level) {
                    NotPresent::InRam(frame) => frame.0 & ADDR_MASK,
                    NotPresent::Fault(_) => continue,
                }
            };
            let leaf = level == 1 || (present && entry & PAGE_SIZE_BIT != 0 && level <= 3);
            if present && level >= 4 && entry & PAGE_SIZE_BIT != 0 {
                continue;
            }
            if leaf {
                let base = entry & ADDR_MASK & !(span - 1);
                return Some((
                    VirtAddr(self.space.paging.canonical(va)),
                    Translation {
                        paddr: PhysAddr(base),
                        page_size: span,
                    },
                ));
            }
            if self.tables >= self.budget {
                self.exhausted = true;
                self.stack.clear();
                return None;
            }
            self.tables += 1;
            self.push(level - 1, entry & ADDR_MASK, va);
        }
    }
}
