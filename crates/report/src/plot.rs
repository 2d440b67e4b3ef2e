//! The report's own figures: the lambda_cls sweep and the GAN loss curves.

use std::error::Error;
use std::path::Path;

use emocycle_plot::plotters::prelude::*;
use emocycle_plot::plotters::style::text_anchor::{HPos, Pos, VPos};
use emocycle_plot::{Area, FONT};

use crate::error::ReportError;
use crate::read::{Curve, ScopeLogs, TrainLog};

type Drawn = Result<(), Box<dyn Error>>;
/// A labelled curve of a loss panel.
type LossLine<'a> = (String, RGBColor, &'a Curve);
/// Which loss of a joint training a panel shows.
type Pick = fn(&TrainLog) -> &Curve;

/// Colours of successive lines (matplotlib's tab10, which stays readable when printed grey).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

pub(crate) fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// Draws a figure and writes it atomically (the plot crate's writer).
pub(crate) fn write_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Drawn,
) -> Result<(), ReportError> {
    Ok(emocycle_plot::write_png(path, size, draw)?)
}

fn message(area: &Area<'_>, text: &str) -> Drawn {
    let (width, height) = area.dim_in_pixel();
    area.draw(&Text::new(
        text.to_string(),
        (width as i32 / 2, height as i32 / 2),
        TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    Ok(())
}

/// One curve of the sweep: `(lambda_cls, mean, std)` in UAR %.
pub(crate) struct SweepLine {
    pub label: String,
    pub colour: RGBColor,
    pub points: Vec<(f64, f64, f64)>,
}

/// A horizontal reference: a UAR without synthetic data.
pub(crate) struct Reference {
    pub label: String,
    pub colour: RGBColor,
    pub value: f64,
}

/// UAR against lambda_cls with ± std error bars, references dashed.
pub(crate) fn draw_sweep(
    path: &Path,
    lines: &[SweepLine],
    references: &[Reference],
) -> Result<(), ReportError> {
    write_png(path, (900, 600), |root| {
        let xs: Vec<f64> = lines
            .iter()
            .flat_map(|line| line.points.iter().map(|p| p.0))
            .collect();
        let ys: Vec<f64> = lines
            .iter()
            .flat_map(|line| line.points.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2]))
            .chain(references.iter().map(|r| r.value))
            .filter(|y| y.is_finite())
            .collect();
        if xs.is_empty() || ys.is_empty() {
            return message(root, "no UAR to plot");
        }
        let (x0, x1) = padded(&xs, 0.05, 0.5);
        let (y0, y1) = padded(&ys, 0.08, 1.0);
        // Headroom above the data for the legend, so it never hides a point.
        let y1 = y1 + (y1 - y0) * 0.45;
        let mut chart = ChartBuilder::on(root)
            .caption(
                "UAR over the classification-loss weight",
                (FONT, 22).into_font(),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("λcls")
            .y_desc("UAR %")
            .label_style((FONT, 14).into_font())
            .axis_desc_style((FONT, 16).into_font())
            .draw()?;
        for line in lines {
            let colour = line.colour;
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().map(|&(x, mean, _)| (x, mean)),
                    colour.stroke_width(2),
                ))?
                .label(line.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart.draw_series(line.points.iter().map(|&(x, mean, std)| {
                ErrorBar::new_vertical(x, mean - std, mean, mean + std, colour.stroke_width(1), 8)
            }))?;
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&(x, mean, _)| Circle::new((x, mean), 4, colour.filled())),
            )?;
        }
        for reference in references {
            let colour = reference.colour;
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, reference.value), (x1, reference.value)],
                    10,
                    6,
                    colour.stroke_width(2),
                ))?
                .label(reference.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(1))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13).into_font())
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}

/// `(min, max)` of `values` widened by `fraction` of the span on each side, or by `minimum`
/// when all values are equal.
fn padded(values: &[f64], fraction: f64, minimum: f64) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = if hi > lo {
        (hi - lo) * fraction
    } else {
        minimum
    };
    (lo - pad, hi + pad)
}

/// A loss value for an axis label: three significant digits, scientific below 0.01.
fn loss_label(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else if value >= 0.01 {
        format!("{value:.3}")
    } else {
        format!("{value:.1e}")
    }
}

/// One loss panel on a logarithmic y axis, drawn as log10(loss) on a linear axis labelled in
/// losses: plotters' own log axis leaves ranges under a decade almost unlabelled.
/// Non-positive losses (the classifier loss of a run without a classifier) have no logarithm
/// and are left out.
fn loss_panel(area: &Area<'_>, title: &str, curves: &[LossLine<'_>]) -> Drawn {
    let logged: Vec<(&String, RGBColor, Curve)> = curves
        .iter()
        .map(|(label, colour, curve)| {
            let points = curve
                .iter()
                .filter(|&&(x, y)| x.is_finite() && y.is_finite() && y > 0.0)
                .map(|&(x, y)| (x, y.log10()))
                .collect();
            (label, *colour, points)
        })
        .collect();
    let points: Vec<(f64, f64)> = logged
        .iter()
        .flat_map(|(_, _, points)| points.iter().copied())
        .collect();
    if points.is_empty() {
        return message(area, &format!("{title}: nothing to plot"));
    }
    let x0 = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let mut x1 = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let (y0, y1) = padded(&ys, 0.05, 0.3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 17).into_font())
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss (log scale)")
        .label_style((FONT, 12).into_font())
        .axis_desc_style((FONT, 13).into_font())
        .y_label_formatter(&|v| loss_label(10f64.powf(*v)))
        .draw()?;
    let mut labelled = false;
    for (label, colour, shown) in logged {
        if shown.is_empty() {
            continue;
        }
        labelled = true;
        chart
            .draw_series(LineSeries::new(shown, colour.stroke_width(2)))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    if labelled {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 12).into_font())
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    Ok(())
}

/// A scope's losses: pretraining cycle loss per generator pair on top; below, the joint
/// training's discriminator, generator, cycle and classifier losses (each averaged over the
/// four emotions' CycleGANs), one line per lambda_cls.
pub(crate) fn draw_losses(path: &Path, logs: &ScopeLogs) -> Result<(), ReportError> {
    write_png(path, (1600, 900), |root| {
        let (top, bottom) = root.split_vertically(430);
        match &logs.pretrain {
            Some(pretrain) => {
                let curves: Vec<LossLine<'_>> = pretrain
                    .pairs
                    .iter()
                    .enumerate()
                    .map(|(index, (emotion, curve))| {
                        (format!("{emotion} pair"), colour(index), curve)
                    })
                    .collect();
                loss_panel(
                    &top,
                    &format!("{}: pretraining cycle loss per generator pair", logs.scope),
                    &curves,
                )?;
            }
            None => message(&top, &format!("{}: no pretraining log", logs.scope))?,
        }
        let panels = bottom.split_evenly((1, 4));
        let kinds: [(&str, Pick); 4] = [
            ("discriminator loss", |log| &log.d),
            ("generator loss", |log| &log.g),
            ("cycle loss", |log| &log.cycle),
            ("classifier loss", |log| &log.cls),
        ];
        for (panel, (title, pick)) in panels.iter().zip(kinds) {
            if logs.train.is_empty() {
                message(panel, &format!("{title}: no joint training log"))?;
                continue;
            }
            let curves: Vec<LossLine<'_>> = logs
                .train
                .iter()
                .enumerate()
                .map(|(index, log)| (format!("λcls={}", log.lambda_cls), colour(index), pick(log)))
                .collect();
            loss_panel(panel, &format!("joint training: {title}"), &curves)?;
        }
        Ok(())
    })
}
