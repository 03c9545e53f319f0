-- Replaces every claim of a lot with the given ones, and raises fencing counters.
--
-- KEYS[1] fences hash, KEYS[2] spots set (see claim.lua)
-- KEYS[3i..3i+2] starts, deadlines, claims of spot i, for every spot in the spots set and
--                every spot of the given claims
-- ARGV[1] now (ms, caller's clock); ARGV[2] m, the number of spots; ARGV[2+i] id of spot i
-- then per claim six arguments: spot index i, token, start (ms), end (ms),
--      deadline (ms, or '' for a confirmed reservation: until the window ends), fence
--
-- Returns 1, or -1 without changing anything when the spots set holds a spot the caller did not
-- list (a claim on a new spot landed between the caller's read and this script: read again).
local now = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local index = {}
for i = 1, m do
  index[ARGV[2 + i]] = i
end
for _, spot in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not index[spot] then
    return -1
  end
end
redis.call('DEL', KEYS[2])
for i = 1, m do
  redis.call('DEL', KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2])
end
local j = 3 + m
while j + 5 <= #ARGV do
  local i, token, s, e, deadline, fence = tonumber(ARGV[j]), ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ARGV[j + 4], ARGV[j + 5]
  if deadline == '' then
    deadline = e
  end
  local spot = ARGV[2 + i]
  redis.call('ZADD', KEYS[3 * i], s, token)
  redis.call('ZADD', KEYS[3 * i + 1], deadline, token)
  redis.call('HSET', KEYS[3 * i + 2], token, s .. ':' .. e .. ':' .. fence)
  redis.call('SADD', KEYS[2], spot)
  local current = tonumber(redis.call('HGET', KEYS[1], spot) or '0')
  if tonumber(fence) > current then
    redis.call('HSET', KEYS[1], spot, fence)
  end
  j = j + 6
end
for i = 1, m do
  local last = redis.call('ZREVRANGE', KEYS[3 * i + 1], 0, 0, 'WITHSCORES')
  if #last == 2 then
    local ms = math.max(tonumber(last[2]) - now, 0) + 60000
    for k = 0, 2 do
      redis.call('PEXPIRE', KEYS[3 * i + k], ms)
    end
  end
end
return 1
