//! PE/COFF layouts with their Microsoft names: offsets of the fields
//! hangscope reads, from the PE/COFF specification.

/// `IMAGE_DOS_HEADER.e_magic` ("MZ").
pub const IMAGE_DOS_SIGNATURE: u16 = 0x5a4d;
/// Size of `IMAGE_DOS_HEADER`.
pub const IMAGE_DOS_HEADER_SIZE: u64 = 0x40;
/// Offset of `IMAGE_DOS_HEADER.e_lfanew`.
pub const E_LFANEW_OFFSET: usize = 0x3c;
/// Largest `e_lfanew` accepted (real images keep the NT headers in the
/// first page; the bound keeps a garbage value from sending reads far).
pub const MAX_E_LFANEW: u32 = 0x1_0000;
/// `IMAGE_NT_HEADERS64.Signature` ("PE\0\0").
pub const IMAGE_NT_SIGNATURE: u32 = 0x0000_4550;
/// Size of `IMAGE_FILE_HEADER`.
pub const IMAGE_FILE_HEADER_SIZE: u64 = 20;
/// Offset of `IMAGE_FILE_HEADER.Machine` (from the file header).
pub const FILE_MACHINE: usize = 0;
/// Offset of `IMAGE_FILE_HEADER.NumberOfSections`.
pub const FILE_NUMBER_OF_SECTIONS: usize = 2;
/// Offset of `IMAGE_FILE_HEADER.SizeOfOptionalHeader`.
pub const FILE_SIZE_OF_OPTIONAL_HEADER: usize = 16;
/// `IMAGE_FILE_HEADER.Machine` for x64.
pub const IMAGE_FILE_MACHINE_AMD64: u16 = 0x8664;
/// `IMAGE_OPTIONAL_HEADER64.Magic` (PE32+).
pub const IMAGE_NT_OPTIONAL_HDR64_MAGIC: u16 = 0x20b;
/// Offset of `SizeOfImage` in `IMAGE_OPTIONAL_HEADER64`.
pub const OPT_SIZE_OF_IMAGE: usize = 56;
/// Offset of `NumberOfRvaAndSizes` in `IMAGE_OPTIONAL_HEADER64`.
pub const OPT_NUMBER_OF_RVA_AND_SIZES: usize = 108;
/// Offset of `DataDirectory` in `IMAGE_OPTIONAL_HEADER64`.
pub const OPT_DATA_DIRECTORY: usize = 112;
/// Size of `IMAGE_DATA_DIRECTORY` (VirtualAddress, Size).
pub const IMAGE_DATA_DIRECTORY_SIZE: usize = 8;
/// `IMAGE_NUMBEROF_DIRECTORY_ENTRIES`.
pub const IMAGE_NUMBEROF_DIRECTORY_ENTRIES: usize = 16;
/// `IMAGE_DIRECTORY_ENTRY_EXPORT`.
pub const IMAGE_DIRECTORY_ENTRY_EXPORT: usize = 0;
/// `IMAGE_DIRECTORY_ENTRY_EXCEPTION`: the `.pdata` RUNTIME_FUNCTION table.
pub const IMAGE_DIRECTORY_ENTRY_EXCEPTION: usize = 3;
/// `IMAGE_DIRECTORY_ENTRY_DEBUG`.
pub const IMAGE_DIRECTORY_ENTRY_DEBUG: usize = 6;

/// Size of `IMAGE_SECTION_HEADER`.
pub const IMAGE_SECTION_HEADER_SIZE: usize = 40;
/// Offset of `IMAGE_SECTION_HEADER.Misc.VirtualSize`.
pub const SECTION_VIRTUAL_SIZE: usize = 8;
/// Offset of `IMAGE_SECTION_HEADER.VirtualAddress`.
pub const SECTION_VIRTUAL_ADDRESS: usize = 12;
/// Offset of `IMAGE_SECTION_HEADER.Characteristics`.
pub const SECTION_CHARACTERISTICS: usize = 36;
/// `IMAGE_SCN_CNT_CODE`.
pub const IMAGE_SCN_CNT_CODE: u32 = 0x0000_0020;
/// `IMAGE_SCN_MEM_EXECUTE`.
pub const IMAGE_SCN_MEM_EXECUTE: u32 = 0x2000_0000;
/// Most section headers read (the COFF limit is 96 for images; the bound
/// only caps a garbage count).
pub const MAX_SECTIONS: u16 = 256;

/// Size of `IMAGE_DEBUG_DIRECTORY`.
pub const IMAGE_DEBUG_DIRECTORY_SIZE: usize = 28;
/// Offset of `IMAGE_DEBUG_DIRECTORY.Type`.
pub const DEBUG_TYPE: usize = 12;
/// Offset of `IMAGE_DEBUG_DIRECTORY.SizeOfData`.
pub const DEBUG_SIZE_OF_DATA: usize = 16;
/// Offset of `IMAGE_DEBUG_DIRECTORY.AddressOfRawData`.
pub const DEBUG_ADDRESS_OF_RAW_DATA: usize = 20;
/// `IMAGE_DEBUG_TYPE_CODEVIEW`.
pub const IMAGE_DEBUG_TYPE_CODEVIEW: u32 = 2;
/// Most debug directory entries read.
pub const MAX_DEBUG_ENTRIES: usize = 16;
/// `CV_INFO_PDB70.CvSignature` ("RSDS").
pub const CV_SIGNATURE_RSDS: u32 = 0x5344_5352;
/// Offset of `CV_INFO_PDB70.Signature` (the GUID).
pub const CV_GUID: usize = 4;
/// Offset of `CV_INFO_PDB70.Age`.
pub const CV_AGE: usize = 20;
/// Offset of `CV_INFO_PDB70.PdbFileName`.
pub const CV_PDB_FILE_NAME: usize = 24;
/// Largest CodeView record read (a PDB path is at most a few hundred bytes).
pub const MAX_CODEVIEW_SIZE: u32 = 0x400;

/// Offset of `IMAGE_EXPORT_DIRECTORY.NumberOfFunctions`.
pub const EXPORT_NUMBER_OF_FUNCTIONS: usize = 20;
/// Offset of `IMAGE_EXPORT_DIRECTORY.NumberOfNames`.
pub const EXPORT_NUMBER_OF_NAMES: usize = 24;
/// Offset of `IMAGE_EXPORT_DIRECTORY.AddressOfFunctions`.
pub const EXPORT_ADDRESS_OF_FUNCTIONS: usize = 28;
/// Offset of `IMAGE_EXPORT_DIRECTORY.AddressOfNames`.
pub const EXPORT_ADDRESS_OF_NAMES: usize = 32;
/// Offset of `IMAGE_EXPORT_DIRECTORY.AddressOfNameOrdinals`.
pub const EXPORT_ADDRESS_OF_NAME_ORDINALS: usize = 36;
/// Size of `IMAGE_EXPORT_DIRECTORY`.
pub const IMAGE_EXPORT_DIRECTORY_SIZE: usize = 40;

/// Size of `RUNTIME_FUNCTION` (BeginAddress, EndAddress, UnwindData: 3 RVAs).
pub const RUNTIME_FUNCTION_SIZE: u64 = 12;
