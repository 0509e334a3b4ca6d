// SPDX-License-Identifier: MIT OR Apache-2.0
//! Hand-written SVG plots for the benchmark report: a line chart (linear or logarithmic axes)
//! and a grouped bar chart. Axes, ticks, labelled series and a legend; nothing more.
//!
//! Pure functions from a description to an SVG document, so the report is reproducible byte
//! for byte from the same figures.

use std::fmt::Write as _;

/// Width of every plot, in SVG user units (pixels).
const WIDTH: f64 = 720.0;
/// Height of every plot.
const HEIGHT: f64 = 420.0;
/// The plotting area's margins: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (78.0, 24.0, 44.0, 58.0);
/// Series colours, in order.
const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// How an axis maps values to positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Linear from 0.
    Linear,
    /// Logarithmic, ticks at powers of 2.
    Log2,
    /// Logarithmic, ticks at powers of 10.
    Log10,
}

impl Scale {
    fn base(self) -> f64 {
        match self {
            Self::Log2 => 2.0,
            _ => 10.0,
        }
    }

    fn is_log(self) -> bool {
        self != Self::Linear
    }
}

/// One line of a [`LineChart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its legend text.
    pub label: String,
    /// `(x, y)` points, in x order. Non-positive values are skipped on a log axis.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (the baseline of a comparison).
    pub dashed: bool,
    /// Index into the palette.
    pub colour: usize,
}

/// A line chart.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Title, above the plot.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// The x axis' scale.
    pub x_scale: Scale,
    /// The y axis' scale.
    pub y_scale: Scale,
    /// The lines.
    pub series: Vec<Series>,
}

/// A grouped bar chart: one group per category, one bar per series in each.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    /// Title, above the plot.
    pub title: String,
    /// The y axis' label.
    pub y_label: String,
    /// The y axis' scale ([`Scale::Linear`] or [`Scale::Log10`]).
    pub y_scale: Scale,
    /// Category names, along x.
    pub groups: Vec<String>,
    /// Series names (the legend), one colour each.
    pub series: Vec<String>,
    /// `values[s][g]`: series `s` in group `g` (`None`: no bar).
    pub values: Vec<Vec<Option<f64>>>,
}

/// Escapes text for SVG content and attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number as a tick or value label: integers plainly, small fractions in exponent form,
/// others with up to 2 decimals.
pub fn format_value(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() < 0.01 {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// The smallest "nice" number (1, 2 or 5 times a power of ten) at or above `v`.
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&c| c >= v * (1.0 - 1e-12))
        .unwrap_or(10.0 * p)
}

/// One axis: its range and ticks.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
    /// Tick values.
    pub ticks: Vec<f64>,
}

impl Axis {
    /// An axis covering `values` (the positive ones, on a log scale).
    pub fn covering(scale: Scale, values: impl Iterator<Item = f64>) -> Self {
        let values: Vec<f64> = values
            .filter(|v| v.is_finite() && (!scale.is_log() || *v > 0.0))
            .collect();
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        let min = values.iter().copied().fold(f64::MAX, f64::min);
        if scale.is_log() {
            let b = scale.base();
            let (lo, hi) = if values.is_empty() {
                (0, 1)
            } else {
                let lo = (min.log(b) + 1e-9).floor() as i32;
                let hi = (max.log(b) - 1e-9).ceil() as i32;
                (lo, hi.max(lo + 1))
            };
            // At most about 8 labelled ticks.
            let step = ((hi - lo) as usize).div_ceil(8).max(1);
            let ticks = (lo..=hi).step_by(step).map(|e| b.powi(e)).collect();
            Self {
                scale,
                lo: b.powi(lo),
                hi: b.powi(hi),
                ticks,
            }
        } else {
            let hi = nice_ceiling(if values.is_empty() { 1.0 } else { max });
            let step = nice_ceiling(hi / 6.0);
            let n = (hi / step).round() as usize;
            let ticks = (0..=n).map(|i| i as f64 * step).collect();
            Self {
                scale,
                lo: 0.0,
                hi,
                ticks,
            }
        }
    }

    /// Where `v` falls, from 0 (the axis' start) to 1 (its end).
    pub fn fraction(&self, v: f64) -> f64 {
        if self.scale.is_log() {
            let b = self.scale.base();
            (v.log(b) - self.lo.log(b)) / (self.hi.log(b) - self.lo.log(b))
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }
}

/// The plotting area: x from `left` to `right`, y from `bottom` (up) to `top`.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn new() -> Self {
        Self {
            left: MARGIN.0,
            right: WIDTH - MARGIN.1,
            top: MARGIN.2,
            bottom: HEIGHT - MARGIN.3,
        }
    }

    fn x(&self, f: f64) -> f64 {
        self.left + f * (self.right - self.left)
    }

    fn y(&self, f: f64) -> f64 {
        self.bottom - f * (self.bottom - self.top)
    }
}

fn header(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
}

/// The y axis: grid lines, ticks, labels, the axis title.
fn y_axis(out: &mut String, f: &Frame, axis: &Axis, label: &str) {
    for &t in &axis.ticks {
        let y = f.y(axis.fraction(t));
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#dddddd"/>"##,
            f.left, f.right
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            f.left - 6.0,
            y + 4.0,
            format_value(t)
        );
    }
    let cy = (f.top + f.bottom) / 2.0;
    let _ = writeln!(
        out,
        r#"<text x="18" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 18 {cy:.1})">{}</text>"#,
        escape(label)
    );
}

fn frame_lines(out: &mut String, f: &Frame) {
    let _ = writeln!(
        out,
        r#"<path d="M{:.1} {:.1} V{:.1} H{:.1}" fill="none" stroke="black"/>"#,
        f.left, f.top, f.bottom, f.right
    );
}

/// A rectangle in SVG coordinates: left, top, right, bottom.
type Rect = (f64, f64, f64, f64);

fn overlaps(a: Rect, b: Rect) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Where the legend goes: the first corner of the plotting area (top left, top right, bottom
/// right, bottom left) where it covers none of `ink` (what the plot drew), else the corner
/// where it covers least.
fn legend_origin(f: &Frame, size: (f64, f64), ink: &[Rect]) -> (f64, f64) {
    let (w, h) = size;
    let corners = [
        (f.left + 10.0, f.top + 8.0),
        (f.right - 10.0 - w, f.top + 8.0),
        (f.right - 10.0 - w, f.bottom - 8.0 - h),
        (f.left + 10.0, f.bottom - 8.0 - h),
    ];
    let covered = |&(x, y): &(f64, f64)| {
        ink.iter()
            .filter(|r| overlaps(**r, (x, y, x + w, y + h)))
            .count()
    };
    corners
        .iter()
        .copied()
        .enumerate()
        .min_by_key(|(i, c)| (covered(c), *i))
        .map_or(corners[0], |(_, c)| c)
}

/// The dash pattern of a dashed line `width` wide: dashes and gaps scale with the width, so a
/// thinner line drawn over a wider one lets it show through the gaps.
fn dash(dashed: bool, width: f64) -> String {
    if dashed {
        format!(
            r#" stroke-dasharray="{:.1} {:.1}""#,
            3.0 * width,
            2.0 * width
        )
    } else {
        String::new()
    }
}

/// One legend entry: label, palette index, dashed, stroke width.
type Entry<'a> = (&'a str, usize, bool, f64);

/// The legend, in a free corner of the plotting area: a swatch and a label per entry.
fn legend(out: &mut String, f: &Frame, entries: &[Entry<'_>], ink: &[Rect]) {
    let width = 24.0
        + entries
            .iter()
            .map(|(l, _, _, _)| l.chars().count() as f64 * 6.6)
            .fold(0.0, f64::max);
    let height = 8.0 + 18.0 * entries.len() as f64;
    let (x0, y0) = legend_origin(f, (width + 12.0, height), ink);
    let _ = writeln!(
        out,
        r##"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{height:.1}" fill="white" fill-opacity="0.85" stroke="#999999"/>"##,
        width + 12.0
    );
    for (i, &(label, colour, dashed, stroke)) in entries.iter().enumerate() {
        let y = y0 + 16.0 + 18.0 * i as f64;
        let dash = dash(dashed, stroke);
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="{stroke:.1}"{dash}/>"#,
            x0 + 6.0,
            y - 4.0,
            x0 + 26.0,
            y - 4.0,
            PALETTE[colour % PALETTE.len()]
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
            x0 + 32.0,
            escape(label)
        );
    }
}

/// The stroke width of line `i` of `n`: earlier lines are wider, so a later line drawn over
/// an equal one still lets it show on both sides.
fn line_width(i: usize, n: usize) -> f64 {
    2.0 + 1.2 * n.saturating_sub(i + 1) as f64
}

/// Renders a line chart.
pub fn line_chart(c: &LineChart) -> String {
    let f = Frame::new();
    let xs = Axis::covering(
        c.x_scale,
        c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
    );
    let ys = Axis::covering(
        c.y_scale,
        c.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
    );
    let mut out = String::new();
    header(&mut out, &c.title);
    y_axis(&mut out, &f, &ys, &c.y_label);
    for &t in &xs.ticks {
        let x = f.x(xs.fraction(t));
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#eeeeee"/>"##,
            f.top, f.bottom
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            f.bottom + 18.0,
            format_value(t)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (f.left + f.right) / 2.0,
        HEIGHT - 14.0,
        escape(&c.x_label)
    );
    frame_lines(&mut out, &f);
    let visible = |(x, y): (f64, f64)| {
        x.is_finite()
            && y.is_finite()
            && (!c.x_scale.is_log() || x > 0.0)
            && (!c.y_scale.is_log() || y > 0.0)
    };
    let mut ink: Vec<Rect> = Vec::new();
    for (i, s) in c.series.iter().enumerate() {
        let colour = PALETTE[s.colour % PALETTE.len()];
        let width = line_width(i, c.series.len());
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|&p| visible(p))
            .map(|(x, y)| (f.x(xs.fraction(x)), f.y(ys.fraction(y))))
            .collect();
        let dash = dash(s.dashed, width);
        let coords: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="{width:.1}"{dash}><title>{}</title></polyline>"#,
            coords.join(" "),
            escape(&s.label)
        );
        // What the line covers, sampled every few pixels, for the legend's placement.
        for w in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            let steps = ((x1 - x0).hypot(y1 - y0) / 4.0).ceil().max(1.0) as usize;
            for k in 0..=steps {
                let t = k as f64 / steps as f64;
                let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
                ink.push((x - 3.0, y - 3.0, x + 3.0, y + 3.0));
            }
        }
        for (x, y) in pts {
            ink.push((x - 4.0, y - 4.0, x + 4.0, y + 4.0));
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
            );
        }
    }
    let entries: Vec<Entry<'_>> = c
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let w = line_width(i, c.series.len());
            (s.label.as_str(), s.colour, s.dashed, w)
        })
        .collect();
    legend(&mut out, &f, &entries, &ink);
    out.push_str("</svg>\n");
    out
}

/// Renders a grouped bar chart, each bar labelled with its value.
pub fn bar_chart(c: &BarChart) -> String {
    let f = Frame::new();
    let ys = Axis::covering(c.y_scale, c.values.iter().flatten().flatten().copied());
    let mut out = String::new();
    header(&mut out, &c.title);
    y_axis(&mut out, &f, &ys, &c.y_label);
    let groups = c.groups.len().max(1) as f64;
    let slot = (f.right - f.left) / groups;
    let n = c.series.len().max(1) as f64;
    let bar = (slot * 0.8 / n).min(60.0);
    let mut ink: Vec<Rect> = Vec::new();
    for (g, name) in c.groups.iter().enumerate() {
        let centre = f.left + slot * (g as f64 + 0.5);
        let _ = writeln!(
            out,
            r#"<text x="{centre:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            f.bottom + 18.0,
            escape(name)
        );
        for (s, values) in c.values.iter().enumerate() {
            let Some(v) = values.get(g).copied().flatten() else {
                continue;
            };
            let base = if c.y_scale.is_log() {
                0.0
            } else {
                ys.fraction(0.0)
            };
            let top = if c.y_scale.is_log() && v <= 0.0 {
                0.0
            } else {
                ys.fraction(v).max(0.0)
            };
            let x = centre - bar * n / 2.0 + bar * s as f64;
            let (y0, y1) = (f.y(top), f.y(base));
            // The bar and its value label.
            ink.push((x, y0 - 16.0, x + bar, y1));
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                bar - 2.0,
                (y1 - y0).max(0.0),
                PALETTE[s % PALETTE.len()],
                escape(&c.series[s.min(c.series.len() - 1)]),
                format_value(v)
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
                x + (bar - 2.0) / 2.0,
                y0 - 4.0,
                format_value(v)
            );
        }
    }
    frame_lines(&mut out, &f);
    let entries: Vec<Entry<'_>> = c
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i, false, 8.0))
        .collect();
    legend(&mut out, &f, &entries, &ink);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(scale: Scale) -> LineChart {
        LineChart {
            title: "writes <&> waits".into(),
            x_label: "N".into(),
            y_label: "count".into(),
            x_scale: Scale::Log2,
            y_scale: scale,
            series: vec![
                Series {
                    label: "ours".into(),
                    points: vec![(1.0, 1.0), (4.0, 1.0), (4096.0, 3.0)],
                    dashed: false,
                    colour: 0,
                },
                Series {
                    label: "Linux".into(),
                    points: vec![(1.0, 1.0), (4.0, 4.0), (4096.0, 4096.0)],
                    dashed: true,
                    colour: 1,
                },
            ],
        }
    }

    #[test]
    fn line_chart_is_one_svg_with_a_line_and_a_legend_entry_per_series() {
        let svg = line_chart(&chart(Scale::Log10));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains(">ours</text>") && svg.contains(">Linux</text>"));
        assert!(svg.contains("writes &lt;&amp;&gt; waits"));
        assert!(svg.contains("stroke-dasharray"));
        // Log-2 x ticks include 1 and 4096, log-10 y ticks 1 and 10000.
        for t in [">1</text>", ">4096</text>", ">10000</text>"] {
            assert!(svg.contains(t), "{t}");
        }
    }

    #[test]
    fn log_axis_maps_decades_evenly_and_covers_the_data() {
        let a = Axis::covering(Scale::Log10, [3.0, 4096.0].into_iter());
        assert_eq!(a.ticks, vec![1.0, 10.0, 100.0, 1000.0, 10000.0]);
        assert!((a.fraction(1.0) - 0.0).abs() < 1e-9);
        assert!((a.fraction(100.0) - 0.5).abs() < 1e-9);
        assert!((a.fraction(10000.0) - 1.0).abs() < 1e-9);
        let b = Axis::covering(Scale::Log2, [1.0, 4096.0].into_iter());
        assert_eq!(b.ticks.first(), Some(&1.0));
        assert_eq!(b.ticks.last(), Some(&4096.0));
        assert!(b.ticks.len() <= 9);
        // Non-positive values do not break a log axis.
        let c = Axis::covering(Scale::Log10, [0.0, -1.0, 5.0].into_iter());
        assert!(c.fraction(5.0) > 0.0 && c.fraction(5.0) < 1.0);
    }

    #[test]
    fn linear_axis_starts_at_zero_with_nice_ticks() {
        let a = Axis::covering(Scale::Linear, [0.3, 5695.0].into_iter());
        assert_eq!(a.ticks.first(), Some(&0.0));
        assert_eq!(a.ticks.last(), Some(&10000.0));
        assert!((a.fraction(5000.0) - 0.5).abs() < 1e-9);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(1.5), 2.0);
        assert_eq!(nice_ceiling(0.04), 0.05);
        assert_eq!(nice_ceiling(300.0), 500.0);
    }

    #[test]
    fn bar_chart_draws_one_bar_per_value_and_labels_it() {
        let c = BarChart {
            title: "latency".into(),
            y_label: "instructions".into(),
            y_scale: Scale::Linear,
            groups: vec!["direct".into(), "doorbell".into()],
            series: vec!["median".into(), "min".into()],
            values: vec![vec![Some(64.0), Some(5695.0)], vec![Some(64.0), None]],
        };
        let svg = bar_chart(&c);
        assert_eq!(svg.matches("<rect x=").count(), 3 + 1); // 3 bars + the legend box
        assert!(svg.contains(">5695</text>"));
        assert!(svg.contains(">direct</text>") && svg.contains(">doorbell</text>"));
        assert!(svg.contains(">median</text>") && svg.contains(">min</text>"));
    }

    #[test]
    fn the_legend_avoids_what_was_drawn() {
        let f = Frame::new();
        let size = (100.0, 50.0);
        // Nothing drawn: top left.
        assert_eq!(legend_origin(&f, size, &[]), (f.left + 10.0, f.top + 8.0));
        // The top left taken: top right.
        let ink = [(f.left, f.top, f.left + 150.0, f.top + 80.0)];
        let (x, y) = legend_origin(&f, size, &ink);
        assert_eq!((x, y), (f.right - 10.0 - 100.0, f.top + 8.0));
        // Earlier lines are drawn wider.
        assert!(line_width(0, 4) > line_width(3, 4));
        assert_eq!(line_width(3, 4), 2.0);
    }

    #[test]
    fn values_format_compactly() {
        assert_eq!(format_value(4096.0), "4096");
        assert_eq!(format_value(1.25), "1.25");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(2.0 / 3.0), "0.67");
        assert_eq!(format_value(0.001), "1e-3");
    }
}
