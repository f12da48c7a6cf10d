#!/usr/bin/env bash
# Installs (Debian 12) every package the build, the tests and the local stack
# need, then the pinned Apache Kafka jars from Maven Central
# (deploy/local/install-kafka.sh, cached) and the pinned Apache Arrow C++
# from the pyarrow wheel (deploy/local/install-arrow.sh, cached). Only missing packages are
# installed; `apt-get update` runs at most once, and only when something is
# missing. Non-interactive. Uses sudo when not root (and sudo exists).
#
# Usage: deploy/local/install-deps.sh [--with-bench]
#   --with-bench  also what scripts/bench-compare.sh needs beyond the tests (nothing
#                 today: InfluxDB, which it compares against, is a test package now)
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libpqxx-dev libhiredis-dev librdkafka-dev libabsl-dev libspdlog-dev
  libcpp-httplib-dev libssl-dev
  libzstd-dev zlib1g-dev  # the warm tier's segment codec (common/segment/)
  # tests
  libgtest-dev libgmock-dev python3-grpcio openssl  # openssl: tls_e2e_test makes certificates
  clang-14 libclang-rt-14-dev  # libFuzzer (scripts/fuzz-lineproto.sh)
  influxdb-client gzip python3-venv  # line-protocol clients in influx_e2e_test (+ the pinned venv)
  influxdb  # influxd: migration_test's real InfluxDB 1.6 (and bench-compare.sh's); influx_inspect below
  mosquitto-clients  # mosquitto_pub / mosquitto_sub in bridge_e2e_test
  # local stack (deploy/local/)
  postgresql-15 postgresql-client-15 redis-server mosquitto
  openjdk-17-jre-headless maven  # Apache Kafka (deploy/local/install-kafka.sh)
  # Alert rules' Alertmanager target: up.sh runs its own process on a free port
  # (the system service the package may start on :9093 is not used).
  prometheus-alertmanager
  docker-compose curl  # (node + npm for the Dockerfile lint come with the base image)
  iproute2 util-linux
)

log() { printf '[install-deps] %s\n' "$*" >&2; }

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    log "ERROR: not root and sudo is not available: run this script as root"
    exit 1
  fi
fi

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

install_kafka() {
  "$(dirname "${BASH_SOURCE[0]}")/install-kafka.sh" >/dev/null
}
# S3Proxy, the local stack's S3-compatible object store (jars from Maven Central, cached).
install_s3proxy() {
  "$(dirname "${BASH_SOURCE[0]}")/install-s3proxy.sh" >/dev/null
}
# Arrow C++ / Parquet C++ from the pinned pyarrow wheel (cached; cmake/Arrow.cmake finds it).
install_arrow() {
  "$(dirname "${BASH_SOURCE[0]}")/install-arrow.sh" >/dev/null
}
# influx_inspect for migration_test (Debian's influxdb has none; built with Go, cached).
install_influx_inspect() {
  "$(dirname "${BASH_SOURCE[0]}")/install-influx-inspect.sh"
}

if [[ ${#missing[@]} -eq 0 ]]; then
  log "all ${#PACKAGES[@]} packages already installed"
  install_kafka
  install_s3proxy
  install_arrow
  install_influx_inspect
  exit 0
fi

log "installing: ${missing[*]}"
apt_env=(env DEBIAN_FRONTEND=noninteractive)
"${SUDO[@]}" "${apt_env[@]}" apt-get update -q
"${SUDO[@]}" "${apt_env[@]}" apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}"

still_missing=()
for pkg in "${missing[@]}"; do
  is_installed "$pkg" || still_missing+=("$pkg")
done
if [[ ${#still_missing[@]} -ne 0 ]]; then
  log "ERROR: still not installed: ${still_missing[*]}"
  exit 1
fi
install_kafka
install_s3proxy
install_arrow
install_influx_inspect
log "done"
