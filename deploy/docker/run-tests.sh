#!/usr/bin/env bash
# Entry point of the `tests` image.
#
#   run-tests.sh integration [REGEX]   every test `ctest -L integration` runs (staged by
#                                      stage-tests.sh), or those whose name matches REGEX,
#                                      against TELEMETRY_PG_PRIMARY, TELEMETRY_REDIS and
#                                      TELEMETRY_KAFKA_BROKERS. The tests start their own
#                                      ingest, writer and query processes from
#                                      TELEMETRY_BUILD_DIR inside this container.
#   run-tests.sh smoke                 a short telemetry-loadgen run against the running
#                                      ingest (TELEMETRY_INGEST) and query (TELEMETRY_QUERY)
#                                      services, with a new tenant made by telemetry-admin
#                                      in TELEMETRY_PG_PRIMARY; fails unless every reading is
#                                      accepted and becomes queryable.
#   run-tests.sh list                  the staged tests, one a line.
#   run-tests.sh exec CMD [ARGS...]    runs CMD (e.g. telemetry-loadgen with your own flags).
#
# Exit status: 0 when everything passed.
set -uo pipefail

build_dir="${TELEMETRY_BUILD_DIR:-/opt/telemetry/build}"
manifest="$build_dir/integration-tests.tsv"
export PATH="$build_dir/tools/admin:$build_dir/tools/loadgen:$PATH"

log() { printf '[run-tests] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

require_env() {
  local missing=()
  local name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || missing+=("$name")
  done
  ((${#missing[@]} == 0)) || die "not set: ${missing[*]}"
}

# wait_tcp NAME HOST PORT: up to WAIT_S (60) seconds until HOST:PORT accepts a connection.
wait_tcp() {
  local name="$1" host="$2" port="$3"
  local deadline=$((SECONDS + ${WAIT_S:-60}))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    ((SECONDS < deadline)) || die "$name at $host:$port is not reachable"
    sleep 1
  done
}

# host_port URL_OR_ADDRESS: prints "host port" of postgresql://user:pw@host:port/db,
# host:port or host:port,host:port (first one).
host_port() {
  local a="$1"
  a="${a#*://}"
  a="${a##*@}"
  a="${a%%/*}"
  a="${a%%,*}"
  a="${a%%\?*}"
  printf '%s %s\n' "${a%:*}" "${a##*:}"
}

wait_for_stack() {
  local h p
  read -r h p <<<"$(host_port "$TELEMETRY_PG_PRIMARY")"
  [[ "$p" =~ ^[0-9]+$ ]] || p=5432
  wait_tcp PostgreSQL "$h" "$p"
  read -r h p <<<"$(host_port "$TELEMETRY_REDIS")"
  wait_tcp Redis "$h" "$p"
  read -r h p <<<"$(host_port "$TELEMETRY_KAFKA_BROKERS")"
  wait_tcp Kafka "$h" "$p"
}

run_integration() {
  local filter="${1:-}"
  [[ -s "$manifest" ]] || die "no test manifest at $manifest (TELEMETRY_BUILD_DIR=$build_dir)"
  require_env TELEMETRY_PG_PRIMARY TELEMETRY_REDIS TELEMETRY_KAFKA_BROKERS
  wait_for_stack
  local passed=0 failed=0 failed_names=()
  local fields name timeout workdir cmd i rc
  while IFS=$'\t' read -r -a fields; do
    name="${fields[0]}"
    if [[ -n "$filter" && ! "$name" =~ $filter ]]; then
      continue
    fi
    timeout="${fields[1]%%.*}"
    workdir="${fields[2]//@BUILD@/$build_dir}"
    cmd=()
    for ((i = 3; i < ${#fields[@]}; i++)); do
      cmd+=("${fields[i]//@BUILD@/$build_dir}")
    done
    log "=== $name (timeout ${timeout}s)"
    mkdir -p "$workdir"
    (cd "$workdir" && exec timeout --kill-after=10 "$timeout" "${cmd[@]}") </dev/null
    rc=$?
    if ((rc == 0)); then
      passed=$((passed + 1))
      log "--- $name passed"
    else
      failed=$((failed + 1))
      failed_names+=("$name")
      if ((rc == 124)); then
        log "--- $name timed out after ${timeout}s"
      else
        log "--- $name failed (exit $rc)"
      fi
    fi
  done <"$manifest"
  ((passed + failed > 0)) || die "no test matched '${filter}'"
  ((failed == 0)) || log "failed: ${failed_names[*]}"
  echo "integration: $passed passed, $failed failed"
  ((failed == 0))
}

run_smoke() {
  require_env TELEMETRY_PG_PRIMARY TELEMETRY_INGEST TELEMETRY_QUERY
  local out key
  out="$(telemetry-admin create-tenant --name "smoke-$(date +%s)-$RANDOM")" ||
    die "telemetry-admin create-tenant failed"
  key="$(sed -n 's/^api_key=//p' <<<"$out" | tail -n 1)"
  [[ -n "$key" ]] || die "telemetry-admin printed no api_key"
  local summary
  summary="$(telemetry-loadgen --api_keys="$key" --devices=20 --sensors=4 --total=20000 \
    --duration_s=60 --batch=500 --concurrency=2 | tee /dev/stderr | tail -n 1)"
  local rc=$?
  ((rc == 0)) || die "telemetry-loadgen failed (exit $rc)"
  # {"sent":..,"rejected":N,"failed_calls":N,...,"queryable_ms":X}
  local rejected failed queryable
  rejected="$(sed -n 's/.*"rejected":\([0-9]*\).*/\1/p' <<<"$summary")"
  failed="$(sed -n 's/.*"failed_calls":\([0-9]*\).*/\1/p' <<<"$summary")"
  queryable="$(sed -n 's/.*"queryable_ms":\(-\{0,1\}[0-9.]*\).*/\1/p' <<<"$summary")"
  if [[ "$rejected" == 0 && "$failed" == 0 && -n "$queryable" && "$queryable" != -* ]]; then
    echo "smoke: 1 passed, 0 failed"
    return 0
  fi
  log "rejected=$rejected failed_calls=$failed queryable_ms=$queryable"
  echo "smoke: 0 passed, 1 failed"
  return 1
}

action="${1:-integration}"
shift || true
case "$action" in
  integration) run_integration "${1:-}" ;;
  smoke) run_smoke ;;
  list)
    [[ -s "$manifest" ]] || die "no test manifest at $manifest"
    cut -f1 "$manifest"
    ;;
  exec)
    (($# > 0)) || die "exec needs a command"
    exec "$@"
    ;;
  -h | --help | help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$action' (integration, smoke, list, exec, help)" ;;
esac
