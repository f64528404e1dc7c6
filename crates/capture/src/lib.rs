//! hangscope-capture (skeleton).
