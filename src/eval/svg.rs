//! A small self-contained SVG line chart, written by hand (no plotting crate): axes with "nice" ticks (steps of
//! 1, 2 or 5 × 10^e, about five per axis), axis labels, a title, a legend, one colour per series (the
//! Tableau-10 palette, cycled). Used for the path-loss and W1 figures in docs/.
//!
//! Data coordinates map linearly onto the plot box: px = left + (x − x_min)/(x_max − x_min) · width, and
//! py = top + (y_max − y)/(y_max − y_min) · height (SVG's y axis points down). The ranges cover every finite
//! point (y padded by 5%; a degenerate range is widened by ±0.5); non-finite points are skipped and break the
//! line. Text is XML-escaped, and every coordinate written is finite.

use std::fmt::Write as _;

/// The Tableau-10 colours.
const PALETTE: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 75.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
/// Series of at most this many points also get a marker at every point.
const MARKERS_UP_TO: usize = 40;

/// An SVG document of a line chart of `series` (name, points (x, y)) with `title` and axis labels.
pub fn svg_line_plot(title: &str, x_label: &str, y_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let finite = || series.iter().flat_map(|(_, p)| p.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (x_min, x_max) = range(finite().map(|p| p.0), 0.0);
    let (y_min, y_max) = range(finite().map(|p| p.1), 0.05);
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * w;
    let py = |y: f64| TOP + (y_max - y) / (y_max - y_min) * h;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + w / 2.0,
        escape(title)
    );
    let _ = writeln!(out, r##"<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="#333"/>"##);

    for x in ticks(x_min, x_max) {
        let (xp, label) = (px(x), tick_label(x, x_min, x_max));
        let _ = writeln!(
            out,
            r##"<line x1="{xp:.2}" y1="{b:.2}" x2="{xp:.2}" y2="{b2:.2}" stroke="#333"/><text x="{xp:.2}" y="{ty:.2}" text-anchor="middle">{label}</text>"##,
            b = TOP + h,
            b2 = TOP + h + 5.0,
            ty = TOP + h + 19.0
        );
    }
    for y in ticks(y_min, y_max) {
        let (yp, label) = (py(y), tick_label(y, y_min, y_max));
        let _ = writeln!(
            out,
            r##"<line x1="{l2:.2}" y1="{yp:.2}" x2="{LEFT}" y2="{yp:.2}" stroke="#333"/><line x1="{LEFT}" y1="{yp:.2}" x2="{r:.2}" y2="{yp:.2}" stroke="#ddd"/><text x="{tx:.2}" y="{ty:.2}" text-anchor="end">{label}</text>"##,
            l2 = LEFT - 5.0,
            r = LEFT + w,
            tx = LEFT - 8.0,
            ty = yp + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + w / 2.0,
        HEIGHT - 14.0,
        escape(x_label)
    );
    let (yx, yy) = (18.0, TOP + h / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{yx}" y="{yy:.1}" text-anchor="middle" transform="rotate(-90 {yx} {yy:.1})">{}</text>"#,
        escape(y_label)
    );

    for (i, (name, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let _ = writeln!(out, r#"<g stroke="{colour}" fill="{colour}">"#);
        for run in points.split(|(x, y)| !(x.is_finite() && y.is_finite())).filter(|r| !r.is_empty()) {
            let coords: Vec<String> = run.iter().map(|&(x, y)| format!("{:.2},{:.2}", px(x), py(y))).collect();
            let _ = writeln!(out, r#"<polyline fill="none" stroke-width="2" points="{}"/>"#, coords.join(" "));
            if points.len() <= MARKERS_UP_TO {
                for &(x, y) in run {
                    let _ = writeln!(out, r#"<circle cx="{:.2}" cy="{:.2}" r="2.5"/>"#, px(x), py(y));
                }
            }
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + w + 15.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke-width="2"/><text x="{:.1}" y="{:.1}" stroke="none" fill="black">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            escape(name)
        );
        let _ = writeln!(out, "</g>");
    }
    out.push_str("</svg>\n");
    out
}

/// The (min, max) of `values`, padded by `pad` of the span; [0, 1] when empty, ±0.5 around a single value.
fn range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    // A span that is 0, or lost in rounding next to the values' magnitude, is widened to ±0.5 (±0.1% of the
    // magnitude for values so large that ±0.5 would round away).
    let magnitude = lo.abs().max(hi.abs());
    if !span.is_finite() || span <= 1e-12 * magnitude {
        let half = 0.5f64.max(1e-3 * magnitude);
        return (lo - half, hi + half);
    }
    (lo - pad * span, hi + pad * span)
}

/// The tick step: 1, 2 or 5 × 10^e, about a fifth of the span.
fn tick_step(lo: f64, hi: f64) -> f64 {
    let raw = (hi - lo) / 5.0;
    let e = raw.log10().floor();
    let base = 10f64.powf(e);
    let f = raw / base;
    base * if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    }
}

/// The tick positions: the multiples of [`tick_step`] within [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let step = tick_step(lo, hi);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label with as many decimals as the step needs (at most 6).
fn tick_label(v: f64, lo: f64, hi: f64) -> String {
    let decimals = (-tick_step(lo, hi).log10().floor()).clamp(0.0, 6.0) as usize;
    let s = format!("{v:.decimals$}");
    // No "-0".
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// XML-escapes text content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_numbers() {
        assert_eq!(ticks(0.0, 1.0), [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(tick_step(0.0, 100.0), 20.0);
        assert_eq!(tick_step(3.0, 3.07), 0.01);
        assert_eq!(tick_label(0.6000000000000001, 0.0, 1.0), "0.6");
        assert_eq!(tick_label(-0.0, -1.0, 1.0), "0.0");
        assert_eq!(range(std::iter::empty(), 0.05), (0.0, 1.0));
        assert_eq!(range([2.0].into_iter(), 0.05), (1.5, 2.5));
        assert_eq!(range([1e20].into_iter(), 0.05), (1e20 - 1e17, 1e20 + 1e17));
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
