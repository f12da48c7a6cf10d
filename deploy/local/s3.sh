#!/usr/bin/env bash
# Runs the local stack's S3-compatible object store: S3Proxy (jars from Maven
# Central, deploy/local/install-s3proxy.sh) on the jclouds filesystem backend,
# checking AWS Signature V4, on 127.0.0.1. deploy/local/up.sh starts it
# through this script, down.sh stops it, tests stop and start it. Its files
# are in <state dir>/s3/:
#   s3proxy.properties  written on every start
#   data/<bucket>/      the objects, one file each (kept across restarts)
#   credentials         the generated access key and secret (kept)
#   s3proxy.pid s3proxy.log
# One bucket, telemetry-archive, exists from the first start.
#
# Usage: deploy/local/s3.sh start [PORT]|stop|kill|restart|status|env
#   start [PORT]  start on PORT (default: S3_PORT of the state dir's ports file)
#   stop          SIGTERM; waits until the JVM is gone
#   kill          SIGKILL, as a crash
#   restart       stop, then start on the same port with the same data
#   status        prints running or stopped
#   env           prints the TELEMETRY_S3_* lines of the stack's env file
# Env: TELEMETRY_LOCAL_DIR (the state dir, as for up.sh),
#      TELEMETRY_S3_HEAP (JVM heap flags, default "-Xms64m -Xmx256m")
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$SCRIPT_DIR/common.sh"

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
[[ $# -ge 1 ]] || { usage >&2; exit 2; }

init_state_paths
S3_DIR="$STATE_DIR/s3"
S3_CONF="$S3_DIR/s3proxy.properties"
S3_DATA="$S3_DIR/data"
S3_PIDFILE="$S3_DIR/s3proxy.pid"
S3_LOG="$S3_DIR/s3proxy.log"
S3_CREDENTIALS="$S3_DIR/credentials"
S3_BUCKET=telemetry-archive
S3_MAIN=org.gaul.s3proxy.Main

s3_pid() {
  local pid
  pid="$(read_pidfile "$S3_PIDFILE")"
  if pid_alive "$pid" "$S3_MAIN"; then printf '%s' "$pid"; fi
}

saved_port() {
  [[ -f "$PORTS_FILE" ]] || return 0
  sed -n 's/^S3_PORT=\([0-9][0-9]*\)$/\1/p' "$PORTS_FILE" | tail -n 1
}

# The key pair is made once and kept, so the env file stays valid across restarts.
load_credentials() {
  mkdir -p "$S3_DIR"
  if [[ ! -f "$S3_CREDENTIALS" ]]; then
    (
      umask 077
      printf 'ACCESS_KEY_ID=telemetry-%s\nSECRET_ACCESS_KEY=%s\n' \
        "$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        "$(head -c 30 /dev/urandom | base64 | tr -d '/+=')" >"$S3_CREDENTIALS.tmp"
    )
    mv -f "$S3_CREDENTIALS.tmp" "$S3_CREDENTIALS"
  fi
  S3_ACCESS_KEY_ID="$(sed -n 's/^ACCESS_KEY_ID=//p' "$S3_CREDENTIALS")"
  S3_SECRET_ACCESS_KEY="$(sed -n 's/^SECRET_ACCESS_KEY=//p' "$S3_CREDENTIALS")"
  [[ -n "$S3_ACCESS_KEY_ID" && -n "$S3_SECRET_ACCESS_KEY" ]] || die "bad $S3_CREDENTIALS: remove it"
}

# It answers: an unsigned request gets S3's 403 (AccessDenied) from it.
s3_ready() {
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null)" == 403 ]]
}

s3_start() {
  local port="$1" pid
  init_s3proxy_install_paths
  [[ -f "$S3PROXY_LIBS/.complete" ]] ||
    die "S3Proxy jars not installed in $S3PROXY_LIBS: run deploy/local/install-s3proxy.sh"
  load_credentials
  mkdir -p "$S3_DATA/$S3_BUCKET"
  cat >"$S3_CONF" <<EOF
# Written by deploy/local/s3.sh on every start: edits here are overwritten.
s3proxy.endpoint=http://127.0.0.1:$port
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3_ACCESS_KEY_ID
s3proxy.credential=$S3_SECRET_ACCESS_KEY
jclouds.provider=filesystem-nio2
jclouds.filesystem.basedir=$S3_DATA
EOF
  chmod 600 "$S3_CONF"
  if [[ -f "$S3_LOG" ]]; then mv -f "$S3_LOG" "$S3_LOG.1"; fi
  log "starting S3Proxy $S3PROXY_VERSION on 127.0.0.1:$port (bucket $S3_BUCKET)"
  # setsid: own session, so a Ctrl-C in this terminal later does not stop it;
  # 9>&-: not holding the state dir's lock (up.sh holds it on fd 9).
  # shellcheck disable=SC2086
  setsid java ${TELEMETRY_S3_HEAP:--Xms64m -Xmx256m} -Djava.awt.headless=true \
    -Dlogback.configurationFile="$S3PROXY_LOGBACK" -cp "$S3PROXY_LIBS/*" \
    "$S3_MAIN" --properties "$S3_CONF" </dev/null >"$S3_LOG" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$S3_PIDFILE"
  wait_started S3Proxy "$pid" "$S3_PIDFILE" "$S3_LOG" 60 s3_ready "$port"
}

# s3_stop SIGNAL
s3_stop() {
  local pid
  pid="$(s3_pid)"
  [[ -n "$pid" ]] || { rm -f "$S3_PIDFILE"; return 0; }
  stop_pid S3Proxy "$pid" "$1" 30
  rm -f "$S3_PIDFILE"
}

case "$1" in
  start | stop | kill | restart | status) daemon_ctl S3Proxy S3_PORT s3 "$@" ;;
  env)
    port="$(saved_port)"
    [[ "$port" =~ ^[0-9]+$ ]] || die "no S3_PORT in $PORTS_FILE: run deploy/local/up.sh"
    load_credentials
    cat <<EOF
TELEMETRY_S3_ENDPOINT=http://127.0.0.1:$port
TELEMETRY_S3_BUCKET=$S3_BUCKET
TELEMETRY_S3_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID
TELEMETRY_S3_SECRET_ACCESS_KEY=$S3_SECRET_ACCESS_KEY
TELEMETRY_S3_DATA_DIR=$S3_DATA
EOF
    ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
