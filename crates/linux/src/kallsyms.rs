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

/// One kernel symbol, owned (a module's symbols, or the input of
/// [`Kallsyms::from_symbols`]).
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

/// One kernel symbol as [`Kallsyms`] holds it: its name borrowed from the
/// table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolRef<'a> {
    /// Name.
    pub name: &'a str,
    /// Run-time virtual address (KASLR applied), or a per-CPU offset for
    /// per-CPU variables.
    pub addr: u64,
    /// The `nm` type letter (`T`, `t`, `D`, `d`, `B`, `R`, `A`, ...).
    pub kind: char,
}

impl SymbolRef<'_> {
    /// An owned copy.
    pub fn to_owned_symbol(&self) -> KernelSymbol {
        KernelSymbol {
            name: self.name.to_string(),
            addr: self.addr,
            kind: self.kind,
        }
    }
}

/// Where a decoded name sits in the names' text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameSpan {
    /// Byte offset in the text.
    pub start: u32,
    /// Length in bytes.
    pub len: u16,
    /// The `nm` type letter.
    pub kind: char,
}

/// Names decoded from `kallsyms_names`: one text, and each name's place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedNames {
    /// Every name, one after the other.
    pub text: String,
    /// Each name, in the table's order.
    pub spans: Vec<NameSpan>,
}

impl DecodedNames {
    /// How many names.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Each name and its type letter, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, char)> + '_ {
        self.spans.iter().map(|s| {
            let start = s.start as usize;
            (
                self.text
                    .get(start..start + usize::from(s.len))
                    .unwrap_or(""),
                s.kind,
            )
        })
    }
}

/// A symbol in the table: its address and where its name is.
#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: u64,
    name: NameSpan,
}

/// The decoded kernel symbol table.
///
/// A distribution kernel has 150,000 to 200,000 symbols and every command
/// reads them all, so they are kept flat: the names in one string, the
/// entries sorted by address, and a name index of entry numbers bucketed
/// by hash (no string per symbol to allocate, hash or free).
#[derive(Debug, Clone, Default)]
pub struct Kallsyms {
    /// Symbols sorted by address.
    syms: Vec<Entry>,
    /// Every name, one after the other.
    text: String,
    /// Name index: entry numbers grouped by their name's hash bucket,
    /// bucket `h` at `by_name[bucket_starts[h]..bucket_starts[h + 1]]`,
    /// each bucket in address order.
    by_name: Vec<u32>,
    /// Where each bucket starts in `by_name` (one more than the buckets).
    bucket_starts: Vec<u32>,
    form: Option<OffsetForm>,
}

/// The largest character boundary of `s` at or below `max`.
fn floor_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// FNV-1a, 64-bit: symbol names are short, and this needs no key.
fn name_hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
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
        let DecodedNames { text, spans } = read_names(mem, t, n, &tokens)?;
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
        let syms = spans
            .into_iter()
            .zip(offsets)
            .map(|(name, off)| Entry {
                addr: match form {
                    OffsetForm::BaseRelative => base.wrapping_add(u64::from(off as u32)),
                    OffsetForm::AbsolutePercpu if off >= 0 => off as u64,
                    OffsetForm::AbsolutePercpu => {
                        base.wrapping_sub(1).wrapping_sub(i64::from(off) as u64)
                    }
                },
                name,
            })
            .collect();
        Ok(Kallsyms::from_entries(syms, text, Some(form)))
    }

    /// A table from symbols already decoded (module symbols, tests).
    pub fn from_symbols(syms: Vec<KernelSymbol>, form: Option<OffsetForm>) -> Kallsyms {
        let mut text = String::new();
        let mut entries = Vec::with_capacity(syms.len());
        for s in syms {
            let name = &s.name[..floor_boundary(&s.name, MAX_NAME)];
            let Ok(start) = u32::try_from(text.len()) else {
                break;
            };
            text.push_str(name);
            entries.push(Entry {
                addr: s.addr,
                name: NameSpan {
                    start,
                    len: name.len() as u16,
                    kind: s.kind,
                },
            });
        }
        Kallsyms::from_entries(entries, text, form)
    }

    fn from_entries(mut syms: Vec<Entry>, text: String, form: Option<OffsetForm>) -> Kallsyms {
        // Stable: symbols at one address keep the tables' order (the
        // kernel's are sorted already, so this is one pass).
        syms.sort_by_key(|s| s.addr);
        // Buckets of about two symbols each, laid out by a counting sort:
        // two sequential passes and one scatter into a table a quarter
        // the size of a hash map's, instead of a random probe per symbol.
        let buckets = (syms.len() / 2).max(16).next_power_of_two();
        let mask = (buckets - 1) as u64;
        let text_of = |e: &Entry| {
            let start = e.name.start as usize;
            text.get(start..start + usize::from(e.name.len))
                .unwrap_or("")
        };
        let homes: Vec<u32> = syms
            .iter()
            .map(|e| (name_hash(text_of(e).as_bytes()) & mask) as u32)
            .collect();
        let mut starts = vec![0u32; buckets + 1];
        for &h in &homes {
            starts[h as usize + 1] += 1;
        }
        for i in 0..buckets {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut by_name = vec![0u32; syms.len()];
        for (i, &h) in homes.iter().enumerate() {
            let at = &mut next[h as usize];
            by_name[*at as usize] = i as u32;
            *at += 1;
        }
        Kallsyms {
            syms,
            text,
            bucket_starts: starts,
            by_name,
            form,
        }
    }

    fn name_of(&self, e: &Entry) -> &str {
        let start = e.name.start as usize;
        self.text
            .get(start..start + usize::from(e.name.len))
            .unwrap_or("")
    }

    fn at(&self, i: usize) -> Option<SymbolRef<'_>> {
        let e = self.syms.get(i)?;
        Some(SymbolRef {
            name: self.name_of(e),
            addr: e.addr,
            kind: e.name.kind,
        })
    }

    /// The entry named `name`: the first global one in address order,
    /// else the first.
    fn index_of(&self, name: &str) -> Option<usize> {
        let buckets = self.bucket_starts.len().checked_sub(1)?;
        let h = (name_hash(name.as_bytes()) & (buckets as u64).wrapping_sub(1)) as usize;
        let (from, to) = (
            *self.bucket_starts.get(h)? as usize,
            *self.bucket_starts.get(h + 1)? as usize,
        );
        let mut first = None;
        for &i in self.by_name.get(from..to)? {
            let i = i as usize;
            let Some(e) = self.syms.get(i) else { continue };
            if self.name_of(e) == name {
                if e.name.kind.is_ascii_uppercase() {
                    return Some(i);
                }
                first = first.or(Some(i));
            }
        }
        first
    }

    /// The address of a symbol by name.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.index_of(name).map(|i| self.syms[i].addr)
    }

    /// A symbol by name.
    pub fn symbol(&self, name: &str) -> Option<SymbolRef<'_>> {
        self.at(self.index_of(name)?)
    }

    /// The nearest symbol at or below `addr` (per-CPU offsets and absolute
    /// symbols excluded) and the distance from it.
    pub fn symbol_at(&self, addr: u64) -> Option<(SymbolRef<'_>, u64)> {
        let i = self.syms.partition_point(|s| s.addr <= addr);
        let s = self.at(i.checked_sub(1)?)?;
        (s.addr >> 47 == 0x1_ffff).then(|| (s, addr - s.addr))
    }

    /// The first symbol above `addr`.
    pub fn next_after(&self, addr: u64) -> Option<SymbolRef<'_>> {
        self.at(self.syms.partition_point(|s| s.addr <= addr))
    }

    /// Every symbol, by address.
    pub fn iter(&self) -> impl Iterator<Item = SymbolRef<'_>> + '_ {
        (0..self.syms.len()).filter_map(|i| self.at(i))
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

/// Decode `n` names: their text and where each is in it.
fn read_names(
    mem: &dyn VirtualMemory,
    t: &KallsymsTables,
    n: u32,
    tokens: &[Vec<u8>],
) -> Result<DecodedNames> {
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

/// Tokens of at most this many bytes are copied as one fixed-size move.
const SHORT_TOKEN: usize = 16;

/// Decode `n` token-compressed names from `blob` into one text and each
/// name's place in it; the error gives the offset in the blob and why.
pub fn decode_names(
    blob: &[u8],
    n: u32,
    tokens: &[Vec<u8>],
) -> std::result::Result<DecodedNames, (usize, String)> {
    // Each token padded to a fixed size: expanding a name is then a run of
    // fixed 16-byte moves (a few instructions each) rather than a call to
    // memmove per token, for the few million tokens of a kernel's names.
    let mut padded = [[0u8; SHORT_TOKEN]; 256];
    let mut lens = [0usize; 256];
    for (i, t) in tokens.iter().take(256).enumerate() {
        lens[i] = t.len();
        if t.len() <= SHORT_TOKEN {
            padded[i][..t.len()].copy_from_slice(t);
        }
    }
    let count = n.min(MAX_SYMS) as usize;
    let mut spans = Vec::with_capacity(count.min(blob.len()));
    let mut text: Vec<u8> = Vec::with_capacity(blob.len().min(MAX_NAMES_BYTES as usize) * 2);
    let mut at = 0usize;
    // The expansion, with room for one padded move past the longest name.
    let mut buf = [0u8; MAX_NAME + 1 + SHORT_TOKEN];
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
        let mut used = 0usize;
        for &c in codes {
            let c = usize::from(c);
            let tl = lens[c];
            if used + tl > MAX_NAME + 1 {
                return Err((
                    start,
                    format!("symbol {i}'s name is longer than {MAX_NAME}"),
                ));
            }
            if tl <= SHORT_TOKEN {
                buf[used..used + SHORT_TOKEN].copy_from_slice(&padded[c]);
            } else {
                buf[used..used + tl].copy_from_slice(&tokens[c]);
            }
            used += tl;
        }
        let Some((&kind, name)) = buf[..used].split_first() else {
            return Err((start, format!("symbol {i} has an empty name")));
        };
        let Ok(start_at) = u32::try_from(text.len()) else {
            return Err((start, format!("symbol {i}: more name text than 4 GiB")));
        };
        text.extend_from_slice(name);
        spans.push(NameSpan {
            start: start_at,
            len: name.len() as u16,
            kind: kind as char,
        });
    }
    // Names are ASCII in practice: one check of the whole text, and only
    // when it fails each name is made valid on its own.
    let text = match String::from_utf8(text) {
        Ok(t) => t,
        Err(e) => return Ok(lossy_names(e.as_bytes(), &spans)),
    };
    Ok(DecodedNames { text, spans })
}

/// The names with ill-formed UTF-8 replaced, each cut to [`MAX_NAME`]
/// bytes at a character boundary (a replacement can lengthen one).
fn lossy_names(bytes: &[u8], spans: &[NameSpan]) -> DecodedNames {
    let mut text = String::with_capacity(bytes.len());
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let from = s.start as usize;
        let name = bytes.get(from..from + usize::from(s.len)).unwrap_or(&[]);
        let name = String::from_utf8_lossy(name);
        let name = &name[..floor_boundary(&name, MAX_NAME)];
        let Ok(start) = u32::try_from(text.len()) else {
            break;
        };
        text.push_str(name);
        out.push(NameSpan {
            start,
            len: name.len() as u16,
            kind: s.kind,
        });
    }
    DecodedNames { text, spans: out }
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
        let decoded = decode_names(&blob, 3, &tokens()).unwrap();
        let names: Vec<(&str, char)> = decoded.iter().collect();
        assert_eq!(names[0], ("ab_c", 'T'));
        assert_eq!(names[1], ("x", 'd'));
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
        assert_eq!((s.name, d), ("_stext", 0x10));
    }

    #[test]
    fn the_name_index_prefers_a_global_definition() {
        let sym = |name: &str, addr: u64, kind: char| KernelSymbol {
            name: name.into(),
            addr,
            kind,
        };
        let mut syms = vec![
            sym("dup", 0x30, 't'),
            sym("dup", 0x10, 't'),
            sym("twice", 0x20, 't'),
            sym("twice", 0x40, 'T'),
        ];
        // Enough others that buckets hold several names.
        syms.extend((0..5000).map(|i| sym(&format!("f{i}"), 0x1000 + i, 'T')));
        let k = Kallsyms::from_symbols(syms, None);
        assert_eq!(k.get("dup"), Some(0x10), "the first local by address");
        assert_eq!(k.get("twice"), Some(0x40), "a global over a local");
        assert_eq!(k.symbol("twice").map(|s| s.kind), Some('T'));
        for i in (0..5000).step_by(97) {
            assert_eq!(k.get(&format!("f{i}")), Some(0x1000 + i));
        }
        assert_eq!(k.get("f5000"), None);
        assert_eq!(k.get(""), None);
        assert_eq!(k.next_after(0x20).map(|s| s.addr), Some(0x30));
        assert_eq!(Kallsyms::default().get("x"), None);
    }

    #[test]
    fn names_that_are_not_utf8_are_replaced_and_capped() {
        let mut blob = entry(b"Tok");
        let mut bad = vec![b't'];
        bad.extend([0xff; 300]);
        blob.extend(entry(&bad));
        let d = decode_names(&blob, 2, &tokens()).unwrap();
        let names: Vec<(&str, char)> = d.iter().collect();
        assert_eq!(names[0], ("ok", 'T'));
        assert!(names[1].0.starts_with('\u{fffd}'), "{:?}", names[1]);
        assert!(names[1].0.len() <= MAX_NAME);
        // A token longer than the fixed-size copy.
        let mut long = tokens();
        long[0xf2] = b"a_very_long_token_of_thirty_bytes".to_vec();
        let d = decode_names(&entry(&[b'T', 0xf2, 0xf0]), 1, &long).unwrap();
        assert_eq!(
            d.iter().next(),
            Some(("a_very_long_token_of_thirty_bytesab", 'T'))
        );
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
