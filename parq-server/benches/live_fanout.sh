#!/usr/bin/env bash
# Time from a hold to its live event at many Socket.IO clients, on memory: starts `parq serve`
# (release build, demo city, rate limits lifted, logs at warn) and runs live_fanout.mjs against
# Eleftheria Square. Needs node and `npm ci` in parq-server/tests/js.
#
#   parq-server/benches/live_fanout.sh                     # 1,000 clients, 200 holds, 50 ms apart
#   CLIENTS=1000 HOLDS=200 PAUSE_MS=20 WORKERS=2 parq-server/benches/live_fanout.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

port="${PORT:-18091}"
base="http://127.0.0.1:$port"
[ -d parq-server/tests/js/node_modules/socket.io-client ] || (cd parq-server/tests/js && npm ci --no-audit --no-fund)
bin="${PARQ_BIN:-}"
if [ -z "$bin" ]; then
  cargo build -q --release -p parq-server --bin parq
  bin="${CARGO_TARGET_DIR:-target}/release/parq"
fi
out=$(mktemp)
PARQ_RATE_IP=10000000 PARQ_RATE_USER=10000000 PARQ_RATE_KEY=10000000 PARQ_LOG="${LOG:-warn}" \
  "$bin" serve --bind "127.0.0.1:$port" >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
lot=$(grep -E 'Eleftheria' "$out" | awk '{print $1}')
echo "parq $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, pause ${PAUSE_MS:-50} ms"
PAUSE_MS="${PAUSE_MS:-50}" node parq-server/benches/live_fanout.mjs "$base" "$lot" "${CLIENTS:-1000}" "${HOLDS:-200}"
