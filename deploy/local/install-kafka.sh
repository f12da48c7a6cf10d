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

if [[ -f "$KAFKA_LIBS/.complete" ]]; then
  printf '%s\n' "$KAFKA_LIBS"
  exit 0
fi
command -v java >/dev/null 2>&1 || die "java not found: run deploy/local/install-deps.sh"
command -v mvn >/dev/null 2>&1 || die "mvn not found: run deploy/local/install-deps.sh"
log "installing Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME_DIR"
tmp="$KAFKA_HOME_DIR/libs.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
if ! mvn -q -B -Dstyle.color=never -f "$SCRIPT_DIR/kafka/pom.xml" dependency:copy-dependencies \
  -DoutputDirectory="$tmp" -DincludeScope=runtime >&2; then
  rm -rf "$tmp"
  die "mvn could not fetch Apache Kafka $KAFKA_VERSION (Maven Central reachable? see the output above)"
fi
[[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"; }
touch "$tmp/.complete"
rm -rf "$KAFKA_LIBS"
mv "$tmp" "$KAFKA_LIBS"
log "Apache Kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
printf '%s\n' "$KAFKA_LIBS"
