//! hangscope-lab: synthetic but faithful Windows x64 kernel memory images,
//! laid out with real symbol tables, written in every dump format, with the
//! ground truth a correct analyzer must find.
//!
//! The lab runs hangscope's data flow backwards: scenario -> kernel objects
//! -> virtual memory -> physical memory -> dump file. It never imports the
//! reader crates (`hangscope-dump`, `-x64`, `-nt`), so a misreading there
//! cannot hide itself here.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod build;
pub mod builds;
pub mod driver;
pub mod error;
pub mod format;
pub mod image;
pub mod layout;
mod oracle;
pub mod random;
pub mod scenario;
pub mod series;
pub mod space;
pub mod stacks;
pub mod truth;

pub use build::{build, build_with_layout, BuildOptions, Symbols};
pub use error::Error;
pub use random::{random_scenario, RandomOptions};
pub use scenario::Scenario;
