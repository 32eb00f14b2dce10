//! The kept state of dialing-list numbers (issue 14): every write path of
//! calls and numbers (insert, updates that move a call's outcome, time, task
//! or callee, DeleteCalls, retention, ErasePhone, uploads, a vendor number
//! list) is followed by ListTaskNumbers (every page, every status filter)
//! and GetTask's progress, held against a model the test computes from what
//! it wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::helpers::{TestApp, call, fixture, spawn_app_with};
use callscope::proto::{
    self, CallFilter, CallOutcome, DeleteCallsRequest, ErasePhoneRequest, GetTaskRequest,
    ImportRecordsRequest, ListTaskNumbersRequest, Source, TaskNumberInput,
    UpsertTaskNumbersRequest, admin_service_client::AdminServiceClient,
    catalog_service_client::CatalogServiceClient,
};

const T: &str = "state-t";
const U: &str = "state-u";
/// The task the smartivr number entry's call history names.
const INFERRED: &str = "772dd881-dcf7-42ee-a32b-b40a0ee5afb7";
const P1: &str = "+8613700000001";
const P2: &str = "+8613700000002";
const P3: &str = "+8613700000003";
const P4: &str = "+8613700000004";
const P5: &str = "+8613700000005";
const P6: &str = "+8613700000006";
/// The number of the smartivr number entry fixture, as we send it.
const LISTED: &str = "+8618651683344";

/// The smartivr dial status of a latest call's outcome, written out here
/// independently of the service's mapping.
fn status_of(outcome: i32) -> i32 {
    use CallOutcome as O;
    match CallOutcome::try_from(outcome).unwrap_or(O::Unspecified) {
        O::Answered => 1,
        O::LineFailure => 2,
        O::Rejected => 3,
        O::NoAnswer | O::Voicemail | O::Other | O::Unspecified => 4,
        O::InvalidNumber => 5,
        O::PoweredOff => 6,
        O::Suspended => 7,
        O::Busy => 8,
        O::CallBarred => 9,
        O::Arrears => 10,
        O::Blacklisted => 11,
        O::CallLoss => 12,
    }
}

#[derive(Debug, Clone)]
struct ModelCall {
    task: String,
    callee: String,
    time_ms: i64,
    outcome: i32,
    level: Option<String>,
}

#[derive(Default)]
struct Model {
    /// By external id.
    calls: BTreeMap<String, ModelCall>,
    /// (task, phone) → the vendor's status, for listed numbers.
    numbers: BTreeMap<(String, String), Option<i32>>,
}

/// What ListTaskNumbers shows of one number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    phone: String,
    status_code: i32,
    attempts: i32,
    last_call_time_ms: Option<i64>,
    vendor_status_code: Option<i32>,
}

fn ms(t: &Option<proto::Timestamp>) -> Option<i64> {
    t.as_ref()
        .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

fn days_ago(days: i64, hour: i64) -> proto::Timestamp {
    let now = jiff::Timestamp::now().as_second();
    proto::Timestamp {
        seconds: now - days * 86_400 + hour * 3600,
        nanos: 0,
    }
}

impl Model {
    /// The task's numbers as the listing must show them, by phone.
    fn expected(&self, task: &str, call_ids: &BTreeMap<String, String>) -> Vec<Shown> {
        let mut phones: BTreeSet<String> = BTreeSet::new();
        phones.extend(
            self.numbers
                .keys()
                .filter(|(t, _)| t == task)
                .map(|(_, p)| p.clone()),
        );
        phones.extend(
            self.calls
                .values()
                .filter(|c| c.task == task)
                .map(|c| c.callee.clone()),
        );
        phones
            .into_iter()
            .map(|phone| {
                let vendor = self
                    .numbers
                    .get(&(task.to_owned(), phone.clone()))
                    .copied()
                    .flatten();
                let calls: Vec<(&String, &ModelCall)> = self
                    .calls
                    .iter()
                    .filter(|(_, c)| c.task == task && c.callee == phone)
                    .collect();
                // The latest: by call time, then by call id.
                let latest = calls
                    .iter()
                    .max_by_key(|(id, c)| (c.time_ms, call_ids.get(*id).cloned()));
                Shown {
                    phone,
                    status_code: latest.map_or(vendor.unwrap_or(0), |(_, c)| status_of(c.outcome)),
                    attempts: calls.len() as i32,
                    last_call_time_ms: latest.map(|(_, c)| c.time_ms),
                    vendor_status_code: vendor,
                }
            })
            .collect()
    }
}

async fn list_all(app: &mut TestApp, task: &str, statuses: Vec<i32>) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .calls
            .list_task_numbers(ListTaskNumbersRequest {
                task_id: task.into(),
                statuses: statuses.clone(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list task numbers")
            .into_inner();
        assert!(page.numbers.len() <= 2);
        for n in page.numbers {
            assert_eq!(n.status, n.status_code + 1, "{n:?}");
            out.push(Shown {
                phone: n.phone,
                status_code: n.status_code,
                attempts: n.attempts,
                last_call_time_ms: ms(&n.last_call_time),
                vendor_status_code: n.vendor_status_code,
            });
        }
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// Every call as the service lists it: external id → call id, and a check
/// that the stored calls are the model's.
async fn call_ids(app: &mut TestApp, model: &Model, step: &str) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    let mut stored = BTreeMap::new();
    let mut token = String::new();
    loop {
        let page = app
            .calls
            .list_calls(proto::ListCallsRequest {
                filter: Some(CallFilter::default()),
                page_size: 100,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list calls")
            .into_inner();
        for c in page.calls {
            stored.insert(
                c.external_id.clone(),
                (
                    c.task_id.clone(),
                    c.callee.clone(),
                    ms(&c.call_time),
                    c.outcome,
                ),
            );
            ids.insert(c.external_id, c.call_id);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let modelled: BTreeMap<String, _> = model
        .calls
        .iter()
        .map(|(id, c)| {
            (
                id.clone(),
                (c.task.clone(), c.callee.clone(), Some(c.time_ms), c.outcome),
            )
        })
        .collect();
    assert_eq!(stored, modelled, "{step}: the stored calls are the model's");
    ids
}

/// ListTaskNumbers (all pages; each status filter; one multi-status filter)
/// and GetTask's progress against the model, for every task of the test.
async fn check(app: &mut TestApp, model: &Model, step: &str) {
    let ids = call_ids(app, model, step).await;
    let mut catalog = CatalogServiceClient::new(app.channel.clone());
    for task in [T, U, INFERRED] {
        let want = model.expected(task, &ids);
        let got = list_all(app, task, Vec::new()).await;
        assert_eq!(got, want, "{step}: {task}");
        for status in 0..=12 {
            let want_one: Vec<Shown> = want
                .iter()
                .filter(|n| n.status_code == status)
                .cloned()
                .collect();
            let got = list_all(app, task, vec![status + 1]).await;
            assert_eq!(got, want_one, "{step}: {task} status {status}");
        }
        let mixed = [0, 1, 4, 11];
        let want_mixed: Vec<Shown> = want
            .iter()
            .filter(|n| mixed.contains(&n.status_code))
            .cloned()
            .collect();
        let got = list_all(app, task, mixed.iter().map(|s| s + 1).collect()).await;
        assert_eq!(got, want_mixed, "{step}: {task} statuses {mixed:?}");

        let Ok(answer) = catalog
            .get_task(GetTaskRequest {
                task_id: task.into(),
            })
            .await
        else {
            assert!(want.is_empty(), "{step}: {task} unknown with numbers");
            continue;
        };
        let p = answer.into_inner().progress.expect("progress");
        let mut by_status: BTreeMap<i32, i64> = BTreeMap::new();
        for n in &want {
            *by_status.entry(n.status_code).or_default() += 1;
        }
        let got_by_status: BTreeMap<i32, i64> = p
            .numbers_by_status
            .iter()
            .map(|c| (c.name.parse::<i32>().expect("status code"), c.count))
            .collect();
        assert_eq!(got_by_status, by_status, "{step}: {task} numbers by status");
        assert_eq!(p.numbers_total, want.len() as i64, "{step}: {task}");
        let calls: Vec<&ModelCall> = model.calls.values().filter(|c| c.task == task).collect();
        assert_eq!(p.calls_total, calls.len() as i64, "{step}: {task}");
        let answered = calls
            .iter()
            .filter(|c| c.outcome == CallOutcome::Answered as i32)
            .count();
        assert_eq!(p.calls_answered, answered as i64, "{step}: {task}");
        assert_eq!(
            ms(&p.first_call_time),
            calls.iter().map(|c| c.time_ms).min(),
            "{step}: {task}"
        );
        assert_eq!(
            ms(&p.last_call_time),
            calls.iter().map(|c| c.time_ms).max(),
            "{step}: {task}"
        );
        let mut by_level: BTreeMap<String, i64> = BTreeMap::new();
        for c in &calls {
            *by_level
                .entry(c.level.clone().unwrap_or_default())
                .or_default() += 1;
        }
        let got_levels: BTreeMap<String, i64> = p
            .calls_by_intent_level
            .iter()
            .map(|c| (c.key.clone(), c.count))
            .collect();
        assert_eq!(got_levels, by_level, "{step}: {task} calls by level");
    }
}

struct Write {
    id: &'static str,
    task: &'static str,
    callee: &'static str,
    /// Days ago, hour offset.
    when: (i64, i64),
    outcome: CallOutcome,
    level: Option<&'static str>,
    /// Orders versions of one call.
    version: i64,
}

async fn write(app: &mut TestApp, model: &mut Model, writes: &[Write]) {
    let mut calls = Vec::new();
    for w in writes {
        let mut c = call(w.id, w.callee, "2026-01-01T00:00:00Z");
        let time = days_ago(w.when.0, w.when.1);
        c.call_time = Some(time);
        c.update_time = Some(days_ago(3, w.version));
        c.task_id = w.task.into();
        c.outcome = w.outcome as i32;
        c.intent_level = w.level.map(|id| proto::IntentLevel {
            id: id.into(),
            name: format!("level {id}"),
            ..Default::default()
        });
        calls.push(c);
        model.calls.insert(
            w.id.to_owned(),
            ModelCall {
                task: w.task.to_owned(),
                callee: w.callee.to_owned(),
                time_ms: time.seconds * 1000,
                outcome: w.outcome as i32,
                level: w.level.map(str::to_owned),
            },
        );
    }
    let answer = app.upsert(calls).await;
    assert_eq!(answer.erased, 0, "{answer:?}");
}

async fn upload(app: &mut TestApp, model: &mut Model, task: &str, phones: &[&str]) {
    app.ingest
        .upsert_task_numbers(UpsertTaskNumbersRequest {
            task_id: task.into(),
            numbers: phones
                .iter()
                .map(|p| TaskNumberInput {
                    phone: (*p).into(),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .expect("upload numbers");
    for p in phones {
        // An upload keeps a vendor status the number had.
        model
            .numbers
            .entry((task.to_owned(), (*p).to_owned()))
            .or_insert(None);
    }
}

/// Imports the smartivr number entry fixture for LISTED into T, with the
/// vendor's dial status `status`.
async fn import_number_entry(app: &mut TestApp, status: i32) {
    let entry = fixture("smartivr/number_entry.json");
    let mut value: serde_json::Value = serde_json::from_str(&entry).unwrap();
    value["number"] = "186-5168-3344".into();
    value["status"] = status.into();
    let answer = app
        .ingest
        .import_records(ImportRecordsRequest {
            source: Source::Smartivr as i32,
            records: vec![value.to_string()],
            task_id: T.into(),
        })
        .await
        .expect("import number list")
        .into_inner();
    assert_eq!(answer.rejected, 0, "{answer:?}");
}

fn w(
    id: &'static str,
    task: &'static str,
    callee: &'static str,
    hour: i64,
    outcome: CallOutcome,
    version: i64,
) -> Write {
    Write {
        id,
        task,
        callee,
        when: (5, hour),
        outcome,
        level: None,
        version,
    }
}

async fn every_write_path_keeps_the_number_state(mut app: TestApp) {
    use CallOutcome as O;
    let mut model = Model::default();
    check(&mut app, &model, "empty").await;

    // Uploads: numbers without calls are waiting.
    upload(&mut app, &mut model, T, &[P1, P2, P3]).await;
    upload(&mut app, &mut model, U, &[P4]).await;
    check(&mut app, &model, "upload").await;

    // Inserts: several calls per number, a tie on call time (the call id
    // decides), a number called but never listed, a call without a task, a
    // call old enough for the retention purge.
    let mut first = vec![
        w("c1", T, P1, 1, O::NoAnswer, 1),
        Write {
            level: Some("A"),
            ..w("c2", T, P1, 3, O::Answered, 1)
        },
        w("c3", T, P2, 2, O::Busy, 1),
        w("c4", T, P5, 4, O::Rejected, 1),
        Write {
            level: Some("B"),
            ..w("c5", U, P1, 5, O::PoweredOff, 1)
        },
        w("c6", T, P3, 2, O::Voicemail, 1),
        w("c7", T, P3, 2, O::Blacklisted, 1),
        w("c8", "", P1, 7, O::Answered, 1),
    ];
    first.push(Write {
        when: (40, 0),
        ..w("old", T, P2, 0, O::Answered, 1)
    });
    write(&mut app, &mut model, &first).await;
    check(&mut app, &model, "insert").await;

    // Updates: the latest call's outcome changes; an older call moves to be
    // the latest; a call moves to another task; a call moves to another
    // callee (its number leaves the task); an unchanged rewrite.
    write(
        &mut app,
        &mut model,
        &[
            Write {
                level: Some("A"),
                ..w("c2", T, P1, 3, O::CallLoss, 2)
            },
            w("c1", T, P1, 6, O::NoAnswer, 2),
            w("c3", U, P2, 2, O::Busy, 2),
            w("c4", T, P2, 4, O::Rejected, 2),
            w("c6", T, P3, 2, O::Voicemail, 2),
        ],
    )
    .await;
    check(&mut app, &model, "update").await;

    // A vendor number list: the entry goes to T with the vendor's status 11;
    // its call history goes to the task it names.
    import_number_entry(&mut app, 11).await;
    model.numbers.insert((T.into(), LISTED.into()), Some(11));
    // The history's calls, as the vendor gave them.
    let history = app
        .calls
        .list_calls(proto::ListCallsRequest {
            filter: Some(CallFilter {
                task_ids: vec![INFERRED.into()],
                ..Default::default()
            }),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list history")
        .into_inner()
        .calls;
    assert!(!history.is_empty());
    for c in history {
        model.calls.insert(
            c.external_id.clone(),
            ModelCall {
                task: c.task_id,
                callee: c.callee,
                time_ms: ms(&c.call_time).expect("call time"),
                outcome: c.outcome,
                level: c.intent_level.map(|l| l.id),
            },
        );
    }
    // Uploads after it: a number already listed, and a new one.
    upload(&mut app, &mut model, T, &[P2, P6, LISTED]).await;
    check(&mut app, &model, "vendor list").await;

    // The vendor lists the number again, with another status.
    import_number_entry(&mut app, 3).await;
    model.numbers.insert((T.into(), LISTED.into()), Some(3));
    check(&mut app, &model, "vendor status changed").await;

    // A call of ours to the vendor-listed number: the derived status wins.
    write(
        &mut app,
        &mut model,
        &[w("c9", T, LISTED, 8, O::NoAnswer, 1)],
    )
    .await;
    check(&mut app, &model, "call to a listed number").await;

    // DeleteCalls: the latest call of a number (the one before it becomes
    // the latest), and the only call to the vendor-listed number (its
    // vendor status is back).
    let deleted = AdminServiceClient::new(app.channel.clone())
        .delete_calls(DeleteCallsRequest {
            filter: Some(CallFilter {
                external_ids: vec!["c1".into(), "c9".into()],
                ..Default::default()
            }),
            validate_only: false,
        })
        .await
        .expect("delete calls")
        .into_inner()
        .deleted_calls;
    assert_eq!(deleted, 2);
    model.calls.remove("c1");
    model.calls.remove("c9");
    check(&mut app, &model, "delete").await;

    // Retention: a server purging calls older than 30 days (ours, and the
    // vendor history's, which is years old).
    let cutoff = (jiff::Timestamp::now().as_second() - 30 * 86_400) * 1000;
    model.calls.retain(|_, c| c.time_ms >= cutoff);
    let kept: BTreeSet<String> = model.calls.keys().cloned().collect();
    {
        let url = app.database_url.clone();
        let mut purging = spawn_app_with(move |c| {
            c.database_url = url;
            c.retention_days = Some(30);
            c.retention_interval_ms = 200;
        })
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let stored: BTreeSet<String> = purging
                .external_ids(CallFilter::default())
                .await
                .into_iter()
                .collect();
            if stored == kept {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not purged: {stored:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        purging.stop().await;
    }
    check(&mut app, &model, "retention").await;

    // ErasePhone: P2's calls (in T and in U) and its list entry go.
    AdminServiceClient::new(app.channel.clone())
        .erase_phone(ErasePhoneRequest {
            phone: P2.into(),
            validate_only: false,
        })
        .await
        .expect("erase phone");
    model.calls.retain(|_, c| c.callee != P2);
    model.numbers.retain(|(_, p), _| p != P2);
    check(&mut app, &model, "erase").await;

    // ErasePhone of a number listed and never called: its list entry alone
    // kept its state.
    AdminServiceClient::new(app.channel.clone())
        .erase_phone(ErasePhoneRequest {
            phone: P6.into(),
            validate_only: false,
        })
        .await
        .expect("erase a listed number");
    model.numbers.retain(|(_, p), _| p != P6);
    check(&mut app, &model, "erase a number without calls").await;

    // The number can come back.
    upload(&mut app, &mut model, T, &[P2]).await;
    write(&mut app, &mut model, &[w("c10", T, P2, 9, O::Suspended, 1)]).await;
    check(&mut app, &model, "after erase").await;
}

/// Writers at once: batches of calls to the same few numbers of one task,
/// in different orders, new calls and newer versions of each other's calls
/// (their latest call moving between numbers and times), and deletes. The
/// kept state must end as the calls that were stored derive it.
async fn concurrent_writers_leave_no_stale_state(mut app: TestApp) {
    const TASK: &str = "state-concurrent";
    const PHONES: [&str; 4] = [P1, P2, P3, P4];
    let outcomes = [
        CallOutcome::Answered,
        CallOutcome::Busy,
        CallOutcome::NoAnswer,
        CallOutcome::Rejected,
        CallOutcome::PoweredOff,
    ];
    let mut writers = Vec::new();
    for writer in 0..6_i64 {
        let mut ingest = app.ingest.clone();
        let mut admin = AdminServiceClient::new(app.channel.clone());
        writers.push(tokio::spawn(async move {
            for round in 0..6_i64 {
                let mut calls = Vec::new();
                for k in 0..8_i64 {
                    // Shared ids: every writer writes versions of c0..c23.
                    let id = (writer * 5 + round * 7 + k * 3) % 24;
                    let spin = (writer + round + k) as usize;
                    let phone = PHONES[(spin + id as usize) % PHONES.len()];
                    let mut c = call(&format!("cc{id}"), phone, "2026-01-01T00:00:00Z");
                    c.call_time = Some(days_ago(2, (spin % 9) as i64));
                    c.update_time = Some(days_ago(1, round * 3 + writer % 3));
                    c.task_id = TASK.into();
                    c.outcome = outcomes[spin % outcomes.len()] as i32;
                    calls.push(c);
                }
                if writer % 2 == 1 {
                    calls.reverse();
                }
                let mut tries = 0;
                loop {
                    match ingest
                        .upsert_calls(proto::UpsertCallsRequest {
                            calls: calls.clone(),
                        })
                        .await
                    {
                        Ok(_) => break,
                        // A deadlock victim or a serialization failure is
                        // retryable; count it.
                        Err(status) if status.code() == tonic::Code::Unavailable && tries < 5 => {
                            eprintln!("writer {writer} round {round} retries: {status:?}");
                            tries += 1;
                        }
                        Err(status) => panic!("writer {writer} round {round}: {status:?}"),
                    }
                }
                if round % 3 == 2 {
                    let id = (writer * 11 + round) % 24;
                    admin
                        .delete_calls(DeleteCallsRequest {
                            filter: Some(CallFilter {
                                external_ids: vec![format!("cc{id}")],
                                ..Default::default()
                            }),
                            validate_only: false,
                        })
                        .await
                        .expect("delete calls");
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    // The model: the calls as stored now.
    let mut model = Model::default();
    let mut token = String::new();
    loop {
        let page = app
            .calls
            .list_calls(proto::ListCallsRequest {
                filter: Some(CallFilter::default()),
                page_size: 100,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list calls")
            .into_inner();
        for c in page.calls {
            model.calls.insert(
                c.external_id.clone(),
                ModelCall {
                    task: c.task_id,
                    callee: c.callee,
                    time_ms: ms(&c.call_time).expect("call time"),
                    outcome: c.outcome,
                    level: c.intent_level.map(|l| l.id),
                },
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(!model.calls.is_empty());
    let ids = call_ids(&mut app, &model, "concurrent").await;
    let want = model.expected(TASK, &ids);
    assert_eq!(list_all(&mut app, TASK, Vec::new()).await, want);
    let p = CatalogServiceClient::new(app.channel.clone())
        .get_task(GetTaskRequest {
            task_id: TASK.into(),
        })
        .await
        .expect("get task")
        .into_inner()
        .progress
        .expect("progress");
    assert_eq!(p.calls_total, model.calls.len() as i64);
    let answered = model
        .calls
        .values()
        .filter(|c| c.outcome == CallOutcome::Answered as i32)
        .count();
    assert_eq!(p.calls_answered, answered as i64);
    assert_eq!(p.numbers_total, want.len() as i64);
}

crate::backend_tests!(
    every_write_path_keeps_the_number_state,
    concurrent_writers_leave_no_stale_state,
);
