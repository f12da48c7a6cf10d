# shellcheck shell=bash
# Variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034
# Shared helpers for deploy/local/*.sh. Sourced, never executed.
#
# Layout of the state dir (${TELEMETRY_LOCAL_DIR:-/tmp/telemetry-local-<uid>}):
#   .telemetry-local      marker (down.sh --purge only deletes dirs with it)
#   .lock                 flock for up.sh/down.sh
#   ports                 ports chosen by up.sh (reused on the next run)
#   env                   the env file for services and tests
#   pg/                   owned by the postgres user when run as root
#     primary/ replica/   data dirs
#     primary.log replica.log
#     sock/               unix sockets of both servers
#   redis/                redis working dir, redis.pid, redis.log
#   kafka/                Apache Kafka (KRaft, broker + controller in one JVM):
#     server.properties   written by up.sh before every start
#     data/               the log directory (formatted once, kept across restarts)
#     kafka.pid kafka.log
#   alertmanager/         Prometheus Alertmanager (Debian's prometheus-alertmanager):
#     alertmanager.yml    written by up.sh before every start
#     data/               its --storage.path (silences, notification log)
#     alertmanager.pid alertmanager.log

PG_BIN=/usr/lib/postgresql/15/bin
PG_SUPERUSER=postgres
PG_REPLICATION_SLOT=telemetry_replica

log() { printf '[local] %s\n' "$*" >&2; }
die() { printf '[local] ERROR: %s\n' "$*" >&2; exit 1; }

IS_ROOT=0
if [[ "$(id -u)" -eq 0 ]]; then IS_ROOT=1; fi

init_state_paths() {
  local dir="${TELEMETRY_LOCAL_DIR:-/tmp/telemetry-local-$(id -u)}"
  [[ -n "$dir" ]] || die "TELEMETRY_LOCAL_DIR is empty"
  # Values go into a plain KEY=value env file: keep the path plain too.
  [[ "$dir" =~ ^[A-Za-z0-9_./+@%:-]+$ ]] ||
    die "TELEMETRY_LOCAL_DIR '$dir' must not contain spaces or shell special characters"
  STATE_DIR="$(realpath -m -- "$dir")"
  [[ "$STATE_DIR" != "/" ]] || die "TELEMETRY_LOCAL_DIR must not be /"
  PORTS_FILE="$STATE_DIR/ports"
  ENV_FILE="$STATE_DIR/env"
  PG_DIR="$STATE_DIR/pg"
  PG_PRIMARY_DATA="$PG_DIR/primary"
  PG_REPLICA_DATA="$PG_DIR/replica"
  PG_WAREHOUSE_DATA="$PG_DIR/warehouse"
  PG_SOCK_DIR="$PG_DIR/sock"
  REDIS_DIR="$STATE_DIR/redis"
  REDIS_PIDFILE="$REDIS_DIR/redis.pid"
  KAFKA_DIR="$STATE_DIR/kafka"
  KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
  KAFKA_DATA="$KAFKA_DIR/data"
  KAFKA_CONF="$KAFKA_DIR/server.properties"
  KAFKA_LOG="$KAFKA_DIR/kafka.log"
  AM_DIR="$STATE_DIR/alertmanager"
  AM_PIDFILE="$AM_DIR/alertmanager.pid"
  AM_CONF="$AM_DIR/alertmanager.yml"
  AM_DATA="$AM_DIR/data"
  AM_LOG="$AM_DIR/alertmanager.log"
}

# The pinned Kafka version (deploy/local/kafka/pom.xml) and where
# install-kafka.sh puts its jars.
init_kafka_install_paths() {
  local here pom cache
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  KAFKA_POM="$here/kafka/pom.xml"
  KAFKA_LOG4J="$here/kafka/log4j2.properties"
  KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")"
  [[ -n "$KAFKA_VERSION" ]] || die "no <kafka.version> in $KAFKA_POM"
  pom="$(sha256sum "$KAFKA_POM" | cut -c1-12)"
  cache="${TELEMETRY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/telemetry}"
  KAFKA_HOME_DIR="$cache/kafka-$KAFKA_VERSION-$pom"
  KAFKA_LIBS="$KAFKA_HOME_DIR/libs"
}

# The pinned S3Proxy (deploy/local/s3proxy/pom.xml) and where
# install-s3proxy.sh puts its jars.
init_s3proxy_install_paths() {
  local here pom cache
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  S3PROXY_POM="$here/s3proxy/pom.xml"
  S3PROXY_LOGBACK="$here/s3proxy/logback.xml"
  S3PROXY_VERSION="$(sed -n 's:.*<s3proxy.version>\(.*\)</s3proxy.version>.*:\1:p' "$S3PROXY_POM")"
  [[ -n "$S3PROXY_VERSION" ]] || die "no <s3proxy.version> in $S3PROXY_POM"
  pom="$(sha256sum "$S3PROXY_POM" | cut -c1-12)"
  cache="${TELEMETRY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/telemetry}"
  S3PROXY_LIBS="$cache/s3proxy-$S3PROXY_VERSION-$pom/libs"
}

# install_jars POM LIBS MAIN_JAR LABEL: the runtime jars of POM's dependencies
# from Maven Central into LIBS (kept: nothing is downloaded when LIBS is
# complete), checking that MAIN_JAR is among them. Needs java and mvn.
install_jars() {
  local pom="$1" libs="$2" main_jar="$3" label="$4" tmp
  [[ -f "$libs/.complete" ]] && return 0
  command -v java >/dev/null 2>&1 || die "java not found: run deploy/local/install-deps.sh"
  command -v mvn >/dev/null 2>&1 || die "mvn not found: run deploy/local/install-deps.sh"
  log "installing $label from Maven Central into $libs"
  tmp="$libs.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime >&2; then
    rm -rf "$tmp"
    die "mvn could not fetch $label (Maven Central reachable? see the output above)"
  fi
  [[ -f "$tmp/$main_jar" ]] || { rm -rf "$tmp"; die "$main_jar missing after mvn"; }
  touch "$tmp/.complete"
  rm -rf "$libs"
  mv "$tmp" "$libs"
  log "$label: $(find "$libs" -name '*.jar' | wc -l) jars in $libs"
}

# The pinned Apache Arrow C++ (deploy/local/arrow/requirements.txt) and where
# install-arrow.sh puts it (cmake/Arrow.cmake computes the same default).
init_arrow_install_paths() {
  local here cache
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  ARROW_REQUIREMENTS="$here/arrow/requirements.txt"
  ARROW_VERSION="$(sed -n 's/^pyarrow==\([0-9.]*\).*/\1/p' "$ARROW_REQUIREMENTS")"
  [[ -n "$ARROW_VERSION" ]] || die "no pyarrow==VERSION in $ARROW_REQUIREMENTS"
  cache="${TELEMETRY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/telemetry}"
  ARROW_ROOT="${TELEMETRY_ARROW_ROOT:-$cache/arrow-$ARROW_VERSION}"
}

# Serialises up.sh / down.sh on the same state dir (fd 9 stays open until
# exit). Every daemon must be started with fd 9 closed (9>&-), or it would
# inherit the lock and hold it for as long as it runs.
lock_state_dir() {
  [[ -d "$STATE_DIR" ]] || return 0
  exec 9>"$STATE_DIR/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 120 9 ||
      die "another up.sh/down.sh holds $STATE_DIR/.lock (waited 120s)"
  fi
}

# Runs a command as the postgres OS user when we are root (PostgreSQL refuses
# to run as root), else as ourselves. Runs from / so that the postgres user
# does not trip over an unreadable current directory. Closes the lock fd.
as_pg() {
  if [[ "$IS_ROOT" -eq 1 ]]; then
    (cd / && runuser -u postgres -- "$@") 9>&-
  else
    (cd / && "$@") 9>&-
  fi
}

read_ports_file() {
  PG_PORT_SAVED=""
  PG_REPLICA_PORT_SAVED=""
  REDIS_PORT_SAVED=""
  KAFKA_PORT_SAVED=""
  KAFKA_CONTROLLER_PORT_SAVED=""
  ALERTMANAGER_PORT_SAVED=""
  [[ -f "$PORTS_FILE" ]] || return 0
  local key value
  while IFS='=' read -r key value; do
    [[ "$value" =~ ^[0-9]+$ ]] || continue
    case "$key" in
      PG_PORT) PG_PORT_SAVED="$value" ;;
      PG_REPLICA_PORT) PG_REPLICA_PORT_SAVED="$value" ;;
      REDIS_PORT) REDIS_PORT_SAVED="$value" ;;
      KAFKA_PORT) KAFKA_PORT_SAVED="$value" ;;
      KAFKA_CONTROLLER_PORT) KAFKA_CONTROLLER_PORT_SAVED="$value" ;;
      ALERTMANAGER_PORT) ALERTMANAGER_PORT_SAVED="$value" ;;
    esac
  done <"$PORTS_FILE"
}

# pid_exists PID: PID is a live process (a zombie counts as gone).
pid_exists() {
  local pid="$1" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || [[ -d "/proc/$pid" ]] || return 1
  state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# pid_alive PID NAME: PID is live and its executable or command line contains
# NAME (redis-server's executable is a symlink to redis-check-rdb, so the
# command line is checked too).
pid_alive() {
  local pid="$1" name="$2" exe cmdline
  pid_exists "$pid" || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ "$exe" == *"$name"* ]] && return 0
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmdline" == *"$name"* ]]
}

# read_pidfile FILE: prints the pid in FILE, or nothing.
read_pidfile() {
  local pid=""
  if [[ -f "$1" ]]; then
    read -r pid <"$1" || true
  fi
  printf '%s' "$pid"
}

# pg_running DATADIR: the cluster in DATADIR is up (postmaster.pid names a
# live postgres process).
pg_running() {
  local pid
  pid="$(pg_pidfile_line "$1" 1)"
  [[ -n "$pid" ]] && pid_alive "$pid" postgres
}

# pg_pidfile_line DATADIR N: line N of postmaster.pid (1 = pid, 4 = port).
pg_pidfile_line() {
  local f="$1/postmaster.pid"
  if [[ "$IS_ROOT" -eq 1 || -r "$f" ]]; then
    sed -n "${2}p" "$f" 2>/dev/null || true
  fi
}

redis_running() {
  pid_alive "$(read_pidfile "$REDIS_PIDFILE")" redis-server
}

# The Alertmanager binary: Debian's package names it prometheus-alertmanager,
# an upstream release alertmanager. Prints nothing when neither is installed.
alertmanager_bin() {
  command -v prometheus-alertmanager 2>/dev/null || command -v alertmanager 2>/dev/null || true
}

# alertmanager_pid: the pid of the local Alertmanager, or nothing.
alertmanager_pid() {
  local pid
  pid="$(read_pidfile "$AM_PIDFILE")"
  if pid_alive "$pid" alertmanager; then printf '%s' "$pid"; fi
}

# alertmanager_ready PORT: GET /-/ready answers 200 (configuration loaded,
# serving).
alertmanager_ready() {
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/-/ready" 2>/dev/null
}

# alertmanager_stop: SIGTERM (it saves its state), SIGKILL after 10 s.
alertmanager_stop() {
  local pid
  pid="$(alertmanager_pid)"
  [[ -n "$pid" ]] || { rm -f "$AM_PIDFILE"; return 0; }
  stop_pid Alertmanager "$pid" TERM 10 || return 1
  rm -f "$AM_PIDFILE"
}

# kafka_pid: the pid of the local Kafka broker's JVM, or nothing.
kafka_pid() {
  local pid
  pid="$(read_pidfile "$KAFKA_PIDFILE")"
  if pid_alive "$pid" kafka.Kafka; then printf '%s' "$pid"; fi
}

# kafka_ready PORT: the broker answers on PORT (its log said it started and the
# port accepts connections).
kafka_ready() {
  grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# kafka_start PORT CONTROLLER_PORT: writes server.properties, formats the log
# directory on the first start and starts the broker (KRaft, broker and
# controller in one JVM, loopback only), then waits until it serves. The data
# directory is kept across restarts (kafka.sh stop/kill/start).
kafka_start() {
  local port="$1" cport="$2" pid cluster_id
  init_kafka_install_paths
  [[ -f "$KAFKA_LIBS/.complete" ]] ||
    die "Apache Kafka jars not installed in $KAFKA_LIBS: run deploy/local/install-kafka.sh"
  mkdir -p "$KAFKA_DIR"
  # The minimal single-node KRaft settings of Kafka's config/server.properties,
  # on loopback, with a static controller quorum (a restart on other ports
  # works) and replication factors of 1. docs/kafka.md says why each is set.
  cat >"$KAFKA_CONF" <<EOF
# Written by deploy/local/up.sh on every start: edits here are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.network.threads=2
num.io.threads=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
auto.create.topics.enable=false
message.max.bytes=${TELEMETRY_KAFKA_MESSAGE_MAX_BYTES:-20971520}
log.retention.check.interval.ms=${TELEMETRY_KAFKA_RETENTION_CHECK_MS:-5000}
EOF
  if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
    # A cluster id is 16 random bytes in URL-safe base64 without padding
    # (what kafka-storage.sh random-uuid prints).
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    log "formatting the Kafka log directory $KAFKA_DATA (cluster $cluster_id)"
    rm -rf "$KAFKA_DATA"
    java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONF" \
      >"$KAFKA_DIR/format.log" 2>&1 ||
      { tail -n 20 "$KAFKA_DIR/format.log" >&2; die "kafka-storage format failed (log: $KAFKA_DIR/format.log)"; }
  fi
  if [[ -f "$KAFKA_LOG" ]]; then mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"; fi
  log "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$port (controller :$cport)"
  # The JVM flags of Kafka's bin/kafka-run-class.sh, with a bounded heap.
  # setsid: own session, so a Ctrl-C in this terminal later does not stop it.
  # shellcheck disable=SC2086
  setsid java -server ${TELEMETRY_KAFKA_HEAP:--Xms512m -Xmx1g} -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$KAFKA_CONF" </dev/null >"$KAFKA_LOG" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
  wait_started Kafka "$pid" "$KAFKA_PIDFILE" "$KAFKA_LOG" 120 kafka_ready "$port"
}

# kafka_stop [SIGNAL]: stops the broker. TERM (default) is a controlled
# shutdown that closes its logs cleanly (SIGKILL after 60 s); KILL is a crash.
kafka_stop() {
  local sig="${1:-TERM}" pid
  pid="$(kafka_pid)"
  [[ -n "$pid" ]] || return 0
  stop_pid Kafka "$pid" "$sig" 60 || return 1
  rm -f "$KAFKA_PIDFILE"
}

# wait_started LABEL PID PIDFILE LOG SECONDS CHECK...: waits until the command
# CHECK... succeeds; dies with the log's tail when PID exits first (removing
# PIDFILE) or after SECONDS.
wait_started() {
  local label="$1" pid="$2" pidfile="$3" logf="$4" secs="$5" i
  shift 5
  for ((i = 0; ; i++)); do
    "$@" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidfile"
      tail -n 30 "$logf" >&2 || true
      die "$label exited during start (log: $logf)"
    fi
    ((i < secs * 10)) || { tail -n 30 "$logf" >&2 || true; die "$label is not ready after ${secs}s (log: $logf)"; }
    sleep 0.1
  done
}

# stop_pid LABEL PID SIGNAL SECONDS: sends SIGNAL (after SIGCONT: a paused
# process cannot act on it), waits SECONDS, then SIGKILL.
stop_pid() {
  local label="$1" pid="$2" sig="$3" wait_s="$4"
  kill -CONT "$pid" 2>/dev/null || true
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_pid_gone "$pid" "$wait_s"; then
    log "$label (pid $pid) did not stop after ${wait_s}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 10 || { log "$label pid $pid survives SIGKILL"; return 1; }
  fi
}

# daemon_ctl LABEL PORT_KEY PREFIX COMMAND [PORT]: start [PORT] | stop | kill |
# restart | status of a daemon of the stack whose script defines PREFIX_pid
# (its live pid or nothing), PREFIX_start PORT and PREFIX_stop SIGNAL; its
# port is the PORT_KEY line of the ports file.
daemon_ctl() {
  local label="$1" key="$2" prefix="$3" cmd="$4" port pid
  port="${5:-}"
  if [[ -z "$port" && -f "$PORTS_FILE" ]]; then
    port="$(sed -n "s/^$key=\([0-9][0-9]*\)$/\1/p" "$PORTS_FILE" | tail -n 1)"
  fi
  pid="$("${prefix}_pid")"
  case "$cmd" in
    start)
      [[ "$port" =~ ^[0-9]+$ ]] || die "no port given and no $key in $PORTS_FILE: run deploy/local/up.sh"
      if [[ -n "$pid" ]]; then
        log "$label is already running (pid $pid)"
        return 0
      fi
      "${prefix}_start" "$port"
      log "$label running (pid $("${prefix}_pid")) on 127.0.0.1:$port"
      ;;
    stop | kill)
      [[ -n "$pid" ]] || { log "$label is not running"; return 0; }
      if [[ "$cmd" == stop ]]; then "${prefix}_stop" TERM; else "${prefix}_stop" KILL; fi
      log "$label (pid $pid) stopped ($cmd)"
      ;;
    restart)
      [[ "$port" =~ ^[0-9]+$ ]] || die "no $key in $PORTS_FILE: run deploy/local/up.sh"
      "${prefix}_stop" TERM
      "${prefix}_start" "$port"
      log "$label restarted (pid $("${prefix}_pid")) on 127.0.0.1:$port"
      ;;
    status)
      if [[ -n "$pid" ]]; then printf 'running\n'; else printf 'stopped\n'; fi
      ;;
    *) return 2 ;;
  esac
}

# wait_pid_gone PID SECONDS
wait_pid_gone() {
  local pid="$1" i
  for ((i = 0; i < $2 * 10; i++)); do
    pid_exists "$pid" || return 0
    sleep 0.1
  done
  return 1
}
