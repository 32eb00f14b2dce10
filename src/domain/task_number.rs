//! The dialing list of a task: uploaded numbers, their smartivr dial status
//! (0-12) derived from their latest call, and the query that pages them.

use std::collections::BTreeMap;

use super::filter::{PageScope, ScopeWriter};
use super::limits::{
    MAX_FILTER_VALUES, MAX_ID_BYTES, check_attributes, check_count, check_required_id, check_text,
};
use super::{CallOutcome, Location, StoredCall, UnixMs, Violations};

/// The smartivr dial status of a number that has no call yet.
pub const STATUS_WAITING: i32 = 0;
/// The highest smartivr dial status (call loss).
pub const MAX_STATUS_CODE: i32 = 12;

/// A number as a CRM upload or an imported number list gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TaskNumberEntry {
    /// Normalised (E.164 when it parses), the key within the task.
    pub phone: String,
    /// As sent.
    pub phone_raw: String,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub location: Location,
    /// The status a vendor's number list reported (0-12), used while the
    /// number has no call of ours.
    pub status_code: Option<i32>,
}

impl TaskNumberEntry {
    /// Applies a later entry for the same phone, as an upload of it would
    /// update the stored number: the raw text is replaced, a given name,
    /// location field or attribute set replaces the old one, an empty one
    /// keeps it, and a status replaces the old status when there is one.
    pub fn absorb(&mut self, later: &TaskNumberEntry) {
        self.phone_raw.clone_from(&later.phone_raw);
        if !later.name.is_empty() {
            self.name.clone_from(&later.name);
        }
        if !later.attributes.is_empty() {
            self.attributes.clone_from(&later.attributes);
        }
        let (mine, theirs) = (&mut self.location, &later.location);
        for (slot, value) in [
            (&mut mine.province, &theirs.province),
            (&mut mine.city, &theirs.city),
            (&mut mine.area_code, &theirs.area_code),
            (&mut mine.carrier, &theirs.carrier),
            (&mut mine.region, &theirs.region),
            (&mut mine.post_code, &theirs.post_code),
        ] {
            if !value.is_empty() {
                slot.clone_from(value);
            }
        }
        if later.status_code.is_some() {
            self.status_code = later.status_code;
        }
    }
}

/// How many numbers an upload added and how many it changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskNumberUpsert {
    pub inserted: u32,
    pub updated: u32,
}

/// A number of a task's dialing list as listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskNumber {
    pub phone: String,
    /// As uploaded or listed by the vendor; empty when known only from calls.
    pub phone_raw: String,
    /// What a vendor's number list said (0-12), beside the derived status.
    pub vendor_status_code: Option<i32>,
    /// The smartivr code 0-12.
    pub status_code: i32,
    pub attempts: i64,
    pub last_call_time: Option<UnixMs>,
    pub location: Location,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    /// Newest first; filled only when asked.
    pub call_history: Vec<StoredCall>,
}

/// One page of a dialing list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNumberQuery {
    pub task_id: String,
    /// smartivr codes 0-12; any of them.
    pub statuses: Vec<i32>,
    /// Normalised.
    pub phone: Option<String>,
    pub carriers: Vec<String>,
    pub include_call_history: bool,
    pub page_size: u32,
    /// The phone the previous page ended on.
    pub after: Option<String>,
}

impl TaskNumberEntry {
    /// Everything wrong with a number a CRM uploads (`phone` normalised).
    pub fn violations(&self) -> Violations {
        let mut v = Violations::new();
        if self.phone.is_empty() {
            v.add("phone", "is required");
        }
        v.nest("", self.limit_violations());
        v
    }

    /// The bounds every stored number keeps, uploaded or from a vendor list.
    pub fn limit_violations(&self) -> Violations {
        let mut v = Violations::new();
        let l = &self.location;
        for (field, text) in [
            ("phone", &self.phone),
            ("phone_raw", &self.phone_raw),
            ("name", &self.name),
            ("location.province", &l.province),
            ("location.city", &l.city),
            ("location.area_code", &l.area_code),
            ("location.carrier", &l.carrier),
            ("location.region", &l.region),
            ("location.post_code", &l.post_code),
        ] {
            check_text(&mut v, field, text, MAX_ID_BYTES);
        }
        check_attributes(&mut v, "attributes", &self.attributes);
        v
    }
}

impl TaskNumberQuery {
    /// Everything wrong with the query (paths as in ListTaskNumbersRequest).
    pub fn violations(&self) -> Violations {
        let mut v = Violations::new();
        check_required_id(&mut v, "task_id", &self.task_id);
        check_count(&mut v, "statuses", self.statuses.len(), MAX_FILTER_VALUES);
        check_count(&mut v, "carriers", self.carriers.len(), MAX_FILTER_VALUES);
        if self.carriers.len() <= MAX_FILTER_VALUES {
            for (i, carrier) in self.carriers.iter().enumerate() {
                check_text(&mut v, format!("carriers[{i}]"), carrier, MAX_ID_BYTES);
            }
        }
        v
    }

    /// What a page token of this listing is bound to: the tenant and every
    /// filter field, in the canonical encoding of [`PageScope`].
    pub fn scope(&self, tenant: &str) -> PageScope {
        let mut w = ScopeWriter::new(tenant, "task-numbers");
        w.text(10, &self.task_id);
        w.ints(11, self.statuses.iter().map(|s| i64::from(*s)));
        w.opt_text(12, self.phone.as_deref());
        w.texts(13, &self.carriers);
        w.finish()
    }
}

/// The smartivr dial status a call's outcome gives its number. Outcomes the
/// smartivr set has no code for (voicemail, other, unspecified) count as
/// 4 "no answer": the callee was not reached.
pub fn status_code_of(outcome: CallOutcome) -> i32 {
    use CallOutcome as O;
    match outcome {
        O::Answered => 1,
        O::LineFailure => 2,
        O::Rejected => 3,
        O::NoAnswer | O::Voicemail | O::Other | O::Unspecified => 4,
        O::InvalidNumber => 5,
        O::PoweredOff => 6,
        O::Suspended => 7,
        O::Busy => 8,
        O::CallBarred => 9,
        O::Arrears => 10,
        O::Blacklisted => 11,
        O::CallLoss => 12,
    }
}

/// A number's dial status from its kept state: its latest call's outcome in
/// the task, else the status its list entry gave, else waiting. Outcome codes
/// this build does not know count as an unspecified outcome.
pub fn dial_status(last_outcome: Option<i32>, vendor_status_code: Option<i32>) -> i32 {
    match last_outcome {
        Some(code) => {
            status_code_of(CallOutcome::from_code(code).unwrap_or(CallOutcome::Unspecified))
        }
        None => vendor_status_code.unwrap_or(STATUS_WAITING),
    }
}

/// Where numbers of the wanted dial statuses are, in the kept state: the
/// latest-call outcomes that map to one of them, and for numbers without a
/// call the list statuses equal to one of them (`None`: no list status,
/// which is waiting).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSources {
    pub outcomes: Vec<i32>,
    pub vendor_statuses: Vec<Option<i32>>,
}

impl StatusSources {
    pub fn of(statuses: &[i32]) -> StatusSources {
        let mut wanted: Vec<i32> = statuses.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let outcomes = CallOutcome::ALL
            .iter()
            .filter(|o| wanted.contains(&status_code_of(**o)))
            .map(|o| o.code())
            .collect();
        let mut vendor_statuses: Vec<Option<i32>> = wanted.iter().map(|s| Some(*s)).collect();
        if wanted.contains(&STATUS_WAITING) {
            vendor_statuses.push(None);
        }
        StatusSources {
            outcomes,
            vendor_statuses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_a_status_in_range() {
        for outcome in CallOutcome::ALL {
            let code = status_code_of(*outcome);
            assert!((1..=MAX_STATUS_CODE).contains(&code), "{outcome:?}");
        }
        assert_eq!(status_code_of(CallOutcome::Busy), 8);
    }

    #[test]
    fn status_sources_hold_exactly_the_states_of_the_wanted_statuses() {
        let vendor_values = [None, Some(0), Some(3), Some(11), Some(12)];
        for wanted in 0..=MAX_STATUS_CODE {
            let sources = StatusSources::of(&[wanted]);
            for outcome in CallOutcome::ALL {
                for vendor in vendor_values {
                    let found = sources.outcomes.contains(&outcome.code());
                    assert_eq!(
                        found,
                        dial_status(Some(outcome.code()), vendor) == wanted,
                        "{outcome:?} {vendor:?} {wanted}"
                    );
                }
            }
            for vendor in vendor_values {
                assert_eq!(
                    sources.vendor_statuses.contains(&vendor),
                    dial_status(None, vendor) == wanted,
                    "{vendor:?} {wanted}"
                );
            }
        }
    }
}

/// How far a task has got: its dialing list by status and its calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskProgress {
    /// Numbers uploaded, imported or called in the task.
    pub numbers_total: i64,
    /// (smartivr status code 0-12, numbers), derived as ListTaskNumbers does.
    pub numbers_by_status: Vec<(i32, i64)>,
    pub calls_total: i64,
    pub calls_answered: i64,
    /// Calls by intent level id ([`crate::domain::stats::NO_INTENT_LEVEL_KEY`]
    /// for none), most first.
    pub calls_by_intent_level: Vec<crate::domain::stats::CountEntry>,
    pub first_call_time: Option<UnixMs>,
    pub last_call_time: Option<UnixMs>,
}

impl TaskProgress {
    pub fn answer_rate(&self) -> f64 {
        crate::domain::stats::ratio(self.calls_answered, self.calls_total)
    }
}
