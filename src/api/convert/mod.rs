//! Proto ↔ domain conversions. Proto → domain maps each field, records what
//! only the wire can get wrong (unknown enum numbers, bad timestamps, phone
//! numbers that do not parse), then calls the domain type's validator; every
//! violation is named by its path in the request. `requests` does the same
//! for each RPC's request and response.

mod catalog;
mod events;
mod requests;

pub use catalog::*;
pub use events::*;
pub use requests::*;

use std::collections::BTreeMap;

use crate::proto::Timestamp;

use crate::domain::carrier::carrier_code;
use crate::domain::limits::{MAX_FILTER_VALUES, check_count};
use crate::domain::{
    self, CallFilter, CallOrder, CallOutcome, Gender, Party, Region, ScoreRange, Source, TagMatch,
    TimeField, TimeWindow, TranscriptQuery, TurnKind, UnixMs, Violations, normalize_phone,
    phone_digits,
};
use crate::proto;

/// Earliest and latest accepted times: years 1 and 9999.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// A timestamp in milliseconds, or a violation at `path`.
pub fn timestamp_ms(ts: &Timestamp, path: &str, v: &mut Violations) -> Option<UnixMs> {
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) || !(0..1_000_000_000).contains(&ts.nanos)
    {
        v.add(
            path,
            "is not a valid timestamp (years 1-9999, nanos 0-999999999)",
        );
        return None;
    }
    Some(ts.seconds * 1000 + i64::from(ts.nanos / 1_000_000))
}

fn opt_timestamp(ts: Option<&Timestamp>, path: &str, v: &mut Violations) -> Option<UnixMs> {
    ts.and_then(|t| timestamp_ms(t, path, v))
}

pub fn to_timestamp(ms: UnixMs) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn enum_value<T>(
    code: i32,
    path: &str,
    v: &mut Violations,
    from: fn(i32) -> Option<T>,
) -> Option<T> {
    let value = from(code);
    if value.is_none() {
        v.add(path, format!("unknown enum value {code}"));
    }
    value
}

fn attributes(map: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, val)| (k.clone(), val.clone()))
        .collect()
}

/// A phone number normalised, or a violation at `path`; blank stays blank
/// (the domain validator says whether it is required).
fn phone(text: &str, path: &str, region: Region, v: &mut Violations) -> String {
    if text.trim().is_empty() {
        return String::new();
    }
    normalize_phone(text, region).unwrap_or_else(|e| {
        v.add(path, e.to_string());
        String::new()
    })
}

fn tag_group(g: &proto::TagGroup) -> domain::TagGroup {
    domain::TagGroup {
        id: g.id.trim().to_owned(),
        name: g.name.clone(),
        scene_id: g.scene_id.clone(),
    }
}

fn tag(t: &proto::Tag) -> domain::Tag {
    domain::Tag {
        id: t.id.trim().to_owned(),
        name: t.name.clone(),
        color: t.color.clone(),
        description: t.description.clone(),
        groups: t.groups.iter().map(tag_group).collect(),
    }
}

fn intent_level(l: &proto::IntentLevel) -> domain::IntentLevel {
    domain::IntentLevel {
        id: l.id.trim().to_owned(),
        name: l.name.clone(),
        alias: l.alias.clone(),
        color: l.color.clone(),
    }
}

/// A tag group of UpsertTags, validated.
pub fn tag_group_from_proto(
    g: &proto::TagGroup,
    path: &str,
    v: &mut Violations,
) -> domain::TagGroup {
    let group = tag_group(g);
    v.nest(path, group.violations());
    group
}

/// A tag of UpsertTags, validated.
pub fn tag_from_proto(t: &proto::Tag, path: &str, v: &mut Violations) -> domain::Tag {
    let tag = tag(t);
    v.nest(path, tag.violations());
    tag
}

/// An intent level of UpsertIntentLevels, validated.
pub fn intent_level_from_proto(
    l: &proto::IntentLevel,
    path: &str,
    v: &mut Violations,
) -> domain::IntentLevel {
    let level = intent_level(l);
    v.nest(path, level.violations());
    level
}

/// A typed call from UpsertCalls, validated and normalised.
pub fn call_from_proto(
    c: &proto::Call,
    path: &str,
    region: Region,
    v: &mut Violations,
) -> domain::Call {
    let p = |field: &str| format!("{path}.{field}");
    let source = if c.source == 0 {
        Source::Api
    } else {
        enum_value(c.source, &p("source"), v, Source::from_code).unwrap_or(Source::Api)
    };
    let call_time = match &c.call_time {
        None => {
            v.add(p("call_time"), "is required");
            0
        }
        Some(ts) => timestamp_ms(ts, &p("call_time"), v).unwrap_or(0),
    };
    let location = c.location.clone().unwrap_or_default();
    let billing = c.billing.clone().unwrap_or_default();
    let call = domain::Call {
        source,
        external_id: c.external_id.trim().to_owned(),
        task_id: c.task_id.trim().to_owned(),
        parent_task_id: c.parent_task_id.clone(),
        script_id: c.script_id.clone(),
        callee: phone(&c.callee, &p("callee"), region, v),
        callee_raw: c.callee.clone(),
        caller: phone(&c.caller, &p("caller"), region, v),
        caller_raw: c.caller.clone(),
        submit_time: opt_timestamp(c.submit_time.as_ref(), &p("submit_time"), v),
        call_time,
        ring_time: opt_timestamp(c.ring_time.as_ref(), &p("ring_time"), v),
        answer_time: opt_timestamp(c.answer_time.as_ref(), &p("answer_time"), v),
        hangup_time: opt_timestamp(c.hangup_time.as_ref(), &p("hangup_time"), v),
        ring_ms: c.ring_ms,
        talk_ms: c.talk_ms,
        total_ms: c.total_ms,
        billed_ms: c.billed_ms,
        outcome: enum_value(c.outcome, &p("outcome"), v, CallOutcome::from_code)
            .unwrap_or(CallOutcome::Unspecified),
        vendor_status: c.vendor_status.clone(),
        hangup_cause: c.hangup_cause.clone(),
        sip_code: c.sip_code.clone(),
        hangup_by: enum_value(c.hangup_by, &p("hangup_by"), v, Party::from_code)
            .unwrap_or(Party::Unspecified),
        score: c.score,
        intent_level: c
            .intent_level
            .as_ref()
            .filter(|l| !(l.id.is_empty() && l.name.is_empty() && l.alias.is_empty()))
            .map(intent_level),
        rounds: c.rounds,
        tags: c.tags.iter().map(tag).collect(),
        tag_groups: c.tag_groups.iter().map(tag_group).collect(),
        recording_url: c.recording_url.clone(),
        gender: enum_value(c.gender, &p("gender"), v, Gender::from_code)
            .unwrap_or(Gender::Unspecified),
        location: domain::Location {
            province: location.province,
            city: location.city,
            area_code: location.area_code,
            carrier: location.carrier,
            region: location.region,
            post_code: location.post_code,
        },
        billing: domain::Billing {
            rate: billing.rate,
            base_cost: billing.base_cost,
            cost: billing.cost,
            currency: billing.currency,
            settle_rate: billing.settle_rate,
            settle_cost: billing.settle_cost,
            quote_exchange: billing.quote_exchange,
            bill_period: billing.bill_period,
            base_cost_currency: billing.base_cost_currency,
            settle_currency: billing.settle_currency,
        },
        dtmf: c.dtmf.clone(),
        recall_count: c.recall_count,
        recall_of: c.recall_of.clone(),
        customer_name: c.customer_name.clone(),
        line_id: c.line_id.clone(),
        attributes: attributes(&c.attributes),
        // Mapped only within the limit: the validator names the excess once.
        turns: c
            .turns
            .iter()
            .take(domain::limits::MAX_TURNS + 1)
            .enumerate()
            .map(|(i, t)| turn_from_proto(t, &p(&format!("turns[{i}]")), v))
            .collect(),
        update_time: opt_timestamp(c.update_time.as_ref(), &p("update_time"), v),
        // Output only: findings of callscope's adapters about vendor records.
        quality_flags: Vec::new(),
    };
    v.nest(path, call.violations());
    call
}

fn turn_from_proto(
    t: &proto::DialogueTurn,
    path: &str,
    v: &mut Violations,
) -> domain::DialogueTurn {
    let p = |field: &str| format!("{path}.{field}");
    let kind = if t.kind == 0 {
        if t.customer_text.is_empty() {
            TurnKind::RobotPrompt
        } else {
            TurnKind::CustomerUtterance
        }
    } else {
        enum_value(t.kind, &p("kind"), v, TurnKind::from_code).unwrap_or(TurnKind::RobotPrompt)
    };
    domain::DialogueTurn {
        sequence: t.sequence,
        kind,
        customer_text: t.customer_text.clone(),
        robot_text: t.robot_text.clone(),
        node_id: t.node_id.clone(),
        node_name: t.node_name.clone(),
        keyword: t.keyword.clone(),
        score: t.score,
        speak_ms: t.speak_ms,
        play_ms: t.play_ms,
        asr_latency_ms: t.asr_latency_ms,
        tags: t.tags.iter().map(tag).collect(),
        time: opt_timestamp(t.time.as_ref(), &p("time"), v),
        after_transfer: t.after_transfer,
        turn_id: t.turn_id.clone(),
        attributes: attributes(&t.attributes),
    }
}

/// A task of UpsertTasks, validated.
pub fn task_from_proto(t: &proto::Task, path: &str, v: &mut Violations) -> domain::Task {
    let p = |field: &str| format!("{path}.{field}");
    let task = domain::Task {
        task_id: t.task_id.trim().to_owned(),
        name: t.name.clone(),
        parent_task_id: t.parent_task_id.clone(),
        script_id: t.script_id.clone(),
        source: if t.source == 0 {
            None
        } else {
            enum_value(t.source, &p("source"), v, Source::from_code)
        },
        create_time: opt_timestamp(t.create_time.as_ref(), &p("create_time"), v),
        update_time: opt_timestamp(t.update_time.as_ref(), &p("update_time"), v),
        attributes: attributes(&t.attributes),
    };
    v.nest(path, task.violations());
    task
}

fn id_list(values: &[String]) -> Vec<String> {
    values.iter().map(|value| value.trim().to_owned()).collect()
}

fn enum_list<T>(
    codes: &[i32],
    path: &str,
    v: &mut Violations,
    from: fn(i32) -> Option<T>,
) -> Vec<T> {
    // Over the limit, the list is named once rather than each bad value.
    if codes.len() > MAX_FILTER_VALUES {
        check_count(v, path, codes.len(), MAX_FILTER_VALUES);
        return Vec::new();
    }
    codes
        .iter()
        .enumerate()
        .filter_map(|(i, code)| {
            if *code == 0 {
                v.add(format!("{path}[{i}]"), "must not be unspecified");
                return None;
            }
            enum_value(*code, &format!("{path}[{i}]"), v, from)
        })
        .collect()
}

/// A `CallFilter` validated; every violation is named `{path}.<field>`.
pub fn filter_from_proto(
    f: Option<&proto::CallFilter>,
    path: &str,
    region: Region,
    v: &mut Violations,
) -> CallFilter {
    let Some(f) = f else {
        return CallFilter::default();
    };
    let p = |field: &str| format!("{path}.{field}");
    let phone = (!f.phone.trim().is_empty()).then(|| {
        normalize_phone(&f.phone, region).unwrap_or_else(|e| {
            v.add(p("phone"), e.to_string());
            String::new()
        })
    });
    let tag_match = match f.tag_match {
        0 | 1 => TagMatch::Any,
        2 => TagMatch::All,
        other => {
            v.add(p("tag_match"), format!("unknown enum value {other}"));
            TagMatch::Any
        }
    };
    let time_field = match f.time_field {
        0 | 1 => TimeField::CallTime,
        2 => TimeField::AnswerTime,
        3 => TimeField::HangupTime,
        4 => TimeField::SyncTime,
        other => {
            v.add(p("time_field"), format!("unknown enum value {other}"));
            TimeField::CallTime
        }
    };
    let start = opt_timestamp(f.start_time.as_ref(), &p("start_time"), v);
    let end = opt_timestamp(f.end_time.as_ref(), &p("end_time"), v);
    let window = TimeWindow::new(time_field, start, end).unwrap_or_else(|e| {
        v.add(p("end_time"), e);
        TimeWindow::default()
    });
    let optional_party = |code: i32, field: &str, v: &mut Violations| match code {
        0 => None,
        code => enum_value(code, &p(field), v, Party::from_code),
    };
    let hangup_by = optional_party(f.hangup_by, "hangup_by", v);
    let transcript_party = optional_party(f.transcript_party, "transcript_party", v);
    let text = f.transcript_contains.trim();
    let filter = CallFilter {
        task_ids: id_list(&f.task_ids),
        phone,
        phone_contains: (!f.phone_contains.trim().is_empty())
            .then(|| phone_digits(&f.phone_contains)),
        score_ranges: f
            .score_ranges
            .iter()
            .map(|r| ScoreRange {
                min: r.min,
                max: r.max,
            })
            .collect(),
        tag_ids: id_list(&f.tag_ids),
        tag_match,
        tag_group_ids: id_list(&f.tag_group_ids),
        intent_level_ids: id_list(&f.intent_level_ids),
        window,
        min_talk_ms: f.min_talk_ms,
        max_talk_ms: f.max_talk_ms,
        min_rounds: f.min_rounds,
        max_rounds: f.max_rounds,
        outcomes: enum_list(&f.outcomes, &p("outcomes"), v, CallOutcome::from_code),
        sources: enum_list(&f.sources, &p("sources"), v, Source::from_code),
        carriers: id_list(&f.carriers),
        provinces: id_list(&f.provinces),
        hangup_by,
        transcript: (!text.is_empty()).then(|| TranscriptQuery {
            text: text.to_owned(),
            party: transcript_party,
        }),
        external_ids: id_list(&f.external_ids),
        exclude_tag_ids: id_list(&f.exclude_tag_ids),
        exclude_intent_level_ids: id_list(&f.exclude_intent_level_ids),
        exclude_outcomes: enum_list(
            &f.exclude_outcomes,
            &p("exclude_outcomes"),
            v,
            CallOutcome::from_code,
        ),
        attributes: attributes(&f.attributes),
        quality_flags: id_list(&f.quality_flags),
    };
    v.nest(path, filter.violations());
    filter
}

pub fn order_from_proto(code: i32, path: &str, v: &mut Violations) -> CallOrder {
    use proto::CallOrder as P;
    match P::try_from(code) {
        Ok(P::Unspecified | P::CallTimeDesc) => CallOrder::CallTimeDesc,
        Ok(P::CallTimeAsc) => CallOrder::CallTimeAsc,
        Ok(P::ScoreDesc) => CallOrder::ScoreDesc,
        Ok(P::ScoreAsc) => CallOrder::ScoreAsc,
        Ok(P::TalkMsDesc) => CallOrder::TalkMsDesc,
        Ok(P::TalkMsAsc) => CallOrder::TalkMsAsc,
        Err(_) => {
            v.add(path, format!("unknown enum value {code}"));
            CallOrder::CallTimeDesc
        }
    }
}

pub(crate) fn tag_group_to_proto(g: domain::TagGroup) -> proto::TagGroup {
    proto::TagGroup {
        id: g.id,
        name: g.name,
        scene_id: g.scene_id,
    }
}

pub(crate) fn tag_to_proto(t: domain::Tag) -> proto::Tag {
    proto::Tag {
        id: t.id,
        name: t.name,
        color: t.color,
        description: t.description,
        groups: t.groups.into_iter().map(tag_group_to_proto).collect(),
    }
}

pub fn call_to_proto(stored: domain::StoredCall) -> proto::Call {
    let c = stored.call;
    proto::Call {
        call_id: stored.call_id,
        source: c.source.code(),
        external_id: c.external_id,
        task_id: c.task_id,
        parent_task_id: c.parent_task_id,
        script_id: c.script_id,
        callee: c.callee,
        callee_raw: c.callee_raw,
        caller: c.caller,
        submit_time: c.submit_time.map(to_timestamp),
        call_time: Some(to_timestamp(c.call_time)),
        ring_time: c.ring_time.map(to_timestamp),
        answer_time: c.answer_time.map(to_timestamp),
        hangup_time: c.hangup_time.map(to_timestamp),
        ring_ms: c.ring_ms,
        talk_ms: c.talk_ms,
        total_ms: c.total_ms,
        billed_ms: c.billed_ms,
        outcome: c.outcome.code(),
        vendor_status: c.vendor_status,
        hangup_cause: c.hangup_cause,
        sip_code: c.sip_code,
        hangup_by: c.hangup_by.code(),
        score: c.score,
        intent_level: c.intent_level.map(|l| proto::IntentLevel {
            id: l.id,
            name: l.name,
            alias: l.alias,
            color: l.color,
        }),
        rounds: c.rounds,
        tags: c.tags.into_iter().map(tag_to_proto).collect(),
        recording_url: c.recording_url,
        gender: c.gender.code(),
        location: Some(proto::Location {
            province: c.location.province,
            city: c.location.city,
            area_code: c.location.area_code,
            carrier_code: carrier_code(&c.location.carrier)
                .unwrap_or_default()
                .to_owned(),
            carrier: c.location.carrier,
            region: c.location.region,
            post_code: c.location.post_code,
        }),
        billing: Some(proto::Billing {
            rate: c.billing.rate,
            base_cost: c.billing.base_cost,
            cost: c.billing.cost,
            currency: c.billing.currency,
            settle_rate: c.billing.settle_rate,
            settle_cost: c.billing.settle_cost,
            quote_exchange: c.billing.quote_exchange,
            bill_period: c.billing.bill_period,
            base_cost_currency: c.billing.base_cost_currency,
            settle_currency: c.billing.settle_currency,
        }),
        dtmf: c.dtmf,
        recall_count: c.recall_count,
        recall_of: c.recall_of,
        attributes: c.attributes.into_iter().collect(),
        turns: c
            .turns
            .into_iter()
            .map(|t| proto::DialogueTurn {
                sequence: t.sequence,
                kind: t.kind.code(),
                customer_text: t.customer_text,
                robot_text: t.robot_text,
                node_id: t.node_id,
                node_name: t.node_name,
                keyword: t.keyword,
                score: t.score,
                speak_ms: t.speak_ms,
                play_ms: t.play_ms,
                asr_latency_ms: t.asr_latency_ms,
                tags: t.tags.into_iter().map(tag_to_proto).collect(),
                time: t.time.map(to_timestamp),
                after_transfer: t.after_transfer,
                turn_id: t.turn_id,
                attributes: t.attributes.into_iter().collect(),
            })
            .collect(),
        update_time: c.update_time.map(to_timestamp),
        quality_flags: c.quality_flags,
        sync_time: Some(to_timestamp(stored.sync_time)),
        caller_raw: c.caller_raw,
        customer_name: c.customer_name,
        line_id: c.line_id,
        tag_groups: c.tag_groups.into_iter().map(tag_group_to_proto).collect(),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::domain::sample::sample_call;
    use crate::domain::{StoredCall, estimated_size};

    /// The size a call adds to a ListCallsResponse: the call and the
    /// repeated field's tag and length prefix.
    fn encoded(stored: &StoredCall) -> usize {
        let len = call_to_proto(stored.clone()).encoded_len();
        1 + prost::length_delimiter_len(len) + len
    }

    fn fields(v: Violations) -> Vec<String> {
        v.0.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn oversized_lists_are_named_once() {
        let filter = proto::CallFilter {
            outcomes: vec![1; 100_000],
            task_ids: vec!["t".into(); 100_000],
            ..Default::default()
        };
        let mut v = Violations::new();
        filter_from_proto(Some(&filter), "filter", Region::default(), &mut v);
        assert_eq!(fields(v), ["filter.outcomes", "filter.task_ids"]);
        let req = proto::ListTaskNumbersRequest {
            task_id: "t".into(),
            statuses: vec![99; 100_000],
            ..Default::default()
        };
        let err = list_task_numbers_request(&req, Region::default()).unwrap_err();
        assert_eq!(fields(err), ["statuses"]);
        let req = proto::UpsertCallsRequest {
            calls: vec![proto::Call::default(); 1001],
        };
        let err = upsert_calls_request(&req, Region::default()).unwrap_err();
        assert_eq!(fields(err), ["calls"]);
    }

    #[test]
    fn the_size_estimate_never_falls_below_the_encoding() {
        let base = StoredCall {
            call_id: "0190d7c2-6a37-7d8e-9f51-4c1b2a3d4e5f".into(),
            sync_time: -1,
            call: sample_call(),
        };
        let mut negative = base.clone();
        negative.call.score = Some(-10_000);
        negative.call.call_time = -62_135_596_800_000;
        negative.call.rounds = -1;
        let mut empty = base.clone();
        empty.call.tags.clear();
        empty.call.turns.clear();
        empty.call.attributes.clear();
        empty.call.intent_level = None;
        let mut heavy = base.clone();
        heavy.call.attributes = (0..200)
            .map(|i| (format!("key-{i}"), "v".repeat(4000)))
            .collect();
        heavy.call.recording_url = "u".repeat(2048);
        for stored in [&base, &negative, &empty, &heavy] {
            let (estimate, actual) = (estimated_size(stored), encoded(stored));
            assert!(estimate >= actual, "{estimate} < {actual}");
        }
        // Close for the calls that matter: the large ones.
        let (estimate, actual) = (estimated_size(&heavy), encoded(&heavy));
        assert!(estimate * 100 <= actual * 105, "{estimate} vs {actual}");
    }
}
