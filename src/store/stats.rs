//! Campaign statistics in SQL: every figure is an aggregate computed by the
//! database over the calls `push_where` selects, so each one means the same
//! thing for every `CallFilter`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type};

use super::filter_sql::{push_rollup_rows, push_where, time_column};
use super::{Dialect, SqlStore, StatsStore, StoreError};
use crate::domain::stats::{
    self, BucketSums, CallStats, CountEntry, Decimal, MoneyTotal, NO_INTENT_LEVEL_KEY,
    ROLLUP_DAY_MS, ROLLUP_HOUR_MS, ROLLUP_TALK_BIN_MS, RollupSpans,
};
use crate::domain::{CallFilter, CallOutcome, Party, UnixMs};

/// Every dimension of the rollups (migrations 0016 and 0019) but `tag`,
/// named one by one: the rollup keys lead with the dimension (0024), so a
/// list is a few ranges of the key where `dim <> 'tag'` walked every
/// dimension's rows. Also the benchmark suite's, whose direct SQL must be
/// the store's.
pub const ROLLUP_DIMENSIONS_BUT_TAGS: &str =
    "dim IN ('all', 'outcome', 'party', 'carrier', 'province', 'level', 'talk', 'cost')";

/// Fraction digits the database sums per chunk: 9 digits of 10^9 calls fit
/// an `i64` with room to spare.
const FRACTION_CHUNK: u32 = 9;
/// Fraction digits the chunked sum covers; longer costs take the slow path.
const FRACTION_DIGITS: i64 = 18;

/// The figures of CallStats as the database's summed rows arrive, from the
/// scan of the calls or from the rollups alike: the totals, and one row per
/// breakdown key.
#[derive(Default)]
struct Figures {
    total: i64,
    answered: i64,
    talk_total: i64,
    ring_sum: i64,
    rounds_sum: i64,
    score_sum: i64,
    score_count: i64,
    by_outcome: Vec<CountEntry>,
    by_party: Vec<CountEntry>,
    by_intent_level: Vec<CountEntry>,
    // `unknown` may also be a carrier's or province's own text: both add up.
    carriers: BTreeMap<String, i64>,
    provinces: BTreeMap<String, i64>,
}

impl Figures {
    /// Counts `n` calls under `key` of breakdown `dim`; `name` gives an
    /// intent level's catalog name. False for a dimension that is no
    /// breakdown.
    fn add(
        &mut self,
        dim: &str,
        key: String,
        name: impl FnOnce() -> Result<String, StoreError>,
        n: i64,
    ) -> Result<bool, StoreError> {
        let code = || {
            key.parse::<i32>()
                .map_err(|_| StoreError::Corrupt(format!("{dim} = {key}")))
        };
        match dim {
            "outcome" => {
                let outcome = CallOutcome::from_code(code()?)
                    .ok_or_else(|| StoreError::Corrupt(format!("outcome = {key}")))?;
                self.by_outcome.push(stats::outcome_entry(outcome, n));
            }
            "party" => {
                let party = Party::from_code(code()?)
                    .ok_or_else(|| StoreError::Corrupt(format!("hangup_by = {key}")))?;
                self.by_party.push(stats::party_entry(party, n));
            }
            "carrier" => *self.carriers.entry(stats::text_key(&key)).or_default() += n,
            "province" => *self.provinces.entry(stats::text_key(&key)).or_default() += n,
            "level" => {
                let name = if key == NO_INTENT_LEVEL_KEY {
                    "none".to_owned()
                } else {
                    name()?
                };
                self.by_intent_level.push(CountEntry {
                    key,
                    name,
                    count: n,
                });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The stats, with what the breakdown rows do not carry.
    fn into_stats(
        mut self,
        (talk_ms_p50, talk_ms_p90): (i64, i64),
        by_tag: Vec<CountEntry>,
        cost_totals: Vec<MoneyTotal>,
    ) -> CallStats {
        stats::sort_breakdown(&mut self.by_outcome);
        stats::sort_breakdown(&mut self.by_party);
        stats::sort_breakdown(&mut self.by_intent_level);
        CallStats {
            total_calls: self.total,
            answered_calls: self.answered,
            answer_rate: stats::ratio(self.answered, self.total),
            talk_ms_total: self.talk_total,
            talk_ms_avg: stats::int_avg(self.talk_total, self.answered),
            talk_ms_p50,
            talk_ms_p90,
            ring_ms_avg: stats::int_avg(self.ring_sum, self.total),
            rounds_avg: stats::ratio(self.rounds_sum, self.total),
            score_avg: stats::ratio(self.score_sum, self.score_count),
            by_outcome: self.by_outcome,
            by_intent_level: self.by_intent_level,
            by_tag,
            by_hangup_party: self.by_party,
            by_carrier: text_entries(self.carriers),
            by_province: text_entries(self.provinces),
            cost_totals,
        }
    }
}

#[async_trait]
impl<DB> StatsStore for SqlStore<DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'v> i64: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> String: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> Vec<u8>: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> bool: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> &'v str: Decode<'v, DB> + Type<DB>,
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    async fn call_stats(
        &self,
        tenant: &str,
        filter: &CallFilter,
        top_tags: u32,
    ) -> Result<CallStats, StoreError> {
        if stats::rollups_answer(filter) {
            return self.rollup_stats(tenant, filter, top_tags).await;
        }
        // Independent scans run on separate reader connections at once.
        let (figures, by_tag, cost_totals) = tokio::try_join!(
            self.stat_scan(tenant, filter),
            self.stat_tags(tenant, filter, top_tags),
            self.stat_costs(tenant, filter),
        )?;
        let talk = tokio::try_join!(
            self.talk_percentile(tenant, filter, 50, figures.answered),
            self.talk_percentile(tenant, filter, 90, figures.answered),
        )?;
        Ok(figures.into_stats(talk, by_tag, cost_totals))
    }

    async fn call_time_slots(
        &self,
        tenant: &str,
        filter: &CallFilter,
        origin: UnixMs,
        slot_ms: i64,
    ) -> Result<Vec<(UnixMs, BucketSums)>, StoreError> {
        let from_rollups = stats::rollups_answer(filter)
            && origin.rem_euclid(ROLLUP_HOUR_MS) == 0
            && slot_ms % ROLLUP_HOUR_MS == 0;
        let mut qb = if from_rollups {
            // Whole-hour slots from a whole hour: the rollups' `all` rows,
            // of whole UTC days where the slots are whole UTC days too (a
            // day in another zone straddles two of them). No slot starts
            // before the origin: the service's window starts at or after it.
            let (start, end) = (filter.window.start.max(Some(origin)), filter.window.end);
            let spans = if origin.rem_euclid(ROLLUP_DAY_MS) == 0 && slot_ms % ROLLUP_DAY_MS == 0 {
                RollupSpans::of(start, end)
            } else {
                RollupSpans::hours_only(start, end)
            };
            let mut qb = QueryBuilder::<DB>::new("SELECT (at - ");
            qb.push_bind(origin).push(") / ").push_bind(slot_ms).push(
                " AS slot, CAST(SUM(calls) AS BIGINT) AS total, \
                     CAST(SUM(answered) AS BIGINT) AS answered, \
                     CAST(SUM(talk_sum) AS BIGINT) AS talk_total, \
                     CAST(SUM(score_sum) AS BIGINT) AS score_sum, \
                     CAST(SUM(score_count) AS BIGINT) AS score_count FROM ",
            );
            push_rollup_rows(
                &mut qb,
                tenant,
                filter,
                &spans,
                "calls, answered, talk_sum, score_sum, score_count",
                "dim = 'all'",
            );
            qb.push(" GROUP BY slot HAVING SUM(calls) <> 0 ORDER BY slot");
            qb
        } else {
            scanned_slots(tenant, filter, origin, slot_ms)
        };
        let rows = self.read_all(tenant, &mut qb).await?;
        rows.iter()
            .map(|row| {
                let slot: i64 = row.try_get("slot")?;
                Ok((
                    origin + slot * slot_ms,
                    BucketSums {
                        total_calls: row.try_get("total")?,
                        answered_calls: row.try_get("answered")?,
                        talk_ms_total: row.try_get("talk_total")?,
                        score_sum: row.try_get("score_sum")?,
                        score_count: row.try_get("score_count")?,
                    },
                ))
            })
            .collect()
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'v> i64: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> String: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> Vec<u8>: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> bool: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> &'v str: Decode<'v, DB> + Type<DB>,
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    /// The stats of a filter the rollups answer (`stats::rollups_answer`):
    /// every figure from the rollup rows of the window's days and edge hours
    /// (`RollupSpans`), but the two talk-time
    /// percentiles, whose 10-second bin the rollups find and whose exact
    /// value one short range of the task's talk index gives.
    async fn rollup_stats(
        &self,
        tenant: &str,
        filter: &CallFilter,
        top: u32,
    ) -> Result<CallStats, StoreError> {
        let spans = RollupSpans::of(filter.window.start, filter.window.end);
        let (sums, by_tag) = tokio::try_join!(
            self.rollup_sums(tenant, filter, &spans),
            self.rollup_tags(tenant, filter, &spans, top),
        )?;
        let mut figures = Figures::default();
        let mut talk_bins: Vec<(i64, i64)> = Vec::new();
        let mut costs = CostSums::default();
        for row in &sums {
            let dim: String = row.try_get("dim")?;
            let key: String = row.try_get("key")?;
            let n: i64 = row.try_get("calls")?;
            match dim.as_str() {
                "all" => {
                    figures.total = n;
                    figures.answered = row.try_get("answered")?;
                    figures.talk_total = row.try_get("talk_sum")?;
                    figures.ring_sum = row.try_get("ring_sum")?;
                    figures.rounds_sum = row.try_get("rounds_sum")?;
                    figures.score_sum = row.try_get("score_sum")?;
                    figures.score_count = row.try_get("score_count")?;
                }
                _ if n == 0 => {}
                "talk" => talk_bins.push((
                    key.parse()
                        .map_err(|_| StoreError::Corrupt(format!("talk bin {key}")))?,
                    n,
                )),
                "cost" => costs.add(key, &row.try_get::<String, _>("detail")?, n)?,
                _ => {
                    if !figures.add(&dim, key, || Ok(row.try_get("name")?), n)? {
                        return Err(StoreError::Corrupt(format!("rollup dimension {dim}")));
                    }
                }
            }
        }
        talk_bins.sort_unstable();
        let talk = tokio::try_join!(
            self.rollup_talk_percentile(tenant, filter, &talk_bins, 50, figures.answered),
            self.rollup_talk_percentile(tenant, filter, &talk_bins, 90, figures.answered),
        )?;
        Ok(figures.into_stats(talk, by_tag, costs.totals()))
    }

    /// Every key of every dimension but tags, summed over the rollup
    /// buckets `spans`, with the catalog name of intent levels.
    async fn rollup_sums(
        &self,
        tenant: &str,
        filter: &CallFilter,
        spans: &RollupSpans,
    ) -> Result<Vec<DB::Row>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT r.dim, r.key, r.detail, r.calls, r.answered, r.talk_sum, r.ring_sum, \
             r.rounds_sum, r.score_sum, r.score_count, COALESCE(il.name, '') AS name FROM \
             (SELECT dim, key, detail, CAST(SUM(calls) AS BIGINT) AS calls, \
             CAST(SUM(answered) AS BIGINT) AS answered, CAST(SUM(talk_sum) AS BIGINT) AS talk_sum, \
             CAST(SUM(ring_sum) AS BIGINT) AS ring_sum, CAST(SUM(rounds_sum) AS BIGINT) AS rounds_sum, \
             CAST(SUM(score_sum) AS BIGINT) AS score_sum, \
             CAST(SUM(score_count) AS BIGINT) AS score_count FROM ",
        );
        push_rollup_rows(
            &mut qb,
            tenant,
            filter,
            spans,
            "dim, key, detail, calls, answered, talk_sum, ring_sum, rounds_sum, score_sum, \
             score_count",
            ROLLUP_DIMENSIONS_BUT_TAGS,
        );
        qb.push(" GROUP BY dim, key, detail) r LEFT JOIN intent_levels il ON il.tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND r.dim = 'level' AND il.intent_level_id = r.key");
        self.read_all(tenant, &mut qb).await
    }

    /// The `top` most used tags of the rollup buckets `spans`, with catalog
    /// names.
    async fn rollup_tags(
        &self,
        tenant: &str,
        filter: &CallFilter,
        spans: &RollupSpans,
        top: u32,
    ) -> Result<Vec<CountEntry>, StoreError> {
        self.top_tags(tenant, top, |qb| {
            qb.push("SELECT key AS tag_id, CAST(SUM(calls) AS BIGINT) AS n FROM ");
            push_rollup_rows(qb, tenant, filter, spans, "key, calls", "dim = 'tag'");
            qb.push(" GROUP BY key HAVING SUM(calls) <> 0");
        })
        .await
    }

    /// The nearest-rank percentile of answered calls' talk time: the
    /// rollups' histogram names the 10-second bin and the offset in it, and
    /// the calls of that bin alone are walked in talk order.
    async fn rollup_talk_percentile(
        &self,
        tenant: &str,
        filter: &CallFilter,
        bins: &[(i64, i64)],
        percent: u32,
        answered: i64,
    ) -> Result<i64, StoreError> {
        let Some(offset) = stats::nearest_rank_offset(percent, answered) else {
            return Ok(0);
        };
        // Each statement reads its own snapshot: a write committed between
        // the histogram and this read (a call deleted, its talk time or hour
        // changed) can leave the bin short. The scan answers then.
        let Some((bin, within)) = stats::locate_in_histogram(bins, offset) else {
            return self
                .talk_percentile(tenant, filter, percent, answered)
                .await;
        };
        let range = (bin * ROLLUP_TALK_BIN_MS, (bin + 1) * ROLLUP_TALK_BIN_MS);
        match self.talk_at(tenant, filter, within, Some(range)).await? {
            Some(talk_ms) => Ok(talk_ms),
            None => {
                self.talk_percentile(tenant, filter, percent, answered)
                    .await
            }
        }
    }

    /// Totals, averages and every breakdown but tags, from one scan: the
    /// calls are grouped by carrier, province, intent level, outcome and
    /// hang-up party (on a task, the stats index yields rows in that order,
    /// so nothing is sorted), and those few groups are summed again per
    /// dimension in the same statement. Only the breakdown entries leave the
    /// database.
    async fn stat_scan(&self, tenant: &str, filter: &CallFilter) -> Result<Figures, StoreError> {
        let answered = CallOutcome::Answered.code();
        let mut qb = QueryBuilder::<DB>::new(format!(
            "WITH g AS MATERIALIZED (SELECT c.carrier, c.province, c.intent_level_id, c.outcome, \
             c.hangup_by, COUNT(*) AS n, \
             CAST(SUM(CASE WHEN c.outcome = {answered} THEN c.talk_ms ELSE 0 END) AS BIGINT) AS talk_sum, \
             CAST(SUM(c.ring_ms) AS BIGINT) AS ring_sum, CAST(SUM(c.rounds) AS BIGINT) AS rounds_sum, \
             CAST(COALESCE(SUM(c.score), 0) AS BIGINT) AS score_sum, COUNT(c.score) AS score_count FROM calls c"
        ));
        push_where(&mut qb, tenant, filter);
        qb.push(format_args!(
            " GROUP BY c.carrier, c.province, c.intent_level_id, c.outcome, c.hangup_by) \
             SELECT 'all' AS dim, '' AS key, '' AS name, CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n, \
             CAST(COALESCE(SUM(CASE WHEN outcome = {answered} THEN n ELSE 0 END), 0) AS BIGINT) AS answered, \
             CAST(COALESCE(SUM(talk_sum), 0) AS BIGINT) AS talk_sum, \
             CAST(COALESCE(SUM(ring_sum), 0) AS BIGINT) AS ring_sum, \
             CAST(COALESCE(SUM(rounds_sum), 0) AS BIGINT) AS rounds_sum, \
             CAST(COALESCE(SUM(score_sum), 0) AS BIGINT) AS score_sum, \
             CAST(COALESCE(SUM(score_count), 0) AS BIGINT) AS score_count FROM g"
        ));
        for (dim, column) in [
            ("outcome", "CAST(outcome AS TEXT)"),
            ("party", "CAST(hangup_by AS TEXT)"),
            ("carrier", "carrier"),
            ("province", "province"),
        ] {
            qb.push(format_args!(
                " UNION ALL SELECT '{dim}', {column}, '', CAST(SUM(n) AS BIGINT), 0, 0, 0, 0, 0, 0 FROM g GROUP BY {column}"
            ));
        }
        qb.push(
            " UNION ALL SELECT 'level', COALESCE(g.intent_level_id, ''), COALESCE(MAX(il.name), ''), \
             CAST(SUM(g.n) AS BIGINT), 0, 0, 0, 0, 0, 0 FROM g LEFT JOIN intent_levels il ON il.tenant_id = ",
        )
        .push_bind(tenant.to_owned())
        // A level stored as '' (a vendor's level with neither code nor task)
        // counts with the calls that have none, as the rollups count it.
        .push(" AND il.intent_level_id = g.intent_level_id GROUP BY COALESCE(g.intent_level_id, '')");
        let rows = self.read_all(tenant, &mut qb).await?;

        let mut figures = Figures::default();
        for row in &rows {
            let dim: String = row.try_get("dim")?;
            let n: i64 = row.try_get("n")?;
            if dim == "all" {
                figures.total = n;
                figures.answered = row.try_get("answered")?;
                figures.talk_total = row.try_get("talk_sum")?;
                figures.ring_sum = row.try_get("ring_sum")?;
                figures.rounds_sum = row.try_get("rounds_sum")?;
                figures.score_sum = row.try_get("score_sum")?;
                figures.score_count = row.try_get("score_count")?;
            } else if !figures.add(&dim, row.try_get("key")?, || Ok(row.try_get("name")?), n)? {
                return Err(StoreError::Corrupt(format!("stats dimension {dim}")));
            }
        }
        Ok(figures)
    }

    async fn stat_tags(
        &self,
        tenant: &str,
        filter: &CallFilter,
        top: u32,
    ) -> Result<Vec<CountEntry>, StoreError> {
        self.top_tags(tenant, top, |qb| {
            qb.push(
                "SELECT ct.tag_id, COUNT(*) AS n FROM calls c JOIN call_tags ct \
                 ON ct.tenant_id = c.tenant_id AND ct.call_id = c.call_id",
            );
            push_where(qb, tenant, filter);
            qb.push(" GROUP BY ct.tag_id");
        })
        .await
    }

    /// The `top` rows of the statement `counts` writes (columns `tag_id`
    /// and `n`), most used first, with the tags' catalog names.
    async fn top_tags(
        &self,
        tenant: &str,
        top: u32,
        counts: impl FnOnce(&mut QueryBuilder<DB>),
    ) -> Result<Vec<CountEntry>, StoreError> {
        let mut qb =
            QueryBuilder::<DB>::new("SELECT t.tag_id, COALESCE(g.name, '') AS name, t.n FROM (");
        counts(&mut qb);
        qb.push(" ORDER BY n DESC, tag_id LIMIT ")
            .push_bind(i64::from(top))
            .push(") t LEFT JOIN tags g ON g.tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND g.tag_id = t.tag_id ORDER BY t.n DESC, t.tag_id");
        let rows = self.read_all(tenant, &mut qb).await?;
        rows.iter()
            .map(|row| {
                Ok(CountEntry {
                    key: row.try_get("tag_id")?,
                    name: row.try_get("name")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    /// The `k`-th smallest talk time of answered calls, by nearest rank,
    /// read with `ORDER BY … LIMIT 1 OFFSET k`: on the task index this walks
    /// k index entries instead of sorting every call.
    async fn talk_percentile(
        &self,
        tenant: &str,
        filter: &CallFilter,
        percent: u32,
        answered: i64,
    ) -> Result<i64, StoreError> {
        let Some(offset) = stats::nearest_rank_offset(percent, answered) else {
            return Ok(0);
        };
        Ok(self
            .talk_at(tenant, filter, offset, None)
            .await?
            .unwrap_or(0))
    }

    /// The talk time at 0-based `offset` among the filter's answered calls
    /// in talk order, counting only talk times in `[from, to)` when given;
    /// `None` past the last.
    async fn talk_at(
        &self,
        tenant: &str,
        filter: &CallFilter,
        offset: i64,
        range: Option<(i64, i64)>,
    ) -> Result<Option<i64>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT c.talk_ms FROM calls c");
        push_where(&mut qb, tenant, filter);
        qb.push(format_args!(
            " AND c.outcome = {}",
            CallOutcome::Answered.code()
        ));
        if let Some((from, to)) = range {
            qb.push(" AND c.talk_ms >= ")
                .push_bind(from)
                .push(" AND c.talk_ms < ")
                .push_bind(to);
        }
        qb.push(" ORDER BY c.talk_ms LIMIT 1 OFFSET ")
            .push_bind(offset);
        let rows = self.read_all(tenant, &mut qb).await?;
        Ok(match rows.first() {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    }

    /// Exact cost totals per currency. Each cost is split in SQL into its
    /// integer part and two 9-digit fraction chunks, summed as integers
    /// (never as floats), and recombined exactly here. Costs with more than
    /// 18 fraction digits fall back to summing distinct values in Rust.
    async fn stat_costs(
        &self,
        tenant: &str,
        filter: &CallFilter,
    ) -> Result<Vec<MoneyTotal>, StoreError> {
        if !DB::SUMS_COSTS_IN_SQL {
            return self.stat_costs_distinct(tenant, filter).await;
        }
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT currency, SUM(n * sgn * CAST(ip AS INTEGER)) AS ip, \
             SUM(n * sgn * CAST(substr(fp || '000000000', 1, 9) AS INTEGER)) AS f1, \
             SUM(n * sgn * CAST(substr(fp || '000000000000000000', 10, 9) AS INTEGER)) AS f2, \
             MAX(length(fp)) AS digits FROM \
             (SELECT currency, n, sgn, \
             CASE WHEN instr(body, '.') > 0 THEN substr(body, 1, instr(body, '.') - 1) ELSE body END AS ip, \
             CASE WHEN instr(body, '.') > 0 THEN substr(body, instr(body, '.') + 1) ELSE '' END AS fp FROM \
             (SELECT currency, n, CASE WHEN substr(cost, 1, 1) = '-' THEN -1 ELSE 1 END AS sgn, \
             ltrim(cost, '-') AS body FROM \
             (SELECT c.currency AS currency, c.cost AS cost, COUNT(*) AS n FROM calls c",
        );
        push_where(&mut qb, tenant, filter);
        // Costs repeat (a rate times whole minutes), so each distinct cost is
        // split once and weighted by its count. The grouping columns follow
        // the task stats index, so a task's calls are grouped without a sort.
        qb.push(
            " AND c.cost <> '' GROUP BY c.carrier, c.province, c.intent_level_id, c.outcome, \
             c.hangup_by, c.currency, c.cost))) \
             GROUP BY currency ORDER BY currency",
        );
        let rows = self.read_all(tenant, &mut qb).await?;
        let mut totals = Vec::with_capacity(rows.len());
        for row in rows {
            let digits: i64 = row.try_get("digits")?;
            if digits > FRACTION_DIGITS {
                return self.stat_costs_distinct(tenant, filter).await;
            }
            let currency: String = row.try_get("currency")?;
            let amount = Decimal::from_parts(
                row.try_get("ip")?,
                &[row.try_get("f1")?, row.try_get("f2")?],
                FRACTION_CHUNK,
            )
            .ok_or_else(|| StoreError::Corrupt(format!("cost total of {currency} overflows")))?;
            totals.push(MoneyTotal {
                currency,
                amount: amount.to_plain_string(),
            });
        }
        Ok(totals)
    }

    /// The slow path of [`Self::stat_costs`]: each distinct cost with its
    /// count, multiplied and added exactly.
    async fn stat_costs_distinct(
        &self,
        tenant: &str,
        filter: &CallFilter,
    ) -> Result<Vec<MoneyTotal>, StoreError> {
        let mut qb =
            QueryBuilder::<DB>::new("SELECT c.currency, c.cost, COUNT(*) AS n FROM calls c");
        push_where(&mut qb, tenant, filter);
        qb.push(" AND c.cost <> '' GROUP BY c.currency, c.cost");
        let mut sums = CostSums::default();
        for row in self.read_all(tenant, &mut qb).await? {
            sums.add(
                row.try_get("currency")?,
                &row.try_get::<String, _>("cost")?,
                row.try_get("n")?,
            )?;
        }
        Ok(sums.totals())
    }
}

/// Exact cost totals per currency, from each distinct cost and its calls.
#[derive(Default)]
struct CostSums(BTreeMap<String, Decimal>);

impl CostSums {
    fn add(&mut self, currency: String, cost: &str, calls: i64) -> Result<(), StoreError> {
        let total = self.0.entry(currency.clone()).or_default();
        *total = Decimal::parse(cost)
            .and_then(|d| d.checked_mul_int(calls))
            .and_then(|d| total.checked_add(d))
            .ok_or_else(|| StoreError::Corrupt(format!("cost `{cost}` of {currency}")))?;
        Ok(())
    }

    fn totals(self) -> Vec<MoneyTotal> {
        self.0
            .into_iter()
            .map(|(currency, amount)| MoneyTotal {
                currency,
                amount: amount.to_plain_string(),
            })
            .collect()
    }
}

/// A free-text breakdown (carrier, province) as sorted entries.
fn text_entries(map: BTreeMap<String, i64>) -> Vec<CountEntry> {
    let mut list: Vec<CountEntry> = map
        .into_iter()
        .map(|(key, count)| CountEntry {
            name: key.clone(),
            key,
            count,
        })
        .collect();
    stats::sort_breakdown(&mut list);
    list
}

/// The statement of time-series slots from the scan of the calls.
fn scanned_slots<DB>(
    tenant: &str,
    filter: &CallFilter,
    origin: UnixMs,
    slot_ms: i64,
) -> QueryBuilder<DB>
where
    DB: Dialect,
    for<'v> i64: Encode<'v, DB> + Type<DB>,
    for<'v> String: Encode<'v, DB> + Type<DB>,
{
    let column = time_column(filter.window.field);
    let answered = CallOutcome::Answered.code();
    let mut qb = QueryBuilder::<DB>::new(format!("SELECT ({column} - "));
    qb.push_bind(origin)
        .push(") / ")
        .push_bind(slot_ms)
        .push(format_args!(
            " AS slot, COUNT(*) AS total, \
             CAST(COALESCE(SUM(CASE WHEN c.outcome = {answered} THEN 1 ELSE 0 END), 0) AS BIGINT) AS answered, \
             CAST(COALESCE(SUM(CASE WHEN c.outcome = {answered} THEN c.talk_ms ELSE 0 END), 0) AS BIGINT) AS talk_total, \
             CAST(COALESCE(SUM(c.score), 0) AS BIGINT) AS score_sum, COUNT(c.score) AS score_count FROM calls c"
        ));
    push_where(&mut qb, tenant, filter);
    // Slots before the origin cannot occur: the window starts at or
    // after it, and the service always gives a window.
    qb.push(format_args!(" AND {column} >= ")).push_bind(origin);
    qb.push(" GROUP BY slot ORDER BY slot");
    qb
}
