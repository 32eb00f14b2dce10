//! Sync sources, their lease and their checkpoints (SyncService). A page of
//! pulled records is stored with the checkpoint that moves past it, in one
//! transaction, and only while the run still holds the source's lease.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Transaction, Type,
};

use super::dialect::{code, json};
use super::{Dialect, IngestBatch, IngestResults, SqlStore, StoreError, SyncStore};
use crate::domain::sync::{
    StoredSyncSource, SyncCheckpoint, SyncRunReport, SyncSourceSpec, SyncState,
};
use crate::domain::{Source, UnixMs};

/// Ids looked up per statement.
const LOOKUP_CHUNK: usize = 500;

const SOURCE_COLUMNS: &str = "name, source, base_url, task_ids, headers, interval_ms, \
     overlap_ms, start_time, create_time, last_run_time, last_success_time, last_error, \
     calls_synced, newest_update_time, pages, errors, retries, vendor_requests";

const CHECKPOINT_COLUMNS: &str = "name, task_id, window_start, window_end, next_page, clean, \
     synced_to, vendor_total, held";

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
    /// Extends the lease inside the caller's transaction; `false` when this
    /// owner no longer holds it (it expired and another replica took it).
    async fn hold_lease(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        name: &str,
        owner: &str,
        until: UnixMs,
    ) -> Result<bool, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("UPDATE sync_sources SET lease_expires = ");
        qb.push_bind(until)
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND name = ")
            .push_bind(name.to_owned())
            .push(" AND lease_owner = ")
            .push_bind(owner.to_owned())
            .push(" RETURNING name");
        Ok(!qb.build().fetch_all(&mut **tx).await?.is_empty())
    }

    async fn write_checkpoint(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        name: &str,
        cp: &SyncCheckpoint,
    ) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new(format!(
            "INSERT INTO sync_checkpoints (tenant_id, {CHECKPOINT_COLUMNS}) "
        ));
        qb.push_values([cp], |mut row, cp| {
            row.push_bind(tenant.to_owned())
                .push_bind(name.to_owned())
                .push_bind(cp.task_id.clone())
                .push_bind(cp.window_start)
                .push_bind(cp.window_end)
                .push_bind(cp.next_page)
                .push_bind(cp.clean)
                .push_bind(cp.synced_to)
                .push_bind(cp.vendor_total)
                .push_bind(cp.held);
        });
        qb.push(
            " ON CONFLICT (tenant_id, name, task_id) DO UPDATE SET \
             window_start = excluded.window_start, window_end = excluded.window_end, \
             next_page = excluded.next_page, clean = excluded.clean, \
             synced_to = excluded.synced_to, vendor_total = excluded.vendor_total, \
             held = excluded.held",
        );
        qb.build().execute(&mut **tx).await?;
        Ok(())
    }

    fn source_from_row(row: &DB::Row) -> Result<StoredSyncSource, StoreError> {
        let task_ids: Vec<String> = json(row, "task_ids")?;
        Ok(StoredSyncSource {
            spec: SyncSourceSpec {
                name: row.try_get("name")?,
                source: code(row, "source", Source::from_code)?,
                base_url: row.try_get("base_url")?,
                task_ids,
                headers: json(row, "headers")?,
                interval_ms: row.try_get("interval_ms")?,
                overlap_ms: row.try_get("overlap_ms")?,
                start_time: row.try_get("start_time")?,
            },
            create_time: row.try_get("create_time")?,
            state: SyncState {
                last_run_time: row.try_get("last_run_time")?,
                last_success_time: row.try_get("last_success_time")?,
                last_error: row.try_get("last_error")?,
                calls_synced: row.try_get("calls_synced")?,
                newest_update_time: row.try_get("newest_update_time")?,
                pages: row.try_get("pages")?,
                errors: row.try_get("errors")?,
                retries: row.try_get("retries")?,
                vendor_requests: row.try_get("vendor_requests")?,
            },
            checkpoints: Vec::new(),
        })
    }

    fn checkpoint_from_row(row: &DB::Row) -> Result<(String, SyncCheckpoint), StoreError> {
        Ok((
            row.try_get("name")?,
            SyncCheckpoint {
                task_id: row.try_get("task_id")?,
                window_start: row.try_get("window_start")?,
                window_end: row.try_get("window_end")?,
                next_page: row.try_get("next_page")?,
                clean: row.try_get("clean")?,
                synced_to: row.try_get("synced_to")?,
                vendor_total: row.try_get("vendor_total")?,
                held: row.try_get("held")?,
            },
        ))
    }

    /// The tenant's sources (one, with `name`), with their checkpoints.
    async fn read_sources(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Vec<StoredSyncSource>, StoreError> {
        let mut tx = self.read_primary(tenant).await?;
        let mut qb = QueryBuilder::<DB>::new(format!(
            "SELECT {SOURCE_COLUMNS} FROM sync_sources WHERE tenant_id = "
        ));
        qb.push_bind(tenant.to_owned());
        if let Some(name) = name {
            qb.push(" AND name = ").push_bind(name.to_owned());
        }
        qb.push(" ORDER BY name");
        let mut sources = Vec::new();
        for row in qb.build().fetch_all(&mut *tx).await? {
            sources.push(Self::source_from_row(&row)?);
        }
        let mut qb = QueryBuilder::<DB>::new(format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM sync_checkpoints WHERE tenant_id = "
        ));
        qb.push_bind(tenant.to_owned());
        if let Some(name) = name {
            qb.push(" AND name = ").push_bind(name.to_owned());
        }
        qb.push(" ORDER BY name, task_id");
        for row in qb.build().fetch_all(&mut *tx).await? {
            let (name, cp) = Self::checkpoint_from_row(&row)?;
            if let Some(source) = sources.iter_mut().find(|s| s.spec.name == name) {
                source.checkpoints.push(cp);
            }
        }
        tx.commit().await?;
        Ok(sources)
    }
}

#[async_trait]
impl<DB> SyncStore for SqlStore<DB>
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
    async fn create_sync_source(
        &self,
        tenant: &str,
        spec: &SyncSourceSpec,
        now: UnixMs,
    ) -> Result<bool, StoreError> {
        let task_ids = serde_json::to_string(&spec.task_ids).map_err(StoreError::encode)?;
        let headers = serde_json::to_string(&spec.headers).map_err(StoreError::encode)?;
        let mut tx = self.begin(tenant).await?;
        // The scheduler walks the registry of tenants.
        Self::register_tenant(&mut tx, tenant).await?;
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO sync_sources (tenant_id, name, source, base_url, task_ids, headers, \
             interval_ms, overlap_ms, start_time, create_time) ",
        );
        qb.push_values([spec], |mut row, s| {
            row.push_bind(tenant.to_owned())
                .push_bind(s.name.clone())
                .push_bind(i64::from(s.source.code()))
                .push_bind(s.base_url.clone())
                .push_bind(task_ids.clone())
                .push_bind(headers.clone())
                .push_bind(s.interval_ms)
                .push_bind(s.overlap_ms)
                .push_bind(s.start_time)
                .push_bind(now);
        });
        qb.push(" ON CONFLICT (tenant_id, name) DO NOTHING RETURNING name");
        let inserted = !qb.build().fetch_all(&mut *tx).await?.is_empty();
        tx.commit().await?;
        Ok(inserted)
    }

    async fn list_sync_sources(&self, tenant: &str) -> Result<Vec<StoredSyncSource>, StoreError> {
        self.read_sources(tenant, None).await
    }

    async fn get_sync_source(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<StoredSyncSource>, StoreError> {
        Ok(self.read_sources(tenant, Some(name)).await?.pop())
    }

    async fn delete_sync_source(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let mut deleted = false;
        for table in ["sync_checkpoints", "sync_sources"] {
            let mut qb = QueryBuilder::<DB>::new(format!("DELETE FROM {table} WHERE tenant_id = "));
            qb.push_bind(tenant.to_owned())
                .push(" AND name = ")
                .push_bind(name.to_owned())
                .push(" RETURNING name");
            deleted = !qb.build().fetch_all(&mut *tx).await?.is_empty();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn acquire_sync_lease(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        now: UnixMs,
        until: UnixMs,
    ) -> Result<bool, StoreError> {
        // One UPDATE decides: on PostgreSQL a second replica's UPDATE waits
        // for the first to commit, then re-reads the row and finds the lease
        // taken; SQLite has one writer at a time.
        let mut tx = self.begin(tenant).await?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE sync_sources SET lease_owner = ");
        qb.push_bind(owner.to_owned())
            .push(", lease_expires = ")
            .push_bind(until)
            .push(", last_run_time = ")
            .push_bind(now)
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND name = ")
            .push_bind(name.to_owned())
            // Not even its own owner's: two runs of one source in one process
            // (RunSync and the scheduler) would pull every page twice.
            .push(" AND (lease_owner IS NULL OR lease_expires IS NULL OR lease_expires < ")
            .push_bind(now)
            .push(") RETURNING name");
        let taken = !qb.build().fetch_all(&mut *tx).await?.is_empty();
        tx.commit().await?;
        Ok(taken)
    }

    async fn renew_sync_lease(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        until: UnixMs,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let held = Self::hold_lease(&mut tx, tenant, name, owner, until).await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn ingest_sync_page(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        lease_until: UnixMs,
        batch: &IngestBatch,
        checkpoint: &SyncCheckpoint,
        now: UnixMs,
    ) -> Result<Option<IngestResults>, StoreError> {
        let hashes = super::calls_write::batch_hashes(batch);
        let mut tx = self.begin(tenant).await?;
        // Fenced: a run whose lease passed to another replica writes nothing.
        if !Self::hold_lease(&mut tx, tenant, name, owner, lease_until).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        Self::register_tenant(&mut tx, tenant).await?;
        for record in &batch.rejected {
            Self::insert_rejected(&mut tx, tenant, record).await?;
        }
        let results = Self::ingest_in(&mut tx, tenant, batch, &hashes, now).await?;
        Self::write_checkpoint(&mut tx, tenant, name, checkpoint).await?;
        tx.commit().await?;
        self.events_committed();
        self.after_write(batch.rows()).await;
        Ok(Some(results))
    }

    async fn save_sync_checkpoint(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        lease_until: UnixMs,
        checkpoint: &SyncCheckpoint,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin(tenant).await?;
        if !Self::hold_lease(&mut tx, tenant, name, owner, lease_until).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        Self::write_checkpoint(&mut tx, tenant, name, checkpoint).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn stored_versions(
        &self,
        tenant: &str,
        source: Source,
        external_ids: &[String],
    ) -> Result<HashMap<String, Option<UnixMs>>, StoreError> {
        let mut found = HashMap::new();
        if external_ids.is_empty() {
            return Ok(found);
        }
        let mut tx = self.read_primary(tenant).await?;
        for chunk in external_ids.chunks(LOOKUP_CHUNK) {
            let mut qb = QueryBuilder::<DB>::new(
                "SELECT external_id, update_time FROM calls WHERE tenant_id = ",
            );
            qb.push_bind(tenant.to_owned())
                .push(" AND source = ")
                .push_bind(i64::from(source.code()))
                .push(" AND external_id");
            DB::push_in(&mut qb, chunk);
            for row in qb.build().fetch_all(&mut *tx).await? {
                found.insert(row.try_get("external_id")?, row.try_get("update_time")?);
            }
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn count_task_calls(
        &self,
        tenant: &str,
        source: Source,
        task_id: &str,
        start: UnixMs,
        end: UnixMs,
    ) -> Result<i64, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT COUNT(*) AS n FROM calls WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND source = ")
            .push_bind(i64::from(source.code()))
            .push(" AND task_id = ")
            .push_bind(task_id.to_owned())
            .push(" AND call_time >= ")
            .push_bind(start)
            .push(" AND call_time <= ")
            .push_bind(end);
        let rows = self.read_all_primary(tenant, &mut qb).await?;
        match rows.first() {
            Some(row) => Ok(row.try_get("n")?),
            None => Ok(0),
        }
    }

    async fn finish_sync_run(
        &self,
        tenant: &str,
        name: &str,
        owner: &str,
        report: &SyncRunReport,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin(tenant).await?;
        let mut qb =
            QueryBuilder::<DB>::new("UPDATE sync_sources SET calls_synced = calls_synced + ");
        qb.push_bind(report.inserted + report.updated)
            .push(", pages = pages + ")
            .push_bind(report.pages)
            .push(", errors = errors + ")
            .push_bind(report.errors)
            .push(", retries = retries + ")
            .push_bind(report.retries)
            .push(", vendor_requests = vendor_requests + ")
            .push_bind(report.vendor_requests)
            .push(", last_error = ")
            .push_bind(report.error.clone());
        if report.error.is_empty() {
            qb.push(", last_success_time = ").push_bind(report.end_time);
        }
        if let Some(newest) = report.newest_update_time {
            qb.push(", newest_update_time = CASE WHEN newest_update_time IS NULL OR newest_update_time < ")
                .push_bind(newest)
                .push(" THEN ")
                .push_bind(newest)
                .push(" ELSE newest_update_time END");
        }
        // The lease is let go only by its holder.
        qb.push(", lease_owner = CASE WHEN lease_owner = ")
            .push_bind(owner.to_owned())
            .push(" THEN NULL ELSE lease_owner END, lease_expires = CASE WHEN lease_owner = ")
            .push_bind(owner.to_owned())
            .push(" THEN NULL ELSE lease_expires END WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND name = ")
            .push_bind(name.to_owned());
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
