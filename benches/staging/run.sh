#!/usr/bin/env bash
# How a batch of calls reaches `INSERT … ON CONFLICT` (issue 14: "binary COPY
# into a temporary staging table, then one INSERT … SELECT … ON CONFLICT …, or
# UNNEST arrays. Measure both"), on a database the suite left
# (`--keep-database`):
#
#   cargo bench --bench suite -- --only storage --backends postgres \
#       --preload 200000 --calls 2000 --keep-database
#   benches/staging/run.sh postgres://postgres@127.0.0.1:5432/callscope_bench_… [BATCHES] [ROUNDS]
#
# The rows are BATCHES x 500 stored calls (40 by default) under new ids, so
# every batch inserts new calls into the real `calls` (keys, indexes and
# triggers), one transaction a batch, as UpsertCalls does. Four ways, each
# the store's upsert statement (`calls_write.rs`, `upsert_rows`: every column
# updated from `excluded`, the newer-version guard; not its `RETURNING`,
# which PL/pgSQL cannot discard), planned for each batch as the store's
# write transactions do (`force_custom_plan`) unless said otherwise:
#
# - unnest: one array a column, `INSERT … SELECT * FROM UNNEST($1, …, $58)`,
#   which the store does (the arrays are built before the timing);
# - unnest_generic: the same under `force_generic_plan`, so the plan is made
#   once with the arrays as parameters, not for each batch with its arrays
#   as constants;
# - staging: binary `COPY` of the batch into a temporary table kept for the
#   session (`ON COMMIT DELETE ROWS`), then `INSERT … SELECT` from it;
# - staging_per_tx: the same with the temporary table created in each
#   transaction (`ON COMMIT DROP`), as it must be behind PgBouncer in
#   transaction mode, where a session's temporary table is not the next
#   transaction's.
#
# The COPY files are the server's own (`COPY … FROM 'file'`), so no client
# sends anything in the timed part, for any of the three. The CPU of the
# backend is read from /proc around each run, and each run's rows are
# checked and deleted after it (then VACUUM ANALYZE, CHECKPOINT), so every
# run starts from the same database. ROUNDS rounds (3 by default), the four
# in a new order each round. Drops what it made, not the database.
set -euo pipefail
DB=${1:?usage: run.sh DATABASE_URL [BATCHES] [ROUNDS]}
BATCHES=${2:-40}
ROUNDS=${3:-3}
DIR=$(mktemp -d /tmp/callscope-staging.XXXXXX)
chmod 777 "$DIR"
trap 'rm -rf "$DIR"' EXIT
q() { psql "$DB" -X -q -v ON_ERROR_STOP=1 "$@"; }

q -v batches="$BATCHES" -v rounds="$ROUNDS" -v dir="$DIR" <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS stg_src, stg_arrays;
CREATE TABLE stg_src AS
  SELECT (row_number() OVER () - 1) / 500 AS b, c.*
  FROM (SELECT * FROM calls ORDER BY ctid LIMIT :batches * 500) c;

-- Each run's rows: the stored calls under ids of their own ('-r<round><way>').
CREATE FUNCTION pg_temp.cols(prefix TEXT, id_suffix TEXT) RETURNS TEXT LANGUAGE sql AS $$
  SELECT string_agg(CASE WHEN id_suffix IS NOT NULL AND attname IN ('call_id', 'external_id')
                         THEN format('%s%I || %L', prefix, attname, id_suffix)
                         ELSE prefix || quote_ident(attname) END, ', ' ORDER BY attnum)
  FROM pg_attribute WHERE attrelid = 'calls'::regclass AND attnum > 0 AND NOT attisdropped
$$;

-- unnest: the arrays of each batch, built now.
SELECT format('CREATE TABLE stg_arrays AS SELECT r, w, b, %s FROM stg_src, generate_series(1, %s) r, unnest(ARRAY[''u'', ''g'']) w GROUP BY r, w, b',
  (SELECT string_agg(CASE WHEN attname IN ('call_id', 'external_id')
                          THEN format('array_agg(%I || ''-r'' || r || w ORDER BY call_id) AS %I', attname, 'a_' || attname)
                          ELSE format('array_agg(%I ORDER BY call_id) AS %I', attname, 'a_' || attname) END, ', ' ORDER BY attnum)
   FROM pg_attribute WHERE attrelid = 'calls'::regclass AND attnum > 0 AND NOT attisdropped),
  :rounds)
\gexec

-- staging: one server-side binary file per round, way and batch.
SELECT format('COPY (SELECT %s FROM stg_src WHERE b = %s ORDER BY call_id) TO %L (FORMAT binary)',
              pg_temp.cols('', '-r' || r || w), b, :'dir' || '/' || r || w || '_' || b || '.bin')
FROM generate_series(1, :rounds) r, generate_series(0, :batches - 1) b, unnest(ARRAY['s', 't']) w
\gexec

-- The store's upsert, after its INSERT's source.
CREATE FUNCTION pg_temp.conflict() RETURNS TEXT LANGUAGE sql AS $$
  SELECT ' ON CONFLICT (tenant_id, source, external_id) DO UPDATE SET '
    || string_agg(CASE attname
         WHEN 'update_time' THEN 'update_time = COALESCE(excluded.update_time, calls.update_time)'
         WHEN 'alt_id' THEN 'alt_id = CASE WHEN excluded.alt_id <> '''' THEN excluded.alt_id ELSE calls.alt_id END'
         ELSE format('%1$I = excluded.%1$I', attname) END, ', ' ORDER BY attnum)
    || ' WHERE calls.update_time IS NULL OR excluded.update_time IS NULL'
    || ' OR excluded.update_time >= calls.update_time'
  FROM pg_attribute WHERE attrelid = 'calls'::regclass AND attnum > 0 AND NOT attisdropped
    AND attname NOT IN ('tenant_id', 'call_id', 'source', 'external_id')
$$;

SELECT format($p$
CREATE PROCEDURE stg_unnest(round INT, generic BOOL) LANGUAGE plpgsql AS $body$
DECLARE a stg_arrays;
BEGIN
  FOR a IN SELECT * FROM stg_arrays WHERE r = round AND w = CASE WHEN generic THEN 'g' ELSE 'u' END ORDER BY b LOOP
    PERFORM set_config('plan_cache_mode',
                       CASE WHEN generic THEN 'force_generic_plan' ELSE 'force_custom_plan' END, true);
    %s;
    COMMIT;
  END LOOP;
END $body$
$p$,
  'INSERT INTO calls (' || pg_temp.cols('', NULL) || ') SELECT * FROM UNNEST('
    || (SELECT string_agg('a.a_' || attname, ', ' ORDER BY attnum) FROM pg_attribute
        WHERE attrelid = 'calls'::regclass AND attnum > 0 AND NOT attisdropped) || ')'
    || pg_temp.conflict())
\gexec

SELECT format($p$
CREATE PROCEDURE stg_copy(round INT, per_tx BOOL) LANGUAGE plpgsql AS $body$
BEGIN
  IF NOT per_tx THEN
    CREATE TEMP TABLE stg_staging (LIKE calls INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
  END IF;
  FOR n IN 0 .. %s - 1 LOOP
    SET LOCAL plan_cache_mode = force_custom_plan;
    IF per_tx THEN
      CREATE TEMP TABLE stg_staging (LIKE calls INCLUDING DEFAULTS) ON COMMIT DROP;
    END IF;
    EXECUTE format('COPY stg_staging FROM %%L (FORMAT binary)',
                   %L || '/' || round || CASE WHEN per_tx THEN 't' ELSE 's' END || '_' || n || '.bin');
    EXECUTE %L;
    COMMIT;
  END LOOP;
END $body$
$p$, :batches, :'dir',
  'INSERT INTO calls (' || pg_temp.cols('', NULL) || ') SELECT * FROM stg_staging' || pg_temp.conflict())
\gexec
SQL

# One run of a way: the backend's CPU seconds and the wall seconds.
run() {
  local call=$1 ticks0 ticks1 start end
  start=$(date +%s.%N)
  q <<SQL
SELECT pg_backend_pid() AS pid \gset
\setenv BACKEND :pid
\! awk '{print \$14 + \$15}' /proc/\$BACKEND/stat > $DIR/ticks0
CALL $call;
\! awk '{print \$14 + \$15}' /proc/\$BACKEND/stat > $DIR/ticks1
SQL
  end=$(date +%s.%N)
  awk -v hz="$(getconf CLK_TCK)" -v a="$(cat "$DIR/ticks0")" -v b="$(cat "$DIR/ticks1")" \
      -v s="$start" -v e="$end" 'BEGIN {printf "%.2f %.2f", (b - a) / hz, e - s}'
}

q -c CHECKPOINT
RESULTS=$DIR/results
for round in $(seq 1 "$ROUNDS"); do
  ways="unnest unnest_generic staging staging_per_tx"
  order=$(printf '%s\n' $ways | awk -v r="$round" '{a[NR] = $0} END {for (i = 0; i < NR; i++) print a[(i + r - 1) % NR + 1]}')
  for way in $order; do
    case $way in
      unnest) figures=$(run "stg_unnest($round, false)") ;;
      unnest_generic) figures=$(run "stg_unnest($round, true)") ;;
      staging) figures=$(run "stg_copy($round, false)") ;;
      staging_per_tx) figures=$(run "stg_copy($round, true)") ;;
    esac
    echo "$way round $round: $figures (CPU s, wall s)" >&2
    echo "$way $round $figures" >> "$RESULTS"
    # Its rows checked, then gone, so that every run starts from the same
    # database: the calls written drove each later run's costs up by a
    # tenth or more.
    w=$(case $way in unnest) echo u ;; unnest_generic) echo g ;; staging) echo s ;; staging_per_tx) echo t ;; esac)
    written=$(q -At -c "SELECT count(*) FROM calls WHERE call_id IN (SELECT call_id || '-r$round$w' FROM stg_src)")
    if [ "$written" != $((BATCHES * 500)) ]; then echo "error: $way wrote $written calls" >&2; exit 1; fi
    q -c "DELETE FROM calls WHERE call_id IN (SELECT call_id || '-r$round$w' FROM stg_src)" -c "VACUUM ANALYZE" -c CHECKPOINT
  done
done

calls=$((BATCHES * 500))
echo "## $calls new calls into \`calls\` in batches of 500, one transaction each; medians of $ROUNDS rounds"
echo
echo "| way | backend CPU ms a call | wall ms a call |"
echo "|---|---|---|"
awk -v n="$calls" '
  { c[$1] = c[$1] " " $3; w[$1] = w[$1] " " $4; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
  function median(s,    a, m, i, j, x) {
    m = split(s, a, " ")
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  END { for (i = 1; i <= k; i++) printf "| %s | %.3f | %.3f |\n", order[i], 1000 * median(c[order[i]]) / n, 1000 * median(w[order[i]]) / n }
' "$RESULTS"

q -c "DROP PROCEDURE stg_unnest, stg_copy" -c "DROP TABLE stg_src, stg_arrays"
