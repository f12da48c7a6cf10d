#!/usr/bin/env bash
# Ingress benchmark (not a test; issue 18 "Performance"): the two front doors
# that feed IngestCore besides gRPC, each beside its baseline in the same run.
#
#  1. Line protocol. One line-protocol file (DEVICES devices × 8 float fields,
#     one line per device and second, precision=s) posted, by the same client
#     (4 HTTP/1.1 keep-alive connections, 5,000 readings a request, 429/503
#     retried after Retry-After), to a private InfluxDB 1.6 and to
#     telemetry-ingest --influx_listen; and, as the gRPC baseline,
#     telemetry-loadgen with the same number of readings (DEVICES × 8 sensors,
#     batch 5,000, 4 workers). The platform's clock stops when every reading is
#     stored (the writer's writer_readings_applied_total, checked by a count of
#     the tenant's rows in Postgres); InfluxDB's at its last 204. CPU: the server
#     processes' own CPU from /proc (platform: ingest + writer + the Kafka JVM +
#     both Postgres servers with their children; InfluxDB: influxd), per reading.
#  2. MQTT. Mosquitto alone: PUBLISHERS `mosquitto_pub -l -q 1` (one device
#     topic each) relay MQTT_MSGS JSON messages of 8 readings to one
#     `mosquitto_sub -q 1 -C N`, before the bridge ever connects. Then the
#     platform (telemetry-bridge → Kafka → writer → Postgres): (a) a fleet of
#     1,000 devices at 1 Hz for FLEET_S seconds (tests/clients/mqtt_fleet.py,
#     paho-mqtt, one connection): does it keep up, and the delay from a
#     message's scheduled publish to its readings being stored; (b) the same
#     mosquitto_pub publishers as the relay run, as fast as they go, clock
#     stopped when every reading is stored.
#
# Starts its own stack (deploy/local/up.sh in $TELEMETRY_BENCH_DIR, default
# /tmp/telemetry-bench-ingress-<uid>) and influxd on loopback; stops and removes
# everything on exit. Prints a Markdown table and one JSON line on stdout
# (progress on stderr); appends nothing.
#
#   bash scripts/bench-ingress.sh            full: 2,000,000 readings, 2 rounds; MQTT 150,000
#                                            messages, fleet 60 s   (about 5-6 minutes)
#   bash scripts/bench-ingress.sh --quick    400,000 readings, 1 round; 40,000 messages,
#                                            fleet 30 s             (about 3-4 minutes)
# Overrides: BUILD_DIR (build), SKIP_BUILD=1, LP_POINTS (seconds of data per device),
#   ROUNDS (line-protocol rounds), MQ_ROUNDS (relay and MQTT-max rounds, 2), MQTT_MSGS,
#   PUBLISHERS (8), FLEET_S, FLEET_DEVICES (1000), LP_ORDER (loadgen | time: see below).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
PROFILE=full
[[ "${1:-}" == --quick ]] && PROFILE=quick
DEVICES=1000 FIELDS=8 BODY_READINGS=5000 CONC=4
if [[ $PROFILE == full ]]; then
  LP_POINTS="${LP_POINTS:-250}" ROUNDS="${ROUNDS:-2}" MQTT_MSGS="${MQTT_MSGS:-150000}" FLEET_S="${FLEET_S:-60}"
else
  LP_POINTS="${LP_POINTS:-50}" ROUNDS="${ROUNDS:-1}" MQTT_MSGS="${MQTT_MSGS:-40000}" FLEET_S="${FLEET_S:-30}"
fi
PUBLISHERS="${PUBLISHERS:-8}" FLEET_DEVICES="${FLEET_DEVICES:-1000}"
LP_READINGS=$((DEVICES * FIELDS * LP_POINTS))
MQTT_MSGS=$((MQTT_MSGS / PUBLISHERS * PUBLISHERS))
log() { printf '[bench-ingress %4ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
STARTED_AT="$(date -u '+%Y-%m-%d %H:%M')"
DESCRIBE="$(git describe --always --dirty)"

# --- build (the shared lock: other sessions build in the same tree) --------
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  flock /tmp/telemetry-build.lock cmake --build "$BUILD_DIR" -j2 --target telemetry-ingest \
    telemetry-writer telemetry-bridge telemetry-admin telemetry-loadgen >/dev/null ||
    die "build failed (SKIP_BUILD=1 uses the binaries as they are)"
fi
grep -q 'CMAKE_BUILD_TYPE:STRING=Release' "$BUILD_DIR/CMakeCache.txt" ||
  log "WARNING: $BUILD_DIR is not a Release build"
for t in influxd mosquitto_pub mosquitto_sub curl psql; do
  command -v "$t" >/dev/null || die "$t not found (deploy/local/install-deps.sh --with-bench)"
done
PY="$(bash scripts/client-venv.sh)"  # paho-mqtt for the fleet

# --- a stack of its own ------------------------------------------------------
export TELEMETRY_LOCAL_DIR="${TELEMETRY_BENCH_DIR:-/tmp/telemetry-bench-ingress-$(id -u)}"
export TELEMETRY_PG_SHARED_BUFFERS="${TELEMETRY_PG_SHARED_BUFFERS:-2GB}"
deploy/local/down.sh --purge >/dev/null 2>&1 || true
OUT="$(mktemp -d /tmp/bench-ingress.XXXXXX)"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  deploy/local/down.sh --purge >/dev/null 2>&1 || true
  rm -rf "$OUT"
}
trap cleanup EXIT
log "starting the stack in $TELEMETRY_LOCAL_DIR"
# up.sh (at 88a5f4e) stops on a fresh state dir: its `sed ... "$PORTS_FILE" | tail` fails under
# pipefail when the ports file does not exist yet. An empty one gets it past that line.
mkdir -p "$TELEMETRY_LOCAL_DIR" && touch "$TELEMETRY_LOCAL_DIR/ports"
env_file="$(deploy/local/up.sh --build-dir "$BUILD_DIR" 2>"$OUT/up.log")" || { cat "$OUT/up.log" >&2; die "up.sh failed"; }
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
"$BUILD_DIR/tools/admin/telemetry-admin" migrate --dir db/migrations >/dev/null

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # wait_http URL: until it answers (any status), 30 s at most
  for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  die "$1 does not answer"
}
GRPC_PORT="$(free_port)" LP_PORT="$(free_port)" INGEST_HTTP="$(free_port)"
WRITER_HTTP="$(free_port)" BRIDGE_HTTP="$(free_port)"
INFLUX_PORT="$(free_port)" INFLUX_RPC_PORT="$(free_port)"

# Rollup compaction off: it would rewrite the replayed hours in the middle of a run.
"$BUILD_DIR/services/writer/telemetry-writer" --http_port="$WRITER_HTTP" --compact_interval_s=0 \
  >"$OUT/writer.log" 2>&1 &
pids+=($!); WRITER_PID=$!
"$BUILD_DIR/services/ingest/telemetry-ingest" --http_port="$INGEST_HTTP" --listen="127.0.0.1:$GRPC_PORT" \
  --influx_listen="127.0.0.1:$LP_PORT" >"$OUT/ingest.log" 2>&1 &
pids+=($!); INGEST_PID=$!

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
pids+=($!); INFLUX_PID=$!
wait_http "http://127.0.0.1:$INFLUX_PORT/ping"
wait_http "http://127.0.0.1:$LP_PORT/ping"
wait_http "http://127.0.0.1:$WRITER_HTTP/metrics"
sleep 4  # the writer joins its consumer group

# --- measuring ------------------------------------------------------------------
# Own CPU ticks of a process and of its children, live and reaped (a Postgres
# backend that exits moves its time into the postmaster's cutime/cstime).
tree_ticks() {
  local p s=0 t
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    t="$(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)"
    s=$((s + t))
  done
  echo "$s"
}
pg_pids() { # the postmasters of this stack (primary and standby)
  local f
  for f in "$TELEMETRY_LOCAL_DIR"/pg/*/postmaster.pid; do head -n 1 "$f"; done
}
KAFKA_PID="$(cat "$TELEMETRY_LOCAL_DIR/kafka/kafka.pid")"
MQTT_PID="$(cat "$TELEMETRY_LOCAL_DIR/mosquitto/mosquitto.pid")"
# cpu_snap: "ingest writer kafka postgres bridge mosquitto influxd" ticks
cpu_snap() {
  local bridge=0
  [[ -n "${BRIDGE_PID:-}" ]] && bridge="$(tree_ticks "$BRIDGE_PID")"
  # shellcheck disable=SC2046
  echo "$(tree_ticks "$INGEST_PID") $(tree_ticks "$WRITER_PID") $(tree_ticks "$KAFKA_PID")" \
    "$(tree_ticks $(pg_pids))" "$bridge $(tree_ticks "$MQTT_PID") $(tree_ticks "$INFLUX_PID")"
}
metric() { # metric PORT NAME: a counter's value on a service's /metrics
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {printf "%d\n", $2; f=1} END {if (!f) print 0}'
}
applied() { metric "$WRITER_HTTP" writer_readings_applied_total; }
now_s() { date +%s.%N; }
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f\n", a - b}'; }
# wait_applied BASE N [TIMEOUT]: until the writer has stored N new rows since BASE; prints the time
wait_applied() {
  local base="$1" n="$2" deadline=$(($(date +%s) + ${3:-600}))
  while (($(applied) - base < n)); do
    (($(date +%s) < deadline)) || { log "only $(($(applied) - base)) of $n stored after the timeout"; echo -1; return; }
    sleep 0.05
  done
  now_s
}
stored_rows() { # stored_rows TENANT_ID: the tenant's raw readings (rows and packed segments)
  psql "$TELEMETRY_PG_PRIMARY" -Atc "SELECT (SELECT count(*) FROM raw_readings r JOIN series s
    ON s.id = r.series_id WHERE s.tenant_id = $1) + (SELECT coalesce(sum(g.n), 0)
    FROM raw_readings_seg g JOIN series s ON s.id = g.series_id WHERE s.tenant_id = $1)"
}
settle() { # the previous run's leftovers (autovacuum, checkpoint, standby replay) done now
  psql "$TELEMETRY_PG_ADMIN" -qc "VACUUM (ANALYZE)" -c CHECKPOINT >/dev/null
  for _ in $(seq 1 120); do
    [[ "$(psql "$TELEMETRY_PG_ADMIN" -qAtc "SELECT count(*) FROM pg_stat_replication
      WHERE replay_lsn < pg_current_wal_lsn()")" == 0 ]] && break
    sleep 0.5
  done
}
declare -A TENANT_ID
new_tenant() { # new_tenant NAME: sets KEY (its API key) and TENANT_ID[NAME]; no quota in the way
  local out
  out="$("$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "$1" --rate 10000000 --burst 20000000)"
  TENANT_ID[$1]="$(sed -n 's/^tenant_id=//p' <<<"$out")"
  KEY="$(sed -n 's/^api_key=//p' <<<"$out")"
}
# result NAME key=value...: one JSON object per measurement in $OUT/results.jsonl
result() {
  /usr/bin/python3 -c 'import json,sys
r={"run":sys.argv[1]}
for kv in sys.argv[2:]:
    k,v=kv.split("=",1)
    try: r[k]=json.loads(v)
    except ValueError: r[k]=v
print(json.dumps(r))' "$@" | tee -a "$OUT/results.jsonl" >&2
}
cpu_fields() { # cpu_fields BEFORE AFTER: key=value of CPU seconds per process group
  local -a a b
  read -r -a a <<<"$1"; read -r -a b <<<"$2"
  local names=(ingest writer kafka postgres bridge mosquitto influxd) i
  for i in "${!names[@]}"; do printf 'cpu_%s=%s ' "${names[$i]}" "$(( b[i] - a[i] ))"; done
}

# --- part 1: line protocol --------------------------------------------------------
START_S=$(( $(date +%s) - 7200 ))
LINES_PER_BODY=$((BODY_READINGS / FIELDS))
# LP_ORDER=loadgen (default): the shape of telemetry-loadgen's requests, so that only the protocol
# differs: CONC groups of DEVICES / CONC devices (loadgen's workers), each group's lines time-major
# (all its devices at second 0, then 1, ...), the groups' bodies interleaved; a body of 5,000
# readings then holds ~2.5 points per series. LP_ORDER=time: the whole fleet second by second,
# one point per series in a body (every reading its own series block in the Kafka batch).
LP_ORDER="${LP_ORDER:-loadgen}"
log "writing the line-protocol file ($LP_ORDER order): $DEVICES devices × $FIELDS fields × $LP_POINTS s = $LP_READINGS readings"
/usr/bin/python3 - "$OUT/bench.lp" "$DEVICES" "$FIELDS" "$LP_POINTS" "$START_S" "$CONC" "$LINES_PER_BODY" "$LP_ORDER" <<'PY'
import sys
path, devices, fields, points, start, groups, per_body = sys.argv[1], *map(int, sys.argv[2:8])
order = sys.argv[8]
def line(d, i):
    vals = ",".join("s%d=%.3f" % (k, (d * 7 + i * 13 + k * 101) % 1000 / 10) for k in range(fields))
    return "bench,dev=d%04d %s %d\n" % (d, vals, start + i)
if order == "time":
    groups = 1
size = devices // groups
streams = [[line(d, i) for i in range(points) for d in range(g * size, (g + 1) * size)] for g in range(groups)]
with open(path, "w") as f:
    for b in range(0, len(streams[0]), per_body):
        for st in streams:
            f.writelines(st[b:b + per_body])
PY
cat >"$OUT/lp_post.py" <<'PY'
# lp_post.py URL AUTH FILE LINES_PER_BODY CONC: posts FILE in bodies of LINES_PER_BODY lines over
# CONC keep-alive connections; 429/503 retried after Retry-After. Prints one JSON line.
import http.client, json, queue, sys, threading, time, urllib.parse
url, auth, path, lines_per_body, conc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
lines = open(path, "rb").read().splitlines(keepends=True)
bodies = [b"".join(lines[i:i + lines_per_body]) for i in range(0, len(lines), lines_per_body)]
u = urllib.parse.urlsplit(url)
q = queue.Queue()
for b in bodies: q.put(b)
stats = {"requests": 0, "retries": 0, "failed": 0, "statuses": {}}
lock = threading.Lock()
def worker():
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if auth: headers["Authorization"] = auth
    while True:
        try: b = q.get_nowait()
        except queue.Empty: return
        for attempt in range(200):
            try:
                c.request("POST", u.path + "?" + u.query, body=b, headers=headers)
                r = c.getresponse(); body = r.read(); st = r.status
                after = float(r.getheader("Retry-After") or 0.2)
            except (OSError, http.client.HTTPException):
                c.close(); c = http.client.HTTPConnection(u.hostname, u.port, timeout=120); st, after = 0, 0.2
            with lock:
                stats["requests"] += 1
                stats["statuses"][str(st)] = stats["statuses"].get(str(st), 0) + 1
            if st in (200, 204): break
            if st in (0, 429, 503):
                with lock: stats["retries"] += 1
                time.sleep(min(after, 5)); continue
            with lock:
                stats["failed"] += 1
                if "first_error" not in stats: stats["first_error"] = "%d %s" % (st, body[:300])
            break
t0 = time.time()
ts = [threading.Thread(target=worker) for _ in range(conc)]
for t in ts: t.start()
for t in ts: t.join()
stats.update(bodies=len(bodies), seconds=round(time.time() - t0, 3))
print(json.dumps(stats))
PY

run_influx() { # run_influx ROUND
  local db="bench_r$1" c0 c1 t0 out
  curl -sf -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=CREATE DATABASE $db" >/dev/null
  c0="$(cpu_snap)"; t0="$(now_s)"
  out="$(/usr/bin/python3 "$OUT/lp_post.py" "http://127.0.0.1:$INFLUX_PORT/write?db=$db&precision=s" "" \
    "$OUT/bench.lp" "$LINES_PER_BODY" "$CONC")"
  c1="$(cpu_snap)"
  local t1 n
  t1="$(now_s)"
  n="$(curl -sf -G "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "db=$db" \
    --data-urlencode 'q=SELECT count(s0) FROM bench' | /usr/bin/python3 -c 'import json,sys
try: print(json.load(sys.stdin)["results"][0]["series"][0]["values"][0][1] * int(sys.argv[1]))
except Exception: print(-1)' "$FIELDS")"
  # shellcheck disable=SC2046
  result influx round="$1" readings="$LP_READINGS" stored="$n" seconds="$(diff_s "$t1" "$t0")" \
    client="$out" $(cpu_fields "$c0" "$c1")
}
run_platform_lp() { # run_platform_lp ROUND
  local name c0 c1 t0 t_ack t_stored base out
  name="lp-r$1-$(date +%s%N)"
  new_tenant "$name"
  settle
  base="$(applied)"; c0="$(cpu_snap)"; t0="$(now_s)"
  out="$(/usr/bin/python3 "$OUT/lp_post.py" "http://127.0.0.1:$LP_PORT/write?db=bench&precision=s" \
    "Token $KEY" "$OUT/bench.lp" "$LINES_PER_BODY" "$CONC")"
  t_ack="$(now_s)"
  t_stored="$(wait_applied "$base" "$LP_READINGS")"
  c1="$(cpu_snap)"
  # shellcheck disable=SC2046
  result platform_lp round="$1" readings="$LP_READINGS" stored="$(stored_rows "${TENANT_ID[$name]}")" \
    seconds="$(diff_s "$t_stored" "$t0")" ack_seconds="$(diff_s "$t_ack" "$t0")" \
    client="$out" $(cpu_fields "$c0" "$c1")
}
run_grpc() { # run_grpc ROUND
  local name c0 c1 t0 t_stored base out
  name="grpc-r$1-$(date +%s%N)"
  new_tenant "$name"
  settle
  base="$(applied)"; c0="$(cpu_snap)"; t0="$(now_s)"
  out="$("$BUILD_DIR/tools/loadgen/telemetry-loadgen" --ingest "127.0.0.1:$GRPC_PORT" --query '' \
    --api_keys "$KEY" --devices "$DEVICES" --sensors "$FIELDS" --total "$LP_READINGS" \
    --batch "$BODY_READINGS" --concurrency "$CONC" --interval_ms 1000 --start_ago_s 7200 \
    --deadline_ms 60000 2>"$OUT/loadgen.err" | tail -n 1)"
  t_stored="$(wait_applied "$base" "$LP_READINGS")"
  c1="$(cpu_snap)"
  # shellcheck disable=SC2046
  result grpc round="$1" readings="$LP_READINGS" stored="$(stored_rows "${TENANT_ID[$name]}")" \
    seconds="$(diff_s "$t_stored" "$t0")" client="$out" $(cpu_fields "$c0" "$c1")
}
# Warm-up, not measured: the first run on a fresh stack (JIT of the Kafka JVM, new partitions,
# empty caches) was up to a third slower than the same run later, whichever system it was.
log "warm-up: $((LP_READINGS / 4)) readings through gRPC and through line protocol, not measured"
new_tenant "warmup-$(date +%s%N)"
base="$(applied)"
"$BUILD_DIR/tools/loadgen/telemetry-loadgen" --ingest "127.0.0.1:$GRPC_PORT" --query '' --api_keys "$KEY" \
  --devices "$DEVICES" --sensors "$FIELDS" --total $((LP_READINGS / 4)) --batch "$BODY_READINGS" \
  --concurrency "$CONC" --interval_ms 1000 --start_ago_s 10800 >/dev/null 2>&1
head -n $((LP_READINGS / 4 / FIELDS)) "$OUT/bench.lp" >"$OUT/warmup.lp"
/usr/bin/python3 "$OUT/lp_post.py" "http://127.0.0.1:$LP_PORT/write?db=bench&precision=s" "Token $KEY" \
  "$OUT/warmup.lp" "$LINES_PER_BODY" "$CONC" >/dev/null
wait_applied "$base" $((LP_READINGS / 2)) >/dev/null
systems=(platform_lp grpc influx)
for round in $(seq 1 "$ROUNDS"); do
  for j in 0 1 2; do
    sys="${systems[$(( (j + round - 1) % 3 ))]}"
    log "line protocol, round $round: $sys"
    case "$sys" in
      platform_lp) run_platform_lp "$round" ;;
      grpc) run_grpc "$round" ;;
      influx) run_influx "$round" ;;
    esac
  done
done
kill -TERM "$INFLUX_PID" 2>/dev/null || true  # done with it: its compactions are not MQTT's cost
wait "$INFLUX_PID" 2>/dev/null || true

# --- part 2: MQTT -------------------------------------------------------------------
settle
PER_PUB=$((MQTT_MSGS / PUBLISHERS))
MQ_START_S=$(( $(date +%s) - PER_PUB - 3600 ))
log "writing $PUBLISHERS files of $PER_PUB JSON messages (8 readings each)"
/usr/bin/python3 - "$OUT" "$PUBLISHERS" "$PER_PUB" "$MQ_START_S" <<'PY'
import json, sys
out, pubs, n, start = sys.argv[1], *map(int, sys.argv[2:])
for p in range(pubs):
    with open("%s/mqtt-%d.jsonl" % (out, p), "w") as f:
        for i in range(n):
            f.write(json.dumps({"device_id": "pub-%d" % p, "timestamp": start + i,
                                "metrics": {"m%d" % k: round(p * 1000 + i + k / 10, 1) for k in range(8)}},
                               separators=(",", ":")) + "\n")
PY
MQ=(-h 127.0.0.1 -p "$TELEMETRY_MQTT_PORT")
publish_all() { # publish_all TENANT: the PUBLISHERS mosquitto_pub -l -q 1 in parallel, waits for them
  local p ps=()
  for p in $(seq 0 $((PUBLISHERS - 1))); do
    mosquitto_pub "${MQ[@]}" -u "$TELEMETRY_MQTT_DEVICE_USER" -P "$TELEMETRY_MQTT_DEVICE_PASSWORD" \
      -i "bench-pub-$1-$p" -q 1 -l -t "telemetry/$1/pub-$p" <"$OUT/mqtt-$p.jsonl" &
    ps+=($!)
  done
  for p in "${ps[@]}"; do wait "$p" || log "a mosquitto_pub failed"; done
}

export MQ_ROUNDS="${MQ_ROUNDS:-2}"
for round in $(seq 1 "$MQ_ROUNDS"); do
log "MQTT: Mosquitto alone, round $round: $MQTT_MSGS messages from $PUBLISHERS publishers to one QoS 1 subscriber"
mosquitto_sub "${MQ[@]}" -u "$TELEMETRY_MQTT_BRIDGE_USER" -P "$TELEMETRY_MQTT_BRIDGE_PASSWORD" \
  -i "bench-relay-sub-$round" -q 1 -C "$MQTT_MSGS" -W 300 -t "telemetry/relay$round/#" >"$OUT/relay.out" &
SUB_PID=$!
sleep 1
c0="$(cpu_snap)"; t0="$(now_s)"
publish_all "relay$round"
t_pub="$(now_s)"
wait "$SUB_PID" || log "mosquitto_sub ended early"
t1="$(now_s)"; c1="$(cpu_snap)"
# shellcheck disable=SC2046
result mosquitto_relay round="$round" messages="$MQTT_MSGS" received="$(wc -l <"$OUT/relay.out")" \
  seconds="$(diff_s "$t1" "$t0")" pub_seconds="$(diff_s "$t_pub" "$t0")" $(cpu_fields "$c0" "$c1")
done

log "MQTT: starting the bridge"
"$BUILD_DIR/services/bridge/telemetry-bridge" --http_port="$BRIDGE_HTTP" \
  --mqtt_host=127.0.0.1 --mqtt_port="$TELEMETRY_MQTT_PORT" --mqtt_user="$TELEMETRY_MQTT_BRIDGE_USER" \
  --mqtt_password="$TELEMETRY_MQTT_BRIDGE_PASSWORD" --mqtt_client_id=bench-bridge \
  --pg_primary="$TELEMETRY_PG_PRIMARY" --kafka_brokers="$TELEMETRY_KAFKA_BROKERS" >"$OUT/bridge.log" 2>&1 &
pids+=($!); BRIDGE_PID=$!
wait_http "http://127.0.0.1:$BRIDGE_HTTP/metrics"
sleep 3

log "MQTT: $FLEET_DEVICES devices at 1 Hz for $FLEET_S s (paho-mqtt)"
FLEET_TENANT="fleet-$(date +%s%N)"
new_tenant "$FLEET_TENANT"
FLEET_READINGS=$((FLEET_DEVICES * FLEET_S * 8))
base="$(applied)"
# The writer's stored count every 0.1 s: when were the readings of the n-th message stored?
bbase="$(metric "$BRIDGE_HTTP" bridge_readings_total)"
( while :; do echo "$(now_s) $(applied) $(metric "$BRIDGE_HTTP" bridge_readings_total)"; sleep 0.1; done ) \
  >"$OUT/fleet-samples.txt" &
SAMPLER=$!
c0="$(cpu_snap)"; t0="$(now_s)"
fleet="$("$PY" tests/clients/mqtt_fleet.py --host 127.0.0.1 --port "$TELEMETRY_MQTT_PORT" \
  --user "$TELEMETRY_MQTT_DEVICE_USER" --password "$TELEMETRY_MQTT_DEVICE_PASSWORD" \
  --tenant "$FLEET_TENANT" --devices "$FLEET_DEVICES" --messages "$FLEET_S" --metrics 8 \
  --rate "$FLEET_DEVICES" --inflight 200 --start_s "$(( $(date +%s) - FLEET_S - 600 ))" \
  --client_id bench-fleet | tail -n 1)"
t_pub="$(now_s)"
t_stored="$(wait_applied "$base" "$FLEET_READINGS" 120)"
c1="$(cpu_snap)"
sleep 0.3; kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
# Delay: message k (0-based, over the fleet) is due at t0' + k / rate, where t0' is the fleet's own
# start (its end minus its "seconds"); its readings count as stored once the writer's count of new
# rows reaches 8 (k + 1). p50 / p99 / max over every 100th message.
lag="$(/usr/bin/python3 - "$OUT/fleet-samples.txt" "$base" "$t_pub" "$fleet" "$FLEET_DEVICES" "$bbase" <<'PY'
import json, sys
samples = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 3]
base, t_end, fleet, rate, bbase = float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
t0 = t_end - fleet["seconds"]
def delays(col, b):
    out, j = [], 0
    for k in range(0, fleet["sent"], 100):
        need = 8 * (k + 1)
        while j < len(samples) and samples[j][col] - b < need: j += 1
        if j == len(samples): break
        out.append(samples[j][0] - (t0 + k / rate))
    return sorted(out)
r = {}
for name, col, b in (("delay", 1, base), ("kafka_delay", 2, bbase)):
    d = delays(col, b)
    q = lambda p: round(d[min(len(d) - 1, int(p * len(d)))], 3) if d else -1
    r.update({name + "_p50_s": q(0.5), name + "_p99_s": q(0.99), name + "_max_s": round(d[-1], 3) if d else -1})
    r[name + "_samples"] = len(d)
print(json.dumps(r))
PY
)"
# shellcheck disable=SC2046
result mqtt_fleet_1hz devices="$FLEET_DEVICES" readings="$FLEET_READINGS" \
  stored="$(stored_rows "${TENANT_ID[$FLEET_TENANT]}")" seconds="$(diff_s "$t_stored" "$t0")" \
  tail_seconds="$(diff_s "$t_stored" "$t_pub")" fleet="$fleet" lag="$lag" $(cpu_fields "$c0" "$c1")

for round in $(seq 1 "$MQ_ROUNDS"); do
log "MQTT: the bridge at its maximum, round $round: $MQTT_MSGS messages from $PUBLISHERS mosquitto_pub"
settle
MAX_TENANT="mqmax-$(date +%s%N)"
new_tenant "$MAX_TENANT"
MAX_READINGS=$((MQTT_MSGS * 8))
base="$(applied)"; bm0="$(metric "$BRIDGE_HTTP" bridge_readings_total)"
c0="$(cpu_snap)"; t0="$(now_s)"
publish_all "$MAX_TENANT"
t_pub="$(now_s)"
while (($(metric "$BRIDGE_HTTP" bridge_readings_total) - bm0 < MAX_READINGS)) &&
  (($(date +%s) - ${t0%.*} < 600)); do sleep 0.05; done
t_kafka="$(now_s)"
t_stored="$(wait_applied "$base" "$MAX_READINGS")"
c1="$(cpu_snap)"
# shellcheck disable=SC2046
result mqtt_max round="$round" messages="$MQTT_MSGS" readings="$MAX_READINGS" \
  stored="$(stored_rows "${TENANT_ID[$MAX_TENANT]}")" seconds="$(diff_s "$t_stored" "$t0")" \
  pub_seconds="$(diff_s "$t_pub" "$t0")" kafka_seconds="$(diff_s "$t_kafka" "$t0")" \
  bad_messages="$(metric "$BRIDGE_HTTP" bridge_bad_messages_total)" $(cpu_fields "$c0" "$c1")
done

# --- report ---------------------------------------------------------------------------
/usr/bin/python3 - "$OUT/results.jsonl" "$PROFILE" "$STARTED_AT" "$DESCRIBE" "$(getconf CLK_TCK)" \
  "$LP_READINGS" "$ROUNDS" "$PUBLISHERS" "$LP_ORDER" <<'PY'
import json, os, sys, subprocess
rows = [json.loads(l) for l in open(sys.argv[1])]
profile, started, describe, hz, lp_readings, rounds, pubs, lp_order = sys.argv[2:10]
hz = float(hz)
platform = ("ingest", "writer", "kafka", "postgres")
def cpu(r, names): return sum(r.get("cpu_" + n, 0) for n in names) / hz
def rate(r): return r["readings"] / r["seconds"] if r["seconds"] > 0 else 0
def best(run):
    rs = [r for r in rows if r["run"] == run]
    return max(rs, key=rate) if rs else None
lp, grpc, infl = best("platform_lp"), best("grpc"), best("influx")
fleet = next((r for r in rows if r["run"] == "mqtt_fleet_1hz"), None)
relay = max((r for r in rows if r["run"] == "mosquitto_relay"), key=lambda r: r["received"] / r["seconds"], default=None)
mx = best("mqtt_max")
sh = lambda c: subprocess.run(["sh", "-c", c], capture_output=True, text=True).stdout.strip()
us = lambda r, names: 1e6 * cpu(r, names) / r["readings"]
summary = {"date": started, "profile": profile, "git": describe, "lp_order": lp_order, "rounds": int(rounds)}
print(f"\n### Ingress, {started} UTC ({profile} profile, `{describe}`)\n")
cpu_model = sh("lscpu | sed -n 's/^Model name: *//p'")
print(f"Machine: {cpu_model}, {sh('nproc')} cores, every server and client on it. "
      f"{sh('influxd version')}; {sh('mosquitto -h | head -n 1')}.\n")
print(f"Line protocol: file in {lp_order} order, 5,000 readings a request, 4 connections; "
      f"{rounds} round(s), systems alternating; MQTT relay and max {os.environ.get('MQ_ROUNDS', '2')} rounds each; "
      f"best round of each shown (every round under Runs).\n")
print("| run | readings | stored | seconds | readings/s | server CPU µs/reading | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
def line(name, r, names, ratio):
    print(f"| {name} | {r['readings']:,} | {r['stored']:,} | {r['seconds']:.2f} | {rate(r):,.0f} | {us(r, names):.2f} | {ratio} |")
if grpc and lp and infl:
    line("gRPC baseline: telemetry-loadgen → ingest → Kafka → writer → Postgres, until stored", grpc, platform, "1.00")
    line("line protocol → ingest --influx_listen → … → Postgres, until stored", lp, platform,
         f"**{rate(lp) / rate(grpc):.2f}** of gRPC")
    line("InfluxDB 1.6, the same file, until the last 204", infl, ("influxd",),
         f"{rate(infl) / rate(lp):.2f}× line protocol")
    summary.update(grpc_per_s=round(rate(grpc)), lp_per_s=round(rate(lp)), influx_per_s=round(rate(infl)),
                   lp_over_grpc=round(rate(lp) / rate(grpc), 3), influx_over_lp=round(rate(infl) / rate(lp), 3),
                   grpc_us=round(us(grpc, platform), 2), lp_us=round(us(lp, platform), 2),
                   influx_us=round(us(infl, ("influxd",)), 2), lp_accepted_per_s=round(lp["readings"] / lp["ack_seconds"]))
mq = platform + ("bridge", "mosquitto")
if relay:
    rr = relay["received"] * 8 / relay["seconds"]
    print(f"| Mosquitto alone: {pubs} × mosquitto_pub -l -q 1 → mosquitto_sub -q 1 ({relay['messages']:,} messages of 8 readings) "
          f"| {relay['messages'] * 8:,} | {relay['received'] * 8:,} (relayed) | {relay['seconds']:.2f} | {rr:,.0f} "
          f"({relay['received'] / relay['seconds']:,.0f} msg/s) | {1e6 * cpu(relay, ('mosquitto',)) / relay['messages'] / 8:.2f} (mosquitto) | 1.00 |")
    summary.update(relay_msgs_per_s=round(relay["received"] / relay["seconds"]), relay_readings_per_s=round(rr))
if fleet:
    f, lag = fleet["fleet"], fleet["lag"]
    print(f"| MQTT fleet: {fleet['devices']:,} devices at 1 Hz (paho-mqtt), until stored "
          f"| {fleet['readings']:,} | {fleet['stored']:,} | {fleet['seconds']:.2f} | {rate(fleet):,.0f} "
          f"(published {f['sent'] / f['seconds']:,.0f} msg/s) | {us(fleet, mq):.2f} | – |")
    summary.update(fleet_per_s=round(rate(fleet)), fleet_pub_msgs_per_s=round(f["sent"] / f["seconds"], 1),
                   fleet_delay_p50_s=lag["delay_p50_s"], fleet_delay_p99_s=lag["delay_p99_s"],
                   fleet_delay_max_s=lag["delay_max_s"], fleet_tail_s=round(fleet["tail_seconds"], 3))
if mx:
    ratio = f"**{rate(mx) / (relay['received'] * 8 / relay['seconds']):.2f}** of Mosquitto alone" if relay else "–"
    print(f"| MQTT max: the same {pubs} publishers → bridge → Kafka → writer → Postgres, until stored "
          f"| {mx['readings']:,} | {mx['stored']:,} | {mx['seconds']:.2f} | {rate(mx):,.0f} "
          f"({mx['messages'] / mx['seconds']:,.0f} msg/s) | {us(mx, mq):.2f} | {ratio} |")
    summary.update(mqtt_max_per_s=round(rate(mx)), mqtt_max_us=round(us(mx, mq), 2),
                   mqtt_max_pub_s=mx["pub_seconds"], mqtt_max_kafka_s=mx["kafka_seconds"])
    if relay: summary["mqtt_over_relay"] = round(rate(mx) / (relay["received"] * 8 / relay["seconds"]), 3)
print()
if fleet:
    print(f"1 Hz fleet: published {fleet['fleet']['sent']:,} messages in {fleet['fleet']['seconds']:.1f} s "
          f"(scheduled {fleet['readings'] // 8:,} in {fleet['readings'] // 8 // fleet['devices']} s); "
          f"delay from a message's scheduled publish to its readings stored: p50 {fleet['lag']['delay_p50_s']:.2f} s, "
          f"p99 {fleet['lag']['delay_p99_s']:.2f} s, max {fleet['lag']['delay_max_s']:.2f} s "
          f"(to durable in Kafka, the bridge's count: p50 {fleet['lag']['kafka_delay_p50_s']:.2f} s, p99 {fleet['lag']['kafka_delay_p99_s']:.2f} s); "
          f"last publish → all stored {fleet['tail_seconds']:.2f} s.")
if mx:
    print(f"MQTT max: publishers done after {mx['pub_seconds']:.2f} s, all readings durable in Kafka (bridge) "
          f"after {mx['kafka_seconds']:.2f} s, stored after {mx['seconds']:.2f} s; bridge_bad_messages_total {mx['bad_messages']}.")
def cpu_line(name, r, names):
    return f"{name}: " + ", ".join(f"{n} {r.get('cpu_' + n, 0) / hz:.1f}" for n in names if r.get('cpu_' + n, 0))
print("CPU seconds per process group: " + "; ".join(cpu_line(n, r, platform + ("bridge", "mosquitto", "influxd"))
      for n, r in (("gRPC", grpc), ("line protocol", lp), ("InfluxDB", infl), ("relay", relay), ("fleet", fleet), ("MQTT max", mx)) if r) + ".")
print()
print("Runs: " + json.dumps(rows))
print()
print(json.dumps(summary))
PY
