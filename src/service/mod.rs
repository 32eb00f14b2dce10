//! The operations callscope offers, independent of transport: the gRPC
//! handlers, the HTTP webhooks and `callscope import` all call into [`CallScope`].

pub mod ingest;

pub mod analytics;
pub mod keys;

pub mod admin;
pub mod catalog;
pub mod error;
pub mod events;
pub mod subscriptions;
pub mod sync;

pub use error::ServiceError;

use std::future::Future;
use std::time::Duration;

use crate::domain::limits::{
    DEFAULT_MAX_RESPONSE_BYTES, MAX_CALLS_PER_REQUEST, MAX_CATALOG_ITEMS, MAX_ID_BYTES, clip,
    too_many,
};
use crate::domain::{
    self, CallQuery, IntentLevel, PageToken, StoredCall, Tag, TagGroup, Task, UpsertResult,
    Violations,
};
use crate::store::{CallPage, Store, StoreError};

/// Runs of a write whose transaction keeps losing races with concurrent
/// ones ([`CallScope::retrying`]): the first and two more.
const WRITE_ATTEMPTS: u32 = 3;
/// The longest pause before a write's second run, in milliseconds; before
/// its third, twice as long.
const WRITE_RETRY_PAUSE_MS: u64 = 20;

/// How a request names one call: by our id, or by the vendor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallRef<'a> {
    Id(&'a str),
    /// The vendor's id of the call (for smartivr also its record id).
    External {
        source: domain::Source,
        external_id: &'a str,
    },
}

/// A page of calls with the token of the next one.
pub struct ListedCalls {
    pub calls: Vec<StoredCall>,
    pub next_page_token: String,
    pub total: Option<i64>,
    /// More calls match than `total`, the counting bound.
    pub total_capped: bool,
}

/// The service: a store plus the rules that sit above it.
#[derive(Clone)]
pub struct CallScope {
    store: Store,
    sources: ingest::SourceSettings,
    max_response_bytes: usize,
    exact_total_limit: i64,
    quarantine_limits: domain::erasure::QuarantineLimits,
    /// The pull's settings and per-source rate limiters (SyncService).
    sync: std::sync::Arc<sync::SyncRuntime>,
    /// This server's metrics registry (`GET /metrics`).
    metrics: crate::metrics::Metrics,
    /// Ends server streams (ExportCalls, WatchCalls) when it turns true.
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    watch: events::WatchSettings,
    /// Which webhook URLs SubscriptionService accepts.
    webhooks: subscriptions::UrlPolicy,
}

impl CallScope {
    pub fn new(store: Store, sources: ingest::SourceSettings) -> Self {
        Self {
            store,
            sources,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            exact_total_limit: domain::limits::MAX_EXACT_TOTAL,
            quarantine_limits: Default::default(),
            sync: Default::default(),
            metrics: crate::metrics::Metrics::new(),
            shutdown: None,
            watch: Default::default(),
            webhooks: Default::default(),
        }
    }

    /// The same service pulling vendor sources with these settings.
    pub fn with_sync(mut self, settings: crate::sync::SyncSettings) -> Self {
        self.sync = std::sync::Arc::new(sync::SyncRuntime::new(settings));
        self
    }

    /// The pull's settings.
    pub fn sync_settings(&self) -> &crate::sync::SyncSettings {
        &self.sync.settings
    }

    /// The registry this service and its server record into.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The same service, whose server streams end when `stop` turns true
    /// (graceful shutdown waits for every open stream).
    pub fn with_shutdown(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.shutdown = Some(stop);
        self
    }

    /// The same service with other watch timings.
    pub fn with_watch_settings(mut self, settings: events::WatchSettings) -> Self {
        self.watch = settings;
        self
    }

    /// Cuts ListCalls pages short before their estimated size passes `bytes`.
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Counts `include_total` exactly up to `limit` calls; beyond it the
    /// total is `limit`, flagged as capped.
    pub fn with_exact_total_limit(mut self, limit: i64) -> Self {
        self.exact_total_limit = limit;
        self
    }

    /// The same service with other caps on the quarantine.
    pub fn with_quarantine_limits(mut self, limits: domain::erasure::QuarantineLimits) -> Self {
        self.quarantine_limits = limits;
        self
    }

    /// The same service with other rules for webhook URLs.
    pub fn with_url_policy(mut self, policy: subscriptions::UrlPolicy) -> Self {
        self.webhooks = policy;
        self
    }

    /// The rules webhook URLs follow (also at delivery time).
    pub fn url_policy(&self) -> &subscriptions::UrlPolicy {
        &self.webhooks
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs the write `attempt` again, after a pause of a few random
    /// milliseconds, while its transaction loses a race with a concurrent
    /// one ([`StoreError::Conflict`]: PostgreSQL rolled it back whole to
    /// break a deadlock, or a concurrent writer inserted a key first), up to
    /// [`WRITE_ATTEMPTS`] runs in all. A transaction that lost wrote
    /// nothing, so running it again is running it once; batches that meet
    /// over the same calls or numbers in opposite orders then both succeed
    /// instead of one answering UNAVAILABLE. `operation` names the write in
    /// the log and in `callscope_write_retries_total`.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut runs = 1;
        loop {
            match attempt().await {
                Err(StoreError::Conflict(cause)) if runs < WRITE_ATTEMPTS => {
                    tracing::info!(operation, run = runs, error = %cause, "write lost a race with a concurrent one, running it again");
                    self.metrics.write_retried(operation);
                    // Apart, so two writers that met do not meet again.
                    let pause = rand::random_range(1..=WRITE_RETRY_PAUSE_MS * u64::from(runs));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    runs += 1;
                }
                result => return result,
            }
        }
    }

    /// Stores validated calls, all or none.
    pub async fn upsert_calls(
        &self,
        tenant: &str,
        calls: &[domain::Call],
    ) -> Result<Vec<UpsertResult>, ServiceError> {
        too_many("calls", calls.len(), MAX_CALLS_PER_REQUEST)?;
        let now = domain::now_ms();
        let results = self
            .retrying("upsert_calls", || {
                self.store.upsert_calls(tenant, calls, now)
            })
            .await?;
        for outcome in [
            domain::UpsertOutcome::Inserted,
            domain::UpsertOutcome::Updated,
            domain::UpsertOutcome::Unchanged,
            domain::UpsertOutcome::Erased,
        ] {
            let count = results.iter().filter(|r| r.outcome == outcome).count();
            let label = ingest::upsert_outcome_label(outcome);
            (self.metrics).ingest_records(domain::Source::Api.slug(), label, count as u64);
        }
        Ok(results)
    }

    /// One page of calls; `page_token` is checked against the tenant, the
    /// filter and the order. A page whose calls would pass the response
    /// size limit is cut short (never below one call) and continues with a
    /// token from its last call.
    pub async fn list_calls(
        &self,
        tenant: &str,
        mut query: CallQuery,
        page_token: &str,
    ) -> Result<ListedCalls, ServiceError> {
        let scope = query.scope(tenant);
        query.total_limit = self.exact_total_limit;
        if !page_token.is_empty() {
            let cursor = PageToken::decode(page_token, &scope)
                .map_err(|e| Violations::one("page_token", e.to_string()))?;
            query.after = Some(cursor);
        }
        let CallPage {
            mut calls,
            mut next,
            total,
            total_capped,
        } = self.store.list_calls(tenant, &query).await?;
        // Room for the token, the total and the message framing.
        let budget = self.max_response_bytes.saturating_sub(1024);
        let keep = domain::calls_within(&calls, budget);
        if keep < calls.len() {
            calls.truncate(keep);
            next = calls.last().map(|last| query.order.cursor_of(last));
            tracing::debug!(kept = keep, "page cut short by the response size limit");
        }
        Ok(ListedCalls {
            calls,
            next_page_token: next
                .map(|c| PageToken::encode(&c, &scope))
                .unwrap_or_default(),
            total,
            total_capped,
        })
    }

    pub async fn get_call(
        &self,
        tenant: &str,
        call_id: &str,
        include_progress_turns: bool,
    ) -> Result<StoredCall, ServiceError> {
        if call_id.trim().is_empty() {
            return Err(Violations::one("call_id", "is required").into());
        }
        let not_found = || ServiceError::NotFound {
            what: "call",
            // Echoed in the status: an id no call can have is cut short.
            id: clip(&domain::without_nul(call_id), MAX_ID_BYTES),
        };
        if call_id.contains('\0') || call_id.len() > MAX_ID_BYTES {
            // No stored id looks like this: answer as for any unknown id.
            return Err(not_found());
        }
        self.store
            .get_call(tenant, call_id, include_progress_turns)
            .await?
            .ok_or_else(not_found)
    }

    /// One call named by our id or by the vendor's; NOT_FOUND when the
    /// tenant has no such call.
    pub async fn get_call_by(
        &self,
        tenant: &str,
        call: CallRef<'_>,
        include_progress_turns: bool,
    ) -> Result<StoredCall, ServiceError> {
        let (source, external_id) = match call {
            CallRef::Id(call_id) => {
                return self.get_call(tenant, call_id, include_progress_turns).await;
            }
            CallRef::External {
                source,
                external_id,
            } => (source, external_id),
        };
        let not_found = || ServiceError::NotFound {
            what: "call",
            id: format!(
                "{}/{}",
                source.key(),
                clip(&domain::without_nul(external_id), MAX_ID_BYTES)
            ),
        };
        if external_id.contains('\0') || external_id.len() > MAX_ID_BYTES {
            return Err(not_found());
        }
        let Some(call_id) = self.store.find_call_id(tenant, source, external_id).await? else {
            return Err(not_found());
        };
        // Deleted between the two reads: as unknown.
        self.store
            .get_call(tenant, &call_id, include_progress_turns)
            .await?
            .ok_or_else(not_found)
    }

    pub async fn upsert_tasks(&self, tenant: &str, tasks: &[Task]) -> Result<(), ServiceError> {
        too_many("tasks", tasks.len(), MAX_CATALOG_ITEMS)?;
        Ok(self.store.upsert_tasks(tenant, tasks).await?)
    }

    pub async fn upsert_tags(
        &self,
        tenant: &str,
        tags: &[Tag],
        groups: &[TagGroup],
    ) -> Result<(), ServiceError> {
        too_many("tags", tags.len(), MAX_CATALOG_ITEMS)?;
        too_many("tag_groups", groups.len(), MAX_CATALOG_ITEMS)?;
        Ok(self.store.upsert_tags(tenant, tags, groups).await?)
    }

    pub async fn upsert_intent_levels(
        &self,
        tenant: &str,
        levels: &[IntentLevel],
    ) -> Result<(), ServiceError> {
        too_many("intent_levels", levels.len(), MAX_CATALOG_ITEMS)?;
        Ok(self.store.upsert_intent_levels(tenant, levels).await?)
    }
}
