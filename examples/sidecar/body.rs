//! Request bodies: a window of rows as JSON (`{"rows": [[…], …], "seed": 7}`) or CSV (one row per line, an
//! optional header line of names), checked strictly so a bad request gets a 400 with a message that says what
//! is wrong and where.

use ndarray::Array2;
use serde::Deserialize;

/// The largest body the sidecar reads (a window of a few thousand rows of a few hundred features).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// A parsed window: rows `[n, features]` and the seed to score it with.
#[derive(Debug, PartialEq)]
pub struct Window {
    /// The rows, raw (the detector standardises them).
    pub rows: Array2<f32>,
    /// The scoring seed (`0` unless the request names one).
    pub seed: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonWindow {
    rows: Vec<Vec<f32>>,
    #[serde(default)]
    seed: u64,
}

/// Parse a body of this content type (`application/json`, or `text/csv`).
pub fn parse(content_type: &str, body: &[u8]) -> Result<Window, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?;
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => {
            let w: JsonWindow = serde_json::from_str(text).map_err(|e| format!("bad JSON window: {e}"))?;
            Ok(Window { rows: matrix(w.rows)?, seed: w.seed })
        }
        "text/csv" => Ok(Window { rows: matrix(csv_rows(text)?)?, seed: 0 }),
        other => Err(format!("unsupported content type {other:?}: send application/json or text/csv")),
    }
}

fn csv_rows(text: &str) -> Result<Vec<Vec<f32>>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Result<Vec<f32>, _> = line.split(',').map(|c| c.trim().parse::<f32>()).collect();
        match cells {
            Ok(row) => rows.push(row),
            // A first line that is not numbers is a header of names.
            Err(_) if rows.is_empty() && i == 0 => continue,
            Err(e) => return Err(format!("CSV line {}: {e} in {line:?}", i + 1)),
        }
    }
    Ok(rows)
}

fn matrix(rows: Vec<Vec<f32>>) -> Result<Array2<f32>, String> {
    let width = rows.first().map_or(0, Vec::len);
    if rows.is_empty() || width == 0 {
        return Err("the window has no rows".into());
    }
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(format!("row {i} has {} values, row 0 has {width}", r.len()));
    }
    let n = rows.len();
    Array2::from_shape_vec((n, width), rows.into_iter().flatten().collect()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn json_and_csv_give_the_same_window() {
        let json = parse("application/json; charset=utf-8", br#"{"rows": [[1, 2.5], [3, -4]], "seed": 9}"#).unwrap();
        assert_eq!(json, Window { rows: array![[1.0, 2.5], [3.0, -4.0]], seed: 9 });
        let csv = parse("text/csv", b"a,b\n1,2.5\n\n3,-4\n").unwrap();
        assert_eq!(csv.rows, json.rows);
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        for (ct, body, needle) in [
            ("application/json", &b"{\"rows\": []}"[..], "no rows"),
            ("application/json", b"{\"rows\": [[1,2],[3]]}", "row 1 has 1 values, row 0 has 2"),
            ("application/json", b"{\"rowz\": [[1]]}", "bad JSON window"),
            ("text/csv", b"1,2\n3,x\n", "CSV line 2"),
            ("text/plain", b"1", "unsupported content type"),
            ("text/csv", b"\xff", "not UTF-8"),
        ] {
            let err = parse(ct, body).unwrap_err();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
    }
}
