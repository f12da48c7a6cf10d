#!/usr/bin/env bash
# Runs the Mosquitto broker of the local stack (deploy/local/up.sh starts it through this script,
# down.sh stops it; tests restart it). Its files are in <state dir>/mosquitto/:
#   mosquitto.conf  deploy/mosquitto/mosquitto.conf with its @...@ markers filled in
#   data/           the persistence database (owned by the mosquitto user when run as root)
#   passwd acl      users and their topics, rewritten by start and reload
#   credentials     the generated passwords (kept across runs)
#   mosquitto.pid mosquitto.log
#
# Usage: deploy/mosquitto/mosquitto.sh start [PORT]|stop|kill|restart|reload|status|env
#   start [PORT]  start on PORT (default: MQTT_PORT of the state dir's ports file)
#   stop          SIGTERM: mosquitto saves its database and exits; waits until it is gone
#   kill          SIGKILL, as a crash (what changed since the last autosave is lost)
#   restart       stop, then start on the same port with the same data
#   reload        rewrites passwd and acl, then SIGHUP (mosquitto re-reads them)
#   status        prints running or stopped
#   env           prints the TELEMETRY_MQTT_* lines of the stack's env file
# Env: TELEMETRY_LOCAL_DIR (the state dir, as for up.sh)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../local/common.sh
. "$SCRIPT_DIR/../local/common.sh"

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
[[ $# -ge 1 ]] || { usage >&2; exit 2; }

init_state_paths
MQTT_DIR="$STATE_DIR/mosquitto"
MQTT_CONF="$MQTT_DIR/mosquitto.conf"
MQTT_DATA="$MQTT_DIR/data"
MQTT_PIDFILE="$MQTT_DIR/mosquitto.pid"
MQTT_LOG="$MQTT_DIR/mosquitto.log"
MQTT_PASSWD="$MQTT_DIR/passwd"
MQTT_ACL="$MQTT_DIR/acl"
MQTT_CREDENTIALS="$MQTT_DIR/credentials"
MQTT_BRIDGE_USER=telemetry-bridge
MQTT_DEVICE_USER=telemetry-device
# /usr/sbin is not on an ordinary user's PATH on Debian.
MOSQUITTO_BIN="$(command -v mosquitto 2>/dev/null || printf /usr/sbin/mosquitto)"

mqtt_pid() {
  local pid
  pid="$(read_pidfile "$MQTT_PIDFILE")"
  if pid_alive "$pid" mosquitto; then printf '%s' "$pid"; fi
}

saved_port() {
  [[ -f "$PORTS_FILE" ]] || return 0
  sed -n 's/^MQTT_PORT=\([0-9][0-9]*\)$/\1/p' "$PORTS_FILE" | tail -n 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The passwords are made once and kept, so the env file stays valid across restarts.
load_credentials() {
  if [[ ! -f "$MQTT_CREDENTIALS" ]]; then
    (
      umask 077
      printf 'BRIDGE_PASSWORD=%s\nDEVICE_PASSWORD=%s\n' \
        "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" \
        "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" >"$MQTT_CREDENTIALS.tmp"
    )
    mv -f "$MQTT_CREDENTIALS.tmp" "$MQTT_CREDENTIALS"
  fi
  MQTT_BRIDGE_PASSWORD="$(sed -n 's/^BRIDGE_PASSWORD=//p' "$MQTT_CREDENTIALS")"
  MQTT_DEVICE_PASSWORD="$(sed -n 's/^DEVICE_PASSWORD=//p' "$MQTT_CREDENTIALS")"
  [[ -n "$MQTT_BRIDGE_PASSWORD" && -n "$MQTT_DEVICE_PASSWORD" ]] ||
    die "$MQTT_CREDENTIALS is incomplete: delete it and run $0 reload"
}

# passwd and acl, readable by the mosquitto user (it re-reads them on SIGHUP after dropping
# root). Written next to the live files and renamed over them.
write_auth_files() {
  load_credentials
  command -v mosquitto_passwd >/dev/null 2>&1 ||
    die "mosquitto_passwd not found: run deploy/local/install-deps.sh (Debian package mosquitto)"
  rm -f "$MQTT_PASSWD.tmp"
  (umask 077 && touch "$MQTT_PASSWD.tmp")
  mosquitto_passwd -c -b "$MQTT_PASSWD.tmp" "$MQTT_BRIDGE_USER" "$MQTT_BRIDGE_PASSWORD"
  mosquitto_passwd -b "$MQTT_PASSWD.tmp" "$MQTT_DEVICE_USER" "$MQTT_DEVICE_PASSWORD"
  cat >"$MQTT_ACL.tmp" <<EOF
# Written by deploy/mosquitto/mosquitto.sh: edits here are overwritten.
# The MQTT bridge reads the devices' readings and the broker's counters and writes error reports.
user $MQTT_BRIDGE_USER
topic read telemetry/#
topic write telemetry-errors/#
topic read \$SYS/#

# A device (tests, load generation) publishes readings.
user $MQTT_DEVICE_USER
topic write telemetry/#
EOF
  local f
  for f in "$MQTT_PASSWD" "$MQTT_ACL"; do
    if [[ "$IS_ROOT" -eq 1 ]]; then
      chown root:mosquitto "$f.tmp"
      chmod 0640 "$f.tmp"
    else
      chmod 0600 "$f.tmp"
    fi
    mv -f "$f.tmp" "$f"
  done
}

mqtt_start() {
  local port="$1" i pid run_user
  [[ -x "$MOSQUITTO_BIN" ]] ||
    die "mosquitto not found: run deploy/local/install-deps.sh (Debian package mosquitto)"
  [[ -z "$(mqtt_pid)" ]] || die "mosquitto is already running (pid $(mqtt_pid))"
  mkdir -p "$MQTT_DIR" "$MQTT_DATA"
  if [[ "$IS_ROOT" -eq 1 ]]; then
    id mosquitto >/dev/null 2>&1 || die "running as root needs the 'mosquitto' OS user (package mosquitto)"
    run_user=mosquitto
    chown mosquitto:mosquitto "$MQTT_DATA"
    runuser -u mosquitto -- test -w "$MQTT_DATA" ||
      die "the mosquitto user cannot write $MQTT_DATA: TELEMETRY_LOCAL_DIR and its parents must be traversable (o+x)"
  else
    run_user="$(id -un)"
  fi
  chmod 0700 "$MQTT_DATA"
  write_auth_files
  sed -e "s|@PORT@|$port|g" -e "s|@USER@|$run_user|g" -e "s|@DATA_DIR@|$MQTT_DATA|g" \
    -e "s|@PASSWORD_FILE@|$MQTT_PASSWD|g" -e "s|@ACL_FILE@|$MQTT_ACL|g" \
    "$SCRIPT_DIR/mosquitto.conf" >"$MQTT_CONF.tmp"
  mv -f "$MQTT_CONF.tmp" "$MQTT_CONF"
  if [[ -f "$MQTT_LOG" ]]; then mv -f "$MQTT_LOG" "$MQTT_LOG.1"; fi
  log "starting mosquitto on 127.0.0.1:$port"
  # setsid: own session, so a Ctrl-C in this terminal later does not stop it. 9>&-: not the
  # state dir's lock (up.sh holds it on fd 9).
  setsid "$MOSQUITTO_BIN" -c "$MQTT_CONF" </dev/null >"$MQTT_LOG" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$MQTT_PIDFILE"
  for ((i = 0; ; i++)); do
    port_open "$port" && break
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$MQTT_PIDFILE"
      tail -n 20 "$MQTT_LOG" >&2 || true
      die "mosquitto exited during start (log: $MQTT_LOG)"
    fi
    ((i < 300)) || { tail -n 20 "$MQTT_LOG" >&2 || true; die "mosquitto is not listening on $port after 30s (log: $MQTT_LOG)"; }
    sleep 0.1
  done
}

# mqtt_stop SIGNAL: TERM saves the database first (give it time for a large one), KILL does not.
mqtt_stop() {
  local sig="$1" pid
  pid="$(mqtt_pid)"
  [[ -n "$pid" ]] || { rm -f "$MQTT_PIDFILE"; return 0; }
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_pid_gone "$pid" 60; then
    log "mosquitto (pid $pid) did not stop after 60s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 10 || { log "mosquitto pid $pid survives SIGKILL"; return 1; }
  fi
  rm -f "$MQTT_PIDFILE"
}

case "$1" in
  start)
    port="${2:-$(saved_port)}"
    [[ "$port" =~ ^[0-9]+$ ]] || die "no port given and no MQTT_PORT in $PORTS_FILE: run deploy/local/up.sh"
    if [[ -n "$(mqtt_pid)" ]]; then
      log "mosquitto is already running (pid $(mqtt_pid))"
      exit 0
    fi
    mqtt_start "$port"
    log "mosquitto running (pid $(mqtt_pid)) on 127.0.0.1:$port"
    ;;
  stop | kill)
    pid="$(mqtt_pid)"
    [[ -n "$pid" ]] || { log "mosquitto is not running"; exit 0; }
    if [[ "$1" == stop ]]; then mqtt_stop TERM; else mqtt_stop KILL; fi
    log "mosquitto (pid $pid) stopped ($1)"
    ;;
  restart)
    port="$(saved_port)"
    [[ "$port" =~ ^[0-9]+$ ]] || die "no MQTT_PORT in $PORTS_FILE: run deploy/local/up.sh"
    mqtt_stop TERM
    mqtt_start "$port"
    log "mosquitto restarted (pid $(mqtt_pid)) on 127.0.0.1:$port"
    ;;
  reload)
    pid="$(mqtt_pid)"
    [[ -n "$pid" ]] || die "mosquitto is not running"
    write_auth_files
    kill -HUP "$pid"
    log "mosquitto (pid $pid) reloads its password and ACL files"
    ;;
  status)
    if [[ -n "$(mqtt_pid)" ]]; then printf 'running\n'; else printf 'stopped\n'; fi
    ;;
  env)
    port="$(saved_port)"
    [[ "$port" =~ ^[0-9]+$ ]] || die "no MQTT_PORT in $PORTS_FILE: run deploy/local/up.sh"
    load_credentials
    cat <<EOF
TELEMETRY_MQTT_HOST=127.0.0.1
TELEMETRY_MQTT_PORT=$port
TELEMETRY_MQTT_BRIDGE_USER=$MQTT_BRIDGE_USER
TELEMETRY_MQTT_BRIDGE_PASSWORD=$MQTT_BRIDGE_PASSWORD
TELEMETRY_MQTT_DEVICE_USER=$MQTT_DEVICE_USER
TELEMETRY_MQTT_DEVICE_PASSWORD=$MQTT_DEVICE_PASSWORD
TELEMETRY_MQTT_PASSWORD_FILE=$MQTT_PASSWD
TELEMETRY_MQTT_ACL_FILE=$MQTT_ACL
TELEMETRY_MQTT_PID_FILE=$MQTT_PIDFILE
TELEMETRY_MQTT_CTL=$SCRIPT_DIR/mosquitto.sh
EOF
    ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
