//! PostgreSQL statistics without autovacuum: the server analyses the tables
//! its writes grew far past their last ANALYZE (the PostgreSQL `AFTER_WRITE`
//! in src/store/dialect.rs). On a table never analysed, the look-up of a
//! batch's external ids read the tenant's every call (BENCHMARKS.md, the
//! eleventh session of 2026-12-01).

use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::helpers::{Backend, Sharing, block_on, call, postgres_url, spawn_app_on_with, trial};

/// Calls written at most before the trial gives up on an ANALYZE: the
/// server checks after 500, 1,000, 2,000, 4,000, 8,000 and 16,000 rows
/// written, in the background, and the counts it reads lag a second or more
/// behind the writes.
const MAX_CALLS: usize = 16_000;

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "statistics::postgres::a_server_analyses_the_tables_it_grew_without_autovacuum".to_owned(),
        &[postgres_url],
        Sharing::Parallel,
        || {
            block_on(
                None,
                a_server_analyses_the_tables_it_grew_without_autovacuum(),
            )
        },
    )]
}

async fn a_server_analyses_the_tables_it_grew_without_autovacuum() {
    let mut app = spawn_app_on_with(Backend::Postgres, |_| {}).await;
    // A superuser's connection to the test database: pg_stats hides a table
    // under row-level security from its role.
    let mut admin = app.admin_connection().await;
    // Whatever the cluster's setting, only the server can analyse `calls`.
    sqlx::query("ALTER TABLE calls SET (autovacuum_enabled = false)")
        .execute(&mut admin)
        .await
        .expect("turn autovacuum off for calls");
    let started = Instant::now();
    let mut written = 0;
    let analysed = loop {
        if written < MAX_CALLS {
            let batch = (written..written + 500)
                .map(|n| {
                    call(
                        &format!("ext-{n:06}"),
                        "13800000000",
                        "2026-11-01T08:00:00Z",
                    )
                })
                .collect();
            app.upsert(batch).await;
            written += 500;
        } else {
            // The last check's ANALYZE may still be running.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let analysed: bool = sqlx::query_scalar(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'calls'",
        )
        .fetch_one(&mut admin)
        .await
        .expect("read the table's statistics state");
        if analysed || started.elapsed() > Duration::from_secs(120) {
            break analysed;
        }
    };
    assert!(
        analysed,
        "calls was not analysed after {written} calls written in {:?}",
        started.elapsed()
    );

    // What the planner lacked: how many distinct values each key column has.
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_stats WHERE tablename = 'calls' \
         AND attname IN ('tenant_id', 'source', 'external_id') ORDER BY attname",
    )
    .fetch_all(&mut admin)
    .await
    .expect("read the gathered statistics");
    assert_eq!(columns, ["external_id", "source", "tenant_id"]);

    // Every column a filter, a sort, a join, a look-up or a breakdown reads
    // has statistics; the columns migration 0022 left out (read back or
    // summed only) have none.
    let gathered: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_stats WHERE tablename = 'calls' ORDER BY attname",
    )
    .fetch_all(&mut admin)
    .await
    .expect("read the gathered statistics");
    for column in PLANNED_COLUMNS {
        assert!(
            gathered.iter().any(|g| g == column),
            "no statistics for calls.{column}: {gathered:?}"
        );
    }
    let mut skipped: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'calls'::regclass \
         AND attnum > 0 AND NOT attisdropped \
         AND attname::text NOT IN (SELECT attname FROM pg_stats WHERE tablename = 'calls')",
    )
    .fetch_all(&mut admin)
    .await
    .expect("read the columns without statistics");
    skipped.sort();
    let mut expected = UNPLANNED_COLUMNS.to_vec();
    expected.sort();
    assert_eq!(skipped, expected);
}

/// The columns of `calls` that a statement of callscope's selects, joins,
/// sorts or groups on (src/store: filter_sql.rs, stats.rs, calls_write.rs'
/// look-ups, erasure).
const PLANNED_COLUMNS: [&str; 24] = [
    "tenant_id",
    "call_id",
    "source",
    "external_id",
    "alt_id",
    "task_id",
    "callee",
    "caller",
    "call_time",
    "answer_time",
    "hangup_time",
    "sync_time",
    "update_time",
    "score",
    "intent_level_id",
    "talk_ms",
    "rounds",
    "outcome",
    "hangup_by",
    "carrier",
    "province",
    "currency",
    "quality_flags",
    "attributes",
];

/// The columns of `calls` only ever read back or summed (migration 0022).
const UNPLANNED_COLUMNS: [&str; 28] = [
    "callee_raw",
    "caller_raw",
    "submit_time",
    "ring_time",
    "total_ms",
    "billed_ms",
    "vendor_status",
    "hangup_cause",
    "sip_code",
    "recording_url",
    "area_code",
    "region",
    "post_code",
    "rate",
    "base_cost",
    "settle_rate",
    "settle_cost",
    "quote_exchange",
    "bill_period",
    "dtmf",
    "recall_count",
    "recall_of",
    "customer_name",
    "line_id",
    "content_hash",
    "base_cost_currency",
    "settle_currency",
    "intent_level_snapshot",
];
