#!/usr/bin/env bash
# Regenerate emocycle's simulated emotional-speech corpus into fixtures/corpus/.
#
#   tools/corpus/generate.sh [--seed N] [--difficulty D] [--jobs N] [--out DIR]
#   tools/corpus/generate.sh --measure [--cross] [--dir DIR]   # LOSO logistic-regression UAR of the shipped files
#
# Needs the Debian packages espeak-ng, sox and flite (installed here when running as
# root with apt-get; otherwise the exact command is printed) and Python >= 3.11 with
# venv. Python packages (pinned in requirements.txt) go into
# ${EMOCYCLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/emocycle}/corpus-venv.
# Output is byte-identical for the same seed and difficulty, whatever --jobs is.
# See docs/corpus.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

seed=2019
difficulty=""
jobs="${EMOCYCLE_CORPUS_JOBS:-1}"
out="$root/fixtures/corpus"
measure=0
measure_args=()

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --seed) seed="$2"; shift 2 ;;
        --seed=*) seed="${1#*=}"; shift ;;
        --difficulty) difficulty="$2"; shift 2 ;;
        --difficulty=*) difficulty="${1#*=}"; shift ;;
        --jobs) jobs="$2"; shift 2 ;;
        --jobs=*) jobs="${1#*=}"; shift ;;
        --out) out="$2"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --measure) measure=1; shift ;;
        --dir) measure_args+=(--dir "$2"); shift 2 ;;
        --cross) measure_args+=(--cross); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "generate.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

# --- Debian packages -------------------------------------------------------
if [ "$measure" = 0 ]; then
    missing=()
    for tool in espeak-ng sox flite; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "generate.sh: missing Debian packages: ${missing[*]}" >&2
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "generate.sh: installing them: apt-get install -y --no-install-recommends ${missing[*]}" >&2
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
        else
            echo "generate.sh: install them with:" >&2
            echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
            exit 1
        fi
    fi
fi

# --- Python virtualenv -----------------------------------------------------
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "generate.sh: $python not found; install Python >= 3.11 (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "generate.sh: $python is $("$python" -V 2>&1); the pinned packages need Python >= 3.11 (set PYTHON=...)" >&2
    exit 1
fi
cache="${EMOCYCLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/emocycle}"
venv="$cache/corpus-venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "generate.sh: setting up $venv" >&2
    mkdir -p "$cache"
    if [ ! -x "$venv/bin/python" ]; then
        if ! "$python" -m venv "$venv"; then
            echo "generate.sh: '$python -m venv' failed; on Debian: apt-get install python3-venv" >&2
            rm -rf "$venv"
            exit 1
        fi
    fi
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    echo "$want" > "$stamp"
fi

if [ "$measure" = 1 ]; then
    exec "$venv/bin/python" "$here/difficulty.py" "${measure_args[@]}"
fi

args=(--out "$out" --seed "$seed" --jobs "$jobs")
[ -n "$difficulty" ] && args+=(--difficulty "$difficulty")
export PYTHONHASHSEED=0  # belt and braces: nothing should depend on str hashing
exec "$venv/bin/python" "$here/generate_corpus.py" "${args[@]}"
