//! CallService and UpsertCalls through a real server: every filter, paging,
//! idempotency, and the errors a careless client gets.

use crate::helpers::{TestApp, bad_fields, call, tag, ts};
use callscope::proto::{
    self, CallFilter, CallOrder, CallOutcome, GetCallRequest, ListCallsRequest, Party, ScoreRange,
    Source, TagMatch, TimeField,
};
use tonic::Code;

struct Spec {
    id: &'static str,
    task: &'static str,
    callee: &'static str,
    caller: &'static str,
    time: &'static str,
    score: Option<i32>,
    tags: Vec<proto::Tag>,
    intent: Option<&'static str>,
    talk_ms: i64,
    rounds: i32,
    outcome: CallOutcome,
    source: Source,
    carrier: &'static str,
    province: &'static str,
    hangup_by: Party,
    customer_said: &'static str,
}

/// Ten calls whose right answers for each filter are known by hand.
fn fixture() -> Vec<proto::Call> {
    use CallOutcome::*;
    let specs = vec![
        Spec {
            id: "c01",
            task: "t1",
            callee: "18651683344",
            caller: "",
            time: "2026-11-01T01:00:00Z",
            score: Some(90),
            tags: vec![tag("a", &["g1"])],
            intent: Some("A"),
            talk_ms: 60_000,
            rounds: 5,
            outcome: Answered,
            source: Source::Api,
            carrier: "联通",
            province: "江苏",
            hangup_by: Party::Customer,
            customer_said: "不再见,再见。",
        },
        Spec {
            id: "c02",
            task: "t1",
            callee: "13800138000",
            caller: "",
            time: "2026-11-01T02:00:00Z",
            score: Some(50),
            tags: vec![tag("a", &["g1"]), tag("b", &["g2"])],
            intent: Some("B"),
            talk_ms: 30_000,
            rounds: 3,
            outcome: Answered,
            source: Source::Api,
            carrier: "移动",
            province: "广东",
            hangup_by: Party::Robot,
            customer_said: "你好",
        },
        Spec {
            id: "c03",
            task: "t1",
            callee: "13900139000",
            caller: "",
            time: "2026-11-01T03:00:00Z",
            score: Some(100),
            tags: vec![tag("b", &["g2"])],
            intent: Some("A"),
            talk_ms: 0,
            rounds: 0,
            outcome: NoAnswer,
            source: Source::Api,
            carrier: "电信",
            province: "江苏",
            hangup_by: Party::Unspecified,
            customer_said: "",
        },
        Spec {
            id: "c04",
            task: "t2",
            callee: "+86 186-5168-3344",
            caller: "",
            time: "2026-11-02T00:00:00Z",
            score: Some(0),
            tags: vec![],
            intent: Some("D"),
            talk_ms: 15_000,
            rounds: 1,
            outcome: Answered,
            source: Source::Smartivr,
            carrier: "联通",
            province: "江苏",
            hangup_by: Party::Customer,
            customer_said: "再",
        },
        Spec {
            id: "c05",
            task: "t2",
            callee: "+1 650 253 0000",
            caller: "",
            time: "2026-11-02T05:00:00Z",
            score: None,
            tags: vec![tag("c", &["g3"])],
            intent: None,
            talk_ms: 0,
            rounds: 0,
            outcome: Busy,
            source: Source::Laaffic,
            carrier: "",
            province: "",
            hangup_by: Party::Unspecified,
            customer_said: "",
        },
        Spec {
            id: "c06",
            task: "t3",
            callee: "8613700137000",
            caller: "300708",
            time: "2026-11-03T00:00:00Z",
            score: Some(500),
            tags: vec![tag("a", &["g1"]), tag("c", &["g3"])],
            intent: Some("C"),
            talk_ms: 120_000,
            rounds: 12,
            outcome: Answered,
            source: Source::Smartivr,
            carrier: "移动",
            province: "北京",
            hangup_by: Party::Robot,
            customer_said: "请问价格是多少",
        },
        Spec {
            id: "c07",
            task: "t3",
            callee: "13700137001",
            caller: "8618651683344",
            time: "2026-11-03T12:00:00Z",
            score: Some(499),
            tags: vec![tag("b", &["g2"]), tag("c", &["g3"])],
            intent: Some("C"),
            talk_ms: 45_000,
            rounds: 6,
            outcome: Answered,
            source: Source::AlibabaLvms,
            carrier: "电信",
            province: "北京",
            hangup_by: Party::Customer,
            customer_said: "100%的折扣吗",
        },
        Spec {
            id: "c08",
            task: "t3",
            callee: "13700137002",
            caller: "",
            time: "2026-11-04T00:00:00Z",
            score: Some(-5),
            tags: vec![],
            intent: None,
            talk_ms: 0,
            rounds: 0,
            outcome: PoweredOff,
            source: Source::Api,
            carrier: "移动",
            province: "广东",
            hangup_by: Party::Unspecified,
            customer_said: "",
        },
        Spec {
            id: "c09",
            task: "t4",
            callee: "13700137003",
            caller: "",
            time: "2026-11-04T23:59:59Z",
            score: Some(100),
            tags: vec![tag("a", &["g1"]), tag("b", &["g2"]), tag("c", &["g3"])],
            intent: Some("A"),
            talk_ms: 59_999,
            rounds: 5,
            outcome: Answered,
            source: Source::Api,
            carrier: "联通",
            province: "上海",
            hangup_by: Party::Robot,
            customer_said: "好的 再见",
        },
        Spec {
            id: "c10",
            task: "t4",
            callee: "13700137004",
            caller: "",
            time: "2026-11-05T00:00:00Z",
            score: Some(101),
            tags: vec![],
            intent: Some("B"),
            talk_ms: 60_001,
            rounds: 7,
            outcome: Rejected,
            source: Source::Api,
            carrier: "联通",
            province: "上海",
            hangup_by: Party::Customer,
            customer_said: "",
        },
    ];
    specs
        .into_iter()
        .map(|s| {
            let mut c = call(s.id, s.callee, s.time);
            c.task_id = s.task.into();
            c.caller = s.caller.into();
            c.score = s.score;
            c.tags = s.tags;
            c.intent_level = s.intent.map(|id| proto::IntentLevel {
                id: id.into(),
                name: format!("{id}级"),
                ..Default::default()
            });
            c.talk_ms = s.talk_ms;
            c.rounds = s.rounds;
            c.outcome = s.outcome as i32;
            c.source = s.source as i32;
            c.location = Some(proto::Location {
                carrier: s.carrier.into(),
                province: s.province.into(),
                ..Default::default()
            });
            c.hangup_by = s.hangup_by as i32;
            c.answer_time = (s.talk_ms > 0).then(|| {
                let mut t = ts(s.time);
                t.seconds += 10;
                t
            });
            c.turns = vec![proto::DialogueTurn {
                sequence: 1,
                kind: proto::TurnKind::RobotPrompt as i32,
                robot_text: "您好,这里是客服中心".into(),
                ..Default::default()
            }];
            if !s.customer_said.is_empty() {
                c.turns.push(proto::DialogueTurn {
                    sequence: 2,
                    kind: proto::TurnKind::CustomerUtterance as i32,
                    customer_text: s.customer_said.into(),
                    robot_text: "好的".into(),
                    ..Default::default()
                });
            }
            c
        })
        .collect()
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn every_filter_field_alone_and_combined(mut app: TestApp) {
    let stored = app.upsert(fixture()).await;
    assert_eq!(stored.inserted, 10);

    let all = app.external_ids(CallFilter::default()).await;
    assert_eq!(
        all,
        ids(&[
            "c10", "c09", "c08", "c07", "c06", "c05", "c04", "c03", "c02", "c01"
        ])
    );

    let cases: Vec<(&str, CallFilter, Vec<&str>)> = vec![
        (
            "task_ids",
            CallFilter {
                task_ids: ids(&["t1", "t4"]),
                ..Default::default()
            },
            vec!["c10", "c09", "c03", "c02", "c01"],
        ),
        // Three notations of one number, matched on callee or caller.
        (
            "phone national",
            CallFilter {
                phone: "18651683344".into(),
                ..Default::default()
            },
            vec!["c07", "c04", "c01"],
        ),
        (
            "phone with country code",
            CallFilter {
                phone: "8618651683344".into(),
                ..Default::default()
            },
            vec!["c07", "c04", "c01"],
        ),
        (
            "phone formatted",
            CallFilter {
                phone: "+86 186-5168-3344".into(),
                ..Default::default()
            },
            vec!["c07", "c04", "c01"],
        ),
        (
            "phone foreign",
            CallFilter {
                phone: "+16502530000".into(),
                ..Default::default()
            },
            vec!["c05"],
        ),
        (
            "phone short code as caller",
            CallFilter {
                phone: "300708".into(),
                ..Default::default()
            },
            vec!["c06"],
        ),
        (
            "phone_contains",
            CallFilter {
                phone_contains: "137-0013".into(),
                ..Default::default()
            },
            vec!["c10", "c09", "c08", "c07", "c06"],
        ),
        (
            "phone_contains caller",
            CallFilter {
                phone_contains: "5168".into(),
                ..Default::default()
            },
            vec!["c07", "c04", "c01"],
        ),
        // min inclusive, max exclusive; any range matches; calls without a score never.
        (
            "score ranges",
            CallFilter {
                score_ranges: vec![
                    ScoreRange {
                        min: Some(0),
                        max: Some(50),
                    },
                    ScoreRange {
                        min: Some(100),
                        max: Some(101),
                    },
                ],
                ..Default::default()
            },
            vec!["c09", "c04", "c03"],
        ),
        (
            "score open max",
            CallFilter {
                score_ranges: vec![ScoreRange {
                    min: Some(499),
                    max: None,
                }],
                ..Default::default()
            },
            vec!["c07", "c06"],
        ),
        (
            "score open min",
            CallFilter {
                score_ranges: vec![ScoreRange {
                    min: None,
                    max: Some(0),
                }],
                ..Default::default()
            },
            vec!["c08"],
        ),
        (
            "tags any",
            CallFilter {
                tag_ids: ids(&["b", "c"]),
                ..Default::default()
            },
            vec!["c09", "c07", "c06", "c05", "c03", "c02"],
        ),
        (
            "tags all",
            CallFilter {
                tag_ids: ids(&["a", "c"]),
                tag_match: TagMatch::All as i32,
                ..Default::default()
            },
            vec!["c09", "c06"],
        ),
        (
            "tags all three",
            CallFilter {
                tag_ids: ids(&["a", "b", "c"]),
                tag_match: TagMatch::All as i32,
                ..Default::default()
            },
            vec!["c09"],
        ),
        (
            "tag groups",
            CallFilter {
                tag_group_ids: ids(&["g2"]),
                ..Default::default()
            },
            vec!["c09", "c07", "c03", "c02"],
        ),
        (
            "intent levels",
            CallFilter {
                intent_level_ids: ids(&["A", "D"]),
                ..Default::default()
            },
            vec!["c09", "c04", "c03", "c01"],
        ),
        // [start, end): a call exactly at end is out, one exactly at start is in.
        (
            "window",
            CallFilter {
                start_time: Some(ts("2026-11-03T00:00:00Z")),
                end_time: Some(ts("2026-11-05T00:00:00Z")),
                ..Default::default()
            },
            vec!["c09", "c08", "c07", "c06"],
        ),
        (
            "window start only",
            CallFilter {
                start_time: Some(ts("2026-11-04T23:59:59Z")),
                ..Default::default()
            },
            vec!["c10", "c09"],
        ),
        (
            "window on answer_time",
            CallFilter {
                start_time: Some(ts("2026-11-01T01:00:10Z")),
                end_time: Some(ts("2026-11-01T02:00:10Z")),
                time_field: TimeField::AnswerTime as i32,
                ..Default::default()
            },
            vec!["c01"],
        ),
        (
            "talk range inclusive",
            CallFilter {
                min_talk_ms: Some(45_000),
                max_talk_ms: Some(60_000),
                ..Default::default()
            },
            vec!["c09", "c07", "c01"],
        ),
        (
            "rounds range inclusive",
            CallFilter {
                min_rounds: Some(5),
                max_rounds: Some(7),
                ..Default::default()
            },
            vec!["c10", "c09", "c07", "c01"],
        ),
        (
            "outcomes",
            CallFilter {
                outcomes: vec![CallOutcome::Busy as i32, CallOutcome::PoweredOff as i32],
                ..Default::default()
            },
            vec!["c08", "c05"],
        ),
        (
            "sources",
            CallFilter {
                sources: vec![Source::Smartivr as i32],
                ..Default::default()
            },
            vec!["c06", "c04"],
        ),
        (
            "carriers",
            CallFilter {
                carriers: ids(&["电信"]),
                ..Default::default()
            },
            vec!["c07", "c03"],
        ),
        (
            "provinces",
            CallFilter {
                provinces: ids(&["北京", "广东"]),
                ..Default::default()
            },
            vec!["c08", "c07", "c06", "c02"],
        ),
        (
            "hangup_by",
            CallFilter {
                hangup_by: Party::Robot as i32,
                ..Default::default()
            },
            vec!["c09", "c06", "c02"],
        ),
        // Chinese substring search, one character and a literal `%`.
        (
            "transcript",
            CallFilter {
                transcript_contains: "再见".into(),
                ..Default::default()
            },
            vec!["c09", "c01"],
        ),
        (
            "transcript one char",
            CallFilter {
                transcript_contains: "再".into(),
                ..Default::default()
            },
            vec!["c09", "c04", "c01"],
        ),
        (
            "transcript literal percent",
            CallFilter {
                transcript_contains: "100%".into(),
                ..Default::default()
            },
            vec!["c07"],
        ),
        (
            "transcript robot side",
            CallFilter {
                transcript_contains: "客服中心".into(),
                transcript_party: Party::Robot as i32,
                ..Default::default()
            },
            vec![
                "c10", "c09", "c08", "c07", "c06", "c05", "c04", "c03", "c02", "c01",
            ],
        ),
        (
            "transcript customer side",
            CallFilter {
                transcript_contains: "客服中心".into(),
                transcript_party: Party::Customer as i32,
                ..Default::default()
            },
            vec![],
        ),
        (
            "combined",
            CallFilter {
                task_ids: ids(&["t1", "t3", "t4"]),
                tag_ids: ids(&["a"]),
                score_ranges: vec![ScoreRange {
                    min: Some(50),
                    max: Some(600),
                }],
                start_time: Some(ts("2026-11-01T00:00:00Z")),
                end_time: Some(ts("2026-11-04T00:00:00Z")),
                outcomes: vec![CallOutcome::Answered as i32],
                ..Default::default()
            },
            vec!["c06", "c02", "c01"],
        ),
        (
            "combined, nothing",
            CallFilter {
                task_ids: ids(&["t2"]),
                tag_group_ids: ids(&["g1"]),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (name, filter, want) in cases {
        assert_eq!(app.external_ids(filter).await, ids(&want), "filter: {name}");
    }
}

async fn listed_calls_carry_their_fields(mut app: TestApp) {
    app.upsert(fixture()).await;
    let page = app
        .calls
        .list_calls(ListCallsRequest {
            filter: Some(CallFilter {
                task_ids: ids(&["t3"]),
                phone: "300708".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.calls.len(), 1);
    let c = &page.calls[0];
    assert_eq!(c.external_id, "c06");
    assert_eq!(c.callee, "+8613700137000");
    assert_eq!(c.callee_raw, "8613700137000");
    assert_eq!(c.caller, "300708");
    assert_eq!(c.source, Source::Smartivr as i32);
    assert_eq!(c.score, Some(500));
    assert_eq!(
        c.intent_level
            .as_ref()
            .map(|l| (l.id.as_str(), l.name.as_str())),
        Some(("C", "C级"))
    );
    let tags: Vec<(&str, Vec<&str>)> = c
        .tags
        .iter()
        .map(|t| {
            (
                t.id.as_str(),
                t.groups.iter().map(|g| g.id.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(tags, vec![("a", vec!["g1"]), ("c", vec!["g3"])]);
    let groups: Vec<&str> = c.tag_groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(groups, vec!["group g1", "group g3"]);
    assert_eq!(c.call_time, Some(ts("2026-11-03T00:00:00Z")));
    assert!(c.turns.is_empty(), "listings leave turns to GetCall");
    assert!(c.sync_time.is_some());
    assert_eq!(page.next_page_token, "");
}

async fn every_page_once_newest_first(mut app: TestApp) {
    // 65 calls, five of them sharing one call time so ties must be broken.
    let calls: Vec<proto::Call> = (0..65)
        .map(|i| {
            let minute = if i < 5 { 0 } else { i };
            let mut c = call(
                &format!("p{i:02}"),
                &format!("1370013{:04}", i),
                &format!("2026-10-01T10:{:02}:00Z", minute % 60),
            );
            c.call_time = Some({
                let mut t = ts("2026-10-01T00:00:00Z");
                t.seconds += minute as i64 * 60;
                t
            });
            c.score = Some(i % 7);
            c
        })
        .collect();
    assert_eq!(app.upsert(calls).await.inserted, 65);

    for (order, key) in [
        (CallOrder::Unspecified, "time desc"),
        (CallOrder::CallTimeAsc, "time asc"),
        (CallOrder::ScoreDesc, "score desc"),
        (CallOrder::TalkMsAsc, "talk asc"),
    ] {
        let mut seen = Vec::new();
        let mut times = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = app
                .calls
                .list_calls(ListCallsRequest {
                    page_size: 7,
                    page_token: token,
                    order_by: order as i32,
                    include_total: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert_eq!(page.total_size, 65, "{key}");
            assert!(page.calls.len() <= 7);
            for c in &page.calls {
                seen.push(c.external_id.clone());
                times.push((c.call_time.unwrap().seconds, c.score.unwrap()));
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(pages, 10, "{key}: 65 calls at 7 a page");
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 65, "{key}: each call exactly once");
        match order {
            CallOrder::Unspecified => {
                assert!(times.windows(2).all(|w| w[0].0 >= w[1].0), "newest first")
            }
            CallOrder::CallTimeAsc => assert!(times.windows(2).all(|w| w[0].0 <= w[1].0)),
            CallOrder::ScoreDesc => assert!(times.windows(2).all(|w| w[0].1 >= w[1].1)),
            _ => {}
        }
    }
}

async fn page_size_default_and_cap(mut app: TestApp) {
    for batch in 0..2 {
        let calls = (0..510)
            .map(|i| {
                call(
                    &format!("b{batch}-{i}"),
                    "13800138000",
                    "2026-10-01T00:00:00Z",
                )
            })
            .collect();
        app.upsert(calls).await;
    }
    let list = |size: i32| ListCallsRequest {
        page_size: size,
        ..Default::default()
    };
    let default = app.calls.list_calls(list(0)).await.unwrap().into_inner();
    assert_eq!(default.calls.len(), 15);
    let capped = app.calls.list_calls(list(5000)).await.unwrap().into_inner();
    assert_eq!(capped.calls.len(), 1000);
    assert!(!capped.next_page_token.is_empty());
}

async fn upserts_are_idempotent_and_newest_wins(mut app: TestApp) {
    let mut v1 = call("x1", "13800138000", "2026-11-01T00:00:00Z");
    v1.update_time = Some(ts("2026-11-01T00:05:00Z"));
    v1.score = Some(10);
    let other = call("x2", "13800138001", "2026-11-01T00:00:00Z");

    let first = app.upsert(vec![v1.clone(), other.clone()]).await;
    assert_eq!((first.inserted, first.updated, first.unchanged), (2, 0, 0));

    let again = app.upsert(vec![v1.clone(), other.clone()]).await;
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
    assert_eq!(
        again.call_ids, first.call_ids,
        "call ids are stable across re-syncs"
    );
    assert_eq!(
        again.outcomes,
        vec![proto::RecordOutcome::Unchanged as i32; 2]
    );

    let mut v2 = v1.clone();
    v2.update_time = Some(ts("2026-11-01T00:10:00Z"));
    v2.score = Some(20);
    let newer = app.upsert(vec![v2]).await;
    assert_eq!((newer.inserted, newer.updated, newer.unchanged), (0, 1, 0));
    assert_eq!(newer.call_ids[0], first.call_ids[0]);

    // The old version arrives late: nothing changes.
    let late = app.upsert(vec![v1.clone()]).await;
    assert_eq!((late.inserted, late.updated, late.unchanged), (0, 0, 1));
    let got = app
        .calls
        .get_call(GetCallRequest {
            call_id: first.call_ids[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.score, Some(20));
    assert_eq!(got.update_time, Some(ts("2026-11-01T00:10:00Z")));

    // Same update time, different content: the later arrival wins.
    let mut v3 = got.clone();
    v3.score = Some(30);
    v3.turns.clear();
    let tie = app.upsert(vec![v3]).await;
    assert_eq!(tie.updated, 1);

    // One key twice in a batch is applied in order: the second version wins.
    let mut d1 = call("dup", "13800138000", "2026-11-01T00:00:00Z");
    d1.score = Some(1);
    let mut d2 = d1.clone();
    d2.score = Some(2);
    let dup = app.upsert(vec![d1, d2]).await;
    assert_eq!((dup.inserted, dup.updated), (1, 1));
    assert_eq!(dup.call_ids[0], dup.call_ids[1]);
    let got = app
        .calls
        .get_call(GetCallRequest {
            call_id: dup.call_ids[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.score, Some(2));

    // Another source with the same external id is another call.
    let mut vendor = call("x1", "13800138000", "2026-11-01T00:00:00Z");
    vendor.source = Source::Laaffic as i32;
    let distinct = app.upsert(vec![vendor]).await;
    assert_eq!(distinct.inserted, 1);
    assert_ne!(distinct.call_ids[0], first.call_ids[0]);
}

/// Several versions of one call in one batch are applied in batch order, as
/// if sent one by one (the store looks a batch's calls up in one go).
async fn versions_within_one_batch_apply_in_order(mut app: TestApp) {
    let mut v1 = call("dup", "13800138000", "2026-11-01T00:00:00Z");
    v1.update_time = Some(ts("2026-11-01T00:05:00Z"));
    v1.score = Some(10);
    v1.tags = vec![tag("price", &["hot"])];
    let mut v2 = v1.clone();
    v2.update_time = Some(ts("2026-11-01T00:10:00Z"));
    v2.score = Some(20);
    v2.tags = vec![tag("busy", &["cold"])];
    let batch = app
        .upsert(vec![v1.clone(), v2.clone(), v1.clone(), v2.clone()])
        .await;
    assert_eq!(
        batch.outcomes,
        [
            proto::RecordOutcome::Inserted,
            proto::RecordOutcome::Updated,
            proto::RecordOutcome::Unchanged,
            proto::RecordOutcome::Unchanged,
        ]
        .map(|o| o as i32)
    );
    assert!(batch.call_ids.iter().all(|id| *id == batch.call_ids[0]));
    let got = app
        .calls
        .get_call(GetCallRequest {
            call_id: batch.call_ids[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.score, Some(20));
    let tags: Vec<&str> = got.tags.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(tags, ["busy"]);

    // Known and new calls mixed in one batch.
    let fresh = call("new", "13800138001", "2026-11-01T00:00:00Z");
    let mixed = app.upsert(vec![fresh, v1, v2]).await;
    assert_eq!((mixed.inserted, mixed.updated, mixed.unchanged), (1, 0, 2));
}

async fn get_call_returns_turns_and_hides_progress(mut app: TestApp) {
    let mut c = call("g1", "18651683344", "2026-11-01T00:00:00Z");
    c.turns = vec![
        proto::DialogueTurn {
            sequence: 1,
            kind: proto::TurnKind::RobotPrompt as i32,
            robot_text: "您好".into(),
            ..Default::default()
        },
        proto::DialogueTurn {
            sequence: 2,
            kind: proto::TurnKind::Progress as i32,
            customer_text: "不再".into(),
            ..Default::default()
        },
        proto::DialogueTurn {
            sequence: 3,
            kind: proto::TurnKind::CustomerUtterance as i32,
            customer_text: "不再见,再见。".into(),
            robot_text: "感谢您的接听".into(),
            keyword: "再见".into(),
            tags: vec![tag("bye", &["g9"])],
            ..Default::default()
        },
    ];
    let id = app.upsert(vec![c]).await.call_ids.remove(0);

    let got = app
        .calls
        .get_call(GetCallRequest {
            call_id: id.clone(),
            include_progress_turns: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let seqs: Vec<i32> = got.turns.iter().map(|t| t.sequence).collect();
    assert_eq!(seqs, vec![1, 3]);
    assert_eq!(got.turns[1].customer_text, "不再见,再见。");
    assert_eq!(got.turns[1].keyword, "再见");
    assert_eq!(got.turns[1].tags[0].groups[0].id, "g9");

    let all = app
        .calls
        .get_call(GetCallRequest {
            call_id: id,
            include_progress_turns: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.turns.len(), 3);
    assert_eq!(all.turns[1].kind, proto::TurnKind::Progress as i32);

    // Interim recognition text does not match a transcript search.
    assert_eq!(
        app.external_ids(CallFilter {
            transcript_contains: "不再".into(),
            ..Default::default()
        })
        .await,
        ids(&["g1"])
    );
    assert_eq!(
        app.external_ids(CallFilter {
            transcript_contains: "您好".into(),
            transcript_party: Party::Customer as i32,
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );

    let missing = app
        .calls
        .get_call(GetCallRequest {
            call_id: "no-such-call".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

async fn bad_input_is_named_and_nothing_is_stored(mut app: TestApp) {
    // A batch with bad calls is rejected whole, naming every bad field.
    let good = call("ok-1", "13800138000", "2026-11-01T00:00:00Z");
    let mut no_id = call("", "13800138000", "2026-11-01T00:00:00Z");
    no_id.external_id = String::new();
    let mut bad = call("bad-2", "no digits here", "2026-11-01T00:00:00Z");
    bad.call_time = None;
    bad.talk_ms = -1;
    bad.outcome = 99;
    bad.billing = Some(proto::Billing {
        cost: "1,5".into(),
        currency: "euro".into(),
        ..Default::default()
    });
    let err = app
        .ingest
        .upsert_calls(proto::UpsertCallsRequest {
            calls: vec![good, no_id, bad],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = bad_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        ids(&[
            "calls[1].external_id",
            "calls[2].billing.cost",
            "calls[2].billing.currency",
            "calls[2].call_time",
            "calls[2].callee",
            "calls[2].outcome",
            "calls[2].talk_ms",
        ])
    );
    assert_eq!(
        app.external_ids(CallFilter::default()).await,
        Vec::<String>::new(),
        "nothing stored"
    );

    let too_many = (0..1001)
        .map(|i| call(&format!("m{i}"), "13800138000", "2026-11-01T00:00:00Z"))
        .collect();
    let err = app
        .ingest
        .upsert_calls(proto::UpsertCallsRequest { calls: too_many })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), bad_fields(&err)),
        (Code::InvalidArgument, ids(&["calls"]))
    );

    let client = app.calls.clone();
    let list_err = |req: ListCallsRequest| {
        let mut client = client.clone();
        async move { client.list_calls(req).await.unwrap_err() }
    };
    let cases = vec![
        (
            ListCallsRequest {
                filter: Some(CallFilter {
                    start_time: Some(ts("2026-11-02T00:00:00Z")),
                    end_time: Some(ts("2026-11-01T00:00:00Z")),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "filter.end_time",
        ),
        (
            ListCallsRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            ListCallsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            ListCallsRequest {
                filter: Some(CallFilter {
                    phone: "abc".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "filter.phone",
        ),
        (
            ListCallsRequest {
                filter: Some(CallFilter {
                    phone_contains: "--".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "filter.phone_contains",
        ),
        (
            ListCallsRequest {
                filter: Some(CallFilter {
                    score_ranges: vec![ScoreRange {
                        min: Some(10),
                        max: Some(10),
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
            "filter.score_ranges[0]",
        ),
        (
            ListCallsRequest {
                filter: Some(CallFilter {
                    min_talk_ms: Some(10),
                    max_talk_ms: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "filter.max_talk_ms",
        ),
        (
            ListCallsRequest {
                filter: Some(CallFilter {
                    outcomes: vec![77],
                    ..Default::default()
                }),
                ..Default::default()
            },
            "filter.outcomes[0]",
        ),
        (
            ListCallsRequest {
                order_by: 42,
                ..Default::default()
            },
            "order_by",
        ),
    ];
    for (req, field) in cases {
        let err = list_err(req).await;
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert_eq!(bad_fields(&err), ids(&[field]));
    }

    // A token is bound to its filter: replayed under another, it is refused.
    let calls = (0..3)
        .map(|i| call(&format!("k{i}"), "13800138000", "2026-11-01T00:00:00Z"))
        .collect();
    app.upsert(calls).await;
    let page = app
        .calls
        .list_calls(ListCallsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    let err = list_err(ListCallsRequest {
        page_size: 1,
        page_token: page.next_page_token.clone(),
        filter: Some(CallFilter {
            task_ids: ids(&["other"]),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    assert_eq!(bad_fields(&err), ids(&["page_token"]));
    let mut tampered = page.next_page_token.clone();
    tampered.insert(3, 'A');
    assert_eq!(
        bad_fields(
            &list_err(ListCallsRequest {
                page_size: 1,
                page_token: tampered,
                ..Default::default()
            })
            .await
        ),
        ids(&["page_token"])
    );

    // And the server keeps serving.
    assert_eq!(app.external_ids(CallFilter::default()).await.len(), 3);
}

async fn catalogs_fill_from_records_and_upserts(mut app: TestApp) {
    app.ingest
        .upsert_intent_levels(proto::UpsertIntentLevelsRequest {
            intent_levels: vec![proto::IntentLevel {
                id: "A".into(),
                name: "A级".into(),
                alias: "有意向".into(),
                color: "#f00".into(),
            }],
        })
        .await
        .unwrap();
    // A record naming the level by id only keeps the catalog's name.
    let mut c = call("cat-1", "13800138000", "2026-11-01T00:00:00Z");
    c.intent_level = Some(proto::IntentLevel {
        id: "A".into(),
        ..Default::default()
    });
    c.tags = vec![proto::Tag {
        id: "t-9".into(),
        ..Default::default()
    }];
    app.upsert(vec![c]).await;
    app.ingest
        .upsert_tags(proto::UpsertTagsRequest {
            tags: vec![tag("t-9", &["grp"])],
            tag_groups: vec![],
        })
        .await
        .unwrap();
    let page = app
        .calls
        .list_calls(ListCallsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let got = &page.calls[0];
    let level = got.intent_level.as_ref().unwrap();
    assert_eq!(
        (
            level.name.as_str(),
            level.alias.as_str(),
            level.color.as_str()
        ),
        ("A级", "有意向", "#f00")
    );
    assert_eq!(got.tags[0].name, "tag t-9");
    assert_eq!(got.tags[0].groups[0].id, "grp");

    let err = app
        .ingest
        .upsert_tasks(proto::UpsertTasksRequest {
            tasks: vec![proto::Task::default()],
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ids(&["tasks[0].task_id"]));
}

/// Values that would overflow a sum, outgrow an index entry or blow up a
/// query are refused by name; searches match case alike on both backends.
async fn limits_keep_sums_indexes_and_queries_safe(mut app: TestApp) {
    let mut long = call("long-1", "13800138000", "2026-11-01T00:00:00Z");
    long.location = Some(proto::Location {
        province: "省".repeat(300),
        ..Default::default()
    });
    long.talk_ms = 31 * 24 * 3600 * 1000;
    long.billing = Some(proto::Billing {
        cost: "0.0000000000000000000000000000001".into(),
        ..Default::default()
    });
    let err = app
        .ingest
        .upsert_calls(proto::UpsertCallsRequest { calls: vec![long] })
        .await
        .unwrap_err();
    let mut fields = bad_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        ids(&[
            "calls[0].billing.cost",
            "calls[0].location.province",
            "calls[0].talk_ms"
        ])
    );

    let ranges = (0..101)
        .map(|i| ScoreRange {
            min: Some(i),
            max: Some(i + 1),
        })
        .collect();
    let err = app
        .calls
        .list_calls(ListCallsRequest {
            filter: Some(CallFilter {
                score_ranges: ranges,
                outcomes: vec![1; 501],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let mut fields = bad_fields(&err);
    fields.sort();
    assert_eq!(fields, ids(&["filter.outcomes", "filter.score_ranges"]));

    // A version without an update time keeps the known one: a late older
    // version still loses.
    let mut v2 = call("ut", "13800138000", "2026-11-01T00:00:00Z");
    v2.update_time = Some(ts("2026-11-01T00:10:00Z"));
    v2.score = Some(2);
    v2.turns = vec![proto::DialogueTurn {
        sequence: 1,
        customer_text: "OK 好的".into(),
        ..Default::default()
    }];
    let mut undated = v2.clone();
    undated.update_time = None;
    undated.score = Some(3);
    let mut v1 = v2.clone();
    v1.update_time = Some(ts("2026-11-01T00:05:00Z"));
    v1.score = Some(1);
    let id = app.upsert(vec![v2]).await.call_ids.remove(0);
    assert_eq!(app.upsert(vec![undated]).await.updated, 1);
    assert_eq!(app.upsert(vec![v1]).await.unchanged, 1);
    let got = app
        .calls
        .get_call(GetCallRequest {
            call_id: id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.score, got.update_time),
        (Some(3), Some(ts("2026-11-01T00:10:00Z")))
    );

    // LIKE is case-sensitive on both backends.
    let search = |text: &str| CallFilter {
        transcript_contains: text.into(),
        ..Default::default()
    };
    assert_eq!(app.external_ids(search("OK")).await, ids(&["ut"]));
    assert_eq!(app.external_ids(search("ok")).await, Vec::<String>::new());
}

/// A batch of the most calls a request takes, each with tags and turns,
/// is stored whole: on SQLite its rows span several statements a table.
async fn a_full_batch_is_stored_whole(mut app: TestApp) {
    let calls: Vec<proto::Call> = (0..1000)
        .map(|i| {
            let mut c = call(
                &format!("full-{i:04}"),
                "13800138000",
                "2026-10-02T00:00:00Z",
            );
            c.tags = vec![tag(&format!("t{}", i % 7), &["g1"]), tag("all", &[])];
            c.turns = (1..=3)
                .map(|sequence| proto::DialogueTurn {
                    sequence,
                    kind: proto::TurnKind::CustomerUtterance as i32,
                    customer_text: format!("call {i} turn {sequence}"),
                    ..Default::default()
                })
                .collect();
            c
        })
        .collect();
    let done = app.upsert(calls).await;
    assert_eq!((done.inserted, done.call_ids.len()), (1000, 1000));
    let mut stored = app.external_ids(proto::CallFilter::default()).await;
    stored.sort();
    let expected: Vec<String> = (0..1000).map(|i| format!("full-{i:04}")).collect();
    assert_eq!(stored, expected);
    let tagged = app
        .external_ids(proto::CallFilter {
            tag_ids: vec!["t6".into()],
            ..Default::default()
        })
        .await;
    assert_eq!(tagged.len(), (0..1000).filter(|i| i % 7 == 6).count());
    let texts = app
        .external_ids(proto::CallFilter {
            transcript_contains: "call 999 turn 3".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(texts, ids(&["full-0999"]));
}

crate::backend_tests!(
    limits_keep_sums_indexes_and_queries_safe,
    a_full_batch_is_stored_whole,
    nul_characters_are_refused_by_name,
    every_filter_field_alone_and_combined,
    listed_calls_carry_their_fields,
    every_page_once_newest_first,
    page_size_default_and_cap,
    upserts_are_idempotent_and_newest_wins,
    versions_within_one_batch_apply_in_order,
    get_call_returns_turns_and_hides_progress,
    bad_input_is_named_and_nothing_is_stored,
    catalogs_fill_from_records_and_upserts,
    oversized_values_are_refused_by_field,
    oversized_lists_and_requests_are_refused,
    a_long_call_id_is_not_found,
    pages_are_cut_to_fit_a_default_client,
);

/// PostgreSQL cannot store U+0000 in text: such input is refused, naming the
/// field, on every backend alike, and nothing is stored.
async fn nul_characters_are_refused_by_name(mut app: TestApp) {
    let mut c = call("nul-1", "13800138000", "2026-11-01T00:00:00Z");
    c.turns = vec![proto::DialogueTurn {
        sequence: 1,
        customer_text: "bad\0text".into(),
        ..Default::default()
    }];
    c.attributes.insert("k".into(), "v\0".into());
    let mut id = call("nul\0id", "13800138000", "2026-11-01T00:00:00Z");
    id.task_id = "t".into();
    let err = app
        .ingest
        .upsert_calls(proto::UpsertCallsRequest { calls: vec![c, id] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = bad_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        ids(&[
            "calls[0].attributes[\"k\"]",
            "calls[0].turns[0].customer_text",
            "calls[1].external_id",
        ])
    );
    let err = app
        .calls
        .list_calls(ListCallsRequest {
            filter: Some(CallFilter {
                transcript_contains: "a\0".into(),
                task_ids: ids(&["t\0"]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let mut fields = bad_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        ids(&["filter.task_ids[0]", "filter.transcript_contains"])
    );
    let missing = app
        .calls
        .get_call(GetCallRequest {
            call_id: "x\0".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        app.external_ids(CallFilter::default()).await,
        Vec::<String>::new()
    );
}

/// Hostile input: every string, list and map has a limit, each request a
/// bounded size, scores a range; pages fit a default client's 4 MiB.
use callscope::proto::call_service_client::CallServiceClient;

async fn oversized_values_are_refused_by_field(mut app: TestApp) {
    let mega = "x".repeat(1 << 20);
    let mut c = call("big-1", "13800138000", "2026-11-01T00:00:00Z");
    c.recording_url = mega.clone();
    c.hangup_cause = mega.clone();
    c.dtmf = mega.clone();
    c.score = Some(i32::MIN);
    let mut t = tag("t1", &["g1"]);
    t.color = mega.clone();
    c.tags = vec![t];
    let err = app
        .ingest
        .upsert_calls(proto::UpsertCallsRequest { calls: vec![c] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = bad_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        ids(&[
            "calls[0].dtmf",
            "calls[0].hangup_cause",
            "calls[0].recording_url",
            "calls[0].score",
            "calls[0].tags[0].color",
        ])
    );
    assert!(app.external_ids(CallFilter::default()).await.is_empty());
}

async fn oversized_lists_and_requests_are_refused(mut app: TestApp) {
    let mut c = call("many-1", "13800138000", "2026-11-01T00:00:00Z");
    c.attributes = (0..100_000)
        .map(|i| (format!("k{i}"), "v".to_owned()))
        .collect();
    c.turns = (0..100_000)
        .map(|i| proto::DialogueTurn {
            sequence: i,
            ..Default::default()
        })
        .collect();
    c.tags = (0..10_000).map(|i| tag(&format!("t{i}"), &[])).collect();
    let err = app
        .ingest
        .upsert_calls(proto::UpsertCallsRequest { calls: vec![c] })
        .await
        .unwrap_err();
    let mut fields = bad_fields(&err);
    fields.sort();
    assert_eq!(
        (err.code(), fields),
        (
            Code::InvalidArgument,
            ids(&["calls[0].attributes", "calls[0].tags", "calls[0].turns"])
        )
    );

    let tasks = (0..1001)
        .map(|i| proto::Task {
            task_id: format!("task-{i}"),
            ..Default::default()
        })
        .collect();
    let err = app
        .ingest
        .upsert_tasks(proto::UpsertTasksRequest { tasks })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), bad_fields(&err)),
        (Code::InvalidArgument, ids(&["tasks"]))
    );
    let tags = (0..1001).map(|i| tag(&format!("t{i}"), &[])).collect();
    let err = app
        .ingest
        .upsert_tags(proto::UpsertTagsRequest {
            tags,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), bad_fields(&err)),
        (Code::InvalidArgument, ids(&["tags"]))
    );
    let intent_levels = (0..1001)
        .map(|i| proto::IntentLevel {
            id: format!("l{i}"),
            ..Default::default()
        })
        .collect();
    let err = app
        .ingest
        .upsert_intent_levels(proto::UpsertIntentLevelsRequest { intent_levels })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), bad_fields(&err)),
        (Code::InvalidArgument, ids(&["intent_levels"]))
    );
    // At the limit, a catalog upsert is served.
    let tasks = (0..1000)
        .map(|i| proto::Task {
            task_id: format!("task-{i}"),
            ..Default::default()
        })
        .collect();
    let done = app
        .ingest
        .upsert_tasks(proto::UpsertTasksRequest { tasks })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.upserted, 1000);
}

async fn a_long_call_id_is_not_found(mut app: TestApp) {
    let err = app
        .calls
        .get_call(GetCallRequest {
            call_id: "x".repeat(4000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().len() < 400, "{}", err.message().len());
}

async fn pages_are_cut_to_fit_a_default_client(mut app: TestApp) {
    // Five calls of about 1 MiB each (16 attribute values of 64 KiB).
    let calls = (0..5)
        .map(|i| {
            let mut c = call(&format!("heavy-{i}"), "13800138000", "2026-11-01T00:00:00Z");
            c.attributes = (0..16)
                .map(|k| (format!("k{k}"), "y".repeat(64 * 1024)))
                .collect();
            c
        })
        .collect();
    app.upsert(calls).await;
    // A client with gRPC's default 4 MiB receive limit.
    let mut client = CallServiceClient::new(app.channel.clone());
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_calls(ListCallsRequest {
                page_token: token.clone(),
                include_total: true,
                ..Default::default()
            })
            .await
            .expect("a page fits the default receive limit")
            .into_inner();
        pages += 1;
        assert!(!page.calls.is_empty());
        assert_eq!(page.total_size, 5);
        seen.extend(page.calls.into_iter().map(|c| c.external_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    assert_eq!(
        seen,
        ids(&["heavy-0", "heavy-1", "heavy-2", "heavy-3", "heavy-4"])
    );
    assert!(pages >= 2, "the 5 MiB page was cut");
}
