//! The lab's error type.

/// Why a scenario could not be loaded or an image could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scenario file is not valid TOML or does not match the format.
    #[error("scenario {source_name}: {problem}")]
    ScenarioSyntax {
        /// File name or `<string>`.
        source_name: String,
        /// The parser's message (with line and column).
        problem: String,
    },
    /// A scenario field has a bad value.
    #[error("scenario field `{field}`: {problem}")]
    ScenarioField {
        /// Path of the field, e.g. `threads[3].wait.on`.
        field: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// The symbol table could not be read.
    #[error("symbol table {path}: {problem}")]
    Symbols {
        /// File path.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// The symbol table lacks a type, field or symbol the builder needs.
    #[error("symbol table lacks {what}: cannot lay out this build")]
    MissingSymbol {
        /// `_EPROCESS.ActiveProcessLinks`, `PsActiveProcessHead`, ...
        what: String,
    },
    /// The build does not fit in the machine (RAM too small, pool full).
    #[error("image does not fit: {problem}")]
    Capacity {
        /// What ran out.
        problem: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {problem}")]
    Io {
        /// File path.
        path: String,
        /// The OS message.
        problem: String,
    },
}

impl Error {
    /// Short stable name of the error kind, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Error::ScenarioSyntax { .. } => "scenario_syntax",
            Error::ScenarioField { .. } => "scenario_field",
            Error::Symbols { .. } => "symbols",
            Error::MissingSymbol { .. } => "missing_symbol",
            Error::Capacity { .. } => "capacity",
            Error::Io { .. } => "io",
        }
    }
}
