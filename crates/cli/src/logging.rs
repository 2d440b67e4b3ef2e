//! tracing set-up: RUST_LOG when set, else a level from -v/-q; logs go to stderr.

use tracing_subscriber::EnvFilter;

pub(crate) fn init(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (_, 1) => "warn",
        (v, _) if v >= 2 => "trace",
        _ => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("emocycle={level},emocycle_cli={level},emocycle_features={level},emocycle_gan={level},emocycle_artifact={level},emocycle_torch={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
