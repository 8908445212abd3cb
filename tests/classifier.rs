//! Integration tests of the classifier layer against an independent f64 reference written with plain loops.

use ndarray::{s, Array2, Axis};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use weightflow::classifier::{auroc, cross_entropy, Activation, Error, LossKind, Mlp, Target, Targets};
use weightflow::rng::{self, Rng};
use weightflow::space::Layout;

type TestResult = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------------------------------------
// f64 reference: θ = [W_0 (out×in, row-major), b_0, W_1, b_1, …], σ after every layer but the last.

fn sigma(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.tanh(),
        Activation::Silu => z / (1.0 + (-z).exp()),
        other => unreachable!("no reference for {other}"),
    }
}

/// Logits of one sample, and every pre-activation (for kink detection).
fn reference(sizes: &[usize], act: Activation, theta: &[f64], x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut h = x.to_vec();
    let mut pre = Vec::new();
    let mut off = 0;
    for l in 0..sizes.len() - 1 {
        let (n_in, n_out) = (sizes[l], sizes[l + 1]);
        let (w, b) = (&theta[off..off + n_out * n_in], &theta[off + n_out * n_in..off + n_out * n_in + n_out]);
        off += n_out * n_in + n_out;
        let mut z = vec![0.0; n_out];
        for o in 0..n_out {
            let mut acc = b[o];
            for i in 0..n_in {
                acc += w[o * n_in + i] * h[i];
            }
            z[o] = acc;
        }
        pre.extend_from_slice(&z);
        h = if l + 2 < sizes.len() { z.iter().map(|&v| sigma(act, v)).collect() } else { z };
    }
    assert_eq!(off, theta.len());
    (h, pre)
}

/// Σ_b w_b ℓ_b in f64, ℓ = logsumexp(z) − ⟨t, z⟩.
fn reference_loss(sizes: &[usize], act: Activation, theta: &[f64], x: &Array2<f32>, targets: &Targets) -> f64 {
    let mut total = 0.0;
    for (xb, t) in x.rows().into_iter().zip(targets.rows()) {
        let xb: Vec<f64> = xb.iter().map(|&v| v as f64).collect();
        let (z, _) = reference(sizes, act, theta, &xb);
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let n = z.len();
        let dot = match t.kind {
            LossKind::Ce => z[t.label],
            LossKind::Dce => (0..n).filter(|&c| c != t.label).map(|c| z[c]).sum::<f64>() / (n - 1) as f64,
            other => unreachable!("no reference for {other:?}"),
        };
        total += t.weight as f64 * (lse - dot);
    }
    total
}

fn normal(rng: &mut Rng, shape: (usize, usize), std: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn(shape, || {
        let z: f32 = StandardNormal.sample(rng);
        std * z
    })
}

/// M random classifiers: Gaussian weights scaled like Kaiming (std 1/√fan_in) times `gain`.
fn thetas(layout: &Layout, m: usize, gain: f32, rng: &mut Rng) -> Array2<f32> {
    let mut t = normal(rng, (m, layout.dim()), 1.0);
    for spec in layout.tensors() {
        t.slice_mut(s![.., spec.range()]).mapv_inplace(|v| v * gain / (spec.fan_in as f32).sqrt());
    }
    t
}

fn to64(v: ndarray::ArrayView1<f32>) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

// ---------------------------------------------------------------------------------------------------------

#[test]
fn batched_forward_matches_the_reference() -> TestResult {
    let cases = [
        ("9-16-16-2", Activation::Relu),
        ("64-32-10", Activation::Tanh),
        ("3-5-4-3", Activation::Silu),
        ("4-3", Activation::Relu),
    ];
    let mut rng = rng::rng(11);
    for (arch, act) in cases {
        let layout = Layout::parse(arch)?;
        let mlp = Mlp::new(layout.clone(), act);
        for m in [1, 7] {
            let th = thetas(&layout, m, 1.5, &mut rng);
            let x = normal(&mut rng, (13, layout.n_inputs()), 1.0);
            let logits = mlp.logits(th.view(), x.view())?;
            assert_eq!(logits.shape(), [m, 13, layout.n_outputs()]);
            // Column-major θ and a strided x take the same path after their layout is normalised.
            let th_f = th.t().as_standard_layout().into_owned().reversed_axes();
            // x at the even columns of a wider matrix: a view with column stride 2.
            let mut wide = normal(&mut rng, (x.nrows(), 2 * x.ncols()), 1.0);
            wide.slice_mut(s![.., ..;2]).assign(&x);
            let again = mlp.logits(th_f.view(), wide.slice(s![.., ..;2]))?;
            assert_eq!(again, logits);
            let probs = mlp.probabilities(th.view(), x.view())?;
            let pred = mlp.predict(th.view(), x.view())?;
            for mi in 0..m {
                let theta = to64(th.row(mi));
                let mut worst = 0f64;
                let mut scale = 0f64;
                for b in 0..13 {
                    let (z, _) = reference(layout.sizes(), act, &theta, &to64(x.row(b)));
                    for (c, &zc) in z.iter().enumerate() {
                        worst = worst.max((logits[[mi, b, c]] as f64 - zc).abs());
                        scale = scale.max(zc.abs());
                    }
                    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
                    for (c, &zc) in z.iter().enumerate() {
                        assert!((probs[[mi, b, c]] as f64 - (zc - max).exp() / sum).abs() < 1e-5);
                    }
                    let argmax = (0..z.len()).fold(0, |a, c| if z[c] > z[a] { c } else { a });
                    assert_eq!(pred[[mi, b]], argmax, "{arch} m={mi} b={b}");
                }
                // Relative to the classifier's largest logit.
                assert!(worst <= 1e-5 * scale.max(1e-3), "{arch} {act} M={m} #{mi}: error {worst} at scale {scale}");
            }
        }
    }
    Ok(())
}

fn loss_cases(rng: &mut Rng, batch: usize, n_classes: usize) -> Vec<(&'static str, Targets)> {
    let labels: Vec<usize> = (0..batch).map(|_| rng.random_range(0..n_classes)).collect();
    let (p, q) = labels.split_at(batch - 3);
    let mix = labels
        .iter()
        .map(|&label| Target {
            label,
            kind: if rng.random_bool(0.5) { LossKind::Ce } else { LossKind::Dce },
            weight: rng.random_range(-0.5..1.5),
        })
        .collect();
    vec![
        ("mean CE", Targets::cross_entropy(&labels)),
        ("mean DCE", Targets::disagreement(&labels)),
        ("cdc", Targets::cdc(p, q, None)),
        ("weighted mix", Targets::new(mix)),
    ]
}

#[test]
fn gradients_match_central_finite_differences() -> TestResult {
    let mut rng = rng::rng(23);
    for act in Activation::ALL {
        for arch in ["5-6-4-3", "4-7-2", "3-4"] {
            let layout = Layout::parse(arch)?;
            let sizes = layout.sizes().to_vec();
            let mlp = Mlp::new(layout.clone(), act);
            let (m, batch) = (3, 9);
            let th = thetas(&layout, m, 1.5, &mut rng);
            let x = normal(&mut rng, (batch, layout.n_inputs()), 1.0);
            for (name, targets) in loss_cases(&mut rng, batch, layout.n_outputs()) {
                let (losses, grads) = mlp.loss_and_grad(th.view(), x.view(), &targets)?;
                assert_eq!(grads.shape(), [m, layout.dim()]);
                let plain = mlp.loss(th.view(), x.view(), &targets)?;
                assert_eq!(plain, losses);
                let (mut checked, mut skipped) = (0, 0);
                for mi in 0..m {
                    let theta = to64(th.row(mi));
                    let l_ref = reference_loss(&sizes, act, &theta, &x, &targets);
                    assert!(
                        (losses[mi] as f64 - l_ref).abs() <= 1e-5 * l_ref.abs().max(1.0),
                        "{name}: {} vs {l_ref}",
                        losses[mi]
                    );
                    // Every coordinate of small layouts, a random subset of 40 otherwise.
                    let coords: Vec<usize> = if layout.dim() <= 60 {
                        (0..layout.dim()).collect()
                    } else {
                        (0..40).map(|_| rng.random_range(0..layout.dim())).collect()
                    };
                    let signs = |t: &[f64]| -> Vec<bool> {
                        x.rows()
                            .into_iter()
                            .flat_map(|xb| reference(&sizes, act, t, &to64(xb)).1)
                            .map(|z| z > 0.0)
                            .collect()
                    };
                    let base = signs(&theta);
                    for k in coords {
                        let h = 1e-5;
                        let (mut tp, mut tm) = (theta.clone(), theta.clone());
                        tp[k] += h;
                        tm[k] -= h;
                        if act == Activation::Relu && (signs(&tp) != base || signs(&tm) != base) {
                            skipped += 1; // a ReLU kink lies within ±h: no derivative to compare
                            continue;
                        }
                        let fd = (reference_loss(&sizes, act, &tp, &x, &targets)
                            - reference_loss(&sizes, act, &tm, &x, &targets))
                            / (2.0 * h);
                        let g = grads[[mi, k]] as f64;
                        let rel = (g - fd).abs() / fd.abs().max(1e-3);
                        assert!(rel < 1e-3, "{arch} {act} {name} #{mi} coord {k}: grad {g} vs fd {fd} (rel {rel})");
                        checked += 1;
                    }
                }
                assert!(skipped * 10 <= checked, "{arch} {act} {name}: {skipped} kinks vs {checked} checked");
            }
        }
    }
    Ok(())
}

#[test]
fn a_batch_of_classifiers_equals_its_members_run_alone() -> TestResult {
    let layout = Layout::parse("6-8-5-4")?;
    let mlp = Mlp::new(layout.clone(), Activation::Silu);
    let mut rng = rng::rng(5);
    let th = thetas(&layout, 5, 1.0, &mut rng);
    let x = normal(&mut rng, (11, 6), 1.0);
    let targets = Targets::cdc(&[0, 1, 2, 3, 0, 1, 2, 3], &[3, 2, 1], None);
    let (losses, grads) = mlp.loss_and_grad(th.view(), x.view(), &targets)?;
    let logits = mlp.logits(th.view(), x.view())?;
    let from_logits = targets.loss(logits.view())?;
    for mi in 0..5 {
        let one = th.slice(s![mi..mi + 1, ..]);
        let (l1, g1) = mlp.loss_and_grad(one, x.view(), &targets)?;
        assert!((l1[0] - losses[mi]).abs() <= 1e-6 * losses[mi].abs(), "{} vs {}", l1[0], losses[mi]);
        assert!((from_logits[mi] - losses[mi]).abs() <= 1e-6 * losses[mi].abs());
        for (a, b) in g1.row(0).iter().zip(grads.row(mi)) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
    Ok(())
}

#[test]
fn cdc_default_lambda_and_binary_dce() -> TestResult {
    // λ = 1/(|Q|+1): with |P| = 2, |Q| = 4 the Q rows weigh (1/5)/6.
    let t = Targets::cdc(&[0, 1], &[1, 0, 1, 1], None);
    assert!(t.rows()[2..].iter().all(|r| r.kind == LossKind::Dce && (r.weight - 0.2 / 6.0).abs() < 1e-9));
    assert!(t.rows()[..2].iter().all(|r| r.kind == LossKind::Ce && (r.weight - 1.0 / 6.0).abs() < 1e-9));
    // For N = 2, mean DCE of a batch equals mean CE with every label flipped, for M classifiers at once.
    let layout = Layout::parse("3-4-2")?;
    let mlp = Mlp::new(layout.clone(), Activation::Tanh);
    let mut rng = rng::rng(2);
    let th = thetas(&layout, 4, 1.0, &mut rng);
    let x = normal(&mut rng, (6, 3), 1.0);
    let y = [0, 1, 1, 0, 1, 0];
    let flipped: Vec<usize> = y.iter().map(|l| 1 - l).collect();
    let (dce, g_dce) = mlp.loss_and_grad(th.view(), x.view(), &Targets::disagreement(&y))?;
    let (ce, g_ce) = mlp.loss_and_grad(th.view(), x.view(), &Targets::cross_entropy(&flipped))?;
    for (a, b) in dce.iter().zip(&ce).chain(g_dce.iter().zip(&g_ce)) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    Ok(())
}

#[test]
fn softmax_is_normalised_and_survives_huge_logits() -> TestResult {
    // A linear 2-3 classifier whose logits on x = (1, 0) are (1e4, −1e4, 0).
    let mlp = Mlp::new(Layout::parse("2-3")?, Activation::Relu);
    let th = Array2::from_shape_vec((1, 9), vec![1e4f32, 0.0, -1e4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])?;
    let x = Array2::from_shape_vec((2, 2), vec![1.0f32, 0.0, -1.0, 0.0])?;
    let p = mlp.probabilities(th.view(), x.view())?;
    assert_eq!(p.slice(s![0, 0, ..]).to_vec(), [1.0, 0.0, 0.0]);
    assert_eq!(p.slice(s![0, 1, ..]).to_vec(), [0.0, 1.0, 0.0]);
    // CE((1e4, −1e4, 0), 1) = 2e4 and DCE((−1e4, 1e4, 0), 0) = 1e4 − (1e4 + 0)/2 = 5e3, up to e^{-1e4};
    // the gradient stays finite.
    let (loss, grad) = mlp.loss_and_grad(
        th.view(),
        x.view(),
        &Targets::new(vec![
            Target { label: 1, kind: LossKind::Ce, weight: 1.0 },
            Target { label: 0, kind: LossKind::Dce, weight: 1.0 },
        ]),
    )?;
    assert!((loss[0] - 2.5e4).abs() < 1e-2, "{loss}");
    assert!(grad.iter().all(|g| g.is_finite()));
    assert_eq!(cross_entropy(&[1e4, -1e4, 0.0], 1)?, 2e4);
    // Random classifiers: every row sums to 1.
    let layout = Layout::parse("5-7-6")?;
    let mlp = Mlp::new(layout.clone(), Activation::Relu);
    let mut rng = rng::rng(9);
    let p = mlp.probabilities(thetas(&layout, 3, 4.0, &mut rng).view(), normal(&mut rng, (10, 5), 3.0).view())?;
    for row in p.lanes(Axis(2)) {
        assert!((row.sum() - 1.0).abs() < 1e-6 && row.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
    Ok(())
}

#[test]
fn auroc_matches_a_pair_count() -> TestResult {
    // Hand example with a cross-class pair (0.35 < 0.4): 3 of 4 pairs ordered → 0.75.
    assert_eq!(auroc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1])?, Some(0.75));
    let mut rng = rng::rng(4);
    for n in [2usize, 7, 200] {
        // Scores on a coarse grid, so that ties are frequent.
        let scores: Vec<f32> = (0..n).map(|_| rng.random_range(0..6) as f32 / 5.0).collect();
        let mut y: Vec<usize> = (0..n).map(|_| rng.random_range(0..2)).collect();
        y[0] = 0;
        y[n - 1] = 1;
        let (mut wins, mut pairs) = (0.0, 0.0);
        for i in (0..n).filter(|&i| y[i] == 1) {
            for j in (0..n).filter(|&j| y[j] == 0) {
                pairs += 1.0;
                wins += if scores[i] > scores[j] {
                    1.0
                } else if scores[i] == scores[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let a = auroc(&scores, &y)?.expect("both classes present");
        assert!((a - wins / pairs).abs() < 1e-12, "n={n}: {a} vs {}", wins / pairs);
    }
    assert_eq!(auroc(&[0.1, 0.2], &[0, 0])?, None);
    Ok(())
}

#[test]
fn bad_inputs_are_errors_with_their_details() -> TestResult {
    let layout = Layout::parse("3-4-2")?; // D = 16 + 10 = 26
    let mlp = Mlp::new(layout, Activation::Relu);
    let th = Array2::<f32>::zeros((2, 26));
    let x = Array2::<f32>::zeros((5, 3));
    let y = Targets::cross_entropy(&[0, 1, 0, 1, 1]);

    let e = mlp.logits(Array2::zeros((2, 25)).view(), x.view()).unwrap_err();
    assert_eq!(e, Error::ThetaDim { arch: "3-4-2".into(), expected: 26, got: 25 });
    assert_eq!(e.to_string(), "weight matrix has 25 columns, the layout 3-4-2 needs D = 26");

    let e = mlp.predict(th.view(), Array2::zeros((5, 4)).view()).unwrap_err();
    assert_eq!(e, Error::InputWidth { expected: 3, got: 4 });
    assert_eq!(e.to_string(), "inputs have 4 features, the classifier takes 3");

    let e = mlp.loss(th.view(), x.view(), &Targets::cross_entropy(&[0, 1, 2, 0, 0])).unwrap_err();
    assert_eq!(e, Error::Label { row: 2, label: 2, n_classes: 2 });
    assert_eq!(e.to_string(), "label 2 at row 2 is out of range for 2 classes");

    let e = mlp.probabilities(Array2::zeros((0, 26)).view(), x.view()).unwrap_err();
    assert_eq!(e, Error::Empty { what: "thetas" });
    let e = mlp.loss_and_grad(th.view(), Array2::zeros((0, 3)).view(), &y).unwrap_err();
    assert_eq!(e, Error::Empty { what: "x" });
    assert_eq!(e.to_string(), "x is empty");

    let e = mlp.loss_and_grad(th.view(), x.view(), &Targets::cross_entropy(&[0, 1])).unwrap_err();
    assert_eq!(e, Error::Length { what: "targets", expected: 5, got: 2 });

    let mut bad_x = x.clone();
    bad_x[[3, 1]] = f32::NAN;
    let e = mlp.logits(th.view(), bad_x.view()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { what: "x", row: 3, col: 1, value } if value.is_nan()), "{e}");
    assert_eq!(e.to_string(), "x holds a non-finite value NaN at row 3, column 1");

    let mut bad_th = th.clone();
    bad_th[[1, 20]] = f32::INFINITY;
    let e = mlp.loss_and_grad(bad_th.view(), x.view(), &y).unwrap_err();
    assert_eq!(e, Error::NonFinite { what: "thetas", row: 1, col: 20, value: f32::INFINITY });

    let one_class = Mlp::new(Layout::parse("3-1")?, Activation::Relu);
    let e = one_class.loss(Array2::zeros((1, 4)).view(), x.view(), &Targets::disagreement(&[0; 5])).unwrap_err();
    assert_eq!(e, Error::TooFewClasses { n_classes: 1 });
    assert!(e.to_string().contains("at least 2 classes"));
    Ok(())
}

#[test]
fn chunked_batches_equal_single_runs() -> TestResult {
    // 100-64-64-2 (D = 10,754: too large for the fused pass, so the GEMM pass runs in chunks) on B = 1000 keeps
    // 1000·130·4·2 B ≈ 1 MiB per classifier for backprop, so 40 classifiers span more than one 32 MiB chunk;
    // members on both sides of the boundary must match single runs.
    let layout = Layout::parse("100-64-64-2")?;
    let mlp = Mlp::new(layout.clone(), Activation::Tanh);
    let mut rng = rng::rng(8);
    let th = thetas(&layout, 40, 1.0, &mut rng);
    let x = normal(&mut rng, (1000, 100), 1.0);
    let y: Vec<usize> = (0..1000).map(|i| i % 2).collect();
    let targets = Targets::cross_entropy(&y);
    let (losses, grads) = mlp.loss_and_grad(th.view(), x.view(), &targets)?;
    let logits = mlp.logits(th.view(), x.view())?;
    assert_eq!(mlp.loss(th.view(), x.view(), &targets)?, losses);
    for mi in [0, 30, 31, 32, 33, 39] {
        let one = th.slice(s![mi..mi + 1, ..]);
        let (l1, g1) = mlp.loss_and_grad(one, x.view(), &targets)?;
        // Equal up to GEMM summation order.
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
        assert!(close(l1[0], losses[mi]), "#{mi}: {} vs {}", l1[0], losses[mi]);
        assert!(g1.row(0).iter().zip(grads.row(mi)).all(|(&a, &b)| close(a, b)), "#{mi}");
        let l_one = mlp.logits(one, x.view())?;
        let l_all = logits.index_axis(Axis(0), mi);
        assert!(l_one.iter().zip(l_all).all(|(&a, &b)| close(a, b)), "#{mi}");
    }
    Ok(())
}
