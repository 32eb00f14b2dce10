//! SubscriptionService and the webhook delivery worker against a real HTTP
//! receiver written here (axum on a local port): signatures checked with the
//! secret, refused and slow answers retried, the receiver going down and
//! coming back, and the server killed mid-delivery, on both backends.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::Code;

use crate::helpers::{TestApp, bad_fields, call, sample, scrape, spawn_app_with, ts};
use callscope::config::ServeConfig;
use callscope::proto::{
    self, CallEventType, CallFilter, CreateSubscriptionRequest, DeleteSubscriptionRequest,
    DeliveryState, ListDeliveriesRequest, ListSubscriptionsRequest,
    subscription_service_client::SubscriptionServiceClient,
};

type Client = SubscriptionServiceClient<tonic::transport::Channel>;

fn client(app: &TestApp) -> Client {
    SubscriptionServiceClient::new(app.channel.clone())
}

/// Fast retries and a short timeout; receivers on 127.0.0.1 allowed.
fn fast(c: &mut ServeConfig) {
    c.outgoing.allow_private_webhooks = true;
    c.outgoing.webhook_timeout_ms = 400;
    c.outgoing.webhook_retry_base_ms = 50;
    c.outgoing.webhook_retry_max_ms = 200;
    c.outgoing.events_poll_ms = 50;
}

/// What the receiver answers to the next requests, in order; then 200.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Answers 200 only after this long: past callscope's timeout.
    Late(Duration),
}

#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    body: serde_json::Value,
    /// Which of the secrets signed it.
    secret_index: usize,
    raw: Vec<u8>,
    signature: String,
}

#[derive(Default)]
struct Inbox {
    /// The subscriptions' signing secrets.
    secrets: Vec<String>,
    script: VecDeque<Answer>,
    /// Every request whose signature held, answered or not.
    seen: Vec<String>,
    /// Events answered 2xx, in arrival order.
    acked: Vec<Received>,
    bad_signatures: usize,
}

/// A webhook receiver as a customer would write one: verifies the
/// signature with the secret (HMAC-SHA256 over "t." + body, as Stripe's
/// libraries do), then answers.
#[derive(Clone)]
struct Receiver {
    inbox: Arc<Mutex<Inbox>>,
    addr: SocketAddr,
}

impl Receiver {
    async fn start() -> (Self, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let receiver = Self {
            inbox: Arc::default(),
            addr: listener.local_addr().expect("receiver address"),
        };
        let task = receiver.serve(listener);
        (receiver, task)
    }

    /// Listens again on the same port after [`JoinHandle::abort`].
    async fn restart(&self) -> JoinHandle<()> {
        let listener = TcpListener::bind(self.addr).await.expect("rebind receiver");
        self.serve(listener)
    }

    fn serve(&self, listener: TcpListener) -> JoinHandle<()> {
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.inbox.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn acked(&self) -> Vec<(String, String)> {
        self.inbox()
            .acked
            .iter()
            .map(|r| {
                (
                    r.body["type"].as_str().unwrap_or("?").to_owned(),
                    r.body["call"]["externalId"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned(),
                )
            })
            .collect()
    }
}

fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(sent) = t.parse::<i64>() else {
        return false;
    };
    // Stripe's tolerance: a signature older than five minutes is a replay.
    if (jiff::Timestamp::now().as_second() - sent).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::decode(v1).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    // No keep-alive: a receiver taken down refuses the next attempt.
    let close = [("connection", "close")];
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answer = {
        let mut inbox = inbox.lock().unwrap_or_else(|e| e.into_inner());
        let signature = header("callscope-signature");
        let Some(secret_index) = inbox
            .secrets
            .iter()
            .position(|s| verify(s, &signature, &body))
        else {
            inbox.bad_signatures += 1;
            return (StatusCode::BAD_REQUEST, close);
        };
        let event_id = header("callscope-event-id");
        inbox.seen.push(event_id.clone());
        let answer = inbox.script.pop_front();
        if answer.is_none() {
            inbox.acked.push(Received {
                event_id,
                body: serde_json::from_slice(&body).unwrap_or_default(),
                secret_index,
                raw: body.to_vec(),
                signature,
            });
        }
        answer
    };
    match answer {
        None => (StatusCode::OK, close),
        Some(Answer::Status(code)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            close,
        ),
        Some(Answer::Late(wait)) => {
            tokio::time::sleep(wait).await;
            (StatusCode::OK, close)
        }
    }
}

/// Polls `check` every 20 ms until it holds; panics after `limit`.
async fn eventually<T>(
    limit: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create(client: &mut Client, url: &str, filter: CallFilter) -> proto::Subscription {
    client
        .create_subscription(CreateSubscriptionRequest {
            url: url.to_owned(),
            filter: Some(filter),
            event_types: vec![],
        })
        .await
        .expect("create subscription")
        .into_inner()
}

async fn deliveries(client: &mut Client, id: &str) -> Vec<proto::Delivery> {
    client
        .list_deliveries(ListDeliveriesRequest {
            subscription_id: id.to_owned(),
            page_size: 0,
        })
        .await
        .expect("list deliveries")
        .into_inner()
        .deliveries
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

/// The webhook figures of the `default` tenant on the server's /metrics:
/// attempts delivered, retried and given up, and attempts timed. A series
/// not yet written counts 0.
#[derive(Debug, PartialEq)]
struct Figures {
    delivered: f64,
    retried: f64,
    failed: f64,
    timed: f64,
}

async fn webhook_figures(app: &TestApp, receiver: &Receiver) -> Figures {
    let text = scrape(app.http_addr).await;
    // Labels carry the tenant, never the receiver's URL.
    assert!(!text.contains(&receiver.addr.to_string()), "{text}");
    let attempts = |outcome: &str| {
        sample(
            &text,
            "callscope_webhook_deliveries_total",
            &[("tenant", "default"), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    Figures {
        delivered: attempts("delivered"),
        retried: attempts("retried"),
        failed: attempts("failed"),
        timed: sample(
            &text,
            "callscope_webhook_delivery_seconds_count",
            &[("tenant", "default")],
        )
        .unwrap_or(0.0),
    }
}

/// `callscope_webhook_lag_events` of the `default` tenant.
async fn webhook_lag(app: &TestApp) -> Option<f64> {
    let text = scrape(app.http_addr).await;
    sample(
        &text,
        "callscope_webhook_lag_events",
        &[("tenant", "default")],
    )
}

const CREATED: &str = "CALL_EVENT_TYPE_CREATED";
const UPDATED: &str = "CALL_EVENT_TYPE_UPDATED";

fn expected(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(t, id)| ((*t).to_owned(), (*id).to_owned()))
        .collect()
}

/// Events of the subscription's task only, each once and in commit order,
/// through a 503, a late answer (a timeout) and a 500, and through the
/// receiver going down and coming back; ListDeliveries tells the story.
async fn deliveries_are_signed_ordered_and_retried(mut app: TestApp) {
    let (receiver, task) = Receiver::start().await;
    receiver.inbox().script.extend([
        Answer::Status(503),
        Answer::Late(Duration::from_secs(3)),
        Answer::Status(500),
    ]);
    let mut subs = client(&app);
    let sub = create(
        &mut subs,
        &receiver.url(),
        CallFilter {
            task_ids: vec!["t1".into()],
            ..Default::default()
        },
    )
    .await;
    assert!(sub.signing_secret.starts_with("whsec_"), "{sub:?}");
    assert_eq!(sub.state, proto::SubscriptionState::Active as i32);
    receiver.inbox().secrets = vec![sub.signing_secret.clone()];

    // Listing never shows the secret again.
    let listed = subs
        .list_subscriptions(ListSubscriptionsRequest {})
        .await
        .expect("list")
        .into_inner()
        .subscriptions;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].subscription_id, sub.subscription_id);
    assert_eq!(listed[0].signing_secret, "");
    assert_eq!(listed[0].url, receiver.url());
    assert_eq!(
        listed[0].filter.as_ref().map(|f| f.task_ids.clone()),
        Some(vec!["t1".to_owned()])
    );

    app.upsert(vec![
        task_call("c1", "t1", 1),
        task_call("c2", "t2", 2),
        task_call("c3", "t1", 3),
    ])
    .await;
    let mut newer = task_call("c1", "t1", 1);
    newer.update_time = Some(ts("2025-01-02T00:00:00Z"));
    newer.score = Some(70);
    app.upsert(vec![newer]).await;

    let want = expected(&[(CREATED, "c1"), (CREATED, "c3"), (UPDATED, "c1")]);
    eventually(
        Duration::from_secs(30),
        "three acknowledged events",
        async || (receiver.acked().len() >= want.len()).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.acked(), want);
    {
        let inbox = receiver.inbox();
        assert_eq!(inbox.bad_signatures, 0);
        // Ids are the log's positions: increasing, each acknowledged once.
        let ids: Vec<i64> = inbox
            .acked
            .iter()
            .map(|r| r.event_id.parse().expect("id"))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        // The first event was tried four times (503, timeout, 500, 200).
        assert_eq!(
            inbox
                .seen
                .iter()
                .filter(|id| **id == inbox.acked[0].event_id)
                .count(),
            4
        );
        // proto3 JSON: lowerCamelCase, enums by name, RFC 3339 times.
        let body = &inbox.acked[2].body;
        assert_eq!(body["eventId"], inbox.acked[2].event_id.as_str());
        assert_eq!(body["call"]["taskId"], "t1");
        assert_eq!(body["call"]["score"], 70);
        let event_time = body["eventTime"].as_str().unwrap_or_default();
        assert!(event_time.parse::<jiff::Timestamp>().is_ok(), "{body}");
        assert_eq!(body["type"], UPDATED);
        assert!(!body["resumeToken"].as_str().unwrap_or_default().is_empty());
    }

    let list = eventually(Duration::from_secs(10), "three recorded", async || {
        let list = deliveries(&mut subs, &sub.subscription_id).await;
        list.iter()
            .all(|d| d.state == DeliveryState::Delivered as i32)
            .then_some(list)
    })
    .await;
    let summary: Vec<(String, i32, i32, i32)> = list
        .iter()
        .map(|d| (d.call_id.clone(), d.state, d.attempts, d.last_status_code))
        .collect();
    let delivered = DeliveryState::Delivered as i32;
    assert_eq!(summary.len(), 3, "{list:?}");
    assert_eq!(
        summary.iter().map(|s| (s.1, s.2, s.3)).collect::<Vec<_>>(),
        vec![
            (delivered, 1, 200),
            (delivered, 1, 200),
            (delivered, 4, 200)
        ],
    );
    assert_eq!(list[2].event_type, CallEventType::Created as i32);
    assert_eq!(list[0].event_type, CallEventType::Updated as i32);
    assert!(
        list.iter()
            .all(|d| d.next_retry_time.is_none() && d.last_error.is_empty())
    );
    // /metrics counts the same attempts: three delivered, three retried
    // (503, the timeout, 500), none given up; each one timed.
    assert_eq!(
        webhook_figures(&app, &receiver).await,
        Figures {
            delivered: 3.0,
            retried: 3.0,
            failed: 0.0,
            timed: 6.0
        }
    );
    // Every event passed (c2 skipped as not matching): no lag.
    eventually(Duration::from_secs(10), "lag 0", async || {
        (webhook_lag(&app).await == Some(0.0)).then_some(())
    })
    .await;

    // The receiver goes down: attempts fail, the event waits, then arrives.
    task.abort();
    let _ = task.await;
    app.upsert(vec![task_call("c4", "t1", 4)]).await;
    let pending = eventually(Duration::from_secs(30), "retries of c4", async || {
        let list = deliveries(&mut subs, &sub.subscription_id).await;
        list.into_iter()
            .next()
            .filter(|d| d.state == DeliveryState::Pending as i32 && d.attempts >= 2)
    })
    .await;
    assert_eq!(pending.last_status_code, 0);
    assert_eq!(pending.last_error, "connection failed");
    assert!(pending.next_retry_time.is_some());
    // The waiting event shows as lag.
    eventually(Duration::from_secs(10), "lag 1", async || {
        (webhook_lag(&app).await == Some(1.0)).then_some(())
    })
    .await;
    let _task = receiver.restart().await;
    eventually(Duration::from_secs(30), "c4 after the outage", async || {
        (receiver.acked().len() == 4).then_some(())
    })
    .await;
    assert_eq!(
        receiver.acked(),
        expected(&[
            (CREATED, "c1"),
            (CREATED, "c3"),
            (UPDATED, "c1"),
            (CREATED, "c4")
        ])
    );
    // The receiver counts an event before callscope has its answer.
    let top = eventually(Duration::from_secs(10), "c4 recorded", async || {
        let list = deliveries(&mut subs, &sub.subscription_id).await;
        list.into_iter().next().filter(|d| d.state == delivered)
    })
    .await;
    assert_eq!(
        (top.call_id.is_empty(), top.state, top.last_status_code),
        (false, delivered, 200)
    );
    assert!(top.attempts >= 3, "{top:?}");
    // c4's failed attempts were retried, its last delivered.
    let retried = 3.0 + f64::from(top.attempts - 1);
    assert_eq!(
        webhook_figures(&app, &receiver).await,
        Figures {
            delivered: 4.0,
            retried,
            failed: 0.0,
            timed: 4.0 + retried
        }
    );
    eventually(Duration::from_secs(10), "lag 0 again", async || {
        (webhook_lag(&app).await == Some(0.0)).then_some(())
    })
    .await;
}

/// The server dies while a POST is in flight: a new server on the same
/// database delivers that event again, then the next, and nothing is lost.
async fn a_crash_mid_delivery_loses_no_event(mut app: TestApp) {
    let (receiver, _task) = Receiver::start().await;
    // The first answer never comes in time: the server is killed meanwhile.
    receiver
        .inbox()
        .script
        .push_back(Answer::Late(Duration::from_secs(5)));
    let mut subs = client(&app);
    let sub = create(&mut subs, &receiver.url(), CallFilter::default()).await;
    receiver.inbox().secrets = vec![sub.signing_secret.clone()];
    app.upsert(vec![task_call("c1", "t1", 1), task_call("c2", "t1", 2)])
        .await;
    eventually(Duration::from_secs(30), "the first attempt", async || {
        (!receiver.inbox().seen.is_empty()).then_some(())
    })
    .await;
    app.kill();

    let database_url = app.database_url.clone();
    let second = spawn_app_with(|c| {
        fast(c);
        c.database_url = database_url;
    })
    .await;
    // Its lease (twice the timeout plus 5 s) runs out, then the new server
    // delivers.
    eventually(Duration::from_secs(40), "both events", async || {
        (receiver.acked().len() >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.acked(),
        expected(&[(CREATED, "c1"), (CREATED, "c2")])
    );
    {
        let inbox = receiver.inbox();
        // The attempt cut short by the crash, then the one that got through.
        let first_id = &inbox.acked[0].event_id;
        assert_eq!(inbox.seen.first(), Some(first_id));
        assert!(
            inbox.seen.iter().filter(|id| *id == first_id).count() >= 2,
            "{:?}",
            inbox.seen
        );
    }
    let mut subs = client(&second);
    let list = eventually(Duration::from_secs(10), "both recorded", async || {
        let list = deliveries(&mut subs, &sub.subscription_id).await;
        list.iter()
            .all(|d| d.state == DeliveryState::Delivered as i32)
            .then_some(list)
    })
    .await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list.iter()
            .all(|d| d.state == DeliveryState::Delivered as i32)
    );
    second.stop().await;
}

/// python3 on PATH, for the README's verification snippet.
fn python3() -> Result<(), String> {
    std::process::Command::new("python3")
        .arg("--version")
        .output()
        .map_err(|e| format!("python3 is not on PATH: {e}"))
        .and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err("python3 --version failed".to_owned())
            }
        })
}

/// The README's ```python block, exactly as written.
fn readme_python() -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```python\n")
        .expect("README has a ```python block")
        + 10;
    let len = readme[start..].find("```").expect("closed block");
    readme[start..start + len].to_owned()
}

/// The README's Python `verify` accepts a real delivery and refuses it
/// with one byte changed or another secret.
async fn readme_python_verifies_a_real_delivery(mut app: TestApp) {
    let (receiver, _task) = Receiver::start().await;
    let mut subs = client(&app);
    let sub = create(&mut subs, &receiver.url(), CallFilter::default()).await;
    receiver.inbox().secrets = vec![sub.signing_secret.clone()];
    app.upsert(vec![task_call("c1", "t1", 1)]).await;
    eventually(Duration::from_secs(30), "one delivery", async || {
        (receiver.acked().len() == 1).then_some(())
    })
    .await;
    let (raw, signature) = {
        let inbox = receiver.inbox();
        (inbox.acked[0].raw.clone(), inbox.acked[0].signature.clone())
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let body = dir.path().join("body.json");
    std::fs::write(&body, &raw).expect("write body");
    let script = format!(
        "{}\nimport sys\nsecret, header, body = sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read()\n\
         print(verify(secret, header, body), verify(secret, header, body + b' '), verify('whsec_other', header, body))\n",
        readme_python()
    );
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .arg(&sub.signing_secret)
        .arg(&signature)
        .arg(&body)
        .output()
        .await
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "True False False"
    );
}

/// Retries for a short while only (a test setting; the default is 24 h).
fn gives_up_fast(c: &mut ServeConfig) {
    fast(c);
    c.outgoing.webhook_retry_for_ms = 300;
}

/// An event whose retries run out is given up, the subscription turns
/// FAILING and the next event follows; a success makes it ACTIVE again.
async fn exhausted_retries_mark_the_subscription_failing(mut app: TestApp) {
    let (receiver, _task) = Receiver::start().await;
    receiver.inbox().script.extend([Answer::Status(500); 200]);
    let mut subs = client(&app);
    let sub = create(&mut subs, &receiver.url(), CallFilter::default()).await;
    receiver.inbox().secrets = vec![sub.signing_secret.clone()];
    app.upsert(vec![task_call("c1", "t1", 1)]).await;
    let failed = eventually(Duration::from_secs(30), "c1 given up", async || {
        let list = deliveries(&mut subs, &sub.subscription_id).await;
        list.into_iter()
            .next()
            .filter(|d| d.state == DeliveryState::Failed as i32)
    })
    .await;
    assert!(failed.attempts >= 2, "{failed:?}");
    assert_eq!(failed.last_status_code, 500);
    assert_eq!(failed.last_error, "HTTP 500");
    assert!(failed.next_retry_time.is_none());
    // Every attempt but the last was retried; the last gave it up.
    let retried = f64::from(failed.attempts - 1);
    assert_eq!(
        webhook_figures(&app, &receiver).await,
        Figures {
            delivered: 0.0,
            retried,
            failed: 1.0,
            timed: retried + 1.0
        }
    );
    let state = |subs: &mut Client| {
        let mut subs = subs.clone();
        async move {
            let listed = subs
                .list_subscriptions(ListSubscriptionsRequest {})
                .await
                .expect("list")
                .into_inner()
                .subscriptions;
            (listed[0].state, listed[0].last_error.clone())
        }
    };
    assert_eq!(
        state(&mut subs).await,
        (
            proto::SubscriptionState::Failing as i32,
            "HTTP 500".to_owned()
        )
    );

    // The receiver recovers: the next event is delivered, the subscription
    // is active again; the given-up event stays given up.
    receiver.inbox().script.clear();
    app.upsert(vec![task_call("c2", "t1", 2)]).await;
    eventually(Duration::from_secs(30), "c2", async || {
        (receiver.acked().len() == 1).then_some(())
    })
    .await;
    assert_eq!(receiver.acked(), expected(&[(CREATED, "c2")]));
    eventually(Duration::from_secs(10), "c2 counted", async || {
        let figures = webhook_figures(&app, &receiver).await;
        (figures.delivered == 1.0).then_some(())
    })
    .await;
    assert_eq!(webhook_figures(&app, &receiver).await.failed, 1.0);
    eventually(Duration::from_secs(10), "state active", async || {
        let (state, error) = state(&mut subs).await;
        (state == proto::SubscriptionState::Active as i32).then_some(error)
    })
    .await;
}

/// Two servers on one database share the work: each event is acknowledged
/// once, in order, whichever replica sent it.
async fn two_replicas_deliver_each_event_once(mut app: TestApp) {
    let (receiver, _task) = Receiver::start().await;
    let mut subs = client(&app);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let sub = create(&mut subs, &receiver.url(), CallFilter::default()).await;
        ids.push(sub.signing_secret);
    }
    // One secret per subscription: the receiver tells them apart by it.
    receiver.inbox().secrets = ids;
    let database_url = app.database_url.clone();
    let second = spawn_app_with(|c| {
        fast(c);
        c.database_url = database_url;
    })
    .await;
    let mut want = Vec::new();
    for batch in 0..5 {
        let calls: Vec<proto::Call> = (0..10)
            .map(|i| task_call(&format!("c{batch}{i}"), "t1", batch * 10 + i))
            .collect();
        want.extend(calls.iter().map(|c| c.external_id.clone()));
        app.upsert(calls).await;
    }
    let total = want.len() * 3;
    eventually(
        Duration::from_secs(60),
        "every event to every subscription",
        async || (receiver.acked().len() >= total).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let inbox = receiver.inbox();
        assert_eq!(inbox.acked.len(), total, "an event was acknowledged twice");
        assert_eq!(inbox.bad_signatures, 0);
        // Per subscription (told apart by its secret), the calls in order.
        for secret in 0..3 {
            let got: Vec<String> = inbox
                .acked
                .iter()
                .filter(|r| r.secret_index == secret)
                .map(|r| {
                    r.body["call"]["externalId"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned()
                })
                .collect();
            assert_eq!(got, want, "subscription {secret}");
        }
    }
    second.stop().await;
}

/// Bad URLs, SSRF targets, unknown ids and bad values, each refused naming
/// its field; nothing stored.
async fn subscription_requests_are_checked(app: TestApp) {
    let mut subs = client(&app);
    let grpc_port = app.addr.port();
    let http_port = app.http_addr.port();
    for url in [
        "".to_owned(),
        "ftp://example.com/hook".to_owned(),
        "file:///etc/passwd".to_owned(),
        "not a url".to_owned(),
        "http://user:pw@example.com/".to_owned(),
        "http://127.0.0.1:9/hook".to_owned(),
        "http://localhost/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.5/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        format!("http://127.0.0.1:{grpc_port}/"),
        format!("https://{}", "a".repeat(2100)),
    ] {
        let err = subs
            .create_subscription(CreateSubscriptionRequest {
                url: url.clone(),
                ..Default::default()
            })
            .await
            .expect_err(&url);
        assert_eq!(err.code(), Code::InvalidArgument, "{url}: {err:?}");
        assert_eq!(bad_fields(&err), vec!["url"], "{url}");
    }
    let err = subs
        .create_subscription(CreateSubscriptionRequest {
            url: "https://example.com/hook".into(),
            filter: Some(CallFilter {
                transcript_contains: "hello".into(),
                ..Default::default()
            }),
            event_types: vec![1, 99],
        })
        .await
        .expect_err("bad values");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), vec!["event_types[1]"]);
    let err = subs
        .create_subscription(CreateSubscriptionRequest {
            url: format!("http://[::1]:{http_port}/"),
            filter: Some(CallFilter {
                transcript_contains: "hello".into(),
                ..Default::default()
            }),
            event_types: vec![],
        })
        .await
        .expect_err("bad values");
    assert_eq!(bad_fields(&err), vec!["url", "filter.transcript_contains"]);
    let listed = subs
        .list_subscriptions(ListSubscriptionsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(listed.subscriptions.is_empty());

    for id in ["sub_nope", "x"] {
        let err = subs
            .delete_subscription(DeleteSubscriptionRequest {
                subscription_id: id.into(),
            })
            .await
            .expect_err("unknown");
        assert_eq!(err.code(), Code::NotFound);
        let err = subs
            .list_deliveries(ListDeliveriesRequest {
                subscription_id: id.into(),
                page_size: 0,
            })
            .await
            .expect_err("unknown");
        assert_eq!(err.code(), Code::NotFound);
    }
    let err = subs
        .list_deliveries(ListDeliveriesRequest {
            subscription_id: String::new(),
            page_size: -1,
        })
        .await
        .expect_err("empty id, negative size");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), vec!["subscription_id"]);
}

/// With --allow-private-webhooks a local receiver is accepted, callscope's
/// own ports still are not; delete removes the subscription.
async fn private_receivers_need_the_flag_and_own_ports_never_pass(app: TestApp) {
    let mut subs = client(&app);
    for port in [app.addr.port(), app.http_addr.port()] {
        for host in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"] {
            let url = format!("http://{host}:{port}/hook");
            let err = subs
                .create_subscription(CreateSubscriptionRequest {
                    url: url.clone(),
                    ..Default::default()
                })
                .await
                .expect_err(&url);
            assert_eq!(bad_fields(&err), vec!["url"], "{url}");
        }
    }
    let sub = create(&mut subs, "http://127.0.0.1:9/hook", CallFilter::default()).await;
    subs.delete_subscription(DeleteSubscriptionRequest {
        subscription_id: sub.subscription_id.clone(),
    })
    .await
    .expect("delete");
    let listed = subs
        .list_subscriptions(ListSubscriptionsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(listed.subscriptions.is_empty());
}

pub fn trials() -> Vec<libtest_mimic::Trial> {
    use crate::helpers::backend_trials_with;
    let module = "subscriptions";
    let mut trials = Vec::new();
    trials.extend(backend_trials_with(
        module,
        "deliveries_are_signed_ordered_and_retried",
        &[],
        fast,
        deliveries_are_signed_ordered_and_retried,
    ));
    trials.extend(backend_trials_with(
        module,
        "a_crash_mid_delivery_loses_no_event",
        &[],
        fast,
        a_crash_mid_delivery_loses_no_event,
    ));
    trials.extend(backend_trials_with(
        module,
        "private_receivers_need_the_flag_and_own_ports_never_pass",
        &[],
        fast,
        private_receivers_need_the_flag_and_own_ports_never_pass,
    ));
    trials.extend(backend_trials_with(
        module,
        "exhausted_retries_mark_the_subscription_failing",
        &[],
        gives_up_fast,
        exhausted_retries_mark_the_subscription_failing,
    ));
    trials.extend(backend_trials_with(
        module,
        "two_replicas_deliver_each_event_once",
        &[],
        fast,
        two_replicas_deliver_each_event_once,
    ));
    trials.extend(backend_trials_with(
        module,
        "readme_python_verifies_a_real_delivery",
        &[python3],
        fast,
        readme_python_verifies_a_real_delivery,
    ));
    trials.extend(backend_trials_with(
        module,
        "subscription_requests_are_checked",
        &[],
        |_| {},
        subscription_requests_are_checked,
    ));
    trials
}
