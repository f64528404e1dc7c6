//! Where each guest-physical byte lives in QEMU's process, found exactly
//! from QEMU's own tables, never guessed from the largest mapping.
//!
//! `info mtree -f` gives the flat view of the system address space: each
//! guest-physical range and the RAM (or ROM) region behind it. `gpa2hva`
//! gives the host virtual address of a range's first byte; a RAM block is
//! one contiguous host mapping, so the rest of the range follows. QEMU
//! 7.2's `info ramblock` has no host-address column (later versions add
//! one), which is why this asks per range instead. `/proc/PID/maps` then
//! says whether that host memory is a shared file mapping (a
//! `memory-backend-file` or memfd with `share=on`), which hangscope maps
//! read-only itself, or private memory, read through `/proc/PID/mem`.

use crate::Error;

/// One guest-physical range backed by RAM or ROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamRange {
    /// First guest-physical byte.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
    /// The memory region's name (`pc.ram`, `ram0`, `pc.bios`, ...).
    pub region: String,
    /// Whether the region is read-only (a ROM).
    pub rom: bool,
    /// Host virtual address of the first byte in QEMU's process.
    pub hva: u64,
}

/// The flat view of the system address space: its RAM and ROM ranges in
/// address order (I/O ranges dropped).
pub fn parse_flat_view(text: &str) -> Result<Vec<(u64, u64, String, bool)>, Error> {
    // The view whose address spaces include "memory" (the system bus).
    let mut in_system = false;
    let mut ranges = Vec::new();
    let mut seen_system = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("FlatView #") {
            if seen_system && in_system {
                break;
            }
            in_system = false;
            continue;
        }
        if t.starts_with("AS \"memory\"") {
            in_system = true;
            seen_system = true;
            continue;
        }
        if !in_system {
            continue;
        }
        // 0000000000100000-0000000003ffffff (prio 0, ram): ram0 @0000000000100000
        let Some((span, rest)) = t.split_once(' ') else {
            continue;
        };
        let Some((a, b)) = span.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(last)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let Some(kind) = rest.strip_prefix('(').and_then(|r| r.split_once(')')) else {
            continue;
        };
        let rom = kind.0.ends_with(" rom") || kind.0.ends_with(" romd");
        let ram = kind.0.ends_with(" ram");
        if !(ram || rom) || last < start {
            continue;
        }
        let name = kind
            .1
            .trim_start_matches(':')
            .split(" @")
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        ranges.push((start, last - start + 1, name, rom));
    }
    if !seen_system {
        return Err(Error::Layout(
            "`info mtree -f` shows no flat view of the address space \"memory\"".into(),
        ));
    }
    ranges.sort_by_key(|r| r.0);
    Ok(ranges)
}

/// The host address in `gpa2hva`'s answer
/// (`Host virtual address for 0x0 (ram0) is 0x7f9b13fff000`).
pub fn parse_gpa2hva(text: &str) -> Option<u64> {
    let t = text.trim();
    let v = t.rsplit(" is ").next()?.trim();
    u64::from_str_radix(v.strip_prefix("0x")?, 16).ok()
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMapping {
    /// First host address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// Mapped shared (`s`), so the file holds what the guest wrote.
    pub shared: bool,
    /// File offset of `start`.
    pub offset: u64,
    /// Inode of the file (0 for anonymous memory).
    pub inode: u64,
    /// The path, as the kernel prints it (may end in ` (deleted)`).
    pub path: String,
}

/// Parse `/proc/PID/maps`.
pub fn parse_maps(text: &str) -> Vec<HostMapping> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(6, ' ');
            let (a, b) = it.next()?.split_once('-')?;
            let perms = it.next()?;
            let offset = u64::from_str_radix(it.next()?, 16).ok()?;
            let _dev = it.next()?;
            let inode = it.next()?.parse().ok()?;
            let path = it.next().unwrap_or("").trim().to_string();
            Some(HostMapping {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                shared: perms.as_bytes().get(3) == Some(&b's'),
                offset,
                inode,
                path,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTREE: &str = "FlatView #0\n AS \"cpu-smm-0\", root: memory\n Root memory region: memory\n  0000000000000000-00000000000bffff (prio 0, ram): ram0\n\nFlatView #3\n AS \"memory\", root: system\n AS \"cpu-memory-0\", root: system\n Root memory region: system\n  0000000000000000-00000000000bffff (prio 0, ram): ram0\n  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom\n  00000000000e0000-00000000000fffff (prio 0, rom): pc.bios @0000000000020000\n  0000000000100000-0000000003ffffff (prio 0, ram): ram0 @0000000000100000\n  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\n  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\n\nFlatView #4\n AS \"I/O\", root: io\n  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan\n";

    #[test]
    fn the_system_flat_view_gives_ram_and_rom() {
        let r = parse_flat_view(MTREE).unwrap();
        assert_eq!(
            r,
            vec![
                (0, 0xc0000, "ram0".to_string(), false),
                (0xc0000, 0x20000, "pc.rom".to_string(), true),
                (0xe0000, 0x20000, "pc.bios".to_string(), true),
                (0x100000, 0x3f00000, "ram0".to_string(), false),
                (0xfffc0000, 0x40000, "pc.bios".to_string(), true),
            ]
        );
        assert!(parse_flat_view("nothing").is_err());
    }

    #[test]
    fn host_addresses_and_maps_parse() {
        assert_eq!(
            parse_gpa2hva("Host virtual address for 0x0 (ram0) is 0x7f9b13fff000\r\n"),
            Some(0x7f9b13fff000)
        );
        assert_eq!(
            parse_gpa2hva("Memory at address 0xfec00000 is not RAM"),
            None
        );
        let m = parse_maps(
            "7f9b13fff000-7f9b17fff000 rw-s 00001000 fe:00 10232445                   /tmp/x/ram img\n\
             7f9b04000000-7f9b04021000 rw-p 00000000 00:00 0 \n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            HostMapping {
                start: 0x7f9b13fff000,
                end: 0x7f9b17fff000,
                shared: true,
                offset: 0x1000,
                inode: 10232445,
                path: "/tmp/x/ram img".into()
            }
        );
        assert!(!m[1].shared);
        assert_eq!(m[1].path, "");
    }
}
