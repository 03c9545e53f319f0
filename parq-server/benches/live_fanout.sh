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
[ -d parq-server/tests/js/node_modules/socket.io-client ] || (cd parq-server/tests/js && npm ci --no-audit --no-fund)
. parq-server/benches/serve.sh
parq_start PARQ_STORE_URL=memory:
echo "parq $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, pause ${PAUSE_MS:-50} ms"
PAUSE_MS="${PAUSE_MS:-50}" node parq-server/benches/live_fanout.mjs "$base" "$lot" "${CLIENTS:-1000}" "${HOLDS:-200}"
