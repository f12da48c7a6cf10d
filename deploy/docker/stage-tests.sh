#!/usr/bin/env bash
# Stages what `ctest -L integration` runs, for the `tests` image: copies every test executable
# of that label from BUILD_DIR to OUT_DIR (same relative paths) and writes OUT_DIR/
# integration-tests.tsv, one test a line, tab-separated:
#
#   name  timeout_s  working_dir  command  [args...]
#
# where paths inside BUILD_DIR are written as @BUILD@/<relative path> (run-tests.sh replaces
# @BUILD@ with TELEMETRY_BUILD_DIR). Used by deploy/docker/Dockerfile (build stage) and, on a
# local build dir, by tests/deploy/check_deploy.sh.
#
#   stage-tests.sh BUILD_DIR OUT_DIR [LABEL]       (LABEL defaults to integration)
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 BUILD_DIR OUT_DIR [LABEL]" >&2
  exit 2
fi
build_dir="$(cd "$1" && pwd -P)"
out_dir="$2"
label="${3:-integration}"
for tool in ctest jq; do
  command -v "$tool" >/dev/null 2>&1 || { echo "stage-tests: $tool is required" >&2; exit 1; }
done

mkdir -p "$out_dir"
json="$(ctest --test-dir "$build_dir" -L "^${label}\$" --show-only=json-v1)"
# One TSV line per test; @BUILD@ stands for the build dir in paths below it.
jq -r --arg b "$build_dir" '
  def rel: if . == $b then "@BUILD@"
           elif startswith($b + "/") then "@BUILD@/" + .[($b | length) + 1:]
           else . end;
  .tests[]
  | [ .name,
      ((.properties // []) | map(select(.name == "TIMEOUT"))[0].value // 1500 | tostring),
      ((.properties // []) | map(select(.name == "WORKING_DIRECTORY"))[0].value // $b | rel) ]
    + ((.command // []) | map(rel))
  | @tsv' <<<"$json" >"$out_dir/integration-tests.tsv"

count=0
while IFS=$'\t' read -r -a fields; do
  name="${fields[0]}"
  cmd="${fields[3]:-}"
  if [[ -z "$cmd" ]]; then
    echo "stage-tests: test $name has no executable in $build_dir: build it first" >&2
    exit 1
  fi
  if [[ "$cmd" != @BUILD@/* ]]; then
    echo "stage-tests: test $name runs '$cmd', which is not inside the build dir" >&2
    exit 1
  fi
  rel="${cmd#@BUILD@/}"
  mkdir -p "$out_dir/$(dirname "$rel")"
  cp -p "$build_dir/$rel" "$out_dir/$rel"
  workdir="${fields[2]}"
  [[ "$workdir" == @BUILD@* ]] && mkdir -p "$out_dir/${workdir#@BUILD@}"
  count=$((count + 1))
done <"$out_dir/integration-tests.tsv"

if ((count == 0)); then
  echo "stage-tests: ctest lists no test labelled '$label' in $build_dir" >&2
  exit 1
fi
echo "stage-tests: staged $count test(s) labelled '$label' into $out_dir"
