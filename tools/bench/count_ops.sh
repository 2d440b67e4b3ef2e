#!/usr/bin/env bash
# Counts the libtorch operator calls of one joint-training iteration of each engine, for the GPU
# estimate in docs/gpu.md (on a GPU, kernel launches follow operator calls).
#
#   tools/bench/count_ops.sh [GRID_RUNS ...]      default: 0 1 2 12 (0 is `train` alone)
#
# Every ATen operator call enters `at::_ops::<op>::call` in libtorch_cpu.so; an uprobe on each of
# them counts the calls of `emocycle-bench --only engine` (the demo's network, random data, epochs
# of one iteration) at 2 and at 7 iterations, and the difference over 5 is one iteration. The count
# includes composite operators as well as the operators they call, and views, which launch no
# kernel. Needs root and tracefs (mounted here if absent); removes its probes when done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=../../scripts/env.sh
source scripts/env.sh
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(0 1 2 12)
bench="${CARGO_TARGET_DIR:-target}/release/emocycle-bench"
scripts/cargo.sh build --release -q -p emocycle-bench
lib="$(python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))' 2>/dev/null)"

tracing=/sys/kernel/tracing
[ -e "$tracing/uprobe_events" ] || mount -t tracefs nodev "$tracing"
work="$(mktemp -d)"
cleanup() {
    echo 0 >"$tracing/events/emocycle_ops/enable" 2>/dev/null || true
    grep -o '^p:emocycle_ops/[a-z0-9_]*' "$tracing/uprobe_events" 2>/dev/null |
        sed 's/^p:/-:/' >"$work/remove" || true
    while read -r line; do echo "$line" >>"$tracing/uprobe_events"; done <"$work/remove" || true
    rm -rf "$work"
}
trap cleanup EXIT

# One probe per exported `at::_ops::<op>::call`, named op<N>; names.tsv maps N to the operator.
nm -D --defined-only "$lib" | awk '$2 == "T" { print $1, $3 }' >"$work/symbols"
cut -d' ' -f2 "$work/symbols" | c++filt >"$work/demangled"
paste -d' ' "$work/symbols" "$work/demangled" |
    awk '{ name = $0; sub(/^[^ ]+ [^ ]+ /, "", name) }
         name ~ /^at::_ops::[A-Za-z0-9_]+::call\(/ {
             op = name; sub(/^at::_ops::/, "", op); sub(/::call\(.*/, "", op)
             n++; printf "op%d\t%s\t%s\n", n, op, $1 }' >"$work/names.tsv"
# One write per probe: the kernel parses what one write() brings, and a long one splits lines.
awk -v lib="$lib" -F'\t' '{ printf "p:emocycle_ops/%s %s:0x%s\n", $1, lib, $3 }' "$work/names.tsv" |
    while read -r probe; do echo "$probe" >>"$tracing/uprobe_events"; done
echo "count_ops: $(wc -l <"$work/names.tsv") operators probed in $lib" >&2

# Hits per operator while the command runs (uprobe_profile counts since the probe was added).
count() {
    local before="$work/before" after="$work/after"
    awk '$2 ~ /^op[0-9]+$/ { print $2, $3 }' \
        "$tracing/uprobe_profile" >"$before"
    "$@" >/dev/null
    awk '$2 ~ /^op[0-9]+$/ { print $2, $3 }' \
        "$tracing/uprobe_profile" >"$after"
    join <(sort "$before") <(sort "$after") | awk '$3 > $2 { print $1, $3 - $2 }'
}
echo 1 >"$tracing/events/emocycle_ops/enable"

printf '| engine | operator calls per iteration | of which views |\n| --- | --- | --- |\n'
for r in "${runs[@]}"; do
    run() { "$bench" . --only engine --grid-runs "$r" --warmup 1 --iterations "$1" 2>"$work/stderr" || { cat "$work/stderr" >&2; return 1; }; }
    count run 2 >"$work/short"
    count run 7 >"$work/long"
    # Per operator: (calls at 7 - calls at 2) / 5.
    join -a2 -e0 -o '0,1.2,2.2' <(sort "$work/short") <(sort "$work/long") |
        awk '{ printf "%s\t%.1f\n", $1, ($3 - $2) / 5 }' | sort >"$work/per_iteration.$r"
    join -t$'\t' "$work/per_iteration.$r" <(cut -f1,2 "$work/names.tsv" | sort) >"$work/named.$r"
    total=$(awk -F'\t' '{ s += $2 } END { printf "%.0f", s }' "$work/named.$r")
    views=$(awk -F'\t' '$3 ~ /^(view|_unsafe_view|reshape|narrow|slice_Tensor|select_int|t|transpose_int|expand|unsqueeze|squeeze|squeeze_dim|permute|as_strided|alias|detach|unbind_int|split_Tensor|chunk|contiguous|flatten_using_ints)$/ { s += $2 } END { printf "%.0f", s }' "$work/named.$r")
    case "$r" in
        0) name="train, one run" ;;
        1) name="grid engine, 1 run" ;;
        *) name="grid engine, $r runs" ;;
    esac
    printf '| %s | %s | %s |\n' "$name" "$total" "$views"
    if [ -n "${COUNT_OPS_DETAIL:-}" ]; then
        sort -t$'\t' -k2,2nr "$work/named.$r" | awk -F'\t' '{ printf "    %-40s %8.1f\n", $3, $2 }' >&2
    fi
done
