-- wrk script for parq-server/benches/http_load.sh.
--   wrk ... -s load.lua URL                              GET the URL (the trivial endpoint)
--   wrk ... -s load.lua URL -- holds LOT TOKEN START N   POST /api/v1/holds
-- Each hold asks for a pooled spot of LOT in its own 15-minute window, so every hold
-- succeeds (201) and none waits on another: N is wrk's thread count, which keeps the
-- threads' windows apart, and START the first window's Unix time.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  lot, token = args[2], args[3]
  start, nthreads = tonumber(args[4] or "0"), tonumber(args[5] or "1")
  counter = 0
end

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

function request()
  if mode ~= "holds" then
    return wrk.format("GET")
  end
  counter = counter + 1
  local from = start + (counter * nthreads + id) * 900
  local body = string.format('{"lot_id":"%s","start":"%s","end":"%s"}', lot, iso(from), iso(from + 900))
  return wrk.format("POST", "/api/v1/holds", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = string.format("load-%d-%d", id, counter),
  }, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rate=%.0f/s p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms socket_errors=%d non_2xx=%d\n",
    summary.requests, summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, e.connect + e.read + e.write + e.timeout, e.status))
end
