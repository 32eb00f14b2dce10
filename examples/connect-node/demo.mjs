// callscope's JSON API from a real Connect client (@connectrpc/connect-node),
// with no generated code: the services and messages come from callscope's
// descriptor set (`protoc --include_imports --descriptor_set_out=…` over
// proto/, or the file the test writes). Upserts calls, lists them with a
// filter page by page, reads a google.rpc.BadRequest from a ConnectError, and
// exports through the ExportCalls server stream (Connect's streaming
// envelopes).
//
//   node demo.mjs BASE_URL DESCRIPTOR_SET_FILE
//
// Exits non-zero on any unexpected answer.

import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

const [baseUrl = "http://127.0.0.1:8080", descriptors] = process.argv.slice(2);
if (!descriptors) {
  console.error("usage: node demo.mjs BASE_URL DESCRIPTOR_SET_FILE");
  process.exit(2);
}
const registry = createFileRegistry(
  fromBinary(FileDescriptorSetSchema, readFileSync(descriptors)),
);
const transport = createConnectTransport({
  baseUrl,
  httpVersion: "1.1",
  useBinaryFormat: false, // JSON, as curl and PHP send it
  jsonOptions: { registry },
});
const service = (name) => {
  const s = registry.getService(name);
  if (!s) throw new Error(`no service ${name} in ${descriptors}`);
  return s;
};
const enumValue = (type, name) => registry.getEnum(type).values.find((v) => v.name === name).number;
const ingest = createClient(service("callscope.v1.IngestService"), transport);
const calls = createClient(service("callscope.v1.CallService"), transport);

function check(ok, why) {
  if (!ok) {
    console.error(`FAILED: ${why}`);
    process.exit(1);
  }
}

// 1. Upsert three calls.
const API = enumValue("callscope.v1.Source", "SOURCE_API");
const ANSWERED = enumValue("callscope.v1.CallOutcome", "CALL_OUTCOME_ANSWERED");
const upserted = await ingest.upsertCalls({
  calls: [1, 2, 3].map((i) => ({
    source: API,
    externalId: `node-${i}`,
    taskId: "node-demo",
    callee: `1390013900${i}`,
    callTime: timestampFromDate(new Date(`2026-11-21T0${i}:00:00Z`)),
    outcome: ANSWERED,
    talkMs: BigInt(i * 1000),
  })),
});
check(upserted.inserted + upserted.unchanged === 3, `upsert: ${JSON.stringify(upserted, (_, v) => (typeof v === "bigint" ? `${v}` : v))}`);
console.log(`upserted: inserted ${upserted.inserted}, unchanged ${upserted.unchanged}`);

// 2. List with a filter, two calls a page.
const ids = [];
let pageToken = "";
let pages = 0;
do {
  const page = await calls.listCalls({ filter: { taskIds: ["node-demo"] }, pageSize: 2, pageToken });
  ids.push(...page.calls.map((c) => c.externalId));
  pageToken = page.nextPageToken;
  pages++;
} while (pageToken !== "" && pages < 100);
check(ids.join(",") === "node-3,node-2,node-1", `listed ${ids}`);
console.log(`listed over ${pages} pages: ${ids.join(", ")}`);

// 3. A bad request: a ConnectError with a google.rpc.BadRequest.
try {
  await ingest.upsertCalls({ calls: [{ source: API, externalId: "node-bad", callee: "no digits", callTime: timestampFromDate(new Date()) }] });
  check(false, "a call without digits was accepted");
} catch (e) {
  const err = ConnectError.from(e);
  check(err.code === Code.InvalidArgument, `code ${Code[err.code]}: ${err.message}`);
  const [badRequest] = err.findDetails(registry.getMessage("google.rpc.BadRequest"));
  const fields = (badRequest?.fieldViolations ?? []).map((v) => `${v.field}: ${v.description}`);
  check(fields[0]?.startsWith("calls[0].callee"), `BadRequest: ${fields}`);
  console.log(`refused: ${fields.join("; ")}`);
}

// 4. The ExportCalls server stream, each message with its resume token.
const exported = [];
for await (const message of calls.exportCalls({ filter: { taskIds: ["node-demo"] } })) {
  check(message.resumeToken !== "", "a message without a resume token");
  exported.push(...message.calls.map((c) => c.externalId));
}
check(exported.join(",") === "node-1,node-2,node-3", `exported ${exported}`);
console.log(`exported: ${exported.join(", ")}`);
console.log("OK");
