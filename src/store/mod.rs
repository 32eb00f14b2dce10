//! Storage: the only place with SQL. The traits below are the one interface
//! the service uses; [`SqlStore`] implements them once, over any [`Dialect`],
//! and [`Store::connect`] is the one place that picks a backend.
//!
//! Files by what they are about: `calls_write` (upserts and vendor batches),
//! `calls_read` (listings and one call), `catalogs` (tasks, tags, intent
//! levels), `quarantine` (rejected records), `keys` (API keys), `task_numbers` (dialing lists),
//! `stats` (campaign figures), `filter_sql` (a filter as a `WHERE` clause),
//! `sqlite` and `postgres` (connecting), `dialect` (what differs between them),
//! `admin` (deleting, erasing, retention and the quarantine's caps), `events`
//! (the event log), `subscriptions` (webhooks, their deliveries, sink
//! positions), `sync` (pull sources, their leases and checkpoints).

mod admin;
mod calls_read;
mod calls_write;
mod catalogs;
mod dialect;
mod error;
mod events;
mod filter_sql;
mod keys;
mod postgres;
mod quarantine;
mod sqlite;
mod stats;
mod subscriptions;
mod sync;
mod task_numbers;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use calls_read::TagStatement;
pub use dialect::{Dialect, Rows, SqlStore};
pub use error::StoreError;
pub use filter_sql::SELECT_CALLS;
pub use postgres::SESSION_OPTIONS as PG_SESSION_OPTIONS;
pub use stats::ROLLUP_DIMENSIONS_BUT_TAGS;
pub use subscriptions::SubscriptionUpdate;
pub use task_numbers::TaskNumberPage;

use crate::domain::erasure::{ErasureCounts, PhoneNotations, QuarantineLimits, QuarantineTrim};
use crate::domain::event::{CallEvent, EventLogState};
use crate::domain::key::StoredKey;
use crate::domain::stats::{BucketSums, CallStats};
use crate::domain::subscription::{Delivery, Subscription};
use crate::domain::sync::{StoredSyncSource, SyncCheckpoint, SyncRunReport, SyncSourceSpec};
use crate::domain::task_number::TaskProgress;
use crate::domain::{
    Call, CallFilter, CallQuery, Cursor, IntentLevel, RejectedRecord, Source, StoredCall, Tag,
    TagGroup, Task, TaskNumberEntry, TaskNumberQuery, TaskNumberUpsert, UnixMs, UpsertResult,
};

/// Everything one request of vendor records stores, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct IngestBatch {
    pub calls: Vec<Call>,
    /// Calls known only from a dialing list's call history: inserted when new,
    /// never used to overwrite a stored record.
    pub history_calls: Vec<Call>,
    pub tasks: Vec<Task>,
    /// Dialing-list entries from vendor number lists, by task.
    pub numbers: Vec<(String, Vec<TaskNumberEntry>)>,
    pub rejected: Vec<RejectedRecord>,
}

impl IngestBatch {
    /// The rows the batch writes: calls, history calls and number entries.
    pub fn rows(&self) -> u64 {
        let entries: usize = self.numbers.iter().map(|(_, e)| e.len()).sum();
        (self.calls.len() + self.history_calls.len() + entries) as u64
    }
}

/// What storing an [`IngestBatch`] did, call by call, in batch order.
#[derive(Debug, Clone, Default)]
pub struct IngestResults {
    pub calls: Vec<UpsertResult>,
    pub history_calls: Vec<UpsertResult>,
    /// What each entry of `IngestBatch::numbers` stored, in order.
    pub numbers: Vec<TaskNumberUpsert>,
}

/// A page of calls and what it takes to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPage {
    pub calls: Vec<StoredCall>,
    /// The sort key of the last call, when another page follows.
    pub next: Option<Cursor>,
    /// The matching calls, counted up to the query's `total_limit`.
    pub total: Option<i64>,
    /// More calls match than `total` says: it is the counting bound.
    pub total_capped: bool,
}

/// Connection settings common to every backend.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    /// A PostgreSQL streaming replica for the reads that may lag
    /// (`--database-read-url`); `None`: every read on `url`.
    pub read_url: Option<String>,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub busy_timeout: Duration,
}

/// Writing calls: typed upserts and batches of vendor records.
#[async_trait]
pub trait IngestStore {
    /// Stores calls in one transaction: all of them or none.
    async fn upsert_calls(
        &self,
        tenant: &str,
        calls: &[Call],
        now: UnixMs,
    ) -> Result<Vec<UpsertResult>, StoreError>;

    /// Stores what a request of vendor records yielded: the quarantined
    /// records first, in their own transaction, then everything else in one.
    async fn ingest(
        &self,
        tenant: &str,
        batch: &IngestBatch,
        now: UnixMs,
    ) -> Result<IngestResults, StoreError>;
}

/// Reading calls.
#[async_trait]
pub trait CallStore {
    /// One page of the calls `query` selects, after its cursor.
    async fn list_calls(&self, tenant: &str, query: &CallQuery) -> Result<CallPage, StoreError>;

    /// Every page of the calls `query` selects, from its cursor on, each
    /// as [`CallStore::list_calls`] answers it (ExportCalls). Nothing is
    /// read before the first poll. While the stream's reader decodes and
    /// sends a page, the next page's statements run, when the reader pool
    /// has a connection free; dropping the stream stops the page being read.
    fn call_pages(
        &self,
        tenant: &str,
        query: CallQuery,
    ) -> futures_util::stream::BoxStream<'static, Result<CallPage, StoreError>>;

    /// One call with its tags and turns; `None` when the tenant has no such call.
    async fn get_call(
        &self,
        tenant: &str,
        call_id: &str,
        include_progress_turns: bool,
    ) -> Result<Option<StoredCall>, StoreError>;

    /// The `call_id` of the call with this vendor id: its `external_id`, or
    /// its second id (smartivr's record id); `None` when the tenant has none.
    async fn find_call_id(
        &self,
        tenant: &str,
        source: Source,
        external_id: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Fills in the dialogue turns (without interim recognition) of a page
    /// of calls, in one query per few hundred calls (ExportCalls).
    async fn attach_turns(&self, tenant: &str, calls: &mut [StoredCall]) -> Result<(), StoreError>;
}

/// The tenant's catalogs: tasks, tags with their groups, intent levels. A
/// field left empty never erases a stored one.
#[async_trait]
pub trait CatalogStore {
    async fn upsert_tasks(&self, tenant: &str, tasks: &[Task]) -> Result<(), StoreError>;

    async fn upsert_tags(
        &self,
        tenant: &str,
        tags: &[Tag],
        groups: &[TagGroup],
    ) -> Result<(), StoreError>;

    async fn upsert_intent_levels(
        &self,
        tenant: &str,
        levels: &[IntentLevel],
    ) -> Result<(), StoreError>;

    /// One page of tasks by `task_id`, after `after`; `name_contains`
    /// narrows by name.
    async fn list_tasks(
        &self,
        tenant: &str,
        name_contains: Option<&str>,
        page_size: u32,
        after: Option<&str>,
    ) -> Result<TaskPage, StoreError>;

    /// The task with this id; `None` when the tenant has none.
    async fn get_task(&self, tenant: &str, task_id: &str) -> Result<Option<Task>, StoreError>;

    /// How far the task has got (zeros for a task without numbers or calls).
    async fn task_progress(&self, tenant: &str, task_id: &str) -> Result<TaskProgress, StoreError>;

    /// Every tag with its groups, and every group, by id.
    async fn list_tags(&self, tenant: &str) -> Result<(Vec<Tag>, Vec<TagGroup>), StoreError>;

    /// Every intent level, by id.
    async fn list_intent_levels(&self, tenant: &str) -> Result<Vec<IntentLevel>, StoreError>;
}

/// A page of tasks and the `task_id` the next one starts after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next: Option<String>,
}

/// Vendor records that were refused, kept with their reason.
#[async_trait]
pub trait QuarantineStore {
    /// Quarantined records, newest first.
    async fn list_rejected(
        &self,
        tenant: &str,
        source: Option<Source>,
        page_size: u32,
        after: Option<&Cursor>,
    ) -> Result<(Vec<RejectedRecord>, Option<Cursor>), StoreError>;
}

/// The dialing lists of tasks.
#[async_trait]
pub trait TaskNumberStore {
    /// Adds or updates numbers of a task's dialing list, all or none. A field
    /// left empty keeps what was stored; `upload_time` becomes `now`.
    async fn upsert_task_numbers(
        &self,
        tenant: &str,
        task_id: &str,
        entries: &[TaskNumberEntry],
        now: UnixMs,
    ) -> Result<TaskNumberUpsert, StoreError>;

    /// One page of a task's numbers, ordered by phone.
    async fn list_task_numbers(
        &self,
        tenant: &str,
        query: &TaskNumberQuery,
    ) -> Result<TaskNumberPage, StoreError>;
}

/// Campaign figures, computed by the database over the calls a filter selects.
#[async_trait]
pub trait StatsStore {
    /// The figures of the calls `filter` matches; `top_tags` limits `by_tag`.
    async fn call_stats(
        &self,
        tenant: &str,
        filter: &CallFilter,
        top_tags: u32,
    ) -> Result<CallStats, StoreError>;

    /// Sums per slot of `slot_ms` counted from `origin`, on the filter's time
    /// field, keyed by slot start. The caller folds slots into buckets.
    async fn call_time_slots(
        &self,
        tenant: &str,
        filter: &CallFilter,
        origin: UnixMs,
        slot_ms: i64,
    ) -> Result<Vec<(UnixMs, BucketSums)>, StoreError>;
}

/// API keys. Not scoped by tenant: a key is read before its tenant is known.
#[async_trait]
pub trait KeyStore {
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;

    /// The key with this id, revoked or not.
    async fn get_key(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError>;

    /// Every key, or a tenant's, by tenant then creation time.
    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<StoredKey>, StoreError>;

    /// Marks a key revoked (keeping the first revocation time); `false` when
    /// there is no such key.
    async fn revoke_key(&self, key_id: &str, now: UnixMs) -> Result<bool, StoreError>;

    /// Sets `last_used_time` to `now` unless it is already at or after
    /// `not_since`, so replicas write it at most once per interval.
    async fn touch_key(
        &self,
        key_id: &str,
        now: UnixMs,
        not_since: UnixMs,
    ) -> Result<(), StoreError>;
}

/// Removing data: by filter, by phone number (with tombstones), by age, and
/// past the quarantine's caps.
#[async_trait]
pub trait AdminStore {
    /// Deletes the calls `filter` selects with their child rows, in one
    /// transaction; with `validate_only` only counts them.
    async fn delete_calls(
        &self,
        tenant: &str,
        filter: &CallFilter,
        validate_only: bool,
    ) -> Result<i64, StoreError>;

    /// Removes the number from calls (leaving a tombstone per call), dialing
    /// lists and quarantined payloads, in one transaction; with
    /// `validate_only` only counts.
    async fn erase_phone(
        &self,
        tenant: &str,
        phone: &PhoneNotations,
        validate_only: bool,
        now: UnixMs,
    ) -> Result<ErasureCounts, StoreError>;

    /// Every tenant that has stored calls or quarantined records.
    async fn tenants(&self) -> Result<Vec<String>, StoreError>;

    /// Deletes the tenant's calls with `call_time < cutoff`, `batch` calls
    /// per transaction; answers how many.
    async fn purge_calls_before(
        &self,
        tenant: &str,
        cutoff: UnixMs,
        batch: usize,
    ) -> Result<u64, StoreError>;

    /// Deletes the tenant's quarantined records received before `cutoff`,
    /// `batch` per transaction; answers how many.
    async fn purge_rejected_before(
        &self,
        tenant: &str,
        cutoff: UnixMs,
        batch: usize,
    ) -> Result<u64, StoreError>;

    /// Drops a source's oldest quarantined records until `limits` hold,
    /// never one of `keep`; answers what was dropped.
    async fn trim_quarantine(
        &self,
        tenant: &str,
        source: Option<Source>,
        limits: QuarantineLimits,
        keep: &[String],
    ) -> Result<QuarantineTrim, StoreError>;
}

/// Sources pulled from vendor query APIs: their configuration, state, lease
/// (one replica pulls a source at a time) and per-task checkpoints.
#[async_trait]
pub trait SyncStore {
    /// Stores a new source; `false` when the tenant has one of that name.
    async fn create_sync_source(
        &self,
        tenant: &str,
        spec: &SyncSourceSpec,
        now: UnixMs,
    ) -> Result<bool, StoreError>;

    /// The tenant's sources by name, with state and checkpoints.
    async fn list_sync_sources(&self, tenant: &str) -> Result<Vec<StoredSyncSource>, StoreError>;

    async fn get_sync_source(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<StoredSyncSource>, StoreError>;

    /// Removes a source and its checkpoints; `false` when there was none.
    async fn delete_sync_source(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;

    /// Takes the source's lease for `owner` until `until` when it is free
    /// or expired, and marks the run's start; `false` when a run holds it
    /// (another replica's, or another of this one).
    async fn acquire_sync_lease(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        now: UnixMs,
        until: UnixMs,
    ) -> Result<bool, StoreError>;

    /// Extends `owner`'s lease; `false` when it is no longer `owner`'s.
    async fn renew_sync_lease(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        until: UnixMs,
    ) -> Result<bool, StoreError>;

    /// Stores a pulled page (rejected records included) and the checkpoint
    /// that moves past it, in one transaction, only while `owner` holds the
    /// lease (extended to `lease_until`); `None` when it does not.
    #[allow(clippy::too_many_arguments)]
    async fn ingest_sync_page(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        lease_until: UnixMs,
        batch: &IngestBatch,
        checkpoint: &SyncCheckpoint,
        now: UnixMs,
    ) -> Result<Option<IngestResults>, StoreError>;

    /// Stores a checkpoint alone, under the lease; `false` without it.
    async fn save_sync_checkpoint(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        lease_until: UnixMs,
        checkpoint: &SyncCheckpoint,
    ) -> Result<bool, StoreError>;

    /// The stored `update_time` of each of these calls that is stored.
    async fn stored_versions(
        &self,
        tenant: &str,
        source: Source,
        external_ids: &[String],
    ) -> Result<HashMap<String, Option<UnixMs>>, StoreError>;

    /// Calls of a source's task with `start <= call_time <= end`.
    async fn count_task_calls(
        &self,
        tenant: &str,
        source: Source,
        task_id: &str,
        start: UnixMs,
        end: UnixMs,
    ) -> Result<i64, StoreError>;

    /// Adds a run's figures to the source's state and lets go of `owner`'s
    /// lease.
    async fn finish_sync_run(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        report: &SyncRunReport,
    ) -> Result<(), StoreError>;
}

/// Webhook subscriptions with their deliveries, and the positions of the
/// message-bus sinks. The worker methods take a lease (`owner`) and every
/// write of theirs is fenced by it: `false` means the lease was lost and
/// nothing was written.
#[async_trait]
pub trait SubscriptionStore {
    /// Adds a subscription unless the tenant has `max_per_tenant` already
    /// (`false`).
    async fn insert_subscription(
        &self,
        tenant: &str,
        sub: &Subscription,
        max_per_tenant: usize,
    ) -> Result<bool, StoreError>;

    /// The tenant's subscriptions, oldest first.
    async fn list_subscriptions(&self, tenant: &str) -> Result<Vec<Subscription>, StoreError>;

    async fn get_subscription(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<Subscription>, StoreError>;

    /// Deletes a subscription with its deliveries; `false` when there was none.
    async fn delete_subscription(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    /// A subscription's latest deliveries, newest event first.
    async fn list_deliveries(
        &self,
        tenant: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Leases up to `limit` of the tenant's subscriptions whose lease ended
    /// by `now` to `owner` until `lease_until`, skipping rows another
    /// replica is claiming.
    async fn claim_subscriptions(
        &self,
        tenant: &str,
        owner: &str,
        now: UnixMs,
        lease_until: UnixMs,
        limit: u32,
    ) -> Result<Vec<Subscription>, StoreError>;

    /// The delivery of the event at `position`, if one was attempted.
    async fn get_delivery(
        &self,
        tenant: &str,
        id: &str,
        position: i64,
    ) -> Result<Option<Delivery>, StoreError>;

    /// Records an attempt and updates the subscription, in one transaction.
    async fn record_delivery(
        &self,
        tenant: &str,
        id: &str,
        owner: &str,
        delivery: &Delivery,
        update: SubscriptionUpdate<'_>,
    ) -> Result<bool, StoreError>;

    /// Updates a leased subscription (position, lease).
    async fn update_subscription(
        &self,
        tenant: &str,
        id: &str,
        owner: &str,
        update: SubscriptionUpdate<'_>,
    ) -> Result<bool, StoreError>;

    /// Leases the tenant's row of `sink` (made at position 0 when missing)
    /// and answers its position; `None` while another owner holds it.
    async fn claim_sink(
        &self,
        tenant: &str,
        sink: &str,
        owner: &str,
        now: UnixMs,
        lease_until: UnixMs,
    ) -> Result<Option<i64>, StoreError>;

    /// Commits a sink's position and extends its lease.
    async fn advance_sink(
        &self,
        tenant: &str,
        sink: &str,
        owner: &str,
        position: i64,
        lease_until: UnixMs,
    ) -> Result<bool, StoreError>;
}

/// The event log: every committed insert, update and delete of a call, per
/// tenant, at positions 1, 2, 3, … in commit order. Written by the write
/// paths themselves (`IngestStore`, `AdminStore`), in their transactions.
#[async_trait]
pub trait EventStore {
    /// The tenant's events after position `after`, in order, at most `limit`.
    async fn events_after(
        &self,
        tenant: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<CallEvent>, StoreError>;

    /// Where the tenant's log stands: last position, and what retention removed.
    async fn event_log(&self, tenant: &str) -> Result<EventLogState, StoreError>;

    /// Every tenant that has events, with where its log stands, by tenant.
    async fn event_logs(&self) -> Result<Vec<(String, EventLogState)>, StoreError>;

    /// For every tenant whose log is past its entry of `after` (a tenant
    /// missing from it counts as 0, its whole log), its next events, at most
    /// `limit_per_tenant` each; in order within a tenant, tenants by name.
    async fn events_after_all(
        &self,
        after: &BTreeMap<String, i64>,
        limit_per_tenant: u32,
    ) -> Result<Vec<CallEvent>, StoreError>;

    /// Deletes the tenant's events written before `cutoff`, `batch` per
    /// transaction; answers how many.
    async fn purge_events_before(
        &self,
        tenant: &str,
        cutoff: UnixMs,
        batch: usize,
    ) -> Result<u64, StoreError>;

    /// Changes after every commit of this process that wrote events: a
    /// wake-up for readers of the log. Writes of other processes (replicas)
    /// do not show here: readers also poll.
    fn event_signal(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Everything a storage backend offers.
#[async_trait]
pub trait Backend:
    IngestStore
    + CallStore
    + CatalogStore
    + QuarantineStore
    + TaskNumberStore
    + StatsStore
    + KeyStore
    + AdminStore
    + SyncStore
    + SubscriptionStore
    + EventStore
    + Send
    + Sync
{
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pools' figures, for metrics.
    fn pools(&self) -> Vec<PoolFigures> {
        Vec::new()
    }
}

/// One connection pool's figures: `name` is `writer` or `reader` (the same
/// pool on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFigures {
    pub name: &'static str,
    pub size: u32,
    pub idle: usize,
    pub max: u32,
}

/// The storage backend chosen by the database URL, shared by every request.
/// It dereferences to [`Backend`], whose methods are the store's operations.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Connects and applies the backend's migrations. The one place that
    /// chooses a backend.
    pub async fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        let url = options.url.as_str();
        if url.starts_with("sqlite:") && options.read_url.is_some() {
            return Err(StoreError::ReplicaNeedsPostgres(redact(url)));
        }
        let backend: Arc<dyn Backend> = if url.starts_with("sqlite:") {
            Arc::new(sqlite::connect(options).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Arc::new(postgres::connect(options).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        };
        Ok(Self(backend))
    }
}

impl Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// A database URL with any password replaced, safe to log.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
