//! One frame of a thread's stack, as a value: the instruction address and,
//! when the kernel model could name it, the module, the function and the
//! offset. Readers ask for the module or the function instead of parsing
//! `module!function+0xoffset` text back.

use crate::verdict::Addr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A stack frame: where it is, and what names it.
///
/// Its text (and its JSON, a string) is the debugger's call-site form:
/// `module!function+0xoffset` (no `+0x0` at a function's start) when the
/// function is known, `module+0xoffset` (the offset from the module's base)
/// when only the module is, else the bare address `0x...`.
///
/// Two frames are equal when they name the same place: the same module,
/// function and offset, or, for frames in no known module, the same
/// address. That is what the text says, so a frame read back from JSON
/// (whose text has no address) equals the frame written.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// The instruction address (a return address below the top frame).
    pub address: Addr,
    /// The module's short name as debuggers show it (`nt`, `Ntfs`).
    pub module: Option<String>,
    /// The function (a symbol or an export name).
    pub function: Option<String>,
    /// Bytes past the function's start, or past the module's base when no
    /// function is known.
    pub offset: u64,
}

impl Frame {
    /// A frame in no known module.
    pub fn unnamed(address: u64) -> Frame {
        Frame {
            address: Addr(address),
            ..Frame::default()
        }
    }

    /// A frame in `module` at `rva` from its base, with no function name.
    pub fn in_module(address: u64, module: impl Into<String>, rva: u64) -> Frame {
        Frame {
            address: Addr(address),
            module: Some(module.into()),
            function: None,
            offset: rva,
        }
    }

    /// A frame `offset` bytes into `function` of `module`.
    pub fn in_function(
        address: u64,
        module: impl Into<String>,
        function: impl Into<String>,
        offset: u64,
    ) -> Frame {
        Frame {
            address: Addr(address),
            module: Some(module.into()),
            function: Some(function.into()),
            offset,
        }
    }
}

impl Frame {
    /// What the text and equality see.
    fn identity(&self) -> (Option<&str>, Option<&str>, u64) {
        match &self.module {
            Some(m) => (Some(m), self.function.as_deref(), self.offset),
            None => (None, None, self.address.0),
        }
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Frame) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for Frame {}

impl std::hash::Hash for Frame {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.identity().hash(h)
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match (&self.module, &self.function) {
            (Some(m), Some(func)) if self.offset == 0 => format!("{m}!{func}"),
            (Some(m), Some(func)) => format!("{m}!{func}+{:#x}", self.offset),
            (Some(m), None) => format!("{m}+{:#x}", self.offset),
            (None, _) => format!("{:#x}", self.address.0),
        };
        f.pad(&text)
    }
}

/// A frame equals a text when its text is that text (comparisons with
/// expected listings).
impl PartialEq<str> for Frame {
    fn eq(&self, other: &str) -> bool {
        str::eq(&self.to_string(), other)
    }
}

impl PartialEq<&str> for Frame {
    fn eq(&self, other: &&str) -> bool {
        str::eq(&self.to_string(), *other)
    }
}

impl PartialEq<String> for Frame {
    fn eq(&self, other: &String) -> bool {
        str::eq(&self.to_string(), other)
    }
}

/// Why a call-site text is not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stack frame: {0:?}")]
pub struct FrameParseError(pub String);

fn parse_hex(s: &str) -> Option<u64> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(h, 16).ok()
}

impl FromStr for Frame {
    type Err = FrameParseError;

    /// Reads the text form back (JSON readers); the address of a named
    /// frame is not in its text and reads as 0.
    fn from_str(s: &str) -> Result<Frame, FrameParseError> {
        let bad = || FrameParseError(s.to_string());
        if let Some(a) = parse_hex(s) {
            return Ok(Frame::unnamed(a));
        }
        match s.split_once('!') {
            Some((m, rest)) if !m.is_empty() && !rest.is_empty() => {
                let (func, off) = match rest.rsplit_once('+') {
                    Some((func, off)) => match parse_hex(off) {
                        Some(o) if !func.is_empty() => (func, o),
                        _ => (rest, 0),
                    },
                    None => (rest, 0),
                };
                Ok(Frame::in_function(0, m, func, off))
            }
            Some(_) => Err(bad()),
            None => {
                let (m, off) = s.rsplit_once('+').ok_or_else(bad)?;
                let off = parse_hex(off).ok_or_else(bad)?;
                if m.is_empty() {
                    return Err(bad());
                }
                Ok(Frame::in_module(0, m, off))
            }
        }
    }
}

/// Test and hand-written inputs name frames by their text.
impl From<&str> for Frame {
    fn from(s: &str) -> Frame {
        s.parse().unwrap_or_else(|_| Frame {
            function: Some(s.to_string()),
            ..Frame::default()
        })
    }
}

impl Serialize for Frame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Frame {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Frame, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_the_debuggers_call_site() {
        let cases = [
            (
                Frame::in_function(0xfffff800_02a5c6c0, "nt", "KiSwapContext", 0x7a),
                "nt!KiSwapContext+0x7a",
            ),
            (
                Frame::in_function(1, "hsflt", "HsFltSpin", 0),
                "hsflt!HsFltSpin",
            ),
            (Frame::in_module(2, "hsflt", 0x1040), "hsflt+0x1040"),
            (Frame::in_module(3, "hsflt", 0), "hsflt+0x0"),
            (Frame::unnamed(0xfffff880_0160e563), "0xfffff8800160e563"),
        ];
        for (f, text) in cases {
            assert_eq!(f.to_string(), text);
            let back: Frame = text.parse().expect(text);
            assert_eq!(back.to_string(), text);
            assert_eq!((&back.module, &back.function), (&f.module, &f.function));
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            let de: Frame = serde_json::from_str(&json).unwrap();
            assert_eq!(de.to_string(), text);
            assert_eq!(de, f, "{text} reads back as the same frame");
        }
        assert!("".parse::<Frame>().is_err());
        assert!("!x".parse::<Frame>().is_err());
    }
}
