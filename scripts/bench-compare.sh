#!/usr/bin/env bash
# The platform side by side with InfluxDB 1.6 and bare PostgreSQL (not a
# test): the same seeded data set written into each (the platform end to end:
# telemetry-loadgen over gRPC, clock stopped when everything is queryable), the
# same reads against each, interleaved, and concurrent reads while each ingests
# at half its maximum. Starts every server it uses and stops them all on exit.
# Appends a Markdown section to docs/benchmarks.md and writes the raw JSON to
# docs/benchmarks/.
#
#   bash scripts/bench-compare.sh           full profile: 4 tenants × 250 devices × 8 sensors,
#                                           one reading per 30 s over 24 h (23 M readings)
#   bash scripts/bench-compare.sh --quick   2 tenants × 25 devices × 8 sensors, 60 s, 24 h
#                                           (576,000 readings; a couple of minutes)
# Overrides: ROUNDS (ingest rounds, systems alternating; full 1, quick 2), REPS, TENANT_REPS,
# CONC_SECONDS, QUERY_ARGS (extra flags of the query service, for A/B runs).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
PROFILE=full
[[ "${1:-}" == --quick ]] && PROFILE=quick
if [[ $PROFILE == full ]]; then
  TENANTS=4 DEVICES=250 INTERVAL_S=30
  REPS="${REPS:-200}" TENANT_REPS="${TENANT_REPS:-5}" CONC_SECONDS="${CONC_SECONDS:-15}"
else
  TENANTS=2 DEVICES=25 INTERVAL_S=60
  REPS="${REPS:-40}" TENANT_REPS="${TENANT_REPS:-3}" CONC_SECONDS="${CONC_SECONDS:-4}"
fi
SENSORS=8 STRING_SENSORS=1 HOURS=24 DUPLICATES=0.01 LATE=0.001 SEED=42 GEN_WORKERS=4
# Ingest rounds (each system writes the whole data set once per round, the order rotating, into
# fresh targets; reads use round 1's). The full profile defaults to one: a round takes ~10 min.
if [[ $PROFILE == full ]]; then ROUNDS="${ROUNDS:-1}"; else ROUNDS="${ROUNDS:-2}"; fi

deploy/local/install-deps.sh --with-bench >/dev/null
# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh
BIN="$BUILD_DIR"
log() { printf '[bench-compare] %s\n' "$*" >&2; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
busy_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.3f\n", ($2+$3+$4+$7+$8)/hz}' /proc/stat; }
new_key() { "$BIN/tools/admin/telemetry-admin" create-tenant --name "cmp-$1-$(date +%s%N)" | sed -n 's/^api_key=//p'; }
json_get() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# --- servers: the platform's services, and InfluxDB on loopback ----------
# Rollup compaction off while ingesting: the replay writes 24 h of data in a
# few minutes, so the hourly job would run 24 times at once and be counted
# as ingest cost. It runs once, timed, before the reads (below).
"$BIN/services/writer/telemetry-writer" --http_port=0 --compact_interval_s=0 >"$OUT/writer.log" 2>&1 &
pids+=($!)
"$BIN/services/ingest/telemetry-ingest" --http_port=0 >"$OUT/ingest.log" 2>&1 &
pids+=($!)
# shellcheck disable=SC2086  # QUERY_ARGS is a list of flags
"$BIN/services/query/telemetry-query" --http_port=0 --pg_replicas="$TELEMETRY_PG_REPLICA" \
  --redis="$TELEMETRY_REDIS" ${QUERY_ARGS:-} >"$OUT/query.log" 2>&1 &
pids+=($!)

INFLUX_PORT="$(free_port)"
INFLUX_RPC_PORT="$(free_port)"
mkdir -p "$OUT/influx"
cat >"$OUT/influx/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$OUT/influx/meta"
[data]
  dir = "$OUT/influx/data"
  wal-dir = "$OUT/influx/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "5s"
  compact-full-write-cold-duration = "10s"
  max-series-per-database = 0
  max-values-per-tag = 0
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
EOF
influxd run -config "$OUT/influx/influxdb.conf" >"$OUT/influx.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$INFLUX_PORT/ping" >/dev/null && break
  sleep 0.1
done
influx_q() { curl -sf -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=$1" >/dev/null; }
sleep 4  # the writer joins its consumer group

HOUR_NS=3600000000000
START_NS=$(( ($(date +%s) / 3600 * 3600 - HOURS * 3600) * 1000000000 ))
PER_TENANT=$(( DEVICES * SENSORS * HOURS * 3600 / INTERVAL_S ))
common=(--tenants "$TENANTS" --devices "$DEVICES" --sensors "$SENSORS"
  --string_sensors "$STRING_SENSORS" --interval_s "$INTERVAL_S" --hours "$HOURS"
  --duplicates "$DUPLICATES" --late "$LATE" --seed "$SEED" --start_ns "$START_NS"
  --gen_workers "$GEN_WORKERS" --influx "127.0.0.1:$INFLUX_PORT" --pg "$TELEMETRY_PG_PRIMARY")
log "profile $PROFILE: $TENANTS tenants × $DEVICES devices × $SENSORS sensors, every ${INTERVAL_S}s over ${HOURS}h = $((PER_TENANT * TENANTS)) unique readings"

# --- ingest: every system writes the whole data set; the order rotates by round
declare -A KEYS
ingest_one() { # ingest_one SYSTEM ROUND -> JSON line with server CPU added
  local sys="$1" round="$2" before after out cpu k0 k1
  before="$(busy_s)"
  k0="$(ticks "$(kafka_pid)")"
  case "$sys" in
    platform)
      out="$("$BIN/tools/loadgen/telemetry-loadgen" --api_keys "${KEYS[$round]}" --devices "$DEVICES" \
        --sensors "$SENSORS" --string_sensors "$STRING_SENSORS" --total "$PER_TENANT" \
        --concurrency "$GEN_WORKERS" --batch 5000 --duplicates "$DUPLICATES" --late "$LATE" \
        --interval_ms $((INTERVAL_S * 1000)) --start_ns "$START_NS" --seed "$SEED" \
        --deadline_ms 60000 | tee "$OUT/loadgen-r$round.out" | tail -n 1)" ;;
    influx)
      influx_q "CREATE DATABASE bench_r$round"
      out="$("$BIN/tools/bench/telemetry-bench-compare" --mode ingest --system influx \
        --influx_db "bench_r$round" "${common[@]}")" ;;
    pg)
      out="$("$BIN/tools/bench/telemetry-bench-compare" --mode ingest --system pg \
        --pg_table "bench_readings_r$round" "${common[@]}")" ;;
  esac
  after="$(busy_s)"
  k1="$(ticks "$(kafka_pid)")"
  /usr/bin/python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["round"]=int(sys.argv[4]); r["system"]=sys.argv[5]; r["busy_s"]=float(sys.argv[3])-float(sys.argv[2]); r["kafka_cpu_s"]=int(sys.argv[6])/100; print(json.dumps(r))' \
    "$out" "$before" "$after" "$round" "$sys" "$((k1 - k0))"
}
systems=(platform influx pg)
for round in $(seq 1 "$ROUNDS"); do  # the platform's tenants, created here (not in a subshell)
  keys=()
  for _ in $(seq 1 "$TENANTS"); do keys+=("$(new_key "r$round")"); done
  KEYS[$round]="$(IFS=,; echo "${keys[*]}")"
done
INGEST="$OUT/ingest.jsonl"
: >"$INGEST"
for round in $(seq 1 "$ROUNDS"); do
  for j in 0 1 2; do
    sys="${systems[$(( (j + round - 1) % 3 ))]}"
    log "ingest round $round: $sys"
    ingest_one "$sys" "$round" | tee -a "$INGEST" >&2
  done
done

# --- bytes at rest ---------------------------------------------------------
log "waiting for InfluxDB to compact its data (cold after 10 s)"
sleep 20
influx_bytes="$(du -s -B1 "$OUT/influx/data" "$OUT/influx/wal" | awk '{s+=$1} END {print s}')"
platform_bytes="$(psql "$TELEMETRY_PG_PRIMARY" -Atc "SELECT sum(pg_total_relation_size(c.oid))
  FROM pg_class c WHERE c.relkind = 'r' AND (c.relname LIKE 'raw_readings_d%'
  OR c.relname IN ('agg_1m', 'agg_1m_seg', 'agg_1h', 'agg_1h_sensor', 'series'))")"
pg_bytes="$(psql "$TELEMETRY_PG_PRIMARY" -Atc "SELECT sum(pg_total_relation_size(c.oid))
  FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'bench_readings_r%'")"

# --- the platform's rollup compaction, as the writer does it hourly ---------
# Every hour that ended at least an hour ago (the newest stays in arrival
# order, as it would in steady state). After the bytes at rest: a rewrite
# leaves the old rows' space to vacuum, which the next hour's rows reuse in
# steady state but which all 23 hours at once would count double here.
# The platform's reads before the rewrite too, for a same-run comparison.
log "platform reads before compaction: $REPS repetitions"
READS_BEFORE="$("$BIN/tools/bench/telemetry-bench-compare" --mode reads --systems platform \
  --api_keys "${KEYS[1]}" --reps "$REPS" --tenant_reps "$TENANT_REPS" "${common[@]}")"
log "compacting the platform's closed rollup hours"
COMPACTION="$("$BIN/tools/admin/telemetry-admin" compact-rollups --older_than_s 3600)"
log "$COMPACTION"
# What autovacuum does after the rewrite (the dead old rows are 23 hours'
# worth at once here; in steady state one hour's).
psql "$TELEMETRY_PG_PRIMARY" -qc "VACUUM agg_1m" >/dev/null
# The warm tier (issue 16): the same closed hours' raw rows packed into per-series segments, as
# the writer does with --pack_raw, then the packed days' partitions emptied. Timed with the
# machine's busy CPU (packer + Postgres + its standby's replay).
log "packing the platform's closed raw hours"
busy0="$(busy_s)"
PACKING="$("$BIN/tools/admin/telemetry-admin" pack-raw --older_than_s 3600)"
PACKING="$PACKING busy_s=$(echo "$(busy_s) - $busy0" | bc)"
log "$PACKING"
psql "$TELEMETRY_PG_PRIMARY" -qc "VACUUM raw_readings" >/dev/null
# Bytes at rest after packing, by part: k=v pairs for the report.
PACKED_BYTES="$(psql "$TELEMETRY_PG_PRIMARY" -Atc "SELECT string_agg(k || '=' || v, ' ') FROM (
  SELECT CASE WHEN c.relname LIKE 'raw_readings_seg_d%' THEN 'raw_segments'
              WHEN c.relname LIKE 'raw_readings_d%' THEN 'raw_rows' ELSE c.relname END AS k,
         sum(pg_total_relation_size(c.oid)) AS v
  FROM pg_class c WHERE c.relkind = 'r' AND (c.relname LIKE 'raw_readings_d%'
    OR c.relname LIKE 'raw_readings_seg_d%'
    OR c.relname IN ('agg_1m', 'agg_1m_seg', 'agg_1h', 'agg_1h_sensor', 'series'))
  GROUP BY 1
  UNION ALL SELECT 'segment_readings', coalesce(sum(n), 0) FROM raw_readings_seg) x")"
log "after packing: $PACKED_BYTES"
# The Parquet archive (issue 17) of the same packed hours, as telemetry-export writes it: its
# bytes per reading against InfluxDB's bytes at rest on the same data.
log "archiving the packed hours to Parquet"
busy0="$(busy_s)"
ARCHIVE="$("$BIN/tools/admin/telemetry-admin" archive --archive_root "$OUT/archive" | tail -n 1)"
ARCHIVE="$ARCHIVE | busy_s=$(echo "$(busy_s) - $busy0" | bc) all_bytes=$(du -sb "$OUT/archive" | cut -f1)"
log "$ARCHIVE"
log "platform reads after compaction: $REPS repetitions"
READS_AFTER="$("$BIN/tools/bench/telemetry-bench-compare" --mode reads --systems platform \
  --api_keys "${KEYS[1]}" --reps "$REPS" --tenant_reps "$TENANT_REPS" "${common[@]}")"

psql "$TELEMETRY_PG_PRIMARY" -qc "ANALYZE bench_readings_r1" -c "ANALYZE agg_1m" >/dev/null

# --- reads, one client, interleaved ----------------------------------------
log "reads: $REPS repetitions (tenant-wide aggregate: $TENANT_REPS)"
READS="$("$BIN/tools/bench/telemetry-bench-compare" --mode reads --api_keys "${KEYS[1]}" \
  --influx_db bench_r1 --pg_table bench_readings_r1 --reps "$REPS" --tenant_reps "$TENANT_REPS" \
  "${common[@]}")"
echo "$READS" >&2

# --- concurrent reads while each system ingests at half its maximum -------
CONC="$OUT/concurrent.jsonl"
: >"$CONC"
load_s=$(( 2 * CONC_SECONDS + 4 ))
# The same background load for every system (the reads are compared under equal work): half the
# slowest system's maximum from round 1. Until session 7 each system ran at half its own maximum.
rate="$(/usr/bin/python3 -c 'import json,sys
rates = []
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["round"] == 1:
        secs = r["seconds"] + max(r.get("queryable_ms", 0), 0) / 1000
        rates.append(r["sent"] / secs / 2)
print(int(min(rates)))' "$INGEST")"
for sys in platform influx pg; do
  log "concurrent reads on $sys while it ingests at $rate readings/s"
  # The load's event time spans (readings per series) × interval: start it that far back (and
  # an hour more), so that none of it lies in the future, which ingest refuses (until session 7
  # the quick profile's load reached past now and ~10 % of it was rejected).
  # Each of the GEN_WORKERS generators has a share of the devices and of the rate: the one with
  # the fewest devices runs ahead.
  span_s=$(( (rate * load_s / (GEN_WORKERS * (DEVICES / GEN_WORKERS) * SENSORS) + 1) * INTERVAL_S + 3600 ))
  case "$sys" in
    platform)
      "$BIN/tools/loadgen/telemetry-loadgen" --api_keys "$(new_key load)" --devices "$DEVICES" \
        --sensors "$SENSORS" --string_sensors "$STRING_SENSORS" --rate "$rate" \
        --duration_s "$load_s" --concurrency "$GEN_WORKERS" --batch 1000 --interval_ms $((INTERVAL_S * 1000)) \
        --start_ago_s "$span_s" --query '' >"$OUT/load-$sys.out" 2>&1 &
      ;;
    influx)
      influx_q "CREATE DATABASE bench_load"
      "$BIN/tools/bench/telemetry-bench-compare" --mode ingest --system influx --influx_db bench_load \
        --rate "$rate" --duration_s "$load_s" "${common[@]}" >"$OUT/load-$sys.out" 2>&1 &
      ;;
    pg)
      "$BIN/tools/bench/telemetry-bench-compare" --mode ingest --system pg --pg_table bench_readings_load \
        --rate "$rate" --duration_s "$load_s" "${common[@]}" >"$OUT/load-$sys.out" 2>&1 &
      ;;
  esac
  load_pid=$!
  sleep 2
  for clients in 8 32; do
    "$BIN/tools/bench/telemetry-bench-compare" --mode concurrent --system "$sys" --clients "$clients" \
      --seconds "$CONC_SECONDS" --api_keys "${KEYS[1]}" --influx_db bench_r1 \
      --pg_table bench_readings_r1 "${common[@]}" | tee -a "$CONC" >&2
  done
  wait "$load_pid" || log "the background load on $sys reported errors (see $OUT/load-$sys.out)"
  tail -n 1 "$OUT/load-$sys.out" | tee "$OUT/load-$sys.json" >&2
done

# --- report ------------------------------------------------------------------
# The Kafka JVM's memory (now, peak) and its log on disk (it is not in the bytes at rest).
KAFKA_MEM="$(kafka_rss_mib) $(du -sb "$TELEMETRY_LOCAL_DIR/kafka/data" | cut -f1)"
mkdir -p docs/benchmarks
stamp="$(date -u +%Y%m%d-%H%M)"
OUT="$OUT" /usr/bin/python3 - "$PROFILE" "$INGEST" "$READS" "$CONC" "$influx_bytes" "$platform_bytes" "$pg_bytes" \
  "docs/benchmarks/compare-$stamp-$PROFILE.json" \
  "$TENANTS" "$DEVICES" "$SENSORS" "$STRING_SENSORS" "$INTERVAL_S" "$HOURS" "$DUPLICATES" "$LATE" \
  "$REPS" "$TENANT_REPS" "$CONC_SECONDS" "$ROUNDS" "$COMPACTION" "$READS_BEFORE" "$READS_AFTER" \
  "$KAFKA_MEM" "$PACKING" "$PACKED_BYTES" "$ARCHIVE" <<'PY' | tee -a docs/benchmarks.md
import datetime, json, os, subprocess, sys
(profile, ingest_file, reads_json, conc_file, influx_b, platform_b, pg_b, json_out, tenants, devices,
 sensors, string_sensors, interval_s, hours, dups, late, reps, tenant_reps, conc_s, rounds,
 compaction, reads_before_json, reads_after_json, kafka_mem, packing, packed_bytes,
 archive_line) = sys.argv[1:28]
pack = dict(kv.split("=") for kv in packing.split())
packed = {k: int(v) for k, v in (kv.split("=") for kv in packed_bytes.split())}
kafka_rss, kafka_peak, kafka_log_b = (int(x) for x in kafka_mem.split())
reads_before, reads_after = json.loads(reads_before_json), json.loads(reads_after_json)
comp = dict(kv.split("=") for kv in compaction.split())
sh = lambda c: subprocess.run(["sh", "-c", c], capture_output=True, text=True).stdout.strip()
ingest = [json.loads(l) for l in open(ingest_file)]
reads = json.loads(reads_json)
conc = [json.loads(l) for l in open(conc_file)]
names = {"platform": "platform (gRPC → Kafka → writer → Postgres + Redis)",
         "influx": "InfluxDB 1.6, line protocol, 5,000 per request",
         "pg": "bare Postgres: COPY → stage → INSERT … ON CONFLICT, 10,000 per batch"}
short = {"platform": "platform", "influx": "InfluxDB", "pg": "Postgres"}
stored = {"influx": int(influx_b), "platform": int(platform_b), "pg": int(pg_b)}
rows = {}
for r in ingest:
    s = r["system"]
    if s == "platform":
        secs = r["seconds"] + max(r["queryable_ms"], 0) / 1000  # until everything is queryable
        client = r.get("client_cpu_s", 0)
    else:
        secs, client = r["seconds"], r["client_cpu_s"]
    rate = r["unique"] / secs
    server_us = max(r["busy_s"] - client, 0) / r["sent"] * 1e6
    rows.setdefault(s, []).append({"round": r["round"], "unique_per_s": rate, "server_us": server_us,
                                   "unique": r["unique"], "sent": r["sent"], "seconds": secs,
                                   "kafka_us": r.get("kafka_cpu_s", 0) / r["sent"] * 1e6,
                                   "kafka_share": r.get("kafka_cpu_s", 0) / secs})
def best(s):
    return max(rows[s], key=lambda x: x["unique_per_s"])
total_unique = {s: sum(x["unique"] for x in rows[s]) for s in rows}
p = best("platform")
now = datetime.datetime.utcnow()
print(f"""
## Side by side with InfluxDB and bare Postgres, {now:%Y-%m-%d %H:%M} UTC ({profile} profile)

Machine: {sh("lscpu | sed -n 's/^Model name: *//p'")}, {sh('nproc')} cores; every server and client on
this machine (the platform's Postgres also streams to a hot standby, which is on it too).
Versions: {sh('influxd version')}; {sh('psql --version')}; platform at {sh('git describe --always --dirty')}.
Data: {tenants} tenants × {devices} devices × {sensors} sensors ({string_sensors} of them strings), one reading
per {interval_s} s over {hours} h, {float(dups):.0%} exact duplicates, {float(late):.1%} late; seeded, the same readings
for every system. Command: `{('QUERY_ARGS=' + repr(os.environ['QUERY_ARGS']) + ' ') if os.environ.get('QUERY_ARGS') else ''}bash scripts/bench-compare.sh{' --quick' if profile == 'quick' else ''}`.

### Ingest ({rounds} round(s), systems alternating; best round shown)

| system | unique readings/s | server CPU µs/reading | bytes/reading at rest | readings/s ÷ platform's |
|---|---:|---:|---:|---:|""")
for s in ("platform", "influx", "pg"):
    if s not in rows:
        continue
    b = best(s)
    print(f"| {names[s]} | {b['unique_per_s']:,.0f} | {b['server_us']:.2f} | "
          f"{stored[s] / total_unique[s]:.1f} | {b['unique_per_s'] / p['unique_per_s']:.2f} |")
print("""
Readings/s: unique readings ÷ time until the last was stored (the platform: until a STRONG read
with the consistency token of the last write returns, i.e. queryable). Server CPU: busy time of
the whole machine during the run minus the load client's own CPU, per reading sent. At rest: the
platform's raw partitions, rollups (agg_1m, agg_1m_seg, agg_1h, agg_1h_sensor) and series table on the
primary (the standby holds a second copy; Kafka's log is not counted); Postgres: the table and its
primary key; InfluxDB: the disk blocks of its data and WAL directories after compaction (its
series file is preallocated sparse, so apparent sizes would overstate it).""")
print(f"""
Apache Kafka (one JVM, broker and controller, heap 512 MiB–1 GiB) is part of the platform's server
CPU above: {p['kafka_us']:.2f} µs/reading in the platform's best round ({100 * p['kafka_share']:.0f} % of a core
while it ran). Its resident memory at the end of the run {kafka_rss:,} MiB (peak {kafka_peak:,} MiB);
its log on disk {kafka_log_b / total_unique['platform']:.1f} bytes per unique reading the platform took (retention:
7 days; not in the bytes at rest above).""")
seg_readings = max(packed.get("segment_readings", 0), 1)
parts = ["raw_rows", "raw_segments", "agg_1m", "agg_1m_seg", "agg_1h", "agg_1h_sensor", "series"]
total_packed = sum(packed.get(k, 0) for k in parts)
print(f"""
### The warm tier: raw hours packed into segments

After the ingest rounds and the rollup compaction below, `telemetry-admin pack-raw --older_than_s
3600` packed the closed raw hours (as the writer does with `--pack_raw`) and emptied the packed
days' partitions: {int(pack['hours'])} hours, {int(pack['readings']):,} readings into {int(pack['segments']):,} segments in
{float(pack['seconds']):.1f} s (**{float(pack['readings_per_s']):,.0f} readings/s**), {float(pack['busy_s']) / max(int(pack['readings']), 1) * 1e6:.2f} µs of machine CPU per reading
(packer, Postgres and the standby's replay). Bytes at rest on the primary afterwards, over the
{total_unique['platform']:,} unique readings the platform took ({seg_readings:,} of them in segments):

| part | bytes | bytes/reading |
|---|---:|---:|""")
for k in parts:
    v = packed.get(k, 0)
    per = v / seg_readings if k == "raw_segments" else v / total_unique["platform"]
    label = {"raw_segments": "raw segments (per packed reading)", "raw_rows": "raw rows (the open hour, late rows)"}.get(k, k)
    print(f"| {label} | {v:,} | {per:.2f} |")
print(f"| **total** (before packing: {stored['platform'] / total_unique['platform']:.1f}; InfluxDB: {stored['influx'] / total_unique['influx']:.1f}) | {total_packed:,} | **{total_packed / total_unique['platform']:.2f}** |")
# "archived N readings (B bytes, X bytes/reading) in S s: R readings/s | busy_s=C all_bytes=A"
import re
m = re.match(r"archived (\d+) readings \((\d+) bytes.*?in ([\d.]+) s.*\| busy_s=([\d.]+) all_bytes=(\d+)", archive_line)
if m:
    a_n, a_bytes, a_s, a_busy, a_all = int(m[1]), int(m[2]), float(m[3]), float(m[4]), int(m[5])
    influx_per = stored["influx"] / total_unique["influx"]
    print(f"""
### The Parquet archive of the packed hours (issue 17)

`telemetry-admin archive` (what telemetry-export runs) wrote the packed hours to Parquet in a
local directory: {a_n:,} readings in {a_s:.1f} s ({a_n / max(a_s, 1e-9):,.0f} readings/s, {a_busy / max(a_n, 1) * 1e6:.2f} µs of machine CPU a
reading). **{a_bytes / max(a_n, 1):.2f} bytes a reading** in its readings files ({a_bytes:,} bytes; with the
last-reading files and directories {a_all:,} bytes, {a_all / max(a_n, 1):.2f}) against InfluxDB's
{influx_per:.2f} bytes a reading at rest on the same data in this run: a ratio of
**{(a_bytes / max(a_n, 1)) / influx_per:.2f}** (goal: at most 1).""")
else:
    print(f"\n(The archive step printed no summary: `{archive_line}`.)")
print(f"""
Before the reads, the platform's closed hours of 1-minute rollups were packed into one segment
per series and hour (agg_1m_seg; until session 6 they were rewritten in series order instead)
(`telemetry-admin compact-rollups --older_than_s 3600`, what the writer does on its own about an
hour after each hour ends; off during the ingest runs, which replay 24 h in minutes):
{int(comp['hours'])} of the data set's {hours} hours, {int(comp['rows']):,} rows in {float(comp['seconds']):.1f} s including the VACUUM after
(an hour of the data set that had not ended an hour before stays in arrival order, as the newest
hour would in steady state). The platform's reads alone (not interleaved with the
other systems), one client, {reps} repetitions each, before and after that compaction
(p50 / p95 / p99 ms; the same seeded draws):

| read | before | after |
|---|---:|---:|""")
after_by_read = {r["read"]: r["systems"]["platform"] for r in reads_after["reads"]}
for r in reads_before["reads"]:
    x, y = r["systems"]["platform"], after_by_read.get(r["read"])
    if y is not None:
        print(f"| {r['name']} | {x['p50_ms']:.2f} / {x['p95_ms']:.2f} / {x['p99_ms']:.2f} | "
              f"{y['p50_ms']:.2f} / {y['p95_ms']:.2f} / {y['p99_ms']:.2f} |")
print(f"""
### Reads, one client, interleaved ({reps} repetitions; the tenant-wide aggregate {tenant_reps})

Each repetition draws a random tenant, device, numeric sensor and time, then runs the read on every
system in rotating order. The platform answers through its gRPC query service (latest values:
EVENTUAL, from the Redis cache; the rest STRONG, from the primary, aggregates from rollups);
InfluxDB through InfluxQL over HTTP; Postgres by SQL on the raw table. Ratio: the other system's
time ÷ the platform's for the same parameters, median over repetitions (> 1: the platform was
faster).

| read | platform p50 / p95 / p99 ms | InfluxDB p50 / p95 / p99 ms | Postgres p50 / p95 / p99 ms | InfluxDB ÷ platform | Postgres ÷ platform |
|---|---:|---:|---:|---:|---:|""")
fmt = lambda x: f"{x['p50_ms']:.2f} / {x['p95_ms']:.2f} / {x['p99_ms']:.2f}" + (f" ({x['errors']} errors)" if x["errors"] else "")
for r in reads["reads"]:
    sy = r["systems"]
    print(f"| {r['name']} | {fmt(sy['platform'])} | {fmt(sy['influx'])} | {fmt(sy['pg'])} | "
          f"{r['ratios'].get('influx_over_platform', 0):.2f} | {r['ratios'].get('pg_over_platform', 0):.2f} |")
print(f"""
### Concurrent reads while each system ingests the same background load ({conc_s} s per level)

Clients cycle through latest, 1 h range, playback and 24 h at 1 min (random parameters). The
background load is the same for every system: half the slowest system's ingest rate (since
session 7; before, each ran at half its own maximum); the table below shows what each took.

| system | clients | queries/s | p50 ms | p99 ms | errors |
|---|---:|---:|---:|---:|---:|""")
for c in conc:
    print(f"| {short[c['system']]} | {c['clients']} | {c['qps']:,.0f} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | {c['errors']} |")
# What each system's background load delivered: the loads must be equal to compare the reads.
loads = {}
for s in ("platform", "influx", "pg"):
    try:
        loads[s] = json.loads(open(os.path.join(os.environ["OUT"], f"load-{s}.json")).read())
    except (OSError, ValueError):
        continue
if loads:
    print()
    print("| background load | readings sent | accepted | refused or failed |")
    print("|---|---:|---:|---:|")
    for s, l in loads.items():
        sent = l.get("sent", 0)
        refused = l.get("rejected", 0) + l.get("errors", 0) + l.get("failed_calls", 0)
        print(f"| {short[s]} | {sent:,} | {l.get('accepted', sent - refused):,} | {refused:,} |")
result = {"date": now.isoformat() + "Z", "profile": profile, "ingest": ingest, "bytes_at_rest": stored,
          "packing": pack, "packed_bytes": packed, "archive": archive_line,
          "reads": reads["reads"], "concurrent": conc, "background_loads": loads,
          "rollup_compaction": comp,
          "platform_reads_before_compaction": reads_before["reads"],
          "platform_reads_after_compaction": reads_after["reads"],
          "data_set": {"tenants": int(tenants), "devices": int(devices), "sensors": int(sensors),
                       "string_sensors": int(string_sensors), "interval_s": int(interval_s),
                       "hours": int(hours), "duplicates": float(dups), "late": float(late)}}
with open(json_out, "w") as f:
    json.dump(result, f, indent=1)
print(f"\nRaw JSON: `{json_out}`.\n")
PY
