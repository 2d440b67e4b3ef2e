//! The evaluation's files: `results.parquet`, `tables.md` and the confusion-matrix PNGs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use emocycle_artifact::{Metadata, keys, read_parquet, write_bytes_atomic, write_parquet};
use emocycle_features::Emotion;
use emocycle_plot::plotters::prelude::*;
use emocycle_plot::plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::{Column, DataFrame};

use crate::error::{EvalError, Result};
use crate::metrics::{CLASSES, row_normalise};
use crate::results::{Experiment, RunResult, Summary};
use crate::source::SyntheticSource;
use emocycle_config::eval::{EvalConfig, Setup};

/// UAR in % (mean, std) the paper reports (Tables 2 and 3) for (experiment, setup, source);
/// the paper has CycleGAN numbers for lambda_cls 0 and 2 only.
pub fn paper_uar(
    experiment: Experiment,
    setup: Setup,
    source: Option<&SyntheticSource>,
) -> Option<(f64, f64)> {
    if source.is_some_and(|source| !source.is_cyclegan()) {
        return None;
    }
    let lambda = source
        .and_then(SyntheticSource::lambda_cls)
        .map(|v| v.to_string());
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

/// `confusion_<experiment>_<setup>[_<lambda_cls-<v> or baseline>].png`.
pub fn confusion_file_name(
    experiment: Experiment,
    setup: Setup,
    source: Option<&SyntheticSource>,
) -> String {
    match source {
        Some(source) => format!(
            "confusion_{}_{}_{}.png",
            experiment.as_str(),
            setup.as_str(),
            source.dir_name()
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
            "method".into(),
            strings(&|r| r.source.as_ref().map(|s| s.method().to_string())),
        ),
        Column::new(
            "lambda_cls".into(),
            results
                .iter()
                .map(RunResult::lambda_cls)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "gan_seed".into(),
            results
                .iter()
                .map(|r| r.source.as_ref().and_then(SyntheticSource::gan_seed))
                .collect::<Vec<_>>(),
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
    columns.push(Column::new(
        "run_key".into(),
        strings(&|r| Some(r.run_key.clone())),
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

/// The `method` and `lambda_cls` cells of a table row.
fn source_cells(source: Option<&SyntheticSource>) -> (String, String) {
    match source {
        None => ("–".to_string(), "–".to_string()),
        Some(source) => (
            source.method().to_string(),
            source
                .lambda_cls()
                .map_or("–".to_string(), |v| v.to_string()),
        ),
    }
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
         \"± per session\" is the other common spread: the mean over folds of each fold's \
         standard deviation of the UAR over repeats, which is how the authors' code combines \
         sessions and the one to compare with the paper's ±. Synthetic data scope `{}`, \
         z-normalisation `{}`. Paper: Bao, Neumann and Vu, Interspeech 2019.\n",
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
        // The split of the spread only where several generator seeds were trained.
        let split = rows.iter().any(|s| s.spread_parts.is_some());
        if split {
            let _ = writeln!(
                out,
                "Rows of a CycleGAN trained from {} generator seeds pool every seed's repeats; \
                 \"± classifier\" and \"± generator\" split their spread by a one-way \
                 random-effects analysis of variance over the seeds.\n",
                rows.iter().map(|s| s.gan_seeds).max().unwrap_or(1)
            );
        }
        let (split_head, split_rule) = if split {
            (" ± classifier | ± generator |", "---|---|")
        } else {
            ("", "")
        };
        let _ = writeln!(
            out,
            "| setup | method | lambda_cls | UAR (ours) | ± per session |{split_head} UAR (paper) | accuracy (ours) | recall angry | recall happy | recall neutral | recall sad | figure |"
        );
        let _ = writeln!(
            out,
            "|---|---|---|---|---|{split_rule}---|---|---|---|---|---|---|"
        );
        for summary in rows {
            let paper = paper_uar(experiment, summary.setup, summary.source.as_ref())
                .map_or("–".to_string(), |(m, s)| format!("{m:.2} ± {s:.2}"));
            let recalls: Vec<String> = summary
                .recall_mean
                .iter()
                .map(|r| r.map_or("–".to_string(), percent))
                .collect();
            let figure = confusion_file_name(experiment, summary.setup, summary.source.as_ref());
            let (method, lambda) = source_cells(summary.source.as_ref());
            let parts = match (split, summary.spread_parts) {
                (false, _) => String::new(),
                (true, None) => " – | – |".to_string(),
                (true, Some(parts)) => format!(
                    " ± {} | ± {} |",
                    percent(parts.classifier),
                    percent(parts.generator)
                ),
            };
            let _ = writeln!(
                out,
                "| {} | {method} | {lambda} | {} ± {} | ± {} |{parts} {paper} | {} ± {} | {} | [png](<{figure}>) |",
                summary.setup,
                percent(summary.uar_mean),
                percent(summary.uar_std),
                percent(summary.uar_std_per_session),
                percent(summary.accuracy_mean),
                percent(summary.accuracy_std),
                recalls.join(" | "),
            );
        }
        let _ = writeln!(out);
    }

    // Per fold: where the variance between sessions hides.
    type FoldKey = (usize, String, Setup, Option<(u8, u64, u32, String)>);
    let mut per_fold: BTreeMap<FoldKey, (Option<SyntheticSource>, Vec<f64>)> = BTreeMap::new();
    for result in results
        .iter()
        .filter(|r| r.experiment == Experiment::Within)
    {
        per_fold
            .entry((
                result.fold.unwrap_or(0),
                result.test_session.clone().unwrap_or_default(),
                result.setup,
                result
                    .source
                    .as_ref()
                    .map(|source| source.family().sort_key()),
            ))
            .or_insert_with(|| {
                (
                    result.source.as_ref().map(SyntheticSource::family),
                    Vec::new(),
                )
            })
            .1
            .push(result.uar());
    }
    if !per_fold.is_empty() {
        let _ = writeln!(
            out,
            "## Within corpus, per fold (UAR %, mean ± std over repeats)\n"
        );
        let _ = writeln!(
            out,
            "| fold | test session | setup | method | lambda_cls | UAR |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for ((fold, session, setup, _), (source, values)) in per_fold {
            let (mean, std) = crate::metrics::mean_std(&values);
            let (method, lambda) = source_cells(source.as_ref());
            let _ = writeln!(
                out,
                "| {fold} | {session} | {setup} | {method} | {lambda} | {} ± {} |",
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
    let fractions = row_normalise(counts);
    let (width, height) = (600u32, 560u32);
    emocycle_plot::write_png(path, (width, height), |root| -> DrawResult {
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
        ))?;
        for truth in Emotion::ALL {
            let y = top + truth.index() as i32 * cell;
            root.draw(&Text::new(
                truth.as_str().to_string(),
                (left - 50, y + cell / 2),
                centred(16, &BLACK),
            ))?;
            for predicted in Emotion::ALL {
                let x = left + predicted.index() as i32 * cell;
                let fraction = fractions[truth.index()][predicted.index()];
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    heat(fraction).filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(200, 200, 200).stroke_width(1),
                ))?;
                let ink = if fraction > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    format!("{:.1}%", fraction * 100.0),
                    (x + cell / 2, y + cell / 2),
                    centred(18, &ink),
                ))?;
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
            ))?;
        }
        root.draw(&Text::new(
            "predicted".to_string(),
            (left + 2 * cell, bottom + 45),
            centred(16, &BLACK),
        ))?;
        root.draw(&Text::new(
            "true".to_string(),
            (left - 110, top + 2 * cell),
            centred(16, &BLACK),
        ))?;
        Ok(())
    })?;
    Ok(())
}

/// What a drawing step returns: plotters' errors, boxed.
type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Writes every output into `dir`; returns the paths written.
pub(crate) fn write_all(
    dir: &Path,
    config: &EvalConfig,
    inputs: &BTreeMap<PathBuf, String>,
    results: &[RunResult],
    summaries: &[Summary],
    skipped: &[String],
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut metadata = Metadata::for_stage("eval", crate::CODE_FINGERPRINT);
    metadata.insert_json(keys::CONFIG, config);
    metadata.insert_json(
        keys::SEEDS,
        &serde_json::json!({
            "base": config.seed,
            "repeats": (0..config.repeats).map(|r| config.repeat_seed(r)).collect::<Vec<_>>(),
        }),
    );
    let hashes: BTreeMap<String, &String> = inputs
        .iter()
        .map(|(path, hash)| (path.display().to_string(), hash))
        .collect();
    metadata.insert_json(keys::INPUTS, &hashes);
    let results_path = dir.join("results.parquet");
    write_parquet(&results_path, &mut results_frame(results)?, &metadata)?;
    written.push(results_path);

    let tables_path = dir.join("tables.md");
    let mut tables = tables_markdown(config, results, summaries);
    if !skipped.is_empty() {
        let _ = writeln!(tables, "## Setups left out\n");
        for line in skipped {
            let _ = writeln!(tables, "- {line}");
        }
        let _ = writeln!(tables);
    }
    write_bytes_atomic(&tables_path, tables.as_bytes())?;
    written.push(tables_path);

    for summary in summaries {
        let path = dir.join(confusion_file_name(
            summary.experiment,
            summary.setup,
            summary.source.as_ref(),
        ));
        let title = match &summary.source {
            Some(SyntheticSource::CycleGan { lambda_cls, .. }) => format!(
                "{} · {} · λcls = {lambda_cls} · UAR {}%",
                summary.experiment.as_str(),
                summary.setup,
                percent(summary.uar_mean)
            ),
            Some(SyntheticSource::Baseline { name }) => format!(
                "{} · {} · {name} · UAR {}%",
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

/// The rows of an earlier `results.parquet`, by run key, for reuse. Anything unreadable (no
/// file, an older schema, a damaged file) yields nothing: the runs are trained again.
pub(crate) fn read_previous_results(path: &Path) -> BTreeMap<String, Vec<RunResult>> {
    if !path.is_file() {
        return BTreeMap::new();
    }
    match parse_results(path) {
        Ok(results) => {
            let mut by_key: BTreeMap<String, Vec<RunResult>> = BTreeMap::new();
            for result in results {
                by_key
                    .entry(result.run_key.clone())
                    .or_default()
                    .push(result);
            }
            by_key
        }
        Err(error) => {
            tracing::info!(path = %path.display(), %error, "earlier results not reused");
            BTreeMap::new()
        }
    }
}

/// Reads a `results.parquet` back into [`RunResult`]s (the inverse of [`results_frame`]), for
/// reports and notebooks; the error names the file and what is wrong.
pub fn read_results(path: &Path) -> Result<Vec<RunResult>> {
    parse_results(path).map_err(|message| EvalError::input(path, message))
}

fn parse_results(path: &Path) -> std::result::Result<Vec<RunResult>, String> {
    let (frame, _) = read_parquet(path).map_err(|e| e.to_string())?;
    let column = |name: &str| frame.column(name).map_err(|e| e.to_string());
    let strings = |name: &str| -> std::result::Result<Vec<Option<String>>, String> {
        Ok(column(name)?
            .str()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    };
    let u64s = |name: &str| -> std::result::Result<Vec<Option<u64>>, String> {
        let cast = column(name)?
            .cast(&polars::prelude::DataType::UInt64)
            .map_err(|e| e.to_string())?;
        Ok(cast.u64().map_err(|e| e.to_string())?.iter().collect())
    };
    let f64s = |name: &str| -> std::result::Result<Vec<Option<f64>>, String> {
        Ok(column(name)?
            .f64()
            .map_err(|e| e.to_string())?
            .iter()
            .collect())
    };
    let experiments = strings("experiment")?;
    let folds = u64s("fold")?;
    let sessions = strings("test_session")?;
    let setups = strings("setup")?;
    let methods = strings("method")?;
    let lambdas = f64s("lambda_cls")?;
    // Results written before `gan.seeds` existed have no column: every set was seed 0.
    let gan_seeds = if frame.column("gan_seed").is_ok() {
        u64s("gan_seed")?
    } else {
        vec![None; frame.height()]
    };
    let synthetic_scopes = strings("synthetic_scope")?;
    let repeats = u64s("repeat")?;
    let seeds = u64s("seed")?;
    let run_seeds = u64s("run_seed")?;
    let train_rows = u64s("train_rows")?;
    let losses = f64s("final_loss")?;
    let seconds = f64s("seconds")?;
    let keys = strings("run_key")?;
    let mut cells = Vec::new();
    for truth in Emotion::ALL {
        for predicted in Emotion::ALL {
            cells.push((truth, predicted, u64s(&format!("cm_{truth}_{predicted}"))?));
        }
    }
    let mut results = Vec::with_capacity(frame.height());
    for row in 0..frame.height() {
        let missing = |what: &str| format!("row {}: no {what}", row + 1);
        let experiment = Experiment::ALL
            .into_iter()
            .find(|e| experiments[row].as_deref() == Some(e.as_str()))
            .ok_or_else(|| missing("experiment"))?;
        let setup = Setup::ALL
            .into_iter()
            .find(|s| setups[row].as_deref() == Some(s.as_str()))
            .ok_or_else(|| missing("setup"))?;
        let source = match (&methods[row], lambdas[row]) {
            (None, _) => None,
            (Some(method), Some(lambda_cls)) if method == crate::source::CYCLEGAN => {
                let gan_seed = u32::try_from(gan_seeds[row].unwrap_or(0))
                    .map_err(|_| format!("row {}: gan_seed out of range", row + 1))?;
                Some(SyntheticSource::seeded(lambda_cls, gan_seed))
            }
            (Some(method), _) => Some(SyntheticSource::baseline(method.clone())),
        };
        let mut confusion = crate::metrics::ConfusionMatrix::default();
        for (truth, predicted, values) in &cells {
            confusion.counts[truth.index()][predicted.index()] =
                values[row].ok_or_else(|| missing("confusion count"))?;
        }
        results.push(RunResult {
            experiment,
            fold: folds[row].map(|f| f as usize),
            test_session: sessions[row].clone(),
            setup,
            source,
            synthetic_scope: synthetic_scopes[row].clone(),
            repeat: repeats[row].ok_or_else(|| missing("repeat"))? as usize,
            seed: seeds[row].ok_or_else(|| missing("seed"))?,
            run_seed: run_seeds[row].ok_or_else(|| missing("run_seed"))?,
            train_rows: train_rows[row].ok_or_else(|| missing("train_rows"))? as usize,
            confusion,
            final_loss: losses[row].unwrap_or(f64::NAN),
            seconds: seconds[row].unwrap_or(0.0),
            run_key: keys[row].clone().ok_or_else(|| missing("run_key"))?,
        });
    }
    Ok(results)
}
