//! The one error type of the service layer, independent of transport. The
//! store's errors become it here, once; `api::status` maps it to gRPC and
//! `http` to HTTP. An internal cause is logged here and never leaves.

use std::time::Duration;

use crate::domain::Violations;
use crate::store::StoreError;

/// How long a client should wait before retrying an unavailable database.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why an operation failed, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong; each violation names a field.
    #[error("invalid request: {0}")]
    InvalidArgument(Violations),
    /// No such resource for this tenant. `id` is safe to echo (bounded).
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    /// A dependency is down or busy; retrying later may succeed.
    #[error("{message}")]
    Unavailable {
        message: &'static str,
        retry_after: Duration,
    },
    /// The caller may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Too much at once (load shedding, quotas).
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        retry_after: Option<Duration>,
    },
    /// A position the client asked for is no longer there (a resume token
    /// older than the event log keeps); `field` names the request field.
    #[error("{field} {message}")]
    OutOfRange {
        field: &'static str,
        message: String,
    },
    /// The client's deadline passed before the operation finished.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(&'static str),
    /// A fault of ours; the cause was logged where it was converted.
    #[error("internal error")]
    Internal,
}

impl From<Violations> for ServiceError {
    fn from(v: Violations) -> Self {
        ServiceError::InvalidArgument(v)
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ServiceError::Unavailable {
                    message: "database unavailable, retry later",
                    retry_after: RETRY_AFTER,
                }
            }
            other => {
                tracing::error!(
                    error = %other,
                    source = ?std::error::Error::source(&other),
                    "internal error"
                );
                ServiceError::Internal
            }
        }
    }
}
