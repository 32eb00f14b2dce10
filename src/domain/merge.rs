//! Merging two views of one vendor call (a list row, a brief record, a
//! detail record, a dialing list's history): what a view does not carry
//! keeps its stored value, and only a newer (or equally new) view replaces
//! a value the call already has.

use std::collections::BTreeMap;

use super::limits::MAX_ATTRIBUTES;
use super::{Billing, Call, CallOutcome, Gender, IntentLevel, Location, Party};

/// Which view's values win where both carry one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeRule {
    /// The view is as new as the stored call or newer: its values replace
    /// the stored ones; what it does not carry stays.
    ViewWins,
    /// The view is older than the stored call (or a lesser view, such as a
    /// dialing list's history): it only fills what the call lacks.
    FillOnly,
}

impl MergeRule {
    /// The rule for a vendor view: the vendor's update time decides, and an
    /// equal or unknown time counts as newer (the later arrival wins).
    pub fn by_update_time(stored: &Call, view: &Call) -> Self {
        match (view.update_time, stored.update_time) {
            (Some(new), Some(cur)) if new < cur => MergeRule::FillOnly,
            _ => MergeRule::ViewWins,
        }
    }
}

/// The call that `stored` becomes when `view` of it arrives. A field counts
/// as carried when it is not empty: text not empty, a time or score given,
/// a number not 0, an enum not unspecified, a list not empty; attributes
/// key by key, location and billing field by field. The call's own tags
/// and hit tag groups are one part, the turns another: a view that carries
/// a part replaces it whole.
pub fn merge_views(stored: &Call, view: &Call, rule: MergeRule) -> Call {
    let view = &with_own_part_as_stored(view);
    let wins = rule == MergeRule::ViewWins;
    let text =
        |old: &String, new: &String| -> String { pick(old, new, wins, |s| !s.is_empty()).clone() };
    let num = |old: i64, new: i64| -> i64 { *pick(&old, &new, wins, |n| *n != 0) };
    let num32 = |old: i32, new: i32| -> i32 { *pick(&old, &new, wins, |n| *n != 0) };
    let opt = |old: Option<i64>, new: Option<i64>| -> Option<i64> {
        *pick(&old, &new, wins, Option::is_some)
    };
    let s = stored;
    let v = view;
    let own_part = |c: &Call| !c.tags.is_empty() || !c.tag_groups.is_empty();
    let (tags, tag_groups) = if own_part(v) && (wins || !own_part(s)) {
        (v.tags.clone(), v.tag_groups.clone())
    } else {
        (s.tags.clone(), s.tag_groups.clone())
    };
    let turns = pick(&s.turns, &v.turns, wins, |t| !t.is_empty()).clone();
    // Quality flags judge the status the outcome came from: they follow it.
    let outcome_from_view =
        (wins && v.outcome != CallOutcome::Unspecified) || s.outcome == CallOutcome::Unspecified;
    let (outcome, quality_flags) = if outcome_from_view {
        (v.outcome, v.quality_flags.clone())
    } else {
        (s.outcome, s.quality_flags.clone())
    };
    Call {
        source: s.source,
        external_id: s.external_id.clone(),
        task_id: text(&s.task_id, &v.task_id),
        parent_task_id: text(&s.parent_task_id, &v.parent_task_id),
        script_id: text(&s.script_id, &v.script_id),
        callee: text(&s.callee, &v.callee),
        callee_raw: text(&s.callee_raw, &v.callee_raw),
        caller: text(&s.caller, &v.caller),
        caller_raw: text(&s.caller_raw, &v.caller_raw),
        submit_time: opt(s.submit_time, v.submit_time),
        // Every view carries a call time (it is required).
        call_time: if wins { v.call_time } else { s.call_time },
        ring_time: opt(s.ring_time, v.ring_time),
        answer_time: opt(s.answer_time, v.answer_time),
        hangup_time: opt(s.hangup_time, v.hangup_time),
        ring_ms: num(s.ring_ms, v.ring_ms),
        talk_ms: num(s.talk_ms, v.talk_ms),
        total_ms: num(s.total_ms, v.total_ms),
        billed_ms: num(s.billed_ms, v.billed_ms),
        outcome,
        vendor_status: text(&s.vendor_status, &v.vendor_status),
        hangup_cause: text(&s.hangup_cause, &v.hangup_cause),
        sip_code: text(&s.sip_code, &v.sip_code),
        hangup_by: *pick(&s.hangup_by, &v.hangup_by, wins, |p| {
            *p != Party::Unspecified
        }),
        score: *pick(&s.score, &v.score, wins, Option::is_some),
        intent_level: match (&s.intent_level, &v.intent_level) {
            // One level named differently by two views (smartivr's brief
            // record has only `level_name`; a list row the `level` object):
            // field by field.
            (Some(old), Some(new)) if old.id == new.id => Some(IntentLevel {
                id: old.id.clone(),
                name: text(&old.name, &new.name),
                alias: text(&old.alias, &new.alias),
                color: text(&old.color, &new.color),
            }),
            (old, new) => pick(old, new, wins, Option::is_some).clone(),
        },
        rounds: num32(s.rounds, v.rounds),
        tags,
        tag_groups,
        recording_url: text(&s.recording_url, &v.recording_url),
        gender: *pick(&s.gender, &v.gender, wins, |g| *g != Gender::Unspecified),
        location: Location {
            province: text(&s.location.province, &v.location.province),
            city: text(&s.location.city, &v.location.city),
            area_code: text(&s.location.area_code, &v.location.area_code),
            carrier: text(&s.location.carrier, &v.location.carrier),
            region: text(&s.location.region, &v.location.region),
            post_code: text(&s.location.post_code, &v.location.post_code),
        },
        billing: Billing {
            rate: text(&s.billing.rate, &v.billing.rate),
            base_cost: text(&s.billing.base_cost, &v.billing.base_cost),
            cost: text(&s.billing.cost, &v.billing.cost),
            currency: text(&s.billing.currency, &v.billing.currency),
            settle_rate: text(&s.billing.settle_rate, &v.billing.settle_rate),
            settle_cost: text(&s.billing.settle_cost, &v.billing.settle_cost),
            quote_exchange: text(&s.billing.quote_exchange, &v.billing.quote_exchange),
            bill_period: text(&s.billing.bill_period, &v.billing.bill_period),
            base_cost_currency: text(&s.billing.base_cost_currency, &v.billing.base_cost_currency),
            settle_currency: text(&s.billing.settle_currency, &v.billing.settle_currency),
        },
        dtmf: text(&s.dtmf, &v.dtmf),
        recall_count: num32(s.recall_count, v.recall_count),
        recall_of: text(&s.recall_of, &v.recall_of),
        customer_name: text(&s.customer_name, &v.customer_name),
        line_id: text(&s.line_id, &v.line_id),
        attributes: merge_attributes(&s.attributes, &v.attributes, wins),
        turns,
        update_time: match (s.update_time, v.update_time) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
        quality_flags,
    }
}

/// The call's own tags and hit groups in the form they are stored in: each
/// tag once (first mention), and the hit groups followed by the groups only
/// its tags name, each once, so that a view compares equal to the stored
/// call it repeats.
fn with_own_part_as_stored(call: &Call) -> Call {
    let mut call = call.clone();
    let mut seen = std::collections::HashSet::new();
    call.tags.retain(|t| seen.insert(t.id.clone()));
    let mut seen = std::collections::HashSet::new();
    let named = std::mem::take(&mut call.tag_groups);
    call.tag_groups = named
        .into_iter()
        .chain(call.tags.iter().flat_map(|t| t.groups.iter().cloned()))
        .filter(|g| seen.insert(g.id.clone()))
        .collect();
    call
}

/// `new` where the view wins and carries a value, or where the stored call
/// has none; `old` otherwise.
fn pick<'a, T>(old: &'a T, new: &'a T, wins: bool, carried: impl Fn(&T) -> bool) -> &'a T {
    if carried(new) && (wins || !carried(old)) {
        new
    } else {
        old
    }
}

/// Key by key; the winner's keys first, so that a merge beyond the limit of
/// [`MAX_ATTRIBUTES`] keeps the winner whole and adds what fits of the other.
fn merge_attributes(
    stored: &BTreeMap<String, String>,
    view: &BTreeMap<String, String>,
    wins: bool,
) -> BTreeMap<String, String> {
    let (first, second) = if wins { (view, stored) } else { (stored, view) };
    let mut out = first.clone();
    for (key, value) in second {
        if out.len() >= MAX_ATTRIBUTES {
            break;
        }
        out.entry(key.clone()).or_insert_with(|| value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sample::sample_call;

    #[test]
    fn a_view_fills_and_replaces_only_what_it_carries() {
        let stored = sample_call();
        let mut view = sample_call();
        view.recording_url = String::new();
        view.score = Some(7);
        view.turns.clear();
        view.attributes = [("read_at".to_owned(), "later".to_owned())].into();
        let merged = merge_views(&stored, &view, MergeRule::ViewWins);
        assert_eq!(merged.recording_url, stored.recording_url);
        assert_eq!(merged.score, Some(7));
        assert_eq!(merged.turns, stored.turns);
        assert_eq!(merged.attributes["read_at"], "later");
        for (k, v) in &stored.attributes {
            if k != "read_at" {
                assert_eq!(&merged.attributes[k], v);
            }
        }
        let older = merge_views(&stored, &view, MergeRule::FillOnly);
        assert_eq!(older.score, stored.score);
        let as_stored = merge_views(&stored, &stored, MergeRule::ViewWins);
        assert_eq!(
            merge_views(&as_stored, &as_stored, MergeRule::ViewWins),
            as_stored
        );
    }
}
