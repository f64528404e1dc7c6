//! The kernel's ORC unwind tables (x86-64, `CONFIG_UNWINDER_ORC`): for
//! each instruction range, where the caller's stack pointer, frame pointer
//! and return address are. The core kernel's tables lie between
//! `__start_orc_unwind_ip`/`__stop_orc_unwind_ip` (an array of `s32`, each
//! relative to its own address) and at `__start_orc_unwind` (the entries,
//! `struct orc_entry`); each module keeps its own in `module.arch`.
//!
//! The bitfields of `struct orc_entry` moved between kernel versions, so
//! their places come from the type information, never from code. What the
//! `type` values mean changed in 6.3, which is told by the fields present:
//! kernels with an `end` bit number CALL, REGS, REGS_PARTIAL from 0 and mark
//! an undefined entry by its SP register; later ones number UNDEFINED,
//! END_OF_STACK, CALL, REGS, REGS_PARTIAL from 0.

use crate::error::{Error, Result};
use crate::view::Reader;
use hangscope_x64::{VirtAddr, VirtualMemory};

/// Most entries read from one table (a distribution kernel has about
/// half a million).
pub const MAX_ORC_ENTRIES: u64 = 1 << 22;
/// Largest `struct orc_entry` accepted (it is 6 bytes).
const MAX_ENTRY_SIZE: u64 = 16;

/// `ORC_REG_*`: the registers an entry names (unchanged since 4.14).
pub mod reg {
    /// Not known.
    pub const UNDEFINED: u8 = 0;
    /// The previous frame's stack pointer (the CFA).
    pub const PREV_SP: u8 = 1;
    /// rdx.
    pub const DX: u8 = 2;
    /// rdi.
    pub const DI: u8 = 3;
    /// rbp.
    pub const BP: u8 = 4;
    /// rsp.
    pub const SP: u8 = 5;
    /// r10.
    pub const R10: u8 = 6;
    /// r13.
    pub const R13: u8 = 7;
    /// The value at rbp + offset.
    pub const BP_INDIRECT: u8 = 8;
    /// The value at rsp, plus the offset.
    pub const SP_INDIRECT: u8 = 9;
}

/// What an entry says about the frame it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrcType {
    /// Nothing is known here: the unwind stops with an error.
    Undefined,
    /// The stack ends here (a kernel thread's or an entry's first frame).
    EndOfStack,
    /// An ordinary call frame: the return address is just below the CFA.
    Call,
    /// A full `struct pt_regs` is at the CFA.
    Regs,
    /// Only the hardware's iret frame of a `pt_regs` is at the CFA.
    RegsPartial,
}

/// One decoded `struct orc_entry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrcEntry {
    /// Added to the SP register's value to give the CFA.
    pub sp_offset: i16,
    /// Where rbp was saved, from the BP register's value.
    pub bp_offset: i16,
    /// The register the CFA is computed from ([`reg`]).
    pub sp_reg: u8,
    /// The register rbp's save slot is relative to ([`reg`]).
    pub bp_reg: u8,
    /// The frame's kind.
    pub kind: OrcType,
    /// The frame was interrupted (its ip is no return address), 6.3+.
    pub signal: bool,
}

impl OrcEntry {
    /// The entry the kernel uses where it has none: a frame-pointer frame
    /// (`orc_fp_entry`): CFA = rbp + 16, rbp saved at CFA - 16.
    pub const FRAME_POINTER: OrcEntry = OrcEntry {
        sp_offset: 16,
        bp_offset: -16,
        sp_reg: reg::BP,
        bp_reg: reg::PREV_SP,
        kind: OrcType::Call,
        signal: false,
    };
}

/// A bitfield's place in an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bits {
    first: u32,
    len: u32,
}

impl Bits {
    fn get(self, entry: &[u8]) -> u64 {
        let mut v = 0u128;
        for (i, b) in entry.iter().take(16).enumerate() {
            v |= u128::from(*b) << (8 * i);
        }
        let shifted = v.checked_shr(self.first).unwrap_or(0);
        let mask = if self.len >= 64 {
            u64::MAX as u128
        } else {
            (1u128 << self.len) - 1
        };
        (shifted & mask) as u64
    }
}

/// Where this kernel keeps each field of `struct orc_entry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrcLayout {
    size: u64,
    sp_offset: Bits,
    bp_offset: Bits,
    sp_reg: Bits,
    bp_reg: Bits,
    kind: Bits,
    /// Kernels before 6.3: an `end` bit, and the old type numbers.
    end: Option<Bits>,
    signal: Option<Bits>,
}

impl OrcLayout {
    /// The layout from the type information.
    pub fn from_types(r: &Reader<'_>) -> Result<OrcLayout> {
        let size = r.size_of_struct("orc_entry")?;
        if !(6..=MAX_ENTRY_SIZE).contains(&size) {
            return Err(Error::bad_data(
                VirtAddr(0),
                format!("struct orc_entry is {size} bytes"),
            ));
        }
        let bits = |name: &str| -> Result<Bits> {
            let (off, t) = r.field("orc_entry", name)?;
            let (first, len) = match &t {
                hangscope_symbols::TypeRef::Bitfield {
                    position, length, ..
                } => (off * 8 + u64::from(*position), u64::from(*length)),
                other => (off * 8, r.size_of(other).unwrap_or(0) * 8),
            };
            if len == 0 || len > 16 || first + len > size * 8 {
                return Err(Error::bad_data(
                    VirtAddr(0),
                    format!("orc_entry.{name} at bit {first}, {len} bits"),
                ));
            }
            Ok(Bits {
                first: first as u32,
                len: len as u32,
            })
        };
        Ok(OrcLayout {
            size,
            sp_offset: bits("sp_offset")?,
            bp_offset: bits("bp_offset")?,
            sp_reg: bits("sp_reg")?,
            bp_reg: bits("bp_reg")?,
            kind: bits("type")?,
            end: r
                .has_field("orc_entry", "end")
                .then(|| bits("end"))
                .transpose()?,
            signal: r
                .has_field("orc_entry", "signal")
                .then(|| bits("signal"))
                .transpose()?,
        })
    }

    /// Bytes per entry.
    pub fn entry_size(&self) -> u64 {
        self.size
    }

    /// Decode one entry's bytes.
    pub fn decode(&self, e: &[u8]) -> OrcEntry {
        let sign16 = |b: Bits| {
            let v = b.get(e);
            let shift = 64 - b.len.clamp(1, 64);
            (((v << shift) as i64) >> shift) as i16
        };
        let sp_reg = self.sp_reg.get(e) as u8;
        let raw = self.kind.get(e);
        let kind = match self.end {
            // Before 6.3: CALL 0, REGS 1, REGS_PARTIAL 2; no SP register
            // means undefined, or the end of the stack with `end` set.
            Some(end) => {
                if sp_reg == reg::UNDEFINED {
                    if end.get(e) != 0 {
                        OrcType::EndOfStack
                    } else {
                        OrcType::Undefined
                    }
                } else {
                    match raw {
                        0 => OrcType::Call,
                        1 => OrcType::Regs,
                        2 => OrcType::RegsPartial,
                        _ => OrcType::Undefined,
                    }
                }
            }
            None => match raw {
                1 => OrcType::EndOfStack,
                2 => OrcType::Call,
                3 => OrcType::Regs,
                4 => OrcType::RegsPartial,
                _ => OrcType::Undefined,
            },
        };
        OrcEntry {
            sp_offset: sign16(self.sp_offset),
            bp_offset: sign16(self.bp_offset),
            sp_reg,
            bp_reg: self.bp_reg.get(e) as u8,
            kind,
            signal: self.signal.is_some_and(|s| s.get(e) != 0),
        }
    }
}

/// One ORC table: sorted instruction addresses and their entries.
#[derive(Debug, Clone, Default)]
pub struct OrcTable {
    ips: Vec<u64>,
    entries: Vec<u8>,
    entry_size: usize,
}

impl OrcTable {
    /// Read `count` entries: the `s32` ip table at `ip_table` (each value
    /// relative to its own address) and the entries at `entries`.
    pub fn read(
        r: &Reader<'_>,
        layout: &OrcLayout,
        ip_table: VirtAddr,
        entries: VirtAddr,
        count: u64,
    ) -> Result<OrcTable> {
        if count > MAX_ORC_ENTRIES {
            return Err(Error::bad_data(ip_table, format!("{count} ORC entries")));
        }
        let raw = r.mem.read_vec(ip_table, count * 4, MAX_ORC_ENTRIES * 4)?;
        let ips = raw
            .chunks_exact(4)
            .enumerate()
            .map(|(i, c)| {
                let rel = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                ip_table
                    .0
                    .wrapping_add(i as u64 * 4)
                    .wrapping_add(rel as i64 as u64)
            })
            .collect::<Vec<u64>>();
        // The kernel sorts a module's table when it loads it; one out of
        // order would make a lookup answer with another function's entry.
        if let Some(i) = ips.windows(2).position(|w| w[1] < w[0]) {
            let (j, k) = (i as u64, i as u64 + 1);
            return Err(disorder_error(ip_table.0, ((j, ips[i]), (k, ips[i + 1]))));
        }
        let entries = r.mem.read_vec(
            entries,
            count * layout.size,
            MAX_ORC_ENTRIES * MAX_ENTRY_SIZE,
        )?;
        Ok(OrcTable {
            ips,
            entries,
            entry_size: layout.size as usize,
        })
    }

    /// A table from parts (synthetic kernels, tests): `ips` sorted, and
    /// `entries` of `layout.entry_size()` bytes each, as many as `ips`.
    pub fn from_parts(ips: Vec<u64>, entries: Vec<u8>, layout: &OrcLayout) -> OrcTable {
        OrcTable {
            ips,
            entries,
            entry_size: layout.size as usize,
        }
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }

    /// The lowest and highest address covered.
    pub fn range(&self) -> Option<(u64, u64)> {
        Some((*self.ips.first()?, *self.ips.last()?))
    }

    /// The entry covering `ip`: the last one starting at or below it.
    pub fn find(&self, layout: &OrcLayout, ip: u64) -> Option<OrcEntry> {
        let (lo, hi) = self.range()?;
        if ip < lo || ip > hi {
            return None;
        }
        let i = self.ips.partition_point(|&a| a <= ip).checked_sub(1)?;
        let start = i.checked_mul(self.entry_size)?;
        let bytes = self
            .entries
            .get(start..start.checked_add(self.entry_size)?)?;
        Some(layout.decode(bytes))
    }
}

/// The core kernel's ORC table read where it lies, a page at a time as
/// lookups need it: the table is 3 to 5 MiB, a walk of every task's stack
/// looks up a few hundred addresses, and in a compressed dump every page
/// read is a page inflated.
#[derive(Debug)]
pub struct OrcMemTable {
    ip_table: u64,
    entries: u64,
    count: u64,
    entry_size: u64,
    range: (u64, u64),
    /// Pages read so far, by address (`None`: not readable).
    pages: std::sync::Mutex<std::collections::HashMap<u64, Option<Box<[u8]>>>>,
    /// Pages of the ip table checked for order so far: the first pair out
    /// of order on each (`None`: in order).
    checked: std::sync::Mutex<std::collections::HashMap<u64, Option<Disorder>>>,
}

/// Two entries of an ip table out of order: `(index, ip)` of each, the
/// lower index first.
type Disorder = ((u64, u64), (u64, u64));

fn disorder_error(ip_table: u64, ((i, a), (j, b)): Disorder) -> Error {
    Error::bad_data(
        VirtAddr(ip_table.wrapping_add(j.wrapping_mul(4))),
        format!("ORC ip table not sorted: entry {j} starts at {b:#x}, below entry {i}'s {a:#x}"),
    )
}

impl OrcMemTable {
    /// The table of `count` entries: the `s32` ip table at `ip_table` and
    /// the entries at `entries`. Only the first and last ips are read now
    /// (they give the range covered).
    pub fn new(
        mem: &dyn VirtualMemory,
        layout: &OrcLayout,
        ip_table: VirtAddr,
        entries: VirtAddr,
        count: u64,
    ) -> Result<OrcMemTable> {
        if count == 0 || count > MAX_ORC_ENTRIES {
            return Err(Error::bad_data(ip_table, format!("{count} ORC entries")));
        }
        let ip_bytes = count * 4;
        let entry_bytes = count * layout.size;
        if ip_table.0.checked_add(ip_bytes).is_none()
            || entries.0.checked_add(entry_bytes).is_none()
        {
            return Err(Error::bad_data(
                ip_table,
                "ORC tables wrap the address space",
            ));
        }
        let mut t = OrcMemTable {
            ip_table: ip_table.0,
            entries: entries.0,
            count,
            entry_size: layout.size,
            range: (0, 0),
            pages: Default::default(),
            checked: Default::default(),
        };
        let first = t
            .ip(mem, 0)
            .ok_or_else(|| Error::bad_data(ip_table, "unreadable ORC ip table"))?;
        let last = t
            .ip(mem, count - 1)
            .ok_or_else(|| Error::bad_data(ip_table, "unreadable end of the ORC ip table"))?;
        if last < first {
            return Err(Error::bad_data(
                ip_table,
                format!("ORC ip table not sorted: first {first:#x}, last {last:#x}"),
            ));
        }
        t.range = (first, last);
        Ok(t)
    }

    /// `len` bytes at `addr`, from the pages read so far or read now.
    fn bytes(&self, mem: &dyn VirtualMemory, addr: u64, out: &mut [u8]) -> Option<()> {
        let mut done = 0usize;
        let Ok(mut pages) = self.pages.lock() else {
            return None;
        };
        while done < out.len() {
            let a = addr.checked_add(done as u64)?;
            let page = a & !0xfff;
            let data = pages.entry(page).or_insert_with(|| {
                let mut b = vec![0u8; 4096];
                mem.read(VirtAddr(page), &mut b)
                    .ok()
                    .map(|()| b.into_boxed_slice())
            });
            let data = data.as_ref()?;
            let within = (a - page) as usize;
            let n = (4096 - within).min(out.len() - done);
            out[done..done + n].copy_from_slice(&data[within..within + n]);
            done += n;
        }
        Some(())
    }

    /// The address entry `i` starts at.
    fn ip(&self, mem: &dyn VirtualMemory, i: u64) -> Option<u64> {
        let at = self.ip_table.checked_add(i.checked_mul(4)?)?;
        let mut b = [0u8; 4];
        self.bytes(mem, at, &mut b)?;
        Some(at.wrapping_add(i32::from_le_bytes(b) as i64 as u64))
    }

    /// How many entries.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether it has none (never: [`OrcMemTable::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The lowest and highest address covered.
    pub fn range(&self) -> (u64, u64) {
        self.range
    }

    /// Whether the ips on the page holding entry `i` are in order, checked
    /// once per page: the table is too big to check whole for each dump
    /// (that would read every page), so each lookup checks the pages it
    /// reads.
    fn check_page(&self, mem: &dyn VirtualMemory, i: u64) -> Result<()> {
        let page = self.ip_table.wrapping_add(i.wrapping_mul(4)) & !0xfff;
        let known = self.checked.lock().ok().and_then(|c| c.get(&page).copied());
        let found = match known {
            Some(d) => d,
            None => {
                let first = page.saturating_sub(self.ip_table) / 4;
                let end = page
                    .saturating_add(0x1000)
                    .saturating_sub(self.ip_table)
                    .div_ceil(4);
                let mut d = None;
                let mut prev: Option<(u64, u64)> = None;
                for j in first..end.min(self.count) {
                    // An unreadable ip ends the check: the search that
                    // needs it finds nothing anyway.
                    let Some(at) = self.ip(mem, j) else { break };
                    if let Some(p) = prev.filter(|p| at < p.1) {
                        d = Some((p, (j, at)));
                        break;
                    }
                    prev = Some((j, at));
                }
                if let Ok(mut c) = self.checked.lock() {
                    c.insert(page, d);
                }
                d
            }
        };
        match found {
            Some(d) => Err(disorder_error(self.ip_table, d)),
            None => Ok(()),
        }
    }

    /// The entry covering `ip`: the last one starting at or below it. A
    /// page that cannot be read gives none; ips out of order on the pages
    /// the search reads, or between the entries it probes, are an error.
    pub fn find(
        &self,
        mem: &dyn VirtualMemory,
        layout: &OrcLayout,
        ip: u64,
    ) -> Result<Option<OrcEntry>> {
        let (lo, hi) = self.range;
        if ip < lo || ip > hi {
            return Ok(None);
        }
        // The last index whose ip is <= `ip`: entry 0's is (ip >= lo).
        // Entry count-1's ip is `hi`, and bounds every probe below it.
        let (mut low, mut high) = (0u64, self.count);
        let (mut low_ip, mut high_ip) = ((0u64, lo), (self.count - 1, hi));
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            self.check_page(mem, mid)?;
            let Some(at) = self.ip(mem, mid) else {
                return Ok(None);
            };
            if at < low_ip.1 {
                return Err(disorder_error(self.ip_table, (low_ip, (mid, at))));
            }
            if at > high_ip.1 {
                return Err(disorder_error(self.ip_table, ((mid, at), high_ip)));
            }
            if at <= ip {
                low = mid;
                low_ip = (mid, at);
            } else {
                high = mid;
                high_ip = (mid, at);
            }
        }
        self.check_page(mem, low)?;
        let entry = (|| {
            let size = usize::try_from(self.entry_size).ok()?;
            let mut e = vec![0u8; size];
            self.bytes(
                mem,
                self.entries
                    .checked_add(low.checked_mul(self.entry_size)?)?,
                &mut e,
            )?;
            Some(layout.decode(&e))
        })();
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 6.1's `struct orc_entry`: s16 sp_offset, s16 bp_offset, then
    /// sp_reg:4 bp_reg:4 type:2 end:1.
    fn layout_6_1() -> OrcLayout {
        OrcLayout {
            size: 6,
            sp_offset: Bits { first: 0, len: 16 },
            bp_offset: Bits { first: 16, len: 16 },
            sp_reg: Bits { first: 32, len: 4 },
            bp_reg: Bits { first: 36, len: 4 },
            kind: Bits { first: 40, len: 2 },
            end: Some(Bits { first: 42, len: 1 }),
            signal: None,
        }
    }

    /// 6.3+: sp_reg:4 bp_reg:4 type:3 signal:1.
    fn layout_6_12() -> OrcLayout {
        OrcLayout {
            end: None,
            kind: Bits { first: 40, len: 3 },
            signal: Some(Bits { first: 43, len: 1 }),
            ..layout_6_1()
        }
    }

    fn entry(sp: i16, bp: i16, sp_reg: u8, bp_reg: u8, high: u8) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&sp.to_le_bytes());
        e.extend_from_slice(&bp.to_le_bytes());
        e.push(sp_reg | bp_reg << 4);
        e.push(high);
        e
    }

    #[test]
    fn every_type_decodes_in_both_layouts() {
        let old = layout_6_1();
        let call = old.decode(&entry(8, -16, reg::SP, reg::PREV_SP, 0));
        assert_eq!(call.kind, OrcType::Call);
        assert_eq!((call.sp_offset, call.bp_offset), (8, -16));
        assert_eq!((call.sp_reg, call.bp_reg), (reg::SP, reg::PREV_SP));
        assert_eq!(old.decode(&entry(0, 0, reg::SP, 0, 1)).kind, OrcType::Regs);
        assert_eq!(
            old.decode(&entry(0, 0, reg::SP, 0, 2)).kind,
            OrcType::RegsPartial
        );
        assert_eq!(old.decode(&entry(0, 0, 0, 0, 0)).kind, OrcType::Undefined);
        assert_eq!(
            old.decode(&entry(0, 0, 0, 0, 1 << 2)).kind,
            OrcType::EndOfStack
        );
        let new = layout_6_12();
        let kinds = [
            OrcType::Undefined,
            OrcType::EndOfStack,
            OrcType::Call,
            OrcType::Regs,
            OrcType::RegsPartial,
            OrcType::Undefined,
        ];
        for (v, k) in kinds.iter().enumerate() {
            assert_eq!(new.decode(&entry(16, 0, reg::SP, 0, v as u8)).kind, *k);
        }
        let s = new.decode(&entry(16, 0, reg::SP, 0, 2 | 1 << 3));
        assert!(s.signal && s.kind == OrcType::Call);
    }

    #[test]
    fn lookup_takes_the_last_entry_at_or_below() {
        let l = layout_6_12();
        let mut bytes = entry(8, 0, reg::SP, 0, 2);
        bytes.extend(entry(16, 0, reg::SP, 0, 2));
        bytes.extend(entry(0, 0, 0, 0, 0));
        let t = OrcTable::from_parts(vec![0x1000, 0x1010, 0x1100], bytes, &l);
        assert_eq!(t.find(&l, 0xfff), None);
        assert_eq!(t.find(&l, 0x1000).unwrap().sp_offset, 8);
        assert_eq!(t.find(&l, 0x100f).unwrap().sp_offset, 8);
        assert_eq!(t.find(&l, 0x1010).unwrap().sp_offset, 16);
        assert_eq!(t.find(&l, 0x1100).unwrap().kind, OrcType::Undefined);
        assert_eq!(t.find(&l, 0x1101), None);
        // Entries shorter than the ips: no panic, no entry.
        let short = OrcTable::from_parts(vec![0x1000, 0x2000], entry(8, 0, 5, 0, 2), &l);
        assert_eq!(short.find(&l, 0x2000), None);
    }

    /// Four entries' bytes.
    fn bytes_of_four() -> Vec<u8> {
        (0..4)
            .flat_map(|i| entry(i * 8, 0, reg::SP, 0, 2))
            .collect()
    }

    #[test]
    fn the_table_in_memory_answers_as_the_one_read_whole() {
        use hangscope_x64::SparseMemory;
        let l = layout_6_12();
        // 3000 entries over two and more pages of ips, 16 bytes apart.
        let (ip_at, entries_at) = (0xffff_ffff_8200_0000u64, 0xffff_ffff_8300_0000u64);
        let n = 3000u64;
        let mut mem = SparseMemory::new();
        let mut ips = Vec::new();
        let mut bytes = Vec::new();
        for i in 0..n {
            let ip = 0xffff_ffff_8100_0000 + i * 16;
            let at = ip_at + i * 4;
            mem.write(at, &((ip.wrapping_sub(at)) as i32).to_le_bytes());
            ips.push(ip);
            bytes.extend(entry((i % 1000) as i16, 0, reg::SP, 0, 2));
        }
        mem.write(entries_at, &bytes);
        let whole = OrcTable::from_parts(ips.clone(), bytes, &l);
        let lazy = OrcMemTable::new(&mem, &l, VirtAddr(ip_at), VirtAddr(entries_at), n).unwrap();
        assert_eq!(lazy.range(), whole.range().unwrap());
        for probe in [
            0u64,
            1,
            15,
            16,
            17,
            1023 * 16 + 3,
            1024 * 16,
            2999 * 16,
            2999 * 16 + 1,
        ] {
            let ip = 0xffff_ffff_8100_0000 + probe;
            assert_eq!(
                lazy.find(&mem, &l, ip).unwrap(),
                whole.find(&l, ip),
                "{ip:#x}"
            );
        }
        assert_eq!(lazy.find(&mem, &l, 0xffff_ffff_80ff_ffff).unwrap(), None);
        // Two ips swapped on the third page: a lookup that reads that
        // page is refused, naming the later entry; one on the other pages
        // is answered.
        let mut swapped = mem.clone();
        for (i, ip_of) in [(2500u64, 2501u64), (2501, 2500)] {
            let at = ip_at + i * 4;
            let ip = 0xffff_ffff_8100_0000 + ip_of * 16;
            swapped.write(at, &((ip.wrapping_sub(at)) as i32).to_le_bytes());
        }
        let lazy =
            OrcMemTable::new(&swapped, &l, VirtAddr(ip_at), VirtAddr(entries_at), n).unwrap();
        let e = lazy
            .find(&swapped, &l, 0xffff_ffff_8100_0000 + 2400 * 16)
            .unwrap_err();
        assert_eq!(e.at, Some(VirtAddr(ip_at + 2501 * 4)), "{e}");
        assert!(e.to_string().contains("entry 2501 starts"), "{e}");
        let far = 0xffff_ffff_8100_0000 + 100 * 16;
        assert_eq!(lazy.find(&swapped, &l, far).unwrap(), whole.find(&l, far));
        // A page of ips missing: a lookup whose search needs it finds
        // nothing, without a panic; a table whose last ip is on it is
        // refused.
        mem.unmap_page(ip_at + 0x1000);
        let lazy = OrcMemTable::new(&mem, &l, VirtAddr(ip_at), VirtAddr(entries_at), n).unwrap();
        for i in [10u64, 1500, 2500] {
            assert_eq!(
                lazy.find(&mem, &l, 0xffff_ffff_8100_0000 + i * 16).unwrap(),
                None
            );
        }
        let short = OrcMemTable::new(&mem, &l, VirtAddr(ip_at), VirtAddr(entries_at), 1500);
        assert!(short.is_err());
        let first_page = OrcMemTable::new(&mem, &l, VirtAddr(ip_at), VirtAddr(entries_at), 1000);
        let ip = 0xffff_ffff_8100_0000 + 999 * 16;
        assert_eq!(
            first_page
                .unwrap()
                .find(&mem, &l, ip)
                .unwrap()
                .map(|e| e.sp_offset),
            Some(999)
        );
        // A table on the address space's last page is searched without
        // overflow.
        let top = u64::MAX - 0xfff;
        let mut high = SparseMemory::new();
        for i in 0..4u64 {
            let at = top + i * 4;
            let ip = 0xffff_ffff_8100_0000 + i * 16;
            high.write(at, &((ip.wrapping_sub(at)) as i32).to_le_bytes());
        }
        high.write(entries_at, &bytes_of_four());
        let t = OrcMemTable::new(&high, &l, VirtAddr(top), VirtAddr(entries_at), 4).unwrap();
        assert!(t.find(&high, &l, 0xffff_ffff_8100_0015).unwrap().is_some());
        // Counts the tables cannot hold, and unsorted ends, are refused.
        assert!(OrcMemTable::new(&mem, &l, VirtAddr(ip_at), VirtAddr(entries_at), 0).is_err());
        assert!(
            OrcMemTable::new(&mem, &l, VirtAddr(u64::MAX - 8), VirtAddr(entries_at), 4).is_err()
        );
        mem.write(ip_at, &0i32.to_le_bytes());
        assert!(OrcMemTable::new(&mem, &l, VirtAddr(ip_at), VirtAddr(entries_at), n).is_err());
    }
}
