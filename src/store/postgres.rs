//! PostgreSQL backend: one pool for reads and writes; the shared SQL of
//! `sql_backend!` with `$n` placeholders.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use super::filter_sql::{push_page, push_where};
use super::{CallPage, IngestBatch, IngestResults, StoreError, StoreOptions, WriteMode};
use crate::domain::{
    Billing, Call, CallOrder, CallOutcome, CallQuery, Cursor, DialogueTurn, Gender, IntentLevel,
    Location, Party, RejectedRecord, Source, StoredCall, Tag, TagGroup, Task, TurnKind, UnixMs,
    UpsertOutcome, UpsertResult,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone)]
pub struct PgStore {
    // One pool serves both roles; the shared code names them apart for SQLite.
    pub(crate) writer: PgPool,
    pub(crate) reader: PgPool,
}

impl PgStore {
    pub async fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(&options.url)?
            .application_name("callscope")
            .options([
                // A statement never outlives a request: a stuck query is cut off.
                ("statement_timeout", "30s"),
                // Plan every execution with its parameters and the table's
                // current size. A generic plan cached while `calls` was empty
                // (a fresh database, before any ANALYZE) kept a sequential
                // scan for the look-up by external id: ingest fell tenfold by
                // 80k calls with autovacuum off.
                ("plan_cache_mode", "force_custom_plan"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            // Connections are checked before use, so a restarted server is
            // noticed on the next request instead of failing it.
            .test_before_acquire(true)
            .connect_with(connect)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
        })
    }

    /// Nothing to do after a write: autovacuum keeps the statistics.
    async fn after_write(&self) {}

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}

/// Rewrites `?` placeholders as `$1, $2, …`. The shared SQL has no `?` inside
/// string literals, so every `?` is a placeholder.
pub(crate) fn sql(text: &str) -> sqlx::AssertSqlSafe<String> {
    let mut out = String::with_capacity(text.len() + 8);
    let mut n = 0;
    for ch in text.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    sqlx::AssertSqlSafe(out)
}

super::sql_backend::sql_backend!(
    store = PgStore,
    db = Postgres,
    row = PgRow,
    begin = "BEGIN",
    sql = sql
);

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(
            super::sql("SELECT a FROM t WHERE x = ? AND y IN (?, ?)").0,
            "SELECT a FROM t WHERE x = $1 AND y IN ($2, $3)"
        );
    }
}
