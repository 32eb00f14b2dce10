//! SyncService against a stand-in smartivr query API written here
//! (`smartivr_standin`): create/list/delete and their refusals, a first full
//! pull through a 500, a 429 with `Retry-After` and a vanished record, an
//! incremental run that fetches nothing, re-scored calls, a malformed page
//! kept in the quarantine with its URL, the size and page-count limits, an
//! unreachable vendor, a scheduled source, and two servers sharing a source.

use std::time::{Duration, Instant};

use callscope::config::ServeConfig;
use callscope::proto::{
    self, CreateSyncSourceRequest, DeleteSyncSourceRequest, ListSyncSourcesRequest, RunSyncRequest,
    SyncSource, sync_service_client::SyncServiceClient,
};
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::{self, TestApp};
use crate::smartivr_standin::{TOKEN, Vendor, shanghai_now};

fn sync_client(app: &TestApp) -> SyncServiceClient<Channel> {
    SyncServiceClient::new(app.channel.clone())
}

fn source(vendor: &Vendor, name: &str, tasks: &[&str]) -> SyncSource {
    SyncSource {
        name: name.to_owned(),
        source: proto::Source::Smartivr as i32,
        base_url: vendor.base_url(),
        task_ids: tasks.iter().map(|t| t.to_string()).collect(),
        headers: [("Authorization".to_owned(), TOKEN.to_owned())].into(),
        ..Default::default()
    }
}

async fn create(
    client: &mut SyncServiceClient<Channel>,
    source: SyncSource,
) -> Result<SyncSource, tonic::Status> {
    client
        .create_sync_source(CreateSyncSourceRequest {
            sync_source: Some(source),
        })
        .await
        .map(|r| r.into_inner())
}

async fn run(
    client: &mut SyncServiceClient<Channel>,
    name: &str,
) -> Result<proto::SyncRun, tonic::Status> {
    client
        .run_sync(RunSyncRequest { name: name.into() })
        .await
        .map(|r| r.into_inner())
}

async fn listed(client: &mut SyncServiceClient<Channel>) -> Vec<SyncSource> {
    client
        .list_sync_sources(ListSyncSourcesRequest {})
        .await
        .expect("list sync sources")
        .into_inner()
        .sync_sources
}

fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

/// Every external id of a task's calls, sorted.
async fn task_calls(app: &mut TestApp, task: &str) -> Vec<String> {
    let mut ids = app
        .external_ids(proto::CallFilter {
            task_ids: vec![task.to_owned()],
            ..Default::default()
        })
        .await;
    ids.sort();
    ids
}

/// One call by its vendor id, with turns.
async fn call_by_external_id(app: &mut TestApp, external_id: &str) -> proto::Call {
    let mut token = String::new();
    loop {
        let page = app
            .calls
            .list_calls(proto::ListCallsRequest {
                page_size: 100,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        if let Some(call) = page.calls.iter().find(|c| c.external_id == external_id) {
            return app
                .calls
                .get_call(proto::GetCallRequest {
                    call_id: call.call_id.clone(),
                    ..Default::default()
                })
                .await
                .expect("get call")
                .into_inner();
        }
        assert!(!page.next_page_token.is_empty(), "no call {external_id}");
        token = page.next_page_token;
    }
}

async fn sync_sources_are_created_listed_and_deleted_with_refusals(mut app: TestApp) {
    let vendor = Vendor::start().await;
    let two_hours_ago = shanghai_now() - jiff::SignedDuration::from_hours(2);
    vendor.add_calls("task-a", 3, two_hours_ago);
    let mut client = sync_client(&app);

    let spec = source(&vendor, "ivr", &["task-a"]);
    let created = create(&mut client, spec.clone()).await.expect("create");
    assert_eq!(created.name, "ivr");
    assert!(created.headers.is_empty(), "headers are never returned");
    assert_eq!(created.header_names, vec!["Authorization".to_owned()]);
    assert_eq!(created.base_url, format!("{}/", vendor.base_url()));
    assert_eq!(created.overlap.as_ref().map(|d| d.seconds), Some(86_400));
    assert!(created.interval.is_none(), "on demand only");
    assert_eq!(
        vendor.lock().probes,
        1,
        "the task was checked with the vendor"
    );

    let dup = create(&mut client, spec.clone()).await.unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists, "{dup:?}");

    let mut push_only = source(&vendor, "lvms", &["task-a"]);
    push_only.source = proto::Source::AlibabaLvms as i32;
    let err = create(&mut client, push_only).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), vec!["sync_source.source"]);

    for bad in ["not a url", "ftp://127.0.0.1/", "http://user:pw@127.0.0.1/"] {
        let mut s = source(&vendor, "bad-url", &["task-a"]);
        s.base_url = bad.into();
        let err = create(&mut client, s).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(bad_fields(&err), vec!["sync_source.base_url"], "{bad}");
    }

    let err = create(
        &mut client,
        source(&vendor, "unknown", &["task-a", "no-such-task"]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), vec!["sync_source.task_ids[1]"]);

    let mut wrong_token = source(&vendor, "token", &["task-a"]);
    wrong_token.headers = [("Authorization".to_owned(), "Bearer nope".to_owned())].into();
    let err = create(&mut client, wrong_token).await.unwrap_err();
    assert_eq!(bad_fields(&err), vec!["sync_source.headers"]);
    assert!(!err.message().contains("nope"), "{}", err.message());

    let err = run(&mut client, "missing").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let all = listed(&mut client).await;
    assert_eq!(all.len(), 1);
    assert!(all[0].headers.is_empty());
    let state = all[0].state.clone().unwrap_or_default();
    assert!(state.last_run_time.is_none() && state.calls_synced == 0);

    client
        .delete_sync_source(DeleteSyncSourceRequest { name: "ivr".into() })
        .await
        .expect("delete");
    assert!(listed(&mut client).await.is_empty());
    let err = client
        .delete_sync_source(DeleteSyncSourceRequest { name: "ivr".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let _ = &mut app;
}

async fn first_sync_is_complete_and_the_second_is_incremental(mut app: TestApp) {
    let vendor = Vendor::start().await;
    let start = shanghai_now() - jiff::SignedDuration::from_hours(3);
    let ids = vendor.add_calls("task-a", 40, start);
    {
        let mut s = vendor.lock();
        s.fail_list_once.insert(("task-a".into(), 2));
        s.throttle_info_once.insert("rec-00003".into());
        s.vanished.insert("rec-00020".into());
    }
    let mut client = sync_client(&app);
    create(&mut client, source(&vendor, "ivr", &["task-a"]))
        .await
        .expect("create");

    let first = run(&mut client, "ivr").await.expect("first run");
    assert_eq!(first.inserted, 40, "{first:?}");
    assert_eq!((first.updated, first.unchanged, first.rejected), (0, 0, 0));
    // Three list pages (15 + 15 + 10) and three of the dialing list (40
    // numbers).
    assert_eq!(first.pages, 6, "{first:?}");
    assert_eq!(first.vendor_requests, 4 + 41 + 3, "{first:?}");
    assert_eq!(vendor.lock().number_hits, 3);
    assert_eq!(first.details_fetched, 39, "the vanished one has none");
    assert_eq!(first.errors, 1, "{first:?}");
    assert!(first.error_messages[0].contains("rec-00020"), "{first:?}");
    assert_eq!(first.retries, 2, "one 500, one 429");
    assert_eq!(first.vendor_total, 40);
    assert_eq!(first.held, 40);
    assert!(first.error.is_empty());
    // Each list page once (page 2 twice: the 500, then the retry).
    assert_eq!(
        vendor.list_hits("task-a").into_iter().collect::<Vec<_>>(),
        vec![(1, 1), (2, 2), (3, 1)]
    );
    assert_eq!(vendor.info_total(), 41, "40 records, one retried after 429");
    // The same figures as Prometheus metrics on the server's /metrics.
    let scrape = reqwest::get(format!("http://{}/metrics", app.http_addr))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let value = |name: &str, extra: &str| {
        scrape
            .lines()
            .find(|l| {
                l.starts_with(&format!("{name}{{"))
                    && l.contains("sync_source=\"ivr\"")
                    && l.contains(extra)
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(
        value("callscope_sync_pages_total", "").as_deref(),
        Some("6")
    );
    assert_eq!(
        value("callscope_sync_retries_total", "").as_deref(),
        Some("2")
    );
    assert_eq!(
        value("callscope_sync_records_total", "outcome=\"inserted\"").as_deref(),
        Some("40")
    );
    assert!(
        value("callscope_sync_lag_seconds", "").is_some(),
        "{scrape}"
    );

    assert_eq!(task_calls(&mut app, "task-a").await, ids);
    let call = call_by_external_id(&mut app, "call-00005").await;
    assert_eq!(call.turns.len(), 2);
    assert_eq!(call.turns[1].customer_text, "客户回答5");
    assert_eq!(call.score, Some(5));
    assert_eq!(
        call.tags.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        vec!["tag-2"],
        "the list's call tags merged with the details"
    );
    assert_eq!(
        call.intent_level.as_ref().map(|l| l.id.as_str()),
        Some("lvl-a")
    );
    let vanished = call_by_external_id(&mut app, "call-00020").await;
    assert!(vanished.turns.is_empty(), "kept without turns");
    assert_eq!(vanished.score, Some(20));

    // Nothing new: no record details fetched at all.
    let second = run(&mut client, "ivr").await.expect("second run");
    assert_eq!(second.inserted + second.updated, 0, "{second:?}");
    assert_eq!(second.unchanged, 40);
    assert_eq!(second.details_fetched, 0);
    assert_eq!(vendor.info_total(), 41);

    // Re-scored and new calls: only they are fetched.
    let later = shanghai_now().strftime("%Y-%m-%d %H:%M:%S").to_string();
    vendor.rescore("call-00001", 99, &later);
    vendor.rescore("call-00030", 98, &later);
    let new_ids = vendor.add_calls("task-a", 1, start + jiff::SignedDuration::from_mins(100));
    let third = run(&mut client, "ivr").await.expect("third run");
    assert_eq!((third.inserted, third.updated), (1, 2), "{third:?}");
    assert_eq!(third.unchanged, 38);
    assert_eq!(third.details_fetched, 3);
    assert_eq!(
        call_by_external_id(&mut app, "call-00001").await.score,
        Some(99)
    );
    assert_eq!(task_calls(&mut app, "task-a").await.len(), 41);
    assert!(task_calls(&mut app, "task-a").await.contains(&new_ids[0]));

    let state = listed(&mut client).await[0].state.clone().unwrap();
    assert_eq!(state.calls_synced, 43);
    assert!(state.last_success_time.is_some() && state.last_error.is_empty());
    let lag = state.lag.expect("lag");
    assert!(lag.seconds >= 0 && lag.seconds < 600, "{lag:?}");
    assert_eq!((state.vendor_total, state.held), (41, 41));
    assert_eq!(state.tasks[0].next_page, 0);
    assert!(state.tasks[0].synced_to.is_some());
    assert_eq!(
        vendor.lock().unauthorized,
        0,
        "the token went with every request"
    );
}

async fn a_malformed_page_is_quarantined_with_its_url(mut app: TestApp) {
    let vendor = Vendor::start().await;
    let start = shanghai_now() - jiff::SignedDuration::from_hours(3);
    vendor.add_calls("task-m", 35, start);
    let mut client = sync_client(&app);
    create(&mut client, source(&vendor, "ivr", &["task-m"]))
        .await
        .expect("create");
    vendor.lock().malformed_list.insert(("task-m".into(), 2));

    let first = run(&mut client, "ivr").await.expect("run");
    assert_eq!(first.inserted, 20, "pages 1 and 3: {first:?}");
    assert_eq!((first.errors, first.rejected), (1, 1), "{first:?}");
    let rejected = app
        .ingest
        .list_rejected_records(proto::ListRejectedRecordsRequest {
            page_size: 10,
            ..Default::default()
        })
        .await
        .expect("quarantine")
        .into_inner()
        .records;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].channel, "sync");
    assert!(
        rejected[0].reason.contains(&format!(
            "{}/v1/task/query_done_task_phones",
            vendor.base_url()
        )),
        "{}",
        rejected[0].reason
    );
    assert!(rejected[0].payload.contains("502 Bad Gateway"));
    let state = listed(&mut client).await[0].state.clone().unwrap();
    assert!(
        state.tasks[0].synced_to.is_none(),
        "an unclean window is pulled again"
    );

    // The vendor recovers: the next run fills the gap.
    vendor.lock().malformed_list.clear();
    let second = run(&mut client, "ivr").await.expect("run");
    // Page 2's calls were known only from the dialing list's call history:
    // their records now complete them.
    assert_eq!(second.inserted + second.updated, 15, "{second:?}");
    assert_eq!((second.unchanged, second.details_fetched), (20, 15));
    assert_eq!(task_calls(&mut app, "task-m").await.len(), 35);
    assert_eq!(
        call_by_external_id(&mut app, "call-00020")
            .await
            .turns
            .len(),
        2
    );
}

async fn vendor_limits_and_outages_end_with_a_clear_error(app: TestApp) {
    let vendor = Vendor::start().await;
    let start = shanghai_now() - jiff::SignedDuration::from_hours(3);
    vendor.add_calls("task-l", 5, start);
    let mut client = sync_client(&app);
    create(&mut client, source(&vendor, "ivr", &["task-l"]))
        .await
        .expect("create");

    // A page larger than the limit (256 KiB in these tests).
    vendor.lock().huge_pages = Some(400 * 1024);
    let err = run(&mut client, "ivr").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("larger than the 262144-byte limit"),
        "{}",
        err.message()
    );

    // A last_page that keeps growing stops at the page limit (20 here):
    // pages 1-19 are pulled, page 20 says there are 21.
    {
        let mut s = vendor.lock();
        s.huge_pages = None;
        s.endless = true;
    }
    let err = run(&mut client, "ivr").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .contains("reports 21 pages, more than the limit of 20"),
        "{}",
        err.message()
    );
    assert_eq!(vendor.list_hits("task-l").len(), 20);
    let state = listed(&mut client).await[0].state.clone().unwrap();
    assert!(
        state.last_error.contains("limit of 20"),
        "{}",
        state.last_error
    );

    // An unreachable vendor: an answer within the deadline, the error kept.
    vendor.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = Instant::now();
    let err = run(&mut client, "ivr").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    let state = listed(&mut client).await[0].state.clone().unwrap();
    assert!(
        state.last_error.contains("query_done_task_phones"),
        "{}",
        state.last_error
    );
    assert!(!state.last_error.contains(TOKEN));
}

async fn a_scheduled_source_runs_by_itself(mut app: TestApp) {
    let vendor = Vendor::start().await;
    let start = shanghai_now() - jiff::SignedDuration::from_hours(3);
    let ids = vendor.add_calls("task-s", 17, start);
    let mut client = sync_client(&app);
    let mut spec = source(&vendor, "every-second", &["task-s"]);
    spec.interval = Some(pbjson_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    create(&mut client, spec).await.expect("create");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = listed(&mut client).await[0]
            .state
            .clone()
            .unwrap_or_default();
        if state.calls_synced == 17 && state.last_success_time.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "never synced: {state:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(task_calls(&mut app, "task-s").await, ids);
    // It keeps running on its interval, each run re-reading the list.
    let before = vendor.list_hits("task-s")[&1];
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(vendor.list_hits("task-s")[&1] > before);
}

async fn two_servers_share_a_source_and_pull_each_page_once(mut app: TestApp) {
    let vendor = Vendor::start().await;
    let start = shanghai_now() - jiff::SignedDuration::from_hours(3);
    let ids = vendor.add_calls("task-r", 50, start);
    let mut client = sync_client(&app);
    create(&mut client, source(&vendor, "shared", &["task-r"]))
        .await
        .expect("create");
    // A second replica on the same database.
    let url = app.database_url.clone();
    let other = helpers::spawn_app_with(|c| {
        sync_config(c);
        c.database_url = url;
    })
    .await;
    let mut other_client = sync_client(&other);
    vendor.lock().slow_from_page = Some((1, Duration::from_millis(300)));

    let (a, b) = tokio::join!(run(&mut client, "shared"), run(&mut other_client, "shared"));
    let (won, lost) = match (&a, &b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won.clone(), lost.clone()),
        other => panic!("exactly one replica pulls: {other:?}"),
    };
    assert_eq!(lost.code(), Code::Aborted, "{lost:?}");
    assert_eq!(won.inserted, 50);
    assert_eq!(
        vendor.list_hits("task-r").into_iter().collect::<Vec<_>>(),
        vec![(1, 1), (2, 1), (3, 1), (4, 1)],
        "each page pulled once"
    );
    assert_eq!(vendor.info_total(), 50);
    assert_eq!(task_calls(&mut app, "task-r").await, ids);
    // Once the lease is let go, the other replica may pull (nothing new).
    vendor.lock().slow_from_page = None;
    let again = run(&mut other_client, "shared")
        .await
        .expect("second replica");
    assert_eq!(
        (again.inserted, again.unchanged, again.details_fetched),
        (0, 50, 0)
    );
    other.stop().await;
}

type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

async fn pushed_and_pulled_copies_merge_and_a_forgotten_task_stops_alone(mut app: TestApp) {
    let vendor = Vendor::start().await;
    let start = shanghai_now() - jiff::SignedDuration::from_hours(3);
    let a = vendor.add_calls("task-a", 5, start);
    let b = vendor.add_calls("task-b", 3, start);
    // A forwarded (pushed) copy of one call arrives first, without turns.
    let (status, body) = app
        .post(
            "/hooks/smartivr",
            vendor.row_json(&a[2]).to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A gap: the vendor has calls no webhook delivered.
    let mut client = sync_client(&app);
    create(
        &mut client,
        source(&vendor, "two-tasks", &["task-a", "task-b"]),
    )
    .await
    .expect("create");
    // The vendor forgets task-a after the source was created.
    vendor.lock().tasks.remove("task-a");
    let err = run(&mut client, "two-tasks").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("task `task-a`"), "{}", err.message());
    assert!(err.message().contains("HTTP 404"), "{}", err.message());
    // task-b was pulled all the same.
    assert_eq!(task_calls(&mut app, "task-b").await, b);
    let state = listed(&mut client).await[0].state.clone().unwrap();
    assert!(state.last_error.contains("task-a"), "{}", state.last_error);
    assert!(state.last_success_time.is_none());

    // Back again: the pushed copy is completed, not duplicated.
    vendor.lock().tasks.insert("task-a".into());
    let again = run(&mut client, "two-tasks").await.expect("run");
    assert_eq!((again.inserted, again.updated), (4, 0), "{again:?}");
    assert_eq!(
        again.details_fetched, 4,
        "the pushed copy is as new as the vendor's"
    );
    assert_eq!(task_calls(&mut app, "task-a").await, a);
    assert_eq!((again.vendor_total, again.held), (8, 8));
    let state = listed(&mut client).await[0].state.clone().unwrap();
    assert!(state.last_error.is_empty() && state.last_success_time.is_some());
}

/// `callscope serve` as a child process on `database_url` at the default
/// log level; answers it, its gRPC address (from the `callscope listening
/// addr=…` log line) and its log lines so far.
fn serve_child(database_url: &str) -> (std::process::Child, String, Log) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_callscope"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--sync-lease-ms",
            "1000",
            "--sync-backoff-ms",
            "20",
            "--sync-rate-limit",
            "1000",
            "--database-url",
            database_url,
        ])
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start callscope");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log: Log = Default::default();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server log line");
        if let Some(rest) = line.split(" addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, addr, log)
}

async fn connect(addr: &str) -> SyncServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the child server");
    SyncServiceClient::new(channel)
}

async fn a_run_killed_midway_resumes_from_its_last_committed_page(mut app: TestApp) {
    let vendor = Vendor::start().await;
    let start = shanghai_now() - jiff::SignedDuration::from_hours(3);
    let ids = vendor.add_calls("task-k", 60, start);
    let (mut child, addr, first_log) = serve_child(&app.database_url);
    let mut client = connect(&addr).await;
    create(&mut client, source(&vendor, "crashy", &["task-k"]))
        .await
        .expect("create");
    // Page 3 of 4 hangs: the run is killed while it waits.
    vendor.lock().slow_from_page = Some((3, Duration::from_secs(600)));
    let mut running_client = client.clone();
    let running = tokio::spawn(async move { run(&mut running_client, "crashy").await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !vendor.list_hits("task-k").contains_key(&3) {
        assert!(Instant::now() < deadline, "page 3 never asked for");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = listed(&mut client).await[0].state.clone().unwrap();
    assert_eq!(
        state.tasks[0].next_page, 3,
        "pages 1 and 2 committed: {state:?}"
    );
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    child.wait().expect("reap");
    let _ = running.await;
    assert_eq!(task_calls(&mut app, "task-k").await.len(), 30);

    // A new process takes over once the dead one's lease (1 s) expires.
    vendor.lock().slow_from_page = None;
    let (mut child, addr, log) = serve_child(&app.database_url);
    let mut client = connect(&addr).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let resumed = run(&mut client, "crashy").await.expect("resumed run");
    // The cut window from page 3 (30 new calls), then a new window that finds
    // all 60 unchanged.
    assert_eq!((resumed.inserted, resumed.updated), (30, 0), "{resumed:?}");
    assert_eq!((resumed.unchanged, resumed.details_fetched), (60, 30));
    let hits = vendor.list_hits("task-k");
    assert_eq!(
        hits.into_iter().collect::<Vec<_>>(),
        vec![(1, 2), (2, 2), (3, 3), (4, 2)],
        "pages 1-2 not pulled again by the resumed window"
    );
    assert!(
        vendor.lock().info_hits.values().all(|n| *n == 1),
        "no record fetched twice"
    );
    assert_eq!(vendor.info_total(), 60);
    assert_eq!(task_calls(&mut app, "task-k").await, ids);
    let _ = child.kill();
    let _ = child.wait();
    // The vendor's token never reaches the log at the default level.
    let lines: Vec<String> = [first_log, log]
        .iter()
        .flat_map(|l| l.lock().unwrap().clone())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("sync run finished")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("smartivr-token")),
        "{lines:?}"
    );
}

/// Fast retries, small limits and a quick scheduler for these tests.
pub fn sync_config(c: &mut ServeConfig) {
    c.sync.sync_backoff_ms = 20;
    c.sync.sync_max_page_bytes = 256 * 1024;
    c.sync.sync_max_pages = 20;
    c.sync.sync_rate_limit = 1000;
    c.sync.sync_scheduler_ms = 200;
    c.sync.sync_request_timeout_ms = 5_000;
}

crate::backend_tests!(
    config: sync_config;
    sync_sources_are_created_listed_and_deleted_with_refusals,
    first_sync_is_complete_and_the_second_is_incremental,
    a_malformed_page_is_quarantined_with_its_url,
    vendor_limits_and_outages_end_with_a_clear_error,
    a_scheduled_source_runs_by_itself,
    two_servers_share_a_source_and_pull_each_page_once,
    a_run_killed_midway_resumes_from_its_last_committed_page,
    pushed_and_pulled_copies_merge_and_a_forgotten_task_stops_alone,
);
