//! The bundle's writer and strict reader: round trip, determinism, and one refusal per kind of damage.
//! No candle and no onnxruntime: the ONNX section is opaque bytes to this layer.

use ndarray::{Array1, Array2};
use rand::Rng as _;
use weightflow::bundle::{Bundle, BundleError, Manifest, PoolSpec, FORMAT_VERSION, MAGIC, OLDEST_READABLE_VERSION};
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::Standardizer;
use weightflow::detect::{Calibration, EnsembleConfig, EnsembleSize, StepRule};
use weightflow::ode::Sampler;
use weightflow::rng;
use weightflow::space::{Layout, SourceKind};

type TestResult = Result<(), Box<dyn std::error::Error>>;

use sha2::{Digest, Sha256};
use weightflow::bundle::codec::HEADER;

fn sample_bundle() -> Bundle {
    let layout = Layout::parse("3-4-2").unwrap();
    let mut r = rng::rng(5);
    let f = Array1::from_iter((0..layout.dim()).map(|_| r.random_range(-1.0f32..1.0)));
    let p_ref = Array2::from_shape_fn((6, 3), |_| r.random_range(-2.0f32..2.0));
    let pool = Array2::from_shape_fn((64, layout.dim()), |_| r.random_range(-1.0f32..1.0));
    Bundle {
        manifest: Manifest {
            format_version: 0,
            producer: format!("weightflow {}", weightflow::VERSION),
            classifier: Mlp::new(layout, Activation::default()),
            standardizer: Standardizer { mean: vec![0.5, -1.0, 2.0], std: vec![1.0, 2.0, 0.5] },
            source: SourceKind::Kaiming,
            sampler: Sampler::Heun,
            steps: 20,
            pool: PoolSpec { size: 64, seed: 11 },
            ensemble: EnsembleConfig::untilted(),
            calibration: vec![
                Calibration {
                    window_size: 10,
                    null_entropy: vec![0.5, 1.25, 0.1],
                    null_disagreement: vec![0.1, 0.2, 0.0],
                },
                Calibration { window_size: 20, null_entropy: vec![0.3], null_disagreement: vec![0.05] },
            ],
            sections: Vec::new(),
        },
        onnx: (0..300u32).map(|i| (i * 7 % 251) as u8).collect(),
        f,
        p_ref,
        p_labels: vec![0, 1, 1, 0, 1, 0],
        pool: Some(pool),
    }
}

/// `bytes` with the manifest's JSON edited by `edit` and the header's version, length and digest rewritten
/// to match: a bundle that is consistent byte-wise, for checks that must look past the checksums.
fn rewrite_manifest(bytes: &[u8], version: u32, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let range = manifest_range(bytes);
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes[range.clone()]).unwrap();
    edit(&mut manifest);
    let json = serde_json::to_vec(&manifest).unwrap();
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&json));
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[range.end..]);
    out
}

/// Where the manifest lies in `bytes`.
fn manifest_range(bytes: &[u8]) -> std::ops::Range<usize> {
    let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    HEADER..HEADER + len
}

#[test]
fn round_trip_is_exact_and_writing_is_deterministic_and_atomic() -> TestResult {
    let b = sample_bundle();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.wfb");
    b.write(&path)?;
    let back = Bundle::read(&path)?;
    assert_eq!(back.manifest.format_version, FORMAT_VERSION);
    assert_eq!(back.manifest.sections.len(), 2);
    let expected = Bundle { manifest: back.manifest.clone(), ..b.clone() };
    assert_eq!(back, expected, "every part comes back bit-exact");
    assert_eq!(back.manifest.steps, 20);
    assert_eq!(back.manifest.calibration, b.manifest.calibration);
    // Same inputs → same bytes; a re-written read bundle too.
    let bytes = std::fs::read(&path)?;
    assert_eq!(bytes, b.to_bytes()?);
    assert_eq!(bytes, back.to_bytes()?);
    // Only the bundle is left in the directory (no temporary file).
    let names: Vec<_> = std::fs::read_dir(dir.path())?.map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("model.wfb")]);
    Ok(())
}

#[test]
fn every_truncation_is_refused_with_a_size_error() -> TestResult {
    let bytes = sample_bundle().to_bytes()?;
    for cut in [0, 3, 8, 12, 19, 20, HEADER - 1, HEADER + 10, manifest_range(&bytes).end, bytes.len() - 1] {
        let err = Bundle::from_bytes(&bytes[..cut]).unwrap_err();
        let ok = match cut {
            0..8 => matches!(err, BundleError::NotABundle { .. }),
            _ => matches!(err, BundleError::Truncated { .. }),
        };
        assert!(ok, "cut at {cut}: {err}");
    }
    Ok(())
}

#[test]
fn a_flipped_bit_anywhere_is_caught() -> TestResult {
    let bytes = sample_bundle().to_bytes()?;
    // Every 7th byte (all regions: header, manifest, both sections), one bit each.
    for pos in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x10;
        let Err(err) = Bundle::from_bytes(&bad) else {
            panic!("flip at byte {pos} of {} was accepted", bytes.len());
        };
        if pos >= 20 {
            assert!(matches!(err, BundleError::Checksum { .. }), "flip at {pos} (digest, manifest, data): {err}");
        }
    }
    Ok(())
}

#[test]
fn foreign_inputs_are_not_bundles() -> TestResult {
    let dir = tempfile::tempdir()?;
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"")?;
    let noise = dir.path().join("noise");
    let mut r = rng::rng(3);
    std::fs::write(&noise, (0..4096).map(|_| r.random::<u8>()).collect::<Vec<u8>>())?;
    for path in [&empty, &noise, &dir.path().to_path_buf()] {
        let err = Bundle::read(path).unwrap_err();
        assert!(matches!(err, BundleError::NotABundle { .. }), "{}: {err}", path.display());
        assert!(err.to_string().starts_with("not a weightflow bundle"), "{err}");
    }
    let missing = Bundle::read(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(missing, BundleError::Io { .. }), "{missing}");
    Ok(())
}

#[test]
fn future_versions_and_oversized_or_trailing_parts_are_refused() -> TestResult {
    let bytes = sample_bundle().to_bytes()?;
    let mut future = bytes.clone();
    future[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = Bundle::from_bytes(&future).unwrap_err();
    assert!(
        matches!(err, BundleError::UnsupportedVersion { found, supported } if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION),
        "{err}"
    );
    let mut huge = bytes.clone();
    huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(Bundle::from_bytes(&huge).unwrap_err(), BundleError::ManifestTooLarge { .. }));
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"extra");
    assert!(matches!(Bundle::from_bytes(&trailing).unwrap_err(), BundleError::TrailingBytes { extra: 5 }));
    assert_eq!(&bytes[..8], &MAGIC);
    Ok(())
}

#[test]
fn a_consistent_but_wrong_manifest_is_refused_by_shape_checks() -> TestResult {
    // Rewrite the manifest with a different classifier while keeping the header and checksums valid: the
    // reader must compare the tensors with the manifest, not only the bytes with their digests.
    let bytes = sample_bundle().to_bytes()?;
    let bad = rewrite_manifest(&bytes, FORMAT_VERSION, |m| m["classifier"]["layout"] = serde_json::json!([3, 5, 2]));
    let err = Bundle::from_bytes(&bad).unwrap_err();
    assert!(matches!(err, BundleError::Shape { ref what, .. } if what == "tensor f"), "{err}");
    // Invalid values are refused on write, before anything reaches the disk.
    let mut b = sample_bundle();
    b.p_labels[2] = 7;
    assert!(matches!(b.to_bytes().unwrap_err(), BundleError::Invalid { field: "p_labels", .. }));
    let mut b = sample_bundle();
    b.manifest.steps = 0;
    assert!(matches!(b.to_bytes().unwrap_err(), BundleError::Invalid { field: "steps", .. }));
    let mut b = sample_bundle();
    b.manifest.calibration[1].window_size = 10;
    assert!(matches!(b.to_bytes().unwrap_err(), BundleError::Invalid { field: "calibration", .. }));
    let mut b = sample_bundle();
    b.manifest.calibration[0].null_entropy.pop();
    assert!(matches!(b.to_bytes().unwrap_err(), BundleError::Invalid { field: "calibration", .. }));
    let mut b = sample_bundle();
    b.manifest.ensemble.alpha = 1.5;
    assert!(matches!(b.to_bytes().unwrap_err(), BundleError::Invalid { field: "ensemble", .. }));
    let mut b = sample_bundle();
    b.p_ref[[0, 0]] = f32::NAN;
    assert!(matches!(b.to_bytes().unwrap_err(), BundleError::Invalid { .. }));
    let mut b = sample_bundle();
    b.pool.as_mut().unwrap()[[3, 1]] = f32::INFINITY;
    assert!(matches!(b.to_bytes().unwrap_err(), BundleError::Invalid { field: "pool", .. }));
    let mut b = sample_bundle();
    b.manifest.pool.size = 63;
    let err = b.to_bytes().unwrap_err();
    assert!(matches!(err, BundleError::Shape { ref what, .. } if what == "tensor pool"), "{err}");
    Ok(())
}

#[test]
fn the_pool_is_optional_and_version_1_bundles_still_read() -> TestResult {
    // Without a stored pool a current bundle round-trips with None (the detector generates it at open).
    let b = Bundle { pool: None, ..sample_bundle() };
    let back = Bundle::from_bytes(&b.to_bytes()?)?;
    assert_eq!(back.pool, None);
    assert_eq!(back.f, b.f);
    // A version-1 file (no pool: the format had none) reads, and says so.
    let v1 = rewrite_manifest(&b.to_bytes()?, 1, |m| m["format_version"] = 1.into());
    let old = Bundle::from_bytes(&v1)?;
    assert_eq!((old.manifest.format_version, old.pool.is_none()), (1, true));
    assert_eq!(OLDEST_READABLE_VERSION, 1);
    // A pool tensor in a version-1 file is a damaged file, not a silently accepted one.
    let v1_with_pool = rewrite_manifest(&sample_bundle().to_bytes()?, 1, |m| m["format_version"] = 1.into());
    let err = Bundle::from_bytes(&v1_with_pool).unwrap_err();
    assert!(matches!(err, BundleError::Shape { ref what, .. } if what == "tensors"), "{err}");
    // Header and manifest must agree on the version.
    let mismatch = rewrite_manifest(&b.to_bytes()?, 1, |_| {});
    let err = Bundle::from_bytes(&mismatch).unwrap_err();
    assert!(matches!(err, BundleError::Invalid { field: "format_version", .. }), "{err}");
    // Version 0 predates the format.
    let zero = rewrite_manifest(&b.to_bytes()?, 0, |m| m["format_version"] = 0.into());
    assert!(matches!(Bundle::from_bytes(&zero).unwrap_err(), BundleError::UnsupportedVersion { found: 0, .. }));
    Ok(())
}

#[test]
fn version_2_bundles_read_with_their_fixed_size_and_cannot_claim_version_3_settings() -> TestResult {
    // A version-2 manifest stored the ensemble size as a number and had no candidate cap: it reads as written.
    let mut b = sample_bundle();
    b.manifest.ensemble =
        EnsembleConfig { ensemble_size: EnsembleSize::Fixed(16), candidates: None, ..Default::default() };
    let v2 = rewrite_manifest(&b.to_bytes()?, 2, |m| {
        m["format_version"] = 2.into();
        m["ensemble"].as_object_mut().unwrap().remove("candidates");
    });
    let old = Bundle::from_bytes(&v2)?;
    assert_eq!(
        (old.manifest.ensemble.ensemble_size, old.manifest.ensemble.candidates),
        (EnsembleSize::Fixed(16), None)
    );
    // Version-3 settings under a version-2 header would be misread by the readers that version promises to
    // work with, so the reader refuses them rather than trusting the label.
    for edit in [
        |m: &mut serde_json::Value| m["ensemble"]["ensemble_size"] = serde_json::json!({"per_class": 2}),
        |m: &mut serde_json::Value| m["ensemble"]["candidates"] = 64.into(),
    ] {
        let relabelled = rewrite_manifest(&v2, 2, edit);
        let err = Bundle::from_bytes(&relabelled).unwrap_err();
        assert!(matches!(err, BundleError::Invalid { field: "ensemble", .. }), "{err}");
    }
    // The current default (per-class size, capped candidates) round-trips in the current version.
    b.manifest.ensemble = EnsembleConfig::default();
    let back = Bundle::from_bytes(&b.to_bytes()?)?;
    assert_eq!((back.manifest.format_version, back.manifest.ensemble), (FORMAT_VERSION, EnsembleConfig::default()));
    Ok(())
}

#[test]
fn a_manifest_written_before_the_step_rule_existed_reads_as_plain_gradient_steps() -> TestResult {
    // Bundles written before `step_rule` was a field have no such key and were calibrated with θ − lr·g; they
    // must read (and so score) exactly as then, not with the new default rule.
    let mut b = sample_bundle();
    b.manifest.ensemble = EnsembleConfig { steps: 5, step_rule: StepRule::Absolute, lr: 2.0, ..Default::default() };
    let bytes = b.to_bytes()?;
    let old = rewrite_manifest(&bytes, FORMAT_VERSION, |m| {
        assert!(m["ensemble"].as_object_mut().unwrap().remove("step_rule").is_some());
    });
    let back = Bundle::from_bytes(&old)?;
    assert_eq!(back.manifest.ensemble, b.manifest.ensemble);
    assert_eq!(back.manifest.ensemble.step_rule, StepRule::Absolute);
    assert_ne!(EnsembleConfig::default().step_rule, StepRule::Absolute);
    Ok(())
}
