//! hangscope-waitgraph (skeleton).
