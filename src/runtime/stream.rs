//! [`Stream`]: a sliding-window detector over a stream of raw rows (issue 7), built on
//! [`SlidingWindows`] and [`Detector::score`].

use ndarray::ArrayView2;

use super::{Detector, RuntimeError};
use crate::detect::{window_seed, Score, SlidingWindows};

/// One window's verdict in a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamScore {
    /// The window's index k (from 0); it holds stream rows `[k·stride, k·stride + window)`.
    pub index: u64,
    /// Stream rows seen when it completed (`k·stride + window`).
    pub end_row: u64,
    /// Its verdict, at the bundle's level α (the false-alarm rate per window on in-distribution data).
    pub score: Score,
}

/// A sliding-window detector borrowing a [`Detector`]. Not shared between threads while pushing (`push` takes
/// `&mut self`); many streams may use one detector at once.
#[derive(Debug)]
pub struct Stream<'d> {
    detector: &'d Detector,
    windows: SlidingWindows,
    seed: u64,
}

impl<'d> Stream<'d> {
    /// Windows of `window` rows every `stride` rows; `window` must be a size the bundle is calibrated for.
    pub fn new(detector: &'d Detector, window: usize, stride: usize, seed: u64) -> Result<Self, RuntimeError> {
        let sizes = &detector.info().window_sizes;
        if !sizes.contains(&window) {
            return Err(RuntimeError::InvalidArgument(format!(
                "window size {window} has no calibration table; the bundle is calibrated for {sizes:?}"
            )));
        }
        let windows = SlidingWindows::new(detector.info().n_features, window, stride)
            .map_err(|e| RuntimeError::InvalidArgument(e.to_string()))?;
        Ok(Self { detector, windows, seed })
    }

    /// The window settings and position.
    pub fn windows(&self) -> &SlidingWindows {
        &self.windows
    }

    /// Appends raw rows `[n, n_features]` and returns the verdicts of the windows they complete, in order. A
    /// push that fails changes nothing, whether the rows were refused or a window's scoring failed part-way:
    /// no row is consumed, so window k still starts at stream row k·stride (the C ABI's `wf_stream_push`
    /// promises the same).
    pub fn push(&mut self, rows: ArrayView2<'_, f32>) -> Result<Vec<StreamScore>, RuntimeError> {
        self.detector.check_rows(rows)?;
        let (detector, seed) = (self.detector, self.seed);
        let mut out = Vec::new();
        // Pushed into a copy (it holds at most one window of rows), kept only when every window scored.
        let mut windows = self.windows.clone();
        windows.push(rows, |w| {
            let score = detector.score(w.rows, window_seed(seed, w.index))?;
            out.push(StreamScore { index: w.index, end_row: w.end_row, score });
            Ok::<(), RuntimeError>(())
        })?;
        self.windows = windows;
        Ok(out)
    }
}
