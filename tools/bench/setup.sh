#!/usr/bin/env bash
# Creates the virtualenv that the ingestion benchmark's pandas side runs in, once, and prints its
# python on stdout. Pinned so that numbers from different days compare like with like.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../../scripts/env.sh
source "$here/scripts/env.sh"

pins=(pandas==3.1.1 pyarrow==26.0.1)
venv="$EMOCYCLE_CACHE/bench-venv"
stamp="$venv/.emocycle-pins"

ready() {
    [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${pins[*]}" ] &&
        "$venv/bin/python" -c "import pandas, pyarrow" >/dev/null 2>&1
}

if ! ready; then
    python="${PYTHON:-$(command -v python3 || true)}"
    if [ -z "$python" ]; then
        echo "error: python3 is needed for the pandas side of the benchmark" >&2
        exit 1
    fi
    mkdir -p "$EMOCYCLE_CACHE"
    # A second bench started meanwhile must not build the same virtualenv at the same time.
    exec 9>"$EMOCYCLE_CACHE/.bench-setup.lock"
    flock 9
    if ! ready; then
        echo "bench setup: installing ${pins[*]} into $venv" >&2
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
        printf '%s' "${pins[*]}" >"$stamp"
        ready || { echo "error: pandas/pyarrow do not import from $venv" >&2; exit 1; }
    fi
fi
echo "$venv/bin/python"
