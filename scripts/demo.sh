#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to readings flowing: installs the
# packages (and Apache Kafka's jars from Maven Central), builds, starts
# PostgreSQL (primary + hot standby), Redis and Apache Kafka on loopback,
# creates the Kafka topics, applies the schema, creates a demo tenant,
# starts ingest, writer, query and alert, creates an alert rule, plays a
# simulated fleet against ingest, reads the data back and shows the alerts.
#
#   bash scripts/demo.sh            run the demo, then stop everything
#   KEEP=1 bash scripts/demo.sh     leave the platform running afterwards
#   bash scripts/demo.sh stop       stop what a KEEP=1 run left running
#
# Demo size: DEVICES (100) × SENSORS (8) at RATE readings/s (20000) for
# DURATION seconds (15).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
STATE="${TELEMETRY_LOCAL_DIR:-/tmp/telemetry-local-$(id -u)}"
RUN="$STATE/demo"

stop_services() {
  for svc in export bridge alert query ingest writer; do
    if [[ -f "$RUN/$svc.pid" ]]; then
      kill -TERM "$(cat "$RUN/$svc.pid")" 2>/dev/null || true
      rm -f "$RUN/$svc.pid"
    fi
  done
  sleep 1
}

if [[ "${1:-}" == "stop" ]]; then
  stop_services
  deploy/local/down.sh
  exit 0
fi

deploy/local/install-deps.sh
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j2

env_file="$(deploy/local/up.sh --build-dir "$BUILD_DIR")"
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
if [[ -z "${KEEP:-}" ]]; then
  trap 'stop_services; deploy/local/down.sh >/dev/null 2>&1 || true' EXIT
fi
"$BUILD_DIR/tools/admin/telemetry-admin" migrate --dir db/migrations
# The same schema in the analytics warehouse (a PostgreSQL cluster of its own).
"$BUILD_DIR/tools/admin/telemetry-admin" --pg_primary="$TELEMETRY_WAREHOUSE" migrate --dir db/migrations
mkdir -p "$RUN"
if [[ ! -f "$RUN/tenant" ]]; then
  name="demo-$(date +%s)"
  "$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "$name" > "$RUN/tenant"
  echo "tenant_name=$name" >> "$RUN/tenant"
fi
TENANT_NAME="$(sed -n 's/^tenant_name=//p' "$RUN/tenant")"
API_KEY="$(sed -n 's/^api_key=//p' "$RUN/tenant")"

stop_services
"$BUILD_DIR/services/writer/telemetry-writer" >"$RUN/writer.log" 2>&1 &
echo $! >"$RUN/writer.pid"
"$BUILD_DIR/services/ingest/telemetry-ingest" >"$RUN/ingest.log" 2>&1 &
echo $! >"$RUN/ingest.pid"
# The standby for EVENTUAL reads (the env file names it TELEMETRY_PG_REPLICA,
# the flag is --pg_replicas: a list).
# --archive_root: Range, Playback and Latest over hours retention dropped read the archive.
# --pg_warehouse: ANALYTICS reads go to the warehouse the export service loads.
"$BUILD_DIR/services/query/telemetry-query" --pg_replicas="$TELEMETRY_PG_REPLICA" \
  --archive_root="$RUN/archive" --pg_warehouse="$TELEMETRY_WAREHOUSE" \
  >"$RUN/query.log" 2>&1 &
echo $! >"$RUN/query.pid"
"$BUILD_DIR/services/alert/telemetry-alert" >"$RUN/alert.log" 2>&1 &
echo $! >"$RUN/alert.pid"
# The MQTT bridge (broker address from the env file; its own credentials).
"$BUILD_DIR/services/bridge/telemetry-bridge" --mqtt_user="$TELEMETRY_MQTT_BRIDGE_USER" \
  --mqtt_password="$TELEMETRY_MQTT_BRIDGE_PASSWORD" >"$RUN/bridge.log" 2>&1 &
echo $! >"$RUN/bridge.pid"
# The Parquet archive of packed hours (docs/archive.md), looking for them every 2 s here, and
# only for the last 4 hours (a database with older data keeps the demo short); and the analytics
# warehouse, loaded from the readings topic (docs/warehouse.md).
"$BUILD_DIR/services/export/telemetry-export" --archive_root="$RUN/archive" \
  --pg_warehouse="$TELEMETRY_WAREHOUSE" \
  --archive_interval_s=2 --archive_from_ns=$(( ($(date +%s) / 3600 - 4) * 3600 * 1000000000 )) \
  >"$RUN/export.log" 2>&1 &
echo $! >"$RUN/export.pid"
for port in 9101 9102 9103 9104 9105 9106; do
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:9101/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== an alert rule: the 10-second average of sensor s3 of dev-1* above 26 (fires below 25 again)"
"$BUILD_DIR/tools/cli/telemetry-cli" rules-create --api_key "$API_KEY" --rule_json '{
  "name": "s3 hot", "device_id": "dev-1*", "sensor": "s3", "window_seconds": 10,
  "function": "WINDOW_FUNCTION_AVG", "comparison": "COMPARISON_GT", "threshold": 26,
  "resolve_threshold": 25, "severity": "SEVERITY_WARNING",
  "annotations": {"summary": "{{device}} {{sensor}} at {{value}} (> {{threshold}})"}}' \
  | sed -n 's/^ *"\(ruleId\|name\|version\)".*/  &/p'
sleep 2  # the alert service loads rule changes within a second

echo "== playing ${DEVICES:-100} devices × ${SENSORS:-8} sensors at ${RATE:-20000} readings/s for ${DURATION:-15} s (2% duplicates, 2% late)"
"$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$API_KEY" \
  --devices "${DEVICES:-100}" --sensors "${SENSORS:-8}" --string_sensors 1 \
  --rate "${RATE:-20000}" --duration_s "${DURATION:-15}" --batch 500 --concurrency 4 \
  --duplicates 0.02 --late 0.02 --interval_ms 1000 --start_ago_s 600

echo "== an MQTT device: credentials confined to its topics, a JSON document and a single value (QoS 1)"
creds="$(deploy/mosquitto/mosquitto.sh add-device "$TENANT_NAME" mqtt-1)"
MQTT_USER="$(sed -n 's/^user=\([^ ]*\).*/\1/p' <<<"$creds")"
MQTT_PASSWORD="$(sed -n 's/.*password=\([^ ]*\).*/\1/p' <<<"$creds")"
echo "  $MQTT_USER may publish to telemetry/$TENANT_NAME/mqtt-1[/<sensor>] only"
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:9105/readyz >/dev/null 2>&1 && break
  sleep 0.1
done
mqtt=(-h "$TELEMETRY_MQTT_HOST" -p "$TELEMETRY_MQTT_PORT" -u "$MQTT_USER" -P "$MQTT_PASSWORD" -q 1)
mosquitto_pub "${mqtt[@]}" -t "telemetry/$TENANT_NAME/mqtt-1" \
  -m "{\"timestamp\": $(date +%s), \"metrics\": {\"power_w\": 12.5, \"relay\": true}, \"meta\": {\"fw\": \"1.0.3\"}}"
mosquitto_pub "${mqtt[@]}" -t "telemetry/$TENANT_NAME/mqtt-1/temp" -m 21.5
echo "== InfluxDB line protocol (what Telegraf sends) on :8086"
curl -s -o /dev/null -w '  HTTP %{http_code}\n' -XPOST "http://127.0.0.1:8086/api/v2/write?org=demo&bucket=demo&precision=s" \
  -H "Authorization: Token $API_KEY" --data-binary "weather,site=lab temperature=19.5,humidity=48i $(date +%s)"
sleep 2
echo "== latest values of mqtt-1 and of weather/site:lab"
"$BUILD_DIR/tools/cli/telemetry-cli" latest --api_key "$API_KEY" --device mqtt-1
"$BUILD_DIR/tools/cli/telemetry-cli" latest --api_key "$API_KEY" --device weather/site:lab

echo "== latest values of dev-1 (STRONG, from the primary)"
"$BUILD_DIR/tools/cli/telemetry-cli" latest --api_key "$API_KEY" --device dev-1
echo "== the first 10 readings of dev-1/s2 in the last hour (Range, limit 10, with a resume cursor)"
"$BUILD_DIR/tools/cli/telemetry-cli" range --api_key "$API_KEY" --device dev-1 --sensors s2 \
  --from_s 3600 --limit 10
echo "== stored readings (raw rows and, for hours the writer packed, segments: the view"
echo "   raw_readings_merged has both; the 1-minute rollups count only numeric and boolean"
echo "   readings: the string sensor's readings have no rollup, so the two counts differ)"
psql "$TELEMETRY_PG_PRIMARY" -c "SELECT count(*) AS raw_readings,
    count(*) FILTER (WHERE value_text IS NULL) AS numeric_or_boolean FROM raw_readings_merged" \
  -c "SELECT count(*) AS minute_buckets, sum(cnt) AS readings_in_rollups FROM agg_1m_merged"
echo "== the same Range at ANALYTICS: from the warehouse (telemetry-export loads it from the topic"
echo "   in 1 s micro-batches; the lag is its freshness)"
"$BUILD_DIR/tools/cli/telemetry-cli" range --api_key "$API_KEY" --device dev-1 --sensors s2 \
  --from_s 3600 --limit 3 --consistency analytics
psql "$TELEMETRY_WAREHOUSE" -c "SELECT count(*) AS readings_in_the_warehouse FROM raw_readings_merged"
echo "== writer metrics"
curl -s http://127.0.0.1:9102/metrics | grep -E '^writer_(readings|batches|dead|log_gap)'
sleep 3  # the last windows close (allowed lateness 5 s, then the idle partitions' clock)
echo "== alerts: transitions recorded per state, and the ones firing now (telemetry-cli alerts-list)"
TENANT_ID="$(sed -n 's/^tenant_id=//p' "$RUN/tenant")"
psql "$TELEMETRY_PG_PRIMARY" -c "SELECT CASE to_state WHEN 1 THEN 'firing' WHEN 2 THEN 'resolved'
    WHEN 3 THEN 'pending' ELSE 'inactive' END AS state, count(*) FROM alert_history
    WHERE tenant_id = $TENANT_ID GROUP BY 1"
"$BUILD_DIR/tools/cli/telemetry-cli" alerts-list --api_key "$API_KEY" --firing_only --page_size 3 \
  | grep -E '"(deviceId|message|sequence)"' || echo "  (none firing right now)"
echo "== alert metrics"
curl -s http://127.0.0.1:9104/metrics | grep -E '^alert_(readings|late|transitions|rules|notifications)'

echo "== the archive: readings of 3 hours ago, packed into segments now, exported to Parquet"
"$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$API_KEY" --devices 20 --sensors 4 \
  --rate 4000 --duration_s 3 --batch 500 --concurrency 2 --interval_ms 1000 \
  --start_ago_s 10800 >/dev/null
sleep 2  # the writer applies the last batches
"$BUILD_DIR/tools/admin/telemetry-admin" pack-raw --older_than_s 0 | sed 's/^/  /'
TENANT_DIR="$RUN/archive/tenant=$TENANT_ID"
for _ in $(seq 1 150); do
  [[ -n "$(find "$TENANT_DIR" -name 'last-*.parquet' 2>/dev/null || true)" ]] && break
  sleep 0.2
done
{ find "$TENANT_DIR" -name '*.parquet' 2>/dev/null || true; } | sed "s|$RUN/archive/|  |" | sort
echo "== the archive read by DuckDB (any Parquet reader works)"
PY="$(scripts/client-venv.sh)"
"$PY" - "$RUN/archive" "$TENANT_ID" <<'PYEOF'
import sys, duckdb
root, tenant = sys.argv[1], int(sys.argv[2])
rows = duckdb.sql(f"""
  SELECT date, hour, count(DISTINCT device) AS devices, count(*) AS readings,
         round(avg(value_double), 2) AS avg_value
  FROM read_parquet('{root}/**/readings-*.parquet', hive_partitioning = true,
                    hive_types = {{'tenant': BIGINT, 'date': DATE, 'hour': INTEGER}})
  WHERE tenant = {tenant} GROUP BY ALL ORDER BY ALL""").fetchall()
for r in rows:
    print("  date %s hour %02d: %d devices, %d readings, average %s" % r)
PYEOF
echo "== retention: the dry run for today and yesterday (within every tenant's 30 days: kept)"
"$BUILD_DIR/tools/admin/telemetry-admin" retention --archive_root "$RUN/archive" \
  --from_ns=$(( ($(date +%s) / 86400 - 1) * 86400 * 1000000000 )) | sed 's/^/  /'
if [[ -n "${KEEP:-}" ]]; then
  echo
  echo "The platform keeps running: ingest 127.0.0.1:50051, query 127.0.0.1:50052,"
  echo "alert 127.0.0.1:50054, export 127.0.0.1:50055 (archive in $RUN/archive),"
  echo "line protocol 127.0.0.1:8086, MQTT 127.0.0.1:$TELEMETRY_MQTT_PORT,"
  echo "metrics on :9101 (ingest) :9102 (writer) :9103 (query) :9104 (alert) :9105 (bridge) :9106 (export)."
  echo "API key: $API_KEY"
  echo "Endpoints: $env_file. Stop with: bash scripts/demo.sh stop"
fi
