#!/usr/bin/env bash
# The release archive adapter authors install: the `panel1` binary with its
# debug info split off into a separate file (the release profile keeps line
# tables for backtraces: ~220 MB with them, a fraction without).
#
#   scripts/dist.sh [BINARY] [OUT_DIR]     (defaults: target/release/panel1, target/dist)
#
# Writes OUT_DIR/panel1-VERSION-TARGET.tar.gz (the stripped binary, README,
# the adapter guides), OUT_DIR/panel1-VERSION-TARGET.debug (the DWARF,
# linked from the binary by .gnu_debuglink: put it next to the binary or
# under /usr/lib/debug for gdb and symbolized backtraces) and a SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/panel1}"
out="${2:-target/dist}"
[ -x "$bin" ] || { echo "dist: $bin is not built (cargo build --release -p panel1)" >&2; exit 1; }
command -v objcopy >/dev/null || { echo "dist: objcopy (binutils) is required" >&2; exit 1; }
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
target="$(rustc -vV | sed -n 's/^host: //p')"
name="panel1-${version}-${target}"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out" "$stage/$name/docs/adapters"
out="$(cd "$out" && pwd)"
objcopy --only-keep-debug --compress-debug-sections=zlib "$bin" "$out/$name.debug"
objcopy --strip-debug --add-gnu-debuglink="$out/$name.debug" "$bin" "$stage/$name/panel1"
cp README.md "$stage/$name/"
cp docs/adapters.md "$stage/$name/docs/"
if [ -d docs/adapters ]; then cp docs/adapters/*.md "$stage/$name/docs/adapters/"; fi
tar -C "$stage" -czf "$out/$name.tar.gz" "$name"
(cd "$out" && sha256sum "$name.tar.gz" "$name.debug" > SHA256SUMS)
ls -l "$out/$name.tar.gz" "$out/$name.debug" | awk '{printf "%s %.1f MB\n", $NF, $5/1e6}'
