//! The growth plot: throughput and peak RSS against the channel count (log
//! scale), medians with min–max bars, as an SVG file.

use std::path::Path;

use plotters::prelude::*;

use super::pipeline_run::PipelineResult;
use super::util::Spread;

/// (channels, deliveries/s, peak RSS MiB) spreads, one a channel count.
fn points(growth: &[PipelineResult]) -> Vec<(f64, Spread, Spread)> {
    let mut sizes: Vec<u32> = growth.iter().map(|r| r.channels).collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
        .into_iter()
        .filter_map(|c| {
            let runs: Vec<&PipelineResult> = growth.iter().filter(|r| r.channels == c).collect();
            let rate = Spread::of(runs.iter().map(|r| r.deliveries_per_s))?;
            let rss = Spread::of(runs.iter().map(|r| r.peak_rss_mb))?;
            Some((f64::from(c), rate, rss))
        })
        .collect()
}

/// One side of the plot: area, title, axis name, which figure, colour.
type Panel<'a, 'b> = (
    &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    &'static str,
    &'static str,
    fn(&(f64, Spread, Spread)) -> Spread,
    RGBColor,
);

/// Writes the plot to `path`.
pub(crate) fn growth_svg(
    growth: &[PipelineResult],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let pts = points(growth);
    if pts.is_empty() {
        return Err("no growth runs".into());
    }
    let x_lo = pts.first().map_or(1.0, |p| p.0) / 2.0;
    let x_hi = pts.last().map_or(10.0, |p| p.0) * 2.0;
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let panels: [Panel<'_, '_>; 2] = [
        (
            &left,
            "Throughput (deliveries/s, persisted)",
            "deliveries/s",
            |p| p.1,
            BLUE,
        ),
        (
            &right,
            "Peak RSS of the daemon process (MiB)",
            "MiB",
            |p| p.2,
            RED,
        ),
    ];
    for (area, title, y_desc, get, color) in panels {
        let y_hi = pts.iter().map(|p| get(p).max).fold(0.0, f64::max) * 1.15 + 1e-9;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_hi)?;
        chart
            .configure_mesh()
            .x_desc("channels (users = 10 × channels, 5 subscriptions each)")
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        chart.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, get(p).median)),
            color.stroke_width(2),
        ))?;
        chart.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, get(p).median), 4, color.filled())),
        )?;
        // min–max of the runs.
        chart.draw_series(pts.iter().map(|p| {
            let s = get(p);
            PathElement::new(vec![(p.0, s.min), (p.0, s.max)], color.stroke_width(1))
        }))?;
        chart.draw_series(pts.iter().map(|p| {
            Text::new(
                format!("{:.0}", get(p).median),
                (p.0, get(p).median + y_hi * 0.04),
                ("sans-serif", 13).into_font(),
            )
        }))?;
    }
    root.present()?;
    Ok(())
}
