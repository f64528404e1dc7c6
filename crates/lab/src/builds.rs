//! The Windows builds the lab knows, one per shared symbol table.
//!
//! Each row was identified by inspecting its ISF: structure sizes
//! (`_EPROCESS`, `_ETHREAD`, `_KPRCB`), which fields exist (`ObHeaderCookie`,
//! `_HANDLE_TABLE_ENTRY.Object` vs `ObjectPointerBits`, `_KTHREAD` Hgs*
//! thread-director fields) and which types exist (`_KLDR_DATA_TABLE_ENTRY`).
//! The version numbers are the ones those kernels report.

use std::path::{Path, PathBuf};

/// How a build places the PML4 self-reference entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfRefStyle {
    /// Always index 0x1ED (before Windows 10 1607).
    Fixed0x1ed,
    /// A random index in 0x100..=0x1FE chosen at boot (1607 and later).
    Randomized,
}

/// Address-space style of a build: where the kernel and pool live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressStyle {
    /// Windows 7: kernel at `0xfffff800'02xxx000` mapped at physical
    /// `VA - 0xfffff800'00000000`, pool at `0xfffffa80'xxxxxxxx`.
    Win7,
    /// Windows 8.1: KASLR kernel `0xfffff80x'xxxxx000`, pool `0xffffe000'...`.
    Win81,
    /// Windows 10+: KASLR kernel, pool at `0xffff8xxx'...`.
    Win10,
}

/// One known Windows build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsBuild {
    /// Short aliases a scenario may use (`win7sp1`).
    pub aliases: &'static [&'static str],
    /// PDB GUID (32 hex) of its `ntkrnlmp.pdb`.
    pub guid: &'static str,
    /// PDB age.
    pub age: u32,
    /// Product name.
    pub product: &'static str,
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Build number.
    pub build: u32,
    /// Service pack (CmNtCSDVersion >> 8).
    pub service_pack: u32,
    /// NtBuildLab string.
    pub build_lab: &'static str,
    /// PE TimeDateStamp of the kernel.
    pub timestamp: u32,
    /// True if the product is a server by default.
    pub server: bool,
    /// Self-reference placement.
    pub self_ref: SelfRefStyle,
    /// Address-space style.
    pub addresses: AddressStyle,
}

/// Every build with a shared symbol table.
pub const BUILDS: &[WindowsBuild] = &[
    WindowsBuild {
        aliases: &["win7sp1", "win2008r2"],
        guid: "339E74133576439CBCDF7E0229DA3773",
        age: 1,
        product: "Windows 7 SP1 / Server 2008 R2",
        major: 6,
        minor: 1,
        build: 7601,
        service_pack: 1,
        build_lab: "7601.24214.amd64fre.win7sp1_ldr_escrow.180801-1700",
        timestamp: 0x5b625c1f,
        server: true,
        self_ref: SelfRefStyle::Fixed0x1ed,
        addresses: AddressStyle::Win7,
    },
    WindowsBuild {
        aliases: &["win2012r2", "win81"],
        guid: "7C398E976BF945AD812B204DAFBC1A03",
        age: 1,
        product: "Windows 8.1 / Server 2012 R2",
        major: 6,
        minor: 3,
        build: 9600,
        service_pack: 0,
        build_lab: "9600.19913.amd64fre.winblue_ltsb_escrow.201215-1700",
        timestamp: 0x5fd97c51,
        server: true,
        self_ref: SelfRefStyle::Fixed0x1ed,
        addresses: AddressStyle::Win81,
    },
    WindowsBuild {
        aliases: &["win2016", "win10-14393"],
        guid: "517E128F7B7C4EA79491DE6B9B9CE190",
        age: 1,
        product: "Windows Server 2016 / Windows 10 1607",
        major: 10,
        minor: 0,
        build: 14393,
        service_pack: 0,
        build_lab: "14393.4169.amd64fre.rs1_release.210107-1130",
        timestamp: 0x5ff7c1b5,
        server: true,
        self_ref: SelfRefStyle::Randomized,
        addresses: AddressStyle::Win10,
    },
    WindowsBuild {
        aliases: &["win2019a", "win2019", "win10-17763"],
        guid: "00F31FD82648C8ED1A4426DFFC56A424",
        age: 1,
        product: "Windows Server 2019 / Windows 10 1809",
        major: 10,
        minor: 0,
        build: 17763,
        service_pack: 0,
        build_lab: "17763.1.amd64fre.rs5_release.180914-1434",
        timestamp: 0x5b9c6d1a,
        server: true,
        self_ref: SelfRefStyle::Randomized,
        addresses: AddressStyle::Win10,
    },
    WindowsBuild {
        aliases: &["win2019b"],
        guid: "1D4090613BF97F9B9529992E20E93897",
        age: 1,
        product: "Windows Server 2019 / Windows 10 1809 (later update)",
        major: 10,
        minor: 0,
        build: 17763,
        service_pack: 0,
        build_lab: "17763.1879.amd64fre.rs5_release.210402-1728",
        timestamp: 0x606786a2,
        server: true,
        self_ref: SelfRefStyle::Randomized,
        addresses: AddressStyle::Win10,
    },
    WindowsBuild {
        aliases: &["win10-19041", "win10"],
        guid: "606FF669409B00F7FC8C61A9C1670129",
        age: 1,
        product: "Windows 10 2004 family",
        major: 10,
        minor: 0,
        build: 19041,
        service_pack: 0,
        build_lab: "19041.1.amd64fre.vb_release.191206-1406",
        timestamp: 0x5deaf4b3,
        server: false,
        self_ref: SelfRefStyle::Randomized,
        addresses: AddressStyle::Win10,
    },
    WindowsBuild {
        aliases: &["win2022", "win10-20348"],
        guid: "B3ED6FA26A1FD6DF6A34DF3B125CAFE8",
        age: 1,
        product: "Windows Server 2022",
        major: 10,
        minor: 0,
        build: 20348,
        service_pack: 0,
        build_lab: "20348.1.amd64fre.fe_release.210507-1500",
        timestamp: 0x60959b95,
        server: true,
        self_ref: SelfRefStyle::Randomized,
        addresses: AddressStyle::Win10,
    },
    WindowsBuild {
        aliases: &["win11", "win11-22000"],
        guid: "0CE4A95C0CD782A7596B034D8648E585",
        age: 1,
        product: "Windows 11",
        major: 10,
        minor: 0,
        build: 22000,
        service_pack: 0,
        build_lab: "22000.1.amd64fre.co_release.210604-1628",
        timestamp: 0x60bacb62,
        server: false,
        self_ref: SelfRefStyle::Randomized,
        addresses: AddressStyle::Win10,
    },
];

/// The directory holding the shared symbol tables
/// (`<dir>/windows/ntkrnlmp.pdb/GUID-AGE.json.xz`): `$HANGSCOPE_SYMBOLS`,
/// else `../shared/symbols` beside the workspace (where CI puts `shared/`).
/// Errors about a missing table name this directory.
pub fn symbols_dir() -> PathBuf {
    std::env::var_os("HANGSCOPE_SYMBOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/symbols"))
}

/// Turn an ISF into a real PDB (same types, symbols, GUID and age) with
/// `isf2pdb.py` (`$HANGSCOPE_ISF2PDB`, else `tools/isf2pdb.py` beside the
/// symbols directory; needs python3 and LLVM's `yaml2obj` and `lld-link`),
/// creating `pdb`'s directory.
pub fn isf_to_pdb(isf: &Path, pdb: &Path) -> Result<(), crate::Error> {
    let script = std::env::var_os("HANGSCOPE_ISF2PDB")
        .map(PathBuf::from)
        .unwrap_or_else(|| symbols_dir().join("../tools/isf2pdb.py"));
    let dir = pdb.parent().unwrap_or(Path::new("."));
    let io = |p: &Path, e: String| crate::Error::Io {
        path: p.display().to_string(),
        problem: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e.to_string()))?;
    let work = dir.join(".isf2pdb-work");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(isf)
        .arg(pdb)
        .arg(&work)
        .output()
        .map_err(|e| io(&script, format!("cannot run python3: {e}")))?;
    let _ = std::fs::remove_dir_all(&work);
    if !out.status.success() || !pdb.is_file() {
        return Err(io(
            &script,
            format!(
                "failed on {}: {}{}",
                isf.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    Ok(())
}

/// Look a build up by alias or `GUID-AGE`.
pub fn find_build(name: &str) -> Option<&'static WindowsBuild> {
    let lower = name.to_ascii_lowercase();
    BUILDS.iter().find(|b| {
        b.aliases.contains(&lower.as_str())
            || format!("{}-{}", b.guid, b.age).eq_ignore_ascii_case(name)
    })
}

/// Look a build up by PDB identity.
pub fn build_by_identity(guid: &str, age: u32) -> Option<&'static WindowsBuild> {
    BUILDS
        .iter()
        .find(|b| b.guid.eq_ignore_ascii_case(guid) && b.age == age)
}

/// The ISF path of a known build under `dir`.
pub fn isf_path(dir: &Path, b: &WindowsBuild) -> PathBuf {
    dir.join("windows")
        .join("ntkrnlmp.pdb")
        .join(format!("{}-{}.json.xz", b.guid, b.age))
}
