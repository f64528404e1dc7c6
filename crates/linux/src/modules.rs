//! Loaded modules.

use crate::error::Result;
use crate::model::{ModuleInfo, Partial};
use crate::LinuxKernel;

/// Loaded modules (not written yet).
pub fn modules(_k: &LinuxKernel<'_>) -> Result<Partial<ModuleInfo>> {
    Ok(Partial::default())
}
