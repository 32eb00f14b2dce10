//! CatalogService requests and answers.

use crate::domain::task_number::TaskProgress;
use crate::domain::{self, Violations};
use crate::proto;
use crate::service::catalog::ListedTasks;

use super::{tag_group_to_proto, tag_to_proto, to_timestamp};

/// ListTasks: the served page size.
pub fn list_tasks_request(req: &proto::ListTasksRequest) -> Result<u32, Violations> {
    domain::page_size(req.page_size).map_err(|e| Violations::one("page_size", e))
}

pub fn task_to_proto(t: domain::Task, progress: Option<TaskProgress>) -> proto::Task {
    let vendor = t.vendor_fields();
    proto::Task {
        task_id: t.task_id,
        name: t.name,
        parent_task_id: t.parent_task_id,
        script_id: t.script_id,
        source: t.source.map_or(0, |s| s.code()),
        create_time: t.create_time.map(to_timestamp),
        update_time: t.update_time.map(to_timestamp),
        attributes: t.attributes.into_iter().collect(),
        status: vendor.status,
        concurrency: vendor.concurrency,
        caller: vendor.caller,
        script_group: vendor.script_group,
        progress: progress.map(progress_to_proto),
    }
}

fn progress_to_proto(p: TaskProgress) -> proto::TaskProgress {
    let answer_rate = p.answer_rate();
    proto::TaskProgress {
        numbers_total: p.numbers_total,
        numbers_by_status: p
            .numbers_by_status
            .into_iter()
            .map(|(code, count)| {
                // The wire value is the smartivr code plus one.
                let name = proto::NumberStatus::try_from(code + 1)
                    .map_or("NUMBER_STATUS_UNSPECIFIED", |s| s.as_str_name());
                proto::TaskCount {
                    key: name.to_owned(),
                    name: code.to_string(),
                    count,
                }
            })
            .collect(),
        calls_total: p.calls_total,
        calls_answered: p.calls_answered,
        answer_rate,
        calls_by_intent_level: p
            .calls_by_intent_level
            .into_iter()
            .map(|e| proto::TaskCount {
                key: e.key,
                name: e.name,
                count: e.count,
            })
            .collect(),
        first_call_time: p.first_call_time.map(to_timestamp),
        last_call_time: p.last_call_time.map(to_timestamp),
    }
}

pub fn list_tasks_response(page: ListedTasks) -> proto::ListTasksResponse {
    proto::ListTasksResponse {
        tasks: page
            .tasks
            .into_iter()
            .map(|t| task_to_proto(t, None))
            .collect(),
        next_page_token: page.next_page_token,
    }
}

pub fn list_tags_response(
    (tags, groups): (Vec<domain::Tag>, Vec<domain::TagGroup>),
) -> proto::ListTagsResponse {
    proto::ListTagsResponse {
        tags: tags.into_iter().map(tag_to_proto).collect(),
        tag_groups: groups.into_iter().map(tag_group_to_proto).collect(),
    }
}

pub fn list_intent_levels_response(
    levels: Vec<domain::IntentLevel>,
) -> proto::ListIntentLevelsResponse {
    proto::ListIntentLevelsResponse {
        intent_levels: levels
            .into_iter()
            .map(|l| proto::IntentLevel {
                id: l.id,
                name: l.name,
                alias: l.alias,
                color: l.color,
            })
            .collect(),
    }
}
