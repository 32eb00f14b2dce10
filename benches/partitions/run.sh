#!/usr/bin/env bash
# Monthly partitions of `calls` against the table as callscope has it, on a
# database the suite left (`--keep-database`): ingest by binary COPY into
# both, and the listing, phone and GetCall statements through pgbench.
#
#   cargo bench --bench suite -- --only storage --backends postgres \
#       --preload 1000000 --calls 2000 --keep-database
#   benches/partitions/run.sh postgres://postgres@127.0.0.1:5432/callscope_bench_…
#
# It builds two copies of the kept `calls` (same columns, same indexes, no
# triggers): `calls_flat`, and `calls_part`, partitioned by month of
# `call_time` (the suite's calls span 2026-08-01 and the 90 days after;
# four months and a default partition). A partitioned table's unique keys
# must hold the partition key, so its keys are `(tenant_id, call_id,
# call_time)` and `(tenant_id, source, external_id, call_time)`. The last
# 100,000 calls by id are left out of both and COPYed in, timed, three
# rounds, alternating. Then each statement runs 2 x 15 s per table,
# alternating, 8 clients, prepared (cached plans, as callscope's). Drops
# its tables at the end; the database stays for the caller to drop.
set -euo pipefail
DB=${1:?usage: run.sh DATABASE_URL}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

psql "$DB" -q -v ON_ERROR_STOP=1 -f "$HERE/setup.sql" >/dev/null
psql "$DB" -q -v ON_ERROR_STOP=1 -v copies=flat,part -f "$HERE/indexes.sql" >/dev/null
psql "$DB" -q -c "\\copy calls_tail TO '$WORK/tail.bin' WITH (FORMAT binary)"

echo "## COPY of 100,000 calls (binary) into 902,000, every index, no triggers"
for round in 1 2 3; do
  for t in calls_flat calls_part; do
    start=$(date +%s.%N)
    psql "$DB" -q -c "\\copy $t FROM '$WORK/tail.bin' WITH (FORMAT binary)"
    end=$(date +%s.%N)
    awk -v t="$t" -v r="$round" -v s="$start" -v e="$end" \
      'BEGIN {printf "%s round %s: %.2f s, %.0f rows/s\n", t, r, e - s, 100000 / (e - s)}'
  done
  for t in calls_flat calls_part; do
    psql "$DB" -q -c "DELETE FROM $t WHERE call_id IN (SELECT call_id FROM calls_tail)" -c "VACUUM $t"
  done
done

# The values the statements pick from: 2,000 random ids and numbers.
psql "$DB" -q -v ON_ERROR_STOP=1 <<'SQL'
DROP TABLE IF EXISTS bench_ids, bench_phones;
CREATE TABLE bench_ids AS SELECT row_number() OVER () AS i, call_id FROM (SELECT call_id FROM calls_flat ORDER BY random() LIMIT 2000) s;
CREATE TABLE bench_phones AS SELECT row_number() OVER () AS i, callee AS phone FROM (SELECT callee FROM calls_flat ORDER BY random() LIMIT 2000) s;
ALTER TABLE bench_ids ADD PRIMARY KEY (i);
ALTER TABLE bench_phones ADD PRIMARY KEY (i);
ANALYZE bench_ids; ANALYZE bench_phones;
SQL

# The store's SELECT_CALLS (src/store/filter_sql.rs), on table TBL.
SEL="SELECT c.call_id, c.sync_time, c.source, c.external_id, c.task_id, c.parent_task_id, c.script_id, c.callee, c.callee_raw, c.caller, c.caller_raw, c.submit_time, c.call_time, c.ring_time, c.answer_time, c.hangup_time, c.ring_ms, c.talk_ms, c.total_ms, c.billed_ms, c.outcome, c.vendor_status, c.hangup_cause, c.sip_code, c.hangup_by, c.score, c.intent_level_id, c.intent_level_snapshot, il.name AS il_name, il.alias AS il_alias, il.color AS il_color, c.rounds, c.recording_url, c.gender, c.province, c.city, c.area_code, c.carrier, c.region, c.post_code, c.rate, c.base_cost, c.cost, c.currency, c.settle_rate, c.settle_cost, c.quote_exchange, c.bill_period, c.base_cost_currency, c.settle_currency, c.dtmf, c.recall_count, c.recall_of, c.customer_name, c.line_id, c.attributes, c.update_time, c.quality_flags FROM TBL c LEFT JOIN intent_levels il ON il.tenant_id = c.tenant_id AND il.intent_level_id = c.intent_level_id"
for t in flat part; do
  sel=${SEL//TBL/calls_$t}
  cat > "$WORK/task_$t.sql" <<SQL
\\set task random(0, 39)
\\set day random(0, 79)
$sel WHERE c.tenant_id = 'default' AND c.task_id IN ('task-' || lpad(:task::text, 2, '0')) AND c.call_time >= 1785542400000 + :day * 86400000::bigint AND c.call_time < 1785542400000 + (:day + 7) * 86400000::bigint ORDER BY c.call_time DESC, c.call_id DESC LIMIT 16;
SQL
  cat > "$WORK/phone_$t.sql" <<SQL
\\set i random(1, 2000)
$sel WHERE c.tenant_id = 'default' AND c.call_id IN (SELECT p.call_id FROM calls_$t p WHERE p.tenant_id = 'default' AND p.callee = (SELECT phone FROM bench_phones WHERE i = :i) UNION ALL SELECT p.call_id FROM calls_$t p WHERE p.tenant_id = 'default' AND p.caller = (SELECT phone FROM bench_phones WHERE i = :i)) ORDER BY c.call_time DESC, c.call_id DESC LIMIT 16;
SQL
  cat > "$WORK/get_$t.sql" <<SQL
\\set i random(1, 2000)
$sel WHERE c.tenant_id = 'default' AND c.call_id = (SELECT call_id FROM bench_ids WHERE i = :i);
SQL
done

echo "## statements a second (pgbench, 8 clients, prepared, 15 s each)"
for round in 1 2; do
  for s in task phone get; do
    for t in flat part; do
      pgbench -n -M prepared -c 8 -j 2 -T 15 -f "$WORK/${s}_$t.sql" "$DB" 2>&1 |
        awk -v n="$s calls_$t round $round" '/^latency average/ {l=$4} /^tps/ {t=$3} END {printf "%s: %.0f/s, %s ms average\n", n, t, l}'
    done
  done
done

psql "$DB" -q -c "DROP TABLE calls_flat, calls_part, calls_tail, bench_ids, bench_phones"
