#!/usr/bin/env bash
# Simulates a Kafka outage on the local dev broker (robustness tests).
#
# Usage: deploy/local/kafka.sh down|up|status
#   down    all brokers stop accepting connections and drop existing ones
#           (SIGUSR1 to telemetry-devbroker)
#   up      brokers accept connections again, same ports (SIGUSR2)
#   status  prints up or down
# Messages already stored by the dev broker are kept across down/up.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$SCRIPT_DIR/common.sh"

[[ $# -eq 1 ]] || die "usage: $0 down|up|status"
case "$1" in
  down | up | status) ;;
  -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "usage: $0 down|up|status" ;;
esac
init_state_paths
KAFKA_PID="$(devbroker_pid)"
[[ -n "$KAFKA_PID" ]] || die "the Kafka dev broker is not running (state dir $STATE_DIR): run deploy/local/up.sh"

case "$1" in
  down)
    kill -USR1 "$KAFKA_PID"
    printf 'down\n' >"$KAFKA_STATE_FILE"
    log "Kafka dev broker (pid $KAFKA_PID): brokers DOWN"
    ;;
  up)
    kill -USR2 "$KAFKA_PID"
    printf 'up\n' >"$KAFKA_STATE_FILE"
    log "Kafka dev broker (pid $KAFKA_PID): brokers UP"
    ;;
  status)
    cat "$KAFKA_STATE_FILE" 2>/dev/null || printf 'up\n'
    ;;
esac
