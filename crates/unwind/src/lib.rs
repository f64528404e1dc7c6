//! hangscope-unwind (skeleton).
