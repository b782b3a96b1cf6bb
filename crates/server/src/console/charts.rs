//! Line charts as inline SVG (no script, no library): up to four series over time, with the
//! scale written on the chart and the same numbers in a table for screen readers.

use maud::{Markup, html};

/// One line: its name and its points (unix seconds, value).
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(i64, f64)>,
}

const W: f64 = 600.0;
const H: f64 = 160.0;
const PAD_L: f64 = 48.0;
const PAD_B: f64 = 18.0;

/// Most lines drawn in one chart; colours stay distinguishable and each has a legend entry.
pub(crate) const MAX_SERIES: usize = 4;

/// A chart of `series` with a caption; `unit` labels the values.
pub(crate) fn line_chart(id: &str, caption: &str, unit: &str, series: &[Series]) -> Markup {
    let series = &series[..series.len().min(MAX_SERIES)];
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut t0, mut t1, mut vmax) = (i64::MAX, i64::MIN, 0.0f64);
    for (t, v) in all {
        t0 = t0.min(*t);
        t1 = t1.max(*t);
        vmax = vmax.max(*v);
    }
    let empty = t0 > t1;
    if empty {
        (t0, t1) = (0, 0);
    }
    let vmax = if vmax > 0.0 { vmax * 1.1 } else { 1.0 };
    let span = t1.saturating_sub(t0).max(1) as f64;
    let x = |t: i64| PAD_L + (t - t0) as f64 / span * (W - PAD_L - 4.0);
    let y = |v: f64| (H - PAD_B) - v / vmax * (H - PAD_B - 6.0);
    let label = format!(
        "{caption}: {} series over {} s, peak {:.1} {unit}",
        series.len(),
        t1 - t0,
        vmax / 1.1
    );
    html! {
        figure.chart id=(id) {
            figcaption { (caption) }
            @if empty {
                p.muted { "No data yet: rates appear once agents have sent their own metrics twice." }
            } @else {
                svg viewBox={"0 0 " (W) " " (H)} role="img" aria-label=(label) {
                    line.axis x1=(PAD_L) y1=(H - PAD_B) x2=(W) y2=(H - PAD_B) {}
                    line.axis x1=(PAD_L) y1="0" x2=(PAD_L) y2=(H - PAD_B) {}
                    text x="2" y="12" { (format!("{:.1}", vmax / 1.1)) }
                    text x="2" y=(H - PAD_B) { "0" }
                    text x=(PAD_L) y=(H - 2.0) { (clock(t0)) }
                    text x=(W - 60.0) y=(H - 2.0) { (clock(t1)) }
                    @for (i, s) in series.iter().enumerate() {
                        @let pts: Vec<String> = s.points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
                        polyline class={"line s" (i)} points=(pts.join(" ")) {}
                    }
                }
                ul.legend {
                    @for (i, s) in series.iter().enumerate() {
                        li { span class={"key s" (i)} aria-hidden="true" {} (s.name) }
                    }
                }
                details {
                    summary { "Values" }
                    div.table-wrap {
                        table {
                            thead { tr { th scope="col" { "Series" } th scope="col" { "Time (UTC)" } th.num scope="col" { (unit) } } }
                            tbody {
                                @for s in series {
                                    @for (t, v) in &s.points {
                                        tr { td { (s.name) } td { (clock(*t)) } td.num { (format!("{v:.1}")) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn clock(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}
