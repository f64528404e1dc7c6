//! I/O: IRPs (`!irp`) and file objects (`!fileobj`).
//!
//! Fields read: `_IRP.{Type, StackCount, CurrentLocation,
//! Tail.Overlay.CurrentStackLocation, Tail.Overlay.Thread,
//! Tail.Overlay.OriginalFileObject}`, `_IO_STACK_LOCATION.{MajorFunction,
//! MinorFunction, DeviceObject, FileObject, CompletionRoutine, Context}`,
//! `_DEVICE_OBJECT.DriverObject`, `_DRIVER_OBJECT.DriverName`,
//! `_FILE_OBJECT.{DeviceObject, FileName, RelatedFileObject, Flags}`.

use crate::error::{Error, Result, Warning};
use crate::kernel::Kernel;
use crate::model::*;
use hangscope_x64::VirtAddr;

/// Deepest `RelatedFileObject` chain followed.
const MAX_RELATED_DEPTH: usize = 16;
/// Most stack locations an IRP can have (StackCount is a CHAR).
const MAX_STACK_COUNT: u64 = 64;

/// `IRP_MJ_*` names by major function code (wdm.h).
pub const IRP_MJ_NAMES: &[&str] = &[
    "IRP_MJ_CREATE",
    "IRP_MJ_CREATE_NAMED_PIPE",
    "IRP_MJ_CLOSE",
    "IRP_MJ_READ",
    "IRP_MJ_WRITE",
    "IRP_MJ_QUERY_INFORMATION",
    "IRP_MJ_SET_INFORMATION",
    "IRP_MJ_QUERY_EA",
    "IRP_MJ_SET_EA",
    "IRP_MJ_FLUSH_BUFFERS",
    "IRP_MJ_QUERY_VOLUME_INFORMATION",
    "IRP_MJ_SET_VOLUME_INFORMATION",
    "IRP_MJ_DIRECTORY_CONTROL",
    "IRP_MJ_FILE_SYSTEM_CONTROL",
    "IRP_MJ_DEVICE_CONTROL",
    "IRP_MJ_INTERNAL_DEVICE_CONTROL",
    "IRP_MJ_SHUTDOWN",
    "IRP_MJ_LOCK_CONTROL",
    "IRP_MJ_CLEANUP",
    "IRP_MJ_CREATE_MAILSLOT",
    "IRP_MJ_QUERY_SECURITY",
    "IRP_MJ_SET_SECURITY",
    "IRP_MJ_POWER",
    "IRP_MJ_SYSTEM_CONTROL",
    "IRP_MJ_DEVICE_CHANGE",
    "IRP_MJ_QUERY_QUOTA",
    "IRP_MJ_SET_QUOTA",
    "IRP_MJ_PNP",
];

/// The name of a major function code.
pub fn irp_mj_name(code: u8) -> String {
    IRP_MJ_NAMES
        .get(code as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("IRP_MJ_{code:#x}"))
}

/// Join a relative file name to its parent's path.
pub(crate) fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        return name.to_string();
    }
    if name.is_empty() {
        return parent.to_string();
    }
    format!(
        "{}\\{}",
        parent.trim_end_matches('\\'),
        name.trim_start_matches('\\')
    )
}

impl<'d> Kernel<'d> {
    /// `!irp ADDR`: the packet and every stack location, the current one
    /// marked.
    pub fn irp(&self, addr: VirtAddr) -> Result<IrpInfo> {
        let r = self.reader();
        let irp = self.object("_IRP", addr)?;
        let mut warnings = Vec::new();
        let stack_count = irp.u64("StackCount")? & 0xff;
        let current = irp.u64("CurrentLocation")? & 0xff;
        if stack_count > MAX_STACK_COUNT {
            return Err(Error::bad_data(
                addr,
                format!("IRP StackCount {stack_count} is impossible"),
            ));
        }
        let loc_size = r.ty("_IO_STACK_LOCATION")?.size;
        let first = addr.0.wrapping_add(irp.ty.size);
        let csl = irp.ptr("Tail.Overlay.CurrentStackLocation").ok();
        if let Some(c) = csl {
            let expect = first.wrapping_add(current.wrapping_sub(1).wrapping_mul(loc_size));
            if (1..=stack_count).contains(&current) && c.0 != expect {
                warnings.push(Warning {
                    context: format!("IRP {addr}"),
                    kind: WarningKind::BadData,
                    message: format!(
                        "CurrentStackLocation {c:#x} disagrees with CurrentLocation {current}"
                    ),
                    address: Some(addr),
                    leaves_incomplete: None,
                });
            }
        }
        let mut stack = Vec::new();
        for i in 0..stack_count {
            let la = first.wrapping_add(i * loc_size);
            match self.stack_location(la, i as u32 + 1, current == i + 1) {
                Ok(s) => stack.push(s),
                Err(e) => warnings.push(Warning::from_error(
                    format!("IRP {addr} stack location {}", i + 1),
                    &e,
                )),
            }
        }
        let file_path = stack
            .iter()
            .find(|s| s.current)
            .filter(|s| s.file_object.0 != 0)
            .and_then(|s| self.file_path(s.file_object).ok());
        Ok(IrpInfo {
            address: addr,
            type_raw: irp.u64("Type")? as u16,
            stack_count: stack_count as u32,
            current_location: current as u32,
            current_stack_location: csl,
            thread: irp.ptr("Tail.Overlay.Thread").ok(),
            original_file_object: irp.ptr("Tail.Overlay.OriginalFileObject").ok(),
            user_event: irp.ptr("UserEvent").ok().filter(|e| e.0 != 0),
            stack,
            file_path,
            warnings,
        })
    }

    fn stack_location(&self, la: u64, index: u32, current: bool) -> Result<IrpStackLocation> {
        let s = self.object("_IO_STACK_LOCATION", VirtAddr(la))?;
        let major = s.u64("MajorFunction")? as u8;
        let device = s.ptr("DeviceObject")?;
        let (driver, driver_name, device_name) = if device.0 != 0 {
            let drv = self
                .object("_DEVICE_OBJECT", device)
                .and_then(|d| d.ptr("DriverObject"))
                .ok();
            let dn = drv.and_then(|d| self.driver_name(d).ok());
            (drv, dn, self.device_name(device).ok().flatten())
        } else {
            (None, None, None)
        };
        Ok(IrpStackLocation {
            index,
            current,
            address: VirtAddr(la),
            major,
            major_name: irp_mj_name(major),
            minor: s.u64("MinorFunction")? as u8,
            device,
            device_name,
            driver,
            driver_name,
            file_object: s.ptr("FileObject")?,
            completion_routine: s.ptr("CompletionRoutine").unwrap_or_default(),
            context: s.ptr("Context").map(|p| p.0).unwrap_or(0),
        })
    }

    /// `_DRIVER_OBJECT.DriverName` (`\FileSystem\Ntfs`).
    pub fn driver_name(&self, driver: VirtAddr) -> Result<String> {
        let driver = driver.0;
        self.object("_DRIVER_OBJECT", VirtAddr(driver))?
            .unicode_string("DriverName")
    }

    /// A file object's full path without the device, following
    /// `RelatedFileObject` while the name is relative.
    pub fn file_path(&self, addr: VirtAddr) -> Result<String> {
        let addr = addr.0;
        let mut names = Vec::new();
        let mut cur = addr;
        let mut seen = std::collections::HashSet::new();
        loop {
            if !seen.insert(cur) || names.len() >= MAX_RELATED_DEPTH {
                return Err(Error::bad_data(
                    VirtAddr(addr),
                    "RelatedFileObject chain loops or is too deep",
                ));
            }
            let fo = self.object("_FILE_OBJECT", VirtAddr(cur))?;
            let name = fo.unicode_string("FileName")?;
            let related = fo.ptr("RelatedFileObject")?.0;
            let absolute = name.starts_with('\\');
            names.push(name);
            if absolute || related == 0 {
                break;
            }
            cur = related;
        }
        let mut path = String::new();
        for n in names.iter().rev() {
            path = join_path(&path, n);
        }
        Ok(path)
    }

    /// `!fileobj ADDR`: name, full path, device, flags and the processes
    /// holding handles to it.
    pub fn file_object(&self, addr: VirtAddr) -> Result<FileObjectInfo> {
        let fo = self.object("_FILE_OBJECT", addr)?;
        let mut warnings = Vec::new();
        let device = fo.ptr("DeviceObject")?;
        let device_name = if device.0 != 0 {
            match self.device_name(device) {
                Ok(n) => n,
                Err(e) => {
                    warnings.push(Warning::from_error(
                        format!("device of file object {addr}"),
                        &e,
                    ));
                    None
                }
            }
        } else {
            None
        };
        let name = fo.unicode_string("FileName")?;
        let path = match self.file_path(addr) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(Warning::from_error(
                    format!("path of file object {addr}"),
                    &e,
                ));
                name.clone()
            }
        };
        let mut holders: Vec<Holder> = Vec::new();
        for h in self.handles_to(addr) {
            match holders.iter_mut().find(|x| x.pid == h.pid) {
                Some(x) => x.handles.push(h.handle),
                None => holders.push(Holder {
                    pid: h.pid,
                    process_name: h.process_name.clone(),
                    handles: vec![h.handle],
                }),
            }
        }
        Ok(FileObjectInfo {
            address: addr,
            name,
            path,
            device,
            device_name,
            flags: fo.u32("Flags")?,
            related: fo.ptr("RelatedFileObject")?,
            holders,
            warnings,
        })
    }

    /// Every file object reachable through handles, through threads' IRPs,
    /// and found by the pool-tag scan, each once.
    pub fn files(&self) -> Partial<FileObjectInfo> {
        let mut out = Partial::default();
        let mut addrs: Vec<VirtAddr> = self
            .handles()
            .handles
            .iter()
            .filter(|h| h.type_name == "File")
            .map(|h| h.object)
            .collect();
        for t in &self.threads().items {
            for &i in &t.irps {
                match self.irp(i) {
                    Ok(irp) => {
                        addrs.extend(irp.stack.iter().map(|s| s.file_object).filter(|f| f.0 != 0))
                    }
                    Err(e) => out
                        .warnings
                        .push(Warning::from_error(format!("IRP {i}"), &e)),
                }
            }
        }
        let pool = self.pool_file_objects();
        out.warnings.extend(pool.warnings.iter().cloned());
        addrs.extend(pool.items.iter().copied().map(VirtAddr));
        let mut seen = std::collections::HashSet::new();
        addrs.retain(|a| seen.insert(*a));
        for a in addrs {
            match self.file_object(a) {
                Ok(f) => out.items.push(f),
                Err(e) => out
                    .warnings
                    .push(Warning::from_error(format!("file object {a}"), &e)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_join_with_one_backslash() {
        assert_eq!(
            join_path("\\Windows\\Temp", "sess_1"),
            "\\Windows\\Temp\\sess_1"
        );
        assert_eq!(
            join_path("\\Windows\\Temp\\", "\\sess_1"),
            "\\Windows\\Temp\\sess_1"
        );
        assert_eq!(join_path("", "\\x"), "\\x");
        assert_eq!(irp_mj_name(0), "IRP_MJ_CREATE");
        assert_eq!(irp_mj_name(0x1b), "IRP_MJ_PNP");
        assert_eq!(irp_mj_name(0x40), "IRP_MJ_0x40");
    }
}
