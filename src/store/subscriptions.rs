//! Webhook subscriptions, their deliveries, and the positions of the
//! message-bus sinks, with the leases that let replicas share the work.

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Transaction, Type,
};

use super::dialect::{code, json};
use super::{Dialect, SqlStore, StoreError, SubscriptionStore};
use crate::domain::UnixMs;
use crate::domain::subscription::{
    Delivery, DeliveryState, EventKind, StoredFilter, Subscription, SubscriptionState,
};

/// Deliveries kept per subscription (ListDeliveries shows at most 1000).
const KEPT_DELIVERIES: i64 = 1000;

const SUBSCRIPTION_COLUMNS: &str = "subscription_id, url, filter, event_types, secret, \
     create_time, state, last_error, position";

fn subscription_of<R>(row: &R) -> Result<Subscription, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'v> i64: Decode<'v, R::Database> + Type<R::Database>,
    for<'v> String: Decode<'v, R::Database> + Type<R::Database>,
{
    let filter: StoredFilter = json(row, "filter")?;
    let kinds: Vec<i32> = json(row, "event_types")?;
    Ok(Subscription {
        id: row.try_get("subscription_id")?,
        url: row.try_get("url")?,
        filter: filter
            .into_filter()
            .map_err(|e| StoreError::Corrupt(format!("filter: {e}")))?,
        kinds: kinds
            .into_iter()
            .map(|c| {
                EventKind::from_code(c)
                    .ok_or_else(|| StoreError::Corrupt(format!("event_types: {c}")))
            })
            .collect::<Result<_, _>>()?,
        secret: row.try_get("secret")?,
        create_time: row.try_get("create_time")?,
        state: code(row, "state", SubscriptionState::from_code)?,
        last_error: row.try_get("last_error")?,
        position: row.try_get("position")?,
    })
}

fn delivery_of<R>(row: &R) -> Result<Delivery, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'v> i64: Decode<'v, R::Database> + Type<R::Database>,
    for<'v> String: Decode<'v, R::Database> + Type<R::Database>,
{
    let int = |column: &str| -> Result<i32, StoreError> {
        let value: i64 = row.try_get(column)?;
        i32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value}")))
    };
    Ok(Delivery {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        kind: code(row, "event_type", EventKind::from_code)?,
        call_id: row.try_get("call_id")?,
        state: code(row, "state", DeliveryState::from_code)?,
        attempts: int("attempts")?,
        last_status: int("last_status")?,
        last_error: row.try_get("last_error")?,
        first_attempt_time: row.try_get("first_attempt_time")?,
        last_attempt_time: row.try_get("last_attempt_time")?,
        next_retry_time: row.try_get("next_retry_time")?,
    })
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
    /// Sets a claimed subscription's position, state and lease, fenced by
    /// `owner`: `false` (and nothing written) when the lease was lost.
    async fn fenced_update(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        id: &str,
        owner: &str,
        update: &SubscriptionUpdate<'_>,
    ) -> Result<bool, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("UPDATE subscriptions SET lease_until = ");
        qb.push_bind(update.lease_until);
        if let Some(position) = update.position {
            qb.push(", position = ").push_bind(position);
        }
        if let Some(state) = update.state {
            qb.push(", state = ").push_bind(i64::from(state.code()));
        }
        if let Some(error) = update.last_error {
            qb.push(", last_error = ").push_bind(error.to_owned());
        }
        if update.release {
            qb.push(", lease_owner = NULL");
        }
        qb.push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND subscription_id = ")
            .push_bind(id.to_owned())
            .push(" AND lease_owner = ")
            .push_bind(owner.to_owned())
            .push(" RETURNING subscription_id");
        Ok(qb.build().fetch_optional(&mut **tx).await?.is_some())
    }
}

/// What a worker changes on a subscription it holds.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionUpdate<'a> {
    /// The new position: every event up to it is handled.
    pub position: Option<i64>,
    pub state: Option<SubscriptionState>,
    /// Why the last attempt failed; cleared by a success.
    pub last_error: Option<&'a str>,
    /// Until when the row stays claimed (or, released, not claimable).
    pub lease_until: UnixMs,
    /// Gives the lease up: any worker may claim the row after `lease_until`.
    pub release: bool,
}

#[async_trait]
impl<DB> SubscriptionStore for SqlStore<DB>
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
    async fn insert_subscription(
        &self,
        tenant: &str,
        sub: &Subscription,
        max_per_tenant: usize,
    ) -> Result<bool, StoreError> {
        let filter =
            serde_json::to_string(&StoredFilter::from(&sub.filter)).map_err(StoreError::encode)?;
        let kinds: Vec<i32> = sub.kinds.iter().map(|k| k.code()).collect();
        let kinds = serde_json::to_string(&kinds).map_err(StoreError::encode)?;
        let mut tx = self.begin(tenant).await?;
        let mut count =
            QueryBuilder::<DB>::new("SELECT COUNT(*) AS n FROM subscriptions WHERE tenant_id = ");
        count.push_bind(tenant.to_owned());
        let n: i64 = count.build().fetch_one(&mut *tx).await?.try_get("n")?;
        if usize::try_from(n).unwrap_or(usize::MAX) >= max_per_tenant {
            return Ok(false);
        }
        // The workers find tenants in the registry the retention purge walks.
        Self::register_tenant(&mut tx, tenant).await?;
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO subscriptions (tenant_id, subscription_id, url, filter, event_types, \
             secret, create_time, state, last_error, position, lease_until) ",
        );
        qb.push_values([sub], |mut row, s| {
            row.push_bind(tenant.to_owned())
                .push_bind(s.id.clone())
                .push_bind(s.url.clone())
                .push_bind(filter.clone())
                .push_bind(kinds.clone())
                .push_bind(s.secret.clone())
                .push_bind(s.create_time)
                .push_bind(i64::from(s.state.code()))
                .push_bind(s.last_error.clone())
                .push_bind(s.position)
                .push_bind(0i64);
        });
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_subscriptions(&self, tenant: &str) -> Result<Vec<Subscription>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant_id = "
        ));
        qb.push_bind(tenant.to_owned())
            .push(" ORDER BY create_time, subscription_id");
        self.read_all_primary(tenant, &mut qb)
            .await?
            .iter()
            .map(subscription_of)
            .collect()
    }

    async fn get_subscription(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant_id = "
        ));
        qb.push_bind(tenant.to_owned())
            .push(" AND subscription_id = ")
            .push_bind(id.to_owned());
        self.read_all_primary(tenant, &mut qb)
            .await?
            .first()
            .map(subscription_of)
            .transpose()
    }

    async fn delete_subscription(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM deliveries WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND subscription_id = ")
            .push_bind(id.to_owned());
        qb.build().execute(&mut *tx).await?;
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM subscriptions WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND subscription_id = ")
            .push_bind(id.to_owned())
            .push(" RETURNING subscription_id");
        let deleted = qb.build().fetch_optional(&mut *tx).await?.is_some();
        tx.commit().await?;
        Ok(deleted)
    }

    async fn list_deliveries(
        &self,
        tenant: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT * FROM deliveries WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND subscription_id = ")
            .push_bind(id.to_owned())
            .push(" ORDER BY position DESC LIMIT ")
            .push_bind(i64::from(limit));
        self.read_all_primary(tenant, &mut qb)
            .await?
            .iter()
            .map(delivery_of)
            .collect()
    }

    async fn claim_subscriptions(
        &self,
        tenant: &str,
        owner: &str,
        now: UnixMs,
        lease_until: UnixMs,
        limit: u32,
    ) -> Result<Vec<Subscription>, StoreError> {
        // Most polls find nothing: ask a reader first, so an idle tenant
        // never takes the (SQLite) write lock.
        let mut probe =
            QueryBuilder::<DB>::new("SELECT subscription_id FROM subscriptions WHERE tenant_id = ");
        probe
            .push_bind(tenant.to_owned())
            .push(" AND lease_until <= ")
            .push_bind(now)
            .push(" LIMIT 1");
        if self.read_all_primary(tenant, &mut probe).await?.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin(tenant).await?;
        // PostgreSQL: rows another replica is claiming right now are skipped,
        // not waited for. SQLite: BEGIN IMMEDIATE already made this the only
        // writer.
        let mut qb =
            QueryBuilder::<DB>::new("SELECT subscription_id FROM subscriptions WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND lease_until <= ")
            .push_bind(now)
            .push(" ORDER BY subscription_id LIMIT ")
            .push_bind(i64::from(limit))
            .push(DB::SKIP_LOCKED);
        let ids: Vec<String> = qb
            .build()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("subscription_id"))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<DB>::new("UPDATE subscriptions SET lease_owner = ");
        qb.push_bind(owner.to_owned())
            .push(", lease_until = ")
            .push_bind(lease_until)
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND subscription_id");
        DB::push_in(&mut qb, &ids);
        qb.push(format!(" RETURNING {SUBSCRIPTION_COLUMNS}"));
        let claimed = qb
            .build()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(subscription_of)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn get_delivery(
        &self,
        tenant: &str,
        id: &str,
        position: i64,
    ) -> Result<Option<Delivery>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT * FROM deliveries WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND subscription_id = ")
            .push_bind(id.to_owned())
            .push(" AND position = ")
            .push_bind(position);
        self.read_all_primary(tenant, &mut qb)
            .await?
            .first()
            .map(delivery_of)
            .transpose()
    }

    async fn record_delivery(
        &self,
        tenant: &str,
        id: &str,
        owner: &str,
        delivery: &Delivery,
        update: SubscriptionUpdate<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin(tenant).await?;
        if !Self::fenced_update(&mut tx, tenant, id, owner, &update).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO deliveries (tenant_id, subscription_id, position, event_id, event_type, \
             call_id, state, attempts, last_status, last_error, first_attempt_time, \
             last_attempt_time, next_retry_time) ",
        );
        qb.push_values([delivery], |mut row, d| {
            row.push_bind(tenant.to_owned())
                .push_bind(id.to_owned())
                .push_bind(d.position)
                .push_bind(d.event_id.clone())
                .push_bind(i64::from(d.kind.code()))
                .push_bind(d.call_id.clone())
                .push_bind(i64::from(d.state.code()))
                .push_bind(i64::from(d.attempts))
                .push_bind(i64::from(d.last_status))
                .push_bind(d.last_error.clone())
                .push_bind(d.first_attempt_time)
                .push_bind(d.last_attempt_time)
                .push_bind(d.next_retry_time);
        });
        qb.push(
            " ON CONFLICT (tenant_id, subscription_id, position) DO UPDATE SET \
             state = excluded.state, attempts = excluded.attempts, \
             last_status = excluded.last_status, last_error = excluded.last_error, \
             last_attempt_time = excluded.last_attempt_time, \
             next_retry_time = excluded.next_retry_time",
        );
        qb.build().execute(&mut *tx).await?;
        if delivery.state != DeliveryState::Pending {
            // The history keeps the latest deliveries of each subscription.
            let mut qb = QueryBuilder::<DB>::new("DELETE FROM deliveries WHERE tenant_id = ");
            qb.push_bind(tenant.to_owned())
                .push(" AND subscription_id = ")
                .push_bind(id.to_owned())
                .push(" AND position < (SELECT position FROM deliveries WHERE tenant_id = ")
                .push_bind(tenant.to_owned())
                .push(" AND subscription_id = ")
                .push_bind(id.to_owned())
                .push(" ORDER BY position DESC LIMIT 1 OFFSET ")
                .push_bind(KEPT_DELIVERIES)
                .push(")");
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn update_subscription(
        &self,
        tenant: &str,
        id: &str,
        owner: &str,
        update: SubscriptionUpdate<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let held = Self::fenced_update(&mut tx, tenant, id, owner, &update).await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn claim_sink(
        &self,
        tenant: &str,
        sink: &str,
        owner: &str,
        now: UnixMs,
        lease_until: UnixMs,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin(tenant).await?;
        // A sink starts at the beginning of the log: it publishes every event
        // the log still holds.
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO event_sinks (tenant_id, sink, position, lease_until) VALUES (",
        );
        qb.push_bind(tenant.to_owned())
            .push(", ")
            .push_bind(sink.to_owned())
            .push(", 0, 0) ON CONFLICT (tenant_id, sink) DO NOTHING");
        qb.build().execute(&mut *tx).await?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE event_sinks SET lease_owner = ");
        qb.push_bind(owner.to_owned())
            .push(", lease_until = ")
            .push_bind(lease_until)
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND sink = ")
            .push_bind(sink.to_owned())
            .push(" AND (lease_until <= ")
            .push_bind(now)
            .push(" OR lease_owner = ")
            .push_bind(owner.to_owned())
            .push(") RETURNING position");
        let position = match qb.build().fetch_optional(&mut *tx).await? {
            Some(row) => Some(row.try_get("position")?),
            None => None,
        };
        tx.commit().await?;
        Ok(position)
    }

    async fn advance_sink(
        &self,
        tenant: &str,
        sink: &str,
        owner: &str,
        position: i64,
        lease_until: UnixMs,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE event_sinks SET position = ");
        qb.push_bind(position)
            .push(", lease_until = ")
            .push_bind(lease_until)
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND sink = ")
            .push_bind(sink.to_owned())
            .push(" AND lease_owner = ")
            .push_bind(owner.to_owned())
            .push(" RETURNING sink");
        let held = qb.build().fetch_optional(&mut *tx).await?.is_some();
        tx.commit().await?;
        Ok(held)
    }
}
