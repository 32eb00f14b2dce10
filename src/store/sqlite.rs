//! Connecting to SQLite: one file, WAL, a single writer connection that takes
//! the write lock up front (`BEGIN IMMEDIATE`) and a pool of read-only readers.

use std::str::FromStr;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{SqlStore, StoreError, StoreOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens (creating when missing) and migrates the database file.
pub(super) async fn connect(options: &StoreOptions) -> Result<SqlStore<Sqlite>, StoreError> {
    let base = SqliteConnectOptions::from_str(&options.url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: an acknowledged batch survives a power cut, not only a crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(options.busy_timeout)
        // Bounds the work of `PRAGMA optimize` (the dialect's after-write).
        .pragma("analysis_limit", "1000")
        // LIKE matches case as PostgreSQL does, so a search means the same
        // on both backends.
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
    Ok(SqlStore::new(writer, reader))
}
