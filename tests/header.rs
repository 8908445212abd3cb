//! The committed C header must be exactly what cbindgen generates from the current sources.

extern crate weightflow;

#[test]
fn committed_header_is_current() {
    let fresh = include_str!(concat!(env!("OUT_DIR"), "/weightflow.h"));
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/weightflow.h"))
        .expect("include/weightflow.h is committed");
    assert!(
        fresh == committed,
        "include/weightflow.h is stale: build outside CI (cargo build) to regenerate it, then commit it"
    );
}

#[test]
fn header_declares_the_version_functions_and_abi_version() {
    let h = include_str!(concat!(env!("OUT_DIR"), "/weightflow.h"));
    assert!(h.contains("const char *wf_version(void);"), "{h}");
    assert!(h.contains("uint32_t wf_abi_version(void);"), "{h}");
    let abi_define = format!("#define WF_ABI_VERSION {}", weightflow_abi());
    assert!(h.contains(&abi_define), "{h}");
}

fn weightflow_abi() -> u32 {
    // The library's own answer, through the C entry point.
    extern "C" {
        fn wf_abi_version() -> u32;
    }
    // SAFETY: wf_abi_version takes nothing and returns a plain integer.
    unsafe { wf_abi_version() }
}
