//! The tenant's catalogs: tasks, tags with their groups, and intent levels,
//! written from catalog requests and from the calls that name them. A field
//! left empty never erases a stored one.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Transaction, Type,
};

use super::calls_write::IDS_PER_STATEMENT;
use super::dialect::ROWS_PER_STATEMENT;
use super::dialect::{json, to_json};
use super::{CatalogStore, Dialect, SqlStore, StoreError, TaskPage};
use crate::domain::stats::{self, CountEntry, NO_INTENT_LEVEL_KEY};
use crate::domain::task_number::{TaskProgress, dial_status};
use crate::domain::{CallOutcome, IntentLevel, Source, Tag, TagGroup, Task};

/// Catalog entries named by a batch, merged by id: a later non-empty field
/// wins, an empty one never erases.
#[derive(Default)]
pub(super) struct Catalog {
    tags: BTreeMap<String, Tag>,
    groups: BTreeMap<String, TagGroup>,
    members: BTreeSet<(String, String)>,
    levels: BTreeMap<String, IntentLevel>,
    pub(super) tasks: BTreeMap<String, Task>,
}

fn fill(into: &mut String, from: &str) {
    if !from.is_empty() {
        *into = from.to_owned();
    }
}

impl Catalog {
    pub(super) fn add_tag(&mut self, tag: &Tag) {
        let entry = self.tags.entry(tag.id.clone()).or_insert_with(|| Tag {
            id: tag.id.clone(),
            ..Tag::default()
        });
        fill(&mut entry.name, &tag.name);
        fill(&mut entry.color, &tag.color);
        fill(&mut entry.description, &tag.description);
        for group in &tag.groups {
            self.members.insert((tag.id.clone(), group.id.clone()));
            self.add_group(group);
        }
    }

    pub(super) fn add_group(&mut self, group: &TagGroup) {
        let entry = self
            .groups
            .entry(group.id.clone())
            .or_insert_with(|| TagGroup {
                id: group.id.clone(),
                ..TagGroup::default()
            });
        fill(&mut entry.name, &group.name);
        fill(&mut entry.scene_id, &group.scene_id);
    }

    pub(super) fn add_level(&mut self, level: &IntentLevel) {
        let entry = self
            .levels
            .entry(level.id.clone())
            .or_insert_with(|| IntentLevel {
                id: level.id.clone(),
                ..IntentLevel::default()
            });
        fill(&mut entry.name, &level.name);
        fill(&mut entry.alias, &level.alias);
        fill(&mut entry.color, &level.color);
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
    /// Upserts every entry of `catalog` that would change what is stored;
    /// tasks seen only in calls are added, never changed.
    ///
    /// Where writers run concurrently, entries already stored as the upsert
    /// would leave them are not written: an upsert locks its row until
    /// commit even when it changes nothing, and every batch of a campaign
    /// names the same tags, groups and levels, so concurrent batches would
    /// otherwise wait for each other from here to their commit. With one
    /// writer at a time (SQLite) the look-ups would only add work.
    pub(super) async fn write_catalog(
        mut catalog: Catalog,
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
    ) -> Result<(), StoreError> {
        if DB::CONCURRENT_WRITERS {
            Self::drop_stored(
                tx,
                tenant,
                "tag_groups",
                "group_id",
                &["name", "scene_id"],
                &mut catalog.groups,
                |g| vec![&g.name, &g.scene_id],
            )
            .await?;
            Self::drop_stored(
                tx,
                tenant,
                "tags",
                "tag_id",
                &["name", "color", "description"],
                &mut catalog.tags,
                |t| vec![&t.name, &t.color, &t.description],
            )
            .await?;
            Self::drop_stored(
                tx,
                tenant,
                "intent_levels",
                "intent_level_id",
                &["name", "alias", "color"],
                &mut catalog.levels,
                |l| vec![&l.name, &l.alias, &l.color],
            )
            .await?;
        }
        let groups: Vec<TagGroup> = catalog.groups.into_values().collect();
        for chunk in groups.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO tag_groups (tenant_id, group_id, name, scene_id) ",
            );
            qb.push_values(chunk, |mut row, g| {
                row.push_bind(tenant.to_owned())
                    .push_bind(g.id.clone())
                    .push_bind(g.name.clone())
                    .push_bind(g.scene_id.clone());
            });
            qb.push(
                " ON CONFLICT (tenant_id, group_id) DO UPDATE SET \
                 name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE tag_groups.name END, \
                 scene_id = CASE WHEN excluded.scene_id <> '' THEN excluded.scene_id ELSE tag_groups.scene_id END",
            );
            qb.build().execute(&mut **tx).await?;
        }
        let tags: Vec<Tag> = catalog.tags.into_values().collect();
        for chunk in tags.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO tags (tenant_id, tag_id, name, color, description) ",
            );
            qb.push_values(chunk, |mut row, t| {
                row.push_bind(tenant.to_owned())
                    .push_bind(t.id.clone())
                    .push_bind(t.name.clone())
                    .push_bind(t.color.clone())
                    .push_bind(t.description.clone());
            });
            qb.push(
                " ON CONFLICT (tenant_id, tag_id) DO UPDATE SET \
                 name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE tags.name END, \
                 color = CASE WHEN excluded.color <> '' THEN excluded.color ELSE tags.color END, \
                 description = CASE WHEN excluded.description <> '' THEN excluded.description ELSE tags.description END",
            );
            qb.build().execute(&mut **tx).await?;
        }
        let members: Vec<(String, String)> = catalog.members.into_iter().collect();
        for chunk in members.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO tag_group_members (tenant_id, tag_id, group_id) ",
            );
            qb.push_values(chunk, |mut row, (tag_id, group_id)| {
                row.push_bind(tenant.to_owned())
                    .push_bind(tag_id.clone())
                    .push_bind(group_id.clone());
            });
            qb.push(" ON CONFLICT DO NOTHING");
            qb.build().execute(&mut **tx).await?;
        }
        let levels: Vec<IntentLevel> = catalog.levels.into_values().collect();
        for chunk in levels.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO intent_levels (tenant_id, intent_level_id, name, alias, color) ",
            );
            qb.push_values(chunk, |mut row, l| {
                row.push_bind(tenant.to_owned())
                    .push_bind(l.id.clone())
                    .push_bind(l.name.clone())
                    .push_bind(l.alias.clone())
                    .push_bind(l.color.clone());
            });
            qb.push(
                " ON CONFLICT (tenant_id, intent_level_id) DO UPDATE SET \
                 name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE intent_levels.name END, \
                 alias = CASE WHEN excluded.alias <> '' THEN excluded.alias ELSE intent_levels.alias END, \
                 color = CASE WHEN excluded.color <> '' THEN excluded.color ELSE intent_levels.color END",
            );
            qb.build().execute(&mut **tx).await?;
        }
        let tasks: Vec<Task> = catalog.tasks.into_values().collect();
        for chunk in tasks.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO tasks (tenant_id, task_id, parent_task_id, script_id, source) ",
            );
            qb.push_values(chunk, |mut row, t| {
                row.push_bind(tenant.to_owned())
                    .push_bind(t.task_id.clone())
                    .push_bind(t.parent_task_id.clone())
                    .push_bind(t.script_id.clone())
                    .push_bind(t.source.map(|s| i64::from(s.code())));
            });
            qb.push(" ON CONFLICT DO NOTHING");
            qb.build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Removes from `entries` (by id) those `table` already holds with every
    /// non-empty field of the entry: the upsert, which never erases a field
    /// with an empty one, would leave them as they are. `fields` gives an
    /// entry's values of `columns`, in order.
    async fn drop_stored<T>(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        table: &str,
        id_column: &str,
        columns: &[&str],
        entries: &mut BTreeMap<String, T>,
        fields: impl Fn(&T) -> Vec<&String>,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = entries.keys().cloned().collect();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<DB>::new(format!(
                "SELECT {id_column}, {} FROM {table} WHERE tenant_id = ",
                columns.join(", ")
            ));
            qb.push_bind(tenant.to_owned())
                .push(format_args!(" AND {id_column}"));
            DB::push_in(&mut qb, chunk);
            for row in qb.build().fetch_all(&mut **tx).await? {
                let id: String = row.try_get(0)?;
                let Some(entry) = entries.get(&id) else {
                    continue;
                };
                let mut unchanged = true;
                for (n, new) in fields(entry).into_iter().enumerate() {
                    let stored: String = row.try_get(n + 1)?;
                    unchanged &= new.is_empty() || *new == stored;
                }
                if unchanged {
                    entries.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// Upserts one task, inside the caller's transaction.
    pub(super) async fn upsert_task(
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
        task: &Task,
    ) -> Result<(), StoreError> {
        let attributes = to_json(&task.attributes)?;
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO tasks (tenant_id, task_id, name, parent_task_id, script_id, source, \
             create_time, update_time, attributes) ",
        );
        qb.push_values([task], |mut row, t| {
            row.push_bind(tenant.to_owned())
                .push_bind(t.task_id.clone())
                .push_bind(t.name.clone())
                .push_bind(t.parent_task_id.clone())
                .push_bind(t.script_id.clone())
                .push_bind(t.source.map(|s| i64::from(s.code())))
                .push_bind(t.create_time)
                .push_bind(t.update_time)
                .push_bind(attributes.clone());
        });
        qb.push(
            " ON CONFLICT (tenant_id, task_id) DO UPDATE SET \
             name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE tasks.name END, \
             parent_task_id = CASE WHEN excluded.parent_task_id <> '' \
             THEN excluded.parent_task_id ELSE tasks.parent_task_id END, \
             script_id = CASE WHEN excluded.script_id <> '' THEN excluded.script_id ELSE tasks.script_id END, \
             source = COALESCE(excluded.source, tasks.source), \
             create_time = COALESCE(excluded.create_time, tasks.create_time), \
             update_time = COALESCE(excluded.update_time, tasks.update_time), \
             attributes = CASE WHEN excluded.attributes <> '{}' THEN excluded.attributes ELSE tasks.attributes END",
        );
        qb.build().execute(&mut **tx).await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> CatalogStore for SqlStore<DB>
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
    async fn upsert_tasks(&self, tenant: &str, tasks: &[Task]) -> Result<(), StoreError> {
        let mut tx = self.begin(tenant).await?;
        for task in tasks {
            Self::upsert_task(&mut tx, tenant, task).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_tags(
        &self,
        tenant: &str,
        tags: &[Tag],
        groups: &[TagGroup],
    ) -> Result<(), StoreError> {
        let mut catalog = Catalog::default();
        groups.iter().for_each(|g| catalog.add_group(g));
        tags.iter().for_each(|t| catalog.add_tag(t));
        let mut tx = self.begin(tenant).await?;
        Self::write_catalog(catalog, &mut tx, tenant).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_intent_levels(
        &self,
        tenant: &str,
        levels: &[IntentLevel],
    ) -> Result<(), StoreError> {
        let mut catalog = Catalog::default();
        levels.iter().for_each(|l| catalog.add_level(l));
        let mut tx = self.begin(tenant).await?;
        Self::write_catalog(catalog, &mut tx, tenant).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_tasks(
        &self,
        tenant: &str,
        name_contains: Option<&str>,
        page_size: u32,
        after: Option<&str>,
    ) -> Result<TaskPage, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT * FROM tasks WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned());
        if let Some(text) = name_contains {
            // Lower-cased on both sides: ASCII letters match in any case on
            // both backends.
            qb.push(" AND LOWER(name) LIKE ")
                .push_bind(contains_pattern(text))
                .push(" ESCAPE '\\'");
        }
        if let Some(after) = after {
            qb.push(" AND task_id > ").push_bind(after.to_owned());
        }
        qb.push(" ORDER BY task_id LIMIT ")
            .push_bind(i64::from(page_size) + 1);
        let rows = self.read_all(tenant, &mut qb).await?;
        let mut tasks = rows
            .iter()
            .map(Self::row_to_task)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if tasks.len() > page_size as usize {
            tasks.truncate(page_size as usize);
            tasks.last().map(|t| t.task_id.clone())
        } else {
            None
        };
        Ok(TaskPage { tasks, next })
    }

    async fn get_task(&self, tenant: &str, task_id: &str) -> Result<Option<Task>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT * FROM tasks WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND task_id = ")
            .push_bind(task_id.to_owned());
        let rows = self.read_all(tenant, &mut qb).await?;
        rows.first().map(Self::row_to_task).transpose()
    }

    async fn task_progress(&self, tenant: &str, task_id: &str) -> Result<TaskProgress, StoreError> {
        let mut progress = TaskProgress::default();
        // Independent reads on separate reader connections at once.
        let (totals, levels, numbers) = tokio::join!(
            async {
                let mut p = TaskProgress::default();
                self.task_call_totals(tenant, task_id, &mut p)
                    .await
                    .map(|()| p)
            },
            self.task_levels(tenant, task_id),
            self.task_numbers_by_status(tenant, task_id),
        );
        let totals = totals?;
        progress.first_call_time = totals.first_call_time;
        progress.last_call_time = totals.last_call_time;
        (
            progress.calls_total,
            progress.calls_answered,
            progress.calls_by_intent_level,
        ) = levels?;
        progress.numbers_by_status = numbers?;
        progress.numbers_total = progress.numbers_by_status.iter().map(|(_, n)| n).sum();
        Ok(progress)
    }

    async fn list_tags(&self, tenant: &str) -> Result<(Vec<Tag>, Vec<TagGroup>), StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT t.tag_id, t.name, t.color, t.description, g.group_id, \
             g.name AS group_name, g.scene_id FROM tags t \
             LEFT JOIN tag_group_members m ON m.tenant_id = t.tenant_id AND m.tag_id = t.tag_id \
             LEFT JOIN tag_groups g ON g.tenant_id = m.tenant_id AND g.group_id = m.group_id \
             WHERE t.tenant_id = ",
        );
        qb.push_bind(tenant.to_owned())
            .push(" ORDER BY t.tag_id, g.group_id");
        let mut tags: Vec<Tag> = Vec::new();
        for row in self.read_all(tenant, &mut qb).await? {
            let tag_id: String = row.try_get("tag_id")?;
            if tags.last().is_none_or(|t| t.id != tag_id) {
                tags.push(Tag {
                    id: tag_id,
                    name: row.try_get("name")?,
                    color: row.try_get("color")?,
                    description: row.try_get("description")?,
                    groups: Vec::new(),
                });
            }
            if let Some(group_id) = row.try_get::<Option<String>, _>("group_id")?
                && let Some(tag) = tags.last_mut()
            {
                tag.groups.push(TagGroup {
                    id: group_id,
                    name: super::dialect::opt_text(&row, "group_name")?,
                    scene_id: super::dialect::opt_text(&row, "scene_id")?,
                });
            }
        }
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT group_id, name, scene_id FROM tag_groups WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned()).push(" ORDER BY group_id");
        let groups = self
            .read_all(tenant, &mut qb)
            .await?
            .iter()
            .map(|row| -> Result<TagGroup, StoreError> {
                Ok(TagGroup {
                    id: row.try_get("group_id")?,
                    name: row.try_get("name")?,
                    scene_id: row.try_get("scene_id")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((tags, groups))
    }

    async fn list_intent_levels(&self, tenant: &str) -> Result<Vec<IntentLevel>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT intent_level_id, name, alias, color FROM intent_levels WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned())
            .push(" ORDER BY intent_level_id");
        self.read_all(tenant, &mut qb)
            .await?
            .iter()
            .map(|row| {
                Ok(IntentLevel {
                    id: row.try_get("intent_level_id")?,
                    name: row.try_get("name")?,
                    alias: row.try_get("alias")?,
                    color: row.try_get("color")?,
                })
            })
            .collect()
    }
}

/// `LIKE` pattern of a text searched anywhere, matched literally under
/// `ESCAPE '\\'`.
fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
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
    fn row_to_task(row: &DB::Row) -> Result<Task, StoreError> {
        let source: Option<i64> = row.try_get("source")?;
        Ok(Task {
            task_id: row.try_get("task_id")?,
            name: row.try_get("name")?,
            parent_task_id: row.try_get("parent_task_id")?,
            script_id: row.try_get("script_id")?,
            source: source.and_then(|c| i32::try_from(c).ok().and_then(Source::from_code)),
            create_time: row.try_get("create_time")?,
            update_time: row.try_get("update_time")?,
            attributes: json(row, "attributes")?,
        })
    }

    /// The task's calls: totals and answered calls from the kept counts
    /// (`task_call_counts`, by intent level and outcome), first and last
    /// call time as one probe each at the ends of the task's time index.
    async fn task_call_totals(
        &self,
        tenant: &str,
        task_id: &str,
        progress: &mut TaskProgress,
    ) -> Result<(), StoreError> {
        let mut qb =
            QueryBuilder::<DB>::new("SELECT (SELECT MIN(call_time) FROM calls WHERE tenant_id = ");
        qb.push_bind(tenant.to_owned())
            .push(" AND task_id = ")
            .push_bind(task_id.to_owned())
            .push(") AS first_time, (SELECT MAX(call_time) FROM calls WHERE tenant_id = ")
            .push_bind(tenant.to_owned())
            .push(" AND task_id = ")
            .push_bind(task_id.to_owned())
            .push(") AS last_time");
        let rows = self.read_all(tenant, &mut qb).await?;
        if let Some(row) = rows.first() {
            progress.first_call_time = row.try_get("first_time")?;
            progress.last_call_time = row.try_get("last_time")?;
        }
        Ok(())
    }

    /// The task's calls by intent level (with the level's name) and outcome,
    /// from the kept counts: (total, answered, by level).
    async fn task_levels(
        &self,
        tenant: &str,
        task_id: &str,
    ) -> Result<(i64, i64, Vec<CountEntry>), StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT g.intent_level_id AS level, COALESCE(il.name, '') AS name, g.outcome, g.n FROM \
             (SELECT intent_level_id, outcome, CAST(SUM(calls) AS BIGINT) AS n \
             FROM task_call_counts WHERE tenant_id = ",
        );
        qb.push_bind(tenant.to_owned())
            .push(" AND task_id = ")
            .push_bind(task_id.to_owned())
            .push(
                " GROUP BY intent_level_id, outcome) g LEFT JOIN intent_levels il \
                 ON il.tenant_id = ",
            )
            .push_bind(tenant.to_owned())
            .push(" AND il.intent_level_id = g.intent_level_id");
        let answered = i64::from(CallOutcome::Answered.code());
        let (mut total, mut answered_calls) = (0, 0);
        let mut levels: BTreeMap<String, CountEntry> = BTreeMap::new();
        for row in self.read_all(tenant, &mut qb).await? {
            let n: i64 = row.try_get("n")?;
            if n == 0 {
                continue;
            }
            total += n;
            if row.try_get::<i64, _>("outcome")? == answered {
                answered_calls += n;
            }
            let key: String = row.try_get("level")?;
            let name = if key == NO_INTENT_LEVEL_KEY {
                "none".to_owned()
            } else {
                row.try_get("name")?
            };
            levels
                .entry(key.clone())
                .or_insert(CountEntry {
                    key,
                    name,
                    count: 0,
                })
                .count += n;
        }
        let mut entries: Vec<CountEntry> = levels.into_values().collect();
        stats::sort_breakdown(&mut entries);
        Ok((total, answered_calls, entries))
    }

    /// The task's numbers (uploaded, listed by the vendor, or called) by
    /// dial status, counted over the kept states' indexes alone (latest
    /// outcome for called numbers, list status for the others) and mapped
    /// to statuses as ListTaskNumbers maps them.
    async fn task_numbers_by_status(
        &self,
        tenant: &str,
        task_id: &str,
    ) -> Result<Vec<(i32, i64)>, StoreError> {
        let mut by_status: BTreeMap<i32, i64> = BTreeMap::new();
        for (key, unless) in [
            ("last_outcome", "last_outcome IS NOT NULL"),
            ("vendor_status_code", "last_outcome IS NULL"),
        ] {
            let mut qb = QueryBuilder::<DB>::new(format!(
                "SELECT {key} AS k, COUNT(*) AS n FROM task_number_states WHERE tenant_id = "
            ));
            qb.push_bind(tenant.to_owned())
                .push(" AND task_id = ")
                .push_bind(task_id.to_owned())
                .push(format_args!(" AND {unless} GROUP BY {key}"));
            for row in self.read_all(tenant, &mut qb).await? {
                let k = row
                    .try_get::<Option<i64>, _>("k")?
                    .map(|c| i32::try_from(c).unwrap_or(-1));
                let status = if key == "last_outcome" {
                    dial_status(k, None)
                } else {
                    dial_status(None, k)
                };
                *by_status.entry(status).or_default() += row.try_get::<i64, _>("n")?;
            }
        }
        Ok(by_status.into_iter().collect())
    }
}
