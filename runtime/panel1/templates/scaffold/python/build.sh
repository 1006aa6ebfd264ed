#!/usr/bin/env bash
# Build {{name}} into ./{{name}}.wasm (a WebAssembly component).
#   ./build.sh
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
tmp=".{{name}}.wasm.tmp"
.venv/bin/componentize-py -d wit -w adapter componentize app -p . -o "$tmp" ||
    { rm -f "$tmp"; die "componentize-py failed"; }
mv -f "$tmp" "{{name}}.wasm"
echo "{{name}}: built {{name}}.wasm ($(wc -c <"{{name}}.wasm") bytes)"
