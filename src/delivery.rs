//! The webhook delivery worker: for every subscription, POSTs the events its
//! filter selects, one at a time in log order, signed, retried with backoff
//! until acknowledged or given up, with the position committed after each.
//! Replicas share the work through leases on the subscription rows.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::OutgoingFlags;
use crate::domain::CallFilter;
use crate::domain::event::{CallEvent, WatchToken, watch_scope};
use crate::domain::subscription::{
    Delivery, DeliveryState, RetryPolicy, Subscription, SubscriptionState, check_url_form,
    signature,
};
use crate::domain::{UnixMs, now_ms};
use crate::metrics::Metrics;
use crate::service::subscriptions::{Unusable, UrlPolicy};
use crate::store::{Store, StoreError, SubscriptionUpdate};

/// Events read from the log at once.
const EVENT_BATCH: u32 = 100;
/// Subscriptions one worker delivers to at once.
const CONCURRENCY: usize = 32;
/// How often the lag gauges are read from the store, at most: each reading
/// costs a query per tenant.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// What the worker needs besides the store.
#[derive(Debug, Clone)]
pub struct Worker {
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub poll: Duration,
    pub urls: UrlPolicy,
    /// This worker's name in leases: unique per process.
    pub owner: String,
    pub metrics: Metrics,
}

impl Worker {
    pub fn new(flags: &OutgoingFlags, urls: UrlPolicy, metrics: Metrics) -> Self {
        Self {
            retry: flags.retry_policy(),
            timeout: Duration::from_millis(flags.webhook_timeout_ms),
            poll: Duration::from_millis(flags.events_poll_ms),
            urls,
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            metrics,
        }
    }

    /// How long a claimed subscription stays ours without a write: twice
    /// the longest attempt plus 5 s, so a live worker never loses it
    /// mid-POST, and a dead one's subscriptions wait no longer than that.
    fn lease(&self) -> i64 {
        i64::try_from((self.timeout * 2 + Duration::from_secs(5)).as_millis()).unwrap_or(i64::MAX)
    }
}

/// Runs the webhook worker and, with `--events-nats-url`, the NATS sink,
/// until `stop` turns true.
pub async fn run_outgoing(
    store: Store,
    flags: &OutgoingFlags,
    urls: UrlPolicy,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
) {
    let worker = Worker::new(flags, urls, metrics);
    let sink = flags
        .events_nats_url
        .as_ref()
        .map(|url| crate::nats_sink::NatsSink {
            url: url.clone(),
            stream: flags.events_nats_stream.clone(),
            subject_prefix: flags.events_nats_subject_prefix.clone(),
            poll: worker.poll,
            owner: worker.owner.clone(),
            metrics: worker.metrics.clone(),
        });
    let sink = async {
        if let Some(sink) = sink {
            crate::nats_sink::run(store.clone(), sink, stop.clone()).await;
        }
    };
    tokio::join!(run(store.clone(), worker, stop.clone()), sink);
}

/// Delivers until `stop` turns true.
pub async fn run(store: Store, worker: Worker, mut stop: watch::Receiver<bool>) {
    let client = match http_client(&worker) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery disabled: cannot build the HTTP client");
            return;
        }
    };
    let worker = Arc::new(worker);
    // Dropping the set (shutdown, or the server's task ending) aborts the
    // deliveries in flight.
    let mut running: JoinSet<()> = JoinSet::new();
    let mut committed = store.event_signal();
    let mut lag_read: Option<std::time::Instant> = None;
    let mut lag_tenants = std::collections::HashSet::new();
    loop {
        while running.try_join_next().is_some() {}
        if let Err(e) = claim_round(&store, &worker, &client, &mut running).await {
            tracing::warn!(error = %e, "webhook delivery: claiming subscriptions failed");
        }
        if lag_read.is_none_or(|at| at.elapsed() >= LAG_EVERY) {
            lag_read = Some(std::time::Instant::now());
            if let Err(e) = read_lag(&store, &worker.metrics, &mut lag_tenants).await {
                tracing::debug!(error = %e, "webhook delivery: reading the lag failed");
            }
        }
        // Woken by this process's commits; polling finds other replicas'.
        tokio::select! {
            _ = tokio::time::sleep(worker.poll) => {}
            Ok(()) = committed.changed() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    // Deliveries in flight are dropped: their leases expire and the events
    // are delivered again (at least once).
    running.abort_all();
}

async fn claim_round(
    store: &Store,
    worker: &Arc<Worker>,
    client: &reqwest::Client,
    running: &mut JoinSet<()>,
) -> Result<(), StoreError> {
    for tenant in store.tenants().await? {
        let room = CONCURRENCY.saturating_sub(running.len());
        if room == 0 {
            return Ok(());
        }
        let now = now_ms();
        let claimed = store
            .claim_subscriptions(
                &tenant,
                &worker.owner,
                now,
                now + worker.lease(),
                room as u32,
            )
            .await?;
        for sub in claimed {
            let (store, worker, client, tenant) = (
                store.clone(),
                worker.clone(),
                client.clone(),
                tenant.clone(),
            );
            running.spawn(async move {
                let id = sub.id.clone();
                if let Err(e) = deliver_subscription(&store, &worker, &client, &tenant, sub).await
                {
                    tracing::warn!(error = %e, tenant, subscription_id = id, "webhook delivery interrupted; the lease will expire and it resumes");
                }
            });
        }
    }
    Ok(())
}

/// Sets `callscope_webhook_lag_events` for every tenant with subscriptions:
/// its log's head minus the furthest-behind subscription's position; 0 for
/// a tenant in `reported` that has none left (so a deleted subscription's
/// lag does not linger). Tenants without subscriptions get no series.
async fn read_lag(
    store: &Store,
    metrics: &Metrics,
    reported: &mut std::collections::HashSet<String>,
) -> Result<(), StoreError> {
    for (tenant, log) in store.event_logs().await? {
        let subscriptions = store.list_subscriptions(&tenant).await?;
        match subscriptions.iter().map(|s| s.position).min() {
            Some(slowest) => {
                metrics.webhook_lag(&tenant, log.head - slowest);
                reported.insert(tenant);
            }
            None if reported.contains(&tenant) => metrics.webhook_lag(&tenant, 0),
            None => {}
        }
    }
    Ok(())
}

fn http_client(worker: &Worker) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(worker.timeout.min(Duration::from_secs(5)))
        .timeout(worker.timeout)
        // A redirect is not an acknowledgement, and following one could
        // lead anywhere.
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would resolve and connect in our
        // place, past the address checks below.
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver(worker.urls.clone())))
        .user_agent(concat!("callscope-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Resolves webhook hosts when connecting and refuses addresses the URL
/// policy refuses, so a name that pointed at a public address when the
/// subscription was made cannot be turned to a private one later (DNS
/// rebinding): the address checked is the address connected to.
struct CheckedResolver(UrlPolicy);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is the URL's; reqwest sets it on what we answer.
            let addrs = policy.resolve(&host, 0).await.map_err(Box::new)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What became of one event.
enum Step {
    /// Acknowledged or given up: the next event may go.
    Done,
    /// Retried later; the lease is given back until then.
    Wait,
    /// Another worker holds the subscription now, or it was deleted.
    Lost,
}

/// Delivers a claimed subscription's events until it has none left or one
/// has to wait for its retry.
async fn deliver_subscription(
    store: &Store,
    worker: &Worker,
    client: &reqwest::Client,
    tenant: &str,
    mut sub: Subscription,
) -> Result<(), StoreError> {
    let mut committed = sub.position;
    loop {
        let events = store
            .events_after(tenant, sub.position, EVENT_BATCH)
            .await?;
        if let Some(first) = events.first()
            && first.position > sub.position + 1
        {
            // Positions have no holes: these were removed by the event
            // retention before this subscription got to them.
            tracing::warn!(
                tenant,
                subscription_id = sub.id,
                lost = first.position - sub.position - 1,
                "events expired from the log before delivery"
            );
        }
        let Some(last) = events.last().map(|e| e.position) else {
            // Caught up: record how far not-wanted events took us, and let
            // any worker take the subscription at its next look.
            update(store, worker, tenant, &sub, sub.position, 0, true).await?;
            return Ok(());
        };
        for event in &events {
            if !(sub.wants(event.kind) && sub.filter.matches(&event.call)) {
                sub.position = event.position;
                continue;
            }
            match deliver_event(store, worker, client, tenant, &mut sub, event).await? {
                Step::Done => {
                    sub.position = event.position;
                    committed = sub.position;
                }
                Step::Wait | Step::Lost => return Ok(()),
            }
        }
        debug_assert!(sub.position == last);
        if sub.position != committed {
            // Events nobody wanted: remember we are past them.
            let until = now_ms() + worker.lease();
            if !update(store, worker, tenant, &sub, sub.position, until, false).await? {
                return Ok(());
            }
            committed = sub.position;
        }
    }
}

/// Sets position and lease, fenced by our lease; `false` when it was lost.
async fn update(
    store: &Store,
    worker: &Worker,
    tenant: &str,
    sub: &Subscription,
    position: i64,
    lease_until: UnixMs,
    release: bool,
) -> Result<bool, StoreError> {
    store
        .update_subscription(
            tenant,
            &sub.id,
            &worker.owner,
            SubscriptionUpdate {
                position: Some(position),
                state: None,
                last_error: None,
                lease_until,
                release,
            },
        )
        .await
}

/// One attempt at one event (or none, when its retry is not due yet).
async fn deliver_event(
    store: &Store,
    worker: &Worker,
    client: &reqwest::Client,
    tenant: &str,
    sub: &mut Subscription,
    event: &CallEvent,
) -> Result<Step, StoreError> {
    let prior = store.get_delivery(tenant, &sub.id, event.position).await?;
    let now = now_ms();
    if let Some(retry) = prior.as_ref().and_then(|d| d.next_retry_time)
        && retry > now
    {
        // Claimed early (a restart): give it back until the retry is due,
        // keeping the position of any not-wanted events before it.
        let held = update(store, worker, tenant, sub, sub.position, retry, true).await?;
        return Ok(if held { Step::Wait } else { Step::Lost });
    }

    let started = std::time::Instant::now();
    let outcome = post(worker, client, sub, event).await;
    let seconds = started.elapsed().as_secs_f64();
    let now = now_ms();
    let attempts = prior.as_ref().map_or(0, |d| d.attempts) + 1;
    let first = prior.as_ref().map_or(now, |d| d.first_attempt_time);
    let mut delivery = Delivery {
        position: event.position,
        event_id: event.event_id(),
        kind: event.kind,
        call_id: event.call.call_id.clone(),
        state: DeliveryState::Delivered,
        attempts,
        last_status: outcome.status,
        last_error: outcome.error.clone().unwrap_or_default(),
        first_attempt_time: first,
        last_attempt_time: now,
        next_retry_time: None,
    };
    let lease_until = now + worker.lease();
    let (update, step) = match &outcome.error {
        None => {
            worker.metrics.webhook_attempt(tenant, "delivered", seconds);
            (
                SubscriptionUpdate {
                    position: Some(event.position),
                    state: Some(SubscriptionState::Active),
                    last_error: None,
                    lease_until,
                    release: false,
                },
                Step::Done,
            )
        }
        Some(error) if worker.retry.gives_up(first, now) => {
            delivery.state = DeliveryState::Failed;
            worker.metrics.webhook_attempt(tenant, "failed", seconds);
            tracing::warn!(
                tenant,
                subscription_id = sub.id,
                event_id = delivery.event_id,
                attempts,
                error,
                "webhook event given up; subscription marked failing"
            );
            (
                SubscriptionUpdate {
                    position: Some(event.position),
                    state: Some(SubscriptionState::Failing),
                    last_error: Some(error),
                    lease_until,
                    release: false,
                },
                Step::Done,
            )
        }
        Some(error) => {
            let delay = worker.retry.delay(attempts, rand::random::<f64>());
            let retry = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
            delivery.state = DeliveryState::Pending;
            delivery.next_retry_time = Some(retry);
            worker.metrics.webhook_attempt(tenant, "retried", seconds);
            tracing::info!(
                tenant,
                subscription_id = sub.id,
                event_id = delivery.event_id,
                attempts,
                error,
                retry_in_ms = delay.as_millis() as u64,
                "webhook attempt failed"
            );
            (
                SubscriptionUpdate {
                    // Not-wanted events before this one are handled.
                    position: Some(sub.position),
                    state: None,
                    last_error: Some(error),
                    lease_until: retry,
                    release: true,
                },
                Step::Wait,
            )
        }
    };
    let held = store
        .record_delivery(tenant, &sub.id, &worker.owner, &delivery, update)
        .await?;
    if !held {
        return Ok(Step::Lost);
    }
    if let Some(state) = update.state {
        sub.state = state;
    }
    Ok(step)
}

/// What one POST got.
struct Outcome {
    /// HTTP status; 0 without an answer.
    status: i32,
    /// Why it is not an acknowledgement; `None` for a 2xx.
    error: Option<String>,
}

async fn post(
    worker: &Worker,
    client: &reqwest::Client,
    sub: &Subscription,
    event: &CallEvent,
) -> Outcome {
    let fail = |status: i32, error: String| Outcome {
        status,
        error: Some(error),
    };
    // Literal addresses never reach the resolver: check them here, and
    // callscope's own ports for names too (the resolver does not see ports).
    match check_url_form(&sub.url) {
        Ok((host, port)) => match worker.urls.resolve(&host, port).await {
            Ok(_) => {}
            Err(Unusable::Refused(why)) => return fail(0, format!("refused address: {why}")),
            Err(Unusable::Unresolved(why)) => return fail(0, why),
        },
        Err(why) => return fail(0, format!("bad url: {why}")),
    }
    let body = match event_json(event, &sub.filter) {
        Ok(body) => body,
        Err(e) => return fail(0, format!("cannot encode the event: {e}")),
    };
    let unix = now_ms().div_euclid(1000);
    let response = client
        .post(&sub.url)
        .header("content-type", "application/json")
        .header("callscope-event-id", event.event_id())
        .header("callscope-signature", signature(&sub.secret, unix, &body))
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                Outcome {
                    status: i32::from(status.as_u16()),
                    error: None,
                }
            } else {
                fail(
                    i32::from(status.as_u16()),
                    format!("HTTP {}", status.as_u16()),
                )
            }
        }
        Err(e) if e.is_timeout() => fail(
            0,
            format!("timed out after {} ms", worker.timeout.as_millis()),
        ),
        Err(e) if e.is_connect() => fail(0, "connection failed".to_owned()),
        Err(e) => fail(0, format!("request failed: {}", without_url(&e))),
    }
}

/// An event as webhooks and the NATS sink send it: the proto3 JSON of a
/// `CallEvent`, whose `resume_token` resumes a WatchCalls with `filter`
/// right after it.
pub fn event_json(event: &CallEvent, filter: &CallFilter) -> serde_json::Result<Vec<u8>> {
    use crate::api::convert::{call_to_proto, to_timestamp};
    let scope = watch_scope(&event.tenant, filter);
    let message = crate::proto::CallEvent {
        event_id: event.event_id(),
        r#type: event.kind.code(),
        call: Some(call_to_proto(event.call.clone())),
        event_time: Some(to_timestamp(event.event_time)),
        resume_token: WatchToken::encode(event.position, &scope),
    };
    serde_json::to_vec(&message)
}

/// reqwest's error text without the URL (which may carry a token).
fn without_url(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
