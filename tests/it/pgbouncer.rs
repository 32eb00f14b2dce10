//! callscope behind PgBouncer in transaction mode: Debian's `pgbouncer`
//! (1.18, which does not track prepared statements), started by the test on
//! a free loopback port in front of the test PostgreSQL with two server
//! connections, so a client's consecutive transactions land on different
//! server connections.
//!
//! What it takes (README, PostgreSQL; docs/scaling.md, Step 3): the URL turns
//! sqlx's statement cache off (`statement-cache-capacity=0`); PgBouncer
//! ignores the startup parameters sqlx and callscope send
//! (`extra_float_digits`, `options`) and, as sqlx 0.9 still names every
//! statement with its cache off and never closes it, drops what a
//! transaction prepared when it ends (`server_reset_query = DEALLOCATE ALL`,
//! `server_reset_query_always = 1`); callscope runs every statement inside
//! an explicit transaction. The second trial shows what each missing piece
//! does.
//!
//! Without pgbouncer (as root: without a `postgres` user to run it as) or
//! `CALLSCOPE_TEST_POSTGRES_URL` the trials are ignored (failed under
//! `CI=true`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

use callscope::auth::AuthMode;
use callscope::domain::key::Role;
use callscope::proto::{
    self, CallFilter, CallOutcome, CreateSubscriptionRequest, GetCallRequest, GetCallStatsRequest,
    ListCallsRequest, UpsertCallsRequest, subscription_service_client::SubscriptionServiceClient,
};
use callscope::service::keys;
use callscope::store::{Store, StoreOptions};

use crate::helpers::{
    self, APP_ROLE, Backend, Sharing, TestApp, TestDatabase, block_on, postgres_url,
    spawn_app_on_with, trial,
};
use crate::pg_cluster::{chown_to, is_root};

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "pgbouncer::concurrent_rpcs_of_two_tenants_answer_exactly_through_pgbouncer".to_owned(),
            &[postgres_url, pgbouncer_binary],
            Sharing::Parallel,
            || {
                block_on(
                    Some(2),
                    concurrent_rpcs_of_two_tenants_answer_exactly_through_pgbouncer(),
                )
            },
        ),
        trial(
            "pgbouncer::without_each_setting_statements_fail_behind_pgbouncer_1_18".to_owned(),
            &[postgres_url, pgbouncer_binary],
            Sharing::Parallel,
            || {
                block_on(
                    Some(2),
                    without_each_setting_statements_fail_behind_pgbouncer_1_18(),
                )
            },
        ),
    ]
}

/// What callscope needs from PgBouncer 1.18 in transaction mode, besides
/// `statement-cache-capacity=0` in its URL.
const REQUIRED: &str = "ignore_startup_parameters = extra_float_digits, options\n\
                        server_reset_query = DEALLOCATE ALL\n\
                        server_reset_query_always = 1\n";

/// The parameter that turns sqlx's statement cache off, for a URL.
const NO_STATEMENT_CACHE: &str = "statement-cache-capacity=0";

// ------------------------------------------------------------ the trials

/// Calls per batch; tenant A's workers send 3 batches each, B's 2.
const BATCH: usize = 10;
const WORKERS_PER_TENANT: usize = 4;

async fn concurrent_rpcs_of_two_tenants_answer_exactly_through_pgbouncer() {
    let bouncer = PgBouncer::start(2, REQUIRED);
    let port = bouncer.port;
    let mut app = spawn_app_on_with(Backend::Postgres, |c| {
        c.database_url = format!("{}?{NO_STATEMENT_CACHE}", through(&c.database_url, port));
        c.auth = AuthMode::Keys;
        c.outgoing.allow_private_webhooks = true;
        c.outgoing.events_poll_ms = 50;
    })
    .await;
    assert!(app.database_url.contains(&format!(":{port}/")));
    // Keys are written through PgBouncer too (the store migrates again,
    // finding nothing to do).
    let store = Store::connect(&store_options(&app.database_url))
        .await
        .expect("open the database through pgbouncer");
    let key_a = keys::create_key(&store, "tenant-a", Role::Admin, "a")
        .await
        .expect("key a")
        .1;
    let key_b = keys::create_key(&store, "tenant-b", Role::Admin, "b")
        .await
        .expect("key b")
        .1;

    // Tenant A's webhook: the delivery worker lists tenants, claims
    // subscriptions and reads the event log through PgBouncer too.
    let receiver = Receiver::start().await;
    SubscriptionServiceClient::new(app.channel.clone())
        .create_subscription(req(
            CreateSubscriptionRequest {
                url: receiver.url(),
                filter: Some(CallFilter {
                    task_ids: vec!["bounce".to_owned()],
                    ..Default::default()
                }),
                event_types: vec![],
            },
            &key_a,
        ))
        .await
        .expect("create a subscription");

    // Eight workers at once, four per tenant, over 8 pooled connections
    // that PgBouncer multiplexes onto 2: each stores its batches and reads
    // each one back (the listing, the call, its figures) while the others
    // write.
    let mut workers = Vec::new();
    for worker in 0..2 * WORKERS_PER_TENANT {
        let (key, batches) = if worker % 2 == 0 {
            (key_a.clone(), 3)
        } else {
            (key_b.clone(), 2)
        };
        let channel = app.channel.clone();
        workers.push(tokio::spawn(async move {
            run_worker(channel, key, worker / 2, batches).await
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }

    check_tenant(&mut app, &key_a, 3).await;
    check_tenant(&mut app, &key_b, 2).await;

    // A call of tenant A is not tenant B's, though B has one with the same
    // external id.
    let a_call = app
        .calls
        .get_call(req(
            GetCallRequest {
                source: proto::Source::Api.into(),
                external_id: "w0-b0-c0".to_owned(),
                ..Default::default()
            },
            &key_a,
        ))
        .await
        .expect("A's call by its external id")
        .into_inner();
    let b_call = app
        .calls
        .get_call(req(
            GetCallRequest {
                source: proto::Source::Api.into(),
                external_id: "w0-b0-c0".to_owned(),
                ..Default::default()
            },
            &key_b,
        ))
        .await
        .expect("B's call by the same external id")
        .into_inner();
    assert_ne!(a_call.call_id, b_call.call_id);
    for (call_id, key) in [(&a_call.call_id, &key_b), (&b_call.call_id, &key_a)] {
        let status = app
            .calls
            .get_call(req(
                GetCallRequest {
                    call_id: call_id.clone(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .expect_err("another tenant's call");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }

    // Every insert of tenant A's, delivered; none of B's.
    let a_calls = WORKERS_PER_TENANT * 3 * BATCH;
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.events().len() < a_calls {
        assert!(
            Instant::now() < deadline,
            "{} of {a_calls} events delivered in 30 s",
            receiver.events().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.events().len(), a_calls);

    // The health check (a ping through PgBouncer), several at once.
    let checks = (0..8).map(|_| reqwest::get(format!("http://{}/healthz", app.http_addr)));
    for response in futures_util::future::join_all(checks).await {
        assert_eq!(response.expect("GET /healthz").status(), 200);
    }
    drop(store);
    app.stop().await;
    drop(bouncer);
}

/// Each piece of the set-up, missing, and what it breaks: deterministic
/// with one server connection, or with the reset that drops statements.
async fn without_each_setting_statements_fail_behind_pgbouncer_1_18() {
    let admin_url = std::env::var("CALLSCOPE_TEST_POSTGRES_URL").expect("checked");

    // No `ignore_startup_parameters`: sqlx sends `extra_float_digits` (and
    // callscope `options`), which PgBouncer refuses.
    let bare = PgBouncer::start(1, "");
    let err = match Store::connect(&store_options(&through(&admin_url, bare.port))).await {
        Ok(_) => panic!("pgbouncer accepted extra_float_digits"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("unsupported startup parameter: extra_float_digits"),
        "{err}"
    );

    // The statement cache off but no reset: sqlx 0.9 still prepares named
    // statements (sqlx_s_1, sqlx_s_2, … per client connection) and never
    // closes them, so a second client preparing its first statement on
    // the same server connection collides with the first client's.
    let options = PgConnectOptions::from_str(&through(&admin_url, bare.port))
        .expect("url")
        .extra_float_digits(None)
        .statement_cache_capacity(0);
    let mut first = options.connect().await.expect("first client");
    let mut second = options.connect().await.expect("second client");
    one_bound_statement_in_a_transaction(&mut first)
        .await
        .expect("the first client's statement");
    let err = one_bound_statement_in_a_transaction(&mut second)
        .await
        .expect_err("the second client's statement")
        .to_string();
    assert!(
        err.contains("prepared statement \"sqlx_s_1\" already exists"),
        "{err}"
    );
    first.close().await.expect("close");
    second.close().await.expect("close");
    drop(bare);

    let bouncer = PgBouncer::start(2, REQUIRED);
    // With the reset: a statement outside a transaction is prepared, then
    // PgBouncer releases the server connection (and drops the statement)
    // before it is bound and run. callscope runs none outside one.
    let options = PgConnectOptions::from_str(&through(&admin_url, bouncer.port))
        .expect("url")
        .statement_cache_capacity(0);
    let mut lone = options.connect().await.expect("client");
    let err = sqlx::query("SELECT $1::int8")
        .bind(1_i64)
        .execute(&mut lone)
        .await
        .expect_err("a lone bound statement")
        .to_string();
    assert!(
        err.contains("prepared statement \"sqlx_s_1\" does not exist"),
        "{err}"
    );
    lone.close().await.expect("close");

    // callscope with sqlx's statement cache on (the default URL): a cached
    // statement is gone on the next transaction's server connection.
    let database = TestDatabase::create().await;
    let store = Store::connect(&store_options(&through(&database.url, bouncer.port)))
        .await
        .expect("connect and migrate in one transaction");
    let mut failures = Vec::new();
    for _ in 0..4 {
        if let Err(e) = store.ping().await {
            failures.push(e.to_string());
        }
    }
    assert!(
        !failures.is_empty(),
        "every ping worked with the statement cache on"
    );
    for failure in &failures {
        assert!(
            failure.contains("prepared statement \"sqlx_s_") && failure.contains("does not exist"),
            "{failure}"
        );
    }
    drop(store);
    drop(database);
    drop(bouncer);
}

// ------------------------------------------------------------ the workload

/// The calls worker `worker` sends in batch `batch`: even ones answered with
/// a tag, talking (i + 1) seconds.
fn batch_calls(worker: usize, batch: usize) -> Vec<proto::Call> {
    (0..BATCH)
        .map(|i| {
            let mut call = helpers::call(
                &format!("w{worker}-b{batch}-c{i}"),
                &format!("+861380013{worker}{batch}{i:02}"),
                &format!("2026-11-2{}T0{worker}:{i:02}:00Z", batch + 1),
            );
            call.task_id = "bounce".to_owned();
            if i % 2 == 0 {
                call.outcome = CallOutcome::Answered.into();
                call.talk_ms = (i as i64 + 1) * 1000;
                call.tags = vec![helpers::tag("hot", &["interested"])];
            } else {
                call.outcome = CallOutcome::NoAnswer.into();
            }
            call
        })
        .collect()
}

fn ids_of(calls: &[proto::Call]) -> BTreeSet<String> {
    calls.iter().map(|c| c.external_id.clone()).collect()
}

/// Talk time of one batch's answered calls: 1 + 3 + 5 + 7 + 9 seconds.
const BATCH_TALK_MS: i64 = 25_000;

async fn run_worker(
    channel: tonic::transport::Channel,
    key: String,
    worker: usize,
    batches: usize,
) {
    use callscope::proto::{
        analytics_service_client::AnalyticsServiceClient, call_service_client::CallServiceClient,
        ingest_service_client::IngestServiceClient,
    };
    let mut ingest = IngestServiceClient::new(channel.clone());
    let mut calls = CallServiceClient::new(channel.clone());
    let mut analytics = AnalyticsServiceClient::new(channel);
    for batch in 0..batches {
        let sent = batch_calls(worker, batch);
        let stored = ingest
            .upsert_calls(req(
                UpsertCallsRequest {
                    calls: sent.clone(),
                },
                &key,
            ))
            .await
            .expect("upsert a batch")
            .into_inner();
        assert_eq!(
            (stored.inserted, stored.updated, stored.call_ids.len()),
            (BATCH as i32, 0, BATCH)
        );
        let filter = CallFilter {
            external_ids: ids_of(&sent).into_iter().collect(),
            ..Default::default()
        };
        let listed = calls
            .list_calls(req(
                ListCallsRequest {
                    filter: Some(filter.clone()),
                    page_size: 100,
                    include_total: true,
                    ..Default::default()
                },
                &key,
            ))
            .await
            .expect("list the batch")
            .into_inner();
        assert_eq!(ids_of(&listed.calls), ids_of(&sent));
        assert_eq!(listed.total_size, BATCH as i64);
        let got = calls
            .get_call(req(
                GetCallRequest {
                    call_id: stored.call_ids[0].clone(),
                    ..Default::default()
                },
                &key,
            ))
            .await
            .expect("get the batch's first call")
            .into_inner();
        assert_eq!(got.external_id, sent[0].external_id);
        assert_eq!(
            got.tags.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["hot"]
        );
        let stats = analytics
            .get_call_stats(req(
                GetCallStatsRequest {
                    filter: Some(filter),
                    ..Default::default()
                },
                &key,
            ))
            .await
            .expect("the batch's figures")
            .into_inner();
        assert_eq!(
            (stats.total_calls, stats.answered_calls, stats.talk_ms_total),
            (BATCH as i64, BATCH as i64 / 2, BATCH_TALK_MS)
        );
    }
    // The first batch again: nothing changes.
    let again = ingest
        .upsert_calls(req(
            UpsertCallsRequest {
                calls: batch_calls(worker, 0),
            },
            &key,
        ))
        .await
        .expect("upsert the first batch again")
        .into_inner();
    assert_eq!(
        (again.inserted, again.updated, again.unchanged),
        (0, 0, BATCH as i32)
    );
}

/// Everything the tenant's workers stored, and only that: the listing page
/// by page, a filtered listing, the figures.
async fn check_tenant(app: &mut TestApp, key: &str, batches: usize) {
    let all: BTreeSet<String> = (0..WORKERS_PER_TENANT)
        .flat_map(|w| (0..batches).flat_map(move |b| ids_of(&batch_calls(w, b))))
        .collect();
    let task = CallFilter {
        task_ids: vec!["bounce".to_owned()],
        ..Default::default()
    };
    let (listed, total) = list_all(app, key, task.clone(), 7).await;
    assert_eq!(listed.len(), all.len(), "no call twice across pages");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert_eq!(total, all.len() as i64);

    let answered_and_hot = CallFilter {
        outcomes: vec![CallOutcome::Answered.into()],
        tag_ids: vec!["hot".to_owned()],
        ..task.clone()
    };
    let (listed, _) = list_all(app, key, answered_and_hot, 9).await;
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|id| id.ends_with(['0', '2', '4', '6', '8']))
        .cloned()
        .collect();
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), expected);

    let stats = app
        .analytics
        .get_call_stats(req(
            GetCallStatsRequest {
                filter: Some(task),
                ..Default::default()
            },
            key,
        ))
        .await
        .expect("the tenant's figures")
        .into_inner();
    let batches_stored = (WORKERS_PER_TENANT * batches) as i64;
    assert_eq!(
        (stats.total_calls, stats.answered_calls, stats.talk_ms_total),
        (
            batches_stored * BATCH as i64,
            batches_stored * BATCH as i64 / 2,
            batches_stored * BATCH_TALK_MS
        )
    );
}

/// The external ids of every page of a listing, in order, and the total the
/// first page counted.
async fn list_all(
    app: &mut TestApp,
    key: &str,
    filter: CallFilter,
    page_size: i32,
) -> (Vec<String>, i64) {
    let mut ids = Vec::new();
    let mut total = None;
    let mut token = String::new();
    loop {
        let page = app
            .calls
            .list_calls(req(
                ListCallsRequest {
                    filter: Some(filter.clone()),
                    page_size,
                    page_token: token,
                    include_total: total.is_none(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .expect("list a page")
            .into_inner();
        assert!(page.calls.len() <= page_size as usize);
        total.get_or_insert(page.total_size);
        ids.extend(page.calls.into_iter().map(|c| c.external_id));
        if page.next_page_token.is_empty() {
            return (ids, total.unwrap_or_default());
        }
        token = page.next_page_token;
    }
}

/// A webhook receiver that answers 200 and keeps the event ids it got.
struct Receiver {
    addr: std::net::SocketAddr,
    events: Arc<Mutex<BTreeSet<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let events: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let kept = events.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| async move {
                let id = headers
                    .get("callscope-event-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                kept.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
                axum::http::StatusCode::OK
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, events }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn events(&self) -> BTreeSet<String> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// `message` with `authorization: Bearer key`.
fn req<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {key}")).expect("ascii key");
    request.metadata_mut().insert("authorization", value);
    request
}

fn store_options(url: &str) -> StoreOptions {
    StoreOptions {
        url: url.to_owned(),
        read_url: None,
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        busy_timeout: Duration::from_secs(10),
    }
}

/// One `SELECT $1` in a transaction of its own.
async fn one_bound_statement_in_a_transaction(
    conn: &mut sqlx::PgConnection,
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT $1::int8")
        .bind(1_i64)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

// ------------------------------------------------------------ pgbouncer

/// The pgbouncer binary: on `PATH`, or where Debian installs it.
fn find_pgbouncer() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// Prerequisite: pgbouncer, and as root a `postgres` user to run it as
/// (pgbouncer refuses to run as root).
fn pgbouncer_binary() -> Result<(), String> {
    find_pgbouncer().ok_or(
        "pgbouncer not found on PATH or in /usr/sbin \
         (apt-get install pgbouncer; .ci/run installs it)",
    )?;
    if is_root() {
        let user = Command::new("id").args(["-u", "postgres"]).output();
        if !user.is_ok_and(|o| o.status.success()) {
            return Err(
                "running as root and there is no `postgres` user to run pgbouncer as".into(),
            );
        }
    }
    Ok(())
}

/// `url` with its host and port replaced by PgBouncer's.
fn through(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
    let path = rest.find(['/', '?']).map_or("", |at| &rest[at..]);
    let at = if user.is_empty() { "" } else { "@" };
    format!("{scheme}://{user}{at}127.0.0.1:{port}{path}")
}

/// A PgBouncer of the test's own in transaction mode, in front of the
/// PostgreSQL of `CALLSCOPE_TEST_POSTGRES_URL` (every database, as whichever
/// user connects; the test cluster trusts them); stopped when dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts one with `pool_size` server connections per database and user,
    /// and `settings` (ini lines) added, on a port that is free now (tried
    /// again on another if something took it in between).
    fn start(pool_size: u32, settings: &str) -> PgBouncer {
        let admin_url = std::env::var("CALLSCOPE_TEST_POSTGRES_URL").expect("checked");
        let server = PgConnectOptions::from_str(&admin_url).expect("CALLSCOPE_TEST_POSTGRES_URL");
        let dir = tempfile::Builder::new()
            .prefix("callscope-pgbouncer-")
            .tempdir()
            .expect("temp dir");
        let run_as = is_root().then_some("postgres");
        chown_to(run_as, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let userlist = dir.path().join("userlist.txt");
        std::fs::write(
            &userlist,
            format!("\"{APP_ROLE}\" \"\"\n\"{}\" \"\"\n", server.get_username()),
        )
        .expect("write userlist.txt");
        let log = dir.path().join("pgbouncer.log");
        let ini = dir.path().join("pgbouncer.ini");
        for attempt in 1..=5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            std::fs::write(
                &ini,
                format!(
                    "[databases]\n\
                     * = host={host} port={server_port}\n\
                     [pgbouncer]\n\
                     listen_addr = 127.0.0.1\n\
                     listen_port = {port}\n\
                     unix_socket_dir =\n\
                     auth_type = trust\n\
                     auth_file = {userlist}\n\
                     pool_mode = transaction\n\
                     default_pool_size = {pool_size}\n\
                     max_client_conn = 200\n\
                     logfile = {log}\n\
                     {settings}",
                    host = server.get_host(),
                    server_port = server.get_port(),
                    userlist = userlist.display(),
                    log = log.display(),
                ),
            )
            .expect("write pgbouncer.ini");
            let mut command = Command::new(find_pgbouncer().expect("checked"));
            if let Some(user) = run_as {
                // Drops root by itself: the child is pgbouncer, not a
                // wrapper that would outlive a kill.
                command.args(["-u", user]);
            }
            let mut child = command
                .arg(&ini)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pgbouncer");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return PgBouncer {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                if let Ok(Some(status)) = child.try_wait() {
                    if attempt < 5 && log_text.contains("Address already in use") {
                        eprintln!("port {port} was taken, trying another");
                        break;
                    }
                    panic!("pgbouncer exited ({status}):\n{log_text}");
                }
                assert!(
                    Instant::now() < deadline,
                    "pgbouncer did not listen on {port} within 10 s:\n{log_text}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port for pgbouncer in 5 attempts");
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
