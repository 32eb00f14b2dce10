//! JSON over HTTP: every RPC of `proto/` as `POST /<package>.<Service>/<Method>`
//! (the Connect protocol's unary form; server streams as NDJSON or Connect's
//! streaming envelope). Nothing here knows a method: the descriptor set says
//! what each path takes and answers, the JSON becomes protobuf bytes, and the
//! request goes through the SAME in-process gRPC stack as a gRPC client's
//! (authentication, roles, limits, the tonic handlers, the codec), so a new
//! RPC is served here the moment it is added to the gRPC server.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt as _;
use http_body_util::BodyExt;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use crate::domain::Violations;
use crate::domain::limits::MAX_JSON_REQUEST_BYTES;

/// The gRPC routes with every layer a gRPC client goes through, as one
/// service the HTTP handlers call in-process.
pub type GrpcStack = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    Infallible,
>;

/// The media type of a unary JSON request and answer.
const JSON: &str = "application/json";
/// A server stream as newline-delimited JSON, one message per line.
const NDJSON: &str = "application/x-ndjson";
/// Connect's streaming envelope with JSON messages.
const CONNECT_JSON: &str = "application/connect+json";

/// Flag of the envelope that ends a Connect stream (error and trailers).
const END_STREAM: u8 = 0x02;

/// What the JSON handlers share.
#[derive(Clone)]
pub struct Gateway {
    grpc: GrpcStack,
    /// The longest any call may run (`--request-timeout-ms`), as on gRPC.
    timeout: Duration,
}

impl Gateway {
    pub fn new(grpc: GrpcStack, timeout: Duration) -> Self {
        Self { grpc, timeout }
    }
}

/// The descriptors of callscope's services, of the `google.rpc` details and
/// of `grpc.health.v1`, decoded once.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool = DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled by build.rs decodes");
        pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .expect("tonic-health's descriptor set decodes");
        pool
    })
}

/// The method at an HTTP path (`/callscope.v1.CallService/ListCalls`).
/// callscope's own services are served, and the standard health check (a
/// load balancer or a browser asks it as a Connect client does).
fn method_at(path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if !service.starts_with("callscope.") && service != "grpc.health.v1.Health" {
        return None;
    }
    let service = pool().get_service_by_name(service)?;
    service.methods().find(|m| m.name() == method)
}

/// How the client frames its messages, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// One JSON message in the body (unary; for a server stream, the answer
    /// is NDJSON).
    Json,
    /// Connect's enveloped JSON (`application/connect+json`).
    ConnectStream,
}

/// A refused call, as the client will see it.
struct Refusal {
    status: Status,
    /// The HTTP status, when not the one Connect assigns to the code.
    http: Option<StatusCode>,
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Self {
        Self { status, http: None }
    }
}

impl From<Violations> for Refusal {
    fn from(v: Violations) -> Self {
        Status::from(v).into()
    }
}

/// `POST /<package>.<Service>/<Method>`.
pub async fn call(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(method) = method_at(parts.uri.path()) else {
        let status = Status::unimplemented(format!("no method at `{}`", parts.uri.path()));
        return error_response(&status, Some(StatusCode::NOT_FOUND), Framing::Json);
    };
    let framing = match framing(&parts.headers, &method) {
        Ok(framing) => framing,
        Err(refusal) => return error_response(&refusal.status, refusal.http, Framing::Json),
    };
    match serve(&gateway, &method, framing, &parts.headers, body).await {
        Ok(response) => response,
        Err(refusal) => error_response(&refusal.status, refusal.http, framing),
    }
}

/// Checks the headers Connect defines; a wrong media type is 415.
fn framing(headers: &HeaderMap, method: &MethodDescriptor) -> Result<Framing, Refusal> {
    if let Some(version) = headers.get("connect-protocol-version")
        && version.as_bytes() != b"1"
    {
        return Err(Violations::one(
            "Connect-Protocol-Version",
            "must be 1 when given (the Connect protocol's version this server speaks)",
        )
        .into());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // `application/json; charset=utf-8` is application/json.
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let framing = match essence.as_str() {
        JSON => Some(Framing::Json),
        CONNECT_JSON if method.is_server_streaming() => Some(Framing::ConnectStream),
        _ => None,
    };
    framing.ok_or_else(|| {
        let expected = match method.is_server_streaming() {
            true => "`application/json` (answered as NDJSON) or `application/connect+json`",
            false => "`application/json`",
        };
        let shown = if content_type.is_empty() {
            "none".to_owned()
        } else {
            format!("`{}`", content_type.escape_debug())
        };
        Refusal {
            status: Violations::one(
                "Content-Type",
                format!("is {shown}: this endpoint takes {expected}"),
            )
            .into(),
            http: Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        }
    })
}

/// Transcodes, calls the gRPC stack and transcodes the answer back.
async fn serve(
    gateway: &Gateway,
    method: &MethodDescriptor,
    framing: Framing,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let bytes = read_body(body).await?;
    let json = match framing {
        Framing::Json => bytes,
        Framing::ConnectStream => unenvelope(&bytes)?,
    };
    let message = json_to_message(&method.input(), &json)?;

    let timeout = requested_timeout(headers)?.map_or(gateway.timeout, |t| t.min(gateway.timeout));
    let request = grpc_request(method, headers, message.encode_to_vec())?;
    let call = gateway.grpc.clone().oneshot(request);
    let response = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => return Err(Status::deadline_exceeded("the call did not finish in time").into()),
    };
    // A refusal before any message (authentication, roles, validation,
    // oversized requests) comes as a trailers-only answer.
    if let Some(status) = Status::from_header_map(response.headers())
        && status.code() != Code::Ok
    {
        return Err(status.into());
    }
    let passed_headers = pass_headers(response.headers());
    let output = method.output();
    if method.is_server_streaming() {
        let stream = stream_answer(response.into_body(), output, framing, timeout);
        let content_type = match framing {
            Framing::Json => NDJSON,
            Framing::ConnectStream => CONNECT_JSON,
        };
        let mut response = Response::new(Body::from_stream(stream));
        *response.headers_mut() = passed_headers;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return Ok(response);
    }

    let collected = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .map_err(|_| Status::deadline_exceeded("the call did not finish in time"))?
        .map_err(Refusal::from)?;
    if let Some(status) = collected.trailers().and_then(Status::from_header_map)
        && status.code() != Code::Ok
    {
        return Err(status.into());
    }
    let data = collected.to_bytes();
    let mut frames = Frames::default();
    frames.buffer.extend_from_slice(&data);
    let Some(frame) = frames.next()? else {
        tracing::error!(method = method.full_name(), "gRPC answer without a message");
        return Err(Status::internal("internal error").into());
    };
    let json = message_to_json(&output, &frame)?;
    let mut response = Response::new(Body::from(json));
    *response.headers_mut() = passed_headers;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    Ok(response)
}

/// The body, up to [`MAX_JSON_REQUEST_BYTES`]; the protobuf it becomes is
/// then held to the service's own limit by the gRPC stack.
async fn read_body(body: Body) -> Result<Bytes, Refusal> {
    let limited = http_body_util::Limited::new(body, MAX_JSON_REQUEST_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal {
            status: Status::with_error_details(
                Code::ResourceExhausted,
                format!("the body is larger than {MAX_JSON_REQUEST_BYTES} bytes"),
                tonic_types::ErrorDetails::with_bad_request_violation(
                    "body",
                    format!("is larger than {MAX_JSON_REQUEST_BYTES} bytes"),
                ),
            ),
            http: Some(StatusCode::PAYLOAD_TOO_LARGE),
        }),
        Err(e) => Err(Violations::one("body", format!("could not be read: {e}")).into()),
    }
}

/// The one message of a Connect streaming request.
fn unenvelope(bytes: &[u8]) -> Result<Bytes, Refusal> {
    let refuse = |why: &str| Refusal::from(Violations::one("body", why.to_owned()));
    let Some((head, rest)) = bytes.split_first_chunk::<5>() else {
        return Err(refuse(
            "is not a Connect envelope: shorter than its 5-byte prefix",
        ));
    };
    if head[0] != 0 {
        return Err(refuse(
            "is a compressed or end-of-stream envelope: send one uncompressed message",
        ));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if rest.len() != len {
        return Err(refuse(
            "is not one Connect envelope: its length prefix does not match the body",
        ));
    }
    Ok(Bytes::copy_from_slice(rest))
}

/// `connect-timeout-ms`, as Connect clients send their deadline.
fn requested_timeout(headers: &HeaderMap) -> Result<Option<Duration>, Refusal> {
    let Some(value) = headers.get("connect-timeout-ms") else {
        return Ok(None);
    };
    let millis = value
        .to_str()
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok());
    match millis {
        Some(ms) => Ok(Some(Duration::from_millis(ms))),
        None => Err(Violations::one(
            "Connect-Timeout-Ms",
            "must be a positive integer of at most 10 digits",
        )
        .into()),
    }
}

/// The gRPC request the stack sees: the method's path, one uncompressed
/// frame, and the caller's key and request id.
fn grpc_request(
    method: &MethodDescriptor,
    headers: &HeaderMap,
    message: Vec<u8>,
) -> Result<http::Request<tonic::body::Body>, Refusal> {
    let len = u32::try_from(message.len()).map_err(|_| {
        Status::resource_exhausted("the request is larger than any message the services accept")
    })?;
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&message);
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(framed),
        )))
        .map_err(|e| {
            tracing::error!(error = %e, "building the in-process gRPC request");
            Status::internal("internal error")
        })?;
    for name in [
        header::AUTHORIZATION,
        HeaderName::from_static("x-request-id"),
    ] {
        for value in headers.get_all(&name) {
            request.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(request)
}

/// The answer's headers a JSON client sees: the gRPC ones are translated,
/// not passed.
fn pass_headers(headers: &HeaderMap) -> HeaderMap {
    let mut passed = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        if n.starts_with("grpc-") || n == "content-type" || n == "content-length" || n == "te" {
            continue;
        }
        passed.append(name.clone(), value.clone());
    }
    passed
}

/// gRPC's length-prefixed frames, as they arrive.
#[derive(Default)]
struct Frames {
    buffer: Vec<u8>,
}

impl Frames {
    /// The next whole message, if it has arrived.
    fn next(&mut self) -> Result<Option<Bytes>, Status> {
        let Some(head) = self.buffer.first_chunk::<5>() else {
            return Ok(None);
        };
        if head[0] != 0 {
            // The stack is never offered compression.
            tracing::error!("compressed gRPC frame from the in-process stack");
            return Err(Status::internal("internal error"));
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if self.buffer.len() < 5 + len {
            return Ok(None);
        }
        let frame = Bytes::copy_from_slice(&self.buffer[5..5 + len]);
        self.buffer.drain(..5 + len);
        Ok(Some(frame))
    }
}

/// A server stream's messages as NDJSON lines or Connect envelopes; an
/// error after the first message becomes the last line (`{"error": …}`) or
/// the end-of-stream envelope.
fn stream_answer(
    body: tonic::body::Body,
    output: MessageDescriptor,
    framing: Framing,
    idle: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    struct State {
        body: tonic::body::Body,
        frames: Frames,
        output: MessageDescriptor,
        framing: Framing,
        done: bool,
        idle: Duration,
    }
    let state = State {
        body,
        frames: Frames::default(),
        output,
        framing,
        done: false,
        idle,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            // A message already buffered goes out first.
            match s.frames.next() {
                Ok(Some(frame)) => {
                    return match message_to_json(&s.output, &frame) {
                        Ok(json) => Some((Ok(line(s.framing, 0, json)), s)),
                        Err(refusal) => {
                            s.done = true;
                            Some((Ok(end_line(s.framing, Some(&refusal.status))), s))
                        }
                    };
                }
                Ok(None) => {}
                Err(status) => {
                    s.done = true;
                    return Some((Ok(end_line(s.framing, Some(&status))), s));
                }
            }
            // Watch streams may be quiet for long: no deadline between
            // messages beyond the call's own (enforced by the stack).
            let _ = s.idle;
            match s.body.frame().await {
                None => {
                    s.done = true;
                    return Some((Ok(end_line(s.framing, None)), s));
                }
                Some(Err(status)) => {
                    s.done = true;
                    return Some((Ok(end_line(s.framing, Some(&status))), s));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => s.frames.buffer.extend_from_slice(&data),
                    Err(frame) => {
                        let status = frame
                            .trailers_ref()
                            .and_then(Status::from_header_map)
                            .filter(|st| st.code() != Code::Ok);
                        s.done = true;
                        return Some((Ok(end_line(s.framing, status.as_ref())), s));
                    }
                },
            }
        }
    })
    .filter(|chunk| {
        // NDJSON ends without a line for a clean end.
        let keep = !matches!(chunk, Ok(b) if b.is_empty());
        async move { keep }
    })
}

/// One message of a stream.
fn line(framing: Framing, flags: u8, json: Vec<u8>) -> Bytes {
    match framing {
        Framing::Json => {
            let mut json = json;
            json.push(b'\n');
            Bytes::from(json)
        }
        Framing::ConnectStream => {
            let mut out = Vec::with_capacity(json.len() + 5);
            out.push(flags);
            out.extend_from_slice(&(json.len() as u32).to_be_bytes());
            out.extend_from_slice(&json);
            Bytes::from(out)
        }
    }
}

/// The end of a stream: with NDJSON nothing, or `{"error": …}` as the last
/// line; with Connect the end-of-stream envelope.
fn end_line(framing: Framing, status: Option<&Status>) -> Bytes {
    let end = match status {
        Some(status) => json!({ "error": error_json(status) }),
        None if framing == Framing::Json => return Bytes::new(),
        None => json!({}),
    };
    let json = serde_json::to_vec(&end).unwrap_or_default();
    line(framing, END_STREAM, json)
}

/// The JSON answer of a message the stack encoded (public for the
/// benchmark of a 1,000-call page).
pub fn answer_json(desc: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, Status> {
    message_to_json(desc, bytes).map_err(|r| r.status)
}

/// The JSON answer of a message the stack encoded. The messages that carry
/// calls (listings, exports, events, one call) are decoded into their prost
/// type and written by its generated pbjson serializer, which costs a
/// fraction of the descriptor-driven path; everything else goes through
/// the descriptors. Both write the same proto3 JSON (a unit test holds them
/// equal on a message with every kind of field).
fn message_to_json(desc: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    match desc.full_name() {
        "callscope.v1.ListCallsResponse" => typed_json::<crate::proto::ListCallsResponse>(bytes),
        "callscope.v1.Call" => typed_json::<crate::proto::Call>(bytes),
        "callscope.v1.ExportCallsResponse" => {
            typed_json::<crate::proto::ExportCallsResponse>(bytes)
        }
        "callscope.v1.CallEvent" => typed_json::<crate::proto::CallEvent>(bytes),
        _ => dynamic_json(desc, bytes),
    }
}

/// [`message_to_json`] through the prost type `M` and its serde impl.
fn typed_json<M>(bytes: &[u8]) -> Result<Vec<u8>, Refusal>
where
    M: prost::Message + Default + serde::Serialize,
{
    let message = M::decode(bytes).map_err(|e| {
        tracing::error!(error = %e, message = std::any::type_name::<M>(), "undecodable answer from the stack");
        Status::internal("internal error")
    })?;
    let mut out = Vec::with_capacity(bytes.len() * 2);
    serde_json::to_writer(&mut out, &message).map_err(|e| {
        tracing::error!(error = %e, message = std::any::type_name::<M>(), "encoding an answer as JSON");
        Status::internal("internal error")
    })?;
    Ok(out)
}

/// [`message_to_json`] through the descriptors.
fn dynamic_json(desc: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    let message = DynamicMessage::decode(desc.clone(), bytes).map_err(|e| {
        tracing::error!(error = %e, message = desc.full_name(), "undecodable answer from the stack");
        Status::internal("internal error")
    })?;
    let mut out = Vec::with_capacity(bytes.len() * 2);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .map_err(|e| {
            tracing::error!(error = %e, message = desc.full_name(), "encoding an answer as JSON");
            Status::internal("internal error")
        })?;
    Ok(out)
}

/// A request body in the proto3 JSON mapping, as a message of `desc`.
/// Unknown fields are refused (a misspelt filter must not silently match
/// everything); a 64-bit integer given as a JSON number beyond 2^53 is
/// refused (a JavaScript client has already rounded it: send it as a
/// string). Each refusal names the field by its proto path
/// (`filter.task_ids[2]`).
fn json_to_message(desc: &MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, Refusal> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Violations::one("body", format!("is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Violations::one("body", "must be a JSON object").into());
    }
    let mut violations = Violations::new();
    check_message(desc, &value, "", &mut violations);
    if !violations.0.is_empty() {
        return Err(violations.into());
    }
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(&value, &mut track);
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    DynamicMessage::deserialize_with_options(desc.clone(), deserializer, &options).map_err(|e| {
        let path = proto_path(desc, &track.path());
        let field = if path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        Violations::one(field, format!("has the wrong type or value: {e}")).into()
    })
}

/// Largest integer a JSON number (an IEEE double) holds exactly.
const MAX_SAFE_INTEGER: u64 = 1 << 53;

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Unknown fields and unsafe 64-bit numbers, anywhere in the body.
fn check_message(desc: &MessageDescriptor, value: &Value, path: &str, out: &mut Violations) {
    // The well-known types have their own JSON forms (RFC 3339 strings…).
    if desc.full_name().starts_with("google.protobuf.") {
        return;
    }
    let Value::Object(map) = value else {
        return; // the wrong type is reported by the deserializer
    };
    for (key, value) in map {
        let field = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key));
        let Some(field) = field else {
            out.add(
                join(path, key),
                format!("is not a field of {}", desc.full_name()),
            );
            continue;
        };
        let here = join(path, field.name());
        if field.is_map() {
            if let (Value::Object(entries), Kind::Message(entry)) = (value, field.kind()) {
                let value_kind = entry.map_entry_value_field().kind();
                for (k, v) in entries {
                    check_value(&value_kind, v, &format!("{here}[{k}]"), out);
                }
            }
        } else if field.is_list() {
            if let Value::Array(items) = value {
                for (i, item) in items.iter().enumerate() {
                    check_value(&field.kind(), item, &format!("{here}[{i}]"), out);
                }
            }
        } else {
            check_value(&field.kind(), value, &here, out);
        }
    }
}

fn check_value(kind: &Kind, value: &Value, path: &str, out: &mut Violations) {
    match kind {
        Kind::Message(m) => check_message(m, value, path, out),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            if let Value::Number(n) = value {
                let unsafe_number = n
                    .as_u64()
                    .map(|v| v > MAX_SAFE_INTEGER)
                    .or_else(|| n.as_i64().map(|v| v.unsigned_abs() > MAX_SAFE_INTEGER))
                    .or_else(|| n.as_f64().map(|v| v.abs() > MAX_SAFE_INTEGER as f64))
                    .unwrap_or(false);
                if unsafe_number {
                    out.add(
                        path.to_owned(),
                        "is a 64-bit integer beyond 2^53 given as a JSON number, which loses \
                         precision: send it as a string (\"9007199254740993\")",
                    );
                }
            }
        }
        _ => {}
    }
}

/// A deserializer's path (JSON names, indices, map keys) as proto field
/// names: `filter.taskIds[2]` becomes `filter.task_ids[2]`.
fn proto_path(desc: &MessageDescriptor, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    // What the next segment indexes: a message's fields, or a list / map.
    enum At {
        Message(MessageDescriptor),
        Container(Kind, bool),
        Other,
    }
    let mut at = At::Message(desc.clone());
    for segment in path.iter() {
        match (segment, at) {
            (Segment::Map { key }, At::Message(m)) => {
                let field = m
                    .get_field_by_json_name(key)
                    .or_else(|| m.get_field_by_name(key));
                match field {
                    Some(f) => {
                        out = join(&out, f.name());
                        at = if f.is_map() {
                            match f.kind() {
                                Kind::Message(entry) => {
                                    At::Container(entry.map_entry_value_field().kind(), true)
                                }
                                _ => At::Other,
                            }
                        } else if f.is_list() {
                            At::Container(f.kind(), false)
                        } else {
                            match f.kind() {
                                Kind::Message(m) => At::Message(m),
                                _ => At::Other,
                            }
                        };
                    }
                    None => {
                        out = join(&out, key);
                        at = At::Other;
                    }
                }
            }
            (Segment::Map { key }, At::Container(kind, true)) => {
                out.push_str(&format!("[{key}]"));
                at = element(kind);
            }
            (Segment::Seq { index }, At::Container(kind, false)) => {
                out.push_str(&format!("[{index}]"));
                at = element(kind);
            }
            (Segment::Seq { index }, _) => {
                out.push_str(&format!("[{index}]"));
                at = At::Other;
            }
            (Segment::Map { key }, _) => {
                out = join(&out, key);
                at = At::Other;
            }
            (Segment::Enum { .. } | Segment::Unknown, a) => at = a,
        }
    }
    return out;

    fn element(kind: Kind) -> At {
        match kind {
            Kind::Message(m) => At::Message(m),
            _ => At::Other,
        }
    }
}

/// Connect's name of a gRPC code (`invalid_argument`).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP status Connect assigns to a code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Connect's error JSON: code, message and the `google.rpc` details, each
/// with its bytes (`value`, base64) and, for people, as JSON (`debug`).
pub fn error_json(status: &Status) -> Value {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), code_name(status.code()).into());
    if !status.message().is_empty() {
        error.insert("message".into(), status.message().into());
    }
    let details = tonic_types::Status::decode(status.details())
        .map(|s| s.details)
        .unwrap_or_default();
    if !details.is_empty() {
        let details: Vec<Value> = details
            .into_iter()
            .map(|any| {
                let name = any
                    .type_url
                    .rsplit_once('/')
                    .map_or(any.type_url.as_str(), |(_, name)| name)
                    .to_owned();
                let mut detail = serde_json::Map::new();
                detail.insert(
                    "value".into(),
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .encode(&any.value)
                        .into(),
                );
                let debug = pool()
                    .get_message_by_name(&name)
                    .and_then(|d| DynamicMessage::decode(d, any.value.as_slice()).ok())
                    .and_then(|m| serde_json::to_value(&m).ok());
                detail.insert("type".into(), name.into());
                if let Some(debug) = debug {
                    detail.insert("debug".into(), debug);
                }
                Value::Object(detail)
            })
            .collect();
        error.insert("details".into(), details.into());
    }
    Value::Object(error)
}

fn error_response(status: &Status, http: Option<StatusCode>, framing: Framing) -> Response {
    let http = http.unwrap_or_else(|| http_status(status.code()));
    let body = serde_json::to_vec(&error_json(status)).unwrap_or_default();
    let mut response = (http, body).into_response();
    // A Connect streaming client reads errors before the stream from the
    // body as JSON too.
    let _ = framing;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    if let Some(retry) = retry_after(status) {
        response.headers_mut().insert(header::RETRY_AFTER, retry);
    }
    response
}

/// `Retry-After` from a `google.rpc.RetryInfo`, in whole seconds.
fn retry_after(status: &Status) -> Option<HeaderValue> {
    let delay = status.get_details_retry_info()?.retry_delay?;
    HeaderValue::from_str(&delay.as_secs().max(1).to_string()).ok()
}

/// The JSON routes: every RPC at its gRPC path, and `GET /openapi.json`.
pub fn router(gateway: Gateway) -> axum::Router {
    axum::Router::new()
        .route("/{service}/{method}", axum::routing::post(call))
        .route(
            "/openapi.json",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, JSON)],
                    super::openapi::document_json(),
                )
            }),
        )
        .with_state(Arc::new(gateway))
}

/// CORS for browsers (gRPC-Web on the gRPC port, JSON on the HTTP port):
/// off unless `--cors-origin` names origins (`*` for any).
pub fn cors_layer(origins: &[String]) -> anyhow::Result<Option<tower_http::cors::CorsLayer>> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o)
                    .map_err(|_| anyhow::anyhow!("--cors-origin `{o}` is not a valid origin"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let header = HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([http::Method::POST, http::Method::GET])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header("x-request-id"),
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("connect-protocol-version"),
                header("connect-timeout-ms"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                header("x-request-id"),
            ])
            .max_age(Duration::from_secs(3600)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{StoredCall, sample::sample_call};
    use crate::proto;

    fn rich_call() -> proto::Call {
        let mut call = crate::api::convert::call_to_proto(StoredCall {
            call_id: "0190d7c2-6a37-7d8e-9f51-4c1b2a3d4e5f".into(),
            sync_time: 1_795_161_600_123,
            call: sample_call(),
        });
        // Every kind of field a call has: a negative optional, a zero left
        // out, large 64-bit integers, a map, unicode.
        call.score = Some(-7);
        call.talk_ms = 9_007_199_254_740_993;
        call.rounds = 0;
        call.attributes
            .insert("客户".into(), "张三 \"quoted\" \\ \u{1F600}".into());
        call.quality_flags = vec!["status_contradicts_timings".into()];
        call
    }

    fn both(desc_name: &str, bytes: &[u8]) -> (Value, Value) {
        let desc = pool()
            .get_message_by_name(desc_name)
            .expect("message in the descriptor set");
        let typed = message_to_json(&desc, bytes)
            .map_err(|r| r.status)
            .expect("typed");
        let dynamic = dynamic_json(&desc, bytes)
            .map_err(|r| r.status)
            .expect("dynamic");
        (
            serde_json::from_slice(&typed).expect("typed JSON"),
            serde_json::from_slice(&dynamic).expect("dynamic JSON"),
        )
    }

    #[test]
    fn the_typed_answers_write_what_the_descriptors_write() {
        let call = rich_call();
        let bare = proto::Call {
            call_id: "c".into(),
            ..Default::default()
        };
        let list = proto::ListCallsResponse {
            calls: vec![call.clone(), bare.clone()],
            next_page_token: "djF8…".into(),
            total_size: 12_345_678_901,
            total_size_capped: true,
        };
        let export = proto::ExportCallsResponse {
            calls: vec![call.clone()],
            resume_token: "AZnC".into(),
        };
        let event = proto::CallEvent {
            event_id: "9007199254740993".into(),
            r#type: proto::CallEventType::Updated as i32,
            call: Some(call.clone()),
            event_time: Some(proto::Timestamp {
                seconds: 1_795_161_600,
                nanos: 123_000_000,
            }),
            resume_token: "tok".into(),
        };
        for (name, bytes) in [
            ("callscope.v1.ListCallsResponse", list.encode_to_vec()),
            ("callscope.v1.Call", call.encode_to_vec()),
            ("callscope.v1.Call", bare.encode_to_vec()),
            ("callscope.v1.ExportCallsResponse", export.encode_to_vec()),
            ("callscope.v1.CallEvent", event.encode_to_vec()),
        ] {
            let (typed, dynamic) = both(name, &bytes);
            assert_eq!(typed, dynamic, "{name}");
        }
    }
}
