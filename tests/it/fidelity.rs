//! Vendor fidelity across views and over time: partial views of one call
//! merge, money keeps the vendor's digits and its currency, names stay as
//! they were sent with each call, and every documented field comes back.

use std::collections::{BTreeMap, BTreeSet};

use crate::helpers::TestApp;
use callscope::proto::{self, CallFilter, GetCallRequest, ImportRecordsRequest, Source};
use serde_json::{Value, json};

async fn import(app: &mut TestApp, source: Source, doc: &Value) -> proto::ImportRecordsResponse {
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: source as i32,
            records: vec![doc.to_string()],
            ..Default::default()
        })
        .await
        .expect("import records")
        .into_inner();
    assert_eq!(answer.rejected, 0, "{answer:?}");
    answer
}

async fn import_text(
    app: &mut TestApp,
    source: Source,
    text: &str,
) -> proto::ImportRecordsResponse {
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: source as i32,
            records: vec![text.to_owned()],
            ..Default::default()
        })
        .await
        .expect("import records")
        .into_inner();
    assert_eq!(answer.rejected, 0, "{answer:?}");
    answer
}

async fn get(app: &mut TestApp, source: Source, external_id: &str) -> proto::Call {
    app.calls
        .get_call(GetCallRequest {
            source: source as i32,
            external_id: external_id.to_owned(),
            include_progress_turns: true,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("get {external_id}: {e}"))
        .into_inner()
}

// ---------------------------------------------------------------------------
// 1. Partial views of one smartivr call merge.

/// The four smartivr views of one call, each as the vendor's document, with
/// the same `updated_at`: a `query_done_task_phones` row, the brief
/// `v1/record/{id}`, `record_info`, and the number list's history.
fn smartivr_views(callid: &str, record_id: &str) -> Vec<(&'static str, Value)> {
    let updated = "2020-03-06 23:05:14";
    let level = json!({"id": "lvl-d", "name": "D級", "alias": "無意向", "color": "#000"});
    let group = json!({"id": "grp-no", "user_id": "u-1", "name": "無意向",
        "created_at": "2020-03-06 21:54:58", "updated_at": "2020-03-06 21:54:58",
        "tag_scene_id": "scene-1"});
    let row = json!({
        "tags": [{"id": "tag-swear", "name": "臟話", "description": "臟話", "color": "#2d8cf0",
            "user_id": "u-1", "status": true, "created_at": "2020-03-06 21:55:56",
            "updated_at": "2020-03-06 21:55:56",
            "pivot": {"taggable_id": record_id, "tag_id": "tag-swear",
                "created_at": "2020-03-06 22:32:37", "updated_at": "2020-03-06 22:32:37"},
            "tag_groups": [group.clone()]}],
        "tag_groups": [{"id": "grp-yes", "user_id": "u-1", "name": "有意向",
            "created_at": "2020-03-06 21:54:51", "updated_at": "2020-03-06 21:54:51",
            "tag_scene_id": "scene-1"}, group.clone()],
        "operator_name": "聯通",
        "id": record_id,
        "task_id": "task-merge",
        "group_id": 299,
        "callid": callid,
        "score": 50,
        "callee": "18651683344",
        "caller_number": "17361984317",
        "duration": 35639,
        "error_code": 0,
        "gender": 1,
        "level_id": "lvl-d",
        "calldate": "2020-03-06 23:04:37",
        "bill": 26638,
        "hangupcause": "NORMAL_CLEARING",
        "hangupdate": "2020-03-06 23:05:12",
        "answerdate": "2020-03-06 23:04:46",
        "recordfile": format!("/mnt/rec/{callid}.wav"),
        "bridge_callid": null, "bridge_number": null, "bridge_calldate": null,
        "bridge_answerdate": null,
        "hangup_disposition": 1,
        "created_at": "2020-03-06 23:05:13",
        "updated_at": updated,
        "rounds": 2,
        "level_name": "D級(無意向)",
        "bredge_number": null,
        "read_at": "2020-03-07 09:00:00",
        "province_id": 3,
        "city_id": 12,
        "operator": 2,
        "level": level.clone(),
        "gender_str": "女",
        "hangup_disposition_str": "AI",
        "city": {"id": 12, "pid": 3, "city": "南京", "area_code": "025", "post_code": "210000",
            "created_at": "2019-05-09 09:08:45", "updated_at": "2019-05-09 09:08:45"},
        "province": {"id": 3, "pid": null, "city": "江蘇", "area_code": "0519",
            "post_code": "213000", "created_at": "2019-05-09 09:08:45",
            "updated_at": "2019-05-09 09:08:45"},
    });
    let mut brief = row.clone();
    let b = brief.as_object_mut().unwrap();
    for key in [
        "tags",
        "tag_groups",
        "operator_name",
        "level",
        "city",
        "province",
    ] {
        b.remove(key);
    }
    let mut record = row.clone();
    let r = record.as_object_mut().unwrap();
    for key in [
        "tags",
        "tag_groups",
        "operator_name",
        "read_at",
        "province_id",
        "city_id",
        "operator",
        "city",
        "province",
    ] {
        r.remove(key);
    }
    r.insert(
        "crm_number".into(),
        json!({"id": "crm-1", "user_id": "u-1", "number": "18651683344", "deleted_at": null,
            "created_at": "2019-04-10 19:24:05", "updated_at": "2019-04-10 19:24:05"}),
    );
    let turn = |seq: i64, notify: &str, question: &str, answer: Option<&str>, tags: Value| {
        json!({"id": format!("turn-{seq}-{callid}"), "record_id": record_id,
            "task_id": "task-merge", "notify": notify, "callid": callid, "error_code": 0,
            "asrtype": null, "callee": "18651683344", "gender": null, "asr_elapse": 400 + seq,
            "record_ms": null, "volume_gain": null, "question": question, "question_index": seq,
            "speak_ms": 100 * seq, "play_ms": 200 * seq, "keyword": "",
            "answer_id": answer.map(|_| format!("node-{seq}")), "answer_text": answer.map(|_| format!("流程{seq}")),
            "word_class": "16", "score": 0, "sequence": seq,
            "created_at": "2020-03-06 23:04:47", "updated_at": "2020-03-06 23:04:47",
            "bridge_status": null, "answer_content": answer, "contents": [], "tags": tags})
    };
    let info = json!({
        "records": [
            turn(1, "enter", "", Some("您好"), json!([])),
            turn(2, "asrmessage_notify", "嗯", None, json!([{"id": "tag-admit", "name": "承認",
                "description": "承認", "color": "#2DF0D0", "user_id": "u-1", "status": true,
                "created_at": "2020-01-16 11:07:13", "updated_at": "2020-01-17 11:13:46",
                "pivot": {"taggable_id": "p-1", "tag_id": "tag-admit",
                    "created_at": "2020-02-16 12:21:17", "updated_at": "2020-02-16 12:21:17"},
                "tag_group": [{"id": 1, "user_id": "u-1", "name": "弱意向",
                    "created_at": "2019-12-17 21:14:57", "updated_at": "2019-12-17 21:14:57",
                    "tag_scene_id": "scene-1"}]}])),
        ],
        "is_intervene_bridge": false,
        "is_intervene_hangup": false,
        "intervene_number": [{"id": 2, "name": "羅文龍", "number": "18651683***"}],
        "is_crm_exists": true,
        "info": {"record": record, "task": {"uuid": "task-merge", "name": "教育測試",
            "create_datetime": "2018-12-20 16:43:21", "alter_datetime": "2019-05-15 19:25:06",
            "start": 0, "maximumcall": 1, "start_str": "暫停", "group_str": "電銷",
            "group": {"id": 299, "name": "電銷"}}},
        "mobile_info": {"mobile_type": "聯通", "province": "江蘇", "city": "南京"},
        "utterances": [{"id": "node-1", "name": "流程1", "description": "開場白"}],
    });
    let numbers = json!({
        "code": 200, "status": "ok", "message": "獲取號碼列表成功",
        "data": {"data": [{
            "number": "18651683344", "city": "南京", "pro": "江蘇", "mobile_type": "聯通",
            "area_code": "025", "post_code": "210000", "id": 1691, "status_str": "呼叫成功",
            "callid": callid, "calldate": "2020-03-06 23:04:37", "bill": 26638,
            "duration": 35639, "hangupcause": "NORMAL_CLEARING",
            "hangupdate": "2020-03-06 23:05:12", "answerdate": "2020-03-06 23:04:46",
            "is_blacklist": false, "status": 1,
            "call_history": [{
                "id": 356036, "user_id": "u-1", "task_id": "task-merge", "call_id": callid,
                "number_id": 1691, "number": "18651683344",
                "call_time": "2020-03-06 23:04:37", "duration": 35639,
                "hangup_cause": "NORMAL_CLEARING", "hangup_code": "200", "bill": 26638,
                "call_status": "answer", "status": 1,
                "record_file": format!("/mnt/rec/{callid}.wav"),
                "calling_number": "17361984317", "province_id": 3, "city_id": 12,
                "operator": 2, "created_at": "2020-03-06 23:05:14", "updated_at": updated,
                "status_str": "呼叫成功"}]
        }], "total": 1, "last_page": 1}
    });
    vec![
        ("row", json!({"data": [row], "total": 1, "last_page": 1})),
        (
            "brief",
            json!({"code": 200, "status": "ok", "message": "獲取任務信息成功", "data": brief}),
        ),
        ("record_info", info),
        ("history", numbers),
    ]
}

/// A call as flat `path → value` leaves (nested messages and attributes
/// key by key; other lists whole), without what callscope assigns (its id,
/// sync time) and with the scenario's ids replaced, so calls of different
/// scenarios compare. Empty values are absent (proto JSON leaves them out).
/// Tags and tag groups are sets of ids: the order of the call's own and its
/// turns' tags is asserted elsewhere.
fn flatten(call: &proto::Call, ids: &[(&str, &str)]) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut value = serde_json::to_value(call).unwrap();
    let map = value.as_object_mut().unwrap();
    map.remove("callId");
    map.remove("syncTime");
    let mut sets = BTreeMap::new();
    for key in ["tags", "tagGroups"] {
        if let Some(Value::Array(items)) = map.remove(key) {
            let ids: BTreeSet<String> = items
                .iter()
                .map(|t| t["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            sets.insert(key.to_owned(), format!("{ids:?}"));
        }
    }
    let mut out = BTreeMap::new();
    walk("", &value, &mut out);
    out.extend(sets);
    out.into_iter()
        .map(|(k, mut v)| {
            for (from, to) in ids {
                v = v.replace(from, to);
            }
            (k, v)
        })
        .collect()
}

/// Every ordered pair of smartivr views of one call (same `updated_at`):
/// the merged call holds, field by field, what the second view carries and,
/// for what it does not carry, what the first one did. The dialing list's
/// history only ever fills what the call lacks. The independent model is
/// each view imported alone and read back.
async fn smartivr_views_of_one_call_merge_in_either_order(mut app: TestApp) {
    let names = ["row", "brief", "record_info", "history"];
    let placeholders = |callid: &str, record: &str| -> Vec<(String, String)> {
        vec![
            (callid.to_owned(), "CALLID".to_owned()),
            (record.to_owned(), "RECORDID".to_owned()),
        ]
    };
    // Each view alone.
    let mut alone: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let (callid, record) = (format!("alone-{i}-call"), format!("alone-{i}-rec"));
        let doc = smartivr_views(&callid, &record)[i].1.clone();
        import(&mut app, Source::Smartivr, &doc).await;
        let call = get(&mut app, Source::Smartivr, &callid).await;
        let ids = placeholders(&callid, &record);
        let ids: Vec<(&str, &str)> = ids.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        alone.insert(name, flatten(&call, &ids));
    }
    // The fields the issue names survive a record_info after a row.
    for key in [
        "attributes.read_at",
        "attributes.province_id",
        "attributes.city_id",
        "attributes.operator",
        "attributes.city",
        "attributes.province",
        "attributes.tags",
        "location.areaCode",
        "location.postCode",
    ] {
        assert!(alone["row"].contains_key(key), "row carries {key}");
        assert!(
            !alone["record_info"].contains_key(key),
            "record_info lacks {key}"
        );
    }

    for (a, first) in names.iter().enumerate() {
        for (b, second) in names.iter().enumerate() {
            if a == b {
                continue;
            }
            let (callid, record) = (format!("pair-{a}-{b}-call"), format!("pair-{a}-{b}-rec"));
            let views = smartivr_views(&callid, &record);
            import(&mut app, Source::Smartivr, &views[a].1).await;
            let answer = import(&mut app, Source::Smartivr, &views[b].1).await;
            let call = get(&mut app, Source::Smartivr, &callid).await;
            let ids = placeholders(&callid, &record);
            let ids: Vec<(&str, &str)> =
                ids.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let got = flatten(&call, &ids);

            // The model: a record view replaces what it carries; the
            // history fills only what is missing.
            let mut want = alone[first].clone();
            for (key, value) in &alone[*second] {
                if *second == "history" {
                    want.entry(key.clone()).or_insert_with(|| value.clone());
                } else {
                    want.insert(key.clone(), value.clone());
                }
            }
            // Tags of the call and of its turns are the union of both views.
            for key in ["tags", "tagGroups"] {
                let union: BTreeSet<String> = [first, second]
                    .iter()
                    .filter_map(|v| alone[**v].get(key))
                    .flat_map(|s| {
                        s.trim_matches(|c| c == '{' || c == '}')
                            .split(", ")
                            .filter(|x| !x.is_empty())
                            .map(|x| x.trim_matches('"').to_owned())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                if !union.is_empty() {
                    want.insert(key.to_owned(), format!("{union:?}"));
                }
            }
            let keys: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
            for key in keys {
                assert_eq!(
                    got.get(key),
                    want.get(key),
                    "{first} then {second}: field {key}"
                );
            }
            if *second != "history" {
                let changed = want != alone[first];
                assert_eq!(
                    (answer.updated, answer.unchanged),
                    (i32::from(changed), i32::from(!changed)),
                    "{first} then {second}: {answer:?}"
                );
                // The same view again changes nothing.
                let again = import(&mut app, Source::Smartivr, &views[b].1).await;
                assert_eq!(again.unchanged, 1, "{first} then {second} again: {again:?}");
            }
        }
    }
}

/// An older view (an earlier `updated_at`) fills what the call lacks but
/// replaces nothing; a newer one replaces what it carries and keeps the rest.
async fn an_older_view_only_fills_and_a_newer_one_replaces(mut app: TestApp) {
    let views = smartivr_views("age-call", "age-rec");
    let mut newer_info = views[2].1.clone();
    newer_info["info"]["record"]["updated_at"] = "2020-03-08 10:00:00".into();
    newer_info["info"]["record"]["score"] = 90.into();
    import(&mut app, Source::Smartivr, &newer_info).await;
    // The row is older: its score (50) loses, its read_at and location fill.
    let answer = import(&mut app, Source::Smartivr, &views[0].1).await;
    assert_eq!(answer.updated, 1, "{answer:?}");
    let call = get(&mut app, Source::Smartivr, "age-call").await;
    assert_eq!(call.score, Some(90));
    assert_eq!(call.attributes["read_at"], "2020-03-07 09:00:00");
    let location = call.location.clone().unwrap();
    assert_eq!(
        (location.area_code.as_str(), location.post_code.as_str()),
        ("025", "210000")
    );
    assert_eq!(call.turns.len(), 2);
    assert_eq!(
        call.update_time,
        Some(crate::helpers::ts("2020-03-08T02:00:00Z"))
    );
    // A newer row replaces the score and keeps the turns.
    let mut newer_row = views[0].1.clone();
    newer_row["data"][0]["updated_at"] = "2020-03-09 10:00:00".into();
    newer_row["data"][0]["score"] = 95.into();
    import(&mut app, Source::Smartivr, &newer_row).await;
    let call = get(&mut app, Source::Smartivr, "age-call").await;
    assert_eq!(call.score, Some(95));
    assert_eq!(call.turns.len(), 2);
    assert!(call.attributes["crm_number"].contains("crm-1"));
}

/// Two views of one call sent at the same moment by two clients (on
/// PostgreSQL, two transactions at once): whichever commits first, the call
/// ends up with what each view alone carries.
async fn concurrent_views_of_one_call_both_survive(app: TestApp) {
    for i in 0..12 {
        let (callid, record) = (format!("race-{i}"), format!("race-{i}-rec"));
        let views = smartivr_views(&callid, &record);
        let send = |doc: Value| {
            let mut client = app.ingest.clone();
            async move {
                client
                    .import_records(ImportRecordsRequest {
                        source: Source::Smartivr as i32,
                        records: vec![doc.to_string()],
                        ..Default::default()
                    })
                    .await
                    .expect("import")
                    .into_inner()
            }
        };
        let (a, b) = tokio::join!(send(views[0].1.clone()), send(views[2].1.clone()));
        assert_eq!(a.inserted + b.inserted, 1, "{a:?} {b:?}");
        let mut app_calls = app.calls.clone();
        let call = app_calls
            .get_call(GetCallRequest {
                source: Source::Smartivr as i32,
                external_id: callid.clone(),
                include_progress_turns: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        // The row's own fields and the record's own fields are both there.
        assert_eq!(call.attributes["read_at"], "2020-03-07 09:00:00", "{i}");
        assert!(call.attributes.contains_key("crm_number"), "{i}");
        assert_eq!(call.turns.len(), 2, "{i}");
        assert!(call.tags.iter().any(|t| t.id == "tag-swear"), "{i}");
        assert!(call.tags.iter().any(|t| t.id == "tag-admit"), "{i}");
    }
}

// ---------------------------------------------------------------------------
// 2-3. Money keeps the vendor's digits, and each amount its currency.

/// The digits an `f64` would change, sent as JSON numbers (not text) in
/// every money field of a LAAFFIC push, come back exactly; so do such
/// numbers kept raw in attributes (smartivr turn `volume_gain`, Alibaba
/// `properties`).
async fn money_sent_as_json_numbers_keeps_the_vendors_digits(mut app: TestApp) {
    let exact = ["0.031250", "12345678.123456789"];
    for (n, digits) in exact.iter().enumerate() {
        let push = format!(
            r#"{{"voiceId": "money-{n}", "callee": "63123456788", "callTime": 1670939568000,
            "rate": {digits}, "baseCost": {digits}, "cost": {digits}, "settleRate": {digits},
            "settlePay": {digits}, "quoteExchange": {digits}, "currency": "EUR",
            "calledInfo": {digits}}}"#
        );
        import_text(&mut app, Source::Laaffic, &push).await;
        let call = get(&mut app, Source::Laaffic, &format!("money-{n}")).await;
        let b = call.billing.clone().unwrap();
        for (field, got) in [
            ("rate", &b.rate),
            ("base_cost", &b.base_cost),
            ("cost", &b.cost),
            ("settle_rate", &b.settle_rate),
            ("settle_cost", &b.settle_cost),
            ("quote_exchange", &b.quote_exchange),
            ("attributes.calledInfo", &call.attributes["calledInfo"]),
        ] {
            assert_eq!(got, digits, "{field}");
        }
        // And through the JSON API as well as gRPC: the digits are text.
        let response = reqwest::Client::new()
            .post(format!(
                "http://{}/callscope.v1.CallService/GetCall",
                app.http_addr
            ))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"source": "SOURCE_LAAFFIC", "externalId": "money-{n}"}}"#
            ))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 200);
        let body = response.text().await.unwrap();
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["billing"]["cost"], *digits, "{body}");
    }

    let mut info = smartivr_views("digits-call", "digits-rec")[2].1.clone();
    info["records"][1]["volume_gain"] = json!(null);
    let text = info.to_string().replace(
        r#""volume_gain":null"#,
        r#""volume_gain":12345678.123456789"#,
    );
    import_text(&mut app, Source::Smartivr, &text).await;
    let call = get(&mut app, Source::Smartivr, "digits-call").await;
    assert_eq!(
        call.turns[1].attributes["volume_gain"],
        "12345678.123456789"
    );

    let alibaba = r#"{"ivr_call_record_d_t_o": {"call_record_id": 77, "called_phone_number": "13800001111",
        "start_time": "2024-01-01 10:00:00",
        "properties": "{\"amount\": 0.031250, \"nested\": {\"x\": 12345678.123456789}}"}}"#;
    import_text(&mut app, Source::AlibabaLvms, alibaba).await;
    let call = get(&mut app, Source::AlibabaLvms, "77").await;
    assert_eq!(call.attributes["properties.amount"], "0.031250");
    assert_eq!(
        call.attributes["properties.nested"],
        r#"{"x":12345678.123456789}"#
    );
}

/// LAAFFIC's `baseCost` is in USD, `rate` and `cost` in the quote currency:
/// each amount says its currency, and the cost totals of GetCallStats sum
/// `cost` per currency, never a base cost into another currency's total.
async fn each_amount_carries_its_currency(mut app: TestApp) {
    let eur = r#"{"voiceId": "cur-eur", "callee": "63123456788", "callTime": 1670939568000,
        "rate": "0.5", "baseCost": "0.25", "cost": "1.5", "currency": "EUR",
        "settleRate": "0.6", "settlePay": "1.7", "quoteExchange": "0.938"}"#;
    let usd = r#"{"voiceId": "cur-usd", "callee": "63123456789", "callTime": 1670939568000,
        "rate": "0.7", "baseCost": "0.125", "cost": "2"}"#;
    import_text(&mut app, Source::Laaffic, eur).await;
    import_text(&mut app, Source::Laaffic, usd).await;
    let b = get(&mut app, Source::Laaffic, "cur-eur")
        .await
        .billing
        .unwrap();
    assert_eq!(
        (
            b.currency.as_str(),
            b.base_cost_currency.as_str(),
            b.settle_currency.as_str()
        ),
        ("EUR", "USD", "USD")
    );
    let b = get(&mut app, Source::Laaffic, "cur-usd")
        .await
        .billing
        .unwrap();
    assert_eq!(
        (
            b.currency.as_str(),
            b.base_cost_currency.as_str(),
            b.settle_currency.as_str()
        ),
        ("USD", "USD", "")
    );
    let stats = app
        .analytics
        .get_call_stats(proto::GetCallStatsRequest {
            filter: Some(CallFilter {
                sources: vec![Source::Laaffic as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let totals: Vec<(String, String)> = stats
        .cost_totals
        .into_iter()
        .map(|t| (t.currency, t.amount))
        .collect();
    assert_eq!(
        totals,
        [
            ("EUR".to_owned(), "1.5".to_owned()),
            ("USD".to_owned(), "2".to_owned())
        ]
    );
    // A typed call is held to ISO codes for the new currencies too.
    let mut bad = crate::helpers::call("cur-bad", "13800001111", "2024-01-01T00:00:00Z");
    bad.billing = Some(proto::Billing {
        base_cost: "1".into(),
        base_cost_currency: "dollars".into(),
        ..Default::default()
    });
    let err = app
        .ingest
        .upsert_calls(proto::UpsertCallsRequest { calls: vec![bad] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        crate::helpers::bad_fields(&err)
            .iter()
            .any(|f| f.ends_with("billing.base_cost_currency")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// 5. Names as they were sent with each call.

/// A later record renaming a tag, its group and an intent level changes the
/// catalog (which serves the latest), not what an older call answers; a tag
/// that gains a group later does not gain it on the older call.
async fn a_later_rename_does_not_change_an_older_call(mut app: TestApp) {
    let views = |callid: &str, tag_name: &str, group: Value, level_name: &str| {
        let mut row = smartivr_views(callid, &format!("{callid}-rec"))[0]
            .1
            .clone();
        let r = &mut row["data"][0];
        r["tags"] = json!([{"id": "tag-x", "name": tag_name, "color": format!("#{tag_name}"),
            "tag_groups": group}]);
        r["tag_groups"] = json!([]);
        r["level"] = json!({"id": "lvl-x", "name": level_name, "alias": level_name,
            "color": "#111"});
        row
    };
    import(
        &mut app,
        Source::Smartivr,
        &views("old-call", "old", json!([]), "Old"),
    )
    .await;
    import(
        &mut app,
        Source::Smartivr,
        &views(
            "new-call",
            "new",
            json!([{"id": "grp-late", "name": "Late", "tag_scene_id": "s"}]),
            "New",
        ),
    )
    .await;

    let old = get(&mut app, Source::Smartivr, "old-call").await;
    assert_eq!(
        (
            old.tags[0].name.as_str(),
            old.tags[0].color.as_str(),
            old.tags[0].groups.len()
        ),
        ("old", "#old", 0)
    );
    let level = old.intent_level.clone().unwrap();
    assert_eq!((level.name.as_str(), level.alias.as_str()), ("Old", "Old"));
    let new = get(&mut app, Source::Smartivr, "new-call").await;
    assert_eq!(new.tags[0].name, "new");
    assert_eq!(new.tags[0].groups[0].name, "Late");
    assert_eq!(new.intent_level.unwrap().name, "New");

    // The listing answers the same as GetCall.
    let page = app
        .calls
        .list_calls(proto::ListCallsRequest {
            filter: Some(CallFilter {
                tag_ids: vec!["tag-x".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: BTreeMap<String, String> = page
        .calls
        .iter()
        .map(|c| (c.external_id.clone(), c.tags[0].name.clone()))
        .collect();
    assert_eq!(names["old-call"], "old");
    assert_eq!(names["new-call"], "new");
    // The group filter sees the group only on the call that was sent with it.
    let in_group = app
        .external_ids(CallFilter {
            tag_group_ids: vec!["grp-late".into()],
            ..Default::default()
        })
        .await;
    assert_eq!(in_group, ["new-call"]);

    // The catalog serves the latest names.
    let mut catalog = proto::catalog_service_client::CatalogServiceClient::new(app.channel.clone());
    let tags = catalog
        .list_tags(proto::ListTagsRequest {})
        .await
        .unwrap()
        .into_inner();
    let tag = tags.tags.iter().find(|t| t.id == "tag-x").unwrap();
    assert_eq!(tag.name, "new");
    let levels = catalog
        .list_intent_levels(proto::ListIntentLevelsRequest {})
        .await
        .unwrap()
        .into_inner();
    let level = levels
        .intent_levels
        .iter()
        .find(|l| l.id == "lvl-x")
        .unwrap();
    assert_eq!(level.name, "New");
}

/// Alibaba's `intent_level_code` is per robot job: code 2 of job 10 and
/// code 2 of job 20 are two levels, each with its own name.
async fn alibaba_level_codes_are_scoped_by_their_job(mut app: TestApp) {
    for (id, job, name) in [(1, 10, "job10-two"), (2, 20, "job20-two")] {
        let record = json!({"ivr_call_record_d_t_o": {"call_record_id": id,
            "robot_call_job_id": job, "called_phone_number": "13800001111",
            "start_time": "2024-01-01 10:00:00", "intent_level_code": 2,
            "intent_level_detail_name": name}});
        import(&mut app, Source::AlibabaLvms, &record).await;
    }
    let first = get(&mut app, Source::AlibabaLvms, "1").await;
    let second = get(&mut app, Source::AlibabaLvms, "2").await;
    let level = |c: &proto::Call| {
        let l = c.intent_level.clone().unwrap();
        (l.id, l.name)
    };
    assert_eq!(level(&first), ("10/2".to_owned(), "job10-two".to_owned()));
    assert_eq!(level(&second), ("20/2".to_owned(), "job20-two".to_owned()));
    assert_eq!(first.attributes["intent_level_code"], "2");
    let only_job10 = app
        .external_ids(CallFilter {
            intent_level_ids: vec!["10/2".into()],
            ..Default::default()
        })
        .await;
    assert_eq!(only_job10, ["1"]);
}

// ---------------------------------------------------------------------------
// 6. Every documented field comes back.

/// Every text a read-back answer holds: leaves of its proto JSON, leaves of
/// raw JSON kept in attributes, and each timestamp as epoch milliseconds.
fn universe(answers: &[Value]) -> BTreeSet<String> {
    fn walk(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::String(s) => {
                out.insert(s.clone());
                if let Ok(inner) = serde_json::from_str::<Value>(s)
                    && (inner.is_object() || inner.is_array())
                {
                    walk(&inner, out);
                }
                if let Ok(t) = s.parse::<jiff::Timestamp>() {
                    out.insert(t.as_millisecond().to_string());
                }
            }
            Value::Number(n) => {
                out.insert(n.to_string());
            }
            Value::Bool(b) => {
                out.insert(b.to_string());
            }
            Value::Null => {}
        }
    }
    let mut out = BTreeSet::new();
    answers.iter().for_each(|a| walk(a, &mut out));
    out
}

/// Asserts that every scalar of `doc` (but the `skipped` paths, which the
/// docs say are not call data) comes back in `answers`: as its text, as
/// epoch ms for a local `yyyy-MM-dd HH:mm:ss` time, or in ms for a field in
/// `seconds`. Fields whose code becomes an enum (`coded`, by key; their
/// values are asserted by the caller) are not looked for as text. Answers
/// the paths checked.
fn assert_every_field_comes_back(
    what: &str,
    doc: &Value,
    answers: &[Value],
    skipped: &[&str],
    seconds: &[&str],
) -> usize {
    every_field_but_coded(what, doc, answers, skipped, seconds, &[])
}

fn every_field_but_coded(
    what: &str,
    doc: &Value,
    answers: &[Value],
    skipped: &[&str],
    seconds: &[&str],
    coded: &[&str],
) -> usize {
    fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&path, v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    leaves(&format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            other => out.push((prefix.to_owned(), other.clone())),
        }
    }
    let found = universe(answers);
    let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let mut all = Vec::new();
    leaves("", doc, &mut all);
    let mut checked = 0;
    for (path, value) in all {
        if skipped.contains(&path.as_str()) {
            continue;
        }
        let key = path.rsplit('.').next().unwrap_or(&path);
        if coded.contains(&key) {
            continue;
        }
        let text = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut forms = vec![text.clone()];
        if let Ok(local) = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", &text)
            && let Ok(zoned) = local.to_zoned(shanghai.clone())
        {
            forms.push(zoned.timestamp().as_millisecond().to_string());
        }
        if seconds.contains(&key)
            && let Ok(n) = text.parse::<i64>()
        {
            forms.push((n * 1000).to_string());
        }
        assert!(
            forms.iter().any(|f| found.contains(f)),
            "{what}: `{path}` = {text} is not in the answer"
        );
        checked += 1;
    }
    checked
}

/// Every documented field of each vendor's documents, each with a distinct
/// value, comes back through the API (GetCall, GetTask, ListTaskNumbers):
/// nothing is dropped silently. Enum-coded fields are asserted by value.
async fn every_documented_field_comes_back(mut app: TestApp) {
    let json_of = |call: &proto::Call| serde_json::to_value(call).unwrap();

    // LAAFFIC (000): every field of the table and the sample's `costEur`.
    let laaffic = json!({
        "voiceId": "rt-voice-1", "type": 3, "callee": "63912345001",
        "displayNum": "63912345002", "submitTime": 1700000001111_i64,
        "callTime": 1700000002222_i64, "ringingTime": 1700000003333_i64,
        "answerTime": 1700000004444_i64, "hangupTime": 1700000065555_i64,
        "callDuration": 61, "chargedDuration": 80, "billPeriod": "30+6",
        "code": "India(Goa)", "voiceFileId": "vf-rt.mp3", "recordingFileId": "rec-rt.wav",
        "rate": "0.0271", "baseCost": "0.0133", "cost": "0.0999", "costEur": "0.0888",
        "terminationCode": "17", "terminationReason": "Callee hung up rt", "sipCode": "202",
        "feedbackValue": "9", "calledInfo": "info-rt", "ringDuration": 7, "currency": "EUR",
        "settleRate": "1.4441", "quoteExchange": "0.9312", "settlePay": "1.5552",
        "outRecallCount": 23, "taskId": 4101, "sourceTaskId": 4102, "scriptId": 4103,
        "intent": "MAYBE-rt", "dimensionId": 4104, "callStatus": 50,
        "recallByVoiceId": "rt-voice-0"
    });
    import(&mut app, Source::Laaffic, &laaffic).await;
    let call = get(&mut app, Source::Laaffic, "rt-voice-1").await;
    assert_eq!(call.outcome(), proto::CallOutcome::Answered);
    assert!(call.quality_flags.is_empty());
    let n = assert_every_field_comes_back(
        "laaffic",
        &laaffic,
        &[json_of(&call)],
        &[],
        &["callDuration", "chargedDuration", "ringDuration"],
    );
    assert_eq!(n, 37, "the 36 documented fields and `costEur`");

    // Alibaba LVMS (001): the request with every record field.
    let alibaba = json!({"rpc_context": {"trace": "rt-trace"}, "ivr_call_record_d_t_o": {
        "call_record_id": 5101, "robot_call_job_id": 5102,
        "called_phone_number": "13912345003", "result_status": "关机",
        "full_audio_url": "https://example.com/rt.wav", "chat_duration": 47,
        "start_time": "2024-02-03 04:05:06", "end_time": "2024-02-03 04:06:07",
        "name": "李四rt", "properties": "{\"crm\":\"rt-crm\"}",
        "intent_level_detail_name": "B级rt", "tenant_phone_number_id": 5103,
        "phone_number": "02512345678", "intent_level_code": 5104,
        "intent_level_tag_id": 5105}});
    import(&mut app, Source::AlibabaLvms, &alibaba).await;
    let call = get(&mut app, Source::AlibabaLvms, "5101").await;
    assert_eq!(call.outcome(), proto::CallOutcome::PoweredOff);
    let n = assert_every_field_comes_back(
        "alibaba",
        &alibaba,
        &[json_of(&call)],
        &[],
        &["chat_duration"],
    );
    assert_eq!(n, 16);

    // smartivr (002): a list row, the brief record, record_info (every turn
    // field given a value), the number list with its history.
    let views = smartivr_views("rt-call", "rt-rec");
    let envelope = ["code", "status", "message", "total", "last_page"];
    let mut catalog = proto::catalog_service_client::CatalogServiceClient::new(app.channel.clone());
    for (name, doc) in &views[..2] {
        let (callid, record) = (format!("rt-{name}"), format!("rt-{name}-rec"));
        let doc = serde_json::from_str::<Value>(
            &doc.to_string()
                .replace("rt-call", &callid)
                .replace("rt-rec", &record),
        )
        .unwrap();
        import(&mut app, Source::Smartivr, &doc).await;
        let call = get(&mut app, Source::Smartivr, &callid).await;
        assert_eq!(call.gender(), proto::Gender::Female, "{name}");
        assert_eq!(call.hangup_by(), proto::Party::Robot, "{name}");
        every_field_but_coded(
            name,
            &doc,
            &[json_of(&call)],
            &envelope,
            &[],
            &["gender", "hangup_disposition"],
        );
    }
    let mut info = views[2].1.clone();
    for (key, value) in [
        ("asrtype", json!("aliyun-rt")),
        ("gender", json!(4)),
        ("record_ms", json!(1690)),
        ("volume_gain", json!(8.040982)),
        ("keyword", json!("kw-rt")),
        ("bridge_status", json!(1)),
        (
            "contents",
            json!([{"id": "content-rt", "file_id": "file-rt", "sort": 0,
            "status": true, "translate_text": "translate-rt", "wav_second": 3.577875}]),
        ),
    ] {
        info["records"][1][key] = value;
    }
    let task = info["info"]["task"].as_object_mut().unwrap();
    for (key, value) in [
        ("call_per_second", json!(31)),
        ("recycle_limit", json!(32)),
        ("random_assignment_number", json!(33)),
        ("destination_extension", json!(299)),
        ("destination_dialplan", json!("XML-rt")),
        ("destination_context", json!("ctx-rt")),
        ("dial_format", json!("fmt-rt")),
        ("remark", json!("remark-rt")),
        ("sort", json!(34)),
        ("originate_variables", json!("{execute_on_media=rt}")),
        ("_originate_timeout", json!(61)),
        ("_origination_caller_id_number", json!("300708")),
        ("user_id", json!("u-task-rt")),
        ("call_notify_url", json!("http://127.0.0.1:1/rt")),
        ("call_notify_type", json!(35)),
        (
            "progress_bar",
            json!({"total": 36, "progress": 37, "percent": 38}),
        ),
    ] {
        task.insert(key.into(), value);
    }
    import(&mut app, Source::Smartivr, &info).await;
    let call = get(&mut app, Source::Smartivr, "rt-call").await;
    let turn = &call.turns[1];
    assert!(turn.after_transfer);
    assert_eq!(turn.kind(), proto::TurnKind::CustomerUtterance);
    let task = catalog
        .get_task(proto::GetTaskRequest {
            task_id: "task-merge".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let task = serde_json::to_value(&task).unwrap();
    every_field_but_coded(
        "record_info",
        &info,
        &[json_of(&call), task],
        &[],
        &[],
        &["hangup_disposition", "bridge_status"],
    );

    let numbers =
        serde_json::from_str::<Value>(&views[3].1.to_string().replace("rt-call", "rt-history"))
            .unwrap();
    import(&mut app, Source::Smartivr, &numbers).await;
    let history = get(&mut app, Source::Smartivr, "rt-history").await;
    let listed = app
        .calls
        .list_task_numbers(proto::ListTaskNumbersRequest {
            task_id: "task-merge".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let listed = serde_json::to_value(&listed).unwrap();
    assert_every_field_comes_back(
        "number list",
        &numbers,
        &[json_of(&history), listed],
        &["code", "status", "message", "data.total", "data.last_page"],
        &[],
    );
}

crate::backend_tests!(
    every_documented_field_comes_back,
    a_later_rename_does_not_change_an_older_call,
    alibaba_level_codes_are_scoped_by_their_job,
    smartivr_views_of_one_call_merge_in_either_order,
    an_older_view_only_fills_and_a_newer_one_replaces,
    concurrent_views_of_one_call_both_survive,
    money_sent_as_json_numbers_keeps_the_vendors_digits,
    each_amount_carries_its_currency,
);
