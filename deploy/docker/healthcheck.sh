#!/usr/bin/env bash
# Container health check of a telemetry service, without curl: an HTTP/1.0 GET of PATH (default
# /healthz) on the service's own admin HTTP port over bash's /dev/tcp. Exit 0 on "200", else 1.
#
#   healthcheck.sh [/healthz|/readyz]
#
# The port and host are the service's own settings: TELEMETRY_HTTP_PORT and TELEMETRY_HTTP_HOST
# (a wildcard host is reached on 127.0.0.1). Set the HTTP port through the environment, not
# with --http_port, so that this check finds it.
set -u

path="${1:-/healthz}"
port="${TELEMETRY_HTTP_PORT:-}"
host="${TELEMETRY_HTTP_HOST:-127.0.0.1}"
case "$host" in
  "" | 0.0.0.0 | "::" | "[::]") host=127.0.0.1 ;;
esac
if [[ ! "$port" =~ ^[0-9]+$ ]] || ((port == 0)); then
  echo "healthcheck: TELEMETRY_HTTP_PORT must be a fixed port, got '${port}'" >&2
  exit 1
fi

if ! exec 3<>"/dev/tcp/${host}/${port}"; then
  echo "healthcheck: nothing listens on ${host}:${port}" >&2
  exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
status_line=""
IFS= read -r -t 5 status_line <&3 || true
exec 3<&- 3>&-
status_line="${status_line%$'\r'}"
read -r _proto code _ <<<"$status_line"
if [[ "${code:-}" == 200 ]]; then
  exit 0
fi
echo "healthcheck: GET ${path} on ${host}:${port}: ${status_line:-no answer}" >&2
exit 1
