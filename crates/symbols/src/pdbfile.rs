//! Microsoft PDB files through the `pdb` crate: TPI types, public and
//! global symbols, and the identity symbol servers index by.
//!
//! Names and kinds follow Volatility's pdbconv, so a PDB and the ISF made
//! from it answer every lookup the same way.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use pdb::{FallibleIterator, TypeData, TypeIndex};

use crate::error::{Error, ErrorKind, Location};
use crate::model::{strip_linkage_name, Model, X64_BASE_TYPES};
use crate::{Enumeration, Field, PdbIdentity, TypeRef, UserType};

/// Bound on field-list continuation chains (`LF_INDEX`) per type.
const MAX_CONTINUATIONS: usize = 4096;
/// Bound on type nesting followed when resolving one field's type.
const MAX_DEPTH: u32 = 64;
/// Bound on type records read (real kernels have about 200 000).
const MAX_TYPES: usize = 4_000_000;
/// Bound on symbol records read.
const MAX_SYMBOLS: usize = 16_000_000;

fn pdb_err(path: &Path, what: &str, e: pdb::Error) -> Error {
    Error::at(
        ErrorKind::Pdb {
            message: format!("{what}: {e}"),
        },
        Location::file(path),
    )
}

/// The ISF base-type name of a CodeView primitive type's low byte
/// (pdbconv's table; the few it lacks get the same-sized integer).
fn primitive_name(kind: u32) -> &'static str {
    match kind & 0xFF {
        0x03 | 0x00 => "void",
        0x08 => "HRESULT",
        0x10 | 0x70 => "char",
        0x20 => "unsigned char",
        0x68 => "int8",
        0x69 => "uint8",
        0x71 => "wchar",
        0x7a => "unsigned short",
        0x7b => "unsigned int",
        0x11 | 0x72 => "short",
        0x21 | 0x73 => "unsigned short",
        0x12 => "long",
        0x22 => "unsigned long",
        0x74 => "int",
        0x75 => "unsigned int",
        0x13 | 0x76 => "long long",
        0x23 | 0x77 => "unsigned long long",
        0x14 | 0x78 => "int128",
        0x24 | 0x79 => "uint128",
        0x46 => "f16",
        0x40 => "f32",
        0x45 => "f32pp",
        0x44 => "f48",
        0x41 => "double",
        0x42 => "f80",
        0x43 => "f128",
        0x30 => "bool",
        0x31 => "unsigned short",
        0x32 => "unsigned int",
        0x33 => "unsigned long long",
        _ => "void",
    }
}

fn base_size(name: &str) -> u64 {
    X64_BASE_TYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, s)| *s)
}

/// pdbconv names anonymous types after their type index.
fn type_name(raw: &str, index: TypeIndex) -> String {
    for tag in ["unnamed", "anonymous"] {
        if raw == format!("<{tag}-tag>") || raw == format!("__{tag}") {
            return format!("__{tag}_{:x}", index.0);
        }
    }
    raw.to_string()
}

struct Types<'t> {
    /// Parsed records by `index - first`; `None` where parsing failed.
    items: Vec<Option<TypeData<'t>>>,
    first: u32,
    /// Definition (non-forward) of each struct/union/enum name: last wins.
    defs: HashMap<String, u32>,
    /// Raw LF_FIELDLIST records, read by `parse_field_list`.
    field_lists: RawFieldLists,
}

impl<'t> Types<'t> {
    fn get(&self, ti: TypeIndex) -> Option<&TypeData<'t>> {
        let i = ti.0.checked_sub(self.first)? as usize;
        self.items.get(i)?.as_ref()
    }

    fn name_of(&self, ti: TypeIndex, raw: &pdb::RawString<'_>) -> String {
        type_name(&raw.to_string(), ti)
    }

    /// Size in bytes of a type, resolving forward references by name.
    fn size_of(&self, ti: TypeIndex, depth: u32) -> u64 {
        if depth > MAX_DEPTH {
            return 0;
        }
        if ti.0 < self.first {
            let indirect = (ti.0 >> 8) & 0xF;
            return match indirect {
                0 => base_size(primitive_name(ti.0)),
                1 => 2,
                4 => 4,
                _ => 8,
            };
        }
        match self.get(ti) {
            Some(TypeData::Class(c)) => {
                if c.properties.forward_reference() {
                    self.def_size(ti, &c.name)
                } else {
                    c.size
                }
            }
            Some(TypeData::Union(u)) => {
                if u.properties.forward_reference() {
                    self.def_size(ti, &u.name)
                } else {
                    u.size
                }
            }
            Some(TypeData::Enumeration(e)) => self.size_of(e.underlying_type, depth + 1),
            Some(TypeData::Modifier(m)) => self.size_of(m.underlying_type, depth + 1),
            Some(TypeData::Bitfield(b)) => self.size_of(b.underlying_type, depth + 1),
            Some(TypeData::Array(a)) => a.dimensions.last().copied().map_or(0, u64::from),
            Some(TypeData::Pointer(p)) => {
                let s = u64::from(p.attributes.size());
                if s == 0 {
                    8
                } else {
                    s
                }
            }
            _ => 0,
        }
    }

    fn def_size(&self, ti: TypeIndex, raw: &pdb::RawString<'_>) -> u64 {
        let name = self.name_of(ti, raw);
        match self.defs.get(&name).and_then(|&d| self.get(TypeIndex(d))) {
            Some(TypeData::Class(c)) if !c.properties.forward_reference() => c.size,
            Some(TypeData::Union(u)) if !u.properties.forward_reference() => u.size,
            _ => 0,
        }
    }

    /// The TypeRef a field of type `ti` has.
    fn type_ref(&self, ti: TypeIndex, depth: u32) -> TypeRef {
        if depth > MAX_DEPTH {
            return TypeRef::Base("void".into());
        }
        if ti.0 < self.first {
            let base = TypeRef::Base(primitive_name(ti.0).to_string());
            return if (ti.0 >> 8) & 0xF != 0 {
                TypeRef::Pointer(Box::new(base))
            } else {
                base
            };
        }
        match self.get(ti) {
            Some(TypeData::Class(c)) => TypeRef::Struct(self.name_of(ti, &c.name)),
            Some(TypeData::Union(u)) => TypeRef::Struct(self.name_of(ti, &u.name)),
            Some(TypeData::Enumeration(e)) => TypeRef::Enum(self.name_of(ti, &e.name)),
            Some(TypeData::Modifier(m)) => self.type_ref(m.underlying_type, depth + 1),
            Some(TypeData::Pointer(p)) => {
                TypeRef::Pointer(Box::new(self.type_ref(p.underlying_type, depth + 1)))
            }
            Some(TypeData::Procedure(_)) | Some(TypeData::MemberFunction(_)) => TypeRef::Function,
            Some(TypeData::Bitfield(b)) => TypeRef::Bitfield {
                position: u32::from(b.position),
                length: u32::from(b.length),
                base: Box::new(self.type_ref(b.underlying_type, depth + 1)),
            },
            Some(TypeData::Array(a)) => {
                let total = a.dimensions.last().copied().map_or(0, u64::from);
                let elem = self.size_of(a.element_type, depth + 1);
                TypeRef::Array {
                    count: total.checked_div(elem).unwrap_or(0),
                    element: Box::new(self.type_ref(a.element_type, depth + 1)),
                }
            }
            _ => TypeRef::Base("void".into()),
        }
    }

    /// The entries of a field list, following `LF_INDEX` continuations
    /// (bounded, cycle-checked).
    fn field_list(&self, list: TypeIndex) -> Vec<RawField> {
        let mut out = Vec::new();
        let mut next = Some(list.0);
        let mut seen = HashSet::new();
        while let Some(ti) = next.take() {
            if seen.len() >= MAX_CONTINUATIONS || !seen.insert(ti) {
                break;
            }
            let Some(rec) = self.field_lists.get(ti) else {
                break;
            };
            next = parse_field_list(rec, &mut out);
        }
        out
    }

    /// All data members of a field list.
    fn members(&self, list: TypeIndex) -> Vec<Field> {
        self.field_list(list)
            .into_iter()
            .filter_map(|f| match f {
                RawField::Member { name, ty, offset } => Some(Field {
                    name,
                    offset,
                    ty: self.type_ref(TypeIndex(ty), 0),
                }),
                RawField::Enumerate { .. } => None,
            })
            .collect()
    }

    /// Constants of an enum, each value read as the underlying type reads
    /// it: compilers encode `-3` in an `int` enum as either a signed or an
    /// unsigned 32-bit leaf (clang writes LF_ULONG 0xFFFFFFFD).
    fn constants(&self, list: TypeIndex, underlying: TypeIndex) -> Vec<(String, i64)> {
        let size = self.size_of(underlying, 0);
        let signed = match self.type_ref(underlying, 0) {
            TypeRef::Base(n) => {
                !(n.starts_with("unsigned") || n.starts_with("uint") || n == "bool")
            }
            _ => true,
        };
        let fit = |v: i64| -> i64 {
            if !(1..8).contains(&size) {
                return v;
            }
            let bits = 8 * size as u32;
            let masked = (v as u64) & ((1u64 << bits) - 1);
            if signed && masked >> (bits - 1) != 0 {
                (masked | !((1u64 << bits) - 1)) as i64
            } else {
                masked as i64
            }
        };
        self.field_list(list)
            .into_iter()
            .filter_map(|f| match f {
                RawField::Enumerate { name, value } => Some((name, fit(value))),
                RawField::Member { .. } => None,
            })
            .collect()
    }
}

/// One entry of a field list, as hangscope uses it.
enum RawField {
    Member { name: String, ty: u32, offset: u64 },
    Enumerate { name: String, value: i64 },
}

/// The raw LF_FIELDLIST records of the TPI stream, by type index.
///
/// Field lists are read here rather than through the pdb crate: pdb 0.8
/// reads LF_INDEX without the 2-byte pad before its type index, so any
/// field list longer than one record (64 KiB: big structs like `_KPRCB`
/// in some builds, long enums) fails to parse there.
struct RawFieldLists {
    first: u32,
    recs: Vec<Option<Vec<u8>>>,
}

impl RawFieldLists {
    fn get(&self, ti: u32) -> Option<&[u8]> {
        let i = ti.checked_sub(self.first)? as usize;
        self.recs.get(i)?.as_deref()
    }
}

const LF_FIELDLIST: u16 = 0x1203;
const LF_BCLASS: u16 = 0x1400;
const LF_VBCLASS: u16 = 0x1401;
const LF_IVBCLASS: u16 = 0x1402;
const LF_INDEX: u16 = 0x1404;
const LF_VFUNCTAB: u16 = 0x1409;
const LF_ENUMERATE: u16 = 0x1502;
const LF_MEMBER: u16 = 0x150d;
const LF_STMEMBER: u16 = 0x150e;
const LF_METHOD: u16 = 0x150f;
const LF_NESTTYPE: u16 = 0x1510;
const LF_ONEMETHOD: u16 = 0x1511;

fn le16(d: &[u8], p: usize) -> Option<u16> {
    let b = d.get(p..p.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn le32(d: &[u8], p: usize) -> Option<u32> {
    let b = d.get(p..p.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn le64(d: &[u8], p: usize) -> Option<u64> {
    let b = d.get(p..p.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// A CodeView numeric leaf at `p`: (value, bytes used). LF_CHAR is a
/// signed char, as cvinfo.h defines it.
fn numeric(d: &[u8], p: usize) -> Option<(i64, usize)> {
    let v = le16(d, p)?;
    if v < 0x8000 {
        return Some((i64::from(v), 2));
    }
    Some(match v {
        0x8000 => (i64::from(*d.get(p + 2)? as i8), 3),
        0x8001 => (i64::from(le16(d, p + 2)? as i16), 4),
        0x8002 => (i64::from(le16(d, p + 2)?), 4),
        0x8003 => (i64::from(le32(d, p + 2)? as i32), 6),
        0x8004 => (i64::from(le32(d, p + 2)?), 6),
        0x8009 | 0x800a => (le64(d, p + 2)? as i64, 10),
        _ => return None,
    })
}

/// A NUL-terminated name at `p`: (name, bytes used including the NUL).
fn cstr(d: &[u8], p: usize) -> Option<(String, usize)> {
    let rest = d.get(p..)?;
    let n = rest.iter().position(|&b| b == 0)?;
    Some((String::from_utf8_lossy(&rest[..n]).into_owned(), n + 1))
}

/// Parse one field-list record's entries into `out`; returns the
/// continuation (LF_INDEX) if the list goes on in another record. An
/// entry kind not known here ends the record (what was read is kept).
fn parse_field_list(d: &[u8], out: &mut Vec<RawField>) -> Option<u32> {
    let mut p = 0usize;
    let mut next = None;
    while p < d.len() {
        // LF_PADn bytes (0xF0 + n) align entries to 4 bytes.
        if d[p] >= 0xF0 {
            p += usize::from(d[p] & 0x0F).max(1);
            continue;
        }
        let Some(leaf) = le16(d, p) else { break };
        let step = match leaf {
            // LF_MEMBER: attr u16, type u32, offset (numeric), name
            LF_MEMBER => (|| {
                let ty = le32(d, p + 4)?;
                let (off, n) = numeric(d, p + 8)?;
                let (name, m) = cstr(d, p + 8 + n)?;
                out.push(RawField::Member {
                    name,
                    ty,
                    offset: off as u64,
                });
                Some(8 + n + m)
            })(),
            // LF_ENUMERATE: attr u16, value (numeric), name
            LF_ENUMERATE => (|| {
                let (value, n) = numeric(d, p + 4)?;
                let (name, m) = cstr(d, p + 4 + n)?;
                out.push(RawField::Enumerate { name, value });
                Some(4 + n + m)
            })(),
            // LF_INDEX: pad u16, type index u32
            LF_INDEX => {
                next = le32(d, p + 4);
                Some(8)
            }
            // LF_NESTTYPE (pad, index, name), LF_STMEMBER (attr, type,
            // name), LF_METHOD (count, list, name): skipped.
            LF_NESTTYPE | LF_STMEMBER | LF_METHOD => cstr(d, p + 8).map(|(_, m)| 8 + m),
            // LF_BCLASS: attr, type, offset (numeric)
            LF_BCLASS => numeric(d, p + 8).map(|(_, n)| 8 + n),
            // LF_VBCLASS / LF_IVBCLASS: attr, type, vbptr type, 2 numerics
            LF_VBCLASS | LF_IVBCLASS => (|| {
                let (_, a) = numeric(d, p + 12)?;
                let (_, b) = numeric(d, p + 12 + a)?;
                Some(12 + a + b)
            })(),
            // LF_VFUNCTAB: pad, type
            LF_VFUNCTAB => Some(8),
            // LF_ONEMETHOD: attr, type, [vbase offset for introducing
            // virtual methods], name
            LF_ONEMETHOD => (|| {
                let attr = le16(d, p + 2)?;
                let intro = matches!((attr >> 2) & 7, 4 | 6);
                let at = if intro { p + 12 } else { p + 8 };
                cstr(d, at).map(|(_, m)| at - p + m)
            })(),
            _ => None,
        };
        match step {
            Some(n) => p += n,
            None => break,
        }
    }
    next
}

/// Walk the TPI stream's records and keep the field lists.
fn raw_field_lists(pdb: &mut pdb::PDB<'_, Cursor>, path: &Path) -> Result<RawFieldLists, Error> {
    let stream = pdb
        .raw_stream(pdb::StreamIndex(2))
        .map_err(|e| pdb_err(path, "TPI stream", e))?
        .ok_or_else(|| Error::format(path, "no TPI stream (stream 2)"))?;
    let d = stream.as_slice();
    let (Some(header), Some(first), Some(bytes)) = (le32(d, 4), le32(d, 8), le32(d, 16)) else {
        return Err(Error::format(path, "TPI stream shorter than its header"));
    };
    let start = header as usize;
    let end = start.saturating_add(bytes as usize).min(d.len());
    let mut recs = Vec::new();
    let mut p = start;
    while p + 2 <= end && recs.len() < MAX_TYPES {
        let Some(len) = le16(d, p) else { break };
        let (s, e) = (p + 2, p + 2 + usize::from(len));
        if e > end {
            break;
        }
        let rec = &d[s..e];
        recs.push(if le16(rec, 0) == Some(LF_FIELDLIST) {
            Some(rec[2..].to_vec())
        } else {
            None
        });
        p = e;
    }
    Ok(RawFieldLists { first, recs })
}

/// Largest PDB read (real kernel PDBs are 10 to 40 MB).
const MAX_PDB_BYTES: u64 = 1 << 31;

/// Parse a PDB file into the model.
pub(crate) fn load(path: &Path) -> Result<Model, Error> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, &e))?;
    let mut bytes = Vec::new();
    file.take(MAX_PDB_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, &e))?;
    let name = path.file_name().map_or_else(
        || "unknown.pdb".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    load_bytes(bytes, &name, path)
}

/// Parse PDB bytes into the model; `name` becomes the identity's name and
/// `path` is used in errors. The pdb crate has debug assertions
/// (`unreachable!`) on some malformed records; a panic inside it is turned
/// into an error so that a broken file cannot take the process down.
pub(crate) fn load_bytes(bytes: Vec<u8>, name: &str, path: &Path) -> Result<Model, Error> {
    let cursor = std::io::Cursor::new(bytes);
    match std::panic::catch_unwind(move || load_inner(cursor, name, path)) {
        Ok(r) => r,
        Err(_) => Err(Error::at(
            ErrorKind::Pdb {
                message: "malformed record (the PDB reader gave up)".into(),
            },
            Location::file(path),
        )),
    }
}

type Cursor = std::io::Cursor<Vec<u8>>;

fn load_inner(file: Cursor, name: &str, path: &Path) -> Result<Model, Error> {
    let mut pdb = pdb::PDB::open(file).map_err(|e| pdb_err(path, "MSF header", e))?;

    let info = pdb
        .pdb_information()
        .map_err(|e| pdb_err(path, "PDB information stream", e))?;
    let dbi = pdb
        .debug_information()
        .map_err(|e| pdb_err(path, "DBI stream", e))?;
    // Symbol servers key by the DBI age; the info stream's may be newer.
    let age = dbi.age().unwrap_or(info.age);
    let identity = PdbIdentity {
        name: name.to_string(),
        guid: info.guid.simple().to_string().to_ascii_uppercase(),
        age,
    };

    let mut model = Model {
        identity: Some(identity),
        base_types: X64_BASE_TYPES
            .iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect(),
        ..Model::default()
    };

    let tpi = pdb
        .type_information()
        .map_err(|e| pdb_err(path, "TPI stream", e))?;
    let field_lists = raw_field_lists(&mut pdb, path)?;
    let mut types = Types {
        items: Vec::new(),
        first: 0x1000,
        defs: HashMap::new(),
        field_lists,
    };
    {
        let mut iter = tpi.iter();
        let mut first = true;
        loop {
            let item = match iter.next() {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => {
                    return Err(pdb_err(
                        path,
                        &format!("TPI record {}", types.items.len()),
                        e,
                    ))
                }
            };
            if first {
                types.first = item.index().0;
                first = false;
            }
            if types.items.len() >= MAX_TYPES {
                return Err(Error::format(
                    path,
                    format!("more than {MAX_TYPES} type records"),
                ));
            }
            // Unknown leaf kinds are skipped: they cannot be a struct we need.
            types.items.push(item.parse().ok());
        }
    }
    for (i, t) in types.items.iter().enumerate() {
        let ti = TypeIndex(types.first + i as u32);
        let name = match t {
            Some(TypeData::Class(c)) if !c.properties.forward_reference() => {
                types.name_of(ti, &c.name)
            }
            Some(TypeData::Union(u)) if !u.properties.forward_reference() => {
                types.name_of(ti, &u.name)
            }
            Some(TypeData::Enumeration(e)) if !e.properties.forward_reference() => {
                types.name_of(ti, &e.name)
            }
            _ => continue,
        };
        types.defs.insert(name, ti.0);
    }
    let mut def_list: Vec<(&String, &u32)> = types.defs.iter().collect();
    def_list.sort_by_key(|(_, &i)| i);
    for (name, &i) in def_list {
        match types.get(TypeIndex(i)) {
            Some(TypeData::Class(c)) => model.user_types.push(UserType {
                name: name.clone(),
                is_union: false,
                size: c.size,
                fields: c.fields.map(|f| types.members(f)).unwrap_or_default(),
            }),
            Some(TypeData::Union(u)) => model.user_types.push(UserType {
                name: name.clone(),
                is_union: true,
                size: u.size,
                fields: types.members(u.fields),
            }),
            Some(TypeData::Enumeration(e)) => model.enums.push(Enumeration {
                name: name.clone(),
                size: types.size_of(e.underlying_type, 0),
                constants: types.constants(e.fields, e.underlying_type),
            }),
            _ => {}
        }
    }
    for u in &mut model.user_types {
        u.fields.sort_by_key(|f| f.offset);
    }
    for e in &mut model.enums {
        e.constants
            .sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    }

    read_symbols(&mut pdb, &dbi, path, &mut model)?;
    Ok(model)
}

fn add_symbol(model: &mut Model, raw: &str, rva: u64) {
    let name = strip_linkage_name(raw);
    if name != raw {
        model.aliases.push((raw.to_string(), rva));
    }
    model.symbols.push((name.to_string(), rva));
}

fn read_symbols<'s>(
    pdb: &mut pdb::PDB<'s, Cursor>,
    dbi: &pdb::DebugInformation<'s>,
    path: &Path,
    model: &mut Model,
) -> Result<(), Error> {
    let map = pdb
        .address_map()
        .map_err(|e| pdb_err(path, "section headers", e))?;
    let mut count = 0usize;
    let mut module_syms: Vec<(String, u64)> = Vec::new();
    // Procedures and module-local data live in the module streams.
    if let Ok(mut modules) = dbi.modules() {
        while let Ok(Some(module)) = modules.next() {
            let Ok(Some(mi)) = pdb.module_info(&module) else {
                continue;
            };
            let Ok(mut syms) = mi.symbols() else { continue };
            // A damaged module stream ends that module's walk, not the load.
            while let Ok(Some(sym)) = syms.next() {
                count += 1;
                if count > MAX_SYMBOLS {
                    break;
                }
                match sym.parse() {
                    Ok(pdb::SymbolData::Procedure(p)) => {
                        if let Some(r) = p.offset.to_rva(&map) {
                            module_syms.push((p.name.to_string().into_owned(), u64::from(r.0)));
                        }
                    }
                    Ok(pdb::SymbolData::Data(d)) if d.global => {
                        if let Some(r) = d.offset.to_rva(&map) {
                            module_syms.push((d.name.to_string().into_owned(), u64::from(r.0)));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for (n, r) in module_syms {
        add_symbol(model, &n, r);
    }
    // Globals and publics come last so that, as in pdbconv, they win.
    let globals = pdb
        .global_symbols()
        .map_err(|e| pdb_err(path, "global symbol stream", e))?;
    let mut iter = globals.iter();
    loop {
        let sym = match iter.next() {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => return Err(pdb_err(path, &format!("global symbol {count}"), e)),
        };
        count += 1;
        if count > MAX_SYMBOLS {
            return Err(Error::format(
                path,
                format!("more than {MAX_SYMBOLS} symbols"),
            ));
        }
        let (name, off) = match sym.parse() {
            Ok(pdb::SymbolData::Public(p)) => (p.name, p.offset),
            Ok(pdb::SymbolData::Data(d)) => (d.name, d.offset),
            Ok(pdb::SymbolData::Procedure(p)) => (p.name, p.offset),
            _ => continue,
        };
        if let Some(r) = off.to_rva(&map) {
            add_symbol(model, &name.to_string(), u64::from(r.0));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_list_entries_pads_and_continuation() {
        let mut d = Vec::new();
        // LF_MEMBER attr 3, type 0x22 (unsigned long), offset 0x10, "Count"
        d.extend_from_slice(&[0x0d, 0x15, 3, 0, 0x22, 0, 0, 0, 0x10, 0]);
        d.extend_from_slice(b"Count\0");
        d.extend_from_slice(&[0xf2, 0xf1]);
        // LF_ENUMERATE attr 3, LF_CHAR -1, "Minus"
        d.extend_from_slice(&[0x02, 0x15, 3, 0, 0x00, 0x80, 0xff]);
        d.extend_from_slice(b"Minus\0");
        // LF_MEMBER with an LF_ULONG offset 0x12345
        d.extend_from_slice(&[
            0x0d, 0x15, 3, 0, 0x74, 0, 0, 0, 0x04, 0x80, 0x45, 0x23, 1, 0,
        ]);
        d.extend_from_slice(b"Far\0");
        // LF_INDEX pad, 0x1234
        d.extend_from_slice(&[0x04, 0x14, 0, 0, 0x34, 0x12, 0, 0]);
        let mut out = Vec::new();
        assert_eq!(parse_field_list(&d, &mut out), Some(0x1234));
        let got: Vec<String> = out
            .iter()
            .map(|f| match f {
                RawField::Member { name, ty, offset } => format!("{name}:{ty:#x}@{offset:#x}"),
                RawField::Enumerate { name, value } => format!("{name}={value}"),
            })
            .collect();
        assert_eq!(got, ["Count:0x22@0x10", "Minus=-1", "Far:0x74@0x12345"]);
    }

    #[test]
    fn field_list_parser_survives_any_bytes() {
        let mut seed = 7u64;
        for len in 0..2000usize {
            let d: Vec<u8> = (0..len % 97)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    // Bias towards leaf bytes so entries get parsed.
                    match (seed >> 60) as u8 {
                        0..=3 => 0x15,
                        4..=5 => 0x0d,
                        6 => 0x80,
                        _ => (seed >> 33) as u8,
                    }
                })
                .collect();
            let mut out = Vec::new();
            let _ = parse_field_list(&d, &mut out);
            assert!(out.len() <= d.len());
        }
    }
}
