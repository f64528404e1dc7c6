//! One error type for the crate: what went wrong, said so that the user
//! knows what to change.

/// What went wrong while reaching a running VM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target names no VM hangscope can reach.
    #[error("{0}")]
    Target(String),
    /// The host refused access; the text says what to change.
    #[error("{0}")]
    Permission(String),
    /// QEMU's monitor (QMP, HMP through QMP, or virsh) failed.
    #[error("QEMU monitor: {0}")]
    Monitor(String),
    /// QEMU's memory layout could not be read or makes no sense.
    #[error("guest memory layout: {0}")]
    Layout(String),
    /// A host file operation failed.
    #[error("{0}")]
    Io(String),
    /// The guest was paused and could not be resumed: it is STILL PAUSED.
    #[error("the guest is STILL PAUSED: resuming it failed ({0}); resume it by hand (`virsh resume` or QMP `cont`)")]
    ResumeFailed(String),
}

impl Error {
    /// A short stable name for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Error::Target(_) => "Target",
            Error::Permission(_) => "Permission",
            Error::Monitor(_) => "Monitor",
            Error::Layout(_) => "Layout",
            Error::Io(_) => "Io",
            Error::ResumeFailed(_) => "ResumeFailed",
        }
    }
}

impl From<hangscope_capture::Error> for Error {
    fn from(e: hangscope_capture::Error) -> Error {
        match e.kind {
            hangscope_capture::ErrorKind::Permission(_) => Error::Permission(e.to_string()),
            _ => Error::Monitor(e.to_string()),
        }
    }
}
