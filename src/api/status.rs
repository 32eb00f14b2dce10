//! The one mapping from service errors to `tonic::Status`. Clients see a
//! small set of codes, each with its `google.rpc` details; internal causes
//! were logged where they became a [`ServiceError`] and are never sent.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::domain::Violations;
use crate::service::ServiceError;

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
            ServiceError::InvalidArgument(v) => invalid_argument(&v),
            ServiceError::NotFound { what, id } => Status::with_error_details(
                Code::NotFound,
                format!("{what} `{id}` not found"),
                ErrorDetails::with_resource_info(what, id, "", "no such resource for this tenant"),
            ),
            ServiceError::Unavailable {
                message,
                retry_after,
            } => Status::with_error_details(
                Code::Unavailable,
                message,
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            ServiceError::PermissionDenied(message) => Status::permission_denied(message),
            ServiceError::ResourceExhausted {
                message,
                retry_after,
            } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(retry_after),
            ),
            ServiceError::OutOfRange { field, message } => Status::with_error_details(
                Code::OutOfRange,
                format!("{field} {message}"),
                ErrorDetails::with_bad_request_violation(field, message),
            ),
            ServiceError::DeadlineExceeded(what) => {
                Status::deadline_exceeded(format!("deadline exceeded: {what}"))
            }
            ServiceError::Internal => Status::internal("internal error"),
        }
    }
}

/// A request that failed validation in `convert`.
impl From<Violations> for Status {
    fn from(v: Violations) -> Self {
        invalid_argument(&v)
    }
}
