//! Operations, as an SRE sees them: `GET /metrics` counts each server's own
//! RPCs by method and code; `x-request-id` is kept or made and echoed; the
//! binary writes one JSON line per RPC with that id; past `--max-in-flight`
//! the excess is refused with RESOURCE_EXHAUSTED and RetryInfo while goodput
//! holds; shutdown turns health NOT_SERVING, lets unary RPCs finish, ends
//! streams with UNAVAILABLE and cuts slow HTTP clients at the grace deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use tokio::io::AsyncWriteExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

use crate::helpers::{self, Sharing, TestApp, block_on, call, http_get, sample, trial};
use callscope::proto::{
    self, GetCallRequest, ListCallsRequest, UpsertCallsRequest,
    call_service_client::CallServiceClient, ingest_service_client::IngestServiceClient,
};

pub fn trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    trials.extend(helpers::backend_trials(
        "operations",
        "metrics_count_each_rpc_by_method_and_code",
        &[],
        metrics_count_each_rpc_by_method_and_code,
    ));
    trials.extend(helpers::backend_trials(
        "operations",
        "request_id_is_kept_or_made_and_echoed",
        &[],
        request_id_is_kept_or_made_and_echoed,
    ));
    trials.push(trial(
        "operations::json_log_has_one_line_per_rpc_with_its_request_id".to_owned(),
        &[],
        Sharing::Parallel,
        || block_on(None, json_log_has_one_line_per_rpc_with_its_request_id()),
    ));
    trials.push(trial(
        "operations::shutdown_drains_unary_ends_streams_and_cuts_slow_http".to_owned(),
        &[],
        Sharing::Parallel,
        || {
            block_on(
                Some(2),
                shutdown_drains_unary_ends_streams_and_cuts_slow_http(),
            )
        },
    ));
    trials.push(trial(
        "operations::rate_limit_per_key_refuses_the_excess_with_retry_info".to_owned(),
        &[],
        Sharing::Parallel,
        || {
            block_on(
                None,
                rate_limit_per_key_refuses_the_excess_with_retry_info(),
            )
        },
    ));
    trials.push(trial(
        "operations::overload_at_4x_sheds_with_resource_exhausted_and_keeps_goodput".to_owned(),
        &[],
        Sharing::Alone,
        || {
            block_on(
                Some(2),
                overload_at_4x_sheds_with_resource_exhausted_and_keeps_goodput(),
            )
        },
    ));
    trials
}

async fn scrape(app: &TestApp) -> String {
    let (status, body) = http_get(app.http_addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

fn handled(service: &str, method: &str, code: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grpc_type", "unary".to_owned()),
        ("grpc_service", service.to_owned()),
        ("grpc_method", method.to_owned()),
        ("grpc_code", code.to_owned()),
    ]
}

fn labels<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn metrics_count_each_rpc_by_method_and_code(mut app: TestApp) {
    let calls: Vec<proto::Call> = (0..3)
        .map(|i| call(&format!("m-{i}"), "+8613800000000", "2026-11-20T08:00:00Z"))
        .collect();
    app.upsert(calls.clone()).await;
    app.upsert(calls).await;
    let status = app
        .ingest
        .upsert_calls(UpsertCallsRequest {
            calls: vec![call("", "+8613800000000", "2026-11-20T08:00:00Z")],
        })
        .await
        .expect_err("a call without external_id");
    assert_eq!(status.code(), Code::InvalidArgument);
    app.calls
        .list_calls(ListCallsRequest::default())
        .await
        .expect("list");
    let status = app
        .calls
        .get_call(GetCallRequest {
            call_id: "no-such-call".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown call");
    assert_eq!(status.code(), Code::NotFound);
    // A method the server does not offer: counted, under `unknown` only.
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let status = grpc
        .unary(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/callscope.v1.NoSuchService/Anything"),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(status.code(), Code::Unimplemented);
    // A webhook push that is not JSON: quarantined, answered 400.
    let (code, _) = app.post("/hooks/laaffic", b"{not json").await;
    assert_eq!(code, 400);

    let text = scrape(&app).await;
    let calls_service = "callscope.v1.CallService";
    let ingest_service = "callscope.v1.IngestService";
    for (service, method, code, want) in [
        (ingest_service, "UpsertCalls", "OK", 2.0),
        (calls_service, "ListCalls", "OK", 1.0),
        (calls_service, "GetCall", "NotFound", 1.0),
        ("unknown", "unknown", "Unimplemented", 1.0),
    ] {
        let l = handled(service, method, code);
        assert_eq!(
            sample(&text, "grpc_server_handled_total", &labels(&l)),
            Some(want),
            "{service}/{method} {code} in\n{text}"
        );
    }
    let l = handled(ingest_service, "UpsertCalls", "InvalidArgument");
    assert_eq!(
        sample(&text, "grpc_server_handled_total", &labels(&l)),
        Some(1.0),
        "InvalidArgument counted:\n{text}"
    );
    let list = vec![
        ("grpc_type", "unary"),
        ("grpc_service", calls_service),
        ("grpc_method", "ListCalls"),
    ];
    assert_eq!(sample(&text, "grpc_server_started_total", &list), Some(1.0));
    assert_eq!(
        sample(&text, "grpc_server_handling_seconds_count", &list),
        Some(1.0),
        "{text}"
    );
    let mut bucket = list.clone();
    bucket.push(("le", "+Inf"));
    assert_eq!(
        sample(&text, "grpc_server_handling_seconds_bucket", &bucket),
        Some(1.0)
    );
    for (source, outcome, want) in [
        ("api", "inserted", 3.0),
        ("api", "unchanged", 3.0),
        ("laaffic", "rejected", 1.0),
    ] {
        assert_eq!(
            sample(
                &text,
                "callscope_ingest_records_total",
                &[("source", source), ("outcome", outcome)]
            ),
            Some(want),
            "{source} {outcome}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "callscope_quarantined_records_total",
            &[("source", "laaffic")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "callscope_http_requests_total",
            &[
                ("route", "/hooks/laaffic"),
                ("method", "POST"),
                ("status", "400")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "callscope_db_pool_max_connections",
            &[("pool", "reader")]
        ),
        Some(8.0)
    );
    assert!(
        sample(
            &text,
            "callscope_db_pool_connections",
            &[("pool", "reader")]
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert!(
        sample(
            &text,
            "callscope_db_pool_idle_connections",
            &[("pool", "writer")]
        )
        .is_some()
    );
    assert_eq!(
        sample(&text, "callscope_grpc_max_in_flight", &[]),
        Some(16.0)
    );
    assert_eq!(sample(&text, "callscope_grpc_in_flight", &[]), Some(0.0));
    assert_eq!(sample(&text, "callscope_database_up", &[]), Some(1.0));
    // The scrape itself is counted by the next one.
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            "callscope_http_requests_total",
            &[("route", "/metrics"), ("method", "GET"), ("status", "200")]
        ),
        Some(1.0)
    );
    app.stop().await;
}

async fn request_id_is_kept_or_made_and_echoed(mut app: TestApp) {
    let echoed = |metadata: &tonic::metadata::MetadataMap| {
        metadata
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut request = tonic::Request::new(ListCallsRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "client-id-42".parse().unwrap());
    let response = app.calls.list_calls(request).await.expect("list");
    assert_eq!(echoed(response.metadata()).as_deref(), Some("client-id-42"));

    // An error answer (trailers-only) carries it too.
    let mut request = tonic::Request::new(GetCallRequest {
        call_id: "missing".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "client-id-43".parse().unwrap());
    let status = app.calls.get_call(request).await.expect_err("not found");
    assert_eq!(echoed(status.metadata()).as_deref(), Some("client-id-43"));

    // None given, or one that is not a plain token: a new UUID each time.
    let mut made = Vec::new();
    let long = "x".repeat(200);
    for given in [None, Some("has spaces"), Some(long.as_str()), None] {
        let mut request = tonic::Request::new(ListCallsRequest::default());
        if let Some(given) = given {
            request
                .metadata_mut()
                .insert("x-request-id", given.parse().unwrap());
        }
        let response = app.calls.list_calls(request).await.expect("list");
        let id = echoed(response.metadata()).expect("an id is made");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        made.push(id);
    }
    made.sort();
    made.dedup();
    assert_eq!(made.len(), 4, "each made id is new");
    app.stop().await;
}

/// Starts the binary with `args`; its stderr lines arrive on the receiver.
fn start_binary(args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    helpers::spawn_with_stderr_lines(
        Command::new(env!("CARGO_BIN_EXE_callscope"))
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR"),
    )
}

fn stop_binary(child: &mut std::process::Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn json_log_has_one_line_per_rpc_with_its_request_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("json.db").display());
    let (mut child, rx) = start_binary(&[
        "serve",
        "--log-format",
        "json",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--database-url",
        &url,
    ]);
    let mut log: Vec<serde_json::Value> = Vec::new();
    let mut raw = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server log line");
        raw.push(line.clone());
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        log.push(value.clone());
        if value["fields"]["message"] == "callscope listening" {
            break value["fields"]["addr"]
                .as_str()
                .expect("addr field")
                .to_owned();
        }
    };
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut calls = CallServiceClient::new(channel.clone());
    let mut ingest = IngestServiceClient::new(channel);
    let mut request = tonic::Request::new(ListCallsRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "json-log-req-1".parse().unwrap());
    calls.list_calls(request).await.expect("list");
    // A vendor record that is refused: the handler logs a warning, which
    // must carry the request's id as well.
    let mut request = tonic::Request::new(proto::ImportRecordsRequest {
        source: proto::Source::Laaffic as i32,
        records: vec!["{broken".into()],
        task_id: String::new(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "json-log-req-2".parse().unwrap());
    ingest.import_records(request).await.expect("import");
    drop((calls, ingest));
    stop_binary(&mut child);
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        raw.push(line.clone());
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        log.push(value);
    }
    for line in &raw {
        assert!(
            !line.contains('\u{1b}'),
            "a colour code in a piped log: {line}"
        );
    }
    let of = |id: &str| -> Vec<&serde_json::Value> {
        log.iter()
            .filter(|l| {
                l["spans"]
                    .as_array()
                    .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == id))
            })
            .collect()
    };
    let first = of("json-log-req-1");
    assert_eq!(first.len(), 1, "one line for a quiet RPC: {first:?}");
    let line = first[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["message"], "rpc finished");
    assert_eq!(line["fields"]["grpc_code"], "OK");
    assert!(line["fields"]["latency_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["span"]["grpc_service"], "callscope.v1.CallService");
    assert_eq!(line["span"]["grpc_method"], "ListCalls");
    assert_eq!(line["span"]["tenant"], "default");
    let second = of("json-log-req-2");
    let messages: Vec<&str> = second
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        ["vendor records quarantined", "rpc finished"],
        "{second:?}"
    );
    assert!(
        log.iter()
            .any(|l| l["fields"]["message"] == "callscope stopped"),
        "the whole log was read"
    );
}

async fn health_status(channel: &Channel) -> Option<i32> {
    let mut client = HealthClient::new(channel.clone());
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    Some(response.into_inner().status)
}

async fn shutdown_drains_unary_ends_streams_and_cuts_slow_http() {
    const GRACE: Duration = Duration::from_millis(1500);
    let app = helpers::spawn_app_with(|c| c.shutdown_grace_ms = GRACE.as_millis() as u64).await;
    assert_eq!(
        health_status(&app.channel).await,
        Some(ServingStatus::Serving as i32)
    );
    // A stream: health's Watch, open until the server ends it.
    let mut watch = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("watch").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // A unary RPC held in flight: the database's write lock is taken by
    // another connection, so the upsert waits for it.
    let mut locker = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .expect("open the database");
    sqlx::Executor::execute(&mut locker, "BEGIN IMMEDIATE")
        .await
        .expect("take the write lock");
    let mut ingest = IngestServiceClient::new(app.channel.clone());
    let upsert = tokio::spawn(async move {
        ingest
            .upsert_calls(UpsertCallsRequest {
                calls: vec![call("drain-1", "+8613800000001", "2026-11-20T08:00:00Z")],
            })
            .await
    });
    // A webhook client that sends half a request and then nothing.
    let mut slow = tokio::net::TcpStream::connect(app.http_addr)
        .await
        .expect("connect http");
    slow.write_all(
        b"POST /hooks/laaffic HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"a\":",
    )
    .await
    .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopping = Instant::now();
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = stopped.clone();
    let stop = tokio::spawn(async move {
        app.stop().await;
        flag.store(true, Ordering::SeqCst);
    });
    // Health first: the watcher hears NOT_SERVING, then UNAVAILABLE.
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the watch answers at shutdown");
    let next = next.expect("NOT_SERVING before the end").expect("a status");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    let end = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the stream ends at shutdown")
        .expect_err("the stream ends with a status");
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert!(!stopped.load(Ordering::SeqCst), "still draining the upsert");

    // The unary RPC in flight completes once the lock is released.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::Executor::execute(&mut locker, "ROLLBACK")
        .await
        .expect("release the lock");
    let answer = upsert
        .await
        .expect("upsert task")
        .expect("the upsert in flight completes");
    assert_eq!(answer.into_inner().call_ids.len(), 1);

    // The slow webhook client does not hold the process past the grace.
    stop.await.expect("stop");
    let took = stopping.elapsed();
    assert!(
        took >= GRACE - Duration::from_millis(100) && took < GRACE + Duration::from_secs(2),
        "shutdown took {took:?} with a {GRACE:?} grace and a stalled HTTP client"
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    ok: Vec<Duration>,
    exhausted: usize,
    exhausted_with_retry: usize,
    other: BTreeMap<String, usize>,
}

/// `clients` concurrent loops of ListCalls over `channels` for `period`;
/// a refused client waits what RetryInfo says.
async fn load(channels: &[Channel], clients: usize, period: Duration) -> Tally {
    let until = Instant::now() + period;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let mut client = CallServiceClient::new(channels[i % channels.len()].clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < until {
                    let mut request = tonic::Request::new(ListCallsRequest {
                        page_size: 10,
                        ..Default::default()
                    });
                    request.set_timeout(Duration::from_secs(5));
                    let started = Instant::now();
                    match client.list_calls(request).await {
                        Ok(_) => tally.ok.push(started.elapsed()),
                        Err(status) if status.code() == Code::ResourceExhausted => {
                            tally.exhausted += 1;
                            let retry = status.get_details_retry_info().and_then(|r| r.retry_delay);
                            if retry.is_some() {
                                tally.exhausted_with_retry += 1;
                            }
                            // Jittered, as gRPC's retry policy does.
                            let delay = retry.unwrap_or(Duration::from_secs(1));
                            let jitter = delay.mul_f64(rand::random::<f64>() * 0.5);
                            tokio::time::sleep(delay + jitter).await;
                        }
                        Err(status) => {
                            *tally
                                .other
                                .entry(format!("{:?}", status.code()))
                                .or_default() += 1;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.expect("client task");
        total.ok.extend(tally.ok);
        total.exhausted += tally.exhausted;
        total.exhausted_with_retry += tally.exhausted_with_retry;
        for (code, n) in tally.other {
            *total.other.entry(code).or_default() += n;
        }
    }
    total.ok.sort();
    total
}

fn p(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

async fn overload_at_4x_sheds_with_resource_exhausted_and_keeps_goodput() {
    const MAX_IN_FLIGHT: usize = 8;
    const CLIENTS: usize = 500;
    const PERIOD: Duration = Duration::from_secs(4);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("overload.db").display());
    let (mut child, rx) = start_binary(&[
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--db-max-connections",
        "4",
        "--max-in-flight",
        &MAX_IN_FLIGHT.to_string(),
    ]);
    let (addr, http_addr) = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server log line");
        if line.contains("callscope listening") {
            let field = |key: &str| {
                let rest = line.split(&format!(" {key}=")).nth(1).expect("address");
                rest.split_whitespace().next().expect("address").to_owned()
            };
            break (field("addr"), field("http_addr"));
        }
    };
    let http_addr: SocketAddr = http_addr.parse().expect("http addr");
    // Drain its log so the pipe never fills.
    std::thread::spawn(move || for _ in rx {});
    // Four connections: the bound is global, not per connection.
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(
            Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect"),
        );
    }
    let mut ingest = IngestServiceClient::new(channels[0].clone());
    for batch in 0..4 {
        let calls = (0..500)
            .map(|i| {
                call(
                    &format!("load-{batch}-{i}"),
                    &format!("+86138{:08}", batch * 1000 + i),
                    "2026-11-20T08:00:00Z",
                )
            })
            .collect();
        ingest
            .upsert_calls(UpsertCallsRequest { calls })
            .await
            .expect("seed");
    }
    let pid = child.id();
    // Warm up, then the peak: as many clients as the bound admits.
    load(&channels, MAX_IN_FLIGHT, Duration::from_secs(1)).await;
    let rss_before = rss_kib(pid);
    let peak = load(&channels, MAX_IN_FLIGHT, PERIOD).await;
    let (_, before) = http_get(http_addr, "/metrics").await;
    let peak_goodput = peak.ok.len() as f64 / PERIOD.as_secs_f64();
    // 500 concurrent clients: past 4x saturation.
    let over = load(&channels, CLIENTS, PERIOD).await;
    let over_goodput = over.ok.len() as f64 / PERIOD.as_secs_f64();
    let rss_peak = rss_kib(pid);
    // The server's own view of the overload phase: how long it took to
    // answer each ListCalls (admitted or refused), from its histogram.
    let (_, after) = http_get(http_addr, "/metrics").await;
    let bucket = |text: &str, le: &str| {
        sample(
            text,
            "grpc_server_handling_seconds_bucket",
            &[
                ("grpc_type", "unary"),
                ("grpc_service", "callscope.v1.CallService"),
                ("grpc_method", "ListCalls"),
                ("le", le),
            ],
        )
        .unwrap_or(0.0)
    };
    let answered = bucket(&after, "+Inf") - bucket(&before, "+Inf");
    let within_half_second = bucket(&after, "0.5") - bucket(&before, "0.5");
    let shed = sample(
        &after,
        "callscope_grpc_shed_total",
        &[("reason", "overload")],
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(pid);
    eprintln!(
        "overload: peak goodput {peak_goodput:.0}/s (p50 {:?}, p99 {:?}) at {MAX_IN_FLIGHT} clients; \
         {CLIENTS} clients: goodput {over_goodput:.0}/s ({:.2}x), admitted p50 {:?} p99 {:?}, \
         {} RESOURCE_EXHAUSTED ({} with RetryInfo), other {:?}; \
         RSS {rss_before} KiB before, {rss_peak} KiB under load, {rss_after} KiB after ({:.2}x); \
         server side: {answered} ListCalls answered, {within_half_second} within 0.5 s, shed {shed:?}",
        p(&peak.ok, 0.5),
        p(&peak.ok, 0.99),
        over_goodput / peak_goodput,
        p(&over.ok, 0.5),
        p(&over.ok, 0.99),
        over.exhausted,
        over.exhausted_with_retry,
        over.other,
        rss_after as f64 / rss_before as f64,
    );
    stop_binary(&mut child);
    assert!(peak_goodput > 0.0);
    assert!(
        over.other.is_empty(),
        "only OK and RESOURCE_EXHAUSTED: {:?}",
        over.other
    );
    assert!(over.exhausted > 0, "the excess is refused");
    assert_eq!(
        over.exhausted, over.exhausted_with_retry,
        "every refusal says when to retry"
    );
    // Goodput and latencies are printed, not asserted: on the shared 2-core
    // machine this was written on (load average 13), the 500 debug-built
    // client tasks of this process and the other builds compete with the
    // server for the CPU, and the figures varied 2x from run to run
    // (BENCHMARKS.md). What a client is told is asserted.
    assert!(
        answered >= over.ok.len() as f64,
        "the server counted every answer"
    );
    assert_eq!(
        shed,
        Some(over.exhausted as f64),
        "each refusal is counted as shed"
    );
    assert!(
        rss_after as f64 <= 1.2 * rss_before as f64,
        "RSS {rss_after} KiB after, {rss_before} KiB before"
    );
}

/// `--rate-limit-per-key 0.25 --rate-limit-burst 3`: a key's burst of three
/// passes, over gRPC and JSON alike; the excess is refused with
/// RESOURCE_EXHAUSTED and a RetryInfo (HTTP 429 with Retry-After on the
/// JSON path) before the handler runs; another key of the same tenant is
/// unaffected; health needs no key and is never limited; and retrying after
/// the RetryInfo's delay succeeds.
async fn rate_limit_per_key_refuses_the_excess_with_retry_info() {
    use callscope::auth::AuthMode;
    use callscope::domain::key::Role;
    use tonic::metadata::MetadataValue;

    // One request per 4 s after the burst: the burst's calls are made well
    // within one period even on a loaded machine.
    const PERIOD: Duration = Duration::from_secs(4);
    let app = helpers::spawn_app_with(|c| {
        c.auth = AuthMode::Keys;
        c.rate_limit_per_key = Some(1.0 / PERIOD.as_secs_f64());
        c.rate_limit_burst = Some(3);
    })
    .await;
    let store = callscope::store::Store::connect(&callscope::store::StoreOptions {
        url: app.database_url.clone(),
        read_url: None,
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        busy_timeout: Duration::from_secs(10),
    })
    .await
    .expect("open the test database");
    let key = async || {
        callscope::service::keys::create_key(&store, "acme", Role::Read, "test")
            .await
            .expect("create key")
            .1
    };
    let (a, b) = (key().await, key().await);
    let list = |key: &str| {
        let mut request = tonic::Request::new(ListCallsRequest::default());
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {key}")).expect("ascii"),
        );
        let mut calls = CallServiceClient::new(app.channel.clone());
        async move { calls.list_calls(request).await.map(drop) }
    };
    let list_json = |key: &str| {
        let request = reqwest::Client::new()
            .post(format!(
                "http://{}/callscope.v1.CallService/ListCalls",
                app.http_addr
            ))
            .header("content-type", "application/json")
            .bearer_auth(key)
            .body("{}");
        async move {
            let response = request.send().await.expect("POST");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = response.json().await.expect("JSON body");
            (status, retry_after, body)
        }
    };

    let started = Instant::now();
    // Key a: its burst of three, over both paths.
    list(&a).await.expect("first of the burst");
    assert_eq!(list_json(&a).await.0, 200, "second of the burst, as JSON");
    list(&a).await.expect("third of the burst");
    // The fourth is refused, and told when to come back.
    let refused = list(&a).await.expect_err("past the burst");
    let refused_at = Instant::now();
    assert!(
        started.elapsed() < PERIOD,
        "the burst took {:?}: the test cannot tell a refill from a pass",
        started.elapsed()
    );
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let retry = refused
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo with a delay");
    assert!(
        retry > Duration::ZERO && retry <= PERIOD + Duration::from_millis(1),
        "{retry:?}"
    );
    // The JSON path draws on the same budget and answers alike.
    let (status, retry_after, body) = list_json(&a).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "resource_exhausted", "{body}");
    assert_eq!(body["details"][0]["type"], "google.rpc.RetryInfo", "{body}");
    let retry_after: u64 = retry_after
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(
        (1..=PERIOD.as_secs()).contains(&retry_after),
        "{retry_after}"
    );

    // Another key of the same tenant has its own budget; health no limit.
    list(&b).await.expect("key b, first");
    assert_eq!(list_json(&b).await.0, 200, "key b, second");
    list(&b).await.expect("key b, third");
    let mut health = HealthClient::new(app.channel.clone());
    for _ in 0..10 {
        health
            .check(HealthCheckRequest::default())
            .await
            .expect("health is never limited");
    }

    // Each refusal counted once as shed, and as a ResourceExhausted ListCalls.
    let text = helpers::scrape(app.http_addr).await;
    assert_eq!(
        sample(
            &text,
            "callscope_grpc_shed_total",
            &[("reason", "rate_limit")]
        ),
        Some(2.0),
        "{text}"
    );
    let exhausted = handled("callscope.v1.CallService", "ListCalls", "ResourceExhausted");
    assert_eq!(
        sample(&text, "grpc_server_handled_total", &labels(&exhausted)),
        Some(2.0)
    );
    let ok = handled("callscope.v1.CallService", "ListCalls", "OK");
    assert_eq!(
        sample(&text, "grpc_server_handled_total", &labels(&ok)),
        Some(6.0)
    );

    // Retrying when RetryInfo said finds room again.
    tokio::time::sleep(retry.saturating_sub(refused_at.elapsed())).await;
    list(&a)
        .await
        .expect("room again after the RetryInfo delay");
}
