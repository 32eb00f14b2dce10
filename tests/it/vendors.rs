//! Vendor records through every door: ImportRecords over gRPC, the HTTP
//! webhooks and `callscope import`, with the quarantine for what cannot be stored.

use crate::helpers::{TestApp, bad_fields, fixture, ts};
use callscope::proto::{
    CallFilter, CallOutcome, GetCallRequest, ImportRecordsRequest, ListRejectedRecordsRequest,
    Party, RecordOutcome, Source, TurnKind,
};
use tonic::Code;

async fn import(
    app: &mut TestApp,
    source: Source,
    records: Vec<String>,
) -> callscope::proto::ImportRecordsResponse {
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

async fn smartivr_record_info_comes_back_with_its_turns(mut app: TestApp) {
    let doc = fixture("smartivr/record_info_simplified.json");
    let answer = import(&mut app, Source::Smartivr, vec![doc.clone()]).await;
    assert_eq!(answer.inserted, 1, "{answer:?}");
    let call_id = answer.results[0].call_ids[0].clone();

    let call = app
        .calls
        .get_call(GetCallRequest {
            call_id: call_id.clone(),
            include_progress_turns: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(call.source, Source::Smartivr as i32);
    assert_eq!(call.external_id, "281db55e-64e8-11e9-9bb2-3564eb72c846");
    assert_eq!(call.task_id, "840a4346-d0ac-4800-9c73-3d06275a9158");
    assert_eq!(call.callee, "+8618651683344");
    // Local Asia/Shanghai times, stored in UTC.
    assert_eq!(call.call_time, Some(ts("2019-04-22T10:19:47Z")));
    assert_eq!(call.answer_time, Some(ts("2019-04-22T10:19:55Z")));
    assert_eq!(call.hangup_time, Some(ts("2019-04-22T10:20:05Z")));
    assert_eq!(call.update_time, Some(ts("2019-04-22T10:20:07Z")));
    assert_eq!((call.talk_ms, call.total_ms), (10_120, 17_600));
    assert_eq!(call.outcome, CallOutcome::Answered as i32);
    assert_eq!(call.hangup_by, Party::Robot as i32);
    assert_eq!(call.rounds, 2);
    let level = call.intent_level.as_ref().expect("intent level");
    assert_eq!(
        (level.id.as_str(), level.name.as_str(), level.alias.as_str()),
        ("e605e0b0-96b2-4af0-9b78-7cdd5fc6b783", "D级", "无意向")
    );
    let location = call.location.as_ref().unwrap();
    assert_eq!(
        (
            location.carrier.as_str(),
            location.province.as_str(),
            location.city.as_str()
        ),
        ("联通", "江苏", "南京")
    );

    // Turns in order, interim recognition left out unless asked.
    let kinds: Vec<(i32, i32)> = call.turns.iter().map(|t| (t.sequence, t.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, TurnKind::RobotPrompt as i32),
            (3, TurnKind::CustomerUtterance as i32),
            (5, TurnKind::CustomerUtterance as i32),
        ]
    );
    assert_eq!(call.turns[2].customer_text, "不再见,再见。");
    assert_eq!(
        call.turns[2].robot_text,
        "感谢您的接听,我就打扰您了,祝您生活愉快,再见"
    );
    assert_eq!(call.turns[2].keyword, "再见");
    assert_eq!(call.turns[0].tags[0].name, "承认发布");
    let all = app
        .calls
        .get_call(GetCallRequest {
            call_id: call_id.clone(),
            include_progress_turns: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.turns.len(), 5);

    // Chinese transcript search, one and two characters included.
    for text in ["再见", "见", "不再见,再见。"] {
        let found = app
            .external_ids(CallFilter {
                transcript_contains: text.into(),
                ..Default::default()
            })
            .await;
        assert_eq!(found, vec![call.external_id.clone()], "{text}");
    }
    assert!(
        app.external_ids(CallFilter {
            transcript_contains: "再见".into(),
            transcript_party: Party::Robot as i32,
            ..Default::default()
        })
        .await
        .len()
            == 1
    );

    // Re-sending the document changes nothing.
    let again = import(&mut app, Source::Smartivr, vec![doc]).await;
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 1));
    assert_eq!(again.results[0].call_ids[0], call_id);
}

async fn laaffic_push_over_http_is_found_with_its_number_and_outcome(mut app: TestApp) {
    let (status, body) = app
        .post("/hooks/laaffic", fixture("laaffic/push.json").as_bytes())
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"INSERTED\""), "{body}");

    // 63… is a Philippine number written without `+`, not a Chinese one.
    let page = app
        .calls
        .list_calls(callscope::proto::ListCallsRequest {
            filter: Some(CallFilter {
                phone: "+63 123 456 788".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.calls.len(), 1);
    let call = &page.calls[0];
    assert_eq!(call.source, Source::Laaffic as i32);
    assert_eq!(call.external_id, "22121121451211349002");
    assert_eq!(call.callee, "+63123456788");
    // callStatus 10 (busy) beside its own answer time and 13 s of talk:
    // the timings decide, the status is kept, the call flagged.
    assert_eq!(call.outcome, CallOutcome::Answered as i32, "callStatus 10");
    assert_eq!(call.vendor_status, "10");
    assert_eq!(call.quality_flags, vec!["status_contradicts_timings"]);
    assert_eq!(call.call_time, Some(ts("2022-12-13T13:52:48Z")));
    assert_eq!(
        (call.talk_ms, call.billed_ms, call.ring_ms),
        (13_000, 20_000, 1_000)
    );
    let billing = call.billing.as_ref().unwrap();
    assert_eq!(
        (
            billing.cost.as_str(),
            billing.currency.as_str(),
            billing.rate.as_str()
        ),
        ("0.007875", "EUR", "0.023625")
    );
    assert_eq!(call.task_id, "11");

    // The same record again through gRPC and the importer: still one call.
    let grpc = import(
        &mut app,
        Source::Laaffic,
        vec![fixture("laaffic/push.json")],
    )
    .await;
    assert_eq!(grpc.unchanged, 1);
    let (status, body) = app
        .post("/hooks/laaffic", fixture("laaffic/push.json").as_bytes())
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("\"UNCHANGED\""), "{body}");
    let file = format!(
        "{}/tests/fixtures/laaffic/push.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_callscope"))
        .args([
            "import",
            "--source",
            "laaffic",
            "--database-url",
            &app.database_url,
            &file,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "inserted 0, updated 0, unchanged 1, rejected 0"
    );
    assert_eq!(app.external_ids(CallFilter::default()).await.len(), 1);
}

async fn alibaba_push_answers_success_and_is_found_by_its_window(mut app: TestApp) {
    let (status, body) = app
        .post(
            "/hooks/alibaba-lvms",
            fixture("alibaba_lvms/receivecallrecord.json").as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["lvms_result_d_t_o"]["success"], true, "{body}");
    assert_eq!(answer["lvms_result_d_t_o"]["count"], 1);

    // 2024-03-05 09:15:00 in Asia/Shanghai is 01:15 UTC.
    let window = |start: &str, end: &str| CallFilter {
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
        ..Default::default()
    };
    assert_eq!(
        app.external_ids(window("2024-03-05T01:15:00Z", "2024-03-05T01:15:01Z"))
            .await,
        vec!["3001"]
    );
    assert!(
        app.external_ids(window("2024-03-05T09:00:00Z", "2024-03-05T10:00:00Z"))
            .await
            .is_empty()
    );

    // camelCase from the Java SDK is the same record.
    let (status, body) = app
        .post(
            "/hooks/alibaba-lvms",
            fixture("alibaba_lvms/camel_case.json").as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page = app
        .calls
        .list_calls(callscope::proto::ListCallsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let call = page.calls.iter().find(|c| c.external_id == "3001").unwrap();
    assert_eq!(call.outcome, CallOutcome::Answered as i32);
    assert_eq!(call.talk_ms, 42_000);
    assert_eq!(call.customer_name, "张三");
    assert_eq!(call.vendor_status, "已接通");
}

async fn newer_vendor_version_wins_and_older_does_not(mut app: TestApp) {
    let doc: serde_json::Value =
        serde_json::from_str(&fixture("smartivr/call_record.json")).unwrap();
    let with = |updated_at: &str, score: i64| {
        let mut d = doc.clone();
        d["updated_at"] = updated_at.into();
        d["score"] = score.into();
        d.to_string()
    };
    let first = import(
        &mut app,
        Source::Smartivr,
        vec![with("2020-03-06 10:00:00", 10)],
    )
    .await;
    assert_eq!(first.inserted, 1);
    let newer = import(
        &mut app,
        Source::Smartivr,
        vec![with("2020-03-06 11:00:00", 20)],
    )
    .await;
    assert_eq!(newer.updated, 1);
    let older = import(
        &mut app,
        Source::Smartivr,
        vec![with("2020-03-06 10:30:00", 99)],
    )
    .await;
    assert_eq!(older.unchanged, 1);
    let call = app
        .calls
        .get_call(GetCallRequest {
            call_id: first.results[0].call_ids[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(call.score, Some(20));
}

async fn bad_records_are_quarantined_and_good_ones_stored(mut app: TestApp) {
    let good = fixture("laaffic/push.json");
    let mut negative: serde_json::Value = serde_json::from_str(&good).unwrap();
    negative["voiceId"] = "v-negative".into();
    negative["callDuration"] = (-5).into();
    let mut wrong_type: serde_json::Value = serde_json::from_str(&good).unwrap();
    wrong_type["voiceId"] = "v-wrong".into();
    wrong_type["callTime"] = serde_json::json!({"not": "a time"});
    let smartivr: serde_json::Value =
        serde_json::from_str(&fixture("smartivr/call_record.json")).unwrap();
    let mut impossible = smartivr.clone();
    impossible["calldate"] = "2019-02-30 10:00:00".into();

    let records = vec![
        good[..good.len() / 2].to_owned(), // truncated JSON
        negative.to_string(),
        wrong_type.to_string(),
        good.clone(),
    ];
    let answer = import(&mut app, Source::Laaffic, records).await;
    let outcomes: Vec<i32> = answer.results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            RecordOutcome::Rejected as i32,
            RecordOutcome::Rejected as i32,
            RecordOutcome::Rejected as i32,
            RecordOutcome::Inserted as i32
        ]
    );
    assert_eq!((answer.inserted, answer.rejected), (1, 3));
    assert!(
        answer.results[1].reason.contains("callDuration"),
        "{}",
        answer.results[1].reason
    );
    assert!(
        answer.results[2].reason.contains("callTime"),
        "{}",
        answer.results[2].reason
    );
    let date = import(&mut app, Source::Smartivr, vec![impossible.to_string()]).await;
    assert_eq!(date.rejected, 1);
    assert!(
        date.results[0].reason.contains("calldate"),
        "{}",
        date.results[0].reason
    );

    // The webhook answers 400 for a body it cannot parse, and keeps it.
    let (status, body) = app.post("/hooks/smartivr", b"{\"callid\": ").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("rejected_record_id"), "{body}");
    // A 5 MB body is refused with 413 and its beginning quarantined.
    let huge = format!("{{\"voiceId\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let (status, body) = app.post("/hooks/laaffic", huge.as_bytes()).await;
    assert_eq!(status, 413, "{body}");

    let quarantine = app
        .ingest
        .list_rejected_records(ListRejectedRecordsRequest {
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(quarantine.records.len(), 3);
    let newest = &quarantine.records[0];
    assert_eq!(
        (newest.source, newest.channel.as_str()),
        (Source::Laaffic as i32, "http")
    );
    assert_eq!(newest.payload_size, huge.len() as i64);
    assert_eq!(newest.payload.len(), 64 * 1024);
    assert_eq!(quarantine.records[1].channel, "http");
    assert_eq!(quarantine.records[1].payload, "{\"callid\": ");
    let rest = app
        .ingest
        .list_rejected_records(ListRejectedRecordsRequest {
            page_size: 10,
            page_token: quarantine.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.records.len(), 3, "six rejections in all");
    assert!(rest.next_page_token.is_empty());
    assert!(
        rest.records
            .iter()
            .any(|r| r.payload == good[..good.len() / 2]),
        "raw bytes kept"
    );
    let only_smartivr = app
        .ingest
        .list_rejected_records(ListRejectedRecordsRequest {
            source: Source::Smartivr as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only_smartivr.records.len(), 2);

    // Bad requests, not bad records, are INVALID_ARGUMENT.
    let err = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Api as i32,
            records: vec![good.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), bad_fields(&err)),
        (Code::InvalidArgument, vec!["source".to_string()])
    );

    // And the server keeps serving.
    assert_eq!(
        app.external_ids(CallFilter::default()).await,
        vec!["22121121451211349002"]
    );
}

async fn a_partial_view_of_a_call_keeps_its_turns(mut app: TestApp) {
    let doc = fixture("smartivr/record_info_simplified.json");
    let first = import(&mut app, Source::Smartivr, vec![doc.clone()]).await;
    let call_id = first.results[0].call_ids[0].clone();

    // The same call as a list row: no turns, and a changed score.
    let full: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let mut row = full["info"]["record"].clone();
    row["score"] = 42.into();
    let partial = import(&mut app, Source::Smartivr, vec![row.to_string()]).await;
    assert_eq!(
        (partial.updated, partial.results[0].call_ids[0].clone()),
        (1, call_id.clone())
    );

    let call = app
        .calls
        .get_call(GetCallRequest {
            call_id,
            include_progress_turns: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(call.score, Some(42));
    assert_eq!(call.turns.len(), 5, "turns survive a view without them");
}

async fn smartivr_number_list_fills_the_dialing_list(mut app: TestApp) {
    let answer = import(
        &mut app,
        Source::Smartivr,
        vec![fixture("smartivr/task_number.json")],
    )
    .await;
    assert_eq!(answer.inserted, 1, "{answer:?}");
    assert_eq!(
        answer.results[0].call_ids.len(),
        2,
        "the two calls of its history"
    );

    let list = app
        .calls
        .list_task_numbers(callscope::proto::ListTaskNumbersRequest {
            task_id: "772dd881-dcf7-42ee-a32b-b40a0ee5afb7".into(),
            include_call_history: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.numbers.len(), 1);
    let number = &list.numbers[0];
    assert_eq!(number.phone, "+8618651683344");
    assert_eq!(
        number.status,
        callscope::proto::NumberStatus::Answered as i32
    );
    assert_eq!((number.status_code, number.attempts), (1, 2));
    let location = number.location.as_ref().unwrap();
    assert_eq!(
        (
            location.province.as_str(),
            location.city.as_str(),
            location.carrier.as_str()
        ),
        ("江蘇", "南京", "聯(lián)通"),
        "as the seed document writes them"
    );
    let outcomes: Vec<i32> = number.call_history.iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        vec![CallOutcome::Answered as i32, CallOutcome::Busy as i32],
        "newest first"
    );

    // A history call never overwrites the full record of the same call; the
    // list's number is written again, so the record counts as updated.
    let again = import(
        &mut app,
        Source::Smartivr,
        vec![fixture("smartivr/task_number.json")],
    )
    .await;
    assert_eq!((again.updated, again.unchanged), (1, 0), "{again:?}");

    // An entry without history names no task: the request must.
    let mut entry: serde_json::Value =
        serde_json::from_str(&fixture("smartivr/number_entry.json")).unwrap();
    entry["call_history"] = serde_json::json!([]);
    entry["number"] = "13900139000".into();
    let no_task = import(&mut app, Source::Smartivr, vec![entry.to_string()]).await;
    assert_eq!(no_task.rejected, 1);
    assert!(
        no_task.results[0].reason.contains("task"),
        "{}",
        no_task.results[0].reason
    );
    let with_task = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Smartivr as i32,
            records: vec![entry.to_string()],
            task_id: "list-task".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(with_task.rejected, 0, "{with_task:?}");
    let listed = app
        .calls
        .list_task_numbers(callscope::proto::ListTaskNumbersRequest {
            task_id: "list-task".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.numbers.len(), 1);
    assert_eq!(listed.numbers[0].phone, "+8613900139000");
    assert_eq!(
        listed.numbers[0].status_code, 1,
        "the vendor's status while we have no call"
    );
}

crate::backend_tests!(
    vendor_text_with_nul_is_quarantined,
    smartivr_number_list_fills_the_dialing_list,
    smartivr_record_info_comes_back_with_its_turns,
    laaffic_push_over_http_is_found_with_its_number_and_outcome,
    alibaba_push_answers_success_and_is_found_by_its_window,
    newer_vendor_version_wins_and_older_does_not,
    bad_records_are_quarantined_and_good_ones_stored,
    a_partial_view_of_a_call_keeps_its_turns,
    a_vendor_record_over_a_limit_is_quarantined,
);

/// A vendor record with U+0000 in its text is quarantined with the reason,
/// not lost in a failed transaction.
async fn vendor_text_with_nul_is_quarantined(mut app: TestApp) {
    let mut record: serde_json::Value =
        serde_json::from_str(&fixture("laaffic/push.json")).unwrap();
    record["terminationReason"] = "Called\u{0}hang up".into();
    let (status, body) = app
        .post("/hooks/laaffic", record.to_string().as_bytes())
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("NUL"), "{body}");
    let quarantine = app
        .ingest
        .list_rejected_records(ListRejectedRecordsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(quarantine.records.len(), 1);
    assert!(
        quarantine.records[0].reason.contains("hangup_cause"),
        "{}",
        quarantine.records[0].reason
    );
    assert!(quarantine.records[0].payload.contains("Called"));
}

/// Vendor records are held to the same limits as typed calls: one that
/// breaks one is quarantined with the field and the limit, the rest stored.
async fn a_vendor_record_over_a_limit_is_quarantined(mut app: TestApp) {
    let good = fixture("laaffic/push.json");
    let mut long: serde_json::Value = serde_json::from_str(&good).unwrap();
    long["voiceId"] = "long-url-1".into();
    long["recordingFileId"] = "x".repeat(3000).into();
    let mut reason: serde_json::Value = serde_json::from_str(&good).unwrap();
    reason["voiceId"] = "long-cause-1".into();
    reason["terminationReason"] = "y".repeat(5000).into();
    let answer = import(
        &mut app,
        Source::Laaffic,
        vec![good, long.to_string(), reason.to_string()],
    )
    .await;
    assert_eq!((answer.inserted, answer.rejected), (1, 2));
    let reasons: Vec<&str> = answer.results[1..]
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert!(reasons[0].contains("recording_url"), "{reasons:?}");
    assert!(reasons[0].contains("2048 bytes"), "{reasons:?}");
    assert!(reasons[1].contains("hangup_cause"), "{reasons:?}");
    let quarantine = app
        .ingest
        .list_rejected_records(ListRejectedRecordsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(quarantine.records.len(), 2);
}
