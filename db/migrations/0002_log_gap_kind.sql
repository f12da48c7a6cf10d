-- Distinguish data the broker dropped before it was applied ('dropped') from
-- a partition whose log restarted below the applied offset ('reset', e.g. a
-- topic deleted and re-created, or a dev broker restarted empty).
ALTER TABLE writer_log_gaps ADD COLUMN kind text NOT NULL DEFAULT 'dropped';
