-- Moves the deadline of a token's claim on one spot.
--
-- KEYS[1] starts, KEYS[2] deadlines, KEYS[3] claims (of the spot; see claim.lua)
-- ARGV[1] now (ms, caller's clock), ARGV[2] token,
-- ARGV[3] new deadline (ms), or '' to hold until the window ends (a confirmed reservation)
--
-- Returns 1 when the token held a claim on the spot, else 0 (and changes nothing).
local now = tonumber(ARGV[1])
local token = ARGV[2]
local mine = redis.call('HGET', KEYS[3], token)
if not mine then
  return 0
end
local deadline = ARGV[3]
if deadline == '' then
  deadline = string.match(mine, '^-?%d+:(-?%d+):')
end
redis.call('ZADD', KEYS[2], deadline, token)
local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local ms = math.max(tonumber(last[2]) - now, 0) + 60000
for k = 1, 3 do
  redis.call('PEXPIRE', KEYS[k], ms)
end
return 1
