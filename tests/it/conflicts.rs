//! Writes that lose a race with a concurrent transaction: PostgreSQL breaks
//! a deadlock by rolling one transaction back, and the service runs that
//! write again instead of answering UNAVAILABLE.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use sqlx::{Executor, PgConnection};
use tonic::Status;

use callscope::proto::{
    self, GetCallRequest, ImportRecordsRequest, ListRejectedRecordsRequest, Source,
};

use crate::helpers::{
    Backend, Sharing, TestApp, block_on, call, fixture, http_get, postgres_url, sample,
    spawn_app_on_with, trial,
};

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "conflicts::postgres::a_batch_that_deadlocks_is_run_again".to_owned(),
            &[postgres_url],
            Sharing::Parallel,
            || block_on(None, a_batch_that_deadlocks_is_run_again()),
        ),
        trial(
            "conflicts::postgres::vendor_records_that_deadlock_are_run_again_and_quarantined_once"
                .to_owned(),
            &[postgres_url],
            Sharing::Parallel,
            || {
                block_on(
                    None,
                    vendor_records_that_deadlock_are_run_again_and_quarantined_once(),
                )
            },
        ),
    ]
}

/// A write the test starts again in each round of [`deadlock`].
type Write<T> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>>;

/// Runs `write`, which stores new values of the stored calls `earlier` and
/// `later` (ids in that order), into a deadlock, and answers what the
/// client got. Another transaction holds `later`; the write locks `earlier`
/// (the store locks a batch's calls in id order) and waits for `later`;
/// then the other transaction asks for `earlier`: a cycle, which PostgreSQL
/// breaks by rolling back the write, whose wait began first and whose
/// deadlock check (after the server's `deadlock_timeout`) comes first. The
/// other transaction gets `earlier` only once the write let go of it, so
/// it getting it proves the write was rolled back.
///
/// PostgreSQL checks a wait for a deadlock once. Should that check come
/// before the other transaction's request (a machine slow enough to take
/// the server's `deadlock_timeout` between the two), the other transaction
/// gives up after its `lock_timeout` and the round is run again.
async fn deadlock<T: Send + 'static>(
    app: &TestApp,
    earlier: &str,
    later: &str,
    write: Write<T>,
) -> Result<T, Status> {
    let mut other = app.admin_connection().await;
    let mut watcher = app.admin_connection().await;
    let lock = |id: &str| {
        sqlx::query("SELECT 1 FROM calls WHERE call_id = $1 FOR UPDATE").bind(id.to_owned())
    };
    for _round in 0..3 {
        other
            .execute("BEGIN; SET LOCAL deadlock_timeout = '60s'; SET LOCAL lock_timeout = '10s'")
            .await
            .expect("begin");
        lock(later)
            .execute(&mut other)
            .await
            .expect("lock the later call");
        let written = tokio::spawn(write());
        wait_for_a_waiting_lock(&mut watcher).await;
        let got_earlier = lock(earlier).execute(&mut other).await;
        other.execute("ROLLBACK").await.expect("rollback");
        let answer = written.await.expect("the write's task");
        match got_earlier {
            Ok(_) => return answer,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => continue,
            Err(e) => panic!("locking the earlier call: {e}"),
        }
    }
    panic!("no round made a deadlock")
}

/// Until a session of this database waits for a lock.
async fn wait_for_a_waiting_lock(watcher: &mut PgConnection) {
    let started = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE NOT l.granted AND a.datname = current_database()",
        )
        .fetch_one(&mut *watcher)
        .await
        .expect("read pg_locks");
        if waiting > 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the write never waited for the later call"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The server's count of writes of `operation` run again.
async fn retries(app: &TestApp, operation: &str) -> f64 {
    let (_, metrics) = http_get(app.http_addr, "/metrics").await;
    sample(
        &metrics,
        "callscope_write_retries_total",
        &[("operation", operation)],
    )
    .unwrap_or(0.0)
}

/// The stored call `id`.
async fn stored_call(app: &TestApp, id: &str) -> proto::Call {
    app.calls
        .clone()
        .get_call(GetCallRequest {
            call_id: id.to_owned(),
            ..Default::default()
        })
        .await
        .expect("get call")
        .into_inner()
}

/// The two ids, sorted.
fn in_order(ids: &[String]) -> (String, String) {
    let mut ids = ids.to_vec();
    ids.sort();
    (ids[0].clone(), ids[1].clone())
}

/// An UpsertCalls batch of two stored calls, made to deadlock, is answered
/// OK after its second run, with its values stored, and the second run is
/// counted.
async fn a_batch_that_deadlocks_is_run_again() {
    let mut app = spawn_app_on_with(Backend::Postgres, |_| {}).await;
    let stored = app
        .upsert(vec![
            call("race-1", "13800000001", "2026-11-01T10:00:00Z"),
            call("race-2", "13800000002", "2026-11-01T10:05:00Z"),
        ])
        .await;
    let (earlier, later) = in_order(&stored.call_ids);

    let ingest = app.ingest.clone();
    let write: Write<proto::UpsertCallsResponse> = Box::new(move || {
        let mut ingest = ingest.clone();
        Box::pin(async move {
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
                .map(tonic::Response::into_inner)
        })
    });
    let answer = deadlock(&app, &earlier, &later, write)
        .await
        .expect("the batch is answered OK after its second run");
    assert_eq!(answer.updated, 2, "{answer:?}");
    for id in [&earlier, &later] {
        assert_eq!(stored_call(&app, id).await.customer_name, "after the race");
    }
    assert!(retries(&app, "upsert_calls").await >= 1.0);
}

/// ImportRecords with two records of stored calls and one refused record,
/// made to deadlock: the refused record's transaction commits before the
/// calls' one loses, and the second run keeps it again. The request is
/// answered OK, the calls have their new values and the quarantine holds
/// the refused record once.
async fn vendor_records_that_deadlock_are_run_again_and_quarantined_once() {
    let mut app = spawn_app_on_with(Backend::Postgres, |_| {}).await;
    let record = |voice_id: &str, reason: &str| {
        let mut push: serde_json::Value =
            serde_json::from_str(&fixture("laaffic/push.json")).expect("fixture is JSON");
        push["voiceId"] = voice_id.into();
        push["terminationReason"] = reason.into();
        push.to_string()
    };
    let import = |records: Vec<String>| ImportRecordsRequest {
        source: Source::Laaffic as i32,
        records,
        ..Default::default()
    };
    let first = app
        .ingest
        .import_records(import(vec![
            record("race-voice-1", "before"),
            record("race-voice-2", "before"),
        ]))
        .await
        .expect("import")
        .into_inner();
    let ids: Vec<String> = first
        .results
        .iter()
        .flat_map(|r| r.call_ids.clone())
        .collect();
    assert_eq!(ids.len(), 2, "{first:?}");
    let (earlier, later) = in_order(&ids);

    let ingest = app.ingest.clone();
    let request = import(vec![
        record("race-voice-1", "after the race"),
        record("race-voice-2", "after the race"),
        "not a record".to_owned(),
    ]);
    let write: Write<proto::ImportRecordsResponse> = Box::new(move || {
        let (mut ingest, request) = (ingest.clone(), request.clone());
        Box::pin(async move {
            ingest
                .import_records(request)
                .await
                .map(tonic::Response::into_inner)
        })
    });
    let answer = deadlock(&app, &earlier, &later, write)
        .await
        .expect("the records are answered OK after their second run");
    assert_eq!(answer.results.len(), 3, "{answer:?}");
    assert_eq!(
        answer.results[2].outcome,
        proto::RecordOutcome::Rejected as i32,
        "{answer:?}"
    );
    for id in [&earlier, &later] {
        let stored = stored_call(&app, id).await;
        assert_eq!(stored.hangup_cause, "after the race", "{stored:?}");
    }
    let rejected = app
        .ingest
        .list_rejected_records(ListRejectedRecordsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list rejected")
        .into_inner()
        .records;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].payload, "not a record");
    assert!(retries(&app, "ingest").await >= 1.0);
}
