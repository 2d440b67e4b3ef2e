//! GAN benchmark: milliseconds per joint-training iteration of the per-run trainer and the grid
//! engine, the PyTorch-eager loop, and the roofline floor from this machine's measured matmul
//! speed and memory bandwidth.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use emocycle_gan::{
    GanConfig, GridRun, PretrainedGenerators, RunOptions, TrainingData, pretrain,
    time_training_iterations, train, train_grid,
};
use tch::{Device, Kind, Tensor};

use crate::table::{Table, verdict};

const EMOTIONS: usize = 4;
const FEATURES: i64 = 1582;

/// Best-of-`tries` seconds of `f`, after one untimed call.
fn best_of(tries: usize, device: Device, mut f: impl FnMut()) -> f64 {
    let sync = || {
        if let Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64);
        }
    };
    f();
    sync();
    (0..tries)
        .map(|_| {
            let started = Instant::now();
            f();
            sync();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// float32 matmul GFLOP/s on 2048 x 2048 x 2048.
fn matmul_gflops(device: Device) -> f64 {
    let n = 2048i64;
    let a = Tensor::rand([n, n], (Kind::Float, device));
    let b = Tensor::rand([n, n], (Kind::Float, device));
    let c = Tensor::empty([n, n], (Kind::Float, device));
    let seconds = best_of(5, device, || {
        let _ = a.matmul_out(&c, &b);
    });
    2.0 * (n * n * n) as f64 / seconds / 1e9
}

/// Copy bandwidth of a 256 MiB float32 tensor, GB/s counting bytes read plus bytes written
/// (the unit Adam's traffic is counted in below).
fn copy_gbps(device: Device) -> f64 {
    let elements = 64i64 << 20;
    let source = Tensor::rand([elements], (Kind::Float, device));
    let mut target = Tensor::zeros([elements], (Kind::Float, device));
    let seconds = best_of(5, device, || target.copy_(&source));
    2.0 * (elements * 4) as f64 / seconds / 1e9
}

/// Matmul FLOPs and Adam bytes of one joint iteration: the least work any implementation of the
/// method must do.
pub(crate) struct Floor {
    pub flops: f64,
    pub adam_bytes: f64,
}

/// One evaluation of an MLP of `sizes` on `rows` rows: forward `2 rows in out` per layer; in
/// backward `2 rows in out` for each weight gradient (when `weights`) and each input gradient
/// (for every layer but the first, whose input gradient is needed only with `input`).
fn mlp_flops(sizes: &[i64], rows: i64, backward: Option<(bool, bool)>) -> f64 {
    sizes
        .windows(2)
        .enumerate()
        .map(|(layer, pair)| {
            let unit = 2.0 * (rows * pair[0] * pair[1]) as f64;
            let mut total = unit;
            if let Some((weights, input)) = backward {
                if weights {
                    total += unit;
                }
                if layer > 0 || input {
                    total += unit;
                }
            }
            total
        })
        .sum()
}

pub(crate) fn floor(config: &GanConfig, emotions: usize, features: i64) -> Floor {
    let sizes = |hidden: &[usize], out: i64| -> Vec<i64> {
        std::iter::once(features)
            .chain(hidden.iter().map(|&h| h as i64))
            .chain(std::iter::once(out))
            .collect()
    };
    let generator = sizes(&config.generator_hidden, features);
    let disc = sizes(&config.discriminator_hidden, 1);
    let cls = sizes(&config.classifier_hidden, emotions as i64);
    let b = config.batch_size as i64;
    let k = emotions as f64;
    let quirk = config.d_step_updates_generator;
    // D step, per CycleGAN: G(s) (backward into G only with the quirk), F(t) forward only,
    // D_T on t and G(s), D_S on s and F(t).
    let d_step = k
        * (mlp_flops(&generator, b, quirk.then_some((true, false)))
            + mlp_flops(&generator, b, None)
            + mlp_flops(&disc, b, Some((true, false)))
            + mlp_flops(&disc, b, Some((true, quirk)))
            + 2.0 * mlp_flops(&disc, b, Some((true, false))));
    // G step, per CycleGAN: G(s), F(t), F(G(s)), G(F(t)); D_T(G(s)), D_S(F(t)) with input
    // gradients only; then C once on all K batches.
    let g_step = k
        * (2.0 * mlp_flops(&generator, b, Some((true, false)))
            + 2.0 * mlp_flops(&generator, b, Some((true, true)))
            + 2.0 * mlp_flops(&disc, b, Some((false, true))))
        + if config.has_classifier() {
            mlp_flops(&cls, b * emotions as i64, Some((true, true)))
        } else {
            0.0
        };
    let params =
        |sizes: &[i64]| -> f64 { sizes.windows(2).map(|p| (p[0] * p[1] + p[1]) as f64).sum() };
    let (g_params, d_params) = (params(&generator), params(&disc));
    let c_params = if config.has_classifier() {
        params(&cls)
    } else {
        0.0
    };
    // Adam reads parameter, gradient and both moments and writes parameter and moments:
    // 7 float32 per parameter per step.
    let per_param = 7.0 * 4.0;
    let d_touched = k * 2.0 * d_params + if quirk { k * g_params } else { 0.0 };
    let g_touched = k * 2.0 * g_params + c_params;
    let steps = config.generator_steps as f64;
    Floor {
        flops: d_step + steps * g_step,
        adam_bytes: per_param * (d_touched + steps * g_touched),
    }
}

fn torch_python() -> std::path::PathBuf {
    let venv = std::env::var_os("EMOCYCLE_TORCH_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::cache_dir().join("torch-2.11.0"));
    venv.join("bin/python")
}

fn torch_eager_ms(repo: &Path, threads: i32, warmup: usize, iterations: usize) -> Result<f64> {
    let python = torch_python();
    if !python.exists() {
        bail!(
            "no PyTorch virtualenv at {} (run `just setup`, or set EMOCYCLE_TORCH_VENV)",
            python.display()
        );
    }
    let script = repo.join("tools/bench/torch_eager.py");
    let output = Command::new(&python)
        .arg(&script)
        .args(["--threads", &threads.to_string()])
        .args(["--features", &FEATURES.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(["--iterations", &iterations.to_string()])
        .output()
        .with_context(|| format!("starting {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("{} printed {stdout:?}", script.display()))?;
    report["ms_per_iteration"]
        .as_f64()
        .with_context(|| format!("no ms_per_iteration in {report}"))
}

pub(crate) fn bench(repo: &Path, warmup: usize, iterations: usize) -> Result<String> {
    let config = GanConfig::default();
    let threads = tch::get_num_threads();
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    let mut out = format!(
        "## GAN: one joint iteration (1 D step + {} G steps), K = {EMOTIONS}, d = {FEATURES}, batch {}, G {:?}, D {:?}, C {:?}, lambda_cls {}; {warmup} warm-up + {iterations} timed iterations, median; {threads} threads\n\n",
        config.generator_steps,
        config.batch_size,
        config.generator_hidden,
        config.discriminator_hidden,
        config.classifier_hidden,
        config.lambda_cls,
    );
    let floor = floor(&config, EMOTIONS, FEATURES);
    for device in devices {
        let name = emocycle_torch::device_name(device);
        eprintln!("bench: GAN on {name}");
        let gflops = matmul_gflops(device);
        let gbps = copy_gbps(device);
        let matmul_ms = floor.flops / (gflops * 1e9) * 1e3;
        let adam_ms = floor.adam_bytes / (gbps * 1e9) * 1e3;
        let floor_ms = matmul_ms + adam_ms;
        let per_run_ms =
            time_training_iterations(&config, EMOTIONS, FEATURES, device, warmup, iterations)?
                .as_secs_f64()
                * 1e3;
        let mut machine = Table::new(&["machine measurement", "value"]);
        machine.row(vec![
            "float32 matmul 2048^3, best of 5".into(),
            format!("{gflops:.1} GFLOP/s"),
        ]);
        machine.row(vec![
            "256 MiB tensor copy_, best of 5 (read + written bytes)".into(),
            format!("{gbps:.1} GB/s"),
        ]);
        machine.row(vec![
            "matmul FLOPs per iteration (forward + needed backward)".into(),
            format!("{:.2} GFLOP -> {matmul_ms:.1} ms", floor.flops / 1e9),
        ]);
        machine.row(vec![
            "Adam bytes per iteration (7 float32 per parameter per step)".into(),
            format!("{:.2} GB -> {adam_ms:.1} ms", floor.adam_bytes / 1e9),
        ]);
        machine.row(vec![
            "roofline floor of one iteration".into(),
            format!("{floor_ms:.1} ms"),
        ]);
        let mut table = Table::new(&[
            "implementation",
            "ms per iteration (median)",
            "x roofline floor",
        ]);
        // On CUDA `train` itself is a grid of one (the engine rows below); this row is the
        // separate layout there, one CycleGAN after another.
        let trainer = if device.is_cuda() {
            "emocycle, separate layout (the CPU's per-run trainer)"
        } else {
            "emocycle, per-run trainer (separate layout, CycleGANs in groups)"
        };
        table.row(vec![
            trainer.into(),
            format!("{per_run_ms:.1}"),
            format!("{:.2}", per_run_ms / floor_ms),
        ]);
        // The engines as the stage runs them, on epochs of one iteration each: on the CPU `train`
        // (the per-run engine) and the grid engine with one run; on CUDA, where `train` is a
        // grid of one, one run; on both the paper's whole grid of 6 scopes x 2 lambda_cls,
        // last, so that the process's peak memory is the grid's.
        let engines = if device.is_cuda() {
            vec![(Some(1), "grid engine, one run (also `train` on CUDA)")]
        } else {
            vec![
                (None, "per-run engine (`train`), one run"),
                (Some(1), "grid engine, one run"),
            ]
        }
        .into_iter()
        .chain([(Some(12), "grid engine, 12 runs (ms per run)")]);
        for (runs, name) in engines {
            let ms = engine_ms(&config, runs, device, threads, warmup, iterations)?
                / runs.unwrap_or(1) as f64;
            table.row(vec![
                format!("emocycle, {name}, epochs of one iteration"),
                format!("{ms:.1}"),
                format!("{:.2}", ms / floor_ms),
            ]);
        }
        if device == Device::Cpu
            && let Some(peak) = emocycle_torch::peak_resident_bytes()
        {
            machine.row(vec![
                "peak resident memory of this process, after the 12-run grid".into(),
                format!("{:.2} GiB", peak as f64 / (1u64 << 30) as f64),
            ]);
        }
        let eager = if device == Device::Cpu {
            match torch_eager_ms(repo, threads, warmup, iterations) {
                Ok(ms) => {
                    table.row(vec![
                        "PyTorch eager (tools/bench/torch_eager.py)".into(),
                        format!("{ms:.1}"),
                        format!("{:.2}", ms / floor_ms),
                    ]);
                    Some(ms)
                }
                Err(error) => {
                    table.row(vec![
                        format!("PyTorch eager: not measured ({error:#})"),
                        "-".into(),
                        "-".into(),
                    ]);
                    None
                }
            }
        } else {
            None
        };
        out.push_str(&format!(
            "### {name}\n\n{}\n{}\n",
            machine.render(),
            table.render()
        ));
        if device == Device::Cpu {
            let mut targets = Table::new(&["target (CPU)", "measured", "verdict"]);
            if let Some(eager) = eager {
                let ratio = eager / per_run_ms;
                targets.row(vec![
                    "per-run trainer's iteration >= 1.3x faster than PyTorch eager".into(),
                    format!("{ratio:.2}x"),
                    verdict(ratio >= 1.3),
                ]);
            }
            let ratio = per_run_ms / floor_ms;
            targets.row(vec![
                "per-run trainer's iteration within 1.7x of the roofline floor".into(),
                format!("{ratio:.2}x"),
                verdict(ratio <= 1.7),
            ]);
            out.push_str(&format!("{}\n", targets.render()));
        }
    }
    out.push_str(&fusion(warmup, iterations)?);
    Ok(out)
}

/// `pipelines/demo.json`'s network: the size the default run trains 12 times.
fn demo_config() -> GanConfig {
    GanConfig {
        generator_hidden: vec![128, 64, 128],
        discriminator_hidden: vec![128, 128],
        classifier_hidden: vec![64, 64],
        batch_size: 16,
        ..GanConfig::default()
    }
}

/// Random data of one iteration per epoch for `runs` runs, and each run's pretrained
/// generators (one pretraining epoch).
fn grid_inputs(
    config: &GanConfig,
    runs: usize,
) -> Result<(Vec<TrainingData>, Vec<PretrainedGenerators>)> {
    let rows = config.batch_size as i64;
    let mut data = Vec::with_capacity(runs);
    let mut generators = Vec::with_capacity(runs);
    for run in 0..runs {
        tch::manual_seed(run as i64);
        let random = || Tensor::rand([rows, FEATURES], (Kind::Float, Device::Cpu));
        let set = TrainingData::new(random(), (0..EMOTIONS).map(|_| random()).collect());
        let pre = pretrain(
            config,
            &set,
            Device::Cpu,
            &RunOptions::default(),
            &mut |_| {},
        )?;
        generators.push(pre.generators);
        data.push(set);
    }
    Ok((data, generators))
}

/// The median of the time between consecutive progress reports after `warmup` of them.
fn median_gap(times: &[Instant], warmup: usize) -> f64 {
    let mut gaps: Vec<f64> = times
        .windows(2)
        // Gap i is epoch i + 1 (the first also holds the set-up): the warm-up epochs are the
        // first `warmup` gaps.
        .skip(warmup)
        .map(|pair| (pair[1] - pair[0]).as_secs_f64() * 1e3)
        .collect();
    gaps.sort_by(f64::total_cmp);
    gaps.get(gaps.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Milliseconds per iteration (median over epochs of one iteration each) of `runs` runs
/// trained together by the grid engine, or of one run trained by `train` (`runs` None), on
/// `device` with `threads` libtorch threads.
fn engine_ms(
    config: &GanConfig,
    runs: Option<usize>,
    device: Device,
    threads: i32,
    warmup: usize,
    iterations: usize,
) -> Result<f64> {
    let config = GanConfig {
        pretrain_epochs: 1,
        train_epochs: warmup.max(1) + iterations,
        ..config.clone()
    };
    let (data, generators) = grid_inputs(&config, runs.unwrap_or(1))?;
    let before = tch::get_num_threads();
    tch::set_num_threads(threads);
    let sync = || {
        if let Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64);
        }
    };
    let mut times = vec![Instant::now()];
    let outcome = match runs {
        None => train(
            &config,
            &data[0],
            &generators[0],
            device,
            &RunOptions::default(),
            &mut |_| {
                sync();
                times.push(Instant::now());
            },
        )
        .map(|_| ()),
        Some(_) => {
            let grid: Vec<GridRun> = data
                .iter()
                .zip(&generators)
                .enumerate()
                .map(|(index, (data, pretrained))| GridRun {
                    label: format!("run {index}"),
                    config: &config,
                    data,
                    pretrained,
                    options: RunOptions::default(),
                })
                .collect();
            train_grid(&grid, device, &mut |index, _| {
                if index == 0 {
                    sync();
                    times.push(Instant::now());
                }
            })
            .and_then(|outcomes| outcomes.into_iter().collect::<Result<Vec<_>, _>>())
            .map(|_| ())
        }
    };
    tch::set_num_threads(before);
    outcome?;
    Ok(median_gap(&times, warmup.max(1)))
}

/// One line: ms per iteration of `runs` runs in the grid engine (0: `train`) at the demo's size,
/// one thread.
pub(crate) fn engine(runs: usize, warmup: usize, iterations: usize) -> Result<String> {
    let grid = (runs > 0).then_some(runs);
    let ms = engine_ms(&demo_config(), grid, Device::Cpu, 1, warmup, iterations)?;
    let what = match grid {
        Some(runs) => format!("grid engine, {runs} runs"),
        None => "per-run engine (`train`)".into(),
    };
    Ok(format!(
        "{what}, demo size, 1 thread: {ms:.1} ms per iteration (median of {iterations})\n"
    ))
}

/// Does the fused grid engine beat one run per process? Today every (scope, lambda_cls) run
/// trains in a process of its own with one libtorch thread, one process per core; the grid
/// engine trains R runs as one batched model. Both are timed as they run: `train` and
/// `train_grid` on epochs of one iteration, every run with its own data and classifier.
pub(crate) fn fusion(warmup: usize, iterations: usize) -> Result<String> {
    let config = demo_config();
    let threads = tch::get_num_threads();
    let mut table = Table::new(&["training", "ms per iteration (median)", "ms per run"]);
    let cpu = Device::Cpu;
    let alone = engine_ms(&config, None, cpu, 1, warmup, iterations)?;
    // Side by side on `threads` cores, each process as fast as alone: the most it can be.
    let per_run_processes = alone / threads as f64;
    table.row(vec![
        format!("one run per process (train), 1 thread, {threads} processes side by side (today)"),
        format!("{alone:.1}"),
        format!("{per_run_processes:.1}"),
    ]);
    let mut best = f64::INFINITY;
    // (runs in the grid, libtorch threads of its process): with one thread, grids run side by
    // side as today's processes do.
    for (runs, grid_threads) in [(1usize, 1), (6, 1), (6, threads), (12, threads)] {
        let ms = engine_ms(&config, Some(runs), cpu, grid_threads, warmup, iterations)?;
        let side_by_side = (threads / grid_threads) as usize;
        let per_run = ms / (runs * side_by_side) as f64;
        if runs > 1 {
            best = best.min(per_run);
        }
        let how = if side_by_side > 1 {
            format!("{grid_threads} thread, {side_by_side} such processes side by side")
        } else {
            format!("{grid_threads} threads")
        };
        let runs_text = if runs == 1 {
            "1 run".to_string()
        } else {
            format!("{runs} runs")
        };
        table.row(vec![
            format!("grid engine, {runs_text}, {how}"),
            format!("{ms:.1}"),
            format!("{per_run:.1}"),
        ]);
    }
    let floor = floor(&config, EMOTIONS, FEATURES);
    let floor_ms = (floor.flops / (matmul_gflops(cpu) * 1e9)
        + floor.adam_bytes / (copy_gbps(cpu) * 1e9))
        * 1e3;
    let gain = per_run_processes / best;
    let mut targets = Table::new(&["target", "measured", "verdict"]);
    targets.row(vec![
        "CPU: grid engine >= 2x faster than per-run processes for the same work".into(),
        format!("{gain:.2}x"),
        verdict(gain >= 2.0),
    ]);
    // Both per run on the whole machine: the floor from its matmul speed and bandwidth on
    // every thread, the grid's time divided by the runs it trains at once.
    targets.row(vec![
        format!("CPU: grid engine within 2x of the roofline floor ({floor_ms:.1} ms per run)"),
        format!("{:.2}x", best / floor_ms),
        verdict(best <= 2.0 * floor_ms),
    ]);
    if tch::Cuda::is_available() {
        // One GPU runs one process's kernels at a time: the per-run baseline is a run alone.
        let device = Device::Cuda(0);
        let alone = engine_ms(&config, None, device, threads, warmup, iterations)?;
        table.row(vec![
            "cuda:0, one run (train: a grid of one)".into(),
            format!("{alone:.1}"),
            format!("{alone:.1}"),
        ]);
        let mut best = f64::INFINITY;
        for runs in [6usize, 12, 30] {
            let ms = engine_ms(&config, Some(runs), device, threads, warmup, iterations)?;
            best = best.min(ms / runs as f64);
            table.row(vec![
                format!("cuda:0, grid engine, {runs} runs"),
                format!("{ms:.1}"),
                format!("{:.1}", ms / runs as f64),
            ]);
        }
        let gain = alone / best;
        targets.row(vec![
            "cuda:0: grid engine >= 2x faster than one run at a time".into(),
            format!("{gain:.2}x"),
            verdict(gain >= 2.0),
        ]);
    }
    Ok(format!(
        "### The grid engine at the demo's size (G {:?}, D {:?}, C {:?}, batch {}, lambda_cls {})\n\n{}\n{}\n",
        config.generator_hidden,
        config.discriminator_hidden,
        config.classifier_hidden,
        config.batch_size,
        config.lambda_cls,
        table.render(),
        targets.render()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_counts_the_papers_iteration() {
        let floor = floor(&GanConfig::default(), 4, 1582);
        // Hand count (docs/benchmarks.md's history): 156.6 M multiply-adds per row and CycleGAN
        // (D step 41.3 M, each G step 57.6 M), C included.
        let per_row_and_gan = floor.flops / (2.0 * 64.0 * 4.0);
        assert!(
            (per_row_and_gan / 1e6 - 156.6).abs() < 0.2,
            "{per_row_and_gan}"
        );
        // D optimiser: 8 discriminators + 4 generators; G optimiser: 8 generators + C, twice.
        let params = floor.adam_bytes / 28.0;
        assert!((params / 1e6 - 104.4).abs() < 0.2, "{params}");
    }
}
