//! Pulling from vendor query APIs: the settings of the pull, the vendor HTTP
//! client (`client`) and the scheduler that runs sources on their interval
//! (`scheduler`). The pull itself is an operation of the service
//! (`service::sync`), so RunSync and the scheduler run the same code.

pub mod client;
pub mod scheduler;

use std::time::Duration;

/// How the pull behaves; `serve --sync-*` flags.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// This process's name in leases.
    pub owner: String,
    /// How long a lease lasts without renewal: a crashed holder's source is
    /// taken over after this.
    pub lease: Duration,
    /// Most list pages one task may take in one window: a vendor whose
    /// `last_page` keeps growing is stopped here.
    pub max_pages: u32,
    /// Largest vendor answer read.
    pub max_page_bytes: usize,
    /// `record_info` requests in flight at once per run.
    pub concurrency: usize,
    /// Vendor requests per second per source.
    pub rate_per_second: u32,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Attempts per request (the first included).
    pub max_attempts: u32,
    /// Retries one run may make in all.
    pub retry_budget: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How often the scheduler looks for due sources; zero turns it off.
    pub scheduler_tick: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            owner: uuid::Uuid::new_v4().to_string(),
            lease: Duration::from_secs(60),
            max_pages: 10_000,
            max_page_bytes: 50 * 1024 * 1024,
            concurrency: 8,
            rate_per_second: 50,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            max_attempts: 4,
            retry_budget: 50,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            scheduler_tick: Duration::from_secs(1),
        }
    }
}
