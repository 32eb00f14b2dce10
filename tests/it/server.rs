//! The `callscope serve` binary itself: it starts with nothing but flags, serves
//! health, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use libtest_mimic::Trial;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{Sharing, block_on, trial};

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "server::serve_binary_answers_health_and_stops_on_sigterm".to_owned(),
        &[],
        Sharing::Parallel,
        || block_on(None, serve_binary_answers_health_and_stops_on_sigterm()),
    )]
}

async fn serve_binary_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_callscope"))
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--database-url"])
        .arg(format!(
            "sqlite://{}",
            dir.path().join("fresh.db").display()
        ))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start callscope");

    // The log line `callscope listening addr=127.0.0.1:PORT` gives the port.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server log line");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(
        dir.path().join("fresh.db").exists(),
        "database file created"
    );

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "callscope.v1.CallService", "callscope.v1.IngestService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, 1, "{service:?} is SERVING");
    }

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("callscope stopped")),
        "{rest:?}"
    );
}
