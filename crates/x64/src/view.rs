//! What `db`, `dq` and `dt` show, whichever kernel is in the dump: bytes of
//! virtual memory with their holes, and a structure's fields as read. The
//! kernel models fill these (the type names are each kernel's own
//! spelling); the report renders them; so both kernels share one shape and
//! one renderer.

use crate::{VirtAddr, VirtualMemory};
use serde::{Deserialize, Serialize};

/// A virtual address serialised as a `0x` hex string (JSON numbers lose
/// precision above 2^53). Every kernel model's documents use it.
pub mod hex {
    use crate::VirtAddr;
    use serde::{de, Deserialize, Deserializer, Serializer};

    /// Serialise.
    pub fn serialize<S: Serializer>(v: &VirtAddr, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#x}", v.0))
    }

    /// Parse `0x...` hex (or a plain number).
    pub fn parse(s: &str) -> Option<u64> {
        let t = s.trim();
        match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => t.parse().ok(),
        }
    }

    /// Deserialise `0x...` hex (or a plain number).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VirtAddr, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s)
            .map(VirtAddr)
            .ok_or_else(|| de::Error::custom(format!("not a hex address: {s}")))
    }
}

/// An optional virtual address as a `0x` hex string or null.
pub mod hex_opt {
    use crate::VirtAddr;
    use serde::{de, Deserialize, Deserializer, Serializer};

    /// Serialise.
    pub fn serialize<S: Serializer>(v: &Option<VirtAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&format!("{:#x}", v.0)),
            None => s.serialize_none(),
        }
    }

    /// Deserialise.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<VirtAddr>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::hex::parse(&s)
                .map(|v| Some(VirtAddr(v)))
                .ok_or_else(|| de::Error::custom(format!("not a hex address: {s}"))),
        }
    }
}

/// The most `db`/`dq` reads at once: 1 MiB (the length comes from a user
/// and each byte becomes a JSON value).
pub const MAX_MEMORY_DUMP: u64 = 1 << 20;

/// `db`/`dq`: bytes at a virtual address, unreadable ones as null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryDump {
    /// First address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// Bytes, `None` where the page could not be read.
    pub bytes: Vec<Option<u8>>,
}

/// Read up to `len` bytes (at most [`MAX_MEMORY_DUMP`]) page by page; a
/// page that cannot be read is a run of holes, not an error, so the
/// readable rest still shows.
pub fn read_memory(mem: &dyn VirtualMemory, va: VirtAddr, len: u64) -> MemoryDump {
    let len = len.min(MAX_MEMORY_DUMP) as usize;
    let mut bytes = Vec::with_capacity(len);
    let mut a = va.0;
    while bytes.len() < len {
        let n = ((0x1000 - (a & 0xfff)) as usize).min(len - bytes.len());
        let mut b = vec![0u8; n];
        if mem.read(VirtAddr(a), &mut b).is_ok() {
            bytes.extend(b.into_iter().map(Some));
        } else {
            bytes.resize(bytes.len() + n, None);
        }
        a = a.wrapping_add(n as u64);
    }
    MemoryDump { address: va, bytes }
}

/// One field as `dt` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DtField {
    /// Offset in the type.
    pub offset: u64,
    /// Field name.
    pub name: String,
    /// Type as the kernel's debugger names it (`Ptr64 _KTHREAD` on
    /// Windows, `struct list_head` on Linux).
    pub type_name: String,
    /// Bit position and length for bitfields.
    pub bits: Option<(u32, u32)>,
    /// The value of a scalar field.
    pub value: Option<u64>,
    /// Extra text: a string's content, a list entry's links.
    pub text: Option<String>,
    /// Why the value could not be read.
    pub error: Option<String>,
}

/// `dt TYPE ADDR`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DtOutput {
    /// Type name.
    pub type_name: String,
    /// Address.
    #[serde(with = "hex")]
    pub address: VirtAddr,
    /// Type size.
    pub size: u64,
    /// Fields in offset order.
    pub fields: Vec<DtField>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SparseMemory;

    #[test]
    fn holes_are_pages_that_cannot_be_read() {
        let mut m = SparseMemory::new();
        m.write(0xffff_8000_0000_0ff8, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let d = read_memory(&m, VirtAddr(0xffff_8000_0000_0ffc), 8);
        assert_eq!(
            d.bytes,
            [Some(5), Some(6), Some(7), Some(8), None, None, None, None]
        );
        let json = serde_json::to_string(&d).unwrap();
        assert!(
            json.starts_with(r#"{"address":"0xffff800000000ffc""#),
            "{json}"
        );
    }

    #[test]
    fn a_huge_length_is_capped() {
        let m = SparseMemory::new();
        assert_eq!(
            read_memory(&m, VirtAddr(0), u64::MAX).bytes.len() as u64,
            MAX_MEMORY_DUMP
        );
    }
}
