#!/usr/bin/env bash
# Load over HTTP, composition by composition in one run: for each, `parq serve` with the demo
# city, then a trivial endpoint (GET /healthz, through the same middleware: trace context, logs,
# metrics, rate limiting) and holds (POST /api/v1/holds, every one a new 201), each at the same
# connection count; a table side by side at the end. Needs wrk (Debian: apt-get install wrk).
#
# Compositions (COMPOSITIONS, in this order by default):
#   memory          store, accounts and records in the process (`PARQ_STORE_URL=memory:`)
#   sqlite          the default: one SQLite file in a fresh temporary data directory
#   postgres-redis  PostgreSQL (a fresh schema, `parq migrate` first) with the Redis admission
#                   lock and notifier under a fresh key prefix; both are removed afterwards
#
#   parq-server/benches/http_load.sh                      # 64 connections, 10 s each
#   CONNECTIONS=64 DURATION=20s THREADS=2 LOG=info parq-server/benches/http_load.sh
#   COMPOSITIONS="memory sqlite" parq-server/benches/http_load.sh
#   PG_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379 …
set -euo pipefail
cd "$(dirname "$0")/../.."

connections="${CONNECTIONS:-64}"
duration="${DURATION:-10s}"
threads="${THREADS:-2}"
log="${LOG:-warn}"
port="${PORT:-18090}"
compositions="${COMPOSITIONS:-memory sqlite postgres-redis}"
pg_url="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
. parq-server/benches/serve.sh

# What each composition leaves behind, removed on exit (after the server is stopped).
cleanups=()
cleanup() {
  parq_stop
  for c in "${cleanups[@]}"; do eval "$c" || true; done
  rm -f "$out"
}
trap cleanup EXIT

# ---- compositions: each starts the server with its settings ----

composition_memory() {
  parq_start PARQ_STORE_URL=memory:
}

composition_sqlite() {
  local dir
  dir=$(mktemp -d)
  cleanups+=("rm -rf '$dir'")
  sqlite_file="$dir/parq.db"
  # No store setting: the default file in the data directory (the demo city on first start).
  parq_start PARQ_DATA_DIR="$dir"
}

composition_postgres_redis() {
  local schema="parq_bench_$$" prefix="parq-bench-$$"
  command -v psql >/dev/null || { echo "psql is missing" >&2; exit 1; }
  cleanups+=("psql -q '$pg_url' -c 'DROP SCHEMA IF EXISTS $schema CASCADE' >/dev/null 2>&1")
  cleanups+=("redis-cli -u '$redis_url' --scan --pattern '$prefix*' | xargs -r redis-cli -u '$redis_url' del >/dev/null")
  # Replicas share a pass keyring; the PostgreSQL composition refuses to start without one.
  local keys
  keys="$(mktemp -d)/pass-keys.toml"
  "$bin" keys generate --out "$keys" >/dev/null
  cleanups+=("rm -rf '$(dirname "$keys")'")
  local settings=(PARQ_STORE_URL="$pg_url" PARQ_STORE_SCHEMA="$schema" PARQ_LOCK_URL="$redis_url"
    PARQ_NOTIFIER_URL="$redis_url" PARQ_REDIS_PREFIX="$prefix" PARQ_DEMO=true PARQ_PASS_KEYS_FILE="$keys")
  env "${settings[@]}" PARQ_LOG="$log" "$bin" migrate >/dev/null
  parq_start "${settings[@]}"
}

# ---- the measurement, the same for every composition ----

post() { curl -fsS "$base$1" -H 'content-type: application/json' -H "idempotency-key: $(cat /proc/sys/kernel/random/uuid)" -d "$2"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

declare -A result
measure() {
  local name=$1
  post /api/v1/auth/register '{"email":"load@parq.test","password":"load-test-password"}' >/dev/null
  local token start trivial holds held
  token=$(post /api/v1/auth/login '{"email":"load@parq.test","password":"load-test-password"}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  start=$(( ($(date +%s) / 900 + 96) * 900 ))   # a day ahead, on a quarter hour
  trivial=$(wrk -t"$threads" -c"$connections" -d"$duration" -s parq-server/benches/load.lua "$base/healthz" | grep RESULT)
  echo "$name  GET /healthz       ${trivial#RESULT }"
  holds=$(wrk -t"$threads" -c"$connections" -d"$duration" -s parq-server/benches/load.lua "$base/api/v1/holds" \
    -- holds "$lot" "$token" "$start" "$threads" | grep RESULT)
  echo "$name  POST /api/v1/holds ${holds#RESULT }"
  held=$(curl -fsS "$base/metrics" | grep '^parq_holds_total{outcome="held"}' | awk '{print $2}')
  echo "$name  holds recorded by the server: $held"
  result[$name]="$(echo "$trivial" | field rate) $(echo "$trivial" | field p99) $(echo "$holds" | field rate) \
$(echo "$holds" | field p50) $(echo "$holds" | field p99) $(echo "$holds" | field non_2xx) $held"
}

echo "parq $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, wrk -t$threads -c$connections -d$duration, logs at $log"
for c in $compositions; do
  fn="composition_${c//-/_}"
  declare -F "$fn" >/dev/null || { echo "unknown composition $c (memory, sqlite, postgres-redis)" >&2; exit 2; }
  "$fn"
  measure "$c"
  parq_stop
  if [ "$c" = sqlite ] && command -v sqlite3 >/dev/null; then
    # Stopped: what the file holds is what was answered (every hold committed before its 201).
    echo "sqlite  held reservations in the file after the stop: $(sqlite3 "$sqlite_file" "SELECT count(*) FROM reservations WHERE state = 'held'")"
  fi
done

echo
echo "| composition | GET /healthz req/s | p99 | POST /api/v1/holds holds/s | p50 | p99 | non-2xx | holds counted | holds / memory |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
mem_rate=
[ -n "${result[memory]:-}" ] && mem_rate=$(echo "${result[memory]}" | awk '{print $3}' | tr -d '/s')
for c in $compositions; do
  read -r t_rate t_p99 h_rate h_p50 h_p99 non2xx held <<<"${result[$c]}"
  ratio="—"
  [ -n "$mem_rate" ] && ratio=$(awk -v a="${h_rate%/s}" -v b="$mem_rate" 'BEGIN { printf "%.2f", a / b }')
  echo "| $c | ${t_rate%/s} | $t_p99 | ${h_rate%/s} | $h_p50 | $h_p99 | $non2xx | $held | $ratio |"
done
