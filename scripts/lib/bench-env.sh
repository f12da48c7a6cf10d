# shellcheck shell=bash disable=SC2034  # OUT and pids are used by the sourcing script
# Sourced by the benchmark scripts: installs, builds $BUILD_DIR (Release),
# starts a fresh local stack of its own, applies the schema, and on exit stops
# the processes listed in $pids and removes the stack. Leaves $OUT (a scratch dir) and
# the stack's TELEMETRY_* endpoints in the environment.
deploy/local/install-deps.sh >/dev/null
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 >/dev/null
# A stack of its own, empty at the start and removed at the end, so figures
# never include data from an earlier run (or a developer's local stack).
export TELEMETRY_LOCAL_DIR="${TELEMETRY_BENCH_DIR:-/tmp/telemetry-bench-$(id -u)}"
# A quarter of this 24 GiB machine for Postgres' buffer pool (the usual
# sizing): these machines evict idle page cache within about a minute, so
# with a smaller pool whichever data set was written first is read from disk.
export TELEMETRY_PG_SHARED_BUFFERS="${TELEMETRY_PG_SHARED_BUFFERS:-6GB}"
deploy/local/down.sh --purge >/dev/null 2>&1 || true
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
  deploy/local/down.sh --purge >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Does now the work a bulk load leaves behind, as a steady state does it
# between bursts: VACUUM (ANALYZE) (otherwise autovacuum visits the new rows
# in the middle of the next measurement), a CHECKPOINT (otherwise the
# checkpointer writes them out then), and waits until the standby has
# replayed everything (otherwise its replay competes for the cores).
settle() {
  local start lagging
  start=$(date +%s)
  psql "$TELEMETRY_PG_ADMIN" -qc "VACUUM (ANALYZE)" -c CHECKPOINT
  for _ in $(seq 1 180); do
    lagging="$(psql "$TELEMETRY_PG_ADMIN" -qAtc "SELECT count(*) FROM pg_stat_replication
      WHERE replay_lsn < pg_current_wal_lsn()")"
    [ "$lagging" = 0 ] && break
    sleep 1
  done
  echo "== settled in $(($(date +%s) - start)) s" >&2
}

# One line per platform process (Postgres, Redis, Kafka, our services): pid,
# CPU ticks so far, command line (the Kafka JVM's as "kafka.Kafka (JVM)").
# Two of them go to scripts/lib/cpu-by-process.py.
cpu_snapshot() {
  local p cmd
  for p in $(pgrep -f 'postgres|telemetry-|redis-server|kafka\.Kafka'); do
    [ -r "/proc/$p/stat" ] || continue
    cmd="$(tr '\0' ' ' <"/proc/$p/cmdline")"
    [[ "$cmd" == *kafka.Kafka* ]] && cmd="kafka.Kafka (JVM)"
    echo "$p $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) $(cut -c1-80 <<<"$cmd")"
  done
}

# The local Kafka broker's JVM: its pid, CPU ticks so far (user + system), and
# resident memory now and at its peak (MiB).
kafka_pid() { cat "$TELEMETRY_LOCAL_DIR/kafka/kafka.pid"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kafka_rss_mib() { awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {printf "%.0f %.0f\n", r / 1024, h / 1024}' "/proc/$(kafka_pid)/status"; }

# The read benchmarks' four tenants, named PREFIX-1..4: sets key_list and
# id_list (comma-separated API keys and tenant ids) for telemetry-bench-query.
create_read_tenants() {
  local i out keys=() ids=()
  for i in 1 2 3 4; do
    out="$("$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "$1-$i-$(date +%s%N)")"
    keys+=("$(sed -n 's/^api_key=//p' <<<"$out")")
    ids+=("$(sed -n 's/^tenant_id=//p' <<<"$out")")
  done
  key_list="$(IFS=,; echo "${keys[*]}")"
  id_list="$(IFS=,; echo "${ids[*]}")"
}
