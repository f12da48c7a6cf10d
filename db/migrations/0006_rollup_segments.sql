-- Packed closed hours of the 1-minute rollup (docs/design-storage-layout.md,
-- "Segments"). The compactor moves a closed hour's agg_1m rows into one row
-- per series: `data` holds the hour's minutes in one string, so a day of one
-- series at 1 minute is 24 rows instead of 1,440 and Postgres sends it
-- without formatting a number (a text column is copied as it is).
--
-- Format 1: base64 (RFC 4648, no line breaks) of a version byte (1) followed
-- by one 49-byte record per minute that has readings, in minute order, all
-- big-endian: minute of the hour (1 byte, 0-59), count (int8), sum, min, max
-- (float8), last_ts (int8, ns since the epoch), last value (float8).
--
-- Rows written to agg_1m for the hour after it was packed (late data) stay
-- rows; a read merges them with the segment (agg_1m_merged below does the
-- same in SQL).
CREATE TABLE agg_1m_seg (
  series_id  integer NOT NULL,
  hour       bigint NOT NULL,  -- start of the hour, ns since the epoch
  data       text NOT NULL,
  PRIMARY KEY (series_id, hour)
) WITH (toast_tuple_target = 8160);
-- A full hour is ~4 KB: kept in the row (two to a page), never compressed.
ALTER TABLE agg_1m_seg ALTER COLUMN data SET STORAGE EXTERNAL;

-- A float8 from its IEEE 754 bits (there is no cast). Exact: a 53-bit
-- integer times a power of two.
CREATE FUNCTION float8_from_bits(b bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE
    WHEN e = 2047 AND m = 0 THEN CASE WHEN b < 0 THEN '-Infinity' ELSE 'Infinity' END::float8
    WHEN e = 2047 THEN 'NaN'::float8
    WHEN e = 0 THEN sign * m::float8 * power(2::float8, -1074)
    ELSE sign * (4503599627370496 + m)::float8 * power(2::float8, e - 1075)
  END
  FROM (SELECT ((b >> 52) & 2047)::int AS e, b & 4503599627370495 AS m,
               CASE WHEN b < 0 THEN -1::float8 ELSE 1::float8 END AS sign) x
$$;

-- The minutes of one segment as agg_1m rows (for SQL users, checks and
-- tests; the query service decodes segments itself).
CREATE FUNCTION agg_1m_seg_unpack(seg_hour bigint, seg_data text)
RETURNS TABLE (bucket bigint, cnt bigint, sum double precision, min double precision,
               max double precision, last_ts bigint, last_value double precision)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  b bytea := decode(seg_data, 'base64');
BEGIN
  IF length(b) = 0 OR get_byte(b, 0) <> 1 OR (length(b) - 1) % 49 <> 0 THEN
    RAISE EXCEPTION 'agg_1m_seg: not a format-1 segment (% bytes)', length(b);
  END IF;
  RETURN QUERY
    SELECT seg_hour + get_byte(b, o) * 60000000000::bigint,
           ('x' || encode(substring(b FROM o + 2 FOR 8), 'hex'))::bit(64)::bigint,
           float8_from_bits(('x' || encode(substring(b FROM o + 10 FOR 8), 'hex'))::bit(64)::bigint),
           float8_from_bits(('x' || encode(substring(b FROM o + 18 FOR 8), 'hex'))::bit(64)::bigint),
           float8_from_bits(('x' || encode(substring(b FROM o + 26 FOR 8), 'hex'))::bit(64)::bigint),
           ('x' || encode(substring(b FROM o + 34 FOR 8), 'hex'))::bit(64)::bigint,
           float8_from_bits(('x' || encode(substring(b FROM o + 42 FOR 8), 'hex'))::bit(64)::bigint)
    FROM generate_series(1, length(b) - 49, 49) AS o;
END
$$;

-- The 1-minute rollup as one relation: rows and unpacked segments, merged
-- per (series, minute). What agg_1m was before segments existed.
CREATE VIEW agg_1m_merged AS
SELECT series_id, bucket, sum(cnt)::bigint AS cnt, sum(sum) AS sum, min(min) AS min,
       max(max) AS max, max(last_ts) AS last_ts,
       (array_agg(last_value ORDER BY last_ts DESC))[1] AS last_value
FROM (SELECT series_id, bucket, cnt, sum, min, max, last_ts, last_value FROM agg_1m
      UNION ALL
      SELECT g.series_id, u.* FROM agg_1m_seg g CROSS JOIN LATERAL agg_1m_seg_unpack(g.hour, g.data) u) x
GROUP BY series_id, bucket;

-- Hours compacted before this migration were rewritten in place (0005), not
-- packed: forget them, so the compactor packs them too (oldest first, a few
-- hours per round).
DELETE FROM rollup_compactions;
