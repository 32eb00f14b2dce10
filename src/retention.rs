//! The retention purge: removes calls older than `--retention-days` and
//! quarantined records older than `--quarantine-retention-days`, at start and
//! then every interval, across all tenants, in small transactions so ingest
//! never waits long behind it.
//!
//! Finding the tenants: on PostgreSQL every tenant table has row-level
//! security with FORCE, and a transaction sees only the tenant it declares,
//! so `SELECT DISTINCT tenant_id FROM calls` cannot list them. The write path
//! therefore records each tenant that stores a call or a quarantined record
//! in a small `tenants` table (tenant ids only, no policy), and the purge
//! walks it, declaring each tenant in turn like any request. This needs no
//! role that bypasses row-level security, and, unlike deriving tenants from
//! API keys, also covers `--auth none` and tenants whose keys are revoked
//! but whose data remains.

use std::time::Duration;

use tokio::sync::watch;

use crate::domain::{self, UnixMs};
use crate::store::{Store, StoreError};

/// Rows removed per transaction.
pub const PURGE_BATCH: usize = 500;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// What the purge removes, and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Calls whose `call_time` is older than this many days; `None` keeps them.
    pub call_days: Option<u32>,
    /// Quarantined records received more than this many days ago; `None`
    /// keeps them (the caps still apply).
    pub quarantine_days: Option<u32>,
    pub interval: Duration,
}

impl RetentionPolicy {
    /// Whether there is anything to purge at all.
    pub fn is_active(&self) -> bool {
        self.call_days.is_some() || self.quarantine_days.is_some()
    }
}

/// What one purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeReport {
    pub tenants: usize,
    pub calls: u64,
    pub rejected_records: u64,
}

/// Runs one purge over every tenant, as of `now`.
pub async fn purge(
    store: &Store,
    policy: &RetentionPolicy,
    now: UnixMs,
) -> Result<PurgeReport, StoreError> {
    let cutoff = |days: u32| now - i64::from(days) * DAY_MS;
    let mut report = PurgeReport::default();
    for tenant in store.tenants().await? {
        report.tenants += 1;
        let calls = match policy.call_days {
            Some(days) => {
                store
                    .purge_calls_before(&tenant, cutoff(days), PURGE_BATCH)
                    .await?
            }
            None => 0,
        };
        let rejected = match policy.quarantine_days {
            Some(days) => {
                store
                    .purge_rejected_before(&tenant, cutoff(days), PURGE_BATCH)
                    .await?
            }
            None => 0,
        };
        if calls > 0 || rejected > 0 {
            tracing::info!(
                tenant,
                calls,
                rejected_records = rejected,
                "retention purge removed old data"
            );
        }
        report.calls += calls;
        report.rejected_records += rejected;
    }
    Ok(report)
}

/// Purges at start and then every `policy.interval` until `stop` turns true.
/// A failed purge is logged and tried again at the next tick.
pub async fn run(store: Store, policy: RetentionPolicy, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(policy.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let started = std::time::Instant::now();
        let result = tokio::select! {
            result = purge(&store, &policy, domain::now_ms()) => result,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match result {
            Ok(report) => tracing::info!(
                tenants = report.tenants,
                calls = report.calls,
                rejected_records = report.rejected_records,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "retention purge done"
            ),
            Err(e) => tracing::warn!(error = %e, "retention purge failed"),
        }
    }
}

/// Removes events older than `hours` from every tenant's event log, as of
/// `now`, [`PURGE_BATCH`] per transaction; answers how many.
pub async fn purge_events(store: &Store, hours: u32, now: UnixMs) -> Result<u64, StoreError> {
    let cutoff = now - i64::from(hours) * 3600 * 1000;
    let mut purged = 0;
    for (tenant, _) in store.event_logs().await? {
        let n = store
            .purge_events_before(&tenant, cutoff, PURGE_BATCH)
            .await?;
        if n > 0 {
            tracing::info!(tenant, events = n, "event retention removed old events");
        }
        purged += n;
    }
    Ok(purged)
}

/// Purges the event log at start and then every `interval` until `stop`
/// turns true. Always on: the log would otherwise grow with every write.
pub async fn run_events(
    store: Store,
    hours: u32,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let result = tokio::select! {
            result = purge_events(&store, hours, domain::now_ms()) => result,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "event retention failed");
        }
    }
}
