//! Integration tests of the evaluation layer: every metric against a hand-computed case or a closed form,
//! the generation report's JSON shape, and the SVG chart's well-formedness.

use ndarray::{array, s, Array1, Array2, Array3, Axis};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::Dataset;
use weightflow::eval::{
    self, constant_predictors, error_iou, evaluate_generation, mean_pairwise_disagreement, mean_weight_norm,
    nn_distance, nn_distance_loo, spread, steps_to_accuracy, svg_line_plot, w1_exact, w1_sliced, EvalData,
    FinetuneConfig, GenerationConfig, GenerationInputs, InitTarget, Labelled, W1Config, W1Method,
};
use weightflow::rng;
use weightflow::space::{KaimingUniform, Layout, Source as _};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Two Gaussian blobs N(±(1.5, 1.5), 0.5² I), labels 1 for the positive one; rows alternate classes.
fn blobs(n: usize, seed: u64) -> Dataset {
    noisy_blobs(n, seed, 0.5)
}

/// The blobs with standard deviation `sd` (1.2: the Bayes classifier errs on Φ(−1.5√2/1.2) ≈ 4% of rows).
fn noisy_blobs(n: usize, seed: u64, sd: f32) -> Dataset {
    let mut r = rng::rng(seed);
    let mut x = Array2::<f32>::zeros((n, 2));
    let mut y = Vec::with_capacity(n);
    for (i, mut row) in x.outer_iter_mut().enumerate() {
        let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
        for v in row.iter_mut() {
            let z: f32 = StandardNormal.sample(&mut r);
            *v = sign * 1.5 + sd * z;
        }
        y.push(usize::from(sign > 0.0));
    }
    Dataset::new(x, y, 2, "blobs").expect("a valid data set")
}

/// A linear 2-2 classifier separating the blobs: z = (−x₀ − x₁, x₀ + x₁) · scale.
fn separator(scale: f32) -> Array1<f32> {
    Array1::from(vec![-scale, -scale, scale, scale, 0.0, 0.0])
}

#[test]
fn diversity_of_identical_and_hand_computed_classifiers() -> TestResult {
    let same = array![[0usize, 1, 1, 0, 1], [0, 1, 1, 0, 1]];
    assert_eq!(mean_pairwise_disagreement(same.view())?, Some(0.0));
    assert_eq!(error_iou(same.view(), &[0, 1, 0, 0, 0])?, Some(1.0));
    // Complementary predictions on binary labels: disagree everywhere; error sets are complements (IoU 0).
    let opposite = array![[0usize, 1, 1], [1, 0, 0]];
    assert_eq!(mean_pairwise_disagreement(opposite.view())?, Some(1.0));
    assert_eq!(error_iou(opposite.view(), &[0, 0, 0])?, Some(0.0));
    Ok(())
}

#[test]
fn collapse_diagnostics_by_hand() -> TestResult {
    // Spread of {0, e1, e2} = (1 + 1 + √2)/3; mean norm (0 + 1 + 1)/3.
    let t = array![[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    assert!((spread(t.view())? - (2.0 + 2f64.sqrt()) / 3.0).abs() < 1e-6);
    assert!((mean_weight_norm(t.view())? - 2.0 / 3.0).abs() < 1e-12);
    // On a real forward pass: the zero classifier predicts class 0 everywhere (ties go to the first class), a
    // classifier with only a bias towards class 1 predicts 1 everywhere, the separator is not constant.
    let mlp = Mlp::new(Layout::parse("2-2")?, Activation::Relu);
    let data = blobs(20, 1);
    let thetas = ndarray::stack![
        Axis(0),
        Array1::<f32>::zeros(6),
        Array1::from(vec![0.0f32, 0.0, 0.0, 0.0, 0.0, 1.0]),
        separator(1.0)
    ];
    let preds = mlp.predict(thetas.view(), data.x.view())?;
    assert_eq!(constant_predictors(preds.view())?, 2);
    Ok(())
}

#[test]
fn nearest_neighbour_distances_on_a_grid() -> TestResult {
    // Reference: the grid {0, 2, 4}³ (27 points, spacing 2). The generated points are grid points moved by
    // (0.5, 0, 0), (0.3, 0.4, 0) and (1, 1, 1) (its nearest grid point stays the same: distance √3).
    let grid = Array2::from_shape_fn((27, 3), |(i, c)| (2 * ((i / 3usize.pow(c as u32)) % 3)) as f32);
    let gen = array![[0.5f32, 0.0, 0.0], [2.3, 2.4, 4.0], [1.0, 1.0, 1.0]];
    assert!((nn_distance(gen.view(), grid.view())? - (0.5 + 0.5 + 3f64.sqrt()) / 3.0).abs() < 1e-6);
    assert!((nn_distance_loo(grid.view())? - 2.0).abs() < 1e-12);
    // A copy of the reference has distance 0: memorisation looks like this.
    assert_eq!(nn_distance(grid.view(), grid.view())?, 0.0);
    Ok(())
}

#[test]
fn w1_closed_forms() -> TestResult {
    let mut r = rng::rng(7);
    let a = Array2::<f32>::from_shape_fn((64, 3), |_| StandardNormal.sample(&mut r));
    assert!(w1_exact(a.view(), a.view())? < 1e-12);
    // A translated copy: W1 = ‖v‖ (Jensen's lower bound ‖E b − E a‖, attained by the identity matching).
    let v = Array1::from(vec![1.0f32, -2.0, 2.0]);
    let b = &a + &v.view().insert_axis(Axis(0));
    assert!((w1_exact(a.view(), b.view())? - 3.0).abs() < 1e-5);
    // Sliced: E_u |⟨u, v⟩| = ‖v‖ Γ(D/2) / (√π Γ((D+1)/2)) = ‖v‖/2 for D = 3; and 2‖v‖/π for D = 2.
    let sw = w1_sliced(a.view(), b.view(), 4000, 1)?;
    assert!((sw - 1.5).abs() < 0.03, "{sw}");
    let a2 = a.slice(s![.., ..2]).to_owned();
    let b2 = &a2 + &array![3.0f32, 4.0].view().insert_axis(Axis(0));
    let sw2 = w1_sliced(a2.view(), b2.view(), 4000, 2)?;
    assert!((sw2 - 10.0 / std::f64::consts::PI).abs() < 0.06, "{sw2}");
    // Unequal sizes: a sample against itself twice over is the same measure.
    let doubled = ndarray::concatenate![Axis(0), a, a];
    assert!(w1_sliced(a.view(), doubled.view(), 50, 3)? < 1e-6);
    Ok(())
}

#[test]
fn steps_to_accuracy_is_zero_for_a_perfect_init_and_finite_for_a_learnable_problem() -> TestResult {
    let mlp = Mlp::new(Layout::parse("2-2")?, Activation::Relu);
    let (train, val) = (blobs(200, 2), blobs(100, 3));
    let perfect = separator(2.0).insert_axis(Axis(0)).to_owned();
    let acc = eval::accuracy_stats(&mlp, perfect.view(), val.x.view(), &val.y)?;
    assert!(acc.stats.mean >= 0.99, "the blobs are separable: {acc:?}");
    let cfg = FinetuneConfig::new(0.95);
    let s = steps_to_accuracy(&mlp, perfect.view(), (&train).into(), (&val).into(), &cfg)?;
    assert_eq!(s.per_classifier, [Some(0)]);
    assert_eq!((s.mean, s.median), (0.0, Some(0.0)));

    // From Kaiming inits (some start on the wrong side): every one gets there, full batch and minibatch.
    let mlp = Mlp::new(Layout::parse("2-4-2")?, Activation::Relu);
    let init = KaimingUniform.sample(&mlp.layout, 8, &mut rng::rng(4));
    for batch_size in [None, Some(32)] {
        let cfg = FinetuneConfig { batch_size, lr: 0.05, max_steps: 300, ..FinetuneConfig::new(0.95) };
        let s = steps_to_accuracy(&mlp, init.view(), Labelled::from(&train), Labelled::from(&val), &cfg)?;
        assert_eq!(s.reached, 8, "{batch_size:?}: {s:?}");
        assert!(s.per_classifier.iter().flatten().all(|&k| k % cfg.eval_every == 0 && k <= 300));
        assert!(s.mean > 0.0 && s.mean <= 300.0);
        // Deterministic.
        assert_eq!(s, steps_to_accuracy(&mlp, init.view(), (&train).into(), (&val).into(), &cfg)?);
    }
    // An unreachable target within a tiny budget: None, and the mean counts the budget.
    let cfg = FinetuneConfig { max_steps: 3, eval_every: 1, ..FinetuneConfig::new(1.0) };
    let zero = Array2::<f32>::zeros((2, mlp.layout.dim()));
    let s = steps_to_accuracy(&mlp, zero.view(), (&train).into(), (&val).into(), &cfg)?;
    assert_eq!((s.per_classifier.clone(), s.mean, s.median), (vec![None, None], 3.0, None));
    Ok(())
}

/// A toy "meta-model world": R runs of a 2-2 classifier whose trajectories go straight from a Kaiming init to a
/// noisy copy of the separator, and generated samples drawn the same way.
fn toy_world(r: usize, k: usize, seed: u64) -> Array3<f32> {
    let layout = Layout::parse("2-2").expect("a valid architecture");
    let mut g = rng::rng(seed);
    let init = KaimingUniform.sample(&layout, r, &mut g);
    let mut traj = Array3::<f32>::zeros((r, k + 1, 6));
    for run in 0..r {
        let fin =
            separator(1.0 + g.random_range(0.0..1.0f32)) + &Array1::from_shape_fn(6, |_| g.random_range(-0.2..0.2f32));
        for c in 0..=k {
            let t = c as f32 / k as f32;
            traj.slice_mut(s![run, c, ..]).assign(&(&init.row(run) * (1.0 - t) + &fin * t));
        }
    }
    traj
}

#[test]
fn the_generation_report_has_its_stable_json_shape() -> TestResult {
    let mlp = Mlp::new(Layout::parse("2-2")?, Activation::Relu);
    // Noisy blobs, so that every classifier errs on some test rows and the error IoUs are defined.
    let data =
        EvalData { train: noisy_blobs(100, 10, 1.2), val: noisy_blobs(60, 11, 1.2), test: noisy_blobs(80, 12, 1.2) };
    let (k, r) = (4, 24);
    let trajectories = toy_world(r, k, 1);
    // Best-of-2 over 20 generated rows; the path is another world's trajectories, state k at t = k/4.
    let other = toy_world(20, k, 2);
    let generated = other.index_axis(Axis(1), k).to_owned();
    let path: Vec<(f32, Array2<f32>)> =
        (0..=k).map(|c| (c as f32 / k as f32, other.index_axis(Axis(1), c).to_owned())).collect();
    let cfg = GenerationConfig {
        best_of_k: 2,
        init_n: 4,
        init_target: InitTarget::Absolute(0.8),
        finetune: FinetuneConfig { lr: 0.05, max_steps: 100, ..FinetuneConfig::new(0.0) },
        ..GenerationConfig::default()
    };
    let inputs = GenerationInputs {
        mlp: &mlp,
        generated: generated.view(),
        path: &path,
        trajectories: trajectories.view(),
        data: &data,
    };
    let mut report = evaluate_generation(&inputs, &cfg)?;
    assert!(report.generated.accuracy_mean > 0.85 && report.trained.accuracy_mean > 0.85, "{report:?}");
    assert!(report.generated.accuracy_min <= report.generated.accuracy_mean);
    assert_eq!(report.w1.method, W1Method::Exact);
    assert_eq!(report.w1.n, 20);
    assert_eq!(report.w1.t, [0.0, 0.25, 0.5, 0.75, 1.0]);
    assert!(report.w1.generated.iter().all(|w| w.is_some_and(|w| w.is_finite() && w >= 0.0)));
    assert_eq!(report.constant_predictors.generated, 0);
    assert!(report.weight_norm.generated > 0.0 && report.spread.trained > 0.0);
    assert_eq!(report.path_loss.len(), k + 1);
    // The loss falls from the Kaiming inits to the separators.
    assert!(report.path_loss[k].loss < report.path_loss[0].loss);
    let init = report.init_steps.as_ref().expect("init_n > 0");
    assert_eq!((init.generated.n, init.kaiming.n), (4, 4));
    assert_eq!(init.generated.per_classifier, [Some(0); 4], "the generated nets are already accurate");
    assert_eq!(report.best_of_k.k, 2);
    assert!(report.best_of_k.accuracy_mean >= report.generated.accuracy_mean - 0.05);

    // The caller fills the Gaussian-source column from a second path with the same settings.
    let marg = eval::w1_per_marginal(&path[..1], trajectories.view(), &cfg.w1, cfg.time_tolerance)?;
    assert_eq!(marg.values[0], report.w1.generated[0]);
    assert!(marg.values[1..].iter().all(Option::is_none), "only t = 0 is on that path");
    report.w1.gaussian_source = Some(marg.values);

    let json = serde_json::to_value(&report)?;
    let keys: Vec<&str> = json.as_object().expect("an object").keys().map(String::as_str).collect();
    let mut expected = vec![
        "generated",
        "trained",
        "w1",
        "nn_distance",
        "error_iou",
        "init_steps",
        "constant_predictors",
        "weight_norm",
        "spread",
        "disagreement",
        "best_of_k",
        "path_loss",
    ];
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys_sorted, expected);
    for acc in ["generated", "trained"] {
        for key in ["accuracy_mean", "accuracy_min", "accuracy_max"] {
            assert!(json[acc][key].is_f64(), "{acc}.{key}");
        }
    }
    for pair in ["nn_distance", "error_iou", "constant_predictors", "weight_norm", "spread", "disagreement"] {
        assert!(json[pair]["generated"].is_number() && json[pair]["trained"].is_number(), "{pair}: {}", json[pair]);
    }
    assert!(json["init_steps"]["generated"]["mean"].is_number() && json["init_steps"]["kaiming"]["n"] == 4);
    assert!(json["w1"]["generated"].as_array().is_some_and(|a| a.len() == k + 1));
    assert!(json["w1"]["gaussian_source"][1].is_null() && json["w1"]["gaussian_source"][0].is_number());
    assert_eq!(json["w1"]["method"], "exact");
    assert!(json["best_of_k"]["accuracy_mean"].is_number() && json["best_of_k"]["k"] == 2);
    assert!(json["path_loss"][0]["loss"].is_number());

    // A sliced configuration is recorded as such; a missing marginal is null, not an error.
    let sliced = W1Config { exact_max: 4, ..W1Config::default() };
    let marg = eval::w1_per_marginal(&path, trajectories.view(), &sliced, 1e-4)?;
    assert_eq!(marg.method, W1Method::Sliced);
    Ok(())
}

#[test]
fn the_report_refuses_too_few_generated_rows() {
    let mlp = Mlp::new(Layout::parse("2-2").unwrap(), Activation::Relu);
    let data = EvalData { train: blobs(10, 1), val: blobs(10, 2), test: blobs(10, 3) };
    let traj = toy_world(4, 2, 1);
    let gen = traj.index_axis(Axis(1), 2).to_owned();
    let path = vec![(1.0f32, gen.clone())];
    let inputs =
        GenerationInputs { mlp: &mlp, generated: gen.view(), path: &path, trajectories: traj.view(), data: &data };
    let cfg = GenerationConfig { best_of_k: 3, init_n: 0, ..GenerationConfig::default() };
    assert!(matches!(evaluate_generation(&inputs, &cfg), Err(eval::Error::Length { got: 1, .. })));
    let cfg = GenerationConfig { best_of_k: 0, ..cfg };
    assert!(matches!(evaluate_generation(&inputs, &cfg), Err(eval::Error::Config { name: "best_of_k", .. })));
}

/// A minimal XML well-formedness check: balanced tags, quoted attributes, no raw `<` or stray `&` in text.
fn check_xml(doc: &str) -> Result<Vec<String>, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut attrs = Vec::new();
    let mut rest = doc;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open])?;
        let close = rest[open..].find('>').ok_or("unterminated tag")? + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(top) if top == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name = body.split_whitespace().next().ok_or("empty tag")?.to_string();
        // Attributes: name="value" pairs, values without '<' or raw '&'.
        let mut a = body[name.len()..].trim();
        while !a.is_empty() {
            let eq = a.find("=\"").ok_or(format!("unquoted attribute in <{name}>: {a}"))?;
            let key = a[..eq].trim().to_string();
            let end = a[eq + 2..].find('"').ok_or("unterminated attribute")? + eq + 2;
            let value = &a[eq + 2..end];
            check_text(value)?;
            attrs.push(format!("{key}={value}"));
            a = a[end + 1..].trim();
        }
        if !self_closing {
            stack.push(name);
        }
    }
    check_text(rest)?;
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    Ok(attrs)
}

fn check_text(t: &str) -> Result<(), String> {
    if t.contains('<') || t.contains('>') {
        return Err(format!("raw angle bracket in {t:?}"));
    }
    for (i, _) in t.match_indices('&') {
        let ent = &t[i..];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| ent.starts_with(e)) {
            return Err(format!("stray & in {t:?}"));
        }
    }
    Ok(())
}

#[test]
fn svg_line_plot_is_well_formed_with_finite_coordinates() -> TestResult {
    let series = vec![
        ("CFM <kaiming> & co".to_string(), (0..=20).map(|i| (i as f64 / 20.0, (-(i as f64) / 5.0).exp())).collect()),
        ("MMFM \"k=3\"".to_string(), vec![(0.0, 0.9), (0.5, f64::NAN), (0.75, 0.3), (1.0, 0.2)]),
        ("flat".to_string(), vec![(0.0, 0.5), (1.0, 0.5)]),
        ("empty".to_string(), vec![]),
    ];
    let svg = svg_line_plot("validation loss along the path", "t", "CE (val)", &series);
    let attrs = check_xml(&svg).map_err(|e| format!("{e}\n{svg}"))?;
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    for name in ["CFM &lt;kaiming&gt; &amp; co", "MMFM &quot;k=3&quot;", "flat", "empty", "CE (val)"] {
        assert!(svg.contains(name), "{name} missing");
    }
    // Every coordinate written is a finite number inside the canvas.
    let mut coords = 0;
    for a in &attrs {
        let (key, value) = a.split_once('=').expect("key=value");
        let numbers: Vec<&str> = match key {
            "x" | "y" | "x1" | "x2" | "y1" | "y2" | "cx" | "cy" => vec![value],
            "points" => value.split([' ', ',']).collect(),
            _ => continue,
        };
        for n in numbers {
            let v: f64 = n.parse().map_err(|e| format!("{key}={n}: {e}"))?;
            assert!(v.is_finite() && (0.0..=720.0).contains(&v), "{key}={v}");
            coords += 1;
        }
    }
    assert!(coords > 50);
    // The NaN breaks the second series into two polylines: 1 + 2 + 1 = 4.
    assert_eq!(svg.matches("<polyline").count(), 4);
    // Nothing to plot at all still gives a valid document.
    check_xml(&svg_line_plot("", "", "", &[]))?;
    Ok(())
}
