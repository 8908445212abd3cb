//! The byte format: header, manifest, sections; the writer and the strict reader.
//!
//! ```text
//! offset 0   8 bytes   magic  b"WFBUNDL\0"
//!        8   u32 LE    format version
//!       12   u64 LE    manifest length L (≤ MAX_MANIFEST)
//!       20   32 bytes  sha256 of the manifest
//!       52   L bytes   manifest (JSON)
//!     52+L   …         data area: the manifest's sections back to back, in order, nothing after them
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array1, Array2};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::detect::EnsembleSize;

use super::{
    Bundle, BundleError, Manifest, Section, FORMAT_VERSION, MAGIC, OLDEST_READABLE_VERSION, SECTION_ONNX,
    SECTION_TENSORS,
};

/// Header bytes: magic, version, manifest length, manifest sha256.
pub const HEADER: usize = 8 + 4 + 8 + 32;
/// The largest manifest the reader accepts (calibration tables included).
pub const MAX_MANIFEST: u64 = 64 << 20;

/// Tensor names in the tensors section.
const T_F: &str = "f";
const T_P_REF: &str = "p_ref";
const T_P_LABELS: &str = "p_labels";
/// The stored candidate pool (format ≥ 2, optional).
const T_POOL: &str = "pool";
/// The first format version with a stored pool.
const POOL_SINCE: u32 = 2;
/// The first format version whose ensemble settings may hold a per-class size or a cap on the candidates.
const ENSEMBLE_SIZE_SINCE: u32 = 3;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

impl Bundle {
    /// The bundle's bytes. Deterministic: the same bundle gives the same bytes (fixed field and section order,
    /// JSON objects with sorted keys, safetensors without metadata). Checks shapes first.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        self.validate()?;
        let tensors = self.tensor_bytes()?;
        let mut sections = Vec::new();
        let mut offset = 0u64;
        for (name, bytes) in [(SECTION_ONNX, self.onnx.as_slice()), (SECTION_TENSORS, tensors.as_slice())] {
            sections.push(Section { name: name.into(), offset, length: bytes.len() as u64, sha256: sha256_hex(bytes) });
            offset += bytes.len() as u64;
        }
        let manifest = Manifest { format_version: FORMAT_VERSION, sections, ..self.manifest.clone() };
        let json = serde_json::to_vec(&manifest).map_err(BundleError::Manifest)?;
        let mut out = Vec::with_capacity(HEADER + json.len() + offset as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&json));
        out.extend_from_slice(&json);
        out.extend_from_slice(&self.onnx);
        out.extend_from_slice(&tensors);
        Ok(out)
    }

    /// Writes the bundle to `path` atomically: a temporary file in the same directory, then a rename.
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let bytes = self.to_bytes()?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
        let io = |op, path: &Path, source| BundleError::Io { op, path: path.to_path_buf(), source };
        std::fs::write(&tmp, &bytes).map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io("rename", path, e)
        })
    }

    /// Reads and checks the bundle at `path` (see [`Self::from_bytes`]).
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        if path.is_dir() {
            return Err(BundleError::NotABundle { reason: format!("{} is a directory", path.display()) });
        }
        let bytes = std::fs::read(path).map_err(|source| BundleError::Io { op: "read", path: path.into(), source })?;
        Self::from_bytes(&bytes)
    }

    /// Parses and checks bundle bytes: magic, version, manifest length and JSON, the sections table
    /// (contiguous, in order, exactly filling the rest), every section's sha256, then the tensors' names,
    /// dtypes and shapes against the manifest. Nothing is trusted before its check.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        let (version, manifest_bytes) = header(bytes)?;
        let manifest: Manifest = serde_json::from_slice(manifest_bytes).map_err(BundleError::Manifest)?;
        if manifest.format_version != version {
            return Err(BundleError::Invalid {
                field: "format_version",
                reason: format!("manifest says {}, header says {version}", manifest.format_version),
            });
        }
        let e = &manifest.ensemble;
        if version < ENSEMBLE_SIZE_SINCE
            && (e.candidates.is_some() || !matches!(e.ensemble_size, EnsembleSize::Fixed(_)))
        {
            return Err(BundleError::Invalid {
                field: "ensemble",
                reason: format!("a per-class ensemble size or a candidate cap needs format version {ENSEMBLE_SIZE_SINCE}, the bundle says {version}"),
            });
        }
        let data = &bytes[HEADER + manifest_bytes.len()..];
        let sections = sections(&manifest.sections, data)?;
        let tensors = SafeTensors::deserialize(sections[SECTION_TENSORS]).map_err(BundleError::Tensors)?;
        let Tensors { f, p_ref, p_labels, pool } = read_tensors(&tensors, version)?;
        let bundle = Bundle { onnx: sections[SECTION_ONNX].to_vec(), manifest, f, p_ref, p_labels, pool };
        bundle.validate()?;
        Ok(bundle)
    }

    fn tensor_bytes(&self) -> Result<Vec<u8>, BundleError> {
        let f = le_bytes(self.f.iter());
        let p = le_bytes(self.p_ref.iter());
        let labels: Vec<u8> = self.p_labels.iter().flat_map(|x| x.to_le_bytes()).collect();
        let pool = self.pool.as_ref().map(|m| (m.shape().to_vec(), le_bytes(m.iter())));
        let mut views = vec![
            (T_F, TensorView::new(Dtype::F32, vec![self.f.len()], &f)),
            (T_P_REF, TensorView::new(Dtype::F32, self.p_ref.shape().to_vec(), &p)),
            (T_P_LABELS, TensorView::new(Dtype::U32, vec![self.p_labels.len()], &labels)),
        ];
        if let Some((shape, bytes)) = &pool {
            views.push((T_POOL, TensorView::new(Dtype::F32, shape.clone(), bytes)));
        }
        let views = views
            .into_iter()
            .map(|(n, v)| v.map(|v| (n, v)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(BundleError::Tensors)?;
        safetensors::serialize(views, None).map_err(BundleError::Tensors)
    }
}

/// Checks magic, version and manifest length; returns the version and the manifest's bytes.
fn header(bytes: &[u8]) -> Result<(u32, &[u8]), BundleError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        let reason = if bytes.is_empty() {
            "the file is empty".to_string()
        } else if bytes.len() < MAGIC.len() {
            format!("{} bytes, shorter than the {}-byte magic", bytes.len(), MAGIC.len())
        } else {
            "wrong magic bytes".to_string()
        };
        return Err(BundleError::NotABundle { reason });
    }
    let available = |from: usize| bytes.len().saturating_sub(from) as u64;
    if bytes.len() < HEADER {
        return Err(BundleError::Truncated { what: "header".into(), needed: HEADER as u64, available: available(0) });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(BundleError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    if len > MAX_MANIFEST {
        return Err(BundleError::ManifestTooLarge { len, limit: MAX_MANIFEST });
    }
    if len > available(HEADER) {
        return Err(BundleError::Truncated { what: "manifest".into(), needed: len, available: available(HEADER) });
    }
    let len = usize::try_from(len).expect("≤ MAX_MANIFEST fits in usize");
    let manifest = &bytes[HEADER..HEADER + len];
    let (expected, got) = (hex(&bytes[20..HEADER]), sha256_hex(manifest));
    if expected != got {
        return Err(BundleError::Checksum { section: "manifest".into(), expected, got });
    }
    Ok((version, manifest))
}

/// Checks the sections table against the data area and every sha256; returns the sections by name.
fn sections<'a>(table: &[Section], data: &'a [u8]) -> Result<BTreeMap<&'static str, &'a [u8]>, BundleError> {
    let mut out = BTreeMap::new();
    let mut offset = 0u64;
    let expected = [SECTION_ONNX, SECTION_TENSORS];
    if table.len() != expected.len() {
        let names: Vec<&str> = table.iter().map(|s| s.name.as_str()).collect();
        return Err(BundleError::Section {
            name: "table".into(),
            reason: format!("expected sections {expected:?}, got {names:?}"),
        });
    }
    for (s, &name) in table.iter().zip(&expected) {
        let err = |reason: String| BundleError::Section { name: s.name.clone(), reason };
        if s.name != name {
            return Err(err(format!("expected section {name:?} here")));
        }
        if s.offset != offset {
            return Err(err(format!("starts at {}, the previous section ends at {offset}", s.offset)));
        }
        let end = offset.checked_add(s.length).ok_or_else(|| err(format!("length {} overflows", s.length)))?;
        if end > data.len() as u64 {
            let available = data.len() as u64 - offset;
            return Err(BundleError::Truncated { what: format!("section {name}"), needed: s.length, available });
        }
        let bytes = &data[offset as usize..end as usize];
        let got = sha256_hex(bytes);
        if got != s.sha256 {
            return Err(BundleError::Checksum { section: name.into(), expected: s.sha256.clone(), got });
        }
        out.insert(name, bytes);
        offset = end;
    }
    if offset != data.len() as u64 {
        return Err(BundleError::TrailingBytes { extra: data.len() as u64 - offset });
    }
    Ok(out)
}

/// The tensors section's contents.
struct Tensors {
    f: Array1<f32>,
    p_ref: Array2<f32>,
    p_labels: Vec<u32>,
    pool: Option<Array2<f32>>,
}

/// The tensors, each checked for dtype and rank (the shapes against the manifest in `validate`): f, p_ref and
/// p_labels always; pool where the format has it and the writer stored it.
fn read_tensors(st: &SafeTensors<'_>, version: u32) -> Result<Tensors, BundleError> {
    let mut names = st.names();
    names.sort();
    let required = [T_F, T_P_LABELS, T_P_REF];
    let with_pool = [T_F, T_P_LABELS, T_P_REF, T_POOL];
    let has_pool = version >= POOL_SINCE && names == with_pool;
    if names != required && !has_pool {
        let expected = if version >= POOL_SINCE {
            format!("{required:?} or {with_pool:?}")
        } else {
            format!("{required:?} (format version {version})")
        };
        return Err(BundleError::Shape { what: "tensors".into(), expected, got: format!("{names:?}") });
    }
    let get = |name: &str, dtype: Dtype, rank: usize| -> Result<(Vec<usize>, Vec<[u8; 4]>), BundleError> {
        let t = st.tensor(name).map_err(BundleError::Tensors)?;
        if t.dtype() != dtype || t.shape().len() != rank {
            return Err(BundleError::Shape {
                what: format!("tensor {name}"),
                expected: format!("{dtype:?} of rank {rank}"),
                got: format!("{:?} {:?}", t.dtype(), t.shape()),
            });
        }
        let words = t.data().chunks_exact(4).map(|c| c.try_into().expect("4 bytes")).collect();
        Ok((t.shape().to_vec(), words))
    };
    let (_, f) = get(T_F, Dtype::F32, 1)?;
    let (p_shape, p) = get(T_P_REF, Dtype::F32, 2)?;
    let (_, labels) = get(T_P_LABELS, Dtype::U32, 1)?;
    let matrix = |shape: Vec<usize>, words: Vec<[u8; 4]>| {
        Array2::from_shape_vec((shape[0], shape[1]), words.into_iter().map(f32::from_le_bytes).collect())
            .expect("safetensors checked the byte length against the shape")
    };
    let pool = if has_pool {
        let (shape, words) = get(T_POOL, Dtype::F32, 2)?;
        Some(matrix(shape, words))
    } else {
        None
    };
    let f = Array1::from_iter(f.into_iter().map(f32::from_le_bytes));
    let p_labels = labels.into_iter().map(u32::from_le_bytes).collect();
    Ok(Tensors { f, p_ref: matrix(p_shape, p), p_labels, pool })
}

/// Little-endian bytes of `values`. ndarray iterates in logical (row-major) order whatever the memory layout,
/// so no standard-layout copy is needed first.
fn le_bytes<'a>(values: impl Iterator<Item = &'a f32>) -> Vec<u8> {
    values.flat_map(|x| x.to_le_bytes()).collect()
}
