//! Object manager headers: `_OBJECT_HEADER` before every object body, its
//! optional name header, and the type index (cookie-encoded on Win10+).
//!
//! Fields read: `_OBJECT_HEADER.{Body, TypeIndex, InfoMask}`,
//! `_OBJECT_HEADER_NAME_INFO.{Name, Directory}`, `_OBJECT_TYPE.Name`;
//! symbols `ObTypeIndexTable`, `ObHeaderCookie` (Win10+ only),
//! `ObpInfoMaskToOffset`.

use crate::error::{Error, Result};
use crate::kernel::{Kernel, KERNEL_SPACE_START};
use hangscope_x64::VirtAddr;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// `InfoMask` bit: a creator-info header precedes the object header.
const OB_INFOMASK_CREATOR: u64 = 0x1;
/// `InfoMask` bit: a name-info header precedes the object header.
const OB_INFOMASK_NAME: u64 = 0x2;
/// Deepest object directory chain followed.
const MAX_DIRECTORY_DEPTH: usize = 16;

/// Names read once per kernel.
#[derive(Debug, Default)]
struct Cache {
    /// Object type names by type index.
    type_names: OnceLock<HashMap<u8, String>>,
    /// Device object -> its name (see `device_name`).
    device_names: Mutex<HashMap<u64, Option<String>>>,
}

impl<'d> Kernel<'d> {
    /// The `_OBJECT_HEADER` address of an object body.
    pub fn object_header(&self, body: VirtAddr) -> Result<VirtAddr> {
        let body = body.0;
        let off = self.reader().offset_of("_OBJECT_HEADER", "Body")?;
        Ok(VirtAddr(body.wrapping_sub(off)))
    }

    /// Object type names by type index (`ObTypeIndexTable` entries'
    /// `_OBJECT_TYPE.Name`).
    pub fn object_type_names(&self) -> &HashMap<u8, String> {
        self.caches.get::<Cache>().type_names.get_or_init(|| {
            let mut m = HashMap::new();
            let r = self.reader();
            let Ok(table) = self.symbol("ObTypeIndexTable") else {
                return m;
            };
            for i in 0..256u64 {
                let Ok(p) = r.read_ptr(VirtAddr(table.0.wrapping_add(8 * i))) else {
                    continue;
                };
                if p.0 < KERNEL_SPACE_START {
                    continue;
                }
                if let Ok(n) = r
                    .object("_OBJECT_TYPE", p)
                    .and_then(|t| t.unicode_string("Name"))
                {
                    m.insert(i as u8, n);
                }
            }
            m
        })
    }

    /// The decoded type index of an object header: on builds with
    /// `ObHeaderCookie`, `TypeIndex ^ cookie ^ (header >> 8 & 0xff)`.
    pub fn type_index(&self, header: VirtAddr) -> Result<u8> {
        let h = self.object("_OBJECT_HEADER", header)?;
        let raw = h.u64("TypeIndex")? as u8;
        match self.symbol("ObHeaderCookie") {
            Ok(c) => {
                let cookie = self.reader().read_uint(c, 1)? as u8;
                Ok(raw ^ cookie ^ ((header.0 >> 8) & 0xff) as u8)
            }
            Err(_) => Ok(raw),
        }
    }

    /// The type name of an object body (`File`, `Process`, ...).
    pub fn object_type_name(&self, body: VirtAddr) -> Result<String> {
        let h = self.object_header(body)?;
        let idx = self.type_index(h)?;
        self.object_type_names()
            .get(&idx)
            .cloned()
            .ok_or_else(|| Error::bad_data(h, format!("unknown object type index {idx}")))
    }

    /// Address of the `_OBJECT_HEADER_NAME_INFO` before a header, if any.
    fn name_info(&self, header: VirtAddr) -> Result<Option<VirtAddr>> {
        let h = self.object("_OBJECT_HEADER", header)?;
        let mask = h.u64("InfoMask")?;
        if mask & OB_INFOMASK_NAME == 0 {
            return Ok(None);
        }
        let r = self.reader();
        // The table the kernel itself uses, else the documented stacking
        // order: name info, then creator info, then the header.
        let off = match self.symbol("ObpInfoMaskToOffset") {
            Ok(t) => r.read_uint(VirtAddr(t.0 + (mask & 3)), 1)?,
            Err(_) => {
                let name = r.ty("_OBJECT_HEADER_NAME_INFO")?.size;
                let creator = if mask & OB_INFOMASK_CREATOR != 0 {
                    r.ty("_OBJECT_HEADER_CREATOR_INFO")?.size
                } else {
                    0
                };
                name + creator
            }
        };
        if off == 0 {
            return Ok(None);
        }
        Ok(Some(VirtAddr(header.0.wrapping_sub(off))))
    }

    /// An object's own name (`HarddiskVolume2`), if it has one.
    pub fn object_name(&self, body: VirtAddr) -> Result<Option<String>> {
        let h = self.object_header(body)?;
        match self.name_info(h)? {
            Some(ni) => Ok(Some(
                self.object("_OBJECT_HEADER_NAME_INFO", ni)?
                    .unicode_string("Name")?,
            )),
            None => Ok(None),
        }
    }

    /// An object's full name through its directories
    /// (`\Device\HarddiskVolume2`), if it has a name.
    pub fn object_path(&self, body: VirtAddr) -> Result<Option<String>> {
        let body = body.0;
        let mut parts = Vec::new();
        let mut cur = body;
        let mut seen = std::collections::HashSet::new();
        let mut rooted = false;
        while seen.insert(cur) && parts.len() < MAX_DIRECTORY_DEPTH {
            let h = self.object_header(VirtAddr(cur))?;
            let Some(ni) = self.name_info(h)? else { break };
            let ni = self.object("_OBJECT_HEADER_NAME_INFO", ni)?;
            let name = ni.unicode_string("Name")?;
            let dir = ni.ptr("Directory")?;
            if name.is_empty() || name == "\\" {
                rooted = true;
                break;
            }
            parts.push(name);
            if dir.0 == 0 {
                break;
            }
            cur = dir.0;
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let _ = rooted;
        parts.reverse();
        Ok(Some(format!("\\{}", parts.join("\\"))))
    }

    /// A device object's name as WinDbg prints it: its full object path, or
    /// `\Device\` + its name when it has no directory.
    pub fn device_name(&self, device: VirtAddr) -> Result<Option<String>> {
        let device = device.0;
        // A machine has a handful of devices and thousands of file objects
        // on them: name each device once.
        if let Ok(names) = self.caches.get::<Cache>().device_names.lock() {
            if let Some(n) = names.get(&device) {
                return Ok(n.clone());
            }
        }
        let p = self.object_path(VirtAddr(device))?;
        let name = p.map(|p| {
            if p[1..].contains('\\') {
                p
            } else {
                format!("\\Device{p}")
            }
        });
        if let Ok(mut names) = self.caches.get::<Cache>().device_names.lock() {
            names.insert(device, name.clone());
        }
        Ok(name)
    }
}
