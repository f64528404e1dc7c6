//! Integration tests: the 8 shared kernel ISFs, PDBs made from them with
//! isf2pdb, a PDB built from C with clang + lld-link, the symbol store in
//! every layout, the compact cache, and a download from a local server.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use hangscope_symbols::{
    ErrorKind, PdbIdentity, SymbolCache, SymbolPathElement, SymbolStore, SymbolTable, TypeRef,
};

mod linux;

const WIN7: &str = "339E74133576439CBCDF7E0229DA3773-1";

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/symbols")
}

fn isf_path(key: &str) -> PathBuf {
    shared_dir().join(format!("windows/ntkrnlmp.pdb/{key}.json.xz"))
}

fn all_isfs() -> Vec<PathBuf> {
    let dir = shared_dir().join("windows/ntkrnlmp.pdb");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("shared symbols missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json.xz"))
        .collect();
    v.sort();
    v
}

fn id_of(key: &str) -> PdbIdentity {
    let (guid, age) = key.split_once('-').unwrap();
    PdbIdentity {
        name: "ntkrnlmp.pdb".into(),
        guid: guid.into(),
        age: age.parse().unwrap(),
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------- ISF ----

#[test]
fn tables_and_stores_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<SymbolTable>();
    shareable::<SymbolStore>();
    shareable::<SymbolCache>();
}

/// An independent reading of an ISF with serde_json::Value, to check the
/// typed loader against.
fn value_type(v: &serde_json::Value) -> TypeRef {
    let kind = v["kind"].as_str().unwrap();
    let name = || v["name"].as_str().unwrap().to_string();
    match kind {
        "base" => TypeRef::Base(name()),
        "struct" | "union" | "class" => TypeRef::Struct(name()),
        "enum" => TypeRef::Enum(name()),
        "function" => TypeRef::Function,
        "pointer" => TypeRef::Pointer(Box::new(value_type(&v["subtype"]))),
        "array" => TypeRef::Array {
            count: v["count"].as_u64().unwrap(),
            element: Box::new(value_type(&v["subtype"])),
        },
        "bitfield" => TypeRef::Bitfield {
            position: v["bit_position"].as_u64().unwrap() as u32,
            length: v["bit_length"].as_u64().unwrap() as u32,
            base: Box::new(value_type(&v["type"])),
        },
        k => panic!("kind {k}"),
    }
}

#[test]
fn every_shared_isf_loads_and_matches_an_independent_reading() {
    let isfs = all_isfs();
    assert_eq!(isfs.len(), 8, "expected the 8 shared kernel ISFs");
    for path in isfs {
        let t = SymbolTable::load_isf(&path).unwrap();
        let key = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".json.xz", "");
        assert_eq!(t.identity(), Some(&id_of(&key)), "{}", path.display());

        let mut text = String::new();
        xz2::read::XzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let uts = v["user_types"].as_object().unwrap();
        assert_eq!(t.user_type_names().count(), uts.len());
        for (name, u) in uts {
            let got = t
                .user_type(name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(got.size, u["size"].as_u64().unwrap(), "{name} size");
            assert_eq!(got.is_union, u["kind"] == "union", "{name} kind");
            let fields = u["fields"].as_object().unwrap();
            assert_eq!(got.fields.len(), fields.len(), "{name} field count");
            for w in got.fields.windows(2) {
                assert!(
                    w[0].offset <= w[1].offset,
                    "{name} fields not in offset order"
                );
            }
            for (fname, f) in fields {
                let gf = t
                    .field(name, fname)
                    .unwrap_or_else(|| panic!("{name}.{fname} missing"));
                assert_eq!(gf.offset, f["offset"].as_u64().unwrap(), "{name}.{fname}");
                assert_eq!(gf.ty, value_type(&f["type"]), "{name}.{fname}");
            }
        }
        let enums = v["enums"].as_object().unwrap();
        assert_eq!(t.enumeration_names().count(), enums.len());
        for (name, e) in enums {
            let got = t.enumeration(name).unwrap();
            assert_eq!(got.size, e["size"].as_u64().unwrap());
            let cs = e["constants"].as_object().unwrap();
            assert_eq!(got.constants.len(), cs.len());
            for (c, val) in cs {
                assert_eq!(t.enum_value(name, c), val.as_i64(), "{name}.{c}");
            }
        }
        for (name, b) in v["base_types"].as_object().unwrap() {
            assert_eq!(t.base_size(name), b["size"].as_u64(), "base {name}");
        }
        let syms = v["symbols"].as_object().unwrap();
        let with_address = syms.values().filter(|s| s.get("address").is_some()).count();
        assert_eq!(t.symbols().count(), with_address);
        for (name, s) in syms {
            let Some(a) = s["address"].as_u64() else {
                continue;
            };
            assert_eq!(t.symbol(name), Some(a), "symbol {name}");
            if let Some(l) = s["linkage_name"].as_str() {
                assert_eq!(t.symbol(l), Some(a), "linkage name {l}");
            }
        }

        // The kernel objects hangscope reads, present in every build.
        for (ty, fields) in [
            (
                "_EPROCESS",
                &[
                    "ActiveProcessLinks",
                    "UniqueProcessId",
                    "ThreadListHead",
                    "ImageFileName",
                    "Pcb",
                ][..],
            ),
            (
                "_KTHREAD",
                &[
                    "WaitBlockList",
                    "State",
                    "WaitReason",
                    "WaitTime",
                    "WaitBlock",
                    "ApcState",
                ][..],
            ),
            (
                "_ERESOURCE",
                &[
                    "SystemResourcesList",
                    "OwnerEntry",
                    "OwnerTable",
                    "ActiveCount",
                    "Flag",
                    "SharedWaiters",
                    "ExclusiveWaiters",
                ][..],
            ),
            (
                "_IRP",
                &["Tail", "ThreadListEntry", "CurrentLocation", "StackCount"][..],
            ),
        ] {
            assert!(t.user_type(ty).unwrap().size > 0);
            for f in fields {
                assert!(t.has_field(ty, f), "{key}: {ty}.{f}");
            }
        }
        for s in [
            "PsActiveProcessHead",
            "ExpSystemResourcesList",
            "KdDebuggerDataBlock",
            "KeNumberProcessors",
        ] {
            assert!(t.has_symbol(s), "{key}: symbol {s}");
        }
        let (_, ty) = t
            .field_path("_IRP", "Tail.Overlay.CurrentStackLocation")
            .unwrap();
        assert_eq!(
            ty,
            TypeRef::Pointer(Box::new(TypeRef::Struct("_IO_STACK_LOCATION".into())))
        );
    }
}

#[test]
fn win7_offsets_match_the_known_layout() {
    let t = SymbolTable::load_isf(&isf_path(WIN7)).unwrap();
    // Windows 7 SP1 x64 values, as every kernel debugger shows them.
    assert_eq!(
        t.field("_EPROCESS", "ActiveProcessLinks").unwrap().offset,
        0x188
    );
    assert_eq!(
        t.field("_EPROCESS", "UniqueProcessId").unwrap().offset,
        0x180
    );
    assert_eq!(t.field("_KTHREAD", "State").unwrap().offset, 0x164);
    assert_eq!(t.field("_KTHREAD", "WaitReason").unwrap().offset, 0x26b);
    assert_eq!(t.user_type("_IRP").unwrap().size, 0xd0);
    assert_eq!(t.user_type("_ERESOURCE").unwrap().size, 0x68);
    assert_eq!(
        t.field_path("_IRP", "Tail.Overlay.CurrentStackLocation")
            .map(|x| x.0),
        Some(0xb8)
    );
    // Array index: WaitBlock[1] is one _KWAIT_BLOCK (0x30) past WaitBlock.
    let wb = t.field("_KTHREAD", "WaitBlock").unwrap().offset;
    assert_eq!(
        t.field_path("_KTHREAD", "WaitBlock[1]").unwrap(),
        (wb + 0x30, TypeRef::Struct("_KWAIT_BLOCK".into()))
    );
    let obj = t.field("_KWAIT_BLOCK", "Object").unwrap().offset;
    assert_eq!(
        t.field_path("_KTHREAD", "WaitBlock[0x2].Object").unwrap().0,
        wb + 0x60 + obj
    );
    assert_eq!(
        t.field_path("_KTHREAD", "WaitBlock[4]"),
        None,
        "out of bounds"
    );
    assert_eq!(
        t.field_path("_KTHREAD", "WaitBlockList.Object"),
        None,
        "pointers are not followed"
    );
    assert_eq!(t.field_path("_KTHREAD", "NoSuchField"), None);
    assert_eq!(t.field_path("_KTHREAD", "WaitBlock[1"), None);

    assert_eq!(
        t.type_size(&TypeRef::Pointer(Box::new(TypeRef::Function))),
        Some(8)
    );
    assert_eq!(
        t.type_size(&t.field("_KTHREAD", "WaitBlock").unwrap().ty),
        Some(4 * 0x30)
    );
    assert_eq!(
        t.type_size(&TypeRef::Struct("_ERESOURCE".into())),
        Some(0x68)
    );
    assert_eq!(t.type_size(&TypeRef::Function), None);

    assert_eq!(t.enum_value("_KWAIT_REASON", "WrQueue"), Some(15));
    assert_eq!(t.enum_name("_KWAIT_REASON", 15), Some("WrQueue"));
    assert_eq!(t.enum_value("_POOL_TYPE", "PagedPool"), Some(1));
    assert_eq!(
        t.enum_value("_ARBITER_RESULT", "ArbiterResultUndefined"),
        Some(-1)
    );
    assert_eq!(t.enum_name("_KWAIT_REASON", 12345), None);

    let ksc = t.symbol("KiSwapContext").unwrap();
    assert_eq!(ksc, 615136);
    assert_eq!(t.symbol_at(ksc), Some(("KiSwapContext", 0)));
    let (name, off) = t.symbol_at(ksc + 0x7a).unwrap();
    assert!(off <= 0x7a && t.symbol(name) == Some(ksc + 0x7a - off));
    assert_eq!(t.symbol("PsActiveProcessHead"), Some(2210112));
    assert_eq!(t.symbol_at(0), None, "nothing below the first symbol");
    assert!(t.base_size("pointer") == Some(8) && t.base_size("unsigned long") == Some(4));
    assert!(!t.has_type("_NO_SUCH_TYPE") && t.user_type("").is_none());
}

/// Issue 10: bitfields that cannot be (length 0, 65 or 200, a position
/// past bit 63) are refused where they are read, naming the field.
#[test]
fn issue_10_impossible_bitfields_are_refused() {
    let dir = tempdir();
    let p = dir.path().join("bits.json");
    let isf = |pos: u32, len: u32| {
        format!(
            r#"{{"base_types": {{"unsigned long": {{"size": 4}}}}, "user_types": {{"_X": {{"kind": "struct", "size": 8, "fields": {{"bits": {{"offset": 0, "type": {{"kind": "bitfield", "bit_position": {pos}, "bit_length": {len}, "type": {{"kind": "base", "name": "unsigned long"}}}}}}}}}}}}, "enums": {{}}, "symbols": {{}}}}"#
        )
    };
    for (pos, len) in [
        (0, 0),
        (0, 65),
        (0, 200),
        (64, 1),
        (63, 2),
        (4_000_000_000, 8),
    ] {
        std::fs::write(&p, isf(pos, len)).unwrap();
        let e = SymbolTable::load_isf(&p).unwrap_err();
        assert!(
            e.to_string().contains("_X.bits") && e.to_string().contains("does not fit"),
            "({pos}, {len}): {e}"
        );
    }
    for (pos, len) in [(0, 1), (3, 2), (0, 64), (63, 1)] {
        std::fs::write(&p, isf(pos, len)).unwrap();
        SymbolTable::load_isf(&p).unwrap_or_else(|e| panic!("({pos}, {len}): {e}"));
    }
}

#[test]
fn bad_isf_is_an_error_with_a_location() {
    let dir = tempdir();
    let p = dir.path().join("bad.json");
    std::fs::write(&p, b"{\n \"user_types\": {\"_X\": {\"kind\": \"struct\", \"size\": 8, \"fields\": {\"a\": {\"offset\": 0, \"type\": {\"kind\": \"warp\"}}}}}}").unwrap();
    let e = SymbolTable::load_isf(&p).unwrap_err();
    assert_eq!(e.name(), "Format");
    assert!(
        e.to_string().contains("_X.a") && e.to_string().contains("warp"),
        "{e}"
    );
    std::fs::write(&p, b"{\n\n \"user_types\": [}").unwrap();
    let e = SymbolTable::load_isf(&p).unwrap_err();
    assert_eq!(e.name(), "Json");
    assert!(e.to_string().contains("line 3"), "{e}");
    let e = SymbolTable::load_isf(&dir.path().join("missing.json")).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Io { .. }) && e.to_string().contains("missing.json"),
        "{e}"
    );
    // Minimal ISF without metadata: loads, no identity.
    std::fs::write(&p, br#"{"base_types": {"int": {"size": 4}}, "user_types": {}, "enums": {}, "symbols": {"x": {"address": 16}}}"#).unwrap();
    let t = SymbolTable::load_isf(&p).unwrap();
    assert_eq!(
        (t.identity(), t.symbol("x"), t.base_size("int")),
        (None, Some(16), Some(4))
    );
}

// ------------------------------------------------------------ PDB tools ----

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// Loud skip: the tests below need LLVM's tools; say so on stderr.
fn tools_or_skip(tools: &[&str]) -> bool {
    let missing: Vec<_> = tools.iter().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED: {missing:?} not installed (apt-get install clang lld llvm) !!!!!!!!\n"
    );
    false
}

fn isf2pdb(key: &str, out: &Path) -> PathBuf {
    let tool = shared_dir().join("../tools/isf2pdb.py");
    let pdb = out.join("ntkrnlmp.pdb");
    let o = Command::new("python3")
        .arg(&tool)
        .arg(isf_path(key))
        .arg(&pdb)
        .arg(out.join("work"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "isf2pdb failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    pdb
}

/// Every answer of `isf` must be the PDB's answer, and the PDB must not
/// have anything the ISF lacks (beyond what isf2pdb cannot carry).
fn assert_same_tables(isf: &SymbolTable, pdb: &SymbolTable, key: &str) {
    assert_eq!(pdb.identity(), isf.identity(), "{key} identity");
    let a: Vec<&str> = isf.user_type_names().collect();
    let b: Vec<&str> = pdb.user_type_names().collect();
    assert_eq!(a, b, "{key}: user type names");
    for n in a {
        let (x, y) = (isf.user_type(n).unwrap(), pdb.user_type(n).unwrap());
        let sorted = |u: &hangscope_symbols::UserType| {
            let mut f = u.fields.clone();
            f.sort_by(|p, q| (p.offset, &p.name).cmp(&(q.offset, &q.name)));
            f
        };
        assert_eq!((x.size, x.is_union), (y.size, y.is_union), "{key}: {n}");
        assert_eq!(sorted(x), sorted(y), "{key}: {n} fields");
    }
    let a: Vec<&str> = isf.enumeration_names().collect();
    assert_eq!(
        a,
        pdb.enumeration_names().collect::<Vec<_>>(),
        "{key}: enum names"
    );
    for n in a {
        assert_eq!(isf.enumeration(n), pdb.enumeration(n), "{key}: enum {n}");
    }
    for n in isf.base_type_names() {
        assert_eq!(isf.base_size(n), pdb.base_size(n), "{key}: base {n}");
    }
    let isf_syms: HashMap<&str, u64> = isf.symbols().collect();
    for (n, rva) in &isf_syms {
        assert_eq!(pdb.symbol(n), Some(*rva), "{key}: symbol {n}");
    }
    for (n, rva) in pdb.symbols() {
        if isf_syms.get(n) == Some(&rva) {
            continue;
        }
        // isf2pdb writes the ISF's already-stripped names; a PDB reader
        // strips a leading `_`/`@` again (as pdbconv does), so such names
        // come back one character shorter, still found under the ISF name.
        let restored = ["_", "@"]
            .iter()
            .any(|p| isf_syms.get(format!("{p}{n}").as_str()) == Some(&rva));
        assert!(restored, "{key}: PDB symbol {n} at {rva:#x} not in the ISF");
    }
    // isf2pdb writes each symbol under its ISF name only, so the ISF's raw
    // linkage names (`_CmAddDeviceToContainer` for `CmAddDeviceToContainer`)
    // are not in the PDB. Check that this is the only gap, and say how big.
    let mut lost = 0;
    for (l, rva) in isf.linkage_names() {
        if pdb.symbol(l) == Some(rva) {
            continue;
        }
        lost += 1;
        let stripped: Vec<&str> = isf_syms
            .iter()
            .filter(|(_, &r)| r == rva)
            .map(|(n, _)| *n)
            .collect();
        assert!(
            stripped.iter().any(|n| pdb.symbol(n) == Some(rva)),
            "{key}: linkage name {l} at {rva:#x}: its symbol is missing from the PDB too"
        );
    }
    if lost > 0 {
        eprintln!("{key}: isf2pdb limitation: {lost} ISF linkage names are not in the PDB (their stripped names are)");
    }
}

#[test]
fn pdb_made_by_isf2pdb_gives_the_same_answers_as_its_isf() {
    if !tools_or_skip(&["yaml2obj", "lld-link"]) {
        return;
    }
    // Windows 7 SP1 and two Windows 10+ builds (the largest ISFs).
    for key in [
        WIN7,
        "B3ED6FA26A1FD6DF6A34DF3B125CAFE8-1",
        "0CE4A95C0CD782A7596B034D8648E585-1",
    ] {
        let dir = tempdir();
        let pdb_path = isf2pdb(key, dir.path());
        let pdb = SymbolTable::load_pdb(&pdb_path).unwrap();
        let isf = SymbolTable::load_isf(&isf_path(key)).unwrap();
        assert_same_tables(&isf, &pdb, key);
        // And through the cache, mapped.
        let cache = SymbolCache::new(dir.path().join("cache"));
        cache.store(&pdb_path, &pdb).unwrap();
        let mapped = cache.load_cached(&pdb_path).expect("cache hit");
        assert!(mapped.cache_file().is_some());
        assert_same_tables(&isf, &mapped, key);
    }
}

const DRIVER_C: &str = r#"
typedef unsigned long ULONG;
typedef unsigned char UCHAR;
typedef unsigned short USHORT;
typedef long long LONGLONG;

typedef enum _HS_COLOR { HsRed = 0, HsGreen = 5, HsNegative = -3, HsBig = 0x7fffffff } HS_COLOR;

typedef struct _HS_LIST { struct _HS_LIST *Flink, *Blink; } HS_LIST;

typedef struct _HS_THING {
    USHORT Type;                 /* 0 */
    UCHAR Small;                 /* 2 */
    ULONG Kind : 3;              /* 4, bits 0..2 */
    ULONG Flags : 5;             /* 4, bits 3..7 */
    ULONG Rest : 24;             /* 4, bits 8..31 */
    LONGLONG Big;                /* 8 */
    union {
        void *Pointer;           /* 16 */
        ULONG Words[2];          /* 16 */
    } U;
    HS_LIST Links;               /* 24 */
    const volatile HS_COLOR Color; /* 40 */
    int (*Callback)(int);        /* 48 */
    USHORT Name[8];              /* 56 */
    struct _HS_THING *Next;      /* 72 */
    HS_LIST Table[3][2];         /* 80 */
} HS_THING;                      /* 176 */

HS_THING HsGlobalThing;
ULONG HsCounter = 7;

__declspec(noinline) int HsHelper(int x) { return x * 3 + (int)HsCounter; }

long DriverEntry(void *driver, void *path) {
    HsGlobalThing.Callback = HsHelper;
    HsGlobalThing.Kind = 2;
    return HsHelper((int)sizeof(HS_THING)) + (int)HsGlobalThing.Color + (driver != path);
}
"#;

/// Build `hsdrv.sys` + `hsdrv.pdb` from C with clang and lld-link.
fn build_driver(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    build_driver_from(dir, DRIVER_C)
}

fn build_driver_from(dir: &Path, source: &str) -> Option<(PathBuf, PathBuf)> {
    if !tools_or_skip(&["clang", "lld-link"]) {
        return None;
    }
    std::fs::write(dir.join("hsdrv.c"), source).unwrap();
    let run = |cmd: &mut Command| {
        let o = cmd.current_dir(dir).output().unwrap();
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(Command::new("clang").args([
        "--target=x86_64-pc-windows-msvc",
        "-c",
        "-gcodeview",
        "-g",
        "-O1",
        "hsdrv.c",
        "-o",
        "hsdrv.obj",
    ]));
    run(Command::new("lld-link").args([
        "/debug",
        "/entry:DriverEntry",
        "/subsystem:native",
        "/driver",
        "/nodefaultlib",
        "/out:hsdrv.sys",
        "/pdb:hsdrv.pdb",
        "hsdrv.obj",
    ]));
    Some((dir.join("hsdrv.sys"), dir.join("hsdrv.pdb")))
}

/// The RSDS record of a PE image, read independently of the PDB reader.
fn rsds(image: &Path) -> PdbIdentity {
    let d = std::fs::read(image).unwrap();
    let p = d
        .windows(4)
        .position(|w| w == b"RSDS")
        .expect("RSDS record");
    let g = &d[p + 4..p + 20];
    let guid = format!(
        "{:08X}{:04X}{:04X}{}",
        u32::from_le_bytes(g[0..4].try_into().unwrap()),
        u16::from_le_bytes(g[4..6].try_into().unwrap()),
        u16::from_le_bytes(g[6..8].try_into().unwrap()),
        g[8..]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    );
    let age = u32::from_le_bytes(d[p + 20..p + 24].try_into().unwrap());
    let name_end = d[p + 24..].iter().position(|&b| b == 0).unwrap();
    let path = String::from_utf8_lossy(&d[p + 24..p + 24 + name_end]).to_string();
    let name = path.rsplit(['/', '\\']).next().unwrap().to_string();
    PdbIdentity { name, guid, age }
}

#[test]
fn pdb_built_from_c_has_its_layouts_bitfields_enums_and_functions() {
    let dir = tempdir();
    let Some((sys, pdb_path)) = build_driver(dir.path()) else {
        return;
    };
    let t = SymbolTable::load_pdb(&pdb_path).unwrap();
    assert_eq!(
        t.identity(),
        Some(&rsds(&sys)),
        "identity must match the image's RSDS record"
    );

    let u = t.user_type("_HS_THING").unwrap();
    assert_eq!((u.size, u.is_union), (176, false));
    let off = |f: &str| {
        t.field("_HS_THING", f)
            .unwrap_or_else(|| panic!("{f}"))
            .offset
    };
    let ty = |f: &str| t.field("_HS_THING", f).unwrap().ty.clone();
    let base = |n: &str| Box::new(TypeRef::Base(n.into()));
    assert_eq!(
        (off("Type"), ty("Type")),
        (0, TypeRef::Base("unsigned short".into()))
    );
    assert_eq!(
        (off("Small"), ty("Small")),
        (2, TypeRef::Base("unsigned char".into()))
    );
    assert_eq!(off("Kind"), 4);
    assert_eq!(
        ty("Kind"),
        TypeRef::Bitfield {
            position: 0,
            length: 3,
            base: base("unsigned long")
        }
    );
    assert_eq!(
        ty("Flags"),
        TypeRef::Bitfield {
            position: 3,
            length: 5,
            base: base("unsigned long")
        }
    );
    assert_eq!(
        (off("Rest"), ty("Rest")),
        (
            4,
            TypeRef::Bitfield {
                position: 8,
                length: 24,
                base: base("unsigned long")
            }
        )
    );
    assert_eq!(
        (off("Big"), ty("Big")),
        (8, TypeRef::Base("long long".into()))
    );
    assert_eq!(off("U"), 16);
    let TypeRef::Struct(uname) = ty("U") else {
        panic!("U is {:?}", ty("U"))
    };
    let un = t.user_type(&uname).unwrap();
    assert!(un.is_union && un.size == 8, "{un:?}");
    assert_eq!(
        t.field_path("_HS_THING", "U.Words[1]"),
        Some((20, TypeRef::Base("unsigned long".into())))
    );
    assert_eq!(
        t.field(&uname, "Pointer").unwrap().ty,
        TypeRef::Pointer(base("void"))
    );
    assert_eq!(
        (off("Links"), ty("Links")),
        (24, TypeRef::Struct("_HS_LIST".into()))
    );
    // const volatile is stripped (LF_MODIFIER).
    assert_eq!(
        (off("Color"), ty("Color")),
        (40, TypeRef::Enum("_HS_COLOR".into()))
    );
    assert_eq!(
        (off("Callback"), ty("Callback")),
        (48, TypeRef::Pointer(Box::new(TypeRef::Function)))
    );
    assert_eq!(
        (off("Name"), ty("Name")),
        (
            56,
            TypeRef::Array {
                count: 8,
                element: base("unsigned short")
            }
        )
    );
    assert_eq!(
        ty("Next"),
        TypeRef::Pointer(Box::new(TypeRef::Struct("_HS_THING".into())))
    );
    assert_eq!(
        (off("Table"), ty("Table")),
        (
            80,
            TypeRef::Array {
                count: 3,
                element: Box::new(TypeRef::Array {
                    count: 2,
                    element: Box::new(TypeRef::Struct("_HS_LIST".into()))
                })
            }
        )
    );
    assert_eq!(
        t.field_path("_HS_THING", "Table[2][1].Blink").unwrap().0,
        80 + 2 * 32 + 16 + 8
    );
    assert_eq!(t.type_size(&ty("Table")), Some(96));
    let list = t.user_type("_HS_LIST").unwrap();
    assert_eq!(
        list.fields
            .iter()
            .map(|f| (f.name.as_str(), f.offset))
            .collect::<Vec<_>>(),
        [("Flink", 0), ("Blink", 8)]
    );

    let e = t.enumeration("_HS_COLOR").unwrap();
    assert_eq!(e.size, 4);
    assert_eq!(
        e.constants,
        [
            ("HsNegative".to_string(), -3),
            ("HsRed".into(), 0),
            ("HsGreen".into(), 5),
            ("HsBig".into(), 0x7fff_ffff)
        ]
    );
    assert_eq!(t.enum_name("_HS_COLOR", -3), Some("HsNegative"));

    let entry = t.symbol("DriverEntry").expect("DriverEntry");
    let helper = t.symbol("HsHelper").expect("HsHelper");
    assert!(entry >= 0x1000 && helper >= 0x1000 && entry != helper);
    assert_eq!(t.symbol_at(entry + 1), Some(("DriverEntry", 1)));
    assert_eq!(t.symbol_at(helper), Some(("HsHelper", 0)));
    let g = t.symbol("HsGlobalThing").expect("data symbol");
    let c = t.symbol("HsCounter").expect("data symbol");
    assert_ne!(g, c);
    // The image's export-free entry point is DriverEntry: check against
    // the PE header's AddressOfEntryPoint.
    let img = std::fs::read(&sys).unwrap();
    let pe = u32::from_le_bytes(img[0x3c..0x40].try_into().unwrap()) as usize;
    let ep = u32::from_le_bytes(img[pe + 24 + 16..pe + 24 + 20].try_into().unwrap());
    assert_eq!(u64::from(ep), entry);
}

/// Volatility's own PDB reader on the same clang-built PDB must agree with
/// ours. (pdbconv cannot read LF_NESTTYPE, so the union gets a name here.)
#[test]
fn pdb_loader_agrees_with_volatility_pdbconv() {
    let venv = std::env::var_os("HANGSCOPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv"));
    let python = venv.join("bin/python");
    if !python.is_file() {
        eprintln!(
            "\n!!!!!!!! SKIPPED: no volatility3 venv at {} (scripts/setup.sh makes it) !!!!!!!!\n",
            venv.display()
        );
        return;
    }
    let dir = tempdir();
    let source = DRIVER_C
        .replace(
            "    union {\n        void *Pointer;           /* 16 */\n        ULONG Words[2];          /* 16 */\n    } U;",
            "    union _HS_U U;",
        )
        .replace("typedef struct _HS_THING {", "union _HS_U { void *Pointer; ULONG Words[2]; };\ntypedef struct _HS_THING {");
    assert!(
        source.contains("union _HS_U U;"),
        "driver source changed; update this test"
    );
    let Some((_, pdb_path)) = build_driver_from(dir.path(), &source) else {
        return;
    };
    let isf_out = dir.path().join("hsdrv.json");
    let o = Command::new(&python)
        .args(["-m", "volatility3.framework.symbols.windows.pdbconv", "-f"])
        .arg(&pdb_path)
        .arg("-o")
        .arg(&isf_out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pdbconv: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let vol = SymbolTable::load_isf(&isf_out).unwrap();
    let ours = SymbolTable::load_pdb(&pdb_path).unwrap();

    // pdbconv cannot name the PDB from its content ("unknown.pdb").
    let (vi, oi) = (vol.identity().unwrap(), ours.identity().unwrap());
    assert_eq!((&vi.guid, vi.age), (&oi.guid, oi.age));
    for n in vol.user_type_names() {
        let mut a = vol.user_type(n).unwrap().clone();
        let mut b = ours
            .user_type(n)
            .unwrap_or_else(|| panic!("{n} missing"))
            .clone();
        a.fields
            .sort_by(|p, q| (p.offset, &p.name).cmp(&(q.offset, &q.name)));
        b.fields
            .sort_by(|p, q| (p.offset, &p.name).cmp(&(q.offset, &q.name)));
        assert_eq!(a, b);
    }
    assert_eq!(
        vol.user_type_names().count(),
        ours.user_type_names().count()
    );
    for n in vol.enumeration_names() {
        let (a, b) = (vol.enumeration(n).unwrap(), ours.enumeration(n).unwrap());
        assert_eq!(a.size, b.size);
        for (c, v) in &a.constants {
            let mine = ours.enum_value(n, c).unwrap();
            // clang writes -3 as LF_ULONG 0xFFFFFFFD; pdbconv keeps the raw
            // unsigned value, we read it as the enum's `int` does.
            let expected = if *v >= 1 << 31 && a.size == 4 {
                v - (1 << 32)
            } else {
                *v
            };
            assert_eq!(mine, expected, "{n}.{c}");
        }
    }
    for n in vol.base_type_names() {
        assert_eq!(vol.base_size(n), ours.base_size(n), "base {n}");
    }
    let vs: Vec<(&str, u64)> = vol.symbols().collect();
    assert_eq!(vs, ours.symbols().collect::<Vec<_>>());
    assert!(vs.len() >= 4, "{vs:?}");
}

/// Field lists over 64 KiB are split into records chained by LF_INDEX; a
/// struct and an enum with 3000 long-named members make clang do that.
#[test]
fn long_field_lists_follow_lf_index_continuations() {
    let n = 3000;
    let mut c = String::from("typedef unsigned long ULONG;\ntypedef enum _HS_MANY {");
    for i in 0..n {
        c += &format!("HsManyConstant_{i:04}_with_a_long_name = {},", i * 7 - 5);
    }
    c += "} HS_MANY;\ntypedef struct _HS_BIG {\n";
    for i in 0..n {
        c += &format!("    ULONG Field_{i:04}_with_quite_a_long_member_name;\n");
    }
    c += "    HS_MANY Last;\n} HS_BIG;\nHS_BIG HsBig;\n\
          long DriverEntry(void *a, void *b) { return (long)HsBig.Field_0007_with_quite_a_long_member_name + (a != b); }\n";
    let dir = tempdir();
    let Some((_, pdb_path)) = build_driver_from(dir.path(), &c) else {
        return;
    };
    if have("llvm-pdbutil") {
        let o = Command::new("llvm-pdbutil")
            .args(["dump", "-types"])
            .arg(&pdb_path)
            .output()
            .unwrap();
        let continuations = String::from_utf8_lossy(&o.stdout)
            .matches("LF_INDEX")
            .count();
        assert!(
            continuations >= 2,
            "the PDB was meant to need LF_INDEX records"
        );
    }
    let t = SymbolTable::load_pdb(&pdb_path).unwrap();
    let big = t.user_type("_HS_BIG").unwrap();
    assert_eq!(big.fields.len(), n as usize + 1);
    assert_eq!(big.size, 4 * n as u64 + 4);
    for (i, f) in big.fields.iter().take(n as usize).enumerate() {
        assert_eq!(
            f.name,
            format!("Field_{i:04}_with_quite_a_long_member_name")
        );
        assert_eq!(f.offset, 4 * i as u64);
    }
    assert_eq!(t.field("_HS_BIG", "Last").unwrap().offset, 4 * n as u64);
    let e = t.enumeration("_HS_MANY").unwrap();
    assert_eq!(e.constants.len(), n as usize);
    assert_eq!(
        t.enum_value("_HS_MANY", "HsManyConstant_0000_with_a_long_name"),
        Some(-5)
    );
    assert_eq!(
        t.enum_value("_HS_MANY", "HsManyConstant_2999_with_a_long_name"),
        Some(2999 * 7 - 5)
    );
}

#[test]
fn damaged_pdbs_are_errors_not_panics() {
    let dir = tempdir();
    let Some((_, pdb_path)) = build_driver(dir.path()) else {
        return;
    };
    let good = std::fs::read(&pdb_path).unwrap();
    let bad = dir.path().join("bad.pdb");
    // Deterministic pseudo-random damage: flipped bytes, truncation.
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..40 {
        let mut d = good.clone();
        if round % 4 == 3 {
            d.truncate((next() as usize) % d.len());
        } else {
            for _ in 0..(1 + round % 8) {
                let i = (next() as usize) % d.len();
                d[i] ^= (next() as u8) | 1;
            }
        }
        std::fs::write(&bad, &d).unwrap();
        // Either loads or errors; never panics.
        let _ = SymbolTable::load_pdb(&bad);
    }
    std::fs::write(&bad, b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0 garbage").unwrap();
    assert!(SymbolTable::load_pdb(&bad).is_err());
}

// -------------------------------------------------------------- cache ----

#[test]
fn cache_is_used_when_current_and_rebuilt_when_damaged_or_stale() {
    let dir = tempdir();
    let src = dir.path().join("nt.json.xz");
    std::fs::copy(isf_path(WIN7), &src).unwrap();
    let cache = SymbolCache::new(dir.path().join("cache"));
    assert!(cache.load_cached(&src).is_none());
    let cold = cache.load(&src).unwrap();
    assert!(cold.cache_file().is_none(), "first load parses");
    let cpath = cache.cache_path(&src);
    assert!(cpath.is_file());
    let warm = cache.load(&src).unwrap();
    assert_eq!(warm.cache_file(), Some(cpath.as_path()));
    assert_eq!(warm.identity(), cold.identity());
    assert_eq!(warm.user_type("_KTHREAD"), cold.user_type("_KTHREAD"));
    assert_eq!(warm.symbol("PsActiveProcessHead"), Some(2210112));

    let good = std::fs::read(&cpath).unwrap();
    let damage: Vec<(&str, Vec<u8>)> = vec![
        ("flipped byte", {
            let mut d = good.clone();
            let i = d.len() / 2;
            d[i] ^= 0x40;
            d
        }),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("header only", good[..256].to_vec()),
        ("empty", Vec::new()),
        ("garbage", vec![0xAB; 4096]),
        ("wrong version", {
            let mut d = good.clone();
            d[8] = 99;
            d
        }),
    ];
    for (what, bytes) in damage {
        std::fs::write(&cpath, &bytes).unwrap();
        assert!(
            cache.load_cached(&src).is_none(),
            "{what}: must be rejected"
        );
        let t = cache.load(&src).unwrap();
        assert_eq!(t.symbol("PsActiveProcessHead"), Some(2210112), "{what}");
        assert_eq!(std::fs::read(&cpath).unwrap(), good, "{what}: rebuilt");
    }

    // A different source under the same path: stale, rebuilt.
    std::fs::copy(isf_path("B3ED6FA26A1FD6DF6A34DF3B125CAFE8-1"), &src).unwrap();
    let t = cache.load(&src).unwrap();
    assert!(t.cache_file().is_none(), "stale cache must not be used");
    assert_eq!(
        t.identity(),
        Some(&id_of("B3ED6FA26A1FD6DF6A34DF3B125CAFE8-1"))
    );
    assert_eq!(cache.load(&src).unwrap().identity(), t.identity());
}

#[test]
fn random_damage_to_a_cache_file_never_panics() {
    let dir = tempdir();
    let src = dir.path().join("nt.json.xz");
    std::fs::copy(isf_path(WIN7), &src).unwrap();
    let cache = SymbolCache::new(dir.path().join("cache"));
    cache.load(&src).unwrap();
    let cpath = cache.cache_path(&src);
    let good = std::fs::read(&cpath).unwrap();
    let mut seed = 42u64;
    for _ in 0..30 {
        let mut d = good.clone();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (seed >> 33) as usize % d.len();
        d[i] = d[i].wrapping_add(1);
        std::fs::write(&cpath, &d).unwrap();
        // Either rejected by the checksum or identical; never a panic.
        if let Some(t) = cache.load_cached(&src) {
            assert_eq!(t.compact_bytes(), &good[..]);
        }
    }
}

// -------------------------------------------------------------- store ----

/// `builtin*` reaches the tables compiled into the crate, at its place on
/// the path: the Windows 10 19041 kernel is found with no directory at
/// all, and another PDB's error names the built-in tables as searched.
#[test]
fn builtin_element_finds_the_compiled_in_kernel_table() {
    let s = SymbolStore::from_path_spec("/no/such/dir;builtin*").unwrap();
    assert_eq!(
        s.elements(),
        &[
            SymbolPathElement::Dir("/no/such/dir".into()),
            SymbolPathElement::Builtin
        ]
    );
    let s = s.with_cache(None).with_download(false);
    let id = PdbIdentity {
        name: "ntkrnlmp.pdb".into(),
        guid: "606FF669409B00F7FC8C61A9C1670129".into(),
        age: 1,
    };
    let t = s.find(&id).expect("the built-in table");
    assert!(t.identity().is_some_and(|i| i.matches(&id)));
    assert!(t.has_type("_EPROCESS") && t.has_symbol("PsActiveProcessHead"));
    let other = PdbIdentity { age: 2, ..id };
    let e = s.find(&other).unwrap_err().to_string();
    assert!(e.contains("built-in tables"), "{e}");
}

#[test]
fn symbol_path_syntax() {
    let s = SymbolStore::from_path_spec(
        "srv*/tmp/a*https://msdl.microsoft.com/download/symbols; /plain/dir ;cache*/tmp/c;srv*http://x.test/s;\
         symsrv*symsrv.dll*/tmp/d*http://y.test;srv*/tmp/local;;",
    )
    .unwrap();
    assert_eq!(
        s.elements(),
        &[
            SymbolPathElement::Server {
                stores: vec!["/tmp/a".into()],
                url: Some("https://msdl.microsoft.com/download/symbols".into())
            },
            SymbolPathElement::Dir("/plain/dir".into()),
            SymbolPathElement::Cache("/tmp/c".into()),
            SymbolPathElement::Server {
                stores: vec!["/tmp/c".into()],
                url: Some("http://x.test/s".into())
            },
            SymbolPathElement::Server {
                stores: vec!["/tmp/d".into()],
                url: Some("http://y.test".into())
            },
            SymbolPathElement::Server {
                stores: vec!["/tmp/local".into()],
                url: None
            },
        ]
    );
    let e = SymbolStore::from_path_spec("weird*thing").unwrap_err();
    assert_eq!(e.name(), "PathSpec");
    assert!(e.to_string().contains("weird*thing"));
    assert!(SymbolStore::from_path_spec("srv*").is_err());
    assert!(SymbolStore::from_path_spec("")
        .unwrap()
        .elements()
        .is_empty());
}

fn store_for(dirs: &[&Path], cache: &Path) -> SymbolStore {
    let mut s = SymbolStore::from_path_spec("")
        .unwrap()
        .with_cache(Some(SymbolCache::new(cache)));
    for d in dirs {
        s.add_dir(*d);
    }
    s
}

#[test]
fn store_finds_volatility_layout_and_uses_the_cache() {
    let tmp = tempdir();
    let s = store_for(
        &[&tmp.path().join("nothing-here"), &shared_dir()],
        &tmp.path().join("cache"),
    );
    for isf in all_isfs() {
        let key = isf
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".json.xz", "");
        let t = s.find(&id_of(&key)).unwrap();
        assert_eq!(t.identity(), Some(&id_of(&key)));
        assert_eq!(t.source(), Some(isf.as_path()));
    }
    // Second round: mapped from the cache.
    let t = s.find(&id_of(WIN7)).unwrap();
    assert!(t.cache_file().is_some());
    // GUID in lower case and name in another case still match.
    let mut id = id_of(WIN7);
    id.guid = id.guid.to_lowercase();
    id.name = "NTKRNLMP.PDB".into();
    assert!(s.find(&id).is_ok());
}

#[test]
fn store_finds_isfs_by_metadata_and_in_server_layout() {
    let tmp = tempdir();
    // An ISF under an arbitrary name: found by reading its metadata.
    let odd = tmp.path().join("odd/deeper");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::copy(isf_path(WIN7), odd.join("kernel-from-somewhere.json.xz")).unwrap();
    // Things the index must skip without failing the search.
    std::fs::write(odd.join("junk.json"), b"{\"metadata\": [1, 2").unwrap();
    std::fs::write(odd.join("nometa.json"), br#"{"user_types": {}}"#).unwrap();
    std::fs::write(odd.join("broken.json.xz"), b"not xz at all").unwrap();
    // A decoy with the wrong identity in the Volatility place.
    let b3 = "B3ED6FA26A1FD6DF6A34DF3B125CAFE8-1";
    let vol = tmp.path().join("windows/ntkrnlmp.pdb");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::copy(isf_path(b3), vol.join(format!("{WIN7}.json.xz"))).unwrap();
    let s = store_for(&[tmp.path()], &tmp.path().join("cache"));
    let t = s.find(&id_of(WIN7)).unwrap();
    assert_eq!(
        t.source().unwrap().file_name().unwrap(),
        "kernel-from-somewhere.json.xz"
    );

    // Symbol-server layout holding an ISF (as we cache them there).
    let srv = tempdir();
    let key = id_of(b3).server_key();
    assert_eq!(key, "B3ED6FA26A1FD6DF6A34DF3B125CAFE81");
    let d = srv.path().join("ntkrnlmp.pdb").join(&key);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(isf_path(b3), d.join("ntkrnlmp.json.xz")).unwrap();
    let s = SymbolStore::from_path_spec(&format!("srv*{}", srv.path().display()))
        .unwrap()
        .with_cache(None);
    let t = s.find(&id_of(b3)).unwrap();
    assert_eq!(t.identity(), Some(&id_of(b3)));
    assert!(t.cache_file().is_none(), "no cache configured");
}

#[test]
fn store_finds_pdbs_in_symbol_server_layout() {
    let tmp = tempdir();
    let Some((sys, pdb)) = build_driver(tmp.path()) else {
        return;
    };
    let id = rsds(&sys);
    let srv = tmp.path().join("symbols");
    let d = srv.join(&id.name).join(id.server_key());
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(&pdb, d.join(&id.name)).unwrap();
    let s = SymbolStore::from_path_spec(&format!("srv*{}", srv.display()))
        .unwrap()
        .with_cache(Some(SymbolCache::new(tmp.path().join("cache"))));
    let t = s.find(&id).unwrap();
    assert!(t.symbol("DriverEntry").is_some());
    let t = s.find(&id).unwrap();
    assert!(
        t.cache_file().is_some(),
        "second find is mapped from the cache"
    );
    // Wrong age: not this file.
    let mut other = id.clone();
    other.age += 1;
    assert_eq!(s.find(&other).unwrap_err().name(), "SymbolsNotFound");
}

#[test]
fn missing_symbols_error_says_what_where_and_how_to_fix() {
    let tmp = tempdir();
    let a = tmp.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    let spec = format!(
        "{};srv*{}",
        a.display(),
        tmp.path().join("srvcache").display()
    );
    let s = SymbolStore::from_path_spec(&spec).unwrap().with_cache(None);
    let id = PdbIdentity {
        name: "ntkrnlmp.pdb".into(),
        guid: "0123456789ABCDEF0123456789ABCDEF".into(),
        age: 2,
    };
    let e = s.find(&id).unwrap_err();
    assert_eq!(e.name(), "SymbolsNotFound");
    let ErrorKind::NotFound { searched, .. } = &e.kind else {
        panic!("{e:?}")
    };
    assert!(searched.len() >= 3, "{searched:?}");
    let msg = e.to_string();
    for needle in [
        "ntkrnlmp.pdb",
        "0123456789ABCDEF0123456789ABCDEF",
        "age 2",
        "0123456789ABCDEF0123456789ABCDEF2",
        &a.display().to_string(),
        "srvcache",
        "_NT_SYMBOL_PATH=srv*",
        "msdl.microsoft.com",
        "windows/ntkrnlmp.pdb/0123456789ABCDEF0123456789ABCDEF-2.json.xz",
    ] {
        assert!(msg.contains(needle), "error lacks `{needle}`:\n{msg}");
    }
    // Identities from a dump are untrusted: no path tricks.
    for (name, guid) in [
        ("../../etc/passwd", "0123456789ABCDEF0123456789ABCDEF"),
        ("..", "0123456789ABCDEF0123456789ABCDEF"),
        ("nt\u{0}krnl.pdb", "0123456789ABCDEF0123456789ABCDEF"),
        ("ntkrnlmp.pdb", "0123456789ABCDEF0123456789ABCDE/"),
        ("ntkrnlmp.pdb", "0123"),
    ] {
        let bad = PdbIdentity {
            name: name.into(),
            guid: guid.into(),
            age: 1,
        };
        let e = s.find(&bad).unwrap_err();
        if name == "../../etc/passwd" {
            // Reduced to its file name `passwd`, then simply not found.
            assert_eq!(e.name(), "SymbolsNotFound", "{e}");
            assert!(!e.to_string().contains("etc/passwd"), "{e}");
        } else {
            assert_eq!(e.name(), "BadIdentity", "{name} {guid}: {e}");
        }
    }
    // A build path in the RSDS record is reduced to the file name.
    let with_path = PdbIdentity {
        name: r"d:\build\ntkrnlmp.pdb".into(),
        ..id.clone()
    };
    let msg = s.find(&with_path).unwrap_err().to_string();
    assert!(
        msg.contains("/ntkrnlmp.pdb/0123456789ABCDEF0123456789ABCDEF"),
        "{msg}"
    );
    let empty = SymbolStore::from_path_spec("")
        .unwrap()
        .find(&id)
        .unwrap_err();
    assert!(empty.to_string().contains("no symbol path"), "{empty}");
}

/// A one-file HTTP server on 127.0.0.1 for the download test; it answers
/// a bounded number of requests and stops.
fn serve(
    files: HashMap<String, Vec<u8>>,
    max_requests: usize,
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for conn in l.incoming().take(max_requests) {
            let Ok(mut c) = conn else { continue };
            c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .ok();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            seen.push(path.clone());
            match files.get(&path) {
                Some(body) => {
                    let _ = write!(
                        c,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = c.write_all(body);
                }
                None => {
                    let _ = c.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
        seen
    });
    (url, h)
}

#[test]
fn downloads_from_a_symbol_server_into_the_store() {
    let tmp = tempdir();
    let Some((sys, pdb)) = build_driver(tmp.path()) else {
        return;
    };
    let id = rsds(&sys);
    let want = format!("/{}/{}/{}", id.name, id.server_key(), id.name);
    let files = HashMap::from([(want.clone(), std::fs::read(&pdb).unwrap())]);
    let (url, server) = serve(files, 2);
    let store_dir = tmp.path().join("downstream");
    let spec = format!("srv*{}*{url}", store_dir.display());
    let s = SymbolStore::from_path_spec(&spec).unwrap().with_cache(None);

    let t = s.find(&id).unwrap();
    assert!(t.symbol("DriverEntry").is_some());
    let stored = store_dir
        .join(&id.name)
        .join(id.server_key())
        .join(&id.name);
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(&pdb).unwrap()
    );
    assert_eq!(t.source(), Some(stored.as_path()));

    // Unknown PDB: the server says 404 and the error names the URL.
    let mut other = id.clone();
    other.guid = "00000000000000000000000000000000".into();
    let e = s.find(&other).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("404") && msg.contains(&url), "{msg}");
    assert_eq!(
        server.join().unwrap(),
        vec![
            want,
            format!("/{}/{}/{}", id.name, other.server_key(), id.name)
        ]
    );

    // Server gone: found in the downstream store without the network.
    let t = s.find(&id).unwrap();
    assert_eq!(t.source(), Some(stored.as_path()));
}

/// A server that accepts connections but never answers: the first lookup
/// waits for the timeout, the next ones in the same run do not ask it
/// again and say so.
#[test]
fn an_unreachable_server_is_asked_once_per_run() {
    let tmp = tempdir();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let spec = format!("srv*{}*{url}", tmp.path().join("down").display());
    let s = SymbolStore::from_path_spec(&spec)
        .unwrap()
        .with_cache(None)
        .with_timeout(std::time::Duration::from_secs(1));
    let id = |g: &str| PdbIdentity {
        name: "hsflt.pdb".into(),
        guid: g.repeat(32),
        age: 1,
    };
    let first = s.find(&id("1")).unwrap_err().to_string();
    assert!(
        first.contains(&url) && !first.contains("not asked"),
        "{first}"
    );
    let second = s.find(&id("2")).unwrap_err().to_string();
    assert!(
        second.contains(&format!(
            "{url}: not asked, unreachable earlier in this run"
        )),
        "{second}"
    );
    drop(silent);
}

/// A driver's ISF (not a kernel's) in Volatility's layout under a plain
/// directory, `Ntfs.pdb/<GUID>-<AGE>.json`: found by its name, GUID and age
/// (also when the RSDS record holds a build path), and only for that
/// identity.
#[test]
fn store_finds_a_driver_isf_by_its_own_name() {
    let tmp = tempdir();
    let guid = "D7B2F725C59D57C09342D25E3AE14D25";
    let d = tmp.path().join("Ntfs.pdb");
    std::fs::create_dir_all(&d).unwrap();
    let isf = serde_json::json!({
        "metadata": {"format": "6.2.0", "windows": {"pdb": {
            "GUID": guid, "age": 2, "database": "Ntfs.pdb", "machine_type": 34404}}},
        "base_types": {}, "user_types": {}, "enums": {},
        "symbols": {"NtfsCommonCreate": {"address": 0x1230}},
    });
    std::fs::write(d.join(format!("{guid}-2.json")), isf.to_string()).unwrap();
    let s = store_for(&[tmp.path()], &tmp.path().join("cache"));
    let id = PdbIdentity {
        name: r"d:\os\obj\amd64fre\Ntfs.pdb".into(),
        guid: guid.into(),
        age: 2,
    };
    let t = s.find(&id).unwrap();
    assert_eq!(t.symbol_at(0x1240), Some(("NtfsCommonCreate", 0x10)));
    let mut other = id.clone();
    other.age = 1;
    assert_eq!(s.find(&other).unwrap_err().name(), "SymbolsNotFound");
}

/// `field_scalar` is `field_path` without the type: the same offset for
/// every field, and a shape exactly when the field holds one integer of
/// 1, 2, 4 or 8 bytes (bitfields with their bits, pointers marked).
#[test]
fn field_scalar_agrees_with_field_path_on_every_build() {
    for path in all_isfs() {
        let t = SymbolTable::load_isf(&path).unwrap();
        let mut shapes = 0;
        for ty in [
            "_KTHREAD",
            "_EPROCESS",
            "_ERESOURCE",
            "_IRP",
            "_KWAIT_BLOCK",
        ] {
            let fields = t.user_type(ty).unwrap().fields.clone();
            for f in fields {
                let (off, shape) = t.field_scalar(ty, &f.name).unwrap();
                assert_eq!(off, f.offset, "{}: {ty}.{}", path.display(), f.name);
                let width = |n: Option<u64>| n.filter(|n| matches!(n, 1 | 2 | 4 | 8));
                let want = match &f.ty {
                    TypeRef::Pointer(_) => Some((8, None, true)),
                    TypeRef::Base(n) => width(t.base_size(n)).map(|s| (s, None, false)),
                    TypeRef::Enum(n) => {
                        width(t.enumeration(n).map(|e| e.size)).map(|s| (s, None, false))
                    }
                    TypeRef::Struct(n) => {
                        width(t.user_type(n).map(|u| u.size)).map(|s| (s, None, false))
                    }
                    TypeRef::Bitfield {
                        position,
                        length,
                        base,
                    } => width(t.type_size(base))
                        .filter(|&s| *length > 0 && u64::from(position + length) <= s * 8)
                        .map(|s| (s, Some((*position, *length)), false)),
                    _ => None,
                };
                let got = shape.map(|s| (u64::from(s.size), s.bits, s.pointer));
                assert_eq!(
                    got,
                    want,
                    "{}: {ty}.{} ({:?})",
                    path.display(),
                    f.name,
                    f.ty
                );
                shapes += usize::from(shape.is_some());
            }
        }
        assert!(
            shapes > 100,
            "{}: only {shapes} scalar fields",
            path.display()
        );
    }
    let t = SymbolTable::load_isf(&isf_path(WIN7)).unwrap();
    assert_eq!(t.field_scalar("_KTHREAD", "NoSuchField"), None);
    let (_, wait_block) = t.field_scalar("_KTHREAD", "WaitBlock").unwrap();
    assert_eq!(wait_block, None, "an array is not a scalar");
    let (_, list) = t.field_scalar("_KTHREAD", "WaitBlockList").unwrap();
    assert!(list.unwrap().pointer);
}
