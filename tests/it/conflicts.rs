//! Writes that lose a race with a concurrent transaction: PostgreSQL breaks
//! a deadlock by rolling one transaction back, and the service runs that
//! write again instead of answering UNAVAILABLE.

use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use sqlx::Executor;

use callscope::proto::{self, GetCallRequest};

use crate::helpers::{
    Backend, Sharing, block_on, call, http_get, postgres_url, sample, spawn_app_on_with, trial,
};

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "conflicts::postgres::a_batch_that_deadlocks_is_run_again".to_owned(),
        &[postgres_url],
        Sharing::Parallel,
        || block_on(None, a_batch_that_deadlocks_is_run_again()),
    )]
}

/// Another transaction holds the later of two calls, an UpsertCalls batch
/// of both locks the earlier (the store locks a batch's calls in id order)
/// and waits for the later, then the other transaction asks for the
/// earlier: a deadlock, which PostgreSQL breaks by rolling back the batch,
/// whose wait began first. The batch is run again, so the client gets its
/// answer and the calls their new values; the server's metrics count the
/// second run (so the deadlock did happen).
async fn a_batch_that_deadlocks_is_run_again() {
    let mut app = spawn_app_on_with(Backend::Postgres, |_| {}).await;
    let first = app
        .upsert(vec![
            call("race-1", "13800000001", "2026-11-01T10:00:00Z"),
            call("race-2", "13800000002", "2026-11-01T10:05:00Z"),
        ])
        .await;
    let mut ids = first.call_ids.clone();
    ids.sort();
    let (earlier, later) = (ids[0].clone(), ids[1].clone());

    // A superuser's connection to the test database (no row-level security
    // to declare a tenant for), whose own deadlock check waits long enough
    // that the batch's runs first.
    let mut other = app.admin_connection().await;
    let mut watcher = app.admin_connection().await;
    other
        .execute("BEGIN; SET LOCAL deadlock_timeout = '30s'")
        .await
        .expect("begin");
    let lock = |id: &str| {
        sqlx::query("SELECT 1 FROM calls WHERE call_id = $1 FOR UPDATE").bind(id.to_owned())
    };
    lock(&later)
        .execute(&mut other)
        .await
        .expect("lock the later call");

    let mut ingest = app.ingest.clone();
    let batch = tokio::spawn(async move {
        let mut calls = vec![
            call("race-1", "13800000001", "2026-11-01T10:00:00Z"),
            call("race-2", "13800000002", "2026-11-01T10:05:00Z"),
        ];
        for c in &mut calls {
            c.customer_name = "after the race".to_owned();
        }
        ingest
            .upsert_calls(proto::UpsertCallsRequest { calls })
            .await
    });

    // The batch holds the earlier call and waits for the later.
    let started = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE NOT l.granted AND a.datname = current_database()",
        )
        .fetch_one(&mut watcher)
        .await
        .expect("read pg_locks");
        if waiting > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the batch never waited for the later call"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Now ask for the earlier: a cycle. The batch's deadlock check (after
    // the server's deadlock_timeout) finds it and rolls the batch back,
    // which lets this lock through.
    lock(&earlier)
        .execute(&mut other)
        .await
        .expect("lock the earlier call once the batch gave it up");
    other.execute("ROLLBACK").await.expect("rollback");

    let answer = batch
        .await
        .expect("the batch's task")
        .expect("the batch is answered OK after its second run")
        .into_inner();
    assert_eq!(answer.updated, 2, "{answer:?}");
    for id in [&earlier, &later] {
        let stored = app
            .calls
            .get_call(GetCallRequest {
                call_id: id.clone(),
                ..Default::default()
            })
            .await
            .expect("get call")
            .into_inner();
        assert_eq!(stored.customer_name, "after the race");
    }
    let (_, metrics) = http_get(app.http_addr, "/metrics").await;
    let retries = sample(
        &metrics,
        "callscope_write_retries_total",
        &[("operation", "upsert_calls")],
    );
    assert!(
        retries.is_some_and(|n| n >= 1.0),
        "the batch ran again: {retries:?}"
    );
}
