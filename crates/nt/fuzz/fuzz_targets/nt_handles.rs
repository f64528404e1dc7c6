//! The handle tables over a damaged kernel: table levels, entries, object
//! headers and type indexes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = hangscope_nt_fuzz::damaged_kernel(data);
    let _ = k.handles();
});
