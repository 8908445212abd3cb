//! Alignment of whole training trajectories to one reference run.

use ndarray::{s, Array2, Array3};

use super::{Error, Result};
use crate::rng::Rng;
use crate::space::{permute, weight_matching, Layout, MatchingConfig};

/// Aligns the hidden units of every run to `reference_run`, in place.
///
/// `trajectories` is `[R, K+1, D]`. For each run, the weight-matching permutation of its *final* checkpoint
/// to the reference's final checkpoint is found ([`weight_matching`]) and the same permutation is applied to
/// *all* its checkpoints ([`permute`]): init and final permuted together keep each trajectory a valid run,
/// and the permuted init is still Kaiming-distributed.
pub fn align_trajectories(
    layout: &Layout,
    trajectories: &mut Array3<f32>,
    reference_run: usize,
    rng: &mut Rng,
) -> Result<()> {
    let (r, k1, d) = trajectories.dim();
    if d != layout.dim() || k1 == 0 {
        return Err(Error::Shape {
            what: "trajectories",
            expected: format!("[R, K+1 ≥ 1, {}]", layout.dim()),
            got: format!("{:?}", trajectories.shape()),
        });
    }
    if reference_run >= r {
        return Err(Error::Config {
            field: "reference_run", reason: format!("{reference_run} ≥ number of runs {r}")
        });
    }
    let reference: Array2<f32> = trajectories.slice(s![reference_run..reference_run + 1, k1 - 1, ..]).to_owned();
    let mut buf = vec![0f32; d];
    for run in 0..r {
        if run == reference_run {
            continue;
        }
        let fin = trajectories.slice(s![run..run + 1, k1 - 1, ..]);
        let perm = weight_matching(layout, reference.view(), fin, MatchingConfig::default(), rng)?;
        for k in 0..k1 {
            let mut row = trajectories.slice_mut(s![run, k, ..]);
            let theta = row.as_slice().expect("rows of a standard-layout array are contiguous");
            permute(layout, theta, &perm, &mut buf)?;
            row.as_slice_mut().expect("contiguous").copy_from_slice(&buf);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use crate::space::{HiddenPermutation, KaimingUniform, Source};
    use rand::seq::SliceRandom;

    #[test]
    fn scrambled_copies_of_one_trajectory_are_realigned_as_a_whole() {
        let layout = Layout::parse("3-6-5-2").unwrap();
        let d = layout.dim();
        let mut r = rng::rng(1);
        let base = KaimingUniform.sample(&layout, 3, &mut r); // one run, 3 checkpoints
        let mut traj = Array3::zeros((4, 3, d));
        for run in 0..4 {
            let mut p = HiddenPermutation::identity(&layout);
            if run > 0 {
                p.perms.iter_mut().for_each(|q| q.shuffle(&mut r));
            }
            for k in 0..3 {
                let mut out = vec![0f32; d];
                permute(&layout, base.row(k).as_slice().unwrap(), &p, &mut out).unwrap();
                traj.slice_mut(s![run, k, ..]).assign(&ndarray::ArrayView1::from(&out));
            }
        }
        align_trajectories(&layout, &mut traj, 0, &mut r).unwrap();
        for run in 1..4 {
            assert_eq!(traj.slice(s![run, .., ..]), traj.slice(s![0, .., ..]), "run {run}");
        }
        assert!(align_trajectories(&layout, &mut traj, 4, &mut r).is_err());
    }
}
