"""Reads an archive root with two independent Parquet readers and reports what
they see, one tab-separated record per line, for a C++ test to compare with
what it wrote (tests/integration/archive_readers_test.cc). Reports, never
judges: every assertion is in the test.

    python archive_read.py ROOT

ROOT is a local directory or s3://BUCKET/PREFIX?endpoint=http://HOST:PORT (the
archive root syntax of docs/archive.md; credentials from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY). On S3, pyarrow reads through its own S3 filesystem and
DuckDB scans the files as a pyarrow dataset (DuckDB's own S3 support is an
extension downloaded at run time, which this machine cannot reach).

Records (doubles as float.hex(), exact; timestamps in ns):
  F  path rows num_row_groups created_by              pyarrow.parquet, per file
  G  path index rows dev_min dev_max ts_min ts_max    its row-group statistics
  M  path key value                                   its telemetry.* metadata
  R  path device sensor unit project labels ts kind value status
                                                      pyarrow, every row in file order
  D  tenant date hour device sensor unit count sum min_ts max_ts
                                                      DuckDB over ROOT/**/readings-*.parquet
                                                      with Hive partitioning
  P  tenant count                                     DuckDB, a pruned read of one tenant
"""

import datetime
import glob
import os
import sys

import urllib.parse

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq


# The partition columns' types (left to itself DuckDB keeps "00" as text, "23" as a number).
HIVE_TYPES = "{'tenant': BIGINT, 'date': DATE, 'hour': INTEGER}"


def ns(v):
    """A timestamp statistic or value as ns since the epoch."""
    if isinstance(v, int):
        return v
    if hasattr(v, "value"):  # pandas-like Timestamp
        return int(v.value)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        delta = v - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    raise TypeError(f"not a timestamp: {v!r}")


def emit(*fields):
    print("\t".join(str(f) for f in fields))


def s3_root(root):
    """(filesystem, base path) of an s3:// archive root."""
    url = urllib.parse.urlsplit(root)
    params = dict(urllib.parse.parse_qsl(url.query))
    endpoint = urllib.parse.urlsplit(params["endpoint"])
    s3 = pafs.S3FileSystem(endpoint_override=endpoint.netloc, scheme=endpoint.scheme,
                           region=params.get("region", "us-east-1"))
    return s3, (url.netloc + url.path).rstrip("/")


def readings_files(root):
    """(filesystem or None, base, sorted paths of the published readings files)."""
    if root.startswith("s3://"):
        s3, base = s3_root(root)
        infos = s3.get_file_info(pafs.FileSelector(base, recursive=True))
        paths = sorted(i.path for i in infos if i.type == pafs.FileType.File
                       and i.base_name.startswith("readings-") and i.base_name.endswith(".parquet"))
        return s3, base, paths
    paths = sorted(glob.glob(os.path.join(root, "**", "readings-*.parquet"), recursive=True))
    return None, root, paths


def main():
    root = sys.argv[1]
    s3, base, files = readings_files(root)
    for path in files:
        rel = os.path.relpath(path, base)
        f = pq.ParquetFile(s3.open_input_file(path) if s3 else path)
        md = f.metadata
        emit("F", rel, md.num_rows, md.num_row_groups, md.created_by)
        names = f.schema_arrow.names
        dev, ts = names.index("device"), names.index("ts")
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            ds, tss = rg.column(dev).statistics, rg.column(ts).statistics
            # Timestamp statistics come back as ints or datetimes depending on the
            # version; ns() makes them ns. Older writers' datetimes lose the ns part,
            # so read the raw physical values when present.
            tmin = tss.min_raw if hasattr(tss, "min_raw") else ns(tss.min)
            tmax = tss.max_raw if hasattr(tss, "max_raw") else ns(tss.max)
            emit("G", rel, i, rg.num_rows, ds.min, ds.max, tmin, tmax)
        for k, v in (md.metadata or {}).items():
            k, v = k.decode(), v.decode()
            if k.startswith("telemetry."):
                emit("M", rel, k, v)
        t = f.read()
        # (Timestamps as their int64 ns: datetime has only µs.)
        cols = {n: t.column(n).to_pylist() for n in t.column_names if n != "ts"}
        ts_ns = t.column("ts").cast("int64").to_pylist()
        for i in range(t.num_rows):
            d, s, b = cols["value_double"][i], cols["value_string"][i], cols["value_bool"][i]
            if d is not None:
                kind, value = "d", float(d).hex()
            elif s is not None:
                kind, value = "s", s
            else:
                kind, value = "b", int(bool(b))
            emit("R", rel, cols["device"][i], cols["sensor"][i], cols["unit"][i],
                 cols["project"][i], cols["labels"][i], ts_ns[i], kind, value, cols["status"][i])

    con = duckdb.connect()
    if s3:
        partitioning = pads.partitioning(
            pa.schema([("tenant", pa.int64()), ("date", pa.date32()), ("hour", pa.int32())]),
            flavor="hive")
        archive = pads.dataset(files, filesystem=s3, format="parquet",
                               partitioning=partitioning, partition_base_dir=base)
        con.register("archive", archive)
        source, args = "archive", []
    else:
        source = f"read_parquet(?, hive_partitioning = true, hive_types = {HIVE_TYPES})"
        args = [os.path.join(root, "**", "readings-*.parquet")]
    rows = con.execute(
        f"""SELECT tenant, date, hour, device, sensor, unit, count(*), sum(value_double),
                  min(epoch_ns(ts)), max(epoch_ns(ts))
           FROM {source}
           GROUP BY ALL ORDER BY ALL""", args).fetchall()
    for r in rows:
        tenant, date, hour, device, sensor, unit, count, total, tmin, tmax = r
        emit("D", tenant, date, hour, device, sensor, unit, count,
             float(total).hex() if total is not None else "none", tmin, tmax)
    if rows:
        first = rows[0][0]
        (count,) = con.execute(f"SELECT count(*) FROM {source} WHERE tenant = ?",
                               args + [first]).fetchone()
        emit("P", first, count)


if __name__ == "__main__":
    main()
