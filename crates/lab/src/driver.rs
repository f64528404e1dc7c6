//! Real drivers in lab images: `hsflt.sys`, compiled at test time with
//! Debian's clang and lld-link for `x86_64-pc-windows-msvc`, loaded into an
//! image the way the Windows loader does (sections, base relocations, imports
//! bound to the kernel's exports), with threads laid out from its own
//! `.pdata`/`.xdata`.
//!
//! The PE tables are read by hand here: the lab needs five of them (section
//! headers, data directories, imports, base relocations, unwind data), and
//! reading unwind codes independently of the reader crate
//! (`hangscope-unwind`) is the point: a misreading on either side must show
//! up as a test failure instead of cancelling out.

use crate::error::Error;
use crate::stacks::{FrameRecipe, PrologOp};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The driver's C source (a toy anti-virus file system filter).
pub const HSFLT_SOURCE: &str = include_str!("../drivers/hsflt.c");

/// The kernel functions `hsflt.sys` imports (its import library is made
/// from this list at build time).
pub const HSFLT_IMPORTS: &[&str] = &[
    "KeWaitForSingleObject",
    "ExAcquireResourceExclusiveLite",
    "ExReleaseResourceLite",
    "ExAllocatePoolWithTag",
];

/// The scenario that puts `hsflt.sys` in an image (its `image` path is
/// relative: the scenario file goes beside the driver).
pub const AV_FILTER_SCENARIO: &str = include_str!("../scenarios/av-filter.toml");

/// Build `hsflt.sys` into `dir`, write `av-filter.toml` beside it, and file
/// its PDB in a symbol store under `dir/symbols`
/// (`hsflt.pdb/<GUID><AGE>/hsflt.pdb`). Returns the files and the store.
pub fn build_lab_driver(dir: &Path) -> Result<(DriverFiles, PathBuf), Error> {
    let files = build_hsflt(dir)?;
    let scenario = dir.join("av-filter.toml");
    std::fs::write(&scenario, AV_FILTER_SCENARIO).map_err(|e| io_err(&scenario, e))?;
    let pe = PeDriver::load(&files.sys)?;
    let (name, guid, age) = pe.codeview().ok_or_else(|| Error::Io {
        path: files.sys.display().to_string(),
        problem: "lld-link wrote no RSDS CodeView record".into(),
    })?;
    let store = dir.join("symbols");
    let at = store.join(&name).join(format!("{guid}{age:X}"));
    std::fs::create_dir_all(&at).map_err(|e| io_err(&at, e))?;
    let to = at.join(&name);
    std::fs::copy(&files.pdb, &to).map_err(|e| io_err(&to, e))?;
    Ok((files, store))
}

/// Files a driver build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverFiles {
    /// The image (`hsflt.sys`).
    pub sys: PathBuf,
    /// Its PDB, as lld-link wrote it.
    pub pdb: PathBuf,
    /// lld-link's map (function addresses for the lab's ground truth).
    pub map: PathBuf,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        problem: e.to_string(),
    }
}

/// The first of `names` that runs (`clang`, then `clang-14`, ...).
fn tool(names: &[&str], package: &str) -> Result<String, Error> {
    for n in names {
        if Command::new(n).arg("--version").output().is_ok() {
            return Ok(n.to_string());
        }
    }
    Err(Error::Io {
        path: names[0].into(),
        problem: format!(
            "not installed (tried {}); install the Debian package `{package}`",
            names.join(", ")
        ),
    })
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::Io {
        path: what.clone(),
        problem: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::Io {
            path: what,
            problem: format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(())
}

/// A driver to compile for `x86_64-pc-windows-msvc`.
#[derive(Debug, Clone, Copy)]
pub struct DriverSource<'a> {
    /// File stem: `NAME.sys`, `NAME.pdb`, `NAME.map`.
    pub name: &'a str,
    /// C source; `DriverEntry` is the entry point.
    pub source: &'a str,
    /// Kernel functions it imports from `ntoskrnl.exe` (an import library
    /// is made from this list).
    pub imports: &'a [&'a str],
    /// Preferred image base (lld-link's default when `None`).
    pub base: Option<u64>,
}

/// Compile and link a driver (image, PDB and linker map) into `dir`.
///
/// Needs clang, lld-link and, with imports, llvm-dlltool (Debian packages
/// `clang`, `lld`, `llvm`). The PDB path recorded in the image's CodeView
/// record is the full path in `dir`, as third-party drivers' usually are.
pub fn compile_driver(dir: &Path, d: &DriverSource<'_>) -> Result<DriverFiles, Error> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let src = dir.join(format!("{}.c", d.name));
    std::fs::write(&src, d.source).map_err(|e| io_err(&src, e))?;
    let mut inputs = Vec::new();
    if !d.imports.is_empty() {
        let def = dir.join("ntoskrnl.def");
        let mut text = String::from("LIBRARY ntoskrnl.exe\nEXPORTS\n");
        for f in d.imports {
            text.push_str(&format!("    {f}\n"));
        }
        std::fs::write(&def, text).map_err(|e| io_err(&def, e))?;
        let lib = dir.join("ntoskrnl.lib");
        run(
            Command::new(tool(&["llvm-dlltool", "llvm-dlltool-14"], "llvm")?)
                .args(["-m", "i386:x86-64", "-d"])
                .arg(&def)
                .arg("-l")
                .arg(&lib),
        )?;
        inputs.push(lib);
    }
    let obj = dir.join(format!("{}.obj", d.name));
    run(Command::new(tool(&["clang", "clang-14"], "clang")?)
        .args([
            "--target=x86_64-pc-windows-msvc",
            "-c",
            "-O1",
            "-g",
            "-gcodeview",
            "-fno-stack-protector",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&obj))?;
    let files = DriverFiles {
        sys: dir.join(format!("{}.sys", d.name)),
        pdb: dir.join(format!("{}.pdb", d.name)),
        map: dir.join(format!("{}.map", d.name)),
    };
    let arg = |p: &str, f: &Path| format!("{p}{}", f.display());
    let mut link = Command::new(tool(&["lld-link", "lld-link-14"], "lld")?);
    link.args([
        "/debug",
        "/entry:DriverEntry",
        "/subsystem:native",
        "/driver",
        "/nodefaultlib",
    ])
    .arg(arg("/out:", &files.sys))
    .arg(arg("/pdb:", &files.pdb))
    .arg(arg("/map:", &files.map))
    .arg(&obj)
    .args(&inputs);
    if let Some(b) = d.base {
        link.arg(format!("/base:{b:#x}"));
    }
    run(&mut link)?;
    Ok(files)
}

/// Compile `hsflt.sys` (and its PDB and map) into `dir`.
pub fn build_hsflt(dir: &Path) -> Result<DriverFiles, Error> {
    compile_driver(
        dir,
        &DriverSource {
            name: "hsflt",
            source: HSFLT_SOURCE,
            imports: HSFLT_IMPORTS,
            base: None,
        },
    )
}

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `.text`, `.pdata`, ...
    pub name: String,
    /// RVA.
    pub rva: u32,
    /// VirtualSize.
    pub virtual_size: u32,
    /// File offset of the raw data.
    pub raw_offset: u32,
    /// Raw data size.
    pub raw_size: u32,
    /// IMAGE_SCN_* flags.
    pub characteristics: u32,
}

impl Section {
    /// Holds code (IMAGE_SCN_MEM_EXECUTE).
    pub fn executable(&self) -> bool {
        self.characteristics & 0x2000_0000 != 0
    }
}

/// One imported function and the IAT slot the loader fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The exporting module (`ntoskrnl.exe`).
    pub dll: String,
    /// Function name.
    pub name: String,
    /// RVA of its IAT slot.
    pub slot: u32,
}

/// A PE32+ driver file read for loading into a lab image.
#[derive(Debug, Clone)]
pub struct PeDriver {
    /// File name (`hsflt.sys`).
    pub file_name: String,
    file: Vec<u8>,
    /// Preferred base.
    pub image_base: u64,
    /// SizeOfImage.
    pub size_of_image: u64,
    size_of_headers: u32,
    opt: usize,
    /// Section headers.
    pub sections: Vec<Section>,
    /// Imports.
    pub imports: Vec<Import>,
    /// RVAs of IMAGE_REL_BASED_DIR64 fixups.
    pub fixups: Vec<u32>,
    /// RUNTIME_FUNCTION entries: begin, end, UNWIND_INFO RVA.
    pub runtime_functions: Vec<(u32, u32, u32)>,
    /// The driver's own functions by name (from the linker map), RVA.
    pub functions: BTreeMap<String, u32>,
    /// Import thunks the linker added (`jmp [__imp_X]`), by RVA.
    pub thunks: BTreeMap<u32, String>,
}

/// Most entries read from any one table.
const MAX_ENTRIES: usize = 65_536;

fn bad(file: &str, what: impl Into<String>) -> Error {
    Error::Io {
        path: file.into(),
        problem: format!("not a PE32+ driver the lab can load: {}", what.into()),
    }
}

impl PeDriver {
    /// Read `sys` and the linker map beside it (`.map`).
    pub fn load(sys: &Path) -> Result<PeDriver, Error> {
        let file = std::fs::read(sys).map_err(|e| io_err(sys, e))?;
        let map_path = sys.with_extension("map");
        let map = std::fs::read_to_string(&map_path).map_err(|e| io_err(&map_path, e))?;
        let name = sys
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        PeDriver::parse(name, file, &map, &sys.display().to_string())
    }

    /// Parse image bytes and map text.
    pub fn parse(
        file_name: String,
        file: Vec<u8>,
        map: &str,
        path: &str,
    ) -> Result<PeDriver, Error> {
        let u16_at = |o: usize| -> Result<u16, Error> {
            file.get(o..o + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or_else(|| bad(path, format!("truncated at {o:#x}")))
        };
        let u32_at = |o: usize| -> Result<u32, Error> {
            file.get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| bad(path, format!("truncated at {o:#x}")))
        };
        if u16_at(0)? != 0x5A4D {
            return Err(bad(path, "no MZ header"));
        }
        let nt = u32_at(0x3C)? as usize;
        if u32_at(nt)? != 0x4550 || u16_at(nt + 4)? != 0x8664 {
            return Err(bad(path, "no PE header for x64"));
        }
        let nsec = u16_at(nt + 6)? as usize;
        let opt_size = u16_at(nt + 20)? as usize;
        let opt = nt + 24;
        if u16_at(opt)? != 0x20B {
            return Err(bad(path, "not PE32+"));
        }
        let image_base = u32_at(opt + 24)? as u64 | (u32_at(opt + 28)? as u64) << 32;
        let size_of_image = u32_at(opt + 56)? as u64;
        let size_of_headers = u32_at(opt + 60)?;
        if size_of_image == 0 || size_of_image > (64 << 20) {
            return Err(bad(path, format!("SizeOfImage {size_of_image:#x}")));
        }
        let mut sections = Vec::new();
        for i in 0..nsec.min(96) {
            let s = opt + opt_size + 40 * i;
            let raw_name = file
                .get(s..s + 8)
                .ok_or_else(|| bad(path, "truncated section table"))?;
            let name = String::from_utf8_lossy(raw_name)
                .trim_end_matches('\0')
                .to_string();
            sections.push(Section {
                name,
                virtual_size: u32_at(s + 8)?,
                rva: u32_at(s + 12)?,
                raw_size: u32_at(s + 16)?,
                raw_offset: u32_at(s + 20)?,
                characteristics: u32_at(s + 36)?,
            });
        }
        let mut d = PeDriver {
            file_name,
            file: Vec::new(),
            image_base,
            size_of_image,
            size_of_headers,
            opt,
            sections,
            imports: Vec::new(),
            fixups: Vec::new(),
            runtime_functions: Vec::new(),
            functions: BTreeMap::new(),
            thunks: BTreeMap::new(),
        };
        d.file = file;
        d.read_imports(path)?;
        d.read_fixups(path)?;
        d.read_pdata();
        d.read_map(map);
        Ok(d)
    }

    /// Data directory `i`: RVA and size.
    fn directory(&self, i: usize) -> (u32, u32) {
        let at = self.opt + 112 + 8 * i;
        (
            self.u32_file(at).unwrap_or(0),
            self.u32_file(at + 4).unwrap_or(0),
        )
    }

    fn u32_file(&self, o: usize) -> Option<u32> {
        self.file
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Bytes at an RVA as loaded (headers or a section's raw data; the
    /// zero-filled tail of a section reads as absent).
    pub fn bytes(&self, rva: u32, len: usize) -> Option<&[u8]> {
        if (rva as u64) + (len as u64) <= self.size_of_headers as u64 {
            return self.file.get(rva as usize..rva as usize + len);
        }
        let s = self
            .sections
            .iter()
            .find(|s| rva >= s.rva && (rva - s.rva) < s.raw_size.max(s.virtual_size))?;
        let off = (rva - s.rva) as usize;
        if off + len > s.raw_size as usize {
            return None;
        }
        self.file
            .get(s.raw_offset as usize + off..s.raw_offset as usize + off + len)
    }

    fn u32_rva(&self, rva: u32) -> Option<u32> {
        self.bytes(rva, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64_rva(&self, rva: u32) -> Option<u64> {
        self.bytes(rva, 8).map(|b| {
            let mut x = [0u8; 8];
            x.copy_from_slice(b);
            u64::from_le_bytes(x)
        })
    }

    fn cstr(&self, rva: u32) -> Option<String> {
        let mut s = Vec::new();
        for i in 0..256 {
            let b = *self.bytes(rva + i, 1)?.first()?;
            if b == 0 {
                return Some(String::from_utf8_lossy(&s).into_owned());
            }
            s.push(b);
        }
        None
    }

    fn read_imports(&mut self, path: &str) -> Result<(), Error> {
        let (dir, _) = self.directory(1);
        if dir == 0 {
            return Ok(());
        }
        for i in 0..256u32 {
            let d = dir + 20 * i;
            let (Some(ilt), Some(name), Some(iat)) =
                (self.u32_rva(d), self.u32_rva(d + 12), self.u32_rva(d + 16))
            else {
                return Err(bad(path, format!("import descriptor at RVA {d:#x}")));
            };
            if ilt == 0 && name == 0 && iat == 0 {
                return Ok(());
            }
            let dll = self.cstr(name).unwrap_or_default();
            let table = if ilt != 0 { ilt } else { iat };
            for j in 0..MAX_ENTRIES as u32 {
                let Some(e) = self.u64_rva(table + 8 * j) else {
                    return Err(bad(path, format!("import lookup table of {dll}")));
                };
                if e == 0 {
                    break;
                }
                if e >> 63 != 0 {
                    return Err(bad(path, format!("{dll} imported by ordinal")));
                }
                let name = self.cstr(e as u32 + 2).unwrap_or_default();
                self.imports.push(Import {
                    dll: dll.clone(),
                    name,
                    slot: iat + 8 * j,
                });
            }
        }
        Ok(())
    }

    fn read_fixups(&mut self, path: &str) -> Result<(), Error> {
        let (dir, size) = self.directory(5);
        let mut at = dir;
        while at + 8 <= dir + size && self.fixups.len() < MAX_ENTRIES {
            let (Some(page), Some(block)) = (self.u32_rva(at), self.u32_rva(at + 4)) else {
                return Err(bad(path, format!("base relocation block at RVA {at:#x}")));
            };
            if block < 8 {
                break;
            }
            for k in 0..(block - 8) / 2 {
                let Some(b) = self.bytes(at + 8 + 2 * k, 2) else {
                    break;
                };
                let e = u16::from_le_bytes([b[0], b[1]]);
                match e >> 12 {
                    0 => {}
                    10 => self.fixups.push(page + (e & 0xFFF) as u32),
                    t => return Err(bad(path, format!("base relocation type {t}"))),
                }
            }
            at += block;
        }
        Ok(())
    }

    fn read_pdata(&mut self) {
        let (dir, size) = self.directory(3);
        for i in 0..(size / 12).min(MAX_ENTRIES as u32) {
            let e = dir + 12 * i;
            if let (Some(b), Some(en), Some(u)) =
                (self.u32_rva(e), self.u32_rva(e + 4), self.u32_rva(e + 8))
            {
                self.runtime_functions.push((b, en, u));
            }
        }
    }

    /// lld-link map lines: `0001:00000040  Name  00000001400010 40  obj`;
    /// the driver's own code symbols come from its `.obj`, import thunks
    /// from the import library.
    fn read_map(&mut self, map: &str) {
        let text: Vec<&Section> = self.sections.iter().filter(|s| s.executable()).collect();
        for line in map.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[0].len() != 13 || !f[0].contains(':') {
                continue;
            }
            let Ok(va) = u64::from_str_radix(f[2], 16) else {
                continue;
            };
            let Some(rva) = va.checked_sub(self.image_base).map(|r| r as u32) else {
                continue;
            };
            if !text
                .iter()
                .any(|s| rva >= s.rva && rva < s.rva + s.virtual_size)
            {
                continue;
            }
            if f[3].ends_with(".obj") {
                self.functions.insert(f[1].to_string(), rva);
            } else if f[3].contains(".exe") || f[3].contains(".dll") || f[3].contains(".sys") {
                self.thunks.insert(rva, f[1].to_string());
            }
        }
    }

    /// The RUNTIME_FUNCTION covering `rva`.
    pub fn runtime_function(&self, rva: u32) -> Option<(u32, u32, u32)> {
        self.runtime_functions
            .iter()
            .copied()
            .find(|&(b, e, _)| rva >= b && rva < e)
    }

    /// The prolog of the function at `rva`: its unwind codes (chained
    /// infos followed) in execution order; a function without a
    /// RUNTIME_FUNCTION is a leaf (nothing pushed, nothing allocated).
    pub fn recipe(&self, rva: u32) -> Result<FrameRecipe, Error> {
        let err = |what: String| bad(&self.file_name, what);
        let Some((_, _, mut info)) = self.runtime_function(rva) else {
            return Ok(FrameRecipe::default());
        };
        // Infos from the function's own to the chain's root; the root's
        // prolog runs first.
        let mut infos = Vec::new();
        for _ in 0..8 {
            let h = self
                .bytes(info & !1, 4)
                .ok_or_else(|| err(format!("UNWIND_INFO at RVA {info:#x}")))?
                .to_vec();
            let count = h[2] as usize;
            let codes = self
                .bytes((info & !1) + 4, 2 * count)
                .ok_or_else(|| err(format!("unwind codes at RVA {info:#x}")))?;
            let codes: Vec<u16> = codes
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let chained = (h[0] >> 3) & 4 != 0;
            infos.push((h, codes));
            if !chained {
                break;
            }
            let parent = (info & !1) + 4 + 2 * ((count as u32 + 1) & !1);
            info = self
                .u32_rva(parent + 8)
                .ok_or_else(|| err(format!("chained RUNTIME_FUNCTION at RVA {parent:#x}")))?;
        }
        let mut recipe = FrameRecipe::default();
        for (h, codes) in infos.iter().rev() {
            if h[0] & 7 != 1 && h[0] & 7 != 2 {
                return Err(err(format!("UNWIND_INFO version {}", h[0] & 7)));
            }
            if h[3] & 0xF != 0 {
                recipe.frame_register = Some((h[3] & 0xF, (h[3] >> 4) as u32 * 16));
            }
            let version = h[0] & 7;
            let mut ops = Vec::new();
            let mut i = 0;
            while i < codes.len() {
                let c = codes[i];
                let (op, inf) = ((c >> 8) as u8 & 0xF, (c >> 12) as u8);
                let slot = |k: usize| codes.get(i + k).copied().unwrap_or(0) as u32;
                let (o, used) = match op {
                    0 => (Some(PrologOp::Push(inf)), 1),
                    1 if inf == 0 => (Some(PrologOp::Alloc(slot(1) * 8)), 2),
                    1 => (Some(PrologOp::Alloc(slot(1) | slot(2) << 16)), 3),
                    2 => (Some(PrologOp::Alloc(inf as u32 * 8 + 8)), 1),
                    3 => (Some(PrologOp::SetFrame), 1),
                    4 => (Some(PrologOp::Save(inf, slot(1) * 8)), 2),
                    5 => (Some(PrologOp::Save(inf, slot(1) | slot(2) << 16)), 3),
                    6 if version == 2 => (None, 1),
                    8 => (Some(PrologOp::SaveXmm(inf, slot(1) * 16)), 2),
                    9 => (Some(PrologOp::SaveXmm(inf, slot(1) | slot(2) << 16)), 3),
                    10 => (Some(PrologOp::MachineFrame(inf != 0)), 1),
                    _ => return Err(err(format!("unwind code {op} at RVA {info:#x}"))),
                };
                ops.extend(o);
                i += used;
            }
            // Codes are stored last instruction first.
            ops.reverse();
            recipe.ops.extend(ops);
        }
        Ok(recipe)
    }

    /// Size of the function's prolog (the first body instruction's offset).
    pub fn prolog_size(&self, rva: u32) -> u32 {
        self.runtime_function(rva)
            .and_then(|(_, _, u)| self.bytes(u + 1, 1).map(|b| b[0] as u32))
            .unwrap_or(0)
    }

    /// The return address (an RVA) of the first call in the function at
    /// `rva` to `callee`: a `call rel32` to `target` (same module, or an
    /// import thunk named `callee`), or a `call [rip+disp32]` through the
    /// IAT slot of import `callee`.
    pub fn call_site(&self, rva: u32, callee: &str, target: Option<u32>) -> Option<u32> {
        let (b, e) = match self.runtime_function(rva) {
            Some((b, e, _)) => (b, e),
            None => (rva, rva + 0x40),
        };
        let code = self.bytes(b, (e - b) as usize)?;
        let slot = self
            .imports
            .iter()
            .find(|i| i.name == callee)
            .map(|i| i.slot);
        for i in 0..code.len().saturating_sub(5) {
            let at = b + i as u32;
            if code[i] == 0xE8 {
                let rel = i32::from_le_bytes([code[i + 1], code[i + 2], code[i + 3], code[i + 4]]);
                let to = (at as i64 + 5 + rel as i64) as u32;
                let hit = Some(to) == target
                    || self.thunks.get(&to).map(|n| n == callee).unwrap_or(false);
                if hit {
                    return Some(at + 5);
                }
            }
            if code[i] == 0xFF && code[i + 1] == 0x15 && i + 6 <= code.len() {
                let rel = i32::from_le_bytes([code[i + 2], code[i + 3], code[i + 4], code[i + 5]]);
                let to = (at as i64 + 6 + rel as i64) as u32;
                if Some(to) == slot {
                    return Some(at + 6);
                }
            }
        }
        None
    }

    /// The image as loaded at `base`: SizeOfImage bytes with the headers
    /// and sections in place, base relocations applied, ImageBase set and
    /// every import's IAT slot bound through `resolve(dll, name)`.
    pub fn loaded(
        &self,
        base: u64,
        resolve: &dyn Fn(&str, &str) -> Option<u64>,
    ) -> Result<Vec<u8>, Error> {
        let mut m = vec![0u8; self.size_of_image as usize];
        let h = (self.size_of_headers as usize)
            .min(m.len())
            .min(self.file.len());
        m[..h].copy_from_slice(&self.file[..h]);
        for s in &self.sections {
            // The rest up to VirtualSize stays zero (.bss).
            let n = s.raw_size as usize;
            let src = self
                .file
                .get(s.raw_offset as usize..s.raw_offset as usize + n)
                .ok_or_else(|| bad(&self.file_name, format!("section {} raw data", s.name)))?;
            let dst = m
                .get_mut(s.rva as usize..s.rva as usize + n)
                .ok_or_else(|| {
                    bad(
                        &self.file_name,
                        format!("section {} outside the image", s.name),
                    )
                })?;
            dst.copy_from_slice(src);
        }
        let delta = base.wrapping_sub(self.image_base);
        for &f in &self.fixups {
            let f = f as usize;
            let Some(w) = m.get_mut(f..f + 8) else {
                continue;
            };
            let mut x = [0u8; 8];
            x.copy_from_slice(w);
            w.copy_from_slice(&u64::from_le_bytes(x).wrapping_add(delta).to_le_bytes());
        }
        m[self.opt + 24..self.opt + 32].copy_from_slice(&base.to_le_bytes());
        for i in &self.imports {
            let va = resolve(&i.dll, &i.name).ok_or_else(|| Error::MissingSymbol {
                what: format!("{}!{} (imported by {})", i.dll, i.name, self.file_name),
            })?;
            let s = i.slot as usize;
            m.get_mut(s..s + 8)
                .ok_or_else(|| bad(&self.file_name, "IAT outside the image"))?
                .copy_from_slice(&va.to_le_bytes());
        }
        Ok(m)
    }

    /// The CodeView record: PDB file name (its last path component), GUID
    /// as a symbol store writes it (32 hex digits) and age.
    pub fn codeview(&self) -> Option<(String, String, u32)> {
        let (dir, size) = self.directory(6);
        for i in 0..(size / 28).min(16) {
            let e = dir + 28 * i;
            if self.u32_rva(e + 12)? != 2 {
                continue;
            }
            let rva = self.u32_rva(e + 20)?;
            let rec = self.bytes(rva, 24)?;
            if &rec[..4] != b"RSDS" {
                continue;
            }
            let g = &rec[4..20];
            let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
            let d2 = u16::from_le_bytes([g[4], g[5]]);
            let d3 = u16::from_le_bytes([g[6], g[7]]);
            let mut guid = format!("{d1:08X}{d2:04X}{d3:04X}");
            for b in &g[8..] {
                guid.push_str(&format!("{b:02X}"));
            }
            let age = u32::from_le_bytes([rec[20], rec[21], rec[22], rec[23]]);
            let path = self.cstr(rva + 24)?;
            let name = path.rsplit(['\\', '/']).next().unwrap_or(&path).to_string();
            return Some((name, guid, age));
        }
        None
    }

    /// Whether the page at `rva` holds code.
    pub fn executable_page(&self, rva: u32) -> bool {
        self.sections.iter().any(|s| {
            s.executable() && rva < s.rva + s.virtual_size.max(s.raw_size) && rva + 0x1000 > s.rva
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs clang, lld-link and llvm-dlltool (scripts/setup.sh installs
    /// them).
    #[test]
    fn hsflt_builds_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = build_hsflt(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let d = PeDriver::load(&files.sys).unwrap_or_else(|e| panic!("{e}"));
        for f in [
            "HsFltPreCreate",
            "HsFltScanFile",
            "HsFltQueryPolicy",
            "HsFltWaitForScanner",
            "HsFltSpin",
        ] {
            assert!(d.functions.contains_key(f), "{f} in {:?}", d.functions);
        }
        let names: Vec<&str> = d.imports.iter().map(|i| i.name.as_str()).collect();
        assert!(names.contains(&"KeWaitForSingleObject"), "{names:?}");
        // The RBP frame and the large allocation are what the source
        // promises.
        let qp = d.recipe(d.functions["HsFltQueryPolicy"]).expect("recipe");
        assert!(qp.frame_register.is_some(), "{qp:?}");
        let sf = d.recipe(d.functions["HsFltScanFile"]).expect("recipe");
        assert!(
            sf.ops
                .iter()
                .any(|o| matches!(o, PrologOp::Alloc(n) if *n > 0x80)),
            "{sf:?}"
        );
        // Leaves have no unwind data.
        assert_eq!(
            d.recipe(d.functions["HsFltSpin"]).expect("leaf"),
            FrameRecipe::default()
        );
        // Calls found: into the driver and through the IAT.
        let scan = d.functions["HsFltScanFile"];
        let wait = d.functions["HsFltWaitForScanner"];
        assert!(d
            .call_site(scan, "HsFltWaitForScanner", Some(wait))
            .is_some());
        assert!(d.call_site(wait, "KeWaitForSingleObject", None).is_some());
        assert!(d.call_site(wait, "ExReleaseResourceLite", None).is_none());
        let (pdb, guid, age) = d.codeview().expect("RSDS");
        assert_eq!(pdb, "hsflt.pdb");
        assert_eq!(guid.len(), 32);
        assert!(age >= 1);
        let img = d
            .loaded(0xFFFF_F800_1234_0000, &|_, _| Some(0xFFFF_F800_0000_1000))
            .expect("load");
        assert_eq!(img.len() as u64, d.size_of_image);
        let slot = d.imports[0].slot as usize;
        assert_eq!(
            &img[slot..slot + 8],
            &0xFFFF_F800_0000_1000u64.to_le_bytes()
        );
    }
}
