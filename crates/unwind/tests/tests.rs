//! hangscope-unwind integration tests: one binary (house rule).

mod real_code;
mod support;
mod synthetic;
