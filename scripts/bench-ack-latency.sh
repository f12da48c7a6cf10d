#!/usr/bin/env bash
# Ack latency against offered load (not a test): a fresh stack, the whole
# pipeline running (ingest, writer, query, Apache Kafka, Postgres primary +
# standby, Redis), and the load generator at fixed rates, one after another.
# Appends a table to docs/benchmarks.md.
#
#   bash scripts/bench-ack-latency.sh      (RATES="5000 25000 50000" SECONDS_EACH=30)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
RATES="${RATES:-5000 25000 50000}"
SECONDS_EACH="${SECONDS_EACH:-30}"
DEVICES="${DEVICES:-1000}"
SENSORS="${SENSORS:-8}"

# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh

key() { "$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "ack-$1-$(date +%s%N)" | sed -n 's/^api_key=//p'; }
# shellcheck disable=SC2086  # WRITER_ARGS: extra writer flags, for A/B runs
"$BUILD_DIR/services/writer/telemetry-writer" --http_port=0 ${WRITER_ARGS:-} >"$OUT/writer.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/ingest/telemetry-ingest" --http_port=0 >"$OUT/ingest.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/query/telemetry-query" --http_port=0 >"$OUT/query.log" 2>&1 &
pids+=($!)
sleep 5

results="$OUT/results.txt"
: >"$results"
broker_pid="$(kafka_pid)"
first=1
for rate in $RATES; do
  # Each rate from a settled stack (not the previous rate's autovacuum and
  # checkpoint); the broker keeps what the earlier rates produced.
  ((first)) || settle
  first=0
  echo "== $rate readings/s for $SECONDS_EACH s" >&2
  b0="$(ticks "$broker_pid")"
  r="$("$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$(key "$rate")" --devices "$DEVICES" \
    --sensors "$SENSORS" --rate "$rate" --duration_s "$SECONDS_EACH" --batch 500 --concurrency 4 \
    --duplicates 0.01 --interval_ms 1000 --start_ago_s 7200 | tail -n 1)"
  b1="$(ticks "$broker_pid")"
  echo "$r" >&2
  echo "$rate $((b1 - b0)) $(kafka_rss_mib | tr ' ' ,) $r" >>"$results"
done

/usr/bin/python3 - "$results" "$SECONDS_EACH" "$DEVICES" "$SENSORS" <<'PY' | tee -a docs/benchmarks.md
import datetime, json, subprocess, sys
results, seconds, devices, sensors = sys.argv[1:5]
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
rows = []
for line in open(results):
    rate, broker_ticks, rss, js = line.split(" ", 3)
    r = json.loads(js)
    r["broker_cpu_s"] = int(broker_ticks) / 100
    r["broker_rss_mib"], r["broker_peak_rss_mib"] = (int(x) for x in rss.split(","))
    rows.append((int(rate), r))
print(f"""
## Ack latency against offered load, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC

Machine: {cpu}, 2 cores; a fresh stack with the whole pipeline on this machine (ingest, writer,
query, Apache Kafka (one JVM, heap 512 MiB–1 GiB), PostgreSQL primary + standby, Redis, the load
generator). Command:
`bash scripts/bench-ack-latency.sh` ({devices} devices × {sensors} sensors, requests of 500
readings from 4 workers, 1 % duplicates, {seconds} s per rate, the rates one after another;
since 2026-11-22 20:39 each rate after the first starts from a settled stack: VACUUM, CHECKPOINT,
standby caught up). "Broker CPU" is the Kafka JVM's CPU time during the rate's run as a share of
one core; "broker RSS" its resident memory after the run (and its peak so far).

| offered readings/s | achieved | ack p50 ms | ack p99 ms | last ack → queryable ms | failed calls | broker CPU | broker RSS MiB (peak) |
|---:|---:|---:|---:|---:|---:|---:|---:|""")
for rate, r in rows:
    print(f"| {rate:,} | {r['readings_per_s']:,.0f} | {r['ack_p50_ms']:.1f} | {r['ack_p99_ms']:.1f} | "
          f"{r['queryable_ms']:,.0f} | {r['failed_calls']} | "
          f"{100 * r['broker_cpu_s'] / float(seconds):.0f} % | {r['broker_rss_mib']} ({r['broker_peak_rss_mib']}) |")
print()
print("Raw JSON: " + "; ".join(f"{rate}: `{json.dumps(r)}`" for rate, r in rows))
PY
