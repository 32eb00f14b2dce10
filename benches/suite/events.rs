//! Getting data out, each beside its baseline in the same run:
//!
//! - `export_vs_copy_to` (PostgreSQL): ExportCalls of every call over gRPC,
//!   rows/s, against `COPY (SELECT … FROM calls … ORDER BY call_time,
//!   call_id) TO STDOUT` of the same rows on a direct connection, after a
//!   `VACUUM ANALYZE` of the loaded database. The client counts the calls
//!   of each message without decoding them, as COPY's rows are counted by
//!   their newlines; the same export decoded by prost is printed beside it.
//!   The peak RSS of the process (server and client in one) is sampled
//!   during the undecoded export.
//! - `watch_event_p99_ms` (each backend, the worse stands): a watcher of
//!   every call while calls are written at about 1,000 a second in batches
//!   of 10; each event's delay is its arrival at the client minus its
//!   `event_time`, which the server takes inside the writing transaction
//!   just before commit (same machine, same clock).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{Connection, PgConnection};
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

use callscope::proto::{
    self, call_service_client::CallServiceClient, ingest_service_client::IngestServiceClient,
};

use crate::Args;
use crate::data::{TENANT, synth};
use crate::ingest;
use crate::listing;
use crate::report::{Goal, Measure, p50_p99, worst};
use crate::server::{MAX_MESSAGE_BYTES, PgDatabase, Running};

/// ExportCalls at least 0.3 of COPY's rows/s.
pub const EXPORT_GOAL: Goal = Goal::RatioAtLeast(0.3);
/// Commit to event under 100 ms at p99.
pub const WATCH_GOAL: Goal = Goal::ValueBelow(100.0);

/// Calls written during the watch benchmark (about 5 s at 1,000 a second).
const WATCHED_CALLS: u64 = 5_000;

pub async fn run(args: &Args, sqlite: bool, postgres_url: Option<&str>) -> Vec<Measure> {
    let mut out = Vec::new();
    out.push(match postgres_url {
        Some(url) => match export_postgres(args, url).await {
            Ok(m) => m,
            Err(e) => Measure::missing("export_vs_copy_to", "rows/s", &format!("failed: {e:#}")),
        },
        None => Measure::missing(
            "export_vs_copy_to",
            "rows/s",
            "not measured: needs PostgreSQL (COPY is the baseline)",
        ),
    });
    let mut watches = Vec::new();
    if sqlite {
        watches.push(match watch_sqlite().await {
            Ok(m) => m,
            Err(e) => Measure::missing("watch_event_p99_ms", "ms", &format!("failed: {e:#}")),
        });
    }
    if let Some(url) = postgres_url {
        watches.push(match watch_postgres(url).await {
            Ok(m) => m,
            Err(e) => Measure::missing("watch_event_p99_ms", "ms", &format!("failed: {e:#}")),
        });
    }
    out.push(worst(watches).unwrap_or_else(|| {
        Measure::missing("watch_event_p99_ms", "ms", "not measured: no backend")
    }));
    out
}

/// The resident set of this process, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| {
            l.trim_start_matches("VmRSS:")
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn export_postgres(args: &Args, url: &str) -> anyhow::Result<Measure> {
    let db = PgDatabase::create(url).await?;
    let server = Running::start(&db.url).await?;
    ingest::grpc(&server, args).await.context("loading calls")?;
    // As autovacuum would have by now in production (it is off on this
    // cluster): a table never analysed gets estimates that turn the export's
    // walk of `calls_by_time` into a scan and sort of every later call for
    // each page (40-80 ms a page at 40,000 calls, growing with the table).
    let mut conn = PgConnection::connect(&db.url).await?;
    sqlx::Executor::execute(&mut conn, "VACUUM ANALYZE").await?;
    // The pages VACUUM dirtied are written now, not during the timed export.
    sqlx::Executor::execute(&mut conn, "CHECKPOINT").await?;

    // ExportCalls of every call, each call left undecoded (the measure), RSS
    // sampled meanwhile; then again decoded by prost (a diagnostic).
    let channel = server.channel().await?;
    let before = rss_mib();
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_mib() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let exported = export_undecoded(&channel).await?;
    let export_secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let started = Instant::now();
    let decoded = export_decoded(&channel).await?;
    let decoded_secs = started.elapsed().as_secs_f64();
    for (how, count) in [("undecoded", exported), ("decoded", decoded)] {
        anyhow::ensure!(
            count == args.calls,
            "exported {count} of {} calls ({how})",
            args.calls
        );
    }

    // The same rows with COPY … TO STDOUT, in the same order.
    let started = Instant::now();
    let mut copy = conn
        .copy_out_raw(&format!(
            "COPY (SELECT * FROM calls WHERE tenant_id = '{TENANT}' \
             ORDER BY call_time, call_id) TO STDOUT"
        ))
        .await?;
    let mut rows = 0u64;
    use futures_util::StreamExt;
    while let Some(chunk) = copy.next().await {
        rows += chunk?.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let copy_secs = started.elapsed().as_secs_f64();
    drop(copy);
    conn.close().await?;
    server.shutdown().await?;
    db.drop_now().await?;
    anyhow::ensure!(rows == args.calls, "COPY gave {rows} rows");

    let value = exported as f64 / export_secs;
    let decoded_value = decoded as f64 / decoded_secs;
    let baseline = rows as f64 / copy_secs;
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "export on PostgreSQL: ExportCalls {value:.0} rows/s (decoded by the client \
         {decoded_value:.0}), COPY TO STDOUT {baseline:.0} rows/s ({} calls); RSS {before:.0} MiB \
         before, {peak} MiB at most during the export",
        args.calls
    );
    Ok(Measure::ratio("export_vs_copy_to", value, baseline, "rows/s", EXPORT_GOAL).with_note(
        format!(
            "{} calls, PostgreSQL; calls counted undecoded, as COPY's rows are counted by their \
             newlines (decoded by the client: {decoded_value:.0} rows/s, {:.2}x); process RSS \
             (server and client) at most {peak} MiB during the export, {before:.0} MiB before",
            args.calls,
            decoded_value / baseline
        ),
    ))
}

async fn watch_sqlite() -> anyhow::Result<Measure> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("watch.db").display());
    let server = Running::start(&url).await?;
    let delays = watch_delays(&server).await;
    server.shutdown().await?;
    measure(delays?, "SQLite")
}

async fn watch_postgres(url: &str) -> anyhow::Result<Measure> {
    let db = PgDatabase::create(url).await?;
    let server = Running::start(&db.url).await?;
    let delays = watch_delays(&server).await;
    server.shutdown().await?;
    db.drop_now().await?;
    measure(delays?, "PostgreSQL")
}

fn measure(delays: Vec<Duration>, backend: &str) -> anyhow::Result<Measure> {
    let (p50, p99) = p50_p99(&delays);
    println!(
        "watch on {backend}: commit to event p50 {p50:.1} ms, p99 {p99:.1} ms over {} events at ~1,000 calls/s",
        delays.len()
    );
    Ok(Measure::absolute("watch_event_p99_ms", p99, "ms", WATCH_GOAL).with_note(format!(
        "p99 over {} events at ~1,000 calls/s (batches of 10 every 10 ms), worst backend: {backend}; p50 {p50:.1} ms",
        delays.len()
    )))
}

/// Writes [`WATCHED_CALLS`] calls at about 1,000 a second while a watcher
/// takes every event; answers each event's delay.
async fn watch_delays(server: &Running) -> anyhow::Result<Vec<Duration>> {
    let mut watcher = CallServiceClient::new(server.channel().await?);
    let mut stream = watcher
        .watch_calls(proto::WatchCallsRequest::default())
        .await?
        .into_inner();
    let reader = tokio::spawn(async move {
        let mut delays = Vec::with_capacity(WATCHED_CALLS as usize);
        while (delays.len() as u64) < WATCHED_CALLS {
            let Some(event) = stream.message().await? else {
                anyhow::bail!("the watch ended after {} events", delays.len());
            };
            let now_ms = jiff::Timestamp::now().as_nanosecond() as f64 / 1e6;
            let at = event.event_time.context("event_time")?;
            let event_ms = at.seconds as f64 * 1000.0 + f64::from(at.nanos) / 1e6;
            delays.push(Duration::from_secs_f64(
                ((now_ms - event_ms) / 1000.0).max(0.0),
            ));
        }
        Ok(delays)
    });
    let mut writer = IngestServiceClient::new(server.channel().await?);
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next = 0u64;
    while next < WATCHED_CALLS {
        ticker.tick().await;
        let calls = (next..(next + 10).min(WATCHED_CALLS))
            .map(|i| synth(i, WATCHED_CALLS).to_proto())
            .collect();
        writer
            .upsert_calls(proto::UpsertCallsRequest { calls })
            .await?;
        next += 10;
    }
    tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .context("events still missing a minute after the last write")??
}

/// `ExportCallsResponse` with each call left as the bytes of its message:
/// prost slices them out without decoding them.
#[derive(Clone, PartialEq, prost::Message)]
struct UndecodedExportCallsResponse {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    calls: Vec<bytes::Bytes>,
    #[prost(string, tag = "2")]
    resume_token: String,
}

/// ExportCalls of every call, its calls counted but not decoded, as COPY's
/// rows are counted by their newlines: a client's decoding is its own work,
/// on its own machine in production, and here it shares the server's two
/// cores (as in the listing measures).
async fn export_undecoded(channel: &Channel) -> anyhow::Result<u64> {
    let mut grpc = Grpc::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
    grpc.ready().await?;
    let path = PathAndQuery::from_static("/callscope.v1.CallService/ExportCalls");
    let codec = ProstCodec::<proto::ExportCallsRequest, UndecodedExportCallsResponse>::default();
    let stream = grpc
        .server_streaming(
            tonic::Request::new(proto::ExportCallsRequest::default()),
            path,
            codec,
        )
        .await?
        .into_inner();
    count_calls(stream, |message| message.calls.len()).await
}

/// ExportCalls of every call through the generated client, decoded by prost.
async fn export_decoded(channel: &Channel) -> anyhow::Result<u64> {
    let stream = listing::client(channel)
        .export_calls(proto::ExportCallsRequest::default())
        .await?
        .into_inner();
    count_calls(stream, |message| message.calls.len()).await
}

/// Reads `stream` to its end, summing `calls` of each message.
async fn count_calls<T>(
    mut stream: tonic::Streaming<T>,
    calls: impl Fn(&T) -> usize,
) -> anyhow::Result<u64> {
    let mut exported = 0u64;
    while let Some(message) = stream.message().await? {
        exported += calls(&message) as u64;
    }
    Ok(exported)
}
