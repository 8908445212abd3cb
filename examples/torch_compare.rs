//! Our half of the PyTorch CPU comparison (issue 7): times the two hot paths on a bundle and writes their
//! inputs and outputs, so `tools/torch_compare.py` can run the *same* computations in PyTorch eager on the
//! same machine, check that they agree, and report the ratio. Run both through `scripts/compare-torch.sh`.
//!
//! * generation: M fresh source samples carried to t = 1 by the bundle's sampler and steps, the velocity
//!   evaluated by onnxruntime (what `Detector::generate` does) on one thread and on every core;
//! * ensemble forward: the logits of M classifiers of the bundle's family on a shared batch of rows (the
//!   bundle's P_ref tiled to 478 rows, UCI heart's train + val), through `classifier::Mlp::logits` (one
//!   thread).
//!
//! Writes `OUT/velocity.onnx`, raw little-endian f32 arrays `OUT/*.f32`, and `OUT/rust.json` (timings, shapes,
//! the classifier's layout).
//!
//! ```sh
//! ORT_DYLIB_PATH=$(./scripts/setup-ort.sh) cargo run --release --example torch_compare -- \
//!     runs/quickstart/detector.wfb runs/torch_compare 5
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use serde_json::json;
use weightflow::ode::integrate;
use weightflow::rng;
use weightflow::runtime::{Detector, OpenOptions};

const GENERATE: [usize; 4] = [1, 32, 256, 1000];
const FORWARD: [usize; 3] = [32, 256, 1024];
const ROWS: usize = 478;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 3 {
        return Err("usage: torch_compare BUNDLE OUT_DIR RUNS".into());
    }
    let (bundle, out) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
    let runs: usize = args[2].parse()?;
    if runs == 0 {
        return Err("RUNS must be ≥ 1".into());
    }
    std::fs::create_dir_all(&out)?;
    let det = Detector::open(&bundle, &OpenOptions::default())?;
    let b = det.bundle();
    let m = &b.manifest;
    std::fs::write(out.join("velocity.onnx"), &b.onnx)?;

    let mut generation = Vec::new();
    // onnxruntime on one thread, then on its default (every core); PyTorch gets the same thread count.
    for threads in [1, 0] {
        let det = Detector::open(&bundle, &OpenOptions { threads, ..OpenOptions::default() })?;
        for &n in &GENERATE {
            let x0 = m.source.source().sample(&m.classifier.layout, n, &mut rng::rng(7));
            let go = || integrate(m.sampler, m.steps, x0.clone(), |x, t| det.velocity(x.view(), t), |_, _, _| Ok(()));
            let x1 = go()?; // warm-up (and the result the Python side must reproduce)
            let times = time(runs, || {
                go().expect("generation ran once already");
            });
            write(&out, &format!("gen_x0_{n}"), x0.view())?;
            write(&out, &format!("gen_x1_{n}"), x1.view())?;
            generation.push(json!({"m": n, "threads": threads, "ms": times}));
        }
    }

    let mlp = &m.classifier;
    let x = tile_rows(b.p_ref.view(), ROWS);
    write(&out, "fwd_x", x.view())?;
    let pool = det.pool();
    let mut forward = Vec::new();
    for &n in &FORWARD {
        let thetas = tile_rows(pool.view(), n);
        let logits = mlp.logits(thetas.view(), x.view())?;
        let times = time(runs, || {
            mlp.logits(thetas.view(), x.view()).expect("the forward ran once already");
        });
        write(&out, &format!("fwd_theta_{n}"), thetas.view())?;
        let flat = logits.into_shape_with_order((n * ROWS, mlp.n_classes()))?;
        write(&out, &format!("fwd_logits_{n}"), flat.view())?;
        forward.push(json!({"m": n, "rows": ROWS, "ms": times}));
    }

    let layers: Vec<_> = (0..mlp.layout.n_layers())
        .map(|l| {
            let (w, b) = mlp.layout.layer(l);
            json!({"w_offset": w.offset, "out": w.shape[0], "in": w.shape[1], "b_offset": b.offset})
        })
        .collect();
    let report = json!({
        "bundle": bundle.display().to_string(),
        "runs": runs,
        "sampler": m.sampler,
        "steps": m.steps,
        "dim": mlp.layout.dim(),
        "activation": mlp.activation,
        "layers": layers,
        "generation_onnxruntime": generation,
        "forward_native_1_thread": forward,
    });
    std::fs::write(out.join("rust.json"), serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.join("rust.json").display());
    Ok(())
}

/// `runs` wall times of `f` in ms.
fn time(runs: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

/// `n` rows cycling through the rows of `a`.
fn tile_rows(a: ArrayView2<'_, f32>, n: usize) -> Array2<f32> {
    let idx: Vec<usize> = (0..n).map(|i| i % a.nrows()).collect();
    a.select(Axis(0), &idx)
}

/// `a` as raw little-endian f32 at `dir/name.f32`.
fn write(dir: &Path, name: &str, a: ArrayView2<'_, f32>) -> std::io::Result<()> {
    let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.f32")), bytes)
}
