//! ONNX export of the meta-model's velocity field, written with prost types generated from the ONNX schema
//! (`proto/onnx.proto`, the `onnx` PyPI wheel's copy; regenerate `proto.rs` with
//! `cargo run --manifest-path tools/onnx-proto-gen/Cargo.toml`, which needs `protoc`).
//!
//! [`export_velocity`] turns a [`VelocitySpec`] (plain arrays: no candle types) into `ModelProto` bytes; see
//! [`velocity`] for the graph. `flow::MetaModel::to_onnx` fills the spec from a trained model.

mod error;
mod graph;
#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod proto;
mod signature;
pub mod velocity;

pub use error::OnnxError;
pub use signature::check_velocity_signature;
pub use velocity::{export_velocity, DenseLayer, EndpointStats, VelocitySpec, INPUT_T, INPUT_X, OUTPUT_V};
