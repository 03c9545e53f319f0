-- One rate-limit check (GCRA, the token bucket as a theoretical arrival time), on Redis's clock.
--
-- KEYS[1]  the bucket's key (it holds its theoretical arrival time, in microseconds)
-- ARGV[1]  emission interval: microseconds per request (1e6 / rate), at least 1
-- ARGV[2]  burst: how many requests may arrive at once, at least 1
--
-- Returns {1, 0} when the request is allowed (and takes its share of the bucket), or
-- {0, wait} when it is not, with the microseconds until it would be.
--
-- `TIME` is Redis's own clock, so replicas whose clocks disagree share one bucket exactly.
-- Redis 7 replicates a script's effects, not the script, so reading the clock is allowed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
if interval == nil or burst == nil or interval < 1 or burst < 1 then
  return redis.error_reply('rate_limit: bad interval or burst')
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
if tat < now then
  tat = now
end
local next_tat = tat + interval
local allowed_at = next_tat - interval * burst
if allowed_at > now then
  return {0, allowed_at - now}
end
-- The key lives exactly as long as the bucket is not full again.
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return {1, 0}
