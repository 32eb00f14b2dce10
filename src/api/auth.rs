//! Authentication and roles for every gRPC call, in one tower layer around
//! all tonic routes: the key in `authorization: Bearer …` becomes an
//! [`Identity`](crate::domain::key::Identity) in the request's extensions, and [`access`] decides, by gRPC
//! path alone, which role a method needs. Handlers never check either.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::Status;
use tower::{Layer, Service};

use crate::domain::key::Role;
use crate::service::keys::{AuthError, Authenticator, bearer_token};

/// Who may call a gRPC service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key needed: health checks and reflection.
    Public,
    /// A key whose role allows this one.
    Needs(Role),
}

/// The role each service needs. A service not listed needs `admin`, so a new
/// service is closed until it is given a row here.
const SERVICES: &[(&str, Access)] = &[
    ("grpc.health.v1.Health", Access::Public),
    ("grpc.reflection.v1.ServerReflection", Access::Public),
    ("grpc.reflection.v1alpha.ServerReflection", Access::Public),
    ("callscope.v1.CallService", Access::Needs(Role::Read)),
    ("callscope.v1.AnalyticsService", Access::Needs(Role::Read)),
    ("callscope.v1.CatalogService", Access::Needs(Role::Read)),
    ("callscope.v1.IngestService", Access::Needs(Role::Ingest)),
    ("callscope.v1.AdminService", Access::Needs(Role::Admin)),
    (
        "callscope.v1.SubscriptionService",
        Access::Needs(Role::Admin),
    ),
    ("callscope.v1.SyncService", Access::Needs(Role::Admin)),
];

/// Who may call the method at a gRPC path (`/callscope.v1.CallService/ListCalls`).
pub fn access(path: &str) -> Access {
    let service = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .map(|(service, _method)| service);
    service
        .and_then(|s| SERVICES.iter().find(|(name, _)| *name == s))
        .map_or(Access::Needs(Role::Admin), |(_, access)| *access)
}

/// The layer: wraps the tonic routes once, in `server.rs`.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Authenticator,
}

impl AuthLayer {
    pub fn new(auth: Authenticator) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The tonic routes behind authentication.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Authenticator,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let needed = match access(request.uri().path()) {
                Access::Public => return inner.call(request).await,
                Access::Needs(role) => role,
            };
            // With `--auth none` any authorization metadata is ignored.
            let presented = match auth.requires_key() {
                true => presented_key(request.headers()),
                false => Ok(None),
            };
            let identity = match presented {
                Ok(key) => auth.authenticate(key.as_deref()).await,
                Err(e) => Err(e),
            };
            match identity {
                Ok(identity) if identity.role.allows(needed) => {
                    // The request's span (`api::ops`) names the tenant on
                    // every line logged from here on.
                    tracing::Span::current().record("tenant", identity.tenant);
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Ok(identity) => {
                    tracing::info!(
                        key_id = identity.key_id.as_deref(),
                        role = %identity.role,
                        path = request.uri().path(),
                        "permission denied"
                    );
                    let needs = match needed {
                        Role::Admin => "`admin`".to_owned(),
                        other => format!("`{other}` or `admin`"),
                    };
                    Ok(Status::permission_denied(format!(
                        "an API key with role `{}` may not call this method: it needs role {needs}",
                        identity.role
                    ))
                    .into_http())
                }
                Err(e) => Ok(refusal(e, request.uri().path()).into_http()),
            }
        })
    }
}

/// The key in the `authorization` metadata, if any. Owned, so the request
/// is not borrowed across the key look-up.
fn presented_key(headers: &http::HeaderMap) -> Result<Option<String>, AuthError> {
    match headers.get(http::header::AUTHORIZATION) {
        None => Ok(None),
        Some(value) => {
            let value = value.to_str().map_err(|_| AuthError::Malformed)?;
            Ok(Some(bearer_token(value)?.to_owned()))
        }
    }
}

/// The status for a refused key, logged by key id only.
fn refusal(err: AuthError, path: &str) -> Status {
    match err {
        AuthError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "api keys unavailable");
            Status::unavailable(AuthError::Unavailable(cause).to_string())
        }
        err => {
            tracing::info!(key_id = err.key_id(), path, reason = %err, "unauthenticated");
            Status::unauthenticated(err.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_by_path() {
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Public);
        assert_eq!(
            access("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Access::Public
        );
        assert_eq!(
            access("/callscope.v1.CallService/ListCalls"),
            Access::Needs(Role::Read)
        );
        assert_eq!(
            access("/callscope.v1.IngestService/UpsertCalls"),
            Access::Needs(Role::Ingest)
        );
        for closed in [
            "/callscope.v1.AdminService/DeleteCalls",
            "/callscope.v1.NewService/Anything",
            "/grpc.health.v1.Health",
            "",
            "/",
        ] {
            assert_eq!(access(closed), Access::Needs(Role::Admin), "{closed}");
        }
    }
}
