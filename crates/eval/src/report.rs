//! The evaluation's files: `results.parquet`, `tables.md` and the confusion-matrix PNGs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use emocycle_artifact::{Metadata, keys, sha256_file, write_bytes_atomic, write_parquet};
use emocycle_features::Emotion;
use emocycle_plot::plotters::prelude::*;
use emocycle_plot::plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::{Column, DataFrame};

use crate::config::{EvalConfig, Setup};
use crate::error::{EvalError, Result};
use crate::metrics::{CLASSES, row_normalise};
use crate::run::{Experiment, RunResult, Summary};

/// UAR in % (mean, std) the paper reports (Tables 2 and 3) for (experiment, setup, lambda_cls).
pub fn paper_uar(
    experiment: Experiment,
    setup: Setup,
    lambda_cls: Option<f64>,
) -> Option<(f64, f64)> {
    let lambda = lambda_cls.map(|v| v.to_string());
    match (experiment, setup, lambda.as_deref()) {
        (Experiment::Within, Setup::Real, None) => Some((59.48, 0.71)),
        (Experiment::Within, Setup::Syn, Some("0")) => Some((51.57, 0.60)),
        (Experiment::Within, Setup::Syn, Some("2")) => Some((46.59, 0.75)),
        (Experiment::Within, Setup::RealSyn, Some("0")) => Some((58.79, 0.77)),
        (Experiment::Within, Setup::RealSyn, Some("2")) => Some((60.37, 0.70)),
        (Experiment::CrossTest, Setup::Real, None) => Some((45.58, 0.40)),
        (Experiment::CrossTest, Setup::Syn, Some("0")) => Some((39.35, 0.33)),
        (Experiment::CrossTest, Setup::Syn, Some("2")) => Some((41.58, 1.29)),
        (Experiment::CrossTest, Setup::RealSyn, Some("0")) => Some((42.61, 0.34)),
        (Experiment::CrossTest, Setup::RealSyn, Some("2")) => Some((46.52, 0.43)),
        _ => None,
    }
}

/// `confusion_<experiment>_<setup>[_lambda_cls-<v>].png`.
pub fn confusion_file_name(
    experiment: Experiment,
    setup: Setup,
    lambda_cls: Option<f64>,
) -> String {
    match lambda_cls {
        Some(value) => format!(
            "confusion_{}_{}_lambda_cls-{value}.png",
            experiment.as_str(),
            setup.as_str()
        ),
        None => format!("confusion_{}_{}.png", experiment.as_str(), setup.as_str()),
    }
}

fn frame_error(what: &str) -> impl FnOnce(polars::error::PolarsError) -> EvalError + '_ {
    move |source| EvalError::Frame {
        what: what.to_string(),
        source,
    }
}

/// The results as a frame; column order is the documented schema.
pub fn results_frame(results: &[RunResult]) -> Result<DataFrame> {
    let strings = |f: &dyn Fn(&RunResult) -> Option<String>| -> Vec<Option<String>> {
        results.iter().map(f).collect()
    };
    let mut columns = vec![
        Column::new(
            "experiment".into(),
            results
                .iter()
                .map(|r| r.experiment.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "fold".into(),
            results
                .iter()
                .map(|r| r.fold.map(|f| f as u32))
                .collect::<Vec<_>>(),
        ),
        Column::new("test_session".into(), strings(&|r| r.test_session.clone())),
        Column::new(
            "setup".into(),
            results.iter().map(|r| r.setup.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "lambda_cls".into(),
            results.iter().map(|r| r.lambda_cls).collect::<Vec<_>>(),
        ),
        Column::new(
            "synthetic_scope".into(),
            strings(&|r| r.synthetic_scope.clone()),
        ),
        Column::new(
            "repeat".into(),
            results.iter().map(|r| r.repeat as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "seed".into(),
            results.iter().map(|r| r.seed).collect::<Vec<_>>(),
        ),
        Column::new(
            "run_seed".into(),
            results.iter().map(|r| r.run_seed).collect::<Vec<_>>(),
        ),
        Column::new(
            "train_rows".into(),
            results
                .iter()
                .map(|r| r.train_rows as u64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "test_rows".into(),
            results
                .iter()
                .map(|r| r.confusion.total())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "uar".into(),
            results.iter().map(RunResult::uar).collect::<Vec<_>>(),
        ),
        Column::new(
            "accuracy".into(),
            results.iter().map(RunResult::accuracy).collect::<Vec<_>>(),
        ),
    ];
    for emotion in Emotion::ALL {
        columns.push(Column::new(
            format!("recall_{emotion}").into(),
            results
                .iter()
                .map(|r| r.confusion.recall(emotion))
                .collect::<Vec<_>>(),
        ));
    }
    for truth in Emotion::ALL {
        for predicted in Emotion::ALL {
            columns.push(Column::new(
                format!("cm_{truth}_{predicted}").into(),
                results
                    .iter()
                    .map(|r| r.confusion.counts[truth.index()][predicted.index()])
                    .collect::<Vec<_>>(),
            ));
        }
    }
    columns.push(Column::new(
        "final_loss".into(),
        results.iter().map(|r| r.final_loss).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "seconds".into(),
        results.iter().map(|r| r.seconds).collect::<Vec<_>>(),
    ));
    DataFrame::new(results.len(), columns).map_err(frame_error("results table"))
}

fn percent(value: f64) -> String {
    if value.is_finite() {
        format!("{:.2}", value * 100.0)
    } else {
        "n/a".to_string()
    }
}

fn lambda_label(lambda_cls: Option<f64>) -> String {
    lambda_cls.map_or("–".to_string(), |v| v.to_string())
}

/// The Markdown tables: Table 2 and Table 3 analogues with the paper's numbers beside ours,
/// the cross-corpus dev part, per-class recalls and per-fold UARs.
pub fn tables_markdown(
    config: &EvalConfig,
    results: &[RunResult],
    summaries: &[Summary],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Evaluation\n");
    let _ = writeln!(
        out,
        "UAR and accuracy in %: for each repeat the metric is averaged over the folds, then the \
         mean and population standard deviation over the {} repeats (seeds {}..={}) are shown. \
         Synthetic data scope `{}`, z-normalisation `{}`. Paper: Bao, Neumann and Vu, \
         Interspeech 2019.\n",
        config.repeats,
        config.repeat_seed(0),
        config.repeat_seed(config.repeats - 1),
        serde_json::to_value(config.synthetic_scope)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        serde_json::to_value(config.znorm)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    );
    let titles = [
        (
            Experiment::Within,
            "Table 2: within corpus (leave-one-session-out)",
        ),
        (Experiment::CrossTest, "Table 3: cross corpus, test part"),
        (
            Experiment::CrossDev,
            "Cross corpus, dev part (the paper reports none)",
        ),
    ];
    for (experiment, title) in titles {
        let rows: Vec<&Summary> = summaries
            .iter()
            .filter(|s| s.experiment == experiment)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let folds = rows.iter().map(|s| s.folds).max().unwrap_or(0);
        let _ = writeln!(out, "## {title}\n");
        let _ = writeln!(out, "Folds per repeat: {folds}.\n");
        let _ = writeln!(
            out,
            "| setup | lambda_cls | UAR (ours) | UAR (paper) | accuracy (ours) | recall angry | recall happy | recall neutral | recall sad | figure |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for summary in rows {
            let paper = paper_uar(experiment, summary.setup, summary.lambda_cls)
                .map_or("–".to_string(), |(m, s)| format!("{m:.2} ± {s:.2}"));
            let recalls: Vec<String> = summary
                .recall_mean
                .iter()
                .map(|r| r.map_or("–".to_string(), percent))
                .collect();
            let figure = confusion_file_name(experiment, summary.setup, summary.lambda_cls);
            let _ = writeln!(
                out,
                "| {} | {} | {} ± {} | {paper} | {} ± {} | {} | [png](<{figure}>) |",
                summary.setup,
                lambda_label(summary.lambda_cls),
                percent(summary.uar_mean),
                percent(summary.uar_std),
                percent(summary.accuracy_mean),
                percent(summary.accuracy_std),
                recalls.join(" | "),
            );
        }
        let _ = writeln!(out);
    }

    // Per fold: where the variance between sessions hides.
    let mut per_fold: BTreeMap<(usize, String, Setup, Option<u64>), Vec<f64>> = BTreeMap::new();
    for result in results
        .iter()
        .filter(|r| r.experiment == Experiment::Within)
    {
        per_fold
            .entry((
                result.fold.unwrap_or(0),
                result.test_session.clone().unwrap_or_default(),
                result.setup,
                result.lambda_cls.map(f64::to_bits),
            ))
            .or_default()
            .push(result.uar());
    }
    if !per_fold.is_empty() {
        let _ = writeln!(
            out,
            "## Within corpus, per fold (UAR %, mean ± std over repeats)\n"
        );
        let _ = writeln!(out, "| fold | test session | setup | lambda_cls | UAR |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for ((fold, session, setup, lambda_bits), values) in per_fold {
            let (mean, std) = crate::metrics::mean_std(&values);
            let _ = writeln!(
                out,
                "| {fold} | {session} | {setup} | {} | {} ± {} |",
                lambda_label(lambda_bits.map(f64::from_bits)),
                percent(mean),
                percent(std)
            );
        }
        let _ = writeln!(out);
    }
    out
}

/// White to dark blue, as the paper's Figure 3.
fn heat(fraction: f64) -> RGBColor {
    let t = fraction.clamp(0.0, 1.0);
    let mix = |from: f64, to: f64| (from + (to - from) * t).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

/// Draws one row-normalised confusion matrix as a PNG heat map with class names and
/// percentages, atomically (rendered beside the target under a temporary name, then renamed).
pub fn draw_confusion(path: &Path, title: &str, counts: &[[f64; CLASSES]; CLASSES]) -> Result<()> {
    emocycle_plot::init();
    let fractions = row_normalise(counts);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The temporary keeps the .png extension: the bitmap encoder picks the format from it.
    let temp = dir.join(format!(".{name}.{}.tmp.png", std::process::id()));
    let plot_error = |error: &dyn std::fmt::Display| EvalError::Plot {
        path: path.to_path_buf(),
        message: error.to_string(),
    };
    let drawn = (|| -> Result<()> {
        let (width, height) = (600u32, 560u32);
        let root = BitMapBackend::new(&temp, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(&e))?;
        let (left, top, cell) = (140i32, 70i32, 105i32);
        fn centred(size: u32, color: &RGBColor) -> TextStyle<'_> {
            TextStyle::from((emocycle_plot::FONT, size).into_font())
                .color(color)
                .pos(Pos::new(HPos::Center, VPos::Center))
        }
        root.draw(&Text::new(
            title.to_string(),
            (width as i32 / 2, 25),
            centred(20, &BLACK),
        ))
        .map_err(|e| plot_error(&e))?;
        for truth in Emotion::ALL {
            let y = top + truth.index() as i32 * cell;
            root.draw(&Text::new(
                truth.as_str().to_string(),
                (left - 50, y + cell / 2),
                centred(16, &BLACK),
            ))
            .map_err(|e| plot_error(&e))?;
            for predicted in Emotion::ALL {
                let x = left + predicted.index() as i32 * cell;
                let fraction = fractions[truth.index()][predicted.index()];
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    heat(fraction).filled(),
                ))
                .map_err(|e| plot_error(&e))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(200, 200, 200).stroke_width(1),
                ))
                .map_err(|e| plot_error(&e))?;
                let ink = if fraction > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    format!("{:.1}%", fraction * 100.0),
                    (x + cell / 2, y + cell / 2),
                    centred(18, &ink),
                ))
                .map_err(|e| plot_error(&e))?;
            }
        }
        let bottom = top + CLASSES as i32 * cell;
        for predicted in Emotion::ALL {
            root.draw(&Text::new(
                predicted.as_str().to_string(),
                (
                    left + predicted.index() as i32 * cell + cell / 2,
                    bottom + 18,
                ),
                centred(16, &BLACK),
            ))
            .map_err(|e| plot_error(&e))?;
        }
        root.draw(&Text::new(
            "predicted".to_string(),
            (left + 2 * cell, bottom + 45),
            centred(16, &BLACK),
        ))
        .map_err(|e| plot_error(&e))?;
        root.draw(&Text::new(
            "true".to_string(),
            (left - 110, top + 2 * cell),
            centred(16, &BLACK),
        ))
        .map_err(|e| plot_error(&e))?;
        root.present().map_err(|e| plot_error(&e))?;
        Ok(())
    })();
    if let Err(error) = drawn {
        let _ = std::fs::remove_file(&temp);
        return Err(error);
    }
    std::fs::rename(&temp, path).map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        EvalError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Writes every output into `dir`; returns the paths written.
pub(crate) fn write_all(
    dir: &Path,
    config: &EvalConfig,
    inputs: &[PathBuf],
    results: &[RunResult],
    summaries: &[Summary],
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut metadata = Metadata::for_stage("eval");
    metadata.insert_json(keys::CONFIG, config);
    metadata.insert_json(
        keys::SEEDS,
        &serde_json::json!({
            "base": config.seed,
            "repeats": (0..config.repeats).map(|r| config.repeat_seed(r)).collect::<Vec<_>>(),
        }),
    );
    let mut hashes = BTreeMap::new();
    for path in inputs {
        hashes.insert(path.display().to_string(), sha256_file(path)?);
    }
    metadata.insert_json(keys::INPUTS, &hashes);
    let results_path = dir.join("results.parquet");
    write_parquet(&results_path, &mut results_frame(results)?, &metadata)?;
    written.push(results_path);

    let tables_path = dir.join("tables.md");
    write_bytes_atomic(
        &tables_path,
        tables_markdown(config, results, summaries).as_bytes(),
    )?;
    written.push(tables_path);

    for summary in summaries {
        let path = dir.join(confusion_file_name(
            summary.experiment,
            summary.setup,
            summary.lambda_cls,
        ));
        let title = match summary.lambda_cls {
            Some(value) => format!(
                "{} · {} · λcls = {value} · UAR {}%",
                summary.experiment.as_str(),
                summary.setup,
                percent(summary.uar_mean)
            ),
            None => format!(
                "{} · {} · UAR {}%",
                summary.experiment.as_str(),
                summary.setup,
                percent(summary.uar_mean)
            ),
        };
        draw_confusion(&path, &title, &summary.confusion_mean)?;
        written.push(path);
    }
    Ok(written)
}
