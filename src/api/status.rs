//! The one mapping from service errors to `tonic::Status`. Internal causes are
//! logged here with their chain and never sent to the client.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::domain::Violations;
use crate::service::ServiceError;
use crate::store::StoreError;

/// `INVALID_ARGUMENT` with a `google.rpc.BadRequest` naming every bad field.
pub fn invalid_argument(violations: &Violations) -> Status {
    let fields: Vec<FieldViolation> = violations
        .0
        .iter()
        .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
        .collect();
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        ErrorDetails::with_bad_request(fields),
    )
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Invalid(v) => invalid_argument(&v),
            ServiceError::NotFound { what, id } => Status::with_error_details(
                Code::NotFound,
                format!("{what} `{id}` not found"),
                ErrorDetails::with_resource_info(what, id, "", "no such resource for this tenant"),
            ),
            ServiceError::Store(StoreError::Unavailable(cause)) => {
                tracing::warn!(error = %cause, "database unavailable");
                Status::with_error_details(
                    Code::Unavailable,
                    "database unavailable, retry later",
                    ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
                )
            }
            ServiceError::Store(other) => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "internal error");
                Status::internal("internal error")
            }
        }
    }
}
