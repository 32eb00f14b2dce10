//! tonic adapters: decode and validate a request, call the service, encode the
//! answer. Logic lives in `service` and `domain`, errors map in `status`.

pub mod convert;
pub mod status;

mod admin;
mod analytics;
mod calls;
mod ingest;
mod task_numbers;

pub use admin::AdminApi;
pub use analytics::AnalyticsApi;
pub use calls::CallApi;
pub use ingest::IngestApi;

use crate::domain::{DEFAULT_TENANT, Region};
use crate::service::CallScope;

/// What every handler needs: the service and the default phone region.
#[derive(Clone)]
pub struct ApiContext {
    pub service: CallScope,
    pub region: Region,
}

impl ApiContext {
    /// The tenant a request acts for. One tenant until API keys arrive; every
    /// store call is already scoped by it.
    fn tenant<T>(&self, _request: &tonic::Request<T>) -> &'static str {
        DEFAULT_TENANT
    }
}
