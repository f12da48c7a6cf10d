#!/usr/bin/env bash
# How to store raw-reading segments (one row per series and closed hour, a few
# KB of incompressible bytes) in PostgreSQL 15 (not a test). For each storage
# variant and size profile, measures:
#   - bytes at rest: pg_total_relation_size (heap + TOAST + indexes + FSM/VM)
#     against the payload bytes, the overhead per row and bytes per reading;
#   - load time (INSERT ... SELECT of the same pre-generated segments);
#   - read latency with pgbench (one client, -M prepared, random series): one
#     segment (a 1-hour read) and the 24 segments of one series (a day), for
#     each way of fetching: `SELECT data` (bytea: hex text output; text: as
#     stored), `encode(data, 'base64')` (a newline every 76 chars),
#     `translate(encode(data, 'base64'), E'\n', '')` and the same with
#     replace() instead of translate() (both strip the newlines);
#   - a bulk read with psql `\copy ... TO '/dev/null'`, text vs binary format.
# Variants (table seg_<variant>(series_id integer, hour bigint, data, PRIMARY
# KEY (series_id, hour)), one schema per profile): bytea with STORAGE EXTENDED
# (the default: pglz attempted), MAIN, EXTERNAL, EXTERNAL + toast_tuple_target
# = 8160, and text base64 (no line breaks) EXTERNAL + 8160 like agg_1m_seg
# (db/migrations/0006_rollup_segments.sql).
# Profiles: full (~18,000 bytes: 3,600 readings at ~5 bytes), mid (~6,000
# bytes: 1,200 readings, where toast_tuple_target decides inline vs TOAST) and
# sparse (~300 bytes: 60 readings); each segment is random bytes (pgcrypto's
# gen_random_bytes), size uniform within +-10% of the nominal.
#
# It runs a private PostgreSQL 15 of its own (initdb in /tmp/segstore-$$, port
# 55999 or the next free one, unix socket in that directory only, as the
# postgres user), with fsync, full_page_writes and synchronous_commit off and
# wal_level minimal (a scratch instance: durability plays no part in what is
# measured), autovacuum off (the script VACUUMs after the load), and removes it
# on exit. It never touches any other Postgres. Needs root (or the postgres
# user) and postgresql-15 + contrib (pgbench, pgcrypto, pg_prewarm). Peak disk
# use ~8 GB at N_SERIES=2000; ~9 minutes with the defaults on 2 cores (~100
# pgbench cases of DURATION s each). Builds nothing.
#
#   bash scripts/bench-segment-storage.sh
#   N_SERIES=2000 DURATION=3 PROFILES="full mid sparse" SHARED_BUFFERS=1GB \
#     OUT_MD=/tmp/segment-storage-results.md bash scripts/bench-segment-storage.sh
#
# Prints Markdown tables and writes them to $OUT_MD.
set -euo pipefail

N_SERIES="${N_SERIES:-2000}"
DURATION="${DURATION:-3}"            # seconds per pgbench case
PROFILES="${PROFILES:-full mid sparse}"
SHARED_BUFFERS="${SHARED_BUFFERS:-1GB}"
PORT="${PORT:-55999}"
OUT_MD="${OUT_MD:-/tmp/segment-storage-results.md}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
HOUR0=1767225600000000000            # 2026-01-01T00:00Z in ns since the epoch
HOUR_NS=3600000000000

declare -A NOMINAL=([full]=18000 [mid]=6000 [sparse]=300)
# variant -> "type|storage|reloptions"
VARIANTS=(bytea_extended bytea_main bytea_external bytea_external_t8160 text_b64_external_t8160)
declare -A VDEF=(
  [bytea_extended]="bytea|EXTENDED|"
  [bytea_main]="bytea|MAIN|"
  [bytea_external]="bytea|EXTERNAL|"
  [bytea_external_t8160]="bytea|EXTERNAL|toast_tuple_target = 8160"
  [text_b64_external_t8160]="text|EXTERNAL|toast_tuple_target = 8160"
)

for t in initdb pg_ctl psql pgbench; do
  [[ -x "$PGBIN/$t" ]] || { echo "missing $PGBIN/$t (postgresql-15 / postgresql-contrib)" >&2; exit 1; }
done
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
while ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q . || [[ -e "/tmp/.s.PGSQL.$PORT" ]]; do
  PORT=$((PORT + 1))
done

DIR="/tmp/segstore-$$"
mkdir -m 0755 "$DIR"
[[ "$(id -u)" == 0 ]] && chown postgres: "$DIR"
started=0
cleanup() {
  if ((started)); then as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== private PostgreSQL in $DIR, port $PORT" >&2
as_pg "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -o "-p $PORT -k $DIR -c listen_addresses='' \
  -c shared_buffers=$SHARED_BUFFERS -c fsync=off -c full_page_writes=off -c synchronous_commit=off \
  -c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=8GB -c checkpoint_timeout=1h \
  -c autovacuum=off -c jit=off -c max_parallel_workers_per_gather=0 -c work_mem=64MB \
  -c maintenance_work_mem=512MB" start >/dev/null
started=1

q() { as_pg "$PGBIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

RES="$DIR/res"
mkdir "$RES"
: >"$RES/size.tsv"; : >"$RES/pgbench.tsv"; : >"$RES/copy.tsv"; : >"$RES/wire.tsv"; : >"$RES/gen.tsv"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

rng="pgcrypto gen_random_bytes"
if q -c "CREATE EXTENSION pgcrypto" 2>/dev/null; then
  q -c "CREATE FUNCTION rand_bytes(n int) RETURNS bytea LANGUAGE sql VOLATILE AS \$\$
          SELECT substring(string_agg(gen_random_bytes(1024), ''::bytea) FROM 1 FOR n)
          FROM generate_series(1, (n + 1023) / 1024) \$\$"
else
  rng="md5(random()) (pgcrypto missing)"
  q -c "CREATE FUNCTION rand_bytes(n int) RETURNS bytea LANGUAGE sql VOLATILE AS \$\$
          SELECT substring(decode(string_agg(md5(random()::text), ''), 'hex') FROM 1 FOR n)
          FROM generate_series(1, (n + 15) / 16) \$\$"
fi
q -c "CREATE EXTENSION pg_prewarm"

# ---- load --------------------------------------------------------------------
for p in $PROFILES; do
  nom="${NOMINAL[$p]}"
  echo "== profile $p (~$nom bytes): generating $N_SERIES x 24 segments" >&2
  q -c "CREATE SCHEMA p_$p"
  t0="$(now)"
  # Staging copy, written hour by hour as the compactor would; EXTERNAL so
  # that it is never compressed.
  q -c "BEGIN" -c "CREATE TABLE p_$p.src (series_id integer, hour bigint, data bytea NOT NULL)" \
    -c "ALTER TABLE p_$p.src ALTER COLUMN data SET STORAGE EXTERNAL" \
    -c "INSERT INTO p_$p.src SELECT s, $HOUR0 + h * $HOUR_NS::bigint,
          rand_bytes(($nom * 0.9 + floor(random() * ($nom * 0.2 + 1)))::int)
        FROM generate_series(0, 23) h, generate_series(1, $N_SERIES) s ORDER BY h, s" -c "COMMIT"
  t1="$(now)"
  payload="$(q -c "SELECT sum(octet_length(data)) FROM p_$p.src")"
  printf '%s\t%s\t%s\n' "$p" "$(secs "$t0" "$t1")" "$payload" >>"$RES/gen.tsv"
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r typ storage relopt <<<"${VDEF[$v]}"
    with=""; [[ -n "$relopt" ]] && with="WITH ($relopt)"
    expr="data"; [[ "$typ" == text ]] && expr="replace(encode(data, 'base64'), E'\\n', '')"
    t0="$(now)"
    # CREATE and INSERT in one transaction: with wal_level minimal the table
    # is synced at commit instead of WAL-logged (the same for every variant).
    q -c "BEGIN" \
      -c "CREATE TABLE p_$p.seg_$v (series_id integer, hour bigint, data $typ NOT NULL,
            PRIMARY KEY (series_id, hour)) $with" \
      -c "ALTER TABLE p_$p.seg_$v ALTER COLUMN data SET STORAGE $storage" \
      -c "INSERT INTO p_$p.seg_$v SELECT series_id, hour, $expr FROM p_$p.src ORDER BY hour, series_id" \
      -c "COMMIT"
    t1="$(now)"
    q -c "VACUUM (ANALYZE) p_$p.seg_$v"
    # Sizes: heap = main fork + FSM + VM; TOAST = its heap and index.
    q -F $'\t' -c "SELECT '$p', '$v', '$typ', '$storage', '${relopt:--}', count(*), $payload,
        pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm') + pg_relation_size(c.oid, 'vm'),
        coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
        pg_indexes_size(c.oid), pg_total_relation_size(c.oid), $(secs "$t0" "$t1"),
        (SELECT count(*) FROM p_$p.seg_$v WHERE pg_column_compression(data) IS NOT NULL),
        coalesce((SELECT reltuples::bigint FROM pg_class t WHERE t.oid = c.reltoastrelid), 0)
      FROM pg_class c, p_$p.seg_$v WHERE c.oid = 'p_$p.seg_$v'::regclass
      GROUP BY c.oid, c.reltoastrelid" >>"$RES/size.tsv"
    echo "   $v loaded in $(secs "$t0" "$t1") s" >&2
  done
  q -c "DROP TABLE p_$p.src"
done
q -c "CHECKPOINT"

# ---- bytes on the wire (text result format), per row, on a sample ------------
form_expr() { # form -> select-list expression
  case "$1" in
    data) echo "data" ;;
    b64) echo "encode(data, 'base64')" ;;
    b64nl) printf '%s\n' "translate(encode(data, 'base64'), E'\\n', '')" ;;
    b64rep) printf '%s\n' "replace(encode(data, 'base64'), E'\\n', '')" ;;
  esac
}
forms_of() { if [[ "${VDEF[$1]%%|*}" == text ]]; then echo data; else echo data b64 b64nl b64rep; fi; }
for p in $PROFILES; do
  for v in "${VARIANTS[@]}"; do
    for f in $(forms_of "$v"); do
      # octet_length of the text output of the fetched value (::text casts a
      # bytea through its output function, i.e. hex) and of the raw segment.
      raw="data"; [[ "${VDEF[$v]%%|*}" == text ]] && raw="decode(data, 'base64')"
      q -F $'\t' -c "SELECT '$p', '$v', '$f', round(avg(octet_length(x::text)))::bigint,
          round(avg(octet_length($raw)))::bigint
        FROM (SELECT $(form_expr "$f") AS x, data FROM p_$p.seg_$v WHERE series_id <= 100) s" >>"$RES/wire.tsv"
    done
  done
done

# ---- pgbench ------------------------------------------------------------------
# Each case starts with its table, TOAST table and index loaded into shared
# buffers (pg_prewarm), so every variant is read from the same place (a full-
# profile table is ~0.9-1.2 GB: shared buffers hold most of it, the OS page
# cache the rest). The variants of one (profile, read, form) run back to back.
prewarm() {
  q -c "SELECT sum(pg_prewarm(r.oid)) FROM pg_class c, pg_class r
        WHERE c.oid = '$1'::regclass AND (r.oid IN (c.oid, c.reltoastrelid)
          OR r.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (c.oid, c.reltoastrelid)))" >/dev/null
}
bench() { # profile read form variant
  local p="$1" r="$2" f="$3" v="$4" file="$DIR/pgb-$1-$2-$3-$4.sql" out where
  if [[ "$r" == hour ]]; then where="series_id = :s AND hour = :h"; else where="series_id = :s ORDER BY hour"; fi
  printf '%s\n' '\set s random(1, :nseries)' "\\set h $HOUR0 + $HOUR_NS * random(0, 23)" \
    "SELECT $(form_expr "$f") FROM p_$p.seg_$v WHERE $where;" >"$file"
  prewarm "p_$p.seg_$v"
  out="$(as_pg "$PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -n -c 1 -j 1 -M prepared -T "$DURATION" \
    -D nseries="$N_SERIES" -f "$file" postgres 2>&1)" || { echo "$out" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$r" "$v" "$f" \
    "$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out")" \
    "$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")" \
    "$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")" >>"$RES/pgbench.tsv"
  tail -n 1 "$RES/pgbench.tsv" >&2
}
echo "== pgbench, $DURATION s per case" >&2
for p in $PROFILES; do
  for r in hour day; do
    for f in data b64 b64nl b64rep; do
      for v in "${VARIANTS[@]}"; do
        if [[ " $(forms_of "$v") " == *" $f "* ]]; then bench "$p" "$r" "$f" "$v"; fi
      done
    done
  done
done

# ---- bulk read: \copy to /dev/null, text vs binary format ----------------------
echo "== bulk \\copy" >&2
for p in $PROFILES; do
  for v in bytea_external_t8160 text_b64_external_t8160; do
    prewarm "p_$p.seg_$v"
    for fmt in text binary; do
      t0="$(now)"
      q -c "\\copy (SELECT data FROM p_$p.seg_$v) TO '/dev/null' WITH (FORMAT $fmt)"
      t1="$(now)"
      printf '%s\t%s\t%s\t%s\n' "$p" "$v" "$fmt" "$(secs "$t0" "$t1")" >>"$RES/copy.tsv"
      tail -n 1 "$RES/copy.tsv" >&2
    done
  done
done
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- report --------------------------------------------------------------------
pgver="$(q -c "SHOW server_version")"
cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
/usr/bin/python3 - "$RES" "$N_SERIES" "$DURATION" "$SHARED_BUFFERS" "$pgver" "$(nproc)" "$cpu" \
  "$load_start" "$load_end" "$rng" <<'PY' | tee "$OUT_MD"
import datetime, sys
res, nseries, duration, sb, pgver, nproc, cpu, load_start, load_end, rng = sys.argv[1:11]
readings = {"full": 3600, "mid": 1200, "sparse": 60}
def tsv(name):
    return [l.rstrip("\n").split("\t") for l in open(f"{res}/{name}") if l.strip()]
gen = {r[0]: r for r in tsv("gen.tsv")}
print(f"""## Raw segment storage in PostgreSQL {pgver}, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC

`bash scripts/bench-segment-storage.sh` (N_SERIES={nseries}, 24 hours each; pgbench {duration} s per
case, one client, `-M prepared`, random series). Private instance: shared_buffers {sb}, fsync /
full_page_writes / synchronous_commit off, wal_level minimal, autovacuum off. {nproc} cores ({cpu}),
load average {load_start} at the start, {load_end} at the end. **The machine is shared and noisy
(builds run beside it): compare ratios between rows, not absolute numbers.** Segments are random
bytes ({rng}), size uniform within ±10 % of the nominal, inserted hour by hour.

### Bytes at rest

Payload = the raw segment bytes (binary). Overhead/row = (total − payload) / rows. B/reading =
total / rows / readings per segment (full 3,600, mid 1,200, sparse 60; payload alone is 5 B).
"Compressed" = values stored compressed (pg_column_compression). Load = INSERT … SELECT from a
staging table (text variant: includes the server-side base64 encoding, `replace(encode(…))`).

| profile | variant | type | STORAGE | reloptions | rows | payload MB | heap MB | TOAST MB (incl. index) | TOAST rows | index MB | total MB | total / payload | overhead B/row | B/reading | load s | compressed |
|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|""")
MB = 1e6
for r in tsv("size.tsv"):
    p, v, typ, st, ro, rows, payload, heap, toast, idx, total, load, comp, toastrows = r
    rows, payload, heap, toast, idx, total = map(int, (rows, payload, heap, toast, idx, total))
    print(f"| {p} | {v} | {typ} | {st} | {ro} | {rows:,} | {payload/MB:.1f} | {heap/MB:.1f} | {toast/MB:.1f} | "
          f"{int(toastrows):,} | {idx/MB:.1f} | {total/MB:.1f} | **{total/payload:.3f}** | "
          f"{(total-payload)/rows:.0f} | {total/rows/readings[p]:.2f} | {load} | {comp} |")
print("\nSegment generation (staging, pgcrypto): " +
      ", ".join(f"{p} {g[1]} s" for p, g in gen.items()) + ".")

wire = {(r[0], r[1], r[2]): (int(r[3]), int(r[4])) for r in tsv("wire.tsv")}
print("""
### Read latency (pgbench)

hour = one segment (`WHERE series_id = :s AND hour = :h`); day = the 24 segments of one series
(`WHERE series_id = :s ORDER BY hour`). Fetch: `data` = `SELECT data` (bytea: hex text output;
text: as stored), `b64` = `encode(data, 'base64')` (newline every 76 chars), `b64nl` =
`translate(encode(data, 'base64'), E'\\n', '')`, `b64rep` = the same with `replace`. Wire B/row = average length of the value in
text result format (a day sends 24 of them); wire / payload is against the raw segment bytes. "vs best" = latency / the best latency of that
profile and read.

| profile | read | variant | fetch | wire B/row | wire / payload | avg latency ms | tps | vs best |
|---|---|---|---|--:|--:|--:|--:|--:|""")
pg = tsv("pgbench.tsv")
best = {}
for p, rd, v, f, lat, tps, n in pg:
    best[(p, rd)] = min(best.get((p, rd), 1e9), float(lat))
for p, rd, v, f, lat, tps, n in pg:
    w, pay = wire[(p, v, f)]
    print(f"| {p} | {rd} | {v} | {f} | {w:,} | {w/pay:.3f} | {float(lat):.3f} | {float(tps):,.0f} | "
          f"{float(lat)/best[(p, rd)]:.2f} |")

print("""
### Bulk read: `\\copy (SELECT data FROM …) TO '/dev/null'` (all rows of the table, psql)

| profile | variant | COPY format | seconds |
|---|---|---|--:|""")
for p, v, fmt, s in tsv("copy.tsv"):
    print(f"| {p} | {v} | {fmt} | {s} |")
PY
echo "written to $OUT_MD" >&2
