//! Campaign analytics through the running server: every figure of
//! GetCallStats and GetCallTimeSeries against answers computed here from the
//! fixture list, the dialing list of a task, and bad input.

use std::collections::BTreeMap;

use callscope::proto::Timestamp;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use callscope::proto::{
    self, CallFilter, CallOutcome, CallStats, CountEntry, GetCallStatsRequest,
    GetCallTimeSeriesRequest, Granularity, ListTaskNumbersRequest, MoneyTotal, NumberStatus, Party,
    TaskNumber, TaskNumberInput, UpsertCallsRequest, UpsertTaskNumbersRequest,
    analytics_service_client::AnalyticsServiceClient, call_service_client::CallServiceClient,
    ingest_service_client::IngestServiceClient,
};

use crate::helpers::TestApp;

// ---------------------------------------------------------------- harness

/// The analytics tests' view of the shared harness.
trait AnalyticsApp {
    fn analytics(&self) -> AnalyticsServiceClient<Channel>;
    fn calls(&self) -> CallServiceClient<Channel>;
    fn ingest(&self) -> IngestServiceClient<Channel>;
    async fn store(&self, specs: &[Spec]);
}

impl AnalyticsApp for TestApp {
    fn analytics(&self) -> AnalyticsServiceClient<Channel> {
        self.analytics.clone()
    }

    fn calls(&self) -> CallServiceClient<Channel> {
        self.calls.clone()
    }

    fn ingest(&self) -> IngestServiceClient<Channel> {
        self.ingest.clone()
    }

    async fn store(&self, specs: &[Spec]) {
        let calls = specs.iter().map(Spec::to_proto).collect();
        self.ingest()
            .upsert_calls(UpsertCallsRequest { calls })
            .await
            .expect("upsert calls");
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn ms(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .expect("time")
        .as_millisecond()
}

// ---------------------------------------------------------------- fixture

/// A fixture call, plain enough to compute expected figures from.
#[derive(Clone, Debug)]
struct Spec {
    ext: String,
    task: &'static str,
    callee: String,
    call_time: i64,
    outcome: CallOutcome,
    talk_ms: i64,
    ring_ms: i64,
    rounds: i32,
    score: Option<i32>,
    level: Option<(&'static str, &'static str)>,
    tags: Vec<(&'static str, &'static str)>,
    party: Party,
    province: &'static str,
    carrier: &'static str,
    cost: Option<(&'static str, &'static str)>,
}

impl Spec {
    fn new(
        ext: &str,
        task: &'static str,
        callee: &str,
        call_time: i64,
        outcome: CallOutcome,
    ) -> Spec {
        Spec {
            ext: ext.to_owned(),
            task,
            callee: callee.to_owned(),
            call_time,
            outcome,
            talk_ms: 0,
            ring_ms: 0,
            rounds: 0,
            score: None,
            level: None,
            tags: Vec::new(),
            party: Party::Unspecified,
            province: "",
            carrier: "",
            cost: None,
        }
    }

    fn to_proto(&self) -> proto::Call {
        proto::Call {
            source: proto::Source::Api.into(),
            external_id: self.ext.clone(),
            task_id: self.task.to_owned(),
            callee: self.callee.clone(),
            call_time: Some(ts(self.call_time)),
            outcome: self.outcome.into(),
            talk_ms: self.talk_ms,
            ring_ms: self.ring_ms,
            rounds: self.rounds,
            score: self.score,
            intent_level: self.level.map(|(id, name)| proto::IntentLevel {
                id: id.into(),
                name: name.into(),
                ..Default::default()
            }),
            tags: self
                .tags
                .iter()
                .map(|(id, name)| proto::Tag {
                    id: (*id).into(),
                    name: (*name).into(),
                    ..Default::default()
                })
                .collect(),
            hangup_by: self.party.into(),
            location: Some(proto::Location {
                province: self.province.into(),
                carrier: self.carrier.into(),
                ..Default::default()
            }),
            billing: self.cost.map(|(amount, currency)| proto::Billing {
                cost: amount.into(),
                currency: currency.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

const BASE: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// 30 varied calls in two tasks.
fn fixture() -> Vec<Spec> {
    use CallOutcome as O;
    let outcomes = [
        O::Answered,
        O::NoAnswer,
        O::Answered,
        O::Busy,
        O::Answered,
        O::Rejected,
        O::PoweredOff,
    ];
    let levels = [Some(("lv-a", "A 意向强")), Some(("lv-b", "B")), None];
    let tags = [("tag-a", "有意向"), ("tag-b", "拒绝"), ("tag-c", "再联系")];
    let provinces = ["广东", "江苏", "", "广东"];
    let carriers = ["移动", "联通", "电信", ""];
    let parties = [Party::Robot, Party::Customer, Party::Unspecified];
    let costs = ["0.0125", "0.025", "1.5", "0.0375"];
    (0..30)
        .map(|i: usize| {
            let outcome = outcomes[i % outcomes.len()];
            let answered = outcome == O::Answered;
            let mut s = Spec::new(
                &format!("c{i:02}"),
                if i.is_multiple_of(3) { "t2" } else { "t1" },
                &format!("1390000{:04}", if i == 29 { 9999 } else { i % 12 }),
                BASE + i as i64 * 3_600_000,
                outcome,
            );
            s.talk_ms = if answered {
                1_000 * ((i as i64 * 37) % 200 + 1)
            } else {
                0
            };
            s.ring_ms = 1_000 + (i as i64 * 713) % 9_000;
            s.rounds = if answered { (i % 7) as i32 } else { 0 };
            s.score = (!i.is_multiple_of(4)).then_some(((i * 13) % 100) as i32);
            s.level = levels[i % levels.len()];
            s.tags = match i % 4 {
                0 => vec![],
                1 => vec![tags[0]],
                2 => vec![tags[0], tags[1]],
                _ => vec![tags[2]],
            };
            s.party = parties[i % parties.len()];
            s.province = provinces[i % provinces.len()];
            s.carrier = carriers[(i / 2) % carriers.len()];
            s.cost = answered.then_some((
                costs[i % costs.len()],
                if i.is_multiple_of(5) { "USD" } else { "CNY" },
            ));
            s
        })
        .collect()
}

// ------------------------------------------------------ expected figures

fn breakdown(counts: BTreeMap<String, (String, i64)>) -> Vec<CountEntry> {
    let mut list: Vec<CountEntry> = counts
        .into_iter()
        .map(|(key, (name, count))| CountEntry { key, name, count })
        .collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    list
}

fn bump(map: &mut BTreeMap<String, (String, i64)>, key: &str, name: &str) {
    map.entry(key.to_owned())
        .or_insert_with(|| (name.to_owned(), 0))
        .1 += 1;
}

/// The ⌈p·n⌉-th smallest.
fn nearest_rank(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

/// Sums decimals of at most 4 fraction digits in integer ten-thousandths.
fn money(amounts: &[&str]) -> String {
    let units: i64 = amounts
        .iter()
        .map(|a| {
            let (int, frac) = a.split_once('.').unwrap_or((a, ""));
            int.parse::<i64>().unwrap() * 10_000 + format!("{frac:0<4}").parse::<i64>().unwrap()
        })
        .sum();
    let text = format!("{}.{:04}", units / 10_000, units % 10_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn label(key: &str, prefix: &str) -> String {
    key.strip_prefix(prefix)
        .unwrap()
        .to_ascii_lowercase()
        .replace('_', " ")
}

fn expected_stats(specs: &[Spec], keep: impl Fn(&Spec) -> bool) -> CallStats {
    let calls: Vec<&Spec> = specs.iter().filter(|s| keep(s)).collect();
    let total = calls.len() as i64;
    let answered: Vec<&&Spec> = calls
        .iter()
        .filter(|s| s.outcome == CallOutcome::Answered)
        .collect();
    let mut talks: Vec<i64> = answered.iter().map(|s| s.talk_ms).collect();
    talks.sort();
    let talk_total: i64 = talks.iter().sum();
    let scores: Vec<i64> = calls
        .iter()
        .filter_map(|s| s.score.map(i64::from))
        .collect();

    let (mut outcome, mut level, mut tag, mut party, mut carrier, mut province) =
        Default::default();
    let mut costs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in &calls {
        let o = s.outcome.as_str_name();
        bump(&mut outcome, o, &label(o, "CALL_OUTCOME_"));
        match s.level {
            Some((id, name)) => bump(&mut level, id, name),
            None => bump(&mut level, "", "none"),
        }
        for (id, name) in &s.tags {
            bump(&mut tag, id, name);
        }
        let p = s.party.as_str_name();
        bump(&mut party, p, &label(p, "PARTY_"));
        let c = if s.carrier.is_empty() {
            "unknown"
        } else {
            s.carrier
        };
        bump(&mut carrier, c, c);
        let p = if s.province.is_empty() {
            "unknown"
        } else {
            s.province
        };
        bump(&mut province, p, p);
        if let Some((amount, currency)) = s.cost {
            costs.entry(currency).or_default().push(amount);
        }
    }
    CallStats {
        total_calls: total,
        answered_calls: answered.len() as i64,
        answer_rate: if total == 0 {
            0.0
        } else {
            answered.len() as f64 / total as f64
        },
        talk_ms_total: talk_total,
        talk_ms_avg: if talks.is_empty() {
            0
        } else {
            talk_total / talks.len() as i64
        },
        talk_ms_p50: nearest_rank(&talks, 0.5),
        talk_ms_p90: nearest_rank(&talks, 0.9),
        ring_ms_avg: if total == 0 {
            0
        } else {
            calls.iter().map(|s| s.ring_ms).sum::<i64>() / total
        },
        rounds_avg: if total == 0 {
            0.0
        } else {
            calls.iter().map(|s| i64::from(s.rounds)).sum::<i64>() as f64 / total as f64
        },
        score_avg: if scores.is_empty() {
            0.0
        } else {
            scores.iter().sum::<i64>() as f64 / scores.len() as f64
        },
        by_outcome: breakdown(outcome),
        by_intent_level: breakdown(level),
        by_tag: breakdown(tag),
        by_hangup_party: breakdown(party),
        by_carrier: breakdown(carrier),
        by_province: breakdown(province),
        cost_totals: costs
            .into_iter()
            .map(|(currency, amounts)| MoneyTotal {
                currency: currency.to_owned(),
                amount: money(&amounts),
            })
            .collect(),
    }
}

fn assert_stats(actual: &CallStats, expected: &CallStats, what: &str) {
    // Rates and averages are computed the same way (one division), so even
    // the floats must match to the last bit; compare with a hair of slack.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(
        close(actual.answer_rate, expected.answer_rate),
        "{what}: answer_rate {actual:?}"
    );
    assert!(
        close(actual.rounds_avg, expected.rounds_avg),
        "{what}: rounds_avg {actual:?}"
    );
    assert!(
        close(actual.score_avg, expected.score_avg),
        "{what}: score_avg {actual:?}"
    );
    let strip = |s: &CallStats| CallStats {
        answer_rate: 0.0,
        rounds_avg: 0.0,
        score_avg: 0.0,
        ..s.clone()
    };
    assert_eq!(strip(actual), strip(expected), "{what}");
}

// ---------------------------------------------------------------- tests

/// Which fixture calls a filter should match.
type Keep = Box<dyn Fn(&Spec) -> bool>;

async fn stats_match_the_fixture_for_every_filter(app: TestApp) {
    let specs = fixture();
    app.store(&specs).await;
    let mut client = app.analytics();
    let ask = |filter: CallFilter| GetCallStatsRequest {
        filter: Some(filter),
        top_tags: 0,
    };

    let cases: Vec<(&str, CallFilter, Keep)> = vec![
        ("no filter", CallFilter::default(), Box::new(|_| true)),
        (
            "task t1",
            CallFilter {
                task_ids: vec!["t1".into()],
                ..Default::default()
            },
            Box::new(|s| s.task == "t1"),
        ),
        (
            "answered on 移动 or 联通",
            CallFilter {
                outcomes: vec![CallOutcome::Answered.into()],
                carriers: vec!["移动".into(), "联通".into()],
                ..Default::default()
            },
            Box::new(|s| {
                s.outcome == CallOutcome::Answered && (s.carrier == "移动" || s.carrier == "联通")
            }),
        ),
        (
            "window",
            CallFilter {
                start_time: Some(ts(BASE + 5 * 3_600_000)),
                end_time: Some(ts(BASE + 17 * 3_600_000)),
                ..Default::default()
            },
            Box::new(|s| {
                s.call_time >= BASE + 5 * 3_600_000 && s.call_time < BASE + 17 * 3_600_000
            }),
        ),
        (
            "tag-a in t2",
            CallFilter {
                task_ids: vec!["t2".into()],
                tag_ids: vec!["tag-a".into()],
                ..Default::default()
            },
            Box::new(|s| s.task == "t2" && s.tags.iter().any(|(id, _)| *id == "tag-a")),
        ),
        (
            "one call",
            CallFilter {
                phone: "139 0000 9999".into(),
                ..Default::default()
            },
            Box::new(|s| s.callee == "13900009999"),
        ),
        (
            "nothing",
            CallFilter {
                task_ids: vec!["no-such-task".into()],
                ..Default::default()
            },
            Box::new(|_| false),
        ),
    ];
    for (what, filter, keep) in cases {
        let actual = client
            .get_call_stats(ask(filter))
            .await
            .expect(what)
            .into_inner();
        let expected = expected_stats(&specs, keep);
        assert_stats(&actual, &expected, what);
        match what {
            "one call" => assert_eq!(actual.total_calls, 1),
            "nothing" => assert_eq!(actual, CallStats::default()),
            _ => assert!(actual.total_calls > 1, "{what}"),
        }
    }

    // A re-sent call that moved to another task with other tags: the task
    // tag counts (kept by triggers) follow it.
    let mut specs = specs;
    specs[1].task = "t2";
    specs[1].tags = vec![("tag-c", "再联系"), ("tag-d", "新标签")];
    app.store(&specs[1..2]).await;
    for task in ["t1", "t2"] {
        let only_task = CallFilter {
            task_ids: vec![task.into()],
            ..Default::default()
        };
        let actual = client
            .get_call_stats(ask(only_task))
            .await
            .unwrap()
            .into_inner();
        assert_stats(&actual, &expected_stats(&specs, |s| s.task == task), task);
        // The same task through the general path (a window covering all).
        let with_window = CallFilter {
            task_ids: vec![task.into()],
            start_time: Some(ts(BASE)),
            ..Default::default()
        };
        let general = client
            .get_call_stats(ask(with_window))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(general, actual, "{task}");
    }

    // top_tags limits the list, most frequent first.
    let top1 = client
        .get_call_stats(GetCallStatsRequest {
            filter: None,
            top_tags: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let all = expected_stats(&specs, |_| true);
    assert_eq!(top1.by_tag, all.by_tag[..1].to_vec());
}

/// Time-series fixture: `(call time, outcome, talk_ms, score)` in one task.
async fn store_series(
    app: &TestApp,
    task: &'static str,
    calls: &[(i64, CallOutcome, i64, Option<i32>)],
) {
    let specs: Vec<Spec> = calls
        .iter()
        .enumerate()
        .map(|(i, (at, outcome, talk, score))| {
            let mut s = Spec::new(&format!("{task}-{i}"), task, "13700000001", *at, *outcome);
            s.talk_ms = *talk;
            s.score = *score;
            s
        })
        .collect();
    app.store(&specs).await;
}

fn series_request(
    task: &str,
    start: i64,
    end: i64,
    granularity: Granularity,
    zone: &str,
) -> GetCallTimeSeriesRequest {
    GetCallTimeSeriesRequest {
        filter: Some(CallFilter {
            task_ids: vec![task.into()],
            start_time: Some(ts(start)),
            end_time: Some(ts(end)),
            ..Default::default()
        }),
        granularity: granularity.into(),
        time_zone: zone.into(),
    }
}

async fn new_york_days_across_the_march_dst_change(app: TestApp) {
    use CallOutcome as O;
    store_series(
        &app,
        "ny",
        &[
            (ms("2026-03-07T12:00:00Z"), O::Answered, 10_000, Some(80)),
            (ms("2026-03-08T05:30:00Z"), O::Answered, 20_000, Some(60)),
            // 23:30 EDT on March 8: still March 8, which has only 23 hours.
            (ms("2026-03-09T03:30:00Z"), O::Busy, 0, None),
            // 00:30 EDT on March 9.
            (ms("2026-03-09T04:30:00Z"), O::Answered, 5_000, Some(10)),
            // Outside the window.
            (ms("2026-03-10T04:30:00Z"), O::Answered, 5_000, Some(10)),
        ],
    )
    .await;
    let buckets = app
        .analytics()
        .get_call_time_series(series_request(
            "ny",
            ms("2026-03-07T05:00:00Z"),
            ms("2026-03-10T04:00:00Z"),
            Granularity::Day,
            "America/New_York",
        ))
        .await
        .unwrap()
        .into_inner()
        .buckets;
    let starts: Vec<i64> = buckets
        .iter()
        .map(|b| b.start_time.as_ref().unwrap().seconds * 1000)
        .collect();
    assert_eq!(
        starts,
        vec![
            ms("2026-03-07T05:00:00Z"),
            ms("2026-03-08T05:00:00Z"),
            ms("2026-03-09T04:00:00Z")
        ]
    );
    // March 8 lasts 23 hours.
    assert_eq!(starts[2] - starts[1], 23 * 3_600_000);
    let totals: Vec<(i64, i64, i64, i64)> = buckets
        .iter()
        .map(|b| {
            (
                b.total_calls,
                b.answered_calls,
                b.talk_ms_total,
                b.talk_ms_avg,
            )
        })
        .collect();
    assert_eq!(
        totals,
        vec![
            (1, 1, 10_000, 10_000),
            (2, 1, 20_000, 20_000),
            (1, 1, 5_000, 5_000)
        ]
    );
    assert_eq!(buckets[1].answer_rate, 0.5);
    assert_eq!(buckets[1].score_avg, 60.0);
}

async fn shanghai_series_has_every_bucket_with_zeros(app: TestApp) {
    use CallOutcome as O;
    let day0 = ms("2025-12-31T16:00:00Z"); // 2026-01-01 00:00 in Shanghai
    let h = 3_600_000;
    store_series(
        &app,
        "sh",
        &[
            (day0 + h, O::Answered, 30_000, Some(90)),
            (day0 + 23 * h, O::NoAnswer, 0, Some(20)),
            (day0 + 3 * 24 * h + 2 * h, O::Answered, 12_000, None),
            (day0 + 3 * 24 * h + 3 * h, O::Answered, 13_000, Some(40)),
            (day0 + 3 * 24 * h + 4 * h, O::Rejected, 0, None),
        ],
    )
    .await;
    let mut client = app.analytics();
    // The default zone is Asia/Shanghai.
    let days = client
        .get_call_time_series(series_request(
            "sh",
            day0,
            day0 + 5 * 24 * h,
            Granularity::Day,
            "",
        ))
        .await
        .unwrap()
        .into_inner()
        .buckets;
    assert_eq!(days.len(), 5);
    for (i, b) in days.iter().enumerate() {
        assert_eq!(
            b.start_time.as_ref().unwrap().seconds * 1000,
            day0 + i as i64 * 24 * h
        );
    }
    let got: Vec<(i64, i64, i64, i64, f64, f64)> = days
        .iter()
        .map(|b| {
            (
                b.total_calls,
                b.answered_calls,
                b.talk_ms_total,
                b.talk_ms_avg,
                b.answer_rate,
                b.score_avg,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 1, 30_000, 30_000, 0.5, 55.0),
            (0, 0, 0, 0, 0.0, 0.0),
            (0, 0, 0, 0, 0.0, 0.0),
            (3, 2, 25_000, 12_500, 2.0 / 3.0, 40.0),
            (0, 0, 0, 0, 0.0, 0.0),
        ]
    );

    // Hours of the first day, asked in Shanghai's own name, start mid-hour.
    let hours = client
        .get_call_time_series(series_request(
            "sh",
            day0 + h / 2,
            day0 + 24 * h,
            Granularity::Hour,
            "Asia/Shanghai",
        ))
        .await
        .unwrap()
        .into_inner()
        .buckets;
    assert_eq!(hours.len(), 24);
    assert_eq!(hours[0].start_time.as_ref().unwrap().seconds * 1000, day0);
    let busy: Vec<usize> = (0..24).filter(|i| hours[*i].total_calls > 0).collect();
    assert_eq!(busy, vec![1, 23]);
}

async fn bad_fields(status: tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("bad request details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

async fn bad_input_names_the_field(app: TestApp) {
    let mut client = app.analytics();
    let day = 86_400_000;

    let unknown_zone = series_request("t", BASE, BASE + day, Granularity::Day, "Mars/Olympus_Mons");
    let err = client.get_call_time_series(unknown_zone).await.unwrap_err();
    assert_eq!(bad_fields(err).await, vec!["time_zone"]);

    let reversed = series_request("t", BASE + day, BASE, Granularity::Day, "UTC");
    let err = client.get_call_time_series(reversed).await.unwrap_err();
    assert_eq!(bad_fields(err).await, vec!["filter.end_time"]);

    let too_long = series_request("t", BASE, BASE + 2 * 366 * day, Granularity::Hour, "UTC");
    let err = client.get_call_time_series(too_long).await.unwrap_err();
    assert_eq!(bad_fields(err).await, vec!["filter.start_time"]);
    // The same window in days is fine.
    let days = series_request("t", BASE, BASE + 2 * 366 * day, Granularity::Day, "UTC");
    assert_eq!(
        client
            .get_call_time_series(days)
            .await
            .unwrap()
            .into_inner()
            .buckets
            .len(),
        732
    );

    let no_window = GetCallTimeSeriesRequest {
        filter: None,
        granularity: Granularity::Day.into(),
        time_zone: String::new(),
    };
    let err = client.get_call_time_series(no_window).await.unwrap_err();
    assert!(
        bad_fields(err)
            .await
            .contains(&"filter.start_time".to_owned())
    );

    let err = client
        .get_call_stats(GetCallStatsRequest {
            filter: None,
            top_tags: -1,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(err).await, vec!["top_tags"]);
}

// ------------------------------------------------------------ dialing list

fn phone(i: usize) -> String {
    format!("+86138000000{i:02}")
}

async fn list_all(app: &TestApp, mut req: ListTaskNumbersRequest) -> Vec<TaskNumber> {
    let mut out = Vec::new();
    loop {
        let page = app
            .calls()
            .list_task_numbers(req.clone())
            .await
            .unwrap()
            .into_inner();
        out.extend(page.numbers);
        if page.next_page_token.is_empty() {
            return out;
        }
        req.page_token = page.next_page_token;
    }
}

async fn dialing_list_statuses_attempts_and_history(app: TestApp) {
    let uploaded = app
        .ingest()
        .upsert_task_numbers(UpsertTaskNumbersRequest {
            task_id: "dial".into(),
            numbers: (0..10)
                .map(|i| TaskNumberInput {
                    phone: format!("138 0000 00{i:02}"),
                    name: format!("客户{i}"),
                    attributes: [("row".to_owned(), i.to_string())].into(),
                })
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((uploaded.inserted, uploaded.updated), (10, 0));

    use CallOutcome as O;
    let h = 3_600_000;
    // (number, outcome, hour, carrier)
    let calls = [
        (0, O::Answered, 1, "移动"),
        (1, O::NoAnswer, 2, ""),
        (1, O::Busy, 5, ""),
        (2, O::Busy, 3, ""),
        (2, O::Answered, 7, ""),
        (3, O::PoweredOff, 1, "联通"),
        (3, O::PoweredOff, 2, "联通"),
        (3, O::PoweredOff, 3, "联通"),
        (4, O::Voicemail, 4, ""),
        (5, O::Rejected, 6, ""),
        (5, O::LineFailure, 8, ""),
        // Never uploaded, but called in the task: listed too.
        (10, O::InvalidNumber, 9, ""),
    ];
    let mut specs: Vec<Spec> = calls
        .iter()
        .enumerate()
        .map(|(k, (i, outcome, hour, carrier))| {
            let mut s = Spec::new(
                &format!("d{k}"),
                "dial",
                &phone(*i),
                BASE + hour * h,
                *outcome,
            );
            s.carrier = carrier;
            s
        })
        .collect();
    // A call of number 0 in another task counts for that task only.
    specs.push(Spec::new(
        "other",
        "t-other",
        &phone(0),
        BASE + 20 * h,
        O::Busy,
    ));
    app.store(&specs).await;

    // (status code, attempts, last call hour)
    let expected: Vec<(i32, i32, Option<i64>)> = vec![
        (1, 1, Some(1)),
        (8, 2, Some(5)),
        (1, 2, Some(7)),
        (6, 3, Some(3)),
        (4, 1, Some(4)),
        (2, 2, Some(8)),
        (0, 0, None),
        (0, 0, None),
        (0, 0, None),
        (0, 0, None),
        (5, 1, Some(9)),
    ];
    let all = list_all(
        &app,
        ListTaskNumbersRequest {
            task_id: "dial".into(),
            include_call_history: true,
            page_size: 4,
            ..Default::default()
        },
    )
    .await;
    let phones: Vec<String> = all.iter().map(|n| n.phone.clone()).collect();
    assert_eq!(phones, (0..11).map(phone).collect::<Vec<_>>());
    for (i, (n, (code, attempts, hour))) in all.iter().zip(&expected).enumerate() {
        assert_eq!(n.status_code, *code, "number {i}");
        assert_eq!(n.status, code + 1, "number {i}");
        assert_eq!(n.attempts, *attempts, "number {i}");
        assert_eq!(
            n.last_call_time,
            hour.map(|hr| ts(BASE + hr * h)),
            "number {i}"
        );
        assert_eq!(
            n.name,
            if i < 10 {
                format!("客户{i}")
            } else {
                String::new()
            }
        );
        // History: this number's calls in the task, newest first.
        let mut mine: Vec<&Spec> = specs
            .iter()
            .filter(|s| s.task == "dial" && s.callee == phone(i))
            .collect();
        mine.sort_by_key(|s| std::cmp::Reverse(s.call_time));
        let history: Vec<&str> = n
            .call_history
            .iter()
            .map(|c| c.external_id.as_str())
            .collect();
        assert_eq!(
            history,
            mine.iter().map(|s| s.ext.as_str()).collect::<Vec<_>>(),
            "number {i}"
        );
    }
    assert_eq!(all[0].attributes.get("row").map(String::as_str), Some("0"));
    assert_eq!(all[3].location.as_ref().unwrap().carrier, "联通");

    // The status filter returns exactly the numbers with those statuses.
    let waiting_or_busy = list_all(
        &app,
        ListTaskNumbersRequest {
            task_id: "dial".into(),
            statuses: vec![NumberStatus::Waiting.into(), NumberStatus::Busy.into()],
            ..Default::default()
        },
    )
    .await;
    let got: Vec<String> = waiting_or_busy.iter().map(|n| n.phone.clone()).collect();
    assert_eq!(got, [1, 6, 7, 8, 9].map(phone).to_vec());
    assert!(waiting_or_busy.iter().all(|n| n.call_history.is_empty()));

    let answered = list_all(
        &app,
        ListTaskNumbersRequest {
            task_id: "dial".into(),
            statuses: vec![NumberStatus::Answered.into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        answered.iter().map(|n| n.phone.clone()).collect::<Vec<_>>(),
        [0, 2].map(phone).to_vec()
    );

    // Phone (any notation) and carrier filters.
    let one = list_all(
        &app,
        ListTaskNumbersRequest {
            task_id: "dial".into(),
            phone: "8613800000003".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].attempts, 3);
    let unicom = list_all(
        &app,
        ListTaskNumbersRequest {
            task_id: "dial".into(),
            carriers: vec!["联通".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        unicom.iter().map(|n| n.phone.clone()).collect::<Vec<_>>(),
        vec![phone(3)]
    );

    // Uploading again updates; a token from another filter is refused.
    let again = app
        .ingest()
        .upsert_task_numbers(UpsertTaskNumbersRequest {
            task_id: "dial".into(),
            numbers: vec![TaskNumberInput {
                phone: "13800000000".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.inserted, again.updated), (0, 1));
    let page = app
        .calls()
        .list_task_numbers(ListTaskNumbersRequest {
            task_id: "dial".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = app
        .calls()
        .list_task_numbers(ListTaskNumbersRequest {
            task_id: "dial".into(),
            page_size: 2,
            statuses: vec![NumberStatus::Waiting.into()],
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(err).await, vec!["page_token"]);

    let err = app
        .ingest()
        .upsert_task_numbers(UpsertTaskNumbersRequest {
            task_id: String::new(),
            numbers: vec![TaskNumberInput {
                phone: "no digits".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(err).await, vec!["task_id", "numbers[0].phone"]);
}

async fn costs_with_many_fraction_digits_add_up_exactly(app: TestApp) {
    let mut specs = Vec::new();
    for (i, cost) in ["0.000000000000000000015", "1.000000000000000000005", "-0.5"]
        .iter()
        .enumerate()
    {
        let mut s = Spec::new(
            &format!("fine-{i}"),
            "fine",
            "13700000002",
            BASE + i as i64,
            CallOutcome::Answered,
        );
        s.cost = Some((cost, "EUR"));
        specs.push(s);
    }
    // Costs within 18 digits take the chunked path; mixed with longer ones the
    // whole currency is summed from its distinct values.
    let mut short = Spec::new(
        "fine-3",
        "fine-short",
        "13700000003",
        BASE,
        CallOutcome::Answered,
    );
    short.cost = Some(("0.123456789123456789", "EUR"));
    specs.push(short);
    app.store(&specs).await;
    let mut client = app.analytics();
    for (task, amount) in [
        ("fine", "0.50000000000000000002"),
        ("fine-short", "0.123456789123456789"),
    ] {
        let stats = client
            .get_call_stats(GetCallStatsRequest {
                filter: Some(CallFilter {
                    task_ids: vec![task.into()],
                    ..Default::default()
                }),
                top_tags: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            stats.cost_totals,
            vec![MoneyTotal {
                currency: "EUR".into(),
                amount: amount.into(),
            }],
            "{task}"
        );
    }
}

crate::backend_tests!(
    costs_with_many_fraction_digits_add_up_exactly,
    stats_match_the_fixture_for_every_filter,
    new_york_days_across_the_march_dst_change,
    shanghai_series_has_every_bucket_with_zeros,
    bad_input_names_the_field,
    dialing_list_statuses_attempts_and_history
);
