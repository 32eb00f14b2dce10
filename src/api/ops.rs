//! Operations around every gRPC route, in one tower layer outside
//! authentication: request ids, a tracing span and one log line per RPC,
//! Prometheus metrics, the deadline, the global in-flight bound
//! (`--max-in-flight`), failing fast while the database is down, and
//! ending open streams with UNAVAILABLE at shutdown. It works from the
//! request path and the response's `grpc-status`, so a new service is
//! covered without code of its own.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::metrics::{Metrics, RpcName, code_name};

/// The request (and response) metadata that carries the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Services that are never shed nor failed fast: health must answer during
/// an overload or an outage, and reflection needs no database.
const EXEMPT: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The gRPC methods the server offers, by path, read from descriptor sets.
#[derive(Debug, Default)]
pub struct MethodTable(HashMap<String, RpcName>);

impl MethodTable {
    /// Every method of every service in the encoded `FileDescriptorSet`s.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Self {
        let mut table = HashMap::new();
        for set in sets {
            let Ok(set) = FileSet::decode(*set) else {
                continue;
            };
            for file in set.file {
                for service in file.service {
                    let full = if file.package.is_empty() {
                        service.name.clone()
                    } else {
                        format!("{}.{}", file.package, service.name)
                    };
                    for method in service.method {
                        let kind = match (method.client_streaming, method.server_streaming) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        table.insert(
                            format!("/{full}/{}", method.name),
                            RpcName {
                                service: full.clone(),
                                method: method.name,
                                kind,
                            },
                        );
                    }
                }
            }
        }
        Self(table)
    }

    /// The method at `path`, or `unknown`.
    pub fn name(&self, path: &str) -> RpcName {
        self.0.get(path).cloned().unwrap_or_else(RpcName::unknown)
    }
}

// The few fields of google.protobuf.FileDescriptorSet the table needs
// (prost-types is not a dependency).
#[derive(Clone, PartialEq, Message)]
struct FileSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileProto>,
}
#[derive(Clone, PartialEq, Message)]
struct FileProto {
    #[prost(string, tag = "2")]
    package: String,
    #[prost(message, repeated, tag = "6")]
    service: Vec<ServiceProto>,
}
#[derive(Clone, PartialEq, Message)]
struct ServiceProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    method: Vec<MethodProto>,
}
#[derive(Clone, PartialEq, Message)]
struct MethodProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bool, tag = "5")]
    client_streaming: bool,
    #[prost(bool, tag = "6")]
    server_streaming: bool,
}

/// Whether the database answers, as the health watchdog last saw it, and
/// the trickle of requests let through while it does not.
#[derive(Debug)]
pub struct DatabaseGate {
    down: AtomicBool,
    /// Milliseconds since `epoch` before which no probe passes.
    next_probe_ms: AtomicU64,
    probe_every: Duration,
    epoch: Instant,
}

impl DatabaseGate {
    pub fn new(probe_every: Duration) -> Self {
        Self {
            down: AtomicBool::new(false),
            next_probe_ms: AtomicU64::new(0),
            probe_every,
            epoch: Instant::now(),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Whether a request may run: always while the database is up; while it
    /// is down, one request per `probe_every` (the first to ask), so a
    /// recovery is seen by traffic as well as by the watchdog.
    fn admit(&self) -> bool {
        if !self.is_down() {
            return true;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        let next = self.next_probe_ms.load(Ordering::SeqCst);
        now >= next
            && self
                .next_probe_ms
                .compare_exchange(
                    next,
                    now + self.probe_every.as_millis() as u64,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
    }
}

/// The global bound on RPCs served at once, across all connections.
#[derive(Debug, Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    max: usize,
    /// Requests waiting for a permit now: at most `max` wait, the rest are
    /// refused at once.
    waiting: Arc<AtomicUsize>,
    /// The longest a request waits for a permit before it is refused.
    wait: Duration,
    /// What RetryInfo tells a refused client.
    retry_after: Duration,
}

impl Admission {
    pub fn new(max: usize, wait: Duration, retry_after: Duration) -> Self {
        let max = max.max(1);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            waiting: Arc::new(AtomicUsize::new(0)),
            wait,
            retry_after,
        }
    }

    /// RPCs being served now.
    pub fn in_flight(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A permit at once, or within the bounded wait (never past `deadline`).
    ///
    /// Only `max` requests wait: a request behind as many others as may run
    /// at once would mostly wait its whole time to be refused anyway, so it
    /// is refused now. A refusal then costs no timer, no waiter and no held
    /// stream, and an admitted request waits behind one round at most.
    async fn acquire(&self, deadline: Duration) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        // Half the client's deadline at most: a refusal must reach the
        // client before it gives up, or it sees DEADLINE_EXCEEDED instead.
        let wait = self.wait.min(deadline / 2);
        // A zero wait needs no timer (tokio's would still round it up to
        // its next millisecond tick).
        if wait.is_zero() {
            return None;
        }
        let queued = Waiting::join(&self.waiting);
        if queued.ahead >= self.max {
            return None;
        }
        tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Requests waiting for a permit now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// A place in the wait for a permit, left when dropped (admitted, refused,
/// or the client went away).
struct Waiting<'a> {
    count: &'a AtomicUsize,
    /// How many were waiting before this one.
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn join(count: &'a AtomicUsize) -> Self {
        let ahead = count.fetch_add(1, Ordering::SeqCst);
        Self { count, ahead }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Everything the layer shares between requests.
#[derive(Clone)]
pub struct OpsLayer {
    state: Arc<OpsState>,
}

struct OpsState {
    metrics: Metrics,
    methods: MethodTable,
    admission: Admission,
    database: Arc<DatabaseGate>,
    /// The longest any RPC may run (`--request-timeout-ms`).
    max_deadline: Duration,
    /// Turns true when the server starts draining.
    shutdown: watch::Receiver<bool>,
}

impl OpsLayer {
    pub fn new(
        metrics: Metrics,
        methods: MethodTable,
        admission: Admission,
        database: Arc<DatabaseGate>,
        max_deadline: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            state: Arc::new(OpsState {
                metrics,
                methods,
                admission,
                database,
                max_deadline,
                shutdown,
            }),
        }
    }
}

impl<S> Layer<S> for OpsLayer {
    type Service = OpsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OpsService {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct OpsService<S> {
    inner: S,
    state: Arc<OpsState>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for OpsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Default + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<OpsBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let rpc = state.methods.name(&path);
        let request_id = request_id(request.headers());
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            request.headers_mut().insert(REQUEST_ID, value);
        }
        let span = tracing::info_span!(
            "rpc",
            request_id = %request_id,
            grpc_service = %rpc.service,
            grpc_method = %rpc.method,
            tenant = tracing::field::Empty,
        );
        let deadline = client_deadline(request.headers())
            .map_or(state.max_deadline, |d| d.min(state.max_deadline));
        let exempt = EXEMPT.contains(&rpc.service.as_str());
        state.metrics.rpc_started(&rpc);
        let future = async move {
            let mut finish = Finish {
                state: state.clone(),
                rpc,
                request_id,
                started,
                span: tracing::Span::current(),
                permit: None,
                probe: false,
                done: false,
            };
            if !exempt {
                if !state.database.admit() {
                    state.metrics.rpc_shed("database_down");
                    let status = Status::with_error_details(
                        Code::Unavailable,
                        "database unavailable, retry later",
                        ErrorDetails::with_retry_info(Some(crate::service::error::RETRY_AFTER)),
                    );
                    return Ok(finish.refuse(status));
                }
                finish.probe = state.database.is_down();
                match state.admission.acquire(deadline).await {
                    Some(permit) => finish.permit = Some(permit),
                    None => {
                        let retry = state.admission.retry_after;
                        let status = shed(
                            &state.metrics,
                            "overload",
                            format!(
                                "server busy: {} requests in flight, retry in {} ms",
                                state.admission.max,
                                retry.as_millis()
                            ),
                            retry,
                        );
                        return Ok(finish.refuse(status));
                    }
                }
            }
            let remaining = deadline.saturating_sub(started.elapsed());
            let response = match tokio::time::timeout(remaining, inner.call(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Ok(finish.refuse(Status::deadline_exceeded(
                        "the request's deadline passed before it was answered",
                    )));
                }
            };
            Ok(finish.respond(response))
        };
        Box::pin(future.instrument(span))
    }
}

/// A refusal before the RPC runs, counted in `callscope_grpc_shed_total`
/// under `reason`: RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` telling
/// the client when to try again. The overload bound here and the per-key
/// rate limit (`api::rate_limit`) answer alike.
pub fn shed(metrics: &Metrics, reason: &'static str, message: String, retry: Duration) -> Status {
    metrics.rpc_shed(reason);
    Status::with_error_details(
        Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(retry)),
    )
}

/// The client's `x-request-id` when it is a sane token (1-128 of
/// `A-Za-z0-9._:-`), else a new UUID: an id is logged, so it must not carry
/// arbitrary client text.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The `grpc-timeout` header: up to 8 digits and a unit (H M S m u n).
pub fn client_deadline(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get("grpc-timeout")?.to_str().ok()?;
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

/// What is recorded when an RPC ends: metrics, the log line, the permit.
struct Finish {
    state: Arc<OpsState>,
    rpc: RpcName,
    request_id: String,
    started: Instant,
    span: tracing::Span,
    permit: Option<OwnedSemaphorePermit>,
    /// Let through while the database was down.
    probe: bool,
    done: bool,
}

impl Finish {
    /// Answers `status` without running the RPC.
    fn refuse<B: Body + Default>(self, status: Status) -> http::Response<OpsBody<B>> {
        let response = status.into_http::<B>();
        self.respond(response)
    }

    fn respond<B: Body>(mut self, response: http::Response<B>) -> http::Response<OpsBody<B>> {
        let (mut parts, body) = response.into_parts();
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            parts.headers.insert(REQUEST_ID, value);
        }
        // A trailers-only answer (most errors) has its status in the headers.
        let code = grpc_code(&parts.headers);
        // The bound covers the handler's work, which is done once the
        // response starts: a slow reader must not hold a slot while its
        // answer is written, and an idle watcher must not hold one for a
        // stream's whole life.
        self.permit = None;
        let shutdown = if self.rpc.is_streaming() && code.is_none() {
            let mut rx = self.state.shutdown.clone();
            Some(Box::pin(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }) as BoxFuture<()>)
        } else {
            None
        };
        let mut body = OpsBody {
            inner: Box::pin(body),
            finish: Some(self),
            shutdown,
            draining: None,
            ended: false,
        };
        if let Some(code) = code {
            body.end(code);
        }
        http::Response::from_parts(parts, body)
    }

    fn record(&mut self, code: Code) {
        if self.done {
            return;
        }
        self.done = true;
        self.permit = None;
        let elapsed = self.started.elapsed();
        self.state
            .metrics
            .rpc_handled(&self.rpc, code, elapsed.as_secs_f64());
        if self.probe && code == Code::Ok {
            // A request let through during an outage succeeded: the
            // database is back, do not wait for the watchdog's next ping.
            self.state.database.set_down(false);
        }
        self.span.in_scope(|| {
            tracing::info!(
                grpc_code = code_name(code),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "rpc finished"
            );
        });
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        // Dropped unanswered: the client went away (or the connection was
        // cut at shutdown).
        self.record(Code::Cancelled);
    }
}

fn grpc_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.parse::<i32>().ok().map(Code::from_i32)
}

/// The response body, watched for its trailers (the status of a normal or
/// streaming answer) and, for streams, cut with UNAVAILABLE at shutdown.
pub struct OpsBody<B> {
    inner: Pin<Box<B>>,
    finish: Option<Finish>,
    shutdown: Option<BoxFuture<()>>,
    /// When shutdown was seen, for a stream.
    draining: Option<Instant>,
    ended: bool,
}

/// How long a stream may go on sending what it has ready once shutdown
/// begins.
const STREAM_DRAIN: Duration = Duration::from_millis(100);

impl<B> OpsBody<B> {
    fn end(&mut self, code: Code) {
        if let Some(mut finish) = self.finish.take() {
            finish.record(code);
        }
    }
}

impl<B> Body for OpsBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.draining.is_none()
            && let Some(shutdown) = this.shutdown.as_mut()
            && shutdown.as_mut().poll(cx).is_ready()
        {
            this.draining = Some(Instant::now());
        }
        let frame = match (this.inner.as_mut().poll_frame(cx), this.draining) {
            // Draining: messages already produced (a last health status) go
            // out for a moment, then the stream ends with a status the
            // client retries, resuming from its last token.
            (Poll::Ready(frame), Some(since)) if since.elapsed() < STREAM_DRAIN => frame,
            (_, Some(_)) => {
                this.ended = true;
                this.end(Code::Unavailable);
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from(Code::Unavailable as i32));
                trailers.insert(
                    "grpc-message",
                    HeaderValue::from_static("server%20shutting%20down,%20retry"),
                );
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            (Poll::Ready(frame), None) => frame,
            (Poll::Pending, None) => return Poll::Pending,
        };
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_code(trailers).unwrap_or(Code::Unknown);
                    this.end(code);
                }
            }
            Some(Err(_)) => this.end(Code::Internal),
            None => {
                this.ended = true;
                // Ended without trailers: a trailers-only answer was counted
                // already; anything else lost its status.
                this.end(Code::Unknown);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || (self.inner.is_end_stream() && self.finish.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(client_deadline(&headers), None);
        for (text, expected) in [
            ("2S", Some(Duration::from_secs(2))),
            ("150m", Some(Duration::from_millis(150))),
            ("1H", Some(Duration::from_secs(3600))),
            ("99999999n", Some(Duration::from_nanos(99_999_999))),
            ("123456789S", None),
            ("S", None),
            ("10x", None),
            ("-1S", None),
        ] {
            headers.insert("grpc-timeout", HeaderValue::from_static(text));
            assert_eq!(client_deadline(&headers), expected, "{text}");
        }
    }

    #[test]
    fn request_ids_kept_or_made() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123.x:y_z"));
        assert_eq!(request_id(&headers), "abc-123.x:y_z");
        headers.insert(REQUEST_ID, HeaderValue::from_static("a b"));
        let made = request_id(&headers);
        assert_eq!(made.len(), 36, "{made}");
        headers.remove(REQUEST_ID);
        assert_ne!(request_id(&headers), made);
    }

    #[tokio::test]
    async fn at_most_max_requests_wait_the_rest_are_refused_at_once() {
        let admission = Admission::new(2, Duration::from_secs(5), Duration::from_millis(100));
        let deadline = Duration::from_secs(30);
        let running = [
            admission.acquire(deadline).await,
            admission.acquire(deadline).await,
        ];
        assert!(running.iter().all(Option::is_some));
        assert_eq!(admission.in_flight(), 2);
        // Two wait for a permit...
        let first = tokio::spawn({
            let admission = admission.clone();
            async move { admission.acquire(deadline).await.is_some() }
        });
        let second = tokio::spawn({
            let admission = admission.clone();
            async move { admission.acquire(deadline).await.is_some() }
        });
        while admission.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        // ...so a third is refused without waiting its 5 s.
        let started = Instant::now();
        assert!(admission.acquire(deadline).await.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(admission.waiting(), 2, "a refusal leaves the queue");
        // Permits freed go to the waiting ones, which leave the queue.
        drop(running);
        assert!(first.await.unwrap_or(false) && second.await.unwrap_or(false));
        assert_eq!(admission.waiting(), 0);
        // A client that gives up while waiting leaves the queue too.
        let held = [
            admission.acquire(deadline).await,
            admission.acquire(deadline).await,
        ];
        let gone =
            tokio::time::timeout(Duration::from_millis(20), admission.acquire(deadline)).await;
        assert!(gone.is_err());
        assert_eq!(admission.waiting(), 0);
        drop(held);
    }

    #[tokio::test]
    async fn a_zero_wait_refuses_without_a_timer() {
        let admission = Admission::new(1, Duration::ZERO, Duration::from_millis(100));
        let _held = admission.acquire(Duration::from_secs(30)).await;
        let started = Instant::now();
        for _ in 0..100 {
            assert!(admission.acquire(Duration::from_secs(30)).await.is_none());
        }
        // tokio rounds a timer up to its next 1 ms tick: 100 refusals with a
        // timer each would take 100 ms at least.
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn database_gate_lets_one_probe_through_per_interval() {
        let gate = DatabaseGate::new(Duration::from_secs(60));
        assert!(gate.admit() && gate.admit());
        gate.set_down(true);
        assert!(gate.admit(), "the first request probes");
        assert!(
            !gate.admit() && !gate.admit(),
            "then none until the interval"
        );
        gate.set_down(false);
        assert!(gate.admit());
    }

    #[test]
    fn method_table_from_descriptors() {
        let table = MethodTable::from_descriptor_sets(&[
            crate::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ]);
        let list = table.name("/callscope.v1.CallService/ListCalls");
        assert_eq!(
            (list.service.as_str(), list.method.as_str(), list.kind),
            ("callscope.v1.CallService", "ListCalls", "unary")
        );
        assert_eq!(
            table.name("/grpc.health.v1.Health/Watch").kind,
            "server_stream"
        );
        assert_eq!(table.name("/made.Up/Path"), RpcName::unknown());
    }
}
