//! Sliding windows over a stream of rows: the buffering half of a streaming detector (the scoring half is
//! whatever scores one window, e.g. `runtime::Detector::score`).
//!
//! Windows have `window` rows and start every `stride` rows: window k (from 0) holds stream rows
//! `[k·stride, k·stride + window)`, so it completes when row `k·stride + window` has arrived. Consecutive
//! windows overlap when `stride < window` and skip rows when `stride > window`. Each window is one test at the
//! calibrated level α: the false-alarm rate is α *per window* on in-distribution data (overlapping windows are
//! dependent, so alarms come in runs; the rate per window still holds).

use std::collections::VecDeque;

use ndarray::ArrayView2;

use super::error::DetectError;

/// The seed a stream scores window `index` with: the stream's seed plus the index (wrapping), so every window
/// draws its own random choices and a replayed stream gives the same verdicts.
pub fn window_seed(stream_seed: u64, index: u64) -> u64 {
    stream_seed.wrapping_add(index)
}

/// One completed window: its index k, the stream row count at which it completed (`k·stride + window`) and
/// its rows.
#[derive(Debug)]
pub struct CompletedWindow<'a> {
    /// k, counting from 0.
    pub index: u64,
    /// Rows of the stream seen when the window completed; the window is rows `end_row − window .. end_row`.
    pub end_row: u64,
    /// The window's rows `[window, width]`.
    pub rows: ArrayView2<'a, f32>,
}

/// The sliding-window state: the last `window` rows and the stream position. Keeps at most `window` rows.
#[derive(Debug, Clone)]
pub struct SlidingWindows {
    width: usize,
    window: usize,
    stride: usize,
    /// The most recent rows, row-major, at most `window` of them.
    buffer: VecDeque<f32>,
    rows_seen: u64,
    /// The stream row count at which the next window completes.
    next_end: u64,
    completed: u64,
}

impl SlidingWindows {
    /// Windows of `window` rows of `width` features every `stride` rows.
    pub fn new(width: usize, window: usize, stride: usize) -> Result<Self, DetectError> {
        for (name, value) in [("width", width), ("window", window), ("stride", stride)] {
            if value == 0 {
                return Err(DetectError::Config { name, value: "0".into(), reason: "must be at least 1" });
            }
        }
        let buffer = VecDeque::with_capacity(window.saturating_mul(width));
        Ok(Self { width, window, stride, buffer, rows_seen: 0, next_end: window as u64, completed: 0 })
    }

    /// Rows per window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Rows between window starts.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Rows pushed so far.
    pub fn rows_seen(&self) -> u64 {
        self.rows_seen
    }

    /// How many windows a push of `n_rows` more rows would complete (for callers that size a buffer first).
    /// Exact for every `n_rows`, `usize::MAX` included (at most `n_rows`, as the next window needs at least one
    /// more row; the sum `rows_seen + n_rows` is never formed, so it cannot overflow).
    pub fn windows_after(&self, n_rows: usize) -> u64 {
        let to_next = self.next_end - self.rows_seen; // ≥ 1: a completed window moves next_end past rows_seen
        match (n_rows as u64).checked_sub(to_next) {
            None => 0,
            Some(beyond) => beyond / self.stride as u64 + 1,
        }
    }

    /// Appends `rows` `[n, width]` and calls `on_window` for every window they complete, in order. The rows are
    /// checked first (width, finite values): a refused push changes nothing. An error from `on_window` stops
    /// the push there; the rows before the failing window's last row are then consumed, the rest are not.
    pub fn push<E: From<DetectError>>(
        &mut self,
        rows: ArrayView2<'_, f32>,
        mut on_window: impl FnMut(CompletedWindow<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if rows.ncols() != self.width {
            return Err(DetectError::Width { what: "stream rows", expected: self.width, got: rows.ncols() }.into());
        }
        if rows.nrows() > 0 {
            super::error::check_rows("stream rows", rows, self.width)?;
        }
        for row in rows.outer_iter() {
            if self.buffer.len() == self.window * self.width {
                self.buffer.drain(..self.width);
            }
            self.buffer.extend(row.iter().copied());
            self.rows_seen += 1;
            if self.rows_seen == self.next_end {
                let flat = self.buffer.make_contiguous();
                let view = ArrayView2::from_shape((self.window, self.width), flat).expect("the buffer holds a window");
                let index = self.completed;
                self.completed += 1;
                self.next_end += self.stride as u64;
                on_window(CompletedWindow { index, end_row: self.rows_seen, rows: view })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Rows whose single feature is the stream position, so a window's rows name themselves.
    fn rows(from: usize, n: usize) -> Array2<f32> {
        Array2::from_shape_fn((n, 1), |(i, _)| (from + i) as f32)
    }

    /// (index, end_row, first row, last row) of every window completed by pushing `chunks` rows in turn.
    fn run(window: usize, stride: usize, chunks: &[usize]) -> Vec<(u64, u64, f32, f32)> {
        let mut s = SlidingWindows::new(1, window, stride).unwrap();
        let (mut out, mut at) = (Vec::new(), 0);
        for &n in chunks {
            let expected = s.windows_after(n);
            let before = out.len();
            s.push::<DetectError>(rows(at, n).view(), |w| {
                assert_eq!(w.rows.nrows(), window);
                out.push((w.index, w.end_row, w.rows[[0, 0]], w.rows[[window - 1, 0]]));
                Ok(())
            })
            .unwrap();
            assert_eq!((out.len() - before) as u64, expected, "windows_after predicts the push");
            at += n;
        }
        out
    }

    #[test]
    fn windows_are_the_rows_k_stride_to_k_stride_plus_window_however_the_rows_arrive() {
        // Window k = rows [k·stride, k·stride + window): overlapping, adjacent and gapped windows.
        for (window, stride) in [(4, 1), (4, 2), (4, 4), (3, 5)] {
            let expected: Vec<(u64, u64, f32, f32)> = (0..)
                .map(|k: u64| (k, k * stride as u64 + window as u64))
                .take_while(|&(_, end)| end <= 23)
                .map(|(k, end)| (k, end, (end - window as u64) as f32, (end - 1) as f32))
                .collect();
            assert_eq!(run(window, stride, &[23]), expected, "window {window}, stride {stride}, one push");
            assert_eq!(run(window, stride, &[1; 23]), expected, "row by row");
            assert_eq!(run(window, stride, &[5, 0, 2, 9, 7]), expected, "uneven chunks");
        }
    }

    #[test]
    fn bad_settings_and_rows_are_refused_without_changing_the_state() {
        assert!(SlidingWindows::new(0, 4, 1).is_err());
        assert!(SlidingWindows::new(2, 0, 1).is_err());
        assert!(SlidingWindows::new(2, 4, 0).is_err());
        let mut s = SlidingWindows::new(2, 2, 1).unwrap();
        let mut bad = Array2::<f32>::zeros((3, 2));
        bad[[2, 1]] = f32::NAN;
        assert!(s.push::<DetectError>(bad.view(), |_| Ok(())).is_err());
        assert!(s.push::<DetectError>(Array2::<f32>::zeros((3, 3)).view(), |_| Ok(())).is_err());
        assert_eq!(s.rows_seen(), 0, "a refused push consumes nothing");
        assert_eq!(s.windows_after(3), 2);
    }

    #[test]
    fn windows_after_is_exact_for_the_largest_counts() {
        // Found by the capi_score fuzz target: rows_seen + n_rows overflowed u64 (a panic with overflow checks,
        // a wrapped count of 0 without them) once the stream had seen a row.
        let mut s = SlidingWindows::new(1, 4, 1).unwrap();
        assert_eq!(s.windows_after(usize::MAX), usize::MAX as u64 - 3, "windows ending at rows 4, 5, …, usize::MAX");
        s.push::<DetectError>(rows(0, 20).view(), |_| Ok(())).unwrap();
        // 17 windows done (ends 4..=20); the next ends at row 21: ends 21 ..= 20 + usize::MAX.
        assert_eq!(s.windows_after(usize::MAX), usize::MAX as u64);
        assert_eq!(s.windows_after(usize::MAX - 1), usize::MAX as u64 - 1);
        let mut s = SlidingWindows::new(1, 4, 3).unwrap();
        s.push::<DetectError>(rows(0, 5).view(), |_| Ok(())).unwrap();
        // Next end at row 7 (2 rows away), then every 3 rows.
        assert_eq!(s.windows_after(1), 0);
        assert_eq!(s.windows_after(2), 1);
        assert_eq!(s.windows_after(usize::MAX), (usize::MAX as u64 - 2) / 3 + 1);
    }
}
