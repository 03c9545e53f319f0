#!/usr/bin/env bash
# Starts `parq serve` on memory, logs a driver in, and runs schemathesis against
# /api/v1/openapi.json: every response must conform to the document (status codes, content
# types, headers, bodies) and none may be a server error. Exits non-zero on any failure.
#
#   parq-server/tests/schemathesis.sh            # builds parq first
#   PARQ_BIN=path/to/parq parq-server/tests/schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES=100 parq-server/tests/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

port="${PARQ_SCHEMATHESIS_PORT:-18181}"
examples="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
base="http://127.0.0.1:$port"

if ! command -v schemathesis >/dev/null; then
  echo "schemathesis is missing: installing it with pip"
  python3 -m pip install -q schemathesis
fi
bin="${PARQ_BIN:-}"
if [ -z "$bin" ]; then
  cargo build -q -p parq-server --bin parq
  bin="${CARGO_TARGET_DIR:-target}/debug/parq"
fi

work=$(mktemp -d)
# Rate limits high enough that the run is not throttled; gate and operator keys known.
PARQ_RATE_IP=100000 PARQ_RATE_USER=100000 PARQ_RATE_KEY=100000 \
  PARQ_OPERATOR_KEY=pqk_schemathesis_operator PARQ_GATE_KEY=pqk_schemathesis_gate \
  "$bin" serve --memory --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null || { cat "$work/server.log"; echo "parq did not start" >&2; exit 1; }

post() { curl -fsS "$base$1" -H 'content-type: application/json' -H "idempotency-key: $(cat /proc/sys/kernel/random/uuid)" -d "$2"; }
post /api/v1/auth/register '{"email":"fuzz@parq.test","password":"fuzzing-password"}' >/dev/null
token=$(post /api/v1/auth/login '{"email":"fuzz@parq.test","password":"fuzzing-password"}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

checks="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method"
status=0
run() {  # label, auth header, phases, extra args
  local label=$1 auth=$2 phases=$3
  shift 3
  echo "==> schemathesis as $label"
  # From the scratch directory, so schemathesis's own cache stays out of the repository.
  local attempt
  for attempt in 1 2 3; do
    if (cd "$work" && schemathesis run "$base/api/v1/openapi.json" --url "$base" -H "$auth" \
      --checks "$checks" --max-examples "$examples" --phases "$phases" \
      --seed 1 --workers 2 --no-color --suppress-health-check all \
      --generation-database none --generation-with-security-parameters false "$@") | tee "$work/run.log"
    then
      return
    fi
    # A crash inside schemathesis itself (a "Runtime Error" with no failed check) says nothing
    # about the server: run again, up to three times. Any failed check fails the run at once.
    if [ "$attempt" -lt 3 ] && grep -q 'Runtime Error' "$work/run.log" && ! grep -q 'Failures:' "$work/run.log"; then
      echo "schemathesis crashed internally; running $label again"
      continue
    fi
    status=1
    # Kept for the end, so that the last lines printed say what failed and where.
    { echo "---- schemathesis as $label failed:"; grep -vE '^\s*$' "$work/run.log" | tail -n 60; } >>"$work/failures.txt"
    return
  done
}
# Logging out would end the run's session; the Rust tests cover it.
# The driver's run follows the API's links (hold → checkout, cancel, extend, pass) statefully.
run driver "Authorization: Bearer $token" examples,coverage,fuzzing,stateful --exclude-path-regex '^/api/v1/((operator|gates)/|auth/logout)'
run operator "X-Api-Key: pqk_schemathesis_operator" examples,coverage,fuzzing --include-path-regex '^/api/v1/operator/'
run gate "X-Api-Key: pqk_schemathesis_gate" examples,coverage,fuzzing --include-path-regex '^/api/v1/gates/'
if grep -q '"level":"ERROR"' "$work/server.log"; then
  echo "the server logged errors:" >&2
  grep '"level":"ERROR"' "$work/server.log" | head -20 >&2
  status=1
fi
[ -f "$work/failures.txt" ] && cat "$work/failures.txt"
[ "$status" = 0 ] && echo "schemathesis: no server error and no response off the schema"
exit "$status"
