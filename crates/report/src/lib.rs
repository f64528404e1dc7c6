//! hangscope-report (skeleton).
