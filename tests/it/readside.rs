//! The read side: finding a call by the vendor's id, exclusions and
//! attributes held against an independent model (listing, stats and time
//! series alike), tags of dialogue turns counted as call tags with a real
//! smartivr `record_info` document, and CatalogService.

use std::collections::BTreeMap;

use crate::helpers::{TestApp, bad_fields, call, fixture, tag, ts};
use callscope::proto::{
    self, CallFilter, CallOutcome, GetCallRequest, GetCallStatsRequest, GetCallTimeSeriesRequest,
    GetTaskRequest, Granularity, ImportRecordsRequest, ListIntentLevelsRequest, ListTagsRequest,
    ListTasksRequest, Source, UpsertTaskNumbersRequest, UpsertTasksRequest,
    catalog_service_client::CatalogServiceClient,
};
use tonic::Code;

/// One call of the model: the fields the read-side filters look at.
#[derive(Debug, Clone)]
struct Model {
    id: String,
    task: &'static str,
    hour: i64,
    tags: Vec<&'static str>,
    intent: Option<&'static str>,
    outcome: CallOutcome,
    attributes: BTreeMap<String, String>,
}

const TAGS: [&str; 3] = ["a", "b", "c"];
const INTENTS: [Option<&str>; 4] = [Some("A"), Some("B"), None, Some("C")];
const OUTCOMES: [CallOutcome; 5] = [
    CallOutcome::Answered,
    CallOutcome::NoAnswer,
    CallOutcome::Busy,
    CallOutcome::Answered,
    CallOutcome::Rejected,
];

/// 24 calls spread over every combination the filters distinguish.
fn models() -> Vec<Model> {
    (0..24)
        .map(|i: usize| {
            let mut attributes = BTreeMap::new();
            if i % 6 != 5 {
                attributes.insert("crm_id".to_owned(), format!("crm{}", i % 4));
            }
            let campaign = if i.is_multiple_of(3) {
                "spring"
            } else {
                "autumn"
            };
            attributes.insert("campaign".to_owned(), campaign.to_owned());
            Model {
                id: format!("m{i:02}"),
                task: ["t1", "t2", "t3"][i % 3],
                hour: i as i64,
                tags: TAGS
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| (i >> bit) & 1 == 1)
                    .map(|(_, t)| *t)
                    .collect(),
                intent: INTENTS[i % 4],
                outcome: OUTCOMES[i % 5],
                attributes,
            }
        })
        .collect()
}

fn to_call(m: &Model) -> proto::Call {
    let mut time = ts("2026-11-01T00:00:00Z");
    time.seconds += m.hour * 3600;
    let mut c = call(
        &m.id,
        &format!("1370013{:04}", m.hour),
        "2026-11-01T00:00:00Z",
    );
    c.call_time = Some(time);
    c.task_id = m.task.into();
    c.tags = m.tags.iter().map(|t| tag(t, &[&format!("g{t}")])).collect();
    c.intent_level = m.intent.map(|id| proto::IntentLevel {
        id: id.into(),
        name: format!("{id}级"),
        ..Default::default()
    });
    c.outcome = m.outcome as i32;
    if m.outcome == CallOutcome::Answered {
        c.talk_ms = 1000 * (m.hour + 1);
    }
    c.attributes = m.attributes.clone().into_iter().collect();
    c
}

/// The model's answer: what every given filter field says, written
/// independently of the SQL.
fn model_matches(m: &Model, f: &CallFilter) -> bool {
    let any = |list: &[String], value: &str| list.iter().any(|v| v == value);
    (f.task_ids.is_empty() || any(&f.task_ids, m.task))
        && (f.tag_ids.is_empty() || m.tags.iter().any(|t| any(&f.tag_ids, t)))
        && (f.intent_level_ids.is_empty() || m.intent.is_some_and(|i| any(&f.intent_level_ids, i)))
        && (f.outcomes.is_empty() || f.outcomes.contains(&(m.outcome as i32)))
        && (f.external_ids.is_empty() || any(&f.external_ids, &m.id))
        && !m.tags.iter().any(|t| any(&f.exclude_tag_ids, t))
        && !m
            .intent
            .is_some_and(|i| any(&f.exclude_intent_level_ids, i))
        && !f.exclude_outcomes.contains(&(m.outcome as i32))
        && f.attributes
            .iter()
            .all(|(k, v)| m.attributes.get(k) == Some(v))
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn attrs(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Exclusions, attributes and the vendor's ids, each alone and combined
/// with each other and with the older filter fields: ListCalls (every page),
/// GetCallStats (totals, outcomes, tags) and GetCallTimeSeries agree with
/// the model.
async fn exclusions_attributes_and_ids_match_the_model(mut app: TestApp) {
    let models = models();
    let stored = app.upsert(models.iter().map(to_call).collect()).await;
    assert_eq!(stored.inserted, 24);

    let cases: Vec<(&str, CallFilter)> = vec![
        (
            "exclude one tag",
            CallFilter {
                exclude_tag_ids: ids(&["a"]),
                ..Default::default()
            },
        ),
        (
            "exclude two tags",
            CallFilter {
                exclude_tag_ids: ids(&["a", "c"]),
                ..Default::default()
            },
        ),
        (
            "include and exclude tags",
            CallFilter {
                tag_ids: ids(&["b"]),
                exclude_tag_ids: ids(&["c"]),
                ..Default::default()
            },
        ),
        (
            "exclude intent levels keeps calls without one",
            CallFilter {
                exclude_intent_level_ids: ids(&["A", "C"]),
                ..Default::default()
            },
        ),
        (
            "exclude outcomes",
            CallFilter {
                exclude_outcomes: vec![CallOutcome::NoAnswer as i32, CallOutcome::Busy as i32],
                ..Default::default()
            },
        ),
        (
            "answered of a task without the tag",
            CallFilter {
                task_ids: ids(&["t1"]),
                outcomes: vec![CallOutcome::Answered as i32],
                exclude_tag_ids: ids(&["b"]),
                ..Default::default()
            },
        ),
        (
            "one attribute",
            CallFilter {
                attributes: attrs(&[("crm_id", "crm1")]),
                ..Default::default()
            },
        ),
        (
            "two attributes",
            CallFilter {
                attributes: attrs(&[("crm_id", "crm0"), ("campaign", "spring")]),
                ..Default::default()
            },
        ),
        (
            "attribute nobody has",
            CallFilter {
                attributes: attrs(&[("crm_id", "crm9")]),
                ..Default::default()
            },
        ),
        (
            "attribute value is case sensitive",
            CallFilter {
                attributes: attrs(&[("campaign", "Spring")]),
                ..Default::default()
            },
        ),
        (
            "external ids",
            CallFilter {
                external_ids: ids(&["m01", "m07", "m20", "nope"]),
                ..Default::default()
            },
        ),
        (
            "everything at once",
            CallFilter {
                task_ids: ids(&["t1", "t2"]),
                exclude_tag_ids: ids(&["c"]),
                exclude_intent_level_ids: ids(&["B"]),
                exclude_outcomes: vec![CallOutcome::Rejected as i32],
                attributes: attrs(&[("campaign", "autumn")]),
                ..Default::default()
            },
        ),
        (
            "external ids with exclusions",
            CallFilter {
                external_ids: ids(&["m03", "m04", "m05", "m06", "m11"]),
                exclude_tag_ids: ids(&["a"]),
                intent_level_ids: ids(&["A", "B", "C"]),
                ..Default::default()
            },
        ),
    ];
    for (name, filter) in cases {
        let mut want: Vec<&Model> = models
            .iter()
            .filter(|m| model_matches(m, &filter))
            .collect();
        // Newest first.
        want.sort_by_key(|m| std::cmp::Reverse(m.hour));
        let want_ids: Vec<String> = want.iter().map(|m| m.id.clone()).collect();
        assert_eq!(
            app.external_ids(filter.clone()).await,
            want_ids,
            "ListCalls, {name}"
        );

        let stats = app
            .analytics
            .get_call_stats(GetCallStatsRequest {
                filter: Some(filter.clone()),
                top_tags: 10,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stats.total_calls, want.len() as i64, "stats total, {name}");
        let answered = want
            .iter()
            .filter(|m| m.outcome == CallOutcome::Answered)
            .count();
        assert_eq!(stats.answered_calls, answered as i64, "answered, {name}");
        let mut by_tag: BTreeMap<String, i64> = BTreeMap::new();
        for m in &want {
            for t in &m.tags {
                *by_tag.entry(t.to_string()).or_default() += 1;
            }
        }
        let got: BTreeMap<String, i64> = stats
            .by_tag
            .iter()
            .map(|e| (e.key.clone(), e.count))
            .collect();
        assert_eq!(got, by_tag, "by_tag, {name}");
        let mut by_outcome: BTreeMap<i32, i64> = BTreeMap::new();
        for m in &want {
            *by_outcome.entry(m.outcome as i32).or_default() += 1;
        }
        let got: BTreeMap<i32, i64> = stats
            .by_outcome
            .iter()
            .map(|e| {
                let code = CallOutcome::from_str_name(&e.key).expect("outcome key") as i32;
                (code, e.count)
            })
            .collect();
        assert_eq!(got, by_outcome, "by_outcome, {name}");

        let mut windowed = filter.clone();
        windowed.start_time = Some(ts("2026-11-01T00:00:00Z"));
        windowed.end_time = Some(ts("2026-11-03T00:00:00Z"));
        let series = app
            .analytics
            .get_call_time_series(GetCallTimeSeriesRequest {
                filter: Some(windowed),
                granularity: Granularity::Hour as i32,
                time_zone: "UTC".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut per_hour: Vec<(i64, i64)> = series
            .buckets
            .iter()
            .filter(|b| b.total_calls > 0)
            .map(|b| {
                let start = b.start_time.expect("bucket start").seconds;
                (start, b.total_calls)
            })
            .collect();
        per_hour.sort();
        let mut want_hours: Vec<(i64, i64)> = want
            .iter()
            .map(|m| (ts("2026-11-01T00:00:00Z").seconds + m.hour * 3600, 1))
            .collect();
        want_hours.sort();
        assert_eq!(per_hour, want_hours, "time series, {name}");
    }
}

/// A smartivr record is found by its `callid` and by its record `id`, in
/// ListCalls and in GetCall; unknown ids are NOT_FOUND; both or neither
/// kind of id, a missing source, too many or blank ids are INVALID_ARGUMENT
/// naming the field.
async fn a_call_is_found_by_the_vendors_ids(mut app: TestApp) {
    let record = fixture("smartivr/call_record.json");
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Smartivr as i32,
            records: vec![record],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.inserted, 1, "{answer:?}");
    let call_id = answer.results[0].call_ids[0].clone();
    let mut typed = call("crm-77", "13800138000", "2026-11-01T00:00:00Z");
    typed.task_id = "t9".into();
    app.upsert(vec![typed]).await;

    const CALLID: &str = "d6a577d4-7180-11e9-80bd-7fed30fcff3f";
    const RECORD_ID: &str = "6d44d2f4-90f9-4621-8c77-e5e70c810623";
    for (name, wanted, found) in [
        ("callid", vec![CALLID], vec![CALLID]),
        ("record id", vec![RECORD_ID], vec![CALLID]),
        (
            "both ids of one call",
            vec![RECORD_ID, CALLID],
            vec![CALLID],
        ),
        ("a typed call", vec!["crm-77"], vec!["crm-77"]),
        (
            "two calls",
            vec!["crm-77", RECORD_ID],
            vec!["crm-77", CALLID],
        ),
        ("unknown", vec!["nope"], vec![]),
    ] {
        let filter = CallFilter {
            external_ids: ids(&wanted),
            ..Default::default()
        };
        assert_eq!(app.external_ids(filter).await, ids(&found), "{name}");
    }
    // Combined with another field: the record's task is not t9.
    let filter = CallFilter {
        external_ids: ids(&[RECORD_ID, "crm-77"]),
        task_ids: ids(&["t9"]),
        ..Default::default()
    };
    assert_eq!(app.external_ids(filter).await, ids(&["crm-77"]));

    for (source, external_id) in [(Source::Smartivr, CALLID), (Source::Smartivr, RECORD_ID)] {
        let got = app
            .calls
            .get_call(GetCallRequest {
                source: source as i32,
                external_id: external_id.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{external_id}: {e}"))
            .into_inner();
        assert_eq!(got.call_id, call_id);
        assert_eq!(got.external_id, CALLID);
    }
    let typed = app
        .calls
        .get_call(GetCallRequest {
            source: Source::Api as i32,
            external_id: "crm-77".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(typed.task_id, "t9");

    for (source, external_id) in [
        (Source::Smartivr, "nope"),
        // The key is source and id: the same id under another source is another call.
        (Source::Laaffic, CALLID),
        (Source::Api, RECORD_ID),
    ] {
        let err = app
            .calls
            .get_call(GetCallRequest {
                source: source as i32,
                external_id: external_id.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{source:?} {external_id}");
    }

    for (name, req, field) in [
        (
            "both",
            GetCallRequest {
                call_id: call_id.clone(),
                source: Source::Smartivr as i32,
                external_id: CALLID.into(),
                ..Default::default()
            },
            "call_id",
        ),
        ("neither", GetCallRequest::default(), "call_id"),
        (
            "no source",
            GetCallRequest {
                external_id: CALLID.into(),
                ..Default::default()
            },
            "source",
        ),
        (
            "unknown source",
            GetCallRequest {
                source: 99,
                external_id: CALLID.into(),
                ..Default::default()
            },
            "source",
        ),
        (
            "no external id",
            GetCallRequest {
                source: Source::Smartivr as i32,
                ..Default::default()
            },
            "external_id",
        ),
    ] {
        let err = app.calls.get_call(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}");
        assert_eq!(bad_fields(&err), vec![field.to_owned()], "{name}");
    }
}

/// Bad values in the new filter fields are INVALID_ARGUMENT naming the
/// field, in ListCalls and GetCallStats alike; nothing is INTERNAL.
async fn bad_read_side_filters_name_their_field(mut app: TestApp) {
    let long_key = "k".repeat(257);
    let cases: Vec<(&str, CallFilter, &str)> = vec![
        (
            "10,000 external ids",
            CallFilter {
                external_ids: (0..10_000).map(|i| format!("id{i}")).collect(),
                ..Default::default()
            },
            "filter.external_ids",
        ),
        (
            "a blank external id",
            CallFilter {
                external_ids: ids(&["ok", " "]),
                ..Default::default()
            },
            "filter.external_ids[1]",
        ),
        (
            "a blank excluded tag",
            CallFilter {
                exclude_tag_ids: ids(&[""]),
                ..Default::default()
            },
            "filter.exclude_tag_ids[0]",
        ),
        (
            "too many excluded levels",
            CallFilter {
                exclude_intent_level_ids: (0..501).map(|i| format!("l{i}")).collect(),
                ..Default::default()
            },
            "filter.exclude_intent_level_ids",
        ),
        (
            "an unknown outcome",
            CallFilter {
                exclude_outcomes: vec![CallOutcome::Busy as i32, 999],
                ..Default::default()
            },
            "filter.exclude_outcomes[1]",
        ),
        (
            "an unspecified outcome",
            CallFilter {
                exclude_outcomes: vec![0],
                ..Default::default()
            },
            "filter.exclude_outcomes[0]",
        ),
        (
            "an empty attribute key",
            CallFilter {
                attributes: attrs(&[("", "x")]),
                ..Default::default()
            },
            "filter.attributes[\"\"]",
        ),
        (
            "an attribute key over the limit",
            CallFilter {
                attributes: attrs(&[(long_key.as_str(), "x")]),
                ..Default::default()
            },
            "",
        ),
    ];
    for (name, filter, field) in cases {
        let err = app
            .calls
            .list_calls(proto::ListCallsRequest {
                filter: Some(filter.clone()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        let fields = bad_fields(&err);
        assert_eq!(fields.len(), 1, "{name}: {fields:?}");
        if field.is_empty() {
            assert!(
                fields[0].starts_with("filter.attributes["),
                "{name}: {fields:?}"
            );
        } else {
            assert_eq!(fields[0], field, "{name}");
        }
        let err = app
            .analytics
            .get_call_stats(GetCallStatsRequest {
                filter: Some(filter),
                top_tags: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "stats, {name}");
    }
}

fn catalog(app: &TestApp) -> CatalogServiceClient<tonic::transport::Channel> {
    CatalogServiceClient::new(app.channel.clone())
}

/// A tag on a smartivr dialogue turn (the vendor's own `record_info`
/// sample) is a tag of the call: tag and group filters, exclusions, by_tag
/// and the catalog see it, the turn keeps it, and a later list row of the
/// call carrying the call's own tags (no turns) does not lose it.
async fn turn_tags_are_call_tags(mut app: TestApp) {
    const TURN_TAG: &str = "4c318fbd-834f-4b41-bfbe-a631e5422812";
    const CALLID: &str = "281db55e-64e8-11e9-9bb2-3564eb72c846";
    let doc = fixture("smartivr/record_info.json");
    let parsed: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(
        parsed["info"]["record"]["callid"], CALLID,
        "the fixture's call"
    );
    assert_eq!(parsed["records"][0]["tags"][0]["id"], TURN_TAG);
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Smartivr as i32,
            records: vec![doc],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.inserted, 1, "{answer:?}");
    let mut other = call("other", "13800138000", "2026-11-01T00:00:00Z");
    other.tags = vec![tag("x", &["gx"])];
    app.upsert(vec![other]).await;

    let check = |label: &'static str| label;
    for (label, filter, want) in [
        (
            "tag_ids",
            CallFilter {
                tag_ids: ids(&[TURN_TAG]),
                ..Default::default()
            },
            vec![CALLID],
        ),
        (
            "tag_group_ids (turn groups number their ids)",
            CallFilter {
                tag_group_ids: ids(&["1"]),
                ..Default::default()
            },
            vec![CALLID],
        ),
        (
            "exclude_tag_ids",
            CallFilter {
                exclude_tag_ids: ids(&[TURN_TAG]),
                ..Default::default()
            },
            vec!["other"],
        ),
    ] {
        assert_eq!(
            app.external_ids(filter).await,
            ids(&want),
            "{}",
            check(label)
        );
    }

    let stats = app
        .analytics
        .get_call_stats(GetCallStatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let by_tag: Vec<(&str, i64)> = stats
        .by_tag
        .iter()
        .map(|e| (e.key.as_str(), e.count))
        .collect();
    assert!(by_tag.contains(&(TURN_TAG, 1)), "{by_tag:?}");
    let named = stats.by_tag.iter().find(|e| e.key == TURN_TAG).unwrap();
    assert_eq!(named.name, "承認(rèn)發(fā)布");

    let got = app
        .calls
        .get_call(GetCallRequest {
            source: Source::Smartivr as i32,
            external_id: CALLID.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let turn_tags: Vec<&str> = got
        .turns
        .iter()
        .flat_map(|t| t.tags.iter().map(|g| g.id.as_str()))
        .collect();
    assert_eq!(turn_tags, vec![TURN_TAG], "the turn keeps its tag");
    let call_tags: Vec<&str> = got.tags.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(call_tags, vec![TURN_TAG], "and the call carries it");
    assert_eq!(
        got.tags[0]
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        vec!["弱意向"]
    );

    let tags = catalog(&app)
        .list_tags(ListTagsRequest {})
        .await
        .unwrap()
        .into_inner();
    let listed = tags
        .tags
        .iter()
        .find(|t| t.id == TURN_TAG)
        .expect("in the catalog");
    assert_eq!(listed.color, "#2DF0D0");
    assert_eq!(listed.groups.len(), 1);
    assert!(
        tags.tag_groups
            .iter()
            .any(|g| g.id == "1" && g.name == "弱意向")
    );

    // A newer list row of the same call with its own tag and no turns:
    // both the row's tag and the turn's count.
    let mut row: serde_json::Value = parsed["info"]["record"].clone();
    row["updated_at"] = "2030-01-01 00:00:00".into();
    row["tags"] = serde_json::json!([{"id": "row-tag", "name": "row", "tag_groups": []}]);
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Smartivr as i32,
            records: vec![row.to_string()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.updated, 1, "{answer:?}");
    for tag_id in [TURN_TAG, "row-tag"] {
        let filter = CallFilter {
            tag_ids: ids(&[tag_id]),
            ..Default::default()
        };
        assert_eq!(app.external_ids(filter).await, ids(&[CALLID]), "{tag_id}");
    }
    // And a row without that tag replaces the row's tags, not the turn's.
    row["updated_at"] = "2030-01-02 00:00:00".into();
    row["tags"] = serde_json::json!([{"id": "row-tag-2", "name": "row 2", "tag_groups": []}]);
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Smartivr as i32,
            records: vec![row.to_string()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.updated, 1, "{answer:?}");
    for (tag_id, want) in [
        (TURN_TAG, vec![CALLID]),
        ("row-tag", vec![]),
        ("row-tag-2", vec![CALLID]),
    ] {
        let filter = CallFilter {
            tag_ids: ids(&[tag_id]),
            ..Default::default()
        };
        assert_eq!(app.external_ids(filter).await, ids(&want), "{tag_id}");
    }
}

/// ListTasks lists every task named anywhere (calls, a dialing list,
/// UpsertTasks, a smartivr `info.task` with its vendor fields), pages, and
/// narrows by name; GetTask's progress matches what was stored.
async fn catalog_lists_tasks_with_their_progress(mut app: TestApp) {
    let mut client = catalog(&app);
    // Calls of task "calls-only": 3 numbers, 4 calls, one number called twice.
    let mut calls = Vec::new();
    for (i, (phone, hour, outcome, level)) in [
        ("13700000001", 1, CallOutcome::NoAnswer, None),
        ("13700000001", 5, CallOutcome::Answered, Some("A")),
        ("13700000002", 2, CallOutcome::Busy, Some("B")),
        ("13700000003", 3, CallOutcome::Answered, Some("A")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = call(&format!("p{i}"), phone, "2026-11-01T00:00:00Z");
        let mut t = ts("2026-11-01T00:00:00Z");
        t.seconds += hour * 3600;
        c.call_time = Some(t);
        c.task_id = "calls-only".into();
        c.outcome = outcome as i32;
        c.intent_level = level.map(|id: &str| proto::IntentLevel {
            id: id.into(),
            name: format!("{id}级"),
            alias: "alias".into(),
            color: "#fff".into(),
        });
        calls.push(c);
    }
    app.upsert(calls).await;
    // A dialing list for the same task (one number not called yet) and one
    // for a task nothing else names.
    for (task, phones) in [
        ("calls-only", vec!["13700000001", "13700000004"]),
        ("list-only", vec!["13900000001"]),
    ] {
        app.ingest
            .upsert_task_numbers(UpsertTaskNumbersRequest {
                task_id: task.into(),
                numbers: phones
                    .into_iter()
                    .map(|p| proto::TaskNumberInput {
                        phone: p.into(),
                        ..Default::default()
                    })
                    .collect(),
            })
            .await
            .unwrap();
    }
    app.ingest
        .upsert_tasks(UpsertTasksRequest {
            tasks: vec![proto::Task {
                task_id: "upserted".into(),
                name: "Spring Campaign".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Smartivr as i32,
            records: vec![fixture("smartivr/record_info.json")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.inserted, 1, "{answer:?}");
    const VENDOR_TASK: &str = "840a4346-d0ac-4800-9c73-3d06275a9158";

    // Every page of one, in task_id order.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_tasks(ListTasksRequest {
                page_size: 1,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.tasks.len() <= 1);
        seen.extend(page.tasks);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let task_ids: Vec<&str> = seen.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(
        task_ids,
        vec![VENDOR_TASK, "calls-only", "list-only", "upserted"]
    );
    let vendor = &seen[0];
    assert_eq!(vendor.name, "教育測(cè)試2");
    assert_eq!(vendor.source, Source::Smartivr as i32);
    assert_eq!(vendor.status, "暫停");
    assert_eq!(vendor.concurrency, 1);
    assert_eq!(vendor.caller, "300708");
    assert_eq!(vendor.script_group, "電銷系統(tǒng)測(cè)試");
    assert!(
        vendor.progress.is_none(),
        "ListTasks leaves progress to GetTask"
    );

    for (text, want) in [
        ("spring", vec!["upserted"]),
        ("CAMPAIGN", vec!["upserted"]),
        ("測(cè)試", vec![VENDOR_TASK]),
        ("%", vec![]),
        ("nothing", vec![]),
    ] {
        let page = client
            .list_tasks(ListTasksRequest {
                name_contains: text.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let got: Vec<&str> = page.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(got, want, "name_contains {text}");
    }
    // A token of another name filter is refused.
    let page = client
        .list_tasks(ListTasksRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_tasks(ListTasksRequest {
            page_size: 1,
            page_token: page.next_page_token,
            name_contains: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), vec!["page_token"]);

    let task = client
        .get_task(GetTaskRequest {
            task_id: "calls-only".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let p = task.progress.expect("progress");
    assert_eq!(p.calls_total, 4);
    assert_eq!(p.calls_answered, 2);
    assert_eq!(p.answer_rate, 0.5);
    assert_eq!(
        p.first_call_time.unwrap().seconds,
        ts("2026-11-01T01:00:00Z").seconds
    );
    assert_eq!(
        p.last_call_time.unwrap().seconds,
        ts("2026-11-01T05:00:00Z").seconds
    );
    // Four numbers: 0001 answered (its latest call), 0002 busy, 0003
    // answered, 0004 waiting.
    assert_eq!(p.numbers_total, 4);
    let statuses: Vec<(&str, i64)> = p
        .numbers_by_status
        .iter()
        .map(|c| (c.key.as_str(), c.count))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("NUMBER_STATUS_WAITING", 1),
            ("NUMBER_STATUS_ANSWERED", 2),
            ("NUMBER_STATUS_BUSY", 1),
        ]
    );
    let levels: Vec<(&str, &str, i64)> = p
        .calls_by_intent_level
        .iter()
        .map(|c| (c.key.as_str(), c.name.as_str(), c.count))
        .collect();
    assert_eq!(
        levels,
        vec![("A", "A级", 2), ("", "none", 1), ("B", "B级", 1)]
    );

    let list_only = client
        .get_task(GetTaskRequest {
            task_id: "list-only".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .progress
        .expect("progress");
    assert_eq!(list_only.numbers_total, 1);
    assert_eq!(list_only.calls_total, 0);
    assert_eq!(list_only.answer_rate, 0.0);
    assert!(list_only.first_call_time.is_none());

    let err = client
        .get_task(GetTaskRequest {
            task_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .get_task(GetTaskRequest {
            task_id: " ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), vec!["task_id"]);

    let levels = client
        .list_intent_levels(ListIntentLevelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .intent_levels;
    let got: Vec<(&str, &str, &str, &str)> = levels
        .iter()
        .map(|l| {
            (
                l.id.as_str(),
                l.name.as_str(),
                l.alias.as_str(),
                l.color.as_str(),
            )
        })
        .collect();
    assert!(got.contains(&("A", "A级", "alias", "#fff")), "{got:?}");
    assert!(got.contains(&("B", "B级", "alias", "#fff")), "{got:?}");
    // The smartivr record's level is in the catalog too.
    assert!(got.iter().any(|l| l.3 == "#000"), "{got:?}");
}

/// A smartivr number-list entry: the request's explicit task beats the
/// task its call history infers; the vendor's own status (11, blacklisted)
/// comes back beside the status derived from the latest call; the raw
/// number text is kept.
async fn vendor_number_lists_keep_their_fields(mut app: TestApp) {
    const INFERRED: &str = "772dd881-dcf7-42ee-a32b-b40a0ee5afb7";
    let entry = fixture("smartivr/number_entry.json");
    let mut value: serde_json::Value = serde_json::from_str(&entry).unwrap();
    value["number"] = "186-5168-3344".into();
    value["status"] = 11.into();
    let entry = value.to_string();
    let import = async |app: &mut TestApp, task_id: &str| {
        app.ingest
            .import_records(ImportRecordsRequest {
                source: Source::Smartivr as i32,
                records: vec![entry.clone()],
                task_id: task_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    };
    let numbers = async |app: &mut TestApp, task_id: &str| {
        app.calls
            .list_task_numbers(proto::ListTaskNumbersRequest {
                task_id: task_id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .numbers
    };
    let answer = import(&mut app, "explicit-task").await;
    assert_eq!(answer.rejected, 0, "{answer:?}");
    assert_eq!(
        answer.inserted, 1,
        "new number and history calls: {answer:?}"
    );
    let listed = numbers(&mut app, "explicit-task").await;
    assert_eq!(listed.len(), 1, "the entry went to the explicit task");
    let n = &listed[0];
    assert_eq!(n.phone, "+8618651683344");
    assert_eq!(n.phone_raw, "186-5168-3344");
    assert_eq!(n.vendor_status_code, Some(11));
    // No call of ours in this task: the list's status stands.
    assert_eq!(n.status_code, 11);
    // The inferred task knows the number from its history calls only.
    let inferred = numbers(&mut app, INFERRED).await;
    assert_eq!(inferred.len(), 1);
    assert_eq!(inferred[0].vendor_status_code, None);
    assert_eq!(inferred[0].phone_raw, "");
    assert_eq!(inferred[0].status_code, 1, "derived from the answered call");

    // Without an explicit task the history's task is used: there the
    // vendor's 11 is kept beside the derived 1. The history calls are
    // known already; the record still stored a number: INSERTED, not
    // UNCHANGED.
    let answer = import(&mut app, "").await;
    assert_eq!(answer.inserted, 1, "{answer:?}");
    assert_eq!(answer.unchanged, 0, "{answer:?}");
    // Sent again: the number is written again (UPDATED).
    let answer = import(&mut app, "").await;
    assert_eq!(answer.updated, 1, "{answer:?}");
    let inferred = numbers(&mut app, INFERRED).await;
    assert_eq!(inferred.len(), 1);
    assert_eq!(inferred[0].status_code, 1);
    assert_eq!(inferred[0].status, proto::NumberStatus::Answered as i32);
    assert_eq!(inferred[0].vendor_status_code, Some(11));
    assert_eq!(inferred[0].phone_raw, "186-5168-3344");
    // The statuses filter uses the derived status.
    let blacklisted = app
        .calls
        .list_task_numbers(proto::ListTaskNumbersRequest {
            task_id: INFERRED.into(),
            statuses: vec![proto::NumberStatus::Blacklisted as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(blacklisted.numbers.is_empty());
}

/// A call's tag groups come back in the order they were first named: the
/// call's own groups as sent, then the groups only its tags name.
async fn tag_groups_keep_first_seen_order(mut app: TestApp) {
    let mut c = call("ordered", "13800138000", "2026-11-01T00:00:00Z");
    c.tag_groups = ["z", "a", "m"]
        .iter()
        .map(|id| proto::TagGroup {
            id: id.to_string(),
            ..Default::default()
        })
        .collect();
    c.tags = vec![tag("t1", &["b", "a"]), tag("t2", &["0"])];
    let stored = app.upsert(vec![c]).await;
    let got = app
        .calls
        .get_call(GetCallRequest {
            call_id: stored.call_ids[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let groups: Vec<&str> = got.tag_groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(groups, vec!["z", "a", "m", "b", "0"]);
}

/// A `carriers` filter accepts the canonical code, a Chinese name (either
/// script, with or without the vendor's pinyin gloss) or an English name, in
/// ListCalls, GetCallStats and ListTaskNumbers; each call says its code and
/// keeps the vendor's text.
async fn carriers_match_by_code_or_any_name(mut app: TestApp) {
    let carriers = [
        ("k1", "联通", "lt"),
        ("k2", "聯(lián)通", "lt"),
        ("k3", "China Unicom", "lt"),
        ("k4", "电信", "dx"),
        ("k5", "移動", "yd"),
        ("k6", "Vodafone", ""),
        ("k7", "", ""),
    ];
    let calls = carriers
        .iter()
        .enumerate()
        .map(|(i, (id, carrier, _))| {
            let mut c = call(id, &format!("1380013800{i}"), "2026-11-01T00:00:00Z");
            c.task_id = "carriers".into();
            c.location = Some(proto::Location {
                carrier: carrier.to_string(),
                ..Default::default()
            });
            c
        })
        .collect();
    app.upsert(calls).await;
    let sorted = |list: Vec<String>| {
        let mut list = list;
        list.sort();
        list
    };
    for (value, want) in [
        ("lt", vec!["k1", "k2", "k3"]),
        ("联通", vec!["k1", "k2", "k3"]),
        ("Unicom", vec!["k1", "k2", "k3"]),
        ("中國聯通", vec!["k1", "k2", "k3"]),
        ("dx", vec!["k4"]),
        ("China Telecom", vec!["k4"]),
        ("China Mobile", vec!["k5"]),
        ("yd", vec!["k5"]),
        ("Vodafone", vec!["k6"]),
        ("unknown", vec![]),
    ] {
        let filter = CallFilter {
            carriers: ids(&[value]),
            ..Default::default()
        };
        assert_eq!(
            sorted(app.external_ids(filter.clone()).await),
            ids(&want),
            "ListCalls {value}"
        );
        let stats = app
            .analytics
            .get_call_stats(GetCallStatsRequest {
                filter: Some(filter),
                top_tags: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stats.total_calls, want.len() as i64, "stats {value}");
        let numbers = app
            .calls
            .list_task_numbers(proto::ListTaskNumbersRequest {
                task_id: "carriers".into(),
                carriers: ids(&[value]),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .numbers;
        assert_eq!(numbers.len(), want.len(), "ListTaskNumbers {value}");
    }
    let page = app
        .calls
        .list_calls(proto::ListCallsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for (id, carrier, code) in carriers {
        let c = page.calls.iter().find(|c| c.external_id == id).unwrap();
        let location = c.location.as_ref().unwrap();
        assert_eq!(location.carrier, carrier, "{id} keeps the vendor's text");
        assert_eq!(location.carrier_code, code, "{id}");
    }
}

/// The LAAFFIC sample's busy status beside its own answer time and talk
/// time: stored answered, the raw status kept, flagged, found by the flag,
/// and counted as answered in the statistics.
async fn a_status_against_its_own_timings_is_flagged(mut app: TestApp) {
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Laaffic as i32,
            records: vec![fixture("laaffic/push.json")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.inserted, 1, "{answer:?}");
    let mut typed = call("plain", "13800138000", "2026-11-01T00:00:00Z");
    typed.outcome = CallOutcome::Busy as i32;
    app.upsert(vec![typed]).await;

    let flagged = CallFilter {
        quality_flags: ids(&["status_contradicts_timings"]),
        ..Default::default()
    };
    let page = app
        .calls
        .list_calls(proto::ListCallsRequest {
            filter: Some(flagged.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.calls.len(), 1);
    let c = &page.calls[0];
    assert_eq!(c.source, Source::Laaffic as i32);
    assert_eq!(c.outcome, CallOutcome::Answered as i32);
    assert_eq!(c.vendor_status, "10");
    assert_eq!(c.quality_flags, vec!["status_contradicts_timings"]);
    assert_eq!(c.talk_ms, 13_000);

    let stats = app
        .analytics
        .get_call_stats(GetCallStatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stats.total_calls, stats.answered_calls), (2, 1));
    assert_eq!(stats.talk_ms_total, 13_000);

    let err = app
        .calls
        .list_calls(proto::ListCallsRequest {
            filter: Some(CallFilter {
                quality_flags: ids(&["no_such_flag"]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), vec!["filter.quality_flags[0]"]);
}

/// A number list's call history of a call stored from its full record
/// fills what the record lacks (the SIP code, `call_status`), and changes
/// nothing the record has.
async fn call_history_fills_what_a_stored_call_lacks(mut app: TestApp) {
    const CALLID: &str = "90a48ed3-a5f6-4904-b1f3-a9ec883b069f";
    let mut record: serde_json::Value =
        serde_json::from_str(&fixture("smartivr/call_record.json")).unwrap();
    record["callid"] = CALLID.into();
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Smartivr as i32,
            records: vec![record.to_string()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.inserted, 1, "{answer:?}");
    let get = async |app: &mut TestApp| {
        app.calls
            .get_call(GetCallRequest {
                source: Source::Smartivr as i32,
                external_id: CALLID.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    };
    let before = get(&mut app).await;
    assert_eq!(before.sip_code, "");
    assert!(!before.attributes.contains_key("call_status"));

    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Smartivr as i32,
            records: vec![fixture("smartivr/number_entry.json")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.rejected, 0, "{answer:?}");
    let after = get(&mut app).await;
    assert_eq!(after.call_id, before.call_id);
    assert_eq!(after.sip_code, "200", "hangup_code of the history");
    assert_eq!(after.attributes["call_status"], "answer");
    // What the record had stays the record's.
    assert_eq!(after.vendor_status, before.vendor_status);
    assert_eq!(after.hangup_cause, before.hangup_cause);
    assert_eq!(after.recording_url, before.recording_url);
    assert_eq!(after.task_id, before.task_id);
    assert_eq!(after.talk_ms, before.talk_ms);
    assert_eq!(
        after.attributes["record_id"],
        before.attributes["record_id"]
    );
    assert!(after.sync_time.unwrap().seconds >= before.sync_time.unwrap().seconds);
}

crate::backend_tests!(
    call_history_fills_what_a_stored_call_lacks,
    a_status_against_its_own_timings_is_flagged,
    carriers_match_by_code_or_any_name,
    vendor_number_lists_keep_their_fields,
    tag_groups_keep_first_seen_order,
    exclusions_attributes_and_ids_match_the_model,
    a_call_is_found_by_the_vendors_ids,
    bad_read_side_filters_name_their_field,
    turn_tags_are_call_tags,
    catalog_lists_tasks_with_their_progress,
);
