#!/usr/bin/env bash
# Build {{name}} into ./{{name}}.wasm (a WebAssembly component).
#   ./build.sh          the component, for servers and `panel1 adapter push`
#   ./build.sh --dev    the fast edit loop (see the end of this file)
# Needs Node.js 18+ (20 recommended) and npm. Installs the pinned
# componentize-js with `npm ci` when node_modules/ is missing (exact versions
# from package-lock.json), then componentizes adapter.js against wit/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

die() { echo "{{name}}: error: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 20; Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (Debian: apt-get install npm)"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ] ||
    die "node $(node --version) is too old: componentize-js needs Node.js 18 or newer"

componentize=node_modules/.bin/componentize-js
esbuild=node_modules/.bin/esbuild
if [ ! -x "$componentize" ] || [ ! -x "$esbuild" ]; then
    echo "{{name}}: installing node dependencies (npm ci)"
    npm ci --no-audit --no-fund || die "npm ci failed (is the npm registry reachable?)"
fi
[ -x "$componentize" ] || die "componentize-js is missing after npm ci; delete node_modules/ and retry"

# ./build.sh --dev: the edit loop without a componentize per edit.
#   .dev/shell.wasm   dev-shell.js componentized against wit/, rebuilt only
#                     when wit/world.wit, dev-shell.js or package-lock.json
#                     change; it evaluates the script it is handed per call
#   .dev/adapter.js   adapter.js and what it imports, bundled by esbuild (ms)
# then: panel1 adapter run .dev/shell.wasm --script .dev/adapter.js --op info
#       panel1 adapter test test/scenario.toml --component .dev/shell.wasm --script .dev/adapter.js
if [ "${1:-}" = "--dev" ]; then
    mkdir -p .dev
    key="$(cat wit/world.wit dev-shell.js package-lock.json | sha256sum | cut -c1-16)"
    if [ ! -f ".dev/shell-$key.wasm" ]; then
        echo "{{name}}: building the dev shell (once per world)"
        rm -f .dev/shell-*.wasm
        "$componentize" dev-shell.js --wit wit --world-name adapter \
            --disable stdio random clocks fetch-event -o ".dev/shell.tmp" || { rm -f .dev/shell.tmp; die "componentize-js failed on dev-shell.js"; }
        mv -f .dev/shell.tmp ".dev/shell-$key.wasm"
    fi
    ln -sf "shell-$key.wasm" .dev/shell.wasm
    "$esbuild" adapter.js --bundle --format=cjs --platform=neutral --target=es2022 \
        '--external:wasi:*' '--external:panel1:*' --log-level=warning \
        --outfile=.dev/adapter.js || die "esbuild could not bundle adapter.js"
    echo "{{name}}: bundled .dev/adapter.js (the shell: .dev/shell.wasm)"
    exit 0
fi

# Features: keep `http` (wasi:http, used by panel1.js). Disable
#   stdio       - no console/stderr: log through log() of panel1.js
#   random      - Math.random() becomes deterministic
#   clocks      - no timers (setTimeout would trap); panel1.js times requests
#                 with wasi:http timeouts and the monotonic clock instead
#   fetch-event - no incoming-handler export
tmp=".{{name}}.wasm.tmp"
"$componentize" adapter.js --wit wit --world-name adapter \
    --disable stdio random clocks fetch-event -o "$tmp" || { rm -f "$tmp"; die "componentize-js failed"; }
mv -f "$tmp" "{{name}}.wasm"
echo "{{name}}: built {{name}}.wasm ($(wc -c <"{{name}}.wasm") bytes)"
