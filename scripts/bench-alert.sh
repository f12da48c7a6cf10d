#!/usr/bin/env bash
# The alert service under load (not a test): a fresh stack of its own, ingest +
# writer + alert running, a fleet of 1,250 devices x 8 sensors (10,000 series)
# written in real time at RATE readings/s, 1,000 threshold rules covering every
# series once, a probe rule whose spikes measure detection latency (write
# acknowledged -> webhook POST received), and beside it in the same run the
# same 1,000 rules as SQL queries on the primary every 10 s. Appends the
# figures to docs/benchmarks.md.
#
#   bash scripts/bench-alert.sh          (RATE=50000 DURATION=60 LATENESS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
RATE="${RATE:-50000}"
DURATION="${DURATION:-60}"
LATENESS="${LATENESS:-5}"
DEVICES=1250
SENSORS=8

# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh

tenant="$("$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "alert-bench-$(date +%s%N)")"
key="$(sed -n 's/^api_key=//p' <<<"$tenant")"
tenant_id="$(sed -n 's/^tenant_id=//p' <<<"$tenant")"
alert_http=19104
"$BUILD_DIR/services/writer/telemetry-writer" --http_port=0 >"$OUT/writer.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/ingest/telemetry-ingest" --http_port=0 >"$OUT/ingest.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/alert/telemetry-alert" --http_port="$alert_http" \
  --allowed_lateness_s="$LATENESS" >"$OUT/alert.log" 2>&1 &
alert_pid=$!
pids+=($alert_pid)
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$alert_http/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

# The fleet in real time: interval = series / rate, event time starting now.
interval_ms=$((DEVICES * SENSORS * 1000 / RATE))
# It runs past the measurement (rule creation, the last windows): a fleet that
# stops leaves its partitions idle, and idle partitions are decided by the
# wall clock (idle_after later), which is not what this measures.
fleet_s=$((DURATION + 100))
echo "== fleet: $DEVICES x $SENSORS series, one reading each per $interval_ms ms ($RATE/s) for $fleet_s s" >&2
"$BUILD_DIR/tools/loadgen/telemetry-loadgen" --api_keys "$key" --query= --devices "$DEVICES" \
  --sensors "$SENSORS" --rate "$RATE" --duration_s "$fleet_s" --batch 500 \
  --concurrency 4 --interval_ms "$interval_ms" --start_ago_s 0 >"$OUT/loadgen.json" 2>"$OUT/loadgen.log" &
loadgen=$!
pids+=($loadgen)
sleep 5  # the fleet's series exist before the measurement starts
cpu_snapshot >"$OUT/cpu0"
"$BUILD_DIR/tools/bench/telemetry-bench-alert" --api_key "$key" --tenant_id "$tenant_id" \
  --pg "$TELEMETRY_PG_PRIMARY" --alert_pid "$alert_pid" --alert_http_port "$alert_http" \
  --lateness_s "$LATENESS" --duration_s "$DURATION" >"$OUT/bench.json" 2>"$OUT/bench.log" || {
  echo "telemetry-bench-alert failed (probes missing?):" >&2
  cat "$OUT/bench.json" "$OUT/bench.log" >&2
}
cpu_snapshot >"$OUT/cpu1"
wait "$loadgen" || true

/usr/bin/python3 - "$OUT/bench.json" "$OUT/loadgen.json" "$RATE" "$DURATION" "$LATENESS" \
  "$OUT/cpu0" "$OUT/cpu1" <<'PY' | tee -a docs/benchmarks.md
import datetime, json, subprocess, sys
bench_path, loadgen_path, rate, duration, lateness, cpu0, cpu1 = sys.argv[1:8]
b = json.loads(open(bench_path).read().strip().splitlines()[-1])
lines = [l for l in open(loadgen_path).read().strip().splitlines() if l.startswith("{")]
lg = json.loads(lines[-1]) if lines else {}
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
def snap(path):
    out = {}
    for line in open(path):
        parts = line.split(" ", 2)
        if len(parts) == 3:
            out[parts[0]] = (int(parts[1]), parts[2].strip())
    return out
s0, s1 = snap(cpu0), snap(cpu1)
by = {}
for pid, (t1, cmd) in s1.items():
    t0 = s0.get(pid, (0, cmd))[0]
    name = "postgres" if "postgres" in cmd else cmd.split()[0].split("/")[-1]
    by[name] = by.get(name, 0) + (t1 - t0) / 100
print(f"""
## Alert service under load, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC

`bash scripts/bench-alert.sh` (RATE={rate}, DURATION={duration}, LATENESS={lateness}) on this
machine ({cpu}, 2 cores shared by every process below). 1,000 threshold rules (10-second avg
windows) cover 10,000 series (1,250 devices x 8 sensors) once each; the fleet writes in real
time; a probe rule (1-second max window, webhook) gets a spike every 2 s.

| | |
|---|---|
| fleet offered / achieved (loadgen) | {rate} / {lg.get('readings_per_s', 'n/a')} readings/s |
| readings evaluated by the alert service | {b['alert_readings_per_s']:.0f}/s ({b['alert_readings']:.0f} in {b['measured_s']} s) |
| alert service CPU | {b['alert_cpu_s']:.1f} s: **{b['alert_cpu_us_per_reading']:.2f} us a reading**, {b['alert_readings_per_cpu_s']:.0f} readings per CPU-second |
| detection, write ack -> webhook received | p50 {b['ack_to_webhook_p50_s']:.3f} s, p99 {b['ack_to_webhook_p99_s']:.3f} s ({b['probes']} probes, {b['probes_missing']} missing) |
| detection after window end + lateness | p50 {b['after_window_end_plus_lateness_p50_s']:.3f} s, p99 {b['after_window_end_plus_lateness_p99_s']:.3f} s |
| the same rules as SQL on the primary, every 10 s | {b['sql_rounds']} rounds: p50 {b['sql_round_p50_s']:.3f} s, max {b['sql_round_max_s']:.3f} s a round; Postgres CPU {b['sql_cpu_s_per_round']:.3f} s a round ({b['sql_cpu_us_per_reading']:.2f} us per reading covered) |
| SQL detection latency (expected) | period / 2 + round + writer lag ~ {5 + b['sql_round_p50_s']:.1f} s on average, {10 + b['sql_round_max_s']:.1f} s at worst |

CPU-seconds per process over the measurement: {", ".join(f"{k} {v:.1f}" for k, v in sorted(by.items(), key=lambda kv: -kv[1]))}.
""")
PY
