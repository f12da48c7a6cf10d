#!/usr/bin/env bash
# Builds everything and runs every test (unit, integration, e2e, robustness)
# against real servers started on loopback by deploy/local/. Works on a fresh
# Debian 12 machine (installs what it needs) and leaves nothing running.
#
# Then, unless ctest arguments were given or SANITIZE=0, a second build with
# AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) runs the unit and
# integration tests (e2e included, robustness-only tests not) again, its
# services started by the tests under the sanitizers too; any report fails.
#
#   bash scripts/test.sh [ctest args...]     e.g. bash scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
ASAN_BUILD_DIR="${ASAN_BUILD_DIR:-build-asan}"
SANITIZE="${SANITIZE:-1}"
[[ $# -gt 0 ]] && SANITIZE=0

deploy/local/install-deps.sh
# Warnings are errors everywhere (CMake's default), the same here as in CI.
# -g1: line tables (stack traces name files and lines) without the full debug information,
# measured 19.4 s against 14.3 s for services/alert/alert_service.cc (-O2 -g vs -O2 -g1).
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"
cmake --build "$BUILD_DIR" -j2

# The tests' PostgreSQL runs with fsync off (deploy/local/up.sh says why: a
# killed server still loses nothing committed). The disk's sync latency is
# printed for the record: it is what made a CI run's Postgres-heavy tests
# 10-70x slower than on the machine they were written on.
export TELEMETRY_PG_FSYNC="${TELEMETRY_PG_FSYNC:-off}"
state_dir="${TELEMETRY_LOCAL_DIR:-/tmp/telemetry-local-$(id -u)}"
mkdir -p "$state_dir"
echo "disk: 100 synced 8 kB writes: $(dd if=/dev/zero of="$state_dir/sync-probe" bs=8k count=100 \
  oflag=dsync 2>&1 | tail -1)"
rm -f "$state_dir/sync-probe"
env_file="$(deploy/local/up.sh --build-dir "$BUILD_DIR")"
trap 'deploy/local/down.sh >/dev/null 2>&1 || true' EXIT
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
"$BUILD_DIR/tools/admin/telemetry-admin" migrate --dir db/migrations
"$BUILD_DIR/tools/admin/telemetry-admin" --pg_primary="$TELEMETRY_WAREHOUSE" migrate --dir db/migrations
TELEMETRY_BUILD_DIR="$(realpath "$BUILD_DIR")"
TELEMETRY_SOURCE_DIR="$(pwd)"
export TELEMETRY_BUILD_DIR TELEMETRY_SOURCE_DIR
# -j2: the unit tests (a process each) two at a time; every test that uses the stack is
# RUN_SERIAL, so it runs alone.
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 -j2 "$@"

if [[ "$SANITIZE" == 1 ]]; then
  # -O1 -g1 (line tables for the reports' stacks): half the compile time of -O2 -g, which
  # measured 78 s against 39 s for one test file; the sanitizer pass was most of CI's time.
  cmake -S . -B "$ASAN_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTELEMETRY_SANITIZE=ON \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
  # Only what the sanitized tests run (tests/integration/CMakeLists.txt), not the benches.
  cmake --build "$ASAN_BUILD_DIR" -j2 --target sanitizer_tests
  TELEMETRY_BUILD_DIR="$(realpath "$ASAN_BUILD_DIR")"
  # A report stops the process (nonzero exit), which fails the test that ran it.
  export ASAN_OPTIONS="abort_on_error=0:halt_on_error=1:detect_leaks=1:suppressions=$TELEMETRY_SOURCE_DIR/tests/sanitizers/lsan.supp"
  export LSAN_OPTIONS="suppressions=$TELEMETRY_SOURCE_DIR/tests/sanitizers/lsan.supp"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  # (deploy_checks inspects the deployable binaries' libraries: not these.)
  # (nosan: integration tests left to the main pass; tests/integration/CMakeLists.txt says why.)
  ctest --test-dir "$ASAN_BUILD_DIR" --output-on-failure --timeout 900 -j2 -L 'unit|integration' \
    -LE 'deploy|nosan'
fi
