#!/usr/bin/env bash
# The Python venv the test clients run in (paho-mqtt, influxdb-client; see
# tests/clients/requirements.txt). Creates it once, under
# ${XDG_CACHE_HOME:-$HOME/.cache}/telemetry/client-venv, and re-creates it when
# requirements.txt or the Python interpreter changes (a hash of both is kept
# in the venv). Prints the venv's python on stdout; everything else goes to
# stderr, so a caller can write
#
#   PY="$(scripts/client-venv.sh)" && "$PY" tests/clients/some_client.py
#
# PYTHON picks the interpreter (default: python3 on PATH; needs 3.11 or newer).
# When `python3 -m venv` fails for want of Debian's python3-venv, that package
# is installed the way deploy/local/install-deps.sh installs packages (apt,
# non-interactive, sudo when not root). Runs that overlap wait for each other
# (flock). To start over: rm -rf "${XDG_CACHE_HOME:-$HOME/.cache}/telemetry/client-venv".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$ROOT/tests/clients/requirements.txt"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/telemetry"
VENV="$CACHE/client-venv"
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"

log() { printf '[client-venv] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON, or install python3)"
[[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "$("$PYTHON" --version 2>&1) is too old: the pinned packages need Python 3.11 or newer"

# What the venv was made from: the requirements and the interpreter (its real
# path and exact version), so an upgraded or another Python re-creates it.
want="$( {
  sha256sum <"$REQUIREMENTS"
  "$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version)'
} | sha256sum | cut -d' ' -f1)"

is_current() {
  [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]
}

if is_current; then
  echo "$VENV/bin/python"
  exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/client-venv.lock"
flock 9
# Another run may have made it while this one waited for the lock.
if is_current; then
  echo "$VENV/bin/python"
  exit 0
fi

# Debian's python3 has no ensurepip until python3-venv is installed.
install_venv_package() {
  command -v apt-get >/dev/null 2>&1 || return 1
  local sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available to install python3-venv"
    sudo=(sudo)
  fi
  log "installing python3-venv"
  local apt_env=(env DEBIAN_FRONTEND=noninteractive)
  "${sudo[@]}" "${apt_env[@]}" apt-get update -q >&2
  "${sudo[@]}" "${apt_env[@]}" apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold python3-venv >&2
}

# The stamp is written last: a run that dies half way leaves no stamp, and
# the next run starts again from an empty directory.
log "creating $VENV ($("$PYTHON" --version 2>&1))"
rm -rf "$VENV"
if ! "$PYTHON" -m venv "$VENV" >&2; then
  rm -rf "$VENV"
  install_venv_package || die "$PYTHON -m venv failed (on Debian: apt-get install python3-venv)"
  "$PYTHON" -m venv "$VENV" >&2 || die "$PYTHON -m venv failed even with python3-venv installed"
fi

log "installing $(grep -cE '^[A-Za-z0-9_.-]+==' "$REQUIREMENTS") pinned packages"
# --require-hashes: only the wheels resolved in requirements.txt; --no-deps:
# nothing that is not listed there.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --require-hashes --no-deps -r "$REQUIREMENTS" >&2 ||
  die "pip install -r $REQUIREMENTS failed"
# Every package's own requirements are among the pins (a pin list that lost a
# dependency fails here, not in a test).
"$VENV/bin/python" -m pip check --disable-pip-version-check >&2 ||
  die "the pins in $REQUIREMENTS are incomplete or conflict"
"$VENV/bin/python" -c 'import paho.mqtt.client, influxdb_client' ||
  die "the venv cannot import paho.mqtt.client and influxdb_client"

echo "$want" >"$STAMP"
log "ready"
echo "$VENV/bin/python"
