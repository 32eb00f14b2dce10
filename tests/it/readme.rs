//! Runs the README's grpcurl examples, exactly as written, with the real
//! grpcurl binary against a real server: a README line that does not work is a
//! failing test. Without grpcurl these tests are ignored (failed under
//! `CI=true`).

use std::path::PathBuf;

use crate::helpers::{self, TestApp};

/// The grpcurl binary (see [`helpers::find_grpcurl`]); the trials list
/// [`helpers::grpcurl`] as a prerequisite, so it is there when they run.
fn grpcurl() -> PathBuf {
    helpers::find_grpcurl().unwrap_or_else(|why| panic!("{why}"))
}

/// The ```sh blocks of the README that call grpcurl or curl, in order.
fn readme_grpcurl_blocks() -> Vec<String> {
    let readme = include_str!("../../README.md");
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
    let grpcurl = grpcurl();
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
    // The smartivr account of "Pulling from smartivr": a stand-in with 20
    // calls of one task, two hours old.
    let vendor = crate::smartivr_standin::Vendor::start().await;
    vendor.add_calls(
        "1bcecc13-e873-4910-913c-d9246a891280",
        20,
        crate::smartivr_standin::shanghai_now() - jiff::SignedDuration::from_hours(2),
    );
    let vendor_addr = vendor.addr.to_string();
    let mut outputs = Vec::new();
    for block in &blocks {
        let script = block
            .replace("127.0.0.1:50051", &app.addr.to_string())
            .replace("127.0.0.1:8080", &app.http_addr.to_string())
            .replace("127.0.0.1:9090", &vendor_addr);
        let out = tokio::process::Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(&script)
            .env(
                "PATH",
                format!(
                    "{bin_dir}:{}:{}",
                    // `callscope export` blocks run the binary under test.
                    std::path::Path::new(env!("CARGO_BIN_EXE_callscope"))
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    std::env::var("PATH").unwrap_or_default()
                ),
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
        "\"calls\": \"1\"",
        "RECORD_OUTCOME_ERASED",
        "\"deletedCalls\": \"1\"",
        "\"field\":\"filter\"",
        "\"callsTotal\": \"2\"",
        "\"scriptId\": \"297\"",
        "\"intentLevels\"",
        "\"tagGroups\"",
        "\"headerNames\": [",
        "\"inserted\": \"20\"",
        "\"pages\": \"4\"",
        "\"vendorRequests\": \"24\"",
        "\"detailsFetched\": \"20\"",
        "\"vendorTotal\": \"20\"",
        "\"held\": \"20\"",
        "\"callsSynced\": \"20\"",
        "sync source `no-such-source` not found",
        "x-request-id: readme-req-1",
        "grpc_method=\"ListCalls\",grpc_code=\"OK\"",
        "call_id,source,external_id,task_id",
        "\"type\": \"CALL_EVENT_TYPE_CREATED\"",
        "\"externalId\": \"hot-lead-1\"",
        "\"signingSecret\": \"whsec_",
        "\"intentLevelIds\": [",
        "\"field\":\"url\"",
        // The curl twins over JSON.
        "\"field\":\"filter.taskIdz\"",
        "\"code\":\"invalid_argument\"",
        "/callscope.v1.CallService/ListCalls\n",
        "\"unchanged\":2",
        "\"customerText\":\"多少钱?不再见,再见。\"",
        "{\"status\":\"SERVING\"}",
        "demo-1 ",
        "\"externalId\":\"hot-lead-2\"",
        "\"type\":\"CALL_EVENT_TYPE_CREATED\"",
        "\"taskId\":\"spring-campaign\"",
        "\"unchanged\":\"20\"",
        "smartivr-json smartivr-main",
        "https://crm.example.com/callscope/json-events",
        "\"deliveries\"",
    ] {
        assert!(
            all.contains(expected),
            "README output lacks {expected}:\n{all}"
        );
    }
}

async fn grpcurl_lists_and_describes_through_reflection(app: TestApp) {
    let grpcurl = grpcurl();
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
        "callscope.v1.AdminService",
        "callscope.v1.AnalyticsService",
        "callscope.v1.CallService",
        "callscope.v1.CatalogService",
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

crate::backend_tests!(
    needs: [helpers::grpcurl];
    readme_grpcurl_examples_work_as_written,
    grpcurl_lists_and_describes_through_reflection
);
