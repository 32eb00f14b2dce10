//! Test harness: starts the real server on port 0 with its own fresh database
//! and hands out generated gRPC clients connected to it over a real socket.

#![allow(dead_code)]

use std::net::SocketAddr;

use callscope::config::ServeConfig;
use callscope::proto::{
    self, analytics_service_client::AnalyticsServiceClient, call_service_client::CallServiceClient,
    ingest_service_client::IngestServiceClient,
};
use prost_types::Timestamp;
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
    /// A PostgreSQL test database to drop afterwards: (admin url, name).
    drop_database: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// The storage backends every integration test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed test (an `async fn(TestApp)`) once per backend, each time
/// on a fresh server with its own new database. PostgreSQL runs when
/// `CALLSCOPE_TEST_POSTGRES_URL` is set; with `CI=true` it must be.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = $crate::common::spawn_app_on($crate::common::Backend::Sqlite)
                        .await
                        .expect("sqlite app");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(app) = $crate::common::spawn_app_on($crate::common::Backend::Postgres).await else {
                        return;
                    };
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// Starts a server on a fresh SQLite database in a temporary directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server on a fresh database of `backend`; `None` when PostgreSQL is not
/// configured (and CI does not demand it).
pub async fn spawn_app_on(backend: Backend) -> Option<TestApp> {
    match backend {
        Backend::Sqlite => Some(spawn_app().await),
        Backend::Postgres => {
            let admin_url = match std::env::var("CALLSCOPE_TEST_POSTGRES_URL") {
                Ok(url) if !url.is_empty() => url,
                _ => {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "CALLSCOPE_TEST_POSTGRES_URL is not set; .ci/run sets it"
                    );
                    eprintln!("CALLSCOPE_TEST_POSTGRES_URL not set: skipping the PostgreSQL run");
                    return None;
                }
            };
            let database = format!("callscope_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                .await
                .expect("connect to the PostgreSQL admin database");
            sqlx::Executor::execute(
                &mut admin,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")),
            )
            .await
            .expect("create test database");
            let url = match admin_url.rsplit_once('/') {
                Some((base, _)) => format!("{base}/{database}"),
                None => panic!("CALLSCOPE_TEST_POSTGRES_URL has no database name"),
            };
            let mut app = spawn_app_with(|c| c.database_url = url).await;
            app.drop_database = Some((admin_url, database));
            Some(app)
        }
    }
}

/// Like [`spawn_app`], letting the test adjust the configuration first.
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
        drop_database: None,
        _dir: dir,
    }
}

impl TestApp {
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
        if let Some((admin_url, database)) = self.drop_database.take() {
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
    let text = String::from_utf8_lossy(&response).to_string();
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

/// A fixture file under `tests/fixtures/`.
pub fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}
