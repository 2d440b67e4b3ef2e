#!/usr/bin/env bash
# emocycle on a real Slurm: installs Debian's slurm-wlm and munge where they are missing,
# starts a one-node cluster on localhost from .ci/slurm/slurm.conf.in, and runs the ignored
# tests of crates/cli/tests/slurm.rs against it (a tiny pipeline submitted, one training task
# requeued mid-run, tables and weights compared with a local run). Skips, saying so, only
# where the packages cannot be installed. Needs root (it runs the daemons).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

say() { echo "slurm-test: $*"; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge from Debian"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends slurm-wlm munge; } >/tmp/emocycle-slurm-apt.log 2>&1; then
        tail -5 /tmp/emocycle-slurm-apt.log || true
        say "SKIPPED: slurm-wlm and munge could not be installed (see /tmp/emocycle-slurm-apt.log)"
        exit 0
    fi
fi

state="$(mktemp -d /tmp/emocycle-slurm.XXXXXX)"
mkdir -p "$state/ctld" "$state/d" "$state/munge"
host="$(hostname -s)"
conf="$state/slurm.conf"
sed -e "s|@HOST@|$host|g" -e "s|@STATE@|$state|g" -e "s|@CPUS@|$(nproc)|g" \
    -e "s|@CTLD_PORT@|${SLURMCTLD_PORT:-16817}|g" -e "s|@D_PORT@|${SLURMD_PORT:-16818}|g" \
    .ci/slurm/slurm.conf.in >"$conf"
export SLURM_CONF="$conf"

stop() {
    [ -f "$state/slurmd.pid" ] && kill "$(cat "$state/slurmd.pid")" 2>/dev/null || true
    [ -f "$state/slurmctld.pid" ] && kill "$(cat "$state/slurmctld.pid")" 2>/dev/null || true
    [ -f "$state/munge/munged.pid" ] && kill "$(cat "$state/munge/munged.pid")" 2>/dev/null || true
}
trap stop EXIT

# munge: a fresh key and a daemon of our own, its socket in the state directory.
dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$state/munge/munge.key"
munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/socket" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" \
    --seed-file="$state/munge/seed"
# Slurm's munge plugin finds the socket through its own setting.
sed -i "s|^AuthType=auth/munge|AuthType=auth/munge\nAuthInfo=socket=$state/munge/socket|" "$conf"
sed -i "s|^CredType=cred/munge|CredType=cred/munge|" "$conf"

slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; then
        break
    fi
    sleep 1
done
if ! sinfo -h -o '%T' | grep -q -E '^(idle|mixed|allocated)'; then
    say "the one-node cluster did not come up:"
    sinfo || true
    tail -20 "$state/slurmctld.log" "$state/slurmd.log" || true
    exit 1
fi
say "cluster up: $(sinfo -h -o '%N %T %c CPUs')"

if ! scripts/cargo.sh test -p emocycle-cli --test slurm -- --ignored --nocapture; then
    say "FAILED; the daemons' last lines:"
    tail -30 "$state/slurmctld.log" "$state/slurmd.log" || true
    exit 1
fi
say "ok"
