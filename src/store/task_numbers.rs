//! The dialing lists of tasks. Uploaded numbers live in `task_numbers`; every
//! number of a task (uploaded, listed or called) has a kept state in
//! `task_number_states` (latest call, attempts, list status), which triggers
//! keep current on every write of calls and numbers (migration 0015), and
//! which the listing pages through.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Transaction, Type,
};

use super::dialect::{json, opt_text, push_list, to_json};
use super::{Dialect, SqlStore, StoreError, TaskNumberStore};
use crate::domain::carrier::carrier_spellings;
use crate::domain::task_number::{StatusSources, dial_status};
use crate::domain::{
    Location, StoredCall, TaskNumber, TaskNumberEntry, TaskNumberQuery, TaskNumberUpsert, UnixMs,
};

/// A page of a dialing list and the phone the next page starts after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNumberPage {
    pub numbers: Vec<TaskNumber>,
    pub next: Option<String>,
}

const LOCATION_FIELDS: [&str; 6] = [
    "province",
    "city",
    "area_code",
    "carrier",
    "region",
    "post_code",
];
/// Numbers per upsert statement: 14 bound values each, well under both
/// backends' limit on parameters.
const NUMBERS_PER_STATEMENT: usize = 1000;
/// Which kept states one branch of a dialing-list page reads.
#[derive(Debug, Clone, Copy)]
enum Branch {
    /// Every number of the task.
    All,
    /// Numbers whose latest call had this outcome.
    Outcome(i32),
    /// Numbers without a call whose list status is this (or none).
    Uncalled(Option<i32>),
}

#[async_trait]
impl<DB> TaskNumberStore for SqlStore<DB>
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
    async fn upsert_task_numbers(
        &self,
        tenant: &str,
        task_id: &str,
        entries: &[TaskNumberEntry],
        now: UnixMs,
    ) -> Result<TaskNumberUpsert, StoreError> {
        let mut tx = self.begin(tenant).await?;
        // The registry of tenants lists every tenant with data, dialing lists
        // too (migrations walk it tenant by tenant).
        Self::register_tenant(&mut tx, tenant).await?;
        let result = Self::write_task_numbers(&mut tx, tenant, task_id, entries, now).await?;
        tx.commit().await?;
        Ok(result)
    }

    async fn list_task_numbers(
        &self,
        tenant: &str,
        q: &TaskNumberQuery,
    ) -> Result<TaskNumberPage, StoreError> {
        let limit = i64::from(q.page_size) + 1;
        // Each branch walks one range of a state index in phone order and
        // stops at the page's end; the page is the first of their union.
        let mut branches: Vec<Branch> = Vec::new();
        if q.statuses.is_empty() {
            branches.push(Branch::All);
        } else {
            let sources = StatusSources::of(&q.statuses);
            branches.extend(sources.outcomes.into_iter().map(Branch::Outcome));
            branches.extend(sources.vendor_statuses.into_iter().map(Branch::Uncalled));
        }
        let mut qb = QueryBuilder::<DB>::new("SELECT * FROM (");
        for (i, branch) in branches.iter().enumerate() {
            if i > 0 {
                qb.push(" UNION ALL ");
            }
            qb.push("SELECT * FROM (");
            self.push_state_branch(&mut qb, tenant, q, *branch, limit);
            qb.push(format_args!(") b{i}"));
        }
        qb.push(") x ORDER BY x.phone LIMIT ").push_bind(limit);

        let mut tx = self.read(tenant).await?;
        let rows = qb.build().fetch_all(&mut *tx).await?;
        let mut numbers = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut location = Location::default();
            for (field, slot) in LOCATION_FIELDS.iter().zip([
                &mut location.province,
                &mut location.city,
                &mut location.area_code,
                &mut location.carrier,
                &mut location.region,
                &mut location.post_code,
            ]) {
                *slot = opt_text(row, field)?;
            }
            let attributes: BTreeMap<String, String> = json(row, "attributes")?;
            numbers.push(TaskNumber {
                phone: row.try_get("phone")?,
                phone_raw: row.try_get("phone_raw")?,
                vendor_status_code: row
                    .try_get::<Option<i64>, _>("vendor_status_code")?
                    .and_then(|c| i32::try_from(c).ok()),
                status_code: dial_status(
                    row.try_get::<Option<i64>, _>("last_outcome")?
                        .map(|c| i32::try_from(c).unwrap_or(-1)),
                    row.try_get::<Option<i64>, _>("vendor_status_code")?
                        .and_then(|c| i32::try_from(c).ok()),
                ),
                attempts: row.try_get("attempts")?,
                last_call_time: row.try_get("last_call_time")?,
                location,
                name: row.try_get("name")?,
                attributes,
                call_history: Vec::new(),
            });
        }
        let next = if numbers.len() > q.page_size as usize {
            numbers.truncate(q.page_size as usize);
            numbers.last().map(|n| n.phone.clone())
        } else {
            None
        };
        if q.include_call_history && !numbers.is_empty() {
            let phones: Vec<String> = numbers.iter().map(|n| n.phone.clone()).collect();
            let mut history = Self::call_history(&mut tx, tenant, &q.task_id, &phones).await?;
            for number in &mut numbers {
                number.call_history = history.remove(&number.phone).unwrap_or_default();
            }
        }
        tx.commit().await?;
        Ok(TaskNumberPage { numbers, next })
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
    /// Upserts numbers of a task inside a caller's transaction (an
    /// upload, or a vendor number list with the calls it came with): one
    /// look-up and one multi-row upsert per chunk of numbers, not two
    /// statements per number.
    pub(super) async fn write_task_numbers(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        task_id: &str,
        entries: &[TaskNumberEntry],
        now: UnixMs,
    ) -> Result<TaskNumberUpsert, StoreError> {
        // One statement cannot upsert a row twice (PostgreSQL refuses it), so
        // a phone given twice is folded first, by the rules the upsert
        // applies; the repeat still counts as an update, as it did when each
        // entry was written on its own.
        let mut folded: Vec<TaskNumberEntry> = Vec::with_capacity(entries.len());
        let mut position: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
        let mut result = TaskNumberUpsert::default();
        // A dialing list names its task: the catalog lists it.
        if !task_id.is_empty() {
            let mut qb = QueryBuilder::<DB>::new("INSERT INTO tasks (tenant_id, task_id) VALUES (");
            qb.push_bind(tenant.to_owned())
                .push(", ")
                .push_bind(task_id.to_owned())
                .push(") ON CONFLICT DO NOTHING");
            qb.build().execute(&mut **tx).await?;
        }
        for e in entries {
            if let Some(&i) = position.get(e.phone.as_str()) {
                folded[i].absorb(e);
                result.updated += 1;
            } else {
                position.insert(&e.phone, folded.len());
                folded.push(e.clone());
            }
        }
        for chunk in folded.chunks(NUMBERS_PER_STATEMENT) {
            let phones: Vec<String> = chunk.iter().map(|e| e.phone.clone()).collect();
            let mut look_up =
                QueryBuilder::<DB>::new("SELECT COUNT(*) FROM task_numbers WHERE tenant_id = ");
            look_up
                .push_bind(tenant.to_owned())
                .push(" AND task_id = ")
                .push_bind(task_id.to_owned())
                .push(" AND phone");
            DB::push_in(&mut look_up, &phones);
            let existing: i64 = look_up.build_query_scalar().fetch_one(&mut **tx).await?;
            let rows = chunk
                .iter()
                .map(|e| Ok((e, to_json(&e.attributes)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO task_numbers (tenant_id, task_id, phone, phone_raw, name, attributes, \
                 province, city, area_code, carrier, region, post_code, status_code, upload_time) ",
            );
            qb.push_values(rows, |mut row, (e, attributes)| {
                let l = &e.location;
                row.push_bind(tenant.to_owned())
                    .push_bind(task_id.to_owned())
                    .push_bind(e.phone.clone())
                    .push_bind(e.phone_raw.clone())
                    .push_bind(e.name.clone())
                    .push_bind(attributes);
                for text in [
                    &l.province,
                    &l.city,
                    &l.area_code,
                    &l.carrier,
                    &l.region,
                    &l.post_code,
                ] {
                    row.push_bind(text.clone());
                }
                row.push_bind(e.status_code.map(i64::from)).push_bind(now);
            });
            qb.push(" ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET phone_raw = excluded.phone_raw");
            for column in ["name"].iter().chain(LOCATION_FIELDS.iter()) {
                qb.push(format_args!(
                    ", {column} = CASE WHEN excluded.{column} <> '' \
                     THEN excluded.{column} ELSE task_numbers.{column} END"
                ));
            }
            qb.push(
                ", attributes = CASE WHEN excluded.attributes <> '{}' \
                 THEN excluded.attributes ELSE task_numbers.attributes END, \
                 status_code = COALESCE(excluded.status_code, task_numbers.status_code), \
                 upload_time = excluded.upload_time",
            );
            qb.build().execute(&mut **tx).await?;
            let existing = u32::try_from(existing).unwrap_or(u32::MAX);
            let total = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            result.updated += existing;
            result.inserted += total.saturating_sub(existing);
        }
        Ok(result)
    }

    /// One branch of a dialing-list page: the kept states it covers, in
    /// phone order after the cursor, with their list entry and latest call
    /// joined, at most `limit` of them.
    fn push_state_branch(
        &self,
        qb: &mut QueryBuilder<DB>,
        tenant: &str,
        q: &TaskNumberQuery,
        branch: Branch,
        limit: i64,
    ) {
        qb.push(
            "SELECT s.phone, COALESCE(tn.name, '') AS name, \
             COALESCE(tn.phone_raw, '') AS phone_raw, tn.status_code AS vendor_status_code, \
             COALESCE(tn.attributes, '{}') AS attributes, ",
        );
        for field in LOCATION_FIELDS {
            // The upload's location wins; the latest call fills what it lacks.
            qb.push(format_args!(
                "COALESCE(NULLIF(tn.{field}, ''), lc.{field}, '') AS {field}, "
            ));
        }
        qb.push(
            "s.last_call_time, s.last_outcome, s.attempts FROM task_number_states s \
             LEFT JOIN task_numbers tn ON tn.tenant_id = s.tenant_id AND tn.task_id = s.task_id \
             AND tn.phone = s.phone LEFT JOIN calls lc ON lc.tenant_id = s.tenant_id \
             AND lc.call_id = s.last_call_id WHERE s.tenant_id = ",
        )
        .push_bind(tenant.to_owned())
        .push(" AND s.task_id = ")
        .push_bind(q.task_id.clone());
        match branch {
            Branch::All => {}
            Branch::Outcome(code) => {
                qb.push(" AND s.last_outcome = ").push_bind(i64::from(code));
            }
            Branch::Uncalled(Some(code)) => {
                qb.push(" AND s.last_outcome IS NULL AND s.vendor_status_code = ")
                    .push_bind(i64::from(code));
            }
            Branch::Uncalled(None) => {
                qb.push(" AND s.last_outcome IS NULL AND s.vendor_status_code IS NULL");
            }
        }
        if let Some(phone) = &q.phone {
            qb.push(" AND s.phone = ").push_bind(phone.clone());
        }
        if let Some(after) = &q.after {
            qb.push(" AND s.phone > ").push_bind(after.clone());
        }
        if !q.carriers.is_empty() {
            let carriers: Vec<String> = q
                .carriers
                .iter()
                .flat_map(|c| carrier_spellings(c))
                .collect();
            qb.push(" AND COALESCE(NULLIF(tn.carrier, ''), lc.carrier, '') IN (");
            push_list(qb, &carriers);
            qb.push(")");
        }
        qb.push(" ORDER BY s.phone LIMIT ").push_bind(limit);
    }

    /// The calls of these numbers in the task, newest first, by number.
    async fn call_history(
        conn: &mut DB::Connection,
        tenant: &str,
        task_id: &str,
        phones: &[String],
    ) -> Result<HashMap<String, Vec<StoredCall>>, StoreError> {
        let mut qb = Self::select_calls();
        qb.push(" WHERE c.tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND c.task_id = ")
            .push_bind(task_id.to_owned())
            .push(" AND c.callee");
        DB::push_in(&mut qb, phones);
        qb.push(" ORDER BY c.callee, c.call_time DESC, c.call_id DESC");
        let rows = qb.build().fetch_all(&mut *conn).await?;
        let mut calls = Self::rows_to_calls(&rows)?;
        Self::attach_tags(conn, tenant, &mut calls).await?;
        let mut by_phone: HashMap<String, Vec<StoredCall>> = HashMap::new();
        for call in calls {
            by_phone
                .entry(call.call.callee.clone())
                .or_default()
                .push(call);
        }
        Ok(by_phone)
    }
}
