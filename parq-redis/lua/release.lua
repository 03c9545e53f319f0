-- Drops a token's claim on one spot.
--
-- KEYS[1] starts, KEYS[2] deadlines, KEYS[3] claims (of the spot; see claim.lua)
-- ARGV[1] token
--
-- Returns 1 when the token held a claim on the spot, else 0.
local held = redis.call('HDEL', KEYS[3], ARGV[1])
if held == 1 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return held
