//! Fuzz target `features_csv`: see ../harness.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| harness::run("features_csv", bytes));
