-- Rollup compaction (docs/design-storage-layout.md): the writer's batches add
-- one agg_1m row per series and minute in arrival order, so a heap page holds
-- ~70 series of the same minute and one series' day at 1 minute touches
-- ~1,440 pages. Once an hour is closed, its agg_1m rows are rewritten in
-- (series, bucket) order: that day then sits on ~24 runs of one or two pages.
-- Content never changes; only the physical order does.

-- Finds an hour's rows without a full scan. BRIN costs next to nothing on
-- insert, and the writer lays agg_1m out roughly in time order.
CREATE INDEX agg_1m_bucket_brin ON agg_1m USING brin (bucket) WITH (pages_per_range = 16);

-- Hours already rewritten (also the claim that keeps two compactors from
-- rewriting the same hour).
CREATE TABLE rollup_compactions (
  hour          bigint PRIMARY KEY,  -- start of the hour, ns since the epoch
  rows          bigint NOT NULL,
  compacted_at  timestamptz NOT NULL DEFAULT now()
);
