//! Reads on a streaming replica (`--database-read-url`): a primary and a
//! `pg_basebackup -R` replica of it, both throwaway instances of the test's
//! own on ports picked free at run time. With the replica's replay paused,
//! what each RPC answers shows which server it read: a listing, stats and the
//! catalog lag (replica), GetCall and subscriptions do not (primary). A URL
//! that is not a replica, or a replica beside SQLite, is refused at start.
//!
//! Without the PostgreSQL binaries the trials are ignored (failed under
//! `CI=true`).

use std::time::{Duration, Instant};

use callscope::config::ServeConfig;
use callscope::proto::{
    self, CallFilter, CreateSubscriptionRequest, GetCallRequest, GetCallStatsRequest,
    ListCallsRequest, ListSubscriptionsRequest, ListTasksRequest,
    catalog_service_client::CatalogServiceClient,
    subscription_service_client::SubscriptionServiceClient,
};
use libtest_mimic::Trial;

use crate::helpers::{self, Sharing, TestApp, block_on, trial};
use crate::pg_cluster::{PgInstance, postgres_binaries};

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "replica::lagging_reads_go_to_the_replica_and_own_writes_to_the_primary".to_owned(),
            &[postgres_binaries],
            Sharing::Parallel,
            || {
                block_on(
                    Some(2),
                    lagging_reads_go_to_the_replica_and_own_writes_to_the_primary(),
                )
            },
        ),
        trial(
            "replica::a_read_url_that_is_not_a_replica_is_refused_at_start".to_owned(),
            &[postgres_binaries],
            Sharing::Parallel,
            || {
                block_on(
                    Some(2),
                    a_read_url_that_is_not_a_replica_is_refused_at_start(),
                )
            },
        ),
    ]
}

/// A primary and its streaming replica, both running.
fn primary_and_replica() -> (PgInstance, PgInstance) {
    let mut primary = PgInstance::init().unwrap_or_else(|why| panic!("{why}"));
    primary.start_on_free_port();
    let mut replica = PgInstance::replica_of(&primary).unwrap_or_else(|why| panic!("{why}"));
    replica.start_on_free_port();
    (primary, replica)
}

fn campaign_call(external_id: &str, phone: &str) -> proto::Call {
    let mut call = helpers::call(external_id, phone, "2026-11-20T08:00:00Z");
    call.task_id = "replica-campaign".to_owned();
    call
}

async fn listed(app: &mut TestApp) -> Vec<String> {
    app.external_ids(CallFilter {
        task_ids: vec!["replica-campaign".to_owned()],
        ..Default::default()
    })
    .await
}

async fn counted(app: &mut TestApp) -> i64 {
    app.analytics
        .get_call_stats(GetCallStatsRequest {
            filter: Some(CallFilter {
                task_ids: vec!["replica-campaign".to_owned()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("stats")
        .into_inner()
        .total_calls
}

/// Waits until the replica has replayed everything the primary has written
/// so far (the server's migrations, one transaction: until its commit
/// replays, the replica has no tables to read).
async fn until_replayed(primary_url: &str, replica_url: &str) {
    let mut primary = <sqlx::PgConnection as sqlx::Connection>::connect(primary_url)
        .await
        .expect("connect to the primary");
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&mut primary)
        .await
        .expect("primary LSN");
    let mut replica = <sqlx::PgConnection as sqlx::Connection>::connect(replica_url)
        .await
        .expect("connect to the replica");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let replayed: bool =
            sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= CAST($1 AS pg_lsn)")
                .bind(&lsn)
                .fetch_one(&mut replica)
                .await
                .expect("replica LSN");
        if replayed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never replayed {lsn}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until the listing holds `expected`: the replica has replayed.
async fn until_listed(app: &mut TestApp, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut ids = listed(app).await;
        ids.sort();
        if ids == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never showed {expected:?}: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn lagging_reads_go_to_the_replica_and_own_writes_to_the_primary() {
    let (primary, replica) = primary_and_replica();
    let (primary_url, replica_url) = (primary.url(), replica.url());
    let mut app = helpers::spawn_app_with(|c| {
        c.database_url = primary_url.clone();
        c.database_read_url = Some(replica_url.clone());
    })
    .await;
    until_replayed(&primary_url, &replica_url).await;

    // Replaying: a write shows on the replica's side within moments.
    let first = app
        .upsert(vec![campaign_call("replica-1", "+8613800000001")])
        .await;
    let first_id = first.call_ids[0].clone();
    until_listed(&mut app, &["replica-1"]).await;
    assert_eq!(counted(&mut app).await, 1);

    // Replay paused: the replica stops at this point.
    helpers::execute(&replica_url, "SELECT pg_wal_replay_pause()").await;
    let second = app
        .upsert(vec![campaign_call("replica-2", "+8613800000002")])
        .await;
    let second_id = second.call_ids[0].clone();
    let mut subscriptions = SubscriptionServiceClient::new(app.channel.clone());
    let created = subscriptions
        .create_subscription(CreateSubscriptionRequest {
            url: "https://crm.example.com/callscope/events".to_owned(),
            ..Default::default()
        })
        .await
        .expect("create subscription")
        .into_inner();

    // Reads of one's own write: on the primary, so they see it at once.
    let got = app
        .calls
        .get_call(GetCallRequest {
            call_id: second_id.clone(),
            ..Default::default()
        })
        .await
        .expect("GetCall right after UpsertCalls")
        .into_inner();
    assert_eq!(got.external_id, "replica-2");
    let by_vendor_id = app
        .calls
        .get_call(GetCallRequest {
            source: proto::Source::Api as i32,
            external_id: "replica-2".to_owned(),
            ..Default::default()
        })
        .await
        .expect("GetCall by the vendor's id right after UpsertCalls")
        .into_inner();
    assert_eq!(by_vendor_id.call_id, second_id);
    let listed_subscriptions = subscriptions
        .list_subscriptions(ListSubscriptionsRequest::default())
        .await
        .expect("list subscriptions")
        .into_inner()
        .subscriptions;
    assert_eq!(
        listed_subscriptions
            .iter()
            .map(|s| s.subscription_id.as_str())
            .collect::<Vec<_>>(),
        vec![created.subscription_id.as_str()]
    );

    // The reads that may lag: the replica, still without the second call
    // (given time to be wrong).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(listed(&mut app).await, vec!["replica-1"]);
    assert_eq!(counted(&mut app).await, 1);
    let tasks = CatalogServiceClient::new(app.channel.clone())
        .list_tasks(ListTasksRequest::default())
        .await
        .expect("list tasks")
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let total = app
        .calls
        .list_calls(ListCallsRequest {
            include_total: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .total_size;
    assert_eq!(total, 1);

    // Replay resumed: the replica catches up, and nothing was lost.
    helpers::execute(&replica_url, "SELECT pg_wal_replay_resume()").await;
    until_listed(&mut app, &["replica-1", "replica-2"]).await;
    assert_eq!(counted(&mut app).await, 2);
    let got_first = app
        .calls
        .get_call(GetCallRequest {
            call_id: first_id,
            ..Default::default()
        })
        .await
        .expect("first call")
        .into_inner();
    assert_eq!(got_first.external_id, "replica-1");
    app.stop().await;
    drop(replica);
    drop(primary);
}

async fn a_read_url_that_is_not_a_replica_is_refused_at_start() {
    let mut primary = PgInstance::init().unwrap_or_else(|why| panic!("{why}"));
    primary.start_on_free_port();
    // The primary itself as the "replica": its reads would be fine, but a
    // writable server is not what the flag means, and is most likely a
    // mistake (another primary, whose data never follows this one's).
    let mut config = ServeConfig::new(primary.url(), "127.0.0.1:0".parse().unwrap());
    config.database_read_url = Some(primary.url());
    let err = match callscope::Application::build(config).await {
        Ok(_) => panic!("a writable read url was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("is not a read replica"), "{err}");

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("c.db").display());
    let mut config = ServeConfig::new(sqlite, "127.0.0.1:0".parse().unwrap());
    config.database_read_url = Some(primary.url());
    let err = match callscope::Application::build(config).await {
        Ok(_) => panic!("a read replica beside SQLite was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("a read replica needs PostgreSQL"), "{err}");
}
