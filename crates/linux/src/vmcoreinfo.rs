//! VMCOREINFO: the `KEY=value` lines a Linux kernel publishes about itself
//! (its release, where KASLR put it, symbol addresses, structure offsets)
//! and that QEMU copies into an ELF note or the kdump header.
//!
//! The text comes from the dump and is parsed defensively: at most
//! [`MAX_TEXT`] bytes and [`MAX_LINES`] lines are read; a line that does not
//! parse becomes a note, never an error.

use std::collections::BTreeMap;

/// Longest VMCOREINFO text read (the kernel's buffer is one page; QEMU's
/// note is bounded by it too).
pub const MAX_TEXT: usize = 64 * 1024;
/// Most lines read.
pub const MAX_LINES: usize = 4096;
/// Most notes kept about bad lines.
const MAX_NOTES: usize = 32;

/// The parsed VMCOREINFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmcoreInfo {
    /// `OSRELEASE`: the kernel release (`uname -r`).
    pub osrelease: Option<String>,
    /// `BUILD-ID`: the kernel image's GNU build id, hex.
    pub build_id: Option<String>,
    /// `PAGESIZE`.
    pub page_size: Option<u64>,
    /// `KERNELOFFSET`: how far KASLR moved the kernel image from its
    /// link-time address (hex in the text).
    pub kernel_offset: Option<u64>,
    /// `CRASHTIME`: seconds since the epoch when the kernel crashed (only
    /// after a panic through kdump).
    pub crash_time: Option<i64>,
    /// `SYMBOL(name)`: run-time virtual addresses.
    pub symbols: BTreeMap<String, u64>,
    /// `OFFSET(type.field)`: byte offsets, keyed `type.field`.
    pub offsets: BTreeMap<String, u64>,
    /// `SIZE(type)`: sizes in bytes.
    pub sizes: BTreeMap<String, u64>,
    /// `LENGTH(name)`: array lengths.
    pub lengths: BTreeMap<String, u64>,
    /// `NUMBER(name)`: signed numbers (`phys_base` may be negative).
    pub numbers: BTreeMap<String, i64>,
    /// Lines that did not parse, one sentence each (at most a few).
    pub notes: Vec<String>,
}

impl VmcoreInfo {
    /// Parse VMCOREINFO text. Never fails: what cannot be read is noted.
    pub fn parse(text: &str) -> VmcoreInfo {
        let mut v = VmcoreInfo::default();
        let mut bad = 0usize;
        let text = match text.char_indices().nth(MAX_TEXT) {
            Some((cut, _)) => {
                v.notes.push(format!(
                    "VMCOREINFO longer than {MAX_TEXT} characters: the rest is ignored"
                ));
                &text[..cut]
            }
            None => text,
        };
        for (n, line) in text.split('\n').enumerate() {
            if n >= MAX_LINES {
                v.notes.push(format!(
                    "VMCOREINFO has more than {MAX_LINES} lines: the rest is ignored"
                ));
                break;
            }
            let line = line.trim_end_matches(['\r', '\0']);
            if line.is_empty() {
                continue;
            }
            if let Err(why) = v.parse_line(line) {
                bad += 1;
                if v.notes.len() < MAX_NOTES {
                    let shown: String = line.chars().take(80).collect();
                    v.notes
                        .push(format!("VMCOREINFO line {}: {why}: {shown:?}", n + 1));
                }
            }
        }
        if bad > MAX_NOTES {
            v.notes
                .push(format!("{bad} VMCOREINFO lines in all did not parse"));
        }
        v
    }

    fn parse_line(&mut self, line: &str) -> Result<(), &'static str> {
        let (key, value) = line.split_once('=').ok_or("no '='")?;
        let value = value.trim();
        if let Some(inner) = bracketed(key, "SYMBOL") {
            self.symbols.insert(inner.into(), hex(value)?);
        } else if let Some(inner) = bracketed(key, "OFFSET") {
            self.offsets.insert(inner.into(), dec_u(value)?);
        } else if let Some(inner) = bracketed(key, "SIZE") {
            self.sizes.insert(inner.into(), dec_u(value)?);
        } else if let Some(inner) = bracketed(key, "LENGTH") {
            self.lengths.insert(inner.into(), dec_u(value)?);
        } else if let Some(inner) = bracketed(key, "NUMBER") {
            self.numbers.insert(inner.into(), dec_i(value)?);
        } else {
            match key {
                "OSRELEASE" => self.osrelease = Some(printable(value)?),
                "BUILD-ID" => self.build_id = Some(printable(value)?),
                "PAGESIZE" => self.page_size = Some(dec_u(value)?),
                "KERNELOFFSET" => self.kernel_offset = Some(hex(value)?),
                "CRASHTIME" => self.crash_time = Some(dec_i(value)?),
                // Keys this model does not use (CONFIG_*, arch-specific
                // ones) are fine to skip.
                _ if !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => {}
                _ => return Err("not a KEY=value line"),
            }
        }
        Ok(())
    }

    /// `SYMBOL(name)`.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }

    /// `NUMBER(name)`.
    pub fn number(&self, name: &str) -> Option<i64> {
        self.numbers.get(name).copied()
    }

    /// `OFFSET(type.field)`.
    pub fn offset(&self, ty: &str, field: &str) -> Option<u64> {
        self.offsets.get(&format!("{ty}.{field}")).copied()
    }

    /// `NUMBER(phys_base)`: where the kernel image's first byte is in
    /// physical memory, relative to its link-time physical address (it is
    /// printed signed and may be negative).
    pub fn phys_base(&self) -> Option<i64> {
        self.number("phys_base")
    }

    /// Whether the kernel runs with 5-level page tables, when it says.
    pub fn pgtable_l5_enabled(&self) -> Option<bool> {
        self.number("pgtable_l5_enabled").map(|n| n != 0)
    }
}

/// `NAME(inner)` -> inner.
fn bracketed<'a>(key: &'a str, name: &str) -> Option<&'a str> {
    let inner = key
        .strip_prefix(name)?
        .strip_prefix('(')?
        .strip_suffix(')')?;
    (!inner.is_empty() && inner.len() <= 128).then_some(inner)
}

fn hex(v: &str) -> Result<u64, &'static str> {
    let v = v.strip_prefix("0x").unwrap_or(v);
    u64::from_str_radix(v, 16).map_err(|_| "not a hex number")
}

fn dec_u(v: &str) -> Result<u64, &'static str> {
    v.parse().map_err(|_| "not an unsigned decimal number")
}

fn dec_i(v: &str) -> Result<i64, &'static str> {
    v.parse().map_err(|_| "not a decimal number")
}

fn printable(v: &str) -> Result<String, &'static str> {
    if v.len() > 256 || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("not a short printable value");
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "OSRELEASE=6.1.0-56-amd64\n\
BUILD-ID=eb4fbcd037e7253717950bf2b93bd5566f47c56f\n\
PAGESIZE=4096\n\
SYMBOL(swapper_pg_dir)=ffffffffb4610000\n\
OFFSET(list_head.prev)=8\n\
SIZE(list_head)=16\n\
LENGTH(zone.free_area)=11\n\
NUMBER(phys_base)=-700448768\n\
NUMBER(pgtable_l5_enabled)=0\n\
KERNELOFFSET=31c00000\n\
CRASHTIME=1700000000\n";

    #[test]
    fn every_kind_of_line() {
        let v = VmcoreInfo::parse(SAMPLE);
        assert_eq!(v.osrelease.as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(
            v.build_id.as_deref(),
            Some("eb4fbcd037e7253717950bf2b93bd5566f47c56f")
        );
        assert_eq!(v.page_size, Some(4096));
        assert_eq!(v.symbol("swapper_pg_dir"), Some(0xffff_ffff_b461_0000));
        assert_eq!(v.offset("list_head", "prev"), Some(8));
        assert_eq!(v.sizes.get("list_head"), Some(&16));
        assert_eq!(v.lengths.get("zone.free_area"), Some(&11));
        assert_eq!(v.phys_base(), Some(-700_448_768));
        assert_eq!(v.pgtable_l5_enabled(), Some(false));
        assert_eq!(v.kernel_offset, Some(0x31c0_0000));
        assert_eq!(v.crash_time, Some(1_700_000_000));
        assert!(v.notes.is_empty(), "{:?}", v.notes);
    }

    #[test]
    fn junk_lines_become_notes() {
        let text = "OSRELEASE=6.1\nSYMBOL(x)=zz\ngarbage line\n\u{0}\u{1}\nNUMBER(y)=1e9\nSYMBOL()=1\nPAGESIZE=4096\r\n";
        let v = VmcoreInfo::parse(text);
        assert_eq!(v.osrelease.as_deref(), Some("6.1"));
        assert_eq!(v.page_size, Some(4096));
        assert!(v.symbols.is_empty());
        assert_eq!(v.notes.len(), 5, "{:?}", v.notes);
        assert!(v.notes[0].contains("line 2"), "{:?}", v.notes);
    }

    #[test]
    fn huge_input_is_bounded() {
        let text = "SYMBOL(a)=1\n".repeat(100_000);
        let v = VmcoreInfo::parse(&text);
        assert_eq!(v.symbols.len(), 1);
        assert!(v.notes.iter().any(|n| n.contains("ignored")));
        let many: String = (0..5000).map(|i| format!("junk{i}\n")).collect();
        let v = VmcoreInfo::parse(&many);
        assert!(v.notes.len() <= MAX_NOTES + 2);
    }
}
