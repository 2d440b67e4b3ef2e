#!/usr/bin/env bash
# The GPU check of `just gpu-check`: what libtorch sees, the GAN and classifier benchmarks (with
# their CUDA rows: an iteration, and runs or classifiers stacked against one at a time), and
# the paper-size GAN grid (every scope of the embedded corpus, lambda_cls 0 and 2, the paper's
# network, 3 pretraining and 3 joint epochs; joint training by the grid engine and one run at a
# time) timed per epoch with the GPU's peak memory.
# Prints one markdown table at the end. DEVICE=cpu runs the same steps on the CPU (to try the
# script where no GPU is lent).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"
device="${DEVICE:-cuda}"
target="${CARGO_TARGET_DIR:-$root/target}"
emocycle="$target/release/emocycle"
bench="$target/release/emocycle-bench"
pipeline="pipelines/gpu-check.json"
run="runs/gpu-check"
out="${OUT:-$run}"
mkdir -p "$out"

echo "== libtorch's view"
"$emocycle" doctor --device "$device" | tee "$out/doctor.txt"

echo "== GAN benchmark (every device libtorch sees)"
"$bench" . --only gan --warmup 2 --iterations 5 --out "$out/bench.md" >/dev/null
"$bench" . --only classifiers --warmup 2 --iterations 5 --out "$out/bench-classifiers.md" >/dev/null
cat "$out/bench-classifiers.md" >> "$out/bench.md"
cat "$out/bench.md"

peak_file="$out/gpu-memory-peak-mib"
echo 0 > "$peak_file"
sampler=""
if [ "$device" != "cpu" ] && command -v nvidia-smi >/dev/null; then
    # The GPU's memory in use, sampled twice a second while the grid trains.
    ( peak=0
      while sleep 0.5; do
          used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1 | tr -d ' ')
          if [ "${used:-0}" -gt "$peak" ]; then peak=$used; echo "$peak" > "$peak_file"; fi
      done ) &
    sampler=$!
fi
trap '[ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true' EXIT

echo "== paper-size GAN grid on the embedded corpus ($pipeline, device $device)"
rm -rf "$run/gan" "$run/stages"
"$emocycle" -q features --config "$pipeline"
stage() {
    local name="$1"
    shift
    local started=$SECONDS
    "$emocycle" -q "$@" --config "$pipeline" --device "$device" --force --jobs 1
    echo $((SECONDS - started)) > "$out/$name-seconds"
}
stage pretrain pretrain
# Joint training twice: the fused grid engine (the default on CUDA), then one run at a time.
stage train train --engine grid
stage train-per-run train --engine per-run

epochs_pretrain=$(python3 -c "import json;print(json.load(open('$pipeline'))['gan']['network']['pretrain_epochs'])")
epochs_train=$(python3 -c "import json;print(json.load(open('$pipeline'))['gan']['network']['train_epochs'])")
runs_train=$(find "$run/gan" -name model.safetensors | wc -l)
scopes=$(find "$run/gan" -maxdepth 1 -mindepth 1 -type d | wc -l)
pre=$(cat "$out/pretrain-seconds"); tra=$(cat "$out/train-seconds"); per=$(cat "$out/train-per-run-seconds")
{
    echo
    echo "| measurement | value |"
    echo "| --- | --- |"
    echo "| device | $device ($(grep -m1 -i 'cuda\|device' "$out/doctor.txt" | tr '|' ' ' | xargs)) |"
    echo "| pretraining: $scopes scopes x $epochs_pretrain epochs | $pre s, $(python3 -c "print(f'{$pre/($scopes*$epochs_pretrain):.2f}')") s per scope-epoch |"
    echo "| joint training, grid engine: $runs_train runs x $epochs_train epochs | $tra s, $(python3 -c "print(f'{$tra/max($runs_train*$epochs_train,1):.2f}')") s per run-epoch |"
    echo "| joint training, one run at a time: $runs_train runs x $epochs_train epochs | $per s, $(python3 -c "print(f'{$per/max($runs_train*$epochs_train,1):.2f}')") s per run-epoch |"
    echo "| peak GPU memory in use (nvidia-smi, every 0.5 s) | $(cat "$peak_file") MiB |"
} | tee "$out/summary.md"
