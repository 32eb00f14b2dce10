//! The one error type of the service layer, independent of transport. The
//! store's errors become it here, once; `api::status` maps it to gRPC and
//! `http` to HTTP. An internal cause is logged here and never leaves.

use std::time::Duration;

use crate::domain::Violations;
use crate::store::StoreError;

/// How long a client should wait before retrying an unavailable database.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long a client should wait before retrying a write that kept losing
/// races with concurrent ones: they are usually over by then.
pub const CONFLICT_RETRY_AFTER: Duration = Duration::from_millis(100);

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
    /// The resource exists already (a name taken). `id` is safe to echo.
    #[error("{what} `{id}` already exists")]
    AlreadyExists { what: &'static str, id: String },
    /// Someone else is doing this right now (another replica holds a lease).
    #[error("{0}")]
    Aborted(String),
    /// The operation cannot go on in this state (a vendor limit was hit, a
    /// vendor refused); the message names why.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A vendor we pull from cannot be reached or keeps failing; the message
    /// names the request (never its credentials).
    #[error("{0}")]
    VendorUnavailable(String),
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
            // Only once the service's own attempts are spent
            // (`CallScope::retrying`), or for an operation it does not
            // retry.
            StoreError::Conflict(cause) => {
                tracing::warn!(error = %cause, "write kept conflicting with concurrent ones");
                ServiceError::Unavailable {
                    message: "write conflicted with concurrent writes, retry",
                    retry_after: CONFLICT_RETRY_AFTER,
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
