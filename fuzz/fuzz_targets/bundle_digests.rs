//! Fuzz target `bundle_digests`: see ../harness.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| harness::run("bundle_digests", bytes));
