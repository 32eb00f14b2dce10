//! Proto ↔ domain conversions. Proto → domain validates and gathers every bad
//! field into [`Violations`], named by its path in the request.

use std::collections::BTreeMap;

use prost_types::Timestamp;

use crate::domain::{
    self, CallFilter, CallOrder, CallOutcome, Gender, NUL_DESCRIPTION, Party, Region, ScoreRange,
    Source, TagMatch, TimeField, TimeWindow, TranscriptQuery, TurnKind, UnixMs, Violations,
    is_decimal, normalize_phone, phone_digits,
};
use crate::proto;

/// Longest id, name or other short text accepted.
const MAX_ID_LEN: usize = 256;
/// Longest free text (a dialogue turn, an attribute value).
const MAX_TEXT_LEN: usize = 65_536;
/// Most score ranges in one filter.
const MAX_SCORE_RANGES: usize = 100;
/// Most entries in one repeated filter field.
const MAX_FILTER_VALUES: usize = 500;
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

fn short_text(text: &str, path: &str, v: &mut Violations) {
    if text.len() > MAX_ID_LEN {
        v.add(path, format!("is longer than {MAX_ID_LEN} bytes"));
    } else if text.contains('\0') {
        v.add(path, NUL_DESCRIPTION);
    }
}

fn required_id(text: &str, path: &str, v: &mut Violations) {
    if text.trim().is_empty() {
        v.add(path, "is required");
    } else {
        short_text(text, path, v);
    }
}

fn non_negative(value: i64, path: &str, v: &mut Violations) {
    if value < 0 {
        v.add(path, "must not be negative");
    }
}

pub(crate) fn attributes(
    map: &std::collections::HashMap<String, String>,
    path: &str,
    v: &mut Violations,
) -> BTreeMap<String, String> {
    for (key, value) in map {
        if key.is_empty() || key.len() > MAX_ID_LEN {
            v.add(format!("{path}[{key:?}]"), "key must be 1-256 bytes");
        }
        if value.len() > MAX_TEXT_LEN {
            v.add(format!("{path}[{key:?}]"), "value is longer than 64 KiB");
        }
    }
    map.iter()
        .map(|(k, val)| (k.clone(), val.clone()))
        .collect()
}

pub fn tag_group_from_proto(
    g: &proto::TagGroup,
    path: &str,
    v: &mut Violations,
) -> domain::TagGroup {
    required_id(&g.id, &format!("{path}.id"), v);
    short_text(&g.name, &format!("{path}.name"), v);
    domain::TagGroup {
        id: g.id.trim().to_owned(),
        name: g.name.clone(),
        scene_id: g.scene_id.clone(),
    }
}

pub fn tag_from_proto(t: &proto::Tag, path: &str, v: &mut Violations) -> domain::Tag {
    required_id(&t.id, &format!("{path}.id"), v);
    short_text(&t.name, &format!("{path}.name"), v);
    domain::Tag {
        id: t.id.trim().to_owned(),
        name: t.name.clone(),
        color: t.color.clone(),
        description: t.description.clone(),
        groups: t
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| tag_group_from_proto(g, &format!("{path}.groups[{i}]"), v))
            .collect(),
    }
}

pub fn intent_level_from_proto(
    l: &proto::IntentLevel,
    path: &str,
    v: &mut Violations,
) -> domain::IntentLevel {
    required_id(&l.id, &format!("{path}.id"), v);
    short_text(&l.name, &format!("{path}.name"), v);
    domain::IntentLevel {
        id: l.id.trim().to_owned(),
        name: l.name.clone(),
        alias: l.alias.clone(),
        color: l.color.clone(),
    }
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
    required_id(&c.external_id, &p("external_id"), v);
    for (field, value) in [
        ("task_id", &c.task_id),
        ("parent_task_id", &c.parent_task_id),
        ("script_id", &c.script_id),
        ("vendor_status", &c.vendor_status),
        ("sip_code", &c.sip_code),
        ("recall_of", &c.recall_of),
        ("line_id", &c.line_id),
        ("customer_name", &c.customer_name),
    ] {
        short_text(value, &p(field), v);
    }
    let callee = if c.callee.trim().is_empty() {
        v.add(p("callee"), "is required");
        String::new()
    } else {
        normalize_phone(&c.callee, region).unwrap_or_else(|e| {
            v.add(p("callee"), e.to_string());
            String::new()
        })
    };
    let caller = if c.caller.trim().is_empty() {
        String::new()
    } else {
        normalize_phone(&c.caller, region).unwrap_or_else(|e| {
            v.add(p("caller"), e.to_string());
            String::new()
        })
    };
    let call_time = match &c.call_time {
        None => {
            v.add(p("call_time"), "is required");
            0
        }
        Some(ts) => timestamp_ms(ts, &p("call_time"), v).unwrap_or(0),
    };
    for (field, value) in [
        ("ring_ms", c.ring_ms),
        ("talk_ms", c.talk_ms),
        ("total_ms", c.total_ms),
        ("billed_ms", c.billed_ms),
        ("rounds", c.rounds.into()),
        ("recall_count", c.recall_count.into()),
    ] {
        non_negative(value, &p(field), v);
    }
    let billing = c.billing.clone().unwrap_or_default();
    for (field, value) in [
        ("rate", &billing.rate),
        ("base_cost", &billing.base_cost),
        ("cost", &billing.cost),
        ("settle_rate", &billing.settle_rate),
        ("settle_cost", &billing.settle_cost),
        ("quote_exchange", &billing.quote_exchange),
    ] {
        if !value.is_empty() && !is_decimal(value) {
            v.add(
                p(&format!("billing.{field}")),
                "must be a decimal such as 0.0125 (at most 9 integer and 30 fraction digits)",
            );
        }
    }
    let currency_ok = billing.currency.is_empty()
        || (billing.currency.len() == 3
            && billing.currency.bytes().all(|b| b.is_ascii_uppercase()));
    if !currency_ok {
        v.add(
            p("billing.currency"),
            "must be an ISO 4217 code such as EUR",
        );
    }
    let location = c.location.clone().unwrap_or_default();
    let turns = c
        .turns
        .iter()
        .enumerate()
        .map(|(i, t)| turn_from_proto(t, &p(&format!("turns[{i}]")), v))
        .collect::<Vec<_>>();
    let mut sequences: Vec<i32> = turns.iter().map(|t| t.sequence).collect();
    sequences.sort_unstable();
    if sequences.windows(2).any(|w| w[0] == w[1]) {
        v.add(p("turns"), "sequence numbers must be unique");
    }

    let call = domain::Call {
        source,
        external_id: c.external_id.trim().to_owned(),
        task_id: c.task_id.trim().to_owned(),
        parent_task_id: c.parent_task_id.clone(),
        script_id: c.script_id.clone(),
        callee,
        callee_raw: c.callee.clone(),
        caller,
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
            .map(|l| intent_level_from_proto(l, &p("intent_level"), v)),
        rounds: c.rounds,
        tags: c
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| tag_from_proto(t, &p(&format!("tags[{i}]")), v))
            .collect(),
        tag_groups: c
            .tag_groups
            .iter()
            .enumerate()
            .map(|(i, g)| tag_group_from_proto(g, &p(&format!("tag_groups[{i}]")), v))
            .collect(),
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
        },
        dtmf: c.dtmf.clone(),
        recall_count: c.recall_count,
        recall_of: c.recall_of.clone(),
        customer_name: c.customer_name.clone(),
        line_id: c.line_id.clone(),
        attributes: attributes(&c.attributes, &p("attributes"), v),
        turns,
        update_time: opt_timestamp(c.update_time.as_ref(), &p("update_time"), v),
    };
    for limit in call.limit_violations().0 {
        let field = p(&limit.field);
        // A field already named (e.g. task_id by its own check) is not repeated.
        if !v.0.iter().any(|known| known.field == field) {
            v.add(field, limit.description);
        }
    }
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
    for (field, text) in [
        ("customer_text", &t.customer_text),
        ("robot_text", &t.robot_text),
    ] {
        if text.len() > MAX_TEXT_LEN {
            v.add(p(field), "is longer than 64 KiB");
        }
    }
    for (field, value) in [
        ("speak_ms", t.speak_ms),
        ("play_ms", t.play_ms),
        ("asr_latency_ms", t.asr_latency_ms),
    ] {
        non_negative(value, &p(field), v);
    }
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
        tags: t
            .tags
            .iter()
            .enumerate()
            .map(|(i, tag)| tag_from_proto(tag, &p(&format!("tags[{i}]")), v))
            .collect(),
        time: opt_timestamp(t.time.as_ref(), &p("time"), v),
        after_transfer: t.after_transfer,
        turn_id: t.turn_id.clone(),
        attributes: attributes(&t.attributes, &p("attributes"), v),
    }
}

pub fn task_from_proto(t: &proto::Task, path: &str, v: &mut Violations) -> domain::Task {
    let p = |field: &str| format!("{path}.{field}");
    required_id(&t.task_id, &p("task_id"), v);
    domain::Task {
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
        attributes: attributes(&t.attributes, &p("attributes"), v),
    }
}

fn id_list(values: &[String], path: &str, v: &mut Violations) -> Vec<String> {
    if values.len() > MAX_FILTER_VALUES {
        v.add(path, format!("at most {MAX_FILTER_VALUES} values"));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            required_id(value, &format!("{path}[{i}]"), v);
            value.trim().to_owned()
        })
        .collect()
}

fn enum_list<T>(
    codes: &[i32],
    path: &str,
    v: &mut Violations,
    from: fn(i32) -> Option<T>,
) -> Vec<T> {
    if codes.len() > MAX_FILTER_VALUES {
        v.add(path, format!("at most {MAX_FILTER_VALUES} values"));
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
    let phone_contains = (!f.phone_contains.trim().is_empty()).then(|| {
        let digits = phone_digits(&f.phone_contains);
        if digits.is_empty() {
            v.add(p("phone_contains"), "has no digits");
        }
        digits
    });
    if f.score_ranges.len() > MAX_SCORE_RANGES {
        v.add(
            p("score_ranges"),
            format!("at most {MAX_SCORE_RANGES} ranges"),
        );
    }
    let score_ranges = f
        .score_ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if let (Some(min), Some(max)) = (r.min, r.max)
                && max <= min
            {
                v.add(
                    p(&format!("score_ranges[{i}]")),
                    "max must be greater than min (min inclusive, max exclusive)",
                );
            }
            ScoreRange {
                min: r.min,
                max: r.max,
            }
        })
        .collect();
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
    for (field, value) in [
        ("min_talk_ms", f.min_talk_ms),
        ("max_talk_ms", f.max_talk_ms),
    ] {
        if let Some(value) = value {
            non_negative(value, &p(field), v);
        }
    }
    if let (Some(min), Some(max)) = (f.min_talk_ms, f.max_talk_ms)
        && max < min
    {
        v.add(p("max_talk_ms"), "must not be less than min_talk_ms");
    }
    for (field, value) in [("min_rounds", f.min_rounds), ("max_rounds", f.max_rounds)] {
        if let Some(value) = value {
            non_negative(value.into(), &p(field), v);
        }
    }
    if let (Some(min), Some(max)) = (f.min_rounds, f.max_rounds)
        && max < min
    {
        v.add(p("max_rounds"), "must not be less than min_rounds");
    }
    let hangup_by = match f.hangup_by {
        0 => None,
        code => enum_value(code, &p("hangup_by"), v, Party::from_code),
    };
    let transcript_party = match f.transcript_party {
        0 => None,
        code => enum_value(code, &p("transcript_party"), v, Party::from_code),
    };
    let text = f.transcript_contains.trim();
    if text.chars().count() > 200 {
        v.add(p("transcript_contains"), "is longer than 200 characters");
    } else if text.contains('\0') {
        v.add(p("transcript_contains"), NUL_DESCRIPTION);
    }
    let transcript = (!text.is_empty()).then(|| TranscriptQuery {
        text: text.to_owned(),
        party: transcript_party,
    });

    CallFilter {
        task_ids: id_list(&f.task_ids, &p("task_ids"), v),
        phone,
        phone_contains,
        score_ranges,
        tag_ids: id_list(&f.tag_ids, &p("tag_ids"), v),
        tag_match,
        tag_group_ids: id_list(&f.tag_group_ids, &p("tag_group_ids"), v),
        intent_level_ids: id_list(&f.intent_level_ids, &p("intent_level_ids"), v),
        window,
        min_talk_ms: f.min_talk_ms,
        max_talk_ms: f.max_talk_ms,
        min_rounds: f.min_rounds,
        max_rounds: f.max_rounds,
        outcomes: enum_list(&f.outcomes, &p("outcomes"), v, CallOutcome::from_code),
        sources: enum_list(&f.sources, &p("sources"), v, Source::from_code),
        carriers: id_list(&f.carriers, &p("carriers"), v),
        provinces: id_list(&f.provinces, &p("provinces"), v),
        hangup_by,
        transcript,
    }
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

fn tag_group_to_proto(g: domain::TagGroup) -> proto::TagGroup {
    proto::TagGroup {
        id: g.id,
        name: g.name,
        scene_id: g.scene_id,
    }
}

fn tag_to_proto(t: domain::Tag) -> proto::Tag {
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
        sync_time: Some(to_timestamp(stored.sync_time)),
        caller_raw: c.caller_raw,
        customer_name: c.customer_name,
        line_id: c.line_id,
        tag_groups: c.tag_groups.into_iter().map(tag_group_to_proto).collect(),
    }
}
