//! AdminService (DeleteCalls, ErasePhone), the tombstones that keep erased
//! calls out, the retention purge and the quarantine's caps, through the real
//! gRPC client on both backends.

use std::time::Duration;

use crate::helpers::{TestApp, bad_fields, call, execute, fixture, spawn_app_with, tag, ts};
use callscope::config::ServeConfig;
use callscope::proto::{
    self, CallFilter, DeleteCallsRequest, ErasePhoneRequest, GetCallRequest, GetCallStatsRequest,
    ImportRecordsRequest, ListRejectedRecordsRequest, ListTaskNumbersRequest, RecordOutcome,
    ScoreRange, Source, TaskNumberInput, UpsertTaskNumbersRequest,
    admin_service_client::AdminServiceClient,
};
use tonic::Code;

const NUMBER: &str = "+8613800138000";
const OTHER: &str = "+8613900139000";

fn admin(app: &TestApp) -> AdminServiceClient<tonic::transport::Channel> {
    AdminServiceClient::new(app.channel.clone())
}

async fn erase(app: &TestApp, phone: &str, validate_only: bool) -> proto::ErasePhoneResponse {
    admin(app)
        .erase_phone(ErasePhoneRequest {
            phone: phone.to_owned(),
            validate_only,
        })
        .await
        .expect("erase phone")
        .into_inner()
}

async fn delete(app: &TestApp, filter: CallFilter, validate_only: bool) -> i64 {
    admin(app)
        .delete_calls(DeleteCallsRequest {
            filter: Some(filter),
            validate_only,
        })
        .await
        .expect("delete calls")
        .into_inner()
        .deleted_calls
}

async fn import(
    app: &mut TestApp,
    source: Source,
    records: Vec<String>,
) -> proto::ImportRecordsResponse {
    app.ingest
        .import_records(ImportRecordsRequest {
            source: source as i32,
            records,
            ..Default::default()
        })
        .await
        .expect("import records")
        .into_inner()
}

/// Every quarantined payload, newest first.
async fn rejected_payloads(app: &mut TestApp) -> Vec<String> {
    app.ingest
        .list_rejected_records(ListRejectedRecordsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list rejected")
        .into_inner()
        .records
        .into_iter()
        .map(|r| r.payload)
        .collect()
}

/// Tag ids and counts of a task's calls, as GetCallStats counts them from
/// the tag rows (without joining calls).
async fn tag_counts(app: &mut TestApp, task: &str) -> Vec<(String, i64)> {
    let stats = app
        .analytics
        .get_call_stats(GetCallStatsRequest {
            filter: Some(CallFilter {
                task_ids: vec![task.into()],
                ..Default::default()
            }),
            top_tags: 100,
        })
        .await
        .expect("stats")
        .into_inner();
    let mut tags: Vec<(String, i64)> = stats.by_tag.into_iter().map(|e| (e.key, e.count)).collect();
    tags.sort();
    tags
}

fn turn(sequence: i32, text: &str) -> proto::DialogueTurn {
    proto::DialogueTurn {
        sequence,
        kind: proto::TurnKind::CustomerUtterance as i32,
        customer_text: text.to_owned(),
        ..Default::default()
    }
}

fn all_calls() -> CallFilter {
    CallFilter::default()
}

async fn erase_phone_removes_the_number_everywhere_and_only_it(mut app: TestApp) {
    let mut as_callee = call("a-callee", "+86 138-0013-8000", "2026-11-20T08:00:00Z");
    as_callee.task_id = "t1".into();
    as_callee.tags = vec![tag("price", &["interested"])];
    as_callee.turns = vec![turn(1, "多少钱"), turn(2, "再见")];
    let mut as_caller = call("a-caller", OTHER, "2026-11-20T09:00:00Z");
    as_caller.task_id = "t1".into();
    as_caller.caller = "8613800138000".into();
    as_caller.tags = vec![tag("callback", &[])];
    let mut other = call("b-other", OTHER, "2026-11-20T10:00:00Z");
    other.task_id = "t1".into();
    other.tags = vec![tag("price", &["interested"])];
    other.turns = vec![turn(1, "你好")];
    let stored = app.upsert(vec![as_callee, as_caller, other]).await;
    assert_eq!(stored.inserted, 3, "{stored:?}");
    let (erased_id, kept_id) = (stored.call_ids[0].clone(), stored.call_ids[2].clone());
    app.ingest
        .upsert_task_numbers(UpsertTaskNumbersRequest {
            task_id: "t1".into(),
            numbers: [NUMBER, OTHER]
                .iter()
                .map(|p| TaskNumberInput {
                    phone: (*p).to_owned(),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .expect("upsert task numbers");
    // Three unreadable payloads: the number in two notations, and a number
    // that differs in its last digit.
    let quarantined = import(
        &mut app,
        Source::Laaffic,
        vec![
            r#"{"callee": "13800138000", "#.to_owned(),
            r#"{"callee": "+8613800138000", "callTime": "#.to_owned(),
            r#"{"callee": "8613800138001", "#.to_owned(),
        ],
    )
    .await;
    assert_eq!(quarantined.rejected, 3, "{quarantined:?}");

    // validate_only counts and changes nothing.
    let counts = erase(&app, "+86 138 0013 8000", true).await;
    assert_eq!(
        (counts.calls, counts.task_numbers, counts.rejected_records),
        (2, 1, 2),
        "{counts:?}"
    );
    assert_eq!(app.external_ids(all_calls()).await.len(), 3);
    assert_eq!(rejected_payloads(&mut app).await.len(), 3);

    let counts = erase(&app, "13800138000", false).await;
    assert_eq!(
        (counts.calls, counts.task_numbers, counts.rejected_records),
        (2, 1, 2),
        "{counts:?}"
    );
    assert_eq!(app.external_ids(all_calls()).await, vec!["b-other"]);
    let gone = app
        .calls
        .get_call(GetCallRequest {
            call_id: erased_id,
            ..Default::default()
        })
        .await
        .expect_err("erased call");
    assert_eq!(gone.code(), Code::NotFound);
    let kept = app
        .calls
        .get_call(GetCallRequest {
            call_id: kept_id,
            ..Default::default()
        })
        .await
        .expect("other call")
        .into_inner();
    assert_eq!(kept.turns.len(), 1);
    assert_eq!(kept.tags.len(), 1);
    // The erased calls' tag rows went with them.
    assert_eq!(
        tag_counts(&mut app, "t1").await,
        vec![("price".to_owned(), 1)]
    );
    let transcript = app
        .external_ids(CallFilter {
            transcript_contains: "多少钱".into(),
            ..Default::default()
        })
        .await;
    assert!(transcript.is_empty(), "{transcript:?}");
    let numbers: Vec<String> = app
        .calls
        .list_task_numbers(ListTaskNumbersRequest {
            task_id: "t1".into(),
            ..Default::default()
        })
        .await
        .expect("list task numbers")
        .into_inner()
        .numbers
        .into_iter()
        .map(|n| n.phone)
        .collect();
    assert_eq!(numbers, vec![OTHER]);
    let payloads = rejected_payloads(&mut app).await;
    assert_eq!(payloads, vec![r#"{"callee": "8613800138001", "#.to_owned()]);

    // Idempotent: a second erase finds nothing.
    let again = erase(&app, NUMBER, false).await;
    assert_eq!(
        (again.calls, again.task_numbers, again.rejected_records),
        (0, 0, 0)
    );

    // A redelivery of an erased call is not stored again.
    let mut redelivered = call("a-callee", NUMBER, "2026-11-20T08:00:00Z");
    redelivered.update_time = Some(ts("2026-11-21T00:00:00Z"));
    let fresh = call("c-fresh", OTHER, "2026-11-20T11:00:00Z");
    let answer = app.upsert(vec![redelivered, fresh]).await;
    assert_eq!(
        answer.outcomes,
        vec![RecordOutcome::Erased as i32, RecordOutcome::Inserted as i32]
    );
    assert_eq!((answer.erased, answer.inserted), (1, 1));
    assert_eq!(answer.call_ids[0], "");
    let mut left = app.external_ids(all_calls()).await;
    left.sort();
    assert_eq!(left, vec!["b-other", "c-fresh"]);
}

async fn erased_vendor_calls_stay_erased_through_every_door(mut app: TestApp) {
    let push = fixture("laaffic/push.json");
    let (status, _) = app.post("/hooks/laaffic", push.as_bytes()).await;
    assert_eq!(status, 200);
    let counts = erase(&app, "+63 123 456 788", false).await;
    assert_eq!(counts.calls, 1, "{counts:?}");

    let (status, body) = app.post("/hooks/laaffic", push.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"outcome\":\"ERASED\""), "{body}");
    assert!(body.contains("\"call_ids\":[]"), "{body}");
    let answer = import(&mut app, Source::Laaffic, vec![push.clone()]).await;
    assert_eq!(
        answer.results[0].outcome,
        RecordOutcome::Erased as i32,
        "{answer:?}"
    );
    assert_eq!((answer.erased, answer.inserted), (1, 0));
    assert!(answer.results[0].call_ids.is_empty(), "{answer:?}");
    let found = app
        .external_ids(CallFilter {
            phone: "+63123456788".into(),
            ..Default::default()
        })
        .await;
    assert!(found.is_empty(), "{found:?}");
    assert!(app.external_ids(all_calls()).await.is_empty());
}

async fn delete_calls_deletes_exactly_what_list_calls_selects(mut app: TestApp) {
    let mut calls = Vec::new();
    for i in 0..12 {
        let mut c = call(
            &format!("d-{i}"),
            &format!("+86138000100{i:02}"),
            &format!("2026-11-20T{:02}:00:00Z", i + 1),
        );
        c.task_id = if i % 3 == 0 { "keep" } else { "drop" }.into();
        c.score = Some(i * 10);
        c.tags = vec![tag(if i % 2 == 0 { "even" } else { "odd" }, &[])];
        c.turns = vec![turn(1, "hello")];
        calls.push(c);
    }
    app.upsert(calls).await;
    let filter = CallFilter {
        task_ids: vec!["drop".into()],
        score_ranges: vec![ScoreRange {
            min: Some(30),
            max: None,
        }],
        ..Default::default()
    };
    let mut selected = app.external_ids(filter.clone()).await;
    selected.sort();
    assert_eq!(selected.len(), 6, "{selected:?}");
    let mut all = app.external_ids(all_calls()).await;
    all.sort();

    assert_eq!(delete(&app, filter.clone(), true).await, 6);
    assert_eq!(app.external_ids(all_calls()).await.len(), 12);

    assert_eq!(delete(&app, filter.clone(), false).await, 6);
    assert!(app.external_ids(filter.clone()).await.is_empty());
    let mut left = app.external_ids(all_calls()).await;
    left.sort();
    let expected: Vec<String> = all
        .into_iter()
        .filter(|id| !selected.contains(id))
        .collect();
    assert_eq!(left, expected);
    // Tag rows of the deleted calls are gone: only d-1 and d-2 are left in "drop".
    assert_eq!(
        tag_counts(&mut app, "drop").await,
        vec![("even".to_owned(), 1), ("odd".to_owned(), 1)]
    );
    assert_eq!(delete(&app, filter, false).await, 0);
}

async fn empty_filters_and_bad_numbers_are_refused(app: TestApp) {
    for filter in [
        None,
        Some(CallFilter::default()),
        Some(CallFilter {
            tag_match: proto::TagMatch::All as i32,
            ..Default::default()
        }),
    ] {
        let status = admin(&app)
            .delete_calls(DeleteCallsRequest {
                filter,
                validate_only: false,
            })
            .await
            .expect_err("empty filter");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(bad_fields(&status), vec!["filter"]);
    }
    let status = admin(&app)
        .delete_calls(DeleteCallsRequest {
            filter: Some(CallFilter {
                phone: "no digits".into(),
                ..Default::default()
            }),
            validate_only: true,
        })
        .await
        .expect_err("bad phone");
    assert_eq!(bad_fields(&status), vec!["filter.phone"]);
    for phone in ["", "  ", "no digits"] {
        let status = admin(&app)
            .erase_phone(ErasePhoneRequest {
                phone: phone.into(),
                validate_only: false,
            })
            .await
            .expect_err("bad phone");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(bad_fields(&status), vec!["phone"]);
    }
}

async fn erasing_while_a_call_is_written_leaves_no_call_behind(mut app: TestApp) {
    for round in 0..5 {
        let phone = format!("+86138001380{round:02}");
        let external_id = format!("race-{round}");
        let mut writer = app.ingest.clone();
        let writes = async {
            for n in 0..20 {
                let mut c = call(&external_id, &phone, "2026-11-20T08:00:00Z");
                c.update_time = Some(callscope::proto::Timestamp {
                    seconds: 1_800_000_000 + n,
                    nanos: 0,
                });
                c.turns = vec![turn(1, &format!("version {n}"))];
                writer
                    .upsert_calls(proto::UpsertCallsRequest { calls: vec![c] })
                    .await
                    .expect("upsert");
            }
        };
        let erasure = async {
            tokio::time::sleep(Duration::from_millis(5 + 3 * round as u64)).await;
            erase(&app, &phone, false).await
        };
        let ((), counts) = tokio::join!(writes, erasure);
        let left = app
            .external_ids(CallFilter {
                phone: phone.clone(),
                ..Default::default()
            })
            .await;
        if counts.calls > 0 {
            // The erasure found the call: every later write was refused.
            assert!(left.is_empty(), "round {round}: {left:?} revived");
        }
    }
}

/// A second server on the same database, with other settings.
async fn second_server(app: &TestApp, adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let url = app.database_url.clone();
    spawn_app_with(move |c| {
        c.database_url = url;
        adjust(c);
    })
    .await
}

fn days_ago(days: i64) -> callscope::proto::Timestamp {
    let now = jiff::Timestamp::now().as_second();
    callscope::proto::Timestamp {
        seconds: now - days * 86_400,
        nanos: 0,
    }
}

async fn retention_purges_old_calls_and_old_quarantine(mut app: TestApp) {
    let mut old = call("old", NUMBER, "2026-01-01T00:00:00Z");
    old.call_time = Some(days_ago(40));
    old.turns = vec![turn(1, "old words")];
    old.tags = vec![tag("aged", &[])];
    old.task_id = "r".into();
    let mut recent = call("recent", NUMBER, "2026-01-01T00:00:00Z");
    recent.call_time = Some(days_ago(1));
    recent.task_id = "r".into();
    app.upsert(vec![old, recent]).await;
    import(
        &mut app,
        Source::Laaffic,
        vec!["{\"stale\": ".to_owned(), "{\"fresh\": ".to_owned()],
    )
    .await;
    execute(
        &app.database_url,
        &format!(
            "UPDATE rejected_records SET receive_time = {} WHERE payload = {}",
            (jiff::Timestamp::now().as_second() - 40 * 86_400) * 1000,
            if app.database_url.starts_with("sqlite:") {
                "CAST('{\"stale\": ' AS BLOB)"
            } else {
                "convert_to('{\"stale\": ', 'UTF8')"
            }
        ),
    )
    .await;

    let mut purging = second_server(&app, |c| {
        c.retention_days = Some(30);
        c.quarantine_retention_days = 30;
        c.retention_interval_ms = 200;
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ids = purging.external_ids(all_calls()).await;
        let payloads = rejected_payloads(&mut purging).await;
        if ids == vec!["recent"] && payloads == vec!["{\"fresh\": "] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not purged: {ids:?} {payloads:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tag_counts(&mut purging, "r").await.is_empty());
}

async fn quarantine_caps_drop_the_oldest_first(app: TestApp) {
    let mut capped = second_server(&app, |c| {
        c.quarantine_max_rows = 3;
        c.quarantine_max_bytes = 995;
    })
    .await;
    for n in 1..=5 {
        let record = format!("{{\"n\": {n}, ");
        let answer = import(&mut capped, Source::Laaffic, vec![record]).await;
        assert_eq!(answer.rejected, 1);
        // Distinct receive times, so "oldest" is unambiguous.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        rejected_payloads(&mut capped).await,
        vec!["{\"n\": 5, ", "{\"n\": 4, ", "{\"n\": 3, "]
    );
    // Caps are per source: another source's records are not counted.
    import(&mut capped, Source::Smartivr, vec!["{\"s\": ".to_owned()]).await;
    assert_eq!(rejected_payloads(&mut capped).await.len(), 4);
    // The byte cap (995): a 990-byte record leaves no room for the older ones.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let big = format!("{{\"big\": \"{}", "x".repeat(981));
    assert_eq!(big.len(), 990);
    import(&mut capped, Source::Laaffic, vec![big.clone()]).await;
    assert_eq!(
        rejected_payloads(&mut capped).await,
        vec![big, "{\"s\": ".to_owned()]
    );
}

crate::backend_tests!(
    erase_phone_removes_the_number_everywhere_and_only_it,
    erased_vendor_calls_stay_erased_through_every_door,
    delete_calls_deletes_exactly_what_list_calls_selects,
    empty_filters_and_bad_numbers_are_refused,
    erasing_while_a_call_is_written_leaves_no_call_behind,
    retention_purges_old_calls_and_old_quarantine,
    quarantine_caps_drop_the_oldest_first,
);
