//! Every kernel-object walk over one damaged kernel, in the order `analyze`
//! runs them, so that one walk's cached result feeding the next is damaged
//! too. The lab image and the input format are in this crate's lib.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = hangscope_nt_fuzz::damaged_kernel(data);
    let _ = k.processes();
    let _ = k.threads();
    let _ = k.cpus();
    let _ = k.modules();
    let _ = k.eresources();
    let _ = k.handles();
    let _ = k.stacks(&Default::default());
    let _ = k.running();
    let _ = k.wait_graph();
});
