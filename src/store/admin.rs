//! Removing data: DeleteCalls, ErasePhone with its tombstones, the retention
//! purge, the quarantine's caps, and the registry of tenants the purge walks.

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Transaction, Type,
};

use super::dialect::ROWS_PER_STATEMENT;
use super::filter_sql::push_where;
use super::{AdminStore, Dialect, SqlStore, StoreError};
use crate::domain::erasure::{ErasureCounts, PhoneNotations, QuarantineLimits, QuarantineTrim};
use crate::domain::event::EventKind;
use crate::domain::{CallFilter, Source, UnixMs};

/// Calls deleted per statement by DeleteCalls and ErasePhone: a cap on one
/// statement's work and on the calls (and their events) held in memory.
const DELETE_BATCH: usize = 1000;

/// The tables that hold a call's child rows, keyed by `(tenant_id, call_id)`.
const CHILD_TABLES: &[&str] = &["call_tags", "call_tag_groups", "dialogue_turns"];

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
    /// Records the tenant in the registry the retention purge walks, inside
    /// the caller's write transaction. Writes nothing when it is known.
    pub(super) async fn register_tenant(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
    ) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new("INSERT INTO tenants (tenant_id) VALUES (");
        qb.push_bind(tenant.to_owned())
            .push(") ON CONFLICT (tenant_id) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
        Ok(())
    }

    /// Takes the tenant's erasure lock (see [`Dialect::ERASURE_LOCK`]) for
    /// the rest of the transaction: shared to write calls, exclusive to erase.
    pub(super) async fn erasure_lock(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        exclusive: bool,
    ) -> Result<(), StoreError> {
        if let Some((shared, sole)) = DB::ERASURE_LOCK {
            let mut qb = QueryBuilder::<DB>::new(if exclusive { sole } else { shared });
            qb.push_bind(tenant.to_owned()).push("))");
            qb.build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Deletes calls by id with their child rows, `DELETE_BATCH` at a time,
    /// and logs a DELETED event per call with the version it removed (without
    /// the number when `erasure`, whose earlier events lose it too).
    async fn delete_calls_by_id(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        ids: &[String],
        erasure: bool,
    ) -> Result<(), StoreError> {
        let mut events = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(DELETE_BATCH) {
            // Read with their rows locked: a concurrent writer of the same
            // call commits first, and its version and child rows are what
            // the event and the next statements see.
            let removed = Self::load_calls(tx, tenant, chunk, true).await?;
            for table in ["calls"].iter().chain(CHILD_TABLES) {
                Self::delete_by_ids(tx, table, "call_id", tenant, chunk, DELETE_BATCH).await?;
            }
            events.extend(removed.into_iter().map(|call| {
                let call = if erasure { call.erased() } else { call };
                (EventKind::Deleted, call)
            }));
        }
        if erasure {
            Self::erase_events(tx, tenant, ids).await?;
        }
        Self::append_events(tx, tenant, events).await
    }

    /// The calls whose callee or caller is `phone`: `(call_id, source, external_id)`.
    async fn calls_of_phone(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        phone: &str,
    ) -> Result<Vec<(String, i64, String)>, StoreError> {
        // Two index look-ups (callee, caller), as the `phone` filter does.
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT call_id, source, external_id FROM calls WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned())
            .push(" AND callee = ")
            .push_bind(phone.to_owned())
            .push(format_args!(
                " UNION SELECT call_id, source, external_id FROM {} WHERE tenant_id = ",
                DB::CALLS_BY_CALLER
            ))
            .push_bind(tenant.to_owned())
            .push(" AND caller = ")
            .push_bind(phone.to_owned());
        let mut calls = Vec::new();
        for row in qb.build().fetch_all(&mut **tx).await? {
            calls.push((
                row.try_get("call_id")?,
                row.try_get("source")?,
                row.try_get("external_id")?,
            ));
        }
        Ok(calls)
    }

    /// The quarantined records whose payload holds the number: the database
    /// pre-filters on the shortest notation (`LIKE`, on bytes), then each
    /// candidate is checked for a whole notation (see [`PhoneNotations`]).
    async fn rejected_of_phone(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        phone: &PhoneNotations,
    ) -> Result<Vec<String>, StoreError> {
        let shortest = phone.shortest();
        if shortest.is_empty() {
            return Ok(Vec::new());
        }
        // Digits only: no LIKE wildcard can be in the pattern.
        let pattern = format!("%{shortest}%").into_bytes();
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT record_id, payload FROM rejected_records WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned())
            .push(" AND payload LIKE ")
            .push_bind(pattern);
        let mut ids = Vec::new();
        for row in qb.build().fetch_all(&mut **tx).await? {
            let payload: Vec<u8> = row.try_get("payload")?;
            if phone.found_in(&payload) {
                ids.push(row.try_get("record_id")?);
            }
        }
        Ok(ids)
    }

    /// Removes the number everywhere, or counts it when `validate_only`.
    async fn erase_in(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        phone: &PhoneNotations,
        validate_only: bool,
        now: UnixMs,
    ) -> Result<ErasureCounts, StoreError> {
        if !validate_only {
            // Waits for the writers of calls in flight, and holds new ones
            // back until the tombstones are committed.
            Self::erasure_lock(tx, tenant, true).await?;
        }
        let calls = Self::calls_of_phone(tx, tenant, &phone.phone).await?;
        let rejected = Self::rejected_of_phone(tx, tenant, phone).await?;
        let task_numbers: i64 = if validate_only {
            let mut qb =
                QueryBuilder::<DB>::new("SELECT COUNT(*) FROM task_numbers WHERE tenant_id = ");
            qb.push_bind(tenant.to_owned())
                .push(" AND phone = ")
                .push_bind(phone.phone.clone());
            qb.build_query_scalar().fetch_one(&mut **tx).await?
        } else {
            let mut qb = QueryBuilder::<DB>::new("DELETE FROM task_numbers WHERE tenant_id = ");
            qb.push_bind(tenant.to_owned())
                .push(" AND phone = ")
                .push_bind(phone.phone.clone())
                .push(" RETURNING task_id");
            qb.build().fetch_all(&mut **tx).await?.len() as i64
        };
        let counts = ErasureCounts {
            calls: calls.len() as i64,
            task_numbers,
            rejected_records: rejected.len() as i64,
        };
        if validate_only {
            return Ok(counts);
        }

        // The tombstones: the vendor's key and the time, never the number.
        for chunk in calls.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO erased_calls (tenant_id, source, external_id, erase_time) ",
            );
            qb.push_values(chunk, |mut row, (_, source, external_id)| {
                row.push_bind(tenant.to_owned())
                    .push_bind(*source)
                    .push_bind(external_id.clone())
                    .push_bind(now);
            });
            qb.push(" ON CONFLICT (tenant_id, source, external_id) DO NOTHING");
            qb.build().execute(&mut **tx).await?;
        }
        let ids: Vec<String> = calls.into_iter().map(|(id, _, _)| id).collect();
        Self::delete_calls_by_id(tx, tenant, &ids, true).await?;
        Self::erase_phone_events(tx, tenant, phone).await?;
        Self::delete_by_ids(
            tx,
            "rejected_records",
            "record_id",
            tenant,
            &rejected,
            DELETE_BATCH,
        )
        .await?;
        Ok(counts)
    }
}

#[async_trait]
impl<DB> AdminStore for SqlStore<DB>
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
    async fn delete_calls(
        &self,
        tenant: &str,
        filter: &CallFilter,
        validate_only: bool,
    ) -> Result<i64, StoreError> {
        if validate_only {
            let mut qb = QueryBuilder::<DB>::new("SELECT COUNT(*) FROM calls c");
            push_where(&mut qb, tenant, filter);
            let mut tx = self.read_primary(tenant).await?;
            let count: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
            tx.commit().await?;
            return Ok(count);
        }
        // One transaction, DELETE_BATCH calls a round: the filter is evaluated
        // again each round over the calls that are left.
        let mut tx = self.begin(tenant).await?;
        let mut deleted = 0i64;
        loop {
            let mut qb = QueryBuilder::<DB>::new("SELECT c.call_id FROM calls c");
            push_where(&mut qb, tenant, filter);
            qb.push(" LIMIT ").push_bind(DELETE_BATCH as i64);
            let ids: Vec<String> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
            Self::delete_calls_by_id(&mut tx, tenant, &ids, false).await?;
            deleted += ids.len() as i64;
            if ids.len() < DELETE_BATCH {
                break;
            }
        }
        tx.commit().await?;
        if deleted > 0 {
            self.events_committed();
            self.after_write(deleted as u64).await;
        }
        Ok(deleted)
    }

    async fn erase_phone(
        &self,
        tenant: &str,
        phone: &PhoneNotations,
        validate_only: bool,
        now: UnixMs,
    ) -> Result<ErasureCounts, StoreError> {
        let mut tx = if validate_only {
            self.read_primary(tenant).await?
        } else {
            self.begin(tenant).await?
        };
        let counts = Self::erase_in(&mut tx, tenant, phone, validate_only, now).await?;
        tx.commit().await?;
        if !validate_only && counts.calls > 0 {
            self.events_committed();
            self.after_write(counts.calls as u64).await;
        }
        Ok(counts)
    }

    /// Read without a declared tenant: `tenants` has no row-level security,
    /// it holds tenant ids only.
    async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT tenant_id FROM tenants ORDER BY tenant_id");
        let rows = Self::fetch_all_untenanted(&self.primary_reader, &mut qb).await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn purge_calls_before(
        &self,
        tenant: &str,
        cutoff: UnixMs,
        batch: usize,
    ) -> Result<u64, StoreError> {
        let batch = batch.max(1);
        let mut purged = 0u64;
        loop {
            // A short transaction per batch: ingest waits at most one batch.
            let mut tx = self.begin(tenant).await?;
            let mut qb = QueryBuilder::<DB>::new("SELECT call_id FROM calls WHERE tenant_id = ");
            qb.push_bind(tenant.to_owned())
                .push(" AND call_time < ")
                .push_bind(cutoff)
                .push(" ORDER BY call_time LIMIT ")
                .push_bind(batch as i64);
            let ids: Vec<String> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
            Self::delete_calls_by_id(&mut tx, tenant, &ids, false).await?;
            tx.commit().await?;
            self.events_committed();
            purged += ids.len() as u64;
            if ids.len() < batch {
                break;
            }
            tokio::task::yield_now().await;
        }
        if purged > 0 {
            self.after_write(purged).await;
        }
        Ok(purged)
    }

    async fn purge_rejected_before(
        &self,
        tenant: &str,
        cutoff: UnixMs,
        batch: usize,
    ) -> Result<u64, StoreError> {
        let batch = batch.max(1);
        let mut purged = 0u64;
        loop {
            let mut tx = self.begin(tenant).await?;
            let mut qb = QueryBuilder::<DB>::new("DELETE FROM rejected_records WHERE tenant_id = ");
            qb.push_bind(tenant.to_owned())
                .push(
                    " AND record_id IN (SELECT record_id FROM rejected_records WHERE tenant_id = ",
                )
                .push_bind(tenant.to_owned())
                .push(" AND receive_time < ")
                .push_bind(cutoff)
                .push(" ORDER BY receive_time LIMIT ")
                .push_bind(batch as i64)
                .push(") RETURNING record_id");
            let gone = qb.build().fetch_all(&mut *tx).await?.len();
            tx.commit().await?;
            purged += gone as u64;
            if gone < batch {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(purged)
    }

    async fn trim_quarantine(
        &self,
        tenant: &str,
        source: Option<Source>,
        limits: QuarantineLimits,
        keep: &[String],
    ) -> Result<QuarantineTrim, StoreError> {
        let scope = |qb: &mut QueryBuilder<DB>| {
            qb.push_bind(tenant.to_owned());
            match source {
                Some(s) => qb.push(" AND source = ").push_bind(i64::from(s.code())),
                None => qb.push(" AND source IS NULL"),
            };
        };
        let mut trim = QuarantineTrim {
            source,
            ..QuarantineTrim::default()
        };
        let mut tx = self.begin(tenant).await?;
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(LENGTH(payload)), 0) AS BIGINT) AS bytes \
             FROM rejected_records WHERE tenant_id = ",
        );
        scope(&mut qb);
        let row = qb.build().fetch_one(&mut *tx).await?;
        let mut rows: i64 = row.try_get("n")?;
        let mut bytes: i64 = row.try_get("bytes")?;
        let over = |rows: i64, bytes: i64| {
            rows as u64 > limits.max_rows || bytes as u64 > limits.max_bytes
        };
        if !over(rows, bytes) {
            tx.commit().await?;
            return Ok(trim);
        }
        // Oldest first; the records just kept are never the ones dropped.
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT record_id, CAST(LENGTH(payload) AS BIGINT) AS size \
             FROM rejected_records WHERE tenant_id = ",
        );
        scope(&mut qb);
        qb.push(" ORDER BY receive_time, record_id");
        let mut drop: Vec<String> = Vec::new();
        for row in qb.build().fetch_all(&mut *tx).await? {
            if !over(rows, bytes) {
                break;
            }
            let id: String = row.try_get("record_id")?;
            if keep.contains(&id) {
                continue;
            }
            let size: i64 = row.try_get("size")?;
            rows -= 1;
            bytes -= size;
            trim.rows += 1;
            trim.bytes += size as u64;
            drop.push(id);
        }
        Self::delete_by_ids(
            &mut tx,
            "rejected_records",
            "record_id",
            tenant,
            &drop,
            DELETE_BATCH,
        )
        .await?;
        tx.commit().await?;
        Ok(trim)
    }
}
