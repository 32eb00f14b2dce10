//! Pulling from a stand-in smartivr on loopback (`SyncService.RunSync`):
//! records per second against fetching the same vendor answers alone, vendor
//! requests per record, and the process's peak RSS.

use std::time::Instant;

use callscope::proto::{self, sync_service_client::SyncServiceClient};
use futures_util::StreamExt;

use crate::report::{Goal, Measure};
use crate::server::Running;
use crate::smartivr_standin::{TOKEN, Vendor, shanghai_now};

const TASK: &str = "bench-task";

/// Pulls `calls` calls into a fresh SQLite database.
pub async fn run(calls: usize) -> anyhow::Result<Vec<Measure>> {
    let vendor = Vendor::start().await;
    // One call a minute, ending an hour ago; the overlap covers them all,
    // so the first window holds every call.
    let first = shanghai_now() - jiff::SignedDuration::from_mins(calls as i64 + 60);
    vendor.add_calls(TASK, calls, first);
    let overlap_secs = (calls as i64 + 1440) * 60;
    // The baseline: the same list pages and details fetched alone.
    let baseline = fetch_alone(&vendor, calls).await?;

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("sync.db").display());
    let server = Running::start_with(&url, |c| {
        // The bench measures callscope, not the politeness limit.
        c.sync.sync_rate_limit = 1_000_000;
        c.sync.sync_scheduler_ms = 0;
        // RunSync answers when the whole backlog is in.
        c.request_timeout_ms = 3_600_000;
    })
    .await?;
    let mut client = SyncServiceClient::new(server.channel().await?);
    client
        .create_sync_source(proto::CreateSyncSourceRequest {
            sync_source: Some(proto::SyncSource {
                name: "bench".into(),
                source: proto::Source::Smartivr as i32,
                base_url: vendor.base_url(),
                task_ids: vec![TASK.into()],
                headers: [("Authorization".to_owned(), TOKEN.to_owned())].into(),
                overlap: Some(pbjson_types::Duration {
                    seconds: overlap_secs,
                    nanos: 0,
                }),
                ..Default::default()
            }),
        })
        .await?;
    let began = Instant::now();
    let mut request = tonic::Request::new(proto::RunSyncRequest {
        name: "bench".into(),
    });
    request.set_timeout(std::time::Duration::from_secs(3600));
    let report = client.run_sync(request).await?.into_inner();
    let secs = began.elapsed().as_secs_f64();
    server.shutdown().await?;
    anyhow::ensure!(
        report.inserted as usize == calls,
        "pulled {} of {calls} calls: {report:?}",
        report.inserted
    );
    let rate = calls as f64 / secs;
    let per_record = report.vendor_requests as f64 / calls as f64;
    let list_only = (report.vendor_requests - report.details_fetched) as f64 / calls as f64;
    println!(
        "sync: {calls} calls in {secs:.1} s = {rate:.0} records/s (fetching alone: {baseline:.0}/s); \
         {} vendor requests = {per_record:.3} per record ({list_only:.3} list and dialing-list pages); peak RSS {}",
        report.vendor_requests,
        crate::report::peak_rss()
    );
    Ok(vec![
        Measure::ratio(
            "sync_records_per_s_vs_fetch",
            rate,
            baseline,
            "records/s",
            Goal::RatioAtLeast(0.5),
        )
        .with_note("baseline: the same pages and record_info fetched from the stand-in, 8 at a time, nothing stored"),
        Measure::absolute(
            "sync_requests_per_record",
            per_record,
            "requests",
            Goal::ValueBelow(1.2),
        )
        .with_note("one record_info per call, one list page per 15, plus the dialing list (one number per call here)"),
    ])
}

/// Records per second fetching the list pages and every record_info with a
/// plain client, 8 at a time, storing nothing.
async fn fetch_alone(vendor: &Vendor, calls: usize) -> anyhow::Result<f64> {
    let http = reqwest::Client::new();
    let base = vendor.base_url();
    let began = Instant::now();
    let pages = calls.div_ceil(15).max(1);
    let mut ids = Vec::with_capacity(calls);
    for page in 1..=pages {
        let body: serde_json::Value = http
            .post(format!("{base}/v1/task/query_done_task_phones"))
            .header("authorization", TOKEN)
            .json(&serde_json::json!({"task_id": TASK, "page": page, "start_at": "2000-01-01 00:00:00", "end_at": "2100-01-01 00:00:00"}))
            .send()
            .await?
            .json()
            .await?;
        let rows = body["data"].as_array().cloned().unwrap_or_default();
        ids.extend(
            rows.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
    }
    let fetched: Vec<anyhow::Result<usize>> =
        futures_util::stream::iter(ids.into_iter().map(|id| {
            let http = http.clone();
            let url = format!("{base}/v1/task/record_info/{TASK}/{id}");
            async move {
                let bytes = http
                    .get(url)
                    .header("authorization", TOKEN)
                    .send()
                    .await?
                    .bytes()
                    .await?;
                Ok(bytes.len())
            }
        }))
        .buffered(8)
        .collect()
        .await;
    for f in fetched {
        f?;
    }
    // The fetch-only requests were counted by the stand-in: reset its tally.
    {
        let mut s = vendor.lock();
        s.list_hits.clear();
        s.info_hits.clear();
    }
    Ok(calls as f64 / began.elapsed().as_secs_f64())
}
