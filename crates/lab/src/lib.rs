//! hangscope-lab (skeleton).
