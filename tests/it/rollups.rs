//! The statistics rollups against the scan of the calls they summarise:
//! random calls are written, rewritten (moved across hours and tasks, their
//! outcome, talk time, cost and tags changed), deleted and erased, then
//! GetCallStats and GetCallTimeSeries of random filters the rollups answer
//! (tasks and a whole-hour `call_time` window, open or up to 60 hours long,
//! so whole UTC days come from the day rollups and the edges from the hour
//! rollups; one task-hour crowded past the PostgreSQL fold's 256 keys, which
//! crowds its day too) must equal the answers to the
//! same filter made to take the scan (`min_talk_ms: 0` selects the same
//! calls, since talk time is never negative, but the rollups do not answer
//! it). Seeded, so a failure repeats.

use callscope::proto::{
    self, CallFilter, CallOutcome, DeleteCallsRequest, ErasePhoneRequest, GetCallStatsRequest,
    GetCallTimeSeriesRequest, Granularity, Party, Timestamp, UpsertCallsRequest,
    admin_service_client::AdminServiceClient,
};

use libtest_mimic::Trial;

use crate::helpers::{Sharing, TestApp, backend_trials, block_on, spawn_app_with, trial};

const BASE: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const HOUR: i64 = 3_600_000;
const HOURS: u64 = 72;
const TASKS: [&str; 4] = ["t1", "t2", "t3", ""];

/// xorshift64*: small, seeded, enough to spread cases.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A random call of external id `ext`.
fn random_call(rng: &mut Rng, ext: usize) -> proto::Call {
    let outcome = *rng.pick(&[
        CallOutcome::Answered,
        CallOutcome::Answered,
        CallOutcome::NoAnswer,
        CallOutcome::Busy,
        CallOutcome::Rejected,
    ]);
    let answered = outcome == CallOutcome::Answered;
    // Ties and 10-second bin edges on purpose: whole seconds, and a few exact
    // multiples of 10 s.
    let talk_ms = match (answered, rng.below(4)) {
        (false, _) => 0,
        (true, 0) => 10_000 * rng.below(6) as i64,
        (true, _) => 1_000 * rng.below(95) as i64,
    };
    let tags = [("g1", "甲"), ("g2", "乙"), ("g3", "丙"), ("g4", "丁")]
        .into_iter()
        .filter(|_| rng.below(3) == 0)
        .map(|(id, name)| proto::Tag {
            id: id.into(),
            name: name.into(),
            ..Default::default()
        })
        .collect();
    proto::Call {
        source: proto::Source::Api.into(),
        external_id: format!("r{ext}"),
        task_id: (*rng.pick(&TASKS)).into(),
        callee: format!("+8613800{:06}", rng.below(40)),
        call_time: Some(ts(BASE - 2 * HOUR + (rng.below(HOURS * 60) * 60_000) as i64)),
        outcome: outcome.into(),
        talk_ms,
        ring_ms: rng.below(30_000) as i64,
        rounds: rng.below(12) as i32,
        score: (rng.below(3) > 0).then(|| rng.below(100) as i32),
        intent_level: (rng.below(4) > 0).then(|| {
            let (id, name) = *rng.pick(&[("A", "有意向"), ("B", "一般"), ("C", "无意向")]);
            proto::IntentLevel {
                id: id.into(),
                name: name.into(),
                ..Default::default()
            }
        }),
        tags,
        hangup_by: (*rng.pick(&[Party::Unspecified, Party::Robot, Party::Customer])).into(),
        location: Some(proto::Location {
            province: (*rng.pick(&["", "广东", "浙江"])).into(),
            carrier: (*rng.pick(&["", "移动", "联通"])).into(),
            ..Default::default()
        }),
        billing: (rng.below(3) > 0).then(|| proto::Billing {
            cost: (*rng.pick(&["0.1", "0.25", "1.125", "3"])).into(),
            currency: (*rng.pick(&["CNY", "USD", ""])).into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A random filter the rollups answer.
fn random_filter(rng: &mut Rng) -> CallFilter {
    let task_ids = TASKS
        .iter()
        .filter(|t| !t.is_empty() && rng.below(3) == 0)
        .map(|t| (*t).to_owned())
        .collect();
    let hour = |rng: &mut Rng| BASE + (rng.below(HOURS + 6) as i64 - 4) * HOUR;
    let (start, end) = match rng.below(4) {
        0 => (None, None),
        1 => (Some(hour(rng)), None),
        2 => (None, Some(hour(rng))),
        _ => {
            let a = hour(rng);
            (Some(a), Some(a + (1 + rng.below(60) as i64) * HOUR))
        }
    };
    CallFilter {
        task_ids,
        start_time: start.map(ts),
        end_time: end.map(ts),
        ..Default::default()
    }
}

/// The same calls, through the scan.
fn scanned(filter: &CallFilter) -> CallFilter {
    CallFilter {
        min_talk_ms: Some(0),
        ..filter.clone()
    }
}

async fn rollups_answer_as_the_scan_does(app: TestApp) {
    let mut rng = Rng(0x005E_ED0F_2011);
    let mut ingest = app.ingest.clone();
    let mut admin = AdminServiceClient::new(app.channel.clone());
    let mut calls: Vec<proto::Call> = (0..400).map(|i| random_call(&mut rng, i)).collect();
    for batch in calls.chunks(50) {
        ingest
            .upsert_calls(UpsertCallsRequest {
                calls: batch.to_vec(),
            })
            .await
            .expect("upsert calls");
    }
    // A crowded task-hour: 600 calls of t1 in two hours with 300 provinces,
    // in batches of 100, so an hour's keys outnumber the fold's 256 and
    // PostgreSQL folds them repeatedly.
    for first in (0..600).step_by(100) {
        let batch: Vec<proto::Call> = (first..first + 100)
            .map(|i| {
                let mut call = random_call(&mut rng, 1_000 + i);
                call.task_id = "t1".into();
                call.call_time = Some(ts(BASE + 30 * HOUR + (rng.below(120) * 60_000) as i64));
                if let Some(location) = call.location.as_mut() {
                    location.province = format!("p{}", rng.below(300));
                }
                call
            })
            .collect();
        calls.extend(batch.iter().cloned());
        ingest
            .upsert_calls(UpsertCallsRequest { calls: batch })
            .await
            .expect("upsert crowded calls");
    }
    // Rewrites: a later view of 150 calls, each one with a new random body
    // (its task, hour, outcome, talk time, cost and tags all may change).
    for round in 0..3 {
        let mut batch = Vec::new();
        for _ in 0..50 {
            let i = rng.below(400) as usize;
            let mut call = random_call(&mut rng, i);
            call.update_time = Some(ts(BASE + 1_000_000_000 + round));
            calls[i] = call.clone();
            batch.push(call);
        }
        ingest
            .upsert_calls(UpsertCallsRequest { calls: batch })
            .await
            .expect("rewrite calls");
    }
    let deleted = admin
        .delete_calls(DeleteCallsRequest {
            filter: Some(CallFilter {
                task_ids: vec!["t3".into()],
                start_time: Some(ts(BASE + 10 * HOUR + 1_234)),
                end_time: Some(ts(BASE + 40 * HOUR)),
                ..Default::default()
            }),
            validate_only: false,
        })
        .await
        .expect("delete calls")
        .into_inner()
        .deleted_calls;
    assert!(deleted > 0, "the deletion removes calls");
    admin
        .erase_phone(ErasePhoneRequest {
            phone: "+8613800000007".into(),
            validate_only: false,
        })
        .await
        .expect("erase phone");

    let crowded = CallFilter {
        task_ids: vec!["t1".into()],
        start_time: Some(ts(BASE + 30 * HOUR)),
        end_time: Some(ts(BASE + 32 * HOUR)),
        ..Default::default()
    };
    assert_rollups_answer_as_the_scan(&app, &mut rng, Some(crowded), 40).await;
}

/// GetCallStats and GetCallTimeSeries of `cases` filters the rollups answer
/// (`first`, then random ones) equal the answers of the scan.
async fn assert_rollups_answer_as_the_scan(
    app: &TestApp,
    rng: &mut Rng,
    first: Option<CallFilter>,
    cases: usize,
) {
    let mut analytics = app.analytics.clone();
    for case in 0..cases {
        let filter = match (case, &first) {
            (0, Some(first)) => first.clone(),
            _ => random_filter(rng),
        };
        let top_tags = rng.below(4) as i32;
        let stats = |filter: CallFilter| GetCallStatsRequest {
            filter: Some(filter),
            top_tags,
        };
        let from_rollups = analytics
            .get_call_stats(stats(filter.clone()))
            .await
            .expect("stats")
            .into_inner();
        let from_scan = analytics
            .get_call_stats(stats(scanned(&filter)))
            .await
            .expect("scanned stats")
            .into_inner();
        assert_eq!(from_rollups, from_scan, "case {case}: stats of {filter:?}");

        if filter.start_time.is_some() && filter.end_time.is_some() {
            let zone = *rng.pick(&["UTC", "Asia/Shanghai", "Asia/Kolkata", "America/New_York"]);
            let granularity = *rng.pick(&[Granularity::Hour, Granularity::Day]);
            let series = |filter: CallFilter| GetCallTimeSeriesRequest {
                filter: Some(filter),
                granularity: granularity.into(),
                time_zone: zone.into(),
            };
            let from_rollups = analytics
                .get_call_time_series(series(filter.clone()))
                .await
                .expect("series")
                .into_inner();
            let from_scan = analytics
                .get_call_time_series(series(scanned(&filter)))
                .await
                .expect("scanned series")
                .into_inner();
            assert_eq!(
                from_rollups, from_scan,
                "case {case}: {granularity:?} series in {zone} of {filter:?}"
            );
        }
    }
}

pub fn trials() -> Vec<Trial> {
    let mut trials = backend_trials(
        "rollups",
        "rollups_answer_as_the_scan_does",
        &[],
        rollups_answer_as_the_scan_does,
    );
    trials.push(trial(
        "rollups::sqlite::an_upgrade_keeps_the_rollups_of_stored_calls".to_owned(),
        &[],
        Sharing::Parallel,
        || block_on(None, an_upgrade_keeps_the_rollups_of_stored_calls()),
    ));
    trials
}

/// SQLite migration 0024 rebuilds the rollup tables with their keys in
/// another order. Calls stored before it (random calls written through a
/// server, their rows copied into a database migrated up to 0023, whose
/// triggers build that database's rollups) are answered from the rebuilt
/// rollups as the scan answers them, and as a database that never had the
/// old tables answers them; calls written after it are too (the triggers
/// of 0019 write to the rebuilt tables by name).
async fn an_upgrade_keeps_the_rollups_of_stored_calls() {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

    let mut rng = Rng(0x0024_0024_0024);
    let mut fresh = spawn_app_with(|_| {}).await;
    let calls: Vec<proto::Call> = (0..300).map(|i| random_call(&mut rng, i)).collect();
    for batch in calls.chunks(100) {
        fresh.upsert(batch.to_vec()).await;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("upgraded.db").display());
    let options = SqliteConnectOptions::from_str(&url)
        .expect("SQLite URL")
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options)
        .await
        .expect("open the database to upgrade");
    sqlx::migrate!("./migrations/sqlite")
        .run_to(23, &pool)
        .await
        .expect("migrations up to 0023");
    let fresh_path = fresh
        .database_url
        .strip_prefix("sqlite://")
        .expect("a SQLite URL")
        .to_owned();
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::query("ATTACH DATABASE ? AS fresh")
        .bind(fresh_path)
        .execute(&mut *conn)
        .await
        .expect("attach");
    for table in ["intent_levels", "tags", "calls", "call_tags"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO main.{table} SELECT * FROM fresh.{table}"
        )))
        .execute(&mut *conn)
        .await
        .expect("copy rows");
    }
    let rollups: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_rollups")
        .fetch_one(&mut *conn)
        .await
        .expect("count rollups");
    assert!(rollups > 0, "the triggers of 0019 built the rollups");
    drop(conn);
    pool.close().await;

    let mut upgraded = spawn_app_with(|config| config.database_url = url.clone()).await;
    let pool = SqlitePool::connect(&url)
        .await
        .expect("open the upgraded database");
    for (table, key) in [
        (
            "call_rollups",
            "(tenant_id, task_id, dim, hour, key, detail)",
        ),
        (
            "call_rollup_days",
            "(tenant_id, task_id, dim, day, key, detail)",
        ),
    ] {
        let schema: String =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_one(&pool)
                .await
                .expect("the table's schema");
        assert!(
            schema.contains(&format!("PRIMARY KEY {key}")),
            "{table} is keyed by dimension first: {schema}"
        );
    }
    pool.close().await;
    for case in 0..40 {
        let filter = random_filter(&mut rng);
        let stats = GetCallStatsRequest {
            filter: Some(filter.clone()),
            top_tags: 3,
        };
        let (before, after) = (
            fresh.analytics.get_call_stats(stats.clone()).await,
            upgraded.analytics.get_call_stats(stats).await,
        );
        assert_eq!(
            after.expect("stats after the upgrade").into_inner(),
            before.expect("stats").into_inner(),
            "case {case}: stats of {filter:?}"
        );
    }
    assert_rollups_answer_as_the_scan(&upgraded, &mut rng, None, 20).await;

    // Rewrites and new calls, written after the upgrade.
    let mut later = Vec::new();
    for i in 0..100 {
        let ext = if i % 2 == 0 {
            rng.below(300) as usize
        } else {
            300 + i
        };
        let mut call = random_call(&mut rng, ext);
        call.update_time = Some(ts(BASE + 2_000_000_000));
        later.push(call);
    }
    upgraded.upsert(later).await;
    assert_rollups_answer_as_the_scan(&upgraded, &mut rng, None, 20).await;
}
