//! Connecting to SQLite: one file, WAL, a single writer connection that takes
//! the write lock up front (`BEGIN IMMEDIATE`) and a pool of read-only readers.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::dialect::AfterWriteSchedule;
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
    let schedule = Arc::new(AfterWriteSchedule::default());
    let reader = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        // A reader opened before the last `PRAGMA optimize` plans with the
        // statistics from before it: it is closed instead of handed out, and
        // its successor reads them anew.
        .before_acquire({
            let schedule = schedule.clone();
            move |_, meta| {
                let current = !schedule.ran_since(meta.age);
                Box::pin(async move { Ok(current) })
            }
        })
        // Readers map the file instead of copying pages through a small
        // per-connection cache: analytics scans whole indexes.
        .connect_with(base.read_only(true).pragma("mmap_size", "1073741824"))
        .await?;
    Ok(SqlStore::with_schedule(writer, reader, schedule))
}

/// Stores `n` calls of tenant `t1` to distinct numbers, all from one caller,
/// as a campaign dialling from one line makes them (tests of plans).
#[cfg(test)]
pub(super) async fn store_calls_from_one_caller(store: &SqlStore<Sqlite>, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|n| crate::domain::Call {
            external_id: format!("e{n}"),
            callee: format!("+86138{n:08}"),
            caller: "+862100000000".into(),
            ..crate::domain::sample::sample_call()
        })
        .collect();
    for batch in calls.chunks(500) {
        super::IngestStore::upsert_calls(store, "t1", batch, 1_700_000_000_000)
            .await
            .expect("calls stored");
    }
}

/// A new store on the SQLite file of `url` with one reader connection
/// (tests of plans).
#[cfg(test)]
pub(super) async fn one_reader_store(url: &str) -> SqlStore<Sqlite> {
    connect(&StoreOptions {
        url: url.to_owned(),
        read_url: None,
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(30),
        busy_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .expect("a new SQLite store")
}
