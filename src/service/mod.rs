//! The operations callscope offers, independent of transport: the gRPC
//! handlers, the HTTP webhooks and `callscope import` all call into [`CallScope`].

pub mod ingest;

pub mod analytics;
pub mod keys;

pub mod admin;
pub mod error;
pub mod events;

pub use error::ServiceError;

use crate::domain::limits::{
    DEFAULT_MAX_RESPONSE_BYTES, MAX_CALLS_PER_REQUEST, MAX_CATALOG_ITEMS, MAX_ID_BYTES, clip,
    too_many,
};
use crate::domain::{
    self, CallQuery, IntentLevel, PageToken, StoredCall, Tag, TagGroup, Task, UpsertResult,
    Violations,
};
use crate::store::{CallPage, Store};

/// A page of calls with the token of the next one.
pub struct ListedCalls {
    pub calls: Vec<StoredCall>,
    pub next_page_token: String,
    pub total: Option<i64>,
}

/// The service: a store plus the rules that sit above it.
#[derive(Clone)]
pub struct CallScope {
    store: Store,
    sources: ingest::SourceSettings,
    max_response_bytes: usize,
    quarantine_limits: domain::erasure::QuarantineLimits,
    /// Ends server streams (ExportCalls, WatchCalls) when it turns true.
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    watch: events::WatchSettings,
}

impl CallScope {
    pub fn new(store: Store, sources: ingest::SourceSettings) -> Self {
        Self {
            store,
            sources,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            quarantine_limits: Default::default(),
            shutdown: None,
            watch: Default::default(),
        }
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

    /// The same service with other caps on the quarantine.
    pub fn with_quarantine_limits(mut self, limits: domain::erasure::QuarantineLimits) -> Self {
        self.quarantine_limits = limits;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores validated calls, all or none.
    pub async fn upsert_calls(
        &self,
        tenant: &str,
        calls: &[domain::Call],
    ) -> Result<Vec<UpsertResult>, ServiceError> {
        too_many("calls", calls.len(), MAX_CALLS_PER_REQUEST)?;
        Ok(self
            .store
            .upsert_calls(tenant, calls, domain::now_ms())
            .await?)
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
        if !page_token.is_empty() {
            let cursor = PageToken::decode(page_token, &scope)
                .map_err(|e| Violations::one("page_token", e.to_string()))?;
            query.after = Some(cursor);
        }
        let CallPage {
            mut calls,
            mut next,
            total,
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
