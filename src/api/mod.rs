//! tonic adapters: each handler converts the request (`convert`), calls one
//! service method and converts the answer back. Logic lives in `service` and
//! `domain`, errors map in `status`, malformed bodies are refused in `codec`.

pub mod codec;
pub(crate) mod convert;
pub mod status;

mod analytics;
mod calls;
mod ingest;

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
