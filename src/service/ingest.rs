//! The vendor-record pipeline shared by ImportRecords, the HTTP webhooks and
//! `callscope import`: parse each record with its vendor adapter, quarantine
//! what cannot be stored with the reason, store the rest, all in one
//! transaction, so a record is either stored or quarantined, never lost.

use std::collections::HashMap;

use jiff::tz::TimeZone;

use super::{CallScope, ServiceError};
use crate::domain::limits::{
    MAX_ID_BYTES, MAX_RECORD_BYTES, MAX_RECORDS_PER_REQUEST, check_text, too_many,
};
use crate::domain::{
    self, Cursor, PageToken, Region, RejectedRecord, ScopeWriter, Source, TaskNumberEntry,
    TaskNumberUpsert, UpsertOutcome, UpsertResult, Violations,
};
use crate::sources::{self, SourceConfig};
use crate::store::{IngestBatch, IngestResults};

/// How much of an oversized record the quarantine keeps.
const QUARANTINE_KEEP_BYTES: usize = 64 * 1024;

/// How a record reached us; kept with quarantined records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Grpc,
    Http,
    Import,
    /// Pulled from a vendor's query API (SyncService).
    Sync,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Grpc => "grpc",
            Channel::Http => "http",
            Channel::Import => "import",
            Channel::Sync => "sync",
        }
    }
}

/// What happened to one vendor record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    Inserted,
    Updated,
    Unchanged,
    Rejected,
    /// Every call of the record was erased (AdminService.ErasePhone) and is
    /// not stored again.
    Erased,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordResult {
    pub outcome: RecordOutcome,
    /// The calls the record holds, as stored.
    pub call_ids: Vec<String>,
    /// Why it was rejected; empty otherwise.
    pub reason: String,
    /// Where the quarantine keeps it, when rejected.
    pub rejected_id: Option<String>,
}

/// Per-source parsing settings: time zone of local times, default phone region.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    configs: HashMap<Source, SourceConfig>,
}

impl SourceSettings {
    /// The adapters' defaults, with the default region and any time zones given.
    pub fn new(region: Region, time_zones: &[(Source, TimeZone)]) -> Self {
        let mut configs = HashMap::new();
        for source in [Source::Smartivr, Source::Laaffic, Source::AlibabaLvms] {
            let mut config = SourceConfig::for_source(source);
            config.default_region = region;
            configs.insert(source, config);
        }
        for (source, zone) in time_zones {
            if let Some(config) = configs.get_mut(source) {
                config.time_zone = zone.clone();
            }
        }
        Self { configs }
    }

    fn get(&self, source: Source) -> Option<&SourceConfig> {
        self.configs.get(&source)
    }

    /// How smartivr's records are read (its zone names the pull's windows).
    pub fn smartivr(&self) -> SourceConfig {
        self.get(Source::Smartivr)
            .cloned()
            .unwrap_or_else(|| SourceConfig::for_source(Source::Smartivr))
    }
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self::new(Region::default(), &[])
    }
}

/// A record as parsed: where its calls sit in the batch, or why it is rejected.
enum Parsed {
    Stored {
        calls: std::ops::Range<usize>,
        history: std::ops::Range<usize>,
        /// The record's groups of dialing-list numbers in `batch.numbers`.
        numbers: std::ops::Range<usize>,
    },
    Rejected {
        id: String,
        reason: String,
    },
}

/// Vendor records parsed for one transaction, and how to read its results.
pub(crate) struct Prepared {
    pub batch: IngestBatch,
    parsed: Vec<Parsed>,
}

impl Prepared {
    /// Prefixes each rejected record's reason with where it came from
    /// (`labels[i]` for record `i`: the vendor URL of a pulled record), in
    /// the quarantine and in the results alike.
    pub(crate) fn label_rejections(&mut self, labels: &[String]) {
        for (parsed, label) in self.parsed.iter_mut().zip(labels) {
            if let Parsed::Rejected { id, reason } = parsed {
                *reason = format!("{label}: {reason}");
                if let Some(record) = self.batch.rejected.iter_mut().find(|r| r.id == *id) {
                    record.reason = domain::without_nul(reason);
                }
            }
        }
    }

    /// Each record's outcome, in order, from what the store did.
    pub(crate) fn results(self, stored: IngestResults) -> Vec<RecordResult> {
        self.parsed
            .into_iter()
            .map(|p| match p {
                Parsed::Stored {
                    calls,
                    history,
                    numbers,
                } => {
                    let results: Vec<&UpsertResult> = stored.calls[calls]
                        .iter()
                        .chain(&stored.history_calls[history])
                        .collect();
                    RecordResult {
                        outcome: combined_outcome(&results, &stored.numbers[numbers]),
                        // Erased calls are not stored: they have no id.
                        call_ids: results
                            .iter()
                            .filter(|r| r.outcome != UpsertOutcome::Erased)
                            .map(|r| r.call_id.clone())
                            .collect(),
                        reason: String::new(),
                        rejected_id: None,
                    }
                }
                Parsed::Rejected { id, reason } => RecordResult {
                    outcome: RecordOutcome::Rejected,
                    call_ids: Vec::new(),
                    reason,
                    rejected_id: Some(id),
                },
            })
            .collect()
    }
}

impl CallScope {
    /// Parses and stores vendor records, each exactly as the vendor sent it.
    /// Good records are stored even when others are rejected; rejected ones
    /// are quarantined with the reason, in the same transaction.
    pub async fn import_records(
        &self,
        tenant: &str,
        source: Source,
        channel: Channel,
        records: &[&[u8]],
        task_id: Option<&str>,
    ) -> Result<Vec<RecordResult>, ServiceError> {
        let prepared = self.prepare_records(source, channel, records, task_id)?;
        let now = domain::now_ms();
        let stored = self
            .retrying("ingest", || self.store.ingest(tenant, &prepared.batch, now))
            .await?;
        self.enforce_quarantine_caps(tenant, &prepared.batch.rejected)
            .await;
        let quarantined = prepared.batch.rejected.len() as u64;
        let results = prepared.results(stored);
        self.count_records(source, &results, quarantined);
        Ok(results)
    }

    /// `callscope_ingest_records_total` and the quarantine counter for one
    /// batch of vendor records (pushed, imported or pulled).
    pub(crate) fn count_records(&self, source: Source, results: &[RecordResult], quarantined: u64) {
        for outcome in [
            RecordOutcome::Inserted,
            RecordOutcome::Updated,
            RecordOutcome::Unchanged,
            RecordOutcome::Rejected,
            RecordOutcome::Erased,
        ] {
            let count = results.iter().filter(|r| r.outcome == outcome).count();
            self.metrics()
                .ingest_records(source.slug(), outcome.label(), count as u64);
        }
        self.metrics().quarantined(source.slug(), quarantined);
    }

    /// Parses vendor records into what one transaction stores: the calls,
    /// tasks and numbers of the good ones, the quarantine entries of the
    /// others.
    pub(crate) fn prepare_records(
        &self,
        source: Source,
        channel: Channel,
        records: &[&[u8]],
        task_id: Option<&str>,
    ) -> Result<Prepared, ServiceError> {
        too_many("records", records.len(), MAX_RECORDS_PER_REQUEST)?;
        let mut v = Violations::new();
        check_text(&mut v, "task_id", task_id.unwrap_or_default(), MAX_ID_BYTES);
        if !v.is_empty() {
            return Err(v.into());
        }
        let Some(config) = self.sources.get(source) else {
            return Err(Violations::one(
                "source",
                "must be a vendor source (smartivr, laaffic, alibaba-lvms)",
            )
            .into());
        };
        let now = domain::now_ms();
        let mut batch = IngestBatch::default();
        let mut parsed = Vec::with_capacity(records.len());
        for raw in records {
            let outcome = if raw.len() > MAX_RECORD_BYTES {
                Err(format!(
                    "record is {} bytes, larger than the {MAX_RECORD_BYTES}-byte limit (first {QUARANTINE_KEEP_BYTES} bytes kept)",
                    raw.len()
                ))
            } else {
                sources::parse(source, raw, config)
                    .map_err(|e| e.to_string())
                    .and_then(|b| check_batch(&b, task_id).map(|()| b))
            };
            match outcome {
                Ok(record) => {
                    let calls_start = batch.calls.len();
                    let history_start = batch.history_calls.len();
                    let numbers_start = batch.numbers.len();
                    batch.calls.extend(record.calls);
                    batch.tasks.extend(record.tasks);
                    let mut numbers: Vec<(String, Vec<TaskNumberEntry>)> = Vec::new();
                    for number in record.numbers {
                        // The request's task beats the one inferred from
                        // the entry's call history: the caller asked for
                        // that task's list.
                        let task = match task_id.filter(|t| !t.is_empty()) {
                            Some(explicit) => explicit.to_owned(),
                            None => number.task_id.clone(),
                        };
                        let entry = number_entry(&number);
                        match numbers.iter_mut().find(|(t, _)| *t == task) {
                            Some((_, list)) => list.push(entry),
                            None => numbers.push((task, vec![entry])),
                        }
                        batch.history_calls.extend(number.call_history);
                    }
                    batch.numbers.extend(numbers);
                    parsed.push(Parsed::Stored {
                        calls: calls_start..batch.calls.len(),
                        history: history_start..batch.history_calls.len(),
                        numbers: numbers_start..batch.numbers.len(),
                    });
                }
                Err(reason) => {
                    let rejected = quarantined(Some(source), channel, raw, raw.len(), &reason, now);
                    parsed.push(Parsed::Rejected {
                        id: rejected.id.clone(),
                        reason,
                    });
                    batch.rejected.push(rejected);
                }
            }
        }
        if !batch.rejected.is_empty() {
            tracing::warn!(
                source = source.key(),
                channel = channel.as_str(),
                rejected = batch.rejected.len(),
                "vendor records quarantined"
            );
        }
        Ok(Prepared { batch, parsed })
    }

    /// Keeps a payload that never reached an adapter (too large, unreadable)
    /// in the quarantine. `size` is its full size as received.
    pub async fn quarantine(
        &self,
        tenant: &str,
        source: Option<Source>,
        channel: Channel,
        payload: &[u8],
        size: usize,
        reason: &str,
    ) -> Result<String, ServiceError> {
        let record = quarantined(source, channel, payload, size, reason, domain::now_ms());
        let id = record.id.clone();
        let batch = IngestBatch {
            rejected: vec![record],
            ..Default::default()
        };
        let now = domain::now_ms();
        self.retrying("ingest", || self.store.ingest(tenant, &batch, now))
            .await?;
        self.enforce_quarantine_caps(tenant, &batch.rejected).await;
        let slug = source.map_or("unknown", Source::slug);
        self.metrics().quarantined(slug, 1);
        Ok(id)
    }

    /// The quarantine, newest first; `page_token` is checked against the
    /// tenant and the source filter.
    pub async fn list_rejected(
        &self,
        tenant: &str,
        source: Option<Source>,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<RejectedRecord>, String), ServiceError> {
        let mut scope = ScopeWriter::new(tenant, "rejected");
        scope.int(10, source.map(|s| i64::from(s.code())));
        let scope = scope.finish();
        let after: Option<Cursor> = if page_token.is_empty() {
            None
        } else {
            Some(
                PageToken::decode(page_token, &scope)
                    .map_err(|e| Violations::one("page_token", e.to_string()))?,
            )
        };
        let (records, next) = self
            .store
            .list_rejected(tenant, source, page_size, after.as_ref())
            .await?;
        let token = next
            .map(|c| PageToken::encode(&c, &scope))
            .unwrap_or_default();
        Ok((records, token))
    }
}

/// Guards the store against an adapter that let an unusable call through.
fn check_batch(batch: &sources::SourceBatch, task_id: Option<&str>) -> Result<(), String> {
    if task_id.is_none_or(str::is_empty) && batch.numbers.iter().any(|n| n.task_id.is_empty()) {
        return Err("a number list entry names no task (no call history): pass the task id with the request".into());
    }
    let history = batch.numbers.iter().flat_map(|n| n.call_history.iter());
    for (i, call) in batch.calls.iter().chain(history).enumerate() {
        if call.external_id.is_empty() {
            return Err("a call has no id".into());
        }
        if call.callee.is_empty() {
            return Err(format!("call `{}` has no callee number", call.external_id));
        }
        if let Some(field) = domain::find_nul(call) {
            return Err(format!("call {i}: `{field}` {}", domain::NUL_DESCRIPTION));
        }
        if let Some(limit) = call.limit_violations().0.into_iter().next() {
            return Err(format!(
                "call `{}`: {} {}",
                call.external_id, limit.field, limit.description
            ));
        }
    }
    for (i, task) in batch.tasks.iter().enumerate() {
        if let Some(field) = domain::find_nul(task) {
            return Err(format!("task {i}: `{field}` {}", domain::NUL_DESCRIPTION));
        }
        if let Some(limit) = task.violations().0.into_iter().next() {
            return Err(format!("task {i}: {} {}", limit.field, limit.description));
        }
    }
    for (i, number) in batch.numbers.iter().enumerate() {
        if let Some(field) = domain::find_nul(number) {
            return Err(format!("number {i}: `{field}` {}", domain::NUL_DESCRIPTION));
        }
        if let Some(limit) = number_entry(number).limit_violations().0.into_iter().next() {
            return Err(format!("number {i}: {} {}", limit.field, limit.description));
        }
    }
    if batch.calls.is_empty() && batch.tasks.is_empty() && batch.numbers.is_empty() {
        return Err("the document holds no call, task or number".into());
    }
    Ok(())
}

/// A vendor's number-list entry as a dialing-list entry.
fn number_entry(number: &sources::NumberListEntry) -> TaskNumberEntry {
    TaskNumberEntry {
        phone: number.phone.clone(),
        phone_raw: number.phone_raw.clone(),
        name: number.name.clone(),
        attributes: number.attributes.clone(),
        location: number.location.clone(),
        status_code: Some(number.status_code),
    }
}

impl RecordOutcome {
    /// The `outcome` label of `callscope_ingest_records_total`.
    pub fn label(self) -> &'static str {
        match self {
            RecordOutcome::Inserted => "inserted",
            RecordOutcome::Updated => "updated",
            RecordOutcome::Unchanged => "unchanged",
            RecordOutcome::Rejected => "rejected",
            RecordOutcome::Erased => "erased",
        }
    }
}

/// The `outcome` label of a typed upsert's result.
pub fn upsert_outcome_label(outcome: UpsertOutcome) -> &'static str {
    match outcome {
        UpsertOutcome::Inserted => "inserted",
        UpsertOutcome::Updated => "updated",
        UpsertOutcome::Unchanged => "unchanged",
        UpsertOutcome::Erased => "erased",
    }
}

/// What storing one record did: its calls' outcomes, and the dialing-list
/// numbers it stored (a number-list record may hold no call at all; each
/// number it lists is written, so a known one counts as updated).
fn combined_outcome(results: &[&UpsertResult], numbers: &[TaskNumberUpsert]) -> RecordOutcome {
    let numbers_inserted = numbers.iter().any(|n| n.inserted > 0);
    let numbers_updated = numbers.iter().any(|n| n.updated > 0);
    if numbers_inserted || results.iter().any(|r| r.outcome == UpsertOutcome::Inserted) {
        RecordOutcome::Inserted
    } else if numbers_updated || results.iter().any(|r| r.outcome == UpsertOutcome::Updated) {
        RecordOutcome::Updated
    } else if !results.is_empty() && results.iter().all(|r| r.outcome == UpsertOutcome::Erased) {
        RecordOutcome::Erased
    } else {
        RecordOutcome::Unchanged
    }
}

pub(crate) fn quarantined(
    source: Option<Source>,
    channel: Channel,
    payload: &[u8],
    size: usize,
    reason: &str,
    now: domain::UnixMs,
) -> RejectedRecord {
    // An oversized payload is kept cut short: enough to see what it was.
    let keep = if size > MAX_RECORD_BYTES {
        QUARANTINE_KEEP_BYTES.min(payload.len())
    } else {
        payload.len()
    };
    RejectedRecord {
        id: uuid::Uuid::now_v7().to_string(),
        source,
        channel: channel.as_str().to_owned(),
        reason: domain::without_nul(reason),
        payload: payload[..keep].to_vec(),
        payload_size: size as i64,
        receive_time: now,
    }
}
