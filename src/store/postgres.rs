//! Connecting to PostgreSQL: one pool for reads and writes, with a statement
//! timeout that keeps a statement inside a request.

use std::str::FromStr;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{SqlStore, StoreError, StoreOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connects and migrates.
pub(super) async fn connect(options: &StoreOptions) -> Result<SqlStore<Postgres>, StoreError> {
    let connect = PgConnectOptions::from_str(&options.url)?
        .application_name("callscope")
        .options([
            // A statement never outlives a request: a stuck query is cut off.
            ("statement_timeout", "30s"),
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
    Ok(SqlStore::new(pool.clone(), pool))
}
