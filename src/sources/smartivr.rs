//! smartivr (FreeSWITCH AI robot platform) query-API documents → calls, turns,
//! tasks and dialing-list entries.
//!
//! Accepted documents: one call record (an item of `query_done_task_phones`'s
//! `data[]`), the whole `query_done_task_phones` response, the brief
//! `v1/record/{id}` envelope, the whole `record_info` document, and the
//! `v1/task/number` envelope or one of its entries. Times are local
//! `yyyy-MM-dd HH:mm:ss` in [`SourceConfig::time_zone`]; durations are ms.

use serde_json::{Map, Value};

use super::{
    Fields, NumberListEntry, SourceBatch, SourceConfig, SourceError, blank_call, json_kind, phone,
    span_ms, stringify,
};
use crate::domain::{
    Call, CallOutcome, DialogueTurn, Gender, IntentLevel, Location, Party, Source, Tag, TagGroup,
    Task, TurnKind, normalize_phone,
};

/// smartivr's dial status of a number (0-12) → the unified outcome.
/// 0 ("waiting to be called") has no outcome yet; unknown codes are `Other`.
pub fn outcome_from_dial_status(code: i32) -> CallOutcome {
    match code {
        0 => CallOutcome::Unspecified,
        1 => CallOutcome::Answered,
        2 => CallOutcome::LineFailure,
        3 => CallOutcome::Rejected,
        4 => CallOutcome::NoAnswer,
        5 => CallOutcome::InvalidNumber,
        6 => CallOutcome::PoweredOff,
        7 => CallOutcome::Suspended,
        8 => CallOutcome::Busy,
        9 => CallOutcome::CallBarred,
        10 => CallOutcome::Arrears,
        11 => CallOutcome::Blacklisted,
        12 => CallOutcome::CallLoss,
        _ => CallOutcome::Other,
    }
}

/// The outcome of a call that was not answered, from FreeSWITCH's hangup cause.
fn outcome_from_hangup_cause(cause: &str) -> CallOutcome {
    match cause.trim().to_ascii_uppercase().as_str() {
        "USER_BUSY" => CallOutcome::Busy,
        "NO_ANSWER" | "NO_USER_RESPONSE" | "ORIGINATOR_CANCEL" | "ALLOTTED_TIMEOUT" => {
            CallOutcome::NoAnswer
        }
        "CALL_REJECTED" => CallOutcome::Rejected,
        "UNALLOCATED_NUMBER" | "INVALID_NUMBER_FORMAT" => CallOutcome::InvalidNumber,
        _ => CallOutcome::Other,
    }
}

/// Parses any smartivr document this module knows (see the module docs).
pub fn parse(value: &Value, cfg: &SourceConfig) -> Result<SourceBatch, SourceError> {
    let Some(root) = value.as_object() else {
        return Err(SourceError::NotAnObject(json_kind(value)));
    };
    if root.get("info").is_some_and(|v| !v.is_null()) {
        return record_info(root, cfg);
    }
    if let Some(data) = root.get("data").filter(|v| !v.is_null()) {
        check_envelope(root)?;
        return match data {
            Value::Array(items) => {
                let calls = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        record_call(
                            as_object(item, &format!("data[{i}]"))?,
                            &format!("data[{i}]"),
                            cfg,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(SourceBatch {
                    calls,
                    ..SourceBatch::default()
                })
            }
            Value::Object(inner) if inner.get("data").is_some_and(Value::is_array) => {
                let items = inner
                    .get("data")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let numbers = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let path = format!("data.data[{i}]");
                        number_entry(as_object(item, &path)?, &path, cfg)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(SourceBatch {
                    numbers,
                    ..SourceBatch::default()
                })
            }
            Value::Object(inner) => Ok(SourceBatch {
                calls: vec![record_call(inner, "data", cfg)?],
                ..SourceBatch::default()
            }),
            other => Err(SourceError::field(
                "data",
                format!("must be an array or an object, not {}", json_kind(other)),
            )),
        };
    }
    if root.contains_key("number") && !root.contains_key("callee") {
        return Ok(SourceBatch {
            numbers: vec![number_entry(root, "", cfg)?],
            ..SourceBatch::default()
        });
    }
    if root.contains_key("callid") || root.contains_key("callee") {
        return Ok(SourceBatch {
            calls: vec![record_call(root, "", cfg)?],
            ..SourceBatch::default()
        });
    }
    Err(SourceError::UnknownShape {
        vendor: "smartivr",
        expected: "expected a call record (`callid`, `callee`), a `data` envelope, a `record_info` document (`info.record`) or a number-list entry (`number`)",
    })
}

fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, SourceError> {
    value.as_object().ok_or_else(|| {
        SourceError::field(path, format!("must be an object, not {}", json_kind(value)))
    })
}

/// The `{"code":200,"status":"ok","message":…}` envelope: anything but 200 is
/// the vendor reporting a failure, not a record.
fn check_envelope(root: &Map<String, Value>) -> Result<(), SourceError> {
    let mut f = Fields::new(root, "");
    match f.int("code")? {
        None | Some(200) => Ok(()),
        Some(code) => {
            let message = f.string("message").ok().flatten().unwrap_or_default();
            Err(f.err(
                "code",
                format!("the vendor answered {code}: {}", super::clip(&message)),
            ))
        }
    }
}

/// One call record: a `data[]` item, the brief record or `info.record`.
fn record_call(
    map: &Map<String, Value>,
    path: &str,
    cfg: &SourceConfig,
) -> Result<Call, SourceError> {
    let tz = &cfg.time_zone;
    let mut f = Fields::new(map, path);
    let external_id = f.required_short("callid")?;
    let call_time = f
        .local_time("calldate", tz)?
        .ok_or_else(|| f.err("calldate", "is required"))?;
    let mut call = blank_call(Source::Smartivr, external_id, call_time);

    call.callee_raw = f.required_short("callee")?;
    call.callee = phone(&f.name("callee"), &call.callee_raw, cfg.default_region)?;
    if let Some(raw) = f.string("caller_number")? {
        // A caller id such as `300708` is an extension, kept as its digits;
        // one without digits stays raw only.
        call.caller = normalize_phone(&raw, cfg.default_region).unwrap_or_default();
        call.caller_raw = raw;
    }
    call.task_id = f.short("task_id")?.unwrap_or_default();
    call.script_id = f.short("group_id")?.unwrap_or_default();
    call.score = f.int32("score")?;
    call.rounds = non_negative_i32(&mut f, "rounds")?;
    call.total_ms = f.non_negative("duration")?.unwrap_or(0);
    // `bill` is the billed conversation time in ms: talk time and billed time.
    let bill = f.non_negative("bill")?.unwrap_or(0);
    call.talk_ms = bill;
    call.billed_ms = bill;
    call.vendor_status = f.short("error_code")?.unwrap_or_default();
    call.hangup_cause = f.string("hangupcause")?.unwrap_or_default();
    call.recording_url = f.string("recordfile")?.unwrap_or_default();
    call.answer_time = f.local_time("answerdate", tz)?;
    call.hangup_time = f.local_time("hangupdate", tz)?;
    call.update_time = f.local_time("updated_at", tz)?;
    if let Some(answer) = call.answer_time {
        call.ring_ms = span_ms(call.call_time, answer, &f.name("answerdate"), "calldate")?;
    }
    call.outcome = if call.answer_time.is_some() && bill > 0 {
        CallOutcome::Answered
    } else {
        outcome_from_hangup_cause(&call.hangup_cause)
    };

    let gender = f.int("gender")?;
    call.gender = gender
        .and_then(|g| i32::try_from(g).ok())
        .and_then(Gender::from_code)
        .unwrap_or(Gender::Unspecified);
    let disposition = f.int("hangup_disposition")?;
    call.hangup_by = match disposition {
        Some(1) => Party::Robot,
        Some(2) => Party::Customer,
        _ => Party::Unspecified,
    };

    call.intent_level = intent_level(&mut f)?;
    call.location = record_location(&mut f)?;
    // Tags and groups are mapped but their raw JSON (owner, pivot, times)
    // stays in attributes: the typed tag has no room for them.
    call.tags = tags(f.peek_array("tags")?, &f.name("tags"))?;
    call.tag_groups = dedup_groups(tag_groups(
        f.peek_array("tag_groups")?,
        &f.name("tag_groups"),
    )?);

    f.consume("id");
    let record_id = f.peek("id").and_then(stringify);
    call.attributes = f.rest();
    if let Some(id) = record_id {
        // `record_id` names the record's `id` (its second id); a `record_id`
        // key of the record's own is kept beside it, not overwritten.
        if let Some(own) = call.attributes.insert("record_id".into(), id) {
            call.attributes.insert("row.record_id".into(), own);
        }
    }
    // Values outside the documented codes are kept rather than lost.
    if let Some(g) = gender.filter(|g| i32::try_from(*g).ok().and_then(Gender::from_code).is_none())
    {
        call.attributes.insert("gender".into(), g.to_string());
    }
    if let Some(d) = disposition.filter(|_| call.hangup_by == Party::Unspecified) {
        call.attributes
            .insert("hangup_disposition".into(), d.to_string());
    }
    Ok(call)
}

fn non_negative_i32(f: &mut Fields<'_>, key: &'static str) -> Result<i32, SourceError> {
    match f.non_negative(key)? {
        None => Ok(0),
        Some(n) => i32::try_from(n).map_err(|_| f.err(key, "is out of range")),
    }
}

/// `level` (id, name, alias, color), or `level_id` + `level_name` without it.
fn intent_level(f: &mut Fields<'_>) -> Result<Option<IntentLevel>, SourceError> {
    if let Some(level) = f.peek_object("level")? {
        let mut lf = Fields::new(level, f.name("level"));
        let id = lf.string("id")?.or(f.peek("level_id").and_then(stringify));
        let level = IntentLevel {
            id: id.unwrap_or_default(),
            name: lf.string("name")?.unwrap_or_default(),
            alias: lf.string("alias")?.unwrap_or_default(),
            color: lf.string("color")?.unwrap_or_default(),
        };
        // Fully mapped unless the vendor adds keys; then the raw object stays.
        if lf.rest().is_empty() {
            f.consume("level");
        }
        return Ok(Some(level).filter(|l| !l.id.is_empty() || !l.name.is_empty()));
    }
    let id = f.string("level_id")?;
    let name = f.string("level_name")?;
    Ok(match (id, name) {
        (None, None) => None,
        (id, name) => Some(IntentLevel {
            id: id.or_else(|| name.clone()).unwrap_or_default(),
            name: name.unwrap_or_default(),
            ..IntentLevel::default()
        }),
    })
}

/// `operator_name` and the `city`/`province` objects (kept raw in attributes
/// too, for their ids). A plain string is taken as the name.
fn record_location(f: &mut Fields<'_>) -> Result<Location, SourceError> {
    let mut loc = Location {
        carrier: f.string("operator_name")?.unwrap_or_default(),
        ..Location::default()
    };
    let mut fallback_codes = (String::new(), String::new());
    for key in ["province", "city"] {
        let (name, area, post) = match f.peek(key) {
            None => continue,
            Some(Value::String(s)) => (s.clone(), String::new(), String::new()),
            Some(Value::Object(m)) => {
                let mut pf = Fields::new(m, f.name(key));
                (
                    pf.string("city")?.unwrap_or_default(),
                    pf.string("area_code")?.unwrap_or_default(),
                    pf.string("post_code")?.unwrap_or_default(),
                )
            }
            Some(other) => {
                return Err(f.err(key, format!("must be an object, not {}", json_kind(other))));
            }
        };
        if key == "province" {
            loc.province = name;
            fallback_codes = (area, post);
        } else {
            loc.city = name;
            loc.area_code = area;
            loc.post_code = post;
        }
    }
    // The city's codes are the precise ones; the province's only stand in.
    if loc.area_code.is_empty() {
        loc.area_code = fallback_codes.0;
    }
    if loc.post_code.is_empty() {
        loc.post_code = fallback_codes.1;
    }
    Ok(loc)
}

fn tags(items: &[Value], path: &str) -> Result<Vec<Tag>, SourceError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{path}[{i}]");
            let mut f = Fields::new(as_object(item, &path)?, path);
            // `tag_groups` in call records, `tag_group` in dialogue turns.
            let groups_key = f.pick(&["tag_groups", "tag_group"]);
            Ok(Tag {
                id: f.required_short("id")?,
                name: f.string("name")?.unwrap_or_default(),
                color: f.string("color")?.unwrap_or_default(),
                description: f.string("description")?.unwrap_or_default(),
                groups: tag_groups(f.peek_array(groups_key)?, &f.name(groups_key))?,
            })
        })
        .collect()
}

fn tag_groups(items: &[Value], path: &str) -> Result<Vec<TagGroup>, SourceError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{path}[{i}]");
            let mut f = Fields::new(as_object(item, &path)?, path);
            Ok(TagGroup {
                // Turn tags number their groups (`"id": 1`); ids are text here.
                id: f.required_short("id")?,
                name: f.string("name")?.unwrap_or_default(),
                scene_id: f.string("tag_scene_id")?.unwrap_or_default(),
            })
        })
        .collect()
}

/// The call-level `tag_groups` repeat a group once per tag that hit it.
fn dedup_groups(groups: Vec<TagGroup>) -> Vec<TagGroup> {
    let mut seen = std::collections::BTreeSet::new();
    groups
        .into_iter()
        .filter(|g| seen.insert(g.id.clone()))
        .collect()
}

/// The whole `record_info` document: `info.record` is the call, `records[]`
/// its turns, `info.task` a task; the rest goes to the call's attributes.
fn record_info(root: &Map<String, Value>, cfg: &SourceConfig) -> Result<SourceBatch, SourceError> {
    let mut top = Fields::new(root, "");
    let info = top
        .object("info")?
        .ok_or_else(|| top.err("info", "is required"))?;
    let mut info_fields = Fields::new(info, "info");
    let record = info_fields
        .object("record")?
        .ok_or_else(|| info_fields.err("record", "is required"))?;
    let mut call = record_call(record, "info.record", cfg)?;

    let mut tasks = Vec::new();
    if let Some(task_map) = info_fields.object("task")? {
        tasks.push(task(task_map, "info.task", cfg)?);
    }
    for (key, value) in info_fields.rest() {
        call.attributes
            .entry(format!("info.{key}"))
            .or_insert(value);
    }

    let records = top.array("records")?;
    let mut turns = records
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("records[{i}]");
            turn(as_object(item, &path)?, &path, i, cfg)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A turn is stored under its sequence number, so two turns cannot share one.
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in turns.iter().enumerate() {
        if !seen.insert(t.sequence) {
            return Err(SourceError::field(
                format!("records[{i}].sequence"),
                format!("repeats sequence {}", t.sequence),
            ));
        }
    }
    turns.sort_by_key(|t| t.sequence);
    call.turns = turns;

    // `mobile_info` only fills what the record lacks; its raw JSON is kept.
    if let Some(mobile) = top.peek_object("mobile_info")? {
        let mut mf = Fields::new(mobile, "mobile_info");
        let loc = &mut call.location;
        for (key, slot) in [
            ("mobile_type", &mut loc.carrier),
            ("province", &mut loc.province),
            ("city", &mut loc.city),
        ] {
            if let Some(v) = mf.string(key)?
                && slot.is_empty()
            {
                *slot = v;
            }
        }
    }
    // Script flows (`utterances`), `intervene_*`, `is_crm_exists`, `mobile_info`.
    for (key, value) in top.rest() {
        call.attributes.entry(key).or_insert(value);
    }
    Ok(SourceBatch {
        calls: vec![call],
        tasks,
        numbers: Vec::new(),
    })
}

fn turn(
    map: &Map<String, Value>,
    path: &str,
    index: usize,
    cfg: &SourceConfig,
) -> Result<DialogueTurn, SourceError> {
    let mut f = Fields::new(map, path);
    let sequence = match f.int32("sequence")? {
        Some(s) => s,
        None => i32::try_from(index).unwrap_or(i32::MAX).saturating_add(1),
    };
    // `notify` decides the kind; its raw value stays in attributes.
    let notify = f
        .peek("notify")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let question = f.string("question")?.unwrap_or_default();
    let answer_content = f.string("answer_content")?;
    let answer_text = f.string("answer_text")?;
    let kind = match notify.as_str() {
        "asrprogress_notify" => TurnKind::Progress,
        "asrmessage_notify" => TurnKind::CustomerUtterance,
        _ if question.is_empty() => TurnKind::RobotPrompt,
        _ => TurnKind::CustomerUtterance,
    };
    let tags = tags(f.peek_array("tags")?, &f.name("tags"))?;
    Ok(DialogueTurn {
        sequence,
        kind,
        customer_text: question,
        // `answer_text` names the script node (`转人工节点`), it is not
        // speech: shown or searched as what the robot said, it would mislead.
        robot_text: answer_content.unwrap_or_default(),
        node_id: f.string("answer_id")?.unwrap_or_default(),
        node_name: answer_text.unwrap_or_default(),
        keyword: f.string("keyword")?.unwrap_or_default(),
        score: f.int32("score")?.unwrap_or(0),
        speak_ms: f.non_negative("speak_ms")?.unwrap_or(0),
        play_ms: f.non_negative("play_ms")?.unwrap_or(0),
        asr_latency_ms: f.non_negative("asr_elapse")?.unwrap_or(0),
        tags,
        time: f.local_time("created_at", &cfg.time_zone)?,
        after_transfer: f.int("bridge_status")? == Some(1),
        turn_id: f.string("id")?.unwrap_or_default(),
        attributes: f.rest(),
    })
}

/// `info.task` → a task catalog entry; `group` is the script.
fn task(map: &Map<String, Value>, path: &str, cfg: &SourceConfig) -> Result<Task, SourceError> {
    let tz = &cfg.time_zone;
    let mut f = Fields::new(map, path);
    let script_id = match f.peek_object("group")? {
        Some(group) => Fields::new(group, f.name("group")).string("id")?,
        None => None,
    };
    Ok(Task {
        task_id: f.required_short("uuid")?,
        name: f.string("name")?.unwrap_or_default(),
        parent_task_id: String::new(),
        script_id: script_id.unwrap_or_default(),
        source: Some(Source::Smartivr),
        create_time: f.local_time("create_datetime", tz)?,
        update_time: f.local_time("alter_datetime", tz)?,
        attributes: f.rest(),
    })
}

/// One `v1/task/number` entry. Its own `callid`/`calldate`/`bill`/… summarise
/// the latest call and stay in attributes; `call_history` holds the calls.
fn number_entry(
    map: &Map<String, Value>,
    path: &str,
    cfg: &SourceConfig,
) -> Result<NumberListEntry, SourceError> {
    let mut f = Fields::new(map, path);
    let phone_raw = f.required_short("number")?;
    let phone_norm = phone(&f.name("number"), &phone_raw, cfg.default_region)?;
    let status_code = match f.int("status")? {
        None => 0,
        Some(s) if (0..=12).contains(&s) => s as i32,
        Some(s) => return Err(f.err("status", format!("must be a dial status 0-12, not {s}"))),
    };
    let location = Location {
        city: f.string("city")?.unwrap_or_default(),
        province: f.string("pro")?.unwrap_or_default(),
        carrier: f.string("mobile_type")?.unwrap_or_default(),
        area_code: f.string("area_code")?.unwrap_or_default(),
        post_code: f.string("post_code")?.unwrap_or_default(),
        region: String::new(),
    };
    let name = f.string("name")?.unwrap_or_default();
    let history_path = f.name("call_history");
    let call_history = f
        .array("call_history")?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{history_path}[{i}]");
            history_call(as_object(item, &path)?, &path, &phone_raw, cfg)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let task_id = call_history
        .iter()
        .map(|c| c.task_id.as_str())
        .find(|t| !t.is_empty())
        .unwrap_or("")
        .to_string();
    Ok(NumberListEntry {
        task_id,
        phone: phone_norm,
        phone_raw,
        status_code,
        location,
        name,
        attributes: f.rest(),
        call_history,
    })
}

/// One `call_history` item of a number-list entry.
fn history_call(
    map: &Map<String, Value>,
    path: &str,
    entry_number: &str,
    cfg: &SourceConfig,
) -> Result<Call, SourceError> {
    let tz = &cfg.time_zone;
    let mut f = Fields::new(map, path);
    let external_id = f.required_short("call_id")?;
    let call_time = f
        .local_time("call_time", tz)?
        .ok_or_else(|| f.err("call_time", "is required"))?;
    let mut call = blank_call(Source::Smartivr, external_id, call_time);
    call.callee_raw = f
        .string("number")?
        .unwrap_or_else(|| entry_number.to_string());
    call.callee = phone(&f.name("number"), &call.callee_raw, cfg.default_region)?;
    if let Some(raw) = f.string("calling_number")? {
        call.caller = normalize_phone(&raw, cfg.default_region).unwrap_or_default();
        call.caller_raw = raw;
    }
    call.task_id = f.short("task_id")?.unwrap_or_default();
    call.total_ms = f.non_negative("duration")?.unwrap_or(0);
    let bill = f.non_negative("bill")?.unwrap_or(0);
    call.talk_ms = bill;
    call.billed_ms = bill;
    call.hangup_cause = f.string("hangup_cause")?.unwrap_or_default();
    call.sip_code = f.short("hangup_code")?.unwrap_or_default();
    let status = f.int32("status")?;
    call.outcome = status.map_or(CallOutcome::Unspecified, outcome_from_dial_status);
    call.vendor_status = status.map(|s| s.to_string()).unwrap_or_default();
    call.recording_url = f.string("record_file")?.unwrap_or_default();
    call.update_time = f.local_time("updated_at", tz)?;
    call.attributes = f.rest();
    Ok(call)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::parse as parse_bytes;

    const RECORD: &str = include_str!("../../tests/fixtures/smartivr/call_record.json");
    const LIST: &str = include_str!("../../tests/fixtures/smartivr/query_done_task_phones.json");
    const BRIEF: &str = include_str!("../../tests/fixtures/smartivr/record_brief.json");
    const INFO: &str = include_str!("../../tests/fixtures/smartivr/record_info.json");
    const NUMBERS: &str = include_str!("../../tests/fixtures/smartivr/task_number.json");
    const ENTRY: &str = include_str!("../../tests/fixtures/smartivr/number_entry.json");

    fn cfg() -> SourceConfig {
        SourceConfig::for_source(Source::Smartivr)
    }

    fn run(json: &str) -> Result<SourceBatch, SourceError> {
        parse_bytes(Source::Smartivr, json.as_bytes(), &cfg())
    }

    /// Shanghai wall time → UTC ms (the zone has had no DST since 1991).
    fn sh(text: &str) -> i64 {
        super::super::parse_local_time(text, &cfg().time_zone)
            .unwrap()
            .unwrap()
    }

    fn edited(json: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut value: Value = serde_json::from_str(json).unwrap();
        edit(&mut value);
        value.to_string()
    }

    #[test]
    fn a_rows_own_record_id_is_kept_beside_its_id() {
        let row = r#"{"id": "rec-1", "record_id": "own-1", "callid": "c-1",
            "callee": "18651683344", "calldate": "2020-03-06 23:04:37"}"#;
        let c = run(row).unwrap().calls.remove(0);
        assert_eq!(c.attributes["record_id"], "rec-1");
        assert_eq!(c.attributes["row.record_id"], "own-1");
        assert_eq!(c.alt_id(), "rec-1");
    }

    #[test]
    fn a_data_record_maps_every_field() {
        let batch = run(RECORD).unwrap();
        assert_eq!(batch.calls.len(), 1);
        let c = &batch.calls[0];
        assert_eq!(c.source, Source::Smartivr);
        assert_eq!(c.external_id, "d6a577d4-7180-11e9-80bd-7fed30fcff3f");
        assert_eq!(
            c.attributes["record_id"],
            "6d44d2f4-90f9-4621-8c77-e5e70c810623"
        );
        assert_eq!(c.task_id, "234cdcac-501c-47b5-9c06-47a658f363b8");
        assert_eq!(c.script_id, "299");
        assert_eq!(c.score, Some(0));
        assert_eq!(c.callee, "+8618810495721");
        assert_eq!(c.callee_raw, "18810495721");
        assert_eq!(c.caller, "300708");
        assert_eq!(c.caller_raw, "300708");
        assert_eq!(c.total_ms, 60_080);
        assert_eq!(c.talk_ms, 31_319);
        assert_eq!(c.billed_ms, 31_319);
        assert_eq!(c.vendor_status, "0");
        assert_eq!(c.gender, Gender::Female);
        // 2019-05-08 19:02:58 +08:00 = 11:02:58Z
        assert_eq!(c.call_time, 1_557_313_378_000);
        assert_eq!(c.call_time, sh("2019-05-08 19:02:58"));
        assert_eq!(c.answer_time, Some(1_557_313_406_000));
        assert_eq!(c.hangup_time, Some(1_557_313_438_000));
        assert_eq!(c.ring_ms, 28_000);
        assert_eq!(c.ring_time, None);
        assert_eq!(c.update_time, Some(sh("2019-05-08 19:03:59")));
        assert_eq!(c.hangup_cause, "NORMAL_CLEARING");
        assert_eq!(c.outcome, CallOutcome::Answered);
        assert_eq!(c.hangup_by, Party::Robot);
        assert_eq!(c.rounds, 0);
        assert_eq!(
            c.recording_url,
            "/mnt/smartivr/recordings/2019-05-08/18810495721.299.19-03-27.d6a577d4-7180-11e9-80bd-7fed30fcff3f.wav"
        );
        assert_eq!(
            c.intent_level,
            Some(IntentLevel {
                id: "e605e0b0-96b2-4af0-9b78-7cdd5fc6b783".into(),
                name: "D級(jí)".into(),
                alias: "無意向".into(),
                color: "#000".into(),
            })
        );
        assert_eq!(
            c.location,
            Location {
                province: "江蘇".into(),
                city: "南京".into(),
                area_code: "025".into(),
                carrier: "聯(lián)通".into(),
                region: String::new(),
                post_code: "210000".into(),
            }
        );
        let group_no = TagGroup {
            id: "fbe408c5-f77f-49cd-9bd1-85ca0b434bcc".into(),
            name: "無意向".into(),
            scene_id: "a13ad9cb-d9be-4498-bfe3-cd32c677f0dd".into(),
        };
        let group_yes = TagGroup {
            id: "f7eba8dd-3721-4e15-b197-6b0c16639eec".into(),
            name: "有意向".into(),
            scene_id: "a13ad9cb-d9be-4498-bfe3-cd32c677f0dd".into(),
        };
        assert_eq!(
            c.tags,
            vec![Tag {
                id: "ee109a20-6b98-4463-94fe-ea730e2188c7".into(),
                name: "臟話".into(),
                color: "#2d8cf0".into(),
                description: "臟話".into(),
                groups: vec![group_no.clone()],
            }]
        );
        // Three groups in the document, one repeated.
        assert_eq!(c.tag_groups, vec![group_yes, group_no]);
        // Everything unmapped is kept under the vendor's name.
        for key in [
            "level_id",
            "level_name",
            "read_at",
            "province_id",
            "city_id",
            "operator",
            "gender_str",
            "hangup_disposition_str",
            "created_at",
            "city",
            "province",
            "tags",
            "tag_groups",
        ] {
            assert!(c.attributes.contains_key(key), "{key}");
        }
        assert_eq!(c.attributes["read_at"], "2020-03-06 23:06:46");
        assert_eq!(c.attributes["operator"], "2");
        assert!(c.attributes["city"].contains("\"pid\":3"));
        assert!(
            !c.attributes.contains_key("bridge_callid"),
            "null is absence"
        );
        assert!(!c.attributes.contains_key("level"), "fully mapped");
        assert!(c.turns.is_empty());
    }

    #[test]
    fn the_list_response_and_the_brief_envelope() {
        let list = run(LIST).unwrap();
        assert_eq!(list.calls, run(RECORD).unwrap().calls);

        let brief = run(BRIEF).unwrap();
        let c = &brief.calls[0];
        assert_eq!(c.external_id, "eb9464a2-adf2-4621-9157-64892e86e273");
        assert_eq!(
            c.attributes["record_id"],
            "b1e91cb9-5994-47cc-a5df-25c3e8439a99"
        );
        assert_eq!(c.callee_raw, "1890685250");
        // Ten digits: not a valid number anywhere, kept as digits.
        assert_eq!(c.callee, "1890685250");
        assert_eq!(c.caller, "+8617368564879");
        assert_eq!(c.score, Some(165));
        assert_eq!(c.rounds, 12);
        assert_eq!(c.gender, Gender::Male);
        assert_eq!(c.hangup_by, Party::Customer);
        assert_eq!(c.talk_ms, 48_079);
        assert_eq!(c.ring_ms, 11_000);
        assert_eq!(c.outcome, CallOutcome::Answered);
        // No `level` object: the id and name stand in.
        assert_eq!(
            c.intent_level,
            Some(IntentLevel {
                id: "d968d649-fe6f-425f-a3d4-aa800b8740ba".into(),
                name: "C級(jí)(可再次跟進(jìn))".into(),
                ..IntentLevel::default()
            })
        );
        assert_eq!(c.location, Location::default());
        assert_eq!(c.update_time, Some(sh("2020-03-02 16:08:51")));
    }

    #[test]
    fn record_info_becomes_a_call_with_turns_and_a_task() {
        let batch = run(INFO).unwrap();
        assert_eq!(batch.calls.len(), 1);
        let c = &batch.calls[0];
        assert_eq!(c.external_id, "281db55e-64e8-11e9-9bb2-3564eb72c846");
        assert_eq!(
            c.attributes["record_id"],
            "9c736f53-0c1b-4047-b30a-dd87d2968541"
        );
        assert_eq!(c.task_id, "840a4346-d0ac-4800-9c73-3d06275a9158");
        assert_eq!(c.script_id, "297");
        // 2019-04-22 18:19:47 Asia/Shanghai = 2019-04-22T10:19:47Z
        assert_eq!(c.call_time, 1_555_928_387_000);
        assert_eq!(c.answer_time, Some(1_555_928_395_000));
        assert_eq!(c.hangup_time, Some(1_555_928_405_000));
        assert_eq!(c.update_time, Some(1_555_928_407_000));
        assert_eq!(c.ring_ms, 8_000);
        assert_eq!(c.talk_ms, 10_120);
        assert_eq!(c.total_ms, 17_600);
        assert_eq!(c.rounds, 2);
        assert_eq!(c.gender, Gender::Male);
        assert_eq!(c.hangup_by, Party::Robot);
        assert_eq!(c.outcome, CallOutcome::Answered);
        assert_eq!(c.caller, "+8617361984317");
        assert_eq!(
            c.intent_level.as_ref().map(|l| l.alias.as_str()),
            Some("無意向")
        );
        // The record has no location: `mobile_info` fills it.
        assert_eq!(c.location.carrier, "聯(lián)通");
        assert_eq!(c.location.province, "江蘇");
        assert_eq!(c.location.city, "南京");
        assert!(c.attributes["crm_number"].contains("61d03681"));
        assert!(c.attributes["utterances"].starts_with("[{"));
        assert!(c.attributes["intervene_number"].contains("羅文龍"));
        assert_eq!(c.attributes["is_crm_exists"], "true");
        assert_eq!(c.attributes["is_intervene_bridge"], "false");
        assert_eq!(c.attributes["is_intervene_hangup"], "false");
        assert!(c.attributes.contains_key("mobile_info"));

        let kinds: Vec<_> = c.turns.iter().map(|t| (t.sequence, t.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (1, TurnKind::RobotPrompt),
                (2, TurnKind::Progress),
                (3, TurnKind::CustomerUtterance),
                (4, TurnKind::Progress),
                (5, TurnKind::CustomerUtterance),
            ]
        );
        let first = &c.turns[0];
        assert_eq!(first.turn_id, "1c1ba3e3-83a4-4b7d-91b3-006abd3ff7bd");
        assert!(first.robot_text.starts_with("同學(xué),您好"));
        assert_eq!(first.customer_text, "");
        assert_eq!(first.node_id, "e0b4bfc6-e87d-4e1f-af24-d44c10a5bd0a");
        assert_eq!(first.node_name, "流程1");
        assert_eq!(first.time, Some(sh("2019-04-22 18:19:55")));
        assert!(!first.after_transfer);
        assert_eq!(
            first.tags,
            vec![Tag {
                id: "4c318fbd-834f-4b41-bfbe-a631e5422812".into(),
                name: "承認(rèn)發(fā)布".into(),
                color: "#2DF0D0".into(),
                description: "承認(rèn)發(fā)布".into(),
                groups: vec![TagGroup {
                    id: "1".into(),
                    name: "弱意向".into(),
                    scene_id: "ad2c92fe-f993-47d6-9e86-f73a5511dcae".into(),
                }],
            }]
        );
        assert_eq!(first.attributes["word_class"], "16");
        assert!(first.attributes["contents"].contains("bf4d6a59"));
        assert_eq!(first.attributes["notify"], "enter");
        let progress = &c.turns[1];
        assert_eq!(progress.asr_latency_ms, 841);
        assert_eq!(progress.play_ms, 740);
        assert_eq!(progress.attributes["asrtype"], "aliyun");
        assert_eq!(progress.attributes["volume_gain"], "8.040982");
        let last = &c.turns[4];
        assert_eq!(last.customer_text, "不再見,再見。");
        assert_eq!(
            last.robot_text,
            "感謝您的接聽,我就打擾您了,祝您生活愉快,再見"
        );
        assert_eq!(last.node_name, "普適結(jié)束語");
        assert_eq!(last.keyword, "再見");
        assert_eq!(last.speak_ms, 1_395);
        assert_eq!(last.play_ms, 3_280);
        assert_eq!(last.score, 0);
        assert!(last.tags.is_empty());

        assert_eq!(batch.tasks.len(), 1);
        let t = &batch.tasks[0];
        assert_eq!(t.task_id, "840a4346-d0ac-4800-9c73-3d06275a9158");
        assert_eq!(t.name, "教育測(cè)試2");
        assert_eq!(t.script_id, "297");
        assert_eq!(t.source, Some(Source::Smartivr));
        assert_eq!(t.create_time, Some(sh("2018-12-20 16:43:21")));
        assert_eq!(t.update_time, Some(sh("2019-05-15 19:25:06")));
        assert_eq!(t.attributes["call_per_second"], "10");
        assert_eq!(t.attributes["_origination_caller_id_number"], "300708");
        assert!(t.attributes["group"].contains("電銷系統(tǒng)測(cè)試"));
        assert!(t.attributes["progress_bar"].contains("percent"));
    }

    #[test]
    fn a_node_name_is_never_taken_for_speech() {
        let json = edited(INFO, |v| {
            v["records"][0]["answer_content"] = Value::Null;
            v["records"][0]["answer_text"] = "转人工节点".into();
        });
        let batch = run(&json).unwrap();
        let turn = &batch.calls[0].turns[0];
        assert_eq!(turn.robot_text, "");
        assert_eq!(turn.node_name, "转人工节点");
    }

    #[test]
    fn turns_are_ordered_by_sequence() {
        let json = edited(INFO, |v| {
            let records = v["records"].as_array_mut().unwrap();
            records.reverse();
            records[0]["bridge_status"] = 1.into();
        });
        let batch = run(&json).unwrap();
        let seq: Vec<i32> = batch.calls[0].turns.iter().map(|t| t.sequence).collect();
        assert_eq!(seq, vec![1, 2, 3, 4, 5]);
        assert!(batch.calls[0].turns[4].after_transfer);
    }

    #[test]
    fn the_number_list_envelope_and_a_single_entry() {
        let batch = run(NUMBERS).unwrap();
        assert!(batch.calls.is_empty());
        assert_eq!(batch.numbers.len(), 1);
        let n = &batch.numbers[0];
        assert_eq!(n.task_id, "772dd881-dcf7-42ee-a32b-b40a0ee5afb7");
        assert_eq!(n.phone, "+8618651683344");
        assert_eq!(n.phone_raw, "18651683344");
        assert_eq!(n.status_code, 1);
        assert_eq!(n.name, "");
        assert_eq!(
            n.location,
            Location {
                province: "江蘇".into(),
                city: "南京".into(),
                area_code: "025".into(),
                carrier: "聯(lián)通".into(),
                region: String::new(),
                post_code: "210000".into(),
            }
        );
        assert_eq!(n.attributes["id"], "1691");
        assert_eq!(n.attributes["is_blacklist"], "false");
        assert_eq!(n.attributes["status_str"], "呼叫成功");
        assert_eq!(
            n.attributes["callid"],
            "90a48ed3-a5f6-4904-b1f3-a9ec883b069f"
        );
        assert_eq!(n.attributes["bill"], "26638");
        assert_eq!(n.call_history.len(), 2);

        let answered = &n.call_history[0];
        assert_eq!(answered.external_id, "90a48ed3-a5f6-4904-b1f3-a9ec883b069f");
        assert_eq!(answered.task_id, "772dd881-dcf7-42ee-a32b-b40a0ee5afb7");
        assert_eq!(answered.callee, "+8618651683344");
        assert_eq!(answered.caller, "+8617361984317");
        assert_eq!(answered.call_time, sh("2020-03-06 23:04:37"));
        assert_eq!(answered.call_time, 1_583_507_077_000);
        assert_eq!(answered.total_ms, 35_639);
        assert_eq!(answered.talk_ms, 26_638);
        assert_eq!(answered.outcome, CallOutcome::Answered);
        assert_eq!(answered.vendor_status, "1");
        assert_eq!(answered.sip_code, "200");
        assert_eq!(answered.hangup_cause, "NORMAL_CLEARING");
        assert!(
            answered
                .recording_url
                .ends_with("90a48ed3-a5f6-4904-b1f3-a9ec883b069f.wav")
        );
        assert_eq!(answered.update_time, Some(sh("2020-03-06 23:05:14")));
        assert_eq!(answered.attributes["id"], "356036");
        assert_eq!(answered.attributes["call_status"], "answer");
        assert_eq!(answered.attributes["number_id"], "1691");

        let busy = &n.call_history[1];
        assert_eq!(busy.external_id, "1569523c-d3d3-48fd-97a0-ad88d6606a19");
        assert_eq!(busy.outcome, CallOutcome::Busy);
        assert_eq!(busy.sip_code, "");
        assert_eq!(busy.talk_ms, 0);
        assert_eq!(busy.recording_url, "");
        assert_eq!(busy.attributes["status_str"], "占線、用戶正忙");

        let single = run(ENTRY).unwrap();
        assert_eq!(single.numbers, batch.numbers);
    }

    #[test]
    fn an_entry_without_history_has_no_task_id() {
        let json = edited(ENTRY, |v| {
            v.as_object_mut().unwrap().remove("call_history");
        });
        let n = &run(&json).unwrap().numbers[0];
        assert_eq!(n.task_id, "");
        assert!(n.call_history.is_empty());
    }

    #[test]
    fn unanswered_outcomes_come_from_the_hangup_cause() {
        for (cause, outcome) in [
            ("USER_BUSY", CallOutcome::Busy),
            ("NO_ANSWER", CallOutcome::NoAnswer),
            ("NO_USER_RESPONSE", CallOutcome::NoAnswer),
            ("ORIGINATOR_CANCEL", CallOutcome::NoAnswer),
            ("ALLOTTED_TIMEOUT", CallOutcome::NoAnswer),
            ("CALL_REJECTED", CallOutcome::Rejected),
            ("UNALLOCATED_NUMBER", CallOutcome::InvalidNumber),
            ("INVALID_NUMBER_FORMAT", CallOutcome::InvalidNumber),
            ("NORMAL_CLEARING", CallOutcome::Other),
        ] {
            let json = edited(RECORD, |v| {
                v["answerdate"] = Value::Null;
                v["bill"] = 0.into();
                v["hangupcause"] = cause.into();
            });
            let c = &run(&json).unwrap().calls[0];
            assert_eq!(c.outcome, outcome, "{cause}");
            assert_eq!(c.ring_ms, 0);
            assert_eq!(c.answer_time, None);
        }
    }

    /// Every key of every vendor object is either mapped (listed here) or an
    /// attribute: nothing is dropped silently.
    #[test]
    fn no_field_is_dropped() {
        fn keys(v: &Value) -> Vec<String> {
            v.as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| !v.is_null() && !super::super::is_empty_container(v))
                .map(|(k, _)| k.clone())
                .collect()
        }
        fn check(
            what: &str,
            raw: &Value,
            mapped: &[&str],
            attributes: &std::collections::BTreeMap<String, String>,
        ) {
            for key in keys(raw) {
                assert!(
                    mapped.contains(&key.as_str()) || attributes.contains_key(&key),
                    "{what}: `{key}` dropped"
                );
            }
        }
        let record_mapped = [
            "callid",
            "id",
            "task_id",
            "group_id",
            "callee",
            "caller_number",
            "calldate",
            "answerdate",
            "hangupdate",
            "updated_at",
            "duration",
            "bill",
            "hangupcause",
            "error_code",
            "hangup_disposition",
            "gender",
            "score",
            "rounds",
            "recordfile",
            "level",
            "operator_name",
        ];
        let raw: Value = serde_json::from_str(RECORD).unwrap();
        check(
            "record",
            &raw,
            &record_mapped,
            &run(RECORD).unwrap().calls[0].attributes,
        );

        let raw: Value = serde_json::from_str(INFO).unwrap();
        let batch = run(INFO).unwrap();
        let call = &batch.calls[0];
        check(
            "info.record",
            &raw["info"]["record"],
            &record_mapped,
            &call.attributes,
        );
        check("record_info", &raw, &["info", "records"], &call.attributes);
        check(
            "info.task",
            &raw["info"]["task"],
            &["uuid", "name", "create_datetime", "alter_datetime"],
            &batch.tasks[0].attributes,
        );
        let turn_mapped = [
            "sequence",
            "question",
            "answer_content",
            "answer_text",
            "answer_id",
            "keyword",
            "score",
            "speak_ms",
            "play_ms",
            "asr_elapse",
            "created_at",
            "bridge_status",
            "id",
        ];
        for (raw_turn, turn) in raw["records"].as_array().unwrap().iter().zip(&call.turns) {
            check("records[]", raw_turn, &turn_mapped, &turn.attributes);
        }

        let raw: Value = serde_json::from_str(ENTRY).unwrap();
        let entry = &run(ENTRY).unwrap().numbers[0];
        check(
            "number",
            &raw,
            &[
                "number",
                "status",
                "city",
                "pro",
                "mobile_type",
                "area_code",
                "post_code",
                "call_history",
            ],
            &entry.attributes,
        );
        let history_mapped = [
            "call_id",
            "number",
            "calling_number",
            "task_id",
            "call_time",
            "duration",
            "bill",
            "status",
            "hangup_cause",
            "hangup_code",
            "record_file",
            "updated_at",
        ];
        for (raw_call, call) in raw["call_history"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&entry.call_history)
        {
            check(
                "call_history[]",
                raw_call,
                &history_mapped,
                &call.attributes,
            );
        }
    }

    #[test]
    fn undocumented_codes_are_kept_raw() {
        let json = edited(RECORD, |v| {
            v["gender"] = 7.into();
            v["hangup_disposition"] = 3.into();
        });
        let c = &run(&json).unwrap().calls[0];
        assert_eq!(c.gender, Gender::Unspecified);
        assert_eq!(c.hangup_by, Party::Unspecified);
        assert_eq!(c.attributes["gender"], "7");
        assert_eq!(c.attributes["hangup_disposition"], "3");
        let c = &run(&edited(RECORD, |v| v["gender"] = 0.into()))
            .unwrap()
            .calls[0];
        assert!(
            !c.attributes.contains_key("gender"),
            "0 is the documented unknown"
        );
    }

    #[test]
    fn dial_status_codes() {
        let expected = [
            CallOutcome::Unspecified,
            CallOutcome::Answered,
            CallOutcome::LineFailure,
            CallOutcome::Rejected,
            CallOutcome::NoAnswer,
            CallOutcome::InvalidNumber,
            CallOutcome::PoweredOff,
            CallOutcome::Suspended,
            CallOutcome::Busy,
            CallOutcome::CallBarred,
            CallOutcome::Arrears,
            CallOutcome::Blacklisted,
            CallOutcome::CallLoss,
        ];
        for (code, outcome) in expected.iter().enumerate() {
            assert_eq!(outcome_from_dial_status(code as i32), *outcome);
        }
        assert_eq!(outcome_from_dial_status(13), CallOutcome::Other);
        assert_eq!(outcome_from_dial_status(-1), CallOutcome::Other);
    }

    type Edit = Box<dyn Fn(&mut Value)>;

    #[test]
    fn bad_records_are_rejected_naming_the_field() {
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| drop(v.as_object_mut().unwrap().remove("callid"))),
                "field `callid`: is required",
            ),
            (
                Box::new(|v| drop(v.as_object_mut().unwrap().remove("callee"))),
                "field `callee`: is required",
            ),
            (
                Box::new(|v| v["callee"] = "n/a".into()),
                "field `callee`: has no digits",
            ),
            (
                Box::new(|v| v["bill"] = (-5).into()),
                "field `bill`: must not be negative",
            ),
            (
                Box::new(|v| v["duration"] = "abc".into()),
                "field `duration`: must be a whole number, not `abc`",
            ),
            (
                Box::new(|v| v["calldate"] = "2019-02-30 10:00:00".into()),
                "field `calldate`: is not a valid `yyyy-MM-dd HH:mm:ss` time: `2019-02-30 10:00:00`",
            ),
            (
                Box::new(|v| v["answerdate"] = "2019-05-08 19:00:00".into()),
                "field `answerdate`: is before `calldate`",
            ),
            (
                Box::new(|v| v["tags"] = "x".into()),
                "field `tags`: must be an array, not a string",
            ),
            (
                Box::new(|v| v["tags"][0]["tag_groups"][0]["id"] = Value::Null),
                "field `tags[0].tag_groups[0].id`: is required",
            ),
            (
                Box::new(|v| v["score"] = 1e12.into()),
                "field `score`: is out of range",
            ),
        ];
        for (edit, message) in cases {
            let err = run(&edited(RECORD, edit)).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        let err = run(&edited(LIST, |v| v["data"][0]["bill"] = (-1).into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `data[0].bill`: must not be negative"
        );
        let err = run(&edited(INFO, |v| v["records"][2]["speak_ms"] = true.into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `records[2].speak_ms`: must be a number, not a boolean"
        );
        let err = run(&edited(NUMBERS, |v| {
            v["data"]["data"][0]["status"] = 13.into()
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `data.data[0].status`: must be a dial status 0-12, not 13"
        );
        let err = run(&edited(INFO, |v| v["records"][3]["sequence"] = 2.into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `records[3].sequence`: repeats sequence 2"
        );
        let err = run(&edited(RECORD, |v| {
            v["calldate"] = "0000-01-01 00:00:00".into()
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `calldate`: is out of the supported time range (years 1-9999): `0000-01-01 00:00:00`"
        );
        let err = run(&edited(RECORD, |v| v["task_id"] = "t".repeat(300).into())).unwrap_err();
        assert_eq!(err.to_string(), "field `task_id`: is longer than 256 bytes");
        let err = run(r#"{"code":500,"message":"boom","data":{}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `code`: the vendor answered 500: boom"
        );
        let err = run(r#"{"hello":1}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("not a recognised smartivr document"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_list_is_an_empty_batch() {
        assert_eq!(
            run(r#"{"data":[],"total":0,"last_page":1}"#).unwrap(),
            SourceBatch::default()
        );
    }
}
