#!/usr/bin/env bash
# Runs the Mosquitto broker of the local stack (deploy/local/up.sh starts it through this script,
# down.sh stops it; tests restart it) and issues device credentials, for the local stack or for
# the files a broker container mounts. The local broker's files are in <state dir>/mosquitto/:
#   mosquitto.conf  deploy/mosquitto/mosquitto.conf with its @...@ markers filled in
#   data/           the persistence database (owned by the mosquitto user when run as root)
#   passwd acl      users and their topics: start and reload rewrite the bridge's and the test
#                   device's entries, add-device and remove-device the devices'; others are kept
#   credentials     the generated passwords of the bridge and the test device (kept across runs)
#   mosquitto.pid mosquitto.log
#
# Usage: deploy/mosquitto/mosquitto.sh start [PORT]|stop|kill|restart|reload|status|env
#        deploy/mosquitto/mosquitto.sh add-device TENANT DEVICE [--gateway] [--password P] [FILES]
#        deploy/mosquitto/mosquitto.sh remove-device TENANT DEVICE [FILES]
#   start [PORT]  start on PORT (default: MQTT_PORT of the state dir's ports file)
#   stop          SIGTERM: mosquitto saves its database and exits; waits until it is gone
#   kill          SIGKILL, as a crash (what changed since the last autosave is lost)
#   restart       stop, then start on the same port with the same data
#   reload        rewrites the bridge's and test device's entries, then SIGHUP (mosquitto
#                 re-reads the password and ACL files)
#   status        prints running or stopped
#   env           prints the TELEMETRY_MQTT_* lines of the stack's env file
#   add-device    MQTT user TENANT/DEVICE: adds or replaces it in the password file, writes its
#                 ACL block (publish telemetry/TENANT/DEVICE and telemetry/TENANT/DEVICE/+, read
#                 telemetry-errors/TENANT/DEVICE; --gateway: telemetry/TENANT/+,
#                 telemetry/TENANT/+/+ and telemetry-errors/TENANT/#), then SIGHUP. Without
#                 --password a random one is made; prints "user=U password=P" (or "user=U") once
#   remove-device removes the user from both files, then SIGHUP
#   FILES         --password-file F --acl-file A [--pid-file P]: other files than the local
#                 stack's (TELEMETRY_MQTT_PASSWORD_FILE, TELEMETRY_MQTT_ACL_FILE and
#                 TELEMETRY_MQTT_PID_FILE, else the state dir's); without a pid file the broker
#                 is not signalled (compose: docker compose kill -s HUP mosquitto)
#   TENANT and DEVICE are one MQTT topic level and a platform name each: 1-128 of
#   A-Z a-z 0-9 _ . - (no '/', '+', '#', spaces; no ':', which mosquitto_passwd refuses).
# Env: TELEMETRY_LOCAL_DIR (the state dir, as for up.sh)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../local/common.sh
. "$SCRIPT_DIR/../local/common.sh"

usage() { sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
[[ $# -ge 1 ]] || { usage >&2; exit 2; }

init_state_paths
MQTT_DIR="$STATE_DIR/mosquitto"
MQTT_CONF="$MQTT_DIR/mosquitto.conf"
MQTT_DATA="$MQTT_DIR/data"
MQTT_PIDFILE="$MQTT_DIR/mosquitto.pid"
MQTT_LOG="$MQTT_DIR/mosquitto.log"
MQTT_PASSWD="$MQTT_DIR/passwd"
MQTT_ACL="$MQTT_DIR/acl"
MQTT_CREDENTIALS="$MQTT_DIR/credentials"
MQTT_BRIDGE_USER=telemetry-bridge
MQTT_DEVICE_USER=telemetry-device
# /usr/sbin is not on an ordinary user's PATH on Debian.
MOSQUITTO_BIN="$(command -v mosquitto 2>/dev/null || printf /usr/sbin/mosquitto)"

mqtt_pid() {
  local pid
  pid="$(read_pidfile "$MQTT_PIDFILE")"
  if pid_alive "$pid" mosquitto; then printf '%s' "$pid"; fi
}

saved_port() {
  [[ -f "$PORTS_FILE" ]] || return 0
  sed -n 's/^MQTT_PORT=\([0-9][0-9]*\)$/\1/p' "$PORTS_FILE" | tail -n 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The passwords are made once and kept, so the env file stays valid across restarts.
load_credentials() {
  if [[ ! -f "$MQTT_CREDENTIALS" ]]; then
    (
      umask 077
      printf 'BRIDGE_PASSWORD=%s\nDEVICE_PASSWORD=%s\n' \
        "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" \
        "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" >"$MQTT_CREDENTIALS.tmp"
    )
    mv -f "$MQTT_CREDENTIALS.tmp" "$MQTT_CREDENTIALS"
  fi
  MQTT_BRIDGE_PASSWORD="$(sed -n 's/^BRIDGE_PASSWORD=//p' "$MQTT_CREDENTIALS")"
  MQTT_DEVICE_PASSWORD="$(sed -n 's/^DEVICE_PASSWORD=//p' "$MQTT_CREDENTIALS")"
  [[ -n "$MQTT_BRIDGE_PASSWORD" && -n "$MQTT_DEVICE_PASSWORD" ]] ||
    die "$MQTT_CREDENTIALS is incomplete: delete it and run $0 reload"
}

# ------------------------------------------------------------------ password and ACL files
# Both files are changed on a copy next to them that is renamed over them, so the broker never
# reads half a file, with the owner and mode of the file replaced. One change at a time: the
# directory is locked (flock) for the whole read-modify-write.
ACL_AWK="$SCRIPT_DIR/acl-block.awk"
ACL_HEADER='# Mosquitto ACL file: one block per MQTT user ("user" line, then its topics), kept by
# deploy/mosquitto/mosquitto.sh (add-device, remove-device; start and reload rewrite the blocks
# of the bridge and the test device) and by the compose credentials job. A block can be edited
# by hand; comments directly above a "user" line belong to its block.'

need_mosquitto_passwd() {
  command -v mosquitto_passwd >/dev/null 2>&1 ||
    die "mosquitto_passwd not found: run deploy/local/install-deps.sh (Debian package mosquitto)"
}

# lock_auth_dir FILE [FD]: holds the lock of FILE's directory on FD (8, or 7 for a second
# directory) until FD is closed or the script exits.
lock_auth_dir() {
  local dir fd="${2:-8}"
  dir="$(dirname -- "$1")"
  case "$fd" in
    8) exec 8<"$dir" ;;
    7) exec 7<"$dir" ;;
    *) die "lock_auth_dir: fd $fd" ;;
  esac
  flock -w 60 "$fd" || die "another mosquitto.sh has held the lock of $dir for 60s"
}

# replace_file TMP FILE: TMP, with FILE's owner and mode when FILE exists, becomes FILE.
replace_file() {
  local tmp="$1" file="$2"
  if [[ -e "$file" ]]; then
    chmod --reference="$file" -- "$tmp"
    if [[ "$(stat -c %u:%g -- "$file")" != "$(stat -c %u:%g -- "$tmp")" ]]; then
      chown --reference="$file" -- "$tmp" 2>/dev/null || {
        rm -f -- "$tmp"
        die "cannot give the new $file the owner of the old one ($(stat -c %U:%G -- "$file")): run as root"
      }
    fi
  fi
  mv -f -- "$tmp" "$file"
}

# acl_put FILE USER [BLOCK]: FILE without USER's block (acl-block.awk), then BLOCK at the end.
acl_put() {
  local file="$1" user="$2" block="${3:-}" tmp
  tmp="$(mktemp -- "$file.XXXXXX")"
  {
    printf '%s\n' "$ACL_HEADER"
    if [[ -f "$file" ]]; then
      printf '\n'
      awk -v user="$user" -f "$ACL_AWK" -- "$file"
    fi
    if [[ -n "$block" ]]; then printf '\n%s\n' "$block"; fi
  } >"$tmp" || { rm -f -- "$tmp"; die "cannot rewrite $file"; }
  replace_file "$tmp" "$file"
}

# passwd_run FILE OPTION USER [PASSWORD]: mosquitto_passwd OPTION (-b: add or replace, -D:
# delete) on a copy of FILE. mosquitto_passwd -b has the password on its command line, which
# other local users can read in /proc while it runs (a fraction of a second).
passwd_run() {
  local file="$1" opt="$2" tmp
  shift 2
  tmp="$(mktemp -- "$file.XXXXXX")"
  if [[ -f "$file" ]]; then cat -- "$file" >"$tmp"; fi
  if ! mosquitto_passwd "$opt" "$tmp" "$@" >/dev/null; then
    rm -f -- "$tmp"
    die "mosquitto_passwd $opt $file $1 failed"
  fi
  replace_file "$tmp" "$file"
}

# acl_has FILE USER: FILE has a block of USER.
acl_has() { [[ -f "$1" ]] && grep -qxF -- "user $2" "$1"; }
# passwd_has FILE USER: FILE has an entry of USER.
passwd_has() { [[ -f "$1" ]] && awk -F: -v u="$2" '$1 == u { found = 1 } END { exit !found }' "$1"; }

# The local stack's users, readable by the mosquitto user (it re-reads both files on SIGHUP after
# dropping root). The blocks and entries of other users (devices) are kept.
write_auth_files() {
  load_credentials
  need_mosquitto_passwd
  mkdir -p "$MQTT_DIR"
  lock_auth_dir "$MQTT_PASSWD"
  passwd_run "$MQTT_PASSWD" -b "$MQTT_BRIDGE_USER" "$MQTT_BRIDGE_PASSWORD"
  passwd_run "$MQTT_PASSWD" -b "$MQTT_DEVICE_USER" "$MQTT_DEVICE_PASSWORD"
  acl_put "$MQTT_ACL" "$MQTT_BRIDGE_USER" "# The MQTT bridge reads the devices' readings and the broker's counters and writes error reports.
user $MQTT_BRIDGE_USER
topic read telemetry/#
topic write telemetry-errors/#
topic read \$SYS/#"
  acl_put "$MQTT_ACL" "$MQTT_DEVICE_USER" "# A test device (tests, load generation) publishes readings for any tenant and reads the
# bridge's error reports: local stack only.
user $MQTT_DEVICE_USER
topic write telemetry/#
topic read telemetry-errors/#"
  local f
  for f in "$MQTT_PASSWD" "$MQTT_ACL"; do
    if [[ "$IS_ROOT" -eq 1 ]]; then
      chown root:mosquitto "$f"
      chmod 0640 "$f"
    else
      chmod 0600 "$f"
    fi
  done
  exec 8<&-
}

# ------------------------------------------------------------------------ device credentials
# check_name WHAT NAME: NAME is one MQTT topic level and a platform name (docs/names.md).
check_name() {
  local what="$1" name="$2" LC_ALL=C
  [[ -n "$name" ]] || die "the $what name is empty"
  if [[ "$name" == *:* ]]; then
    die "$what name '$name': ':' is not allowed here: the MQTT user name is TENANT/DEVICE and mosquitto_passwd refuses ':' (its file's separator)"
  fi
  [[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] ||
    die "$what name '$name' must be one MQTT topic level and a platform name: only A-Z a-z 0-9 _ . - (no '/', '+', '#', spaces or other characters)"
  ((${#name} <= 128)) || die "$what name '$name' is longer than 128 bytes"
}

# signal_reload PIDFILE: SIGHUP to the broker of PIDFILE, if it runs.
signal_reload() {
  local pidfile="$1" pid
  if [[ -z "$pidfile" ]]; then
    log "no pid file given: signal the broker that reads these files yourself (SIGHUP; compose: docker compose -f deploy/docker-compose.yml kill -s HUP mosquitto)"
    return 0
  fi
  pid="$(read_pidfile "$pidfile")"
  if pid_alive "$pid" mosquitto; then
    kill -HUP "$pid"
    log "mosquitto (pid $pid) reloads its password and ACL files"
  else
    log "mosquitto is not running (pid file $pidfile): it reads the files when it starts"
  fi
}

# device_command add-device|remove-device ARGS...
device_command() {
  local cmd="$1" gateway=0 password="" given=0 pwfile="" aclfile="" pidfile="" user block
  local -a names=()
  shift
  while (($#)); do
    case "$1" in
      --gateway) [[ "$cmd" == add-device ]] || die "--gateway is an option of add-device"; gateway=1 ;;
      --password | --password-file | --acl-file | --pid-file)
        (($# >= 2)) || die "$1 needs a value"
        case "$1" in
          --password) [[ "$cmd" == add-device ]] || die "--password is an option of add-device"
            password="$2"; given=1 ;;
          --password-file) pwfile="$2" ;;
          --acl-file) aclfile="$2" ;;
          --pid-file) pidfile="$2" ;;
        esac
        shift ;;
      --) shift; names+=("$@"); break ;;
      -?*) die "$cmd: unknown option $1 (a name starting with '-' goes after --)" ;;
      *) names+=("$1") ;;
    esac
    shift
  done
  ((${#names[@]} == 2)) || die "usage: $0 $cmd TENANT DEVICE [options] (see $0 --help)"
  check_name tenant "${names[0]}"
  check_name device "${names[1]}"
  user="${names[0]}/${names[1]}"
  if ((given)); then
    [[ -n "$password" ]] || die "--password is empty"
    [[ "$password" != *[[:cntrl:]]* ]] || die "the password must not contain control characters"
  fi
  if [[ -n "$pwfile$aclfile" ]]; then
    [[ -n "$pwfile" && -n "$aclfile" ]] || die "--password-file and --acl-file go together"
  else
    [[ -z "$pidfile" ]] || die "--pid-file goes with --password-file and --acl-file"
    pwfile="${TELEMETRY_MQTT_PASSWORD_FILE:-$MQTT_PASSWD}"
    aclfile="${TELEMETRY_MQTT_ACL_FILE:-$MQTT_ACL}"
    pidfile="${TELEMETRY_MQTT_PID_FILE:-$MQTT_PIDFILE}"
  fi
  [[ -f "$pwfile" ]] || die "no password file $pwfile (local stack: run deploy/local/up.sh)"
  [[ -f "$aclfile" ]] || die "no ACL file $aclfile (local stack: run deploy/local/up.sh)"
  need_mosquitto_passwd
  lock_auth_dir "$aclfile"
  [[ "$(dirname -- "$pwfile")" -ef "$(dirname -- "$aclfile")" ]] || lock_auth_dir "$pwfile" 7

  if [[ "$cmd" == remove-device ]]; then
    local found=0
    if passwd_has "$pwfile" "$user"; then passwd_run "$pwfile" -D "$user"; found=1; fi
    if acl_has "$aclfile" "$user"; then acl_put "$aclfile" "$user"; found=1; fi
    ((found)) || die "no user $user in $pwfile or $aclfile"
    log "removed $user"
  else
    if ((!given)); then password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"; fi
    if ((gateway)); then
      block="# gateway $user: readings of every device of tenant ${names[0]}, and their error reports
user $user
topic write telemetry/${names[0]}/+
topic write telemetry/${names[0]}/+/+
topic read telemetry-errors/${names[0]}/#"
    else
      block="# device $user: its readings (one document, or one value per sensor), and its error reports
user $user
topic write telemetry/${names[0]}/${names[1]}
topic write telemetry/${names[0]}/${names[1]}/+
topic read telemetry-errors/${names[0]}/${names[1]}"
    fi
    passwd_run "$pwfile" -b "$user" "$password"
    acl_put "$aclfile" "$user" "$block"
    log "$( ((gateway)) && echo gateway || echo device) $user written to $pwfile and $aclfile"
    if ((given)); then
      printf 'user=%s\n' "$user"
    else
      printf 'user=%s password=%s\n' "$user" "$password"
    fi
  fi
  signal_reload "$pidfile"
}

mqtt_start() {
  local port="$1" pid run_user
  [[ -x "$MOSQUITTO_BIN" ]] ||
    die "mosquitto not found: run deploy/local/install-deps.sh (Debian package mosquitto)"
  [[ -z "$(mqtt_pid)" ]] || die "mosquitto is already running (pid $(mqtt_pid))"
  mkdir -p "$MQTT_DIR" "$MQTT_DATA"
  if [[ "$IS_ROOT" -eq 1 ]]; then
    id mosquitto >/dev/null 2>&1 || die "running as root needs the 'mosquitto' OS user (package mosquitto)"
    run_user=mosquitto
    chown mosquitto:mosquitto "$MQTT_DATA"
    runuser -u mosquitto -- test -w "$MQTT_DATA" ||
      die "the mosquitto user cannot write $MQTT_DATA: TELEMETRY_LOCAL_DIR and its parents must be traversable (o+x)"
  else
    run_user="$(id -un)"
  fi
  chmod 0700 "$MQTT_DATA"
  write_auth_files
  sed -e "s|@PORT@|$port|g" -e "s|@USER@|$run_user|g" -e "s|@DATA_DIR@|$MQTT_DATA|g" \
    -e "s|@PASSWORD_FILE@|$MQTT_PASSWD|g" -e "s|@ACL_FILE@|$MQTT_ACL|g" \
    "$SCRIPT_DIR/mosquitto.conf" >"$MQTT_CONF.tmp"
  mv -f "$MQTT_CONF.tmp" "$MQTT_CONF"
  if [[ -f "$MQTT_LOG" ]]; then mv -f "$MQTT_LOG" "$MQTT_LOG.1"; fi
  log "starting mosquitto on 127.0.0.1:$port"
  # setsid: own session, so a Ctrl-C in this terminal later does not stop it. 9>&-: not the
  # state dir's lock (up.sh holds it on fd 9).
  setsid "$MOSQUITTO_BIN" -c "$MQTT_CONF" </dev/null >"$MQTT_LOG" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$MQTT_PIDFILE"
  wait_started mosquitto "$pid" "$MQTT_PIDFILE" "$MQTT_LOG" 30 port_open "$port"
}

# mqtt_stop SIGNAL: TERM saves the database first (give it time for a large one), KILL does not.
mqtt_stop() {
  local pid
  pid="$(mqtt_pid)"
  [[ -n "$pid" ]] || { rm -f "$MQTT_PIDFILE"; return 0; }
  stop_pid mosquitto "$pid" "$1" 60
  rm -f "$MQTT_PIDFILE"
}

case "$1" in
  start | stop | kill | restart | status) daemon_ctl mosquitto MQTT_PORT mqtt "$@" ;;
  reload)
    pid="$(mqtt_pid)"
    [[ -n "$pid" ]] || die "mosquitto is not running"
    write_auth_files
    kill -HUP "$pid"
    log "mosquitto (pid $pid) reloads its password and ACL files"
    ;;
  env)
    port="$(saved_port)"
    [[ "$port" =~ ^[0-9]+$ ]] || die "no MQTT_PORT in $PORTS_FILE: run deploy/local/up.sh"
    load_credentials
    cat <<EOF
TELEMETRY_MQTT_HOST=127.0.0.1
TELEMETRY_MQTT_PORT=$port
TELEMETRY_MQTT_BRIDGE_USER=$MQTT_BRIDGE_USER
TELEMETRY_MQTT_BRIDGE_PASSWORD=$MQTT_BRIDGE_PASSWORD
TELEMETRY_MQTT_DEVICE_USER=$MQTT_DEVICE_USER
TELEMETRY_MQTT_DEVICE_PASSWORD=$MQTT_DEVICE_PASSWORD
TELEMETRY_MQTT_PASSWORD_FILE=$MQTT_PASSWD
TELEMETRY_MQTT_ACL_FILE=$MQTT_ACL
TELEMETRY_MQTT_PID_FILE=$MQTT_PIDFILE
TELEMETRY_MQTT_CTL=$SCRIPT_DIR/mosquitto.sh
EOF
    ;;
  add-device | remove-device) device_command "$@" ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
