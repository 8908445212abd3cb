//! A small CSV reader for numeric tables with one integer class-label column, raw or gzip.

use std::path::Path;

use ndarray::Array2;

use super::dataset::{default_feature_names, Dataset};
use super::error::{Error, Result};
use super::gzip::maybe_gunzip;

/// The largest number of classes a CSV without a sklearn header may imply (labels are below it).
pub const MAX_CLASSES: usize = 1 << 16;

/// What the first line of a CSV file is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CsvHeader {
    /// Decide from the file: no header if every cell of line 1 is a number; a sklearn header if its first two
    /// cells are integers and the second + 1 is the field count of line 2; a named header otherwise.
    #[default]
    Auto,
    /// Line 1 names the columns.
    Named,
    /// Line 1 is data.
    Absent,
    /// Line 1 is `n_samples,n_features,class names…`.
    Sklearn,
}

/// Which column holds the class label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LabelColumn {
    /// The last column.
    #[default]
    Last,
    /// The column at this 0-based index (error messages count columns from 1).
    Index(usize),
    /// The column with this name in a named header.
    Name(String),
}

/// How to read a CSV file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// The first line's format.
    pub header: CsvHeader,
    /// The label column.
    pub label_column: LabelColumn,
}

/// A non-blank line: its 1-based number and text.
type Line<'a> = (usize, &'a str);

fn fields(text: &str) -> Vec<&str> {
    text.split(',')
        .map(|f| {
            let f = f.trim();
            f.strip_prefix('"').and_then(|g| g.strip_suffix('"')).unwrap_or(f)
        })
        .collect()
}

fn lines<'a>(data: &'a [u8], file: &str) -> Result<Vec<Line<'a>>> {
    let mut out = Vec::new();
    for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
        let text = std::str::from_utf8(raw).map_err(|_| Error::CsvEncoding { file: file.to_owned(), line: i + 1 })?;
        let text = if i == 0 { text.trim_start_matches('\u{feff}') } else { text };
        let text = text.strip_suffix('\r').unwrap_or(text);
        if !text.trim().is_empty() {
            out.push((i + 1, text));
        }
    }
    Ok(out)
}

fn detect(lines: &[Line<'_>]) -> CsvHeader {
    let first = fields(lines[0].1);
    if first.iter().all(|f| f.parse::<f64>().is_ok()) {
        return CsvHeader::Absent;
    }
    let declared = first.get(1).and_then(|f| f.parse::<usize>().ok());
    let n_samples_ok = first[0].parse::<usize>().is_ok();
    match (n_samples_ok, declared, lines.get(1)) {
        (true, Some(d), Some(second)) if d.checked_add(1) == Some(fields(second.1).len()) => CsvHeader::Sklearn,
        _ => CsvHeader::Named,
    }
}

fn number(cell: &str, file: &str, line: usize, column: usize) -> Result<f32> {
    let err_cell = || (file.to_owned(), cell.to_owned());
    let v: f64 = cell.parse().map_err(|_| {
        let (file, cell) = err_cell();
        Error::CsvNumber { file, line, column, cell }
    })?;
    let v32 = v as f32;
    if !v32.is_finite() {
        let (file, cell) = err_cell();
        return Err(Error::CsvNotFinite { file, line, column, cell });
    }
    Ok(v32)
}

fn label(cell: &str, max: usize, file: &str, line: usize, column: usize) -> Result<usize> {
    match cell.parse::<f64>() {
        // `max` is at most 2^16, so the comparison in f64 is exact.
        Ok(v) if v >= 0.0 && v.fract() == 0.0 && v < max as f64 => Ok(v as usize),
        _ => Err(Error::CsvLabel { file: file.to_owned(), line, column, max, cell: cell.to_owned() }),
    }
}

/// The sklearn header's sample count, field count per row and class names.
fn sklearn_header(first: &[&str], file: &str, line: usize) -> Result<(usize, usize, Vec<String>)> {
    let int = |k: usize| -> Result<usize> {
        let cell = first.get(k).copied().unwrap_or("");
        cell.parse().map_err(|_| Error::CsvNumber { file: file.to_owned(), line, column: k + 1, cell: cell.to_owned() })
    };
    let (n_samples, n_features) = (int(0)?, int(1)?);
    let n_fields = n_features.checked_add(1).ok_or_else(|| Error::CsvNumber {
        file: file.to_owned(),
        line,
        column: 2,
        cell: first[1].to_owned(),
    })?;
    Ok((n_samples, n_fields, first[2..].iter().map(|s| s.to_string()).collect()))
}

/// A data set from the bytes of a CSV file (raw or gzip); `file` names it in errors and becomes the source.
///
/// Fields are separated by `,` and trimmed; a field wrapped in `"…"` loses its quotes (quoted commas are not
/// supported: these are numeric tables). Blank lines are skipped, `\r\n` endings and a UTF-8 byte-order mark
/// are accepted. Three first-line formats ([`CsvHeader`]):
///
/// * a named header `age,sex,…,label` (UCI heart files);
/// * none: the first line is data (sklearn's `digits.csv.gz`);
/// * a *sklearn header* `n_samples,n_features,class names…` (sklearn's `iris.csv`: `150,4,setosa,versicolor,virginica`),
///   checked against the rows that follow; it fixes the number of classes.
///
/// Feature cells must be finite numbers that fit `f32`; labels must be non-negative integers (`1` or `1.0`),
/// below [`MAX_CLASSES`] or the sklearn header's class count. Without a sklearn header the number of classes is
/// the largest label + 1. Errors name the file, the 1-based line and column, and quote the cell.
pub fn parse_csv(bytes: &[u8], file: &str, options: &CsvOptions) -> Result<Dataset> {
    let data = maybe_gunzip(bytes, file)?;
    let lines = lines(&data, file)?;
    if lines.is_empty() {
        return Err(Error::Empty { file: file.to_owned(), what: "empty file, expected a header or data rows" });
    }
    let header = match options.header {
        CsvHeader::Auto => detect(&lines),
        ref h => h.clone(),
    };
    let first = fields(lines[0].1);
    // (names, class names, declared rows, fields per row, data lines)
    let (names, classes, declared, n_fields, rows) = match header {
        CsvHeader::Absent => (Vec::new(), None, None, first.len(), &lines[..]),
        CsvHeader::Named => {
            let names: Vec<String> = first.iter().map(|s| s.to_string()).collect();
            (names, None, None, first.len(), &lines[1..])
        }
        CsvHeader::Sklearn | CsvHeader::Auto => {
            let (n_samples, n_fields, classes) = sklearn_header(&first, file, lines[0].0)?;
            (Vec::new(), Some(classes).filter(|c| !c.is_empty()), Some(n_samples), n_fields, &lines[1..])
        }
    };
    if rows.is_empty() {
        return Err(Error::Empty {
            file: file.to_owned(),
            what: "expected data rows after the header line, found none",
        });
    }
    if let Some(n_samples) = declared.filter(|&d| d != rows.len()) {
        return Err(Error::CsvSklearnHeader {
            file: file.to_owned(),
            what: "data rows",
            expected: n_samples,
            found: rows.len(),
        });
    }
    let label_col = match &options.label_column {
        LabelColumn::Last => Some(n_fields - 1),
        LabelColumn::Index(i) => Some(*i).filter(|&i| i < n_fields),
        LabelColumn::Name(name) => names.iter().position(|n| n == name),
    };
    let Some(label_col) = label_col else {
        let wanted = match &options.label_column {
            LabelColumn::Name(name) => format!("{name:?}"),
            LabelColumn::Index(i) => format!("index {i}"),
            LabelColumn::Last => unreachable!("the last column always exists"),
        };
        return Err(Error::CsvLabelColumn { file: file.to_owned(), wanted, columns: names, n_columns: n_fields });
    };
    let max = classes.as_ref().map_or(MAX_CLASSES, Vec::len);

    let d = n_fields - 1;
    // A forced sklearn header may declare any number of features: every cell takes at least one byte, so the
    // file's length bounds what is worth reserving.
    let mut values = Vec::with_capacity(rows.len().saturating_mul(d).min(data.len()));
    let mut y = Vec::with_capacity(rows.len());
    for &(line, text) in rows {
        let cells = fields(text);
        if cells.len() != n_fields {
            return Err(Error::CsvRagged { file: file.to_owned(), line, expected: n_fields, found: cells.len() });
        }
        for (j, cell) in cells.iter().enumerate() {
            if j == label_col {
                y.push(label(cell, max, file, line, j + 1)?);
            } else {
                values.push(number(cell, file, line, j + 1)?);
            }
        }
    }
    let n_classes = classes.map_or_else(|| y.iter().max().map_or(0, |&m| m + 1), |c| c.len());
    let x = Array2::from_shape_vec((rows.len(), d), values).expect("one value per feature cell");
    let feature_names = if names.is_empty() {
        default_feature_names(d)
    } else {
        names.into_iter().enumerate().filter(|&(j, _)| j != label_col).map(|(_, n)| n).collect()
    };
    Dataset::new(x, y, n_classes, file)?.with_feature_names(feature_names)
}

/// A table of features only (no label column) from CSV bytes, raw or gzip: a window of live inputs to score.
/// The first line is a header when any of its cells is not a number; every other non-blank line is a row of
/// finite numbers with as many fields as the first line. Errors name the file, line and column.
pub fn parse_features_csv(bytes: &[u8], file: &str) -> Result<Array2<f32>> {
    let data = maybe_gunzip(bytes, file)?;
    let lines = lines(&data, file)?;
    if lines.is_empty() {
        return Err(Error::Empty { file: file.to_owned(), what: "empty file, expected rows of features" });
    }
    let first = fields(lines[0].1);
    let n_fields = first.len();
    let rows = if first.iter().all(|f| f.parse::<f64>().is_ok()) { &lines[..] } else { &lines[1..] };
    if rows.is_empty() {
        return Err(Error::Empty { file: file.to_owned(), what: "expected rows after the header line, found none" });
    }
    let mut values = Vec::with_capacity(rows.len() * n_fields);
    for &(line, text) in rows {
        let cells = fields(text);
        if cells.len() != n_fields {
            return Err(Error::CsvRagged { file: file.to_owned(), line, expected: n_fields, found: cells.len() });
        }
        for (j, cell) in cells.iter().enumerate() {
            values.push(number(cell, file, line, j + 1)?);
        }
    }
    Ok(Array2::from_shape_vec((rows.len(), n_fields), values).expect("one value per cell"))
}

/// [`parse_features_csv`] of the file at `path`.
pub fn load_features_csv(path: &Path) -> Result<Array2<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_features_csv(&bytes, &path.display().to_string())
}

/// [`parse_csv`] of the file at `path` (the path, displayed, is the source).
pub fn load_csv(path: &Path, options: &CsvOptions) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_csv(&bytes, &path.display().to_string(), options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Dataset> {
        parse_csv(text.as_bytes(), "t.csv", &CsvOptions::default())
    }

    #[test]
    fn feature_tables_with_or_without_header_and_their_errors() -> Result<()> {
        let plain = parse_features_csv(b"1,2\n3,4.5\n", "w.csv")?;
        assert_eq!(plain, ndarray::array![[1.0f32, 2.0], [3.0, 4.5]]);
        let named = parse_features_csv("\u{feff}age,chol\r\n\n-1,2e2\r\n".as_bytes(), "w.csv")?;
        assert_eq!(named, ndarray::array![[-1.0f32, 200.0]]);
        let err = |text: &str| parse_features_csv(text.as_bytes(), "w.csv").unwrap_err().to_string();
        assert!(err("").contains("empty file"), "{}", err(""));
        assert!(err("a,b\n").contains("found none"), "{}", err("a,b\n"));
        let ragged = err("1,2\n3\n");
        assert!(ragged.contains("w.csv:2:") && ragged.contains("expected 2 fields"), "{ragged}");
        let bad = err("a,b\n1,x\n");
        assert!(bad.contains("w.csv:2:") && bad.contains("column 2") && bad.contains("\"x\""), "{bad}");
        assert!(err("1,2\n1e39,0\n").contains("w.csv:2: column 1: expected a finite"), "f32 overflow");
        Ok(())
    }

    #[test]
    fn detects_the_three_header_formats() -> Result<()> {
        let named = parse("a, b ,label\r\n1,2,0\n\n3,4.5,1.0\n")?;
        assert_eq!(named.feature_names, ["a", "b"]);
        assert_eq!(named.x, ndarray::array![[1.0f32, 2.0], [3.0, 4.5]]);
        assert_eq!((named.y.clone(), named.n_classes), (vec![0, 1], 2));

        let absent = parse("1,2,3\n4,5,0")?;
        assert_eq!((absent.len(), absent.n_features(), absent.n_classes), (2, 2, 4));
        assert_eq!(absent.feature_names, ["x0", "x1"]);

        let sk = parse("2,2,a,b,c\n1,2,0\n3,4,1\n")?;
        assert_eq!((sk.len(), sk.n_classes), (2, 3));
        Ok(())
    }

    #[test]
    fn label_column_by_name_and_index() -> Result<()> {
        let opts = CsvOptions { label_column: LabelColumn::Name("y".into()), ..Default::default() };
        let ds = parse_csv(b"y,a,b\n1,2,3\n", "t.csv", &opts)?;
        assert_eq!((ds.y.clone(), ds.feature_names.clone()), (vec![1], vec!["a".to_string(), "b".to_string()]));
        let opts = CsvOptions { label_column: LabelColumn::Index(0), header: CsvHeader::Absent };
        let ds = parse_csv(b"2,5,6\n", "t.csv", &opts)?;
        assert_eq!((ds.y.clone(), ds.n_classes), (vec![2], 3));
        let opts = CsvOptions { label_column: LabelColumn::Index(3), header: CsvHeader::Absent };
        let err = parse_csv(b"2,5,6\n", "t.csv", &opts).unwrap_err();
        assert_eq!(err.to_string(), "t.csv:1: expected a label column index 3, found no header and 3 columns");
        Ok(())
    }

    #[test]
    fn sklearn_header_is_checked() {
        let err = parse("3,2,a,b\n1,2,0\n3,4,1\n").unwrap_err();
        assert_eq!(err.to_string(), "t.csv:1: sklearn header: expected 3 data rows, found 2");
        let err = parse("2,2,a,b\n1,2,0\n3,4,2\n").unwrap_err();
        assert_eq!(err.to_string(), "t.csv:3: column 3: expected a class label, an integer in 0..2, found \"2\"");
    }

    #[test]
    fn forced_sklearn_header_with_huge_feature_count_fails_without_allocating() {
        let opts = CsvOptions { header: CsvHeader::Sklearn, ..Default::default() };
        let err = parse_csv(b"1,1000000000000000,a\n1,0\n", "t.csv", &opts).unwrap_err();
        assert_eq!(err.to_string(), "t.csv:2: expected 1000000000000001 fields, found 2");
    }

    #[test]
    fn label_above_the_cap_is_rejected() {
        let err = parse("1,65536\n").unwrap_err();
        assert!(err.to_string().contains("integer in 0..65536, found \"65536\""), "{err}");
    }
}
