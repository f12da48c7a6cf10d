-- The first and last timestamp of each raw segment (0008), so that a read
-- picks exactly the segments it needs without decoding any: a Playback edge
-- (the last reading before t - Δ, the first after t + Δ) is in the newest
-- segment that starts before it (or the oldest that ends after it), not in
-- "the two newest hours before the window". The compactor writes them with
-- the segment (ReadingWriter::PackRawHour); the segments packed before this
-- migration get them here, decoded by raw_seg_unpack (0009).
ALTER TABLE raw_readings_seg ADD COLUMN first_ts bigint, ADD COLUMN last_ts bigint;

UPDATE raw_readings_seg g SET (first_ts, last_ts) =
  (SELECT min(u.ts), max(u.ts) FROM raw_seg_unpack(g.hour, g.data) u);

ALTER TABLE raw_readings_seg ALTER COLUMN first_ts SET NOT NULL,
  ALTER COLUMN last_ts SET NOT NULL,
  ADD CONSTRAINT raw_readings_seg_bounds
    CHECK (hour <= first_ts AND first_ts <= last_ts AND last_ts < hour + 3600000000000);
