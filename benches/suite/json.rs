//! The cost of JSON over HTTP (the Connect unary form) against gRPC, on one
//! server and the same data, rounds interleaved as in `security.rs`:
//!
//! - `json_list_p99_vs_grpc`: ListCalls p99 at `--clients` clients through
//!   `POST /callscope.v1.CallService/ListCalls` (HTTP/1.1 keep-alive, the
//!   client parsing the JSON answer) against the same request through a
//!   generated gRPC client (which decodes the protobuf answer);
//! - `json_encode_page_vs_list`: encoding a 1,000-call ListCalls page as
//!   JSON (the gateway's own encoder) against the gRPC ListCalls of that
//!   page, p50: JSON encoding must not dominate a call.

use std::time::{Duration, Instant};

use prost::Message;
use tonic::transport::Channel;

use callscope::proto;

use crate::Args;
use crate::ingest;
use crate::listing::{self, FILTERS, each_client, filter};
use crate::report::{Goal, Measure, p50_p99, worst};
use crate::server::Running;

/// JSON may cost at most 1.3× gRPC's ListCalls p99.
pub const JSON_GOAL: Goal = Goal::RatioAtMost(1.3);
/// Encoding a 1,000-call page must not dominate the call that fetches it.
pub const ENCODE_GOAL: Goal = Goal::RatioAtMost(0.5);

/// Timed rounds per filter and side; the sides take turns round by round,
/// finely enough (12) that load drift on a shared machine hits both alike.
const ROUNDS: usize = 12;

pub async fn run(args: &Args) -> Vec<Measure> {
    match measure(args).await {
        Ok(m) => m,
        Err(e) => vec![
            Measure::missing("json_list_p99_vs_grpc", "ms", &format!("failed: {e:#}")),
            Measure::missing("json_encode_page_vs_list", "ms", &format!("failed: {e:#}")),
        ],
    }
}

async fn measure(args: &Args) -> anyhow::Result<Vec<Measure>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("json.db").display());
    let server = Running::start(&url).await?;
    eprintln!(
        "[json] ingesting {} calls through UpsertCalls (SQLite)",
        args.calls
    );
    ingest::grpc(&server, args).await?;
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(server.channel().await?);
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .tcp_nodelay(true)
        .build()?;
    let endpoint = format!(
        "http://{}/callscope.v1.CallService/ListCalls",
        server.http_addr
    );

    let per_round = args.requests.div_ceil(ROUNDS).max(1);
    let mut pairs = Vec::new();
    for (which, name) in FILTERS.iter().enumerate() {
        let mut json_times = Vec::new();
        let mut grpc_times = Vec::new();
        list_json(&http, &endpoint, args, 1, 0, which).await?; // warm-up
        list_grpc(&channels, args, 1, 0, which).await?;
        for round in 0..ROUNDS {
            let first = round * per_round;
            if round % 2 == 0 {
                json_times
                    .extend(list_json(&http, &endpoint, args, per_round, first, which).await?);
                grpc_times.extend(list_grpc(&channels, args, per_round, first, which).await?);
            } else {
                grpc_times.extend(list_grpc(&channels, args, per_round, first, which).await?);
                json_times
                    .extend(list_json(&http, &endpoint, args, per_round, first, which).await?);
            }
        }
        let pair = (p50_p99(&json_times), p50_p99(&grpc_times));
        eprintln!(
            "[json] {name}: JSON {:.2}/{:.2} ms, gRPC {:.2}/{:.2} ms",
            pair.0.0, pair.0.1, pair.1.0, pair.1.1
        );
        pairs.push(pair);
    }
    println!(
        "## JSON over HTTP vs gRPC, ListCalls ({} calls, {} clients, SQLite)",
        args.calls, args.clients
    );
    println!();
    println!("| filter | JSON p50 / p99 ms | gRPC p50 / p99 ms | p50 ratio | p99 ratio |");
    println!("|---|---|---|---|---|");
    for (f, (j, g)) in FILTERS.iter().zip(&pairs) {
        println!(
            "| {f} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2}x | {:.2}x |",
            j.0,
            j.1,
            g.0,
            g.1,
            j.0 / g.0,
            j.1 / g.1
        );
    }
    println!();
    let list_measure = worst(
        FILTERS
            .iter()
            .zip(&pairs)
            .map(|(f, (j, g))| {
                Measure::ratio("json_list_p99_vs_grpc", j.1, g.1, "ms", JSON_GOAL).with_note(format!(
                    "JSON (Connect unary, HTTP/1.1) ÷ gRPC, p99 at {} clients, same server, interleaved; p50 ratio {:.2}; worst filter: {f}",
                    args.clients,
                    j.0 / g.0
                ))
            })
            .collect(),
    )
    .expect("five filters");

    // A 1,000-call page, fetched over gRPC, then encoded as JSON.
    let mut client = listing::client(&channels[0]);
    let page_request = proto::ListCallsRequest {
        page_size: 1000,
        ..Default::default()
    };
    let mut fetch = Vec::new();
    let mut page = proto::ListCallsResponse::default();
    for _ in 0..args.runs.max(5) {
        let started = Instant::now();
        page = client.list_calls(page_request.clone()).await?.into_inner();
        fetch.push(started.elapsed());
    }
    let bytes = page.encode_to_vec();
    let desc = callscope::http::connect::pool()
        .get_message_by_name("callscope.v1.ListCallsResponse")
        .ok_or_else(|| anyhow::anyhow!("no ListCallsResponse descriptor"))?;
    let mut encode = Vec::new();
    let mut json_len = 0;
    for _ in 0..args.runs.max(5) {
        let started = Instant::now();
        let json = callscope::http::connect::answer_json(&desc, &bytes)
            .map_err(|s| anyhow::anyhow!("{s:?}"))?;
        encode.push(started.elapsed());
        json_len = json.len();
    }
    let (fetch_p50, _) = p50_p99(&fetch);
    let (encode_p50, encode_p99) = p50_p99(&encode);
    println!(
        "## JSON encoding of a {}-call page ({} bytes protobuf, {json_len} bytes JSON)",
        page.calls.len(),
        bytes.len()
    );
    println!();
    println!("| encode p50 / p99 ms | gRPC ListCalls of the page p50 ms | ratio |");
    println!("|---|---|---|");
    println!(
        "| {encode_p50:.2} / {encode_p99:.2} | {fetch_p50:.2} | {:.2}x |",
        encode_p50 / fetch_p50
    );
    println!();
    server.shutdown().await?;
    let encode_measure = Measure::ratio("json_encode_page_vs_list", encode_p50, fetch_p50, "ms", ENCODE_GOAL)
        .with_note(format!(
            "p50: encoding a {}-call ListCalls page as JSON ({json_len} bytes) ÷ the gRPC ListCalls of that page, SQLite",
            page.calls.len()
        ));
    Ok(vec![list_measure, encode_measure])
}

async fn list_grpc(
    channels: &[Channel],
    args: &Args,
    requests: usize,
    first: usize,
    which: usize,
) -> anyhow::Result<Vec<Duration>> {
    each_client(args.clients, |c| {
        let channel = channels[c % channels.len()].clone();
        let total = args.calls;
        async move {
            let mut client = listing::client(&channel);
            let mut latencies = Vec::with_capacity(requests);
            for r in first..first + requests {
                let k = (c * 1000 + r) as u64;
                let request = proto::ListCallsRequest {
                    filter: Some(filter(which, k, total)),
                    ..Default::default()
                };
                let started = Instant::now();
                client.list_calls(request).await?;
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }
    })
    .await
}

async fn list_json(
    http: &reqwest::Client,
    endpoint: &str,
    args: &Args,
    requests: usize,
    first: usize,
    which: usize,
) -> anyhow::Result<Vec<Duration>> {
    each_client(args.clients, |c| {
        let http = http.clone();
        let endpoint = endpoint.to_owned();
        let total = args.calls;
        async move {
            let mut latencies = Vec::with_capacity(requests);
            for r in first..first + requests {
                let k = (c * 1000 + r) as u64;
                // The request in the proto3 JSON mapping (pbjson).
                let body = serde_json::to_vec(&proto::ListCallsRequest {
                    filter: Some(filter(which, k, total)),
                    ..Default::default()
                })?;
                let started = Instant::now();
                let response = http
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let bytes = response.bytes().await?;
                anyhow::ensure!(
                    status.is_success(),
                    "{status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
                // A client reads the answer, as the gRPC client decodes it.
                let page: proto::ListCallsResponse = serde_json::from_slice(&bytes)?;
                std::hint::black_box(page);
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }
    })
    .await
}
