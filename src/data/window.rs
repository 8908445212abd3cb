//! Windows: small samples of distinct rows drawn from a pool (the deployment inputs a detector scores).

use super::dataset::Dataset;
use super::error::{Error, Result};
use crate::rng::{stream, Rng};

fn check(pool: &Dataset, n: usize) -> Result<()> {
    if n == 0 || n > pool.len() {
        return Err(Error::WindowSize { file: pool.source.clone(), requested: n, available: pool.len() });
    }
    Ok(())
}

/// `n` distinct rows of `pool`, drawn uniformly without replacement, in the order drawn.
/// Errors if `n` is 0 or larger than the pool.
pub fn sample_window(pool: &Dataset, n: usize, rng: &mut Rng) -> Result<Dataset> {
    check(pool, n)?;
    let idx = rand::seq::index::sample(rng, pool.len(), n).into_vec();
    Ok(pool.select(&idx))
}

/// Reproducible windows of `n` rows of a pool: window `i` is drawn from `crate::rng::stream(seed, i)`, so it
/// does not depend on which other windows are drawn, or in what order.
#[derive(Clone, Debug)]
pub struct WindowSampler<'a> {
    pool: &'a Dataset,
    n: usize,
    seed: u64,
}

impl<'a> WindowSampler<'a> {
    /// A sampler of windows of `n` rows of `pool`; errors if `n` is 0 or larger than the pool.
    pub fn new(pool: &'a Dataset, n: usize, seed: u64) -> Result<Self> {
        check(pool, n)?;
        Ok(WindowSampler { pool, n, seed })
    }

    /// The window size.
    pub fn size(&self) -> usize {
        self.n
    }

    /// The pool's row indices of window `index`.
    pub fn indices(&self, index: u64) -> Vec<usize> {
        rand::seq::index::sample(&mut stream(self.seed, index), self.pool.len(), self.n).into_vec()
    }

    /// Window `index`.
    pub fn window(&self, index: u64) -> Dataset {
        self.pool.select(&self.indices(index))
    }

    /// Windows 0, 1, 2, … (without end).
    pub fn iter(&self) -> impl Iterator<Item = Dataset> + '_ {
        (0..).map(|i| self.window(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::rng;
    use ndarray::Array2;

    fn pool(n: usize) -> Dataset {
        let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f32);
        Dataset::new(x, vec![0; n], 1, "pool.csv").unwrap()
    }

    #[test]
    fn windows_are_distinct_and_reproducible() -> Result<()> {
        let p = pool(50);
        let w = sample_window(&p, 50, &mut rng(1))?;
        let mut rows: Vec<usize> = w.x.iter().map(|&v| v as usize).collect();
        rows.sort_unstable();
        assert_eq!(rows, (0..50).collect::<Vec<_>>());

        let s = WindowSampler::new(&p, 10, 7)?;
        assert_eq!(s.indices(3), WindowSampler::new(&p, 10, 7)?.indices(3));
        assert_ne!(s.indices(3), s.indices(4));
        assert_eq!(s.iter().nth(2).unwrap(), s.window(2));
        Ok(())
    }

    #[test]
    fn empty_window_is_an_error() {
        let err = sample_window(&pool(3), 0, &mut rng(0)).unwrap_err();
        assert_eq!(err.to_string(), "pool.csv: expected a window size in 1..=3 (distinct rows of the pool), found 0");
    }
}
