#!/usr/bin/env bash
# PostgreSQL primary, first start only (/docker-entrypoint-initdb.d of the official postgres
# image, which runs it as the postgres user against a socket-only temporary server).
# The same layout as deploy/local: the LOGIN role `telemetry` owns the databases `telemetry` and
# `telemetry_analytics`; the role `replicator` may stream WAL to the replica through the
# physical slot `telemetry_replica`.
#
# The image runs this file when it is executable and sources it otherwise, so it sets no shell
# options, never exits on success and exits 1 (ending the container's first start) on failure.
# Passwords come from the environment (see deploy/docker-compose.yml).
: "${APP_DB_PASSWORD:?APP_DB_PASSWORD is not set}"
: "${REPLICATION_USER:=replicator}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD is not set}"
: "${REPLICATION_SLOT:=telemetry_replica}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  --set app_password="$APP_DB_PASSWORD" \
  --set repl_user="$REPLICATION_USER" \
  --set repl_password="$REPLICATION_PASSWORD" \
  --set repl_slot="$REPLICATION_SLOT" <<'SQL' || { echo "init-primary: setup failed" >&2; exit 1; }
CREATE ROLE telemetry LOGIN PASSWORD :'app_password';
CREATE DATABASE telemetry OWNER telemetry;
CREATE DATABASE telemetry_analytics OWNER telemetry;
CREATE ROLE :"repl_user" LOGIN REPLICATION PASSWORD :'repl_password';
SELECT pg_create_physical_replication_slot(:'repl_slot');
SQL

# Streaming replication connections from the container network (password required).
printf 'host replication %s all scram-sha-256\n' "$REPLICATION_USER" >>"$PGDATA/pg_hba.conf"
