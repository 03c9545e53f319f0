-- Claims the first free candidate spot for a window, atomically.
--
-- KEYS[1]        hash: spot -> last fencing number issued (HINCRBY; never expires)
-- KEYS[2]        set: spots of the lot that have claims (read by rebuild.lua)
-- KEYS[3i..3i+2] for candidate i: starts (zset token -> window start),
--                deadlines (zset token -> until when the claim holds), claims (hash token -> "start:end:fence")
-- ARGV[1] now (ms since the Unix epoch, by the caller's clock)
-- ARGV[2] ttl (ms)
-- ARGV[3] token
-- ARGV[4] window start (ms); ARGV[5] window length (ms)
-- ARGV[5+i] id of candidate i
--
-- Returns {i, fence} for the granted candidate i, or nil when every candidate is taken.
--
-- Live claims of one spot never overlap one another, so ordered by start they are also ordered
-- by end: the window [s, e) is free exactly when the claim with the greatest start below e ends
-- at or before s. That keeps a claim O(log n) in the number of claims on the spot.
local now = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local token = ARGV[3]
local s = tonumber(ARGV[4])
local e = s + tonumber(ARGV[5])
local fmt = function(n) return string.format('%.0f', n) end
local s_txt, e_txt, deadline_txt = fmt(s), fmt(e), fmt(deadline)

local function prune(starts, deadlines, claims)
  local dead = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now)
  for k = 1, #dead, 500 do
    local chunk = { unpack(dead, k, math.min(k + 499, #dead)) }
    redis.call('ZREM', starts, unpack(chunk))
    redis.call('HDEL', claims, unpack(chunk))
  end
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', deadlines, '-inf', now)
  end
end

-- Redis forgets a spot's claims a minute after the last of them lapses (a backstop for memory;
-- liveness is decided by the deadlines above, on the caller's clock).
local function keep(starts, deadlines, claims)
  local last = redis.call('ZREVRANGE', deadlines, 0, 0, 'WITHSCORES')
  if #last == 2 then
    local ms = math.max(tonumber(last[2]) - now, 0) + 60000
    redis.call('PEXPIRE', starts, ms)
    redis.call('PEXPIRE', deadlines, ms)
    redis.call('PEXPIRE', claims, ms)
  end
end

for i = 1, #ARGV - 5 do
  local starts, deadlines, claims = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  prune(starts, deadlines, claims)
  local mine = redis.call('HGET', claims, token)
  if mine then
    local ms, me, mf = string.match(mine, '^(-?%d+):(-?%d+):(%d+)$')
    if ms == s_txt and me == e_txt then
      return { i, tonumber(mf) }
    end
  end
  local free = true
  local before = redis.call('ZREVRANGEBYSCORE', starts, '(' .. e_txt, '-inf', 'LIMIT', 0, 1)
  if #before == 1 then
    local other = redis.call('HGET', claims, before[1])
    if other and tonumber(string.match(other, '^-?%d+:(-?%d+):')) > s then
      free = false
    end
  end
  if free then
    local spot = ARGV[5 + i]
    local fence = redis.call('HINCRBY', KEYS[1], spot, 1)
    redis.call('ZADD', starts, s_txt, token)
    redis.call('ZADD', deadlines, deadline_txt, token)
    redis.call('HSET', claims, token, s_txt .. ':' .. e_txt .. ':' .. fence)
    redis.call('SADD', KEYS[2], spot)
    keep(starts, deadlines, claims)
    return { i, fence }
  end
end
return false
