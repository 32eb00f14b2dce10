//! Real clients of the JSON API against a live server: the PHP example
//! (`examples/php/demo.php`, Debian's php-cli + php-curl) and schemathesis
//! fuzzing `/openapi.json`. Without php or schemathesis these are ignored
//! (failed under `CI=true`; `.ci/run` installs both).

use std::path::PathBuf;

use libtest_mimic::Trial;

use crate::helpers::{Sharing, TestApp, block_on, spawn_app_with, trial};

pub fn trials() -> Vec<Trial> {
    let mut trials = json_clients_php::trials();
    trials.extend(json_clients_connect::trials());
    trials.push(trial(
        "json_clients::sqlite::schemathesis_finds_no_5xx_and_no_schema_violation".to_owned(),
        &[schemathesis],
        Sharing::Parallel,
        || {
            block_on(None, async {
                schemathesis_finds_no_5xx_and_no_schema_violation(spawn_app_with(|_| {}).await)
                    .await
            })
        },
    ));
    trials
}

mod json_clients_php {
    use super::*;
    crate::backend_tests!(needs: [super::php]; php_example_upserts_lists_pages_reads_bad_request_and_exports_csv);
}

mod json_clients_connect {
    use super::*;
    crate::backend_tests!(needs: [super::connect_node]; connect_node_client_upserts_lists_reads_bad_request_and_exports);
}

fn connect_node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/connect-node")
}

/// node, and the example's packages installed (`npm ci` in
/// examples/connect-node).
fn connect_node() -> Result<(), String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node not found (.ci/run needs Node.js)".to_owned());
    }
    if !connect_node_dir()
        .join("node_modules/@connectrpc/connect-node")
        .exists()
    {
        return Err(
            "examples/connect-node has no node_modules (npm ci there; .ci/run does it)".to_owned(),
        );
    }
    Ok(())
}

/// `php` with the curl extension.
fn php() -> Result<(), String> {
    let out = std::process::Command::new("php").arg("-m").output();
    match out {
        Ok(o)
            if o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l == "curl") =>
        {
            Ok(())
        }
        Ok(_) => Err(
            "php has no curl extension (apt-get install php-curl; .ci/run installs it)".to_owned(),
        ),
        Err(_) => Err(
            "php not found (apt-get install php-cli php-curl; .ci/run installs them)".to_owned(),
        ),
    }
}

/// `$SCHEMATHESIS`, or `.venv/bin/schemathesis` (where `.ci/run` puts it).
fn schemathesis_bin() -> PathBuf {
    std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/schemathesis"))
}

/// schemathesis in the project's `.venv`.
fn schemathesis() -> Result<(), String> {
    if schemathesis_bin().exists() {
        Ok(())
    } else {
        Err("schemathesis not found in $SCHEMATHESIS or .venv/bin (pip install schemathesis; .ci/run installs it)".to_owned())
    }
}

async fn php_example_upserts_lists_pages_reads_bad_request_and_exports_csv(app: TestApp) {
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("calls.csv");
    let base = format!("http://{}", app.http_addr);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/php/demo.php");
    // Twice: the second run finds its calls stored and says so.
    for (run, upserted) in [
        (1, "inserted 3, unchanged 0"),
        (2, "inserted 0, unchanged 3"),
    ] {
        let out = tokio::process::Command::new("php")
            .arg(script)
            .arg(&base)
            .arg(&csv)
            .output()
            .await
            .expect("run php");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "run {run}:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("upserted: {upserted}")),
            "run {run}: {stdout}"
        );
        assert!(
            stdout.contains("listed over 2 pages: php-3, php-1"),
            "{stdout}"
        );
        assert!(
            stdout.contains("refused: calls[0].callee: has no digits"),
            "{stdout}"
        );
    }
    let csv = std::fs::read_to_string(&csv).expect("the CSV");
    let rows: Vec<&str> = csv.lines().collect();
    // ExportCalls streams in call_time order.
    assert_eq!(
        rows,
        [
            "external_id,task_id,callee,call_time,outcome,talk_ms",
            "php-1,php-demo,+8613800138001,2026-11-20T01:00:00Z,CALL_OUTCOME_ANSWERED,1000",
            "php-2,php-demo,+8613800138002,2026-11-20T02:00:00Z,CALL_OUTCOME_BUSY,2000",
            "php-3,php-demo,+8613800138003,2026-11-20T03:00:00Z,CALL_OUTCOME_ANSWERED,3000",
        ]
    );
    // What PHP stored is what a gRPC client reads.
    let mut app = app;
    let ids = app
        .external_ids(callscope::proto::CallFilter {
            task_ids: vec!["php-demo".into()],
            ..Default::default()
        })
        .await;
    assert_eq!(ids, ["php-3", "php-2", "php-1"]);
}

async fn schemathesis_finds_no_5xx_and_no_schema_violation(app: TestApp) {
    let base = format!("http://{}", app.http_addr);
    // schemathesis keeps a cache in its working directory: not in the repo.
    let cwd = tempfile::tempdir().expect("temp dir");
    let out = tokio::process::Command::new(schemathesis_bin())
        .current_dir(cwd.path())
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--url", &base])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "10", "--seed", "1", "--request-timeout", "20"])
        // A watch never ends by itself: nothing for a fuzzer to wait for.
        .args(["--exclude-operation-id", "CallService_WatchCalls"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
}

async fn connect_node_client_upserts_lists_reads_bad_request_and_exports(app: TestApp) {
    // The client's schemas: callscope's descriptor set, as protoc would write it.
    let dir = tempfile::tempdir().expect("temp dir");
    let descriptors = dir.path().join("callscope.binpb");
    std::fs::write(&descriptors, callscope::proto::FILE_DESCRIPTOR_SET).expect("write descriptors");
    let out = tokio::process::Command::new("node")
        .arg("demo.mjs")
        .arg(format!("http://{}", app.http_addr))
        .arg(&descriptors)
        .current_dir(connect_node_dir())
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "upserted: inserted 3, unchanged 0",
            "listed over 2 pages: node-3, node-2, node-1",
            "refused: calls[0].callee: has no digits",
            "exported: node-1, node-2, node-3",
            "OK",
        ]
    );
    let mut app = app;
    let ids = app
        .external_ids(callscope::proto::CallFilter {
            task_ids: vec!["node-demo".into()],
            ..Default::default()
        })
        .await;
    assert_eq!(ids, ["node-3", "node-2", "node-1"]);
}
