//! Deleting calls and erasing a phone number (AdminService), with an audit
//! line for each, and keeping the quarantine within its caps.

use std::collections::BTreeMap;

use super::{CallScope, ServiceError};
use crate::domain::erasure::{ErasureCounts, PhoneNotations, mask_phone};
use crate::domain::{self, CallFilter, RejectedRecord, Source, TagMatch, TimeField, Violations};

/// The tracing target of audit lines: who removed what, when.
pub const AUDIT_TARGET: &str = "callscope::audit";

/// Who asks for a removal, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub tenant: &'a str,
    /// The API key's id, once requests carry keys (`None` with `--auth none`).
    pub key_id: Option<&'a str>,
}

/// Whether a filter selects every call: nothing narrows it.
fn selects_every_call(filter: &CallFilter) -> bool {
    let mut bare = filter.clone();
    // These only qualify other fields: alone they narrow nothing.
    bare.tag_match = TagMatch::default();
    bare.window.field = TimeField::default();
    bare == CallFilter::default()
}

/// The filter as it may be logged: phone digits masked.
fn loggable(filter: &CallFilter) -> CallFilter {
    let mut f = filter.clone();
    f.phone = f.phone.as_deref().map(mask_phone);
    f.phone_contains = f.phone_contains.as_deref().map(mask_phone);
    f
}

impl CallScope {
    /// Deletes the calls `filter` selects (or counts them, `validate_only`).
    /// An empty filter is refused: it would delete every call.
    pub async fn delete_calls(
        &self,
        actor: Actor<'_>,
        filter: &CallFilter,
        validate_only: bool,
    ) -> Result<i64, ServiceError> {
        if selects_every_call(filter) {
            return Err(Violations::one(
                "filter",
                "is required: an empty filter would delete every call",
            )
            .into());
        }
        let deleted = self
            .retrying("delete_calls", || {
                self.store.delete_calls(actor.tenant, filter, validate_only)
            })
            .await?;
        tracing::info!(
            target: AUDIT_TARGET,
            action = "DeleteCalls",
            tenant = actor.tenant,
            key_id = actor.key_id.unwrap_or("-"),
            time = %jiff::Timestamp::now(),
            filter = ?loggable(filter),
            validate_only,
            deleted_calls = deleted,
            "delete calls"
        );
        Ok(deleted)
    }

    /// Removes a normalised phone number from calls, dialing lists and the
    /// quarantine (or counts what would go, `validate_only`).
    pub async fn erase_phone(
        &self,
        actor: Actor<'_>,
        phone: &str,
        validate_only: bool,
    ) -> Result<ErasureCounts, ServiceError> {
        let notations = PhoneNotations::new(phone);
        let now = domain::now_ms();
        let counts = self
            .retrying("erase_phone", || {
                self.store
                    .erase_phone(actor.tenant, &notations, validate_only, now)
            })
            .await?;
        if !validate_only {
            domain::forget_notations();
        }
        tracing::info!(
            target: AUDIT_TARGET,
            action = "ErasePhone",
            tenant = actor.tenant,
            key_id = actor.key_id.unwrap_or("-"),
            time = %jiff::Timestamp::now(),
            phone = %mask_phone(phone),
            validate_only,
            calls = counts.calls,
            task_numbers = counts.task_numbers,
            rejected_records = counts.rejected_records,
            "erase phone"
        );
        Ok(counts)
    }

    /// Drops the oldest quarantined records of each source `kept` touched
    /// until the caps hold again; the records just kept stay. A failure is
    /// logged: the records are stored, and the next one tries again.
    pub(super) async fn enforce_quarantine_caps(&self, tenant: &str, kept: &[RejectedRecord]) {
        let mut by_source: BTreeMap<Option<i32>, (Option<Source>, Vec<String>)> = BTreeMap::new();
        for record in kept {
            by_source
                .entry(record.source.map(Source::code))
                .or_insert_with(|| (record.source, Vec::new()))
                .1
                .push(record.id.clone());
        }
        for (source, ids) in by_source.into_values() {
            match self
                .store
                .trim_quarantine(tenant, source, self.quarantine_limits, &ids)
                .await
            {
                Ok(trim) if trim.rows > 0 => tracing::warn!(
                    tenant,
                    source = source.map_or("none", Source::slug),
                    dropped_records = trim.rows,
                    dropped_bytes = trim.bytes,
                    max_rows = self.quarantine_limits.max_rows,
                    max_bytes = self.quarantine_limits.max_bytes,
                    "quarantine full, oldest records dropped"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(tenant, error = %e, "could not trim the quarantine"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TimeWindow;

    #[test]
    fn an_empty_filter_selects_every_call() {
        assert!(selects_every_call(&CallFilter::default()));
        let qualifiers_only = CallFilter {
            tag_match: TagMatch::All,
            window: TimeWindow {
                field: TimeField::SyncTime,
                ..TimeWindow::default()
            },
            ..CallFilter::default()
        };
        assert!(selects_every_call(&qualifiers_only));
        let tasks = CallFilter {
            task_ids: vec!["t".into()],
            ..CallFilter::default()
        };
        assert!(!selects_every_call(&tasks));
    }

    #[test]
    fn logged_filters_mask_numbers() {
        let f = CallFilter {
            phone: Some("+8613800010001".into()),
            ..CallFilter::default()
        };
        assert_eq!(loggable(&f).phone.as_deref(), Some("+86138****0001"));
    }
}
