//! SyncService: sources stored in the database, and the pull of one source —
//! page a task's `query_done_task_phones` over a window in the vendor's zone,
//! fetch `record_info` only for calls that are new or changed, pull the
//! dialing list, and store every page with the checkpoint that moves past
//! it, through the same ingest path and quarantine as pushed records.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use governor::DefaultDirectRateLimiter;
use serde_json::{Map, Value};

use super::ingest::{Channel, RecordOutcome};
use super::{CallScope, ServiceError};
use crate::domain::sync::{
    StoredSyncSource, SyncCheckpoint, SyncRunReport, SyncSourceSpec, check_name,
    check_path_segment, validate_spec,
};
use crate::domain::{self, Source, UnixMs, Violations};
use crate::store::IngestBatch;
use crate::sync::SyncSettings;
use crate::sync::client::{VendorClient, VendorError, rate_limiter};

/// The pull's settings and each source's request-rate limiter, shared by
/// every run in this process.
pub struct SyncRuntime {
    pub settings: SyncSettings,
    limiters: Mutex<HashMap<(String, String), Arc<DefaultDirectRateLimiter>>>,
}

impl SyncRuntime {
    pub fn new(settings: SyncSettings) -> Self {
        Self {
            settings,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// The source's limiter: one per source, whichever run uses it.
    fn limiter(&self, tenant: &str, name: &str) -> Arc<DefaultDirectRateLimiter> {
        let mut map = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((tenant.to_owned(), name.to_owned()))
            .or_insert_with(|| rate_limiter(self.settings.rate_per_second))
            .clone()
    }
}

impl Default for SyncRuntime {
    fn default() -> Self {
        Self::new(SyncSettings::default())
    }
}

/// What stops a task or a whole run early.
#[derive(Debug)]
enum Stop {
    /// The vendor cannot serve (unreachable, 5xx/429 after every retry):
    /// the other tasks would fail the same way.
    Unavailable(String),
    /// This task cannot go on (a refused list page, a limit, an error
    /// answer); the others may.
    Task(String),
    /// The lease passed to another replica: nothing more is written.
    LeaseLost,
    Store(ServiceError),
}

impl From<ServiceError> for Stop {
    fn from(e: ServiceError) -> Self {
        Stop::Store(e)
    }
}

impl From<crate::store::StoreError> for Stop {
    fn from(e: crate::store::StoreError) -> Self {
        Stop::Store(e.into())
    }
}

fn vendor_stop(e: VendorError) -> Stop {
    match e {
        VendorError::Unavailable { .. } => Stop::Unavailable(e.to_string()),
        other => Stop::Task(other.to_string()),
    }
}

impl CallScope {
    /// Stores a new source after asking the vendor about each task: an id
    /// the vendor refuses is the client's mistake, caught now rather than at
    /// every run.
    pub async fn create_sync_source(
        &self,
        tenant: &str,
        mut spec: SyncSourceSpec,
    ) -> Result<StoredSyncSource, ServiceError> {
        let v = validate_spec(&mut spec, "sync_source");
        if !v.is_empty() {
            return Err(v.into());
        }
        if self
            .store
            .get_sync_source(tenant, &spec.name)
            .await?
            .is_some()
        {
            return Err(already_exists(&spec.name));
        }
        self.probe_tasks(&spec).await?;
        let now = domain::now_ms();
        if !self.store.create_sync_source(tenant, &spec, now).await? {
            return Err(already_exists(&spec.name));
        }
        tracing::info!(tenant, sync_source = %spec.name, base_url = %spec.base_url, tasks = spec.task_ids.len(), "sync source created");
        self.store
            .get_sync_source(tenant, &spec.name)
            .await?
            .ok_or(ServiceError::Internal)
    }

    pub async fn list_sync_sources(
        &self,
        tenant: &str,
    ) -> Result<Vec<StoredSyncSource>, ServiceError> {
        Ok(self.store.list_sync_sources(tenant).await?)
    }

    pub async fn delete_sync_source(&self, tenant: &str, name: &str) -> Result<(), ServiceError> {
        check_name(name).map_err(|why| Violations::one("name", why))?;
        if !self.store.delete_sync_source(tenant, name).await? {
            return Err(not_found(name));
        }
        tracing::info!(tenant, sync_source = name, "sync source deleted");
        Ok(())
    }

    /// Pulls the source now and answers when done. The pull runs on a task
    /// of its own, so a client that gives up does not cut it short.
    pub async fn run_sync(&self, tenant: &str, name: &str) -> Result<SyncRunReport, ServiceError> {
        check_name(name).map_err(|why| Violations::one("name", why))?;
        let source = self
            .store
            .get_sync_source(tenant, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let this = self.clone();
        let tenant = tenant.to_owned();
        tokio::spawn(async move { this.pull(&tenant, source).await })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "sync run panicked");
                ServiceError::Internal
            })?
    }

    /// Asks the vendor for page 1 of each task over an empty window.
    async fn probe_tasks(&self, spec: &SyncSourceSpec) -> Result<(), ServiceError> {
        let settings = &self.sync.settings;
        let client = VendorClient::new(
            &spec.base_url,
            &spec.headers,
            settings,
            rate_limiter(settings.rate_per_second),
        )
        .map_err(|why| Violations::one("sync_source.base_url", why))?;
        let url = client
            .url(LIST_PATH)
            .map_err(|why| Violations::one("sync_source.base_url", why))?;
        let now = local_time(domain::now_ms(), &self.sources.smartivr().time_zone);
        for (i, task) in spec.task_ids.iter().enumerate() {
            let body = serde_json::json!({
                "task_id": task, "page": 1, "start_at": now, "end_at": now,
            });
            let field = format!("sync_source.task_ids[{i}]");
            match client.post_json(&url, &body).await {
                Ok(bytes) => {
                    if let Err(PageError::Vendor(why) | PageError::Malformed(why)) =
                        ListPage::parse(&bytes)
                    {
                        return Err(Violations::one(
                            field,
                            format!("the vendor does not serve this task: {why}"),
                        )
                        .into());
                    }
                }
                Err(VendorError::Refused {
                    status: 401 | 403, ..
                }) => {
                    return Err(Violations::one(
                        "sync_source.headers",
                        "the vendor refused the credentials (HTTP 401/403)",
                    )
                    .into());
                }
                Err(e @ VendorError::Refused { .. }) => {
                    return Err(Violations::one(
                        field,
                        format!("the vendor does not know this task: {e}"),
                    )
                    .into());
                }
                Err(e) => {
                    return Err(Violations::one(
                        "sync_source.base_url",
                        format!("the vendor cannot be reached: {e}"),
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// One run of one source under its lease.
    async fn pull(
        &self,
        tenant: &str,
        source: StoredSyncSource,
    ) -> Result<SyncRunReport, ServiceError> {
        let settings = &self.sync.settings;
        let name = source.spec.name.clone();
        let owner = settings.owner.clone();
        let lease_ms = i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX / 4);
        let start = domain::now_ms();
        if !self
            .store
            .acquire_sync_lease(tenant, &name, &owner, start, start + lease_ms)
            .await?
        {
            return Err(ServiceError::Aborted(format!(
                "sync source `{name}` is being pulled by another replica; retry when it is done"
            )));
        }
        // Renewed well within its term while the run lasts; every page's
        // commit checks it too.
        let renewal = {
            let store = self.store.clone();
            let (tenant, name, owner) = (tenant.to_owned(), name.clone(), owner.clone());
            let every = settings.lease / 3;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let until = domain::now_ms() + lease_ms;
                    match store.renew_sync_lease(&tenant, &name, &owner, until).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => tracing::warn!(error = %e, "sync lease renewal failed"),
                    }
                }
            })
        };
        let mut report = SyncRunReport {
            name: name.clone(),
            start_time: start,
            ..Default::default()
        };
        let limiter = self.sync.limiter(tenant, &name);
        let outcome = match VendorClient::new(
            &source.spec.base_url,
            &source.spec.headers,
            settings,
            limiter,
        ) {
            Ok(client) => {
                let client = Arc::new(client);
                let mut run = Run {
                    scope: self,
                    tenant,
                    source: &source,
                    client: client.clone(),
                    report: &mut report,
                    lease_ms,
                };
                let outcome = run.all_tasks().await;
                report.vendor_requests =
                    client.requests.load(std::sync::atomic::Ordering::Relaxed) as i64;
                report.retries = client.retries.load(std::sync::atomic::Ordering::Relaxed) as i64;
                outcome
            }
            Err(why) => Err(Stop::Task(why)),
        };
        renewal.abort();
        report.end_time = domain::now_ms();
        let failure = match outcome {
            Ok(()) => None,
            Err(Stop::Unavailable(why)) => {
                report.error = why.clone();
                Some(ServiceError::VendorUnavailable(why))
            }
            Err(Stop::Task(why)) => {
                report.error = why.clone();
                Some(ServiceError::FailedPrecondition(why))
            }
            Err(Stop::LeaseLost) => {
                report.error = "the lease passed to another replica".into();
                Some(ServiceError::Aborted(format!(
                    "sync source `{name}`: the lease passed to another replica mid-run"
                )))
            }
            Err(Stop::Store(e)) => {
                report.error = "storing the pulled records failed".into();
                Some(e)
            }
        };
        if !report.error.is_empty() {
            report.errors += 1;
        }
        self.store
            .finish_sync_run(tenant, &name, &owner, &report)
            .await?;
        let lag_seconds = report
            .newest_update_time
            .map(|newest| (report.end_time - newest).max(0) as f64 / 1000.0);
        self.metrics().sync_run(tenant, &report, lag_seconds);
        tracing::info!(
            tenant,
            sync_source = %name,
            inserted = report.inserted,
            updated = report.updated,
            unchanged = report.unchanged,
            rejected = report.rejected,
            pages = report.pages,
            errors = report.errors,
            vendor_requests = report.vendor_requests,
            retries = report.retries,
            error = %report.error,
            "sync run finished"
        );
        match failure {
            None => Ok(report),
            Some(e) => Err(e),
        }
    }
}

const LIST_PATH: &str = "v1/task/query_done_task_phones";
const NUMBERS_PATH: &str = "v1/task/number";

/// One run: the source, its client and what it did so far.
struct Run<'a> {
    scope: &'a CallScope,
    tenant: &'a str,
    source: &'a StoredSyncSource,
    client: Arc<VendorClient>,
    report: &'a mut SyncRunReport,
    lease_ms: i64,
}

/// Why a list page cannot be used.
enum PageError {
    /// The vendor answered with an error envelope (`code` other than 200).
    Vendor(String),
    /// The answer is not the documented JSON.
    Malformed(String),
}

/// A `query_done_task_phones` answer, as far as the pull needs it.
struct ListPage {
    rows: Vec<Value>,
    total: i64,
    last_page: i64,
}

impl ListPage {
    /// The documented shape, or why the answer is not it.
    fn parse(bytes: &[u8]) -> Result<ListPage, PageError> {
        // Numbers keep the vendor's digits through to the adapter.
        let value: Value = std::str::from_utf8(bytes)
            .map_err(|e| PageError::Malformed(format!("not valid UTF-8: {e}")))
            .and_then(|text| {
                crate::sources::parse_json_exact(text)
                    .map_err(|e| PageError::Malformed(format!("not valid JSON: {e}")))
            })?;
        let Value::Object(mut root) = value else {
            return Err(PageError::Malformed("not a JSON object".into()));
        };
        if let Some(code) = root.get("code").and_then(Value::as_i64)
            && code != 200
        {
            let message = root.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(PageError::Vendor(format!(
                "the vendor answered code {code}: {}",
                domain::limits::clip(message, 200)
            )));
        }
        let rows = match root.remove("data") {
            Some(Value::Array(rows)) => rows,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(PageError::Malformed("`data` is not an array".into())),
        };
        let last_page = match root.get("last_page") {
            Some(v) => v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                PageError::Malformed("`last_page` is not a non-negative integer".into())
            })?,
            None if rows.is_empty() => 0,
            None => return Err(PageError::Malformed("`last_page` is missing".into())),
        };
        let total = root.get("total").and_then(Value::as_i64).unwrap_or(0);
        Ok(ListPage {
            rows,
            total,
            last_page,
        })
    }
}

/// A row's detail request: its URL and the answer; `None` when the row
/// needed none.
type Fetched = Option<(String, Result<Vec<u8>, VendorError>)>;

/// One row of a list page: the call's key and version, and where its
/// details are.
struct Row {
    value: Value,
    external_id: Option<String>,
    record_id: Option<String>,
    update_time: Option<UnixMs>,
}

impl Run<'_> {
    fn spec(&self) -> &SyncSourceSpec {
        &self.source.spec
    }

    fn lease_until(&self) -> UnixMs {
        domain::now_ms() + self.lease_ms
    }

    async fn all_tasks(&mut self) -> Result<(), Stop> {
        let mut task_errors = Vec::new();
        for task in self.spec().task_ids.clone() {
            match self.task(&task).await {
                Ok(()) => {}
                Err(Stop::Task(why)) => {
                    // The other tasks may still be pulled.
                    tracing::warn!(sync_source = %self.spec().name, task = %task, error = %why, "sync task stopped");
                    task_errors.push(format!("task `{task}`: {why}"));
                }
                Err(other) => return Err(other),
            }
        }
        if task_errors.is_empty() {
            Ok(())
        } else {
            Err(Stop::Task(task_errors.join("; ")))
        }
    }

    /// A task: an unfinished window first (a run that was cut short), then
    /// a new window up to now; then its dialing list.
    async fn task(&mut self, task: &str) -> Result<(), Stop> {
        let mut previous = self
            .source
            .checkpoints
            .iter()
            .find(|c| c.task_id == task)
            .cloned();
        if let Some(mut cp) = previous.clone().filter(|c| c.next_page > 0) {
            self.window(&mut cp).await?;
            previous = Some(cp);
        }
        let mut cp = self.new_window(task, previous.as_ref());
        self.window(&mut cp).await?;
        self.numbers(task).await
    }

    /// The next window: from an overlap before the last clean one's end (or
    /// the backfill start), to now, in whole seconds.
    fn new_window(&self, task: &str, previous: Option<&SyncCheckpoint>) -> SyncCheckpoint {
        let end = domain::now_ms() / 1000 * 1000;
        let overlap = if self.spec().overlap_ms > 0 {
            self.spec().overlap_ms
        } else {
            0
        };
        let synced_to = previous.and_then(|c| c.synced_to);
        let start = synced_to
            .map(|t| t - overlap)
            .or(self.spec().start_time)
            .unwrap_or(end - overlap)
            .min(end)
            .div_euclid(1000)
            * 1000;
        SyncCheckpoint {
            task_id: task.to_owned(),
            window_start: start,
            window_end: end,
            next_page: 1,
            clean: true,
            synced_to,
            vendor_total: 0,
            held: 0,
        }
    }

    /// Pulls a window page by page from `cp.next_page`.
    async fn window(&mut self, cp: &mut SyncCheckpoint) -> Result<(), Stop> {
        let settings = &self.scope.sync.settings;
        let tz = self.scope.sources.smartivr().time_zone.clone();
        let url = self.client.url(LIST_PATH).map_err(Stop::Task)?;
        let (start_at, end_at) = (
            local_time(cp.window_start, &tz),
            local_time(cp.window_end, &tz),
        );
        let mut pulled: u32 = 0;
        let mut last_page: Option<i64> = None;
        while cp.next_page > 0 {
            let page = cp.next_page;
            if pulled >= settings.max_pages {
                return Err(Stop::Task(format!(
                    "more than {} pages in one window (the vendor's last_page keeps growing); stopped before page {page}",
                    settings.max_pages
                )));
            }
            pulled += 1;
            let body = serde_json::json!({
                "task_id": cp.task_id, "page": page, "start_at": start_at, "end_at": end_at,
            });
            let bytes = self
                .client
                .post_json(&url, &body)
                .await
                .map_err(vendor_stop)?;
            self.report.pages += 1;
            let where_from = format!("POST {url} (task {}, page {page})", cp.task_id);
            match ListPage::parse(&bytes) {
                Err(PageError::Vendor(why)) => {
                    return Err(Stop::Task(format!("{where_from}: {why}")));
                }
                Err(PageError::Malformed(why)) => {
                    // Kept in the quarantine with where it came from; the
                    // window goes on but will be pulled again.
                    self.report
                        .note_error(format!("{where_from}: not the documented JSON: {why}"));
                    cp.clean = false;
                    cp.next_page = match last_page {
                        Some(last) if page < last => page + 1,
                        _ => 0,
                    };
                    let reason = format!("{where_from}: not the documented JSON: {why}");
                    let batch = IngestBatch {
                        rejected: vec![super::ingest::quarantined(
                            Some(Source::Smartivr),
                            Channel::Sync,
                            &bytes,
                            bytes.len(),
                            &reason,
                            domain::now_ms(),
                        )],
                        ..Default::default()
                    };
                    self.report.rejected += 1;
                    self.commit(&batch, cp).await?;
                    self.scope
                        .enforce_quarantine_caps(self.tenant, &batch.rejected)
                        .await;
                }
                Ok(list) => {
                    if list.last_page > i64::from(settings.max_pages) {
                        return Err(Stop::Task(format!(
                            "{where_from}: the vendor reports {} pages, more than the limit of {}",
                            list.last_page, settings.max_pages
                        )));
                    }
                    last_page = Some(list.last_page);
                    cp.vendor_total = list.total;
                    cp.next_page = if page < list.last_page { page + 1 } else { 0 };
                    if cp.next_page == 0 && cp.clean {
                        cp.synced_to = Some(cp.window_end);
                    }
                    self.page(list.rows, cp, &where_from).await?;
                }
            }
        }
        // Reconciliation: what the vendor counts against what we hold.
        cp.held = self
            .scope
            .store
            .count_task_calls(
                self.tenant,
                Source::Smartivr,
                &cp.task_id,
                cp.window_start,
                cp.window_end + 999,
            )
            .await?;
        if !self
            .scope
            .store
            .save_sync_checkpoint(
                self.tenant,
                &self.spec().name,
                &self.scope.sync.settings.owner,
                self.lease_until(),
                cp,
            )
            .await?
        {
            return Err(Stop::LeaseLost);
        }
        self.report.vendor_total += cp.vendor_total;
        self.report.held += cp.held;
        Ok(())
    }

    /// One list page: details for new and changed calls, then everything
    /// stored with the checkpoint `cp` (already moved past this page).
    async fn page(
        &mut self,
        values: Vec<Value>,
        cp: &SyncCheckpoint,
        where_from: &str,
    ) -> Result<(), Stop> {
        let tz = self.scope.sources.smartivr().time_zone.clone();
        let rows: Vec<Row> = values.into_iter().map(|v| row(v, &tz)).collect();
        let ids: Vec<String> = rows.iter().filter_map(|r| r.external_id.clone()).collect();
        let stored = self
            .scope
            .store
            .stored_versions(self.tenant, Source::Smartivr, &ids)
            .await?;
        for r in &rows {
            if let Some(t) = r.update_time {
                self.report.newest_update_time = self.report.newest_update_time.max(Some(t));
            }
        }
        // A call needs its details when it is new or the vendor's version is
        // newer than ours; the rest are unchanged and cost no request.
        let mut seen = HashSet::new();
        let wanted: Vec<bool> = rows
            .iter()
            .map(|r| match &r.external_id {
                None => true,
                Some(id) if !seen.insert(id.clone()) => true,
                Some(id) => match stored.get(id) {
                    None => true,
                    Some(held) => match (r.update_time, held) {
                        (Some(new), Some(old)) => new > *old,
                        (Some(_), None) => true,
                        (None, _) => false,
                    },
                },
            })
            .collect();
        let concurrency = self.scope.sync.settings.concurrency.max(1);
        let task_id = cp.task_id.clone();
        // The detail URL of each row that needs one (owned, so the fetches
        // borrow nothing from this run).
        let jobs: Vec<Option<Result<reqwest::Url, String>>> = rows
            .iter()
            .zip(&wanted)
            .map(|(r, want)| {
                let id = r
                    .record_id
                    .as_deref()
                    .filter(|id| *want && check_path_segment(id).is_ok())?;
                Some(
                    self.client
                        .url(&format!("v1/task/record_info/{task_id}/{id}")),
                )
            })
            .collect();
        let client = self.client.clone();
        let fetches: Vec<Fetched> = futures_util::stream::iter(jobs.into_iter().map(move |job| {
            let client = client.clone();
            async move {
                match job? {
                    Ok(url) => {
                        let answer = client.get(&url).await;
                        Some((url.to_string(), answer))
                    }
                    Err(why) => Some((
                        why.clone(),
                        Err(VendorError::Refused {
                            method: reqwest::Method::GET,
                            url: why,
                            status: 0,
                            detail: String::new(),
                        }),
                    )),
                }
            }
        }))
        .buffered(concurrency)
        .collect()
        .await;

        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut labels: Vec<String> = Vec::new();
        let mut rejected = Vec::new();
        for (i, ((r, want), fetched)) in rows.into_iter().zip(wanted).zip(fetches).enumerate() {
            if !want {
                self.report.unchanged += 1;
                continue;
            }
            let row_label = format!("{where_from} data[{i}]");
            match fetched {
                None => {
                    // No record id to ask for: the row is the record.
                    records.push(serde_json::to_vec(&r.value).unwrap_or_default());
                    labels.push(row_label);
                }
                Some((detail_url, Ok(bytes))) => {
                    self.report.details_fetched += 1;
                    match merge_detail(&bytes, &r.value) {
                        Ok(merged) => {
                            records.push(merged);
                            labels.push(format!("GET {detail_url}"));
                        }
                        Err(why) => {
                            let reason =
                                format!("GET {detail_url}: not the documented JSON: {why}");
                            self.report.note_error(reason.clone());
                            rejected.push(super::ingest::quarantined(
                                Some(Source::Smartivr),
                                Channel::Sync,
                                &bytes,
                                bytes.len(),
                                &reason,
                                domain::now_ms(),
                            ));
                            self.report.rejected += 1;
                            records.push(serde_json::to_vec(&r.value).unwrap_or_default());
                            labels.push(row_label);
                        }
                    }
                }
                Some((_, Err(e @ VendorError::Unavailable { .. }))) => {
                    // Nothing of this page is stored: the next run resumes here.
                    return Err(Stop::Unavailable(e.to_string()));
                }
                Some((_, Err(e))) => {
                    // A detail that vanished (or is refused, or too large):
                    // the call is kept without its turns.
                    self.report
                        .note_error(format!("{e}: call kept without its turns"));
                    records.push(serde_json::to_vec(&r.value).unwrap_or_default());
                    labels.push(row_label);
                }
            }
        }
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let mut prepared =
            self.scope
                .prepare_records(Source::Smartivr, Channel::Sync, &slices, Some(&task_id))?;
        prepared.label_rejections(&labels);
        prepared.batch.rejected.extend(rejected);
        let stored = self.commit(&prepared.batch, cp).await?;
        self.scope
            .enforce_quarantine_caps(self.tenant, &prepared.batch.rejected)
            .await;
        for result in prepared.results(stored) {
            match result.outcome {
                RecordOutcome::Inserted => self.report.inserted += 1,
                RecordOutcome::Updated => self.report.updated += 1,
                RecordOutcome::Unchanged | RecordOutcome::Erased => self.report.unchanged += 1,
                RecordOutcome::Rejected => {
                    self.report.rejected += 1;
                    self.report.note_error(result.reason);
                }
            }
        }
        Ok(())
    }

    /// Stores a page's batch with the checkpoint, under the lease.
    async fn commit(
        &mut self,
        batch: &IngestBatch,
        cp: &SyncCheckpoint,
    ) -> Result<crate::store::IngestResults, Stop> {
        let (lease_until, now) = (self.lease_until(), domain::now_ms());
        self.scope
            .retrying("sync_page", || {
                self.scope.store.ingest_sync_page(
                    self.tenant,
                    &self.spec().name,
                    &self.scope.sync.settings.owner,
                    lease_until,
                    batch,
                    cp,
                    now,
                )
            })
            .await?
            .ok_or(Stop::LeaseLost)
    }

    /// The task's dialing list with each number's call history, every page.
    async fn numbers(&mut self, task: &str) -> Result<(), Stop> {
        let max_pages = i64::from(self.scope.sync.settings.max_pages);
        let mut page: i64 = 1;
        loop {
            let mut url = self.client.url(NUMBERS_PATH).map_err(Stop::Task)?;
            url.query_pairs_mut()
                .append_pair("task_id", task)
                .append_pair("page", &page.to_string())
                .append_pair("call_history", "1");
            let bytes = match self.client.get(&url).await {
                Ok(bytes) => bytes,
                Err(e @ VendorError::Unavailable { .. }) => {
                    return Err(Stop::Unavailable(e.to_string()));
                }
                Err(e) => {
                    self.report.note_error(format!("dialing list: {e}"));
                    return Ok(());
                }
            };
            self.report.pages += 1;
            let last_page = number_page_shape(&bytes);
            let label = format!("GET {url}");
            let empty = matches!(last_page, Ok((0, _)));
            if !empty {
                let mut prepared = self.scope.prepare_records(
                    Source::Smartivr,
                    Channel::Sync,
                    &[bytes.as_slice()],
                    Some(task),
                )?;
                prepared.label_rejections(std::slice::from_ref(&label));
                let now = domain::now_ms();
                let stored = self
                    .scope
                    .retrying("ingest", || {
                        self.scope.store.ingest(self.tenant, &prepared.batch, now)
                    })
                    .await?;
                self.scope
                    .enforce_quarantine_caps(self.tenant, &prepared.batch.rejected)
                    .await;
                for result in prepared.results(stored) {
                    if result.outcome == RecordOutcome::Rejected {
                        self.report.rejected += 1;
                        self.report.note_error(result.reason);
                    }
                }
            }
            match last_page {
                Ok((_, last)) if page < last && page < max_pages => page += 1,
                Ok((_, last)) if page < last => {
                    self.report.note_error(format!(
                        "dialing list of task `{task}`: more than {max_pages} pages; stopped"
                    ));
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
    }
}

/// `(entries on the page, last_page)` of a `v1/task/number` answer.
fn number_page_shape(bytes: &[u8]) -> Result<(usize, i64), ()> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| ())?;
    let data = value.get("data").ok_or(())?;
    let entries = data
        .get("data")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let last = data.get("last_page").and_then(Value::as_i64).unwrap_or(1);
    Ok((entries, last))
}

/// A list row's key (`callid`), record id (`id`) and version (`updated_at`).
fn row(value: Value, tz: &jiff::tz::TimeZone) -> Row {
    let text = |key: &str| match value.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let external_id = text("callid").filter(|s| !s.is_empty());
    let record_id = text("id").filter(|s| !s.is_empty());
    let update_time =
        text("updated_at").and_then(|t| crate::sources::parse_local_time(&t, tz).ok().flatten());
    Row {
        value,
        external_id,
        record_id,
        update_time,
    }
}

/// A `record_info` document with the list row's fields that its
/// `info.record` lacks (the call's tags, tag groups, level, location): one
/// record holding both views of the call.
fn merge_detail(bytes: &[u8], row: &Value) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not valid UTF-8: {e}"))?;
    let mut doc: Value =
        crate::sources::parse_json_exact(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let record = doc
        .get_mut("info")
        .and_then(|info| info.get_mut("record"))
        .and_then(Value::as_object_mut)
        .ok_or("`info.record` is missing")?;
    if let Value::Object(row) = row {
        let missing: Map<String, Value> = row
            .iter()
            .filter(|(k, _)| !record.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        record.extend(missing);
    }
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}

/// `yyyy-MM-dd HH:mm:ss` in the vendor's zone.
fn local_time(ms: UnixMs, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound {
        what: "sync source",
        id: domain::limits::clip(name, 64),
    }
}

fn already_exists(name: &str) -> ServiceError {
    ServiceError::AlreadyExists {
        what: "sync source",
        id: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_are_read_or_refused_by_kind() {
        let page = ListPage::parse(br#"{"data": [{"callid": "c1"}], "total": 16, "last_page": 2}"#)
            .ok()
            .unwrap();
        assert_eq!((page.rows.len(), page.total, page.last_page), (1, 16, 2));
        let empty = ListPage::parse(br#"{"data": []}"#).ok().unwrap();
        assert_eq!((empty.rows.len(), empty.last_page), (0, 0));
        for (bytes, vendor) in [
            (&b"<html>502</html>"[..], false),
            (br#"[1, 2]"#, false),
            (br#"{"data": {"x": 1}, "last_page": 1}"#, false),
            (br#"{"data": [{}], "last_page": -1}"#, false),
            (br#"{"data": [{}]}"#, false),
            (br#"{"code": 500, "message": "busy"}"#, true),
        ] {
            match ListPage::parse(bytes) {
                Ok(_) => panic!("accepted {}", String::from_utf8_lossy(bytes)),
                Err(PageError::Vendor(_)) => assert!(vendor),
                Err(PageError::Malformed(_)) => assert!(!vendor),
            }
        }
    }

    #[test]
    fn details_take_the_rows_missing_fields_and_keep_their_own() {
        let detail = br#"{"records": [], "info": {"record": {"callid": "c1", "score": 7}}}"#;
        let row = serde_json::json!({"callid": "c1", "score": 5, "tags": [{"id": "t"}]});
        let merged: Value = serde_json::from_slice(&merge_detail(detail, &row).unwrap()).unwrap();
        assert_eq!(merged["info"]["record"]["score"], 7);
        assert_eq!(merged["info"]["record"]["tags"][0]["id"], "t");
        assert!(merge_detail(br#"{"records": []}"#, &row).is_err());
        assert!(merge_detail(b"not json", &row).is_err());
    }

    #[test]
    fn windows_are_local_vendor_times() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        // 2019-05-08T11:02:58Z is 19:02:58 in Shanghai.
        assert_eq!(local_time(1_557_313_378_000, &tz), "2019-05-08 19:02:58");
    }
}
