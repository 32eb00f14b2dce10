//! Vendor webhooks on the HTTP port: each body goes through the same pipeline
//! as ImportRecords. A vendor is told "stored" only after the commit, because
//! vendors retry on anything but success.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::domain::{DEFAULT_TENANT, Source};
use crate::service::ingest::{Channel, RecordOutcome, RecordResult};
use crate::service::{CallScope, ServiceError};
use crate::store::StoreError;

/// How long a webhook body may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone)]
struct HookState {
    service: CallScope,
    body_limit: usize,
}

/// The webhook routes: `POST /hooks/{laaffic,alibaba-lvms,smartivr}`, and
/// `GET /healthz`.
pub fn router(service: CallScope, body_limit: usize) -> Router {
    let state = HookState {
        service,
        body_limit,
    };
    Router::new()
        .route("/hooks/laaffic", post(laaffic))
        .route("/hooks/alibaba-lvms", post(alibaba_lvms))
        .route("/hooks/smartivr", post(smartivr))
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// `?task_id=` names the task of number-list entries that carry none.
#[derive(Debug, Default, serde::Deserialize)]
struct HookParams {
    task_id: Option<String>,
}

async fn laaffic(State(state): State<HookState>, body: Body) -> Response {
    let (status, answer) = receive(&state, Source::Laaffic, body, None).await;
    (status, axum::Json(answer.plain())).into_response()
}

async fn smartivr(
    State(state): State<HookState>,
    Query(params): Query<HookParams>,
    body: Body,
) -> Response {
    let (status, answer) = receive(&state, Source::Smartivr, body, params.task_id).await;
    (status, axum::Json(answer.plain())).into_response()
}

/// Alibaba's gateway expects an `lvms_result_d_t_o` (`count`, `success`,
/// `code`, `message`).
async fn alibaba_lvms(State(state): State<HookState>, body: Body) -> Response {
    let (status, answer) = receive(&state, Source::AlibabaLvms, body, None).await;
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

async fn receive(
    state: &HookState,
    source: Source,
    body: Body,
    task_id: Option<String>,
) -> (StatusCode, Answer) {
    let service = &state.service;
    // A body that trickles in is cut off: a vendor's push is one small request.
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, read_limited(body, state.body_limit));
    let Ok(read) = read.await else {
        return (
            StatusCode::REQUEST_TIMEOUT,
            Answer::failed("BODY_TIMEOUT", "the body did not arrive in time", None),
        );
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { head, seen }) => {
            let reason = format!("body larger than the {}-byte limit", state.body_limit);
            return match service
                .quarantine(
                    DEFAULT_TENANT,
                    Some(source),
                    Channel::Http,
                    &head,
                    seen,
                    &reason,
                )
                .await
            {
                Ok(id) => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Answer::failed("BODY_TOO_LARGE", reason, Some(id)),
                ),
                // Not kept: make the vendor retry rather than lose it.
                Err(e) => {
                    tracing::warn!(error = %e, "webhook: could not quarantine an oversized body");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Answer::failed(
                            "UNAVAILABLE",
                            "could not keep the record, retry later",
                            None,
                        ),
                    )
                }
            };
        }
        Err(BodyError::Read(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                Answer::failed("BAD_BODY", format!("could not read the body: {e}"), None),
            );
        }
    };
    match service
        .import_records(
            DEFAULT_TENANT,
            source,
            Channel::Http,
            &[&bytes],
            task_id.as_deref(),
        )
        .await
    {
        Ok(results) => match results.into_iter().next() {
            Some(RecordResult {
                outcome: RecordOutcome::Rejected,
                reason,
                rejected_id,
                ..
            }) => (
                StatusCode::BAD_REQUEST,
                Answer::failed("INVALID_RECORD", reason, rejected_id),
            ),
            Some(result) => (
                StatusCode::OK,
                Answer {
                    code: "OK",
                    outcome: match result.outcome {
                        RecordOutcome::Inserted => "INSERTED",
                        RecordOutcome::Updated => "UPDATED",
                        // Answered 200 all the same: a vendor must not retry it.
                        RecordOutcome::Erased => "ERASED",
                        _ => "UNCHANGED",
                    },
                    call_ids: result.call_ids,
                    error: None,
                    rejected_id: None,
                },
            ),
            None => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Answer::failed("INTERNAL", "no result", None),
            ),
        },
        Err(ServiceError::Invalid(violations)) => (
            StatusCode::BAD_REQUEST,
            Answer::failed("INVALID_REQUEST", violations.to_string(), None),
        ),
        Err(ServiceError::Store(StoreError::Unavailable(e))) => {
            tracing::warn!(error = %e, "webhook: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Answer::failed("UNAVAILABLE", "database unavailable, retry later", None),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Answer::failed("INTERNAL", "internal error", None),
            )
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
