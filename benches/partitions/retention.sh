#!/usr/bin/env bash
# What retention costs: the month partitions would drop against the rows
# callscope's purge deletes, on a database the suite left
# (`--keep-database`; its calls span 2026-08-01 and the 90 days after).
#
#   cargo bench --bench suite -- --only storage --backends postgres \
#       --preload 200000 --calls 2000 --keep-database
#   benches/partitions/retention.sh postgres://postgres@127.0.0.1:5432/callscope_bench_… [DAYS]
#
# Three copies of the database (CREATE DATABASE … TEMPLATE):
#   1. the same deletes as plain SQL, of the calls older than DAYS days,
#      one statement a table (calls, then call_tags, call_tag_groups,
#      dialogue_turns, as the purge orders them) in one transaction, the
#      rollup and number-state triggers firing, no events;
#   2. the release binary's retention purge (`serve --retention-days DAYS`)
#      of the same calls: 500 a transaction, each read for its Deleted
#      event, the same four tables and triggers;
#   3. `calls` alone copied into a table partitioned by month (the same
#      secondary indexes; the keys with `call_time` added), and August's
#      partition detached and dropped, whatever DAYS is.
# DAYS defaults to the whole days since 2026-09-01, so that 1 and 2 remove
# August and a few hours of September 1. Each copy is dropped, and the
# cluster checkpointed, before the next step starts, so no step runs while
# the checkpointer writes out the one before. The suite's calls have one
# tenant, `default`, which the plain SQL names; the purge walks the
# `tenants` table. The purge is given RETENTION_TIMEOUT_S (default 3600) to
# finish. The kept database is not changed.
set -euo pipefail
DB=${1:?usage: retention.sh DATABASE_URL [DAYS]}
DAYS=${2:-$((($(date -u +%s) - $(date -u -d 2026-09-01 +%s)) / 86400))}
TIMEOUT=${RETENTION_TIMEOUT_S:-3600}
BIN=${CALLSCOPE_BIN:-target/release/callscope}
SERVER=${DB%/*}
SOURCE=${DB##*/}
WORK=$(mktemp -d)
COPIES=(ret_service ret_sql ret_part)
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
  for copy in "${COPIES[@]}"; do
    PGOPTIONS="-c client_min_messages=warning" psql "$SERVER/postgres" -q \
      -c "DROP DATABASE IF EXISTS ${SOURCE}_$copy WITH (FORCE)" || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

for copy in "${COPIES[@]}"; do
  psql "$SERVER/postgres" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE ${SOURCE}_$copy TEMPLATE $SOURCE"
done
psql "$SERVER/postgres" -q -c CHECKPOINT
seconds() { awk -v s="$1" -v e="$2" 'BEGIN {printf "%.2f", e - s}'; }
calls() { psql "$SERVER/${SOURCE}_$1" -Atc "SELECT count(*) FROM calls"; }
done_with() {
  psql "$SERVER/postgres" -q -c "DROP DATABASE ${SOURCE}_$1 WITH (FORCE)" -c CHECKPOINT
}
BEFORE=$(calls ret_sql)
echo "## Retention of the calls older than $DAYS days, out of $BEFORE"

# 1. Plain SQL (first, so its cutoff is a few seconds before the purge's).
start=$(date +%s.%N)
psql "$SERVER/${SOURCE}_ret_sql" -q -v ON_ERROR_STOP=1 <<SQL
BEGIN;
CREATE TEMP TABLE gone ON COMMIT DROP AS
  SELECT call_id FROM calls
   WHERE tenant_id = 'default'
     AND call_time < (extract(epoch FROM now()) * 1000)::bigint - $DAYS::bigint * 86400000;
DELETE FROM calls WHERE tenant_id = 'default' AND call_id IN (SELECT call_id FROM gone);
DELETE FROM call_tags WHERE tenant_id = 'default' AND call_id IN (SELECT call_id FROM gone);
DELETE FROM call_tag_groups WHERE tenant_id = 'default' AND call_id IN (SELECT call_id FROM gone);
DELETE FROM dialogue_turns WHERE tenant_id = 'default' AND call_id IN (SELECT call_id FROM gone);
COMMIT;
SQL
end=$(date +%s.%N)
GONE=$((BEFORE - $(calls ret_sql)))
awk -v n="$GONE" -v s="$(seconds "$start" "$end")" \
  'BEGIN {printf "plain SQL, one transaction: %d calls in %.2f s, %.0f calls/s\n", n, s, n / s}'
done_with ret_sql

# 2. The release binary's purge, at its start.
RUST_LOG=info "$BIN" serve --log-format text --database-url "$SERVER/${SOURCE}_ret_service" \
  --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --retention-days "$DAYS" \
  >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq $((TIMEOUT * 2))); do
  grep -q "retention purge \(done\|failed\)" "$WORK/serve.log" && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.5
done
kill "$PID" 2>/dev/null || true
wait "$PID" 2>/dev/null || true
PID=
line=$(grep "retention purge done" "$WORK/serve.log") || {
  echo "the purge did not finish (within ${TIMEOUT} s); the server's log:" >&2
  cat "$WORK/serve.log" >&2
  exit 1
}
purged=$(sed -E 's/.*[^_]calls=([0-9]+).*/\1/' <<<"$line")
ms=$(sed -E 's/.*elapsed_ms=([0-9]+).*/\1/' <<<"$line")
awk -v n="$purged" -v ms="$ms" \
  'BEGIN {printf "callscope purge (500 a transaction, Deleted events): %d calls in %.2f s, %.0f calls/s\n", n, ms / 1000, n / (ms / 1000)}'
done_with ret_service

# 3. August as a partition of a copy of `calls`.
psql "$SERVER/${SOURCE}_ret_part" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET maintenance_work_mem = '1GB';
CREATE TABLE calls_part (LIKE calls INCLUDING DEFAULTS) PARTITION BY RANGE (call_time);
CREATE TABLE calls_part_2026_08 PARTITION OF calls_part FOR VALUES FROM (1785542400000) TO (1788220800000);
CREATE TABLE calls_part_2026_09 PARTITION OF calls_part FOR VALUES FROM (1788220800000) TO (1790812800000);
CREATE TABLE calls_part_2026_10 PARTITION OF calls_part FOR VALUES FROM (1790812800000) TO (1793491200000);
CREATE TABLE calls_part_default PARTITION OF calls_part DEFAULT;
INSERT INTO calls_part SELECT * FROM calls;
ALTER TABLE calls_part ADD PRIMARY KEY (tenant_id, call_id, call_time),
  ADD UNIQUE (tenant_id, source, external_id, call_time);
SQL
psql "$SERVER/${SOURCE}_ret_part" -q -v ON_ERROR_STOP=1 -v copies=part \
  -f "$(dirname "$0")/indexes.sql" -c CHECKPOINT >/dev/null
AUGUST=$(psql "$SERVER/${SOURCE}_ret_part" -Atc "SELECT count(*) FROM calls_part_2026_08")
start=$(date +%s.%N)
psql "$SERVER/${SOURCE}_ret_part" -q -v ON_ERROR_STOP=1 \
  -c "ALTER TABLE calls_part DETACH PARTITION calls_part_2026_08" \
  -c "DROP TABLE calls_part_2026_08"
end=$(date +%s.%N)
echo "calls_part: August's partition ($AUGUST calls) detached and dropped in $(seconds "$start" "$end") s"
