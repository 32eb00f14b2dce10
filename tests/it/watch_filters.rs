//! The two filter engines agree: a watch (and so a webhook or an export's
//! live tail) judges each committed call in memory (`CallFilter::matches`),
//! a listing in SQL (`store::filter_sql`). For filters drawn at random over
//! every field a watch takes, WatchCalls delivers exactly the calls ListCalls
//! returns for the same filter, on both backends. The generator is seeded,
//! so a failure names a filter that reproduces.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Streaming;

use crate::helpers::{TestApp, call, tag, ts};
use callscope::proto::{
    self, CallEvent, CallEventType, CallFilter, CallOutcome, Party, ScoreRange, Source, TagMatch,
    TimeField, WatchCallsRequest,
};

const CALLS: usize = 80;
const FILTERS: usize = 48;
const SEED: u64 = 20_261_129;

const TASKS: [&str; 3] = ["t1", "t2", "t3"];
const TAGS: [(&str, &str); 4] = [("a", "ga"), ("b", "ga"), ("c", "gb"), ("d", "gc")];
const LEVELS: [Option<&str>; 4] = [Some("A"), Some("B"), Some("C"), None];
const OUTCOMES: [CallOutcome; 5] = [
    CallOutcome::Answered,
    CallOutcome::NoAnswer,
    CallOutcome::Busy,
    CallOutcome::Rejected,
    CallOutcome::PoweredOff,
];
/// Carriers as vendors write them; filters ask by code, Chinese or English.
const CARRIERS: [&str; 4] = ["移动", "联通", "China Telecom", ""];
const CARRIER_QUERIES: [&str; 6] = ["yd", "lt", "dx", "中国移动", "china unicom", "电信"];
const PROVINCES: [&str; 3] = ["广东", "浙江", ""];
const HANGUP: [Party; 3] = [Party::Customer, Party::Robot, Party::Unspecified];

/// Hours after 2026-11-01T00:00:00Z.
fn at(hours: i64) -> proto::Timestamp {
    let mut t = ts("2026-11-01T00:00:00Z");
    t.seconds += hours * 3600;
    t
}

fn pick<'a, T>(rng: &mut StdRng, from: &'a [T]) -> &'a T {
    &from[rng.random_range(0..from.len())]
}

/// A random subset (possibly empty) of `from`.
fn some<T: Clone>(rng: &mut StdRng, from: &[T]) -> Vec<T> {
    from.iter()
        .filter(|_| rng.random_bool(0.4))
        .cloned()
        .collect()
}

fn generated_call(rng: &mut StdRng, i: usize) -> proto::Call {
    let callee = format!("+861380000{:04}", rng.random_range(0..24));
    let hour = rng.random_range(0..72);
    let mut c = call(&format!("e{i:03}"), &callee, "2026-11-01T00:00:00Z");
    c.caller = format!("+861730000{:04}", rng.random_range(0..5));
    c.call_time = Some(at(hour));
    c.task_id = pick(rng, &TASKS).to_string();
    c.score = rng.random_bool(0.8).then(|| rng.random_range(0..300));
    c.tags = TAGS
        .iter()
        .filter(|_| rng.random_bool(0.35))
        .map(|(id, group)| tag(id, &[group]))
        .collect();
    c.intent_level = pick(rng, &LEVELS).map(|id| proto::IntentLevel {
        id: id.to_owned(),
        ..Default::default()
    });
    let outcome = *pick(rng, &OUTCOMES);
    c.outcome = outcome as i32;
    if outcome == CallOutcome::Answered {
        c.answer_time = Some(proto::Timestamp {
            seconds: at(hour).seconds + 10,
            nanos: 0,
        });
        c.talk_ms = rng.random_range(1..180) * 1000;
        c.rounds = rng.random_range(1..12);
    }
    if rng.random_bool(0.7) {
        c.hangup_time = Some(proto::Timestamp {
            seconds: at(hour).seconds + 200,
            nanos: 0,
        });
    }
    c.hangup_by = *pick(rng, &HANGUP) as i32;
    c.location = Some(proto::Location {
        carrier: pick(rng, &CARRIERS).to_string(),
        province: pick(rng, &PROVINCES).to_string(),
        ..Default::default()
    });
    if rng.random_bool(0.75) {
        c.attributes
            .insert("crm_id".into(), format!("crm{}", rng.random_range(0..4)));
    }
    if rng.random_bool(0.5) {
        c.attributes.insert(
            "campaign".into(),
            pick(rng, &["spring", "autumn"]).to_string(),
        );
    }
    c
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A filter using each field with some chance; never `transcript_contains`,
/// which a watch refuses.
fn generated_filter(rng: &mut StdRng, calls: &[proto::Call]) -> CallFilter {
    let mut f = CallFilter::default();
    let p = 0.22;
    if rng.random_bool(p) {
        f.task_ids = strings(&some(rng, &TASKS));
    }
    if rng.random_bool(p / 2.0) {
        f.phone = pick(rng, calls).callee.clone();
    }
    if rng.random_bool(p / 2.0) {
        f.phone_contains = format!("0000{:04}", rng.random_range(0..24))[2..].to_owned();
    }
    if rng.random_bool(p) {
        f.score_ranges = (0..rng.random_range(1..3))
            .map(|_| {
                let min = rng.random_range(0..250);
                ScoreRange {
                    min: rng.random_bool(0.8).then_some(min),
                    max: rng.random_bool(0.7).then(|| min + rng.random_range(1..120)),
                }
            })
            .collect();
    }
    let tag_ids: Vec<&str> = TAGS.iter().map(|(id, _)| *id).collect();
    if rng.random_bool(p) {
        f.tag_ids = strings(&some(rng, &tag_ids));
        f.tag_match = *pick(rng, &[TagMatch::Any, TagMatch::All]) as i32;
    }
    if rng.random_bool(p) {
        f.tag_group_ids = strings(&some(rng, &["ga", "gb", "gc", "gz"]));
    }
    let level_ids = ["A", "B", "C"];
    if rng.random_bool(p) {
        f.intent_level_ids = strings(&some(rng, &level_ids));
    }
    if rng.random_bool(p) {
        let start = rng.random_range(0..60);
        f.start_time = rng.random_bool(0.8).then(|| at(start));
        f.end_time = rng
            .random_bool(0.8)
            .then(|| at(start + rng.random_range(1..30)));
        f.time_field = *pick(
            rng,
            &[
                TimeField::CallTime,
                TimeField::AnswerTime,
                TimeField::HangupTime,
            ],
        ) as i32;
    }
    if rng.random_bool(p) {
        let min = rng.random_range(0..100) * 1000;
        f.min_talk_ms = rng.random_bool(0.7).then_some(min);
        f.max_talk_ms = rng
            .random_bool(0.5)
            .then(|| min + rng.random_range(0..100) * 1000);
    }
    if rng.random_bool(p / 2.0) {
        let min = rng.random_range(0..6);
        f.min_rounds = rng.random_bool(0.7).then_some(min);
        f.max_rounds = rng.random_bool(0.5).then(|| min + rng.random_range(0..6));
    }
    if rng.random_bool(p) {
        f.outcomes = some(rng, &OUTCOMES).into_iter().map(|o| o as i32).collect();
    }
    if rng.random_bool(p / 2.0) {
        f.sources = vec![*pick(rng, &[Source::Api, Source::Smartivr]) as i32];
    }
    if rng.random_bool(p) {
        f.carriers = strings(&some(rng, &CARRIER_QUERIES));
    }
    if rng.random_bool(p / 2.0) {
        f.provinces = strings(&some(rng, &["广东", "浙江", "江苏"]));
    }
    if rng.random_bool(p / 2.0) {
        f.hangup_by = *pick(rng, &[Party::Customer, Party::Robot]) as i32;
    }
    if rng.random_bool(p / 2.0) {
        f.external_ids = (0..rng.random_range(1..10))
            .map(|_| format!("e{:03}", rng.random_range(0..CALLS + 5)))
            .collect();
    }
    if rng.random_bool(p) {
        f.exclude_tag_ids = strings(&some(rng, &tag_ids));
    }
    if rng.random_bool(p) {
        f.exclude_intent_level_ids = strings(&some(rng, &level_ids));
    }
    if rng.random_bool(p) {
        f.exclude_outcomes = some(rng, &OUTCOMES).into_iter().map(|o| o as i32).collect();
    }
    if rng.random_bool(p) {
        if rng.random_bool(0.7) {
            f.attributes
                .insert("crm_id".into(), format!("crm{}", rng.random_range(0..5)));
        }
        if rng.random_bool(0.5) {
            f.attributes.insert(
                "campaign".into(),
                pick(rng, &["spring", "autumn"]).to_string(),
            );
        }
    }
    f
}

/// The external ids of the CREATED events on `stream` until `want` of them
/// came and then nothing more for a moment, or nothing came for a while.
async fn created(stream: &mut Streaming<CallEvent>, want: usize) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    loop {
        let quiet = if got.len() >= want {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(10)
        };
        match tokio::time::timeout(quiet, stream.message()).await {
            Ok(Ok(Some(event))) => {
                if event.r#type == CallEventType::Created as i32 {
                    got.insert(event.call.expect("event call").external_id);
                }
            }
            Ok(Ok(None)) => return got,
            Ok(Err(status)) => panic!("watch ended: {status:?}"),
            Err(_) => return got,
        }
    }
}

async fn a_watch_delivers_exactly_what_a_listing_returns(mut app: TestApp) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let calls: Vec<proto::Call> = (0..CALLS).map(|i| generated_call(&mut rng, i)).collect();
    let filters: Vec<CallFilter> = (0..FILTERS)
        .map(|_| generated_filter(&mut rng, &calls))
        .collect();

    // Every watch starts from now, before the calls are written.
    let mut streams = Vec::new();
    for filter in &filters {
        let stream = app
            .calls
            .clone()
            .watch_calls(WatchCallsRequest {
                filter: Some(filter.clone()),
                resume_token: String::new(),
            })
            .await
            .unwrap_or_else(|s| panic!("watch {filter:?}: {s:?}"))
            .into_inner();
        streams.push(stream);
    }
    // A watch without a token takes its starting point when it is opened;
    // give the last one a moment to have done so.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for chunk in calls.chunks(20) {
        app.upsert(chunk.to_vec()).await;
    }

    let mut matched_some = 0;
    let mut matched_none = 0;
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    for (n, (filter, stream)) in filters.iter().zip(streams.iter_mut()).enumerate() {
        let listed: BTreeSet<String> = app.external_ids(filter.clone()).await.into_iter().collect();
        let watched = created(stream, listed.len()).await;
        assert_eq!(
            watched,
            listed,
            "filter #{n} (seed {SEED}): WatchCalls delivered {} calls, ListCalls returned {}: {filter:?}",
            watched.len(),
            listed.len()
        );
        if listed.is_empty() {
            matched_none += 1;
        } else {
            matched_some += 1;
        }
        *sizes.entry(listed.len()).or_default() += 1;
    }
    // The generator must exercise both sides: filters that select some calls
    // and not all of them, and filters that select none.
    assert!(
        matched_some >= FILTERS / 3,
        "too few filters matched anything: {sizes:?}"
    );
    assert!(
        sizes.keys().any(|&n| n > 0 && n < CALLS),
        "no filter selected a strict subset: {sizes:?}"
    );
    eprintln!(
        "watch_filters: {matched_some} filters matched some calls, {matched_none} none; sizes {sizes:?}"
    );
}

crate::backend_tests!(a_watch_delivers_exactly_what_a_listing_returns);
