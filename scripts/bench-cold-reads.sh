#!/usr/bin/env bash
# Cold reads against hot ones (issue 17), not a test. Loads a day of readings (one tenant,
# DEVICES × 8 sensors every INTERVAL_S, the layout the writer produces) on a day long past,
# packs and archives it, and measures Range 1 h and Playback t ± 30 s through telemetry-query
# (--archive_root, STRONG: the primary) while the day is in Postgres (hot); then retention drops
# the day and the same reads run twice more, answered from the Parquet archive (cold: the first
# pass mostly reads files, the second finds part of them in the cache). One client, the same
# service process throughout. Appends the results to docs/benchmarks.md and prints them.
#
#   BUILD_DIR=build bash scripts/bench-cold-reads.sh      (DEVICES=250 INTERVAL_S=30 REQUESTS=400)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-release}"
DEVICES="${DEVICES:-250}"
INTERVAL_S="${INTERVAL_S:-30}"
REQUESTS="${REQUESTS:-400}"
CACHE_MB="${CACHE_MB:-256}"

# shellcheck source=scripts/lib/bench-env.sh
. scripts/lib/bench-env.sh

log() { printf '[bench-cold-reads] %s\n' "$*" >&2; }
day_ns=$((86400 * 1000000000))
# A day long past, of its own per run: 2004-01-01 + (minutes since the epoch mod 3000) days.
day=$(( (1072915200 + ($(date +%s) / 60 % 3000) * 86400) * 1000000000 ))
out="$("$BUILD_DIR/tools/admin/telemetry-admin" create-tenant --name "cold-$(date +%s%N)")"
key="$(sed -n 's/^api_key=//p' <<<"$out")"
tenant_id="$(sed -n 's/^tenant_id=//p' <<<"$out")"
bench=("$BUILD_DIR/tools/bench/telemetry-bench-query" --pg "$TELEMETRY_PG_PRIMARY"
  --api_keys "$key" --tenant_ids "$tenant_id" --end_ns "$((day + day_ns))" --hours 24
  --devices "$DEVICES" --interval_s "$INTERVAL_S" --concurrency 1 --requests "$REQUESTS")
log "loading a day ($day) of $DEVICES devices × 8 sensors every $INTERVAL_S s"
"${bench[@]}" --load --only "nothing: load the data set" --requests 1 >/dev/null
"$BUILD_DIR/tools/admin/telemetry-admin" pack-raw --older_than_s 3600 >&2
archive="$OUT/archive"
"$BUILD_DIR/tools/admin/telemetry-admin" archive --archive_root "$archive" >"$OUT/archive.out"
tail -1 "$OUT/archive.out" >&2
settle

http_port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$BUILD_DIR/services/query/telemetry-query" --http_port="$http_port" --archive_root="$archive" \
  --archive_cache_mb="$CACHE_MB" >"$OUT/query.log" 2>&1 &
pids+=($!)
sleep 2
reads() {  # $1: label; prints the JSON of the two reads
  local r p
  r="$("${bench[@]}" --only "1 h raw" 2>>"$OUT/bench.err")"
  p="$("${bench[@]}" --only "Playback" 2>>"$OUT/bench.err")"
  log "$1: $(tail -2 "$OUT/bench.err" | tr -s ' ' | paste -sd ';')"
  printf '%s\n%s\n' "$r" "$p" >"$OUT/$1.json"
}
reads hot
"$BUILD_DIR/tools/admin/telemetry-admin" set-retention --tenant_id "$tenant_id" --retention_days 1 >&2
for _ in $(seq 1 20); do
  "$BUILD_DIR/tools/admin/telemetry-admin" retention --archive_root "$archive" --apply \
    --from_ns "$day" --before_ns "$((day + day_ns))" >"$OUT/retention.out" 2>&1 || true
  grep -q "DROPPED" "$OUT/retention.out" && break
  sleep 1
done
cat "$OUT/retention.out" >&2
gone="$(psql "$TELEMETRY_PG_PRIMARY" -qAtc "SELECT count(*) FROM raw_compactions WHERE state = 'dropped' AND hour >= $day AND hour < $day + $day_ns")"
[[ "$gone" == 24 ]] || { log "the day was not dropped (hours dropped: $gone)"; exit 1; }
reads cold1
reads cold2
metrics="$(curl -s "http://127.0.0.1:$http_port/metrics" | grep '^query_archive_' || true)"

/usr/bin/python3 - "$OUT" "$DEVICES" "$INTERVAL_S" "$REQUESTS" "$CACHE_MB" "$(git rev-parse --short HEAD)" \
  "$metrics" <<'PYEOF'
import json, sys, datetime
out, devices, interval, requests, cache_mb, commit, metrics = sys.argv[1:8]
def load(name):
    res = {}
    for line in open(f"{out}/{name}.json"):
        line = line.strip()
        if not line:
            continue
        for r in json.loads(line)["results"]:
            if r["qps"] > 0:  # measured in this invocation (--only)
                res[r["read"]] = r
    return res
hot, c1, c2 = load("hot"), load("cold1"), load("cold2")
now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
lines = [f"\n## Issue 17: cold reads against hot ones ({now} UTC, `{commit}`)\n",
         f"`BUILD_DIR=build bash scripts/bench-cold-reads.sh` on this machine (2 cores, shared): one tenant, "
         f"{devices} devices × 8 sensors every {interval} s for a day long past, packed and archived; "
         f"{requests} requests per read, one client, STRONG (the primary); the same telemetry-query "
         f"process (`--archive_root`, cache {cache_mb} MB) before the day is dropped (hot) and after "
         f"(cold, twice: the second pass finds part of the archive in the cache).\n",
         "| read | hot p50 / p99 ms | cold p50 / p99 ms | cold again p50 / p99 ms | cold/hot p50 | cold again/hot p50 |",
         "|---|---|---|---|---|---|"]
for name in hot:
    h, a, b = hot[name], c1.get(name), c2.get(name)
    if not a or not b:
        continue
    lines.append(f"| {name} | {h['p50_ms']:.2f} / {h['p99_ms']:.2f} | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} | "
                 f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f} | {a['p50_ms']/h['p50_ms']:.1f}× | {b['p50_ms']/h['p50_ms']:.1f}× |")
    for r in (h, a, b):
        if r["errors"]:
            lines.append(f"  (errors: {r['errors']} in {name})")
lines.append("\nThe query service's archive counters after the runs:\n```\n" + metrics.strip() + "\n```")
text = "\n".join(lines) + "\n"
print(text)
with open("docs/benchmarks.md", "a") as f:
    f.write(text)
PYEOF
