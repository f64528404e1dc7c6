//! Kernel types and symbols by name, from Volatility ISF JSON or PDB files
//! (Windows), and from BTF or a vmlinux's DWARF (Linux).
//!
//! CONTRACT (skeleton): the types and signatures below are the interface the
//! other crates build on.
//!
//! Every loader (ISF, PDB, BTF, DWARF) produces the same compact binary image
//! ([`compact`](crate) format, documented in `src/compact.rs`); lookups are
//! binary searches in it and types are decoded on first use. A
//! [`SymbolCache`] keeps that image on disk and memory-maps it on later
//! runs, so a warm run parses nothing.
//!
//! ```no_run
//! use hangscope_symbols::{PdbIdentity, SymbolStore};
//! let store = SymbolStore::from_env(&["../shared/symbols".into()])?;
//! let id = PdbIdentity {
//!     name: "ntkrnlmp.pdb".into(),
//!     guid: "339E74133576439CBCDF7E0229DA3773".into(),
//!     age: 1,
//! };
//! let nt = store.find(&id)?;
//! let (offset, _ty) = nt.field_path("_IRP", "Tail.Overlay.CurrentStackLocation").unwrap();
//! println!("IRP.Tail.Overlay.CurrentStackLocation at {offset:#x}");
//! # Ok::<(), hangscope_symbols::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

use rustc_hash::FxHashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

mod btf;
pub mod builtin;
mod cache;
mod compact;
mod dwarf;
mod error;
mod graph;
mod isf;
mod model;
mod pdbfile;
mod store;

pub use cache::SymbolCache;
pub use error::{Error, ErrorKind, Location};
pub use store::{SymbolPathElement, SymbolStore};

use compact::{Layout, SourceKey, S_ALIASES, S_BASES, S_ENUMS, S_SYMS, S_UTYPES};

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

impl PdbIdentity {
    /// The symbol-server directory key: GUID followed by the age in
    /// upper-case hex without padding.
    pub fn server_key(&self) -> String {
        format!("{}{:X}", self.guid.to_ascii_uppercase(), self.age)
    }

    /// The PDB's file name alone (RSDS records often hold the build
    /// machine's full path).
    pub fn file_name(&self) -> &str {
        self.name.rsplit(['\\', '/']).next().unwrap_or(&self.name)
    }

    /// Volatility's file key: `<GUID>-<AGE>` (age in decimal).
    pub fn isf_key(&self) -> String {
        format!("{}-{}", self.guid.to_ascii_uppercase(), self.age)
    }

    /// Where the PDB goes in a symbol-server store, relative to it:
    /// `<pdb>/<GUID><AGE hex>/<pdb>`. This and [`PdbIdentity::isf_path`]
    /// are the one place the symbol-store layout is written.
    pub fn server_path(&self) -> String {
        let file = self.file_name();
        format!("{file}/{}/{file}", self.server_key())
    }

    /// Where a Volatility ISF goes, relative to a symbol directory:
    /// `<pdb>/<GUID>-<AGE>.json.xz`.
    pub fn isf_path(&self) -> String {
        format!("{}/{}.json.xz", self.file_name(), self.isf_key())
    }

    /// The Volatility-layout ISF files for this PDB under `dir`, in the
    /// order tried: `windows/<pdb>/<GUID>-<AGE>.json.xz` (then `.json`),
    /// `<pdb>/...`, and, when `bare`, `dir` itself (a directory that is
    /// `windows/<pdb>`).
    pub fn isf_candidates(&self, dir: &Path, bare: bool) -> Vec<PathBuf> {
        let file = self.file_name();
        let key = self.isf_key();
        let mut dirs = vec![dir.join("windows").join(file), dir.join(file)];
        if bare {
            dirs.push(dir.to_path_buf());
        }
        let mut out = Vec::new();
        for d in dirs {
            for ext in ["json.xz", "json"] {
                out.push(d.join(format!("{key}.{ext}")));
            }
        }
        out
    }

    /// Same PDB: names compared case-insensitively (Windows file names),
    /// GUIDs case-insensitively, ages exactly.
    pub fn matches(&self, other: &PdbIdentity) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self.guid.eq_ignore_ascii_case(&other.guid)
            && self.age == other.age
    }
}

impl fmt::Display for PdbIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}-{}", self.name, self.guid, self.age)
    }
}

/// The name of the enumeration that holds the constants of every anonymous
/// enum in a Linux table (`enum { TASK_COMM_LEN = 16 };`): C puts all
/// enumerators in one namespace, so they are found by constant name,
/// `enum_value(ANONYMOUS_ENUM, "TASK_COMM_LEN")`. A name that two
/// anonymous enums give different values (in different files) is left
/// out as ambiguous.
pub const ANONYMOUS_ENUM: &str = "<anonymous>";

/// Whether a bitfield's geometry can be: 1 to 64 bits that end within a
/// 64-bit field. Anything else comes from a damaged symbol file, and
/// shifting by it would be wrong (or, in Rust, a panic).
pub fn bitfield_fits(position: u32, length: u32) -> bool {
    (1..=64).contains(&length) && position < 64 && position + length <= 64
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
    /// Constants (name, value), in value order.
    pub constants: Vec<(String, i64)>,
}

/// Where a table's bytes live.
enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Bytes {
    fn get(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

struct Inner {
    bytes: Bytes,
    layout: Layout,
    identity: Option<PdbIdentity>,
    user_types: Vec<OnceLock<Option<UserType>>>,
    enums: Vec<OnceLock<Option<Enumeration>>>,
    source: Option<PathBuf>,
    mapped_from: Option<PathBuf>,
    lookups: Lookups,
}

/// Most names or field paths remembered per map. The walks ask for a few
/// hundred distinct ones; the bound only keeps a caller that asks for
/// names without end (a `dt` per line of a script) from growing memory.
const MAX_REMEMBERED: usize = 1 << 14;

/// The answers to name lookups the walks repeat on every object: which
/// struct a name is, and where a dotted field path lands. Without them a
/// field read costs a binary search over the type names and a linear scan
/// over the struct's fields (`_KTHREAD` has ~200), string compares each
/// time; with them, two hash lookups. Misses are remembered too, since
/// probing for fields a build lacks is how versions are told apart.
///
/// The maps hash with `rustc-hash` (Fx) rather than std's SipHash: the keys
/// are type and field names the tables chose, hashing them was a third of
/// an nt walk under the fuzzers' instrumentation, and collision attacks
/// only slow the lookups down while the map stays bounded.
#[derive(Default)]
struct Lookups {
    user_types: RwLock<FxHashMap<Box<str>, Option<usize>>>,
    enums: RwLock<FxHashMap<Box<str>, Option<usize>>>,
    base_sizes: RwLock<FxHashMap<Box<str>, Option<u64>>>,
    paths: RwLock<FxHashMap<Box<str>, FieldPaths>>,
}

/// The answer for `name`, from `map` or found and then remembered there.
fn remembered<T: Copy>(
    map: &RwLock<FxHashMap<Box<str>, Option<T>>>,
    name: &str,
    find: impl FnOnce() -> Option<T>,
) -> Option<T> {
    if let Some(&hit) = map.read().ok().as_ref().and_then(|m| m.get(name)) {
        return hit;
    }
    let found = find();
    if let Ok(mut m) = map.write() {
        if m.len() < MAX_REMEMBERED {
            m.insert(name.into(), found);
        }
    }
    found
}

/// One type's field paths and where each lands (`None`: no such path).
type FieldPaths = FxHashMap<Box<str>, Option<Landing>>;

/// Where a field path lands: its offset, its type, and how to read it when
/// it holds one integer, worked out once so a field read clones nothing.
#[derive(Debug, Clone)]
struct Landing {
    offset: u64,
    ty: TypeRef,
    scalar: Option<ScalarShape>,
}

/// How to read a field that holds one integer (base type, enum, pointer,
/// bitfield, or a union of 1, 2, 4 or 8 bytes): its width and, for a
/// bitfield, which bits. Widths other than 1, 2, 4 and 8, and bitfields
/// whose bits do not fit their storage, have no shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalarShape {
    /// Bytes read, little-endian: 1, 2, 4 or 8.
    pub size: u8,
    /// For a bitfield, its first bit and its number of bits.
    pub bits: Option<(u32, u32)>,
    /// True when the field is declared as a pointer.
    pub pointer: bool,
}

impl Lookups {
    fn user_type(&self, name: &str, find: impl FnOnce() -> Option<usize>) -> Option<usize> {
        remembered(&self.user_types, name, find)
    }

    fn enumeration(&self, name: &str, find: impl FnOnce() -> Option<usize>) -> Option<usize> {
        remembered(&self.enums, name, find)
    }

    fn base_size(&self, name: &str, find: impl FnOnce() -> Option<u64>) -> Option<u64> {
        remembered(&self.base_sizes, name, find)
    }

    /// What `read` makes of the landing of `ty`'s `path`, found by
    /// `resolve` and remembered on first use.
    fn path<R>(
        &self,
        ty: &str,
        path: &str,
        resolve: impl FnOnce() -> Option<Landing>,
        read: impl Fn(Option<&Landing>) -> R,
    ) -> R {
        if let Ok(m) = self.paths.read() {
            if let Some(hit) = m.get(ty).and_then(|p| p.get(path)) {
                return read(hit.as_ref());
            }
        }
        let found = resolve();
        let answer = read(found.as_ref());
        if let Ok(mut m) = self.paths.write() {
            let known = m.len() < MAX_REMEMBERED || m.contains_key(ty);
            if known {
                let per_type = m.entry(ty.into()).or_default();
                if per_type.len() < MAX_REMEMBERED {
                    per_type.insert(path.into(), found);
                }
            }
        }
        answer
    }
}

/// A loaded symbol table. Cheap to clone (shared).
#[derive(Clone)]
pub struct SymbolTable {
    inner: Arc<Inner>,
}

impl fmt::Debug for SymbolTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("SymbolTable")
            .field("identity", &i.identity)
            .field("source", &i.source)
            .field("cache_file", &i.mapped_from)
            .field("user_types", &i.layout.count(S_UTYPES))
            .field("enums", &i.layout.count(S_ENUMS))
            .field("symbols", &i.layout.count(S_SYMS))
            .field("bytes", &i.bytes.get().len())
            .finish()
    }
}

/// Modification time in ns since the epoch, 0 if unknown.
fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

pub(crate) fn source_key(path: &Path, kind: u32) -> Result<SourceKey, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("stat", path, &e))?;
    Ok(SourceKey {
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
        kind,
    })
}

/// Source kinds recorded in cache files (see `compact::SourceKey`).
const KIND_ISF: u32 = 1;
const KIND_PDB: u32 = 2;
const KIND_ELF: u32 = 4;

/// What a symbol file is, by its first bytes: an MSF 7.0 (PDB) container,
/// an ELF file (a vmlinux), else ISF JSON.
pub(crate) fn source_kind(path: &Path) -> u32 {
    use std::io::Read;
    let mut head = [0u8; 32];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    if head.starts_with(b"Microsoft C/C++ MSF 7.00") {
        KIND_PDB
    } else if head.starts_with(b"\x7fELF") {
        KIND_ELF
    } else {
        KIND_ISF
    }
}

fn btf_error(e: btf::BtfError, origin: &str) -> Error {
    let which = if e.in_module {
        " (the module's part)"
    } else {
        ""
    };
    Error::at(
        ErrorKind::Btf { message: e.message },
        Location {
            path: None,
            offset: Some(e.offset),
            record: Some(format!("{origin}{which}")),
        },
    )
}

fn split_index(component: &str) -> Option<(&str, Vec<u64>)> {
    let (name, mut rest) = match component.find('[') {
        Some(p) => (&component[..p], &component[p..]),
        None => (component, ""),
    };
    let mut idx = Vec::new();
    while !rest.is_empty() {
        let close = rest.find(']')?;
        let inner = rest.get(1..close)?.trim();
        let v = match inner
            .strip_prefix("0x")
            .or_else(|| inner.strip_prefix("0X"))
        {
            Some(h) => u64::from_str_radix(h, 16).ok()?,
            None => inner.parse().ok()?,
        };
        idx.push(v);
        rest = &rest[close + 1..];
        if !rest.is_empty() && !rest.starts_with('[') {
            return None;
        }
    }
    Some((name, idx))
}

impl SymbolTable {
    /// Load an ISF file (`.json` or `.json.xz`).
    pub fn load_isf(path: &Path) -> Result<SymbolTable, Error> {
        let key = source_key(path, KIND_ISF)?;
        let bytes = isf::read_maybe_xz(path)?;
        let model = isf::parse(&bytes, path)?;
        drop(bytes);
        Self::from_model(&model, key, path)
    }

    /// Load a PDB file (types, symbols and identity). The identity's name
    /// is the file name, as symbol servers store it.
    pub fn load_pdb(path: &Path) -> Result<SymbolTable, Error> {
        let key = source_key(path, KIND_PDB)?;
        let model = pdbfile::load(path)?;
        Self::from_model(&model, key, path)
    }

    /// Parse ISF JSON from memory (`origin` names it in errors).
    pub fn from_isf_bytes(bytes: &[u8], origin: &Path) -> Result<SymbolTable, Error> {
        let model = isf::parse(bytes, origin)?;
        Self::from_model(&model, SourceKey::default(), origin)
    }

    /// Parse a PDB from memory; `name` is the PDB file name the identity
    /// carries (e.g. `ntkrnlmp.pdb`).
    pub fn from_pdb_bytes(bytes: Vec<u8>, name: &str) -> Result<SymbolTable, Error> {
        let origin = Path::new(name);
        let model = pdbfile::load_bytes(bytes, name, origin)?;
        Self::from_model(&model, SourceKey::default(), origin)
    }

    /// Use a compact image (as [`SymbolTable::compact_bytes`] returns and
    /// the cache stores) after checking its header, bounds and checksum.
    pub fn from_compact_bytes(bytes: Vec<u8>) -> Result<SymbolTable, Error> {
        let layout =
            Layout::validate(&bytes).map_err(|m| Error::new(ErrorKind::Cache { message: m }))?;
        Ok(Self::from_parts(Bytes::Owned(bytes), layout, None, None))
    }

    /// Types from a BTF blob: the kernel's own `.BTF` (read from guest
    /// memory between `__start_BTF` and `__stop_BTF`) or a vmlinux's
    /// `.BTF` section. `symbols` (from kallsyms, say) are link-time
    /// virtual addresses and are what [`SymbolTable::symbol`] returns;
    /// names may repeat (static functions). `origin` says where the blob
    /// came from (`"BTF in the dump (6.1.0-56-amd64)"`): errors name it
    /// and [`SymbolTable::origin`] returns it.
    ///
    /// Struct, union and enum names are bare C tags, typedefs are looked
    /// through, anonymous members are hoisted into their parent (so
    /// `field("task_struct", "__state")` works), a named member of an
    /// anonymous type gets the type name `Parent::member`, and a bitfield's
    /// offset is that of its storage unit: the same answers as
    /// [`SymbolTable::load_vmlinux`] gives from DWARF.
    pub fn from_btf(
        btf: &[u8],
        symbols: Vec<(String, u64)>,
        origin: &str,
    ) -> Result<SymbolTable, Error> {
        let parsed = btf::parse(btf, None).map_err(|e| btf_error(e, origin))?;
        Self::from_btf_graph(&parsed, symbols, origin)
    }

    /// Types from a module's split BTF (`struct module`'s `btf_data`): its
    /// type ids and string offsets continue those of `base`, the kernel's
    /// BTF. The table holds the module's own types (which name the base's
    /// types, e.g. `list_head`, without copying them: look those up in
    /// the kernel's table) and the given symbols.
    pub fn from_split_btf(
        base: &[u8],
        module: &[u8],
        symbols: Vec<(String, u64)>,
        origin: &str,
    ) -> Result<SymbolTable, Error> {
        let parsed = btf::parse(base, Some(module)).map_err(|e| btf_error(e, origin))?;
        Self::from_btf_graph(&parsed, symbols, origin)
    }

    fn from_btf_graph(
        parsed: &btf::Parsed<'_>,
        symbols: Vec<(String, u64)>,
        origin: &str,
    ) -> Result<SymbolTable, Error> {
        let mut b = graph::ModelBuilder::default();
        for id in parsed.own.clone() {
            b.add_node_or_note(&parsed.graph, id, || match parsed.record_offset(id) {
                Some((at, true)) => format!("type id {id} (module BTF byte {at:#x})"),
                Some((at, false)) => format!("type id {id} (byte {at:#x})"),
                None => format!("type id {id}"),
            });
        }
        let mut model = b.finish();
        model.symbols = symbols;
        model.keep_duplicate_symbols = true;
        model.origin = Some(origin.to_string());
        let bytes = compact::write(&model, SourceKey::default()).map_err(|m| {
            btf_error(
                btf::BtfError {
                    offset: 0,
                    in_module: false,
                    message: m,
                },
                origin,
            )
        })?;
        let layout = Layout::validate_fresh(&bytes).map_err(|m| {
            Error::new(ErrorKind::Format {
                message: format!("internal: compact image does not validate: {m}"),
            })
        })?;
        Ok(Self::from_parts(Bytes::Owned(bytes), layout, None, None))
    }

    /// What was left out while reading a damaged BTF or DWARF (a count,
    /// then the first reasons with the type id or unit they concern);
    /// empty when everything was read. Kept through the cache.
    pub fn notes(&self) -> Vec<&str> {
        self.inner
            .layout
            .notes(self.d())
            .map(|n| n.lines().filter(|l| !l.is_empty()).collect())
            .unwrap_or_default()
    }

    /// Where the types came from when that is not a PDB (the `origin`
    /// given to [`SymbolTable::from_btf`], or a vmlinux's description);
    /// kept through the cache.
    pub fn origin(&self) -> Option<&str> {
        self.inner.layout.origin(self.d())
    }

    /// Load a Linux vmlinux (ELF): types from its DWARF (read with
    /// gimli), or from its `.BTF` section when it has no DWARF; symbols
    /// from `.symtab` at their link-time addresses (names may repeat).
    /// The answers are those [`SymbolTable::from_btf`] gives for the same
    /// kernel. [`SymbolTable::origin`] says which source was read.
    pub fn load_vmlinux(path: &Path) -> Result<SymbolTable, Error> {
        let key = source_key(path, KIND_ELF)?;
        let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, &e))?;
        // SAFETY: read only; a file truncated underneath us could fault, as
        // with any mmap (a vmlinux is hundreds of MB: reading it into
        // memory would cost more than the parse).
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io("map", path, &e))?;
        let model = dwarf::load_vmlinux(path, &map)?;
        drop(map);
        Self::from_model(&model, key, path)
    }

    /// [`SymbolTable::load_vmlinux`] over an ELF image already in memory
    /// (`origin` names it in errors).
    pub fn from_vmlinux_bytes(bytes: &[u8], origin: &Path) -> Result<SymbolTable, Error> {
        let model = dwarf::load_vmlinux(origin, bytes)?;
        Self::from_model(&model, SourceKey::default(), origin)
    }

    /// Load a PDB, an ISF or a Linux vmlinux (ELF), telling them apart by
    /// content.
    pub fn load(path: &Path) -> Result<SymbolTable, Error> {
        match source_kind(path) {
            KIND_PDB => Self::load_pdb(path),
            KIND_ELF => Self::load_vmlinux(path),
            _ => Self::load_isf(path),
        }
    }

    fn from_model(model: &model::Model, key: SourceKey, path: &Path) -> Result<SymbolTable, Error> {
        let bytes = compact::write(model, key).map_err(|m| Error::format(path, m))?;
        let layout = Layout::validate_fresh(&bytes).map_err(|m| {
            Error::format(
                path,
                format!("internal: compact image does not validate: {m}"),
            )
        })?;
        Ok(Self::from_parts(
            Bytes::Owned(bytes),
            layout,
            Some(path),
            None,
        ))
    }

    fn from_parts(
        bytes: Bytes,
        layout: Layout,
        source: Option<&Path>,
        mapped: Option<&Path>,
    ) -> SymbolTable {
        let d = bytes.get();
        let identity = layout.identity(d);
        let user_types = (0..layout.count(S_UTYPES))
            .map(|_| OnceLock::new())
            .collect();
        let enums = (0..layout.count(S_ENUMS))
            .map(|_| OnceLock::new())
            .collect();
        SymbolTable {
            inner: Arc::new(Inner {
                bytes,
                layout,
                identity,
                user_types,
                enums,
                source: source.map(Path::to_path_buf),
                mapped_from: mapped.map(Path::to_path_buf),
                lookups: Lookups::default(),
            }),
        }
    }

    /// Open a compact image from a cache file (memory-mapped). Checks the
    /// header and checksum; `expected` (when given) must match the source
    /// size and mtime recorded in it.
    pub(crate) fn open_compact(
        path: &Path,
        expected: Option<SourceKey>,
        source: Option<&Path>,
    ) -> Result<SymbolTable, Error> {
        let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, &e))?;
        // SAFETY: the file is only read; it is written by rename-into-place,
        // so a concurrent writer never changes the mapped inode. A file
        // truncated by someone else could still fault, as with any mmap.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io("map", path, &e))?;
        let cache_err =
            |m: String| Error::at(ErrorKind::Cache { message: m }, Location::file(path));
        let layout = Layout::validate(&map).map_err(cache_err)?;
        if let Some(k) = expected {
            if layout.key != k {
                return Err(cache_err(format!(
                    "built from a source of size {} mtime {}, source now has size {} mtime {}",
                    layout.key.size, layout.key.mtime_ns, k.size, k.mtime_ns
                )));
            }
        }
        Ok(Self::from_parts(
            Bytes::Mapped(map),
            layout,
            source,
            Some(path),
        ))
    }

    /// The compact image (what the cache stores).
    pub fn compact_bytes(&self) -> &[u8] {
        self.inner.bytes.get()
    }

    /// The file this table was loaded from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.inner.source.as_deref()
    }

    /// The cache file this table is mapped from, if it came from the cache.
    pub fn cache_file(&self) -> Option<&Path> {
        self.inner.mapped_from.as_deref()
    }

    fn d(&self) -> &[u8] {
        self.inner.bytes.get()
    }

    /// Which PDB this table describes, if it says.
    pub fn identity(&self) -> Option<&PdbIdentity> {
        self.inner.identity.as_ref()
    }

    /// A struct or union by name.
    pub fn user_type(&self, name: &str) -> Option<&UserType> {
        let l = &self.inner.layout;
        let i = self
            .inner
            .lookups
            .user_type(name, || l.find(self.d(), S_UTYPES, name))?;
        self.inner
            .user_types
            .get(i)?
            .get_or_init(|| l.user_type(self.d(), i))
            .as_ref()
    }

    /// An enumeration by name.
    pub fn enumeration(&self, name: &str) -> Option<&Enumeration> {
        let l = &self.inner.layout;
        let i = self
            .inner
            .lookups
            .enumeration(name, || l.find(self.d(), S_ENUMS, name))?;
        self.inner
            .enums
            .get(i)?
            .get_or_init(|| l.enumeration(self.d(), i))
            .as_ref()
    }

    /// Size of a base type by name.
    pub fn base_size(&self, name: &str) -> Option<u64> {
        let l = &self.inner.layout;
        let d = self.d();
        self.inner
            .lookups
            .base_size(name, || l.base_size(d, l.find(d, S_BASES, name)?))
    }

    /// A symbol's address relative to the module base (RVA) for Windows
    /// tables; for Linux tables (BTF, vmlinux) the link-time virtual
    /// address the caller gave or `.symtab` holds. Looks up the
    /// (Volatility-stripped) name first, then raw linkage names. Of
    /// repeated names (Linux static functions) the lowest address wins.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let l = &self.inner.layout;
        let d = self.d();
        if let Some(i) = l.find(d, S_SYMS, name) {
            return l.rva(d, S_SYMS, i);
        }
        l.rva(d, S_ALIASES, l.find(d, S_ALIASES, name)?)
    }

    /// The nearest symbol at or below `rva` and the distance from it, for
    /// `nt!KiSwapContext+0x7a`. Of several symbols at one address, the
    /// alphabetically first is returned.
    pub fn symbol_at(&self, rva: u64) -> Option<(&str, u64)> {
        let l = &self.inner.layout;
        let d = self.d();
        let (i, at) = l.symbol_at(d, rva)?;
        // Checked: a damaged (unsorted) image may break the search's order.
        Some((l.name_of(d, S_SYMS, i)?, rva.checked_sub(at)?))
    }

    /// A field of a struct or union by name.
    pub fn field(&self, type_name: &str, field: &str) -> Option<&Field> {
        self.user_type(type_name)?
            .fields
            .iter()
            .find(|f| f.name == field)
    }

    /// Offset and type of a nested field, e.g. `_IRP` +
    /// `Tail.Overlay.CurrentStackLocation` or `_KTHREAD` + `WaitBlock[1].Object`.
    /// Indexes (decimal or `0x` hex) must be inside the array's bounds.
    /// Pointers are not followed (that needs memory).
    pub fn field_path(&self, type_name: &str, path: &str) -> Option<(u64, TypeRef)> {
        self.inner.lookups.path(
            type_name,
            path,
            || self.landing(type_name, path),
            |l| l.map(|l| (l.offset, l.ty.clone())),
        )
    }

    /// Offset of a field path and, when it holds one integer, how to read
    /// it: [`SymbolTable::field_path`] without the type, so that the reads
    /// the walks repeat on every object clone nothing. `None` when the
    /// path does not exist.
    pub fn field_scalar(&self, type_name: &str, path: &str) -> Option<(u64, Option<ScalarShape>)> {
        self.inner.lookups.path(
            type_name,
            path,
            || self.landing(type_name, path),
            |l| l.map(|l| (l.offset, l.scalar)),
        )
    }

    fn landing(&self, type_name: &str, path: &str) -> Option<Landing> {
        let (offset, ty) = self.resolve_field_path(type_name, path)?;
        let scalar = self.scalar_shape(&ty);
        Some(Landing { offset, ty, scalar })
    }

    /// How to read `ty` as one integer, if it is one.
    fn scalar_shape(&self, ty: &TypeRef) -> Option<ScalarShape> {
        let width = |n: u64| u8::try_from(n).ok().filter(|n| matches!(n, 1 | 2 | 4 | 8));
        let plain = |size: u64| {
            Some(ScalarShape {
                size: width(size)?,
                bits: None,
                pointer: false,
            })
        };
        match ty {
            TypeRef::Pointer(_) => Some(ScalarShape {
                pointer: true,
                ..plain(self.type_size(ty)?)?
            }),
            TypeRef::Base(n) => plain(self.base_size(n)?),
            // An enum the table does not describe has no known width here.
            TypeRef::Enum(n) => plain(self.enumeration(n)?.size),
            TypeRef::Struct(n) => plain(self.user_type(n)?.size),
            TypeRef::Bitfield {
                position,
                length,
                base,
            } => {
                let size = width(self.type_size(base)?)?;
                let fits = *length > 0
                    && position
                        .checked_add(*length)
                        .is_some_and(|end| end <= u32::from(size) * 8);
                fits.then_some(ScalarShape {
                    size,
                    bits: Some((*position, *length)),
                    pointer: false,
                })
            }
            TypeRef::Array { .. } | TypeRef::Function => None,
        }
    }

    fn resolve_field_path(&self, type_name: &str, path: &str) -> Option<(u64, TypeRef)> {
        let mut ty = TypeRef::Struct(type_name.to_string());
        let mut offset = 0u64;
        for component in path.split('.') {
            let (name, indexes) = split_index(component)?;
            let TypeRef::Struct(current) = &ty else {
                return None;
            };
            let f = self.field(current, name)?;
            offset = offset.checked_add(f.offset)?;
            ty = f.ty.clone();
            for ix in indexes {
                let TypeRef::Array { count, element } = ty else {
                    return None;
                };
                if ix >= count {
                    return None;
                }
                let step = self.type_size(&element)?;
                offset = offset.checked_add(ix.checked_mul(step)?)?;
                ty = *element;
            }
        }
        Some((offset, ty))
    }

    /// Size in bytes of a type: pointers are the table's pointer size (8 on
    /// x64), an enum not described has 4 bytes, a function has no size.
    pub fn type_size(&self, ty: &TypeRef) -> Option<u64> {
        match ty {
            TypeRef::Base(n) => self.base_size(n),
            TypeRef::Pointer(_) => Some(self.base_size("pointer").unwrap_or(8)),
            TypeRef::Array { count, element } => count.checked_mul(self.type_size(element)?),
            TypeRef::Struct(n) => self.user_type(n).map(|u| u.size),
            TypeRef::Enum(n) => Some(self.enumeration(n).map_or(4, |e| e.size)),
            TypeRef::Bitfield { base, .. } => self.type_size(base),
            TypeRef::Function => None,
        }
    }

    /// Value of an enum constant.
    pub fn enum_value(&self, enum_name: &str, constant: &str) -> Option<i64> {
        let e = self.enumeration(enum_name)?;
        e.constants
            .iter()
            .find(|(n, _)| n == constant)
            .map(|(_, v)| *v)
    }

    /// Name of an enum value (the first constant with that value).
    pub fn enum_name(&self, enum_name: &str, value: i64) -> Option<&str> {
        let e = self.enumeration(enum_name)?;
        e.constants
            .iter()
            .find(|(_, v)| *v == value)
            .map(|(n, _)| n.as_str())
    }

    /// Whether a struct or union of this name exists.
    pub fn has_type(&self, name: &str) -> bool {
        let l = &self.inner.layout;
        self.inner
            .lookups
            .user_type(name, || l.find(self.d(), S_UTYPES, name))
            .is_some()
    }

    /// Whether a struct or union has a field of this name.
    pub fn has_field(&self, type_name: &str, field: &str) -> bool {
        self.field(type_name, field).is_some()
    }

    /// Whether an enumeration of this name exists.
    pub fn has_enum(&self, name: &str) -> bool {
        self.inner.layout.find(self.d(), S_ENUMS, name).is_some()
    }

    /// Whether a symbol of this name exists.
    pub fn has_symbol(&self, name: &str) -> bool {
        self.symbol(name).is_some()
    }

    /// Names of all structs and unions, sorted.
    pub fn user_type_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.names(S_UTYPES)
    }

    /// Names of all enumerations, sorted.
    pub fn enumeration_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.names(S_ENUMS)
    }

    /// Names of all base types, sorted.
    pub fn base_type_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.names(S_BASES)
    }

    /// All symbols (name, RVA), sorted by name; linkage-name aliases are
    /// not included (see [`SymbolTable::symbol`]).
    pub fn symbols(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        let l = &self.inner.layout;
        let d = self.d();
        (0..l.count(S_SYMS))
            .filter_map(move |i| Some((l.name_of(d, S_SYMS, i)?, l.rva(d, S_SYMS, i)?)))
    }

    /// Raw linkage names that differ from the symbol's name (ISF
    /// `linkage_name`, or a PDB public before pdbconv-style stripping),
    /// with their RVA, sorted by name.
    pub fn linkage_names(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        let l = &self.inner.layout;
        let d = self.d();
        (0..l.count(S_ALIASES))
            .filter_map(move |i| Some((l.name_of(d, S_ALIASES, i)?, l.rva(d, S_ALIASES, i)?)))
    }

    fn names(&self, s: usize) -> impl Iterator<Item = &str> + '_ {
        let l = &self.inner.layout;
        let d = self.d();
        (0..l.count(s)).filter_map(move |i| l.name_of(d, s, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small ISF covering every kind of type.
    const ISF: &str = r#"{
      "metadata": {"format": "6.1.0", "windows": {"pdb": {"GUID": "00112233445566778899aabbccddeeff", "age": 3, "database": "t.pdb"}}},
      "base_types": {"unsigned long": {"size": 4}, "pointer": {"size": 8}, "char": {"size": 1}},
      "user_types": {
        "_A": {"kind": "struct", "size": 32, "fields": {
          "x": {"offset": 0, "type": {"kind": "base", "name": "unsigned long"}},
          "bits": {"offset": 4, "type": {"kind": "bitfield", "bit_position": 3, "bit_length": 2, "type": {"kind": "base", "name": "unsigned long"}}},
          "p": {"offset": 8, "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "_A"}}},
          "arr": {"offset": 16, "type": {"kind": "array", "count": 2, "subtype": {"kind": "union", "name": "_U"}}},
          "e": {"offset": 28, "type": {"kind": "enum", "name": "_E"}},
          "f": {"offset": 24, "type": {"kind": "pointer", "subtype": {"kind": "function"}}}}},
        "_U": {"kind": "union", "size": 4, "fields": {"a": {"offset": 0, "type": {"kind": "base", "name": "char"}}}}
      },
      "enums": {"_E": {"base": "int", "size": 4, "constants": {"One": 1, "MinusOne": -1}}},
      "symbols": {"Sym": {"address": 4096}, "Other": {"address": 8192, "linkage_name": "_Other"}}
    }"#;

    fn small() -> SymbolTable {
        SymbolTable::from_isf_bytes(ISF.as_bytes(), Path::new("t.json")).unwrap()
    }

    fn exercise(t: &SymbolTable) {
        let names: Vec<String> = t.user_type_names().map(str::to_string).collect();
        for n in &names {
            if let Some(u) = t.user_type(n) {
                for f in &u.fields {
                    let _ = (
                        t.type_size(&f.ty),
                        t.field_path(n, &format!("{}[1].a", f.name)),
                    );
                }
            }
        }
        let enums: Vec<String> = t.enumeration_names().map(str::to_string).collect();
        for e in &enums {
            let _ = (t.enum_value(e, "One"), t.enum_name(e, -1));
        }
        for r in [0, 4095, 4096, 5000, 8192, u64::MAX] {
            let _ = t.symbol_at(r);
        }
        let _ = (
            t.symbol("Sym"),
            t.symbol("_Other"),
            t.identity(),
            t.base_size("char"),
        );
        let _ = (
            t.symbols().count(),
            t.linkage_names().count(),
            t.base_type_names().count(),
        );
    }

    #[test]
    fn remembered_lookups_give_the_answers_found_the_first_time() {
        let t = small();
        for _ in 0..3 {
            assert_eq!(t.field_path("_A", "p").map(|f| f.0), Some(8));
            assert_eq!(t.field_path("_A", "arr[1]").map(|f| f.0), Some(20));
            assert_eq!(t.field_path("_A", "nope"), None);
            assert_eq!(t.field_path("_NoSuchType", "x"), None);
            assert_eq!(t.user_type("_A").map(|u| u.size), Some(32));
            assert!(t.user_type("_Nope").is_none() && !t.has_type("_Nope"));
            assert_eq!(t.base_size("char"), Some(1));
            assert_eq!(t.base_size("no such base"), None);
        }
    }

    #[test]
    fn small_isf_round_trips_through_the_compact_form() {
        let t = small();
        assert_eq!(
            t.identity().unwrap().guid,
            "00112233445566778899AABBCCDDEEFF"
        );
        assert_eq!(
            t.identity().unwrap().server_key(),
            "00112233445566778899AABBCCDDEEFF3"
        );
        assert_eq!(
            t.field_path("_A", "arr[1].a"),
            Some((20, TypeRef::Base("char".into())))
        );
        assert_eq!(
            t.field("_A", "bits").unwrap().ty,
            TypeRef::Bitfield {
                position: 3,
                length: 2,
                base: Box::new(TypeRef::Base("unsigned long".into()))
            }
        );
        assert_eq!(t.enum_value("_E", "MinusOne"), Some(-1));
        assert_eq!(t.symbol("_Other"), Some(8192));
        assert_eq!(t.symbol("Other"), Some(8192));
        assert_eq!(t.symbol_at(8191), Some(("Sym", 4095)));
        assert!(t.user_type("_U").unwrap().is_union);
        let again = SymbolTable::from_compact_bytes(t.compact_bytes().to_vec()).unwrap();
        assert_eq!(again.user_type("_A"), t.user_type("_A"));
        exercise(&again);
    }

    /// Damage that keeps a valid checksum (as a hostile file could): every
    /// reader must stay in bounds.
    #[test]
    fn damaged_images_with_valid_checksums_never_panic() {
        let good = small().compact_bytes().to_vec();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..3000 {
            let mut d = good.clone();
            let flips = 1 + round % 6;
            for _ in 0..flips {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Section table and body (past magic, lengths, checksum).
                let i = 52 + (seed as usize) % (d.len() - 52);
                d[i] = (seed >> 40) as u8;
            }
            let sum = compact::checksum(&d[256..]);
            d[24..32].copy_from_slice(&sum.to_le_bytes());
            if let Ok(t) = SymbolTable::from_compact_bytes(d) {
                exercise(&t);
            }
        }
    }
}
