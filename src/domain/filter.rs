//! Which calls a query wants, in what order, and the opaque page tokens that
//! continue a listing where the previous page ended (keyset pagination).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::{CallOutcome, Party, Source, UnixMs};

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

/// Page sizes: the default when none is asked, and the most served.
pub const DEFAULT_PAGE_SIZE: u32 = 15;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The page size served for a requested one; `Err` for a negative size.
pub fn page_size(requested: i32) -> Result<u32, &'static str> {
    match requested {
        n if n < 0 => Err("must not be negative"),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as u32).min(MAX_PAGE_SIZE)),
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

/// A page token that does not belong to this listing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "is not a page token of this listing (malformed, tampered, or from another filter or order)"
)]
pub struct BadPageToken;

/// Opaque page tokens. A token carries the cursor plus a fingerprint of the
/// filter and order it was made for, and a checksum over both; a token that
/// was altered, or is replayed with another filter, is refused instead of
/// silently returning a wrong page.
pub struct PageToken;

impl PageToken {
    const VERSION: &'static str = "v1";

    pub fn encode(cursor: &Cursor, scope: &str) -> String {
        let body = format!(
            "{}|{}|{}|{}",
            Self::VERSION,
            cursor.sort_key,
            cursor.call_id,
            fingerprint(scope)
        );
        let sum = checksum(&body);
        URL_SAFE_NO_PAD.encode(format!("{body}|{sum}"))
    }

    pub fn decode(token: &str, scope: &str) -> Result<Cursor, BadPageToken> {
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| BadPageToken)?;
        let text = String::from_utf8(bytes).map_err(|_| BadPageToken)?;
        let (body, sum) = text.rsplit_once('|').ok_or(BadPageToken)?;
        if checksum(body) != sum {
            return Err(BadPageToken);
        }
        let parts: Vec<&str> = body.split('|').collect();
        let [version, key, call_id, fp] = parts.as_slice() else {
            return Err(BadPageToken);
        };
        if *version != Self::VERSION
            || *fp != fingerprint(scope)
            || call_id.is_empty()
            || call_id.len() > 256
            || call_id.contains('\0')
        {
            return Err(BadPageToken);
        }
        Ok(Cursor {
            sort_key: key.parse().map_err(|_| BadPageToken)?,
            call_id: (*call_id).to_owned(),
        })
    }
}

/// What a token is bound to: the filter and order of a call listing.
pub fn call_query_scope(filter: &CallFilter, order: CallOrder) -> String {
    format!("{filter:?}/{order:?}")
}

fn fingerprint(scope: &str) -> String {
    hex16(&Sha256::digest(scope.as_bytes()))
}

fn checksum(body: &str) -> String {
    // Keyed so that a hand-made token does not pass by accident; tenant
    // isolation never depends on it (every query is scoped server-side).
    let mut hasher = Sha256::new();
    hasher.update(b"callscope-page-token/");
    hasher.update(body.as_bytes());
    hex16(&hasher.finalize())
}

fn hex16(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0), Ok(15));
        assert_eq!(page_size(7), Ok(7));
        assert_eq!(page_size(5000), Ok(1000));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn token_round_trips_and_rejects_tampering() {
        let cursor = Cursor {
            sort_key: 1_700_000_000_000,
            call_id: "abc".into(),
        };
        let token = PageToken::encode(&cursor, "scope-a");
        assert_eq!(PageToken::decode(&token, "scope-a"), Ok(cursor));
        assert_eq!(PageToken::decode(&token, "scope-b"), Err(BadPageToken));
        assert_eq!(PageToken::decode("garbage!", "scope-a"), Err(BadPageToken));
        let mut raw = String::from_utf8(URL_SAFE_NO_PAD.decode(&token).unwrap()).unwrap();
        raw = raw.replacen("1700000000000", "1600000000000", 1);
        let forged = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(PageToken::decode(&forged, "scope-a"), Err(BadPageToken));
    }

    #[test]
    fn reversed_window_is_refused() {
        assert!(TimeWindow::new(TimeField::CallTime, Some(10), Some(5)).is_err());
        assert!(TimeWindow::new(TimeField::CallTime, Some(10), Some(10)).is_err());
        assert!(TimeWindow::new(TimeField::CallTime, Some(5), None).is_ok());
    }
}
