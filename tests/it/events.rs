//! The event log through CallService.ExportCalls and WatchCalls, with the
//! real gRPC client on both backends: export completeness and resume from
//! every token against a model of what was written, bad tokens' codes, watch
//! replay-then-live without a gap across a server restart and across
//! servers sharing one database, DELETED events from DeleteCalls and
//! ErasePhone, event retention, deadlines and stalled watchers.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::{TestApp, bad_fields, call, execute, spawn_app_with, tag, ts};
use callscope::config::ServeConfig;
use callscope::proto::{
    self, CallEvent, CallEventType, CallFilter, DeleteCallsRequest, ErasePhoneRequest,
    ExportCallsRequest, ExportCallsResponse, WatchCallsRequest,
    admin_service_client::AdminServiceClient,
};
use tonic::{Code, Streaming};

const WAIT: Duration = Duration::from_secs(20);

fn task(t: &str) -> CallFilter {
    CallFilter {
        task_ids: vec![t.to_owned()],
        ..Default::default()
    }
}

fn intent(id: &str) -> CallFilter {
    CallFilter {
        intent_level_ids: vec![id.to_owned()],
        ..Default::default()
    }
}

/// A call of task `t` with intent level `level`, distinct callee per id.
fn call_of(external_id: &str, t: &str, level: &str, call_time: &str) -> proto::Call {
    let n: u64 = external_id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut c = call(
        external_id,
        &format!("+86138{:08}", n % 100_000_000),
        call_time,
    );
    c.task_id = t.to_owned();
    c.intent_level = Some(proto::IntentLevel {
        id: level.to_owned(),
        ..Default::default()
    });
    c
}

async fn export(
    app: &TestApp,
    filter: CallFilter,
    token: &str,
    include_turns: bool,
) -> Result<Vec<ExportCallsResponse>, tonic::Status> {
    let mut stream = app
        .calls
        .clone()
        .export_calls(ExportCallsRequest {
            filter: Some(filter),
            resume_token: token.to_owned(),
            include_turns,
        })
        .await?
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

fn external_ids(messages: &[ExportCallsResponse]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| m.calls.iter().map(|c| c.external_id.clone()))
        .collect()
}

async fn watch(
    app: &TestApp,
    filter: CallFilter,
    token: &str,
) -> Result<Streaming<CallEvent>, tonic::Status> {
    Ok(app
        .calls
        .clone()
        .watch_calls(WatchCallsRequest {
            filter: Some(filter),
            resume_token: token.to_owned(),
        })
        .await?
        .into_inner())
}

/// The next `n` events, failing the test after [`WAIT`].
async fn take(stream: &mut Streaming<CallEvent>, n: usize) -> Vec<CallEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        match tokio::time::timeout(WAIT, stream.message()).await {
            Ok(Ok(Some(event))) => events.push(event),
            Ok(Ok(None)) => panic!("stream ended after {} of {n} events", events.len()),
            Ok(Err(status)) => panic!("stream failed after {} of {n}: {status:?}", events.len()),
            Err(_) => panic!("only {} of {n} events within {WAIT:?}", events.len()),
        }
    }
    events
}

/// Asserts nothing more arrives for a while.
async fn quiet(stream: &mut Streaming<CallEvent>) {
    if let Ok(next) = tokio::time::timeout(Duration::from_millis(700), stream.message()).await {
        panic!("unexpected: {next:?}");
    }
}

fn summary(events: &[CallEvent]) -> Vec<(String, i32)> {
    events
        .iter()
        .map(|e| {
            (
                e.call
                    .as_ref()
                    .map(|c| c.external_id.clone())
                    .unwrap_or_default(),
                e.r#type,
            )
        })
        .collect()
}

const CREATED: i32 = CallEventType::Created as i32;
const UPDATED: i32 = CallEventType::Updated as i32;
const DELETED: i32 = CallEventType::Deleted as i32;

async fn export_is_complete_and_resumes_from_every_token(mut app: TestApp) {
    // 1,300 calls over two tasks; many share a call time, so the order's
    // tie-break (call id) matters. The model: what was written.
    let mut model: Vec<(i64, String)> = Vec::new();
    let mut batch = Vec::new();
    for i in 0..1300 {
        let t = if i % 3 == 0 { "t2" } else { "t1" };
        let second = (i * 7919) % 400;
        let time = format!("2026-11-20T08:{:02}:{:02}Z", second / 60, second % 60);
        let mut c = call_of(&format!("e{i}"), t, "A", &time);
        if i % 100 == 1 {
            c.turns = vec![proto::DialogueTurn {
                sequence: 1,
                kind: proto::TurnKind::CustomerUtterance as i32,
                customer_text: format!("words {i}"),
                ..Default::default()
            }];
        }
        if t == "t1" {
            model.push((second, c.external_id.clone()));
        }
        batch.push(c);
        if batch.len() == 650 {
            app.upsert(std::mem::take(&mut batch)).await;
        }
    }
    let messages = export(&app, task("t1"), "", false).await.expect("export");
    assert!(messages.len() >= 2, "several messages: {}", messages.len());
    assert!(
        messages
            .iter()
            .all(|m| m.calls.len() <= 500 && !m.calls.is_empty())
    );
    let got = external_ids(&messages);
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "no call twice");
    let mut want: Vec<String> = model.iter().map(|(_, id)| id.clone()).collect();
    want.sort();
    assert_eq!(unique, want, "exactly the calls of task t1");
    // Oldest call time first, ties by call id.
    let keys: Vec<(i64, String)> = messages
        .iter()
        .flat_map(|m| m.calls.iter())
        .map(|c| (c.call_time.unwrap_or_default().seconds, c.call_id.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "call_time, then call_id, ascending");
    // Turns only when asked.
    assert!(
        messages
            .iter()
            .flat_map(|m| &m.calls)
            .all(|c| c.turns.is_empty())
    );
    let with_turns = export(&app, task("t1"), "", true)
        .await
        .expect("export turns");
    let worded: HashMap<String, String> = with_turns
        .iter()
        .flat_map(|m| &m.calls)
        .filter(|c| !c.turns.is_empty())
        .map(|c| (c.external_id.clone(), c.turns[0].customer_text.clone()))
        .collect();
    let want_worded: HashMap<String, String> = (0..1300)
        .filter(|i| i % 100 == 1 && i % 3 != 0)
        .map(|i| (format!("e{i}"), format!("words {i}")))
        .collect();
    assert_eq!(worded, want_worded);

    // Resuming after message i yields exactly the calls after it.
    for (i, message) in messages.iter().enumerate() {
        let rest = export(&app, task("t1"), &message.resume_token, false)
            .await
            .expect("resume");
        assert_eq!(
            external_ids(&rest),
            external_ids(&messages[i + 1..]),
            "resume after message {i}"
        );
    }
    // A call written after the export with a later call time is found by
    // resuming from the last token.
    let last = messages.last().expect("messages").resume_token.clone();
    app.upsert(vec![call_of("late", "t1", "A", "2026-11-21T00:00:00Z")])
        .await;
    let rest = export(&app, task("t1"), &last, false)
        .await
        .expect("resume");
    assert_eq!(external_ids(&rest), ["late"]);
}

async fn bad_resume_tokens_are_refused_by_code(mut app: TestApp) {
    app.upsert(vec![
        call_of("a", "t1", "A", "2026-11-20T08:00:00Z"),
        call_of("b", "t1", "A", "2026-11-20T09:00:00Z"),
    ])
    .await;
    let messages = export(&app, task("t1"), "", false).await.expect("export");
    let export_token = messages[0].resume_token.clone();
    for (token, filter) in [
        ("garbage!", task("t1")),
        ("QUJD", task("t1")),
        (export_token.as_str(), task("t2")),
    ] {
        let err = export(&app, filter, token, false).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{token}: {err:?}");
        assert_eq!(bad_fields(&err), ["resume_token"]);
    }
    // Watch tokens: another filter's, an export token, garbage.
    let mut live = watch(&app, intent("A"), "").await.expect("watch");
    app.upsert(vec![call_of("c", "t1", "A", "2026-11-20T10:00:00Z")])
        .await;
    let event = take(&mut live, 1).await.remove(0);
    assert!(watch(&app, intent("A"), &event.resume_token).await.is_ok());
    for (token, filter) in [
        (event.resume_token.as_str(), intent("B")),
        (export_token.as_str(), task("t1")),
        (
            "",
            CallFilter {
                transcript_contains: "hello".into(),
                ..Default::default()
            },
        ),
        ("%%%", intent("A")),
    ] {
        let err = watch(&app, filter, token).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{token}: {err:?}");
        let fields = bad_fields(&err);
        assert!(
            fields == ["resume_token"] || fields == ["filter.transcript_contains"],
            "{fields:?}"
        );
    }
    // A bad filter is named as for ListCalls.
    let err = export(
        &app,
        CallFilter {
            min_rounds: Some(-1),
            ..Default::default()
        },
        "",
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), ["filter.min_rounds"]);
}

fn second_server(
    app: &TestApp,
    adjust: impl FnOnce(&mut ServeConfig),
) -> impl Future<Output = TestApp> {
    let url = app.database_url.clone();
    spawn_app_with(move |c| {
        c.database_url = url;
        c.watch_poll_ms = 100;
        adjust(c);
    })
}

async fn watch_replays_then_goes_live_without_a_gap_across_a_restart(b: TestApp) {
    // Server A (a second server on B's database, which B's drop removes): a
    // watcher of intent A from now, then writes through A.
    let app = second_server(&b, |_| {}).await;
    let mut first = watch(&app, intent("A"), "").await.expect("watch");
    let mut want: Vec<(String, i32)> = Vec::new();
    let mut n = 0;
    let mut write = async |app: &TestApp, want: &mut Vec<(String, i32)>, rounds: usize| {
        for _ in 0..rounds {
            let mut batch = Vec::new();
            for _ in 0..5 {
                let level = if n % 2 == 0 { "A" } else { "B" };
                let id = format!("w{n}");
                if level == "A" {
                    want.push((id.clone(), CREATED));
                }
                batch.push(call_of(&id, "t1", level, "2026-11-20T08:00:00Z"));
                n += 1;
            }
            app.ingest
                .clone()
                .upsert_calls(proto::UpsertCallsRequest { calls: batch })
                .await
                .expect("upsert");
        }
    };
    write(&app, &mut want, 6).await;
    let seen = take(&mut first, want.len()).await;
    assert_eq!(summary(&seen), want, "live on server A");
    let token = seen.last().expect("events").resume_token.clone();

    // A stops: its watch ends with UNAVAILABLE, not by hanging the shutdown.
    let c = second_server(&b, |_| {}).await;
    app.stop().await;
    match tokio::time::timeout(WAIT, first.message()).await {
        Ok(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        other => panic!("the watch on a stopped server: {other:?}"),
    }
    // Written through B while nobody watches.
    write(&b, &mut want, 4).await;

    // On B, from A's last token: the missed events replayed, then live ones
    // written through C (another server on the same database), updates and
    // deletes included, without a gap or a repeat.
    let mut second = watch(&b, intent("A"), &token).await.expect("resume on B");
    write(&c, &mut want, 4).await;
    let mut updated = call_of("w0", "t1", "A", "2026-11-20T08:00:00Z");
    updated.score = Some(90);
    c.ingest
        .clone()
        .upsert_calls(proto::UpsertCallsRequest {
            calls: vec![updated],
        })
        .await
        .expect("update");
    want.push(("w0".into(), UPDATED));
    let deleted = AdminServiceClient::new(c.channel.clone())
        .delete_calls(DeleteCallsRequest {
            filter: Some(CallFilter {
                phone: call_of("w2", "t1", "A", "2026-11-20T08:00:00Z").callee,
                ..Default::default()
            }),
            validate_only: false,
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.deleted_calls, 1);
    want.push(("w2".into(), DELETED));
    let all = want.len();
    let rest = take(&mut second, all - seen.len()).await;
    let mut together = seen.clone();
    together.extend(rest.iter().cloned());
    assert_eq!(
        summary(&together),
        want,
        "replay then live, on B, across the restart"
    );
    quiet(&mut second).await;
    // The deleted event carries the call as it was; the update, its new score.
    let update = &rest[rest.len() - 2];
    assert_eq!(update.call.as_ref().and_then(|c| c.score), Some(90));
    let delete = rest.last().expect("delete");
    assert_eq!(
        delete
            .call
            .as_ref()
            .map(|c| c.intent_level.clone().unwrap_or_default().id),
        Some("A".to_owned())
    );
    // Event ids and times.
    let ids: Vec<i64> = together
        .iter()
        .map(|e| e.event_id.parse().expect("numeric id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(together.iter().all(|e| e.event_time.is_some()));
}

async fn deletes_and_erasures_produce_deleted_events(mut app: TestApp) {
    const PHONE: &str = "+8613800138000";
    let mut live = watch(&app, CallFilter::default(), "").await.expect("watch");
    app.upsert(vec![call_of("first", "t1", "A", "2026-11-20T07:00:00Z")])
        .await;
    let before = take(&mut live, 1).await.remove(0).resume_token;
    let mut erased = call("erased", PHONE, "2026-11-20T08:00:00Z");
    erased.task_id = "t1".into();
    erased.customer_name = "Zhang".into();
    let mut dropped = call("dropped", "+8613900139000", "2026-11-20T09:00:00Z");
    dropped.task_id = "t9".into();
    app.upsert(vec![erased, dropped]).await;
    let admin = AdminServiceClient::new(app.channel.clone());
    admin
        .clone()
        .delete_calls(DeleteCallsRequest {
            filter: Some(task("t9")),
            validate_only: false,
        })
        .await
        .expect("delete");
    admin
        .clone()
        .erase_phone(ErasePhoneRequest {
            phone: PHONE.into(),
            validate_only: false,
        })
        .await
        .expect("erase");
    let events = take(&mut live, 4).await;
    assert_eq!(
        summary(&events),
        [
            ("erased".to_owned(), CREATED),
            ("dropped".to_owned(), CREATED),
            ("dropped".to_owned(), DELETED),
            ("erased".to_owned(), DELETED),
        ]
    );
    let call_of_event = |i: usize| events[i].call.clone().expect("call");
    assert_eq!(call_of_event(2).callee, "+8613900139000", "as it was");
    assert_eq!(call_of_event(3).callee, "", "erased: no number");
    assert_eq!(call_of_event(3).customer_name, "");
    assert_eq!(call_of_event(3).task_id, "t1");
    // Replayed from before, the erased call's creation no longer has it.
    let mut replay = watch(&app, CallFilter::default(), &before)
        .await
        .expect("replay");
    let again = take(&mut replay, 4).await;
    assert_eq!(summary(&again), summary(&events));
    let created = again[0].call.clone().expect("call");
    assert_eq!(
        (created.callee.as_str(), created.customer_name.as_str()),
        ("", "")
    );
    assert_eq!(
        again[1].call.clone().expect("call").callee,
        "+8613900139000"
    );
}

async fn event_retention_removes_old_events_and_old_tokens_are_out_of_range(mut app: TestApp) {
    let mut live = watch(&app, CallFilter::default(), "").await.expect("watch");
    for i in 0..4 {
        app.upsert(vec![call_of(
            &format!("r{i}"),
            "t1",
            "A",
            "2026-11-20T08:00:00Z",
        )])
        .await;
    }
    let events = take(&mut live, 4).await;
    // The first two events are made two hours old.
    let old = (jiff::Timestamp::now().as_second() - 7200) * 1000;
    execute(
        &app.database_url,
        &format!("UPDATE call_events SET event_time = {old} WHERE position <= 2"),
    )
    .await;
    let purging = second_server(&app, |c| {
        c.event_retention_hours = 1;
        c.retention_interval_ms = 200;
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match watch(&purging, CallFilter::default(), &events[0].resume_token).await {
            Err(status) if status.code() == Code::OutOfRange => {
                assert_eq!(bad_fields(&status), ["resume_token"]);
                break;
            }
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never purged: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // The token of the last purged event still resumes: nothing after it is gone.
    let mut resumed = watch(&purging, CallFilter::default(), &events[1].resume_token)
        .await
        .expect("resume at the edge");
    assert_eq!(summary(&take(&mut resumed, 2).await), summary(&events[2..]));
}

async fn deadlines_end_streams_and_stalled_watchers_are_cut_off(app: TestApp) {
    // A watch with a 500 ms deadline ends with DEADLINE_EXCEEDED.
    let mut request = tonic::Request::new(WatchCallsRequest::default());
    request.set_timeout(Duration::from_millis(500));
    let mut stream = app
        .calls
        .clone()
        .watch_calls(request)
        .await
        .expect("watch")
        .into_inner();
    match tokio::time::timeout(WAIT, stream.message()).await {
        Ok(Err(status)) => assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}"),
        other => panic!("{other:?}"),
    }

    // A watcher that stops reading: its events pile up in the transport and
    // the channel, then it is cut off instead of buffered without bound.
    let stalling = second_server(&app, |c| c.watch_stall_timeout_ms = 300).await;
    let mut slow = watch(&stalling, CallFilter::default(), "")
        .await
        .expect("watch");
    let big = "x".repeat(8 * 1024);
    for round in 0..6 {
        let calls = (0..200)
            .map(|i| {
                let mut c = call_of(&format!("s{round}-{i}"), "t1", "A", "2026-11-20T08:00:00Z");
                c.attributes.insert("blob".into(), big.clone());
                c
            })
            .collect();
        stalling
            .ingest
            .clone()
            .upsert_calls(proto::UpsertCallsRequest { calls })
            .await
            .expect("upsert");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut received = 0;
    let end = loop {
        match tokio::time::timeout(WAIT, slow.message()).await {
            Ok(Ok(Some(_))) => received += 1,
            other => break other,
        }
    };
    match end {
        Ok(Err(status)) => {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            assert!(status.message().contains("resume"), "{}", status.message());
        }
        other => panic!("after {received} events: {other:?}"),
    }
    assert!(received < 1200, "cut off before the end: {received}");
}

/// A TCP proxy to `upstream` that cuts its first connection after passing
/// `cut_after` bytes from the server; later connections pass untouched.
async fn flaky_proxy(upstream: std::net::SocketAddr, cut_after: usize) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let limit = if first { cut_after } else { usize::MAX };
            first = false;
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut passed = 0usize;
                let mut buf = vec![0u8; 16 * 1024];
                while passed < limit {
                    match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let n = n.min(limit - passed);
                            if client_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            passed += n;
                        }
                    }
                }
                // Dropping both halves closes the connection mid-stream.
                up.abort();
            });
        }
    });
    addr
}

async fn run_cli(args: &[String]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_callscope"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run callscope export");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn export_cli_writes_csv_and_ndjson_and_resumes_after_a_dropped_connection(mut app: TestApp) {
    let mut want = Vec::new();
    let mut batch = Vec::new();
    for i in 0..1500 {
        let t = if i % 4 == 0 { "other" } else { "t1" };
        let mut c = call_of(&format!("x{i}"), t, "A", "2026-11-20T08:00:00Z");
        c.call_time = Some(crate::helpers::ts(&format!(
            "2026-11-20T{:02}:{:02}:{:02}Z",
            i / 3600,
            (i / 60) % 60,
            i % 60
        )));
        c.tags = vec![
            crate::helpers::tag("hot", &["g1"]),
            crate::helpers::tag("vip", &[]),
        ];
        c.attributes
            .insert("note".into(), format!("n,{i}\"quoted\""));
        if t == "t1" {
            want.push(c.external_id.clone());
        }
        batch.push(c);
        if batch.len() == 500 {
            app.upsert(std::mem::take(&mut batch)).await;
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let csv_path = dir.path().join("t1.csv");
    // Through a proxy that drops the first connection mid-stream.
    let proxy = flaky_proxy(app.addr, 150_000).await;
    let (ok, stderr) = run_cli(&[
        "export".into(),
        "--server".into(),
        format!("http://{proxy}"),
        "--format".into(),
        "csv".into(),
        "--task-id".into(),
        "t1".into(),
        "--output".into(),
        csv_path.display().to_string(),
    ])
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("resuming"),
        "the connection was cut: {stderr}"
    );
    let mut reader = csv::Reader::from_path(&csv_path).expect("csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, callscope::export::CSV_COLUMNS);
    let column = |name: &str| header.iter().position(|h| h == name).expect("column");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let got: Vec<String> = rows
        .iter()
        .map(|r| r[column("external_id")].to_owned())
        .collect();
    assert_eq!(got, want, "every call of t1 once, in call time order");
    let first = &rows[0];
    assert_eq!(&first[column("tag_ids")], "hot;vip");
    assert_eq!(&first[column("intent_level_id")], "A");
    assert_eq!(&first[column("source")], "SOURCE_API");
    assert_eq!(&first[column("call_time")], "2026-11-20T00:00:01Z");
    let attributes: serde_json::Value =
        serde_json::from_str(&first[column("attributes")]).expect("attributes are JSON");
    assert_eq!(attributes["note"], "n,1\"quoted\"");

    // NDJSON to stdout, with a time window.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_callscope"))
        .args([
            "export",
            "--server",
            &format!("http://{}", app.addr),
            "--format",
            "ndjson",
            "--start",
            "2026-11-20T00:00:10Z",
            "--end",
            "2026-11-20T00:00:20Z",
        ])
        .output()
        .await
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["externalId"].as_str().unwrap_or(""))
        .collect();
    let want: Vec<String> = (10..20).map(|i| format!("x{i}")).collect();
    assert_eq!(ids, want);
    // The proto3 JSON mapping of Call.
    assert_eq!(lines[0]["tags"][1]["id"], "vip");
    let call_time: jiff::Timestamp = lines[0]["callTime"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .expect("an RFC 3339 time");
    assert_eq!(call_time, "2026-11-20T00:00:10Z".parse().expect("time"));
    assert_eq!(lines[0]["source"], "SOURCE_API");

    // A refused request is not retried: it fails with the server's reason.
    let (ok, stderr) = run_cli(&[
        "export".into(),
        "--server".into(),
        format!("http://{}", app.addr),
        "--format".into(),
        "csv".into(),
        "--start".into(),
        "2026-11-21T00:00:00Z".into(),
        "--end".into(),
        "2026-11-20T00:00:00Z".into(),
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("end_time"), "{stderr}");
}

/// Every event carries its call as GetCall then shows it (turns aside): the
/// write builds most events from what it wrote and reads back the rest, and
/// a user must not tell which. The batch mixes both kinds: tags and groups
/// sent with names and without (the catalog names those), named and unnamed
/// intent levels, a tag on both the call and a turn, a key sent twice in one
/// batch, and an update that gives no update time (the stored one stays).
async fn events_carry_each_call_as_get_call_shows_it(mut app: TestApp) {
    let mut live = watch(&app, CallFilter::default(), "").await.expect("watch");
    app.ingest
        .upsert_tags(proto::UpsertTagsRequest {
            tags: vec![tag("catalogued", &["grp-c"])],
            tag_groups: vec![],
        })
        .await
        .expect("upsert tags");
    let level = |id: &str, name: &str| proto::IntentLevel {
        id: id.into(),
        name: name.into(),
        ..Default::default()
    };
    let plain = call("plain", "+8613800000001", "2026-11-20T08:00:00Z");
    let mut named = call("named", "+8613800000002", "2026-11-20T08:01:00Z");
    named.task_id = "t1".into();
    named.intent_level = Some(level("A", "Strong"));
    named.tags = vec![tag("a", &["g1", "g2"]), tag("b", &[])];
    named.tag_groups = vec![proto::TagGroup {
        id: "g0".into(),
        name: "group 0".into(),
        ..Default::default()
    }];
    named.update_time = Some(ts("2026-11-20T09:00:00Z"));
    named.turns = vec![proto::DialogueTurn {
        sequence: 1,
        kind: proto::TurnKind::CustomerUtterance as i32,
        customer_text: "hello".into(),
        tags: vec![tag("b", &["g3"]), tag("c", &["g1"])],
        ..Default::default()
    }];
    let mut unnamed = call("unnamed", "+8613800000003", "2026-11-20T08:02:00Z");
    unnamed.intent_level = Some(level("B", ""));
    unnamed.tags = vec![proto::Tag {
        id: "catalogued".into(),
        ..Default::default()
    }];
    let mut twice = call("twice", "+8613800000004", "2026-11-20T08:03:00Z");
    twice.customer_name = "first".into();
    let mut again = twice.clone();
    again.customer_name = "second".into();
    again.tags = vec![tag("a", &[])];
    app.upsert(vec![plain, named.clone(), unnamed, twice, again])
        .await;
    // The same call again without an update time: it keeps 09:00.
    let mut later = named.clone();
    later.update_time = None;
    later.customer_name = "later".into();
    app.upsert(vec![later]).await;

    let events = take(&mut live, 5).await;
    assert_eq!(
        summary(&events),
        [
            ("plain".to_owned(), CREATED),
            ("named".to_owned(), CREATED),
            ("unnamed".to_owned(), CREATED),
            ("twice".to_owned(), CREATED),
            ("named".to_owned(), UPDATED),
        ]
    );
    quiet(&mut live).await;
    for (n, event) in events.iter().enumerate() {
        let sent = event.call.clone().expect("call");
        let mut shown = app
            .calls
            .clone()
            .get_call(proto::GetCallRequest {
                call_id: sent.call_id.clone(),
                ..Default::default()
            })
            .await
            .expect("get call")
            .into_inner();
        shown.turns.clear();
        if n == 1 {
            // The first version of `named`, since updated.
            assert_eq!(sent.customer_name, "");
            assert_eq!(shown.customer_name, "later");
            shown.customer_name.clear();
            shown.sync_time = sent.sync_time;
        }
        assert_eq!(sent, shown, "event {n}");
    }
    let named = events[4].call.clone().expect("call");
    assert_eq!(named.update_time, Some(ts("2026-11-20T09:00:00Z")));
    let tags: Vec<&str> = named.tags.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(tags, ["a", "b", "c"]);
    let unnamed = events[2].call.clone().expect("call");
    assert_eq!(unnamed.tags[0].name, "tag catalogued");
    assert_eq!(
        events[3].call.clone().expect("call").customer_name,
        "second"
    );
}

crate::backend_tests!(
    export_is_complete_and_resumes_from_every_token,
    bad_resume_tokens_are_refused_by_code,
    watch_replays_then_goes_live_without_a_gap_across_a_restart,
    deletes_and_erasures_produce_deleted_events,
    event_retention_removes_old_events_and_old_tokens_are_out_of_range,
    deadlines_end_streams_and_stalled_watchers_are_cut_off,
    export_cli_writes_csv_and_ndjson_and_resumes_after_a_dropped_connection,
    events_carry_each_call_as_get_call_shows_it,
);
