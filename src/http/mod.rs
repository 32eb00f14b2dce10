//! Vendor webhooks on the HTTP port: each body goes through the same pipeline
//! as ImportRecords. A vendor is told "stored" only after the commit, because
//! vendors retry on anything but success.

pub mod auth;
pub mod connect;
pub mod openapi;
pub mod ops;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::domain::Source;
use crate::domain::key::Identity;
use crate::service::error::RETRY_AFTER;
use crate::service::ingest::{Channel, RecordOutcome};
use crate::service::keys::Authenticator;
use crate::service::{CallScope, ServiceError};

/// How long a webhook body may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone)]
struct HookState {
    service: CallScope,
    body_limit: usize,
}

/// The webhook routes: `POST /hooks/{laaffic,alibaba-lvms,smartivr}`, each
/// also with the API key as one more path segment, behind `auth`; and
/// `GET /healthz`.
pub fn router(service: CallScope, body_limit: usize, auth: Authenticator) -> Router {
    let state = HookState {
        service,
        body_limit,
    };
    // `{*key}` takes the rest of the path, `/` included, so any trick there
    // reaches the key check (and its 401) instead of a 404.
    let hooks = Router::new()
        .route("/hooks/laaffic", post(laaffic))
        .route("/hooks/laaffic/{*key}", post(laaffic))
        .route("/hooks/alibaba-lvms", post(alibaba_lvms))
        .route("/hooks/alibaba-lvms/{*key}", post(alibaba_lvms))
        .route("/hooks/smartivr", post(smartivr))
        .route("/hooks/smartivr/{*key}", post(smartivr))
        .route_layer(middleware::from_fn_with_state(auth, auth::require_key));
    hooks.route("/healthz", get(healthz)).with_state(state)
}

/// `?task_id=` names the task of number-list entries that carry none.
#[derive(Debug, Default, serde::Deserialize)]
struct HookParams {
    task_id: Option<String>,
}

async fn laaffic(
    State(state): State<HookState>,
    Extension(identity): Extension<Identity>,
    body: Body,
) -> Response {
    let (status, answer) = receive(&state, identity.tenant, Source::Laaffic, body, None).await;
    (status, axum::Json(answer.plain())).into_response()
}

async fn smartivr(
    State(state): State<HookState>,
    Extension(identity): Extension<Identity>,
    Query(params): Query<HookParams>,
    body: Body,
) -> Response {
    let tenant = identity.tenant;
    let (status, answer) = receive(&state, tenant, Source::Smartivr, body, params.task_id).await;
    (status, axum::Json(answer.plain())).into_response()
}

/// Alibaba's gateway expects an `lvms_result_d_t_o` (`count`, `success`,
/// `code`, `message`).
async fn alibaba_lvms(
    State(state): State<HookState>,
    Extension(identity): Extension<Identity>,
    body: Body,
) -> Response {
    let (status, answer) = receive(&state, identity.tenant, Source::AlibabaLvms, body, None).await;
    let result = json!({
        "lvms_result_d_t_o": {
            "count": answer.call_ids.len(),
            "success": answer.error.is_none(),
            "code": answer.code,
            "message": answer.error.clone().unwrap_or_else(|| answer.outcome.to_owned()),
        }
    });
    (status, axum::Json(result)).into_response()
}

async fn healthz(State(state): State<HookState>) -> StatusCode {
    match state.service.store().ping().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// What a webhook tells the vendor.
struct Answer {
    code: &'static str,
    outcome: &'static str,
    call_ids: Vec<String>,
    error: Option<String>,
    rejected_id: Option<String>,
}

impl Answer {
    fn plain(&self) -> Value {
        match &self.error {
            None => {
                json!({ "code": self.code, "outcome": self.outcome, "call_ids": self.call_ids })
            }
            Some(error) => json!({
                "code": self.code,
                "error": error,
                "rejected_record_id": self.rejected_id,
            }),
        }
    }

    fn failed(code: &'static str, error: impl Into<String>, rejected_id: Option<String>) -> Self {
        Self {
            code,
            outcome: "REJECTED",
            call_ids: Vec::new(),
            error: Some(error.into()),
            rejected_id,
        }
    }
}

/// Why a push was not stored.
enum Failure {
    /// The service refused the request or could not serve it.
    Service(ServiceError),
    /// The body was refused (unreadable, too slow, too large, a bad
    /// record); a kept copy is named by `rejected_id`.
    Refused {
        status: StatusCode,
        code: &'static str,
        reason: String,
        rejected_id: Option<String>,
    },
}

impl From<ServiceError> for Failure {
    fn from(err: ServiceError) -> Self {
        Failure::Service(err)
    }
}

/// The one mapping from service errors to HTTP: status and answer code.
fn service_failure(err: ServiceError) -> (StatusCode, Answer) {
    let (status, code) = match &err {
        ServiceError::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "INVALID_REQUEST"),
        ServiceError::NotFound { .. } => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        ServiceError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        ServiceError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        ServiceError::ResourceExhausted { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED")
        }
        ServiceError::OutOfRange { .. } => (StatusCode::BAD_REQUEST, "OUT_OF_RANGE"),
        ServiceError::DeadlineExceeded(_) => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        ServiceError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        ServiceError::AlreadyExists { .. } => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        ServiceError::Aborted(_) => (StatusCode::CONFLICT, "ABORTED"),
        ServiceError::FailedPrecondition(_) => (StatusCode::BAD_REQUEST, "FAILED_PRECONDITION"),
        ServiceError::VendorUnavailable(_) => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
    };
    (status, Answer::failed(code, err.to_string(), None))
}

/// Reads, parses and stores one push; a vendor hears 200 only once it is
/// committed.
#[tracing::instrument(skip_all, fields(source = source.slug()))]
async fn receive(
    state: &HookState,
    tenant: &str,
    source: Source,
    body: Body,
    task_id: Option<String>,
) -> (StatusCode, Answer) {
    match store_push(state, tenant, source, body, task_id.as_deref()).await {
        Ok(answer) => (StatusCode::OK, answer),
        Err(Failure::Service(err)) => service_failure(err),
        Err(Failure::Refused {
            status,
            code,
            reason,
            rejected_id,
        }) => (status, Answer::failed(code, reason, rejected_id)),
    }
}

async fn store_push(
    state: &HookState,
    tenant: &str,
    source: Source,
    body: Body,
    task_id: Option<&str>,
) -> Result<Answer, Failure> {
    let bytes = read_body(state, tenant, source, body).await?;
    let service = &state.service;
    let results = service
        .import_records(tenant, source, Channel::Http, &[&bytes], task_id)
        .await?;
    let Some(result) = results.into_iter().next() else {
        tracing::error!("webhook: the import answered no result for one record");
        return Err(ServiceError::Internal.into());
    };
    let outcome = match result.outcome {
        RecordOutcome::Inserted => "INSERTED",
        RecordOutcome::Updated => "UPDATED",
        RecordOutcome::Unchanged => "UNCHANGED",
        // Answered 200 all the same: a vendor must not retry an erased call.
        RecordOutcome::Erased => "ERASED",
        RecordOutcome::Rejected => {
            return Err(Failure::Refused {
                status: StatusCode::BAD_REQUEST,
                code: "INVALID_RECORD",
                reason: result.reason,
                rejected_id: result.rejected_id,
            });
        }
    };
    Ok(Answer {
        code: "OK",
        outcome,
        call_ids: result.call_ids,
        error: None,
        rejected_id: None,
    })
}

/// The body, read within the size limit and the time limit. An oversized
/// body is quarantined (its beginning) before it is refused.
async fn read_body(
    state: &HookState,
    tenant: &str,
    source: Source,
    body: Body,
) -> Result<Bytes, Failure> {
    // A body that trickles in is cut off: a vendor's push is one small request.
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, read_limited(body, state.body_limit));
    let refused = |status, code, reason: String, rejected_id| Failure::Refused {
        status,
        code,
        reason,
        rejected_id,
    };
    match read.await {
        Err(_) => Err(refused(
            StatusCode::REQUEST_TIMEOUT,
            "BODY_TIMEOUT",
            "the body did not arrive in time".into(),
            None,
        )),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(BodyError::Read(e))) => Err(refused(
            StatusCode::BAD_REQUEST,
            "BAD_BODY",
            format!("could not read the body: {e}"),
            None,
        )),
        Ok(Err(BodyError::TooLarge { head, seen })) => {
            let reason = format!("body larger than the {}-byte limit", state.body_limit);
            let channel = Channel::Http;
            let kept = (state.service)
                .quarantine(tenant, Some(source), channel, &head, seen, &reason)
                .await
                // Not kept: make the vendor retry rather than lose it.
                .map_err(|_| ServiceError::Unavailable {
                    message: "could not keep the record, retry later",
                    retry_after: RETRY_AFTER,
                })?;
            let status = StatusCode::PAYLOAD_TOO_LARGE;
            Err(refused(status, "BODY_TOO_LARGE", reason, Some(kept)))
        }
    }
}

enum BodyError {
    /// The body passed the limit: its beginning, and how much was seen.
    TooLarge {
        head: Vec<u8>,
        seen: usize,
    },
    Read(String),
}

/// Reads a body up to `limit` bytes. Past the limit it keeps reading only to
/// learn the size (bounded by 4× the limit), keeping the first 64 KiB.
async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    const HEAD: usize = 64 * 1024;
    let mut buffer: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen <= limit {
            buffer.extend_from_slice(&data);
        } else {
            buffer.truncate(HEAD);
            if buffer.len() < HEAD {
                let room = HEAD - buffer.len();
                buffer.extend_from_slice(&data[..room.min(data.len())]);
            }
            if seen > limit.saturating_mul(4) {
                break;
            }
        }
    }
    if seen > limit {
        Err(BodyError::TooLarge { head: buffer, seen })
    } else {
        Ok(Bytes::from(buffer))
    }
}
