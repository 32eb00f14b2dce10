//! Every limit on what a client or a vendor may send, in one place. The
//! README's "Limits" table lists them; validators next to each type check
//! them with the helpers below, so a violation always reads the same.

use std::collections::BTreeMap;

use super::Violations;
use super::text::NUL_DESCRIPTION;

/// Ids, names, codes and other short texts. Most are indexed, and a
/// PostgreSQL b-tree entry has a size limit.
pub const MAX_ID_BYTES: usize = 256;
/// URLs (`recording_url`).
pub const MAX_URL_BYTES: usize = 2 * 1024;
/// Short free texts: `hangup_cause`, `dtmf`, a tag's description, a turn's
/// node name and keyword.
pub const MAX_TEXT_BYTES: usize = 4 * 1024;
/// What one dialogue turn says (`customer_text`, `robot_text`) and one
/// attribute value.
pub const MAX_LONG_TEXT_BYTES: usize = 64 * 1024;
/// Entries of one `attributes` map (a call's, a turn's, a task's, a number's).
pub const MAX_ATTRIBUTES: usize = 200;
/// Dialogue turns of one call. The vendor documents show 5-20; a long call
/// with interim recognition turns stays far below this.
pub const MAX_TURNS: usize = 2000;
/// Tags of one call or one turn; tag groups of one call or one tag.
pub const MAX_TAGS: usize = 100;
/// Scores (a call's and a turn's), inclusive. smartivr scores are sums of
/// per-turn scores of 0-100 and its levels span 0-500; this leaves room for
/// long calls and negative scoring without letting one record drag an
/// average anywhere.
pub const MIN_SCORE: i32 = -10_000;
pub const MAX_SCORE: i32 = 10_000;
/// The longest duration a call may report (30 days): sums over millions of
/// calls then stay far inside 64-bit integers.
pub const MAX_CALL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Most integer digits of an amount: exact sums over a billion calls still
/// fit in 64-bit integers.
pub const MAX_DECIMAL_INT_DIGITS: usize = 9;
/// Most fraction digits of an amount (what exact decimal sums carry).
pub const MAX_DECIMAL_FRACTION_DIGITS: usize = 30;

/// Calls in one UpsertCalls request.
pub const MAX_CALLS_PER_REQUEST: usize = 1000;
/// Records in one ImportRecords request (and one `callscope import` batch).
pub const MAX_RECORDS_PER_REQUEST: usize = 1000;
/// Largest vendor record; a larger one is quarantined, cut short.
pub const MAX_RECORD_BYTES: usize = 2 * 1024 * 1024;
/// Items in one UpsertTasks, UpsertTags (tags and groups each) or
/// UpsertIntentLevels request. A catalog upsert holds the write lock while
/// it runs; this keeps it short.
pub const MAX_CATALOG_ITEMS: usize = 1000;
/// Numbers in one UpsertTaskNumbers request.
pub const MAX_NUMBERS_PER_UPLOAD: usize = 10_000;

/// Values in one repeated filter field (`task_ids`, `outcomes`, …).
pub const MAX_FILTER_VALUES: usize = 500;
/// Ranges in `CallFilter.score_ranges`.
pub const MAX_SCORE_RANGES: usize = 100;
/// Characters of `CallFilter.transcript_contains`.
pub const MAX_TRANSCRIPT_QUERY_CHARS: usize = 200;
/// Page sizes: the default when none is asked, and the most served.
/// Calls `include_total` counts exactly by default (`serve
/// --exact-total-limit`); beyond it the total is this bound, flagged, so that
/// counting never costs more than a bounded scan.
pub const MAX_EXACT_TOTAL: i64 = 10_000;
pub const DEFAULT_PAGE_SIZE: u32 = 15;
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Tags in `by_tag`, by default and at most.
pub const DEFAULT_TOP_TAGS: u32 = 20;
pub const MAX_TOP_TAGS: u32 = 1000;
/// Buckets of one time series.
pub const MAX_BUCKETS: usize = 10_000;
/// Longest page token accepted (ours are under 400 bytes).
pub const MAX_PAGE_TOKEN_BYTES: usize = 1024;

/// Largest IngestService request message (a full UpsertCalls batch with
/// transcripts); tonic answers `RESOURCE_EXHAUSTED` beyond it.
pub const MAX_INGEST_REQUEST_BYTES: usize = 64 * 1024 * 1024;
/// Largest request message of the query services (CallService,
/// AnalyticsService), whose requests are a filter and a token.
pub const MAX_QUERY_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest JSON body of the JSON API (`POST /callscope.v1.…/…`); the
/// protobuf it becomes is then held to the limits above by the gRPC stack.
pub const MAX_JSON_REQUEST_BYTES: usize = MAX_INGEST_REQUEST_BYTES;
/// Default largest ListCalls page: 4 MiB, the receive limit of default gRPC
/// clients, minus headroom. `serve --max-response-bytes` changes it.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 3584 * 1024;
/// Largest response any RPC may send (a GetCall of a call at its limits).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Adds a violation when `text` is longer than `max` bytes or holds a NUL.
pub fn check_text(v: &mut Violations, field: impl Into<String>, text: &str, max: usize) {
    if text.len() > max {
        v.add(field, format!("is longer than {max} bytes"));
    } else if text.contains('\0') {
        v.add(field, NUL_DESCRIPTION);
    }
}

/// Like [`check_text`] for an id that must be given (blank is refused).
pub fn check_required_id(v: &mut Violations, field: impl Into<String>, text: &str) {
    if text.trim().is_empty() {
        v.add(field, "is required");
    } else {
        check_text(v, field, text, MAX_ID_BYTES);
    }
}

/// Adds a violation when a list holds more than `max` entries.
pub fn check_count(v: &mut Violations, field: impl Into<String>, len: usize, max: usize) {
    if len > max {
        v.add(field, format!("at most {max} entries"));
    }
}

/// The violation of a list over `max` entries, alone: a request-level check
/// made before any entry is looked at.
pub fn too_many(field: &str, len: usize, max: usize) -> Result<(), Violations> {
    let mut v = Violations::new();
    check_count(&mut v, field, len, max);
    v.into_result(())
}

/// Adds a violation when `score` is outside [`MIN_SCORE`]..=[`MAX_SCORE`].
pub fn check_score(v: &mut Violations, field: impl Into<String>, score: i32) {
    if !(MIN_SCORE..=MAX_SCORE).contains(&score) {
        v.add(
            field,
            format!("must be between {MIN_SCORE} and {MAX_SCORE}"),
        );
    }
}

/// Checks an `attributes` map at `path`: entry count, key and value sizes.
/// Entries are addressed as `path["key"]`.
pub fn check_attributes(v: &mut Violations, path: &str, map: &BTreeMap<String, String>) {
    if map.len() > MAX_ATTRIBUTES {
        // Naming each of thousands of entries helps nobody.
        v.add(path, format!("at most {MAX_ATTRIBUTES} entries"));
        return;
    }
    for (key, value) in map {
        let field = format!("{path}[{:?}]", clip(key, 64));
        if key.is_empty() || key.len() > MAX_ID_BYTES {
            v.add(field, format!("key must be 1-{MAX_ID_BYTES} bytes"));
        } else if value.len() > MAX_LONG_TEXT_BYTES {
            v.add(
                field,
                format!("value is longer than {MAX_LONG_TEXT_BYTES} bytes"),
            );
        } else if key.contains('\0') || value.contains('\0') {
            v.add(field, NUL_DESCRIPTION);
        }
    }
}

/// At most `max` bytes of `text`, cut on a character boundary, with `…`
/// when cut: for echoing client text in messages.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_checks_name_size_then_nul() {
        let mut v = Violations::new();
        check_text(&mut v, "a", &"x".repeat(MAX_URL_BYTES + 1), MAX_URL_BYTES);
        check_text(&mut v, "b", "x\0", MAX_URL_BYTES);
        check_text(&mut v, "c", "fine", MAX_URL_BYTES);
        check_required_id(&mut v, "d", "  ");
        let fields: Vec<&str> = v.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "d"]);
        assert_eq!(v.0[0].description, "is longer than 2048 bytes");
    }

    #[test]
    fn attributes_are_bounded() {
        let many: BTreeMap<String, String> = (0..=MAX_ATTRIBUTES)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        let mut v = Violations::new();
        check_attributes(&mut v, "attributes", &many);
        assert_eq!(v.0.len(), 1);
        assert_eq!(v.0[0].field, "attributes");
        let mut v = Violations::new();
        let map = BTreeMap::from([(String::new(), "x".to_owned())]);
        check_attributes(&mut v, "attributes", &map);
        assert_eq!(v.0[0].field, "attributes[\"\"]");
    }

    #[test]
    fn scores_and_clipping() {
        let mut v = Violations::new();
        check_score(&mut v, "score", i32::MIN);
        check_score(&mut v, "ok", 165);
        assert_eq!(v.0.len(), 1);
        assert_eq!(clip("短信短信", 4), "短…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
