//! hangscope's integration tests: one test binary (as ripgrep does) that
//! runs the built `hangscope` executable on lab images and compares what
//! it prints with the lab's ground truth, with Volatility 3 and with
//! itself under another symbol source.
//!
//! `docs/testing.md` describes each module and how to run parts of it.

#[path = "cases/util.rs"]
mod util;

#[path = "cases/matrix.rs"]
mod matrix;

#[path = "cases/random.rs"]
mod random;

#[path = "cases/corrupt.rs"]
mod corrupt;

#[path = "cases/volatility.rs"]
mod volatility;

#[path = "cases/pdb.rs"]
mod pdb;

#[path = "cases/cli.rs"]
mod cli;

#[path = "cases/driver.rs"]
mod driver;

#[path = "cases/honest.rs"]
mod honest;

#[path = "cases/corpus.rs"]
mod corpus;

#[path = "cases/demo.rs"]
mod demo;

#[path = "cases/linux.rs"]
mod linux;

#[path = "cases/linux_corpus.rs"]
mod linux_corpus;

#[path = "cases/live.rs"]
mod live;

#[path = "cases/series.rs"]
mod series;

#[path = "cases/linux_series.rs"]
mod linux_series;

#[path = "cases/pushlock.rs"]
mod pushlock;
