//! API keys, roles and tenants: the `keys` commands, the gRPC layer, the
//! webhooks with keys, and the refusal to expose `--auth none`.

use std::time::Duration;

use libtest_mimic::Trial;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

use callscope::auth::AuthMode;
use callscope::config::ServeConfig;
use callscope::domain::key::Role;
use callscope::proto::{
    CallFilter, GetCallRequest, GetCallStatsRequest, ListCallsRequest, ListRejectedRecordsRequest,
};
use callscope::service::keys::{self, KEY_CACHE_TTL};
use callscope::store::{Store, StoreOptions};

use crate::helpers::{Sharing, TestApp, block_on, call, fixture, trial};

pub fn trials() -> Vec<Trial> {
    let mut trials = auth_keys::trials();
    trials.push(trial(
        "auth::cli_creates_lists_and_revokes_keys".to_owned(),
        &[],
        Sharing::Parallel,
        || block_on(None, cli_creates_lists_and_revokes_keys()),
    ));
    trials.push(trial(
        "auth::serve_binary_logs_key_ids_never_keys".to_owned(),
        &[],
        Sharing::Parallel,
        || block_on(None, serve_binary_logs_key_ids_never_keys()),
    ));
    trials.push(trial(
        "auth::none_refuses_a_non_loopback_address".to_owned(),
        &[],
        Sharing::Parallel,
        || block_on(None, none_refuses_a_non_loopback_address()),
    ));
    trials
}

/// The tests on a server with `--auth keys`, on both backends
/// (`auth_keys::<backend>::<test>`).
mod auth_keys {
    use super::*;

    fn with_keys(config: &mut ServeConfig) {
        config.auth = AuthMode::Keys;
    }

    crate::backend_tests!(config: with_keys;
        each_role_may_call_only_its_services,
        missing_garbage_and_revoked_keys_are_unauthenticated,
        health_and_reflection_need_no_key,
        tenants_see_only_their_own_calls,
        webhooks_need_an_ingest_key,
    );
}

/// The store of a running test server, for creating keys.
async fn store_of(app: &TestApp) -> Store {
    Store::connect(&StoreOptions {
        url: app.database_url.clone(),
        read_url: None,
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        busy_timeout: Duration::from_secs(10),
    })
    .await
    .expect("open the test database")
}

async fn new_key(store: &Store, tenant: &str, role: Role) -> String {
    keys::create_key(store, tenant, role, "test")
        .await
        .expect("create key")
        .1
}

/// A request carrying `authorization: <value>`.
fn with_auth<T>(message: T, value: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(value).expect("ascii header"),
    );
    request
}

fn bearer<T>(message: T, key: &str) -> Request<T> {
    with_auth(message, &format!("Bearer {key}"))
}

/// The code of one call of each service, made with `key`.
async fn codes(app: &mut TestApp, key: &str) -> [Code; 4] {
    let code = |r: Result<(), tonic::Status>| r.map_or_else(|s| s.code(), |()| Code::Ok);
    let calls = app
        .calls
        .list_calls(bearer(ListCallsRequest::default(), key))
        .await
        .map(drop);
    let analytics = app
        .analytics
        .get_call_stats(bearer(GetCallStatsRequest::default(), key))
        .await
        .map(drop);
    let ingest = app
        .ingest
        .list_rejected_records(bearer(ListRejectedRecordsRequest::default(), key))
        .await
        .map(drop);
    // A service this server does not know: admin only (an admin gets through
    // the layer to tonic's UNIMPLEMENTED).
    let unknown = raw_call(app, "/callscope.v1.NoSuchService/Anything", key).await;
    [code(calls), code(analytics), code(ingest), code(unknown)]
}

/// An empty unary call to any path.
async fn raw_call(app: &TestApp, path: &'static str, key: &str) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    grpc.unary(
        bearer((), key),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(drop)
}

async fn each_role_may_call_only_its_services(mut app: TestApp) {
    let store = store_of(&app).await;
    let read = new_key(&store, "acme", Role::Read).await;
    let ingest = new_key(&store, "acme", Role::Ingest).await;
    let admin = new_key(&store, "acme", Role::Admin).await;
    use Code::{Ok as Allowed, PermissionDenied as Denied, Unimplemented};
    assert_eq!(
        codes(&mut app, &read).await,
        [Allowed, Allowed, Denied, Denied],
        "read: CallService, AnalyticsService, IngestService, unknown"
    );
    assert_eq!(
        codes(&mut app, &ingest).await,
        [Denied, Denied, Allowed, Denied],
        "ingest"
    );
    assert_eq!(
        codes(&mut app, &admin).await,
        [Allowed, Allowed, Allowed, Unimplemented],
        "admin"
    );

    // A denial says which role is needed.
    let denied = app
        .ingest
        .upsert_calls(bearer(
            callscope::proto::UpsertCallsRequest {
                calls: vec![call("c1", "18651683344", "2026-11-01T00:00:00Z")],
            },
            &read,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("`ingest`"),
        "{}",
        denied.message()
    );

    // Use is recorded (in the background), at most once a minute.
    let mut used = false;
    for _ in 0..50 {
        let listed = keys::list_keys(&store, Some("acme")).await.unwrap();
        if listed.iter().all(|k| k.last_used_time.is_some()) {
            used = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(used, "last_used_time recorded for every key");
}

async fn missing_garbage_and_revoked_keys_are_unauthenticated(mut app: TestApp) {
    let store = store_of(&app).await;
    let key = new_key(&store, "acme", Role::Read).await;
    let list = ListCallsRequest::default;

    let missing = app.calls.list_calls(list()).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(missing.message().contains("authorization"), "{missing:?}");

    // The right id with a wrong secret, an unknown id, and plain garbage.
    let (prefix, _) = key.rsplit_once('_').unwrap();
    let wrong_secret = format!("{prefix}_{}", "0".repeat(64));
    let unknown_id = format!("csk_{}{}", "f".repeat(16), &key[20..]);
    let long = format!("Bearer {}", "a".repeat(8 * 1024));
    for value in [
        "Bearer garbage".to_owned(),
        "Bearer".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        key.clone(), // no scheme
        format!("Bearer {}", key.to_uppercase()),
        format!("Bearer {wrong_secret}"),
        format!("Bearer {unknown_id}"),
        format!("Bearer {key}%00"),
        long,
    ] {
        let refused = app
            .calls
            .list_calls(with_auth(list(), &value))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{value:.40}");
        assert!(
            !refused.message().contains(&key[20..]),
            "never echoes a key"
        );
    }

    // Headers past hyper's HTTP/2 header-list limit (16 KiB) never reach the
    // layer: 20 KiB is answered HTTP 431 (UNKNOWN to a gRPC client), 1 MiB
    // ends the connection with GOAWAY ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED).
    // Either way at once, and the server goes on serving.
    for size in [20 * 1024, 1024 * 1024] {
        let value = format!("Bearer {}", "a".repeat(size));
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            app.calls.list_calls(with_auth(list(), &value)),
        )
        .await
        .expect("a huge header is answered, not left hanging");
        assert!(answer.is_err(), "a {size}-byte header is refused");
    }
    app.calls
        .list_calls(bearer(list(), &key))
        .await
        .expect("still serving after a huge header");

    // Revoked: refused by every server within the cache lifetime.
    keys::revoke_key(&store, &key[4..20]).await.expect("revoke");
    let deadline = tokio::time::Instant::now() + KEY_CACHE_TTL + Duration::from_secs(3);
    let refused = loop {
        match app.calls.list_calls(bearer(list(), &key)).await {
            Err(status) => break status,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => panic!("a revoked key still works after {KEY_CACHE_TTL:?}"),
        }
    };
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("revoked"), "{refused:?}");
}

async fn health_and_reflection_need_no_key(app: TestApp) {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let health = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: "callscope.v1.CallService".into(),
        })
        .await
        .expect("health without a key")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");

    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tonic::codegen::tokio_stream::iter(vec![ask]))
        .await
        .expect("reflection without a key")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "callscope.v1.CallService")
    );
}

async fn tenants_see_only_their_own_calls(mut app: TestApp) {
    let store = store_of(&app).await;
    let alpha = new_key(&store, "alpha", Role::Admin).await;
    let beta = new_key(&store, "beta.eu-1", Role::Admin).await;
    let upsert = |external_id: &str| callscope::proto::UpsertCallsRequest {
        calls: vec![call(external_id, "18651683344", "2026-11-01T00:00:00Z")],
    };
    // The same external id in both tenants: two different calls.
    let a = app
        .ingest
        .upsert_calls(bearer(upsert("shared"), &alpha))
        .await
        .unwrap()
        .into_inner();
    let b = app
        .ingest
        .upsert_calls(bearer(upsert("shared"), &beta))
        .await
        .unwrap()
        .into_inner();
    app.ingest
        .upsert_calls(bearer(upsert("beta-only"), &beta))
        .await
        .unwrap();
    assert_eq!((a.inserted, b.inserted), (1, 1));
    let (a_id, b_id) = (a.call_ids[0].clone(), b.call_ids[0].clone());
    assert_ne!(a_id, b_id);

    let listed = |key: &str| {
        let request = bearer(
            ListCallsRequest {
                filter: Some(CallFilter::default()),
                page_size: 100,
                ..Default::default()
            },
            key,
        );
        let mut client = app.calls.clone();
        async move {
            let mut ids: Vec<String> = client
                .list_calls(request)
                .await
                .unwrap()
                .into_inner()
                .calls
                .into_iter()
                .map(|c| c.call_id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(listed(&alpha).await, vec![a_id.clone()]);
    assert_eq!(listed(&beta).await.len(), 2);
    assert!(!listed(&beta).await.contains(&a_id));

    let get = |id: &str, key: &str| {
        bearer(
            GetCallRequest {
                call_id: id.to_owned(),
                ..Default::default()
            },
            key,
        )
    };
    let other = app.calls.get_call(get(&b_id, &alpha)).await.unwrap_err();
    assert_eq!(other.code(), Code::NotFound);
    let own = app.calls.get_call(get(&a_id, &alpha)).await.unwrap();
    assert_eq!(own.into_inner().call_id, a_id);
    let other = app.calls.get_call(get(&a_id, &beta)).await.unwrap_err();
    assert_eq!(other.code(), Code::NotFound);

    // Statistics too count only the tenant's own calls.
    let stats = app
        .analytics
        .get_call_stats(bearer(GetCallStatsRequest::default(), &alpha))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.total_calls, 1);
}

/// A POST to the HTTP listener with extra header lines.
async fn post(app: &TestApp, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.http_addr)
        .await
        .expect("connect http");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        app.http_addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    crate::helpers::status_and_body(&response)
}

async fn webhooks_need_an_ingest_key(mut app: TestApp) {
    let store = store_of(&app).await;
    let ingest = new_key(&store, "acme", Role::Ingest).await;
    let read = new_key(&store, "acme", Role::Read).await;
    let admin = new_key(&store, "acme", Role::Admin).await;
    let other_admin = new_key(&store, "other", Role::Admin).await;
    let push = fixture("laaffic/push.json");
    let legacy = fixture("laaffic/push_legacy_busy.json");
    let alibaba = fixture("alibaba_lvms/receivecallrecord.json");

    // Refused before the body is read: nothing stored, nothing quarantined.
    let (prefix, _) = ingest.rsplit_once('_').unwrap();
    let wrong_secret = format!("{prefix}_{}", "0".repeat(64));
    let refusals: Vec<(String, String)> = vec![
        ("/hooks/laaffic".into(), String::new()),
        (
            "/hooks/laaffic".into(),
            "Authorization: Bearer nope\r\n".into(),
        ),
        (
            "/hooks/laaffic".into(),
            format!("Authorization: Bearer {read}\r\n"),
        ),
        ("/hooks/laaffic/garbage".into(), String::new()),
        (format!("/hooks/laaffic/{wrong_secret}"), String::new()),
        (format!("/hooks/laaffic/{read}"), String::new()),
        (format!("/hooks/laaffic/{ingest}%2F.."), String::new()),
        (format!("/hooks/laaffic/..%2F{ingest}"), String::new()),
        (format!("/hooks/laaffic/{ingest}/extra"), String::new()),
        (format!("/hooks/laaffic/%2e%2e/{ingest}"), String::new()),
        (format!("/hooks/laaffic/{ingest}%00"), String::new()),
        ("/hooks/smartivr/%00".into(), String::new()),
        (
            format!("/hooks/alibaba-lvms/{}", &ingest[..ingest.len() - 1]),
            String::new(),
        ),
    ];
    for (path, headers) in &refusals {
        let (status, body) = post(&app, path, headers, push.as_bytes()).await;
        assert_eq!(status, 401, "{path} {headers}: {body}");
        assert!(body.contains("UNAUTHENTICATED"), "{body}");
        assert!(!body.contains(&ingest[20..]), "never echoes a key: {body}");
    }
    // A header past hyper's limit: a clean 431, not a hang.
    let huge = format!("Authorization: Bearer {}\r\n", "a".repeat(1024 * 1024));
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(10),
        post(&app, "/hooks/laaffic", &huge, push.as_bytes()),
    )
    .await
    .expect("a huge header is answered, not left hanging");
    assert_eq!(status, 431);

    let quarantine = app
        .ingest
        .list_rejected_records(bearer(ListRejectedRecordsRequest::default(), &admin))
        .await
        .unwrap()
        .into_inner();
    assert!(quarantine.records.is_empty(), "{quarantine:?}");
    let none = app
        .calls
        .list_calls(bearer(ListCallsRequest::default(), &admin))
        .await
        .unwrap()
        .into_inner();
    assert!(none.calls.is_empty());

    // With the key as a header, and as the last path segment.
    let auth = format!("Authorization: Bearer {ingest}\r\n");
    let (status, body) = post(&app, "/hooks/laaffic", &auth, push.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let path = format!("/hooks/laaffic/{ingest}");
    let (status, body) = post(&app, &path, "", legacy.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let path = format!("/hooks/alibaba-lvms/{admin}");
    let (status, body) = post(&app, &path, "", alibaba.as_bytes()).await;
    assert_eq!(status, 200, "{body}");

    // Stored for the key's tenant, and only there.
    let own = app
        .calls
        .list_calls(bearer(ListCallsRequest::default(), &read))
        .await
        .unwrap()
        .into_inner();
    assert!(own.calls.len() >= 2, "{own:?}");
    let other = app
        .calls
        .list_calls(bearer(ListCallsRequest::default(), &other_admin))
        .await
        .unwrap()
        .into_inner();
    assert!(other.calls.is_empty(), "{other:?}");
}

async fn cli_creates_lists_and_revokes_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    let run = |args: &[&str]| keys_cli(&url, args);

    let (ok, out, err) = run(&[
        "create", "--tenant", "acme", "--role", "read", "--name", "crm",
    ]);
    assert!(ok, "{err}");
    let key = out.lines().last().expect("a last line").to_owned();
    assert!(key.starts_with("csk_") && !key.contains(' '), "{out}");
    assert!(callscope::domain::key::parse_key(&key).is_ok(), "{key}");
    let key_id = key[4..20].to_owned();
    let (ok, out, err) = run(&["create", "--tenant", "other", "--role", "admin"]);
    assert!(ok, "{err}");
    let other_id = out.lines().last().unwrap()[4..20].to_owned();

    let (ok, out, err) = run(&["list"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&key_id))
        .expect("the key listed, its id first");
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(
        &fields[..4],
        [key_id.as_str(), "acme", "read", "crm"],
        "{line}"
    );
    assert_eq!(fields[5], "never", "{line}");
    assert_eq!(fields[6], "active", "{line}");
    assert!(!out.contains(&key[20..]), "list never shows a secret");

    let (ok, out, _) = run(&["list", "--tenant", "acme"]);
    assert!(
        ok && out.lines().count() == 1 && !out.contains(&other_id),
        "{out}"
    );

    let (ok, _, err) = run(&["revoke", &key_id]);
    assert!(ok, "{err}");
    let (_, out, _) = run(&["list", "--tenant", "acme"]);
    assert!(out.trim_end().contains("\trevoked "), "{out}");

    // Bad input is refused with a reason, never stored.
    for bad in [
        &["create", "--tenant", "a b", "--role", "read"][..],
        &["create", "--tenant", "", "--role", "read"],
        &["create", "--tenant", &"t".repeat(65), "--role", "read"],
        &["create", "--tenant", "acme", "--role", "root"],
        &["revoke", "0123456789abcdef"],
        &["revoke", "../../etc"],
    ] {
        let (ok, _, err) = run(bad);
        assert!(!ok, "{bad:?} accepted");
        assert!(!err.is_empty(), "{bad:?} says why");
    }
    let (_, out, _) = run(&["list"]);
    assert_eq!(out.lines().count(), 2, "{out}");
}

async fn none_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("none.db").display());
    for (grpc, http) in [("0.0.0.0:0", "127.0.0.1:0"), ("127.0.0.1:0", "[::]:0")] {
        let mut config = ServeConfig::new(url.clone(), grpc.parse().unwrap());
        config.http_addr = http.parse().unwrap();
        let err = match callscope::Application::build(config).await {
            Ok(_) => panic!("{grpc} / {http} served without keys"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("--auth keys"), "{err}");
    }

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callscope"))
        .args([
            "serve",
            "--grpc-addr",
            "0.0.0.0:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--database-url", &url])
        .env("NO_COLOR", "1")
        .output()
        .expect("run callscope serve");
    assert!(!output.status.success(), "exposed serve must exit non-zero");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--auth keys"), "{stderr}");

    // With keys, any address may be served.
    let mut config = ServeConfig::new(url.clone(), "0.0.0.0:0".parse().unwrap());
    config.auth = AuthMode::Keys;
    callscope::Application::build(config)
        .await
        .expect("--auth keys may listen anywhere");
}

/// Runs `callscope keys …` against `url`: (success, stdout, stderr).
fn keys_cli(url: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callscope"))
        .arg("keys")
        .args(args)
        .args(["--database-url", url])
        .env("NO_COLOR", "1")
        .output()
        .expect("run callscope keys");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

async fn serve_binary_logs_key_ids_never_keys() {
    use std::process::Command;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("logs.db").display());
    let (ok, out, err) = keys_cli(&url, &["create", "--tenant", "acme", "--role", "admin"]);
    assert!(ok, "{err}");
    let key = out.lines().last().unwrap().to_owned();
    let key_id = key[4..20].to_owned();
    let wrong = format!("{}_{}", &key[..20], "e".repeat(64));

    let (mut child, rx) = crate::helpers::spawn_with_stderr_lines(
        Command::new(env!("CARGO_BIN_EXE_callscope"))
            .args(["serve", "--auth", "keys", "--grpc-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0", "--database-url", &url])
            .env("RUST_LOG", "info,callscope=debug")
            .env("NO_COLOR", "1"),
    );
    let mut lines = Vec::new();
    let listening = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server log line");
        lines.push(line.clone());
        if line.contains("callscope listening") {
            break line;
        }
    };
    let field = |name: &str| {
        listening
            .split(name)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("address in the log line")
            .to_owned()
    };
    let (addr, http_addr) = (field(" addr="), field("http_addr="));

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut calls = callscope::proto::call_service_client::CallServiceClient::new(channel);
    calls
        .list_calls(bearer(ListCallsRequest::default(), &key))
        .await
        .expect("a good key");
    let refused = calls
        .list_calls(bearer(ListCallsRequest::default(), &wrong))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let push = fixture("laaffic/push.json");
    let (status, body) = crate::helpers::http_post(
        http_addr.parse().unwrap(),
        &format!("/hooks/laaffic/{wrong}"),
        push.as_bytes(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = crate::helpers::http_post(
        http_addr.parse().unwrap(),
        &format!("/hooks/laaffic/{key}"),
        push.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The reader thread ends with the pipe.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        lines.push(line);
    }
    let log = lines.join("\n");
    assert!(
        !log.contains(&key[20..]),
        "a key's secret in the log:\n{log}"
    );
    assert!(
        !log.contains(&wrong[20..]),
        "a presented secret in the log:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("unauthenticated") && l.contains(&key_id)),
        "refusals are logged with the key id:\n{log}"
    );
}
