#!/usr/bin/env bash
# Build the SDK packages into OUT (docs/sdk-packages.md):
#   sdk/package.sh OUT        (or `./dev sdk-packages`, into target/sdk-packages)
#   OUT/panel1-sdk-VER.crate              cargo package (Rust)
#   OUT/panel1-sdk-VER.tgz                npm pack (@panel1/sdk: JS + .d.ts)
#   OUT/panel1_sdk-VER-py3-none-any.whl   pip wheel (Python)
#   OUT/panel1-sdk-c-VER.tar.gz           the C helpers
# Each package's tree is written by `panel1 adapter sdk` from the files the
# binary embeds for `panel1 adapter new` (no second copy of a helper).
# Needs the panel1 binary ($PANEL1_BIN, default target/release/panel1),
# cargo, node/npm (the TypeScript scaffold's pinned typescript and jco
# compile the declarations), python3 with pip (setuptools comes from PyPI)
# and tar.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "sdk/package.sh: error: $*" >&2; exit 1; }
say() { echo "sdk/package.sh: $*" >&2; }

[ $# -eq 1 ] || die "usage: sdk/package.sh OUT"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
panel1="${PANEL1_BIN:-$repo/target/release/panel1}"
[ -x "$panel1" ] || die "$panel1 is missing: build it (cargo build --release -p panel1) or set PANEL1_BIN"
for tool in cargo node npm python3 tar; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/panel1-sdk-package.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tree() { "$panel1" adapter sdk --lang "$1" --out "$2" >/dev/null || die "panel1 adapter sdk --lang $1 failed"; }

# ---- Rust: the crate, WIT included. Verified by building it for
# wasm32-wasip2 in runtime/panel1/tests/sdk_packages.rs rather than by
# cargo's host build here.
tree rust "$work/rust"
ver="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$work/rust/Cargo.toml" | head -1)"
[ -n "$ver" ] || die "no version in the crate's Cargo.toml"
say "version $ver"
(cd "$work/rust" && cargo package --quiet --no-verify --allow-dirty --target-dir "$work/cargo-target") ||
    die "cargo package failed"
cp "$work/cargo-target/package/panel1-sdk-$ver.crate" "$out/"

# ---- npm: panel1.js, and panel1.d.ts compiled from the TypeScript scaffold's
# panel1.ts with its pinned tools (package-lock.json), with types/ that
# gen-types.mjs writes from the same world.
tree js "$work/npm"
"$panel1" adapter new sdk-types --lang ts --dir "$work/ts" >/dev/null || die "panel1 adapter new --lang ts failed"
(
    cd "$work/ts"
    npm ci --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null || die "npm ci (typescript, jco) failed"
    node gen-types.mjs >/dev/null || die "generating types/ failed"
    node_modules/.bin/tsc -p tsconfig.json --declaration --emitDeclarationOnly --outDir decl ||
        die "tsc could not declare panel1.ts"
)
{
    echo '/// <reference path="./types/adapter.d.ts" />'
    cat "$work/ts/decl/panel1.d.ts"
} >"$work/npm/panel1.d.ts"
cp -R "$work/ts/types" "$work/npm/types"
# The declarations describe panel1.js: the same exported values.
exports_of() { sed -n -E "s/^export (declare )?(async )?(const|function|class) ([A-Za-z_]+).*/\4/p" "$1" | sort; }
diff <(exports_of "$work/npm/panel1.js") <(exports_of "$work/npm/panel1.d.ts") >&2 ||
    die "panel1.js and panel1.ts export different values (above: < only in .js, > only in .ts)"
(cd "$work/npm" && npm pack --quiet --pack-destination "$out" >/dev/null) || die "npm pack failed"
[ -f "$out/panel1-sdk-$ver.tgz" ] || die "npm pack wrote no panel1-sdk-$ver.tgz"

# ---- Python: a wheel of panel1_http.py (setuptools from PyPI).
tree python "$work/python"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$out" "$work/python" >&2 || die "pip wheel failed"
[ -f "$out/panel1_sdk-$ver-py3-none-any.whl" ] || die "pip wrote no panel1_sdk-$ver-py3-none-any.whl"

# ---- C: the helpers and the world, as a tarball with one top directory.
tree c "$work/c/panel1-sdk-c-$ver"
tar -czf "$out/panel1-sdk-c-$ver.tar.gz" -C "$work/c" "panel1-sdk-c-$ver" || die "tar failed"

say "wrote $out:"
(cd "$out" && ls -1 "panel1-sdk-$ver.crate" "panel1-sdk-$ver.tgz" "panel1_sdk-$ver-py3-none-any.whl" "panel1-sdk-c-$ver.tar.gz")
