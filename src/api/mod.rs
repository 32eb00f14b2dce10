//! tonic adapters: each handler converts the request (`convert`), calls one
//! service method and converts the answer back. Logic lives in `service` and
//! `domain`, errors map in `status`, malformed bodies are refused in `codec`.

pub mod auth;
pub mod codec;
pub(crate) mod convert;
pub mod framing;
pub mod ops;
pub mod rate_limit;
pub mod status;

mod admin;
mod analytics;
mod calls;
mod catalog;
mod ingest;
mod subscriptions;
mod sync;

pub use admin::AdminApi;
pub use analytics::AnalyticsApi;
pub use calls::CallApi;
pub use catalog::CatalogApi;
pub use ingest::IngestApi;
pub use subscriptions::SubscriptionApi;
pub use sync::SyncApi;

use crate::domain::key::Identity;
use crate::domain::{DEFAULT_TENANT, Region};
use crate::service::CallScope;

/// What every handler needs: the service and the default phone region.
#[derive(Clone)]
pub struct ApiContext {
    pub service: CallScope,
    pub region: Region,
}

impl ApiContext {
    /// The tenant a request acts for: its key's, put there by the
    /// authentication layer (`auth`); `default` with `--auth none`. Every
    /// store call is scoped by it.
    fn tenant<T>(&self, request: &tonic::Request<T>) -> &'static str {
        request
            .extensions()
            .get::<Identity>()
            .map_or(DEFAULT_TENANT, |identity| identity.tenant)
    }
}
