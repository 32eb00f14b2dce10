//! TLS end to end, with certificates made at test time (rcgen): gRPC and the
//! webhooks over TLS on real sockets, client certificates (`--tls-client-ca`),
//! clear start-up errors for bad TLS flags, and PostgreSQL over TLS
//! (`sslmode=require`, `verify-full`) against a cluster of the test's own
//! started with `ssl=on`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use callscope::config::ServeConfig;
use callscope::proto::{
    self, call_service_client::CallServiceClient, ingest_service_client::IngestServiceClient,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use libtest_mimic::Trial;

use crate::helpers::{Sharing, block_on, trial};
use crate::pg_cluster::PgInstance;

/// The TLS tests: certificates made at test time, ports chosen by the OS.
pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "tls::grpc_over_tls_serves_health_and_calls".to_owned(),
            &[],
            Sharing::Parallel,
            || block_on(None, grpc_over_tls_serves_health_and_calls()),
        ),
        trial(
            "tls::plaintext_grpc_client_is_refused_and_tls_keeps_serving".to_owned(),
            &[],
            Sharing::Parallel,
            || {
                block_on(
                    None,
                    plaintext_grpc_client_is_refused_and_tls_keeps_serving(),
                )
            },
        ),
        trial(
            "tls::client_ca_requires_a_certificate_signed_by_it_on_both_ports".to_owned(),
            &[],
            Sharing::Parallel,
            || {
                block_on(
                    None,
                    client_ca_requires_a_certificate_signed_by_it_on_both_ports(),
                )
            },
        ),
        trial(
            "tls::webhooks_are_served_over_https_and_plaintext_is_refused".to_owned(),
            &[],
            Sharing::Parallel,
            || {
                block_on(
                    None,
                    webhooks_are_served_over_https_and_plaintext_is_refused(),
                )
            },
        ),
        trial(
            "tls::bad_tls_flags_are_clear_errors_at_start".to_owned(),
            &[],
            Sharing::Parallel,
            || block_on(None, bad_tls_flags_are_clear_errors_at_start()),
        ),
        trial(
            "tls::serve_binary_takes_tls_flags_from_the_environment".to_owned(),
            &[],
            Sharing::Parallel,
            serve_binary_takes_tls_flags_from_the_environment,
        ),
        trial(
            "tls::postgres::postgres_over_tls_with_sslmode_require_and_verify_full".to_owned(),
            &[crate::pg_cluster::postgres_binaries],
            Sharing::Alone,
            || {
                block_on(
                    None,
                    postgres_over_tls_with_sslmode_require_and_verify_full(),
                )
            },
        ),
    ]
}

/// How long any one client step may take before the test calls it a hang.
const STEP: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Certificates

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, both PEM.
#[derive(Clone)]
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ca key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("ca certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    fn server(&self) -> Leaf {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate.
    fn client(&self) -> Leaf {
        self.leaf(&[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "callscope test");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Writes `text` to `dir/name` and answers the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

// ---------------------------------------------------------------------------
// The server

/// The real server on port 0 with a fresh SQLite database, serving TLS.
struct TlsApp {
    grpc: SocketAddr,
    http: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TlsApp {
    /// Serves with `server` as its certificate; with `client_ca`, clients
    /// must present a certificate signed by it.
    async fn spawn(server: &Leaf, client_ca: Option<&Ca>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!("sqlite://{}", dir.path().join("callscope.db").display());
        let mut config = ServeConfig::new(database_url, SocketAddr::from(([127, 0, 0, 1], 0)));
        config.tls.cert = Some(write(dir.path(), "server.pem", &server.cert));
        config.tls.key = Some(write(dir.path(), "server.key", &server.key));
        config.tls.client_ca = client_ca.map(|ca| write(dir.path(), "client-ca.pem", &ca.pem()));
        let app = callscope::Application::build(config)
            .await
            .expect("build app");
        let (grpc, http) = (app.grpc_addr(), app.http_addr());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            grpc,
            http,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    /// Stops the server gracefully; it must stop within [`STEP`] and cleanly.
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(STEP, server)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server result");
        }
    }
}

impl Drop for TlsApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// ---------------------------------------------------------------------------
// Clients

/// A gRPC channel over TLS that trusts `ca`, optionally with a client
/// certificate.
async fn tls_channel(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Leaf>,
) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    let endpoint = Channel::from_shared(format!("https://{addr}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(STEP)
        .timeout(STEP);
    match tokio::time::timeout(STEP, endpoint.connect()).await {
        Ok(result) => result.map_err(|e| format!("{e:?}")),
        Err(_) => panic!("connecting to {addr} hung"),
    }
}

/// The overall health status, or why it could not be asked; bounded by [`STEP`].
async fn health(channel: &Channel) -> Result<i32, String> {
    let mut client = HealthClient::new(channel.clone());
    let check = client.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(STEP, check).await {
        Ok(Ok(response)) => Ok(response.into_inner().status),
        Ok(Err(status)) => Err(format!("{status:?}")),
        Err(_) => panic!("health check hung"),
    }
}

/// Connects and asks health; any failure on the way is the error.
async fn health_over(addr: SocketAddr, ca: &Ca, identity: Option<&Leaf>) -> Result<i32, String> {
    let channel = tls_channel(addr, ca, identity).await?;
    health(&channel).await
}

const SERVING: i32 = 1;

fn call(external_id: &str) -> proto::Call {
    proto::Call {
        source: proto::Source::Api as i32,
        external_id: external_id.to_owned(),
        callee: "+8613800000001".to_owned(),
        call_time: Some(callscope::proto::Timestamp {
            seconds: 1_795_000_000,
            nanos: 0,
        }),
        ..Default::default()
    }
}

/// Stores one call and answers the external ids ListCalls returns.
async fn upsert_and_list(channel: &Channel, external_id: &str) -> Vec<String> {
    IngestServiceClient::new(channel.clone())
        .upsert_calls(proto::UpsertCallsRequest {
            calls: vec![call(external_id)],
        })
        .await
        .expect("upsert calls");
    list(channel).await
}

async fn list(channel: &Channel) -> Vec<String> {
    CallServiceClient::new(channel.clone())
        .list_calls(proto::ListCallsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list calls")
        .into_inner()
        .calls
        .into_iter()
        .map(|c| c.external_id)
        .collect()
}

fn rustls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One HTTP/1.1 POST over a stream; answers the status line's code (`None`
/// when no HTTP answer came) and the whole response.
async fn post_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
    body: &[u8],
) -> (Option<u16>, String) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let exchange = async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body).await;
        let _ = stream.flush().await;
        let mut response = Vec::new();
        // A refused peer ends with an error or an alert: keep both.
        let read = stream.read_to_end(&mut response).await;
        (response, read.err())
    };
    let (response, error) = tokio::time::timeout(STEP, exchange)
        .await
        .expect("http exchange hung");
    let mut text = String::from_utf8_lossy(&response).to_string();
    if let Some(e) = error {
        text.push_str(&format!("[read error: {e}]"));
    }
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, text)
}

/// POSTs over HTTPS, trusting `ca`, optionally with a client certificate.
async fn https_post(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Leaf>,
    path: &str,
    body: &[u8],
) -> (Option<u16>, String) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("ca pem"))
        .expect("ca root");
    let builder = rustls::ClientConfig::builder_with_provider(rustls_provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).expect("cert pem")],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key pem"),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    let name = ServerName::try_from("localhost").expect("server name");
    match tokio::time::timeout(STEP, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => post_on(tls, path, body).await,
        Ok(Err(e)) => (None, format!("handshake failed: {e}")),
        Err(_) => panic!("tls handshake with {addr} hung"),
    }
}

/// POSTs in plaintext.
async fn plain_post(addr: SocketAddr, path: &str, body: &[u8]) -> (Option<u16>, String) {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    post_on(tcp, path, body).await
}

fn laaffic_push() -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/laaffic/push.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------
// gRPC and HTTP over TLS

async fn grpc_over_tls_serves_health_and_calls() {
    let ca = Ca::new("callscope test ca");
    let app = TlsApp::spawn(&ca.server(), None).await;

    let channel = tls_channel(app.grpc, &ca, None).await.expect("tls connect");
    assert_eq!(health(&channel).await, Ok(SERVING));
    assert_eq!(upsert_and_list(&channel, "tls-1").await, vec!["tls-1"]);

    // A client that trusts another CA does not accept the server.
    let other = Ca::new("another ca");
    let refused = health_over(app.grpc, &other, None).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("UnknownIssuer")),
        "untrusted server accepted: {refused:?}"
    );

    drop(channel);
    app.stop().await;
}

async fn plaintext_grpc_client_is_refused_and_tls_keeps_serving() {
    let ca = Ca::new("callscope test ca");
    let app = TlsApp::spawn(&ca.server(), None).await;

    // Plaintext HTTP/2 against the TLS port: an error, never a hang.
    let plain = async {
        let channel = Channel::from_shared(format!("http://{}", app.grpc))
            .expect("uri")
            .connect_timeout(STEP)
            .timeout(STEP)
            .connect()
            .await
            .map_err(|e| format!("{e:?}"))?;
        health(&channel).await
    };
    let answer = tokio::time::timeout(2 * STEP, plain)
        .await
        .expect("plaintext client hung");
    assert!(answer.is_err(), "plaintext client was served: {answer:?}");

    // Bytes that are not TLS at all, then a silent client: neither stops the server.
    let mut garbage = tokio::net::TcpStream::connect(app.grpc)
        .await
        .expect("connect");
    let _ = garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
    let _silent = tokio::net::TcpStream::connect(app.grpc)
        .await
        .expect("connect");

    assert_eq!(health_over(app.grpc, &ca, None).await, Ok(SERVING));
    let channel = tls_channel(app.grpc, &ca, None).await.expect("tls connect");
    assert_eq!(
        upsert_and_list(&channel, "after-plain").await,
        vec!["after-plain"]
    );
    drop(channel);
    app.stop().await;
}

async fn client_ca_requires_a_certificate_signed_by_it_on_both_ports() {
    let server_ca = Ca::new("server ca");
    let client_ca = Ca::new("client ca");
    let app = TlsApp::spawn(&server_ca.server(), Some(&client_ca)).await;
    let good = client_ca.client();
    let stranger = Ca::new("stranger ca").client();

    // gRPC: no certificate, or one from another CA, is refused.
    let none = health_over(app.grpc, &server_ca, None).await;
    assert!(
        none.as_ref()
            .is_err_and(|e| e.contains("CertificateRequired")),
        "served without a client certificate: {none:?}"
    );
    let foreign = health_over(app.grpc, &server_ca, Some(&stranger)).await;
    assert!(
        foreign.as_ref().is_err_and(|e| e.contains("UnknownCA")),
        "served a foreign certificate: {foreign:?}"
    );

    // A certificate signed by the client CA works, for health and for calls.
    let channel = tls_channel(app.grpc, &server_ca, Some(&good))
        .await
        .expect("mtls connect");
    assert_eq!(health(&channel).await, Ok(SERVING));
    assert_eq!(upsert_and_list(&channel, "mtls-1").await, vec!["mtls-1"]);

    // HTTP: the same rule.
    let body = laaffic_push();
    let (status, text) = https_post(app.http, &server_ca, None, "/hooks/laaffic", &body).await;
    assert_eq!(status, None, "webhook without a client certificate: {text}");
    assert!(text.contains("CertificateRequired"), "{text}");
    let (status, text) = https_post(
        app.http,
        &server_ca,
        Some(&stranger),
        "/hooks/laaffic",
        &body,
    )
    .await;
    assert_eq!(status, None, "webhook with a foreign certificate: {text}");
    assert!(text.contains("UnknownCA"), "{text}");
    let (status, text) =
        https_post(app.http, &server_ca, Some(&good), "/hooks/laaffic", &body).await;
    assert_eq!(status, Some(200), "{text}");

    let ids = list(&channel).await;
    assert!(ids.contains(&"22121121451211349002".to_owned()), "{ids:?}");
    drop(channel);
    app.stop().await;
}

async fn webhooks_are_served_over_https_and_plaintext_is_refused() {
    let ca = Ca::new("callscope test ca");
    let app = TlsApp::spawn(&ca.server(), None).await;
    let body = laaffic_push();

    let (status, text) = https_post(app.http, &ca, None, "/hooks/laaffic", &body).await;
    assert_eq!(status, Some(200), "{text}");
    assert!(text.contains("\"INSERTED\""), "{text}");

    // Plaintext HTTP gets no HTTP answer, and HTTPS goes on working after it,
    // also while another client stalls in its handshake.
    let _silent = tokio::net::TcpStream::connect(app.http)
        .await
        .expect("connect");
    let (status, text) = plain_post(app.http, "/hooks/laaffic", &body).await;
    assert_eq!(status, None, "plaintext webhook answered: {text:?}");
    // 0x15: the record type of a TLS alert.
    assert!(text.starts_with('\u{15}'), "no TLS alert: {text:?}");
    let (status, text) = https_post(app.http, &ca, None, "/hooks/laaffic", &body).await;
    assert_eq!(status, Some(200), "{text}");
    assert!(text.contains("\"UNCHANGED\""), "{text}");

    // The call came in through the webhook and is served over gRPC TLS.
    let channel = tls_channel(app.grpc, &ca, None).await.expect("tls connect");
    assert_eq!(list(&channel).await, vec!["22121121451211349002"]);
    drop(channel);
    app.stop().await;
}

// ---------------------------------------------------------------------------
// Start-up errors

/// The error `Application::build` gives for these TLS files (`None`: flag not given).
async fn start_error(cert: Option<&Path>, key: Option<&Path>, client_ca: Option<&Path>) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("callscope.db").display());
    let mut config = ServeConfig::new(database_url, SocketAddr::from(([127, 0, 0, 1], 0)));
    config.tls.cert = cert.map(Path::to_path_buf);
    config.tls.key = key.map(Path::to_path_buf);
    config.tls.client_ca = client_ca.map(Path::to_path_buf);
    match callscope::Application::build(config).await {
        Ok(_) => panic!("started with cert {cert:?}, key {key:?}, client CA {client_ca:?}"),
        Err(e) => format!("{e:#}"),
    }
}

async fn bad_tls_flags_are_clear_errors_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("callscope test ca");
    let server = ca.server();
    let cert = write(dir.path(), "server.pem", &server.cert);
    let key = write(dir.path(), "server.key", &server.key);
    let other_key = write(dir.path(), "other.key", &ca.server().key);
    let garbage = write(dir.path(), "garbage.pem", "not a pem file\n");
    let missing = dir.path().join("missing.pem");

    // (--tls-cert, --tls-key, --tls-client-ca, what the error must say)
    type Case<'a> = (
        Option<&'a Path>,
        Option<&'a Path>,
        Option<&'a Path>,
        &'a [&'a str],
    );
    let cases: [Case; 9] = [
        (Some(&cert), None, None, &["--tls-cert needs --tls-key"]),
        (None, Some(&key), None, &["--tls-key needs --tls-cert"]),
        (
            None,
            None,
            Some(&cert),
            &["--tls-client-ca needs --tls-cert"],
        ),
        (
            Some(&missing),
            Some(&key),
            None,
            &["--tls-cert", "missing.pem"],
        ),
        (
            Some(&cert),
            Some(&missing),
            None,
            &["--tls-key", "missing.pem"],
        ),
        (
            Some(&garbage),
            Some(&key),
            None,
            &["--tls-cert", "no certificate"],
        ),
        (
            Some(&cert),
            Some(&garbage),
            None,
            &["--tls-key", "no private key"],
        ),
        (
            Some(&cert),
            Some(&other_key),
            None,
            &["--tls-cert", "--tls-key"],
        ),
        (
            Some(&cert),
            Some(&key),
            Some(&garbage),
            &["--tls-client-ca"],
        ),
    ];
    for (cert, key, client_ca, wanted) in cases {
        let error = start_error(cert, key, client_ca).await;
        for part in wanted {
            assert!(error.contains(part), "{error:?} lacks {part:?}");
        }
    }
}

fn serve_binary_takes_tls_flags_from_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nowhere.pem");
    let output = Command::new(env!("CARGO_BIN_EXE_callscope"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("c.db").display()))
        .env("CALLSCOPE_TLS_CERT", &missing)
        .env("CALLSCOPE_TLS_KEY", &missing)
        .env_remove("CALLSCOPE_TLS_CLIENT_CA")
        .output()
        .expect("run callscope");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started: {stderr}");
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("nowhere.pem"),
        "{stderr}"
    );

    // A key without a certificate is refused before anything is opened.
    let output = Command::new(env!("CARGO_BIN_EXE_callscope"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("c.db").display()))
        .arg("--tls-key")
        .arg(&missing)
        .env_remove("CALLSCOPE_TLS_CERT")
        .env_remove("CALLSCOPE_TLS_KEY")
        .env_remove("CALLSCOPE_TLS_CLIENT_CA")
        .output()
        .expect("run callscope");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started: {stderr}");
    assert!(stderr.contains("--tls-key needs --tls-cert"), "{stderr}");
}

// ---------------------------------------------------------------------------
// PostgreSQL over TLS

/// Whether a connection made with `url` is encrypted, as the server sees it.
async fn connection_is_encrypted(url: &str) -> bool {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect with {url}: {e}"));
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .expect("pg_stat_ssl");
    let _ = conn.close().await;
    ssl
}

/// Builds and runs the real application on `database_url`, serving plaintext
/// gRPC on port 0; answers the channel and a handle that stops it.
async fn start_on(database_url: String) -> anyhow::Result<(Channel, oneshot::Sender<()>)> {
    let mut config = ServeConfig::new(database_url, SocketAddr::from(([127, 0, 0, 1], 0)));
    config.db_acquire_timeout_ms = 3_000;
    let app = callscope::Application::build(config).await?;
    let addr = app.grpc_addr();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    Ok((channel, tx))
}

async fn postgres_over_tls_with_sslmode_require_and_verify_full() {
    // The trial's prerequisite checked the binaries: a failure here is real.
    let mut instance = PgInstance::init().expect("a PostgreSQL cluster of its own");
    let ca = Ca::new("postgres test ca");
    let server = ca.server();
    let cert = instance
        .install_private_file("server.crt", &server.cert)
        .expect("certificate");
    let key = instance
        .install_private_file("server.key", &server.key)
        .expect("key");
    instance.start_on_free_port_with(&format!(
        "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        cert.display(),
        key.display()
    ));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let wrong_ca_file = write(dir.path(), "wrong-ca.pem", &Ca::new("wrong ca").pem());

    // sslmode=require: encrypted, and callscope starts and serves on it.
    let require = format!("{}?sslmode=require", instance.url());
    assert!(connection_is_encrypted(&require).await, "{require}");
    assert!(
        !connection_is_encrypted(&format!("{}?sslmode=disable", instance.url())).await,
        "pg_stat_ssl tells plaintext apart"
    );
    let (channel, stop) = start_on(require).await.expect("start on sslmode=require");
    assert_eq!(
        upsert_and_list(&channel, "pg-tls-1").await,
        vec!["pg-tls-1"]
    );
    let _ = stop.send(());

    // verify-full with the CA that signed the server's certificate.
    let verify_full = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        instance.url(),
        ca_file.display()
    );
    assert!(connection_is_encrypted(&verify_full).await, "{verify_full}");
    let (channel, stop) = start_on(verify_full)
        .await
        .expect("start on sslmode=verify-full");
    assert_eq!(upsert_and_list(&channel, "pg-tls-2").await.len(), 2);
    let _ = stop.send(());

    // verify-full with a CA that did not sign it: a clear error at start.
    let wrong = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        instance.url(),
        wrong_ca_file.display()
    );
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(2 * STEP, start_on(wrong))
        .await
        .expect("start with a wrong CA hung");
    let error = match result {
        Ok(_) => panic!("started although the server's certificate is not trusted"),
        Err(e) => format!("{e:#}"),
    };
    eprintln!(
        "verify-full with a wrong CA failed after {:?}: {error}",
        started.elapsed()
    );
    assert!(error.contains("opening postgres://"), "{error}");
    assert!(
        error.to_lowercase().contains("certificate") || error.contains("TLS"),
        "{error}"
    );
}
