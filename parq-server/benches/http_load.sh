#!/usr/bin/env bash
# Load over HTTP on memory, in one run: a trivial endpoint (GET /healthz, through the same
# middleware: trace context, logs, metrics, rate limiting) and then holds (POST /api/v1/holds,
# every one a new 201), each at the same connection count. Needs wrk (Debian: apt-get install wrk).
#
#   parq-server/benches/http_load.sh                      # 64 connections, 10 s each
#   CONNECTIONS=64 DURATION=20s THREADS=2 LOG=info parq-server/benches/http_load.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

connections="${CONNECTIONS:-64}"
duration="${DURATION:-10s}"
threads="${THREADS:-2}"
log="${LOG:-warn}"
port="${PORT:-18090}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
. parq-server/benches/serve.sh

post() { curl -fsS "$base$1" -H 'content-type: application/json' -H "idempotency-key: $(cat /proc/sys/kernel/random/uuid)" -d "$2"; }
post /api/v1/auth/register '{"email":"load@parq.test","password":"load-test-password"}' >/dev/null
token=$(post /api/v1/auth/login '{"email":"load@parq.test","password":"load-test-password"}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
start=$(( ($(date +%s) / 900 + 96) * 900 ))   # a day ahead, on a quarter hour

echo "parq $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, wrk -t$threads -c$connections -d$duration, logs at $log"
wrk -t"$threads" -c"$connections" -d"$duration" -s parq-server/benches/load.lua "$base/healthz" | grep RESULT | sed 's/RESULT/GET \/healthz      /'
wrk -t"$threads" -c"$connections" -d"$duration" -s parq-server/benches/load.lua "$base/api/v1/holds" \
  -- holds "$lot" "$token" "$start" "$threads" | grep RESULT | sed 's/RESULT/POST \/api\/v1\/holds/'
held=$(curl -fsS "$base/metrics" | grep '^parq_holds_total{outcome="held"}' | awk '{print $2}')
echo "holds recorded by the server: $held"
