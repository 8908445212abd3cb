//! The CLI end to end: `train-base` writes a trajectory set, `info --json` honours its output contract, and
//! bad input exits with status 1 and a message (never a panic).

use std::process::Command;

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
    Ok(())
}
