#!/usr/bin/env bash
# Stops everything deploy/local/up.sh started in the state dir
# (${TELEMETRY_LOCAL_DIR:-/tmp/telemetry-local-<uid>}): Alertmanager, Mosquitto,
# Apache Kafka, redis-server, the PostgreSQL warehouse, hot standby and primary. Idempotent.
#
# Usage: deploy/local/down.sh [--purge]
#   --purge   also delete the state dir (databases, logs, env file)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$SCRIPT_DIR/common.sh"

PURGE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --purge) PURGE=1; shift ;;
    -h | --help) sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

init_state_paths
if [[ ! -d "$STATE_DIR" ]]; then
  log "nothing to stop: $STATE_DIR does not exist"
  exit 0
fi
[[ -f "$STATE_DIR/.telemetry-local" ]] ||
  die "$STATE_DIR is not a telemetry local state dir (no .telemetry-local marker): not touching it"
lock_state_dir
read_ports_file
failed=0

# Alertmanager (SIGTERM: it saves its silences and notification log).
AM_PID="$(alertmanager_pid)"
if [[ -n "$AM_PID" ]]; then
  log "stopping Alertmanager (pid $AM_PID)"
  alertmanager_stop || failed=1
fi

# Mosquitto (SIGTERM: it saves its database, so queued messages survive).
MOSQUITTO_CTL="$SCRIPT_DIR/../mosquitto/mosquitto.sh"
if [[ "$("$MOSQUITTO_CTL" status)" == running ]]; then
  log "stopping mosquitto"
  "$MOSQUITTO_CTL" stop || failed=1
fi

# S3Proxy (its objects are files: nothing to save).
if [[ "$("$SCRIPT_DIR/s3.sh" status)" == running ]]; then
  log "stopping S3Proxy"
  "$SCRIPT_DIR/s3.sh" stop || failed=1
fi

# Kafka: a controlled shutdown (its logs closed cleanly, so the next start
# needs no recovery).
KAFKA_PID="$(kafka_pid)"
if [[ -n "$KAFKA_PID" ]]; then
  log "stopping Kafka (pid $KAFKA_PID)"
  kafka_stop TERM || failed=1
fi

# Redis
REDIS_PID="$(read_pidfile "$REDIS_PIDFILE")"
if pid_alive "$REDIS_PID" redis-server; then
  log "stopping redis-server (pid $REDIS_PID)"
  if [[ -n "$REDIS_PORT_SAVED" ]]; then
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT_SAVED" shutdown nosave >/dev/null 2>&1 || true
  fi
  if ! wait_pid_gone "$REDIS_PID" 10; then
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    if ! wait_pid_gone "$REDIS_PID" 10; then
      kill -KILL "$REDIS_PID" 2>/dev/null || true
      wait_pid_gone "$REDIS_PID" 5 || { log "redis pid $REDIS_PID survives SIGKILL"; failed=1; }
    fi
  fi
fi
rm -f "$REDIS_PIDFILE"

# PostgreSQL: standby first, then the primary.
pg_stop() { # pg_stop DATADIR LABEL
  local datadir="$1" label="$2" pid
  pg_running "$datadir" || return 0
  pid="$(pg_pidfile_line "$datadir" 1)"
  log "stopping PostgreSQL $label (pid $pid)"
  if as_pg "$PG_BIN/pg_ctl" -D "$datadir" -m fast -w -t 60 stop >/dev/null; then
    return 0
  fi
  log "PostgreSQL $label did not stop with -m fast: trying -m immediate"
  as_pg "$PG_BIN/pg_ctl" -D "$datadir" -m immediate -w -t 30 stop >/dev/null || true
  wait_pid_gone "$pid" 10 || { log "PostgreSQL $label (pid $pid) is still running"; failed=1; }
}
if [[ -d "$PG_DIR" ]]; then
  pg_stop "$PG_WAREHOUSE_DATA" warehouse
  pg_stop "$PG_REPLICA_DATA" replica
  pg_stop "$PG_PRIMARY_DATA" primary
fi

[[ "$failed" -eq 0 ]] || die "some processes could not be stopped (see above)"

if [[ "$PURGE" -eq 1 ]]; then
  log "removing $STATE_DIR"
  rm -rf -- "$STATE_DIR"
else
  rm -f "$STATE_DIR/env"
fi
log "local stack is down"
