//! I/O and files: driver and device objects, FILE_OBJECTs (single and
//! file sets), IRPs with their stack locations.

use super::*;
use crate::scenario::{FileRef, IRP_MAJORS};

/// The FileName of member `n` of a file set.
pub fn set_member_name(pattern: &str, id: &str, n: u32) -> String {
    // A stable pseudo-random number per member, like PHP's session ids;
    // multiplying by an odd constant is a bijection, so names are unique.
    let mut h: u32 = 0x811C_9DC5;
    for c in id.bytes() {
        h = (h ^ c as u32).wrapping_mul(0x0100_0193);
    }
    let v = n.wrapping_mul(0x9E37_79B1) ^ h;
    if pattern.contains("{:08x}") {
        pattern.replacen("{:08x}", &format!("{v:08x}"), 1)
    } else if pattern.contains("{}") {
        pattern.replacen("{}", &n.to_string(), 1)
    } else {
        format!("{pattern}{n}")
    }
}

/// `\Windows\Temp\sess_1` -> `\Windows\Temp`.
pub fn parent_dir(path: &str) -> String {
    match path.rsplit_once('\\') {
        Some((d, _)) if !d.is_empty() => d.to_string(),
        _ => "\\".to_string(),
    }
}

impl Builder<'_> {
    pub(super) fn io_objects(&mut self) -> Result<(), Error> {
        self.driver_objects()?;
        self.device_objects()?;
        self.file_objects()?;
        self.irp_objects()
    }

    /// Driver objects, each with its DRIVER_EXTENSION and dispatch table.
    fn driver_objects(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let dro = "_DRIVER_OBJECT";
        let drv_size = self.size(dro)?;
        let ext_size = self.size("_DRIVER_EXTENSION")?;
        for d in &sc.drivers {
            let short = d.name.rsplit('\\').next().unwrap_or(&d.name).to_string();
            // DRIVER_EXTENSION follows the driver object in one allocation.
            let body = self.alloc_object("Driver", drv_size + ext_size, Some(&short))?;
            let module = self
                .modules
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(&d.module))
                .cloned()
                .unwrap_or_default();
            self.put(body, dro, "Type", 4)?;
            self.put(body, dro, "Size", drv_size)?;
            self.put(body, dro, "DriverStart", module.base)?;
            self.put(body, dro, "DriverSize", module.size)?;
            let ext = body + drv_size;
            self.put(body, dro, "DriverExtension", ext)?;
            self.put(ext, "_DRIVER_EXTENSION", "DriverObject", body)?;
            self.unicode_string(body + self.off(dro, "DriverName")?, &d.name, *b"ObNm")?;
            let init = self.code_address(&format!("{}!DriverEntry", short));
            self.put(body, dro, "DriverInit", init)?;
            for k in 0..IRP_MAJORS.len() as u64 {
                let o = self.elem(dro, "MajorFunction", k)?;
                let a = self.code_address(&format!("{}!Dispatch{}", short, IRP_MAJORS[k as usize]));
                self.sp.write(body + o, &a.to_le_bytes())?;
            }
            self.drivers.push(body);
        }
        Ok(())
    }

    /// Device objects, linked into their driver's device list.
    fn device_objects(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let dro = "_DRIVER_OBJECT";
        let dvo = "_DEVICE_OBJECT";
        let dev_size = self.size(dvo)?;
        let mut last_dev: HashMap<usize, u64> = HashMap::new();
        for d in &sc.devices {
            let di = self.ix.drivers[&d.driver];
            let body = self.alloc_object("Device", dev_size + 0x40, d.name.as_deref())?;
            self.put(body, dvo, "Type", 3)?;
            self.put(body, dvo, "Size", dev_size)?;
            self.put(body, dvo, "ReferenceCount", 1)?;
            self.put(body, dvo, "DriverObject", self.drivers[di])?;
            self.put(body, dvo, "DeviceExtension", body + dev_size)?;
            let fs = d.driver.starts_with("\\FileSystem\\");
            // FILE_DEVICE_DISK_FILE_SYSTEM or FILE_DEVICE_DISK.
            self.put(body, dvo, "DeviceType", if fs { 8 } else { 7 })?;
            self.put(body, dvo, "StackSize", 4)?;
            self.put(body, dvo, "AlignmentRequirement", 1)?;
            // Link into the driver's device list (newest first).
            match last_dev.get(&di) {
                Some(prev) => self.put(body, dvo, "NextDevice", *prev)?,
                None => self.put(body, dvo, "NextDevice", 0)?,
            }
            last_dev.insert(di, body);
            self.put(self.drivers[di], dro, "DeviceObject", body)?;
            self.devices.push(body);
        }
        Ok(())
    }

    /// FILE_OBJECTs of the scenario's files and file sets.
    fn file_objects(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let fo = "_FILE_OBJECT";
        let fsize = self.size(fo)?;
        let file_obj = |b: &mut Builder<'_>, dev: u64, name: &str| -> Result<u64, Error> {
            let f = b.alloc_object("File", fsize, None)?;
            b.put(f, fo, "Type", 5)?;
            b.put(f, fo, "Size", fsize)?;
            b.put(f, fo, "DeviceObject", dev)?;
            // FO_SYNCHRONOUS_IO | FO_CACHE_SUPPORTED | FO_HANDLE_CREATED.
            b.put(f, fo, "Flags", 0x4_0042)?;
            b.put_opt(f, fo, "ReadAccess", 1)?;
            b.put_opt(f, fo, "SharedRead", 1)?;
            b.unicode_string(f + b.off(fo, "FileName")?, name, *b"IoNm")?;
            let wl = f + b.off(fo, "IrpList")?;
            b.list_init(wl);
            let ev = f + b.off(fo, "Event")?;
            b.dispatcher_header(ev, "EventNotificationObject", 0, "_KEVENT")?;
            let lk = f + b.off(fo, "Lock")?;
            b.dispatcher_header(lk, "EventSynchronizationObject", 1, "_KEVENT")?;
            Ok(f)
        };
        for f in &sc.files {
            let dev = self.devices[self.ix.devices[&f.device]];
            let a = file_obj(self, dev, &f.name)?;
            self.files.push(a);
        }
        for (i, f) in sc.files.iter().enumerate() {
            if let Some(r) = &f.related {
                let ra = self.files[self.ix.files[r]];
                self.put(self.files[i], fo, "RelatedFileObject", ra)?;
            }
        }
        for s in &sc.file_sets {
            let dev = self.devices[self.ix.devices[&s.device]];
            let mut v = Vec::with_capacity(s.count as usize);
            for n in 0..s.count {
                let name = set_member_name(&s.pattern, s.id.as_str(), n);
                v.push(file_obj(self, dev, &name)?);
            }
            self.set_files.push(v);
        }
        Ok(())
    }

    /// IRPs with their stack locations, on their threads' IrpList.
    fn irp_objects(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let irp_t = "_IRP";
        let isl = "_IO_STACK_LOCATION";
        let irp_size = self.size(irp_t)?;
        let isl_size = self.size(isl)?;
        for irp in &sc.irps {
            let n = irp.stack.len() as u64;
            let total = irp_size + n * isl_size;
            let (_, a) = self.pool_alloc(total, *b"Irp ")?;
            self.put(a, irp_t, "Type", 6)?;
            self.put(a, irp_t, "Size", total)?;
            self.put(a, irp_t, "StackCount", n)?;
            // Location k (1-based) is used by the driver k-th from the
            // bottom: the scenario's stack[0] (top) is location n.
            let cur = n - irp.current as u64;
            self.put(a, irp_t, "CurrentLocation", cur)?;
            self.put(
                a,
                irp_t,
                "Tail.Overlay.CurrentStackLocation",
                a + irp_size + (cur - 1) * isl_size,
            )?;
            let ti = self.ix.threads[&irp.thread];
            let t = self.threads[ti].ethread;
            self.put(a, irp_t, "Tail.Overlay.Thread", t)?;
            self.put(a, irp_t, "Flags", 0x60884)?;
            self.put(a, irp_t, "RequestorMode", 1)?;
            let irpl = t + self.off("_ETHREAD", "IrpList")?;
            self.list_add(irpl, a + self.off(irp_t, "ThreadListEntry")?);
            let mut top_file = 0;
            for (k, s) in irp.stack.iter().enumerate() {
                let loc = n - k as u64;
                let at = a + irp_size + (loc - 1) * isl_size;
                let major = IRP_MAJORS.iter().position(|m| *m == s.major).unwrap_or(0) as u64;
                self.put(at, isl, "MajorFunction", major)?;
                self.put(at, isl, "MinorFunction", s.minor as u64)?;
                let dev = self.devices[self.ix.devices[&s.device]];
                self.put(at, isl, "DeviceObject", dev)?;
                if let Some(fid) = &s.file {
                    let fa = self.file_address(fid)?;
                    self.put(at, isl, "FileObject", fa)?;
                    if top_file == 0 {
                        top_file = fa;
                    }
                }
                if k > 0 {
                    // The upper driver set a completion routine.
                    let upper = &sc.devices[self.ix.devices[&irp.stack[k - 1].device]].driver;
                    let short = upper.rsplit('\\').next().unwrap_or(upper);
                    let cr = self.code_address(&format!("{short}!CompletionRoutine"));
                    self.put(at, isl, "CompletionRoutine", cr)?;
                    self.put(at, isl, "Control", 0xE0)?;
                }
            }
            self.put_opt(a, irp_t, "Tail.Overlay.OriginalFileObject", top_file)?;
            if let Some(e) = &irp.event {
                let ev = self.locks[self.ix.locks[e]].address;
                self.put(a, irp_t, "UserEvent", ev)?;
            }
            self.threads[ti].irps.push(a);
            self.irps.push(a);
        }
        Ok(())
    }

    pub(super) fn file_address(&self, id: &str) -> Result<u64, Error> {
        match self.ix.file(self.sc, id) {
            Some(FileRef::Single(i)) => Ok(self.files[i]),
            Some(FileRef::Member(s, n)) => Ok(self.set_files[s][n as usize]),
            None => Err(Error::ScenarioField {
                field: "files".into(),
                problem: format!("no file `{id}`"),
            }),
        }
    }
}
