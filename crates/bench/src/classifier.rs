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
    (hidden, batch): (i64, i64),
    models: usize,
    layout: ModelLayout,
    device: Device,
    (warmup, iterations): (usize, usize),
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
        device,
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
        if let Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64);
        }
        if index >= warmup {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

const SHAPES: [(&str, i64, i64); 3] = [
    ("real: 100-100, batch 64", 100, 64),
    ("syn: 200-200, batch 256", 200, 256),
    ("real+syn: 1000-1000, batch 256", 1000, 256),
];

pub(crate) fn bench(warmup: usize, iterations: usize) -> Result<String> {
    let rounds = (warmup, iterations);
    let threads = tch::get_num_threads();
    let mut table = Table::new(&[
        "classifier (paper, within corpus)",
        "one per process, ms per classifier-iteration",
        "5 stacked, 1 thread, 2 processes",
        "10 stacked, 2 threads",
        "gain",
    ]);
    let mut worst = f64::INFINITY;
    for (name, hidden, batch) in SHAPES {
        let shape = (hidden, batch);
        tch::set_num_threads(1);
        // `evaluate` runs one classifier per worker with one thread, a worker per core: the
        // baseline assumes the workers run side by side at full speed, which favours it.
        let cpu = Device::Cpu;
        let alone = iteration_ms(shape, 1, ModelLayout::Separate, cpu, rounds) / threads as f64;
        let five = iteration_ms(shape, 5, ModelLayout::Batched, cpu, rounds) / (5 * threads) as f64;
        tch::set_num_threads(threads);
        let ten = iteration_ms(shape, 10, ModelLayout::Batched, cpu, rounds) / 10.0;
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
    let mut targets = Table::new(&["question", "measured", "verdict"]);
    targets.row(vec![
        "CPU: stacked classifiers >= 1.5x faster than one per process, every shape".into(),
        format!("{worst:.2}x"),
        verdict(worst >= 1.5),
    ]);
    let mut text = format!(
        "### Fusing the evaluation's classifiers, CPU ({warmup} warm-up + {iterations} timed \
         iterations, median)\n\n{}\n",
        table.render()
    );
    if tch::Cuda::is_available() {
        // One GPU runs one process's kernels at a time: the baseline is a classifier alone.
        let cuda = Device::Cuda(0);
        let mut table = Table::new(&[
            "classifier (paper, within corpus)",
            "cuda:0, one at a time, ms per classifier-iteration",
            "25 stacked (5 folds x 5 repeats)",
            "gain",
        ]);
        let mut worst = f64::INFINITY;
        for (name, hidden, batch) in SHAPES {
            let shape = (hidden, batch);
            let alone = iteration_ms(shape, 1, ModelLayout::Separate, cuda, rounds);
            let stacked = iteration_ms(shape, 25, ModelLayout::Batched, cuda, rounds) / 25.0;
            worst = worst.min(alone / stacked);
            table.row(vec![
                name.into(),
                format!("{alone:.2}"),
                format!("{stacked:.2}"),
                format!("{:.2}x", alone / stacked),
            ]);
        }
        targets.row(vec![
            "cuda:0: stacked classifiers >= 1.5x faster than one at a time, every shape".into(),
            format!("{worst:.2}x"),
            verdict(worst >= 1.5),
        ]);
        text.push_str(&format!("\n{}\n", table.render()));
    }
    text.push_str(&format!("{}\n", targets.render()));
    Ok(text)
}
