//! This machine's single-threaded SGEMM rate, measured in the same `cargo bench` run as the figures it scales,
//! so docs/PERFORMANCE.md can report each kernel as a fraction of what this machine's GEMM reaches now (load
//! on a shared box moves both alike). Criterion prints the rate as throughput: elements/s = FLOP/s.

use criterion::{Criterion, Throughput};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;

/// Square SGEMM of side `n` through ndarray (matrixmultiply: AVX2/FMA kernels chosen at run time, one thread).
pub fn sgemm(c: &mut Criterion) {
    let n = 512;
    let a = Array2::from_shape_fn((n, n), |(i, j)| ((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5);
    let b = a.t().to_owned();
    let mut out = Array2::<f32>::zeros((n, n));
    let mut group = c.benchmark_group("machine_sgemm");
    group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
    group.bench_function(format!("ndarray_{n}_1_thread"), |bch| {
        bch.iter(|| general_mat_mul(1.0, &a, &b, 0.0, &mut out))
    });
    group.finish();
}
