//! The OpenAPI 3.1 document of the JSON API, generated from the proto
//! descriptors (their comments become descriptions), served at
//! `GET /openapi.json` and committed as `docs/openapi.json` (a test fails
//! when the committed copy is stale; `CALLSCOPE_UPDATE_OPENAPI=1 cargo test
//! openapi` rewrites it).

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use prost_reflect::{
    EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor, MethodDescriptor,
};
use serde_json::{Map, Value, json};

use super::connect::pool;

/// The document, as served and committed (pretty JSON, trailing newline).
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
        text.push('\n');
        text
    })
}

/// The statuses a call may answer besides 200, as Connect assigns them.
const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "`invalid_argument`: bad input (malformed JSON, an unknown field, a wrong type, a value the service refuses); `google.rpc.BadRequest` names each field. `out_of_range`: the request message is larger than its service accepts (4 MiB for queries, 64 MiB for ingest), as a gRPC client is told",
    ),
    (
        "401",
        "`unauthenticated`: with `--auth keys`, a missing, malformed, unknown or revoked key",
    ),
    (
        "403",
        "`permission_denied`: the key's role may not call this method",
    ),
    (
        "404",
        "`not_found` (with `google.rpc.ResourceInfo`), or `unimplemented` for a path that names no method",
    ),
    (
        "413",
        "`resource_exhausted`: the body is larger than the JSON API accepts",
    ),
    (
        "415",
        "`invalid_argument`: the `Content-Type` is not `application/json`",
    ),
    (
        "429",
        "`resource_exhausted`: a rate limit; `google.rpc.RetryInfo` and `Retry-After` say when to retry",
    ),
    (
        "500",
        "`internal`: a fault of ours, logged with its cause; never for anything a client sent",
    ),
    (
        "503",
        "`unavailable`: the database cannot be reached; `google.rpc.RetryInfo` and `Retry-After` say when to retry",
    ),
    (
        "504",
        "`deadline_exceeded`: the call did not finish within `--request-timeout-ms` or `Connect-Timeout-Ms`",
    ),
];

fn document() -> Value {
    let mut paths = Map::new();
    let mut schemas = BTreeMap::new();
    let mut services: Vec<_> = pool()
        .services()
        .filter(|s| s.full_name().starts_with("callscope."))
        .collect();
    services.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    let mut tags = Vec::new();
    for service in &services {
        tags.push(json!({
            "name": service.full_name(),
            "description": comment(&service.parent_file(), service.path()),
        }));
        for method in service.methods() {
            collect(&method.input(), &mut schemas);
            collect(&method.output(), &mut schemas);
            paths.insert(
                format!("/{}/{}", service.full_name(), method.name()),
                json!({ "post": operation(&method) }),
            );
        }
    }
    let mut components = Map::new();
    for (name, schema) in schemas {
        components.insert(name, schema);
    }
    components.insert("ConnectError".into(), connect_error());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "callscope JSON API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every RPC of callscope's gRPC services as `POST /<package>.<Service>/<Method>` on the HTTP port, with a JSON body in the proto3 JSON mapping: the Connect protocol's unary form, so Connect clients work as they are. 64-bit integers are strings, enums are names, timestamps are RFC 3339. Unknown fields are refused (`invalid_argument` naming the field), and so is a 64-bit integer given as a JSON number beyond 2^53. Server streams answer NDJSON (one message per line; an error after the first message is a last line `{\"error\": …}`) or, for `Content-Type: application/connect+json`, Connect's streaming envelopes. Errors are Connect's JSON (`ConnectError`). Generated from `proto/` (docs/openapi.json).",
        },
        "servers": [{ "url": "http://127.0.0.1:8080" }],
        "tags": tags,
        "security": [{ "apiKey": [] }],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `callscope keys create`, needed with `serve --auth keys`; with `--auth none` every call acts for the tenant `default` and the header is ignored.",
                },
            },
        },
    })
}

fn operation(method: &MethodDescriptor) -> Value {
    let service = method.parent_service();
    let output = reference(&method.output());
    let ok = if method.is_server_streaming() {
        json!({
            "description": format!("A stream of `{}`, one JSON message per line (NDJSON).", method.output().full_name()),
            "content": { "application/x-ndjson": { "schema": output } },
        })
    } else {
        json!({
            "description": format!("The `{}`.", method.output().full_name()),
            "content": { "application/json": { "schema": output } },
        })
    };
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    for (status, description) in ERRORS {
        responses.insert(
            (*status).into(),
            json!({
                "description": description,
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ConnectError" } } },
            }),
        );
    }
    json!({
        "operationId": format!("{}_{}", service.name(), method.name()),
        "summary": format!("{}.{}", service.name(), method.name()),
        "description": comment(&method.parent_file(), method.path()),
        "tags": [service.full_name()],
        "requestBody": {
            "required": true,
            "content": { "application/json": { "schema": reference(&method.input()) } },
        },
        "responses": responses,
    })
}

fn reference(message: &MessageDescriptor) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", message.full_name()) })
}

/// The schema of `message` and of every message it reaches.
fn collect(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) {
    if schemas.contains_key(message.full_name()) || well_known(message).is_some() {
        return;
    }
    // Placeholder first: messages may be recursive.
    schemas.insert(message.full_name().to_owned(), Value::Null);
    let mut properties = Map::new();
    for field in message.fields() {
        properties.insert(field.json_name().to_owned(), field_schema(&field, schemas));
    }
    schemas.insert(
        message.full_name().to_owned(),
        json!({
            "type": "object",
            "description": comment(&message.parent_file(), message.path()),
            "properties": properties,
            "additionalProperties": false,
        }),
    );
}

fn field_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    let mut schema = if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return json!({});
        };
        let value = kind_schema(&entry.map_entry_value_field().kind(), schemas);
        json!({ "type": "object", "additionalProperties": value })
    } else if field.is_list() {
        json!({ "type": "array", "items": kind_schema(&field.kind(), schemas) })
    } else {
        kind_schema(&field.kind(), schemas)
    };
    let mut description = comment(&field.parent_file(), field.path());
    if description.is_empty() {
        // Not commented in the proto: say at least what it holds.
        let kind = match field.kind() {
            Kind::Message(m) => format!("`{}`", m.full_name()),
            Kind::Enum(e) => format!("`{}`", e.full_name()),
            other => format!("{other:?}").to_lowercase(),
        };
        let shape = match (field.is_map(), field.is_list()) {
            (true, _) => "a map of",
            (_, true) => "a list of",
            _ => "a",
        };
        description = format!("`{}`: {shape} {kind}", field.name());
    }
    if let Kind::Enum(e) = field.kind() {
        description.push_str(&enum_values(&e));
    }
    match schema.get("$ref") {
        // 3.1 allows siblings of `$ref`; wrapped anyway for older tools.
        Some(_) => json!({ "allOf": [schema], "description": description }),
        None => {
            if let Value::Object(map) = &mut schema {
                map.insert("description".into(), description.into());
            }
            schema
        }
    }
}

fn kind_schema(kind: &Kind, schemas: &mut BTreeMap<String, Value>) -> Value {
    match kind {
        Kind::Double | Kind::Float => json!({ "type": "number" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({
            "type": "integer", "format": "int32",
            "minimum": i32::MIN, "maximum": i32::MAX,
        }),
        Kind::Uint32 | Kind::Fixed32 => json!({
            "type": "integer", "minimum": 0, "maximum": u32::MAX,
        }),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({
            "type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$",
        }),
        Kind::Uint64 | Kind::Fixed64 => json!({
            "type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$",
        }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Kind::Enum(e) => {
            let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
            json!({ "type": "string", "enum": names })
        }
        Kind::Message(m) => match well_known(m) {
            Some(schema) => schema,
            None => {
                collect(m, schemas);
                reference(m)
            }
        },
    }
}

/// The JSON forms of the well-known types in use.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    let schema = match message.full_name() {
        "google.protobuf.Timestamp" => json!({
            "type": "string", "format": "date-time",
            "description": "RFC 3339, `2024-05-01T08:30:00Z`",
        }),
        "google.protobuf.Duration" => json!({
            "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
            "description": "seconds with an `s`, `1.5s`",
        }),
        "google.protobuf.Struct" => json!({ "type": "object" }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array" }),
        "google.protobuf.Empty" => json!({ "type": "object", "additionalProperties": false }),
        "google.protobuf.FieldMask" => json!({ "type": "string" }),
        "google.protobuf.Any" => json!({ "type": "object" }),
        "google.protobuf.StringValue" => json!({ "type": "string" }),
        "google.protobuf.BoolValue" => json!({ "type": "boolean" }),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            json!({ "type": "integer" })
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({ "type": "string", "pattern": "^-?[0-9]{1,20}$" })
        }
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
            json!({ "type": "number" })
        }
        "google.protobuf.BytesValue" => json!({ "type": "string", "contentEncoding": "base64" }),
        _ => return None,
    };
    Some(schema)
}

fn enum_values(e: &EnumDescriptor) -> String {
    let mut text = String::from("\n\nValues:");
    for value in e.values() {
        let about = comment(&e.parent_file(), value.path());
        if about.is_empty() {
            text.push_str(&format!("\n- `{}`", value.name()));
        } else {
            text.push_str(&format!(
                "\n- `{}`: {}",
                value.name(),
                about.replace('\n', " ")
            ));
        }
    }
    text
}

fn connect_error() -> Value {
    json!({
        "type": "object",
        "description": "Connect's error: the code, a message for people, and the `google.rpc` details (`google.rpc.BadRequest` names each bad field by its proto path, `calls[1].external_id`).",
        "required": ["code"],
        "properties": {
            "code": {
                "type": "string",
                "description": "the gRPC code in Connect's spelling; the HTTP status follows from it",
                "enum": [
                    "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
                    "already_exists", "permission_denied", "resource_exhausted",
                    "failed_precondition", "aborted", "out_of_range", "unimplemented",
                    "internal", "unavailable", "data_loss", "unauthenticated",
                ],
            },
            "message": { "type": "string", "description": "what went wrong, for people" },
            "details": {
                "type": "array",
                "description": "`google.rpc` error details: `BadRequest`, `ResourceInfo`, `RetryInfo`",
                "items": {
                    "type": "object",
                    "required": ["type", "value"],
                    "properties": {
                        "type": { "type": "string", "description": "the detail's message name, `google.rpc.BadRequest`" },
                        "value": { "type": "string", "contentEncoding": "base64", "description": "the detail in protobuf, base64 without padding" },
                        "debug": { "type": "object", "description": "the detail as JSON, for people" },
                    },
                },
            },
        },
    })
}

/// The comment above a declaration (`path` as in `SourceCodeInfo`), trimmed.
fn comment(file: &FileDescriptor, path: &[i32]) -> String {
    static COMMENTS: OnceLock<HashMap<String, HashMap<Vec<i32>, String>>> = OnceLock::new();
    let all = COMMENTS.get_or_init(|| {
        let mut all = HashMap::new();
        for file in pool().files() {
            let mut map = HashMap::new();
            if let Some(info) = &file.file_descriptor_proto().source_code_info {
                for location in &info.location {
                    let text = location
                        .leading_comments
                        .as_deref()
                        .or(location.trailing_comments.as_deref())
                        .unwrap_or("");
                    if !text.trim().is_empty() {
                        let lines: Vec<&str> = text.lines().map(str::trim).collect();
                        map.insert(location.path.clone(), lines.join("\n").trim().to_owned());
                    }
                }
            }
            all.insert(file.name().to_owned(), map);
        }
        all
    });
    all.get(file.name())
        .and_then(|m| m.get(path))
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` is what the descriptors generate now.
    #[test]
    fn committed_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        let generated = document_json();
        if std::env::var_os("CALLSCOPE_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, generated).expect("write docs/openapi.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is stale: run `CALLSCOPE_UPDATE_OPENAPI=1 cargo test --lib openapi` and commit it"
        );
    }

    #[test]
    fn every_rpc_has_a_path_and_every_field_a_description() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        for service in pool()
            .services()
            .filter(|s| s.full_name().starts_with("callscope."))
        {
            for method in service.methods() {
                let path = format!("/{}/{}", service.full_name(), method.name());
                assert!(paths.contains_key(&path), "{path}");
            }
        }
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for (name, schema) in schemas {
            for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                let description = property["description"].as_str().unwrap_or("");
                assert!(!description.is_empty(), "{name}.{field}");
            }
        }
    }
}
