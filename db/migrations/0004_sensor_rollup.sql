-- Hourly rollup per (tenant, project, sensor) over all devices: tenant- and
-- project-wide aggregates ("24 h at 1 h across a tenant's devices") read a
-- few hundred rows instead of one per device and hour. Maintained by the
-- writer in the same transaction as agg_1m / agg_1h, from the new rows only.
CREATE TABLE agg_1h_sensor (
  tenant_id   bigint NOT NULL,
  project_id  bigint NOT NULL,
  sensor      text NOT NULL,
  bucket      bigint NOT NULL,
  cnt         bigint NOT NULL,
  sum         double precision NOT NULL,
  min         double precision NOT NULL,
  max         double precision NOT NULL,
  last_ts     bigint NOT NULL,
  last_value  double precision NOT NULL,
  PRIMARY KEY (tenant_id, sensor, bucket, project_id)
) WITH (fillfactor = 70);

INSERT INTO agg_1h_sensor
SELECT s.tenant_id, s.project_id, s.sensor, a.bucket, sum(a.cnt), sum(a.sum), min(a.min),
       max(a.max), max(a.last_ts), (array_agg(a.last_value ORDER BY a.last_ts DESC))[1]
FROM agg_1h a JOIN series s ON s.id = a.series_id
GROUP BY 1, 2, 3, 4;
