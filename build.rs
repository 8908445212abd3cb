//! Generates the C header `include/weightflow.h` from `src/capi` with cbindgen. Only `src/capi` is parsed:
//! the rest of the crate's public constants and types are Rust API, not C ABI.
//!
//! The header is always generated into `$OUT_DIR/weightflow.h`; `tests/header.rs` fails when the committed
//! `include/weightflow.h` differs from it. Outside CI (`CI` unset) the committed copy is refreshed too, so a
//! developer who changes the ABI only has to commit the updated file.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/capi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=CI");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("weightflow.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let bindings =
        match cbindgen::Builder::new().with_src(crate_dir.join("src/capi/mod.rs")).with_config(config).generate() {
            Ok(b) => b,
            Err(e) => {
                // A syntax error in the crate surfaces better from rustc than from cbindgen's parser.
                println!("cargo:warning=cbindgen could not generate the header: {e}");
                return;
            }
        };
    bindings.write_to_file(&out);
    if std::env::var_os("CI").is_none() {
        let committed = crate_dir.join("include").join("weightflow.h");
        let fresh = std::fs::read(&out).expect("the header was just written");
        if std::fs::read(&committed).ok().as_deref() != Some(fresh.as_slice()) {
            std::fs::create_dir_all(committed.parent().expect("include/ has a parent")).expect("create include/");
            std::fs::write(&committed, fresh).expect("write include/weightflow.h");
        }
    }
}
