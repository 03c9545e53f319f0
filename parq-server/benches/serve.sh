# Sourced by the benchmark scripts: starts and stops `parq serve` for a benchmark.
# In: PORT (the caller's default), PARQ_BIN (else a release build), LOG (default warn).
#   parq_start [NAME=VALUE…]   starts the demo city with these settings added to its environment
#                              (say where the store is: PARQ_STORE_URL=memory:, PARQ_DATA_DIR=…),
#                              rate limits lifted so the load generator measures the server
#   parq_stop                  stops it (also on exit)
# Out: $base, $pid, $out (what the server printed), $lot (Eleftheria Square's id).
base="http://127.0.0.1:$port"
bin="${PARQ_BIN:-}"
if [ -z "$bin" ]; then
  cargo build -q --release -p parq-server --bin parq
  bin="${CARGO_TARGET_DIR:-target}/release/parq"
fi
out=$(mktemp)
pid=

parq_start() {
  env PARQ_RATE_IP=10000000 PARQ_RATE_USER=10000000 PARQ_RATE_KEY=10000000 PARQ_LOG="${LOG:-warn}" "$@" \
    "$bin" serve --bind "127.0.0.1:$port" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "$base/healthz" >/dev/null || { cat "$out"; echo "parq did not start" >&2; exit 1; }
  lot=$(grep -E 'Eleftheria' "$out" | awk '{print $1}')
}

parq_stop() {
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}

trap 'parq_stop; rm -f "$out"' EXIT
