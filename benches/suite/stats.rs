//! Campaign analytics on SQLite: one task of N synthetic calls written
//! straight into a fresh file (the real migrations, 1000-row INSERTs, 50,000
//! rows a transaction), served by the real server; GetCallStats and
//! GetCallTimeSeries through gRPC beside the same SQL statements written out
//! here and run directly through sqlx, taking turns.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::report::p50_p99;
use crate::server::Running;
use callscope::domain::stats::{locate_in_histogram, nearest_rank_offset};
use callscope::proto::analytics_service_client::AnalyticsServiceClient;
use callscope::proto::call_service_client::CallServiceClient;
use callscope::proto::catalog_service_client::CatalogServiceClient;
use callscope::proto::{
    CallFilter, GetCallStatsRequest, GetCallTimeSeriesRequest, GetTaskRequest, Granularity,
    ListCallsRequest, ListTaskNumbersRequest, NumberStatus,
};
use callscope::store::ROLLUP_DIMENSIONS_BUT_TAGS;

const TENANT: &str = "default";
const TASK: &str = "bench-task";
/// 2026-01-01T00:00:00+08:00: the first local day of the generated calls.
const START_MS: i64 = 1_767_196_800_000;
const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 30;
/// Rows per INSERT statement: 1000 rows × 26 columns stays under SQLite's
/// 32,766 bound parameters.
const ROWS_PER_INSERT: usize = 1000;
/// Rows per transaction.
const ROWS_PER_TX: usize = 50_000;
/// Untimed runs of each side before the timed ones.
const WARM_UP: usize = 2;

/// Latencies of one request through gRPC and of its SQL run directly.
pub struct Timed {
    pub request: &'static str,
    pub grpc: Vec<Duration>,
    pub sql: Vec<Duration>,
}

/// Where the calls live: a temporary file by default; `db` replaced unless
/// `reuse`.
pub struct Dataset {
    pub calls: usize,
    pub db: Option<PathBuf>,
    pub reuse: bool,
}

/// The analytics timings, and the read-side look-ups on the same calls
/// (GetTask with its progress, ListCalls by one vendor id).
pub struct Analytics {
    pub stats: Vec<Timed>,
    pub lookups: Vec<Timed>,
    /// Health/Check from one client on the same channel: what any request
    /// costs with no store behind it.
    pub floor: Vec<Duration>,
}

pub async fn run(dataset: &Dataset, runs: usize) -> anyhow::Result<Analytics> {
    let dir = tempfile::tempdir()?;
    let path = dataset
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("stats.db"));
    if !dataset.reuse {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    let url = format!("sqlite://{}", path.display());
    // The first start creates the file and applies the migrations.
    Running::migrate(&url).await?;
    if !dataset.reuse {
        let calls = dataset.calls;
        eprintln!("[stats] generating {calls} calls in one task");
        let started = Instant::now();
        generate(&url, calls).await.context("generating calls")?;
        let generation = started.elapsed();
        eprintln!(
            "[stats] generated {calls} calls in {:.1} s ({:.0} calls/s)",
            generation.as_secs_f64(),
            calls as f64 / generation.as_secs_f64(),
        );
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "[stats] database {} ({:.0} MiB)",
        path.display(),
        size as f64 / 1_048_576.0
    );

    let server = Running::start(&url).await?;
    let channel = server.channel().await?;
    let mut client = AnalyticsServiceClient::new(channel.clone());
    let direct = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(
            // The same settings as the server's readers.
            SqliteConnectOptions::from_str(&url)?
                .read_only(true)
                .pragma("mmap_size", "1073741824"),
        )
        .await?;

    // The task's 30 local days (Asia/Shanghai midnights fall on whole UTC
    // hours, so the rollups answer).
    let filter = CallFilter {
        task_ids: vec![TASK.into()],
        start_time: Some(callscope::proto::Timestamp {
            seconds: START_MS / 1000,
            nanos: 0,
        }),
        end_time: Some(callscope::proto::Timestamp {
            seconds: (START_MS + DAYS * DAY_MS) / 1000,
            nanos: 0,
        }),
        ..Default::default()
    };
    let stats_request = GetCallStatsRequest {
        filter: Some(filter.clone()),
        top_tags: 20,
    };
    let series_request = GetCallTimeSeriesRequest {
        filter: Some(filter),
        granularity: Granularity::Day.into(),
        time_zone: "Asia/Shanghai".into(),
    };

    let stats = client
        .get_call_stats(stats_request.clone())
        .await?
        .into_inner();
    let direct_total = direct_rollup_stats(&direct).await?;
    anyhow::ensure!(
        stats.total_calls == direct_total && direct_scan_stats(&direct).await? == direct_total,
        "gRPC, the rollups' SQL and the scan's SQL disagree"
    );
    eprintln!(
        "[stats] task stats: total {} answered {} rate {:.3} talk avg {} ms p50 {} ms p90 {} ms, {} tags",
        stats.total_calls,
        stats.answered_calls,
        stats.answer_rate,
        stats.talk_ms_avg,
        stats.talk_ms_p50,
        stats.talk_ms_p90,
        stats.by_tag.len(),
    );

    let mut timed = Vec::new();
    let (grpc, sql) = time_pair(
        runs,
        || {
            let mut c = client.clone();
            let r = stats_request.clone();
            async move {
                c.get_call_stats(r)
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            }
        },
        || {
            let pool = direct.clone();
            async move { direct_rollup_stats(&pool).await.map(|_| ()) }
        },
    )
    .await?;
    timed.push(Timed {
        request: "GetCallStats 30d",
        grpc,
        sql,
    });
    let (grpc, sql) = time_pair(
        runs,
        || {
            let mut c = client.clone();
            let r = series_request.clone();
            async move {
                c.get_call_time_series(r)
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            }
        },
        || {
            let pool = direct.clone();
            async move { direct_rollup_series(&pool).await.map(|_| ()) }
        },
    )
    .await?;
    timed.push(Timed {
        request: "GetCallTimeSeries DAY 30d",
        grpc,
        sql,
    });
    // What the rollups save: the service beside the scan of the calls that
    // answered before them (the same statements, run directly).
    let mut scans = Vec::new();
    for (request, series) in [
        ("GetCallStats 30d, scan SQL", false),
        ("GetCallTimeSeries DAY 30d, scan SQL", true),
    ] {
        let (grpc, sql) = time_pair(
            runs,
            || {
                let mut c = client.clone();
                let (stats, series_r) = (stats_request.clone(), series_request.clone());
                async move {
                    if series {
                        c.get_call_time_series(series_r).await.map(|_| ())
                    } else {
                        c.get_call_stats(stats).await.map(|_| ())
                    }
                    .map_err(anyhow::Error::from)
                }
            },
            || {
                let pool = direct.clone();
                async move {
                    if series {
                        direct_scan_series(&pool).await
                    } else {
                        direct_scan_stats(&pool).await.map(|_| ())
                    }
                }
            },
        )
        .await?;
        scans.push(Timed { request, grpc, sql });
    }
    let lookups = time_lookups(&server, &direct, dataset.calls, runs).await?;
    let floor = crate::listing::health(std::slice::from_ref(&channel), 1, runs).await?;
    direct.close().await;
    server.shutdown().await?;

    print_timed(
        &format!(
            "Analytics, SQLite ({} calls in one task, {runs} runs each)",
            dataset.calls
        ),
        "SQL",
        &timed,
    );
    let (p50, p99) = p50_p99(&floor);
    println!(
        "The gRPC floor, Health/Check from one client on the same channel (no store): \
         p50 {p50:.2} ms, p99 {p99:.2} ms."
    );
    println!();
    print_timed(
        &format!(
            "Analytics from rollups against the scan of the calls, SQLite (same calls, {runs} runs each)"
        ),
        "scan SQL",
        &scans,
    );
    print_timed(
        &format!("Read-side look-ups, SQLite (same calls, {runs} runs each)"),
        "SQL",
        &lookups,
    );
    Ok(Analytics {
        stats: timed,
        lookups,
        floor,
    })
}

/// One markdown table of requests timed through gRPC beside `baseline`.
fn print_timed(title: &str, baseline: &str, rows: &[Timed]) {
    println!("## {title}");
    println!();
    println!(
        "| request | gRPC p50 ms | gRPC p99 ms | {baseline} p50 ms | {baseline} p99 ms | gRPC ÷ {baseline} (p50) |"
    );
    println!("|---|---|---|---|---|---|");
    for t in rows {
        let ((gp50, gp99), (sp50, sp99)) = (p50_p99(&t.grpc), p50_p99(&t.sql));
        println!(
            "| {} | {gp50:.1} | {gp99:.1} | {sp50:.1} | {sp99:.1} | {:.2}x |",
            t.request,
            gp50 / sp50
        );
    }
    println!();
}

/// GetTask (the task's progress: its calls, numbers by status, levels)
/// against the call figures of the task read directly, and ListCalls by one
/// `external_ids` value against the plain index probe.
async fn time_lookups(
    server: &Running,
    direct: &SqlitePool,
    calls: usize,
    runs: usize,
) -> anyhow::Result<Vec<Timed>> {
    let channel = server.channel().await?;
    let catalog = CatalogServiceClient::new(channel.clone());
    let listing = CallServiceClient::new(channel);
    let task = catalog
        .clone()
        .get_task(GetTaskRequest {
            task_id: TASK.into(),
        })
        .await?
        .into_inner();
    let progress = task.progress.unwrap_or_default();
    anyhow::ensure!(
        progress.calls_total == calls as i64,
        "GetTask counts {} calls of {calls}",
        progress.calls_total
    );
    eprintln!(
        "[lookups] task progress: {} calls, {} answered, {} numbers",
        progress.calls_total, progress.calls_answered, progress.numbers_total
    );
    let mut timed = Vec::new();
    let (grpc, sql) = time_pair(
        runs,
        || {
            let mut c = catalog.clone();
            async move {
                c.get_task(GetTaskRequest {
                    task_id: TASK.into(),
                })
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
            }
        },
        || {
            let pool = direct.clone();
            async move { direct_task_calls(&pool).await }
        },
    )
    .await?;
    timed.push(Timed {
        request: "GetTask progress",
        grpc,
        sql,
    });
    // One status of the dialing list (busy: ~1/13 of the called numbers),
    // the first page, against the kept state read directly.
    let busy = NumberStatus::Busy as i32;
    let page = listing
        .clone()
        .list_task_numbers(ListTaskNumbersRequest {
            task_id: TASK.into(),
            statuses: vec![busy],
            ..Default::default()
        })
        .await?
        .into_inner();
    anyhow::ensure!(
        !page.numbers.is_empty() && page.numbers.iter().all(|n| n.status == busy),
        "the status filter finds busy numbers only"
    );
    let (grpc, sql) = time_pair(
        runs,
        || {
            let mut c = listing.clone();
            async move {
                c.list_task_numbers(ListTaskNumbersRequest {
                    task_id: TASK.into(),
                    statuses: vec![busy],
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
            }
        },
        || {
            let pool = direct.clone();
            async move { direct_busy_numbers(&pool).await }
        },
    )
    .await?;
    timed.push(Timed {
        request: "ListTaskNumbers status filter",
        grpc,
        sql,
    });
    // An id in the middle of the table; the generated external id is the call id.
    let wanted = format!("{:010}", calls / 2);
    let (grpc, sql) = time_pair(
        runs,
        || {
            let mut c = listing.clone();
            let id = wanted.clone();
            async move {
                let page = c
                    .list_calls(ListCallsRequest {
                        filter: Some(CallFilter {
                            external_ids: vec![id],
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                anyhow::ensure!(page.calls.len() == 1, "the id finds its call");
                Ok(())
            }
        },
        || {
            let pool = direct.clone();
            let id = wanted.clone();
            async move {
                sqlx::query("SELECT * FROM calls WHERE tenant_id = ? AND external_id = ?")
                    .bind(TENANT)
                    .bind(id)
                    .fetch_one(&pool)
                    .await?;
                Ok(())
            }
        },
    )
    .await?;
    timed.push(Timed {
        request: "ListCalls external_ids (1 id)",
        grpc,
        sql,
    });
    Ok(timed)
}

/// The first page of the task's busy numbers (outcome 3 "busy" on the
/// latest call, or the vendor's status 8 on an uncalled number), read
/// straight from the kept state, with each number's list entry and latest
/// call.
async fn direct_busy_numbers(pool: &SqlitePool) -> anyhow::Result<()> {
    let branch = |condition: &str| {
        format!(
            "SELECT * FROM (SELECT s.phone, s.attempts, s.last_call_time, s.last_outcome, \
             tn.name, tn.status_code, lc.carrier FROM task_number_states s \
             LEFT JOIN task_numbers tn ON tn.tenant_id = s.tenant_id AND tn.task_id = s.task_id \
             AND tn.phone = s.phone LEFT JOIN calls lc ON lc.tenant_id = s.tenant_id \
             AND lc.call_id = s.last_call_id WHERE s.tenant_id = ?1 AND s.task_id = ?2 \
             AND {condition} ORDER BY s.phone LIMIT 101)"
        )
    };
    let sql = format!(
        "SELECT * FROM ({} UNION ALL {}) ORDER BY phone LIMIT 101",
        branch("s.last_outcome = 3"),
        branch("s.last_outcome IS NULL AND s.vendor_status_code = 8"),
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(TENANT)
        .bind(TASK)
        .fetch_all(pool)
        .await?;
    Ok(())
}

/// The call side of a task's progress, the plain way: totals and first and
/// last call time, and calls by intent level.
async fn direct_task_calls(pool: &SqlitePool) -> anyhow::Result<()> {
    sqlx::query(
        "SELECT COUNT(*), SUM(CASE WHEN outcome = 1 THEN 1 ELSE 0 END), MIN(call_time), \
         MAX(call_time) FROM calls WHERE tenant_id = ? AND task_id = ?",
    )
    .bind(TENANT)
    .bind(TASK)
    .fetch_one(pool)
    .await?;
    sqlx::query(
        "SELECT intent_level_id, COUNT(*) FROM calls WHERE tenant_id = ? AND task_id = ? \
         GROUP BY intent_level_id",
    )
    .bind(TENANT)
    .bind(TASK)
    .fetch_all(pool)
    .await?;
    Ok(())
}

/// Runs `a` and `b` to warm up, then `runs` times each, taking turns (so both
/// see the same state of the machine); returns each run's time.
async fn time_pair<A, FA, B, FB>(
    runs: usize,
    a: A,
    b: B,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)>
where
    A: Fn() -> FA,
    FA: std::future::Future<Output = anyhow::Result<()>>,
    B: Fn() -> FB,
    FB: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..WARM_UP {
        a().await?;
        b().await?;
    }
    let (mut ta, mut tb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let t = Instant::now();
        a().await?;
        ta.push(t.elapsed());
        let t = Instant::now();
        b().await?;
        tb.push(t.elapsed());
    }
    Ok((ta, tb))
}
/// A small deterministic generator (SplitMix64), so every run has the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PROVINCES: &[&str] = &[
    "北京",
    "上海",
    "天津",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "",
];
const CARRIERS: &[&str] = &["移动", "联通", "电信", ""];
const LEVELS: &[&str] = &["A", "B", "C", "D"];

/// Writes `n` calls of one task (plus their tags and the catalogs) with
/// multi-row INSERTs in large transactions, on a connection that skips fsync.
async fn generate(url: &str, n: usize) -> anyhow::Result<()> {
    let options = SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off);
    let pool: SqlitePool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    sqlx::query("PRAGMA cache_size = -262144")
        .execute(&pool)
        .await?;

    let mut tx = pool.begin().await?;
    // The task in the catalog, as the write path would have put it there.
    sqlx::query("INSERT INTO tasks (tenant_id, task_id, name) VALUES (?, ?, ?)")
        .bind(TENANT)
        .bind(TASK)
        .bind("bench task")
        .execute(&mut *tx)
        .await?;
    for level in LEVELS {
        sqlx::query(
            "INSERT INTO intent_levels (tenant_id, intent_level_id, name) VALUES (?, ?, ?)",
        )
        .bind(TENANT)
        .bind(level)
        .bind(format!("level {level}"))
        .execute(&mut *tx)
        .await?;
    }
    for t in 0..30 {
        sqlx::query("INSERT INTO tags (tenant_id, tag_id, name) VALUES (?, ?, ?)")
            .bind(TENANT)
            .bind(format!("tag-{t:02}"))
            .bind(format!("标签{t}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;

    let mut rng = Rng(42);
    // The task's dialing list: 30 % of the calls' count (300k numbers at 1M
    // calls), every number of it called at random; a fifth of them carry a
    // vendor status. Triggers keep each number's state as rows arrive.
    let numbers = (n as u64 * 3 / 10).max(1);
    let mut list_rng = Rng(7);
    let mut k = 0;
    while k < numbers {
        let mut tx = pool.begin().await?;
        let end = (k + ROWS_PER_TX as u64).min(numbers);
        while k < end {
            let chunk: Vec<(String, Option<i64>)> = (k..(k + ROWS_PER_INSERT as u64).min(end))
                .map(|j| {
                    let status = (list_rng.below(5) == 0).then(|| list_rng.below(13) as i64);
                    (phone(j), status)
                })
                .collect();
            k += chunk.len() as u64;
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO task_numbers (tenant_id, task_id, phone, phone_raw, status_code, \
                 upload_time) ",
            );
            qb.push_values(&chunk, |mut b, (phone, status)| {
                b.push_bind(TENANT)
                    .push_bind(TASK)
                    .push_bind(phone.clone())
                    .push_bind(phone.clone())
                    .push_bind(*status)
                    .push_bind(START_MS);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    let mut done = 0;
    while done < n {
        let mut tx = pool.begin().await?;
        let end = (done + ROWS_PER_TX).min(n);
        let mut i = done;
        while i < end {
            let chunk = (end - i).min(ROWS_PER_INSERT);
            let calls: Vec<Synthetic> = (i..i + chunk)
                .map(|k| Synthetic::new(k, numbers, &mut rng))
                .collect();
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO calls (tenant_id, call_id, source, external_id, task_id, callee, \
                 call_time, answer_time, hangup_time, ring_ms, talk_ms, total_ms, billed_ms, \
                 outcome, hangup_by, score, intent_level_id, rounds, province, city, carrier, \
                 rate, cost, currency, sync_time, content_hash) ",
            );
            qb.push_values(&calls, |mut b, c| {
                b.push_bind(TENANT)
                    .push_bind(c.call_id.clone())
                    .push_bind(4_i64)
                    .push_bind(c.call_id.clone())
                    .push_bind(TASK)
                    .push_bind(c.callee.clone())
                    .push_bind(c.call_time)
                    .push_bind(c.answer_time)
                    .push_bind(c.call_time + c.ring_ms + c.talk_ms)
                    .push_bind(c.ring_ms)
                    .push_bind(c.talk_ms)
                    .push_bind(c.ring_ms + c.talk_ms)
                    .push_bind(c.talk_ms)
                    .push_bind(c.outcome)
                    .push_bind(c.hangup_by)
                    .push_bind(c.score)
                    .push_bind(c.level)
                    .push_bind(c.rounds)
                    .push_bind(c.province)
                    .push_bind("")
                    .push_bind(c.carrier)
                    .push_bind(if c.cost.is_empty() { "" } else { "0.0125" })
                    .push_bind(c.cost.clone())
                    .push_bind(if c.cost.is_empty() { "" } else { "CNY" })
                    .push_bind(c.call_time + 60_000)
                    .push_bind("");
            });
            qb.build().execute(&mut *tx).await?;
            let tags: Vec<(&str, String, i64)> = calls
                .iter()
                .flat_map(|c| {
                    c.tags
                        .iter()
                        .enumerate()
                        .map(|(p, t)| (c.call_id.as_str(), t.clone(), p as i64))
                })
                .collect();
            if !tags.is_empty() {
                let mut qb = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO call_tags (tenant_id, call_id, tag_id, position) ",
                );
                qb.push_values(&tags, |mut b, (call_id, tag, position)| {
                    b.push_bind(TENANT)
                        .push_bind(*call_id)
                        .push_bind(tag.clone())
                        .push_bind(*position);
                });
                qb.build().execute(&mut *tx).await?;
            }
            i += chunk;
        }
        tx.commit().await?;
        done = end;
    }
    sqlx::query("ANALYZE").execute(&pool).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}

/// The dialing list's number `k`.
fn phone(k: u64) -> String {
    format!("+86138{k:08}")
}

struct Synthetic {
    call_id: String,
    callee: String,
    call_time: i64,
    answer_time: Option<i64>,
    ring_ms: i64,
    talk_ms: i64,
    outcome: i64,
    hangup_by: i64,
    score: Option<i64>,
    level: Option<&'static str>,
    rounds: i64,
    province: &'static str,
    carrier: &'static str,
    cost: String,
    tags: Vec<String>,
}

impl Synthetic {
    fn new(k: usize, numbers: u64, rng: &mut Rng) -> Self {
        let call_time = START_MS + rng.below((DAYS * DAY_MS) as u64) as i64;
        let ring_ms = 2_000 + rng.below(25_000) as i64;
        // About 45 % answered; the rest spread over the other outcomes.
        let answered = rng.below(100) < 45;
        let outcome = if answered {
            1
        } else {
            2 + rng.below(13) as i64
        };
        let talk_ms = if answered {
            1_000 + rng.below(180_000) as i64
        } else {
            0
        };
        let cost = if answered {
            // 0.0125 per started minute, as a decimal string.
            let minutes = (talk_ms + 59_999) / 60_000;
            let units = minutes * 125;
            format!("{}.{:04}", units / 10_000, units % 10_000)
        } else {
            String::new()
        };
        let tag_count = if answered {
            1 + rng.below(2)
        } else {
            rng.below(2)
        };
        Self {
            call_id: format!("{k:010}"),
            callee: phone(rng.below(numbers)),
            call_time,
            answer_time: answered.then_some(call_time + ring_ms),
            ring_ms,
            talk_ms,
            outcome,
            hangup_by: rng.below(3) as i64,
            score: (rng.below(10) < 8).then(|| rng.below(100) as i64),
            level: answered.then(|| LEVELS[rng.below(LEVELS.len() as u64) as usize]),
            rounds: if answered { rng.below(12) as i64 } else { 0 },
            province: PROVINCES[rng.below(PROVINCES.len() as u64) as usize],
            carrier: CARRIERS[rng.below(CARRIERS.len() as u64) as usize],
            cost,
            // Two distinct tags at most: the second is offset from the first.
            tags: {
                let first = rng.below(30);
                (0..tag_count)
                    .map(|k| format!("tag-{:02}", (first + k * 7) % 30))
                    .collect()
            },
        }
    }
}

/// Binds the tenant, the task and the bounds of each of the three rollup
/// spans (the whole days, the hours before and the hours after them), in the
/// order their sub-selects take them.
fn bind_spans<'q>(
    mut query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    spans: [(i64, i64); 3],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    for (from, to) in spans {
        query = query.bind(TENANT).bind(TASK).bind(from).bind(to);
    }
    query
}

/// The statements GetCallStats runs from the rollups for the task's 30
/// days: every key's sums (the 29 whole UTC days from the day rollups, the
/// 8 hours before and 16 after them from the hour rollups), the top 20 tags
/// likewise, then the two talk percentiles, each from its 10-second bin.
async fn direct_rollup_stats(pool: &SqlitePool) -> anyhow::Result<i64> {
    let (start, end) = (START_MS, START_MS + DAYS * DAY_MS);
    // Asia/Shanghai midnight is 16:00 UTC.
    let first_day = START_MS + 8 * 3_600_000;
    let last_day = first_day + (DAYS - 1) * DAY_MS;
    let spans = [(first_day, last_day), (start, first_day), (last_day, end)];
    let sums = format!(
        "SELECT r.dim, r.key, r.detail, r.calls, r.answered, r.talk_sum, r.ring_sum, \
         r.rounds_sum, r.score_sum, r.score_count, COALESCE(il.name, '') AS name FROM \
         (SELECT dim, key, detail, CAST(SUM(calls) AS BIGINT) AS calls, \
         CAST(SUM(answered) AS BIGINT) AS answered, CAST(SUM(talk_sum) AS BIGINT) AS talk_sum, \
         CAST(SUM(ring_sum) AS BIGINT) AS ring_sum, CAST(SUM(rounds_sum) AS BIGINT) AS rounds_sum, \
         CAST(SUM(score_sum) AS BIGINT) AS score_sum, \
         CAST(SUM(score_count) AS BIGINT) AS score_count FROM \
         (SELECT day AS at, dim, key, detail, calls, answered, talk_sum, ring_sum, rounds_sum, \
         score_sum, score_count FROM call_rollup_days WHERE tenant_id = ? AND task_id IN (?) \
         AND day >= ? AND day < ? AND {dims} \
         UNION ALL SELECT hour AS at, dim, key, detail, calls, answered, talk_sum, ring_sum, \
         rounds_sum, score_sum, score_count FROM call_rollups WHERE tenant_id = ? \
         AND task_id IN (?) AND hour >= ? AND hour < ? AND {dims} \
         UNION ALL SELECT hour AS at, dim, key, detail, calls, answered, talk_sum, ring_sum, \
         rounds_sum, score_sum, score_count FROM call_rollups WHERE tenant_id = ? \
         AND task_id IN (?) AND hour >= ? AND hour < ? AND {dims}) r \
         GROUP BY dim, key, detail) r LEFT JOIN intent_levels il ON il.tenant_id = ? \
         AND r.dim = 'level' AND il.intent_level_id = r.key",
        dims = ROLLUP_DIMENSIONS_BUT_TAGS
    );
    let sums = bind_spans(sqlx::query(sqlx::AssertSqlSafe(sums)), spans)
        .bind(TENANT)
        .fetch_all(pool);
    let tags = bind_spans(
        sqlx::query(
            "SELECT t.key AS tag_id, COALESCE(g.name, '') AS name, t.n FROM \
             (SELECT key, CAST(SUM(calls) AS BIGINT) AS n FROM \
             (SELECT day AS at, key, calls FROM call_rollup_days WHERE tenant_id = ? \
             AND task_id IN (?) AND day >= ? AND day < ? AND dim = 'tag' \
             UNION ALL SELECT hour AS at, key, calls FROM call_rollups WHERE tenant_id = ? \
             AND task_id IN (?) AND hour >= ? AND hour < ? AND dim = 'tag' \
             UNION ALL SELECT hour AS at, key, calls FROM call_rollups WHERE tenant_id = ? \
             AND task_id IN (?) AND hour >= ? AND hour < ? AND dim = 'tag') r \
             GROUP BY key HAVING SUM(calls) <> 0 ORDER BY n DESC, key LIMIT ?) t \
             LEFT JOIN tags g ON g.tenant_id = ? AND g.tag_id = t.key ORDER BY t.n DESC, t.key",
        ),
        spans,
    )
    .bind(20_i64)
    .bind(TENANT)
    .fetch_all(pool);
    let (sums, _) = tokio::try_join!(sums, tags)?;
    let (mut total, mut answered, mut bins) = (0, 0, Vec::new());
    for row in &sums {
        let dim: String = row.try_get("dim")?;
        if dim == "all" {
            total = row.try_get("calls")?;
            answered = row.try_get("answered")?;
        } else if dim == "talk" {
            let key: String = row.try_get("key")?;
            bins.push((key.parse::<i64>()?, row.try_get::<i64, _>("calls")?));
        }
    }
    bins.sort_unstable();
    let percentile = |p: u32| {
        let offset = nearest_rank_offset(p, answered).unwrap_or(0);
        let (bin, within) = locate_in_histogram(&bins, offset).unwrap_or((0, 0));
        sqlx::query_scalar::<_, i64>(
            "SELECT c.talk_ms FROM calls c WHERE c.tenant_id = ? AND c.task_id IN (?) \
             AND c.call_time >= ? AND c.call_time < ? AND c.outcome = 1 \
             AND c.talk_ms >= ? AND c.talk_ms < ? ORDER BY c.talk_ms LIMIT 1 OFFSET ?",
        )
        .bind(TENANT)
        .bind(TASK)
        .bind(start)
        .bind(end)
        .bind(bin * 10_000)
        .bind((bin + 1) * 10_000)
        .bind(within)
        .fetch_optional(pool)
    };
    tokio::try_join!(percentile(50), percentile(90))?;
    Ok(total)
}

/// The statement GetCallTimeSeries runs from the rollups (days in
/// Asia/Shanghai: whole hours from a whole hour; its days straddle two UTC
/// days, so the hour rollups alone).
async fn direct_rollup_series(pool: &SqlitePool) -> anyhow::Result<()> {
    let origin = START_MS;
    sqlx::query(
        "SELECT (at - ?) / ? AS slot, CAST(SUM(calls) AS BIGINT) AS total, \
         CAST(SUM(answered) AS BIGINT) AS answered, CAST(SUM(talk_sum) AS BIGINT) AS talk_total, \
         CAST(SUM(score_sum) AS BIGINT) AS score_sum, CAST(SUM(score_count) AS BIGINT) AS score_count \
         FROM (SELECT hour AS at, calls, answered, talk_sum, score_sum, score_count \
         FROM call_rollups WHERE tenant_id = ? AND task_id IN (?) AND hour >= ? AND hour < ? \
         AND dim = 'all') r GROUP BY slot HAVING SUM(calls) <> 0 ORDER BY slot",
    )
    .bind(origin)
    .bind(DAY_MS)
    .bind(TENANT)
    .bind(TASK)
    .bind(origin)
    .bind(origin + DAYS * DAY_MS)
    .fetch_all(pool)
    .await?;
    Ok(())
}

/// The scan GetCallStats ran before the rollups, for the task alone (all of
/// its calls fall in the 30 days; the task-only form is the cheaper scan),
/// written out by hand and run the same way (independent scans at once, then
/// the two percentiles).
async fn direct_scan_stats(pool: &SqlitePool) -> anyhow::Result<i64> {
    let scan = async {
        let rows = sqlx::query(
            "WITH g AS MATERIALIZED (SELECT c.carrier, c.province, c.intent_level_id, c.outcome, \
             c.hangup_by, COUNT(*) AS n, SUM(CASE WHEN c.outcome = 1 THEN c.talk_ms ELSE 0 END) AS talk_sum, \
             SUM(c.ring_ms) AS ring_sum, SUM(c.rounds) AS rounds_sum, \
             COALESCE(SUM(c.score), 0) AS score_sum, COUNT(c.score) AS score_count FROM calls c \
             WHERE c.tenant_id = ? AND c.task_id IN (?) \
             GROUP BY c.carrier, c.province, c.intent_level_id, c.outcome, c.hangup_by) \
             SELECT 'all' AS dim, '' AS key, '' AS name, COALESCE(SUM(n), 0) AS n, \
             COALESCE(SUM(CASE WHEN outcome = 1 THEN n ELSE 0 END), 0) AS answered, \
             COALESCE(SUM(talk_sum), 0), COALESCE(SUM(ring_sum), 0), COALESCE(SUM(rounds_sum), 0), \
             COALESCE(SUM(score_sum), 0), COALESCE(SUM(score_count), 0) FROM g \
             UNION ALL SELECT 'outcome', CAST(outcome AS TEXT), '', SUM(n), 0, 0, 0, 0, 0, 0 FROM g GROUP BY CAST(outcome AS TEXT) \
             UNION ALL SELECT 'party', CAST(hangup_by AS TEXT), '', SUM(n), 0, 0, 0, 0, 0, 0 FROM g GROUP BY CAST(hangup_by AS TEXT) \
             UNION ALL SELECT 'carrier', carrier, '', SUM(n), 0, 0, 0, 0, 0, 0 FROM g GROUP BY carrier \
             UNION ALL SELECT 'province', province, '', SUM(n), 0, 0, 0, 0, 0, 0 FROM g GROUP BY province \
             UNION ALL SELECT 'level', COALESCE(g.intent_level_id, ''), COALESCE(il.name, ''), SUM(g.n), \
             0, 0, 0, 0, 0, 0 FROM g LEFT JOIN intent_levels il ON il.tenant_id = ? \
             AND il.intent_level_id = g.intent_level_id GROUP BY g.intent_level_id",
        )
        .bind(TENANT)
        .bind(TASK)
        .bind(TENANT)
        .fetch_all(pool)
        .await?;
        let first = rows.first().ok_or(sqlx::Error::RowNotFound)?;
        Ok::<_, sqlx::Error>((
            first.try_get::<i64, _>("n")?,
            first.try_get::<i64, _>("answered")?,
        ))
    };
    let tags = sqlx::query(
        "SELECT t.tag_id, COALESCE(g.name, '') AS name, t.n FROM \
         (SELECT ct.tag_id, COUNT(*) AS n FROM calls c JOIN call_tags ct \
         ON ct.tenant_id = c.tenant_id AND ct.call_id = c.call_id \
         WHERE c.tenant_id = ? AND c.task_id IN (?) GROUP BY ct.tag_id ORDER BY n DESC, ct.tag_id LIMIT 20) t \
         LEFT JOIN tags g ON g.tenant_id = ? AND g.tag_id = t.tag_id ORDER BY t.n DESC, t.tag_id",
    )
    .bind(TENANT)
    .bind(TASK)
    .bind(TENANT)
    .fetch_all(pool);
    let costs = sqlx::query(
        "SELECT currency, SUM(n * sgn * CAST(ip AS INTEGER)), \
         SUM(n * sgn * CAST(substr(fp || '000000000', 1, 9) AS INTEGER)), \
         SUM(n * sgn * CAST(substr(fp || '000000000000000000', 10, 9) AS INTEGER)), MAX(length(fp)) FROM \
         (SELECT currency, n, sgn, \
         CASE WHEN instr(body, '.') > 0 THEN substr(body, 1, instr(body, '.') - 1) ELSE body END AS ip, \
         CASE WHEN instr(body, '.') > 0 THEN substr(body, instr(body, '.') + 1) ELSE '' END AS fp FROM \
         (SELECT currency, n, CASE WHEN substr(cost, 1, 1) = '-' THEN -1 ELSE 1 END AS sgn, \
         ltrim(cost, '-') AS body FROM \
         (SELECT c.currency AS currency, c.cost AS cost, COUNT(*) AS n FROM calls c \
         WHERE c.tenant_id = ? AND c.task_id IN (?) AND c.cost <> '' \
         GROUP BY c.carrier, c.province, c.intent_level_id, c.outcome, c.hangup_by, c.currency, c.cost))) \
         GROUP BY currency ORDER BY currency",
    )
    .bind(TENANT)
    .bind(TASK)
    .fetch_all(pool);
    let ((total, answered), _, _) = tokio::try_join!(scan, tags, costs)?;
    let percentile = |p: u32| {
        let offset = nearest_rank_offset(p, answered).unwrap_or(0);
        sqlx::query_scalar::<_, i64>(
            "SELECT c.talk_ms FROM calls c WHERE c.tenant_id = ? AND c.task_id IN (?) AND c.outcome = 1 \
             ORDER BY c.talk_ms LIMIT 1 OFFSET ?",
        )
        .bind(TENANT)
        .bind(TASK)
        .bind(offset)
        .fetch_optional(pool)
    };
    tokio::try_join!(percentile(50), percentile(90))?;
    Ok(total)
}

/// The scan GetCallTimeSeries ran before the rollups (days in Asia/Shanghai,
/// no DST: one slot per day).
async fn direct_scan_series(pool: &SqlitePool) -> anyhow::Result<()> {
    let origin = START_MS;
    sqlx::query(
        "SELECT (c.call_time - ?) / ? AS slot, COUNT(*), COALESCE(SUM(c.outcome = 1), 0), \
         COALESCE(SUM(CASE WHEN c.outcome = 1 THEN c.talk_ms ELSE 0 END), 0), \
         COALESCE(SUM(c.score), 0), COUNT(c.score) FROM calls c \
         WHERE c.tenant_id = ? AND c.task_id IN (?) AND c.call_time >= ? AND c.call_time < ? \
         AND c.call_time >= ? GROUP BY slot ORDER BY slot",
    )
    .bind(origin)
    .bind(DAY_MS)
    .bind(TENANT)
    .bind(TASK)
    .bind(origin)
    .bind(origin + DAYS * DAY_MS)
    .bind(origin)
    .fetch_all(pool)
    .await?;
    Ok(())
}
