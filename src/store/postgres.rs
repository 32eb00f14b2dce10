//! Connecting to PostgreSQL: a pool on the primary for writes and for the
//! reads that must see them, and optionally one on a streaming replica for
//! the reads that may lag; a statement timeout keeps a statement inside a
//! request.
//!
//! Every statement, these too, runs inside an explicit transaction, so
//! callscope works behind PgBouncer in transaction mode (docs/scaling.md,
//! Step 3).

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};

use super::{SqlStore, StoreError, StoreOptions};

/// Connects and migrates (the primary; a replica follows it by itself).
pub(super) async fn connect(options: &StoreOptions) -> Result<SqlStore<Postgres>, StoreError> {
    let pool = open_pool(&options.url, options).await?;
    migrate(&pool).await?;
    warn_when_search_cannot_use_its_index(&pool).await;
    let store = SqlStore::new(pool.clone(), pool);
    let Some(read_url) = &options.read_url else {
        return Ok(store);
    };
    let replica = open_pool(read_url, options).await?;
    // A replica is read-only and follows the primary: a writable server
    // here is a second primary (or the same one), whose reads would never
    // see this server's writes.
    let rows = SqlStore::fetch_all_untenanted(
        &replica,
        &mut QueryBuilder::new("SELECT pg_is_in_recovery()"),
    )
    .await?;
    let in_recovery: bool = match rows.first() {
        Some(row) => row.try_get(0)?,
        None => false,
    };
    if !in_recovery {
        return Err(StoreError::NotAReplica(super::redact(read_url)));
    }
    Ok(store.with_replica(replica))
}

/// Applies the pending migrations in one transaction, which a
/// transaction-scoped advisory lock keeps to one server at a time (replicas
/// starting together). sqlx's own lock is off: it is a session lock, taken
/// and released by statements of their own, which PgBouncer in transaction
/// mode may send to two different server connections, leaving the lock held
/// on one of them. Each migration runs in a savepoint; a migration marked
/// `-- no-transaction` (`CREATE INDEX CONCURRENTLY`) cannot run here.
async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_locking(false);
    let mut tx = pool.begin().await?;
    // Class 7002: the migrations (7001 is the erasure lock, see `dialect.rs`).
    sqlx::query("SELECT pg_advisory_xact_lock(7002, 0)")
        .execute(&mut *tx)
        .await?;
    migrator.run(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// How long a pooled connection may sit idle before it is pinged on its
/// next acquire. A server restarted faster than this (or a backend ended
/// within this of its connection's last use) can fail one request per such
/// connection: the client sees UNAVAILABLE, which it may retry.
const PING_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The session options of every connection the store opens (the benchmark
/// suite's direct SQL takes them too).
pub const SESSION_OPTIONS: [(&str, &str); 2] = [
    // A statement never outlives a request: a stuck query is cut off.
    ("statement_timeout", "30s"),
    // No LLVM compilation of callscope's statements: the rollup reads of a
    // 1M-call task's 30-day GetCallStats are estimated past
    // `jit_above_cost`, and compiling took longer than running them (psql:
    // 32-50 ms for the day-tier sums with JIT, 12-16 ms without). Every
    // statement here is short or a cursor.
    ("jit", "off"),
];

async fn open_pool(url: &str, options: &StoreOptions) -> Result<PgPool, StoreError> {
    let connect = PgConnectOptions::from_str(url)?
        .application_name("callscope")
        .options(SESSION_OPTIONS);
    Ok(PgPoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(options.acquire_timeout)
        // A connection idle for a while is checked before use, so a server
        // restarted meanwhile is noticed on the next request instead of
        // failing it. One in steady use is not: every connection returned
        // to the pool is already pinged on release (sqlx), and a ping on
        // every acquire too was a fifth of a listing's exchanges.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(connect)
        .await?)
}

/// Under row-level security PostgreSQL evaluates only leakproof functions
/// ahead of the policy, and `LIKE` (`textlike`) is not marked leakproof, so
/// a transcript or phone search cannot use its trigram index: it scans the
/// tenant's rows instead (measured: 50 ms against 0.2 ms on 100,000 calls,
/// 23x the superuser's p99 in the benchmark suite). Marking it leakproof
/// takes a superuser, once per database; this says so at start.
async fn warn_when_search_cannot_use_its_index(pool: &PgPool) {
    let rows = SqlStore::fetch_all_untenanted(
        pool,
        &mut QueryBuilder::new(
            "SELECT p.proleakproof, r.rolsuper OR r.rolbypassrls AS bypasses \
             FROM pg_proc p, pg_roles r \
             WHERE p.oid = 'textlike(text, text)'::regprocedure AND r.rolname = current_user",
        ),
    )
    .await;
    match rows.as_deref().map(<[_]>::first) {
        Ok(Some(row)) => {
            let leakproof: bool = row.try_get("proleakproof").unwrap_or(true);
            let bypasses: bool = row.try_get("bypasses").unwrap_or(true);
            if !leakproof && !bypasses {
                tracing::warn!(
                    "transcript and phone searches cannot use their trigram indexes under \
                     row-level security: as a superuser, run once in this database \
                     `ALTER FUNCTION textlike(text, text) LEAKPROOF` (see README, PostgreSQL)"
                );
            }
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "could not check whether textlike is leakproof"),
    }
}
