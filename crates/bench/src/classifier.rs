//! Would the evaluation gain from training its same-shaped classifiers (the folds x repeats of
//! one setup) as one batched model? Times one training iteration (forward, softmax
//! cross-entropy, backward, Adam) of the paper's three within-corpus classifier shapes, one
//! classifier per process as `evaluate` trains them, against R of them stacked along a leading
//! dimension (one `baddbmm` per layer, one Adam call per stacked tensor).

use std::time::Instant;

use anyhow::Result;
use emocycle_gan::ModelLayout;
use emocycle_rng::SplitMix64;
use emocycle_torch::{Acts, Adam, Init, MlpStack};
use tch::{Device, Kind, Tensor};

use crate::table::{Table, verdict};

const FEATURES: i64 = 1582;
const CLASSES: i64 = 4;

/// Median milliseconds of one iteration of `models` classifiers stacked (`Batched`), or of one
/// classifier (`Separate`, `models` = 1), on random rows and labels.
fn iteration_ms(
    hidden: i64,
    batch: i64,
    models: usize,
    layout: ModelLayout,
    warmup: usize,
    iterations: usize,
) -> f64 {
    let stack = MlpStack::new(
        "c",
        Some((0..models).collect()),
        vec![FEATURES, hidden, hidden, CLASSES],
        // Dropout masks cost the same per row however the classifiers are grouped: left out.
        0.0,
        0.2,
        layout,
        Init::Stream(&mut SplitMix64::new(1)),
        Device::Cpu,
    );
    let mut adam = Adam::new(stack.leaves(), 0.9, 0.999, 1e-8);
    let rows = Tensor::rand(
        [models as i64 * batch, FEATURES],
        (Kind::Float, Device::Cpu),
    );
    let labels = Tensor::randint(CLASSES, [models as i64 * batch], (Kind::Int64, Device::Cpu));
    let mut times = Vec::with_capacity(iterations);
    for index in 0..warmup + iterations {
        let started = Instant::now();
        let logits = stack
            .forward(&Acts::from_rows(&rows, models, layout), true)
            .to_rows();
        // Each classifier's mean loss, summed: every model gets its own gradient.
        let loss = logits.cross_entropy_for_logits(&labels) * models as f64;
        adam.minimise(&loss, 1e-5);
        if index >= warmup {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

pub(crate) fn bench(warmup: usize, iterations: usize) -> Result<String> {
    let threads = tch::get_num_threads();
    let mut table = Table::new(&[
        "classifier (paper, within corpus)",
        "one per process, ms per classifier-iteration",
        "5 stacked, 1 thread, 2 processes",
        "10 stacked, 2 threads",
        "gain",
    ]);
    let mut worst = f64::INFINITY;
    for (name, hidden, batch) in [
        ("real: 100-100, batch 64", 100, 64),
        ("syn: 200-200, batch 256", 200, 256),
        ("real+syn: 1000-1000, batch 256", 1000, 256),
    ] {
        tch::set_num_threads(1);
        // `evaluate` runs one classifier per worker with one thread, a worker per core: the
        // baseline assumes the workers run side by side at full speed, which favours it.
        let alone = iteration_ms(hidden, batch, 1, ModelLayout::Separate, warmup, iterations)
            / threads as f64;
        let five = iteration_ms(hidden, batch, 5, ModelLayout::Batched, warmup, iterations)
            / (5 * threads) as f64;
        tch::set_num_threads(threads);
        let ten = iteration_ms(hidden, batch, 10, ModelLayout::Batched, warmup, iterations) / 10.0;
        let gain = alone / five.min(ten);
        worst = worst.min(gain);
        table.row(vec![
            name.into(),
            format!("{alone:.2}"),
            format!("{five:.2}"),
            format!("{ten:.2}"),
            format!("{gain:.2}x"),
        ]);
    }
    let mut targets = Table::new(&["question (CPU)", "measured", "verdict"]);
    targets.row(vec![
        "stacked classifiers >= 1.5x faster than one per process, every shape".into(),
        format!("{worst:.2}x"),
        verdict(worst >= 1.5),
    ]);
    Ok(format!(
        "### Fusing the evaluation's classifiers, CPU ({warmup} warm-up + {iterations} timed \
         iterations, median)\n\n{}\n{}\n",
        table.render(),
        targets.render()
    ))
}
