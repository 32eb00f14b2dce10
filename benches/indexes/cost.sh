#!/usr/bin/env bash
# What each secondary index costs ingest (issue 14's index audit), on a
# database the suite left (`--keep-database`):
#
#   cargo bench --bench suite -- --only storage --backends postgres \
#       --preload 200000 --calls 2000 --keep-database
#   benches/indexes/cost.sh postgres://postgres@127.0.0.1:5432/callscope_bench_… [CALLS] [ROUNDS] [all]
#
# For each table a call writes rows into (calls, dialogue_turns, call_tags,
# call_tag_groups; not call_events, which a preload leaves empty) it takes
# the rows of CALLS calls (50,000 by default) and binary-COPYs them, timed,
# into empty copies of the table
# (`LIKE … INCLUDING DEFAULTS`, no triggers) that have the table's primary
# and unique keys and either no secondary index ("keys"), one of them, or
# all of them ("all"). An index's cost is its copy's time less the keys-only
# copy's of the same round. ROUNDS rounds (3 by default), the variants in a
# new order each round, so drift hits them alike; with a fourth argument
# `all`, only "keys" and "all" (to compare two schemas). Prints one line per
# variant and round, then the medians. Drops its tables; the database stays
# for the caller to drop.
set -euo pipefail
DB=${1:?usage: cost.sh DATABASE_URL [CALLS] [ROUNDS]}
CALLS=${2:-50000}
ROUNDS=${3:-3}
ONLY=${4:-}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
q() { psql "$DB" -X -q -v ON_ERROR_STOP=1 "$@"; }

q -c "DROP TABLE IF EXISTS ix_sample; CREATE TABLE ix_sample AS SELECT call_id FROM calls ORDER BY ctid LIMIT $CALLS"
TABLES="calls dialogue_turns call_tags call_tag_groups"
for t in $TABLES; do
  q -c "\\copy (SELECT t.* FROM $t t JOIN ix_sample s USING (call_id) WHERE t.tenant_id = (SELECT tenant_id FROM calls LIMIT 1) ORDER BY t.ctid) TO '$WORK/$t.bin' WITH (FORMAT binary)"
  rows=$(q -At -c "SELECT count(*) FROM $t t JOIN ix_sample s USING (call_id) WHERE t.tenant_id = (SELECT tenant_id FROM calls LIMIT 1)")
  echo "$t: $rows rows of $CALLS calls" >&2
done

# The copy of table $1 with the keys and the secondary indexes named in $2
# ("all" for every one), as table ix_copy.
make_copy() {
  local table=$1 which=$2
  q <<SQL
DROP TABLE IF EXISTS ix_copy;
CREATE TABLE ix_copy (LIKE $table INCLUDING DEFAULTS);
SELECT format('ALTER TABLE ix_copy ADD %s', pg_get_constraintdef(oid))
  FROM pg_constraint
 WHERE conrelid = '$table'::regclass AND contype IN ('p', 'u')
\\gexec
SELECT replace(replace(indexdef, ' ON public.$table ', ' ON public.ix_copy '),
               'INDEX ' || indexname || ' ', 'INDEX ix_' || indexname || ' ')
  FROM pg_indexes i
 WHERE schemaname = 'public' AND tablename = '$table'
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
   AND ('$which' = 'all' OR indexname = '$which')
\\gexec
CHECKPOINT;
SQL
}

RESULTS=$WORK/results
: > "$RESULTS"
for t in $TABLES; do
  variants="keys all"
  if [ "$ONLY" != all ]; then
    variants="$variants $(q -At -c "SELECT indexname FROM pg_indexes i WHERE schemaname = 'public' AND tablename = '$t' AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname) ORDER BY indexname")"
  fi
  for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round.
    order=$(printf '%s\n' $variants | awk -v r="$round" '{a[NR] = $0} END {for (i = 0; i < NR; i++) print a[(i + r - 1) % NR + 1]}')
    for v in $order; do
      make_copy "$t" "$v" >/dev/null
      # The backend's CPU time (utime + stime, in clock ticks) around the
      # COPY: steadier on a shared machine than the wall time beside it.
      start=$(date +%s.%N)
      q <<SQL
SELECT pg_backend_pid() AS pid \\gset
\\setenv BACKEND :pid
\\! awk '{print \$14 + \$15}' /proc/\$BACKEND/stat > $WORK/ticks0
\\copy ix_copy FROM '$WORK/$t.bin' WITH (FORMAT binary)
\\! awk '{print \$14 + \$15}' /proc/\$BACKEND/stat > $WORK/ticks1
SQL
      end=$(date +%s.%N)
      secs=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f", e - s}')
      cpu=$(awk -v hz="$(getconf CLK_TCK)" -v a="$(cat "$WORK/ticks0")" -v b="$(cat "$WORK/ticks1")" 'BEGIN {printf "%.2f", (b - a) / hz}')
      echo "$t $v round $round: $cpu s CPU, $secs s" >&2
      echo "$t $v $round $cpu $secs" >> "$RESULTS"
    done
  done
done
q -c "DROP TABLE IF EXISTS ix_copy, ix_sample"

echo "## Binary COPY of the rows of $CALLS calls into an empty copy with its keys, medians of $ROUNDS rounds"
echo "## CPU: the backend's; cost: the copy's CPU less the keys-only copy's of the same round"
echo
echo "| table | indexes beside the keys | CPU s | cost CPU s | cost % of all indexes' | wall s |"
echo "|---|---|---|---|---|---|"
awk '
  { key = $1 " " $2; t[key, $3] = $4; w[key, $3] = $5; table[key] = $1; name[key] = $2; rounds[$3] = 1
    if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
  function median(arr, m,    i, j, x) {
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (arr[j] < arr[i]) { x = arr[i]; arr[i] = arr[j]; arr[j] = x }
    return m % 2 ? arr[(m + 1) / 2] : (arr[m / 2] + arr[m / 2 + 1]) / 2 }
  END {
    for (i = 1; i <= k; i++) {
      key = order[i]; m = 0
      for (r in rounds) if ((key, r) in t) { m++; v[m] = t[key, r]; x[m] = w[key, r]; d[m] = t[key, r] - t[table[key] " keys", r] }
      med[key] = median(v, m); wall[key] = median(x, m); cost[key] = median(d, m)
    }
    for (i = 1; i <= k; i++) {
      key = order[i]; all = cost[table[key] " all"]
      share = (name[key] == "keys" || all <= 0) ? "" : sprintf("%.0f %%", 100 * cost[key] / all)
      printf "| %s | %s | %.2f | %s | %s | %.2f |\n", table[key], name[key], med[key], name[key] == "keys" ? "" : sprintf("%.2f", cost[key]), share, wall[key]
    }
  }' "$RESULTS"
