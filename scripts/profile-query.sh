#!/usr/bin/env bash
# Where the read path's CPU goes (a diagnostic, not a test or a recorded
# benchmark): a fresh bench stack with bench-query.sh's data set, then each
# read kind alone at CONCURRENCY clients, with the CPU time per query of each
# process (query service, Postgres backends, Redis, the benchmark client).
#
#   bash scripts/profile-query.sh                  (CONCURRENCY=2 REQUESTS=2000)
#   QUERY_ARGS="--worker_threads=2;--worker_threads=8" ONLY="Range" bash scripts/profile-query.sh
#     (QUERY_ARGS: the query service's extra flags; variants separated by ';',
#     each measured on the same data set, one after another; a variant that
#     starts with @PATH runs the query service binary at PATH instead, e.g.
#     QUERY_ARGS="@/tmp/telemetry-query.before;" for an A/B of two builds)
#   DEVICES=25 ... (devices per tenant, default 250 as bench-query.sh: a smaller,
#                   quicker data set for profiling a code path)
#   PACK=0 ...      (the 1-minute rollup as agg_1m rows, not packed into segments)
#   PERF=1 ONLY="1-min" bash scripts/profile-query.sh   (+ the query service's hottest
#                                                         functions, from perf record)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
CONCURRENCY="${CONCURRENCY:-2}"
REQUESTS="${REQUESTS:-2000}"
# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh
create_read_tenants profile-read
query_bin="$BUILD_DIR/services/query/telemetry-query"
END_NS=$(($(date +%s) / 3600 * 3600 * 1000000000))
bench=("$BUILD_DIR/tools/bench/telemetry-bench-query" --pg "$TELEMETRY_PG_PRIMARY"
  --redis "$TELEMETRY_REDIS" --api_keys "$key_list" --tenant_ids "$id_list" --end_ns "$END_NS"
  --devices "${DEVICES:-250}")
"${bench[@]}" --load --only "nothing: load the data set" --requests 1 >/dev/null 2>&1
# Closed hours packed into segments, as the writer's compactor leaves them
# (PACK=0: measure the agg_1m rows instead).
if [[ "${PACK:-1}" == 1 ]]; then
  "$BUILD_DIR/tools/admin/telemetry-admin" compact-rollups --older_than_s 0 >&2
fi
settle
kinds=("EVENTUAL, cache" "STRONG, primary" "(Range)" "(Playback)" "1-min buckets (Aggregate)"
  "1-h buckets (Aggregate)")
IFS=';' read -r -a variants <<<"${QUERY_ARGS:-}"
[[ ${#variants[@]} -gt 0 ]] || variants=("")
for variant in "${variants[@]}"; do
  bin="$query_bin"
  if [[ "$variant" == @* ]]; then
    read -r bin variant <<<"${variant#@}"
  fi
  # shellcheck disable=SC2086  # a variant is a list of flags
  "$bin" --http_port=0 --pg_replicas="$TELEMETRY_PG_REPLICA" \
    --redis="$TELEMETRY_REDIS" --worker_threads=8 $variant >"$OUT/query.log" 2>&1 &
  query_pid=$!
  pids+=("$query_pid")
  sleep 2
  echo "=== query service $bin, flags: --worker_threads=8 $variant (CONCURRENCY=$CONCURRENCY)"
  for kind in "${kinds[@]}"; do
    [[ -z "${ONLY:-}" || "$kind" == *"$ONLY"* ]] || continue
    cpu_snapshot >"$OUT/cpu0"
    if [[ "${PERF:-0}" == 1 ]]; then
      perf record -q -g -o "$OUT/perf.data" -p "$query_pid" 2>/dev/null &
      perf_pid=$!
    fi
    line="$("${bench[@]}" --only "$kind" --concurrency "$CONCURRENCY" --requests "$REQUESTS" 2>&1 >/dev/null |
      grep -F "$kind" | head -n 1)"
    cpu_snapshot >"$OUT/cpu1"
    echo "== $line"
    if [[ "${PERF:-0}" == 1 ]]; then
      kill -INT "$perf_pid"
      wait "$perf_pid" || true
      perf report -q -i "$OUT/perf.data" --no-children --sort dso,symbol -g none --percent-limit 1.5 \
        2>/dev/null | grep -v '^$' | head -n 25
    fi
    n="$REQUESTS"
    [[ "$kind" == *1-h* ]] && n=$((REQUESTS / 10)) # the bench tool runs a tenth of these
    /usr/bin/python3 scripts/lib/cpu-by-process.py "$OUT/cpu0" "$OUT/cpu1" "$n" query
  done
  kill -TERM "$query_pid"
  wait "$query_pid" || true
done
