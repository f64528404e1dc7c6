//! Volatility Intermediate Symbol Format (ISF 6.x) JSON, plain or xz.
//!
//! Parsed straight into small typed structs with serde (no `Value` tree);
//! unknown keys are skipped, so newer ISF minor versions still load.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Location};
use crate::model::Model;
use crate::{Enumeration, Field, PdbIdentity, TypeRef, UserType};

/// Largest decompressed ISF accepted: the biggest real kernel ISF is
/// about 40 MB; this bounds memory on a hostile `.xz`.
const MAX_ISF_BYTES: u64 = 1 << 30;
/// Largest `metadata` object read when indexing a directory.
const MAX_METADATA_BYTES: usize = 1 << 20;
/// How far into a file `metadata` is looked for when indexing.
const MAX_METADATA_OFFSET: usize = 64 << 20;

/// A JSON object read as a list of pairs: no hashing of the ~100 000
/// keys of a kernel ISF, and the file's order is kept. Later duplicates
/// win when the model is built, as they would in a map.
struct Pairs<T>(Vec<(String, T)>);

impl<T> Default for Pairs<T> {
    fn default() -> Self {
        Pairs(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Pairs<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Pairs<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Pairs<T>, A::Error> {
                // No size hint is trusted: the input is untrusted.
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, T>()? {
                    v.push((k, val));
                }
                Ok(Pairs(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    base_types: Pairs<Base>,
    #[serde(default)]
    user_types: Pairs<User>,
    #[serde(default)]
    enums: Pairs<Enum>,
    #[serde(default)]
    symbols: Pairs<Sym>,
}

/// The `metadata` object (only what identifies the PDB).
#[derive(Deserialize, Default)]
pub(crate) struct Metadata {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    windows: Option<WindowsMeta>,
}

#[derive(Deserialize, Default)]
struct WindowsMeta {
    #[serde(default)]
    pdb: Option<PdbMeta>,
}

#[derive(Deserialize, Default)]
struct PdbMeta {
    #[serde(rename = "GUID")]
    guid: Option<String>,
    age: Option<u32>,
    database: Option<String>,
}

#[derive(Deserialize)]
struct Base {
    size: u64,
}

#[derive(Deserialize)]
struct User {
    kind: String,
    size: u64,
    #[serde(default)]
    fields: Pairs<IsfField>,
}

#[derive(Deserialize)]
struct IsfField {
    offset: u64,
    #[serde(rename = "type")]
    ty: IsfType,
}

#[derive(Deserialize)]
struct IsfType {
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    subtype: Option<Box<IsfType>>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    bit_position: Option<u32>,
    #[serde(default)]
    bit_length: Option<u32>,
    #[serde(default, rename = "type")]
    ty: Option<Box<IsfType>>,
}

#[derive(Deserialize)]
struct Enum {
    size: u64,
    #[serde(default)]
    constants: Pairs<serde_json::Number>,
}

#[derive(Deserialize)]
struct Sym {
    #[serde(default)]
    address: Option<u64>,
    #[serde(default)]
    linkage_name: Option<String>,
}

impl Metadata {
    /// The PDB this ISF was made from, if it says.
    pub(crate) fn identity(&self) -> Option<PdbIdentity> {
        let pdb = self.windows.as_ref()?.pdb.as_ref()?;
        Some(PdbIdentity {
            name: pdb.database.clone()?,
            guid: pdb.guid.clone()?.to_ascii_uppercase(),
            age: pdb.age?,
        })
    }
}

/// Read a whole file, decompressing `.xz`, with a size cap.
pub(crate) fn read_maybe_xz(path: &Path) -> Result<Vec<u8>, Error> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, &e))?;
    let mut out = Vec::new();
    let is_xz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xz"));
    let res = if is_xz {
        xz2::read::XzDecoder::new(f)
            .take(MAX_ISF_BYTES)
            .read_to_end(&mut out)
    } else {
        f.take(MAX_ISF_BYTES).read_to_end(&mut out)
    };
    res.map_err(|e| Error::io("read", path, &e))?;
    Ok(out)
}

fn convert_type(t: &IsfType, path: &Path, ctx: &str) -> Result<TypeRef, Error> {
    let bad = |what: &str| Error::format(path, format!("{ctx}: {what}"));
    let name = || {
        t.name
            .clone()
            .ok_or_else(|| bad(&format!("`{}` type without a name", t.kind)))
    };
    Ok(match t.kind.as_str() {
        "base" => TypeRef::Base(name()?),
        "struct" | "union" | "class" => TypeRef::Struct(name()?),
        "enum" => TypeRef::Enum(name()?),
        "function" => TypeRef::Function,
        "pointer" => {
            let sub = t
                .subtype
                .as_deref()
                .ok_or_else(|| bad("pointer without subtype"))?;
            TypeRef::Pointer(Box::new(convert_type(sub, path, ctx)?))
        }
        "array" => {
            let sub = t
                .subtype
                .as_deref()
                .ok_or_else(|| bad("array without subtype"))?;
            TypeRef::Array {
                count: t.count.ok_or_else(|| bad("array without count"))?,
                element: Box::new(convert_type(sub, path, ctx)?),
            }
        }
        "bitfield" => {
            let base =
                t.ty.as_deref()
                    .ok_or_else(|| bad("bitfield without type"))?;
            let position = t
                .bit_position
                .ok_or_else(|| bad("bitfield without bit_position"))?;
            let length = t
                .bit_length
                .ok_or_else(|| bad("bitfield without bit_length"))?;
            if !crate::bitfield_fits(position, length) {
                return Err(bad(&format!(
                    "bitfield at bit {position} of length {length} does not fit a 64-bit \
                     field (the symbol file is damaged)"
                )));
            }
            TypeRef::Bitfield {
                position,
                length,
                base: Box::new(convert_type(base, path, ctx)?),
            }
        }
        other => return Err(bad(&format!("unknown type kind `{other}`"))),
    })
}

fn number_to_i64(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| n.as_u64().map(|u| u as i64))
}

/// Parse ISF JSON bytes into the model.
pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Model, Error> {
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| {
        Error::at(
            ErrorKind::Json {
                message: e.to_string(),
            },
            Location {
                path: Some(path.to_path_buf()),
                offset: None,
                record: Some(format!("line {} column {}", e.line(), e.column())),
            },
        )
    })?;
    if let Some(f) = doc.metadata.as_ref().and_then(|m| m.format.as_deref()) {
        let major = f.split('.').next().unwrap_or("");
        if !matches!(major, "4" | "5" | "6") {
            return Err(Error::format(
                path,
                format!("ISF format {f} is not supported (4.x to 6.x are)"),
            ));
        }
    }
    let mut m = Model {
        identity: doc.metadata.as_ref().and_then(Metadata::identity),
        ..Model::default()
    };
    m.base_types = doc
        .base_types
        .0
        .iter()
        .map(|(n, b)| (n.clone(), b.size))
        .collect();
    for (name, u) in &doc.user_types.0 {
        let mut fields = Vec::with_capacity(u.fields.0.len());
        for (fname, f) in &u.fields.0 {
            let ctx = format!("{name}.{fname}");
            fields.push(Field {
                name: fname.clone(),
                offset: f.offset,
                ty: convert_type(&f.ty, path, &ctx)?,
            });
        }
        // Offset order; names break ties so the order is stable.
        fields.sort_by(|a, b| a.offset.cmp(&b.offset).then_with(|| a.name.cmp(&b.name)));
        m.user_types.push(UserType {
            name: name.clone(),
            is_union: u.kind == "union",
            size: u.size,
            fields,
        });
    }
    for (name, e) in &doc.enums.0 {
        let mut constants = Vec::with_capacity(e.constants.0.len());
        for (c, v) in &e.constants.0 {
            let v = number_to_i64(v).ok_or_else(|| {
                Error::format(
                    path,
                    format!("enum {name}.{c}: value {v} is not an integer"),
                )
            })?;
            constants.push((c.clone(), v));
        }
        constants.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        m.enums.push(Enumeration {
            name: name.clone(),
            size: e.size,
            constants,
        });
    }
    for (name, s) in &doc.symbols.0 {
        if let Some(a) = s.address {
            m.symbols.push((name.clone(), a));
            if let Some(l) = &s.linkage_name {
                if l != name {
                    m.aliases.push((l.clone(), a));
                }
            }
        }
    }
    Ok(m)
}

/// Read only the `metadata` object of an ISF, decompressing no further
/// than needed: Volatility writes keys sorted, so `metadata` comes before
/// the large `symbols` and `user_types` objects.
pub(crate) fn read_metadata(path: &Path) -> Option<Metadata> {
    let f = std::fs::File::open(path).ok()?;
    let is_xz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xz"));
    let mut r: Box<dyn Read> = if is_xz {
        Box::new(xz2::read::XzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    const KEY: &[u8] = b"\"metadata\"";
    let mut searched_to = 0usize;
    loop {
        let n = r.read(&mut chunk).ok()?;
        buf.extend_from_slice(&chunk[..n]);
        let from = searched_to.saturating_sub(KEY.len());
        if let Some(p) = find(&buf[from..], KEY) {
            let start = from + p + KEY.len();
            // The value follows a colon; read more until it parses.
            loop {
                let rest = &buf[start..];
                let colon = rest.iter().position(|&c| c == b':');
                if let Some(c) = colon {
                    let mut de = serde_json::Deserializer::from_slice(&rest[c + 1..]);
                    match Metadata::deserialize(&mut de) {
                        Ok(m) => return Some(m),
                        Err(e) if e.is_eof() => {}
                        Err(_) => return None,
                    }
                }
                // Real metadata is a few hundred bytes; give up on a huge
                // one rather than re-parse a growing buffer for ever.
                let n = r.read(&mut chunk).ok()?;
                if n == 0 || buf.len() - start > MAX_METADATA_BYTES {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
        searched_to = buf.len();
        // `metadata` follows only `base_types` and `enums` (a few MB at
        // most): a file without it that early is not indexed.
        if n == 0 || buf.len() > MAX_METADATA_OFFSET {
            return None;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
