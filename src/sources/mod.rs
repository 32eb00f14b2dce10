//! Vendor adapters: one vendor JSON document in, unified domain records out.
//!
//! Pure functions (no I/O), one file per vendor. Every field a vendor sends
//! lands in a typed [`Call`] field or, under the vendor's own name, in
//! `Call.attributes`; `docs/sources.md` has the field-by-field table. Bad input
//! is a [`SourceError`] whose text names the vendor field, because operators
//! read it as the reason a record sits in quarantine.

pub mod alibaba_lvms;
pub mod laaffic;
pub mod smartivr;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::domain::{
    Billing, Call, CallOutcome, Gender, Location, Party, Region, Source, Task, UnixMs,
    normalize_phone,
};

pub use smartivr::outcome_from_dial_status;

/// How to read one source's records: the zone of its zone-less local times
/// and the region of its numbers written without a country code.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub time_zone: jiff::tz::TimeZone,
    pub default_region: Region,
}

impl SourceConfig {
    /// The defaults for a source: `Asia/Shanghai` and `CN`. LAAFFIC numbers are
    /// always international, so its adapter ignores the region.
    pub fn for_source(source: Source) -> Self {
        let _ = source; // every vendor we know today reports Chinese local times
        // The tz database is bundled (`tzdb-bundle-always`), so the lookup only
        // fails if the name were misspelt; fall back to UTC rather than panic.
        let time_zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC);
        SourceConfig {
            time_zone,
            default_region: Region::default(),
        }
    }
}

/// Why a vendor document cannot be turned into records. The text is shown to
/// operators as the quarantine reason, so it names the vendor's field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("record is not valid utf-8 (bad byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("record is not valid json: {0}")]
    InvalidJson(String),
    #[error("record must be a json object, not {0}")]
    NotAnObject(&'static str),
    #[error("source `{0}` is not a vendor: send its calls typed through UpsertCalls")]
    NotAVendor(&'static str),
    #[error("not a recognised {vendor} document: {expected}")]
    UnknownShape {
        vendor: &'static str,
        expected: &'static str,
    },
    #[error("field `{field}`: {reason}")]
    Field { field: String, reason: String },
}

impl SourceError {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SourceError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// What one vendor document held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceBatch {
    pub calls: Vec<Call>,
    /// Task catalog entries (smartivr `info.task`).
    pub tasks: Vec<Task>,
    /// Dialing-list entries (smartivr `v1/task/number`).
    pub numbers: Vec<NumberListEntry>,
}

/// One number of a task's dialing list with its dial status and history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NumberListEntry {
    /// From `call_history[].task_id`; empty when the vendor left it out (the
    /// pipeline knows which task it asked for and fills it in).
    pub task_id: String,
    /// Normalised.
    pub phone: String,
    pub phone_raw: String,
    /// The smartivr dial status 0-12.
    pub status_code: i32,
    pub location: Location,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub call_history: Vec<Call>,
}

/// One vendor JSON document (one record, or an envelope/array the vendor
/// returns) → domain records. Never panics, whatever the bytes.
pub fn parse(source: Source, json: &[u8], cfg: &SourceConfig) -> Result<SourceBatch, SourceError> {
    if source == Source::Api {
        return Err(SourceError::NotAVendor(source.key()));
    }
    let text = std::str::from_utf8(json).map_err(|e| SourceError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let value: Value =
        parse_json_exact(text).map_err(|e| SourceError::InvalidJson(e.to_string()))?;
    if !value.is_object() {
        return Err(SourceError::NotAnObject(json_kind(&value)));
    }
    match source {
        Source::Smartivr => smartivr::parse(&value, cfg),
        Source::Laaffic => laaffic::parse(&value, cfg),
        Source::AlibabaLvms => alibaba_lvms::parse(&value, cfg),
        Source::Api => Err(SourceError::NotAVendor(source.key())),
    }
}

/// Marks, inside a JSON string, a number kept as the vendor wrote it: see
/// [`parse_json_exact`]. As JSON text: `"\u0000\u0001num:0.031250"`.
const EXACT_NUMBER_MARK: &str = "\u{0}\u{1}num:";

/// Parses JSON text keeping every number's digits as the vendor wrote them.
/// serde_json (without its crate-wide `arbitrary_precision` feature, which
/// would break pbjson's number parsing) reads a fraction or an integer
/// beyond 64 bits as an `f64`: `0.031250` would come back `0.03125` and
/// `12345678.123456789` as `12345678.123456787`. Such a number is read
/// instead as a marked string holding its text ([`exact_number`]); whole
/// numbers that fit 64 bits stay numbers. Invalid JSON stays invalid.
pub fn parse_json_exact(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(&mark_inexact_numbers(text))
}

/// The text of a number [`parse_json_exact`] kept as written.
pub(crate) fn exact_number(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => s
            .strip_prefix(EXACT_NUMBER_MARK)
            .filter(|n| is_json_number(n)),
        _ => None,
    }
}

/// True for a number as JSON's grammar writes it.
fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    if b.get(i) == Some(&b'0') {
        i += 1;
    } else if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// The JSON text with each number that an `f64` would round (a fraction, an
/// exponent, an integer beyond 64 bits) turned into a marked string.
fn mark_inexact_numbers(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        if c == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                i += 1;
            }
            let token = &text[start..i];
            let exact = token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok();
            if !exact && is_json_number(token) {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 64));
                out.push_str(&text[copied..start]);
                out.push_str("\"\\u0000\\u0001num:");
                out.push_str(token);
                out.push('"');
                copied = i;
            }
            continue;
        }
        i += 1;
    }
    match out {
        None => std::borrow::Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            std::borrow::Cow::Owned(out)
        }
    }
}

/// Compact JSON of a value, numbers as the vendor wrote them.
pub(crate) fn to_compact_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                out.push('{');
                for (n, (k, v)) in map.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (n, v) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => match exact_number(other) {
                Some(number) => out.push_str(number),
                None => out.push_str(&other.to_string()),
            },
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// The JSON type of a value, as error messages name it.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        v @ Value::String(_) if exact_number(v).is_some() => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as an attribute: strings as they are, scalars as their JSON text,
/// arrays and objects as compact JSON. Null is absence and yields nothing.
pub(crate) fn stringify(value: &Value) -> Option<String> {
    if let Some(number) = exact_number(value) {
        return Some(number.to_owned());
    }
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(to_compact_json(other)),
    }
}

/// True for a JSON number, however it was kept.
pub(crate) fn is_number(value: &Value) -> bool {
    value.is_number() || exact_number(value).is_some()
}

/// Joins a path prefix and a key into the name an error shows (`data[2].bill`).
pub(crate) fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A reader over one vendor JSON object that remembers which keys it mapped,
/// so that everything else can go to attributes: nothing is silently dropped.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
    used: BTreeSet<&'static str>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>, path: impl Into<String>) -> Self {
        Fields {
            map,
            path: path.into(),
            used: BTreeSet::new(),
        }
    }

    /// The error name of a key of this object.
    pub(crate) fn name(&self, key: &str) -> String {
        join_path(&self.path, key)
    }

    pub(crate) fn err(&self, key: &str, reason: impl Into<String>) -> SourceError {
        SourceError::field(self.name(key), reason)
    }

    /// The value without marking it mapped (it will still go to attributes).
    pub(crate) fn peek(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The value, marked mapped. Null counts as absent.
    pub(crate) fn take(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.insert(key);
        self.peek(key)
    }

    /// Marks a key mapped without reading it (when another key stands for it).
    pub(crate) fn consume(&mut self, key: &'static str) {
        self.used.insert(key);
    }

    /// The first of several spellings that has a value (`call_record_id` or
    /// `callRecordId`), else the first.
    pub(crate) fn pick(&self, keys: &[&'static str]) -> &'static str {
        keys.iter()
            .copied()
            .find(|k| self.peek(k).is_some())
            .or_else(|| keys.first().copied())
            .unwrap_or("")
    }

    /// A text field: strings as they are, numbers and booleans as their JSON
    /// text (vendors flip between `"11"` and `11`). Empty text is absent.
    pub(crate) fn string(&mut self, key: &'static str) -> Result<Option<String>, SourceError> {
        if let Some(number) = self.peek(key).and_then(exact_number) {
            self.used.insert(key);
            return Ok(Some(number.to_owned()));
        }
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(v) => Err(self.err(key, format!("must be a string, not {}", json_kind(v)))),
        }
    }

    /// An id or other short text (at most 256 bytes, as for typed calls).
    pub(crate) fn short(&mut self, key: &'static str) -> Result<Option<String>, SourceError> {
        match self.string(key)? {
            Some(text) if text.len() > MAX_ID_LEN => {
                Err(self.err(key, format!("is longer than {MAX_ID_LEN} bytes")))
            }
            other => Ok(other),
        }
    }

    /// Like [`Fields::short`], but absence is an error.
    pub(crate) fn required_short(&mut self, key: &'static str) -> Result<String, SourceError> {
        self.short(key)?.ok_or_else(|| self.err(key, "is required"))
    }

    /// A whole number, given as a JSON number or numeric text.
    pub(crate) fn int(&mut self, key: &'static str) -> Result<Option<i64>, SourceError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        if let Some(text) = exact_number(value) {
            // A fraction, an exponent or an integer beyond 64 bits.
            return match text.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
                Ok(f) if f.fract() == 0.0 || f.is_infinite() => Err(self.err(key, "is too large")),
                _ => Err(self.err(key, format!("must be a whole number, not `{}`", clip(text)))),
            };
        }
        match value {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Some(i))
                } else if n.is_u64() {
                    Err(self.err(key, "is too large"))
                } else {
                    match n.as_f64() {
                        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
                        Some(f) if f.fract() == 0.0 => Err(self.err(key, "is too large")),
                        _ => Err(self.err(key, format!("must be a whole number, not `{n}`"))),
                    }
                }
            }
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => s.trim().parse::<i64>().map(Some).map_err(|_| {
                let digits = s.trim().trim_start_matches('-');
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    self.err(key, "is too large")
                } else {
                    self.err(key, format!("must be a whole number, not `{}`", clip(s)))
                }
            }),
            other => Err(self.err(key, format!("must be a number, not {}", json_kind(other)))),
        }
    }

    /// A whole number that fits an `i32`.
    pub(crate) fn int32(&mut self, key: &'static str) -> Result<Option<i32>, SourceError> {
        match self.int(key)? {
            None => Ok(None),
            Some(i) => i32::try_from(i)
                .map(Some)
                .map_err(|_| self.err(key, "is out of range")),
        }
    }

    /// A count or duration: a whole number that is not negative.
    pub(crate) fn non_negative(&mut self, key: &'static str) -> Result<Option<i64>, SourceError> {
        match self.int(key)? {
            Some(i) if i < 0 => Err(self.err(key, "must not be negative")),
            other => Ok(other),
        }
    }

    /// A duration in seconds, as milliseconds.
    pub(crate) fn seconds_as_ms(&mut self, key: &'static str) -> Result<Option<i64>, SourceError> {
        match self.non_negative(key)? {
            None => Ok(None),
            Some(s) => s
                .checked_mul(1000)
                .map(Some)
                .ok_or_else(|| self.err(key, "is too large")),
        }
    }

    /// A millisecond epoch time; `0` means "did not happen".
    pub(crate) fn epoch_ms(&mut self, key: &'static str) -> Result<Option<UnixMs>, SourceError> {
        match self.int(key)? {
            None | Some(0) => Ok(None),
            Some(ms) if ms < 0 => Err(self.err(key, "must not be negative")),
            Some(ms) => check_ms(ms)
                .map(Some)
                .map_err(|reason| self.err(key, reason)),
        }
    }

    /// A local `yyyy-MM-dd HH:mm:ss` time read in `tz`. MySQL's zero date
    /// (`0000-00-00 00:00:00`) and empty text are absent.
    pub(crate) fn local_time(
        &mut self,
        key: &'static str,
        tz: &jiff::tz::TimeZone,
    ) -> Result<Option<UnixMs>, SourceError> {
        match self.string(key)? {
            None => Ok(None),
            Some(text) => parse_local_time(&text, tz).map_err(|reason| self.err(key, reason)),
        }
    }

    /// A nested object, marked mapped.
    pub(crate) fn object(
        &mut self,
        key: &'static str,
    ) -> Result<Option<&'a Map<String, Value>>, SourceError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.err(key, format!("must be an object, not {}", json_kind(v)))),
        }
    }

    /// A nested object, not marked mapped (its raw JSON stays in attributes).
    pub(crate) fn peek_object(
        &self,
        key: &str,
    ) -> Result<Option<&'a Map<String, Value>>, SourceError> {
        match self.peek(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.err(key, format!("must be an object, not {}", json_kind(v)))),
        }
    }

    /// A nested array, not marked mapped.
    pub(crate) fn peek_array(&self, key: &str) -> Result<&'a [Value], SourceError> {
        match self.peek(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(v) => Err(self.err(key, format!("must be an array, not {}", json_kind(v)))),
        }
    }

    /// A nested array, marked mapped.
    pub(crate) fn array(&mut self, key: &'static str) -> Result<&'a [Value], SourceError> {
        self.consume(key);
        self.peek_array(key)
    }

    /// Every key not mapped to a typed field, stringified, for attributes.
    pub(crate) fn rest(&self) -> BTreeMap<String, String> {
        self.map
            .iter()
            .filter(|(k, _)| !self.used.contains(k.as_str()))
            .filter(|(_, v)| !is_empty_container(v))
            .filter_map(|(k, v)| stringify(v).map(|s| (k.clone(), s)))
            .collect()
    }
}

/// `[]` and `{}` say nothing, like null, and are not kept as attributes.
pub(crate) fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Shortens a vendor value quoted in an error message.
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// Earliest and latest accepted instants, years 1 and 9999, as the typed
/// `UpsertCalls` path accepts them.
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Longest id or other short text accepted, as for typed calls.
pub(crate) use crate::domain::limits::MAX_ID_BYTES as MAX_ID_LEN;

/// Checks that milliseconds are an instant callscope can store.
pub(crate) fn check_ms(ms: i64) -> Result<UnixMs, String> {
    if (MIN_MS..=MAX_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err("is out of the supported time range (years 1-9999)".to_string())
    }
}

/// Reads `yyyy-MM-dd HH:mm:ss` in `tz`; `Ok(None)` for the zero date.
pub(crate) fn parse_local_time(
    text: &str,
    tz: &jiff::tz::TimeZone,
) -> Result<Option<UnixMs>, String> {
    let text = text.trim();
    if text.starts_with("0000-00-00") {
        return Ok(None);
    }
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", text).map_err(|_| {
        format!(
            "is not a valid `yyyy-MM-dd HH:mm:ss` time: `{}`",
            clip(text)
        )
    })?;
    // A wall time skipped or repeated by a DST change takes the earlier offset,
    // as the vendor's own clock would have shown it.
    let zoned = tz
        .to_ambiguous_zoned(civil)
        .compatible()
        .map_err(|_| format!("is out of the supported time range: `{}`", clip(text)))?;
    check_ms(zoned.timestamp().as_millisecond())
        .map(Some)
        .map_err(|reason| format!("{reason}: `{}`", clip(text)))
}

/// `later - earlier` in ms, or an error naming `later_field` when the vendor's
/// times run backwards.
pub(crate) fn span_ms(
    earlier: UnixMs,
    later: UnixMs,
    later_field: &str,
    earlier_field: &str,
) -> Result<i64, SourceError> {
    match later.checked_sub(earlier) {
        Some(d) if d >= 0 => Ok(d),
        Some(_) => Err(SourceError::field(
            later_field,
            format!("is before `{earlier_field}`"),
        )),
        None => Err(SourceError::field(
            later_field,
            "is out of the supported time range",
        )),
    }
}

/// Normalises a phone number, naming the field when it has no digits.
pub(crate) fn phone(field: &str, raw: &str, region: Region) -> Result<String, SourceError> {
    normalize_phone(raw, region).map_err(|e| SourceError::field(field, e.to_string()))
}

/// A call with only its identity set; adapters fill in the rest.
pub(crate) fn blank_call(source: Source, external_id: String, call_time: UnixMs) -> Call {
    Call {
        source,
        external_id,
        task_id: String::new(),
        parent_task_id: String::new(),
        script_id: String::new(),
        callee: String::new(),
        callee_raw: String::new(),
        caller: String::new(),
        caller_raw: String::new(),
        submit_time: None,
        call_time,
        ring_time: None,
        answer_time: None,
        hangup_time: None,
        ring_ms: 0,
        talk_ms: 0,
        total_ms: 0,
        billed_ms: 0,
        outcome: CallOutcome::Unspecified,
        vendor_status: String::new(),
        hangup_cause: String::new(),
        sip_code: String::new(),
        hangup_by: Party::Unspecified,
        score: None,
        intent_level: None,
        rounds: 0,
        tags: Vec::new(),
        tag_groups: Vec::new(),
        recording_url: String::new(),
        gender: Gender::Unspecified,
        location: Location::default(),
        billing: Billing::default(),
        dtmf: String::new(),
        recall_count: 0,
        recall_of: String::new(),
        customer_name: String::new(),
        line_id: String::new(),
        attributes: BTreeMap::new(),
        turns: Vec::new(),
        update_time: None,
        quality_flags: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SourceConfig {
        SourceConfig::for_source(Source::Smartivr)
    }

    #[test]
    fn numbers_keep_the_vendors_digits() {
        let value = parse_json_exact(
            r#"{"a": 0.031250, "b": 12345678.123456789, "c": 7, "d": "0.5", "e": [1.50, {"f": 1e-7}],
               "g": 123456789012345678901234, "h": -0, "i": "x\"1.5"}"#,
        )
        .unwrap();
        let text = |k: &str| stringify(&value[k]).unwrap();
        assert_eq!(text("a"), "0.031250");
        assert_eq!(text("b"), "12345678.123456789");
        assert_eq!(value["c"], Value::from(7));
        assert_eq!(text("d"), "0.5");
        assert_eq!(text("e"), r#"[1.50,{"f":1e-7}]"#);
        assert_eq!(text("g"), "123456789012345678901234");
        assert_eq!(text("i"), "x\"1.5");
        assert_eq!(json_kind(&value["a"]), "a number");
        let map = value.as_object().unwrap();
        let mut f = Fields::new(map, "");
        assert_eq!(f.string("a").unwrap().as_deref(), Some("0.031250"));
        assert_eq!(
            f.int("b").unwrap_err().to_string(),
            "field `b`: must be a whole number, not `12345678.123456789`"
        );
        assert_eq!(
            f.int("g").unwrap_err().to_string(),
            "field `g`: is too large"
        );
        // Invalid numbers stay invalid JSON; a marked string must hold a number.
        for bad in [
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": .5}"#,
            r#"{"a": 1.2.3}"#,
        ] {
            assert!(parse_json_exact(bad).is_err(), "{bad}");
        }
        let fake = parse_json_exact(r#"{"a": "\u0000\u0001num:abc"}"#).unwrap();
        assert_eq!(exact_number(&fake["a"]), None);
    }

    #[test]
    fn api_is_not_a_vendor() {
        let err = parse(Source::Api, b"{}", &cfg()).unwrap_err();
        assert!(matches!(err, SourceError::NotAVendor(_)));
        assert!(err.to_string().contains("SOURCE_API"));
    }

    #[test]
    fn bytes_that_are_not_a_json_object_are_rejected_with_a_reason() {
        let bad_utf8 = parse(Source::Laaffic, b"{\"a\":\"\xff\"}", &cfg()).unwrap_err();
        assert_eq!(bad_utf8, SourceError::InvalidUtf8 { offset: 6 });
        let bad_json = parse(Source::Laaffic, b"{\"a\":", &cfg()).unwrap_err();
        assert!(
            bad_json.to_string().starts_with("record is not valid json"),
            "{bad_json}"
        );
        let array = parse(Source::AlibabaLvms, b"[1]", &cfg()).unwrap_err();
        assert_eq!(
            array.to_string(),
            "record must be a json object, not an array"
        );
    }

    #[test]
    fn shanghai_local_times_become_utc() {
        let tz = cfg().time_zone;
        // 2019-04-22T10:19:47Z
        assert_eq!(
            parse_local_time("2019-04-22 18:19:47", &tz),
            Ok(Some(1_555_928_387_000))
        );
        assert_eq!(parse_local_time("0000-00-00 00:00:00", &tz), Ok(None));
        let err = parse_local_time("2019-02-30 10:00:00", &tz).unwrap_err();
        assert!(err.contains("2019-02-30"), "{err}");
        assert!(parse_local_time("2019-04-22T18:19:47", &tz).is_err());
    }

    #[test]
    fn numbers_arrive_as_numbers_or_text() {
        let map = serde_json::json!({
            "a": 5, "b": "7", "c": -1, "d": 1.5, "e": "x", "f": 18446744073709551615u64,
            "g": "99999999999999999999", "h": [1], "i": null, "j": "", "k": 2.0
        });
        let map = map.as_object().unwrap();
        let mut f = Fields::new(map, "");
        assert_eq!(f.int("a"), Ok(Some(5)));
        assert_eq!(f.int("b"), Ok(Some(7)));
        assert_eq!(
            f.non_negative("c").unwrap_err().to_string(),
            "field `c`: must not be negative"
        );
        assert!(f.int("d").is_err());
        assert!(f.int("e").unwrap_err().to_string().contains("whole number"));
        assert_eq!(
            f.int("f").unwrap_err().to_string(),
            "field `f`: is too large"
        );
        assert_eq!(
            f.int("g").unwrap_err().to_string(),
            "field `g`: is too large"
        );
        assert!(f.int("h").is_err());
        assert_eq!(f.int("i"), Ok(None));
        assert_eq!(f.int("j"), Ok(None));
        assert_eq!(f.int("k"), Ok(Some(2)));
        assert_eq!(f.seconds_as_ms("a"), Ok(Some(5000)));
        assert!(f.rest().is_empty());
    }

    #[test]
    fn seconds_that_overflow_milliseconds_are_rejected() {
        let map = serde_json::json!({ "s": i64::MAX, "t": i64::MAX });
        let mut f = Fields::new(map.as_object().unwrap(), "x");
        assert_eq!(
            f.seconds_as_ms("s").unwrap_err().to_string(),
            "field `x.s`: is too large"
        );
        assert!(
            f.epoch_ms("t")
                .unwrap_err()
                .to_string()
                .contains("time range")
        );
    }

    mod never_panics {
        //! Property tests: whatever arrives, `parse` answers with a value or
        //! an error, never a panic.

        use proptest::prelude::*;
        use proptest::sample::Index;

        use super::super::*;

        const FIXTURES: &[(Source, &str)] = &[
            (
                Source::Smartivr,
                include_str!("../../tests/fixtures/smartivr/call_record.json"),
            ),
            (
                Source::Smartivr,
                include_str!("../../tests/fixtures/smartivr/query_done_task_phones.json"),
            ),
            (
                Source::Smartivr,
                include_str!("../../tests/fixtures/smartivr/record_brief.json"),
            ),
            (
                Source::Smartivr,
                include_str!("../../tests/fixtures/smartivr/record_info.json"),
            ),
            (
                Source::Smartivr,
                include_str!("../../tests/fixtures/smartivr/task_number.json"),
            ),
            (
                Source::Smartivr,
                include_str!("../../tests/fixtures/smartivr/number_entry.json"),
            ),
            (
                Source::Laaffic,
                include_str!("../../tests/fixtures/laaffic/push.json"),
            ),
            (
                Source::Laaffic,
                include_str!("../../tests/fixtures/laaffic/push_legacy_busy.json"),
            ),
            (
                Source::AlibabaLvms,
                include_str!("../../tests/fixtures/alibaba_lvms/receivecallrecord.json"),
            ),
            (
                Source::AlibabaLvms,
                include_str!("../../tests/fixtures/alibaba_lvms/bare_record.json"),
            ),
            (
                Source::AlibabaLvms,
                include_str!("../../tests/fixtures/alibaba_lvms/record_as_string.json"),
            ),
            (
                Source::AlibabaLvms,
                include_str!("../../tests/fixtures/alibaba_lvms/camel_case.json"),
            ),
        ];

        /// Values a vendor might plausibly get wrong, plus arbitrary ones.
        fn arb_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                prop_oneof![
                    Just("2019-02-30 10:00:00"),
                    Just("9999-12-31 23:59:59"),
                    Just("-1"),
                    Just("99999999999999999999"),
                    Just("1e5"),
                    Just("{\"a\":1}"),
                    Just("{}"),
                    Just(""),
                    Just("asrprogress_notify"),
                ]
                .prop_map(Value::from),
                ".{0,12}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// JSON pointers of every value in the document.
        fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
            match value {
                Value::Object(m) => {
                    for (k, v) in m {
                        pointers(
                            v,
                            format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                            out,
                        );
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        pointers(v, format!("{at}/{i}"), out);
                    }
                }
                _ => {}
            }
            out.push(at);
        }

        #[derive(Debug, Clone)]
        enum Mutation {
            Replace(Index, Value),
            Remove(Index),
            Insert(Index, String, Value),
        }

        fn arb_mutation() -> impl Strategy<Value = Mutation> {
            prop_oneof![
                3 => (any::<Index>(), arb_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
                1 => any::<Index>().prop_map(Mutation::Remove),
                1 => (any::<Index>(), "[a-zA-Z_]{1,24}", arb_value()).prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
            ]
        }

        fn apply(doc: &mut Value, mutation: &Mutation) {
            let mut all: Vec<String> = Vec::new();
            pointers(doc, String::new(), &mut all);
            match mutation {
                Mutation::Replace(i, v) => {
                    if let Some(slot) = doc.pointer_mut(i.get::<String>(&all)) {
                        *slot = v.clone();
                    }
                }
                Mutation::Remove(i) => {
                    let at = i.get::<String>(&all).clone();
                    if let Some((parent, key)) = at.rsplit_once('/')
                        && let Some(Value::Object(m)) = doc.pointer_mut(parent)
                    {
                        m.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                }
                Mutation::Insert(i, k, v) => {
                    if let Some(Value::Object(m)) = doc.pointer_mut(i.get::<String>(&all)) {
                        m.insert(k.clone(), v.clone());
                    }
                }
            }
        }

        fn any_source() -> impl Strategy<Value = Source> {
            prop::sample::select(Source::ALL.to_vec())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn on_arbitrary_bytes(source in any_source(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = parse(source, &bytes, &SourceConfig::for_source(source));
            }

            #[test]
            fn on_arbitrary_json(source in any_source(), value in arb_value()) {
                let _ = parse(source, value.to_string().as_bytes(), &SourceConfig::for_source(source));
            }

            #[test]
            fn on_mutated_fixtures(
                fixture in any::<Index>(),
                mutations in prop::collection::vec(arb_mutation(), 1..6),
            ) {
                let (source, text) = *fixture.get(FIXTURES);
                let mut doc: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                for m in &mutations {
                    apply(&mut doc, m);
                }
                let cfg = SourceConfig::for_source(source);
                let _ = parse(source, doc.to_string().as_bytes(), &cfg);
                // Truncations of a real record exercise the json error paths.
                let bytes = doc.to_string().into_bytes();
                let _ = parse(source, &bytes[..bytes.len() / 2], &cfg);
            }
        }

        #[test]
        fn every_fixture_parses() {
            for (source, text) in FIXTURES {
                let batch = parse(*source, text.as_bytes(), &SourceConfig::for_source(*source));
                assert!(batch.is_ok(), "{source:?}: {batch:?}");
            }
        }
    }
}
