//! SQLite backend: one file, WAL, a single writer connection that takes the
//! write lock up front (`BEGIN IMMEDIATE`) and a pool of readers.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::filter_sql::{push_page, push_where};
use super::{CallPage, IngestBatch, IngestResults, StoreError, StoreOptions, WriteMode};
use crate::domain::{
    Billing, Call, CallOrder, CallOutcome, CallQuery, Cursor, DialogueTurn, Gender, IntentLevel,
    Location, Party, RejectedRecord, Source, StoredCall, Tag, TagGroup, Task, TurnKind, UnixMs,
    UpsertOutcome, UpsertResult,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        let base = SqliteConnectOptions::from_str(&options.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged batch survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.busy_timeout)
            // Bounds the work of `PRAGMA optimize` (see `after_write`).
            .pragma("analysis_limit", "1000")
            // LIKE matches case as PostgreSQL does, so a search means the
            // same on both backends.
            .pragma("case_sensitive_like", "ON")
            .foreign_keys(false);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // Readers map the file instead of copying pages through a small
            // per-connection cache: analytics scans whole indexes.
            .connect_with(base.read_only(true).pragma("mmap_size", "1073741824"))
            .await?;
        Ok(Self { writer, reader })
    }

    /// Keeps the planner's statistics current after a committed write.
    /// Without them SQLite walks the whole call-time index for a phone
    /// listing instead of using the phone indexes (seconds at 200k calls).
    /// `PRAGMA optimize` analyzes only tables whose size changed a lot since
    /// their last analysis, sampling at most `analysis_limit` rows, and costs
    /// next to nothing otherwise. A failure is logged: the write stands.
    async fn after_write(&self) {
        if let Err(e) = sqlx::query("PRAGMA optimize").execute(&self.writer).await {
            tracing::warn!(error = %e, "pragma optimize failed");
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}

/// SQLite takes `?` placeholders as written.
pub(crate) fn sql(text: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text.to_owned())
}

super::sql_backend::sql_backend!(
    store = SqliteStore,
    db = Sqlite,
    row = SqliteRow,
    // Take the write lock up front: a deferred transaction that reads first
    // could fail to upgrade under a concurrent writer.
    begin = "BEGIN IMMEDIATE",
    sql = sql
);
