//! The unified call record and its parts, as every vendor's records become it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{MAX_CALL_MS, UnixMs, Violations};

/// Longest text kept in an indexed column.
pub const MAX_INDEXED_TEXT: usize = 256;

/// Declares an enum whose numbers are the wire numbers of the proto enum of the
/// same name, with the proto value name as its key.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal => $key:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntentLevel {
    pub id: String,
    pub name: String,
    pub alias: String,
    pub color: String,
}

/// Where a number is registered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    pub province: String,
    pub city: String,
    pub area_code: String,
    pub carrier: String,
    pub region: String,
    pub post_code: String,
}

/// What a call cost; amounts are decimal strings, checked by [`is_decimal`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Billing {
    pub rate: String,
    pub base_cost: String,
    pub cost: String,
    pub currency: String,
    pub settle_rate: String,
    pub settle_cost: String,
    pub quote_exchange: String,
    pub bill_period: String,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

impl Call {
    /// The bounds every stored call keeps, whatever door it came in by:
    /// durations of at most 30 days (so sums over millions of calls fit in 64
    /// bits) and indexed text of at most 256 bytes (a PostgreSQL b-tree entry
    /// has a size limit). Field paths are relative to the call.
    pub fn limit_violations(&self) -> Violations {
        let mut v = Violations::new();
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
            ("task_id", &self.task_id),
            ("location.province", &l.province),
            ("location.city", &l.city),
            ("location.area_code", &l.area_code),
            ("location.carrier", &l.carrier),
            ("location.region", &l.region),
            ("location.post_code", &l.post_code),
            ("billing.bill_period", &b.bill_period),
            ("billing.cost", &b.cost),
            ("billing.currency", &b.currency),
        ] {
            if text.len() > MAX_INDEXED_TEXT {
                v.add(field, format!("is longer than {MAX_INDEXED_TEXT} bytes"));
            }
        }
        v
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

/// Most integer digits of an amount: exact sums over a billion calls still
/// fit in 64-bit integers.
pub const MAX_DECIMAL_INT_DIGITS: usize = 9;
/// Most fraction digits of an amount (what exact decimal sums carry).
pub const MAX_DECIMAL_FRACTION_DIGITS: usize = 30;

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

#[cfg(test)]
mod tests {
    use super::*;

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
