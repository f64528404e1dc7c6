//! Linux kernel types: BTF (from clang, the running kernel and a Debian
//! vmlinux) and DWARF, built at test time from `hard_cases.c`.

use std::path::{Path, PathBuf};
use std::process::Command;

use hangscope_symbols::{ErrorKind, SymbolCache, SymbolTable, TypeRef, ANONYMOUS_ENUM};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A compiler the test needs: missing is a failure in CI (`CI=true`),
/// a loud skip elsewhere.
fn have_or_skip(tool: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{tool} is not installed, and CI must run this test (scripts/setup.sh installs it)");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {tool} not installed (apt-get install {tool}) !!!!!!!!\n");
    false
}

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/linux/hard_cases.c")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `hard_cases.c` built by clang for BPF (it emits `.BTF` next to DWARF).
fn clang_bpf_object(dir: &Path) -> Option<PathBuf> {
    if !have_or_skip("clang") {
        return None;
    }
    let obj = dir.join("hard_cases.bpf.o");
    run(Command::new("clang")
        .args(["-g", "-O0", "-target", "bpf", "-c"])
        .arg(source())
        .arg("-o")
        .arg(&obj));
    Some(obj)
}

/// A section's bytes from an ELF file.
fn section(path: &Path, name: &str) -> Vec<u8> {
    use object::{Object, ObjectSection};
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let s = file
        .section_by_name(name)
        .unwrap_or_else(|| panic!("{} has no {name}", path.display()));
    s.data().unwrap().to_vec()
}

fn base(n: &str) -> TypeRef {
    TypeRef::Base(n.into())
}
fn st(n: &str) -> TypeRef {
    TypeRef::Struct(n.into())
}
fn ptr(t: TypeRef) -> TypeRef {
    TypeRef::Pointer(Box::new(t))
}
fn bits(position: u32, length: u32, b: TypeRef) -> TypeRef {
    TypeRef::Bitfield {
        position,
        length,
        base: Box::new(b),
    }
}

/// The answers `hard_cases.c` must give, whatever the source; `names`
/// maps clang's base type names to the compiler's at hand.
fn check_hard_cases(t: &SymbolTable, names: &dyn Fn(&str) -> String, legacy_enums: bool) {
    let b = |n: &str| base(&names(n));
    let mut problems = Vec::new();
    let mut expect = |ty: &str, field: &str, offset: u64, want: TypeRef| {
        let got = t.field_path(ty, field);
        if got != Some((offset, want.clone())) {
            problems.push(format!(
                "{ty}.{field}: got {got:?}, want {:?}",
                (offset, want)
            ));
        }
    };
    // Anonymous union and nested anonymous struct/union members hoisted.
    expect("thing", "__state", 8, b("unsigned int"));
    expect("thing", "state_alias", 8, b("int"));
    expect("thing", "x", 16, b("int"));
    expect("thing", "y", 24, b("long"));
    expect("thing", "z", 24, b("char"));
    expect("thing", "w", 26, b("short"));
    // Named members of anonymous types: synthetic `Parent::member` names.
    expect("thing", "named_anon", 32, st("thing::named_anon"));
    expect("thing", "named_anon.inner", 32, b("int"));
    expect("thing", "level1.level2.deep", 36, b("int"));
    expect("thing::level1", "level2", 0, st("thing::level1::level2"));
    // Typedefs: resolved to what they name; the nearest typedef names an
    // anonymous struct.
    expect("thing", "count", 40, st("atomic64_t"));
    expect("thing", "count.counter", 40, b("long long"));
    expect("thing", "refs", 48, st("atomic_t"));
    expect("thing", "tasks", 56, st("list_head"));
    expect("thing", "tasks.next", 56, ptr(st("list_head")));
    expect("thing", "tasks.prev", 64, ptr(st("list_head")));
    // Forward declarations, defined or not.
    expect("thing", "opaque", 72, ptr(st("fwd_only")));
    expect("thing", "later", 80, ptr(st("later")));
    expect("thing", "callback", 88, ptr(TypeRef::Function));
    expect("thing", "cv", 96, ptr(b("int")));
    expect(
        "thing",
        "comm",
        104,
        TypeRef::Array {
            count: 16,
            element: Box::new(b("char")),
        },
    );
    // Multi-dimensional arrays flattened, as the kernel's BTF has them.
    expect(
        "thing",
        "matrix",
        120,
        TypeRef::Array {
            count: 6,
            element: Box::new(b("int")),
        },
    );
    expect("thing", "matrix[5]", 140, b("int"));
    expect("thing", "type", 144, TypeRef::Enum("pid_type".into()));
    expect(
        "thing",
        "anon_enum_member",
        148,
        TypeRef::Enum("thing::anon_enum_member".into()),
    );
    expect("thing", "self", 184, ptr(st("thing")));
    expect(
        "thing",
        "tail",
        208,
        TypeRef::Array {
            count: 0,
            element: Box::new(b("unsigned long")),
        },
    );
    // Bitfields: byte offset of the storage unit, bit position in it.
    expect("flags", "a", 0, bits(0, 1, b("unsigned int")));
    expect("flags", "b", 0, bits(1, 3, b("unsigned int")));
    expect("flags", "c", 0, bits(4, 28, b("unsigned int")));
    expect("flags", "d", 4, bits(0, 2, b("unsigned char")));
    expect("flags", "e", 8, bits(0, 40, b("unsigned long long")));
    expect("flags", "f", 8, bits(40, 24, b("unsigned long long")));
    expect("flags", "g", 16, bits(0, 1, b("_Bool")));
    expect(
        "flags",
        "t",
        16,
        bits(1, 3, TypeRef::Enum("pid_type".into())),
    );
    // Packed: `y` crosses its 4-byte unit, so it sits at its first byte.
    expect("packed_bits", "y", 1, bits(0, 30, b("unsigned int")));
    expect("packed_bits", "z", 4, bits(6, 4, b("unsigned int")));
    // page.lru through two anonymous levels, as C reads it.
    expect("page", "lru.next", 8, ptr(st("list_head")));
    expect("page", "mapping", 24, ptr(b("void")));
    expect("page", "pp_magic", 8, b("unsigned long"));
    // Typedef'd anonymous union and enum, and a typedef alias.
    expect("user", "link", 0, st("list_head"));
    expect("user", "e", 16, TypeRef::Enum("td_enum_t".into()));
    expect("user", "w", 20, st("word_u"));
    expect("user", "w.bytes[3]", 23, b("unsigned char"));
    expect("user", "a.counter", 24, b("int"));
    expect("list_head_t", "prev", 8, ptr(st("list_head")));
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let thing = t.user_type("thing").unwrap();
    assert_eq!((thing.size, thing.is_union), (208, false));
    assert!(t.user_type("word_u").unwrap().is_union);
    assert_eq!(t.user_type("atomic_long_t").map(|u| u.size), Some(8));
    assert!(!t.has_type("fwd_only"), "a declaration is not a definition");
    assert_eq!(t.user_type("later").map(|u| u.size), Some(4));
    assert_eq!(t.enum_value("pid_type", "PIDTYPE_SID"), Some(3));
    assert_eq!(t.enum_name("pid_type", 4), Some("PIDTYPE_MAX"));
    assert_eq!(t.enum_value("neg", "NEG_M1"), Some(-1));
    // BTF from an encoder that predates enum signedness (clang 14, pahole
    // before 1.24) stores every 32-bit value as signed: it cannot say
    // 0xfffffff0 (DWARF can). Kernels since 6.0 are built with one that can.
    let uns = t.enum_value("uns", "UNS_BIG");
    assert!(
        uns == Some(0xffff_fff0) || (legacy_enums && uns == Some(-16)),
        "uns.UNS_BIG = {uns:?}"
    );
    assert_eq!(t.enum_value("thing::anon_enum_member", "IN_B"), Some(1));
    assert_eq!(t.enum_value("td_enum_t", "TD_ONE"), Some(1));
    // Anonymous enums' constants, found by name (including those of
    // members' anonymous enums, which also have their own names).
    assert_eq!(t.enum_value(ANONYMOUS_ENUM, "ANON_CONST_A"), Some(5));
    assert_eq!(t.enum_value(ANONYMOUS_ENUM, "IN_B"), Some(1));
    assert_eq!(t.enumeration("pid_type").map(|e| e.size), Some(4));
    assert_eq!(t.base_size(&names("unsigned long long")), Some(8));
    assert_eq!(t.base_size(&names("_Bool")), Some(1));
}

/// Whether clang is older than 15, whose BTF has no ENUM64 and no enum
/// signedness (values are signed 32-bit).
fn clang_btf_is_legacy() -> bool {
    let out = Command::new("clang").arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let major = text
        .split("version ")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    major < 15
}

fn clang_names(n: &str) -> String {
    n.to_string()
}

#[test]
fn clang_btf_reads_like_c() {
    let dir = tempdir();
    let Some(obj) = clang_bpf_object(dir.path()) else {
        return;
    };
    let btf = section(&obj, ".BTF");
    let t =
        SymbolTable::from_btf(&btf, vec![("g_thing".into(), 0x1000)], "hard_cases.bpf.o").unwrap();
    check_hard_cases(&t, &clang_names, clang_btf_is_legacy());
    assert_eq!(t.origin(), Some("hard_cases.bpf.o"));
    assert!(t.notes().is_empty(), "{:?}", t.notes());
    assert_eq!(t.symbol("g_thing"), Some(0x1000));
    // The compact image keeps every answer (the cache maps it).
    let again = SymbolTable::from_compact_bytes(t.compact_bytes().to_vec()).unwrap();
    check_hard_cases(&again, &clang_names, clang_btf_is_legacy());
    assert_eq!(again.origin(), Some("hard_cases.bpf.o"));
}

#[test]
fn repeated_symbol_names_each_keep_their_address() {
    let dir = tempdir();
    let Some(obj) = clang_bpf_object(dir.path()) else {
        return;
    };
    let btf = section(&obj, ".BTF");
    let syms = vec![
        ("show_stat".to_string(), 0xffff_ffff_8100_3000u64),
        ("show_stat".to_string(), 0xffff_ffff_8100_1000),
        ("a_first".to_string(), 0xffff_ffff_8100_0000),
        ("zzz".to_string(), 0xffff_ffff_8100_2000),
    ];
    let t = SymbolTable::from_btf(&btf, syms, "x").unwrap();
    assert_eq!(t.symbol("show_stat"), Some(0xffff_ffff_8100_1000));
    assert_eq!(
        t.symbol_at(0xffff_ffff_8100_3010),
        Some(("show_stat", 0x10))
    );
    assert_eq!(t.symbol_at(0xffff_ffff_8100_1004), Some(("show_stat", 4)));
    assert_eq!(t.symbol_at(0xffff_ffff_8100_2004), Some(("zzz", 4)));
    assert_eq!(t.symbols().count(), 4);
}

#[test]
fn damaged_btf_is_an_error_with_an_offset_never_a_panic() {
    let dir = tempdir();
    let Some(obj) = clang_bpf_object(dir.path()) else {
        return;
    };
    let good = section(&obj, ".BTF");
    let e = SymbolTable::from_btf(&good[..good.len() / 2], vec![], "half a blob").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Btf { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("offset 0x") && text.contains("half a blob"),
        "{text}"
    );
    // Every single-byte change and every truncation: an answer or an error.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..4000 {
        let mut d = good.clone();
        for _ in 0..1 + round % 4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % d.len();
            d[i] = (seed >> 40) as u8;
        }
        if let Ok(t) = SymbolTable::from_btf(&d, vec![], "fuzzed") {
            let names: Vec<String> = t.user_type_names().map(str::to_string).collect();
            for n in &names {
                for f in &t.user_type(n).unwrap().fields {
                    let _ = t.type_size(&f.ty);
                }
            }
        }
    }
    for cut in (0..good.len()).step_by(7) {
        let _ = SymbolTable::from_btf(&good[..cut], vec![], "cut");
    }
}

#[test]
fn btf_tables_are_cached_by_content() {
    let dir = tempdir();
    let Some(obj) = clang_bpf_object(dir.path()) else {
        return;
    };
    let btf = section(&obj, ".BTF");
    let cache = SymbolCache::new(dir.path().join("cache"));
    let key = SymbolCache::content_key(&btf);
    assert!(key.starts_with("btf-sha256-"), "{key}");
    let mut builds = 0;
    for _ in 0..2 {
        let t = cache
            .load_or_build(&key, || {
                builds += 1;
                SymbolTable::from_btf(&btf, vec![("s".into(), 1)], "clang BTF")
            })
            .unwrap();
        check_hard_cases(&t, &clang_names, clang_btf_is_legacy());
        assert_eq!(t.origin(), Some("clang BTF"));
    }
    assert_eq!(builds, 1, "the second load must map the cache");
    let warm = cache.load_or_build(&key, || panic!("rebuilt")).unwrap();
    assert_eq!(warm.cache_file(), Some(cache.keyed_path(&key).as_path()));
    // A damaged entry is rebuilt; another key is another entry.
    std::fs::write(cache.keyed_path(&key), b"garbage").unwrap();
    let mut rebuilt = false;
    cache
        .load_or_build(&key, || {
            rebuilt = true;
            SymbolTable::from_btf(&btf, vec![], "clang BTF")
        })
        .unwrap();
    assert!(rebuilt);
    let mut other = false;
    cache
        .load_or_build("6.1.0-56-amd64 build-id 00", || {
            other = true;
            SymbolTable::from_btf(&btf, vec![], "by release")
        })
        .unwrap();
    assert!(other);
}

/// The running kernel's BTF, when it exposes it: a few fields the Linux
/// model reads must be there.
#[test]
fn running_kernel_btf_has_the_core_fields() {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    let Ok(btf) = std::fs::read(path) else {
        eprintln!("SKIPPED: {} not readable", path.display());
        return;
    };
    let t = SymbolTable::from_btf(&btf, vec![], "/sys/kernel/btf/vmlinux").unwrap();
    for (ty, field) in [
        ("task_struct", "pid"),
        ("task_struct", "tgid"),
        ("task_struct", "comm"),
        ("task_struct", "tasks.next"),
        ("mutex", "owner"),
        ("list_head", "next"),
    ] {
        assert!(t.field_path(ty, field).is_some(), "{ty}.{field} missing");
    }
    // Renamed in 5.14; whichever this kernel has.
    assert!(t.has_field("task_struct", "__state") || t.has_field("task_struct", "state"));
    assert_eq!(
        t.field_path("list_head", "prev"),
        Some((8, ptr(st("list_head"))))
    );
    assert_eq!(
        t.field_path("task_struct", "comm").map(|(_, ty)| ty),
        Some(TypeRef::Array {
            count: 16,
            element: Box::new(base("char"))
        })
    );
    // atomic_long_t since 4.10: the typedef resolves to the struct it names.
    if t.field("mutex", "owner").map(|f| &f.ty) == Some(&st("atomic64_t")) {
        assert_eq!(t.user_type("atomic_long_t").map(|u| u.size), Some(8));
    }
}

// ------------------------------------------------------------- DWARF ----

/// `hard_cases.c` linked into a shared object (so its DWARF needs no
/// relocation) by `compiler` with `flags`.
fn shared_object(dir: &Path, compiler: &str, flags: &[&str], name: &str) -> Option<PathBuf> {
    if !have_or_skip(compiler) {
        return None;
    }
    let out = dir.join(name);
    run(Command::new(compiler)
        .args(flags)
        .args(["-O0", "-shared", "-fPIC", "-nostdlib"])
        .arg(source())
        .arg("-o")
        .arg(&out));
    Some(out)
}

/// gcc's base type names for clang's.
fn gcc_names(n: &str) -> String {
    match n {
        "long" => "long int",
        "unsigned long" => "long unsigned int",
        "long long" => "long long int",
        "unsigned long long" => "long long unsigned int",
        "short" => "short int",
        "unsigned short" => "short unsigned int",
        other => other,
    }
    .to_string()
}

fn rename_bases(t: &TypeRef, names: &dyn Fn(&str) -> String) -> TypeRef {
    match t {
        TypeRef::Base(n) => TypeRef::Base(names(n)),
        TypeRef::Pointer(p) => TypeRef::Pointer(Box::new(rename_bases(p, names))),
        TypeRef::Array { count, element } => TypeRef::Array {
            count: *count,
            element: Box::new(rename_bases(element, names)),
        },
        TypeRef::Bitfield {
            position,
            length,
            base,
        } => TypeRef::Bitfield {
            position: *position,
            length: *length,
            base: Box::new(rename_bases(base, names)),
        },
        other => other.clone(),
    }
}

/// Every struct, union and enum of `btf` must read the same in `dwarf`
/// (base type names translated by `names`); returns the differences.
fn differences(
    btf: &SymbolTable,
    dwarf: &SymbolTable,
    names: &dyn Fn(&str) -> String,
    skip_enums: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    for n in btf.user_type_names() {
        let mut want = btf.user_type(n).unwrap().clone();
        for f in &mut want.fields {
            f.ty = rename_bases(&f.ty, names);
        }
        let got = dwarf.user_type(n);
        if got != Some(&want) {
            out.push(format!("{n}:\n  DWARF {got:?}\n  BTF   {want:?}"));
        }
    }
    for n in btf.enumeration_names() {
        if skip_enums.contains(&n) {
            continue;
        }
        let (got, want) = (dwarf.enumeration(n), btf.enumeration(n));
        if got != want {
            out.push(format!("enum {n}: DWARF {got:?}, BTF {want:?}"));
        }
    }
    out
}

#[test]
fn dwarf_from_gcc_and_clang_answers_like_btf() {
    let dir = tempdir();
    let Some(obj) = clang_bpf_object(dir.path()) else {
        return;
    };
    let btf = SymbolTable::from_btf(&section(&obj, ".BTF"), vec![], "clang BTF").unwrap();
    let builds = [
        ("gcc", &["-g"][..], "gcc5.so"),
        ("gcc", &["-gdwarf-4"][..], "gcc4.so"),
        ("gcc", &["-gdwarf-2", "-gstrict-dwarf"][..], "gcc2.so"),
        ("clang", &["-g"][..], "clang5.so"),
        ("clang", &["-gdwarf-4"][..], "clang4.so"),
    ];
    let mut problems = Vec::new();
    for (compiler, flags, name) in builds {
        let Some(so) = shared_object(dir.path(), compiler, flags, name) else {
            continue;
        };
        let t = SymbolTable::load(&so).unwrap();
        assert!(
            t.origin().unwrap().starts_with("DWARF of "),
            "{:?}",
            t.origin()
        );
        assert!(t.notes().is_empty(), "[{name}] {:?}", t.notes());
        let names: &dyn Fn(&str) -> String = if compiler == "gcc" {
            &gcc_names
        } else {
            &clang_names
        };
        check_hard_cases(&t, names, false);
        // clang before 15 writes BTF without enum signedness or 64-bit
        // enums (see check_hard_cases): those two cannot match DWARF.
        let skip: &[&str] = if clang_btf_is_legacy() {
            &["uns", "big64"]
        } else {
            &[]
        };
        for d in differences(&btf, &t, names, skip) {
            problems.push(format!("[{name}] {d}"));
        }
        assert!(t.symbol("g_thing").is_some(), "[{name}] .symtab not read");
        // The same image from memory (the fuzzer's road) answers the same.
        let mem =
            SymbolTable::from_vmlinux_bytes(&std::fs::read(&so).unwrap(), Path::new(name)).unwrap();
        assert_eq!(
            differences(&t, &mem, &|n| n.to_string(), &[]),
            Vec::<String>::new(),
            "[{name}] from bytes"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The fuzzer's seeds for `dwarf_load` (`crates/symbols/fuzz/seeds`) are
/// `hard_cases.c` linked without libc at a 16-byte page size: small, and
/// still the whole answer.
#[test]
fn dwarf_linked_small_answers_the_hard_cases() {
    if !have_or_skip("gcc") {
        return;
    }
    let dir = tempdir();
    let so = small_shared_object(dir.path());
    let bytes = std::fs::read(&so).unwrap();
    assert!(bytes.len() < 8 << 10, "{} bytes", bytes.len());
    let t = SymbolTable::from_vmlinux_bytes(&bytes, &so).unwrap();
    check_hard_cases(&t, &gcc_names, false);
}

/// Compressed debug sections (`SHF_COMPRESSED`, zlib and zstd) load as
/// plain ones do; a header claiming more than the format can expand to is
/// an error naming the section, not gigabytes allocated (dwarf_load found
/// a 5 KB file that took 4 GB).
#[test]
fn compressed_dwarf_loads_and_a_lying_size_is_refused() {
    use object::{Object, ObjectSection};
    if !have_or_skip("gcc") || !have_or_skip("objcopy") {
        return;
    }
    let dir = tempdir();
    let so = small_shared_object(dir.path());
    for format in ["zlib", "zstd"] {
        let packed = dir.path().join(format!("{format}.so"));
        let status = Command::new("objcopy")
            .arg(format!("--compress-debug-sections={format}"))
            .arg(&so)
            .arg(&packed)
            .status()
            .unwrap();
        if !status.success() {
            // binutils before 2.40 has no zstd.
            eprintln!("objcopy cannot write {format} sections; skipped");
            continue;
        }
        let mut bytes = std::fs::read(&packed).unwrap();
        let t = SymbolTable::from_vmlinux_bytes(&bytes, &packed).unwrap();
        check_hard_cases(&t, &gcc_names, false);
        // Elf64_Chdr: ch_type (4), ch_reserved (4), ch_size (8), ...
        let at = {
            let file = object::File::parse(&*bytes).unwrap();
            let info = file.section_by_name(".debug_info").unwrap();
            info.file_range().unwrap().0 as usize
        };
        bytes[at + 8..at + 16].copy_from_slice(&(1u64 << 31).to_le_bytes());
        let err = SymbolTable::from_vmlinux_bytes(&bytes, &packed).unwrap_err();
        assert!(
            err.to_string()
                .contains(".debug_info claims 2147483648 bytes"),
            "{format}: {err}"
        );
    }
}

/// `hard_cases.c` built by gcc as the `dwarf_load` seeds are, in `dir`.
fn small_shared_object(dir: &Path) -> PathBuf {
    let so = dir.join("small.so");
    run(Command::new("gcc")
        .args(SMALL_SO_FLAGS)
        .arg(source())
        .arg("-o")
        .arg(&so));
    so
}

/// How the `dwarf_load` seeds are linked (besides `-g` variants).
const SMALL_SO_FLAGS: &[&str] = &[
    "-g",
    "-shared",
    "-fPIC",
    "-O0",
    "-nostdlib",
    "-Wl,-z,max-page-size=16",
    "-Wl,-z,common-page-size=16",
    "-Wl,-z,noseparate-code",
];

#[test]
fn damaged_dwarf_is_an_error_or_an_answer_never_a_panic() {
    use object::{Object, ObjectSection};
    let dir = tempdir();
    let Some(so) = shared_object(dir.path(), "gcc", &["-g"], "victim.so") else {
        return;
    };
    let good = std::fs::read(&so).unwrap();
    let ranges: Vec<(usize, usize)> = {
        let file = object::File::parse(&*good).unwrap();
        [".debug_info", ".debug_abbrev", ".debug_str"]
            .iter()
            .filter_map(|n| file.section_by_name(n)?.file_range())
            .map(|(o, l)| (o as usize, l as usize))
            .collect()
    };
    let damaged = dir.path().join("damaged.so");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut errors = 0;
    for round in 0..600 {
        let mut d = good.clone();
        for _ in 0..1 + round % 3 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let (off, len) = ranges[(seed >> 8) as usize % ranges.len()];
            d[off + (seed >> 20) as usize % len] = (seed >> 40) as u8;
        }
        std::fs::write(&damaged, &d).unwrap();
        match SymbolTable::load_vmlinux(&damaged) {
            Ok(t) => {
                let names: Vec<String> = t.user_type_names().map(str::to_string).collect();
                for n in &names {
                    for f in &t.user_type(n).unwrap().fields {
                        let _ = t.type_size(&f.ty);
                    }
                }
            }
            Err(e) => {
                errors += 1;
                assert!(e.to_string().contains("damaged.so"), "{e}");
            }
        }
    }
    assert!(errors > 0, "no damage was noticed at all");
}

#[test]
fn relocatable_objects_and_elves_without_types_are_refused() {
    let dir = tempdir();
    let Some(obj) = clang_bpf_object(dir.path()) else {
        return;
    };
    let e = SymbolTable::load_vmlinux(&obj).unwrap_err();
    assert!(e.to_string().contains("relocatable"), "{e}");
    let Some(so) = shared_object(dir.path(), "clang", &["-g0"], "bare.so") else {
        return;
    };
    let e = SymbolTable::load(&so).unwrap_err();
    assert!(e.to_string().contains("no DWARF"), "{e}");
}

// ------------------------------------------------- a real Debian vmlinux ----

/// `$HANGSCOPE_LINUX_VMLINUX`: a debug vmlinux (Debian's
/// `/usr/lib/debug/boot/vmlinux-<release>`), or a skip.
fn vmlinux_or_skip() -> Option<PathBuf> {
    match std::env::var_os("HANGSCOPE_LINUX_VMLINUX") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!(
                "SKIPPED: set HANGSCOPE_LINUX_VMLINUX to a debug vmlinux (with DWARF and .BTF) \
                 to compare its DWARF with its BTF"
            );
            None
        }
    }
}

/// The types the Linux model reads, and the named types their fields
/// hold, transitively through struct fields (not pointers), with the
/// synthetic `Parent::member` types.
fn closure_of(t: &SymbolTable, roots: &[&str]) -> Vec<String> {
    fn named(ty: &TypeRef, out: &mut Vec<String>) {
        match ty {
            TypeRef::Struct(n) => out.push(n.clone()),
            TypeRef::Array { element, .. } => named(element, out),
            _ => {}
        }
    }
    let mut seen: Vec<String> = Vec::new();
    let mut todo: Vec<String> = roots.iter().map(|s| s.to_string()).collect();
    while let Some(n) = todo.pop() {
        if seen.contains(&n) {
            continue;
        }
        if let Some(u) = t.user_type(&n) {
            for f in &u.fields {
                named(&f.ty, &mut todo);
            }
        }
        seen.push(n);
    }
    seen.sort();
    seen
}

#[test]
fn debian_vmlinux_dwarf_answers_like_its_own_btf() {
    let Some(path) = vmlinux_or_skip() else {
        return;
    };
    let dwarf = SymbolTable::load_vmlinux(&path).unwrap();
    assert!(
        dwarf.origin().unwrap().starts_with("DWARF of "),
        "{:?}",
        dwarf.origin()
    );
    let btf = SymbolTable::from_btf(&section(&path, ".BTF"), vec![], "vmlinux .BTF").unwrap();
    assert!(dwarf.notes().is_empty(), "{:?}", dwarf.notes());
    assert!(btf.notes().is_empty(), "{:?}", btf.notes());
    let roots = [
        "task_struct",
        "mutex",
        "rw_semaphore",
        "list_head",
        "module",
        "printk_ringbuffer",
        "prb_desc",
        "printk_info",
        "rq",
        "file",
        "inode",
        "dentry",
    ];
    let mut problems = Vec::new();
    let types = closure_of(&btf, &roots);
    for n in &types {
        let (d, b) = (dwarf.user_type(n), btf.user_type(n));
        if d != b {
            problems.push(format!("{n}:\n  DWARF {d:?}\n  BTF   {b:?}"));
        }
    }
    for (ty, field) in [
        ("task_struct", "pid"),
        ("task_struct", "tgid"),
        ("task_struct", "comm"),
        ("task_struct", "__state"),
        ("task_struct", "tasks"),
        ("task_struct", "thread_group"),
        ("task_struct", "signal"),
        ("task_struct", "real_parent"),
        ("task_struct", "on_cpu"),
        ("task_struct", "thread_info.cpu"),
        ("task_struct", "nvcsw"),
        ("task_struct", "nivcsw"),
        ("task_struct", "last_switch_time"),
        ("task_struct", "sched_info.last_arrival"),
        ("task_struct", "mm"),
        ("task_struct", "flags"),
        ("task_struct", "stack"),
        ("task_struct", "thread.sp"),
        ("mutex", "owner"),
        ("rw_semaphore", "owner"),
        ("list_head", "next"),
        ("module", "name"),
        ("module", "list"),
        ("module", "core_layout"),
        ("printk_ringbuffer", "desc_ring"),
        ("prb_desc", "state_var"),
        ("printk_info", "ts_nsec"),
        ("rq", "curr"),
        ("file", "f_pos"),
        ("inode", "i_rwsem"),
        ("dentry", "d_name"),
    ] {
        let (d, b) = (dwarf.field_path(ty, field), btf.field_path(ty, field));
        if d.is_none() || d != b {
            problems.push(format!("{ty}.{field}: DWARF {d:?}, BTF {b:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} types differ:\n{}",
        problems.len(),
        types.len(),
        problems.join("\n")
    );
    // Every type: report (not fail on) what differs, for the lead's note.
    let mut differ = Vec::new();
    let names: Vec<String> = btf.user_type_names().map(str::to_string).collect();
    for n in &names {
        if dwarf.user_type(n) != btf.user_type(n) {
            differ.push(n.clone());
        }
    }
    eprintln!(
        "{} of {} BTF struct/union types differ in DWARF: {:?}",
        differ.len(),
        names.len(),
        &differ[..differ.len().min(40)]
    );
    let enums: Vec<String> = btf.enumeration_names().map(str::to_string).collect();
    let differ_enums: Vec<&String> = enums
        .iter()
        .filter(|n| dwarf.enumeration(n) != btf.enumeration(n))
        .collect();
    eprintln!(
        "{} of {} BTF enums differ in DWARF: {:?}",
        differ_enums.len(),
        enums.len(),
        &differ_enums[..differ_enums.len().min(40)]
    );
    for t in [&dwarf, &btf] {
        assert_eq!(t.enum_value(ANONYMOUS_ENUM, "TASK_COMM_LEN"), Some(16));
    }
    // A module of the same kernel (`HANGSCOPE_LINUX_MODULE`, e.g. its
    // qemu_fw_cfg.ko): its split BTF on top of the vmlinux's.
    if let Some(ko) = std::env::var_os("HANGSCOPE_LINUX_MODULE").filter(|v| !v.is_empty()) {
        let ko = PathBuf::from(ko);
        let m = SymbolTable::from_split_btf(
            &section(&path, ".BTF"),
            &section(&ko, ".BTF"),
            vec![],
            "module BTF",
        )
        .unwrap();
        let names: Vec<&str> = m.user_type_names().collect();
        assert!(
            !names.is_empty(),
            "{} has no types of its own",
            ko.display()
        );
        eprintln!("{}: {} types of its own", ko.display(), names.len());
    }
    assert!(dwarf
        .symbol("init_task")
        .is_some_and(|a| a >= 0xffff_ffff_8000_0000));
}
