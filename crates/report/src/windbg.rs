//! WinDbg-shaped text for kernel objects: !locks, !thread, !irp, ... (skeleton).
