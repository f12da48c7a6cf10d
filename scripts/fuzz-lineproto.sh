#!/usr/bin/env bash
# Fuzzes the InfluxDB line-protocol parser and its mapping to readings
# (tests/fuzz/line_protocol_fuzz.cc) with libFuzzer under ASan + UBSan.
# CI runs it briefly (ctest `line_protocol_fuzz`, label fuzz); run it longer
# by hand:
#
#   bash scripts/fuzz-lineproto.sh [seconds=600] [build dir=build]
#
# Needs clang-14 and libclang-rt-14-dev (deploy/local/install-deps.sh) and a
# main build (it links that build's protobuf messages and SHA-256 helper,
# compiled by GCC; the parser itself is compiled here, instrumented). The
# corpus grows in <build dir>/fuzz/corpus, seeded from tests/fuzz/corpus/;
# a crash leaves its input in <build dir>/fuzz/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-600}"
BUILD_DIR="$(realpath "${2:-build}")"
OUT="$BUILD_DIR/fuzz"
CXX="${FUZZ_CXX:-clang++-14}"
command -v "$CXX" >/dev/null || { echo "fuzz: $CXX not found (deploy/local/install-deps.sh)" >&2; exit 1; }
for lib in proto/libtelemetry_proto.a common/libtelemetry_auth.a; do
  [[ -f "$BUILD_DIR/$lib" ]] || { echo "fuzz: $BUILD_DIR/$lib missing: build first" >&2; exit 1; }
done
mkdir -p "$OUT/corpus"
bin="$OUT/line_protocol_fuzz"
srcs=(tests/fuzz/line_protocol_fuzz.cc services/ingest/line_protocol.cc)
if [[ ! -x "$bin" || -n "$(find "${srcs[@]}" services/ingest/line_protocol.h -newer "$bin")" ]]; then
  echo "fuzz: building $bin" >&2
  # shellcheck disable=SC2046
  "$CXX" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I. -I"$BUILD_DIR/proto/gen" "${srcs[@]}" \
    "$BUILD_DIR/common/libtelemetry_auth.a" "$BUILD_DIR/proto/libtelemetry_proto.a" \
    $(pkg-config --libs protobuf absl_strings absl_str_format absl_status absl_statusor \
      absl_synchronization absl_hash absl_raw_hash_set libcrypto) -o "$bin"
fi
cp -n tests/fuzz/corpus/line_protocol/* "$OUT/corpus/" 2>/dev/null || true
echo "fuzz: running $SECONDS_TO_RUN s" >&2
cd "$OUT"
exec "$bin" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus
