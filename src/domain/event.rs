//! The event log's plain types: one committed change of one call, the tokens
//! that resume ExportCalls and WatchCalls, and a filter applied to one call in
//! memory (a watch cannot ask the database whether an event matches: the call
//! of a DELETED event is gone).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::filter::{SCOPE_VERSION, checksum};
use super::limits::MAX_PAGE_TOKEN_BYTES;
use super::{
    BadPageToken, CallFilter, CallOrder, PageScope, StoredCall, TagMatch, TimeField, UnixMs,
    filter_scope,
};

/// What happened to a call; the numbers are `CallEventType`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created = 1,
    Updated = 2,
    Deleted = 3,
}

impl EventKind {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            1 => Some(Self::Created),
            2 => Some(Self::Updated),
            3 => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// One committed change of one call, at its place in the tenant's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    pub tenant: String,
    /// 1, 2, 3, … per tenant, in commit order, without holes.
    pub position: i64,
    pub kind: EventKind,
    /// When the writing transaction ran (milliseconds, just before commit).
    pub event_time: UnixMs,
    /// The call as committed (for a delete: as it was before), without its
    /// dialogue turns; after ErasePhone, without the number.
    pub call: StoredCall,
}

impl CallEvent {
    /// The event's id, unique per tenant and the same on every delivery: its
    /// position in decimal.
    pub fn event_id(&self) -> String {
        self.position.to_string()
    }
}

/// Where a tenant's event log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventLogState {
    /// The last position written; 0 when the tenant has no event yet.
    pub head: i64,
    /// The last position the event retention removed: a watch can resume from
    /// this position or later, not from an earlier one.
    pub purged_through: i64,
}

/// A resume token that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error(
        "is not a resume token of this stream (malformed, tampered, or from another filter or tenant)"
    )]
    Invalid,
    #[error(
        "is older than the event log keeps (events up to position {purged_through} were removed); export again"
    )]
    TooOld { purged_through: i64 },
}

impl From<BadPageToken> for ResumeError {
    fn from(_: BadPageToken) -> Self {
        ResumeError::Invalid
    }
}

/// The scope ExportCalls tokens are bound to: tenant and filter (the order
/// is always call time, then call id, ascending).
pub fn export_scope(tenant: &str, filter: &CallFilter) -> PageScope {
    filter_scope(tenant, "export", filter, CallOrder::CallTimeAsc)
}

/// The scope WatchCalls tokens are bound to: tenant and filter.
pub fn watch_scope(tenant: &str, filter: &CallFilter) -> PageScope {
    filter_scope(tenant, "watch", filter, CallOrder::default())
}

/// WatchCalls resume tokens: the scope version, the scope, the position of
/// the last event delivered, and a checksum over all of it (like
/// `PageToken`).
pub struct WatchToken;

impl WatchToken {
    pub fn encode(position: i64, scope: &PageScope) -> String {
        let mut bytes = Vec::with_capacity(25);
        bytes.push(SCOPE_VERSION);
        bytes.extend_from_slice(scope.bytes());
        bytes.extend_from_slice(&position.to_be_bytes());
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(token: &str, scope: &PageScope) -> Result<i64, ResumeError> {
        if token.len() > MAX_PAGE_TOKEN_BYTES {
            return Err(ResumeError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| ResumeError::Invalid)?;
        if bytes.len() != 1 + 8 + 8 + 8 {
            return Err(ResumeError::Invalid);
        }
        let (body, sum) = bytes.split_at(17);
        if checksum(body) != sum || body[0] != SCOPE_VERSION || &body[1..9] != scope.bytes() {
            return Err(ResumeError::Invalid);
        }
        let mut position = [0; 8];
        position.copy_from_slice(&body[9..17]);
        let position = i64::from_be_bytes(position);
        if position < 0 {
            return Err(ResumeError::Invalid);
        }
        Ok(position)
    }

    /// Checks a decoded position against the log: a position the log never
    /// reached is not one of its tokens; one below what retention removed
    /// would skip events.
    pub fn check(position: i64, log: EventLogState) -> Result<i64, ResumeError> {
        if position > log.head {
            Err(ResumeError::Invalid)
        } else if position < log.purged_through {
            Err(ResumeError::TooOld {
                purged_through: log.purged_through,
            })
        } else {
            Ok(position)
        }
    }
}

impl StoredCall {
    /// The call as an event keeps it after ErasePhone: its identity, task,
    /// times and outcome, without the number or anything that may hold it
    /// (raw numbers, customer name, recording, vendor leftovers, DTMF, the
    /// number's location).
    pub fn erased(&self) -> StoredCall {
        let mut e = self.clone();
        let c = &mut e.call;
        for text in [
            &mut c.callee,
            &mut c.callee_raw,
            &mut c.caller,
            &mut c.caller_raw,
            &mut c.customer_name,
            &mut c.recording_url,
            &mut c.dtmf,
        ] {
            text.clear();
        }
        c.attributes.clear();
        c.location = Default::default();
        c.turns.clear();
        e
    }
}

impl CallFilter {
    /// Whether `call` is one the filter selects, by the same rules as the SQL
    /// of a listing (`store::filter_sql`), evaluated on the call itself. The
    /// transcript is not part of an event's call: a filter with
    /// `transcript_contains` is refused before it gets here, and matches
    /// nothing.
    pub fn matches(&self, stored: &StoredCall) -> bool {
        let c = &stored.call;
        let any =
            |wanted: &[String], value: &str| wanted.is_empty() || wanted.iter().any(|w| w == value);
        if !any(&self.task_ids, &c.task_id) {
            return false;
        }
        if let Some(phone) = &self.phone
            && c.callee != *phone
            && c.caller != *phone
        {
            return false;
        }
        if let Some(digits) = &self.phone_contains
            && !c.callee.contains(digits.as_str())
            && !c.caller.contains(digits.as_str())
        {
            return false;
        }
        if !self.score_ranges.is_empty() {
            let Some(score) = c.score else {
                return false;
            };
            let inside = self.score_ranges.iter().any(|r| {
                r.min.is_none_or(|min| score >= min) && r.max.is_none_or(|max| score < max)
            });
            if !inside {
                return false;
            }
        }
        if !self.tag_ids.is_empty() {
            let has = |id: &String| c.tags.iter().any(|t| &t.id == id);
            let ok = match self.tag_match {
                TagMatch::Any => self.tag_ids.iter().any(has),
                TagMatch::All => self.tag_ids.iter().all(has),
            };
            if !ok {
                return false;
            }
        }
        if !self.tag_group_ids.is_empty() {
            // The stored hit groups include the groups of the call's tags
            // (see `store::calls_write::write_children`).
            let hit = c
                .tag_groups
                .iter()
                .any(|g| self.tag_group_ids.contains(&g.id))
                || c.tags
                    .iter()
                    .flat_map(|t| &t.groups)
                    .any(|g| self.tag_group_ids.contains(&g.id));
            if !hit {
                return false;
            }
        }
        if !self.intent_level_ids.is_empty() {
            match &c.intent_level {
                Some(level) if self.intent_level_ids.contains(&level.id) => {}
                _ => return false,
            }
        }
        let w = &self.window;
        if w.start.is_some() || w.end.is_some() {
            let value = match w.field {
                TimeField::CallTime => Some(c.call_time),
                TimeField::AnswerTime => c.answer_time,
                TimeField::HangupTime => c.hangup_time,
                TimeField::SyncTime => Some(stored.sync_time),
            };
            let Some(value) = value else {
                return false;
            };
            if w.start.is_some_and(|s| value < s) || w.end.is_some_and(|e| value >= e) {
                return false;
            }
        }
        if self.min_talk_ms.is_some_and(|m| c.talk_ms < m)
            || self.max_talk_ms.is_some_and(|m| c.talk_ms > m)
            || self.min_rounds.is_some_and(|m| c.rounds < m)
            || self.max_rounds.is_some_and(|m| c.rounds > m)
        {
            return false;
        }
        if !self.outcomes.is_empty() && !self.outcomes.contains(&c.outcome) {
            return false;
        }
        if !self.sources.is_empty() && !self.sources.contains(&c.source) {
            return false;
        }
        if !any(&self.carriers, &c.location.carrier) || !any(&self.provinces, &c.location.province)
        {
            return false;
        }
        if self.hangup_by.is_some_and(|p| p != c.hangup_by) {
            return false;
        }
        self.transcript.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IntentLevel, ScoreRange, Tag, sample::sample_call};

    fn stored() -> StoredCall {
        StoredCall {
            call_id: "c1".into(),
            sync_time: 5,
            call: sample_call(),
        }
    }

    #[test]
    fn watch_tokens_round_trip_and_are_bound_to_filter_and_tenant() {
        let f = CallFilter {
            task_ids: vec!["t1".into()],
            ..Default::default()
        };
        let scope = watch_scope("a", &f);
        let token = WatchToken::encode(42, &scope);
        assert_eq!(WatchToken::decode(&token, &scope), Ok(42));
        assert_eq!(
            WatchToken::decode(&token, &watch_scope("b", &f)),
            Err(ResumeError::Invalid)
        );
        assert_eq!(
            WatchToken::decode(&token, &watch_scope("a", &CallFilter::default())),
            Err(ResumeError::Invalid)
        );
        // An export token of the same filter is not a watch token.
        assert_ne!(export_scope("a", &f), scope);
        assert_eq!(
            WatchToken::decode("garbage", &scope),
            Err(ResumeError::Invalid)
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            let forged = URL_SAFE_NO_PAD.encode(&raw);
            assert_eq!(
                WatchToken::decode(&forged, &scope),
                Err(ResumeError::Invalid)
            );
            raw[i] ^= 1;
        }
    }

    #[test]
    fn positions_are_checked_against_the_log() {
        let log = EventLogState {
            head: 10,
            purged_through: 4,
        };
        assert_eq!(WatchToken::check(4, log), Ok(4));
        assert_eq!(WatchToken::check(10, log), Ok(10));
        assert_eq!(WatchToken::check(11, log), Err(ResumeError::Invalid));
        assert_eq!(
            WatchToken::check(3, log),
            Err(ResumeError::TooOld { purged_through: 4 })
        );
    }

    #[test]
    fn filters_match_in_memory() {
        let mut call = stored();
        call.call.task_id = "t1".into();
        call.call.score = Some(80);
        call.call.intent_level = Some(IntentLevel {
            id: "A".into(),
            ..Default::default()
        });
        call.call.tags = vec![Tag {
            id: "x".into(),
            ..Default::default()
        }];
        assert!(CallFilter::default().matches(&call));
        let f = |f: CallFilter| f.matches(&call);
        assert!(f(CallFilter {
            task_ids: vec!["t0".into(), "t1".into()],
            intent_level_ids: vec!["A".into()],
            score_ranges: vec![ScoreRange {
                min: Some(80),
                max: Some(81)
            }],
            ..Default::default()
        }));
        assert!(!f(CallFilter {
            intent_level_ids: vec!["B".into()],
            ..Default::default()
        }));
        assert!(!f(CallFilter {
            score_ranges: vec![ScoreRange {
                min: None,
                max: Some(80)
            }],
            ..Default::default()
        }));
        assert!(!f(CallFilter {
            tag_ids: vec!["x".into(), "y".into()],
            tag_match: TagMatch::All,
            ..Default::default()
        }));
        assert!(f(CallFilter {
            tag_ids: vec!["x".into(), "y".into()],
            ..Default::default()
        }));
    }
}
