#!/usr/bin/env bash
# Ingest with the warm tier's packer working beside it (issue 16: "ingest throughput unchanged
# within noise with packing running"), not a test. Each round loads PRELOAD_HOURS closed hours of
# old readings (with packing off), then measures the platform at full speed twice on the same
# stack: once with a writer that does not pack (--pack_raw=false) and once with one that packs
# those hours while the load runs (--pack_raw, compaction rounds every second). The measured
# load writes recent readings (not due for packing), so the two runs differ only by the packer.
# Appends the results to docs/benchmarks.md and prints them.
#
#   bash scripts/bench-ingest-packing.sh   (ROWS=2000000 PRELOAD_HOURS=3 DEVICES=1000 ROUNDS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
ROWS="${ROWS:-2000000}"
PRELOAD_HOURS="${PRELOAD_HOURS:-3}"
DEVICES="${DEVICES:-1000}"
SENSORS="${SENSORS:-8}"
ROUNDS="${ROUNDS:-2}"
PRELOAD_INTERVAL_S=10

# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh

log() { printf '[bench-ingest-packing] %s\n' "$*" >&2; }
key() { "$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "pack-$1-$(date +%s%N)" | sed -n 's/^api_key=//p'; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
busy_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.3f\n", ($2+$3+$4+$7+$8)/hz}' /proc/stat; }

"$BUILD_DIR/services/ingest/telemetry-ingest" --http_port=0 >"$OUT/ingest.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/query/telemetry-query" --http_port=0 >"$OUT/query.log" 2>&1 &
pids+=($!)
WRITER_PID=""
WRITER_PORT=""
start_writer() { # start_writer ARGS...: the one writer of the group
  WRITER_PORT="$(free_port)"
  "$BUILD_DIR/services/writer/telemetry-writer" --http_port="$WRITER_PORT" "$@" \
    >>"$OUT/writer.log" 2>&1 &
  WRITER_PID=$!
  for _ in $(seq 1 100); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WRITER_PORT/readyz")" == 200 ]] && return
    sleep 0.2
  done
  log "the writer did not become ready"; exit 1
}
stop_writer() { kill -TERM "$WRITER_PID"; wait "$WRITER_PID" 2>/dev/null || true; WRITER_PID=""; }
trap 'stop_writer 2>/dev/null || true; cleanup' EXIT
sleep 3

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
per_hour=$((DEVICES * SENSORS * 3600 / PRELOAD_INTERVAL_S))
for round in $(seq 1 "$ROUNDS"); do
  # Closed hours of a day of their own per round, written with packing off.
  start_ns=$(( ($(date +%s) / 3600 - 24 * (round + 1)) * 3600 * 1000000000 ))
  log "round $round: preloading $PRELOAD_HOURS h × $per_hour readings (packing off)"
  start_writer --compact_interval_s=0
  "$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$(key "pre$round")" --devices "$DEVICES" \
    --sensors "$SENSORS" --total $((per_hour * PRELOAD_HOURS)) --batch 5000 --concurrency 4 \
    --interval_ms $((PRELOAD_INTERVAL_S * 1000)) --start_ns "$start_ns" --deadline_ms 60000 \
    >"$OUT/preload-$round.out"
  stop_writer
  # Both measured runs find the rollups compacted: only the raw packing differs.
  "$BUILD_DIR/tools/admin/telemetry-admin" compact-rollups --older_than_s 3600 >&2
  for mode in off on; do
    settle
    if [[ $mode == on ]]; then
      start_writer --compact_interval_s=1 --pack_raw=true
    else
      start_writer --compact_interval_s=1 --pack_raw=false
    fi
    busy0="$(busy_s)"
    packed0="$(metric "$WRITER_PORT" writer_raw_readings_packed_total)"
    log "round $round, packing $mode: $ROWS readings at full speed"
    run="$("$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$(key "$mode$round")" \
      --devices "$DEVICES" --sensors "$SENSORS" --total "$ROWS" --batch 1000 --concurrency 4 \
      --duplicates 0.01 --interval_ms 1000 --start_ago_s 600 | tail -n 1)"
    busy1="$(busy_s)"
    packed1="$(metric "$WRITER_PORT" writer_raw_readings_packed_total)"
    stop_writer
    /usr/bin/python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(round=int(sys.argv[2]), mode=sys.argv[3], packed=int(float(sys.argv[5]))-int(float(sys.argv[4])), busy_s=float(sys.argv[7])-float(sys.argv[6])); print(json.dumps(r))' \
      "$run" "$round" "$mode" "${packed0:-0}" "${packed1:-0}" "$busy0" "$busy1" | tee -a "$RESULTS" >&2
  done
done

/usr/bin/python3 - "$RESULTS" "$ROWS" "$PRELOAD_HOURS" "$DEVICES" "$SENSORS" "$per_hour" <<'PY' | tee -a docs/benchmarks.md
import json, sys, datetime, subprocess, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
n, hours, devices, sensors, per_hour = sys.argv[2:7]
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
def e2e(r):
    return r["unique"] / (r["seconds"] + max(r["queryable_ms"], 0) / 1000)
lines = []
ratios = []
for rnd in sorted({r["round"] for r in rows}):
    pair = {r["mode"]: r for r in rows if r["round"] == rnd}
    for mode in ("off", "on"):
        r = pair[mode]
        lines.append(f"| {rnd} | {mode} | {e2e(r):,.0f} | {r['ack_p50_ms']:.1f} / {r['ack_p99_ms']:.1f} | "
                     f"{r['queryable_ms']:,.0f} | {r['packed']:,} | {1e6 * r['busy_s'] / r['unique']:.1f} |")
    ratios.append(e2e(pair["on"]) / e2e(pair["off"]))
table = "\n".join(lines)
print(f"""
## Ingest with the warm tier's packer running, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC

Machine: {cpu}, 2 cores; every server and service on this machine. Platform at {rev}. Command:
`bash scripts/bench-ingest-packing.sh` (each round: {hours} closed hours of {int(per_hour):,} readings each
preloaded with packing off, {devices} devices × {sensors} sensors every 10 s, their rollups compacted; then
{int(n):,} readings at full speed, 1 % duplicates, recent event times, once with a writer that does not
pack and once with one that packs the preloaded hours while the load runs (compaction rounds every
second)). Readings/s: unique readings ÷ time until the last was queryable.

| round | packing | readings/s | ack p50 / p99 (ms) | last ack → queryable (ms) | readings packed meanwhile | machine CPU µs/reading |
|---|---|---:|---:|---:|---:|---:|
{table}

Packing on ÷ off, per round: {", ".join(f"{x:.2f}" for x in ratios)} (median {statistics.median(ratios):.2f}).

Raw JSON: {json.dumps(rows)}
""")
PY
