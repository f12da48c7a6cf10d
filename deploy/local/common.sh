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
#   kafka/                devbroker.pid, devbroker.log, bootstrap, state

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
  PG_SOCK_DIR="$PG_DIR/sock"
  REDIS_DIR="$STATE_DIR/redis"
  REDIS_PIDFILE="$REDIS_DIR/redis.pid"
  KAFKA_DIR="$STATE_DIR/kafka"
  KAFKA_PIDFILE="$KAFKA_DIR/devbroker.pid"
  KAFKA_BOOTSTRAP_FILE="$KAFKA_DIR/bootstrap"
  KAFKA_STATE_FILE="$KAFKA_DIR/state"
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
  [[ -f "$PORTS_FILE" ]] || return 0
  local key value
  while IFS='=' read -r key value; do
    [[ "$value" =~ ^[0-9]+$ ]] || continue
    case "$key" in
      PG_PORT) PG_PORT_SAVED="$value" ;;
      PG_REPLICA_PORT) PG_REPLICA_PORT_SAVED="$value" ;;
      REDIS_PORT) REDIS_PORT_SAVED="$value" ;;
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

devbroker_pid() {
  local pid
  pid="$(read_pidfile "$KAFKA_PIDFILE")"
  if pid_alive "$pid" telemetry-devbroker; then printf '%s' "$pid"; fi
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
