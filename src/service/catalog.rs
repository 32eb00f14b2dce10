//! The catalogs read back: tasks (with progress), tags with their groups,
//! intent levels. Page tokens are bound to the tenant and the name filter.

use super::{CallScope, ServiceError};
use crate::domain::limits::{MAX_ID_BYTES, check_required_id, check_text, clip};
use crate::domain::task_number::TaskProgress;
use crate::domain::{
    self, Cursor, IntentLevel, PageToken, ScopeWriter, Tag, TagGroup, Task, Violations,
};

/// A page of tasks with the token of the next one.
pub struct ListedTasks {
    pub tasks: Vec<Task>,
    pub next_page_token: String,
}

impl CallScope {
    /// One page of tasks by id; `name_contains` (blank: every task) narrows
    /// by name.
    pub async fn list_tasks(
        &self,
        tenant: &str,
        name_contains: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<ListedTasks, ServiceError> {
        let name = name_contains.trim();
        let mut v = Violations::new();
        check_text(&mut v, "name_contains", name, MAX_ID_BYTES);
        if !v.is_empty() {
            return Err(v.into());
        }
        let mut scope = ScopeWriter::new(tenant, "tasks");
        scope.text(10, name);
        let scope = scope.finish();
        let after = if page_token.is_empty() {
            None
        } else {
            Some(
                PageToken::decode(page_token, &scope)
                    .map_err(|e| Violations::one("page_token", e.to_string()))?
                    .call_id,
            )
        };
        let page = self
            .store()
            .list_tasks(
                tenant,
                (!name.is_empty()).then_some(name),
                page_size,
                after.as_deref(),
            )
            .await?;
        let next_page_token = page
            .next
            .map(|task_id| {
                // Tasks are keyed by id alone: the sort key is unused.
                let cursor = Cursor {
                    sort_key: 0,
                    call_id: task_id,
                };
                PageToken::encode(&cursor, &scope)
            })
            .unwrap_or_default();
        Ok(ListedTasks {
            tasks: page.tasks,
            next_page_token,
        })
    }

    /// One task with its progress; NOT_FOUND when the tenant has no such task.
    pub async fn get_task(
        &self,
        tenant: &str,
        task_id: &str,
    ) -> Result<(Task, TaskProgress), ServiceError> {
        let task_id = task_id.trim();
        let mut v = Violations::new();
        check_required_id(&mut v, "task_id", task_id);
        if !v.is_empty() {
            return Err(v.into());
        }
        let Some(task) = self.store().get_task(tenant, task_id).await? else {
            return Err(ServiceError::NotFound {
                what: "task",
                id: clip(&domain::without_nul(task_id), MAX_ID_BYTES),
            });
        };
        let progress = self.store().task_progress(tenant, task_id).await?;
        Ok((task, progress))
    }

    pub async fn list_tags(&self, tenant: &str) -> Result<(Vec<Tag>, Vec<TagGroup>), ServiceError> {
        Ok(self.store().list_tags(tenant).await?)
    }

    pub async fn list_intent_levels(&self, tenant: &str) -> Result<Vec<IntentLevel>, ServiceError> {
        Ok(self.store().list_intent_levels(tenant).await?)
    }
}
