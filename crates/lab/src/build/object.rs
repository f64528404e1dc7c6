//! The object manager: object types, `OBJECT_HEADER`s (encoded type
//! index, optional name and creator headers), dispatcher headers.

use super::*;

/// Pool tag of an object type, with the pre-Windows 8 "protected" high
/// bit on the last byte where the build used it.
pub(super) fn object_tag(type_name: &str, protected: bool) -> [u8; 4] {
    let base: &[u8; 4] = match type_name {
        "Process" => b"Proc",
        "Thread" => b"Thre",
        "File" => b"File",
        "Driver" => b"Driv",
        "Device" => b"Devi",
        "Mutant" => b"Muta",
        "Event" => b"Even",
        "Semaphore" => b"Sema",
        "Type" => b"ObjT",
        "Directory" => b"Dire",
        "SymbolicLink" => b"Symb",
        "Key" => b"Key ",
        "Section" => b"Sect",
        "Token" => b"Toke",
        "IoCompletion" => b"IoCo",
        _ => b"Obj ",
    };
    let mut t = *base;
    if protected {
        t[3] |= 0x80;
    }
    t
}

/// Object type names by index, as Windows 7 numbers them.
pub(super) const TYPES_WIN7: &[&str] = &[
    "Type",
    "Directory",
    "SymbolicLink",
    "Token",
    "Job",
    "Process",
    "Thread",
    "UserApcReserve",
    "IoCompletionReserve",
    "DebugObject",
    "Event",
    "EventPair",
    "Mutant",
    "Callback",
    "Semaphore",
    "Timer",
    "Profile",
    "KeyedEvent",
    "WindowStation",
    "Desktop",
    "TpWorkerFactory",
    "Adapter",
    "Controller",
    "Device",
    "Driver",
    "IoCompletion",
    "File",
    "TmTm",
    "TmTx",
    "TmRm",
    "TmEn",
    "Section",
    "Session",
    "Key",
    "ALPC Port",
    "PowerRequest",
    "WmiGuid",
    "EtwRegistration",
    "EtwConsumer",
    "FilterConnectionPort",
    "FilterCommunicationPort",
    "PcwObject",
];

/// Object type names by index, as Windows 10 numbers them.
pub(super) const TYPES_WIN10: &[&str] = &[
    "Type",
    "Directory",
    "SymbolicLink",
    "Token",
    "Job",
    "Process",
    "Thread",
    "Partition",
    "UserApcReserve",
    "IoCompletionReserve",
    "ActivityReference",
    "PsSiloContextPaged",
    "PsSiloContextNonPaged",
    "DebugObject",
    "Event",
    "Mutant",
    "Callback",
    "Semaphore",
    "Timer",
    "IRTimer",
    "Profile",
    "KeyedEvent",
    "WindowStation",
    "Desktop",
    "Composition",
    "RawInputManager",
    "CoreMessaging",
    "TpWorkerFactory",
    "Adapter",
    "Controller",
    "Device",
    "Driver",
    "IoCompletion",
    "WaitCompletionPacket",
    "File",
    "TmTm",
    "TmTx",
    "TmRm",
    "TmEn",
    "Section",
    "Session",
    "Key",
    "RegistryTransaction",
    "ALPC Port",
    "EnergyTracker",
    "PowerRequest",
    "WmiGuid",
    "EtwRegistration",
    "EtwSessionDemuxEntry",
    "EtwConsumer",
    "DmaAdapter",
    "PcwObject",
    "FilterConnectionPort",
    "FilterCommunicationPort",
];

impl Builder<'_> {
    /// A UNICODE_STRING at `at` whose buffer is a new pool block.
    pub(super) fn unicode_string(&mut self, at: u64, s: &str, tag: [u8; 4]) -> Result<(), Error> {
        let bytes = utf16(s);
        let len = bytes.len() as u64;
        let buf = if len == 0 {
            0
        } else {
            let (_, data) = self.pool_alloc(len + 2, tag)?;
            self.sp.write(data, &bytes)?;
            data
        };
        self.put(at, "_UNICODE_STRING", "Length", len)?;
        self.put(
            at,
            "_UNICODE_STRING",
            "MaximumLength",
            if len == 0 { 0 } else { len + 2 },
        )?;
        self.put(at, "_UNICODE_STRING", "Buffer", buf)
    }

    pub(super) fn optional_headers(&self) -> Vec<(&'static str, u64)> {
        // In InfoMask bit order; each sits below the previous one.
        [
            "_OBJECT_HEADER_CREATOR_INFO",
            "_OBJECT_HEADER_NAME_INFO",
            "_OBJECT_HEADER_HANDLE_INFO",
            "_OBJECT_HEADER_QUOTA_INFO",
            "_OBJECT_HEADER_PROCESS_INFO",
            "_OBJECT_HEADER_AUDIT_INFO",
            "_OBJECT_HEADER_EXTENDED_INFO",
            "_OBJECT_HEADER_PADDING_INFO",
        ]
        .iter()
        .filter_map(|t| self.l.type_size(t).map(|s| (*t, s)))
        .collect()
    }

    /// An executive object of type `type_name` with a body of `body_len`
    /// bytes; returns the body address. `name` adds OBJECT_HEADER_NAME_INFO.
    pub(super) fn alloc_object(
        &mut self,
        type_name: &'static str,
        body_len: u64,
        name: Option<&str>,
    ) -> Result<u64, Error> {
        let body_off = self.off("_OBJECT_HEADER", "Body")?;
        let name_size = self.size("_OBJECT_HEADER_NAME_INFO")?;
        let creator_size = self.size("_OBJECT_HEADER_CREATOR_INFO")?;
        // Named objects also carry CREATOR_INFO, as most real ones do.
        let (mask, opt) = if name.is_some() {
            (0x3u64, name_size + creator_size)
        } else {
            (0, 0)
        };
        let protected = self.win.major == 6 && self.win.minor <= 1;
        let tag = object_tag(type_name, protected);
        // The body ends exactly at the end of the block, so Windows 7's
        // bottom-up carving finds it.
        let (_, data) = self.pool_alloc(opt + body_off + round_up(body_len, 16), tag)?;
        let header = data + opt;
        let body = header + body_off;
        let idx = *self
            .type_index
            .get(type_name)
            .ok_or_else(|| missing(format!("object type {type_name}")))?;
        let stored = if self.cookie != 0 {
            idx ^ self.cookie ^ ((header >> 8) & 0xFF) as u8
        } else {
            idx
        };
        self.put(header, "_OBJECT_HEADER", "PointerCount", 1)?;
        self.put(header, "_OBJECT_HEADER", "TypeIndex", stored as u64)?;
        self.put(header, "_OBJECT_HEADER", "InfoMask", mask)?;
        if let Some(n) = name {
            let ni = header - creator_size - name_size;
            self.unicode_string(
                ni + self.off("_OBJECT_HEADER_NAME_INFO", "Name")?,
                n,
                *b"ObNm",
            )?;
            self.put_opt(ni, "_OBJECT_HEADER_NAME_INFO", "ReferenceCount", 1)?;
            let ci = header - creator_size;
            let tl = ci + self.off("_OBJECT_HEADER_CREATOR_INFO", "TypeList")?;
            // Self-linked: not on a type list.
            self.list_init(tl);
        }
        self.objects.push(ObjRec { header, handles: 0 });
        Ok(body)
    }

    pub(super) fn object_header(&self, body: u64) -> Result<u64, Error> {
        Ok(body - self.off("_OBJECT_HEADER", "Body")?)
    }

    pub(super) fn add_handle_ref(&mut self, header: u64) {
        if let Some(o) = self.objects.iter_mut().find(|o| o.header == header) {
            o.handles += 1;
        }
    }

    pub(super) fn kobj(&self, name: &str) -> Result<u64, Error> {
        self.l
            .enum_value("_KOBJECTS", name)
            .map(|v| v as u64)
            .ok_or_else(|| missing(format!("_KOBJECTS.{name}")))
    }

    pub(super) fn dispatcher_header(
        &mut self,
        at: u64,
        kind: &str,
        signal: u64,
        size_ty: &str,
    ) -> Result<(), Error> {
        let t = self.kobj(kind)?;
        self.put(at, "_DISPATCHER_HEADER", "Type", t)?;
        let sz = self.size(size_ty)? / 4;
        self.put_opt(at, "_DISPATCHER_HEADER", "Size", sz)?;
        self.put(at, "_DISPATCHER_HEADER", "SignalState", signal)?;
        let wl = at + self.off("_DISPATCHER_HEADER", "WaitListHead")?;
        self.list_init(wl);
        Ok(())
    }

    pub(super) fn object_types(&mut self) -> Result<(), Error> {
        let names: &[&'static str] = if self.win.major >= 10 {
            TYPES_WIN10
        } else {
            TYPES_WIN7
        };
        for (i, n) in names.iter().enumerate() {
            self.type_index.insert(n, (i + 2) as u8);
        }
        let ot = "_OBJECT_TYPE";
        let size = self.size(ot)?;
        let protected = self.win.major == 6 && self.win.minor <= 1;
        for (i, n) in names.iter().enumerate() {
            let body = self.alloc_object("Type", size, Some(n))?;
            self.unicode_string(body + self.off(ot, "Name")?, n, *b"ObNm")?;
            self.put(body, ot, "Index", (i + 2) as u64)?;
            let key = u32::from_le_bytes(object_tag(n, false)) as u64;
            self.put_opt(body, ot, "Key", key)?;
            let tl = body + self.off(ot, "TypeList")?;
            self.list_init(tl);
            let _ = protected;
            self.type_objects.push(body);
        }
        Ok(())
    }

    pub(super) fn object_counts(&mut self) -> Result<(), Error> {
        let oh = "_OBJECT_HEADER";
        for o in self.objects.clone() {
            self.put(o.header, oh, "HandleCount", o.handles as u64)?;
            self.put(o.header, oh, "PointerCount", 1 + o.handles as u64 * 2)?;
        }
        Ok(())
    }
}
