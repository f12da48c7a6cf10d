#!/usr/bin/env bash
# Warehouse loading benchmark (not a test; docs/warehouse.md): the writer (into the primary) and
# the export service's warehouse loader (telemetry-export --pg_warehouse, its own consumer group)
# consume the same readings topic at once, on a fresh stack of this machine. Measures, in one run:
#   1. a burst of ROWS unique readings (1 % duplicates) sent as fast as ingest takes them: the
#      time until the primary, and until the warehouse, hold every one (readings/s from the
#      burst's start), and each consumer's CPU per reading;
#   2. RATE readings/s for SECONDS: the warehouse's freshness lag (what ANALYTICS reads report),
#      sampled twice a second: median and maximum.
# Appends the results to docs/benchmarks.md and prints them.
#
#   bash scripts/bench-warehouse.sh          (ROWS=1000000 RATE=20000 SECONDS_STEADY=60)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
ROWS="${ROWS:-1000000}"
RATE="${RATE:-20000}"
SECONDS_STEADY="${SECONDS_STEADY:-60}"
DEVICES="${DEVICES:-1000}"
SENSORS="${SENSORS:-8}"

# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh

"$BUILD_DIR/tools/admin/telemetry-admin" --pg_primary="$TELEMETRY_WAREHOUSE" migrate \
  --dir db/migrations >/dev/null
key() { "$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "bench-$1-$(date +%s%N)" | sed -n 's/^api_key=//p'; }

"$BUILD_DIR/services/writer/telemetry-writer" --http_port=0 >"$OUT/writer.log" 2>&1 &
writer_pid=$!
pids+=("$writer_pid")
"$BUILD_DIR/services/ingest/telemetry-ingest" --http_port=0 >"$OUT/ingest.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/export/telemetry-export" --http_port=0 \
  --archive_root="$OUT/archive" --archive_interval_s=86400 \
  --pg_warehouse="$TELEMETRY_WAREHOUSE" >"$OUT/export.log" 2>&1 &
export_pid=$!
pids+=("$export_pid")
sleep 6

offsets() { # offsets URL: the readings topic's offsets applied there, summed over partitions
  psql "$1" -qAtc "SELECT coalesce(sum(next_offset), 0) FROM writer_offsets WHERE topic = 'telemetry.readings.v1'"
}
now_ms() { date +%s%3N; }

echo "== burst: $ROWS unique readings (1% duplicates) as fast as ingest takes them" >&2
w0="$(ticks "$writer_pid")"
e0="$(ticks "$export_pid")"
start="$(now_ms)"
burst="$("$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$(key burst)" --devices "$DEVICES" \
  --sensors "$SENSORS" --total "$ROWS" --batch 1000 --concurrency 4 --duplicates 0.01 \
  --interval_ms 1000 --start_ago_s 7200 --query= | tail -n 1)"
sent="$(now_ms)"
echo "$burst" >&2
# Both consumers are done when their applied offsets have stopped moving for 2 s and agree; each
# is done at its last change.
last_p=-1 last_w=-1 p_at=0 w_at=0 still=0
while true; do
  p="$(offsets "$TELEMETRY_PG_PRIMARY")"
  w="$(offsets "$TELEMETRY_WAREHOUSE")"
  t="$(now_ms)"
  if [[ "$p" == "$last_p" && "$w" == "$last_w" ]]; then still=$((still + 1)); else still=0; fi
  [[ "$p" != "$last_p" ]] && p_at="$t"
  [[ "$w" != "$last_w" ]] && w_at="$t"
  last_p="$p"
  last_w="$w"
  [[ "$still" -ge 10 && "$p" == "$w" && "$p" -gt 0 ]] && break
  (( t - start < 900000 )) || { echo "not done after 15 minutes (primary $p, warehouse $w)" >&2; exit 1; }
  sleep 0.2
done
primary_done="$p_at"
warehouse_done="$w_at"
w1="$(ticks "$writer_pid")"
e1="$(ticks "$export_pid")"
echo "primary complete after $((primary_done - start)) ms, warehouse after $((warehouse_done - start)) ms" >&2
settle

echo "== steady: $RATE readings/s for $SECONDS_STEADY s; the warehouse's lag sampled twice a second" >&2
lags="$OUT/lags"
: >"$lags"
"$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$(key steady)" --devices "$DEVICES" \
  --sensors "$SENSORS" --rate "$RATE" --duration_s "$SECONDS_STEADY" --batch 500 --concurrency 4 \
  --duplicates 0.01 --interval_ms 1000 --start_ago_s 7200 --query= >"$OUT/steady.json" &
load=$!
sleep 5  # past the first batches
while kill -0 "$load" 2>/dev/null; do
  psql "$TELEMETRY_WAREHOUSE" -qAtc "SELECT (extract(epoch FROM clock_timestamp()) * 1e3)::bigint
    - min(fresh_through_ns) / 1000000 FROM writer_freshness" >>"$lags" || true
  sleep 0.5
done
wait "$load"
steady="$(tail -n 1 "$OUT/steady.json")"
echo "$steady" >&2

/usr/bin/python3 - "$burst" "$steady" "$ROWS" "$RATE" "$SECONDS_STEADY" "$DEVICES" "$SENSORS" \
  "$start" "$sent" "$primary_done" "$warehouse_done" "$((w1 - w0)) $((e1 - e0))" "$lags" <<'PY' | tee -a docs/benchmarks.md
import json, sys, datetime, statistics, subprocess
burst, steady = json.loads(sys.argv[1]), json.loads(sys.argv[2])
rows, rate, secs, devices, sensors = sys.argv[3:8]
start, sent, p_done, w_done = (int(x) for x in sys.argv[8:12])
w_ticks, e_ticks = (int(x) for x in sys.argv[12].split())
lags = [int(x) / 1000 for x in open(sys.argv[13]).read().split() if x.strip().lstrip("-").isdigit()]
unique = burst["unique"]
p_s, w_s = (p_done - start) / 1000, (w_done - start) / 1000
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print(f"""
## Warehouse loading, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC

Machine: {cpu}, 2 cores; every server and service on this machine (loadgen, ingest, writer, export
with its warehouse loader, Apache Kafka, PostgreSQL primary + standby + warehouse, Redis). Command:
`bash scripts/bench-warehouse.sh` (ROWS={rows} RATE={rate} SECONDS_STEADY={secs}, {devices} devices
× {sensors} sensors). The writer and the loader consume the same topic at once.

| | primary (writer) | warehouse (loader) |
|---|---|---|
| burst of {unique:,} unique readings: all stored after | {p_s:.1f} s | {w_s:.1f} s |
| readings/s from the burst's start | {unique / p_s:,.0f} | {unique / w_s:,.0f} |
| CPU per reading (the consumer process) | {w_ticks / 100 / unique * 1e6:.2f} µs | {e_ticks / 100 / unique * 1e6:.2f} µs |

Ingest took the burst in {(sent - start) / 1000:.1f} s. Warehouse / primary time: **{w_s / p_s:.2f}**.
Steady {rate} readings/s for {secs} s ({steady.get("unique", 0):,} readings): the warehouse's
freshness lag (what ANALYTICS reads report), {len(lags)} samples: median
**{statistics.median(lags) if lags else float('nan'):.2f} s**, max {max(lags) if lags else float('nan'):.2f} s.
""")
PY
