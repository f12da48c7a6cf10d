#!/usr/bin/env bash
# Where the write path's CPU goes (a diagnostic, not a test or a recorded
# benchmark): a fresh bench stack, writer + ingest + query, one max-speed run
# of the load generator, then
#   - CPU seconds per process (Postgres backends by role) during the run,
#   - the writer's batch counters,
#   - with STATEMENTS=1, the Postgres time per statement kind of the apply
#     transaction (log_min_duration_statement = 0 on the primary).
#
#   bash scripts/profile-ingest.sh              (ROWS=3000000)
#   WRITER_ARGS="--batch_readings=50000" STATEMENTS=1 bash scripts/profile-ingest.sh
#   INGEST_ARGS="--kafka_config=linger.ms=10" bash scripts/profile-ingest.sh
#   PRELOAD=3000000 RATE=50000 DURATION_S=30 bash scripts/profile-ingest.sh
#     (first PRELOAD readings at full speed, then bench-env.sh's settle as
#     bench-ingest.sh does, then the profiled run at a fixed rate)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
ROWS="${ROWS:-3000000}"
WRITER_HTTP_PORT="${WRITER_HTTP_PORT:-47110}"
# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh
if [[ "${STATEMENTS:-0}" == 1 ]]; then
  psql "$TELEMETRY_PG_ADMIN" -qc "ALTER SYSTEM SET log_min_duration_statement = 0" \
    -c "SELECT pg_reload_conf()" >/dev/null
fi
# shellcheck disable=SC2086  # WRITER_ARGS is a list of flags
"$BUILD_DIR/services/writer/telemetry-writer" --http_port="$WRITER_HTTP_PORT" ${WRITER_ARGS:-} \
  >"$OUT/writer.log" 2>&1 &
pids+=($!)
# shellcheck disable=SC2086  # INGEST_ARGS is a list of flags
"$BUILD_DIR/services/ingest/telemetry-ingest" --http_port=0 ${INGEST_ARGS:-} >"$OUT/ingest.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/query/telemetry-query" --http_port=0 >"$OUT/query.log" 2>&1 &
pids+=($!)
sleep 5
key="$("$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "profile-$(date +%s%N)" |
  sed -n 's/^api_key=//p')"
if [[ -n "${PRELOAD:-}" ]]; then
  pre="$("$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "preload-$(date +%s%N)" |
    sed -n 's/^api_key=//p')"
  "$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$pre" --devices 1000 --sensors 8 \
    --total "$PRELOAD" --batch 1000 --concurrency 4 --duplicates 0.01 --interval_ms 1000 \
    --start_ago_s 7200 | tail -n 1
  settle
fi
if [[ "${STATEMENTS:-0}" == 1 ]]; then
  psql "$TELEMETRY_PG_ADMIN" -qAtc "SELECT pg_rotate_logfile()" >/dev/null 2>&1 || true
  : >"$TELEMETRY_LOCAL_DIR/pg/primary.log"
fi
cpu_snapshot >"$OUT/cpu0"
if [[ -n "${RATE:-}" ]]; then
  load=(--rate "$RATE" --duration_s "${DURATION_S:-30}" --batch 500)
else
  load=(--total "$ROWS" --batch 1000)
fi
"$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$key" --devices 1000 --sensors 8 \
  "${load[@]}" --concurrency 4 --duplicates 0.01 --interval_ms 1000 --start_ago_s 7200 |
  tail -n 1
cpu_snapshot >"$OUT/cpu1"
echo "== CPU seconds during the run, by process"
/usr/bin/python3 scripts/lib/cpu-by-process.py "$OUT/cpu0" "$OUT/cpu1"
echo "== writer"
curl -s "127.0.0.1:$WRITER_HTTP_PORT/metrics" |
  grep -E "^writer_(batches|bulk_batches|readings_applied|readings_duplicate)_total|^writer_batch_seconds_(sum|count)"
if [[ "${STATEMENTS:-0}" == 1 ]]; then
  echo "== Postgres time per statement kind (primary)"
  /usr/bin/python3 - "$TELEMETRY_LOCAL_DIR"/pg/primary.log <<'PY'
import collections, re, sys
lines = open(sys.argv[1], errors="replace").read().split("\n")
kinds = [("COPY raw_readings", "COPY into raw_readings"), ("COPY stage_agg", "COPY into stage_agg"),
         ("COPY stage_raw", "COPY into stage_raw (upsert path)"),
         ("unnest($1::int[], $2::bigint[], $3::bigint[])", "probe for stored readings"),
         ("INSERT INTO agg_1m AS a", "merge into agg_1m / agg_1h / agg_1h_sensor"),
         ("ON CONFLICT (series_id, ts) DO NOTHING", "upsert into raw_readings"),
         ("INSERT INTO writer_offsets", "offsets"), ("COMMIT", "commit")]
spent = collections.defaultdict(list)
for i, line in enumerate(lines):
    m = re.search(r"duration: ([\d.]+) ms\s+(?:statement|execute [^:]*): (.*)", line)
    if not m:
        continue
    text = m.group(2) if m.group(2).strip() else " ".join(lines[i + 1:i + 4])
    kind = next((k for needle, k in kinds if needle in text), "other")
    spent[kind].append(float(m.group(1)))
for kind, ms in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
    print(f"{sum(ms):9.1f} ms  {len(ms):5d} statements  {sum(ms) / len(ms):8.2f} ms each  {kind}")
PY
fi
