//! Times one joint-training iteration (1 D step + 2 G steps, K = 4, batch 64) in both layouts.
//!
//! `scripts/cargo-dev.sh run --release -p emocycle-gan --example step_timing -- [features] [iterations] [device]`

use emocycle_gan::{GanConfig, ModelLayout, time_training_iterations};
use emocycle_torch::{DeviceChoice, ResolveDevice};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let features: i64 = args.next().map_or(Ok(1582), |a| a.parse())?;
    let iterations: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let device = args
        .next()
        .map_or(Ok(DeviceChoice::Cpu), |a| a.parse())?
        .resolve()?;
    let config = GanConfig::default();
    println!(
        "device {}, threads {}, d {features}, batch {}",
        emocycle_torch::device_name(device),
        tch::get_num_threads(),
        config.batch_size
    );
    for round in 0..2 {
        for layout in [ModelLayout::Separate, ModelLayout::Batched] {
            let mean =
                time_training_iterations(&config, 4, features, layout, device, 3, iterations)?;
            println!(
                "round {round} {:>8}: {:8.2} ms per iteration",
                layout.name(),
                mean.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
