# Every routine command. `./dev <recipe>` runs these on a fresh machine
# (it installs `just` first if needed).
set shell := ["bash", "-euo", "pipefail", "-c"]

bin := "target/release/panel1"

# List the recipes.
default:
    @just --list

# Build the host (release: tests, benchmarks and the binary share one target dir).
build:
    cargo build --release --workspace

# Build every guest component from source into adapters/dist/.
adapters:
    bash adapters/build.sh

# The whole test suite (builds the adapters first), then the API fuzz. The
# fuzz runs the `panel1` binary the tests built: `just build` resolves
# features without the dev-dependencies (tokio, url, serde's macros... come
# out different), so it would compile most of the workspace a second time.
test: adapters test-tools
    cargo test --release --workspace
    cd adapters && cargo test --release -p cpanel -p plesk -p docker -p kubernetes --target "$(rustc -vV | sed -n 's/^host: //p')"
    cd sdk/rust && cargo test --release --target "$(rustc -vV | sed -n 's/^host: //p')"
    bash .ci/fuzz-api.sh

# The SDK packages, installable without a checkout (docs/sdk-packages.md):
# the panel1-sdk crate, the @panel1/sdk npm tarball, the panel1_sdk wheel
# and the C tarball, into OUT (default target/sdk-packages).
sdk-packages out="target/sdk-packages": build
    bash sdk/package.sh {{out}}

# What the tests use besides Rust: the webhook receiver verifies signatures
# with the `standardwebhooks` package (PyPI), independent of Panel1's code.
test-tools:
    python3 -c 'import standardwebhooks' 2>/dev/null || python3 -m pip install --quiet --user standardwebhooks || python3 -m pip install --quiet --user --break-system-packages standardwebhooks

# Schema-driven fuzz of the REST API (schemathesis, pinned, in a venv under
# target/) against a real `panel1 serve` on 127.0.0.1 and a throwaway
# database: no 5xx, every answer as the OpenAPI document says. ≤ 5 minutes.
fuzz-api: build
    bash .ci/fuzz-api.sh

# Rewrite runtime/store/schema.sql: the schema after every migration, in one
# file (a test fails when it is stale).
schema:
    PANEL1_WRITE_SCHEMA=1 cargo test --release --workspace --test suite -- schema_file::

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all --check
    cd adapters && cargo fmt --all --check
    cd sdk/rust && cargo fmt --check
    cargo clippy --release --workspace --all-targets -- -D warnings
    cd adapters && cargo clippy --release --target wasm32-wasip2 --workspace -- -D warnings
    cd sdk/rust && cargo clippy --release --target wasm32-wasip2 -- -D warnings

# Benchmarks (print tables; see docs/benchmarks.md): the sandbox, the queue
# side by side with graphile-worker on the same Postgres (DATABASE_URL or the
# local cluster; needs Node for the peer), orphan recovery after SIGKILL,
# usage collection of 10 000 services in one 5-minute interval (~6 minutes),
# a bulk suspend of 10 000 services (docs/bulk.md; about a minute), and
# listing services at 100 000 (the console's services page; under a minute),
# and an adapter author's edit → rerun loop in JS and Python (a few minutes).
bench: adapters build
    cargo bench --workspace --bench sandbox
    cargo bench --workspace --bench queue
    cargo bench --workspace --bench recovery
    cargo bench --workspace --bench usage
    cargo bench --workspace --bench bulk
    cargo bench --workspace --bench paging
    cargo bench --workspace --bench latency
    bash scripts/bench-edit-loop.sh js python

# The main job, end to end: Panel1 (API + workers, its own Postgres in
# .panel1/ unless DATABASE_URL is set) and simulated WHM, Plesk and Docker;
# provisions, suspends, unsuspends and terminates one service on each over
# the REST API, live, then checks each server's request log.
demo: adapters build
    {{bin}} demo

# The sandbox alone: check the reference adapter, run it, and watch the
# sandbox contain a hostile one.
sandbox-demo: adapters build
    {{bin}} adapter check adapters/dist/reference.wasm
    {{bin}} adapter run adapters/dist/reference.wasm --op info
    @echo "--- a hostile adapter that loops forever, stopped by its fuel budget (exit 2):"
    {{bin}} adapter run adapters/dist/spin-loop.wasm --op provision --input '{"service":{"service_id":"demo"}}' --fuel 100000000 || test $? -eq 2

# Panel1 on http://127.0.0.1:8080 (API + workers), with its own
# Postgres in .panel1/ unless DATABASE_URL is set; the production adapters
# (adapters/dist/builtin: cPanel, Plesk, Docker) are installed as built-ins.
serve: adapters build
    PANEL1_BUILTIN_ADAPTERS="${PANEL1_BUILTIN_ADAPTERS:-adapters/dist/builtin}" {{bin}} serve

# A provider simulator on 127.0.0.1 to develop adapters against
# (`just sim whm`, `just sim plesk`, `just sim docker`, `just sim kube`): prints its URL, pin
# and credential.
sim provider="plesk": build
    {{bin}} sim {{provider}}

# The release archive of the `panel1` CLI (target/dist/): the stripped
# binary, README and adapter guides, with the debug info in a separate
# .debug file (docs/adapters.md, "Installing panel1").
dist: build
    bash scripts/dist.sh

# Apply migrations to DATABASE_URL.
migrate: build
    {{bin}} migrate

# Run a worker against DATABASE_URL (PANEL1_MASTER_KEY decrypts secrets).
worker: build
    {{bin}} worker
