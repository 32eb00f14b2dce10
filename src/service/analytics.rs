//! Campaign analytics operations: stats and time series for any filter, and
//! the dialing list of a task. Validation that needs no transport lives here.

use crate::domain::limits::{DEFAULT_TOP_TAGS, MAX_NUMBERS_PER_UPLOAD, MAX_TOP_TAGS, too_many};
use crate::domain::stats::{self, BucketError, CallStats, Granularity, TimeBucket};
use crate::domain::{
    self, CallFilter, Cursor, PageToken, TaskNumber, TaskNumberEntry, TaskNumberQuery,
    TaskNumberUpsert, Violations,
};

use super::{CallScope, ServiceError};

/// What an upload of numbers did, and when.
pub struct TaskNumbersUpserted {
    pub counts: TaskNumberUpsert,
    pub upload_time: domain::UnixMs,
}

/// A page of a dialing list with the token of the next one.
pub struct ListedTaskNumbers {
    pub numbers: Vec<TaskNumber>,
    pub next_page_token: String,
}

/// The `by_tag` length served for a requested one; `Err` when negative.
pub fn top_tags(requested: i32) -> Result<u32, &'static str> {
    match requested {
        n if n < 0 => Err("must not be negative"),
        0 => Ok(DEFAULT_TOP_TAGS),
        n => Ok((n as u32).min(MAX_TOP_TAGS)),
    }
}

impl CallScope {
    pub async fn call_stats(
        &self,
        tenant: &str,
        filter: &CallFilter,
        top_tags: u32,
    ) -> Result<CallStats, ServiceError> {
        Ok(self.store.call_stats(tenant, filter, top_tags).await?)
    }

    /// Every bucket of the filter's window in `time_zone` (IANA; empty is
    /// the default zone). The database sums calls per slot, a width that
    /// divides every bucket; the slots are folded into buckets here.
    pub async fn call_time_series(
        &self,
        tenant: &str,
        filter: &CallFilter,
        granularity: Granularity,
        time_zone: &str,
    ) -> Result<Vec<TimeBucket>, ServiceError> {
        let mut v = Violations::new();
        let tz = stats::time_zone(time_zone)
            .map_err(|e| v.add("time_zone", e.to_string()))
            .ok();
        let (start, end) = (filter.window.start, filter.window.end);
        if start.is_none() {
            v.add("filter.start_time", "is required for a time series");
        }
        if end.is_none() {
            v.add("filter.end_time", "is required for a time series");
        }
        let (Some(tz), Some(start), Some(end)) = (tz, start, end) else {
            return Err(v.into());
        };
        let field = match granularity {
            Granularity::Hour => "filter.start_time",
            Granularity::Day => "granularity",
        };
        let bounds = stats::bucket_bounds(start, end, granularity, &tz).map_err(|e| match e {
            BucketError::TooMany => Violations::one(field, e.to_string()),
            BucketError::UnknownZone => Violations::one("time_zone", e.to_string()),
            BucketError::OutOfRange => Violations::one("filter.start_time", e.to_string()),
        })?;
        let slot = stats::slot_width(&bounds);
        let slots = self
            .store
            .call_time_slots(tenant, filter, bounds[0], slot)
            .await?;
        Ok(stats::merge_slots(&bounds, &slots))
    }

    /// Adds or updates numbers of a task's dialing list.
    pub async fn upsert_task_numbers(
        &self,
        tenant: &str,
        task_id: &str,
        entries: &[TaskNumberEntry],
    ) -> Result<TaskNumbersUpserted, ServiceError> {
        too_many("numbers", entries.len(), MAX_NUMBERS_PER_UPLOAD)?;
        let now = domain::now_ms();
        let counts = self
            .retrying("upsert_task_numbers", || {
                self.store
                    .upsert_task_numbers(tenant, task_id, entries, now)
            })
            .await?;
        Ok(TaskNumbersUpserted {
            counts,
            upload_time: now,
        })
    }

    /// One page of a dialing list; `page_token` is checked against the query.
    pub async fn list_task_numbers(
        &self,
        tenant: &str,
        mut query: TaskNumberQuery,
        page_token: &str,
    ) -> Result<ListedTaskNumbers, ServiceError> {
        let scope = query.scope(tenant);
        if !page_token.is_empty() {
            let cursor = PageToken::decode(page_token, &scope)
                .map_err(|e| Violations::one("page_token", e.to_string()))?;
            query.after = Some(cursor.call_id);
        }
        let page = self.store.list_task_numbers(tenant, &query).await?;
        Ok(ListedTaskNumbers {
            numbers: page.numbers,
            next_page_token: page
                .next
                .map(|phone| {
                    // The phone rides in the cursor's id slot; the sort key is unused.
                    PageToken::encode(
                        &Cursor {
                            sort_key: 0,
                            call_id: phone,
                        },
                        &scope,
                    )
                })
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_tags_defaults_and_caps() {
        assert_eq!(top_tags(0), Ok(20));
        assert_eq!(top_tags(5), Ok(5));
        assert_eq!(top_tags(100_000), Ok(1000));
        assert!(top_tags(-1).is_err());
    }
}
