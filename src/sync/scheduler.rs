//! Runs every source whose interval has passed since its last run, on every
//! replica: the source's lease lets one of them pull it, and the others skip
//! it until the next interval.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::domain;
use crate::service::{CallScope, ServiceError};

/// Looks for due sources every tick until `stop` turns true.
pub async fn run(service: CallScope, mut stop: watch::Receiver<bool>) {
    let tick = service.sync_settings().scheduler_tick;
    if tick.is_zero() {
        return;
    }
    // Sources this process is pulling now: never two runs of one at once.
    let running: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let tenants = match service.store().tenants().await {
            Ok(tenants) => tenants,
            Err(e) => {
                tracing::warn!(error = %e, "sync scheduler cannot list tenants");
                continue;
            }
        };
        let now = domain::now_ms();
        for tenant in tenants {
            let sources = match service.list_sync_sources(&tenant).await {
                Ok(sources) => sources,
                Err(e) => {
                    tracing::warn!(error = %e, tenant, "sync scheduler cannot list sources");
                    continue;
                }
            };
            for source in sources {
                let interval = source.spec.interval_ms;
                let due = interval > 0
                    && source
                        .state
                        .last_run_time
                        .is_none_or(|last| now >= last.saturating_add(interval));
                let key = (tenant.clone(), source.spec.name.clone());
                if !due || !lock(&running).insert(key.clone()) {
                    continue;
                }
                let service = service.clone();
                let running = running.clone();
                tokio::spawn(async move {
                    match service.run_sync(&key.0, &key.1).await {
                        Ok(_) => {}
                        // Another replica has it: its run counts.
                        Err(ServiceError::Aborted(_)) => {}
                        Err(e) => {
                            tracing::warn!(tenant = %key.0, sync_source = %key.1, error = %e, "scheduled sync failed")
                        }
                    }
                    lock(&running).remove(&key);
                });
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
