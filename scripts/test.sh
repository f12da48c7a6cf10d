#!/usr/bin/env bash
# Builds everything and runs every test (unit, integration, e2e, robustness)
# against real servers started on loopback by deploy/local/. Works on a fresh
# Debian 12 machine (installs what it needs) and leaves nothing running.
#
#   bash scripts/test.sh [ctest args...]     e.g. bash scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"

deploy/local/install-deps.sh
werror=OFF
[[ "${CI:-}" == "true" ]] && werror=ON
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTELEMETRY_WERROR="$werror"
cmake --build "$BUILD_DIR" -j2

env_file="$(deploy/local/up.sh --build-dir "$BUILD_DIR")"
trap 'deploy/local/down.sh >/dev/null 2>&1 || true' EXIT
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
"$BUILD_DIR/tools/admin/telemetry-admin" migrate --dir db/migrations
TELEMETRY_BUILD_DIR="$(realpath "$BUILD_DIR")"
TELEMETRY_SOURCE_DIR="$(pwd)"
export TELEMETRY_BUILD_DIR TELEMETRY_SOURCE_DIR
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 "$@"
