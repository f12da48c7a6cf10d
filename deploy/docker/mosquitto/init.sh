#!/bin/sh
# The compose stack's Mosquitto setup: the one-shot service mosquitto-init of
# deploy/docker-compose.yml runs it (image eclipse-mosquitto:2, busybox sh, as root) before the
# broker starts, on every `up`. It writes into the mosquitto-config volume, which the mosquitto
# service reads at /mosquitto/config:
#   mosquitto.conf  deploy/mosquitto/mosquitto.conf, the local stack's template, with the
#                   container's listener (1883 on every interface), user and paths: one
#                   configuration for both stacks (authentication, ACL, persistence, queue limits)
#   passwd          the bridge's and the test device's passwords (mosquitto_passwd), from
#                   MQTT_BRIDGE_PASSWORD and MQTT_DEVICE_PASSWORD
#   acl             their blocks, in the form deploy/mosquitto/mosquitto.sh keeps (acl-block.awk)
# The entries of those two users are rewritten; every other user is kept (devices issued with
# `deploy/mosquitto/mosquitto.sh add-device ... --password-file F --acl-file A` on the volume's
# files; docs/ingress.md). Files are owned by the mosquitto user, mode 0600, each replaced by a
# rename so that a running broker never reads half a file.
#
# Env: MQTT_BRIDGE_USER MQTT_BRIDGE_PASSWORD MQTT_DEVICE_USER MQTT_DEVICE_PASSWORD (required);
# MQTT_INIT_OUT (/mosquitto/config), MQTT_INIT_TEMPLATE (/opt/telemetry/mosquitto.conf.in),
# MQTT_INIT_AWK (/opt/telemetry/acl-block.awk), MQTT_INIT_OWNER (mosquitto:mosquitto): the
# paths and owner in the image, overridden only to try the script outside it.
set -eu

out="${MQTT_INIT_OUT:-/mosquitto/config}"
template="${MQTT_INIT_TEMPLATE:-/opt/telemetry/mosquitto.conf.in}"
awk_prog="${MQTT_INIT_AWK:-/opt/telemetry/acl-block.awk}"
owner="${MQTT_INIT_OWNER:-mosquitto:mosquitto}"

fail() {
  echo "mosquitto-init: $*" >&2
  exit 1
}
for v in MQTT_BRIDGE_USER MQTT_BRIDGE_PASSWORD MQTT_DEVICE_USER MQTT_DEVICE_PASSWORD; do
  eval "val=\${$v:-}"
  [ -n "$val" ] || fail "$v is not set"
done
[ -f "$template" ] || fail "no configuration template at $template"
[ -f "$awk_prog" ] || fail "no $awk_prog"
mkdir -p "$out"

# install_file TMP NAME: TMP becomes $out/NAME, owned by the broker's user, 0600.
install_file() {
  chown "$owner" "$1"
  chmod 0600 "$1"
  mv -f "$1" "$out/$2"
}

# ------------------------------------------------------------------------- configuration
# The template listens on 127.0.0.1 (the local stack); a container listens on every interface
# of its network namespace. A template whose listener line changed fails here rather than
# leaving the broker unreachable.
tmp="$(mktemp "$out/mosquitto.conf.XXXXXX")"
sed -e 's|^listener @PORT@ 127\.0\.0\.1$|listener 1883|' \
  -e 's|@USER@|mosquitto|g' \
  -e 's|@DATA_DIR@|/mosquitto/data|g' \
  -e "s|@PASSWORD_FILE@|$out/passwd|g" \
  -e "s|@ACL_FILE@|$out/acl|g" \
  "$template" >"$tmp"
grep -qx 'listener 1883' "$tmp" || { rm -f "$tmp"; fail "$template has no 'listener @PORT@ 127.0.0.1' line"; }
if grep -q '@[A-Z_]*@' "$tmp"; then
  left="$(grep -o '@[A-Z_]*@' "$tmp" | sort -u | tr '\n' ' ')"
  rm -f "$tmp"
  fail "$template has markers this script does not fill: $left"
fi
install_file "$tmp" mosquitto.conf

# ------------------------------------------------------------------------- passwords
tmp="$(mktemp "$out/passwd.XXXXXX")"
if [ -f "$out/passwd" ]; then cat "$out/passwd" >"$tmp"; fi
mosquitto_passwd -b "$tmp" "$MQTT_BRIDGE_USER" "$MQTT_BRIDGE_PASSWORD" >/dev/null ||
  { rm -f "$tmp"; fail "mosquitto_passwd failed for $MQTT_BRIDGE_USER"; }
mosquitto_passwd -b "$tmp" "$MQTT_DEVICE_USER" "$MQTT_DEVICE_PASSWORD" >/dev/null ||
  { rm -f "$tmp"; fail "mosquitto_passwd failed for $MQTT_DEVICE_USER"; }
install_file "$tmp" passwd

# ------------------------------------------------------------------------- ACL
tmp="$(mktemp "$out/acl.XXXXXX")"
{
  cat <<'HEADER'
# Mosquitto ACL file: one block per MQTT user ("user" line, then its topics), kept by
# deploy/mosquitto/mosquitto.sh (add-device, remove-device; start and reload rewrite the blocks
# of the bridge and the test device) and by the compose credentials job. A block can be edited
# by hand; comments directly above a "user" line belong to its block.
HEADER
  if [ -f "$out/acl" ]; then
    # Every block but the two users' (both removed in one pass: the awk keeps all but one).
    printf '\n'
    awk -v user="$MQTT_BRIDGE_USER" -f "$awk_prog" "$out/acl" |
      awk -v user="$MQTT_DEVICE_USER" -f "$awk_prog"
  fi
  cat <<EOF

# The MQTT bridge reads the devices' readings and the broker's counters and writes error reports.
user $MQTT_BRIDGE_USER
topic read telemetry/#
topic write telemetry-errors/#
topic read \$SYS/#

# DEV ONLY: a test device (the integration tests, load generation) publishes readings for any
# tenant. Real devices get credentials of their own, confined to their tenant: mosquitto.sh
# add-device.
user $MQTT_DEVICE_USER
topic write telemetry/#
topic read telemetry-errors/#
EOF
} >"$tmp" || { rm -f "$tmp"; fail "cannot write the ACL file"; }
install_file "$tmp" acl

echo "mosquitto-init: $out/mosquitto.conf, passwd and acl written ($(grep -c '^user ' "$out/acl") users; $MQTT_BRIDGE_USER and $MQTT_DEVICE_USER up to date)"
