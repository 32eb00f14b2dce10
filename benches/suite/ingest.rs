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
use crate::server::Running;
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

/// Ingest through UpsertCalls: `streams` connections, each sending batches
/// taken from a shared counter. Answers rows/s.
pub async fn grpc(server: &Running, args: &Args) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.streams {
        let mut client = IngestServiceClient::new(server.channel().await?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let next = next.clone();
        let (total, batch) = (args.calls, args.batch);
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let first = b * batch;
                if first >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                let calls = (first..(first + batch).min(total))
                    .map(|i| synth(i, total).to_proto())
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
    Ok(args.calls as f64 / started.elapsed().as_secs_f64())
}

/// COPY of every row into `tables` of the database at `url`, as many
/// streams as the gRPC ingest, one transaction per batch as an UpsertCalls
/// request is. Rows/s.
pub async fn pg_copy(url: &str, args: &Args, tables: Tables) -> anyhow::Result<f64> {
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
        args.calls
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.streams {
        let mut conn = PgConnection::connect(url).await?;
        let next = next.clone();
        let (total, batch) = (args.calls, args.batch);
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let first = b * batch;
                if first >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                let rows = baseline_rows(first..(first + batch).min(total), total);
                let mut tx = conn.begin().await?;
                for ((bench, real, columns), rows) in BASE_TABLES.iter().zip(&rows) {
                    if rows.is_empty() {
                        continue;
                    }
                    let table = if like.is_some() { bench } else { real };
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
    let rate = args.calls as f64 / started.elapsed().as_secs_f64();
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

/// Multi-row INSERTs (one per batch and table), one transaction per batch
/// on one connection: SQLite's fastest plain way to commit what one
/// UpsertCalls request commits. [`Tables::Real`] are those of `url`, which
/// must be a freshly migrated file of its own; [`Tables::Bare`] copies are
/// made in `url` and dropped afterwards. Rows/s.
pub async fn sqlite_insert(url: &str, args: &Args, tables: Tables) -> anyhow::Result<f64> {
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
        args.calls
    );
    let started = Instant::now();
    let mut first = 0;
    while first < args.calls {
        // One transaction per batch, as one UpsertCalls request commits.
        let mut tx = conn.begin().await?;
        let rows = baseline_rows(first..(first + args.batch).min(args.calls), args.calls);
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
    let rate = args.calls as f64 / started.elapsed().as_secs_f64();
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
