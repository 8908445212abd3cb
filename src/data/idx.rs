//! The IDX format of MNIST (LeCun et al.), raw or gzip-compressed (detected by the magic `1f 8b`).

use std::path::Path;

use ndarray::Array2;

use super::dataset::Dataset;
use super::error::{Error, Result};
use super::gzip::{is_gzip, maybe_gunzip};

/// Magic number of an IDX file of u8 images `[n, rows, cols]`.
pub const IDX_IMAGES_MAGIC: u32 = 0x0803;
/// Magic number of an IDX file of u8 labels `[n]`.
pub const IDX_LABELS_MAGIC: u32 = 0x0801;

/// Images read from an IDX file.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxImages {
    /// One flattened image per row, `[n, rows * cols]`, pixels in `0..=255`.
    pub pixels: Array2<f32>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

/// The dimensions and data of a u8 IDX file with `magic` (whose low byte is the number of dimensions).
struct Raw<'a> {
    dims: Vec<usize>,
    data: &'a [u8],
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes([bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]])
}

fn parse_raw<'a>(bytes: &'a [u8], file: &str, decompressed: bool, magic: u32) -> Result<Raw<'a>> {
    let file = || file.to_owned();
    if bytes.len() < 4 {
        return Err(Error::IdxHeader { file: file(), decompressed, expected: 4, found: bytes.len() });
    }
    let found = read_u32(bytes, 0);
    if found != magic {
        return Err(Error::IdxMagic { file: file(), decompressed, expected: magic, found });
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(Error::IdxHeader { file: file(), decompressed, expected: header, found: bytes.len() });
    }
    let dims32: Vec<u32> = (0..ndims).map(|k| read_u32(bytes, 4 + 4 * k)).collect();
    // The product of the non-zero dimensions bounds every dimension and every partial product (the features
    // per image even when there are no images), so once it is addressable nothing below can overflow.
    let nonzero = dims32
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
        .filter(|&p| p <= isize::MAX as u64);
    let Some(nonzero) = nonzero else {
        return Err(Error::IdxOverflow { file: file(), decompressed, dims: dims32 });
    };
    let expected = if dims32.contains(&0) { 0 } else { nonzero };
    let data = &bytes[header..];
    // `expected` fits in usize whenever it is at most `data.len()`.
    let len = match usize::try_from(expected) {
        Ok(len) if len <= data.len() => len,
        _ => {
            return Err(Error::IdxData {
                file: file(),
                decompressed,
                offset: header,
                dims: dims32,
                expected,
                found: data.len(),
            })
        }
    };
    if data.len() > len {
        return Err(Error::IdxTrailing { file: file(), decompressed, offset: header + len, extra: data.len() - len });
    }
    // Each dimension is at most `nonzero <= isize::MAX`.
    let dims = dims32.iter().map(|&d| d as usize).collect();
    Ok(Raw { dims, data })
}

/// Images from the bytes of an IDX images file (magic 2051), raw or gzip; `file` names them in errors.
///
/// An IDX file is a big-endian header — magic `0x0000TTDD` (type `TT`, `DD` dimensions), then one u32 per
/// dimension — followed by the data, row-major. Only unsigned bytes (`TT = 0x08`) are read here:
/// images have magic 2051 (`0x00000803`, dimensions `[n, rows, cols]`), labels 2049 (`0x00000801`, `[n]`).
///
/// The reader checks every size before it allocates: the declared data length is computed with checked
/// arithmetic and compared with the bytes actually present, so a header claiming 2^31 images of a short file
/// fails at once; bytes after the declared data are an error too. Offsets in errors count bytes of the
/// decompressed stream when the file is gzip (the message then says `(decompressed)`).
///
/// Pixels become `f32` in `0..=255`, unscaled (standardisation comes later, see
/// [`Standardizer`](crate::data::Standardizer)).
pub fn parse_idx_images(bytes: &[u8], file: &str) -> Result<IdxImages> {
    let bytes_owned = maybe_gunzip(bytes, file)?;
    let raw = parse_raw(&bytes_owned, file, is_gzip(bytes), IDX_IMAGES_MAGIC)?;
    let (n, rows, cols) = (raw.dims[0], raw.dims[1], raw.dims[2]);
    let values = raw.data.iter().map(|&b| f32::from(b)).collect();
    let pixels = Array2::from_shape_vec((n, rows * cols), values).expect("length checked against the header");
    Ok(IdxImages { pixels, rows, cols })
}

/// Labels from the bytes of an IDX labels file (magic 2049), raw or gzip; `file` names them in errors.
pub fn parse_idx_labels(bytes: &[u8], file: &str) -> Result<Vec<usize>> {
    let bytes_owned = maybe_gunzip(bytes, file)?;
    let raw = parse_raw(&bytes_owned, file, is_gzip(bytes), IDX_LABELS_MAGIC)?;
    Ok(raw.data.iter().map(|&b| usize::from(b)).collect())
}

/// A data set from the bytes of an images file and a labels file (raw or gzip), which must hold as many items.
/// Classes are `max label + 1`; features are named `x0`…; the source is `images_file`.
pub fn idx_dataset(images: &[u8], images_file: &str, labels: &[u8], labels_file: &str) -> Result<Dataset> {
    let images_parsed = parse_idx_images(images, images_file)?;
    let y = parse_idx_labels(labels, labels_file)?;
    if y.len() != images_parsed.pixels.nrows() {
        return Err(Error::IdxCount {
            images_file: images_file.to_owned(),
            labels_file: labels_file.to_owned(),
            images: images_parsed.pixels.nrows(),
            labels: y.len(),
        });
    }
    let n_classes = y.iter().max().map_or(0, |&m| m + 1);
    Dataset::new(images_parsed.pixels, y, n_classes, images_file)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// [`parse_idx_images`] of the file at `path`.
pub fn load_idx_images(path: &Path) -> Result<IdxImages> {
    parse_idx_images(&read(path)?, &path.display().to_string())
}

/// [`parse_idx_labels`] of the file at `path`.
pub fn load_idx_labels(path: &Path) -> Result<Vec<usize>> {
    parse_idx_labels(&read(path)?, &path.display().to_string())
}

/// [`idx_dataset`] of the files at `images` and `labels`.
pub fn load_idx(images: &Path, labels: &Path) -> Result<Dataset> {
    idx_dataset(&read(images)?, &images.display().to_string(), &read(labels)?, &labels.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn tiny_images_and_labels() -> Result<()> {
        let mut img = header(IDX_IMAGES_MAGIC, &[2, 1, 3]);
        img.extend_from_slice(&[0, 1, 255, 9, 8, 7]);
        let mut lab = header(IDX_LABELS_MAGIC, &[2]);
        lab.extend_from_slice(&[3, 1]);
        let ds = idx_dataset(&img, "i", &lab, "l")?;
        assert_eq!(ds.x, ndarray::array![[0.0f32, 1.0, 255.0], [9.0, 8.0, 7.0]]);
        assert_eq!((ds.y.clone(), ds.n_classes, ds.source.as_str()), (vec![3, 1], 4, "i"));
        Ok(())
    }

    #[test]
    fn huge_header_fails_before_allocating() {
        let mut img = header(IDX_IMAGES_MAGIC, &[1 << 31, 28, 28]);
        img.extend_from_slice(&[0; 100]);
        let err = parse_idx_images(&img, "big").unwrap_err();
        assert_eq!(
            err.to_string(),
            "big: truncated IDX data at byte offset 16: expected 1683627180032 bytes (dimensions [2147483648, 28, 28]), found 100"
        );
        let img = header(IDX_IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX]);
        let err = parse_idx_images(&img, "huge").unwrap_err();
        assert!(err.to_string().contains("huge: byte offset 4: IDX dimensions"), "{err}");
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut lab = header(IDX_LABELS_MAGIC, &[2]);
        lab.extend_from_slice(&[3, 1, 0]);
        let err = parse_idx_labels(&lab, "l").unwrap_err();
        assert_eq!(err.to_string(), "l: 1 trailing bytes at byte offset 10, expected end of file");
    }
}
