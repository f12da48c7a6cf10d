#!/usr/bin/env bash
# Installs the pinned Apache Kafka broker (deploy/local/kafka/pom.xml) as jars
# from Maven Central into a cache directory, and prints that directory's libs/
# path on stdout. Repeat runs reuse the cache (nothing is downloaded when the
# jars of this exact pom are there). Needs java (17+) and mvn:
# deploy/local/install-deps.sh installs both.
#
# Usage: deploy/local/install-kafka.sh [--print]
#   --print   only print where the jars go (no download)
# Env:   TELEMETRY_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/telemetry)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$SCRIPT_DIR/common.sh"

init_kafka_install_paths
if [[ "${1:-}" == --print ]]; then
  printf '%s\n' "$KAFKA_LIBS"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [--print]"

install_jars "$KAFKA_POM" "$KAFKA_LIBS" "kafka_2.13-$KAFKA_VERSION.jar" "Apache Kafka $KAFKA_VERSION"
printf '%s\n' "$KAFKA_LIBS"
