//! The chart: compute cost per million records by memory size, one line per implementation.

use std::path::Path;

use plotters::prelude::*;

use crate::BenchError;
use crate::cost::{MillionRecords, SIZES_MB};

/// Where a TrueType font for the labels is looked for (Debian's fonts-dejavu-core).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// One implementation's costs by size: the model's (a line) and the measured (rings).
pub type Series<'a> = (&'a str, Vec<MillionRecords>, Vec<MillionRecords>);

/// Draws `series` into a PNG at `out`.
pub fn draw(out: &Path, series: &[Series<'_>]) -> Result<(), BenchError> {
    let font = FONTS
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .ok_or_else(|| {
            BenchError::Chart(format!(
                "no font for the labels; looked for {FONTS:?} (Debian: fonts-dejavu-core)"
            ))
        })?;
    // plotters keeps registered fonts for the life of the process.
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| BenchError::Chart("the font could not be read".into()))?;

    let chart_error = |e: &dyn std::fmt::Display| BenchError::Chart(e.to_string());
    let max_usd = series
        .iter()
        .flat_map(|(_, model, measured)| model.iter().chain(measured).map(|c| c.compute_usd))
        .fold(0.0_f64, f64::max)
        * 1.1;
    let root = BitMapBackend::new(out, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(&e))?;
    let max_size = SIZES_MB.last().copied().unwrap_or(1769);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "welcome-email: compute USD per million records by memory size (line: model, rings: measured)",
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0u32..max_size + 50, 0.0..max_usd.max(f64::MIN_POSITIVE))
        .map_err(|e| chart_error(&e))?;
    chart
        .configure_mesh()
        .x_desc("memory size (MB)")
        .y_desc("USD per million records")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| chart_error(&e))?;
    let colours = [RGBColor(0xd9, 0x5f, 0x02), RGBColor(0x1b, 0x9e, 0x77)];
    for ((label, costs, measured), colour) in series.iter().zip(colours) {
        let points: Vec<(u32, f64)> = costs.iter().map(|c| (c.memory_mb, c.compute_usd)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))
            .map_err(|e| chart_error(&e))?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )
            .map_err(|e| chart_error(&e))?;
        chart
            .draw_series(
                measured
                    .iter()
                    .map(|c| Circle::new((c.memory_mb, c.compute_usd), 9, colour.stroke_width(2))),
            )
            .map_err(|e| chart_error(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| chart_error(&e))?;
    root.present().map_err(|e| chart_error(&e))?;
    Ok(())
}
