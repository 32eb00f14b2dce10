//! Which calls a query wants, in what order, and the opaque page tokens that
//! continue a listing where the previous page ended (keyset pagination).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::limits::{
    DEFAULT_PAGE_SIZE, MAX_FILTER_VALUES, MAX_ID_BYTES, MAX_PAGE_SIZE, MAX_PAGE_TOKEN_BYTES,
    MAX_SCORE_RANGES, MAX_TRANSCRIPT_QUERY_CHARS, check_count, check_required_id, check_text,
};
use super::text::NUL_DESCRIPTION;
use super::{CallOutcome, Party, Source, StoredCall, UnixMs, Violations};

/// A score interval: `min` inclusive, `max` exclusive; `None` is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreRange {
    pub min: Option<i32>,
    pub max: Option<i32>,
}

/// How the tags of a filter must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagMatch {
    #[default]
    Any,
    All,
}

/// Which time a window applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeField {
    #[default]
    CallTime,
    AnswerTime,
    HangupTime,
    SyncTime,
}

/// A half-open window `[start, end)` on one of the call's times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeWindow {
    pub field: TimeField,
    pub start: Option<UnixMs>,
    pub end: Option<UnixMs>,
}

impl TimeWindow {
    /// A window; `Err` when both ends are given and `end` is not after `start`.
    pub fn new(
        field: TimeField,
        start: Option<UnixMs>,
        end: Option<UnixMs>,
    ) -> Result<Self, &'static str> {
        match (start, end) {
            (Some(s), Some(e)) if e <= s => Err("must be after start_time"),
            _ => Ok(Self { field, start, end }),
        }
    }
}

/// A search of the dialogue text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptQuery {
    pub text: String,
    /// Only what this side said; `None` for both.
    pub party: Option<Party>,
}

/// Which calls to take; every part is optional and all given parts must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallFilter {
    pub task_ids: Vec<String>,
    /// Normalised, compared with callee and caller.
    pub phone: Option<String>,
    /// Digits only, searched in callee and caller.
    pub phone_contains: Option<String>,
    pub score_ranges: Vec<ScoreRange>,
    pub tag_ids: Vec<String>,
    pub tag_match: TagMatch,
    pub tag_group_ids: Vec<String>,
    pub intent_level_ids: Vec<String>,
    pub window: TimeWindow,
    pub min_talk_ms: Option<i64>,
    pub max_talk_ms: Option<i64>,
    pub min_rounds: Option<i32>,
    pub max_rounds: Option<i32>,
    pub outcomes: Vec<CallOutcome>,
    pub sources: Vec<Source>,
    pub carriers: Vec<String>,
    pub provinces: Vec<String>,
    pub hangup_by: Option<Party>,
    pub transcript: Option<TranscriptQuery>,
}

/// Order of a call listing; ties are broken by `call_id` in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallOrder {
    #[default]
    CallTimeDesc,
    CallTimeAsc,
    ScoreDesc,
    ScoreAsc,
    TalkMsDesc,
    TalkMsAsc,
}

impl CallOrder {
    pub fn descending(self) -> bool {
        matches!(
            self,
            CallOrder::CallTimeDesc | CallOrder::ScoreDesc | CallOrder::TalkMsDesc
        )
    }
}

/// The page size served for a requested one; `Err` for a negative size.
pub fn page_size(requested: i32) -> Result<u32, &'static str> {
    match requested {
        n if n < 0 => Err("must not be negative"),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as u32).min(MAX_PAGE_SIZE)),
    }
}

impl CallFilter {
    /// Everything wrong with the filter beyond what its parts' constructors
    /// refuse: list sizes, id lengths, ranges. Paths are relative to it.
    pub fn violations(&self) -> Violations {
        let mut v = Violations::new();
        for (field, ids) in [
            ("task_ids", &self.task_ids),
            ("tag_ids", &self.tag_ids),
            ("tag_group_ids", &self.tag_group_ids),
            ("intent_level_ids", &self.intent_level_ids),
            ("carriers", &self.carriers),
            ("provinces", &self.provinces),
        ] {
            check_count(&mut v, field, ids.len(), MAX_FILTER_VALUES);
            if ids.len() <= MAX_FILTER_VALUES {
                for (i, id) in ids.iter().enumerate() {
                    check_required_id(&mut v, format!("{field}[{i}]"), id);
                }
            }
        }
        check_count(&mut v, "outcomes", self.outcomes.len(), MAX_FILTER_VALUES);
        check_count(&mut v, "sources", self.sources.len(), MAX_FILTER_VALUES);
        if let Some(phone) = &self.phone {
            check_text(&mut v, "phone", phone, MAX_ID_BYTES);
        }
        match &self.phone_contains {
            Some(digits) if digits.is_empty() => v.add("phone_contains", "has no digits"),
            Some(digits) => check_text(&mut v, "phone_contains", digits, MAX_ID_BYTES),
            None => {}
        }
        check_count(
            &mut v,
            "score_ranges",
            self.score_ranges.len(),
            MAX_SCORE_RANGES,
        );
        for (i, r) in self.score_ranges.iter().enumerate().take(MAX_SCORE_RANGES) {
            if let (Some(min), Some(max)) = (r.min, r.max)
                && max <= min
            {
                v.add(
                    format!("score_ranges[{i}]"),
                    "max must be greater than min (min inclusive, max exclusive)",
                );
            }
        }
        let ranges: [(&str, &str, Option<i64>, Option<i64>); 2] = [
            (
                "min_talk_ms",
                "max_talk_ms",
                self.min_talk_ms,
                self.max_talk_ms,
            ),
            (
                "min_rounds",
                "max_rounds",
                self.min_rounds.map(i64::from),
                self.max_rounds.map(i64::from),
            ),
        ];
        for (min_field, max_field, min, max) in ranges {
            for (field, value) in [(min_field, min), (max_field, max)] {
                if value.is_some_and(|n| n < 0) {
                    v.add(field, "must not be negative");
                }
            }
            if let (Some(min), Some(max)) = (min, max)
                && max < min
            {
                v.add(max_field, format!("must not be less than {min_field}"));
            }
        }
        if let Some(t) = &self.transcript {
            if t.text.chars().count() > MAX_TRANSCRIPT_QUERY_CHARS {
                v.add(
                    "transcript_contains",
                    format!("is longer than {MAX_TRANSCRIPT_QUERY_CHARS} characters"),
                );
            } else if t.text.contains('\0') {
                v.add("transcript_contains", NUL_DESCRIPTION);
            }
        }
        v
    }
}

/// The sort key of a call without a score: below every score.
pub const NO_SCORE_KEY: i64 = i32::MIN as i64 - 1;

impl CallOrder {
    /// The keyset cursor that continues a listing in this order right after
    /// `call`.
    pub fn cursor_of(self, call: &StoredCall) -> Cursor {
        let sort_key = match self {
            CallOrder::CallTimeDesc | CallOrder::CallTimeAsc => call.call.call_time,
            CallOrder::ScoreDesc | CallOrder::ScoreAsc => {
                call.call.score.map_or(NO_SCORE_KEY, i64::from)
            }
            CallOrder::TalkMsDesc | CallOrder::TalkMsAsc => call.call.talk_ms,
        };
        Cursor {
            sort_key,
            call_id: call.call_id.clone(),
        }
    }

    /// A stable number for the scope encoding (never renumber).
    fn scope_code(self) -> i64 {
        match self {
            CallOrder::CallTimeDesc => 1,
            CallOrder::CallTimeAsc => 2,
            CallOrder::ScoreDesc => 3,
            CallOrder::ScoreAsc => 4,
            CallOrder::TalkMsDesc => 5,
            CallOrder::TalkMsAsc => 6,
        }
    }
}

/// Where the previous page ended: the sort key and `call_id` of its last call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort_key: i64,
    pub call_id: String,
}

/// One page of a call listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallQuery {
    pub filter: CallFilter,
    pub order: CallOrder,
    pub page_size: u32,
    pub after: Option<Cursor>,
    pub include_total: bool,
}

impl CallQuery {
    /// What a page token of this listing is bound to.
    pub fn scope(&self, tenant: &str) -> PageScope {
        call_listing_scope(tenant, &self.filter, self.order)
    }
}

/// A page token that does not belong to this listing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "is not a page token of this listing (malformed, tampered, or from another filter or order)"
)]
pub struct BadPageToken;

/// The version of the scope encoding and of the token layout; the first
/// byte of every token, and hashed into every scope.
pub(super) const SCOPE_VERSION: u8 = 1;

/// What a page token is bound to: a hash of the canonical encoding of the
/// tenant, the listing, its filter and its order (see [`ScopeWriter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageScope([u8; 8]);

impl PageScope {
    /// The hash, for tokens of other kinds (`event::WatchToken`).
    pub(super) fn bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

/// Writes a listing's canonical encoding: each field as (tag, length,
/// value), in tag order, and only when set. A field added later and left
/// unset writes nothing, so tokens made before it was added stay valid.
/// List fields of "any of" filters are sets: sorted and deduplicated.
pub struct ScopeWriter {
    bytes: Vec<u8>,
}

impl ScopeWriter {
    /// Starts a scope with the tenant (tag 1) and the listing's name (tag 2).
    pub fn new(tenant: &str, listing: &str) -> Self {
        let mut w = Self {
            bytes: vec![SCOPE_VERSION],
        };
        w.field(1, tenant.as_bytes());
        w.field(2, listing.as_bytes());
        w
    }

    fn field(&mut self, tag: u16, value: &[u8]) {
        self.bytes.extend_from_slice(&tag.to_be_bytes());
        self.bytes
            .extend_from_slice(&(value.len() as u64).to_be_bytes());
        self.bytes.extend_from_slice(value);
    }

    /// A text; empty is unset.
    pub fn text(&mut self, tag: u16, value: &str) {
        if !value.is_empty() {
            self.field(tag, value.as_bytes());
        }
    }

    pub fn opt_text(&mut self, tag: u16, value: Option<&str>) {
        if let Some(value) = value {
            self.field(tag, value.as_bytes());
        }
    }

    pub fn int(&mut self, tag: u16, value: Option<i64>) {
        if let Some(value) = value {
            self.field(tag, &value.to_be_bytes());
        }
    }

    /// A set of texts; empty is unset.
    pub fn texts(&mut self, tag: u16, values: &[String]) {
        self.set(tag, values.iter().map(|s| s.as_bytes().to_vec()).collect());
    }

    /// A set of numbers; empty is unset.
    pub fn ints(&mut self, tag: u16, values: impl Iterator<Item = i64>) {
        self.set(tag, values.map(|n| n.to_be_bytes().to_vec()).collect());
    }

    fn set(&mut self, tag: u16, mut items: Vec<Vec<u8>>) {
        if items.is_empty() {
            return;
        }
        items.sort();
        items.dedup();
        let mut value = Vec::new();
        for item in items {
            value.extend_from_slice(&(item.len() as u64).to_be_bytes());
            value.extend_from_slice(&item);
        }
        self.field(tag, &value);
    }

    pub fn finish(self) -> PageScope {
        let digest = Sha256::digest(&self.bytes);
        let mut hash = [0; 8];
        hash.copy_from_slice(&digest[..8]);
        PageScope(hash)
    }
}

/// The scope of a call listing. Tags are fixed forever; a new filter field
/// takes a new tag.
pub fn call_listing_scope(tenant: &str, f: &CallFilter, order: CallOrder) -> PageScope {
    filter_scope(tenant, "calls", f, order)
}

/// The scope of a walk over the calls a filter selects, named `listing`
/// (`calls` for ListCalls; ExportCalls and WatchCalls have their own names,
/// so a token of one is refused by the others).
pub fn filter_scope(tenant: &str, listing: &str, f: &CallFilter, order: CallOrder) -> PageScope {
    let mut w = ScopeWriter::new(tenant, listing);
    if order != CallOrder::default() {
        w.int(3, Some(order.scope_code()));
    }
    w.texts(10, &f.task_ids);
    w.opt_text(11, f.phone.as_deref());
    w.opt_text(12, f.phone_contains.as_deref());
    w.set(
        13,
        f.score_ranges
            .iter()
            .map(|r| {
                let mut item = Vec::with_capacity(10);
                for bound in [r.min, r.max] {
                    match bound {
                        None => item.push(0),
                        Some(n) => {
                            item.push(1);
                            item.extend_from_slice(&n.to_be_bytes());
                        }
                    }
                }
                item
            })
            .collect(),
    );
    w.texts(14, &f.tag_ids);
    if f.tag_match == TagMatch::All {
        w.int(15, Some(2));
    }
    w.texts(16, &f.tag_group_ids);
    w.texts(17, &f.intent_level_ids);
    let time_field = match f.window.field {
        TimeField::CallTime => None,
        TimeField::AnswerTime => Some(2),
        TimeField::HangupTime => Some(3),
        TimeField::SyncTime => Some(4),
    };
    w.int(18, time_field);
    w.int(19, f.window.start);
    w.int(20, f.window.end);
    w.int(21, f.min_talk_ms);
    w.int(22, f.max_talk_ms);
    w.int(23, f.min_rounds.map(i64::from));
    w.int(24, f.max_rounds.map(i64::from));
    w.ints(25, f.outcomes.iter().map(|o| i64::from(o.code())));
    w.ints(26, f.sources.iter().map(|s| i64::from(s.code())));
    w.texts(27, &f.carriers);
    w.texts(28, &f.provinces);
    w.int(29, f.hangup_by.map(|p| i64::from(p.code())));
    if let Some(t) = &f.transcript {
        w.text(30, &t.text);
        w.int(31, t.party.map(|p| i64::from(p.code())));
    }
    w.finish()
}

/// Opaque page tokens: the scope version, the scope, the cursor, and a
/// checksum over all of it. A token that was altered, or is presented for
/// another listing, filter, order or tenant, is refused instead of silently
/// returning a wrong page.
pub struct PageToken;

impl PageToken {
    pub fn encode(cursor: &Cursor, scope: &PageScope) -> String {
        let mut bytes = Vec::with_capacity(25 + cursor.call_id.len() + 8);
        bytes.push(SCOPE_VERSION);
        bytes.extend_from_slice(&scope.0);
        bytes.extend_from_slice(&cursor.sort_key.to_be_bytes());
        bytes.extend_from_slice(cursor.call_id.as_bytes());
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(token: &str, scope: &PageScope) -> Result<Cursor, BadPageToken> {
        if token.len() > MAX_PAGE_TOKEN_BYTES {
            return Err(BadPageToken);
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| BadPageToken)?;
        // version, scope, sort key, at least one byte of id, checksum
        if bytes.len() < 1 + 8 + 8 + 1 + 8 {
            return Err(BadPageToken);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if checksum(body) != sum || body[0] != SCOPE_VERSION || body[1..9] != scope.0 {
            return Err(BadPageToken);
        }
        let mut key = [0; 8];
        key.copy_from_slice(&body[9..17]);
        let call_id = std::str::from_utf8(&body[17..]).map_err(|_| BadPageToken)?;
        if call_id.len() > MAX_ID_BYTES || call_id.contains('\0') {
            return Err(BadPageToken);
        }
        Ok(Cursor {
            sort_key: i64::from_be_bytes(key),
            call_id: call_id.to_owned(),
        })
    }
}

pub(super) fn checksum(body: &[u8]) -> [u8; 8] {
    // Keyed so that a hand-made token does not pass by accident; tenant
    // isolation never depends on it (every query is scoped server-side).
    let mut hasher = Sha256::new();
    hasher.update(b"callscope-page-token/");
    hasher.update(body);
    let mut sum = [0; 8];
    sum.copy_from_slice(&hasher.finalize()[..8]);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            sort_key: 1_700_000_000_000,
            call_id: "abc".into(),
        }
    }

    fn filter() -> CallFilter {
        CallFilter {
            task_ids: vec!["t1".into(), "t2".into()],
            score_ranges: vec![ScoreRange {
                min: Some(100),
                max: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0), Ok(15));
        assert_eq!(page_size(7), Ok(7));
        assert_eq!(page_size(5000), Ok(1000));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn token_round_trips_and_rejects_tampering() {
        let scope = call_listing_scope("default", &filter(), CallOrder::default());
        let token = PageToken::encode(&cursor(), &scope);
        assert_eq!(PageToken::decode(&token, &scope), Ok(cursor()));
        let other = call_listing_scope("default", &CallFilter::default(), CallOrder::default());
        assert_eq!(PageToken::decode(&token, &other), Err(BadPageToken));
        assert_eq!(PageToken::decode("garbage!", &scope), Err(BadPageToken));
        assert_eq!(PageToken::decode("", &scope), Err(BadPageToken));
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            let forged = URL_SAFE_NO_PAD.encode(&raw);
            assert_eq!(PageToken::decode(&forged, &scope), Err(BadPageToken), "{i}");
            raw[i] ^= 1;
        }
        let long = "A".repeat(MAX_PAGE_TOKEN_BYTES + 1);
        assert_eq!(PageToken::decode(&long, &scope), Err(BadPageToken));
    }

    #[test]
    fn same_filter_same_scope_and_sets_ignore_order() {
        let a = call_listing_scope("default", &filter(), CallOrder::default());
        assert_eq!(
            a,
            call_listing_scope("default", &filter(), CallOrder::default())
        );
        // "Any of these tasks": the order and repetition of values mean nothing.
        let mut reordered = filter();
        reordered.task_ids = vec!["t2".into(), "t1".into(), "t2".into()];
        assert_eq!(
            a,
            call_listing_scope("default", &reordered, CallOrder::default())
        );
        // Values moved to another field, or another order, are another listing.
        let mut moved = filter();
        moved.task_ids = vec!["t1".into()];
        moved.carriers = vec!["t2".into()];
        assert_ne!(
            a,
            call_listing_scope("default", &moved, CallOrder::default())
        );
        assert_ne!(
            a,
            call_listing_scope("default", &filter(), CallOrder::ScoreDesc)
        );
        let mut joined = filter();
        joined.task_ids = vec!["t1t2".into()];
        assert_ne!(
            a,
            call_listing_scope("default", &joined, CallOrder::default())
        );
    }

    #[test]
    fn another_tenant_cannot_use_a_token() {
        let a = call_listing_scope("tenant-a", &filter(), CallOrder::default());
        let b = call_listing_scope("tenant-b", &filter(), CallOrder::default());
        let token = PageToken::encode(&cursor(), &a);
        assert_eq!(PageToken::decode(&token, &b), Err(BadPageToken));
    }

    /// A token made by encoder version 1 for a known filter. Adding a filter
    /// field must leave it valid for a request that does not set the field:
    /// if this test fails, the encoding of an existing field changed.
    #[test]
    fn version_1_token_stays_valid() {
        const TOKEN: &str = "AY_j3Izxt1WAAAABi8_laABhYmMIA3CTqPKGDQ";
        let scope = call_listing_scope("default", &filter(), CallOrder::ScoreDesc);
        assert_eq!(
            PageToken::encode(&cursor(), &scope),
            TOKEN,
            "the encoding changed"
        );
        assert_eq!(PageToken::decode(TOKEN, &scope), Ok(cursor()));
    }

    #[test]
    fn an_unset_field_writes_nothing() {
        let scope = |extra: bool| {
            let mut w = ScopeWriter::new("default", "calls");
            w.texts(10, &["t1".to_owned()]);
            if extra {
                // What a filter field added later writes while unset.
                w.opt_text(99, None);
                w.texts(100, &[]);
                w.int(101, None);
                w.text(102, "");
            }
            w.finish()
        };
        assert_eq!(scope(false), scope(true));
    }

    #[test]
    fn cursor_of_a_call_without_score_sorts_below_every_score() {
        let call = StoredCall {
            call_id: "c1".into(),
            sync_time: 0,
            call: crate::domain::Call {
                score: None,
                ..crate::domain::sample::sample_call()
            },
        };
        assert_eq!(CallOrder::ScoreAsc.cursor_of(&call).sort_key, NO_SCORE_KEY);
        assert_eq!(
            CallOrder::CallTimeDesc.cursor_of(&call),
            Cursor {
                sort_key: call.call.call_time,
                call_id: "c1".into()
            }
        );
    }

    #[test]
    fn filter_violations_name_fields() {
        let f = CallFilter {
            task_ids: vec![String::new()],
            carriers: vec!["x".into(); MAX_FILTER_VALUES + 1],
            min_rounds: Some(3),
            max_rounds: Some(2),
            phone_contains: Some(String::new()),
            ..Default::default()
        };
        let fields: Vec<String> = f.violations().0.into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            ["task_ids[0]", "carriers", "phone_contains", "max_rounds"]
        );
    }

    #[test]
    fn reversed_window_is_refused() {
        assert!(TimeWindow::new(TimeField::CallTime, Some(10), Some(5)).is_err());
        assert!(TimeWindow::new(TimeField::CallTime, Some(10), Some(10)).is_err());
        assert!(TimeWindow::new(TimeField::CallTime, Some(5), None).is_ok());
    }
}
