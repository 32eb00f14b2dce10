// A callscope client in Node: @grpc/grpc-js, with @grpc/proto-loader reading
// proto/ at run time (no generation step). It upserts calls, lists them with a
// filter page by page, streams them back with ExportCalls (a server stream) and
// checks the rows, and reads the google.rpc.BadRequest of a refused call.
//
//   (cd examples/node && npm ci) && node examples/node/client.js 127.0.0.1:50051
//
// Exits non-zero on any surprise.
"use strict";

const path = require("path");
const assert = require("assert");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const PROTO = path.join(__dirname, "..", "..", "proto");
const addr = process.argv[2] || "127.0.0.1:50051";

const definition = protoLoader.loadSync(
  ["callscope/v1/call_service.proto", "callscope/v1/ingest_service.proto"],
  { includeDirs: [PROTO], keepCase: true, longs: String, enums: String, defaults: true },
);
const v1 = grpc.loadPackageDefinition(definition).callscope.v1;

// google.rpc.Status carries the details in `grpc-status-details-bin`.
const errorDetails = protobuf.loadSync(path.join(PROTO, "google/rpc/error_details.proto"));
const statusType = protobuf.parse(`
  syntax = "proto3";
  package google.rpc;
  message Any { string type_url = 1; bytes value = 2; }
  message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
`).root.lookupType("google.rpc.Status");

function unary(client, method, request) {
  return new Promise((resolve, reject) =>
    client[method](request, (err, response) => (err ? reject(err) : resolve(response))),
  );
}

// Every message of a server stream, once it ends with OK.
function serverStream(client, method, request) {
  return new Promise((resolve, reject) => {
    const messages = [];
    const stream = client[method](request);
    stream.on("data", (message) => messages.push(message));
    stream.on("error", reject);
    stream.on("end", () => resolve(messages));
  });
}

function badRequestFields(err) {
  const [bin] = err.metadata.get("grpc-status-details-bin");
  assert(bin, "the status carries details");
  const status = statusType.decode(bin);
  const BadRequest = errorDetails.lookupType("google.rpc.BadRequest");
  return status.details
    .filter((any) => any.typeUrl === "type.googleapis.com/google.rpc.BadRequest")
    .flatMap((any) => BadRequest.decode(any.value).fieldViolations.map((v) => v.field));
}

async function main() {
  const credentials = grpc.credentials.createInsecure();
  const ingest = new v1.IngestService(addr, credentials);
  const calls = new v1.CallService(addr, credentials);
  const callTime = { seconds: String(Date.parse("2026-11-20T08:00:00Z") / 1000), nanos: 0 };

  const batch = [0, 1, 2, 3, 4].map((i) => ({
    source: "SOURCE_API",
    external_id: `node-${i}`,
    task_id: "node-example",
    callee: `+86138001389${String(i).padStart(2, "0")}`,
    call_time: callTime,
  }));
  const stored = await unary(ingest, "UpsertCalls", { calls: batch });
  assert.strictEqual(stored.call_ids.length, 5);
  console.log(`upserted ${stored.call_ids.length} calls`);

  // Two pages of 3 and 2, filtered by task.
  const seen = [];
  let token = "";
  let pages = 0;
  do {
    const page = await unary(calls, "ListCalls", {
      filter: { task_ids: ["node-example"] },
      page_size: 3,
      page_token: token,
    });
    pages += 1;
    seen.push(...page.calls.map((c) => c.external_id));
    token = page.next_page_token;
  } while (token);
  assert.deepStrictEqual(seen.sort(), batch.map((c) => c.external_id));
  assert.strictEqual(pages, 2);
  console.log(`listed ${seen.length} calls in ${pages} pages`);

  // The same calls streamed back by ExportCalls: every row as upserted, each
  // message with a resume token to continue after it.
  const messages = await serverStream(calls, "ExportCalls", {
    filter: { task_ids: ["node-example"] },
  });
  assert(messages.length >= 1);
  assert(messages.every((m) => m.resume_token), "every message has a resume token");
  const exported = messages.flatMap((m) => m.calls);
  assert.deepStrictEqual(
    exported.map((c) => c.call_id).sort(),
    [...stored.call_ids].sort(),
  );
  const sent = new Map(batch.map((c) => [c.external_id, c]));
  for (const row of exported) {
    const want = sent.get(row.external_id);
    assert(want, `exported ${row.external_id}, which was not upserted`);
    assert.deepStrictEqual(
      [row.source, row.task_id, row.callee, row.call_time.seconds],
      [want.source, want.task_id, want.callee, want.call_time.seconds],
    );
  }
  assert.strictEqual(exported.length, batch.length);
  console.log(`exported ${exported.length} calls in ${messages.length} messages`);

  // A call without a callee: INVALID_ARGUMENT with a BadRequest naming it.
  try {
    await unary(ingest, "UpsertCalls", {
      calls: [{ source: "SOURCE_API", external_id: "node-bad", call_time: callTime }],
    });
    throw new Error("a call without a callee was accepted");
  } catch (err) {
    assert.strictEqual(err.code, grpc.status.INVALID_ARGUMENT, String(err));
    const fields = badRequestFields(err);
    assert(fields.includes("calls[0].callee"), JSON.stringify(fields));
    console.log(`BadRequest names ${JSON.stringify(fields)}`);
  }
  ingest.close();
  calls.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
