//! Ingest: `UpsertCalls` over gRPC beside the same rows written the plain way
//! (PostgreSQL binary `COPY … FROM STDIN`; SQLite multi-row `INSERT`, since it has no
//! COPY), into the real tables (keys, indexes and triggers) and, as
//! diagnostics, into copies without triggers or without indexes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Executor, PgConnection, QueryBuilder, Sqlite};

use crate::Args;
use crate::data::{BASE_TABLES, Val, baseline_rows, copy_binary, synth};
use crate::server::{MAX_MESSAGE_BYTES, Running};
use callscope::proto::{self, ingest_service_client::IngestServiceClient};

/// Which tables a baseline writes into.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tables {
    /// Column-only copies: no keys, indexes or triggers (diagnostic).
    Bare,
    /// Copies with every key and index of the real tables but none of their
    /// triggers (`LIKE … INCLUDING ALL`; diagnostic, PostgreSQL).
    Indexed,
    /// The real tables of a freshly migrated database of their own: every
    /// key, index and trigger (task counts, number states, rollups), so the
    /// baseline leaves the database as ingest does, but for the events.
    Real,
}

/// Which calls of the synthetic data set a load writes: indexes `first..end`
/// of a data set of `total` calls (whose size spreads their times).
#[derive(Clone, Copy, Debug)]
pub struct Slice {
    pub first: u64,
    pub end: u64,
    pub total: u64,
}

impl Slice {
    /// The whole data set of `--calls`.
    pub fn all(args: &Args) -> Self {
        Slice {
            first: 0,
            end: args.calls,
            total: args.calls,
        }
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.first)
    }
}

/// Ingest through UpsertCalls: `streams` connections, each sending batches
/// taken from a shared counter. Answers rows/s.
pub async fn grpc(server: &Running, args: &Args) -> anyhow::Result<f64> {
    grpc_slice(server, args, Slice::all(args)).await
}

/// [`grpc`] of the calls of `slice`.
pub async fn grpc_slice(server: &Running, args: &Args, slice: Slice) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..args.streams {
        clients.push(
            IngestServiceClient::new(server.channel().await?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut client in clients {
        let next = next.clone();
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let first = slice.first + b * batch;
                if first >= slice.end {
                    return Ok::<_, anyhow::Error>(());
                }
                let calls = (first..(first + batch).min(slice.end))
                    .map(|i| synth(i, slice.total).to_proto())
                    .collect();
                client
                    .upsert_calls(proto::UpsertCallsRequest { calls })
                    .await
                    .with_context(|| format!("UpsertCalls batch {b}"))?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(slice.len() as f64 / started.elapsed().as_secs_f64())
}

/// COPY of every row into `tables` of the database at `url`, as many
/// streams as the gRPC ingest, one transaction per batch as an UpsertCalls
/// request is. Rows/s.
pub async fn pg_copy(url: &str, args: &Args, tables: Tables) -> anyhow::Result<f64> {
    pg_copy_slice(url, args, tables, Slice::all(args)).await
}

/// [`pg_copy`] of the calls of `slice`.
pub async fn pg_copy_slice(
    url: &str,
    args: &Args,
    tables: Tables,
    slice: Slice,
) -> anyhow::Result<f64> {
    let pool = PgPool::connect(url).await?;
    let like = match tables {
        Tables::Bare => Some("DEFAULTS"),
        Tables::Indexed => Some("ALL"),
        Tables::Real => None,
    };
    if let Some(including) = like {
        for (table, real, _) in BASE_TABLES {
            pool.execute(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} (LIKE {real} INCLUDING {including})"
            )))
            .await?;
        }
    }
    eprintln!(
        "[postgres] COPY of {} calls into {tables:?} tables",
        slice.len()
    );
    let started = Instant::now();
    copy_streams(url, slice, args.streams, args.batch, like.is_some()).await?;
    let rate = slice.len() as f64 / started.elapsed().as_secs_f64();
    eprintln!("[postgres] COPY into {tables:?} tables: {rate:.0} rows/s");
    if like.is_some() {
        for (table, _, _) in BASE_TABLES {
            pool.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
                .await?;
        }
    }
    pool.close().await;
    Ok(rate)
}

/// Binary COPY of `slice` in `streams` connections, one transaction per
/// `batch` calls, into the bench's copies of the tables or the real ones.
async fn copy_streams(
    url: &str,
    slice: Slice,
    streams: usize,
    batch: u64,
    into_copies: bool,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let mut conn = PgConnection::connect(url).await?;
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let first = slice.first + b * batch;
                if first >= slice.end {
                    return Ok::<_, anyhow::Error>(());
                }
                let rows = baseline_rows(first..(first + batch).min(slice.end), slice.total);
                let mut tx = conn.begin().await?;
                for ((bench, real, columns), rows) in BASE_TABLES.iter().zip(&rows) {
                    if rows.is_empty() {
                        continue;
                    }
                    let table = if into_copies { bench } else { real };
                    let statement = format!(
                        "COPY {table} ({}) FROM STDIN WITH (FORMAT binary)",
                        columns.join(", ")
                    );
                    let mut copy = tx.copy_in_raw(&statement).await?;
                    copy.send(copy_binary(rows)).await?;
                    copy.finish().await?;
                }
                tx.commit().await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Fills the real tables of the freshly migrated database at `url` with
/// `slice`, the quickest way that leaves them as ingest does (but for the
/// event log, which no listing reads): the call tables' secondary indexes
/// dropped, binary COPY of 5,000 calls a transaction with every trigger on
/// (rollups, counts, number states), then the indexes built again from
/// their own definitions, and `VACUUM ANALYZE`. This is how `--preload`
/// reaches sizes (10M calls) that no measured ingest reaches in a session.
pub async fn pg_bulk_load(url: &str, slice: Slice, streams: usize) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let tables: Vec<String> = BASE_TABLES
        .iter()
        .map(|(_, real, _)| (*real).to_owned())
        .collect();
    // Keys stay: they are what a COPY must check.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT x.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
         JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
         WHERE t.relname = ANY($1) AND t.relnamespace = current_schema()::regnamespace \
         AND NOT i.indisunique AND NOT i.indisprimary ORDER BY 1",
    )
    .bind(&tables)
    .fetch_all(&mut conn)
    .await?;
    for (name, _) in &indexes {
        conn.execute(sqlx::AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
            .await?;
    }
    eprintln!(
        "[postgres] preloading {} calls: COPY without {} secondary indexes",
        slice.len(),
        indexes.len()
    );
    let started = Instant::now();
    copy_streams(url, slice, streams, 5_000, false).await?;
    eprintln!(
        "[postgres] preload COPY: {:.0} s, {:.0} rows/s",
        started.elapsed().as_secs_f64(),
        slice.len() as f64 / started.elapsed().as_secs_f64()
    );
    conn.execute("SET maintenance_work_mem = '1GB'").await?;
    for (name, definition) in &indexes {
        let built = Instant::now();
        conn.execute(sqlx::AssertSqlSafe(definition.clone()))
            .await?;
        eprintln!(
            "[postgres] index {name} built in {:.0} s",
            built.elapsed().as_secs_f64()
        );
    }
    let vacuumed = Instant::now();
    conn.execute("VACUUM ANALYZE").await?;
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
            .fetch_one(&mut conn)
            .await?;
    eprintln!(
        "[postgres] VACUUM ANALYZE in {:.0} s; preload done in {:.0} s, database {size}",
        vacuumed.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Multi-row INSERTs (one per batch and table), one transaction per batch
/// on one connection: SQLite's fastest plain way to commit what one
/// UpsertCalls request commits. [`Tables::Real`] are those of `url`, which
/// must be a freshly migrated file of its own; [`Tables::Bare`] copies are
/// made in `url` and dropped afterwards. Rows/s.
pub async fn sqlite_insert(url: &str, args: &Args, tables: Tables) -> anyhow::Result<f64> {
    sqlite_insert_slice(url, args, tables, Slice::all(args)).await
}

/// [`sqlite_insert`] of the calls of `slice`.
pub async fn sqlite_insert_slice(
    url: &str,
    args: &Args,
    tables: Tables,
    slice: Slice,
) -> anyhow::Result<f64> {
    anyhow::ensure!(
        tables != Tables::Indexed,
        "SQLite has no LIKE … INCLUDING ALL"
    );
    let mut conn = SqliteConnection::connect_with(
        &url.parse::<SqliteConnectOptions>()?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full),
    )
    .await?;
    let table_name = |(bench, real, _): &(&'static str, &'static str, _)| match tables {
        Tables::Bare => *bench,
        _ => *real,
    };
    if tables == Tables::Bare {
        for (table, like, _) in BASE_TABLES {
            conn.execute(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} AS SELECT * FROM {like} WHERE 0"
            )))
            .await?;
        }
    }
    eprintln!(
        "[sqlite] multi-row INSERT of {} calls into {tables:?} tables",
        slice.len()
    );
    let started = Instant::now();
    let mut first = slice.first;
    while first < slice.end {
        // One transaction per batch, as one UpsertCalls request commits.
        let mut tx = conn.begin().await?;
        let rows = baseline_rows(first..(first + args.batch).min(slice.end), slice.total);
        for (table, rows) in BASE_TABLES.iter().zip(rows) {
            if rows.is_empty() {
                continue;
            }
            let mut qb = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO {} ({}) ",
                table_name(table),
                table.2.join(", ")
            ));
            qb.push_values(rows, |mut b, row| {
                for value in row {
                    match value {
                        Val::Null => b.push_bind(None::<i64>),
                        Val::Int(n) => b.push_bind(n),
                        Val::Text(t) => b.push_bind(t),
                    };
                }
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        first += args.batch;
    }
    let rate = slice.len() as f64 / started.elapsed().as_secs_f64();
    eprintln!("[sqlite] INSERT into {tables:?} tables: {rate:.0} rows/s");
    if tables == Tables::Bare {
        for (table, _, _) in BASE_TABLES {
            conn.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
                .await?;
        }
    }
    conn.close().await?;
    Ok(rate)
}
