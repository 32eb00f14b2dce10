#!/usr/bin/env python3
"""Writes docs/api.md, the API reference, from the descriptor set of proto/
with its comments (`buf build -o image.json`), so the reference cannot drift
from the protos. `.ci/run` regenerates it and fails when the committed copy
differs.

With --check-comments it also fails (exit 1, listing them) when any service,
RPC, message, field, enum or enum value of proto/callscope lacks a leading
comment: `.ci/run` runs it so that every element stays documented.

    buf build -o /tmp/image.json && python3 tools/gen_api_doc.py /tmp/image.json > docs/api.md
    python3 tools/gen_api_doc.py /tmp/image.json --check-comments > /dev/null
"""

import json
import sys

SCALARS = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64",
    7: "fixed32", 8: "bool", 9: "string", 12: "bytes", 13: "uint32",
    15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64",
}
# FieldDescriptorProto.Type in the JSON image is the enum name.
SCALAR_NAMES = {
    "TYPE_DOUBLE": "double", "TYPE_FLOAT": "float", "TYPE_INT64": "int64",
    "TYPE_UINT64": "uint64", "TYPE_INT32": "int32", "TYPE_FIXED64": "fixed64",
    "TYPE_FIXED32": "fixed32", "TYPE_BOOL": "bool", "TYPE_STRING": "string",
    "TYPE_BYTES": "bytes", "TYPE_UINT32": "uint32", "TYPE_SFIXED32": "sfixed32",
    "TYPE_SFIXED64": "sfixed64", "TYPE_SINT32": "sint32", "TYPE_SINT64": "sint64",
}


def comments(file, leading_only=False):
    """Leading comments (else trailing ones) by source path (tuple of ints)."""
    out = {}
    for loc in file.get("sourceCodeInfo", {}).get("location", []):
        text = loc.get("leadingComments")
        if not leading_only:
            text = text or loc.get("trailingComments")
        if text and text.strip():
            out[tuple(loc.get("path", []))] = " ".join(
                line.strip() for line in text.strip().splitlines()
            )
    return out


def anchor(name):
    return name.lower().replace(".", "")


def type_name(field):
    t = field.get("type")
    if t in ("TYPE_MESSAGE", "TYPE_ENUM"):
        name = field["typeName"].lstrip(".")
        if name.startswith("callscope."):
            return f"[`{name.split('.')[-1]}`](#{anchor(name)})"
        return f"`{name}`"
    return f"`{SCALAR_NAMES.get(t, SCALARS.get(t, str(t)))}`"


def cell(text):
    return (text or "").replace("|", "\\|")


def main():
    image = json.load(open(sys.argv[1]))
    check = "--check-comments" in sys.argv
    missing = []
    files = [f for f in image["file"] if f["name"].startswith("callscope/")]
    out = [
        "# callscope API reference",
        "",
        "Generated from `proto/` by `tools/gen_api_doc.py`; do not edit by hand.",
        "Errors carry `google.rpc` details (`BadRequest`, `RetryInfo`, `ResourceInfo`)",
        "from the unmodified upstream `proto/google/rpc/error_details.proto`.",
        "",
    ]
    for file in files:
        doc = comments(file)
        leading = comments(file, leading_only=True)
        package = file.get("package", "")
        out += [f"## `{file['name']}`", ""]
        if doc.get((12,)):
            out += [doc[(12,)], ""]
        for si, service in enumerate(file.get("service", [])):
            full = f"{package}.{service['name']}"
            if not leading.get((6, si)):
                missing.append(full)
            out += [f"### service `{full}`", "", doc.get((6, si), ""), ""]
            out += ["| method | request | response | |", "|---|---|---|---|"]
            for mi, method in enumerate(service.get("method", [])):
                stream_in = "stream " if method.get("clientStreaming") else ""
                stream_out = "stream " if method.get("serverStreaming") else ""
                text = doc.get((6, si, 2, mi), "")
                if not leading.get((6, si, 2, mi)):
                    missing.append(f"{full}.{method['name']}")
                req = method["inputType"].lstrip(".")
                res = method["outputType"].lstrip(".")
                out.append(
                    f"| `{method['name']}` | {stream_in}[`{req.split('.')[-1]}`](#{anchor(req)}) "
                    f"| {stream_out}[`{res.split('.')[-1]}`](#{anchor(res)}) | {cell(text)} |"
                )
            out.append("")

        def message(msg, path, prefix):
            full = f"{prefix}.{msg['name']}"
            out.extend([f"### `{full}`", ""])
            text = doc.get(tuple(path), "")
            if not leading.get(tuple(path)):
                missing.append(full)
            out.extend([text, ""] if text else [])
            fields = msg.get("field", [])
            if fields:
                out.extend(["| field | number | type | |", "|---|---|---|---|"])
                for fi, field in enumerate(fields):
                    label = "repeated " if field.get("label") == "LABEL_REPEATED" else ""
                    if field.get("proto3Optional"):
                        label = "optional "
                    ftext = doc.get(tuple(path + [2, fi]), "")
                    if not leading.get(tuple(path + [2, fi])):
                        missing.append(f"{full}.{field['name']}")
                    out.append(
                        f"| `{field['name']}` | {field['number']} | {label}{type_name(field)} | {cell(ftext)} |"
                    )
                out.append("")
            for ni, nested in enumerate(msg.get("nestedType", [])):
                if nested.get("options", {}).get("mapEntry"):
                    continue
                message(nested, path + [3, ni], full)
            for ei, enum in enumerate(msg.get("enumType", [])):
                enumeration(enum, path + [4, ei], full)

        def enumeration(enum, path, prefix):
            full = f"{prefix}.{enum['name']}"
            out.extend([f"### enum `{full}`", ""])
            text = doc.get(tuple(path), "")
            if not leading.get(tuple(path)):
                missing.append(full)
            out.extend([text, ""] if text else [])
            out.extend(["| value | number | |", "|---|---|---|"])
            for vi, value in enumerate(enum.get("value", [])):
                vtext = doc.get(tuple(path + [2, vi]), "")
                if not leading.get(tuple(path + [2, vi])):
                    missing.append(f"{full}.{value['name']}")
                out.append(f"| `{value['name']}` | {value.get('number', 0)} | {cell(vtext)} |")
            out.append("")

        for mi, msg in enumerate(file.get("messageType", [])):
            message(msg, [4, mi], package)
        for ei, enum in enumerate(file.get("enumType", [])):
            enumeration(enum, [5, ei], package)
    text = "\n".join(out).rstrip() + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    sys.stdout.write(text)
    if check and missing:
        sys.stderr.write("without a comment:\n  " + "\n  ".join(missing) + "\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
