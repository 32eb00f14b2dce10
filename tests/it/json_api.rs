//! The JSON API (Connect's unary protocol on the HTTP port) against gRPC: one
//! table of behaviour cases, each run over both transports on the same server
//! and held to the same expected outcome (the same answer, or the same code,
//! message and `BadRequest` fields); then what only JSON can get wrong
//! (malformed JSON, unknown fields, wrong types, 64-bit numbers beyond 2^53,
//! sizes, content types), keys and roles, gRPC-Web and CORS, and the OpenAPI
//! document.

use libtest_mimic::Trial;
use prost::Message;
use prost_reflect::{DynamicMessage, MethodDescriptor};
use serde_json::{Value, json};

use callscope::auth::AuthMode;
use callscope::config::ServeConfig;
use callscope::domain::key::Role;
use callscope::http::connect::pool;

use crate::helpers::TestApp;

pub fn trials() -> Vec<Trial> {
    let mut trials = json_api::trials();
    trials.extend(json_api_keys::trials());
    trials.extend(json_api_cors::trials());
    trials
}

// Named as the file so the trials read `json_api::<backend>::<test>`.
#[allow(clippy::module_inception)]
mod json_api {
    use super::*;
    crate::backend_tests!(
        behaviour_table_is_the_same_over_grpc_and_json,
        json_upsert_then_grpc_replay_is_unchanged,
        bad_json_is_invalid_argument_naming_the_field,
        grpc_web_over_http1_answers_with_trailers_in_the_body,
        openapi_document_is_served_and_committed,
        server_streams_answer_ndjson_and_connect_envelopes,
        watch_over_ndjson_sees_a_write_made_over_grpc,
    );
}

mod json_api_keys {
    use super::*;
    fn keys(config: &mut ServeConfig) {
        config.auth = AuthMode::Keys;
    }
    crate::backend_tests!(config: keys; json_calls_take_the_same_keys_roles_and_tenants);
}

mod json_api_cors {
    use super::*;
    fn cors(config: &mut ServeConfig) {
        config.cors_origins = vec!["https://crm.example.com".to_owned()];
    }
    crate::backend_tests!(config: cors; cors_allows_the_configured_origin_only);
}

/// What a client sees of one call, transport aside.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok(Value),
    Err {
        code: String,
        message: String,
        fields: Vec<String>,
    },
}

impl Outcome {
    fn ok(&self) -> &Value {
        match self {
            Outcome::Ok(v) => v,
            other => panic!("expected an answer, got {other:?}"),
        }
    }
}

fn method(path: &str) -> MethodDescriptor {
    let (service, name) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .expect("a /Service/Method path");
    pool()
        .get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == name))
        .unwrap_or_else(|| panic!("no method {path}"))
}

/// Connect's spelling of a gRPC code.
fn code_name(code: tonic::Code) -> String {
    let debug = format!("{code:?}");
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    if out == "cancelled" {
        "canceled".into()
    } else {
        out
    }
}

/// The HTTP status Connect's specification gives each code (written out
/// here, independently of the server's table).
fn connect_http_status(code: &str) -> u16 {
    match code {
        "invalid_argument" | "failed_precondition" | "out_of_range" => 400,
        "unauthenticated" => 401,
        "permission_denied" => 403,
        "not_found" => 404,
        "already_exists" | "aborted" => 409,
        "resource_exhausted" => 429,
        "canceled" => 499,
        "unimplemented" => 501,
        "unavailable" => 503,
        "deadline_exceeded" => 504,
        _ => 500,
    }
}

/// Raw protobuf bytes in and out, so any method can be called by path.
#[derive(Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// `request` (proto3 JSON) sent by a gRPC client; the answer as JSON.
async fn over_grpc(app: &TestApp, path: &str, request: &Value, key: Option<&str>) -> Outcome {
    let method = method(path);
    let message = DynamicMessage::deserialize(method.input(), request).expect("the case's JSON");
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("channel ready");
    let mut req = tonic::Request::new(message.encode_to_vec());
    if let Some(key) = key {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().expect("header"),
        );
    }
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    match grpc.unary(req, path, RawCodec).await {
        Ok(answer) => {
            let answer = DynamicMessage::decode(method.output(), answer.into_inner().as_slice())
                .expect("the answer decodes");
            Outcome::Ok(serde_json::to_value(&answer).expect("to JSON"))
        }
        Err(status) => Outcome::Err {
            code: code_name(status.code()),
            message: status.message().to_owned(),
            fields: crate::helpers::bad_fields(&status),
        },
    }
}

/// A raw JSON POST to the HTTP port: status, content type and body.
async fn post_json(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> (u16, String, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("http://{}{path}", app.http_addr))
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, content_type, body)
}

/// The Connect error of a JSON answer, checked against Connect's shape.
fn connect_error(status: u16, body: &Value) -> Outcome {
    let code = body["code"].as_str().expect("code").to_owned();
    assert_eq!(
        status,
        connect_http_status(&code),
        "HTTP status of {code}: {body}"
    );
    let mut fields = Vec::new();
    for detail in body["details"].as_array().into_iter().flatten() {
        let value = detail["value"].as_str().expect("value is a string");
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD_NO_PAD, value)
                .expect("value is unpadded base64");
        if detail["type"] == "google.rpc.BadRequest" {
            // The bytes and the debug JSON say the same.
            let decoded =
                tonic_types::pb::BadRequest::decode(bytes.as_slice()).expect("BadRequest");
            let debug: Vec<String> = detail["debug"]["fieldViolations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v["field"].as_str().unwrap_or("").to_owned())
                .collect();
            let from_bytes: Vec<String> = decoded
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect();
            assert_eq!(debug, from_bytes);
            fields.extend(from_bytes);
        }
    }
    Outcome::Err {
        code,
        message: body["message"].as_str().unwrap_or("").to_owned(),
        fields,
    }
}

/// `request` sent as Connect JSON; the answer as JSON.
async fn over_json(app: &TestApp, path: &str, request: &Value, key: Option<&str>) -> Outcome {
    let body = serde_json::to_vec(request).expect("JSON");
    let (status, content_type, body) = post_json(app, path, "application/json", body, key).await;
    assert_eq!(content_type, "application/json");
    if status == 200 {
        Outcome::Ok(body)
    } else {
        connect_error(status, &body)
    }
}

/// The seed: five calls over two tasks, newest last.
fn seed() -> Value {
    json!({ "calls": [
        { "source": "SOURCE_API", "externalId": "c1", "taskId": "t1", "callee": "18651683344",
          "callTime": "2026-11-01T01:00:00Z", "outcome": "CALL_OUTCOME_ANSWERED", "talkMs": "60000", "score": 90 },
        { "source": "SOURCE_API", "externalId": "c2", "taskId": "t1", "callee": "13800138000",
          "callTime": "2026-11-01T02:00:00Z", "outcome": "CALL_OUTCOME_NO_ANSWER", "score": 10 },
        { "source": "SOURCE_API", "externalId": "c3", "taskId": "t2", "callee": "13800138001",
          "callTime": "2026-11-01T03:00:00Z", "outcome": "CALL_OUTCOME_ANSWERED", "talkMs": "5000", "score": 50 },
        { "source": "SOURCE_API", "externalId": "c4", "taskId": "t2", "callee": "13800138002",
          "callTime": "2026-11-01T04:00:00Z", "outcome": "CALL_OUTCOME_BUSY" },
        { "source": "SOURCE_API", "externalId": "c5", "taskId": "t1", "callee": "13800138003",
          "callTime": "2026-11-01T05:00:00Z", "outcome": "CALL_OUTCOME_ANSWERED", "talkMs": "1000", "score": 70 },
    ]})
}

fn external_ids(answer: &Value) -> Vec<String> {
    answer["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["externalId"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// What a case must answer, over either transport.
enum Expect {
    /// The external ids of the listed calls, in order.
    Ids(&'static [&'static str]),
    /// An answer with these top-level values.
    Has(Value),
    /// A refusal: code and the `BadRequest` fields.
    Refused(&'static str, &'static [&'static str]),
}

struct Case {
    name: &'static str,
    path: &'static str,
    request: Value,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    const LIST: &str = "/callscope.v1.CallService/ListCalls";
    vec![
        Case {
            name: "list everything, newest first",
            path: LIST,
            request: json!({}),
            expect: Expect::Ids(&["c5", "c4", "c3", "c2", "c1"]),
        },
        Case {
            name: "filter by task, proto field names accepted too",
            path: LIST,
            request: json!({ "filter": { "task_ids": ["t1"] } }),
            expect: Expect::Ids(&["c5", "c2", "c1"]),
        },
        Case {
            name: "filter by outcome and talk time (int64 as a string)",
            path: LIST,
            request: json!({ "filter": { "outcomes": ["CALL_OUTCOME_ANSWERED"], "minTalkMs": "2000" } }),
            expect: Expect::Ids(&["c3", "c1"]),
        },
        Case {
            name: "int64 as a safe JSON number",
            path: LIST,
            request: json!({ "filter": { "maxTalkMs": 5000, "outcomes": ["CALL_OUTCOME_ANSWERED"] } }),
            expect: Expect::Ids(&["c5", "c3"]),
        },
        Case {
            name: "order by score, a page of two",
            path: LIST,
            request: json!({ "orderBy": "CALL_ORDER_SCORE_DESC", "pageSize": 2, "includeTotal": true }),
            expect: Expect::Has(json!({ "totalSize": "5" })),
        },
        Case {
            name: "time window",
            path: LIST,
            request: json!({ "filter": { "startTime": "2026-11-01T02:00:00Z", "endTime": "2026-11-01T04:00:00Z" } }),
            expect: Expect::Ids(&["c3", "c2"]),
        },
        Case {
            name: "negative page size",
            path: LIST,
            request: json!({ "pageSize": -1 }),
            expect: Expect::Refused("invalid_argument", &["page_size"]),
        },
        Case {
            name: "garbage page token",
            path: LIST,
            request: json!({ "pageToken": "garbage" }),
            expect: Expect::Refused("invalid_argument", &["page_token"]),
        },
        Case {
            name: "unknown call",
            path: "/callscope.v1.CallService/GetCall",
            request: json!({ "callId": "no-such-call" }),
            expect: Expect::Refused("not_found", &[]),
        },
        Case {
            name: "a call without digits in its number",
            path: "/callscope.v1.IngestService/UpsertCalls",
            request: json!({ "calls": [
                { "source": "SOURCE_API", "externalId": "bad", "callee": "no digits", "callTime": "2026-11-01T01:00:00Z" },
            ]}),
            expect: Expect::Refused("invalid_argument", &["calls[0].callee"]),
        },
        Case {
            name: "the seed again is unchanged",
            path: "/callscope.v1.IngestService/UpsertCalls",
            request: seed(),
            expect: Expect::Has(json!({ "unchanged": 5 })),
        },
        Case {
            name: "stats of task t1",
            path: "/callscope.v1.AnalyticsService/GetCallStats",
            request: json!({ "filter": { "taskIds": ["t1"] } }),
            expect: Expect::Has(
                json!({ "totalCalls": "3", "answeredCalls": "2", "talkMsTotal": "61000" }),
            ),
        },
    ]
}

async fn behaviour_table_is_the_same_over_grpc_and_json(app: TestApp) {
    let seeded = over_grpc(
        &app,
        "/callscope.v1.IngestService/UpsertCalls",
        &seed(),
        None,
    )
    .await;
    assert_eq!(seeded.ok()["inserted"], json!(5), "{seeded:?}");
    for case in cases() {
        let grpc = over_grpc(&app, case.path, &case.request, None).await;
        let json = over_json(&app, case.path, &case.request, None).await;
        assert_eq!(grpc, json, "{}: the transports differ", case.name);
        match (&case.expect, &json) {
            (Expect::Ids(ids), Outcome::Ok(answer)) => {
                assert_eq!(external_ids(answer), *ids, "{}", case.name)
            }
            (Expect::Has(values), Outcome::Ok(answer)) => {
                for (key, value) in values.as_object().expect("object") {
                    assert_eq!(&answer[key], value, "{}: {key} in {answer}", case.name);
                }
            }
            (
                Expect::Refused(code, fields),
                Outcome::Err {
                    code: c, fields: f, ..
                },
            ) => {
                assert_eq!(c, code, "{}", case.name);
                assert_eq!(f, fields, "{}", case.name);
            }
            (_, outcome) => panic!("{}: unexpected {outcome:?}", case.name),
        }
    }
    // Paging by token works across transports: a token from JSON pages on
    // over gRPC, and the pages are the same.
    let request = json!({ "pageSize": 2 });
    let first = over_json(&app, "/callscope.v1.CallService/ListCalls", &request, None).await;
    let token = first.ok()["nextPageToken"]
        .as_str()
        .expect("a token")
        .to_owned();
    let next = json!({ "pageSize": 2, "pageToken": token });
    let by_grpc = over_grpc(&app, "/callscope.v1.CallService/ListCalls", &next, None).await;
    let by_json = over_json(&app, "/callscope.v1.CallService/ListCalls", &next, None).await;
    assert_eq!(by_grpc, by_json);
    assert_eq!(external_ids(by_json.ok()), ["c3", "c2"]);
}

async fn json_upsert_then_grpc_replay_is_unchanged(app: TestApp) {
    let stored = over_json(
        &app,
        "/callscope.v1.IngestService/UpsertCalls",
        &seed(),
        None,
    )
    .await;
    assert_eq!(stored.ok()["inserted"], json!(5), "{stored:?}");
    let replay = over_grpc(
        &app,
        "/callscope.v1.IngestService/UpsertCalls",
        &seed(),
        None,
    )
    .await;
    assert_eq!(replay.ok()["unchanged"], json!(5), "{replay:?}");
    // A call read back over JSON has the proto3 JSON forms.
    let listed = over_json(
        &app,
        "/callscope.v1.CallService/ListCalls",
        &json!({"filter": {"phone": "18651683344"}}),
        None,
    )
    .await;
    let call = &listed.ok()["calls"][0];
    assert_eq!(call["callee"], "+8618651683344");
    assert_eq!(call["talkMs"], "60000", "int64 as a string");
    assert_eq!(call["callTime"], "2026-11-01T01:00:00Z");
    assert_eq!(call["outcome"], "CALL_OUTCOME_ANSWERED");
}

/// One refused JSON body: HTTP status, code and the named fields.
async fn refused(app: &TestApp, path: &str, content_type: &str, body: &[u8]) -> (u16, Outcome) {
    let (status, content_type, answer) =
        post_json(app, path, content_type, body.to_vec(), None).await;
    assert_eq!(content_type, "application/json");
    let code = answer["code"].as_str().expect("a Connect error").to_owned();
    let fields = answer["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["type"] == "google.rpc.BadRequest")
        .flat_map(|d| {
            d["debug"]["fieldViolations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v["field"].as_str().unwrap_or("").to_owned())
        .collect();
    let message = answer["message"].as_str().unwrap_or("").to_owned();
    (
        status,
        Outcome::Err {
            code,
            message,
            fields,
        },
    )
}

fn code_and_fields(outcome: &Outcome) -> (&str, Vec<&str>) {
    match outcome {
        Outcome::Err { code, fields, .. } => (code, fields.iter().map(String::as_str).collect()),
        Outcome::Ok(v) => panic!("expected a refusal, got {v}"),
    }
}

async fn bad_json_is_invalid_argument_naming_the_field(app: TestApp) {
    const LIST: &str = "/callscope.v1.CallService/ListCalls";
    const JSON: &str = "application/json";
    // (what, path, body, HTTP status, code, BadRequest fields)
    type BadCase<'a> = (&'a str, &'a str, &'a [u8], u16, &'a str, &'a [&'a str]);
    let cases: Vec<BadCase> = vec![
        (
            "malformed",
            LIST,
            b"{\"filter\":",
            400,
            "invalid_argument",
            &["body"],
        ),
        (
            "not an object",
            LIST,
            b"[1, 2]",
            400,
            "invalid_argument",
            &["body"],
        ),
        (
            "unknown field",
            LIST,
            br#"{"filter": {"taskIdz": ["t1"]}}"#,
            400,
            "invalid_argument",
            &["filter.taskIdz"],
        ),
        (
            "unknown top-level field",
            LIST,
            br#"{"pageSise": 2}"#,
            400,
            "invalid_argument",
            &["pageSise"],
        ),
        (
            "wrong type",
            LIST,
            br#"{"pageSize": "many"}"#,
            400,
            "invalid_argument",
            &["page_size"],
        ),
        (
            "string for a list",
            LIST,
            br#"{"filter": {"taskIds": "t1"}}"#,
            400,
            "invalid_argument",
            &["filter.task_ids"],
        ),
        (
            "list of the wrong type",
            LIST,
            br#"{"filter": {"taskIds": ["t1", 2]}}"#,
            400,
            "invalid_argument",
            &["filter.task_ids[1]"],
        ),
        (
            "unknown enum name",
            LIST,
            br#"{"filter": {"outcomes": ["CALL_OUTCOME_ANSWERED", "MAYBE"]}}"#,
            400,
            "invalid_argument",
            &["filter.outcomes[1]"],
        ),
        (
            "bad timestamp",
            LIST,
            br#"{"filter": {"startTime": "yesterday"}}"#,
            400,
            "invalid_argument",
            &["filter.start_time"],
        ),
        (
            "int64 beyond 2^53 as a number",
            LIST,
            br#"{"filter": {"minTalkMs": 9007199254740993}}"#,
            400,
            "invalid_argument",
            &["filter.min_talk_ms"],
        ),
        (
            "nested int64 beyond 2^53",
            "/callscope.v1.IngestService/UpsertCalls",
            br#"{"calls": [{"externalId": "x", "talkMs": -9007199254740993}]}"#,
            400,
            "invalid_argument",
            &["calls[0].talk_ms"],
        ),
        (
            "int32 out of range",
            LIST,
            br#"{"pageSize": 4294967296}"#,
            400,
            "invalid_argument",
            &["page_size"],
        ),
        (
            "wrong content type",
            LIST,
            b"{}",
            415,
            "invalid_argument",
            &["Content-Type"],
        ),
        (
            "no such method",
            "/callscope.v1.CallService/Nope",
            b"{}",
            404,
            "unimplemented",
            &[],
        ),
        (
            "no such service",
            "/callscope.v1.Nope/ListCalls",
            b"{}",
            404,
            "unimplemented",
            &[],
        ),
    ];
    for (name, path, body, status, code, fields) in cases {
        let content_type = if name == "wrong content type" {
            "text/plain"
        } else {
            JSON
        };
        let (got_status, outcome) = refused(&app, path, content_type, body).await;
        assert_eq!(got_status, status, "{name}: {outcome:?}");
        let (got_code, got_fields) = code_and_fields(&outcome);
        assert_eq!(
            (got_code, got_fields.as_slice()),
            (code, fields),
            "{name}: {outcome:?}"
        );
    }
    // 2^53 itself is exact; as a string any int64 is.
    for body in [
        r#"{"filter": {"minTalkMs": 9007199254740992}}"#,
        r#"{"filter": {"minTalkMs": "9007199254740993"}}"#,
    ] {
        let (status, _, answer) = post_json(&app, LIST, JSON, body.into(), None).await;
        // The service may refuse the value (beyond 30 days of talk) but
        // never for its JSON form.
        assert!(
            status == 200 || !answer.to_string().contains("2^53"),
            "{body}: {status} {answer}"
        );
    }
    // `application/json; charset=utf-8` is JSON.
    let (status, _, _) = post_json(
        &app,
        LIST,
        "application/json; charset=utf-8",
        b"{}".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // A request message over its service's limit (4 MiB for queries) is
    // refused by the gRPC stack, with the code a gRPC client gets: tonic's
    // OUT_OF_RANGE, HTTP 400 (README, Errors; docs/openapi.json).
    let huge = json!({ "filter": { "taskIds": ["x".repeat(5 * 1024 * 1024)] } });
    let by_grpc = over_grpc(&app, LIST, &huge, None).await;
    let by_json = over_json(&app, LIST, &huge, None).await;
    assert_eq!(by_grpc, by_json);
    assert!(
        matches!(&by_json, Outcome::Err { code, .. } if code == "out_of_range"),
        "{by_json:?}"
    );
    let (status, _) = refused(&app, LIST, JSON, huge.to_string().as_bytes()).await;
    assert_eq!(status, 400, "a message over its service's limit");
    // A body over what the JSON API reads at all (64 MiB) is refused before
    // it becomes a message: 413, resource_exhausted, naming the body.
    let mut too_big = br#"{"filter": {"taskIds": [""#.to_vec();
    too_big.resize(callscope::domain::limits::MAX_JSON_REQUEST_BYTES + 1, b'x');
    let (status, outcome) = refused(&app, LIST, JSON, &too_big).await;
    assert_eq!(
        (status, code_and_fields(&outcome)),
        (413, ("resource_exhausted", vec!["body"])),
        "a body over the JSON API's limit: {outcome:?}"
    );
    // Neither left the server worse: a plain call still answers.
    let (status, _, _) = post_json(&app, LIST, JSON, b"{}".to_vec(), None).await;
    assert_eq!(status, 200);
}

async fn json_calls_take_the_same_keys_roles_and_tenants(app: TestApp) {
    let store = callscope::store::Store::connect(&callscope::store::StoreOptions {
        url: app.database_url.clone(),
        read_url: None,
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(10),
        busy_timeout: std::time::Duration::from_secs(10),
    })
    .await
    .expect("open the test database");
    let key = async |tenant: &str, role: Role| {
        callscope::service::keys::create_key(&store, tenant, role, "test")
            .await
            .expect("create key")
            .1
    };
    let ingest_a = key("acme", Role::Ingest).await;
    let read_a = key("acme", Role::Read).await;
    let read_b = key("globex", Role::Read).await;
    const UPSERT: &str = "/callscope.v1.IngestService/UpsertCalls";
    const LIST: &str = "/callscope.v1.CallService/ListCalls";

    for (key, path, request, code) in [
        (None, LIST, json!({}), "unauthenticated"),
        (Some("garbage"), LIST, json!({}), "unauthenticated"),
        (Some(read_a.as_str()), UPSERT, seed(), "permission_denied"),
    ] {
        let grpc = over_grpc(&app, path, &request, key).await;
        let json = over_json(&app, path, &request, key).await;
        assert_eq!(grpc, json);
        assert_eq!(code_and_fields(&json).0, code, "{json:?}");
    }
    let stored = over_json(&app, UPSERT, &seed(), Some(&ingest_a)).await;
    assert_eq!(stored.ok()["inserted"], json!(5));
    let mine = over_json(&app, LIST, &json!({}), Some(&read_a)).await;
    assert_eq!(external_ids(mine.ok()).len(), 5);
    let theirs = over_json(&app, LIST, &json!({}), Some(&read_b)).await;
    assert_eq!(external_ids(theirs.ok()), Vec::<String>::new());
}

/// A gRPC-Web call, as a browser's grpc-web client makes it: HTTP/1.1,
/// the frame in the body, the status in a trailer frame in the body.
async fn grpc_web_over_http1_answers_with_trailers_in_the_body(app: TestApp) {
    let seeded = over_grpc(
        &app,
        "/callscope.v1.IngestService/UpsertCalls",
        &seed(),
        None,
    )
    .await;
    assert_eq!(seeded.ok()["inserted"], json!(5));
    let list = method("/callscope.v1.CallService/ListCalls");
    let request =
        DynamicMessage::deserialize(list.input(), &json!({"filter": {"taskIds": ["t2"]}}))
            .expect("request")
            .encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(request.len() as u32).to_be_bytes());
    body.extend_from_slice(&request);
    let response = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
        .post(format!(
            "http://{}/callscope.v1.CallService/ListCalls",
            app.addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body)
        .send()
        .await
        .expect("gRPC-Web POST");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let bytes = response.bytes().await.expect("body");
    // Frames: flag byte, 4-byte length, payload.
    let mut rest = &bytes[..];
    let mut messages = Vec::new();
    let mut trailers = String::new();
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = &rest[5..5 + len];
        if rest[0] & 0x80 != 0 {
            trailers = String::from_utf8_lossy(payload).to_string();
        } else {
            messages.push(DynamicMessage::decode(list.output(), payload).expect("answer"));
        }
        rest = &rest[5 + len..];
    }
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
    assert_eq!(messages.len(), 1);
    let answer = serde_json::to_value(&messages[0]).expect("JSON");
    assert_eq!(external_ids(&answer), ["c4", "c3"]);
}

async fn cors_allows_the_configured_origin_only(app: TestApp) {
    let client = reqwest::Client::new();
    for base in [
        format!("http://{}", app.addr),
        format!("http://{}", app.http_addr),
    ] {
        for (origin, allowed) in [
            ("https://crm.example.com", true),
            ("https://evil.example", false),
        ] {
            let response = client
                .request(
                    reqwest::Method::OPTIONS,
                    format!("{base}/callscope.v1.CallService/ListCalls"),
                )
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type,authorization",
                )
                .send()
                .await
                .expect("preflight");
            let allow = response
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            if allowed {
                assert_eq!(allow.as_deref(), Some(origin), "{base}");
            } else {
                assert_eq!(allow, None, "{base} allowed {origin}");
            }
        }
    }
}

async fn openapi_document_is_served_and_committed(app: TestApp) {
    let response = reqwest::get(format!("http://{}/openapi.json", app.http_addr))
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status().as_u16(), 200);
    let served = response.text().await.expect("body");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .expect("docs/openapi.json");
    assert!(
        served == committed,
        "docs/openapi.json is stale: CALLSCOPE_UPDATE_OPENAPI=1 cargo test --lib openapi"
    );
    let doc: Value = serde_json::from_str(&served).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    for service in pool()
        .services()
        .filter(|s| s.full_name().starts_with("callscope."))
    {
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            assert!(doc["paths"][&path]["post"].is_object(), "{path}");
        }
    }
}

/// A server stream over gRPC: every message as JSON.
async fn stream_over_grpc(
    app: &TestApp,
    path: &str,
    request: &Value,
) -> Result<Vec<Value>, Outcome> {
    let method = method(path);
    let message = DynamicMessage::deserialize(method.input(), request).expect("the case's JSON");
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("channel ready");
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    let refused = |status: tonic::Status| Outcome::Err {
        code: code_name(status.code()),
        message: status.message().to_owned(),
        fields: crate::helpers::bad_fields(&status),
    };
    let mut stream = grpc
        .server_streaming(tonic::Request::new(message.encode_to_vec()), path, RawCodec)
        .await
        .map_err(refused)?
        .into_inner();
    let mut out = Vec::new();
    while let Some(bytes) = stream.message().await.map_err(refused)? {
        let m = DynamicMessage::decode(method.output(), bytes.as_slice()).expect("decodes");
        out.push(serde_json::to_value(&m).expect("JSON"));
    }
    Ok(out)
}

fn exported_ids(messages: &[Value]) -> Vec<String> {
    messages.iter().flat_map(external_ids).collect()
}

async fn server_streams_answer_ndjson_and_connect_envelopes(app: TestApp) {
    const EXPORT: &str = "/callscope.v1.CallService/ExportCalls";
    let seeded = over_grpc(
        &app,
        "/callscope.v1.IngestService/UpsertCalls",
        &seed(),
        None,
    )
    .await;
    assert_eq!(seeded.ok()["inserted"], json!(5));
    let request = json!({ "filter": { "taskIds": ["t1"] } });
    let by_grpc = stream_over_grpc(&app, EXPORT, &request)
        .await
        .expect("export over gRPC");

    // NDJSON: one message per line, each with its resume token.
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{}{EXPORT}", app.http_addr))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&request).expect("JSON"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.expect("body");
    assert!(text.ends_with('\n'), "{text:?}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line["resumeToken"].as_str().is_some_and(|t| !t.is_empty()),
            "{line}"
        );
        assert!(line.get("error").is_none(), "{line}");
    }
    assert_eq!(lines, by_grpc, "the same messages over both transports");
    assert_eq!(exported_ids(&lines), ["c1", "c2", "c5"]);

    // Resuming from the last token over JSON: nothing left.
    let last = lines
        .last()
        .and_then(|l| l["resumeToken"].as_str())
        .expect("token");
    let resumed = json!({ "filter": { "taskIds": ["t1"] }, "resumeToken": last });
    let body = client
        .post(format!("http://{}{EXPORT}", app.http_addr))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&resumed).expect("JSON"))
        .send()
        .await
        .expect("POST")
        .text()
        .await
        .expect("body");
    let rest: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(exported_ids(&rest), Vec::<String>::new(), "{body}");

    // Connect's streaming envelopes: the messages, then an end-of-stream
    // envelope.
    let payload = serde_json::to_vec(&request).expect("JSON");
    let mut enveloped = vec![0u8];
    enveloped.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    enveloped.extend_from_slice(&payload);
    let response = client
        .post(format!("http://{}{EXPORT}", app.http_addr))
        .header("content-type", "application/connect+json")
        .body(enveloped)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/connect+json"
    );
    let bytes = response.bytes().await.expect("body");
    let mut rest = &bytes[..];
    let mut messages = Vec::new();
    let mut end = None;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let json: Value = serde_json::from_slice(&rest[5..5 + len]).expect("JSON envelope");
        if rest[0] & 0x02 != 0 {
            end = Some(json);
        } else {
            messages.push(json);
        }
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty());
    assert_eq!(messages, by_grpc);
    assert_eq!(end, Some(json!({})));

    // A refusal before the first message is a plain Connect error, as over
    // gRPC (bad token).
    let bad = json!({ "filter": { "taskIds": ["t1"] }, "resumeToken": "garbage" });
    let grpc_refusal = stream_over_grpc(&app, EXPORT, &bad)
        .await
        .expect_err("refused");
    let json_refusal = over_json(&app, EXPORT, &bad, None).await;
    assert_eq!(grpc_refusal, json_refusal);
    assert_eq!(
        code_and_fields(&json_refusal),
        ("invalid_argument", vec!["resume_token"])
    );
}

async fn watch_over_ndjson_sees_a_write_made_over_grpc(app: TestApp) {
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/callscope.v1.CallService/WatchCalls",
            app.http_addr
        ))
        .header("content-type", "application/json")
        .header("connect-timeout-ms", "20000")
        .body(r#"{"filter": {"taskIds": ["t2"]}}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let mut response = response;
    // The watch is open: a write over gRPC shows up as lines.
    let seeded = over_grpc(
        &app,
        "/callscope.v1.IngestService/UpsertCalls",
        &seed(),
        None,
    )
    .await;
    assert_eq!(seeded.ok()["inserted"], json!(5));
    let mut buffer = Vec::new();
    let mut events: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while events.len() < 2 {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("events within 15 s")
            .expect("a chunk")
            .expect("the stream stays open");
        buffer.extend_from_slice(&chunk);
        while let Some(at) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=at).collect();
            events.push(serde_json::from_slice(&line).expect("one JSON event per line"));
        }
    }
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["call"]["externalId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["c3", "c4"], "{events:?}");
    for e in &events {
        assert!(
            e["resumeToken"].as_str().is_some_and(|t| !t.is_empty()),
            "{e}"
        );
    }
}
