//! On-disk and in-memory layouts of the PE and x64 unwind structures, with
//! their Microsoft names. Offsets are those of the PE/COFF specification and
//! of the "x64 exception handling" documentation (UNWIND_INFO, UNWIND_CODE).

// The PE layouts live in hangscope-pe, the one PE reader; re-exported so
// that unwind data and the headers around it are named in one place.
pub use hangscope_pe::raw::{
    E_LFANEW_OFFSET, IMAGE_DIRECTORY_ENTRY_EXCEPTION, IMAGE_DOS_SIGNATURE, IMAGE_FILE_HEADER_SIZE,
    IMAGE_FILE_MACHINE_AMD64, IMAGE_NT_OPTIONAL_HDR64_MAGIC, IMAGE_NT_SIGNATURE,
    IMAGE_SCN_CNT_CODE, IMAGE_SCN_MEM_EXECUTE, IMAGE_SECTION_HEADER_SIZE, OPT_DATA_DIRECTORY,
    OPT_NUMBER_OF_RVA_AND_SIZES, OPT_SIZE_OF_IMAGE, RUNTIME_FUNCTION_SIZE,
};

/// Bit 0 of `RUNTIME_FUNCTION.UnwindData`: the field is the RVA (+1) of
/// another RUNTIME_FUNCTION rather than of an UNWIND_INFO.
pub const RUNTIME_FUNCTION_INDIRECT: u32 = 1;

/// `UNW_FLAG_EHANDLER`: an exception handler follows the codes.
pub const UNW_FLAG_EHANDLER: u8 = 1;
/// `UNW_FLAG_UHANDLER`: a termination handler follows the codes.
pub const UNW_FLAG_UHANDLER: u8 = 2;
/// `UNW_FLAG_CHAININFO`: a RUNTIME_FUNCTION of the parent follows the codes.
pub const UNW_FLAG_CHAININFO: u8 = 4;

/// `UWOP_PUSH_NONVOL`: push a nonvolatile register (1 slot).
pub const UWOP_PUSH_NONVOL: u8 = 0;
/// `UWOP_ALLOC_LARGE`: allocate; OpInfo 0: size/8 in 1 slot, 1: size in 2.
pub const UWOP_ALLOC_LARGE: u8 = 1;
/// `UWOP_ALLOC_SMALL`: allocate (OpInfo + 1) * 8 bytes.
pub const UWOP_ALLOC_SMALL: u8 = 2;
/// `UWOP_SET_FPREG`: frame register = RSP + FrameOffset * 16.
pub const UWOP_SET_FPREG: u8 = 3;
/// `UWOP_SAVE_NONVOL`: mov register to [frame base + slot * 8].
pub const UWOP_SAVE_NONVOL: u8 = 4;
/// `UWOP_SAVE_NONVOL_FAR`: mov register to [frame base + 32-bit offset].
pub const UWOP_SAVE_NONVOL_FAR: u8 = 5;
/// `UWOP_EPILOG` (version 2 only): epilog location descriptors.
pub const UWOP_EPILOG: u8 = 6;
/// `UWOP_SPARE_CODE` (version 2; `UWOP_SAVE_XMM_FAR` in old version 1): 3 slots.
pub const UWOP_SPARE_CODE: u8 = 7;
/// `UWOP_SAVE_XMM128`: movaps xmm to [frame base + slot * 16].
pub const UWOP_SAVE_XMM128: u8 = 8;
/// `UWOP_SAVE_XMM128_FAR`: movaps xmm to [frame base + 32-bit offset].
pub const UWOP_SAVE_XMM128_FAR: u8 = 9;
/// `UWOP_PUSH_MACHFRAME`: the hardware pushed SS, RSP, RFLAGS, CS, RIP
/// (OpInfo 1: and an error code).
pub const UWOP_PUSH_MACHFRAME: u8 = 10;

/// Size of the UNWIND_INFO header (version/flags, prolog size, code count,
/// frame register/offset).
pub const UNWIND_INFO_HEADER_SIZE: u64 = 4;
