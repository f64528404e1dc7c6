//! What went wrong while building a listing, as data in the output.

use hangscope_waitgraph::ModelPart;
use hangscope_x64::VirtAddr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The kind of a [`Warning`]: the reading error's name, or one of the
/// conditions a walk reports without an error. Serialises as its name
/// (`"Fault"`); a name read back that is none of these is kept as
/// `Unknown(name)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// A virtual address could not be read.
    Fault,
    /// Readable memory with an impossible value.
    BadData,
    /// The symbol table lacks a type, field or symbol.
    MissingSymbol,
    /// No symbol table matches the kernel.
    SymbolsNotFound,
    /// The kernel could not be located.
    KernelNotFound,
    /// The dump layer failed.
    Dump,
    /// Something the walk needs is absent (a running thread's registers).
    Missing,
    /// A thread's kernel stack is marked not resident.
    NotResident,
    /// A value that was read but cannot be right.
    Implausible,
    /// A name none of the above has (raw).
    Unknown(String),
}

impl WarningKind {
    /// The kind's name.
    pub fn name(&self) -> &str {
        match self {
            WarningKind::Fault => "Fault",
            WarningKind::BadData => "BadData",
            WarningKind::MissingSymbol => "MissingSymbol",
            WarningKind::SymbolsNotFound => "SymbolsNotFound",
            WarningKind::KernelNotFound => "KernelNotFound",
            WarningKind::Dump => "Dump",
            WarningKind::Missing => "Missing",
            WarningKind::NotResident => "NotResident",
            WarningKind::Implausible => "Implausible",
            WarningKind::Unknown(raw) => raw,
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> WarningKind {
        match name {
            "Fault" => WarningKind::Fault,
            "BadData" => WarningKind::BadData,
            "MissingSymbol" => WarningKind::MissingSymbol,
            "SymbolsNotFound" => WarningKind::SymbolsNotFound,
            "KernelNotFound" => WarningKind::KernelNotFound,
            "Dump" => WarningKind::Dump,
            "Missing" => WarningKind::Missing,
            "NotResident" => WarningKind::NotResident,
            "Implausible" => WarningKind::Implausible,
            other => WarningKind::Unknown(other.to_string()),
        }
    }
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl PartialEq<str> for WarningKind {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl PartialEq<&str> for WarningKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl Serialize for WarningKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for WarningKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WarningKind, D::Error> {
        Ok(WarningKind::from_name(&String::deserialize(d)?))
    }
}

/// A problem met while building a listing: the listing goes on without
/// the object. Serialised into the JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// What was being read (`process list`, `thread fffffa80...`).
    pub context: String,
    /// What kind of problem.
    pub kind: WarningKind,
    /// Human-readable text.
    pub message: String,
    /// Address involved, when known.
    #[serde(with = "super::hex_opt")]
    pub address: Option<VirtAddr>,
    /// The part of the model this problem leaves incomplete, when it is a
    /// read that failed rather than a doubtful value: a verdict over an
    /// incomplete model cannot be "healthy".
    #[serde(skip)]
    pub leaves_incomplete: Option<ModelPart>,
}

impl Warning {
    /// A value that was read but cannot be right (a state out of range, a
    /// wait that starts after the clock): the object is kept and flagged.
    pub fn implausible(
        context: impl Into<String>,
        address: Option<VirtAddr>,
        message: impl Into<String>,
    ) -> Warning {
        Warning {
            context: context.into(),
            kind: WarningKind::Implausible,
            message: message.into(),
            address,
            leaves_incomplete: None,
        }
    }

    /// Mark the warning as leaving `part` of the model incomplete.
    pub fn incomplete(mut self, part: ModelPart) -> Warning {
        self.leaves_incomplete = Some(part);
        self
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.message)
    }
}
