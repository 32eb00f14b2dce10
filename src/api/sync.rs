//! `callscope.v1.SyncService`: sources pulled from vendor query APIs.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::{timestamp_ms, to_timestamp};
use super::status::invalid_argument;
use crate::domain::sync::{DEFAULT_OVERLAP_MS, StoredSyncSource, SyncRunReport, SyncSourceSpec};
use crate::domain::{self, Source, Violations};
use crate::proto::{
    self, CreateSyncSourceRequest, DeleteSyncSourceRequest, DeleteSyncSourceResponse,
    ListSyncSourcesRequest, ListSyncSourcesResponse, RunSyncRequest,
    sync_service_server::SyncService,
};

pub struct SyncApi(pub ApiContext);

#[tonic::async_trait]
impl SyncService for SyncApi {
    // Headers hold the vendor's token: the request is never logged.
    #[tracing::instrument(skip_all)]
    async fn create_sync_source(
        &self,
        request: Request<CreateSyncSourceRequest>,
    ) -> Result<Response<proto::SyncSource>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let spec = spec_from_proto(req.sync_source.as_ref()).map_err(|v| invalid_argument(&v))?;
        let stored = self.0.service.create_sync_source(tenant, spec).await?;
        Ok(Response::new(source_to_proto(&stored)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_sync_sources(
        &self,
        request: Request<ListSyncSourcesRequest>,
    ) -> Result<Response<ListSyncSourcesResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let sources = self.0.service.list_sync_sources(tenant).await?;
        Ok(Response::new(ListSyncSourcesResponse {
            sync_sources: sources.iter().map(source_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(name = %request.get_ref().name))]
    async fn delete_sync_source(
        &self,
        request: Request<DeleteSyncSourceRequest>,
    ) -> Result<Response<DeleteSyncSourceResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        self.0.service.delete_sync_source(tenant, &req.name).await?;
        Ok(Response::new(DeleteSyncSourceResponse {}))
    }

    #[tracing::instrument(skip_all, fields(name = %request.get_ref().name))]
    async fn run_sync(
        &self,
        request: Request<RunSyncRequest>,
    ) -> Result<Response<proto::SyncRun>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let report = self.0.service.run_sync(tenant, &req.name).await?;
        Ok(Response::new(run_to_proto(&report)))
    }
}

/// A `google.protobuf.Duration` in milliseconds, or a violation at `path`.
fn duration_ms(d: &pbjson_types::Duration, path: &str, v: &mut Violations) -> Option<i64> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 || d.seconds > 10 * 366 * 86_400 {
        v.add(path, "must be a non-negative duration of at most ten years");
        return None;
    }
    Some(d.seconds * 1000 + i64::from(d.nanos / 1_000_000))
}

fn to_duration(ms: i64) -> pbjson_types::Duration {
    pbjson_types::Duration {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn spec_from_proto(source: Option<&proto::SyncSource>) -> Result<SyncSourceSpec, Violations> {
    let mut v = Violations::new();
    let Some(s) = source else {
        return Err(Violations::one("sync_source", "is required"));
    };
    let vendor = match Source::from_code(s.source) {
        Some(source) => source,
        None => {
            v.add("sync_source.source", "is not a known source");
            Source::Api
        }
    };
    let interval_ms = s
        .interval
        .as_ref()
        .and_then(|d| duration_ms(d, "sync_source.interval", &mut v))
        .unwrap_or(0);
    let overlap_ms = s
        .overlap
        .as_ref()
        .and_then(|d| duration_ms(d, "sync_source.overlap", &mut v))
        .unwrap_or(DEFAULT_OVERLAP_MS);
    let start_time = s
        .start_time
        .as_ref()
        .and_then(|t| timestamp_ms(t, "sync_source.start_time", &mut v));
    let spec = SyncSourceSpec {
        name: s.name.clone(),
        source: vendor,
        base_url: s.base_url.clone(),
        task_ids: s.task_ids.clone(),
        headers: s
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        interval_ms,
        overlap_ms,
        start_time,
    };
    v.into_result(spec)
}

/// A stored source as the API shows it: header values never leave.
fn source_to_proto(s: &StoredSyncSource) -> proto::SyncSource {
    let now = domain::now_ms();
    let state = &s.state;
    let tasks: Vec<proto::SyncTaskState> = s
        .checkpoints
        .iter()
        .map(|c| proto::SyncTaskState {
            task_id: c.task_id.clone(),
            window_start: Some(to_timestamp(c.window_start)),
            window_end: Some(to_timestamp(c.window_end)),
            next_page: c.next_page,
            vendor_total: c.vendor_total,
            held: c.held,
            synced_to: c.synced_to.map(to_timestamp),
        })
        .collect();
    proto::SyncSource {
        name: s.spec.name.clone(),
        source: s.spec.source.code(),
        base_url: s.spec.base_url.clone(),
        task_ids: s.spec.task_ids.clone(),
        headers: Default::default(),
        header_names: s.spec.headers.keys().cloned().collect(),
        interval: (s.spec.interval_ms > 0).then(|| to_duration(s.spec.interval_ms)),
        start_time: s.spec.start_time.map(to_timestamp),
        overlap: Some(to_duration(s.spec.overlap_ms)),
        state: Some(proto::SyncState {
            last_run_time: state.last_run_time.map(to_timestamp),
            last_success_time: state.last_success_time.map(to_timestamp),
            last_error: state.last_error.clone(),
            calls_synced: state.calls_synced,
            lag: state
                .newest_update_time
                .map(|t| to_duration(now.saturating_sub(t).max(0))),
            newest_update_time: state.newest_update_time.map(to_timestamp),
            pages: state.pages,
            errors: state.errors,
            retries: state.retries,
            vendor_requests: state.vendor_requests,
            vendor_total: tasks.iter().map(|t| t.vendor_total).sum(),
            held: tasks.iter().map(|t| t.held).sum(),
            tasks,
        }),
    }
}

fn run_to_proto(r: &SyncRunReport) -> proto::SyncRun {
    proto::SyncRun {
        name: r.name.clone(),
        inserted: r.inserted,
        updated: r.updated,
        unchanged: r.unchanged,
        rejected: r.rejected,
        pages: r.pages,
        errors: r.errors,
        start_time: Some(to_timestamp(r.start_time)),
        end_time: Some(to_timestamp(r.end_time)),
        vendor_requests: r.vendor_requests,
        retries: r.retries,
        details_fetched: r.details_fetched,
        vendor_total: r.vendor_total,
        held: r.held,
        error: r.error.clone(),
        error_messages: r.error_messages.clone(),
    }
}
