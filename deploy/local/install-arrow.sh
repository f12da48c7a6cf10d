#!/usr/bin/env bash
# Installs the pinned Apache Arrow C++ / Parquet C++ (headers and shared
# libraries) from the pyarrow wheel named in deploy/local/arrow/requirements.txt
# into a cache directory, and prints that directory on stdout (the CMake
# option TELEMETRY_ARROW_ROOT; cmake/Arrow.cmake finds the same default).
# Repeat runs reuse the cache. Needs python3 with pip (or python3-venv, which
# deploy/local/install-deps.sh installs) to download the wheel; nothing of
# Python is used afterwards.
#
# Layout: <root>/include/{arrow,parquet}/...  <root>/lib/lib{arrow,parquet,arrow_s3}.so[.SOVERSION]
#
# Usage: deploy/local/install-arrow.sh [--print]
#   --print   only print where Arrow goes (no download)
# Env:   TELEMETRY_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/telemetry)
#        TELEMETRY_ARROW_ROOT (install there instead; the Dockerfile uses it)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$SCRIPT_DIR/common.sh"

init_arrow_install_paths
if [[ "${1:-}" == --print ]]; then
  printf '%s\n' "$ARROW_ROOT"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [--print]"
if [[ -f "$ARROW_ROOT/.complete" ]]; then
  printf '%s\n' "$ARROW_ROOT"
  exit 0
fi
[[ "$(uname -m)" == x86_64 ]] ||
  die "the pinned Arrow wheel is for x86_64 (this is $(uname -m)): pin the matching wheel in $ARROW_REQUIREMENTS"

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: run deploy/local/install-deps.sh"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/telemetry-arrow.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
pip=("$PYTHON" -m pip)
if ! "${pip[@]}" --version >/dev/null 2>&1; then
  # Debian's python3 has no pip; a throwaway venv brings one.
  "$PYTHON" -m venv "$tmp/venv" >&2 || die "neither pip nor venv in $PYTHON: install python3-venv"
  pip=("$tmp/venv/bin/python" -m pip)
fi
log "downloading Apache Arrow $ARROW_VERSION (the pyarrow wheel) for $ARROW_ROOT"
# The platform flags make pip pick the pinned file whatever Python runs it;
# --require-hashes refuses any other file.
"${pip[@]}" download --quiet --no-deps --only-binary=:all: --require-hashes \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
  -r "$ARROW_REQUIREMENTS" -d "$tmp/wheel" >&2 ||
  die "pip could not fetch pyarrow $ARROW_VERSION (PyPI reachable? see above)"
wheel="$(find "$tmp/wheel" -name "pyarrow-$ARROW_VERSION-*.whl" | head -1)"
[[ -n "$wheel" ]] || die "no pyarrow $ARROW_VERSION wheel after pip download"
"$PYTHON" -m zipfile -e "$wheel" "$tmp/x" >&2

stage="$ARROW_ROOT.tmp.$$"
rm -rf "$stage"
mkdir -p "$stage/include" "$stage/lib"
cp -r "$tmp/x/pyarrow/include/arrow" "$tmp/x/pyarrow/include/parquet" "$stage/include/"
so="$(sed -n 's/^#define ARROW_SO_VERSION "\(.*\)"$/\1/p' "$stage/include/arrow/util/config.h")"
[[ -n "$so" ]] || die "no ARROW_SO_VERSION in the wheel's arrow/util/config.h"
# libarrow (core, IPC, local filesystem), libparquet, libarrow_s3 (the S3 filesystem).
for lib in arrow parquet arrow_s3; do
  [[ -f "$tmp/x/pyarrow/lib$lib.so.$so" ]] || die "lib$lib.so.$so not in the wheel"
  cp "$tmp/x/pyarrow/lib$lib.so.$so" "$stage/lib/"
  ln -s "lib$lib.so.$so" "$stage/lib/lib$lib.so"
done
printf '%s\n' "$ARROW_VERSION" >"$stage/VERSION"
touch "$stage/.complete"
rm -rf "$ARROW_ROOT"
mkdir -p "$(dirname "$ARROW_ROOT")"
mv "$stage" "$ARROW_ROOT"
log "Apache Arrow $ARROW_VERSION (so $so) in $ARROW_ROOT"
printf '%s\n' "$ARROW_ROOT"
