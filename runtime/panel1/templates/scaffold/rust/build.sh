#!/usr/bin/env bash
# Build {{name}} into ./{{name}}.wasm (a WebAssembly component).
#   ./build.sh
# Needs Rust (rustup) with the wasm32-wasip2 target; adds the target when
# missing. Dependencies come from crates.io on the first build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

die() { echo "{{name}}: error: $*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo is not installed (https://rustup.rs)"
if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 ||
        rustup target add wasm32-wasip2 || die "cannot add the wasm32-wasip2 target"
fi
cargo build --release --target wasm32-wasip2 ||
    die "cargo build failed (is the wasm32-wasip2 target installed? rustup target add wasm32-wasip2)"
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" "{{name}}.wasm"
echo "{{name}}: built {{name}}.wasm ($(wc -c <"{{name}}.wasm") bytes)"
