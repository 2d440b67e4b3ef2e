//! Figure 2 of the paper: per-feature mean +- standard deviation of the source, the target and
//! each synthetic set, for a handful of named features, as PNG.
//!
//! Reads nothing; writes the PNG it is asked for, atomically. Feature names may be given in
//! emobase2010 spelling (the paper's feature set) or IS10 spelling (the embedded corpus's, the
//! same 1582 functionals): the two differ only in the MFCC names, see [`emobase2010_to_is10`].

use std::path::Path;

use emocycle_plot::plotters::prelude::*;
use emocycle_plot::plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::SynthError;

pub use emocycle_config::synth::DEFAULT_FIGURE_FEATURES;

const EMOBASE_MFCC: &str = "pcm_fftMag_mfcc_sma";
const IS10_MFCC: &str = "mfcc_sma";

/// The IS10 name of an emobase2010 feature: `pcm_fftMag_mfcc_sma[i]_<f>` becomes
/// `mfcc_sma[i]_<f>` and `pcm_fftMag_mfcc_sma_de[i]_<f>` becomes `mfcc_sma_de[i]_<f>`; every
/// other name is the same in both sets.
pub fn emobase2010_to_is10(name: &str) -> String {
    match name.strip_prefix(EMOBASE_MFCC) {
        Some(rest) => format!("{IS10_MFCC}{rest}"),
        None => name.to_string(),
    }
}

/// The emobase2010 name of an IS10 feature (the inverse of [`emobase2010_to_is10`]).
pub fn is10_to_emobase2010(name: &str) -> String {
    match name.strip_prefix(IS10_MFCC) {
        Some(rest) => format!("{EMOBASE_MFCC}{rest}"),
        None => name.to_string(),
    }
}

/// The column index in `available` of every `wanted` feature, looked up as given, then under
/// its IS10 name, then under its emobase2010 name. An absent feature is an error naming it and
/// `path`, the file the list came from.
pub fn resolve_features(
    wanted: &[String],
    available: &[String],
    path: &Path,
) -> Result<Vec<usize>, SynthError> {
    wanted
        .iter()
        .map(|name| {
            [
                name.clone(),
                emobase2010_to_is10(name),
                is10_to_emobase2010(name),
            ]
            .iter()
            .find_map(|candidate| available.iter().position(|have| have == candidate))
            .ok_or_else(|| SynthError::UnknownFeature {
                feature: name.clone(),
                path: path.to_path_buf(),
            })
        })
        .collect()
}

/// One set's statistics over the figure's features.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureSeries {
    /// Legend text (`source`, `target`, `synthetic lcls=0`).
    pub label: String,
    /// Per-feature mean.
    pub means: Vec<f64>,
    /// Per-feature (population) standard deviation.
    pub stds: Vec<f64>,
}

fn colour(index: usize, count: usize) -> RGBColor {
    // Source grey, target black, then the synthetic sets; the paper draws lcls = 0 blue.
    let synthetic = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
    ];
    match index {
        0 if count > 1 => RGBColor(140, 140, 140),
        1 if count > 2 => BLACK,
        _ => synthetic[index.saturating_sub(2) % synthetic.len()],
    }
}

/// Draws mean +- std of every series for every feature (one row per feature, top to bottom in
/// the given order; series side by side within a row) and writes the PNG to `path`
/// atomically.
pub fn draw_figure2(
    path: &Path,
    title: &str,
    features: &[String],
    series: &[FigureSeries],
) -> Result<(), SynthError> {
    let plot_error = |message: String| {
        SynthError::Plot(emocycle_plot::PlotError::Draw {
            path: path.to_path_buf(),
            message,
        })
    };
    if features.is_empty() || series.is_empty() {
        return Err(plot_error("no features or no series to draw".into()));
    }
    if let Some(bad) = series
        .iter()
        .find(|s| s.means.len() != features.len() || s.stds.len() != features.len())
    {
        return Err(plot_error(format!(
            "series {:?} has {} means for {} features",
            bad.label,
            bad.means.len(),
            features.len()
        )));
    }
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        for (mean, std) in s.means.iter().zip(&s.stds) {
            low = low.min(mean - std);
            high = high.max(mean + std);
        }
    }
    if !(low.is_finite() && high.is_finite()) {
        return Err(plot_error(
            "a mean or standard deviation is not finite".into(),
        ));
    }
    let pad = ((high - low) * 0.05).max(1e-3);
    let (low, high) = (low - pad, high + pad);

    let rows = features.len();
    let size = (1100u32, 150 + 44 * rows as u32);
    emocycle_plot::write_png(
        path,
        size,
        |root| -> Result<(), Box<dyn std::error::Error>> {
            let mut chart = ChartBuilder::on(root)
                .caption(title, (emocycle_plot::FONT, 20))
                .margin(16)
                .x_label_area_size(40)
                .y_label_area_size(290)
                .build_cartesian_2d(low..high, -0.5..(rows as f64 - 0.5))?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(0)
                .x_desc("value (min-max space)")
                .label_style((emocycle_plot::FONT, 14))
                .axis_desc_style((emocycle_plot::FONT, 15))
                .draw()?;
            // Row of feature i, counted from the top.
            let row_y = |feature: usize| (rows - 1 - feature) as f64;
            let step = 0.7 / series.len() as f64;
            for (index, s) in series.iter().enumerate() {
                let colour = colour(index, series.len());
                let offset = (index as f64 - (series.len() - 1) as f64 / 2.0) * step;
                chart
                    .draw_series(s.means.iter().zip(&s.stds).enumerate().map(
                        |(feature, (&mean, &std))| {
                            ErrorBar::new_horizontal(
                                row_y(feature) - offset,
                                mean - std,
                                mean,
                                mean + std,
                                colour.filled().stroke_width(2),
                                6,
                            )
                        },
                    ))?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(3))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((emocycle_plot::FONT, 14))
                .draw()?;
            // Feature names are drawn in pixel space left of the plot, so that each sits exactly
            // on its row whatever label positions the axis would choose.
            let label_style = TextStyle::from((emocycle_plot::FONT, 14).into_font())
                .pos(Pos::new(HPos::Right, VPos::Center));
            for (feature, name) in features.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(low, row_y(feature)));
                root.draw(&Text::new(name.clone(), (x - 8, y), label_style.clone()))?;
            }
            Ok(())
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_between_the_two_feature_sets() {
        assert_eq!(
            emobase2010_to_is10("pcm_fftMag_mfcc_sma[1]_amean"),
            "mfcc_sma[1]_amean"
        );
        assert_eq!(
            emobase2010_to_is10("pcm_fftMag_mfcc_sma_de[12]_stddev"),
            "mfcc_sma_de[12]_stddev"
        );
        assert_eq!(
            emobase2010_to_is10("pcm_loudness_sma_amean"),
            "pcm_loudness_sma_amean"
        );
        assert_eq!(
            is10_to_emobase2010("mfcc_sma_de[0]_kurtosis"),
            "pcm_fftMag_mfcc_sma_de[0]_kurtosis"
        );
        for name in DEFAULT_FIGURE_FEATURES {
            assert_eq!(is10_to_emobase2010(&emobase2010_to_is10(name)), name);
        }
    }

    #[test]
    fn the_default_features_exist_in_the_embedded_corpus() {
        // The embedded corpus is IS10; its header is the feature list.
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/corpus/labelled.csv.gz");
        let (_, names) =
            emocycle_features::read_header(&path, &emocycle_features::ReadOptions::default())
                .unwrap();
        let wanted: Vec<String> = DEFAULT_FIGURE_FEATURES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let found = resolve_features(&wanted, &names, &path).unwrap();
        assert_eq!(found.len(), 12);
        assert_eq!(names[found[2]], "mfcc_sma[1]_amean");

        let mut with_typo = wanted.clone();
        with_typo.push("pcm_loudness_sma_amaen".into());
        let error = resolve_features(&with_typo, &names, &path).unwrap_err();
        assert!(
            error.to_string().contains("pcm_loudness_sma_amaen"),
            "{error}"
        );
        assert!(error.to_string().contains("labelled.csv.gz"), "{error}");
    }

    #[test]
    fn draws_a_non_empty_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("figure2.png");
        let features = vec!["a_amean".to_string(), "b_stddev".to_string()];
        let series = ["source", "target", "synthetic lcls=0"]
            .iter()
            .enumerate()
            .map(|(i, label)| FigureSeries {
                label: label.to_string(),
                means: vec![0.2 + 0.1 * i as f64, 0.5],
                stds: vec![0.05, 0.1 * i as f64],
            })
            .collect::<Vec<_>>();
        draw_figure2(&path, "Figure 2", &features, &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 2000, "{} bytes", bytes.len());
        // Only the figure is left: the scratch file is gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let bad = vec![FigureSeries {
            label: "x".into(),
            means: vec![0.1],
            stds: vec![0.1],
        }];
        assert!(draw_figure2(&path, "t", &features, &bad).is_err());
    }
}
