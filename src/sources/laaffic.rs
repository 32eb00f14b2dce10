//! LAAFFIC "IVR group call" push bodies → calls.
//!
//! One call detail record per POST. Times are millisecond epochs (`0` or
//! absent: did not happen), durations seconds, money decimal strings, numbers
//! international digits without `+`. Numeric fields may arrive as JSON numbers
//! or as text; both are accepted.

use serde_json::Value;

use super::{Fields, SourceBatch, SourceConfig, SourceError, blank_call, clip, json_kind, span_ms};
use crate::domain::{
    Billing, CallOutcome, IntentLevel, Source, is_decimal, normalize_international_phone,
    quality_flag,
};

/// Parses one push body.
pub fn parse(value: &Value, cfg: &SourceConfig) -> Result<SourceBatch, SourceError> {
    let _ = cfg; // LAAFFIC writes every number internationally and times as epochs
    let Some(map) = value.as_object() else {
        return Err(SourceError::NotAnObject(json_kind(value)));
    };
    let mut f = Fields::new(map, "");
    let external_id = f.required_short("voiceId")?;
    let submit_time = f.epoch_ms("submitTime")?;
    // A record that never reached the dialer has only its submit time.
    let call_time = match (f.epoch_ms("callTime")?, submit_time) {
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => return Err(f.err("callTime", "is required")),
    };
    let mut call = blank_call(Source::Laaffic, external_id, call_time);
    call.submit_time = submit_time;
    call.ring_time = f.epoch_ms("ringingTime")?;
    call.answer_time = f.epoch_ms("answerTime")?;
    call.hangup_time = f.epoch_ms("hangupTime")?;
    // No modification time in the push: the record is final once hung up.
    call.update_time = call.hangup_time.or(Some(call_time));

    call.callee_raw = f.required_short("callee")?;
    call.callee = normalize_international_phone(&call.callee_raw)
        .map_err(|e| f.err("callee", e.to_string()))?;
    if let Some(raw) = f.string("displayNum")? {
        call.caller = normalize_international_phone(&raw).unwrap_or_default();
        call.caller_raw = raw;
    }

    call.talk_ms = f.seconds_as_ms("callDuration")?.unwrap_or(0);
    call.billed_ms = f.seconds_as_ms("chargedDuration")?.unwrap_or(0);
    call.ring_ms = match (
        f.seconds_as_ms("ringDuration")?,
        call.ring_time,
        call.answer_time,
    ) {
        (Some(ms), _, _) => ms,
        // Older pushes may lack the duration but carry both instants.
        (None, Some(ring), Some(answer)) => span_ms(ring, answer, "answerTime", "ringingTime")?,
        (None, _, _) => 0,
    };
    if let Some(hangup) = call.hangup_time {
        call.total_ms = span_ms(call_time, hangup, "hangupTime", "callTime")?;
    }

    call.billing = billing(&mut f)?;
    call.location.region = f.string("code")?.unwrap_or_default();
    call.hangup_cause = f.string("terminationReason")?.unwrap_or_default();
    call.sip_code = f.short("sipCode")?.unwrap_or_default();
    call.dtmf = f
        .string("feedbackValue")?
        .filter(|v| v.trim() != "-1")
        .unwrap_or_default();
    call.recall_count = match f.non_negative("outRecallCount")? {
        None => 0,
        Some(n) => i32::try_from(n).map_err(|_| f.err("outRecallCount", "is out of range"))?,
    };
    call.recall_of = f.short("recallByVoiceId")?.unwrap_or_default();
    call.task_id = f.short("taskId")?.unwrap_or_default();
    call.parent_task_id = f.short("sourceTaskId")?.unwrap_or_default();
    call.script_id = f.short("scriptId")?.unwrap_or_default();
    call.recording_url = f.string("recordingFileId")?.unwrap_or_default();
    call.intent_level = f.string("intent")?.map(|intent| IntentLevel {
        id: intent.clone(),
        name: intent,
        ..IntentLevel::default()
    });

    // Both codes stay raw in attributes (not consumed); the status picks one.
    let termination = f.peek("terminationCode").and_then(super::stringify);
    let status = Fields::new(map, "").int("callStatus")?;
    call.vendor_status = status
        .map(|s| s.to_string())
        .or_else(|| termination.clone())
        .unwrap_or_default();
    call.outcome = match status {
        Some(code) => outcome_from_call_status(code),
        None => derived_outcome(
            call.answer_time.is_some(),
            &call.sip_code,
            termination.as_deref(),
        ),
    };
    // The vendor's own sample says `callStatus` 10 (busy) beside an answer
    // time and 13 s of talk: when the status contradicts the record's
    // timings, the timings decide, so answered talk counts in answer rates;
    // the status stays in `vendor_status` and the call is flagged.
    if call.outcome != CallOutcome::Answered && call.answer_time.is_some() && call.talk_ms > 0 {
        call.outcome = CallOutcome::Answered;
        call.quality_flags
            .push(quality_flag::STATUS_CONTRADICTS_TIMINGS.to_owned());
    }
    call.attributes = f.rest();
    Ok(SourceBatch {
        calls: vec![call],
        ..SourceBatch::default()
    })
}

/// `callStatus` (sent since 2025-12-10) → the unified outcome.
fn outcome_from_call_status(code: i64) -> CallOutcome {
    match code {
        10 => CallOutcome::Busy,
        20 => CallOutcome::NoAnswer,
        40 => CallOutcome::Voicemail,
        50 => CallOutcome::Answered,
        _ => CallOutcome::Other, // 30 "ringing, other", 60 "other", and unknown codes
    }
}

/// The outcome of older records, which carry no `callStatus`.
fn derived_outcome(answered: bool, sip_code: &str, termination: Option<&str>) -> CallOutcome {
    if answered {
        return CallOutcome::Answered;
    }
    match sip_code.trim() {
        "486" | "600" => CallOutcome::Busy,
        "480" | "408" | "487" => CallOutcome::NoAnswer,
        "404" | "484" | "604" => CallOutcome::InvalidNumber,
        "403" | "603" => CallOutcome::Rejected,
        _ => match termination.map(str::trim) {
            Some(code) if code != "0" && !code.is_empty() => CallOutcome::Other,
            _ => CallOutcome::Unspecified,
        },
    }
}

/// Money as exact decimal strings. `cost` is the documented name; the sample
/// sends `costEur`: either is accepted, `cost` wins when both are sent (the
/// other stays in attributes). Without `currency` the quote is in USD.
/// Each amount carries its currency: `rate` and `cost` the quote
/// `currency`; `baseCost` USD (基础费用(美元)); `settleRate` and `settlePay`
/// the account's own currency (本币), which is USD as well.
fn billing(f: &mut Fields<'_>) -> Result<Billing, SourceError> {
    let cost_key = f.pick(&["cost", "costEur"]);
    let mut billing = Billing {
        rate: money(f, "rate")?,
        base_cost: money(f, "baseCost")?,
        cost: money(f, cost_key)?,
        currency: currency(f)?,
        settle_rate: money(f, "settleRate")?,
        settle_cost: money(f, "settlePay")?,
        quote_exchange: money(f, "quoteExchange")?,
        bill_period: f.string("billPeriod")?.unwrap_or_default(),
        ..Billing::default()
    };
    if !billing.base_cost.is_empty() {
        billing.base_cost_currency = USD.to_owned();
    }
    if !billing.settle_rate.is_empty() || !billing.settle_cost.is_empty() {
        billing.settle_currency = USD.to_owned();
    }
    Ok(billing)
}

/// LAAFFIC's own currency: of `baseCost`, of the settlement amounts, and of
/// the quote when `currency` is absent.
const USD: &str = "USD";

/// An ISO 4217 code; absent means USD ("only set for non-USD quotes").
fn currency(f: &mut Fields<'_>) -> Result<String, SourceError> {
    match f.string("currency")? {
        None => Ok("USD".to_string()),
        Some(code) => {
            let code = code.trim().to_ascii_uppercase();
            if crate::domain::is_currency_code(&code) {
                Ok(code)
            } else {
                Err(f.err(
                    "currency",
                    format!(
                        "must be an ISO 4217 code such as EUR, not `{}`",
                        clip(&code)
                    ),
                ))
            }
        }
    }
}

fn money(f: &mut Fields<'_>, key: &'static str) -> Result<String, SourceError> {
    match f.string(key)? {
        None => Ok(String::new()),
        Some(text) if is_decimal(text.trim()) => Ok(text.trim().to_string()),
        Some(text) => Err(f.err(
            key,
            format!("must be a decimal amount, not `{}`", clip(&text)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Location;
    use crate::sources::parse as parse_bytes;

    const PUSH: &str = include_str!("../../tests/fixtures/laaffic/push.json");
    const LEGACY: &str = include_str!("../../tests/fixtures/laaffic/push_legacy_busy.json");

    fn run(json: &str) -> Result<SourceBatch, SourceError> {
        parse_bytes(
            Source::Laaffic,
            json.as_bytes(),
            &SourceConfig::for_source(Source::Laaffic),
        )
    }

    fn edited(json: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut value: Value = serde_json::from_str(json).unwrap();
        edit(value.as_object_mut().unwrap());
        value.to_string()
    }

    #[test]
    fn the_documented_push_maps_every_field() {
        let batch = run(PUSH).unwrap();
        assert!(batch.tasks.is_empty() && batch.numbers.is_empty());
        let c = &batch.calls[0];
        assert_eq!(c.source, Source::Laaffic);
        assert_eq!(c.external_id, "22121121451211349002");
        assert_eq!(c.callee, "+63123456788");
        assert_eq!(c.callee_raw, "63123456788");
        assert_eq!(c.caller, "+6311012125");
        assert_eq!(c.caller_raw, "6311012125");
        assert_eq!(c.submit_time, Some(1_670_939_112_097));
        assert_eq!(c.call_time, 1_670_939_568_000);
        assert_eq!(c.ring_time, Some(1_670_939_570_000));
        assert_eq!(c.answer_time, Some(1_670_939_582_000));
        assert_eq!(c.hangup_time, Some(1_670_939_595_000));
        assert_eq!(c.update_time, Some(1_670_939_595_000));
        assert_eq!(c.talk_ms, 13_000);
        assert_eq!(c.billed_ms, 20_000);
        assert_eq!(c.ring_ms, 1_000);
        assert_eq!(c.total_ms, 27_000);
        assert_eq!(
            c.billing,
            Billing {
                rate: "0.023625".into(),
                base_cost: "0.0".into(),
                cost: "0.007875".into(),
                currency: "EUR".into(),
                settle_rate: "1.2793".into(),
                settle_cost: "1.2793".into(),
                quote_exchange: "0.938".into(),
                bill_period: "20+20".into(),
                base_cost_currency: "USD".into(),
                settle_currency: "USD".into(),
            }
        );
        assert_eq!(
            c.location,
            Location {
                region: "India(Karnataka)".into(),
                ..Location::default()
            }
        );
        assert_eq!(c.vendor_status, "10");
        // Busy by its status, answered by its own timings: the timings win.
        assert_eq!(c.outcome, CallOutcome::Answered);
        assert_eq!(c.quality_flags, vec!["status_contradicts_timings"]);
        assert_eq!(c.hangup_cause, "Called hang up");
        assert_eq!(c.sip_code, "200");
        assert_eq!(c.dtmf, "0");
        assert_eq!(c.recall_count, 0);
        assert_eq!(c.recall_of, "");
        assert_eq!(c.task_id, "11");
        assert_eq!(c.parent_task_id, "12");
        assert_eq!(c.script_id, "123");
        assert_eq!(c.recording_url, "260820135623125000328.wav");
        assert_eq!(
            c.intent_level,
            Some(IntentLevel {
                id: "YES".into(),
                name: "YES".into(),
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
                ("callStatus", "10"),
                ("calledInfo", "calledInfo"),
                ("dimensionId", "123124"),
                ("terminationCode", "0"),
                ("type", "1"),
                (
                    "voiceFileId",
                    "12043042052c5b61378df42324286fe4a4ace40ve.mp3"
                ),
            ]
        );
    }

    #[test]
    fn a_legacy_push_derives_its_outcome() {
        let c = &run(LEGACY).unwrap().calls[0];
        assert_eq!(c.external_id, "22121121451211349003");
        assert_eq!(c.answer_time, None);
        assert_eq!(c.outcome, CallOutcome::Busy, "sip 486");
        assert_eq!(c.vendor_status, "17", "terminationCode stands in");
        assert_eq!(c.billing.cost, "0.0");
        assert_eq!(c.billing.currency, "USD");
        assert_eq!(c.billing.settle_rate, "");
        assert_eq!(c.talk_ms, 0);
        assert_eq!(c.ring_ms, 5_000);
        assert_eq!(c.total_ms, 7_000);
        assert_eq!(c.dtmf, "", "-1 means no key");
        assert_eq!(c.recall_count, 1);
        assert_eq!(c.recall_of, "22121121451211349002");
        assert_eq!(c.task_id, "11");
        assert_eq!(c.intent_level, None);
        assert_eq!(c.hangup_cause, "User busy");
        assert_eq!(c.attributes["terminationCode"], "17");
        assert!(!c.attributes.contains_key("callStatus"));
    }

    #[test]
    fn outcomes() {
        for (status, outcome) in [
            (10, CallOutcome::Busy),
            (20, CallOutcome::NoAnswer),
            (30, CallOutcome::Other),
            (40, CallOutcome::Voicemail),
            (50, CallOutcome::Answered),
            (60, CallOutcome::Other),
        ] {
            // Without the sample's answer time the status alone decides.
            let c = &run(&edited(PUSH, |m| {
                drop(m.insert("callStatus".into(), status.to_string().into()));
                drop(m.remove("answerTime"));
            }))
            .unwrap()
            .calls[0];
            assert_eq!(c.outcome, outcome, "{status}");
            assert!(c.quality_flags.is_empty(), "{status}");
            // With it (and talk time), the timings win over any status.
            let c = &run(&edited(PUSH, |m| {
                drop(m.insert("callStatus".into(), status.to_string().into()))
            }))
            .unwrap()
            .calls[0];
            assert_eq!(c.outcome, CallOutcome::Answered, "{status} with timings");
            let flagged = outcome != CallOutcome::Answered;
            assert_eq!(!c.quality_flags.is_empty(), flagged, "{status}");
        }
        for (answered, sip, termination, outcome) in [
            (true, "200", "0", CallOutcome::Answered),
            (false, "600", "1", CallOutcome::Busy),
            (false, "480", "1", CallOutcome::NoAnswer),
            (false, "408", "1", CallOutcome::NoAnswer),
            (false, "487", "1", CallOutcome::NoAnswer),
            (false, "404", "1", CallOutcome::InvalidNumber),
            (false, "484", "1", CallOutcome::InvalidNumber),
            (false, "604", "1", CallOutcome::InvalidNumber),
            (false, "403", "1", CallOutcome::Rejected),
            (false, "603", "1", CallOutcome::Rejected),
            (false, "500", "1", CallOutcome::Other),
            (false, "", "0", CallOutcome::Unspecified),
        ] {
            assert_eq!(
                derived_outcome(answered, sip, Some(termination)),
                outcome,
                "{sip}"
            );
        }
    }

    #[test]
    fn bad_pushes_are_rejected_naming_the_field() {
        for (edit, message) in [
            (("voiceId", Value::Null), "field `voiceId`: is required"),
            (("callee", "".into()), "field `callee`: is required"),
            (("callee", "abc".into()), "field `callee`: has no digits"),
            (
                ("callDuration", (-3).into()),
                "field `callDuration`: must not be negative",
            ),
            (
                ("chargedDuration", i64::MAX.into()),
                "field `chargedDuration`: is too large",
            ),
            (
                ("costEur", "1,5".into()),
                "field `costEur`: must be a decimal amount, not `1,5`",
            ),
            (
                ("rate", 1e-7.into()),
                "field `rate`: must be a decimal amount, not `1e-7`",
            ),
            (
                ("callTime", (-1).into()),
                "field `callTime`: must not be negative",
            ),
            (
                ("hangupTime", 1_670_939_000_000i64.into()),
                "field `hangupTime`: is before `callTime`",
            ),
            (
                ("answerTime", i64::MAX.into()),
                "field `answerTime`: is out of the supported time range (years 1-9999)",
            ),
            (
                ("callStatus", "busy".into()),
                "field `callStatus`: must be a whole number, not `busy`",
            ),
            (
                ("taskId", serde_json::json!({"a": 1})),
                "field `taskId`: must be a string, not an object",
            ),
            (
                ("currency", "euro".into()),
                "field `currency`: must be an ISO 4217 code such as EUR, not `EURO`",
            ),
            (
                ("callTime", 253_402_300_800_000i64.into()),
                "field `callTime`: is out of the supported time range (years 1-9999)",
            ),
        ] {
            let (key, value) = edit;
            let err = run(&edited(PUSH, |m| drop(m.insert(key.into(), value)))).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        let err = run(&edited(PUSH, |m| {
            m.remove("callTime");
            m.remove("submitTime");
        }))
        .unwrap_err();
        assert_eq!(err.to_string(), "field `callTime`: is required");
    }

    #[test]
    fn without_ring_duration_the_ring_instants_give_it() {
        let c = &run(&edited(PUSH, |m| drop(m.remove("ringDuration"))))
            .unwrap()
            .calls[0];
        assert_eq!(c.ring_ms, 12_000);
    }

    #[test]
    fn cost_wins_over_cost_eur_which_is_kept() {
        let c = &run(&edited(PUSH, |m| {
            drop(m.insert("cost".into(), "0.5".into()))
        }))
        .unwrap()
        .calls[0];
        assert_eq!(c.billing.cost, "0.5");
        assert_eq!(c.attributes["costEur"], "0.007875");
        let c = &run(&edited(PUSH, |m| {
            drop(m.insert("cost".into(), Value::Null))
        }))
        .unwrap()
        .calls[0];
        assert_eq!(c.billing.cost, "0.007875");
    }

    #[test]
    fn without_call_time_the_submit_time_stands_in() {
        let c = &run(&edited(PUSH, |m| {
            m.insert("callTime".into(), 0.into());
            m.remove("hangupTime");
        }))
        .unwrap()
        .calls[0];
        assert_eq!(c.call_time, 1_670_939_112_097);
        assert_eq!(c.update_time, Some(1_670_939_112_097));
        assert_eq!(c.total_ms, 0);
    }
}
