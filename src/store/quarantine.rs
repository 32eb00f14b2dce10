//! The quarantine: vendor records that were refused, kept with their reason
//! and raw bytes.

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Transaction, Type,
};

use super::{Dialect, QuarantineStore, SqlStore, StoreError};
use crate::domain::{Cursor, RejectedRecord, Source};

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
    /// Keeps one refused record, inside the caller's transaction. A record
    /// kept already (its id is made once per request) is left as it is: a
    /// batch whose calls' transaction lost a race is run again whole, after
    /// its quarantine's transaction committed (`CallScope::retrying`).
    pub(super) async fn insert_rejected(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        record: &RejectedRecord,
    ) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO rejected_records (tenant_id, record_id, source, channel, reason, \
             payload, payload_size, receive_time) ",
        );
        qb.push_values([record], |mut row, r| {
            row.push_bind(tenant.to_owned())
                .push_bind(r.id.clone())
                .push_bind(r.source.map(|s| i64::from(s.code())))
                .push_bind(r.channel.clone())
                .push_bind(r.reason.clone())
                .push_bind(r.payload.clone())
                .push_bind(r.payload_size)
                .push_bind(r.receive_time);
        });
        qb.push(" ON CONFLICT (tenant_id, record_id) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> QuarantineStore for SqlStore<DB>
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
    async fn list_rejected(
        &self,
        tenant: &str,
        source: Option<Source>,
        page_size: u32,
        after: Option<&Cursor>,
    ) -> Result<(Vec<RejectedRecord>, Option<Cursor>), StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT record_id, source, channel, reason, payload, payload_size, receive_time \
             FROM rejected_records WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned());
        if let Some(source) = source {
            qb.push(" AND source = ")
                .push_bind(i64::from(source.code()));
        }
        if let Some(cursor) = after {
            qb.push(" AND (receive_time, record_id) < (")
                .push_bind(cursor.sort_key)
                .push(", ")
                .push_bind(cursor.call_id.clone())
                .push(")");
        }
        qb.push(" ORDER BY receive_time DESC, record_id DESC LIMIT ")
            .push_bind(i64::from(page_size) + 1);
        let mut records = Vec::new();
        let mut tx = self.read(tenant).await?;
        for row in qb.build().fetch_all(&mut *tx).await? {
            let source: Option<i64> = row.try_get("source")?;
            records.push(RejectedRecord {
                id: row.try_get("record_id")?,
                source: source
                    .and_then(|s| i32::try_from(s).ok())
                    .and_then(Source::from_code),
                channel: row.try_get("channel")?,
                reason: row.try_get("reason")?,
                payload: row.try_get("payload")?,
                payload_size: row.try_get("payload_size")?,
                receive_time: row.try_get("receive_time")?,
            });
        }
        let next = if records.len() > page_size as usize {
            records.truncate(page_size as usize);
            records.last().map(|r| Cursor {
                sort_key: r.receive_time,
                call_id: r.id.clone(),
            })
        } else {
            None
        };
        tx.commit().await?;
        Ok((records, next))
    }
}
