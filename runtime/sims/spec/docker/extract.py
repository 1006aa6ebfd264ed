#!/usr/bin/env python3
"""Extract what the Docker Engine simulator uses from the official Engine API
description (v1.45, Swagger 2.0 YAML): the operations below and every
definition they reference, as JSON. Run from this directory:

    python3 extract.py /path/to/docker-engine-api-v1.45.yaml > engine-v1.45.json

Needs PyYAML. The output is committed; nothing reads the YAML at run time.
"""
import json
import sys

import yaml

OPERATIONS = {
    "/_ping": ["get"],
    "/version": ["get"],
    "/containers/create": ["post"],
    "/containers/json": ["get"],
    "/containers/{id}/json": ["get"],
    "/containers/{id}/start": ["post"],
    "/containers/{id}/stop": ["post"],
    "/containers/{id}/pause": ["post"],
    "/containers/{id}/unpause": ["post"],
    "/containers/{id}/update": ["post"],
    "/containers/{id}": ["delete"],
    "/containers/{id}/stats": ["get"],
    "/volumes/create": ["post"],
    "/volumes/{name}": ["get", "delete"],
    "/networks/{id}": ["get"],
}


def refs(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref.split("/")[-1])
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def main(path):
    spec = yaml.safe_load(open(path))
    paths = {}
    for p, methods in OPERATIONS.items():
        paths[p] = {m: spec["paths"][p][m] for m in methods}
    wanted = set()
    refs(paths, wanted)
    definitions = {}
    while wanted - definitions.keys():
        name = sorted(wanted - definitions.keys())[0]
        definitions[name] = spec["definitions"][name]
        refs(definitions[name], wanted)
    out = {
        "swagger": spec["swagger"],
        "basePath": spec["basePath"],
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "paths": paths,
        "definitions": dict(sorted(definitions.items())),
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
