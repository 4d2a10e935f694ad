#![no_main]
// The target's code and invariants: `warden_fuzz::targets::normalize` (fuzz/src/targets.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::targets::normalize(data));
