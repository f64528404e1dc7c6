//! A vmlinux (ELF) read into the model: types from its DWARF with `gimli`
//! (else from its `.BTF` section), symbols from `.symtab`.
//!
//! DWARF is read one compilation unit at a time: each unit's type entries
//! become a small [`Graph`] (only what a field's type can be: base types,
//! pointers, arrays, structs, unions, enums, typedefs, qualifiers,
//! function types), which the shared converter in `graph.rs` adds to the
//! model before the next unit is read, so memory holds one unit's types
//! plus the model, never the whole program's DIE tree. The first complete
//! definition of a name wins in DIE order, and a unit's repeated
//! definitions are not converted at all.

use std::borrow::Cow;
use std::path::Path;

use gimli::{constants, AttributeValue, EndianSlice, LittleEndian, UnitOffset};
use object::{CompressionFormat, Object, ObjectSection, ObjectSymbol};

use crate::error::{Error, ErrorKind, Location};
use crate::graph::{Graph, Member, ModelBuilder, Node, NodeId};
use crate::model::Model;

type R<'a> = EndianSlice<'a, LittleEndian>;

/// The DWARF sections this reader uses (gimli reads each unit's line
/// program header when it opens the unit).
/// Most bytes one compressed byte can stand for: deflate's limit (a
/// 258-byte match per two bits, about 1032:1) and zstd's (a 128 KiB RLE
/// block from a 4-byte block, 32768:1). A section header claiming more is
/// damage, refused before its size is allocated.
const MAX_EXPANSION_ZLIB: u64 = 1032;
const MAX_EXPANSION_ZSTD: u64 = 32768;
/// Slack for the compressed stream's own headers.
const EXPANSION_SLACK: u64 = 4096;

const SECTIONS: &[&str] = &[
    ".debug_info",
    ".debug_line",
    ".debug_abbrev",
    ".debug_str",
    ".debug_line_str",
    ".debug_str_offsets",
];

/// What an ELF file offers, for the caller to pick a type source.
pub(crate) struct Elf<'a> {
    file: object::File<'a>,
    path: &'a Path,
}

fn format_err(path: &Path, message: impl Into<String>) -> Error {
    Error::format(path, message)
}

impl<'a> Elf<'a> {
    pub(crate) fn parse(data: &'a [u8], path: &'a Path) -> Result<Elf<'a>, Error> {
        let file = object::File::parse(data)
            .map_err(|e| format_err(path, format!("not a readable ELF file: {e}")))?;
        if file.kind() == object::ObjectKind::Relocatable {
            return Err(format_err(
                path,
                "a relocatable object (.o, .ko): its DWARF needs relocating, which this reader \
                 does not do; give the linked vmlinux (a module's types come from its BTF)",
            ));
        }
        if !file.is_little_endian() || !file.is_64() {
            return Err(format_err(
                path,
                "only 64-bit little-endian (x86-64) kernels are read",
            ));
        }
        Ok(Elf { file, path })
    }

    fn section(&self, name: &str) -> Result<Option<Cow<'a, [u8]>>, Error> {
        let Some(s) = self.file.section_by_name(name) else {
            return Ok(None);
        };
        let err = |message: String| {
            Error::at(
                ErrorKind::Format { message },
                Location {
                    path: Some(self.path.to_path_buf()),
                    offset: s.file_range().map(|(o, _)| o),
                    record: None,
                },
            )
        };
        let c = s
            .compressed_data()
            .map_err(|e| err(format!("section {name}: {e}")))?;
        // The decompressor allocates (and zeroes) the size the header
        // claims before reading a byte: check the claim against what the
        // format can expand to first.
        let ratio = match c.format {
            CompressionFormat::Zlib => Some(MAX_EXPANSION_ZLIB),
            CompressionFormat::Zstandard => Some(MAX_EXPANSION_ZSTD),
            _ => None,
        };
        if let Some(ratio) = ratio {
            let most = (c.data.len() as u64)
                .saturating_mul(ratio)
                .saturating_add(EXPANSION_SLACK);
            if c.uncompressed_size > most {
                return Err(err(format!(
                    "section {name} claims {} bytes uncompressed from {} compressed ({:?}), more than that format expands to: the file is damaged",
                    c.uncompressed_size,
                    c.data.len(),
                    c.format
                )));
            }
        }
        c.decompress()
            .map(Some)
            .map_err(|e| err(format!("section {name}: {e}")))
    }

    /// Whether the file has DWARF type information.
    pub(crate) fn has_dwarf(&self) -> bool {
        self.file
            .section_by_name(".debug_info")
            .is_some_and(|s| s.size() > 0)
    }

    /// The `.BTF` section, if any.
    pub(crate) fn btf(&self) -> Result<Option<Cow<'a, [u8]>>, Error> {
        self.section(".BTF")
    }

    /// Defined functions, objects and untyped labels from `.symtab`, at
    /// their link-time addresses (names repeat: static functions).
    pub(crate) fn symbols(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for sym in self.file.symbols() {
            if sym.is_undefined() {
                continue;
            }
            if !matches!(
                sym.kind(),
                object::SymbolKind::Text
                    | object::SymbolKind::Data
                    | object::SymbolKind::Label
                    | object::SymbolKind::Unknown
            ) {
                continue;
            }
            match sym.name() {
                Ok(n) if !n.is_empty() => out.push((n.to_string(), sym.address())),
                _ => {}
            }
        }
        out
    }

    /// Types from the DWARF, one unit at a time.
    pub(crate) fn dwarf_model(&self) -> Result<Model, Error> {
        let mut owned: Vec<Cow<'a, [u8]>> = Vec::new();
        for name in SECTIONS {
            owned.push(self.section(name)?.unwrap_or(Cow::Borrowed(&[])));
        }
        let get = |name: &str| -> R<'_> {
            let i = SECTIONS.iter().position(|s| *s == name);
            EndianSlice::new(i.map_or(&[][..], |i| &owned[i]), LittleEndian)
        };
        let dwarf = gimli::Dwarf::load(|id: gimli::SectionId| -> Result<R<'_>, Error> {
            Ok(get(id.name()))
        })?;
        let info_offset = self
            .file
            .section_by_name(".debug_info")
            .and_then(|s| s.file_range())
            .map_or(0, |(o, _)| o);
        let at = |off: u64, e: gimli::Error| {
            Error::at(
                ErrorKind::Format {
                    message: format!("DWARF: {e}"),
                },
                Location {
                    path: Some(self.path.to_path_buf()),
                    offset: Some(info_offset + off),
                    record: Some(format!(".debug_info offset {off:#x}")),
                },
            )
        };
        let mut builder = ModelBuilder::default();
        let mut units = dwarf.units();
        let mut unit_start = 0u64;
        loop {
            let header = match units.next() {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => return Err(at(unit_start, e)),
            };
            unit_start = header
                .offset()
                .as_debug_info_offset()
                .map_or(unit_start, |o| o.0 as u64);
            let unit = dwarf.unit(header).map_err(|e| at(unit_start, e))?;
            let graph =
                unit_graph(&dwarf, &unit, &builder).map_err(|(off, e)| at(unit_start + off, e))?;
            for id in 0..graph.nodes.len() as NodeId {
                builder.add_node_or_note(&graph, id, || {
                    format!(".debug_info unit at {unit_start:#x}")
                });
            }
        }
        Ok(builder.finish())
    }
}

impl From<gimli::Error> for Error {
    fn from(e: gimli::Error) -> Error {
        Error::new(ErrorKind::Format {
            message: format!("DWARF: {e}"),
        })
    }
}

/// A member as DWARF describes it, before the unit's type sizes are known
/// (the old bitfield form counts bits from the storage unit's top).
struct RawMember<'a> {
    name: Option<&'a str>,
    ty: Option<UnitOffset>,
    byte_offset: Option<u64>,
    data_bit_offset: Option<u64>,
    bit_offset: Option<i64>,
    bit_size: Option<u64>,
    byte_size: Option<u64>,
}

/// A value read from an entry, as much as this reader needs of one.
#[derive(Default)]
struct Attrs<'a> {
    name: Option<&'a str>,
    ty: Option<UnitOffset>,
    byte_size: Option<u64>,
    declaration: bool,
    member_location: Option<u64>,
    data_bit_offset: Option<u64>,
    /// Negative for a packed bitfield that starts below its unit.
    bit_offset: Option<i64>,
    bit_size: Option<u64>,
    count: Option<u64>,
    upper_bound: Option<i128>,
    lower_bound: Option<i128>,
    const_value: Option<(i128, Option<u8>)>,
}

/// What each kept entry becomes once the unit is read.
enum Pending<'a> {
    Done,
    Aggregate {
        members: Vec<RawMember<'a>>,
    },
    /// Enumerators. Fixed-size forms are unsigned: gcc writes negative
    /// values as `DW_FORM_sdata` and others (even 0x80 in a signed enum)
    /// as the smallest `DW_FORM_dataN`; clang writes sdata or udata.
    Enum {
        values: Vec<(&'a str, i128)>,
    },
    Array {
        element: Option<UnitOffset>,
        counts: Vec<u64>,
    },
    /// Pointer, typedef or qualifier to resolve.
    Ref(Option<UnitOffset>),
}

fn unit_graph<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &gimli::Unit<R<'a>>,
    done: &ModelBuilder,
) -> Result<Graph<'a>, (u64, gimli::Error)> {
    let mut nodes: Vec<Node<'a>> = Vec::new();
    let mut pending: Vec<Pending<'a>> = Vec::new();
    let mut offsets: Vec<usize> = Vec::new();
    // Open entries by depth: (depth, node index) of kept containers.
    let mut stack: Vec<(isize, usize)> = Vec::new();
    let mut entries = unit.entries_raw(None).map_err(|e| (0, e))?;
    let mut skip_below: Option<isize> = None;
    while !entries.is_empty() {
        let off = entries.next_offset();
        let depth = entries.next_depth();
        let err = |e| (off.0 as u64, e);
        let Some(abbrev) = entries.read_abbreviation().map_err(err)? else {
            continue;
        };
        while stack.last().is_some_and(|&(d, _)| d >= depth) {
            stack.pop();
        }
        if skip_below.is_some_and(|d| depth > d) {
            entries.skip_attributes(abbrev.attributes()).map_err(err)?;
            continue;
        }
        skip_below = None;
        let tag = abbrev.tag();
        let kept = matches!(
            tag,
            constants::DW_TAG_base_type
                | constants::DW_TAG_unspecified_type
                | constants::DW_TAG_pointer_type
                | constants::DW_TAG_reference_type
                | constants::DW_TAG_rvalue_reference_type
                | constants::DW_TAG_array_type
                | constants::DW_TAG_subrange_type
                | constants::DW_TAG_structure_type
                | constants::DW_TAG_class_type
                | constants::DW_TAG_union_type
                | constants::DW_TAG_member
                | constants::DW_TAG_enumeration_type
                | constants::DW_TAG_enumerator
                | constants::DW_TAG_typedef
                | constants::DW_TAG_const_type
                | constants::DW_TAG_volatile_type
                | constants::DW_TAG_restrict_type
                | constants::DW_TAG_atomic_type
                | constants::DW_TAG_subroutine_type
        );
        if !kept {
            entries.skip_attributes(abbrev.attributes()).map_err(err)?;
            continue;
        }
        let mut a = Attrs::default();
        for spec in abbrev.attributes() {
            let attr = entries.read_attribute(*spec).map_err(err)?;
            read_attr(dwarf, unit, &attr, &mut a);
        }
        // Only a direct child belongs to a kept container (a member of
        // something this reader skips is not the outer struct's).
        let parent = stack
            .last()
            .filter(|&&(d, _)| d + 1 == depth)
            .map(|&(_, i)| i);
        match tag {
            constants::DW_TAG_member => {
                if let Some(Pending::Aggregate { members }) = parent.map(|p| &mut pending[p]) {
                    if a.declaration {
                        continue;
                    }
                    members.push(RawMember {
                        name: a.name,
                        ty: a.ty,
                        byte_offset: a.member_location,
                        data_bit_offset: a.data_bit_offset,
                        bit_offset: a.bit_offset,
                        bit_size: a.bit_size,
                        byte_size: a.byte_size,
                    });
                }
                continue;
            }
            constants::DW_TAG_enumerator => {
                if let Some(Pending::Enum { values, .. }) = parent.map(|p| &mut pending[p]) {
                    if let (Some(n), Some((v, _))) = (a.name, a.const_value) {
                        values.push((n, v));
                    }
                }
                continue;
            }
            constants::DW_TAG_subrange_type => {
                if let Some(Pending::Array { counts, .. }) = parent.map(|p| &mut pending[p]) {
                    counts.push(subrange_count(&a));
                }
                continue;
            }
            _ => {}
        }
        let index = nodes.len();
        let ty = a.ty;
        let (node, p) = match tag {
            constants::DW_TAG_base_type => (
                Node::Base {
                    name: a.name.unwrap_or("<unnamed base type>"),
                    size: a.byte_size.unwrap_or(0),
                },
                Pending::Done,
            ),
            constants::DW_TAG_unspecified_type => (Node::Void, Pending::Done),
            constants::DW_TAG_structure_type
            | constants::DW_TAG_class_type
            | constants::DW_TAG_union_type => {
                let complete = !a.declaration;
                // A unit's repeat of a type already converted is neither
                // read nor converted: the first definition wins anyway.
                let size = a.byte_size.unwrap_or(0);
                let known = complete
                    && a.name
                        .is_some_and(|n| done.user_type_size(n).is_some_and(|s| s >= size));
                if known {
                    skip_below = Some(depth);
                }
                (
                    Node::Aggregate {
                        name: a.name,
                        is_union: tag == constants::DW_TAG_union_type,
                        size: a.byte_size.unwrap_or(0),
                        members: Vec::new(),
                        complete,
                    },
                    if known {
                        Pending::Done
                    } else {
                        Pending::Aggregate {
                            members: Vec::new(),
                        }
                    },
                )
            }
            constants::DW_TAG_enumeration_type => {
                let complete = !a.declaration;
                (
                    Node::Enum {
                        name: a.name,
                        size: a.byte_size.unwrap_or(4),
                        constants: Vec::new(),
                        complete,
                    },
                    Pending::Enum { values: Vec::new() },
                )
            }
            constants::DW_TAG_array_type => (
                Node::Array {
                    element: 0,
                    count: 0,
                },
                Pending::Array {
                    element: ty,
                    counts: Vec::new(),
                },
            ),
            constants::DW_TAG_subroutine_type => {
                skip_below = Some(depth);
                (Node::Function, Pending::Done)
            }
            constants::DW_TAG_typedef => (
                Node::Typedef {
                    name: a.name.unwrap_or("<unnamed typedef>"),
                    target: 0,
                },
                Pending::Ref(ty),
            ),
            constants::DW_TAG_pointer_type
            | constants::DW_TAG_reference_type
            | constants::DW_TAG_rvalue_reference_type => (Node::Pointer(0), Pending::Ref(ty)),
            _ => {
                // const, volatile, restrict, _Atomic
                (Node::Qualified(0), Pending::Ref(ty))
            }
        };
        nodes.push(node);
        pending.push(p);
        offsets.push(off.0);
        if abbrev.has_children() {
            stack.push((depth, index));
        }
    }
    Ok(finish_graph(nodes, pending, &offsets))
}

/// Node ids in a unit graph: `void`, an unknown type (a reference this
/// reader could not follow), then the unit's entries in offset order.
const VOID: NodeId = 0;
const UNKNOWN: NodeId = 1;
const FIRST: NodeId = 2;
/// A reference outside the unit: no entry has this offset, so it resolves
/// to the unknown type.
const FOREIGN: UnitOffset = UnitOffset(usize::MAX);

/// Resolve the references of a unit's entries into a graph.
fn finish_graph<'a>(
    entries: Vec<Node<'a>>,
    pending: Vec<Pending<'a>>,
    offsets: &[usize],
) -> Graph<'a> {
    // Entries are read in offset order, so `offsets` is sorted.
    let find = |r: UnitOffset| -> Option<NodeId> {
        offsets
            .binary_search(&r.0)
            .ok()
            .map(|i| i as NodeId + FIRST)
    };
    let resolve = |r: Option<UnitOffset>| r.map_or(VOID, |o| find(o).unwrap_or(UNKNOWN));
    let mut nodes: Vec<Node<'a>> = Vec::with_capacity(entries.len() + 2);
    nodes.push(Node::Void);
    nodes.push(Node::Base {
        name: "<unknown type>",
        size: 0,
    });
    nodes.extend(entries);
    let mut aggregates: Vec<(usize, Vec<RawMember<'a>>)> = Vec::new();
    for (i, p) in pending.into_iter().enumerate() {
        let id = i + FIRST as usize;
        match p {
            Pending::Done => {}
            Pending::Ref(r) => {
                let t = resolve(r);
                match &mut nodes[id] {
                    Node::Typedef { target, .. }
                    | Node::Pointer(target)
                    | Node::Qualified(target) => *target = t,
                    _ => {}
                }
            }
            Pending::Array { element, counts } => {
                // `int a[2][3]` is one entry with two subranges, outer first.
                let mut el = resolve(element);
                let (outer, inner) = counts.split_first().map_or((0, &[][..]), |(o, i)| (*o, i));
                for &c in inner.iter().rev() {
                    nodes.push(Node::Array {
                        element: el,
                        count: c,
                    });
                    el = (nodes.len() - 1) as NodeId;
                }
                nodes[id] = Node::Array {
                    element: el,
                    count: outer,
                };
            }
            Pending::Enum { values } => {
                if let Node::Enum { constants, .. } = &mut nodes[id] {
                    *constants = values.into_iter().map(|(n, v)| (n, v as i64)).collect();
                }
            }
            Pending::Aggregate { members } => aggregates.push((id, members)),
        }
    }
    // Members last: the old bitfield form needs their types' sizes.
    let mut graph = Graph { nodes };
    for (id, raw) in aggregates {
        let members: Vec<Member<'a>> = raw
            .into_iter()
            .map(|m| {
                let ty = resolve(m.ty);
                let bit_size = m.bit_size.unwrap_or(0).min(u64::from(u32::MAX)) as u32;
                let bit_offset = member_bit_offset(&graph, &m, ty, bit_size);
                Member {
                    name: m.name,
                    bit_offset,
                    bit_size,
                    ty,
                }
            })
            .collect();
        if let Some(Node::Aggregate { members: slot, .. }) = graph.nodes.get_mut(id) {
            *slot = members;
        }
    }
    graph
}

/// A member's first bit from the start of its parent. DWARF 4 and later
/// say it (`DW_AT_data_bit_offset`) or give a byte offset; DWARF 2 and 3
/// bitfields count `DW_AT_bit_offset` from the most significant bit of a
/// storage unit of `DW_AT_byte_size` (else the type's size) at the byte
/// offset, which on a little-endian machine is
/// `unit_start*8 + unit_bits - bit_offset - bit_size`.
fn member_bit_offset(graph: &Graph<'_>, m: &RawMember<'_>, ty: NodeId, bit_size: u32) -> u64 {
    if let Some(b) = m.data_bit_offset {
        return b;
    }
    let base = m.byte_offset.unwrap_or(0).saturating_mul(8);
    match m.bit_offset {
        Some(msb) if bit_size > 0 => {
            let unit_bits = m
                .byte_size
                .or_else(|| graph.size_of(ty).ok())
                .unwrap_or(0)
                .saturating_mul(8);
            let lsb =
                i128::from(base) + i128::from(unit_bits) - i128::from(msb) - i128::from(bit_size);
            u64::try_from(lsb).unwrap_or(0)
        }
        _ => base,
    }
}

/// Element count of a subrange: `DW_AT_count`, else upper minus lower
/// bound plus one; none (a flexible array) or an upper bound of -1 (`[0]`)
/// is 0.
fn subrange_count(a: &Attrs<'_>) -> u64 {
    if let Some(c) = a.count {
        return c;
    }
    match a.upper_bound {
        Some(u) if u >= 0 => {
            let n = u - a.lower_bound.unwrap_or(0) + 1;
            u64::try_from(n.max(0)).unwrap_or(0)
        }
        _ => 0,
    }
}

/// An unsigned constant and its width when the form has a fixed one.
fn constant(v: &AttributeValue<R<'_>>) -> Option<(i128, Option<u8>)> {
    Some(match *v {
        AttributeValue::Data1(x) => (i128::from(x), Some(1)),
        AttributeValue::Data2(x) => (i128::from(x), Some(2)),
        AttributeValue::Data4(x) => (i128::from(x), Some(4)),
        AttributeValue::Data8(x) => (i128::from(x), Some(8)),
        AttributeValue::Sdata(x) => (i128::from(x), None),
        AttributeValue::Udata(x) => (i128::from(x), None),
        _ => return None,
    })
}

/// A bound: fixed-size forms are unsigned, except all ones in 4 or 8
/// bytes, which is how compilers write -1.
fn bound(v: &AttributeValue<R<'_>>) -> Option<i128> {
    let (x, width) = constant(v)?;
    Some(match (width, v) {
        (Some(4), _) if x == i128::from(u32::MAX) => -1,
        (Some(8), _) if x == i128::from(u64::MAX) => -1,
        _ => x,
    })
}

/// `DW_AT_data_member_location` as a constant, or the DWARF 2 expression
/// `DW_OP_plus_uconst N` (or `DW_OP_constu N`).
fn member_location(v: &AttributeValue<R<'_>>) -> Option<u64> {
    if let AttributeValue::Exprloc(e) = v {
        let mut r = e.0;
        let op = gimli::Reader::read_u8(&mut r).ok()?;
        if op == constants::DW_OP_plus_uconst.0 || op == constants::DW_OP_constu.0 {
            let n = gimli::Reader::read_uleb128(&mut r).ok()?;
            return gimli::Reader::is_empty(&r).then_some(n);
        }
        return None;
    }
    v.udata_value()
}

fn read_attr<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &gimli::Unit<R<'a>>,
    attr: &gimli::Attribute<R<'a>>,
    a: &mut Attrs<'a>,
) {
    let v = attr.value();
    match attr.name() {
        constants::DW_AT_name => {
            a.name = dwarf
                .attr_string(unit, v)
                .ok()
                .map(|s| std::str::from_utf8(s.slice()).unwrap_or("<name not UTF-8>"));
        }
        constants::DW_AT_type => match v {
            AttributeValue::UnitRef(o) => a.ty = Some(o),
            AttributeValue::DebugInfoRef(o) => match o.to_unit_offset(&unit.header) {
                Some(u) => a.ty = Some(u),
                None => a.ty = Some(FOREIGN),
            },
            // A reference this reader cannot follow (another unit, a
            // type unit): the type is unknown rather than guessed.
            _ => a.ty = Some(FOREIGN),
        },
        constants::DW_AT_byte_size => a.byte_size = v.udata_value(),
        constants::DW_AT_declaration => a.declaration = matches!(v, AttributeValue::Flag(true)),
        constants::DW_AT_data_member_location => a.member_location = member_location(&v),
        constants::DW_AT_data_bit_offset => a.data_bit_offset = v.udata_value(),
        constants::DW_AT_bit_offset => a.bit_offset = constant(&v).map(|(x, _)| x as i64),
        constants::DW_AT_bit_size => a.bit_size = v.udata_value(),
        constants::DW_AT_count => a.count = v.udata_value(),
        constants::DW_AT_upper_bound => a.upper_bound = bound(&v),
        constants::DW_AT_lower_bound => a.lower_bound = bound(&v),
        constants::DW_AT_const_value => a.const_value = constant(&v),
        _ => {}
    }
}

/// Load a vmlinux: DWARF types when it has them, else its `.BTF`; symbols
/// from `.symtab`. Returns the model and a description of the type source.
pub(crate) fn load_vmlinux(path: &Path, data: &[u8]) -> Result<Model, Error> {
    let elf = Elf::parse(data, path)?;
    let (mut model, origin) = if elf.has_dwarf() {
        (elf.dwarf_model()?, format!("DWARF of {}", path.display()))
    } else if let Some(btf) = elf.btf()? {
        let parsed = crate::btf::parse(&btf, None).map_err(|e| {
            Error::at(
                ErrorKind::Btf { message: e.message },
                Location {
                    path: Some(path.to_path_buf()),
                    offset: Some(e.offset),
                    record: Some(".BTF section".into()),
                },
            )
        })?;
        let mut b = ModelBuilder::default();
        for id in parsed.own.clone() {
            b.add_node_or_note(&parsed.graph, id, || format!(".BTF type id {id}"));
        }
        (b.finish(), format!(".BTF section of {}", path.display()))
    } else {
        return Err(format_err(
            path,
            "no DWARF (.debug_info) and no .BTF section: this vmlinux has no type              information (use the debug vmlinux, e.g. Debian's linux-image-<release>-dbg              /usr/lib/debug/boot/vmlinux-<release>)",
        ));
    };
    model.symbols = elf.symbols();
    model.keep_duplicate_symbols = true;
    model.origin = Some(origin);
    Ok(model)
}
