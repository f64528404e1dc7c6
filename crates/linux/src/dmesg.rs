//! The printk ring buffer.

use crate::error::Result;
use crate::model::{DmesgRecord, Partial};
use crate::LinuxKernel;

/// The log (not written yet).
pub fn dmesg(_k: &LinuxKernel<'_>) -> Result<Partial<DmesgRecord>> {
    Ok(Partial::default())
}
