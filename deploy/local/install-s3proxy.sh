#!/usr/bin/env bash
# Installs the pinned S3Proxy (deploy/local/s3proxy/pom.xml), the local
# stack's S3-compatible object store, as jars from Maven Central into a cache
# directory, and prints that directory on stdout. Repeat runs reuse the cache.
# Needs java (17+) and mvn: deploy/local/install-deps.sh installs both.
#
# Usage: deploy/local/install-s3proxy.sh [--print]
#   --print   only print where the jars go (no download)
# Env:   TELEMETRY_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/telemetry)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$SCRIPT_DIR/common.sh"

init_s3proxy_install_paths
if [[ "${1:-}" == --print ]]; then
  printf '%s\n' "$S3PROXY_LIBS"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [--print]"

install_jars "$S3PROXY_POM" "$S3PROXY_LIBS" "s3proxy-$S3PROXY_VERSION.jar" "S3Proxy $S3PROXY_VERSION"
printf '%s\n' "$S3PROXY_LIBS"
