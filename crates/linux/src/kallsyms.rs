//! kallsyms: the kernel's own symbol table, kept in its image so that
//! `/proc/kallsyms` and oops reports can name addresses. Read straight from
//! memory, it names every function and variable of the kernel without any
//! file from the distribution.
//!
//! The tables (scripts/kallsyms.c writes them):
//! - `kallsyms_num_syms`: the symbol count (a u32);
//! - `kallsyms_names`: per symbol a length (one byte, or two when the high
//!   bit is set: seven low bits then eight more, since 6.1) and that many
//!   token numbers; the expansion's first character is the type letter
//!   (`T` text, `D` data, lower case when local);
//! - `kallsyms_token_table`: 256 NUL-terminated tokens, and
//!   `kallsyms_token_index`: 256 u16 offsets of each token in the table;
//! - `kallsyms_offsets` (u32 each) and `kallsyms_relative_base` (u64):
//!   addresses relative to the base; with `KALLSYMS_ABSOLUTE_PERCPU`
//!   (x86-64 SMP kernels before 6.11) a non-negative offset is an absolute
//!   per-CPU offset and a negative one means `base - 1 - offset`.
//!
//! Everything is read from the dump, so every length is capped and every
//! read can fail.

use crate::error::{Error, Result};
use hangscope_x64::{VirtAddr, VirtualMemory};
use std::collections::HashMap;

/// Most symbols believed (a distribution kernel has about 150,000).
pub const MAX_SYMS: u32 = 2_000_000;
/// Largest name table read.
const MAX_NAMES_BYTES: u64 = 64 << 20;
/// Longest expanded name kept (the kernel's KSYM_NAME_LEN is 512).
const MAX_NAME: usize = 512;

/// Where the kallsyms tables are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KallsymsTables {
    /// `kallsyms_num_syms`.
    pub num_syms: VirtAddr,
    /// `kallsyms_names`.
    pub names: VirtAddr,
    /// `kallsyms_token_table`.
    pub token_table: VirtAddr,
    /// `kallsyms_token_index`.
    pub token_index: VirtAddr,
    /// `kallsyms_offsets`.
    pub offsets: VirtAddr,
    /// `kallsyms_relative_base`.
    pub relative_base: VirtAddr,
}

/// How `kallsyms_offsets` encode addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffsetForm {
    /// `relative_base + (u32)offset`.
    BaseRelative,
    /// Non-negative: an absolute (per-CPU) value; negative:
    /// `relative_base - 1 - offset`.
    AbsolutePercpu,
}

/// One kernel symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSymbol {
    /// Name.
    pub name: String,
    /// Run-time virtual address (KASLR applied), or a per-CPU offset for
    /// per-CPU variables.
    pub addr: u64,
    /// The `nm` type letter (`T`, `t`, `D`, `d`, `B`, `R`, `A`, ...).
    pub kind: char,
}

/// The decoded kernel symbol table.
#[derive(Debug, Clone, Default)]
pub struct Kallsyms {
    /// Symbols sorted by address.
    syms: Vec<KernelSymbol>,
    /// Name -> index in `syms` (a global definition wins over a local one).
    by_name: HashMap<String, u32>,
    form: Option<OffsetForm>,
}

impl Kallsyms {
    /// Decode the tables at `t`.
    pub fn read(mem: &dyn VirtualMemory, t: &KallsymsTables) -> Result<Kallsyms> {
        let n = mem.read_u32(t.num_syms)?;
        if n == 0 || n > MAX_SYMS {
            return Err(Error::bad_data(
                t.num_syms,
                format!("kallsyms_num_syms is {n}"),
            ));
        }
        let tokens = read_tokens(mem, t.token_table, t.token_index)?;
        let names = read_names(mem, t, n, &tokens)?;
        let offsets = mem.read_vec(t.offsets, u64::from(n) * 4, u64::from(MAX_SYMS) * 4)?;
        let base = mem.read_u64(t.relative_base)?;
        let offsets: Vec<i32> = offsets
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let negative = offsets.iter().filter(|&&o| o < 0).count();
        let form = if negative * 2 > offsets.len() {
            OffsetForm::AbsolutePercpu
        } else {
            OffsetForm::BaseRelative
        };
        let mut syms = Vec::with_capacity(names.len());
        for ((name, kind), off) in names.into_iter().zip(offsets) {
            let addr = match form {
                OffsetForm::BaseRelative => base.wrapping_add(u64::from(off as u32)),
                OffsetForm::AbsolutePercpu if off >= 0 => off as u64,
                OffsetForm::AbsolutePercpu => {
                    base.wrapping_sub(1).wrapping_sub(i64::from(off) as u64)
                }
            };
            syms.push(KernelSymbol { name, addr, kind });
        }
        Ok(Kallsyms::from_symbols(syms, Some(form)))
    }

    /// A table from symbols already decoded (module symbols, tests).
    pub fn from_symbols(mut syms: Vec<KernelSymbol>, form: Option<OffsetForm>) -> Kallsyms {
        syms.sort_by_key(|s| s.addr);
        let mut by_name: HashMap<String, u32> = HashMap::with_capacity(syms.len());
        for (i, s) in syms.iter().enumerate() {
            let global = s.kind.is_ascii_uppercase();
            match by_name.get(&s.name) {
                Some(&j) if !global || syms[j as usize].kind.is_ascii_uppercase() => {}
                _ => {
                    by_name.insert(s.name.clone(), i as u32);
                }
            }
        }
        Kallsyms {
            syms,
            by_name,
            form,
        }
    }

    /// The address of a symbol by name.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).map(|&i| self.syms[i as usize].addr)
    }

    /// A symbol by name.
    pub fn symbol(&self, name: &str) -> Option<&KernelSymbol> {
        self.by_name.get(name).map(|&i| &self.syms[i as usize])
    }

    /// The nearest symbol at or below `addr` (per-CPU offsets and absolute
    /// symbols excluded) and the distance from it.
    pub fn symbol_at(&self, addr: u64) -> Option<(&KernelSymbol, u64)> {
        let i = self.syms.partition_point(|s| s.addr <= addr);
        let s = self.syms.get(i.checked_sub(1)?)?;
        (s.addr >> 47 == 0x1_ffff).then(|| (s, addr - s.addr))
    }

    /// Every symbol, by address.
    pub fn iter(&self) -> impl Iterator<Item = &KernelSymbol> + '_ {
        self.syms.iter()
    }

    /// How many symbols.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// How the offsets were encoded, when read from the kernel's tables.
    pub fn form(&self) -> Option<OffsetForm> {
        self.form
    }
}

/// The 256 tokens.
fn read_tokens(mem: &dyn VirtualMemory, table: VirtAddr, index: VirtAddr) -> Result<Vec<Vec<u8>>> {
    let idx = mem.read_vec(index, 512, 512)?;
    let idx: Vec<u16> = idx
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let last = u64::from(*idx.iter().max().unwrap_or(&0));
    // Tokens are short; the last one ends well within 256 bytes.
    let bytes = mem.read_prefix(table, (last + 256) as usize);
    let mut tokens = Vec::with_capacity(256);
    for (i, &o) in idx.iter().enumerate() {
        let o = o as usize;
        let tail = bytes.get(o..).ok_or_else(|| {
            Error::bad_data(
                index,
                format!("token {i} at {o:#x} is past the token table"),
            )
        })?;
        let end = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| Error::bad_data(table, format!("token {i} has no terminator")))?;
        tokens.push(tail[..end].to_vec());
    }
    Ok(tokens)
}

/// Decode `n` names: (name, type letter).
fn read_names(
    mem: &dyn VirtualMemory,
    t: &KallsymsTables,
    n: u32,
    tokens: &[Vec<u8>],
) -> Result<Vec<(String, char)>> {
    // The names end before the markers and the token table in every
    // layout; read up to the token table (capped) or as far as readable.
    let span = t
        .token_table
        .0
        .checked_sub(t.names.0)
        .filter(|&s| s > 0 && s <= MAX_NAMES_BYTES)
        .unwrap_or(MAX_NAMES_BYTES);
    let blob = mem.read_prefix(t.names, span as usize);
    decode_names(&blob, n, tokens)
        .map_err(|(at, why)| Error::bad_data(VirtAddr(t.names.0 + at as u64), why))
}

/// Decode `n` token-compressed names from `blob`; the error gives the
/// offset in the blob and why.
pub fn decode_names(
    blob: &[u8],
    n: u32,
    tokens: &[Vec<u8>],
) -> std::result::Result<Vec<(String, char)>, (usize, String)> {
    let mut out = Vec::with_capacity(n.min(MAX_SYMS) as usize);
    let mut at = 0usize;
    let mut buf = Vec::with_capacity(MAX_NAME);
    for i in 0..n {
        let start = at;
        let short = || (start, format!("kallsyms_names ends in symbol {i} of {n}"));
        let b0 = *blob.get(at).ok_or_else(short)?;
        at += 1;
        let len = if b0 & 0x80 != 0 {
            let b1 = *blob.get(at).ok_or_else(short)?;
            at += 1;
            usize::from(b0 & 0x7f) | (usize::from(b1) << 7)
        } else {
            usize::from(b0)
        };
        let codes = blob.get(at..at + len).ok_or_else(short)?;
        at += len;
        buf.clear();
        for &c in codes {
            let tok = tokens.get(usize::from(c)).map_or(&[][..], |t| t.as_slice());
            if buf.len() + tok.len() > MAX_NAME + 1 {
                return Err((
                    start,
                    format!("symbol {i}'s name is longer than {MAX_NAME}"),
                ));
            }
            buf.extend_from_slice(tok);
        }
        let Some((&kind, name)) = buf.split_first() else {
            return Err((start, format!("symbol {i} has an empty name")));
        };
        out.push((String::from_utf8_lossy(name).into_owned(), kind as char));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangscope_x64::SparseMemory;

    /// A little table: tokens 0..=255 are single bytes, except 0xf0 = "ab"
    /// and 0xf1 = "_c".
    fn tokens() -> Vec<Vec<u8>> {
        (0..=255u8)
            .map(|b| match b {
                0xf0 => b"ab".to_vec(),
                0xf1 => b"_c".to_vec(),
                b => vec![b],
            })
            .collect()
    }

    fn entry(codes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        if codes.len() > 127 {
            v.push(0x80 | (codes.len() & 0x7f) as u8);
            v.push((codes.len() >> 7) as u8);
        } else {
            v.push(codes.len() as u8);
        }
        v.extend_from_slice(codes);
        v
    }

    #[test]
    fn decodes_short_long_and_rejects_truncated() {
        let mut blob = entry(&[b'T', 0xf0, 0xf1]);
        blob.extend(entry(b"dx"));
        let long: Vec<u8> = std::iter::once(b't').chain([b'z'; 200]).collect();
        blob.extend(entry(&long));
        let names = decode_names(&blob, 3, &tokens()).unwrap();
        assert_eq!(names[0], ("ab_c".to_string(), 'T'));
        assert_eq!(names[1], ("x".to_string(), 'd'));
        assert_eq!(names[2].0.len(), 200);
        assert!(decode_names(&blob, 4, &tokens()).is_err());
        assert!(decode_names(&blob[..blob.len() - 1], 3, &tokens()).is_err());
        assert!(decode_names(&[0], 1, &tokens()).is_err());
    }

    /// Lay out a complete set of tables in a sparse memory, in 6.1's order.
    fn build(percpu: bool) -> (SparseMemory, KallsymsTables) {
        let mut m = SparseMemory::new();
        let base = 0xffff_ffff_8100_0000u64;
        let t = KallsymsTables {
            offsets: VirtAddr(base + 0x10_0000),
            relative_base: VirtAddr(base + 0x10_0100),
            num_syms: VirtAddr(base + 0x10_0108),
            names: VirtAddr(base + 0x10_0110),
            token_table: VirtAddr(base + 0x10_1000),
            token_index: VirtAddr(base + 0x10_2000),
        };
        let toks = tokens();
        let mut table = Vec::new();
        let mut index = Vec::new();
        for tk in &toks {
            index.extend_from_slice(&(table.len() as u16).to_le_bytes());
            table.extend_from_slice(tk);
            table.push(0);
        }
        m.write(t.token_table.0, &table);
        m.write(t.token_index.0, &index);
        let syms: [(&[u8], i64); 3] = [
            (b"Afixed_percpu_data", 0),
            (b"T_stext", 0x1000),
            (b"Dlinux_banner", 0x20_0000),
        ];
        let mut names = Vec::new();
        let mut offs = Vec::new();
        for (name, off) in syms {
            names.extend(entry(name));
            let o: i32 = if percpu {
                if name[1] == b'f' {
                    0
                } else {
                    (-1 - off) as i32
                }
            } else {
                off as i32
            };
            offs.extend_from_slice(&o.to_le_bytes());
        }
        m.write(t.names.0, &names);
        m.write(t.offsets.0, &offs);
        m.write_u64(t.relative_base.0, base);
        m.write_u32(t.num_syms.0, 3);
        (m, t)
    }

    #[test]
    fn both_offset_forms() {
        let (m, t) = build(false);
        let k = Kallsyms::read(&m, &t).unwrap();
        assert_eq!(k.form(), Some(OffsetForm::BaseRelative));
        assert_eq!(k.get("_stext"), Some(0xffff_ffff_8100_1000));
        assert_eq!(k.symbol("linux_banner").unwrap().kind, 'D');
        let (m, t) = build(true);
        let k = Kallsyms::read(&m, &t).unwrap();
        assert_eq!(k.form(), Some(OffsetForm::AbsolutePercpu));
        assert_eq!(k.get("fixed_percpu_data"), Some(0));
        assert_eq!(k.get("_stext"), Some(0xffff_ffff_8100_1000));
        assert_eq!(k.get("linux_banner"), Some(0xffff_ffff_8120_0000));
        let (s, d) = k.symbol_at(0xffff_ffff_8100_1010).unwrap();
        assert_eq!((s.name.as_str(), d), ("_stext", 0x10));
    }

    #[test]
    fn damaged_tables_fail_without_panic() {
        let (mut m, t) = build(true);
        m.write_u32(t.num_syms.0, u32::MAX);
        assert!(Kallsyms::read(&m, &t).is_err());
        let (mut m, t) = build(true);
        m.write_u32(t.num_syms.0, 1000);
        assert!(Kallsyms::read(&m, &t).is_err());
        let (mut m, t) = build(true);
        m.write(t.token_index.0, &[0xff; 512]);
        assert!(Kallsyms::read(&m, &t).is_err());
        let (mut m, t) = build(true);
        m.unmap_page(t.offsets.0);
        assert!(Kallsyms::read(&m, &t).is_err());
    }
}
