#!/usr/bin/env bash
# Checks of the container deployment that need no Docker engine (ctest: deploy_checks, labels
# unit;deploy). Exits non-zero on any failure and says what failed.
#
#   bash tests/deploy/check_deploy.sh [BUILD_DIR [SOURCE_DIR]]     (defaults: build, the repo)
#
#  a) compose   `docker-compose config -q` of deploy/docker-compose.yml, alone and with
#               deploy/docker-compose.test.yml (installs Debian's docker-compose if missing)
#  b) lint      dockerfile-utils lint deploy/docker/Dockerfile (pinned in package-lock.json,
#               installed by `npm ci` into tests/deploy/node_modules once; offline after that)
#  c) flags     TELEMETRY_* variables of the compose files and the Dockerfile are real flags
#  d) libraries what the built binaries link is installed by the Dockerfile's runtime stage
#     + the Dockerfile/compose consistency and runtime checks of deploy_checks.py (see there)
#  e) scripts   shell syntax (bash -n, sh -n, shellcheck when installed) of deploy/docker/*,
#               deploy/local/*, deploy/mosquitto/*; the compose Mosquitto job (init.sh) run on a
#               scratch dir; the tests image's stage-tests.sh + run-tests.sh run on this build dir
#
# Needs the built binaries (BUILD_DIR), python3 with PyYAML (a dependency of docker-compose),
# node + npm for the first lint run, readelf, ldd, dpkg-query, apt-cache and ctest.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
src="$(cd "${2:-$here/../..}" && pwd -P)"
build="${1:-$src/build}"
if [[ ! -d "$build" ]]; then
  echo "check_deploy: build dir '$build' does not exist (pass it as the first argument)" >&2
  exit 2
fi
build="$(cd "$build" && pwd -P)"
cd "$src" || exit 2

passed=0
failures=()
ok() {
  passed=$((passed + 1))
  printf 'ok   %s\n' "$1"
}
fail() {
  failures+=("$1")
  printf 'FAIL %s\n' "$1"
}
section() { printf '\n== %s\n' "$*"; }
indent() { sed 's/^/     /'; }

SUDO=()
[[ "$(id -u)" -eq 0 ]] || SUDO=(sudo -n)
# apt_install PKG...: installs Debian packages (no recommends); apt-get update only if needed.
apt_install() {
  local apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
    -o DPkg::Lock::Timeout=300 --no-install-recommends)
  "${apt[@]}" install "$@" >/tmp/check_deploy.apt.$$ 2>&1 ||
    { "${apt[@]}" update >>/tmp/check_deploy.apt.$$ 2>&1 &&
      "${apt[@]}" install "$@" >>/tmp/check_deploy.apt.$$ 2>&1; }
  local rc=$?
  ((rc == 0)) || tail -n 5 /tmp/check_deploy.apt.$$ | indent
  rm -f /tmp/check_deploy.apt.$$
  return "$rc"
}

tmp="$(mktemp -d "${TMPDIR:-/tmp}/check_deploy.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# ------------------------------------------------------------------------ tools
section "tools"
compose=()
if command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  echo "docker-compose is missing: installing Debian's docker-compose package"
  if apt_install docker-compose && command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
  fi
fi
if ((${#compose[@]})); then
  ok "compose tool: ${compose[*]} ($("${compose[@]}" version --short 2>/dev/null || echo '?'))"
else
  fail "compose tool: neither docker-compose nor 'docker compose' is available, and \
'apt-get install docker-compose' failed (needs root or passwordless sudo and the Debian archive)"
fi

python=/usr/bin/python3
[[ -x "$python" ]] || python="$(command -v python3 || true)"
if [[ -n "$python" ]] && ! "$python" -c 'import yaml' 2>/dev/null; then
  apt_install python3-yaml >/dev/null 2>&1 || true
  python=/usr/bin/python3
fi
if [[ -n "$python" ]] && "$python" -c 'import yaml' 2>/dev/null; then
  ok "python3 with PyYAML: $python"
else
  fail "python3 with PyYAML is not available (apt-get install python3-yaml)"
  python=""
fi

lint_bin="$here/node_modules/.bin/dockerfile-utils"
lint_version() { [[ -f "$here/node_modules/dockerfile-utils/package.json" ]] &&
  node -p 'require(process.argv[1]).version' "$here/node_modules/dockerfile-utils/package.json" 2>/dev/null; }
want_lint="$(node -p 'require(process.argv[1]).packages["node_modules/dockerfile-utils"].version' \
  "$here/package-lock.json" 2>/dev/null || true)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  fail "lint tool: node and npm are required for dockerfile-utils (Debian 12: nodejs + npm)"
  lint_bin=""
elif [[ ! -x "$lint_bin" || "$(lint_version)" != "$want_lint" ]]; then
  echo "installing dockerfile-utils $want_lint from tests/deploy/package-lock.json (npm ci)"
  if (cd "$here" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error) 2>&1 | indent &&
    [[ -x "$lint_bin" && "$(lint_version)" == "$want_lint" ]]; then
    ok "lint tool: dockerfile-utils $want_lint installed"
  else
    fail "lint tool: npm ci in tests/deploy failed (needs the npm registry once)"
    lint_bin=""
  fi
else
  ok "lint tool: dockerfile-utils $(lint_version) (tests/deploy/node_modules)"
fi

# ------------------------------------------------------------------------ a) compose
section "a) compose files"
resolved="$tmp/resolved.yml"
if ((${#compose[@]})); then
  if out="$("${compose[@]}" -f deploy/docker-compose.yml config -q 2>&1)"; then
    ok "compose config -q: deploy/docker-compose.yml"
  else
    fail "compose config -q: deploy/docker-compose.yml"
    indent <<<"$out"
  fi
  files=(-f deploy/docker-compose.yml -f deploy/docker-compose.test.yml)
  if out="$("${compose[@]}" "${files[@]}" config -q 2>&1)"; then
    ok "compose config -q: deploy/docker-compose.yml + deploy/docker-compose.test.yml"
  else
    fail "compose config -q: deploy/docker-compose.yml + deploy/docker-compose.test.yml"
    indent <<<"$out"
  fi
  # The resolved model (test profile on, so the test services are in it) for the checks below.
  if ! "${compose[@]}" "${files[@]}" --profile test config >"$resolved" 2>"$tmp/err"; then
    fail "compose config: cannot resolve the configuration"
    indent <"$tmp/err"
    : >"$resolved"
  fi
fi

# ------------------------------------------------------------------------ b) lint
section "b) Dockerfile lint"
if [[ -n "$lint_bin" ]]; then
  out="$("$lint_bin" lint deploy/docker/Dockerfile 2>&1)"
  rc=$?
  warnings="$(grep -c '^Warning:' <<<"$out")"
  errors="$(grep -c '^Error:' <<<"$out")"
  if ((rc == 0)); then
    ok "dockerfile-utils lint deploy/docker/Dockerfile: $errors errors, $warnings warnings"
    ((warnings == 0)) || indent <<<"$out"
  else
    fail "dockerfile-utils lint deploy/docker/Dockerfile: $errors errors, $warnings warnings (exit $rc)"
    indent <<<"$out"
  fi
fi

# ------------------------------------------------------------------------ c), d) + consistency
section "c) flags, d) libraries, Dockerfile and compose consistency, runtime"
if [[ -n "$python" && -s "$resolved" ]]; then
  "$python" "$here/deploy_checks.py" --build-dir "$build" --source-dir "$src" \
    --compose-config "$resolved" >"$tmp/checks.out" 2>&1
  rc=$?
  grep -v '^deploy_checks.py: \|^  failed: ' "$tmp/checks.out"
  summary="$(grep '^deploy_checks.py: ' "$tmp/checks.out")"
  n_ok="$(sed -n 's/.*: \([0-9]*\) passed.*/\1/p' <<<"$summary")"
  passed=$((passed + ${n_ok:-0}))
  while IFS= read -r line; do
    failures+=("${line#  failed: }")
  done < <(grep '^  failed: ' "$tmp/checks.out")
  if ((rc != 0)) && ! grep -q '^  failed: ' "$tmp/checks.out"; then
    fail "deploy_checks.py crashed (exit $rc)"
  fi
else
  fail "deploy_checks.py: skipped (no python3+PyYAML or no resolved compose configuration)"
fi

# ------------------------------------------------------------------------ e) scripts
section "e) scripts of deploy/docker and deploy/local"
for f in deploy/docker/*.sh deploy/docker/postgres/*.sh deploy/local/*.sh deploy/mosquitto/*.sh; do
  if out="$(bash -n "$f" 2>&1)"; then ok "bash -n $f"; else fail "bash -n $f"; indent <<<"$out"; fi
done
# POSIX sh scripts: they run in images without bash (eclipse-mosquitto: busybox).
for f in deploy/docker/mosquitto/*.sh; do
  if out="$(sh -n "$f" 2>&1)"; then ok "sh -n $f"; else fail "sh -n $f"; indent <<<"$out"; fi
done
if command -v shellcheck >/dev/null 2>&1; then
  bash_scripts=(deploy/docker/*.sh deploy/docker/postgres/*.sh deploy/local/*.sh
    deploy/mosquitto/*.sh tests/deploy/check_deploy.sh)
  if out="$(shellcheck -S warning "${bash_scripts[@]}" 2>&1)" &&
    out="$(shellcheck -S warning -s sh deploy/docker/mosquitto/*.sh 2>&1)"; then
    ok "shellcheck (warnings and errors) of the deploy scripts"
  else
    fail "shellcheck of the deploy scripts"
    indent <<<"$out"
  fi
else
  echo "     (shellcheck not installed: skipped)"
fi

# The compose stack's Mosquitto job (deploy/docker/mosquitto/init.sh), run with a POSIX sh on a
# scratch dir: it renders deploy/mosquitto/mosquitto.conf for the container (it fails when the
# template has a marker it does not fill or lost the listener line it replaces) and writes the
# password and ACL files. Needs mosquitto_passwd (Debian package mosquitto).
if command -v mosquitto_passwd >/dev/null 2>&1; then
  mq="$tmp/mosquitto-init"
  if out="$(env MQTT_INIT_OUT="$mq" MQTT_INIT_TEMPLATE=deploy/mosquitto/mosquitto.conf \
    MQTT_INIT_AWK=deploy/mosquitto/acl-block.awk MQTT_INIT_OWNER="$(id -u):$(id -g)" \
    MQTT_BRIDGE_USER=bridge MQTT_BRIDGE_PASSWORD=b-pw MQTT_DEVICE_USER=device \
    MQTT_DEVICE_PASSWORD=d-pw sh deploy/docker/mosquitto/init.sh 2>&1)" &&
    grep -qx 'allow_anonymous false' "$mq/mosquitto.conf" &&
    grep -qx "password_file $mq/passwd" "$mq/mosquitto.conf" &&
    grep -qx 'max_queued_messages 0' "$mq/mosquitto.conf" &&
    [[ "$(grep -c '^user ' "$mq/acl")" == 2 && "$(cut -d: -f1 "$mq/passwd" | tr '\n' ' ')" == "bridge device " ]]; then
    ok "mosquitto init.sh renders the broker configuration and writes the bridge and test device users"
  else
    fail "mosquitto init.sh on a scratch dir"
    indent <<<"$out"
  fi
else
  echo "     (mosquitto_passwd not installed: the mosquitto init.sh run is skipped)"
fi

# The tests image's build step and entry point, run for real on this build dir.
stage="$tmp/stage"
if out="$(bash deploy/docker/stage-tests.sh "$build" "$stage" 2>&1)"; then
  ok "stage-tests.sh stages the integration tests: ${out##*: }"
  want="$(ctest --test-dir "$build" -L '^integration$' --show-only=json-v1 2>/dev/null |
    "${python:-python3}" -c 'import json,sys; print("\n".join(t["name"] for t in json.load(sys.stdin)["tests"]))')"
  got="$(TELEMETRY_BUILD_DIR="$stage" bash deploy/docker/run-tests.sh list 2>&1)"
  if [[ -n "$want" && "$got" == "$want" ]]; then
    ok "run-tests.sh list = ctest -L integration ($(tr '\n' ' ' <<<"$got"))"
  else
    fail "run-tests.sh list differs from ctest -L integration"
    printf 'ctest:\n%s\nrun-tests.sh:\n%s\n' "$want" "$got" | indent
  fi
  while IFS=$'\t' read -r -a fields; do
    exe="${fields[3]//@BUILD@/$stage}"
    if [[ -x "$exe" ]]; then ok "staged test binary ${fields[3]}"; else fail "staged test binary ${fields[3]} is missing"; fi
  done <"$stage/integration-tests.tsv"
  out="$(env -u TELEMETRY_PG_PRIMARY -u TELEMETRY_REDIS -u TELEMETRY_KAFKA_BROKERS \
    TELEMETRY_BUILD_DIR="$stage" bash deploy/docker/run-tests.sh integration 2>&1)"
  rc=$?
  if ((rc != 0)) && grep -q 'not set: TELEMETRY_PG_PRIMARY TELEMETRY_REDIS TELEMETRY_KAFKA_BROKERS' <<<"$out"; then
    ok "run-tests.sh integration refuses to start without the stack's endpoints"
  else
    fail "run-tests.sh integration without endpoints: exit $rc"
    indent <<<"$out"
  fi
else
  fail "stage-tests.sh $build"
  indent <<<"$out"
fi

# ------------------------------------------------------------------------ summary
echo
if ((${#failures[@]})); then
  echo "What failed:"
  printf '  - %s\n' "${failures[@]}"
fi
echo "deploy checks: $passed passed, ${#failures[@]} failed"
((${#failures[@]} == 0))
