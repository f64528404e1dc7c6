//! Raw physical memory: byte at file offset N is physical address N.
//!
//! Holes between RAM ranges (and below the first one) are left as sparse
//! file holes: they read as zeros, as `dd` of a VM's memory file does, and
//! cost no disk.

use super::{ErrorKind, PageSink};
use crate::image::LabImage;

/// Writes the image as a raw physical image. Returns the pages written.
pub(crate) fn write(image: &LabImage, sink: &mut PageSink) -> Result<u64, ErrorKind> {
    sink.set_total(image.ram_size());
    let mut pages = 0;
    let mut end = 0;
    for &(start, len) in &image.ram {
        if start != end {
            sink.seek_to(start)?;
        }
        pages += sink.write_range(image, start, len)?;
        end = start + len;
    }
    // A trailing seek alone does not extend a file; set the length so the
    // file always ends where the last RAM range ends.
    sink.set_len(end)?;
    Ok(pages)
}
