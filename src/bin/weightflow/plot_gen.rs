//! `weightflow plot-gen`: the path-loss and W1 curves of several `eval-gen --json` reports on one pair of plots
//! (the paper's Figures 2 and 3 compare objectives and sources this way), without loading any model again.
//!
//! `--report LABEL=FILE` (repeatable) names each curve; FILE is the JSON document `eval-gen --json` printed
//! (schema `eval-gen/1`). Writes `PREFIXpath_loss.svg` and `PREFIXw1.svg` into `--out`; a report whose W1
//! section has a Gaussian-source model's curve (`eval-gen --gaussian-meta`) adds it as a second W1 series.
//! With `--json`, prints `{"schema": "plot-gen/1", "files": [...]}`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use weightflow::eval::svg_line_plot;

use crate::output;

/// Command-line arguments of `plot-gen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A curve: LABEL=FILE, FILE an `eval-gen --json` report (repeat for each model).
    #[arg(long = "report", required = true)]
    pub reports: Vec<String>,
    /// Directory for the plots (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Prefix of the file names (`PREFIXpath_loss.svg`, `PREFIXw1.svg`).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Print the written files as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The curves of one evaluated model: validation loss along the generation path, and W1 per marginal (its own,
/// and a Gaussian-source model's when the report has one), each as (t, value) points.
pub struct Curves {
    pub label: String,
    pub path_loss: Vec<(f64, f64)>,
    pub w1: Vec<(f64, f64)>,
    pub w1_gaussian: Option<Vec<(f64, f64)>>,
}

/// Writes `PREFIXpath_loss.svg` and `PREFIXw1.svg` with one series per curve into `dir`; returns their paths.
pub fn write_curves(dir: &Path, prefix: &str, curves: &[Curves]) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let loss: Vec<(String, Vec<(f64, f64)>)> = curves.iter().map(|c| (c.label.clone(), c.path_loss.clone())).collect();
    let mut w1: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for c in curves {
        w1.push((c.label.clone(), c.w1.clone()));
        if let Some(g) = &c.w1_gaussian {
            w1.push((format!("{}: Gaussian-source model", c.label), g.clone()));
        }
    }
    let files = [dir.join(format!("{prefix}path_loss.svg")), dir.join(format!("{prefix}w1.svg"))];
    let svgs = [
        svg_line_plot("Validation loss along the generation path", "ODE time t", "mean cross entropy", &loss),
        svg_line_plot("W1 to the trained marginals", "t_k", "W1", &w1),
    ];
    for (path, svg) in files.iter().zip(svgs) {
        std::fs::write(path, svg).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(files.to_vec())
}

/// Runs `plot-gen`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let curves = args.reports.iter().map(|r| read_report(r)).collect::<Result<Vec<_>, _>>()?;
    let files = write_curves(&args.out, &args.prefix, &curves)?;
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    output::say(format_args!("wrote {}", names.join(" and ")));
    if args.json {
        output::json(&json!({ "schema": "plot-gen/1", "files": names }))?;
    }
    Ok(())
}

/// The curves of `LABEL=FILE`.
fn read_report(spec: &str) -> Result<Curves, Box<dyn std::error::Error>> {
    let (label, file) = spec
        .split_once('=')
        .filter(|(l, f)| !l.is_empty() && !f.is_empty())
        .ok_or_else(|| format!("--report {spec:?}: expected LABEL=FILE"))?;
    let bytes = std::fs::read(file).map_err(|e| format!("--report {label}: read {file}: {e}"))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("--report {label}: {file} is not JSON: {e}"))?;
    let bad = |what: &str| format!("--report {label}: {file} {what} (expected the output of `eval-gen --json`)");
    if v["schema"] != "eval-gen/1" {
        return Err(bad(&format!("has schema {}", v["schema"])).into());
    }
    let number = |x: &Value, what: &str| x.as_f64().ok_or_else(|| bad(&format!("has a non-numeric {what}")));
    let path_loss = v["path_loss"]
        .as_array()
        .ok_or_else(|| bad("has no path_loss array"))?
        .iter()
        .map(|p| Ok((number(&p["t"], "path_loss t")?, number(&p["loss"], "path_loss loss")?)))
        .collect::<Result<Vec<_>, String>>()?;
    let t = v["w1"]["t"].as_array().ok_or_else(|| bad("has no w1.t array"))?;
    let t = t.iter().map(|x| number(x, "w1 time")).collect::<Result<Vec<_>, String>>()?;
    // W1 values are null where a marginal was not evaluated: those points are left out.
    let series = |vals: &Value, what: &str| -> Result<Vec<(f64, f64)>, String> {
        let vals = vals.as_array().ok_or_else(|| bad(&format!("has no {what} array")))?;
        if vals.len() != t.len() {
            return Err(bad(&format!("has {} {what} values for {} times", vals.len(), t.len())));
        }
        Ok(t.iter().zip(vals).filter_map(|(&t, v)| v.as_f64().map(|v| (t, v))).collect())
    };
    let w1 = series(&v["w1"]["generated"], "w1.generated")?;
    let w1_gaussian = match &v["w1"]["gaussian_source"] {
        Value::Null => None,
        g => Some(series(g, "w1.gaussian_source")?),
    };
    Ok(Curves { label: label.to_string(), path_loss, w1, w1_gaussian })
}
