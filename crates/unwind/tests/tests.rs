//! hangscope-unwind integration tests: one binary (house rule).

mod address_space;
mod msvc;
mod real_code;
mod support;
mod synth;
mod synthetic;
