//! The CLI end to end: `train-base` writes a trajectory set, `info --json` honours its output contract, and
//! bad input exits with status 1 and a message (never a panic).

use std::path::Path;
use std::process::Command;

#[path = "support/ort.rs"]
mod ort_support;

fn weightflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weightflow"))
}

#[test]
fn train_base_then_info_json_follow_the_output_contract() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("digits");
    let status = weightflow()
        .args(["train-base", "--dataset", "digits", "--arch", "64-16-10", "--runs", "4", "--checkpoints", "2"])
        .args(["--epochs", "2", "--quiet", "--out"])
        .arg(&out)
        .status()?;
    assert!(status.success());
    let output = weightflow().arg("info").arg(&out).arg("--json").output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(v["runs"], 4);
    assert_eq!(v["checkpoints"], 3);
    let f = &v["final"];
    for key in ["train_accuracy", "val_accuracy", "test_accuracy"] {
        let a = f[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&a), "{key} = {}", f[key]);
    }
    // Ten classes: no AUROC, as null (not absent).
    assert!(f.get("val_auroc").is_some_and(|a| a.is_null()) && f["test_auroc"].is_null());
    // A reader that goes away before the document is written (`… --json | head -0`) is not an error.
    let mut child = weightflow()
        .arg("info")
        .arg(&out)
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let closed = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert!(closed.status.success() && !stderr.contains("panicked"), "{:?}: {stderr}", closed.status);
    Ok(())
}

#[test]
fn bad_input_exits_1_with_a_message() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let cases: [(&[&str], &str); 3] = [
        (&["info", "/nonexistent/trajectories"], "manifest.json"),
        (&["train-base", "--dataset", "uci-heart", "--arch", "9-x-2", "--out", "x"], "invalid architecture"),
        (&["train-base", "--dataset", "csv:/nonexistent.csv", "--out", "x"], "nonexistent.csv"),
    ];
    for (args, needle) in cases {
        let out = weightflow().current_dir(dir.path()).args(args).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // An unknown data set name is a usage error (clap, status 2) that lists the accepted names.
    let out = weightflow().args(["train-base", "--dataset", "cifar", "--out", "x"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("uci-heart"));
    // So is an ensemble size that is neither M nor k/class, with the forms it takes.
    let out = weightflow().args(["eval-shift", "--dataset", "uci-heart", "--ensemble-size", "2/klass"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("k/class"), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

#[test]
fn train_meta_generate_and_eval_gen_follow_their_contracts() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (traj, meta, gen) = (dir.path().join("t"), dir.path().join("m"), dir.path().join("g.safetensors"));
    let ok = |args: &[&str], paths: &[&std::path::Path]| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let out = weightflow().args(args).args(paths).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        Ok(out.stdout)
    };
    ok(
        &[
            "train-base",
            "--dataset",
            "uci-heart",
            "--arch",
            "9-8-2",
            "--runs",
            "16",
            "--epochs",
            "3",
            "--quiet",
            "--out",
        ],
        &[&traj],
    )?;
    let flow = ["--hidden", "32,32", "--steps", "30", "--batch-size", "8", "--quiet"];
    ok(
        &[&["train-meta", "--objective", "mmfm", "--intermediates", "2"][..], &flow, &["--trajectories"]].concat(),
        &[&traj, std::path::Path::new("--out"), &meta],
    )?;
    ok(&["generate", "-n", "5", "--steps", "6", "--out"], &[&gen, std::path::Path::new("--meta"), &meta])?;
    let st = std::fs::read(&gen)?;
    let st = safetensors::SafeTensors::deserialize(&st)?;
    assert_eq!(st.tensor("thetas")?.shape(), [5, 9 * 8 + 8 + 8 * 2 + 2]);
    // A JKO model takes its own steps between its marginals; the file says so instead of echoing --steps.
    let jko = dir.path().join("jko");
    ok(
        &[&["train-meta", "--objective", "jko", "--intermediates", "2"][..], &flow, &["--trajectories"]].concat(),
        &[&traj, std::path::Path::new("--out"), &jko],
    )?;
    ok(&["generate", "-n", "5", "--steps", "6", "--out"], &[&gen, std::path::Path::new("--meta"), &jko])?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&std::fs::read(&gen)?)?;
    let meta_of = |k: &str| header.metadata().as_ref().and_then(|m| m.get(k).cloned());
    assert_eq!((meta_of("sampler"), meta_of("steps")), (Some("jko".into()), Some("3".into())));

    let stdout = ok(
        &["eval-gen", "-n", "6", "--best-of-k", "2", "--steps", "6", "--init-n", "4", "--json", "--meta"],
        &[&meta, std::path::Path::new("--trajectories"), &traj],
    )?;
    let v: serde_json::Value = serde_json::from_slice(&stdout)?;
    for side in ["generated", "trained"] {
        for key in ["accuracy_mean", "accuracy_min", "accuracy_max"] {
            let a = v[side][key].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&a), "{side}.{key} = {}", v[side][key]);
        }
    }
    for key in ["nn_distance", "error_iou", "init_steps", "constant_predictors", "weight_norm", "spread"] {
        assert!(
            v[key].get("generated").is_some() && v[key].get("trained").is_some() || v[key].get("kaiming").is_some(),
            "{key}: {}",
            v[key]
        );
    }
    assert_eq!(v["w1"]["generated"].as_array().map(Vec::len), Some(7), "one W1 per marginal t_0 … t_6: {}", v["w1"]);
    assert!(v["w1"].get("gaussian_source").is_some());
    // A lower sampling temperature starts from a narrower source: the generated nets spread less, and the
    // report says which temperature it used. A temperature that is not positive is refused with a message.
    let cool = ok(
        &["eval-gen", "-n", "6", "--best-of-k", "2", "--steps", "6", "--init-n", "0", "--temperature", "0.25"],
        &[
            std::path::Path::new("--json"),
            std::path::Path::new("--meta"),
            &meta,
            std::path::Path::new("--trajectories"),
            &traj,
        ],
    )?;
    let cool: serde_json::Value = serde_json::from_slice(&cool)?;
    assert_eq!(cool["settings"]["temperature"], 0.25);
    assert_eq!(v["settings"]["temperature"], 1.0);
    let spread = |r: &serde_json::Value| r["spread"]["generated"].as_f64().unwrap_or(f64::NAN);
    assert!(spread(&cool) < 0.5 * spread(&v), "spread {} at τ = 0.25 against {} at τ = 1", spread(&cool), spread(&v));
    let out =
        weightflow().args(["generate", "--temperature", "0", "--out"]).arg(&gen).arg("--meta").arg(&meta).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("temperature") && !stderr.contains("panicked"), "{stderr}");

    // export → a bundle the runtime opens and scores with (needs onnxruntime: scripts/setup-ort.sh).
    let Some(lib) = ort_support::library_or_skip("the export part of train_meta_generate_and_eval_gen") else {
        return Ok(());
    };
    let bundle = dir.path().join("d.wfb");
    let p = std::path::Path::new;
    let export = [
        "export",
        "--calibrate-sizes",
        "5,10",
        "--null-windows",
        "10",
        "--pool",
        "32",
        "--steps",
        "6",
        "--floor",
        "0",
        "--ensemble-size",
        "4/class",
        "--refine-steps",
        "0",
        "--refine-step-rule",
        "layer-relative",
        "--refine-lr",
        "0.25",
        "--json",
        "--meta",
    ];
    let stdout =
        ok(&export, &[&meta, p("--trajectories"), &traj, p("--out"), &bundle, p("--onnxruntime"), lib.as_path()])?;
    let v: serde_json::Value = serde_json::from_slice(&stdout)?;
    assert_eq!(v["schema"], "export/1");
    assert_eq!(v["window_sizes"], serde_json::json!([5, 10]));
    let det = weightflow::runtime::Detector::open(
        &bundle,
        &weightflow::runtime::OpenOptions { onnxruntime: Some(lib.clone()), threads: 1, ..Default::default() },
    )?;
    assert_eq!((det.info().n_features, det.info().ensemble_size, det.info().window_sizes.clone()), (9, 8, vec![5, 10]));
    let window = ndarray::Array2::from_shape_fn((5, 9), |(i, j)| (i * 9 + j) as f32 / 10.0);
    let score = det.score(window.view(), 1)?;
    assert!((0.0..=1.0).contains(&score.p_value) && score.ensemble_size == 8, "{score:?}");
    // The settings reach the bundle (4 per class of UCI heart's 2: the 8 voters above); the pool is stored:
    // what onnxruntime generates from the pool seed (export's --pool-seed 0), bit for bit.
    let ensemble = &det.bundle().manifest.ensemble;
    assert_eq!(
        (ensemble.steps, ensemble.lr, ensemble.ensemble_size, ensemble.floor),
        (0, 0.25, weightflow::detect::EnsembleSize::PerClass { per_class: 4 }, 0.0)
    );
    assert_eq!(ensemble.step_rule, weightflow::detect::StepRule::LayerRelative);
    assert!(det.info().pool_stored);
    assert_eq!(det.pool(), &det.generate(32, 0)?);

    // detect: the same window as a CSV (with a header line) gives the runtime's verdict, as JSON.
    let csv = dir.path().join("w.csv");
    let mut text = (1..=9).map(|j| format!("x{j}")).collect::<Vec<_>>().join(",") + "\n";
    for row in window.outer_iter() {
        text += &(row.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",") + "\n");
    }
    std::fs::write(&csv, text)?;
    let detect = ["detect", "--seed", "1", "--json", "--onnxruntime"];
    let stdout = ok(&detect, &[lib.as_path(), p("--bundle"), &bundle, p("--window"), &csv])?;
    let v: serde_json::Value = serde_json::from_slice(&stdout)?;
    assert_eq!(v["schema"], "detect/1");
    assert_eq!((v["rows"].as_u64(), v["is_shift"].as_bool()), (Some(5), Some(score.is_shift)));
    assert_eq!(v["p_value"].as_f64(), Some(score.p_value));
    assert_eq!(v["ensemble_size"].as_u64(), Some(8));
    // Given the meta-model and its trajectories instead (the issue's `--bundle-or-meta`), detect builds the
    // same detector in memory, calibrated for the window's size alone: export's settings give export's verdict
    // and threshold to the bit, since each null window is seeded by its size and index.
    let build = &export[3..export.len() - 2];
    let stdout = ok(
        &[&detect[..1], build, &detect[1..]].concat(),
        &[lib.as_path(), p("--bundle-or-meta"), &meta, p("--trajectories"), &traj, p("--window"), &csv],
    )?;
    let m: serde_json::Value = serde_json::from_slice(&stdout)?;
    assert_eq!((m["meta"].as_bool(), m["schema"].as_str()), (Some(true), Some("detect/1")));
    for key in ["p_value", "statistic", "threshold", "is_shift", "ensemble_size", "disagreement"] {
        assert_eq!(m[key], v[key], "{key}");
    }
    // A meta-model without its trajectories, and a bundle with them: exit 1 with a message that says why.
    for (path, traj, needle) in [(&meta, None, "needs --trajectories"), (&bundle, Some(&traj), "is a bundle")] {
        let mut cmd = weightflow();
        cmd.args(["detect", "--onnxruntime"]).arg(&lib).arg("--bundle-or-meta").arg(path).arg("--window").arg(&csv);
        if let Some(t) = traj {
            cmd.arg("--trajectories").arg(t);
        }
        let out = cmd.output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle) && !stderr.contains("panicked"), "{stderr}");
    }
    // A window of an uncalibrated size, and a malformed one: exit 1 with a message that says why.
    let short = dir.path().join("short.csv");
    std::fs::write(&short, "1,2,3,4,5,6,7,8,9\n")?;
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "1,2,3,4,5,6,7,8,9\n1,2,3\n")?;
    for (file, needle) in [(&short, "calibrated for windows of [5, 10] rows"), (&bad, "bad.csv:2: expected 9 fields")] {
        let mut cmd = weightflow();
        cmd.args(["detect", "--onnxruntime"]).arg(&lib).arg("--bundle").arg(&bundle).arg("--window").arg(file);
        let out = cmd.output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle) && !stderr.contains("panicked"), "{stderr}");
    }
    Ok(())
}

/// Runs the CLI with `args` followed by `paths`.
fn run(args: &[&str], paths: &[&std::path::Path]) -> std::io::Result<std::process::Output> {
    weightflow().args(args).args(paths).output()
}

/// A run's stdout, after asserting that it succeeded without a panic.
fn ok(o: std::process::Output) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !stderr.contains("panicked"), "{stderr}");
    Ok(o.stdout)
}

/// Under `dir`: a tiny trajectory set of `dataset` (8 runs of `arch`, 2 epochs), a briefly trained CFM
/// meta-model over it, and a path for tuned output — `(trajectories, meta, out)`.
fn tiny_set_and_meta(
    dir: &std::path::Path,
    dataset: &str,
    arch: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf), Box<dyn std::error::Error>> {
    let (traj, meta, out) = (dir.join("t"), dir.join("m"), dir.join("tuned"));
    let base = ["train-base", "--dataset", dataset, "--arch", arch, "--runs", "8", "--epochs", "2", "--quiet"];
    ok(run(&[&base[..], &["--out"]].concat(), &[&traj])?)?;
    let flow = ["train-meta", "--hidden", "16", "--steps", "20", "--batch-size", "8", "--quiet", "--trajectories"];
    ok(run(&flow, &[&traj, std::path::Path::new("--out"), &meta])?)?;
    Ok((traj, meta, out))
}

#[test]
fn train_meta_takes_a_functional_term_and_refuses_it_where_it_cannot_apply() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (traj, _, _) = tiny_set_and_meta(dir.path(), "uci-heart", "9-4-2")?;
    let meta = dir.path().join("f");
    let flow = ["train-meta", "--hidden", "16", "--steps", "20", "--batch-size", "8", "--quiet"];
    let paths = [std::path::Path::new("--trajectories"), &traj, std::path::Path::new("--out"), &meta];
    for objective in ["cfm", "mmfm"] {
        let term = ["--function-weight", "30", "--function-rows", "16", "--objective", objective];
        ok(run(&[&flow[..], &term].concat(), &paths)?)?;
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(meta.join("meta.json"))?)?;
        assert_eq!(manifest["training"]["functional"], serde_json::json!({"weight": 30.0, "rows": 16}));
        assert_eq!(manifest["objective"], objective);
    }
    // A weighting along the path is recorded; without it the field is absent (files as before it existed).
    let term = ["--function-weight", "30", "--function-time-power", "1.5"];
    ok(run(&[&flow[..], &term].concat(), &paths)?)?;
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(meta.join("meta.json"))?)?;
    let want = serde_json::json!({"weight": 30.0, "rows": 256, "time_power": 1.5});
    assert_eq!(manifest["training"]["functional"], want);
    // Without the flag the manifest has no such field, as before the term existed.
    ok(run(&flow, &paths)?)?;
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(meta.join("meta.json"))?)?;
    assert!(manifest["training"].get("functional").is_none(), "{}", manifest["training"]);

    for (extra, says) in [
        (&["--function-rows", "16"][..], "--function-weight"),
        (&["--function-time-power", "1"][..], "--function-weight"),
        (&["--function-weight", "30", "--function-time-power=-1"][..], "time power"),
        (&["--function-weight", "30", "--objective", "jko"][..], "functional"),
        (&["--function-weight=-1"][..], "functional"),
    ] {
        let bad = run(&[&flow[..], extra].concat(), &paths)?;
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains(says) && !stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
    Ok(())
}

#[test]
fn tune_writes_tuned_models_with_curves_and_refuses_bad_rewards() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (traj, meta, out) = tiny_set_and_meta(dir.path(), "uci-heart", "9-4-2")?;
    let tune = ["tune", "--iters", "2", "--eval-every", "1", "--eval-n", "4", "--batch-size", "4", "--steps", "4"];
    let paths = [std::path::Path::new("--meta"), &meta, std::path::Path::new("--trajectories"), &traj];
    let stdout = ok(run(
        &[&tune[..], &["--reward", "cdc:both", "--window", "5", "--json", "--quiet", "--out"]].concat(),
        &[&[out.as_path()][..], &paths].concat(),
    )?)?;
    let v: serde_json::Value = serde_json::from_slice(&stdout)?;
    assert_eq!(v["schema"], "tune/1");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.iter().map(|r| r["name"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["cdc:ood", "cdc:iid"]);
    for r in runs {
        let curve = r["curve"].as_array().expect("curve");
        assert_eq!(curve.iter().map(|p| p["iteration"].as_u64().unwrap_or(99)).collect::<Vec<_>>(), [0, 1, 2]);
        for p in curve {
            for key in ["agreement_on_p", "disagreement_on_q"] {
                assert!((0.0..=1.0).contains(&p[key].as_f64().unwrap_or(-1.0)), "{key}: {p}");
            }
        }
    }
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("ood").join("meta.json"))?)?;
    assert_eq!(manifest["tuning"]["iterations"], 2);
    assert_eq!(manifest["tuning"]["method"], "adjoint-matching");

    let bad = run(&[&tune[..], &["--reward", "nonsense", "--out"]].concat(), &[&[out.as_path()][..], &paths].concat())?;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--reward"));
    Ok(())
}

#[test]
fn tune_task_reward_towards_rotated_digits_and_refuses_bad_shifts() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (traj, meta, out) = tiny_set_and_meta(dir.path(), "digits", "64-4-10")?;
    let tune = ["tune", "--iters", "2", "--eval-every", "1", "--eval-n", "4", "--batch-size", "4", "--steps", "4"];
    let paths = [std::path::Path::new("--meta"), &meta, std::path::Path::new("--trajectories"), &traj];
    let paths = [&[std::path::Path::new("--out"), &out][..], &paths].concat();
    let task = ["--reward", "task:digits", "--quiet"];
    let stdout = ok(run(&[&tune[..], &task, &["--shift", "rotate:30", "--json"]].concat(), &paths)?)?;
    let v: serde_json::Value = serde_json::from_slice(&stdout)?;
    assert_eq!((v["schema"].as_str(), v["shift"].as_str()), (Some("tune/1"), Some("rotate:30-30")), "{v}");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    // Digits' test split has 359 rows: 180 tune, the other 179 measure.
    let target = runs[0]["target"].as_str().unwrap_or("");
    assert_eq!(target, "180 rows of the test split of digits shifted by rotate:30-30");
    let curve = runs[0]["curve"].as_array().expect("curve");
    assert_eq!(curve.iter().map(|p| p["iteration"].as_u64().unwrap_or(99)).collect::<Vec<_>>(), [0, 1, 2]);
    for p in curve {
        for key in ["held_out_shifted_accuracy", "tuning_half_accuracy", "iid_test_accuracy"] {
            assert!((0.0..=1.0).contains(&p[key].as_f64().unwrap_or(-1.0)), "{key}: {p}");
        }
    }
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(out.join("meta.json"))?)?["tuning"]["iterations"],
        2
    );

    // A malformed shift is a usage error (clap, status 2) naming the accepted forms; a data set without a
    // shifted split, or --shift on another data set's test split, exits 1 with a message.
    let cases: [(&[&str], i32, &str); 3] = [
        (&["task:digits", "--shift", "rotate:abc"], 2, "rotate:MIN-MAX"),
        (&["task:digits"], 1, "digits has no shifted split: name a shifted target with --shift"),
        (&["task:uci-heart", "--shift", "rotate:30"], 1, "held out only for the trajectory set's own"),
    ];
    for (extra, code, needle) in cases {
        let o = run(&[&tune[..], &["--quiet", "--reward"], extra].concat(), &paths)?;
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{extra:?}: {stderr}");
        assert!(stderr.contains(needle) && !stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
    Ok(())
}

/// MMD's statistic ignores f, so its figures tell whose windows each f saw: with `--shared-windows` every f
/// repeats the first f's TPR, FPR and AUROC exactly; by default each f draws its own windows. (A mild shift,
/// so that AUROC does not saturate at 1 as it does on UCI heart's own pool.)
#[test]
fn eval_shift_draws_each_f_its_own_windows_unless_told_to_share() -> Result<(), Box<dyn std::error::Error>> {
    // The (TPR, FPR, AUROC) triple of each f, after checking the report names its kind of windows.
    let per_f = |extra: &[&str], kind: &str| -> Result<Vec<Vec<f64>>, Box<dyn std::error::Error>> {
        let output = weightflow()
            .args(["eval-shift", "--dataset", "digits", "--shift", "corners:2", "--methods", "mmd", "--sizes", "10"])
            .args(["--runs", "20", "--base-models", "2", "--threads", "1", "--json"])
            .args(extra)
            .output()?;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        assert_eq!(v["settings"]["windows"], kind);
        let row = &v["results"][0];
        assert!(row["fpr_sd_f"].as_f64().is_some_and(|x| x >= 0.0), "{row}");
        let column = |key: &str| row[key].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect::<Vec<_>>());
        let (tpr, fpr, auroc) = (column("tpr_per_f"), column("fpr_per_f"), column("auroc_per_f"));
        let (Some(tpr), Some(fpr), Some(auroc)) = (tpr, fpr, auroc) else { return Err(format!("{row}").into()) };
        assert!(tpr.len() == 2 && fpr.len() == 2 && auroc.len() == 2, "{row}");
        Ok((0..2).map(|k| vec![tpr[k], fpr[k], auroc[k]]).collect())
    };
    let shared = per_f(&["--shared-windows"], "shared")?;
    assert_eq!(shared[0], shared[1], "shared windows: both f's see the same MMD tests");
    let own = per_f(&[], "per-f")?;
    assert_ne!(own[0], own[1], "each f draws its own windows");
    Ok(())
}

#[test]
fn eval_shift_json_follows_the_output_contract() -> Result<(), Box<dyn std::error::Error>> {
    let output = weightflow()
        .args(["eval-shift", "--dataset", "uci-heart", "--methods", "f-entropy,bbsd", "--sizes", "10,20"])
        .args(["--runs", "20", "--base-models", "2", "--threads", "1", "--json", "--step-rule", "absolute"])
        .args(["--calibration-runs", "30"])
        .output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(v["schema"], "eval-shift/2");
    assert_eq!((v["settings"]["runs"].as_u64(), v["settings"]["calibration_runs"].as_u64()), (Some(20), Some(30)));
    // --step-rule without --lr takes the rule's own step size (absolute: 2.0, not the default rule's 0.15).
    let refined = &v["settings"]["meta_detectron"];
    assert_eq!((refined["step_rule"].as_str(), refined["lr"].as_f64()), (Some("absolute"), Some(2.0)), "{refined}");
    let rows = v["results"].as_array().ok_or("results is an array")?;
    assert_eq!(rows.len(), 4);
    for r in rows {
        for key in ["tpr", "tpr_se", "tpr_sd_f", "auroc", "fpr_fresh"] {
            let x = r[key].as_f64().ok_or(format!("{key} is a number"))?;
            assert!((0.0..=1.0).contains(&x), "{key} = {x}");
        }
        assert!(r["ms_median"].as_f64().unwrap() <= r["ms_p90"].as_f64().unwrap());
        assert_eq!(r["tpr_per_f"].as_array().map(|a| a.len()), Some(2));
    }
    assert_eq!((rows[0]["method"].as_str(), rows[3]["n"].as_u64()), (Some("f-entropy"), Some(20)));
    assert_eq!(rows[0]["shift"], "shifted pool");
    // The ensemble methods need a meta-model; an unknown method is refused by name.
    for method in ["untilted", "meta-detectron-adjoint"] {
        let no_meta = weightflow().args(["eval-shift", "--dataset", "uci-heart", "--methods", method]).output()?;
        assert_eq!(no_meta.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&no_meta.stderr).contains("--meta"), "{method}");
    }
    // The faithful path's settings are checked before any training.
    let zero = weightflow()
        .args(["eval-shift", "--dataset", "uci-heart", "--methods", "f-entropy", "--adjoint-iters", "0"])
        .output()?;
    assert_eq!(zero.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("iterations"), "{}", String::from_utf8_lossy(&zero.stderr));
    let no_calibration = weightflow()
        .args(["eval-shift", "--dataset", "uci-heart", "--methods", "f-entropy", "--calibration-runs", "0"])
        .output()?;
    assert_eq!(no_calibration.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_calibration.stderr).contains("--calibration-runs must be at least 1"));
    let unknown = weightflow().args(["eval-shift", "--dataset", "uci-heart", "--methods", "tilted"]).output()?;
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("meta-detectron"));
    let rule = weightflow().args(["eval-shift", "--dataset", "uci-heart", "--step-rule", "adam"]).output()?;
    assert!(String::from_utf8_lossy(&rule.stderr).contains("calibrated"), "{}", String::from_utf8_lossy(&rule.stderr));
    Ok(())
}

#[test]
fn train_vae_writes_an_autoencoder_and_reports_reconstruction() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (traj, vae) = (dir.path().join("t"), dir.path().join("v"));
    let status = weightflow()
        .args(["train-base", "--dataset", "uci-heart", "--arch", "9-4-2", "--runs", "24", "--checkpoints", "2"])
        .args(["--epochs", "3", "--quiet", "--out"])
        .arg(&traj)
        .status()?;
    assert!(status.success());
    let out = weightflow()
        .args(["train-vae", "--latent-dim", "3", "--hidden", "16", "--steps", "20", "--heldout", "4", "--quiet"])
        .args(["--json", "--trajectories"])
        .arg(&traj)
        .arg("--out")
        .arg(&vae)
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["schema"], "train-vae/1");
    assert_eq!(v["config"]["latent_dim"], 3);
    for part in ["heldout", "train"] {
        for key in ["original", "reconstructed"] {
            let a = v[part][key]["mean"].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&a), "{part}.{key} = {}", v[part][key]);
        }
    }
    assert!(vae.join("autoencoder.json").exists() && vae.join("autoencoder.safetensors").exists());
    // As many held-out runs as runs: a clear error, exit 1.
    let out = weightflow()
        .args(["train-vae", "--heldout", "24", "--steps", "1", "--quiet", "--trajectories"])
        .arg(&traj)
        .arg("--out")
        .arg(dir.path().join("w"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("heldout") && !stderr.contains("panicked"), "{stderr}");
    Ok(())
}

#[test]
fn eval_shift_scores_synthetic_image_shifts_one_block_each() -> Result<(), Box<dyn std::error::Error>> {
    // Digits f, BBSD: heavy noise (σ = 8 on 0–16 pixels) moves f's softmax outputs and must be flagged; a
    // label shift to two classes changes the output mix; corners of 1 pixel are (nearly) always blank in
    // digits, so blacking them out must look like the null (FPR-level flag rate).
    let output = weightflow()
        .args(["eval-shift", "--dataset", "digits", "--methods", "bbsd", "--sizes", "20", "--runs", "40"])
        .args(["--base-models", "1", "--threads", "1", "--json", "--shift", "noise:8", "classes:0,1"])
        .args(["--shift", "corners:1"])
        .output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let rows = v["results"].as_array().ok_or("results is an array")?;
    let shifts: Vec<&str> = rows.iter().filter_map(|r| r["shift"].as_str()).collect();
    assert_eq!(shifts, ["noise:8", "classes:0,1", "corners:1"]);
    let tpr = |i: usize| rows[i]["tpr"].as_f64().unwrap();
    assert!(tpr(0) >= 0.9 && tpr(1) >= 0.9, "noise {} classes {}", tpr(0), tpr(1));
    assert!(tpr(2) <= 0.2, "corners {}", tpr(2));
    assert_eq!(v["settings"]["pools"]["shifted"][1]["shift"], "classes:0,1");
    // Corners that do not fit 8×8 images, and a pool together with a synthetic shift, are refused up front.
    let big = weightflow()
        .args(["eval-shift", "--dataset", "digits", "--methods", "bbsd", "--shift", "corners:5"])
        .output()?;
    assert_eq!(big.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&big.stderr).contains("do not fit"));
    let both = weightflow()
        .args(["eval-shift", "--dataset", "csv", "--methods", "bbsd", "--shifted", "q.csv", "--shift", "noise:1"])
        .output()?;
    assert!(String::from_utf8_lossy(&both.stderr).contains("exclusive"));
    let none = weightflow().args(["eval-shift", "--dataset", "digits", "--methods", "bbsd"]).output()?;
    assert!(String::from_utf8_lossy(&none.stderr).contains("--shift"));
    Ok(())
}

#[test]
fn tasks_train_a_context_conditioned_meta_model_that_eval_gen_scores_per_guidance(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let p = |name: &str| dir.path().join(name);
    let base = ["train-base", "--dataset", "digits", "--arch", "64-8-10", "--runs", "6", "--epochs", "2", "--quiet"];
    ok(run(&[&base[..], &["--out"]].concat(), &[&p("t0")])?)?;
    ok(run(&[&base[..], &["--task", "rotate:90", "--out"]].concat(), &[&p("t90")])?)?;
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(p("t90").join("manifest.json"))?)?;
    assert_eq!(manifest["task"], "rotate:90-90");
    let plain: serde_json::Value = serde_json::from_slice(&std::fs::read(p("t0").join("manifest.json"))?)?;
    assert!(plain.get("task").is_none(), "an untransformed set writes no task");

    let flow = ["train-meta", "--hidden", "16", "--steps", "20", "--batch-size", "8", "--quiet", "--json"];
    let two: [&std::path::Path; 4] = [Path::new("--trajectories"), &p("t0"), Path::new("--trajectories"), &p("t90")];
    let out = ok(run(
        &[&flow[..], &["--context", "--context-size", "5", "--cond-dim", "4"]].concat(),
        &[&two[..], &[Path::new("--out"), &p("m")]].concat(),
    )?)?;
    let v: serde_json::Value = serde_json::from_slice(&out)?;
    assert_eq!(v["runs"], 12);
    assert_eq!(v["tasks"], serde_json::json!(["digits", "digits rotate:90-90"]));
    assert_eq!(v["config"]["context"]["set_size"], 5);

    let eval = ["eval-gen", "-n", "8", "--best-of-k", "1", "--init-n", "0", "--steps", "6", "--guidance", "0,1,3"];
    let out =
        ok(run(&[&eval[..], &["--json", "--meta"]].concat(), &[&p("m"), Path::new("--trajectories"), &p("t90")])?)?;
    let v: serde_json::Value = serde_json::from_slice(&out)?;
    let c = &v["context"];
    assert_eq!(c["task"], "digits rotate:90-90");
    assert_eq!(c["conditioned"].as_array().map(Vec::len), Some(3));
    // Guidance 0 is the unconditioned field: the same classifiers, the same accuracy.
    assert_eq!(c["conditioned"][0]["mean"], c["unconditioned"]["mean"]);
    assert_eq!(c["conditioned"][2]["guidance"], 3.0);

    // generate for a task; the same flag on an unconditioned model is refused.
    let gen = ["generate", "-n", "4", "--steps", "3", "--guidance", "2", "--context-from"];
    ok(run(&gen, &[&p("t90"), Path::new("--meta"), &p("m"), Path::new("--out"), &p("g.safetensors")])?)?;
    assert!(p("g.safetensors").exists());
    ok(run(&flow, &[Path::new("--trajectories"), &p("t0"), Path::new("--out"), &p("plain")])?)?;
    let o = run(&gen, &[&p("t90"), Path::new("--meta"), &p("plain"), Path::new("--out"), &p("h.safetensors")])?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(1) && stderr.contains("trained without --context"), "{stderr}");

    // Context flags without --context, sets of other architectures: clear errors.
    let o = run(
        &[&flow[..], &["--context-size", "5", "--trajectories"]].concat(),
        &[&p("t0"), Path::new("--out"), &p("x")],
    )?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(1) && stderr.contains("need --context"), "{stderr}");
    let narrow = ["train-base", "--dataset", "digits", "--arch", "64-4-10", "--runs", "6", "--epochs", "2", "--quiet"];
    ok(run(&[&narrow[..], &["--out"]].concat(), &[&p("t4")])?)?;
    let o = run(
        &flow,
        &[Path::new("--trajectories"), &p("t0"), Path::new("--trajectories"), &p("t4"), Path::new("--out"), &p("x")],
    )?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(1) && stderr.contains("cannot join"), "{stderr}");
    Ok(())
}

#[test]
fn plot_gen_draws_every_report_and_refuses_what_is_not_one() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let report = |name: &str, gaussian: serde_json::Value| -> Result<std::path::PathBuf, std::io::Error> {
        let v = serde_json::json!({
            "schema": "eval-gen/1",
            "path_loss": [{"t": 0.0, "loss": 0.7, "accuracy": 0.5}, {"t": 1.0, "loss": 0.45, "accuracy": 0.8}],
            "w1": {"t": [0.0, 0.5, 1.0], "generated": [4.6, null, 1.3], "gaussian_source": gaussian},
        });
        let path = dir.path().join(name);
        std::fs::write(&path, v.to_string())?;
        Ok(path)
    };
    let a = report("a.json", serde_json::Value::Null)?;
    let b = report("b.json", serde_json::json!([21.4, 7.2, 1.26]))?;
    let out = dir.path().join("plots");
    let run = weightflow()
        .args(["plot-gen", "--prefix", "x_", "--json", "--report"])
        .arg(format!("CFM, here={}", a.display()))
        .arg("--report")
        .arg(format!("MMFM={}", b.display()))
        .arg("--out")
        .arg(&out)
        .output()?;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    assert_eq!(v["schema"], "plot-gen/1");
    let loss = std::fs::read_to_string(out.join("x_path_loss.svg"))?;
    let w1 = std::fs::read_to_string(out.join("x_w1.svg"))?;
    for label in ["CFM, here", "MMFM"] {
        assert!(loss.contains(label) && w1.contains(label), "{label} missing from a plot");
    }
    assert!(w1.contains("MMFM: Gaussian-source model") && !w1.contains("CFM, here: Gaussian"));

    std::fs::write(dir.path().join("shift.json"), r#"{"schema": "eval-shift/1"}"#)?;
    let short = dir.path().join("short.json");
    std::fs::write(&short, r#"{"schema": "eval-gen/1", "path_loss": [], "w1": {"t": [0, 1], "generated": [1]}}"#)?;
    let cases: [(String, &str); 4] = [
        ("no-label".into(), "expected LABEL=FILE"),
        (format!("a={}", dir.path().join("missing.json").display()), "missing.json"),
        (format!("a={}", dir.path().join("shift.json").display()), "has schema \"eval-shift/1\""),
        (format!("a={}", short.display()), "1 w1.generated values for 2 times"),
    ];
    for (spec, needle) in cases {
        let run = weightflow().args(["plot-gen", "--report", &spec, "--out"]).arg(&out).output()?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{spec}: {stderr}");
        assert!(stderr.contains(needle) && !stderr.contains("panicked"), "{spec}: {stderr}");
    }
    Ok(())
}
