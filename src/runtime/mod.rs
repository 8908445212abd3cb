//! Loads a bundle and runs it: the meta-model's velocity through onnxruntime (`ort`, loaded dynamically from
//! the `onnxruntime` wheel's shared library), the ODE integrated in Rust ([`crate::ode`]), ensembles generated
//! and windows scored. No candle: a scoring service builds this with
//! `cargo build --lib --no-default-features --features runtime`.

mod detector;
mod error;
mod session;
mod stream;

pub use detector::{Detector, DetectorInfo, ExecutionProvider, OpenOptions};
pub use error::RuntimeError;
pub use stream::{Stream, StreamScore};
