#!/usr/bin/env bash
# Schema-driven fuzz of the REST API: schemathesis generates requests from the
# OpenAPI document a real `panel1 serve` serves, and checks every answer:
# never a 5xx, and status, content type, headers and body as documented.
#
# The server runs on a free 127.0.0.1 port against a throwaway database on
# the local Postgres (DATABASE_URL's server, else postgres@127.0.0.1:5432),
# with a throwaway data directory; all are removed on exit. No traffic leaves
# 127.0.0.1: the fuzz only talks to this server, and its workers are off (no
# adapter runs, so nothing dials out).
#
# Bounded and repeatable: deterministic generation (the same requests every
# run), a fixed number of examples per operation, and a hard wall-clock limit
# (FUZZ_API_TIMEOUT seconds for both passes, 300 by default: with a build
# running beside them on two cores they ran past 200 s). Exit status:
# schemathesis's, non-zero on any failed check or error.
set -euo pipefail
cd "$(dirname "$0")/.."

schemathesis_version=4.32.5
bin=target/release/panel1
venv=target/fuzz-api/venv
budget=${FUZZ_API_TIMEOUT:-300}
examples=${FUZZ_API_EXAMPLES:-100}

[ -x "$bin" ] || { echo "fuzz-api: $bin is missing (run \`./dev build\`)" >&2; exit 1; }

# schemathesis, pinned, in a virtualenv under target/ (ignored by git).
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $schemathesis_version" ]; then
  echo "fuzz-api: installing schemathesis $schemathesis_version into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian ships venv separately (as .ci/run installs node when missing).
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      echo "fuzz-api: installing python3-venv (Debian)"
      apt-get update -qq && apt-get install -y -qq python3-venv
    fi
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "fuzz-api: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

# A throwaway database on the local server.
admin_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db="panel1_fuzz_$$_$(date +%s)"
db_url="${admin_url%/*}/$db"
data_dir=$(mktemp -d "${TMPDIR:-/tmp}/panel1-fuzz.XXXXXX")
server_pid=""

cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$data_dir/serve.log" ]; then
    echo "fuzz-api: the server's log (errors answered 5xx are logged here by error_id):" >&2
    grep -E 'ERROR|WARN|panicked' "$data_dir/serve.log" | tail -n 40 >&2 || true
  fi
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$data_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql -q -v ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE \"$db\"" >/dev/null

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# Limits high enough that the fuzz tests the API, not the rate limiter (its
# 429s are documented and would pass, but would hide everything else).
PANEL1_LISTEN="127.0.0.1:$port" \
DATABASE_URL="$db_url" \
PANEL1_DATA_DIR="$data_dir" \
PANEL1_MASTER_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')" \
PANEL1_WORKERS=false \
PANEL1_RATE_LIMIT_PER_SECOND=100000 \
PANEL1_RATE_LIMIT_BURST=100000 \
PANEL1_AUTH_FAILURE_LIMIT=1000000 \
RUST_LOG="${RUST_LOG:-warn}" \
  "$bin" serve >"$data_dir/serve.log" 2>&1 &
server_pid=$!

for _ in $(seq 150); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$data_dir/serve.log" >&2; echo "fuzz-api: panel1 serve exited" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null

platform_key=$(cat "$data_dir/platform.key")
tenant_key=$(curl -fsS -X POST "$base/v1/tenants" \
  -H "Authorization: Bearer $platform_key" -H 'Content-Type: application/json' \
  -d '{"name":"fuzz"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["admin_key"]["key"])')

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
st=(
  "$venv/bin/schemathesis" --config-file .ci/schemathesis.toml run "$base/v1/openapi.json"
  --url "$base"
  --checks "$checks"
  --generation-deterministic
  --max-examples "$examples"
  --request-timeout 10
  --workers 1
  --no-color
)

started=$(date +%s)
status=0
# The platform's operations with the platform key, the rest with a tenant's
# admin key (with the wrong kind of key every answer would be a 403).
echo "fuzz-api: tenants (platform key)"
timeout --kill-after=10 "$budget" "${st[@]}" \
  -H "Authorization: Bearer $platform_key" \
  --include-path-regex '^/v1/tenants' || status=$?
left=$((budget - ($(date +%s) - started)))
if [ "$status" -eq 0 ] && [ "$left" -gt 10 ]; then
  echo "fuzz-api: everything else (a tenant's admin key)"
  # GET /v1/events is left out: it streams Server-Sent Events until the
  # client goes away, so a valid request never gets a complete response to
  # check (its parameters are the same edge extractors as every list's).
  timeout --kill-after=10 "$left" "${st[@]}" \
    -H "Authorization: Bearer $tenant_key" \
    --exclude-path-regex '^/v1/tenants' \
    --exclude-path /v1/events || status=$?
elif [ "$status" -eq 0 ]; then
  echo "fuzz-api: out of time before the second pass" >&2
  status=1
fi
[ "$status" -eq 124 ] && echo "fuzz-api: stopped after ${budget}s" >&2
echo "fuzz-api: $(( $(date +%s) - started ))s, exit $status"
exit "$status"
