-- Metadata, narrow raw storage, rollups and the writer's applied offsets.
-- Applied once by `telemetry-admin migrate` (recorded in schema_migrations).

CREATE TABLE tenants (
  id                          bigserial PRIMARY KEY,
  name                        text NOT NULL UNIQUE,
  require_registered_devices  boolean NOT NULL DEFAULT false,
  sensor_whitelist            text[] NOT NULL DEFAULT '{}',
  rate_per_sec                double precision NOT NULL DEFAULT 1000000,
  burst                       double precision NOT NULL DEFAULT 2000000,
  raw_retention_days          integer NOT NULL DEFAULT 30,
  created_at                  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 (hex) only; the key itself is shown once.
CREATE TABLE api_keys (
  key_hash    text PRIMARY KEY,
  tenant_id   bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);

CREATE TABLE projects (
  id          bigserial PRIMARY KEY,
  tenant_id   bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  name        text NOT NULL,
  is_default  boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

CREATE TABLE devices (
  id          bigserial PRIMARY KEY,
  tenant_id   bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  project_id  bigint NOT NULL REFERENCES projects(id),
  name        text NOT NULL,
  model       text NOT NULL DEFAULT '',
  location    text NOT NULL DEFAULT '',
  time_zone   text NOT NULL DEFAULT 'UTC',
  labels      jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

-- A series: (tenant, project, device, sensor, unit) → small integer id, so
-- raw rows stay narrow. Tenant and project are denormalised for filtering.
CREATE TABLE series (
  id          serial PRIMARY KEY,
  tenant_id   bigint NOT NULL,
  project_id  bigint NOT NULL,
  device_id   bigint NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  sensor      text NOT NULL,
  unit        text NOT NULL DEFAULT '',
  labels      jsonb NOT NULL DEFAULT '{}',
  UNIQUE (device_id, sensor, unit)
);
CREATE INDEX series_tenant_project ON series (tenant_id, project_id);

-- Raw readings: timestamps in ns since the epoch, day partitions created by
-- the writer ahead of time. Exactly one value column is set per row.
CREATE TABLE raw_readings (
  series_id     integer NOT NULL,
  ts            bigint NOT NULL,
  value_double  double precision,
  value_text    text,
  value_bool    boolean,
  status_code   integer,
  PRIMARY KEY (series_id, ts)
) PARTITION BY RANGE (ts);

-- Rollups of numeric (and boolean, as 0/1) readings.
CREATE TABLE agg_1m (
  series_id   integer NOT NULL,
  bucket      bigint NOT NULL,
  cnt         bigint NOT NULL,
  sum         double precision NOT NULL,
  min         double precision NOT NULL,
  max         double precision NOT NULL,
  last_ts     bigint NOT NULL,
  last_value  double precision NOT NULL,
  PRIMARY KEY (series_id, bucket)
);
CREATE TABLE agg_1h (LIKE agg_1m INCLUDING ALL);

-- The writer's progress, updated in the same transaction as the data.
CREATE TABLE writer_offsets (
  topic        text NOT NULL,
  partition    integer NOT NULL,
  next_offset  bigint NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, partition)
);

-- Offsets the broker dropped before the writer applied them.
CREATE TABLE writer_log_gaps (
  id           bigserial PRIMARY KEY,
  topic        text NOT NULL,
  partition    integer NOT NULL,
  from_offset  bigint NOT NULL,
  to_offset    bigint NOT NULL,
  detected_at  timestamptz NOT NULL DEFAULT now()
);

-- Updated by the primary about once a second; replicas read it to measure lag.
CREATE TABLE replication_heartbeat (
  id  integer PRIMARY KEY,
  ts  timestamptz NOT NULL
);
INSERT INTO replication_heartbeat VALUES (1, now());
