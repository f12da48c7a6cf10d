#!/usr/bin/env bash
# Controls the analytics warehouse of deploy/local/up.sh (its own PostgreSQL
# cluster), for the outage tests and by hand. Data and port survive
# stop/start.
#
# Usage: deploy/local/warehouse.sh stop|kill|start|status
#   stop    pg_ctl stop -m fast (sessions are ended, the server shuts down)
#   kill    pg_ctl stop -m immediate, as a crash (the next start recovers)
#   start   starts it again on the same port with the same data
#   status  prints running or stopped
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$SCRIPT_DIR/common.sh"

usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
[[ $# -eq 1 ]] || { usage >&2; exit 2; }
init_state_paths
[[ -f "$STATE_DIR/.telemetry-local" ]] || die "no local stack in $STATE_DIR: run deploy/local/up.sh"
[[ -f "$PG_WAREHOUSE_DATA/PG_VERSION" ]] || die "no warehouse in $PG_WAREHOUSE_DATA: run deploy/local/up.sh"

case "$1" in
  stop | kill)
    pg_running "$PG_WAREHOUSE_DATA" || { log "the warehouse is not running"; exit 0; }
    mode=fast
    [[ "$1" == kill ]] && mode=immediate
    as_pg "$PG_BIN/pg_ctl" -D "$PG_WAREHOUSE_DATA" -m "$mode" -w -t 60 stop >/dev/null
    log "the warehouse stopped ($1)"
    ;;
  start)
    if pg_running "$PG_WAREHOUSE_DATA"; then
      log "the warehouse is already running"
      exit 0
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$PG_WAREHOUSE_DATA" -l "$PG_DIR/warehouse.log" -w -t 120 start \
      >/dev/null || die "the warehouse failed to start (log: $PG_DIR/warehouse.log)"
    log "the warehouse is running"
    ;;
  status)
    if pg_running "$PG_WAREHOUSE_DATA"; then echo running; else echo stopped; fi
    ;;
  *) usage >&2; exit 2 ;;
esac
