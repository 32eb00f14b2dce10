//! The tenant's catalogs: tasks, tags with their groups, and intent levels,
//! written from catalog requests and from the calls that name them. A field
//! left empty never erases a stored one.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Transaction, Type};

use super::calls_write::ROWS_PER_STATEMENT;
use super::dialect::to_json;
use super::{CatalogStore, Dialect, SqlStore, StoreError};
use crate::domain::{IntentLevel, Tag, TagGroup, Task};

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
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    /// Upserts every entry of `catalog`; tasks seen only in calls are added, never changed.
    pub(super) async fn write_catalog(
        catalog: Catalog,
        tx: &mut Transaction<'static, DB>,
        tenant: &str,
    ) -> Result<(), StoreError> {
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
}
