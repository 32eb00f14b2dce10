//! Reading calls: listings by filter with keyset pages, and one call with
//! its tags and dialogue turns.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use futures_util::stream::{self, BoxStream, StreamExt};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::dialect::{Columns, code, json, parse_snapshot};
use super::filter_sql::{SELECT_CALLS, plan_fits_any_values, push_page, push_where};
use super::{CallPage, CallStore, Dialect, SqlStore, StoreError};
use crate::domain::{
    Billing, Call, CallOutcome, CallQuery, Cursor, DialogueTurn, Gender, IntentLevel, Location,
    Party, Source, StoredCall, Tag, TagGroup, TurnKind,
};

/// The tags of a page's calls, each with its catalog entry and groups:
/// completed by the bound tenant, ` AND ct.call_id` and the page's ids, then
/// [`CALL_TAGS_ORDER`]. Its columns are read by position.
const SELECT_CALL_TAGS: &str = "SELECT ct.call_id, ct.tag_id, ct.snapshot, t.name, t.color, \
     t.description, g.group_id, g.name AS group_name, g.scene_id \
     FROM call_tags ct \
     LEFT JOIN tags t ON t.tenant_id = ct.tenant_id AND t.tag_id = ct.tag_id \
     LEFT JOIN tag_group_members m ON m.tenant_id = ct.tenant_id AND m.tag_id = ct.tag_id \
     LEFT JOIN tag_groups g ON g.tenant_id = m.tenant_id AND g.group_id = m.group_id \
     WHERE ct.tenant_id = ";
/// A call's tags in the order they were sent, each tag's rows together.
const CALL_TAGS_ORDER: &str = " ORDER BY ct.call_id, ct.position, ct.tag_id, g.group_id";
/// The catalog's columns of a tag in [`SELECT_CALL_TAGS`], and of the
/// group a row pairs it with: not read for a tag shown from its snapshot,
/// and a tag's own columns only from its first row.
const TAG_CATALOG_COLUMNS: [&str; 3] = ["name", "color", "description"];
const TAG_GROUP_COLUMNS: [&str; 3] = ["group_id", "group_name", "scene_id"];
/// The hit tag groups of a page's calls, completed like [`SELECT_CALL_TAGS`]
/// (` AND cg.call_id`), then [`CALL_TAG_GROUPS_ORDER`].
const SELECT_CALL_TAG_GROUPS: &str = "SELECT cg.call_id, cg.group_id, cg.snapshot, g.name, \
     g.scene_id FROM call_tag_groups cg \
     LEFT JOIN tag_groups g ON g.tenant_id = cg.tenant_id AND g.group_id = cg.group_id \
     WHERE cg.tenant_id = ";
/// First named first, as the vendor listed them.
const CALL_TAG_GROUPS_ORDER: &str = " ORDER BY cg.call_id, cg.position, cg.group_id";

/// One of the two statements that read the tags of a page's calls: the
/// service's, and the benchmark suite's direct baseline, which must run the
/// same SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagStatement {
    /// [`SELECT_CALL_TAGS`]: each tag with its catalog entry and groups.
    Tags,
    /// [`SELECT_CALL_TAG_GROUPS`]: the hit tag groups.
    Groups,
}

impl TagStatement {
    /// Both, in the order the store runs them.
    pub const BOTH: [TagStatement; 2] = [TagStatement::Tags, TagStatement::Groups];

    /// The statement for the calls `ids` of `tenant` (bound as one value);
    /// with `own_only`, only what was sent with the call itself, not its
    /// turns.
    pub fn query<DB>(self, tenant: &str, ids: &[String], own_only: bool) -> QueryBuilder<DB>
    where
        DB: Dialect,
        for<'q> String: Encode<'q, DB> + Type<DB>,
    {
        let (head, call_id, own, order) = match self {
            TagStatement::Tags => (
                SELECT_CALL_TAGS,
                " AND ct.call_id",
                " AND (ct.origin & 1) = 1",
                CALL_TAGS_ORDER,
            ),
            TagStatement::Groups => (
                SELECT_CALL_TAG_GROUPS,
                " AND cg.call_id",
                " AND (cg.origin & 1) = 1",
                CALL_TAG_GROUPS_ORDER,
            ),
        };
        let mut qb = QueryBuilder::<DB>::new(head);
        qb.push_bind(tenant.to_owned()).push(call_id);
        DB::push_in(&mut qb, ids);
        if own_only {
            qb.push(own);
        }
        qb.push(order);
        qb
    }
}

/// The undecoded rows of a page's tags ([`SELECT_CALL_TAGS`]) and hit tag
/// groups ([`SELECT_CALL_TAG_GROUPS`]).
pub(super) struct TagRows<R> {
    tags: Vec<R>,
    groups: Vec<R>,
}

/// One page's rows as the database sent them ([`SqlStore::fetch_page`]).
pub(super) struct FetchedPage<R> {
    rows: Vec<R>,
    tag_rows: TagRows<R>,
    total: Option<i64>,
    total_capped: bool,
}

/// A page being read on a task of its own ([`CallStore::call_pages`]):
/// the cursor after it comes as soon as its rows are in, before its tag
/// rows, so the next page's statement can run beside them (on a second
/// connection, when the pool has one free). Dropped unfinished, the read
/// stops.
struct PageRead<R> {
    next: oneshot::Receiver<Cursor>,
    rows: JoinHandle<Result<FetchedPage<R>, StoreError>>,
}

impl<R> PageRead<R> {
    /// The cursor of the page after this one; `None` when this is the last
    /// page, or its read failed (then [`Self::finish`] says why).
    async fn next_cursor(&mut self) -> Option<Cursor> {
        (&mut self.next).await.ok()
    }

    async fn finish(mut self) -> Result<FetchedPage<R>, StoreError> {
        match (&mut self.rows).await {
            Ok(fetched) => fetched,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Not aborted by this handle, which is still here: the runtime
            // is shutting down.
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolClosed)),
        }
    }
}

impl<R> Drop for PageRead<R> {
    fn drop(&mut self) {
        self.rows.abort();
    }
}

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
    parse_snapshot(column, row.try_get::<Option<String>, _>(column)?.as_deref())
}

/// Text of an outer join's column (NULL: none), owned.
fn owned(text: Option<&str>) -> String {
    text.unwrap_or_default().to_owned()
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
    for<'v> &'v str: Decode<'v, DB> + Type<DB>,
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    async fn list_calls(&self, tenant: &str, query: &CallQuery) -> Result<CallPage, StoreError> {
        let fetched = self.fetch_page(tenant, query, None).await?;
        Self::decode_page(fetched, query)
    }

    fn call_pages(
        &self,
        tenant: &str,
        query: CallQuery,
    ) -> BoxStream<'static, Result<CallPage, StoreError>> {
        let store = self.clone();
        let tenant = tenant.to_owned();
        stream::try_unfold(Some((None, query)), move |reading| {
            let (store, tenant) = (store.clone(), tenant.clone());
            async move {
                let Some((ahead, query)) = reading else {
                    return Ok(None);
                };
                let mut read = match ahead {
                    Some(read) => read,
                    None => store.clone().read_page_ahead(tenant.clone(), query.clone()),
                };
                let next = read.next_cursor().await.map(|cursor| {
                    let next = CallQuery {
                        after: Some(cursor),
                        ..query.clone()
                    };
                    // A second connection only when one is free: an export
                    // must not make interactive reads wait for the pool.
                    let ahead = store
                        .reader_has_room()
                        .then(|| store.read_page_ahead(tenant, next.clone()));
                    (ahead, next)
                });
                let page = Self::decode_page(read.finish().await?, &query)?;
                Ok(Some((page, next)))
            }
        })
        .boxed()
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
        let mut calls = vec![Self::row_to_call(&row, true)?];
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
    for<'v> &'v str: Decode<'v, DB> + Type<DB>,
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    /// The rows of one page of `query` (its calls, one past the page when
    /// another follows, their tag rows, the capped count), read in one
    /// transaction and not yet decoded ([`Self::decode_page`]). When
    /// another page follows, its cursor goes to `next` as soon as the
    /// page's rows are in.
    async fn fetch_page(
        &self,
        tenant: &str,
        query: &CallQuery,
        next: Option<oneshot::Sender<Cursor>>,
    ) -> Result<FetchedPage<DB::Row>, StoreError> {
        let mut qb = Self::select_calls();
        push_where(&mut qb, tenant, &query.filter);
        let walks_in_order = plan_fits_any_values(&query.filter, query.order);
        push_page(
            &mut qb,
            query.order,
            query.after.as_ref(),
            i64::from(query.page_size) + 1,
            walks_in_order,
        );
        let page_size = query.page_size as usize;
        // The page's statements run back to back and the connection goes
        // back to the pool before any row is decoded, so no other request
        // waits on the pool while this one decodes (its tags need only the
        // page's call ids, read from the first column).
        let mut tx = self.read_page(tenant, walks_in_order).await?;
        let rows = qb.build().fetch_all(&mut *tx).await?;
        let ids = rows
            .iter()
            .take(page_size)
            .enumerate()
            .map(|(i, row)| Columns::new(row, i == 0, DB::TYPES_EACH_VALUE).get("call_id"))
            .collect::<Result<Vec<String>, _>>()?;
        if let (Some(next), Some(last)) = (next, rows.get(page_size).and(ids.len().checked_sub(1)))
        {
            let _ = next.send(
                query
                    .order
                    .cursor_of(&Self::row_to_call(&rows[last], true)?),
            );
        }
        let tag_rows = Self::fetch_tag_rows(&mut tx, tenant, &ids, TagsRead::Shown).await?;
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
        Ok(FetchedPage {
            rows,
            tag_rows,
            total,
            total_capped,
        })
    }

    /// Starts [`Self::fetch_page`] on a task of its own.
    fn read_page_ahead(self, tenant: String, query: CallQuery) -> PageRead<DB::Row> {
        let (cursor, next) = oneshot::channel();
        let rows =
            tokio::spawn(async move { self.fetch_page(&tenant, &query, Some(cursor)).await });
        PageRead { next, rows }
    }

    /// The page of `query` that `fetched` holds.
    fn decode_page(
        fetched: FetchedPage<DB::Row>,
        query: &CallQuery,
    ) -> Result<CallPage, StoreError> {
        let FetchedPage {
            rows,
            tag_rows,
            total,
            total_capped,
        } = fetched;
        let page_size = query.page_size as usize;
        // One row past the page says that a next page exists; it is not
        // decoded.
        let more = rows.len() > page_size;
        let mut calls = Self::rows_to_calls(&rows[..rows.len().min(page_size)])?;
        let next = if more {
            calls.last().map(|last| query.order.cursor_of(last))
        } else {
            None
        };
        Self::apply_tag_rows(&mut calls, &tag_rows, TagsRead::Shown)?;
        Ok(CallPage {
            calls,
            next,
            total,
            total_capped,
        })
    }

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
        let rows = Self::fetch_tag_rows(conn, tenant, &ids, read).await?;
        Self::apply_tag_rows(calls, &rows, read)
    }

    /// The tag rows and hit tag group rows of the calls `ids`, undecoded;
    /// none when there are no calls.
    pub(super) async fn fetch_tag_rows(
        conn: &mut DB::Connection,
        tenant: &str,
        ids: &[String],
        read: TagsRead,
    ) -> Result<TagRows<DB::Row>, StoreError> {
        if ids.is_empty() {
            return Ok(TagRows {
                tags: Vec::new(),
                groups: Vec::new(),
            });
        }
        let own_only = read == TagsRead::OwnAsStored;
        let tags = TagStatement::Tags
            .query(tenant, ids, own_only)
            .build()
            .fetch_all(&mut *conn)
            .await?;
        let groups = TagStatement::Groups
            .query(tenant, ids, own_only)
            .build()
            .fetch_all(&mut *conn)
            .await?;
        Ok(TagRows { tags, groups })
    }

    /// Fills the tags and hit tag groups of `calls` from their rows
    /// ([`Self::fetch_tag_rows`]).
    pub(super) fn apply_tag_rows(
        calls: &mut [StoredCall],
        rows: &TagRows<DB::Row>,
        read: TagsRead,
    ) -> Result<(), StoreError> {
        let own_only = read == TagsRead::OwnAsStored;
        let mut tags: HashMap<&str, Vec<Tag>> = HashMap::with_capacity(calls.len());
        // Tags read from their snapshot take no groups from the catalog.
        let mut from_snapshot = false;
        for (i, row) in rows.tags.iter().enumerate() {
            let mut c = Columns::new(row, i == 0, DB::TYPES_EACH_VALUE);
            let call_id: &str = c.get("call_id")?;
            let tag_id: &str = c.get("tag_id")?;
            let list = tags.entry(call_id).or_default();
            // A tag has a row per group it is in: its own columns are read
            // from its first row only.
            if list.last().is_none_or(|t| t.id != tag_id) {
                let sent: Option<Tag> = c.snapshot("snapshot")?;
                from_snapshot = match sent.filter(|t| own_only || !t.name.is_empty()) {
                    Some(tag) => {
                        c.skip(&TAG_CATALOG_COLUMNS)?;
                        list.push(Tag {
                            id: tag_id.to_owned(),
                            ..tag
                        });
                        true
                    }
                    None => {
                        let name: Option<&str> = c.get("name")?;
                        let color: Option<&str> = c.get("color")?;
                        let description: Option<&str> = c.get("description")?;
                        list.push(Tag {
                            id: tag_id.to_owned(),
                            name: owned(name),
                            color: owned(color),
                            description: owned(description),
                            groups: Vec::new(),
                        });
                        false
                    }
                };
            } else {
                c.skip(&["snapshot"])?;
                c.skip(&TAG_CATALOG_COLUMNS)?;
            }
            if from_snapshot {
                c.skip(&TAG_GROUP_COLUMNS)?;
                continue;
            }
            let group_id: Option<&str> = c.get("group_id")?;
            let group_name: Option<&str> = c.get("group_name")?;
            let scene_id: Option<&str> = c.get("scene_id")?;
            if let Some(group_id) = group_id
                && let Some(tag) = list.last_mut()
            {
                tag.groups.push(TagGroup {
                    id: group_id.to_owned(),
                    name: owned(group_name),
                    scene_id: owned(scene_id),
                });
            }
        }

        let mut groups: HashMap<&str, Vec<TagGroup>> = HashMap::with_capacity(calls.len());
        for (i, row) in rows.groups.iter().enumerate() {
            let mut c = Columns::new(row, i == 0, DB::TYPES_EACH_VALUE);
            let call_id: &str = c.get("call_id")?;
            let group_id: &str = c.get("group_id")?;
            let sent: Option<TagGroup> = c.snapshot("snapshot")?;
            let group = match sent.filter(|g| own_only || !g.name.is_empty()) {
                Some(group) => {
                    c.skip(&["name", "scene_id"])?;
                    TagGroup {
                        id: group_id.to_owned(),
                        ..group
                    }
                }
                None => {
                    let name: Option<&str> = c.get("name")?;
                    let scene_id: Option<&str> = c.get("scene_id")?;
                    TagGroup {
                        id: group_id.to_owned(),
                        name: owned(name),
                        scene_id: owned(scene_id),
                    }
                }
            };
            groups.entry(call_id).or_default().push(group);
        }

        for call in calls.iter_mut() {
            call.call.tags = tags.remove(call.call_id.as_str()).unwrap_or_default();
            call.call.tag_groups = groups.remove(call.call_id.as_str()).unwrap_or_default();
        }
        Ok(())
    }

    /// The calls of rows selected with [`SELECT_CALLS`], in their order.
    pub(super) fn rows_to_calls(rows: &[DB::Row]) -> Result<Vec<StoredCall>, StoreError> {
        rows.iter()
            .enumerate()
            .map(|(i, row)| Self::row_to_call(row, i == 0))
            .collect()
    }

    /// The call of one row selected with [`SELECT_CALLS`], read by position
    /// ([`Columns`]), `first` of its result set. The fields are written in
    /// the statement's column order: Rust evaluates them as written.
    pub(super) fn row_to_call(row: &DB::Row, first: bool) -> Result<StoredCall, StoreError> {
        let mut c = Columns::new(row, first, DB::TYPES_EACH_VALUE);
        let call_id = c.get("call_id")?;
        let sync_time = c.get("sync_time")?;
        let call = Call {
            source: c.code("source", Source::from_code)?,
            external_id: c.get("external_id")?,
            task_id: c.get("task_id")?,
            parent_task_id: c.get("parent_task_id")?,
            script_id: c.get("script_id")?,
            callee: c.get("callee")?,
            callee_raw: c.get("callee_raw")?,
            caller: c.get("caller")?,
            caller_raw: c.get("caller_raw")?,
            submit_time: c.get("submit_time")?,
            call_time: c.get("call_time")?,
            ring_time: c.get("ring_time")?,
            answer_time: c.get("answer_time")?,
            hangup_time: c.get("hangup_time")?,
            ring_ms: c.get("ring_ms")?,
            talk_ms: c.get("talk_ms")?,
            total_ms: c.get("total_ms")?,
            billed_ms: c.get("billed_ms")?,
            outcome: c.code("outcome", CallOutcome::from_code)?,
            vendor_status: c.get("vendor_status")?,
            hangup_cause: c.get("hangup_cause")?,
            sip_code: c.get("sip_code")?,
            hangup_by: c.code("hangup_by", Party::from_code)?,
            score: c
                .get::<Option<i64>>("score")?
                .and_then(|s| i32::try_from(s).ok()),
            intent_level: Self::intent_level(&mut c)?,
            rounds: c.get::<i64>("rounds")? as i32,
            tags: Vec::new(),
            tag_groups: Vec::new(),
            recording_url: c.get("recording_url")?,
            gender: c.code("gender", Gender::from_code)?,
            location: Location {
                province: c.get("province")?,
                city: c.get("city")?,
                area_code: c.get("area_code")?,
                carrier: c.get("carrier")?,
                region: c.get("region")?,
                post_code: c.get("post_code")?,
            },
            billing: Billing {
                rate: c.get("rate")?,
                base_cost: c.get("base_cost")?,
                cost: c.get("cost")?,
                currency: c.get("currency")?,
                settle_rate: c.get("settle_rate")?,
                settle_cost: c.get("settle_cost")?,
                quote_exchange: c.get("quote_exchange")?,
                bill_period: c.get("bill_period")?,
                base_cost_currency: c.get("base_cost_currency")?,
                settle_currency: c.get("settle_currency")?,
            },
            dtmf: c.get("dtmf")?,
            recall_count: c.get::<i64>("recall_count")? as i32,
            recall_of: c.get("recall_of")?,
            customer_name: c.get("customer_name")?,
            line_id: c.get("line_id")?,
            attributes: c.json::<BTreeMap<String, String>>("attributes")?,
            turns: Vec::new(),
            update_time: c.get("update_time")?,
            quality_flags: split_flags(c.get("quality_flags")?),
        };
        Ok(StoredCall {
            call_id,
            sync_time,
            call,
        })
    }

    /// The intent level of a call row (its id, its snapshot and the
    /// catalog's name, alias and colour): as sent with the call when it was
    /// sent with a name, else as the catalog names it now.
    fn intent_level(c: &mut Columns<'_, DB::Row>) -> Result<Option<IntentLevel>, StoreError> {
        const CATALOG: [&str; 3] = ["il_name", "il_alias", "il_color"];
        let id: Option<String> = c.get("intent_level_id")?;
        let sent: Option<IntentLevel> = c.snapshot("intent_level_snapshot")?;
        Ok(match (id, sent.filter(IntentLevel::is_named)) {
            (Some(id), Some(level)) => {
                c.skip(&CATALOG)?;
                Some(IntentLevel { id, ..level })
            }
            (Some(id), None) => {
                let name: Option<&str> = c.get("il_name")?;
                let alias: Option<&str> = c.get("il_alias")?;
                let color: Option<&str> = c.get("il_color")?;
                Some(IntentLevel {
                    id,
                    name: owned(name),
                    alias: owned(alias),
                    color: owned(color),
                })
            }
            (None, _) => {
                c.skip(&CATALOG)?;
                None
            }
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
