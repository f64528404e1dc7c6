//! BTF (the Linux kernel's BPF Type Format) read into a type [`Graph`].
//!
//! Our own reader rather than a crate: the format is small and fixed (a
//! 24-byte header, a type section of `btf_type` records each followed by
//! a kind-specific trailer, a string section), and the blob comes from a
//! hung, possibly damaged guest's memory, so every length, type id and
//! string offset is checked here and every failure names the byte offset
//! it was found at. The crates we looked at (`btf-rs`, `libbpf-rs`'s
//! bindings) either need libbpf (C) or resolve types lazily with
//! assertions we could not vouch for on hostile input.
//!
//! Layout, as the kernel's `include/uapi/linux/btf.h` documents it: header
//! `magic u16 (0xeB9F), version u8 (1), flags u8, hdr_len u32, type_off
//! u32, type_len u32, str_off u32, str_len u32`, the two offsets counted
//! from the end of the header. Type id 0 is `void`; the first record has
//! id 1. A module's split BTF continues the base's type ids and string
//! offsets.

use std::collections::HashMap;

use crate::graph::{Graph, Member, Node, NodeId};

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
/// Fixed part of a type record: name_off, info, size_or_type.
const RECORD_LEN: usize = 12;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// What is wrong with a blob, and where (byte offset in that blob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BtfError {
    /// Byte offset inside the blob it was found in.
    pub offset: u64,
    /// True when the fault is in a module's split BTF, not the base.
    pub in_module: bool,
    pub message: String,
}

/// The validated section bounds of one blob.
#[derive(Debug, Clone, Copy)]
struct Sections {
    types: (usize, usize),
    strings: (usize, usize),
}

fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    let b = d.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    let b = d.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn header(blob: &[u8], in_module: bool) -> Result<Sections, BtfError> {
    let err = |offset: usize, message: String| BtfError {
        offset: offset as u64,
        in_module,
        message,
    };
    if blob.len() < HEADER_LEN {
        return Err(err(
            0,
            format!(
                "{} bytes, shorter than the {HEADER_LEN}-byte BTF header",
                blob.len()
            ),
        ));
    }
    let magic = u16_at(blob, 0).unwrap_or(0);
    if magic != MAGIC {
        let what = if magic == MAGIC.swap_bytes() {
            "big-endian BTF, which this reader does not handle".to_string()
        } else {
            format!("magic {magic:#06x}, not BTF's 0xeb9f")
        };
        return Err(err(0, what));
    }
    if blob[2] != 1 {
        return Err(err(2, format!("BTF version {}, only 1 exists", blob[2])));
    }
    let field = |off: usize| u32_at(blob, off).unwrap_or(0) as usize;
    let hdr_len = field(4);
    if hdr_len < HEADER_LEN || hdr_len > blob.len() {
        return Err(err(
            4,
            format!(
                "header length {hdr_len} outside {HEADER_LEN}..={}",
                blob.len()
            ),
        ));
    }
    let section = |at: usize, what: &str| -> Result<(usize, usize), BtfError> {
        let (off, len) = (field(at), field(at + 4));
        let start = hdr_len.checked_add(off);
        let end = start.and_then(|s| s.checked_add(len));
        match (start, end) {
            (Some(s), Some(e)) if e <= blob.len() => Ok((s, e)),
            _ => Err(err(
                at,
                format!(
                    "{what} section (offset {off}, length {len} after a {hdr_len}-byte header) \
                     ends past the blob's {} bytes",
                    blob.len()
                ),
            )),
        }
    };
    let types = section(8, "type")?;
    let strings = section(16, "string")?;
    // A split blob's strings continue the base's, which holds the empty one.
    if !in_module && strings.1 > strings.0 && blob[strings.0] != 0 {
        return Err(err(
            strings.0,
            "string section does not start with the empty string".into(),
        ));
    }
    Ok(Sections { types, strings })
}

/// One blob plus where its strings sit in the combined string space.
struct Part<'a> {
    blob: &'a [u8],
    sections: Sections,
    /// First string offset that belongs to this blob (0 for a base).
    str_base: usize,
    in_module: bool,
}

impl<'a> Part<'a> {
    fn strings(&self) -> &'a [u8] {
        &self.blob[self.sections.strings.0..self.sections.strings.1]
    }
}

/// The parsed graph and, per node, the byte offset of its record (for
/// error messages), with the id range each blob contributed.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub graph: Graph<'a>,
    /// Ids of the last blob parsed (the module's for split BTF).
    pub own: std::ops::Range<NodeId>,
    record_at: Vec<u32>,
    base_len: u32,
}

impl Parsed<'_> {
    /// Where the record of type `id` starts, and whether in the module.
    pub(crate) fn record_offset(&self, id: NodeId) -> Option<(u64, bool)> {
        let at = *self.record_at.get(id as usize)?;
        Some((u64::from(at), id >= self.base_len && self.base_len > 0))
    }
}

struct Reader<'a, 'p> {
    parts: &'p [Part<'a>],
    nodes: Vec<Node<'a>>,
    record_at: Vec<u32>,
    /// INT types that are themselves bitfields (old encoding): bits, offset.
    int_bits: HashMap<NodeId, (u32, u32)>,
    /// Structs without kind_flag: their members may use INT bitfields.
    plain_structs: Vec<NodeId>,
    /// 32-bit enums without kind_flag: unsigned for an encoder that marks
    /// signed enums, signed (the original meaning) for one that does not.
    unflagged_enums: Vec<NodeId>,
    /// Whether any enum carries kind_flag or any ENUM64 exists, i.e. the
    /// encoder knows enum signedness (pahole 1.24+, clang 15+).
    signedness_known: bool,
    /// Per node: the referenced ids, checked once all records are read.
    refs: Vec<(NodeId, NodeId, usize)>,
}

impl<'a> Reader<'a, '_> {
    fn string(&self, part: &Part<'a>, off: u32, at: usize) -> Result<&'a str, BtfError> {
        let err = |message: String| BtfError {
            offset: at as u64,
            in_module: part.in_module,
            message,
        };
        let off = off as usize;
        // A module's offsets below its own base are the base's strings.
        let (holder, local) = match self.parts.first() {
            Some(base) if part.in_module && off < part.str_base => (base, off),
            _ => (
                part,
                off.checked_sub(part.str_base)
                    .ok_or_else(|| err(format!("string offset {off} is negative")))?,
            ),
        };
        let strings = holder.strings();
        let Some(tail) = strings.get(local..) else {
            return Err(err(format!(
                "string offset {off} is past the string section ({} bytes)",
                holder.str_base + strings.len()
            )));
        };
        let Some(end) = tail.iter().position(|&b| b == 0) else {
            return Err(err(format!("string at offset {off} is not terminated")));
        };
        std::str::from_utf8(&tail[..end])
            .map_err(|_| err(format!("string at offset {off} is not UTF-8")))
    }

    fn read_part(&mut self, p: usize) -> Result<(), BtfError> {
        let parts = self.parts;
        let part = &parts[p];
        let blob = part.blob;
        let (mut pos, end) = part.sections.types;
        let err = |offset: usize, message: String| BtfError {
            offset: offset as u64,
            in_module: part.in_module,
            message,
        };
        while pos < end {
            let id = self.nodes.len() as NodeId;
            let rec = pos;
            if end - pos < RECORD_LEN {
                return Err(err(
                    pos,
                    format!(
                        "type id {id}: {} bytes left in the type section, a record needs {RECORD_LEN}",
                        end - pos
                    ),
                ));
            }
            let name_off = u32_at(blob, pos).unwrap_or(0);
            let info = u32_at(blob, pos + 4).unwrap_or(0);
            let size_or_type = u32_at(blob, pos + 8).unwrap_or(0);
            pos += RECORD_LEN;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kflag = info >> 31 == 1;
            let trailer = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                other => {
                    return Err(err(
                        rec + 4,
                        format!("type id {id}: unknown kind {other} (info {info:#010x})"),
                    ))
                }
            };
            if end - pos < trailer {
                return Err(err(
                    rec,
                    format!(
                        "type id {id} (kind {kind}, {vlen} entries) needs {trailer} more bytes, \
                         the type section has {}",
                        end - pos
                    ),
                ));
            }
            let t = pos;
            pos += trailer;
            let name = |r: &Self| r.string(part, name_off, rec);
            let opt_name = |r: &Self| -> Result<Option<&'a str>, BtfError> {
                Ok(Some(name(r)?).filter(|n| !n.is_empty()))
            };
            let node = match kind {
                KIND_INT => {
                    let enc = u32_at(blob, t).unwrap_or(0);
                    let (bits, off) = (enc & 0xff, (enc >> 16) & 0xff);
                    let size = u64::from(size_or_type);
                    if !matches!(size, 1 | 2 | 4 | 8 | 16)
                        || u64::from(bits + off) > size * 8
                        || bits == 0
                    {
                        return Err(err(
                            rec,
                            format!(
                                "type id {id}: integer of {size} bytes with {bits} bits at bit {off}"
                            ),
                        ));
                    }
                    if u64::from(bits) != size * 8 || off != 0 {
                        self.int_bits.insert(id, (bits, off));
                    }
                    Node::Base {
                        name: name(self)?,
                        size,
                    }
                }
                KIND_FLOAT => Node::Base {
                    name: name(self)?,
                    size: u64::from(size_or_type),
                },
                KIND_PTR => {
                    self.refs.push((id, size_or_type, rec + 8));
                    Node::Pointer(size_or_type)
                }
                KIND_ARRAY => {
                    let element = u32_at(blob, t).unwrap_or(0);
                    let index = u32_at(blob, t + 4).unwrap_or(0);
                    self.refs.push((id, element, t));
                    self.refs.push((id, index, t + 4));
                    Node::Array {
                        element,
                        count: u64::from(u32_at(blob, t + 8).unwrap_or(0)),
                    }
                }
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = t + i * 12;
                        let ty = u32_at(blob, m + 4).unwrap_or(0);
                        let raw = u32_at(blob, m + 8).unwrap_or(0);
                        self.refs.push((id, ty, m + 4));
                        let (bit_offset, bit_size) = if kflag {
                            (raw & 0x00ff_ffff, raw >> 24)
                        } else {
                            (raw, 0)
                        };
                        let mname = self.string(part, u32_at(blob, m).unwrap_or(0), m)?;
                        members.push(Member {
                            name: Some(mname).filter(|n| !n.is_empty()),
                            bit_offset: u64::from(bit_offset),
                            bit_size,
                            ty,
                        });
                    }
                    if !kflag {
                        self.plain_structs.push(id);
                    }
                    Node::Aggregate {
                        name: opt_name(self)?,
                        is_union: kind == KIND_UNION,
                        size: u64::from(size_or_type),
                        members,
                        complete: true,
                    }
                }
                KIND_ENUM | KIND_ENUM64 => {
                    let step = if kind == KIND_ENUM { 8 } else { 12 };
                    let mut constants = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let c = t + i * step;
                        let lo = u32_at(blob, c + 4).unwrap_or(0);
                        let value = if kind == KIND_ENUM64 {
                            let hi = u32_at(blob, c + 8).unwrap_or(0);
                            (u64::from(lo) | (u64::from(hi) << 32)) as i64
                        } else if kflag {
                            // kind_flag marks a signed enum (kernel 6.0+).
                            i64::from(lo as i32)
                        } else {
                            i64::from(lo)
                        };
                        if kflag || kind == KIND_ENUM64 {
                            self.signedness_known = true;
                        }
                        let cname = self.string(part, u32_at(blob, c).unwrap_or(0), c)?;
                        constants.push((cname, value));
                    }
                    if kind == KIND_ENUM && !kflag {
                        self.unflagged_enums.push(id);
                    }
                    Node::Enum {
                        name: opt_name(self)?,
                        size: u64::from(size_or_type),
                        constants,
                        // pahole writes `enum foo;` as an enum without values.
                        complete: vlen > 0,
                    }
                }
                KIND_FWD => Node::Aggregate {
                    name: opt_name(self)?,
                    is_union: kflag,
                    size: 0,
                    members: Vec::new(),
                    complete: false,
                },
                KIND_TYPEDEF => {
                    self.refs.push((id, size_or_type, rec + 8));
                    Node::Typedef {
                        name: name(self)?,
                        target: size_or_type,
                    }
                }
                KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    self.refs.push((id, size_or_type, rec + 8));
                    Node::Qualified(size_or_type)
                }
                KIND_FUNC_PROTO => Node::Function,
                _ => Node::Other,
            };
            self.nodes.push(node);
            self.record_at.push(rec as u32);
            if self.nodes.len() > u32::MAX as usize / 2 {
                return Err(err(rec, "too many types".into()));
            }
        }
        Ok(())
    }
}

/// Parse a base blob and, for split BTF, a module blob on top of it.
pub(crate) fn parse<'a>(base: &'a [u8], module: Option<&'a [u8]>) -> Result<Parsed<'a>, BtfError> {
    let base_sections = header(base, false)?;
    let mut parts = vec![Part {
        blob: base,
        sections: base_sections,
        str_base: 0,
        in_module: false,
    }];
    if let Some(m) = module {
        let s = header(m, true)?;
        parts.push(Part {
            blob: m,
            sections: s,
            str_base: base_sections.strings.1 - base_sections.strings.0,
            in_module: true,
        });
    }
    let mut r = Reader {
        parts: &parts,
        nodes: vec![Node::Void],
        record_at: vec![0],
        int_bits: HashMap::new(),
        plain_structs: Vec::new(),
        unflagged_enums: Vec::new(),
        signedness_known: false,
        refs: Vec::new(),
    };
    r.read_part(0)?;
    let base_len = r.nodes.len() as NodeId;
    let mut own = 0..base_len;
    if module.is_some() {
        // Checked apart so a base's reference cannot name module types.
        check_refs(&r.refs, base_len, false)?;
        r.refs.clear();
        r.read_part(1)?;
        own = base_len..r.nodes.len() as NodeId;
    }
    check_refs(&r.refs, r.nodes.len() as NodeId, module.is_some())?;
    if !r.signedness_known {
        for id in std::mem::take(&mut r.unflagged_enums) {
            if let Some(Node::Enum { constants, .. }) = r.nodes.get_mut(id as usize) {
                for (_, v) in constants.iter_mut() {
                    *v = i64::from(*v as u32 as i32);
                }
            }
        }
    }
    // The older bitfield encoding: a member of a struct without kind_flag
    // whose type is an INT narrower than its size (or shifted in it).
    for id in std::mem::take(&mut r.plain_structs) {
        if let Some(Node::Aggregate { members, .. }) = r.nodes.get(id as usize) {
            let fixes: Vec<(usize, u32, u32)> = members
                .iter()
                .enumerate()
                .filter_map(|(i, m)| r.int_bits.get(&m.ty).map(|&(b, o)| (i, b, o)))
                .collect();
            if let Some(Node::Aggregate { members, .. }) = r.nodes.get_mut(id as usize) {
                for (i, bits, off) in fixes {
                    members[i].bit_offset += u64::from(off);
                    members[i].bit_size = bits;
                }
            }
        }
    }
    Ok(Parsed {
        graph: Graph { nodes: r.nodes },
        own,
        record_at: r.record_at,
        base_len: if module.is_some() { base_len } else { 0 },
    })
}

fn check_refs(
    refs: &[(NodeId, NodeId, usize)],
    count: NodeId,
    in_module: bool,
) -> Result<(), BtfError> {
    for &(from, to, at) in refs {
        if to >= count {
            return Err(BtfError {
                offset: at as u64,
                in_module,
                message: format!(
                    "type id {from} refers to type id {to}, past the last type {}",
                    count - 1
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny BTF writer for tests: (kind, kind_flag, vlen, name, size_or_type, trailer words).
    #[derive(Default)]
    pub(crate) struct BtfWriter {
        pub types: Vec<u8>,
        pub strings: Vec<u8>,
    }

    impl BtfWriter {
        pub(crate) fn new() -> BtfWriter {
            BtfWriter {
                types: Vec::new(),
                strings: vec![0],
            }
        }
        pub(crate) fn s(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }
        pub(crate) fn ty(
            &mut self,
            kind: u32,
            kflag: bool,
            vlen: u32,
            name: &str,
            st: u32,
            trailer: &[u32],
        ) {
            let n = self.s(name);
            let info = (kind << 24) | vlen | if kflag { 1 << 31 } else { 0 };
            for w in [n, info, st].iter().chain(trailer) {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
        }
        pub(crate) fn finish(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_le_bytes());
            out.push(1);
            out.push(0);
            for w in [
                24u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    #[test]
    fn enum_values_follow_kind_flag_and_enum64() {
        let mut w = BtfWriter::new();
        // id 1: signed 32-bit enum, id 2: unsigned, id 3: ENUM64.
        let (a, b, c) = (w.s("A"), w.s("B"), w.s("C"));
        w.ty(KIND_ENUM, true, 1, "s", 4, &[a, (-5i32) as u32]);
        w.ty(KIND_ENUM, false, 1, "u", 4, &[b, 0xffff_fff0]);
        w.ty(
            KIND_ENUM64,
            false,
            1,
            "big",
            8,
            &[c, 0x9abc_def0, 0x1234_5678],
        );
        let blob = w.finish();
        let p = parse(&blob, None).unwrap();
        let value = |id: usize| match &p.graph.nodes[id] {
            Node::Enum { constants, .. } => constants[0].1,
            other => panic!("{other:?}"),
        };
        assert_eq!(value(1), -5);
        assert_eq!(value(2), 0xffff_fff0);
        assert_eq!(value(3), 0x1234_5678_9abc_def0);
        // Without any sign of signedness support, 32-bit values are signed.
        let mut w = BtfWriter::new();
        let b = w.s("B");
        w.ty(KIND_ENUM, false, 1, "u", 4, &[b, 0xffff_fff0]);
        let blob = w.finish();
        let p = parse(&blob, None).unwrap();
        assert!(matches!(&p.graph.nodes[1], Node::Enum { constants, .. } if constants[0].1 == -16));
    }

    #[test]
    fn split_btf_continues_the_base_ids_and_strings() {
        let mut base = BtfWriter::new();
        base.ty(KIND_INT, false, 0, "int", 4, &[32]);
        let base_blob = base.finish();
        // The module's strings start after the base's.
        let mut m = BtfWriter::new();
        m.strings = b"\0x\0s\0".to_vec();
        let x = base.strings.len() as u32 + 1;
        let s = x + 2;
        // id 2: struct s { int x; } using the base's int (id 1).
        let info = (KIND_STRUCT << 24) | 1;
        for word in [s, info, 4, x, 1, 0] {
            m.types.extend_from_slice(&word.to_le_bytes());
        }
        let module_blob = m.finish();
        let p = parse(&base_blob, Some(&module_blob)).unwrap();
        assert_eq!(p.own, 2..3);
        match &p.graph.nodes[2] {
            Node::Aggregate { name, members, .. } => {
                assert_eq!(*name, Some("s"));
                assert_eq!((members[0].name, members[0].ty), (Some("x"), 1));
            }
            other => panic!("{other:?}"),
        }
        // A module reference past its own types is refused.
        let mut bad = module_blob.clone();
        let at = 24 + 16;
        bad[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
        let e = parse(&base_blob, Some(&bad)).unwrap_err();
        assert!(e.in_module && e.message.contains("type id 9"), "{e:?}");
    }

    #[test]
    fn a_type_that_cannot_be_read_is_left_out_and_noted() {
        let mut w = BtfWriter::new();
        // 1 int; 2 typedef a -> 3; 3 typedef b -> 2 (a cycle);
        // 4 struct bad { a x; }; 5 struct good { int y; }.
        w.ty(KIND_INT, false, 0, "int", 4, &[32]);
        w.ty(KIND_TYPEDEF, false, 0, "a", 3, &[]);
        w.ty(KIND_TYPEDEF, false, 0, "b", 2, &[]);
        let x = w.s("x");
        w.ty(KIND_STRUCT, false, 1, "bad", 4, &[x, 2, 0]);
        let y = w.s("y");
        w.ty(KIND_STRUCT, false, 1, "good", 4, &[y, 1, 0]);
        let t = crate::SymbolTable::from_btf(&w.finish(), vec![], "cyclic").unwrap();
        assert_eq!(t.field("good", "y").map(|f| f.offset), Some(0));
        assert!(!t.has_type("bad"));
        let notes = t.notes();
        assert!(notes[0].starts_with("3 type(s) left out"), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("type id 4")), "{notes:?}");
        let again = crate::SymbolTable::from_compact_bytes(t.compact_bytes().to_vec()).unwrap();
        assert_eq!(again.notes(), notes);
    }

    #[test]
    fn header_faults_name_their_offset() {
        let good = BtfWriter::new().finish();
        assert!(parse(&good, None).is_ok());
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(parse(&bad, None).unwrap_err().offset, 0);
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&1000u32.to_le_bytes());
        let e = parse(&bad, None).unwrap_err();
        assert_eq!(e.offset, 16, "{e:?}");
        assert!(parse(&good[..10], None).is_err());
    }

    #[test]
    fn bad_type_ids_and_strings_are_refused() {
        let mut w = BtfWriter::new();
        w.ty(KIND_PTR, false, 0, "", 7, &[]);
        let e = parse(&w.finish(), None).unwrap_err();
        assert!(e.message.contains("type id 7"), "{e:?}");
        assert_eq!(e.offset, 24 + 8);
        let mut w = BtfWriter::new();
        w.ty(KIND_TYPEDEF, false, 0, "", 0, &[]);
        w.types[0..4].copy_from_slice(&999u32.to_le_bytes());
        let e = parse(&w.finish(), None).unwrap_err();
        assert!(e.message.contains("string offset 999"), "{e:?}");
        let mut w = BtfWriter::new();
        w.ty(KIND_STRUCT, false, 3, "s", 8, &[0, 0]);
        let e = parse(&w.finish(), None).unwrap_err();
        assert!(e.message.contains("needs 36 more bytes"), "{e:?}");
        let mut w = BtfWriter::new();
        w.ty(25, false, 0, "", 0, &[]);
        assert!(parse(&w.finish(), None)
            .unwrap_err()
            .message
            .contains("unknown kind 25"));
    }
}
