#!/usr/bin/env python3
"""Extract what the Kubernetes API server simulator validates against from the
`kubernetes-validate` strict JSON Schemas (Kubernetes 1.37): the root schema
of each kind below and only the `$defs` they reach, in one compact file.

    python3 extract.py [/path/to/the/schema/folder] > schemas.json

The default input folder is /work/shared/specs/kubernetes. The output is
committed and embedded; nothing reads the input at build or test time.
`description` annotations are dropped (they do not change what validates);
both reference forms (`/api/_definitions.json#/$defs/X` and `#/$defs/X`)
become `#/$defs/X`. Deterministic: keys sorted.
"""
import hashlib
import json
import os
import sys

KINDS = {
    "Namespace": "namespace-v1.json",
    "ResourceQuota": "resourcequota-v1.json",
    "LimitRange": "limitrange-v1.json",
    "Deployment": "deployment-apps-v1.json",
    "Service": "service-v1.json",
    "Ingress": "ingress-networking-v1.json",
    "PersistentVolumeClaim": "persistentvolumeclaim-v1.json",
}
DEFINITIONS = "_definitions.json"
REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")

# Keywords whose value is one schema, a list of schemas, or a map of them.
ONE = ("items", "additionalProperties", "not", "contains", "propertyNames",
       "if", "then", "else", "unevaluatedItems", "unevaluatedProperties")
MANY = ("oneOf", "anyOf", "allOf", "prefixItems")
MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")


def clean(schema, reached):
    """A copy of `schema` without descriptions, refs rewritten; the names
    of the `$defs` it refers to are added to `reached`."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("description", "$id"):
            continue
        if key == "$ref":
            name = None
            for prefix in REF_PREFIXES:
                if value.startswith(prefix):
                    name = value[len(prefix):]
            if name is None:
                sys.exit(f"unexpected reference {value}")
            reached.add(name)
            out[key] = "#/$defs/" + name
        elif key in ONE and isinstance(value, dict):
            out[key] = clean(value, reached)
        elif key in MANY and isinstance(value, list):
            out[key] = [clean(v, reached) for v in value]
        elif key in MAP and isinstance(value, dict):
            out[key] = {k: clean(v, reached) for k, v in value.items()}
        else:
            out[key] = value
    return out


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(folder):
    with open(os.path.join(folder, DEFINITIONS)) as f:
        all_defs = json.load(f)["$defs"]
    kinds, wanted = {}, set()
    sources = {DEFINITIONS: sha256(os.path.join(folder, DEFINITIONS))}
    for kind, file in KINDS.items():
        path = os.path.join(folder, file)
        sources[file] = sha256(path)
        with open(path) as f:
            root = json.load(f)
        root.pop("$schema", None)
        kinds[kind] = clean(root, wanted)
    defs = {}
    while wanted - defs.keys():
        name = sorted(wanted - defs.keys())[0]
        if name not in all_defs:
            sys.exit(f"missing definition {name}")
        defs[name] = clean(all_defs[name], wanted)
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Extracted by extract.py from kubernetes-validate 1.37 (strict); see SOURCES.md",
        "sources": sources,
        "kinds": kinds,
        "$defs": defs,
    }
    json.dump(out, sys.stdout, sort_keys=True, separators=(",", ":"))
    sys.stdout.write("\n")
    print(f"{len(kinds)} kinds, {len(defs)} definitions", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/specs/kubernetes")
