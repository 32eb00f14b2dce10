//! What the server writes to its log at the default level: never a phone
//! number, a transcript, a raw vendor payload or a database password, however
//! the data arrives and whatever goes wrong.

use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use libtest_mimic::Trial;

use crate::helpers::{Sharing, block_on, call, http_post, spawn_with_stderr_lines, trial};
use callscope::proto::{
    self, CallFilter, GetCallRequest, ListCallsRequest, UpsertCallsRequest,
    call_service_client::CallServiceClient, ingest_service_client::IngestServiceClient,
};

/// Texts that must never reach the log.
const SECRETS: &[&str] = &[
    "13812345678",
    "8613812345678",
    "138****5678",
    "17712349876",
    "我的银行卡号是",
    "robot-secret-line",
    "s3cretpassw0rd",
];

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "logs::sqlite::no_phone_transcript_or_payload_in_the_default_log".to_owned(),
            &[],
            Sharing::Parallel,
            || block_on(None, no_phone_transcript_or_payload_in_the_default_log()),
        ),
        trial(
            "logs::database_password_is_redacted_when_start_fails".to_owned(),
            &[],
            Sharing::Parallel,
            database_password_is_redacted_when_start_fails,
        ),
    ]
}

/// Starts `callscope` with `args` at the default log level; its stderr
/// lines arrive on the receiver.
fn start(args: &[&str]) -> (std::process::Child, Receiver<String>) {
    spawn_with_stderr_lines(
        Command::new(env!("CARGO_BIN_EXE_callscope"))
            .args(args)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1"),
    )
}

fn assert_clean(log: &[String]) {
    for line in log {
        for secret in SECRETS {
            assert!(!line.contains(secret), "`{secret}` in the log: {line}");
        }
    }
}

/// The value after `key=` on a log line.
fn field(line: &str, key: &str) -> Option<String> {
    let rest = line.split(&format!("{key}=")).nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

async fn no_phone_transcript_or_payload_in_the_default_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("logs.db").display());
    let (mut child, rx) = start(&[
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--database-url",
        &url,
    ]);
    let mut log = Vec::new();
    let (grpc, http) = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server log line");
        log.push(line.clone());
        if line.contains("callscope listening") {
            let grpc = field(&line, "addr").expect("grpc addr");
            let http = field(&line, "http_addr").expect("http addr");
            break (grpc, http);
        }
    };
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut ingest = IngestServiceClient::new(channel.clone());
    let mut calls = CallServiceClient::new(channel);

    let mut good = call("log-1", "+86 138-1234-5678", "2026-11-20T08:00:00Z");
    good.caller = "17712349876".into();
    good.turns = vec![proto::DialogueTurn {
        sequence: 1,
        customer_text: "我的银行卡号是 6222".into(),
        robot_text: "robot-secret-line".into(),
        ..Default::default()
    }];
    let stored = ingest
        .upsert_calls(UpsertCallsRequest { calls: vec![good] })
        .await
        .expect("upsert")
        .into_inner();
    // A bad batch: the error names fields, and nothing of the call is logged.
    let mut bad = call("log-2", "13812345678", "2026-11-20T08:00:00Z");
    bad.turns = vec![proto::DialogueTurn {
        sequence: 1,
        customer_text: "我的银行卡号是\0".into(),
        ..Default::default()
    }];
    ingest
        .upsert_calls(UpsertCallsRequest { calls: vec![bad] })
        .await
        .expect_err("a NUL in a transcript is refused");
    // Queries by phone and transcript, and a call that is not there.
    calls
        .list_calls(ListCallsRequest {
            filter: Some(CallFilter {
                phone: "13812345678".into(),
                transcript_contains: "我的银行卡号是".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("list");
    calls
        .get_call(GetCallRequest {
            call_id: stored.call_ids[0].clone(),
            ..Default::default()
        })
        .await
        .expect("get");
    calls
        .get_call(GetCallRequest {
            call_id: "no-such-call".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown call");
    // A vendor payload that is refused is kept, never logged.
    let http: std::net::SocketAddr = http.parse().expect("http addr");
    let payload = r#"{"phone": "13812345678", "callStatus": "我的银行卡号是", "broken"#;
    let (status, _) = http_post(http, "/hooks/laaffic", payload.as_bytes()).await;
    assert_eq!(status, 400);

    // The clients go first: graceful shutdown waits for open connections.
    drop((ingest, calls));
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log.extend(rx.try_iter());
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push(line);
    }
    assert!(
        log.iter().any(|l| l.contains("callscope stopped")),
        "the whole log was read: {log:?}"
    );
    assert_clean(&log);
}

fn database_password_is_redacted_when_start_fails() {
    // Nothing listens on port 1: the start fails and says why.
    let (mut child, rx) = start(&[
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--db-acquire-timeout-ms",
        "500",
        "--database-url",
        "postgres://callscope_app:s3cretpassw0rd@127.0.0.1:1/callscope",
    ]);
    let status = child.wait().expect("wait");
    assert!(!status.success(), "start must fail without a database");
    let log: Vec<String> = rx.iter().collect();
    assert!(
        log.iter().any(|l| l.contains("127.0.0.1:1")),
        "the error names the database: {log:?}"
    );
    assert_clean(&log);
}
