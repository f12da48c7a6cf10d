#!/usr/bin/env bash
# The archive's export rate and size (issue 17: "an hour of 1,000 devices × 8 sensors at 1 Hz,
# 28.8 M readings, exported in under 20 s"), not a test. Loads one closed hour of readings through
# ingest and the writer (packing off), packs it (the warm tier), then times `telemetry-admin
# archive` on it and counts the archive with DuckDB (an independent reader). Reports readings/s,
# CPU per reading, bytes per reading in the archive and in the warm tier's segments of the same
# hour. Then the same hour again to the stack's S3 server (S3Proxy on loopback, its filesystem
# backend: the S3 path's own cost, not a network's), as a ratio to the local export of the run.
# Appends the results to docs/benchmarks.md and prints them.
#
#   bash scripts/bench-archive.sh          (DEVICES=1000 SENSORS=8: 28.8 M readings)
#   DEVICES=200 bash scripts/bench-archive.sh   (5.76 M: a quicker run)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
DEVICES="${DEVICES:-1000}"
SENSORS="${SENSORS:-8}"

# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh

log() { printf '[bench-archive] %s\n' "$*" >&2; }
busy_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.3f\n", ($2+$3+$4+$7+$8)/hz}' /proc/stat; }
now_s() { date +%s.%N; }

readings=$((DEVICES * SENSORS * 3600))
# An hour two days ago (closed, on a day partition of its own).
hour_ns=$(( ($(date +%s) / 3600 - 48) * 3600 * 1000000000 ))
tenant_out="$("$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "archive-$(date +%s%N)")"
key="$(sed -n 's/^api_key=//p' <<<"$tenant_out")"
tenant_id="$(sed -n 's/^tenant_id=//p' <<<"$tenant_out")"

"$BUILD_DIR/services/ingest/telemetry-ingest" --http_port=0 >"$OUT/ingest.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/writer/telemetry-writer" --http_port=0 --compact_interval_s=0 \
  >"$OUT/writer.log" 2>&1 &
pids+=($!)
sleep 3
log "loading $readings readings: $DEVICES devices × $SENSORS sensors at 1 Hz for the hour $hour_ns"
"$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$key" --devices "$DEVICES" \
  --sensors "$SENSORS" --total "$readings" --batch 5000 --concurrency 4 --interval_ms 1000 \
  --start_ns "$hour_ns" --deadline_ms 60000 >"$OUT/load.out"
for _ in $(seq 1 600); do
  stored="$(psql "$TELEMETRY_PG_PRIMARY" -qAtc "SELECT count(*) FROM raw_readings WHERE ts >= $hour_ns AND ts < $hour_ns + 3600000000000")"
  [[ "$stored" -ge "$readings" ]] && break
  sleep 1
done
log "stored $stored; compacting the rollups and packing the hour"
"$BUILD_DIR/tools/admin/telemetry-admin" compact-rollups --older_than_s 3600 >&2
pack_out="$("$BUILD_DIR/tools/admin/telemetry-admin" pack-raw --older_than_s 3600)"
log "$pack_out"
settle

log "archiving"
busy0="$(busy_s)"
t0="$(now_s)"
"$BUILD_DIR/tools/admin/telemetry-admin" archive --archive_root "$OUT/archive" >"$OUT/archive.out"
t1="$(now_s)"
busy1="$(busy_s)"
cat "$OUT/archive.out" >&2
# The same hour to S3: the manifest forgotten first (it is per tenant and hour, not per root).
psql "$TELEMETRY_PG_PRIMARY" -qc "DELETE FROM archive_exports WHERE hour = $hour_ns; DELETE FROM archive_hours WHERE hour = $hour_ns"
s3_root="s3://$TELEMETRY_S3_BUCKET/bench-$(date +%s)?endpoint=$TELEMETRY_S3_ENDPOINT"
log "archiving again to $s3_root"
s3_busy0="$(busy_s)"
s3_t0="$(now_s)"
AWS_ACCESS_KEY_ID="$TELEMETRY_S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$TELEMETRY_S3_SECRET_ACCESS_KEY" \
  "$BUILD_DIR/tools/admin/telemetry-admin" archive --archive_root "$s3_root" >"$OUT/archive-s3.out"
s3_t1="$(now_s)"
s3_busy1="$(busy_s)"
cat "$OUT/archive-s3.out" >&2
seg_bytes="$(psql "$TELEMETRY_PG_PRIMARY" -qAtc "SELECT sum(octet_length(data)) FROM raw_readings_seg WHERE hour = $hour_ns")"
seg_n="$(psql "$TELEMETRY_PG_PRIMARY" -qAtc "SELECT sum(n) FROM raw_readings_seg WHERE hour = $hour_ns")"
PY="$(scripts/client-venv.sh)"
duck="$("$PY" -c 'import sys, duckdb; print(duckdb.sql(f"SELECT count(*), count(DISTINCT device) FROM read_parquet(\"{sys.argv[1]}/**/readings-*.parquet\")").fetchall()[0])' "$OUT/archive")"
files="$(find "$OUT/archive/tenant=$tenant_id" -name 'readings-*.parquet' | wc -l)"
archive_bytes="$(find "$OUT/archive/tenant=$tenant_id" -name 'readings-*.parquet' -printf '%s\n' | awk '{s+=$1} END {print s}')"

/usr/bin/python3 - "$readings" "$stored" "$seg_n" "$seg_bytes" "$archive_bytes" "$files" \
  "$t0" "$t1" "$busy0" "$busy1" "$duck" "$DEVICES" "$SENSORS" "$s3_t0" "$s3_t1" "$s3_busy0" \
  "$s3_busy1" <<'PY' | tee -a docs/benchmarks.md
import datetime, subprocess, sys
(want, stored, seg_n, seg_bytes, archive_bytes, files, t0, t1, b0, b1, duck, devices,
 sensors, s3_t0, s3_t1, s3_b0, s3_b1) = sys.argv[1:]
s3_seconds = float(s3_t1) - float(s3_t0)
s3_cpu_s = float(s3_b1) - float(s3_b0)
want, stored, seg_n, seg_bytes, archive_bytes = map(int, (want, stored, seg_n, seg_bytes, archive_bytes))
seconds = float(t1) - float(t0)
cpu_s = float(b1) - float(b0)
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
print(f"""
### Issue 17: archive export of one packed hour ({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, `{rev}`)
`DEVICES={devices} SENSORS={sensors} bash scripts/bench-archive.sh` on {cpu} (2 cores, shared).
One closed hour loaded through ingest and the writer ({devices} devices × {sensors} sensors at
1 Hz, the loadgen's random walk), packed (`telemetry-admin pack-raw`), then exported by
`telemetry-admin archive` (the exporter the service runs) to a local directory.

| | |
|---|---|
| readings in the hour (stored / in segments) | {stored:,} / {seg_n:,} (loaded {want:,}) |
| export time | {seconds:.2f} s: **{seg_n / seconds:,.0f} readings/s** (goal: 28.8 M in < 20 s = 1.44 M/s) |
| machine CPU during the export | {cpu_s:.2f} s, {cpu_s / seg_n * 1e6:.2f} µs a reading (exporter + Postgres) |
| archive: readings files | {files} files, {archive_bytes:,} bytes: **{archive_bytes / seg_n:.2f} bytes/reading** |
| warm tier: the hour's segments (codec bytes, no row or TOAST overhead) | {seg_bytes:,} bytes: {seg_bytes / seg_n:.2f} bytes/reading |
| DuckDB over the archive (count, devices) | {duck} |
| the same export to S3 (S3Proxy on loopback, SigV4, multipart) | {s3_seconds:.2f} s: {seg_n / s3_seconds:,.0f} readings/s, **{s3_seconds / seconds:.2f}× the local export's time**; machine CPU {s3_cpu_s:.2f} s (S3Proxy's JVM included) |
""")
PY
