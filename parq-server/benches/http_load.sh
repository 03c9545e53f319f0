#!/usr/bin/env bash
# Load over HTTP, in one run, on each composition of backends in turn: a trivial endpoint
# (GET /healthz, through the same middleware: trace context, logs, metrics, rate limiting) and
# then holds (POST /api/v1/holds, every one a new 201), each at the same connection count.
# Needs wrk (Debian: apt-get install wrk); the durable compositions need their servers.
#
#   parq-server/benches/http_load.sh                      # every composition, 64 connections, 10 s each
#   COMPOSITIONS="memory postgres+redis" DURATION=8s parq-server/benches/http_load.sh
#   CONNECTIONS=64 DURATION=20s THREADS=2 LOG=info parq-server/benches/http_load.sh
#
# Compositions (one function each below, `compose_<name>`):
#   memory          the default `parq serve`: store, lock and notifier in the process
#   postgres+redis  PgStore in a fresh schema of PARQ_BENCH_PG_URL (default
#                   postgres://postgres@127.0.0.1:5432/test), RedisLock and RedisNotifier on
#                   PARQ_BENCH_REDIS_URL (default redis://127.0.0.1:6379) under a fresh key
#                   prefix; both removed afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."

connections="${CONNECTIONS:-64}"
duration="${DURATION:-10s}"
threads="${THREADS:-2}"
log="${LOG:-warn}"
port="${PORT:-18090}"
compositions="${COMPOSITIONS:-memory postgres+redis}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
if [ -z "${PARQ_BIN:-}" ]; then
  cargo build -q --release -p parq-server --bin parq
  export PARQ_BIN="${CARGO_TARGET_DIR:-target}/release/parq"
fi

# Each composition exports the server's configuration and sets `cleanup` (run after the
# server stops).
compose_memory() {
  cleanup=true
}

compose_postgres_redis() {
  local pg="${PARQ_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
  local redis="${PARQ_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
  local id
  id=$(tr -d - </proc/sys/kernel/random/uuid)
  export PARQ_STORE_URL="$pg" PARQ_STORE_SCHEMA="parq_bench_$id" PARQ_LOCK_URL="$redis" \
    PARQ_NOTIFIER_URL="$redis" PARQ_REDIS_PREFIX="bench$id" PARQ_DEMO=true
  "$PARQ_BIN" migrate >/dev/null
  cleanup_pg="$pg" cleanup_schema="parq_bench_$id" cleanup_redis="$redis" cleanup_prefix="bench$id"
  cleanup() {
    psql -q "$cleanup_pg" -c "DROP SCHEMA IF EXISTS \"$cleanup_schema\" CASCADE" >/dev/null 2>&1 || true
    redis-cli -u "$cleanup_redis" --scan --pattern "$cleanup_prefix*" | xargs -r redis-cli -u "$cleanup_redis" DEL >/dev/null || true
    redis-cli -u "$cleanup_redis" --scan --pattern "*{$cleanup_prefix*" | xargs -r redis-cli -u "$cleanup_redis" DEL >/dev/null || true
  }
}

measure() {
  local name="$1"
  post() { curl -fsS "$base$1" -H 'content-type: application/json' -H "idempotency-key: $(cat /proc/sys/kernel/random/uuid)" -d "$2"; }
  post /api/v1/auth/register '{"email":"load@parq.test","password":"load-test-password"}' >/dev/null
  token=$(post /api/v1/auth/login '{"email":"load@parq.test","password":"load-test-password"}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  start=$(( ($(date +%s) / 900 + 96) * 900 ))   # a day ahead, on a quarter hour
  echo "== $name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  wrk -t"$threads" -c"$connections" -d"$duration" -s parq-server/benches/load.lua "$base/healthz" \
    | grep RESULT | sed 's/RESULT/GET \/healthz      /'
  wrk -t"$threads" -c"$connections" -d"$duration" -s parq-server/benches/load.lua "$base/api/v1/holds" \
    -- holds "$lot" "$token" "$start" "$threads" | grep RESULT | sed 's/RESULT/POST \/api\/v1\/holds/'
  held=$(curl -fsS "$base/metrics" | grep '^parq_holds_total{outcome="held"}' | awk '{print $2}')
  echo "holds recorded by the server: $held"
}

echo "parq $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, wrk -t$threads -c$connections -d$duration, logs at $log"
for c in $compositions; do
  (
    "compose_${c//[^a-z0-9]/_}"
    trap 'cleanup' EXIT
    (
      . parq-server/benches/serve.sh
      measure "$c"
    )
  )
done
