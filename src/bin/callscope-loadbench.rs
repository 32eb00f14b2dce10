//! Storage load benchmark (issue 5): generates N synthetic calls in the
//! smartivr shape, streams them through `UpsertCalls` of a real in-process
//! server, and measures ingest, listings and deep pages on each backend, each
//! beside a baseline taken in the same run:
//!
//! - ingest rows/s beside a bulk load of the same rows into unindexed tables
//!   (PostgreSQL `COPY ... FROM STDIN`; SQLite one multi-row INSERT per 500
//!   rows in one transaction, since SQLite has no COPY);
//! - ListCalls p50/p99 at 32 clients for five filters beside the same listing
//!   SQL (`store::filter_sql`) run directly through sqlx;
//! - page 1 against page 10,000 of one listing;
//! - peak RSS.
//!
//! Rows are generated from their index, so nothing holds the data set in
//! memory: 10M calls need what 10k do.

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use prost_types::Timestamp;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, Executor, Postgres, QueryBuilder, Sqlite};
use tonic::transport::Channel;

use callscope::api::convert::filter_from_proto;
use callscope::config::ServeConfig;
use callscope::domain::{
    CallFilter, CallOrder, Cursor, DEFAULT_TENANT, PageToken, Region, Violations, call_query_scope,
};
use callscope::proto::{
    self, call_service_client::CallServiceClient, ingest_service_client::IngestServiceClient,
};
use callscope::store::filter_sql::{SELECT_CALLS, push_page, push_where};

#[derive(Debug, Clone, Parser)]
#[command(about = "Ingest and listing benchmark of callscope's storage backends")]
struct Args {
    /// Synthetic calls to generate and store.
    #[arg(long, default_value_t = 1_000_000)]
    calls: u64,
    /// Backends to measure, comma-separated: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// PostgreSQL server on which a fresh `callscope_bench_<random>` database
    /// is created (and dropped afterwards).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Calls per UpsertCalls request (and per baseline chunk).
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// Concurrent ingest streams (gRPC and baseline alike).
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Concurrent ListCalls clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Timed ListCalls requests per client and filter.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// The row whose keyset cursor starts the deep page (row 150,000 = page
    /// 10,001 at page size 15).
    #[arg(long, default_value_t = 150_000)]
    deep_row: u64,
}

const TENANT: &str = DEFAULT_TENANT;
const DAY_MS: i64 = 86_400_000;
/// 2026-08-01T00:00:00Z: calls spread over the 90 days after it.
const START_MS: i64 = 1_785_542_400_000;
const SPAN_MS: i64 = 90 * DAY_MS;
const TASKS: u64 = 40;
const TAGS: usize = 50;
const TAG_GROUPS: usize = 8;
/// Database connections of the server and of the direct baseline alike.
const POOL: u32 = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    let args = Args::parse();
    if args.batch == 0 || args.batch > 1000 {
        bail!("--batch must be 1..=1000");
    }
    println!("# callscope-loadbench");
    println!();
    println!(
        "command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("machine: {}", machine());
    println!();
    for backend in &args.backends {
        let table = match backend.as_str() {
            "sqlite" => bench_sqlite(&args).await?,
            "postgres" => bench_postgres(&args).await?,
            other => bail!("unknown backend `{other}`: use sqlite or postgres"),
        };
        println!("{table}");
    }
    println!("peak RSS of the process (VmHWM): {}", peak_rss());
    Ok(())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cores} cores (nproc) {cpu}, {:.1} GiB memory",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

// ---------------------------------------------------------------------------
// Synthetic calls

/// SplitMix64: a good, cheap hash of the row index.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A small deterministic random stream per row.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const PROVINCES: &[(&str, &[&str])] = &[
    ("广东", &["广州", "深圳", "佛山"]),
    ("江苏", &["南京", "苏州", "无锡"]),
    ("浙江", &["杭州", "宁波"]),
    ("山东", &["济南", "青岛"]),
    ("四川", &["成都"]),
    ("北京", &["北京"]),
    ("上海", &["上海"]),
];
const CARRIERS: &[&str] = &["移动", "联通", "电信"];
const ROBOT_LINES: &[&str] = &[
    "您好,我是优学教育的客服小王,耽误您一分钟",
    "请问您最近有考虑给孩子报名课程吗",
    "我们现在有暑期优惠活动,价格非常实惠",
    "好的,那我稍后让课程顾问联系您",
    "感谢您的接听,祝您生活愉快,再见",
];
const CUSTOMER_LINES: &[&str] = &[
    "多少钱",
    "价格是多少啊",
    "我没兴趣,不需要",
    "你们在哪个城市",
    "可以加个微信吗",
    "再见",
    "我现在在开车,晚点再说",
    "优惠能持续到什么时候",
];

/// One synthetic call: what both the gRPC request and the baseline rows are
/// made of.
struct Synth {
    index: u64,
    task: u64,
    callee: String,
    caller: String,
    call_time: i64,
    answer_time: Option<i64>,
    hangup_time: i64,
    ring_ms: i64,
    talk_ms: i64,
    outcome: proto::CallOutcome,
    hangup_by: proto::Party,
    score: i32,
    intent: Option<&'static str>,
    rounds: i32,
    tags: Vec<usize>,
    province: &'static str,
    city: &'static str,
    carrier: &'static str,
    /// (kind, customer text, robot text)
    turns: Vec<(proto::TurnKind, &'static str, &'static str)>,
}

fn phone(index: u64) -> String {
    format!("+86138{:08}", mix(index ^ 0x5EED) % 100_000_000)
}

fn synth(index: u64, total: u64) -> Synth {
    let mut r = Rng(index.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xCA11);
    let call_time = START_MS
        + (index as i128 * SPAN_MS as i128 / total.max(1) as i128) as i64
        + r.below(60_000) as i64;
    let ring_ms = 2_000 + r.below(25_000) as i64;
    let roll = r.below(100);
    let outcome = match roll {
        0..55 => proto::CallOutcome::Answered,
        55..80 => proto::CallOutcome::NoAnswer,
        80..88 => proto::CallOutcome::Busy,
        88..94 => proto::CallOutcome::Rejected,
        94..97 => proto::CallOutcome::PoweredOff,
        _ => proto::CallOutcome::InvalidNumber,
    };
    let answered = outcome == proto::CallOutcome::Answered;
    let talk_ms = if answered {
        3_000 + r.below(177_000) as i64
    } else {
        0
    };
    let score = if answered {
        // Most calls score low; a tail reaches 500.
        let a = r.below(501) as i32;
        let b = r.below(501) as i32;
        a.min(b)
    } else {
        0
    };
    let intent = answered.then(|| match r.below(100) {
        0..15 => "A",
        15..35 => "B",
        35..65 => "C",
        _ => "D",
    });
    let tag_count = if answered { r.below(5) as usize } else { 0 };
    let mut tags = Vec::with_capacity(tag_count);
    while tags.len() < tag_count {
        let t = r.below(TAGS as u64) as usize;
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let mut turns = Vec::new();
    if answered && r.below(100) < 30 {
        let n = 2 + r.below(5) as usize;
        for k in 0..n {
            if k % 2 == 0 {
                turns.push((proto::TurnKind::RobotPrompt, "", r.pick(ROBOT_LINES)));
            } else {
                turns.push((
                    proto::TurnKind::CustomerUtterance,
                    r.pick(CUSTOMER_LINES),
                    r.pick(ROBOT_LINES),
                ));
            }
        }
    }
    let (province, cities) = PROVINCES[r.below(PROVINCES.len() as u64) as usize];
    let city = r.pick(cities);
    Synth {
        index,
        task: mix(index ^ 0x7A5C) % TASKS,
        callee: phone(index),
        caller: format!("+86173619843{:02}", r.below(20)),
        call_time,
        answer_time: answered.then_some(call_time + ring_ms),
        hangup_time: call_time + ring_ms + talk_ms,
        ring_ms,
        talk_ms,
        outcome,
        hangup_by: if r.below(2) == 0 {
            proto::Party::Customer
        } else {
            proto::Party::Robot
        },
        score,
        intent,
        rounds: if answered { 1 + r.below(12) as i32 } else { 0 },
        tags,
        province,
        city,
        carrier: r.pick(CARRIERS),
        turns,
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn tag_proto(t: usize) -> proto::Tag {
    let g = t % TAG_GROUPS;
    proto::Tag {
        id: format!("t{t:02}"),
        name: format!("标签{t:02}"),
        groups: vec![proto::TagGroup {
            id: format!("g{g}"),
            name: format!("分组{g}"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn external_id(index: u64) -> String {
    format!("bench-{index:010}")
}

impl Synth {
    fn to_proto(&self) -> proto::Call {
        proto::Call {
            source: proto::Source::Smartivr as i32,
            external_id: external_id(self.index),
            task_id: format!("task-{:02}", self.task),
            callee: self.callee.clone(),
            caller: self.caller.clone(),
            call_time: Some(ts(self.call_time)),
            answer_time: self.answer_time.map(ts),
            hangup_time: Some(ts(self.hangup_time)),
            ring_ms: self.ring_ms,
            talk_ms: self.talk_ms,
            total_ms: self.ring_ms + self.talk_ms,
            outcome: self.outcome as i32,
            hangup_by: self.hangup_by as i32,
            score: Some(self.score),
            intent_level: self.intent.map(|id| proto::IntentLevel {
                id: id.to_owned(),
                name: format!("{id}级"),
                ..Default::default()
            }),
            rounds: self.rounds,
            tags: self.tags.iter().map(|&t| tag_proto(t)).collect(),
            location: Some(proto::Location {
                province: self.province.to_owned(),
                city: self.city.to_owned(),
                carrier: self.carrier.to_owned(),
                ..Default::default()
            }),
            turns: self
                .turns
                .iter()
                .enumerate()
                .map(|(k, (kind, customer, robot))| proto::DialogueTurn {
                    sequence: k as i32 + 1,
                    kind: *kind as i32,
                    customer_text: (*customer).to_owned(),
                    robot_text: (*robot).to_owned(),
                    ..Default::default()
                })
                .collect(),
            update_time: Some(ts(self.hangup_time + 5_000)),
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------------------
// Baseline rows: what the upsert path writes, as plain values

#[derive(Clone)]
enum Val {
    Null,
    Int(i64),
    Text(String),
}

const BASE_CALL_COLUMNS: &[&str] = &[
    "tenant_id",
    "call_id",
    "source",
    "external_id",
    "task_id",
    "callee",
    "callee_raw",
    "caller",
    "caller_raw",
    "call_time",
    "answer_time",
    "hangup_time",
    "ring_ms",
    "talk_ms",
    "total_ms",
    "outcome",
    "hangup_by",
    "score",
    "intent_level_id",
    "rounds",
    "province",
    "city",
    "carrier",
    "attributes",
    "update_time",
    "sync_time",
    "content_hash",
];
const BASE_TAG_COLUMNS: &[&str] = &["tenant_id", "call_id", "tag_id", "position"];
const BASE_GROUP_COLUMNS: &[&str] = &["tenant_id", "call_id", "group_id"];
const BASE_TURN_COLUMNS: &[&str] = &[
    "tenant_id",
    "call_id",
    "sequence",
    "kind",
    "customer_text",
    "robot_text",
];
/// (baseline table, the table it copies, its columns)
const BASE_TABLES: &[(&str, &str, &[&str])] = &[
    ("bench_calls", "calls", BASE_CALL_COLUMNS),
    ("bench_call_tags", "call_tags", BASE_TAG_COLUMNS),
    (
        "bench_call_tag_groups",
        "call_tag_groups",
        BASE_GROUP_COLUMNS,
    ),
    ("bench_dialogue_turns", "dialogue_turns", BASE_TURN_COLUMNS),
];

/// The rows of every baseline table for calls `range`, in `BASE_TABLES` order.
fn baseline_rows(range: std::ops::Range<u64>, total: u64) -> [Vec<Vec<Val>>; 4] {
    let mut out: [Vec<Vec<Val>>; 4] = Default::default();
    let now = callscope::domain::now_ms();
    for index in range {
        let s = synth(index, total);
        let call_id = uuid::Uuid::now_v7().to_string();
        let t = || Val::Text(TENANT.to_owned());
        let id = || Val::Text(call_id.clone());
        let hash = hex(&Sha256::digest(external_id(index).as_bytes()));
        out[0].push(vec![
            t(),
            id(),
            Val::Int(proto::Source::Smartivr as i64),
            Val::Text(external_id(index)),
            Val::Text(format!("task-{:02}", s.task)),
            Val::Text(s.callee.clone()),
            Val::Text(s.callee.clone()),
            Val::Text(s.caller.clone()),
            Val::Text(s.caller.clone()),
            Val::Int(s.call_time),
            s.answer_time.map_or(Val::Null, Val::Int),
            Val::Int(s.hangup_time),
            Val::Int(s.ring_ms),
            Val::Int(s.talk_ms),
            Val::Int(s.ring_ms + s.talk_ms),
            Val::Int(s.outcome as i64),
            Val::Int(s.hangup_by as i64),
            Val::Int(i64::from(s.score)),
            s.intent.map_or(Val::Null, |i| Val::Text(i.to_owned())),
            Val::Int(i64::from(s.rounds)),
            Val::Text(s.province.to_owned()),
            Val::Text(s.city.to_owned()),
            Val::Text(s.carrier.to_owned()),
            Val::Text("{}".to_owned()),
            Val::Int(s.hangup_time + 5_000),
            Val::Int(now),
            Val::Text(hash),
        ]);
        let mut groups: Vec<usize> = Vec::new();
        for (position, &tag) in s.tags.iter().enumerate() {
            out[1].push(vec![
                t(),
                id(),
                Val::Text(format!("t{tag:02}")),
                Val::Int(position as i64),
            ]);
            if !groups.contains(&(tag % TAG_GROUPS)) {
                groups.push(tag % TAG_GROUPS);
            }
        }
        for g in groups {
            out[2].push(vec![t(), id(), Val::Text(format!("g{g}"))]);
        }
        for (k, (kind, customer, robot)) in s.turns.iter().enumerate() {
            out[3].push(vec![
                t(),
                id(),
                Val::Int(k as i64 + 1),
                Val::Int(*kind as i64),
                Val::Text((*customer).to_owned()),
                Val::Text((*robot).to_owned()),
            ]);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// COPY text format of some rows.
fn copy_text(rows: &[Vec<Val>]) -> Vec<u8> {
    let mut out = String::with_capacity(rows.len() * 256);
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            match value {
                Val::Null => out.push_str("\\N"),
                Val::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                Val::Text(text) => {
                    for ch in text.chars() {
                        match ch {
                            '\\' => out.push_str("\\\\"),
                            '\t' => out.push_str("\\t"),
                            '\n' => out.push_str("\\n"),
                            '\r' => out.push_str("\\r"),
                            c => out.push(c),
                        }
                    }
                }
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

// ---------------------------------------------------------------------------
// The server under test

struct Running {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_server(url: &str) -> anyhow::Result<Running> {
    let mut config = ServeConfig::new(url, "127.0.0.1:0".parse()?);
    config.db_max_connections = POOL;
    let app = callscope::Application::build(config).await?;
    let addr = app.grpc_addr();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    Ok(Running { addr, stop, task })
}

impl Running {
    async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await?)
    }

    async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// Ingest through UpsertCalls: `streams` connections, each sending batches
/// taken from a shared counter. Answers rows/s.
async fn ingest_grpc(server: &Running, args: &Args) -> anyhow::Result<f64> {
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

// ---------------------------------------------------------------------------
// Listings

const FILTERS: &[&str] = &[
    "task + 7-day window",
    "phone",
    "score ranges + tags",
    "tag group + intent level",
    "transcript text",
];

/// The `which`-th filter, varied by request number `k` where it makes sense.
fn filter(which: usize, k: u64, total: u64) -> proto::CallFilter {
    match which {
        0 => {
            let day = (k % 80) as i64;
            proto::CallFilter {
                task_ids: vec![format!("task-{:02}", k % TASKS)],
                start_time: Some(ts(START_MS + day * DAY_MS)),
                end_time: Some(ts(START_MS + (day + 7) * DAY_MS)),
                ..Default::default()
            }
        }
        1 => proto::CallFilter {
            phone: phone(mix(k) % total),
            ..Default::default()
        },
        2 => proto::CallFilter {
            score_ranges: vec![
                proto::ScoreRange {
                    min: Some(100),
                    max: Some(200),
                },
                proto::ScoreRange {
                    min: Some(400),
                    max: None,
                },
            ],
            tag_ids: vec![format!("t{:02}", k % 50), format!("t{:02}", (k + 17) % 50)],
            ..Default::default()
        },
        3 => proto::CallFilter {
            tag_group_ids: vec![format!("g{}", k % TAG_GROUPS as u64)],
            intent_level_ids: vec!["A".to_owned()],
            ..Default::default()
        },
        _ => proto::CallFilter {
            transcript_contains: "微信".to_owned(),
            ..Default::default()
        },
    }
}

fn to_domain(f: &proto::CallFilter) -> anyhow::Result<CallFilter> {
    let mut v = Violations::new();
    let region = Region::from_str("CN").map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let filter = filter_from_proto(Some(f), "filter", region, &mut v);
    if !v.is_empty() {
        bail!("bad benchmark filter: {v}");
    }
    Ok(filter)
}

/// p50 and p99 of some latencies, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

/// ListCalls of filter `which` from `clients` concurrent clients.
async fn list_grpc(
    channels: &[Channel],
    args: &Args,
    which: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let mut client = CallServiceClient::new(channels[c % channels.len()].clone())
            .max_decoding_message_size(64 << 20);
        let (requests, total) = (args.requests, args.calls);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests);
            for r in 0..requests {
                let k = (c * requests + r) as u64;
                let request = proto::ListCallsRequest {
                    filter: Some(filter(which, k, total)),
                    ..Default::default()
                };
                let started = Instant::now();
                client.list_calls(request).await?;
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

/// The store's statements for the tags and the hit tag groups of a page
/// (`attach_tags` in `store/sql_backend.rs`), completed by the page's ids.
const TAGS_SQL: &str = "SELECT x.call_id, x.tag_id, t.name, t.color, t.description, \
     g.group_id, g.name AS group_name, g.scene_id \
     FROM call_tags x \
     LEFT JOIN tags t ON t.tenant_id = x.tenant_id AND t.tag_id = x.tag_id \
     LEFT JOIN tag_group_members m ON m.tenant_id = x.tenant_id AND m.tag_id = x.tag_id \
     LEFT JOIN tag_groups g ON g.tenant_id = m.tenant_id AND g.group_id = m.group_id \
     WHERE x.tenant_id = ";
const GROUPS_SQL: &str = "SELECT x.call_id, x.group_id, g.name, g.scene_id FROM call_tag_groups x \
     LEFT JOIN tag_groups g ON g.tenant_id = x.tenant_id AND g.group_id = x.group_id \
     WHERE x.tenant_id = ";

/// A pool for the direct baseline, sized like the server's.
#[derive(Clone)]
enum Direct {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

impl Direct {
    /// The listing SQL the store runs for a page of 15 (16 fetched), rows
    /// fetched but not decoded; with `tags`, also the two statements that
    /// fetch the tags and tag groups of the page, as the store does.
    async fn list(
        &self,
        filter: &CallFilter,
        after: Option<&Cursor>,
        tags: bool,
    ) -> anyhow::Result<usize> {
        let order = CallOrder::CallTimeDesc;
        macro_rules! run {
            ($db:ty, $pool:expr) => {{
                let mut qb = QueryBuilder::<$db>::new(SELECT_CALLS);
                push_where(&mut qb, TENANT, filter);
                push_page(&mut qb, order, after, 16);
                let rows = qb.build().fetch_all($pool).await?;
                if tags && !rows.is_empty() {
                    let ids: Vec<String> = rows
                        .iter()
                        .take(15)
                        .map(|r| sqlx::Row::try_get::<String, _>(r, "call_id"))
                        .collect::<Result<_, _>>()?;
                    for sql in [TAGS_SQL, GROUPS_SQL] {
                        let mut qb = QueryBuilder::<$db>::new(sql);
                        qb.push_bind(TENANT.to_owned()).push(" AND x.call_id IN (");
                        let mut list = qb.separated(", ");
                        for id in &ids {
                            list.push_bind(id.clone());
                        }
                        qb.push(") ORDER BY x.call_id");
                        qb.build().fetch_all($pool).await?;
                    }
                }
                rows.len()
            }};
        }
        Ok(match self {
            Direct::Pg(pool) => run!(Postgres, pool),
            Direct::Sqlite(pool) => run!(Sqlite, pool),
        })
    }

    async fn deep_cursor(&self, row: u64) -> anyhow::Result<Cursor> {
        let sql = "SELECT call_time, call_id FROM calls WHERE tenant_id = 'default' \
                   ORDER BY call_time DESC, call_id DESC LIMIT 1 OFFSET ";
        let sql = sqlx::AssertSqlSafe(format!("{sql}{}", row.saturating_sub(1)));
        let (sort_key, call_id): (i64, String) = match self {
            Direct::Pg(pool) => sqlx::query_as(sql).fetch_one(pool).await?,
            Direct::Sqlite(pool) => sqlx::query_as(sql).fetch_one(pool).await?,
        };
        Ok(Cursor { sort_key, call_id })
    }
}

async fn list_direct(
    direct: &Direct,
    args: &Args,
    which: usize,
    tags: bool,
) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let direct = direct.clone();
        let (requests, total) = (args.requests, args.calls);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests);
            for r in 0..requests {
                let k = (c * requests + r) as u64;
                let started = Instant::now();
                let f = to_domain(&filter(which, k, total))?;
                direct.list(&f, None, tags).await?;
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

/// Times `n` sequential ListCalls of the whole listing from `token`.
async fn time_page(channel: &Channel, token: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut client = CallServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let page = client
            .list_calls(proto::ListCallsRequest {
                page_token: token.to_owned(),
                page_size: 15,
                ..Default::default()
            })
            .await?
            .into_inner();
        latencies.push(started.elapsed());
        if page.calls.len() != 15 {
            bail!("a page of {} calls, expected 15", page.calls.len());
        }
    }
    Ok(latencies)
}

// ---------------------------------------------------------------------------
// One backend

struct Report {
    backend: &'static str,
    calls: u64,
    ingest: f64,
    baseline: f64,
    baseline_name: &'static str,
    /// gRPC p50/p99, direct listing SQL p50/p99, direct with the two tag
    /// statements p50/p99.
    listings: Vec<(f64, f64, f64, f64, f64, f64)>,
    page1: (f64, f64),
    deep: (f64, f64),
    deep_page: u64,
    /// PostgreSQL: COPY into tables with the real indexes.
    indexed_copy: Option<f64>,
    clients: usize,
    streams: usize,
    batch: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "## {} ({} calls)", self.backend, self.calls)?;
        writeln!(f)?;
        writeln!(f, "| measure | callscope | baseline | ratio | target |")?;
        writeln!(f, "|---|---|---|---|---|")?;
        let ratio = self.ingest / self.baseline;
        writeln!(
            f,
            "| ingest rows/s (UpsertCalls, {}/batch, {} streams) vs {} | {:.0} | {:.0} | {:.2} of baseline | >= 0.5 {} |",
            self.batch,
            self.streams,
            self.baseline_name,
            self.ingest,
            self.baseline,
            ratio,
            if ratio >= 0.5 { "met" } else { "MISSED" }
        )?;
        if let Some(indexed) = self.indexed_copy {
            writeln!(
                f,
                "| (diagnostic) COPY into tables with all the real indexes, rows/s | | {indexed:.0} | ingest {:.2} of it | |",
                self.ingest / indexed
            )?;
        }
        for (name, (p50, p99, d50, d99, t50, t99)) in FILTERS.iter().zip(&self.listings) {
            let ratio = p99 / d99;
            let met = ratio <= 1.5 && *p99 < 10.0;
            writeln!(
                f,
                "| ListCalls {name}: p50 / p99 ms ({} clients) vs the listing SQL direct | {p50:.2} / {p99:.2} | {d50:.2} / {d99:.2} | p99 {ratio:.2}x | p99 <= 1.5x and < 10 ms {} |",
                self.clients,
                if met { "met" } else { "MISSED" }
            )?;
            writeln!(
                f,
                "| (diagnostic) same, vs the listing SQL + the store's 2 tag statements direct | | {t50:.2} / {t99:.2} | p99 {:.2}x | |",
                p99 / t99
            )?;
        }
        let ratio = self.deep.0 / self.page1.0;
        writeln!(
            f,
            "| page {} vs page 1: p50 / p99 ms (1 client) | {:.2} / {:.2} | {:.2} / {:.2} | p50 {:.2}x | <= 1.5x {} |",
            self.deep_page,
            self.deep.0,
            self.deep.1,
            self.page1.0,
            self.page1.1,
            ratio,
            if ratio <= 1.5 { "met" } else { "MISSED" }
        )?;
        Ok(())
    }
}

async fn measure(
    backend: &'static str,
    url: &str,
    direct: Direct,
    baseline: f64,
    baseline_name: &'static str,
    args: &Args,
) -> anyhow::Result<Report> {
    let server = start_server(url).await?;
    eprintln!(
        "[{backend}] ingesting {} calls through UpsertCalls",
        args.calls
    );
    let ingest = ingest_grpc(&server, args).await?;
    eprintln!("[{backend}] ingest: {ingest:.0} rows/s");
    if let Direct::Pg(pool) = &direct {
        // What autovacuum does after a bulk load, done now so the planner
        // does not guess.
        pool.execute("ANALYZE").await?;
    }

    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(server.channel().await?);
    }
    let mut listings = Vec::new();
    for (which, name) in FILTERS.iter().enumerate() {
        // One untimed round warms caches and connections for both sides.
        let warm = Args {
            requests: 1,
            ..args.clone()
        };
        list_grpc(&channels, &warm, which).await?;
        list_direct(&direct, &warm, which, true).await?;
        let (p50, p99) = percentiles(list_grpc(&channels, args, which).await?);
        let (d50, d99) = percentiles(list_direct(&direct, args, which, false).await?);
        let (t50, t99) = percentiles(list_direct(&direct, args, which, true).await?);
        eprintln!(
            "[{backend}] {name}: {p50:.2}/{p99:.2} ms, direct {d50:.2}/{d99:.2} ms, \
             direct with tag statements {t50:.2}/{t99:.2} ms"
        );
        listings.push((p50, p99, d50, d99, t50, t99));
    }

    let deep_row = args.deep_row.min(args.calls.saturating_sub(16)).max(1);
    let cursor = direct.deep_cursor(deep_row).await?;
    let scope = call_query_scope(&CallFilter::default(), CallOrder::CallTimeDesc);
    let token = PageToken::encode(&cursor, &scope);
    let deep_page = deep_row / 15 + 1;
    time_page(&channels[0], "", 10).await?;
    time_page(&channels[0], &token, 10).await?;
    let page1 = percentiles(time_page(&channels[0], "", 200).await?);
    let deep = percentiles(time_page(&channels[0], &token, 200).await?);
    eprintln!("[{backend}] page 1 {page1:?} ms, page {deep_page} {deep:?} ms");
    server.shutdown().await?;
    Ok(Report {
        backend,
        calls: args.calls,
        ingest,
        baseline,
        baseline_name,
        listings,
        page1,
        deep,
        deep_page,
        indexed_copy: None,
        clients: args.clients,
        streams: args.streams,
        batch: args.batch,
    })
}

async fn bench_postgres(args: &Args) -> anyhow::Result<Report> {
    let database = format!("callscope_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&args.postgres_url)
        .await
        .context("connecting to the PostgreSQL server")?;
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .await?;
    let url = match args.postgres_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{database}"),
        None => bail!("--postgres-url has no database name"),
    };
    eprintln!("[postgres] database {database}");
    let result = bench_postgres_on(&url, args).await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
        )))
        .await?;
    result
}

async fn bench_postgres_on(url: &str, args: &Args) -> anyhow::Result<Report> {
    // Migrate by starting (and stopping) the server once, so the baseline
    // tables can copy the column definitions of the real ones.
    start_server(url).await?.shutdown().await?;
    let pool = PgPoolOptions::new()
        .max_connections(POOL)
        .connect(url)
        .await?;
    let baseline = pg_copy(url, &pool, args, false).await?;
    let indexed = pg_copy(url, &pool, args, true).await?;
    let mut report = measure(
        "PostgreSQL",
        url,
        Direct::Pg(pool),
        baseline,
        "COPY FROM STDIN into unindexed tables (as many streams, one transaction per batch)",
        args,
    )
    .await?;
    report.indexed_copy = Some(indexed);
    Ok(report)
}

/// COPY of every row into tables like the real ones, without indexes or with
/// all of them (`indexed`: to tell index upkeep from round trips). Rows/s.
async fn pg_copy(url: &str, pool: &PgPool, args: &Args, indexed: bool) -> anyhow::Result<f64> {
    let including = if indexed { "ALL" } else { "DEFAULTS" };
    for (table, like, _) in BASE_TABLES {
        pool.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (LIKE {like} INCLUDING {including})"
        )))
        .await?;
    }
    eprintln!(
        "[postgres] COPY of {} calls (indexed: {indexed})",
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
                // One transaction per batch, as an UpsertCalls request is.
                let mut tx = conn.begin().await?;
                for ((table, _, columns), rows) in BASE_TABLES.iter().zip(&rows) {
                    if rows.is_empty() {
                        continue;
                    }
                    let statement = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
                    let mut copy = tx.copy_in_raw(&statement).await?;
                    copy.send(copy_text(rows)).await?;
                    copy.finish().await?;
                }
                tx.commit().await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let baseline = args.calls as f64 / started.elapsed().as_secs_f64();
    eprintln!("[postgres] COPY (indexed: {indexed}): {baseline:.0} rows/s");
    for (table, _, _) in BASE_TABLES {
        pool.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
            .await?;
    }
    Ok(baseline)
}
async fn bench_sqlite(args: &Args) -> anyhow::Result<Report> {
    let dir =
        std::env::temp_dir().join(format!("callscope-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let result = bench_sqlite_in(&dir, args).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench_sqlite_in(dir: &std::path::Path, args: &Args) -> anyhow::Result<Report> {
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    start_server(&url).await?.shutdown().await?;
    let base = SqliteConnectOptions::from_str(&url)?;
    eprintln!(
        "[sqlite] multi-row INSERT of {} calls (baseline)",
        args.calls
    );
    let baseline = {
        let mut conn = sqlx::sqlite::SqliteConnection::connect_with(
            &base
                .clone()
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full),
        )
        .await?;
        for (table, like, _) in BASE_TABLES {
            conn.execute(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} AS SELECT * FROM {like} WHERE 0"
            )))
            .await?;
        }
        let started = Instant::now();
        let mut tx = conn.begin().await?;
        let mut first = 0;
        while first < args.calls {
            let rows = baseline_rows(first..(first + args.batch).min(args.calls), args.calls);
            for ((table, _, columns), rows) in BASE_TABLES.iter().zip(rows) {
                if rows.is_empty() {
                    continue;
                }
                let mut qb = QueryBuilder::<Sqlite>::new(format!(
                    "INSERT INTO {table} ({}) ",
                    columns.join(", ")
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
        for (table, _, _) in BASE_TABLES {
            conn.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
                .await?;
        }
        conn.close().await?;
        rate
    };
    eprintln!("[sqlite] INSERT baseline: {baseline:.0} rows/s");
    let pool = SqlitePoolOptions::new()
        .max_connections(POOL)
        .connect_with(base.read_only(true))
        .await?;
    measure(
        "SQLite",
        &url,
        Direct::Sqlite(pool),
        baseline,
        "multi-row INSERT (one per batch and table) into unindexed tables in one transaction, 1 stream (SQLite has no COPY)",
        args,
    )
    .await
}
