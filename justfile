# emocycle: CycleGAN emotion style transfer as data augmentation for speech emotion recognition.
# Every recipe that builds or runs Rust goes through scripts/cargo.sh, which points cargo at the
# libtorch installed by `just setup` (no environment variables needed).

set shell := ["bash", "-euo", "pipefail", "-c"]

demo := "pipelines/demo.json"
emocycle := "scripts/cargo.sh run --release --quiet --bin emocycle --"

# List the recipes
default:
    @just --list --unsorted

# Install PyTorch 2.11.0 (libtorch for tch) into a cached virtualenv, once; later runs only check
setup:
    scripts/setup.sh

# Build the release binary `emocycle`
build: setup
    scripts/cargo.sh build --release --bin emocycle

# Run the whole test suite
test: setup
    scripts/cargo.sh test --workspace

# Check formatting, run clippy and build the API docs, all with warnings as errors
lint: setup
    cargo fmt --all --check
    scripts/cargo.sh clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" scripts/cargo.sh doc --no-deps --workspace

# Run every stage of a pipeline (default: the paper on the embedded corpus)
reproduce pipeline=demo: build
    {{emocycle}} features --config {{pipeline}}
    {{emocycle}} augment --config {{pipeline}}
    {{emocycle}} pretrain --config {{pipeline}}
    {{emocycle}} train --config {{pipeline}}
    {{emocycle}} generate --config {{pipeline}}
    {{emocycle}} quality --config {{pipeline}}
    {{emocycle}} evaluate --config {{pipeline}}
    {{emocycle}} report --config {{pipeline}}

# Feature stage: ingest openSMILE files and labels, make folds and normalisation statistics
features pipeline=demo *flags: build
    {{emocycle}} features --config {{pipeline}} {{flags}}

# openSMILE functionals from audio: every .wav below INPUT (IEMOCAP: Session<n>/sentences/wav) into OUTPUT.csv
extract input output *flags: build
    {{emocycle}} extract --input {{input}} --output {{output}} {{flags}}

# Baselines: random oversampling, SMOTE, Gaussian noise and a conditional GAN, per scope
augment pipeline=demo *flags: build
    {{emocycle}} augment --config {{pipeline}} {{flags}}

# GAN stage, part 1: cycle-only pretraining of the generator pairs of every scope
pretrain pipeline=demo *flags: build
    {{emocycle}} pretrain --config {{pipeline}} {{flags}}

# GAN stage, part 2: joint training of the four CycleGANs per scope and lambda_cls
train pipeline=demo *flags: build
    {{emocycle}} train --config {{pipeline}} {{flags}}

# Synthesis stage: synthetic sets from every trained scope and lambda_cls
generate pipeline=demo *flags: build
    {{emocycle}} generate --config {{pipeline}} {{flags}}

# Quality of the synthetic sets: Table 1, Figure 2, Frechet distance, two-sample test, k-NN
quality pipeline=demo *flags: build
    {{emocycle}} quality --config {{pipeline}} {{flags}}

# Evaluation: UAR tables (Tables 2, 3) and confusion matrices (Figure 3)
evaluate pipeline=demo *flags: build
    {{emocycle}} evaluate --config {{pipeline}} {{flags}}

# The run's report: runs/<pipeline>/report.md and its figures
report pipeline=demo: build
    {{emocycle}} report --config {{pipeline}}

# Slurm: the pipeline as job arrays, one per stage, chained (--dry-run: write and print the scripts only)
submit pipeline=demo *flags: build
    {{emocycle}} submit --config {{pipeline}} {{flags}}

# Slurm: per stage, the tasks done, running, queued or failed, and the failed tasks' logs
status pipeline=demo: build
    {{emocycle}} status --config {{pipeline}}

# Show an artifact's schema and footer metadata
inspect file: build
    {{emocycle}} inspect {{file}}

# Show libtorch, CUDA and device facts
doctor device="auto": build
    {{emocycle}} doctor --device {{device}}

# On a GPU machine: libtorch's CUDA view, the GAN bench's CUDA section and a paper-size GAN grid (docs/gpu.md)
gpu-check: build
    scripts/cargo.sh build --release --quiet -p emocycle-bench
    scripts/gpu-check.sh

# Regenerate the embedded simulated corpus in fixtures/corpus (needs espeak-ng, sox, flite)
corpus *flags:
    tools/corpus/generate.sh {{flags}}

# Run the benchmarks and print their tables
bench: setup
    scripts/cargo.sh build --release --quiet -p emocycle-bench
    scripts/cargo.sh run --release --quiet -p emocycle-bench --bin emocycle-bench -- {{justfile_directory()}}

# Remove build outputs and pipeline runs (keeps the cached libtorch virtualenv)
clean:
    scripts/cargo.sh clean
    rm -rf runs
