//! The NATS JetStream sink against the local NATS server (127.0.0.1:4222):
//! every event of the log arrives once, in order, on
//! `<prefix>.<tenant>.calls.<type>`, across a server killed mid-stream and a
//! new one on the same database that re-sends what the first had not
//! committed; the new server's `/metrics` count what was published and what
//! JetStream dropped as duplicates. Each run uses a stream and subject prefix
//! of its own, so parallel runs do not meet.

use std::time::Duration;

use async_nats::jetstream;

use crate::helpers::{
    Backend, Sharing, TestApp, block_on, call, execute, postgres_url, sample, scrape,
    spawn_app_on_with, spawn_app_with, trial, ts,
};
use callscope::config::ServeConfig;
use callscope::proto::{
    self, CallFilter, DeleteCallsRequest, admin_service_client::AdminServiceClient,
};

const NATS_URL: &str = "nats://127.0.0.1:4222";

/// NATS answering on 127.0.0.1:4222.
fn nats() -> Result<(), String> {
    let addr = "127.0.0.1:4222".parse().map_err(|e| format!("{e}"))?;
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map(|_| ())
        .map_err(|e| format!("NATS is not reachable at {NATS_URL}: {e}"))
}

fn configure(c: &mut ServeConfig, stream: &str, prefix: &str) {
    c.outgoing.events_nats_url = Some(NATS_URL.to_owned());
    c.outgoing.events_nats_stream = stream.to_owned();
    c.outgoing.events_nats_subject_prefix = prefix.to_owned();
    c.outgoing.events_poll_ms = 50;
}

fn task_call(id: &str, task: &str, minute: u32) -> proto::Call {
    proto::Call {
        task_id: task.to_owned(),
        ..call(
            id,
            "+8613800138000",
            &format!("2025-01-01T10:{minute:02}:00Z"),
        )
    }
}

/// Messages of the stream, in stream order: (subject, event id header,
/// message id header, type, external id, event id of the body).
async fn stream_messages(js: &jetstream::Context, name: &str) -> Vec<[String; 6]> {
    let Ok(mut stream) = js.get_stream(name).await else {
        return Vec::new();
    };
    let Ok(info) = stream.info().await else {
        return Vec::new();
    };
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut out = Vec::new();
    for seq in first.max(1)..=last {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let header = |name: &str| {
            m.headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
        out.push([
            m.subject.to_string(),
            header("Callscope-Event-Id"),
            header("Nats-Msg-Id"),
            body["type"].as_str().unwrap_or("?").to_owned(),
            body["call"]["externalId"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
            body["eventId"].as_str().unwrap_or("?").to_owned(),
        ]);
    }
    out
}

async fn wait_for_messages(js: &jetstream::Context, name: &str, n: usize) -> Vec<[String; 6]> {
    let start = std::time::Instant::now();
    loop {
        let messages = stream_messages(js, name).await;
        if messages.len() >= n {
            return messages;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of {n} messages arrived: {messages:?}",
            messages.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn every_event_once_in_order_across_a_crash(backend: Backend) {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let stream = format!("CSTEST_{}", &run[..16]);
    let prefix = format!("cstest{}", &run[..16]);
    let client = async_nats::connect(NATS_URL)
        .await
        .expect("connect to NATS");
    let js = jetstream::new(client);

    let mut first: TestApp = spawn_app_on_with(backend, |c| configure(c, &stream, &prefix)).await;
    // The model: what the log must hold, in commit order.
    let mut want: Vec<(&str, String)> = Vec::new();
    let batch: Vec<proto::Call> = (0..40)
        .map(|i| task_call(&format!("a{i:02}"), "t1", i % 60))
        .collect();
    first.upsert(batch.clone()).await;
    want.extend(
        batch
            .iter()
            .map(|c| ("CALL_EVENT_TYPE_CREATED", c.external_id.clone())),
    );
    // Killed as soon as the first messages are in: mid-stream, before or
    // after committing its position.
    wait_for_messages(&js, &stream, 1).await;
    first.kill();
    // What the first server got into the stream, once its connection has
    // drained.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from_first = stream_messages(&js, &stream).await.len();
    // As if it died between JetStream's acknowledgements and its commit:
    // the second server publishes all of those again, and JetStream must
    // drop every copy by its Nats-Msg-Id.
    execute(
        &first.database_url,
        "UPDATE event_sinks SET position = 0 WHERE sink = 'nats'",
    )
    .await;

    let database_url = first.database_url.clone();
    let mut second = spawn_app_with(|c| {
        configure(c, &stream, &prefix);
        c.database_url = database_url;
    })
    .await;
    let mut newer = task_call("a03", "t1", 3);
    newer.update_time = Some(ts("2025-02-01T00:00:00Z"));
    second
        .upsert(vec![newer, task_call("gone", "t9", 59)])
        .await;
    want.push(("CALL_EVENT_TYPE_UPDATED", "a03".to_owned()));
    want.push(("CALL_EVENT_TYPE_CREATED", "gone".to_owned()));
    AdminServiceClient::new(second.channel.clone())
        .delete_calls(DeleteCallsRequest {
            filter: Some(CallFilter {
                task_ids: vec!["t9".into()],
                ..Default::default()
            }),
            validate_only: false,
        })
        .await
        .expect("delete");
    want.push(("CALL_EVENT_TYPE_DELETED", "gone".to_owned()));

    let messages = wait_for_messages(&js, &stream, want.len()).await;
    // Nothing more trickles in: no duplicate got past JetStream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages_after = stream_messages(&js, &stream).await;
    let _ = js.delete_stream(&stream).await;
    assert_eq!(messages_after.len(), messages.len());

    let got: Vec<(&str, String)> = messages
        .iter()
        .map(|m| {
            let kind = match m[3].as_str() {
                "CALL_EVENT_TYPE_CREATED" => "CALL_EVENT_TYPE_CREATED",
                "CALL_EVENT_TYPE_UPDATED" => "CALL_EVENT_TYPE_UPDATED",
                "CALL_EVENT_TYPE_DELETED" => "CALL_EVENT_TYPE_DELETED",
                _ => "?",
            };
            (kind, m[4].clone())
        })
        .collect();
    assert_eq!(got, want);

    // The second server's /metrics: every event it stored counted once as
    // published, every copy of the first server's events JetStream dropped
    // as a duplicate; nothing failed; connected, and nothing left to publish.
    let figures = async || {
        let text = scrape(second.http_addr).await;
        let published = |outcome: &str| {
            sample(
                &text,
                "callscope_nats_published_total",
                &[("tenant", "default"), ("outcome", outcome)],
            )
            .unwrap_or(0.0)
        };
        (
            published("published"),
            published("duplicate"),
            published("failed"),
            sample(&text, "callscope_nats_lag_events", &[("tenant", "default")]),
            sample(&text, "callscope_nats_connected", &[]),
        )
    };
    let (published, duplicate, failed, lag, connected) = figures().await;
    assert_eq!(published, (want.len() - from_first) as f64);
    assert_eq!(duplicate, from_first as f64);
    assert_eq!(failed, 0.0);
    assert_eq!(connected, Some(1.0));
    let start = std::time::Instant::now();
    let mut lag = lag;
    while lag != Some(0.0) {
        assert!(start.elapsed() < Duration::from_secs(10), "lag {lag:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        lag = figures().await.3;
    }
    for (i, m) in messages.iter().enumerate() {
        let position = (i + 1).to_string();
        let word = m[3].trim_start_matches("CALL_EVENT_TYPE_").to_lowercase();
        assert_eq!(m[0], format!("{prefix}.default.calls.{word}"));
        assert_eq!(m[1], position, "Callscope-Event-Id");
        assert_eq!(m[2], format!("default/{position}"), "Nats-Msg-Id");
        assert_eq!(m[5], position, "eventId");
    }
    second.stop().await;
}

pub fn trials() -> Vec<libtest_mimic::Trial> {
    [
        (
            Backend::Sqlite,
            "sqlite",
            vec![nats as crate::helpers::Prerequisite],
        ),
        (Backend::Postgres, "postgres", vec![nats, postgres_url]),
    ]
    .into_iter()
    .map(|(backend, label, needs)| {
        trial(
            format!("nats_sink::{label}::every_event_once_in_order_across_a_crash"),
            &needs,
            Sharing::Parallel,
            move || block_on(None, every_event_once_in_order_across_a_crash(backend)),
        )
    })
    .collect()
}
