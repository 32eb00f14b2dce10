//! Storage: the only place with SQL. `Store` is the one interface the service
//! uses; each backend implements it in its own module.

mod analytics;
pub(crate) mod filter_sql;
pub(crate) mod postgres;
mod sql_backend;
pub(crate) mod sqlite;
mod task_numbers;

use std::time::Duration;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::domain::{
    Call, CallQuery, Cursor, IntentLevel, RejectedRecord, Source, StoredCall, Tag, TagGroup, Task,
    UnixMs, UpsertResult,
};

/// Everything one request of vendor records stores, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct IngestBatch {
    pub calls: Vec<Call>,
    /// Calls known only from a dialing list's call history: inserted when new,
    /// never used to overwrite a stored record.
    pub history_calls: Vec<Call>,
    pub tasks: Vec<Task>,
    /// Dialing-list entries from vendor number lists, by task.
    pub numbers: Vec<(String, Vec<crate::domain::TaskNumberEntry>)>,
    pub rejected: Vec<RejectedRecord>,
}

/// What storing an [`IngestBatch`] did, call by call, in batch order.
#[derive(Debug, Clone, Default)]
pub struct IngestResults {
    pub calls: Vec<UpsertResult>,
    pub history_calls: Vec<UpsertResult>,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is too busy; the client may retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A fault of ours or of the database; logged, never sent to a client.
    #[error("database error: {0}")]
    Internal(#[source] sqlx::Error),
    /// The database holds something it should not (a bad enum number, bad JSON).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database URL names no backend we have.
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &err {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(err)
            }
            // SQLITE_BUSY / SQLITE_LOCKED: another writer held the lock past
            // the busy timeout.
            E::Database(db) if matches!(db.code().as_deref(), Some("5" | "6")) => {
                StoreError::Unavailable(err)
            }
            // PostgreSQL: connection exceptions (08…), shutdown (57P…),
            // serialization failures and deadlocks (40…): retryable.
            E::Database(db)
                if db.code().is_some_and(|c| {
                    c.len() == 5
                        && (c.starts_with("08") || c.starts_with("57P") || c.starts_with("40"))
                }) =>
            {
                StoreError::Unavailable(err)
            }
            _ => StoreError::Internal(err),
        }
    }
}

/// How a new version of a call is written over a stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// The new version is the whole record (UpsertCalls).
    Replace,
    /// Vendor records: a version without turns or tags keeps the stored ones,
    /// since vendors report one call in several partial views.
    KeepMissingParts,
    /// Only stored when the call is not there yet (a dialing list's history).
    InsertOnly,
}

/// A page of calls and what it takes to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPage {
    pub calls: Vec<StoredCall>,
    /// The sort key of the last call, when another page follows.
    pub next: Option<crate::domain::Cursor>,
    pub total: Option<i64>,
}

/// Connection settings common to every backend.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub busy_timeout: Duration,
}

/// The storage backend chosen by the database URL.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Connects and applies the backend's migrations.
    pub async fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        if options.url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(options).await?))
        } else if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://")
        {
            Ok(Store::Postgres(PgStore::connect(options).await?))
        } else {
            Err(StoreError::UnsupportedUrl(redact(&options.url)))
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// Stores calls in one transaction: all of them or none.
    pub async fn upsert_calls(
        &self,
        tenant: &str,
        calls: &[Call],
        now: UnixMs,
    ) -> Result<Vec<UpsertResult>, StoreError> {
        match self {
            Store::Sqlite(s) => s.upsert_calls(tenant, calls, now).await,
            Store::Postgres(s) => s.upsert_calls(tenant, calls, now).await,
        }
    }

    pub async fn ingest(
        &self,
        tenant: &str,
        batch: &IngestBatch,
        now: UnixMs,
    ) -> Result<IngestResults, StoreError> {
        match self {
            Store::Sqlite(s) => s.ingest(tenant, batch, now).await,
            Store::Postgres(s) => s.ingest(tenant, batch, now).await,
        }
    }

    pub async fn list_rejected(
        &self,
        tenant: &str,
        source: Option<Source>,
        page_size: u32,
        after: Option<&Cursor>,
    ) -> Result<(Vec<RejectedRecord>, Option<Cursor>), StoreError> {
        match self {
            Store::Sqlite(s) => s.list_rejected(tenant, source, page_size, after).await,
            Store::Postgres(s) => s.list_rejected(tenant, source, page_size, after).await,
        }
    }

    pub async fn list_calls(
        &self,
        tenant: &str,
        query: &CallQuery,
    ) -> Result<CallPage, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_calls(tenant, query).await,
            Store::Postgres(s) => s.list_calls(tenant, query).await,
        }
    }

    pub async fn get_call(
        &self,
        tenant: &str,
        call_id: &str,
        include_progress_turns: bool,
    ) -> Result<Option<StoredCall>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get_call(tenant, call_id, include_progress_turns).await,
            Store::Postgres(s) => s.get_call(tenant, call_id, include_progress_turns).await,
        }
    }

    pub async fn upsert_tasks(&self, tenant: &str, tasks: &[Task]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.upsert_tasks(tenant, tasks).await,
            Store::Postgres(s) => s.upsert_tasks(tenant, tasks).await,
        }
    }

    pub async fn upsert_tags(
        &self,
        tenant: &str,
        tags: &[Tag],
        groups: &[TagGroup],
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.upsert_tags(tenant, tags, groups).await,
            Store::Postgres(s) => s.upsert_tags(tenant, tags, groups).await,
        }
    }

    pub async fn upsert_intent_levels(
        &self,
        tenant: &str,
        levels: &[IntentLevel],
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.upsert_intent_levels(tenant, levels).await,
            Store::Postgres(s) => s.upsert_intent_levels(tenant, levels).await,
        }
    }
}

/// A database URL with any password replaced, safe to log.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
