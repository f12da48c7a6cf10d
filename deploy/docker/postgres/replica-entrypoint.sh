#!/usr/bin/env bash
# Entry point of the PostgreSQL streaming replica (official postgres image): on the first start
# (empty data dir) it clones the primary with `pg_basebackup -R` through the physical slot, which
# also writes standby.signal and primary_conninfo; then it runs the server as a hot standby.
#
#   entrypoint: ["bash", "/opt/telemetry/replica-entrypoint.sh"]
#   command:    ["postgres", "-c", "...", ...]   (the same settings as the primary: a hot standby
#                                                 needs max_connections etc. >= the primary's)
#
# Environment: PRIMARY_HOST, PRIMARY_PORT (5432), REPLICATION_USER (replicator),
# REPLICATION_PASSWORD, REPLICATION_SLOT (telemetry_replica), PGDATA (the image's).
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_HOST:?PRIMARY_HOST is not set}"
: "${PRIMARY_PORT:=5432}"
: "${REPLICATION_USER:=replicator}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD is not set}"
: "${REPLICATION_SLOT:=telemetry_replica}"
export PGDATA

if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  exec gosu postgres bash "${BASH_SOURCE[0]}" "$@"
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  # Leftovers of an interrupted clone would make pg_basebackup refuse the directory.
  mkdir -p "$PGDATA"
  find "$PGDATA" -mindepth 1 -delete
  until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do
    echo "replica: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
    sleep 1
  done
  echo "replica: pg_basebackup from $PRIMARY_HOST:$PRIMARY_PORT (slot $REPLICATION_SLOT)"
  pg_basebackup \
    --dbname="host=$PRIMARY_HOST port=$PRIMARY_PORT user=$REPLICATION_USER password=$REPLICATION_PASSWORD application_name=telemetry_replica" \
    --pgdata="$PGDATA" --write-recovery-conf --wal-method=stream \
    --slot="$REPLICATION_SLOT" --checkpoint=fast
  chmod 700 "$PGDATA"
fi

if [[ $# -eq 0 || "$1" == -* ]]; then
  set -- postgres "$@"
fi
exec "$@"
