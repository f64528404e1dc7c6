//! Finding the kernel without VMCOREINFO.

use crate::discover::Found;
use crate::error::{Error, Result};
use crate::kallsyms::KallsymsTables;
use hangscope_dump::Dump;
use hangscope_x64::AddressSpace;

/// Find the kernel by scanning.
pub fn find(_dump: &Dump) -> Result<Found> {
    Err(Error::not_found(
        "the dump has no VMCOREINFO and scanning is not written yet",
    ))
}

/// Find the kallsyms tables in the kernel image by their shape.
pub fn find_kallsyms(_space: &AddressSpace<'_>) -> Result<KallsymsTables> {
    Err(Error::not_found("kallsyms scan is not written yet"))
}
