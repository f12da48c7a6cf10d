-- How fresh what a writer applied is (docs/warehouse.md "Freshness"): every
-- reading produced to (topic, partition) before fresh_through_ns (ns since
-- the epoch) has been applied here. The warehouse loader records it about
-- once a second; the query service reports now minus the oldest partition's
-- as an ANALYTICS read's lag.
CREATE TABLE writer_freshness (
  topic             text NOT NULL,
  partition         integer NOT NULL,
  fresh_through_ns  bigint NOT NULL,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, partition)
);
