//! The operations callscope offers, independent of transport: the gRPC
//! handlers, the HTTP webhooks and `callscope import` all call into [`CallScope`].

pub mod ingest;

pub mod analytics;

pub mod admin;

use crate::domain::{
    self, CallQuery, IntentLevel, PageToken, StoredCall, Tag, TagGroup, Task, UpsertResult,
    Violations, call_query_scope,
};
use crate::store::{CallPage, Store, StoreError};

/// The most calls one UpsertCalls request may carry.
pub const MAX_BATCH: usize = 1000;

/// Why an operation failed, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong; each violation names a field.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Violations> for ServiceError {
    fn from(v: Violations) -> Self {
        ServiceError::Invalid(v)
    }
}

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
    quarantine_limits: domain::erasure::QuarantineLimits,
}

impl CallScope {
    pub fn new(store: Store, sources: ingest::SourceSettings) -> Self {
        Self {
            store,
            sources,
            quarantine_limits: Default::default(),
        }
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
        if calls.len() > MAX_BATCH {
            return Err(
                Violations::one("calls", format!("at most {MAX_BATCH} calls per request")).into(),
            );
        }
        Ok(self
            .store
            .upsert_calls(tenant, calls, domain::now_ms())
            .await?)
    }

    /// One page of calls; `page_token` is checked against the filter and order.
    pub async fn list_calls(
        &self,
        tenant: &str,
        mut query: CallQuery,
        page_token: &str,
    ) -> Result<ListedCalls, ServiceError> {
        let scope = call_query_scope(&query.filter, query.order);
        if !page_token.is_empty() {
            let cursor = PageToken::decode(page_token, &scope)
                .map_err(|e| Violations::one("page_token", e.to_string()))?;
            query.after = Some(cursor);
        }
        let CallPage { calls, next, total } = self.store.list_calls(tenant, &query).await?;
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
        if call_id.contains('\0') || call_id.len() > 256 {
            // No stored id looks like this: answer as for any unknown id.
            return Err(ServiceError::NotFound {
                what: "call",
                id: domain::without_nul(call_id),
            });
        }
        self.store
            .get_call(tenant, call_id, include_progress_turns)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: "call",
                id: call_id.to_owned(),
            })
    }

    pub async fn upsert_tasks(&self, tenant: &str, tasks: &[Task]) -> Result<(), ServiceError> {
        Ok(self.store.upsert_tasks(tenant, tasks).await?)
    }

    pub async fn upsert_tags(
        &self,
        tenant: &str,
        tags: &[Tag],
        groups: &[TagGroup],
    ) -> Result<(), ServiceError> {
        Ok(self.store.upsert_tags(tenant, tags, groups).await?)
    }

    pub async fn upsert_intent_levels(
        &self,
        tenant: &str,
        levels: &[IntentLevel],
    ) -> Result<(), ServiceError> {
        Ok(self.store.upsert_intent_levels(tenant, levels).await?)
    }
}
