#!/usr/bin/env bash
# Build the JavaScript reference adapter into ../dist/js-reference.wasm.
#
#   adapters/js-reference/build.sh
#
# Idempotent: node dependencies are installed with `npm ci` (exact versions
# from package-lock.json) only when node_modules/ is missing; the component is
# rebuilt on every run (it takes a few seconds).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
wit_src="$repo/wit/v0.1.0"
out_dir="$here/../dist"
out="$out_dir/js-reference.wasm"

die() {
    echo "js-reference: error: $*" >&2
    exit 1
}

command -v node >/dev/null 2>&1 ||
    die "node is not installed (Node.js 20 or newer is needed; Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 ||
    die "npm is not installed (Debian: apt-get install npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "node $(node --version) is too old; componentize-js needs Node.js 18 or newer (20 recommended)"
[ -f "$wit_src/provisioning.wit" ] || die "WIT not found at $wit_src/provisioning.wit"

cd "$here"

componentize="$here/node_modules/.bin/componentize-js"
if [ ! -d node_modules ] || [ ! -x "$componentize" ]; then
    echo "js-reference: installing node dependencies (npm ci)"
    npm ci --no-audit --no-fund || die "npm ci failed (is the npm registry reachable?)"
fi
[ -x "$componentize" ] || die "componentize-js is missing after npm ci; delete node_modules/ and retry"

# Stage the WIT: our narrowed world (wit/world.wit) plus the released
# panel1:provisioning@0.1.0 package and the WASI packages it depends on.
stage="$(mktemp -d "${TMPDIR:-/tmp}/js-reference-wit.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/deps/panel1-provisioning"
cp "$here/wit/world.wit" "$stage/"
cp "$wit_src/provisioning.wit" "$stage/deps/panel1-provisioning/"
cp -R "$wit_src/deps/." "$stage/deps/"

# Features: keep `http` (fetch() over wasi:http/outgoing-handler). Disable
#   stdio       - no console/stderr; the adapter logs through panel1 `log`
#   random      - Math.random() becomes deterministic; nothing here needs it
#   clocks      - no timers (setTimeout would panic); fetch does not need them
#   fetch-event - no incoming-handler export
mkdir -p "$out_dir"
tmp_out="$out_dir/.js-reference.wasm.tmp"
echo "js-reference: componentize-js $("$componentize" --version) -> $out"
"$componentize" adapter.js \
    --wit "$stage" \
    --world-name adapter \
    --disable stdio random clocks fetch-event \
    -o "$tmp_out" || { rm -f "$tmp_out"; die "componentize-js failed"; }
mv -f "$tmp_out" "$out"
echo "js-reference: built $out ($(wc -c <"$out") bytes)"
