#!/usr/bin/env bash
# Idempotent set-up: installs PyTorch 2.11.0 (the libtorch that tch 0.24 links against) into a
# virtualenv in the per-user cache, once. Later runs only check it. Set LIBTORCH to skip this and
# build against a libtorch you already have.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"

if [ -n "${LIBTORCH:-}" ]; then
    if [ ! -d "$LIBTORCH/lib" ]; then
        echo "error: LIBTORCH=$LIBTORCH has no lib/ directory; point it at an unpacked libtorch $EMOCYCLE_TORCH_VERSION" >&2
        exit 1
    fi
    echo "setup: using LIBTORCH=$LIBTORCH"
    exit 0
fi

# safetensors lets tests (and users) load emocycle's checkpoints in PyTorch.
SAFETENSORS_VERSION="0.7.0"
PACKAGING_VERSION="26.3"
# `emocycle extract` loads openSMILE's library from this wheel (1 MB); --no-deps leaves out the
# pandas and audinterface stack that only its Python API needs.
OPENSMILE_VERSION="2.6.0"

extras_ok() {
    "$EMOCYCLE_TORCH_VENV/bin/python" - "$OPENSMILE_VERSION" <<'PY' >/dev/null 2>&1
import importlib.metadata, sys
import safetensors.torch
sys.exit(0 if importlib.metadata.version("opensmile") == sys.argv[1] else 1)
PY
}

install_extras() {
    extras_ok && return 0
    "$EMOCYCLE_TORCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "safetensors==$SAFETENSORS_VERSION" "packaging==$PACKAGING_VERSION"
    "$EMOCYCLE_TORCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-deps "opensmile==$OPENSMILE_VERSION"
}

torch_ok() {
    "$EMOCYCLE_TORCH_VENV/bin/python" - "$EMOCYCLE_TORCH_VERSION" <<'PY' >/dev/null 2>&1
import sys, torch
sys.exit(0 if torch.__version__.split("+")[0] == sys.argv[1] else 1)
PY
}

if torch_ok && extras_ok; then
    echo "setup: torch $EMOCYCLE_TORCH_VERSION ready in $EMOCYCLE_TORCH_VENV"
    exit 0
fi

python="${PYTHON:-$(command -v python3 || true)}"
if [ -z "$python" ]; then
    echo "error: python3 is needed to install PyTorch $EMOCYCLE_TORCH_VERSION (or set LIBTORCH)" >&2
    exit 1
fi
mkdir -p "$EMOCYCLE_CACHE"
# Two set-ups at once (a user and CI) must not both write the virtualenv.
exec 9>"$EMOCYCLE_CACHE/.setup.lock"
flock 9
if torch_ok; then
    install_extras
    echo "setup: torch $EMOCYCLE_TORCH_VERSION ready in $EMOCYCLE_TORCH_VENV"
    exit 0
fi
echo "setup: installing torch==$EMOCYCLE_TORCH_VERSION into $EMOCYCLE_TORCH_VENV (about 4.7 GB, once)"
# An interrupted install fails torch_ok above and is redone from scratch here.
rm -rf "$EMOCYCLE_TORCH_VENV"
"$python" -m venv "$EMOCYCLE_TORCH_VENV"
"$EMOCYCLE_TORCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "torch==$EMOCYCLE_TORCH_VERSION" "safetensors==$SAFETENSORS_VERSION" "packaging==$PACKAGING_VERSION"
install_extras
torch_ok || { echo "error: torch $EMOCYCLE_TORCH_VERSION does not import from $EMOCYCLE_TORCH_VENV" >&2; exit 1; }
echo "setup: torch $EMOCYCLE_TORCH_VERSION installed in $EMOCYCLE_TORCH_VENV"
