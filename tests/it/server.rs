//! The `callscope serve` binary itself: it starts with nothing but flags, serves
//! health, and stops cleanly on SIGTERM.

use std::process::Command;
use std::time::Duration;

use libtest_mimic::Trial;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{Sharing, block_on, spawn_with_stderr_lines, trial};

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "server::serve_binary_answers_health_and_stops_on_sigterm".to_owned(),
            &[],
            Sharing::Parallel,
            || block_on(None, serve_binary_answers_health_and_stops_on_sigterm()),
        ),
        trial(
            "server::malformed_protobuf_bodies_are_invalid_argument".to_owned(),
            &[],
            Sharing::Parallel,
            || block_on(None, malformed_protobuf_bodies_are_invalid_argument()),
        ),
        trial(
            "server::a_body_cut_inside_a_message_is_invalid_argument".to_owned(),
            &[],
            Sharing::Parallel,
            || block_on(None, a_body_cut_inside_a_message_is_invalid_argument()),
        ),
        trial(
            "server::a_message_over_its_service_limit_is_out_of_range".to_owned(),
            &[],
            Sharing::Parallel,
            || block_on(None, a_message_over_its_service_limit_is_out_of_range()),
        ),
    ]
}

async fn serve_binary_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rx) = spawn_with_stderr_lines(
        Command::new(env!("CARGO_BIN_EXE_callscope"))
            // Both ports picked by the system: a process already on 8080
            // (the default HTTP port) must not stop this server from
            // starting.
            .args(["serve", "--grpc-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0", "--database-url"])
            .arg(format!(
                "sqlite://{}",
                dir.path().join("fresh.db").display()
            ))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1"),
    );

    // The log line `callscope listening addr=127.0.0.1:PORT` gives the port.
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server log line");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(
        dir.path().join("fresh.db").exists(),
        "database file created"
    );

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "callscope.v1.CallService", "callscope.v1.IngestService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, 1, "{service:?} is SERVING");
    }

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("callscope stopped")),
        "{rest:?}"
    );
}

/// A request body that is not a valid protobuf message is the client's
/// mistake: INVALID_ARGUMENT with a BadRequest, never INTERNAL. Sent raw
/// over a real HTTP/2 connection, bypassing the generated client.
async fn malformed_protobuf_bodies_are_invalid_argument() {
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic_types::StatusExt;

    /// Sends bytes as they are; reads the answer as bytes.
    #[derive(Clone, Default)]
    struct RawCodec;
    struct Raw;
    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            use prost::bytes::BufMut;
            buf.put_slice(&item);
            Ok(())
        }
    }
    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            use prost::bytes::Buf;
            Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
        }
    }
    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    let app = crate::helpers::spawn_app_with(|_| {}).await;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        // Field 1 (call_id) says 5 bytes; 2 follow.
        (
            "/callscope.v1.CallService/GetCall",
            vec![0x0a, 5, b'a', b'b'],
            "call_id",
        ),
        ("/callscope.v1.CallService/GetCall", vec![0xff; 16], "body"),
        // call_id holds invalid UTF-8.
        (
            "/callscope.v1.CallService/GetCall",
            vec![0x0a, 2, 0xff, 0xfe],
            "call_id",
        ),
        // filter (1) → phone (2) holds invalid UTF-8.
        (
            "/callscope.v1.CallService/ListCalls",
            vec![0x0a, 4, 0x12, 2, 0xff, 0xfe],
            "filter.phone",
        ),
        // calls (1): a length that never ends.
        (
            "/callscope.v1.IngestService/UpsertCalls",
            vec![0x0a, 0xff],
            "calls",
        ),
    ];
    for (path, body, field) in cases {
        let mut grpc = tonic::client::Grpc::new(app.channel.clone());
        grpc.ready().await.unwrap();
        let status = grpc
            .unary(
                tonic::Request::new(body),
                PathAndQuery::from_static(path),
                RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{path}: {status:?}"
        );
        let named: Vec<String> = status
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(named, [field], "{path}");
    }
}

/// A request body that ends inside a gRPC message (its 5-byte prefix, or
/// fewer bytes than the prefix announced): the client's mistake, so
/// INVALID_ARGUMENT naming the body, where tonic alone answers INTERNAL.
async fn a_body_cut_inside_a_message_is_invalid_argument() {
    use http_body_util::BodyExt;
    use tonic_types::StatusExt;
    use tower::ServiceExt;

    let app = crate::helpers::spawn_app_with(|_| {}).await;
    let cases: [(&[u8], &str); 3] = [
        // GetCall { call_id: "ab" } announced as 10 bytes; 4 follow.
        (
            &[0, 0, 0, 0, 10, 0x0a, 2, b'a', b'b'],
            "ends 6 bytes before the end of the gRPC message its prefix announced",
        ),
        (
            &[0, 0, 0],
            "ends 3 bytes into a message's 5-byte gRPC prefix",
        ),
        // A whole message, then the start of another.
        (
            &[0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b', 0],
            "ends 1 bytes into a message's 5-byte gRPC prefix",
        ),
    ];
    for (body, why) in cases {
        let request = tonic::codegen::http::Request::builder()
            .method("POST")
            .uri("/callscope.v1.CallService/GetCall")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from_static(body),
            )))
            .unwrap();
        let response = app.channel.clone().oneshot(request).await.unwrap();
        // The status is in the headers (an answer with no message) or in
        // the trailers.
        let status = match tonic::Status::from_header_map(response.headers()) {
            Some(status) => status,
            None => {
                let collected = response.into_body().collect().await.unwrap();
                let trailers = collected.trailers().cloned().unwrap_or_default();
                tonic::Status::from_header_map(&trailers).expect("a grpc-status")
            }
        };
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{body:?}: {status:?}"
        );
        let violations: Vec<(String, String)> = status
            .get_details_bad_request()
            .map(|b| {
                b.field_violations
                    .into_iter()
                    .map(|v| (v.field, v.description))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            violations,
            [("body".to_owned(), why.to_owned())],
            "{body:?}"
        );
    }
}

/// A request message over its service's size limit is refused by tonic
/// before it is decoded, as the README's error table says.
async fn a_message_over_its_service_limit_is_out_of_range() {
    let mut app = crate::helpers::spawn_app_with(|_| {}).await;
    let limit = callscope::domain::limits::MAX_QUERY_REQUEST_BYTES;
    let request = callscope::proto::ListCallsRequest {
        filter: Some(callscope::proto::CallFilter {
            phone: "1".repeat(limit),
            ..Default::default()
        }),
        ..Default::default()
    };
    let status = app.calls.list_calls(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
}
