//! The event log (`call_events`, `event_heads`): appending the events of a
//! write inside its own transaction, reading them back in commit order, the
//! log's retention, and the in-process signal that new events committed.
//!
//! Ordering: each event-writing transaction takes its positions from the
//! tenant's row of `event_heads` as its last step before commit. The row lock
//! of that upsert holds the tenant's other event writers back until commit,
//! so positions commit in order and a reader that sees position n sees every
//! position below it (see `migrations/postgres/0007_events.sql`).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Transaction, Type,
};

use super::{Dialect, EventStore, Rows, SqlStore, StoreError};
use crate::domain::erasure::PhoneNotations;
use crate::domain::event::{CallEvent, EventKind, EventLogState};
use crate::domain::{Call, StoredCall, UnixMs};

/// What `call_events.call_json` holds: the call and its sync time (the call
/// id has its own column).
#[derive(Serialize, Deserialize)]
struct EventBody {
    sync_time: UnixMs,
    call: Call,
}

/// Erased calls whose events one statement reads (see `erase_events`).
const ERASED_CALLS_PER_READ: usize = 200;

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
    /// The calls with these ids as stored in the transaction (tags included,
    /// turns not), in no particular order. With `lock`, their rows are
    /// locked for the rest of the transaction where the backend can (a
    /// delete reads exactly the version it removes).
    pub(super) async fn load_calls(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        ids: &[String],
        lock: bool,
    ) -> Result<Vec<StoredCall>, StoreError> {
        let mut qb = Self::select_calls();
        qb.push(" WHERE c.tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND c.call_id");
        DB::push_in(&mut qb, ids);
        if lock {
            // One lock order for every writer (as `load_as_stored`), so a
            // delete and a batch that share calls wait rather than deadlock.
            qb.push(" ORDER BY c.call_id").push(DB::LOCK_CALL_ROWS);
        }
        let rows = qb.build().fetch_all(&mut **tx).await?;
        let mut calls = Self::rows_to_calls(&rows)?;
        Self::attach_tags(&mut **tx, tenant, &mut calls).await?;
        Ok(calls)
    }

    /// Appends events for calls just written in `tx`: each carries the call
    /// as committed (a vendor's partial view merged with what was kept).
    /// `known` holds the calls whose committed version the write already
    /// knows (`calls_write::known_version`); the others are read back in
    /// the transaction. Debug builds read every call back and check `known`
    /// against it, so the tests hold the two to one answer.
    pub(super) async fn append_written(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        changes: &[(String, EventKind)],
        mut known: HashMap<String, StoredCall>,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = changes
            .iter()
            .map(|(id, _)| id)
            .filter(|id| cfg!(debug_assertions) || !known.contains_key(*id))
            .cloned()
            .collect();
        let mut read: BTreeMap<String, StoredCall> = if ids.is_empty() {
            BTreeMap::new()
        } else {
            Self::load_calls(tx, tenant, &ids, false)
                .await?
                .into_iter()
                .map(|c| (c.call_id.clone(), c))
                .collect()
        };
        let mut events = Vec::with_capacity(changes.len());
        for (id, kind) in changes {
            let from_read = read.remove(id);
            let call = match known.remove(id) {
                Some(call) => {
                    if cfg!(debug_assertions) && from_read.as_ref() != Some(&call) {
                        return Err(StoreError::Corrupt(format!(
                            "written call {id}: known {call:?}, read back {from_read:?}"
                        )));
                    }
                    call
                }
                None => from_read
                    .ok_or_else(|| StoreError::Corrupt(format!("written call {id} not found")))?,
            };
            events.push((*kind, call));
        }
        Self::append_events(tx, tenant, events).await
    }

    /// Appends events at the tenant's next positions. Taking the positions
    /// locks the tenant's head row until the transaction ends: call this
    /// last, just before commit.
    pub(super) async fn append_events(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        events: Vec<(EventKind, StoredCall)>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let count = events.len() as i64;
        // Bodies first: the head row's lock, taken next, is held until commit.
        let events = events
            .into_iter()
            .map(|(kind, call)| {
                let body = EventBody {
                    sync_time: call.sync_time,
                    call: call.call,
                };
                let json = serde_json::to_string(&body).map_err(StoreError::encode)?;
                Ok((kind, call.call_id, json))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO event_heads (tenant_id, last_position, purged_through) VALUES (",
        );
        qb.push_bind(tenant.to_owned())
            .push(", ")
            .push_bind(count)
            .push(
                ", 0) ON CONFLICT (tenant_id) DO UPDATE \
                 SET last_position = event_heads.last_position + excluded.last_position \
                 RETURNING last_position",
            );
        let last: i64 = qb.build_query_scalar().fetch_one(&mut **tx).await?;
        // Taken after the lock, so event times follow positions.
        let now = crate::domain::now_ms();
        let first = last - count + 1;
        let per_statement = DB::rows_per_insert(6);
        let mut events = events.into_iter().enumerate().peekable();
        while events.peek().is_some() {
            let mut rows = Rows::default();
            for (n, (kind, call_id, json)) in events.by_ref().take(per_statement) {
                rows.row()
                    .text(tenant)
                    .int(first + n as i64)
                    .int(i64::from(kind.code()))
                    .text(call_id)
                    .int(now)
                    .text(json);
            }
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO call_events (tenant_id, position, event_type, call_id, event_time, call_json)",
            );
            DB::push_rows(&mut qb, rows)?;
            qb.build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Rewrites the logged events of these calls without the number
    /// (ErasePhone): the positions stay, so no watcher sees a gap.
    pub(super) async fn erase_events(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        // A few calls at a time: a number's calls may carry long histories,
        // and every event read is held in memory until rewritten.
        for chunk in ids.chunks(ERASED_CALLS_PER_READ) {
            let mut qb = QueryBuilder::<DB>::new(
                "SELECT position, call_id, event_type, event_time, call_json FROM call_events \
                 WHERE tenant_id = ",
            );
            qb.push_bind(tenant.to_owned()).push(" AND call_id");
            DB::push_in(&mut qb, chunk);
            for row in qb.build().fetch_all(&mut **tx).await? {
                let event = Self::decode_event(tenant, &row)?;
                Self::rewrite_event(tx, tenant, event.position, &event.call.erased()).await?;
            }
        }
        Ok(())
    }

    /// Rewrites, without the number, every logged event whose call still
    /// holds it in any notation: the events of calls deleted before the
    /// erasure too. The database pre-filters on the shortest notation.
    pub(super) async fn erase_phone_events(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        phone: &PhoneNotations,
    ) -> Result<(), StoreError> {
        let shortest = phone.shortest();
        if shortest.is_empty() {
            return Ok(());
        }
        // Digits only: no LIKE wildcard can be in the pattern.
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT position, call_id, event_type, event_time, call_json FROM call_events \
             WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned())
            .push(" AND call_json LIKE ")
            .push_bind(format!("%{shortest}%"));
        for row in qb.build().fetch_all(&mut **tx).await? {
            let json: String = row.try_get("call_json")?;
            if phone.found_in(json.as_bytes()) {
                let event = Self::decode_event(tenant, &row)?;
                Self::rewrite_event(tx, tenant, event.position, &event.call.erased()).await?;
            }
        }
        Ok(())
    }

    async fn rewrite_event(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        position: i64,
        call: &StoredCall,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(&EventBody {
            sync_time: call.sync_time,
            call: call.call.clone(),
        })
        .map_err(StoreError::encode)?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE call_events SET call_json = ");
        qb.push_bind(json)
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND position = ")
            .push_bind(position);
        qb.build().execute(&mut **tx).await?;
        Ok(())
    }

    fn decode_event(tenant: &str, row: &DB::Row) -> Result<CallEvent, StoreError> {
        let kind: i64 = row.try_get("event_type")?;
        let kind = i32::try_from(kind)
            .ok()
            .and_then(EventKind::from_code)
            .ok_or_else(|| StoreError::Corrupt(format!("event_type = {kind}")))?;
        let text: String = row.try_get("call_json")?;
        let body: EventBody = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("call_events.call_json: {e}")))?;
        Ok(CallEvent {
            tenant: tenant.to_owned(),
            position: row.try_get("position")?,
            kind,
            event_time: row.try_get("event_time")?,
            call: StoredCall {
                call_id: row.try_get("call_id")?,
                sync_time: body.sync_time,
                call: body.call,
            },
        })
    }

    /// Tells in-process readers that events committed.
    pub(super) fn events_committed(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[async_trait]
impl<DB> EventStore for SqlStore<DB>
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
    async fn events_after(
        &self,
        tenant: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<CallEvent>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT position, event_type, call_id, event_time, call_json FROM call_events \
             WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned())
            .push(" AND position > ")
            .push_bind(after)
            .push(" ORDER BY position LIMIT ")
            .push_bind(i64::from(limit.max(1)));
        let rows = self.read_all(tenant, &mut qb).await?;
        rows.iter()
            .map(|row| Self::decode_event(tenant, row))
            .collect()
    }

    async fn event_log(&self, tenant: &str) -> Result<EventLogState, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT last_position, purged_through FROM event_heads WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned());
        let rows = self.read_all(tenant, &mut qb).await?;
        match rows.first() {
            None => Ok(EventLogState::default()),
            Some(row) => Ok(EventLogState {
                head: row.try_get("last_position")?,
                purged_through: row.try_get("purged_through")?,
            }),
        }
    }

    /// Read without a declared tenant: `event_heads` holds tenant ids and
    /// counters only and has no row-level security (like `tenants`).
    async fn event_logs(&self) -> Result<Vec<(String, EventLogState)>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT tenant_id, last_position, purged_through FROM event_heads ORDER BY tenant_id",
        );
        let rows = Self::fetch_all_untenanted(&self.reader, &mut qb).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("tenant_id")?,
                    EventLogState {
                        head: row.try_get("last_position")?,
                        purged_through: row.try_get("purged_through")?,
                    },
                ))
            })
            .collect()
    }

    async fn events_after_all(
        &self,
        after: &BTreeMap<String, i64>,
        limit_per_tenant: u32,
    ) -> Result<Vec<CallEvent>, StoreError> {
        let mut events = Vec::new();
        for (tenant, log) in self.event_logs().await? {
            let from = after.get(&tenant).copied().unwrap_or(0);
            if log.head > from {
                events.extend(self.events_after(&tenant, from, limit_per_tenant).await?);
            }
        }
        Ok(events)
    }

    async fn purge_events_before(
        &self,
        tenant: &str,
        cutoff: UnixMs,
        batch: usize,
    ) -> Result<u64, StoreError> {
        let batch = batch.max(1) as i64;
        // The last position written before the cutoff: everything up to it
        // goes. Positions have no holes, so each batch is a key range.
        let mut qb =
            QueryBuilder::<DB>::new("SELECT MAX(position) FROM call_events WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND event_time < ")
            .push_bind(cutoff);
        let rows = self.read_all_primary(tenant, &mut qb).await?;
        let Some(through) = rows
            .first()
            .map(|row| row.try_get::<Option<i64>, _>(0usize))
            .transpose()?
            .flatten()
        else {
            return Ok(0);
        };
        let mut purged = 0u64;
        loop {
            // A short transaction per batch: writers wait at most one batch.
            let mut tx = self.begin(tenant).await?;
            let mut qb = QueryBuilder::<DB>::new(
                "SELECT purged_through FROM event_heads WHERE tenant_id = ",
            );
            qb.push_bind(tenant.to_owned());
            let done: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
            if done >= through {
                tx.commit().await?;
                break;
            }
            let upto = through.min(done + batch);
            let mut qb = QueryBuilder::<DB>::new("DELETE FROM call_events WHERE tenant_id = ");
            qb.push_bind(tenant.to_owned())
                .push(" AND position <= ")
                .push_bind(upto)
                .push(" RETURNING position");
            let gone = qb.build().fetch_all(&mut *tx).await?.len() as u64;
            let mut qb = QueryBuilder::<DB>::new("UPDATE event_heads SET purged_through = ");
            qb.push_bind(upto)
                .push(" WHERE tenant_id = ")
                .push_bind(tenant.to_owned());
            qb.build().execute(&mut *tx).await?;
            tx.commit().await?;
            purged += gone;
            tokio::task::yield_now().await;
        }
        Ok(purged)
    }

    fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }
}
