-- Packed closed hours of raw readings: the warm tier (issue 16,
-- docs/design-storage-layout.md "Raw segments"). The compactor moves a closed
-- hour's raw rows into one segment per series: `data` is the codec's output
-- (format 1, common/segment/raw_segment.h: delta-of-delta timestamps, the
-- smallest of several float codecs, a CRC), stored as it is: bytea with
-- STORAGE EXTERNAL, so Postgres never tries to compress it again.
--
-- A (series, ts) is in exactly one place: a row of raw_readings or one
-- segment. Packing moves rows in one transaction; a writer finds a reading
-- already stored in a segment and does not store it again; a late reading
-- for a packed hour is stored as a row, listed in raw_late_hours, and packed
-- into the segment by the compactor later.
CREATE TABLE raw_readings_seg (
  series_id  integer NOT NULL,
  hour       bigint NOT NULL,   -- start of the hour, ns since the epoch
  n          integer NOT NULL,  -- readings in the segment
  data       bytea NOT NULL,
  PRIMARY KEY (series_id, hour)
) PARTITION BY RANGE (hour);
ALTER TABLE raw_readings_seg ALTER COLUMN data SET STORAGE EXTERNAL;

-- One partition per day of raw_readings, with the same bounds (the writer
-- creates both; here those of the days that exist already).
DO $$
DECLARE
  p record;
BEGIN
  FOR p IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'raw_readings'::regclass LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF raw_readings_seg %s',
                   replace(p.relname, 'raw_readings_', 'raw_readings_seg_'), p.bound);
  END LOOP;
END
$$;

-- The hours the compactor claimed: 'packing' while it moves series by
-- series (an interrupted hour is resumed), 'packed' when every row of the
-- hour was in a segment. Writers lock the claims of the hours they write to
-- (FOR SHARE) for the length of their transaction; a packing step locks its
-- hour's claim (FOR UPDATE), so a writer never checks for a stored reading
-- while a step of its hour is half done.
CREATE TABLE raw_compactions (
  hour        bigint PRIMARY KEY,
  state       text NOT NULL CHECK (state IN ('packing', 'packed')),
  readings    bigint NOT NULL DEFAULT 0,  -- rows moved into segments, repacks included
  claimed_at  timestamptz NOT NULL DEFAULT now(),
  packed_at   timestamptz
);

-- Claimed hours that received rows after their claim (late data): the
-- compactor packs them into the segments again.
CREATE TABLE raw_late_hours (
  hour   bigint PRIMARY KEY,
  since  timestamptz NOT NULL DEFAULT now()
);
