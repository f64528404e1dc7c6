//! PE images read from memory: headers, the `.pdata` function table and
//! UNWIND_INFO records.

use crate::error::{Error, ErrorKind};
use crate::raw::*;
use hangscope_pe::{PdataTable, PeHeaders};
use hangscope_x64::{VirtAddr, VirtualMemory};
use serde::{Deserialize, Serialize};

/// A loaded image: where it is and what it is called. `nt` builds these from
/// `PsLoadedModuleList` (`LDR_DATA_TABLE_ENTRY.DllBase`, `SizeOfImage`,
/// `BaseDllName`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Image base.
    pub base: VirtAddr,
    /// Size of the image in memory.
    pub size: u64,
    /// Name (e.g. `ntoskrnl.exe`), used in frames and error messages.
    pub name: String,
}

impl Module {
    /// A module.
    pub fn new(base: u64, size: u64, name: impl Into<String>) -> Self {
        Module {
            base: VirtAddr(base),
            size,
            name: name.into(),
        }
    }

    /// Whether `va` lies inside the image.
    pub fn contains(&self, va: u64) -> bool {
        va >= self.base.0 && va - self.base.0 < self.size
    }
}

/// Finds the module that holds an address.
pub trait ModuleSet {
    /// Index of the module that contains `va`.
    fn find(&self, va: u64) -> Option<usize>;
    /// The module at `index`.
    fn module(&self, index: usize) -> Option<&Module>;
}

/// A list of modules sorted by base, searched by binary search. Overlapping
/// modules (corrupt lists) are kept; lookups return the one with the highest
/// base below the address that contains it.
#[derive(Debug, Clone, Default)]
pub struct ModuleList {
    modules: Vec<Module>,
    /// Indices into `modules`, sorted by base.
    by_base: Vec<usize>,
}

impl ModuleList {
    /// A list from modules in any order; indices are the input order.
    pub fn new(modules: Vec<Module>) -> Self {
        let mut by_base: Vec<usize> = (0..modules.len()).collect();
        by_base.sort_by_key(|&i| modules[i].base.0);
        ModuleList { modules, by_base }
    }

    /// The modules, in input order.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }
}

impl ModuleSet for ModuleList {
    fn find(&self, va: u64) -> Option<usize> {
        let n = self
            .by_base
            .partition_point(|&i| self.modules[i].base.0 <= va);
        // Walk back a few entries so that a small module nested in a large
        // bogus one is still found; bounded.
        self.by_base[..n]
            .iter()
            .rev()
            .take(8)
            .copied()
            .find(|&i| self.modules[i].contains(va))
    }

    fn module(&self, index: usize) -> Option<&Module> {
        self.modules.get(index)
    }
}

/// One `.pdata` entry (RVAs relative to the image base).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeFunction {
    /// First byte of the function (fragment).
    pub begin: u32,
    /// One past its last byte.
    pub end: u32,
    /// RVA of its UNWIND_INFO (bit 0 set: of another RUNTIME_FUNCTION).
    pub unwind_data: u32,
}

impl RuntimeFunction {
    fn from_bytes(b: &[u8]) -> Self {
        let u = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        RuntimeFunction {
            begin: u(0),
            end: u(4),
            unwind_data: u(8),
        }
    }

    fn valid_in(&self, image_size: u64) -> bool {
        self.begin < self.end
            && u64::from(self.end) <= image_size
            && self.unwind_data != 0
            && u64::from(self.unwind_data) < image_size
    }
}

/// What loading an image's `.pdata` found, for diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdataReport {
    /// Entries the exception directory declares.
    pub declared: u32,
    /// Entries read and kept.
    pub kept: u32,
    /// Entries lost to unreadable pages.
    pub unreadable: u32,
    /// Entries dropped: empty, or RVAs outside the image.
    pub invalid: u32,
    /// Whether the table was not sorted by BeginAddress (Windows requires it;
    /// hangscope sorts it).
    pub unsorted: bool,
    /// Entries whose range overlaps a neighbour's (never used for lookups).
    pub overlapping: u32,
}

/// A parsed image: headers and the whole `.pdata`, read once.
#[derive(Debug, Clone)]
pub struct Image {
    /// Image base.
    pub base: u64,
    /// Bytes of the image that may be addressed: min(module size, SizeOfImage).
    pub size: u64,
    /// Module name.
    pub name: String,
    /// Executable sections as RVA ranges (empty if the section table said
    /// nothing useful).
    pub code_ranges: Vec<(u32, u32)>,
    /// Sorted, validated function table.
    functions: Vec<RuntimeFunction>,
    /// Entry indices that overlap a neighbour.
    overlap: Vec<bool>,
    /// RVA ranges where unreadable `.pdata` entries may have been.
    gaps: Vec<(u32, u32)>,
    /// Diagnostics.
    pub pdata: PdataReport,
}

/// The outcome of a `.pdata` lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The entry that covers the address.
    Found(RuntimeFunction),
    /// No entry: a leaf function (return address at `[rsp]`).
    Leaf,
}

/// Cap on `.pdata` entries (ntoskrnl has a few tens of thousands).
const MAX_PDATA_ENTRIES: u64 = 1 << 20;

fn rd_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

impl Image {
    /// Read an image's headers and `.pdata` from memory (through
    /// `hangscope-pe`, the one PE reader).
    pub fn load(mem: &dyn VirtualMemory, module: &Module) -> Result<Image, Error> {
        let base = module.base.0;
        let name = module.name.as_str();
        let err = |kind, va| Error::at(kind, name, va);
        let pe = PeHeaders::read(mem, module.base, module.size)
            .map_err(|e| err(ErrorKind::Image(e.kind), e.at.0))?;
        if pe.machine != IMAGE_FILE_MACHINE_AMD64 {
            let nt = pe
                .optional_header
                .0
                .wrapping_sub(4 + IMAGE_FILE_HEADER_SIZE);
            return Err(err(
                ErrorKind::NotAmd64 {
                    machine: pe.machine,
                },
                nt,
            ));
        }
        let mut image = Image {
            base,
            size: pe.size,
            name: module.name.clone(),
            // Only to know which RVAs hold code; empty when the section
            // table is unreadable.
            code_ranges: pe.code_ranges(),
            functions: Vec::new(),
            overlap: Vec::new(),
            gaps: Vec::new(),
            pdata: PdataReport::default(),
        };
        match pe.pdata(mem, MAX_PDATA_ENTRIES) {
            Ok(Some(table)) => image.index_pdata(table),
            Ok(None) => {}
            Err(dir) => {
                return Err(err(
                    ErrorKind::ExceptionDirectoryOutOfImage {
                        rva: dir.rva,
                        size: dir.size,
                    },
                    pe.optional_header.0,
                ))
            }
        }
        Ok(image)
    }

    /// Validate, sort and index the `.pdata` slots as read (a missing page
    /// loses only the entries on it, and leaves a gap where lookups cannot
    /// decide).
    fn index_pdata(&mut self, table: PdataTable) {
        self.pdata.declared = table.entries.len() as u32;
        // Entries in file order; `None` where unreadable.
        let mut entries: Vec<Option<RuntimeFunction>> = Vec::with_capacity(table.entries.len());
        for slot in table.entries {
            match slot {
                Some([begin, end, unwind_data]) => {
                    let f = RuntimeFunction {
                        begin,
                        end,
                        unwind_data,
                    };
                    if f.valid_in(self.size) {
                        entries.push(Some(f));
                    } else {
                        self.pdata.invalid += 1;
                    }
                }
                None => {
                    self.pdata.unreadable += 1;
                    entries.push(None);
                }
            }
        }
        // Gaps: between the readable neighbours of each run of unreadable
        // entries (meaningful because the table is sorted).
        let mut last_end: u32 = 0;
        let mut in_gap = false;
        for e in &entries {
            match e {
                None => in_gap = true,
                Some(f) => {
                    if in_gap {
                        self.gaps.push((last_end, f.begin));
                        in_gap = false;
                    }
                    last_end = last_end.max(f.end);
                }
            }
        }
        if in_gap {
            self.gaps.push((last_end, u32::MAX));
        }
        let mut functions: Vec<RuntimeFunction> = entries.into_iter().flatten().collect();
        if functions.windows(2).any(|w| w[1].begin < w[0].begin) {
            self.pdata.unsorted = true;
            functions.sort_by_key(|f| f.begin);
            if !self.gaps.is_empty() {
                // Unsorted and incomplete: any miss may be a lost entry.
                self.gaps = vec![(0, u32::MAX)];
            }
        }
        let mut overlap = vec![false; functions.len()];
        for i in 1..functions.len() {
            if functions[i].begin < functions[i - 1].end {
                overlap[i] = true;
                overlap[i - 1] = true;
            }
        }
        self.pdata.overlapping = overlap.iter().filter(|&&o| o).count() as u32;
        self.pdata.kept = functions.len() as u32;
        self.functions = functions;
        self.overlap = overlap;
    }

    /// An image with no function table (unit tests).
    #[cfg(test)]
    pub(crate) fn empty(base: u64, size: u64) -> Image {
        Image {
            base,
            size,
            name: "test.sys".into(),
            code_ranges: Vec::new(),
            functions: Vec::new(),
            overlap: Vec::new(),
            gaps: Vec::new(),
            pdata: PdataReport::default(),
        }
    }

    /// The validated function table, sorted by begin.
    pub fn functions(&self) -> &[RuntimeFunction] {
        &self.functions
    }

    /// Whether `rva` lies in an executable section (true if the section table
    /// was unreadable: no evidence against).
    pub fn is_code(&self, rva: u32) -> bool {
        self.code_ranges.is_empty() || self.code_ranges.iter().any(|&(b, e)| rva >= b && rva < e)
    }

    /// Find the RUNTIME_FUNCTION for `rva` (binary search).
    pub fn lookup(&self, rva: u32) -> Result<Lookup, Error> {
        let n = self.functions.partition_point(|f| f.begin <= rva);
        if n > 0 {
            let i = n - 1;
            let f = self.functions[i];
            if rva < f.end {
                if self.overlap[i] {
                    return Err(Error::at(
                        ErrorKind::PdataOverlap {
                            rva,
                            begin: f.begin,
                        },
                        &self.name,
                        self.base + u64::from(rva),
                    ));
                }
                return Ok(Lookup::Found(f));
            }
            // An overlapping predecessor could still cover it.
            if i > 0 && self.overlap[i] && rva < self.functions[i - 1].end {
                return Err(Error::at(
                    ErrorKind::PdataOverlap {
                        rva,
                        begin: self.functions[i - 1].begin,
                    },
                    &self.name,
                    self.base + u64::from(rva),
                ));
            }
        }
        if self.gaps.iter().any(|&(lo, hi)| rva >= lo && rva < hi) {
            return Err(Error::at(
                ErrorKind::PdataIncomplete { rva },
                &self.name,
                self.base + u64::from(rva),
            ));
        }
        Ok(Lookup::Leaf)
    }

    /// Read a RUNTIME_FUNCTION at `rva` (indirect and chained links).
    pub(crate) fn read_runtime_function(
        &self,
        mem: &dyn VirtualMemory,
        rva: u32,
    ) -> Result<RuntimeFunction, Error> {
        let va = self.base + u64::from(rva);
        let bad = || Error::at(ErrorKind::BadRuntimeFunction { rva }, &self.name, va);
        if u64::from(rva) + RUNTIME_FUNCTION_SIZE > self.size {
            return Err(bad());
        }
        let mut b = [0u8; RUNTIME_FUNCTION_SIZE as usize];
        mem.read(VirtAddr(va), &mut b).map_err(|_| bad())?;
        let f = RuntimeFunction::from_bytes(&b);
        if !f.valid_in(self.size) {
            return Err(bad());
        }
        Ok(f)
    }
}

/// One decoded unwind operation, with the prolog offset it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnwindCode {
    /// Offset in the prolog of the end of the instruction this undoes.
    pub code_offset: u8,
    /// The operation.
    pub op: UnwindOp,
}

/// An unwind operation (what the prolog did; the unwinder undoes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum UnwindOp {
    /// `UWOP_PUSH_NONVOL`: push of register `reg` (unwind numbering).
    PushNonvol {
        /// Register number.
        reg: u8,
    },
    /// `UWOP_ALLOC_LARGE` / `UWOP_ALLOC_SMALL`: `sub rsp, size`.
    Alloc {
        /// Bytes allocated.
        size: u32,
    },
    /// `UWOP_SET_FPREG`: frame register = rsp + FrameOffset * 16.
    SetFpreg,
    /// `UWOP_SAVE_NONVOL(_FAR)`: register stored at frame base + offset.
    SaveNonvol {
        /// Register number.
        reg: u8,
        /// Byte offset from the frame base.
        offset: u32,
    },
    /// `UWOP_SAVE_XMM128(_FAR)`: xmm register stored at frame base + offset.
    SaveXmm128 {
        /// XMM register number.
        reg: u8,
        /// Byte offset from the frame base.
        offset: u32,
    },
    /// `UWOP_PUSH_MACHFRAME`: an interrupt or exception pushed a machine frame.
    PushMachframe {
        /// Whether an error code was pushed too.
        error_code: bool,
    },
    /// `UWOP_EPILOG` (version 2): epilog descriptor, no effect when unwinding
    /// outside an epilog. Raw fields kept for diagnostics.
    Epilog {
        /// OpInfo.
        info: u8,
    },
}

/// A parsed UNWIND_INFO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnwindInfo {
    /// RVA it was read from.
    pub rva: u32,
    /// Version (1 or 2).
    pub version: u8,
    /// UNW_FLAG_* bits.
    pub flags: u8,
    /// SizeOfProlog.
    pub prolog_size: u8,
    /// FrameRegister (0 = none).
    pub frame_register: u8,
    /// FrameOffset, already scaled by 16.
    pub frame_offset: u32,
    /// Codes in table order (reverse prolog order).
    pub codes: Vec<UnwindCode>,
    /// The parent's RUNTIME_FUNCTION when UNW_FLAG_CHAININFO is set.
    pub chained: Option<RuntimeFunction>,
}

impl UnwindInfo {
    /// Read and decode the UNWIND_INFO at `rva` of `image`.
    ///
    /// Longer than the house limit on purpose: the slot loop decodes the
    /// documented opcode list in one pass, each opcode's slot count next to
    /// its meaning and its checks; split, the two tables would drift apart.
    pub fn read(mem: &dyn VirtualMemory, image: &Image, rva: u32) -> Result<UnwindInfo, Error> {
        let va = image.base + u64::from(rva);
        let unreadable = |read| {
            Error::at(
                ErrorKind::UnwindInfoUnreadable { rva, read },
                &image.name,
                va,
            )
        };
        let mut hdr = [0u8; UNWIND_INFO_HEADER_SIZE as usize];
        mem.read(VirtAddr(va), &mut hdr).map_err(unreadable)?;
        let version = hdr[0] & 7;
        let flags = hdr[0] >> 3;
        if version != 1 && version != 2 {
            return Err(Error::at(
                ErrorKind::UnsupportedUnwindVersion { rva, version },
                &image.name,
                va,
            ));
        }
        let count = hdr[2];
        let frame_register = hdr[3] & 0xf;
        let frame_offset = u32::from(hdr[3] >> 4) * 16;
        if frame_register == 4 {
            return Err(Error::at(
                ErrorKind::BadFrameRegister {
                    rva,
                    register: frame_register,
                },
                &image.name,
                va,
            ));
        }
        // Codes are padded to an even count before the trailer.
        let slots = usize::from(count);
        let padded = (slots + 1) & !1;
        let chain = flags & UNW_FLAG_CHAININFO != 0;
        let trailer = if chain {
            RUNTIME_FUNCTION_SIZE as usize
        } else {
            0
        };
        let mut body = vec![0u8; padded * 2 + trailer];
        mem.read(VirtAddr(va + UNWIND_INFO_HEADER_SIZE), &mut body)
            .map_err(unreadable)?;
        let slot = |i: usize| rd_u16(&body, i * 2);
        let mut codes = Vec::with_capacity(slots);
        let mut i = 0usize;
        while i < slots {
            let s = slot(i);
            let code_offset = (s & 0xff) as u8;
            let op = ((s >> 8) & 0xf) as u8;
            let info = (s >> 12) as u8;
            let bad = || {
                Error::at(
                    ErrorKind::BadUnwindCode {
                        rva,
                        slot: i as u8,
                        op,
                    },
                    &image.name,
                    va,
                )
            };
            let need = match op {
                UWOP_PUSH_NONVOL | UWOP_ALLOC_SMALL | UWOP_SET_FPREG | UWOP_PUSH_MACHFRAME => 1,
                UWOP_ALLOC_LARGE => match info {
                    0 => 2,
                    1 => 3,
                    _ => return Err(bad()),
                },
                UWOP_SAVE_NONVOL | UWOP_SAVE_XMM128 => 2,
                UWOP_SAVE_NONVOL_FAR | UWOP_SAVE_XMM128_FAR => 3,
                UWOP_EPILOG if version >= 2 => 1,
                // Version 2's spare code keeps the size of the old v1
                // UWOP_SAVE_XMM_FAR (3 slots); v1's 6/7 were never emitted.
                UWOP_SPARE_CODE if version >= 2 => 3,
                _ => return Err(bad()),
            };
            if i + need > slots {
                return Err(bad());
            }
            // RSP is never pushed or saved as a nonvolatile register: such a
            // code would move the stack pointer arbitrarily.
            if matches!(
                op,
                UWOP_PUSH_NONVOL | UWOP_SAVE_NONVOL | UWOP_SAVE_NONVOL_FAR
            ) && info == 4
            {
                return Err(bad());
            }
            let u32_at = |j: usize| u32::from(slot(j)) | (u32::from(slot(j + 1)) << 16);
            let decoded = match op {
                UWOP_PUSH_NONVOL => Some(UnwindOp::PushNonvol { reg: info }),
                UWOP_ALLOC_SMALL => Some(UnwindOp::Alloc {
                    size: (u32::from(info) + 1) * 8,
                }),
                UWOP_ALLOC_LARGE if info == 0 => Some(UnwindOp::Alloc {
                    size: u32::from(slot(i + 1)) * 8,
                }),
                UWOP_ALLOC_LARGE => Some(UnwindOp::Alloc {
                    size: u32_at(i + 1),
                }),
                UWOP_SET_FPREG => Some(UnwindOp::SetFpreg),
                UWOP_SAVE_NONVOL => Some(UnwindOp::SaveNonvol {
                    reg: info,
                    offset: u32::from(slot(i + 1)) * 8,
                }),
                UWOP_SAVE_NONVOL_FAR => Some(UnwindOp::SaveNonvol {
                    reg: info,
                    offset: u32_at(i + 1),
                }),
                UWOP_SAVE_XMM128 => Some(UnwindOp::SaveXmm128 {
                    reg: info,
                    offset: u32::from(slot(i + 1)) * 16,
                }),
                UWOP_SAVE_XMM128_FAR => Some(UnwindOp::SaveXmm128 {
                    reg: info,
                    offset: u32_at(i + 1),
                }),
                UWOP_PUSH_MACHFRAME => {
                    if info > 1 {
                        return Err(bad());
                    }
                    Some(UnwindOp::PushMachframe {
                        error_code: info == 1,
                    })
                }
                UWOP_EPILOG => Some(UnwindOp::Epilog { info }),
                _ => None,
            };
            if let Some(op) = decoded {
                if matches!(op, UnwindOp::SetFpreg) && frame_register == 0 {
                    return Err(Error::at(
                        ErrorKind::BadFrameRegister { rva, register: 0 },
                        &image.name,
                        va,
                    ));
                }
                codes.push(UnwindCode { code_offset, op });
            }
            i += need;
        }
        let chained = if chain {
            let f = RuntimeFunction::from_bytes(&body[padded * 2..]);
            if !f.valid_in(image.size) {
                return Err(Error::at(
                    ErrorKind::BadRuntimeFunction {
                        rva: rva
                            .saturating_add((UNWIND_INFO_HEADER_SIZE as usize + padded * 2) as u32),
                    },
                    &image.name,
                    va,
                ));
            }
            Some(f)
        } else {
            None
        };
        Ok(UnwindInfo {
            rva,
            version,
            flags,
            prolog_size: hdr[1],
            frame_register,
            frame_offset,
            codes,
            chained,
        })
    }
}
