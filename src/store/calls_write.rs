//! Writing calls: typed upserts and batches of vendor records, each in one
//! transaction, with a constant number of statements per ~200 calls
//! (look-up, upsert, child rows, catalogs) instead of per call.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Transaction, Type,
};

use super::calls_read::{TagsRead, snapshot};
use super::catalogs::Catalog;
use super::dialect::{Rows, to_json};
use super::{Dialect, IngestBatch, IngestResults, IngestStore, SqlStore, StoreError};
use crate::domain::event::EventKind;
use crate::domain::merge::{MergeRule, merge_views};
use crate::domain::{
    Call, DialogueTurn, IntentLevel, StoredCall, Tag, TagGroup, Task, UnixMs, UpsertOutcome,
    UpsertResult,
};

/// The columns of `calls` written from a [`Call`], in bind order.
const CALL_COLUMNS: &[&str] = &[
    "source",
    "external_id",
    "task_id",
    "parent_task_id",
    "script_id",
    "callee",
    "callee_raw",
    "caller",
    "caller_raw",
    "submit_time",
    "call_time",
    "ring_time",
    "answer_time",
    "hangup_time",
    "ring_ms",
    "talk_ms",
    "total_ms",
    "billed_ms",
    "outcome",
    "vendor_status",
    "hangup_cause",
    "sip_code",
    "hangup_by",
    "score",
    "intent_level_id",
    "rounds",
    "recording_url",
    "gender",
    "province",
    "city",
    "area_code",
    "carrier",
    "region",
    "post_code",
    "rate",
    "base_cost",
    "cost",
    "currency",
    "settle_rate",
    "settle_cost",
    "quote_exchange",
    "bill_period",
    "dtmf",
    "recall_count",
    "recall_of",
    "customer_name",
    "line_id",
    "attributes",
    "update_time",
    "alt_id",
    "quality_flags",
    "base_cost_currency",
    "settle_currency",
    "intent_level_snapshot",
];

/// Ids per statement where the ids go in as one bound value
/// ([`Dialect::push_in`]): no placeholder limit applies, so a batch's ids go
/// in one statement; the bound only caps one statement's work.
pub(super) const IDS_PER_STATEMENT: usize = 10_000;

/// `origin` bits of a `call_tags` / `call_tag_groups` row: the call's own
/// tags (and groups), the tags of its dialogue turns.
const TAG_FROM_CALL: i64 = 1;
const TAG_FROM_TURN: i64 = 2;
/// Turn tags sort after the call's own tags.
const TURN_TAG_POSITIONS: i64 = 1_000_000;

/// One row of `call_tags` or `call_tag_groups`.
struct TagRow<'a> {
    call_id: &'a str,
    id: String,
    position: i64,
    origin: i64,
    /// The tag or group as the vendor sent it with this call (JSON).
    snapshot: String,
}

/// The two tables of [`TagRow`]s.
#[derive(Clone, Copy)]
enum TagTable {
    /// `call_tags`.
    Tags,
    /// `call_tag_groups`.
    Groups,
}

/// The tag (or group) rows of one call: one per id, first-seen position,
/// the origins of every mention.
struct TagRows<'a> {
    call_id: &'a str,
    rows: Vec<TagRow<'a>>,
    index: HashMap<String, usize>,
}

impl<'a> TagRows<'a> {
    fn new(call_id: &'a str) -> Self {
        Self {
            call_id,
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Adds a mention of a tag or group; the first mention's snapshot
    /// is kept.
    fn add<T: serde::Serialize>(
        &mut self,
        id: &str,
        origin: i64,
        base: i64,
        sent: &T,
    ) -> Result<(), StoreError> {
        match self.index.get(id) {
            Some(&i) => self.rows[i].origin |= origin,
            None => {
                self.index.insert(id.to_owned(), self.rows.len());
                self.rows.push(TagRow {
                    call_id: self.call_id,
                    id: id.to_owned(),
                    position: base + self.rows.len() as i64,
                    origin,
                    snapshot: serde_json::to_string(sent).map_err(StoreError::encode)?,
                });
            }
        }
        Ok(())
    }
}

/// A call's tags and hit groups, in order.
type ShownParts = (Vec<Tag>, Vec<TagGroup>);

/// A call's tags and hit groups as a read shows them ([`TagsRead::Shown`]),
/// from the rows just built for it: each from the snapshot it was sent with.
/// `None` when one was sent without a name, so that a read shows the
/// catalog's, which only the database knows.
fn shown_parts(
    tags: &[TagRow<'_>],
    groups: &[TagRow<'_>],
) -> Result<Option<ShownParts>, StoreError> {
    let mut shown_tags = Vec::with_capacity(tags.len());
    for row in tags {
        let mut tag: Tag = serde_json::from_str(&row.snapshot).map_err(StoreError::encode)?;
        if tag.name.is_empty() {
            return Ok(None);
        }
        tag.id = row.id.clone();
        shown_tags.push(tag);
    }
    let mut shown_groups = Vec::with_capacity(groups.len());
    for row in groups {
        let mut group: TagGroup =
            serde_json::from_str(&row.snapshot).map_err(StoreError::encode)?;
        if group.name.is_empty() {
            return Ok(None);
        }
        group.id = row.id.clone();
        shown_groups.push(group);
    }
    Ok(Some((shown_tags, shown_groups)))
}

/// Whether a call just written is, but for its tags and groups, what a read
/// in the same transaction would return: written whole (nothing kept from a
/// stored version), its update time its own, its level named as sent. Its
/// tags and groups are then checked too ([`shown_parts`]); otherwise its
/// event reads the call back.
fn known_but_tags(call: &Call, mode: WriteMode, outcome: UpsertOutcome) -> bool {
    let whole = mode == WriteMode::Replace || outcome == UpsertOutcome::Inserted;
    // An update without an update time keeps the stored one (`upsert_rows`).
    let own_update_time = outcome == UpsertOutcome::Inserted || call.update_time.is_some();
    let level_as_sent = call.intent_level.as_ref().is_none_or(IntentLevel::is_named);
    whole && own_update_time && level_as_sent
}

/// A call just written, as a read in the same transaction would return it
/// (turns aside), from the call ([`known_but_tags`]) and its tags and groups
/// as shown.
fn known_version(call: &Call, (tags, tag_groups): ShownParts) -> Call {
    let mut shown = call.clone();
    shown.tags = tags;
    shown.tag_groups = tag_groups;
    shown.turns = Vec::new();
    shown
}

/// The [`Call::content_hash`] of each call of a batch, its calls then its
/// history calls (the order `ingest_in` writes them in): computed before
/// the transaction, which on SQLite holds the one writer.
pub(super) fn batch_hashes(batch: &IngestBatch) -> Vec<String> {
    batch
        .calls
        .iter()
        .chain(&batch.history_calls)
        .map(Call::content_hash)
        .collect()
}

/// How a new version of a call is written over a stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    /// The new version is the whole record (UpsertCalls).
    Replace,
    /// Vendor records: a version without turns or tags keeps the stored ones,
    /// since vendors report one call in several partial views.
    KeepMissingParts,
    /// Only stored when the call is not there yet (a dialing list's history).
    InsertOnly,
}

/// What an existing record looks like, to decide whether a new version wins.
struct Existing {
    call_id: String,
    update_time: Option<UnixMs>,
    content_hash: String,
}

/// A call that will be written, with the id and outcome decided for it.
struct PlannedWrite {
    index: usize,
    call_id: String,
    outcome: UpsertOutcome,
    hash: String,
}

/// True when a planned write only inserts (`ON CONFLICT DO NOTHING`): a
/// vendor view meant as a new call never overwrites a call a concurrent
/// writer stored meanwhile, but merges with it in a later round.
fn inserts_only(mode: WriteMode, outcome: UpsertOutcome) -> bool {
    mode != WriteMode::Replace && outcome == UpsertOutcome::Inserted
}

/// A vendor view merged with the stored call.
enum Merged {
    /// The view adds nothing: the stored call, by id, stays as it is.
    Same(String),
    /// The call the view makes of the stored one.
    Into(Box<Call>),
}

/// A call written in this round: its index in the batch, id and outcome.
type Stored = (usize, String, UpsertOutcome);

type CallKey = (i32, String);

/// The external ids of a round's calls, by source: one look-up per source.
fn keys_by_source<'a>(
    calls: &[(&'a Call, WriteMode)],
    round: &[usize],
) -> BTreeMap<i32, Vec<&'a str>> {
    let mut by_source: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for &i in round {
        let call = calls[i].0;
        by_source
            .entry(call.source.code())
            .or_default()
            .push(call.external_id.as_str());
    }
    by_source
}

fn call_key(call: &Call) -> CallKey {
    (call.source.code(), call.external_id.clone())
}

/// Decides, call by call, whether a round inserts, updates or leaves alone.
/// Calls left alone get their result at once; the others are returned.
/// `hash_of` gives a call's [`Call::content_hash`] by index.
fn plan_round(
    calls: &[(&Call, WriteMode)],
    hash_of: &dyn Fn(usize) -> String,
    round: &[usize],
    existing: &HashMap<CallKey, Existing>,
    erased: &HashSet<CallKey>,
    results: &mut [Option<UpsertResult>],
) -> Vec<PlannedWrite> {
    let mut writes = Vec::new();
    for &index in round {
        let (call, mode) = calls[index];
        let key = call_key(call);
        // An erased call is never stored again, whatever door it comes by.
        if erased.contains(&key) {
            results[index] = Some(UpsertResult {
                call_id: String::new(),
                outcome: UpsertOutcome::Erased,
            });
            continue;
        }
        let hash = hash_of(index);
        match existing.get(&key) {
            None => writes.push(PlannedWrite {
                index,
                call_id: uuid::Uuid::now_v7().to_string(),
                outcome: UpsertOutcome::Inserted,
                hash,
            }),
            Some(old) => {
                // The vendor's update time decides; equal (or unknown) times
                // fall back to arrival order, so the later arrival wins.
                let older = matches!((call.update_time, old.update_time), (Some(new), Some(cur)) if new < cur);
                if mode == WriteMode::InsertOnly || older || old.content_hash == hash {
                    results[index] = Some(UpsertResult {
                        call_id: old.call_id.clone(),
                        outcome: UpsertOutcome::Unchanged,
                    });
                } else {
                    writes.push(PlannedWrite {
                        index,
                        call_id: old.call_id.clone(),
                        outcome: UpsertOutcome::Updated,
                        hash,
                    });
                }
            }
        }
    }
    writes
}

#[async_trait]
impl<DB> IngestStore for SqlStore<DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'v> i64: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> String: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> Vec<u8>: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> bool: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> &'v str: Decode<'v, DB> + Type<DB>,
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    async fn upsert_calls(
        &self,
        tenant: &str,
        calls: &[Call],
        now: UnixMs,
    ) -> Result<Vec<UpsertResult>, StoreError> {
        // Before the transaction: on SQLite it holds the one writer, so
        // work done first does not hold the other batches back.
        let hashes: Vec<String> = calls.iter().map(Call::content_hash).collect();
        let mut tx = self.begin(tenant).await?;
        Self::register_tenant(&mut tx, tenant).await?;
        let batch: Vec<(&Call, WriteMode)> =
            calls.iter().map(|c| (c, WriteMode::Replace)).collect();
        let results = Self::write_calls(&mut tx, tenant, &batch, &hashes, now).await?;
        tx.commit().await?;
        self.events_committed();
        self.after_write(calls.len() as u64).await;
        Ok(results)
    }

    /// The calls, the calls known only from a dialing list's history (stored
    /// only when the call is not there yet, so they never overwrite a full
    /// record), the tasks and the number lists, in one transaction.
    async fn ingest(
        &self,
        tenant: &str,
        batch: &IngestBatch,
        now: UnixMs,
    ) -> Result<IngestResults, StoreError> {
        // The quarantine commits on its own first: a record that was refused
        // is kept even if storing the good ones fails.
        if !batch.rejected.is_empty() {
            let mut tx = self.begin(tenant).await?;
            Self::register_tenant(&mut tx, tenant).await?;
            for record in &batch.rejected {
                Self::insert_rejected(&mut tx, tenant, record).await?;
            }
            tx.commit().await?;
        }
        let hashes = batch_hashes(batch);
        let mut tx = self.begin(tenant).await?;
        Self::register_tenant(&mut tx, tenant).await?;
        let results = Self::ingest_in(&mut tx, tenant, batch, &hashes, now).await?;
        tx.commit().await?;
        self.events_committed();
        self.after_write(batch.rows()).await;
        Ok(results)
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'v> i64: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> String: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> Vec<u8>: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> bool: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> &'v str: Decode<'v, DB> + Type<DB>,
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    /// Everything of an [`IngestBatch`] but its rejected records, inside the
    /// caller's transaction (a sync page commits its checkpoint with it).
    /// `hashes` are [`batch_hashes`], taken before the transaction.
    pub(super) async fn ingest_in(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        batch: &IngestBatch,
        hashes: &[String],
        now: UnixMs,
    ) -> Result<IngestResults, StoreError> {
        let calls: Vec<(&Call, WriteMode)> = batch
            .calls
            .iter()
            .map(|c| (c, WriteMode::KeepMissingParts))
            .chain(
                batch
                    .history_calls
                    .iter()
                    .map(|c| (c, WriteMode::InsertOnly)),
            )
            .collect();
        let mut written = Self::write_calls(tx, tenant, &calls, hashes, now).await?;
        let history_calls = written.split_off(batch.calls.len());
        // After the calls: two batches with views of one call meet first on
        // the call's row (PostgreSQL), and one waits for the other there
        // instead of each holding a catalog row the other needs.
        for task in &batch.tasks {
            Self::upsert_task(tx, tenant, task).await?;
        }
        let mut numbers = Vec::with_capacity(batch.numbers.len());
        for (task_id, entries) in &batch.numbers {
            numbers.push(Self::write_task_numbers(tx, tenant, task_id, entries, now).await?);
        }
        Ok(IngestResults {
            calls: written,
            history_calls,
            numbers,
        })
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'v> i64: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> String: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> Vec<u8>: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> bool: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> &'v str: Decode<'v, DB> + Type<DB>,
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    /// Writes a batch of calls. A key that appears twice in one batch is
    /// applied in order, one round per repetition.
    async fn write_calls(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        calls: &[(&Call, WriteMode)],
        hashes: &[String],
        now: UnixMs,
    ) -> Result<Vec<UpsertResult>, StoreError> {
        // Before the tombstones are read: an erasure in flight finishes first.
        Self::erasure_lock(tx, tenant, false).await?;
        let mut results: Vec<Option<UpsertResult>> = vec![None; calls.len()];
        let mut pending: Vec<usize> = (0..calls.len()).collect();
        // One event per call written, carrying its final version: a key
        // repeated in the batch is one change as far as readers can see.
        let mut changes: Vec<(String, EventKind)> = Vec::new();
        let mut changed: HashSet<String> = HashSet::new();
        // The final version of each call written, where known without a read.
        let mut known: HashMap<String, StoredCall> = HashMap::new();
        while !pending.is_empty() {
            let mut seen = HashSet::new();
            let (round, later): (Vec<usize>, Vec<usize>) = pending
                .iter()
                .partition(|&&i| seen.insert(call_key(calls[i].0)));
            let existing = Self::look_up_existing(tx, tenant, calls, &round).await?;
            let erased = Self::look_up_erased(tx, tenant, calls, &round).await?;
            // A vendor's view of a stored call merges with what is stored,
            // and the merged call is written whole.
            let merged =
                Self::merge_with_stored(tx, tenant, calls, &round, &existing, &erased).await?;
            let mut merged_calls: HashMap<usize, Call> = HashMap::new();
            for (index, merge) in merged {
                match merge {
                    Merged::Same(call_id) => {
                        results[index] = Some(UpsertResult {
                            call_id,
                            outcome: UpsertOutcome::Unchanged,
                        });
                    }
                    Merged::Into(call) => {
                        merged_calls.insert(index, *call);
                    }
                }
            }
            let calls_now: Vec<(&Call, WriteMode)> = calls
                .iter()
                .enumerate()
                .map(|(i, &(call, mode))| match merged_calls.get(&i) {
                    Some(merged) => (merged, WriteMode::Replace),
                    None => (call, mode),
                })
                .collect();
            let calls = calls_now.as_slice();
            let round: Vec<usize> = round
                .into_iter()
                .filter(|&i| results[i].is_none())
                .collect();
            // A merged call is new content: its own hash.
            let hash_of = |index: usize| {
                merged_calls
                    .get(&index)
                    .map_or_else(|| hashes[index].clone(), Call::content_hash)
            };
            let writes = plan_round(calls, &hash_of, &round, &existing, &erased, &mut results);
            let written = Self::upsert_rows(tx, tenant, calls, &writes, now).await?;
            let (stored, retry) =
                Self::settle(tx, tenant, calls, writes, written, &mut results).await?;
            Self::replace_children(tx, tenant, calls, &stored).await?;
            let written_calls: Vec<(&str, &Call, bool)> = stored
                .iter()
                .map(|(index, call_id, outcome)| {
                    let (call, mode) = calls[*index];
                    (call_id.as_str(), call, known_but_tags(call, mode, *outcome))
                })
                .collect();
            let shown = Self::write_children(tx, tenant, &written_calls).await?;
            for ((index, call_id, outcome), parts) in stored.into_iter().zip(shown) {
                match parts {
                    Some(parts) => {
                        let version = StoredCall {
                            call_id: call_id.clone(),
                            sync_time: now,
                            call: known_version(calls[index].0, parts),
                        };
                        known.insert(call_id.clone(), version);
                    }
                    None => {
                        known.remove(&call_id);
                    }
                }
                let kind = match outcome {
                    UpsertOutcome::Inserted => EventKind::Created,
                    _ => EventKind::Updated,
                };
                if changed.insert(call_id.clone()) {
                    changes.push((call_id.clone(), kind));
                }
                results[index] = Some(UpsertResult { call_id, outcome });
            }
            // A vendor view inserted by a concurrent writer after our look-up
            // goes round again, to merge with what that writer stored.
            pending = later;
            pending.extend(retry);
            pending.sort_unstable();
        }
        Self::append_written(tx, tenant, &changes, known).await?;
        results
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| StoreError::Corrupt("a call of the batch got no result".into()))
    }

    /// Merges each vendor view (not a typed call) of a stored call with the
    /// stored call ([`merge_views`]): a view as new as the stored call or
    /// newer replaces what it carries, an older one and a dialing list's
    /// history only fill what the call lacks. The stored rows are locked
    /// (PostgreSQL) so that no concurrent writer changes them meanwhile.
    async fn merge_with_stored(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        calls: &[(&Call, WriteMode)],
        round: &[usize],
        existing: &HashMap<CallKey, Existing>,
        erased: &HashSet<CallKey>,
    ) -> Result<Vec<(usize, Merged)>, StoreError> {
        let views: Vec<(usize, &str)> = round
            .iter()
            .filter(|&&i| calls[i].1 != WriteMode::Replace)
            .filter(|&&i| !erased.contains(&call_key(calls[i].0)))
            .filter_map(|&i| {
                existing
                    .get(&call_key(calls[i].0))
                    .map(|old| (i, old.call_id.as_str()))
            })
            .collect();
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<String> = views.iter().map(|(_, id)| (*id).to_owned()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut stored = Self::load_as_stored(tx, tenant, &ids).await?;
        let mut merged = Vec::with_capacity(views.len());
        for (index, call_id) in views {
            let (view, mode) = calls[index];
            // Deleted meanwhile: the view is written as it is.
            let Some(old) = stored.get(call_id) else {
                continue;
            };
            let rule = if mode == WriteMode::InsertOnly {
                MergeRule::FillOnly
            } else {
                MergeRule::by_update_time(old, view)
            };
            let new = merge_views(old, view, rule);
            if new == *old {
                merged.push((index, Merged::Same(call_id.to_owned())));
            } else {
                // A later view of the same call in this batch merges with this one.
                stored.insert(call_id.to_owned(), new.clone());
                merged.push((index, Merged::Into(Box::new(new))));
            }
        }
        Ok(merged)
    }

    /// Stored calls whole, as written (their own tags, hit groups and
    /// level as the vendor sent them, every turn), locking their rows.
    async fn load_as_stored(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        call_ids: &[String],
    ) -> Result<HashMap<String, Call>, StoreError> {
        let mut out = HashMap::new();
        for chunk in call_ids.chunks(IDS_PER_STATEMENT) {
            let mut qb = Self::select_calls();
            qb.push(" WHERE c.tenant_id = ")
                .push_bind(tenant.to_owned())
                .push(" AND c.call_id");
            DB::push_in(&mut qb, chunk);
            // One lock order for every writer, so two batches that share
            // calls wait for each other rather than deadlock.
            qb.push(" ORDER BY c.call_id").push(DB::LOCK_CALL_ROWS);
            let rows = qb.build().fetch_all(&mut **tx).await?;
            let mut calls = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter().enumerate() {
                let mut stored = Self::row_to_call(row, i == 0)?;
                let sent: Option<IntentLevel> = snapshot(row, "intent_level_snapshot")?;
                if let (Some(level), Some(sent)) = (stored.call.intent_level.as_mut(), sent) {
                    *level = IntentLevel {
                        id: std::mem::take(&mut level.id),
                        ..sent
                    };
                }
                calls.push(stored);
            }
            Self::attach_tags_of(&mut **tx, tenant, &mut calls, TagsRead::OwnAsStored).await?;
            let mut qb = QueryBuilder::<DB>::new(
                "SELECT call_id, sequence, kind, customer_text, robot_text, node_id, node_name, \
                 keyword, score, speak_ms, play_ms, asr_latency_ms, tags, turn_time, \
                 after_transfer, turn_id, attributes FROM dialogue_turns WHERE tenant_id = ",
            );
            qb.push_bind(tenant.to_owned()).push(" AND call_id");
            DB::push_in(&mut qb, chunk);
            qb.push(" ORDER BY call_id, sequence");
            let mut turns: HashMap<String, Vec<DialogueTurn>> = HashMap::new();
            for row in qb.build().fetch_all(&mut **tx).await? {
                turns
                    .entry(row.try_get("call_id")?)
                    .or_default()
                    .push(Self::row_to_turn(&row)?);
            }
            for mut stored in calls {
                stored.call.turns = turns.remove(&stored.call_id).unwrap_or_default();
                out.insert(stored.call_id, stored.call);
            }
        }
        Ok(out)
    }

    /// `SELECT {columns} FROM {table}` for the rows of one source and these
    /// external ids. `source = ? AND external_id IN (…)` walks the unique
    /// key, where a row-value IN list would make SQLite scan every call of
    /// the tenant.
    fn select_by_keys(
        columns: &str,
        table: &str,
        tenant: &str,
        source: i32,
        external_ids: &[&str],
    ) -> QueryBuilder<DB> {
        let mut qb =
            QueryBuilder::<DB>::new(format!("SELECT {columns} FROM {table} WHERE tenant_id = "));
        qb.push_bind(tenant.to_owned())
            .push(" AND source = ")
            .push_bind(i64::from(source))
            .push(" AND external_id");
        let ids: Vec<String> = external_ids.iter().map(|id| (*id).to_owned()).collect();
        DB::push_in(&mut qb, &ids);
        qb
    }

    /// The stored versions of a round's calls, by key.
    async fn look_up_existing(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        calls: &[(&Call, WriteMode)],
        round: &[usize],
    ) -> Result<HashMap<CallKey, Existing>, StoreError> {
        let mut existing: HashMap<CallKey, Existing> = HashMap::new();
        for (source, ids) in keys_by_source(calls, round) {
            for chunk in ids.chunks(IDS_PER_STATEMENT) {
                let mut qb = Self::select_by_keys(
                    "external_id, call_id, update_time, content_hash",
                    "calls",
                    tenant,
                    source,
                    chunk,
                );
                for row in qb.build().fetch_all(&mut **tx).await? {
                    existing.insert(
                        (source, row.try_get("external_id")?),
                        Existing {
                            call_id: row.try_get("call_id")?,
                            update_time: row.try_get("update_time")?,
                            content_hash: row.try_get("content_hash")?,
                        },
                    );
                }
            }
        }
        Ok(existing)
    }

    /// The keys of a round's calls that were erased (tombstones of
    /// ErasePhone): one look-up per source and chunk, like
    /// [`Self::look_up_existing`].
    async fn look_up_erased(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        calls: &[(&Call, WriteMode)],
        round: &[usize],
    ) -> Result<HashSet<CallKey>, StoreError> {
        let mut erased = HashSet::new();
        for (source, ids) in keys_by_source(calls, round) {
            for chunk in ids.chunks(IDS_PER_STATEMENT) {
                let mut qb =
                    Self::select_by_keys("external_id", "erased_calls", tenant, source, chunk);
                let found: Vec<String> = qb.build_query_scalar().fetch_all(&mut **tx).await?;
                erased.extend(found.into_iter().map(|id| (source, id)));
            }
        }
        Ok(erased)
    }

    /// Inserts or updates the planned rows; answers the id each key got, for
    /// the rows the database actually wrote.
    async fn upsert_rows(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        calls: &[(&Call, WriteMode)],
        writes: &[PlannedWrite],
        now: UnixMs,
    ) -> Result<HashMap<CallKey, String>, StoreError> {
        let mut written: HashMap<CallKey, String> = HashMap::new();
        // Insert-only rows (a dialing list's history) never update: with a
        // concurrent writer they must not replace the full record.
        let (mut insert_only, mut upserts): (Vec<&PlannedWrite>, Vec<&PlannedWrite>) = writes
            .iter()
            .partition(|w| inserts_only(calls[w.index].1, w.outcome));
        // Rows go in (task, callee, key) order, so every writer takes the row
        // locks that writing calls takes (a number's kept state, migration
        // 0015; a new call's unique key) in one order, and two batches that
        // share numbers wait for each other rather than deadlock.
        let order = |w: &&PlannedWrite| {
            let call = calls[w.index].0;
            (
                call.task_id.clone(),
                call.callee.clone(),
                call.source.code(),
                call.external_id.clone(),
            )
        };
        upserts.sort_by_cached_key(order);
        insert_only.sort_by_cached_key(order);
        let per_statement = DB::rows_per_insert(CALL_COLUMNS.len() + 4);
        let mut chunks: Vec<(&[&PlannedWrite], bool)> = Vec::new();
        for chunk in upserts.chunks(per_statement) {
            chunks.push((chunk, false));
        }
        for chunk in insert_only.chunks(per_statement) {
            chunks.push((chunk, true));
        }
        for (chunk, insert_only) in chunks {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO calls (tenant_id, call_id, sync_time, content_hash",
            );
            for column in CALL_COLUMNS {
                qb.push(", ").push(column);
            }
            qb.push(")");
            let mut rows = Rows::default();
            for w in chunk {
                rows.row()
                    .text(tenant)
                    .text(w.call_id.clone())
                    .int(now)
                    .text(w.hash.clone());
                Self::call_values(&mut rows, calls[w.index].0)?;
            }
            DB::push_rows(&mut qb, rows)?;
            if insert_only {
                qb.push(
                    " ON CONFLICT (tenant_id, source, external_id) DO NOTHING \
                     RETURNING source, external_id, call_id",
                );
            } else {
                qb.push(" ON CONFLICT (tenant_id, source, external_id) DO UPDATE SET sync_time = excluded.sync_time, content_hash = excluded.content_hash");
                for column in CALL_COLUMNS {
                    if *column == "update_time" {
                        // A version without an update time keeps the known
                        // one, so a late older version still loses to it.
                        qb.push(
                            ", update_time = COALESCE(excluded.update_time, calls.update_time)",
                        );
                    } else if *column == "alt_id" {
                        // A view without the vendor's second id keeps it findable.
                        qb.push(
                            ", alt_id = CASE WHEN excluded.alt_id <> '' \
                             THEN excluded.alt_id ELSE calls.alt_id END",
                        );
                    } else {
                        qb.push(format_args!(", {column} = excluded.{column}"));
                    }
                }
                // The database itself keeps an older version from replacing a newer
                // one, so concurrent writers (PostgreSQL) cannot race past the
                // decision above.
                qb.push(
                    " WHERE calls.update_time IS NULL OR excluded.update_time IS NULL \
                 OR excluded.update_time >= calls.update_time \
                 RETURNING source, external_id, call_id",
                );
            }
            for row in qb.build().fetch_all(&mut **tx).await? {
                let source: i64 = row.try_get("source")?;
                written.insert(
                    (source as i32, row.try_get("external_id")?),
                    row.try_get("call_id")?,
                );
            }
        }
        Ok(written)
    }

    /// Matches what the database wrote with what was planned. A planned write
    /// the database refused lost to a newer version committed meanwhile.
    async fn settle(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        calls: &[(&Call, WriteMode)],
        writes: Vec<PlannedWrite>,
        mut written: HashMap<CallKey, String>,
        results: &mut [Option<UpsertResult>],
    ) -> Result<(Vec<Stored>, Vec<usize>), StoreError> {
        let mut stored: Vec<Stored> = Vec::with_capacity(writes.len());
        let mut retry = Vec::new();
        for w in writes {
            let call = calls[w.index].0;
            match written.remove(&call_key(call)) {
                // A vendor view meant as a new call met one a concurrent
                // writer inserted: it merges with it in another round.
                None if inserts_only(calls[w.index].1, w.outcome) => retry.push(w.index),
                // A newer version was committed meanwhile: ours is stale.
                None => {
                    let mut qb =
                        QueryBuilder::<DB>::new("SELECT call_id FROM calls WHERE tenant_id = ");
                    qb.push_bind(tenant.to_owned())
                        .push(" AND source = ")
                        .push_bind(i64::from(call.source.code()))
                        .push(" AND external_id = ")
                        .push_bind(call.external_id.clone());
                    let call_id: String = qb.build_query_scalar().fetch_one(&mut **tx).await?;
                    results[w.index] = Some(UpsertResult {
                        call_id,
                        outcome: UpsertOutcome::Unchanged,
                    });
                }
                Some(call_id) => {
                    // Inserted by a concurrent writer after our look-up: an update.
                    let outcome = if call_id == w.call_id {
                        w.outcome
                    } else {
                        UpsertOutcome::Updated
                    };
                    stored.push((w.index, call_id, outcome));
                }
            }
        }
        Ok((stored, retry))
    }

    /// A new version replaces the child rows it carries. A partial view of a
    /// record (a list row without turns, a brief record without tags) keeps the
    /// parts it does not carry. Tag rows know which part they came from
    /// (`origin`: the call's own tags, its turns' tags, or both), so a view
    /// that carries only one part replaces only that part's tag rows.
    async fn replace_children(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        calls: &[(&Call, WriteMode)],
        stored: &[Stored],
    ) -> Result<(), StoreError> {
        let mut clear_all_tags = Vec::new();
        let mut clear_own_tags = Vec::new();
        let mut clear_turn_tags = Vec::new();
        let mut clear_turns = Vec::new();
        for (index, call_id, outcome) in stored {
            let (call, mode) = calls[*index];
            if *outcome != UpsertOutcome::Updated {
                continue;
            }
            let keep = mode == WriteMode::KeepMissingParts;
            let own = !keep || !call.tags.is_empty() || !call.tag_groups.is_empty();
            let turns = !keep || !call.turns.is_empty();
            match (own, turns) {
                (true, true) => clear_all_tags.push(call_id.clone()),
                (true, false) => clear_own_tags.push(call_id.clone()),
                (false, true) => clear_turn_tags.push(call_id.clone()),
                (false, false) => {}
            }
            if turns {
                clear_turns.push(call_id.clone());
            }
        }
        for (table, ids) in [
            ("call_tags", &clear_all_tags),
            ("call_tag_groups", &clear_all_tags),
            ("dialogue_turns", &clear_turns),
        ] {
            Self::delete_by_ids(tx, table, "call_id", tenant, ids, IDS_PER_STATEMENT).await?;
        }
        // One part replaced: its rows go, rows of both parts keep the other.
        for (ids, gone, stays) in [
            (&clear_own_tags, TAG_FROM_CALL, TAG_FROM_TURN),
            (&clear_turn_tags, TAG_FROM_TURN, TAG_FROM_CALL),
        ] {
            for table in ["call_tags", "call_tag_groups"] {
                for chunk in ids.chunks(IDS_PER_STATEMENT) {
                    let mut qb =
                        QueryBuilder::<DB>::new(format!("DELETE FROM {table} WHERE tenant_id = "));
                    qb.push_bind(tenant.to_owned())
                        .push(" AND origin = ")
                        .push_bind(gone)
                        .push(" AND call_id");
                    DB::push_in(&mut qb, chunk);
                    qb.build().execute(&mut **tx).await?;
                    let mut qb = QueryBuilder::<DB>::new(format!("UPDATE {table} SET origin = "));
                    qb.push_bind(stays)
                        .push(" WHERE tenant_id = ")
                        .push_bind(tenant.to_owned())
                        .push(" AND origin = ")
                        .push_bind(TAG_FROM_CALL | TAG_FROM_TURN)
                        .push(" AND call_id");
                    DB::push_in(&mut qb, chunk);
                    qb.build().execute(&mut **tx).await?;
                }
            }
        }

        Ok(())
    }

    /// Appends the values of [`CALL_COLUMNS`] to the current row.
    fn call_values(rows: &mut Rows, c: &Call) -> Result<(), StoreError> {
        let attributes = to_json(&c.attributes)?;
        rows.int(c.source.code().into())
            .text(c.external_id.as_str())
            .text(c.task_id.as_str())
            .text(c.parent_task_id.as_str())
            .text(c.script_id.as_str())
            .text(c.callee.as_str())
            .text(c.callee_raw.as_str())
            .text(c.caller.as_str())
            .text(c.caller_raw.as_str())
            .opt_int(c.submit_time)
            .int(c.call_time)
            .opt_int(c.ring_time)
            .opt_int(c.answer_time)
            .opt_int(c.hangup_time)
            .int(c.ring_ms)
            .int(c.talk_ms)
            .int(c.total_ms)
            .int(c.billed_ms)
            .int(c.outcome.code().into())
            .text(c.vendor_status.as_str())
            .text(c.hangup_cause.as_str())
            .text(c.sip_code.as_str())
            .int(c.hangup_by.code().into())
            .opt_int(c.score.map(i64::from))
            .opt_text(c.intent_level.as_ref().map(|l| l.id.clone()))
            .int(c.rounds.into())
            .text(c.recording_url.as_str())
            .int(c.gender.code().into());
        let l = &c.location;
        for v in [
            &l.province,
            &l.city,
            &l.area_code,
            &l.carrier,
            &l.region,
            &l.post_code,
        ] {
            rows.text(v.as_str());
        }
        let b = &c.billing;
        for v in [
            &b.rate,
            &b.base_cost,
            &b.cost,
            &b.currency,
            &b.settle_rate,
            &b.settle_cost,
            &b.quote_exchange,
            &b.bill_period,
        ] {
            rows.text(v.as_str());
        }
        // Stored as `,a,b,` so that a filter matches `,a,` whole.
        let flags = if c.quality_flags.is_empty() {
            String::new()
        } else {
            format!(",{},", c.quality_flags.join(","))
        };
        // The level as sent with this call: a later rename changes the
        // catalog, not this call.
        let level = c
            .intent_level
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(StoreError::encode)?;
        rows.text(c.dtmf.as_str())
            .int(c.recall_count.into())
            .text(c.recall_of.as_str())
            .text(c.customer_name.as_str())
            .text(c.line_id.as_str())
            .text(attributes)
            .opt_int(c.update_time)
            .text(c.alt_id())
            .text(flags)
            .text(b.base_cost_currency.as_str())
            .text(b.settle_currency.as_str())
            .opt_text(level);
        Ok(())
    }

    /// Inserts a call's tag rows or hit-group rows. A row of the part a
    /// partial view kept meets the same id in the part it carries: the row
    /// is now of both, at the first of its positions.
    async fn insert_tag_rows(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        table: TagTable,
        tag_rows: &[TagRow<'_>],
    ) -> Result<(), StoreError> {
        let (name, id) = match table {
            TagTable::Tags => ("call_tags", "tag_id"),
            TagTable::Groups => ("call_tag_groups", "group_id"),
        };
        for chunk in tag_rows.chunks(DB::rows_per_insert(6)) {
            let mut qb = QueryBuilder::<DB>::new(format!(
                "INSERT INTO {name} (tenant_id, call_id, {id}, position, origin, snapshot)"
            ));
            let mut rows = Rows::default();
            for r in chunk {
                rows.row()
                    .text(tenant)
                    .text(r.call_id)
                    .text(r.id.as_str())
                    .int(r.position)
                    .int(r.origin)
                    .text(r.snapshot.clone());
            }
            DB::push_rows(&mut qb, rows)?;
            qb.push(format_args!(
                " ON CONFLICT (tenant_id, call_id, {id}) DO UPDATE SET \
                 origin = {name}.origin | excluded.origin, \
                 snapshot = excluded.snapshot, \
                 position = CASE WHEN excluded.position < {name}.position \
                 THEN excluded.position ELSE {name}.position END"
            ));
            qb.build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Writes the child rows of freshly written calls (tags, hit tag groups,
    /// turns) and fills the catalogs with the tags, groups, intent levels and
    /// tasks they name, in multi-row statements. Answers, for each call
    /// marked `true`, its tags and groups as a read would show them where
    /// known ([`shown_parts`]); `None` for the others.
    async fn write_children(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        calls: &[(&str, &Call, bool)],
    ) -> Result<Vec<Option<ShownParts>>, StoreError> {
        let mut shown = Vec::with_capacity(calls.len());
        let mut tag_rows: Vec<TagRow> = Vec::new();
        let mut group_rows: Vec<TagRow> = Vec::new();
        let mut turn_rows: Vec<(&str, &DialogueTurn)> = Vec::new();
        let mut catalog = Catalog::default();
        for &(call_id, call, show) in calls {
            let mut tags = TagRows::new(call_id);
            let mut groups = TagRows::new(call_id);
            // The call's own groups first, in the order the vendor named
            // them, then those only its tags name.
            for group in &call.tag_groups {
                groups.add(&group.id, TAG_FROM_CALL, 0, group)?;
                catalog.add_group(group);
            }
            for tag in &call.tags {
                tags.add(&tag.id, TAG_FROM_CALL, 0, tag)?;
                for group in &tag.groups {
                    groups.add(&group.id, TAG_FROM_CALL, 0, group)?;
                }
                catalog.add_tag(tag);
            }
            // A turn's tags are tags of its call too, after the call's own.
            for turn in &call.turns {
                turn_rows.push((call_id, turn));
                for tag in &turn.tags {
                    tags.add(&tag.id, TAG_FROM_TURN, TURN_TAG_POSITIONS, tag)?;
                    for group in &tag.groups {
                        groups.add(&group.id, TAG_FROM_TURN, TURN_TAG_POSITIONS, group)?;
                    }
                    catalog.add_tag(tag);
                }
            }
            shown.push(if show {
                shown_parts(&tags.rows, &groups.rows)?
            } else {
                None
            });
            tag_rows.extend(tags.rows);
            group_rows.extend(groups.rows);
            if let Some(level) = &call.intent_level {
                catalog.add_level(level);
            }
            if !call.task_id.is_empty() {
                catalog
                    .tasks
                    .entry(call.task_id.clone())
                    .or_insert_with(|| Task {
                        task_id: call.task_id.clone(),
                        parent_task_id: call.parent_task_id.clone(),
                        script_id: call.script_id.clone(),
                        source: Some(call.source),
                        ..Task::default()
                    });
            }
        }

        Self::insert_tag_rows(tx, tenant, TagTable::Tags, &tag_rows).await?;
        Self::insert_tag_rows(tx, tenant, TagTable::Groups, &group_rows).await?;
        for chunk in turn_rows.chunks(DB::rows_per_insert(18)) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO dialogue_turns (tenant_id, call_id, sequence, kind, customer_text, \
                 robot_text, node_id, node_name, keyword, score, speak_ms, play_ms, asr_latency_ms, \
                 tags, turn_time, after_transfer, turn_id, attributes)",
            );
            let mut rows = Rows::default();
            for (call_id, turn) in chunk {
                let tags = serde_json::to_string(&turn.tags).map_err(StoreError::encode)?;
                rows.row()
                    .text(tenant)
                    .text(*call_id)
                    .int(i64::from(turn.sequence))
                    .int(i64::from(turn.kind.code()))
                    .text(turn.customer_text.as_str())
                    .text(turn.robot_text.as_str())
                    .text(turn.node_id.as_str())
                    .text(turn.node_name.as_str())
                    .text(turn.keyword.as_str())
                    .int(i64::from(turn.score))
                    .int(turn.speak_ms)
                    .int(turn.play_ms)
                    .int(turn.asr_latency_ms)
                    .text(tags)
                    .opt_int(turn.time)
                    .bool(turn.after_transfer)
                    .text(turn.turn_id.as_str())
                    .text(to_json(&turn.attributes)?);
            }
            DB::push_rows(&mut qb, rows)?;
            qb.build().execute(&mut **tx).await?;
        }
        Self::write_catalog(catalog, tx, tenant).await?;
        Ok(shown)
    }
}
