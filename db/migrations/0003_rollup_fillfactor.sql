-- Rollup rows are updated in place by every batch that touches their bucket.
-- Free space on each page lets those updates stay HOT (no index insert, no
-- page split): fewer writes and less bloat.
ALTER TABLE agg_1m SET (fillfactor = 70);
ALTER TABLE agg_1h SET (fillfactor = 70);
