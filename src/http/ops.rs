//! Operations on the HTTP port: `GET /metrics` (Prometheus text) and the
//! request counter and latency histogram of every HTTP route.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

/// `router` plus `GET /metrics`, every route counted and timed.
pub fn with_operations(router: Router, metrics: Metrics) -> Router {
    router
        // No key needed: the figures name methods, codes and sources, never
        // a tenant's data.
        .route("/metrics", get(scrape).with_state(metrics.clone()))
        .layer(middleware::from_fn_with_state(metrics, count))
}

async fn scrape(State(metrics): State<Metrics>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

/// Counts and times a request under its route pattern (`/hooks/laaffic/{*key}`,
/// never the key itself); an unrouted path counts as `unmatched`.
async fn count(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics.http_handled(route, method, status, started.elapsed().as_secs_f64());
    response
}
