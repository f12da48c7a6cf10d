# shellcheck shell=bash disable=SC2034  # OUT and pids are used by the sourcing script
# Sourced by the benchmark scripts: installs, builds $BUILD_DIR (Release),
# starts the local stack, applies the schema, and on exit stops the
# processes listed in $pids and the stack. Leaves $OUT (a scratch dir) and
# the stack's TELEMETRY_* endpoints in the environment.
deploy/local/install-deps.sh >/dev/null
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 >/dev/null
env_file="$(deploy/local/up.sh --build-dir "$BUILD_DIR")"
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
"$BUILD_DIR/tools/admin/telemetry-admin" migrate --dir db/migrations >/dev/null
OUT="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  deploy/local/down.sh >/dev/null 2>&1 || true
}
trap cleanup EXIT
