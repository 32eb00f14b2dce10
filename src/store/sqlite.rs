//! SQLite backend: one file, WAL, a single writer connection that takes the
//! write lock up front (`BEGIN IMMEDIATE`) and a pool of readers.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::filter_sql::{push_page, push_where};
use super::{CallPage, StoreError, StoreOptions};
use crate::domain::{
    Billing, Call, CallOrder, CallOutcome, CallQuery, Cursor, DialogueTurn, Gender, IntentLevel,
    Location, Party, Source, StoredCall, Tag, TagGroup, Task, TurnKind, UnixMs, UpsertOutcome,
    UpsertResult,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

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
];

#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        let base = SqliteConnectOptions::from_str(&options.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged batch survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(false);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // Readers map the file instead of copying pages through a small
            // per-connection cache: analytics scans whole indexes.
            .connect_with(base.read_only(true).pragma("mmap_size", "1073741824"))
            .await?;
        Ok(Self { writer, reader })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    pub async fn upsert_calls(
        &self,
        tenant: &str,
        calls: &[Call],
        now: UnixMs,
    ) -> Result<Vec<UpsertResult>, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            results.push(upsert_call(&mut tx, tenant, call, now).await?);
        }
        tx.commit().await?;
        Ok(results)
    }

    pub async fn list_calls(
        &self,
        tenant: &str,
        query: &CallQuery,
    ) -> Result<CallPage, StoreError> {
        let mut qb = select_calls();
        push_where(&mut qb, tenant, &query.filter);
        push_page(
            &mut qb,
            query.order,
            query.after.as_ref(),
            i64::from(query.page_size) + 1,
        );
        let rows = qb.build().fetch_all(&self.reader).await?;
        let mut calls = rows
            .iter()
            .map(row_to_call)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if calls.len() > query.page_size as usize {
            calls.truncate(query.page_size as usize);
            calls.last().map(|last| Cursor {
                sort_key: sort_key(query.order, last),
                call_id: last.call_id.clone(),
            })
        } else {
            None
        };
        self.attach_tags(tenant, &mut calls).await?;
        let total = if query.include_total {
            let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM calls c");
            push_where(&mut count, tenant, &query.filter);
            Some(
                count
                    .build_query_scalar::<i64>()
                    .fetch_one(&self.reader)
                    .await?,
            )
        } else {
            None
        };
        Ok(CallPage { calls, next, total })
    }

    pub async fn get_call(
        &self,
        tenant: &str,
        call_id: &str,
        include_progress_turns: bool,
    ) -> Result<Option<StoredCall>, StoreError> {
        let mut qb = select_calls();
        qb.push(" WHERE c.tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND c.call_id = ")
            .push_bind(call_id.to_owned());
        let Some(row) = qb.build().fetch_optional(&self.reader).await? else {
            return Ok(None);
        };
        let mut calls = vec![row_to_call(&row)?];
        self.attach_tags(tenant, &mut calls).await?;
        let mut call = calls.remove(0);
        let mut turns = QueryBuilder::<Sqlite>::new(
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
        for row in turns.build().fetch_all(&self.reader).await? {
            call.call.turns.push(row_to_turn(&row)?);
        }
        Ok(Some(call))
    }

    pub async fn upsert_tasks(&self, tenant: &str, tasks: &[Task]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for task in tasks {
            upsert_task(&mut tx, tenant, task).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn upsert_tags(
        &self,
        tenant: &str,
        tags: &[Tag],
        groups: &[TagGroup],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for group in groups {
            upsert_tag_group(&mut tx, tenant, group).await?;
        }
        for tag in tags {
            upsert_tag(&mut tx, tenant, tag).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn upsert_intent_levels(
        &self,
        tenant: &str,
        levels: &[IntentLevel],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for level in levels {
            upsert_intent_level(&mut tx, tenant, level).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Fills the tags (with their groups) and hit tag groups of a page of calls
    /// in two queries, whatever the page size.
    pub(crate) async fn attach_tags(
        &self,
        tenant: &str,
        calls: &mut [StoredCall],
    ) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();

        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT ct.call_id, ct.tag_id, t.name, t.color, t.description, \
             g.group_id, g.name AS group_name, g.scene_id \
             FROM call_tags ct \
             LEFT JOIN tags t ON t.tenant_id = ct.tenant_id AND t.tag_id = ct.tag_id \
             LEFT JOIN tag_group_members m ON m.tenant_id = ct.tenant_id AND m.tag_id = ct.tag_id \
             LEFT JOIN tag_groups g ON g.tenant_id = m.tenant_id AND g.group_id = m.group_id \
             WHERE ct.tenant_id = ",
        );
        qb.push_bind(tenant.to_owned()).push(" AND ct.call_id IN (");
        push_list(&mut qb, &ids);
        qb.push(") ORDER BY ct.call_id, ct.position, g.group_id");
        let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
        for row in qb.build().fetch_all(&self.reader).await? {
            let call_id: String = row.try_get("call_id")?;
            let tag_id: String = row.try_get("tag_id")?;
            let list = tags.entry(call_id).or_default();
            if list.last().is_none_or(|t| t.id != tag_id) {
                list.push(Tag {
                    id: tag_id,
                    name: opt_text(&row, "name")?,
                    color: opt_text(&row, "color")?,
                    description: opt_text(&row, "description")?,
                    groups: Vec::new(),
                });
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

        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT cg.call_id, cg.group_id, g.name, g.scene_id FROM call_tag_groups cg \
             LEFT JOIN tag_groups g ON g.tenant_id = cg.tenant_id AND g.group_id = cg.group_id \
             WHERE cg.tenant_id = ",
        );
        qb.push_bind(tenant.to_owned()).push(" AND cg.call_id IN (");
        push_list(&mut qb, &ids);
        qb.push(") ORDER BY cg.call_id, cg.group_id");
        let mut groups: HashMap<String, Vec<TagGroup>> = HashMap::new();
        for row in qb.build().fetch_all(&self.reader).await? {
            groups
                .entry(row.try_get("call_id")?)
                .or_default()
                .push(TagGroup {
                    id: row.try_get("group_id")?,
                    name: opt_text(&row, "name")?,
                    scene_id: opt_text(&row, "scene_id")?,
                });
        }

        for call in calls.iter_mut() {
            call.call.tags = tags.remove(&call.call_id).unwrap_or_default();
            call.call.tag_groups = groups.remove(&call.call_id).unwrap_or_default();
        }
        Ok(())
    }
}

/// What an existing record looks like, to decide whether a new version wins.
struct Existing {
    call_id: String,
    update_time: Option<UnixMs>,
    content_hash: String,
}

async fn upsert_call(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &str,
    call: &Call,
    now: UnixMs,
) -> Result<UpsertResult, StoreError> {
    let hash = call.content_hash();
    let existing = sqlx::query(
        "SELECT call_id, update_time, content_hash FROM calls \
         WHERE tenant_id = ? AND source = ? AND external_id = ?",
    )
    .bind(tenant)
    .bind(i64::from(call.source.code()))
    .bind(&call.external_id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| -> Result<Existing, sqlx::Error> {
        Ok(Existing {
            call_id: row.try_get("call_id")?,
            update_time: row.try_get("update_time")?,
            content_hash: row.try_get("content_hash")?,
        })
    })
    .transpose()?;

    let (call_id, outcome) = match existing {
        None => (uuid::Uuid::now_v7().to_string(), UpsertOutcome::Inserted),
        Some(old) => {
            // The vendor's update time decides; equal (or unknown) times fall
            // back to arrival order, so the later arrival wins.
            let older =
                matches!((call.update_time, old.update_time), (Some(new), Some(cur)) if new < cur);
            if older || old.content_hash == hash {
                return Ok(UpsertResult {
                    call_id: old.call_id,
                    outcome: UpsertOutcome::Unchanged,
                });
            }
            (old.call_id, UpsertOutcome::Updated)
        }
    };

    let mut qb = QueryBuilder::<Sqlite>::new(
        "INSERT INTO calls (tenant_id, call_id, sync_time, content_hash",
    );
    for column in CALL_COLUMNS {
        qb.push(", ").push(column);
    }
    qb.push(") VALUES (");
    {
        let mut values = qb.separated(", ");
        values.push_bind(tenant.to_owned());
        values.push_bind(call_id.clone());
        values.push_bind(now);
        values.push_bind(hash);
    }
    bind_call_values(&mut qb, call)?;
    qb.push(") ON CONFLICT (tenant_id, source, external_id) DO UPDATE SET sync_time = excluded.sync_time, content_hash = excluded.content_hash");
    for column in CALL_COLUMNS {
        qb.push(format_args!(", {column} = excluded.{column}"));
    }
    qb.build().execute(&mut **tx).await?;

    if outcome == UpsertOutcome::Updated {
        for table in ["call_tags", "call_tag_groups", "dialogue_turns"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = ? AND call_id = ?"
            )))
            .bind(tenant)
            .bind(&call_id)
            .execute(&mut **tx)
            .await?;
        }
    }
    write_children(tx, tenant, &call_id, call).await?;
    Ok(UpsertResult { call_id, outcome })
}

/// Binds the values of [`CALL_COLUMNS`], each preceded by `, `.
fn bind_call_values(qb: &mut QueryBuilder<Sqlite>, c: &Call) -> Result<(), StoreError> {
    let attributes =
        serde_json::to_string(&c.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let text = |qb: &mut QueryBuilder<Sqlite>, v: &str| {
        qb.push(", ").push_bind(v.to_owned());
    };
    let int = |qb: &mut QueryBuilder<Sqlite>, v: i64| {
        qb.push(", ").push_bind(v);
    };
    let opt = |qb: &mut QueryBuilder<Sqlite>, v: Option<i64>| {
        qb.push(", ").push_bind(v);
    };
    int(qb, c.source.code().into());
    text(qb, &c.external_id);
    text(qb, &c.task_id);
    text(qb, &c.parent_task_id);
    text(qb, &c.script_id);
    text(qb, &c.callee);
    text(qb, &c.callee_raw);
    text(qb, &c.caller);
    text(qb, &c.caller_raw);
    opt(qb, c.submit_time);
    int(qb, c.call_time);
    opt(qb, c.ring_time);
    opt(qb, c.answer_time);
    opt(qb, c.hangup_time);
    int(qb, c.ring_ms);
    int(qb, c.talk_ms);
    int(qb, c.total_ms);
    int(qb, c.billed_ms);
    int(qb, c.outcome.code().into());
    text(qb, &c.vendor_status);
    text(qb, &c.hangup_cause);
    text(qb, &c.sip_code);
    int(qb, c.hangup_by.code().into());
    opt(qb, c.score.map(i64::from));
    qb.push(", ")
        .push_bind(c.intent_level.as_ref().map(|l| l.id.clone()));
    int(qb, c.rounds.into());
    text(qb, &c.recording_url);
    int(qb, c.gender.code().into());
    let l = &c.location;
    for v in [
        &l.province,
        &l.city,
        &l.area_code,
        &l.carrier,
        &l.region,
        &l.post_code,
    ] {
        text(qb, v);
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
        text(qb, v);
    }
    text(qb, &c.dtmf);
    int(qb, c.recall_count.into());
    text(qb, &c.recall_of);
    text(qb, &c.customer_name);
    text(qb, &c.line_id);
    text(qb, &attributes);
    opt(qb, c.update_time);
    Ok(())
}

/// Writes the tags, hit tag groups and turns of a call, and fills the catalogs
/// with the tags, groups, intent level and task it names.
async fn write_children(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &str,
    call_id: &str,
    call: &Call,
) -> Result<(), StoreError> {
    let mut group_ids: Vec<&str> = Vec::new();
    for (position, tag) in call.tags.iter().enumerate() {
        upsert_tag(tx, tenant, tag).await?;
        sqlx::query(
            "INSERT INTO call_tags (tenant_id, call_id, tag_id, position) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(call_id)
        .bind(&tag.id)
        .bind(position as i64)
        .execute(&mut **tx)
        .await?;
        group_ids.extend(tag.groups.iter().map(|g| g.id.as_str()));
    }
    for group in &call.tag_groups {
        upsert_tag_group(tx, tenant, group).await?;
        group_ids.push(&group.id);
    }
    for group_id in group_ids {
        sqlx::query(
            "INSERT INTO call_tag_groups (tenant_id, call_id, group_id) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(call_id)
        .bind(group_id)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(level) = &call.intent_level {
        upsert_intent_level(tx, tenant, level).await?;
    }
    if !call.task_id.is_empty() {
        sqlx::query(
            "INSERT INTO tasks (tenant_id, task_id, parent_task_id, script_id, source) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(&call.task_id)
        .bind(&call.parent_task_id)
        .bind(&call.script_id)
        .bind(i64::from(call.source.code()))
        .execute(&mut **tx)
        .await?;
    }
    for turn in &call.turns {
        for tag in &turn.tags {
            upsert_tag(tx, tenant, tag).await?;
        }
        let tags =
            serde_json::to_string(&turn.tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let attributes = serde_json::to_string(&turn.attributes)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO dialogue_turns (tenant_id, call_id, sequence, kind, customer_text, \
             robot_text, node_id, node_name, keyword, score, speak_ms, play_ms, asr_latency_ms, \
             tags, turn_time, after_transfer, turn_id, attributes) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(call_id)
        .bind(i64::from(turn.sequence))
        .bind(i64::from(turn.kind.code()))
        .bind(&turn.customer_text)
        .bind(&turn.robot_text)
        .bind(&turn.node_id)
        .bind(&turn.node_name)
        .bind(&turn.keyword)
        .bind(i64::from(turn.score))
        .bind(turn.speak_ms)
        .bind(turn.play_ms)
        .bind(turn.asr_latency_ms)
        .bind(tags)
        .bind(turn.time)
        .bind(turn.after_transfer)
        .bind(&turn.turn_id)
        .bind(attributes)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

// Catalog upserts keep what is known: an empty name in a record never erases
// a name the catalog already has.

async fn upsert_tag(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &str,
    tag: &Tag,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tags (tenant_id, tag_id, name, color, description) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id, tag_id) DO UPDATE SET \
         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE tags.name END, \
         color = CASE WHEN excluded.color <> '' THEN excluded.color ELSE tags.color END, \
         description = CASE WHEN excluded.description <> '' THEN excluded.description ELSE tags.description END",
    )
    .bind(tenant)
    .bind(&tag.id)
    .bind(&tag.name)
    .bind(&tag.color)
    .bind(&tag.description)
    .execute(&mut **tx)
    .await?;
    for group in &tag.groups {
        upsert_tag_group(tx, tenant, group).await?;
        sqlx::query(
            "INSERT INTO tag_group_members (tenant_id, tag_id, group_id) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(&tag.id)
        .bind(&group.id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn upsert_tag_group(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &str,
    group: &TagGroup,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tag_groups (tenant_id, group_id, name, scene_id) VALUES (?, ?, ?, ?) \
         ON CONFLICT (tenant_id, group_id) DO UPDATE SET \
         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE tag_groups.name END, \
         scene_id = CASE WHEN excluded.scene_id <> '' THEN excluded.scene_id ELSE tag_groups.scene_id END",
    )
    .bind(tenant)
    .bind(&group.id)
    .bind(&group.name)
    .bind(&group.scene_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_intent_level(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &str,
    level: &IntentLevel,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO intent_levels (tenant_id, intent_level_id, name, alias, color) \
         VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id, intent_level_id) DO UPDATE SET \
         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE intent_levels.name END, \
         alias = CASE WHEN excluded.alias <> '' THEN excluded.alias ELSE intent_levels.alias END, \
         color = CASE WHEN excluded.color <> '' THEN excluded.color ELSE intent_levels.color END",
    )
    .bind(tenant)
    .bind(&level.id)
    .bind(&level.name)
    .bind(&level.alias)
    .bind(&level.color)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_task(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &str,
    task: &Task,
) -> Result<(), StoreError> {
    let attributes =
        serde_json::to_string(&task.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO tasks (tenant_id, task_id, name, parent_task_id, script_id, source, \
         create_time, update_time, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id, task_id) DO UPDATE SET \
         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE tasks.name END, \
         parent_task_id = CASE WHEN excluded.parent_task_id <> '' THEN excluded.parent_task_id ELSE tasks.parent_task_id END, \
         script_id = CASE WHEN excluded.script_id <> '' THEN excluded.script_id ELSE tasks.script_id END, \
         source = COALESCE(excluded.source, tasks.source), \
         create_time = COALESCE(excluded.create_time, tasks.create_time), \
         update_time = COALESCE(excluded.update_time, tasks.update_time), \
         attributes = CASE WHEN excluded.attributes <> '{}' THEN excluded.attributes ELSE tasks.attributes END",
    )
    .bind(tenant)
    .bind(&task.task_id)
    .bind(&task.name)
    .bind(&task.parent_task_id)
    .bind(&task.script_id)
    .bind(task.source.map(|s| i64::from(s.code())))
    .bind(task.create_time)
    .bind(task.update_time)
    .bind(attributes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) fn select_calls() -> QueryBuilder<Sqlite> {
    QueryBuilder::new(
        "SELECT c.*, il.name AS il_name, il.alias AS il_alias, il.color AS il_color \
         FROM calls c LEFT JOIN intent_levels il \
         ON il.tenant_id = c.tenant_id AND il.intent_level_id = c.intent_level_id",
    )
}

pub(crate) fn push_list(qb: &mut QueryBuilder<Sqlite>, values: &[String]) {
    let mut list = qb.separated(", ");
    for value in values {
        list.push_bind(value.clone());
    }
}

fn sort_key(order: CallOrder, call: &StoredCall) -> i64 {
    match order {
        CallOrder::CallTimeDesc | CallOrder::CallTimeAsc => call.call.call_time,
        CallOrder::ScoreDesc | CallOrder::ScoreAsc => {
            call.call.score.map_or(-2_147_483_649, i64::from)
        }
        CallOrder::TalkMsDesc | CallOrder::TalkMsAsc => call.call.talk_ms,
    }
}

pub(crate) fn opt_text(row: &SqliteRow, column: &str) -> Result<String, sqlx::Error> {
    Ok(row
        .try_get::<Option<String>, _>(column)?
        .unwrap_or_default())
}

fn code<T>(row: &SqliteRow, column: &str, from: fn(i32) -> Option<T>) -> Result<T, StoreError> {
    let value: i64 = row.try_get(column)?;
    i32::try_from(value)
        .ok()
        .and_then(from)
        .ok_or_else(|| StoreError::Corrupt(format!("{column} = {value}")))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn row_to_call(row: &SqliteRow) -> Result<StoredCall, StoreError> {
    let intent_level = row
        .try_get::<Option<String>, _>("intent_level_id")?
        .map(|id| -> Result<IntentLevel, sqlx::Error> {
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
        },
        dtmf: row.try_get("dtmf")?,
        recall_count: row.try_get::<i64, _>("recall_count")? as i32,
        recall_of: row.try_get("recall_of")?,
        customer_name: row.try_get("customer_name")?,
        line_id: row.try_get("line_id")?,
        attributes,
        turns: Vec::new(),
        update_time: row.try_get("update_time")?,
    };
    Ok(StoredCall {
        call_id: row.try_get("call_id")?,
        sync_time: row.try_get("sync_time")?,
        call,
    })
}

fn row_to_turn(row: &SqliteRow) -> Result<DialogueTurn, StoreError> {
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
