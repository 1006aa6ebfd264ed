#!/usr/bin/env bash
# Build {{name}} into ./{{name}}.wasm (a WebAssembly component).
#   ./build.sh          the component, for servers and `panel1 adapter push`
#   ./build.sh --dev    the fast edit loop (below)
# Needs python3 (3.10+) with venv and pip. Installs the pinned
# componentize-py (requirements.txt) into .venv/ on the first run, then
# componentizes app.py against wit/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

die() { echo "{{name}}: error: $*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 is not installed (Debian: apt-get install python3 python3-venv)"
if [ ! -x .venv/bin/componentize-py ]; then
    echo "{{name}}: installing componentize-py into .venv (pip)"
    python3 -m venv .venv || die "cannot create .venv (Debian: apt-get install python3-venv)"
    .venv/bin/python -m pip install --quiet -r requirements.txt ||
        die "pip install failed (is PyPI reachable?)"
fi
# ./build.sh --dev: the edit loop without a componentize per edit.
#   .dev/shell.wasm    dev_shell.py componentized against wit/, rebuilt only
#                      when wit/world.wit, dev_shell.py or requirements.txt
#                      change; it runs the source it is handed per call
#   .dev/adapter.json  every .py file of the project (milliseconds)
# then: panel1 adapter run .dev/shell.wasm --script .dev/adapter.json --op info
#       panel1 adapter test test/scenario.toml --component .dev/shell.wasm --script .dev/adapter.json
if [ "${1:-}" = "--dev" ]; then
    mkdir -p .dev
    key="$(cat wit/world.wit dev_shell.py requirements.txt | sha256sum | cut -c1-16)"
    if [ ! -f ".dev/shell-$key.wasm" ]; then
        echo "{{name}}: building the dev shell (once per world)"
        rm -f .dev/shell-*.wasm
        .venv/bin/componentize-py -d wit -w adapter componentize dev_shell -p . -o .dev/shell.tmp ||
            { rm -f .dev/shell.tmp; die "componentize-py failed on dev_shell.py"; }
        mv -f .dev/shell.tmp ".dev/shell-$key.wasm"
    fi
    ln -sf "shell-$key.wasm" .dev/shell.wasm
    python3 - <<'PY' || die "could not write .dev/adapter.json"
import json, pathlib
modules = {p.stem: p.read_text() for p in sorted(pathlib.Path(".").glob("*.py")) if p.stem != "dev_shell"}
pathlib.Path(".dev/adapter.json.tmp").write_text(json.dumps({"modules": modules}))
PY
    mv -f .dev/adapter.json.tmp .dev/adapter.json
    echo "{{name}}: wrote .dev/adapter.json (the shell: .dev/shell.wasm)"
    exit 0
fi
tmp=".{{name}}.wasm.tmp"
.venv/bin/componentize-py -d wit -w adapter componentize app -p . -o "$tmp" ||
    { rm -f "$tmp"; die "componentize-py failed"; }
mv -f "$tmp" "{{name}}.wasm"
echo "{{name}}: built {{name}}.wasm ($(wc -c <"{{name}}.wasm") bytes)"
