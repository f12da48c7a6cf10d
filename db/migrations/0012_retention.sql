-- Retention of raw readings (issue 17, docs/archive.md "Retention"): a day
-- partition of raw_readings and raw_readings_seg is dropped once the day is
-- past the raw retention of every tenant with readings in it and every
-- (tenant, hour) of it is archived at the hour's current content version.
--
-- A dropped day's hours keep their claim, in state 'dropped': a writer
-- discards a reading for such an hour (it is older than the retention of
-- its tenant: counted, never stored half), the packer and the exporter skip it.
ALTER TABLE raw_compactions DROP CONSTRAINT raw_compactions_state_check;
ALTER TABLE raw_compactions ADD CONSTRAINT raw_compactions_state_check
  CHECK (state IN ('packing', 'packed', 'dropped'));

-- One row per day dropped: what it held, for the operator and the dry run's
-- history.
CREATE TABLE retention_drops (
  day         bigint PRIMARY KEY,   -- start of the UTC day, ns since the epoch
  tenants     bigint[] NOT NULL,    -- tenants that had readings in it
  segments    bigint NOT NULL,
  readings    bigint NOT NULL,
  dropped_at  timestamptz NOT NULL DEFAULT now()
);
