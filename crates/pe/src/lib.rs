//! PE32+ images read out of a dump's virtual memory: the headers, the
//! section table, the data directories, the CodeView (RSDS) debug record,
//! the export names and the `.pdata` exception directory, with named
//! fields ([`raw`]) and every read bounded and checked (image memory is
//! untrusted: sizes and RVAs are capped, arithmetic is checked, a missing
//! page is an error naming its address, never zeros).
//!
//! One reader for every stage: kernel discovery (`hangscope-nt`), drivers'
//! symbol identities and export names, and the unwinder's `.pdata`
//! (`hangscope-unwind`). It sits just above `hangscope-x64` so both can use
//! it without reaching backwards.
//!
//! ```
//! use hangscope_pe::PeHeaders;
//! use hangscope_x64::{SparseMemory, VirtAddr};
//! let mut mem = SparseMemory::new();
//! let base = 0xfffff800_1000_0000u64;
//! mem.write(base, b"MZ");
//! mem.write_u32(base + 0x3c, 0x80);
//! mem.write(base + 0x80, b"PE\0\0");
//! mem.write(base + 0x84, &0x8664u16.to_le_bytes());          // Machine
//! mem.write(base + 0x94, &0xf0u16.to_le_bytes());            // SizeOfOptionalHeader
//! mem.write(base + 0x98, &0x20bu16.to_le_bytes());           // PE32+
//! mem.write_u32(base + 0x98 + 56, 0x2000);                   // SizeOfImage
//! let pe = PeHeaders::read(&mem, VirtAddr(base), u64::MAX).unwrap();
//! assert_eq!(pe.size, 0x2000);
//! assert!(pe.codeview(&mem).is_none());
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod raw;

use hangscope_dump::PAGE_SIZE;
use hangscope_x64::{Fault, VirtAddr, VirtualMemory};
use raw::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What is wrong with an image's headers. Variants carry the raw values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A header could not be read (not in the dump, paged out).
    Unreadable(Fault),
    /// `IMAGE_DOS_HEADER.e_magic` is not "MZ".
    BadDosSignature {
        /// The value found.
        found: u16,
    },
    /// `e_lfanew` is below the DOS header, beyond [`raw::MAX_E_LFANEW`] or
    /// outside the image.
    BadNtHeaderOffset {
        /// The value found.
        e_lfanew: u32,
    },
    /// The NT headers do not start with "PE\0\0".
    BadNtSignature {
        /// The value found.
        found: u32,
    },
    /// The optional header is not PE32+ or too short for its data
    /// directories.
    BadOptionalHeader {
        /// `Magic` found (0 when the header was too short to read it).
        magic: u16,
        /// `SizeOfOptionalHeader` found.
        size: u16,
    },
}

/// An image header error and the address of the structure read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// What.
    pub kind: ErrorKind,
    /// Where: the header being read.
    pub at: VirtAddr,
}

impl Error {
    /// A short stable name for logs and tests.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ErrorKind::Unreadable(_) => "Unreadable",
            ErrorKind::BadDosSignature { .. } => "BadDosSignature",
            ErrorKind::BadNtHeaderOffset { .. } => "BadNtHeaderOffset",
            ErrorKind::BadNtSignature { .. } => "BadNtSignature",
            ErrorKind::BadOptionalHeader { .. } => "BadOptionalHeader",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Unreadable(e) => write!(f, "PE header unreadable: {e}"),
            ErrorKind::BadDosSignature { found } => {
                write!(f, "no MZ signature ({found:#06x}) at {}", self.at)
            }
            ErrorKind::BadNtHeaderOffset { e_lfanew } => {
                write!(f, "e_lfanew {e_lfanew:#x} is out of range at {}", self.at)
            }
            ErrorKind::BadNtSignature { found } => {
                write!(f, "no PE signature ({found:#010x}) at {}", self.at)
            }
            ErrorKind::BadOptionalHeader { magic, size } => write!(
                f,
                "optional header is not PE32+ (magic {magic:#x}, size {size:#x}) at {}",
                self.at
            ),
        }
    }
}

/// One `IMAGE_DATA_DIRECTORY`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDirectory {
    /// `VirtualAddress` (an RVA).
    pub rva: u32,
    /// `Size` in bytes.
    pub size: u32,
}

impl DataDirectory {
    /// Whether the directory lies wholly inside `image_size` bytes (and is
    /// not empty).
    pub fn within(&self, image_size: u64) -> bool {
        self.rva != 0 && self.size != 0 && u64::from(self.rva) + u64::from(self.size) <= image_size
    }
}

/// One `IMAGE_SECTION_HEADER` (the fields hangscope uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// `Name`, up to its first NUL.
    pub name: String,
    /// `VirtualAddress` (an RVA).
    pub rva: u32,
    /// `Misc.VirtualSize`.
    pub virtual_size: u32,
    /// `Characteristics` (`IMAGE_SCN_*`).
    pub characteristics: u32,
}

impl Section {
    /// Whether the section holds code (`IMAGE_SCN_CNT_CODE` or
    /// `IMAGE_SCN_MEM_EXECUTE`).
    pub fn is_code(&self) -> bool {
        self.characteristics & (IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE) != 0
    }

    /// The section's RVA range, when it does not wrap.
    pub fn range(&self) -> Option<(u32, u32)> {
        Some((self.rva, self.rva.checked_add(self.virtual_size)?))
    }
}

/// The CodeView `RSDS` record (`CV_INFO_PDB70`): which PDB describes the
/// image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeView {
    /// `Signature`: the PDB's GUID, as stored.
    pub guid: [u8; 16],
    /// `Age`.
    pub age: u32,
    /// `PdbFileName` up to its NUL (often a full build-machine path),
    /// ill-formed UTF-8 replaced.
    pub pdb_name: String,
}

impl CodeView {
    /// The GUID as 32 upper-case hex digits in symbol-server order (the
    /// first three fields little-endian).
    pub fn guid_string(&self) -> String {
        guid_string(&self.guid)
    }
}

/// A GUID's 16 stored bytes as 32 upper-case hex digits in symbol-server
/// order (Data1, Data2, Data3 read little-endian, then Data4 as is).
pub fn guid_string(g: &[u8; 16]) -> String {
    let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
    let d2 = u16::from_le_bytes([g[4], g[5]]);
    let d3 = u16::from_le_bytes([g[6], g[7]]);
    let mut s = format!("{d1:08X}{d2:04X}{d3:04X}");
    for b in &g[8..] {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Bounds on reading export names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportLimits {
    /// Most names read.
    pub max_names: u32,
    /// Longest name, in bytes.
    pub max_name_len: usize,
}

impl Default for ExportLimits {
    fn default() -> Self {
        ExportLimits {
            max_names: 65_536,
            max_name_len: 256,
        }
    }
}

/// The `.pdata` table as read: each 12-byte `RUNTIME_FUNCTION` slot's three
/// RVAs (BeginAddress, EndAddress, UnwindData), `None` where the slot's
/// page is unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdataTable {
    /// Slots in table order.
    pub entries: Vec<Option<[u32; 3]>>,
}

/// An image's headers, read once: where it is, how big, its sections and
/// data directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeHeaders {
    /// Image base.
    pub base: VirtAddr,
    /// Bytes of the image that may be addressed: `SizeOfImage`, capped by
    /// the caller's limit (a loader's module size).
    pub size: u64,
    /// `IMAGE_FILE_HEADER.Machine`.
    pub machine: u16,
    /// Where the optional header is (for error locations).
    pub optional_header: VirtAddr,
    /// Data directories, at most [`raw::IMAGE_NUMBEROF_DIRECTORY_ENTRIES`]
    /// and only those the optional header holds.
    pub directories: Vec<DataDirectory>,
    /// The section table, empty when it is unreadable (it is optional to
    /// every user).
    pub sections: Vec<Section>,
}

fn rd16(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .unwrap_or(0)
}

fn rd32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

impl PeHeaders {
    /// Read the headers of the image at `base`; `limit` caps the image
    /// size (the loader's `SizeOfImage`; `u64::MAX` when unknown).
    pub fn read(mem: &dyn VirtualMemory, base: VirtAddr, limit: u64) -> Result<PeHeaders, Error> {
        let err = |kind, at| Error { kind, at };
        let mut dos = [0u8; IMAGE_DOS_HEADER_SIZE as usize];
        mem.read(base, &mut dos)
            .map_err(|e| err(ErrorKind::Unreadable(e), base))?;
        let magic = rd16(&dos, 0);
        if magic != IMAGE_DOS_SIGNATURE {
            return Err(err(ErrorKind::BadDosSignature { found: magic }, base));
        }
        let e_lfanew = rd32(&dos, E_LFANEW_OFFSET);
        if !(IMAGE_DOS_HEADER_SIZE as u32..=MAX_E_LFANEW).contains(&e_lfanew)
            || u64::from(e_lfanew) >= limit
        {
            return Err(err(ErrorKind::BadNtHeaderOffset { e_lfanew }, base));
        }
        let nt = VirtAddr(base.0.wrapping_add(u64::from(e_lfanew)));
        let mut fh = [0u8; 4 + IMAGE_FILE_HEADER_SIZE as usize];
        mem.read(nt, &mut fh)
            .map_err(|e| err(ErrorKind::Unreadable(e), nt))?;
        let sig = rd32(&fh, 0);
        if sig != IMAGE_NT_SIGNATURE {
            return Err(err(ErrorKind::BadNtSignature { found: sig }, nt));
        }
        let file = &fh[4..];
        let machine = rd16(file, FILE_MACHINE);
        let nsections = rd16(file, FILE_NUMBER_OF_SECTIONS).min(MAX_SECTIONS);
        let opt_size = rd16(file, FILE_SIZE_OF_OPTIONAL_HEADER);
        let opt_va = VirtAddr(nt.0.wrapping_add(4 + IMAGE_FILE_HEADER_SIZE));
        if usize::from(opt_size) < OPT_DATA_DIRECTORY {
            return Err(err(
                ErrorKind::BadOptionalHeader {
                    magic: 0,
                    size: opt_size,
                },
                opt_va,
            ));
        }
        let mut opt = vec![0u8; usize::from(opt_size)];
        mem.read(opt_va, &mut opt)
            .map_err(|e| err(ErrorKind::Unreadable(e), opt_va))?;
        let opt_magic = rd16(&opt, 0);
        if opt_magic != IMAGE_NT_OPTIONAL_HDR64_MAGIC {
            return Err(err(
                ErrorKind::BadOptionalHeader {
                    magic: opt_magic,
                    size: opt_size,
                },
                opt_va,
            ));
        }
        // Trust the smaller of the two sizes: the loader's and the header's.
        let size = u64::from(rd32(&opt, OPT_SIZE_OF_IMAGE)).min(limit);
        let declared = rd32(&opt, OPT_NUMBER_OF_RVA_AND_SIZES) as usize;
        let room = (opt.len() - OPT_DATA_DIRECTORY) / IMAGE_DATA_DIRECTORY_SIZE;
        let directories = (0..declared.min(room).min(IMAGE_NUMBEROF_DIRECTORY_ENTRIES))
            .map(|i| {
                let o = OPT_DATA_DIRECTORY + i * IMAGE_DATA_DIRECTORY_SIZE;
                DataDirectory {
                    rva: rd32(&opt, o),
                    size: rd32(&opt, o + 4),
                }
            })
            .collect();
        let sec_va = VirtAddr(opt_va.0.wrapping_add(u64::from(opt_size)));
        let mut secs = vec![0u8; usize::from(nsections) * IMAGE_SECTION_HEADER_SIZE];
        let sections = if mem.read(sec_va, &mut secs).is_ok() {
            secs.chunks_exact(IMAGE_SECTION_HEADER_SIZE)
                .map(|s| {
                    let end = s[..8].iter().position(|&c| c == 0).unwrap_or(8);
                    Section {
                        name: String::from_utf8_lossy(&s[..end]).into_owned(),
                        rva: rd32(s, SECTION_VIRTUAL_ADDRESS),
                        virtual_size: rd32(s, SECTION_VIRTUAL_SIZE),
                        characteristics: rd32(s, SECTION_CHARACTERISTICS),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(PeHeaders {
            base,
            size,
            machine,
            optional_header: opt_va,
            directories,
            sections,
        })
    }

    /// Data directory `index` (`IMAGE_DIRECTORY_ENTRY_*`), when the header
    /// has it.
    pub fn directory(&self, index: usize) -> Option<DataDirectory> {
        self.directories.get(index).copied()
    }

    /// The virtual address `rva` bytes into the image, when the RVA lies
    /// inside it.
    pub fn va(&self, rva: u64) -> Option<VirtAddr> {
        (rva < self.size).then(|| VirtAddr(self.base.0.wrapping_add(rva)))
    }

    /// The executable sections' RVA ranges.
    pub fn code_ranges(&self) -> Vec<(u32, u32)> {
        self.sections
            .iter()
            .filter(|s| s.is_code())
            .filter_map(Section::range)
            .collect()
    }

    /// The first CodeView `RSDS` record of the debug directory, or `None`
    /// when there is none or it is unreadable. Entries, record size and
    /// name are bounded ([`raw::MAX_DEBUG_ENTRIES`],
    /// [`raw::MAX_CODEVIEW_SIZE`]).
    pub fn codeview(&self, mem: &dyn VirtualMemory) -> Option<CodeView> {
        let dir = self.directory(IMAGE_DIRECTORY_ENTRY_DEBUG)?;
        let len = (dir.size as usize).min(MAX_DEBUG_ENTRIES * IMAGE_DEBUG_DIRECTORY_SIZE);
        if dir.rva == 0 || len == 0 {
            return None;
        }
        let at = self.va(u64::from(dir.rva))?;
        let entries = mem.read_vec(at, len as u64, len as u64).ok()?;
        for e in entries.chunks_exact(IMAGE_DEBUG_DIRECTORY_SIZE) {
            let size = rd32(e, DEBUG_SIZE_OF_DATA);
            if rd32(e, DEBUG_TYPE) != IMAGE_DEBUG_TYPE_CODEVIEW
                || !(CV_PDB_FILE_NAME as u32..=MAX_CODEVIEW_SIZE).contains(&size)
            {
                continue;
            }
            let Some(va) = self.va(u64::from(rd32(e, DEBUG_ADDRESS_OF_RAW_DATA))) else {
                continue;
            };
            let Ok(cv) = mem.read_vec(va, u64::from(size), u64::from(MAX_CODEVIEW_SIZE)) else {
                continue;
            };
            if rd32(&cv, 0) != CV_SIGNATURE_RSDS {
                continue;
            }
            let mut guid = [0u8; 16];
            guid.copy_from_slice(&cv[CV_GUID..CV_GUID + 16]);
            let name = &cv[CV_PDB_FILE_NAME..];
            let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
            return Some(CodeView {
                guid,
                age: rd32(&cv, CV_AGE),
                pdb_name: String::from_utf8_lossy(&name[..end]).into_owned(),
            });
        }
        None
    }

    /// Export names by function RVA (empty when the image has no export
    /// directory or it is unreadable); names whose function RVA lies
    /// outside the image, or that cannot be read whole, are left out.
    pub fn exports(&self, mem: &dyn VirtualMemory, limits: ExportLimits) -> BTreeMap<u32, String> {
        let mut out = BTreeMap::new();
        let Some(dir) = self.directory(IMAGE_DIRECTORY_ENTRY_EXPORT) else {
            return out;
        };
        let Some(at) = (dir.rva != 0 && dir.size != 0)
            .then(|| self.va(u64::from(dir.rva)))
            .flatten()
        else {
            return out;
        };
        let mut ed = [0u8; IMAGE_EXPORT_DIRECTORY_SIZE];
        if mem.read(at, &mut ed).is_err() {
            return out;
        }
        let nfun = rd32(&ed, EXPORT_NUMBER_OF_FUNCTIONS);
        let nnames = rd32(&ed, EXPORT_NUMBER_OF_NAMES);
        let funs = u64::from(rd32(&ed, EXPORT_ADDRESS_OF_FUNCTIONS));
        let names = u64::from(rd32(&ed, EXPORT_ADDRESS_OF_NAMES));
        let ords = u64::from(rd32(&ed, EXPORT_ADDRESS_OF_NAME_ORDINALS));
        let b = self.base.0;
        for i in 0..u64::from(nnames.min(limits.max_names)) {
            let (Ok(np), Ok(ord)) = (
                mem.read_u32(VirtAddr(b.wrapping_add(names + 4 * i))),
                mem.read_u16(VirtAddr(b.wrapping_add(ords + 2 * i))),
            ) else {
                break;
            };
            if u32::from(ord) >= nfun {
                continue;
            }
            let Ok(rva) = mem.read_u32(VirtAddr(b.wrapping_add(funs + 4 * u64::from(ord)))) else {
                continue;
            };
            if u64::from(rva) >= self.size {
                continue;
            }
            let name = VirtAddr(b.wrapping_add(u64::from(np)));
            match mem.read_cstr(name, limits.max_name_len) {
                Ok(n) if !n.is_empty() => {
                    out.insert(rva, String::from_utf8_lossy(&n).into_owned());
                }
                _ => {}
            }
        }
        out
    }

    /// The `.pdata` exception directory's RUNTIME_FUNCTION slots, at most
    /// `max_entries`, read page by page so that one missing page loses only
    /// the slots on it. `None` when the image has no exception directory;
    /// `Err` with the directory when it lies outside the image.
    pub fn pdata(
        &self,
        mem: &dyn VirtualMemory,
        max_entries: u64,
    ) -> Result<Option<PdataTable>, DataDirectory> {
        let Some(dir) = self.directory(IMAGE_DIRECTORY_ENTRY_EXCEPTION) else {
            return Ok(None);
        };
        if dir.size == 0 {
            return Ok(None);
        }
        if !dir.within(self.size) {
            return Err(dir);
        }
        let count = (u64::from(dir.size) / RUNTIME_FUNCTION_SIZE).min(max_entries);
        let start = self.base.0.wrapping_add(u64::from(dir.rva));
        let len = (count * RUNTIME_FUNCTION_SIZE) as usize;
        let mut bytes = vec![0u8; len];
        let mut present = vec![true; len];
        if mem.read(VirtAddr(start), &mut bytes).is_err() {
            let mut off = 0usize;
            while off < len {
                let va = start.wrapping_add(off as u64);
                let n = ((PAGE_SIZE - va % PAGE_SIZE) as usize).min(len - off);
                if mem.read(VirtAddr(va), &mut bytes[off..off + n]).is_err() {
                    present[off..off + n].iter_mut().for_each(|p| *p = false);
                }
                off += n;
            }
        }
        let n = RUNTIME_FUNCTION_SIZE as usize;
        let entries = bytes
            .chunks_exact(n)
            .zip(present.chunks_exact(n))
            .map(|(b, p)| {
                p.iter()
                    .all(|&p| p)
                    .then(|| [rd32(b, 0), rd32(b, 4), rd32(b, 8)])
            })
            .collect();
        Ok(Some(PdataTable { entries }))
    }
}

#[cfg(test)]
mod tests;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
