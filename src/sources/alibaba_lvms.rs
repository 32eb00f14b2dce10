//! Alibaba LVMS `alibaba.lvms.lvr.receivecallrecord` requests → calls.
//!
//! The record (`ivr_call_record_d_t_o`) arrives snake_case through the TOP
//! gateway or camelCase (`ivrCallRecordDTO`) as the Java SDK builds it; wrapped
//! in the request, bare, or wrapped as JSON inside a string (TOP passes
//! object parameters that way). Times are local `yyyy-MM-dd HH:mm:ss`.

use serde_json::{Map, Value};

use super::{
    Fields, SourceBatch, SourceConfig, SourceError, blank_call, is_empty_container, json_kind,
    phone, span_ms, stringify,
};
use crate::domain::{CallOutcome, IntentLevel, Source, UnixMs, normalize_phone};

/// The names the record travels under.
const RECORD_KEYS: &[&str] = &[
    "ivr_call_record_d_t_o",
    "ivrCallRecordDTO",
    "ivr_call_record_dto",
];

/// TOP's public request parameters: gateway authentication, not call data.
/// `session` and `sign` are credentials and must never be stored.
const GATEWAY_PARAMS: &[&str] = &[
    "app_key",
    "method",
    "partner_id",
    "session",
    "sign",
    "sign_method",
    "simplify",
    "target_app_key",
    "timestamp",
    "format",
    "v",
];

/// Parses one request, or one bare record.
pub fn parse(value: &Value, cfg: &SourceConfig) -> Result<SourceBatch, SourceError> {
    let Some(top) = value.as_object() else {
        return Err(SourceError::NotAnObject(json_kind(value)));
    };
    let wrapper = RECORD_KEYS
        .iter()
        .copied()
        .find(|k| top.get(*k).is_some_and(|v| !v.is_null()));
    let inner: Value;
    let (record, outer): (&Map<String, Value>, Option<&Map<String, Value>>) = match wrapper {
        Some(key) => {
            let record = match top.get(key) {
                Some(Value::Object(m)) => m,
                Some(Value::String(text)) => {
                    inner = super::parse_json_exact(text).map_err(|e| {
                        SourceError::field(key, format!("is not a json object: {e}"))
                    })?;
                    inner.as_object().ok_or_else(|| {
                        SourceError::field(
                            key,
                            format!("must hold an object, not {}", json_kind(&inner)),
                        )
                    })?
                }
                Some(other) => {
                    return Err(SourceError::field(
                        key,
                        format!("must be an object, not {}", json_kind(other)),
                    ));
                }
                None => return Err(SourceError::field(key, "is required")),
            };
            (record, Some(top))
        }
        None if top.contains_key("call_record_id") || top.contains_key("callRecordId") => {
            (top, None)
        }
        None => {
            return Err(SourceError::UnknownShape {
                vendor: "alibaba lvms",
                expected: "expected `ivr_call_record_d_t_o` (or `ivrCallRecordDTO`), or a bare record with `call_record_id`",
            });
        }
    };
    let path = wrapper.unwrap_or("");
    let mut call = record_call(record, path, cfg)?;
    if let Some(outer) = outer {
        // `rpc_context` and anything else beside the record, minus credentials.
        for (key, value) in outer {
            if Some(key.as_str()) == wrapper
                || GATEWAY_PARAMS.contains(&key.as_str())
                || is_empty_container(value)
            {
                continue;
            }
            if let Some(text) = stringify(value).filter(|t| !is_empty_json_text(t)) {
                // A key beside the record that the record also has is kept
                // as `request.<key>`, so neither value is lost.
                let name = snake_case(key);
                match call.attributes.get(&name) {
                    None => {
                        call.attributes.insert(name, text);
                    }
                    Some(inner) if *inner == text => {}
                    Some(_) => {
                        call.attributes.insert(format!("request.{name}"), text);
                    }
                }
            }
        }
    }
    Ok(SourceBatch {
        calls: vec![call],
        ..SourceBatch::default()
    })
}

/// `"{}"`, the SDK's default `rpc_context`, says nothing.
fn is_empty_json_text(text: &str) -> bool {
    matches!(text.trim(), "{}" | "[]" | "")
}

fn record_call(
    map: &Map<String, Value>,
    path: &str,
    cfg: &SourceConfig,
) -> Result<crate::domain::Call, SourceError> {
    let mut f = Fields::new(map, path);
    let key = |f: &Fields<'_>, snake: &'static str, camel: &'static str| f.pick(&[snake, camel]);

    let id_key = key(&f, "call_record_id", "callRecordId");
    let external_id = f.required_short(id_key)?;
    let start_key = key(&f, "start_time", "startTime");
    let end_key = key(&f, "end_time", "endTime");
    let start = time(&mut f, start_key, cfg)?;
    let end = time(&mut f, end_key, cfg)?;
    let call_time = start
        .or(end)
        .ok_or_else(|| f.err(start_key, "is required"))?;
    let mut call = blank_call(Source::AlibabaLvms, external_id, call_time);
    call.hangup_time = end;
    // No modification time is sent: a record is final once the call ended.
    call.update_time = end.or(start);
    if let (Some(start), Some(end)) = (start, end) {
        call.total_ms = span_ms(start, end, &f.name(end_key), start_key)?;
    }

    let callee_key = key(&f, "called_phone_number", "calledPhoneNumber");
    call.callee_raw = f.required_short(callee_key)?;
    call.callee = phone(&f.name(callee_key), &call.callee_raw, cfg.default_region)?;
    if let Some(raw) = f.string(key(&f, "phone_number", "phoneNumber"))? {
        call.caller = normalize_phone(&raw, cfg.default_region).unwrap_or_default();
        call.caller_raw = raw;
    }
    call.task_id = f
        .short(key(&f, "robot_call_job_id", "robotCallJobId"))?
        .unwrap_or_default();
    call.line_id = f
        .short(key(&f, "tenant_phone_number_id", "tenantPhoneNumberId"))?
        .unwrap_or_default();
    call.recording_url = f
        .string(key(&f, "full_audio_url", "fullAudioUrl"))?
        .unwrap_or_default();
    call.customer_name = f.short("name")?.unwrap_or_default();
    call.talk_ms = f
        .seconds_as_ms(key(&f, "chat_duration", "chatDuration"))?
        .unwrap_or(0);
    if let Some(status) = f.short(key(&f, "result_status", "resultStatus"))? {
        call.outcome = outcome_from_result_status(&status);
        call.vendor_status = status;
    }
    let code_key = key(&f, "intent_level_code", "intentLevelCode");
    let code = f.string(code_key)?;
    let name = f.string(key(&f, "intent_level_detail_name", "intentLevelDetailName"))?;
    // Intent level codes are per robot job: code 2 of one job is another
    // level than code 2 of the next, so the id is scoped by the job.
    let scoped = |code: &str| match call.task_id.as_str() {
        "" => code.to_owned(),
        job => format!("{job}/{code}"),
    };
    call.intent_level = match (&code, name) {
        (None, None) => None,
        (code, name) => Some(IntentLevel {
            id: code
                .as_deref()
                .map(scoped)
                .or_else(|| name.clone())
                .unwrap_or_default(),
            name: name.unwrap_or_default(),
            ..IntentLevel::default()
        }),
    };
    let raw_code = code.map(|c| ("intent_level_code".to_owned(), c));

    // `properties` is free text; a JSON object in it is flattened so its keys
    // can be queried, and the raw text is kept either way.
    let properties = f.take("properties");
    // snake_case names, except that a camelCase key whose snake_case name
    // was sent too (`newMetric` beside `new_metric`) keeps its own spelling.
    let rest = f.rest();
    let mut attributes: std::collections::BTreeMap<String, String> = rest
        .iter()
        .map(|(k, v)| {
            let snake = snake_case(k);
            if snake != *k && rest.contains_key(&snake) {
                (k.clone(), v.clone())
            } else {
                (snake, v.clone())
            }
        })
        .collect();
    if let Some(value) = properties {
        let parsed;
        let object = match value {
            Value::Object(m) => Some(m),
            Value::String(text) => {
                parsed = super::parse_json_exact(text).ok();
                parsed.as_ref().and_then(Value::as_object)
            }
            _ => None,
        };
        if let Some(object) = object {
            for (k, v) in object {
                if let Some(text) = stringify(v) {
                    attributes.insert(format!("properties.{k}"), text);
                }
            }
        }
        if let Some(raw) = stringify(value).filter(|t| !t.is_empty()) {
            attributes.insert("properties".into(), raw);
        }
    }
    // The vendor's code as sent, beside the scoped id.
    attributes.extend(raw_code);
    call.attributes = attributes;
    Ok(call)
}

/// A `Date`: local text in the TOP gateway, or epoch milliseconds as some
/// SDK serialisers write `java.util.Date`.
fn time(
    f: &mut Fields<'_>,
    key: &'static str,
    cfg: &SourceConfig,
) -> Result<Option<UnixMs>, SourceError> {
    if f.peek(key).is_some_and(super::is_number) {
        f.epoch_ms(key)
    } else {
        f.local_time(key, &cfg.time_zone)
    }
}

/// `result_status` text (English or Chinese, as tenants configure it) → the
/// unified outcome. Negative phrases are tested first: `未接通` contains `接通`.
pub fn outcome_from_result_status(text: &str) -> CallOutcome {
    let t = text.trim().to_ascii_uppercase().replace([' ', '-'], "_");
    let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    if t.is_empty() {
        CallOutcome::Unspecified
    } else if has(&[
        "未接通",
        "无人接听",
        "未接听",
        "NO_ANSWER",
        "NOANSWER",
        "UNANSWERED",
    ]) {
        CallOutcome::NoAnswer
    } else if has(&["关机", "POWER_OFF", "POWERED_OFF", "POWEROFF"]) {
        CallOutcome::PoweredOff
    } else if has(&["停机", "SUSPEND"]) {
        CallOutcome::Suspended
    } else if has(&["空号", "INVALID", "NOT_EXIST"]) {
        CallOutcome::InvalidNumber
    } else if has(&["拒接", "拒绝", "REJECT"]) {
        CallOutcome::Rejected
    } else if has(&["忙", "占线", "BUSY"]) {
        CallOutcome::Busy
    } else if has(&["接通", "成功", "ANSWERED", "SUCCESS", "CONNECTED"]) {
        CallOutcome::Answered
    } else {
        CallOutcome::Other
    }
}

/// `intentLevelTagId` → `intent_level_tag_id`, so attributes are named alike
/// whichever spelling the sender used.
fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Call;
    use crate::sources::parse as parse_bytes;

    const WRAPPED: &str = include_str!("../../tests/fixtures/alibaba_lvms/receivecallrecord.json");
    const BARE: &str = include_str!("../../tests/fixtures/alibaba_lvms/bare_record.json");
    const STRING: &str = include_str!("../../tests/fixtures/alibaba_lvms/record_as_string.json");
    const CAMEL: &str = include_str!("../../tests/fixtures/alibaba_lvms/camel_case.json");

    fn run(json: &str) -> Result<SourceBatch, SourceError> {
        parse_bytes(
            Source::AlibabaLvms,
            json.as_bytes(),
            &SourceConfig::for_source(Source::AlibabaLvms),
        )
    }

    fn call(json: &str) -> Call {
        run(json).unwrap().calls.remove(0)
    }

    #[test]
    fn clashing_names_keep_both_values() {
        let c = call(
            r#"{"ivr_call_record_d_t_o": {"call_record_id": 9, "called_phone_number": "13800001111",
                "start_time": "2024-01-01 10:00:00", "newMetric": "camel", "new_metric": "snake",
                "shared": "inside"},
              "shared": "beside", "same": "x", "newMetric": "outer"}"#,
        );
        assert_eq!(c.attributes["new_metric"], "snake");
        assert_eq!(c.attributes["newMetric"], "camel");
        assert_eq!(c.attributes["shared"], "inside");
        assert_eq!(c.attributes["request.shared"], "beside");
        assert_eq!(c.attributes["same"], "x");
        assert_eq!(c.attributes["request.new_metric"], "outer");
    }

    #[test]
    fn the_snake_case_request_maps_every_field() {
        let c = call(WRAPPED);
        assert_eq!(c.source, Source::AlibabaLvms);
        assert_eq!(c.external_id, "3001");
        assert_eq!(c.task_id, "77");
        assert_eq!(c.callee, "+8618651683344");
        assert_eq!(c.callee_raw, "18651683344");
        assert_eq!(c.caller, "+862566778899");
        assert_eq!(c.caller_raw, "02566778899");
        assert_eq!(c.vendor_status, "已接通");
        assert_eq!(c.outcome, CallOutcome::Answered);
        assert_eq!(c.recording_url, "https://example.com/audio/3001.wav");
        assert_eq!(c.talk_ms, 42_000);
        // 2024-03-05 09:15:00 +08:00 = 01:15:00Z
        assert_eq!(c.call_time, 1_709_601_300_000);
        assert_eq!(c.hangup_time, Some(1_709_601_365_000));
        assert_eq!(c.update_time, Some(1_709_601_365_000));
        assert_eq!(c.total_ms, 65_000);
        assert_eq!(c.customer_name, "张三");
        assert_eq!(c.line_id, "12");
        assert_eq!(
            c.intent_level,
            Some(IntentLevel {
                id: "77/1".into(),
                name: "A级(有意向)".into(),
                ..IntentLevel::default()
            })
        );
        let attrs: Vec<(&str, &str)> = c
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            attrs,
            vec![
                ("intent_level_code", "1"),
                ("intent_level_tag_id", "5"),
                ("properties", r#"{"orderId":"A-17","vip":true}"#),
                ("properties.orderId", "A-17"),
                ("properties.vip", "true"),
                ("rpc_context", r#"{"traceId":"t-1"}"#),
            ]
        );
    }

    #[test]
    fn bare_string_wrapped_and_camel_case_records_agree() {
        let wrapped = call(WRAPPED);
        let mut bare = call(BARE);
        bare.attributes
            .insert("rpc_context".into(), r#"{"traceId":"t-1"}"#.into());
        assert_eq!(bare, wrapped);
        let mut in_string = call(STRING);
        assert!(
            !in_string.attributes.contains_key("rpc_context"),
            "`{{}}` says nothing"
        );
        in_string
            .attributes
            .insert("rpc_context".into(), r#"{"traceId":"t-1"}"#.into());
        assert_eq!(in_string, wrapped);

        let camel = call(CAMEL);
        assert_eq!(camel.external_id, "3002");
        assert_eq!(camel.task_id, "77");
        assert_eq!(camel.callee, "+8618651683344");
        assert_eq!(camel.caller, "+862566778899");
        assert_eq!(camel.outcome, CallOutcome::NoAnswer);
        assert_eq!(camel.vendor_status, "NO_ANSWER");
        assert_eq!(camel.talk_ms, 0);
        assert_eq!(camel.recording_url, "");
        assert_eq!(camel.call_time, wrapped.call_time);
        assert_eq!(camel.hangup_time, wrapped.hangup_time);
        assert_eq!(camel.line_id, "12");
        assert_eq!(camel.intent_level, wrapped.intent_level);
        assert_eq!(camel.attributes["intent_level_tag_id"], "5");
        assert_eq!(camel.attributes["properties"], "plain text");
        assert!(
            !camel
                .attributes
                .keys()
                .any(|k| k.starts_with("properties."))
        );
    }

    #[test]
    fn gateway_credentials_are_not_kept() {
        let json = r#"{"app_key":"k","sign":"s","session":"secret","method":"alibaba.lvms.lvr.receivecallrecord",
            "ivr_call_record_d_t_o":{"call_record_id":1,"called_phone_number":"18651683344","start_time":"2024-03-05 09:15:00"}}"#;
        let c = call(json);
        assert!(c.attributes.is_empty(), "{:?}", c.attributes);
        assert_eq!(c.outcome, CallOutcome::Unspecified);
        assert_eq!(c.hangup_time, None);
        assert_eq!(c.total_ms, 0);
    }

    #[test]
    fn epoch_dates_are_accepted() {
        let json = r#"{"callRecordId":1,"calledPhoneNumber":"18651683344","startTime":1709601300000,"endTime":1709601365000}"#;
        let c = call(json);
        assert_eq!(c.call_time, 1_709_601_300_000);
        assert_eq!(c.total_ms, 65_000);
    }

    #[test]
    fn result_status_texts() {
        for (text, outcome) in [
            ("接通", CallOutcome::Answered),
            ("已接通", CallOutcome::Answered),
            ("成功", CallOutcome::Answered),
            ("ANSWERED", CallOutcome::Answered),
            ("success", CallOutcome::Answered),
            ("未接通", CallOutcome::NoAnswer),
            ("无人接听", CallOutcome::NoAnswer),
            ("NO_ANSWER", CallOutcome::NoAnswer),
            ("no answer", CallOutcome::NoAnswer),
            ("忙", CallOutcome::Busy),
            ("占线", CallOutcome::Busy),
            ("BUSY", CallOutcome::Busy),
            ("拒接", CallOutcome::Rejected),
            ("REJECT", CallOutcome::Rejected),
            ("关机", CallOutcome::PoweredOff),
            ("停机", CallOutcome::Suspended),
            ("空号", CallOutcome::InvalidNumber),
            ("线路异常", CallOutcome::Other),
            (" ", CallOutcome::Unspecified),
        ] {
            assert_eq!(outcome_from_result_status(text), outcome, "{text}");
        }
    }

    #[test]
    fn bad_records_are_rejected_naming_the_field() {
        let edit = |key: &str, value: Value| {
            let mut v: Value = serde_json::from_str(WRAPPED).unwrap();
            v["ivr_call_record_d_t_o"][key] = value;
            v.to_string()
        };
        for (json, message) in [
            (
                edit("call_record_id", Value::Null),
                "field `ivr_call_record_d_t_o.call_record_id`: is required",
            ),
            (
                edit("called_phone_number", "".into()),
                "field `ivr_call_record_d_t_o.called_phone_number`: is required",
            ),
            (
                edit("chat_duration", (-1).into()),
                "field `ivr_call_record_d_t_o.chat_duration`: must not be negative",
            ),
            (
                edit("start_time", "2019-02-30 10:00:00".into()),
                "field `ivr_call_record_d_t_o.start_time`: is not a valid `yyyy-MM-dd HH:mm:ss` time: `2019-02-30 10:00:00`",
            ),
            (
                edit("end_time", "2024-03-05 09:00:00".into()),
                "field `ivr_call_record_d_t_o.end_time`: is before `start_time`",
            ),
            (
                edit("name", serde_json::json!([1])),
                "field `ivr_call_record_d_t_o.name`: must be a string, not an array",
            ),
            (
                r#"{"ivr_call_record_d_t_o": 5}"#.to_string(),
                "field `ivr_call_record_d_t_o`: must be an object, not a number",
            ),
            (
                r#"{"ivr_call_record_d_t_o": "[1]"}"#.to_string(),
                "field `ivr_call_record_d_t_o`: must hold an object, not an array",
            ),
        ] {
            assert_eq!(run(&json).unwrap_err().to_string(), message);
        }
        let err = run(r#"{"ivr_call_record_d_t_o": "{oops"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("field `ivr_call_record_d_t_o`: is not a json object"),
            "{err}"
        );
        let err = run(r#"{"something":"else"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("not a recognised alibaba lvms document"),
            "{err}"
        );
    }
}
