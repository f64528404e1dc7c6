//! The lock walks and the wait-graph input over a damaged kernel:
//! ERESOURCEs, fast/guarded mutexes, wait blocks, dispatcher objects, IRPs
//! and ALPC messages, as `analyze` and `locks` read them, without the
//! stack unwinder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = hangscope_nt_fuzz::damaged_kernel(data);
    let _ = k.eresources();
    let _ = k.mutexes();
    let _ = k.wait_graph();
});
