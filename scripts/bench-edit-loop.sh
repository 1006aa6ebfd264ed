#!/usr/bin/env bash
# The edit → rerun loop of an adapter author (issue 19's goal: ≤ 3 s for JS
# and Python): scaffold a project outside the checkout, build it once, then
# ROUNDS times: change one string in the source, rebuild, and run `info`
# with each compiler (a fresh component every round, so nothing comes from
# the artifact cache). For JS, TS and Python also the dev loop: after the
# same edit, `./build.sh --dev` (bundles the source; the dev shell was built
# once) and `run .dev/shell.wasm --script …` (the shell's compiled code
# cached). Prints a table of medians.
#
#   scripts/bench-edit-loop.sh [LANGS…]     (default: js python; also rust, ts, c)
#   ROUNDS=5 (default)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/target/release/panel1"
[ -x "$bin" ] || { echo "bench-edit-loop: build first (cargo build --release -p panel1)" >&2; exit 1; }
rounds="${ROUNDS:-5}"
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(js python)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cache="$work/cache"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {m=(NR+1)/2; if (NR%2) print a[m]; else print (a[m-0.5]+a[m+0.5])/2}'; }
source_of() {
    case "$1" in
        rust) echo src/lib.rs ;; js) echo adapter.js ;; ts) echo adapter.ts ;;
        python) echo app.py ;; c) echo adapter.c ;;
    esac
}
script_of() {
    case "$1" in
        js | ts) echo .dev/adapter.js ;; python) echo .dev/adapter.json ;; *) echo "" ;;
    esac
}

echo "machine: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores"
echo
echo "| language | component | rebuild | run \`info\`, Cranelift (compile + call) | run \`info\`, Winch | edit → result with Winch | cached rerun | dev loop: \`build.sh --dev\` + run |"
echo "|---|---|---|---|---|---|---|---|"
for lang in "${langs[@]}"; do
    dir="$work/edit-$lang"
    "$bin" adapter new "edit-$lang" --lang "$lang" --dir "$dir" >/dev/null
    (cd "$dir" && ./build.sh >/dev/null 2>&1) || { echo "bench-edit-loop: $lang: first build failed" >&2; exit 1; }
    src="$dir/$(source_of "$lang")"
    wasm="$dir/edit-$lang.wasm"
    script="$(script_of "$lang")"
    if [ -n "$script" ]; then
        # The shell, once, and its compiled code into the cache.
        (cd "$dir" && ./build.sh --dev >/dev/null 2>&1) || { echo "bench-edit-loop: $lang: build.sh --dev failed" >&2; exit 1; }
        "$bin" adapter run "$dir/.dev/shell.wasm" --script "$dir/$script" --op info --artifacts "$cache" >/dev/null
    fi
    : >"$work/build" ; : >"$work/cl" ; : >"$work/wi" ; : >"$work/hit" ; : >"$work/dev"
    for i in $(seq 1 "$rounds"); do
        # The edit: the starter's description text, different every round.
        sed -i "s/WHM API 1 starter adapter[^\"'\`]*/WHM API 1 starter adapter r$i/" "$src"
        t0=$(now); (cd "$dir" && ./build.sh >/dev/null 2>&1); t1=$(now)
        awk -v a="$t1" -v b="$t0" 'BEGIN {print a - b}' >>"$work/build"
        t0=$(now); "$bin" adapter run "$wasm" --op info --no-cache >/dev/null; t1=$(now)
        awk -v a="$t1" -v b="$t0" 'BEGIN {print a - b}' >>"$work/cl"
        t0=$(now); "$bin" adapter run "$wasm" --op info --compiler winch --artifacts "$cache" >/dev/null; t1=$(now)
        awk -v a="$t1" -v b="$t0" 'BEGIN {print a - b}' >>"$work/wi"
        t0=$(now); "$bin" adapter run "$wasm" --op info --compiler winch --artifacts "$cache" >/dev/null; t1=$(now)
        awk -v a="$t1" -v b="$t0" 'BEGIN {print a - b}' >>"$work/hit"
        if [ -n "$script" ]; then
            sed -i "s/WHM API 1 starter adapter[^\"'\`]*/WHM API 1 starter adapter d$i/" "$src"
            t0=$(now)
            (cd "$dir" && ./build.sh --dev >/dev/null 2>&1)
            out="$("$bin" adapter run "$dir/.dev/shell.wasm" --script "$dir/$script" --op info --artifacts "$cache")"
            t1=$(now)
            grep -q "starter adapter d$i" <<<"$out" || { echo "bench-edit-loop: $lang: the dev loop did not run the edit" >&2; exit 1; }
            awk -v a="$t1" -v b="$t0" 'BEGIN {print a - b}' >>"$work/dev"
        fi
    done
    b=$(median <"$work/build"); c=$(median <"$work/cl"); w=$(median <"$work/wi"); h=$(median <"$work/hit")
    d="—"; [ -s "$work/dev" ] && d="$(printf '%.2f s' "$(median <"$work/dev")")"
    size=$(wc -c <"$wasm")
    printf '| %s | %.1f MB | %.1f s | %.1f s | %.1f s | %.1f s | %.2f s | %s |\n' \
        "$lang" "$(awk -v s="$size" 'BEGIN {print s / 1e6}')" "$b" "$c" "$w" "$(awk -v a="$b" -v b="$w" 'BEGIN {print a + b}')" "$h" "$d"
done
echo
echo "medians of $rounds rounds; rebuild = the project's ./build.sh after the edit; cached rerun = the same component again (artifact cache hit); dev loop = edit → ./build.sh --dev → run on the dev shell (Cranelift, the shell cached)"
