"""A callscope client in Python: stubs generated from proto/ with grpcio-tools,
error details read with grpcio-status (google.rpc from googleapis-common-protos).

    python -m venv .venv && .venv/bin/pip install -r examples/python/requirements.txt
    .venv/bin/python examples/python/client.py 127.0.0.1:50051

It upserts calls, lists them with a filter page by page, streams them back
with ExportCalls (a server stream) and checks the rows, and reads the
google.rpc.BadRequest of a refused call. Exits non-zero on any surprise.
"""

import os
import subprocess
import sys
import tempfile

import grpc
from grpc_status import rpc_status
from google.rpc import error_details_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "proto")


def generate(out):
    """Generates the callscope stubs (not google/rpc: that comes from
    googleapis-common-protos, which grpcio-status depends on)."""
    from grpc_tools import protoc
    import grpc_tools

    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = sorted(
        os.path.join("callscope", "v1", f)
        for f in os.listdir(os.path.join(PROTO, "callscope", "v1"))
        if f.endswith(".proto")
    )
    args = ["protoc", f"-I{PROTO}", f"-I{wkt}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + files) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)


def main(addr):
    out = tempfile.mkdtemp(prefix="callscope-py-")
    generate(out)
    from callscope.v1 import call_pb2, call_service_pb2, call_service_pb2_grpc
    from callscope.v1 import ingest_service_pb2, ingest_service_pb2_grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    channel = grpc.insecure_channel(addr)
    ingest = ingest_service_pb2_grpc.IngestServiceStub(channel)
    calls = call_service_pb2_grpc.CallServiceStub(channel)

    when = Timestamp()
    when.FromJsonString("2026-11-20T08:00:00Z")
    batch = [
        call_pb2.Call(
            source=call_pb2.SOURCE_API,
            external_id=f"py-{i}",
            task_id="python-example",
            callee=f"+8613800138{i:03d}",
            call_time=when,
        )
        for i in range(5)
    ]
    stored = ingest.UpsertCalls(ingest_service_pb2.UpsertCallsRequest(calls=batch))
    assert len(stored.call_ids) == 5, stored
    print(f"upserted {len(stored.call_ids)} calls")

    # Two pages of 3 and 2, filtered by task.
    seen, token, pages = [], "", 0
    while True:
        page = calls.ListCalls(
            call_service_pb2.ListCallsRequest(
                filter=call_service_pb2.CallFilter(task_ids=["python-example"]),
                page_size=3,
                page_token=token,
            )
        )
        pages += 1
        seen += [c.external_id for c in page.calls]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == [f"py-{i}" for i in range(5)], seen
    assert pages == 2, pages
    print(f"listed {len(seen)} calls in {pages} pages")

    # The same calls streamed back by ExportCalls: every row as upserted,
    # each message with a resume token to continue after it.
    exported, messages = [], 0
    for message in calls.ExportCalls(
        call_service_pb2.ExportCallsRequest(
            filter=call_service_pb2.CallFilter(task_ids=["python-example"])
        )
    ):
        messages += 1
        assert message.resume_token, message
        exported += message.calls
    sent = {c.external_id: c for c in batch}
    assert sorted(c.external_id for c in exported) == sorted(sent), exported
    assert sorted(c.call_id for c in exported) == sorted(stored.call_ids), exported
    for row in exported:
        want = sent[row.external_id]
        assert (row.source, row.task_id, row.callee, row.call_time) == (
            want.source,
            want.task_id,
            want.callee,
            want.call_time,
        ), row
    print(f"exported {len(exported)} calls in {messages} messages")

    # A call without a callee: INVALID_ARGUMENT with a BadRequest naming it.
    bad = call_pb2.Call(source=call_pb2.SOURCE_API, external_id="py-bad", call_time=when)
    try:
        ingest.UpsertCalls(ingest_service_pb2.UpsertCallsRequest(calls=[bad]))
        sys.exit("a call without a callee was accepted")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        status = rpc_status.from_call(err)
        fields = []
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                request = error_details_pb2.BadRequest()
                detail.Unpack(request)
                fields += [v.field for v in request.field_violations]
        assert "calls[0].callee" in fields, fields
        print(f"BadRequest names {fields}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
