//! Kernel types and symbols by name, from Volatility ISF JSON or PDB files.
//!
//! CONTRACT (skeleton): the types and signatures below are the interface the
//! other crates build on.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

use std::path::Path;

/// Which PDB a table describes: the name, GUID and age in an RSDS record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PdbIdentity {
    /// PDB file name, e.g. `ntkrnlmp.pdb`.
    pub name: String,
    /// GUID as 32 upper-case hex digits, in the symbol-server order.
    pub guid: String,
    /// Age.
    pub age: u32,
}

/// A type as a field refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeRef {
    /// A base type by name (`unsigned long`, `void`, ...).
    Base(String),
    /// A pointer to a type.
    Pointer(Box<TypeRef>),
    /// A fixed-size array.
    Array {
        /// Element count.
        count: u64,
        /// Element type.
        element: Box<TypeRef>,
    },
    /// A struct or union by name.
    Struct(String),
    /// An enum by name.
    Enum(String),
    /// A bitfield within a base type.
    Bitfield {
        /// First bit.
        position: u32,
        /// Number of bits.
        length: u32,
        /// The storage type.
        base: Box<TypeRef>,
    },
    /// A function (pointers to functions point at this).
    Function,
}

/// A struct or union field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Byte offset from the start of the containing type.
    pub offset: u64,
    /// Its type.
    pub ty: TypeRef,
}

/// A struct or union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserType {
    /// Type name, e.g. `_KTHREAD`.
    pub name: String,
    /// True for a union.
    pub is_union: bool,
    /// Size in bytes.
    pub size: u64,
    /// Fields in offset order.
    pub fields: Vec<Field>,
}

/// An enumeration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enumeration {
    /// Enum name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Constants (name, value).
    pub constants: Vec<(String, i64)>,
}

/// A loaded symbol table.
#[derive(Debug, Clone)]
pub struct SymbolTable {}

impl SymbolTable {
    /// Load an ISF file (`.json` or `.json.xz`).
    pub fn load_isf(path: &Path) -> Result<SymbolTable, Error> {
        let _ = path;
        Err(Error::Skeleton)
    }
    /// Which PDB this table describes, if it says.
    pub fn identity(&self) -> Option<&PdbIdentity> {
        None
    }
    /// A struct or union by name.
    pub fn user_type(&self, name: &str) -> Option<&UserType> {
        let _ = name;
        None
    }
    /// An enumeration by name.
    pub fn enumeration(&self, name: &str) -> Option<&Enumeration> {
        let _ = name;
        None
    }
    /// Size of a base type by name.
    pub fn base_size(&self, name: &str) -> Option<u64> {
        let _ = name;
        None
    }
    /// A symbol's address relative to the module base (RVA).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let _ = name;
        None
    }
}

/// A symbol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Skeleton placeholder.
    #[error("skeleton")]
    Skeleton,
}
