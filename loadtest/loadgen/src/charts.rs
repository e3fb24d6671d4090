//! SVG line charts of a scenario's time series (plotters, no system fonts
//! needed: the SVG carries text elements the viewer renders).

use std::path::Path;

use plotters::prelude::*;

/// Distinct, readable line colours (matplotlib's tab10).
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One line of a chart: its legend name and (seconds, value) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x = seconds since start, y) points.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A named series.
    pub fn new(name: &str, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.to_owned(),
            points,
        }
    }
}

/// Error drawing a chart.
#[derive(Debug, thiserror::Error)]
#[error("chart {path}: {message}")]
pub struct ChartError {
    path: String,
    message: String,
}

/// Draws `series` as lines into an SVG file at `path`.
pub fn line_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), ChartError> {
    draw(path, title, y_desc, series).map_err(|message| ChartError {
        path: path.display().to_string(),
        message,
    })
}

fn draw(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let x_max = pts().map(|p| p.0).fold(1.0_f64, f64::max);
    let y_max = pts()
        .map(|p| p.1)
        .filter(|y| y.is_finite())
        .fold(0.0_f64, f64::max);
    // Headroom above the highest point; a flat-zero chart still gets an axis.
    let y_top = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let root = SVGBackend::new(path, (960, 380)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, 0f64..y_top)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_desc)
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|x| e(&x))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// 1234567 → "1.23M", 12345 → "12.3k".
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_title_and_legend() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.svg");
        let s = vec![
            Series::new(
                "acked/s",
                (0..10).map(|i| (i as f64, 1000.0 * i as f64)).collect(),
            ),
            Series::new("empty", Vec::new()),
        ];
        line_chart(&path, "Ingest rate", "events/s", &s).expect("chart");
        let svg = std::fs::read_to_string(&path).expect("read");
        assert!(svg.starts_with("<svg"), "{}", &svg[..50.min(svg.len())]);
        assert!(svg.contains("Ingest rate") && svg.contains("acked/s"));
        assert!(svg.contains("<polyline"), "the line is drawn");
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(short(1_234_567.0), "1.23M");
        assert_eq!(short(12_345.0), "12.3k");
        assert_eq!(short(0.5), "0.50");
    }
}
