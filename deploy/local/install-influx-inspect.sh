#!/usr/bin/env bash
# influx_inspect (its `export`: TSM and WAL files to line protocol) for the
# migration test (tests/integration/migration_test.cc). Debian's `influxdb`
# package (1.6.7) ships only influxd, and the Debian source package leaves
# cmd/influx_inspect out, so it is built from InfluxDB 1.8.10's Go module
# (the TSM and WAL formats of 1.6 and 1.8 are the same) into /usr/local/bin.
# Needs Go (>= 1.13) and the Go module proxy; about 2 minutes the first time,
# nothing when it is there already.
set -euo pipefail
DEST=/usr/local/bin
VERSION=v1.8.10
[[ -x "$DEST/influx_inspect" ]] && exit 0
GO="$(command -v go || true)"
[[ -z "$GO" && -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
if [[ -z "$GO" ]]; then
  echo "[install-influx-inspect] ERROR: no Go toolchain to build influx_inspect" >&2
  exit 1
fi
SUDO=()
[[ "$(id -u)" -ne 0 ]] && SUDO=(sudo)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod GOTOOLCHAIN=local \
  "$GO" install "github.com/influxdata/influxdb/cmd/influx_inspect@$VERSION")
"${SUDO[@]}" install -m 0755 "$tmp/influx_inspect" "$DEST/influx_inspect"
echo "[install-influx-inspect] installed $DEST/influx_inspect ($VERSION)" >&2
