#!/usr/bin/env bash
# Read-path benchmark (not a test): 4 tenants × 250 devices × 8 sensors, one
# reading per 30 s over 24 h (23 M raw rows, laid out as the writer does),
# read through the query service's gRPC API by concurrent clients, beside the
# same aggregates computed from raw rows by Postgres in the same run. Appends
# the results to docs/benchmarks.md.
#
#   bash scripts/bench-query.sh          (CONCURRENCY="2 4" REQUESTS=2000: one run per level)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
CONCURRENCY="${CONCURRENCY:-2 4}"
REQUESTS="${REQUESTS:-2000}"

# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh

create_read_tenants bench-read

"$BUILD_DIR/services/query/telemetry-query" --http_port=0 --pg_replicas="$TELEMETRY_PG_REPLICA" \
  --redis="$TELEMETRY_REDIS" --worker_threads=8 >"$OUT/query.log" 2>&1 &
pids+=($!)
sleep 2
END_NS=$(( $(date +%s) / 3600 * 3600 * 1000000000 ))
bench=("$BUILD_DIR/tools/bench/telemetry-bench-query" --pg "$TELEMETRY_PG_PRIMARY"
  --redis "$TELEMETRY_REDIS" --api_keys "$key_list" --tenant_ids "$id_list" --end_ns "$END_NS")
"${bench[@]}" --load --only "nothing: load the data set" --requests 1 >/dev/null
# Measure the data set at rest, not the load's tail (autovacuum, checkpoint,
# the standby replaying the load).
settle
# The 24 h at 1 min read on agg_1m rows (the loader lays them out by series,
# the best a row layout gets), then the closed hours packed into segments as
# the writer's compactor does, then every read.
rows_results=()
for c in $CONCURRENCY; do
  rows_results+=("$("${bench[@]}" --concurrency "$c" --requests "$REQUESTS" --only "1-min buckets (Aggregate)")")
  echo "${rows_results[-1]}" >&2
done
compaction="$("$BUILD_DIR/tools/admin/telemetry-admin" compact-rollups --older_than_s 0)"
echo "compaction: $compaction" >&2
settle
results=()
for c in $CONCURRENCY; do
  results+=("$("${bench[@]}" --concurrency "$c" --requests "$REQUESTS")")
  echo "${results[-1]}" >&2
done

/usr/bin/python3 - "$compaction" "${#rows_results[@]}" "${rows_results[@]}" "${results[@]}" <<'PY' | tee -a docs/benchmarks.md
import json, sys, datetime, subprocess
compaction = sys.argv[1]
n_rows = int(sys.argv[2])
rows_runs = [json.loads(a) for a in sys.argv[3:3 + n_rows]]
runs = [json.loads(a) for a in sys.argv[3 + n_rows:]]
r = runs[0]
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print(f"""
## Read path, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC

Machine: {cpu}, 2 cores; PostgreSQL 15 primary + hot standby, Redis, query service and the
benchmark client on this machine. Command: `bash scripts/bench-query.sh` ({r['tenants']} tenants ×
{r['devices_per_tenant']} devices × {r['sensors']} sensors, one reading per 30 s over 24 h =
{r['rows']:,} raw rows; random device, sensor and time per request; one table per number of
concurrent gRPC clients). Measured after VACUUM (ANALYZE), a CHECKPOINT and the standby's
catch-up following the load (bench-env.sh `settle`; runs before 2026-11-22 19:50 measured
straight after the load). From session 6 on, the closed hours are packed into agg_1m_seg
segments before the reads (`telemetry-admin compact-rollups --older_than_s 0`: {compaction});
the 24 h at 1 min read is measured on the agg_1m rows first (laid out by series).""")
for run in runs:
    rows = {x["read"]: x for x in run["results"]}
    print(f"""
{run['concurrency']} concurrent clients:

| read (through gRPC) | p50 ms | p99 ms | queries/s | errors |
|---|---:|---:|---:|---:|""")
    before = next((x for rr in rows_runs if rr["concurrency"] == run["concurrency"]
                   for x in rr["results"] if x["read"] == "one sensor, 24 h, 1-min buckets (Aggregate)"), None)
    for x in run["results"]:
        print(f"| {x['read']} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['qps']:,.0f} | {x['errors']} |")
        if before and x["read"] == before["read"]:
            print(f"| same, on agg_1m rows before packing | {before['p50_ms']:.2f} | {before['p99_ms']:.2f} | {before['qps']:,.0f} | {before['errors']} |")
    a1 = rows["one sensor, 24 h, 1-min buckets (Aggregate)"]; b1 = rows["baseline: one sensor 24 h 1-min from raw (SQL)"]
    a2 = rows["a tenant's devices, 24 h, 1-h buckets (Aggregate)"]; b2 = rows["baseline: tenant 24 h 1-h from raw (SQL)"]
    print(f"""
Rollups against raw rows, p99: one sensor 24 h at 1 min {b1['p99_ms'] / a1['p99_ms']:.1f}× faster
(gRPC included on our side, not on the SQL side); a tenant's devices 24 h at 1 h
{b2['p99_ms'] / a2['p99_ms']:.1f}× faster.""")
print(f"""
Raw JSON: `{json.dumps(runs)}`; on rows before packing: `{json.dumps(rows_runs)}`
""")
PY
