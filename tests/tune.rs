//! Integration tests of reward fine-tuning: reward gradients against f64 finite differences of an independent
//! f64 implementation, the memoryless schedule against sampled moments, the closed-form tilt of a Gaussian
//! toy, the tuned model's save/load, and refused inputs.
#![cfg(feature = "train")]

use candle_core::Device;
use ndarray::{array, Array1, Array2, ArrayView1, ArrayView2};
use rand_distr::{Distribution, StandardNormal};
use weightflow::classifier::{Activation, Mlp};
use weightflow::flow::{train_meta, MetaModel, MetaTrainConfig, NetConfig, Objective, Sampler, Scaling};
use weightflow::rng;
use weightflow::space::{Layout, SourceKind};
use weightflow::tune::{
    memoryless_sigma, source_variance, AdjointConfig, AdjointMatching, CdcReward, Error, GaussianToy, LinearReward,
    QuadraticReward, Reward, TaskReward,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn normal(shape: (usize, usize), seed: u64) -> Array2<f32> {
    let mut r = rng::rng(seed);
    Array2::from_shape_fn(shape, |_| StandardNormal.sample(&mut r))
}

/// An independent f64 tanh MLP: logits of θ (layout order: per layer weight `[out, in]` row-major, then
/// bias) on one input row.
fn logits_f64(layout: &Layout, theta: &[f64], x: ArrayView1<f32>) -> Vec<f64> {
    let sizes = layout.sizes();
    let mut h: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut off = 0;
    for l in 0..sizes.len() - 1 {
        let (din, dout) = (sizes[l], sizes[l + 1]);
        let w = &theta[off..off + din * dout];
        let b = &theta[off + din * dout..off + din * dout + dout];
        off += din * dout + dout;
        let z: Vec<f64> = (0..dout).map(|o| b[o] + (0..din).map(|i| w[o * din + i] * h[i]).sum::<f64>()).collect();
        h = if l + 2 < sizes.len() { z.iter().map(|v| v.tanh()).collect() } else { z };
    }
    h
}

fn lse(z: &[f64]) -> f64 {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// Central differences (f64) of `f` at θ against the reward's analytic gradient, on every coordinate.
fn check_gradient(reward: &dyn Reward, theta: ArrayView1<f32>, f: impl Fn(&[f64]) -> f64, tol: f64) -> TestResult {
    let (r, g) = reward.reward_and_grad(theta.insert_axis(ndarray::Axis(0)))?;
    let t64: Vec<f64> = theta.iter().map(|&v| v as f64).collect();
    assert!((r[0] as f64 - f(&t64)).abs() < 1e-4 * (1.0 + f(&t64).abs()), "reward {} vs f64 {}", r[0], f(&t64));
    let eps = 1e-5;
    for j in 0..t64.len() {
        let (mut p, mut m) = (t64.clone(), t64.clone());
        p[j] += eps;
        m[j] -= eps;
        let fd = (f(&p) - f(&m)) / (2.0 * eps);
        assert!((fd - g[[0, j]] as f64).abs() < tol * (1.0 + fd.abs()), "coordinate {j}: fd {fd} vs {}", g[[0, j]]);
    }
    Ok(())
}

#[test]
fn reward_gradients_match_f64_finite_differences() -> TestResult {
    let layout = Layout::parse("3-4-2")?;
    let mlp = Mlp::new(layout.clone(), Activation::Tanh);
    let theta = normal((1, layout.dim()), 1).row(0).to_owned();
    let x = normal((7, 3), 2);
    let y = vec![0, 1, 1, 0, 1, 0, 0];

    // Task: −(1/B) Σ CE.
    let task = TaskReward::new(mlp.clone(), x.clone(), &y)?;
    let task_f = |t: &[f64]| -> f64 {
        -(0..7)
            .map(|b| {
                let z = logits_f64(&layout, t, x.row(b));
                lse(&z) - z[y[b]]
            })
            .sum::<f64>()
            / 7.0
    };
    check_gradient(&task, theta.view(), task_f, 1e-3)?;

    // CDC: P = first 5 rows, Q = last 2, pseudo-labels of an independent f; λ = 1/(|Q|+1).
    let f = normal((1, layout.dim()), 3).row(0).to_owned();
    let (p, q) = (x.slice(ndarray::s![..5, ..]), x.slice(ndarray::s![5.., ..]));
    let cdc = CdcReward::new(mlp.clone(), f.view(), p, q, None)?;
    let f64v: Vec<f64> = f.iter().map(|&v| v as f64).collect();
    let yhat: Vec<usize> = (0..7)
        .map(|b| {
            let z = logits_f64(&layout, &f64v, x.row(b));
            usize::from(z[1] > z[0])
        })
        .collect();
    assert_eq!(cdc.pseudo_labels(), yhat.as_slice());
    let cdc_f = |t: &[f64]| -> f64 {
        let lambda = 1.0 / 3.0;
        let mut l = 0.0;
        for b in 0..7 {
            let z = logits_f64(&layout, t, x.row(b));
            // Two classes: DCE is CE against the other class.
            l += if b < 5 { lse(&z) - z[yhat[b]] } else { lambda * (lse(&z) - z[1 - yhat[b]]) };
        }
        -l / 7.0
    };
    check_gradient(&cdc, theta.view(), cdc_f, 1e-3)?;

    // Closed forms.
    let a = array![0.5f32, -2.0, 1.5];
    let lin = LinearReward { a: a.clone() };
    check_gradient(&lin, array![0.3f32, 0.1, -0.7].view(), |t| 0.5 * t[0] - 2.0 * t[1] + 1.5 * t[2], 1e-6)?;
    let quad = QuadraticReward { center: array![1.0f32, -1.0, 0.0], curvature: 0.8 };
    let quad_f = |t: &[f64]| -0.4 * ((t[0] - 1.0).powi(2) + (t[1] + 1.0).powi(2) + t[2].powi(2));
    check_gradient(&quad, array![0.3f32, 0.1, -0.7].view(), quad_f, 1e-5)?;
    Ok(())
}

#[test]
fn cdc_agreement_counts_rows_by_hand() -> TestResult {
    // Linear 1-2 classifiers: logits (w0 x + b0, w1 x + b1); f predicts class 1 iff x > 0.
    let mlp = Mlp::new(Layout::parse("1-2")?, Activation::Relu);
    let f = array![-1.0f32, 1.0, 0.0, 0.0];
    let p = array![[1.0f32], [-1.0], [2.0]];
    let q = array![[3.0f32], [-3.0]];
    let cdc = CdcReward::new(mlp, f.view(), p.view(), q.view(), None)?;
    assert_eq!(cdc.pseudo_labels(), [1, 0, 1, 1, 0]);
    // g = f agrees everywhere; g = −f disagrees everywhere; g predicting class 1 always: P 2/3, Q 1/2.
    let thetas = array![[-1.0f32, 1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
    let (agree, disagree) = cdc.agreement(thetas.view())?;
    assert_eq!(agree.to_vec(), [1.0, 0.0, 2.0 / 3.0]);
    assert_eq!(disagree.to_vec(), [0.0, 1.0, 0.5]);
    Ok(())
}

#[test]
fn source_variance_matches_sampled_moments_and_sigma_the_closed_form() -> TestResult {
    let layout = Layout::parse("4-3-2")?;
    let scaling = Scaling { scales: vec![0.5, 2.0, 1.0, 0.25] };
    for kind in [SourceKind::Kaiming, SourceKind::Gaussian] {
        let var = source_variance(&layout, kind, &scaling)?;
        let x = kind.source().sample(&layout, 20_000, &mut rng::rng(5));
        let z = scaling.to_flow(&layout, x.view())?;
        for (j, col) in z.columns().into_iter().enumerate() {
            let m = col.iter().map(|&v| v as f64).sum::<f64>() / col.len() as f64;
            let v = col.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / col.len() as f64;
            assert!((v / var[j] as f64 - 1.0).abs() < 0.05, "{kind:?} coordinate {j}: sampled {v} vs {}", var[j]);
        }
    }
    let s = memoryless_sigma(&[2.0, 0.5], 0.25);
    // σ² = 2 v0 (1 − t)/t = 2·v0·3.
    assert!((s[0] as f64 - 12f64.sqrt()).abs() < 1e-6 && (s[1] as f64 - 3f64.sqrt()).abs() < 1e-6);
    assert_eq!(memoryless_sigma(&[1.0], 1.0), [0.0]);
    Ok(())
}

/// The "done when" of issue 4: a CFM meta-model of N(μ, Σ) from the Gaussian source, tuned with r(θ) = a·θ,
/// generates N(μ + λΣa, Σ) within 5% (relative, mean and covariance, 8,192 samples). The base measured at
/// 1.1% (mean) and 3.1% (covariance) of N(μ, Σ) (docs/TUNE.md), so 5% leaves the tuning ~2 points.
#[test]
fn linear_reward_tilts_a_gaussian_meta_model_to_the_closed_form() -> TestResult {
    let toy = GaussianToy::standard();
    let source = SourceKind::Gaussian;
    let base = toy.train_base(source)?;
    let (a, lambda) = (array![1.0, -1.0], 2.0);
    let tilted = toy.tilted_linear(a.view(), lambda);
    let base_samples = base.generate(8192, Sampler::Rk4, 50, 7)?;
    let (bm, bc) = toy.relative_errors(base_samples.view());
    assert!(bm < 0.03 && bc < 0.05, "base vs N(μ, Σ): mean {bm:.4}, covariance {bc:.4}");
    let (um, _) = tilted.relative_errors(base_samples.view());
    assert!(um > 0.3, "the untuned model is already near the tilt ({um:.4}): the check would prove nothing");

    let reward = LinearReward { a: a.mapv(|v| v as f32) };
    let cfg = GaussianToy::tune_config(lambda, 150);
    let mut am = AdjointMatching::new(&base, &reward, cfg.clone())?;
    for _ in 0..cfg.iterations {
        am.step()?;
    }
    let tuned = am.model()?;
    let (tm, tc) = tilted.relative_errors(tuned.generate(8192, Sampler::Rk4, 50, 7)?.view());
    assert!(tm < 0.05 && tc < 0.05, "tuned vs tilt: mean {tm:.4}, covariance {tc:.4}");

    // The tuned model saves and loads like any meta-model, records its tuning, and generates the same.
    let dir = tempfile::tempdir()?;
    tuned.save(dir.path(), "relu")?;
    let back = MetaModel::load(dir.path(), &Device::Cpu)?;
    let rec = back.tuning().expect("a tuning record");
    assert_eq!((rec.lambda, rec.iterations, rec.method.as_str()), (lambda, 150, "adjoint-matching"));
    assert_eq!(rec.base_weights_sha256, base.weights_sha256()?);
    assert!(rec.reward.starts_with("linear"));
    assert_eq!(back.generate(64, Sampler::Euler, 10, 3)?, tuned.generate(64, Sampler::Euler, 10, 3)?);
    assert!(base.tuning().is_none());
    Ok(())
}

#[test]
fn bad_settings_and_inputs_are_refused_with_clear_errors() -> TestResult {
    let bad = |c: AdjointConfig, field: &str| match c.validate() {
        Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
        other => panic!("{field}: expected a config error, got {other:?}"),
    };
    bad(AdjointConfig { lambda: f64::NAN, ..Default::default() }, "lambda");
    bad(AdjointConfig { iterations: 0, ..Default::default() }, "iterations");
    bad(AdjointConfig { steps: 3, ..Default::default() }, "steps");
    bad(AdjointConfig { lr: 0.0, ..Default::default() }, "lr");
    bad(AdjointConfig { grad_clip: -1.0, ..Default::default() }, "grad_clip");
    bad(AdjointConfig { random_fraction: 1.5, ..Default::default() }, "random_fraction");
    assert!(AdjointConfig::default().validate().is_ok());

    let mlp = Mlp::new(Layout::parse("3-2")?, Activation::Relu);
    assert!(matches!(TaskReward::new(mlp.clone(), normal((4, 3), 1), &[0, 1]), Err(Error::Shape { .. })));
    assert!(matches!(TaskReward::new(mlp.clone(), normal((2, 5), 1), &[0, 1]), Err(Error::Shape { .. })));
    assert!(matches!(TaskReward::new(mlp.clone(), normal((2, 3), 1), &[0, 7]), Err(Error::Classifier(_))));
    let lin = LinearReward { a: array![1.0f32, 2.0] };
    assert!(matches!(lin.reward_and_grad(Array2::zeros((2, 3)).view()), Err(Error::Shape { .. })));

    // A JKO potential has no velocity field to fine-tune.
    let layout = GaussianToy::layout();
    let traj = GaussianToy::standard().trajectories(SourceKind::Gaussian, 16, 0);
    let cfg = MetaTrainConfig {
        objective: Objective::Jko,
        intermediates: 0,
        align: false,
        steps: 2,
        net: NetConfig { hidden: vec![8], time_dim: 4, cond_dim: 0 },
        ..MetaTrainConfig::for_objective(Objective::Jko)
    };
    let jko = train_meta(&layout, traj.view(), &cfg, &Device::Cpu, &mut |_, _, _| {})?;
    let reward = LinearReward { a: Array1::ones(2) };
    assert!(matches!(AdjointMatching::new(&jko, &reward, AdjointConfig::default()), Err(Error::Unsupported { .. })));

    // A reward whose gradient has the wrong shape is reported, not trusted.
    struct Broken;
    impl Reward for Broken {
        fn reward_and_grad(&self, t: ArrayView2<f32>) -> weightflow::tune::Result<(Array1<f32>, Array2<f32>)> {
            Ok((Array1::zeros(t.nrows()), Array2::zeros((t.nrows(), 1))))
        }
        fn describe(&self) -> String {
            "broken".into()
        }
    }
    let cfm_cfg = MetaTrainConfig { steps: 2, ..GaussianToy::meta_config(SourceKind::Gaussian) };
    let cfm = train_meta(&layout, traj.view(), &cfm_cfg, &Device::Cpu, &mut |_, _, _| {})?;
    let mut am = AdjointMatching::new(&cfm, &Broken, AdjointConfig { batch_size: 4, steps: 4, ..Default::default() })?;
    assert!(matches!(am.step(), Err(Error::Shape { what: "reward output", .. })));
    Ok(())
}
