//! hangscope-nt (skeleton).
