//! Reading calls: listings by filter with keyset pages, and one call with
//! its tags and dialogue turns.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type};

use super::dialect::{code, json, opt_text};
use super::filter_sql::{SELECT_CALLS, plan_fits_any_values, push_page, push_where};
use super::{CallPage, CallStore, Dialect, SqlStore, StoreError};
use crate::domain::{
    Billing, Call, CallOutcome, CallQuery, DialogueTurn, Gender, IntentLevel, Location, Party,
    Source, StoredCall, Tag, TagGroup, TurnKind,
};

/// How [`SqlStore::attach_tags_of`] reads a call's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TagsRead {
    /// Every tag of the call (its own, then its turns'), named as shown.
    Shown,
    /// The call's own tags and hit groups only, each as stored.
    OwnAsStored,
}

/// A JSON snapshot column (NULL: none).
pub(super) fn snapshot<R, T>(row: &R, column: &str) -> Result<Option<T>, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'v> String: Decode<'v, R::Database> + Type<R::Database>,
    T: serde::de::DeserializeOwned,
{
    match row.try_get::<Option<String>, _>(column)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("{column}: {e}"))),
    }
}

/// `,a,b,` (the stored form, so a filter can match `,a,`) → `[a, b]`.
fn split_flags(stored: &str) -> Vec<String> {
    stored
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

#[async_trait]
impl<DB> CallStore for SqlStore<DB>
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
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    async fn list_calls(&self, tenant: &str, query: &CallQuery) -> Result<CallPage, StoreError> {
        let mut qb = Self::select_calls();
        push_where(&mut qb, tenant, &query.filter);
        push_page(
            &mut qb,
            query.order,
            query.after.as_ref(),
            i64::from(query.page_size) + 1,
            plan_fits_any_values(&query.filter, query.order),
        );
        let mut tx = self.read_page(tenant).await?;
        let rows = qb.build().fetch_all(&mut *tx).await?;
        let mut calls = rows
            .iter()
            .map(Self::row_to_call)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if calls.len() > query.page_size as usize {
            calls.truncate(query.page_size as usize);
            calls.last().map(|last| query.order.cursor_of(last))
        } else {
            None
        };
        Self::attach_tags(&mut tx, tenant, &mut calls).await?;
        let (total, total_capped) = if query.include_total {
            // Count one past the bound: enough to know the total is capped,
            // and never a scan of every match of a broad filter.
            let mut count = QueryBuilder::<DB>::new("SELECT COUNT(*) FROM (SELECT 1 FROM calls c");
            push_where(&mut count, tenant, &query.filter);
            count
                .push(" LIMIT ")
                .push_bind(query.total_limit.saturating_add(1))
                .push(") capped");
            let counted = count
                .build_query_scalar::<i64>()
                .fetch_one(&mut *tx)
                .await?;
            (
                Some(counted.min(query.total_limit)),
                counted > query.total_limit,
            )
        } else {
            (None, false)
        };
        Self::end_read(tx);
        Ok(CallPage {
            calls,
            next,
            total,
            total_capped,
        })
    }

    async fn get_call(
        &self,
        tenant: &str,
        call_id: &str,
        include_progress_turns: bool,
    ) -> Result<Option<StoredCall>, StoreError> {
        let mut qb = Self::select_calls();
        qb.push(" WHERE c.tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND c.call_id = ")
            .push_bind(call_id.to_owned());
        let mut tx = self.read_primary(tenant).await?;
        let Some(row) = qb.build().fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let mut calls = vec![Self::row_to_call(&row)?];
        Self::attach_tags(&mut tx, tenant, &mut calls).await?;
        let mut call = calls.remove(0);
        let mut turns = QueryBuilder::<DB>::new(
            "SELECT sequence, kind, customer_text, robot_text, node_id, node_name, keyword, score, \
             speak_ms, play_ms, asr_latency_ms, tags, turn_time, after_transfer, turn_id, attributes \
             FROM dialogue_turns WHERE tenant_id = ",
        );
        turns
            .push_bind(tenant.to_owned())
            .push(" AND call_id = ")
            .push_bind(call_id.to_owned());
        if !include_progress_turns {
            turns
                .push(" AND kind <> ")
                .push_bind(i64::from(TurnKind::Progress.code()));
        }
        turns.push(" ORDER BY sequence");
        for row in turns.build().fetch_all(&mut *tx).await? {
            call.call.turns.push(Self::row_to_turn(&row)?);
        }
        Self::end_read(tx);
        Ok(Some(call))
    }

    async fn attach_turns(&self, tenant: &str, calls: &mut [StoredCall]) -> Result<(), StoreError> {
        let mut tx = self.read(tenant).await?;
        let mut turns: HashMap<String, Vec<DialogueTurn>> = HashMap::new();
        let ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT call_id, sequence, kind, customer_text, robot_text, node_id, node_name, \
             keyword, score, speak_ms, play_ms, asr_latency_ms, tags, turn_time, \
             after_transfer, turn_id, attributes FROM dialogue_turns WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned()).push(" AND call_id");
        DB::push_in(&mut qb, &ids);
        qb.push(" AND kind <> ")
            .push_bind(i64::from(TurnKind::Progress.code()))
            .push(" ORDER BY call_id, sequence");
        for row in qb.build().fetch_all(&mut *tx).await? {
            turns
                .entry(row.try_get("call_id")?)
                .or_default()
                .push(Self::row_to_turn(&row)?);
        }
        Self::end_read(tx);
        for call in calls.iter_mut() {
            call.call.turns = turns.remove(&call.call_id).unwrap_or_default();
        }
        Ok(())
    }

    async fn find_call_id(
        &self,
        tenant: &str,
        source: Source,
        external_id: &str,
    ) -> Result<Option<String>, StoreError> {
        // The vendor's key first; for smartivr, its record id next.
        let mut qb = QueryBuilder::<DB>::new("SELECT call_id FROM calls WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND source = ")
            .push_bind(i64::from(source.code()))
            .push(" AND external_id = ")
            .push_bind(external_id.to_owned());
        let mut tx = self.read_primary(tenant).await?;
        let mut found: Option<String> = qb.build_query_scalar().fetch_optional(&mut *tx).await?;
        if found.is_none() {
            let mut qb = QueryBuilder::<DB>::new("SELECT call_id FROM calls WHERE tenant_id = ");
            qb.push_bind(tenant.to_owned())
                .push(" AND alt_id <> '' AND alt_id = ")
                .push_bind(external_id.to_owned())
                .push(" AND source = ")
                .push_bind(i64::from(source.code()))
                .push(" ORDER BY call_id LIMIT 1");
            found = qb.build_query_scalar().fetch_optional(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(found)
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
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    /// The start of a call listing: calls (`c`) with the name of their
    /// intent level.
    pub(super) fn select_calls() -> QueryBuilder<DB> {
        QueryBuilder::new(SELECT_CALLS)
    }

    /// Fills the tags (with their groups) and hit tag groups of a page of
    /// calls in two queries, whatever the page size. Each tag and group
    /// reads as the vendor sent it with that call (its snapshot) when it was
    /// sent with a name; else (sent by id only, or stored before snapshots)
    /// as the catalog names it now.
    pub(super) async fn attach_tags(
        conn: &mut DB::Connection,
        tenant: &str,
        calls: &mut [StoredCall],
    ) -> Result<(), StoreError> {
        Self::attach_tags_of(conn, tenant, calls, TagsRead::Shown).await
    }

    /// [`Self::attach_tags`] for what is shown, or only the call's own tags
    /// and groups exactly as stored, for merging a new view into the call.
    pub(super) async fn attach_tags_of(
        conn: &mut DB::Connection,
        tenant: &str,
        calls: &mut [StoredCall],
        read: TagsRead,
    ) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();
        let own_only = read == TagsRead::OwnAsStored;

        let mut qb = QueryBuilder::<DB>::new(
            "SELECT ct.call_id, ct.tag_id, ct.snapshot, t.name, t.color, t.description, \
             g.group_id, g.name AS group_name, g.scene_id \
             FROM call_tags ct \
             LEFT JOIN tags t ON t.tenant_id = ct.tenant_id AND t.tag_id = ct.tag_id \
             LEFT JOIN tag_group_members m ON m.tenant_id = ct.tenant_id AND m.tag_id = ct.tag_id \
             LEFT JOIN tag_groups g ON g.tenant_id = m.tenant_id AND g.group_id = m.group_id \
             WHERE ct.tenant_id = ",
        );
        qb.push_bind(tenant.to_owned()).push(" AND ct.call_id");
        DB::push_in(&mut qb, &ids);
        if own_only {
            qb.push(" AND (ct.origin & 1) = 1");
        }
        qb.push(" ORDER BY ct.call_id, ct.position, ct.tag_id, g.group_id");
        let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
        // Tags read from their snapshot take no groups from the catalog.
        let mut from_snapshot = false;
        for row in qb.build().fetch_all(&mut *conn).await? {
            let call_id: String = row.try_get("call_id")?;
            let tag_id: String = row.try_get("tag_id")?;
            let list = tags.entry(call_id).or_default();
            if list.last().is_none_or(|t| t.id != tag_id) {
                let snapshot: Option<Tag> = snapshot(&row, "snapshot")?;
                match snapshot.filter(|t| own_only || !t.name.is_empty()) {
                    Some(mut tag) => {
                        tag.id = tag_id;
                        list.push(tag);
                        from_snapshot = true;
                        continue;
                    }
                    None => {
                        from_snapshot = false;
                        list.push(Tag {
                            id: tag_id,
                            name: opt_text(&row, "name")?,
                            color: opt_text(&row, "color")?,
                            description: opt_text(&row, "description")?,
                            groups: Vec::new(),
                        });
                    }
                }
            }
            if from_snapshot {
                continue;
            }
            if let Some(group_id) = row.try_get::<Option<String>, _>("group_id")?
                && let Some(tag) = list.last_mut()
            {
                tag.groups.push(TagGroup {
                    id: group_id,
                    name: opt_text(&row, "group_name")?,
                    scene_id: opt_text(&row, "scene_id")?,
                });
            }
        }

        let mut qb = QueryBuilder::<DB>::new(
            "SELECT cg.call_id, cg.group_id, cg.snapshot, g.name, g.scene_id FROM call_tag_groups cg \
             LEFT JOIN tag_groups g ON g.tenant_id = cg.tenant_id AND g.group_id = cg.group_id \
             WHERE cg.tenant_id = ",
        );
        qb.push_bind(tenant.to_owned()).push(" AND cg.call_id");
        DB::push_in(&mut qb, &ids);
        if own_only {
            qb.push(" AND (cg.origin & 1) = 1");
        }
        // First named first, as the vendor listed them.
        qb.push(" ORDER BY cg.call_id, cg.position, cg.group_id");
        let mut groups: HashMap<String, Vec<TagGroup>> = HashMap::new();
        for row in qb.build().fetch_all(&mut *conn).await? {
            let group_id: String = row.try_get("group_id")?;
            let snapshot: Option<TagGroup> = snapshot(&row, "snapshot")?;
            let group = match snapshot.filter(|g| own_only || !g.name.is_empty()) {
                Some(mut group) => {
                    group.id = group_id;
                    group
                }
                None => TagGroup {
                    id: group_id,
                    name: opt_text(&row, "name")?,
                    scene_id: opt_text(&row, "scene_id")?,
                },
            };
            groups
                .entry(row.try_get("call_id")?)
                .or_default()
                .push(group);
        }

        for call in calls.iter_mut() {
            call.call.tags = tags.remove(&call.call_id).unwrap_or_default();
            call.call.tag_groups = groups.remove(&call.call_id).unwrap_or_default();
        }
        Ok(())
    }

    pub(super) fn row_to_call(row: &DB::Row) -> Result<StoredCall, StoreError> {
        // The level as sent with this call when it was sent with a name,
        // else as the catalog names it now.
        let level_snapshot: Option<IntentLevel> = snapshot(row, "intent_level_snapshot")?;
        let intent_level = row
            .try_get::<Option<String>, _>("intent_level_id")?
            .map(|id| -> Result<IntentLevel, sqlx::Error> {
                if let Some(level) = level_snapshot.clone().filter(IntentLevel::is_named) {
                    return Ok(IntentLevel { id, ..level });
                }
                Ok(IntentLevel {
                    id,
                    name: opt_text(row, "il_name")?,
                    alias: opt_text(row, "il_alias")?,
                    color: opt_text(row, "il_color")?,
                })
            })
            .transpose()?;
        let attributes: BTreeMap<String, String> = json(row, "attributes")?;
        let call = Call {
            source: code(row, "source", Source::from_code)?,
            external_id: row.try_get("external_id")?,
            task_id: row.try_get("task_id")?,
            parent_task_id: row.try_get("parent_task_id")?,
            script_id: row.try_get("script_id")?,
            callee: row.try_get("callee")?,
            callee_raw: row.try_get("callee_raw")?,
            caller: row.try_get("caller")?,
            caller_raw: row.try_get("caller_raw")?,
            submit_time: row.try_get("submit_time")?,
            call_time: row.try_get("call_time")?,
            ring_time: row.try_get("ring_time")?,
            answer_time: row.try_get("answer_time")?,
            hangup_time: row.try_get("hangup_time")?,
            ring_ms: row.try_get("ring_ms")?,
            talk_ms: row.try_get("talk_ms")?,
            total_ms: row.try_get("total_ms")?,
            billed_ms: row.try_get("billed_ms")?,
            outcome: code(row, "outcome", CallOutcome::from_code)?,
            vendor_status: row.try_get("vendor_status")?,
            hangup_cause: row.try_get("hangup_cause")?,
            sip_code: row.try_get("sip_code")?,
            hangup_by: code(row, "hangup_by", Party::from_code)?,
            score: row
                .try_get::<Option<i64>, _>("score")?
                .and_then(|s| i32::try_from(s).ok()),
            intent_level,
            rounds: row.try_get::<i64, _>("rounds")? as i32,
            tags: Vec::new(),
            tag_groups: Vec::new(),
            recording_url: row.try_get("recording_url")?,
            gender: code(row, "gender", Gender::from_code)?,
            location: Location {
                province: row.try_get("province")?,
                city: row.try_get("city")?,
                area_code: row.try_get("area_code")?,
                carrier: row.try_get("carrier")?,
                region: row.try_get("region")?,
                post_code: row.try_get("post_code")?,
            },
            billing: Billing {
                rate: row.try_get("rate")?,
                base_cost: row.try_get("base_cost")?,
                cost: row.try_get("cost")?,
                currency: row.try_get("currency")?,
                settle_rate: row.try_get("settle_rate")?,
                settle_cost: row.try_get("settle_cost")?,
                quote_exchange: row.try_get("quote_exchange")?,
                bill_period: row.try_get("bill_period")?,
                base_cost_currency: row.try_get("base_cost_currency")?,
                settle_currency: row.try_get("settle_currency")?,
            },
            dtmf: row.try_get("dtmf")?,
            recall_count: row.try_get::<i64, _>("recall_count")? as i32,
            recall_of: row.try_get("recall_of")?,
            customer_name: row.try_get("customer_name")?,
            line_id: row.try_get("line_id")?,
            attributes,
            turns: Vec::new(),
            update_time: row.try_get("update_time")?,
            quality_flags: split_flags(&row.try_get::<String, _>("quality_flags")?),
        };
        Ok(StoredCall {
            call_id: row.try_get("call_id")?,
            sync_time: row.try_get("sync_time")?,
            call,
        })
    }

    pub(super) fn row_to_turn(row: &DB::Row) -> Result<DialogueTurn, StoreError> {
        Ok(DialogueTurn {
            sequence: row.try_get::<i64, _>("sequence")? as i32,
            kind: code(row, "kind", TurnKind::from_code)?,
            customer_text: row.try_get("customer_text")?,
            robot_text: row.try_get("robot_text")?,
            node_id: row.try_get("node_id")?,
            node_name: row.try_get("node_name")?,
            keyword: row.try_get("keyword")?,
            score: row.try_get::<i64, _>("score")? as i32,
            speak_ms: row.try_get("speak_ms")?,
            play_ms: row.try_get("play_ms")?,
            asr_latency_ms: row.try_get("asr_latency_ms")?,
            tags: json(row, "tags")?,
            time: row.try_get("turn_time")?,
            after_transfer: row.try_get("after_transfer")?,
            turn_id: row.try_get("turn_id")?,
            attributes: json(row, "attributes")?,
        })
    }
}
