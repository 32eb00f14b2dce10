//! Keys for the webhooks: `Authorization: Bearer KEY`, or the key as one more
//! path segment (`POST /hooks/<source>/<KEY>`) for vendors that can only be
//! given a URL. The key's tenant is the tenant the records are stored for;
//! without a valid ingest or admin key the answer is 401 before the body is
//! read, so nothing is stored and nothing quarantined.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::key::Role;
use crate::service::keys::{AuthError, Authenticator, bearer_token};

/// Puts the request's [`crate::domain::key::Identity`] into its extensions,
/// or answers 401 (503 when the keys cannot be read).
pub async fn require_key(
    State(auth): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    // With `--auth none` any key in the header or path is ignored.
    let presented = match auth.requires_key() {
        true => presented_key(&request),
        false => Ok(None),
    };
    let identity = match presented {
        Ok(key) => auth.authenticate(key).await,
        Err(e) => Err(e),
    };
    match identity {
        Ok(identity) if identity.role.allows(Role::Ingest) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Ok(identity) => {
            tracing::info!(key_id = identity.key_id.as_deref(), role = %identity.role, "webhook: role may not ingest");
            refuse(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                format!(
                    "an API key with role `{}` may not post webhooks: use an ingest or admin key",
                    identity.role
                ),
            )
        }
        Err(AuthError::Unavailable(cause)) => {
            tracing::warn!(error = %cause, "webhook: api keys unavailable");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                AuthError::Unavailable(cause).to_string(),
            )
        }
        Err(e) => {
            tracing::info!(key_id = e.key_id(), reason = %e, "webhook: unauthenticated");
            refuse(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", e.to_string())
        }
    }
}

/// The key in the path (`/hooks/<source>/<KEY>`, taken raw: a real key never
/// needs percent-escapes, so an escaped one is malformed) or else in the
/// `Authorization` header; `None` when neither has one.
fn presented_key(request: &Request) -> Result<Option<&str>, AuthError> {
    let in_path = request
        .uri()
        .path()
        .strip_prefix("/hooks/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_source, key)| key);
    if let Some(key) = in_path {
        return Ok(Some(key));
    }
    match request.headers().get(header::AUTHORIZATION) {
        None => Ok(None),
        Some(value) => {
            let value = value.to_str().map_err(|_| AuthError::Malformed)?;
            bearer_token(value).map(Some)
        }
    }
}

fn refuse(status: StatusCode, code: &str, error: String) -> Response {
    let mut response =
        (status, axum::Json(json!({ "code": code, "error": error }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}
