//! The unified call record and its parts, as every vendor's records become it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits::{
    self, MAX_CALL_MS, MAX_DECIMAL_FRACTION_DIGITS, MAX_DECIMAL_INT_DIGITS, MAX_ID_BYTES,
    MAX_LONG_TEXT_BYTES, MAX_TAGS, MAX_TEXT_BYTES, MAX_TURNS, MAX_URL_BYTES, check_attributes,
    check_count, check_score, check_text,
};
use super::{UnixMs, Violations};

/// Declares an enum whose numbers are the wire numbers of the proto enum of the
/// same name, with the proto value name as its key.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal => $key:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant = $code),+ }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire number.
            pub fn code(self) -> i32 {
                self as i32
            }

            /// The value with this wire number.
            pub fn from_code(code: i32) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The proto value name, e.g. `CALL_OUTCOME_ANSWERED`.
            pub fn key(self) -> &'static str {
                match self {
                    $($name::$variant => $key,)+
                }
            }
        }
    };
}

code_enum! {
    /// Where a record came from.
    Source {
        Smartivr = 1 => "SOURCE_SMARTIVR",
        Laaffic = 2 => "SOURCE_LAAFFIC",
        AlibabaLvms = 3 => "SOURCE_ALIBABA_LVMS",
        Api = 4 => "SOURCE_API",
    }
}

impl Source {
    /// The short name used in URLs and on the command line (`alibaba-lvms`).
    pub fn slug(self) -> &'static str {
        match self {
            Source::Smartivr => "smartivr",
            Source::Laaffic => "laaffic",
            Source::AlibabaLvms => "alibaba-lvms",
            Source::Api => "api",
        }
    }

    /// A source by its slug, or by its proto name.
    pub fn from_slug(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase().replace('_', "-");
        Source::ALL
            .iter()
            .copied()
            .find(|s| s.slug() == text || s.key().to_ascii_lowercase().replace('_', "-") == text)
    }
}

code_enum! {
    /// How a call ended, unified across vendors.
    CallOutcome {
        Unspecified = 0 => "CALL_OUTCOME_UNSPECIFIED",
        Answered = 1 => "CALL_OUTCOME_ANSWERED",
        NoAnswer = 2 => "CALL_OUTCOME_NO_ANSWER",
        Busy = 3 => "CALL_OUTCOME_BUSY",
        Rejected = 4 => "CALL_OUTCOME_REJECTED",
        Voicemail = 5 => "CALL_OUTCOME_VOICEMAIL",
        InvalidNumber = 6 => "CALL_OUTCOME_INVALID_NUMBER",
        PoweredOff = 7 => "CALL_OUTCOME_POWERED_OFF",
        Suspended = 8 => "CALL_OUTCOME_SUSPENDED",
        LineFailure = 9 => "CALL_OUTCOME_LINE_FAILURE",
        CallBarred = 10 => "CALL_OUTCOME_CALL_BARRED",
        Arrears = 11 => "CALL_OUTCOME_ARREARS",
        Blacklisted = 12 => "CALL_OUTCOME_BLACKLISTED",
        CallLoss = 13 => "CALL_OUTCOME_CALL_LOSS",
        Other = 14 => "CALL_OUTCOME_OTHER",
    }
}

code_enum! {
    /// A side of the conversation.
    Party {
        Unspecified = 0 => "PARTY_UNSPECIFIED",
        Robot = 1 => "PARTY_ROBOT",
        Customer = 2 => "PARTY_CUSTOMER",
    }
}

code_enum! {
    /// The callee's gender as voice analysis reports it.
    Gender {
        Unspecified = 0 => "GENDER_UNSPECIFIED",
        Female = 1 => "GENDER_FEMALE",
        Male = 2 => "GENDER_MALE",
        LikelyFemale = 3 => "GENDER_LIKELY_FEMALE",
        LikelyMale = 4 => "GENDER_LIKELY_MALE",
    }
}

code_enum! {
    /// What a dialogue turn is.
    TurnKind {
        RobotPrompt = 1 => "TURN_KIND_ROBOT_PROMPT",
        CustomerUtterance = 2 => "TURN_KIND_CUSTOMER_UTTERANCE",
        Progress = 3 => "TURN_KIND_PROGRESS",
    }
}

/// A family of tags ("interested").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagGroup {
    pub id: String,
    pub name: String,
    pub scene_id: String,
}

/// A tag put on a call or a turn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub id: String,
    pub name: String,
    pub color: String,
    pub description: String,
    pub groups: Vec<TagGroup>,
}

/// The customer's intent level (A/B/C/D).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentLevel {
    pub id: String,
    pub name: String,
    pub alias: String,
    pub color: String,
}

/// Where a number is registered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub province: String,
    pub city: String,
    pub area_code: String,
    pub carrier: String,
    pub region: String,
    pub post_code: String,
}

/// What a call cost; amounts are decimal strings, checked by [`is_decimal`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    pub rate: String,
    pub base_cost: String,
    pub cost: String,
    pub currency: String,
    pub settle_rate: String,
    pub settle_cost: String,
    pub quote_exchange: String,
    pub bill_period: String,
    /// The currency of `base_cost` (LAAFFIC: USD, whatever `currency` is).
    pub base_cost_currency: String,
    /// The currency of `settle_rate` and `settle_cost`.
    pub settle_currency: String,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogueTurn {
    pub sequence: i32,
    pub kind: TurnKind,
    pub customer_text: String,
    pub robot_text: String,
    pub node_id: String,
    pub node_name: String,
    pub keyword: String,
    pub score: i32,
    pub speak_ms: i64,
    pub play_ms: i64,
    pub asr_latency_ms: i64,
    pub tags: Vec<Tag>,
    pub time: Option<UnixMs>,
    pub after_transfer: bool,
    pub turn_id: String,
    pub attributes: BTreeMap<String, String>,
}

/// A call as callscope keeps it, whatever vendor it came from. Phone numbers
/// are already normalised; times are UTC milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub source: Source,
    pub external_id: String,
    pub task_id: String,
    pub parent_task_id: String,
    pub script_id: String,
    pub callee: String,
    pub callee_raw: String,
    pub caller: String,
    pub caller_raw: String,
    pub submit_time: Option<UnixMs>,
    pub call_time: UnixMs,
    pub ring_time: Option<UnixMs>,
    pub answer_time: Option<UnixMs>,
    pub hangup_time: Option<UnixMs>,
    pub ring_ms: i64,
    pub talk_ms: i64,
    pub total_ms: i64,
    pub billed_ms: i64,
    pub outcome: CallOutcome,
    pub vendor_status: String,
    pub hangup_cause: String,
    pub sip_code: String,
    pub hangup_by: Party,
    pub score: Option<i32>,
    pub intent_level: Option<IntentLevel>,
    pub rounds: i32,
    pub tags: Vec<Tag>,
    /// Groups the call hit beyond those of its tags (smartivr's `tag_groups`).
    pub tag_groups: Vec<TagGroup>,
    pub recording_url: String,
    pub gender: Gender,
    pub location: Location,
    pub billing: Billing,
    pub dtmf: String,
    pub recall_count: i32,
    pub recall_of: String,
    pub customer_name: String,
    pub line_id: String,
    pub attributes: BTreeMap<String, String>,
    pub turns: Vec<DialogueTurn>,
    pub update_time: Option<UnixMs>,
    /// Data-quality findings about the vendor's record ([`quality_flag`]),
    /// set by the adapters; never sent by clients.
    pub quality_flags: Vec<String>,
}

/// The names of the data-quality flags a call may carry (`Call.quality_flags`).
pub mod quality_flag {
    /// The vendor's status says the call was not connected, but its own
    /// timings say it was (an answer time and talk time): the timings
    /// decided the outcome, the status is kept in `vendor_status`.
    pub const STATUS_CONTRADICTS_TIMINGS: &str = "status_contradicts_timings";
    /// Every flag, for validating filters.
    pub const ALL: &[&str] = &[STATUS_CONTRADICTS_TIMINGS];
}

impl Call {
    /// The vendor's second id of the call, by which `CallFilter.external_ids`
    /// also finds it: smartivr's record `id` (its `callid` is the external
    /// id). Empty for other sources.
    pub fn alt_id(&self) -> &str {
        match self.source {
            Source::Smartivr => self.attributes.get("record_id").map_or("", String::as_str),
            _ => "",
        }
    }

    /// The bounds every stored call keeps, whatever door it came in by (typed
    /// calls and vendor records alike): every text, list and map within its
    /// limit of [`limits`], no NUL character, scores in range, durations of
    /// at most 30 days. Field paths are relative to the call.
    pub fn limit_violations(&self) -> Violations {
        let mut v = Violations::new();
        self.check_limits(&mut v, false);
        v
    }

    /// Everything wrong with a typed call (UpsertCalls): its limits plus the
    /// rules a client is held to and a vendor record is not (ids given,
    /// durations not negative, amounts as decimals, ISO currency codes,
    /// unique turn sequence numbers).
    pub fn violations(&self) -> Violations {
        let mut v = Violations::new();
        // Lengths and NUL characters are checked with the limits below.
        if self.external_id.trim().is_empty() {
            v.add("external_id", "is required");
        }
        if self.callee.is_empty() {
            v.add("callee", "is required");
        }
        for (field, value) in [
            ("ring_ms", self.ring_ms),
            ("talk_ms", self.talk_ms),
            ("total_ms", self.total_ms),
            ("billed_ms", self.billed_ms),
            ("rounds", self.rounds.into()),
            ("recall_count", self.recall_count.into()),
        ] {
            non_negative(&mut v, field, value);
        }
        let b = &self.billing;
        for (field, value) in [
            ("billing.rate", &b.rate),
            ("billing.base_cost", &b.base_cost),
            ("billing.cost", &b.cost),
            ("billing.settle_rate", &b.settle_rate),
            ("billing.settle_cost", &b.settle_cost),
            ("billing.quote_exchange", &b.quote_exchange),
        ] {
            if !value.is_empty() && !is_decimal(value) {
                v.add(
                    field,
                    "must be a decimal such as 0.0125 (at most 9 integer and 30 fraction digits)",
                );
            }
        }
        for (field, code) in [
            ("billing.currency", &b.currency),
            ("billing.base_cost_currency", &b.base_cost_currency),
            ("billing.settle_currency", &b.settle_currency),
        ] {
            if !code.is_empty() && !is_currency_code(code) {
                v.add(field, "must be an ISO 4217 code such as EUR");
            }
        }
        for (i, turn) in self.turns.iter().enumerate() {
            for (field, value) in [
                ("speak_ms", turn.speak_ms),
                ("play_ms", turn.play_ms),
                ("asr_latency_ms", turn.asr_latency_ms),
            ] {
                non_negative(&mut v, &format!("turns[{i}].{field}"), value);
            }
        }
        let mut sequences: Vec<i32> = self.turns.iter().map(|t| t.sequence).collect();
        sequences.sort_unstable();
        if sequences.windows(2).any(|w| w[0] == w[1]) {
            v.add("turns", "sequence numbers must be unique");
        }
        self.check_limits(&mut v, true);
        v
    }

    /// `strict`: ids of tags, groups and the intent level must be given.
    fn check_limits(&self, v: &mut Violations, strict: bool) {
        for (field, ms) in [
            ("ring_ms", self.ring_ms),
            ("talk_ms", self.talk_ms),
            ("total_ms", self.total_ms),
            ("billed_ms", self.billed_ms),
        ] {
            if ms > MAX_CALL_MS {
                v.add(field, "must be at most 30 days (2592000000 ms)");
            }
        }
        let l = &self.location;
        let b = &self.billing;
        for (field, text) in [
            ("external_id", &self.external_id),
            ("task_id", &self.task_id),
            ("parent_task_id", &self.parent_task_id),
            ("script_id", &self.script_id),
            ("callee", &self.callee),
            ("callee_raw", &self.callee_raw),
            ("caller", &self.caller),
            ("caller_raw", &self.caller_raw),
            ("vendor_status", &self.vendor_status),
            ("sip_code", &self.sip_code),
            ("recall_of", &self.recall_of),
            ("customer_name", &self.customer_name),
            ("line_id", &self.line_id),
            ("location.province", &l.province),
            ("location.city", &l.city),
            ("location.area_code", &l.area_code),
            ("location.carrier", &l.carrier),
            ("location.region", &l.region),
            ("location.post_code", &l.post_code),
            ("billing.rate", &b.rate),
            ("billing.base_cost", &b.base_cost),
            ("billing.cost", &b.cost),
            ("billing.currency", &b.currency),
            ("billing.settle_rate", &b.settle_rate),
            ("billing.settle_cost", &b.settle_cost),
            ("billing.quote_exchange", &b.quote_exchange),
            ("billing.bill_period", &b.bill_period),
            ("billing.base_cost_currency", &b.base_cost_currency),
            ("billing.settle_currency", &b.settle_currency),
        ] {
            check_text(v, field, text, MAX_ID_BYTES);
        }
        check_text(v, "hangup_cause", &self.hangup_cause, MAX_TEXT_BYTES);
        check_text(v, "dtmf", &self.dtmf, MAX_TEXT_BYTES);
        check_text(v, "recording_url", &self.recording_url, MAX_URL_BYTES);
        if let Some(score) = self.score {
            check_score(v, "score", score);
        }
        if let Some(level) = &self.intent_level {
            level.check(v, "intent_level", strict);
        }
        check_tags(v, "tags", &self.tags, strict);
        check_groups(v, "tag_groups", &self.tag_groups, strict);
        check_attributes(v, "attributes", &self.attributes);
        check_count(v, "turns", self.turns.len(), MAX_TURNS);
        if self.turns.len() <= MAX_TURNS {
            for (i, turn) in self.turns.iter().enumerate() {
                turn.check(v, &format!("turns[{i}]"), strict);
            }
        }
    }

    /// A fingerprint of everything the record says, to tell a real change
    /// from a re-send of the same record.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        // Serialising plain structs with BTreeMaps cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A call as stored: the record plus what callscope assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCall {
    pub call_id: String,
    pub sync_time: UnixMs,
    pub call: Call,
}

impl TagGroup {
    /// Everything wrong with a group sent on its own (UpsertTags).
    pub fn violations(&self) -> Violations {
        let mut v = Violations::new();
        self.check(&mut v, "", true);
        v
    }

    fn check(&self, v: &mut Violations, path: &str, strict: bool) {
        check_id(v, &join(path, "id"), &self.id, strict);
        check_text(v, join(path, "name"), &self.name, MAX_ID_BYTES);
        check_text(v, join(path, "scene_id"), &self.scene_id, MAX_ID_BYTES);
    }
}

impl Tag {
    /// Everything wrong with a tag sent on its own (UpsertTags).
    pub fn violations(&self) -> Violations {
        let mut v = Violations::new();
        self.check(&mut v, "", true);
        v
    }

    fn check(&self, v: &mut Violations, path: &str, strict: bool) {
        check_id(v, &join(path, "id"), &self.id, strict);
        check_text(v, join(path, "name"), &self.name, MAX_ID_BYTES);
        check_text(v, join(path, "color"), &self.color, MAX_ID_BYTES);
        check_text(
            v,
            join(path, "description"),
            &self.description,
            MAX_TEXT_BYTES,
        );
        check_groups(v, &join(path, "groups"), &self.groups, strict);
    }
}

impl IntentLevel {
    /// True when the level was sent with a name, alias or colour, not by
    /// id only: then a call keeps it as sent.
    pub fn is_named(&self) -> bool {
        !self.name.is_empty() || !self.alias.is_empty() || !self.color.is_empty()
    }

    /// Everything wrong with a level sent on its own (UpsertIntentLevels).
    pub fn violations(&self) -> Violations {
        let mut v = Violations::new();
        self.check(&mut v, "", true);
        v
    }

    fn check(&self, v: &mut Violations, path: &str, strict: bool) {
        check_id(v, &join(path, "id"), &self.id, strict);
        for (field, text) in [
            ("name", &self.name),
            ("alias", &self.alias),
            ("color", &self.color),
        ] {
            check_text(v, join(path, field), text, MAX_ID_BYTES);
        }
    }
}

impl DialogueTurn {
    fn check(&self, v: &mut Violations, path: &str, strict: bool) {
        let p = |field: &str| join(path, field);
        for (field, text) in [
            ("customer_text", &self.customer_text),
            ("robot_text", &self.robot_text),
        ] {
            check_text(v, p(field), text, MAX_LONG_TEXT_BYTES);
        }
        check_text(v, p("node_id"), &self.node_id, MAX_ID_BYTES);
        check_text(v, p("turn_id"), &self.turn_id, MAX_ID_BYTES);
        check_text(v, p("node_name"), &self.node_name, MAX_TEXT_BYTES);
        check_text(v, p("keyword"), &self.keyword, MAX_TEXT_BYTES);
        check_score(v, p("score"), self.score);
        check_tags(v, &p("tags"), &self.tags, strict);
        check_attributes(v, &p("attributes"), &self.attributes);
    }
}

impl Task {
    /// Everything wrong with a task sent on its own (UpsertTasks).
    pub fn violations(&self) -> Violations {
        let mut v = Violations::new();
        limits::check_required_id(&mut v, "task_id", &self.task_id);
        for (field, text) in [
            ("name", &self.name),
            ("parent_task_id", &self.parent_task_id),
            ("script_id", &self.script_id),
        ] {
            check_text(&mut v, field, text, MAX_ID_BYTES);
        }
        check_attributes(&mut v, "attributes", &self.attributes);
        v
    }
}

/// `path.field`, or `field` at the top.
fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn check_id(v: &mut Violations, field: &str, id: &str, required: bool) {
    if required {
        limits::check_required_id(v, field, id);
    } else {
        check_text(v, field, id, MAX_ID_BYTES);
    }
}

fn check_tags(v: &mut Violations, path: &str, tags: &[Tag], strict: bool) {
    check_count(v, path, tags.len(), MAX_TAGS);
    if tags.len() <= MAX_TAGS {
        for (i, tag) in tags.iter().enumerate() {
            tag.check(v, &format!("{path}[{i}]"), strict);
        }
    }
}

fn check_groups(v: &mut Violations, path: &str, groups: &[TagGroup], strict: bool) {
    check_count(v, path, groups.len(), MAX_TAGS);
    if groups.len() <= MAX_TAGS {
        for (i, group) in groups.iter().enumerate() {
            group.check(v, &format!("{path}[{i}]"), strict);
        }
    }
}

fn non_negative(v: &mut Violations, field: &str, value: i64) {
    if value < 0 {
        v.add(field, "must not be negative");
    }
}

/// A campaign in the task catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Task {
    pub task_id: String,
    pub name: String,
    pub parent_task_id: String,
    pub script_id: String,
    pub source: Option<Source>,
    pub create_time: Option<UnixMs>,
    pub update_time: Option<UnixMs>,
    pub attributes: BTreeMap<String, String>,
}

/// A task's vendor fields with a typed place in the catalog, read from the
/// attributes a vendor's task record left (smartivr `info.task`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskVendorFields {
    /// The run state as the vendor names it (`start_str`).
    pub status: String,
    /// Calls at once (`maximumcall`); 0 when not given or not a number.
    pub concurrency: i32,
    /// The number it dials from (`_origination_caller_id_number`).
    pub caller: String,
    /// The script group's name (`group_str`).
    pub script_group: String,
}

impl Task {
    /// The vendor fields of a smartivr task; empty for any other source, whose
    /// attributes may use these names for something else.
    pub fn vendor_fields(&self) -> TaskVendorFields {
        if self.source != Some(Source::Smartivr) {
            return TaskVendorFields::default();
        }
        let get = |key: &str| self.attributes.get(key).cloned().unwrap_or_default();
        TaskVendorFields {
            status: get("start_str"),
            concurrency: get("maximumcall").trim().parse().unwrap_or(0),
            caller: get("_origination_caller_id_number"),
            script_group: get("group_str"),
        }
    }
}

/// A vendor record that could not be stored, kept as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    pub id: String,
    pub source: Option<Source>,
    /// How it arrived: `grpc`, `http` or `import`.
    pub channel: String,
    pub reason: String,
    pub payload: Vec<u8>,
    /// The size of the payload as received (the stored copy may be cut short).
    pub payload_size: i64,
    pub receive_time: UnixMs,
}

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    Inserted,
    Updated,
    /// The same content as stored, or older than what is stored.
    Unchanged,
    /// The call was erased (AdminService.ErasePhone) and is not stored
    /// again; the result carries no call id.
    Erased,
}

/// The result of storing one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertResult {
    pub call_id: String,
    pub outcome: UpsertOutcome,
}

/// True for a plain decimal such as `0.007875`, `-1` or `12.50`, with at
/// most 9 integer and 30 fraction digits.
pub fn is_decimal(text: &str) -> bool {
    let body = text.strip_prefix('-').unwrap_or(text);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    !int.is_empty()
        && int.len() <= MAX_DECIMAL_INT_DIGITS
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| {
            !f.is_empty()
                && f.len() <= MAX_DECIMAL_FRACTION_DIGITS
                && f.bytes().all(|b| b.is_ascii_digit())
        })
}

/// True for an ISO 4217 code as written: three uppercase ASCII letters.
pub fn is_currency_code(text: &str) -> bool {
    text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sample::sample_call;

    #[test]
    fn a_sample_call_is_valid() {
        assert_eq!(sample_call().violations(), Violations::new());
    }

    #[test]
    fn hostile_sizes_are_named() {
        let mega = "x".repeat(1 << 20);
        let mut call = sample_call();
        call.recording_url = mega.clone();
        call.hangup_cause = mega.clone();
        call.dtmf = mega.clone();
        call.tags[0].color = mega.clone();
        call.score = Some(i32::MIN);
        call.turns[1].score = i32::MAX;
        let fields: Vec<String> = call
            .limit_violations()
            .0
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "hangup_cause",
                "dtmf",
                "recording_url",
                "score",
                "tags[0].color",
                "turns[1].score",
            ]
        );

        let mut call = sample_call();
        call.attributes = (0..100_000)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        call.turns = vec![call.turns[0].clone(); 100_000];
        call.tags = vec![call.tags[0].clone(); 10_000];
        let v = call.limit_violations();
        let fields: Vec<&str> = v.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["tags", "attributes", "turns"],
            "one violation per list"
        );
    }

    #[test]
    fn typed_rules_only_for_typed_calls() {
        let mut call = sample_call();
        call.talk_ms = -1;
        call.billing.currency = "euro".into();
        call.tags[0].id = String::new();
        call.turns[1].sequence = 1;
        assert!(call.limit_violations().is_empty());
        let fields: Vec<String> = call.violations().0.into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            ["talk_ms", "billing.currency", "turns", "tags[0].id"]
        );
    }

    #[test]
    fn decimals() {
        for ok in ["0", "0.007875", "-1.5", "12"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in [
            "",
            ".5",
            "1.",
            "1e5",
            "abc",
            "1.2.3",
            "-",
            "1234567890",
            "0.0000000000000000000000000000001",
        ] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn enum_codes_round_trip() {
        for o in CallOutcome::ALL {
            assert_eq!(CallOutcome::from_code(o.code()), Some(*o));
        }
        assert_eq!(Source::from_code(0), None);
        assert_eq!(Source::Laaffic.key(), "SOURCE_LAAFFIC");
    }
}
