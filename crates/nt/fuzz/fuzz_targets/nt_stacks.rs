//! The stack unwinder over a damaged kernel: saved contexts, running CPUs'
//! registers, and the modules' unwind data it reads through the damage.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = hangscope_nt_fuzz::damaged_kernel(data);
    let _ = k.stacks(&Default::default());
    let _ = k.running();
});
