//! Value parsers shared by the subcommands.

use serde::de::DeserializeOwned;

/// Parses a kebab-case enum (`cfm`, `minibatch-ot`, …) through its serde names, so the command line accepts
/// exactly the spellings the manifests use, and lists them on error.
pub fn kebab<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| {
        // serde's message names the expected variants ("expected one of `cfm`, `mmfm`, `jko`").
        let msg = e.to_string();
        msg.split(" at line").next().unwrap_or(&msg).to_string()
    })
}

/// Parses a comma-separated list of widths, e.g. `512,512,512`.
pub fn widths(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|w| w.trim().parse::<usize>().map_err(|e| format!("{w:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|v| if v.is_empty() || v.contains(&0) { Err("widths must be positive".into()) } else { Ok(v) })
}
