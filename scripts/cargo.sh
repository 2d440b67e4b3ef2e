#!/usr/bin/env bash
# Runs cargo against the libtorch that scripts/setup.sh installed (see scripts/env.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
exec cargo "$@"
