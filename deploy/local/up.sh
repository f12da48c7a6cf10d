#!/usr/bin/env bash
# Starts the local telemetry stack on 127.0.0.1:
#   - PostgreSQL 15 primary + streaming-replication hot standby
#   - a third PostgreSQL 15 instance: the analytics warehouse (its own
#     cluster, so that it can fail on its own; deploy/local/warehouse.sh
#     stops and starts it)
#   - redis-server (no persistence)
#   - Apache Kafka (KRaft, one JVM as broker and controller; the jars come from
#     Maven Central through deploy/local/install-kafka.sh) and the platform's
#     topics (telemetry-admin create-topics)
#   - Prometheus Alertmanager (a notification target of alert rules; one
#     route to a receiver that sends nothing, no clustering)
#   - Mosquitto (the MQTT bridge's broker: passwords, ACL, persistence;
#     deploy/mosquitto/mosquitto.sh runs it with deploy/mosquitto/mosquitto.conf)
#   - S3Proxy (an S3-compatible object store checking SigV4, one bucket
#     telemetry-archive; deploy/local/s3.sh runs it): the archive's S3 root
# then writes $STATE/env and prints its path on stdout (progress goes to
# stderr, so `set -a; . "$(deploy/local/up.sh)"; set +a` works).
#
# Idempotent: whatever is already running is left alone; re-running with
# everything up just rewrites and prints the env file.
#
# Usage: deploy/local/up.sh [--build-dir DIR]
# Env:   TELEMETRY_LOCAL_DIR (state dir, default /tmp/telemetry-local-<uid>)
#        TELEMETRY_PG_PORT, TELEMETRY_PG_REPLICA_PORT, TELEMETRY_PG_WAREHOUSE_PORT,
#        TELEMETRY_REDIS_PORT,
#        TELEMETRY_KAFKA_PORT, TELEMETRY_KAFKA_CONTROLLER_PORT,
#        TELEMETRY_ALERTMANAGER_PORT, TELEMETRY_MQTT_PORT, TELEMETRY_S3_PORT
#        (fixed ports; default: free loopback ports, reused across runs)
#        TELEMETRY_KAFKA_HEAP (JVM heap flags, default "-Xms512m -Xmx1g")
#        TELEMETRY_PG_FSYNC (PostgreSQL's fsync, default on; scripts/test.sh
#        sets off: see the note at write_pg_conf)
#        TELEMETRY_CACHE_DIR (where the Kafka jars are kept)
#        BUILD_DIR (default <repo>/build)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$SCRIPT_DIR/common.sh"

usage() {
  sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

BUILD_DIR_ARG="${BUILD_DIR:-}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) [[ $# -ge 2 ]] || die "--build-dir needs a value"; BUILD_DIR_ARG="$2"; shift 2 ;;
    --build-dir=*) BUILD_DIR_ARG="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
if [[ -n "$BUILD_DIR_ARG" ]]; then
  BUILD_DIR_ABS="$(realpath -m -- "$BUILD_DIR_ARG")"
else
  BUILD_DIR_ABS="$REPO_ROOT/build"
fi
ADMIN_BIN="$BUILD_DIR_ABS/tools/admin/telemetry-admin"
MOSQUITTO_CTL="$REPO_ROOT/deploy/mosquitto/mosquitto.sh"
S3_CTL="$SCRIPT_DIR/s3.sh"

START_TIME=$SECONDS
init_state_paths

# ---------------------------------------------------------------- preflight
for tool in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/pg_basebackup" "$PG_BIN/pg_controldata"; do
  [[ -x "$tool" ]] || die "$tool not found: install PostgreSQL 15 (deploy/local/install-deps.sh)"
done
for tool in psql pg_isready redis-server redis-cli curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run deploy/local/install-deps.sh"
done
AM_BIN="$(alertmanager_bin)"
[[ -n "$AM_BIN" ]] ||
  die "prometheus-alertmanager not found: run deploy/local/install-deps.sh (Debian package prometheus-alertmanager)"
if [[ "$IS_ROOT" -eq 1 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' OS user (package postgresql-15)"
  command -v runuser >/dev/null 2>&1 || die "running as root needs runuser (util-linux)"
fi
command -v java >/dev/null 2>&1 || die "java not found: run deploy/local/install-deps.sh"
# (/usr/sbin is not on an ordinary user's PATH on Debian.)
[[ -x "$(command -v mosquitto 2>/dev/null || printf /usr/sbin/mosquitto)" ]] &&
  command -v mosquitto_passwd >/dev/null 2>&1 ||
  die "mosquitto not found: run deploy/local/install-deps.sh (Debian package mosquitto)"
[[ -x "$ADMIN_BIN" ]] ||
  die "telemetry-admin not found at $ADMIN_BIN (it creates the Kafka topics): build it first (cmake --build build --target telemetry-admin), or pass --build-dir DIR"
"$SCRIPT_DIR/install-kafka.sh" >/dev/null

mkdir -p "$STATE_DIR"
chmod 0755 "$STATE_DIR" 2>/dev/null || true # the postgres user must traverse it
touch "$STATE_DIR/.telemetry-local"
lock_state_dir
mkdir -p "$REDIS_DIR" "$KAFKA_DIR" "$AM_DIR"
if [[ ! -d "$PG_DIR" ]]; then
  mkdir -p "$PG_DIR"
  chmod 0700 "$PG_DIR"
fi
if [[ "$IS_ROOT" -eq 1 ]]; then
  chown postgres:postgres "$PG_DIR"
  runuser -u postgres -- test -w "$PG_DIR" ||
    die "the postgres user cannot reach $PG_DIR: TELEMETRY_LOCAL_DIR and its parents must be traversable (o+x) by 'postgres'"
fi
as_pg mkdir -p "$PG_SOCK_DIR"

# -------------------------------------------------------------------- ports
port_in_use() {
  local p="$1"
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
  fi
}

CHOSEN_PORTS=" "
pick_free_port() {
  local p i
  # Below the kernel's ephemeral range (32768+), which client sockets use.
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ "$CHOSEN_PORTS" == *" $p "* ]] && continue
    port_in_use "$p" && continue
    printf '%s' "$p"
    return 0
  done
  die "could not find a free loopback port"
}

# resolve_port LABEL OVERRIDE_VAR SAVED RUNNING -> sets RESOLVED_PORT
resolve_port() {
  local label="$1" var="$2" saved="$3" running="$4"
  local override="${!var:-}"
  if [[ -n "$override" && ! "$override" =~ ^[0-9]+$ ]]; then
    die "$var='$override' is not a port number"
  fi
  if [[ -n "$running" ]]; then
    if [[ -n "$override" && "$override" != "$running" ]]; then
      die "$label is already running on port $running but $var=$override: run deploy/local/down.sh first"
    fi
    RESOLVED_PORT="$running"
  elif [[ -n "$override" ]]; then
    if [[ "$CHOSEN_PORTS" == *" $override "* ]] || port_in_use "$override"; then
      die "$label: port $override ($var) is already in use on this machine: free it or choose another port"
    fi
    RESOLVED_PORT="$override"
  elif [[ -n "$saved" && "$CHOSEN_PORTS" != *" $saved "* ]] && ! port_in_use "$saved"; then
    RESOLVED_PORT="$saved"
  else
    RESOLVED_PORT="$(pick_free_port)"
  fi
  CHOSEN_PORTS+="$RESOLVED_PORT "
}

read_ports_file
PG_PRIMARY_RUNNING_PORT=""
PG_REPLICA_RUNNING_PORT=""
REDIS_RUNNING_PORT=""
KAFKA_RUNNING_PORT=""
KAFKA_CONTROLLER_RUNNING_PORT=""
ALERTMANAGER_RUNNING_PORT=""
if [[ -n "$(kafka_pid)" && -n "$KAFKA_PORT_SAVED" ]]; then
  KAFKA_RUNNING_PORT="$KAFKA_PORT_SAVED"
  KAFKA_CONTROLLER_RUNNING_PORT="$KAFKA_CONTROLLER_PORT_SAVED"
fi
if pg_running "$PG_PRIMARY_DATA"; then PG_PRIMARY_RUNNING_PORT="$(pg_pidfile_line "$PG_PRIMARY_DATA" 4)"; fi
if pg_running "$PG_REPLICA_DATA"; then PG_REPLICA_RUNNING_PORT="$(pg_pidfile_line "$PG_REPLICA_DATA" 4)"; fi
PG_WAREHOUSE_RUNNING_PORT=""
if pg_running "$PG_WAREHOUSE_DATA"; then PG_WAREHOUSE_RUNNING_PORT="$(pg_pidfile_line "$PG_WAREHOUSE_DATA" 4)"; fi
PG_WAREHOUSE_PORT_SAVED=""
if [[ -f "$PORTS_FILE" ]]; then
  PG_WAREHOUSE_PORT_SAVED="$(sed -n 's/^PG_WAREHOUSE_PORT=\([0-9][0-9]*\)$/\1/p' "$PORTS_FILE" | tail -n 1)"
fi
if redis_running && [[ -n "$REDIS_PORT_SAVED" ]] &&
  [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT_SAVED" ping 2>/dev/null || true)" == PONG ]]; then
  REDIS_RUNNING_PORT="$REDIS_PORT_SAVED"
fi
if [[ -n "$(alertmanager_pid)" && -n "$ALERTMANAGER_PORT_SAVED" ]] &&
  alertmanager_ready "$ALERTMANAGER_PORT_SAVED"; then
  ALERTMANAGER_RUNNING_PORT="$ALERTMANAGER_PORT_SAVED"
fi

# Mosquitto's port is a line of the ports file that common.sh's read_ports_file does not read.
# (None on a fresh state directory: no ports file yet.)
MQTT_PORT_SAVED=""
if [[ -f "$PORTS_FILE" ]]; then
  MQTT_PORT_SAVED="$(sed -n 's/^MQTT_PORT=\([0-9][0-9]*\)$/\1/p' "$PORTS_FILE" | tail -n 1)"
fi
MQTT_RUNNING_PORT=""
if [[ -n "$MQTT_PORT_SAVED" && "$("$MOSQUITTO_CTL" status)" == running ]] &&
  (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT_SAVED") 2>/dev/null; then
  MQTT_RUNNING_PORT="$MQTT_PORT_SAVED"
fi

S3_PORT_SAVED=""
if [[ -f "$PORTS_FILE" ]]; then
  S3_PORT_SAVED="$(sed -n 's/^S3_PORT=\([0-9][0-9]*\)$/\1/p' "$PORTS_FILE" | tail -n 1)"
fi
S3_RUNNING_PORT=""
if [[ -n "$S3_PORT_SAVED" && "$("$S3_CTL" status)" == running ]] &&
  (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT_SAVED") 2>/dev/null; then
  S3_RUNNING_PORT="$S3_PORT_SAVED"
fi

resolve_port "PostgreSQL primary" TELEMETRY_PG_PORT "$PG_PORT_SAVED" "$PG_PRIMARY_RUNNING_PORT"
PG_PORT="$RESOLVED_PORT"
resolve_port "PostgreSQL replica" TELEMETRY_PG_REPLICA_PORT "$PG_REPLICA_PORT_SAVED" "$PG_REPLICA_RUNNING_PORT"
PG_REPLICA_PORT="$RESOLVED_PORT"
resolve_port "PostgreSQL warehouse" TELEMETRY_PG_WAREHOUSE_PORT "$PG_WAREHOUSE_PORT_SAVED" \
  "$PG_WAREHOUSE_RUNNING_PORT"
PG_WAREHOUSE_PORT="$RESOLVED_PORT"
resolve_port "Redis" TELEMETRY_REDIS_PORT "$REDIS_PORT_SAVED" "$REDIS_RUNNING_PORT"
REDIS_PORT="$RESOLVED_PORT"
resolve_port "Kafka" TELEMETRY_KAFKA_PORT "$KAFKA_PORT_SAVED" "$KAFKA_RUNNING_PORT"
KAFKA_PORT="$RESOLVED_PORT"
resolve_port "Kafka controller" TELEMETRY_KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT_SAVED" \
  "$KAFKA_CONTROLLER_RUNNING_PORT"
KAFKA_CONTROLLER_PORT="$RESOLVED_PORT"
resolve_port "Alertmanager" TELEMETRY_ALERTMANAGER_PORT "$ALERTMANAGER_PORT_SAVED" \
  "$ALERTMANAGER_RUNNING_PORT"
ALERTMANAGER_PORT="$RESOLVED_PORT"
resolve_port "Mosquitto" TELEMETRY_MQTT_PORT "$MQTT_PORT_SAVED" "$MQTT_RUNNING_PORT"
MQTT_PORT="$RESOLVED_PORT"
resolve_port "S3Proxy" TELEMETRY_S3_PORT "$S3_PORT_SAVED" "$S3_RUNNING_PORT"
S3_PORT="$RESOLVED_PORT"

printf 'PG_PORT=%s\nPG_REPLICA_PORT=%s\nREDIS_PORT=%s\nKAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\nALERTMANAGER_PORT=%s\n' \
  "$PG_PORT" "$PG_REPLICA_PORT" "$REDIS_PORT" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" \
  "$ALERTMANAGER_PORT" >"$PORTS_FILE.tmp"
printf 'MQTT_PORT=%s\nS3_PORT=%s\nPG_WAREHOUSE_PORT=%s\n' "$MQTT_PORT" "$S3_PORT" \
  "$PG_WAREHOUSE_PORT" >>"$PORTS_FILE.tmp"
mv -f "$PORTS_FILE.tmp" "$PORTS_FILE"

# --------------------------------------------------------------- PostgreSQL
psql_admin() { # psql_admin PORT DB [psql args...]
  local port="$1" db="$2"
  shift 2
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" -d "$db" "$@"
}

# Settings shared by both servers; each data dir includes its own copy as
# telemetry.conf (written before every start, so port changes are picked up).
# TELEMETRY_PG_FSYNC=off (the tests' stack, scripts/test.sh): commits still
# write their WAL to the kernel before they return, so a killed PostgreSQL
# (the robustness tests' kill -9) loses nothing committed; only a crash of the
# machine itself could. It takes the disk's sync latency out of the tests,
# which commit in small transactions: a CI machine whose disk synced slowly
# ran the Postgres-heavy tests 10-70x slower than this one (session 16).
# Benchmarks and the demo keep the default, on.
write_pg_conf() { # write_pg_conf DATADIR PORT [SHARED_BUFFERS]
  local datadir="$1" port="$2" buffers="${3:-${TELEMETRY_PG_SHARED_BUFFERS:-2GB}}"
  as_pg tee "$datadir/telemetry.conf" >/dev/null <<EOF
# Written by deploy/local/up.sh on every start: edits here are overwritten.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$PG_SOCK_DIR'
shared_buffers = $buffers
effective_cache_size = 8GB
max_connections = 200
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
fsync = ${TELEMETRY_PG_FSYNC:-on}
EOF
}

# DEV ONLY: trust authentication for every loopback connection (and the
# unix socket), no passwords. Never use this configuration outside a
# developer machine or CI.
write_pg_hba() { # write_pg_hba DATADIR
  as_pg tee "$1/pg_hba.conf" >/dev/null <<'EOF'
# Written by deploy/local/up.sh. DEV ONLY: trust auth on loopback, no passwords.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
host    all          all   ::1/128        trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
host    replication  all   ::1/128        trust
EOF
}

pg_start() { # pg_start DATADIR LABEL
  local datadir="$1" label="$2"
  log "starting PostgreSQL $label"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$datadir" -l "$PG_DIR/$label.log" -w -t 120 start >/dev/null; then
    tail -n 30 "$PG_DIR/$label.log" >&2 || true
    die "PostgreSQL $label failed to start (log: $PG_DIR/$label.log)"
  fi
}

wait_pg_ready() { # wait_pg_ready PORT LABEL
  local i
  for ((i = 0; i < 600; i++)); do
    if pg_isready -q -h 127.0.0.1 -p "$1" -d postgres; then return 0; fi
    sleep 0.1
  done
  die "PostgreSQL $2 on port $1 is not ready after 60s"
}

pg_sysid() { # pg_sysid DATADIR: the cluster's system identifier
  as_pg "$PG_BIN/pg_controldata" -D "$1" 2>/dev/null |
    sed -n 's/^Database system identifier: *//p'
}

pg_init() { # pg_init DATADIR LABEL: a new cluster, unless DATADIR holds one
  local datadir="$1" label="$2"
  [[ -f "$datadir/PG_VERSION" ]] && return 0
  log "initdb PostgreSQL $label in $datadir"
  as_pg rm -rf "$datadir"
  as_pg "$PG_BIN/initdb" -D "$datadir" -U "$PG_SUPERUSER" --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$STATE_DIR/initdb-$label.log" 2>&1 ||
    { cat "$STATE_DIR/initdb-$label.log" >&2; die "initdb ($label) failed"; }
  printf "\n# Local telemetry stack settings (deploy/local/up.sh)\ninclude 'telemetry.conf'\n" |
    as_pg tee -a "$datadir/postgresql.conf" >/dev/null
  write_pg_hba "$datadir"
}

# a) primary
pg_init "$PG_PRIMARY_DATA" primary
if [[ -z "$PG_PRIMARY_RUNNING_PORT" ]]; then
  write_pg_conf "$PG_PRIMARY_DATA" "$PG_PORT"
  pg_start "$PG_PRIMARY_DATA" primary
fi
wait_pg_ready "$PG_PORT" primary

# Roles and databases (idempotent). The telemetry role owns the application
# databases; replication itself uses the postgres superuser.
psql_admin "$PG_PORT" postgres <<'EOF'
SELECT 'CREATE ROLE telemetry LOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'telemetry') \gexec
SELECT 'CREATE DATABASE telemetry OWNER telemetry'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'telemetry') \gexec
SELECT 'CREATE DATABASE telemetry_analytics OWNER telemetry'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'telemetry_analytics') \gexec
EOF

# b) hot standby
PRIMARY_SYSID="$(pg_sysid "$PG_PRIMARY_DATA")"
rebuild_replica=0
if [[ ! -f "$PG_REPLICA_DATA/PG_VERSION" || ! -f "$PG_REPLICA_DATA/standby.signal" ]]; then
  rebuild_replica=1
elif [[ "$(pg_sysid "$PG_REPLICA_DATA")" != "$PRIMARY_SYSID" ]]; then
  log "replica belongs to an older primary: rebuilding it"
  rebuild_replica=1
fi
if [[ "$rebuild_replica" -eq 1 ]]; then
  if pg_running "$PG_REPLICA_DATA"; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_REPLICA_DATA" -m fast -w stop >/dev/null || true
  fi
  PG_REPLICA_RUNNING_PORT=""
  as_pg rm -rf "$PG_REPLICA_DATA"
  psql_admin "$PG_PORT" postgres -c \
    "SELECT pg_drop_replication_slot('$PG_REPLICATION_SLOT') FROM pg_replication_slots WHERE slot_name = '$PG_REPLICATION_SLOT'" >/dev/null
  log "pg_basebackup primary -> $PG_REPLICA_DATA"
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" \
    -D "$PG_REPLICA_DATA" -R -X stream -C -S "$PG_REPLICATION_SLOT" --checkpoint=fast ||
    die "pg_basebackup failed"
fi
if [[ -z "$PG_REPLICA_RUNNING_PORT" ]]; then
  # primary_conninfo (written by pg_basebackup -R) must follow the primary's port.
  as_pg sed -i -E "/^primary_conninfo/ s/port=[0-9]+/port=$PG_PORT/" \
    "$PG_REPLICA_DATA/postgresql.auto.conf"
  write_pg_conf "$PG_REPLICA_DATA" "$PG_REPLICA_PORT"
  pg_start "$PG_REPLICA_DATA" replica
fi
wait_pg_ready "$PG_REPLICA_PORT" replica
for ((i = 0; ; i++)); do
  status="$(psql_admin "$PG_REPLICA_PORT" postgres -At -c 'SELECT status FROM pg_stat_wal_receiver' 2>/dev/null || true)"
  [[ "$status" == streaming ]] && break
  ((i < 300)) || die "replica is not streaming from the primary after 30s (status '$status', log: $PG_DIR/replica.log)"
  sleep 0.1
done
for ((i = 0; ; i++)); do
  # The databases are created on the primary; wait until they replayed.
  n="$(psql_admin "$PG_REPLICA_PORT" postgres -At -c \
    "SELECT count(*) FROM pg_database WHERE datname IN ('telemetry', 'telemetry_analytics')" 2>/dev/null || true)"
  [[ "$n" == 2 ]] && break
  ((i < 300)) || die "replica has not replayed the telemetry databases after 30s"
  sleep 0.1
done

# c) the analytics warehouse: a cluster of its own (telemetry-export
# --pg_warehouse loads it, telemetry-query --pg_warehouse reads it), so that
# its outage is an outage of the warehouse alone.
pg_init "$PG_WAREHOUSE_DATA" warehouse
if [[ -z "$PG_WAREHOUSE_RUNNING_PORT" ]]; then
  write_pg_conf "$PG_WAREHOUSE_DATA" "$PG_WAREHOUSE_PORT" "${TELEMETRY_PG_WAREHOUSE_SHARED_BUFFERS:-512MB}"
  pg_start "$PG_WAREHOUSE_DATA" warehouse
fi
wait_pg_ready "$PG_WAREHOUSE_PORT" warehouse
psql_admin "$PG_WAREHOUSE_PORT" postgres <<'EOF'
SELECT 'CREATE ROLE telemetry LOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'telemetry') \gexec
SELECT 'CREATE DATABASE telemetry_warehouse OWNER telemetry'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'telemetry_warehouse') \gexec
EOF

# -------------------------------------------------------------------- Redis
if [[ -z "$REDIS_RUNNING_PORT" ]]; then
  old_pid="$(read_pidfile "$REDIS_PIDFILE")"
  if pid_alive "$old_pid" redis-server; then
    log "stopping stale redis-server (pid $old_pid)"
    kill "$old_pid" 2>/dev/null || true
    wait_pid_gone "$old_pid" 10 || kill -9 "$old_pid" 2>/dev/null || true
  fi
  rm -f "$REDIS_PIDFILE"
  log "starting redis-server"
  (cd "$REDIS_DIR" && redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save '' --appendonly no --daemonize yes --dir "$REDIS_DIR" \
    --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_DIR/redis.log" </dev/null >/dev/null 2>&1 9>&-) ||
    die "redis-server failed to start (log: $REDIS_DIR/redis.log)"
fi
for ((i = 0; ; i++)); do
  [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" == PONG ]] && break
  ((i < 300)) || { tail -n 20 "$REDIS_DIR/redis.log" >&2 || true; die "redis on port $REDIS_PORT is not answering after 30s"; }
  sleep 0.1
done

# -------------------------------------------------------------------- Kafka
if [[ -z "$KAFKA_RUNNING_PORT" ]]; then
  kafka_stop KILL # a JVM of ours that lost its port file
  kafka_start "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
fi
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
# The platform's topics, by its own admin step (idempotent: creates what is
# missing, applies the configured retention to what exists).
"$ADMIN_BIN" create-topics --kafka_brokers="$KAFKA_BROKERS" >"$KAFKA_DIR/topics.log" 2>&1 ||
  { cat "$KAFKA_DIR/topics.log" >&2; die "telemetry-admin create-topics failed"; }

# ------------------------------------------------------------- Alertmanager
# Our own process on our own port: a system-wide prometheus-alertmanager
# service (the Debian package enables one on :9093 where systemd runs) is
# neither needed nor touched. No clustering (--cluster.listen-address=), so
# nothing listens on a gossip port either.
if [[ -z "$ALERTMANAGER_RUNNING_PORT" ]]; then
  alertmanager_stop || die "a stale Alertmanager of $STATE_DIR could not be stopped"
  mkdir -p "$AM_DATA"
  cat >"$AM_CONF" <<'EOF'
# Written by deploy/local/up.sh on every start: edits here are overwritten.
# Every alert goes to a receiver without integrations: it is kept and listed
# (GET /api/v2/alerts), and nothing is sent anywhere.
route:
  receiver: blackhole
  group_by: ['...']
receivers:
  - name: blackhole
EOF
  if [[ -f "$AM_LOG" ]]; then mv -f "$AM_LOG" "$AM_LOG.1"; fi
  log "starting Prometheus Alertmanager ($AM_BIN) on 127.0.0.1:$ALERTMANAGER_PORT"
  # setsid: own session, so a Ctrl-C in this terminal later does not stop it.
  setsid "$AM_BIN" --config.file="$AM_CONF" --storage.path="$AM_DATA" \
    --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address= \
    </dev/null >"$AM_LOG" 2>&1 9>&- &
  am_pid=$!
  printf '%s\n' "$am_pid" >"$AM_PIDFILE"
  for ((i = 0; ; i++)); do
    alertmanager_ready "$ALERTMANAGER_PORT" && break
    if ! kill -0 "$am_pid" 2>/dev/null; then
      rm -f "$AM_PIDFILE"
      tail -n 30 "$AM_LOG" >&2 || true
      die "Alertmanager exited during start (log: $AM_LOG)"
    fi
    if ((i >= 300)); then
      tail -n 30 "$AM_LOG" >&2 || true
      alertmanager_stop || true
      die "Alertmanager on port $ALERTMANAGER_PORT is not ready after 30s (log: $AM_LOG)"
    fi
    sleep 0.1
  done
fi
ALERTMANAGER_URL="http://127.0.0.1:$ALERTMANAGER_PORT"

# ---------------------------------------------------------------- Mosquitto
# Our own process on our own port (not the system service the package may
# run on :1883), as the mosquitto user when we are root.
if [[ -z "$MQTT_RUNNING_PORT" ]]; then
  "$MOSQUITTO_CTL" stop # a stale broker of ours that lost its port
  "$MOSQUITTO_CTL" start "$MQTT_PORT"
fi

# ------------------------------------------------------------------ S3Proxy
if [[ -z "$S3_RUNNING_PORT" ]]; then
  "$S3_CTL" stop # a stale one of ours that lost its port
  "$S3_CTL" start "$S3_PORT"
fi

# ----------------------------------------------------------------- env file
# (The warehouse is TELEMETRY_WAREHOUSE, not TELEMETRY_PG_WAREHOUSE: that name
# would fill --pg_warehouse of every export and query service started from
# this environment, the tests' included; the scripts pass it where wanted.)
cat >"$ENV_FILE.tmp" <<EOF
TELEMETRY_PG_PRIMARY=postgresql://telemetry@127.0.0.1:$PG_PORT/telemetry
TELEMETRY_PG_REPLICA=postgresql://telemetry@127.0.0.1:$PG_REPLICA_PORT/telemetry
TELEMETRY_PG_ADMIN=postgresql://postgres@127.0.0.1:$PG_PORT/telemetry
TELEMETRY_PG_REPLICA_ADMIN=postgresql://postgres@127.0.0.1:$PG_REPLICA_PORT/telemetry
TELEMETRY_WAREHOUSE=postgresql://telemetry@127.0.0.1:$PG_WAREHOUSE_PORT/telemetry_warehouse
TELEMETRY_REDIS=127.0.0.1:$REDIS_PORT
TELEMETRY_KAFKA_BROKERS=$KAFKA_BROKERS
TELEMETRY_ALERTMANAGER=$ALERTMANAGER_URL
TELEMETRY_LOCAL_DIR=$STATE_DIR
EOF
"$MOSQUITTO_CTL" env >>"$ENV_FILE.tmp"
"$S3_CTL" env >>"$ENV_FILE.tmp"
mv -f "$ENV_FILE.tmp" "$ENV_FILE"
log "stack up in $((SECONDS - START_TIME))s: PostgreSQL primary :$PG_PORT, replica :$PG_REPLICA_PORT, Redis :$REDIS_PORT, Kafka $KAFKA_BROKERS, Alertmanager $ALERTMANAGER_URL, Mosquitto :$MQTT_PORT, S3Proxy :$S3_PORT"
printf '%s\n' "$ENV_FILE"
