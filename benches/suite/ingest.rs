//! Ingest: `UpsertCalls` over gRPC beside the same rows written the plain way
//! (PostgreSQL binary `COPY … FROM STDIN`; SQLite multi-row `INSERT`, since it has no
//! COPY), into tables with the same indexes and, as a diagnostic, without.

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

/// Whether a baseline writes into tables with every index of the real ones.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Indexes {
    All,
    None,
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

/// COPY of every row into tables like the real ones (`LIKE … INCLUDING ALL`
/// copies the keys and every index; `INCLUDING DEFAULTS` none), as many
/// streams as the gRPC ingest, one transaction per batch as an UpsertCalls
/// request is. Rows/s.
pub async fn pg_copy(
    url: &str,
    pool: &PgPool,
    args: &Args,
    indexes: Indexes,
) -> anyhow::Result<f64> {
    let including = match indexes {
        Indexes::All => "ALL",
        Indexes::None => "DEFAULTS",
    };
    for (table, like, _) in BASE_TABLES {
        pool.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (LIKE {like} INCLUDING {including})"
        )))
        .await?;
    }
    eprintln!(
        "[postgres] COPY of {} calls (indexes: {indexes:?})",
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
                for ((table, _, columns), rows) in BASE_TABLES.iter().zip(&rows) {
                    if rows.is_empty() {
                        continue;
                    }
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
    eprintln!("[postgres] COPY (indexes: {indexes:?}): {rate:.0} rows/s");
    for (table, _, _) in BASE_TABLES {
        pool.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
            .await?;
    }
    Ok(rate)
}

/// Multi-row INSERTs (one per batch and table) in one transaction on one
/// connection, SQLite's fastest plain bulk load. With [`Indexes::All`] the
/// rows go into the real tables of `url`, which must be a freshly migrated
/// file of its own; with [`Indexes::None`] into column-only copies of them,
/// dropped afterwards. Rows/s.
pub async fn sqlite_insert(url: &str, args: &Args, indexes: Indexes) -> anyhow::Result<f64> {
    let mut conn = SqliteConnection::connect_with(
        &url.parse::<SqliteConnectOptions>()?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full),
    )
    .await?;
    let table_name = |(bench, real, _): &(&'static str, &'static str, _)| match indexes {
        Indexes::All => *real,
        Indexes::None => *bench,
    };
    if indexes == Indexes::None {
        for (table, like, _) in BASE_TABLES {
            conn.execute(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} AS SELECT * FROM {like} WHERE 0"
            )))
            .await?;
        }
    }
    eprintln!(
        "[sqlite] multi-row INSERT of {} calls (indexes: {indexes:?})",
        args.calls
    );
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let mut first = 0;
    while first < args.calls {
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
        first += args.batch;
    }
    tx.commit().await?;
    let rate = args.calls as f64 / started.elapsed().as_secs_f64();
    eprintln!("[sqlite] INSERT (indexes: {indexes:?}): {rate:.0} rows/s");
    if indexes == Indexes::None {
        for (table, _, _) in BASE_TABLES {
            conn.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
                .await?;
        }
    }
    conn.close().await?;
    Ok(rate)
}
