#!/usr/bin/env python3
"""Extract the WHM API 1 functions the simulator serves from cPanel's OpenAPI files.

Usage: python3 extract.py [SPEC_DIR]   (default: ./cpanel beside this script)

Writes whm-api1.json beside this script. The simulator embeds that JSON at
build time, so nothing reads the YAML at run time. Entries marked
"hand_written": true in the existing JSON (functions absent from the official
files) are kept as they are.
"""

import hashlib
import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "whm-api1.json")
DEFAULT_SPEC_DIR = os.path.join(HERE, "cpanel")

# function -> the official file that describes it (see cpanel/SOURCES.md)
FUNCTIONS = {
    "createacct": "cpanel-account-creation-api-openapi.yml",
    "suspendacct": "cpanel-suspensions-api-openapi.yml",
    "unsuspendacct": "cpanel-suspensions-api-openapi.yml",
    "removeacct": "cpanel-account-management-api-openapi.yml",
    "accountsummary": "cpanel-accounts-api-openapi.yml",
    "listaccts": "cpanel-accounts-api-openapi.yml",
    "changepackage": "cpanel-packages-api-openapi.yml",
    "listpkgs": "cpanel-packages-api-openapi.yml",
    "passwd": "cpanel-passwords-api-openapi.yml",
    "showbw": "cpanel-bandwidth-and-disk-quotas-api-openapi.yml",
    "version": "cpanel-updates-api-openapi.yml",
}

# Generic WHM API 1 parameters, valid for every function. Written by hand from
# cPanel's "WHM API 1" guide (they are not per-function, so no path lists them).
META_PARAMETERS = [
    {"name": "api.version", "schema": {"type": "integer", "enum": [1]}},
    {"name": "api.chunk.enable", "schema": {"type": "integer", "enum": [0, 1]}},
    {"name": "api.chunk.start", "schema": {"type": "integer", "minimum": 1}},
    {"name": "api.chunk.size", "schema": {"type": "integer", "minimum": 1}},
    {"name": "api.chunk.verbose", "schema": {"type": "integer", "enum": [0, 1]}},
]

# Annotation keywords dropped from response schemas only (they do not change
# what validates, and they make up most of the size). Parameter schemas are
# copied exactly.
ANNOTATIONS = {"description", "example", "examples"}


def resolve(node, doc):
    """Inline local $refs (#/components/...)."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise SystemExit(f"non-local $ref {ref}")
            target = doc
            for part in ref[2:].split("/"):
                target = target[part]
            merged = dict(resolve(target, doc))
            merged.update({k: resolve(v, doc) for k, v in node.items() if k != "$ref"})
            return merged
        return {k: resolve(v, doc) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, doc) for v in node]
    return node


def strip_annotations(schema):
    """Drop annotation keywords, but keep properties that happen to be named like them."""
    if isinstance(schema, list):
        return [strip_annotations(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key in ("properties", "patternProperties", "$defs"):
            out[key] = {name: strip_annotations(s) for name, s in value.items()}
        else:
            out[key] = strip_annotations(value)
    return out


def extract(spec_dir):
    docs = {}
    sources = {}
    for fname in sorted(set(FUNCTIONS.values())):
        raw = open(os.path.join(spec_dir, fname), "rb").read()
        docs[fname] = yaml.safe_load(raw)
        sources[fname] = {
            "sha256": hashlib.sha256(raw).hexdigest(),
            "bytes": len(raw),
            "openapi": docs[fname]["openapi"],
        }

    functions = {}
    for name, fname in sorted(FUNCTIONS.items()):
        doc = docs[fname]
        op = doc["paths"]["/" + name]["get"]
        params = []
        for p in resolve(op.get("parameters", []), doc):
            if p.get("in") != "query":
                raise SystemExit(f"{name}: parameter {p.get('name')} is not in the query")
            entry = {"name": p["name"], "required": bool(p.get("required", False)), "schema": p["schema"]}
            if p.get("deprecated"):
                entry["deprecated"] = True
            params.append(entry)
        response = resolve(op["responses"]["200"]["content"]["application/json"]["schema"], doc)
        functions[name] = {
            "source": {"file": fname, "sha256": sources[fname]["sha256"]},
            "operation_id": op.get("operationId"),
            "parameters": params,
            "response_schema": strip_annotations(response),
        }
    return sources, functions


def main():
    spec_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SPEC_DIR
    sources, functions = extract(spec_dir)

    # Keep hand-written entries from the previous output.
    if os.path.exists(OUT):
        previous = json.load(open(OUT, encoding="utf-8"))
        for name, entry in previous.get("functions", {}).items():
            if entry.get("hand_written"):
                functions[name] = entry

    out = {
        "_comment": "Generated by spec/extract.py from cPanel's official OpenAPI files; "
        "entries with hand_written=true are maintained by hand. See spec/README.md.",
        "sources": sources,
        "meta_parameters": META_PARAMETERS,
        "functions": dict(sorted(functions.items())),
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=False, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}: {len(functions)} functions")


if __name__ == "__main__":
    main()
