#!/usr/bin/env bash
# Build {{name}} into ./{{name}}.wasm (a WebAssembly component).
#   ./build.sh
# Needs Node.js 18+ (20 recommended) and npm. Installs the pinned packages
# with `npm ci` when node_modules/ is missing (exact versions from
# package-lock.json), then:
#   1. types/    <- wit/            TypeScript declarations (jco, gen-types.mjs)
#   2. dist/*.js <- *.ts            tsc type-checks and compiles; any type
#                                   error stops the build here
#   3. {{name}}.wasm <- dist/adapter.js   componentize-js against wit/
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

die() { echo "{{name}}: error: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 20; Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (Debian: apt-get install npm)"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ] ||
    die "node $(node --version) is too old: componentize-js needs Node.js 18 or newer"

componentize=node_modules/.bin/componentize-js
tsc=node_modules/.bin/tsc
if [ ! -x "$componentize" ] || [ ! -x "$tsc" ]; then
    echo "{{name}}: installing node dependencies (npm ci)"
    npm ci --no-audit --no-fund || die "npm ci failed (is the npm registry reachable?)"
fi
[ -x "$componentize" ] && [ -x "$tsc" ] || die "componentize-js or tsc is missing after npm ci; delete node_modules/ and retry"

node gen-types.mjs || die "generating types/ from wit/ failed"
rm -rf dist
"$tsc" -p tsconfig.json || die "tsc found errors (nothing was built)"

# Features: keep `http` (wasi:http, used by panel1.ts). Disable
#   stdio       - no console/stderr: log through log() of panel1.ts
#   random      - Math.random() becomes deterministic
#   clocks      - no timers (setTimeout would trap); panel1.ts times requests
#                 with wasi:http timeouts and the monotonic clock instead
#   fetch-event - no incoming-handler export
tmp=".{{name}}.wasm.tmp"
"$componentize" dist/adapter.js --wit wit --world-name adapter \
    --disable stdio random clocks fetch-event -o "$tmp" || { rm -f "$tmp"; die "componentize-js failed"; }
mv -f "$tmp" "{{name}}.wasm"
echo "{{name}}: built {{name}}.wasm ($(wc -c <"{{name}}.wasm") bytes)"
