//! The owned, format-neutral form every loader produces and the compact
//! writer consumes.

use crate::{Enumeration, PdbIdentity, UserType};

/// Everything a symbol table holds, as plain owned data.
#[derive(Debug, Default, Clone)]
pub(crate) struct Model {
    pub identity: Option<PdbIdentity>,
    /// Base types by name with their size in bytes.
    pub base_types: Vec<(String, u64)>,
    pub user_types: Vec<UserType>,
    pub enums: Vec<Enumeration>,
    /// Symbols by their (Volatility-stripped) name, with the RVA.
    pub symbols: Vec<(String, u64)>,
    /// Other names for the same addresses: the raw linkage names.
    pub aliases: Vec<(String, u64)>,
    /// A description of where the types came from, kept in the image when
    /// there is no PDB identity (BTF, a vmlinux).
    pub origin: Option<String>,
    /// Keep every symbol even when names repeat (Linux static functions
    /// share names across files; each must still name its own address).
    pub keep_duplicate_symbols: bool,
    /// What was left out while reading a damaged source (kept with the
    /// origin, so tables without a PDB identity only).
    pub notes: Vec<String>,
}

/// The base types every x64 Windows ISF made by Volatility's pdbconv
/// describes, so that a PDB gives the same `base_size` answers.
pub(crate) const X64_BASE_TYPES: &[(&str, u64)] = &[
    ("HRESULT", 4),
    ("char", 1),
    ("double", 8),
    ("f16", 2),
    ("f32", 4),
    ("f32pp", 4),
    ("f48", 6),
    ("f80", 10),
    ("f128", 16),
    ("int", 4),
    ("int8", 1),
    ("int128", 16),
    ("long", 4),
    ("long long", 8),
    ("pointer", 8),
    ("short", 2),
    ("uint8", 1),
    ("uint128", 16),
    ("unsigned char", 1),
    ("unsigned int", 4),
    ("unsigned long", 4),
    ("unsigned long long", 8),
    ("unsigned short", 2),
    ("void", 0),
    ("wchar", 2),
    ("bool", 1),
];

/// The symbol name Volatility's pdbconv keeps for a linkage name: one
/// leading `_`, `@` or DEL removed, and an x86 `@N` stdcall suffix dropped.
/// ISF files store this form, so PDB symbols use it too.
pub(crate) fn strip_linkage_name(name: &str) -> &str {
    let mut s = name;
    if let Some(c) = s.chars().next() {
        if c == '_' || c == '@' || c == '\u{7f}' {
            s = &s[c.len_utf8()..];
        }
    }
    let mut parts = s.split('@');
    if let (Some(head), Some(tail), None) = (parts.next(), parts.next(), parts.next()) {
        let numeric = !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit());
        if numeric && !head.is_empty() && !head.starts_with('?') {
            return head;
        }
        // Volatility keeps the whole unstripped name in that case.
        return name;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::strip_linkage_name;

    #[test]
    fn strips_like_pdbconv() {
        assert_eq!(
            strip_linkage_name("_CmAddDeviceToContainer"),
            "CmAddDeviceToContainer"
        );
        assert_eq!(
            strip_linkage_name("\u{7f}CI_NULL_THUNK_DATA"),
            "CI_NULL_THUNK_DATA"
        );
        assert_eq!(strip_linkage_name("KiSwapContext"), "KiSwapContext");
        assert_eq!(strip_linkage_name("_NtClose@4"), "NtClose");
        assert_eq!(
            strip_linkage_name("??_C@_00CNPNBAHC@?$AA@"),
            "??_C@_00CNPNBAHC@?$AA@"
        );
    }
}
