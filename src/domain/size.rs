//! How large a call is on the wire, estimated from its texts without the
//! transport's encoder, so a page can be cut before it passes a client's
//! receive limit. The estimate never falls below the protobuf encoding:
//! each field is counted with the largest tag and length prefix it can have.

use std::collections::BTreeMap;

use super::{Call, DialogueTurn, StoredCall, Tag, TagGroup};

/// Tag and length prefix of a length-delimited field, at most.
const PREFIX: usize = 2 + 5;
/// A varint field (tag and up to ten bytes).
const INT: usize = 2 + 10;
/// A `google.protobuf.Timestamp` field.
const TIME: usize = PREFIX + INT + INT;

fn text(s: &str) -> usize {
    if s.is_empty() { 0 } else { PREFIX + s.len() }
}

fn int(n: i64) -> usize {
    if n == 0 { 0 } else { INT }
}

fn time(t: Option<i64>) -> usize {
    t.map_or(0, |_| TIME)
}

fn map(m: &BTreeMap<String, String>) -> usize {
    m.iter().map(|(k, v)| PREFIX + text(k) + text(v)).sum()
}

fn group(g: &TagGroup) -> usize {
    PREFIX + text(&g.id) + text(&g.name) + text(&g.scene_id)
}

fn tag(t: &Tag) -> usize {
    PREFIX
        + text(&t.id)
        + text(&t.name)
        + text(&t.color)
        + text(&t.description)
        + t.groups.iter().map(group).sum::<usize>()
}

fn turn(t: &DialogueTurn) -> usize {
    PREFIX
        + 4 * INT
        + text(&t.customer_text)
        + text(&t.robot_text)
        + text(&t.node_id)
        + text(&t.node_name)
        + text(&t.keyword)
        + 3 * INT
        + t.tags.iter().map(tag).sum::<usize>()
        + time(t.time)
        + text(&t.turn_id)
        + map(&t.attributes)
}

fn call(c: &Call) -> usize {
    let l = &c.location;
    let b = &c.billing;
    let texts = [
        &c.external_id,
        &c.task_id,
        &c.parent_task_id,
        &c.script_id,
        &c.callee,
        &c.callee_raw,
        &c.caller,
        &c.caller_raw,
        &c.vendor_status,
        &c.hangup_cause,
        &c.sip_code,
        &c.recording_url,
        &c.dtmf,
        &c.recall_of,
        &c.customer_name,
        &c.line_id,
        &l.province,
        &l.city,
        &l.area_code,
        &l.carrier,
        &l.region,
        &l.post_code,
        &b.rate,
        &b.base_cost,
        &b.cost,
        &b.currency,
        &b.settle_rate,
        &b.settle_cost,
        &b.quote_exchange,
        &b.bill_period,
        &b.base_cost_currency,
        &b.settle_currency,
    ];
    let level = c.intent_level.as_ref().map_or(0, |l| {
        PREFIX + text(&l.id) + text(&l.name) + text(&l.alias) + text(&l.color)
    });
    texts.iter().map(|s| text(s)).sum::<usize>()
        // location and billing messages, enums, counters
        + 2 * PREFIX
        + 8 * INT
        + [c.ring_ms, c.talk_ms, c.total_ms, c.billed_ms]
            .into_iter()
            .map(int)
            .sum::<usize>()
        + c.score.map_or(0, |_| INT)
        + [c.submit_time, Some(c.call_time), c.ring_time, c.answer_time, c.hangup_time, c.update_time]
            .into_iter()
            .map(time)
            .sum::<usize>()
        + level
        + c.tags.iter().map(tag).sum::<usize>()
        + c.tag_groups.iter().map(group).sum::<usize>()
        + map(&c.attributes)
        + c.turns.iter().map(turn).sum::<usize>()
}

/// The encoded size of a stored call as one entry of a repeated field, at
/// least: the call, its id and sync time, and the entry's own prefix.
pub fn estimated_size(stored: &StoredCall) -> usize {
    PREFIX + text(&stored.call_id) + TIME + call(&stored.call)
}

/// How many of `calls`, from the first, fit in `budget` bytes; at least one
/// (a page never comes back empty while calls remain).
pub fn calls_within(calls: &[StoredCall], budget: usize) -> usize {
    let mut total = 0usize;
    for (i, stored) in calls.iter().enumerate() {
        total = total.saturating_add(estimated_size(stored));
        if total > budget {
            return i.max(1);
        }
    }
    calls.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sample::sample_call;

    fn stored(url_len: usize) -> StoredCall {
        StoredCall {
            call_id: "0190d7c2-6a37-7d8e-9f51-4c1b2a3d4e5f".into(),
            sync_time: 1_700_000_000_000,
            call: Call {
                recording_url: "x".repeat(url_len),
                ..sample_call()
            },
        }
    }

    #[test]
    fn pages_are_cut_by_size_but_keep_one_call() {
        let calls: Vec<StoredCall> = (0..5).map(|_| stored(1 << 20)).collect();
        assert_eq!(calls_within(&calls, 3584 * 1024), 3);
        assert_eq!(calls_within(&calls, 10), 1);
        assert_eq!(calls_within(&calls, usize::MAX), 5);
        assert_eq!(calls_within(&[], 10), 0);
    }
}
