//! Kernel enumerations as typed values: a thread's scheduler state and its
//! wait reason. Each has a variant per name the symbol tables of the
//! supported builds give, and `Unknown(raw)` for a value no table names.
//! They serialise as those names (`"Waiting"`, `"WrResource"`) and an
//! unknown value as `"Unknown(n)"`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// Why a name is not one of an enumeration's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {name:?} is not known")]
pub struct UnknownName {
    /// The enumeration.
    pub what: &'static str,
    /// The name read.
    pub name: String,
}

/// An enumeration named by the kernel's symbols, with `Unknown(raw)`.
macro_rules! kernel_enum {
    (
        $(#[$meta:meta])*
        $ty:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $ty {
            $($(#[$vmeta])* $variant,)+
            /// A value no symbol table of a supported build names (raw).
            Unknown(u64),
        }

        impl $ty {
            /// The variant a symbol table's name stands for; `Unknown(raw)`
            /// when the name is none of them.
            pub fn from_name(name: &str, raw: u64) -> $ty {
                match name {
                    $(stringify!($variant) => $ty::$variant,)+
                    _ => $ty::Unknown(raw),
                }
            }

            /// The kernel's name, or `Unknown(n)`.
            pub fn name(&self) -> Cow<'static, str> {
                match self {
                    $($ty::$variant => Cow::Borrowed(stringify!($variant)),)+
                    $ty::Unknown(raw) => Cow::Owned(format!("Unknown({raw})")),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownName;

            /// A name as [`Self::name`] writes it.
            fn from_str(s: &str) -> Result<$ty, UnknownName> {
                let unknown = s
                    .strip_prefix("Unknown(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|n| n.parse().ok());
                if let Some(raw) = unknown {
                    return Ok($ty::Unknown(raw));
                }
                match $ty::from_name(s, 0) {
                    $ty::Unknown(_) => Err(UnknownName { what: $what, name: s.to_string() }),
                    v => Ok(v),
                }
            }
        }

        /// Hand-written values (tests, fixtures) by name; an unknown name
        /// is `Unknown(0)`.
        impl From<&str> for $ty {
            fn from(s: &str) -> $ty {
                s.parse().unwrap_or($ty::Unknown(0))
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.name() == *other
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

kernel_enum! {
    /// `KTHREAD.State` (`_KTHREAD_STATE`).
    ThreadState, "thread state" {
        /// Being created.
        Initialized,
        /// Ready to run.
        Ready,
        /// On a processor.
        Running,
        /// Selected to run next on a processor.
        Standby,
        /// Exited.
        Terminated,
        /// Waiting.
        Waiting,
        /// Ready, but its kernel stack is not resident.
        Transition,
        /// Ready, not yet placed on a processor's queue.
        DeferredReady,
        /// Waiting on a gate (Windows 7's name).
        GateWait,
        /// Value 8 in Windows 10 and later tables.
        GateWaitObsolete,
        /// Waiting for its process to be swapped in.
        WaitingForProcessInSwap,
    }
}

/// `_KTHREAD_STATE` values by number, for builds whose symbols lack the
/// enum (Windows 7 SP1): the kernel's own since NT 5.
const THREAD_STATES: [ThreadState; 10] = [
    ThreadState::Initialized,
    ThreadState::Ready,
    ThreadState::Running,
    ThreadState::Standby,
    ThreadState::Terminated,
    ThreadState::Waiting,
    ThreadState::Transition,
    ThreadState::DeferredReady,
    ThreadState::GateWait,
    ThreadState::WaitingForProcessInSwap,
];

/// Value 0, as a zeroed KTHREAD reads.
impl Default for ThreadState {
    fn default() -> ThreadState {
        ThreadState::Initialized
    }
}

impl ThreadState {
    /// The state for a raw value when no symbol table names it.
    pub fn from_raw(raw: u64) -> ThreadState {
        usize::try_from(raw)
            .ok()
            .and_then(|i| THREAD_STATES.get(i).copied())
            .unwrap_or(ThreadState::Unknown(raw))
    }

    /// Ready to run: ready, standby or deferred ready.
    pub fn is_ready(&self) -> bool {
        matches!(
            self,
            ThreadState::Ready | ThreadState::Standby | ThreadState::DeferredReady
        )
    }

    /// A state whose `WaitTime` says when it last ran: waiting or ready.
    pub fn is_timed(&self) -> bool {
        *self == ThreadState::Waiting || self.is_ready()
    }
}

kernel_enum! {
    /// `KTHREAD.WaitReason` (`_KWAIT_REASON`), the union of the names of
    /// Windows 7 SP1 to Windows 11.
    WaitReason, "wait reason" {
        /// `Executive`.
        Executive,
        /// `FreePage`.
        FreePage,
        /// `PageIn`.
        PageIn,
        /// `PoolAllocation`.
        PoolAllocation,
        /// `DelayExecution`.
        DelayExecution,
        /// `Suspended`.
        Suspended,
        /// `UserRequest`.
        UserRequest,
        /// `WrExecutive`.
        WrExecutive,
        /// `WrFreePage`.
        WrFreePage,
        /// `WrPageIn`.
        WrPageIn,
        /// `WrPoolAllocation`.
        WrPoolAllocation,
        /// `WrDelayExecution`.
        WrDelayExecution,
        /// `WrSuspended`.
        WrSuspended,
        /// `WrUserRequest`.
        WrUserRequest,
        /// `WrEventPair` (Windows 7; 14 is `WrSpare0` later).
        WrEventPair,
        /// `WrSpare0`.
        WrSpare0,
        /// `WrQueue`.
        WrQueue,
        /// `WrLpcReceive`.
        WrLpcReceive,
        /// `WrLpcReply`.
        WrLpcReply,
        /// `WrVirtualMemory`.
        WrVirtualMemory,
        /// `WrPageOut`.
        WrPageOut,
        /// `WrRendezvous`.
        WrRendezvous,
        /// `WrKeyedEvent`.
        WrKeyedEvent,
        /// `WrTerminated`.
        WrTerminated,
        /// `WrProcessInSwap`.
        WrProcessInSwap,
        /// `WrCpuRateControl`.
        WrCpuRateControl,
        /// `WrCalloutStack`.
        WrCalloutStack,
        /// `WrKernel`.
        WrKernel,
        /// `WrResource`: an executive resource.
        WrResource,
        /// `WrPushLock`.
        WrPushLock,
        /// `WrMutex`.
        WrMutex,
        /// `WrQuantumEnd`.
        WrQuantumEnd,
        /// `WrDispatchInt`.
        WrDispatchInt,
        /// `WrPreempted`.
        WrPreempted,
        /// `WrYieldExecution`.
        WrYieldExecution,
        /// `WrFastMutex`.
        WrFastMutex,
        /// `WrGuardedMutex`.
        WrGuardedMutex,
        /// `WrRundown`.
        WrRundown,
        /// `WrAlertByThreadId`.
        WrAlertByThreadId,
        /// `WrDeferredPreempt`.
        WrDeferredPreempt,
        /// `WrPhysicalFault`.
        WrPhysicalFault,
        /// `WrIoRing`.
        WrIoRing,
        /// `MaximumWaitReason`: the count, named by the tables.
        MaximumWaitReason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_values_keep_their_number() {
        assert_eq!(ThreadState::from_raw(5), ThreadState::Waiting);
        assert_eq!(ThreadState::from_raw(8).to_string(), "GateWait");
        assert_eq!(ThreadState::from_raw(42).to_string(), "Unknown(42)");
        assert_eq!(
            ThreadState::from_name("GateWaitObsolete", 8).to_string(),
            "GateWaitObsolete"
        );
        assert_eq!(
            ThreadState::from_name("NewState", 11),
            ThreadState::Unknown(11)
        );
        assert_eq!("Unknown(7)".parse(), Ok(WaitReason::Unknown(7)));
        assert_eq!(WaitReason::from("WrResource"), WaitReason::WrResource);
        let json = serde_json::to_string(&[WaitReason::WrQueue, WaitReason::Unknown(99)]).unwrap();
        assert_eq!(json, r#"["WrQueue","Unknown(99)"]"#);
        let back: Vec<WaitReason> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [WaitReason::WrQueue, WaitReason::Unknown(99)]);
        assert!(serde_json::from_str::<ThreadState>("\"Sleeping\"").is_err());
        assert!(ThreadState::Standby.is_ready() && ThreadState::Waiting.is_timed());
        assert!(!ThreadState::Running.is_timed());
    }
}
