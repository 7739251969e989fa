//! SVG pictures: speedup against threads, and schedules as Gantt charts.

use crate::{AnalyzeError, Schedule, WeightBasis};
use plotters::{coord::types::RangedCoordf64, prelude::*};
use std::path::Path;

/// A named curve of (threads, speedup) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend label.
    pub label: String,
    /// (threads, speedup) points, by ascending threads.
    pub points: Vec<(f64, f64)>,
}

fn chart_error(path: &Path, error: impl std::fmt::Display) -> AnalyzeError {
    AnalyzeError::Chart {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

/// The drawing of a chart: plotters' chart over the SVG file.
type Plot<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Writes an SVG chart of speedup against threads to `path`: `bounds` (ideal
/// bounds, drawn as lines) and `measured` (measured speedups, drawn as points
/// joined by thin lines, coloured like the bound with the same index), with
/// the linear speedup `y = x` as a grey reference.
pub fn speedup_chart(
    path: &Path,
    title: &str,
    bounds: &[Curve],
    measured: &[Curve],
) -> Result<(), AnalyzeError> {
    let err = |e: &dyn std::fmt::Display| chart_error(path, e);
    let all = || bounds.iter().chain(measured).flat_map(|c| c.points.iter());
    let max_x = all().map(|p| p.0).fold(2.0f64, f64::max);
    let max_y = all()
        .map(|p| p.1)
        .filter(|y| y.is_finite())
        .fold(1.0f64, f64::max);
    let max_y = (max_y * 1.1).max(2.0).min(max_x * 1.05);

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(1f64..max_x, 0f64..max_y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("threads")
        .y_desc("speedup over sequential")
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                format!("{x:.1}")
            }
        })
        .y_label_formatter(&|y| format!("{y:.1}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| err(&e))?;
    draw_curves(&mut chart, max_x.min(max_y), bounds, measured).map_err(|e| err(&e))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Draws the linear reference up to `linear_to`, the `bounds` as lines
/// and the `measured` speedups as points, each with its legend entry.
fn draw_curves(
    chart: &mut Plot<'_, '_>,
    linear_to: f64,
    bounds: &[Curve],
    measured: &[Curve],
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let grey = RGBColor(170, 170, 170);
    chart
        .draw_series(LineSeries::new(
            [(1.0, 1.0), (linear_to, linear_to)],
            grey.stroke_width(1),
        ))?
        .label("linear")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    for (k, curve) in bounds.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(
                curve.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(curve.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    for (k, curve) in measured.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart.draw_series(LineSeries::new(
            curve.points.iter().copied(),
            color.mix(0.5).stroke_width(1),
        ))?;
        chart
            .draw_series(
                curve
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 4, color.filled())),
            )?
            .label(curve.label.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    Ok(())
}

/// Writes the schedule as an SVG Gantt chart to `path`: one row per worker,
/// one bar per transaction (labelled with its index where it fits), bars of
/// transactions in `highlight` (e.g. the critical path) in red.
pub fn schedule_chart(
    path: &Path,
    title: &str,
    schedule: &Schedule,
    highlight: &[usize],
) -> Result<(), AnalyzeError> {
    let err = |e: &dyn std::fmt::Display| chart_error(path, e);
    let (scale, unit) = match schedule.basis {
        WeightBasis::Time => (1e-6, "ms"),
        WeightBasis::Gas => (1e-3, "kgas"),
        WeightBasis::Unit => (1.0, "transactions"),
    };
    let span = (schedule.makespan as f64 * scale).max(f64::MIN_POSITIVE);
    let workers = schedule.busy_workers();
    let width = 1200u32;
    let height = u32::try_from(workers).map_or(4000, |rows| {
        rows.saturating_mul(36).saturating_add(140).min(4000)
    });
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..span, -0.5f64..workers as f64 - 0.5)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(format!("{} ({unit})", schedule.basis.as_str()))
        .y_desc("worker")
        .y_labels(workers.min(32) + 1)
        .y_label_formatter(&|y| {
            let w = y.round();
            if (y - w).abs() < 1e-9 && w >= 0.0 && (w as usize) < workers {
                format!("{}", w as usize)
            } else {
                String::new()
            }
        })
        .disable_y_mesh()
        .draw()
        .map_err(|e| err(&e))?;
    let bars = Bars {
        scale,
        // How many pixels one unit of the x axis takes.
        pixels_per_unit: f64::from(width - 110) / span,
    };
    bars.draw(&mut chart, schedule, highlight)
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// How a schedule's slots are drawn: `scale` converts their weights to the
/// x axis' unit.
struct Bars {
    scale: f64,
    pixels_per_unit: f64,
}

impl Bars {
    /// Draws one bar per slot, outlined, in red if its transaction is in
    /// `highlight`, labelled with the transaction's index where it fits.
    fn draw(
        &self,
        chart: &mut Plot<'_, '_>,
        schedule: &Schedule,
        highlight: &[usize],
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
        let mut critical = vec![false; schedule.slots.len()];
        for &tx in highlight {
            if let Some(c) = critical.get_mut(tx) {
                *c = true;
            }
        }
        let bar = |slot: &crate::Slot| {
            let color = if critical[slot.tx] {
                RGBColor(214, 39, 40).to_rgba()
            } else {
                Palette99::pick(slot.tx % 6 + 1).to_rgba().mix(0.75)
            };
            Rectangle::new(self.corners(slot), color.filled())
        };
        chart.draw_series(schedule.slots.iter().map(bar))?;
        let outline =
            |slot: &crate::Slot| Rectangle::new(self.corners(slot), WHITE.stroke_width(1));
        chart.draw_series(schedule.slots.iter().map(outline))?;
        let labels = schedule.slots.iter().filter_map(|slot| {
            let label = slot.tx.to_string();
            let pixels = (slot.end - slot.start) as f64 * self.scale * self.pixels_per_unit;
            (pixels >= 7.0 * label.len() as f64 + 4.0).then(|| {
                Text::new(
                    label,
                    (slot.start as f64 * self.scale, slot.worker as f64 + 0.12),
                    ("sans-serif", 11).into_font().color(&BLACK),
                )
            })
        });
        chart.draw_series(labels)?;
        Ok(())
    }

    /// The corners of a slot's bar.
    fn corners(&self, slot: &crate::Slot) -> [(f64, f64); 2] {
        let (x0, x1) = (slot.start as f64 * self.scale, slot.end as f64 * self.scale);
        let y = slot.worker as f64;
        [(x0, y - 0.38), (x1, y + 0.38)]
    }
}
