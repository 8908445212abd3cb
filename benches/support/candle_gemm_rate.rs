//! This machine's SGEMM rate through candle on the CPU (the `gemm` crate, every core), measured in the same
//! `cargo bench` run as the candle figures it scales. Criterion prints the rate as throughput (elements/s =
//! FLOP/s).

use candle_core::{Device, Tensor};
use criterion::{Criterion, Throughput};

/// Square SGEMM of side 1,024 through candle on the CPU.
pub fn sgemm(c: &mut Criterion) {
    let n = 1024;
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu).expect("a CPU tensor");
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu).expect("a CPU tensor");
    let mut group = c.benchmark_group("machine_sgemm");
    group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
    group.sample_size(20);
    group.bench_function(format!("candle_{n}_all_cores"), |bch| bch.iter(|| a.matmul(&b).expect("matmul")));
    group.finish();
}
