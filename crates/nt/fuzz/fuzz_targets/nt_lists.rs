//! The list walks alone over a damaged kernel: processes, threads, CPUs and
//! modules. Cheaper than `nt_walk`, so many more executions reach the
//! list-iterator breaks (cycles, back links, non-canonical links).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = hangscope_nt_fuzz::damaged_kernel(data);
    let _ = k.processes();
    let _ = k.threads();
    let _ = k.cpus();
    let _ = k.modules();
});
