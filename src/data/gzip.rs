//! Transparent gzip: data starting with the gzip magic `1f 8b` are decompressed, anything else is used as is.

use std::borrow::Cow;
use std::io::Read;

use super::error::{Error, Result};

/// The two bytes every gzip member starts with (RFC 1952).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` start with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// `bytes` decompressed if they are gzip (all members, so that trailing garbage is an error), else borrowed.
/// `file` names the data in errors.
pub fn maybe_gunzip<'a>(bytes: &'a [u8], file: &str) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
    match decoder.read_to_end(&mut out) {
        Ok(_) => Ok(Cow::Owned(out)),
        Err(source) => Err(Error::Gzip { file: file.to_owned(), decoded: out.len(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn raw_is_borrowed_and_gzip_round_trips() -> Result<()> {
        assert!(matches!(maybe_gunzip(b"abc", "f")?, Cow::Borrowed(b"abc")));
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(&*maybe_gunzip(&gzip(&data), "f")?, &data[..]);
        Ok(())
    }

    #[test]
    fn every_truncation_is_an_error() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let gz = gzip(&data);
        for cut in 2..gz.len() {
            let err = maybe_gunzip(&gz[..cut], "f.gz").expect_err("a truncated stream must fail");
            assert!(err.to_string().starts_with("f.gz: truncated or corrupt gzip stream"), "{err}");
        }
    }
}
