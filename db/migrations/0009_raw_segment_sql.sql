-- Raw segments in SQL: raw_seg_unpack decodes one segment of raw_readings_seg
-- (0008) into raw_readings rows, and raw_readings_merged is every reading as
-- one relation, rows and segments together (what raw_readings was before
-- segments existed). For SQL users, checks and tests: the query service
-- decodes segments itself, in C++ (common/segment/raw_segment.h, which
-- documents the format). This is PL/pgSQL and slow (tens of milliseconds for
-- a segment of 3,600 readings), meant for ad-hoc queries over a few series
-- and hours, not for scans of the table.
--
-- It decodes format 1 completely except float codec 4 (split-zstd: Postgres
-- has no zstd function), which raises an error naming the codec. Every value
-- comes out as DecodeRawSegment gives it, with one exception: a NaN comes out
-- as float8's one NaN (its sign and payload bits are lost; a float8 in SQL
-- cannot carry them anyway). Status 0 comes out as NULL, as raw_readings
-- stores it. The CRC-32 is not checked (no crc32 in Postgres), but the
-- structure is: any inconsistency raises 'raw segment: ...' (the messages of
-- the C++ decoder). A string that is not valid UTF-8 (or holds a NUL) raises
-- Postgres's encoding error: raw_readings could not have held it either.
--
-- The raw_seg_* helpers below are parts of raw_seg_unpack, not an interface.
-- Unsigned 64-bit integers of the format are held in bigint with the same
-- bits (2^63 and more negative). The C++ computes in wrapping uint64_t;
-- bigint arithmetic raises on overflow instead, so wrapping sums are done in
-- numeric reduced modulo 2^64 (raw_seg_wrap64) or with raw_seg_add64.

-- x modulo 2^64 as a two's complement bigint (the bits of uint64_t(x)).
CREATE FUNCTION raw_seg_wrap64(x numeric) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT (((x + 9223372036854775808) % 18446744073709551616 + 18446744073709551616)
          % 18446744073709551616 - 9223372036854775808)::bigint
$$;

-- a + b modulo 2^64 (uint64_t addition on the bits). Not STRICT, so that it
-- is inlined.
CREATE FUNCTION raw_seg_add64(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN b > 0 AND a > 9223372036854775807 - b
      THEN (a - 9223372036854775807 - 1) + (b - 9223372036854775807 - 1)
    WHEN b < 0 AND a < -9223372036854775807 - 1 - b
      THEN (a + 9223372036854775807 + 1) + (b + 9223372036854775807 + 1)
    ELSE a + b
  END
$$;

-- The LEB128 varint at byte offset p (from 0) of b: {value, offset after it}
-- (the value's 64 bits, as in C++); NULL when b ends first or it has more
-- than 10 bytes.
CREATE FUNCTION raw_seg_varint(b bytea, p integer) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  v bigint := 0;
  shift integer := 0;
  byte integer;
BEGIN
  LOOP
    IF p >= length(b) OR shift >= 64 THEN
      RETURN NULL;
    END IF;
    byte := get_byte(b, p);
    p := p + 1;
    v := v | ((byte & 127)::bigint << shift);
    IF byte < 128 THEN
      RETURN ARRAY[v, p];
    END IF;
    shift := shift + 7;
  END LOOP;
END
$$;

-- The n unsigned integers frame-of-reference packed in `packed` (bits.h,
-- UnpackUnsigned: blocks of 64, a 7-bit width then the values, MSB first),
-- which they must fill to its last byte; NULL when they do not.
CREATE FUNCTION raw_seg_uints(packed bytea, n integer) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  bits varbit := ('x' || encode(packed, 'hex'))::varbit;
  total integer := length(bits);
  p integer := 1;  -- the next bit (from 1)
  w integer;
  cnt integer;
  out bigint[] := '{}';
BEGIN
  FOR blk IN 0 .. n - 1 BY 64 LOOP
    cnt := least(64, n - blk);
    IF p + 6 > total THEN
      RETURN NULL;
    END IF;
    w := substring(bits FROM p FOR 7)::integer;
    p := p + 7;
    IF w > 64 OR p - 1 + w * cnt > total THEN
      RETURN NULL;
    END IF;
    out := out || ARRAY(SELECT substring(bits FROM p + k * w FOR w)::bigint
                        FROM generate_series(0, cnt - 1) k ORDER BY k);
    p := p + w * cnt;
  END LOOP;
  IF (p + 6) / 8 <> length(packed) THEN
    RETURN NULL;  -- bytes after the values
  END IF;
  RETURN out;
END
$$;

-- The n integers of a polynomial-coded sequence (raw_segment.cc,
-- DecodePolynomial) from byte offset p of s to its end: u8 order (0-4), the
-- first `order` values as varints, the zigzagged residuals packed; each
-- value is its prediction from the `order` values before it plus its
-- residual, in wrapping 64-bit arithmetic. NULL when s is not one.
--
-- The predictions are FLAC's fixed predictors, so a residual is the
-- order-th difference of the values (x - x1, x - 2x1 + x2, ...): each value
-- is the residual added up the chain of the differences at the value
-- before, 64-bit additions only.
CREATE FUNCTION raw_seg_polynomial(s bytea, p integer, n integer) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  ord integer;
  x bigint[] := '{}';
  r bigint[];
  vp bigint[];
  y numeric[];
  d bigint[] := '{}';  -- d[m]: the (m - 1)-th difference at the last value
BEGIN
  IF p >= length(s) THEN
    RETURN NULL;
  END IF;
  ord := get_byte(s, p);
  p := p + 1;
  IF ord > 4 OR ord > n THEN
    RETURN NULL;
  END IF;
  FOR i IN 1 .. ord LOOP
    vp := raw_seg_varint(s, p);
    IF vp IS NULL THEN
      RETURN NULL;
    END IF;
    x := x || vp[1];
    p := vp[2];
  END LOOP;
  r := raw_seg_uints(substring(s FROM p + 1), n - ord);
  IF r IS NULL THEN
    RETURN NULL;
  END IF;
  r := ARRAY(SELECT ((u.z >> 1) & 9223372036854775807) # -(u.z & 1)  -- UnZigZag
             FROM unnest(r) WITH ORDINALITY AS u(z, i) ORDER BY u.i);
  IF ord = 0 THEN
    RETURN r;
  END IF;
  y := x::numeric[];
  FOR m IN 1 .. ord LOOP
    d := d || raw_seg_wrap64(y[ord]);
    FOR j IN REVERSE ord .. m + 1 LOOP
      y[j] := y[j] - y[j - 1];
    END LOOP;
  END LOOP;
  FOR i IN 1 .. n - ord LOOP
    d[ord] := raw_seg_add64(d[ord], r[i]);
    FOR m IN REVERSE ord - 1 .. 1 LOOP
      d[m] := raw_seg_add64(d[m], d[m + 1]);
    END LOOP;
    x := x || d[1];
  END LOOP;
  RETURN x;
END
$$;

-- Expands the runs of (value, length) of `section` into n values, each at
-- most max_value; raises when they do not cover exactly n.
CREATE FUNCTION raw_seg_runs(section bytea, n integer, max_value bigint, what text)
RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  p integer := 0;
  vv bigint[];
  vl bigint[];
  vals bigint[] := '{}';
  lens bigint[] := '{}';
  covered bigint := 0;
BEGIN
  WHILE p < length(section) LOOP
    vv := raw_seg_varint(section, p);
    vl := CASE WHEN vv IS NOT NULL THEN raw_seg_varint(section, vv[2]::integer) END;
    IF vl IS NULL OR vl[1] <= 0 OR vl[1] > n - covered OR vv[1] < 0 OR vv[1] > max_value THEN
      RAISE EXCEPTION 'raw segment: bad % run', what USING ERRCODE = 'data_corrupted';
    END IF;
    vals := vals || vv[1];
    lens := lens || vl[1];
    covered := covered + vl[1];
    p := vl[2];
  END LOOP;
  IF covered <> n THEN
    RAISE EXCEPTION 'raw segment: % runs cover % of %', what, covered, n
      USING ERRCODE = 'data_corrupted';
  END IF;
  RETURN ARRAY(SELECT u.v FROM unnest(vals, lens) WITH ORDINALITY AS u(v, len, run),
                 generate_series(1, u.len)
               ORDER BY u.run);
END
$$;

-- The readings of one segment (`seg_hour`, `seg_data`: a row of
-- raw_readings_seg) as raw_readings rows, in timestamp order.
CREATE FUNCTION raw_seg_unpack(seg_hour bigint, seg_data bytea)
RETURNS TABLE (ts bigint, value_double double precision, value_text text, value_bool boolean,
               status_code integer)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  -- Detoasted once here: a column value may arrive as a TOAST pointer, which
  -- every get_byte would fetch again.
  b bytea := seg_data || ''::bytea;
  body_len integer := length(b) - 4;  -- the CRC-32 (not checked) ends the segment
  p integer := 1;  -- byte offset in b (from 0), after the version
  vp bigint[];
  n integer;
  sec bytea[] := '{}';  -- TS, KIND, STATUS, DOUBLE, STRING, BOOL
  -- timestamps
  mode integer;
  t0 numeric;
  g bigint;
  q bigint;
  dod bigint[];
  t bigint[];
  tb bigint;
  -- kinds, status codes
  kinds bigint[];
  status bigint[];
  nd integer;
  ns integer;
  nb integer;
  -- doubles
  codec integer;
  body bytea;
  dbits bigint[];  -- IEEE bits (codecs 0-2)
  dvals double precision[];
  bits varbit;
  total integer;
  bp integer;  -- the next bit of `bits` (from 1)
  x bigint;
  lead integer;
  trail integer;
  w integer;
  sig integer;
  e integer;
  ints bigint[];
  -- strings
  strs text[];
  dict text[];
  k bigint;
  len bigint;
  idx bigint[];
BEGIN
  IF length(b) < 5 THEN
    RAISE EXCEPTION 'raw segment: too short (% bytes)', length(b) USING ERRCODE = 'data_corrupted';
  END IF;
  IF get_byte(b, 0) <> 1 THEN
    RAISE EXCEPTION 'raw segment: unknown version %', get_byte(b, 0)
      USING ERRCODE = 'data_corrupted';
  END IF;
  b := substring(b FROM 1 FOR body_len);
  vp := raw_seg_varint(b, p);
  IF vp IS NULL OR vp[1] <= 0 OR vp[1] > 16777216 THEN
    RAISE EXCEPTION 'raw segment: bad reading count' USING ERRCODE = 'data_corrupted';
  END IF;
  n := vp[1];
  p := vp[2];
  FOR i IN 1 .. 6 LOOP
    vp := raw_seg_varint(b, p);
    IF vp IS NULL OR vp[1] < 0 OR vp[1] > body_len - vp[2] THEN
      RAISE EXCEPTION 'raw segment: section truncated' USING ERRCODE = 'data_corrupted';
    END IF;
    sec := sec || substring(b FROM vp[2]::integer + 1 FOR vp[1]::integer);
    p := vp[2] + vp[1];
  END LOOP;
  IF p <> body_len THEN
    RAISE EXCEPTION 'raw segment: trailing bytes' USING ERRCODE = 'data_corrupted';
  END IF;

  -- TS: u8 mode, zigzag(t0 - hour), then mode 0: the gap (n > 1); mode 1:
  -- g, the first gap / g, the delta-of-deltas / g packed. The C++ adds up
  -- in wrapping uint64_t: here in bigint when no sum can leave it (every
  -- segment of real readings), else in numeric reduced modulo 2^64.
  body := sec[1];
  vp := CASE WHEN length(body) > 0 THEN raw_seg_varint(body, 1) END;
  IF vp IS NULL THEN
    RAISE EXCEPTION 'raw segment: timestamps truncated' USING ERRCODE = 'data_corrupted';
  END IF;
  mode := get_byte(body, 0);
  t0 := seg_hour::numeric + (((vp[1] >> 1) & 9223372036854775807) # -(vp[1] & 1));
  p := vp[2];
  IF mode = 0 THEN
    g := 0;
    IF n > 1 THEN
      vp := raw_seg_varint(body, p);
      IF vp IS NULL OR vp[1] = 0 THEN
        RAISE EXCEPTION 'raw segment: bad timestamp gap' USING ERRCODE = 'data_corrupted';
      END IF;
      g := vp[1];
      p := vp[2];
    END IF;
    IF p <> length(body) THEN
      RAISE EXCEPTION 'raw segment: trailing bytes after the timestamps'
        USING ERRCODE = 'data_corrupted';
    END IF;
    IF g >= 0 AND abs(t0) + (n - 1) * g::numeric <= 9223372036854775807 THEN
      t := ARRAY(SELECT t0::bigint + (i - 1) * g FROM generate_series(1, n) i ORDER BY i);
    ELSE
      t := ARRAY(SELECT raw_seg_wrap64(t0 + (i - 1) * g::numeric)
                 FROM generate_series(1, n) i ORDER BY i);
    END IF;
  ELSIF mode = 1 THEN
    vp := CASE WHEN n >= 3 THEN raw_seg_varint(body, p) END;
    IF vp IS NULL OR vp[1] = 0 THEN
      RAISE EXCEPTION 'raw segment: bad timestamp header' USING ERRCODE = 'data_corrupted';
    END IF;
    g := vp[1];
    vp := raw_seg_varint(body, vp[2]::integer);
    IF vp IS NULL THEN
      RAISE EXCEPTION 'raw segment: bad timestamp header' USING ERRCODE = 'data_corrupted';
    END IF;
    q := vp[1];
    dod := raw_seg_uints(substring(body FROM vp[2]::integer + 1), n - 2);
    IF dod IS NULL THEN
      RAISE EXCEPTION 'raw segment: timestamps truncated' USING ERRCODE = 'data_corrupted';
    END IF;
    dod := ARRAY(SELECT ((u.z >> 1) & 9223372036854775807) # -(u.z & 1)  -- UnZigZag
                 FROM unnest(dod) WITH ORDINALITY AS u(z, i) ORDER BY u.i);
    -- Gap i (1 .. n - 1) is g * q_i: q_1 = q, q_i = q_(i-1) + dod[i - 1].
    -- |q_i| <= q + sum |dod|, |t_i| <= |t0| + g (n - 1) max |q_i|.
    IF q >= 0 AND g >= 0 AND abs(t0) + g::numeric * (n - 1)
         * (q + (SELECT sum(abs(u.z::numeric)) FROM unnest(dod) AS u(z))) <= 9223372036854775807 THEN
      tb := t0::bigint;
      t := ARRAY[tb];
      FOR i IN 1 .. n - 1 LOOP
        IF i > 1 THEN
          q := q + dod[i - 1];
        END IF;
        tb := tb + g * q;
        t := t || tb;
      END LOOP;
    ELSE
      t := ARRAY[raw_seg_wrap64(t0)] || ARRAY(
        SELECT raw_seg_wrap64(t0 + g::numeric * sum(gq) OVER (ORDER BY i ROWS UNBOUNDED PRECEDING))
        FROM (SELECT i, q::numeric + sum(dq) OVER (ORDER BY i ROWS UNBOUNDED PRECEDING) AS gq
              FROM (SELECT i, CASE WHEN i = 1 THEN 0 ELSE dod[i - 1] END AS dq
                    FROM generate_series(1, n - 1) i) d) gaps
        ORDER BY i);
    END IF;
  ELSE
    RAISE EXCEPTION 'raw segment: unknown timestamp mode %', mode USING ERRCODE = 'data_corrupted';
  END IF;
  IF EXISTS (SELECT 1 FROM generate_series(2, n) i WHERE t[i] <= t[i - 1]) THEN
    RAISE EXCEPTION 'raw segment: timestamps not increasing' USING ERRCODE = 'data_corrupted';
  END IF;

  -- KIND, STATUS: runs; status values at most zigzag(INT32_MIN).
  kinds := raw_seg_runs(sec[2], n, 2, 'kind');
  status := raw_seg_runs(sec[3], n, 4294967295, 'status');
  SELECT count(*) FILTER (WHERE v = 0), count(*) FILTER (WHERE v = 1),
         count(*) FILTER (WHERE v = 2)
    INTO nd, ns, nb FROM unnest(kinds) v;

  -- DOUBLE: u8 codec, then its bytes.
  body := sec[4];
  IF nd = 0 THEN
    IF length(body) <> 0 THEN
      RAISE EXCEPTION 'raw segment: doubles without double readings'
        USING ERRCODE = 'data_corrupted';
    END IF;
  ELSE
    IF length(body) = 0 THEN
      RAISE EXCEPTION 'raw segment: doubles missing' USING ERRCODE = 'data_corrupted';
    END IF;
    codec := get_byte(body, 0);
    body := substring(body FROM 2);
    IF codec = 0 THEN  -- raw: 8 bytes little-endian each
      IF length(body) <> 8 * nd THEN
        RAISE EXCEPTION 'raw segment: bad raw values' USING ERRCODE = 'data_corrupted';
      END IF;
      dbits := ARRAY(
        SELECT get_byte(body, o)::bigint | (get_byte(body, o + 1)::bigint << 8)
               | (get_byte(body, o + 2)::bigint << 16) | (get_byte(body, o + 3)::bigint << 24)
               | (get_byte(body, o + 4)::bigint << 32) | (get_byte(body, o + 5)::bigint << 40)
               | (get_byte(body, o + 6)::bigint << 48) | (get_byte(body, o + 7)::bigint << 56)
        FROM generate_series(0, 8 * nd - 8, 8) o ORDER BY o);
    ELSIF codec = 1 THEN  -- gorilla: the first value's bits, then XORs with the previous
      bits := ('x' || encode(body, 'hex'))::varbit;
      total := length(bits);
      IF total < 64 THEN
        RAISE EXCEPTION 'raw segment: bad gorilla values' USING ERRCODE = 'data_corrupted';
      END IF;
      x := substring(bits FROM 1 FOR 64)::bigint;
      dbits := ARRAY[x];
      bp := 65;
      lead := -1;  -- the current window; none yet
      trail := 0;
      FOR i IN 2 .. nd LOOP
        IF bp > total THEN
          RAISE EXCEPTION 'raw segment: bad gorilla values' USING ERRCODE = 'data_corrupted';
        END IF;
        IF get_bit(bits, bp - 1) = 1 THEN  -- 1: a change
          IF bp + 1 > total THEN
            RAISE EXCEPTION 'raw segment: bad gorilla values' USING ERRCODE = 'data_corrupted';
          END IF;
          IF get_bit(bits, bp) = 0 THEN  -- 10: in the current window
            bp := bp + 2;
            w := 64 - lead - trail;
            IF lead < 0 OR bp - 1 + w > total THEN
              RAISE EXCEPTION 'raw segment: bad gorilla values' USING ERRCODE = 'data_corrupted';
            END IF;
          ELSE  -- 11: a new window, 5 bits of leading zeros, 6 of length (0: 64)
            bp := bp + 2;
            IF bp - 1 + 11 > total THEN
              RAISE EXCEPTION 'raw segment: bad gorilla values' USING ERRCODE = 'data_corrupted';
            END IF;
            lead := substring(bits FROM bp FOR 5)::integer;
            sig := substring(bits FROM bp + 5 FOR 6)::integer;
            bp := bp + 11;
            IF sig = 0 THEN
              sig := 64;
            END IF;
            w := sig;
            IF lead + sig > 64 OR bp - 1 + w > total THEN
              RAISE EXCEPTION 'raw segment: bad gorilla values' USING ERRCODE = 'data_corrupted';
            END IF;
            trail := 64 - lead - sig;
          END IF;
          x := x # (substring(bits FROM bp FOR w)::bigint << trail);
          bp := bp + w;
        ELSE  -- 0: the same value
          bp := bp + 1;
        END IF;
        dbits := dbits || x;
      END LOOP;
      IF (bp + 6) / 8 <> length(body) THEN
        RAISE EXCEPTION 'raw segment: bad gorilla values' USING ERRCODE = 'data_corrupted';
      END IF;
    ELSIF codec = 2 THEN  -- polynomial on the order-preserving keys of the bits
      dbits := raw_seg_polynomial(body, 0, nd);
      IF dbits IS NULL THEN
        RAISE EXCEPTION 'raw segment: bad polynomial values' USING ERRCODE = 'data_corrupted';
      END IF;
      -- FromOrderedKey: sign bit set (negative here): clear it; else all bits flipped.
      dbits := ARRAY(SELECT CASE WHEN u.key < 0 THEN u.key & 9223372036854775807 ELSE ~u.key END
                     FROM unnest(dbits) WITH ORDINALITY AS u(key, i) ORDER BY u.i);
    ELSIF codec = 3 THEN  -- decimal: u8 e, the integers polynomial-coded; value = i / 10^e
      e := CASE WHEN length(body) > 0 THEN get_byte(body, 0) END;
      ints := CASE WHEN e <= 12 THEN raw_seg_polynomial(body, 1, nd) END;
      IF ints IS NULL THEN
        RAISE EXCEPTION 'raw segment: bad decimal values' USING ERRCODE = 'data_corrupted';
      END IF;
      -- static_cast<double>(int64) / kPow10[e]: the same two IEEE roundings (the
      -- powers are exact), so the same bits.
      dvals := ARRAY(
        SELECT u.i::double precision
               / ('{1e0,1e1,1e2,1e3,1e4,1e5,1e6,1e7,1e8,1e9,1e10,1e11,1e12}'::double precision[])[e + 1]
        FROM unnest(ints) WITH ORDINALITY AS u(i, o) ORDER BY u.o);
    ELSIF codec = 4 THEN
      RAISE EXCEPTION 'raw segment: float codec 4 (split-zstd) cannot be decoded in SQL (no zstd '
                      'in PostgreSQL); decode the segment in C++ (DecodeRawSegment)'
        USING ERRCODE = 'feature_not_supported';
    ELSE
      RAISE EXCEPTION 'raw segment: unknown float codec %', codec USING ERRCODE = 'data_corrupted';
    END IF;
    IF dvals IS NULL THEN
      -- float8_from_bits (0006) written out: called, it costs ~10 us a value
      -- (a SQL function with a FROM is not inlined), more than the rest of
      -- the decoding.
      dvals := ARRAY(
        SELECT CASE
          WHEN u.e = 2047 AND u.m = 0 THEN CASE WHEN u.b < 0 THEN '-Infinity' ELSE 'Infinity' END::float8
          WHEN u.e = 2047 THEN 'NaN'::float8
          WHEN u.e = 0 THEN u.sign * u.m::float8 * power(2::float8, -1074)
          ELSE u.sign * (4503599627370496 + u.m)::float8 * power(2::float8, u.e - 1075)
        END
        FROM (SELECT v.b, v.i, ((v.b >> 52) & 2047)::integer AS e, v.b & 4503599627370495 AS m,
                     CASE WHEN v.b < 0 THEN -1::float8 ELSE 1::float8 END AS sign
              FROM unnest(dbits) WITH ORDINALITY AS v(b, i)) u
        ORDER BY u.i);
    END IF;
  END IF;

  -- STRING: u8 mode; 0 dictionary: varint k, k strings, the indexes packed;
  -- 1 plain: the strings. A string is a varint length and its UTF-8 bytes.
  body := sec[5];
  IF ns = 0 THEN
    IF length(body) <> 0 THEN
      RAISE EXCEPTION 'raw segment: strings without string readings'
        USING ERRCODE = 'data_corrupted';
    END IF;
  ELSE
    IF length(body) = 0 THEN
      RAISE EXCEPTION 'raw segment: strings truncated' USING ERRCODE = 'data_corrupted';
    END IF;
    mode := get_byte(body, 0);
    p := 1;
    IF mode = 0 THEN
      vp := raw_seg_varint(body, p);
      IF vp IS NULL OR vp[1] <= 0 OR vp[1] > ns THEN
        RAISE EXCEPTION 'raw segment: bad string dictionary' USING ERRCODE = 'data_corrupted';
      END IF;
      k := vp[1];
      p := vp[2];
      dict := '{}';
      FOR i IN 1 .. k LOOP
        vp := raw_seg_varint(body, p);
        IF vp IS NULL OR vp[1] < 0 OR vp[1] > length(body) - vp[2] THEN
          RAISE EXCEPTION 'raw segment: string dictionary truncated'
            USING ERRCODE = 'data_corrupted';
        END IF;
        dict := dict || convert_from(substring(body FROM vp[2]::integer + 1 FOR vp[1]::integer),
                                     'UTF8');
        p := vp[2] + vp[1];
      END LOOP;
      idx := raw_seg_uints(substring(body FROM p + 1), ns);
      IF idx IS NULL THEN
        RAISE EXCEPTION 'raw segment: string indexes truncated' USING ERRCODE = 'data_corrupted';
      END IF;
      IF EXISTS (SELECT 1 FROM unnest(idx) i WHERE i < 0 OR i >= k) THEN
        RAISE EXCEPTION 'raw segment: string index out of range' USING ERRCODE = 'data_corrupted';
      END IF;
      -- (Joined, not dict[d + 1]: a subscript of a text[] walks it from the start.)
      strs := ARRAY(SELECT e.s FROM unnest(idx) WITH ORDINALITY AS u(d, i)
                      JOIN unnest(dict) WITH ORDINALITY AS e(s, o) ON e.o = u.d + 1
                    ORDER BY u.i);
    ELSIF mode = 1 THEN
      strs := '{}';
      FOR i IN 1 .. ns LOOP
        len := CASE WHEN p < length(body) THEN get_byte(body, p) END;
        IF len < 128 THEN  -- a one-byte varint, most strings
          p := p + 1;
        ELSE
          vp := raw_seg_varint(body, p);
          len := vp[1];
          p := vp[2];
        END IF;
        IF len IS NULL OR len < 0 OR len > length(body) - p THEN
          RAISE EXCEPTION 'raw segment: strings truncated' USING ERRCODE = 'data_corrupted';
        END IF;
        strs := strs || convert_from(substring(body FROM p + 1 FOR len::integer), 'UTF8');
        p := p + len;
      END LOOP;
      IF p <> length(body) THEN
        RAISE EXCEPTION 'raw segment: trailing bytes after the strings'
          USING ERRCODE = 'data_corrupted';
      END IF;
    ELSE
      RAISE EXCEPTION 'raw segment: unknown string mode %', mode USING ERRCODE = 'data_corrupted';
    END IF;
  END IF;

  -- BOOL: one bit each, MSB first.
  body := sec[6];
  IF length(body) <> (nb + 7) / 8 THEN
    RAISE EXCEPTION 'raw segment: booleans truncated' USING ERRCODE = 'data_corrupted';
  END IF;

  -- Reading i is the o-th of its kind. (The strings joined: a subscript of a
  -- text[] walks it from the start.)
  RETURN QUERY
    SELECT t[r.i],
           CASE WHEN r.kind = 0 THEN dvals[r.o] END,
           s.s,
           CASE WHEN r.kind = 2 THEN (get_byte(body, (r.o - 1) / 8) >> (7 - (r.o - 1) % 8)) & 1 = 1 END,
           NULLIF((((status[r.i] >> 1) & 9223372036854775807) # -(status[r.i] & 1))::integer, 0)
    FROM (SELECT i, kinds[i] AS kind,
                 row_number() OVER (PARTITION BY kinds[i] ORDER BY i)::integer AS o
          FROM generate_series(1, n) i) r
      LEFT JOIN unnest(strs) WITH ORDINALITY AS s(s, o) ON r.kind = 1 AND s.o = r.o
    ORDER BY r.i;
END
$$;

-- Every raw reading: the rows of raw_readings and the unpacked segments of
-- raw_readings_seg. No deduplication: by construction a (series_id, ts) is in
-- exactly one place, a row or a segment (0008).
-- Filter on series_id: a condition on ts does not skip segments, every
-- segment of the selected series is unpacked. (For a time range, select the
-- segments by hour from raw_readings_seg and unpack them with a LATERAL
-- join as below.)
CREATE VIEW raw_readings_merged AS
SELECT series_id, ts, value_double, value_text, value_bool, status_code FROM raw_readings
UNION ALL
SELECT g.series_id, u.ts, u.value_double, u.value_text, u.value_bool, u.status_code
FROM raw_readings_seg g CROSS JOIN LATERAL raw_seg_unpack(g.hour, g.data) u;
