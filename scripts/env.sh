# shellcheck shell=bash
# Sourced by the justfile and CI: points cargo at the libtorch that scripts/setup.sh installed.
#
#   EMOCYCLE_CACHE  where the torch virtualenv (and CI's cargo target directory) live;
#                   default: ${XDG_CACHE_HOME:-~/.cache}/emocycle
#   LIBTORCH        an existing libtorch 2.11.0 to build against instead of the virtualenv
#   EMOCYCLE_TORCH_VENV  the virtualenv to use; default: $EMOCYCLE_CACHE/torch-2.11.0
export EMOCYCLE_CACHE="${EMOCYCLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/emocycle}"
export EMOCYCLE_TORCH_VERSION="2.11.0"
export EMOCYCLE_TORCH_VENV="${EMOCYCLE_TORCH_VENV:-$EMOCYCLE_CACHE/torch-$EMOCYCLE_TORCH_VERSION}"
if [ -z "${LIBTORCH:-}" ]; then
    export LIBTORCH_USE_PYTORCH=1
    case ":$PATH:" in
        *":$EMOCYCLE_TORCH_VENV/bin:"*) ;;
        *) export PATH="$EMOCYCLE_TORCH_VENV/bin:$PATH" ;;
    esac
fi
