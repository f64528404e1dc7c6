//! The compact binary form of a symbol table, used both in memory and as
//! the on-disk cache (memory-mapped), so a warm run parses nothing.
//!
//! Layout (all little-endian): a 256-byte header, then sections. Header:
//! magic `HSSYMTB1`, version u32, header length u32, file length u64,
//! checksum u64 of everything after the header, source size u64, source
//! mtime (ns since the epoch) u64, source kind u32, section count u32, then
//! per section (offset u32, length u32). Sections, in order:
//!
//! | # | content | record |
//! |---|---------|--------|
//! | 0 | strings: each `len u32` + UTF-8 bytes; a string id is its offset | bytes |
//! | 1 | identity: name, guid (string ids), age, flag (1 = a PDB identity; 2 = no PDB: name is where the types came from, guid the notes on what was left out, one a line) | 16 |
//! | 2 | type nodes: kind, a, b, c (children always have lower ids) | 16 |
//! | 3 | base types sorted by name: name, size | 8 |
//! | 4 | user types sorted by name: name, flags, size u64, first field, count | 24 |
//! | 5 | fields: name, node, offset u64 | 16 |
//! | 6 | enums sorted by name: name, pad, size u64, first constant, count | 24 |
//! | 7 | enum constants: name, pad, value i64 | 16 |
//! | 8 | symbols sorted by name: name, pad, rva u64 | 16 |
//! | 9 | symbol ids sorted by rva | 4 |
//! | 10 | aliases (linkage names) sorted by name: name, pad, rva u64 | 16 |
//!
//! Every read is bounds-checked, so a damaged file yields `None`, never a
//! panic; the checksum makes damage visible at open time.

use std::collections::HashMap;

use crate::model::Model;
use crate::{Enumeration, Field, PdbIdentity, TypeRef, UserType};

pub(crate) const MAGIC: &[u8; 8] = b"HSSYMTB1";
pub(crate) const VERSION: u32 = 1;
const HEADER_LEN: usize = 256;
const NSECT: usize = 11;

pub(crate) const S_STRINGS: usize = 0;
const S_IDENTITY: usize = 1;
const S_NODES: usize = 2;
pub(crate) const S_BASES: usize = 3;
pub(crate) const S_UTYPES: usize = 4;
const S_FIELDS: usize = 5;
pub(crate) const S_ENUMS: usize = 6;
const S_CONSTS: usize = 7;
pub(crate) const S_SYMS: usize = 8;
const S_BYADDR: usize = 9;
pub(crate) const S_ALIASES: usize = 10;

/// Record size of each section (0 = free-form bytes).
const REC: [usize; NSECT] = [0, 16, 16, 8, 24, 16, 24, 16, 16, 4, 16];

const K_BASE: u32 = 1;
const K_POINTER: u32 = 2;
const K_ARRAY: u32 = 3;
const K_STRUCT: u32 = 4;
const K_ENUM: u32 = 5;
const K_BITFIELD: u32 = 6;
const K_FUNCTION: u32 = 7;

/// Identity record flag: a PDB's name, GUID and age.
const IDENTITY_PDB: u32 = 1;
/// Identity record flag: no PDB; the name is where the types came from.
const IDENTITY_ORIGIN: u32 = 2;

/// Deepest type nesting decoded (pointer to array of pointer ...).
const MAX_TYPE_DEPTH: u32 = 64;

/// What the cache file was built from, to tell when it is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SourceKey {
    pub size: u64,
    pub mtime_ns: u64,
    /// 1 = ISF, 2 = PDB, 3 = keyed (BTF from a dump), 4 = ELF vmlinux,
    /// 0 = not from a file.
    pub kind: u32,
}

/// Source kind of a cache entry keyed by content or by a caller's key.
pub(crate) const KIND_KEYED: u32 = 3;

/// A copy of a compact image with another source key in its header (the
/// key is outside the checksummed part).
pub(crate) fn restamp(image: &[u8], key: SourceKey) -> Result<Vec<u8>, String> {
    Layout::validate_fresh(image)?;
    let mut out = image.to_vec();
    out[32..40].copy_from_slice(&key.size.to_le_bytes());
    out[40..48].copy_from_slice(&key.mtime_ns.to_le_bytes());
    out[48..52].copy_from_slice(&key.kind.to_le_bytes());
    Ok(out)
}

/// A 64-bit checksum of a byte slice, word at a time so that validating a
/// few megabytes costs well under a millisecond.
pub(crate) fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15 ^ data.len() as u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(23) ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h ^ (h >> 29)
}

/// A small multiplicative hasher for the writer's interning tables
/// (SipHash costs more than the rest of the write for ~200 000 names; the
/// keys come from a file we are converting, and a collision only costs
/// time).
#[derive(Default)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    fn write_u8(&mut self, x: u8) {
        self.write_u64(u64::from(x));
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

struct Writer {
    strings: Vec<u8>,
    string_ids: FastMap<String, u32>,
    nodes: Vec<[u32; 4]>,
    node_ids: FastMap<[u32; 4], u32>,
}

impl Writer {
    fn string(&mut self, s: &str) -> Result<u32, String> {
        if let Some(&id) = self.string_ids.get(s) {
            return Ok(id);
        }
        let id = u32::try_from(self.strings.len()).map_err(|_| "string table over 4 GiB")?;
        let len = u32::try_from(s.len()).map_err(|_| "string over 4 GiB")?;
        self.strings.extend_from_slice(&len.to_le_bytes());
        self.strings.extend_from_slice(s.as_bytes());
        self.string_ids.insert(s.to_string(), id);
        Ok(id)
    }

    /// Append a string known to occur once (a symbol name): no interning.
    fn unique_string(&mut self, s: &str) -> Result<u32, String> {
        let id = u32::try_from(self.strings.len()).map_err(|_| "string table over 4 GiB")?;
        let len = u32::try_from(s.len()).map_err(|_| "string over 4 GiB")?;
        self.strings.extend_from_slice(&len.to_le_bytes());
        self.strings.extend_from_slice(s.as_bytes());
        Ok(id)
    }

    fn node(&mut self, t: &TypeRef, depth: u32) -> Result<u32, String> {
        if depth > MAX_TYPE_DEPTH {
            return Err("type nested too deeply".into());
        }
        let key = match t {
            TypeRef::Base(n) => [K_BASE, self.string(n)?, 0, 0],
            TypeRef::Pointer(to) => [K_POINTER, self.node(to, depth + 1)?, 0, 0],
            TypeRef::Array { count, element } => [
                K_ARRAY,
                self.node(element, depth + 1)?,
                *count as u32,
                (*count >> 32) as u32,
            ],
            TypeRef::Struct(n) => [K_STRUCT, self.string(n)?, 0, 0],
            TypeRef::Enum(n) => [K_ENUM, self.string(n)?, 0, 0],
            TypeRef::Bitfield {
                position,
                length,
                base,
            } => [K_BITFIELD, self.node(base, depth + 1)?, *position, *length],
            TypeRef::Function => [K_FUNCTION, 0, 0, 0],
        };
        if let Some(&id) = self.node_ids.get(&key) {
            return Ok(id);
        }
        let id = u32::try_from(self.nodes.len()).map_err(|_| "too many type nodes")?;
        self.nodes.push(key);
        self.node_ids.insert(key, id);
        Ok(id)
    }
}

fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Deduplicate by name (the last definition wins, as in Volatility's
/// pdbconv) and sort by name bytes.
fn by_name<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<&T> {
    let mut v: Vec<(&[u8], usize)> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (name(it).as_bytes(), i))
        .collect();
    v.sort_unstable();
    let mut out: Vec<&T> = Vec::with_capacity(v.len());
    for (k, (n, i)) in v.iter().enumerate() {
        // Keep only the last (highest index) of each run of equal names.
        if v.get(k + 1).is_some_and(|(next, _)| next == n) {
            continue;
        }
        out.push(&items[*i]);
    }
    out
}

/// Serialise a model into the compact form.
pub(crate) fn write(model: &Model, key: SourceKey) -> Result<Vec<u8>, String> {
    let mut w = Writer {
        strings: Vec::new(),
        string_ids: FastMap::default(),
        nodes: Vec::new(),
        node_ids: FastMap::default(),
    };
    let mut sect: Vec<Vec<u8>> = vec![Vec::new(); NSECT];

    if let Some(id) = &model.identity {
        let (n, g) = (w.string(&id.name)?, w.string(&id.guid)?);
        let s = &mut sect[S_IDENTITY];
        put_u32(s, n);
        put_u32(s, g);
        put_u32(s, id.age);
        put_u32(s, IDENTITY_PDB);
    } else if let Some(origin) = &model.origin {
        // No PDB: the record carries only where the types came from, with
        // a flag older readers take for "no identity".
        let (n, g) = (w.string(origin)?, w.string(&model.notes.join("\n"))?);
        let s = &mut sect[S_IDENTITY];
        put_u32(s, n);
        put_u32(s, g);
        put_u32(s, 0);
        put_u32(s, IDENTITY_ORIGIN);
    }

    for (name, size) in by_name(&model.base_types, |b| &b.0) {
        let n = w.string(name)?;
        put_u32(&mut sect[S_BASES], n);
        put_u32(&mut sect[S_BASES], u32::try_from(*size).unwrap_or(u32::MAX));
    }

    for ut in by_name(&model.user_types, |u| &u.name) {
        let n = w.string(&ut.name)?;
        let first = (sect[S_FIELDS].len() / 16) as u32;
        for f in &ut.fields {
            let fname = w.string(&f.name)?;
            let node = w.node(&f.ty, 0)?;
            put_u32(&mut sect[S_FIELDS], fname);
            put_u32(&mut sect[S_FIELDS], node);
            put_u64(&mut sect[S_FIELDS], f.offset);
        }
        let s = &mut sect[S_UTYPES];
        put_u32(s, n);
        put_u32(s, u32::from(ut.is_union));
        put_u64(s, ut.size);
        put_u32(s, first);
        put_u32(
            s,
            u32::try_from(ut.fields.len()).map_err(|_| "too many fields")?,
        );
    }
    for en in by_name(&model.enums, |e| &e.name) {
        let n = w.string(&en.name)?;
        let first = (sect[S_CONSTS].len() / 16) as u32;
        for (cname, v) in &en.constants {
            let c = w.string(cname)?;
            put_u32(&mut sect[S_CONSTS], c);
            put_u32(&mut sect[S_CONSTS], 0);
            put_u64(&mut sect[S_CONSTS], *v as u64);
        }
        let s = &mut sect[S_ENUMS];
        put_u32(s, n);
        put_u32(s, 0);
        put_u64(s, en.size);
        put_u32(s, first);
        put_u32(
            s,
            u32::try_from(en.constants.len()).map_err(|_| "too many constants")?,
        );
    }
    let syms = if model.keep_duplicate_symbols {
        let mut all: Vec<&(String, u64)> = model.symbols.iter().collect();
        all.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
        all
    } else {
        by_name(&model.symbols, |s| &s.0)
    };
    for (name, rva) in &syms {
        let n = w.unique_string(name)?;
        put_u32(&mut sect[S_SYMS], n);
        put_u32(&mut sect[S_SYMS], 0);
        put_u64(&mut sect[S_SYMS], *rva);
    }
    // By address; ties keep name order, so the first name at an address wins.
    let mut order: Vec<u32> = (0..syms.len() as u32).collect();
    order.sort_by_key(|&i| syms[i as usize].1);
    for i in order {
        put_u32(&mut sect[S_BYADDR], i);
    }
    for (name, rva) in by_name(&model.aliases, |s| &s.0) {
        let n = w.unique_string(name)?;
        put_u32(&mut sect[S_ALIASES], n);
        put_u32(&mut sect[S_ALIASES], 0);
        put_u64(&mut sect[S_ALIASES], *rva);
    }
    for node in &w.nodes {
        for x in node {
            put_u32(&mut sect[S_NODES], *x);
        }
    }
    sect[S_STRINGS] = std::mem::take(&mut w.strings);

    let mut out = vec![0u8; HEADER_LEN];
    let mut table = Vec::new();
    for s in &sect {
        // Keep every section 8-aligned so records never straddle oddly.
        while out.len() % 8 != 0 {
            out.push(0);
        }
        let off = u32::try_from(out.len()).map_err(|_| "symbol table over 4 GiB")?;
        let len = u32::try_from(s.len()).map_err(|_| "section over 4 GiB")?;
        table.push((off, len));
        out.extend_from_slice(s);
    }
    let file_len = out.len() as u64;
    let sum = checksum(&out[HEADER_LEN..]);
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    put_u32(&mut h, VERSION);
    put_u32(&mut h, HEADER_LEN as u32);
    put_u64(&mut h, file_len);
    put_u64(&mut h, sum);
    put_u64(&mut h, key.size);
    put_u64(&mut h, key.mtime_ns);
    put_u32(&mut h, key.kind);
    put_u32(&mut h, NSECT as u32);
    for (o, l) in table {
        put_u32(&mut h, o);
        put_u32(&mut h, l);
    }
    out[..h.len()].copy_from_slice(&h);
    Ok(out)
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    let b = d.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(d: &[u8], off: usize) -> Option<u64> {
    let b = d.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// Validated section table of a compact image.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    sect: [(usize, usize); NSECT],
    pub key: SourceKey,
}

impl Layout {
    /// Check the header, bounds and checksum.
    pub(crate) fn validate(d: &[u8]) -> Result<Layout, String> {
        Self::check(d, true)
    }

    /// Check header and bounds of an image this process just wrote (its
    /// checksum is right by construction).
    pub(crate) fn validate_fresh(d: &[u8]) -> Result<Layout, String> {
        Self::check(d, false)
    }

    fn check(d: &[u8], verify_sum: bool) -> Result<Layout, String> {
        if d.len() < HEADER_LEN {
            return Err(format!("{} bytes, shorter than the header", d.len()));
        }
        if &d[..8] != MAGIC {
            return Err("wrong magic".into());
        }
        let version = u32_at(d, 8).unwrap_or(0);
        if version != VERSION {
            return Err(format!("version {version}, this build reads {VERSION}"));
        }
        let file_len = u64_at(d, 16).unwrap_or(0);
        if file_len != d.len() as u64 {
            return Err(format!(
                "header says {file_len} bytes, file has {}",
                d.len()
            ));
        }
        let want = u64_at(d, 24).unwrap_or(0);
        if verify_sum && checksum(&d[HEADER_LEN..]) != want {
            return Err("checksum mismatch".into());
        }
        let key = SourceKey {
            size: u64_at(d, 32).unwrap_or(0),
            mtime_ns: u64_at(d, 40).unwrap_or(0),
            kind: u32_at(d, 48).unwrap_or(0),
        };
        if u32_at(d, 52) != Some(NSECT as u32) {
            return Err("wrong section count".into());
        }
        let mut sect = [(0usize, 0usize); NSECT];
        for (i, s) in sect.iter_mut().enumerate() {
            let off = u32_at(d, 56 + 8 * i).unwrap_or(0) as usize;
            let len = u32_at(d, 60 + 8 * i).unwrap_or(0) as usize;
            let end = off.checked_add(len).ok_or("section overflows")?;
            if off < HEADER_LEN || end > d.len() {
                return Err(format!("section {i} out of bounds"));
            }
            if REC[i] != 0 && len % REC[i] != 0 {
                return Err(format!(
                    "section {i} length {len} not a multiple of {}",
                    REC[i]
                ));
            }
            *s = (off, len);
        }
        Ok(Layout { sect, key })
    }

    /// Number of records in a section.
    pub(crate) fn count(&self, s: usize) -> usize {
        self.sect[s].1.checked_div(REC[s]).unwrap_or(0)
    }

    fn rec<'d>(&self, d: &'d [u8], s: usize, i: usize) -> Option<&'d [u8]> {
        let size = REC[s];
        if i >= self.count(s) {
            return None;
        }
        let start = self.sect[s].0 + i * size;
        d.get(start..start + size)
    }

    fn rec_u32(&self, d: &[u8], s: usize, i: usize, field: usize) -> Option<u32> {
        u32_at(self.rec(d, s, i)?, field)
    }

    fn rec_u64(&self, d: &[u8], s: usize, i: usize, field: usize) -> Option<u64> {
        u64_at(self.rec(d, s, i)?, field)
    }

    /// The string with this id.
    pub(crate) fn string<'d>(&self, d: &'d [u8], id: u32) -> Option<&'d str> {
        std::str::from_utf8(self.string_bytes(d, id)?).ok()
    }

    /// A string's raw bytes: lookups compare bytes, so the hot binary
    /// search does not pay for UTF-8 validation on every probe.
    fn string_bytes<'d>(&self, d: &'d [u8], id: u32) -> Option<&'d [u8]> {
        let (base, len) = self.sect[S_STRINGS];
        let strings = d.get(base..base + len)?;
        let off = id as usize;
        let n = u32_at(strings, off)? as usize;
        strings.get(off + 4..(off + 4).checked_add(n)?)
    }

    /// Name of record `i` of a name-sorted section (name is its first field).
    pub(crate) fn name_of<'d>(&self, d: &'d [u8], s: usize, i: usize) -> Option<&'d str> {
        self.string(d, self.rec_u32(d, s, i, 0)?)
    }

    /// Binary search a name-sorted section.
    pub(crate) fn find(&self, d: &[u8], s: usize, name: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.count(s));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let n = self.string_bytes(d, self.rec_u32(d, s, mid, 0)?)?;
            match n.cmp(name.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    // Repeated names (Linux symbols): the first of the run,
                    // which the writer sorted by address.
                    let mut first = mid;
                    while first > lo {
                        match self.rec_u32(d, s, first - 1, 0) {
                            Some(id) if self.string_bytes(d, id) == Some(n) => first -= 1,
                            _ => break,
                        }
                    }
                    return Some(first);
                }
            }
        }
        None
    }

    /// Where the types came from, for tables without a PDB identity.
    pub(crate) fn origin<'d>(&self, d: &'d [u8]) -> Option<&'d str> {
        if self.rec_u32(d, S_IDENTITY, 0, 12)? != IDENTITY_ORIGIN {
            return None;
        }
        self.string(d, self.rec_u32(d, S_IDENTITY, 0, 0)?)
    }

    /// Notes on what was left out, for tables with an origin record.
    pub(crate) fn notes<'d>(&self, d: &'d [u8]) -> Option<&'d str> {
        if self.rec_u32(d, S_IDENTITY, 0, 12)? != IDENTITY_ORIGIN {
            return None;
        }
        self.string(d, self.rec_u32(d, S_IDENTITY, 0, 4)?)
    }

    pub(crate) fn identity(&self, d: &[u8]) -> Option<PdbIdentity> {
        if self.rec_u32(d, S_IDENTITY, 0, 12)? != IDENTITY_PDB {
            return None;
        }
        Some(PdbIdentity {
            name: self
                .string(d, self.rec_u32(d, S_IDENTITY, 0, 0)?)?
                .to_string(),
            guid: self
                .string(d, self.rec_u32(d, S_IDENTITY, 0, 4)?)?
                .to_string(),
            age: self.rec_u32(d, S_IDENTITY, 0, 8)?,
        })
    }

    pub(crate) fn type_ref(&self, d: &[u8], node: u32, depth: u32) -> Option<TypeRef> {
        if depth > MAX_TYPE_DEPTH {
            return None;
        }
        let i = node as usize;
        let (kind, a, b, c) = (
            self.rec_u32(d, S_NODES, i, 0)?,
            self.rec_u32(d, S_NODES, i, 4)?,
            self.rec_u32(d, S_NODES, i, 8)?,
            self.rec_u32(d, S_NODES, i, 12)?,
        );
        // Children always precede their parent: this rules out cycles.
        let child = |x: u32| -> Option<Box<TypeRef>> {
            if x >= node {
                return None;
            }
            Some(Box::new(self.type_ref(d, x, depth + 1)?))
        };
        Some(match kind {
            K_BASE => TypeRef::Base(self.string(d, a)?.to_string()),
            K_POINTER => TypeRef::Pointer(child(a)?),
            K_ARRAY => TypeRef::Array {
                count: u64::from(b) | (u64::from(c) << 32),
                element: child(a)?,
            },
            K_STRUCT => TypeRef::Struct(self.string(d, a)?.to_string()),
            K_ENUM => TypeRef::Enum(self.string(d, a)?.to_string()),
            K_BITFIELD => TypeRef::Bitfield {
                position: b,
                length: c,
                base: child(a)?,
            },
            K_FUNCTION => TypeRef::Function,
            _ => return None,
        })
    }

    pub(crate) fn user_type(&self, d: &[u8], i: usize) -> Option<UserType> {
        let name = self.name_of(d, S_UTYPES, i)?.to_string();
        let flags = self.rec_u32(d, S_UTYPES, i, 4)?;
        let size = self.rec_u64(d, S_UTYPES, i, 8)?;
        let first = self.rec_u32(d, S_UTYPES, i, 16)? as usize;
        let n = self.rec_u32(d, S_UTYPES, i, 20)? as usize;
        if first.checked_add(n)? > self.count(S_FIELDS) {
            return None;
        }
        let mut fields = Vec::with_capacity(n);
        for j in first..first + n {
            fields.push(Field {
                name: self.name_of(d, S_FIELDS, j)?.to_string(),
                offset: self.rec_u64(d, S_FIELDS, j, 8)?,
                ty: self.type_ref(d, self.rec_u32(d, S_FIELDS, j, 4)?, 0)?,
            });
        }
        Some(UserType {
            name,
            is_union: flags & 1 != 0,
            size,
            fields,
        })
    }

    pub(crate) fn enumeration(&self, d: &[u8], i: usize) -> Option<Enumeration> {
        let name = self.name_of(d, S_ENUMS, i)?.to_string();
        let size = self.rec_u64(d, S_ENUMS, i, 8)?;
        let first = self.rec_u32(d, S_ENUMS, i, 16)? as usize;
        let n = self.rec_u32(d, S_ENUMS, i, 20)? as usize;
        if first.checked_add(n)? > self.count(S_CONSTS) {
            return None;
        }
        let mut constants = Vec::with_capacity(n);
        for j in first..first + n {
            constants.push((
                self.name_of(d, S_CONSTS, j)?.to_string(),
                self.rec_u64(d, S_CONSTS, j, 8)? as i64,
            ));
        }
        Some(Enumeration {
            name,
            size,
            constants,
        })
    }

    pub(crate) fn base_size(&self, d: &[u8], i: usize) -> Option<u64> {
        self.rec_u32(d, S_BASES, i, 4).map(u64::from)
    }

    /// RVA of record `i` of the symbol or alias section.
    pub(crate) fn rva(&self, d: &[u8], s: usize, i: usize) -> Option<u64> {
        self.rec_u64(d, s, i, 8)
    }

    /// The nearest symbol at or below `rva`: (symbol index, its rva).
    pub(crate) fn symbol_at(&self, d: &[u8], rva: u64) -> Option<(usize, u64)> {
        let n = self.count(S_BYADDR);
        let at = |k: usize| -> Option<(usize, u64)> {
            let i = self.rec_u32(d, S_BYADDR, k, 0)? as usize;
            Some((i, self.rva(d, S_SYMS, i)?))
        };
        // First position whose rva is above the target.
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if at(mid)?.1 <= rva {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return None;
        }
        // Walk back to the first entry of a run of equal addresses, so the
        // name chosen is the alphabetically first (deterministic).
        let (mut i, r) = at(lo - 1)?;
        let mut k = lo - 1;
        while k > 0 {
            match at(k - 1) {
                Some((j, r2)) if r2 == r => {
                    i = j;
                    k -= 1;
                }
                _ => break,
            }
        }
        Some((i, r))
    }
}
