//! `CallFilter` → SQL `WHERE` clause, with bound parameters only. Written once
//! in SQL both SQLite and PostgreSQL understand; the calls table is aliased `c`.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::Dialect;
use super::dialect::push_list;
use crate::domain::carrier::carrier_spellings;
use crate::domain::stats::RollupSpans;
use crate::domain::{CallFilter, CallOrder, Cursor, Party, TagMatch, TimeField, TurnKind};

/// The start of a call listing: calls (`c`) with the name of their intent
/// level. [`push_where`] and [`push_page`] complete it. The columns are
/// named in the order `SqlStore::row_to_call` reads them, by position: the
/// calls it shows, not the row's keeping (`tenant_id`, `content_hash`,
/// `alt_id`).
pub const SELECT_CALLS: &str = "SELECT c.call_id, c.sync_time, c.source, c.external_id, c.task_id, \
     c.parent_task_id, c.script_id, c.callee, c.callee_raw, c.caller, c.caller_raw, \
     c.submit_time, c.call_time, c.ring_time, c.answer_time, c.hangup_time, c.ring_ms, \
     c.talk_ms, c.total_ms, c.billed_ms, c.outcome, c.vendor_status, c.hangup_cause, \
     c.sip_code, c.hangup_by, c.score, c.intent_level_id, c.intent_level_snapshot, \
     il.name AS il_name, il.alias AS il_alias, il.color AS il_color, c.rounds, \
     c.recording_url, c.gender, c.province, c.city, c.area_code, c.carrier, c.region, \
     c.post_code, c.rate, c.base_cost, c.cost, c.currency, c.settle_rate, c.settle_cost, \
     c.quote_exchange, c.bill_period, c.base_cost_currency, c.settle_currency, c.dtmf, \
     c.recall_count, c.recall_of, c.customer_name, c.line_id, c.attributes, c.update_time, \
     c.quality_flags \
     FROM calls c LEFT JOIN intent_levels il \
     ON il.tenant_id = c.tenant_id AND il.intent_level_id = c.intent_level_id";

/// Appends ` WHERE c.tenant_id = ? AND …` for `filter`.
pub fn push_where<DB>(qb: &mut QueryBuilder<DB>, tenant: &str, f: &CallFilter)
where
    DB: Dialect,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    qb.push(" WHERE c.tenant_id = ")
        .push_bind(tenant.to_owned());

    push_filter_values(qb, "c.task_id", f.task_ids.iter().cloned());
    if let Some(phone) = &f.phone {
        // Two index look-ups made explicit: with a plain `callee = ? OR
        // caller = ?` SQLite may walk the whole call-time index instead.
        qb.push(" AND c.call_id IN (SELECT p.call_id FROM calls p WHERE p.tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND p.callee = ")
            .push_bind(phone.clone())
            .push(format_args!(
                " UNION ALL SELECT p.call_id FROM {} WHERE p.tenant_id = ",
                DB::CALLS_BY_CALLER
            ))
            .push_bind(tenant.to_owned())
            .push(" AND p.caller = ")
            .push_bind(phone.clone())
            .push(")");
    }
    if let Some(digits) = &f.phone_contains {
        // Digits only (checked on input), so no LIKE wildcard can sneak in.
        let pattern = format!("%{digits}%");
        qb.push(" AND (c.callee LIKE ")
            .push_bind(pattern.clone())
            .push(" OR c.caller LIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if !f.score_ranges.is_empty() {
        // On the expression the listings sort by, whose index (`calls_by_score`)
        // serves both; it is below every score for a call without one, so the
        // lower bound (at least `i32::MIN`) leaves those out.
        let key = sort_expr(CallOrder::ScoreDesc);
        qb.push(" AND (");
        for (i, range) in f.score_ranges.iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            qb.push(format_args!("({key} >= "))
                .push_bind(i64::from(range.min.unwrap_or(i32::MIN)));
            if let Some(max) = range.max {
                qb.push(format_args!(" AND {key} < "))
                    .push_bind(i64::from(max));
            }
            qb.push(")");
        }
        qb.push(")");
    }
    if !f.tag_ids.is_empty() {
        let mut ids = f.tag_ids.clone();
        ids.sort();
        ids.dedup();
        let wanted = ids.len() as i64;
        match f.tag_match {
            TagMatch::Any => {
                qb.push(
                    " AND EXISTS (SELECT 1 FROM call_tags t \
                     WHERE t.tenant_id = c.tenant_id AND t.call_id = c.call_id",
                );
                push_filter_values(qb, "t.tag_id", ids.into_iter());
                qb.push(")");
            }
            TagMatch::All => {
                qb.push(
                    " AND (SELECT COUNT(*) FROM call_tags t \
                     WHERE t.tenant_id = c.tenant_id AND t.call_id = c.call_id",
                );
                push_filter_values(qb, "t.tag_id", ids.into_iter());
                qb.push(") = ").push_bind(wanted);
            }
        }
    }
    if !f.tag_group_ids.is_empty() {
        qb.push(
            " AND EXISTS (SELECT 1 FROM call_tag_groups g \
             WHERE g.tenant_id = c.tenant_id AND g.call_id = c.call_id",
        );
        push_filter_values(qb, "g.group_id", f.tag_group_ids.iter().cloned());
        qb.push(")");
    }
    push_filter_values(qb, "c.intent_level_id", f.intent_level_ids.iter().cloned());

    let column = time_column(f.window.field);
    if let Some(start) = f.window.start {
        qb.push(format_args!(" AND {column} >= ")).push_bind(start);
    }
    if let Some(end) = f.window.end {
        qb.push(format_args!(" AND {column} < ")).push_bind(end);
    }
    if let Some(min) = f.min_talk_ms {
        qb.push(" AND c.talk_ms >= ").push_bind(min);
    }
    if let Some(max) = f.max_talk_ms {
        qb.push(" AND c.talk_ms <= ").push_bind(max);
    }
    if let Some(min) = f.min_rounds {
        qb.push(" AND c.rounds >= ").push_bind(i64::from(min));
    }
    if let Some(max) = f.max_rounds {
        qb.push(" AND c.rounds <= ").push_bind(i64::from(max));
    }
    push_in_codes(qb, "c.outcome", f.outcomes.iter().map(|o| o.code()));
    push_in_codes(qb, "c.source", f.sources.iter().map(|s| s.code()));
    // A carrier given by code, Chinese or English name matches every
    // spelling vendors store for it.
    let carriers: Vec<String> = f
        .carriers
        .iter()
        .flat_map(|c| carrier_spellings(c))
        .collect();
    push_filter_values(qb, "c.carrier", carriers.into_iter());
    push_filter_values(qb, "c.province", f.provinces.iter().cloned());
    if let Some(party) = f.hangup_by {
        qb.push(" AND c.hangup_by = ")
            .push_bind(i64::from(party.code()));
    }
    if let Some(transcript) = &f.transcript {
        // Interim recognition results are left out: they repeat, half-formed,
        // what the final customer turn says.
        let pattern = format!("%{}%", escape_like(&transcript.text));
        qb.push(
            " AND EXISTS (SELECT 1 FROM dialogue_turns d \
             WHERE d.tenant_id = c.tenant_id AND d.call_id = c.call_id AND d.kind <> ",
        )
        .push_bind(i64::from(TurnKind::Progress.code()));
        match transcript.party {
            Some(Party::Customer) => {
                qb.push(" AND d.customer_text LIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\'");
            }
            Some(Party::Robot) => {
                qb.push(" AND d.robot_text LIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\'");
            }
            _ => {
                qb.push(" AND (d.customer_text LIKE ")
                    .push_bind(pattern.clone())
                    .push(" ESCAPE '\\' OR d.robot_text LIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\')");
            }
        }
        qb.push(")");
    }
    push_read_side(qb, tenant, f);
}

/// The filter fields of the read side: the vendor's ids, the exclusions and
/// the attributes.
fn push_read_side<DB>(qb: &mut QueryBuilder<DB>, tenant: &str, f: &CallFilter)
where
    DB: Dialect,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    if !f.external_ids.is_empty() {
        // Two index probes per id, as for `phone`: the vendor's id, or its
        // second id (smartivr's record id), whatever the source.
        qb.push(" AND c.call_id IN (SELECT p.call_id FROM calls p WHERE p.tenant_id = ")
            .push_bind(tenant.to_owned());
        push_filter_values(qb, "p.external_id", f.external_ids.iter().cloned());
        qb.push(" UNION ALL SELECT p.call_id FROM calls p WHERE p.tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND p.alt_id <> ''");
        push_filter_values(qb, "p.alt_id", f.external_ids.iter().cloned());
        qb.push(")");
    }
    if !f.exclude_tag_ids.is_empty() {
        // Tags of the call's turns are rows of `call_tags` too.
        qb.push(
            " AND NOT EXISTS (SELECT 1 FROM call_tags x \
             WHERE x.tenant_id = c.tenant_id AND x.call_id = c.call_id",
        );
        push_filter_values(qb, "x.tag_id", f.exclude_tag_ids.iter().cloned());
        qb.push(")");
    }
    if !f.exclude_intent_level_ids.is_empty() {
        // A call without a level has none of the excluded ones: it stays.
        qb.push(" AND (c.intent_level_id IS NULL OR c.intent_level_id NOT IN (");
        let mut list = qb.separated(", ");
        for id in &f.exclude_intent_level_ids {
            list.push_bind(id.clone());
        }
        qb.push("))");
    }
    if !f.exclude_outcomes.is_empty() {
        qb.push(" AND c.outcome NOT IN (");
        let mut list = qb.separated(", ");
        for outcome in &f.exclude_outcomes {
            list.push_bind(i64::from(outcome.code()));
        }
        qb.push(")");
    }
    if !f.quality_flags.is_empty() {
        // Stored `,a,b,`: `,a,` matches one flag whole.
        qb.push(" AND (");
        for (i, flag) in f.quality_flags.iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            qb.push("c.quality_flags LIKE ")
                .push_bind(format!("%,{},%", escape_like(flag)))
                .push(" ESCAPE '\\'");
        }
        qb.push(")");
    }
    for (key, value) in &f.attributes {
        let [before_key, before_value, after] = DB::ATTRIBUTE_EQUALS;
        qb.push(before_key)
            .push_bind(key.clone())
            .push(before_value)
            .push_bind(value.clone())
            .push(after);
    }
}

/// The SQL expression a listing is ordered by. Calls without a score sort
/// below every real score.
pub fn sort_expr(order: CallOrder) -> &'static str {
    match order {
        CallOrder::CallTimeDesc | CallOrder::CallTimeAsc => "c.call_time",
        CallOrder::ScoreDesc | CallOrder::ScoreAsc => "COALESCE(c.score, -2147483649)",
        CallOrder::TalkMsDesc | CallOrder::TalkMsAsc => "c.talk_ms",
    }
}

/// Whether every listing of `filter` in `order` has the same best plan,
/// whatever the values: calls of one task, or of everything, in a window
/// of call time, by call time. It walks `calls_by_task_time` (or
/// `calls_by_time`) in page order, which no value makes worse. Several
/// tasks are not: no index gives their calls in time order, and whether to
/// walk `calls_by_time` and filter or fetch them all and sort turns on how
/// many calls the tasks have. With any other condition the best plan turns
/// on the values: a generic plan for score ranges and a tag no call has
/// walked every scored call (275 ms at 100k calls, where the plan for those
/// values took 1.6 ms), so those keep a plan made for their values (see
/// [`push_page`]).
pub fn plan_fits_any_values(f: &CallFilter, order: CallOrder) -> bool {
    let by_call_time = matches!(order, CallOrder::CallTimeDesc | CallOrder::CallTimeAsc);
    let window_on_call_time = f.window.field == TimeField::CallTime
        || (f.window.start.is_none() && f.window.end.is_none());
    by_call_time
        && window_on_call_time
        && f.task_ids.len() <= 1
        && *f
            == CallFilter {
                task_ids: f.task_ids.clone(),
                window: f.window,
                ..CallFilter::default()
            }
}

/// Appends the keyset condition (after the cursor), `ORDER BY` and `LIMIT`.
///
/// With `reusable_plan` the limit is written into the text: PostgreSQL
/// costs a cached generic plan with the limit it sees, and with a bound
/// `LIMIT $n` it assumes a tenth of the matching rows, so a generic plan
/// can look dearer than it is. The listing of every call, newest first,
/// was planned again for each page with its limit bound, and reuses one
/// plan with it in the text (`pg_prepared_statements` at 100k calls: no
/// generic plan in 7 runs, then 2 of 7). Task + window reused its plan
/// either way. Without `reusable_plan` the limit stays bound, which keeps
/// a plan made for each request's values. Either way the limit is a number
/// the store computed, never text a client sent.
pub fn push_page<DB>(
    qb: &mut QueryBuilder<DB>,
    order: CallOrder,
    after: Option<&Cursor>,
    limit: i64,
    reusable_plan: bool,
) where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let key = sort_expr(order);
    let (cmp, dir) = if order.descending() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(cursor) = after {
        qb.push(format_args!(" AND ({key}, c.call_id) {cmp} ("))
            .push_bind(cursor.sort_key)
            .push(", ")
            .push_bind(cursor.call_id.clone())
            .push(")");
    }
    qb.push(format_args!(
        " ORDER BY {key} {dir}, c.call_id {dir} LIMIT "
    ));
    if reusable_plan {
        qb.push(limit);
    } else {
        qb.push_bind(limit);
    }
}

pub(crate) fn time_column(field: TimeField) -> &'static str {
    match field {
        TimeField::CallTime => "c.call_time",
        TimeField::AnswerTime => "c.answer_time",
        TimeField::HangupTime => "c.hangup_time",
        TimeField::SyncTime => "c.sync_time",
    }
}

/// ` AND {column} IN (…)` over a filter's values, one placeholder each (none
/// when the filter names none). Unlike the id lists of `Dialect::push_in`,
/// these shape the listing's plan, which was measured with them as they are.
fn push_filter_values<DB>(
    qb: &mut QueryBuilder<DB>,
    column: &str,
    values: impl ExactSizeIterator<Item = String>,
) where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    if values.len() == 0 {
        return;
    }
    qb.push(format_args!(" AND {column} IN ("));
    let mut list = qb.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    qb.push(")");
}

fn push_in_codes<DB>(
    qb: &mut QueryBuilder<DB>,
    column: &str,
    codes: impl ExactSizeIterator<Item = i32>,
) where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    if codes.len() == 0 {
        return;
    }
    qb.push(format_args!(" AND {column} IN ("));
    let mut list = qb.separated(", ");
    for code in codes {
        list.push_bind(i64::from(code));
    }
    qb.push(")");
}

/// Escapes `%`, `_` and `\` so user text matches literally under `ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// `(SELECT <at>, <columns> FROM … UNION ALL …) r`: the rollup rows of a
/// filter `stats::rollups_answer` accepts, the tenant's, of its tasks when
/// it names some, whose buckets `spans` lists (day rows from
/// `call_rollup_days`, hour rows from `call_rollups`), with `dims` their
/// condition on `dim`. `at` is the start of each row's hour or day.
pub fn push_rollup_rows<DB>(
    qb: &mut QueryBuilder<DB>,
    tenant: &str,
    filter: &CallFilter,
    spans: &RollupSpans,
    columns: &str,
    dims: &str,
) where
    DB: Dialect,
    for<'v> i64: Encode<'v, DB> + Type<DB>,
    for<'v> String: Encode<'v, DB> + Type<DB>,
{
    let tiers = spans
        .days
        .iter()
        .map(|span| ("call_rollup_days", "day", span))
        .chain(
            spans
                .hours
                .iter()
                .map(|span| ("call_rollups", "hour", span)),
        );
    qb.push("(");
    for (n, (table, bucket, (start, end))) in tiers.enumerate() {
        if n > 0 {
            qb.push(" UNION ALL ");
        }
        qb.push(format_args!(
            "SELECT {bucket} AS at, {columns} FROM {table} WHERE tenant_id = "
        ))
        .push_bind(tenant.to_owned());
        if !filter.task_ids.is_empty() {
            qb.push(" AND task_id IN (");
            push_list(qb, &filter.task_ids);
            qb.push(")");
        }
        if let Some(start) = start {
            qb.push(format_args!(" AND {bucket} >= ")).push_bind(*start);
        }
        if let Some(end) = end {
            qb.push(format_args!(" AND {bucket} < ")).push_bind(*end);
        }
        qb.push(format_args!(" AND {dims}"));
    }
    qb.push(") r");
}

#[cfg(test)]
mod tests {
    use sqlx::{Execute, QueryBuilder, Sqlite};

    use super::{plan_fits_any_values, push_page, sort_expr};
    use crate::domain::{CallFilter, CallOrder, NO_SCORE_KEY, TimeField, TimeWindow};

    /// The score order's SQL puts calls without a score where the cursor
    /// does, and is the expression `calls_by_score` indexes on both
    /// backends (a planner uses an expression index only for its very
    /// expression).
    #[test]
    fn the_score_order_is_the_cursor_key_and_the_indexed_expression() {
        let expr = sort_expr(CallOrder::ScoreDesc);
        assert_eq!(expr, format!("COALESCE(c.score, {NO_SCORE_KEY})"));
        let indexed = expr.replace("c.score", "score");
        for migration in [
            include_str!("../../migrations/postgres/0021_index_audit.sql"),
            include_str!("../../migrations/sqlite/0021_index_audit.sql"),
        ] {
            assert!(migration.contains(&indexed), "{indexed} not indexed");
        }
    }

    #[test]
    fn only_one_task_and_a_call_time_window_by_call_time_reuse_a_plan() {
        let window = TimeWindow::new(TimeField::CallTime, Some(0), Some(10)).expect("window");
        let tasks = CallFilter {
            task_ids: vec!["t1".into()],
            window,
            ..CallFilter::default()
        };
        assert!(plan_fits_any_values(
            &CallFilter::default(),
            CallOrder::CallTimeDesc
        ));
        assert!(plan_fits_any_values(&tasks, CallOrder::CallTimeDesc));
        assert!(plan_fits_any_values(&tasks, CallOrder::CallTimeAsc));
        assert!(!plan_fits_any_values(&tasks, CallOrder::ScoreDesc));
        let two_tasks = CallFilter {
            task_ids: vec!["t1".into(), "t2".into()],
            ..tasks.clone()
        };
        assert!(!plan_fits_any_values(&two_tasks, CallOrder::CallTimeDesc));
        let tagged = CallFilter {
            tag_ids: vec!["price".into()],
            ..tasks.clone()
        };
        assert!(!plan_fits_any_values(&tagged, CallOrder::CallTimeDesc));
        let answered = CallFilter {
            window: TimeWindow::new(TimeField::AnswerTime, Some(0), None).expect("window"),
            ..tasks.clone()
        };
        assert!(!plan_fits_any_values(&answered, CallOrder::CallTimeDesc));
        let by_phone = CallFilter {
            phone: Some("+8613800138000".into()),
            ..CallFilter::default()
        };
        assert!(!plan_fits_any_values(&by_phone, CallOrder::CallTimeDesc));
    }

    #[test]
    fn a_reusable_plan_has_its_limit_in_the_text() {
        let sql = |reusable| {
            let mut qb = QueryBuilder::<Sqlite>::new("SELECT * FROM calls c WHERE 1");
            push_page(&mut qb, CallOrder::CallTimeDesc, None, 16, reusable);
            qb.build().sql().as_str().to_owned()
        };
        assert_eq!(
            sql(true),
            "SELECT * FROM calls c WHERE 1 ORDER BY c.call_time DESC, c.call_id DESC LIMIT 16"
        );
        assert_eq!(
            sql(false),
            "SELECT * FROM calls c WHERE 1 ORDER BY c.call_time DESC, c.call_id DESC LIMIT ?"
        );
    }

    /// A campaign dials from a few numbers, and SQLite's statistics keep
    /// rows per key, not per value: with every call from one caller they
    /// say any caller matches every call, and the phone filter's look-up
    /// by caller became a scan of the table. It stays a search of the
    /// caller index.
    #[tokio::test]
    async fn a_phone_is_looked_up_by_caller_index_whatever_the_statistics_say() {
        use sqlx::{Connection, Row, SqliteConnection};

        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = crate::store::sqlite::one_reader_store(&url).await;
        // 2,000 calls to distinct numbers from one caller (statistics are
        // read when a connection loads the schema).
        crate::store::sqlite::store_calls_from_one_caller(&store, 2000).await;
        drop(store);
        let mut writer = SqliteConnection::connect(&url).await.expect("connect");
        // The statistics ANALYZE wrote for the calls of the suite's 50,000-call
        // analytics file, where the look-up by caller was a scan.
        for statement in [
            "ANALYZE",
            "DELETE FROM sqlite_stat1 WHERE tbl = 'calls'",
            "DELETE FROM sqlite_stat4 WHERE tbl = 'calls'",
            "INSERT INTO sqlite_stat1 VALUES ('calls', 'calls_by_score', '50000 50000 496 1'), \
             ('calls', 'calls_by_callee', '50000 50000 4 4 1 1'), \
             ('calls', 'calls_by_task_time', '50000 50000 50000 1 1 1 1 1'), \
             ('calls', 'calls_by_alt_id', '0 0 0'), \
             ('calls', 'calls_by_external_id', '50000 50000 1'), \
             ('calls', 'calls_task_talk', '50000 50000 50000 3572 3 1'), \
             ('calls', 'calls_task_stats', '50000 50000 50000 12500 391 79 23 8 8 6 2 1 1 1 1'), \
             ('calls', 'calls_by_sync_time', '50000 50000 1'), \
             ('calls', 'calls_by_hangup_time', '50000 50000 1'), \
             ('calls', 'calls_by_answer_time', '50000 50000 3'), \
             ('calls', 'calls_by_intent', '50000 50000 10000 1'), \
             ('calls', 'calls_by_talk', '50000 50000 3 1'), \
             ('calls', 'calls_by_caller', '50000 50000 50000'), \
             ('calls', 'calls_by_time', '50000 50000 1 1'), \
             ('calls', 'sqlite_autoindex_calls_2', '50000 50000 50000 1'), \
             ('calls', 'sqlite_autoindex_calls_1', '50000 50000 1')",
        ] {
            sqlx::query(statement)
                .execute(&mut writer)
                .await
                .expect(statement);
        }
        writer.close().await.expect("close");

        let mut qb =
            QueryBuilder::<Sqlite>::new(format!("EXPLAIN QUERY PLAN {}", super::SELECT_CALLS));
        let filter = CallFilter {
            phone: Some("+8613800138000".into()),
            ..Default::default()
        };
        super::push_where(&mut qb, "t1", &filter);
        push_page(&mut qb, CallOrder::CallTimeDesc, None, 16, false);
        let mut reader = SqliteConnection::connect(&url).await.expect("connect");
        let plan: Vec<String> = qb
            .build()
            .fetch_all(&mut reader)
            .await
            .expect("a plan")
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect();
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH p USING INDEX calls_by_caller")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN p")),
            "{plan:?}"
        );
    }
}
