-- Retention drops a day in two steps (docs/archive.md "Retention"): it marks
-- the day's hours 'dropped' (reads of them go to the archive from then on,
-- writes are discarded), and drops the day's partitions a grace later
-- (telemetry-export --retention_purge_grace_s), once every reader has seen the
-- mark: a query service that still holds the list of dropped hours from
-- before the mark reads the day from its partitions, unchanged, instead of
-- finding them gone. purged_at: when the partitions were dropped.
ALTER TABLE retention_drops ADD COLUMN purged_at timestamptz;
UPDATE retention_drops SET purged_at = dropped_at;
