//! API keys: the one table read before the tenant is known, so its statements
//! declare no tenant (each in a transaction of its own, as every statement).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type};

use super::{Dialect, KeyStore, SqlStore, StoreError};
use crate::domain::UnixMs;
use crate::domain::key::{Role, StoredKey};

const COLUMNS: &str = "SELECT key_id, tenant_id, role, name, secret_hash, create_time, \
                       last_used_time, revoke_time FROM api_keys";

fn key_from_row<R>(row: &R) -> Result<StoredKey, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'v> i64: Decode<'v, R::Database> + Type<R::Database>,
    for<'v> String: Decode<'v, R::Database> + Type<R::Database>,
    for<'v> Vec<u8>: Decode<'v, R::Database> + Type<R::Database>,
{
    let role: String = row.try_get("role")?;
    Ok(StoredKey {
        key_id: row.try_get("key_id")?,
        tenant: row.try_get("tenant_id")?,
        role: Role::parse(&role).map_err(StoreError::Corrupt)?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        create_time: row.try_get("create_time")?,
        last_used_time: row.try_get("last_used_time")?,
        revoke_time: row.try_get("revoke_time")?,
    })
}

#[async_trait]
impl<DB> KeyStore for SqlStore<DB>
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
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO api_keys (key_id, tenant_id, role, name, secret_hash, create_time, \
             last_used_time, revoke_time) ",
        );
        qb.push_values([key], |mut row, k| {
            row.push_bind(k.key_id.clone())
                .push_bind(k.tenant.clone())
                .push_bind(k.role.as_str().to_owned())
                .push_bind(k.name.clone())
                .push_bind(k.secret_hash.clone())
                .push_bind(k.create_time)
                .push_bind(k.last_used_time)
                .push_bind(k.revoke_time);
        });
        Self::fetch_all_untenanted(&self.writer, &mut qb).await?;
        Ok(())
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(COLUMNS);
        qb.push(" WHERE key_id = ").push_bind(key_id.to_owned());
        let rows = Self::fetch_all_untenanted(&self.primary_reader, &mut qb).await?;
        rows.first().map(key_from_row).transpose()
    }

    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<StoredKey>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(COLUMNS);
        if let Some(tenant) = tenant {
            qb.push(" WHERE tenant_id = ").push_bind(tenant.to_owned());
        }
        qb.push(" ORDER BY tenant_id, create_time, key_id");
        let rows = Self::fetch_all_untenanted(&self.primary_reader, &mut qb).await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, key_id: &str, now: UnixMs) -> Result<bool, StoreError> {
        let mut qb =
            QueryBuilder::<DB>::new("UPDATE api_keys SET revoke_time = COALESCE(revoke_time, ");
        qb.push_bind(now)
            .push(") WHERE key_id = ")
            .push_bind(key_id.to_owned())
            .push(" RETURNING key_id");
        let found = Self::fetch_all_untenanted(&self.writer, &mut qb).await?;
        Ok(!found.is_empty())
    }

    async fn touch_key(
        &self,
        key_id: &str,
        now: UnixMs,
        not_since: UnixMs,
    ) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new("UPDATE api_keys SET last_used_time = ");
        qb.push_bind(now)
            .push(" WHERE key_id = ")
            .push_bind(key_id.to_owned())
            .push(" AND (last_used_time IS NULL OR last_used_time < ")
            .push_bind(not_since)
            .push(")");
        Self::fetch_all_untenanted(&self.writer, &mut qb).await?;
        Ok(())
    }
}
