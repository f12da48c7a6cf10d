#!/usr/bin/env bash
# Controls the local Apache Kafka broker of deploy/local/up.sh, for the
# robustness tests and by hand. The broker keeps its data and ports across
# stop/start.
#
# Usage: deploy/local/kafka.sh stop|kill|start|pause|resume|status
#   stop    controlled shutdown (SIGTERM; waits until the JVM is gone)
#   kill    SIGKILL, as a crash (the next start recovers the logs)
#   start   starts it again on the same ports with the same data
#   pause   SIGSTOP: connections stay open and nothing answers
#   resume  SIGCONT
#   status  prints running, paused or stopped
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$SCRIPT_DIR/common.sh"

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
[[ $# -eq 1 ]] || { usage >&2; exit 2; }
init_state_paths
[[ -f "$STATE_DIR/.telemetry-local" ]] || die "no local stack in $STATE_DIR: run deploy/local/up.sh"
read_ports_file
[[ -n "$KAFKA_PORT_SAVED" && -n "$KAFKA_CONTROLLER_PORT_SAVED" ]] ||
  die "no Kafka ports in $PORTS_FILE: run deploy/local/up.sh"
pid="$(kafka_pid)"

case "$1" in
  stop | kill)
    [[ -n "$pid" ]] || { log "Kafka is not running"; exit 0; }
    if [[ "$1" == stop ]]; then kafka_stop TERM; else kafka_stop KILL; fi
    log "Kafka (pid $pid) stopped ($1)"
    ;;
  start)
    if [[ -n "$pid" ]]; then
      log "Kafka is already running (pid $pid)"
      exit 0
    fi
    kafka_start "$KAFKA_PORT_SAVED" "$KAFKA_CONTROLLER_PORT_SAVED"
    log "Kafka running (pid $(kafka_pid)) on 127.0.0.1:$KAFKA_PORT_SAVED"
    ;;
  pause | resume)
    [[ -n "$pid" ]] || die "Kafka is not running"
    if [[ "$1" == pause ]]; then kill -STOP "$pid"; else kill -CONT "$pid"; fi
    log "Kafka (pid $pid): $1d"
    ;;
  status)
    if [[ -z "$pid" ]]; then
      printf 'stopped\n'
    elif [[ "$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" == T ]]; then
      printf 'paused\n'
    else
      printf 'running\n'
    fi
    ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
