//! The NATS JetStream sink (`serve --events-nats-url`): publishes every
//! tenant's events, in log order, to `<prefix>.<tenant>.calls.<type>`, and
//! commits its position per tenant only after JetStream acknowledged them.
//! A crash between the two publishes some events again; their `Nats-Msg-Id`
//! lets JetStream drop the copies (within its duplicate window).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::sync::watch;

use crate::domain::event::{CallEvent, EventKind};
use crate::domain::{CallFilter, now_ms};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// The sink's name in `event_sinks`.
const SINK: &str = "nats";
/// Events published before waiting for their acknowledgements.
const BATCH: u32 = 256;
/// How long a claimed tenant stays ours without a commit.
const LEASE_MS: i64 = 10_000;

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct NatsSink {
    pub url: String,
    pub stream: String,
    pub subject_prefix: String,
    pub poll: Duration,
    pub owner: String,
    pub metrics: Metrics,
}

/// The subject of an event: tenant ids may hold `.`, which NATS reads as a
/// token separator, so it is written `%2E` (tenant ids have no `%`).
pub fn subject(prefix: &str, tenant: &str, kind: EventKind) -> String {
    let word = match kind {
        EventKind::Created => "created",
        EventKind::Updated => "updated",
        EventKind::Deleted => "deleted",
    };
    format!("{prefix}.{}.calls.{word}", tenant.replace('.', "%2E"))
}

/// The `Nats-Msg-Id`: event ids are unique per tenant, and one stream holds
/// every tenant, so the tenant is part of it.
pub fn message_id(tenant: &str, event: &CallEvent) -> String {
    format!("{tenant}/{}", event.event_id())
}

#[derive(Debug, thiserror::Error)]
enum SinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("NATS: {0}")]
    Nats(String),
}

fn nats(e: impl std::fmt::Display) -> SinkError {
    SinkError::Nats(e.to_string())
}

/// Publishes until `stop` turns true, reconnecting after failures.
pub async fn run(store: Store, sink: NatsSink, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(500);
    // How far each tenant was published by us: a tenant whose log has not
    // grown is not claimed again (no write per tenant and poll). Kept across
    // reconnections, so the lag still shows while NATS is away.
    let mut published: HashMap<String, i64> = HashMap::new();
    sink.metrics.nats_connected(false);
    loop {
        let result = tokio::select! {
            r = serve(&store, &sink, &mut published) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        sink.metrics.nats_connected(false);
        if let Err(e) = result {
            tracing::warn!(error = %e, "NATS sink failed; retrying");
        }
        if let Ok(logs) = store.event_logs().await {
            for (tenant, log) in logs {
                if let Some(position) = published.get(&tenant) {
                    sink.metrics.nats_lag(&tenant, log.head - position);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn serve(
    store: &Store,
    sink: &NatsSink,
    published: &mut HashMap<String, i64>,
) -> Result<(), SinkError> {
    let client = async_nats::connect(&sink.url).await.map_err(nats)?;
    let js = jetstream::new(client);
    js.get_or_create_stream(jetstream::stream::Config {
        name: sink.stream.clone(),
        subjects: vec![format!("{}.>", sink.subject_prefix)],
        ..Default::default()
    })
    .await
    .map_err(nats)?;
    tracing::info!(stream = sink.stream, "NATS sink publishing");
    sink.metrics.nats_connected(true);
    let mut committed = store.event_signal();
    loop {
        for (tenant, log) in store.event_logs().await? {
            if published.get(&tenant).is_some_and(|p| *p >= log.head) {
                sink.metrics.nats_lag(&tenant, 0);
                continue;
            }
            if let Some(position) = publish_tenant(store, sink, &js, &tenant).await? {
                sink.metrics.nats_lag(&tenant, log.head - position);
                published.insert(tenant, position);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(sink.poll) => {}
            Ok(()) = committed.changed() => {}
        }
    }
}

/// Publishes a tenant's new events, if no other replica is doing it;
/// answers the position reached, `None` when another replica holds it.
async fn publish_tenant(
    store: &Store,
    sink: &NatsSink,
    js: &jetstream::Context,
    tenant: &str,
) -> Result<Option<i64>, SinkError> {
    let now = now_ms();
    let Some(mut position) = store
        .claim_sink(tenant, SINK, &sink.owner, now, now + LEASE_MS)
        .await?
    else {
        return Ok(None);
    };
    loop {
        let events = store.events_after(tenant, position, BATCH).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(Some(position));
        };
        // Sent back to back on one connection, so JetStream stores them in
        // this order; then every acknowledgement is awaited.
        let mut acks = Vec::with_capacity(events.len());
        // Events of the batch without an acknowledgement, counted as failed
        // when the batch stops early (they are sent again).
        let failed = |done: usize| {
            let left = events.len().saturating_sub(done) as u64;
            sink.metrics.nats_published(tenant, "failed", left);
        };
        for event in &events {
            let payload =
                crate::delivery::event_json(event, &CallFilter::default()).map_err(nats)?;
            let publish = PublishMessage::build()
                .message_id(message_id(tenant, event))
                .header("Callscope-Event-Id", event.event_id().as_str())
                .payload(payload.into());
            let ack = js
                .send_publish(subject(&sink.subject_prefix, tenant, event.kind), publish)
                .await
                .map_err(nats)
                .inspect_err(|_| failed(0))?;
            acks.push(ack);
        }
        let (mut stored, mut duplicates) = (0u64, 0u64);
        for (done, ack) in acks.into_iter().enumerate() {
            let ack = ack.await.map_err(nats).inspect_err(|_| {
                sink.metrics.nats_published(tenant, "published", stored);
                sink.metrics.nats_published(tenant, "duplicate", duplicates);
                failed(done);
            })?;
            if ack.duplicate {
                duplicates += 1;
            } else {
                stored += 1;
            }
        }
        sink.metrics.nats_published(tenant, "published", stored);
        sink.metrics.nats_published(tenant, "duplicate", duplicates);
        position = last;
        if !store
            .advance_sink(tenant, SINK, &sink.owner, position, now_ms() + LEASE_MS)
            .await?
        {
            // Another replica took over; it continues from the committed
            // position and JetStream drops what we both published.
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_keep_one_token_per_tenant() {
        assert_eq!(
            subject("callscope", "acme.eu", EventKind::Created),
            "callscope.acme%2Eeu.calls.created"
        );
        assert_eq!(
            subject("x", "default", EventKind::Deleted),
            "x.default.calls.deleted"
        );
    }
}
