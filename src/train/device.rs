use serde::{Deserialize, Serialize};

use super::error::{CandleContext, Error};

/// Where candle computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// The host CPU (always available).
    #[default]
    Cpu,
    /// The first CUDA device; needs the `cuda` feature.
    Cuda,
}

/// The candle device for `kind`; a clear error when CUDA was asked for but not compiled in.
pub fn device(kind: DeviceKind) -> Result<candle_core::Device, Error> {
    match kind {
        DeviceKind::Cpu => Ok(candle_core::Device::Cpu),
        DeviceKind::Cuda if cfg!(feature = "cuda") => candle_core::Device::new_cuda(0).op("opening CUDA device 0"),
        DeviceKind::Cuda => Err(Error::Config("this build has no CUDA support: rebuild with --features cuda".into())),
    }
}
