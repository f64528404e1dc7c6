//! Structure layouts and symbol RVAs, read from a Volatility ISF file.
//!
//! The lab never hard-codes a Windows structure offset or size: every
//! field it writes is looked up here by type name and dotted field path.
//! This reader is private to the lab on purpose (it shares no code with
//! `hangscope-symbols`), so a misreading in the product's symbol loader
//! cannot hide itself in images built by the lab.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

/// The shape of a field or element, as far as the lab needs it to write
/// values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A base type of this many bytes (integers, chars, `void`).
    Base(u64),
    /// A pointer (8 bytes on x64).
    Pointer,
    /// An array of `count` elements.
    Array {
        /// Element count.
        count: u64,
        /// Element shape.
        element: Box<Shape>,
    },
    /// A struct or union by name.
    Struct(String),
    /// An enum stored in this many bytes.
    Enum(u64),
    /// A bitfield inside a base type of `storage` bytes.
    Bitfield {
        /// First bit.
        position: u32,
        /// Number of bits.
        length: u32,
        /// Bytes of the storage unit.
        storage: u64,
    },
    /// A function (only as a pointer target).
    Function,
}

/// Where a field sits and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldAt {
    /// Byte offset from the start of the outermost type.
    pub offset: u64,
    /// Its shape.
    pub shape: Shape,
}

/// Lookups the builder needs from a symbol table.
pub trait Layout {
    /// Size in bytes of a struct or union.
    fn type_size(&self, ty: &str) -> Option<u64>;
    /// True if the struct or union exists.
    fn has_type(&self, ty: &str) -> bool {
        self.type_size(ty).is_some()
    }
    /// A field by dotted path (`Pcb.DirectoryTableBase`); array elements
    /// are not addressed here (use [`Layout::element_size`]).
    fn field(&self, ty: &str, path: &str) -> Option<FieldAt>;
    /// Value of an enumeration constant.
    fn enum_value(&self, en: &str, name: &str) -> Option<i64>;
    /// Symbol RVA from the kernel base.
    fn symbol(&self, name: &str) -> Option<u64>;
    /// PDB GUID (32 hex digits) and age.
    fn pdb_identity(&self) -> Option<(String, u32)>;
    /// The highest symbol RVA below `limit` (sizes the kernel image).
    fn max_symbol_rva(&self, limit: u64) -> Option<u64>;
    /// The lowest symbol RVA above `rva` (where the function at `rva` ends
    /// at the latest).
    fn next_symbol_rva(&self, rva: u64) -> Option<u64>;
    /// Size in bytes of a shape.
    fn shape_size(&self, shape: &Shape) -> Option<u64> {
        match shape {
            Shape::Base(n) | Shape::Enum(n) => Some(*n),
            Shape::Pointer => Some(8),
            Shape::Array { count, element } => {
                self.shape_size(element).and_then(|s| s.checked_mul(*count))
            }
            Shape::Struct(name) => self.type_size(name),
            Shape::Bitfield { storage, .. } => Some(*storage),
            Shape::Function => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawIsf {
    metadata: RawMetadata,
    base_types: HashMap<String, RawBase>,
    user_types: HashMap<String, RawUser>,
    enums: HashMap<String, RawEnum>,
    symbols: HashMap<String, RawSymbol>,
}

#[derive(Debug, Deserialize)]
struct RawMetadata {
    #[serde(default)]
    windows: Option<RawWindows>,
}

#[derive(Debug, Deserialize)]
struct RawWindows {
    pdb: Option<RawPdb>,
}

#[derive(Debug, Deserialize)]
struct RawPdb {
    #[serde(rename = "GUID")]
    guid: String,
    age: u32,
}

#[derive(Debug, Deserialize)]
struct RawBase {
    size: u64,
}

#[derive(Debug, Deserialize)]
struct RawUser {
    size: u64,
    fields: HashMap<String, RawField>,
}

#[derive(Debug, Deserialize)]
struct RawField {
    offset: u64,
    #[serde(rename = "type")]
    ty: RawType,
}

#[derive(Debug, Deserialize)]
struct RawType {
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    subtype: Option<Box<RawType>>,
    #[serde(default, rename = "type")]
    inner: Option<Box<RawType>>,
    #[serde(default)]
    bit_position: Option<u32>,
    #[serde(default)]
    bit_length: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct RawEnum {
    size: u64,
    constants: HashMap<String, i64>,
}

#[derive(Debug, Deserialize)]
struct RawSymbol {
    address: u64,
}

/// A loaded ISF symbol table.
#[derive(Debug)]
pub struct Isf {
    raw: RawIsf,
}

impl Isf {
    /// Load a `.json` or `.json.xz` ISF file.
    pub fn load(path: &Path) -> Result<Isf, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Symbols {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        let text = if bytes.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
            let mut out = Vec::new();
            xz2::read::XzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .map_err(|e| Error::Symbols {
                    path: path.display().to_string(),
                    problem: format!("xz: {e}"),
                })?;
            out
        } else {
            bytes
        };
        let raw: RawIsf = serde_json::from_slice(&text).map_err(|e| Error::Symbols {
            path: path.display().to_string(),
            problem: format!("not an ISF file: {e}"),
        })?;
        Ok(Isf { raw })
    }

    fn shape_of(&self, t: &RawType) -> Shape {
        match t.kind.as_str() {
            "base" => Shape::Base(
                t.name
                    .as_deref()
                    .and_then(|n| self.raw.base_types.get(n))
                    .map(|b| b.size)
                    .unwrap_or(0),
            ),
            "pointer" => Shape::Pointer,
            "array" => Shape::Array {
                count: t.count.unwrap_or(0),
                element: Box::new(
                    t.subtype
                        .as_deref()
                        .map(|s| self.shape_of(s))
                        .unwrap_or(Shape::Base(0)),
                ),
            },
            "struct" | "union" | "class" => Shape::Struct(t.name.clone().unwrap_or_default()),
            "enum" => Shape::Enum(
                t.name
                    .as_deref()
                    .and_then(|n| self.raw.enums.get(n))
                    .map(|e| e.size)
                    .unwrap_or(4),
            ),
            "bitfield" => Shape::Bitfield {
                position: t.bit_position.unwrap_or(0),
                length: t.bit_length.unwrap_or(0),
                storage: t
                    .inner
                    .as_deref()
                    .map(|i| match self.shape_of(i) {
                        Shape::Base(n) | Shape::Enum(n) => n,
                        _ => 0,
                    })
                    .unwrap_or(0),
            },
            _ => Shape::Function,
        }
    }
}

impl Layout for Isf {
    fn type_size(&self, ty: &str) -> Option<u64> {
        self.raw.user_types.get(ty).map(|u| u.size)
    }

    fn field(&self, ty: &str, path: &str) -> Option<FieldAt> {
        let mut cur = ty.to_string();
        let mut offset = 0u64;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let f = self.raw.user_types.get(&cur)?.fields.get(part)?;
            offset = offset.checked_add(f.offset)?;
            let shape = self.shape_of(&f.ty);
            if parts.peek().is_none() {
                return Some(FieldAt { offset, shape });
            }
            match shape {
                Shape::Struct(name) => cur = name,
                _ => return None,
            }
        }
        None
    }

    fn enum_value(&self, en: &str, name: &str) -> Option<i64> {
        self.raw.enums.get(en)?.constants.get(name).copied()
    }

    fn symbol(&self, name: &str) -> Option<u64> {
        self.raw.symbols.get(name).map(|s| s.address)
    }

    fn pdb_identity(&self) -> Option<(String, u32)> {
        let p = self.raw.metadata.windows.as_ref()?.pdb.as_ref()?;
        Some((p.guid.to_ascii_uppercase(), p.age))
    }

    fn max_symbol_rva(&self, limit: u64) -> Option<u64> {
        self.raw
            .symbols
            .values()
            .map(|s| s.address)
            .filter(|&a| a < limit)
            .max()
    }
    fn next_symbol_rva(&self, rva: u64) -> Option<u64> {
        self.raw
            .symbols
            .values()
            .map(|s| s.address)
            .filter(|&a| a > rva)
            .min()
    }
}

/// The product's symbol loader as a layout source, so images can also be
/// built from a `hangscope_symbols::SymbolTable` (and the two ISF readers
/// checked against each other).
impl Layout for hangscope_symbols::SymbolTable {
    fn type_size(&self, ty: &str) -> Option<u64> {
        self.user_type(ty).map(|u| u.size)
    }

    fn field(&self, ty: &str, path: &str) -> Option<FieldAt> {
        let (offset, t) = self.field_path(ty, path)?;
        Some(FieldAt {
            offset,
            shape: shape_of_ref(self, &t),
        })
    }

    fn enum_value(&self, en: &str, name: &str) -> Option<i64> {
        hangscope_symbols::SymbolTable::enum_value(self, en, name)
    }

    fn symbol(&self, name: &str) -> Option<u64> {
        hangscope_symbols::SymbolTable::symbol(self, name)
    }

    fn pdb_identity(&self) -> Option<(String, u32)> {
        self.identity()
            .map(|i| (i.guid.to_ascii_uppercase(), i.age))
    }

    fn max_symbol_rva(&self, limit: u64) -> Option<u64> {
        self.symbols().map(|(_, a)| a).filter(|&a| a < limit).max()
    }
    fn next_symbol_rva(&self, rva: u64) -> Option<u64> {
        self.symbols().map(|(_, a)| a).filter(|&a| a > rva).min()
    }
}

fn shape_of_ref(t: &hangscope_symbols::SymbolTable, r: &hangscope_symbols::TypeRef) -> Shape {
    use hangscope_symbols::TypeRef as T;
    match r {
        T::Base(_) => Shape::Base(t.type_size(r).unwrap_or(0)),
        T::Pointer(_) => Shape::Pointer,
        T::Array { count, element } => Shape::Array {
            count: *count,
            element: Box::new(shape_of_ref(t, element)),
        },
        T::Struct(n) => Shape::Struct(n.clone()),
        T::Enum(_) => Shape::Enum(t.type_size(r).unwrap_or(4)),
        T::Bitfield {
            position,
            length,
            base,
        } => Shape::Bitfield {
            position: *position,
            length: *length,
            storage: t.type_size(base).unwrap_or(0),
        },
        _ => Shape::Function,
    }
}
