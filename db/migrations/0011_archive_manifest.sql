-- The Parquet archive's manifest (issue 17, docs/archive.md). The archive is
-- exported from the warm tier: an hour is exported once it is packed (every
-- reading in raw_readings_seg, none pending in raw_late_hours), and again
-- whenever it is packed again after late readings.

-- How many times the compactor finished packing the hour: the version of the
-- hour's content the archive compares with. A late reading for a packed hour
-- makes the compactor pack it again, which increments this.
ALTER TABLE raw_compactions ADD COLUMN packs integer NOT NULL DEFAULT 0;
UPDATE raw_compactions SET packs = 1 WHERE state = 'packed';

-- One row per export of a tenant's hour. `version` counts the exports of
-- (tenant, hour); `source_packs` is raw_compactions.packs read before the
-- export read the data. 'writing': files being written (a crashed export is
-- resumed under the same version); 'current': the hour's archived version
-- (at most one per tenant and hour); 'superseded': an older current one.
CREATE TABLE archive_exports (
  tenant_id     bigint NOT NULL,
  hour          bigint NOT NULL,          -- start of the hour, ns since the epoch
  version       integer NOT NULL,
  source_packs  integer NOT NULL,
  state         text NOT NULL CHECK (state IN ('writing', 'current', 'superseded')),
  readings      bigint NOT NULL DEFAULT 0,
  bytes         bigint NOT NULL DEFAULT 0,
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  PRIMARY KEY (tenant_id, hour, version)
);
CREATE UNIQUE INDEX archive_exports_current ON archive_exports (tenant_id, hour)
  WHERE state = 'current';
CREATE UNIQUE INDEX archive_exports_writing ON archive_exports (tenant_id, hour)
  WHERE state = 'writing';

-- The files of each export, relative to the archive root.
CREATE TABLE archive_files (
  tenant_id  bigint NOT NULL,
  hour       bigint NOT NULL,
  version    integer NOT NULL,
  path       text NOT NULL,
  kind       text NOT NULL CHECK (kind IN ('readings', 'last')),
  readings   bigint NOT NULL,
  bytes      bigint NOT NULL,
  sha256     text NOT NULL,
  PRIMARY KEY (tenant_id, hour, version, path),
  FOREIGN KEY (tenant_id, hour, version) REFERENCES archive_exports ON DELETE CASCADE
);

-- Packed hours whose every tenant is exported at `packs`: the exporter
-- looks only at hours missing here or behind raw_compactions.packs, so a
-- pass costs one row per hour, not a scan of every segment ever archived.
CREATE TABLE archive_hours (
  hour   bigint PRIMARY KEY,
  packs  integer NOT NULL,
  archived_at timestamptz NOT NULL DEFAULT now()
);
