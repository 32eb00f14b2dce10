//! Each RPC's request into what its service method takes, and its answer
//! back into the response message. Requests are checked for size before
//! their entries are converted, so an oversized one costs nothing.

use crate::domain::limits::{
    MAX_CALLS_PER_REQUEST, MAX_CATALOG_ITEMS, MAX_FILTER_VALUES, MAX_NUMBERS_PER_UPLOAD,
    MAX_RECORDS_PER_REQUEST, too_many,
};
use crate::domain::stats::{self, Granularity};
use crate::domain::{
    self, CallFilter, CallQuery, Location, Region, Source, TaskNumber, TaskNumberEntry,
    TaskNumberQuery, UpsertOutcome, UpsertResult, Violations, page_size,
};
use crate::proto;
use crate::service::analytics::{ListedTaskNumbers, top_tags};
use crate::service::ingest::{RecordOutcome as ImportOutcome, RecordResult};
use crate::service::{ListedCalls, analytics::TaskNumbersUpserted};

use super::{
    attributes, call_from_proto, call_to_proto, filter_from_proto, intent_level_from_proto,
    order_from_proto, phone, tag_from_proto, tag_group_from_proto, task_from_proto, to_timestamp,
};

/// Converts every item of a repeated field, naming violations `{field}[i]`.
fn convert_all<P, D>(
    items: &[P],
    field: &str,
    max: usize,
    convert: impl Fn(&P, &str, &mut Violations) -> D,
) -> Result<Vec<D>, Violations> {
    too_many(field, items.len(), max)?;
    let mut v = Violations::new();
    let converted = items
        .iter()
        .enumerate()
        .map(|(i, item)| convert(item, &format!("{field}[{i}]"), &mut v))
        .collect();
    v.into_result(converted)
}

/// A vendor source from its wire number; unknown and unspecified refused.
fn vendor_source(code: i32, field: &str) -> Result<Source, Violations> {
    match Source::from_code(code) {
        Some(source) if source != Source::Api => Ok(source),
        _ => Err(Violations::one(
            field,
            "must be SOURCE_SMARTIVR, SOURCE_LAAFFIC or SOURCE_ALIBABA_LVMS",
        )),
    }
}

fn served_page_size(requested: i32, v: &mut Violations) -> u32 {
    page_size(requested).unwrap_or_else(|e| {
        v.add("page_size", e);
        0
    })
}

// IngestService

pub fn upsert_calls_request(
    req: &proto::UpsertCallsRequest,
    region: Region,
) -> Result<Vec<domain::Call>, Violations> {
    convert_all(&req.calls, "calls", MAX_CALLS_PER_REQUEST, |c, path, v| {
        call_from_proto(c, path, region, v)
    })
}

pub fn upsert_calls_response(results: Vec<UpsertResult>) -> proto::UpsertCallsResponse {
    let mut response = proto::UpsertCallsResponse::default();
    for result in results {
        let outcome = match result.outcome {
            UpsertOutcome::Inserted => {
                response.inserted += 1;
                proto::RecordOutcome::Inserted
            }
            UpsertOutcome::Updated => {
                response.updated += 1;
                proto::RecordOutcome::Updated
            }
            UpsertOutcome::Unchanged => {
                response.unchanged += 1;
                proto::RecordOutcome::Unchanged
            }
            UpsertOutcome::Erased => {
                response.erased += 1;
                proto::RecordOutcome::Erased
            }
        };
        response.call_ids.push(result.call_id);
        response.outcomes.push(outcome.into());
    }
    response
}

/// ImportRecords: the source, each record's bytes, the task of number lists.
pub struct ImportRequest<'a> {
    pub source: Source,
    pub records: Vec<&'a [u8]>,
    pub task_id: &'a str,
}

pub fn import_records_request(
    req: &proto::ImportRecordsRequest,
) -> Result<ImportRequest<'_>, Violations> {
    too_many("records", req.records.len(), MAX_RECORDS_PER_REQUEST)?;
    Ok(ImportRequest {
        source: vendor_source(req.source, "source")?,
        records: req.records.iter().map(|r| r.as_bytes()).collect(),
        task_id: req.task_id.trim(),
    })
}

pub fn import_records_response(results: Vec<RecordResult>) -> proto::ImportRecordsResponse {
    let mut response = proto::ImportRecordsResponse::default();
    for (index, result) in results.into_iter().enumerate() {
        let outcome = match result.outcome {
            ImportOutcome::Inserted => {
                response.inserted += 1;
                proto::RecordOutcome::Inserted
            }
            ImportOutcome::Updated => {
                response.updated += 1;
                proto::RecordOutcome::Updated
            }
            ImportOutcome::Unchanged => {
                response.unchanged += 1;
                proto::RecordOutcome::Unchanged
            }
            ImportOutcome::Rejected => {
                response.rejected += 1;
                proto::RecordOutcome::Rejected
            }
            ImportOutcome::Erased => {
                response.erased += 1;
                proto::RecordOutcome::Erased
            }
        };
        response.results.push(proto::ImportRecordResult {
            index: index as i32,
            outcome: outcome.into(),
            call_ids: result.call_ids,
            reason: result.reason,
            rejected_record_id: result.rejected_id.unwrap_or_default(),
        });
    }
    response
}

/// ListRejectedRecords: the source filter and the served page size.
pub fn list_rejected_request(
    req: &proto::ListRejectedRecordsRequest,
) -> Result<(Option<Source>, u32), Violations> {
    let mut v = Violations::new();
    let source = match req.source {
        0 => None,
        code => vendor_source(code, "source").map_err(|e| v.extend(e)).ok(),
    };
    let size = served_page_size(req.page_size, &mut v);
    v.into_result((source, size))
}

pub fn list_rejected_response(
    (records, next_page_token): (Vec<domain::RejectedRecord>, String),
) -> proto::ListRejectedRecordsResponse {
    proto::ListRejectedRecordsResponse {
        records: records
            .into_iter()
            .map(|r| proto::RejectedRecord {
                id: r.id,
                source: r.source.map_or(0, |s| s.code()),
                reason: r.reason,
                payload: String::from_utf8_lossy(&r.payload).into_owned(),
                receive_time: Some(to_timestamp(r.receive_time)),
                channel: r.channel,
                payload_size: r.payload_size,
            })
            .collect(),
        next_page_token,
    }
}

pub fn upsert_tasks_request(
    req: &proto::UpsertTasksRequest,
) -> Result<Vec<domain::Task>, Violations> {
    convert_all(&req.tasks, "tasks", MAX_CATALOG_ITEMS, task_from_proto)
}

pub fn upsert_tags_request(
    req: &proto::UpsertTagsRequest,
) -> Result<(Vec<domain::Tag>, Vec<domain::TagGroup>), Violations> {
    let tags = convert_all(&req.tags, "tags", MAX_CATALOG_ITEMS, tag_from_proto);
    let groups = convert_all(
        &req.tag_groups,
        "tag_groups",
        MAX_CATALOG_ITEMS,
        tag_group_from_proto,
    );
    match (tags, groups) {
        (Ok(tags), Ok(groups)) => Ok((tags, groups)),
        (tags, groups) => {
            let mut v = Violations::new();
            v.extend(tags.err().unwrap_or_default());
            v.extend(groups.err().unwrap_or_default());
            Err(v)
        }
    }
}

pub fn upsert_intent_levels_request(
    req: &proto::UpsertIntentLevelsRequest,
) -> Result<Vec<domain::IntentLevel>, Violations> {
    convert_all(
        &req.intent_levels,
        "intent_levels",
        MAX_CATALOG_ITEMS,
        intent_level_from_proto,
    )
}

/// UpsertTaskNumbers: the task and its numbers.
pub fn upsert_task_numbers_request(
    req: &proto::UpsertTaskNumbersRequest,
    region: Region,
) -> Result<(String, Vec<TaskNumberEntry>), Violations> {
    let entries = convert_all(
        &req.numbers,
        "numbers",
        MAX_NUMBERS_PER_UPLOAD,
        |n, path, v| {
            let entry = TaskNumberEntry {
                phone: phone(&n.phone, &format!("{path}.phone"), region, v),
                phone_raw: n.phone.clone(),
                name: n.name.clone(),
                attributes: attributes(&n.attributes),
                location: Location::default(),
                status_code: None,
            };
            v.nest(path, entry.violations());
            entry
        },
    );
    let mut v = Violations::new();
    domain::limits::check_required_id(&mut v, "task_id", &req.task_id);
    match entries {
        Ok(entries) => v.into_result((req.task_id.trim().to_owned(), entries)),
        Err(e) => {
            v.extend(e);
            Err(v)
        }
    }
}

pub fn upsert_task_numbers_response(
    result: TaskNumbersUpserted,
) -> proto::UpsertTaskNumbersResponse {
    proto::UpsertTaskNumbersResponse {
        inserted: result.counts.inserted as i32,
        updated: result.counts.updated as i32,
        upload_time: Some(to_timestamp(result.upload_time)),
    }
}

// CallService

pub fn list_calls_request(
    req: &proto::ListCallsRequest,
    region: Region,
) -> Result<CallQuery, Violations> {
    let mut v = Violations::new();
    let filter = filter_from_proto(req.filter.as_ref(), "filter", region, &mut v);
    let order = order_from_proto(req.order_by, "order_by", &mut v);
    let page_size = served_page_size(req.page_size, &mut v);
    v.into_result(CallQuery {
        filter,
        order,
        page_size,
        after: None,
        include_total: req.include_total,
    })
}

/// The filter of ExportCalls or WatchCalls, checked as ListCalls checks its.
pub fn stream_filter(
    filter: Option<&proto::CallFilter>,
    region: Region,
) -> Result<domain::CallFilter, Violations> {
    let mut v = Violations::new();
    let filter = filter_from_proto(filter, "filter", region, &mut v);
    v.into_result(filter)
}

pub fn list_calls_response(page: ListedCalls) -> proto::ListCallsResponse {
    proto::ListCallsResponse {
        calls: page.calls.into_iter().map(call_to_proto).collect(),
        next_page_token: page.next_page_token,
        total_size: page.total.unwrap_or(0),
    }
}

pub fn list_task_numbers_request(
    req: &proto::ListTaskNumbersRequest,
    region: Region,
) -> Result<TaskNumberQuery, Violations> {
    let mut v = Violations::new();
    // Over the limit, the list is named once rather than each bad value.
    too_many("statuses", req.statuses.len(), MAX_FILTER_VALUES)?;
    let statuses = req
        .statuses
        .iter()
        .enumerate()
        .filter_map(|(i, code)| match proto::NumberStatus::try_from(*code) {
            // The enum value is the smartivr code plus one.
            Ok(s) if s != proto::NumberStatus::Unspecified => Some(*code - 1),
            _ => {
                v.add(
                    format!("statuses[{i}]"),
                    format!("unknown enum value {code}"),
                );
                None
            }
        })
        .collect();
    let query = TaskNumberQuery {
        task_id: req.task_id.trim().to_owned(),
        statuses,
        phone: (!req.phone.trim().is_empty()).then(|| phone(&req.phone, "phone", region, &mut v)),
        carriers: req.carriers.clone(),
        include_call_history: req.include_call_history,
        page_size: served_page_size(req.page_size, &mut v),
        after: None,
    };
    v.nest("", query.violations());
    v.into_result(query)
}

pub fn list_task_numbers_response(page: ListedTaskNumbers) -> proto::ListTaskNumbersResponse {
    proto::ListTaskNumbersResponse {
        numbers: page.numbers.into_iter().map(number_to_proto).collect(),
        next_page_token: page.next_page_token,
    }
}

fn number_to_proto(n: TaskNumber) -> proto::TaskNumber {
    let l = n.location;
    proto::TaskNumber {
        phone: n.phone,
        status: n.status_code + 1,
        status_code: n.status_code,
        attempts: i32::try_from(n.attempts).unwrap_or(i32::MAX),
        last_call_time: n.last_call_time.map(to_timestamp),
        location: Some(proto::Location {
            province: l.province,
            city: l.city,
            area_code: l.area_code,
            carrier: l.carrier,
            region: l.region,
            post_code: l.post_code,
        }),
        name: n.name,
        attributes: n.attributes.into_iter().collect(),
        call_history: n.call_history.into_iter().map(call_to_proto).collect(),
    }
}

// AnalyticsService

pub fn call_stats_request(
    req: &proto::GetCallStatsRequest,
    region: Region,
) -> Result<(CallFilter, u32), Violations> {
    let mut v = Violations::new();
    let filter = filter_from_proto(req.filter.as_ref(), "filter", region, &mut v);
    let top = top_tags(req.top_tags).unwrap_or_else(|e| {
        v.add("top_tags", e);
        0
    });
    v.into_result((filter, top))
}

/// GetCallTimeSeries: the filter, the granularity, the time zone.
pub fn time_series_request(
    req: &proto::GetCallTimeSeriesRequest,
    region: Region,
) -> Result<(CallFilter, Granularity, &str), Violations> {
    let mut v = Violations::new();
    let filter = filter_from_proto(req.filter.as_ref(), "filter", region, &mut v);
    // GRANULARITY_UNSPECIFIED is served as days.
    let granularity = match proto::Granularity::try_from(req.granularity) {
        Ok(proto::Granularity::Hour) => Granularity::Hour,
        Ok(proto::Granularity::Day | proto::Granularity::Unspecified) => Granularity::Day,
        Err(_) => {
            v.add(
                "granularity",
                format!("unknown enum value {}", req.granularity),
            );
            Granularity::Day
        }
    };
    domain::limits::check_text(
        &mut v,
        "time_zone",
        &req.time_zone,
        domain::limits::MAX_ID_BYTES,
    );
    v.into_result((filter, granularity, req.time_zone.as_str()))
}

fn entries(list: Vec<stats::CountEntry>) -> Vec<proto::CountEntry> {
    list.into_iter()
        .map(|e| proto::CountEntry {
            key: e.key,
            name: e.name,
            count: e.count,
        })
        .collect()
}

pub fn call_stats_response(s: stats::CallStats) -> proto::CallStats {
    proto::CallStats {
        total_calls: s.total_calls,
        answered_calls: s.answered_calls,
        answer_rate: s.answer_rate,
        talk_ms_total: s.talk_ms_total,
        talk_ms_avg: s.talk_ms_avg,
        talk_ms_p50: s.talk_ms_p50,
        talk_ms_p90: s.talk_ms_p90,
        ring_ms_avg: s.ring_ms_avg,
        rounds_avg: s.rounds_avg,
        score_avg: s.score_avg,
        by_outcome: entries(s.by_outcome),
        by_intent_level: entries(s.by_intent_level),
        by_tag: entries(s.by_tag),
        by_hangup_party: entries(s.by_hangup_party),
        by_carrier: entries(s.by_carrier),
        by_province: entries(s.by_province),
        cost_totals: s
            .cost_totals
            .into_iter()
            .map(|m| proto::MoneyTotal {
                currency: m.currency,
                amount: m.amount,
            })
            .collect(),
    }
}

pub fn time_series_response(buckets: Vec<stats::TimeBucket>) -> proto::GetCallTimeSeriesResponse {
    proto::GetCallTimeSeriesResponse {
        buckets: buckets
            .into_iter()
            .map(|b| proto::TimeBucket {
                start_time: Some(to_timestamp(b.start)),
                total_calls: b.total_calls,
                answered_calls: b.answered_calls,
                answer_rate: b.answer_rate,
                talk_ms_total: b.talk_ms_total,
                talk_ms_avg: b.talk_ms_avg,
                score_avg: b.score_avg,
            })
            .collect(),
    }
}
