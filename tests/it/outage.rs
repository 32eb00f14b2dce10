//! A PostgreSQL outage under load: callscope runs on a PostgreSQL instance of
//! its own (initdb + pg_ctl in a temporary directory, never the shared
//! server), which is stopped while writers upsert. RPCs must answer
//! UNAVAILABLE within their deadline, health must turn NOT_SERVING; when the
//! instance is back, the same callscope must recover by itself and every
//! acknowledged call must be there.
//!
//! The instance listens on a port picked free at run time (never a fixed
//! one). Without the PostgreSQL binaries the test is ignored (failed under
//! `CI=true`); it runs alone, not beside the other tests, since it measures
//! latencies.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callscope::proto::{self, ListCallsRequest, UpsertCallsRequest};
use libtest_mimic::Trial;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{self, Sharing, block_on, trial};
use crate::pg_cluster::{PgInstance, postgres_binaries};

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "outage::postgres_outage_answers_unavailable_and_loses_nothing_acknowledged".to_owned(),
        &[postgres_binaries],
        Sharing::Alone,
        || {
            block_on(
                Some(4),
                postgres_outage_answers_unavailable_and_loses_nothing_acknowledged(),
            )
        },
    )]
}

/// The deadline every RPC of the test carries.
const DEADLINE: Duration = Duration::from_secs(3);
/// What an answer may take beyond its deadline before we call it a hang.
const SLACK: Duration = Duration::from_millis(500);
const WRITERS: usize = 4;
const CALLS_PER_BATCH: usize = 20;

/// One answered RPC: which phase it was sent in, its code and how long it took.
#[derive(Debug, Clone)]
struct Answer {
    phase: Phase,
    code: Code,
    latency: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Up,
    Down,
    Back,
}

struct Shared {
    phase: Mutex<Phase>,
    stop: AtomicBool,
    acknowledged: Mutex<Vec<String>>,
    answers: Mutex<Vec<Answer>>,
}

fn batch(writer: usize, seq: usize) -> Vec<proto::Call> {
    (0..CALLS_PER_BATCH)
        .map(|i| {
            let mut call = helpers::call(
                &format!("outage-w{writer}-b{seq}-{i}"),
                &format!(
                    "+86138{:08}",
                    (writer * 1_000_000 + seq * 100 + i) % 100_000_000
                ),
                "2026-11-20T08:00:00Z",
            );
            call.task_id = format!("outage-task-{writer}");
            call.score = Some((i * 25) as i32);
            call.tags = vec![helpers::tag("price", &["interested"])];
            call
        })
        .collect()
}

async fn writer(id: usize, channel: Channel, shared: Arc<Shared>) {
    let mut client = proto::ingest_service_client::IngestServiceClient::new(channel);
    let mut seq = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        let phase = *shared.phase.lock().unwrap();
        let calls = batch(id, seq);
        let ids: Vec<String> = calls.iter().map(|c| c.external_id.clone()).collect();
        seq += 1;
        let mut request = tonic::Request::new(UpsertCallsRequest { calls });
        request.set_timeout(DEADLINE);
        let started = Instant::now();
        let result = client.upsert_calls(request).await;
        let latency = started.elapsed();
        let code = match &result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        if result.is_ok() {
            shared.acknowledged.lock().unwrap().extend(ids);
        }
        shared.answers.lock().unwrap().push(Answer {
            phase,
            code,
            latency,
        });
        if code != Code::Ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn health(channel: &Channel, service: &str) -> Option<ServingStatus> {
    let mut client = HealthClient::new(channel.clone());
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(DEADLINE);
    let response = client.check(request).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// Waits until both the overall health and CallService's are `want`; answers
/// how long it took.
async fn wait_health(channel: &Channel, want: ServingStatus, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let all = health(channel, "").await;
        let calls = health(channel, "callscope.v1.CallService").await;
        if all == Some(want) && calls == Some(want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "health still {all:?}/{calls:?} after {limit:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until at least `n` more RPCs of `phase` answered with `code`.
async fn wait_answers(shared: &Shared, phase: Phase, code: Code, n: usize, limit: Duration) {
    let started = Instant::now();
    loop {
        let seen = shared
            .answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.phase == phase && a.code == code)
            .count();
        if seen >= n {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "only {seen} {code:?} answers in phase {phase:?} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn list_calls(
    channel: &Channel,
    page_token: String,
) -> (Result<proto::ListCallsResponse, tonic::Status>, Duration) {
    let mut client = proto::call_service_client::CallServiceClient::new(channel.clone());
    let mut request = tonic::Request::new(ListCallsRequest {
        page_size: 1000,
        page_token,
        ..Default::default()
    });
    request.set_timeout(DEADLINE);
    let started = Instant::now();
    let result = client.list_calls(request).await.map(|r| r.into_inner());
    (result, started.elapsed())
}

async fn postgres_outage_answers_unavailable_and_loses_nothing_acknowledged() {
    let test_started = Instant::now();
    let mut instance = PgInstance::init().unwrap_or_else(|why| panic!("{why}"));
    instance.start_on_free_port();
    let url = instance.url();
    let app = helpers::spawn_app_with(|c| {
        c.database_url = url;
        c.db_acquire_timeout_ms = 1_000;
        c.health_interval_ms = 250;
    })
    .await;
    let channel = app.channel.clone();
    wait_health(&channel, ServingStatus::Serving, Duration::from_secs(5)).await;

    let shared = Arc::new(Shared {
        phase: Mutex::new(Phase::Up),
        stop: AtomicBool::new(false),
        acknowledged: Mutex::new(Vec::new()),
        answers: Mutex::new(Vec::new()),
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(id, channel.clone(), shared.clone())))
        .collect();

    // Up: every writer gets some batches in.
    wait_answers(
        &shared,
        Phase::Up,
        Code::Ok,
        4 * WRITERS,
        Duration::from_secs(15),
    )
    .await;

    // Down: stop the instance under load.
    *shared.phase.lock().unwrap() = Phase::Down;
    let stopped_at = Instant::now();
    instance.stop("fast").expect("pg_ctl stop");
    let stop_took = stopped_at.elapsed();
    let not_serving_after =
        wait_health(&channel, ServingStatus::NotServing, Duration::from_secs(5)).await;
    wait_answers(
        &shared,
        Phase::Down,
        Code::Unavailable,
        2 * WRITERS,
        Duration::from_secs(10),
    )
    .await;
    let (listed, list_latency) = list_calls(&channel, String::new()).await;
    let status = listed.expect_err("ListCalls while the database is down");
    assert_eq!(status.code(), Code::Unavailable, "ListCalls: {status:?}");
    assert!(
        list_latency < DEADLINE + SLACK,
        "ListCalls took {list_latency:?}"
    );
    // Fail fast: while health knows the database is down, RPCs are answered
    // UNAVAILABLE with RetryInfo at once instead of waiting for a connection
    // (only a trickle of probes, one per health interval, waits).
    let mut fast = 0;
    for _ in 0..5 {
        let (listed, latency) = list_calls(&channel, String::new()).await;
        let status = listed.expect_err("ListCalls while the database is down");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let retry = tonic_types::StatusExt::get_details_retry_info(&status);
        assert!(
            retry.and_then(|r| r.retry_delay).is_some(),
            "RetryInfo: {status:?}"
        );
        if latency < Duration::from_millis(200) {
            fast += 1;
        }
    }
    assert!(
        fast >= 4,
        "only {fast} of 5 RPCs answered at once while down"
    );

    // Back: the same callscope recovers without a restart.
    *shared.phase.lock().unwrap() = Phase::Back;
    instance.start();
    let serving_after =
        wait_health(&channel, ServingStatus::Serving, Duration::from_secs(10)).await;
    wait_answers(
        &shared,
        Phase::Back,
        Code::Ok,
        2 * WRITERS,
        Duration::from_secs(10),
    )
    .await;
    shared.stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer task");
    }

    let answers = shared.answers.lock().unwrap().clone();
    for phase in [Phase::Up, Phase::Down, Phase::Back] {
        let of_phase: Vec<&Answer> = answers.iter().filter(|a| a.phase == phase).collect();
        let count = |code| of_phase.iter().filter(|a| a.code == code).count();
        let slowest = of_phase.iter().map(|a| a.latency).max().unwrap_or_default();
        eprintln!(
            "{phase:?}: {} answers, {} OK, {} UNAVAILABLE, slowest {slowest:?}",
            of_phase.len(),
            count(Code::Ok),
            count(Code::Unavailable)
        );
    }
    eprintln!(
        "pg_ctl stop took {stop_took:?}; NOT_SERVING {not_serving_after:?} after it; \
         SERVING {serving_after:?} after the restart; ListCalls while down {list_latency:?}"
    );
    for answer in &answers {
        assert!(
            matches!(answer.code, Code::Ok | Code::Unavailable),
            "an RPC answered {:?} in phase {:?} (expected OK or UNAVAILABLE)",
            answer.code,
            answer.phase
        );
        assert!(
            answer.latency < DEADLINE + SLACK,
            "an RPC took {:?} in phase {:?}",
            answer.latency,
            answer.phase
        );
    }

    // Nothing acknowledged is lost: walk every page.
    let acknowledged: HashSet<String> = shared
        .acknowledged
        .lock()
        .unwrap()
        .iter()
        .cloned()
        .collect();
    let mut stored = HashSet::new();
    let mut token = String::new();
    loop {
        let (page, _) = list_calls(&channel, token).await;
        let page = page.expect("list calls after recovery");
        stored.extend(page.calls.into_iter().map(|c| c.external_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let missing: Vec<&String> = acknowledged.difference(&stored).collect();
    eprintln!(
        "{} calls acknowledged, {} stored, {} missing",
        acknowledged.len(),
        stored.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(
        test_started.elapsed() < Duration::from_secs(60),
        "the outage test took {:?}",
        test_started.elapsed()
    );
    app.stop().await;
}
